//! Three controllers in one process on loopback ports, each with its own
//! directory: election, replication of commands, failover of the leader,
//! and a restarted controller catching up from its directory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::Instant;

use rill_cluster::{
    Applied, BrokerId, ClusterSettings, Command, Controller, ProposeError, RaftSettings, Rejection,
};
use uuid::Uuid;

mod common;
use common::{Cluster, DEADLINE, POLL, settings, wait_for};

/// Proposes through `controller`, retrying while there is no leader yet
/// (an election in progress) — what a broker does.
async fn propose(controller: &Controller, command: Command) -> Result<Applied, Rejection> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match controller.propose(command.clone()).await {
            Ok(result) => return result,
            Err(e @ (ProposeError::NotLeader { .. } | ProposeError::Forward { .. })) => {
                assert!(Instant::now() < deadline, "proposal kept failing: {e}");
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("proposal failed: {e}"),
        }
    }
}

fn register(id: i32) -> Command {
    Command::RegisterBroker {
        broker_id: BrokerId(id),
        host: "127.0.0.1".to_owned(),
        port: u16::try_from(9000 + id).unwrap(),
        listeners: Vec::new(),
    }
}

fn create_topic(name: &str, id: u128) -> Command {
    Command::CreateTopic {
        name: name.to_owned(),
        topic_id: Uuid::from_u128(id),
        assignment: vec![
            vec![BrokerId(1), BrokerId(2), BrokerId(3)],
            vec![BrokerId(2), BrokerId(3), BrokerId(1)],
        ],
        configs: BTreeMap::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_proposed_through_any_controller_are_applied_on_all() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.agreed_leader().await;
    let follower = cluster
        .nodes
        .keys()
        .copied()
        .find(|id| *id != leader)
        .unwrap();

    // Through a follower: forwarded to the leader.
    for broker in 1..=3 {
        let applied = propose(&cluster.nodes[&follower], register(broker)).await;
        assert!(
            matches!(applied, Ok(Applied::BrokerRegistered { .. })),
            "{applied:?}"
        );
    }
    let applied = propose(&cluster.nodes[&leader], create_topic("orders", 1)).await;
    assert_eq!(
        applied,
        Ok(Applied::TopicCreated {
            topic_id: Uuid::from_u128(1)
        })
    );
    // A rejection comes back to the proposer as a typed result.
    let again = propose(&cluster.nodes[&follower], create_topic("orders", 2)).await;
    assert_eq!(
        again,
        Err(Rejection::TopicAlreadyExists {
            name: "orders".to_owned()
        })
    );

    let metadata = cluster
        .converged("the topic on every controller", |m| {
            m.topics.contains_key("orders")
        })
        .await;
    assert_eq!(metadata.brokers.len(), 3);
    assert_eq!(
        metadata.topics["orders"].partitions[1].leader,
        Some(BrokerId(2))
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_and_a_restarted_controller_catches_up() {
    let mut cluster = Cluster::start(3).await;
    let first_leader = cluster.agreed_leader().await;
    for broker in 1..=3 {
        let applied = propose(&cluster.nodes[&first_leader], register(broker)).await;
        assert!(applied.is_ok(), "{applied:?}");
    }
    cluster
        .converged("the registrations everywhere", |m| m.brokers.len() == 3)
        .await;

    cluster.stop_node(first_leader).await;
    let second_leader = cluster.agreed_leader().await;
    assert_ne!(second_leader, first_leader);
    let survivor = cluster.nodes.keys().copied().next().unwrap();
    let applied = propose(&cluster.nodes[&survivor], create_topic("after-failover", 7)).await;
    assert_eq!(
        applied,
        Ok(Applied::TopicCreated {
            topic_id: Uuid::from_u128(7)
        })
    );
    // A fence moves the broker's partitions in the same entry: computed
    // from the metadata with the topic (broker 1 leads partition 0 and
    // follows partition 1).
    let metadata = cluster
        .converged("the topic on the survivors", |m| {
            m.topics.contains_key("after-failover")
        })
        .await;
    let fence = Command::FenceBroker {
        broker_id: BrokerId(1),
        partition_changes: metadata.fence_changes(BrokerId(1)),
    };
    assert_eq!(
        propose(&cluster.nodes[&survivor], fence).await,
        Ok(Applied::BrokerFenced {
            partitions_changed: 2
        })
    );

    // The stopped controller reopens its directory and learns what it missed.
    cluster.start_node(first_leader).await;
    let metadata = cluster
        .converged("the restarted controller to catch up", |m| {
            m.topics.contains_key("after-failover")
        })
        .await;
    assert_eq!(metadata.brokers.len(), 3);
    assert!(metadata.brokers[&BrokerId(1)].fenced);
    // And it takes part: a command through it is applied everywhere.
    let applied = propose(
        &cluster.nodes[&first_leader],
        create_topic("after-restart", 8),
    )
    .await;
    assert!(applied.is_ok(), "{applied:?}");
    cluster
        .converged("the last topic everywhere", |m| {
            m.topics.contains_key("after-restart")
        })
        .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_quorum_restarts_from_its_directories() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.agreed_leader().await;
    let applied = propose(&cluster.nodes[&leader], register(1)).await;
    assert!(applied.is_ok(), "{applied:?}");
    let before = cluster
        .converged("the registration", |m| m.brokers.len() == 1)
        .await;
    for id in 1..=3 {
        cluster.stop_node(id).await;
    }
    for id in 1..=3 {
        cluster.start_node(id).await;
    }
    cluster.agreed_leader().await;
    let after = cluster
        .converged("the state from before", |m| m == &before)
        .await;
    assert_eq!(after.brokers[&BrokerId(1)].port, 9001);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_behind_the_purged_log_catches_up_from_a_snapshot() {
    let raft = RaftSettings {
        snapshot_every_entries: 4,
        entries_kept_after_snapshot: 0,
        ..settings()
    };
    let mut cluster = Cluster::start_with(3, raft, ClusterSettings::default()).await;
    let leader = cluster.agreed_leader().await;
    let lagging = cluster
        .nodes
        .keys()
        .copied()
        .find(|id| *id != leader)
        .unwrap();
    cluster.stop_node(lagging).await;

    for broker in 1..=12 {
        let applied = propose(&cluster.nodes[&leader], register(broker)).await;
        assert!(applied.is_ok(), "{applied:?}");
    }
    // The leader's log no longer holds what the stopped node misses.
    let purged = wait_for("the leader to purge its log", || {
        let status = cluster.nodes[&leader].status();
        status.purged_index.filter(|purged| *purged > 4)
    })
    .await;
    assert!(cluster.nodes[&leader].status().snapshot_index >= Some(purged));

    cluster.start_node(lagging).await;
    let metadata = cluster
        .converged("the lagging controller to install the snapshot", |m| {
            m.brokers.len() == 12
        })
        .await;
    assert!(metadata.brokers.values().all(|b| b.fenced));
    assert!(cluster.nodes[&lagging].status().snapshot_index >= Some(purged));
    // It goes on from the snapshot with ordinary entries.
    let applied = propose(&cluster.nodes[&lagging], create_topic("after-snapshot", 9)).await;
    assert!(applied.is_ok(), "{applied:?}");
    cluster
        .converged("the topic after the snapshot", |m| {
            m.topics.contains_key("after-snapshot")
        })
        .await;
    cluster.shutdown().await;
}
