//! A partition's log: an ordered list of segments, the last one active.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock, RwLockWriteGuard};
use rill_record::{
    BatchView, TimestampType, apply_record_rules, validate_produced, validate_replicated,
};

use crate::Offset;
use crate::clean_point::{read_clean_point, write_clean_point};
use crate::clock::now_ms;
use crate::compaction::{
    CleanContext, CleanerConfig, CompactionOutcome, build_offset_map, clean_group, group_segments,
    plan, producers_last_batches,
};
use crate::config::{FlushPolicy, LogConfig};
use crate::disk::Disk;
use crate::durable::{create_dir_durably_on, sync_dir_on};
use crate::error::{
    AppendError, CompactError, ConfigError, IoFailure, LogFailed, ModifyError, OfflineCause,
    OpenError, ReadError, SegmentFileChanged,
};
use crate::file_system::{FileSystem, note_slow_sync};
use crate::flush::{AppendInfo, AppendTicket, Durability, Flusher, FlusherHandle, IntervalCheck};
use crate::offset::LOG_END_OFFSET_MAX;
use crate::recovery::{RecoveryHints, RecoveryReport, load_segments};
use crate::retention::{RetentionOutcome, deletable_prefix};
use crate::segment::{FileStage, SealedView, Segment, Stamp};

/// The log of one partition: append, read, truncate, retain, recover.
///
/// Thread-safe. Reads run in parallel under a read lock; appends, rolls,
/// truncation and retention take the write lock briefly (file deletion
/// and fdatasync run outside it). Compaction reads and rewrites sealed
/// segments with no lock held and takes the write lock only to swap a
/// cleaned segment in. Locks, outermost first: the cleaner lock (one
/// compaction at a time), the flush lock, the state lock, durability. Dropping a `Log` without [`Log::close`]
/// is like a crash: the next open recovers.
///
/// ```
/// use rill_record::{BatchBuilder, NewRecord};
/// use rill_storage::{Flusher, Log, LogConfig, Offset, RealDisk};
/// use std::sync::Arc;
///
/// let dir = tempfile::tempdir().unwrap();
/// let flusher = Flusher::start(1).unwrap();
/// let log = Log::create(dir.path(), LogConfig::default(), Offset(0), &flusher, Arc::new(RealDisk), 0).unwrap();
/// let batch = BatchBuilder::new(1_000).with_records(&[NewRecord::value(b"hi")]).finish();
/// // Under the default `fsync` policy, `wait` returns after fdatasync.
/// let info = log.append(&batch, 0, 1_000).unwrap().wait().unwrap();
/// assert_eq!(info.base_offset, Offset(0));
/// let read = log.read(Offset(0), 1 << 20, log.log_end_offset(), true).unwrap();
/// assert_eq!(read.bytes.len(), batch.len());
/// ```
#[derive(Debug)]
pub struct Log {
    shared: Arc<LogShared>,
}

#[derive(Debug)]
pub(crate) struct LogShared {
    dir: PathBuf,
    disk: Arc<dyn Disk>,
    state: RwLock<LogState>,
    /// The file system of `dir`, synced as a whole when several logs on it
    /// are due at once and its syncfs is a real sync (else file by file).
    file_system: Arc<FileSystem>,
    /// Held across every sync of this log, so syncs never overlap and a
    /// truncation never races an in-flight flush round.
    flush_lock: Mutex<()>,
    /// Held across a compaction pass, so passes never overlap.
    cleaner_lock: Mutex<()>,
    durability: Durability,
    flusher: FlusherHandle,
    /// Whether the flusher watches this log's flush.ms deadline (only
    /// `interval` logs need it; others are never on its list).
    interval_watched: AtomicBool,
    /// Set, after `durability` records the failure, once a file changed
    /// under the log: reads are refused from then on. A flag, so that the
    /// read path does not take the durability lock to learn it.
    reads_refused: AtomicBool,
}

#[derive(Debug)]
struct LogState {
    config: LogConfig,
    /// Never empty; sorted by base offset; only the last is active.
    segments: Vec<Segment>,
    log_start_offset: Offset,
    /// Records appended since the last sync began (for flush.messages).
    unflushed_messages: u64,
    /// Files of sealed segments not yet synced since they were sealed.
    unsynced: Vec<(Arc<File>, PathBuf)>,
    /// Whether files were created in the directory since its last sync.
    dir_dirty: bool,
    /// Set by [`Log::close`]: the files are trimmed and take no more writes.
    closed: bool,
    /// Counts truncations (and restarts): a compaction pass that sees it
    /// change gives up rather than swap in data cut from the log.
    truncations: u64,
    /// The first dirty offset: every record below has been compacted.
    /// Checkpointed in `cleaner-offset-checkpoint` (see clean_point.rs).
    clean_point: Offset,
}

impl LogState {
    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    fn log_end(&self) -> Offset {
        self.active().next_offset()
    }

    /// Index of the last segment whose base offset is <= `offset`.
    fn segment_index(&self, offset: Offset) -> usize {
        self.segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1)
    }
}

/// Bytes read from a log: whole batches, zero-copy.
#[derive(Clone, Debug)]
pub struct LogRead {
    /// Whole batches, starting with the one that holds the requested
    /// offset; empty when there is nothing to read below the bound.
    pub bytes: Bytes,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

/// A batch that [`Log::validate`] accepted as a producer's: the proof
/// [`Log::append_validated`] asks for, so that it need not check the
/// batch (and compute its CRC) again.
#[derive(Clone, Copy, Debug)]
pub struct ValidatedBatch<'a> {
    view: BatchView<'a>,
}

impl<'a> ValidatedBatch<'a> {
    /// The batch's header (and records), for reading its fields.
    pub fn view(&self) -> BatchView<'a> {
        self.view
    }
}

/// A batch that [`Log::validate_replicated`] accepted as a leader's: the
/// proof [`Log::append_replicated_validated`] asks for.
#[derive(Clone, Copy, Debug)]
pub struct ReplicatedBatch<'a> {
    view: BatchView<'a>,
}

impl<'a> ReplicatedBatch<'a> {
    /// The batch's header (and records), for reading its fields.
    pub fn view(&self) -> BatchView<'a> {
        self.view
    }

    /// The offset the batch starts at, as the leader assigned it.
    pub fn base_offset(&self) -> Offset {
        Offset(self.view.base_offset())
    }

    /// baseOffset + lastOffsetDelta: the log end offset after the batch
    /// is this + 1, whatever recordsCount says (compaction may have
    /// removed records).
    pub fn last_offset(&self) -> Offset {
        Offset(self.view.last_offset())
    }

    /// [`AppendError::BaseOffsetBelowLogEnd`] unless the batch may follow
    /// a log that ends at `log_end`: [`Log::append_replicated_validated`]
    /// checks this under the log's lock; a caller that must act before
    /// the write (record the batch's leader epoch) checks it first.
    pub fn check_follows(&self, log_end: Offset) -> Result<(), AppendError> {
        if self.base_offset() < log_end {
            return Err(AppendError::BaseOffsetBelowLogEnd {
                log_end,
                base_offset: self.base_offset(),
                last_offset: self.last_offset(),
            });
        }
        Ok(())
    }
}

/// Where an appended batch's offsets, epoch and timestamps come from.
#[derive(Clone, Copy, Debug)]
enum Placement {
    /// A producer's batch: the next offsets, the leader's epoch, and for
    /// LogAppendTime logs the broker's clock, stamped into it.
    Assign { leader_epoch: i32 },
    /// A batch a follower copies from its leader: its own fields, as
    /// stored (the stamp rewrites them with the values they hold).
    AsStored,
}

impl Placement {
    /// The stamp for `view` on a log that ends at `log_end`.
    fn stamp(
        self,
        view: &BatchView<'_>,
        log_end: Offset,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Stamp, AppendError> {
        match self {
            Placement::Assign { leader_epoch } => Ok(Stamp {
                base_offset: log_end,
                leader_epoch,
                log_append_time_ms: (config.timestamp_type == TimestampType::LogAppendTime)
                    .then_some(now_ms),
            }),
            Placement::AsStored => {
                let batch = ReplicatedBatch { view: *view };
                batch.check_follows(log_end)?;
                Ok(Stamp {
                    base_offset: batch.base_offset(),
                    leader_epoch: view.partition_leader_epoch(),
                    log_append_time_ms: None,
                })
            }
        }
    }
}

/// Files a flush round syncs, and the offset it then makes durable.
struct FlushCapture {
    end: Offset,
    generation: u64,
    files: Vec<(Arc<File>, PathBuf)>,
    sync_dir: bool,
}

impl Log {
    /// Creates an empty log in `dir` (created if missing) whose first
    /// offset will be `start_offset`. The directory and its first segment
    /// are durable on return (the directory and its parent are synced).
    /// On a file system whose durability cannot be established the log
    /// opens offline for writes ([`OfflineCause::DurabilityUnknown`]).
    pub fn create(
        dir: &Path,
        config: LogConfig,
        start_offset: Offset,
        flusher: &Flusher,
        disk: Arc<dyn Disk>,
        now_ms: i64,
    ) -> Result<Log, OpenError> {
        config.validate()?;
        // Its parent is synced also when `dir` existed: a create that
        // failed before may have made it without syncing its parent.
        create_dir_durably_on(disk.as_ref(), dir)?;
        let file_system = file_system_of(dir, flusher, &disk)?;
        let segment = Segment::create(dir, start_offset, &config, now_ms, disk.as_ref())?;
        sync_dir_on(disk.as_ref(), dir)?;
        Ok(Log::assemble(
            dir,
            config,
            vec![segment],
            (start_offset, start_offset),
            flusher,
            (disk, file_system),
        ))
    }

    /// Opens the log in `dir`: trusts what a clean shutdown left, or
    /// validates everything after the recovery point and cuts the log at
    /// the first bad or partial batch (see [`RecoveryHints`]).
    pub fn open(
        dir: &Path,
        config: LogConfig,
        hints: RecoveryHints,
        flusher: &Flusher,
        disk: Arc<dyn Disk>,
        now_ms: i64,
    ) -> Result<(Log, RecoveryReport), OpenError> {
        config.validate()?;
        let file_system = file_system_of(dir, flusher, &disk)?;
        let (segments, log_start_offset, report) =
            load_segments(dir, &config, &hints, (disk.as_ref(), &file_system), now_ms)?;
        let clean_point = read_clean_point(dir)?.unwrap_or(log_start_offset);
        let log = Log::assemble(
            dir,
            config,
            segments,
            (log_start_offset, clean_point),
            flusher,
            (disk, file_system),
        );
        Ok((log, report))
    }

    fn assemble(
        dir: &Path,
        config: LogConfig,
        segments: Vec<Segment>,
        (log_start_offset, clean_point): (Offset, Offset),
        flusher: &Flusher,
        (disk, file_system): (Arc<dyn Disk>, Arc<FileSystem>),
    ) -> Log {
        let end = segments
            .last()
            .expect("loading leaves an active segment")
            .next_offset();
        let interval = interval_of(&config);
        let shared = Arc::new(LogShared {
            dir: dir.to_path_buf(),
            disk,
            state: RwLock::new(LogState {
                config,
                segments,
                log_start_offset,
                unflushed_messages: 0,
                unsynced: Vec::new(),
                dir_dirty: false,
                closed: false,
                truncations: 0,
                clean_point,
            }),
            durability: Durability::new(end, interval, file_system.error_epoch()),
            file_system,
            flush_lock: Mutex::new(()),
            cleaner_lock: Mutex::new(()),
            flusher: flusher.handle(),
            interval_watched: AtomicBool::new(false),
            reads_refused: AtomicBool::new(false),
        });
        if interval.is_some() {
            shared.watch_interval();
        }
        if let Err(reason) = shared.file_system.sync_choice() {
            shared.durability.fail(LogFailed {
                dir: dir.to_path_buf(),
                cause: OfflineCause::DurabilityUnknown {
                    reason: reason.to_string(),
                },
            });
        }
        Log { shared }
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Validates `batch` as a producer's (see
    /// [`rill_record::validate_produced`]), assigns it the next offsets,
    /// stamps `leader_epoch` (and, for LogAppendTime logs, `now_ms`) into
    /// it and writes it. Nothing of a refused batch is written.
    pub fn append(
        &self,
        batch: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendTicket, AppendError> {
        let mut stored = Vec::new();
        self.append_validated(self.validate(batch, &mut stored)?, leader_epoch, now_ms)
    }

    /// Checks `batch` as [`Log::append`] would, against this log's
    /// max.message.bytes and record rules, so that a caller can read its
    /// header (producer id, sequence) before deciding to append it with
    /// [`Log::append_validated`], without the CRC being computed twice.
    ///
    /// The batch to store is `batch` itself unless the log's rules change
    /// it (`compression.type` naming another codec): then it is written
    /// into `stored` and checked again, max.message.bytes included, as
    /// Kafka does after recompressing.
    pub fn validate<'a>(
        &self,
        batch: &'a [u8],
        stored: &'a mut Vec<u8>,
    ) -> Result<ValidatedBatch<'a>, AppendError> {
        let config = self.shared.state.read().config;
        let max_message_bytes = config.max_message_bytes as usize;
        let view = validate_produced(batch, max_message_bytes)?;
        let Some(recompressed) = apply_record_rules(&view, &config.record_rules())? else {
            return Ok(ValidatedBatch { view });
        };
        *stored = recompressed;
        let stored: &'a [u8] = stored;
        let view = validate_produced(stored, max_message_bytes)?;
        Ok(ValidatedBatch { view })
    }

    /// [`Log::append`] of a batch that [`Log::validate`] has checked.
    pub fn append_validated(
        &self,
        batch: ValidatedBatch<'_>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendTicket, AppendError> {
        self.append_batch(batch.view, Placement::Assign { leader_epoch }, now_ms)
    }

    /// Appends one whole v2 batch exactly as the leader stored it: a
    /// follower copying the leader's log. The bytes are written unchanged
    /// — baseOffset, partitionLeaderEpoch and the timestamps are never
    /// restamped, whatever this log's message.timestamp.type, so the CRC
    /// holds and the follower's log is the leader's, byte for byte.
    ///
    /// The batch is checked as [`Log::validate_replicated`] says, and its
    /// base offset must be at or after the log end offset: offsets may
    /// jump forward (the leader's compaction removed whole batches), and
    /// the log end offset afterwards is the batch's last offset
    /// (baseOffset + lastOffsetDelta) + 1. A batch below the log end is
    /// [`AppendError::BaseOffsetBelowLogEnd`], and nothing is written.
    ///
    /// Everything else is as for [`Log::append`]: segment.bytes bounds
    /// the batch, the log rolls (a new segment is named by the batch's
    /// base offset), both indexes are kept (the time index with the
    /// batch's maxTimestamp), an offline or closed log refuses it, and the
    /// ticket resolves under the flush policy (under `fsync` after an
    /// fdatasync covers it, group-committed with other appends).
    pub fn append_replicated(
        &self,
        batch: &[u8],
        now_ms: i64,
    ) -> Result<AppendTicket, AppendError> {
        self.append_replicated_validated(self.validate_replicated(batch)?, now_ms)
    }

    /// Checks `batch` as [`Log::append_replicated`] would (see
    /// [`rill_record::validate_replicated`]: framing, one whole batch,
    /// CRC-32C, a sane offset range; no producer rules and no
    /// max.message.bytes, as Kafka's follower), so that a caller can read
    /// its header before appending it with
    /// [`Log::append_replicated_validated`]. Whether it follows the log
    /// end is checked at the append, under the log's lock.
    pub fn validate_replicated<'a>(
        &self,
        batch: &'a [u8],
    ) -> Result<ReplicatedBatch<'a>, AppendError> {
        let view = validate_replicated(batch)?;
        Ok(ReplicatedBatch { view })
    }

    /// [`Log::append_replicated`] of a batch that
    /// [`Log::validate_replicated`] has checked.
    pub fn append_replicated_validated(
        &self,
        batch: ReplicatedBatch<'_>,
        now_ms: i64,
    ) -> Result<AppendTicket, AppendError> {
        self.append_batch(batch.view, Placement::AsStored, now_ms)
    }

    /// Writes a validated batch at the offsets `placement` gives it; the
    /// one append path under [`Log::append_validated`] and
    /// [`Log::append_replicated_validated`].
    fn append_batch(
        &self,
        view: BatchView<'_>,
        placement: Placement,
        now_ms: i64,
    ) -> Result<AppendTicket, AppendError> {
        let batch = view.as_bytes();
        let mut state = self.shared.state.write();
        self.shared.durability.check()?;
        if state.closed {
            return Err(AppendError::Closed {
                dir: self.shared.dir.clone(),
            });
        }
        // Before anything touches the active segment's maps: a store past
        // the end of a file cut under the log would be a SIGBUS.
        self.shared.check_segment(&state, state.active())?;
        let config = state.config;
        if batch.len() > config.segment_bytes as usize {
            return Err(AppendError::BatchLargerThanSegment {
                batch_bytes: batch.len(),
                segment_bytes: config.segment_bytes,
            });
        }
        let stamp = placement.stamp(&view, state.log_end(), &config, now_ms)?;
        let base_offset = stamp.base_offset;
        // A producer's batch spans recordsCount offsets (validated to
        // agree); a replicated one may span more, after compaction.
        let offsets = i64::from(view.last_offset_delta()) + 1;
        let last_offset = match base_offset.value().checked_add(offsets) {
            Some(end) if end <= LOG_END_OFFSET_MAX => Offset(end - 1),
            _ => {
                return Err(AppendError::OffsetOverflow {
                    base_offset,
                    offsets,
                });
            }
        };
        let max_timestamp = stamp.log_append_time_ms.unwrap_or(view.max_timestamp());
        let rolled = if state.active_mut().should_roll(
            batch.len(),
            max_timestamp,
            last_offset,
            &config,
            now_ms,
        ) {
            self.shared.roll(&mut state, base_offset, now_ms)?;
            true
        } else {
            false
        };
        let appended =
            state
                .active_mut()
                .append(batch, &stamp, &config, self.shared.disk.as_ref())?;
        assert_eq!(
            appended.last_offset, last_offset,
            "the segment places the batch where the log does"
        );
        let records = u64::try_from(view.records_count()).unwrap_or(0);
        state.unflushed_messages += records;
        let wait_for_sync = match config.flush {
            FlushPolicy::Fsync => true,
            FlushPolicy::Interval { messages, .. } => state.unflushed_messages >= messages,
            FlushPolicy::None => false,
        };
        let info = AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms: match placement {
                Placement::Assign { .. } => stamp.log_append_time_ms,
                Placement::AsStored => (view.attributes().timestamp_type()
                    == TimestampType::LogAppendTime)
                    .then_some(view.max_timestamp()),
            },
            max_timestamp: appended.max_timestamp,
            log_start_offset: state.log_start_offset,
        };
        let (schedule, deadline_starts, generation) = {
            let mut durable = self.shared.durability.lock();
            // The first unflushed append of an `interval` log starts its
            // flush.ms clock, which an idle flusher must learn about.
            let deadline_starts =
                durable.interval.is_some() && durable.log_end <= durable.flushed_end;
            durable.log_end = last_offset.plus(1);
            let schedule = (wait_for_sync || rolled) && !durable.scheduled;
            durable.scheduled |= schedule;
            (schedule, deadline_starts, durable.generation)
        };
        drop(state);
        if schedule {
            self.shared.flusher.schedule(Arc::clone(&self.shared));
        } else if deadline_starts {
            self.shared.flusher.recheck_deadlines();
        }
        Ok(if wait_for_sync {
            AppendTicket::pending(info, Arc::clone(&self.shared), generation)
        } else {
            AppendTicket::ready(info)
        })
    }

    /// Reads whole batches from the one that holds `from`, up to
    /// `max_bytes` (but at least one batch if `min_one_batch`), from a
    /// single segment, never including a batch that reaches `upper` (the
    /// high watermark, for consumers). Reading at the log end, or at or
    /// past `upper`, gives no bytes; outside [log start, log end] is an
    /// error.
    pub fn read(
        &self,
        from: Offset,
        max_bytes: usize,
        upper: Offset,
        min_one_batch: bool,
    ) -> Result<LogRead, ReadError> {
        let state = self.shared.state.read();
        self.shared.check_readable()?;
        let (log_start_offset, log_end_offset) = (state.log_start_offset, state.log_end());
        if from < log_start_offset || from > log_end_offset {
            return Err(ReadError::OffsetOutOfRange {
                offset: from,
                log_start: log_start_offset,
                log_end: log_end_offset,
            });
        }
        let upper = upper.min(log_end_offset);
        let mut bytes = Bytes::new();
        if from < upper {
            for segment in &state.segments[state.segment_index(from)..] {
                // One check per call, of the one segment read (two fstats).
                self.shared.check_segment_for_read(&state, segment)?;
                let start = segment.position_of(from);
                if start == segment.size() {
                    continue; // `from` lies in a gap after this segment's batches
                }
                let limit = segment.position_of(upper);
                if limit > start {
                    let end = segment.read_end(start, limit, max_bytes, min_one_batch);
                    bytes = segment.share(start, end);
                }
                break;
            }
        }
        Ok(LogRead {
            bytes,
            log_start_offset,
            log_end_offset,
        })
    }

    pub fn log_start_offset(&self) -> Offset {
        self.shared.state.read().log_start_offset
    }

    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> Offset {
        self.shared.state.read().log_end()
    }

    /// Every append below this offset may be acknowledged under the flush
    /// policy: the flushed end under `fsync`, the log end otherwise. On a
    /// single replica this is the high watermark: consumers never see
    /// what a crash could take back from an `fsync` log.
    pub fn acknowledged_end_offset(&self) -> Offset {
        let state = self.shared.state.read();
        match state.config.flush {
            FlushPolicy::Fsync => self
                .shared
                .durability
                .lock()
                .flushed_end
                .min(state.log_end()),
            FlushPolicy::Interval { .. } | FlushPolicy::None => state.log_end(),
        }
    }

    /// A ticket for a range appended earlier (the original of a batch a
    /// producer sent again): it resolves, with `info`, once
    /// `info.last_offset` is below [`Log::acknowledged_end_offset`] —
    /// under `fsync` once a sync covers it, under the other policies at
    /// once — so a retry is never acknowledged before its original could be.
    ///
    /// # Panics
    ///
    /// If `info.last_offset` is not below the log end offset: the caller
    /// may only name offsets this log has assigned.
    pub fn ticket_for_appended(&self, info: AppendInfo) -> AppendTicket {
        let state = self.shared.state.read();
        assert!(
            info.base_offset <= info.last_offset && info.last_offset < state.log_end(),
            "a ticket for offsets {}..={} the log (end {}) never assigned",
            info.base_offset,
            info.last_offset,
            state.log_end()
        );
        if state.config.flush != FlushPolicy::Fsync {
            return AppendTicket::ready(info);
        }
        let durable = self.shared.durability.lock();
        if info.last_offset < durable.flushed_end {
            return AppendTicket::ready(info);
        }
        // The original append scheduled the sync that will cover it; a
        // truncation since (a new generation) would have synced it first.
        let generation = durable.generation;
        drop(durable);
        drop(state);
        self.shared.schedule_flush();
        AppendTicket::pending(info, Arc::clone(&self.shared), generation)
    }

    /// The base offset of the active segment: it changes when the log
    /// rolls.
    pub fn active_segment_base_offset(&self) -> Offset {
        self.shared.state.read().active().base_offset()
    }

    /// Every offset below this is on disk: the recovery point to checkpoint.
    pub fn flushed_end_offset(&self) -> Offset {
        self.shared.durability.lock().flushed_end
    }

    /// Bytes of batches in all segments.
    pub fn size_bytes(&self) -> u64 {
        let state = self.shared.state.read();
        state.segments.iter().map(|s| u64::from(s.size())).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.shared.state.read().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        let state = self.shared.state.read();
        state.segments.iter().map(Segment::base_offset).collect()
    }

    pub fn config(&self) -> LogConfig {
        self.shared.state.read().config
    }

    /// Applies a new configuration to future appends, rolls and retention.
    pub fn set_config(&self, config: LogConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let interval = interval_of(&config);
        self.shared.state.write().config = config;
        self.shared.durability.lock().interval = interval;
        if interval.is_some() {
            self.shared.watch_interval();
        }
        Ok(())
    }

    /// Whether the log is offline (a sync failed, or a file changed under
    /// it) and refuses writes, and maybe reads, until reopened.
    pub fn failure(&self) -> Option<LogFailed> {
        self.shared.durability.check().err()
    }

    /// Takes the log offline for writes, as a failed sync of its own files
    /// would: for a failed sync elsewhere in its log directory (a
    /// checkpoint), after which the directory's disk is not to be trusted.
    /// Reads go on; reopening the log (a restart) runs recovery.
    pub fn take_offline_for_writes(&self, reason: String) {
        self.shared.fail_write(reason);
    }

    /// Whether reads are still served: they are refused once a file
    /// changed under the log (see [`LogFailed::allows_reads`]). No
    /// syscall: it says what earlier checks found.
    pub fn check_readable(&self) -> Result<(), LogFailed> {
        self.shared.check_readable()
    }

    /// Checks that no file of any segment was removed or cut shorter
    /// under the log (3 fstats a segment), taking the log offline if one
    /// was; [`Log::apply_retention`] begins with it. An offline log
    /// reports why.
    pub fn check_files(&self) -> Result<(), LogFailed> {
        let state = self.shared.state.read();
        self.shared.check_everything(&state)
    }

    /// Syncs everything appended so far and returns the flushed end.
    pub fn flush(&self) -> Result<Offset, LogFailed> {
        let _flushing = self.shared.flush_lock.lock();
        let mut state = self.shared.state.write();
        self.shared.sync_locked(&mut state)?;
        Ok(self.flushed_end_offset())
    }

    /// Removes every batch that holds an offset >= `offset` (a batch that
    /// straddles it goes whole) and returns the new log end offset. All
    /// earlier appends are made durable first, so their tickets resolve
    /// truthfully, and the cut itself is durable on return. At or below
    /// the log start, the log is emptied and restarts at `offset`; if the
    /// cut leaves nothing at or above the log start, it restarts there.
    pub fn truncate_to(&self, offset: Offset) -> Result<Offset, ModifyError> {
        let _flushing = self.shared.flush_lock.lock();
        let mut state = self.shared.state.write();
        self.shared.check_writable(&state)?;
        if offset >= state.log_end() {
            return Ok(state.log_end());
        }
        self.shared.check_segments(&state)?;
        self.shared.sync_locked(&mut state)?;
        let log_start = state.log_start_offset;
        let result = if offset <= log_start {
            self.shared
                .restart_locked(&mut state, offset)
                .map(|()| offset)
        } else if state.segments[state.segment_index(offset)].end_if_truncated_to(offset)
            <= log_start
        {
            // The cut batch straddles the log start: nothing readable is
            // left, so the log restarts, empty, at its start.
            self.shared
                .restart_locked(&mut state, log_start)
                .map(|()| log_start)
        } else {
            self.shared.cut_locked(&mut state, offset)
        };
        self.shared.offline_on_error(result)
    }

    /// Deletes every segment and starts the log again, empty, at `offset`
    /// (which becomes the log start offset). As with
    /// [`Log::truncate_to`], earlier appends are made durable first.
    pub fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<(), ModifyError> {
        let _flushing = self.shared.flush_lock.lock();
        let mut state = self.shared.state.write();
        self.shared.check_writable(&state)?;
        self.shared.sync_locked(&mut state)?;
        let result = self.shared.restart_locked(&mut state, offset);
        self.shared.offline_on_error(result)
    }

    /// Moves the log start offset forward to `offset` (DeleteRecords):
    /// reads below it fail from now on, and segments wholly below it are
    /// deleted. Returns the new log start offset.
    pub fn advance_log_start(&self, offset: Offset) -> Result<Offset, ModifyError> {
        let mut state = self.shared.state.write();
        self.shared.check_writable(&state)?;
        let log_end = state.log_end();
        if offset > log_end {
            return Err(ModifyError::BeyondLogEnd {
                requested: offset,
                log_end,
            });
        }
        if offset > state.log_start_offset {
            state.log_start_offset = offset;
        }
        let removed = self.shared.remove_prefix(&mut state, 0);
        let log_start = state.log_start_offset;
        drop(state);
        delete_segment_files(&removed, self.shared.disk.as_ref())?;
        Ok(log_start)
    }

    /// One compaction pass (cleanup.policy `compact` or `compact,delete`),
    /// as Kafka's log cleaner: if the dirty share of the cleanable segments
    /// is above min.cleanable.dirty.ratio (or the oldest dirty record is
    /// past max.compaction.lag.ms), keeps only the latest record of each
    /// key in the sealed segments below `upper` (the high watermark) and
    /// older than min.compaction.lag.ms, never touching the active
    /// segment. Offsets are kept, so reads see gaps. Tombstones go once
    /// delete.retention.ms has passed since a pass first kept them.
    ///
    /// Blocking and possibly long: call it from a background thread.
    /// Appends and reads go on meanwhile; the write lock is taken only to
    /// swap each cleaned segment in. If the log is truncated or closed
    /// meanwhile the pass stops (`aborted`). A log whose policy lacks
    /// `compact` is left alone.
    pub fn compact(
        &self,
        now_ms: i64,
        upper: Offset,
        cleaner: &CleanerConfig,
    ) -> Result<CompactionOutcome, CompactError> {
        let _cleaning = self.shared.cleaner_lock.lock();
        let (config, views, first_dirty, truncations) = {
            let state = self.shared.state.read();
            if state.closed {
                return Err(CompactError::Closed {
                    dir: self.shared.dir.clone(),
                });
            }
            self.shared.durability.check()?;
            let first_dirty = state
                .clean_point
                .max(state.log_start_offset)
                .min(state.log_end());
            let sealed = &state.segments[..state.segments.len() - 1];
            // The pass reads these in user space, outside the lock, for a
            // while: a truncation during it is the window file_check.rs
            // describes, at its widest.
            for segment in sealed {
                self.shared.check_segment(&state, segment)?;
            }
            let views: Vec<SealedView> = sealed.iter().map(Segment::sealed_view).collect();
            (state.config, views, first_dirty, state.truncations)
        };
        let mut outcome = CompactionOutcome {
            first_dirty_offset: first_dirty,
            clean_point: first_dirty,
            ..CompactionOutcome::default()
        };
        if !config.cleanup_policy.compact {
            return Ok(outcome);
        }
        let Some(plan) = plan(&views, first_dirty, upper, now_ms, &config) else {
            return Ok(outcome);
        };
        outcome.dirty_ratio = plan.dirty_ratio;
        if !plan.due {
            return Ok(outcome);
        }
        outcome.ran = true;
        let (map, map_end) = build_offset_map(
            &views[plan.dirty_from..plan.cleanable],
            plan.first_dirty,
            cleaner.dedupe_buffer_bytes,
        )?;
        let to_clean = views[..plan.cleanable]
            .iter()
            .take_while(|v| v.base_offset < map_end)
            .count();
        let views = &views[..to_clean];
        let producers_last = producers_last_batches(views);
        let context = CleanContext {
            map: &map,
            map_end,
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            producers_last: &producers_last,
        };
        let disk = self.shared.disk.as_ref();
        for range in group_segments(views, config.segment_bytes) {
            let group = &views[range];
            let cleaned = clean_group(
                &self.shared.dir,
                group,
                &context,
                &config,
                disk,
                &mut outcome,
            )?;
            if !self.shared.swap_in(cleaned, group, truncations)? {
                outcome.aborted = true;
                return Ok(outcome);
            }
            outcome.segments_cleaned += group.len();
            outcome.segments_written += 1;
        }
        // Truncations take the flush lock first, so none can move the
        // clean point between this check and the checkpoint.
        let _flushing = self.shared.flush_lock.lock();
        if self.shared.state.read().truncations != truncations {
            outcome.aborted = true;
            return Ok(outcome);
        }
        write_clean_point(self.shared.disk.as_ref(), &self.shared.dir, map_end)?;
        self.shared.state.write().clean_point = map_end;
        outcome.clean_point = map_end;
        tracing::debug!(
            dir = %self.shared.dir.display(),
            clean_point = %map_end,
            segments = outcome.segments_cleaned,
            bytes_before = outcome.bytes_before,
            bytes_after = outcome.bytes_after,
            "compacted log"
        );
        Ok(outcome)
    }

    /// The first dirty offset: every record below it has been compacted
    /// (the log start when never compacted).
    pub fn clean_point(&self) -> Offset {
        let state = self.shared.state.read();
        state
            .clean_point
            .max(state.log_start_offset)
            .min(state.log_end())
    }

    /// Deletes the oldest segments that retention.ms, retention.bytes or
    /// the log start offset no longer keep, but none that holds offsets at
    /// or beyond `upper` (the high watermark). When everything has
    /// expired, the active segment is rolled so it can go too.
    pub fn apply_retention(
        &self,
        now_ms: i64,
        upper: Offset,
    ) -> Result<RetentionOutcome, ModifyError> {
        let mut state = self.shared.state.write();
        // This pass is what notices a file changed under an idle log; an
        // offline log is left as it is, for recovery to look at.
        self.shared.check_everything(&state)?;
        let mut rolled = false;
        let mut count = deletable_prefix(
            &state.segments,
            &state.config,
            state.log_start_offset,
            now_ms,
            upper,
        );
        if count == state.segments.len() {
            // Every segment, the active one included, has expired.
            if state.active().is_empty() {
                count -= 1;
            } else {
                let log_end = state.log_end();
                self.shared.roll(&mut state, log_end, now_ms)?;
                rolled = true;
            }
        }
        let removed = self.shared.remove_prefix(&mut state, count);
        let outcome = RetentionOutcome {
            segments_deleted: removed.len(),
            bytes_deleted: removed.iter().map(|s| u64::from(s.size())).sum(),
            log_start_offset: state.log_start_offset,
        };
        drop(state);
        if rolled {
            self.shared.schedule_flush();
        }
        delete_segment_files(&removed, self.shared.disk.as_ref())?;
        Ok(outcome)
    }

    /// The first record whose timestamp is >= `target` among offsets from
    /// the log start up to `upper`: (offset, timestamp). Compressed batches
    /// are expanded to find the exact record.
    pub fn offset_for_timestamp(
        &self,
        target: i64,
        upper: Offset,
    ) -> Result<Option<(Offset, i64)>, ReadError> {
        let state = self.shared.state.read();
        self.shared.check_readable()?;
        let from = state.log_start_offset;
        for segment in &state.segments[state.segment_index(from)..] {
            if segment.base_offset() >= upper {
                break;
            }
            if segment.max_timestamp() < target {
                continue;
            }
            self.shared.check_segment(&state, segment)?;
            if let Some(found) = segment.find_timestamp(target, from, upper)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The first record with the largest timestamp among offsets from the
    /// log start up to `upper` (ListOffsets' MAX_TIMESTAMP).
    pub fn max_timestamp_record(&self, upper: Offset) -> Result<Option<(Offset, i64)>, ReadError> {
        let state = self.shared.state.read();
        self.shared.check_readable()?;
        let from = state.log_start_offset;
        let mut best: Option<(Offset, i64)> = None;
        for segment in &state.segments[state.segment_index(from)..] {
            if segment.base_offset() >= upper {
                break;
            }
            if best.is_some_and(|(_, timestamp)| segment.max_timestamp() <= timestamp) {
                continue;
            }
            self.shared.check_segment(&state, segment)?;
            if let Some((offset, timestamp)) = segment.max_timestamp_record(from, upper)? {
                if best.is_none_or(|(_, best_timestamp)| timestamp > best_timestamp) {
                    best = Some((offset, timestamp));
                }
            }
        }
        Ok(best)
    }

    /// Shuts the log down cleanly: syncs everything, trims the active
    /// segment's files to their contents, and returns the log end offset
    /// (the recovery point to checkpoint), so that the next open trusts
    /// the files without reading them. Reads still work afterwards;
    /// appends and truncations are refused. Closing twice is harmless.
    pub fn close(&self) -> Result<Offset, ModifyError> {
        let _flushing = self.shared.flush_lock.lock();
        let mut state = self.shared.state.write();
        if state.closed {
            return Ok(state.log_end());
        }
        // Sealing a cut file would extend it with zeros, and the clean
        // start after this close would then trust them.
        self.shared.check_segments(&state)?;
        self.shared.sync_locked(&mut state)?;
        let end = state.log_end();
        let active = state.active_mut();
        active.seal()?;
        for (file, path) in active.sync_files() {
            self.shared
                .disk
                .sync_data(&file)
                .map_err(|e| IoFailure::new("sync segment", path, e))?;
        }
        sync_dir_on(self.shared.disk.as_ref(), &self.shared.dir)?;
        state.closed = true;
        Ok(end)
    }
}

impl LogShared {
    pub(crate) fn durability(&self) -> &Durability {
        &self.durability
    }

    /// Puts the log on the flusher's flush.ms watch list, once.
    fn watch_interval(self: &Arc<Self>) {
        if !self.interval_watched.swap(true, Ordering::Relaxed) {
            self.flusher.watch_interval(Arc::downgrade(self));
        }
    }

    /// Refuses reads once a file changed under the log.
    fn check_readable(&self) -> Result<(), LogFailed> {
        if self.reads_refused.load(Ordering::Acquire) {
            self.durability.check()?;
        }
        Ok(())
    }

    /// Checks the files a read of `segment` touches (see file_check.rs),
    /// taking the log offline if one changed.
    fn check_segment_for_read(&self, state: &LogState, segment: &Segment) -> Result<(), LogFailed> {
        self.judge(state, segment.check_read_files())
    }

    /// Checks every file of `segment`, taking the log offline if one changed.
    fn check_segment(&self, state: &LogState, segment: &Segment) -> Result<(), LogFailed> {
        self.judge(state, segment.check_files())
    }

    /// Checks every file of every segment.
    fn check_segments(&self, state: &LogState) -> Result<(), LogFailed> {
        state
            .segments
            .iter()
            .try_for_each(|segment| self.check_segment(state, segment))
    }

    /// Takes the log offline if a check found a file changed.
    fn judge(
        &self,
        state: &LogState,
        checked: Result<(), SegmentFileChanged>,
    ) -> Result<(), LogFailed> {
        match checked {
            Ok(()) => Ok(()),
            // Deleting a partition closes its log, then removes its
            // files; whoever still holds the log reads the open files.
            Err(SegmentFileChanged::Removed { .. }) if state.closed => Ok(()),
            Err(changed) => Err(self.file_changed(changed)),
        }
    }

    /// Every file of every segment, unless reads are refused already, and
    /// then whether the log is offline for any reason.
    fn check_everything(&self, state: &LogState) -> Result<(), LogFailed> {
        self.check_readable()?;
        self.check_segments(state)?;
        self.durability.check()
    }

    /// Takes the log offline for reads and writes: `changed` was found.
    /// Returns the failure that reads and writes now report.
    fn file_changed(&self, changed: SegmentFileChanged) -> LogFailed {
        let failed = LogFailed {
            dir: self.dir.clone(),
            cause: OfflineCause::FileChanged(changed),
        };
        self.durability.fail(failed.clone());
        self.reads_refused.store(true, Ordering::Release);
        failed
    }

    fn check_writable(&self, state: &LogState) -> Result<(), ModifyError> {
        self.durability.check()?;
        if state.closed {
            return Err(ModifyError::Closed {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at `next`: the log
    /// end, or a replicated batch's base offset past it (the segment is
    /// then named by its first batch). The new file exists before the old
    /// one is trimmed, so a failure leaves the old one active. An empty
    /// active segment is replaced rather than sealed: only a replicated
    /// batch whose offsets lie too far past its base to be indexed
    /// relative to it rolls one.
    fn roll(
        &self,
        state: &mut RwLockWriteGuard<'_, LogState>,
        next: Offset,
        now_ms: i64,
    ) -> Result<(), IoFailure> {
        assert!(
            next >= state.log_end(),
            "rolling at {next}, below the log end {}",
            state.log_end()
        );
        let config = state.config;
        let fresh = Segment::create(&self.dir, next, &config, now_ms, self.disk.as_ref())?;
        if state.active().is_empty() {
            assert!(
                next > state.active().base_offset(),
                "an empty segment is replaced only by a later one"
            );
            if let Err(e) = state.active().delete_files(self.disk.as_ref()) {
                let _ = fresh.delete_files(self.disk.as_ref()); // best effort, as below
                return Err(e);
            }
            state.segments.pop();
            state.segments.push(fresh);
            state.dir_dirty = true;
            tracing::debug!(dir = %self.dir.display(), base_offset = %next, "replaced empty segment");
            return Ok(());
        }
        if let Err(e) = state.active_mut().seal() {
            // Best effort: the half-made segment would otherwise be found
            // at the next open, empty, which recovery also handles.
            let _ = fresh.delete_files(self.disk.as_ref());
            return Err(e);
        }
        let sealed_files = state.active().sync_files();
        state.unsynced.extend(sealed_files);
        state.segments.push(fresh);
        state.dir_dirty = true;
        tracing::debug!(dir = %self.dir.display(), base_offset = %next, "rolled segment");
        Ok(())
    }

    /// Removes the leading segments no longer needed: the first `count`,
    /// and any wholly below the log start offset; never the active one.
    /// Returns them for deletion outside the lock.
    fn remove_prefix(&self, state: &mut LogState, count: usize) -> Vec<Segment> {
        let below_start = state
            .segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset() <= state.log_start_offset)
            .count();
        let count = count.max(below_start).min(state.segments.len() - 1);
        let removed: Vec<Segment> = state.segments.drain(..count).collect();
        let first_base = state.segments[0].base_offset();
        if first_base > state.log_start_offset {
            state.log_start_offset = first_base;
        }
        removed
    }

    fn schedule_flush(self: &Arc<Self>) {
        let schedule = {
            let mut durable = self.durability.lock();
            let schedule = !durable.scheduled;
            durable.scheduled = true;
            schedule
        };
        if schedule {
            self.flusher.schedule(Arc::clone(self));
        }
    }

    /// What a sync now would cover; `None` when nothing is pending. With
    /// `from_round`, clears the scheduled mark when there is nothing to do,
    /// under the state lock, so that a concurrent append reschedules.
    fn capture(&self, state: &mut LogState, from_round: bool) -> Option<FlushCapture> {
        let end = state.log_end();
        let mut durable = self.durability.lock();
        if durable.failed.is_some()
            || (end <= durable.flushed_end && state.unsynced.is_empty() && !state.dir_dirty)
        {
            if from_round {
                durable.scheduled = false;
            }
            return None;
        }
        let generation = durable.generation;
        drop(durable);
        let mut files = std::mem::take(&mut state.unsynced);
        files.extend(state.active().sync_files());
        let sync_dir = std::mem::replace(&mut state.dir_dirty, false);
        state.unflushed_messages = 0;
        Some(FlushCapture {
            end,
            generation,
            files,
            sync_dir,
        })
    }

    /// Syncs the captured files (sealed segments first, then the active
    /// one, then the directory) and records the new flushed end. A failure
    /// takes the log offline.
    fn sync(&self, capture: FlushCapture) -> Result<(), LogFailed> {
        // Read before the syncs: an error that bumps the epoch meanwhile
        // may not be among those these fdatasyncs report.
        let epoch = self.file_system.error_epoch();
        let started = std::time::Instant::now();
        let result = capture
            .files
            .iter()
            .try_for_each(|(file, path)| {
                self.disk
                    .sync_data(file)
                    .map_err(|e| IoFailure::new("sync segment", path, e))
            })
            .and_then(|()| {
                if capture.sync_dir {
                    sync_dir_on(self.disk.as_ref(), &self.dir)
                } else {
                    Ok(())
                }
            });
        note_slow_sync(started, "fdatasync", self.file_system.device);
        match result {
            Ok(()) => {
                self.durability.lock().checked_error_epoch = epoch;
                self.durability.complete(capture.end, capture.generation);
                Ok(())
            }
            Err(failure) => {
                let failed = LogFailed {
                    dir: self.dir.clone(),
                    cause: OfflineCause::WriteFailed {
                        reason: failure.to_string(),
                    },
                };
                self.durability.fail(failed.clone());
                Err(failed)
            }
        }
    }

    /// Syncs whatever is pending while the caller holds the flush lock
    /// and the state lock, so nothing is appended meanwhile.
    fn sync_locked(&self, state: &mut LogState) -> Result<(), LogFailed> {
        if let Some(capture) = self.capture(state, false) {
            self.sync(capture)?;
        }
        self.durability.check()
    }

    /// Whether this log and `other` are synced together: the same file
    /// system, through the same disk (a file system is known per disk).
    pub(crate) fn syncs_with(&self, other: &LogShared) -> bool {
        Arc::ptr_eq(&self.file_system, &other.file_system)
    }

    /// A flusher round's work on `logs`, which all sync together (see
    /// [`LogShared::syncs_with`]): captures what each has pending, then
    /// makes it durable — with one syncfs when more than one file is due
    /// and the file system's syncfs is a real sync ([`crate::SyncMode`]);
    /// else each log fdatasyncs its own files and fsyncs its directory. A
    /// log the syncfs cannot vouch for (it failed, or the log has not
    /// checked its own files since one did) fdatasyncs its own files
    /// instead. Returns the logs that synced something; one
    /// with nothing pending leaves the flusher, one whose sync failed goes
    /// offline. The state locks are held only to capture, never across a
    /// sync.
    pub(crate) fn flush_together(logs: Vec<Arc<LogShared>>) -> Vec<Arc<LogShared>> {
        let flushing: Vec<_> = logs.iter().map(|log| log.flush_lock.lock()).collect();
        let captures: Vec<(usize, FlushCapture)> = logs
            .iter()
            .enumerate()
            .filter_map(|(i, log)| log.capture(&mut log.state.write(), true).map(|c| (i, c)))
            .collect();
        let files: usize = captures
            .iter()
            .map(|(_, capture)| capture.files.len() + usize::from(capture.sync_dir))
            .sum();
        let together = match captures.first() {
            Some((first, _)) if files > 1 && logs[*first].file_system.uses_syncfs() => {
                Some(logs[*first].file_system.sync())
            }
            _ => None,
        };
        let mut synced = vec![false; logs.len()];
        for (i, capture) in captures {
            let log = &logs[i];
            let vouched = match &together {
                Some((Ok(()), epoch)) => log.durability.lock().checked_error_epoch == *epoch,
                _ => false,
            };
            let result = if vouched {
                log.durability.complete(capture.end, capture.generation);
                Ok(())
            } else {
                log.sync(capture)
            };
            match result {
                Ok(()) => synced[i] = true,
                Err(_) => log.durability.lock().scheduled = false,
            }
        }
        drop(flushing);
        logs.into_iter()
            .zip(synced)
            .filter_map(|(log, synced)| synced.then_some(log))
            .collect()
    }

    /// Cuts the log at `offset`, above the log start (see
    /// [`Log::truncate_to`]); the caller has synced under the same locks.
    fn cut_locked(&self, state: &mut LogState, offset: Offset) -> Result<Offset, ModifyError> {
        let disk = self.disk.as_ref();
        let config = state.config;
        let keep = state.segment_index(offset);
        let removed: Vec<Segment> = state.segments.drain(keep + 1..).collect();
        delete_segment_files(&removed, disk)?;
        let segment = &mut state.segments[keep];
        segment.truncate_to(offset, &config, disk)?;
        let new_end = segment.next_offset();
        if segment.is_sealed() {
            // A sealed segment stays read-only: writing resumes in a new
            // active segment, which replaces the cut one if it is empty.
            let replaced = if segment.is_empty() {
                state.segments.pop()
            } else {
                None
            };
            let created = replaced
                .as_ref()
                .map_or(Ok(()), |s| s.delete_files(disk))
                .and_then(|()| Segment::create(&self.dir, new_end, &config, now_ms(), disk));
            match created {
                Ok(active) => state.segments.push(active),
                Err(e) => {
                    // Keep a segment in memory so the offline log still
                    // answers reads of what it holds.
                    state.segments.extend(replaced);
                    return Err(e.into());
                }
            }
        }
        sync_dir_on(self.disk.as_ref(), &self.dir)?;
        state.unsynced.clear();
        state.dir_dirty = false;
        state.unflushed_messages = 0;
        self.durability.reset(new_end);
        self.lower_clean_point(state, new_end)?;
        Ok(new_end)
    }

    /// Replaces all segments by an empty one at `offset`, the new log
    /// start; the caller has synced under the same locks.
    fn restart_locked(&self, state: &mut LogState, offset: Offset) -> Result<(), ModifyError> {
        let config = state.config;
        let old: Vec<Segment> = state.segments.drain(..).collect();
        let created = delete_segment_files(&old, self.disk.as_ref()).and_then(|()| {
            Segment::create(&self.dir, offset, &config, now_ms(), self.disk.as_ref())
        });
        match created {
            Ok(fresh) => state.segments.push(fresh),
            Err(e) => {
                // Keep the old segments in memory so the offline log still
                // answers reads of what it holds.
                state.segments = old;
                return Err(e.into());
            }
        }
        state.log_start_offset = offset;
        state.unsynced.clear();
        state.dir_dirty = false;
        state.unflushed_messages = 0;
        sync_dir_on(self.disk.as_ref(), &self.dir)?;
        self.durability.reset(offset);
        state.clean_point = Offset(i64::MIN);
        self.lower_clean_point(state, offset)?;
        Ok(())
    }

    /// After a truncation to `end`: no compaction pass in flight may swap
    /// anything in, and the clean point may not lie past the new end (the
    /// offsets after it will be written anew), durably, so that a crash
    /// cannot bring back a clean point over records never compacted.
    fn lower_clean_point(&self, state: &mut LogState, end: Offset) -> Result<(), IoFailure> {
        state.truncations += 1;
        if state.clean_point > end || state.clean_point == Offset(i64::MIN) {
            state.clean_point = end;
            write_clean_point(self.disk.as_ref(), &self.dir, end)?;
        }
        Ok(())
    }

    /// Swaps `cleaned` in for the segments of `group`, unless the log
    /// changed since the pass read them: it was closed, truncated, or one
    /// of them is gone (retention). Returns whether it swapped. Runs under
    /// the write lock: commit (rename to `.swap`, sync the directory),
    /// delete the old files (sync again), rename into place; a crash at
    /// any point is completed or undone by the next open. A failure after
    /// the commit takes the log offline, so that the reopen completes it.
    fn swap_in(
        &self,
        mut cleaned: Segment,
        group: &[SealedView],
        truncations: u64,
    ) -> Result<bool, CompactError> {
        let mut state = self.state.write();
        let first = state
            .segments
            .iter()
            .position(|s| s.base_offset() == group[0].base_offset);
        let unchanged = !state.closed
            && self.durability.check().is_ok()
            && state.truncations == truncations
            && first.is_some_and(|first| {
                first + group.len() < state.segments.len()
                    && state.segments[first..first + group.len()]
                        .iter()
                        .zip(group)
                        .all(|(s, v)| {
                            s.is_sealed()
                                && s.base_offset() == v.base_offset
                                && s.size() as usize == v.data.len()
                        })
            });
        let disk = self.disk.as_ref();
        let Some(first) = first.filter(|_| unchanged) else {
            drop(state);
            // Best effort: a leftover `.cleaned` file is deleted at the next open.
            let _ = cleaned.delete_files(disk);
            return Ok(false);
        };
        let sync_dir = || sync_dir_on(disk, &self.dir);
        // Not committed if either fails, as far as this process knows: if
        // the rename did reach the disk, the next open completes the swap,
        // which is as correct as not doing it.
        if let Err(e) = cleaned.rename_to(FileStage::Swap, disk) {
            let _ = cleaned.delete_files(disk); // best effort, as above
            return Err(e.into());
        }
        if let Err(e) = sync_dir() {
            let _ = cleaned.delete_files(disk); // best effort, as above
            // As after a failed fdatasync: the disk is not to be trusted.
            self.fail_write(format!("compaction swap could not commit: {e}"));
            return Err(e.into());
        }
        let replaced = state.segments[first..first + group.len()]
            .iter()
            .try_for_each(|s| s.delete_files(disk))
            .and_then(|()| sync_dir())
            .and_then(|()| cleaned.rename_to(FileStage::Live, disk));
        if let Err(e) = replaced {
            self.fail_write(format!("compaction swap failed after its commit: {e}"));
            return Err(e.into());
        }
        let old: Vec<Segment> = state
            .segments
            .splice(first..first + group.len(), [cleaned])
            .collect();
        drop(state);
        drop(old); // readers' slices keep the old maps alive
        // Until this sync, a crash leaves the `.swap` name, which the next
        // open completes; a failed one leaves the files unknown.
        if let Err(e) = sync_dir() {
            self.fail_write(format!("compaction swap could not sync its directory: {e}"));
            return Err(e.into());
        }
        Ok(true)
    }

    /// Takes the log offline for writes: a write or sync failed, so the
    /// files are no longer known to match what the log holds.
    fn fail_write(&self, reason: String) {
        self.durability.fail(LogFailed {
            dir: self.dir.clone(),
            cause: OfflineCause::WriteFailed { reason },
        });
    }

    /// A truncation that fails part-way leaves files and memory out of
    /// step: the log goes offline until reopened (recovery sorts it out).
    fn offline_on_error<T>(&self, result: Result<T, ModifyError>) -> Result<T, ModifyError> {
        if let Err(e) = &result {
            self.durability.fail(LogFailed {
                dir: self.dir.clone(),
                cause: OfflineCause::WriteFailed {
                    reason: e.to_string(),
                },
            });
        }
        result
    }

    pub(crate) fn interval_deadline(&self, now: std::time::Instant) -> IntervalCheck {
        self.durability.lock().interval_check(now)
    }
}

/// flush.ms of an `interval` config.
fn interval_of(config: &LogConfig) -> Option<Duration> {
    match config.flush {
        FlushPolicy::Interval { ms, .. } => Some(Duration::from_millis(ms)),
        _ => None,
    }
}

/// The flusher's record of the file system holding `dir`, as synced
/// through `disk`.
fn file_system_of(
    dir: &Path,
    flusher: &Flusher,
    disk: &Arc<dyn Disk>,
) -> Result<Arc<FileSystem>, IoFailure> {
    flusher
        .handle()
        .file_system(dir, disk)
        .map_err(|e| IoFailure::new("open the file system of", dir, e))
}

/// Deletes the files of `segments`. Not followed by a directory sync:
/// retention's deletions that a crash undoes bring back segments no
/// acknowledgement depends on (the next open deletes those below the
/// checkpointed log start, and retention the rest); truncation and
/// restarts, whose correctness depends on the deletion, sync the directory.
fn delete_segment_files(segments: &[Segment], disk: &dyn Disk) -> Result<(), IoFailure> {
    for segment in segments {
        segment.delete_files(disk)?;
        tracing::debug!(path = %segment.log_path().display(), "deleted segment");
    }
    Ok(())
}
