//! Idempotent producers against a partition as a leader sees them:
//! retries answered with their first offsets, sequence gaps and fenced
//! epochs refused, and the state kept across clean and unclean restarts
//! and truncation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::sync::Arc;

use rill_partition::{FetchIsolation, Partition, PartitionError, TopicPartition};
use rill_record::{BatchBuilder, Batches, NewRecord, TimestampType};
use rill_storage::testing::FaultyDisk;
use rill_storage::{AppendInfo, FlushPolicy, Flusher, LogConfig, Offset, RecoveryHints};

struct Fixture {
    root: tempfile::TempDir,
    flusher: Flusher,
    disk: Arc<FaultyDisk>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            root: tempfile::tempdir().unwrap(),
            flusher: Flusher::start(1).unwrap(),
            disk: Arc::new(FaultyDisk::default()),
        }
    }

    fn dir(&self) -> PathBuf {
        self.root.path().join("t-0")
    }

    fn create(&self, config: LogConfig) -> Partition {
        Partition::create(
            &self.dir(),
            TopicPartition::new("t", 0),
            config,
            &self.flusher,
            self.disk.clone(),
            0,
        )
        .unwrap()
    }

    fn open(&self, config: LogConfig, hints: RecoveryHints) -> Partition {
        Partition::open(
            &self.dir(),
            TopicPartition::new("t", 0),
            config,
            hints,
            &self.flusher,
            self.disk.clone(),
            0,
        )
        .unwrap()
        .0
    }

    /// Closes `partition` and opens it again as after a clean shutdown.
    fn restart_cleanly(&self, partition: Partition, config: LogConfig) -> Partition {
        let end = partition.close().unwrap();
        drop(partition);
        let hints = RecoveryHints {
            clean_shutdown: true,
            recovery_point: end,
            log_start_offset: Offset(0),
        };
        self.open(config, hints)
    }

    /// Drops `partition` without closing it (a crash, as far as the files
    /// are concerned) and opens it knowing nothing.
    fn restart_after_crash(&self, partition: Partition, config: LogConfig) -> Partition {
        drop(partition);
        self.open(config, RecoveryHints::unknown())
    }

    fn snapshot_offsets(&self) -> Vec<i64> {
        self.snapshots()
            .iter()
            .map(|name| name.trim_end_matches(".snapshot").parse().unwrap())
            .collect()
    }

    fn snapshots(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".snapshot"))
            .collect();
        names.sort();
        names
    }
}

fn none() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::None,
        ..LogConfig::default()
    }
}

/// Small segments, so that the log rolls every dozen batches or so.
fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        ..none()
    }
}

/// A batch of `count` records from producer `id` in `epoch`, starting at
/// `sequence`.
fn idempotent(id: i64, epoch: i16, sequence: i32, count: usize) -> Vec<u8> {
    let records: Vec<NewRecord<'_>> = (0..count).map(|_| NewRecord::value(b"v")).collect();
    BatchBuilder::new(1_000)
        .producer(id, epoch, sequence)
        .with_records(&records)
        .finish()
        .unwrap()
}

fn plain(count: usize) -> Vec<u8> {
    let records: Vec<NewRecord<'_>> = (0..count).map(|_| NewRecord::value(b"v")).collect();
    BatchBuilder::new(1_000)
        .with_records(&records)
        .finish()
        .unwrap()
}

fn append(partition: &Partition, batch: &[u8]) -> AppendInfo {
    partition.append(batch, 0, 5_000).unwrap().wait().unwrap()
}

fn offsets(info: AppendInfo) -> (i64, i64) {
    (info.base_offset.value(), info.last_offset.value())
}

/// How many batches the log holds from its start.
fn batches_in(partition: &Partition) -> usize {
    let mut count = 0;
    let mut next = partition.log_start_offset();
    while next < partition.log_end_offset() {
        let read = partition
            .read(next, 1 << 20, FetchIsolation::LogEnd, true)
            .unwrap();
        for batch in Batches::new(&read.bytes) {
            count += 1;
            next = Offset(batch.next_offset());
        }
    }
    count
}

#[test]
fn a_retried_batch_gets_its_original_offsets_and_is_not_written_again() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    let first = idempotent(7, 0, 0, 3);
    assert_eq!(offsets(append(&partition, &first)), (0, 2));
    assert_eq!(offsets(append(&partition, &plain(2))), (3, 4));
    let second = idempotent(7, 0, 3, 2);
    assert_eq!(offsets(append(&partition, &second)), (5, 6));
    let bytes_before = partition.log().size_bytes();

    let retried = append(&partition, &first);
    assert_eq!(offsets(retried), (0, 2), "the first answer, again");
    assert_eq!(retried.log_start_offset, Offset(0));
    assert_eq!(offsets(append(&partition, &second)), (5, 6));
    assert_eq!(partition.log_end_offset(), Offset(7), "nothing written");
    assert_eq!(partition.log().size_bytes(), bytes_before);
    assert_eq!(batches_in(&partition), 3);

    // Batches without a producer id are never deduplicated.
    assert_eq!(offsets(append(&partition, &plain(2))), (7, 8));
    assert_eq!(offsets(append(&partition, &plain(2))), (9, 10));
}

#[test]
fn only_a_producers_last_five_batches_are_recognised() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    let batches: Vec<Vec<u8>> = (0..6).map(|i| idempotent(1, 0, i, 1)).collect();
    for batch in &batches {
        append(&partition, batch);
    }
    assert_eq!(offsets(append(&partition, &batches[1])), (1, 1));
    assert!(
        matches!(
            partition.append(&batches[0], 0, 0),
            Err(PartitionError::OutOfOrderSequence {
                producer_id: 1,
                expected: 6,
                found: 0
            })
        ),
        "the sixth batch back is no longer known"
    );
}

#[test]
fn a_duplicate_is_acknowledged_only_once_its_original_is_synced() {
    let fx = Fixture::new();
    let partition = fx.create(LogConfig::default()); // fsync
    fx.disk.hold_syncs(true);
    let batch = idempotent(3, 0, 0, 2);
    let original = partition.append(&batch, 0, 0).unwrap();
    let duplicate = partition.append(&batch, 0, 0).unwrap();
    assert_eq!(partition.log_end_offset(), Offset(2));
    assert!(!original.is_ready());
    assert!(
        !duplicate.is_ready(),
        "the retry must not be acknowledged before the original could be"
    );
    fx.disk.hold_syncs(false);
    assert_eq!(offsets(duplicate.wait().unwrap()), (0, 1));
    assert_eq!(offsets(original.wait().unwrap()), (0, 1));
    assert_eq!(partition.high_watermark(), Offset(2));
    // Once synced, a retry is acknowledged at once.
    let again = partition.append(&batch, 0, 0).unwrap();
    assert!(again.is_ready());
    assert_eq!(offsets(again.wait().unwrap()), (0, 1));
}

#[test]
fn a_retry_on_a_log_append_time_topic_gets_the_original_append_time() {
    let fx = Fixture::new();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..none()
    };
    let partition = fx.create(config);
    let batch = idempotent(3, 0, 0, 1);
    let first = partition.append(&batch, 0, 42_000).unwrap().wait().unwrap();
    assert_eq!(first.log_append_time_ms, Some(42_000));
    let retried = partition.append(&batch, 0, 99_000).unwrap().wait().unwrap();
    assert_eq!(retried.log_append_time_ms, Some(42_000));
    assert_eq!(retried.max_timestamp, 42_000);
}

#[test]
fn a_sequence_gap_is_out_of_order_and_writes_nothing() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    append(&partition, &idempotent(7, 0, 0, 3));
    let gap = partition.append(&idempotent(7, 0, 5, 1), 0, 0);
    assert!(
        matches!(
            gap,
            Err(PartitionError::OutOfOrderSequence {
                producer_id: 7,
                expected: 3,
                found: 5
            })
        ),
        "{gap:?}"
    );
    assert!(matches!(
        partition.append(&idempotent(7, 0, 2, 1), 0, 0),
        Err(PartitionError::OutOfOrderSequence {
            expected: 3,
            found: 2,
            ..
        })
    ));
    assert_eq!(partition.log_end_offset(), Offset(3));
    assert_eq!(offsets(append(&partition, &idempotent(7, 0, 3, 1))), (3, 3));
}

#[test]
fn a_new_producer_starts_at_sequence_zero_until_records_were_deleted() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    assert!(matches!(
        partition.append(&idempotent(9, 0, 4, 1), 0, 0),
        Err(PartitionError::OutOfOrderSequence {
            producer_id: 9,
            expected: 0,
            found: 4
        })
    ));
    append(&partition, &plain(3));
    partition.delete_records(Some(Offset(2))).unwrap();
    // Its earlier batches may have been among those deleted: as Kafka,
    // the producer is taken at its word.
    assert_eq!(offsets(append(&partition, &idempotent(9, 0, 4, 1))), (3, 3));
}

#[test]
fn an_older_epoch_is_fenced_and_a_newer_one_starts_at_zero() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    append(&partition, &idempotent(5, 1, 0, 2));
    assert!(matches!(
        partition.append(&idempotent(5, 0, 2, 1), 0, 0),
        Err(PartitionError::InvalidProducerEpoch {
            producer_id: 5,
            current: 1,
            found: 0
        })
    ));
    assert!(matches!(
        partition.append(&idempotent(5, 2, 2, 1), 0, 0),
        Err(PartitionError::OutOfOrderSequence {
            producer_id: 5,
            expected: 0,
            found: 2
        })
    ));
    assert_eq!(offsets(append(&partition, &idempotent(5, 2, 0, 1))), (2, 2));
    assert!(
        matches!(
            partition.append(&idempotent(5, 1, 2, 1), 0, 0),
            Err(PartitionError::InvalidProducerEpoch {
                current: 2,
                found: 1,
                ..
            })
        ),
        "the old epoch is fenced from now on"
    );
    assert_eq!(partition.log_end_offset(), Offset(3));
    let state = partition.producer_state(5).unwrap();
    assert_eq!(state.epoch, 2);
    assert_eq!(state.last_sequence(), Some(0));
}

#[test]
fn state_survives_a_clean_restart() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    let batches: Vec<Vec<u8>> = (0..3).map(|i| idempotent(7, 2, i * 2, 2)).collect();
    for batch in &batches {
        append(&partition, batch);
    }
    append(&partition, &idempotent(8, 0, 0, 1));
    let partition = fx.restart_cleanly(partition, none());
    assert_eq!(fx.snapshots(), ["00000000000000000007.snapshot"]);
    assert_eq!(offsets(append(&partition, &batches[0])), (0, 1));
    assert_eq!(offsets(append(&partition, &batches[2])), (4, 5));
    assert!(matches!(
        partition.append(&idempotent(7, 1, 6, 1), 0, 0),
        Err(PartitionError::InvalidProducerEpoch { current: 2, .. })
    ));
    assert!(matches!(
        partition.append(&idempotent(7, 2, 7, 1), 0, 0),
        Err(PartitionError::OutOfOrderSequence {
            expected: 6,
            found: 7,
            ..
        })
    ));
    assert_eq!(offsets(append(&partition, &idempotent(7, 2, 6, 1))), (7, 7));
    assert_eq!(
        partition.producer_state(8).unwrap().last_sequence(),
        Some(0)
    );
    assert_eq!(partition.active_producers().len(), 2);
}

#[test]
fn state_is_rebuilt_from_the_log_after_a_crash() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    let batches: Vec<Vec<u8>> = (0..4).map(|i| idempotent(7, 0, i, 1)).collect();
    for batch in &batches {
        append(&partition, batch);
    }
    let partition = fx.restart_after_crash(partition, none());
    assert_eq!(offsets(append(&partition, &batches[3])), (3, 3));
    assert!(matches!(
        partition.append(&idempotent(7, 0, 9, 1), 0, 0),
        Err(PartitionError::OutOfOrderSequence { expected: 4, .. })
    ));
    assert_eq!(offsets(append(&partition, &idempotent(7, 0, 4, 1))), (4, 4));
}

#[test]
fn after_a_crash_the_state_comes_from_the_last_roll_snapshot_and_the_batches_after_it() {
    let fx = Fixture::new();
    let partition = fx.create(small_segments());
    let early: Vec<Vec<u8>> = (0..3).map(|i| idempotent(8, 0, i, 1)).collect();
    for batch in &early {
        append(&partition, batch);
    }
    let batches: Vec<Vec<u8>> = (0..40).map(|i| idempotent(7, 0, i, 1)).collect();
    for batch in &batches[..30] {
        append(&partition, batch);
    }
    assert!(partition.log().segment_count() > 2, "the log rolled");
    let snapshot = *fx
        .snapshot_offsets()
        .last()
        .expect("a snapshot at each roll");
    // Producer 8's batches go; only the snapshot still knows of it.
    partition.delete_records(Some(Offset(snapshot))).unwrap();
    assert!(partition.log_start_offset() > Offset(2));
    for batch in &batches[30..] {
        append(&partition, batch);
    }
    let partition = fx.restart_after_crash(partition, small_segments());
    assert_eq!(
        offsets(append(&partition, &early[2])),
        (2, 2),
        "known from the snapshot"
    );
    assert!(matches!(
        partition.append(&idempotent(8, 0, 9, 1), 0, 0),
        Err(PartitionError::OutOfOrderSequence { expected: 3, .. })
    ));
    for (i, batch) in batches.iter().enumerate().skip(35) {
        let offset = i as i64 + 3;
        assert_eq!(
            offsets(append(&partition, batch)),
            (offset, offset),
            "known from the log after the snapshot"
        );
    }
    assert_eq!(
        offsets(append(&partition, &idempotent(7, 0, 40, 1))),
        (43, 43)
    );
}

#[test]
fn an_unreadable_snapshot_is_deleted_and_the_state_rebuilt_without_it() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    for i in 0..3 {
        append(&partition, &idempotent(7, 0, i, 1));
    }
    let partition = fx.restart_cleanly(partition, none());
    append(&partition, &idempotent(7, 0, 3, 1));
    let snapshot = fx.dir().join("00000000000000000003.snapshot");
    std::fs::write(&snapshot, b"not a snapshot").unwrap();
    let partition = fx.restart_after_crash(partition, none());
    assert_eq!(fx.snapshots(), ["00000000000000000004.snapshot"]);
    assert_eq!(offsets(append(&partition, &idempotent(7, 0, 2, 1))), (2, 2));
    assert_eq!(offsets(append(&partition, &idempotent(7, 0, 4, 1))), (4, 4));
}

#[test]
fn a_snapshot_beyond_the_log_end_is_ignored_and_deleted() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    append(&partition, &idempotent(7, 0, 0, 1));
    let partition = fx.restart_cleanly(partition, none());
    // A snapshot claiming more than the log holds, as a crash that lost
    // the log's tail after a roll's snapshot would leave.
    std::fs::copy(
        fx.dir().join("00000000000000000001.snapshot"),
        fx.dir().join("00000000000000000050.snapshot"),
    )
    .unwrap();
    let partition = fx.restart_after_crash(partition, none());
    assert_eq!(fx.snapshots(), ["00000000000000000001.snapshot"]);
    assert_eq!(offsets(append(&partition, &idempotent(7, 0, 1, 1))), (1, 1));
}

#[test]
fn truncation_forgets_the_batches_above_the_cut() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    let batches: Vec<Vec<u8>> = (0..3).map(|i| idempotent(7, 0, i * 2, 2)).collect();
    for batch in &batches {
        append(&partition, batch);
    }
    let partition = fx.restart_cleanly(partition, none()); // a snapshot at 6
    assert_eq!(partition.truncate_to(Offset(4)).unwrap(), Offset(4));
    assert!(
        fx.snapshots().is_empty(),
        "the snapshot beyond the cut is gone"
    );
    assert_eq!(
        partition.producer_state(7).unwrap().last_sequence(),
        Some(3)
    );
    assert_eq!(
        offsets(append(&partition, &batches[1])),
        (2, 3),
        "below the cut: still a duplicate"
    );
    assert_eq!(
        offsets(append(&partition, &batches[2])),
        (4, 5),
        "above the cut: written again"
    );
    assert_eq!(batches_in(&partition), 3);

    partition.truncate_fully_and_start_at(Offset(10)).unwrap();
    assert!(partition.producer_state(7).is_none());
    assert_eq!(
        offsets(append(&partition, &batches[0])),
        (10, 11),
        "an emptied partition remembers no producer"
    );
}

#[test]
fn idle_producers_expire() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    append(&partition, &idempotent(7, 0, 0, 1)); // timestamp 1_000
    append(&partition, &idempotent(8, 0, 0, 1));
    assert_eq!(partition.remove_expired_producers(1_000 + 99, 100), 0);
    assert_eq!(partition.remove_expired_producers(1_000 + 100, 100), 2);
    assert!(partition.active_producers().is_empty());
    assert_eq!(
        offsets(append(&partition, &idempotent(7, 0, 1, 1))),
        (2, 2),
        "an expired producer resumes where it is"
    );
}
