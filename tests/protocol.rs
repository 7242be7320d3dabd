//! Protocol behaviour librdkafka does not show directly, over raw
//! requests: long polls woken by appends, min_bytes, fetch by topic id,
//! fetch sessions, ListOffsets by max timestamp, DeleteRecords,
//! OffsetForLeaderEpoch, DescribeCluster, DescribeTopicPartitions,
//! CreateTopics and CreatePartitions with a client's own replica
//! assignment.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::BrokerProcess;
use common::wire::{Wire, create_topic, fetch_request, produce, topic_name};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DescribeClusterRequest, FetchRequest, FetchResponse, ListOffsetsRequest,
    MetadataRequest, OffsetForLeaderEpochRequest,
};
use kafka_protocol::records::RecordBatchDecoder;

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const OFFSET_OUT_OF_RANGE: i16 = 1;

fn fetch(topic: &str, offset: i64, max_wait_ms: i32, min_bytes: i32) -> FetchRequest {
    fetch_request(topic, 0, offset, max_wait_ms, min_bytes)
}

/// The values of the records in a fetch response's first partition.
fn values(response: &FetchResponse) -> Vec<String> {
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let mut records = partition.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    while !records.is_empty() {
        let set = RecordBatchDecoder::decode(&mut records).unwrap();
        for record in set.records {
            out.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    out
}

#[test]
fn a_long_poll_is_woken_by_an_append_not_by_its_timeout() {
    let temp = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_logging(
        &temp.path().join("data"),
        &[],
        "info,rill_server::network=trace",
    );
    let mut wire = Wire::connect(&broker.bootstrap);
    create_topic(&mut wire, "wake");
    let bootstrap = broker.bootstrap.clone();
    // The poll may wait 30 s; the connection's read timeout (below it)
    // fails the test if only the timeout ends the wait.
    let poll = std::thread::spawn(move || {
        let mut reader = Wire::connect(&bootstrap);
        reader.set_read_timeout(std::time::Duration::from_secs(20));
        reader.send(12, &fetch("wake", 0, 30_000, 1))
    });
    // The poll is read (and so parked: nothing exists yet) before the append.
    broker.wait_for_log(&["request read", "Fetch"]);
    assert_eq!(produce(&mut wire, "wake", -1, -1, -1, &["hello"]), (0, 0));
    let response = poll.join().unwrap();
    assert_eq!(values(&response), vec!["hello"]);
    assert_eq!(response.session_id, 0, "Rill never creates fetch sessions");
}

#[test]
fn min_bytes_waits_for_enough_data_and_max_wait_ends_an_empty_poll() {
    let temp = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_logging(
        &temp.path().join("data"),
        &[],
        "info,rill_server::network=trace",
    );
    let mut wire = Wire::connect(&broker.bootstrap);
    create_topic(&mut wire, "min-bytes");
    assert_eq!(produce(&mut wire, "min-bytes", -1, -1, -1, &["a"]), (0, 0));
    // Nothing beyond offset 1 arrives: the poll ends at max_wait, empty.
    let response = wire.send(12, &fetch("min-bytes", 1, 100, 1));
    assert!(values(&response).is_empty());
    broker.wait_for_log(&["request read", "Fetch"]);
    // One small batch is below min_bytes = 10 KiB: the poll goes on until
    // enough has arrived.
    let bootstrap = broker.bootstrap.clone();
    let poll = std::thread::spawn(move || {
        let mut reader = Wire::connect(&bootstrap);
        reader.set_read_timeout(std::time::Duration::from_secs(20));
        reader.send(12, &fetch("min-bytes", 0, 30_000, 10_000))
    });
    // Parked before the append, so only min_bytes keeps it waiting.
    broker.wait_for_log(&["request read", "Fetch"]);
    let big = "x".repeat(12_000);
    assert_eq!(produce(&mut wire, "min-bytes", -1, -1, -1, &[&big]).0, 0);
    let response = poll.join().unwrap();
    assert_eq!(values(&response).len(), 2);
}

#[test]
fn fetch_by_topic_id_sessions_and_out_of_range() {
    let broker = BrokerProcess::start(&[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    create_topic(&mut wire, "by-id");
    assert_eq!(produce(&mut wire, "by-id", -1, -1, -1, &["a", "b"]).0, 0);
    let metadata = wire.send(12, &MetadataRequest::default().with_topics(None));
    let id = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.to_string()).as_deref() == Some("by-id"))
        .unwrap()
        .topic_id;
    assert!(!id.is_nil());
    let mut request = fetch("by-id", 0, 0, 0);
    request.topics[0].topic_id = id;
    let response = wire.send(15, &request);
    assert_eq!(response.responses[0].topic_id, id);
    assert_eq!(values(&response), vec!["a", "b"]);
    // A session Rill never created.
    let response = wire.send(
        15,
        &request.clone().with_session_id(1234).with_session_epoch(1),
    );
    assert_eq!(response.error_code, FETCH_SESSION_ID_NOT_FOUND);
    // Beyond the log end.
    let response = wire.send(12, &fetch("by-id", 99, 0, 0));
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        OFFSET_OUT_OF_RANGE
    );
}

#[test]
fn list_offsets_delete_records_and_leader_epochs() {
    let broker = BrokerProcess::start(&[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    create_topic(&mut wire, "offsets");
    for value in ["a", "b", "c", "d"] {
        produce(&mut wire, "offsets", -1, -1, -1, &[value]);
    }
    let list = |wire: &mut Wire, timestamp: i64| {
        let response = wire.send(
            8,
            &ListOffsetsRequest::default().with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name("offsets"))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(timestamp),
                    ]),
            ]),
        );
        response.topics[0].partitions[0].offset
    };
    assert_eq!(list(&mut wire, -2), 0);
    assert_eq!(list(&mut wire, -1), 4);
    // Every batch has timestamp 1000 (BatchBuilder's base); the first wins.
    assert_eq!(list(&mut wire, -3), 0);

    let deleted = wire.send(
        2,
        &DeleteRecordsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                DeleteRecordsTopic::default()
                    .with_name(topic_name("offsets"))
                    .with_partitions(vec![
                        DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(2),
                    ]),
            ]),
    );
    let result = &deleted.topics[0].partitions[0];
    assert_eq!((result.error_code, result.low_watermark), (0, 2));
    assert_eq!(list(&mut wire, -2), 2);
    let response = wire.send(12, &fetch("offsets", 0, 0, 0));
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        OFFSET_OUT_OF_RANGE
    );

    let epochs = wire.send(
        4,
        &OffsetForLeaderEpochRequest::default().with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(topic_name("offsets"))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(0)
                        .with_leader_epoch(0),
                ]),
        ]),
    );
    let end = &epochs.topics[0].partitions[0];
    assert_eq!(
        (end.error_code, end.leader_epoch, end.end_offset),
        (0, 0, 4)
    );

    let cluster = wire.send(1, &DescribeClusterRequest::default());
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(
        format!("{}:{}", cluster.brokers[0].host, cluster.brokers[0].port),
        broker.bootstrap
    );
    assert!(!cluster.cluster_id.is_empty());
}

#[test]
fn partition_max_bytes_and_max_bytes_bound_a_fetch_but_never_below_one_batch() {
    let broker = BrokerProcess::start(&[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    create_topic(&mut wire, "bounded");
    let kib = "k".repeat(1024);
    for _ in 0..10 {
        assert_eq!(produce(&mut wire, "bounded", -1, -1, -1, &[&kib]).0, 0);
    }
    // Room for about three 1 KiB batches.
    let mut request = fetch("bounded", 0, 0, 0);
    request.topics[0].partitions[0].partition_max_bytes = 3_500;
    assert_eq!(values(&wire.send(12, &request)).len(), 3);
    // A bound below one batch still returns the first batch (KIP-74).
    request.topics[0].partitions[0].partition_max_bytes = 10;
    assert_eq!(values(&wire.send(12, &request)).len(), 1);
    // The response-wide max_bytes bounds it as well.
    request.topics[0].partitions[0].partition_max_bytes = 1 << 20;
    let request = request.with_max_bytes(2_200);
    assert_eq!(values(&wire.send(12, &request)).len(), 2);
}

#[test]
fn sigterm_answers_the_requests_in_flight_then_exits_0() {
    let temp = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start_logging(
        &temp.path().join("data"),
        &[],
        "info,rill_server::network=trace",
    );
    let mut wire = Wire::connect(&broker.bootstrap);
    create_topic(&mut wire, "draining");
    assert_eq!(
        produce(&mut wire, "draining", -1, -1, -1, &["kept"]),
        (0, 0)
    );
    // A long poll for more than exists, read by the broker before the signal.
    let bootstrap = broker.bootstrap.clone();
    let poll = std::thread::spawn(move || {
        let mut reader = Wire::connect(&bootstrap);
        reader.send(12, &fetch("draining", 0, 30_000, 1 << 20))
    });
    broker.wait_for_log(&["request read", "Fetch"]);
    let status = broker.stop();
    let response = poll.join().unwrap();
    assert_eq!(
        values(&response),
        vec!["kept"],
        "the poll is answered with what it has"
    );
    assert!(status.success(), "{status:?}");
    assert!(broker.data.join(".rill-clean-shutdown").exists());
}

/// (topic, partitions) of a DescribeTopicPartitions response, and its
/// next cursor.
type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

fn describe_partitions(
    wire: &mut Wire,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> Page {
    use kafka_protocol::messages::DescribeTopicPartitionsRequest;
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(topic_name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(topic, partition)| {
            Cursor::default()
                .with_topic_name(topic_name(topic))
                .with_partition_index(partition)
        }));
    let response = wire.send(0, &request);
    let topics = response
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
            for p in &t.partitions {
                assert!(p.leader_id.0 >= 0, "the one broker leads");
                assert_eq!(p.isr_nodes.len(), 1);
            }
            (
                t.name.as_ref().unwrap().to_string(),
                t.error_code,
                partitions,
            )
        })
        .collect();
    let next = response
        .next_cursor
        .map(|c| (c.topic_name.to_string(), c.partition_index));
    (topics, next)
}

#[test]
fn describe_topic_partitions_pages_through_topics_by_cursor() {
    let broker = BrokerProcess::start(&[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    for (name, partitions) in [("b", 2), ("a", 3), ("c", 1)] {
        common::wire::create_topic_with(&mut wire, name, partitions);
    }
    let owned = |rows: &[(&str, i16, &[i32])]| -> Vec<(String, i16, Vec<i32>)> {
        rows.iter()
            .map(|(t, e, p)| (t.to_string(), *e, p.to_vec()))
            .collect()
    };
    // Every topic, sorted, four partitions a page.
    let (page, next) = describe_partitions(&mut wire, &[], 4, None);
    assert_eq!(page, owned(&[("a", 0, &[0, 1, 2]), ("b", 0, &[0])]));
    assert_eq!(next, Some(("b".to_string(), 1)));
    let (page, next) = describe_partitions(&mut wire, &[], 4, Some(("b", 1)));
    assert_eq!(page, owned(&[("b", 0, &[1]), ("c", 0, &[0])]));
    assert_eq!(next, None);
    // A page that ends with a topic points at the next one.
    let (page, next) = describe_partitions(&mut wire, &[], 3, None);
    assert_eq!(page, owned(&[("a", 0, &[0, 1, 2])]));
    assert_eq!(next, Some(("b".to_string(), 0)));
    // Topics by name, sorted; one that does not exist says so.
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const INVALID_REQUEST: i16 = 42;
    let (page, next) = describe_partitions(&mut wire, &["zz", "c", "a"], 2000, None);
    assert_eq!(
        page,
        owned(&[
            ("a", 0, &[0, 1, 2]),
            ("c", 0, &[0]),
            ("zz", UNKNOWN_TOPIC_OR_PARTITION, &[])
        ])
    );
    assert_eq!(next, None);
    // A cursor must name one of the topics asked for.
    let (page, _) = describe_partitions(&mut wire, &["a"], 10, Some(("b", 0)));
    assert_eq!(page, owned(&[("a", INVALID_REQUEST, &[])]));
}

fn broker_ids(brokers: &[i32]) -> Vec<kafka_protocol::messages::BrokerId> {
    brokers
        .iter()
        .map(|b| kafka_protocol::messages::BrokerId(*b))
        .collect()
}

/// CreateTopics of `name` with the client's own replica `assignment`
/// (and `partitions`, -1 to leave it to the assignment): the error code.
fn create_assigned(wire: &mut Wire, name: &str, partitions: i32, assignment: &[&[i32]]) -> i16 {
    let numbered: Vec<(i32, &[i32])> = (0..).zip(assignment.iter().copied()).collect();
    create_numbered(wire, name, partitions, &numbered)
}

/// [`create_assigned`] with each partition's index given.
fn create_numbered(
    wire: &mut Wire,
    name: &str,
    partitions: i32,
    assignment: &[(i32, &[i32])],
) -> i16 {
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic,
    };
    let assignments = assignment
        .iter()
        .map(|&(index, brokers)| {
            CreatableReplicaAssignment::default()
                .with_partition_index(index)
                .with_broker_ids(broker_ids(brokers))
        })
        .collect();
    let response = wire.send(
        7,
        &kafka_protocol::messages::CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(-1)
                    .with_assignments(assignments),
            ])
            .with_timeout_ms(30_000),
    );
    response.topics[0].error_code
}

#[test]
fn topics_and_partitions_follow_a_clients_own_replica_assignment_or_refuse_it_whole() {
    const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    const INVALID_REQUEST: i16 = 42;
    let broker = BrokerProcess::start(&[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    assert_eq!(create_assigned(&mut wire, "placed", -1, &[&[1], &[1]]), 0);
    // Refused, and nothing made: an unknown broker, a broker twice, an
    // uneven replication factor, and partitions given beside it.
    for (name, partitions, assignment, code) in [
        ("unknown", -1, &[&[2][..]][..], INVALID_REPLICA_ASSIGNMENT),
        ("twice", -1, &[&[1, 1][..]][..], INVALID_REPLICA_ASSIGNMENT),
        (
            "uneven",
            -1,
            &[&[1][..], &[][..]][..],
            INVALID_REPLICA_ASSIGNMENT,
        ),
        ("both", 3, &[&[1][..]][..], INVALID_REQUEST),
    ] {
        assert_eq!(
            create_assigned(&mut wire, name, partitions, assignment),
            code,
            "{name}"
        );
    }
    // Partition 0 twice, or numbering that skips 0.
    for (name, numbered) in [
        ("repeated", &[(0, &[1][..]), (0, &[1][..])][..]),
        ("skipping", &[(1, &[1][..])][..]),
    ] {
        assert_eq!(
            create_numbered(&mut wire, name, -1, numbered),
            INVALID_REPLICA_ASSIGNMENT,
            "{name}"
        );
    }
    let metadata = wire.send(12, &MetadataRequest::default().with_topics(None));
    let names: Vec<String> = metadata
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    assert_eq!(names, vec!["placed".to_string()]);
    let placed = &metadata.topics[0];
    assert_eq!(placed.partitions.len(), 2);
    assert!(placed.partitions.iter().all(|p| p.replica_nodes.len() == 1));

    // CreatePartitions too: one assignment per new partition, each of the
    // topic's replication factor, on brokers that exist.
    for (count, assignment, code) in [
        (4, &[&[1][..]][..], INVALID_REPLICA_ASSIGNMENT),
        (3, &[&[2][..]][..], INVALID_REPLICA_ASSIGNMENT),
        (3, &[&[1, 1][..]][..], INVALID_REPLICA_ASSIGNMENT),
        (3, &[&[1][..]][..], 0),
    ] {
        assert_eq!(
            grow_assigned(&mut wire, "placed", count, assignment),
            code,
            "{count} {assignment:?}"
        );
    }
    let metadata = wire.send(
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(topic_name("placed"))),
        ])),
    );
    assert_eq!(metadata.topics[0].partitions.len(), 3);
}

/// CreatePartitions of `name` to `count` with the client's own
/// `assignment` of the new partitions: the error code.
fn grow_assigned(wire: &mut Wire, name: &str, count: i32, assignment: &[&[i32]]) -> i16 {
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    let assignments = assignment
        .iter()
        .map(|brokers| CreatePartitionsAssignment::default().with_broker_ids(broker_ids(brokers)))
        .collect();
    let response = wire.send(
        3,
        &kafka_protocol::messages::CreatePartitionsRequest::default()
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(topic_name(name))
                    .with_count(count)
                    .with_assignments(Some(assignments)),
            ])
            .with_timeout_ms(30_000),
    );
    response.results[0].error_code
}
