//! Answers that must match Kafka's because real clients act on them: a
//! consumer whose offset is out of range resets by `auto.offset.reset`
//! (earliest and latest, assigned or in a group, by Fetch with and
//! without topic ids) instead of spinning on an answer it cannot parse;
//! keyless records refused by compacted topics; every `compression.type`
//! Kafka accepts, with batches recompressed to it; authorized operations;
//! DescribeGroups v6 on an unknown group; configs Kafka 4.0 removed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::{Duration, Instant};

use common::BrokerProcess;
use common::cluster::wait_until;
use common::wire::{
    Wire, create_topic, fetch_from, fetch_request, produce, topic_name, wait_for_group_coordinator,
};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, DescribeClusterRequest, DescribeGroupsRequest, GroupId,
    IncrementalAlterConfigsRequest, MetadataRequest, ProduceRequest,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use rill_record::{BatchBuilder, BatchView, Compression, NewRecord};

const WAIT: Duration = Duration::from_secs(30);
const OFFSET_OUT_OF_RANGE: i16 = 1;
const INVALID_RECORD: i16 = 87;
const GROUP_ID_NOT_FOUND: i16 = 69;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(WAIT))
}

async fn create_with(broker: &BrokerProcess, name: &str, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let created = broker
        .admin()
        .create_topics([&topic], &options())
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{name} {configs:?}: {created:?}");
}

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
        // librdkafka reports the reset as a consumer error (Broker:
        // Offset out of range); it then resets and goes on.
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            return (message.offset(), value);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_refuses_records_without_a_key() {
    let broker = BrokerProcess::start(&[]);
    create_with(&broker, "by-key", &[("cleanup.policy", "compact")]).await;
    create_with(&broker, "either", &[("cleanup.policy", "delete")]).await;
    let producer = broker.producer(&[]);
    let keyless = producer
        .send(
            FutureRecord::<(), _>::to("by-key").payload("no key"),
            Timeout::After(WAIT),
        )
        .await;
    match keyless {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::InvalidRecord)
        }
        other => panic!("a keyless record on a compacted topic: {other:?}"),
    }
    let keyed = producer
        .send(
            FutureRecord::to("by-key").key("k").payload("v"),
            Timeout::After(WAIT),
        )
        .await
        .unwrap();
    assert_eq!(keyed.offset, 0, "nothing of the refused batch was written");
    producer
        .send(
            FutureRecord::<(), _>::to("either").payload("no key"),
            Timeout::After(WAIT),
        )
        .await
        .unwrap();

    // On the wire: INVALID_RECORD with each keyless record's index.
    let mut wire = Wire::connect(&broker.bootstrap);
    let batch = BatchBuilder::new(1_000)
        .with_records(&[
            NewRecord::key_value(b"a", Some(b"1")),
            NewRecord::value(b"2"),
            NewRecord::value(b"3"),
        ])
        .finish()
        .unwrap();
    let request: ProduceRequest = common::wire::produce_request("by-key", 0, batch);
    let response = wire.send(9, &request);
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, INVALID_RECORD);
    let indexes: Vec<i32> = partition
        .record_errors
        .iter()
        .map(|e| e.batch_index)
        .collect();
    assert_eq!(indexes, [1, 2]);
    assert!(
        partition.record_errors[0]
            .batch_index_error_message
            .as_ref()
            .unwrap()
            .contains("without key")
    );
}

/// The codec of the first batch stored in `topic`, and its records' values.
fn stored(wire: &mut Wire, topic: &str) -> (Compression, Vec<String>) {
    let (error, records) = fetch_from(wire, topic, 0, 0);
    assert_eq!(error, 0);
    let batch = BatchView::new(&records).unwrap();
    let codec = batch.attributes().compression().unwrap();
    let data = rill_record::records_data(&batch, 1 << 20).unwrap();
    let values = rill_record::Records::new(&data, batch.records_count())
        .map(|r| String::from_utf8(r.unwrap().value.unwrap().to_vec()).unwrap())
        .collect();
    (codec, values)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_type_is_accepted_and_batches_are_stored_in_it() {
    let broker = BrokerProcess::start(&[]);
    let codecs = [
        ("uncompressed", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ];
    let mut wire = Wire::connect(&broker.bootstrap);
    for (name, codec) in codecs {
        let topic = format!("stored-{name}");
        create_with(&broker, &topic, &[("compression.type", name)]).await;
        // The producer compresses with lz4 (or nothing, for an lz4 topic).
        let producer_codec = if codec == Compression::Lz4 {
            "none"
        } else {
            "lz4"
        };
        let producer = broker.producer(&[
            ("compression.codec", producer_codec),
            ("enable.idempotence", "true"),
            ("linger.ms", "50"),
        ]);
        let payloads: Vec<String> = (0..20).map(|i| format!("{name}-{i}")).collect();
        let sends: Vec<_> = payloads
            .iter()
            .map(|payload| {
                producer.send(
                    FutureRecord::<(), _>::to(&topic)
                        .partition(0)
                        .payload(payload),
                    Timeout::After(WAIT),
                )
            })
            .collect();
        for send in sends {
            send.await.unwrap();
        }
        let (stored_codec, values) = stored(&mut wire, &topic);
        assert_eq!(stored_codec, codec, "{topic}");
        assert_eq!(values[0], format!("{name}-0"));

        // A consumer reads every record back.
        let consumer = broker.consumer(&[]);
        assign_at(&consumer, &topic, 0);
        for i in 0..20 {
            assert_eq!(next(&consumer), (i, format!("{name}-{i}")));
        }
    }
    // `producer` keeps the producer's codec.
    create_with(&broker, "as-sent", &[("compression.type", "producer")]).await;
    let producer = broker.producer(&[("compression.codec", "gzip")]);
    producer
        .send(
            FutureRecord::<(), _>::to("as-sent")
                .partition(0)
                // Compressible: librdkafka sends a batch uncompressed when
                // gzip would not make it smaller.
                .payload(&"x".repeat(1000)),
            Timeout::After(WAIT),
        )
        .await
        .unwrap();
    assert_eq!(stored(&mut wire, "as-sent").0, Compression::Gzip);

    // Changed at run time by IncrementalAlterConfigs, levels too; bad
    // values are refused.
    let alter = |configs: Vec<(&str, &str)>| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("as-sent"))
                .with_configs(
                    configs
                        .into_iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .with_name(StrBytes::from_string(k.to_string()))
                                .with_config_operation(0)
                                .with_value(Some(StrBytes::from_string(v.to_string())))
                        })
                        .collect(),
                ),
        ])
    };
    let response = wire.send(
        1,
        &alter(vec![
            ("compression.type", "zstd"),
            ("compression.zstd.level", "9"),
        ]),
    );
    assert_eq!(response.responses[0].error_code, 0);
    for bad in [
        ("compression.type", "brotli"),
        ("compression.zstd.level", "23"),
        ("compression.gzip.level", "10"),
    ] {
        let response = wire.send(1, &alter(vec![bad]));
        assert_eq!(
            response.responses[0].error_code, 40,
            "{bad:?} is INVALID_CONFIG"
        );
    }
    let producer = broker.producer(&[("compression.codec", "none")]);
    let delivery = producer
        .send(
            FutureRecord::<(), _>::to("as-sent")
                .partition(0)
                .payload("y"),
            Timeout::After(WAIT),
        )
        .await
        .unwrap();
    let (error, records) = fetch_from(&mut wire, "as-sent", 0, delivery.offset);
    assert_eq!(error, 0);
    let batch = BatchView::new(&records).unwrap();
    assert_eq!(batch.base_offset(), delivery.offset);
    assert_eq!(batch.attributes().compression().unwrap(), Compression::Zstd);
}

/// The bit field of an authorized-operations answer: how many are allowed.
fn allowed(bits: i32) -> u32 {
    assert_ne!(bits, i32::MIN, "answered as not requested");
    bits.count_ones()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_operations_are_every_operation_without_an_authorizer() {
    let broker = BrokerProcess::start(&[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    create_topic(&mut wire, "ops");
    let asked = MetadataRequest::default()
        .with_topics(None)
        .with_include_cluster_authorized_operations(true)
        .with_include_topic_authorized_operations(true);
    // v10 still carries the cluster's; v12 only the topics'.
    let response = wire.send(10, &asked);
    assert_eq!(allowed(response.cluster_authorized_operations), 7);
    assert_eq!(allowed(response.topics[0].topic_authorized_operations), 8);
    let response = wire.send(
        12,
        &asked
            .clone()
            .with_include_cluster_authorized_operations(false),
    );
    assert_eq!(allowed(response.topics[0].topic_authorized_operations), 8);
    let response = wire.send(12, &MetadataRequest::default().with_topics(None));
    assert_eq!(response.topics[0].topic_authorized_operations, i32::MIN);

    let response = wire.send(
        1,
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
    );
    assert_eq!(allowed(response.cluster_authorized_operations), 7);
    let response = wire.send(1, &DescribeClusterRequest::default());
    assert_eq!(response.cluster_authorized_operations, i32::MIN);

    // A group: READ, DESCRIBE, DELETE, and (Kafka 4's, for group
    // configs) DESCRIBE_CONFIGS and ALTER_CONFIGS.
    let committer = broker.consumer(&[("group.id", "described")]);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("ops", 0, Offset::Offset(0))
        .unwrap();
    committer.commit(&commit, CommitMode::Sync).unwrap();
    let response = wire.send(
        5,
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_static_str("described"))])
            .with_include_authorized_operations(true),
    );
    assert_eq!(response.groups[0].error_code, 0);
    assert_eq!(allowed(response.groups[0].authorized_operations), 5);
}

#[test]
fn describe_groups_v6_answers_group_id_not_found_for_an_unknown_group() {
    let broker = BrokerProcess::start(&[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    wait_for_group_coordinator(&mut wire, "nobody");
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_static_str("nobody"))]);
    // The coordinator may still be loading its groups: clients retry.
    let mut response = wire.send(6, &request);
    wait_until(WAIT, "the coordinator to load", || {
        response = wire.send(6, &request);
        response.groups[0].error_code != COORDINATOR_LOAD_IN_PROGRESS
    });
    assert_eq!(response.groups[0].error_code, GROUP_ID_NOT_FOUND);
    // Before v6 (KIP-1043): a Dead group and no error.
    let response = wire.send(5, &request);
    assert_eq!(response.groups[0].error_code, 0);
    assert_eq!(response.groups[0].group_state.as_str(), "Dead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_kafka_4_removed_are_accepted_and_ignored() {
    // A 3.x broker property at start-up.
    let broker = BrokerProcess::start(&["--set", "log.message.format.version=3.0-IV1"]);
    // A 3.x admin tool creating a topic with them, at CreateTopics v4.
    let mut wire = Wire::connect(&broker.bootstrap);
    let config = |name: &str, value: &str| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_string(name.to_string()))
            .with_value(Some(StrBytes::from_string(value.to_string())))
    };
    let response = wire.send(
        4,
        &CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name("legacy"))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
                    .with_configs(vec![
                        config("message.format.version", "2.8-IV1"),
                        config("message.downconversion.enable", "true"),
                        config("message.timestamp.difference.max.ms", "60000"),
                        config("retention.ms", "3600000"),
                    ]),
            ])
            .with_timeout_ms(30_000),
    );
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
    // And altering them on a topic and on the broker.
    let set = |resource_type: i8, name: &'static str, config: &str| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_static_str(name))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string(config.to_string()))
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_static_str("1"))),
                ]),
        ])
    };
    let response = wire.send(1, &set(2, "legacy", "message.timestamp.difference.max.ms"));
    assert_eq!(response.responses[0].error_code, 0);
    let response = wire.send(1, &set(4, "", "log.message.downconversion.enable"));
    assert_eq!(response.responses[0].error_code, 0);
    // Ignored: not among the topic's configs; the real one kept.
    let described = broker
        .admin()
        .describe_configs(&[ResourceSpecifier::Topic("legacy")], &options())
        .await
        .unwrap();
    let entries = &described[0].as_ref().unwrap().entries;
    assert!(entries.iter().all(|e| !e.name.starts_with("message.format")
        && !e.name.starts_with("message.downconversion")
        && e.name != "message.timestamp.difference.max.ms"));
    let retention = entries.iter().find(|e| e.name == "retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    // The topic takes records as any other.
    assert_eq!(produce(&mut wire, "legacy", -1, -1, -1, &["a"]).0, 0);
}
