//! Transactions through librdkafka against the real broker: a
//! transactional producer commits and aborts across partitions, and a
//! read_committed consumer sees exactly the committed records while a
//! read_uncommitted one sees both; a second producer with the same
//! transactional id fences the first and aborts what it left open; a
//! transaction left open past its timeout is aborted by the broker; and
//! all of it survives a kill -9 of the broker.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::BrokerProcess;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(30);
const PARTITIONS: i32 = 3;

fn create_topic(broker: &BrokerProcess, name: &str) {
    let admin = broker.admin();
    let topic = NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(WAIT));
    let created = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(admin.create_topics([&topic], &options))
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
}

fn transactional(broker: &BrokerProcess, id: &str, extra: &[(&str, &str)]) -> BaseProducer {
    let mut config = broker.client_config();
    config
        .set("transactional.id", id)
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let producer: BaseProducer = config.create().unwrap();
    producer.init_transactions(WAIT).unwrap();
    producer
}

/// Sends `values`, round-robin over the partitions, and waits until each
/// is acknowledged (as part of the open transaction).
fn send(producer: &BaseProducer, topic: &str, values: &[String]) {
    for (i, value) in values.iter().enumerate() {
        let partition = i32::try_from(i).unwrap() % PARTITIONS;
        producer
            .send(
                BaseRecord::<(), str>::to(topic)
                    .payload(value.as_str())
                    .partition(partition),
            )
            .unwrap();
    }
    producer.flush(WAIT).unwrap();
}

fn values(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// Every value of every partition of `topic` from the beginning up to the
/// end its isolation lets the consumer see (the high watermark, or the
/// last stable offset), in partition then offset order.
fn read_all(broker: &BrokerProcess, topic: &str, isolation: &str) -> Vec<String> {
    let consumer: BaseConsumer = broker.consumer(&[
        ("isolation.level", isolation),
        ("enable.partition.eof", "true"),
    ]);
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = Instant::now() + WAIT;
    while at_end.len() < usize::try_from(PARTITIONS).unwrap() {
        assert!(Instant::now() < deadline, "{topic} not read to its end");
        match consumer.poll(Timeout::After(Duration::from_millis(200))) {
            Some(Ok(message)) => {
                let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
                by_partition
                    .entry(message.partition())
                    .or_default()
                    .push(value);
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(error)) => panic!("reading {topic}: {error}"),
            None => {}
        }
    }
    by_partition.into_values().flatten().collect()
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

#[test]
fn read_committed_sees_exactly_the_committed_records_and_read_uncommitted_sees_all() {
    let broker = BrokerProcess::start(&[]);
    create_topic(&broker, "payments");
    let producer = transactional(&broker, "payments-writer", &[]);

    producer.begin_transaction().unwrap();
    send(&producer, "payments", &values("first", 30));
    producer.commit_transaction(WAIT).unwrap();

    producer.begin_transaction().unwrap();
    send(&producer, "payments", &values("aborted", 30));
    producer.abort_transaction(WAIT).unwrap();

    producer.begin_transaction().unwrap();
    send(&producer, "payments", &values("second", 30));
    producer.commit_transaction(WAIT).unwrap();

    let committed = sorted([values("first", 30), values("second", 30)].concat());
    assert_eq!(
        sorted(read_all(&broker, "payments", "read_committed")),
        committed
    );
    let everything = sorted(
        [
            values("first", 30),
            values("aborted", 30),
            values("second", 30),
        ]
        .concat(),
    );
    assert_eq!(
        sorted(read_all(&broker, "payments", "read_uncommitted")),
        everything
    );
}

#[test]
fn an_open_transaction_holds_read_committed_back_until_it_ends() {
    let broker = BrokerProcess::start(&[]);
    create_topic(&broker, "orders");
    let producer = transactional(&broker, "orders-writer", &[]);
    producer.begin_transaction().unwrap();
    send(&producer, "orders", &values("open", 9));
    // Written and acknowledged, but not committed: invisible.
    assert!(read_all(&broker, "orders", "read_committed").is_empty());
    assert_eq!(read_all(&broker, "orders", "read_uncommitted").len(), 9);
    producer.commit_transaction(WAIT).unwrap();
    assert_eq!(
        sorted(read_all(&broker, "orders", "read_committed")),
        sorted(values("open", 9))
    );
}

#[test]
fn a_second_producer_with_the_same_id_fences_the_first_and_aborts_its_transaction() {
    let broker = BrokerProcess::start(&[]);
    create_topic(&broker, "ledger");
    let zombie = transactional(&broker, "ledger-writer", &[]);
    zombie.begin_transaction().unwrap();
    send(&zombie, "ledger", &values("zombie", 6));

    let successor = transactional(&broker, "ledger-writer", &[]);
    let refused = zombie.commit_transaction(WAIT).unwrap_err();
    assert!(
        matches!(
            refused,
            KafkaError::Transaction(ref e) if matches!(
                e.code(),
                RDKafkaErrorCode::Fenced
                    | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
            )
        ),
        "{refused:?}"
    );

    successor.begin_transaction().unwrap();
    send(&successor, "ledger", &values("successor", 6));
    successor.commit_transaction(WAIT).unwrap();
    assert_eq!(
        sorted(read_all(&broker, "ledger", "read_committed")),
        sorted(values("successor", 6))
    );
}

#[test]
fn a_transaction_open_past_its_timeout_is_aborted_by_the_broker() {
    let broker = BrokerProcess::start(&[
        "--set",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=100",
    ]);
    create_topic(&broker, "slow");
    let producer = transactional(
        &broker,
        "slow-writer",
        &[
            ("transaction.timeout.ms", "1000"),
            ("message.timeout.ms", "1000"),
        ],
    );
    producer.begin_transaction().unwrap();
    send(&producer, "slow", &values("late", 3));

    // The broker aborts it: read_committed reaches the log end again.
    let watcher: BaseConsumer = broker.consumer(&[("isolation.level", "read_committed")]);
    let deadline = Instant::now() + WAIT;
    loop {
        let stable: i64 = (0..PARTITIONS)
            .map(|p| watcher.fetch_watermarks("slow", p, WAIT).unwrap().1)
            .sum();
        // Three records and an abort marker in each of three partitions.
        if stable == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the open transaction was never aborted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(read_all(&broker, "slow", "read_committed").is_empty());
    assert!(producer.commit_transaction(WAIT).is_err());
}

#[test]
fn committed_aborted_and_open_transactions_survive_kill_9() {
    let mut broker = BrokerProcess::start(&[]);
    create_topic(&broker, "journal");
    let producer = transactional(&broker, "journal-writer", &[]);
    producer.begin_transaction().unwrap();
    send(&producer, "journal", &values("committed", 12));
    producer.commit_transaction(WAIT).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, "journal", &values("aborted", 12));
    producer.abort_transaction(WAIT).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, "journal", &values("open", 12));

    broker.kill();
    broker.restart();

    // The aborted transaction stays aborted, the open one stays invisible.
    assert_eq!(
        sorted(read_all(&broker, "journal", "read_committed")),
        sorted(values("committed", 12))
    );
    // The producer goes on with its open transaction and commits it.
    producer.commit_transaction(WAIT).unwrap();
    assert_eq!(
        sorted(read_all(&broker, "journal", "read_committed")),
        sorted([values("committed", 12), values("open", 12)].concat())
    );
    assert_eq!(read_all(&broker, "journal", "read_uncommitted").len(), 36);
}

/// Runs `rill ARGS --bootstrap BROKER`; returns its stdout, failing the
/// test if it fails.
fn rill(broker: &BrokerProcess, args: &[&str]) -> String {
    let output = std::process::Command::new(common::rill_binary())
        .args(args)
        .args(["--bootstrap", &broker.bootstrap])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "rill {args:?} failed: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn rill_txn_lists_describes_and_aborts_a_hanging_transaction() {
    let broker = BrokerProcess::start(&[]);
    create_topic(&broker, "hang");
    // A producer that opens a transaction and never ends it.
    let producer = transactional(&broker, "hanger", &[]);
    producer.begin_transaction().unwrap();
    producer
        .send(
            BaseRecord::<(), str>::to("hang")
                .payload("stuck")
                .partition(1),
        )
        .unwrap();
    producer.flush(WAIT).unwrap();

    let listed = rill(&broker, &["txn", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("hanger ") && l.ends_with("Ongoing")),
        "{listed}"
    );
    let ongoing = rill(&broker, &["txn", "list", "--state", "CompleteCommit"]);
    assert!(!ongoing.contains("hanger"), "{ongoing}");
    let described = rill(&broker, &["txn", "describe", "hanger"]);
    assert!(described.contains("State: Ongoing"), "{described}");
    assert!(described.contains("Partitions: hang-1"), "{described}");

    let consume = |isolation: &str| {
        rill(
            &broker,
            &[
                "consume",
                "hang",
                "--partition",
                "1",
                "--from-beginning",
                "--isolation",
                isolation,
            ],
        )
    };
    assert_eq!(consume("read_uncommitted"), "stuck\n");
    assert_eq!(
        consume("read_committed"),
        "",
        "the open transaction holds it back"
    );

    let aborted = rill(
        &broker,
        &[
            "txn",
            "abort",
            "--topic",
            "hang",
            "--partition",
            "1",
            "--start-offset",
            "0",
        ],
    );
    assert!(aborted.starts_with("Aborted the transaction"), "{aborted}");
    // The partition's last stable offset moved past the abort marker, and
    // the aborted record stays invisible to read_committed.
    let watcher: BaseConsumer = broker.consumer(&[("isolation.level", "read_committed")]);
    assert_eq!(watcher.fetch_watermarks("hang", 1, WAIT).unwrap().1, 2);
    assert_eq!(consume("read_committed"), "");
    drop(producer);
}

/// The offsets `group` has committed for `topic`'s partitions, as a
/// consumer that requires stable offsets reads them.
fn committed_offsets(broker: &BrokerProcess, group: &str, topic: &str) -> Vec<i64> {
    let consumer: BaseConsumer = broker.consumer(&[("group.id", group)]);
    let mut wanted = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        wanted.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(wanted, WAIT).unwrap();
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(offset) => offset,
            _ => -1,
        })
        .collect()
}

#[test]
fn offsets_sent_to_a_transaction_count_only_once_it_commits() {
    let broker = BrokerProcess::start(&[]);
    create_topic(&broker, "input");
    create_topic(&broker, "output");
    let plain = broker.producer(&[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for i in 0..30 {
        let value = format!("in-{i}");
        let record = rdkafka::producer::FutureRecord::<(), str>::to("input")
            .payload(value.as_str())
            .partition(i % PARTITIONS);
        runtime.block_on(plain.send(record, WAIT)).unwrap();
    }
    let consumer: BaseConsumer = broker.consumer(&[
        ("group.id", "transformer"),
        ("isolation.level", "read_committed"),
    ]);
    consumer.subscribe(&["input"]).unwrap();
    let producer = transactional(&broker, "transformer-out", &[]);

    // Consume everything, then write its results and the consumer's
    // positions in one transaction.
    let transform = |commit: bool| {
        let mut read = 0;
        let deadline = Instant::now() + WAIT;
        producer.begin_transaction().unwrap();
        while read < 30 {
            assert!(Instant::now() < deadline, "read only {read} of 30");
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.unwrap();
                let value = format!(
                    "out-{}",
                    String::from_utf8_lossy(message.payload().unwrap())
                );
                producer
                    .send(BaseRecord::<(), str>::to("output").payload(value.as_str()))
                    .unwrap();
                read += 1;
            }
        }
        producer.flush(WAIT).unwrap();
        let positions = consumer.position().unwrap();
        let metadata = consumer.group_metadata().unwrap();
        producer
            .send_offsets_to_transaction(&positions, &metadata, WAIT)
            .unwrap();
        if commit {
            producer.commit_transaction(WAIT).unwrap();
        } else {
            producer.abort_transaction(WAIT).unwrap();
        }
    };
    transform(false);
    // Aborted: the group has committed nothing, and nothing came out.
    assert_eq!(
        committed_offsets(&broker, "transformer", "input"),
        vec![-1; 3]
    );
    assert!(read_all(&broker, "output", "read_committed").is_empty());

    // Start again from the committed offsets (none: the beginning).
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset("input", partition, Offset::Beginning)
            .unwrap();
    }
    consumer.seek_partitions(assignment, WAIT).unwrap();
    transform(true);
    assert_eq!(
        committed_offsets(&broker, "transformer", "input"),
        vec![10; 3]
    );
    let expected = sorted((0..30).map(|i| format!("out-in-{i}")).collect());
    assert_eq!(
        sorted(read_all(&broker, "output", "read_committed")),
        expected
    );
}
