//! The client commands (`rill topic`, `rill produce`, `rill consume`) run as
//! processes against a real broker, checked by what they print and how they
//! exit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{BrokerProcess, rill_binary};
use serde_json::{Value, json};

/// How long a test waits for a `--follow` consumer's next line.
const WAIT: Duration = Duration::from_secs(30);

/// What one command printed and how it exited.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `rill ARGS --bootstrap BROKER` with `stdin` as its input.
fn rill(broker: &BrokerProcess, args: &[&str], stdin: &str) -> Run {
    run_with_bootstrap(&broker.bootstrap, args, stdin)
}

fn run_with_bootstrap(bootstrap: &str, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(rill_binary())
        .args(args)
        .args(["--bootstrap", bootstrap])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let run = Run {
        success: status.success(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    };
    eprintln!(
        "$ rill {} -> {status}\n{}",
        args.join(" "),
        run.stderr.trim_end()
    );
    run
}

/// Runs a command that must succeed.
fn ok(broker: &BrokerProcess, args: &[&str], stdin: &str) -> Run {
    let run = rill(broker, args, stdin);
    assert!(run.success, "rill {args:?} failed: {}", run.stderr);
    run
}

/// Runs a command that must fail, with an error on stderr and no output.
fn fails(broker: &BrokerProcess, args: &[&str]) -> Run {
    let run = rill(broker, args, "");
    assert!(!run.success, "rill {args:?} succeeded: {}", run.stdout);
    assert!(
        run.stderr.contains("error: "),
        "no error shown: {}",
        run.stderr
    );
    run
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The topic's `describe --json` object.
fn describe(broker: &BrokerProcess, topic: &str, extra: &[&str]) -> Value {
    let mut args = vec!["topic", "describe", topic, "--json"];
    args.extend_from_slice(extra);
    let described = json_lines(&ok(broker, &args, "").stdout);
    assert_eq!(described.len(), 1, "{described:?}");
    described.into_iter().next().unwrap()
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[test]
fn topic_create_list_describe_alter_delete() {
    let broker = BrokerProcess::start(&[]);
    let created = ok(
        &broker,
        &[
            "topic",
            "create",
            "events",
            "--partitions",
            "2",
            "--config",
            "retention.ms=60000",
        ],
        "",
    );
    assert!(created.stderr.contains("created topic events"));

    let again = fails(&broker, &["topic", "create", "events"]);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    let tolerated = ok(
        &broker,
        &["topic", "create", "events", "--if-not-exists"],
        "",
    );
    assert!(tolerated.stderr.contains("exists already"));
    ok(&broker, &["topic", "create", "audit"], "");

    let listed = ok(&broker, &["topic", "list"], "");
    // Like kafka-topics --list, internal topics are listed too; but
    // __consumer_offsets, as in Kafka, only once a group needs it.
    assert_eq!(lines(&listed.stdout), ["audit", "events"]);

    let text = ok(&broker, &["topic", "describe", "events"], "");
    let text = lines(&text.stdout);
    assert_eq!(
        text[0],
        "Topic: events\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: retention.ms=60000"
    );
    assert_eq!(text.len(), 3, "{text:?}");
    for (partition, line) in text[1..].iter().enumerate() {
        let leader = broker_id(line, "Leader: ");
        assert_eq!(
            *line,
            format!(
                "\tTopic: events\tPartition: {partition}\tLeader: {leader}\tReplicas: {leader}\tIsr: {leader}\tSize: {}",
                broker_id(line, "Size: ")
            )
        );
    }
    let described = describe(&broker, "events", &[]);
    assert_eq!(described["topic"], "events");
    assert_eq!(described["partitions"].as_array().unwrap().len(), 2);
    // One broker: every partition led, every replica in sync, no marks;
    // each with its size on disk.
    for partition in described["partitions"].as_array().unwrap() {
        assert_eq!(partition["offline"], false, "{partition}");
        assert_eq!(partition["under_replicated"], false, "{partition}");
        assert!(
            partition["size_bytes"]
                .as_i64()
                .is_some_and(|size| size >= 0),
            "{partition}"
        );
    }
    assert_eq!(
        described["configs"],
        json!([{"name": "retention.ms", "value": "60000", "source": "DYNAMIC_TOPIC_CONFIG"}])
    );

    let altered = ok(
        &broker,
        &[
            "topic",
            "alter",
            "events",
            "--partitions",
            "3",
            "--config",
            "cleanup.policy=compact",
            "--delete-config",
            "retention.ms",
        ],
        "",
    );
    assert!(altered.stderr.contains("set cleanup.policy=compact"));
    assert!(altered.stderr.contains("deleted retention.ms"));
    assert!(altered.stderr.contains("now has 3 partitions"));
    let described = describe(&broker, "events", &[]);
    let partitions: Vec<&Value> = described["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["partition"])
        .collect();
    assert_eq!(partitions, [&json!(0), &json!(1), &json!(2)]);
    assert_eq!(
        described["configs"],
        json!([{"name": "cleanup.policy", "value": "compact", "source": "DYNAMIC_TOPIC_CONFIG"}])
    );
    // Unnamed configs keep their values: the change is incremental.
    ok(
        &broker,
        &["topic", "alter", "events", "--config", "retention.ms=1000"],
        "",
    );
    let described = describe(&broker, "events", &[]);
    let names: Vec<&Value> = described["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(names, [&json!("cleanup.policy"), &json!("retention.ms")]);

    let all = describe(&broker, "audit", &["--all-configs"]);
    let retention = all["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "retention.ms")
        .unwrap();
    assert_eq!(
        retention,
        &json!({"name": "retention.ms", "value": "604800000", "source": "DEFAULT_CONFIG"})
    );

    let shrink = fails(&broker, &["topic", "alter", "events", "--partitions", "1"]);
    assert!(shrink.stderr.contains("partitions"), "{}", shrink.stderr);
    let unknown = fails(
        &broker,
        &["topic", "alter", "events", "--config", "no.such.config=1"],
    );
    assert!(
        unknown.stderr.contains("no.such.config"),
        "{}",
        unknown.stderr
    );

    let deleted = ok(&broker, &["topic", "delete", "events"], "");
    assert!(deleted.stderr.contains("deleted topic events"));
    assert_eq!(
        lines(&ok(&broker, &["topic", "list"], "").stdout),
        ["audit"]
    );
    let missing = fails(&broker, &["topic", "describe", "events"]);
    assert!(missing.stdout.is_empty());
    assert!(
        missing.stderr.contains("topic \"events\" does not exist"),
        "{}",
        missing.stderr
    );
    let missing = fails(&broker, &["topic", "delete", "events"]);
    assert!(missing.stderr.contains("events"), "{}", missing.stderr);
}

/// The broker id after `label` in a describe line.
fn broker_id(line: &str, label: &str) -> i32 {
    line.split(label)
        .nth(1)
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn produced_keys_values_and_headers_come_back_as_json() {
    let broker = BrokerProcess::start(&[]);
    ok(
        &broker,
        &["topic", "create", "orders", "--partitions", "1"],
        "",
    );
    let before = now_ms();
    let produced = ok(
        &broker,
        &[
            "produce",
            "orders",
            "--key-separator",
            ":",
            "--header",
            "source=test",
            "--header",
            "source=again",
            "--header",
            "flag",
            "--compression",
            "zstd",
        ],
        "k1:v1\nk2:v:2\nno key\n:empty key\n\n",
    );
    let after = now_ms();
    assert!(produced.stdout.is_empty());
    assert!(
        produced.stderr.contains("produced 5 messages to orders"),
        "{}",
        produced.stderr
    );

    let consumed = ok(
        &broker,
        &["consume", "orders", "--from-beginning", "--format", "json"],
        "",
    );
    let messages = json_lines(&consumed.stdout);
    let headers = json!([["source", "test"], ["source", "again"], ["flag", null]]);
    let expected = [
        (json!("k1"), "v1"),
        (json!("k2"), "v:2"),
        (Value::Null, "no key"),
        (json!(""), "empty key"),
        (Value::Null, ""),
    ];
    assert_eq!(messages.len(), expected.len(), "{}", consumed.stdout);
    for (offset, (message, (key, value))) in messages.iter().zip(expected).enumerate() {
        let timestamp = message["timestamp"].as_i64().unwrap();
        assert!((before..=after).contains(&timestamp), "{message}");
        assert_eq!(
            message,
            &json!({
                "topic": "orders",
                "partition": 0,
                "offset": offset,
                "timestamp": timestamp,
                "key": key,
                "value": value,
                "headers": headers,
            })
        );
    }

    let kv = ok(
        &broker,
        &["consume", "orders", "--from-beginning", "--format", "kv"],
        "",
    );
    assert_eq!(
        lines(&kv.stdout),
        ["k1\tv1", "k2\tv:2", "\tno key", "\tempty key", "\t"]
    );
    let plain = ok(&broker, &["consume", "orders", "--from-beginning"], "");
    assert_eq!(
        lines(&plain.stdout),
        ["v1", "v:2", "no key", "empty key", ""]
    );
}

#[test]
fn consume_reads_every_partition_or_the_one_asked_for() {
    let broker = BrokerProcess::start(&[]);
    ok(
        &broker,
        &["topic", "create", "spread", "--partitions", "3"],
        "",
    );
    let input: String = (0..30).map(|i| format!("key-{i}\tvalue-{i}\n")).collect();
    ok(
        &broker,
        &["produce", "spread", "--key-separator", "\\t", "--acks", "1"],
        &input,
    );
    let consumed = ok(
        &broker,
        &["consume", "spread", "--from-beginning", "--format", "kv"],
        "",
    );
    let mut got = lines(&consumed.stdout);
    got.sort_unstable();
    let mut expected: Vec<String> = (0..30).map(|i| format!("key-{i}\tvalue-{i}")).collect();
    expected.sort_unstable();
    assert_eq!(got, expected);

    let by_partition = json_lines(
        &ok(
            &broker,
            &["consume", "spread", "--from-beginning", "--format", "json"],
            "",
        )
        .stdout,
    );
    for partition in 0..3 {
        let wanted: Vec<&Value> = by_partition
            .iter()
            .filter(|m| m["partition"] == partition)
            .map(|m| &m["value"])
            .collect();
        let consumed = ok(
            &broker,
            &[
                "consume",
                "spread",
                "--from-beginning",
                "--partition",
                &partition.to_string(),
                "--format",
                "json",
            ],
            "",
        );
        let got: Vec<Value> = json_lines(&consumed.stdout)
            .into_iter()
            .map(|m| {
                assert_eq!(m["partition"], partition);
                m["value"].clone()
            })
            .collect();
        assert_eq!(got.iter().collect::<Vec<_>>(), wanted);
    }
}

#[test]
fn consume_starts_at_an_offset_and_stops_after_max_messages() {
    let broker = BrokerProcess::start(&[]);
    ok(
        &broker,
        &["topic", "create", "log", "--partitions", "1"],
        "",
    );
    let input: String = (0..10).map(|i| format!("m{i}\n")).collect();
    ok(&broker, &["produce", "log", "--partition", "0"], &input);

    let from = |args: &[&str]| {
        let mut all = vec!["consume", "log"];
        all.extend_from_slice(args);
        ok(&broker, &all, "").stdout
    };
    assert_eq!(lines(&from(&["--offset", "7"])), ["m7", "m8", "m9"]);
    assert_eq!(lines(&from(&["--offset", "-2"])), ["m8", "m9"]);
    assert_eq!(
        lines(&from(&["--from-beginning", "--max-messages", "3"])),
        ["m0", "m1", "m2"]
    );
    assert_eq!(
        lines(&from(&[
            "--partition",
            "0",
            "--offset",
            "5",
            "--max-messages",
            "1"
        ])),
        ["m5"]
    );
    assert_eq!(lines(&from(&["--offset", "10"])), Vec::<&str>::new());

    // Without a start, consume begins at the end and says why it prints nothing.
    let at_end = ok(&broker, &["consume", "log"], "");
    assert!(at_end.stdout.is_empty());
    assert!(
        at_end.stderr.contains("--from-beginning"),
        "{}",
        at_end.stderr
    );
}

#[test]
fn consume_follow_prints_messages_produced_after_it_started() {
    let broker = BrokerProcess::start(&[]);
    ok(
        &broker,
        &["topic", "create", "live", "--partitions", "1"],
        "",
    );
    ok(&broker, &["produce", "live"], "first\n");
    let mut follower = Command::new(rill_binary())
        .args([
            "consume",
            "live",
            "--from-beginning",
            "--follow",
            "--max-messages",
            "2",
            "--bootstrap",
            &broker.bootstrap,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (sender, printed) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    assert_eq!(printed.recv_timeout(WAIT).unwrap(), "first");
    // The follower has read to the end; this message comes later.
    ok(&broker, &["produce", "live"], "second\n");
    assert_eq!(printed.recv_timeout(WAIT).unwrap(), "second");
    assert!(follower.wait().unwrap().success());
}

#[test]
fn consume_starts_at_a_timestamp() {
    let broker = BrokerProcess::start(&[]);
    ok(
        &broker,
        &["topic", "create", "timed", "--partitions", "2"],
        "",
    );
    ok(&broker, &["produce", "timed"], "old-1\nold-2\nold-3\n");
    let old = json_lines(
        &ok(
            &broker,
            &["consume", "timed", "--from-beginning", "--format", "json"],
            "",
        )
        .stdout,
    );
    let old_newest = old
        .iter()
        .map(|m| m["timestamp"].as_i64().unwrap())
        .max()
        .unwrap();
    // Later messages are stamped after the old ones once the clock has
    // passed the newest old timestamp (it usually has already).
    let boundary_ms = old_newest + 1;
    let wait_ms = boundary_ms - now_ms();
    if wait_ms > 0 {
        std::thread::sleep(Duration::from_millis(wait_ms.unsigned_abs()));
    }
    assert!(now_ms() >= boundary_ms);
    ok(&broker, &["produce", "timed"], "new-1\nnew-2\n");

    let values = |timestamp: &str| {
        let consumed = ok(
            &broker,
            &[
                "consume",
                "timed",
                "--timestamp",
                timestamp,
                "--format",
                "json",
            ],
            "",
        );
        let mut values: Vec<String> = json_lines(&consumed.stdout)
            .iter()
            .map(|m| m["value"].as_str().unwrap().to_string())
            .collect();
        values.sort_unstable();
        values
    };
    assert_eq!(values(&boundary_ms.to_string()), ["new-1", "new-2"]);
    assert_eq!(values(&rfc3339(boundary_ms, 0)), ["new-1", "new-2"]);
    assert_eq!(values(&rfc3339(boundary_ms, 90)), ["new-1", "new-2"]);
    assert_eq!(values(&rfc3339(boundary_ms, -330)), ["new-1", "new-2"]);
    // One millisecond earlier includes the newest old message.
    let with_newest_old = values(&rfc3339(old_newest, 60));
    assert!(with_newest_old.len() >= 3, "{with_newest_old:?}");
    assert!(with_newest_old.starts_with(&["new-1".to_string(), "new-2".to_string()]));
    assert_eq!(
        values("2000-01-01T00:00:00Z"),
        ["new-1", "new-2", "old-1", "old-2", "old-3"]
    );
    assert!(values("2999-01-01T00:00:00+01:00").is_empty());

    let bad = fails(&broker, &["consume", "timed", "--timestamp", "yesterday"]);
    assert!(bad.stderr.contains("RFC 3339"), "{}", bad.stderr);
}

/// `epoch_ms` as an RFC 3339 date-time with milliseconds in the zone
/// `offset_minutes` east of UTC (Howard Hinnant's civil_from_days).
fn rfc3339(epoch_ms: i64, offset_minutes: i64) -> String {
    let local = epoch_ms.div_euclid(1000) + offset_minutes * 60;
    let (days, second_of_day) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let zone = if offset_minutes == 0 {
        "Z".to_string()
    } else {
        let sign = if offset_minutes > 0 { '+' } else { '-' };
        let minutes = offset_minutes.abs();
        format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}{zone}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        epoch_ms.rem_euclid(1000)
    )
}

#[test]
fn failures_exit_non_zero_with_an_error_on_stderr() {
    let broker = BrokerProcess::start(&[]);
    ok(
        &broker,
        &["topic", "create", "one", "--partitions", "1"],
        "",
    );

    let missing = fails(&broker, &["consume", "missing", "--from-beginning"]);
    assert!(
        missing.stderr.contains("topic \"missing\" does not exist"),
        "{}",
        missing.stderr
    );
    // Reading a missing topic does not create it. (Whether its group's
    // coordinator lookup created __consumer_offsets before the command
    // gave up is a race; it does not matter here.)
    let listed = ok(&broker, &["topic", "list"], "").stdout;
    let listed = lines(&listed);
    assert!(
        listed.contains(&"one") && !listed.contains(&"missing"),
        "{listed:?}"
    );
    let no_partition = fails(&broker, &["consume", "one", "--partition", "4"]);
    assert!(
        no_partition.stderr.contains("no partition 4"),
        "{}",
        no_partition.stderr
    );

    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("127.0.0.1:{port}");
    // Every client command says at once that the broker cannot be reached
    // (librdkafka alone would retry silently for --timeout-ms).
    for args in [
        vec!["produce", "one"],
        vec!["consume", "one"],
        vec!["topic", "list"],
        vec!["group", "list"],
    ] {
        let run = run_with_bootstrap(&nowhere, &args, "lost\n");
        assert!(!run.success);
        assert!(
            run.stderr
                .contains(&format!("cannot reach {nowhere}: connection refused")),
            "{args:?}: {}",
            run.stderr
        );
    }
    let alter = run_with_bootstrap(
        &nowhere,
        &["topic", "alter", "one", "--config", "retention.ms=1"],
        "",
    );
    assert!(!alter.success);
    assert!(alter.stderr.contains("cannot reach"), "{}", alter.stderr);
}

#[test]
fn a_broker_refuses_an_unknown_property_naming_the_nearest_known_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, "log.retention.hour = 1\n").unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    for (args, named, nearest) in [
        (vec!["--set", "bogus.key=1"], "\"bogus.key\"", None::<&str>),
        (
            vec!["--config", config.to_str().unwrap()],
            "\"log.retention.hour\"",
            Some("\"log.retention.hours\""),
        ),
        (
            vec!["--set", "num.partition=3"],
            "\"num.partition\"",
            Some("\"num.partitions\""),
        ),
    ] {
        // The port is taken: a broker that wrongly started would fail to
        // bind rather than linger, with another message.
        let out = Command::new(rill_binary())
            .args(["broker", "--data", data, "--listen", &taken])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(
            stderr.contains(&format!("unknown broker property {named}")),
            "{args:?}: {stderr}"
        );
        if let Some(nearest) = nearest {
            assert!(
                stderr.contains(&format!("did you mean {nearest}?")),
                "{args:?}: {stderr}"
            );
        }
    }
    assert!(
        !dir.path().join("data").exists(),
        "the data directory was touched before the properties were checked"
    );
}

#[test]
fn the_broker_logs_one_json_object_a_line_for_log_shippers() {
    let broker = BrokerProcess::start(&["--log-format", "json"]);
    ok(
        &broker,
        &["topic", "create", "shipped", "--partitions", "2"],
        "",
    );
    let line = broker.wait_for_log(&["created topic"]);
    let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(event["level"], "INFO", "{line}");
    assert_eq!(event["message"], "created topic", "{line}");
    assert_eq!(event["topic"], "shipped", "{line}");
    assert_eq!(event["partitions"], 2, "{line}");
    assert!(event["timestamp"].is_string(), "{line}");
    assert!(
        event["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("rill_server")),
        "{line}"
    );
}
