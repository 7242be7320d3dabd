//! The outputs of the group coordinator: responses (immediate or delayed)
//! and the records to persist, in plain Rust types the server encodes.

use bytes::Bytes;

use crate::error::GroupError;
use crate::request::RequestToken;
use crate::snapshot::GroupMetadataSnapshot;
use crate::state::GroupState;

/// Something the coordinator asks the server to do, in order. Taken with
/// [`GroupCoordinator::take_outputs`](crate::GroupCoordinator::take_outputs).
///
/// Ordering contract: a `Persist` comes before the responses that depend on
/// it (the SyncGroup answers of the rebalance it records); the server
/// appends it to `__consumer_offsets` before delivering those responses,
/// as Kafka answers SyncGroup only after the group record is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The answer to the JoinGroup sent with `token`.
    JoinResponse {
        /// The token the JoinGroup came with.
        token: RequestToken,
        /// The answer.
        response: JoinGroupResponse,
    },
    /// The answer to the SyncGroup sent with `token`.
    SyncResponse {
        /// The token the SyncGroup came with.
        token: RequestToken,
        /// The answer.
        response: SyncGroupResponse,
    },
    /// Append this group metadata record (key: group id) to
    /// `__consumer_offsets`.
    Persist(GroupMetadataSnapshot),
    /// Append a tombstone for this group's metadata record: the group was
    /// deleted.
    Tombstone {
        /// The group removed.
        group_id: String,
    },
}

/// One member in the leader's JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupMember {
    /// The member's id.
    pub member_id: String,
    /// Its group.instance.id, if static.
    pub group_instance_id: Option<String>,
    /// Its metadata for the group's selected protocol.
    pub metadata: Bytes,
}

/// A JoinGroup response. On error, `generation_id` is -1, the protocol
/// fields are `None`, `leader` is empty and `member_id` is the id the
/// member sent (empty for new members), except MEMBER_ID_REQUIRED which
/// carries the allocated id in both `error` and `member_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupResponse {
    /// `None` for success.
    pub error: Option<GroupError>,
    /// The generation joined.
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// v9+: the (static) leader must not run the assignor.
    pub skip_assignment: bool,
    /// The member's id.
    pub member_id: String,
    /// All members with their metadata, for the leader only; empty for
    /// followers.
    pub members: Vec<JoinGroupMember>,
}

impl JoinGroupResponse {
    /// The response for an error.
    pub fn error(member_id: impl Into<String>, error: GroupError) -> Self {
        Self {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.into(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupResponse {
    /// `None` for success.
    pub error: Option<GroupError>,
    /// The group's protocol type (success only).
    pub protocol_type: Option<String>,
    /// The group's protocol (success only).
    pub protocol_name: Option<String>,
    /// The member's assignment; empty on error.
    pub assignment: Bytes,
}

impl SyncGroupResponse {
    /// The response for an error.
    pub fn error(error: GroupError) -> Self {
        Self {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// The per-member result of a LeaveGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupMemberResult {
    /// The member id as sent.
    pub member_id: String,
    /// The group.instance.id as sent.
    pub group_instance_id: Option<String>,
    /// `None` if the member left.
    pub error: Option<GroupError>,
}

/// One group in a ListGroups answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// Its protocol type ("" if it never had one: a simple group).
    pub protocol_type: String,
    /// Its state.
    pub state: GroupState,
}

/// One member in a DescribeGroups answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// group.instance.id, if static.
    pub group_instance_id: Option<String>,
    /// client.id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Metadata for the selected protocol; empty unless the group is Stable
    /// (as in Kafka).
    pub metadata: Bytes,
    /// Assignment; empty unless the group is Stable (as in Kafka).
    pub assignment: Bytes,
}

/// A DescribeGroups answer for one group. A group that does not exist is
/// described as Dead with no members, protocol type and protocol empty, as
/// Kafka does (newer DescribeGroups versions turn that into
/// GROUP_ID_NOT_FOUND in the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Its state.
    pub state: GroupState,
    /// Its protocol type, "" if none.
    pub protocol_type: String,
    /// The selected protocol; "" unless Stable (as in Kafka).
    pub protocol: String,
    /// Its members.
    pub members: Vec<MemberDescription>,
}

/// What other modules (offset expiry, OffsetCommit) need to know about a
/// group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOverview {
    /// The state.
    pub state: GroupState,
    /// When the group entered `state` (ms since the epoch): for an Empty
    /// group, "empty since", the start of offset expiry.
    pub state_timestamp_ms: i64,
    /// The generation.
    pub generation_id: i32,
    /// The protocol type, if any.
    pub protocol_type: Option<String>,
    /// The selected protocol, if any.
    pub protocol_name: Option<String>,
}
