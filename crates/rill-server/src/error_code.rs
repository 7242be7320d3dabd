//! The one place where Rill's internal errors become Kafka error codes.

use kafka_protocol::ResponseError;
use rill_partition::{ManagerError, PartitionError};
use rill_record::BatchErrorKind;
use rill_storage::{AppendError, ModifyError, ReadError};

use crate::broker::TopicError;
use crate::metadata_store::MetadataError;

/// The code for a refused append.
pub(crate) fn for_append(error: &PartitionError) -> ResponseError {
    match error {
        PartitionError::Append(append) => match append {
            AppendError::InvalidBatch(batch) => match batch.kind() {
                BatchErrorKind::Corrupt => ResponseError::CorruptMessage,
                BatchErrorKind::InvalidRecord => ResponseError::InvalidRecord,
                BatchErrorKind::TooLarge => ResponseError::MessageTooLarge,
                BatchErrorKind::InvalidTimestamp => ResponseError::InvalidTimestamp,
                BatchErrorKind::UnsupportedCompression => ResponseError::UnsupportedCompressionType,
                _ => ResponseError::CorruptMessage,
            },
            AppendError::BatchLargerThanSegment { .. } => ResponseError::RecordListTooLarge,
            AppendError::OffsetOverflow { .. } => ResponseError::InvalidRecord,
            AppendError::Closed { .. } => ResponseError::NotLeaderOrFollower,
            _ => ResponseError::KafkaStorageError,
        },
        PartitionError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        PartitionError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        other => for_partition(other),
    }
}

/// The code for a failed read or offset lookup.
pub(crate) fn for_read(error: &ReadError) -> ResponseError {
    match error {
        ReadError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        _ => ResponseError::CorruptMessage,
    }
}

/// The code for any other partition operation.
pub(crate) fn for_partition(error: &PartitionError) -> ResponseError {
    match error {
        PartitionError::Read(read) => for_read(read),
        PartitionError::Modify(ModifyError::BeyondLogEnd { .. })
        | PartitionError::DeleteBeyondHighWatermark { .. } => ResponseError::OffsetOutOfRange,
        PartitionError::Modify(ModifyError::Closed { .. }) => ResponseError::NotLeaderOrFollower,
        _ => ResponseError::KafkaStorageError,
    }
}

/// The code for a refused topic operation.
pub(crate) fn for_topic(error: &TopicError) -> ResponseError {
    match error {
        TopicError::AlreadyExists { .. } => ResponseError::TopicAlreadyExists,
        TopicError::UnknownTopic { .. } => ResponseError::UnknownTopicOrPartition,
        TopicError::InvalidName { .. } => ResponseError::InvalidTopicException,
        TopicError::InvalidPartitions { .. } => ResponseError::InvalidPartitions,
        TopicError::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::Metadata(MetadataError::Corrupt { .. }) => ResponseError::UnknownServerError,
        TopicError::Metadata(_) => ResponseError::KafkaStorageError,
        TopicError::Logs(ManagerError::InvalidTopicName(_)) => ResponseError::InvalidTopicException,
        TopicError::Logs(_) => ResponseError::KafkaStorageError,
    }
}
