//! Topics and configs through librdkafka's admin client against the real
//! broker: create (with validate_only), describe, alter, grow, delete,
//! configs persisted across restarts, large messages, 1,000 partitions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use common::BrokerProcess;
use rdkafka::Message;
use rdkafka::admin::{
    AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

const WAIT: Duration = Duration::from_secs(30);

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(WAIT))
}

fn partitions_of(broker: &BrokerProcess, topic: &str) -> Option<usize> {
    let consumer = broker.consumer(&[]);
    let metadata = consumer.fetch_metadata(None, WAIT).unwrap();
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len())
}

async fn topic_config(
    broker: &BrokerProcess,
    topic: &str,
    name: &str,
) -> (Option<String>, ConfigSource) {
    let admin = broker.admin();
    let results = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &options())
        .await
        .unwrap();
    let resource = results.into_iter().next().unwrap().unwrap();
    let entry = resource
        .entries
        .into_iter()
        .find(|entry| entry.name == name)
        .unwrap_or_else(|| panic!("{name} is described"));
    (entry.value, entry.source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_described_altered_grown_and_deleted() {
    let mut broker = BrokerProcess::start(&[]);
    let admin = broker.admin();
    let topic = NewTopic::new("payments", 2, TopicReplication::Fixed(1))
        .set("retention.ms", "3600000")
        .set("flush.policy", "none");

    // validate_only checks and creates nothing.
    let results = admin
        .create_topics([&topic], &options().validate_only(true))
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(partitions_of(&broker, "payments"), None);

    let results = admin.create_topics([&topic], &options()).await.unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(partitions_of(&broker, "payments"), Some(2));
    let again = admin.create_topics([&topic], &options()).await.unwrap();
    assert_eq!(
        again[0],
        Err(("payments".to_string(), RDKafkaErrorCode::TopicAlreadyExists))
    );
    let bad =
        NewTopic::new("bad-config", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon");
    let results = admin.create_topics([&bad], &options()).await.unwrap();
    assert_eq!(
        results[0],
        Err(("bad-config".to_string(), RDKafkaErrorCode::InvalidConfig))
    );
    let bad = NewTopic::new("three-copies", 1, TopicReplication::Fixed(3));
    let results = admin.create_topics([&bad], &options()).await.unwrap();
    assert_eq!(
        results[0],
        Err((
            "three-copies".to_string(),
            RDKafkaErrorCode::InvalidReplicationFactor
        ))
    );

    // Overrides are reported as topic configs, the rest as defaults.
    assert_eq!(
        topic_config(&broker, "payments", "retention.ms").await,
        (Some("3600000".to_string()), ConfigSource::DynamicTopic)
    );
    assert_eq!(
        topic_config(&broker, "payments", "segment.bytes").await,
        (Some("1073741824".to_string()), ConfigSource::Default)
    );

    // AlterConfigs replaces the overrides.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("payments"))
        .set("retention.ms", "7200000")
        .set("max.message.bytes", "2000000");
    let results = admin.alter_configs([&alter], &options()).await.unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(
        topic_config(&broker, "payments", "retention.ms")
            .await
            .0
            .as_deref(),
        Some("7200000")
    );
    assert_eq!(
        topic_config(&broker, "payments", "flush.policy").await,
        (Some("fsync".to_string()), ConfigSource::Default),
        "an override left out of AlterConfigs is removed"
    );

    // Grow the topic; validate_only first.
    let grow = NewPartitions::new("payments", 5);
    let results = admin
        .create_partitions([&grow], &options().validate_only(true))
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(partitions_of(&broker, "payments"), Some(2));
    let results = admin.create_partitions([&grow], &options()).await.unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(partitions_of(&broker, "payments"), Some(5));
    let shrink = NewPartitions::new("payments", 3);
    let results = admin
        .create_partitions([&shrink], &options())
        .await
        .unwrap();
    assert_eq!(
        results[0],
        Err(("payments".to_string(), RDKafkaErrorCode::InvalidPartitions))
    );

    // Everything survives a restart.
    drop(admin);
    assert!(broker.stop().success());
    broker.restart();
    assert_eq!(partitions_of(&broker, "payments"), Some(5));
    assert_eq!(
        topic_config(&broker, "payments", "max.message.bytes").await,
        (Some("2000000".to_string()), ConfigSource::DynamicTopic)
    );

    let admin = broker.admin();
    let results = admin
        .delete_topics(&["payments"], &options())
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(partitions_of(&broker, "payments"), None);
    let results = admin
        .delete_topics(&["payments"], &options())
        .await
        .unwrap();
    assert_eq!(
        results[0],
        Err((
            "payments".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_defaults_are_described_and_set_at_run_time() {
    let mut broker = BrokerProcess::start(&["--set", "log.retention.hours=2"]);
    let admin = broker.admin();
    let results = admin
        .describe_configs(&[ResourceSpecifier::Broker(1)], &options())
        .await
        .unwrap();
    let configs = results.into_iter().next().unwrap().unwrap();
    let retention = configs.get("log.retention.hours").unwrap();
    assert_eq!(retention.value.as_deref(), Some("2"));
    assert_eq!(retention.source, ConfigSource::StaticBroker);
    // A topic without an override takes the broker's default.
    let topic = NewTopic::new("defaults", 1, TopicReplication::Fixed(1));
    admin.create_topics([&topic], &options()).await.unwrap();
    assert_eq!(
        topic_config(&broker, "defaults", "retention.ms").await,
        (Some("7200000".to_string()), ConfigSource::StaticBroker)
    );
    let alter = AlterConfig::new(ResourceSpecifier::Broker(1)).set("log.retention.ms", "60000");
    let results = admin.alter_configs([&alter], &options()).await.unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(
        topic_config(&broker, "defaults", "retention.ms").await,
        (
            Some("60000".to_string()),
            ConfigSource::DynamicDefaultBroker
        )
    );
    // rdkafka 0.39 reports every AlterConfigs resource as Ok (it drops the
    // per-resource error code), so the refusal shows as nothing changing.
    let alter = AlterConfig::new(ResourceSpecifier::Broker(1))
        .set("listeners", "PLAINTEXT://0.0.0.0:1")
        .set("log.retention.ms", "1");
    admin.alter_configs([&alter], &options()).await.unwrap();
    assert_eq!(
        topic_config(&broker, "defaults", "retention.ms").await,
        (
            Some("60000".to_string()),
            ConfigSource::DynamicDefaultBroker
        ),
        "a request naming listeners is refused whole"
    );
    // Run-time broker configs are persisted.
    drop(admin);
    assert!(broker.stop().success());
    broker.restart();
    assert_eq!(
        topic_config(&broker, "defaults", "retention.ms").await,
        (
            Some("60000".to_string()),
            ConfigSource::DynamicDefaultBroker
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_messages_fit_where_allowed_and_larger_are_refused() {
    let broker = BrokerProcess::start(&[]);
    let admin = broker.admin();
    let big =
        NewTopic::new("big", 1, TopicReplication::Fixed(1)).set("max.message.bytes", "2097152");
    admin.create_topics([&big], &options()).await.unwrap();
    let producer = broker.producer(&[("message.max.bytes", "10000000")]);
    let payload = vec![7u8; 1 << 20];
    producer
        .send(
            FutureRecord::<(), _>::to("big").payload(&payload),
            Timeout::After(WAIT),
        )
        .await
        .unwrap();
    let consumer = broker.consumer(&[]);
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset("big", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let message = consumer.poll(WAIT).unwrap().unwrap();
    assert_eq!(message.payload().unwrap().len(), 1 << 20);
    assert!(message.payload().unwrap().iter().all(|b| *b == 7));

    // Beyond the topic's max.message.bytes: MESSAGE_TOO_LARGE from the broker.
    let too_big = vec![1u8; 3 << 20];
    let error = producer
        .send(
            FutureRecord::<(), _>::to("big").payload(&too_big),
            Timeout::After(WAIT),
        )
        .await
        .unwrap_err()
        .0;
    assert_eq!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge),
        "{error}"
    );
    // And the default limit (1 MiB + 12) applies to other topics.
    let error = producer
        .send(
            FutureRecord::<(), _>::to("default-limit").payload(&payload),
            Timeout::After(WAIT),
        )
        .await
        .unwrap_err()
        .0;
    assert_eq!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_partitions_take_writes_and_reads() {
    let broker = BrokerProcess::start(&[]);
    let admin = broker.admin();
    let wide = NewTopic::new("wide", 1000, TopicReplication::Fixed(1));
    let results = admin.create_topics([&wide], &options()).await.unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(partitions_of(&broker, "wide"), Some(1000));
    let producer = broker.producer(&[("linger.ms", "20")]);
    let deliveries: Vec<_> = (0..1000)
        .map(|p| {
            let payload = format!("partition {p}");
            producer
                .send_result(
                    FutureRecord::<(), _>::to("wide")
                        .partition(p)
                        .payload(&payload),
                )
                .map_err(|(error, _)| error)
                .unwrap()
        })
        .collect();
    for (p, delivery) in deliveries.into_iter().enumerate() {
        let delivery = delivery.await.unwrap().map_err(|(error, _)| error).unwrap();
        assert_eq!((delivery.partition, delivery.offset), (p as i32, 0));
    }
    let consumer = broker.consumer(&[]);
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..1000 {
        assignment
            .add_partition_offset("wide", p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 1000 {
        let message = consumer.poll(WAIT).unwrap().unwrap();
        assert_eq!(
            message.payload(),
            Some(format!("partition {}", message.partition()).as_bytes())
        );
        seen.insert(message.partition());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toml_config_file_and_set_flags_configure_the_broker() {
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("broker.toml");
    std::fs::write(
        &config,
        "num.partitions = 3\nauto.create.topics.enable = true\n[log]\nretention.ms = 5000\nsegment.bytes = 1048576\n",
    )
    .unwrap();
    let config = config.display().to_string();
    // --set beats the file.
    let broker = BrokerProcess::start(&["--config", &config, "--set", "log.segment.bytes=2097152"]);
    let producer = broker.producer(&[]);
    producer
        .send(
            FutureRecord::<(), _>::to("auto").payload("x"),
            Timeout::After(WAIT),
        )
        .await
        .unwrap();
    assert_eq!(
        partitions_of(&broker, "auto"),
        Some(3),
        "num.partitions from the file"
    );
    assert_eq!(
        topic_config(&broker, "auto", "retention.ms").await,
        (Some("5000".to_string()), ConfigSource::StaticBroker)
    );
    assert_eq!(
        topic_config(&broker, "auto", "segment.bytes")
            .await
            .0
            .as_deref(),
        Some("2097152")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_pythons_admin_client_describes_the_log_dirs_with_partition_sizes() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let broker = BrokerProcess::start_in(&data, &[]);
    let admin = broker.admin();
    admin
        .create_topics(
            &[NewTopic::new("sized", 2, TopicReplication::Fixed(1))],
            &options(),
        )
        .await
        .unwrap();
    let producer = broker.producer(&[]);
    let payload = "x".repeat(10_000);
    producer
        .send(
            FutureRecord::<(), _>::to("sized")
                .partition(1)
                .payload(&payload),
            Timeout::After(WAIT),
        )
        .await
        .map_err(|(error, _)| error)
        .unwrap();
    let out =
        common::security::python_client("kafka_python_log_dirs.py", &[&broker.bootstrap]).unwrap();
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dirs = answer[0]["log_dirs"].as_array().unwrap();
    assert_eq!(dirs.len(), 1, "{answer}");
    let dir = &dirs[0];
    assert_eq!(dir["error_code"], 0);
    assert_eq!(
        std::path::Path::new(dir["log_dir"].as_str().unwrap()),
        data.as_path()
    );
    let sized = dir["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "sized")
        .unwrap_or_else(|| panic!("no topic sized in {dir}"));
    let size_of = |index: i64| {
        sized["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["partition_index"] == index)
            .unwrap()["partition_size"]
            .as_i64()
            .unwrap()
    };
    // The written partition holds the record; the other holds nothing.
    assert!(size_of(1) >= 10_000, "{sized}");
    assert_eq!(size_of(0), 0);
    // The file system's size (v4), when kafka-python asks at v4.
    if let Some(total) = dir.get("total_bytes").and_then(serde_json::Value::as_i64) {
        assert!(
            total > 0 && dir["usable_bytes"].as_i64().unwrap() <= total,
            "{dir}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_pythons_admin_client_lists_the_config_resources() {
    let broker = BrokerProcess::start(&[]);
    broker
        .admin()
        .create_topics(
            &[
                NewTopic::new("listed-b", 1, TopicReplication::Fixed(1)),
                NewTopic::new("listed-a", 1, TopicReplication::Fixed(1)),
            ],
            &options(),
        )
        .await
        .unwrap();
    let out =
        common::security::python_client("kafka_python_config_resources.py", &[&broker.bootstrap])
            .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names = |of: &str, kind: &str| -> Vec<String> {
        answer[of][kind]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .map(|n| n.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    // Every topic, sorted, and the broker itself (node 1); nothing else
    // has configs in Rill.
    let topics = names("every", "topic");
    assert!(topics.windows(2).all(|w| w[0] < w[1]), "sorted: {topics:?}");
    for topic in ["listed-a", "listed-b"] {
        assert!(topics.iter().any(|t| t == topic), "{answer}");
    }
    assert_eq!(names("every", "broker"), ["1"], "{answer}");
    let kinds: Vec<&String> = answer["every"].as_object().unwrap().keys().collect();
    assert_eq!(kinds, ["broker", "topic"], "{answer}");
    // Asked for topics only: the same topics, no broker.
    assert_eq!(names("topics", "topic"), topics);
    assert_eq!(answer["topics"].as_object().unwrap().len(), 1, "{answer}");
}
