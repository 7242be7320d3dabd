//! Upgrade in place: a data directory written by a single broker of the
//! release before one path (tests/fixtures/single-broker-0.1.tar.gz, made
//! by make-single-broker-0.1.sh with commit 73e636a: its metadata in
//! rill-metadata.json) opens under this broker with everything intact —
//! topics with their ids and configs, records, committed offsets, an
//! idempotent producer's state, a broker config set at run time, the
//! cluster id and the producer ids handed out — imported into the
//! metadata quorum once, and still there after a restart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::BrokerProcess;
use common::wire::{Wire, produce_batch};
use kafka_protocol::messages::{DescribeClusterRequest, InitProducerIdRequest, MetadataRequest};
use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(30);

/// Produces one keyed record (`ledger` is compacted) as producer 0,
/// epoch 0, at `sequence`; returns (error code, base offset).
fn produce_ledger(wire: &mut Wire, sequence: i32, value: &str) -> (i16, i64) {
    let batch = rill_record::BatchBuilder::new(1_000)
        .producer(0, 0, sequence)
        .with_records(&[rill_record::NewRecord::key_value(
            b"k",
            Some(value.as_bytes()),
        )])
        .finish()
        .unwrap();
    produce_batch(wire, "ledger", 0, batch)
}

/// The fixture's data directory, unpacked under `into`.
fn unpack(into: &Path) -> std::path::PathBuf {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/single-broker-0.1.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(status.success(), "unpacking {}", fixture.display());
    into.join("data")
}

/// What the old release's metadata file says.
struct Expected {
    cluster_id: String,
    topic_ids: BTreeMap<String, String>,
}

fn expected(data: &Path) -> Expected {
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("rill-metadata.json")).unwrap()).unwrap();
    let topic_ids = file["topics"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, topic)| (name.clone(), topic["id"].as_str().unwrap().to_string()))
        .collect();
    Expected {
        cluster_id: file["cluster_id"].as_str().unwrap().to_string(),
        topic_ids,
    }
}

fn values(broker: &BrokerProcess, topic: &str, partition: i32, count: usize) -> Vec<String> {
    let consumer = broker.consumer(&[]);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::new();
    while out.len() < count {
        match consumer.poll(WAIT) {
            Some(Ok(m)) => out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap()),
            other => panic!("reading {topic}-{partition}: {other:?}"),
        }
    }
    out
}

/// Everything the old broker had, as clients see it.
async fn assert_intact(broker: &BrokerProcess, expected: &Expected) {
    let mut wire = Wire::connect(&broker.bootstrap);
    let metadata = wire.send(12, &MetadataRequest::default().with_topics(None));
    let ids: BTreeMap<String, String> = metadata
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().to_string(), t.topic_id.to_string()))
        .collect();
    assert_eq!(ids, expected.topic_ids, "the topics, by their old ids");
    let orders = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "orders"))
        .unwrap();
    assert_eq!(orders.partitions.len(), 2);
    assert!(orders.partitions.iter().all(|p| p.leader_id.0 == 1));
    let cluster = wire.send(1, &DescribeClusterRequest::default());
    assert_eq!(cluster.cluster_id.as_str(), expected.cluster_id);

    assert_eq!(
        values(broker, "orders", 0, 8),
        ["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"]
    );
    assert_eq!(values(broker, "orders", 1, 2), ["v8", "v9"]);

    let admin = broker.admin();
    let options = AdminOptions::new().operation_timeout(Some(WAIT));
    let described = admin
        .describe_configs(
            &[
                ResourceSpecifier::Topic("orders"),
                ResourceSpecifier::Broker(1),
            ],
            &options,
        )
        .await
        .unwrap();
    let value = |resource: usize, name: &str| {
        described[resource]
            .as_ref()
            .unwrap()
            .entries
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(value(0, "retention.ms").as_deref(), Some("86400000"));
    assert_eq!(
        value(1, "log.retention.bytes").as_deref(),
        Some("1073741824"),
        "the broker config set at run time"
    );

    let member = broker.consumer(&[("group.id", "billing")]);
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition("orders", 0);
    wanted.add_partition("orders", 1);
    let committed = member.committed_offsets(wanted, WAIT).unwrap();
    let offset = |p| committed.find_partition("orders", p).unwrap().offset();
    assert_eq!(
        (offset(0), offset(1)),
        (Offset::Offset(3), Offset::Offset(1))
    );
    // rust-rdkafka's Drop of a group consumer can hang (tests/groups.rs).
    std::thread::spawn(move || drop(member));

    // Producer ids the old broker reserved are never handed out again.
    let id = wire.send(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(-1),
    );
    assert_eq!(id.error_code, 0);
    assert!(id.producer_id.0 >= 1000, "producer id {}", id.producer_id.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_brokers_data_directory_opens_with_everything_intact() {
    let temp = tempfile::tempdir().unwrap();
    let data = unpack(temp.path());
    let expected = expected(&data);
    let mut broker = BrokerProcess::start_in(&data, &[]);
    assert!(!data.join("rill-metadata.json").exists(), "imported once");
    assert!(data.join("rill-metadata.json.migrated").exists());
    assert_intact(&broker, &expected).await;

    // The idempotent producer of `ledger` (id 0, epoch 0) wrote sequences
    // 0..=2: its state came over, so sequence 3 is next — which a broker
    // that did not know it would refuse.
    let mut wire = Wire::connect(&broker.bootstrap);
    assert_eq!(produce_ledger(&mut wire, 3, "x"), (0, 3));
    assert_eq!(produce_ledger(&mut wire, 3, "x"), (0, 3), "a retry");

    // From now on the quorum holds it all: a restart changes nothing.
    assert!(broker.stop().success(), "a clean shutdown");
    broker.restart();
    assert_intact(&broker, &expected).await;
    let mut wire = Wire::connect(&broker.bootstrap);
    assert_eq!(produce_ledger(&mut wire, 4, "y"), (0, 4));
}
