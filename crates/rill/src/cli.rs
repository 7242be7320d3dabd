//! The command line: one subcommand per thing users do.

use clap::{Parser, Subcommand};

use crate::bench::BenchArgs;
use crate::broker::BrokerArgs;
use crate::cluster_status::StatusArgs;
use crate::consume::ConsumeArgs;
use crate::dev_cluster::DevClusterArgs;
use crate::group::GroupArgs;
use crate::produce::ProduceArgs;
use crate::topic::TopicArgs;

#[derive(Debug, Parser)]
#[command(
    name = "rill",
    version,
    about = "Rill: a Kafka-compatible log broker in one binary",
    long_about = "Rill: a Kafka-compatible log broker in one binary.\n\n\
        Start a broker with `rill broker`, or a cluster of them on this machine\n\
        with `rill dev cluster`; every Kafka client can use it. The client\n\
        commands (topic, produce, consume, group, cluster) connect to\n\
        --bootstrap, 127.0.0.1:9092 unless told otherwise.",
    after_help = "Examples:\n  \
        rill broker\n  \
        rill broker --data /var/lib/rill --listen 0.0.0.0:9092 --advertise broker1:9092\n  \
        rill dev cluster --nodes 3\n  \
        rill cluster status --bootstrap 127.0.0.1:9092,127.0.0.1:9192\n  \
        rill topic create events --partitions 3\n  \
        echo hello | rill produce events\n  \
        rill consume events --from-beginning --format json\n  \
        rill group describe billing"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines (stderr) are written: text, or one JSON object a
    /// line for log shippers. RUST_LOG sets the levels, per module too.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker.
    Broker(BrokerArgs),
    /// Create, list, describe, alter and delete topics.
    Topic(TopicArgs),
    /// Write lines of stdin to a topic, one message each.
    Produce(ProduceArgs),
    /// Print a topic's messages on stdout.
    Consume(ConsumeArgs),
    /// List, describe, reset the offsets of and delete consumer groups.
    Group(GroupArgs),
    /// Measure a broker's throughput and latency, or this machine's limits.
    Bench(BenchArgs),
    /// Show the cluster: brokers and their liveness, the controller,
    /// under-replicated and offline partitions.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Create, delete and list SCRAM users.
    #[command(subcommand)]
    User(crate::user::UserCommand),
    /// Add, remove and list ACLs (as kafka-acls).
    #[command(subcommand)]
    Acl(crate::acl::AclCommand),
    /// Set and list client quotas (as kafka-configs --entity-type users/clients).
    #[command(subcommand)]
    Quota(crate::quota::QuotaCommand),
    /// List, describe and abort transactions (as kafka-transactions).
    #[command(subcommand)]
    Txn(crate::txn::TxnCommand),
    /// Tools for development on one machine.
    #[command(subcommand)]
    Dev(DevCommand),
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Brokers (alive or fenced), the controller, and the under-replicated
    /// and offline partitions.
    Status(StatusArgs),
    /// Add a node to the metadata quorum's voters, or update its address.
    AddVoter(crate::voters::AddVoterArgs),
    /// Remove a node from the metadata quorum's voters.
    RemoveVoter(crate::voters::RemoveVoterArgs),
    /// The metadata quorum: leader, high watermark, each member's log end
    /// and lag.
    Quorum(crate::quorum::QuorumArgs),
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Run a cluster of N brokers on this machine, each a controller too,
    /// until Ctrl-C.
    Cluster(DevClusterArgs),
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Broker(args) => crate::broker::run(args),
        Command::Topic(args) => crate::topic::run(args),
        Command::Produce(args) => crate::produce::run(args),
        Command::Consume(args) => crate::consume::run(args),
        Command::Group(args) => crate::group::run(args),
        Command::Bench(args) => crate::bench::run(args),
        Command::Cluster(ClusterCommand::Status(args)) => crate::cluster_status::run(args),
        Command::Cluster(ClusterCommand::AddVoter(args)) => crate::voters::add(args),
        Command::Cluster(ClusterCommand::RemoveVoter(args)) => crate::voters::remove(args),
        Command::Cluster(ClusterCommand::Quorum(args)) => crate::quorum::run(args),
        Command::User(command) => crate::user::run(command),
        Command::Acl(command) => crate::acl::run(command),
        Command::Quota(command) => crate::quota::run(command),
        Command::Txn(command) => crate::txn::run(command),
        Command::Dev(DevCommand::Cluster(args)) => crate::dev_cluster::run(args),
    }
}
