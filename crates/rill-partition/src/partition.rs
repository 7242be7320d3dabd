//! One partition: its log, its offsets (log start, high watermark, last
//! stable offset, log end), its leader-epoch cache, its producer and
//! transaction state, and Kafka's offset lookups over them; appends as
//! leader (a producer's batch, a coordinator's batch or transaction
//! marker) or as follower (the leader's batches, unchanged).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rill_record::{Batches, BatchesEnd, EndTxnMarker, TimestampType, end_txn_marker};
use rill_storage::{
    AppendError, AppendInfo, AppendTicket, Disk, Flusher, Log, LogConfig, LogRead, Offset,
    ReadError, RecoveryHints, RecoveryReport, ReplicatedBatch, RetentionOutcome, ValidatedBatch,
};

use crate::error::PartitionError;
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::{
    AppendCheck, BatchKind, BatchMetadata, Origin, ProducerBatch, ProducerStateEntry,
    ProducerStateManager,
};
use crate::topic_partition::TopicPartition;
use crate::txn_state::MarkerBatch;
use crate::verification::{VerificationGuard, Verifications};

/// Bytes read per step when the epoch cache is rebuilt from the log.
const EPOCH_REBUILD_READ_BYTES: usize = 1 << 20;

/// How far a read may go, as Kafka's fetch isolation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchIsolation {
    /// Consumers: up to the high watermark.
    HighWatermark,
    /// Followers: up to the log end.
    LogEnd,
    /// read_committed consumers: up to the last stable offset.
    TxnCommitted,
}

/// A transaction aborted in a fetched range, as a Fetch response lists
/// it for a read_committed consumer: the consumer skips the producer's
/// records from `first_offset` until it meets the ABORT marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: Offset,
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
/// Thread-safe: share it in an `Arc`. Appends are serialized — the
/// producer checks, the write and the updates of the leader-epoch cache
/// and producer state happen under one lock, in offset order — and so are
/// truncations; reads run in parallel. The replicated high watermark has
/// a lock of its own, taken after the append lock and before the log's,
/// so that updating it never waits for an append.
#[derive(Debug)]
pub struct Partition {
    topic_partition: TopicPartition,
    dir: PathBuf,
    log: Log,
    state: Mutex<AppendState>,
    /// The high watermark the replication layer keeps, once it has set
    /// one (see [`Partition::set_high_watermark`]); `None` on a single
    /// broker, where the high watermark is the log's acknowledged end.
    /// Never above the log end offset as of its last update: truncations
    /// lower it under this lock after cutting the log.
    replicated_high_watermark: Mutex<Option<Offset>>,
    /// True only while no transaction is open or awaiting the replication
    /// of its marker, so that the last stable offset is the high
    /// watermark and a fetch need not take the append lock to learn it
    /// (see [`Partition::last_stable_offset`]). Cleared, under the append
    /// lock, before anything that may open a transaction is written (a
    /// transactional batch, a marker, a follower's batches, a
    /// truncation); set again by `last_stable_offset` once it finds none.
    txn_quiet: AtomicBool,
}

/// What the partition keeps beside its log, in step with it.
#[derive(Debug)]
struct AppendState {
    epochs: LeaderEpochCache,
    producers: ProducerStateManager,
    /// The active segment's base offset when last looked at: when it
    /// changes, the log rolled and a producer snapshot is due.
    active_segment_base: Offset,
    /// KIP-890's guards handed out to transactions being verified.
    verifications: Verifications,
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
        let log = Log::create(dir, config, Offset(0), flusher, Arc::clone(&disk), now_ms)?;
        let mut epochs = LeaderEpochCache::load(dir, Arc::clone(&disk))?;
        epochs.clear()?;
        let producers = ProducerStateManager::create(dir, Offset(0), disk)?;
        Ok(Partition::assemble(
            topic_partition,
            dir,
            log,
            epochs,
            producers,
        ))
    }

    /// Opens the partition in `dir`, recovering its log (see
    /// [`RecoveryHints`]) and fitting its epoch cache and producer state to
    /// what survived. After a clean shutdown the producer state comes from
    /// the snapshot written at close; otherwise from the latest snapshot
    /// below the log end and the batch headers after it (the whole log if
    /// there is none).
    pub fn open(
        dir: &Path,
        topic_partition: TopicPartition,
        config: LogConfig,
        hints: RecoveryHints,
        flusher: &Flusher,
        disk: Arc<dyn Disk>,
        now_ms: i64,
    ) -> Result<(Partition, RecoveryReport), PartitionError> {
        let (log, report) = Log::open(dir, config, hints, flusher, Arc::clone(&disk), now_ms)?;
        let epochs = match LeaderEpochCache::load(dir, Arc::clone(&disk)) {
            Ok(mut epochs) => {
                epochs.fit_to_log(log.log_start_offset(), log.log_end_offset());
                epochs
            }
            Err(error) => {
                tracing::warn!(partition = %topic_partition, %error, "rebuilding the leader-epoch cache from the log");
                rebuild_epochs(dir, &log, &disk)?
            }
        };
        // After a crash, what was not synced (the aborted-transaction
        // index's tail among it) is replayed from a snapshot at or below
        // the recovery point.
        let replay_from_at_most = if hints.clean_shutdown {
            Offset(i64::MAX)
        } else {
            hints.recovery_point
        };
        let producers = ProducerStateManager::load(dir, &log, disk, replay_from_at_most)?;
        let partition = Partition::assemble(topic_partition, dir, log, epochs, producers);
        Ok((partition, report))
    }

    fn assemble(
        topic_partition: TopicPartition,
        dir: &Path,
        log: Log,
        epochs: LeaderEpochCache,
        producers: ProducerStateManager,
    ) -> Partition {
        let active_segment_base = log.active_segment_base_offset();
        Partition {
            topic_partition,
            dir: dir.to_path_buf(),
            log,
            state: Mutex::new(AppendState {
                epochs,
                producers,
                active_segment_base,
                verifications: Verifications::default(),
            }),
            replicated_high_watermark: Mutex::new(None),
            txn_quiet: AtomicBool::new(false),
        }
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The partition's log, for what this type does not wrap (sizes,
    /// configuration, flushing). Appending or truncating through it
    /// bypasses the partition's epoch cache and producer state (the next
    /// append brings the producer state up to date, at a cost).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Appends a producer's batch as leader in `leader_epoch` (see
    /// [`Log::append`]); a new epoch is recorded with the offset it starts
    /// at before the batch is written.
    ///
    /// A batch with a producer id is first checked against that
    /// producer's state, as a Kafka leader does: an older producer epoch
    /// is [`PartitionError::InvalidProducerEpoch`]; a sequence that does
    /// not follow the last one (or a new epoch not starting at 0) is
    /// [`PartitionError::OutOfOrderSequence`]; and a retry of one of the
    /// producer's last five batches writes nothing and gets a ticket that
    /// resolves to the original batch's offsets, once those may be
    /// acknowledged. Every way, the caller waits on the ticket alike.
    ///
    /// A transactional batch opens its producer's transaction here if none
    /// is open; a non-transactional one while it is open is
    /// [`PartitionError::InvalidTxnState`]. A control batch is refused
    /// ([`rill_record::BatchError::ControlBatchFromClient`]): markers come
    /// from [`Partition::append_marker`].
    pub fn append(
        &self,
        batch: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendTicket, PartitionError> {
        self.append_from_client(batch, None, leader_epoch, now_ms)
    }

    /// KIP-890: starts verifying `producer_id`'s transaction at `epoch`
    /// before its batch is written here. Returns
    /// [`VerificationGuard::OPEN_TRANSACTION`] if the transaction is open
    /// here already (nothing to ask), else a guard to ask the coordinator
    /// with and then hand to [`Partition::append_verified`].
    pub fn start_verification(
        &self,
        producer_id: i64,
        epoch: i16,
        now_ms: i64,
    ) -> VerificationGuard {
        let mut state = self.state.lock();
        let open = state
            .producers
            .entry(producer_id)
            .is_some_and(|entry| entry.epoch == epoch && entry.current_txn_first_offset.is_some());
        if open {
            VerificationGuard::OPEN_TRANSACTION
        } else {
            state.verifications.start(producer_id, epoch, now_ms)
        }
    }

    /// Takes back `guard` (see [`Partition::start_verification`]) when
    /// the coordinator refused the transaction, or could not be asked: no
    /// append will bring it.
    pub fn abandon_verification(&self, producer_id: i64, guard: VerificationGuard) {
        self.state.lock().verifications.abandon(producer_id, guard);
    }

    /// As [`Partition::append`], for a batch whose transaction was
    /// verified with `guard` (see [`Partition::start_verification`]): a
    /// transactional batch whose producer has no open transaction here is
    /// written only if `guard` is still out — no marker for the producer
    /// came since it was handed out — else
    /// [`PartitionError::TransactionNotVerified`] and nothing is written.
    pub fn append_verified(
        &self,
        batch: &[u8],
        guard: VerificationGuard,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendTicket, PartitionError> {
        self.append_from_client(batch, Some(guard), leader_epoch, now_ms)
    }

    /// [`Partition::append`] and [`Partition::append_verified`].
    fn append_from_client(
        &self,
        batch: &[u8],
        guard: Option<VerificationGuard>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendTicket, PartitionError> {
        // An offline log refuses even a retry that would write nothing:
        // the original it would point at may be what was lost.
        if let Some(failed) = self.log.failure() {
            return Err(AppendError::Offline(failed).into());
        }
        // Validation (the CRC) runs before the lock, in parallel.
        let mut stored = Vec::new();
        let batch = self.log.validate(batch, &mut stored)?;
        self.append_checked(batch, (Origin::Client, guard), leader_epoch, now_ms)
    }

    /// Appends a batch a coordinator on this broker wrote to its internal
    /// topic (Kafka's AppendOrigin.COORDINATOR: e.g. a transactional
    /// offset commit into `__consumer_offsets`, which carries the
    /// transaction's producer id and epoch and no sequence). As
    /// [`Partition::append`], but without sequence checks or duplicate
    /// detection; the producer epoch and transaction checks stand, and a
    /// transactional batch opens the producer's transaction.
    pub fn append_from_coordinator(
        &self,
        batch: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendTicket, PartitionError> {
        if let Some(failed) = self.log.failure() {
            return Err(AppendError::Offline(failed).into());
        }
        let batch = self.log.validate_coordinator(batch)?;
        self.append_checked(batch, (Origin::Coordinator, None), leader_epoch, now_ms)
    }

    /// The locked part of [`Partition::append`],
    /// [`Partition::append_verified`] (with its guard) and
    /// [`Partition::append_from_coordinator`].
    fn append_checked(
        &self,
        batch: ValidatedBatch<'_>,
        (origin, guard): (Origin, Option<VerificationGuard>),
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendTicket, PartitionError> {
        let view = batch.view();
        let producer = ProducerBatch::of(&view);
        let mut state = self.state.lock();
        state.producers.catch_up(&self.log)?;
        let config = self.log.config();
        if let Some(producer) = &producer {
            if let AppendCheck::Duplicate(original) = state.producers.check(producer, origin)? {
                let info = self.duplicate_info(original, &config);
                return Ok(self.log.ticket_for_appended(info));
            }
            if producer.transactional {
                if let Some(guard) = guard {
                    let (id, epoch) = (producer.producer_id, producer.epoch);
                    let open = state.producers.entry(id).is_some_and(|entry| {
                        entry.epoch == epoch && entry.current_txn_first_offset.is_some()
                    });
                    if !open && !state.verifications.holds(id, epoch, guard) {
                        return Err(PartitionError::TransactionNotVerified { producer_id: id });
                    }
                }
            }
        }
        let base_offset = state.producers.map_end();
        Self::record_epoch_start(&mut state, leader_epoch, base_offset)?;
        if view.attributes().is_transactional() {
            self.txn_quiet.store(false, Ordering::SeqCst);
        }
        let ticket = self.log.append_validated(batch, leader_epoch, now_ms)?;
        if let Some(producer) = producer.as_ref().filter(|p| p.transactional) {
            // Its transaction is open here now: nothing left to verify.
            state.verifications.end(producer.producer_id);
        }
        let last_offset = base_offset.plus(i64::from(view.records_count()) - 1);
        let timestamp = match config.timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => view.max_timestamp(),
        };
        let kind = producer.map_or(BatchKind::Plain, BatchKind::Data);
        state
            .producers
            .appended(&kind, base_offset, last_offset, timestamp);
        self.snapshot_if_rolled(&mut state);
        Ok(ticket)
    }

    /// Writes the marker that ends `producer_id`'s transaction in this
    /// partition, as the leader in `leader_epoch`, when its transaction
    /// coordinator asks (WriteTxnMarkers): a control batch built with
    /// [`rill_record::end_txn_marker`], stamped `now_ms`, at the next
    /// offset (Kafka's AppendOrigin.COORDINATOR: no sequence checks).
    ///
    /// Refused, with nothing written, as Kafka refuses it: a producer
    /// epoch older than the producer's is
    /// [`PartitionError::InvalidProducerEpoch`]; a coordinator epoch older
    /// than the one of the producer's last marker here is
    /// [`PartitionError::TransactionCoordinatorFenced`]. A producer with no
    /// open transaction here still gets its marker (it ends nothing).
    ///
    /// The marker ends the open transaction; an ABORT records it in the
    /// aborted-transaction index (see [`Partition::aborted_transactions`])
    /// with the marker. The last stable offset passes the transaction once
    /// the high watermark passes the marker.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTxnMarker,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendTicket, PartitionError> {
        if let Some(failed) = self.log.failure() {
            return Err(AppendError::Offline(failed).into());
        }
        let bytes = end_txn_marker(producer_id, producer_epoch, marker, now_ms)
            .map_err(AppendError::InvalidBatch)?;
        let batch = MarkerBatch {
            producer_id,
            epoch: producer_epoch,
            marker,
        };
        let mut state = self.state.lock();
        state.producers.catch_up(&self.log)?;
        state.producers.check_marker(&batch)?;
        // A transaction being verified here may be what this ends.
        state.verifications.end(producer_id);
        let offset = state.producers.map_end();
        let aborted = state.producers.aborted_by(&batch, offset);
        Self::record_epoch_start(&mut state, leader_epoch, offset)?;
        self.txn_quiet.store(false, Ordering::SeqCst);
        let ticket = self
            .log
            .append_control(&bytes, leader_epoch, now_ms, aborted)?;
        state
            .producers
            .appended(&BatchKind::Marker(batch), offset, offset, now_ms);
        self.snapshot_if_rolled(&mut state);
        Ok(ticket)
    }

    /// Records `leader_epoch` as starting at `base_offset` if it is newer
    /// than the latest epoch in the cache (a negative one never is), and
    /// writes the cache's file if an open left it behind.
    fn record_epoch_start(
        state: &mut AppendState,
        leader_epoch: i32,
        base_offset: Offset,
    ) -> Result<(), PartitionError> {
        state.epochs.assign(leader_epoch, base_offset)?;
        Ok(())
    }

    /// Appends, as a follower, the record set of a fetch response from the
    /// leader: zero or more whole batches, possibly followed by one
    /// partial batch, which is ignored (a fetch response may end with a
    /// truncated batch; Kafka's follower drops it too, and fetches it
    /// whole next time). Each whole batch is written unchanged, in order
    /// (see [`Log::append_replicated`]). Returns the ticket of the last
    /// batch, or `None` when there was no whole batch.
    ///
    /// Every batch is checked (framing, CRC-32C, offset range; see
    /// [`rill_record::validate_replicated`]) before any is written, and
    /// the batches must follow the log end and each other in offset order
    /// ([`AppendError::BaseOffsetBelowLogEnd`] otherwise): a refused record
    /// set changes nothing. A failure while writing (disk full, I/O) leaves
    /// the batches before it appended; the log end offset says how far.
    ///
    /// Under the append lock, before each batch is written, its
    /// partitionLeaderEpoch is recorded in the leader-epoch cache at its
    /// base offset when it is newer than the latest epoch there; after
    /// it, the producer state takes the batch's producer id, epoch and
    /// sequences as they are, without the leader's checks (as Kafka's
    /// follower: producer state replicates with the data) — a
    /// transactional batch opens its producer's transaction, a marker
    /// ends it, and an ABORT marker's entry goes into the
    /// aborted-transaction index with it (an unreadable control record is
    /// logged and taken as no marker, as Kafka does) — and a
    /// producer snapshot is written when the log rolled, as in
    /// [`Partition::append`].
    ///
    /// The one ticket covers every batch of the call: it resolves once
    /// all of them may be acknowledged. Under `fsync` each batch's ticket
    /// waits for a sync, and the sync that covers the last batch's end
    /// covers every earlier offset (the flushed end only grows, sealed
    /// segments are synced with the active one, and a truncation syncs
    /// everything before it cuts), so group commit makes the whole record
    /// set durable at once; under `interval` the ticket also waits for the
    /// sync an earlier batch of the call is waiting for (see
    /// [`AppendTicket::covering`]).
    pub fn append_replicated(
        &self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<Option<AppendTicket>, PartitionError> {
        if let Some(failed) = self.log.failure() {
            return Err(AppendError::Offline(failed).into());
        }
        // Validation (the CRCs) runs before the lock.
        let batches = self.validate_record_set(records)?;
        let Some(first) = batches.first() else {
            return Ok(None);
        };
        let mut state = self.state.lock();
        state.producers.catch_up(&self.log)?;
        self.txn_quiet.store(false, Ordering::SeqCst);
        // Checked before the epoch cache can change: a record set from
        // below the log end changes nothing (the log checks each batch
        // again as it writes it).
        first.check_follows(self.log.log_end_offset())?;
        let mut ticket: Option<AppendTicket> = None;
        for batch in batches {
            let appended = self.append_replicated_batch(&mut state, batch, now_ms)?;
            ticket = Some(match ticket {
                Some(earlier) => appended.covering(earlier),
                None => appended,
            });
        }
        Ok(ticket)
    }

    /// The whole batches of a fetch response's record set, each validated
    /// and following the one before it; a partial batch at the end is
    /// left out.
    fn validate_record_set<'a>(
        &self,
        records: &'a [u8],
    ) -> Result<Vec<ReplicatedBatch<'a>>, AppendError> {
        let mut split = Batches::new(records);
        let mut batches: Vec<ReplicatedBatch<'a>> = Vec::new();
        for view in split.by_ref() {
            let batch = self.log.validate_replicated(view.as_bytes())?;
            if let Some(previous) = batches.last() {
                batch.check_follows(previous.last_offset().plus(1))?;
            }
            batches.push(batch);
        }
        match split.end() {
            Some(BatchesEnd::Invalid { error, .. }) => {
                Err(AppendError::InvalidBatch(error.clone()))
            }
            Some(BatchesEnd::Complete | BatchesEnd::Partial { .. }) | None => Ok(batches),
        }
    }

    /// One batch of [`Partition::append_replicated`], under the append lock.
    fn append_replicated_batch(
        &self,
        state: &mut AppendState,
        batch: ReplicatedBatch<'_>,
        now_ms: i64,
    ) -> Result<AppendTicket, PartitionError> {
        let view = batch.view();
        let (base_offset, last_offset) = (batch.base_offset(), batch.last_offset());
        let epoch = view.partition_leader_epoch();
        let new_epoch = epoch >= 0 && state.epochs.latest_epoch().is_none_or(|l| epoch > l);
        // Also for an old epoch: writes the file if an open left it behind.
        state.epochs.assign(epoch, base_offset)?;
        let kind = BatchKind::of(&view);
        let aborted = match &kind {
            BatchKind::Marker(marker) => state.producers.aborted_by(marker, base_offset),
            BatchKind::Plain | BatchKind::Data(_) => None,
        };
        let ticket = match self.log.append_replicated_aborting(batch, now_ms, aborted) {
            Ok(ticket) => ticket,
            Err(error) => {
                if new_epoch {
                    // Nothing of the batch was written: the epoch it
                    // would have started is forgotten again.
                    state.epochs.truncate_from_end(self.log.log_end_offset())?;
                }
                return Err(error.into());
            }
        };
        state
            .producers
            .replicated(&kind, base_offset, last_offset, view.max_timestamp());
        self.snapshot_if_rolled(state);
        Ok(ticket)
    }

    /// Records that this broker leads the partition from `epoch` on, as a
    /// broker does when it becomes leader: if `epoch` is newer than the
    /// latest in the leader-epoch cache, it begins at the log end offset,
    /// so OffsetForLeaderEpoch answers for it before the first produce.
    /// An epoch not newer than the latest (or negative) changes nothing,
    /// so a later [`Partition::append`] in the same epoch adds no second
    /// entry, and calling this twice is harmless.
    pub fn assign_leader_epoch(&self, epoch: i32) -> Result<(), PartitionError> {
        let mut state = self.state.lock();
        if epoch >= 0
            && state
                .epochs
                .latest_epoch()
                .is_none_or(|latest| epoch > latest)
        {
            state.epochs.assign(epoch, self.log.log_end_offset())?;
        }
        Ok(())
    }

    /// What the append of `original` answered, for its duplicate.
    fn duplicate_info(&self, original: BatchMetadata, config: &LogConfig) -> AppendInfo {
        AppendInfo {
            base_offset: original.first_offset,
            last_offset: original.last_offset,
            log_append_time_ms: (config.timestamp_type == TimestampType::LogAppendTime)
                .then_some(original.timestamp),
            max_timestamp: original.timestamp,
            log_start_offset: self.log.log_start_offset(),
        }
    }

    /// Writes a producer snapshot when the log has rolled since the last
    /// look, as Kafka does, so that recovery after a crash replays at most
    /// about a segment of batch headers. A failure costs only that: the
    /// append stands.
    fn snapshot_if_rolled(&self, state: &mut AppendState) {
        let base = self.log.active_segment_base_offset();
        if base == state.active_segment_base {
            return;
        }
        state.active_segment_base = base;
        if let Err(error) = state.producers.take_snapshot() {
            tracing::warn!(partition = %self.topic_partition, %error,
                "could not write a producer snapshot; recovery will replay more of the log");
        }
    }

    /// What this partition knows of `producer_id`, if anything.
    pub fn producer_state(&self, producer_id: i64) -> Option<ProducerStateEntry> {
        self.state.lock().producers.entry(producer_id).cloned()
    }

    /// Whether `producer_id` has a transaction open here at `epoch`
    /// (KIP-890's verification skips the batches of such a transaction).
    pub fn has_open_transaction(&self, producer_id: i64, epoch: i16) -> bool {
        self.state
            .lock()
            .producers
            .entry(producer_id)
            .is_some_and(|entry| entry.epoch == epoch && entry.current_txn_first_offset.is_some())
    }

    /// Every producer this partition knows, by id (DescribeProducers).
    pub fn active_producers(&self) -> Vec<ProducerStateEntry> {
        self.state.lock().producers.entries().cloned().collect()
    }

    /// Forgets producers whose last batch's timestamp is `expiration_ms`
    /// (Kafka's producer.id.expiration.ms) or more before `now_ms`, but
    /// never one whose transaction is open; returns how many.
    pub fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        let mut state = self.state.lock();
        state.verifications.remove_expired(now_ms, expiration_ms);
        state.producers.remove_expired(now_ms, expiration_ms)
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
        let upper = self.upper_bound(isolation);
        self.log.read(from, max_bytes, upper, min_one_batch)
    }

    /// The offset reads under `isolation` stop at.
    fn upper_bound(&self, isolation: FetchIsolation) -> Offset {
        match isolation {
            FetchIsolation::HighWatermark => self.high_watermark(),
            FetchIsolation::LogEnd => self.log.log_end_offset(),
            FetchIsolation::TxnCommitted => self.last_stable_offset(),
        }
    }

    /// The offset below which read_committed consumers may read (Kafka's
    /// last stable offset): the first offset of the earliest transaction
    /// still open, or ended by a marker the high watermark has not passed
    /// yet, if that is below the high watermark; else the high watermark.
    /// Never below the log start offset.
    ///
    /// Ended transactions are tracked from the last producer snapshot on:
    /// after a restart, one ended before it is taken as replicated (as in
    /// Kafka).
    pub fn last_stable_offset(&self) -> Offset {
        if self.txn_quiet.load(Ordering::SeqCst) {
            return self.high_watermark();
        }
        let mut state = self.state.lock();
        let high_watermark = self.high_watermark();
        let log_start = self.log.log_start_offset();
        let stable = state
            .producers
            .last_stable_offset(high_watermark, log_start);
        if state.producers.no_transactions() {
            self.txn_quiet.store(true, Ordering::SeqCst);
        }
        stable
    }

    /// The transactions aborted in [`from`, `upper`), for a read_committed
    /// fetch that returned the batches from `from` up to `upper`: every
    /// aborted transaction whose ABORT marker is at or after `from` and
    /// whose first offset is below `upper` (Kafka's
    /// collectAbortedTransactions), ordered by marker offset. A
    /// transaction that spans several fetches is reported by each.
    pub fn aborted_transactions(&self, from: Offset, upper: Offset) -> Vec<AbortedTransaction> {
        self.log
            .aborted_txns(from, upper)
            .into_iter()
            .map(|txn| AbortedTransaction {
                producer_id: txn.producer_id,
                first_offset: txn.first_offset,
            })
            .collect()
    }

    /// The offset below which consumers may read. On a single replica,
    /// what the flush policy allows acknowledging (after fdatasync under
    /// `fsync`); once the replication layer keeps it (see
    /// [`Partition::set_high_watermark`]), the lower of the replicated
    /// high watermark and that. Never below the log start offset.
    pub fn high_watermark(&self) -> Offset {
        let replicated = *self.replicated_high_watermark.lock();
        let acknowledged = self.log.acknowledged_end_offset();
        replicated
            .map_or(acknowledged, |replicated| replicated.min(acknowledged))
            .max(self.log.log_start_offset())
    }

    /// Sets the high watermark the replication layer computed (a leader:
    /// the least log end offset over the ISR; a follower: the leader's
    /// high watermark from a fetch response) and, the first time, switches
    /// the partition from the single-broker high watermark to the
    /// replicated one for good (the log manager checkpoints it in
    /// `replication-offset-checkpoint`, and a restart restores it).
    ///
    /// `offset` is clamped to [log start offset, log end offset]. A value
    /// below the current one is ignored: the high watermark goes back only
    /// through [`Partition::truncate_to`] and
    /// [`Partition::truncate_fully_and_start_at`]. (A new leader may
    /// report a lower high watermark than its predecessor did; what was
    /// committed below the higher one stays committed.)
    pub fn set_high_watermark(&self, offset: Offset) {
        let mut replicated = self.replicated_high_watermark.lock();
        // The log end is read under this lock, which a truncation takes
        // after cutting the log: a value clamped to a log end from before
        // a cut is lowered by that truncation after it is stored.
        let clamped = offset
            .min(self.log.log_end_offset())
            .max(self.log.log_start_offset());
        if replicated.is_none_or(|current| clamped > current) {
            *replicated = Some(clamped);
        }
    }

    /// Whether the high watermark is the replicated one (see
    /// [`Partition::set_high_watermark`]) rather than the single-broker one.
    pub fn is_replicated_high_watermark(&self) -> bool {
        self.replicated_high_watermark.lock().is_some()
    }

    /// The replicated high watermark as last set (before the cap by the
    /// acknowledged end that [`Partition::high_watermark`] applies), if
    /// the partition has one: what the checkpoint keeps.
    pub(crate) fn replicated_high_watermark(&self) -> Option<Offset> {
        *self.replicated_high_watermark.lock()
    }

    pub fn log_start_offset(&self) -> Offset {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> Offset {
        self.log.log_end_offset()
    }

    /// ListOffsets, as Kafka answers it; `None` where Kafka answers offset
    /// -1 (no record at or after the timestamp, or an empty log). Only
    /// records below the high watermark are considered (read_uncommitted;
    /// see [`Partition::list_offset_isolated`]).
    pub fn list_offset(&self, spec: OffsetSpec) -> Result<Option<TimestampedOffset>, ReadError> {
        self.list_offset_isolated(spec, FetchIsolation::HighWatermark)
    }

    /// ListOffsets under an isolation level: only records below the bound
    /// a read under `isolation` stops at are considered, and Latest is
    /// that bound — read_committed ([`FetchIsolation::TxnCommitted`]) gets
    /// the last stable offset, read_uncommitted
    /// ([`FetchIsolation::HighWatermark`]) the high watermark.
    pub fn list_offset_isolated(
        &self,
        spec: OffsetSpec,
        isolation: FetchIsolation,
    ) -> Result<Option<TimestampedOffset>, ReadError> {
        // Offline for reads (a file changed under the log): no answer,
        // not even the offsets kept in memory, as Kafka answers nothing
        // for a partition on an offline log dir.
        self.log.check_readable()?;
        let upper = self.upper_bound(isolation);
        let found = match spec {
            OffsetSpec::Earliest => Some((self.log.log_start_offset(), -1)),
            OffsetSpec::Latest => Some((upper, -1)),
            OffsetSpec::MaxTimestamp => self.log.max_timestamp_record(upper)?,
            OffsetSpec::Timestamp(target) => self.log.offset_for_timestamp(target, upper)?,
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
        let mut state = self.state.lock();
        state.epochs.truncate_from_start(start)?;
        state.producers.log_start_advanced(start)?;
        Ok(start)
    }

    /// OffsetForLeaderEpoch: (the largest epoch <= `epoch`, where it ended).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, Offset) {
        let state = self.state.lock();
        state
            .epochs
            .end_offset_for(epoch, self.log.log_end_offset())
    }

    /// The leader epoch of the last batch appended, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.state.lock().epochs.latest_epoch()
    }

    /// Cuts the log at `offset` (see [`Log::truncate_to`]; a returning
    /// follower truncates to where its leader's epoch ended), forgets the
    /// epochs that began after it, rebuilds the producer state as of the
    /// new end (from the latest snapshot at or below it; later snapshots
    /// are deleted), and lowers a replicated high watermark to the new
    /// end. Returns the new log end offset.
    pub fn truncate_to(&self, offset: Offset) -> Result<Offset, PartitionError> {
        let mut state = self.state.lock();
        self.txn_quiet.store(false, Ordering::SeqCst);
        let end = self.log.truncate_to(offset)?;
        if let Some(high_watermark) = self.replicated_high_watermark.lock().as_mut() {
            *high_watermark = (*high_watermark).min(end);
        }
        state.epochs.truncate_from_end(end)?;
        state
            .epochs
            .truncate_from_start(self.log.log_start_offset())?;
        state.producers.truncated(&self.log)?;
        Ok(end)
    }

    /// Empties the partition, which starts again at `offset`, forgetting
    /// every epoch and producer. A replicated high watermark becomes
    /// `offset`, the new log start and end.
    pub fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<(), PartitionError> {
        let mut state = self.state.lock();
        self.txn_quiet.store(false, Ordering::SeqCst);
        self.log.truncate_fully_and_start_at(offset)?;
        if let Some(high_watermark) = self.replicated_high_watermark.lock().as_mut() {
            *high_watermark = offset;
        }
        state.epochs.clear()?;
        state.producers.truncate_fully_and_start_at(offset)?;
        Ok(())
    }

    /// Applies retention.ms and retention.bytes (see
    /// [`Log::apply_retention`]), never past the high watermark. A deleted
    /// segment's aborted-transaction index goes with it.
    pub fn apply_retention(&self, now_ms: i64) -> Result<RetentionOutcome, PartitionError> {
        let outcome = self.log.apply_retention(now_ms, self.high_watermark())?;
        if outcome.segments_deleted > 0 {
            let mut state = self.state.lock();
            state.epochs.truncate_from_start(outcome.log_start_offset)?;
            state
                .producers
                .log_start_advanced(outcome.log_start_offset)?;
        }
        Ok(outcome)
    }

    /// Closes the log cleanly, writes a producer snapshot at its end (so
    /// that the next open reads no log data), and returns the end offset
    /// (the recovery point for the checkpoint).
    pub fn close(&self) -> Result<Offset, PartitionError> {
        let mut state = self.state.lock();
        let end = self.log.close()?;
        state.producers.catch_up(&self.log)?;
        state.producers.take_snapshot()?;
        Ok(end)
    }
}

/// Rebuilds an epoch cache from the partitionLeaderEpoch of every batch,
/// when the checkpoint is unreadable.
fn rebuild_epochs(
    dir: &Path,
    log: &Log,
    disk: &Arc<dyn Disk>,
) -> Result<LeaderEpochCache, PartitionError> {
    let path = dir.join(crate::leader_epoch::LEADER_EPOCH_CHECKPOINT);
    // The unreadable file goes (for good once the rebuilt cache is
    // checkpointed, which syncs the directory); the cache is rebuilt from
    // scratch.
    if let Err(error) = disk.remove_file(&path) {
        tracing::warn!(path = %path.display(), %error, "could not remove the corrupt epoch checkpoint");
    }
    let mut epochs = LeaderEpochCache::load(dir, Arc::clone(disk))?;
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
