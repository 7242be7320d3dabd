//! rill-group owns consumer-group coordination as Kafka's classic protocol
//! defines it: the group state machine (members, generations, rebalances,
//! static membership, timeouts), kept free of I/O so it can be tested by
//! itself, and the records that make committed offsets and group metadata
//! durable in the internal compacted topic `__consumer_offsets` (Kafka's
//! own key and value schemas). The network front end drives it: it feeds
//! requests and the clock in, delivers the responses it emits, and appends
//! the records it asks to persist.

// Group membership (classic protocol), sans I/O.
mod config;
mod coordinator;
mod error;
mod group;
mod member;
mod request;
mod response;
mod snapshot;
mod state;

pub use config::{GroupConfig, NEW_MEMBER_JOIN_TIMEOUT_MS};
pub use coordinator::GroupCoordinator;
pub use error::{GroupError, RestoreError};
pub use request::{
    HeartbeatRequest, JoinGroupRequest, JoinProtocol, LeaveGroupRequest, LeavingMember,
    RequestToken, SyncGroupRequest,
};
pub use response::{
    GroupDescription, GroupListing, GroupOverview, JoinGroupMember, JoinGroupResponse,
    LeaveGroupMemberResult, MemberDescription, Output, SyncGroupResponse,
};
pub use snapshot::{GroupMetadataSnapshot, MemberSnapshot};
pub use state::GroupState;

// Committed offsets and the records of __consumer_offsets.
mod offset_store;
mod offsets_topic;

pub use offset_store::{
    ExpiryCondition, FetchedOffset, NO_OFFSET, OFFSET_METADATA_MAX_BYTES_DEFAULT,
    OFFSETS_RETENTION_MS_DEFAULT, OffsetStore, OffsetStoreError, OffsetToCommit,
};
pub use offsets_topic::{
    GROUP_METADATA_KEY_VERSION, GROUP_METADATA_VALUE_VERSION, GROUP_METADATA_VALUE_VERSION_MAX,
    GroupMetadataKey, GroupMetadataValue, LoadedBatches, LoadedRecord, MemberMetadata,
    OFFSET_COMMIT_KEY_V0, OFFSET_COMMIT_KEY_VERSION, OFFSET_COMMIT_VALUE_VERSION_MAX,
    OFFSETS_TOPIC, OffsetCommitKey, OffsetCommitValue, OffsetsBatchError, OffsetsTopicDecodeError,
    OffsetsTopicEncodeError, OffsetsTopicRecord, STRING_BYTES_MAX, batch as offsets_batch,
    partition_for, read_batches as read_offsets_batches,
};
