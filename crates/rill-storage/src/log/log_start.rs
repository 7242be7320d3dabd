//! Moving the log start: retention (retention.ms, retention.bytes) and
//! DeleteRecords remove whole segments from the front; their files are
//! deleted outside the state lock.

use super::{Log, LogShared, LogState};
use crate::Offset;
use crate::disk::Disk;
use crate::error::{IoFailure, ModifyError};
use crate::retention::{RetentionOutcome, deletable_prefix};
use crate::segment::Segment;

impl Log {
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
        let segments: Vec<&Segment> = state.segments().collect();
        let mut count = deletable_prefix(
            &segments,
            &state.config,
            state.log_start_offset,
            now_ms,
            upper,
        );
        if count == state.segment_count() {
            // Every segment, the active one included, has expired.
            if state.active.is_empty() {
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
}

impl LogShared {
    /// Removes the leading segments no longer needed: the first `count`,
    /// and any wholly below the log start offset; never the active one.
    /// Returns them for deletion outside the lock.
    fn remove_prefix(&self, state: &mut LogState, count: usize) -> Vec<Segment> {
        let below_start = state
            .segments()
            .skip(1)
            .take_while(|next| next.base_offset() <= state.log_start_offset)
            .count();
        let count = count.max(below_start).min(state.sealed.len());
        let removed: Vec<Segment> = state.sealed.drain(..count).collect();
        let first_base = state.sealed.first().unwrap_or(&state.active).base_offset();
        if first_base > state.log_start_offset {
            state.log_start_offset = first_base;
        }
        removed
    }
}

/// Deletes the files of `segments`. Not followed by a directory sync:
/// retention's deletions that a crash undoes bring back segments no
/// acknowledgement depends on (the next open deletes those below the
/// checkpointed log start, and retention the rest); truncation and
/// restarts, whose correctness depends on the deletion, sync the directory.
pub(super) fn delete_segment_files<'a>(
    segments: impl IntoIterator<Item = &'a Segment>,
    disk: &dyn Disk,
) -> Result<(), IoFailure> {
    for segment in segments {
        segment.delete_files(disk)?;
        tracing::debug!(path = %segment.log_path().display(), "deleted segment");
    }
    Ok(())
}
