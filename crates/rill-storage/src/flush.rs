//! The flusher: threads that sync logs in rounds (group commit). The
//! flusher knows a log only as a [`FlushTarget`] — its durability record,
//! its file system, its flush lock, and how to capture and sync what it
//! has pending — so that the log depends on the flusher, never the other
//! way round.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::Offset;
use crate::disk::Disk;
use crate::durability::{Durability, IntervalCheck};
use crate::error::{DurabilityUnknown, LogFailed};
use crate::file_system::{FileSystem, FileSystems, SyncChoice, SyncModeSetting};
use crate::flush_stats::FlushStats;
use crate::open_files::LazyFile;

/// What the flusher needs of a log. Implemented by the log (log/flush_round.rs).
///
/// Thread-safe: flusher threads call it while appenders use the log.
pub(crate) trait FlushTarget: Send + Sync + fmt::Debug {
    /// The log's record of what is durable.
    fn durability(&self) -> &Durability;

    /// The file system holding the log's files, as synced through its
    /// disk: logs with the same one are synced together.
    fn file_system(&self) -> &Arc<FileSystem>;

    /// Held across every sync of the log, so syncs never overlap and a
    /// truncation never races a round. A round holds those of all its
    /// logs (no other path holds two, and a log is in one round at most).
    fn flush_lock(&self) -> &Mutex<()>;

    /// What a sync now would cover, taken under the log's state lock;
    /// `None` when nothing is pending, and then the log's scheduled mark
    /// is cleared under that lock, so that a concurrent append
    /// reschedules it.
    fn capture_for_round(&self) -> Option<FlushCapture>;

    /// Syncs the captured files itself (fdatasync of each, then fsync of
    /// the directory) and records the new flushed end. A failure takes
    /// the log offline.
    fn sync_captured(&self, capture: FlushCapture) -> Result<(), LogFailed>;
}

/// Files a flush round syncs for one log, and the offset it then makes
/// durable: what the log hands the flusher.
#[derive(Debug)]
pub(crate) struct FlushCapture {
    /// The log end offset when captured: durable once the sync returns.
    pub(crate) end: Offset,
    /// The durability generation when captured (see [`Durability::complete`]).
    pub(crate) generation: u64,
    /// Sealed segments' files not yet synced, then the active segment's.
    pub(crate) files: Vec<(LazyFile, PathBuf)>,
    /// Whether files were created in the log's directory since its last sync.
    pub(crate) sync_dir: bool,
}

/// Threads that sync logs, in rounds (group commit): a thread takes every
/// log that has appends to sync, syncs those of one file system together
/// (one syncfs, or one fdatasync when a single file is due, where syncfs
/// is a real sync; else an fdatasync of each file: see
/// [`crate::SyncMode`]), and starts the next round with whatever was
/// appended meanwhile, so appends that arrive during one sync share the
/// next. More threads overlap rounds; syncs of one file system still run
/// one at a time.
///
/// Dropping the flusher finishes the queued rounds and joins the threads.
#[derive(Debug)]
pub struct Flusher {
    shared: Arc<FlusherShared>,
    workers: Vec<JoinHandle<()>>,
}

#[derive(Debug, Default)]
pub(crate) struct FlusherShared {
    queue: Mutex<FlushQueue>,
    work: Condvar,
    file_systems: FileSystems,
    /// log.flush.sync.mode
    sync_mode: SyncModeSetting,
    /// What the rounds took; each round records itself once.
    stats: Mutex<FlushStats>,
}

#[derive(Debug, Default)]
struct FlushQueue {
    /// Logs with something to sync and in no thread's round.
    ready: Vec<Arc<dyn FlushTarget>>,
    /// `interval` logs, checked for flush.ms deadlines.
    timed: Vec<Weak<dyn FlushTarget>>,
    /// The earliest flush.ms deadline ahead, as of the last check.
    next_deadline: Option<Instant>,
    /// Whether `timed` must be checked again before `next_deadline` (a
    /// log joined, or an append started its clock).
    timed_stale: bool,
    shutdown: bool,
}

/// A clonable handle through which logs queue themselves for flushing.
#[derive(Debug, Clone)]
pub(crate) struct FlusherHandle(Arc<FlusherShared>);

impl Flusher {
    /// Starts `threads` flusher threads (at least one), using syncfs
    /// where it is a real sync ([`SyncModeSetting::Auto`]).
    pub fn start(threads: usize) -> std::io::Result<Flusher> {
        Flusher::start_with(threads, SyncModeSetting::Auto)
    }

    /// Starts `threads` flusher threads (at least one) under
    /// `log.flush.sync.mode`.
    pub fn start_with(threads: usize, sync_mode: SyncModeSetting) -> std::io::Result<Flusher> {
        let shared = Arc::new(FlusherShared {
            sync_mode,
            ..FlusherShared::default()
        });
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            let worker = std::thread::Builder::new()
                .name(format!("rill-flusher-{i}"))
                .spawn(move || run_worker(&shared))?;
            workers.push(worker);
        }
        Ok(Flusher { shared, workers })
    }

    /// What the flusher's rounds took since it started.
    pub fn stats(&self) -> FlushStats {
        self.shared.stats.lock().clone()
    }

    pub(crate) fn handle(&self) -> FlusherHandle {
        FlusherHandle(Arc::clone(&self.shared))
    }

    /// How logs in `dir` (a log directory) will be synced through `disk`,
    /// decided now if no log of its file system was seen before: for the
    /// start-up log. An error means their durability cannot be
    /// established, and logs there open offline for writes.
    pub fn sync_choice(
        &self,
        dir: &Path,
        disk: &Arc<dyn Disk>,
    ) -> Result<SyncChoice, DurabilityUnknown> {
        let unknown = |reason: String| DurabilityUnknown {
            dir: dir.to_path_buf(),
            reason,
        };
        let file_system = self
            .handle()
            .file_system(dir, disk)
            .map_err(|e| unknown(format!("cannot stat {}: {e}", dir.display())))?;
        file_system
            .sync_choice()
            .cloned()
            .map_err(|reason| unknown(reason.to_string()))
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.queue.lock().shutdown = true;
        self.shared.work.notify_all();
        for worker in self.workers.drain(..) {
            // A worker that panicked has already reported it; joining the
            // rest matters more than its payload.
            let _ = worker.join();
        }
    }
}

impl FlusherHandle {
    /// Queues `log` for a flush round. Callers hold none of the log's locks.
    pub(crate) fn schedule(&self, log: Arc<dyn FlushTarget>) {
        self.0.queue.lock().ready.push(log);
        self.0.work.notify_one();
    }

    /// Makes the flusher recompute its flush.ms deadlines.
    pub(crate) fn recheck_deadlines(&self) {
        self.0.queue.lock().timed_stale = true;
        self.0.work.notify_one();
    }

    /// Watches `log` for its flush.ms deadline.
    pub(crate) fn watch_interval(&self, log: Weak<dyn FlushTarget>) {
        let mut queue = self.0.queue.lock();
        queue.timed.push(log);
        queue.timed_stale = true;
        drop(queue);
        self.0.work.notify_one();
    }

    /// The file system holding the log directory `dir`, as synced
    /// through `disk`.
    pub(crate) fn file_system(
        &self,
        dir: &Path,
        disk: &Arc<dyn Disk>,
    ) -> std::io::Result<Arc<FileSystem>> {
        self.0.file_systems.of(dir, disk, self.0.sync_mode)
    }
}

/// A flusher thread: rounds back to back while logs have appends to sync,
/// each round with the logs of the last one that synced something (they
/// may have more by now) and every log that became ready meanwhile.
fn run_worker(shared: &FlusherShared) {
    let mut carried: Vec<Arc<dyn FlushTarget>> = Vec::new();
    while let Some(ready) = next_logs(shared, !carried.is_empty()) {
        carried.extend(ready);
        carried = flush_round(std::mem::take(&mut carried), &shared.stats);
    }
}

/// One round: the logs grouped by what syncs them together (file system
/// and disk), each group synced at once. Returns the logs that synced
/// something; the rest had nothing pending and left the flusher.
fn flush_round(
    logs: Vec<Arc<dyn FlushTarget>>,
    stats: &Mutex<FlushStats>,
) -> Vec<Arc<dyn FlushTarget>> {
    let mut groups: Vec<Vec<Arc<dyn FlushTarget>>> = Vec::new();
    for log in logs {
        match groups
            .iter_mut()
            .find(|group| Arc::ptr_eq(group[0].file_system(), log.file_system()))
        {
            Some(group) => group.push(log),
            None => groups.push(vec![log]),
        }
    }
    groups
        .into_iter()
        .flat_map(|group| flush_together(group, stats))
        .collect()
}

/// A round's work on `logs`, which all sync together (one file system,
/// see [`flush_round`]): captures what each has pending, then
/// makes it durable — with one syncfs when more than one file is due
/// and the file system's syncfs is a real sync ([`crate::SyncMode`]);
/// else each log fdatasyncs its own files and fsyncs its directory. A
/// log the syncfs cannot vouch for (it failed, or the log has not
/// checked its own files since one did) fdatasyncs its own files
/// instead. Returns the logs that synced something; one
/// with nothing pending leaves the flusher, one whose sync failed goes
/// offline. The state locks are held only to capture, never across a
/// sync. A round that synced anything is recorded in `stats`.
fn flush_together(
    logs: Vec<Arc<dyn FlushTarget>>,
    stats: &Mutex<FlushStats>,
) -> Vec<Arc<dyn FlushTarget>> {
    let flushing: Vec<_> = logs.iter().map(|log| log.flush_lock().lock()).collect();
    let captures: Vec<(usize, FlushCapture)> = logs
        .iter()
        .enumerate()
        .filter_map(|(i, log)| log.capture_for_round().map(|c| (i, c)))
        .collect();
    let started = Instant::now();
    let syncing = captures.len();
    let files: usize = captures
        .iter()
        .map(|(_, capture)| capture.files.len() + usize::from(capture.sync_dir))
        .sum();
    let together = match captures.first() {
        Some((first, _)) if files > 1 && logs[*first].file_system().uses_syncfs() => {
            Some(logs[*first].file_system().sync())
        }
        _ => None,
    };
    let mut synced = vec![false; logs.len()];
    for (i, capture) in captures {
        let log = &logs[i];
        let vouched = match &together {
            Some((Ok(()), epoch)) => log.durability().lock().checked_error_epoch == *epoch,
            _ => false,
        };
        let result = if vouched {
            log.durability().complete(capture.end, capture.generation);
            Ok(())
        } else {
            log.sync_captured(capture)
        };
        match result {
            Ok(()) => synced[i] = true,
            Err(_) => log.durability().lock().scheduled = false,
        }
    }
    drop(flushing);
    if syncing > 0 {
        stats
            .lock()
            .record_round(syncing, started.elapsed().as_secs_f64());
    }
    logs.into_iter()
        .zip(synced)
        .filter_map(|(log, synced)| synced.then_some(log))
        .collect()
}

/// The logs that became ready, at once if `carrying` (the caller has a
/// round to run anyway); otherwise waits for some, waking for the nearest
/// flush.ms deadline. `None` at shutdown once nothing is left.
fn next_logs(shared: &FlusherShared, carrying: bool) -> Option<Vec<Arc<dyn FlushTarget>>> {
    let mut queue = shared.queue.lock();
    loop {
        let now = Instant::now();
        if queue.timed_stale || queue.next_deadline.is_some_and(|at| at <= now) {
            queue.check_deadlines(now);
        }
        if carrying || !queue.ready.is_empty() {
            return Some(std::mem::take(&mut queue.ready));
        }
        if queue.shutdown {
            return None;
        }
        match queue.next_deadline {
            Some(deadline) => {
                shared.work.wait_until(&mut queue, deadline);
            }
            None => shared.work.wait(&mut queue),
        }
    }
}

impl FlushQueue {
    /// Moves the `interval` logs past their flush.ms deadline to `ready`
    /// and notes when to look again.
    fn check_deadlines(&mut self, now: Instant) {
        let mut next_deadline: Option<Instant> = None;
        let mut due = Vec::new();
        self.timed.retain(|weak| {
            let Some(log) = weak.upgrade() else {
                return false;
            };
            let check = log.durability().lock().interval_check(now);
            match check {
                IntervalCheck::Due => due.push(log),
                IntervalCheck::At(deadline) => {
                    next_deadline = Some(next_deadline.map_or(deadline, |d| d.min(deadline)));
                }
                IntervalCheck::Idle => {}
            }
            true
        });
        self.ready.extend(due);
        self.next_deadline = next_deadline;
        self.timed_stale = false;
    }
}
