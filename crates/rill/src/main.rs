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
mod consumer_group;
mod dev_cluster;
mod group;
mod link;
mod produce;
mod quorum;
mod quota;
mod reassign;
mod share_consume;
mod share_group;
mod table;
mod timestamp;
mod topic;
mod txn;
mod user;
mod voters;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.log_format);
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr in `format`; RUST_LOG overrides the default level
/// (info).
fn init_logging(format: cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // openraft narrates every election and membership step at info.
        tracing_subscriber::EnvFilter::new("info,librdkafka=warn,rdkafka=warn,openraft=warn")
    });
    let lines = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Text => lines
            // Colours for a terminal only: log files and pipes get plain text.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One object a line: timestamp, level, target, message and the
        // event's fields at the top level, as log shippers index them.
        cli::LogFormat::Json => lines.json().flatten_event(true).init(),
    }
}
