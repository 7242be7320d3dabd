//! ACLs with Kafka's StandardAuthorizer semantics, set with `rill acl` and
//! seen by librdkafka clients as Kafka's errors, against the real broker.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::{Duration, Instant};

use common::BrokerProcess;
use common::security::{AUTHORIZER, rill_acl, rill_user, sasl_client, secured_broker};
use common::wire::{self, Wire};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::Timeout;

const WAIT: Duration = Duration::from_secs(30);

/// A broker with the authorizer, where what no ACL names is open to
/// everyone (allow.everyone.if.no.acl.found).
fn open_broker(temp: &tempfile::TempDir) -> BrokerProcess {
    BrokerProcess::start_in(
        &temp.path().join("data"),
        &[
            "--set",
            AUTHORIZER,
            "--set",
            "allow.everyone.if.no.acl.found=true",
        ],
    )
}

async fn produce(config: &ClientConfig, topic: &str, payload: &str) -> Result<i64, KafkaError> {
    let producer: FutureProducer = config
        .clone()
        .set("linger.ms", "0")
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::<(), _>::to(topic)
                .payload(payload)
                .partition(0),
            Timeout::After(WAIT),
        )
        .await
        .map(|delivered| delivered.offset)
        .map_err(|(error, _)| error)
}

/// The first message a group member of `group` reads from `topic`, or
/// the error that stops it.
fn consume_one(config: &ClientConfig, topic: &str, group: &str) -> Result<String, KafkaError> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "nothing read from {topic}");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                return Ok(String::from_utf8_lossy(message.payload().unwrap()).into_owned());
            }
            Some(Err(error)) => return Err(error),
            None => {}
        }
    }
}

/// The error librdkafka reports for `topic` in a Metadata request for it.
fn topic_metadata_error(config: &ClientConfig, topic: &str) -> Option<RDKafkaRespErr> {
    let consumer: BaseConsumer = config.create().unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), WAIT).unwrap();
    metadata.topics()[0].error()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_decide_what_each_user_may_do_and_clients_see_kafkas_errors() {
    let temp = tempfile::tempdir().unwrap();
    let (broker, sasl) = secured_broker(&temp);
    rill_user(&broker, &["create", "alice"], "alice-secret");
    rill_user(&broker, &["create", "bob"], "bob-secret");
    let mut tools = Wire::connect(&broker.bootstrap);
    wire::create_topic(&mut tools, "orders-1");
    wire::create_topic(&mut tools, "payments");
    let alice = sasl_client(&sasl, "SCRAM-SHA-512", "alice", "alice-secret");
    let bob = sasl_client(&sasl, "SCRAM-SHA-512", "bob", "bob-secret");

    // alice may write the orders- topics, and nothing else.
    rill_acl(
        &broker,
        &[
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Write",
            "--topic",
            "orders-",
            "--resource-pattern-type",
            "prefixed",
        ],
    )
    .unwrap();
    assert_eq!(produce(&alice, "orders-1", "first order").await.unwrap(), 0);
    let refused = produce(&alice, "payments", "a payment").await.unwrap_err();
    assert_eq!(
        refused.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "{refused}"
    );
    // The refused write wrote nothing.
    assert_eq!(wire::log_end(&mut tools, "payments"), 0);
    // An idempotent producer gets its id with WRITE on some topic
    // (KIP-679), without IDEMPOTENT_WRITE on the cluster.
    let mut idempotent = alice.clone();
    idempotent.set("enable.idempotence", "true");
    assert_eq!(
        produce(&idempotent, "orders-1", "exactly once")
            .await
            .unwrap(),
        1
    );

    // bob may do nothing yet: Metadata lists no topic, and a topic named
    // is refused whether it exists or not (nor is it created).
    let consumer: BaseConsumer = bob.create().unwrap();
    let all = consumer.fetch_metadata(None, WAIT).unwrap();
    assert!(all.topics().is_empty(), "bob sees {:?}", all.topics().len());
    assert_eq!(
        topic_metadata_error(&bob, "orders-1"),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
    );
    assert_eq!(
        topic_metadata_error(&bob, "ghost"),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
    );
    let tools_view: BaseConsumer = broker.client_config().create().unwrap();
    let everything = tools_view.fetch_metadata(None, WAIT).unwrap();
    let mut names: Vec<&str> = everything.topics().iter().map(|t| t.name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["orders-1", "payments"]);

    // Given READ on the topic and its group, bob consumes what alice wrote.
    for (resource, name) in [("--topic", "orders-1"), ("--group", "billing")] {
        rill_acl(
            &broker,
            &[
                "add",
                "--allow-principal",
                "User:bob",
                "--operation",
                "Read",
                resource,
                name,
            ],
        )
        .unwrap();
    }
    assert_eq!(
        consume_one(&bob, "orders-1", "billing").unwrap(),
        "first order"
    );
    // Without READ on another group, its member is refused.
    let refused = consume_one(&bob, "orders-1", "elsewhere").unwrap_err();
    assert!(
        format!("{refused:?}").contains("GroupAuthorizationFailed")
            || format!("{refused:?}").contains("GROUP_AUTHORIZATION_FAILED"),
        "{refused:?}"
    );

    // A DENY wins over the ALLOW, at once (the cached decision is dropped).
    rill_acl(
        &broker,
        &[
            "add",
            "--deny-principal",
            "User:bob",
            "--operation",
            "Read",
            "--topic",
            "orders-",
            "--resource-pattern-type",
            "prefixed",
        ],
    )
    .unwrap();
    let refused = consume_one(&bob, "orders-1", "billing").unwrap_err();
    assert!(
        format!("{refused:?}").contains("TopicAuthorizationFailed"),
        "{refused:?}"
    );

    // The ACLs as an administrator lists them.
    let listed = rill_acl(&broker, &["list"]).unwrap();
    for line in [
        "TOPIC     orders-   PREFIXED  User:bob    *     READ       DENY",
        "TOPIC     orders-   PREFIXED  User:alice  *     WRITE      ALLOW",
        "GROUP     billing   LITERAL   User:bob    *     READ       ALLOW",
    ] {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            listed
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == words),
            "{line:?} not in\n{listed}"
        );
    }
    // Removing the DENY gives bob his topic back.
    rill_acl(
        &broker,
        &[
            "remove",
            "--deny-principal",
            "User:bob",
            "--topic",
            "orders-",
            "--resource-pattern-type",
            "prefixed",
        ],
    )
    .unwrap();
    assert_eq!(
        consume_one(&bob, "orders-1", "billing").unwrap(),
        "first order"
    );
}

#[test]
fn a_fetch_as_a_follower_needs_cluster_action() {
    let temp = tempfile::tempdir().unwrap();
    // Everyone may do what no ACL names: so may this test, at first.
    let broker = open_broker(&temp);
    let mut wire = Wire::connect(&broker.bootstrap);
    wire::create_topic(&mut wire, "replicated");
    let batch = rill_record::BatchBuilder::new(0)
        .with_records(&[rill_record::NewRecord::value(b"v")])
        .finish()
        .unwrap();
    assert_eq!(wire::produce_batch(&mut wire, "replicated", 0, batch).0, 0);
    // Now only the cluster's own nodes may act as followers.
    rill_acl(
        &broker,
        &[
            "add",
            "--allow-principal",
            "User:rill-node",
            "--operation",
            "ClusterAction",
            "--cluster",
        ],
    )
    .unwrap();
    let mut spoof = wire::fetch_request("replicated", 0, 0, 0, 0);
    spoof.replica_id = kafka_protocol::messages::BrokerId(5);
    let response = wire.send(11, &spoof);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(
        partition.error_code,
        kafka_protocol::ResponseError::TopicAuthorizationFailed.code()
    );
    assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()));
    // A consumer's fetch still reads.
    let (code, records) = wire::fetch_from(&mut wire, "replicated", 0, 0);
    assert_eq!(code, 0);
    assert!(!records.is_empty());
    // And the first ACL on the cluster took ALTER from everyone else.
    let refused = rill_acl(
        &broker,
        &[
            "add",
            "--allow-principal",
            "User:x",
            "--operation",
            "Read",
            "--topic",
            "t",
        ],
    )
    .unwrap_err();
    assert!(refused.contains("ClusterAuthorizationFailed"), "{refused}");
}

#[test]
fn acl_requests_without_an_authorizer_are_security_disabled() {
    let broker = BrokerProcess::start(&[]);
    let refused = rill_acl(
        &broker,
        &[
            "add",
            "--allow-principal",
            "User:x",
            "--operation",
            "Read",
            "--topic",
            "t",
        ],
    )
    .unwrap_err();
    assert!(refused.contains("SecurityDisabled"), "{refused}");
    let refused = rill_acl(&broker, &["list"]).unwrap_err();
    assert!(refused.contains("SecurityDisabled"), "{refused}");
}

#[test]
fn a_new_acl_applies_to_an_open_connection_at_its_next_request() {
    let temp = tempfile::tempdir().unwrap();
    let broker = open_broker(&temp);
    let mut wire = Wire::connect(&broker.bootstrap);
    wire::create_topic(&mut wire, "watched");
    // Allowed (no ACL names the topic), and remembered by the connection.
    assert_eq!(wire::fetch_from(&mut wire, "watched", 0, 0).0, 0);
    assert_eq!(wire::fetch_from(&mut wire, "watched", 0, 0).0, 0);
    rill_acl(
        &broker,
        &[
            "add",
            "--deny-principal",
            "User:ANONYMOUS",
            "--operation",
            "Read",
            "--topic",
            "watched",
        ],
    )
    .unwrap();
    assert_eq!(
        wire::fetch_from(&mut wire, "watched", 0, 0).0,
        kafka_protocol::ResponseError::TopicAuthorizationFailed.code()
    );
}
