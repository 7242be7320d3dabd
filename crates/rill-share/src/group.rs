//! A share group's membership (ShareGroupHeartbeat, KIP-932): members
//! join with an id of their own making at epoch 0, heartbeat at their
//! epoch, and leave at epoch −1 or by missing heartbeats for a session
//! timeout. Any change of members, subscriptions or partition counts
//! bumps the group epoch and reassigns everything at once (a share group
//! has no revocation: records, not partitions, are what members own);
//! each member learns its assignment and new epoch at its next heartbeat.
//!
//! Not thread-safe: the coordinator keeps each behind its own lock.

use std::collections::{BTreeMap, BTreeSet};

use crate::assignor::{Assignment, assign};
use crate::error::HeartbeatError;

/// The epoch at which a member joins.
pub const JOIN_EPOCH: i32 = 0;
/// The epoch at which a member leaves.
pub const LEAVE_EPOCH: i32 = -1;
/// The longest member id accepted.
const MEMBER_ID_BYTES_MAX: usize = 255;

/// A ShareGroupHeartbeat in plain terms.
#[derive(Clone, Debug, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

/// The answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub member_epoch: i32,
    /// The member's partitions, when they are new to it; `None`: unchanged.
    pub assignment: Option<Assignment>,
}

/// A member as describe shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareMember {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    pub assignment: Assignment,
    session_expires_ms: u64,
}

/// The group's settings membership follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipLimits {
    /// `group.share.session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// `group.share.max.size`.
    pub members_max: usize,
}

impl Default for MembershipLimits {
    /// Kafka's defaults.
    fn default() -> Self {
        MembershipLimits {
            session_timeout_ms: 45_000,
            members_max: 200,
        }
    }
}

/// See the module doc.
#[derive(Clone, Debug, Default)]
pub struct ShareGroup {
    group_epoch: i32,
    members: BTreeMap<String, ShareMember>,
    /// The partition count of each subscribed topic when last assigned.
    assigned_topics: BTreeMap<String, u32>,
}

impl ShareGroup {
    /// Handles one heartbeat at `now_ms`; `partitions_of` says how many
    /// partitions a topic has (`None`: no such topic).
    pub fn heartbeat(
        &mut self,
        heartbeat: Heartbeat,
        partitions_of: &dyn Fn(&str) -> Option<u32>,
        (limits, now_ms): (&MembershipLimits, u64),
    ) -> Result<HeartbeatReply, HeartbeatError> {
        let invalid = |reason: &str| HeartbeatError::InvalidRequest {
            reason: reason.to_string(),
        };
        if heartbeat.member_id.is_empty() || heartbeat.member_id.len() > MEMBER_ID_BYTES_MAX {
            return Err(invalid("the member id must be 1 to 255 bytes"));
        }
        if heartbeat.member_epoch == LEAVE_EPOCH {
            if self.members.remove(&heartbeat.member_id).is_none() {
                return Err(HeartbeatError::UnknownMember {
                    member_id: heartbeat.member_id,
                });
            }
            self.reassign(partitions_of);
            return Ok(HeartbeatReply {
                member_epoch: LEAVE_EPOCH,
                assignment: None,
            });
        }
        let mut changed = false;
        if heartbeat.member_epoch == JOIN_EPOCH {
            let topics = heartbeat
                .subscribed_topic_names
                .as_ref()
                .filter(|topics| !topics.is_empty())
                .ok_or_else(|| invalid("a joining member must subscribe to topics"))?;
            if !self.members.contains_key(&heartbeat.member_id)
                && self.members.len() >= limits.members_max
            {
                return Err(HeartbeatError::GroupMaxSizeReached {
                    max: limits.members_max,
                });
            }
            let subscribed: BTreeSet<String> = topics.iter().cloned().collect();
            let member = self
                .members
                .entry(heartbeat.member_id.clone())
                .or_insert_with(|| ShareMember {
                    member_id: heartbeat.member_id.clone(),
                    member_epoch: JOIN_EPOCH,
                    rack_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    subscribed_topic_names: BTreeSet::new(),
                    assignment: Assignment::new(),
                    session_expires_ms: 0,
                });
            // A member rejoining after it was fenced starts over.
            member.member_epoch = JOIN_EPOCH;
            member.subscribed_topic_names = subscribed;
            changed = true;
        } else {
            let member = self.members.get_mut(&heartbeat.member_id).ok_or_else(|| {
                HeartbeatError::UnknownMember {
                    member_id: heartbeat.member_id.clone(),
                }
            })?;
            if heartbeat.member_epoch != member.member_epoch {
                return Err(HeartbeatError::FencedMemberEpoch {
                    expected: member.member_epoch,
                    got: heartbeat.member_epoch,
                });
            }
            if let Some(topics) = &heartbeat.subscribed_topic_names {
                let subscribed: BTreeSet<String> = topics.iter().cloned().collect();
                if subscribed != member.subscribed_topic_names {
                    member.subscribed_topic_names = subscribed;
                    changed = true;
                }
            }
        }
        let Some(member) = self.members.get_mut(&heartbeat.member_id) else {
            return Err(HeartbeatError::UnknownMember {
                member_id: heartbeat.member_id,
            });
        };
        member.session_expires_ms = now_ms.saturating_add(limits.session_timeout_ms);
        member.client_id = heartbeat.client_id;
        member.client_host = heartbeat.client_host;
        if heartbeat.rack_id.is_some() {
            member.rack_id = heartbeat.rack_id;
        }
        if changed || self.topics_changed(partitions_of) {
            self.reassign(partitions_of);
        }
        let group_epoch = self.group_epoch;
        let Some(member) = self.members.get_mut(&heartbeat.member_id) else {
            return Err(HeartbeatError::UnknownMember {
                member_id: heartbeat.member_id,
            });
        };
        if member.member_epoch == group_epoch {
            return Ok(HeartbeatReply {
                member_epoch: group_epoch,
                assignment: None,
            });
        }
        member.member_epoch = group_epoch;
        Ok(HeartbeatReply {
            member_epoch: group_epoch,
            assignment: Some(member.assignment.clone()),
        })
    }

    /// Removes the members whose sessions expired by `now_ms`; returns them.
    pub fn expire(
        &mut self,
        now_ms: u64,
        partitions_of: &dyn Fn(&str) -> Option<u32>,
    ) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_expires_ms <= now_ms)
            .map(|m| m.member_id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                self.members.remove(id);
            }
            self.reassign(partitions_of);
        }
        expired
    }

    /// The group epoch: bumped by every reassignment.
    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    /// The members, by id.
    pub fn members(&self) -> impl Iterator<Item = &ShareMember> {
        self.members.values()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every topic some member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed_topic_names.iter().cloned())
            .collect()
    }

    fn topics_changed(&self, partitions_of: &dyn Fn(&str) -> Option<u32>) -> bool {
        self.current_topics(partitions_of) != self.assigned_topics
    }

    fn current_topics(&self, partitions_of: &dyn Fn(&str) -> Option<u32>) -> BTreeMap<String, u32> {
        self.subscribed_topics()
            .into_iter()
            .filter_map(|topic| partitions_of(&topic).map(|count| (topic, count)))
            .collect()
    }

    fn reassign(&mut self, partitions_of: &dyn Fn(&str) -> Option<u32>) {
        self.assigned_topics = self.current_topics(partitions_of);
        let subscriptions: BTreeMap<String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.subscribed_topic_names.clone()))
            .collect();
        let previous: BTreeMap<String, Assignment> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.assignment.clone()))
            .collect();
        let mut assignment = assign(&subscriptions, &self.assigned_topics, &previous);
        for (id, member) in &mut self.members {
            member.assignment = assignment.remove(id).unwrap_or_default();
        }
        self.group_epoch = self.group_epoch.wrapping_add(1).max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(id: &str, topics: &[&str]) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: JOIN_EPOCH,
            subscribed_topic_names: Some(topics.iter().map(|t| t.to_string()).collect()),
            ..Heartbeat::default()
        }
    }

    fn beat(id: &str, member_epoch: i32) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch,
            ..Heartbeat::default()
        }
    }

    fn two_partitions(topic: &str) -> Option<u32> {
        (topic == "t").then_some(2)
    }

    const LIMITS: MembershipLimits = MembershipLimits {
        session_timeout_ms: 100,
        members_max: 3,
    };

    #[test]
    fn members_join_get_partitions_and_learn_of_others_at_their_next_heartbeat() {
        let mut g = ShareGroup::default();
        let a = g
            .heartbeat(join("a", &["t"]), &two_partitions, (&LIMITS, 0))
            .unwrap();
        assert_eq!(a.member_epoch, 1);
        assert_eq!(a.assignment.unwrap()["t"], BTreeSet::from([0, 1]));
        let b = g
            .heartbeat(join("b", &["t"]), &two_partitions, (&LIMITS, 0))
            .unwrap();
        assert_eq!(b.member_epoch, 2);
        assert_eq!(b.assignment.unwrap()["t"].len(), 1);
        // a is still at epoch 1: its next heartbeat moves it on.
        let a = g
            .heartbeat(beat("a", 1), &two_partitions, (&LIMITS, 0))
            .unwrap();
        assert_eq!(a.member_epoch, 2);
        assert_eq!(a.assignment.unwrap()["t"].len(), 1);
        let a = g
            .heartbeat(beat("a", 2), &two_partitions, (&LIMITS, 0))
            .unwrap();
        assert_eq!(a.assignment, None);
        // A stale epoch is fenced; a leave hands the partitions back.
        assert_eq!(
            g.heartbeat(beat("a", 1), &two_partitions, (&LIMITS, 0)),
            Err(HeartbeatError::FencedMemberEpoch {
                expected: 2,
                got: 1
            })
        );
        g.heartbeat(beat("b", LEAVE_EPOCH), &two_partitions, (&LIMITS, 0))
            .unwrap();
        let a = g
            .heartbeat(beat("a", 2), &two_partitions, (&LIMITS, 0))
            .unwrap();
        assert_eq!(a.assignment.unwrap()["t"], BTreeSet::from([0, 1]));
    }

    #[test]
    fn silent_members_expire() {
        let mut g = ShareGroup::default();
        g.heartbeat(join("a", &["t"]), &two_partitions, (&LIMITS, 0))
            .unwrap();
        g.heartbeat(join("b", &["t"]), &two_partitions, (&LIMITS, 50))
            .unwrap();
        assert_eq!(g.expire(99, &two_partitions), Vec::<String>::new());
        assert_eq!(g.expire(100, &two_partitions), vec!["a".to_string()]);
        assert_eq!(
            g.heartbeat(beat("a", 1), &two_partitions, (&LIMITS, 100)),
            Err(HeartbeatError::UnknownMember {
                member_id: "a".into()
            })
        );
    }

    #[test]
    fn bad_heartbeats_change_nothing() {
        let mut g = ShareGroup::default();
        let no_topics = join("a", &[]);
        assert!(matches!(
            g.heartbeat(no_topics, &two_partitions, (&LIMITS, 0)),
            Err(HeartbeatError::InvalidRequest { .. })
        ));
        assert!(matches!(
            g.heartbeat(join("", &["t"]), &two_partitions, (&LIMITS, 0)),
            Err(HeartbeatError::InvalidRequest { .. })
        ));
        for id in ["a", "b", "c"] {
            g.heartbeat(join(id, &["t"]), &two_partitions, (&LIMITS, 0))
                .unwrap();
        }
        assert_eq!(
            g.heartbeat(join("d", &["t"]), &two_partitions, (&LIMITS, 0)),
            Err(HeartbeatError::GroupMaxSizeReached { max: 3 })
        );
        assert_eq!(g.group_epoch(), 3);
    }

    #[test]
    fn new_partitions_are_assigned_at_the_next_heartbeat() {
        let mut g = ShareGroup::default();
        let one = |t: &str| (t == "t").then_some(1);
        g.heartbeat(join("a", &["t", "later"]), &one, (&LIMITS, 0))
            .unwrap();
        let both = |t: &str| Some(if t == "t" { 1 } else { 3 });
        let a = g.heartbeat(beat("a", 1), &both, (&LIMITS, 0)).unwrap();
        assert_eq!(a.assignment.unwrap()["later"], BTreeSet::from([0, 1, 2]));
    }
}
