//! One member of a classic group: its identity, protocols, assignment, the
//! requests it has waiting and its session deadline.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::request::{JoinProtocol, RequestToken};

/// One member of a classic group (Kafka's MemberMetadata). Owned by its
/// [`Group`](crate::group::Group); not thread-safe (the server owns the
/// whole coordinator behind one lock or task).
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    pub(crate) protocol_type: String,
    /// Most preferred first.
    pub(crate) protocols: Vec<JoinProtocol>,
    pub(crate) assignment: Bytes,
    /// A JoinGroup waiting for the rebalance to complete.
    pub(crate) awaiting_join: Option<RequestToken>,
    /// A SyncGroup waiting for the leader's assignment.
    pub(crate) awaiting_sync: Option<RequestToken>,
    /// True until the member receives its first JoinGroup response; a new
    /// member expires after NEW_MEMBER_JOIN_TIMEOUT_MS even while waiting.
    pub(crate) is_new: bool,
    /// When the member is removed unless it heartbeats (or, while it waits
    /// in a rebalance, when the timer lapses harmlessly). `None`: no timer.
    pub(crate) session_deadline_ms: Option<i64>,
    /// Order of arrival in the group, to pick the next leader
    /// deterministically (the oldest member).
    pub(crate) join_seq: u64,
}

impl Member {
    /// Kafka's `matches`: same protocols, same order, same metadata.
    pub(crate) fn matches(&self, protocols: &[JoinProtocol]) -> bool {
        self.protocols == protocols
    }

    pub(crate) fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// The member's metadata for `protocol`, empty if it has none.
    pub(crate) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// The member's vote: its most preferred protocol among `candidates`.
    pub(crate) fn vote<'a>(&'a self, candidates: &BTreeSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }

    pub(crate) fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    /// Kafka's `hasSatisfiedHeartbeat` at the moment the session timer
    /// fires: a new member must have been answered; others are excused
    /// while they wait in JoinGroup or SyncGroup.
    pub(crate) fn excused_from_expiry(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }
}
