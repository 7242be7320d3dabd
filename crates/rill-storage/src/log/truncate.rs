//! Truncation: cutting the log back to an offset (a follower diverged
//! from its leader), or restarting it empty at one. Everything appended
//! before is made durable first, and the cut itself before returning.

use super::log_start::delete_segment_files;
use super::{Log, LogShared, LogState};
use crate::Offset;
use crate::clean_point::write_clean_point;
use crate::clock::now_ms;
use crate::durable::sync_dir_on;
use crate::error::{IoFailure, ModifyError};
use crate::segment::Segment;

impl Log {
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
        } else if state.segment_of(offset).end_if_truncated_to(offset)? <= log_start {
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
}

impl LogShared {
    /// Cuts the log at `offset`, above the log start (see
    /// [`Log::truncate_to`]); the caller has synced under the same locks.
    fn cut_locked(&self, state: &mut LogState, offset: Offset) -> Result<Offset, ModifyError> {
        let disk = self.disk.as_ref();
        let config = state.config;
        let mut removed: Vec<Segment> = Vec::new();
        if let Some(keep) = state.sealed_index(offset) {
            // The cut lands in a sealed segment: it takes the active one's
            // place, and every segment after it goes, oldest first.
            removed = state.sealed.drain(keep + 1..).collect();
            let LogState { sealed, active, .. } = &mut *state;
            if let Some(kept) = sealed.last_mut() {
                std::mem::swap(active, kept);
            }
            removed.extend(sealed.pop());
        }
        delete_segment_files(&removed, disk)?;
        let segment = &mut state.active;
        segment.truncate_to(offset, &config, disk)?;
        let new_end = segment.next_offset();
        if segment.is_sealed() {
            // A sealed segment stays read-only: writing resumes in a new
            // active segment, which replaces the cut one if it is empty.
            let replace = segment.is_empty();
            let deleted = if replace {
                segment.delete_files(disk)
            } else {
                Ok(())
            };
            // On failure the cut segment stays in memory, as the active
            // one, so the offline log still answers reads of what it holds.
            let fresh = deleted
                .and_then(|()| Segment::create(&self.dir, new_end, &config, now_ms(), disk))?;
            let cut = std::mem::replace(&mut state.active, fresh);
            if !replace {
                state.sealed.push(cut);
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
        // On failure the old segments stay in memory, so the offline log
        // still answers reads of what it holds.
        let fresh = delete_segment_files(state.segments(), self.disk.as_ref()).and_then(|()| {
            Segment::create(&self.dir, offset, &config, now_ms(), self.disk.as_ref())
        })?;
        state.sealed.clear();
        state.active = fresh;
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
}
