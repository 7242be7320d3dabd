//! TLS listeners (SSL, SASL_SSL) through librdkafka against the real
//! broker, with certificates the tests make (tests/common/tls.rs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::BrokerProcess;
use common::cluster::free_port;
use common::security::{client, rill_user, round_trip, sasl_client};
use common::tls::{Ca, Leaf, write};
use rcgen::DnType;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const WAIT: Duration = Duration::from_secs(30);

/// A broker with a PLAINTEXT listener for local tools (the inter-broker
/// one) and a TLS listener `NAME://` on its own port, its keystore signed
/// by `ca`, with `extra` properties; the TLS listener's address.
fn tls_broker(dir: &Path, ca: &Ca, protocol: &str, extra: &[&str]) -> (BrokerProcess, String) {
    let keystore = write(dir, "broker.pem", &ca.server().keystore());
    let port = free_port();
    let mut args = vec![
        "--set".to_string(),
        format!("ssl.keystore.location={}", keystore.display()),
    ];
    for property in extra {
        args.push("--set".to_string());
        args.push(property.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let broker = BrokerProcess::start_on(
        &dir.join("data"),
        &args,
        &format!("PLAINTEXT://127.0.0.1:0,{protocol}://127.0.0.1:{port}"),
    );
    (broker, format!("127.0.0.1:{port}"))
}

/// A client of a TLS listener that trusts `ca_file` (and checks that the
/// broker's certificate names 127.0.0.1, librdkafka's default).
fn tls_client(bootstrap: &str, protocol: &str, ca_file: &Path) -> ClientConfig {
    let mut config = client(bootstrap);
    config
        .set("security.protocol", protocol)
        .set("ssl.ca.location", ca_file.display().to_string());
    config
}

/// `config` with the client certificate `leaf`, written into `dir`.
fn with_certificate(mut config: ClientConfig, dir: &Path, name: &str, leaf: &Leaf) -> ClientConfig {
    let cert = write(dir, &format!("{name}.crt"), &leaf.cert);
    let key = write(dir, &format!("{name}.key"), &leaf.key);
    config
        .set("ssl.certificate.location", cert.display().to_string())
        .set("ssl.key.location", key.display().to_string());
    config
}

/// Whether a client made with `config` gets the cluster's metadata within
/// a few seconds.
fn gets_metadata(mut config: ClientConfig) -> bool {
    let consumer: BaseConsumer = config.set("log_level", "0").create().unwrap();
    consumer
        .fetch_metadata(None, Duration::from_secs(3))
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_over_sasl_ssl_produces_and_consumes_and_an_untrusted_broker_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let ca = Ca::new("rill test CA");
    let (broker, address) = tls_broker(temp.path(), &ca, "SASL_SSL", &[]);
    rill_user(&broker, &["create", "alice"], "wonderland\n");
    let ca_file = write(temp.path(), "ca.pem", &ca.pem);
    let mut config = sasl_client(&address, "SCRAM-SHA-512", "alice", "wonderland");
    config
        .set("security.protocol", "SASL_SSL")
        .set("ssl.ca.location", ca_file.display().to_string());
    round_trip(&config, "over-tls", "encrypted").await;
    // A client that trusts another CA does not talk to this broker.
    let other = write(temp.path(), "other.pem", &Ca::new("another CA").pem);
    config.set("ssl.ca.location", other.display().to_string());
    assert!(!gets_metadata(config));
    // Nor does a client of the TLS port that skips SASL.
    assert!(!gets_metadata(tls_client(&address, "SSL", &ca_file)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_lets_in_only_clients_with_a_trusted_current_certificate() {
    let temp = tempfile::tempdir().unwrap();
    let ca = Ca::new("rill test CA");
    let ca_file = write(temp.path(), "ca.pem", &ca.pem);
    let (broker, address) = tls_broker(
        temp.path(),
        &ca,
        "SSL",
        &[
            &format!("ssl.truststore.location={}", ca_file.display()),
            "ssl.client.auth=required",
        ],
    );
    let base = tls_client(&address, "SSL", &ca_file);
    let alice = ca.client(&[
        (DnType::OrganizationName, "acme"),
        (DnType::CommonName, "alice"),
    ]);
    round_trip(
        &with_certificate(base.clone(), temp.path(), "alice", &alice),
        "mutual",
        "both ends known",
    )
    .await;
    // No certificate, one from a CA the broker does not trust, and an
    // expired one: each refused at the handshake, said once at WARN with
    // the peer's address.
    assert!(!gets_metadata(base.clone()));
    broker.wait_for_log(&[
        "WARN",
        "connection refused",
        "client=127.0.0.1:",
        "TLS handshake failed",
    ]);
    let stranger = Ca::new("stranger CA").client(&[(DnType::CommonName, "mallory")]);
    assert!(!gets_metadata(with_certificate(
        base.clone(),
        temp.path(),
        "stranger",
        &stranger
    )));
    // (librdkafka sends no certificate the broker's CA list does not name.)
    broker.wait_for_log(&["DEBUG", "TLS handshake failed"]);
    let expired = ca.expired_client("late");
    assert!(!gets_metadata(with_certificate(
        base,
        temp.path(),
        "expired",
        &expired
    )));
    broker.wait_for_log(&["DEBUG", "TLS handshake failed", "certificate expired"]);
}

#[test]
fn plaintext_on_a_tls_port_and_tls_on_a_plaintext_port_close_the_connection() {
    let temp = tempfile::tempdir().unwrap();
    let ca = Ca::new("rill test CA");
    let (broker, address) = tls_broker(temp.path(), &ca, "SSL", &[]);
    // A Kafka request where a ClientHello should be.
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(&common::raw::frame(&[0, 18, 0, 0, 0, 0, 0, 1, 0, 0]))
        .unwrap();
    let mut answer = Vec::new();
    // The broker sends a TLS alert at most, then closes.
    let _ = stream.read_to_end(&mut answer);
    assert!(
        answer.len() < 16 && answer.first() != Some(&0),
        "{answer:?}"
    );
    broker.wait_for_log(&["WARN", "connection refused", "TLS handshake failed"]);
    // A TLS client on the PLAINTEXT port.
    let ca_file = write(temp.path(), "ca.pem", &ca.pem);
    assert!(!gets_metadata(tls_client(
        &broker.bootstrap,
        "SSL",
        &ca_file
    )));
    broker.wait_for_log(&["WARN", "a TLS client on a PLAINTEXT listener"]);
    // Both listeners still serve.
    common::raw::assert_serving(&broker);
    assert!(gets_metadata(tls_client(&address, "SSL", &ca_file)));
}

#[test]
fn a_renewed_certificate_is_served_to_new_connections_without_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old CA");
    let (broker, address) = tls_broker(
        temp.path(),
        &old_ca,
        "SSL",
        &["rill.ssl.reload.check.interval.ms=100"],
    );
    let new_ca = Ca::new("new CA");
    let trusts_new = tls_client(
        &address,
        "SSL",
        &write(temp.path(), "new-ca.pem", &new_ca.pem),
    );
    assert!(!gets_metadata(trusts_new.clone()));
    // The operator renews the certificate: a new file moved into place.
    let renewed = write(temp.path(), "renewed.pem", &new_ca.server().keystore());
    std::fs::rename(renewed, temp.path().join("broker.pem")).unwrap();
    broker.wait_for_log(&["TLS keys and certificates reloaded"]);
    let deadline = Instant::now() + WAIT;
    while !gets_metadata(trusts_new.clone()) {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served"
        );
    }
    // A broken file (half written, say) keeps the current certificate.
    std::fs::write(temp.path().join("broker.pem"), "-----BEGIN").unwrap();
    broker.wait_for_log(&["WARN", "cannot be loaded", "keeps the ones it has"]);
    assert!(gets_metadata(trusts_new));
}

/// What `rill broker ARGS --listen LISTENERS` says on stderr as it
/// refuses to start.
fn refused_at_start(args: &[&str], listeners: &str) -> String {
    let temp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::rill_binary())
        .args(["broker", "--data"])
        .arg(temp.path().join("data"))
        .args(args)
        .args(["--listen", listeners])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{listeners}: started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn tls_listeners_without_usable_keys_are_refused_at_start() {
    let temp = tempfile::tempdir().unwrap();
    let listeners = "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0";
    let stderr = refused_at_start(&[], listeners);
    assert!(stderr.contains("ssl.keystore.location"), "{stderr}");
    let missing = temp.path().join("missing.pem");
    let stderr = refused_at_start(
        &[
            "--set",
            &format!("ssl.keystore.location={}", missing.display()),
        ],
        listeners,
    );
    assert!(
        stderr.contains("cannot read") && stderr.contains("missing.pem"),
        "{stderr}"
    );
    let encrypted = write(
        temp.path(),
        "encrypted.pem",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let stderr = refused_at_start(
        &[
            "--set",
            &format!("ssl.keystore.location={}", encrypted.display()),
        ],
        listeners,
    );
    assert!(stderr.contains("encrypted private key"), "{stderr}");
    let ca = Ca::new("rill test CA");
    let keystore = write(temp.path(), "broker.pem", &ca.server().keystore());
    let stderr = refused_at_start(
        &[
            "--set",
            &format!("ssl.keystore.location={}", keystore.display()),
            "--set",
            "ssl.client.auth=required",
        ],
        listeners,
    );
    assert!(stderr.contains("truststore"), "{stderr}");
    // Nodes speaking TLS to each other check each other's certificates:
    // an SSL inter-broker listener needs a truststore.
    let stderr = refused_at_start(
        &[
            "--set",
            &format!("ssl.keystore.location={}", keystore.display()),
        ],
        "SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
    );
    assert!(
        stderr.contains("inter.broker.listener.name") && stderr.contains("truststore"),
        "{stderr}"
    );
}

#[test]
fn a_listener_takes_its_own_keys_from_listener_name_properties() {
    let temp = tempfile::tempdir().unwrap();
    let (internal_ca, external_ca) = (Ca::new("internal CA"), Ca::new("external CA"));
    let internal = write(
        temp.path(),
        "internal.pem",
        &internal_ca.server().keystore(),
    );
    let external = write(
        temp.path(),
        "external.pem",
        &external_ca.server().keystore(),
    );
    let (first, second) = (free_port(), free_port());
    let broker = BrokerProcess::start_on(
        &temp.path().join("data"),
        &[
            "--set",
            "listener.security.protocol.map=LOCAL:PLAINTEXT,INTERNAL:SSL,EXTERNAL:SSL",
            "--set",
            &format!("ssl.keystore.location={}", internal.display()),
            "--set",
            &format!(
                "listener.name.external.ssl.keystore.location={}",
                external.display()
            ),
        ],
        &format!("LOCAL://127.0.0.1:0,INTERNAL://127.0.0.1:{first},EXTERNAL://127.0.0.1:{second}"),
    );
    let trusts_external = write(temp.path(), "external-ca.pem", &external_ca.pem);
    let trusts_internal = write(temp.path(), "internal-ca.pem", &internal_ca.pem);
    let external = format!("127.0.0.1:{second}");
    let internal = format!("127.0.0.1:{first}");
    assert!(gets_metadata(tls_client(
        &external,
        "SSL",
        &trusts_external
    )));
    assert!(!gets_metadata(tls_client(
        &external,
        "SSL",
        &trusts_internal
    )));
    assert!(gets_metadata(tls_client(
        &internal,
        "SSL",
        &trusts_internal
    )));
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_private_key_is_never_described() {
    use rdkafka::admin::{AdminOptions, ResourceSpecifier};
    let temp = tempfile::tempdir().unwrap();
    let leaf = Ca::new("rill test CA").server();
    let chain = format!("ssl.keystore.certificate.chain={}", leaf.cert);
    let key = format!("ssl.keystore.key={}", leaf.key);
    let broker = BrokerProcess::start_on(
        &temp.path().join("data"),
        &["--set", &chain, "--set", &key],
        "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
    );
    let described = broker
        .admin()
        .describe_configs(&[ResourceSpecifier::Broker(1)], &AdminOptions::new())
        .await
        .unwrap();
    let resource = described[0].as_ref().unwrap();
    let key = resource.get("ssl.keystore.key").unwrap();
    assert!(key.is_sensitive);
    assert_eq!(key.value, None);
    let chain = resource.get("ssl.keystore.certificate.chain").unwrap();
    assert_eq!(
        chain.value.as_deref().map(str::trim),
        Some(leaf.cert.trim())
    );
}

#[test]
fn kafka_python_produces_and_consumes_with_scram_over_sasl_ssl() {
    let temp = tempfile::tempdir().unwrap();
    let ca = Ca::new("rill test CA");
    let (broker, address) = tls_broker(temp.path(), &ca, "SASL_SSL", &[]);
    rill_user(&broker, &["create", "carol"], "carol-secret");
    let ca_file = write(temp.path(), "ca.pem", &ca.pem);
    let cafile = format!("ssl_cafile={}", ca_file.display());
    let settings = [
        "security_protocol=SASL_SSL",
        cafile.as_str(),
        "sasl_mechanism=SCRAM-SHA-512",
        "sasl_plain_username=carol",
        "sasl_plain_password=carol-secret",
    ];
    let mut args = vec![address.as_str(), "from-python", "hello from kafka-python"];
    args.extend(settings);
    let read = common::security::python_client("kafka_python_round_trip.py", &args).unwrap();
    assert_eq!(read.trim(), "hello from kafka-python");
    // A wrong password gets nothing: kafka-python retries until its
    // bootstrap timeout, and the broker refuses each attempt.
    let mut wrong: Vec<&str> = args
        .iter()
        .map(|a| {
            if a.starts_with("sasl_plain_password=") {
                "sasl_plain_password=guess"
            } else {
                a
            }
        })
        .collect();
    wrong.push("bootstrap_timeout_ms=3000");
    let refused =
        common::security::python_client("kafka_python_round_trip.py", &wrong).unwrap_err();
    assert!(refused.contains("Unable to bootstrap"), "{refused}");
    broker.wait_for_log(&["SASL authentication failed", "\"carol\""]);
}

#[test]
fn the_native_bench_producer_speaks_sasl_ssl_and_writes_what_it_reports() {
    let temp = tempfile::tempdir().unwrap();
    let ca = Ca::new("rill test CA");
    let (broker, address) = tls_broker(temp.path(), &ca, "SASL_SSL", &[]);
    rill_user(&broker, &["create", "bencher"], "bench-secret");
    let ca_file = write(temp.path(), "ca.pem", &ca.pem);
    let out = std::process::Command::new(common::rill_binary())
        .args([
            "bench",
            "produce",
            "--client",
            "native",
            "--json",
            "--no-progress",
        ])
        .args([
            "--bootstrap",
            &address,
            "--topic",
            "native-tls",
            "--partitions",
            "2",
        ])
        // Batches larger than rustls's 64 KiB send buffer.
        .args([
            "--messages",
            "3000",
            "--size",
            "1000",
            "--batch-size",
            "300000",
        ])
        .args(["-X", "security.protocol=SASL_SSL"])
        .args([
            "-X",
            "sasl.mechanism=SCRAM-SHA-512",
            "-X",
            "sasl.username=bencher",
        ])
        .args(["-X", "sasl.password=bench-secret", "-X"])
        .arg(format!("ssl.ca.location={}", ca_file.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["produce"]["messages"], 3000);
    broker.wait_for_log(&["authenticated", "bencher"]);
    // What it reports is in the topic, read back through PLAINTEXT.
    let mut wire = common::wire::Wire::connect(&broker.bootstrap);
    let ends: i64 = (0..2)
        .map(|partition| {
            let response = wire.send(
                7,
                &kafka_protocol::messages::ListOffsetsRequest::default().with_topics(vec![
                    kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default()
                        .with_name(common::wire::topic_name("native-tls"))
                        .with_partitions(vec![
                            kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(partition)
                                .with_timestamp(-1),
                        ]),
                ]),
            );
            response.topics[0].partitions[0].offset
        })
        .sum();
    assert_eq!(ends, 3000);
}

#[test]
fn client_commands_take_a_kafka_tools_command_config() {
    let temp = tempfile::tempdir().unwrap();
    let ca = Ca::new("rill test CA");
    let (broker, address) = tls_broker(temp.path(), &ca, "SASL_SSL", &[]);
    rill_user(&broker, &["create", "dave"], "dave-secret");
    let ca_file = write(temp.path(), "ca.pem", &ca.pem);
    // What kafka-topics --command-config takes, Java client names and all.
    let config = write(
        temp.path(),
        "client.properties",
        &format!(
            "security.protocol=SASL_SSL\n\
             sasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"dave\" password=\"dave-secret\";\n\
             ssl.truststore.type=PEM\n\
             ssl.truststore.location={}\n",
            ca_file.display()
        ),
    );
    let rill = |args: &[&str]| {
        std::process::Command::new(common::rill_binary())
            .args(args)
            .args(["--bootstrap", &address, "--command-config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let created = rill(&["topic", "create", "configured"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let listed = rill(&["topic", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("configured"));
    // -X wins over the file: a wrong password is refused.
    let refused = std::process::Command::new(common::rill_binary())
        .args([
            "topic",
            "list",
            "--bootstrap",
            &address,
            "--timeout-ms",
            "3000",
        ])
        .arg("--command-config")
        .arg(&config)
        .args(["-X", "sasl.password=wrong"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

/// The tests' identity provider: an ECDSA key, its JWKS, and tokens.
struct IdentityProvider {
    key: ring::signature::EcdsaKeyPair,
    jwks: String,
}

impl IdentityProvider {
    fn new() -> IdentityProvider {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let random = ring::rand::SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random)
                .unwrap();
        let point = key.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "test",
            "x": b64(&point[1..33]), "y": b64(&point[33..65])}]})
        .to_string();
        IdentityProvider { key, jwks }
    }

    /// A token for `subject` for audience `audience`, expiring `exp_s`
    /// seconds from now (negative: in the past).
    fn token(&self, subject: &str, audience: &str, exp_s: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let header = b64(br#"{"alg":"ES256","typ":"JWT","kid":"test"}"#);
        let claims =
            serde_json::json!({"sub": subject, "aud": audience, "iat": now, "exp": now + exp_s});
        let signed = format!("{header}.{}", b64(claims.to_string().as_bytes()));
        let signature = self
            .key
            .sign(&ring::rand::SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", b64(signature.as_ref()))
    }
}

/// Base64url without padding, as JWTs write it.
fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A librdkafka context that hands librdkafka one fixed token.
struct Bearer(String);

impl rdkafka::ClientContext for Bearer {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        Ok(rdkafka::client::OAuthToken {
            token: self.0.clone(),
            principal_name: "ignored".into(),
            lifetime_ms: (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64)
                + 3_600_000,
        })
    }
}

impl rdkafka::consumer::ConsumerContext for Bearer {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_tokens_signed_by_the_jwks_get_in_and_others_do_not() {
    use rdkafka::Message;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let temp = tempfile::tempdir().unwrap();
    let ca = Ca::new("rill test CA");
    let provider = IdentityProvider::new();
    let jwks = write(temp.path(), "jwks.json", &provider.jwks);
    let (broker, address) = tls_broker(
        temp.path(),
        &ca,
        "SASL_SSL",
        &[
            "sasl.enabled.mechanisms=OAUTHBEARER,SCRAM-SHA-512",
            &format!(
                "sasl.oauthbearer.jwks.endpoint.url=file://{}",
                jwks.display()
            ),
            "sasl.oauthbearer.expected.audience=rill",
        ],
    );
    let ca_file = write(temp.path(), "ca.pem", &ca.pem);
    let config = |token: String| {
        let mut config = tls_client(&address, "SASL_SSL", &ca_file);
        config
            .set("sasl.mechanism", "OAUTHBEARER")
            .set("linger.ms", "0")
            .set("message.timeout.ms", "5000");
        (config, Bearer(token))
    };
    let (good, context) = config(provider.token("alice", "rill", 300));
    let producer: FutureProducer<Bearer> = good.create_with_context(context).unwrap();
    let delivered = producer
        .send(
            FutureRecord::<(), _>::to("bearer")
                .payload("with a token")
                .partition(0),
            rdkafka::util::Timeout::After(WAIT),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    broker.wait_for_log(&["authenticated", "alice", "OAUTHBEARER"]);
    let (reader, context) = config(provider.token("alice", "rill", 300));
    let consumer: BaseConsumer<Bearer> = reader
        .clone()
        .set("group.id", "bearer")
        .create_with_context(context)
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset("bearer", 0, rdkafka::Offset::Offset(delivered.offset))
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(std::time::Instant::now() < deadline, "nothing read back");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            assert_eq!(message.unwrap().payload(), Some(&b"with a token"[..]));
            break;
        }
    }
    // Expired, for another audience, or signed by someone else: refused.
    let stranger = IdentityProvider::new();
    for (token, reason) in [
        (provider.token("alice", "rill", -120), "the token expired"),
        (provider.token("alice", "elsewhere", 300), "audience"),
        (
            stranger.token("alice", "rill", 300),
            "signature does not verify",
        ),
    ] {
        let (bad, context) = config(token);
        let producer: FutureProducer<Bearer> = bad.create_with_context(context).unwrap();
        let refused = producer
            .send(
                FutureRecord::<(), _>::to("bearer")
                    .payload("x")
                    .partition(0),
                rdkafka::util::Timeout::After(WAIT),
            )
            .await;
        assert!(refused.is_err(), "{reason}");
        broker.wait_for_log(&["SASL authentication failed", "OAUTHBEARER", reason]);
    }
}

#[test]
fn an_administrator_manages_users_and_acls_over_sasl_ssl_with_a_command_config() {
    let temp = tempfile::tempdir().unwrap();
    let ca = Ca::new("rill test CA");
    // The first administrator, before the broker's first start.
    let data = temp.path().join("data").display().to_string();
    common::security::rill_with_stdin(
        &["user", "create", "admin", "--data", &data],
        "admin-secret",
    );
    let (broker, address) = tls_broker(
        temp.path(),
        &ca,
        "SASL_SSL",
        &[
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:admin",
        ],
    );
    let ca_file = write(temp.path(), "ca.pem", &ca.pem);
    let config_for = |user: &str, password: &str, mechanism: &str| {
        write(
            temp.path(),
            &format!("{user}.properties"),
            &format!(
                "security.protocol=SASL_SSL\nsasl.mechanism={mechanism}\n\
                 sasl.username={user}\nsasl.password={password}\nssl.ca.location={}\n",
                ca_file.display()
            ),
        )
    };
    let admin = config_for("admin", "admin-secret", "SCRAM-SHA-512");
    let rill = |config: &Path, args: &[&str], stdin: &str| {
        let config = config.display().to_string();
        let mut all = args.to_vec();
        all.extend(["--bootstrap", &address, "--command-config", &config]);
        let out = std::process::Command::new(common::rill_binary())
            .args(&all)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(stdin.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    rill(&admin, &["user", "create", "bob"], "bob-secret").unwrap();
    rill(
        &admin,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:bob",
            "--operation",
            "Read",
            "--topic",
            "t",
        ],
        "",
    )
    .unwrap();
    let users = rill(&admin, &["user", "list"], "").unwrap();
    assert!(users.contains("admin") && users.contains("bob"), "{users}");
    assert!(
        rill(&admin, &["acl", "list"], "")
            .unwrap()
            .contains("User:bob")
    );
    // bob logs in (PLAIN this time) but may not manage ACLs.
    let bob = config_for("bob", "bob-secret", "PLAIN");
    let refused = rill(&bob, &["acl", "list"], "").unwrap_err();
    assert!(refused.contains("ClusterAuthorizationFailed"), "{refused}");
    // A wrong password does not get in at all.
    let wrong = config_for("mallory", "guess", "SCRAM-SHA-256");
    let refused = rill(&wrong, &["user", "list"], "").unwrap_err();
    assert!(refused.contains("SaslAuthenticationFailed"), "{refused}");
    // Nor does the PLAINTEXT listener's User:ANONYMOUS manage users.
    let anonymous = std::process::Command::new(common::rill_binary())
        .args(["user", "list", "--bootstrap", &broker.bootstrap])
        .output()
        .unwrap();
    assert!(!anonymous.status.success());
}
