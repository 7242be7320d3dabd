//! Client quotas (KIP-13, KIP-124, KIP-219, KIP-546, KIP-599) against the
//! real broker: set with `rill quota`, seen on the wire as Kafka's
//! throttle times and THROTTLING_QUOTA_EXCEEDED, the throttled
//! connection held, other clients untouched, and librdkafka throttled
//! and still getting everything through.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::BrokerProcess;
use common::wire::{self, Wire};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, ApiVersionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeClientQuotasRequest, MetadataRequest,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::util::Timeout;

const WAIT: Duration = Duration::from_secs(60);
/// Quota windows of a second, two of them: a client is measured over one
/// to two seconds, so the tests need not send ten seconds of traffic.
const SHORT_WINDOWS: [&str; 4] = [
    "--set",
    "quota.window.num=2",
    "--set",
    "quota.window.size.seconds=1",
];
/// THROTTLING_QUOTA_EXCEEDED.
const THROTTLED: i16 = 89;

/// `rill quota ARGS --bootstrap BROKER`: its stdout, or its stderr.
fn rill_quota(broker: &BrokerProcess, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(common::rill_binary())
        .arg("quota")
        .args(args)
        .args(["--bootstrap", &broker.bootstrap])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The rows of `rill quota list ARGS`, split into cells.
fn quota_rows(broker: &BrokerProcess, args: &[&str]) -> Vec<Vec<String>> {
    let mut list = vec!["list"];
    list.extend_from_slice(args);
    rill_quota(broker, &list)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_string()).collect()
}

#[test]
fn rill_quota_sets_lists_and_removes_quotas_that_survive_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start_in(&temp.path().join("data"), &[]);
    rill_quota(
        &broker,
        &[
            "set",
            "--user",
            "alice",
            "--add-config",
            "producer_byte_rate=1024,consumer_byte_rate=2048",
        ],
    )
    .unwrap();
    rill_quota(
        &broker,
        &[
            "set",
            "--user-defaults",
            "--client",
            "app",
            "--add-config",
            "request_percentage=12.5",
        ],
    )
    .unwrap();
    let everything = quota_rows(&broker, &[]);
    assert_eq!(everything.len(), 3, "{everything:?}");
    assert!(everything.contains(&row(&["alice", "-", "producer_byte_rate", "1024"])));
    assert!(everything.contains(&row(&["alice", "-", "consumer_byte_rate", "2048"])));
    assert!(everything.contains(&row(&["<default>", "app", "request_percentage", "12.5"])));
    // Filters: alice's entities (not the defaults'), the default user's.
    assert_eq!(quota_rows(&broker, &["--user", "alice"]).len(), 2);
    assert_eq!(
        quota_rows(&broker, &["--user-defaults"]),
        vec![row(&["<default>", "app", "request_percentage", "12.5"])]
    );

    // Kafka's refusals: a fractional byte rate (by the broker), an
    // unknown key (by the tool), no entity.
    let fractional = rill_quota(
        &broker,
        &[
            "set",
            "--user",
            "alice",
            "--add-config",
            "producer_byte_rate=1.5",
        ],
    )
    .unwrap_err();
    assert!(
        fractional.contains("InvalidRequest") && fractional.contains("Long"),
        "{fractional}"
    );
    let unknown = rill_quota(
        &broker,
        &["set", "--user", "alice", "--add-config", "bogus=1"],
    )
    .unwrap_err();
    assert!(unknown.contains("not a quota"), "{unknown}");
    assert!(rill_quota(&broker, &["set", "--add-config", "producer_byte_rate=1"]).is_err());

    // The quotas are metadata: a restart keeps them.
    broker.stop();
    broker.restart();
    assert_eq!(quota_rows(&broker, &[]).len(), 3);
    rill_quota(
        &broker,
        &[
            "set",
            "--user",
            "alice",
            "--delete-config",
            "producer_byte_rate,consumer_byte_rate",
        ],
    )
    .unwrap();
    assert!(quota_rows(&broker, &["--user", "alice"]).is_empty());
    assert_eq!(quota_rows(&broker, &[]).len(), 1);
}

#[test]
fn the_quota_apis_refuse_what_kafka_refuses_and_validate_only_changes_nothing() {
    let broker = BrokerProcess::start(&[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    let entity = |name: &str| {
        vec![
            EntityData::default()
                .with_entity_type(StrBytes::from_static_str("user"))
                .with_entity_name(Some(StrBytes::from_string(name.to_string()))),
        ]
    };
    let set = |name: &str, key: &'static str, value: f64| {
        EntryData::default()
            .with_entity(entity(name))
            .with_ops(vec![
                OpData::default()
                    .with_key(StrBytes::from_static_str(key))
                    .with_value(value),
            ])
    };
    // One request: a valid entity, one with an unknown key, one with an
    // IP entity; each answered alone, validate_only storing nothing.
    let request = AlterClientQuotasRequest::default().with_entries(vec![
        set("bob", "producer_byte_rate", 4096.0),
        set("carol", "bogus", 1.0),
        EntryData::default()
            .with_entity(vec![
                EntityData::default()
                    .with_entity_type(StrBytes::from_static_str("ip"))
                    .with_entity_name(Some(StrBytes::from_static_str("10.0.0.1"))),
            ])
            .with_ops(vec![
                OpData::default()
                    .with_key(StrBytes::from_static_str("connection_creation_rate"))
                    .with_value(1.0),
            ]),
    ]);
    for validate_only in [true, false] {
        let response = wire.send(1, &request.clone().with_validate_only(validate_only));
        let codes: Vec<i16> = response.entries.iter().map(|e| e.error_code).collect();
        assert_eq!(codes, [0, 42, 42], "INVALID_REQUEST for the bad entities");
        let listed = quota_rows(&broker, &[]);
        if validate_only {
            assert!(listed.is_empty(), "{listed:?}");
        } else {
            assert_eq!(
                listed,
                vec![row(&["bob", "-", "producer_byte_rate", "4096"])]
            );
        }
    }
    // Describe: an unknown entity type is UNSUPPORTED_VERSION, a
    // component twice INVALID_REQUEST, a strict filter only exact shapes.
    let component = |entity_type: &'static str, match_type: i8, name: Option<&'static str>| {
        ComponentData::default()
            .with_entity_type(StrBytes::from_static_str(entity_type))
            .with_match_type(match_type)
            .with_match(name.map(StrBytes::from_static_str))
    };
    let describe = |wire: &mut Wire, components: Vec<ComponentData>, strict: bool| {
        wire.send(
            1,
            &DescribeClientQuotasRequest::default()
                .with_components(components)
                .with_strict(strict),
        )
    };
    assert_eq!(
        describe(&mut wire, vec![component("group", 2, None)], false).error_code,
        35
    );
    let twice = describe(
        &mut wire,
        vec![component("user", 2, None), component("user", 1, None)],
        false,
    );
    assert_eq!(twice.error_code, 42);
    let bob = describe(&mut wire, vec![component("user", 0, Some("bob"))], true);
    assert_eq!(bob.error_code, 0);
    let entries = bob.entries.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].values[0].key.as_str(), "producer_byte_rate");
    assert_eq!(entries[0].values[0].value, 4096.0);
    let strict_client = describe(&mut wire, vec![component("client-id", 2, None)], true);
    assert!(strict_client.entries.unwrap().is_empty());
}

/// A small batch of `bytes` of value, for `rill-tests` wire produce.
fn batch_of(bytes: usize) -> Vec<u8> {
    let value = vec![b'q'; bytes];
    rill_record::BatchBuilder::new(0)
        .with_records(&[rill_record::NewRecord::value(&value)])
        .finish()
        .unwrap()
}

#[test]
fn a_producer_over_its_byte_rate_is_throttled_and_held_while_another_is_not() {
    let http = format!("127.0.0.1:{}", common::cluster::free_port());
    let mut args = SHORT_WINDOWS.to_vec();
    args.extend(["--http", &http]);
    let broker = BrokerProcess::start(&args);
    wire::create_topic(&mut Wire::connect(&broker.bootstrap), "metered");
    rill_quota(
        &broker,
        &[
            "set",
            "--client",
            "slow",
            "--add-config",
            "producer_byte_rate=10240",
        ],
    )
    .unwrap();
    // 20 KiB against 10 KiB/s measured over a second: about a second over.
    let mut slow = Wire::connect_as(&broker.bootstrap, "slow");
    let response = slow.send(9, &wire::produce_request("metered", 0, batch_of(20 * 1024)));
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, 0, "a throttled write is still written");
    let throttle = Duration::from_millis(response.throttle_time_ms as u64);
    assert!(throttle > Duration::ZERO, "no throttle time");
    // The connection is held: the next request, even one that is not
    // charged, is read only once the throttle time has passed.
    let answered = Instant::now();
    slow.send(3, &ApiVersionsRequest::default());
    assert!(
        answered.elapsed() >= throttle / 2,
        "answered after {:?} of a {throttle:?} throttle",
        answered.elapsed()
    );

    // Another client id has no quota: the same write is not throttled.
    let mut fast = Wire::connect_as(&broker.bootstrap, "fast");
    let response = fast.send(9, &wire::produce_request("metered", 0, batch_of(20 * 1024)));
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(response.throttle_time_ms, 0);
    assert_eq!(wire::log_end(&mut fast, "metered"), 2);

    // The metrics count the one throttled response and its time.
    let metrics = common::http::get(&http, "/metrics", "text/plain").body;
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    assert_eq!(
        value(r#"rill_throttled_responses_total{api="Produce"}"#),
        1.0
    );
    let seconds = value(r#"rill_throttle_seconds_total{api="Produce"}"#);
    assert!(
        (seconds - throttle.as_secs_f64()).abs() < 0.001,
        "{seconds} s counted for a {throttle:?} throttle"
    );
}

#[test]
fn a_consumer_over_its_byte_rate_gets_an_empty_throttled_fetch_then_the_rest() {
    let broker = BrokerProcess::start(&SHORT_WINDOWS);
    let mut writer = Wire::connect(&broker.bootstrap);
    wire::create_topic(&mut writer, "metered");
    for _ in 0..8 {
        let (code, _) = wire::produce_batch(&mut writer, "metered", 0, batch_of(2048));
        assert_eq!(code, 0);
    }
    rill_quota(
        &broker,
        &[
            "set",
            "--client",
            "reader",
            "--add-config",
            "consumer_byte_rate=4096",
        ],
    )
    .unwrap();
    let mut reader = Wire::connect_as(&broker.bootstrap, "reader");
    // One fetch may take what the quota allows over its window (4 KiB):
    // the first batch or two.
    let first = reader.send(11, &wire::fetch_request("metered", 0, 0, 0, 0));
    assert_eq!(first.throttle_time_ms, 0);
    let records = first.responses[0].partitions[0].records.clone().unwrap();
    assert!(
        !records.is_empty() && records.len() <= 2 * 2200,
        "{} bytes",
        records.len()
    );
    // Another connection of the same client (not held) is over the
    // quota now: an empty response with the time to wait.
    let mut again = Wire::connect_as(&broker.bootstrap, "reader");
    let throttled = again.send(11, &wire::fetch_request("metered", 0, 0, 0, 0));
    assert!(throttled.throttle_time_ms > 0);
    assert!(throttled.responses.is_empty(), "a throttled fetch is empty");
    // The connection is held while throttled; every answer is either
    // data or empty with a time to wait, and the data comes (once the
    // measured window has grown past its first second).
    let mut fetched = false;
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let later = again.send(11, &wire::fetch_request("metered", 0, 0, 0, 0));
        if later.responses.is_empty() {
            assert!(later.throttle_time_ms > 0, "empty without a throttle");
            continue;
        }
        let records = later.responses[0].partitions[0].records.clone().unwrap();
        assert!(!records.is_empty());
        fetched = true;
        break;
    }
    assert!(fetched, "the consumer never got past its quota");
}

#[test]
fn partition_mutations_over_the_rate_are_refused_with_throttling_quota_exceeded() {
    let broker = BrokerProcess::start(&SHORT_WINDOWS);
    rill_quota(
        &broker,
        &[
            "set",
            "--client",
            "rill-tests",
            "--add-config",
            "controller_mutation_rate=1",
        ],
    )
    .unwrap();
    let create = |name: &str, partitions: i32| {
        CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(wire::topic_name(name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1),
            ])
            .with_timeout_ms(30_000)
    };
    // Four partitions at one a second: created, and throttled.
    let first = Wire::connect(&broker.bootstrap).send(7, &create("first", 4));
    assert_eq!(first.topics[0].error_code, 0);
    assert!(first.throttle_time_ms > 0);
    // While over the rate, v6+ refuses the next topic (on a connection
    // that is not held)...
    let refused = Wire::connect(&broker.bootstrap).send(7, &create("second", 1));
    assert_eq!(refused.topics[0].error_code, THROTTLED);
    assert!(refused.throttle_time_ms > 0);
    let delete = DeleteTopicsRequest::default()
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(wire::topic_name("first"))),
        ])
        .with_timeout_ms(30_000);
    let refused = Wire::connect(&broker.bootstrap).send(6, &delete);
    assert_eq!(refused.responses[0].error_code, THROTTLED);
    // ...and older versions, which know no such error, are let through
    // and only throttled (KIP-599).
    let permissive = Wire::connect(&broker.bootstrap).send(5, &create("third", 1));
    assert_eq!(permissive.topics[0].error_code, 0);
    assert!(permissive.throttle_time_ms > 0);
    let mut admin = Wire::connect(&broker.bootstrap);
    assert_eq!(wire::log_end(&mut admin, "third"), 0);
}

#[test]
fn request_time_over_request_percentage_throttles_any_api() {
    let broker = BrokerProcess::start(&SHORT_WINDOWS);
    // A millionth of a thread: any request takes more than that.
    rill_quota(
        &broker,
        &[
            "set",
            "--client",
            "busy",
            "--add-config",
            "request_percentage=0.000001",
        ],
    )
    .unwrap();
    let mut busy = Wire::connect_as(&broker.bootstrap, "busy");
    let first = busy.send(12, &MetadataRequest::default().with_topics(Some(vec![])));
    assert_eq!(
        first.throttle_time_ms, 0,
        "the first request is within the quota"
    );
    let second = busy.send(12, &MetadataRequest::default().with_topics(Some(vec![])));
    assert!(second.throttle_time_ms > 0);
    // Held to one window, as Kafka's request quota.
    assert!(
        second.throttle_time_ms <= 1000,
        "{}",
        second.throttle_time_ms
    );
    // Other clients are not.
    let mut other = Wire::connect_as(&broker.bootstrap, "other");
    for _ in 0..2 {
        let response = other.send(12, &MetadataRequest::default().with_topics(Some(vec![])));
        assert_eq!(response.throttle_time_ms, 0);
    }
}

/// A librdkafka context that keeps the longest throttle time its
/// statistics reported.
#[derive(Clone, Default)]
struct ThrottleSeen(Arc<AtomicI64>);

impl ClientContext for ThrottleSeen {
    fn stats(&self, statistics: Statistics) {
        for broker in statistics.brokers.values() {
            if let Some(throttle) = &broker.throttle {
                self.0.fetch_max(throttle.max, Ordering::Relaxed);
            }
        }
    }
}

impl rdkafka::consumer::ConsumerContext for ThrottleSeen {}

#[test]
fn librdkafka_is_throttled_and_still_gets_every_message_through() {
    let broker = BrokerProcess::start(&SHORT_WINDOWS);
    wire::create_topic(&mut Wire::connect(&broker.bootstrap), "metered");
    rill_quota(
        &broker,
        &[
            "set",
            "--client",
            "rdk",
            "--add-config",
            "producer_byte_rate=40000,consumer_byte_rate=40000",
        ],
    )
    .unwrap();
    let messages = 160;
    let value = vec![b'r'; 1000];
    let produced = ThrottleSeen::default();
    let producer: FutureProducer<ThrottleSeen> = broker
        .client_config()
        .set("client.id", "rdk")
        .set("linger.ms", "5")
        .set("batch.size", "8000")
        .set("statistics.interval.ms", "100")
        .create_with_context(produced.clone())
        .unwrap();
    let deliveries: Vec<_> = (0..messages)
        .map(|_| {
            producer
                .send_result(FutureRecord::<(), _>::to("metered").payload(&value))
                .map_err(|(error, _)| error)
                .unwrap()
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for delivery in deliveries {
        runtime
            .block_on(delivery)
            .unwrap()
            .map_err(|(error, _)| error)
            .unwrap();
    }
    // A last statistics report after the throttled responses.
    let deadline = Instant::now() + WAIT;
    while produced.0.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        producer.poll(Duration::from_millis(100));
    }
    assert!(
        produced.0.load(Ordering::Relaxed) > 0,
        "librdkafka saw no produce throttle"
    );

    let consumed = ThrottleSeen::default();
    let consumer: BaseConsumer<ThrottleSeen> = broker
        .client_config()
        .set("client.id", "rdk")
        .set("group.id", "metered")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("statistics.interval.ms", "100")
        .create_with_context(consumed.clone())
        .unwrap();
    consumer.subscribe(&["metered"]).unwrap();
    let mut received = 0;
    let deadline = Instant::now() + WAIT;
    while (received < messages || consumed.0.load(Ordering::Relaxed) == 0)
        && Instant::now() < deadline
    {
        if let Some(message) = consumer.poll(Timeout::After(Duration::from_millis(100))) {
            message.unwrap();
            received += 1;
        }
    }
    assert_eq!(received, messages);
    assert!(
        consumed.0.load(Ordering::Relaxed) > 0,
        "librdkafka saw no fetch throttle"
    );
}
