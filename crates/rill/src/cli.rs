//! The command line: one subcommand per thing users do.

use clap::{Parser, Subcommand};

use crate::broker::BrokerArgs;

#[derive(Debug, Parser)]
#[command(
    name = "rill",
    version,
    about = "Rill: a Kafka-compatible log broker in one binary",
    long_about = "Rill: a Kafka-compatible log broker in one binary.\n\n\
        Start a broker with `rill broker`; every Kafka client can use it.",
    after_help = "Examples:\n  rill broker\n  rill broker --data /var/lib/rill --listen 0.0.0.0:9092 --advertise broker1:9092"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker.
    Broker(BrokerArgs),
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Broker(args) => crate::broker::run(args),
    }
}
