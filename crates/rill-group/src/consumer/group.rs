//! One consumer group (KIP-848): its epoch, its members (subscription,
//! current assignment, timers), and its target assignment; a heartbeat
//! updates the member, bumps the group epoch when subscriptions or the
//! subscribed topics change, computes a new target assignment when the
//! epoch moved past it, and reconciles the member towards its target.
//! Every change comes out as the records that make it durable.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use super::assignment::{Assignment, TopicId, TopicsImage, is_subset};
use super::assignor::{Assignor, AssignorMember, assign};
use super::error::ConsumerGroupError;
use super::reconcile::{CurrentAssignment, MemberState, reconcile};
use super::records::{ConsumerGroupRecord, GroupEpochValue, MemberMetadataValue};

/// The epoch of a member that left for good.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// The epoch of a static member that left and may come back.
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// Topics no regular expression subscribes to (Kafka's internal topics).
const INTERNAL_TOPICS: [&str; 3] = [
    crate::offsets_topic::OFFSETS_TOPIC,
    "__transaction_state",
    "__share_group_state",
];

/// A member of a consumer group.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) metadata: MemberMetadataValue,
    /// `metadata.subscribed_topic_regex`, compiled to match whole names.
    regex: Option<Regex>,
    pub(crate) current: CurrentAssignment,
    /// When the session ends without a heartbeat.
    pub(crate) session_deadline_ms: i64,
    /// When a member that must revoke partitions is fenced if it has not.
    pub(crate) revocation_deadline_ms: Option<i64>,
}

impl Member {
    pub(crate) fn new(now_ms: i64, session_timeout_ms: i64) -> Member {
        Member {
            metadata: MemberMetadataValue {
                rebalance_timeout_ms: -1,
                ..MemberMetadataValue::default()
            },
            regex: None,
            current: CurrentAssignment::new(),
            session_deadline_ms: now_ms.saturating_add(session_timeout_ms),
            revocation_deadline_ms: None,
        }
    }

    pub(crate) fn set_metadata(&mut self, metadata: MemberMetadataValue) {
        if metadata.subscribed_topic_regex != self.metadata.subscribed_topic_regex {
            self.regex = metadata
                .subscribed_topic_regex
                .as_deref()
                .and_then(|re| compile(re).ok());
        }
        self.metadata = metadata;
    }

    /// The existing topics the member subscribes to, by name or regex.
    pub(crate) fn subscribed(&self, topics: &TopicsImage) -> BTreeSet<TopicId> {
        let mut out: BTreeSet<TopicId> = self
            .metadata
            .subscribed_topic_names
            .iter()
            .filter_map(|name| topics.id(name))
            .collect();
        if let Some(regex) = &self.regex {
            out.extend(
                topics
                    .names()
                    .filter(|(name, _)| !INTERNAL_TOPICS.contains(name) && regex.is_match(name))
                    .map(|(_, id)| id),
            );
        }
        out
    }

    pub(crate) fn next_deadline(&self) -> i64 {
        self.revocation_deadline_ms
            .map_or(self.session_deadline_ms, |r| {
                r.min(self.session_deadline_ms)
            })
    }
}

/// A regular expression that must match a whole topic name (Kafka's RE2/J
/// `matches`).
pub(crate) fn compile(regex: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{regex})$"))
}

/// The member a heartbeat is for.
struct Found {
    member_id: String,
    /// Tombstones of the static member it replaces, and its target moved.
    records: Vec<ConsumerGroupRecord>,
    /// It has just joined.
    is_new: bool,
    /// It took over a static member that had left.
    replaced: bool,
}

/// A ConsumerGroupHeartbeat in plain terms.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub group_id: String,
    /// Empty only on a v0 join: the coordinator then makes one up.
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// `None`: unchanged.
    pub subscribed_topic_regex: Option<String>,
    /// `None`: unchanged.
    pub server_assignor: Option<String>,
    /// What the member owns; `None`: not said.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
    /// Set when the member speaks the classic protocol (a JoinGroup to a
    /// consumer group); `None` for a ConsumerGroupHeartbeat.
    pub classic: Option<super::records::ClassicMemberMetadata>,
}

/// What a heartbeat answers, and the records to persist before it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    /// The member's assignment, when it must be told (a join, a full
    /// request, or a change).
    pub assignment: Option<Assignment>,
    pub records: Vec<ConsumerGroupRecord>,
}

/// What a heartbeat needs from its caller besides the request.
#[derive(Debug, Clone, Copy)]
pub struct HeartbeatContext<'a> {
    pub topics: &'a TopicsImage,
    /// group.consumer.assignors, the first being the default.
    pub assignors: &'a [Assignor],
    /// The group's consumer.session.timeout.ms.
    pub session_timeout_ms: i64,
    pub now_ms: i64,
}

/// The state Kafka reports for a consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    /// Kafka's name (ConsumerGroupDescribe, ListGroups).
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ConsumerGroup {
    pub(crate) group_id: String,
    pub(crate) epoch: i32,
    metadata_hash: i64,
    pub(crate) assignment_epoch: i32,
    pub(crate) members: BTreeMap<String, Member>,
    pub(crate) targets: BTreeMap<String, Assignment>,
}

impl ConsumerGroup {
    pub(crate) fn new(group_id: String) -> ConsumerGroup {
        ConsumerGroup {
            group_id,
            epoch: 0,
            metadata_hash: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            targets: BTreeMap::new(),
        }
    }

    pub(crate) fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.members.values().any(|m| {
            m.current.epoch != self.assignment_epoch || m.current.state != MemberState::Stable
        }) {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// The assignor the group runs: the one most of its members ask for,
    /// else the first configured.
    pub(crate) fn assignor(&self, assignors: &[Assignor]) -> Assignor {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = &member.metadata.server_assignor {
                *votes.entry(name).or_default() += 1;
            }
        }
        votes
            .iter()
            .max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name)))
            .and_then(|(name, _)| Assignor::from_name(name))
            .or_else(|| assignors.first().copied())
            .unwrap_or(Assignor::Uniform)
    }

    fn static_member(&self, instance_id: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(_, m)| m.metadata.instance_id.as_deref() == Some(instance_id))
            .map(|(id, _)| id.as_str())
    }

    fn unknown(&self, member_id: &str) -> ConsumerGroupError {
        ConsumerGroupError::UnknownMemberId {
            group_id: self.group_id.clone(),
            member_id: member_id.to_owned(),
        }
    }

    /// The member a leave (epoch -1 or -2) names.
    pub(crate) fn leaving_member(
        &self,
        request: &ConsumerHeartbeat,
    ) -> Result<String, ConsumerGroupError> {
        match &request.instance_id {
            Some(instance_id) => {
                let owner = self
                    .static_member(instance_id)
                    .ok_or_else(|| self.unknown(&request.member_id))?;
                if owner != request.member_id {
                    return Err(ConsumerGroupError::FencedInstanceId {
                        group_id: self.group_id.clone(),
                        instance_id: instance_id.clone(),
                        member_id: request.member_id.clone(),
                        owner: owner.to_owned(),
                    });
                }
                Ok(owner.to_owned())
            }
            None if self.members.contains_key(&request.member_id) => Ok(request.member_id.clone()),
            None => Err(self.unknown(&request.member_id)),
        }
    }

    /// A static member leaves for now: it keeps its partitions until its
    /// session ends or it comes back under a new member id.
    pub(crate) fn leave_static(&mut self, member_id: &str) -> Vec<ConsumerGroupRecord> {
        let Some(member) = self.members.get_mut(member_id) else {
            return Vec::new();
        };
        member.current.epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
        member.current.revoking.clear();
        member.revocation_deadline_ms = None;
        vec![ConsumerGroupRecord::CurrentMemberAssignment {
            group_id: self.group_id.clone(),
            member_id: member_id.to_owned(),
            value: Some(member.current.clone()),
        }]
    }

    /// Removes a member (it left, or was fenced) and bumps the epoch so
    /// that the others take its partitions.
    pub(crate) fn remove_member(&mut self, member_id: &str) -> Vec<ConsumerGroupRecord> {
        if self.members.remove(member_id).is_none() {
            return Vec::new();
        }
        self.targets.remove(member_id);
        let mut records = self.member_tombstones(member_id);
        self.epoch += 1;
        records.push(self.epoch_record());
        records
    }

    fn member_tombstones(&self, member_id: &str) -> Vec<ConsumerGroupRecord> {
        let (group_id, member_id) = (self.group_id.clone(), member_id.to_owned());
        vec![
            ConsumerGroupRecord::CurrentMemberAssignment {
                group_id: group_id.clone(),
                member_id: member_id.clone(),
                value: None,
            },
            ConsumerGroupRecord::TargetAssignmentMember {
                group_id: group_id.clone(),
                member_id: member_id.clone(),
                value: None,
            },
            ConsumerGroupRecord::MemberMetadata {
                group_id,
                member_id,
                value: None,
            },
        ]
    }

    fn epoch_record(&self) -> ConsumerGroupRecord {
        ConsumerGroupRecord::Metadata {
            group_id: self.group_id.clone(),
            value: Some(GroupEpochValue {
                epoch: self.epoch,
                metadata_hash: self.metadata_hash,
            }),
        }
    }

    /// Every record that deletes the group.
    pub(crate) fn tombstones(&self) -> Vec<ConsumerGroupRecord> {
        let mut records: Vec<ConsumerGroupRecord> = self
            .members
            .keys()
            .flat_map(|id| self.member_tombstones(id))
            .collect();
        records.push(ConsumerGroupRecord::TargetAssignmentMetadata {
            group_id: self.group_id.clone(),
            value: None,
        });
        records.push(ConsumerGroupRecord::Metadata {
            group_id: self.group_id.clone(),
            value: None,
        });
        records
    }

    /// Finds (or makes) the member a join or heartbeat is for, checking
    /// its epoch and instance id.
    fn member_for(
        &mut self,
        request: &ConsumerHeartbeat,
        ctx: &HeartbeatContext<'_>,
    ) -> Result<Found, ConsumerGroupError> {
        let joining = request.member_epoch == 0;
        let member_id = request.member_id.clone();
        let existing_static = request
            .instance_id
            .as_deref()
            .and_then(|instance_id| self.static_member(instance_id))
            .map(str::to_owned);
        match (&request.instance_id, existing_static) {
            (Some(instance_id), Some(owner)) if owner != member_id => {
                let old = self.members.get(&owner).map_or(0, |m| m.current.epoch);
                if !joining {
                    return Err(ConsumerGroupError::FencedInstanceId {
                        group_id: self.group_id.clone(),
                        instance_id: instance_id.clone(),
                        member_id,
                        owner,
                    });
                }
                if old != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                    return Err(ConsumerGroupError::UnreleasedInstanceId {
                        group_id: self.group_id.clone(),
                        instance_id: instance_id.clone(),
                        owner,
                    });
                }
                // The static member comes back under a new member id and
                // takes over its old assignment, with no new epoch.
                let mut records = self.member_tombstones(&owner);
                if let Some(member) = self.members.remove(&owner) {
                    self.members.insert(member_id.clone(), member);
                }
                if let Some(target) = self.targets.remove(&owner) {
                    records.push(ConsumerGroupRecord::TargetAssignmentMember {
                        group_id: self.group_id.clone(),
                        member_id: member_id.clone(),
                        value: Some(target.clone()),
                    });
                    self.targets.insert(member_id.clone(), target);
                }
                Ok(Found {
                    member_id,
                    records,
                    is_new: false,
                    replaced: true,
                })
            }
            (Some(_), None) if !joining => Err(self.unknown(&member_id)),
            _ => {
                let is_new = match self.members.get(&member_id) {
                    Some(member) if !joining => {
                        check_epoch(&self.group_id, &member_id, member, request)?;
                        false
                    }
                    Some(_) => false,
                    None if joining => {
                        let member = Member::new(ctx.now_ms, ctx.session_timeout_ms);
                        self.members.insert(member_id.clone(), member);
                        true
                    }
                    None => return Err(self.unknown(&member_id)),
                };
                Ok(Found {
                    member_id,
                    records: Vec::new(),
                    is_new,
                    replaced: false,
                })
            }
        }
    }

    /// A join (epoch 0) or a heartbeat of a member.
    pub(crate) fn heartbeat(
        &mut self,
        request: &ConsumerHeartbeat,
        ctx: &HeartbeatContext<'_>,
    ) -> Result<HeartbeatReply, ConsumerGroupError> {
        let Found {
            member_id,
            mut records,
            is_new,
            replaced,
        } = self.member_for(request, ctx)?;
        let Some(member) = self.members.get_mut(&member_id) else {
            return Err(self.unknown(&member_id));
        };
        let before = member.clone();
        let metadata = updated_metadata(&before.metadata, request);
        let subscription_changed = is_new
            || metadata.subscribed_topic_names != before.metadata.subscribed_topic_names
            || metadata.subscribed_topic_regex != before.metadata.subscribed_topic_regex;
        if is_new || replaced || metadata != before.metadata {
            records.push(ConsumerGroupRecord::MemberMetadata {
                group_id: self.group_id.clone(),
                member_id: member_id.clone(),
                value: Some(metadata.clone()),
            });
        }
        member.set_metadata(metadata);
        member.session_deadline_ms = ctx.now_ms.saturating_add(ctx.session_timeout_ms);

        let hash = self.subscription_hash(ctx.topics);
        let mut bump = self.epoch == 0 || subscription_changed;
        if hash != self.metadata_hash {
            self.metadata_hash = hash;
            bump = true;
        }
        if bump {
            self.epoch += 1;
            records.push(self.epoch_record());
        }
        if self.epoch > self.assignment_epoch {
            records.extend(self.new_target_assignment(ctx));
        }
        let updated = self.reconcile_member(&member_id, request.owned.as_ref(), ctx.now_ms);
        let Some(member) = self.members.get(&member_id) else {
            return Err(self.unknown(&member_id));
        };
        if updated {
            records.push(ConsumerGroupRecord::CurrentMemberAssignment {
                group_id: self.group_id.clone(),
                member_id: member_id.clone(),
                value: Some(member.current.clone()),
            });
        }
        let full_request = request.member_epoch == 0
            || (request.rebalance_timeout_ms != -1
                && request.subscribed_topic_names.is_some()
                && request.owned.is_some());
        let changed = member.current.assigned != before.current.assigned;
        Ok(HeartbeatReply {
            member_id,
            member_epoch: member.current.epoch,
            assignment: (full_request || changed).then(|| member.current.assigned.clone()),
            records,
        })
    }

    /// A hash of the topics the group subscribes to (ids, names, partition
    /// counts): when it changes, so must the target assignment. 0 for none.
    fn subscription_hash(&self, topics: &TopicsImage) -> i64 {
        let subscribed: BTreeSet<TopicId> = self
            .members
            .values()
            .flat_map(|m| m.subscribed(topics))
            .collect();
        if subscribed.is_empty() {
            return 0;
        }
        // FNV-1a, 64 bits.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for byte in bytes {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for id in subscribed {
            if let Some(topic) = topics.topic(id) {
                feed(&id.0);
                feed(topic.name.as_bytes());
                feed(&topic.partitions.to_be_bytes());
            }
        }
        i64::from_be_bytes(hash.to_be_bytes())
    }

    /// Recomputes every member's target at the group epoch; records the
    /// targets that changed, then the assignment epoch.
    fn new_target_assignment(&mut self, ctx: &HeartbeatContext<'_>) -> Vec<ConsumerGroupRecord> {
        let assignor = self.assignor(ctx.assignors);
        let inputs: Vec<AssignorMember<'_>> = self
            .members
            .iter()
            .map(|(id, member)| AssignorMember {
                member_id: id,
                subscribed: member.subscribed(ctx.topics),
                previous: self.targets.get(id),
            })
            .collect();
        let targets = assign(assignor, &inputs, ctx.topics);
        let mut records = Vec::new();
        for (member_id, target) in &targets {
            if self.targets.get(member_id) != Some(target) {
                records.push(ConsumerGroupRecord::TargetAssignmentMember {
                    group_id: self.group_id.clone(),
                    member_id: member_id.clone(),
                    value: Some(target.clone()),
                });
            }
        }
        self.targets = targets;
        self.assignment_epoch = self.epoch;
        records.push(ConsumerGroupRecord::TargetAssignmentMetadata {
            group_id: self.group_id.clone(),
            value: Some(self.assignment_epoch),
        });
        records
    }

    /// Moves the member's current assignment towards its target; whether
    /// it changed.
    fn reconcile_member(
        &mut self,
        member_id: &str,
        owned: Option<&Assignment>,
        now_ms: i64,
    ) -> bool {
        let mut others: BTreeSet<(TopicId, i32)> = BTreeSet::new();
        for (id, member) in &self.members {
            if id == member_id {
                continue;
            }
            for assignment in [&member.current.assigned, &member.current.revoking] {
                for (topic, partitions) in assignment {
                    others.extend(partitions.iter().map(|p| (*topic, *p)));
                }
            }
        }
        let empty = Assignment::new();
        let target = self.targets.get(member_id).unwrap_or(&empty);
        let Some(member) = self.members.get_mut(member_id) else {
            return false;
        };
        let next = reconcile(
            &member.current,
            self.assignment_epoch,
            target,
            owned,
            &|topic, partition| others.contains(&(topic, partition)),
        );
        if next.state == MemberState::UnrevokedPartitions {
            if member.current.state != MemberState::UnrevokedPartitions {
                let timeout = i64::from(member.metadata.rebalance_timeout_ms.max(0));
                member.revocation_deadline_ms = Some(now_ms.saturating_add(timeout));
            }
        } else {
            member.revocation_deadline_ms = None;
        }
        let changed = next != member.current;
        member.current = next;
        changed
    }

    /// Fences the members whose session or revocation time ran out.
    pub(crate) fn expire(&mut self, now_ms: i64) -> Vec<ConsumerGroupRecord> {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.next_deadline() <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        let mut records = Vec::new();
        for member_id in expired {
            tracing::info!(group = %self.group_id, member = %member_id, "consumer group member fenced: its session or revocation timed out");
            records.extend(self.remove_member(&member_id));
        }
        records
    }

    pub(crate) fn next_deadline(&self) -> Option<i64> {
        self.members.values().map(Member::next_deadline).min()
    }

    /// Applies one record read back from `__consumer_offsets`. Members
    /// get a session from `now_ms`.
    pub(crate) fn replay(
        &mut self,
        record: ConsumerGroupRecord,
        now_ms: i64,
        session_timeout_ms: i64,
    ) {
        fn member(
            members: &mut BTreeMap<String, Member>,
            id: String,
            now_ms: i64,
            session_timeout_ms: i64,
        ) -> &mut Member {
            members
                .entry(id)
                .or_insert_with(|| Member::new(now_ms, session_timeout_ms))
        }
        match record {
            ConsumerGroupRecord::Metadata { value: Some(v), .. } => {
                self.epoch = v.epoch;
                self.metadata_hash = v.metadata_hash;
            }
            ConsumerGroupRecord::Metadata { value: None, .. } => {}
            ConsumerGroupRecord::MemberMetadata {
                member_id,
                value: Some(v),
                ..
            } => {
                member(&mut self.members, member_id, now_ms, session_timeout_ms).set_metadata(v);
            }
            ConsumerGroupRecord::MemberMetadata {
                member_id,
                value: None,
                ..
            } => {
                self.members.remove(&member_id);
            }
            ConsumerGroupRecord::TargetAssignmentMetadata { value, .. } => {
                self.assignment_epoch = value.unwrap_or(0);
            }
            ConsumerGroupRecord::TargetAssignmentMember {
                member_id,
                value: Some(v),
                ..
            } => {
                self.targets.insert(member_id, v);
            }
            ConsumerGroupRecord::TargetAssignmentMember {
                member_id,
                value: None,
                ..
            } => {
                self.targets.remove(&member_id);
            }
            ConsumerGroupRecord::CurrentMemberAssignment {
                member_id,
                value: Some(v),
                ..
            } => {
                member(&mut self.members, member_id, now_ms, session_timeout_ms).current = v;
            }
            ConsumerGroupRecord::CurrentMemberAssignment {
                member_id,
                value: None,
                ..
            } => {
                if let Some(m) = self.members.get_mut(&member_id) {
                    m.current = CurrentAssignment::new();
                }
            }
        }
    }

    /// May `member_id` at `epoch` commit (or fetch) offsets? Kafka's
    /// `ConsumerGroup.validateOffsetCommit`: without an epoch only while
    /// the group is empty (`allow_without_member`), else the member must
    /// exist at exactly that epoch.
    pub(crate) fn validate_member_epoch(
        &self,
        member_id: &str,
        epoch: i32,
        allow_without_member: bool,
    ) -> Result<(), ConsumerGroupError> {
        if epoch < 0 && allow_without_member {
            return Ok(());
        }
        let member = self
            .members
            .get(member_id)
            .ok_or_else(|| self.unknown(member_id))?;
        if member.current.epoch != epoch && member.metadata.classic.is_some() {
            // A classic member knows generations, not member epochs
            // (Kafka's validateOffsetCommit: ILLEGAL_GENERATION for it).
            return Err(ConsumerGroupError::IllegalGeneration {
                group_id: self.group_id.clone(),
                member_id: member_id.to_owned(),
                received: epoch,
                expected: member.current.epoch,
            });
        }
        if member.current.epoch != epoch {
            return Err(ConsumerGroupError::StaleMemberEpoch {
                group_id: self.group_id.clone(),
                member_id: member_id.to_owned(),
                received: epoch,
                expected: member.current.epoch,
            });
        }
        Ok(())
    }
}

/// Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`: a greater epoch is
/// fenced; a smaller one too, unless it is the previous epoch and the
/// member owns no more than it is assigned (its last response was lost).
fn check_epoch(
    group_id: &str,
    member_id: &str,
    member: &Member,
    request: &ConsumerHeartbeat,
) -> Result<(), ConsumerGroupError> {
    let expected = member.current.epoch;
    let received = request.member_epoch;
    let lost_response = received == member.current.previous_epoch
        && request
            .owned
            .as_ref()
            .is_some_and(|owned| is_subset(owned, &member.current.assigned));
    if received > expected || (received < expected && !lost_response) {
        return Err(ConsumerGroupError::FencedMemberEpoch {
            group_id: group_id.to_owned(),
            member_id: member_id.to_owned(),
            received,
            expected,
        });
    }
    Ok(())
}

fn updated_metadata(old: &MemberMetadataValue, request: &ConsumerHeartbeat) -> MemberMetadataValue {
    MemberMetadataValue {
        instance_id: request
            .instance_id
            .clone()
            .or_else(|| old.instance_id.clone()),
        rack_id: request.rack_id.clone().or_else(|| old.rack_id.clone()),
        client_id: request.client_id.clone(),
        client_host: request.client_host.clone(),
        subscribed_topic_names: request
            .subscribed_topic_names
            .clone()
            .unwrap_or_else(|| old.subscribed_topic_names.clone()),
        subscribed_topic_regex: match &request.subscribed_topic_regex {
            // An empty regex unsubscribes from the regex.
            Some(regex) if regex.is_empty() => None,
            Some(regex) => Some(regex.clone()),
            None => old.subscribed_topic_regex.clone(),
        },
        rebalance_timeout_ms: if request.rebalance_timeout_ms == -1 {
            old.rebalance_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        server_assignor: request
            .server_assignor
            .clone()
            .or_else(|| old.server_assignor.clone()),
        classic: request.classic.clone(),
    }
}
