//! What goes into the coordinator and what comes out: requests, the
//! writes it asks the host to make, the marker jobs it hands out, and the
//! answers for clients.

use bytes::Bytes;
use rill_record::{BatchError, MarkerKind};

use crate::error::TxnError;
use crate::state::TxnState;
use crate::txn_log::{TopicPartition, TxnLogRecord};

/// A producer's identity as InitProducerId returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// A transactional InitProducerId request (the host answers
/// non-transactional ones itself: a fresh producer id, epoch 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProducerIdRequest {
    pub transactional_id: String,
    pub transaction_timeout_ms: i32,
    /// KIP-360 (v3+): the producer's current id and epoch, or -1 and -1.
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Names one write to `__transaction_state` until the host reports it
/// acknowledged or failed with [`TxnCoordinator::persisted`](crate::TxnCoordinator::persisted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersistToken(pub(crate) u64);

/// A record the host must append to this coordinator's
/// `__transaction_state` partition (acks=all), then report with
/// [`TxnCoordinator::persisted`](crate::TxnCoordinator::persisted) once it
/// is replicated (below the high watermark) or has failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persist {
    pub token: PersistToken,
    /// The record, decoded, for logs and tests.
    pub record: TxnLogRecord,
    /// The record's key, as Kafka encodes it.
    pub key: Bytes,
    /// The record's value; `None` for a tombstone.
    pub value: Option<Bytes>,
}

impl Persist {
    /// The record as a batch of its own, timestamped `timestamp_ms`.
    /// Several [`Persist`]s may also share a batch:
    /// [`txn_batch`](crate::txn_batch) over their keys and values.
    pub fn batch(&self, timestamp_ms: i64) -> Result<Vec<u8>, BatchError> {
        let records = [(self.key.clone(), self.value.clone())];
        // One record: the batch is never empty.
        crate::txn_log::batch(&records, timestamp_ms).map(Option::unwrap_or_default)
    }
}

/// What a request method returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Outcome<T> {
    /// Answer the client now.
    Done(Result<T, TxnError>),
    /// Append this record; the client's answer comes from
    /// [`TxnCoordinator::persisted`](crate::TxnCoordinator::persisted).
    Persist(Persist),
}

/// The answer a write was waiting for, once the host reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The coordinator's own write (timeout abort, completion after
    /// markers, expiry): nobody to answer.
    Internal,
    /// Answer the InitProducerId that caused the write.
    InitProducerId(Result<ProducerIdAndEpoch, TxnError>),
    /// Answer the AddPartitionsToTxn, AddOffsetsToTxn or EndTxn that
    /// caused the write.
    Ack(Result<(), TxnError>),
}

/// Transaction markers to write: one control batch (Kafka's
/// EndTransactionMarker, see `rill_record::end_txn_marker`) with
/// `producer_id`, `producer_epoch`, `kind` and `coordinator_epoch` into
/// every partition listed, each through that partition's leader (Kafka's
/// WriteTxnMarkers). A partition whose topic no longer exists is skipped.
/// Once every marker is written, the host calls
/// [`TxnCoordinator::markers_written`](crate::TxnCoordinator::markers_written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub kind: MarkerKind,
    pub partitions: Vec<TopicPartition>,
}

/// What [`TxnCoordinator::persisted`](crate::TxnCoordinator::persisted)
/// tells the host to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Persisted {
    /// Who to answer, and with what.
    pub reply: Reply,
    /// After a PrepareCommit or PrepareAbort record: the markers to write.
    pub marker_job: Option<MarkerJob>,
    /// A completion record whose write failed in a retriable way: append
    /// it again (after a backoff), then report it under its new token.
    pub retry: Option<Persist>,
}

/// DescribeTransactions' view of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub state: TxnState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub transaction_timeout_ms: i32,
    /// -1 when no transaction has started.
    pub transaction_start_time_ms: i64,
    /// The partitions in the transaction, grouped by topic, in order.
    pub topics: Vec<(String, Vec<i32>)>,
}

/// One transaction as ListTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

/// ListTransactions' answer for this partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnList {
    /// In transactional id order.
    pub transactions: Vec<TxnListing>,
    /// State filters that name no state.
    pub unknown_state_filters: Vec<String>,
}
