//! Answers that must match Kafka's because real clients act on them: a
//! consumer whose offset is out of range resets by `auto.offset.reset`
//! (earliest and latest, assigned or in a group, by Fetch with and
//! without topic ids) instead of spinning on an answer it cannot parse.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::BrokerProcess;
use common::cluster::wait_until;
use common::wire::{Wire, create_topic, fetch_request, produce};
use kafka_protocol::messages::MetadataRequest;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(30);
const OFFSET_OUT_OF_RANGE: i16 = 1;

async fn produce_values(broker: &BrokerProcess, topic: &str, values: std::ops::Range<i32>) {
    let producer = broker.producer(&[]);
    for i in values {
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(0)
                    .payload(&format!("v{i}")),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
    }
}

/// The next message's (offset, value), failing after WAIT without one.
fn next(consumer: &BaseConsumer) -> (i64, String) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
                return (message.offset(), value);
            }
            // librdkafka reports the reset as a consumer error
            // (Broker: Offset out of range); it then resets and goes on.
            Some(Err(_)) | None => {}
        }
    }
    panic!("no message within {WAIT:?}");
}

fn assign_at(consumer: &BaseConsumer, topic: &str, offset: i64) {
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    consumer.assign(&assignment).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assigned_offset_past_the_end_resets_to_earliest_or_latest() {
    let broker = BrokerProcess::start(&[]);
    produce_values(&broker, "past-end", 0..10).await;

    let earliest = broker.consumer(&[("auto.offset.reset", "earliest")]);
    assign_at(&earliest, "past-end", 1000);
    assert_eq!(next(&earliest), (0, "v0".to_string()));

    let latest = broker.consumer(&[("auto.offset.reset", "latest")]);
    assign_at(&latest, "past-end", 1000);
    // The reset to the end happens on the consumer's own schedule: keep
    // producing until it has reset and sees something, which must then
    // be a record written after the reset, never one of the first ten.
    let producer = broker.producer(&[]);
    let deadline = Instant::now() + WAIT;
    let seen = loop {
        assert!(Instant::now() < deadline, "the latest consumer saw nothing");
        producer
            .send(
                FutureRecord::<(), _>::to("past-end")
                    .partition(0)
                    .payload("new"),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
        if let Some(Ok(message)) = latest.poll(Duration::from_millis(200)) {
            break message.offset();
        }
    };
    assert!(seen >= 10, "a latest reset read offset {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_committed_offset_was_deleted_resumes_at_the_log_start() {
    let broker = BrokerProcess::start(&["--set", "group.initial.rebalance.delay.ms=0"]);
    produce_values(&broker, "deleted", 0..10).await;
    let group = [("group.id", "resumers"), ("auto.offset.reset", "earliest")];

    // The group commits offset 3, then records before 8 are deleted.
    let committer = broker.consumer(&group);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("deleted", 0, Offset::Offset(3))
        .unwrap();
    committer.commit(&commit, CommitMode::Sync).unwrap();
    drop(committer);
    let mut delete = TopicPartitionList::new();
    delete
        .add_partition_offset("deleted", 0, Offset::Offset(8))
        .unwrap();
    let deleted = broker
        .admin()
        .delete_records(&delete, &Default::default())
        .await
        .unwrap();
    assert!(deleted.elements()[0].error().is_ok());

    let member = broker.consumer(&group);
    member.subscribe(&["deleted"]).unwrap();
    assert_eq!(next(&member), (8, "v8".to_string()));
    // rust-rdkafka's Drop of a group consumer can hang (tests/groups.rs).
    std::thread::spawn(move || drop(member));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_behind_a_retention_pass_resumes_at_the_log_start() {
    let broker = BrokerProcess::start(&["--set", "log.retention.check.interval.ms=100"]);
    // 1 KiB segments: every record rolls one, so retention can remove them.
    let admin = broker.admin();
    let topic =
        rdkafka::admin::NewTopic::new("retained", 1, rdkafka::admin::TopicReplication::Fixed(1))
            .set("segment.bytes", "1024")
            .set("retention.bytes", "1024");
    admin
        .create_topics([&topic], &Default::default())
        .await
        .unwrap();
    let producer = broker.producer(&[]);
    for i in 0..10 {
        producer
            .send(
                FutureRecord::<(), _>::to("retained")
                    .partition(0)
                    .payload(&"x".repeat(900 + i)),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
    }
    let probe = broker.consumer(&[]);
    let log_start = || {
        probe
            .fetch_watermarks("retained", 0, Duration::from_secs(5))
            .unwrap()
            .0
    };
    wait_until(WAIT, "a retention pass", || log_start() > 0);
    let log_start = log_start();
    let consumer = broker.consumer(&[("auto.offset.reset", "earliest")]);
    assign_at(&consumer, "retained", 0);
    let (offset, _) = next(&consumer);
    assert!(offset >= log_start && offset > 0, "read offset {offset}");
}

/// Every Fetch version, by name (v4–12) and by topic id (v13+), answers
/// an offset out of range with the error and empty records — never null
/// records, which librdkafka cannot parse.
#[test]
fn fetch_errors_carry_empty_records_in_every_version() {
    let broker = BrokerProcess::start(&[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    create_topic(&mut wire, "errors");
    assert_eq!(produce(&mut wire, "errors", -1, -1, -1, &["a", "b"]).0, 0);
    let metadata = wire.send(12, &MetadataRequest::default().with_topics(None));
    let id = metadata.topics[0].topic_id;
    for version in 4..=17 {
        let mut request = fetch_request("errors", 0, 1000, 0, 0);
        if version >= 13 {
            request.topics[0].topic_id = id;
        }
        let response = wire.send(version, &request);
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, OFFSET_OUT_OF_RANGE, "v{version}");
        assert_eq!(
            partition.records.as_ref().map(|r| r.len()),
            Some(0),
            "v{version}: records must be empty, not null"
        );
    }
    // An unknown partition too.
    let response = wire.send(11, &fetch_request("errors", 7, 0, 0, 0));
    let partition = &response.responses[0].partitions[0];
    assert_ne!(partition.error_code, 0);
    assert_eq!(partition.records.as_ref().map(|r| r.len()), Some(0));
}
