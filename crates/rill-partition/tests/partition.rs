//! A partition as a broker uses it: high watermark, ListOffsets,
//! DeleteRecords, leader epochs, truncation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_partition::{
    FetchIsolation, LEADER_EPOCH_CHECKPOINT, OffsetSpec, Partition, PartitionError,
    TimestampedOffset, TopicPartition,
};
use rill_record::{BatchBuilder, BatchView, NewRecord};
use rill_storage::testing::FaultyDisk;
use rill_storage::{FlushPolicy, Flusher, LogConfig, Offset, RecoveryHints};

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

    fn create(&self, config: LogConfig) -> Partition {
        Partition::create(
            &self.root.path().join("t-0"),
            tp(),
            config,
            &self.flusher,
            self.disk.clone(),
            0,
        )
        .unwrap()
    }

    fn open(&self, config: LogConfig, hints: RecoveryHints) -> Partition {
        Partition::open(
            &self.root.path().join("t-0"),
            tp(),
            config,
            hints,
            &self.flusher,
            self.disk.clone(),
            0,
        )
        .unwrap()
        .0
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn batch(count: usize, timestamp: i64) -> Vec<u8> {
    let records: Vec<NewRecord<'_>> = (0..count)
        .map(|i| NewRecord {
            timestamp: timestamp + i as i64,
            key: None,
            value: Some(b"v"),
            headers: &[],
        })
        .collect();
    BatchBuilder::new(timestamp)
        .with_records(&records)
        .finish()
        .unwrap()
}

fn none() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::None,
        ..LogConfig::default()
    }
}

#[test]
fn under_fsync_consumers_see_a_batch_only_once_it_is_synced() {
    let fx = Fixture::new();
    let partition = fx.create(LogConfig::default());
    fx.disk.hold_syncs(true);
    let ticket = partition.append(&batch(3, 0), 0, 0).unwrap();
    assert_eq!(partition.log_end_offset(), Offset(3));
    assert_eq!(partition.high_watermark(), Offset(0));
    assert!(!ticket.is_ready(), "not acknowledged before the sync");
    let consumer = partition
        .read(Offset(0), 1 << 20, FetchIsolation::HighWatermark, true)
        .unwrap();
    assert!(
        consumer.bytes.is_empty(),
        "a consumer must not see unsynced data"
    );
    let follower = partition
        .read(Offset(0), 1 << 20, FetchIsolation::LogEnd, true)
        .unwrap();
    assert_eq!(BatchView::new(&follower.bytes).unwrap().records_count(), 3);
    assert_eq!(
        partition
            .list_offset(OffsetSpec::Latest)
            .unwrap()
            .unwrap()
            .offset,
        Offset(0)
    );
    fx.disk.hold_syncs(false);
    ticket.wait().unwrap();
    assert_eq!(partition.high_watermark(), Offset(3));
    let consumer = partition
        .read(Offset(0), 1 << 20, FetchIsolation::HighWatermark, true)
        .unwrap();
    assert!(!consumer.bytes.is_empty());
}

#[test]
fn list_offsets_answers_as_kafka_does() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    let empty = |spec| partition.list_offset(spec).unwrap();
    assert_eq!(
        empty(OffsetSpec::Earliest),
        Some(TimestampedOffset {
            offset: Offset(0),
            timestamp: -1
        })
    );
    assert_eq!(
        empty(OffsetSpec::Latest),
        Some(TimestampedOffset {
            offset: Offset(0),
            timestamp: -1
        })
    );
    assert_eq!(empty(OffsetSpec::MaxTimestamp), None);
    assert_eq!(empty(OffsetSpec::Timestamp(0)), None);
    partition
        .append(&batch(5, 1_000), 0, 0)
        .unwrap()
        .wait()
        .unwrap(); // 0..4 at 1000..1004
    partition
        .append(&batch(5, 900), 0, 0)
        .unwrap()
        .wait()
        .unwrap(); // 5..9 at 900..904
    partition
        .append(&batch(2, 2_000), 0, 0)
        .unwrap()
        .wait()
        .unwrap(); // 10..11 at 2000..2001
    let at = |spec| {
        partition
            .list_offset(spec)
            .unwrap()
            .map(|t| (t.offset.value(), t.timestamp))
    };
    assert_eq!(at(OffsetSpec::Latest), Some((12, -1)));
    assert_eq!(
        at(OffsetSpec::Timestamp(902)),
        Some((0, 1_000)),
        "the first record at or after, in offset order"
    );
    assert_eq!(at(OffsetSpec::Timestamp(1_003)), Some((3, 1_003)));
    assert_eq!(at(OffsetSpec::Timestamp(1_005)), Some((10, 2_000)));
    assert_eq!(at(OffsetSpec::Timestamp(2_002)), None);
    assert_eq!(at(OffsetSpec::MaxTimestamp), Some((11, 2_001)));
    partition.delete_records(Some(Offset(4))).unwrap();
    assert_eq!(at(OffsetSpec::Earliest), Some((4, -1)));
    assert_eq!(
        at(OffsetSpec::Timestamp(0)),
        Some((4, 1_004)),
        "records below the log start are gone"
    );
}

#[test]
fn delete_records_moves_the_low_watermark_up_to_the_high_watermark() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    for _ in 0..4 {
        partition
            .append(&batch(5, 0), 0, 0)
            .unwrap()
            .wait()
            .unwrap();
    }
    assert_eq!(
        partition.delete_records(Some(Offset(7))).unwrap(),
        Offset(7)
    );
    assert_eq!(
        partition.delete_records(Some(Offset(3))).unwrap(),
        Offset(7),
        "never moves back"
    );
    assert!(matches!(
        partition.delete_records(Some(Offset(21))),
        Err(PartitionError::DeleteBeyondHighWatermark {
            requested: Offset(21),
            high_watermark: Offset(20)
        })
    ));
    assert_eq!(
        partition.delete_records(None).unwrap(),
        Offset(20),
        "-1 means the high watermark"
    );
    assert!(
        partition
            .read(Offset(19), 100, FetchIsolation::HighWatermark, true)
            .is_err()
    );
    assert!(
        partition
            .read(Offset(20), 100, FetchIsolation::HighWatermark, true)
            .unwrap()
            .bytes
            .is_empty()
    );
}

#[test]
fn leader_epochs_are_recorded_checkpointed_and_truncated() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    for (epoch, count) in [(0, 3), (0, 2), (2, 4), (2, 1), (5, 2)] {
        partition
            .append(&batch(count, 0), epoch, 0)
            .unwrap()
            .wait()
            .unwrap();
    }
    // Epoch 0 began at 0, 2 at 5, 5 at 10; the log ends at 12.
    assert_eq!(partition.end_offset_for_epoch(5), (5, Offset(12)));
    assert_eq!(partition.end_offset_for_epoch(2), (2, Offset(10)));
    assert_eq!(partition.end_offset_for_epoch(1), (0, Offset(5)));
    assert_eq!(partition.end_offset_for_epoch(9), (-1, Offset(-1)));
    let read = partition
        .read(Offset(5), 1 << 20, FetchIsolation::LogEnd, true)
        .unwrap();
    assert_eq!(
        BatchView::new(&read.bytes)
            .unwrap()
            .partition_leader_epoch(),
        2,
        "the epoch is stamped in the batch"
    );
    // A follower told to truncate at epoch 2's end loses epoch 5.
    assert_eq!(partition.truncate_to(Offset(10)).unwrap(), Offset(10));
    assert_eq!(partition.latest_epoch(), Some(2));
    assert_eq!(partition.end_offset_for_epoch(2), (2, Offset(10)));
    let checkpoint =
        std::fs::read_to_string(fx.root.path().join("t-0").join(LEADER_EPOCH_CHECKPOINT)).unwrap();
    assert_eq!(checkpoint, "0\n2\n0 0\n2 5\n");
    partition.truncate_fully_and_start_at(Offset(100)).unwrap();
    assert_eq!(partition.latest_epoch(), None);
}

#[test]
fn epochs_survive_restarts_and_a_corrupt_checkpoint_is_rebuilt_from_the_log() {
    let fx = Fixture::new();
    let partition = fx.create(none());
    for epoch in [1, 1, 3, 4] {
        partition
            .append(&batch(2, 0), epoch, 0)
            .unwrap()
            .wait()
            .unwrap();
    }
    let expected = [(1, Offset(4)), (3, Offset(6)), (4, Offset(8))];
    let end = partition.close().unwrap();
    let hints = RecoveryHints {
        clean_shutdown: true,
        recovery_point: end,
        log_start_offset: Offset(0),
    };
    let partition = fx.open(none(), hints);
    for (epoch, end) in expected {
        assert_eq!(partition.end_offset_for_epoch(epoch), (epoch, end));
    }
    drop(partition);
    std::fs::write(
        fx.root.path().join("t-0").join(LEADER_EPOCH_CHECKPOINT),
        "0\n9\ngarbage\n",
    )
    .unwrap();
    let partition = fx.open(none(), RecoveryHints::unknown());
    for (epoch, end) in expected {
        assert_eq!(partition.end_offset_for_epoch(epoch), (epoch, end));
    }
}

#[test]
fn an_interval_partition_acknowledges_from_the_page_cache_and_syncs_on_time() {
    let fx = Fixture::new();
    let partition = fx.create(LogConfig {
        flush: FlushPolicy::Interval {
            messages: 1_000,
            ms: 10,
        },
        ..LogConfig::default()
    });
    partition
        .append(&batch(2, 0), 0, 0)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(partition.high_watermark(), Offset(2), "visible at once");
    let deadline = Instant::now() + Duration::from_secs(10);
    while partition.log().flushed_end_offset() < Offset(2) {
        assert!(Instant::now() < deadline, "flush.ms never synced");
        std::thread::sleep(Duration::from_millis(2));
    }
}
