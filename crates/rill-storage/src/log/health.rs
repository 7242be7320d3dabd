//! File health: checking that no file was removed or cut shorter under
//! the log (file_check.rs), and taking the log offline — for writes after
//! a failed write or sync, for reads too once a file changed.

use std::sync::atomic::Ordering;

use super::{Log, LogShared, LogState};
use crate::error::{LogFailed, ModifyError, OfflineCause, SegmentFileChanged};
use crate::segment::Segment;

impl Log {
    /// Whether the log is offline (a sync failed, or a file changed under
    /// it) and refuses writes, and maybe reads, until reopened.
    pub fn failure(&self) -> Option<LogFailed> {
        self.shared.durability.check().err()
    }

    /// Takes the log offline for writes, as a failed sync of its own files
    /// would: for a failed sync elsewhere in its log directory (a
    /// checkpoint), after which the directory's disk is not to be trusted.
    /// Reads go on; reopening the log (a restart) runs recovery. Logged
    /// at DEBUG only: the caller says once what happened to the directory.
    pub fn take_offline_for_writes(&self, reason: String) {
        self.shared.durability.fail_logged(
            LogFailed {
                dir: self.shared.dir.clone(),
                cause: OfflineCause::WriteFailed { reason },
            },
            false,
        );
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
}

impl LogShared {
    /// Refuses reads once a file changed under the log.
    pub(super) fn check_readable(&self) -> Result<(), LogFailed> {
        if self.reads_refused.load(Ordering::Acquire) {
            self.durability.check()?;
        }
        Ok(())
    }

    /// Checks the files a read of `segment` touches (see file_check.rs),
    /// taking the log offline if one changed.
    pub(super) fn check_segment_for_read(
        &self,
        state: &LogState,
        segment: &Segment,
    ) -> Result<(), LogFailed> {
        self.judge(state, segment.check_read_files())
    }

    /// Checks every file of `segment`, taking the log offline if one changed.
    pub(super) fn check_segment(
        &self,
        state: &LogState,
        segment: &Segment,
    ) -> Result<(), LogFailed> {
        self.judge(state, segment.check_files())
    }

    /// Checks every file of every segment.
    pub(super) fn check_segments(&self, state: &LogState) -> Result<(), LogFailed> {
        state
            .segments()
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
    pub(super) fn check_everything(&self, state: &LogState) -> Result<(), LogFailed> {
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

    pub(super) fn check_writable(&self, state: &LogState) -> Result<(), ModifyError> {
        self.durability.check()?;
        if state.closed {
            return Err(ModifyError::Closed {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Takes the log offline for writes: a write or sync failed, so the
    /// files are no longer known to match what the log holds.
    pub(super) fn fail_write(&self, reason: String) {
        self.durability.fail(LogFailed {
            dir: self.dir.clone(),
            cause: OfflineCause::WriteFailed { reason },
        });
    }

    /// A truncation that fails part-way leaves files and memory out of
    /// step: the log goes offline until reopened (recovery sorts it out).
    pub(super) fn offline_on_error<T>(
        &self,
        result: Result<T, ModifyError>,
    ) -> Result<T, ModifyError> {
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
}
