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
use common::security::{client, rill_user, rill_with_stdin, round_trip, sasl_client};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const WAIT: Duration = Duration::from_secs(30);

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

/// What `rill broker --listen LISTENERS` says on stderr as it refuses
/// to start.
fn refused_at_start(listeners: &str) -> String {
    let temp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::rill_binary())
        .args(["broker", "--data"])
        .arg(temp.path().join("data"))
        .args(["--listen", listeners])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{listeners}: started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_listener_other_nodes_use_must_not_ask_them_for_sasl() {
    let stderr = refused_at_start("SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0");
    assert!(
        stderr.contains("inter.broker.listener.name") && stderr.contains("SASL_PLAINTEXT"),
        "{stderr}"
    );
}

#[test]
fn a_listener_whose_name_has_no_protocol_is_refused_at_start() {
    let stderr = refused_at_start("INTERNAL://127.0.0.1:0");
    assert!(
        stderr.contains("listeners") && stderr.contains("INTERNAL is not"),
        "{stderr}"
    );
}

/// A broker with a PLAINTEXT listener for local tools (first: the
/// inter-broker one) and a SASL_PLAINTEXT one; its SASL port.
fn sasl_broker(temp: &tempfile::TempDir) -> (BrokerProcess, String) {
    let sasl = free_port();
    let broker = BrokerProcess::start_on(
        &temp.path().join("data"),
        &[],
        &format!("PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{sasl}"),
    );
    (broker, format!("127.0.0.1:{sasl}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_and_plain_users_produce_and_consume_over_sasl() {
    let temp = tempfile::tempdir().unwrap();
    let (broker, sasl) = sasl_broker(&temp);
    rill_user(&broker, &["create", "alice"], "wonderland\n");
    rill_user(
        &broker,
        &[
            "create",
            "alice",
            "--mechanism",
            "SCRAM-SHA-256",
            "--iterations",
            "8192",
        ],
        "wonderland",
    );
    let listed = rill_user(&broker, &["list"], "");
    assert_eq!(
        listed.trim(),
        "alice\tSCRAM-SHA-256 (iterations 8192), SCRAM-SHA-512 (iterations 4096)"
    );
    for mechanism in ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] {
        let config = sasl_client(&sasl, mechanism, "alice", "wonderland");
        round_trip(&config, "secured", mechanism).await;
    }
    // The broker keeps keys derived from the password, never the password.
    let mut dirs = vec![temp.path().to_path_buf()];
    let mut files = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files += 1;
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes.windows(10).any(|w| w == b"wonderland"),
                    "{} holds the password",
                    path.display()
                );
            }
        }
    }
    assert!(files > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_unknown_users_and_clients_without_sasl_get_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let (broker, sasl) = sasl_broker(&temp);
    rill_user(&broker, &["create", "alice"], "wonderland");
    let refused = |mut config: ClientConfig| {
        let consumer: BaseConsumer = config.set("log_level", "0").create().unwrap();
        consumer
            .fetch_metadata(None, Duration::from_secs(2))
            .map(|m| m.brokers().len())
    };
    for (mechanism, user, password) in [
        ("SCRAM-SHA-512", "alice", "looking-glass"),
        ("SCRAM-SHA-512", "mallory", "wonderland"),
        // No SCRAM-SHA-256 credential for alice.
        ("SCRAM-SHA-256", "alice", "wonderland"),
        ("PLAIN", "alice", "looking-glass"),
        ("PLAIN", "nobody", "x"),
    ] {
        let outcome = refused(sasl_client(&sasl, mechanism, user, password));
        assert!(outcome.is_err(), "{mechanism} {user}: {outcome:?}");
        // Each at DEBUG; the first of the spell at WARN too.
        broker.wait_for_log(&["SASL authentication failed", mechanism]);
    }
    // Password guessing fills no log: of 6 more clients' failures none is
    // at WARN (the spell's first was), each at DEBUG; the next success is
    // logged as ever.
    for guess in 0..6 {
        let wrong = sasl_client(&sasl, "PLAIN", "alice", &format!("guess-{guess}"));
        assert!(refused(wrong).is_err());
    }
    let config = sasl_client(&sasl, "PLAIN", "alice", "wonderland");
    round_trip(&config, "after-guessing", "yes").await;
    let (mut warned, mut counted) = (0, 0);
    loop {
        let line = broker.wait_for_log(&[]);
        if line.contains("SASL authentication failed") {
            warned += usize::from(line.contains("WARN"));
            counted += usize::from(line.contains("DEBUG"));
        }
        if line.contains("INFO") && line.contains("authenticated") {
            break;
        }
    }
    // (librdkafka tries each client's login more than once.)
    assert_eq!(warned, 0, "{counted} failures at DEBUG");
    assert!(counted >= 6, "{counted} failures at DEBUG");
    // A client that does not authenticate: its Metadata closes the
    // connection.
    assert!(refused(client(&sasl)).is_err());
    broker.wait_for_log(&["WARN", "before its SASL handshake"]);
    // The right password still works.
    let config = sasl_client(&sasl, "SCRAM-SHA-512", "alice", "wonderland");
    round_trip(&config, "still-open", "yes").await;
}

#[test]
fn a_deleted_credential_is_gone_and_a_second_delete_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let (broker, _) = sasl_broker(&temp);
    rill_user(&broker, &["create", "bob"], "builder");
    rill_user(&broker, &["delete", "bob"], "");
    assert_eq!(rill_user(&broker, &["list"], "").trim(), "");
    let out = std::process::Command::new(common::rill_binary())
        .args(["user", "delete", "bob", "--bootstrap", &broker.bootstrap])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ResourceNotFound"), "{stderr}");
}

#[test]
fn a_frame_larger_than_a_sasl_message_closes_an_unauthenticated_connection() {
    use std::io::Write;
    let temp = tempfile::tempdir().unwrap();
    let (_broker, sasl) = sasl_broker(&temp);
    let mut stream = std::net::TcpStream::connect(&sasl).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    // 1 MiB announced: well within socket.request.max.bytes, beyond what
    // a client that has not authenticated may send (512 KiB, as Kafka).
    stream.write_all(&(1i32 << 20).to_be_bytes()).unwrap();
    let _ = stream.write_all(&[0u8; 1024]); // The broker may have closed already.
    assert!(common::raw::read_frame(&mut stream).is_none(), "answered");
    // A small ApiVersions on a new connection is answered as ever.
    let mut stream = std::net::TcpStream::connect(&sasl).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    common::raw::api_versions(&mut stream, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_written_before_the_first_start_can_log_in() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let data_arg = data.display().to_string();
    rill_with_stdin(
        &["user", "create", "admin", "--data", &data_arg],
        "first-secret\n",
    );
    let file = data.join("initial-scram-credentials.json");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(
        !written.contains("first-secret"),
        "the password itself was written"
    );
    let sasl = free_port();
    let broker = BrokerProcess::start_on(
        &data,
        &[],
        &format!("PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{sasl}"),
    );
    let config = sasl_client(
        &format!("127.0.0.1:{sasl}"),
        "SCRAM-SHA-512",
        "admin",
        "first-secret",
    );
    round_trip(&config, "first-user", "in").await;
    assert!(!file.exists(), "the file outlived its import");
    assert!(rill_user(&broker, &["list"], "").contains("admin"));
}

/// A broker whose SASL sessions last `reauth_ms`; its SASL address.
fn reauth_broker(temp: &tempfile::TempDir, reauth_ms: &str) -> (BrokerProcess, String) {
    let sasl = free_port();
    let broker = BrokerProcess::start_on(
        &temp.path().join("data"),
        &["--set", &format!("connections.max.reauth.ms={reauth_ms}")],
        &format!("PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{sasl}"),
    );
    (broker, format!("127.0.0.1:{sasl}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_re_authenticates_and_keeps_its_connection() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let temp = tempfile::tempdir().unwrap();
    let (broker, sasl) = reauth_broker(&temp, "3000");
    rill_user(&broker, &["create", "erin"], "erin-secret");
    let config = sasl_client(&sasl, "SCRAM-SHA-512", "erin", "erin-secret");
    let producer: FutureProducer = config.clone().set("linger.ms", "0").create().unwrap();
    let send = |value: &'static str| {
        producer.send(
            FutureRecord::<(), _>::to("reauth")
                .payload(value)
                .partition(0),
            rdkafka::util::Timeout::After(WAIT),
        )
    };
    send("before").await.map_err(|(e, _)| e).unwrap();
    // librdkafka re-authenticates before the 3 s session ends, on the
    // connection it has.
    broker.wait_for_log(&["re-authenticated", "erin", "SCRAM-SHA-512"]);
    broker.wait_for_log(&["re-authenticated", "erin", "SCRAM-SHA-512"]);
    send("after").await.map_err(|(e, _)| e).unwrap();
}

#[test]
fn a_client_that_does_not_re_authenticate_is_closed_at_its_next_request() {
    use kafka_protocol::messages::{
        MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
    };
    use kafka_protocol::protocol::StrBytes;
    use std::io::{Read, Write};
    let temp = tempfile::tempdir().unwrap();
    let (broker, sasl) = reauth_broker(&temp, "1000");
    rill_user(&broker, &["create", "frank"], "frank-secret");
    let mut stream = std::net::TcpStream::connect(&sasl).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    assert_eq!(raw_call(&mut stream, (1, 1), &handshake).error_code, 0);
    let authenticate = SaslAuthenticateRequest::default()
        .with_auth_bytes(bytes::Bytes::from_static(b"\0frank\0frank-secret"));
    let authenticated = raw_call(&mut stream, (1, 2), &authenticate);
    assert_eq!(authenticated.error_code, 0);
    assert_eq!(authenticated.session_lifetime_ms, 1000);
    // Served while the session lasts; closed at the first request after.
    let started = std::time::Instant::now();
    let mut correlation_id = 2;
    loop {
        correlation_id += 1;
        let metadata = MetadataRequest::default().with_topics(Some(Vec::new()));
        stream
            .write_all(&common::wire::request_frame(12, correlation_id, &metadata))
            .unwrap_or(());
        let mut length = [0u8; 4];
        if stream.read_exact(&mut length).is_err() {
            break;
        }
        let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
        stream.read_exact(&mut body).unwrap();
        assert!(started.elapsed() < WAIT, "still served after the session");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
    broker.wait_for_log(&["WARN", "SASL session expired", "frank"]);
}

/// A raw connection to `address`: sends `request` (at `version`, with
/// `correlation_id`) and reads its answer.
fn raw_call<R: kafka_protocol::protocol::Request>(
    stream: &mut std::net::TcpStream,
    (version, correlation_id): (i16, i32),
    request: &R,
) -> R::Response {
    use std::io::Write;
    stream
        .write_all(&common::wire::request_frame(
            version,
            correlation_id,
            request,
        ))
        .unwrap();
    common::wire::read_response::<R>(stream, version, correlation_id)
}

/// Whether the broker has closed `stream` (a read finds its end).
fn closed(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_))
}

#[test]
fn an_unknown_mechanism_is_unsupported_and_a_scram_exchange_cut_short_gets_nothing() {
    use kafka_protocol::messages::{
        MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
    };
    use kafka_protocol::protocol::StrBytes;
    use std::io::Write;
    let temp = tempfile::tempdir().unwrap();
    let (broker, sasl) = sasl_broker(&temp);
    rill_user(&broker, &["create", "alice"], "wonderland");
    let connect = || {
        let stream = std::net::TcpStream::connect(&sasl).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream
    };
    // A mechanism Rill does not offer: Kafka's error, the offered list,
    // and the connection closes.
    let mut stream = connect();
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI"));
    let answer = raw_call(&mut stream, (1, 1), &handshake);
    assert_eq!(
        answer.error_code,
        kafka_protocol::ResponseError::UnsupportedSaslMechanism.code()
    );
    assert!(
        answer
            .mechanisms
            .iter()
            .any(|m| m.as_str() == "SCRAM-SHA-512")
    );
    assert!(closed(&mut stream));
    broker.wait_for_log(&["WARN", "does not offer", "GSSAPI"]);
    // A SCRAM exchange left after its first message: the next request is
    // not served, and the connection closes.
    let mut stream = connect();
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("SCRAM-SHA-512"));
    assert_eq!(raw_call(&mut stream, (1, 1), &handshake).error_code, 0);
    let first = SaslAuthenticateRequest::default()
        .with_auth_bytes(bytes::Bytes::from_static(b"n,,n=alice,r=cutshortnonce"));
    let server_first = raw_call(&mut stream, (1, 2), &first);
    assert_eq!(server_first.error_code, 0);
    let metadata = MetadataRequest::default().with_topics(Some(Vec::new()));
    stream
        .write_all(&common::wire::request_frame(12, 3, &metadata))
        .unwrap();
    assert!(closed(&mut stream), "served before authenticating");
    broker.wait_for_log(&["WARN", "during its SASL authentication"]);
}

#[test]
fn re_authenticating_as_another_user_closes_the_connection() {
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
    use kafka_protocol::protocol::StrBytes;
    let temp = tempfile::tempdir().unwrap();
    let (broker, sasl) = reauth_broker(&temp, "60000");
    rill_user(&broker, &["create", "gina"], "gina-secret");
    rill_user(&broker, &["create", "hank"], "hank-secret");
    let mut stream = std::net::TcpStream::connect(&sasl).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut log_in = |first_id: i32, plain: &'static [u8]| {
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
        assert_eq!(
            raw_call(&mut stream, (1, first_id), &handshake).error_code,
            0
        );
        let authenticate =
            SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from_static(plain));
        raw_call(&mut stream, (1, first_id + 1), &authenticate)
    };
    assert_eq!(log_in(1, b"\0gina\0gina-secret").error_code, 0);
    // gina again: fine.
    assert_eq!(log_in(3, b"\0gina\0gina-secret").error_code, 0);
    // hank's valid password does not turn gina's connection into his.
    let refused = log_in(5, b"\0hank\0hank-secret");
    assert_eq!(
        refused.error_code,
        kafka_protocol::ResponseError::SaslAuthenticationFailed.code()
    );
    assert_eq!(
        refused.error_message.as_deref(),
        Some("Cannot change principals during re-authentication")
    );
    assert!(closed(&mut stream));
    broker.wait_for_log(&["re-authenticated", "gina"]);
}
