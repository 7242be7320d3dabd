//! `rill`: the broker and its command-line tools. Data goes to stdout;
//! logs and errors to stderr; failures exit non-zero.

mod acl;
mod alter_configs;
mod bench;
mod broker;
mod cli;
mod client;
mod cluster_status;
mod command_config;
mod connection;
mod consume;
mod dev_cluster;
mod group;
mod link;
mod produce;
mod quorum;
mod quota;
mod reassign;
mod table;
mod timestamp;
mod topic;
mod txn;
mod user;
mod voters;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_logging();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; RUST_LOG overrides the default level (info).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // openraft narrates every election and membership step at info.
        tracing_subscriber::EnvFilter::new("info,librdkafka=warn,rdkafka=warn,openraft=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a terminal only: log files and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
