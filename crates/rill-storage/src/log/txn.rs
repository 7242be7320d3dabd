//! Transactions, the log's side: appending a broker's transaction marker
//! or a coordinator's batch (neither is a client's batch, so neither goes
//! through [`rill_record::validate_produced`]), and the aborted-transaction
//! index of each segment (txn_index.rs): adding to it, searching it.
//!
//! What a transaction is — which producer has one open, where it began,
//! when a marker ends it — is the partition's business (its producer
//! state); the log only stores the markers and the index.

use rill_record::{BatchError, validate_replicated};

use super::append::Placement;
use super::{Log, ValidatedBatch};
use crate::Offset;
use crate::durability::AppendTicket;
use crate::durable::sync_dir_on;
use crate::error::{AppendError, ModifyError};
use crate::txn_index::AbortedTxn;

impl Log {
    /// Appends a control batch the broker built (a transaction marker, see
    /// [`rill_record::end_txn_marker`]) as the leader in `leader_epoch`:
    /// it gets the next offset, as a producer's batch would. When the
    /// marker aborts a transaction, `aborted` describes it — its last
    /// offset must be the log end offset, where the marker goes — and is
    /// added to the active segment's transaction index with the marker.
    ///
    /// Panics if `batch` is not a control batch: only a broker builds one.
    pub fn append_control(
        &self,
        batch: &[u8],
        leader_epoch: i32,
        now_ms: i64,
        aborted: Option<AbortedTxn>,
    ) -> Result<AppendTicket, AppendError> {
        let view = validate_replicated(batch)?;
        assert!(
            view.attributes().is_control(),
            "append_control appends control batches only"
        );
        self.append_batch(view, Placement::Assign { leader_epoch }, now_ms, aborted)
    }

    /// Checks a batch a coordinator of this broker wrote (Kafka's
    /// AppendOrigin.COORDINATOR: transactional offset commits, group
    /// metadata) as [`Log::validate`] checks a producer's, except that a
    /// producer id may come without a sequence (baseSequence -1): the
    /// coordinator's batches carry the transaction's producer id and
    /// epoch, never a sequence. It is appended with
    /// [`Log::append_validated`].
    pub fn validate_coordinator<'a>(
        &self,
        batch: &'a [u8],
    ) -> Result<ValidatedBatch<'a>, AppendError> {
        let max_message_bytes = self.config().max_message_bytes as usize;
        let view = validate_replicated(batch)?;
        if view.size() > max_message_bytes {
            return Err(BatchError::TooLarge {
                batch_bytes: view.size(),
                max_bytes: max_message_bytes,
            }
            .into());
        }
        if view.base_offset() != 0 {
            return Err(BatchError::BaseOffsetNotZero {
                base_offset: view.base_offset(),
            }
            .into());
        }
        let (last_offset_delta, records_count) = (view.last_offset_delta(), view.records_count());
        if records_count <= 0 || i64::from(last_offset_delta) + 1 != i64::from(records_count) {
            return Err(BatchError::OffsetRangeMismatch {
                last_offset_delta,
                records_count,
            }
            .into());
        }
        if view.attributes().is_control() {
            return Err(BatchError::ControlBatchFromClient.into());
        }
        Ok(ValidatedBatch { view })
    }

    /// [`Log::append_replicated_validated`] of a leader's batch that, as a
    /// marker, aborts the transaction `aborted` describes: the entry is
    /// added to the transaction index with the batch.
    pub fn append_replicated_aborting(
        &self,
        batch: super::ReplicatedBatch<'_>,
        now_ms: i64,
        aborted: Option<AbortedTxn>,
    ) -> Result<AppendTicket, AppendError> {
        self.append_batch(batch.view(), Placement::AsStored, now_ms, aborted)
    }

    /// Adds `entry` to the transaction index of the segment holding its
    /// marker (`entry.last_offset`), unless it is there already, and makes
    /// it durable: the partition's replay of markers at open, restoring
    /// what a crash lost of the index. Returns whether it was added; an
    /// entry whose marker is not in the log (below the log start, at or
    /// past the end) is not.
    pub fn add_aborted_txn(&self, entry: AbortedTxn) -> Result<bool, ModifyError> {
        let mut state = self.shared.state.write();
        self.shared.check_writable(&state)?;
        if entry.last_offset < state.log_start_offset || entry.last_offset >= state.log_end() {
            return Ok(false);
        }
        let disk = self.shared.disk.as_ref();
        let segment = match state.sealed_index(entry.last_offset) {
            Some(i) => &mut state.sealed[i],
            None => &mut state.active,
        };
        let before = segment.aborted_txn_count();
        let created = segment.add_aborted_txn(entry, disk)?;
        let added = segment.aborted_txn_count() > before;
        if added {
            if let Some((file, path)) = segment.txn_index_sync_file() {
                file.sync_data(disk)
                    .map_err(|e| crate::error::IoFailure::new("sync transaction index", path, e))?;
            }
        }
        drop(state);
        if created {
            sync_dir_on(disk, &self.shared.dir)?;
        }
        Ok(added)
    }

    /// Every aborted transaction that overlaps [`from`, `upper`): its
    /// marker at or after `from` and its first offset below `upper`,
    /// ordered by marker offset (Kafka's collectAbortedTransactions). The
    /// search starts at the segment holding `from` — an entry sits with
    /// its marker, so earlier segments hold only transactions that ended
    /// before `from` — and stops at the first entry whose last stable
    /// offset reaches `upper`.
    pub fn aborted_txns(&self, from: Offset, upper: Offset) -> Vec<AbortedTxn> {
        let state = self.shared.state.read();
        let mut found = Vec::new();
        for segment in state.segments_from(from) {
            if segment.collect_aborted_txns(from, upper, &mut found) {
                break;
            }
        }
        found
    }
}
