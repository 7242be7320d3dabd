//! A single broker grows into a cluster: started alone with data, it is
//! joined by two more nodes (`--join`, KIP-853's AddRaftVoter through its
//! Kafka listener), its topics are reassigned to three replicas with
//! `rill topic reassign`, and then it is killed: the other two elect a
//! controller and leaders, and nothing acknowledged — records, committed
//! offsets — is lost. The dead first node is then removed from the voters
//! (`rill cluster remove-voter`) and the two go on changing metadata.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::cluster::{TEST_SETTINGS, free_port, partition_view, wait_until};
use common::{BrokerProcess, rill_binary};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(60);
const PARTITIONS: i32 = 3;
/// Offsets partitions: few, so reassigning them all stays quick.
const OFFSETS_PARTITIONS: &str = "offsets.topic.num.partitions=2";

fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("topic.metadata.refresh.interval.ms", "500")
        .set("log_level", "3");
    config
}

/// Sends records `from..to` (value = its number) to partition `n % 3`
/// with an idempotent acks=all producer; returns them as acknowledged.
async fn produce(bootstrap: &str, from: u32, to: u32) -> Vec<(i32, i64, String)> {
    let producer: FutureProducer = config(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut acked = Vec::new();
    for n in from..to {
        let value = n.to_string();
        let partition = i32::try_from(n).unwrap() % PARTITIONS;
        let delivery = producer
            .send(
                FutureRecord::<(), _>::to("orders")
                    .partition(partition)
                    .payload(&value),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
        acked.push((delivery.partition, delivery.offset, value));
    }
    acked
}

/// Every record of `orders`, per partition in offset order, read through
/// `bootstrap`.
fn read_all(bootstrap: &str, expected: usize) -> Vec<(i32, i64, String)> {
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", "readers")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset("orders", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut read = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while read.len() < expected && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            read.push((m.partition(), m.offset(), value));
        }
    }
    read.sort();
    read
}

fn rill(args: &[&str]) {
    let out = Command::new(rill_binary()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "rill {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start(id: i32, dir: &std::path::Path, listen: &str, join: Option<&str>) -> BrokerProcess {
    let node_id = id.to_string();
    let mut args = vec!["--node-id", node_id.as_str(), "--set", OFFSETS_PARTITIONS];
    if let Some(join) = join {
        args.extend(["--join", join]);
    }
    args.extend_from_slice(TEST_SETTINGS);
    BrokerProcess::start_on(&dir.join(format!("node-{id}")), &args, listen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_broker_grows_into_a_cluster_and_loses_its_first_node() {
    let temp = tempfile::tempdir().unwrap();
    let listens: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let first = listens[0].as_str();

    // One broker, alone, with data and a group's commits.
    let mut node1 = start(1, temp.path(), first, None);
    let admin: AdminClient<DefaultClientContext> = config(first).create().unwrap();
    let options = AdminOptions::new().operation_timeout(Some(WAIT));
    let created = admin
        .create_topics(
            [&NewTopic::new(
                "orders",
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &options,
        )
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let mut acked = produce(first, 0, 300).await;
    let committer: BaseConsumer = config(first)
        .set("group.id", "billing")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut commit = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        commit
            .add_partition_offset("orders", p, Offset::Offset(40 + i64::from(p)))
            .unwrap();
    }
    committer.commit(&commit, CommitMode::Sync).unwrap();
    drop(committer);

    // Two nodes join it.
    let node2 = start(2, temp.path(), &listens[1], Some(first));
    let node3 = start(3, temp.path(), &listens[2], Some(first));
    wait_until(WAIT, "three brokers registered", || {
        let consumer: BaseConsumer = config(first).create().unwrap();
        consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .is_ok_and(|m| m.brokers().len() == 3)
    });

    // Every partition to three replicas, and in sync.
    let bootstrap = listens.join(",");
    let mut moved = Vec::new();
    for p in 0..PARTITIONS {
        moved.push(("orders", p));
    }
    for p in 0..2 {
        moved.push(("__consumer_offsets", p));
    }
    for (topic, p) in &moved {
        let partition = p.to_string();
        rill(&[
            "topic",
            "reassign",
            topic,
            "--partition",
            &partition,
            "--replicas",
            "1,2,3",
            "--bootstrap",
            &bootstrap,
        ]);
    }
    for (topic, p) in &moved {
        wait_until(WAIT, "the reassignment to complete", || {
            partition_view(first, topic, *p).is_some_and(|(_, isr)| isr == [1, 2, 3])
        });
    }
    acked.extend(produce(&bootstrap, 300, 450).await);

    // The first node dies: the others take over with everything.
    node1.kill();
    let survivors = format!("{},{}", listens[1], listens[2]);
    for (topic, p) in &moved {
        wait_until(WAIT, "a new leader", || {
            partition_view(&survivors, topic, *p)
                .is_some_and(|(leader, _)| leader == 2 || leader == 3)
        });
    }
    acked.extend(produce(&survivors, 450, 500).await);
    acked.sort();
    assert_eq!(
        read_all(&survivors, acked.len()),
        acked,
        "every acknowledged record, once, in place"
    );
    let member: BaseConsumer = config(&survivors)
        .set("group.id", "billing")
        .create()
        .unwrap();
    let mut wanted = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        wanted.add_partition("orders", p);
    }
    let committed = member.committed_offsets(wanted, WAIT).unwrap();
    for p in 0..PARTITIONS {
        assert_eq!(
            committed.find_partition("orders", p).unwrap().offset(),
            Offset::Offset(40 + i64::from(p))
        );
    }
    // rust-rdkafka's Drop of a group consumer can hang (tests/groups.rs).
    std::thread::spawn(move || drop(member));

    // The dead node leaves the quorum; the two change metadata alone.
    rill(&["cluster", "remove-voter", "1", "--bootstrap", &listens[1]]);
    let admin: AdminClient<DefaultClientContext> = config(&survivors).create().unwrap();
    let created = admin
        .create_topics(
            [&NewTopic::new("after", 2, TopicReplication::Fixed(2))],
            &options,
        )
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    drop((node2, node3));
}
