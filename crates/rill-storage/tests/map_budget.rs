//! Segment maps on demand: with a budget of 16 maps, far fewer than the
//! logs' segments need, every log still appends, reads, finds timestamps,
//! truncates, compacts, closes and opens again with all its records, and
//! the maps alive never exceed the budget.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::sync::Arc;

use common::{batch, read_all, small_config, values};
use rill_storage::testing::FaultyDisk;
use rill_storage::{
    CleanerConfig, CleanupPolicy, FlushPolicy, Flusher, Log, LogConfig, Offset, RecoveryHints,
};

const BUDGET: usize = 16;
const LOGS: usize = 24;
const ROUNDS: usize = 12;

/// `count` empty logs in `root`, named `{prefix}-{i}`.
fn create_all(
    root: &std::path::Path,
    prefix: &str,
    count: usize,
    flusher: &Flusher,
    config: LogConfig,
) -> Vec<Log> {
    (0..count)
        .map(|i| {
            let dir = root.join(format!("{prefix}-{i}"));
            let disk = Arc::new(FaultyDisk::default());
            Log::create(&dir, config, Offset(0), flusher, disk, 0).unwrap()
        })
        .collect()
}

fn open_all(
    root: &std::path::Path,
    flusher: &Flusher,
    config: LogConfig,
    ends: &[Offset],
) -> Vec<Log> {
    (0..LOGS)
        .map(|i| {
            let dir = root.join(format!("t-{i}"));
            let disk = Arc::new(FaultyDisk::default());
            let hints = RecoveryHints {
                clean_shutdown: true,
                recovery_point: ends[i],
                log_start_offset: Offset(0),
            };
            Log::open(&dir, config, hints, flusher, disk, 0).unwrap().0
        })
        .collect()
}

/// Five records of log `i` in `round`, long enough that a dozen rounds
/// fill several segments and their indexes.
fn values_of(i: usize, round: usize) -> Vec<String> {
    (0..5)
        .map(|n| format!("log{i}-round{round}-{n}-{}", "x".repeat(120)))
        .collect()
}

fn expected(i: usize, rounds: usize) -> Vec<String> {
    (0..rounds).flat_map(|round| values_of(i, round)).collect()
}

/// One test, so that its two parts never run at once: the budget is the
/// process's, and a compaction pass holds the maps of the segments it
/// reads until it is done.
#[test]
fn logs_work_within_a_small_map_budget() {
    rill_storage::set_maps_max(BUDGET);
    many_logs_append_read_truncate_and_reopen();
    compaction_reads_and_swaps();
}

fn many_logs_append_read_truncate_and_reopen() {
    assert_eq!(rill_storage::maps_max(), BUDGET);
    let root = tempfile::tempdir().unwrap();
    let flusher = Flusher::start(2).unwrap();
    // Through the map (under `none`) and with pwrite (under `fsync`).
    for (name, flush) in [("none", FlushPolicy::None), ("fsync", FlushPolicy::Fsync)] {
        let root = root.path().join(name);
        let config = small_config(flush);
        let logs = create_all(&root, "t", LOGS, &flusher, config);
        for round in 0..ROUNDS {
            for (i, log) in logs.iter().enumerate() {
                let timestamp = 1_000 * round as i64;
                let values = values_of(i, round);
                let refs: Vec<&[u8]> = values.iter().map(String::as_bytes).collect();
                log.append(&batch(&refs, timestamp), 0, 0)
                    .unwrap()
                    .wait()
                    .unwrap();
                assert!(
                    rill_storage::maps() <= BUDGET,
                    "{} maps",
                    rill_storage::maps()
                );
            }
        }
        for (i, log) in logs.iter().enumerate() {
            assert!(log.segment_count() > 2, "the test crosses segments");
            assert_eq!(
                values(&read_all(log)),
                expected(i, ROUNDS),
                "log {i} under {name}"
            );
            let (offset, _) = log
                .offset_for_timestamp(5_000, log.log_end_offset())
                .unwrap()
                .unwrap();
            assert_eq!(offset, Offset(25), "log {i}: the first record of round 5");
            assert!(rill_storage::maps() <= BUDGET);
        }
        // A follower's truncation, in a sealed segment and in the active one.
        logs[0].truncate_to(Offset(10)).unwrap();
        logs[1].truncate_to(Offset(55)).unwrap();
        assert_eq!(values(&read_all(&logs[0])), expected(0, ROUNDS)[..10]);
        assert_eq!(values(&read_all(&logs[1])), expected(1, ROUNDS)[..55]);
        let ends: Vec<Offset> = logs.iter().map(|log| log.close().unwrap()).collect();
        drop(logs);
        let logs = open_all(&root, &flusher, config, &ends);
        for (i, log) in logs.iter().enumerate().skip(2) {
            assert_eq!(
                values(&read_all(log)),
                expected(i, ROUNDS),
                "log {i} reopened"
            );
            assert!(rill_storage::maps() <= BUDGET);
        }
    }
}

fn compaction_reads_and_swaps() {
    let root = tempfile::tempdir().unwrap();
    let flusher = Flusher::start(1).unwrap();
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        segment_bytes: 1024,
        ..small_config(FlushPolicy::None)
    };
    let logs = create_all(root.path(), "c", 4, &flusher, config);
    for round in 0..40 {
        for log in &logs {
            let value = format!("v{round}");
            let records = [rill_record::NewRecord {
                timestamp: 0,
                key: Some(b"k"),
                value: Some(value.as_bytes()),
                headers: &[],
            }];
            let keyed = rill_record::BatchBuilder::new(0)
                .with_records(&records)
                .finish()
                .unwrap();
            log.append(&keyed, 0, 0).unwrap().wait().unwrap();
        }
    }
    for log in &logs {
        let sealed_before = log.segment_count();
        let outcome = log
            .compact(0, log.log_end_offset(), &CleanerConfig::default())
            .unwrap();
        assert!(
            outcome.records_superseded > 0,
            "{outcome:?}, {sealed_before} segments"
        );
        let kept = compacted_values(log);
        assert!(
            !kept.contains(&b"v0".to_vec()),
            "superseded values went: {kept:?}"
        );
        assert_eq!(
            kept.last(),
            Some(&b"v39".to_vec()),
            "the latest value is kept"
        );
        assert!(rill_storage::maps() <= BUDGET);
    }
}

/// Every value in a compacted log, whose batches may have lost all their
/// records.
fn compacted_values(log: &Log) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let read = log.read(next, 1 << 20, log.log_end_offset(), true).unwrap();
        for batch in rill_record::Batches::new(&read.bytes) {
            out.extend(
                common::records_in(batch.as_bytes())
                    .into_iter()
                    .map(|(_, value, _)| value),
            );
            next = Offset(batch.last_offset() + 1);
        }
    }
    out
}
