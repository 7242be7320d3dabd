//! Transactions on the wire, against the real broker: requests out of
//! order, with a stale epoch or a wrong producer id, for an unknown
//! transactional id, after the broker aborted a timed-out transaction, for
//! a topic that does not exist or is internal; a transactional batch to a
//! partition the transaction did not add; a control batch from a client.
//! Each gets the error code Kafka answers with, and changes nothing: the
//! log end offset stays, read_committed sees nothing new, and a following
//! valid request still works. Then kafka-python, a second client family,
//! runs transactions end to end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::BrokerProcess;
use common::cluster::Cluster;
use common::wire::{Wire, fetch_request, log_end, produce_request, topic_name};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest,
    FindCoordinatorRequest, GroupId, InitProducerIdRequest, JoinGroupRequest, ListOffsetsRequest,
    OffsetCommitRequest, OffsetFetchRequest, ProducerId, SyncGroupRequest, TransactionalId,
    TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;
use rill_record::{
    BatchBuilder, BatchView, Batches, EndTxnMarker, MarkerKind, NewRecord, end_txn_marker,
};

const WAIT: Duration = Duration::from_secs(30);

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const INVALID_REQUEST: i16 = 42;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const MEMBER_ID_REQUIRED: i16 = 79;
const INVALID_RECORD: i16 = 87;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
const TRANSACTION_ABORTABLE: i16 = 120;

/// One `__transaction_state` partition: the broker makes it faster than
/// Kafka's 50, and every id lands there anyway.
const ONE_TXN_PARTITION: &str = "transaction.state.log.num.partitions=1";

fn start(extra: &[&str]) -> (BrokerProcess, Wire) {
    let mut args = vec!["--set", ONE_TXN_PARTITION];
    for setting in extra {
        args.extend(["--set", setting]);
    }
    let broker = BrokerProcess::start(&args);
    let wire = Wire::connect(&broker.bootstrap);
    (broker, wire)
}

fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(now.unwrap().as_millis()).unwrap()
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(str_bytes(id))
}

fn create_topic(wire: &mut Wire, name: &str, partitions: i32) {
    common::wire::create_topic_with(wire, name, partitions);
}

/// Asks for `id`'s transaction coordinator until one answers, as a client
/// does: the first asking creates `__transaction_state`.
fn find_txn_coordinator(wire: &mut Wire, id: &str) {
    let find = FindCoordinatorRequest::default()
        .with_key(str_bytes(id))
        .with_key_type(1);
    let deadline = Instant::now() + WAIT;
    loop {
        let error = wire.send(3, &find).error_code;
        if error == 0 {
            return;
        }
        assert!(
            [COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS].contains(&error),
            "FindCoordinator({id}) answered {error}"
        );
        assert!(Instant::now() < deadline, "no coordinator for {id}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Retries `request` while it answers a retriable coordinator error
/// (CONCURRENT_TRANSACTIONS, loading, not available), as clients do.
fn retrying<T>(what: &str, error: impl Fn(&T) -> i16, mut request: impl FnMut() -> T) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = request();
        let code = error(&answer);
        if ![
            CONCURRENT_TRANSACTIONS,
            COORDINATOR_LOAD_IN_PROGRESS,
            COORDINATOR_NOT_AVAILABLE,
        ]
        .contains(&code)
        {
            return answer;
        }
        assert!(Instant::now() < deadline, "{what} still answers {code}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn init_request(id: Option<&str>, timeout_ms: i32) -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(id.map(txn_id))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// InitProducerId for `id` (found first): its producer id and epoch.
fn init(wire: &mut Wire, id: &str, timeout_ms: i32) -> (i64, i16) {
    find_txn_coordinator(wire, id);
    let response = retrying(
        "InitProducerId",
        |r: &kafka_protocol::messages::InitProducerIdResponse| r.error_code,
        || wire.send(4, &init_request(Some(id), timeout_ms)),
    );
    assert_eq!(response.error_code, 0, "InitProducerId({id})");
    (response.producer_id.0, response.producer_epoch)
}

/// The producer of a transactional id, as InitProducerId made it.
#[derive(Clone, Copy, Debug)]
struct Producer<'a> {
    id: &'a str,
    producer_id: i64,
    epoch: i16,
}

impl<'a> Producer<'a> {
    fn init(wire: &mut Wire, id: &'a str) -> Producer<'a> {
        let (producer_id, epoch) = init(wire, id, 60_000);
        Producer {
            id,
            producer_id,
            epoch,
        }
    }

    fn at_epoch(self, epoch: i16) -> Producer<'a> {
        Producer { epoch, ..self }
    }

    fn with_producer_id(self, producer_id: i64) -> Producer<'a> {
        Producer {
            producer_id,
            ..self
        }
    }

    /// AddPartitionsToTxn at `version`: each partition's error code, in
    /// request order.
    fn add(self, wire: &mut Wire, version: i16, partitions: &[(&str, i32)]) -> Vec<i16> {
        let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
        for &(topic, partition) in partitions {
            match topics.iter_mut().find(|t| t.name.as_str() == topic) {
                Some(t) => t.partitions.push(partition),
                None => topics.push(
                    AddPartitionsToTxnTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn_id(self.id))
            .with_v3_and_below_producer_id(ProducerId(self.producer_id))
            .with_v3_and_below_producer_epoch(self.epoch)
            .with_v3_and_below_topics(topics);
        let response = retrying(
            "AddPartitionsToTxn",
            |r: &kafka_protocol::messages::AddPartitionsToTxnResponse| {
                r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
            },
            || wire.send(version, &request),
        );
        partitions
            .iter()
            .map(|&(topic, partition)| {
                response
                    .results_by_topic_v3_and_below
                    .iter()
                    .find(|t| t.name.as_str() == topic)
                    .and_then(|t| {
                        t.results_by_partition
                            .iter()
                            .find(|p| p.partition_index == partition)
                    })
                    .unwrap_or_else(|| panic!("no answer for {topic}-{partition}"))
                    .partition_error_code
            })
            .collect()
    }

    fn add_ok(self, wire: &mut Wire, partitions: &[(&str, i32)]) {
        let errors = self.add(wire, 3, partitions);
        assert!(errors.iter().all(|&e| e == 0), "{errors:?}");
    }

    /// EndTxn at `version` (retried while CONCURRENT_TRANSACTIONS).
    fn end(self, wire: &mut Wire, version: i16, commit: bool) -> i16 {
        let request = EndTxnRequest::default()
            .with_transactional_id(txn_id(self.id))
            .with_producer_id(ProducerId(self.producer_id))
            .with_producer_epoch(self.epoch)
            .with_committed(commit);
        retrying(
            "EndTxn",
            |r: &kafka_protocol::messages::EndTxnResponse| r.error_code,
            || wire.send(version, &request),
        )
        .error_code
    }

    /// EndTxn, once, without retrying.
    fn end_once(self, wire: &mut Wire, version: i16, commit: bool) -> i16 {
        let request = EndTxnRequest::default()
            .with_transactional_id(txn_id(self.id))
            .with_producer_id(ProducerId(self.producer_id))
            .with_producer_epoch(self.epoch)
            .with_committed(commit);
        wire.send(version, &request).error_code
    }

    /// Produces `values` as one transactional batch at `sequence`.
    fn produce(
        self,
        wire: &mut Wire,
        version: i16,
        (topic, partition): (&str, i32),
        sequence: i32,
        values: &[&str],
    ) -> (i16, i64) {
        let records: Vec<NewRecord<'_>> = values
            .iter()
            .map(|v| NewRecord::value(v.as_bytes()))
            .collect();
        let batch = BatchBuilder::new(now_ms())
            .producer(self.producer_id, self.epoch, sequence)
            .transactional()
            .with_records(&records)
            .finish()
            .unwrap();
        self.produce_batch(wire, version, (topic, partition), batch)
    }

    fn produce_batch(
        self,
        wire: &mut Wire,
        version: i16,
        (topic, partition): (&str, i32),
        batch: Vec<u8>,
    ) -> (i16, i64) {
        let request =
            produce_request(topic, partition, batch).with_transactional_id(Some(txn_id(self.id)));
        let response = wire.send(version, &request);
        let answer = &response.responses[0].partition_responses[0];
        (answer.error_code, answer.base_offset)
    }

    fn add_offsets(self, wire: &mut Wire, group: &str) -> i16 {
        let request = AddOffsetsToTxnRequest::default()
            .with_transactional_id(txn_id(self.id))
            .with_producer_id(ProducerId(self.producer_id))
            .with_producer_epoch(self.epoch)
            .with_group_id(GroupId(str_bytes(group)));
        retrying(
            "AddOffsetsToTxn",
            |r: &kafka_protocol::messages::AddOffsetsToTxnResponse| r.error_code,
            || wire.send(3, &request),
        )
        .error_code
    }

    /// TxnOffsetCommit v3 of `offset` for partition 0 of `topic`.
    fn commit_offset(self, wire: &mut Wire, group: &Member, topic: &str, offset: i64) -> i16 {
        let request = TxnOffsetCommitRequest::default()
            .with_transactional_id(txn_id(self.id))
            .with_group_id(GroupId(str_bytes(&group.group)))
            .with_producer_id(ProducerId(self.producer_id))
            .with_producer_epoch(self.epoch)
            .with_generation_id(group.generation)
            .with_member_id(str_bytes(&group.member_id))
            .with_topics(vec![
                TxnOffsetCommitRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![
                        TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(-1),
                    ]),
            ]);
        retrying(
            "TxnOffsetCommit",
            |r: &kafka_protocol::messages::TxnOffsetCommitResponse| {
                r.topics[0].partitions[0].error_code
            },
            || wire.send(3, &request),
        )
        .topics[0]
            .partitions[0]
            .error_code
    }
}

/// A group member, as JoinGroup and SyncGroup made it.
#[derive(Clone, Debug)]
struct Member {
    group: String,
    member_id: String,
    generation: i32,
}

impl Member {
    fn with(&self, member_id: &str, generation: i32) -> Member {
        Member {
            group: self.group.clone(),
            member_id: member_id.to_string(),
            generation,
        }
    }
}

/// Joins `group` as its only member (and syncs, so the group is stable).
fn join(wire: &mut Wire, group: &str) -> Member {
    common::wire::wait_for_group_coordinator(wire, group);
    let mut request = JoinGroupRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(str_bytes("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(str_bytes("range"))
                .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
        ]);
    let mut response = wire.send(5, &request);
    if response.error_code == MEMBER_ID_REQUIRED {
        request = request.with_member_id(response.member_id.clone());
        response = wire.send(5, &request);
    }
    assert_eq!(response.error_code, 0, "JoinGroup");
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id(response.generation_id)
        .with_member_id(response.member_id.clone())
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(response.member_id.clone())
                .with_assignment(Bytes::new()),
        ]);
    assert_eq!(wire.send(3, &sync).error_code, 0, "SyncGroup");
    Member {
        group: group.to_string(),
        member_id: response.member_id.to_string(),
        generation: response.generation_id,
    }
}

/// `group`'s committed offset of partition 0 of `topic` (-1: none).
fn committed_offset(wire: &mut Wire, group: &str, topic: &str) -> i64 {
    let response = wire.send(
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(vec![0]),
            ])),
    );
    assert_eq!(response.error_code, 0);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.committed_offset
}

/// The last stable offset of `partition` of `topic` (ListOffsets,
/// read_committed).
fn last_stable_offset(wire: &mut Wire, topic: &str, partition: i32) -> i64 {
    let response = wire.send(
        7,
        &ListOffsetsRequest::default()
            .with_isolation_level(1)
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(-1),
                    ]),
            ]),
    );
    let answer = &response.topics[0].partitions[0];
    assert_eq!(answer.error_code, 0);
    answer.offset
}

/// Waits until no transaction is open in `partition` of `topic`: the
/// last stable offset reaches the log end offset.
fn wait_stable(wire: &mut Wire, topic: &str, partition: i32) {
    let deadline = Instant::now() + WAIT;
    while last_stable_offset(wire, topic, partition) < log_end_of(wire, topic, partition) {
        assert!(
            Instant::now() < deadline,
            "{topic}-{partition} stays unstable"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_end_of(wire: &mut Wire, topic: &str, partition: i32) -> i64 {
    if partition == 0 {
        return log_end(wire, topic);
    }
    let response = wire.send(
        7,
        &ListOffsetsRequest::default().with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(-1),
                ]),
        ]),
    );
    response.topics[0].partitions[0].offset
}

/// The values a read_committed consumer of `partition` of `topic` sees:
/// below the last stable offset, without control batches and without the
/// batches of the aborted transactions the fetches list. Fetches until
/// the last stable offset, as a consumer does (one fetch reads from one
/// segment only).
fn read_committed(wire: &mut Wire, topic: &str, partition: i32) -> Vec<String> {
    let mut aborted: BTreeSet<(i64, i64)> = BTreeSet::new();
    let mut fetched: Vec<Bytes> = Vec::new();
    let mut from = 0;
    loop {
        let request = fetch_request(topic, partition, from, 0, 0).with_isolation_level(1);
        let response = wire.send(11, &request);
        let answer = &response.responses[0].partitions[0];
        assert_eq!(answer.error_code, 0);
        aborted.extend(
            answer
                .aborted_transactions
                .iter()
                .flatten()
                .map(|a| (a.first_offset, a.producer_id.0)),
        );
        let records = answer.records.clone().unwrap_or_default();
        match Batches::new(&records).last() {
            Some(last) => from = last.next_offset(),
            None => break,
        }
        fetched.push(records);
        if from >= answer.last_stable_offset {
            break;
        }
    }
    // As Kafka's consumer: each aborted transaction, in first-offset
    // order, marks its producer's batches aborted from its first offset
    // up to that producer's next control batch.
    let mut aborted = aborted.into_iter().peekable();
    let mut in_aborted: BTreeSet<i64> = BTreeSet::new();
    let mut values = Vec::new();
    for batch in fetched.iter().flat_map(|records| Batches::new(records)) {
        while let Some(&(first_offset, producer_id)) = aborted.peek() {
            if first_offset > batch.last_offset() {
                break;
            }
            in_aborted.insert(producer_id);
            aborted.next();
        }
        let producer_id = batch.producer_id();
        if batch.attributes().is_control() {
            in_aborted.remove(&producer_id);
            continue;
        }
        if batch.attributes().is_transactional() && in_aborted.contains(&producer_id) {
            continue;
        }
        values.extend(batch_values(&batch));
    }
    values
}

fn batch_values(batch: &BatchView<'_>) -> Vec<String> {
    let data = rill_record::records_data(batch, 1 << 20).unwrap();
    rill_record::Records::new(&data, batch.records_count())
        .map(|r| String::from_utf8(r.unwrap().value.unwrap().to_vec()).unwrap())
        .collect()
}

#[test]
fn end_txn_refusals_change_nothing() {
    let (_broker, mut wire) = start(&[]);
    create_topic(&mut wire, "t", 1);
    let a = Producer::init(&mut wire, "a");
    assert_eq!(a.epoch, 0);

    // An unknown transactional id.
    let nobody = Producer { id: "nobody", ..a };
    assert_eq!(nobody.end(&mut wire, 3, true), INVALID_PRODUCER_ID_MAPPING);
    // No transaction open yet.
    assert_eq!(a.end(&mut wire, 3, true), INVALID_TXN_STATE);
    assert_eq!(a.end(&mut wire, 3, false), INVALID_TXN_STATE);

    a.add_ok(&mut wire, &[("t", 0)]);
    assert_eq!(a.produce(&mut wire, 9, ("t", 0), 0, &["x"]), (0, 0));
    // Another producer id for the same transactional id.
    let impostor = a.with_producer_id(a.producer_id + 1_000);
    assert_eq!(
        impostor.end(&mut wire, 3, true),
        INVALID_PRODUCER_ID_MAPPING
    );
    // An epoch from the future is fenced too (strict equality).
    assert_eq!(a.at_epoch(5).end(&mut wire, 3, true), PRODUCER_FENCED);
    assert_eq!(last_stable_offset(&mut wire, "t", 0), 0, "still open");

    // A commit, and its retry, both succeed; one marker is written.
    assert_eq!(a.end(&mut wire, 3, true), 0);
    assert_eq!(a.end(&mut wire, 3, true), 0, "a retried commit succeeds");
    wait_stable(&mut wire, "t", 0);
    assert_eq!(log_end(&mut wire, "t"), 2, "one record and one marker");
    // Abort after commit: the state is CompleteCommit.
    assert_eq!(a.end(&mut wire, 3, false), INVALID_TXN_STATE);

    // An aborted transaction; committing it afterwards is refused, whether
    // its markers are still being written or done.
    a.add_ok(&mut wire, &[("t", 0)]);
    assert_eq!(a.produce(&mut wire, 9, ("t", 0), 1, &["y"]), (0, 2));
    assert_eq!(a.end(&mut wire, 3, false), 0);
    assert_eq!(a.end(&mut wire, 3, true), INVALID_TXN_STATE);
    assert_eq!(a.end(&mut wire, 3, false), 0, "a retried abort succeeds");
    assert_eq!(a.end(&mut wire, 3, true), INVALID_TXN_STATE);
    wait_stable(&mut wire, "t", 0);
    assert_eq!(log_end(&mut wire, "t"), 4);
    assert_eq!(read_committed(&mut wire, "t", 0), ["x"]);

    // A second InitProducerId bumps the epoch: the first producer's epoch
    // is stale, answered PRODUCER_FENCED from v2 (KIP-588) and
    // INVALID_PRODUCER_EPOCH before.
    let a1 = Producer::init(&mut wire, "a");
    assert_eq!((a1.producer_id, a1.epoch), (a.producer_id, 1));
    a1.add_ok(&mut wire, &[("t", 0)]);
    assert_eq!(a1.produce(&mut wire, 9, ("t", 0), 0, &["z"]), (0, 4));
    assert_eq!(a.end(&mut wire, 0, true), INVALID_PRODUCER_EPOCH);
    assert_eq!(a.end(&mut wire, 1, true), INVALID_PRODUCER_EPOCH);
    assert_eq!(a.end(&mut wire, 2, true), PRODUCER_FENCED);
    assert_eq!(a.end(&mut wire, 3, false), PRODUCER_FENCED);
    // Nor may the stale producer write into the transaction.
    assert_eq!(
        a.produce(&mut wire, 9, ("t", 0), 2, &["stale"]).0,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(log_end(&mut wire, "t"), 5, "no marker from a stale epoch");
    assert_eq!(last_stable_offset(&mut wire, "t", 0), 4, "z is still open");
    // The current producer commits as if nothing happened.
    assert_eq!(a1.end(&mut wire, 3, true), 0);
    wait_stable(&mut wire, "t", 0);
    assert_eq!(read_committed(&mut wire, "t", 0), ["x", "z"]);
}

#[test]
fn add_partitions_refusals_change_nothing() {
    let (_broker, mut wire) = start(&[]);
    create_topic(&mut wire, "t", 2);
    let a = Producer::init(&mut wire, "a");

    // An unknown transactional id: every partition answers.
    let nobody = Producer { id: "nobody", ..a };
    assert_eq!(
        nobody.add(&mut wire, 3, &[("t", 0), ("t", 1)]),
        [INVALID_PRODUCER_ID_MAPPING; 2]
    );
    // Another producer id.
    let impostor = a.with_producer_id(a.producer_id + 1_000);
    assert_eq!(
        impostor.add(&mut wire, 3, &[("t", 0)]),
        [INVALID_PRODUCER_ID_MAPPING]
    );
    // A topic that does not exist, a partition past the end: those are
    // UNKNOWN_TOPIC_OR_PARTITION, the rest OPERATION_NOT_ATTEMPTED.
    assert_eq!(
        a.add(&mut wire, 3, &[("t", 0), ("missing", 0), ("t", 7)]),
        [
            OPERATION_NOT_ATTEMPTED,
            UNKNOWN_TOPIC_OR_PARTITION,
            UNKNOWN_TOPIC_OR_PARTITION
        ]
    );
    // An internal topic: Kafka never authorizes WRITE on one here (a
    // transaction adds its group's offsets with AddOffsetsToTxn).
    assert_eq!(
        a.add(&mut wire, 3, &[("__consumer_offsets", 0), ("t", 1)]),
        [TOPIC_AUTHORIZATION_FAILED, OPERATION_NOT_ATTEMPTED]
    );
    // None of it opened a transaction.
    assert_eq!(a.end(&mut wire, 3, true), INVALID_TXN_STATE);

    // A stale epoch, after a second InitProducerId.
    let a1 = Producer::init(&mut wire, "a");
    assert_eq!(a.add(&mut wire, 0, &[("t", 0)]), [INVALID_PRODUCER_EPOCH]);
    assert_eq!(a.add(&mut wire, 1, &[("t", 0)]), [INVALID_PRODUCER_EPOCH]);
    assert_eq!(a.add(&mut wire, 2, &[("t", 0)]), [PRODUCER_FENCED]);
    assert_eq!(a.add(&mut wire, 3, &[("t", 0)]), [PRODUCER_FENCED]);
    assert_eq!(
        a1.end(&mut wire, 3, true),
        INVALID_TXN_STATE,
        "nothing added"
    );

    // The current producer's transaction works.
    a1.add_ok(&mut wire, &[("t", 0), ("t", 1)]);
    assert_eq!(a1.produce(&mut wire, 9, ("t", 1), 0, &["one"]), (0, 0));
    assert_eq!(a1.end(&mut wire, 3, true), 0);
    wait_stable(&mut wire, "t", 1);
    assert_eq!(read_committed(&mut wire, "t", 1), ["one"]);
}

#[test]
fn txn_offset_commit_refusals_change_nothing() {
    let (_broker, mut wire) = start(&[]);
    create_topic(&mut wire, "t", 1);
    let member = join(&mut wire, "g");
    let a = Producer::init(&mut wire, "a");

    // A committed transaction sets the group's offset to 5.
    assert_eq!(a.add_offsets(&mut wire, "g"), 0);
    assert_eq!(a.commit_offset(&mut wire, &member, "t", 5), 0);
    assert_eq!(a.end(&mut wire, 3, true), 0);
    let deadline = Instant::now() + WAIT;
    while committed_offset(&mut wire, "g", "t") != 5 {
        assert!(
            Instant::now() < deadline,
            "the committed offset never shows"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // In the next transaction: a member the group does not have, and a
    // generation it is not at (KIP-447's checks).
    assert_eq!(a.add_offsets(&mut wire, "g"), 0);
    let stranger = member.with("stranger", member.generation);
    assert_eq!(
        a.commit_offset(&mut wire, &stranger, "t", 6),
        UNKNOWN_MEMBER_ID
    );
    let stale = member.with(&member.member_id, member.generation + 7);
    assert_eq!(
        a.commit_offset(&mut wire, &stale, "t", 6),
        ILLEGAL_GENERATION
    );
    assert_eq!(a.end(&mut wire, 3, true), 0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        committed_offset(&mut wire, "g", "t"),
        5,
        "nothing committed"
    );

    // A stale epoch, with no transaction open: Kafka (KIP-890 part 1)
    // verifies the offsets partition with the coordinator, which says
    // fenced; without that check the batch would open a transaction no
    // marker ever ends.
    let a1 = Producer::init(&mut wire, "a");
    assert_eq!(
        a.commit_offset(&mut wire, &member, "t", 8),
        INVALID_PRODUCER_EPOCH
    );
    // AddOffsetsToTxn from the stale epoch, or for an unknown id, adds
    // nothing either.
    assert_eq!(a.add_offsets(&mut wire, "g"), PRODUCER_FENCED);
    let nobody = Producer { id: "nobody", ..a1 };
    assert_eq!(
        nobody.add_offsets(&mut wire, "g"),
        INVALID_PRODUCER_ID_MAPPING
    );
    // Nor may the current producer commit offsets it did not add first.
    assert_eq!(
        a1.commit_offset(&mut wire, &member, "t", 8),
        INVALID_TXN_STATE
    );

    // A stale epoch while the current producer's transaction is open.
    assert_eq!(a1.add_offsets(&mut wire, "g"), 0);
    assert_eq!(
        a.commit_offset(&mut wire, &member, "t", 9),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(a1.commit_offset(&mut wire, &member, "t", 10), 0);
    assert_eq!(a1.end(&mut wire, 3, true), 0);
    let deadline = Instant::now() + WAIT;
    while committed_offset(&mut wire, "g", "t") != 10 {
        assert!(Instant::now() < deadline, "offset 10 never shows");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_transaction_aborted_on_timeout_fences_its_producer() {
    let (_broker, mut wire) =
        start(&["transaction.abort.timed.out.transaction.cleanup.interval.ms=100"]);
    create_topic(&mut wire, "t", 1);
    let (producer_id, epoch) = init(&mut wire, "slow", 500);
    let slow = Producer {
        id: "slow",
        producer_id,
        epoch,
    };
    slow.add_ok(&mut wire, &[("t", 0)]);
    assert_eq!(slow.produce(&mut wire, 9, ("t", 0), 0, &["late"]), (0, 0));
    // The broker aborts it at a bumped epoch: the abort marker lands.
    wait_stable(&mut wire, "t", 0);
    assert_eq!(log_end(&mut wire, "t"), 2);
    assert_eq!(slow.add(&mut wire, 3, &[("t", 0)]), [PRODUCER_FENCED]);
    assert_eq!(
        slow.add(&mut wire, 1, &[("t", 0)]),
        [INVALID_PRODUCER_EPOCH]
    );
    assert_eq!(slow.end(&mut wire, 3, true), PRODUCER_FENCED);
    assert_eq!(slow.end(&mut wire, 1, true), INVALID_PRODUCER_EPOCH);
    // Its records stay aborted; nothing else was written.
    assert_eq!(log_end(&mut wire, "t"), 2);
    assert!(read_committed(&mut wire, "t", 0).is_empty());
    // A new InitProducerId carries on from the bumped epoch.
    let again = Producer::init(&mut wire, "slow");
    assert_eq!(again.producer_id, producer_id);
    assert!(
        again.epoch > epoch + 1,
        "fenced at {} then bumped",
        epoch + 1
    );
}

#[test]
fn init_producer_id_refuses_a_timeout_out_of_bounds_and_bad_ids() {
    let (broker, mut wire) = start(&["transaction.max.timeout.ms=60000"]);
    create_topic(&mut wire, "t", 1);
    find_txn_coordinator(&mut wire, "a");
    for timeout_ms in [60_001, 0, -1] {
        let response = wire.send(4, &init_request(Some("a"), timeout_ms));
        assert_eq!(
            response.error_code, INVALID_TRANSACTION_TIMEOUT,
            "timeout {timeout_ms} ms"
        );
        assert_eq!(response.producer_id.0, -1);
    }
    // Nothing was made for the id.
    let describe = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id("a")]);
    assert_eq!(
        wire.send(0, &describe).transaction_states[0].error_code,
        TRANSACTIONAL_ID_NOT_FOUND
    );
    // The maximum itself is fine.
    let (producer_id, epoch) = init(&mut wire, "a", 60_000);
    assert_eq!(epoch, 0);
    // KIP-360 (v3+): the producer's own id with an epoch it never had is
    // fenced (PRODUCER_FENCED from v4, INVALID_PRODUCER_EPOCH before); an
    // id without an epoch is INVALID_REQUEST. None of it bumps the epoch.
    let claiming = |producer_epoch| {
        init_request(Some("a"), 60_000)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
    };
    assert_eq!(wire.send(4, &claiming(7)).error_code, PRODUCER_FENCED);
    assert_eq!(
        wire.send(3, &claiming(7)).error_code,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(wire.send(4, &claiming(-1)).error_code, INVALID_REQUEST);

    // An empty transactional id: INVALID_REQUEST from every API.
    let empty = Producer {
        id: "",
        producer_id: 0,
        epoch: 0,
    };
    assert_eq!(
        wire.send(4, &init_request(Some(""), 60_000)).error_code,
        INVALID_REQUEST
    );
    assert_eq!(empty.end_once(&mut wire, 3, true), INVALID_REQUEST);
    assert_eq!(empty.add(&mut wire, 3, &[("t", 0)])[0], INVALID_REQUEST);
    assert_eq!(empty.add_offsets(&mut wire, "g"), INVALID_REQUEST);
    let describe_empty =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id("")]);
    assert_eq!(
        wire.send(0, &describe_empty).transaction_states[0].error_code,
        INVALID_REQUEST
    );

    // A transactional id longer than a Kafka string may be (32767 bytes):
    // Kafka cannot parse the request and closes the connection. Rill may
    // answer INVALID_REQUEST instead; either way it stays up.
    let long = "x".repeat(40_000);
    let mut other = Wire::connect(&broker.bootstrap);
    other.set_read_timeout(Duration::from_secs(10));
    let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        other.send(4, &init_request(Some(&long), 60_000)).error_code
    }));
    if let Ok(code) = answered {
        assert_eq!(code, INVALID_REQUEST);
    }
    let mut fresh = Wire::connect(&broker.bootstrap);
    assert_eq!(
        init(&mut fresh, "a", 60_000).1,
        1,
        "the broker still serves"
    );
    // The longest id a Kafka string carries works end to end.
    let longest = "y".repeat(32_767);
    let producer = Producer::init(&mut fresh, &longest);
    producer.add_ok(&mut fresh, &[("t", 0)]);
    assert_eq!(producer.produce(&mut fresh, 9, ("t", 0), 0, &["l"]), (0, 0));
    assert_eq!(producer.end(&mut fresh, 3, true), 0);
    wait_stable(&mut fresh, "t", 0);
    assert_eq!(read_committed(&mut fresh, "t", 0), ["l"]);
}

#[test]
fn a_control_batch_from_a_client_is_refused() {
    let (_broker, mut wire) = start(&[]);
    create_topic(&mut wire, "t", 1);
    let a = Producer::init(&mut wire, "a");
    a.add_ok(&mut wire, &[("t", 0)]);
    assert_eq!(a.produce(&mut wire, 9, ("t", 0), 0, &["x"]), (0, 0));
    for kind in [MarkerKind::Commit, MarkerKind::Abort] {
        let marker = EndTxnMarker {
            kind,
            coordinator_epoch: 0,
        };
        let batch = end_txn_marker(a.producer_id, a.epoch, marker, now_ms()).unwrap();
        assert_eq!(
            a.produce_batch(&mut wire, 9, ("t", 0), batch).0,
            INVALID_RECORD,
            "{kind:?}"
        );
    }
    assert_eq!(log_end(&mut wire, "t"), 1, "nothing written");
    assert_eq!(last_stable_offset(&mut wire, "t", 0), 0, "still open");
    assert_eq!(a.end(&mut wire, 3, false), 0);
    wait_stable(&mut wire, "t", 0);
    assert!(read_committed(&mut wire, "t", 0).is_empty());
}

#[test]
fn a_transactional_batch_to_a_partition_not_added_is_refused() {
    let (_broker, mut wire) = start(&[]);
    create_topic(&mut wire, "t", 2);
    let a = Producer::init(&mut wire, "a");
    // No transaction at all.
    assert_eq!(
        a.produce(&mut wire, 9, ("t", 0), 0, &["x"]).0,
        INVALID_TXN_STATE
    );
    // A transaction that added partition 1 only.
    a.add_ok(&mut wire, &[("t", 1)]);
    assert_eq!(
        a.produce(&mut wire, 9, ("t", 0), 0, &["x"]).0,
        INVALID_TXN_STATE
    );
    assert_eq!(log_end(&mut wire, "t"), 0, "nothing written");
    assert_eq!(a.produce(&mut wire, 9, ("t", 1), 0, &["y"]), (0, 0));
    assert_eq!(a.end(&mut wire, 3, true), 0);
    wait_stable(&mut wire, "t", 0);
    wait_stable(&mut wire, "t", 1);
    assert_eq!(
        log_end(&mut wire, "t"),
        0,
        "no marker where nothing was added"
    );
    assert_eq!(read_committed(&mut wire, "t", 1), ["y"]);
}

/// The broker `key` of `key_type` (0 a group, 1 a transactional id) is
/// coordinated by, once one answers.
fn coordinator_node(wire: &mut Wire, key: &str, key_type: i8) -> i32 {
    let find = FindCoordinatorRequest::default()
        .with_key(str_bytes(key))
        .with_key_type(key_type);
    let response = retrying(
        "FindCoordinator",
        |r: &kafka_protocol::messages::FindCoordinatorResponse| r.error_code,
        || wire.send(3, &find),
    );
    assert_eq!(response.error_code, 0, "FindCoordinator({key})");
    response.node_id.0
}

/// KIP-890 across brokers: a partition's leader asks the transaction's
/// coordinator, on another broker, before it writes a producer's first
/// transactional batch there (AddPartitionsToTxn v5, verify only), and so
/// does a group coordinator before it writes transactional offsets — for
/// a partition it does not host (a group's offsets may name any).
#[test]
fn leaders_ask_a_coordinator_on_another_broker_before_a_transaction_writes() {
    let cluster = Cluster::start(3, &["--set", ONE_TXN_PARTITION]);
    let address = |node: i32| {
        cluster.brokers[usize::try_from(node - 1).unwrap()]
            .bootstrap
            .clone()
    };
    let mut any = Wire::connect(&cluster.brokers[0].bootstrap);
    create_topic(&mut any, "t", 3);
    let coordinator = coordinator_node(&mut any, "a", 1);
    let mut coord = Wire::connect(&address(coordinator));
    let a = Producer::init(&mut coord, "a");
    let (partition, leader) = (0..3)
        .map(|p| (p, cluster.partition_state("t", p).0))
        .find(|&(_, leader)| leader != coordinator)
        .expect("a partition led by another broker than the coordinator");
    let mut lead = Wire::connect(&address(leader));

    // Not in the transaction: refused, with each version's code, and
    // nothing written.
    let tp = ("t", partition);
    assert_eq!(a.produce(&mut lead, 9, tp, 0, &["x"]).0, INVALID_TXN_STATE);
    assert_eq!(
        a.produce(&mut lead, 11, tp, 0, &["x"]).0,
        TRANSACTION_ABORTABLE
    );
    assert_eq!(log_end_of(&mut lead, "t", partition), 0, "nothing written");
    // Added: written, and committed.
    a.add_ok(&mut coord, &[tp]);
    assert_eq!(a.produce(&mut lead, 9, tp, 0, &["y"]), (0, 0));
    assert_eq!(a.produce(&mut lead, 9, tp, 1, &["z"]), (0, 1));
    assert_eq!(a.end(&mut coord, 3, true), 0);
    wait_stable(&mut lead, "t", partition);
    assert_eq!(read_committed(&mut lead, "t", partition), ["y", "z"]);
    // A second producer of the id fences the first: the coordinator
    // elsewhere says so for the old epoch's next transaction.
    let a1 = Producer::init(&mut coord, "a");
    let end = log_end_of(&mut lead, "t", partition);
    assert_eq!(
        a.produce(&mut lead, 9, tp, 2, &["late"]).0,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        log_end_of(&mut lead, "t", partition),
        end,
        "nothing written"
    );

    // Transactional offsets, to a group coordinated by another broker,
    // which does not host the partition the offsets are for either.
    let leader_of_0 = cluster.partition_state("t", 0).0;
    let group = (0..)
        .map(|n| format!("g{n}"))
        .find(|g| ![coordinator, leader_of_0].contains(&coordinator_node(&mut any, g, 0)))
        .unwrap();
    let mut groups = Wire::connect(&address(coordinator_node(&mut any, &group, 0)));
    let member = join(&mut groups, &group);
    assert_eq!(
        a1.commit_offset(&mut groups, &member, "t", 3),
        INVALID_TXN_STATE,
        "the offsets partition is not in the transaction"
    );
    assert_eq!(a1.add_offsets(&mut coord, &group), 0);
    assert_eq!(
        a.commit_offset(&mut groups, &member, "t", 3),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(a1.commit_offset(&mut groups, &member, "t", 4), 0);
    assert_eq!(a1.end(&mut coord, 3, true), 0);
    let deadline = Instant::now() + WAIT;
    while committed_offset(&mut groups, &group, "t") != 4 {
        assert!(Instant::now() < deadline, "offset 4 never shows");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A plain commit there too: the partition exists in the cluster.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(&group)))
        .with_generation_id_or_member_epoch(member.generation)
        .with_member_id(str_bytes(&member.member_id))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(5),
                ]),
        ]);
    let committed = groups.send(8, &commit);
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    assert_eq!(committed_offset(&mut groups, &group, "t"), 5);
}

#[test]
fn kafka_python_commits_and_aborts_transactions() {
    let (broker, mut wire) = start(&[]);
    create_topic(&mut wire, "py", 3);
    let out = common::security::python_client(
        "kafka_python_transactions.py",
        &[&broker.bootstrap, "py", "py-txn", "py-group"],
    )
    .unwrap_or_else(|stderr| panic!("kafka-python failed:\n{stderr}"));
    let result: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let strings = |key: &str| -> Vec<String> {
        result[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let named =
        |prefix: &'static str, count: usize| (0..count).map(move |i| format!("{prefix}-{i}"));
    let mut committed: Vec<String> = named("committed-a", 6)
        .chain(named("committed-b", 4))
        .collect();
    committed.sort();
    let mut all: Vec<String> = committed
        .iter()
        .cloned()
        .chain(named("aborted", 6))
        .collect();
    all.sort();
    assert_eq!(strings("read_committed"), committed);
    assert_eq!(strings("read_uncommitted"), all);
    assert_eq!(
        result["group_offset"], 5,
        "the aborted offset commit is dropped"
    );
}

/// Produce v11 (Kafka 3.8+): a producer that knows TRANSACTION_ABORTABLE
/// hears it for a partition its transaction did not add, where older
/// versions hear INVALID_TXN_STATE; either way nothing is written.
#[test]
fn a_batch_not_added_at_produce_v11_is_transaction_abortable() {
    const TRANSACTION_ABORTABLE: i16 = 120;
    let (_broker, mut wire) = start(&[]);
    create_topic(&mut wire, "t", 1);
    let a = Producer::init(&mut wire, "a");
    assert_eq!(
        a.produce(&mut wire, 11, ("t", 0), 0, &["x"]).0,
        TRANSACTION_ABORTABLE
    );
    assert_eq!(log_end(&mut wire, "t"), 0, "nothing written");
}
