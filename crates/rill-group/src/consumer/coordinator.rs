//! Every consumer group (KIP-848) a coordinator owns: requests are checked
//! as Kafka checks them, then handed to their group; timers fence silent
//! members; records read back at load time rebuild the groups.

use std::collections::BTreeMap;

use super::assignment::Assignment;
use super::assignor::Assignor;
use super::error::ConsumerGroupError;
use super::group::{
    ConsumerGroup, ConsumerGroupState, ConsumerHeartbeat, HeartbeatContext, HeartbeatReply,
    LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH, compile,
};
use super::reconcile::MemberState;
use super::records::ConsumerGroupRecord;

/// The coordinator's consumer groups, sans I/O, driven like the classic
/// [`GroupCoordinator`](crate::GroupCoordinator): each call takes the
/// time and returns the records to persist before its answer goes out;
/// [`tick`](Self::tick) at [`next_deadline`](Self::next_deadline) fences
/// members whose session or revocation timed out. Deterministic: member
/// ids it makes come from a seed and a counter. Not thread-safe: the
/// server holds it under the same lock as the classic coordinator.
///
/// ```
/// use rill_group::{Assignor, ConsumerGroups, ConsumerHeartbeat, HeartbeatContext, TopicId, TopicInfo, TopicsImage};
///
/// let topics = TopicsImage::new([TopicInfo { id: TopicId([1; 16]), name: "orders".into(), partitions: 2 }]);
/// let mut groups = ConsumerGroups::new(7);
/// groups.finish_loading();
/// let join = ConsumerHeartbeat {
///     group_id: "app".into(),
///     member_id: "m1".into(),
///     member_epoch: 0,
///     rebalance_timeout_ms: 30_000,
///     subscribed_topic_names: Some(vec!["orders".into()]),
///     owned: Some(Default::default()),
///     ..ConsumerHeartbeat::default()
/// };
/// let ctx = HeartbeatContext { topics: &topics, assignors: &[Assignor::Uniform], session_timeout_ms: 45_000, now_ms: 0 };
/// let reply = groups.heartbeat(&join, &ctx, false).unwrap();
/// assert_eq!(reply.member_epoch, 1);
/// assert_eq!(reply.assignment.unwrap()[&TopicId([1; 16])].len(), 2);
/// ```
#[derive(Debug)]
pub struct ConsumerGroups {
    loading: bool,
    pub(super) groups: BTreeMap<String, ConsumerGroup>,
    member_id_seed: u64,
    member_id_counter: u64,
}

/// One member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub state: MemberState,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// What it owns now.
    pub assignment: Assignment,
    /// What it is heading for.
    pub target_assignment: Assignment,
    /// It speaks the classic protocol (KIP-848 online migration).
    pub classic: bool,
}

/// A consumer group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    pub state: ConsumerGroupState,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<ConsumerMemberDescription>,
}

impl ConsumerGroups {
    /// No groups, loading. `member_id_seed` keeps made-up member ids
    /// unique across restarts.
    pub fn new(member_id_seed: u64) -> ConsumerGroups {
        ConsumerGroups {
            loading: true,
            groups: BTreeMap::new(),
            member_id_seed,
            member_id_counter: 0,
        }
    }

    /// Replays one record read back from `__consumer_offsets`; members get
    /// a session of `session_timeout_ms` from `now_ms`.
    pub fn replay(&mut self, record: ConsumerGroupRecord, now_ms: i64, session_timeout_ms: i64) {
        let group_id = record.group().to_owned();
        if let ConsumerGroupRecord::Metadata { value: None, .. } = record {
            self.groups.remove(&group_id);
            return;
        }
        self.groups
            .entry(group_id.clone())
            .or_insert_with(|| ConsumerGroup::new(group_id))
            .replay(record, now_ms, session_timeout_ms);
    }

    /// Ends loading: requests are served from now on.
    pub fn finish_loading(&mut self) {
        self.loading = false;
    }

    /// Whether `group_id` is a consumer group here.
    pub fn contains(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id)
    }

    /// ConsumerGroupHeartbeat. `member_id_required`: the request's
    /// version makes the client choose its member id (v1, KIP-1082).
    pub fn heartbeat(
        &mut self,
        request: &ConsumerHeartbeat,
        ctx: &HeartbeatContext<'_>,
        member_id_required: bool,
    ) -> Result<HeartbeatReply, ConsumerGroupError> {
        if self.loading {
            return Err(ConsumerGroupError::CoordinatorLoadInProgress);
        }
        validate(request, ctx.assignors, member_id_required)?;
        let mut request = request.clone();
        if request.member_id.is_empty() {
            request.member_id = self.new_member_id();
        }
        match request.member_epoch {
            LEAVE_GROUP_MEMBER_EPOCH | LEAVE_GROUP_STATIC_MEMBER_EPOCH => self.leave(&request),
            _ => {
                let created = !self.groups.contains_key(&request.group_id);
                if created && request.member_epoch != 0 {
                    return Err(ConsumerGroupError::UnknownMemberId {
                        group_id: request.group_id.clone(),
                        member_id: request.member_id.clone(),
                    });
                }
                let group = self
                    .groups
                    .entry(request.group_id.clone())
                    .or_insert_with(|| ConsumerGroup::new(request.group_id.clone()));
                let reply = group.heartbeat(&request, ctx);
                if created && reply.is_err() {
                    self.groups.remove(&request.group_id);
                }
                reply
            }
        }
    }

    fn leave(&mut self, request: &ConsumerHeartbeat) -> Result<HeartbeatReply, ConsumerGroupError> {
        let group = self.groups.get_mut(&request.group_id).ok_or_else(|| {
            ConsumerGroupError::GroupIdNotFound {
                group_id: request.group_id.clone(),
            }
        })?;
        let member_id = group.leaving_member(request)?;
        let records = if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            group.leave_static(&member_id)
        } else {
            group.remove_member(&member_id)
        };
        Ok(HeartbeatReply {
            member_id,
            member_epoch: request.member_epoch,
            assignment: None,
            records,
        })
    }

    /// The earliest time [`tick`](Self::tick) has work.
    pub fn next_deadline(&self) -> Option<i64> {
        self.groups
            .values()
            .filter_map(ConsumerGroup::next_deadline)
            .min()
    }

    /// Fences every member whose time ran out; the records to persist.
    pub fn tick(&mut self, now_ms: i64) -> Vec<ConsumerGroupRecord> {
        if self.loading {
            return Vec::new();
        }
        self.groups
            .values_mut()
            .flat_map(|group| group.expire(now_ms))
            .collect()
    }

    /// ConsumerGroupDescribe of one group; GROUP_ID_NOT_FOUND if it is
    /// not a consumer group here.
    pub fn describe(
        &self,
        group_id: &str,
        assignors: &[Assignor],
    ) -> Result<ConsumerGroupDescription, ConsumerGroupError> {
        if self.loading {
            return Err(ConsumerGroupError::CoordinatorLoadInProgress);
        }
        let group =
            self.groups
                .get(group_id)
                .ok_or_else(|| ConsumerGroupError::GroupIdNotFound {
                    group_id: group_id.to_owned(),
                })?;
        let members = group
            .members
            .iter()
            .map(|(member_id, member)| ConsumerMemberDescription {
                member_id: member_id.clone(),
                instance_id: member.metadata.instance_id.clone(),
                rack_id: member.metadata.rack_id.clone(),
                member_epoch: member.current.epoch,
                state: member.current.state,
                client_id: member.metadata.client_id.clone(),
                client_host: member.metadata.client_host.clone(),
                subscribed_topic_names: member.metadata.subscribed_topic_names.clone(),
                subscribed_topic_regex: member.metadata.subscribed_topic_regex.clone(),
                assignment: member.current.assigned.clone(),
                target_assignment: group.targets.get(member_id).cloned().unwrap_or_default(),
                classic: member.metadata.classic.is_some(),
            })
            .collect();
        Ok(ConsumerGroupDescription {
            group_id: group_id.to_owned(),
            state: group.state(),
            epoch: group.epoch,
            assignment_epoch: group.assignment_epoch,
            assignor: group.assignor(assignors).name(),
            members,
        })
    }

    /// The state of `group_id`, if it is a consumer group here.
    pub fn state(&self, group_id: &str) -> Option<ConsumerGroupState> {
        self.groups.get(group_id).map(ConsumerGroup::state)
    }

    /// Every consumer group and its state, by id.
    pub fn list(&self) -> Vec<(String, ConsumerGroupState)> {
        self.groups
            .iter()
            .map(|(id, group)| (id.clone(), group.state()))
            .collect()
    }

    /// May this OffsetCommit (`member_epoch` is its generation id) be
    /// accepted? `Ok` too when `group_id` is not a consumer group (the
    /// classic coordinator decides then).
    pub fn validate_offset_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), ConsumerGroupError> {
        match self.groups.get(group_id) {
            Some(group) => {
                group.validate_member_epoch(member_id, member_epoch, group.members.is_empty())
            }
            None => Ok(()),
        }
    }

    /// May an OffsetFetch (v9+) with this member and epoch read the
    /// group's offsets? Without an epoch (-1) anyone may.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), ConsumerGroupError> {
        match self.groups.get(group_id) {
            Some(group) => group.validate_member_epoch(member_id, member_epoch, true),
            None => Ok(()),
        }
    }

    /// DeleteGroups of a consumer group: only an empty one; the records
    /// that delete it.
    pub fn delete(
        &mut self,
        group_id: &str,
    ) -> Result<Vec<ConsumerGroupRecord>, ConsumerGroupError> {
        let group =
            self.groups
                .get(group_id)
                .ok_or_else(|| ConsumerGroupError::GroupIdNotFound {
                    group_id: group_id.to_owned(),
                })?;
        if !group.members.is_empty() {
            return Err(ConsumerGroupError::NonEmptyGroup {
                group_id: group_id.to_owned(),
            });
        }
        let records = group.tombstones();
        self.groups.remove(group_id);
        Ok(records)
    }

    /// A member id for a v0 join: UUID-shaped, from the seed and a counter.
    pub(super) fn new_member_id(&mut self) -> String {
        self.member_id_counter = self.member_id_counter.wrapping_add(1);
        let hex = format!(
            "{:016x}{:016x}",
            self.member_id_seed, self.member_id_counter
        );
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }
}

/// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`.
fn validate(
    request: &ConsumerHeartbeat,
    assignors: &[Assignor],
    member_id_required: bool,
) -> Result<(), ConsumerGroupError> {
    let invalid = |reason: &str| {
        Err(ConsumerGroupError::InvalidRequest {
            reason: reason.to_owned(),
        })
    };
    let blank = |value: &Option<String>| value.as_deref().is_some_and(|v| v.trim().is_empty());
    let epoch = request.member_epoch;
    if (member_id_required || epoch > 0 || epoch == LEAVE_GROUP_MEMBER_EPOCH)
        && request.member_id.trim().is_empty()
    {
        return invalid("MemberId can't be empty.");
    }
    if request.group_id.trim().is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if blank(&request.instance_id) {
        return invalid("InstanceId can't be empty.");
    }
    if blank(&request.rack_id) {
        return invalid("RackId can't be empty.");
    }
    if epoch == 0 {
        if request.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if request.owned.as_ref().is_none_or(|owned| !owned.is_empty()) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        if request.subscribed_topic_names.is_none() && request.subscribed_topic_regex.is_none() {
            return invalid(
                "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
            );
        }
    } else if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        if request.instance_id.is_none() {
            return invalid("InstanceId can't be null.");
        }
    } else if epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    if let Some(name) = &request.server_assignor
        && !Assignor::from_name(name).is_some_and(|a| assignors.contains(&a))
    {
        return Err(ConsumerGroupError::UnsupportedAssignor {
            assignor: name.clone(),
            supported: assignors.iter().map(|a| a.name()).collect(),
        });
    }
    if let Some(regex) = request
        .subscribed_topic_regex
        .as_deref()
        .filter(|r| !r.is_empty())
        && let Err(error) = compile(regex)
    {
        return Err(ConsumerGroupError::InvalidRegularExpression {
            regex: regex.to_owned(),
            reason: error.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::assignment::{TopicId, TopicInfo, TopicsImage, count, of, topic_id};
    use crate::consumer::group::ConsumerGroupState;

    const SESSION_MS: i64 = 45_000;

    fn topics(partitions: i32) -> TopicsImage {
        TopicsImage::new([TopicInfo {
            id: topic_id(1),
            name: "orders".into(),
            partitions,
        }])
    }

    struct Harness {
        groups: ConsumerGroups,
        topics: TopicsImage,
        now_ms: i64,
        /// What each member owns, as its client would report.
        owned: BTreeMap<String, (i32, Assignment)>,
    }

    impl Harness {
        fn new(partitions: i32) -> Harness {
            let mut groups = ConsumerGroups::new(1);
            groups.finish_loading();
            Harness {
                groups,
                topics: topics(partitions),
                now_ms: 0,
                owned: BTreeMap::new(),
            }
        }

        fn send(
            &mut self,
            request: &ConsumerHeartbeat,
        ) -> Result<HeartbeatReply, ConsumerGroupError> {
            let ctx = HeartbeatContext {
                topics: &self.topics,
                assignors: &[Assignor::Uniform, Assignor::Range],
                session_timeout_ms: SESSION_MS,
                now_ms: self.now_ms,
            };
            self.groups.heartbeat(request, &ctx, true)
        }

        fn join(&mut self, member: &str) -> HeartbeatReply {
            let reply = self
                .send(&ConsumerHeartbeat {
                    group_id: "g".into(),
                    member_id: member.into(),
                    member_epoch: 0,
                    rebalance_timeout_ms: 30_000,
                    subscribed_topic_names: Some(vec!["orders".into()]),
                    owned: Some(Assignment::new()),
                    client_id: "c".into(),
                    ..ConsumerHeartbeat::default()
                })
                .unwrap();
            self.apply(member, &reply);
            reply
        }

        /// A heartbeat as a client sends it: its epoch and what it owns.
        fn beat(&mut self, member: &str) -> HeartbeatReply {
            let (epoch, owned) = self.owned[member].clone();
            let reply = self
                .send(&ConsumerHeartbeat {
                    group_id: "g".into(),
                    member_id: member.into(),
                    member_epoch: epoch,
                    rebalance_timeout_ms: -1,
                    owned: Some(owned),
                    client_id: "c".into(),
                    ..ConsumerHeartbeat::default()
                })
                .unwrap();
            self.apply(member, &reply);
            reply
        }

        /// The client takes what it is told: revokes, then assigns.
        fn apply(&mut self, member: &str, reply: &HeartbeatReply) {
            let entry = self.owned.entry(member.to_owned()).or_default();
            entry.0 = reply.member_epoch;
            if let Some(assignment) = &reply.assignment {
                entry.1 = assignment.clone();
            }
        }

        /// No partition owned by two members.
        fn check_exclusive(&self) {
            let mut seen = std::collections::BTreeSet::new();
            for (_, owned) in self.owned.values() {
                for (topic, partitions) in owned {
                    for p in partitions {
                        assert!(
                            seen.insert((*topic, *p)),
                            "partition {p} owned twice: {:?}",
                            self.owned
                        );
                    }
                }
            }
        }

        fn settle(&mut self, members: &[&str]) {
            for _ in 0..5 {
                for member in members {
                    self.beat(member);
                    self.check_exclusive();
                }
            }
        }

        fn owned_count(&self, member: &str) -> usize {
            count(&self.owned[member].1)
        }
    }

    #[test]
    fn two_members_split_six_partitions() {
        let mut h = Harness::new(6);
        let first = h.join("a");
        assert_eq!(first.member_epoch, 1);
        assert_eq!(h.owned_count("a"), 6);
        h.join("b");
        h.settle(&["a", "b"]);
        assert_eq!((h.owned_count("a"), h.owned_count("b")), (3, 3));
        let description = h.groups.describe("g", &[Assignor::Uniform]).unwrap();
        assert_eq!(description.state, ConsumerGroupState::Stable);
        assert_eq!(description.epoch, 2);
        assert!(
            description
                .members
                .iter()
                .all(|m| m.assignment == m.target_assignment)
        );
    }

    #[test]
    fn a_joining_member_waits_for_the_owner_to_revoke() {
        let mut h = Harness::new(6);
        h.join("a");
        let b = h.join("b");
        // b's partitions are still a's: b is at the new epoch with none.
        assert_eq!(b.member_epoch, 2);
        assert_eq!(h.owned_count("b"), 0);
        let b_state = |h: &Harness| {
            let d = h.groups.describe("g", &[]).unwrap();
            d.members.iter().find(|m| m.member_id == "b").unwrap().state
        };
        assert_eq!(b_state(&h), MemberState::UnreleasedPartitions);
        // a is told to revoke; its epoch waits.
        let a = h.beat("a");
        assert_eq!(a.member_epoch, 1);
        assert_eq!(h.owned_count("a"), 3);
        // a acknowledges by heartbeat with what it still owns: epoch 2.
        assert_eq!(h.beat("a").member_epoch, 2);
        // Now b gets them.
        let b = h.beat("b");
        assert_eq!(count(b.assignment.as_ref().unwrap()), 3);
        assert_eq!(b_state(&h), MemberState::Stable);
        h.check_exclusive();
    }

    #[test]
    fn a_leaver_s_partitions_go_to_the_others() {
        let mut h = Harness::new(6);
        for m in ["a", "b", "c"] {
            h.join(m);
        }
        h.settle(&["a", "b", "c"]);
        assert_eq!(h.owned_count("c"), 2);
        let left = h
            .send(&ConsumerHeartbeat {
                group_id: "g".into(),
                member_id: "c".into(),
                member_epoch: -1,
                ..ConsumerHeartbeat::default()
            })
            .unwrap();
        assert_eq!(left.member_epoch, -1);
        h.owned.remove("c");
        h.settle(&["a", "b"]);
        assert_eq!((h.owned_count("a"), h.owned_count("b")), (3, 3));
    }

    #[test]
    fn a_silent_member_is_fenced_when_its_session_ends() {
        let mut h = Harness::new(4);
        h.join("a");
        h.join("b");
        h.settle(&["a", "b"]);
        h.now_ms += SESSION_MS / 2;
        h.beat("a");
        let deadline = h.groups.next_deadline().unwrap();
        assert_eq!(deadline, SESSION_MS); // b's
        let records = h.groups.tick(deadline);
        assert!(records.iter().any(|r| matches!(r, ConsumerGroupRecord::MemberMetadata { member_id, value: None, .. } if member_id == "b")));
        h.owned.remove("b");
        h.settle(&["a"]);
        assert_eq!(h.owned_count("a"), 4);
    }

    #[test]
    fn wrong_epochs_and_members_are_refused_as_kafka_does() {
        let mut h = Harness::new(2);
        h.join("a");
        let beat = |epoch: i32, member: &str| ConsumerHeartbeat {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            ..ConsumerHeartbeat::default()
        };
        assert!(matches!(
            h.send(&beat(7, "a")),
            Err(ConsumerGroupError::FencedMemberEpoch { .. })
        ));
        assert!(matches!(
            h.send(&beat(1, "zz")),
            Err(ConsumerGroupError::UnknownMemberId { .. })
        ));
        assert!(matches!(
            h.send(&beat(-3, "a")),
            Err(ConsumerGroupError::InvalidRequest { .. })
        ));
        let mut bad = beat(0, "b");
        bad.rebalance_timeout_ms = 1000;
        bad.owned = Some(Assignment::new());
        bad.subscribed_topic_regex = Some("(".into());
        assert!(matches!(
            h.send(&bad),
            Err(ConsumerGroupError::InvalidRegularExpression { .. })
        ));
        bad.subscribed_topic_regex = None;
        bad.subscribed_topic_names = Some(vec![]);
        bad.server_assignor = Some("sticky".into());
        assert!(matches!(
            h.send(&bad),
            Err(ConsumerGroupError::UnsupportedAssignor { .. })
        ));
        // Offsets: the member's epoch exactly.
        assert!(h.groups.validate_offset_commit("g", "a", 1).is_ok());
        assert!(matches!(
            h.groups.validate_offset_commit("g", "a", 0),
            Err(ConsumerGroupError::StaleMemberEpoch { .. })
        ));
        assert!(matches!(
            h.groups.validate_offset_commit("g", "", -1),
            Err(ConsumerGroupError::UnknownMemberId { .. })
        ));
        assert!(h.groups.validate_offset_fetch("g", "", -1).is_ok());
    }

    #[test]
    fn a_lost_response_is_forgiven_with_the_previous_epoch() {
        let mut h = Harness::new(2);
        h.join("a");
        let before = h.owned["a"].clone();
        // The topic grows: epoch 2, with two more partitions.
        h.topics = topics(4);
        assert_eq!(h.beat("a").member_epoch, 2);
        // The client never saw that answer, and owns a subset of epoch 2's partitions.
        h.owned.insert("a".into(), before);
        assert_eq!(h.beat("a").member_epoch, 2);
        // An older epoch, or more than it was given, is fenced.
        h.owned.insert("a".into(), (1, of(&[(1, &[0, 1, 7])])));
        let (epoch, owned) = h.owned["a"].clone();
        let request = ConsumerHeartbeat {
            group_id: "g".into(),
            member_id: "a".into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: Some(owned),
            ..ConsumerHeartbeat::default()
        };
        assert!(matches!(
            h.send(&request),
            Err(ConsumerGroupError::FencedMemberEpoch { .. })
        ));
    }

    #[test]
    fn a_regex_subscription_takes_topics_created_later() {
        let mut h = Harness::new(2);
        let reply = h
            .send(&ConsumerHeartbeat {
                group_id: "g".into(),
                member_id: "a".into(),
                member_epoch: 0,
                rebalance_timeout_ms: 1000,
                subscribed_topic_regex: Some("ord.*".into()),
                owned: Some(Assignment::new()),
                ..ConsumerHeartbeat::default()
            })
            .unwrap();
        h.apply("a", &reply);
        assert_eq!(h.owned_count("a"), 2);
        h.topics = TopicsImage::new([
            TopicInfo {
                id: topic_id(1),
                name: "orders".into(),
                partitions: 2,
            },
            TopicInfo {
                id: topic_id(2),
                name: "ordinals".into(),
                partitions: 3,
            },
            TopicInfo {
                id: topic_id(3),
                name: "refunds".into(),
                partitions: 3,
            },
        ]);
        h.beat("a");
        assert_eq!(h.owned_count("a"), 5);
        assert!(!h.owned["a"].1.contains_key(&TopicId([3; 16])));
    }

    #[test]
    fn a_static_member_comes_back_to_its_partitions() {
        let mut h = Harness::new(4);
        let join = |member: &str| ConsumerHeartbeat {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: 0,
            instance_id: Some("i1".into()),
            rebalance_timeout_ms: 1000,
            subscribed_topic_names: Some(vec!["orders".into()]),
            owned: Some(Assignment::new()),
            ..ConsumerHeartbeat::default()
        };
        let first = h.send(&join("a")).unwrap();
        let mut leave = join("a");
        leave.member_epoch = -2;
        assert_eq!(h.send(&leave).unwrap().member_epoch, -2);
        // Another member id with the same instance id takes over, same epoch.
        let back = h.send(&join("a2")).unwrap();
        assert_eq!(back.assignment, first.assignment);
        assert_eq!(back.member_epoch, first.member_epoch);
        // While it is active, a third one may not take the instance id.
        assert!(matches!(
            h.send(&join("a3")),
            Err(ConsumerGroupError::UnreleasedInstanceId { .. })
        ));
    }

    #[test]
    fn replaying_the_records_rebuilds_the_groups() {
        let mut h = Harness::new(6);
        let mut records = Vec::new();
        for m in ["a", "b"] {
            records.extend(h.join(m).records);
        }
        for _ in 0..3 {
            for m in ["a", "b"] {
                records.extend(h.beat(m).records);
            }
        }
        let mut loaded = ConsumerGroups::new(2);
        for record in records {
            loaded.replay(record, 0, SESSION_MS);
        }
        loaded.finish_loading();
        assert_eq!(loaded.describe("g", &[]), h.groups.describe("g", &[]));
        // An empty group's deletion leaves nothing to replay.
        let mut empty = ConsumerGroups::new(3);
        empty.finish_loading();
        assert!(matches!(
            h.groups.delete("g"),
            Err(ConsumerGroupError::NonEmptyGroup { .. })
        ));
        for record in h.groups.tick(i64::MAX) {
            loaded.replay(record, 0, SESSION_MS);
        }
        for record in h.groups.delete("g").unwrap() {
            loaded.replay(record, 0, SESSION_MS);
        }
        assert!(!loaded.contains("g"));
        assert!(!empty.contains("g"));
    }
}
