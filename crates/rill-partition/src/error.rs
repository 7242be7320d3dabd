//! Errors of partitions and the log manager.

use std::path::PathBuf;

use rill_storage::{AppendError, IoFailure, ModifyError, Offset, OpenError, ReadError};

use crate::checkpoint::CheckpointError;
use crate::topic_partition::{InvalidTopicName, TopicPartition};

/// Why an operation on one partition failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    #[error("cannot delete records up to {requested}: the high watermark is {high_watermark}")]
    DeleteBeyondHighWatermark {
        requested: Offset,
        high_watermark: Offset,
    },
}

/// Why the log manager could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
