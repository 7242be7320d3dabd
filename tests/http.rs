//! The HTTP admin listener as an orchestrator and a Prometheus server use
//! it: /health, /ready, and /metrics read through the Prometheus
//! project's own parsers (Python's prometheus_client, from PyPI) in both
//! exposition formats, its figures checked against what librdkafka
//! produced, consumed and committed; and in a three-node cluster, a
//! leader's metrics and log when a follower leaves the ISR and returns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::BrokerProcess;
use common::cluster::Cluster;
use common::cluster::{free_port, wait_until};
use common::http::get;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

const WAIT: Duration = Duration::from_secs(30);

/// A sample: its name and labels.
type Series = (String, BTreeMap<String, String>);

/// The samples of a /metrics body, as prometheus_client's parser for
/// `format` ("text" or "openmetrics") reads them; it fails on a body that
/// breaks the format.
fn parse(body: &str, format: &str) -> Vec<(Series, f64)> {
    let out = common::security::python_client_fed("parse_metrics.py", &[format], body.as_bytes())
        .unwrap_or_else(|error| {
            panic!("prometheus_client's {format} parser refused /metrics: {error}\n{body}")
        });
    out.lines()
        .map(|line| {
            let (name, labels, value): (String, BTreeMap<String, String>, f64) =
                serde_json::from_str(line).unwrap();
            ((name, labels), value)
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include `labels`.
fn sum(samples: &[(Series, f64)], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|((n, l), _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).is_some_and(|have| have == v))
        })
        .map(|(_, value)| value)
        .sum()
}

/// Whether any sample is named `name`.
fn has(samples: &[(Series, f64)], name: &str) -> bool {
    samples.iter().any(|((n, _), _)| n == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_serve_what_a_scraper_and_an_orchestrator_read() {
    let http = format!("127.0.0.1:{}", free_port());
    let broker = BrokerProcess::start(&["--http", &http]);

    let health = get(&http, "/health", "*/*");
    assert_eq!((health.status, health.body.trim()), (200, "ok"));
    wait_until(WAIT, "/ready answers 200", || {
        get(&http, "/ready", "*/*").status == 200
    });
    assert_eq!(get(&http, "/ready", "*/*").body.trim(), "ready");
    assert_eq!(get(&http, "/nothing-here", "*/*").status, 404);

    // 3 partitions, 120 messages of 1,000 bytes, all read back.
    let topic = "metered";
    let admin = broker.admin();
    admin
        .create_topics(
            &[NewTopic::new(topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap()
        .into_iter()
        .for_each(|result| {
            result.unwrap();
        });
    let producer = broker.producer(&[]);
    let payload = vec![b'x'; 1_000];
    for i in 0..120 {
        let key = format!("key-{i}");
        producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&payload),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
    }
    let consumer = broker.consumer(&[]);
    let mut assignment = TopicPartitionList::new();
    for partition in 0..3 {
        assignment
            .add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut read = 0;
    while read < 120 {
        match consumer.poll(WAIT) {
            Some(Ok(_)) => read += 1,
            Some(Err(error)) => panic!("consume failed: {error}"),
            None => panic!("no message within {WAIT:?}; have {read} of 120"),
        }
    }

    // The group commits offset 10 in each partition: 90 messages behind.
    let mut committed = TopicPartitionList::new();
    for partition in 0..3 {
        committed
            .add_partition_offset(topic, partition, rdkafka::Offset::Offset(10))
            .unwrap();
    }
    consumer.commit(&committed, CommitMode::Sync).unwrap();

    // Creating the topic again is refused: TOPIC_ALREADY_EXISTS, counted.
    let again = admin
        .create_topics(
            &[NewTopic::new(topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            again[..],
            [Err((
                _,
                rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
            ))]
        ),
        "{again:?}"
    );

    // Prometheus' text format, which a plain Accept gets.
    let text = get(&http, "/metrics", "*/*");
    assert_eq!(text.status, 200);
    assert!(
        text.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        text.content_type
    );
    let samples = parse(&text.body, "text");
    let of_topic = [("topic", topic)];
    assert_eq!(
        sum(&samples, "rill_topic_received_messages_total", &of_topic),
        120.0
    );
    let received = sum(&samples, "rill_topic_received_bytes_total", &of_topic);
    assert!(received >= 120_000.0, "{received} bytes in");
    // A consumer reads every batch once (from offset 0 of each partition).
    let sent = sum(&samples, "rill_topic_sent_bytes_total", &of_topic);
    assert!(sent >= received, "{sent} bytes out, {received} in");
    assert_eq!(
        sum(&samples, "rill_partition_log_end_offset", &of_topic),
        120.0
    );
    assert!(sum(&samples, "rill_topic_log_size_bytes", &of_topic) >= received);
    assert_eq!(
        sum(&samples, "rill_partitions_leader", &[]),
        sum(&samples, "rill_partitions", &[])
    );
    assert_eq!(sum(&samples, "rill_partitions_under_replicated", &[]), 0.0);
    assert_eq!(sum(&samples, "rill_partitions_under_min_isr", &[]), 0.0);
    assert!(sum(&samples, "rill_metadata_applied_offset", &[]) > 0.0);
    // A single broker is its own controller: one term at least, its log
    // past every entry it applied.
    assert!(sum(&samples, "rill_metadata_quorum_term", &[]) >= 1.0);
    assert!(
        sum(&samples, "rill_metadata_log_end_offset", &[])
            > sum(&samples, "rill_metadata_applied_offset", &[])
    );
    // What it applied, the quorum (itself) committed first.
    assert!(
        sum(&samples, "rill_metadata_high_watermark", &[])
            > sum(&samples, "rill_metadata_applied_offset", &[])
    );
    // It took the leadership of every partition it holds once.
    assert_eq!(
        sum(&samples, "rill_leader_elections_total", &[]),
        sum(&samples, "rill_partitions", &[])
    );
    assert_eq!(sum(&samples, "rill_partitions_offline", &[]), 0.0);
    assert_eq!(
        sum(&samples, "rill_cluster_brokers", &[("state", "unfenced")]),
        1.0
    );
    // Every produce request was answered and timed.
    let produces = sum(&samples, "rill_requests_total", &[("api", "Produce")]);
    assert!(produces >= 1.0);
    assert_eq!(
        sum(
            &samples,
            "rill_request_duration_seconds_count",
            &[("api", "Produce")]
        ),
        produces
    );
    // Errors by API and Kafka's name: the refused creation, and no other.
    assert_eq!(
        sum(
            &samples,
            "rill_request_errors_total",
            &[("api", "CreateTopics"), ("error", "TOPIC_ALREADY_EXISTS")]
        ),
        1.0
    );
    assert_eq!(
        sum(&samples, "rill_request_errors_total", &[("api", "Produce")]),
        0.0
    );
    // And each response's write to the socket timed; nobody was throttled.
    assert!(
        sum(
            &samples,
            "rill_response_send_duration_seconds_count",
            &[("api", "Produce")]
        ) >= 1.0
    );
    assert!(!has(&samples, "rill_throttled_responses_total"));
    // The group's lag, computed by the broker from its commit.
    let of_group = [("group", "rill-tests")];
    assert_eq!(sum(&samples, "rill_group_lag_sum", &of_group), 90.0);
    let fullest = samples
        .iter()
        .filter(|((n, l), _)| {
            n == "rill_partition_log_end_offset" && l.get("topic").is_some_and(|t| t == topic)
        })
        .map(|(_, end)| *end)
        .fold(0.0, f64::max);
    assert_eq!(
        sum(&samples, "rill_group_lag_max", &of_group),
        fullest - 10.0
    );
    assert_eq!(
        sum(
            &samples,
            "rill_group_lag",
            &[("group", "rill-tests"), ("topic", topic)]
        ),
        90.0
    );
    assert!(sum(&samples, "rill_groups", &[]) >= 1.0);
    // Every acks=all produce waited for a flush round.
    assert!(sum(&samples, "rill_flush_round_duration_seconds_count", &[]) >= 1.0);
    assert!(sum(&samples, "rill_flush_round_logs_count", &[]) >= 1.0);
    // The producer, consumer and admin client are connected.
    assert!(sum(&samples, "rill_connections", &[("listener", "PLAINTEXT")]) >= 3.0);
    for name in [
        "rill_process_cpu_seconds_total",
        "rill_process_resident_memory_bytes",
        "rill_process_open_fds",
        "rill_process_max_fds",
        "rill_process_memory_maps",
        "rill_log_dir_free_bytes",
    ] {
        assert!(sum(&samples, name, &[]) > 0.0, "{name}");
    }

    // The committed Grafana dashboard asks only for series that exist.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana/rill-dashboard.json"
    ))
    .unwrap();
    for (at, _) in dashboard.match_indices("rill_") {
        let name: String = dashboard[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name == "rill_" {
            continue; // The dashboard's own name.
        }
        assert!(has(&samples, &name), "the dashboard asks for {name}");
    }

    // OpenMetrics, as Prometheus asks for it.
    let open = get(
        &http,
        "/metrics",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    );
    assert!(
        open.content_type
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{}",
        open.content_type
    );
    let samples = parse(&open.body, "openmetrics");
    assert_eq!(
        sum(&samples, "rill_topic_received_messages_total", &of_topic),
        120.0
    );
    assert!(has(&samples, "rill_request_duration_seconds_bucket"));

    // A deleted topic's series go with it.
    admin
        .delete_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap()
        .into_iter()
        .for_each(|result| {
            result.unwrap();
        });
    let of_deleted = |samples: &[(Series, f64)]| {
        samples
            .iter()
            .filter(|((n, l), _)| {
                n.starts_with("rill_topic_") && l.get("topic").is_some_and(|t| t == topic)
            })
            .count()
    };
    wait_until(WAIT, "the deleted topic's series gone", || {
        of_deleted(&scrape(&http)) == 0
    });
}

#[test]
fn a_chosen_http_address_in_use_fails_the_start_and_says_which() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let temp = tempfile::tempdir().unwrap();
    let out = Command::new(common::rill_binary())
        .args([
            "broker",
            "--listen",
            "127.0.0.1:0",
            "--http",
            &address,
            "--data",
        ])
        .arg(temp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&address) && stderr.contains("rill.http.listener"),
        "{stderr}"
    );
}

/// The scraped samples of `http`'s text format.
fn scrape(http: &str) -> Vec<(Series, f64)> {
    let response = get(http, "/metrics", "*/*");
    assert_eq!(response.status, 200);
    parse(&response.body, "text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_reports_and_logs_a_follower_leaving_the_isr_and_coming_back() {
    let mut cluster = Cluster::start(3, &[]);
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new("watched", 1, TopicReplication::Fixed(3))
                .set("min.insync.replicas", "3")],
            &AdminOptions::new().operation_timeout(Some(WAIT)),
        )
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    wait_until(WAIT, "all three replicas in the ISR", || {
        cluster.partition_state("watched", 0).1.len() == 3
    });
    let (leader, _) = cluster.partition_state("watched", 0);
    let leader_http = cluster.http[usize::try_from(leader - 1).unwrap()].clone();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let shrinks = |samples: &[(Series, f64)]| sum(samples, "rill_isr_shrinks_total", &[]);
    let before = shrinks(&scrape(&leader_http));

    // The metadata quorum's leader reports each other controller's lag:
    // nothing, once they have caught up.
    let controller = sum(&scrape(&leader_http), "rill_controller_leader", &[]) as i32;
    let controller_http = cluster.http[usize::try_from(controller - 1).unwrap()].clone();
    wait_until(WAIT, "both followers of the quorum caught up", || {
        let samples = scrape(&controller_http);
        let lags: Vec<f64> = samples
            .iter()
            .filter(|((n, _), _)| n == "rill_metadata_follower_lag")
            .map(|(_, lag)| *lag)
            .collect();
        lags.len() == 2 && lags.iter().all(|lag| *lag == 0.0)
    });

    cluster.node(follower).kill();
    wait_until(
        Duration::from_secs(60),
        "the leader reports a shrink",
        || {
            let samples = scrape(&leader_http);
            shrinks(&samples) > before
                && sum(&samples, "rill_partitions_under_replicated", &[]) >= 1.0
                && sum(&samples, "rill_partitions_under_min_isr", &[]) >= 1.0
        },
    );
    let warned = cluster
        .node(leader)
        .wait_for_log(&["WARN", "the ISR shrank", "watched-0"]);
    assert!(warned.contains(&format!("[{follower}]")), "{warned}");
    if follower != controller {
        // The shrink is an entry the killed controller does not hold.
        let node = follower.to_string();
        wait_until(WAIT, "the quorum's leader sees the killed one lag", || {
            let samples = scrape(&controller_http);
            sum(&samples, "rill_metadata_follower_lag", &[("node", &node)]) >= 1.0
        });
    }

    cluster.node(follower).restart();
    wait_until(Duration::from_secs(60), "the ISR whole again", || {
        let samples = scrape(&leader_http);
        sum(&samples, "rill_isr_expands_total", &[]) >= 1.0
            && sum(&samples, "rill_partitions_under_replicated", &[]) == 0.0
            && sum(&samples, "rill_partitions_under_min_isr", &[]) == 0.0
    });
}

/// `method path` on the HTTPS listener at `http`, through Python's own
/// HTTP client (tests/clients/http_call.py), trusting `ca`, logged in as
/// `user` if given: (status, WWW-Authenticate, body).
fn https(
    (http, ca): (&str, &std::path::Path),
    method: &str,
    path: &str,
    user: Option<(&str, &str)>,
    body: &str,
) -> (u16, Option<String>, String) {
    let url = format!("https://{http}{path}");
    let mut args = vec![method, url.as_str(), ca.to_str().unwrap()];
    if let Some((name, password)) = user {
        args.extend([name, password]);
    }
    let out = common::security::python_client_fed("http_call.py", &args, body.as_bytes())
        .unwrap_or_else(|error| panic!("{method} {url}: {error}"));
    let answer: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    (
        u16::try_from(answer["status"].as_u64().unwrap()).unwrap(),
        answer["www_authenticate"].as_str().map(str::to_string),
        answer["body"].as_str().unwrap().to_string(),
    )
}

#[test]
fn the_http_listener_serves_https_and_lets_in_only_users_the_cluster_knows() {
    let temp = tempfile::tempdir().unwrap();
    let ca = common::tls::Ca::new("http-ca");
    let keystore = common::tls::write(temp.path(), "http.pem", &ca.server().keystore());
    let trusted = common::tls::write(temp.path(), "ca.pem", &ca.pem);
    let http = format!("127.0.0.1:{}", free_port());
    let broker = BrokerProcess::start_in(
        &temp.path().join("data"),
        &[
            "--http",
            &http,
            "--set",
            &format!("rill.http.ssl.keystore.location={}", keystore.display()),
            "--set",
            "rill.http.authentication=basic",
            "--set",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "--set",
            "super.users=User:ANONYMOUS",
        ],
    );
    common::security::rill_user(&broker, &["create", "alice"], "alice-secret");
    let at = (http.as_str(), trusted.as_path());
    let alice = Some(("alice", "alice-secret"));

    // Probes need no login.
    let (status, _, body) = https(at, "GET", "/health", None, "");
    assert_eq!((status, body.trim()), (200, "ok"));
    // The rest asks for one, as a browser understands; a wrong password or
    // an unknown user is no login.
    for user in [
        None,
        Some(("alice", "guess")),
        Some(("mallory", "alice-secret")),
    ] {
        let (status, challenge, _) = https(at, "GET", "/api/overview", user, "");
        assert_eq!(status, 401, "{user:?}");
        assert!(
            challenge.is_some_and(|c| c.starts_with("Basic realm=")),
            "{user:?}"
        );
    }
    // alice is known, but the authorizer lets her do nothing yet.
    let (status, _, body) = https(at, "GET", "/api/overview", alice, "");
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("User:alice may not DESCRIBE the cluster"),
        "{body}"
    );

    // DESCRIBE on the cluster: she may look (the console, /metrics), not
    // change anything.
    let granted = std::process::Command::new(common::rill_binary())
        .args(["acl", "add", "--allow-principal", "User:alice"])
        .args(["--operation", "Describe", "--cluster"])
        .args(["--bootstrap", &broker.bootstrap])
        .output()
        .unwrap();
    assert!(
        granted.status.success(),
        "{}",
        String::from_utf8_lossy(&granted.stderr)
    );
    let (status, _, body) = https(at, "GET", "/api/overview", alice, "");
    assert_eq!(status, 200, "{body}");
    let overview: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(overview["brokers"].as_array().unwrap().len(), 1);
    let (status, _, body) = https(at, "GET", "/metrics", alice, "");
    assert_eq!(status, 200);
    assert!(body.contains("rill_partitions"), "{body}");
    let (status, _, body) = https(at, "GET", "/", alice, "");
    assert_eq!(status, 200);
    assert!(body.contains("<title>Rill console</title>"));
    let (status, _, body) = https(at, "POST", "/api/topics", alice, r#"{"name": "hers"}"#);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not ALTER the cluster"), "{body}");
    assert_eq!(
        https(at, "GET", "/api/topics/hers", alice, "").0,
        404,
        "the refused change changed nothing"
    );
}

#[test]
fn an_http_listener_off_loopback_without_logins_is_warned_of() {
    use std::io::BufRead;
    let temp = tempfile::tempdir().unwrap();
    let http = format!("0.0.0.0:{}", free_port());
    let mut child = Command::new(common::rill_binary())
        .args(["broker", "--listen", "127.0.0.1:0", "--http", &http])
        .arg("--data")
        .arg(temp.path())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut warned = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("WARN") && line.contains("asks for no login") {
            warned = Some(line.clone());
        }
        if line.contains("listening on") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let warned = warned.expect("no warning about the HTTP listener before it listened");
    assert!(warned.contains(&http), "{warned}");
    assert!(
        warned.contains("rill.http.authentication=basic"),
        "{warned}"
    );
}
