//! The one place where Rill's internal errors become Kafka error codes.
//!
//! Every match here names every variant of the workspace's own error
//! enums (none is `#[non_exhaustive]`, and no arm is a wildcard), so a
//! new variant is a compile error until it is given a code.

use kafka_protocol::ResponseError;
use rill_group::GroupError;
use rill_partition::{ManagerError, PartitionError};
use rill_record::{BatchError, BatchErrorKind};
use rill_storage::{AppendError, ModifyError, ReadError};

use crate::cluster::{LeadershipError, ProposalError};
use crate::topics::TopicError;

/// Kafka's name of an error code: 36 as `TOPIC_ALREADY_EXISTS`.
pub(crate) fn kafka_name(code: i16) -> String {
    let error = match ResponseError::try_from_code(code) {
        None | Some(ResponseError::Unknown(_)) => return format!("error {code}"),
        Some(error) => error,
    };
    let camel = format!("{error:?}");
    let mut name = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

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
            },
            AppendError::BatchLargerThanSegment { .. } => ResponseError::RecordListTooLarge,
            AppendError::OffsetOverflow { .. } => ResponseError::InvalidRecord,
            AppendError::Closed { .. } => ResponseError::NotLeaderOrFollower,
            AppendError::BaseOffsetBelowLogEnd { .. }
            | AppendError::DiskFull { .. }
            | AppendError::Io(_)
            | AppendError::Offline(_) => ResponseError::KafkaStorageError,
        },
        PartitionError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        PartitionError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        PartitionError::InvalidTxnState { .. } | PartitionError::TransactionNotVerified { .. } => {
            ResponseError::InvalidTxnState
        }
        PartitionError::TransactionCoordinatorFenced { .. } => {
            ResponseError::TransactionCoordinatorFenced
        }
        other => for_partition(other),
    }
}

/// The records a refused batch was refused for, by index in the batch,
/// each with Kafka's message (a produce response's record_errors).
pub(crate) fn record_errors(
    error: &PartitionError,
    partition: &rill_partition::TopicPartition,
) -> Vec<(i32, String)> {
    let PartitionError::Append(AppendError::InvalidBatch(batch)) = error else {
        return Vec::new();
    };
    match batch {
        BatchError::RecordsWithoutKey { record_indexes } => record_indexes
            .iter()
            .map(|index| {
                (
                    *index,
                    format!(
                        "Compacted topic cannot accept message without key in topic partition {partition}."
                    ),
                )
            })
            .collect(),
        BatchError::RecordOffsetDelta { record_index, .. } => {
            vec![(*record_index, batch.to_string())]
        }
        BatchError::Truncated { .. }
        | BatchError::LengthOutOfRange { .. }
        | BatchError::UnsupportedMagic { .. }
        | BatchError::TooLarge { .. }
        | BatchError::CrcMismatch { .. }
        | BatchError::UnknownCompression { .. }
        | BatchError::NotOneBatch { .. }
        | BatchError::BaseOffsetNotZero { .. }
        | BatchError::OffsetRangeMismatch { .. }
        | BatchError::OffsetRangeInvalid { .. }
        | BatchError::ControlBatchFromClient
        | BatchError::LogAppendTimeFromClient
        | BatchError::InvalidSequence { .. }
        | BatchError::RecordsUndecodable { .. }
        | BatchError::ExpandsTooLarge { .. }
        | BatchError::TooLongToFrame { .. } => Vec::new(),
    }
}

/// The code for a failed read or offset lookup.
pub(crate) fn for_read(error: &ReadError) -> ResponseError {
    match error {
        ReadError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        // Kafka's answer for a partition on an offline log dir.
        ReadError::Offline(_) => ResponseError::KafkaStorageError,
        // Out of descriptors or maps for this read: the client retries.
        ReadError::Io(_) => ResponseError::KafkaStorageError,
        ReadError::Decompress { .. } | ReadError::MalformedRecords { .. } => {
            ResponseError::CorruptMessage
        }
    }
}

/// The code for any other partition operation.
pub(crate) fn for_partition(error: &PartitionError) -> ResponseError {
    match error {
        PartitionError::Read(read) => for_read(read),
        PartitionError::Modify(ModifyError::BeyondLogEnd { .. })
        | PartitionError::DeleteBeyondHighWatermark { .. } => ResponseError::OffsetOutOfRange,
        PartitionError::Modify(ModifyError::Closed { .. }) => ResponseError::NotLeaderOrFollower,
        // Appends have codes of their own (for_append); here, as any other
        // failure of the partition's storage.
        PartitionError::Append(_)
        | PartitionError::Modify(ModifyError::Io(_) | ModifyError::Offline(_))
        | PartitionError::Open(_)
        | PartitionError::Checkpoint(_)
        | PartitionError::ProducerSnapshot(_)
        | PartitionError::OutOfOrderSequence { .. }
        | PartitionError::InvalidProducerEpoch { .. }
        | PartitionError::InvalidTxnState { .. }
        | PartitionError::TransactionNotVerified { .. }
        | PartitionError::TransactionCoordinatorFenced { .. } => ResponseError::KafkaStorageError,
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
        TopicError::InvalidReplicaAssignment { .. } => ResponseError::InvalidReplicaAssignment,
        TopicError::InvalidRequest { .. } => ResponseError::InvalidRequest,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::Logs(ManagerError::InvalidTopicName(_)) => ResponseError::InvalidTopicException,
        TopicError::Logs(
            ManagerError::NoLogDirs
            | ManagerError::Io(_)
            | ManagerError::Checkpoint(_)
            | ManagerError::Partition { .. }
            | ManagerError::DuplicatePartition { .. }
            | ManagerError::AlreadyExists { .. }
            | ManagerError::NotFound { .. }
            | ManagerError::ShutDown,
        ) => ResponseError::KafkaStorageError,
        TopicError::LeaderNotAvailable { .. } => ResponseError::LeaderNotAvailable,
        TopicError::Cluster(error) => for_proposal(error),
    }
}

/// The code for a partition this broker may not serve as leader.
pub(crate) fn for_leadership(error: LeadershipError) -> ResponseError {
    match error {
        LeadershipError::UnknownPartition => ResponseError::UnknownTopicOrPartition,
        LeadershipError::NotLeader => ResponseError::NotLeaderOrFollower,
        LeadershipError::FencedLeaderEpoch => ResponseError::FencedLeaderEpoch,
        LeadershipError::UnknownLeaderEpoch => ResponseError::UnknownLeaderEpoch,
    }
}

/// The code for a cluster proposal that failed.
pub(crate) fn for_proposal(error: &ProposalError) -> ResponseError {
    use rill_cluster::{PlacementError, Rejection};
    match error {
        ProposalError::Rejected(Rejection::TopicAlreadyExists { .. }) => {
            ResponseError::TopicAlreadyExists
        }
        ProposalError::Rejected(Rejection::UnknownTopic { .. }) => {
            ResponseError::UnknownTopicOrPartition
        }
        ProposalError::Rejected(Rejection::InvalidTopicName { .. }) => {
            ResponseError::InvalidTopicException
        }
        ProposalError::Rejected(
            Rejection::UnknownBroker { .. }
            | Rejection::StaleBrokerEpoch { .. }
            | Rejection::TopicIdInUse { .. }
            | Rejection::UnknownPartition { .. }
            | Rejection::InvalidAssignment { .. }
            | Rejection::InvalidPartitionChange { .. }
            | Rejection::UnknownTopicId { .. }
            | Rejection::StalePartitionEpoch { .. }
            | Rejection::NotPartitionLeader { .. }
            | Rejection::FenceIncomplete { .. },
        ) => ResponseError::InvalidRequest,
        ProposalError::Rejected(Rejection::NoReassignmentInProgress { .. }) => {
            ResponseError::NoReassignmentInProgress
        }
        ProposalError::Rejected(Rejection::TooManyAclChanges { .. }) => {
            ResponseError::PolicyViolation
        }
        ProposalError::Rejected(Rejection::UnacceptableScramCredential { .. }) => {
            ResponseError::UnacceptableCredential
        }
        ProposalError::Rejected(Rejection::UnknownScramCredential { .. }) => {
            ResponseError::ResourceNotFound
        }
        ProposalError::Placement(
            PlacementError::ReplicationFactorTooLarge { .. }
            | PlacementError::InvalidReplicationFactor { .. },
        ) => ResponseError::InvalidReplicationFactor,
        ProposalError::Placement(PlacementError::InvalidPartitions { .. }) => {
            ResponseError::InvalidPartitions
        }
        ProposalError::Propose(_) | ProposalError::NotApplied(_) => ResponseError::RequestTimedOut,
    }
}

/// The code for a refused group request.
pub(crate) fn for_group(error: &GroupError) -> ResponseError {
    match error {
        GroupError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        GroupError::InvalidGroupId { .. } => ResponseError::InvalidGroupId,
        GroupError::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout,
        GroupError::GroupMaxSizeReached { .. } => ResponseError::GroupMaxSizeReached,
        GroupError::UnknownMemberId { .. } => ResponseError::UnknownMemberId,
        GroupError::MemberIdRequired { .. } => ResponseError::MemberIdRequired,
        GroupError::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress { .. } => ResponseError::RebalanceInProgress,
        GroupError::FencedInstanceId { .. } => ResponseError::FencedInstanceId,
        GroupError::InconsistentGroupProtocol { .. } => ResponseError::InconsistentGroupProtocol,
        GroupError::NonEmptyGroup { .. } => ResponseError::NonEmptyGroup,
        GroupError::GroupIdNotFound { .. } => ResponseError::GroupIdNotFound,
        GroupError::CoordinatorNotAvailable { .. } => ResponseError::CoordinatorNotAvailable,
    }
}

/// The code for a refused request of a KIP-848 consumer group.
pub(crate) fn for_consumer_group(error: &rill_group::ConsumerGroupError) -> ResponseError {
    use rill_group::ConsumerGroupError as E;
    match error {
        E::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        E::InvalidRequest { .. } => ResponseError::InvalidRequest,
        E::UnsupportedAssignor { .. } => ResponseError::UnsupportedAssignor,
        E::InvalidRegularExpression { .. } => ResponseError::InvalidRegularExpression,
        E::UnknownMemberId { .. } => ResponseError::UnknownMemberId,
        E::FencedMemberEpoch { .. } => ResponseError::FencedMemberEpoch,
        E::StaleMemberEpoch { .. } => ResponseError::StaleMemberEpoch,
        E::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
        E::UnreleasedInstanceId { .. } => ResponseError::UnreleasedInstanceId,
        E::FencedInstanceId { .. } => ResponseError::FencedInstanceId,
        E::GroupIdNotFound { .. } => ResponseError::GroupIdNotFound,
        E::GroupMaxSizeReached { .. } => ResponseError::GroupMaxSizeReached,
        E::NonEmptyGroup { .. } => ResponseError::NonEmptyGroup,
    }
}

/// The code of a transaction coordinator's refusal, as the request of
/// `api` at `version` must see it (PRODUCER_FENCED is INVALID_PRODUCER_EPOCH
/// before KIP-588's versions).
pub(crate) fn for_txn(
    error: rill_txn::TxnError,
    api: rill_txn::TxnApi,
    version: i16,
) -> ResponseError {
    use rill_txn::TxnError;
    match error.for_version(api, version) {
        TxnError::CoordinatorLoadInProgress { .. } => ResponseError::CoordinatorLoadInProgress,
        TxnError::NotCoordinator { .. } => ResponseError::NotCoordinator,
        TxnError::CoordinatorNotAvailable { .. } => ResponseError::CoordinatorNotAvailable,
        TxnError::InvalidRequest { .. } => ResponseError::InvalidRequest,
        TxnError::InvalidTransactionTimeout { .. } => ResponseError::InvalidTransactionTimeout,
        TxnError::ConcurrentTransactions { .. } => ResponseError::ConcurrentTransactions,
        TxnError::ProducerFenced { .. } => ResponseError::ProducerFenced,
        TxnError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        TxnError::InvalidProducerIdMapping { .. } => ResponseError::InvalidProducerIdMapping,
        TxnError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        TxnError::TransactionalIdNotFound { .. } => ResponseError::TransactionalIdNotFound,
        TxnError::TransactionAbortable { .. } => ResponseError::TransactionAbortable,
        TxnError::UnknownServerError { .. } => ResponseError::UnknownServerError,
        _ => ResponseError::UnknownServerError,
    }
}
