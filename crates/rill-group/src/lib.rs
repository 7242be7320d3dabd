//! rill-group owns consumer-group coordination as Kafka's classic protocol
//! defines it: the group state machine (members, generations, rebalances,
//! static membership, timeouts), kept free of I/O so it can be tested by
//! itself, and the records that make committed offsets and group metadata
//! durable in the internal compacted topic `__consumer_offsets` (Kafka's
//! own key and value schemas). The network front end drives it: it feeds
//! requests and the clock in, delivers the responses it emits, and appends
//! the records it asks to persist.
//!
//! Transactional offset commits (TxnOffsetCommit, KIP-98 and KIP-447) are
//! part of it: [`GroupCoordinator::validate_txn_offset_commit`] checks the
//! member and generation, [`OffsetStore::commit_transactional`] stages the
//! offsets per producer id until the producer's commit or abort marker
//! lands in the group's partition of `__consumer_offsets`
//! ([`OffsetStore::complete_transaction_in`]), and loading replays
//! transactional batches and markers the same way
//! ([`OffsetStore::replay_batches`]). Until then the partitions are
//! unstable for OffsetFetch with require_stable
//! ([`OffsetStore::has_pending`]).
//!
//! ```
//! use rill_group::{OffsetStore, OffsetToCommit, OffsetsPartition, partition_for};
//!
//! let mut offsets = OffsetStore::default();
//! let commit = OffsetToCommit {
//!     topic: "orders".into(),
//!     partition: 0,
//!     offset: 42,
//!     leader_epoch: None,
//!     metadata: None,
//!     expire_timestamp_ms: None,
//! };
//! // TxnOffsetCommit from producer 7: append `records` in a transactional
//! // batch (rill_group::txn_offsets_batch), then record where it landed.
//! let records: Vec<_> = offsets
//!     .commit_transactional("app", 7, &[commit], 1_000)
//!     .into_iter()
//!     .collect::<Result<_, _>>()
//!     .unwrap();
//! offsets.complete_transactional_append(7, &records, 100);
//! assert!(offsets.has_pending("app", "orders", 0)); // UNSTABLE_OFFSET_COMMIT
//! assert_eq!(offsets.fetch("app", Some(&[("orders", 0)]))[0].offset, -1);
//! // The commit marker was appended to the group's partition.
//! let partition = OffsetsPartition { index: partition_for("app", 50), partitions: 50 };
//! offsets.complete_transaction_in(7, true, partition);
//! assert_eq!(offsets.fetch("app", Some(&[("orders", 0)]))[0].offset, 42);
//! ```

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

// Consumer groups (KIP-848), sans I/O.
mod consumer;

pub use consumer::{
    Assignment, Assignor, CONSUMER_PROTOCOL_TYPE, ClassicJoin, ClassicMemberImage,
    ClassicMemberMetadata, ConsumerGroupDescription, ConsumerGroupError, ConsumerGroupRecord,
    ConsumerGroupState, ConsumerGroups, ConsumerHeartbeat, ConsumerMemberDescription,
    CurrentAssignment, DowngradeMember, GroupEpochValue, HeartbeatContext, HeartbeatReply,
    LEAVE_GROUP_MEMBER_EPOCH, MemberMetadataValue, MemberState, TopicId, TopicInfo, TopicsImage,
};

// Committed offsets and the records of __consumer_offsets.
mod offset_store;
mod offsets_topic;

pub use offset_store::{
    ExpiryCondition, FetchedOffset, NO_OFFSET, OFFSET_METADATA_MAX_BYTES_DEFAULT,
    OFFSETS_RETENTION_MS_DEFAULT, OffsetStore, OffsetStoreError, OffsetToCommit,
};
pub use offsets_topic::{
    GROUP_METADATA_KEY_VERSION, GROUP_METADATA_VALUE_VERSION, GROUP_METADATA_VALUE_VERSION_MAX,
    GroupMetadataKey, GroupMetadataValue, LoadedBatches, LoadedMarker, LoadedRecord,
    MemberMetadata, OFFSET_COMMIT_KEY_V0, OFFSET_COMMIT_KEY_VERSION,
    OFFSET_COMMIT_VALUE_VERSION_MAX, OFFSETS_TOPIC, OffsetCommitKey, OffsetCommitValue,
    OffsetsBatchError, OffsetsPartition, OffsetsTopicDecodeError, OffsetsTopicEncodeError,
    OffsetsTopicRecord, STRING_BYTES_MAX, batch as offsets_batch, partition_for,
    read_batches as read_offsets_batches, txn_batch as txn_offsets_batch,
};
