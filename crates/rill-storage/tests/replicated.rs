//! A follower's log: batches appended exactly as the leader stored them
//! (offsets, epochs and timestamps kept, gaps after compaction), refused
//! when they do not follow the log end, durable as producer appends are,
//! and recovered after a crash.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use rill_record::{
    BatchBuilder, BatchError, BatchView, BatchViewMut, Batches, NewRecord, Records, TimestampType,
    layout, records_data,
};
use rill_storage::{
    AppendError, AppendInfo, CleanerConfig, CleanupPolicy, FlushPolicy, Log, LogConfig, Offset,
    RecoveryHints,
};

impl Fixture {
    /// A second log beside the fixture's, in `name`.
    fn create_at(&self, name: &str, config: LogConfig) -> Log {
        Log::create(
            &self.root.path().join(name),
            config,
            Offset(0),
            &self.flusher,
            self.disk.clone(),
            0,
        )
        .unwrap()
    }
}

/// Appends as a follower and waits until the append may be acknowledged.
fn replicate(log: &Log, batch: &[u8]) -> AppendInfo {
    log.append_replicated(batch, 0).unwrap().wait().unwrap()
}

/// The leader's stored batches, each as its own byte vector, read as a
/// follower's fetches would (from the next offset after the last batch).
fn stored_batches(log: &Log) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    while next < end {
        let read = log.read(next, 1 << 20, end, true).unwrap();
        if read.bytes.is_empty() {
            break;
        }
        for batch in Batches::new(&read.bytes) {
            out.push(batch.as_bytes().to_vec());
            next = Offset(batch.next_offset());
        }
    }
    out
}

/// Every byte of the log, batch after batch.
fn log_bytes(log: &Log) -> Vec<u8> {
    stored_batches(log).concat()
}

/// (offset, value) of every record, empty batches and gaps skipped.
fn records(log: &Log) -> Vec<(Offset, Vec<u8>)> {
    let mut out = Vec::new();
    for bytes in stored_batches(log) {
        let batch = BatchView::new(&bytes).unwrap();
        batch.verify_crc().unwrap();
        let data = records_data(&batch, 1 << 30).unwrap();
        for record in Records::new(&data, batch.records_count()) {
            let record = record.unwrap();
            out.push((
                Offset(batch.base_offset() + i64::from(record.offset_delta)),
                record.value.unwrap_or_default().to_vec(),
            ));
        }
    }
    out
}

/// A batch as a leader stored it: `batch` at `base_offset` in `epoch`.
fn at(mut batch: Vec<u8>, base_offset: i64, epoch: i32) -> Vec<u8> {
    let mut view = BatchViewMut::new(&mut batch).unwrap();
    view.set_base_offset(base_offset);
    view.set_partition_leader_epoch(epoch);
    batch
}

/// What compaction leaves of `batch`: the records whose offset delta
/// `keep` picks, under the original header (offsets kept).
fn compacted(batch: &[u8], keep: impl Fn(i32) -> bool) -> Vec<u8> {
    let view = BatchView::new(batch).unwrap();
    let data = records_data(&view, 1 << 20).unwrap();
    let mut rewriter = rill_record::BatchRewriter::new(view, None);
    for record in Records::new(&data, view.records_count()) {
        let record = record.unwrap();
        if keep(record.offset_delta) {
            rewriter.keep(&record);
        }
    }
    rewriter.finish().unwrap()
}

fn leader_config(timestamp_type: TimestampType) -> LogConfig {
    LogConfig {
        timestamp_type,
        ..small_config(FlushPolicy::Fsync)
    }
}

#[test]
fn a_follower_log_holds_the_leaders_bytes_unchanged_across_rolls_and_restarts() {
    let fx = Fixture::new();
    // The leader stamps LogAppendTime; the follower's own config says
    // LogAppendTime too, with another clock: it must not restamp.
    let leader = fx.create_at("leader-0", leader_config(TimestampType::LogAppendTime));
    for i in 0..120 {
        let epoch = if i < 60 { 3 } else { 5 };
        let batch = numbered_batch(&format!("b{i}"), 1 + i % 4, 1_000 + i as i64);
        leader
            .append(&batch, epoch, 50_000 + i as i64)
            .unwrap()
            .wait()
            .unwrap();
    }
    assert!(leader.segment_count() >= 3, "the test crosses rolls");
    let follower = fx.create(leader_config(TimestampType::LogAppendTime));
    for (i, batch) in stored_batches(&leader).iter().enumerate() {
        let view = BatchView::new(batch).unwrap();
        let info = follower
            .append_replicated(batch, 99_999_999)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(info.base_offset, Offset(view.base_offset()), "batch {i}");
        assert_eq!(info.last_offset, Offset(view.last_offset()), "batch {i}");
        assert_eq!(
            info.log_append_time_ms,
            Some(view.max_timestamp()),
            "the leader's stamp"
        );
    }
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(log_bytes(&follower), log_bytes(&leader), "byte for byte");
    assert!(follower.segment_count() >= 3);
    // The time index holds the leader's timestamps, not the follower's clock.
    for target in [50_000, 50_007, 50_061, 50_119] {
        assert_eq!(
            follower
                .offset_for_timestamp(target, follower.log_end_offset())
                .unwrap(),
            leader
                .offset_for_timestamp(target, leader.log_end_offset())
                .unwrap(),
            "timestamp {target}"
        );
    }
    assert_eq!(
        follower
            .offset_for_timestamp(99_999_999, follower.log_end_offset())
            .unwrap(),
        None
    );
    // A clean restart and a crash both bring back the same bytes.
    let (follower, _) = fx.reopen_clean(follower);
    assert_eq!(log_bytes(&follower), log_bytes(&leader));
    let (follower, report) = fx.reopen_crashed(follower, Offset(0));
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(log_bytes(&follower), log_bytes(&leader));
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
}

#[test]
fn offsets_jump_forward_and_the_log_end_follows_the_last_offset_delta() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    let first = at(numbered_batch("a", 3, 10), 0, 1);
    // Four records at 10..=13, of which compaction kept 10 and 12.
    let thinned = compacted(&at(numbered_batch("b", 4, 20), 10, 2), |d| d % 2 == 0);
    // Two records at 20..=21, both compacted away: an empty batch that
    // keeps its producer's offsets.
    let emptied = compacted(
        &at(
            BatchBuilder::new(30)
                .producer(7, 0, 0)
                .with_records(&[NewRecord::value(b"c0"), NewRecord::value(b"c1")])
                .finish()
                .unwrap(),
            20,
            2,
        ),
        |_| false,
    );
    assert_eq!(BatchView::new(&thinned).unwrap().records_count(), 2);
    assert_eq!(BatchView::new(&thinned).unwrap().last_offset_delta(), 3);
    assert_eq!(BatchView::new(&emptied).unwrap().records_count(), 0);
    let infos: Vec<AppendInfo> = [&first, &thinned, &emptied]
        .iter()
        .map(|b| replicate(&log, b))
        .collect();
    let offsets: Vec<(Offset, Offset)> = infos
        .iter()
        .map(|i| (i.base_offset, i.last_offset))
        .collect();
    assert_eq!(
        offsets,
        [
            (Offset(0), Offset(2)),
            (Offset(10), Offset(13)),
            (Offset(20), Offset(21))
        ]
    );
    assert_eq!(log.log_end_offset(), Offset(22), "last offset + 1");
    let expected: Vec<(Offset, Vec<u8>)> = vec![
        (Offset(0), b"a-0".to_vec()),
        (Offset(1), b"a-1".to_vec()),
        (Offset(2), b"a-2".to_vec()),
        (Offset(10), b"b-0".to_vec()),
        (Offset(12), b"b-2".to_vec()),
    ];
    assert_eq!(records(&log), expected);
    // A read from inside a gap starts at the batch after it.
    let read = log.read(Offset(5), 1 << 20, Offset(22), false).unwrap();
    assert_eq!(&read.bytes[..thinned.len()], &thinned[..]);
    let read = log.read(Offset(15), 1 << 20, Offset(22), false).unwrap();
    assert_eq!(&read.bytes[..], &emptied[..]);
    // The next batch may follow at the log end exactly.
    replicate(&log, &at(numbered_batch("d", 1, 40), 22, 2));
    assert_eq!(log.log_end_offset(), Offset(23));
    // A crash: recovery validates every batch, gaps and thinned batches
    // included, and keeps them all.
    let before = log_bytes(&log);
    let (log, report) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(report.dropped_bytes, 0, "{report:?}");
    assert_eq!(report.validated_bytes, before.len() as u64);
    assert_eq!(log.log_end_offset(), Offset(23));
    assert_eq!(log_bytes(&log), before);
    // And appends go on after it.
    replicate(&log, &at(numbered_batch("e", 2, 50), 30, 4));
    assert_eq!(log.log_end_offset(), Offset(32));
}

#[test]
fn a_compacted_leaders_log_replicates_exactly_and_survives_a_crash() {
    let fx = Fixture::new();
    let config = LogConfig {
        segment_bytes: 1024,
        cleanup_policy: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        ..small_config(FlushPolicy::None)
    };
    let leader = fx.create_at("leader-0", config);
    for round in 0..60 {
        let values: Vec<String> = (0..5).map(|i| format!("v{round}-{i}")).collect();
        let keys: Vec<String> = (0..5)
            .map(|i| format!("k{}", (round * 5 + i) % 7))
            .collect();
        let records: Vec<NewRecord<'_>> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| NewRecord::key_value(k.as_bytes(), Some(v.as_bytes())))
            .collect();
        let batch = BatchBuilder::new(0)
            .with_records(&records)
            .finish()
            .unwrap();
        leader.append(&batch, 1, 0).unwrap().wait().unwrap();
    }
    let outcome = leader
        .compact(0, leader.log_end_offset(), &CleanerConfig::default())
        .unwrap();
    assert!(outcome.ran && outcome.bytes_after < outcome.bytes_before);
    let batches = stored_batches(&leader);
    let thinned = batches
        .iter()
        .filter(|b| {
            let view = BatchView::new(b).unwrap();
            i64::from(view.records_count()) < i64::from(view.last_offset_delta()) + 1
        })
        .count();
    assert!(
        thinned > 0,
        "compaction left batches with fewer records than offsets"
    );
    let gaps = batches
        .windows(2)
        .filter(|pair| {
            BatchView::new(&pair[0]).unwrap().next_offset()
                < BatchView::new(&pair[1]).unwrap().base_offset()
        })
        .count();
    assert!(gaps > 0, "compaction left gaps between batches");
    let follower = fx.create(small_config(FlushPolicy::None));
    for batch in &batches {
        replicate(&follower, batch);
    }
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(log_bytes(&follower), log_bytes(&leader));
    assert_eq!(records(&follower), records(&leader));
    let (follower, report) = fx.reopen_crashed(follower, Offset(0));
    assert_eq!(report.dropped_bytes, 0, "{report:?}");
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(log_bytes(&follower), log_bytes(&leader));
}

#[test]
fn a_batch_below_the_log_end_is_refused_and_changes_nothing() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::Fsync));
    replicate(&log, &at(numbered_batch("a", 5, 0), 0, 1));
    replicate(&log, &at(numbered_batch("b", 5, 0), 5, 1));
    let before = log_bytes(&log);
    let size = log.size_bytes();
    for (base, records) in [(5, 5), (9, 3), (0, 1)] {
        let stale = at(numbered_batch("x", records, 0), base, 2);
        match log.append_replicated(&stale, 0) {
            Err(AppendError::BaseOffsetBelowLogEnd {
                log_end,
                base_offset,
                last_offset,
            }) => {
                assert_eq!(log_end, Offset(10));
                assert_eq!(base_offset, Offset(base));
                assert_eq!(last_offset, Offset(base + records as i64 - 1));
            }
            other => panic!("base {base}: {other:?}"),
        }
    }
    // Damage is refused too, with what was expected and found.
    let mut damaged = at(numbered_batch("y", 2, 0), 10, 2);
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    assert!(matches!(
        log.append_replicated(&damaged, 0),
        Err(AppendError::InvalidBatch(BatchError::CrcMismatch { .. }))
    ));
    let two = [
        at(numbered_batch("z", 1, 0), 10, 2),
        at(numbered_batch("z", 1, 0), 11, 2),
    ]
    .concat();
    assert!(matches!(
        log.append_replicated(&two, 0),
        Err(AppendError::InvalidBatch(BatchError::NotOneBatch { .. }))
    ));
    assert_eq!(log.log_end_offset(), Offset(10));
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log_bytes(&log), before);
    // What a restart finds is the same.
    let (log, _) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(log_bytes(&log), before);
}

#[test]
fn a_replicated_batch_need_not_pass_the_producer_rules_but_fits_a_segment() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        max_message_bytes: 256,
        ..small_config(FlushPolicy::None)
    });
    // Larger than max.message.bytes: the leader's config admitted it.
    let large = at(numbered_batch("large-value-to-pass-the-limit", 12, 0), 0, 0);
    assert!(large.len() > 256);
    assert!(matches!(
        log.append(&large, 0, 0),
        Err(AppendError::InvalidBatch(BatchError::TooLarge { .. })),
    ));
    replicate(&log, &large);
    // A control batch, as a leader may write.
    let mut control = at(numbered_batch("marker", 1, 0), 12, 0);
    control[layout::ATTRIBUTES..layout::ATTRIBUTES + 2].copy_from_slice(&0x20i16.to_be_bytes());
    let crc = crc32c::crc32c(&control[layout::ATTRIBUTES..]);
    control[layout::CRC..layout::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    replicate(&log, &control);
    assert_eq!(log.log_end_offset(), Offset(13));
    // segment.bytes still bounds a batch.
    let huge = at(numbered_batch("h", 400, 0), 13, 0);
    assert!(huge.len() > 4096);
    assert!(matches!(
        log.append_replicated(&huge, 0),
        Err(AppendError::BatchLargerThanSegment { .. })
    ));
}

#[test]
fn under_fsync_a_replicated_append_is_acknowledged_only_after_its_sync() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::Fsync));
    fx.disk.hold_syncs(true);
    let first = log
        .append_replicated(&at(numbered_batch("a", 2, 0), 0, 1), 0)
        .unwrap();
    let second = log
        .append_replicated(&at(numbered_batch("b", 2, 0), 7, 1), 0)
        .unwrap();
    assert_eq!(log.log_end_offset(), Offset(9));
    assert_eq!(log.acknowledged_end_offset(), Offset(0));
    assert!(!first.is_ready() && !second.is_ready());
    fx.disk.hold_syncs(false);
    // Group commit: the later ticket's sync covers the earlier offsets.
    let info = second.wait().unwrap();
    assert_eq!(info.last_offset, Offset(8));
    assert!(first.is_ready());
    assert!(log.flushed_end_offset() >= Offset(9));
}

#[test]
fn under_interval_a_ticket_covering_earlier_appends_waits_for_their_sync() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::Interval {
        messages: 3,
        ms: 3_600_000,
    }));
    fx.disk.hold_syncs(true);
    // Three records reach flush.messages: this append waits for a sync.
    let earlier = log
        .append_replicated(&at(numbered_batch("a", 3, 0), 0, 1), 0)
        .unwrap();
    fx.disk.wait_for_held_sync();
    // The flusher has taken the count: one more record need not wait.
    let later = log
        .append_replicated(&at(numbered_batch("b", 1, 0), 3, 1), 0)
        .unwrap();
    assert!(!earlier.is_ready());
    assert!(later.is_ready(), "alone, the later ticket would not wait");
    let covering = later.covering(earlier);
    assert!(!covering.is_ready(), "it waits for the earlier sync");
    fx.disk.hold_syncs(false);
    let info = covering.wait().unwrap();
    assert_eq!((info.base_offset, info.last_offset), (Offset(3), Offset(3)));
    assert!(log.flushed_end_offset() >= Offset(3));
}

#[test]
fn a_closed_or_offline_log_refuses_replicated_batches() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::Fsync));
    replicate(&log, &at(numbered_batch("a", 1, 0), 0, 1));
    fx.disk.set_failing_syncs(true);
    let failed = log
        .append_replicated(&at(numbered_batch("b", 1, 0), 1, 1), 0)
        .unwrap()
        .wait();
    assert!(failed.is_err(), "a failed sync fails the ticket");
    fx.disk.set_failing_syncs(false);
    assert!(matches!(
        log.append_replicated(&at(numbered_batch("c", 1, 0), 2, 1), 0),
        Err(AppendError::Offline(_))
    ));
    let other = fx.create_at("other-0", small_config(FlushPolicy::None));
    other.close().unwrap();
    assert!(matches!(
        other.append_replicated(&at(numbered_batch("d", 1, 0), 0, 1), 0),
        Err(AppendError::Closed { .. })
    ));
}

#[test]
fn a_gap_too_wide_for_relative_offsets_starts_a_segment_at_the_batch() {
    let fx = Fixture::new();
    let log = fx.create(small_config(FlushPolicy::None));
    let far = 3_000_000_000i64; // past i32::MAX from the empty segment's base 0
    replicate(&log, &at(numbered_batch("a", 2, 0), far, 1));
    assert_eq!(
        log.segment_base_offsets(),
        [Offset(far)],
        "the empty segment at 0 is replaced by one named by the batch"
    );
    replicate(&log, &at(numbered_batch("b", 2, 0), far + 2, 1));
    let farther = 2 * far;
    replicate(&log, &at(numbered_batch("c", 2, 0), farther, 1));
    assert_eq!(
        log.segment_base_offsets(),
        [Offset(far), Offset(farther)],
        "a non-empty segment rolls to one named by the batch"
    );
    assert_eq!(log.log_end_offset(), Offset(farther + 2));
    let expected = vec![
        (Offset(far), b"a-0".to_vec()),
        (Offset(far + 1), b"a-1".to_vec()),
        (Offset(far + 2), b"b-0".to_vec()),
        (Offset(far + 3), b"b-1".to_vec()),
        (Offset(farther), b"c-0".to_vec()),
        (Offset(farther + 1), b"c-1".to_vec()),
    ];
    assert_eq!(records(&log), expected);
    let (log, _) = fx.reopen_clean(log);
    assert_eq!(records(&log), expected);
    let (log, report) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(records(&log), expected);
    assert_eq!(log.log_end_offset(), Offset(farther + 2));
}

#[test]
fn recovery_from_a_recovery_point_inside_a_gap_keeps_everything() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        segment_bytes: 1024,
        ..small_config(FlushPolicy::None)
    });
    let mut base = 0;
    for i in 0..30 {
        let batch = compacted(
            &at(numbered_batch(&format!("{i:02}"), 4, i), base, 1),
            |d| d != 1,
        );
        replicate(&log, &batch);
        base += 4 + i % 3; // a gap of 0, 1 or 2 offsets after each batch
    }
    assert!(log.segment_count() > 2);
    let end = log.log_end_offset();
    let before = log_bytes(&log);
    let expected = records(&log);
    assert_eq!(expected.len(), 90, "three records kept of every four");
    // Unclean stop with the recovery point in a gap mid-log.
    let (log, report) = fx.reopen_crashed(log, Offset(61));
    assert_eq!(report.dropped_bytes, 0, "{report:?}");
    assert!(report.validated_bytes > 0 && report.validated_bytes < before.len() as u64);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(records(&log), expected);
    // With no hints at all.
    drop(log);
    let (log, report) = fx.open(
        LogConfig {
            segment_bytes: 1024,
            ..small_config(FlushPolicy::None)
        },
        RecoveryHints::unknown(),
    );
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(log_bytes(&log), before);
}
