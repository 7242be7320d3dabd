//! Errors of partitions and the log manager.

use std::path::PathBuf;

use rill_storage::{AppendError, IoFailure, ModifyError, Offset, OpenError, ReadError};

use crate::checkpoint::CheckpointError;
use crate::producer_snapshot::ProducerSnapshotError;
use crate::topic_partition::{InvalidTopicName, TopicPartition};

/// Why an operation on one partition failed.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Modify(#[from] ModifyError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    ProducerSnapshot(#[from] ProducerSnapshotError),
    /// Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER: the batch's first sequence
    /// does not follow the producer's last one (or a new epoch, or an
    /// unknown producer, does not start at 0). Nothing was written.
    #[error("producer {producer_id}: expected sequence {expected}, found {found}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        found: i32,
    },
    /// Kafka's INVALID_PRODUCER_EPOCH: a newer epoch of this producer id
    /// has written here, so this one is fenced. Nothing was written.
    #[error("producer {producer_id}: epoch {found} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        found: i16,
    },
    /// Kafka's INVALID_TXN_STATE: a non-transactional batch from a
    /// producer whose transaction, begun at `txn_first_offset`, is open.
    /// Nothing was written.
    #[error(
        "producer {producer_id}: expected a transactional batch, its transaction begun at offset {txn_first_offset} being open; found a non-transactional one"
    )]
    InvalidTxnState {
        producer_id: i64,
        txn_first_offset: Offset,
    },
    /// Kafka's INVALID_TXN_STATE for a transactional batch that would open
    /// its producer's transaction here without a verification guard that
    /// is still out (KIP-890): a marker for the producer came since its
    /// transaction was verified. Nothing was written.
    #[error(
        "producer {producer_id}: its transaction is not verified here (it may have ended since)"
    )]
    TransactionNotVerified { producer_id: i64 },
    /// Kafka's TRANSACTION_COORDINATOR_FENCED: a marker from a coordinator
    /// older than the one that wrote this producer's last marker here.
    /// Nothing was written.
    #[error(
        "producer {producer_id}: marker from coordinator epoch {found}, expected at least {current}"
    )]
    TransactionCoordinatorFenced {
        producer_id: i64,
        current: i32,
        found: i32,
    },
    #[error("cannot delete records up to {requested}: the high watermark is {high_watermark}")]
    DeleteBeyondHighWatermark {
        requested: Offset,
        high_watermark: Offset,
    },
}

/// Why the log manager could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("no log directories are configured")]
    NoLogDirs,
    #[error(transparent)]
    Io(#[from] IoFailure),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    InvalidTopicName(#[from] InvalidTopicName),
    #[error("partition {topic_partition}: {source}")]
    Partition {
        topic_partition: TopicPartition,
        #[source]
        source: PartitionError,
    },
    #[error("partition {topic_partition} is in both {first} and {second}")]
    DuplicatePartition {
        topic_partition: TopicPartition,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("partition {topic_partition} already exists")]
    AlreadyExists { topic_partition: TopicPartition },
    #[error("partition {topic_partition} does not exist")]
    NotFound { topic_partition: TopicPartition },
    #[error("the log manager is shut down")]
    ShutDown,
}
