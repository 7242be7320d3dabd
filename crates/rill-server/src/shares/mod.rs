//! Share groups inside the broker (KIP-932): rill-share's state machines
//! fed with requests, the log and the clock.
//!
//! - Membership ([`ShareGroup`]) is kept by the group's coordinator — the
//!   broker leading the group's partition of `__consumer_offsets`, as for
//!   classic groups.
//! - The records of a share-partition ([`SharePartition`]) are handed out
//!   by the leader of the topic partition, to the members' share sessions
//!   (ShareFetch/ShareAcknowledge), as Kafka does.
//!
//! Both live in memory: a broker restart or a leader change forgets the
//! in-flight state (docs/share-groups.md says what that means for
//! delivery).
//!
//! Thread-safe. Each map has its own mutex, held for lookups and state
//! changes only, never across I/O; a share-partition's mutex is held
//! across its log read (a page-cache read) so that two members never
//! acquire the same record.

mod fetch;
mod sessions;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use rill_partition::{OffsetSpec, TopicPartition};
use rill_share::{
    AckBatch, Archived, Heartbeat, HeartbeatError, HeartbeatReply, MembershipLimits, ShareGroup,
    ShareLimits, ShareMember, SharePartition,
};
use tokio::sync::Notify;
use uuid::Uuid;

pub(crate) use fetch::{AcquiredRead, acquire_from_log};
pub(crate) use sessions::{SessionError, ShareSessions};

use crate::broker::Broker;
use crate::group_config::{ShareAutoOffsetReset, share_config};
use crate::shutdown::Shutdown;

/// AcknowledgeType RELEASE.
const ACK_RELEASE: i8 = 2;

/// How often locks and member sessions are checked when nothing is due
/// sooner.
const TIMER_IDLE: Duration = Duration::from_secs(1);

/// One share-partition: a group's view of one topic partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ShareKey {
    pub group: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// See the module doc.
#[derive(Debug, Default)]
pub(crate) struct Shares {
    /// The share groups this broker coordinates, by id.
    groups: Mutex<HashMap<String, ShareGroup>>,
    /// The share-partitions of the partitions this broker leads.
    partitions: Mutex<HashMap<ShareKey, Arc<Mutex<SharePartition>>>>,
    sessions: ShareSessions,
    /// Woken when records may have become available again (released,
    /// expired), so waiting share fetches look again.
    released: Arc<Notify>,
}

impl Shares {
    pub(crate) fn sessions(&self) -> &ShareSessions {
        &self.sessions
    }

    /// What waiting share fetches wait on besides new records.
    pub(crate) fn released(&self) -> &Arc<Notify> {
        &self.released
    }

    /// Handles a ShareGroupHeartbeat for `group`, which this broker
    /// coordinates.
    pub(crate) fn heartbeat(
        &self,
        broker: &Broker,
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

    /// The group's epoch and members, if this broker knows it.
    pub(crate) fn describe(&self, group: &str) -> Option<(i32, Vec<ShareMember>)> {
        let groups = self.groups.lock();
        let found = groups.get(group)?;
        Some((found.group_epoch(), found.members().cloned().collect()))
    }

    /// The share groups this broker has coordinated, with their states
    /// (Kafka's names: Empty, Stable).
    pub(crate) fn list(&self) -> Vec<(String, &'static str)> {
        self.groups
            .lock()
            .iter()
            .map(|(id, g)| (id.clone(), if g.is_empty() { "Empty" } else { "Stable" }))
            .collect()
    }

    /// The share-partition for `key`, made on first use starting at
    /// `start_offset()`.
    pub(crate) fn partition(
        &self,
        key: &ShareKey,
        start_offset: impl FnOnce() -> i64,
    ) -> Arc<Mutex<SharePartition>> {
        let mut partitions = self.partitions.lock();
        if let Some(found) = partitions.get(key) {
            return Arc::clone(found);
        }
        let made = Arc::new(Mutex::new(SharePartition::new(start_offset())));
        partitions.insert(key.clone(), Arc::clone(&made));
        made
    }

    /// The share-partition for `key`, if it was made.
    pub(crate) fn existing_partition(&self, key: &ShareKey) -> Option<Arc<Mutex<SharePartition>>> {
        self.partitions.lock().get(key).cloned()
    }

    /// The share-partitions of `group` on this broker.
    pub(crate) fn partitions_of_group(
        &self,
        group: &str,
    ) -> Vec<(ShareKey, Arc<Mutex<SharePartition>>)> {
        self.partitions
            .lock()
            .iter()
            .filter(|(key, _)| key.group == group)
            .map(|(key, p)| (key.clone(), Arc::clone(p)))
            .collect()
    }

    /// Applies `member`'s acknowledgements of one share-partition led here.
    pub(crate) fn acknowledge(
        &self,
        broker: &Broker,
        (key, topic): (&ShareKey, &str),
        member: &str,
        batches: &[AckBatch],
    ) -> Result<Vec<Archived>, (ResponseError, String)> {
        let tp = TopicPartition::new(topic, key.partition);
        broker
            .leader_partition(&tp, -1)
            .map_err(|e| (crate::error_code::for_leadership(e), format!("{tp}")))?;
        let partition = self.existing_partition(key).ok_or_else(|| {
            (
                ResponseError::InvalidRecordState,
                format!("{tp} has no records acquired by the group here"),
            )
        })?;
        let limits = share_limits(broker, &key.group);
        let released = batches.iter().any(|b| b.types.contains(&ACK_RELEASE));
        let archived = partition
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

    /// Releases what `member` holds in `partitions` (its session closed).
    pub(crate) fn release_session(&self, broker: &Broker, member: &str, partitions: &[ShareKey]) {
        let now = now();
        for key in partitions {
            if let Some(partition) = self.existing_partition(key) {
                let limits = share_limits(broker, &key.group);
                partition.lock().release_member(member, &limits, now);
            }
        }
        self.released.notify_waiters();
    }

    /// A member is gone: its share sessions end and what it held here is
    /// released.
    pub(crate) fn forget_member(&self, broker: &Broker, group: &str, member: &str) {
        self.sessions.remove(group, member);
        let limits = share_limits(broker, group);
        let now = now();
        for (_, partition) in self.partitions_of_group(group) {
            partition.lock().release_member(member, &limits, now);
        }
        self.released.notify_waiters();
    }

    /// Releases expired locks and removes members whose sessions expired,
    /// until `stop`.
    pub(crate) async fn run_timers(self: Arc<Self>, broker: Arc<Broker>, mut stop: Shutdown) {
        loop {
            let now = now();
            let mut next = now + TIMER_IDLE.as_millis() as u64;
            let mut released = false;
            let partitions: Vec<(ShareKey, Arc<Mutex<SharePartition>>)> = self
                .partitions
                .lock()
                .iter()
                .map(|(key, p)| (key.clone(), Arc::clone(p)))
                .collect();
            for (key, partition) in partitions {
                let limits = share_limits(&broker, &key.group);
                let mut partition = partition.lock();
                if partition.next_deadline_ms().is_some_and(|d| d <= now) {
                    partition.release_expired(&limits, now);
                    released = true;
                }
                if let Some(deadline) = partition.next_deadline_ms() {
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
