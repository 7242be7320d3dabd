//! The errors of the transaction coordinator, one variant per Kafka error
//! code it returns.

use crate::state::TxnState;
use crate::txn_log::TopicPartition;

/// A transaction-coordinator failure. Each variant mirrors one Kafka error
/// code (named in its doc); rill-server is the one place that maps them to
/// wire codes. Plain data: `Clone`, comparable, sendable between threads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    /// COORDINATOR_LOAD_IN_PROGRESS: the coordinator is still reading
    /// `__transaction_state`; the client retries.
    #[error("the transaction coordinator is still loading partition {partition}")]
    CoordinatorLoadInProgress { partition: i32 },

    /// NOT_COORDINATOR: the transactional id belongs to another partition,
    /// or this broker stopped leading the partition while a write was in
    /// flight; the client finds the coordinator again.
    #[error("transactional id {transactional_id:?} is not coordinated by partition {partition}")]
    NotCoordinator {
        transactional_id: String,
        partition: i32,
    },

    /// COORDINATOR_NOT_AVAILABLE: the write to `__transaction_state` failed
    /// in a retriable way (not enough replicas, timeout).
    #[error("the transaction coordinator could not persist the change: {reason}")]
    CoordinatorNotAvailable { reason: String },

    /// INVALID_REQUEST: an empty transactional id, a producer id without an
    /// epoch, a name too long for the log's schema.
    #[error("invalid transaction request: expected {expected}")]
    InvalidRequest { expected: &'static str },

    /// INVALID_TRANSACTION_TIMEOUT: outside (0, transaction.max.timeout.ms].
    #[error("expected a transaction timeout in (0, {max_ms}] ms, found {timeout_ms} ms")]
    InvalidTransactionTimeout { timeout_ms: i32, max_ms: i32 },

    /// CONCURRENT_TRANSACTIONS: a state change is in flight (being logged,
    /// or markers being written); the client retries.
    #[error("transactional id {transactional_id:?} has a state change in flight")]
    ConcurrentTransactions { transactional_id: String },

    /// PRODUCER_FENCED: the request's epoch is not the current one — a
    /// newer producer with the same transactional id (or the coordinator,
    /// aborting on timeout) bumped it. Requests of versions before KIP-588
    /// see INVALID_PRODUCER_EPOCH instead: see [`TxnError::for_version`].
    #[error(
        "transactional id {transactional_id:?} is at producer epoch {current_epoch}, request carried {request_epoch}"
    )]
    ProducerFenced {
        transactional_id: String,
        request_epoch: i16,
        current_epoch: i16,
    },

    /// INVALID_PRODUCER_EPOCH: [`TxnError::ProducerFenced`] as clients
    /// older than KIP-588 understand it.
    #[error(
        "transactional id {transactional_id:?} is at producer epoch {current_epoch}, request carried {request_epoch}"
    )]
    InvalidProducerEpoch {
        transactional_id: String,
        request_epoch: i16,
        current_epoch: i16,
    },

    /// INVALID_PRODUCER_ID_MAPPING: no such transactional id, or it maps to
    /// another producer id.
    #[error(
        "transactional id {transactional_id:?} maps to producer id {current:?}, request carried {request_producer_id}"
    )]
    InvalidProducerIdMapping {
        transactional_id: String,
        request_producer_id: i64,
        /// `None` when the transactional id is unknown.
        current: Option<i64>,
    },

    /// INVALID_TXN_STATE: the request does not fit the transaction's state
    /// (EndTxn with no transaction, commit after abort, ...).
    #[error("transactional id {transactional_id:?} is {state}; {request} is not allowed there")]
    InvalidTxnState {
        transactional_id: String,
        state: TxnState,
        request: &'static str,
    },

    /// TRANSACTIONAL_ID_NOT_FOUND (DescribeTransactions).
    #[error("transactional id {transactional_id:?} does not exist")]
    TransactionalIdNotFound { transactional_id: String },

    /// TRANSACTION_ABORTABLE (AddPartitionsToTxn v4 verify-only, Kafka 4.0):
    /// the partitions are not part of the ongoing transaction, so the
    /// producer must abort.
    #[error("transactional id {transactional_id:?} has not added {missing:?}")]
    TransactionAbortable {
        transactional_id: String,
        /// The partitions asked for that are not in the transaction.
        missing: Vec<TopicPartition>,
    },

    /// UNKNOWN_SERVER_ERROR: a write that cannot succeed (a record the
    /// log refuses).
    #[error("the transaction coordinator failed: {reason}")]
    UnknownServerError { reason: String },
}

/// The request APIs whose error codes depend on their version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnApi {
    InitProducerId,
    AddPartitionsToTxn,
    AddOffsetsToTxn,
    EndTxn,
    TxnOffsetCommit,
}

impl TxnApi {
    /// The first version that knows PRODUCER_FENCED (KIP-588).
    fn producer_fenced_since(self) -> i16 {
        match self {
            TxnApi::InitProducerId => 4,
            TxnApi::AddPartitionsToTxn | TxnApi::AddOffsetsToTxn | TxnApi::EndTxn => 2,
            TxnApi::TxnOffsetCommit => 3,
        }
    }
}

impl TxnError {
    /// The error as a request of `api` at `version` must see it: before
    /// KIP-588's versions, PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH
    /// (as Kafka's KafkaApis does).
    pub fn for_version(self, api: TxnApi, version: i16) -> TxnError {
        match self {
            TxnError::ProducerFenced {
                transactional_id,
                request_epoch,
                current_epoch,
            } if version < api.producer_fenced_since() => TxnError::InvalidProducerEpoch {
                transactional_id,
                request_epoch,
                current_epoch,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_fenced_is_invalid_producer_epoch_for_old_versions() {
        let fenced = TxnError::ProducerFenced {
            transactional_id: "t".into(),
            request_epoch: 1,
            current_epoch: 2,
        };
        for (api, first) in [
            (TxnApi::InitProducerId, 4),
            (TxnApi::AddPartitionsToTxn, 2),
            (TxnApi::AddOffsetsToTxn, 2),
            (TxnApi::EndTxn, 2),
            (TxnApi::TxnOffsetCommit, 3),
        ] {
            assert!(matches!(
                fenced.clone().for_version(api, first - 1),
                TxnError::InvalidProducerEpoch { .. }
            ));
            assert_eq!(fenced.clone().for_version(api, first), fenced);
        }
    }
}
