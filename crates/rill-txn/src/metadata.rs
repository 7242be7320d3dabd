//! One transactional id's transaction metadata and its two-step
//! transitions (Kafka's TransactionMetadata): `prepare_*` computes the
//! target [`Transit`] to log, [`TxnMetadata::complete`] applies it once
//! the log write is acknowledged.

use std::collections::BTreeSet;

use crate::state::TxnState;
use crate::txn_log::{TopicPartition, TxnLogValue};

/// Kafka's "no producer id" and "no epoch".
pub(crate) const NO_PRODUCER_ID: i64 = -1;
pub(crate) const NO_PRODUCER_EPOCH: i16 = -1;

/// Whether an epoch leaves no room for another bump: Kafka never hands
/// out `i16::MAX` so that the coordinator can always fence once more.
pub(crate) fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// The state a transition leads to, as it is logged (Kafka's
/// TxnTransitMetadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transit {
    pub producer_id: i64,
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    pub start_timestamp_ms: i64,
    pub last_update_timestamp_ms: i64,
}

impl Transit {
    /// The record value that makes this transit durable.
    pub(crate) fn log_value(&self) -> TxnLogValue {
        TxnLogValue {
            producer_id: self.producer_id,
            // Written only after a producer id rotation (KIP-360), so that
            // ordinary records are byte for byte what Kafka 4.0 writes.
            previous_producer_id: if self.last_producer_id != self.producer_id {
                self.last_producer_id
            } else {
                NO_PRODUCER_ID
            },
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: self.producer_epoch,
            transaction_timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: if self.state == TxnState::Empty {
                BTreeSet::new()
            } else {
                self.partitions.clone()
            },
            last_update_timestamp_ms: self.last_update_timestamp_ms,
            start_timestamp_ms: self.start_timestamp_ms,
            client_transaction_version: 0,
        }
    }
}

/// A transition in flight. While one is, every other request for the
/// transactional id gets CONCURRENT_TRANSACTIONS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub transit: Transit,
    /// The log write carrying it; `None` while a Complete* transit waits
    /// for the markers to be written.
    pub token: Option<u64>,
}

/// What one transactional id holds. Not thread-safe: the coordinator
/// owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnMetadata {
    pub producer_id: i64,
    /// The producer id before the last rotation (KIP-360).
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, for a retried InitProducerId
    /// (KIP-360); not logged.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    pub start_timestamp_ms: i64,
    pub last_update_timestamp_ms: i64,
    pub pending: Option<Pending>,
    /// An epoch fence was tried and its write failed: the epoch was bumped
    /// in memory already, so the next fence must not bump it again.
    pub has_failed_epoch_fence: bool,
}

impl TxnMetadata {
    /// A new transactional id: Empty, no epoch yet.
    pub(crate) fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_timestamp_ms: -1,
            last_update_timestamp_ms: now_ms,
            pending: None,
            has_failed_epoch_fence: false,
        }
    }

    /// The metadata a logged value describes.
    pub(crate) fn from_log(value: TxnLogValue) -> TxnMetadata {
        TxnMetadata {
            producer_id: value.producer_id,
            last_producer_id: value.previous_producer_id,
            producer_epoch: value.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: value.transaction_timeout_ms,
            state: value.state,
            partitions: value.partitions,
            start_timestamp_ms: value.start_timestamp_ms,
            last_update_timestamp_ms: value.last_update_timestamp_ms,
            pending: None,
            has_failed_epoch_fence: false,
        }
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// A transit to `state` from the current metadata. Only transitions to
    /// Empty (InitProducerId) move the current producer id into the last
    /// one, as Kafka's completeTransitionTo does.
    fn transit(&self, state: TxnState, now_ms: i64) -> Transit {
        assert!(
            state.valid_from(self.state),
            "transition from {} to {} is not allowed",
            self.state,
            state
        );
        Transit {
            producer_id: self.producer_id,
            last_producer_id: if state == TxnState::Empty {
                self.producer_id
            } else {
                self.last_producer_id
            },
            producer_epoch: self.producer_epoch,
            last_producer_epoch: self.last_producer_epoch,
            timeout_ms: self.timeout_ms,
            state,
            partitions: self.partitions.clone(),
            start_timestamp_ms: self.start_timestamp_ms,
            last_update_timestamp_ms: now_ms,
        }
    }

    /// InitProducerId on a complete transaction: bump the epoch, or, for
    /// a KIP-360 retry of the last bump, hand out the same epoch again.
    /// `Err(())` is PRODUCER_FENCED: the expected epoch is stale.
    pub(crate) fn prepare_increment_epoch(
        &self,
        timeout_ms: i32,
        expected_epoch: Option<i16>,
        now_ms: i64,
    ) -> Result<Transit, ()> {
        // An exhausted epoch is rotated instead of bumped, except for the
        // answers below that need no bump (a retry, or a fenced producer).
        let bumped = self.producer_epoch.saturating_add(1);
        let (epoch, last_epoch) = match expected_epoch {
            None => (bumped, NO_PRODUCER_EPOCH),
            Some(expected)
                if self.producer_epoch == NO_PRODUCER_EPOCH || expected == self.producer_epoch =>
            {
                (bumped, self.producer_epoch)
            }
            Some(expected) if expected == self.last_producer_epoch => {
                (self.producer_epoch, self.last_producer_epoch)
            }
            Some(_) => return Err(()),
        };
        let mut transit = self.transit(TxnState::Empty, now_ms);
        transit.producer_epoch = epoch;
        transit.last_producer_epoch = last_epoch;
        transit.timeout_ms = timeout_ms;
        transit.partitions.clear();
        transit.start_timestamp_ms = -1;
        Ok(transit)
    }

    /// InitProducerId when the epoch is exhausted: a new producer id at
    /// epoch 0.
    pub(crate) fn prepare_producer_id_rotation(
        &self,
        new_producer_id: i64,
        timeout_ms: i32,
        now_ms: i64,
        record_last_epoch: bool,
    ) -> Transit {
        let mut transit = self.transit(TxnState::Empty, now_ms);
        transit.producer_id = new_producer_id;
        transit.producer_epoch = 0;
        transit.last_producer_epoch = if record_last_epoch {
            self.producer_epoch
        } else {
            NO_PRODUCER_EPOCH
        };
        transit.timeout_ms = timeout_ms;
        transit.partitions.clear();
        transit.start_timestamp_ms = -1;
        transit
    }

    /// AddPartitionsToTxn: Ongoing with the union of partitions; a new
    /// transaction starts its clock now.
    pub(crate) fn prepare_add_partitions(
        &self,
        added: &BTreeSet<TopicPartition>,
        now_ms: i64,
    ) -> Transit {
        let mut transit = self.transit(TxnState::Ongoing, now_ms);
        if matches!(
            self.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        ) {
            transit.start_timestamp_ms = now_ms;
        }
        transit.partitions.extend(added.iter().cloned());
        transit
    }

    /// EndTxn: PrepareCommit or PrepareAbort.
    pub(crate) fn prepare_abort_or_commit(&self, state: TxnState, now_ms: i64) -> Transit {
        self.transit(state, now_ms)
    }

    /// The coordinator's abort of an Ongoing transaction (timeout, or a new
    /// producer's InitProducerId): PrepareAbort at a bumped epoch so that
    /// the old producer is fenced (Kafka's PrepareEpochFence followed by
    /// its abort). After a failed attempt the epoch was bumped already.
    /// `None` when the epoch cannot be bumped (`i16::MAX`).
    pub(crate) fn prepare_fence_abort(&self, now_ms: i64) -> Option<Transit> {
        let epoch = if self.has_failed_epoch_fence {
            self.producer_epoch
        } else {
            self.producer_epoch.checked_add(1)?
        };
        let mut transit = self.transit(TxnState::PrepareAbort, now_ms);
        transit.producer_epoch = epoch;
        transit.last_producer_epoch = NO_PRODUCER_EPOCH;
        Some(transit)
    }

    /// After the markers: CompleteCommit or CompleteAbort, no partitions.
    pub(crate) fn prepare_complete(&self, now_ms: i64) -> Transit {
        let state = if self.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        let mut transit = self.transit(state, now_ms);
        transit.partitions.clear();
        transit
    }

    /// Expiry of an idle transactional id.
    pub(crate) fn prepare_dead(&self) -> Transit {
        let mut transit = self.transit(TxnState::Dead, self.last_update_timestamp_ms);
        transit.partitions.clear();
        transit
    }

    /// Applies a logged transit (Kafka's completeTransitionTo).
    pub(crate) fn complete(&mut self, transit: &Transit) {
        // Dead removes the id instead; PrepareEpochFence is folded into
        // the PrepareAbort transit.
        assert!(
            !matches!(transit.state, TxnState::Dead | TxnState::PrepareEpochFence),
            "no transition completes into {}",
            transit.state
        );
        assert!(
            transit.state.valid_from(self.state),
            "transition from {} to {} is not allowed",
            self.state,
            transit.state
        );
        match transit.state {
            TxnState::Empty => {
                // Kafka keeps the old start time in memory here while its
                // record says -1; Rill follows the record, so a reloaded
                // coordinator describes the id the same way.
                self.start_timestamp_ms = transit.start_timestamp_ms;
                self.timeout_ms = transit.timeout_ms;
                self.producer_id = transit.producer_id;
                self.last_producer_id = transit.last_producer_id;
                self.producer_epoch = transit.producer_epoch;
                self.last_producer_epoch = transit.last_producer_epoch;
            }
            TxnState::Ongoing => {
                self.start_timestamp_ms = transit.start_timestamp_ms;
                self.partitions.extend(transit.partitions.iter().cloned());
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                // A fence abort carries the bumped epoch.
                self.producer_epoch = transit.producer_epoch;
                self.last_producer_epoch = transit.last_producer_epoch;
            }
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                self.start_timestamp_ms = transit.start_timestamp_ms;
                self.partitions.clear();
                self.has_failed_epoch_fence = false;
            }
            // Checked above: never completed.
            TxnState::Dead | TxnState::PrepareEpochFence => {}
        }
        self.last_update_timestamp_ms = transit.last_update_timestamp_ms;
        self.state = transit.state;
        self.pending = None;
    }
}
