//! The inputs of the group coordinator: plain Rust forms of the classic
//! group requests (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), decoded
//! and version-normalised by the server.

use bytes::Bytes;

/// Identifies one request whose answer may come later (JoinGroup,
/// SyncGroup). The server picks it (e.g. connection id and correlation id
/// folded together) and gets it back in the matching
/// [`Output`](crate::Output). If the connection went away meanwhile the
/// server simply drops that output: the coordinator needs no notice.
pub type RequestToken = u64;

/// One protocol (assignor) a member supports, with its metadata (for the
/// "consumer" protocol type: the serialized subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinProtocol {
    /// Protocol name, e.g. "range".
    pub name: String,
    /// Opaque metadata for this protocol.
    pub metadata: Bytes,
}

/// A JoinGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupRequest {
    /// The group to join.
    pub group_id: String,
    /// The member id; empty for a member that has none yet.
    pub member_id: String,
    /// group.instance.id of a static member (v5+).
    pub group_instance_id: Option<String>,
    /// The client's client.id.
    pub client_id: String,
    /// The client's address, as Kafka shows it ("/127.0.0.1").
    pub client_host: String,
    /// session.timeout.ms.
    pub session_timeout_ms: i32,
    /// max.poll.interval.ms (v1+); for v0 the server passes the session
    /// timeout, as Kafka does.
    pub rebalance_timeout_ms: i32,
    /// Protocol type, e.g. "consumer".
    pub protocol_type: String,
    /// Supported protocols, most preferred first.
    pub protocols: Vec<JoinProtocol>,
    /// True from JoinGroup v4 (KIP-394): a dynamic member without a member
    /// id gets MEMBER_ID_REQUIRED and must join again with the id given.
    pub require_known_member_id: bool,
    /// True from JoinGroup v9: a rejoining static leader of a Stable group
    /// is told it is leader but to skip the assignment.
    pub supports_skip_assignment: bool,
}

/// A SyncGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupRequest {
    /// The group.
    pub group_id: String,
    /// The member's id.
    pub member_id: String,
    /// The generation the member joined.
    pub generation_id: i32,
    /// group.instance.id of a static member (v3+).
    pub group_instance_id: Option<String>,
    /// The protocol type (v5+; `None` before), checked against the group's.
    pub protocol_type: Option<String>,
    /// The protocol name (v5+; `None` before), checked against the group's.
    pub protocol_name: Option<String>,
    /// The leader's assignment, member id to assignment bytes; empty for
    /// followers.
    pub assignments: Vec<(String, Bytes)>,
}

/// A Heartbeat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// The group.
    pub group_id: String,
    /// The member's id.
    pub member_id: String,
    /// The member's generation.
    pub generation_id: i32,
    /// group.instance.id of a static member (v3+).
    pub group_instance_id: Option<String>,
}

/// One member leaving, in a LeaveGroup request. v0-v2 carry one member id
/// (the server makes it one of these, without instance id); v3+ carry a
/// batch, where an empty `member_id` with a `group_instance_id` removes
/// whichever member holds that instance id (administrative removal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavingMember {
    /// The member id, or empty.
    pub member_id: String,
    /// group.instance.id, if any.
    pub group_instance_id: Option<String>,
}

/// A LeaveGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupRequest {
    /// The group.
    pub group_id: String,
    /// The members leaving.
    pub members: Vec<LeavingMember>,
}
