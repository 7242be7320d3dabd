//! A quorum that changes its voters (KIP-853): a standalone controller
//! with metadata is joined by two more, which catch up and vote; the
//! first is then removed and stopped, and the other two go on. Also: a
//! standalone controller leads at once, with no election timeout.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rill_cluster::{
    Acceptor, Bootstrap, BrokerId, ClusterSettings, Command, Connector, Controller,
    ControllerConfig, MembershipError, NodeId, ProposeError, RaftSettings,
};

mod common;
use common::{DEADLINE, POLL, free_port, wait_for};

fn slow_elections() -> RaftSettings {
    // An election timeout far longer than the test waits for a leader:
    // only the standalone shortcut can make one in time.
    RaftSettings {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 60_000,
        election_timeout_max_ms: 120_000,
        ..RaftSettings::default()
    }
}

fn fast() -> RaftSettings {
    RaftSettings {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        propose_timeout_ms: 5_000,
        ..RaftSettings::default()
    }
}

struct Node {
    address: String,
    dir: std::path::PathBuf,
}

async fn start(id: NodeId, node: &Node, bootstrap: Bootstrap, raft: RaftSettings) -> Controller {
    Controller::start(ControllerConfig {
        node_id: id,
        listen: Some(node.address.parse().unwrap()),
        bootstrap,
        data_dir: node.dir.clone(),
        raft,
        cluster: ClusterSettings::default(),
        connector: Connector::tcp(),
        acceptor: Acceptor::tcp(),
    })
    .await
    .unwrap()
}

async fn propose(controller: &Controller, command: Command) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match controller.propose(command.clone()).await {
            Ok(result) => {
                result.unwrap();
                return;
            }
            Err(e @ (ProposeError::NotLeader { .. } | ProposeError::Forward { .. })) => {
                assert!(Instant::now() < deadline, "proposal kept failing: {e}");
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("proposal failed: {e}"),
        }
    }
}

/// Runs a change of the voters, retrying while there is no leader to
/// take it (an election in progress, a leader stepping down mid-change).
async fn retrying<F, Fut>(what: &str, mut change: F) -> Result<(), MembershipError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), MembershipError>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        match change().await {
            Err(e @ (MembershipError::NotLeader { .. } | MembershipError::Forward { .. })) => {
                assert!(Instant::now() < deadline, "{what} kept failing: {e}");
                tokio::time::sleep(POLL).await;
            }
            other => return other,
        }
    }
}

async fn add_voter(through: &Controller, id: NodeId, address: &str) {
    retrying("adding a voter", || {
        through.add_voter(id, address.to_owned())
    })
    .await
    .unwrap();
}

fn register(id: i32) -> Command {
    Command::RegisterBroker {
        broker_id: BrokerId(id),
        host: "127.0.0.1".to_owned(),
        port: u16::try_from(9000 + id).unwrap(),
        listeners: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_controller_leads_at_once_and_again_after_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let node = Node {
        address: format!("127.0.0.1:{}", free_port()),
        dir: root.path().join("node-1"),
    };
    let voters = Bootstrap::Voters(BTreeMap::from([(1, node.address.clone())]));
    for _ in 0..2 {
        let started = Instant::now();
        let controller = start(1, &node, voters.clone(), slow_elections()).await;
        wait_for("the standalone node to lead", || {
            (controller.leader() == Some(1)).then_some(())
        })
        .await;
        // Far inside the 60 s election timeout: it did not wait one out.
        assert!(started.elapsed() < Duration::from_secs(30));
        propose(&controller, register(1)).await;
        assert!(matches!(
            controller.remove_voter(1).await,
            Err(MembershipError::LastVoter { node_id: 1 })
        ));
        controller.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_quorum_grows_to_three_and_loses_its_first_voter() {
    let root = tempfile::tempdir().unwrap();
    let nodes: BTreeMap<NodeId, Node> = (1..=3)
        .map(|id| {
            let node = Node {
                address: format!("127.0.0.1:{}", free_port()),
                dir: root.path().join(format!("node-{id}")),
            };
            (id, node)
        })
        .collect();
    let first = start(
        1,
        &nodes[&1],
        Bootstrap::Voters(BTreeMap::from([(1, nodes[&1].address.clone())])),
        fast(),
    )
    .await;
    propose(&first, register(1)).await;
    propose(&first, register(7)).await;

    // Two nodes join: they start empty and are added through the first.
    let second = start(2, &nodes[&2], Bootstrap::Join, fast()).await;
    add_voter(&first, 2, &nodes[&2].address).await;
    let third = start(3, &nodes[&3], Bootstrap::Join, fast()).await;
    // Through a follower this time: forwarded to the leader.
    add_voter(&second, 3, &nodes[&3].address).await;
    for controller in [&first, &second, &third] {
        wait_for("every node to see three voters and the metadata", || {
            let voters = controller.voters();
            let metadata = controller.metadata();
            (voters == [1, 2, 3] && metadata.brokers.len() == 2).then_some(())
        })
        .await;
    }

    // The first voter goes: the other two elect a leader and take writes.
    add_voter(&third, 1, &nodes[&1].address).await; // again: only its address, no change
    third
        .remove_voter(1)
        .await
        .or_else(|e| match e {
            // The first was the leader and stepped down mid-change: retry.
            MembershipError::NotLeader { .. } | MembershipError::Forward { .. } => Ok(()),
            other => Err(other),
        })
        .unwrap();
    wait_for("the remaining nodes to drop voter 1", || {
        (second.voters() == [2, 3] && third.voters() == [2, 3]).then_some(())
    })
    .await;
    first.shutdown().await;
    propose(&second, register(8)).await;
    wait_for("the write to reach both remaining nodes", || {
        (second.metadata().brokers.len() == 3 && third.metadata().brokers.len() == 3).then_some(())
    })
    .await;
    assert!(matches!(
        retrying("removing a node that is no voter", || third.remove_voter(9)).await,
        Err(MembershipError::NotAVoter { node_id: 9 })
    ));
    second.shutdown().await;
    third.shutdown().await;
}
