//! What the security tests share: librdkafka clients for one listener,
//! a produce-and-read-back through one, a broker with the authorizer,
//! `rill acl` and `rill user`, and the Python clients.

use std::time::Duration;

use rdkafka::ClientConfig;

use super::BrokerProcess;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

const WAIT: Duration = Duration::from_secs(30);

/// A librdkafka configuration for `bootstrap`, quiet but for errors.
pub fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("log_level", "3");
    config
}

/// Produces `payload` to partition 0 of `topic` and reads it back, both
/// bootstrapped at `bootstrap`.
pub async fn round_trip(config: &ClientConfig, topic: &str, payload: &str) {
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

/// The property that turns on Kafka's StandardAuthorizer.
pub const AUTHORIZER: &str =
    "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// `rill acl ARGS --bootstrap BROKER`: its stdout, or its stderr as the error.
pub fn rill_acl(broker: &BrokerProcess, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(super::rill_binary())
        .arg("acl")
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

/// A broker with the authorizer: PLAINTEXT for local tools (User:ANONYMOUS,
/// a super user) first, and SASL_PLAINTEXT; its SASL address.
pub fn secured_broker(temp: &tempfile::TempDir) -> (BrokerProcess, String) {
    let sasl = super::cluster::free_port();
    let broker = BrokerProcess::start_on(
        &temp.path().join("data"),
        &["--set", AUTHORIZER, "--set", "super.users=User:ANONYMOUS"],
        &format!("PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{sasl}"),
    );
    (broker, format!("127.0.0.1:{sasl}"))
}

/// `rill user ARGS --bootstrap BROKER` with `stdin`; its stdout, or a
/// panic with its stderr.
pub fn rill_user(broker: &BrokerProcess, args: &[&str], stdin: &str) -> String {
    let mut all = vec!["user"];
    all.extend(args);
    all.extend(["--bootstrap", &broker.bootstrap]);
    rill_with_stdin(&all, stdin)
}

/// `rill ARGS` with `stdin`; its stdout, or a panic with its stderr.
pub fn rill_with_stdin(args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(super::rill_binary())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "rill {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn sasl_client(bootstrap: &str, mechanism: &str, user: &str, password: &str) -> ClientConfig {
    let mut config = client(bootstrap);
    config
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", mechanism)
        .set("sasl.username", user)
        .set("sasl.password", password);
    config
}

/// The python of a venv with the clients of tests/clients/requirements.txt,
/// made (once) by tests/clients/python-env from PyPI.
pub fn python_clients() -> std::path::PathBuf {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/clients/python-env"
    );
    let out = std::process::Command::new(script).output().unwrap();
    assert!(
        out.status.success(),
        "tests/clients/python-env: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Runs tests/clients/NAME with the clients' python and `args`: its
/// stdout, or its stderr as the error.
pub fn python_client(name: &str, args: &[&str]) -> Result<String, String> {
    python_client_fed(name, args, b"")
}

/// [`python_client`] with `input` on its stdin.
pub fn python_client_fed(name: &str, args: &[&str], input: &[u8]) -> Result<String, String> {
    use std::io::Write;
    use std::process::Stdio;
    let script = format!("{}/../../tests/clients/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new(python_clients())
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A script that does not read its input may exit first: that is no error.
    let _ = child.stdin.take().unwrap().write_all(input);
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
