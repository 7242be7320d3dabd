//! Segment files removed or cut shorter under an open log: the log notices
//! before it touches the bytes (no SIGBUS), goes offline for reads and
//! writes, and a reopen recovers what is left.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // tests: a failure is a failed test

mod common;

use common::*;
use rill_storage::{
    AppendError, FlushPolicy, LogConfig, LogFailed, ModifyError, OfflineCause, Offset, ReadError,
    SegmentFileChanged,
};

/// Page-cache appends, so that small batches are stored through the map:
/// the path that would raise SIGBUS on a cut file.
fn none() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::None,
        ..LogConfig::default()
    }
}

fn cut_to(path: &std::path::Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn changed(failed: &LogFailed) -> &SegmentFileChanged {
    match &failed.cause {
        OfflineCause::FileChanged(changed) => changed,
        other => panic!("expected a changed file, found {other:?}"),
    }
}

#[test]
fn a_log_file_cut_under_the_log_takes_it_offline_and_a_reopen_keeps_the_valid_prefix() {
    let fx = Fixture::new();
    let log = fx.create(none());
    for i in 0..20 {
        append(&log, &numbered_batch(&format!("b{i}"), 5, i));
    }
    let before = values(&read_all(&log));
    let path = fx.last_segment_file();
    cut_to(&path, log.size_bytes() / 2);

    // A read in the part cut off would touch pages past the file's end.
    let error = log
        .read(Offset(90), 1 << 20, Offset(100), true)
        .unwrap_err();
    let ReadError::Offline(failed) = &error else {
        panic!("expected the log offline, found {error}");
    };
    match changed(failed) {
        SegmentFileChanged::Truncated {
            path: reported,
            expected_len,
            found_len,
        } => {
            assert_eq!(reported, &path);
            assert_eq!(*found_len, log.size_bytes() / 2);
            assert!(
                expected_len >= &log.size_bytes(),
                "the reservation at least"
            );
        }
        other => panic!("expected a truncation, found {other}"),
    }
    assert!(
        error.to_string().contains("truncated"),
        "the message says what happened: {error}"
    );
    // Every later operation says the same, even on the bytes still there.
    assert!(matches!(
        log.read(Offset(0), 1 << 20, Offset(100), true),
        Err(ReadError::Offline(_))
    ));
    assert!(matches!(
        log.append(&numbered_batch("refused", 1, 0), 0, 0),
        Err(AppendError::Offline(_))
    ));
    assert!(matches!(
        log.offset_for_timestamp(0, Offset(100)),
        Err(ReadError::Offline(_))
    ));
    assert!(matches!(
        log.max_timestamp_record(Offset(100)),
        Err(ReadError::Offline(_))
    ));
    assert!(matches!(
        log.apply_retention(i64::MAX, Offset(100)),
        Err(ModifyError::Offline(_))
    ));
    assert!(matches!(
        log.truncate_to(Offset(10)),
        Err(ModifyError::Offline(_))
    ));
    assert!(log.failure().is_some_and(|f| !f.allows_reads()));
    assert!(
        matches!(log.close(), Err(ModifyError::Offline(_))),
        "no clean close over a cut file"
    );

    let recovery_point = log.flushed_end_offset();
    let (log, report) = fx.reopen_crashed(log, recovery_point);
    assert!(
        report.dropped_bytes > 0,
        "the torn batch is cut: {report:?}"
    );
    assert!(log.failure().is_none(), "online again");
    let after = values(&read_all(&log));
    assert!(!after.is_empty() && after.len() < before.len());
    assert_eq!(after[..], before[..after.len()], "a prefix, undamaged");
    let info = append(&log, &numbered_batch("again", 1, 0));
    assert_eq!(info.base_offset, Offset(after.len() as i64), "no gap");
}

#[test]
fn a_removed_log_file_takes_the_log_offline_and_a_reopen_starts_over_what_is_left() {
    let fx = Fixture::new();
    let log = fx.create(none());
    append(&log, &numbered_batch("gone", 3, 0));
    let path = fx.last_segment_file();
    std::fs::remove_file(&path).unwrap();

    // The open file is still readable, but whatever went into it now
    // would be lost at the next restart: offline.
    let error = log.append(&numbered_batch("lost", 1, 0), 0, 0).unwrap_err();
    let AppendError::Offline(failed) = &error else {
        panic!("expected the log offline, found {error}");
    };
    assert_eq!(
        changed(failed),
        &SegmentFileChanged::Removed { path: path.clone() }
    );
    assert!(matches!(
        log.read(Offset(0), 1 << 20, Offset(3), true),
        Err(ReadError::Offline(_))
    ));

    let (log, report) = fx.reopen_crashed(log, Offset(3));
    assert_eq!(
        report.missing_below_recovery_point,
        Some((Offset(0), Offset(3))),
        "the loss is reported"
    );
    assert!(log.failure().is_none());
    assert_eq!(
        append(&log, &numbered_batch("new", 1, 0)).base_offset,
        Offset(0)
    );
}

#[test]
fn a_cut_index_takes_the_log_offline_and_a_reopen_rebuilds_it() {
    let fx = Fixture::new();
    let config = LogConfig {
        index_interval_bytes: 64,
        ..none()
    };
    let log = fx.create(config);
    for i in 0..20 {
        append(&log, &numbered_batch(&format!("b{i}"), 5, i));
    }
    let before = read_all(&log);
    let index = segment_files(&fx.dir(), "index").pop().unwrap();
    cut_to(&index, 0);

    let error = log
        .read(Offset(50), 1 << 20, Offset(100), true)
        .unwrap_err();
    let ReadError::Offline(failed) = &error else {
        panic!("expected the log offline, found {error}");
    };
    assert!(
        matches!(changed(failed), SegmentFileChanged::Truncated { path, found_len: 0, .. } if path == &index)
    );

    let (log, report) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(report.dropped_bytes, 0, "the log data was never touched");
    assert_eq!(read_all(&log), before);
    let middle = log.read(Offset(50), 1, Offset(100), true).unwrap();
    assert!(
        records_in(&middle.bytes)
            .iter()
            .any(|(offset, _, _)| *offset == Offset(50)),
        "the rebuilt index finds a batch in the middle"
    );
}

#[test]
fn the_retention_pass_notices_a_sealed_segment_removed_under_an_idle_log() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    for i in 0..200 {
        append(&log, &numbered_batch(&format!("b{i}"), 5, i));
    }
    assert!(log.segment_count() > 2);
    let oldest = segment_files(&fx.dir(), "log").remove(0);
    std::fs::remove_file(&oldest).unwrap();
    assert!(log.failure().is_none(), "nothing has looked yet");

    let error = log.apply_retention(0, log.log_end_offset()).unwrap_err();
    assert!(matches!(error, ModifyError::Offline(_)), "{error}");
    let failed = log.failure().unwrap();
    assert_eq!(
        changed(&failed),
        &SegmentFileChanged::Removed { path: oldest }
    );
    assert!(
        matches!(log.check_files(), Err(f) if f == failed),
        "the same failure stays"
    );
    // Reads of segments that are still whole are refused too: the
    // partition is offline as a whole, as Kafka takes a log dir offline.
    let end = log.log_end_offset();
    assert!(matches!(
        log.read(end.plus(-1), 1 << 20, end, true),
        Err(ReadError::Offline(_))
    ));
}

#[test]
fn a_changed_file_after_a_failed_sync_refuses_reads_too() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig::default()); // fsync
    append(&log, &numbered_batch("safe", 2, 0));
    fx.disk.set_failing_syncs(true);
    assert!(
        log.append(&numbered_batch("doomed", 1, 0), 0, 0)
            .unwrap()
            .wait()
            .is_err()
    );
    let failed = log.failure().unwrap();
    assert!(failed.allows_reads(), "after a failed sync, reads go on");
    let acknowledged = log.acknowledged_end_offset();
    assert_eq!(
        values(&read_all_from(&log, Offset(0), acknowledged, 1 << 20)),
        ["safe-0", "safe-1"],
        "consumers still read what was acknowledged, and only that"
    );

    fx.disk.set_failing_syncs(false);
    std::fs::remove_file(fx.last_segment_file()).unwrap();
    assert!(matches!(log.check_files(), Err(f) if !f.allows_reads()));
    assert!(matches!(
        log.read(Offset(0), 1 << 20, Offset(2), true),
        Err(ReadError::Offline(f)) if matches!(f.cause, OfflineCause::FileChanged(_))
    ));
}
