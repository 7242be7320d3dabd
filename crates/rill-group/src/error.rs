//! The errors of group membership, one variant per Kafka error code that the
//! classic group protocol returns.

/// A group-membership failure. Each variant mirrors one Kafka error code
/// (named in its doc); rill-server is the one place that maps them to wire
/// codes. Plain data: `Clone`, comparable, freely sendable between threads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// COORDINATOR_LOAD_IN_PROGRESS: the coordinator is still reading
    /// `__consumer_offsets`; the client retries.
    #[error("the group coordinator is still loading its groups")]
    CoordinatorLoadInProgress,

    /// COORDINATOR_NOT_AVAILABLE: the group is being removed (Dead).
    #[error("group {group_id:?} is dead; find the coordinator again")]
    CoordinatorNotAvailable {
        /// The group asked for.
        group_id: String,
    },

    /// INVALID_GROUP_ID: an empty group id where one is required.
    #[error("expected a non-empty group id, found {group_id:?}")]
    InvalidGroupId {
        /// The group id received.
        group_id: String,
    },

    /// INVALID_SESSION_TIMEOUT: outside
    /// [group.min.session.timeout.ms, group.max.session.timeout.ms].
    #[error("expected a session timeout in [{min_ms}, {max_ms}] ms, found {session_timeout_ms} ms")]
    InvalidSessionTimeout {
        /// The session timeout the member asked for.
        session_timeout_ms: i32,
        /// group.min.session.timeout.ms.
        min_ms: i32,
        /// group.max.session.timeout.ms.
        max_ms: i32,
    },

    /// GROUP_MAX_SIZE_REACHED: the group already holds group.max.size
    /// members.
    #[error("group {group_id:?} already has its maximum of {group_max_size} members")]
    GroupMaxSizeReached {
        /// The group joined.
        group_id: String,
        /// group.max.size.
        group_max_size: usize,
    },

    /// UNKNOWN_MEMBER_ID: the member id is not (or no longer) in the group.
    #[error("member {member_id:?} is not a member of group {group_id:?}")]
    UnknownMemberId {
        /// The group addressed.
        group_id: String,
        /// The member id received.
        member_id: String,
    },

    /// MEMBER_ID_REQUIRED (JoinGroup v4+, KIP-394): the member must join
    /// again with the member id given here.
    #[error("a member id is required; join again with {member_id:?}")]
    MemberIdRequired {
        /// The member id the coordinator allocated.
        member_id: String,
    },

    /// ILLEGAL_GENERATION: the request's generation is not the group's.
    #[error("group {group_id:?} is at generation {expected}, request carried {found}")]
    IllegalGeneration {
        /// The group addressed.
        group_id: String,
        /// The group's generation.
        expected: i32,
        /// The generation in the request.
        found: i32,
    },

    /// REBALANCE_IN_PROGRESS: the member must join again.
    #[error("group {group_id:?} is rebalancing; join again")]
    RebalanceInProgress {
        /// The group addressed.
        group_id: String,
    },

    /// FENCED_INSTANCE_ID: another member id now holds this static
    /// member's group.instance.id (KIP-345).
    #[error(
        "group.instance.id {group_instance_id:?} of group {group_id:?} belongs to another member id than {member_id:?}"
    )]
    FencedInstanceId {
        /// The group addressed.
        group_id: String,
        /// The static member's instance id.
        group_instance_id: String,
        /// The (fenced) member id the request carried.
        member_id: String,
    },

    /// INCONSISTENT_GROUP_PROTOCOL: protocol type or protocols do not match
    /// the group's.
    #[error("the protocol type or protocols do not match those of group {group_id:?}")]
    InconsistentGroupProtocol {
        /// The group addressed.
        group_id: String,
    },

    /// NON_EMPTY_GROUP: only an Empty group can be deleted.
    #[error("group {group_id:?} is not empty (state {state})")]
    NonEmptyGroup {
        /// The group addressed.
        group_id: String,
        /// The group's state name, as Kafka spells it.
        state: &'static str,
    },

    /// GROUP_ID_NOT_FOUND: no such group.
    #[error("group {group_id:?} does not exist")]
    GroupIdNotFound {
        /// The group asked for.
        group_id: String,
    },
}

/// A group metadata record that cannot be loaded: its fields contradict
/// each other (the record came from disk, so this is an error, not a
/// panic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The record's members, leader and protocol disagree.
    #[error("group metadata record of {group_id:?} is inconsistent: expected {expected}")]
    Inconsistent {
        /// The group whose record it is.
        group_id: String,
        /// What the record should have satisfied.
        expected: &'static str,
    },
}
