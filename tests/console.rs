//! The web console as people use it: driven in a real headless browser
//! (Debian's Chromium through playwright-core, installed by
//! tests/console/install) against the real binary — a topic created,
//! written to and browsed, its configs edited; a group's lag followed up
//! and down and its offsets reset; ten thousand topics paged and
//! searched; a phone-width screen; a user and ACLs made on the Security
//! page — with librdkafka checking what the console wrote and producing
//! and consuming what it shows, and logging in as the user made there. The JSON API
//! under it is checked directly too, on one broker and from every node of
//! a cluster.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::BrokerProcess;
use common::cluster::{Cluster, free_port, wait_until};
use common::http::{get, send_json};
use rdkafka::Message;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// Runs tests/console/run with `args`; panics with what it printed if
/// the browser test failed.
fn browser(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/console/run");
    let shots = concat!(env!("CARGO_TARGET_TMPDIR"), "/console-screenshots");
    let out = Command::new(script)
        .args(args)
        .env("RILL_CONSOLE_SCREENSHOTS", shots)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "console test {args:?} failed (screenshots in {shots}):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A broker with its HTTP listener (the console) on a free port; the
/// console's history sampled every 200 ms.
fn broker_with_console() -> (BrokerProcess, String) {
    let http = format!("127.0.0.1:{}", free_port());
    let broker = BrokerProcess::start(&[
        "--http",
        &http,
        "--set",
        "rill.console.history.interval.ms=200",
    ]);
    (broker, http)
}

async fn create_topic(broker: &BrokerProcess, name: &str, partitions: i32) {
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let created = broker
        .admin()
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
}

async fn produce(broker: &BrokerProcess, topic: &str, count: usize) {
    let producer = broker.producer(&[]);
    for i in 0..count {
        let value = format!("message {i}");
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(0)
                    .payload(&value),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
    }
}

/// Consumes `count` records of `topic` in `group`, commits, and leaves.
fn consume_and_commit(broker: &BrokerProcess, group: &str, topic: &str, count: usize) {
    let consumer: BaseConsumer = broker.consumer(&[("group.id", group)]);
    consumer.subscribe(&[topic]).unwrap();
    let mut seen = 0;
    let deadline = std::time::Instant::now() + WAIT;
    while seen < count {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed {seen} of {count}"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            message.unwrap();
            seen += 1;
        }
    }
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    consumer.unsubscribe();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_is_created_written_browsed_and_configured_in_the_browser() {
    let (broker, http) = broker_with_console();
    let url = format!("http://{http}/");

    browser(&["topic", &url, "console-orders"]);

    // What the console wrote, as librdkafka reads it.
    let consumer = broker.consumer(&[]);
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset("console-orders", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut read = Vec::new();
    wait_until(WAIT, "the console's two messages", || {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            let header = message.headers().map(|h| {
                let first = h.get(0);
                (first.key.to_string(), first.value.map(<[u8]>::to_vec))
            });
            read.push((
                message.key().map(<[u8]>::to_vec),
                message.payload().map(<[u8]>::to_vec),
                header,
            ));
        }
        read.len() == 2
    });
    assert_eq!(read[0].0.as_deref(), Some(&b"k1"[..]));
    assert_eq!(
        read[0].1.as_deref(),
        Some(&br#"{"hello":"console","n":1}"#[..])
    );
    assert_eq!(
        read[0].2,
        Some(("source".to_string(), Some(b"console".to_vec())))
    );
    assert_eq!(read[1].1.as_deref(), Some(&b"plain text"[..]));

    // What librdkafka wrote, as the API shows it: binary as hex, a
    // tombstone as null, headers kept.
    let producer = broker.producer(&[]);
    producer
        .send(
            FutureRecord::to("console-orders")
                .partition(1)
                .key(&[0xff_u8, 0xfe][..])
                .payload(&[0x00_u8, 0xff][..])
                .headers(OwnedHeaders::new().insert(Header {
                    key: "trace",
                    value: Some("abc"),
                })),
            Timeout::After(WAIT),
        )
        .await
        .unwrap();
    producer
        .send(
            FutureRecord::<str, ()>::to("console-orders")
                .partition(1)
                .key("gone"),
            Timeout::After(WAIT),
        )
        .await
        .unwrap();
    let page = get(
        &http,
        "/api/topics/console-orders/messages?partition=1&position=beginning",
        "application/json",
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let messages = page.json()["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(
        messages[0]["key"],
        json!({"encoding": "binary", "data": "fffe", "size": 2})
    );
    assert_eq!(messages[0]["value"]["data"], "00ff");
    assert_eq!(messages[0]["headers"][0]["key"], "trace");
    assert_eq!(messages[0]["headers"][0]["value"]["data"], "abc");
    assert_eq!(messages[1]["value"], serde_json::Value::Null);

    // Starting from a time finds the first message at or after it.
    let from = messages[1]["timestamp"].as_i64().unwrap();
    let later = get(
        &http,
        &format!("/api/topics/console-orders/messages?partition=1&timestamp={from}"),
        "application/json",
    )
    .json();
    assert_eq!(later["messages"][0]["offset"], messages[1]["offset"]);

    // The topic page's figures are librdkafka's.
    let (low, high) = consumer
        .fetch_watermarks("console-orders", 1, WAIT)
        .unwrap();
    let topic = get(&http, "/api/topics/console-orders", "application/json").json();
    assert_eq!(topic["partitions"][1]["start_offset"], low);
    assert_eq!(topic["partitions"][1]["end_offset"], high);
    assert!(topic["partitions"][1]["size_bytes"].as_i64().unwrap() > 0);

    // Refusals say why, with Kafka's error names and HTTP statuses.
    let again = send_json(
        &http,
        "POST",
        "/api/topics",
        &json!({"name": "console-orders"}),
    );
    assert_eq!(again.status, 400);
    assert!(
        again.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("TOPIC_ALREADY_EXISTS"),
        "{}",
        again.body
    );
    let bad = send_json(
        &http,
        "PUT",
        "/api/topics/console-orders/configs",
        &json!({"set": {"retention.ms": "soon"}}),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(get(&http, "/api/topics/missing", "*/*").status, 404);
    let special = "/api/topics/console-orders/messages?partition=1&timestamp=-1";
    assert_eq!(
        get(&http, special, "*/*").status,
        400,
        "not ListOffsets' latest"
    );
    assert_eq!(
        get(
            &http,
            "/api/topics/console-orders/messages?partition=9",
            "*/*"
        )
        .status,
        404
    );
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_lag_is_seen_going_up_and_down_and_its_offsets_are_reset() {
    let (broker, http) = broker_with_console();
    let url = format!("http://{http}/");
    create_topic(&broker, "lagging", 1).await;
    produce(&broker, "lagging", 10).await;
    consume_and_commit(&broker, "billing", "lagging", 4);
    browser(&["lag", &url, "billing", "6"]);

    produce(&broker, "lagging", 5).await;
    browser(&["lag", &url, "billing", "11"]);

    consume_and_commit(&broker, "billing", "lagging", 11);
    browser(&["lag", &url, "billing", "0"]);

    // The chart's history went up and back down.
    wait_until(WAIT, "the lag history to hold 11 and then 0", || {
        let group = get(&http, "/api/groups/billing", "application/json").json();
        let lags: Vec<i64> = group["history"]["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["lag"].as_i64().unwrap())
            .collect();
        let peak = lags.iter().position(|&lag| lag == 11);
        peak.is_some_and(|at| lags[at..].contains(&0))
    });

    // A group with a member may not be reset: Kafka's rule. Its joining
    // is a rebalance, as /metrics counts them.
    let rebalances_before = rebalances(&http);
    assert!(
        rebalances_before >= 1.0,
        "the consumers' joins were rebalances"
    );
    let active: BaseConsumer = broker.consumer(&[("group.id", "billing")]);
    active.subscribe(&["lagging"]).unwrap();
    wait_until(WAIT, "the consumer to join and the group to settle", || {
        active.poll(Duration::from_millis(100));
        let group = get(&http, "/api/groups/billing", "application/json").json();
        group["state"] == "Stable"
    });
    let refused = send_json(
        &http,
        "POST",
        "/api/groups/billing/reset",
        &json!({"topic": "lagging", "to": "earliest", "dry_run": false}),
    );
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(rebalances(&http) > rebalances_before);
    drop(active);
    wait_until(WAIT, "the group to be empty again", || {
        let group = get(&http, "/api/groups/billing", "application/json").json();
        group["state"] == "Empty"
    });

    browser(&["reset", &url, "billing", "lagging"]);

    // The reset is what librdkafka's consumer of the group now starts from.
    let consumer: BaseConsumer = broker.consumer(&[("group.id", "billing")]);
    let mut partitions = rdkafka::TopicPartitionList::new();
    partitions.add_partition("lagging", 0);
    let committed = consumer.committed_offsets(partitions, WAIT).unwrap();
    assert_eq!(
        committed.find_partition("lagging", 0).unwrap().offset(),
        rdkafka::Offset::Offset(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_topics_are_paged_and_searched_and_a_phone_screen_fits() {
    // 30,000 segment files, more than this machine's open-file limit
    // (20,000): the broker keeps the idle ones closed.
    let topics = 10_000;
    let (broker, http) = broker_with_console();
    let url = format!("http://{http}/");
    let admin = broker.admin();
    let names: Vec<String> = (0..topics).map(|i| format!("t-{i:05}")).collect();
    let slow = Timeout::After(Duration::from_secs(300));
    let options = AdminOptions::new()
        .operation_timeout(Some(slow))
        .request_timeout(Some(slow));
    for chunk in names.chunks(1000) {
        // A request refused whole once in CI, under the load of the other
        // tests, with nothing in the broker's log: its errors are printed
        // and the refused topics asked for again, at most twice, once the
        // broker says it is ready.
        let mut wanted: Vec<&String> = chunk.iter().collect();
        for attempt in 1..=3 {
            let topics: Vec<NewTopic<'_>> = wanted
                .iter()
                .map(|name| NewTopic::new(name, 1, TopicReplication::Fixed(1)))
                .collect();
            let created = admin.create_topics(&topics, &options).await;
            let refused: Vec<(String, String)> = match created {
                Ok(results) => results
                    .into_iter()
                    .filter_map(|r| r.err())
                    .filter(|(_, code)| {
                        *code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
                    })
                    .map(|(name, code)| (name, format!("{code:?}")))
                    .collect(),
                Err(error) => wanted
                    .iter()
                    .map(|name| (name.to_string(), error.to_string()))
                    .collect(),
            };
            if refused.is_empty() {
                break;
            }
            eprintln!(
                "console: attempt {attempt}: {} topics refused, first {:?}",
                refused.len(),
                refused[0]
            );
            assert!(attempt < 3, "topics still refused: {:?}", &refused[..1]);
            wait_until(WAIT, "the broker to be ready", || {
                get(&http, "/ready", "*/*").status == 200
            });
            wanted = chunk
                .iter()
                .filter(|n| refused.iter().any(|(r, _)| r == *n))
                .collect();
        }
    }
    browser(&["many", &url, &topics.to_string(), "t-0099", "10"]);
    browser(&["phone", &url, "t-00001"]);
}

/// The rebalances /metrics counts.
fn rebalances(http: &str) -> f64 {
    let metrics = get(http, "/metrics", "text/plain").body;
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("rill_group_rebalances_total ")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no rill_group_rebalances_total in\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_nodes_console_sees_and_writes_the_whole_cluster() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_brokers(3);
    let admin: rdkafka::admin::AdminClient<_> = cluster.client_config().create().unwrap();
    let topic = NewTopic::new("spread", 3, TopicReplication::Fixed(1));
    let created = admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let http = &cluster.http[1];
    let overview = get(http, "/api/overview", "application/json").json();
    let brokers = overview["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 3, "{overview}");
    assert_eq!(
        brokers.iter().filter(|b| b["controller"] == true).count(),
        1
    );
    assert!(overview["partitions"]["total"].as_i64().unwrap() >= 3);

    // Written through node 2 to every partition, whichever node leads it.
    for partition in 0..3 {
        let written = send_json(
            http,
            "POST",
            "/api/topics/spread/messages",
            &json!({"partition": partition, "value": format!("to {partition}")}),
        );
        assert_eq!(written.status, 200, "{}", written.body);
        assert_eq!(written.json()["offset"], 0);
    }
    // And read back through node 3.
    let http = &cluster.http[2];
    let page = get(http, "/api/topics/spread/messages", "application/json").json();
    let mut values: Vec<String> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"]["data"].as_str().unwrap().to_string())
        .collect();
    values.sort();
    assert_eq!(values, ["to 0", "to 1", "to 2"]);
    let topic = get(http, "/api/topics/spread", "application/json").json();
    let leaders: std::collections::BTreeSet<i64> = topic["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["end_offset"], 1, "{p}");
            p["leader"].as_i64().unwrap()
        })
        .collect();
    assert!(leaders.len() > 1, "the partitions are led by several nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_acls_made_in_the_browser_are_what_kafka_clients_get() {
    // The console's own requests come in on PLAINTEXT, as a super user;
    // alice logs in with SCRAM on the SASL listener.
    let temp = tempfile::tempdir().unwrap();
    let (sasl, http) = (free_port(), format!("127.0.0.1:{}", free_port()));
    let broker = BrokerProcess::start_on(
        &temp.path().join("data"),
        &[
            "--http",
            &http,
            "--set",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "--set",
            "super.users=User:ANONYMOUS",
        ],
        &format!("PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{sasl}"),
    );
    create_topic(&broker, "guarded", 1).await;
    create_topic(&broker, "elsewhere", 1).await;
    produce(&broker, "guarded", 3).await;

    let url = format!("http://{http}/");
    browser(&["security", &url, "alice", "alice-secret", "guarded"]);

    // The API lists what the page made: alice's credential (never its
    // password) and the one ACL left.
    let users = get(&http, "/api/users", "application/json").json();
    assert_eq!(
        users["users"],
        json!([{"name": "alice", "credentials": [{"mechanism": "SCRAM-SHA-256", "iterations": 8192}]}])
    );
    let acls = get(&http, "/api/acls", "application/json").json();
    assert_eq!(
        acls["acls"],
        json!([{"resource_type": "TOPIC", "resource_name": "guarded", "pattern_type": "LITERAL",
                "principal": "User:alice", "host": "*", "operation": "READ", "permission": "ALLOW"}])
    );

    // A deletion names one ACL: ANY, which would match others, is refused
    // and deletes nothing.
    let any = json!({"resource_type": "TOPIC", "resource_name": "guarded",
                     "principal": "User:alice", "operation": "ANY"});
    assert_eq!(send_json(&http, "DELETE", "/api/acls", &any).status, 400);
    assert_eq!(get(&http, "/api/acls", "application/json").json(), acls);

    // alice logs in with the password typed into the page, reads what the
    // ACLs allow (her consumer's group too, granted through the API), and
    // is refused the rest.
    let group_acl = json!({"resource_type": "GROUP", "resource_name": "alice-reads",
                           "principal": "User:alice", "operation": "READ"});
    let granted = send_json(&http, "POST", "/api/acls", &group_acl);
    assert_eq!(granted.status, 201, "{}", granted.body);
    let alice = common::security::sasl_client(
        &format!("127.0.0.1:{sasl}"),
        "SCRAM-SHA-256",
        "alice",
        "alice-secret",
    );
    let consumer: BaseConsumer = alice
        .clone()
        .set("group.id", "alice-reads")
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset("guarded", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut read = 0;
    wait_until(WAIT, "alice to read the three messages", || {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            message.unwrap();
            read += 1;
        }
        read == 3
    });
    let metadata = consumer.fetch_metadata(Some("elsewhere"), WAIT).unwrap();
    assert_eq!(
        metadata.topics()[0].error(),
        Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
    );
    let producer: rdkafka::producer::FutureProducer = alice
        .clone()
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    let refused = producer
        .send(
            FutureRecord::<(), _>::to("guarded")
                .partition(0)
                .payload("no"),
            Timeout::After(WAIT),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
                ),
                _
            ))
        ),
        "{refused:?}"
    );

    // A wrong password is not alice.
    let impostor = common::security::sasl_client(
        &format!("127.0.0.1:{sasl}"),
        "SCRAM-SHA-256",
        "alice",
        "guess",
    );
    let impostor: BaseConsumer = impostor.create().unwrap();
    assert!(
        impostor
            .fetch_metadata(Some("guarded"), Duration::from_secs(5))
            .is_err()
    );
}
