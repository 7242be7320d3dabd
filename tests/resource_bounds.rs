//! Resource bounds under load, against the real broker: ten thousand idle
//! or half-sent connections, consumers that never read their fetch
//! responses, producers flooding it, and clients that send a byte at a
//! time. In each case the broker's memory stays bounded (each prints its
//! peak RSS), it holds clients back or closes them instead of queueing
//! without end, and a well-behaved client on its own connection keeps
//! being answered (each prints that client's round-trip latency).
//! docs/reliability.md quotes the figures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::BrokerProcess;
use common::raw::{
    WAIT, anon_rss_bytes, api_versions, assert_alive, assert_serving, connect, open_files_limit,
    peak_rss_bytes, request_frame, rss_bytes,
};
use common::wire::{
    Wire, create_topic, create_topic_with, fetch_request, produce, wait_for_group_coordinator,
};
use kafka_protocol::messages::ApiVersionsRequest;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// How much the broker's anonymous memory (heap, stacks) may grow in a
/// case: far below what queueing the case's requests or responses would
/// take (gigabytes), and above what its connections need.
const ANON_GROWTH_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// A well-behaved client: ApiVersions round trips on its own connection,
/// one after another, timed, until stopped.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Duration>>,
}

impl Prober {
    fn start(broker: &BrokerProcess) -> Prober {
        let mut stream = connect(broker);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut round_trips = Vec::new();
                let mut correlation_id = 0;
                while !stop.load(Ordering::Relaxed) {
                    correlation_id += 1;
                    let sent = Instant::now();
                    api_versions(&mut stream, correlation_id);
                    round_trips.push(sent.elapsed());
                    // One probe every 10 ms: a client's pace, not a wait.
                    std::thread::sleep(Duration::from_millis(10));
                }
                round_trips
            })
        };
        Prober { stop, thread }
    }

    /// Stops probing; asserts it was answered and prints its latency.
    fn finish(self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let mut round_trips = self.thread.join().unwrap();
        assert!(
            !round_trips.is_empty(),
            "{what}: the well-behaved client got no answer"
        );
        round_trips.sort();
        let at = |q: f64| round_trips[((round_trips.len() - 1) as f64 * q) as usize];
        eprintln!(
            "resource bounds: {what}: well-behaved client {} round trips, p50 {:?} p99 {:?} max {:?}",
            round_trips.len(),
            at(0.5),
            at(0.99),
            round_trips[round_trips.len() - 1]
        );
    }
}

/// Prints the broker's memory and asserts its anonymous part grew less
/// than [`ANON_GROWTH_BYTES_MAX`] since `anon_before`.
fn report_memory(broker: &BrokerProcess, anon_before: u64, what: &str) {
    let anon = anon_rss_bytes(broker);
    eprintln!(
        "resource bounds: {what}: broker peak RSS {} MiB, RSS now {} MiB, anonymous {} -> {} MiB",
        peak_rss_bytes(broker) >> 20,
        rss_bytes(broker) >> 20,
        anon_before >> 20,
        anon >> 20
    );
    assert!(
        anon < anon_before + ANON_GROWTH_BYTES_MAX,
        "{what}: the broker's anonymous memory grew from {anon_before} to {anon} bytes"
    );
}

/// Open descriptors of the broker process: one per connection it holds.
fn broker_descriptors(broker: &BrokerProcess) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", broker.pid()))
        .unwrap()
        .count()
}

/// Waits until the broker holds at most `max` descriptors.
fn wait_for_descriptors_at_most(
    broker: &BrokerProcess,
    max: usize,
    deadline: Duration,
    what: &str,
) {
    let until = Instant::now() + deadline;
    while broker_descriptors(broker) > max {
        assert!(
            Instant::now() < until,
            "{what}: the broker still holds {} descriptors after {deadline:?} (expected at most {max})",
            broker_descriptors(broker)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Raises this process's soft limit on open files to its hard limit (the
/// broker inherits it); returns the soft limit now.
fn raise_open_files_limit() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if let Err(error) = setrlimit(Resource::Nofile, raised) {
        eprintln!("resource bounds: cannot raise the open files limit: {error}");
    }
    open_files_limit()
}

#[test]
fn ten_thousand_idle_and_half_sent_connections() {
    // The test holds one descriptor per connection and the broker another.
    let connections = 10_000.min(raise_open_files_limit().saturating_sub(512));
    assert!(
        connections >= 500,
        "the open files limit is too low for this test"
    );
    let broker = BrokerProcess::start(&[]);
    assert_serving(&broker);
    let anon_before = anon_rss_bytes(&broker);
    let prober = Prober::start(&broker);

    let deadline = Instant::now() + Duration::from_secs(60);
    // Half send a frame's length (1 MiB) and the start of a header, then
    // nothing more; the other half send nothing at all.
    let mut partial = (1i32 << 20).to_be_bytes().to_vec();
    partial.extend_from_slice(&[0, 3, 0, 12, 0, 0]);
    let mut crowd = Vec::with_capacity(connections);
    for i in 0..connections {
        assert!(
            Instant::now() < deadline,
            "{i} connections took over 60 s to open"
        );
        let mut stream = connect(&broker);
        if i % 2 == 0 {
            stream.write_all(&partial).unwrap();
        }
        crowd.push(stream);
        if i % 1_000 == 0 {
            assert_serving(&broker);
        }
    }
    // The crowd is in once the broker holds a descriptor for each.
    let until = Instant::now() + WAIT;
    while broker_descriptors(&broker) < connections {
        assert!(
            Instant::now() < until,
            "the broker did not accept all {connections} connections"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_serving(&broker);
    let what = format!("{connections} idle or half-sent connections");
    report_memory(&broker, anon_before, &what);
    prober.finish(&what);
    drop(crowd);
    assert_serving(&broker);
    assert_alive(&broker);
}

#[test]
fn consumers_that_never_read_their_fetch_responses() {
    let idle_ms = 3_000;
    let broker = BrokerProcess::start(&["--set", &format!("connections.max.idle.ms={idle_ms}")]);
    let mut wire = Wire::connect(&broker.bootstrap);
    create_topic(&mut wire, "replay");
    // 32 MiB: 32 batches of 1,000 records of 1 KiB.
    let value = "v".repeat(1024);
    let values: Vec<&str> = (0..1_000).map(|_| value.as_str()).collect();
    for _ in 0..32 {
        let (error, _) = produce(&mut wire, "replay", -1, -1, -1, &values);
        assert_eq!(error, 0);
    }
    let records = 32_000;
    // The well-behaved consumer below has a group: its offsets topic's
    // files exist before the count starts.
    wait_for_group_coordinator(&mut wire, "rill-tests");
    let descriptors_before = broker_descriptors(&broker);
    let anon_before = anon_rss_bytes(&broker);
    let prober = Prober::start(&broker);

    // Each slow consumer pipelines more fetches than the broker takes in
    // at once (rill.connection.inflight.requests.max, 1,024), each answered
    // with 1 MiB, and reads nothing: 2 GiB of responses per connection if
    // the broker queued them all.
    let request = request_frame(11, 1, &fetch_request("replay", 0, 0, 0, 1));
    let burst = request.repeat(2_000);
    let slow: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut stream = connect(&broker);
            stream.write_all(&burst).unwrap();
            stream
        })
        .collect();

    // A well-behaved consumer reads the whole topic meanwhile.
    let consumer = broker.consumer(&[]);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("replay", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let read = consume_all(&consumer, records);
    assert_eq!(read, records, "the well-behaved consumer read the topic");
    report_memory(
        &broker,
        anon_before,
        "16 consumers that never read 2,000 pipelined fetches each",
    );
    prober.finish("16 consumers that never read their fetch responses");

    // A response that cannot be written for connections.max.idle.ms closes
    // its connection: the broker lets go of all of them.
    wait_for_descriptors_at_most(
        &broker,
        descriptors_before + 2, // the prober's and the consumer's
        WAIT + Duration::from_millis(idle_ms),
        "16 consumers that never read",
    );
    drop(slow);
    assert_serving(&broker);
    assert_alive(&broker);
}

fn consume_all(consumer: &BaseConsumer, records: usize) -> usize {
    let mut read = 0;
    let until = Instant::now() + Duration::from_secs(60);
    while read < records {
        assert!(
            Instant::now() < until,
            "read {read} of {records} records in 60 s"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            assert_eq!(message.payload().map(<[u8]>::len), Some(1024));
            read += 1;
        }
    }
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_flooding_the_broker_are_held_back() {
    let broker = BrokerProcess::start(&[]);
    {
        let mut wire = Wire::connect(&broker.bootstrap);
        create_topic(&mut wire, "flood");
    }
    let anon_before = anon_rss_bytes(&broker);
    let prober = Prober::start(&broker);
    // Four producers with acks=all under the default `fsync` policy send
    // as fast as librdkafka lets them: 512 MiB in all, with a million
    // messages each allowed in flight, so only the broker can hold them
    // back.
    let value = vec![b'f'; 1024];
    let per_producer = 128 * 1024;
    let mut floods = Vec::new();
    for _ in 0..4 {
        let producer: FutureProducer = broker.producer(&[
            ("acks", "all"),
            ("linger.ms", "5"),
            ("queue.buffering.max.messages", "1000000"),
            ("queue.buffering.max.kbytes", "2097151"),
        ]);
        let value = value.clone();
        floods.push(tokio::spawn(async move {
            let mut deliveries = Vec::with_capacity(per_producer);
            for _ in 0..per_producer {
                let record = FutureRecord::<(), _>::to("flood").payload(&value);
                deliveries.push(producer.send_result(record).unwrap());
            }
            let mut acked = 0;
            for delivery in deliveries {
                if delivery.await.unwrap().is_ok() {
                    acked += 1;
                }
            }
            acked
        }));
    }
    let mut acked = 0;
    for flood in floods {
        acked += flood.await.unwrap();
    }
    assert_eq!(
        acked,
        4 * per_producer,
        "every flooded message was acknowledged"
    );
    report_memory(
        &broker,
        anon_before,
        "4 producers flooding 512 MiB at acks=all",
    );
    prober.finish("4 producers flooding 512 MiB at acks=all");
    assert_alive(&broker);
}

#[test]
fn clients_sending_a_byte_at_a_time_are_closed_by_the_idle_timeout() {
    let idle_ms = 2_000;
    let broker = BrokerProcess::start(&["--set", &format!("connections.max.idle.ms={idle_ms}")]);
    let descriptors_before = broker_descriptors(&broker);
    let anon_before = anon_rss_bytes(&broker);
    let prober = Prober::start(&broker);
    // A whole ApiVersions request, sent a byte every 250 ms: more than
    // connections.max.idle.ms for the frame, which must arrive within it.
    let request = request_frame(3, 1, &ApiVersionsRequest::default());
    let mut slow: Vec<Option<(TcpStream, Instant)>> = (0..500)
        .map(|_| Some((connect(&broker), Instant::now())))
        .collect();
    let mut closed_after = Vec::new();
    for byte in &request {
        for slot in &mut slow {
            let Some((stream, connected)) = slot else {
                continue;
            };
            match stream.write(std::slice::from_ref(byte)) {
                Ok(_) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
                    ) =>
                {
                    closed_after.push(connected.elapsed());
                    *slot = None;
                }
                Err(error) => panic!("unexpected write error: {error}"),
            }
        }
        if slow.iter().all(Option::is_none) {
            break;
        }
        // Pacing the slow clients: a byte every 250 ms.
        std::thread::sleep(Duration::from_millis(250));
    }
    // Every one was closed before its request was whole: the frame, not
    // each byte, must arrive within connections.max.idle.ms. (A write
    // after the close is what fails; the first one only draws the reset.)
    let whole_request = Duration::from_millis(250) * request.len() as u32;
    assert_eq!(
        closed_after.len(),
        500,
        "byte-a-time clients still open after sending their whole {}-byte request",
        request.len()
    );
    let last_close = closed_after.iter().max().copied().unwrap_or_default();
    assert!(
        last_close < whole_request,
        "the last close came after {last_close:?}"
    );
    wait_for_descriptors_at_most(
        &broker,
        descriptors_before + 1,
        WAIT,
        "500 byte-a-time clients",
    );
    report_memory(
        &broker,
        anon_before,
        "500 clients sending a byte every 250 ms",
    );
    prober.finish("500 clients sending a byte every 250 ms");
    eprintln!(
        "resource bounds: 500 byte-a-time clients closed {:?} to {last_close:?} after connecting ({}-byte request, connections.max.idle.ms={idle_ms})",
        closed_after.iter().min().copied().unwrap_or_default(),
        request.len()
    );
    assert_alive(&broker);
}

#[test]
fn a_broker_out_of_descriptors_says_so_once_and_takes_connections_again() {
    // 128 descriptors: the broker needs a few dozen of its own.
    let temp = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_wrapped(
        &["prlimit", "--nofile=128:128"],
        &temp.path().join("data"),
        &[],
        "127.0.0.1:0",
    );
    // More connections than it has descriptors: the kernel completes
    // them (the listen backlog); the broker cannot accept them all.
    let held: Vec<TcpStream> = (0..200).map(|_| connect(&broker)).collect();
    broker.wait_for_log(&["WARN", "cannot accept connections"]);

    // Every connection gone, the broker takes new ones again and says so
    // once, having warned once however many accepts failed.
    drop(held);
    let mut warnings = 0;
    loop {
        let line = broker.wait_for_log(&[]);
        if line.contains("cannot accept connections") {
            warnings += 1;
        }
        if line.contains("taking new connections again") {
            break;
        }
    }
    assert_eq!(warnings, 0, "the spell was said once, at its start");
    assert_serving(&broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_with_more_files_than_descriptors_and_maps_take_writes_reads_and_a_restart() {
    // 256 descriptors, half of them for segment files (the default): 400
    // partitions have 1,200 files, which could never be open at once. And
    // 64 maps: reading them all maps 800 (each .log and .index).
    let partitions = 400;
    let temp = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start_wrapped(
        &["prlimit", "--nofile=256:256"],
        &temp.path().join("data"),
        &["--set", "rill.log.maps.max=64"],
        "127.0.0.1:0",
    );
    {
        let mut wire = Wire::connect(&broker.bootstrap);
        create_topic_with(&mut wire, "many", partitions);
    }
    let value = vec![b'm'; 1024];
    let produce_one_each = |broker: &BrokerProcess| {
        let producer: FutureProducer = broker.producer(&[("acks", "all")]);
        let value = value.clone();
        async move {
            // Every record queued at once, then each acknowledgement.
            let deliveries: Vec<_> = (0..partitions)
                .map(|partition| {
                    producer
                        .send_result(
                            FutureRecord::<(), _>::to("many")
                                .partition(partition)
                                .payload(&value),
                        )
                        .map_err(|(error, _)| error)
                        .unwrap()
                })
                .collect();
            for delivery in deliveries {
                delivery.await.unwrap().map_err(|(error, _)| error).unwrap();
            }
        }
    };
    let read_all = |broker: &BrokerProcess, records: usize| {
        let consumer = broker.consumer(&[]);
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment
                .add_partition_offset("many", partition, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        consume_all(&consumer, records)
    };
    produce_one_each(&broker).await;
    assert_eq!(read_all(&broker, partitions as usize), partitions as usize);

    // A clean restart opens every partition again within the budget, and
    // every record is still there, with room for more.
    broker.stop();
    broker.restart();
    produce_one_each(&broker).await;
    assert_eq!(
        read_all(&broker, 2 * partitions as usize),
        2 * partitions as usize
    );
    assert_alive(&broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_out_of_descriptors_creates_topics_with_those_of_idle_partitions() {
    let temp = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_wrapped(
        &["prlimit", "--nofile=192:192"],
        &temp.path().join("data"),
        &[],
        "127.0.0.1:0",
    );
    let mut wire = Wire::connect(&broker.bootstrap);
    create_topic_with(&mut wire, "idle", 16);
    // Connections take every descriptor left.
    let held: Vec<TcpStream> = (0..250).map(|_| connect(&broker)).collect();
    broker.wait_for_log(&["WARN", "cannot accept connections"]);

    // Files of a new topic, and the syncs of its directories, take the
    // descriptors of idle partitions' files: running out is no disk
    // failure, and nothing goes offline.
    create_topic_with(&mut wire, "fresh", 4);
    drop(held);
    drop(wire);
    let producer: FutureProducer = broker.producer(&[("acks", "all")]);
    for topic in ["idle", "fresh"] {
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(0)
                    .payload(&[7u8; 1024][..]),
                WAIT,
            )
            .await
            .map_err(|(error, _)| error)
            .unwrap_or_else(|error| panic!("produce to {topic}: {error}"));
    }
    assert_serving(&broker);
}
