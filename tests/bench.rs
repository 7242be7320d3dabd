//! `rill bench` runs as a process against a real broker: its reports have
//! the promised shape and counts, and what it says it produced is what the
//! topic holds. Never its speed: that lives in docs/benchmarks.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BrokerProcess, rill_binary};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;

/// Runs `rill bench ARGS --bootstrap BROKER --json`; the parsed report, or
/// the stderr of a failed run.
fn bench(broker: &BrokerProcess, args: &[&str]) -> Result<Value, String> {
    let output = Command::new(rill_binary())
        .arg("bench")
        .args(args)
        .args(["--bootstrap", &broker.bootstrap, "--json", "--no-progress"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!(
        "$ rill bench {} -> {}\n{stderr}",
        args.join(" "),
        output.status
    );
    if !output.status.success() {
        return Err(stderr);
    }
    Ok(serde_json::from_slice(&output.stdout).unwrap())
}

/// Checks a phase's counts and that its latency percentiles are in order.
fn check_phase(phase: &Value, messages: u64, bytes: u64, latency_samples: Option<u64>) {
    assert_eq!(phase["messages"], messages, "{phase}");
    assert_eq!(phase["bytes"], bytes, "{phase}");
    assert_eq!(phase["errors"], 0, "{phase}");
    assert!(phase["seconds"].as_f64().unwrap() > 0.0, "{phase}");
    assert!(phase["messages_per_sec"].as_f64().unwrap() > 0.0, "{phase}");
    let latency = &phase["latency_ms"];
    match latency_samples {
        None => assert!(latency.is_null(), "{phase}"),
        Some(samples) => {
            assert_eq!(latency["samples"], samples, "{phase}");
            let order: Vec<f64> = ["p50", "p90", "p99", "p99_9", "max"]
                .iter()
                .map(|key| latency[key].as_f64().unwrap())
                .collect();
            assert!(order.windows(2).all(|w| w[0] <= w[1]), "{phase}");
            assert!(order[0] > 0.0, "{phase}");
        }
    }
}

/// Every message of `topic` (all `partitions`), read from the beginning.
fn read_all(broker: &BrokerProcess, topic: &str, partitions: i32) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = broker.consumer(&[]);
    let mut assignment = TopicPartitionList::new();
    let mut expected = 0;
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .unwrap();
        expected += high - low;
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut values = Vec::new();
    while (values.len() as i64) < expected {
        assert!(
            Instant::now() < deadline,
            "read {} of {expected}",
            values.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            values.push(message.unwrap().payload().unwrap_or_default().to_vec());
        }
    }
    values
}

#[test]
fn produce_then_consume_report_what_the_topic_holds() {
    let broker = BrokerProcess::start(&[]);
    let produced = bench(
        &broker,
        &[
            "produce",
            "--topic",
            "t",
            "--partitions",
            "3",
            "--messages",
            "3000",
            "--size",
            "100",
            "--producers",
            "2",
            "--acks",
            "all",
            "--broker-pid",
            &broker.pid().to_string(),
        ],
    )
    .unwrap();
    assert_eq!(produced["command"], "produce");
    assert_eq!(produced["client"], "rdkafka");
    assert_eq!(produced["partitions"], 3);
    assert!(produced["consume"].is_null());
    check_phase(&produced["produce"], 3000, 300_000, Some(3000));
    assert_eq!(produced["broker"]["pid"], broker.pid());
    assert!(produced["broker"]["rss_anon_mib"].as_f64().unwrap() > 0.0);

    let values = read_all(&broker, "t", 3);
    assert_eq!(values.len(), 3000);
    assert!(values.iter().all(|value| value.len() == 100));

    let consumed = bench(&broker, &["consume", "--topic", "t", "--consumers", "2"]).unwrap();
    assert_eq!(consumed["command"], "consume");
    assert!(consumed["produce"].is_null());
    check_phase(&consumed["consume"], 3000, 300_000, None);

    let part = bench(&broker, &["consume", "--topic", "t", "--messages", "1000"]).unwrap();
    assert_eq!(part["consume"]["messages"], 1000);

    let missing = bench(&broker, &["consume", "--topic", "nothing-here"]).unwrap_err();
    assert!(missing.contains("does not exist"), "{missing}");
}

#[test]
fn e2e_reads_back_every_acknowledged_message_with_its_latency() {
    let broker = BrokerProcess::start(&[]);
    let report = bench(
        &broker,
        &[
            "e2e",
            "--topic",
            "e",
            "--partitions",
            "4",
            "--messages",
            "2000",
            "--rate",
            "20000",
            "--size",
            "64",
            "--consumers",
            "2",
            "--keys",
            "zipf",
            "--key-count",
            "50",
        ],
    )
    .unwrap();
    assert_eq!(report["command"], "e2e");
    // Keys are `key-0` .. `key-49`: 5 or 6 bytes on top of each value.
    let bytes = report["produce"]["bytes"].as_u64().unwrap();
    assert!((2000 * 69..=2000 * 70).contains(&bytes), "{report}");
    check_phase(&report["produce"], 2000, bytes, Some(2000));
    check_phase(&report["consume"], 2000, bytes, Some(2000));
    assert_eq!(report["settings"]["rate"], "20000");
    assert_eq!(read_all(&broker, "e", 4).len(), 2000);
}

#[test]
fn payloads_come_from_the_file_when_one_is_given() {
    let broker = BrokerProcess::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payloads.txt");
    std::fs::write(&file, "alpha\nbravo\ncharlie\n").unwrap();
    let report = bench(
        &broker,
        &[
            "produce",
            "--topic",
            "f",
            "--partitions",
            "1",
            "--messages",
            "300",
            "--payload-file",
            file.to_str().unwrap(),
            "--compression",
            "zstd",
        ],
    )
    .unwrap();
    assert_eq!(report["produce"]["messages"], 300);
    let values: BTreeSet<Vec<u8>> = read_all(&broker, "f", 1).into_iter().collect();
    let lines: BTreeSet<Vec<u8>> =
        [b"alpha".to_vec(), b"bravo".to_vec(), b"charlie".to_vec()].into();
    assert_eq!(values, lines);
}

#[test]
fn the_native_producer_writes_exactly_the_messages_it_reports() {
    let broker = BrokerProcess::start(&[]);
    for (topic, acks) in [("n1", "1"), ("nall", "all")] {
        let report = bench(
            &broker,
            &[
                "produce",
                "--client",
                "native",
                "--topic",
                topic,
                "--partitions",
                "3",
                "--messages",
                "5000",
                "--size",
                "200",
                "--batch-size",
                "65536",
                "--producers",
                "2",
                "--acks",
                acks,
            ],
        )
        .unwrap();
        assert_eq!(report["client"], "native");
        check_phase(&report["produce"], 5000, 1_000_000, Some(5000));
        let values = read_all(&broker, topic, 3);
        assert_eq!(values.len(), 5000);
        assert!(values.iter().all(|value| value.len() == 200));
    }
    let refused = bench(
        &broker,
        &["produce", "--client", "native", "--keys", "uniform"],
    );
    assert!(refused.unwrap_err().contains("--client native"));
}

#[test]
fn transactional_produce_reports_its_commits_and_both_isolations_read_every_message() {
    let broker = BrokerProcess::start(&[]);
    // Two producers of 1,250 messages each: 12 transactions of 100 and a
    // last one of 50 apiece.
    let report = bench(
        &broker,
        &[
            "produce",
            "--topic",
            "tx",
            "--partitions",
            "3",
            "--messages",
            "2500",
            "--size",
            "100",
            "--producers",
            "2",
            "--transaction-size",
            "100",
        ],
    )
    .unwrap();
    check_phase(&report["produce"], 2500, 250_000, Some(2500));
    assert_eq!(report["settings"]["transaction_size"], "100");
    let transactions = &report["produce"]["transactions"];
    assert_eq!(transactions["committed"], 26, "{report}");
    let commit = &transactions["commit_latency_ms"];
    assert_eq!(commit["samples"], 26, "{report}");
    let (p50, p99, max) = (
        commit["p50"].as_f64().unwrap(),
        commit["p99"].as_f64().unwrap(),
        commit["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{report}");

    // The markers take offsets but are no messages: a catch-up read ends
    // at each partition's end with every message, whatever the isolation.
    for isolation in ["read_committed", "read_uncommitted"] {
        let consumed = bench(
            &broker,
            &["consume", "--topic", "tx", "--isolation", isolation],
        )
        .unwrap();
        assert_eq!(consumed["settings"]["isolation"], isolation);
        check_phase(&consumed["consume"], 2500, 250_000, None);
    }

    let refused = bench(
        &broker,
        &["produce", "--client", "native", "--transaction-size", "10"],
    );
    assert!(refused.unwrap_err().contains("--transaction-size"));
}

#[test]
fn ceiling_reports_disk_and_loopback_limits() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(rill_binary())
        .args([
            "bench",
            "ceiling",
            "--json",
            "--write-mib",
            "8",
            "--fsyncs",
            "5",
        ])
        .args([
            "--loopback-mib",
            "16",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    for key in [
        "disk_write_mb_per_sec",
        "page_cache_write_mb_per_sec",
        "loopback_mb_per_sec",
        "fdatasyncs_per_sec",
    ] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}: {report}");
    }
    assert_eq!(report["fdatasync_ms"]["samples"], 5);
    // Nothing is left behind in the measured directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
