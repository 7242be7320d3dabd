//! Segment files removed or cut shorter under a running broker: the broker
//! stays up, logs an error naming the partition, and answers
//! KAFKA_STORAGE_ERROR for that partition (Kafka's answer for a partition
//! on an offline log dir) while every other partition goes on; a restart
//! recovers what is left and brings the partition back.
//!
//! Segments are mmap'd: without the broker's check, the first read or
//! store past the end of a cut file would kill it with SIGBUS.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::BrokerProcess;
use common::wire::{self, Wire};
use kafka_protocol::messages::ApiVersionsRequest;
use kafka_protocol::records::RecordBatchDecoder;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Message, TopicPartitionList};
use rill_record::{BatchBuilder, NewRecord};

const WAIT: Duration = Duration::from_secs(30);
/// KAFKA_STORAGE_ERROR.
const STORAGE_ERROR: i16 = 56;

/// The active segment's `.log` (or `.index`, ...) of partition 0 of `topic`.
fn first_segment_file(broker: &BrokerProcess, topic: &str, suffix: &str) -> PathBuf {
    broker
        .data
        .join(format!("{topic}-0"))
        .join(format!("{:020}.{suffix}", 0))
}

fn cut_to(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Sends `value` to partition 0 of `topic`: its offset, or the error.
async fn send(producer: &FutureProducer, topic: &str, value: &str) -> Result<i64, KafkaError> {
    producer
        .send(
            FutureRecord::<(), str>::to(topic)
                .partition(0)
                .payload(value),
            Timeout::After(WAIT),
        )
        .await
        .map(|delivery| delivery.offset)
        .map_err(|(error, _)| error)
}

/// Values `prefix-0` .. of `count` records sent one by one.
async fn send_numbered(
    producer: &FutureProducer,
    topic: &str,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    let mut sent = Vec::new();
    for i in 0..count {
        let value = format!("{prefix}-{i:03}-{}", "v".repeat(100));
        send(producer, topic, &value).await.unwrap();
        sent.push(value);
    }
    sent
}

/// The values of the next `count` messages of partition 0 of `topic`,
/// read from its start.
fn consume(consumer: &BaseConsumer, topic: &str, count: usize) -> Vec<String> {
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::new();
    while out.len() < count {
        match consumer.poll(WAIT) {
            Some(Ok(message)) => {
                out.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap())
            }
            Some(Err(error)) => panic!("consume failed: {error}"),
            None => panic!("no message within {WAIT:?}; have {} of {count}", out.len()),
        }
    }
    out
}

/// Every value from `offset` of partition 0 of `topic`, by raw fetches,
/// or the first error code.
fn fetch_all(wire: &mut Wire, topic: &str, mut offset: i64) -> Result<Vec<String>, i16> {
    let mut out = Vec::new();
    loop {
        let (code, mut records) = wire::fetch_from(wire, topic, 0, offset);
        if code != 0 {
            return Err(code);
        }
        if records.is_empty() {
            return Ok(out);
        }
        while !records.is_empty() {
            let set = RecordBatchDecoder::decode(&mut records).unwrap();
            for record in set.records {
                if record.offset >= offset {
                    out.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
                }
                offset = offset.max(record.offset + 1);
            }
        }
    }
}

fn raw_produce(wire: &mut Wire, topic: &str, value: &str) -> (i16, i64) {
    let batch = BatchBuilder::new(0)
        .with_records(&[NewRecord::value(value.as_bytes())])
        .finish()
        .unwrap();
    wire::produce_batch(wire, topic, 0, batch)
}

/// What a user checks of a broker after a fault elsewhere: it answers
/// ApiVersions, and `topic` takes and serves records through librdkafka.
async fn assert_serving(broker: &BrokerProcess, wire: &mut Wire, topic: &str, already: usize) {
    let versions = wire.send(0, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    let producer = broker.producer(&[]);
    let offset = send(&producer, topic, "still-fine").await.unwrap();
    assert_eq!(offset, already as i64);
    let values = consume(&broker.consumer(&[]), topic, already + 1);
    assert_eq!(values.last().unwrap(), "still-fine");
}

/// Stops the broker (SIGTERM) and checks it exited by itself, not by a
/// signal: no SIGBUS, no abort.
fn stop_without_crash(broker: &mut BrokerProcess) {
    let status = broker.stop();
    assert!(
        status.code().is_some(),
        "the broker died by a signal: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_cut_under_the_broker_takes_its_partition_offline_and_a_restart_recovers_the_prefix()
 {
    let temp = tempfile::tempdir().unwrap();
    // Page-cache appends: small batches are stored through the map, the
    // path that a cut file would turn into a SIGBUS.
    let mut broker = BrokerProcess::start_in(
        &temp.path().join("data"),
        &["--set", "log.flush.policy=none"],
    );
    let mut wire = Wire::connect(&broker.bootstrap);
    wire::create_topic(&mut wire, "cut");
    wire::create_topic(&mut wire, "healthy");
    let producer = broker.producer(&[("retries", "0")]);
    let sent = send_numbered(&producer, "cut", "cut", 100).await;
    let healthy = send_numbered(&producer, "healthy", "healthy", 5).await;

    // Cut the active segment to half of its batches (the zeros after them
    // are space reserved ahead of the log).
    let log = first_segment_file(&broker, "cut", "log");
    let bytes = std::fs::read(&log).unwrap();
    let written = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    cut_to(&log, written as u64 / 2);

    // Fetches and produces on the partition answer KAFKA_STORAGE_ERROR:
    // from the part cut off, and from the part still there.
    assert_eq!(fetch_all(&mut wire, "cut", 90), Err(STORAGE_ERROR));
    assert_eq!(fetch_all(&mut wire, "cut", 0), Err(STORAGE_ERROR));
    assert_eq!(raw_produce(&mut wire, "cut", "refused").0, STORAGE_ERROR);
    assert_eq!(
        send(&producer, "cut", "refused").await.unwrap_err(),
        KafkaError::MessageProduction(RDKafkaErrorCode::KafkaStorageError)
    );
    let line = broker.wait_for_log(&["ERROR", "log offline", "cut-0"]);
    assert!(
        line.contains("truncated"),
        "the log says what happened: {line}"
    );

    // Everything else goes on.
    assert_serving(&broker, &mut wire, "healthy", healthy.len()).await;
    drop(producer);

    // The partition cannot close cleanly; the restart recovers it to the
    // batches left whole, and it takes records again at the next offset.
    stop_without_crash(&mut broker);
    broker.restart();
    let mut wire = Wire::connect(&broker.bootstrap);
    let left = fetch_all(&mut wire, "cut", 0).unwrap();
    assert!(
        !left.is_empty() && left.len() < sent.len(),
        "{} left",
        left.len()
    );
    assert_eq!(left[..], sent[..left.len()], "a prefix, undamaged");
    assert_eq!(
        raw_produce(&mut wire, "cut", "again"),
        (0, left.len() as i64),
        "no gap"
    );
    assert_eq!(
        fetch_all(&mut wire, "healthy", 0).unwrap().len(),
        healthy.len() + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_removed_under_the_broker_takes_its_partition_offline() {
    let temp = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start_in(&temp.path().join("data"), &[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    wire::create_topic(&mut wire, "removed");
    wire::create_topic(&mut wire, "healthy");
    let producer = broker.producer(&[]);
    send_numbered(&producer, "removed", "removed", 10).await;
    let healthy = send_numbered(&producer, "healthy", "healthy", 5).await;
    drop(producer);

    // The broker still has the file open, so its bytes are readable, but
    // whatever it appended now would vanish at the next restart.
    std::fs::remove_file(first_segment_file(&broker, "removed", "log")).unwrap();
    assert_eq!(raw_produce(&mut wire, "removed", "lost").0, STORAGE_ERROR);
    assert_eq!(fetch_all(&mut wire, "removed", 0), Err(STORAGE_ERROR));
    let line = broker.wait_for_log(&["ERROR", "log offline", "removed-0"]);
    assert!(line.contains("removed under the log"), "{line}");
    assert_serving(&broker, &mut wire, "healthy", healthy.len()).await;

    // Nothing of the partition is left: the restart logs that offsets
    // below its recovery point are missing and brings it back empty,
    // taking records again.
    stop_without_crash(&mut broker);
    broker.restart();
    let mut wire = Wire::connect(&broker.bootstrap);
    assert_eq!(raw_produce(&mut wire, "removed", "anew").0, 0);
    assert_eq!(fetch_all(&mut wire, "removed", 0).unwrap(), ["anew"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_cut_under_an_idle_partition_is_noticed_by_the_retention_pass() {
    let temp = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start_in(
        &temp.path().join("data"),
        &["--set", "log.retention.check.interval.ms=100"],
    );
    let mut wire = Wire::connect(&broker.bootstrap);
    wire::create_topic(&mut wire, "indexed");
    let producer = broker.producer(&[]);
    let sent = send_numbered(&producer, "indexed", "indexed", 50).await;
    drop(producer);

    // Nobody reads or writes the partition: the background pass notices.
    cut_to(&first_segment_file(&broker, "indexed", "index"), 0);
    let line = broker.wait_for_log(&["ERROR", "log offline", "indexed-0"]);
    assert!(line.contains(".index"), "the file is named: {line}");
    assert_eq!(fetch_all(&mut wire, "indexed", 0), Err(STORAGE_ERROR));

    // The log data was never touched: the restart rebuilds the index and
    // serves every record.
    stop_without_crash(&mut broker);
    broker.restart();
    let mut wire = Wire::connect(&broker.bootstrap);
    assert_eq!(fetch_all(&mut wire, "indexed", 0).unwrap(), sent);
}
