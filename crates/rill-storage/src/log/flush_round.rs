//! Flush scheduling, the log's side: when an append waits for a sync,
//! what a sync covers (sealed segments, the active one, the directory),
//! the log's part in the flusher's rounds ([`FlushTarget`]), and what may
//! be acknowledged.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use super::{Log, LogShared, LogState};
use crate::Offset;
use crate::config::FlushPolicy;
use crate::durability::{AppendInfo, AppendTicket, Durability};
use crate::durable::sync_dir_on;
use crate::error::{IoFailure, LogFailed, OfflineCause};
use crate::file_system::FileSystem;
use crate::flush::{FlushCapture, FlushTarget};

impl Log {
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
        AppendTicket::pending(info, Arc::clone(&self.shared.durability), generation)
    }

    /// Every offset below this is on disk: the recovery point to checkpoint.
    pub fn flushed_end_offset(&self) -> Offset {
        self.shared.durability.lock().flushed_end
    }

    /// Syncs everything appended so far and returns the flushed end.
    pub fn flush(&self) -> Result<Offset, LogFailed> {
        let _flushing = self.shared.flush_lock.lock();
        let mut state = self.shared.state.write();
        self.shared.sync_locked(&mut state)?;
        Ok(self.flushed_end_offset())
    }
}

impl LogShared {
    /// Puts the log on the flusher's flush.ms watch list, once.
    pub(super) fn watch_interval(self: &Arc<Self>) {
        if !self.interval_watched.swap(true, Ordering::Relaxed) {
            self.flusher
                .watch_interval(Arc::<LogShared>::downgrade(self));
        }
    }

    pub(super) fn schedule_flush(self: &Arc<Self>) {
        let schedule = {
            let mut durable = self.durability.lock();
            let schedule = !durable.scheduled;
            durable.scheduled = true;
            schedule
        };
        if schedule {
            self.flusher.schedule(Arc::<LogShared>::clone(self));
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
        files.extend(state.active.sync_files());
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
                file.sync_data(self.disk.as_ref())
                    .map_err(|e| IoFailure::new("sync segment", path, e))
            })
            .and_then(|()| {
                if capture.sync_dir {
                    sync_dir_on(self.disk.as_ref(), &self.dir)
                } else {
                    Ok(())
                }
            });
        self.file_system.note_sync(started, "fdatasync");
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
    pub(super) fn sync_locked(&self, state: &mut LogState) -> Result<(), LogFailed> {
        if let Some(capture) = self.capture(state, false) {
            self.sync(capture)?;
        }
        self.durability.check()
    }
}

impl FlushTarget for LogShared {
    fn durability(&self) -> &Durability {
        &self.durability
    }

    fn file_system(&self) -> &Arc<FileSystem> {
        &self.file_system
    }

    fn flush_lock(&self) -> &Mutex<()> {
        &self.flush_lock
    }

    fn capture_for_round(&self) -> Option<FlushCapture> {
        self.capture(&mut self.state.write(), true)
    }

    fn sync_captured(&self, capture: FlushCapture) -> Result<(), LogFailed> {
        self.sync(capture)
    }
}
