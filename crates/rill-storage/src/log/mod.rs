//! A partition's log: an ordered list of sealed segments, then the
//! active one.
//!
//! This file holds the log's state, its locks and its lifecycle (create,
//! open, configure, close); each other concern has a module of its own,
//! with its part of [`Log`]'s methods:
//!
//! - `append`: validating and writing batches, rolling segments;
//! - `read`: reads, and lookups by time;
//! - `flush_round`: what a sync covers, the log's side of the flusher's
//!   rounds (flush.rs), and when appends may be acknowledged;
//! - `health`: checking the files under the log, taking it offline;
//! - `truncate`: cutting the log back, or restarting it empty;
//! - `log_start`: retention and DeleteRecords, which move the log start;
//! - `compaction_swap`: a compaction pass and swapping its output in;
//! - `txn`: transaction markers, coordinator batches, and the
//!   aborted-transaction index of each segment.

mod append;
mod compaction_swap;
mod flush_round;
mod health;
mod log_start;
mod read;
mod truncate;
mod txn;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

pub use append::{ReplicatedBatch, ValidatedBatch};
pub use read::LogRead;

use crate::Offset;
use crate::clean_point::read_clean_point;
use crate::config::{FlushPolicy, LogConfig};
use crate::disk::Disk;
use crate::durability::Durability;
use crate::durable::{create_dir_durably_on, sync_dir_on};
use crate::error::{ConfigError, IoFailure, LogFailed, ModifyError, OfflineCause, OpenError};
use crate::file_system::FileSystem;
use crate::flush::{Flusher, FlusherHandle};
use crate::open_files::LazyFile;
use crate::open_maps::{self, MapHolder};
use crate::recovery::{RecoveryHints, RecoveryReport, load_segments};
use crate::segment::Segment;

/// The log of one partition: append, read, truncate, retain, recover.
///
/// Thread-safe. Reads run in parallel under a read lock; appends, rolls,
/// truncation and retention take the write lock briefly (file deletion
/// and fdatasync run outside it). Compaction reads and rewrites sealed
/// segments with no lock held and takes the write lock only to swap a
/// cleaned segment in. Locks, outermost first: the cleaner lock (one
/// compaction at a time), the flush lock, the state lock, durability.
/// Dropping a `Log` without [`Log::close`] is like a crash: the next open
/// recovers.
///
/// ```
/// use rill_record::{BatchBuilder, NewRecord};
/// use rill_storage::{Flusher, Log, LogConfig, Offset, RealDisk};
/// use std::sync::Arc;
///
/// let dir = tempfile::tempdir().unwrap();
/// let flusher = Flusher::start(1).unwrap();
/// let log = Log::create(dir.path(), LogConfig::default(), Offset(0), &flusher, Arc::new(RealDisk), 0).unwrap();
/// let batch = BatchBuilder::new(1_000).with_records(&[NewRecord::value(b"hi")]).finish().unwrap();
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

/// The log itself, shared by its handle, the flusher (which holds it
/// while a sync is due) and compaction passes. Its locks are taken in
/// the order [`Log`] gives.
#[derive(Debug)]
struct LogShared {
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
    /// What is durable; shared with the tickets that wait on it.
    durability: Arc<Durability>,
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
    /// The read-only segments, sorted by base offset, all below `active`.
    sealed: Vec<Segment>,
    /// The segment appends go to. A field of its own, so that a log
    /// always has one (and so an end offset) by construction.
    active: Segment,
    log_start_offset: Offset,
    /// Records appended since the last sync began (for flush.messages).
    unflushed_messages: u64,
    /// Files of sealed segments not yet synced since they were sealed.
    unsynced: Vec<(LazyFile, PathBuf)>,
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
    fn log_end(&self) -> Offset {
        self.active.next_offset()
    }

    /// Every segment, oldest first: the sealed ones, then the active one.
    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.sealed.iter().chain(std::iter::once(&self.active))
    }

    fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    /// Which segment `offset` falls in: the last whose base offset is <=
    /// `offset` (the first segment if none is). `Some(i)` is `sealed[i]`,
    /// `None` the active segment.
    fn sealed_index(&self, offset: Offset) -> Option<usize> {
        if self.active.base_offset() <= offset || self.sealed.is_empty() {
            return None;
        }
        Some(
            self.sealed
                .partition_point(|s| s.base_offset() <= offset)
                .saturating_sub(1),
        )
    }

    /// The segment `offset` falls in (see [`LogState::sealed_index`]).
    fn segment_of(&self, offset: Offset) -> &Segment {
        self.sealed_index(offset)
            .and_then(|i| self.sealed.get(i))
            .unwrap_or(&self.active)
    }

    /// The segment `offset` falls in and every later one, oldest first.
    fn segments_from(&self, offset: Offset) -> impl Iterator<Item = &Segment> {
        let first = self.sealed_index(offset).unwrap_or(self.sealed.len());
        self.segments().skip(first)
    }
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
            (Vec::new(), segment),
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
        let (sealed, active, log_start_offset, report) =
            load_segments(dir, &config, &hints, (disk.as_ref(), &file_system), now_ms)?;
        let clean_point = read_clean_point(dir)?.unwrap_or(log_start_offset);
        let log = Log::assemble(
            dir,
            config,
            (sealed, active),
            (log_start_offset, clean_point),
            flusher,
            (disk, file_system),
        );
        Ok((log, report))
    }

    /// A log of `sealed` segments and then `active`.
    fn assemble(
        dir: &Path,
        config: LogConfig,
        (sealed, active): (Vec<Segment>, Segment),
        (log_start_offset, clean_point): (Offset, Offset),
        flusher: &Flusher,
        (disk, file_system): (Arc<dyn Disk>, Arc<FileSystem>),
    ) -> Log {
        let end = active.next_offset();
        let interval = interval_of(&config);
        let shared = Arc::new(LogShared {
            dir: dir.to_path_buf(),
            disk,
            state: RwLock::new(LogState {
                config,
                sealed,
                active,
                log_start_offset,
                unflushed_messages: 0,
                unsynced: Vec::new(),
                dir_dirty: false,
                closed: false,
                truncations: 0,
                clean_point,
            }),
            durability: Arc::new(Durability::new(end, interval, file_system.error_epoch())),
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
        let holder: Weak<dyn MapHolder> = Arc::downgrade(&shared) as Weak<LogShared>;
        open_maps::register(holder);
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

    pub fn log_start_offset(&self) -> Offset {
        self.shared.state.read().log_start_offset
    }

    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> Offset {
        self.shared.state.read().log_end()
    }

    /// The base offset of the active segment: it changes when the log
    /// rolls.
    pub fn active_segment_base_offset(&self) -> Offset {
        self.shared.state.read().active.base_offset()
    }

    /// Bytes of batches in all segments.
    pub fn size_bytes(&self) -> u64 {
        let state = self.shared.state.read();
        state.segments().map(|s| u64::from(s.size())).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.shared.state.read().segment_count()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        let state = self.shared.state.read();
        state.segments().map(Segment::base_offset).collect()
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
        let active = &mut state.active;
        active.seal()?;
        for (file, path) in active.sync_files() {
            file.sync_data(self.shared.disk.as_ref())
                .map_err(|e| IoFailure::new("sync segment", path, e))?;
        }
        sync_dir_on(self.shared.disk.as_ref(), &self.shared.dir)?;
        state.closed = true;
        Ok(end)
    }
}

impl MapHolder for LogShared {
    /// Unmaps the segments not used since the last sweep, unless the log
    /// is busy (its lock taken): then it is in use, and keeps them all.
    fn unmap_idle(&self) -> usize {
        let Some(mut state) = self.state.try_write() else {
            return 0;
        };
        let LogState { sealed, active, .. } = &mut *state;
        sealed
            .iter_mut()
            .chain(std::iter::once(active))
            .map(Segment::unmap_idle)
            .sum()
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
