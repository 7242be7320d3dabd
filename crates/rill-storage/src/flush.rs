//! Durability: the flusher threads that sync logs (group commit), the
//! per-log record of what is durable, and the tickets through which an
//! append is acknowledged only once its flush policy is satisfied.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::Offset;
use crate::disk::Disk;
use crate::error::{DurabilityUnknown, LogFailed};
use crate::file_system::{FileSystem, FileSystems, SyncChoice, SyncModeSetting};
use crate::log::LogShared;

/// What is known to be on disk for one log, and who waits for more.
///
/// Thread-safe: appenders, flusher threads and ticket holders share it.
/// Lock order: a log's state lock may be held when taking this lock; no
/// other lock is taken while holding it.
#[derive(Debug)]
pub(crate) struct Durability {
    state: Mutex<DurableState>,
    synced: Condvar,
}

#[derive(Debug)]
pub(crate) struct DurableState {
    /// Every offset below this is on disk.
    pub(crate) flushed_end: Offset,
    /// The log end offset as of the last append.
    pub(crate) log_end: Offset,
    /// Bumped when the log is synced and then cut back or restarted: every
    /// ticket of an older generation was made durable by that sync.
    pub(crate) generation: u64,
    /// Set when a sync failed; the log accepts nothing more until reopened.
    pub(crate) failed: Option<LogFailed>,
    /// Whether the log is queued for, or in, a flush round.
    pub(crate) scheduled: bool,
    /// flush.ms of an `interval` log.
    pub(crate) interval: Option<Duration>,
    pub(crate) last_flush: Instant,
    /// The error epoch of the log's file system at which the log last
    /// fdatasynced its own files (see file_system.rs): a syncfs vouches
    /// for the log only at this epoch.
    pub(crate) checked_error_epoch: u64,
    wakers: Vec<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    end: Offset,
    generation: u64,
    waker: Waker,
}

impl DurableState {
    /// `None` while an append ending at `end` (made in `generation`) is not
    /// yet durable; then whether it became durable or the log failed.
    fn outcome(&self, end: Offset, generation: u64) -> Option<Result<(), LogFailed>> {
        if let Some(failed) = &self.failed {
            Some(Err(failed.clone()))
        } else if generation != self.generation || end <= self.flushed_end {
            Some(Ok(()))
        } else {
            None
        }
    }
}

impl Durability {
    pub(crate) fn new(end: Offset, interval: Option<Duration>, error_epoch: u64) -> Durability {
        Durability {
            state: Mutex::new(DurableState {
                flushed_end: end,
                log_end: end,
                generation: 0,
                failed: None,
                scheduled: false,
                interval,
                last_flush: Instant::now(),
                checked_error_epoch: error_epoch,
                wakers: Vec::new(),
            }),
            synced: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, DurableState> {
        self.state.lock()
    }

    /// Records a completed sync of everything below `end`, unless a new
    /// generation started meanwhile (it made `end` durable already).
    pub(crate) fn complete(&self, end: Offset, generation: u64) {
        let mut state = self.state.lock();
        if state.generation == generation && end > state.flushed_end {
            state.flushed_end = end;
        }
        state.last_flush = Instant::now();
        self.wake(state);
    }

    /// Marks everything below `end` durable and starts a new generation:
    /// the log was just synced and then cut back (or restarted) at `end`.
    pub(crate) fn reset(&self, end: Offset) {
        let mut state = self.state.lock();
        state.generation += 1;
        state.flushed_end = end;
        state.log_end = end;
        state.last_flush = Instant::now();
        self.wake(state);
    }

    /// Takes the log offline. The first failure stays the one reported,
    /// unless a later one also refuses reads (a file changed after a
    /// failed sync): reads must then learn why they are refused.
    pub(crate) fn fail(&self, failed: LogFailed) {
        let mut state = self.state.lock();
        let replace = state
            .failed
            .as_ref()
            .is_none_or(|current| current.allows_reads() && !failed.allows_reads());
        if replace {
            tracing::error!(dir = %failed.dir.display(), cause = %failed.cause, "log offline");
            state.failed = Some(failed);
        }
        self.wake(state);
    }

    pub(crate) fn check(&self) -> Result<(), LogFailed> {
        match &self.state.lock().failed {
            Some(failed) => Err(failed.clone()),
            None => Ok(()),
        }
    }

    fn wake(&self, mut state: MutexGuard<'_, DurableState>) {
        let mut woken = Vec::new();
        let mut i = 0;
        while i < state.wakers.len() {
            let waiter = &state.wakers[i];
            if state.outcome(waiter.end, waiter.generation).is_some() {
                woken.push(state.wakers.swap_remove(i).waker);
            } else {
                i += 1;
            }
        }
        drop(state);
        self.synced.notify_all();
        for waker in woken {
            waker.wake();
        }
    }
}

/// Offsets and timestamps assigned to an appended batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// The offset of the batch's first record.
    pub base_offset: Offset,
    /// The offset of its last record.
    pub last_offset: Offset,
    /// The broker's timestamp for LogAppendTime logs.
    pub log_append_time_ms: Option<i64>,
    /// The batch's maxTimestamp as stored.
    pub max_timestamp: i64,
    /// The log start offset when the batch was appended.
    pub log_start_offset: Offset,
}

/// The promise of an append: it resolves to the assigned offsets once the
/// log's flush policy allows acknowledging it (under `fsync`, after an
/// fdatasync covers it), or to the failure that took the log offline.
///
/// The offsets are only reachable through [`AppendTicket::wait`] or by
/// awaiting the ticket, so nothing can acknowledge an append early.
#[derive(Debug)]
#[must_use = "an append may be acknowledged only once its ticket resolves"]
pub struct AppendTicket {
    info: AppendInfo,
    /// The log to wait on, unless the append was acknowledgeable at once.
    log: Option<Arc<LogShared>>,
    end: Offset,
    generation: u64,
}

impl AppendTicket {
    pub(crate) fn ready(info: AppendInfo) -> AppendTicket {
        AppendTicket {
            info,
            log: None,
            end: info.last_offset.plus(1),
            generation: 0,
        }
    }

    pub(crate) fn pending(info: AppendInfo, log: Arc<LogShared>, generation: u64) -> AppendTicket {
        AppendTicket {
            info,
            log: Some(log),
            end: info.last_offset.plus(1),
            generation,
        }
    }

    /// A ticket for this append that also covers `earlier`, an earlier
    /// append to the same log: it resolves (to this append's offsets) once
    /// both may be acknowledged.
    ///
    /// Under `fsync` every ticket waits for a sync, and the sync that
    /// covers this append's end covers every earlier offset (the flushed
    /// end only grows, and a truncation syncs everything before it cuts):
    /// this ticket already covers `earlier`. Under `interval` an earlier
    /// append may be the one that reached flush.messages and waits for a
    /// sync while this one need not: the result then waits for that sync.
    ///
    /// # Panics
    ///
    /// If both tickets wait on a log and it is not the same one, or
    /// `earlier` ends after this one.
    pub fn covering(self, earlier: AppendTicket) -> AppendTicket {
        match (&self.log, earlier.log) {
            (None, Some(log)) => AppendTicket {
                info: self.info,
                log: Some(log),
                end: earlier.end,
                generation: earlier.generation,
            },
            (Some(log), Some(earlier_log)) => {
                assert!(Arc::ptr_eq(log, &earlier_log), "tickets of different logs");
                assert!(
                    earlier.generation < self.generation || earlier.end <= self.end,
                    "the earlier append ends at {}, after this one at {}",
                    earlier.end,
                    self.end
                );
                self
            }
            (_, None) => self,
        }
    }

    /// Whether the append may be acknowledged now.
    pub fn is_ready(&self) -> bool {
        match &self.log {
            None => true,
            Some(log) => log
                .durability()
                .lock()
                .outcome(self.end, self.generation)
                .is_some(),
        }
    }

    /// Blocks until the append may be acknowledged.
    pub fn wait(self) -> Result<AppendInfo, LogFailed> {
        let Some(log) = &self.log else {
            return Ok(self.info);
        };
        let durability = log.durability();
        let mut state = durability.state.lock();
        loop {
            if let Some(outcome) = state.outcome(self.end, self.generation) {
                return outcome.map(|()| self.info);
            }
            durability.synced.wait(&mut state);
        }
    }
}

impl Future for AppendTicket {
    type Output = Result<AppendInfo, LogFailed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(log) = &self.log else {
            return Poll::Ready(Ok(self.info));
        };
        let mut state = log.durability().state.lock();
        if let Some(outcome) = state.outcome(self.end, self.generation) {
            return Poll::Ready(outcome.map(|()| self.info));
        }
        let (end, generation) = (self.end, self.generation);
        match state
            .wakers
            .iter_mut()
            .find(|w| w.end == end && w.generation == generation && w.waker.will_wake(cx.waker()))
        {
            Some(existing) => existing.waker.clone_from(cx.waker()),
            None => state.wakers.push(Waiter {
                end,
                generation,
                waker: cx.waker().clone(),
            }),
        }
        Poll::Pending
    }
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
}

#[derive(Debug, Default)]
struct FlushQueue {
    /// Logs with something to sync and in no thread's round.
    ready: Vec<Arc<LogShared>>,
    /// `interval` logs, checked for flush.ms deadlines.
    timed: Vec<Weak<LogShared>>,
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
    pub(crate) fn schedule(&self, log: Arc<LogShared>) {
        self.0.queue.lock().ready.push(log);
        self.0.work.notify_one();
    }

    /// Makes the flusher recompute its flush.ms deadlines.
    pub(crate) fn recheck_deadlines(&self) {
        self.0.queue.lock().timed_stale = true;
        self.0.work.notify_one();
    }

    /// Watches `log` for its flush.ms deadline.
    pub(crate) fn watch_interval(&self, log: Weak<LogShared>) {
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
    let mut carried: Vec<Arc<LogShared>> = Vec::new();
    while let Some(ready) = next_logs(shared, !carried.is_empty()) {
        carried.extend(ready);
        carried = flush_round(std::mem::take(&mut carried));
    }
}

/// One round: the logs grouped by what syncs them together (file system
/// and disk), each group synced at once. Returns the logs that synced
/// something; the rest had nothing pending and left the flusher.
fn flush_round(logs: Vec<Arc<LogShared>>) -> Vec<Arc<LogShared>> {
    let mut groups: Vec<Vec<Arc<LogShared>>> = Vec::new();
    for log in logs {
        match groups.iter_mut().find(|group| group[0].syncs_with(&log)) {
            Some(group) => group.push(log),
            None => groups.push(vec![log]),
        }
    }
    groups
        .into_iter()
        .flat_map(LogShared::flush_together)
        .collect()
}

/// The logs that became ready, at once if `carrying` (the caller has a
/// round to run anyway); otherwise waits for some, waking for the nearest
/// flush.ms deadline. `None` at shutdown once nothing is left.
fn next_logs(shared: &FlusherShared, carrying: bool) -> Option<Vec<Arc<LogShared>>> {
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
            match log.interval_deadline(now) {
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

/// Where an `interval` log stands against its flush.ms deadline.
pub(crate) enum IntervalCheck {
    /// Unflushed data is past its deadline; the log was marked scheduled.
    Due,
    /// Unflushed data will be due at this instant.
    At(Instant),
    /// Nothing to flush, or a round is already scheduled.
    Idle,
}

impl DurableState {
    /// Checks the flush.ms deadline; marks the log scheduled when due.
    pub(crate) fn interval_check(&mut self, now: Instant) -> IntervalCheck {
        let Some(interval) = self.interval else {
            return IntervalCheck::Idle;
        };
        if self.scheduled || self.failed.is_some() || self.log_end <= self.flushed_end {
            return IntervalCheck::Idle;
        }
        let deadline = self.last_flush + interval;
        if deadline <= now {
            self.scheduled = true;
            IntervalCheck::Due
        } else {
            IntervalCheck::At(deadline)
        }
    }
}
