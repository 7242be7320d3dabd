//! The partition's open and recently ended transactions, as Kafka's
//! ProducerStateManager keeps them beside its producers: where each open
//! transaction began (ongoingTxns), and which ended transactions still
//! have their marker at or above the high watermark (unreplicatedTxns).
//! Together with the high watermark they give the last stable offset,
//! below which a read_committed consumer may read.
//!
//! Not thread-safe: part of the producer state, behind the partition's
//! append lock.

use std::collections::BTreeMap;

use rill_record::{BatchView, EndTxnMarker, MarkerKind};
use rill_storage::Offset;

/// A transaction marker of a producer, read from a control batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MarkerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub marker: EndTxnMarker,
}

impl MarkerBatch {
    /// The marker a control batch holds. `None` for a data batch, a
    /// control batch without a producer id, a control record other than
    /// a commit or abort, and a control record that cannot be read: like
    /// Kafka, that is logged and the batch treated as no marker, rather
    /// than taking the partition down over one batch a leader accepted.
    pub(crate) fn of(batch: &BatchView<'_>) -> Option<MarkerBatch> {
        if !batch.attributes().is_control() || !batch.has_producer_id() {
            return None;
        }
        match EndTxnMarker::of(batch) {
            Ok(marker) => marker.map(|marker| MarkerBatch {
                producer_id: batch.producer_id(),
                epoch: batch.producer_epoch(),
                marker,
            }),
            Err(error) => {
                tracing::warn!(base_offset = batch.base_offset(), producer_id = batch.producer_id(),
                    %error, "ignoring an unreadable control record");
                None
            }
        }
    }
}

/// A transaction a marker ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: Offset,
    /// The marker's offset.
    pub last_offset: Offset,
    pub aborted: bool,
}

impl CompletedTxn {
    pub(crate) fn new(
        producer_id: i64,
        first_offset: Offset,
        last_offset: Offset,
        kind: MarkerKind,
    ) -> CompletedTxn {
        CompletedTxn {
            producer_id,
            first_offset,
            last_offset,
            aborted: kind == MarkerKind::Abort,
        }
    }
}

/// Open transactions by first offset, and ended ones whose marker may not
/// be replicated yet.
#[derive(Debug, Default)]
pub(crate) struct TxnState {
    /// First offset → producer id, for every open transaction.
    ongoing: BTreeMap<Offset, i64>,
    /// First offset → the ended transaction, until the high watermark
    /// passes its marker.
    unreplicated: BTreeMap<Offset, CompletedTxn>,
}

impl TxnState {
    /// Whether no transaction is open or awaiting its marker's
    /// replication.
    pub(crate) fn is_empty(&self) -> bool {
        self.ongoing.is_empty() && self.unreplicated.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.ongoing.clear();
        self.unreplicated.clear();
    }

    /// `producer_id`'s transaction begins at `first_offset`. One batch has
    /// one producer, so two transactions never begin at one offset; a
    /// snapshot read from disk that says otherwise keeps the first.
    pub(crate) fn begin(&mut self, producer_id: i64, first_offset: Offset) {
        let previous = *self.ongoing.entry(first_offset).or_insert(producer_id);
        if previous != producer_id {
            tracing::warn!(%first_offset, producer_id, previous,
                "two transactions said to begin at one offset; keeping the first");
        }
    }

    /// The last stable offset an ABORT index entry records for `txn`
    /// (Kafka's lastStableOffset(completedTxn)): the first offset of the
    /// earliest transaction of another producer still open, or the
    /// marker's offset + 1.
    pub(crate) fn last_stable_offset_after(&self, txn: &CompletedTxn) -> Offset {
        self.ongoing
            .iter()
            .find(|&(_, &producer_id)| producer_id != txn.producer_id)
            .map_or(txn.last_offset.plus(1), |(&first, _)| first)
    }

    /// `txn` ended: it is open no more, and unstable until the high
    /// watermark passes its marker.
    pub(crate) fn complete(&mut self, txn: CompletedTxn) {
        if self.ongoing.get(&txn.first_offset) == Some(&txn.producer_id) {
            self.ongoing.remove(&txn.first_offset);
        }
        self.unreplicated.insert(txn.first_offset, txn);
    }

    /// The first offset that may still belong to an unfinished (or not yet
    /// replicated) transaction, forgetting ended transactions whose marker
    /// is below `high_watermark` (Kafka's onHighWatermarkUpdated).
    pub(crate) fn first_unstable_offset(&mut self, high_watermark: Offset) -> Option<Offset> {
        self.unreplicated
            .retain(|_, txn| txn.last_offset >= high_watermark);
        let ongoing = self.ongoing.keys().next().copied();
        let unreplicated = self.unreplicated.keys().next().copied();
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The log start moved to `start`: ended transactions whose marker is
    /// below it are gone with it.
    pub(crate) fn log_start_advanced(&mut self, start: Offset) {
        self.unreplicated.retain(|_, txn| txn.last_offset >= start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_unstable_offset_waits_for_markers_to_replicate() {
        let mut txns = TxnState::default();
        txns.begin(1, Offset(0));
        txns.begin(2, Offset(3));
        assert_eq!(txns.first_unstable_offset(Offset(10)), Some(Offset(0)));
        let one = CompletedTxn::new(1, Offset(0), Offset(5), MarkerKind::Abort);
        assert_eq!(
            txns.last_stable_offset_after(&one),
            Offset(3),
            "2 is still open"
        );
        txns.complete(one);
        assert_eq!(
            txns.first_unstable_offset(Offset(5)),
            Some(Offset(0)),
            "1's marker is not below the high watermark yet"
        );
        assert_eq!(txns.first_unstable_offset(Offset(6)), Some(Offset(3)));
        let two = CompletedTxn::new(2, Offset(3), Offset(6), MarkerKind::Commit);
        assert_eq!(txns.last_stable_offset_after(&two), Offset(7));
        txns.complete(two);
        assert_eq!(txns.first_unstable_offset(Offset(7)), None);
    }
}
