//! A process appending under the `fsync` policy is SIGKILLed at varying
//! points; after reopening, every batch it saw acknowledged is present,
//! at the offsets it was given, exactly once.
//!
//! The appender is this test binary run again as a child (the ignored test
//! `appender_child`), so the kill hits a real process mid-append.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::*;
use rill_storage::{Flusher, Log, LogConfig, Offset, RealDisk, RecoveryHints};

const DIR_VAR: &str = "RILL_CRASH_TEST_DIR";
const APPENDERS: usize = 3;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, flusher: &Flusher) -> Log {
    if dir.exists() {
        Log::open(
            dir,
            config(),
            RecoveryHints::unknown(),
            flusher,
            Arc::new(RealDisk),
            0,
        )
        .unwrap()
        .0
    } else {
        Log::create(dir, config(), Offset(0), flusher, Arc::new(RealDisk), 0).unwrap()
    }
}

/// Run as a child: appends until killed, printing each acknowledgement
/// as `ack <base> <last> <value of the first record>`.
#[test]
#[ignore = "run by acknowledged_appends_survive_sigkill as a child process"]
fn appender_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let flusher = Flusher::start(1).unwrap();
    let log = Arc::new(open(Path::new(&dir), &flusher));
    let cycle = std::process::id();
    let threads: Vec<_> = (0..APPENDERS)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0.. {
                    let prefix = format!("{cycle}-{t}-{i}");
                    let bytes = numbered_batch(&prefix, 1 + i % 7, i as i64);
                    let info = append(&log, &bytes);
                    let mut out = std::io::stdout().lock();
                    writeln!(
                        out,
                        "ack {} {} {prefix}-0",
                        info.base_offset, info.last_offset
                    )
                    .unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("crash-0");
    let mut acked: BTreeMap<i64, (i64, String)> = BTreeMap::new();
    // Kill after different numbers of acknowledgements, so the process
    // dies at different points of appending, rolling and syncing.
    for kill_after in [50usize, 333, 1_000, 7] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "appender_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut seen = 0;
        for line in stdout.lines() {
            let line = line.unwrap();
            let Some(rest) = line.strip_prefix("ack ") else {
                continue;
            };
            let parts: Vec<&str> = rest.split(' ').collect();
            let base: i64 = parts[0].parse().unwrap();
            let last: i64 = parts[1].parse().unwrap();
            assert!(
                acked.insert(base, (last, parts[2].to_string())).is_none(),
                "offset {base} acknowledged twice"
            );
            seen += 1;
            if seen == kill_after {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
        child.wait().unwrap();

        let flusher = Flusher::start(1).unwrap();
        let log = open(&dir, &flusher);
        let records = read_all(&log);
        let by_offset: BTreeMap<i64, &Vec<u8>> =
            records.iter().map(|(o, v, _)| (o.value(), v)).collect();
        assert_eq!(by_offset.len(), records.len(), "no offset appears twice");
        for (base, (last, first_value)) in &acked {
            let value = by_offset.get(base).unwrap_or_else(|| {
                panic!(
                    "acknowledged batch at {base} is gone (log end {})",
                    log.log_end_offset()
                )
            });
            assert_eq!(String::from_utf8_lossy(value), *first_value);
            assert!(
                by_offset.contains_key(last),
                "batch {base}..={last} is cut short"
            );
        }
        let offsets: Vec<i64> = records.iter().map(|(o, _, _)| o.value()).collect();
        assert_eq!(
            offsets,
            (0..log.log_end_offset().value()).collect::<Vec<_>>(),
            "offsets are dense and in order"
        );
        drop(log);
    }
    assert!(acked.len() > 1_000);
}
