//! The errors of KIP-848 consumer groups, one variant per Kafka error code
//! their APIs return.

/// A refused ConsumerGroupHeartbeat, ConsumerGroupDescribe, or an offset
/// commit or fetch of a consumer-protocol member. Each variant names the
/// Kafka error code it stands for; rill-server maps them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerGroupError {
    /// COORDINATOR_LOAD_IN_PROGRESS.
    #[error("the group coordinator is still loading its groups")]
    CoordinatorLoadInProgress,
    /// INVALID_REQUEST: a field the protocol requires is missing or wrong.
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    /// UNSUPPORTED_ASSIGNOR: `server_assignor` is not one of
    /// group.consumer.assignors.
    #[error("server assignor {assignor:?} is not supported; expected one of {supported:?}")]
    UnsupportedAssignor {
        assignor: String,
        supported: Vec<&'static str>,
    },
    /// INVALID_REGULAR_EXPRESSION.
    #[error("subscribed topic regex {regex:?} is not a valid regular expression: {reason}")]
    InvalidRegularExpression { regex: String, reason: String },
    /// UNKNOWN_MEMBER_ID.
    #[error("member {member_id:?} is not a member of consumer group {group_id:?}")]
    UnknownMemberId { group_id: String, member_id: String },
    /// FENCED_MEMBER_EPOCH: the member must give up its partitions and
    /// rejoin at epoch 0.
    #[error(
        "member {member_id:?} of group {group_id:?} sent epoch {received}, expected {expected}; it must rejoin"
    )]
    FencedMemberEpoch {
        group_id: String,
        member_id: String,
        received: i32,
        expected: i32,
    },
    /// STALE_MEMBER_EPOCH: an offset commit or fetch at an epoch that is
    /// not the member's; it retries once its heartbeat has the new one.
    #[error(
        "member {member_id:?} of group {group_id:?} committed at epoch {received}, its epoch is {expected}"
    )]
    StaleMemberEpoch {
        group_id: String,
        member_id: String,
        received: i32,
        expected: i32,
    },
    /// ILLEGAL_GENERATION: an offset commit or fetch of a classic-protocol
    /// member of a consumer group at a generation (member epoch) that is
    /// not its own; it joins again.
    #[error(
        "classic member {member_id:?} of group {group_id:?} committed at generation {received}, its generation is {expected}"
    )]
    IllegalGeneration {
        group_id: String,
        member_id: String,
        received: i32,
        expected: i32,
    },
    /// UNRELEASED_INSTANCE_ID: another member still holds the instance id.
    #[error("instance id {instance_id:?} of group {group_id:?} is still held by member {owner:?}")]
    UnreleasedInstanceId {
        group_id: String,
        instance_id: String,
        owner: String,
    },
    /// FENCED_INSTANCE_ID: the instance id belongs to another member id.
    #[error(
        "instance id {instance_id:?} of group {group_id:?} belongs to member {owner:?}, not {member_id:?}"
    )]
    FencedInstanceId {
        group_id: String,
        instance_id: String,
        member_id: String,
        owner: String,
    },
    /// GROUP_ID_NOT_FOUND: no consumer group of that id (or a classic
    /// group with members holds it).
    #[error("group {group_id:?} is not a consumer group here")]
    GroupIdNotFound { group_id: String },
    /// GROUP_MAX_SIZE_REACHED.
    #[error("consumer group {group_id:?} already has its maximum of {max_size} members")]
    GroupMaxSizeReached { group_id: String, max_size: usize },
    /// NON_EMPTY_GROUP: DeleteGroups of a group with members.
    #[error("consumer group {group_id:?} still has members")]
    NonEmptyGroup { group_id: String },
}
