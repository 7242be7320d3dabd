//! A broker whose disk fills up or fails its syncs, as librdkafka and raw
//! Kafka requests see it. The broker runs in this process over a
//! `FaultyDisk` (rill-storage's fault-injecting disk), so no small file
//! system, mount or root is needed.
//!
//! librdkafka treats KAFKA_STORAGE_ERROR as retriable: with its default
//! retries a producer sees only MessageTimedOut once message.timeout.ms
//! passes. The producers here send no retries, so the broker's own answer
//! reaches the application; the raw requests show the error code itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // tests: a failure is a failed test

#[path = "../../../tests/common/wire.rs"]
mod wire;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiVersionsRequest;
use kafka_protocol::records::RecordBatchDecoder;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use rill_partition::ManagerError;
use rill_record::{BatchBuilder, NewRecord};
use rill_server::{BrokerConfig, Properties, RunError, Server};
use rill_storage::testing::FaultyDisk;
use tokio::sync::oneshot;
use wire::Wire;

const WAIT: Duration = Duration::from_secs(30);
const STORAGE_ERROR: i16 = 56;

/// A broker served by its own runtime on a thread of this process.
struct TestBroker {
    bootstrap: String,
    disk: Arc<FaultyDisk>,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<Result<(), RunError>>>,
}

impl TestBroker {
    /// Starts a broker on the data in `data` over `disk`, listening on
    /// an ephemeral port of 127.0.0.1.
    fn start(data: &Path, disk: Arc<FaultyDisk>) -> TestBroker {
        TestBroker::start_with(data, disk, &[])
    }

    /// [`TestBroker::start`] with more broker properties.
    fn start_with(data: &Path, disk: Arc<FaultyDisk>, extra: &[(&str, &str)]) -> TestBroker {
        let properties: Properties = [
            ("log.dirs", data.display().to_string()),
            ("listeners", "127.0.0.1:0".to_string()),
            ("offsets.topic.num.partitions", "1".to_string()),
        ]
        .into_iter()
        .chain(extra.iter().map(|&(k, v)| (k, v.to_string())))
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let config = BrokerConfig::from_properties(properties).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let (started, port) = std::sync::mpsc::channel();
        let broker_disk = Arc::clone(&disk);
        // The broker's runtime lives on its own thread, apart from the
        // test's.
        let serving = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let server = runtime.block_on(Server::bind(&config)).unwrap();
            started.send(server.local_addr().port()).unwrap();
            runtime.block_on(server.run_with_disk(config, broker_disk, async {
                // A dropped sender stops the broker too.
                let _ = stopped.await;
            }))
        });
        let port = port.recv().expect("the broker did not start");
        TestBroker {
            bootstrap: format!("127.0.0.1:{port}"),
            disk,
            stop: Some(stop),
            serving: Some(serving),
        }
    }

    /// Shuts the broker down as SIGTERM would; returns what the clean
    /// shutdown of the logs reported.
    fn stop(mut self) -> Result<(), RunError> {
        self.stop_serving()
    }

    fn stop_serving(&mut self) -> Result<(), RunError> {
        // The receiver is gone only if the server already stopped.
        let _ = self.stop.take().unwrap().send(());
        self.serving.take().unwrap().join().unwrap()
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("broker.address.family", "v4")
            .set("log_level", "3");
        config
    }

    /// acks=all, no batching, and no retries: a storage error reaches the
    /// application as the broker sent it.
    fn producer(&self) -> FutureProducer {
        let mut config = self.client_config();
        config
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("retries", "0")
            .set("message.timeout.ms", "20000");
        config.create().unwrap()
    }

    /// A consumer reading `topic`'s partition 0 from its start.
    fn consumer(&self, topic: &str) -> BaseConsumer {
        let mut config = self.client_config();
        config
            .set("group.id", "faulty-disk-tests")
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer = config.create().unwrap();
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
            .unwrap();
        consumer.assign(&assignment).unwrap();
        consumer
    }

    fn wire(&self) -> Wire {
        Wire::connect(&self.bootstrap)
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if self.stop.is_some() {
            // A test that failed mid-way: what the shutdown says no longer matters.
            let _ = self.stop_serving();
        }
    }
}

/// (offset, value) of the next `count` messages, failing after WAIT
/// without one.
fn consume(consumer: &BaseConsumer, count: usize) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    while out.len() < count {
        match consumer.poll(WAIT) {
            Some(Ok(message)) => out.push((
                message.offset(),
                String::from_utf8(message.payload().unwrap().to_vec()).unwrap(),
            )),
            Some(Err(error)) => panic!("consume failed: {error}"),
            None => panic!("no message within {WAIT:?}; have {} of {count}", out.len()),
        }
    }
    out
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

/// A batch of one record whose value is `name` padded with dots to
/// `bytes`.
fn padded_batch(name: &str, bytes: usize) -> (String, Vec<u8>) {
    let value = format!("{name}{}", ".".repeat(bytes.saturating_sub(name.len())));
    let batch = BatchBuilder::new(0)
        .with_records(&[NewRecord::value(value.as_bytes())])
        .finish()
        .unwrap();
    (value, batch)
}

/// The values of the record batches in `bytes`.
fn values_in(mut bytes: bytes::Bytes) -> Vec<String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        for record in set.records {
            out.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    out
}

fn storage_error() -> KafkaError {
    KafkaError::MessageProduction(RDKafkaErrorCode::KafkaStorageError)
}

fn data_dir(temp: &tempfile::TempDir) -> PathBuf {
    temp.path().join("data")
}

#[tokio::test]
async fn a_full_disk_refuses_produce_with_a_storage_error_serves_reads_and_resumes_when_space_returns()
 {
    let temp = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(&data_dir(&temp), Arc::new(FaultyDisk::default()));
    let mut wire = broker.wire();
    wire::create_topic(&mut wire, "full");
    let producer = broker.producer();
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let value = format!("before-{i}");
        let offset = send(&producer, "full", &value).await.unwrap();
        acknowledged.push((offset, value));
    }

    broker.disk.set_full(true);
    // Space already reserved ahead of the log takes records until it runs
    // out; the first produce that needs more is refused.
    let refused = loop {
        let (value, batch) = padded_batch(&format!("raw-{}", acknowledged.len()), 32 * 1024);
        let (code, base_offset) = wire::produce_batch(&mut wire, "full", 0, batch);
        if code != 0 {
            break code;
        }
        acknowledged.push((base_offset, value));
        assert!(acknowledged.len() < 1_000, "the disk never filled");
    };
    assert_eq!(refused, STORAGE_ERROR, "KAFKA_STORAGE_ERROR");
    assert_eq!(
        ResponseError::try_from_code(refused),
        Some(ResponseError::KafkaStorageError)
    );
    let (too_big, _) = padded_batch("rdkafka", 48 * 1024);
    assert_eq!(
        send(&producer, "full", &too_big).await.unwrap_err(),
        storage_error(),
        "librdkafka sees the broker's error"
    );

    // The broker is up: it answers ApiVersions and Metadata, and serves
    // every acknowledged record, intact, in order.
    let versions = wire.send(0, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    let metadata = producer
        .client()
        .fetch_metadata(Some("full"), Timeout::After(WAIT))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 1);
    let consumer = broker.consumer("full");
    assert_eq!(consume(&consumer, acknowledged.len()), acknowledged);

    // Space returns: produces succeed again, at the next offsets.
    broker.disk.set_full(false);
    for i in 0..5 {
        let value = format!("after-{i}");
        let offset = send(&producer, "full", &value).await.unwrap();
        assert_eq!(offset, acknowledged.len() as i64, "no gap, no reuse");
        acknowledged.push((offset, value));
    }
    assert_eq!(
        consume(&consumer, 5),
        acknowledged[acknowledged.len() - 5..]
    );
    let everything = broker.consumer("full");
    assert_eq!(consume(&everything, acknowledged.len()), acknowledged);
    drop((consumer, everything, producer));
    broker.stop().unwrap();

    // Nothing was damaged: a restart finds exactly what was acknowledged.
    let broker = TestBroker::start(&data_dir(&temp), Arc::new(FaultyDisk::default()));
    assert_eq!(
        consume(&broker.consumer("full"), acknowledged.len()),
        acknowledged
    );
    broker.stop().unwrap();
}

#[tokio::test]
async fn a_failed_sync_is_never_acknowledged_and_takes_that_partition_offline_for_writes() {
    let temp = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(&data_dir(&temp), Arc::new(FaultyDisk::default()));
    let mut wire = broker.wire();
    wire::create_topic(&mut wire, "synced"); // flush.policy=fsync, the default
    wire::create_topic(&mut wire, "bystander");
    let producer = broker.producer();
    let mut acknowledged = Vec::new();
    for i in 0..3 {
        let value = format!("safe-{i}");
        acknowledged.push((send(&producer, "synced", &value).await.unwrap(), value));
    }

    // fdatasync fails with EIO: the produce waiting on it is refused.
    broker.disk.set_failing_syncs(true);
    let (value, batch) = padded_batch("doomed", 10);
    let (code, _) = wire::produce_batch(&mut wire, "synced", 0, batch);
    assert_eq!(code, STORAGE_ERROR, "{value} was not acknowledged");
    assert_eq!(
        send(&producer, "synced", "refused").await.unwrap_err(),
        storage_error()
    );

    // Consumers still read what was acknowledged, and only that: the
    // unsynced record stays above the high watermark.
    let consumer = broker.consumer("synced");
    assert_eq!(consume(&consumer, 3), acknowledged);
    let (code, records) = wire::fetch_from(&mut wire, "synced", 0, 0);
    assert_eq!(code, 0);
    assert_eq!(values_in(records), ["safe-0", "safe-1", "safe-2"]);

    // The disk recovers, but the partition stays offline for writes until
    // a restart, since Linux may have dropped the pages that failed;
    // another partition, which had nothing to sync meanwhile, goes on.
    broker.disk.set_failing_syncs(false);
    let (_, batch) = padded_batch("still-refused", 10);
    let (code, _) = wire::produce_batch(&mut wire, "synced", 0, batch);
    assert_eq!(code, STORAGE_ERROR);
    assert_eq!(send(&producer, "bystander", "fine").await.unwrap(), 0);
    assert_eq!(
        consume(&broker.consumer("bystander"), 1),
        [(0, "fine".to_string())]
    );
    drop((consumer, producer));

    // The offline partition cannot be closed cleanly: the shutdown says
    // which, and the next start recovers it.
    match broker.stop() {
        Err(RunError::Shutdown(ManagerError::Partition {
            topic_partition, ..
        })) => assert_eq!(topic_partition.to_string(), "synced-0"),
        other => panic!("expected synced-0's failure, found {other:?}"),
    }
    let broker = TestBroker::start(&data_dir(&temp), Arc::new(FaultyDisk::default()));
    let producer = broker.producer();
    let offset = send(&producer, "synced", "again").await.unwrap();
    let consumed = consume(&broker.consumer("synced"), offset as usize + 1);
    assert_eq!(
        consumed[..3],
        acknowledged,
        "the acknowledged records, intact"
    );
    assert_eq!(consumed.last().unwrap(), &(offset, "again".to_string()));
    // What lies between was refused to its producer, yet it was written
    // and recovery found it whole (this disk only pretended the sync
    // failed): a refused produce may or may not survive, as in Kafka.
    assert!(
        consumed[3..consumed.len() - 1]
            .iter()
            .all(|(_, v)| v.starts_with("doomed")),
        "only the record whose sync failed; those refused offline were never written"
    );
    drop(producer);
    broker.stop().unwrap();
}

#[tokio::test]
async fn a_log_dir_whose_durability_cannot_be_established_refuses_produce_and_serves_fetch() {
    // statfs of the log dir fails: there is no telling whether a flush
    // round's syncfs would write anything, so nothing is acknowledged on
    // a guess. The broker starts (and says why at ERROR), every partition
    // there answers produce with KAFKA_STORAGE_ERROR and serves fetches.
    let temp = tempfile::tempdir().unwrap();
    let disk = Arc::new(FaultyDisk::default());
    disk.set_failing_probe(true);
    let broker = TestBroker::start(&data_dir(&temp), disk);
    let mut wire = broker.wire();
    wire::create_topic(&mut wire, "unprobed");
    let (_, batch) = padded_batch("refused", 10);
    let (code, _) = wire::produce_batch(&mut wire, "unprobed", 0, batch);
    assert_eq!(code, STORAGE_ERROR);
    let producer = broker.producer();
    assert_eq!(
        send(&producer, "unprobed", "refused").await.unwrap_err(),
        storage_error()
    );
    let (code, records) = wire::fetch_from(&mut wire, "unprobed", 0, 0);
    assert_eq!(code, 0, "fetches are served");
    assert!(values_in(records).is_empty());
    drop(producer);
    // Its partitions cannot close cleanly (they are offline): the error
    // says so, and is what this test expects.
    assert!(broker.stop().is_err());

    // A restart that can probe the file system takes writes again, at
    // offset 0: nothing refused was written.
    let broker = TestBroker::start(&data_dir(&temp), Arc::new(FaultyDisk::default()));
    let producer = broker.producer();
    assert_eq!(send(&producer, "unprobed", "accepted").await.unwrap(), 0);
    drop(producer);
    broker.stop().unwrap();
}

#[test]
fn a_disk_slower_than_its_producer_holds_the_producer_back() {
    // The extreme of a disk slower than its producers: one that completes
    // no sync at all. Under `fsync` (the default) no acknowledgement can
    // go out, so the broker must stop taking requests at its in-flight
    // bound rather than read (and queue) whatever the producer sends.
    let temp = tempfile::tempdir().unwrap();
    let disk = Arc::new(FaultyDisk::default());
    let inflight = 16;
    let broker = TestBroker::start_with(
        &data_dir(&temp),
        Arc::clone(&disk),
        &[("rill.connection.inflight.requests.max", "16")],
    );
    let mut wire = broker.wire();
    wire::create_topic(&mut wire, "slow");
    disk.hold_syncs(true);

    // 2,000 requests of 64 KiB: 128 MiB, far beyond the 16 in flight and
    // what the sockets between us can buffer.
    let requests = 2_000;
    let (_, batch) = padded_batch("held", 64 * 1024);
    let frames: Vec<u8> = (0..requests)
        .flat_map(|i| wire::request_frame(9, i, &wire::produce_request("slow", 0, batch.clone())))
        .collect();
    let anon_before = anon_rss_bytes();
    let mut stream = std::net::TcpStream::connect(&broker.bootstrap).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut written = 0;
    while written < frames.len() {
        match std::io::Write::write(&mut stream, &frames[written..]) {
            Ok(n) => written += n,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(error) => panic!("writing the requests: {error}"),
        }
    }
    let frame_bytes = frames.len() / requests as usize;
    eprintln!(
        "faulty disk: with syncs held the broker took {} of {requests} requests ({written} of {} bytes; {inflight} in flight, the rest in socket buffers) before the producer blocked",
        written / frame_bytes,
        frames.len()
    );
    assert!(
        written < frames.len() / 2,
        "the broker took {written} of {} bytes with no sync completing",
        frames.len()
    );
    // Meanwhile another client is answered, and this process (broker and
    // clients, the 128 MiB of requests built before) holds no more memory
    // than the requests in flight take.
    let mut other = broker.wire();
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let sent = std::time::Instant::now();
        other.send(3, &ApiVersionsRequest::default());
        slowest = slowest.max(sent.elapsed());
    }
    let anon_growth = anon_rss_bytes().saturating_sub(anon_before);
    eprintln!(
        "faulty disk: while the producer was held back, 50 ApiVersions round trips on another connection took at most {slowest:?}; anonymous memory grew {} MiB",
        anon_growth >> 20
    );
    assert!(
        anon_growth < 64 << 20,
        "anonymous memory grew {anon_growth} bytes"
    );

    // The disk catches up: the rest goes in, and every request is
    // answered, in order, at consecutive offsets.
    disk.hold_syncs(false);
    stream.set_write_timeout(None).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let rest = frames[written..].to_vec();
    let sending =
        std::thread::spawn(move || std::io::Write::write_all(&mut writer, &rest).unwrap());
    for i in 0..requests {
        let response =
            wire::read_response::<kafka_protocol::messages::ProduceRequest>(&mut stream, 9, i);
        let answer = &response.responses[0].partition_responses[0];
        assert_eq!((answer.error_code, answer.base_offset), (0, i as i64));
    }
    sending.join().unwrap();
    broker.stop().unwrap();
}

/// This process's resident anonymous memory, from /proc/self/status.
fn anon_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("RssAnon:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}
