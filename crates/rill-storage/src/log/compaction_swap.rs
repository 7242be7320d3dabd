//! Compaction, the log's side: a pass over the sealed segments
//! (compaction.rs does the cleaning), each cleaned group swapped in under
//! the write lock by the crash-safe protocol of docs/storage.md ("The
//! swap, and crash safety"), and the clean point checkpointed.

use super::{Log, LogShared};
use crate::Offset;
use crate::clean_point::write_clean_point;
use crate::compaction::{
    AbortedRanges, CleanContext, CleanerConfig, CompactionOutcome, ProducersLast, TxnTraversal,
    build_offset_map, clean_group, group_segments, plan,
};
use crate::durable::sync_dir_on;
use crate::error::CompactError;
use crate::segment::{FileStage, SealedView, Segment};

impl Log {
    /// One compaction pass (cleanup.policy `compact` or `compact,delete`),
    /// as Kafka's log cleaner: if the dirty share of the cleanable segments
    /// is above min.cleanable.dirty.ratio (or the oldest dirty record is
    /// past max.compaction.lag.ms), keeps only the latest record of each
    /// key in the sealed segments below `upper` (the last stable offset:
    /// every transaction below it has ended; the high watermark where
    /// there are no transactions) and older than min.compaction.lag.ms,
    /// never touching the active segment. Offsets are kept, so reads see
    /// gaps. Tombstones go once delete.retention.ms has passed since a
    /// pass first kept them. Records of aborted transactions go too, and
    /// a transaction marker goes delete.retention.ms after a pass first
    /// finds no batch of its transaction left (see compaction.rs).
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
        let (config, views, first_dirty, truncations, aborted) = {
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
            let sealed = &state.sealed;
            // The pass reads these in user space, outside the lock, for a
            // while: a truncation during it is the window file_check.rs
            // describes, at its widest.
            for segment in sealed {
                self.shared.check_segment(&state, segment)?;
            }
            let views = sealed
                .iter()
                .map(Segment::sealed_view)
                .collect::<Result<Vec<SealedView>, _>>()?;
            // Every transaction below `upper` (the last stable offset) has
            // ended, so its ABORT marker, if any, is indexed by now, in
            // whichever segment holds it.
            let aborted = AbortedRanges::new(
                state
                    .segments()
                    .flat_map(|s| s.aborted_txns().iter().copied()),
            );
            (state.config, views, first_dirty, state.truncations, aborted)
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
            &aborted,
            cleaner.dedupe_buffer_bytes,
        )?;
        let to_clean = views[..plan.cleanable]
            .iter()
            .take_while(|v| v.base_offset < map_end)
            .count();
        let views = &views[..to_clean];
        let producers_last = ProducersLast::of(views);
        let context = CleanContext {
            map: &map,
            map_end,
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            producers_last: &producers_last,
            aborted: &aborted,
        };
        let disk = self.shared.disk.as_ref();
        // From the log's first segment on, so a marker whose transaction
        // has no batch in the pass has none anywhere (see TxnTraversal).
        let mut txns = TxnTraversal::default();
        for range in group_segments(views, config.segment_bytes) {
            let group = &views[range];
            let cleaned = clean_group(
                &self.shared.dir,
                group,
                &context,
                &mut txns,
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
}

impl LogShared {
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
            .sealed
            .iter()
            .position(|s| s.base_offset() == group[0].base_offset);
        let unchanged = !state.closed
            && self.durability.check().is_ok()
            && state.truncations == truncations
            && first.is_some_and(|first| {
                state
                    .sealed
                    .get(first..first + group.len())
                    .is_some_and(|segments| {
                        segments.iter().zip(group).all(|(s, v)| {
                            s.is_sealed()
                                && s.base_offset() == v.base_offset
                                && s.size() as usize == v.data.len()
                        })
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
        let replaced = state.sealed[first..first + group.len()]
            .iter()
            .try_for_each(|s| s.delete_files(disk))
            .and_then(|()| sync_dir())
            .and_then(|()| cleaned.rename_to(FileStage::Live, disk));
        if let Err(e) = replaced {
            self.fail_write(format!("compaction swap failed after its commit: {e}"));
            return Err(e.into());
        }
        let old: Vec<Segment> = state
            .sealed
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
}
