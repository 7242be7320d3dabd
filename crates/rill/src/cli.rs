//! The command line: one subcommand per thing users do.

use clap::{Parser, Subcommand};

use crate::bench::BenchArgs;
use crate::broker::BrokerArgs;
use crate::consume::ConsumeArgs;
use crate::group::GroupArgs;
use crate::produce::ProduceArgs;
use crate::topic::TopicArgs;

#[derive(Debug, Parser)]
#[command(
    name = "rill",
    version,
    about = "Rill: a Kafka-compatible log broker in one binary",
    long_about = "Rill: a Kafka-compatible log broker in one binary.\n\n\
        Start a broker with `rill broker`; every Kafka client can use it. The\n\
        client commands (topic, produce, consume, group) connect to --bootstrap,\n\
        127.0.0.1:9092 unless told otherwise.",
    after_help = "Examples:\n  \
        rill broker\n  \
        rill broker --data /var/lib/rill --listen 0.0.0.0:9092 --advertise broker1:9092\n  \
        rill topic create events --partitions 3\n  \
        echo hello | rill produce events\n  \
        rill consume events --from-beginning --format json\n  \
        rill group describe billing"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Broker(args) => crate::broker::run(args),
        Command::Topic(args) => crate::topic::run(args),
        Command::Produce(args) => crate::produce::run(args),
        Command::Consume(args) => crate::consume::run(args),
        Command::Group(args) => crate::group::run(args),
        Command::Bench(args) => crate::bench::run(args),
    }
}
