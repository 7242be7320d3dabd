//! Broker liveness end to end, with three controllers in one process on
//! loopback ports: brokers heartbeat through the controller RPC; one that
//! goes quiet is fenced and its partitions fail over to other ISR members
//! with a higher leader epoch; it is unfenced when it heartbeats again;
//! a preferred-leader election gives leadership back; and a broker silent
//! across a controller failover is fenced by the new leader.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rill_cluster::{
    Applied, BrokerEpoch, BrokerId, ClusterMetadata, ClusterSettings, Command, Connector,
    Controller, ControllerClient, CreateTopicError, LeaderEpoch, NodeId, ProposeError, Rejection,
};
use tokio::task::JoinHandle;

mod common;
use common::{Cluster, DEADLINE, POLL, settings};

/// What a test broker waits between heartbeats (a fifth of the session).
const HEARTBEAT_EVERY: Duration = Duration::from_millis(100);

fn cluster_settings() -> ClusterSettings {
    ClusterSettings {
        broker_session_timeout_ms: 500,
        ..ClusterSettings::default()
    }
}

fn retryable(e: &ProposeError) -> bool {
    matches!(
        e,
        ProposeError::NotLeader { .. } | ProposeError::Forward { .. }
    )
}

async fn propose(controller: &Controller, command: Command) -> Result<Applied, Rejection> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match controller.propose(command.clone()).await {
            Ok(result) => return result,
            Err(e) if retryable(&e) => {
                assert!(Instant::now() < deadline, "proposal kept failing: {e}");
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("proposal failed: {e}"),
        }
    }
}

async fn create_topic(controller: &Controller, name: &str, partitions: usize) -> Applied {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match controller
            .create_topic(name, partitions, 3, BTreeMap::new())
            .await
        {
            Ok((_, result)) => return result.unwrap(),
            Err(CreateTopicError::Propose { source }) if retryable(&source) => {
                assert!(
                    Instant::now() < deadline,
                    "create_topic kept failing: {source}"
                );
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("create_topic failed: {e}"),
        }
    }
}

async fn elect_preferred_leaders(controller: &Controller) -> Result<Applied, Rejection> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match controller.elect_preferred_leaders().await {
            Ok(result) => return result,
            Err(e) if retryable(&e) => {
                assert!(Instant::now() < deadline, "election kept failing: {e}");
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("election failed: {e}"),
        }
    }
}

/// A test broker's heartbeat loop: through a `ControllerClient` over every
/// controller, every [`HEARTBEAT_EVERY`] while `beating`.
struct Heartbeats {
    beating: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Heartbeats {
    fn start(voters: &BTreeMap<NodeId, String>, broker: BrokerId, epoch: BrokerEpoch) -> Self {
        let beating = Arc::new(AtomicBool::new(true));
        let mut client = ControllerClient::new(voters, Duration::from_secs(2), &Connector::tcp());
        let flag = Arc::clone(&beating);
        let task = tokio::spawn(async move {
            loop {
                if flag.load(Ordering::Relaxed) {
                    // A failed heartbeat (no leader during an election) is
                    // what the session timeout is for; the next one retries.
                    if let Err(e) = client.heartbeat(broker, epoch).await {
                        tracing::debug!(%broker, error = %e, "heartbeat failed");
                    }
                }
                tokio::time::sleep(HEARTBEAT_EVERY).await;
            }
        });
        Heartbeats { beating, task }
    }

    fn set(&self, beating: bool) {
        self.beating.store(beating, Ordering::Relaxed);
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registers brokers 1..=3 and starts their heartbeats.
async fn three_brokers(cluster: &Cluster) -> BTreeMap<BrokerId, Heartbeats> {
    let mut heartbeats = BTreeMap::new();
    for id in 1..=3 {
        let broker = BrokerId(id);
        let command = Command::RegisterBroker {
            broker_id: broker,
            host: "127.0.0.1".to_owned(),
            port: u16::try_from(9000 + id).unwrap(),
            listeners: Vec::new(),
        };
        let Ok(Applied::BrokerRegistered { broker_epoch }) = propose(cluster.any(), command).await
        else {
            panic!("registering broker {id}");
        };
        heartbeats.insert(
            broker,
            Heartbeats::start(&cluster.voters, broker, broker_epoch),
        );
    }
    cluster
        .converged("every broker unfenced by its heartbeats", |m| {
            m.brokers.len() == 3 && m.brokers.values().all(|b| !b.fenced)
        })
        .await;
    heartbeats
}

/// (partition, leader epoch) of every partition of `topic` `broker` leads.
fn led_by(metadata: &ClusterMetadata, topic: &str, broker: BrokerId) -> Vec<(usize, LeaderEpoch)> {
    metadata.topics[topic]
        .partitions
        .iter()
        .enumerate()
        .filter(|(_, p)| p.leader == Some(broker))
        .map(|(i, p)| (i, p.leader_epoch))
        .collect()
}

/// `broker` is fenced, leads nothing, is in no ISR, and each partition of
/// `before` (partition, leader epoch) has another leader at a higher epoch.
fn failed_over(
    metadata: &ClusterMetadata,
    topic: &str,
    broker: BrokerId,
    before: &[(usize, LeaderEpoch)],
) -> bool {
    let partitions = &metadata.topics[topic].partitions;
    metadata.brokers[&broker].fenced
        && partitions
            .iter()
            .all(|p| p.leader != Some(broker) && !p.isr.contains(&broker))
        && before.iter().all(|(i, epoch)| {
            let p = &partitions[*i];
            p.leader.is_some_and(|l| l != broker && p.isr.contains(&l)) && p.leader_epoch > *epoch
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_broker_is_fenced_fails_over_and_comes_back_as_preferred_leader() {
    let cluster = Cluster::start_with(3, settings(), cluster_settings()).await;
    cluster.agreed_leader().await;
    let heartbeats = three_brokers(&cluster).await;

    let created = create_topic(cluster.any(), "orders", 6).await;
    assert!(
        matches!(created, Applied::TopicCreated { .. }),
        "{created:?}"
    );
    let metadata = cluster
        .converged("the topic everywhere", |m| m.topics.contains_key("orders"))
        .await;
    // Placement: each broker is the preferred leader of two partitions,
    // every partition has three distinct replicas.
    for id in 1..=3 {
        assert_eq!(led_by(&metadata, "orders", BrokerId(id)).len(), 2);
    }
    for p in &metadata.topics["orders"].partitions {
        assert_eq!(p.replicas.iter().collect::<BTreeSet<_>>().len(), 3);
    }

    let quiet = BrokerId(2);
    let led_before = led_by(&metadata, "orders", quiet);
    heartbeats[&quiet].set(false);
    let metadata = cluster
        .converged("broker 2 fenced and its partitions failed over", |m| {
            failed_over(m, "orders", quiet, &led_before)
        })
        .await;
    assert!(!metadata.brokers[&BrokerId(1)].fenced);
    assert!(!metadata.brokers[&BrokerId(3)].fenced);

    heartbeats[&quiet].set(true);
    cluster
        .converged("broker 2 unfenced by its heartbeat", |m| {
            !m.brokers[&quiet].fenced
        })
        .await;
    // Out of every ISR, it cannot be elected yet.
    assert_eq!(
        elect_preferred_leaders(cluster.any()).await,
        Ok(Applied::LeadersElected {
            partitions_changed: 0
        })
    );

    // The replication layer (to come) would add it back once caught up;
    // the test does what it will propose.
    let metadata = cluster.any().metadata();
    for (index, p) in metadata.topics["orders"].partitions.iter().enumerate() {
        let mut isr = p.isr.clone();
        isr.push(quiet);
        let rejoin = Command::ChangePartition {
            topic: "orders".to_owned(),
            partition: i32::try_from(index).unwrap(),
            leader: p.leader,
            isr,
        };
        assert!(propose(cluster.any(), rejoin).await.is_ok());
    }
    cluster
        .converged("broker 2 back in every ISR", |m| {
            m.topics["orders"]
                .partitions
                .iter()
                .all(|p| p.isr.contains(&quiet))
        })
        .await;
    let elected = elect_preferred_leaders(cluster.any()).await;
    assert_eq!(
        elected,
        Ok(Applied::LeadersElected {
            partitions_changed: led_before.len()
        })
    );
    let metadata = cluster
        .converged("broker 2 leading its preferred partitions", |m| {
            led_by(m, "orders", quiet).len() == led_before.len()
        })
        .await;
    for ((index, epoch_before), (index_after, epoch_after)) in
        led_before.iter().zip(led_by(&metadata, "orders", quiet))
    {
        assert_eq!(*index, index_after);
        // Away and back: two leader changes.
        assert_eq!(epoch_after.0, epoch_before.0 + 2);
        assert_eq!(
            metadata.topics["orders"].partitions[*index].replicas[0],
            quiet
        );
    }
    drop(heartbeats);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_silent_across_a_controller_failover_is_fenced_by_the_new_leader() {
    let mut cluster = Cluster::start_with(3, settings(), cluster_settings()).await;
    let first_leader = cluster.agreed_leader().await;
    let heartbeats = three_brokers(&cluster).await;
    create_topic(cluster.any(), "events", 3).await;
    let metadata = cluster
        .converged("the topic everywhere", |m| m.topics.contains_key("events"))
        .await;

    let quiet = BrokerId(3);
    let led_before = led_by(&metadata, "events", quiet);
    assert_eq!(led_before.len(), 1);
    heartbeats[&quiet].set(false);
    cluster.stop_node(first_leader).await;

    let second_leader = cluster.agreed_leader().await;
    assert_ne!(second_leader, first_leader);
    let metadata = cluster
        .converged("the new leader to fence broker 3", |m| {
            failed_over(m, "events", quiet, &led_before)
        })
        .await;
    // The others kept heartbeating, to whichever controller answered, and
    // the new leader's grace covered the election.
    assert!(!metadata.brokers[&BrokerId(1)].fenced);
    assert!(!metadata.brokers[&BrokerId(2)].fenced);

    heartbeats[&quiet].set(true);
    cluster
        .converged("broker 3 unfenced by the new leader", |m| {
            !m.brokers[&quiet].fenced
        })
        .await;
    drop(heartbeats);
    cluster.shutdown().await;
}
