//! Producer state, as Kafka's ProducerStateManager keeps it: for each
//! producer id, its epoch and its last [`PRODUCER_BATCHES_RETAINED`]
//! batches, so that a leader refuses a fenced epoch or a sequence gap,
//! and answers a retried batch with the offsets it was first given
//! instead of writing it twice; and its transaction (KIP-98): where its
//! open transaction began, and the epoch of the coordinator that last
//! ended one, so that a stale marker is fenced. The open and recently
//! ended transactions give the last stable offset (see txn_state.rs).
//!
//! The state is rebuilt at open from the latest usable snapshot (see
//! [`crate::producer_snapshot`]) and the batch headers after it (the
//! markers' records too); snapshots are written when the log rolls and
//! when it is closed. Replaying an ABORT marker re-adds its entry to the
//! log's aborted-transaction index if a crash lost it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rill_record::{BatchView, Batches};
use rill_storage::durable::sync_dir_on;
use rill_storage::{AbortedTxn, Disk, Log, Offset};

use crate::checkpoint::CheckpointError;
use crate::error::PartitionError;
use crate::producer_snapshot::{self, ProducerSnapshotError, SnapshotEntry};
use crate::txn_state::{CompletedTxn, MarkerBatch, TxnState};

/// Batches remembered per producer, as Kafka's NUM_BATCHES_TO_RETAIN: an
/// idempotent producer has at most five requests in flight, so a retry is
/// always of one of its last five batches.
pub const PRODUCER_BATCHES_RETAINED: usize = 5;

/// Kafka's default producer.id.expiration.ms: one day.
pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: i64 = 86_400_000;

/// Kafka's RecordBatch.NO_PRODUCER_EPOCH.
const NO_PRODUCER_EPOCH: i16 = -1;

/// Kafka's coordinator epoch of a producer no marker has reached yet.
const NO_COORDINATOR_EPOCH: i32 = -1;

/// Bytes read per step when batch headers are replayed from the log.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// One batch of an idempotent producer, as remembered to answer a retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub first_offset: Offset,
    pub last_offset: Offset,
    /// The batch's maxTimestamp as stored (the broker's time for
    /// LogAppendTime logs).
    pub timestamp: i64,
}

/// What a partition knows of one producer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerStateEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// Its last batches in this epoch, oldest first, at most
    /// [`PRODUCER_BATCHES_RETAINED`]; empty only for an entry loaded from
    /// a snapshot that named no batch.
    pub batches: VecDeque<BatchMetadata>,
    /// The timestamp of its last batch: the clock of its expiry.
    pub last_timestamp: i64,
    /// The epoch of the transaction coordinator that wrote its last
    /// marker here, -1 before any: a marker from an older one is fenced.
    pub coordinator_epoch: i32,
    /// Where its open transaction began in this partition, if one is open.
    pub current_txn_first_offset: Option<Offset>,
}

impl ProducerStateEntry {
    fn new(producer_id: i64, epoch: i16) -> ProducerStateEntry {
        ProducerStateEntry {
            producer_id,
            epoch,
            batches: VecDeque::with_capacity(PRODUCER_BATCHES_RETAINED),
            last_timestamp: -1,
            coordinator_epoch: NO_COORDINATOR_EPOCH,
            current_txn_first_offset: None,
        }
    }

    /// Takes `epoch` if it is new (forgetting the old epoch's batches)
    /// and `timestamp` as its last activity: a batch without a sequence
    /// (a coordinator's, or a marker).
    fn touch(&mut self, epoch: i16, timestamp: i64) {
        if epoch != self.epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
        self.last_timestamp = timestamp;
    }

    /// The sequence of the last record written, if a batch is remembered.
    pub fn last_sequence(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_sequence)
    }

    fn find_duplicate(&self, batch: &ProducerBatch) -> Option<BatchMetadata> {
        if batch.epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| {
                b.first_sequence == batch.first_sequence && b.last_sequence == batch.last_sequence
            })
            .copied()
    }

    /// Remembers `batch`; a new epoch forgets the old epoch's batches.
    fn add_batch(&mut self, epoch: i16, batch: BatchMetadata) {
        if epoch != self.epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
        if self.batches.len() == PRODUCER_BATCHES_RETAINED {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = batch.timestamp;
    }
}

/// The header fields of a data batch written by an idempotent (or
/// transactional) producer, or by a coordinator on its behalf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    /// -1 for a coordinator's batch, which has no sequence.
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub transactional: bool,
}

impl ProducerBatch {
    /// `None` for a batch without a producer id (no idempotence: nothing
    /// to check) and for control batches (see [`MarkerBatch`]).
    pub(crate) fn of(batch: &BatchView<'_>) -> Option<ProducerBatch> {
        if !batch.has_producer_id() || batch.attributes().is_control() {
            return None;
        }
        let first_sequence = batch.base_sequence();
        let last_sequence = if first_sequence < 0 {
            first_sequence
        } else {
            increment_sequence(first_sequence, batch.last_offset_delta())
        };
        Some(ProducerBatch {
            producer_id: batch.producer_id(),
            epoch: batch.producer_epoch(),
            first_sequence,
            last_sequence,
            transactional: batch.attributes().is_transactional(),
        })
    }

    fn has_sequence(&self) -> bool {
        self.first_sequence >= 0
    }
}

/// What an appended batch means to the producer state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BatchKind {
    /// No producer id, or a control record that is no marker.
    Plain,
    Data(ProducerBatch),
    Marker(MarkerBatch),
}

impl BatchKind {
    pub(crate) fn of(batch: &BatchView<'_>) -> BatchKind {
        if batch.attributes().is_control() {
            return MarkerBatch::of(batch).map_or(BatchKind::Plain, BatchKind::Marker);
        }
        ProducerBatch::of(batch).map_or(BatchKind::Plain, BatchKind::Data)
    }
}

/// Who wrote a batch a leader appends, as Kafka's AppendOrigin: a
/// client's batch gets every check; a coordinator's (which carries no
/// sequence) only the epoch and transaction checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Client,
    Coordinator,
}

/// What a leader does with a producer's batch that passed the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AppendCheck {
    /// Write it.
    Append,
    /// It was written before, as this batch: answer with its offsets and
    /// write nothing.
    Duplicate(BatchMetadata),
}

/// The producer state of one partition and its snapshot files.
///
/// Not thread-safe: the partition keeps it behind its append lock, and
/// every append and truncation updates it under that lock, so it always
/// describes exactly the batches below the log end offset.
///
/// An unknown producer (no state) must start at sequence 0 only while the
/// partition provably remembers every producer that ever wrote to it:
/// it was created empty at offset 0 by this process, its log start never
/// moved, and no producer expired. Otherwise its state may have gone with
/// retention, DeleteRecords, expiry, or an expiry before the snapshot the
/// partition was opened from, and any sequence is accepted, as Kafka does
/// since 2.5 (KIP-360) for every unknown producer.
///
/// Expiry follows Kafka's producer.id.expiration.ms: a producer whose last
/// batch's timestamp is that old is forgotten, by
/// [`ProducerStateManager::remove_expired`], which the log manager calls.
#[derive(Debug)]
pub(crate) struct ProducerStateManager {
    dir: PathBuf,
    /// What snapshots are written and deleted through.
    disk: Arc<dyn Disk>,
    producers: BTreeMap<i64, ProducerStateEntry>,
    /// Offsets of the snapshot files in `dir`.
    snapshots: BTreeSet<Offset>,
    /// The state reflects every batch below this offset (Kafka's
    /// lastMapOffset); it equals the log end offset whenever the
    /// partition's lock is free.
    map_end: Offset,
    remembers_every_producer: bool,
    /// Open and recently ended transactions, in step with `producers`.
    txns: TxnState,
}

impl ProducerStateManager {
    /// The state of a new, empty log starting at `start` in `dir`; any
    /// snapshot file left there is removed.
    pub(crate) fn create(
        dir: &Path,
        start: Offset,
        disk: Arc<dyn Disk>,
    ) -> Result<ProducerStateManager, ProducerSnapshotError> {
        let mut manager = ProducerStateManager {
            dir: dir.to_path_buf(),
            disk,
            producers: BTreeMap::new(),
            snapshots: producer_snapshot::list(dir)?,
            map_end: start,
            remembers_every_producer: start == Offset(0),
            txns: TxnState::default(),
        };
        manager.delete_snapshots(|_| true)?;
        Ok(manager)
    }

    /// Rebuilds the state of an opened log: from the latest snapshot
    /// within [log start, log end] that reads back whole (unusable ones
    /// are deleted, as are those outside the range), then from the
    /// batches after it, as Kafka does. After a crash the caller passes
    /// its recovery point: the aborted-transaction index above it may have
    /// lost entries that never reached the disk, so the markers from the
    /// latest snapshot at or below it (the log start if there is none) are
    /// replayed into the index as well, by a scratch state. (Replaying the
    /// state itself from there could miss a marker that compaction has
    /// removed since, and leave its transaction open for good.)
    pub(crate) fn load(
        dir: &Path,
        log: &Log,
        disk: Arc<dyn Disk>,
        replay_from_at_most: Offset,
    ) -> Result<ProducerStateManager, PartitionError> {
        let mut manager = ProducerStateManager {
            dir: dir.to_path_buf(),
            disk,
            producers: BTreeMap::new(),
            snapshots: producer_snapshot::list(dir)?,
            map_end: log.log_start_offset(),
            remembers_every_producer: false,
            txns: TxnState::default(),
        };
        let loaded_from = manager
            .reload(log, log.log_end_offset())?
            .unwrap_or(log.log_start_offset());
        if loaded_from > replay_from_at_most.max(log.log_start_offset()) {
            manager.restore_txn_index(log, replay_from_at_most, loaded_from)?;
        }
        if manager.map_end > loaded_from {
            // Batches were replayed: a snapshot now spares the next start
            // the same work, as Kafka takes one after recovery. Without
            // it the state is as good, so a failure only costs time.
            if let Err(error) = manager.take_snapshot() {
                tracing::warn!(dir = %dir.display(), %error,
                    "could not write a producer snapshot after replaying the log");
            }
        }
        Ok(manager)
    }

    /// Replays the markers from the latest snapshot at or below `from` (the
    /// log start if there is none) up to `end` into the aborted-transaction
    /// index only, with a scratch state: the state itself came from a
    /// snapshot at `end`, but the index below it may have lost entries a
    /// crash did not let reach the disk. An abort of a transaction begun
    /// before the replay's start cannot be restored (its first offset is
    /// not known there).
    fn restore_txn_index(
        &self,
        log: &Log,
        from: Offset,
        end: Offset,
    ) -> Result<(), PartitionError> {
        let start = self
            .snapshots
            .range(..=from)
            .next_back()
            .copied()
            .filter(|offset| *offset >= log.log_start_offset());
        let mut scratch = ProducerStateManager {
            dir: self.dir.clone(),
            disk: Arc::clone(&self.disk),
            producers: BTreeMap::new(),
            // None: the scratch state writes and deletes no snapshot.
            snapshots: BTreeSet::new(),
            map_end: log.log_start_offset(),
            remembers_every_producer: false,
            txns: TxnState::default(),
        };
        if let Some(offset) = start
            && let Ok(entries) = producer_snapshot::read(&self.dir, offset)
        {
            scratch.producers = producers_from(entries);
            for producer in scratch.producers.values() {
                if let Some(first) = producer.current_txn_first_offset {
                    scratch.txns.begin(producer.producer_id, first);
                }
            }
            scratch.map_end = offset;
        }
        scratch.replay(log, end)
    }

    pub(crate) fn map_end(&self) -> Offset {
        self.map_end
    }

    pub(crate) fn entry(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &ProducerStateEntry> {
        self.producers.values()
    }

    /// Kafka's checks of a producer's batch on the leader: a duplicate of
    /// one of the producer's remembered batches; an epoch older than the
    /// producer's (INVALID_PRODUCER_EPOCH); a newer epoch that does not
    /// start at sequence 0, or a sequence that does not follow the last
    /// (OUT_OF_ORDER_SEQUENCE_NUMBER). Sequences wrap from i32::MAX to 0.
    ///
    /// Then, as Kafka's appendDataBatch, a non-transactional batch from a
    /// producer whose transaction is open is INVALID_TXN_STATE. A
    /// coordinator's batch (no sequence) gets only the epoch and
    /// transaction checks.
    pub(crate) fn check(
        &self,
        batch: &ProducerBatch,
        origin: Origin,
    ) -> Result<AppendCheck, PartitionError> {
        let out_of_order = |expected: i32| PartitionError::OutOfOrderSequence {
            producer_id: batch.producer_id,
            expected,
            found: batch.first_sequence,
        };
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            if origin == Origin::Client
                && batch.first_sequence != 0
                && self.remembers_every_producer
            {
                return Err(out_of_order(0));
            }
            return Ok(AppendCheck::Append);
        };
        if origin == Origin::Client {
            if let Some(original) = entry.find_duplicate(batch) {
                return Ok(AppendCheck::Duplicate(original));
            }
        }
        if batch.epoch < entry.epoch {
            return Err(PartitionError::InvalidProducerEpoch {
                producer_id: batch.producer_id,
                current: entry.epoch,
                found: batch.epoch,
            });
        }
        if origin == Origin::Client && entry.epoch != NO_PRODUCER_EPOCH {
            let expected = if batch.epoch > entry.epoch {
                0
            } else {
                entry
                    .last_sequence()
                    .map_or(0, |last| increment_sequence(last, 1))
            };
            if batch.first_sequence != expected {
                return Err(out_of_order(expected));
            }
        }
        if let (Some(first_offset), false) = (entry.current_txn_first_offset, batch.transactional) {
            return Err(PartitionError::InvalidTxnState {
                producer_id: batch.producer_id,
                txn_first_offset: first_offset,
            });
        }
        Ok(AppendCheck::Append)
    }

    /// Kafka's checks of a marker the coordinator asks a leader to write
    /// (appendEndTxnMarker): a producer epoch older than the producer's
    /// is INVALID_PRODUCER_EPOCH; a coordinator epoch older than the one
    /// of the producer's last marker is TRANSACTION_COORDINATOR_FENCED. A
    /// producer with no open transaction, or none known, is no error: the
    /// marker is written and ends nothing.
    pub(crate) fn check_marker(&self, marker: &MarkerBatch) -> Result<(), PartitionError> {
        let Some(entry) = self.producers.get(&marker.producer_id) else {
            return Ok(());
        };
        if marker.epoch < entry.epoch {
            return Err(PartitionError::InvalidProducerEpoch {
                producer_id: marker.producer_id,
                current: entry.epoch,
                found: marker.epoch,
            });
        }
        if marker.marker.coordinator_epoch < entry.coordinator_epoch {
            return Err(PartitionError::TransactionCoordinatorFenced {
                producer_id: marker.producer_id,
                current: entry.coordinator_epoch,
                found: marker.marker.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// The transaction `marker`, written at `offset`, would end: the
    /// producer's open one, if any.
    fn completed_by(&self, marker: &MarkerBatch, offset: Offset) -> Option<CompletedTxn> {
        let first = self
            .producers
            .get(&marker.producer_id)?
            .current_txn_first_offset?;
        Some(CompletedTxn::new(
            marker.producer_id,
            first,
            offset,
            marker.marker.kind,
        ))
    }

    /// The aborted-transaction index entry `marker`, written at `offset`,
    /// makes: `Some` when it is an ABORT that ends an open transaction.
    pub(crate) fn aborted_by(&self, marker: &MarkerBatch, offset: Offset) -> Option<AbortedTxn> {
        let txn = self.completed_by(marker, offset).filter(|t| t.aborted)?;
        Some(AbortedTxn {
            producer_id: txn.producer_id,
            first_offset: txn.first_offset,
            last_offset: txn.last_offset,
            last_stable_offset: self.txns.last_stable_offset_after(&txn),
        })
    }

    /// The last stable offset of a log whose high watermark is
    /// `high_watermark` and log start `log_start`: the first offset of the
    /// earliest transaction still open or whose marker is not below the
    /// high watermark, if below the high watermark; else the high
    /// watermark. Never below the log start.
    /// Whether no transaction is open or awaiting its marker's
    /// replication (as of the last [`Self::last_stable_offset`]).
    pub(crate) fn no_transactions(&self) -> bool {
        self.txns.is_empty()
    }

    pub(crate) fn last_stable_offset(
        &mut self,
        high_watermark: Offset,
        log_start: Offset,
    ) -> Offset {
        self.txns
            .first_unstable_offset(high_watermark)
            .map_or(high_watermark, |first| first.min(high_watermark))
            .max(log_start)
    }

    /// Records a batch appended at `first_offset ..= last_offset` (any
    /// batch: the state follows the log end): a producer's data batch
    /// (which opens a transaction if it is transactional and none is
    /// open), or a marker (which ends the open one).
    pub(crate) fn appended(
        &mut self,
        batch: &BatchKind,
        first_offset: Offset,
        last_offset: Offset,
        timestamp: i64,
    ) {
        match batch {
            BatchKind::Plain => {}
            BatchKind::Data(batch) => self.apply(batch, first_offset, last_offset, timestamp),
            BatchKind::Marker(marker) => self.apply_marker(marker, first_offset, timestamp),
        }
        self.map_end = last_offset.plus(1);
    }

    /// Records a batch a follower copied from its leader at
    /// `first_offset ..= last_offset`, taking its header as it is (the
    /// leader checked it). Offsets skipped before it (the leader's
    /// compaction removed batches) may have held producers' last batches
    /// that the leader had already forgotten, so an unknown producer is
    /// from then on accepted at any sequence, as after retention.
    pub(crate) fn replicated(
        &mut self,
        batch: &BatchKind,
        first_offset: Offset,
        last_offset: Offset,
        timestamp: i64,
    ) {
        if first_offset > self.map_end {
            self.remembers_every_producer = false;
        }
        self.appended(batch, first_offset, last_offset, timestamp);
    }

    /// Brings the state to the log's end when the log changed behind the
    /// partition's back (through [`crate::Partition::log`]): replays what
    /// was appended, or reloads after anything else.
    pub(crate) fn catch_up(&mut self, log: &Log) -> Result<(), PartitionError> {
        let end = log.log_end_offset();
        if self.map_end == end {
            return Ok(());
        }
        let start = log.log_start_offset();
        tracing::warn!(dir = %self.dir.display(), map_end = %self.map_end, log_end = %end,
            "the log changed outside its partition; bringing producer state up to date");
        if start <= self.map_end && self.map_end < end {
            self.replay(log, end)
        } else {
            self.reload(log, Offset(i64::MAX)).map(|_| ())
        }
    }

    /// Fits the state to a log just cut back (Kafka's truncateAndReload):
    /// snapshots past the new end go, and unless nothing was cut, the
    /// state is rebuilt from the latest snapshot at or below the end.
    pub(crate) fn truncated(&mut self, log: &Log) -> Result<(), PartitionError> {
        if self.map_end == log.log_end_offset() {
            return Ok(());
        }
        self.reload(log, Offset(i64::MAX)).map(|_| ())
    }

    /// Forgets everything and deletes every snapshot: the log restarted,
    /// empty, at `offset`.
    pub(crate) fn truncate_fully_and_start_at(
        &mut self,
        offset: Offset,
    ) -> Result<(), ProducerSnapshotError> {
        self.producers.clear();
        self.txns.clear();
        self.map_end = offset;
        self.remembers_every_producer = false;
        self.delete_snapshots(|_| true)
    }

    /// The log start moved to `start` (retention, DeleteRecords):
    /// snapshots below it can no longer be replayed from and go. The
    /// producers themselves are kept, as Kafka keeps them, until they
    /// expire.
    pub(crate) fn log_start_advanced(
        &mut self,
        start: Offset,
    ) -> Result<(), ProducerSnapshotError> {
        if start > Offset(0) {
            self.remembers_every_producer = false;
        }
        self.txns.log_start_advanced(start);
        self.delete_snapshots(|offset| offset < start)
    }

    /// Forgets producers whose last batch's timestamp is at least
    /// `expiration_ms` before `now_ms` (Kafka's producer.id.expiration.ms)
    /// and returns how many.
    pub(crate) fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        // A producer with an open transaction never expires (Kafka's
        // isProducerExpired): its first offset holds the LSO back.
        self.producers.retain(|_, entry| {
            entry.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(entry.last_timestamp) < expiration_ms
        });
        let removed = before - self.producers.len();
        if removed > 0 {
            self.remembers_every_producer = false;
        }
        removed
    }

    /// Writes a snapshot at the current end, unless one exists there.
    /// Returns whether it wrote one.
    pub(crate) fn take_snapshot(&mut self) -> Result<bool, CheckpointError> {
        if self.snapshots.contains(&self.map_end) {
            return Ok(false);
        }
        let entries =
            self.snapshot_entries()
                .map_err(|(what, found)| CheckpointError::Unencodable {
                    path: producer_snapshot::snapshot_path(&self.dir, self.map_end),
                    what,
                    found,
                    max: i64::from(i32::MAX),
                })?;
        producer_snapshot::write(self.disk.as_ref(), &self.dir, self.map_end, &entries)?;
        self.snapshots.insert(self.map_end);
        tracing::debug!(dir = %self.dir.display(), offset = %self.map_end,
            producers = self.producers.len(), "wrote producer snapshot");
        Ok(true)
    }

    /// Forgets everything, then loads the latest usable snapshot within
    /// [log start, log end] — at or below `at_most` if there is one — and
    /// replays the batches after it. Returns the offset of the snapshot
    /// loaded, if any.
    fn reload(&mut self, log: &Log, at_most: Offset) -> Result<Option<Offset>, PartitionError> {
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        self.delete_snapshots(|offset| offset > end || offset < start)?;
        self.producers.clear();
        self.txns.clear();
        self.map_end = start;
        let mut loaded = None;
        // The latest snapshot at or below `at_most`, or if there is none
        // the latest: replaying from the log start instead would forget
        // producers only a snapshot still knows (their batches deleted).
        let pick = |snapshots: &BTreeSet<Offset>| {
            snapshots
                .range(..=at_most)
                .next_back()
                .or_else(|| snapshots.last())
                .copied()
        };
        while let Some(offset) = pick(&self.snapshots) {
            match producer_snapshot::read(&self.dir, offset) {
                Ok(entries) => {
                    self.producers = producers_from(entries);
                    for producer in self.producers.values() {
                        if let Some(first) = producer.current_txn_first_offset {
                            self.txns.begin(producer.producer_id, first);
                        }
                    }
                    self.map_end = offset;
                    loaded = Some(offset);
                    break;
                }
                Err(ProducerSnapshotError::Io(failure))
                    if failure.source.kind() != std::io::ErrorKind::NotFound =>
                {
                    return Err(ProducerSnapshotError::Io(failure).into());
                }
                Err(error) => {
                    tracing::warn!(dir = %self.dir.display(), %error,
                        "ignoring an unusable producer snapshot");
                    self.delete_snapshots(|o| o == offset)?;
                }
            }
        }
        self.replay(log, end)?;
        tracing::debug!(dir = %self.dir.display(), snapshot = ?loaded, log_end = %end,
            producers = self.producers.len(), "loaded producer state");
        Ok(loaded)
    }

    /// Applies the headers of the batches from `map_end` to `end`, as
    /// written: no checks (they were made when the batches were appended).
    fn replay(&mut self, log: &Log, end: Offset) -> Result<(), PartitionError> {
        let mut next = self.map_end;
        while next < end {
            let read = log.read(next, REPLAY_READ_BYTES, end, true)?;
            let mut batches = 0usize;
            for batch in Batches::new(&read.bytes) {
                let (first, last) = (Offset(batch.base_offset()), Offset(batch.last_offset()));
                let kind = BatchKind::of(&batch);
                if let BatchKind::Marker(marker) = &kind {
                    if let Some(aborted) = self.aborted_by(marker, first) {
                        match log.add_aborted_txn(aborted) {
                            Ok(true) => tracing::info!(dir = %self.dir.display(),
                                marker_offset = %first,
                                "restored a lost aborted-transaction index entry"),
                            Ok(false) => {}
                            // An offline log (its next open replays again)
                            // must still open and serve reads: the state
                            // itself is right, only the index lacks it.
                            Err(error) => tracing::warn!(dir = %self.dir.display(),
                                marker_offset = %first, %error,
                                "could not restore an aborted-transaction index entry"),
                        }
                    }
                }
                match &kind {
                    BatchKind::Plain => {}
                    BatchKind::Data(producer) => {
                        self.apply(producer, first, last, batch.max_timestamp());
                    }
                    BatchKind::Marker(marker) => {
                        self.apply_marker(marker, first, batch.max_timestamp());
                    }
                }
                next = Offset(batch.next_offset());
                batches += 1;
            }
            if batches == 0 {
                // Nothing framed where the log says batches are: recovery
                // validated them, so this is the end of what can be read.
                break;
            }
        }
        self.map_end = end;
        Ok(())
    }

    fn apply(
        &mut self,
        batch: &ProducerBatch,
        first_offset: Offset,
        last_offset: Offset,
        timestamp: i64,
    ) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerStateEntry::new(batch.producer_id, batch.epoch));
        if batch.has_sequence() {
            entry.add_batch(
                batch.epoch,
                BatchMetadata {
                    first_sequence: batch.first_sequence,
                    last_sequence: batch.last_sequence,
                    first_offset,
                    last_offset,
                    timestamp,
                },
            );
        } else {
            entry.touch(batch.epoch, timestamp);
        }
        if batch.transactional && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(first_offset);
            self.txns.begin(batch.producer_id, first_offset);
        }
    }

    /// A marker at `offset`: the producer's open transaction, if any,
    /// ends (Kafka's appendEndTxnMarker), and the producer takes the
    /// marker's epochs. Unchecked: the leader checked the marker before
    /// writing it (a follower takes what its leader wrote).
    fn apply_marker(&mut self, marker: &MarkerBatch, offset: Offset, timestamp: i64) {
        if let Some(txn) = self.completed_by(marker, offset) {
            self.txns.complete(txn);
        }
        let entry = self
            .producers
            .entry(marker.producer_id)
            .or_insert_with(|| ProducerStateEntry::new(marker.producer_id, marker.epoch));
        if marker.epoch >= entry.epoch {
            entry.touch(marker.epoch, timestamp);
        } else {
            tracing::warn!(producer_id = marker.producer_id, epoch = marker.epoch,
                current = entry.epoch, %offset, "a replicated marker has an older producer epoch");
            entry.last_timestamp = timestamp;
        }
        entry.coordinator_epoch = marker.marker.coordinator_epoch;
        entry.current_txn_first_offset = None;
    }

    /// Removes the snapshots whose offsets `doomed` picks, then syncs the
    /// directory, so that a stale snapshot cannot come back after a
    /// crash to describe offsets that are written again.
    fn delete_snapshots(
        &mut self,
        doomed: impl Fn(Offset) -> bool,
    ) -> Result<(), ProducerSnapshotError> {
        let gone: Vec<Offset> = self
            .snapshots
            .iter()
            .copied()
            .filter(|&o| doomed(o))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        for offset in gone {
            producer_snapshot::delete(self.disk.as_ref(), &self.dir, offset)?;
            self.snapshots.remove(&offset);
        }
        sync_dir_on(self.disk.as_ref(), &self.dir)?;
        Ok(())
    }

    /// One entry per remembered batch, oldest first, producers in id
    /// order; a producer with no batch gets one entry with offset -1.
    /// `Err((what, found))` for a batch whose offset span does not fit the
    /// format's i32 (it cannot happen: a batch spans lastOffsetDelta + 1
    /// offsets, and lastOffsetDelta is an i32).
    fn snapshot_entries(&self) -> Result<Vec<SnapshotEntry>, (&'static str, i64)> {
        let mut entries = Vec::with_capacity(self.producers.len());
        for producer in self.producers.values() {
            let entry = |last_sequence, last_offset: i64, offset_delta, timestamp| SnapshotEntry {
                producer_id: producer.producer_id,
                epoch: producer.epoch,
                last_sequence,
                last_offset,
                offset_delta,
                timestamp,
                coordinator_epoch: producer.coordinator_epoch,
                current_txn_first_offset: producer
                    .current_txn_first_offset
                    .map_or(-1, Offset::value),
            };
            if producer.batches.is_empty() {
                entries.push(entry(-1, -1, 0, producer.last_timestamp));
            }
            for batch in &producer.batches {
                let offset_delta = batch.last_offset.value() - batch.first_offset.value();
                let offset_delta = i32::try_from(offset_delta)
                    .map_err(|_| ("the offset span of a producer's batch", offset_delta))?;
                entries.push(entry(
                    batch.last_sequence,
                    batch.last_offset.value(),
                    offset_delta,
                    batch.timestamp,
                ));
            }
        }
        Ok(entries)
    }
}

/// The producers a snapshot describes: consecutive entries of a producer
/// are its batches, oldest first (a Kafka snapshot has one per producer).
fn producers_from(entries: Vec<SnapshotEntry>) -> BTreeMap<i64, ProducerStateEntry> {
    let mut producers: BTreeMap<i64, ProducerStateEntry> = BTreeMap::new();
    for e in entries {
        let producer = producers
            .entry(e.producer_id)
            .or_insert_with(|| ProducerStateEntry::new(e.producer_id, e.epoch));
        if e.last_offset >= 0 {
            producer.add_batch(
                e.epoch,
                BatchMetadata {
                    first_sequence: decrement_sequence(e.last_sequence, e.offset_delta),
                    last_sequence: e.last_sequence,
                    first_offset: Offset(e.last_offset - i64::from(e.offset_delta)),
                    last_offset: Offset(e.last_offset),
                    timestamp: e.timestamp,
                },
            );
        } else if e.epoch != producer.epoch {
            producer.epoch = e.epoch;
            producer.batches.clear();
        }
        producer.last_timestamp = e.timestamp;
        // Every entry of a producer carries its transaction fields; the
        // last one read stands, as in Kafka.
        producer.coordinator_epoch = e.coordinator_epoch;
        producer.current_txn_first_offset =
            (e.current_txn_first_offset >= 0).then_some(Offset(e.current_txn_first_offset));
    }
    producers
}

/// `sequence + delta` in Kafka's sequence space, which runs from 0 to
/// i32::MAX and then wraps to 0: modulo 2^31, which
/// divides the 2^32 that i32 arithmetic wraps at, so the low 31 bits of
/// the wrapped sum are the answer (for negative operands too).
fn increment_sequence(sequence: i32, delta: i32) -> i32 {
    sequence.wrapping_add(delta) & i32::MAX
}

/// `sequence - delta` in the wrapping sequence space (as above).
fn decrement_sequence(sequence: i32, delta: i32) -> i32 {
    sequence.wrapping_sub(delta) & i32::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(producer_id: i64, epoch: i16, first: i32, records: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id,
            epoch,
            first_sequence: first,
            last_sequence: increment_sequence(first, records - 1),
            transactional: false,
        }
    }

    /// A manager whose producer 1 wrote `batches` (epoch, first sequence,
    /// records) one after the other from offset 0.
    fn with_batches(batches: &[(i16, i32, i32)]) -> (tempfile::TempDir, ProducerStateManager) {
        let dir = tempfile::tempdir().unwrap();
        let mut manager =
            ProducerStateManager::create(dir.path(), Offset(0), Arc::new(rill_storage::RealDisk))
                .unwrap();
        let mut next = Offset(0);
        for &(epoch, first, records) in batches {
            let b = batch(1, epoch, first, records);
            assert_eq!(
                manager.check(&b, Origin::Client).unwrap(),
                AppendCheck::Append
            );
            let last = next.plus(i64::from(records) - 1);
            manager.appended(&BatchKind::Data(b), next, last, 1_000);
            next = last.plus(1);
        }
        (dir, manager)
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 0), 5);
        assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
        assert_eq!(decrement_sequence(7, 2), 5);
    }

    #[test]
    fn sequences_continue_across_the_wrap() {
        let dir = tempfile::tempdir().unwrap();
        let mut manager =
            ProducerStateManager::create(dir.path(), Offset(0), Arc::new(rill_storage::RealDisk))
                .unwrap();
        let near_the_end = ProducerBatch {
            producer_id: 1,
            epoch: 0,
            first_sequence: i32::MAX - 4,
            last_sequence: i32::MAX - 2,
            transactional: false,
        };
        manager.appended(&BatchKind::Data(near_the_end), Offset(0), Offset(2), 0);
        let wrapping = batch(1, 0, i32::MAX - 1, 3);
        assert_eq!(wrapping.last_sequence, 0, "MAX - 1, MAX, 0");
        assert_eq!(
            manager.check(&wrapping, Origin::Client).unwrap(),
            AppendCheck::Append
        );
        manager.appended(&BatchKind::Data(wrapping), Offset(3), Offset(5), 0);
        assert!(matches!(
            manager.check(&wrapping, Origin::Client).unwrap(),
            AppendCheck::Duplicate(BatchMetadata {
                first_offset: Offset(3),
                ..
            })
        ));
        assert!(matches!(
            manager.check(&batch(1, 0, 2, 1), Origin::Client),
            Err(PartitionError::OutOfOrderSequence {
                expected: 1,
                found: 2,
                ..
            })
        ));
        assert_eq!(
            manager.check(&batch(1, 0, 1, 1), Origin::Client).unwrap(),
            AppendCheck::Append
        );
    }

    #[test]
    fn only_the_last_five_batches_are_recognised_as_duplicates() {
        let batches: Vec<(i16, i32, i32)> = (0..6).map(|i| (0, i * 2, 2)).collect();
        let (_dir, manager) = with_batches(&batches);
        assert_eq!(manager.entry(1).unwrap().batches.len(), 5);
        assert_eq!(
            manager.check(&batch(1, 0, 2, 2), Origin::Client).unwrap(),
            AppendCheck::Duplicate(BatchMetadata {
                first_sequence: 2,
                last_sequence: 3,
                first_offset: Offset(2),
                last_offset: Offset(3),
                timestamp: 1_000,
            })
        );
        assert!(
            matches!(
                manager.check(&batch(1, 0, 0, 2), Origin::Client),
                Err(PartitionError::OutOfOrderSequence {
                    expected: 12,
                    found: 0,
                    ..
                })
            ),
            "the sixth batch back is forgotten"
        );
        assert!(
            matches!(
                manager.check(&batch(1, 0, 2, 1), Origin::Client),
                Err(PartitionError::OutOfOrderSequence { .. })
            ),
            "a duplicate must match the whole sequence range"
        );
    }

    #[test]
    fn an_unknown_producer_may_skip_sequences_once_state_can_have_been_forgotten() {
        let (_dir, mut manager) = with_batches(&[]);
        assert!(matches!(
            manager.check(&batch(9, 0, 5, 1), Origin::Client),
            Err(PartitionError::OutOfOrderSequence {
                producer_id: 9,
                expected: 0,
                found: 5
            })
        ));
        manager.log_start_advanced(Offset(10)).unwrap();
        assert_eq!(
            manager.check(&batch(9, 0, 5, 1), Origin::Client).unwrap(),
            AppendCheck::Append
        );
    }

    #[test]
    fn expiry_forgets_idle_producers() {
        let (_dir, mut manager) = with_batches(&[(0, 0, 1)]);
        assert_eq!(manager.remove_expired(1_000 + 99, 100), 0);
        assert_eq!(manager.remove_expired(1_000 + 100, 100), 1);
        assert!(manager.entry(1).is_none());
        assert_eq!(
            manager.check(&batch(1, 0, 1, 1), Origin::Client).unwrap(),
            AppendCheck::Append,
            "an expired producer resumes at any sequence"
        );
    }

    #[test]
    fn snapshot_entries_rebuild_the_same_producers() {
        let batches: Vec<(i16, i32, i32)> = (0..7).map(|i| (2, i * 3, 3)).collect();
        let (_dir, mut manager) = with_batches(&batches);
        let other = batch(4, 0, 0, 1);
        manager.appended(&BatchKind::Data(other), Offset(21), Offset(21), 5);
        let rebuilt = producers_from(manager.snapshot_entries().unwrap());
        assert_eq!(rebuilt, manager.producers);
    }

    #[test]
    fn snapshot_entries_carry_open_transactions_and_coordinator_epochs() {
        let (_dir, mut manager) = with_batches(&[(0, 0, 2)]);
        let open = ProducerBatch {
            transactional: true,
            ..batch(4, 1, 0, 3)
        };
        manager.appended(&BatchKind::Data(open), Offset(2), Offset(4), 7);
        let marker = MarkerBatch {
            producer_id: 5,
            epoch: 2,
            marker: rill_record::EndTxnMarker {
                kind: rill_record::MarkerKind::Commit,
                coordinator_epoch: 11,
            },
        };
        manager.appended(&BatchKind::Marker(marker), Offset(5), Offset(5), 8);
        assert_eq!(
            manager.entry(4).unwrap().current_txn_first_offset,
            Some(Offset(2))
        );
        assert_eq!(manager.entry(5).unwrap().coordinator_epoch, 11);
        let rebuilt = producers_from(manager.snapshot_entries().unwrap());
        assert_eq!(rebuilt, manager.producers);
    }

    #[test]
    fn replicated_batches_are_taken_unchecked_and_a_gap_forgets_completeness() {
        let (_dir, mut manager) = with_batches(&[(0, 0, 2)]);
        // A follower takes what the leader wrote, even a sequence jump.
        let jump = batch(1, 0, 9, 2);
        manager.replicated(&BatchKind::Data(jump), Offset(2), Offset(3), 2_000);
        assert_eq!(manager.entry(1).unwrap().last_sequence(), Some(10));
        assert_eq!(manager.map_end(), Offset(4));
        assert!(
            manager.check(&batch(9, 0, 5, 1), Origin::Client).is_err(),
            "no gap yet: every producer is known"
        );
        // Offsets 4..=9 were compacted away on the leader.
        manager.replicated(&BatchKind::Plain, Offset(10), Offset(11), 2_000);
        assert_eq!(manager.map_end(), Offset(12));
        assert_eq!(
            manager.check(&batch(9, 0, 5, 1), Origin::Client).unwrap(),
            AppendCheck::Append,
            "an unknown producer may have lived in the gap"
        );
    }
}
