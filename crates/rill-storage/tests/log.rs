//! What a user of the log sees: offsets, reads, rolls, truncation,
//! retention, timestamp lookups, flush policies and disk faults.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

mod common;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::*;
use rill_record::{BatchError, BatchView, Compression, TimestampType};
use rill_storage::{
    AppendError, AppendInfo, FUSE_MAGIC, FlushPolicy, KernelVersion, LogConfig, ModifyError,
    OfflineCause, Offset, ReadError, RecoveryHints,
};

#[test]
fn appends_get_consecutive_offsets_across_segments_and_read_back_in_order() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    let mut expected = Vec::new();
    let mut next = 0i64;
    for i in 0..200 {
        let count = 1 + i % 5;
        let info = log
            .append(
                &numbered_batch(&format!("b{i}"), count, 1_000 + i as i64),
                0,
                0,
            )
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(info.base_offset, Offset(next));
        assert_eq!(info.last_offset, Offset(next + count as i64 - 1));
        for j in 0..count {
            expected.push(format!("b{i}-{j}"));
        }
        next += count as i64;
    }
    assert_eq!(log.log_end_offset(), Offset(next));
    assert!(
        log.segment_count() > 3,
        "4 KiB segments roll: {}",
        log.segment_count()
    );
    let records = read_all(&log);
    assert_eq!(values(&records), expected);
    let offsets: Vec<i64> = records.iter().map(|(o, _, _)| o.value()).collect();
    assert_eq!(offsets, (0..next).collect::<Vec<_>>());
    // Each segment file is named after the first offset it holds.
    for (base, file) in log
        .segment_base_offsets()
        .iter()
        .zip(segment_files(&fx.dir(), "log"))
    {
        assert_eq!(
            file.file_name().unwrap().to_str().unwrap(),
            format!("{:020}.log", base.value())
        );
        let read = log.read(*base, 1, log.log_end_offset(), true).unwrap();
        assert_eq!(
            BatchView::new(&read.bytes).unwrap().base_offset(),
            base.value()
        );
    }
}

#[test]
fn a_read_starts_at_the_batch_holding_the_offset() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    append(&log, &numbered_batch("a", 5, 0));
    append(&log, &numbered_batch("b", 5, 0));
    let end = log.log_end_offset();
    for (from, first_base) in [(0, 0), (4, 0), (5, 5), (7, 5), (9, 5)] {
        let read = log.read(Offset(from), 1 << 20, end, true).unwrap();
        let batch = BatchView::new(&read.bytes).unwrap();
        assert_eq!(batch.base_offset(), first_base, "read from {from}");
    }
    let at_end = log.read(end, 1 << 20, end, true).unwrap();
    assert!(at_end.bytes.is_empty());
    assert_eq!(at_end.log_end_offset, Offset(10));
}

#[test]
fn reads_take_whole_batches_up_to_max_bytes_and_at_least_one_when_asked() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        flush: FlushPolicy::None,
        ..LogConfig::default()
    });
    let one = numbered_batch("x", 3, 0);
    for _ in 0..10 {
        append(&log, &one);
    }
    let end = log.log_end_offset();
    let read = log
        .read(Offset(0), one.len() * 2 + one.len() / 2, end, false)
        .unwrap();
    assert_eq!(
        read.bytes.len(),
        one.len() * 2,
        "two whole batches fit, the third does not"
    );
    let read = log.read(Offset(0), 10, end, true).unwrap();
    assert_eq!(
        read.bytes.len(),
        one.len(),
        "a first batch larger than max_bytes still comes whole"
    );
    let read = log.read(Offset(0), 10, end, false).unwrap();
    assert!(read.bytes.is_empty());
    let read = log.read(Offset(3), 1 << 20, end, false).unwrap();
    assert_eq!(read.bytes.len(), one.len() * 9);
}

#[test]
fn reads_never_include_a_batch_that_reaches_the_upper_bound() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    append(&log, &numbered_batch("a", 5, 0));
    append(&log, &numbered_batch("b", 5, 0));
    let only_a = |upper| {
        records_in(
            &log.read(Offset(0), 1 << 20, Offset(upper), true)
                .unwrap()
                .bytes,
        )
    };
    assert_eq!(only_a(10).len(), 10);
    assert_eq!(only_a(7).len(), 5, "the batch 5..=9 reaches offset 7");
    assert_eq!(only_a(5).len(), 5);
    assert_eq!(only_a(4).len(), 0, "the batch 0..=4 reaches offset 4");
    assert!(
        log.read(Offset(5), 1 << 20, Offset(5), true)
            .unwrap()
            .bytes
            .is_empty()
    );
}

#[test]
fn reads_outside_the_log_are_typed_errors_naming_the_range() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    for i in 0..30 {
        append(&log, &numbered_batch(&format!("{i}"), 4, 0));
    }
    let end = log.log_end_offset();
    match log.read(end.plus(1), 100, end, true) {
        Err(ReadError::OffsetOutOfRange {
            offset,
            log_start,
            log_end,
        }) => {
            assert_eq!((offset, log_start, log_end), (end.plus(1), Offset(0), end));
        }
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    log.advance_log_start(Offset(50)).unwrap();
    assert!(matches!(
        log.read(Offset(49), 100, end, true),
        Err(ReadError::OffsetOutOfRange {
            log_start: Offset(50),
            ..
        })
    ));
    let records = read_all(&log);
    assert_eq!(
        records.first().unwrap().0,
        Offset(50),
        "reading from the log start skips records below it"
    );
}

#[test]
fn a_slice_outlives_the_deletion_of_its_segment() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    for i in 0..100 {
        append(&log, &numbered_batch(&format!("{i}"), 4, 0));
    }
    let first = log
        .read(Offset(0), 1 << 20, log.log_end_offset(), true)
        .unwrap();
    let before = records_in(&first.bytes);
    let segments = log.segment_count();
    log.advance_log_start(Offset(300)).unwrap();
    assert!(log.segment_count() < segments);
    assert!(
        !fx.dir().join("00000000000000000000.log").exists(),
        "segment 0 was deleted"
    );
    assert_eq!(
        records_in(&first.bytes),
        before,
        "the reader still has its bytes"
    );
}

#[test]
fn segment_ms_rolls_by_the_first_batch_timestamp() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        segment_ms: 1_000,
        flush: FlushPolicy::None,
        ..LogConfig::default()
    });
    log.append(&numbered_batch("a", 1, 10_000), 0, 10_000)
        .unwrap()
        .wait()
        .unwrap();
    log.append(&numbered_batch("b", 1, 10_900), 0, 10_900)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&numbered_batch("c", 1, 11_001), 0, 11_001)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![Offset(0), Offset(2)]);
}

#[test]
fn a_full_index_rolls_the_segment() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        segment_index_bytes: 24,
        index_interval_bytes: 0,
        flush: FlushPolicy::None,
        ..LogConfig::default()
    });
    for i in 0..20 {
        append(&log, &numbered_batch(&format!("{i}"), 1, i));
    }
    assert!(
        log.segment_count() >= 5,
        "tiny indexes fill and roll: {} segments",
        log.segment_count()
    );
    assert_eq!(values(&read_all(&log)).len(), 20);
}

#[test]
fn refused_batches_leave_no_trace() {
    let fx = Fixture::new();
    let config = LogConfig {
        segment_bytes: 2048,
        flush: FlushPolicy::None,
        ..LogConfig::default()
    };
    let log = fx.create(config);
    append(&log, &numbered_batch("ok", 2, 0));
    let size = log.size_bytes();
    let mut corrupt = numbered_batch("bad", 2, 0);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01;
    match log.append(&corrupt, 0, 0) {
        Err(AppendError::InvalidBatch(BatchError::CrcMismatch { .. })) => {}
        other => panic!("expected a CRC error, got {other:?}"),
    }
    let big = batch(&[&vec![7u8; 3000]], 0);
    assert!(matches!(
        log.append(&big, 0, 0),
        Err(AppendError::BatchLargerThanSegment {
            segment_bytes: 2048,
            ..
        })
    ));
    let huge = batch(&[&vec![7u8; 2 << 20]], 0);
    assert!(matches!(
        log.append(&huge, 0, 0),
        Err(AppendError::InvalidBatch(BatchError::TooLarge { .. }))
    ));
    assert_eq!(log.log_end_offset(), Offset(2));
    assert_eq!(log.size_bytes(), size);
    let info = append(&log, &numbered_batch("next", 1, 0));
    assert_eq!(
        info.base_offset,
        Offset(2),
        "no offsets were used by the refused batches"
    );
}

#[test]
fn log_append_time_logs_stamp_the_broker_clock_with_a_valid_crc() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        flush: FlushPolicy::None,
        ..LogConfig::default()
    });
    let info = log
        .append(&batch(&[b"a", b"b"], 5), 3, 777_000)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(info.log_append_time_ms, Some(777_000));
    let read = log
        .read(Offset(0), 1 << 20, log.log_end_offset(), true)
        .unwrap();
    let view = BatchView::new(&read.bytes).unwrap();
    assert_eq!(
        view.attributes().timestamp_type(),
        TimestampType::LogAppendTime
    );
    assert_eq!(view.partition_leader_epoch(), 3);
    view.verify_crc().unwrap();
    let records = records_in(&read.bytes);
    assert!(records.iter().all(|(_, _, t)| *t == 777_000));
}

#[test]
fn truncation_inside_the_active_segment_removes_whole_batches() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        flush: FlushPolicy::None,
        ..LogConfig::default()
    });
    for name in ["a", "b", "c"] {
        append(&log, &numbered_batch(name, 5, 0));
    }
    // Offset 7 is inside batch b (5..=9): all of b goes.
    assert_eq!(log.truncate_to(Offset(7)).unwrap(), Offset(5));
    assert_eq!(log.log_end_offset(), Offset(5));
    append(&log, &numbered_batch("d", 2, 0));
    let (log, report) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(
        values(&read_all(&log)),
        ["a-0", "a-1", "a-2", "a-3", "a-4", "d-0", "d-1"]
    );
}

#[test]
fn truncation_into_a_sealed_segment_deletes_later_ones_and_continues() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::Fsync));
    for i in 0..200 {
        append(&log, &numbered_batch(&format!("{i}"), 3, 0));
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3);
    let target = bases[1].plus(4); // inside the second segment
    let end = log.truncate_to(target).unwrap();
    assert!(end <= target && end > bases[1]);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(
        log.flushed_end_offset(),
        end,
        "a truncation is durable when it returns"
    );
    for stale in &bases[2..] {
        assert!(!fx.dir().join(format!("{:020}.log", stale.value())).exists());
    }
    append(&log, &numbered_batch("after", 2, 0));
    let records = read_all(&log);
    assert_eq!(records.len() as i64, end.value() + 2);
    assert_eq!(records[end.value() as usize].1, b"after-0");
    let expected = values(&read_all(&log));
    let (log, _) = fx.reopen_clean(log);
    assert_eq!(values(&read_all(&log)), expected);
    let (log, report) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(values(&read_all(&log)), expected);
}

#[test]
fn truncation_never_changes_bytes_a_reader_holds() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        flush: FlushPolicy::None,
        ..LogConfig::default()
    });
    append(&log, &numbered_batch("old", 10, 0));
    append(&log, &numbered_batch("old-tail", 10, 0));
    let held = log
        .read(Offset(0), 1 << 20, log.log_end_offset(), true)
        .unwrap()
        .bytes;
    let before = records_in(&held);
    log.truncate_to(Offset(10)).unwrap();
    append(&log, &numbered_batch("new", 10, 0));
    assert_eq!(
        records_in(&held),
        before,
        "the held slice still shows the old batches"
    );
    let now = values(&read_all(&log));
    assert_eq!(now[10], "new-0");
    let (log, _) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(values(&read_all(&log)), now);
}

#[test]
fn truncation_at_or_below_the_log_start_restarts_the_log_there() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    for i in 0..40 {
        append(&log, &numbered_batch(&format!("{i}"), 2, 0));
    }
    log.advance_log_start(Offset(30)).unwrap();
    assert_eq!(log.truncate_to(Offset(20)).unwrap(), Offset(20));
    assert_eq!(log.log_start_offset(), Offset(20));
    assert_eq!(log.log_end_offset(), Offset(20));
    let info = append(&log, &numbered_batch("x", 1, 0));
    assert_eq!(info.base_offset, Offset(20));
    log.truncate_fully_and_start_at(Offset(1_000)).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (Offset(1_000), Offset(1_000))
    );
    assert_eq!(segment_files(&fx.dir(), "log").len(), 1);
    let (log, _) = fx.reopen_clean(log);
    assert_eq!(log.log_start_offset(), Offset(1_000));
    let info = append(&log, &numbered_batch("y", 1, 0));
    assert_eq!(info.base_offset, Offset(1_000));
}

#[test]
fn advancing_the_log_start_refuses_offsets_past_the_end() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    append(&log, &numbered_batch("a", 3, 0));
    assert!(matches!(
        log.advance_log_start(Offset(4)),
        Err(ModifyError::BeyondLogEnd {
            requested: Offset(4),
            log_end: Offset(3)
        })
    ));
    assert_eq!(log.advance_log_start(Offset(1)).unwrap(), Offset(1));
    assert_eq!(
        log.advance_log_start(Offset(0)).unwrap(),
        Offset(1),
        "the log start never moves back"
    );
}

#[test]
fn retention_bytes_deletes_the_oldest_segments_only() {
    let fx = Fixture::new();
    let mut config = small_config(FlushPolicy::None);
    let log = fx.create(config);
    for i in 0..400 {
        append(&log, &numbered_batch(&format!("{i}"), 4, 0));
    }
    let before = log.size_bytes();
    config.retention_bytes = 8192;
    log.set_config(config).unwrap();
    let outcome = log.apply_retention(0, log.log_end_offset()).unwrap();
    assert!(outcome.segments_deleted > 0);
    assert!(log.size_bytes() >= 8192, "never below retention.bytes");
    assert!(log.size_bytes() < before);
    assert_eq!(outcome.bytes_deleted, before - log.size_bytes());
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    assert_eq!(outcome.log_start_offset, log.log_start_offset());
    let records = read_all(&log);
    assert_eq!(records.first().unwrap().0, log.log_start_offset());
    assert_eq!(records.last().unwrap().0, Offset(1_599));
}

#[test]
fn retention_ms_deletes_expired_segments_and_rolls_when_everything_expired() {
    let fx = Fixture::new();
    let mut config = small_config(FlushPolicy::None);
    config.retention_ms = 1_000;
    let log = fx.create(config);
    for i in 0..50 {
        append(&log, &numbered_batch(&format!("{i}"), 4, 10_000 + i));
    }
    let upper = log.log_end_offset();
    let kept = log.apply_retention(10_500, upper).unwrap();
    assert_eq!(
        kept.segments_deleted, 0,
        "nothing is older than a second yet"
    );
    // At 11_040, records stamped up to 10_039 are expired.
    let some = log.apply_retention(11_040, upper).unwrap();
    assert!(some.segments_deleted > 0);
    let oldest = read_all(&log).first().unwrap().2;
    assert!(oldest >= 10_000 && log.segment_count() >= 1);
    let all = log.apply_retention(1_000_000, Offset(0)).unwrap();
    assert_eq!(
        all.segments_deleted, 0,
        "nothing at or past the upper bound (high watermark) goes"
    );
    let all = log.apply_retention(1_000_000, upper).unwrap();
    assert!(all.segments_deleted > 0);
    assert_eq!(log.segment_count(), 1, "an empty active segment remains");
    assert_eq!(log.log_start_offset(), upper);
    assert_eq!(log.log_end_offset(), upper);
    assert!(read_all(&log).is_empty());
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after_it() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    // Timestamps go up and down across and within batches, as producers' can.
    let mut stamped = Vec::new();
    let mut offset = 0i64;
    for i in 0..40i64 {
        let ts: Vec<i64> = (0..3).map(|j| 1_000 + (i * 7 + j * 13) % 50 * 10).collect();
        let values: Vec<Vec<u8>> = (0..3).map(|j| format!("{i}-{j}").into_bytes()).collect();
        let records: Vec<rill_record::NewRecord<'_>> = values
            .iter()
            .zip(&ts)
            .map(|(v, t)| rill_record::NewRecord {
                timestamp: *t,
                key: None,
                value: Some(v),
                headers: &[],
            })
            .collect();
        let bytes = rill_record::BatchBuilder::new(ts[0])
            .with_records(&records)
            .finish()
            .unwrap();
        append(&log, &bytes);
        for t in ts {
            stamped.push((offset, t));
            offset += 1;
        }
    }
    let end = log.log_end_offset();
    for target in [0, 1_000, 1_005, 1_250, 1_490, 1_491] {
        let expected = stamped
            .iter()
            .find(|(_, t)| *t >= target)
            .map(|(o, t)| (Offset(*o), *t));
        assert_eq!(
            log.offset_for_timestamp(target, end).unwrap(),
            expected,
            "target {target}"
        );
    }
    let max = stamped.iter().map(|(_, t)| *t).max().unwrap();
    let first_max = stamped.iter().find(|(_, t)| *t == max).unwrap();
    assert_eq!(
        log.max_timestamp_record(end).unwrap(),
        Some((Offset(first_max.0), max))
    );
    // Bounded by the upper offset and the log start.
    let upper = Offset(10);
    let expected = stamped[..10]
        .iter()
        .find(|(_, t)| *t >= 1_250)
        .map(|(o, t)| (Offset(*o), *t));
    assert_eq!(log.offset_for_timestamp(1_250, upper).unwrap(), expected);
    log.advance_log_start(Offset(100)).unwrap();
    let expected = stamped[100..]
        .iter()
        .find(|(_, t)| *t >= 1_000)
        .map(|(o, t)| (Offset(*o), *t));
    assert_eq!(log.offset_for_timestamp(1_000, end).unwrap(), expected);
    // Clean and crash reopens answer the same (indexes trusted or rebuilt).
    let (log, _) = fx.reopen_clean(log);
    assert_eq!(log.offset_for_timestamp(1_000, end).unwrap(), expected);
    let (log, _) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(log.offset_for_timestamp(1_000, end).unwrap(), expected);
}

#[test]
fn timestamp_lookups_look_inside_compressed_batches() {
    for compression in [Compression::Gzip, Compression::Zstd] {
        let fx = Fixture::new();
        let log = fx.create(small_config(FlushPolicy::None));
        let bytes = compressed_batch(
            compression,
            &[b"a", b"b", b"c", b"d"],
            &[100, 300, 200, 300],
        );
        append(&log, &bytes);
        let end = log.log_end_offset();
        assert_eq!(
            log.offset_for_timestamp(150, end).unwrap(),
            Some((Offset(1), 300)),
            "{compression:?}"
        );
        assert_eq!(log.offset_for_timestamp(301, end).unwrap(), None);
        assert_eq!(
            log.max_timestamp_record(end).unwrap(),
            Some((Offset(1), 300))
        );
    }
}

#[test]
fn log_append_time_lookups_use_the_broker_timestamp() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        flush: FlushPolicy::None,
        ..LogConfig::default()
    });
    log.append(&batch(&[b"a", b"b"], 1), 0, 5_000)
        .unwrap()
        .wait()
        .unwrap();
    log.append(&batch(&[b"c"], 999_999), 0, 6_000)
        .unwrap()
        .wait()
        .unwrap();
    let end = log.log_end_offset();
    assert_eq!(
        log.offset_for_timestamp(5_500, end).unwrap(),
        Some((Offset(2), 6_000))
    );
    assert_eq!(
        log.offset_for_timestamp(0, end).unwrap(),
        Some((Offset(0), 5_000))
    );
    assert_eq!(
        log.max_timestamp_record(end).unwrap(),
        Some((Offset(2), 6_000))
    );
}

#[test]
fn fsync_acknowledges_only_after_a_sync() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig::default());
    for i in 0..5 {
        let before = fx.disk.syncs();
        let info = append(&log, &numbered_batch(&format!("{i}"), 1, 0));
        assert!(
            fx.disk.syncs() > before,
            "append {i} resolved without a sync"
        );
        assert!(log.flushed_end_offset() > info.last_offset);
    }
}

#[test]
fn none_acknowledges_from_the_page_cache() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        flush: FlushPolicy::None,
        ..LogConfig::default()
    });
    let before = fx.disk.syncs();
    for i in 0..20 {
        let ticket = log
            .append(&numbered_batch(&format!("{i}"), 1, 0), 0, 0)
            .unwrap();
        assert!(ticket.is_ready());
        ticket.wait().unwrap();
    }
    assert_eq!(fx.disk.syncs(), before);
    assert_eq!(log.flushed_end_offset(), Offset(0));
    assert_eq!(log.flush().unwrap(), Offset(20));
}

#[test]
fn interval_syncs_every_flush_messages_and_waits_for_that_sync() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        flush: FlushPolicy::Interval {
            messages: 5,
            ms: 3_600_000,
        },
        ..LogConfig::default()
    });
    let first = log.append(&numbered_batch("a", 2, 0), 0, 0).unwrap();
    assert!(
        first.is_ready(),
        "2 of 5 messages: acknowledged from the page cache"
    );
    first.wait().unwrap();
    let before = fx.disk.syncs();
    let second = log.append(&numbered_batch("b", 3, 0), 0, 0).unwrap();
    second.wait().unwrap();
    assert!(fx.disk.syncs() > before, "the 5th message waits for a sync");
    assert_eq!(log.flushed_end_offset(), Offset(5));
}

#[test]
fn interval_syncs_after_flush_ms_in_the_background() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        flush: FlushPolicy::Interval {
            messages: 1_000_000,
            ms: 20,
        },
        ..LogConfig::default()
    });
    append(&log, &numbered_batch("a", 3, 0));
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.flushed_end_offset() < Offset(3) {
        assert!(Instant::now() < deadline, "flush.ms never flushed");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn concurrent_appends_share_syncs() {
    let fx = Fixture::new();
    let log = Arc::new(fx.create(LogConfig::default()));
    let before = fx.disk.syncs();
    let appends_per_thread = 100;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..appends_per_thread {
                    append(&log, &numbered_batch(&format!("{t}-{i}"), 1, 0));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let syncs = fx.disk.syncs() - before;
    assert_eq!(log.log_end_offset(), Offset(4 * appends_per_thread));
    assert!(
        syncs < 4 * appends_per_thread as u64,
        "{syncs} syncs for {} appends: no group commit",
        4 * appends_per_thread
    );
    assert_eq!(read_all(&log).len(), 400);
}

#[test]
fn an_awaited_ticket_resolves_after_the_sync() {
    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let fx = Fixture::new();
    let log = fx.create(LogConfig::default());
    let mut ticket = log.append(&numbered_batch("a", 2, 0), 0, 0).unwrap();
    let flag = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::pin::Pin::new(&mut ticket).poll(&mut cx) {
            Poll::Ready(result) => {
                assert_eq!(result.unwrap().last_offset, Offset(1));
                break;
            }
            Poll::Pending => {
                while !flag.0.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    assert!(Instant::now() < deadline, "never woken");
                    std::thread::yield_now();
                }
            }
        }
    }
    assert!(log.flushed_end_offset() >= Offset(2));
}

#[test]
fn a_full_disk_is_a_typed_error_and_appends_resume_when_space_returns() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig::default());
    append(&log, &numbered_batch("before", 2, 0));
    fx.disk.set_full(true);
    // Fill the current reservation until the next append must reserve.
    let big = batch(&[&vec![1u8; 60_000]], 0);
    let error = loop {
        match log.append(&big, 0, 0) {
            Ok(ticket) => {
                ticket.wait().unwrap();
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(error, AppendError::DiskFull { .. }), "{error}");
    let end = log.log_end_offset();
    let size = log.size_bytes();
    assert!(matches!(
        log.append(&big, 0, 0),
        Err(AppendError::DiskFull { .. })
    ));
    assert_eq!(
        (log.log_end_offset(), log.size_bytes()),
        (end, size),
        "nothing written"
    );
    assert_eq!(
        values(&read_all(&log))[..2],
        ["before-0", "before-1"],
        "reads go on"
    );
    fx.disk.set_full(false);
    let info = append(&log, &numbered_batch("after", 1, 0));
    assert_eq!(info.base_offset, end);
    let (log, report) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(log.log_end_offset(), end.plus(1));
}

#[test]
fn a_nearly_full_disk_takes_appends_until_not_even_their_own_bytes_fit() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig::default());
    // Room for a page or two at a time, but never the next 64 KiB step.
    fx.disk.set_reservation_limit(Some(8192));
    let record = batch(&[&vec![7u8; 3_000]], 0);
    for _ in 0..100 {
        append(&log, &record);
    }
    assert!(
        log.size_bytes() > 256 * 1024,
        "appends went on past several of the reservations the disk refused"
    );
    // A batch larger than any reservation the disk allows is refused,
    // and nothing is written.
    let big = batch(&[&vec![1u8; 60_000]], 0);
    let end = log.log_end_offset();
    assert!(matches!(
        log.append(&big, 0, 0),
        Err(AppendError::DiskFull { .. })
    ));
    assert_eq!(log.log_end_offset(), end, "nothing written");
    fx.disk.set_reservation_limit(None);
    append(&log, &big);
    assert_eq!(log.log_end_offset(), end.plus(1));
    let (log, report) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(log.log_end_offset(), end.plus(1));
}

#[test]
fn a_failed_sync_takes_the_log_offline_until_reopened() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig::default());
    append(&log, &numbered_batch("safe", 1, 0));
    fx.disk.set_failing_syncs(true);
    let failed = log
        .append(&numbered_batch("doomed", 1, 0), 0, 0)
        .unwrap()
        .wait();
    assert!(failed.is_err(), "the ticket reports the failed sync");
    assert!(log.failure().is_some());
    assert!(matches!(
        log.append(&numbered_batch("refused", 1, 0), 0, 0),
        Err(AppendError::Offline(_))
    ));
    assert_eq!(values(&read_all(&log))[0], "safe-0", "reads go on");
    fx.disk.set_failing_syncs(false);
    let (log, _) = fx.reopen_crashed(log, Offset(1));
    assert!(log.failure().is_none());
    append(&log, &numbered_batch("again", 1, 0));
}

#[test]
fn a_failed_directory_sync_takes_the_log_offline_until_reopened() {
    // On a file system synced file by file, the round after a roll syncs
    // the directory that holds the new segment: if that fails, the roll's
    // append is never acknowledged, and the log takes no more writes.
    let fx = Fixture::new();
    fx.disk.pretend_file_system(
        FUSE_MAGIC,
        KernelVersion {
            major: 6,
            minor: 18,
        },
    );
    let log = fx.create(small_config(FlushPolicy::Fsync));
    let mut acknowledged = 0;
    while log.segment_count() == 1 {
        append(&log, &numbered_batch(&format!("safe{acknowledged}"), 4, 0));
        acknowledged += 4;
    }
    let segments = log.segment_count();
    fx.disk.set_failing_dir_syncs(true);
    let mut failed = None;
    for i in 0..100 {
        let ticket = log.append(&numbered_batch(&format!("doomed{i}"), 4, 0), 0, 0);
        match ticket.map(|t| t.wait()) {
            Ok(Ok(_)) => assert_eq!(log.segment_count(), segments, "no roll yet"),
            Ok(Err(e)) => {
                failed = Some(e);
                break;
            }
            Err(e) => panic!("refused before any sync failed: {e}"),
        }
    }
    let failed = failed.expect("a roll's directory sync failed");
    assert!(
        matches!(&failed.cause, OfflineCause::WriteFailed { reason } if reason.contains("sync directory")),
        "{failed}"
    );
    assert!(matches!(
        log.append(&numbered_batch("refused", 1, 0), 0, 0),
        Err(AppendError::Offline(_))
    ));
    assert_eq!(values(&read_all(&log))[0], "safe0-0", "reads go on");
    fx.disk.set_failing_dir_syncs(false);
    let (log, _) = fx.reopen_crashed(log, Offset(acknowledged));
    assert!(log.failure().is_none());
    append(&log, &numbered_batch("again", 1, 0));
}

#[test]
fn a_log_whose_file_system_cannot_be_probed_is_offline_for_writes() {
    // Without statfs there is no telling whether syncfs would sync
    // anything: appends are refused rather than acknowledged on a guess.
    let fx = Fixture::new();
    fx.disk.set_failing_probe(true);
    let log = fx.create(LogConfig::default());
    let failure = log.failure().expect("offline from the start");
    assert!(
        matches!(&failure.cause, OfflineCause::DurabilityUnknown { reason } if reason.contains("cannot statfs")),
        "{failure}"
    );
    assert!(failure.allows_reads());
    assert!(matches!(
        log.append(&numbered_batch("refused", 1, 0), 0, 0),
        Err(AppendError::Offline(_))
    ));
    assert!(read_all(&log).is_empty(), "reads are served");
}

#[test]
fn clean_reopen_keeps_everything_and_reads_no_log_data() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    for i in 0..80 {
        append(&log, &numbered_batch(&format!("{i}"), 3, i));
    }
    let expected = read_all(&log);
    let (log, report) = fx.reopen_clean(log);
    assert_eq!(report.scanned_segments, 0);
    assert_eq!(report.validated_bytes, 0);
    assert!(report.trusted_segments > 1);
    assert_eq!(read_all(&log), expected);
    let info = append(&log, &numbered_batch("more", 1, 0));
    assert_eq!(info.base_offset, Offset(240));
    assert_eq!(
        log.offset_for_timestamp(40, log.log_end_offset()).unwrap(),
        Some((Offset(120), 40))
    );
    let _ = RecoveryHints::unknown();
}

#[test]
fn a_failed_write_is_a_typed_error_and_the_log_goes_on() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig::default());
    append(&log, &numbered_batch("before", 2, 0));
    fx.disk.set_failing_writes(true);
    // Batches of 16 KiB and more are written with pwrite, which can fail;
    // smaller ones are copied into space already reserved.
    let large = batch(&[&vec![b'x'; 20 * 1024], b"lost"], 0);
    match log.append(&large, 0, 0) {
        Err(AppendError::Io(failure)) => assert_eq!(failure.operation, "write segment"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert_eq!(log.log_end_offset(), Offset(2), "no offsets were taken");
    assert!(
        log.failure().is_none(),
        "a failed write is not a failed sync: the log stays up"
    );
    fx.disk.set_failing_writes(false);
    let info = append(&log, &numbered_batch("after", 1, 0));
    assert_eq!(info.base_offset, Offset(2));
    let (log, report) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(values(&read_all(&log)), ["before-0", "before-1", "after-0"]);
}

#[test]
fn a_closed_log_refuses_appends_but_serves_reads() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig::default());
    append(&log, &numbered_batch("a", 2, 0));
    assert_eq!(log.close().unwrap(), Offset(2));
    assert_eq!(log.close().unwrap(), Offset(2), "closing twice is harmless");
    assert!(matches!(
        log.append(&numbered_batch("b", 1, 0), 0, 0),
        Err(AppendError::Closed { .. })
    ));
    assert!(matches!(
        log.truncate_to(Offset(0)),
        Err(ModifyError::Closed { .. })
    ));
    assert_eq!(values(&read_all(&log)), ["a-0", "a-1"]);
}

#[test]
fn a_ticket_for_an_appended_range_resolves_once_that_range_may_be_acknowledged() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig::default()); // fsync
    fx.disk.hold_syncs(true);
    let original = log.append(&batch(&[b"a", b"b"], 7), 0, 0).unwrap();
    let info = AppendInfo {
        base_offset: Offset(0),
        last_offset: Offset(1),
        log_append_time_ms: None,
        max_timestamp: 7,
        log_start_offset: Offset(0),
    };
    let again = log.ticket_for_appended(info);
    assert!(
        !again.is_ready(),
        "not before the original may be acknowledged"
    );
    fx.disk.hold_syncs(false);
    assert_eq!(again.wait().unwrap(), info);
    assert_eq!(original.wait().unwrap(), info);
    assert!(log.ticket_for_appended(info).is_ready(), "synced: at once");

    // Its own fixture, kept alive: the log's directory must outlive it.
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    append(&log, &batch(&[b"a"], 0));
    let info = AppendInfo {
        last_offset: Offset(0),
        ..info
    };
    assert!(log.ticket_for_appended(info).is_ready());
}

#[test]
#[should_panic(expected = "never assigned")]
fn a_ticket_for_offsets_the_log_never_assigned_is_a_bug() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    append(&log, &batch(&[b"a"], 0));
    let _ticket = log.ticket_for_appended(AppendInfo {
        base_offset: Offset(1),
        last_offset: Offset(1),
        log_append_time_ms: None,
        max_timestamp: 0,
        log_start_offset: Offset(0),
    });
}

#[test]
fn a_batch_validated_first_appends_as_append_would() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    let bytes = batch(&[b"a", b"b"], 5);
    let mut stored = Vec::new();
    let validated = log.validate(&bytes, &mut stored).unwrap();
    assert_eq!(validated.view().records_count(), 2);
    let info = log
        .append_validated(validated, 0, 0)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!((info.base_offset, info.last_offset), (Offset(0), Offset(1)));
    assert_eq!(values(&read_all(&log)), ["a", "b"]);
    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(
        log.validate(&corrupt, &mut Vec::new()),
        Err(AppendError::InvalidBatch(BatchError::CrcMismatch { .. }))
    ));
}

#[test]
fn index_files_grow_with_the_log_rather_than_taking_segment_index_bytes_at_once() {
    use std::os::unix::fs::MetadataExt;
    let fx = Fixture::new();
    // The default 10 MiB limit, and an index entry for every batch.
    let config = LogConfig {
        index_interval_bytes: 0,
        flush: FlushPolicy::None,
        ..LogConfig::default()
    };
    let log = fx.create(config);
    let disk_bytes = |suffix: &str| -> u64 {
        segment_files(&fx.dir(), suffix)
            .iter()
            .map(|path| std::fs::metadata(path).unwrap().blocks() * 512)
            .sum()
    };
    for suffix in ["index", "timeindex"] {
        assert!(
            disk_bytes(suffix) <= 4096,
            "a new partition's {suffix} takes a page, not 10 MiB: {}",
            disk_bytes(suffix)
        );
    }
    let batches = 5_000i64;
    for i in 0..batches {
        append(&log, &numbered_batch(&format!("{i}"), 1, i));
    }
    assert_eq!(log.segment_count(), 1);
    assert!(
        disk_bytes("index") >= batches as u64 * 8,
        "room for every entry"
    );
    assert!(
        disk_bytes("index") < 1 << 20,
        "grown with the log, not to the limit"
    );
    let check = |log: &rill_storage::Log| {
        for offset in [0, 1_234, batches - 1] {
            let read = log
                .read(Offset(offset), 1, log.log_end_offset(), true)
                .unwrap();
            assert_eq!(BatchView::new(&read.bytes).unwrap().base_offset(), offset);
        }
        assert_eq!(
            log.offset_for_timestamp(2_500, log.log_end_offset())
                .unwrap(),
            Some((Offset(2_500), 2_500))
        );
    };
    check(&log);
    let (log, report) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(report.dropped_bytes, 0);
    check(&log);
    let (log, _) = fx.reopen_clean(log);
    check(&log);
}

#[test]
fn an_active_index_keeps_growing_after_a_restart_with_a_sparser_index_interval() {
    let fx = Fixture::new();
    let dense = LogConfig {
        index_interval_bytes: 0,
        flush: FlushPolicy::None,
        ..LogConfig::default()
    };
    let log = fx.create(dense);
    for i in 0..3_000i64 {
        append(&log, &numbered_batch(&format!("{i}"), 1, i));
    }
    // The same active segment, its index now holding far more entries
    // than index.interval.bytes=4096 would have made: appends go on.
    let end = log.close().unwrap();
    let sparse = LogConfig {
        flush: FlushPolicy::None,
        ..LogConfig::default()
    };
    let hints = RecoveryHints {
        clean_shutdown: true,
        recovery_point: end,
        log_start_offset: Offset(0),
    };
    let (log, _) = fx.open(sparse, hints);
    for i in 3_000..6_000i64 {
        append(
            &log,
            &batch(&[&vec![b'x'; 5_000], format!("{i}").as_bytes()], i),
        );
    }
    assert_eq!(log.segment_count(), 1);
    for offset in [0i64, 2_999, 3_000, 8_999] {
        let read = log
            .read(Offset(offset), 1, log.log_end_offset(), true)
            .unwrap();
        let found = BatchView::new(&read.bytes).unwrap();
        assert!(found.base_offset() <= offset && offset <= found.last_offset());
    }
}
