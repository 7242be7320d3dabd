//! Listeners by Kafka's names and the security of each, through
//! librdkafka against the real broker.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use common::BrokerProcess;
use common::cluster::free_port;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

const WAIT: Duration = Duration::from_secs(30);

fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("log_level", "3");
    config
}

/// Produces `payload` to partition 0 of `topic` and reads it back, both
/// bootstrapped at `bootstrap`.
async fn round_trip(config: &ClientConfig, topic: &str, payload: &str) {
    let producer: FutureProducer = config.clone().set("linger.ms", "0").create().unwrap();
    let delivered = producer
        .send(
            FutureRecord::<(), _>::to(topic)
                .payload(payload)
                .partition(0),
            Timeout::After(WAIT),
        )
        .await
        .map_err(|(error, _)| error)
        .unwrap();
    let (partition, offset) = (delivered.partition, delivered.offset);
    let consumer: BaseConsumer = config.clone().set("group.id", "security").create().unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(std::time::Instant::now() < deadline, "nothing read back");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            assert_eq!(message.payload(), Some(payload.as_bytes()));
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_named_listeners_each_advertise_their_own_address() {
    let temp = tempfile::tempdir().unwrap();
    let (first, second) = (free_port(), free_port());
    let broker = BrokerProcess::start_on(
        &temp.path().join("data"),
        &[
            "--set",
            "listener.security.protocol.map=INTERNAL:PLAINTEXT,LOCAL:PLAINTEXT",
        ],
        &format!("INTERNAL://127.0.0.1:{first},LOCAL://127.0.0.1:{second}"),
    );
    assert_eq!(broker.bootstrap, format!("127.0.0.1:{first}"));
    for port in [first, second] {
        // The client is told the address of the listener it came in on,
        // and goes on using it.
        let config = client(&format!("127.0.0.1:{port}"));
        let consumer: BaseConsumer = config.create().unwrap();
        let metadata = consumer.fetch_metadata(None, WAIT).unwrap();
        let ports: Vec<i32> = metadata.brokers().iter().map(|b| b.port()).collect();
        assert_eq!(ports, [i32::from(port)]);
        round_trip(&config, &format!("listener-{port}"), "hello").await;
    }
}

#[test]
fn a_listener_open_beyond_loopback_without_authentication_is_warned_of() {
    let temp = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_on(
        &temp.path().join("data"),
        &[
            "--set",
            "listener.security.protocol.map=LOCAL:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ],
        "LOCAL://127.0.0.1:0,PLAINTEXT://0.0.0.0:0",
    );
    let line = broker.wait_for_log(&["WARN", "does not authenticate"]);
    assert!(line.contains("listener PLAINTEXT (0.0.0.0:"), "{line}");
    assert!(!line.contains("LOCAL"), "{line}");
}

#[test]
fn a_listener_whose_name_has_no_protocol_is_refused_at_start() {
    let temp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::rill_binary())
        .args(["broker", "--data"])
        .arg(temp.path().join("data"))
        .args(["--listen", "INTERNAL://127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("listeners") && stderr.contains("INTERNAL is not"),
        "{stderr}"
    );
}
