//! The log manager: owns every partition under the configured log
//! directories, opens them at start-up (recovering after an unclean
//! stop), creates and deletes them, and runs retention, producer-id
//! expiry and checkpoints in the background.
//!
//! Each log directory holds, besides one `TOPIC-PARTITION` directory per
//! partition, Kafka's checkpoint files `recovery-point-offset-checkpoint`
//! and `log-start-offset-checkpoint`, `replication-offset-checkpoint`
//! (the high watermarks of the partitions whose high watermark the
//! replication layer keeps; absent when there are none), and while the
//! broker runs no clean shutdown marker: the marker is written last at a
//! clean shutdown and removed first at start-up, so its presence proves
//! every log in the directory was closed cleanly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, RwLock};
use rill_storage::durable::{create_dir_durably_on, sync_dir_on, write_atomically_on};
use rill_storage::{
    CleanerConfig, Disk, DurabilityUnknown, Flusher, IoFailure, LogConfig, Offset, RealDisk,
    RecoveryHints, RecoveryReport, SyncChoice, SyncModeSetting, now_ms,
};

use crate::checkpoint::{self, CheckpointError};
use crate::error::{ManagerError, PartitionError};
use crate::partition::Partition;
use crate::producer_state::PRODUCER_ID_EXPIRATION_MS_DEFAULT;
use crate::topic_partition::{TopicPartition, validate_topic_name};

/// Kafka's per-directory checkpoint of each log's recovery point.
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// Kafka's per-directory checkpoint of each log's start offset.
pub const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Kafka's per-directory checkpoint of each replicated partition's high
/// watermark (see [`Partition::set_high_watermark`]).
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
/// Present only after a clean shutdown.
pub const CLEAN_SHUTDOWN_MARKER: &str = ".rill-clean-shutdown";
/// Suffix of a partition directory being deleted.
const DELETE_SUFFIX: &str = "-delete";
/// The fewest threads that close logs at shutdown (see `close_all`).
const CLOSE_THREADS_MIN: usize = 8;

/// Settings of the log manager, by Kafka broker-config name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerConfig {
    /// log.dirs
    pub log_dirs: Vec<PathBuf>,
    /// log.retention.check.interval.ms
    pub retention_check_interval_ms: u64,
    /// log.flush.offset.checkpoint.interval.ms (also the log-start checkpoint's)
    pub checkpoint_interval_ms: u64,
    /// num.recovery.threads.per.data.dir: threads opening logs at start-up.
    pub recovery_threads: usize,
    /// Threads that fdatasync logs (Rill's log.flush.threads).
    pub flush_threads: usize,
    /// log.flush.sync.mode: `auto` syncs the logs of a flush round with
    /// one syncfs where that is a real sync (ext4, xfs, btrfs, f2fs on
    /// Linux >= 5.8), `per-file` always with an fdatasync per file.
    pub flush_sync_mode: SyncModeSetting,
    /// producer.id.expiration.ms: a producer whose last batch is this old
    /// is forgotten (its next batch may then start at any sequence).
    pub producer_id_expiration_ms: i64,
    /// producer.id.expiration.check.interval.ms
    pub producer_id_expiration_check_interval_ms: u64,
    /// log.cleaner.backoff.ms: how often logs under `cleanup.policy=compact`
    /// are checked for compaction.
    pub cleaner_backoff_ms: u64,
    /// log.cleaner.dedupe.buffer.size: the key map's budget per pass.
    pub cleaner_dedupe_buffer_bytes: usize,
}

impl ManagerConfig {
    pub fn new(log_dirs: Vec<PathBuf>) -> ManagerConfig {
        ManagerConfig {
            log_dirs,
            retention_check_interval_ms: 300_000,
            checkpoint_interval_ms: 60_000,
            recovery_threads: 2,
            flush_threads: 4,
            flush_sync_mode: SyncModeSetting::Auto,
            producer_id_expiration_ms: PRODUCER_ID_EXPIRATION_MS_DEFAULT,
            producer_id_expiration_check_interval_ms: 600_000,
            cleaner_backoff_ms: 15_000,
            cleaner_dedupe_buffer_bytes: 128 * 1024 * 1024,
        }
    }
}

/// What opening the log directories found.
#[derive(Debug, Default)]
pub struct StartupReport {
    pub partitions: usize,
    /// Directories that had been shut down cleanly.
    pub clean_dirs: usize,
    /// Partitions whose logs were scanned, with what recovery found.
    pub recovered: Vec<(TopicPartition, RecoveryReport)>,
    /// Each log directory and how its logs are made durable, or why that
    /// could not be established (its partitions are offline for writes).
    pub sync_choices: Vec<(PathBuf, Result<SyncChoice, DurabilityUnknown>)>,
    pub duration: Duration,
}

/// Owns every partition of the broker. Thread-safe; share it in an `Arc`.
///
/// Drop without [`LogManager::shutdown`] is a crash as far as the files
/// are concerned: the next start recovers.
pub struct LogManager {
    config: ManagerConfig,
    partitions: RwLock<BTreeMap<TopicPartition, Arc<Partition>>>,
    /// Partitions being created, each in the directory picked for it:
    /// their files are made outside the map's lock, so that creations of
    /// different partitions overlap their fsyncs.
    creating: Mutex<BTreeMap<TopicPartition, PathBuf>>,
    flusher: Flusher,
    disk: Arc<dyn Disk>,
    /// One checkpoint writer at a time.
    checkpoint_lock: Mutex<()>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    background: Mutex<Option<JoinHandle<()>>>,
    shut_down: Mutex<bool>,
}

impl std::fmt::Debug for LogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogManager")
            .field("log_dirs", &self.config.log_dirs)
            .field("partitions", &self.partitions.read().len())
            .finish()
    }
}

impl LogManager {
    /// Opens every partition under `config.log_dirs` (creating missing
    /// directories) and starts the background retention and checkpoints.
    /// `topic_config` gives each partition's log configuration.
    pub fn open(
        config: ManagerConfig,
        topic_config: &(dyn Fn(&TopicPartition) -> LogConfig + Sync),
    ) -> Result<(Arc<LogManager>, StartupReport), ManagerError> {
        LogManager::open_with_disk(config, topic_config, Arc::new(RealDisk))
    }

    /// [`LogManager::open`] over a given disk (tests inject faults).
    pub fn open_with_disk(
        config: ManagerConfig,
        topic_config: &(dyn Fn(&TopicPartition) -> LogConfig + Sync),
        disk: Arc<dyn Disk>,
    ) -> Result<(Arc<LogManager>, StartupReport), ManagerError> {
        if config.log_dirs.is_empty() {
            return Err(ManagerError::NoLogDirs);
        }
        let started = Instant::now();
        let flusher = Flusher::start_with(config.flush_threads, config.flush_sync_mode)
            .map_err(|e| IoFailure::new("start flusher threads", "", e))?;
        let mut report = StartupReport::default();
        let mut partitions: BTreeMap<TopicPartition, Arc<Partition>> = BTreeMap::new();
        for dir in &config.log_dirs {
            let opened = open_log_dir(dir, &config, topic_config, &flusher, &disk, &mut report)?;
            for (tp, partition) in opened {
                if let Some(existing) = partitions.get(&tp) {
                    return Err(ManagerError::DuplicatePartition {
                        topic_partition: tp,
                        first: existing.dir().to_path_buf(),
                        second: partition.dir().to_path_buf(),
                    });
                }
                partitions.insert(tp, partition);
            }
        }
        report.partitions = partitions.len();
        report.duration = started.elapsed();
        let manager = Arc::new(LogManager {
            config,
            partitions: RwLock::new(partitions),
            creating: Mutex::new(BTreeMap::new()),
            flusher,
            disk,
            checkpoint_lock: Mutex::new(()),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            background: Mutex::new(None),
            shut_down: Mutex::new(false),
        });
        // Recovery wrote nothing the checkpoints know of yet.
        manager.checkpoint()?;
        let handle = start_background(&manager)
            .map_err(|e| IoFailure::new("start background thread", "", e))?;
        *manager.background.lock() = Some(handle);
        tracing::info!(
            partitions = report.partitions,
            recovered = report.recovered.len(),
            ms = report.duration.as_millis() as u64,
            "opened log directories"
        );
        Ok((manager, report))
    }

    /// What the flusher's rounds took since the logs were opened.
    pub fn flush_stats(&self) -> rill_storage::FlushStats {
        self.flusher.stats()
    }

    pub fn log_dirs(&self) -> &[PathBuf] {
        &self.config.log_dirs
    }

    pub fn get(&self, topic_partition: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().get(topic_partition).cloned()
    }

    /// Every partition, ordered by topic and partition.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Creates an empty partition in the log directory with the fewest
    /// partitions.
    pub fn create(
        &self,
        topic_partition: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<Partition>, ManagerError> {
        validate_topic_name(&topic_partition.topic)?;
        let already = || ManagerError::AlreadyExists {
            topic_partition: topic_partition.clone(),
        };
        let dir = {
            let partitions = self.partitions.read();
            let mut creating = self.creating.lock();
            if *self.shut_down.lock() {
                return Err(ManagerError::ShutDown);
            }
            if partitions.contains_key(topic_partition) || creating.contains_key(topic_partition) {
                return Err(already());
            }
            let parent = self.least_loaded_dir(&partitions)?;
            let dir = parent.join(topic_partition.dir_name());
            if dir.exists() {
                return Err(already());
            }
            creating.insert(topic_partition.clone(), dir.clone());
            dir
        };
        let created = Partition::create(
            &dir,
            topic_partition.clone(),
            config,
            &self.flusher,
            Arc::clone(&self.disk),
            now_ms(),
        )
        .map_err(|source| ManagerError::Partition {
            topic_partition: topic_partition.clone(),
            source,
        });
        if created.is_err() {
            // What was made of it goes, so that the next try starts anew
            // (the directory did not exist before).
            if let Err(error) = self.disk.remove_dir_all(&dir) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(partition = %topic_partition, %error, "cannot remove a partition not created");
                }
            }
        }
        let mut partitions = self.partitions.write();
        self.creating.lock().remove(topic_partition);
        let partition = Arc::new(created?);
        if *self.shut_down.lock() {
            // Shut down meanwhile: the new log closes like the others did.
            let _ = partition.close(); // Nothing was appended to it.
            return Err(ManagerError::ShutDown);
        }
        partitions.insert(topic_partition.clone(), Arc::clone(&partition));
        tracing::debug!(partition = %topic_partition, dir = %dir.display(), "created partition");
        Ok(partition)
    }

    /// The partition, created with `config` if it does not exist.
    pub fn get_or_create(
        &self,
        topic_partition: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<Partition>, ManagerError> {
        if let Some(partition) = self.get(topic_partition) {
            return Ok(partition);
        }
        match self.create(topic_partition, config) {
            Err(ManagerError::AlreadyExists { .. }) => {
                self.get(topic_partition).ok_or(ManagerError::NotFound {
                    topic_partition: topic_partition.clone(),
                })
            }
            other => other,
        }
    }

    /// Deletes a partition: it takes no more appends, its directory is
    /// renamed to `...-delete` (so a crash cannot bring it back) and then
    /// removed. Readers holding slices keep their bytes.
    pub fn delete(&self, topic_partition: &TopicPartition) -> Result<(), ManagerError> {
        let partition = self
            .partitions
            .write()
            .remove(topic_partition)
            .ok_or_else(|| ManagerError::NotFound {
                topic_partition: topic_partition.clone(),
            })?;
        if let Err(error) = partition.close() {
            // Its files go anyway: what a clean close writes (a producer
            // snapshot, a trimmed index) is for a next start it will not
            // have. An offline log cannot close cleanly, nor can one on a
            // full disk.
            tracing::warn!(partition = %topic_partition, %error, "deleting a partition that did not close cleanly");
        }
        let dir = partition.dir().to_path_buf();
        let parent = dir.parent().unwrap_or(Path::new(".")).to_path_buf();
        let doomed = parent.join(format!(
            "{}.{}{DELETE_SUFFIX}",
            topic_partition.dir_name(),
            unique_suffix()
        ));
        self.disk
            .rename(&dir, &doomed)
            .map_err(|e| IoFailure::new("rename deleted partition", &dir, e))?;
        sync_dir_on(self.disk.as_ref(), &parent)?;
        // Not synced: if a crash brings the directory back, its `-delete`
        // name has it removed at the next start.
        self.disk
            .remove_dir_all(&doomed)
            .map_err(|e| IoFailure::new("remove deleted partition", &doomed, e))?;
        tracing::info!(partition = %topic_partition, "deleted partition");
        // As Kafka does: the directory's checkpoints forget the partition
        // now, so that one created again under its name does not inherit
        // its recovery point or (stuck below it) its high watermark.
        let _writing = self.checkpoint_lock.lock();
        if let Err(error) = checkpoint_dir(self.disk.as_ref(), &parent, &self.partitions()) {
            // The partition is gone either way; the next pass retries.
            tracing::warn!(dir = %parent.display(), %error, "could not rewrite the checkpoints after a deletion");
        }
        Ok(())
    }

    /// Writes each directory's recovery-point, log-start and replication
    /// (high watermark) checkpoints. A directory whose checkpoint could
    /// not be synced is taken offline for writes (each of its partitions,
    /// as a failed fdatasync of its own files would): its disk is failing,
    /// and the page cache no longer says what is on it. Returns the first
    /// error; the other directories are checkpointed all the same.
    pub fn checkpoint(&self) -> Result<(), ManagerError> {
        let _writing = self.checkpoint_lock.lock();
        let partitions = self.partitions();
        let mut first_error = None;
        for dir in &self.config.log_dirs {
            if let Err(error) = checkpoint_dir(self.disk.as_ref(), dir, &partitions) {
                if matches!(&error, ManagerError::Checkpoint(e) if e.is_failed_sync())
                    || matches!(&error, ManagerError::Io(e) if e.operation == "sync directory")
                {
                    take_dir_offline(dir, &partitions, &error);
                }
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// One retention pass over every partition; failures are logged and
    /// the pass goes on. Each pass also checks every segment file of each
    /// partition (see [`rill_storage::Log::check_files`]), so that one
    /// removed or cut under an idle partition takes it offline too.
    /// Offline partitions are left alone until a restart recovers them.
    /// Returns the segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> usize {
        let mut deleted = 0;
        for partition in self.partitions() {
            if partition.log().failure().is_some() {
                continue;
            }
            match partition.apply_retention(now_ms) {
                Ok(outcome) => deleted += outcome.segments_deleted,
                Err(error) => {
                    tracing::warn!(partition = %partition.topic_partition(), %error, "retention failed");
                }
            }
        }
        deleted
    }

    /// One compaction pass over the partitions whose cleanup.policy
    /// includes `compact` (up to each one's last stable offset: Kafka's
    /// cleaner stops at the first unstable offset); failures are
    /// logged and the pass goes on. Returns the segments cleaned.
    pub fn compact(&self, now_ms: i64) -> usize {
        let cleaner = CleanerConfig {
            dedupe_buffer_bytes: self.config.cleaner_dedupe_buffer_bytes,
        };
        let mut cleaned = 0;
        for partition in self.partitions() {
            // An offline log is left as it is until a restart recovers it.
            if !partition.log().config().cleanup_policy.compact
                || partition.log().failure().is_some()
            {
                continue;
            }
            match partition
                .log()
                .compact(now_ms, partition.last_stable_offset(), &cleaner)
            {
                Ok(outcome) => cleaned += outcome.segments_cleaned,
                Err(error) => {
                    tracing::warn!(partition = %partition.topic_partition(), %error, "compaction failed");
                }
            }
        }
        cleaned
    }

    /// Forgets, in every partition, the producers idle for
    /// producer.id.expiration.ms; returns how many.
    pub fn remove_expired_producers(&self, now_ms: i64) -> usize {
        let expiration_ms = self.config.producer_id_expiration_ms;
        self.partitions()
            .iter()
            .map(|p| p.remove_expired_producers(now_ms, expiration_ms))
            .sum()
    }

    /// Shuts down cleanly: stops the background work, closes every log
    /// (synced, trimmed), writes the checkpoints and then the clean
    /// shutdown markers, so the next start reads no log data. Appends are
    /// refused from here on.
    pub fn shutdown(&self) -> Result<(), ManagerError> {
        {
            let mut shut_down = self.shut_down.lock();
            if *shut_down {
                return Ok(());
            }
            *shut_down = true;
        }
        self.stop_background();
        let first_error = close_all(&self.partitions(), self.config.recovery_threads);
        self.checkpoint()?;
        if let Some(error) = first_error {
            // A log that did not close cleanly must be recovered: no marker.
            return Err(error);
        }
        for dir in &self.config.log_dirs {
            write_atomically_on(self.disk.as_ref(), &dir.join(CLEAN_SHUTDOWN_MARKER), b"")
                .map_err(CheckpointError::from)?;
        }
        tracing::info!("log manager shut down cleanly");
        Ok(())
    }

    fn stop_background(&self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock() = true;
        wake.notify_all();
        if let Some(handle) = self.background.lock().take() {
            // The thread only logs its errors; a panic there was reported.
            let _ = handle.join();
        }
    }

    /// The log directory holding the fewest partitions. There is one:
    /// [`LogManager::open`] refuses an empty `log.dirs`.
    fn least_loaded_dir(
        &self,
        partitions: &BTreeMap<TopicPartition, Arc<Partition>>,
    ) -> Result<PathBuf, ManagerError> {
        let dirs = &self.config.log_dirs;
        if let [only] = dirs.as_slice() {
            return Ok(only.clone());
        }
        // One pass over the partitions, not one per directory.
        let mut load = vec![0_usize; dirs.len()];
        for partition in partitions.values() {
            if let Some(i) = dirs
                .iter()
                .position(|d| partition.dir().parent() == Some(d))
            {
                load[i] += 1;
            }
        }
        (0..dirs.len())
            .min_by_key(|&i| load[i])
            .map(|i| dirs[i].clone())
            .ok_or(ManagerError::NoLogDirs)
    }
}

impl Drop for LogManager {
    fn drop(&mut self) {
        // Stop the background thread without joining: it may be the one
        // dropping the last reference.
        let (stopped, wake) = &*self.stop;
        *stopped.lock() = true;
        wake.notify_all();
    }
}

/// Opens the partitions of one log directory.
fn open_log_dir(
    dir: &Path,
    config: &ManagerConfig,
    topic_config: &(dyn Fn(&TopicPartition) -> LogConfig + Sync),
    flusher: &Flusher,
    disk: &Arc<dyn Disk>,
    report: &mut StartupReport,
) -> Result<Vec<(TopicPartition, Arc<Partition>)>, ManagerError> {
    // Whoever made it (an operator, the broker, this call), its name is
    // durable before anything in it is acknowledged.
    create_dir_durably_on(disk.as_ref(), dir)?;
    let choice = flusher.sync_choice(dir, disk);
    match &choice {
        Ok(choice) => tracing::info!("log dir {}: {choice}", dir.display()),
        Err(error) => {
            tracing::error!("{error}; its partitions are offline for writes")
        }
    }
    report.sync_choices.push((dir.to_path_buf(), choice));
    let marker = dir.join(CLEAN_SHUTDOWN_MARKER);
    let clean = marker.exists();
    if clean {
        // Gone before anything changes, so a crash from here on is unclean.
        disk.remove_file(&marker)
            .map_err(|e| IoFailure::new("remove clean shutdown marker", &marker, e))?;
        sync_dir_on(disk.as_ref(), dir)?;
        report.clean_dirs += 1;
    }
    let recovery_points = read_offsets(&dir.join(RECOVERY_POINT_CHECKPOINT))?;
    let log_starts = read_offsets(&dir.join(LOG_START_CHECKPOINT))?;
    let high_watermarks = read_offsets(&dir.join(REPLICATION_OFFSET_CHECKPOINT))?;
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| IoFailure::new("list log directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| IoFailure::new("list log directory", dir, e))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(DELETE_SUFFIX) {
            disk.remove_dir_all(&path)
                .map_err(|e| IoFailure::new("remove deleted partition", &path, e))?;
            continue;
        }
        match TopicPartition::from_dir_name(&name) {
            Some(tp) => found.push((tp, path)),
            None => {
                tracing::warn!(path = %path.display(), "ignoring a directory that is not TOPIC-PARTITION")
            }
        }
    }
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..config.recovery_threads.max(1).min(found.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((tp, path)) = found.get(i) else {
                        break;
                    };
                    let hints = RecoveryHints {
                        clean_shutdown: clean,
                        recovery_point: recovery_points.get(tp).copied().unwrap_or(Offset(0)),
                        log_start_offset: log_starts.get(tp).copied().unwrap_or(Offset(0)),
                    };
                    let opened = Partition::open(
                        path,
                        tp.clone(),
                        topic_config(tp),
                        hints,
                        flusher,
                        Arc::clone(disk),
                        now_ms(),
                    );
                    if let (Ok((partition, _)), Some(&offset)) = (&opened, high_watermarks.get(tp))
                    {
                        // Back in replicated mode, clamped to what
                        // recovery left of the log.
                        partition.set_high_watermark(offset);
                    }
                    results.lock().push((tp.clone(), opened));
                }
            });
        }
    });
    let mut opened = Vec::new();
    for (tp, result) in results.into_inner() {
        let (partition, recovery) =
            result.map_err(|source: PartitionError| ManagerError::Partition {
                topic_partition: tp.clone(),
                source,
            })?;
        if recovery.scanned_segments > 0 {
            report.recovered.push((tp.clone(), recovery));
        }
        opened.push((tp, Arc::new(partition)));
    }
    Ok(opened)
}

/// Closes every partition cleanly (see [`Partition::close`]), `threads`
/// at a time but at least [`CLOSE_THREADS_MIN`]: a close waits on its
/// syncs, not on the CPU, so several overlap on one disk (Kafka closes
/// logs with num.recovery.threads.per.data.dir threads too). Returns the
/// first failure; the others are logged.
fn close_all(partitions: &[Arc<Partition>], threads: usize) -> Option<ManagerError> {
    let next = AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(CLOSE_THREADS_MIN).min(partitions.len()) {
            scope.spawn(|| {
                while let Some(partition) = partitions.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(source) = partition.close() {
                        tracing::error!(partition = %partition.topic_partition(), error = %source, "close failed");
                        first_error.lock().get_or_insert(ManagerError::Partition {
                            topic_partition: partition.topic_partition().clone(),
                            source,
                        });
                    }
                }
            });
        }
    });
    first_error.into_inner()
}

/// Writes the checkpoints of log directory `dir` for those of `partitions`
/// it holds. `replication-offset-checkpoint` lists only the partitions in
/// replicated high-watermark mode, and is not written (and is removed, if
/// an earlier one listed partitions since deleted) when there are none.
/// The caller holds the checkpoint lock.
fn checkpoint_dir(
    disk: &dyn Disk,
    dir: &Path,
    partitions: &[Arc<Partition>],
) -> Result<(), ManagerError> {
    let mut recovery_points = Vec::new();
    let mut log_starts = Vec::new();
    let mut high_watermarks = Vec::new();
    for partition in partitions.iter().filter(|p| p.dir().parent() == Some(dir)) {
        let tp = partition.topic_partition();
        let line = |offset: Offset| format!("{} {} {}", tp.topic, tp.partition, offset);
        recovery_points.push(line(partition.log().flushed_end_offset()));
        log_starts.push(line(partition.log_start_offset()));
        if let Some(high_watermark) = partition.replicated_high_watermark() {
            high_watermarks.push(line(high_watermark));
        }
    }
    checkpoint::write(disk, &dir.join(RECOVERY_POINT_CHECKPOINT), &recovery_points)?;
    checkpoint::write(disk, &dir.join(LOG_START_CHECKPOINT), &log_starts)?;
    let replication = dir.join(REPLICATION_OFFSET_CHECKPOINT);
    if !high_watermarks.is_empty() {
        checkpoint::write(disk, &replication, &high_watermarks)?;
    } else {
        match disk.remove_file(&replication) {
            Ok(()) => sync_dir_on(disk, dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(IoFailure::new("remove checkpoint", &replication, e).into());
            }
        }
    }
    Ok(())
}

/// A checkpoint of `topic partition offset` lines.
fn read_offsets(path: &Path) -> Result<BTreeMap<TopicPartition, Offset>, ManagerError> {
    let mut offsets = BTreeMap::new();
    let Some(entries) = checkpoint::read(path, 3)? else {
        return Ok(offsets);
    };
    for (i, fields) in entries.into_iter().enumerate() {
        let malformed = || checkpoint::CheckpointError::Malformed {
            path: path.to_path_buf(),
            line: 3 + i,
            expected: "topic, partition and offset",
            found: fields.join(" "),
        };
        let partition: i32 = fields[1].parse().map_err(|_| malformed())?;
        let offset: i64 = fields[2].parse().map_err(|_| malformed())?;
        offsets.insert(
            TopicPartition::new(fields[0].clone(), partition),
            Offset(offset),
        );
    }
    Ok(offsets)
}

/// Runs retention, compaction, producer-id expiry and checkpoints on their intervals
/// until stopped or the manager is dropped.
fn start_background(manager: &Arc<LogManager>) -> std::io::Result<JoinHandle<()>> {
    let weak: Weak<LogManager> = Arc::downgrade(manager);
    let stop = Arc::clone(&manager.stop);
    let config = &manager.config;
    let retention_every = Duration::from_millis(config.retention_check_interval_ms.max(1));
    let checkpoint_every = Duration::from_millis(config.checkpoint_interval_ms.max(1));
    let expiry_every =
        Duration::from_millis(config.producer_id_expiration_check_interval_ms.max(1));
    let compact_every = Duration::from_millis(config.cleaner_backoff_ms.max(1));
    std::thread::Builder::new()
        .name("rill-log-manager".into())
        .spawn(move || {
            let mut next_retention = Instant::now() + retention_every;
            let mut next_checkpoint = Instant::now() + checkpoint_every;
            let mut next_expiry = Instant::now() + expiry_every;
            let mut next_compaction = Instant::now() + compact_every;
            loop {
                {
                    let (stopped, wake) = &*stop;
                    let mut stopped = stopped.lock();
                    let deadline = next_retention
                        .min(next_checkpoint)
                        .min(next_expiry)
                        .min(next_compaction);
                    while !*stopped && Instant::now() < deadline {
                        wake.wait_until(&mut stopped, deadline);
                    }
                    if *stopped {
                        return;
                    }
                }
                let Some(manager) = weak.upgrade() else {
                    return;
                };
                let now = Instant::now();
                if now >= next_retention {
                    manager.apply_retention(now_ms());
                    next_retention = now + retention_every;
                }
                if now >= next_compaction {
                    let cleaned = manager.compact(now_ms());
                    if cleaned > 0 {
                        tracing::info!(segments = cleaned, "compacted logs");
                    }
                    next_compaction = Instant::now() + compact_every;
                }
                if now >= next_expiry {
                    let expired = manager.remove_expired_producers(now_ms());
                    if expired > 0 {
                        tracing::info!(expired, "removed expired producer ids");
                    }
                    next_expiry = now + expiry_every;
                }
                if now >= next_checkpoint {
                    if let Err(error) = manager.checkpoint() {
                        tracing::error!(%error, "writing checkpoints failed");
                    }
                    next_checkpoint = now + checkpoint_every;
                }
            }
        })
}

/// Takes every partition of log directory `dir` offline for writes after
/// a sync there failed: as Kafka takes a failed log directory offline,
/// except that reads of what was acknowledged go on.
fn take_dir_offline(dir: &Path, partitions: &[Arc<Partition>], error: &ManagerError) {
    let in_dir: Vec<&Arc<Partition>> = partitions
        .iter()
        .filter(|p| p.dir().parent() == Some(dir))
        .collect();
    tracing::error!(
        dir = %dir.display(),
        %error,
        partitions = in_dir.len(),
        "a sync failed in this log dir; its partitions are offline for writes until a restart"
    );
    for partition in in_dir {
        partition.log().take_offline_for_writes(format!(
            "a sync in log dir {} failed: {error}",
            dir.display()
        ));
    }
}

/// A name part no other deletion in this process, or before it, used.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}
