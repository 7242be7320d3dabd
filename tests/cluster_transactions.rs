//! Transactions in a cluster of three `rill broker` processes: the
//! transaction coordinator's broker and a data partition's leader are
//! SIGKILLed in the middle of transactions, and every transaction ends
//! committed or aborted in every partition — never half — while what the
//! producer was told committed is there.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, wait_until};
use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(60);
const TOPIC: &str = "transfers";
const PARTITIONS: i32 = 3;
const TRANSACTIONS: usize = 9;
const RECORDS_PER_PARTITION: usize = 4;
const TRANSACTIONAL_ID: &str = "mover";

fn producer(cluster: &Cluster) -> BaseProducer {
    let producer: BaseProducer = cluster
        .client_config()
        .set("transactional.id", TRANSACTIONAL_ID)
        .set("linger.ms", "0")
        .set("transaction.timeout.ms", "10000")
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    producer.init_transactions(WAIT).unwrap();
    producer
}

/// The broker coordinating TRANSACTIONAL_ID, as a running broker says.
fn coordinator(cluster: &Cluster) -> i32 {
    let mut node = -1;
    wait_until(WAIT, "a transaction coordinator", || {
        let broker = cluster.brokers.iter().find(|b| b.is_running()).unwrap();
        let mut wire = common::wire::Wire::connect(&broker.bootstrap);
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str(TRANSACTIONAL_ID))
            .with_key_type(1);
        let response = wire.send(3, &request);
        node = response.node_id.0;
        response.error_code == 0
    });
    node
}

/// Transaction `n`'s records: `n/partition/k`.
fn records_of(n: usize) -> Vec<(i32, String)> {
    (0..PARTITIONS)
        .flat_map(|p| (0..RECORDS_PER_PARTITION).map(move |k| (p, format!("{n}/{p}/{k}"))))
        .collect()
}

/// Sends transaction `n`'s records (but `skip` of them, already sent) and
/// tries to commit. Returns whether the producer was told it committed;
/// a producer that must be replaced (fenced, or in a fatal state) is
/// replaced, and the new one aborts what the old one left open.
fn send_and_commit(cluster: &Cluster, producer: &mut BaseProducer, n: usize, skip: usize) -> bool {
    let mut sent = Ok(());
    for (partition, value) in records_of(n).into_iter().skip(skip) {
        sent = sent.and(
            producer
                .send(
                    BaseRecord::<(), str>::to(TOPIC)
                        .payload(value.as_str())
                        .partition(partition),
                )
                .map_err(|(error, _)| error),
        );
    }
    let committed = sent
        .and_then(|()| producer.flush(WAIT))
        .and_then(|()| producer.commit_transaction(WAIT));
    match committed {
        Ok(()) => true,
        Err(KafkaError::Transaction(error)) if error.txn_requires_abort() => {
            producer.abort_transaction(WAIT).unwrap();
            false
        }
        Err(_) => {
            *producer = self::producer(cluster);
            false
        }
    }
}

/// Every transaction's records as read under read_committed, by
/// transaction number, once the last stable offset of every partition
/// has caught up with its high watermark (no transaction left hanging).
fn committed_records(cluster: &Cluster) -> BTreeMap<usize, BTreeSet<String>> {
    let consumer: BaseConsumer = cluster
        .client_config()
        .set("group.id", "auditor")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let uncommitted: BaseConsumer = cluster
        .client_config()
        .set("isolation.level", "read_uncommitted")
        .create()
        .unwrap();
    wait_until(WAIT, "every transaction to end", || {
        (0..PARTITIONS).all(|p| {
            let stable = consumer.fetch_watermarks(TOPIC, p, WAIT).map(|w| w.1);
            let high = uncommitted.fetch_watermarks(TOPIC, p, WAIT).map(|w| w.1);
            matches!((stable, high), (Ok(s), Ok(h)) if s == h)
        })
    });
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut at_end = BTreeSet::new();
    let mut by_transaction: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    while at_end.len() < PARTITIONS as usize {
        assert!(
            Instant::now() < deadline,
            "could not read {TOPIC} to its end"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
                let n: usize = value.split('/').next().unwrap().parse().unwrap();
                assert!(
                    by_transaction.entry(n).or_default().insert(value.clone()),
                    "{value} read twice"
                );
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            // A killed broker in the bootstrap list shows as transport
            // errors; the client carries on with the others.
            Some(Err(_)) | None => {}
        }
    }
    by_transaction
}

#[test]
fn transactions_end_whole_when_their_coordinator_and_a_leader_are_killed() {
    let mut cluster = Cluster::start(
        3,
        &[
            "--set",
            "transaction.state.log.num.partitions=3",
            "--set",
            "transaction.abort.timed.out.transaction.cleanup.interval.ms=500",
        ],
    );
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().unwrap();
    let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let created = runtime
        .block_on(admin.create_topics([&topic], &AdminOptions::new().operation_timeout(Some(WAIT))))
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");

    let mut producer = producer(&cluster);
    let mut told_committed = BTreeSet::new();
    let mut killed = Vec::new();
    for n in 0..TRANSACTIONS {
        // In the middle of transaction 3 the coordinator dies; in the
        // middle of transaction 6 the leader of partition 0.
        let victim = match n {
            3 => Some(coordinator(&cluster)),
            6 => Some(cluster.partition_state(TOPIC, 0).0),
            _ => None,
        };
        if let Some(victim) = victim {
            // Bring back the one killed before: two of three controllers
            // must run for the metadata quorum.
            for id in killed.drain(..) {
                cluster.node(id).restart();
            }
            cluster.wait_for_brokers(3);
            producer.begin_transaction().unwrap();
            let (partition, first) = records_of(n).remove(0);
            producer
                .send(
                    BaseRecord::<(), str>::to(TOPIC)
                        .payload(first.as_str())
                        .partition(partition),
                )
                .unwrap();
            producer.flush(WAIT).unwrap();
            cluster.node(victim).kill();
            killed.push(victim);
            // What was sent before the kill is aborted or committed with
            // the rest; the transaction goes on with its other records.
            if send_and_commit(&cluster, &mut producer, n, 1) {
                told_committed.insert(n);
            }
            continue;
        }
        producer.begin_transaction().unwrap();
        if send_and_commit(&cluster, &mut producer, n, 0) {
            told_committed.insert(n);
        }
    }
    let committed = committed_records(&cluster);
    for (n, records) in &committed {
        let whole: BTreeSet<String> = records_of(*n).into_iter().map(|(_, v)| v).collect();
        assert_eq!(records, &whole, "transaction {n} is half there");
    }
    for n in &told_committed {
        assert!(
            committed.contains_key(n),
            "transaction {n} was committed, then lost"
        );
    }
    assert!(
        told_committed.len() >= TRANSACTIONS - 2,
        "only {told_committed:?} committed"
    );
}
