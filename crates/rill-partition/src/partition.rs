//! One partition: its log, its offsets (log start, high watermark, log
//! end), its leader-epoch cache, and Kafka's offset lookups over them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rill_record::Batches;
use rill_storage::{
    AppendTicket, Disk, Flusher, Log, LogConfig, LogRead, Offset, ReadError, RecoveryHints,
    RecoveryReport, RetentionOutcome,
};

use crate::error::PartitionError;
use crate::leader_epoch::LeaderEpochCache;
use crate::topic_partition::TopicPartition;

/// Bytes read per step when the epoch cache is rebuilt from the log.
const EPOCH_REBUILD_READ_BYTES: usize = 1 << 20;

/// How far a read may go, as Kafka's fetch isolation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchIsolation {
    /// Consumers: up to the high watermark.
    HighWatermark,
    /// Followers: up to the log end.
    LogEnd,
}

/// What a ListOffsets request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset (Kafka's -2).
    Earliest,
    /// The high watermark (Kafka's -1).
    Latest,
    /// The first record with the largest timestamp (Kafka's -3).
    MaxTimestamp,
    /// The first record whose timestamp is >= this, in milliseconds.
    Timestamp(i64),
}

/// A ListOffsets answer. `timestamp` is -1 for Earliest and Latest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampedOffset {
    pub offset: Offset,
    pub timestamp: i64,
}

/// A partition of a topic, with its log.
///
/// Thread-safe: share it in an `Arc`. Appends are serialized (they update
/// the leader-epoch cache in offset order); reads run in parallel.
#[derive(Debug)]
pub struct Partition {
    topic_partition: TopicPartition,
    dir: PathBuf,
    log: Log,
    epochs: Mutex<LeaderEpochCache>,
}

impl Partition {
    /// Creates an empty partition whose log lives in `dir`.
    pub fn create(
        dir: &Path,
        topic_partition: TopicPartition,
        config: LogConfig,
        flusher: &Flusher,
        disk: Arc<dyn Disk>,
        now_ms: i64,
    ) -> Result<Partition, PartitionError> {
        let log = Log::create(dir, config, Offset(0), flusher, disk, now_ms)?;
        let mut epochs = LeaderEpochCache::load(dir)?;
        epochs.clear()?;
        Ok(Partition {
            topic_partition,
            dir: dir.to_path_buf(),
            log,
            epochs: Mutex::new(epochs),
        })
    }

    /// Opens the partition in `dir`, recovering its log (see
    /// [`RecoveryHints`]) and fitting its epoch cache to what survived.
    pub fn open(
        dir: &Path,
        topic_partition: TopicPartition,
        config: LogConfig,
        hints: RecoveryHints,
        flusher: &Flusher,
        disk: Arc<dyn Disk>,
        now_ms: i64,
    ) -> Result<(Partition, RecoveryReport), PartitionError> {
        let (log, report) = Log::open(dir, config, hints, flusher, disk, now_ms)?;
        let epochs = match LeaderEpochCache::load(dir) {
            Ok(mut epochs) => {
                epochs.truncate_from_end(log.log_end_offset())?;
                epochs.truncate_from_start(log.log_start_offset())?;
                epochs
            }
            Err(error) => {
                tracing::warn!(partition = %topic_partition, %error, "rebuilding the leader-epoch cache from the log");
                rebuild_epochs(dir, &log)?
            }
        };
        let partition = Partition {
            topic_partition,
            dir: dir.to_path_buf(),
            log,
            epochs: Mutex::new(epochs),
        };
        Ok((partition, report))
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The partition's log, for what this type does not wrap (sizes,
    /// configuration, flushing).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Appends a producer's batch as leader in `leader_epoch` (see
    /// [`Log::append`]); a new epoch is recorded with the offset it starts
    /// at before the batch is written.
    pub fn append(
        &self,
        batch: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendTicket, PartitionError> {
        let mut epochs = self.epochs.lock();
        if leader_epoch >= 0
            && epochs
                .latest_epoch()
                .is_none_or(|latest| leader_epoch > latest)
        {
            epochs.assign(leader_epoch, self.log.log_end_offset())?;
        }
        Ok(self.log.append(batch, leader_epoch, now_ms)?)
    }

    /// Reads whole batches from `from` (see [`Log::read`]), up to the
    /// bound that `isolation` sets.
    pub fn read(
        &self,
        from: Offset,
        max_bytes: usize,
        isolation: FetchIsolation,
        min_one_batch: bool,
    ) -> Result<LogRead, ReadError> {
        let upper = match isolation {
            FetchIsolation::HighWatermark => self.high_watermark(),
            FetchIsolation::LogEnd => self.log.log_end_offset(),
        };
        self.log.read(from, max_bytes, upper, min_one_batch)
    }

    /// The offset below which consumers may read: on a single replica,
    /// what the flush policy allows acknowledging (after fdatasync under
    /// `fsync`).
    pub fn high_watermark(&self) -> Offset {
        self.log
            .acknowledged_end_offset()
            .max(self.log.log_start_offset())
    }

    pub fn log_start_offset(&self) -> Offset {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> Offset {
        self.log.log_end_offset()
    }

    /// ListOffsets, as Kafka answers it; `None` where Kafka answers offset
    /// -1 (no record at or after the timestamp, or an empty log). Only
    /// records below the high watermark are considered.
    pub fn list_offset(&self, spec: OffsetSpec) -> Result<Option<TimestampedOffset>, ReadError> {
        let high_watermark = self.high_watermark();
        let found = match spec {
            OffsetSpec::Earliest => Some((self.log.log_start_offset(), -1)),
            OffsetSpec::Latest => Some((high_watermark, -1)),
            OffsetSpec::MaxTimestamp => self.log.max_timestamp_record(high_watermark)?,
            OffsetSpec::Timestamp(target) => {
                self.log.offset_for_timestamp(target, high_watermark)?
            }
        };
        Ok(found.map(|(offset, timestamp)| TimestampedOffset { offset, timestamp }))
    }

    /// DeleteRecords: moves the log start offset to `before` (the high
    /// watermark if `None`, Kafka's -1) and returns the new log start (the
    /// low watermark). Past the high watermark is OFFSET_OUT_OF_RANGE.
    pub fn delete_records(&self, before: Option<Offset>) -> Result<Offset, PartitionError> {
        let high_watermark = self.high_watermark();
        let before = before.unwrap_or(high_watermark);
        if before < Offset(0) || before > high_watermark {
            return Err(PartitionError::DeleteBeyondHighWatermark {
                requested: before,
                high_watermark,
            });
        }
        let start = self.log.advance_log_start(before)?;
        self.epochs.lock().truncate_from_start(start)?;
        Ok(start)
    }

    /// OffsetForLeaderEpoch: (the largest epoch <= `epoch`, where it ended).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, Offset) {
        let epochs = self.epochs.lock();
        epochs.end_offset_for(epoch, self.log.log_end_offset())
    }

    /// The leader epoch of the last batch appended, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.lock().latest_epoch()
    }

    /// Cuts the log at `offset` (see [`Log::truncate_to`]) and forgets the
    /// epochs that began after it. Returns the new log end offset.
    pub fn truncate_to(&self, offset: Offset) -> Result<Offset, PartitionError> {
        let mut epochs = self.epochs.lock();
        let end = self.log.truncate_to(offset)?;
        epochs.truncate_from_end(end)?;
        epochs.truncate_from_start(self.log.log_start_offset())?;
        Ok(end)
    }

    /// Empties the partition, which starts again at `offset`.
    pub fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<(), PartitionError> {
        let mut epochs = self.epochs.lock();
        self.log.truncate_fully_and_start_at(offset)?;
        epochs.clear()?;
        Ok(())
    }

    /// Applies retention.ms and retention.bytes (see
    /// [`Log::apply_retention`]), never past the high watermark.
    pub fn apply_retention(&self, now_ms: i64) -> Result<RetentionOutcome, PartitionError> {
        let outcome = self.log.apply_retention(now_ms, self.high_watermark())?;
        if outcome.segments_deleted > 0 {
            self.epochs
                .lock()
                .truncate_from_start(outcome.log_start_offset)?;
        }
        Ok(outcome)
    }

    /// Closes the log cleanly and returns its end offset (the recovery
    /// point for the checkpoint).
    pub fn close(&self) -> Result<Offset, PartitionError> {
        Ok(self.log.close()?)
    }
}

/// Rebuilds an epoch cache from the partitionLeaderEpoch of every batch,
/// when the checkpoint is unreadable.
fn rebuild_epochs(dir: &Path, log: &Log) -> Result<LeaderEpochCache, PartitionError> {
    let path = dir.join(crate::leader_epoch::LEADER_EPOCH_CHECKPOINT);
    // The unreadable file goes; the cache is rebuilt from scratch.
    if let Err(error) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), %error, "could not remove the corrupt epoch checkpoint");
    }
    let mut epochs = LeaderEpochCache::load(dir)?;
    let end = log.log_end_offset();
    let mut next = log.log_start_offset();
    while next < end {
        let read = log.read(next, EPOCH_REBUILD_READ_BYTES, end, true)?;
        if read.bytes.is_empty() {
            break;
        }
        for batch in Batches::new(&read.bytes) {
            epochs.assign(
                batch.partition_leader_epoch(),
                Offset(batch.base_offset()).max(next),
            )?;
            next = Offset(batch.next_offset());
        }
    }
    Ok(epochs)
}
