//! Nodes that trust only each other: a three-node cluster whose
//! inter-broker listener is SSL with client certificates required. The
//! controllers form their quorum and the followers replicate over mutual
//! TLS, librdkafka (over mutual TLS too) writes with acks=all and reads
//! back; a certificate from the cluster's CA that is not a node's cannot
//! speak the controller RPC, and a connection without TLS is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::BrokerProcess;
use common::cluster::{TEST_SETTINGS, free_port, wait_until};
use common::tls::{Ca, Leaf, write};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

const WAIT: Duration = Duration::from_secs(60);
const NODES: usize = 3;

/// A node's keystore and the properties that make its listener SSL with
/// client certificates required, under the authorizer with the nodes and
/// `CN=admin` as super users.
fn node_properties(dir: &Path, ca_file: &Path, leaf: &Leaf, name: &str) -> Vec<String> {
    let keystore = write(dir, &format!("{name}.pem"), &leaf.keystore());
    let mut super_users: Vec<String> = (1..=NODES).map(|id| format!("User:CN=node-{id}")).collect();
    super_users.push("User:CN=admin".to_string());
    [
        format!("ssl.keystore.location={}", keystore.display()),
        format!("ssl.truststore.location={}", ca_file.display()),
        "ssl.client.auth=required".to_string(),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
        format!("super.users={}", super_users.join(";")),
    ]
    .into_iter()
    .flat_map(|property| ["--set".to_string(), property])
    .collect()
}

/// librdkafka over mutual TLS as `leaf`.
fn tls_client(bootstrap: &str, dir: &Path, ca_file: &Path, leaf: &Leaf) -> ClientConfig {
    let cert = write(dir, "client.crt", &leaf.cert);
    let key = write(dir, "client.key", &leaf.key);
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", ca_file.display().to_string())
        .set("ssl.certificate.location", cert.display().to_string())
        .set("ssl.key.location", key.display().to_string())
        .set("topic.metadata.refresh.interval.ms", "500")
        .set("log_level", "3");
    config
}

/// A TLS client of the controller port at `address`, as `leaf`: writes a
/// controller frame and reports whether any answer came back.
fn controller_frame_answered(address: &str, ca: &Ca, leaf: &Leaf) -> bool {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap();
    #[allow(deprecated)] // ring, as the broker.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = std::net::TcpStream::connect(address).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, socket);
    // The metadata as the controller has it, at once.
    let payload = br#"{"FetchMetadata":{"known_index":null,"wait_ms":0}}"#;
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    if stream
        .write_all(&frame)
        .and_then(|()| stream.flush())
        .is_err()
    {
        return false;
    }
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(n) if n > 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_replicate_and_form_their_quorum_over_mutual_tls_and_admit_only_each_other() {
    let temp = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let ca_file = write(temp.path(), "ca.pem", &ca.pem);
    let controller_ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
    let quorum = controller_ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut listens = Vec::new();
    let nodes: Vec<BrokerProcess> = std::thread::scope(|scope| {
        let starting: Vec<_> = (1..=NODES)
            .map(|id| {
                let listen = format!("SSL://127.0.0.1:{}", free_port());
                listens.push(listen.trim_start_matches("SSL://").to_string());
                let mut args = vec![
                    "--node-id".to_string(),
                    id.to_string(),
                    "--controller-quorum".to_string(),
                    quorum.clone(),
                ];
                args.extend(TEST_SETTINGS.iter().map(|s| (*s).to_string()));
                let name = format!("node-{id}");
                args.extend(node_properties(
                    temp.path(),
                    &ca_file,
                    &ca.node(&name),
                    &name,
                ));
                let data = temp.path().join(&name);
                scope.spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    BrokerProcess::start_wrapped(&[], &data, &args, &listen)
                })
            })
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let bootstrap = listens.join(",");
    let admin_leaf = ca.node("admin");
    let client = tls_client(&bootstrap, temp.path(), &ca_file, &admin_leaf);

    // Every node registered: the quorum formed over TLS.
    let probe: BaseConsumer = client.create().unwrap();
    wait_until(WAIT, "three brokers in the metadata", || {
        probe
            .fetch_metadata(None, Duration::from_secs(2))
            .is_ok_and(|m| m.brokers().len() == NODES)
    });

    // Three replicas, two of them followers fetching over TLS; acks=all
    // waits for them.
    let admin: rdkafka::admin::AdminClient<_> = client.create().unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new("secured", 1, TopicReplication::Fixed(3))
                .set("min.insync.replicas", "3")],
            &AdminOptions::new().operation_timeout(Some(WAIT)),
        )
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let producer: FutureProducer = client
        .clone()
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    for i in 0..20 {
        producer
            .send(
                FutureRecord::<(), _>::to("secured").payload(&format!("message {i}")),
                Timeout::After(WAIT),
            )
            .await
            .map_err(|(error, _)| error)
            .unwrap();
    }
    let consumer: BaseConsumer = client
        .clone()
        .set("group.id", "secured")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["secured"]).unwrap();
    let mut received = 0;
    wait_until(WAIT, "the 20 messages read back", || {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            message.unwrap();
            received += 1;
        }
        received == 20
    });

    // A certificate of the cluster's CA that is not a node's: its TLS
    // handshake succeeds, its controller frame is never answered.
    let controller = format!("127.0.0.1:{}", controller_ports[0]);
    let mallory = ca.node("mallory");
    assert!(!controller_frame_answered(&controller, &ca, &mallory));
    nodes[0].wait_for_log(&["WARN", "User:CN=mallory", "is not in super.users"]);
    // The same on the inter-broker (Kafka) listener, which also takes
    // controller connections.
    assert!(!controller_frame_answered(&listens[1], &ca, &mallory));
    nodes[1].wait_for_log(&["WARN", "User:CN=mallory", "is not in super.users"]);
    // A node's own certificate is answered (the door is not just shut).
    assert!(controller_frame_answered(
        &controller,
        &ca,
        &ca.node("node-2")
    ));
    // Without TLS the controller port refuses the connection.
    let mut plain = std::net::TcpStream::connect(&controller).unwrap();
    plain.set_read_timeout(Some(WAIT)).unwrap();
    let payload = br#"{"FetchMetadata":{"known_index":null,"wait_ms":0}}"#;
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    plain.write_all(&frame).unwrap();
    // At most a TLS alert record comes back, never a controller frame.
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer); // A reset ends it as well as a close.
    assert!(answer.is_empty() || answer[0] == 0x15, "{answer:?}");
    nodes[0].wait_for_log(&["WARN", "controller connection refused", "TLS"]);
}
