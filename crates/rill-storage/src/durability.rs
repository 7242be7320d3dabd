//! What is durable of each log, and the tickets through which an append
//! is acknowledged only once its flush policy is satisfied: the record
//! the log updates as it appends, syncs and truncates, and that tickets
//! wait on. Who syncs is flush.rs's business; this knows no log and no
//! flusher.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::Offset;
use crate::error::LogFailed;

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
        self.fail_logged(failed, true);
    }

    /// [`Durability::fail`], logging it (at ERROR) only if `log`: a
    /// failure of a whole log directory is logged once by whoever takes
    /// its logs offline, not once per log.
    pub(crate) fn fail_logged(&self, failed: LogFailed, log: bool) {
        let mut state = self.state.lock();
        let replace = state
            .failed
            .as_ref()
            .is_none_or(|current| current.allows_reads() && !failed.allows_reads());
        if replace {
            if log {
                tracing::error!(dir = %failed.dir.display(), cause = %failed.cause, "log offline");
            } else {
                tracing::debug!(dir = %failed.dir.display(), cause = %failed.cause, "log offline");
            }
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
    /// The durability record of the log to wait on, unless the append
    /// was acknowledgeable at once. Not the log: a ticket resolves when
    /// the log syncs, and a log with a sync due is held by the flusher.
    log: Option<Arc<Durability>>,
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

    pub(crate) fn pending(info: AppendInfo, log: Arc<Durability>, generation: u64) -> AppendTicket {
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
            Some(log) => log.lock().outcome(self.end, self.generation).is_some(),
        }
    }

    /// Blocks until the append may be acknowledged.
    pub fn wait(self) -> Result<AppendInfo, LogFailed> {
        let Some(durability) = &self.log else {
            return Ok(self.info);
        };
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
        let mut state = log.state.lock();
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
