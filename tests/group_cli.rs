//! `rill group` run as processes against a real broker: listing and
//! describing a group, resetting its offsets (and being refused while the
//! group has members), deleting it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{BrokerProcess, rill_binary};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const FAST_GROUPS: [&str; 2] = ["--set", "group.initial.rebalance.delay.ms=0"];

/// Messages produced to each partition of the test topic.
const PER_PARTITION: i64 = 5;
/// Milliseconds between the timestamps of consecutive messages.
const STEP_MS: i64 = 1_000;

/// What one command printed and how it exited.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

fn rill(broker: &BrokerProcess, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(rill_binary())
        .args(args)
        .args(["--bootstrap", &broker.bootstrap])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run {
        success: status.success(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    };
    eprintln!(
        "$ rill {} -> {status}\n{}{}",
        args.join(" "),
        run.stdout,
        run.stderr.trim_end()
    );
    run
}

fn ok(broker: &BrokerProcess, args: &[&str]) -> Run {
    let run = rill(broker, args);
    assert!(run.success, "rill {args:?} failed: {}", run.stderr);
    run
}

fn fails(broker: &BrokerProcess, args: &[&str]) -> Run {
    let run = rill(broker, args);
    assert!(!run.success, "rill {args:?} succeeded: {}", run.stdout);
    assert!(run.stderr.contains("error: "), "no error: {}", run.stderr);
    run
}

/// `rill group list`: (group, state) per line.
fn listed(broker: &BrokerProcess) -> BTreeMap<String, String> {
    ok(broker, &["group", "list"])
        .stdout
        .lines()
        .map(|line| {
            let (group, state) = line.split_once('\t').unwrap_or((line, ""));
            (group.to_string(), state.to_string())
        })
        .collect()
}

fn describe(broker: &BrokerProcess, group: &str) -> Value {
    let run = ok(broker, &["group", "describe", group, "--json"]);
    serde_json::from_str(run.stdout.trim()).unwrap()
}

/// (committed offset, log end offset, lag) by partition of `topic`, as
/// `describe --json` shows them.
fn offsets(broker: &BrokerProcess, group: &str, topic: &str) -> BTreeMap<i64, (i64, i64, i64)> {
    describe(broker, group)["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["topic"] == topic)
        .map(|o| {
            (
                o["partition"].as_i64().unwrap(),
                (
                    o["committed_offset"].as_i64().unwrap(),
                    o["log_end_offset"].as_i64().unwrap(),
                    o["lag"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

/// The committed offsets of partitions 0 and 1.
fn committed(broker: &BrokerProcess, group: &str, topic: &str) -> [i64; 2] {
    let offsets = offsets(broker, group, topic);
    [offsets[&0].0, offsets[&1].0]
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

/// Creates `topic` with two partitions and writes PER_PARTITION messages to
/// each, message i stamped `base_ms + i * STEP_MS`.
fn topic_with_messages(broker: &BrokerProcess, topic: &str, base_ms: i64) {
    ok(broker, &["topic", "create", topic, "--partitions", "2"]);
    let mut config = broker.client_config();
    config.set("linger.ms", "0");
    let producer: ThreadedProducer<DefaultProducerContext> = config.create().unwrap();
    for partition in 0..2 {
        for i in 0..PER_PARTITION {
            let value = format!("{partition}-{i}");
            producer
                .send(
                    BaseRecord::<(), _>::to(topic)
                        .partition(partition)
                        .timestamp(base_ms + i * STEP_MS)
                        .payload(&value),
                )
                .map_err(|(error, _)| error)
                .unwrap();
        }
    }
    producer.flush(WAIT).unwrap();
}

fn consumer(broker: &BrokerProcess, group: &str) -> BaseConsumer {
    broker.consumer(&[
        ("group.id", group),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "100"),
        ("max.poll.interval.ms", "8000"),
    ])
}

/// Commits `offsets` (partition 0, partition 1) of `topic` for `group`
/// without joining it, as an application committing by hand does.
fn commit(broker: &BrokerProcess, group: &str, topic: &str, offsets: [i64; 2]) {
    let committer = consumer(broker, group);
    let mut tpl = TopicPartitionList::new();
    for (partition, offset) in (0..).zip(offsets) {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .unwrap();
    }
    committer.assign(&tpl).unwrap();
    committer.commit(&tpl, CommitMode::Sync).unwrap();
    // Released while `committer` lives: releasing a list the commit
    // touched while its Drop hangs can deadlock.
    drop(tpl);
    // Closed on a thread of its own: rust-rdkafka's Drop can hang after a
    // manual commit (fede1024/rust-rdkafka#597).
    std::thread::spawn(move || drop(committer));
}

#[test]
fn list_describe_reset_and_delete_a_group() {
    let broker = BrokerProcess::start(&FAST_GROUPS);
    let base_ms = now_ms() - 60_000;
    topic_with_messages(&broker, "events", base_ms);
    commit(&broker, "billing", "events", [3, 5]);

    let groups = listed(&broker);
    assert!(groups.contains_key("billing"), "{groups:?}");
    assert_eq!(groups["billing"], "Empty");

    let described = describe(&broker, "billing");
    assert_eq!(described["group"], "billing");
    assert_eq!(described["state"], "Empty");
    assert_eq!(described["members"].as_array().unwrap().len(), 0);
    assert_eq!(
        offsets(&broker, "billing", "events"),
        BTreeMap::from([(0, (3, 5, 2)), (1, (5, 5, 0))])
    );
    let text = ok(&broker, &["group", "describe", "billing"]).stdout;
    assert!(text.contains("CURRENT-OFFSET"), "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("events "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["events", "0", "3", "5", "2", "-", "-", "-"],
            ["events", "1", "5", "5", "0", "-", "-", "-"],
        ]
    );

    let reset = |target: &[&str]| {
        let mut args = vec!["group", "reset-offsets", "billing", "--topic", "events"];
        args.extend_from_slice(target);
        ok(&broker, &args)
    };

    // A dry run prints the plan and commits nothing.
    let plan = reset(&["--to-earliest", "--dry-run"]).stdout;
    let planned: Vec<Vec<&str>> = plan
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        planned,
        [
            ["billing", "events", "0", "3", "0"],
            ["billing", "events", "1", "5", "0"],
        ]
    );
    assert_eq!(committed(&broker, "billing", "events"), [3, 5]);

    reset(&["--to-earliest"]);
    assert_eq!(committed(&broker, "billing", "events"), [0, 0]);

    reset(&["--to-offset", "4", "--partition", "1"]);
    assert_eq!(committed(&broker, "billing", "events"), [0, 4]);
    // Beyond the high watermark: clamped to it.
    reset(&["--to-offset", "99", "--partition", "0"]);
    assert_eq!(committed(&broker, "billing", "events"), [5, 4]);

    reset(&["--shift-by", "-2"]);
    assert_eq!(committed(&broker, "billing", "events"), [3, 2]);
    reset(&["--shift-by", "2"]);
    assert_eq!(committed(&broker, "billing", "events"), [5, 4]);
    reset(&["--shift-by", "-100"]);
    assert_eq!(committed(&broker, "billing", "events"), [0, 0]);

    // The first message at or after the time: message 3 of each partition.
    let middle = (base_ms + 2 * STEP_MS + STEP_MS / 2).to_string();
    reset(&["--to-datetime", &middle]);
    assert_eq!(committed(&broker, "billing", "events"), [3, 3]);
    reset(&["--to-datetime", "2999-01-01T00:00:00+01:00"]);
    assert_eq!(committed(&broker, "billing", "events"), [5, 5]);
    reset(&["--to-datetime", "2000-01-01T00:00:00Z"]);
    assert_eq!(committed(&broker, "billing", "events"), [0, 0]);

    reset(&["--to-latest", "--partition", "0"]);
    assert_eq!(
        offsets(&broker, "billing", "events"),
        BTreeMap::from([(0, (5, 5, 0)), (1, (0, 5, 5))])
    );
    // A consumer of the group sees what the CLI committed.
    let reader = consumer(&broker, "billing");
    let mut query = TopicPartitionList::new();
    query.add_partition("events", 0);
    query.add_partition("events", 1);
    let seen = reader.committed_offsets(query, WAIT).unwrap();
    let seen: Vec<Offset> = seen.elements().iter().map(|e| e.offset()).collect();
    assert_eq!(seen, [Offset::Offset(5), Offset::Offset(0)]);
    drop(reader);

    let bad = fails(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "events",
            "--to-datetime",
            "yesterday",
        ],
    );
    assert!(bad.stderr.contains("RFC 3339"), "{}", bad.stderr);
    let missing = fails(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "nope",
            "--to-earliest",
        ],
    );
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.stderr
    );

    ok(&broker, &["group", "delete", "billing"]);
    assert!(!listed(&broker).contains_key("billing"));
    let gone = fails(&broker, &["group", "describe", "billing"]);
    assert!(gone.stderr.contains("does not exist"), "{}", gone.stderr);
    fails(&broker, &["group", "delete", "billing"]);
}

#[test]
fn reset_and_delete_are_refused_while_the_group_has_members() {
    let broker = BrokerProcess::start(&FAST_GROUPS);
    topic_with_messages(&broker, "live", now_ms());
    commit(&broker, "active", "live", [1, 2]);

    let member = consumer(&broker, "active");
    member.subscribe(&["live"]).unwrap();
    // poll() returns None after serving a rebalance too: wait on a deadline.
    let deadline = Instant::now() + WAIT;
    while member.assignment().unwrap().count() < 2 {
        assert!(Instant::now() < deadline, "the member got no assignment");
        member.poll(Duration::from_millis(50));
    }

    let described = describe(&broker, "active");
    assert_eq!(described["state"], "Stable");
    let members = described["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{described}");
    assert_eq!(
        members[0]["assignment"],
        serde_json::json!([{"topic": "live", "partitions": [0, 1]}])
    );
    let member_id = members[0]["member_id"].as_str().unwrap();
    for offset in described["offsets"].as_array().unwrap() {
        assert_eq!(offset["member_id"], member_id, "{offset}");
    }
    assert_eq!(listed(&broker)["active"], "Stable");

    let refused = fails(
        &broker,
        &[
            "group",
            "reset-offsets",
            "active",
            "--topic",
            "live",
            "--to-earliest",
        ],
    );
    assert!(refused.stderr.contains("inactive"), "{}", refused.stderr);
    let refused = fails(&broker, &["group", "delete", "active"]);
    assert!(
        refused.stderr.contains("NON_EMPTY_GROUP"),
        "{}",
        refused.stderr
    );
    assert_eq!(committed(&broker, "active", "live"), [1, 2]);
    assert!(listed(&broker).contains_key("active"));
    // Closed on a thread of its own (fede1024/rust-rdkafka#597).
    std::thread::spawn(move || drop(member));
}
