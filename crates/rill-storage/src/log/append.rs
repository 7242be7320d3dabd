//! Appending: a producer's batch validated and stamped with the next
//! offsets, or a leader's batch copied as stored; and rolling the active
//! segment when the next batch does not belong in it.

use std::sync::Arc;

use parking_lot::RwLockWriteGuard;
use rill_record::{
    BatchView, TimestampType, apply_record_rules, validate_produced, validate_replicated,
};

use super::{Log, LogShared, LogState};
use crate::Offset;
use crate::config::{FlushPolicy, LogConfig};
use crate::durability::{AppendInfo, AppendTicket};
use crate::error::{AppendError, IoFailure};
use crate::offset::LOG_END_OFFSET_MAX;
use crate::segment::{Segment, Stamp};
use crate::txn_index::AbortedTxn;

/// A batch that [`Log::validate`] accepted as a producer's: the proof
/// [`Log::append_validated`] asks for, so that it need not check the
/// batch (and compute its CRC) again.
#[derive(Clone, Copy, Debug)]
pub struct ValidatedBatch<'a> {
    pub(super) view: BatchView<'a>,
}

impl<'a> ValidatedBatch<'a> {
    /// The batch's header (and records), for reading its fields.
    pub fn view(&self) -> BatchView<'a> {
        self.view
    }
}

/// A batch that [`Log::validate_replicated`] accepted as a leader's: the
/// proof [`Log::append_replicated_validated`] asks for.
#[derive(Clone, Copy, Debug)]
pub struct ReplicatedBatch<'a> {
    view: BatchView<'a>,
}

impl<'a> ReplicatedBatch<'a> {
    /// The batch's header (and records), for reading its fields.
    pub fn view(&self) -> BatchView<'a> {
        self.view
    }

    /// The offset the batch starts at, as the leader assigned it.
    pub fn base_offset(&self) -> Offset {
        Offset(self.view.base_offset())
    }

    /// baseOffset + lastOffsetDelta: the log end offset after the batch
    /// is this + 1, whatever recordsCount says (compaction may have
    /// removed records).
    pub fn last_offset(&self) -> Offset {
        Offset(self.view.last_offset())
    }

    /// [`AppendError::BaseOffsetBelowLogEnd`] unless the batch may follow
    /// a log that ends at `log_end`: [`Log::append_replicated_validated`]
    /// checks this under the log's lock; a caller that must act before
    /// the write (record the batch's leader epoch) checks it first.
    pub fn check_follows(&self, log_end: Offset) -> Result<(), AppendError> {
        if self.base_offset() < log_end {
            return Err(AppendError::BaseOffsetBelowLogEnd {
                log_end,
                base_offset: self.base_offset(),
                last_offset: self.last_offset(),
            });
        }
        Ok(())
    }
}

/// Where an appended batch's offsets, epoch and timestamps come from.
#[derive(Clone, Copy, Debug)]
pub(super) enum Placement {
    /// A producer's batch: the next offsets, the leader's epoch, and for
    /// LogAppendTime logs the broker's clock, stamped into it.
    Assign { leader_epoch: i32 },
    /// A batch a follower copies from its leader: its own fields, as
    /// stored (the stamp rewrites them with the values they hold).
    AsStored,
}

impl Placement {
    /// The stamp for `view` on a log that ends at `log_end`.
    fn stamp(
        self,
        view: &BatchView<'_>,
        log_end: Offset,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Stamp, AppendError> {
        match self {
            Placement::Assign { leader_epoch } => Ok(Stamp {
                base_offset: log_end,
                leader_epoch,
                log_append_time_ms: (config.timestamp_type == TimestampType::LogAppendTime)
                    .then_some(now_ms),
            }),
            Placement::AsStored => {
                let batch = ReplicatedBatch { view: *view };
                batch.check_follows(log_end)?;
                Ok(Stamp {
                    base_offset: batch.base_offset(),
                    leader_epoch: view.partition_leader_epoch(),
                    log_append_time_ms: None,
                })
            }
        }
    }
}

impl Log {
    /// Validates `batch` as a producer's (see
    /// [`rill_record::validate_produced`]), assigns it the next offsets,
    /// stamps `leader_epoch` (and, for LogAppendTime logs, `now_ms`) into
    /// it and writes it. Nothing of a refused batch is written.
    pub fn append(
        &self,
        batch: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendTicket, AppendError> {
        let mut stored = Vec::new();
        self.append_validated(self.validate(batch, &mut stored)?, leader_epoch, now_ms)
    }

    /// Checks `batch` as [`Log::append`] would, against this log's
    /// max.message.bytes and record rules, so that a caller can read its
    /// header (producer id, sequence) before deciding to append it with
    /// [`Log::append_validated`], without the CRC being computed twice.
    ///
    /// The batch to store is `batch` itself unless the log's rules change
    /// it (`compression.type` naming another codec): then it is written
    /// into `stored` and checked again, max.message.bytes included, as
    /// Kafka does after recompressing.
    pub fn validate<'a>(
        &self,
        batch: &'a [u8],
        stored: &'a mut Vec<u8>,
    ) -> Result<ValidatedBatch<'a>, AppendError> {
        let config = self.shared.state.read().config;
        let max_message_bytes = config.max_message_bytes as usize;
        let view = validate_produced(batch, max_message_bytes)?;
        let Some(recompressed) = apply_record_rules(&view, &config.record_rules())? else {
            return Ok(ValidatedBatch { view });
        };
        *stored = recompressed;
        let stored: &'a [u8] = stored;
        let view = validate_produced(stored, max_message_bytes)?;
        Ok(ValidatedBatch { view })
    }

    /// [`Log::append`] of a batch that [`Log::validate`] has checked.
    pub fn append_validated(
        &self,
        batch: ValidatedBatch<'_>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendTicket, AppendError> {
        self.append_batch(batch.view, Placement::Assign { leader_epoch }, now_ms, None)
    }

    /// Appends one whole v2 batch exactly as the leader stored it: a
    /// follower copying the leader's log. The bytes are written unchanged
    /// — baseOffset, partitionLeaderEpoch and the timestamps are never
    /// restamped, whatever this log's message.timestamp.type, so the CRC
    /// holds and the follower's log is the leader's, byte for byte.
    ///
    /// The batch is checked as [`Log::validate_replicated`] says, and its
    /// base offset must be at or after the log end offset: offsets may
    /// jump forward (the leader's compaction removed whole batches), and
    /// the log end offset afterwards is the batch's last offset
    /// (baseOffset + lastOffsetDelta) + 1. A batch below the log end is
    /// [`AppendError::BaseOffsetBelowLogEnd`], and nothing is written.
    ///
    /// Everything else is as for [`Log::append`]: segment.bytes bounds
    /// the batch, the log rolls (a new segment is named by the batch's
    /// base offset), both indexes are kept (the time index with the
    /// batch's maxTimestamp), an offline or closed log refuses it, and the
    /// ticket resolves under the flush policy (under `fsync` after an
    /// fdatasync covers it, group-committed with other appends).
    pub fn append_replicated(
        &self,
        batch: &[u8],
        now_ms: i64,
    ) -> Result<AppendTicket, AppendError> {
        self.append_replicated_validated(self.validate_replicated(batch)?, now_ms)
    }

    /// Checks `batch` as [`Log::append_replicated`] would (see
    /// [`rill_record::validate_replicated`]: framing, one whole batch,
    /// CRC-32C, a sane offset range; no producer rules and no
    /// max.message.bytes, as Kafka's follower), so that a caller can read
    /// its header before appending it with
    /// [`Log::append_replicated_validated`]. Whether it follows the log
    /// end is checked at the append, under the log's lock.
    pub fn validate_replicated<'a>(
        &self,
        batch: &'a [u8],
    ) -> Result<ReplicatedBatch<'a>, AppendError> {
        let view = validate_replicated(batch)?;
        Ok(ReplicatedBatch { view })
    }

    /// [`Log::append_replicated`] of a batch that
    /// [`Log::validate_replicated`] has checked.
    pub fn append_replicated_validated(
        &self,
        batch: ReplicatedBatch<'_>,
        now_ms: i64,
    ) -> Result<AppendTicket, AppendError> {
        self.append_batch(batch.view, Placement::AsStored, now_ms, None)
    }

    /// Writes a validated batch at the offsets `placement` gives it; the
    /// one append path under [`Log::append_validated`] and
    /// [`Log::append_replicated_validated`] (and the transactional ones
    /// of txn.rs). An ABORT marker's `aborted` transaction, whose last
    /// offset must be the batch's, goes into the active segment's
    /// transaction index under the same lock as the marker, so that any
    /// sync that covers the marker covers the entry.
    pub(super) fn append_batch(
        &self,
        view: BatchView<'_>,
        placement: Placement,
        now_ms: i64,
        aborted: Option<AbortedTxn>,
    ) -> Result<AppendTicket, AppendError> {
        let batch = view.as_bytes();
        let mut state = self.shared.state.write();
        self.shared.durability.check()?;
        if state.closed {
            return Err(AppendError::Closed {
                dir: self.shared.dir.clone(),
            });
        }
        // Before anything touches the active segment's maps: a store past
        // the end of a file cut under the log would be a SIGBUS.
        self.shared.check_segment(&state, &state.active)?;
        let config = state.config;
        if batch.len() > config.segment_bytes as usize {
            return Err(AppendError::BatchLargerThanSegment {
                batch_bytes: batch.len(),
                segment_bytes: config.segment_bytes,
            });
        }
        let stamp = placement.stamp(&view, state.log_end(), &config, now_ms)?;
        let base_offset = stamp.base_offset;
        if let Some(aborted) = &aborted {
            assert_eq!(
                aborted.last_offset, base_offset,
                "an aborted transaction ends at its marker's offset"
            );
        }
        // A producer's batch spans recordsCount offsets (validated to
        // agree); a replicated one may span more, after compaction.
        let offsets = i64::from(view.last_offset_delta()) + 1;
        let last_offset = match base_offset.value().checked_add(offsets) {
            Some(end) if end <= LOG_END_OFFSET_MAX => Offset(end - 1),
            _ => {
                return Err(AppendError::OffsetOverflow {
                    base_offset,
                    offsets,
                });
            }
        };
        let max_timestamp = stamp.log_append_time_ms.unwrap_or(view.max_timestamp());
        let rolled =
            state
                .active
                .should_roll(batch.len(), max_timestamp, last_offset, &config, now_ms)?;
        let written = if rolled {
            self.shared
                .roll(&mut state, base_offset, now_ms)
                .map_err(AppendError::from)
        } else {
            Ok(())
        }
        .and_then(|()| {
            state
                .active
                .append(&view, &stamp, &config, self.shared.disk.as_ref())
        });
        let file_system = &self.shared.file_system;
        let appended = match written {
            Err(error @ AppendError::DiskFull { .. }) => {
                file_system.out_of_space(&self.shared.dir);
                return Err(error);
            }
            other => other?,
        };
        if appended.reserved {
            file_system.has_room(&self.shared.dir);
        }
        assert_eq!(
            appended.last_offset, last_offset,
            "the segment places the batch where the log does"
        );
        if let Some(aborted) = aborted {
            match state
                .active
                .add_aborted_txn(aborted, self.shared.disk.as_ref())
            {
                Ok(created) => state.dir_dirty |= created,
                Err(e) => {
                    // The marker is written but its index entry is not: the
                    // log goes offline, and the reopen's replay of the
                    // markers writes the entry.
                    self.shared
                        .fail_write(format!("could not index an aborted transaction: {e}"));
                    return Err(e.into());
                }
            }
        }
        let records = u64::try_from(view.records_count()).unwrap_or(0);
        state.unflushed_messages += records;
        let wait_for_sync = match config.flush {
            FlushPolicy::Fsync => true,
            FlushPolicy::Interval { messages, .. } => state.unflushed_messages >= messages,
            FlushPolicy::None => false,
        };
        let info = AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms: match placement {
                Placement::Assign { .. } => stamp.log_append_time_ms,
                Placement::AsStored => (view.attributes().timestamp_type()
                    == TimestampType::LogAppendTime)
                    .then_some(view.max_timestamp()),
            },
            max_timestamp: appended.max_timestamp,
            log_start_offset: state.log_start_offset,
        };
        let (schedule, deadline_starts, generation) = {
            let mut durable = self.shared.durability.lock();
            // The first unflushed append of an `interval` log starts its
            // flush.ms clock, which an idle flusher must learn about.
            let deadline_starts =
                durable.interval.is_some() && durable.log_end <= durable.flushed_end;
            durable.log_end = last_offset.plus(1);
            let schedule = (wait_for_sync || rolled) && !durable.scheduled;
            durable.scheduled |= schedule;
            (schedule, deadline_starts, durable.generation)
        };
        drop(state);
        if schedule {
            self.shared
                .flusher
                .schedule(Arc::<LogShared>::clone(&self.shared));
        } else if deadline_starts {
            self.shared.flusher.recheck_deadlines();
        }
        Ok(if wait_for_sync {
            AppendTicket::pending(info, Arc::clone(&self.shared.durability), generation)
        } else {
            AppendTicket::ready(info)
        })
    }
}

impl LogShared {
    /// Seals the active segment and starts a new one at `next`: the log
    /// end, or a replicated batch's base offset past it (the segment is
    /// then named by its first batch). The new file exists before the old
    /// one is trimmed, so a failure leaves the old one active. An empty
    /// active segment is replaced rather than sealed: only a replicated
    /// batch whose offsets lie too far past its base to be indexed
    /// relative to it rolls one.
    pub(super) fn roll(
        &self,
        state: &mut RwLockWriteGuard<'_, LogState>,
        next: Offset,
        now_ms: i64,
    ) -> Result<(), IoFailure> {
        assert!(
            next >= state.log_end(),
            "rolling at {next}, below the log end {}",
            state.log_end()
        );
        let config = state.config;
        let fresh = Segment::create(&self.dir, next, &config, now_ms, self.disk.as_ref())?;
        if state.active.is_empty() {
            assert!(
                next > state.active.base_offset(),
                "an empty segment is replaced only by a later one"
            );
            if let Err(e) = state.active.delete_files(self.disk.as_ref()) {
                let _ = fresh.delete_files(self.disk.as_ref()); // best effort, as below
                return Err(e);
            }
            state.active = fresh;
            state.dir_dirty = true;
            tracing::debug!(dir = %self.dir.display(), base_offset = %next, "replaced empty segment");
            return Ok(());
        }
        if let Err(e) = state.active.seal() {
            // Best effort: the half-made segment would otherwise be found
            // at the next open, empty, which recovery also handles.
            let _ = fresh.delete_files(self.disk.as_ref());
            return Err(e);
        }
        let sealed_files = state.active.sync_files();
        state.unsynced.extend(sealed_files);
        let sealed = std::mem::replace(&mut state.active, fresh);
        state.sealed.push(sealed);
        state.dir_dirty = true;
        tracing::debug!(dir = %self.dir.display(), base_offset = %next, "rolled segment");
        Ok(())
    }
}
