//! `rill cluster add-voter` and `rill cluster remove-voter`: change the
//! metadata quorum's voters (KIP-853's AddRaftVoter and RemoveRaftVoter,
//! as `kafka-metadata-quorum add-controller` / `remove-controller`),
//! through any node's controller: a broker's Kafka listener for a cluster
//! grown from a standalone node (`--join`), or a controller port of a
//! fixed quorum (`--controller-quorum`). The node asked forwards the
//! change to the quorum's leader.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rill_cluster::{Connector, ControllerClient};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rill cluster remove-voter 1 --bootstrap 127.0.0.1:9192\n  \
    rill cluster add-voter 4 --address broker4:9092 --bootstrap 127.0.0.1:9092\n\n\
    A node joining with `rill broker --join` adds itself; add-voter is for a\n\
    node whose address changed. The last voter cannot be removed.")]
pub(crate) struct RemoveVoterArgs {
    /// The node to remove from the voters.
    node_id: u64,
    /// A node of the quorum (HOST:PORT of its Kafka listener or controller
    /// port); a comma-separated list works too.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// How long the change may take.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    timeout_ms: u64,
}

#[derive(Debug, Args)]
pub(crate) struct AddVoterArgs {
    /// The node to add (or whose address to update).
    node_id: u64,
    /// Where the other controllers reach it (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    address: String,
    /// A node of the quorum; a comma-separated list works too.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    timeout_ms: u64,
}

fn client(bootstrap: &str, timeout_ms: u64) -> ControllerClient {
    let nodes: BTreeMap<u64, String> = (0..)
        .zip(
            bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty()),
        )
        .map(|(i, address)| (i, address.to_string()))
        .collect();
    // Plain TCP: a quorum whose nodes speak TLS to each other takes
    // voter changes from its own nodes only (`rill broker --join`).
    ControllerClient::new(
        &nodes,
        Duration::from_millis(timeout_ms / 6).max(Duration::from_secs(1)),
        &Connector::tcp(),
    )
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")
}

pub(crate) fn remove(args: RemoveVoterArgs) -> anyhow::Result<()> {
    let mut client = client(&args.bootstrap, args.timeout_ms);
    runtime()?
        .block_on(client.remove_voter(args.node_id))
        .with_context(|| {
            format!(
                "cannot remove voter {} through {}",
                args.node_id, args.bootstrap
            )
        })?;
    eprintln!("removed voter {}", args.node_id);
    Ok(())
}

pub(crate) fn add(args: AddVoterArgs) -> anyhow::Result<()> {
    let mut client = client(&args.bootstrap, args.timeout_ms);
    runtime()?
        .block_on(client.add_voter(args.node_id, args.address.clone()))
        .with_context(|| {
            format!(
                "cannot add voter {} through {}",
                args.node_id, args.bootstrap
            )
        })?;
    eprintln!("voter {} at {}", args.node_id, args.address);
    Ok(())
}
