//! KIP-848 consumer groups ("the next-generation consumer group
//! protocol"), sans I/O: the broker computes each member's target
//! assignment with a server-side assignor ([`assignor`]) and walks each
//! member to it through heartbeats ([`reconcile`]: revoke first, then
//! assign), one group epoch per change of membership or subscriptions.
//! The records of `__consumer_offsets` that make it durable are in
//! [`records`].

pub(crate) mod assignment;
pub(crate) mod assignor;
mod classic;
mod coordinator;
mod error;
mod group;
pub(crate) mod reconcile;
pub(crate) mod records;

pub use assignment::{Assignment, TopicId, TopicInfo, TopicsImage};
pub use assignor::Assignor;
pub use classic::{CONSUMER_PROTOCOL_TYPE, ClassicJoin, ClassicMemberImage, DowngradeMember};
pub use coordinator::{ConsumerGroupDescription, ConsumerGroups, ConsumerMemberDescription};
pub use error::ConsumerGroupError;
pub use group::{
    ConsumerGroupState, ConsumerHeartbeat, HeartbeatContext, HeartbeatReply,
    LEAVE_GROUP_MEMBER_EPOCH,
};
pub use reconcile::{CurrentAssignment, MemberState};
pub use records::{
    ClassicMemberMetadata, ConsumerGroupRecord, GroupEpochValue, MemberMetadataValue,
};
