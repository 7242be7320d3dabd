//! Share groups inside the broker (KIP-932): rill-share's state machines
//! fed with requests, the log and the clock.
//!
//! - Membership ([`rill_share::ShareGroup`]) is kept by the group's coordinator — the
//!   broker leading the group's partition of `__consumer_offsets`, as for
//!   classic groups.
//! - The records of a share-partition ([`rill_share::SharePartition`])
//!   are handed out by the leader of the topic partition, to the members'
//!   share sessions (ShareFetch/ShareAcknowledge), as Kafka does.
//! - Each share-partition's state is written to `__share_group_state`
//!   after every acknowledgement and release, and read back when a leader
//!   first serves it (partitions.rs, state.rs). Membership lives in
//!   memory: members rejoin a new coordinator, as in Kafka.
//!
//! Thread-safe. Each map has its own mutex, held for lookups and state
//! changes only, never across I/O; a share-partition's mutex is held
//! across its log read (a page-cache read) so that two members never
//! acquire the same record.

mod admin;
mod dead_letters;
mod fetch;
mod partitions;
mod remote;
mod sessions;
mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use rill_partition::{OffsetSpec, TopicPartition};
use rill_share::{
    AckBatch, Archived, Heartbeat, HeartbeatError, HeartbeatReply, MembershipLimits, ShareGroup,
    ShareLimits, ShareMember,
};
use tokio::sync::Notify;

pub(crate) use admin::NewStart;
pub(crate) use fetch::{AcquiredRead, acquire_from_log};
pub(crate) use partitions::{ShareKey, SharePartitions};
pub(crate) use remote::{NO_STATE, from_wire, producer_from_tags, producer_tags, to_read};
pub(crate) use sessions::{SessionError, ShareSessions};
pub(crate) use state::{ShareStates, StateError};

use crate::broker::Broker;
use crate::group_config::{ShareAutoOffsetReset, share_config};
use crate::shutdown::Shutdown;

/// AcknowledgeType RELEASE.
const ACK_RELEASE: i8 = 2;

/// How often locks and member sessions are checked when nothing is due
/// sooner.
const TIMER_IDLE: Duration = Duration::from_secs(1);

/// See the module doc.
#[derive(Debug, Default)]
pub(crate) struct Shares {
    /// The share groups this broker coordinates, by id.
    groups: Mutex<HashMap<String, ShareGroup>>,
    /// The share-partitions of the partitions this broker leads.
    partitions: SharePartitions,
    /// Their durable state, and the state this broker coordinates.
    states: ShareStates,
    sessions: ShareSessions,
    /// Woken when records may have become available again (released,
    /// expired), so waiting share fetches look again.
    released: Arc<Notify>,
}

impl Shares {
    pub(crate) fn sessions(&self) -> &ShareSessions {
        &self.sessions
    }

    pub(crate) fn partitions(&self) -> &SharePartitions {
        &self.partitions
    }

    pub(crate) fn states(&self) -> &ShareStates {
        &self.states
    }

    /// What waiting share fetches wait on besides new records.
    pub(crate) fn released(&self) -> &Arc<Notify> {
        &self.released
    }

    /// Handles a ShareGroupHeartbeat for `group`, which this broker
    /// coordinates.
    pub(crate) fn heartbeat(
        &self,
        broker: &Arc<Broker>,
        group: &str,
        heartbeat: Heartbeat,
    ) -> Result<HeartbeatReply, HeartbeatError> {
        let partitions_of = partition_counts(broker);
        let limits = membership_limits(broker, group);
        // A leaving member's share sessions stay: its last acknowledgements
        // (and the closing of its sessions) come after its leave.
        // A refused heartbeat leaves no group behind.
        let mut groups = self.groups.lock();
        let mut found = groups.remove(group).unwrap_or_default();
        let reply = found.heartbeat(heartbeat, &partitions_of, (&limits, now()));
        if reply.is_ok() || !found.is_empty() || found.group_epoch() > 0 {
            groups.insert(group.to_string(), found);
        }
        reply
    }

    /// The group's epoch and members, if it is a share group: one with
    /// state and no members here is empty.
    pub(crate) fn describe(&self, broker: &Broker, group: &str) -> Option<(i32, Vec<ShareMember>)> {
        if let Some(found) = self.groups.lock().get(group) {
            return Some((found.group_epoch(), found.members().cloned().collect()));
        }
        self.knows_group(broker, group).then(|| (0, Vec::new()))
    }

    /// The share groups with members here or state anywhere, with their
    /// states (Kafka's names: Empty, Stable); the caller keeps the ones
    /// this broker coordinates.
    pub(crate) fn list(&self, broker: &Broker) -> Vec<(String, &'static str)> {
        let mut listed: std::collections::BTreeMap<String, &'static str> = self
            .groups
            .lock()
            .iter()
            .map(|(id, g)| (id.clone(), if g.is_empty() { "Empty" } else { "Stable" }))
            .collect();
        for (id, record) in broker.node().metadata().share_groups.iter() {
            if !record.topics.is_empty() {
                listed.entry(id.clone()).or_insert("Empty");
            }
        }
        listed.into_iter().collect()
    }

    /// Applies `member`'s acknowledgements of one share-partition led
    /// here, in memory; [`Shares::persist`] makes them durable.
    pub(crate) fn acknowledge(
        &self,
        broker: &Broker,
        (key, topic): (&ShareKey, &str),
        member: &str,
        batches: &[AckBatch],
    ) -> Result<Vec<Archived>, (ResponseError, String)> {
        let tp = TopicPartition::new(topic, key.partition);
        let (_, leader_epoch) = broker
            .leader_partition(&tp, -1)
            .map_err(|e| (crate::error_code::for_leadership(e), format!("{tp}")))?;
        let slot = self.partitions.get(key, leader_epoch).ok_or_else(|| {
            (
                ResponseError::InvalidRecordState,
                format!("{tp} has no records acquired by the group here"),
            )
        })?;
        let limits = share_limits(broker, &key.group);
        let released = batches.iter().any(|b| b.types.contains(&ACK_RELEASE));
        let archived = slot
            .state
            .lock()
            .acknowledge(member, batches, (&limits, now()))
            .map_err(|error| {
                let code = if error.is_malformed() {
                    ResponseError::InvalidRequest
                } else {
                    ResponseError::InvalidRecordState
                };
                (code, error.to_string())
            })?;
        if released {
            self.released.notify_waiters();
        }
        Ok(archived)
    }

    /// Writes the share-partition's state as it is now, and waits until
    /// it is durable.
    pub(crate) async fn persist(
        &self,
        broker: &Arc<Broker>,
        key: &ShareKey,
    ) -> Result<(), StateError> {
        let Some(slot) = self.partitions.any(key) else {
            return Ok(());
        };
        SharePartitions::persist(broker, &self.states, (key, &slot)).await?;
        dead_letters::wake(broker, key, &slot);
        Ok(())
    }

    /// Starts writing the dead letters of `key` (loaded with some waiting).
    pub(crate) fn wake_dead_letters(&self, broker: &Arc<Broker>, key: &ShareKey) {
        if let Some(slot) = self.partitions.any(key) {
            dead_letters::wake(broker, key, &slot);
        }
    }

    /// [`Shares::persist`] in the background, for changes nobody waits
    /// for (lock expiry, a session's end); a failure is logged, and the
    /// next write carries the change.
    fn persist_later(broker: &Arc<Broker>, key: ShareKey) {
        let broker = Arc::clone(broker);
        tokio::spawn(async move {
            if let Err(error) = broker.shares().persist(&broker, &key).await {
                tracing::warn!(%error, "cannot write a share-partition's state");
            }
        });
    }

    /// Releases what `member` holds in `partitions` (its session closed).
    pub(crate) fn release_session(
        &self,
        broker: &Arc<Broker>,
        member: &str,
        partitions: &[ShareKey],
    ) {
        let now = now();
        for key in partitions {
            if let Some(slot) = self.partitions.any(key) {
                let limits = share_limits(broker, &key.group);
                slot.state.lock().release_member(member, &limits, now);
                Shares::persist_later(broker, key.clone());
            }
        }
        self.released.notify_waiters();
    }

    /// A client connection closed: the share sessions it carried end and
    /// what their members held is released (a consumer killed gets its
    /// records redelivered at once, not after their locks).
    pub(crate) fn connection_closed(&self, broker: &Arc<Broker>, connection: u64) {
        for (group, member, partitions) in self.sessions.close_connection(connection) {
            let keys: Vec<ShareKey> = partitions
                .into_iter()
                .map(|tp| ShareKey::of(&group, tp))
                .collect();
            self.release_session(broker, &member, &keys);
        }
    }

    /// A member is gone: its share sessions end and what it held here is
    /// released.
    pub(crate) fn forget_member(&self, broker: &Arc<Broker>, group: &str, member: &str) {
        self.sessions.remove(group, member);
        let keys: Vec<ShareKey> = self
            .partitions
            .all()
            .into_iter()
            .filter(|(key, _)| key.group == group)
            .map(|(key, _)| key)
            .collect();
        self.release_session(broker, member, &keys);
    }

    /// Releases expired locks and removes members whose sessions expired,
    /// until `stop`.
    pub(crate) async fn run_timers(self: Arc<Self>, broker: Arc<Broker>, mut stop: Shutdown) {
        loop {
            let now = now();
            let mut next = now + TIMER_IDLE.as_millis() as u64;
            let mut released = false;
            for (key, slot) in self.partitions.all() {
                let limits = share_limits(&broker, &key.group);
                let mut state = slot.state.lock();
                if state.next_deadline_ms().is_some_and(|d| d <= now) {
                    state.release_expired(&limits, now);
                    released = true;
                    Shares::persist_later(&broker, key.clone());
                }
                if let Some(deadline) = state.next_deadline_ms() {
                    next = next.min(deadline.max(now + 1));
                }
            }
            let partitions_of = partition_counts(&broker);
            let expired: Vec<(String, Vec<String>)> = self
                .groups
                .lock()
                .iter_mut()
                .map(|(id, group)| (id.clone(), group.expire(now, &partitions_of)))
                .filter(|(_, members)| !members.is_empty())
                .collect();
            for (group, members) in expired {
                for member in members {
                    tracing::info!(group, member, "share group member's session expired");
                    self.forget_member(&broker, &group, &member);
                }
            }
            if released {
                self.released.notify_waiters();
            }
            let wait = Duration::from_millis(next.saturating_sub(now));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.wait() => return,
            }
        }
    }
}

/// Each topic's partition count, from the metadata.
fn partition_counts(broker: &Broker) -> impl Fn(&str) -> Option<u32> + '_ {
    |topic: &str| {
        broker
            .topics()
            .partition_count(topic)
            .and_then(|count| u32::try_from(count).ok())
    }
}

/// How often members of `group` heartbeat (`share.heartbeat.interval.ms`).
pub(crate) fn heartbeat_interval_ms(broker: &Broker, group: &str) -> u64 {
    share_config(broker, group).heartbeat_interval_ms
}

/// Where a new share-partition of `group` starts (`share.auto.offset.reset`).
pub(crate) fn auto_offset_reset(broker: &Broker, group: &str) -> OffsetSpec {
    match share_config(broker, group).auto_offset_reset {
        ShareAutoOffsetReset::Earliest => OffsetSpec::Earliest,
        ShareAutoOffsetReset::Latest => OffsetSpec::Latest,
        ShareAutoOffsetReset::ByDuration(ago_ms) => {
            OffsetSpec::Timestamp(rill_storage::now_ms().saturating_sub(ago_ms))
        }
    }
}

/// The membership settings of `group`.
pub(crate) fn membership_limits(broker: &Broker, group: &str) -> MembershipLimits {
    MembershipLimits {
        session_timeout_ms: share_config(broker, group).session_timeout_ms,
        ..MembershipLimits::default()
    }
}

/// The share-partition settings of `group`.
pub(crate) fn share_limits(broker: &Broker, group: &str) -> ShareLimits {
    share_config(broker, group).share_limits()
}

/// The wall clock in milliseconds, as the share state machines count it.
pub(crate) fn now() -> u64 {
    u64::try_from(rill_storage::now_ms()).unwrap_or(0)
}
