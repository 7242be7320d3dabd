//! Classic-protocol members of a consumer group: KIP-848's online
//! migration. A consumer group whose members are partly (or, for a while,
//! wholly) classic consumers drives those through JoinGroup, SyncGroup and
//! Heartbeat: a JoinGroup updates the member's subscription and reconciles
//! it towards its target assignment (computed by the broker, never by a
//! leader), SyncGroup hands out what it may own now, and Heartbeat answers
//! REBALANCE_IN_PROGRESS when the member must join again to move on. A
//! classic group converts into a consumer group when a consumer-protocol
//! member joins it (upgrade), and back when the last consumer-protocol
//! member leaves (downgrade); the server decides when, from
//! `group.consumer.migration.policy`, and translates the consumer
//! protocol's bytes (subscriptions, assignments), which this crate does not
//! read.

use super::assignment::{Assignment, TopicId, TopicsImage};
use super::coordinator::ConsumerGroups;
use super::error::ConsumerGroupError;
use super::group::{ConsumerGroup, ConsumerHeartbeat, HeartbeatContext, Member};
use super::reconcile::{CurrentAssignment, MemberState};
use super::records::{
    ClassicMemberMetadata, ConsumerGroupRecord, GroupEpochValue, MemberMetadataValue,
};
use crate::error::GroupError;
use crate::request::{HeartbeatRequest, JoinGroupRequest, LeavingMember, SyncGroupRequest};
use crate::response::{JoinGroupResponse, LeaveGroupMemberResult};

/// The protocol type every member of a consumer group speaks.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// A JoinGroup to a consumer group, with the member's subscription (its
/// ConsumerProtocolSubscription) already read by the caller.
#[derive(Debug, Clone)]
pub struct ClassicJoin<'a> {
    pub request: &'a JoinGroupRequest,
    /// JoinGroup v4+ without a member id: answer MEMBER_ID_REQUIRED.
    pub member_id_required: bool,
    pub subscribed_topic_names: Vec<String>,
    /// The partitions the member says it owns (cooperative assignors).
    pub owned: Assignment,
    pub rack_id: Option<String>,
}

/// One member of a classic group that becomes a consumer group (upgrade),
/// its subscription and assignment read by the caller.
#[derive(Debug, Clone)]
pub struct ClassicMemberImage {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<crate::JoinProtocol>,
    pub subscribed_topic_names: Vec<String>,
    pub assigned: Assignment,
}

/// One member of a consumer group that becomes a classic group
/// (downgrade): who it is, what it joined with, what it owns.
#[derive(Debug, Clone)]
pub struct DowngradeMember {
    pub member_id: String,
    pub metadata: MemberMetadataValue,
    pub classic: ClassicMemberMetadata,
    pub assigned: Assignment,
}

impl ConsumerGroups {
    /// Whether `group_id` is a consumer group here with members.
    pub fn has_members(&self, group_id: &str) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Upgrade: makes `group_id` a consumer group of the classic group's
    /// members at its generation, each owning what it was assigned, and
    /// returns the records that persist it. The caller removes the classic
    /// group (and tombstones its metadata record) in the same append.
    pub fn upgrade(
        &mut self,
        group_id: &str,
        generation_id: i32,
        members: Vec<ClassicMemberImage>,
        now_ms: i64,
    ) -> Vec<ConsumerGroupRecord> {
        let mut group = ConsumerGroup::new(group_id.to_owned());
        group.epoch = generation_id;
        group.assignment_epoch = generation_id;
        let mut records = vec![ConsumerGroupRecord::Metadata {
            group_id: group_id.to_owned(),
            value: Some(GroupEpochValue {
                epoch: generation_id,
                metadata_hash: 0,
            }),
        }];
        for image in members {
            let session_timeout_ms = i64::from(image.session_timeout_ms);
            let mut member = Member::new(now_ms, session_timeout_ms);
            member.set_metadata(MemberMetadataValue {
                instance_id: image.instance_id,
                rack_id: None,
                client_id: image.client_id,
                client_host: image.client_host,
                subscribed_topic_names: image.subscribed_topic_names,
                subscribed_topic_regex: None,
                rebalance_timeout_ms: image.rebalance_timeout_ms,
                server_assignor: None,
                classic: Some(ClassicMemberMetadata {
                    session_timeout_ms: image.session_timeout_ms,
                    supported_protocols: image.protocols,
                }),
            });
            member.current = CurrentAssignment {
                epoch: generation_id,
                previous_epoch: generation_id,
                state: MemberState::Stable,
                assigned: image.assigned.clone(),
                revoking: Assignment::new(),
            };
            let member_id = image.member_id;
            records.push(ConsumerGroupRecord::MemberMetadata {
                group_id: group_id.to_owned(),
                member_id: member_id.clone(),
                value: Some(member.metadata.clone()),
            });
            records.push(ConsumerGroupRecord::TargetAssignmentMember {
                group_id: group_id.to_owned(),
                member_id: member_id.clone(),
                value: Some(image.assigned.clone()),
            });
            records.push(ConsumerGroupRecord::CurrentMemberAssignment {
                group_id: group_id.to_owned(),
                member_id: member_id.clone(),
                value: Some(member.current.clone()),
            });
            group.targets.insert(member_id.clone(), image.assigned);
            group.members.insert(member_id, member);
        }
        records.push(ConsumerGroupRecord::TargetAssignmentMetadata {
            group_id: group_id.to_owned(),
            value: Some(generation_id),
        });
        tracing::info!(group = %group_id, generation_id, members = group.members.len(), "classic group upgraded to a consumer group");
        self.groups.insert(group_id.to_owned(), group);
        records
    }

    /// The members of `group_id` if every one of them speaks the classic
    /// protocol (and there is at least one): it may become a classic group.
    pub fn downgrade_candidate(&self, group_id: &str) -> Option<(i32, Vec<DowngradeMember>)> {
        let group = self.groups.get(group_id)?;
        if group.members.is_empty() {
            return None;
        }
        let members = group
            .members
            .iter()
            .map(|(member_id, member)| {
                Some(DowngradeMember {
                    member_id: member_id.clone(),
                    metadata: member.metadata.clone(),
                    classic: member.metadata.classic.clone()?,
                    assigned: member.current.assigned.clone(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some((group.epoch, members))
    }

    /// Downgrade: forgets `group_id` as a consumer group and returns the
    /// records that delete it (its committed offsets stay). The caller
    /// makes the classic group from [`downgrade_candidate`](Self::downgrade_candidate)
    /// in the same append.
    pub fn remove_for_downgrade(&mut self, group_id: &str) -> Vec<ConsumerGroupRecord> {
        let Some(group) = self.groups.remove(group_id) else {
            return Vec::new();
        };
        tracing::info!(group = %group_id, epoch = group.epoch, "consumer group downgraded to a classic group");
        group.tombstones()
    }

    /// JoinGroup of a classic member to a non-empty consumer group (Kafka's
    /// `classicGroupJoinToConsumerGroup`): the member's subscription is
    /// updated (a new or changed one bumps the group epoch and the target
    /// assignment), then it is reconciled with what it says it owns. It is
    /// answered at once, with its member epoch as the generation and no
    /// leader: the broker assigns, so no member runs an assignor.
    pub fn classic_join(
        &mut self,
        join: &ClassicJoin<'_>,
        topics: &TopicsImage,
        assignors: &[super::Assignor],
        now_ms: i64,
    ) -> Result<(JoinGroupResponse, Vec<ConsumerGroupRecord>), GroupError> {
        let request = join.request;
        let group_id = request.group_id.clone();
        let inconsistent = || GroupError::InconsistentGroupProtocol {
            group_id: group_id.clone(),
        };
        let Some(group) = self.groups.get(&group_id) else {
            return Err(GroupError::UnknownMemberId {
                group_id: group_id.clone(),
                member_id: request.member_id.clone(),
            });
        };
        if request.protocol_type != CONSUMER_PROTOCOL_TYPE || request.protocols.is_empty() {
            return Err(inconsistent());
        }
        // Every classic member must share a protocol with the newcomer.
        let shares_a_protocol = group
            .members
            .iter()
            .filter(|(id, _)| **id != request.member_id)
            .filter_map(|(_, m)| m.metadata.classic.as_ref())
            .all(|classic| {
                classic
                    .supported_protocols
                    .iter()
                    .any(|p| request.protocols.iter().any(|q| q.name == p.name))
            });
        if !shares_a_protocol {
            return Err(inconsistent());
        }
        let mut member_id = request.member_id.clone();
        if member_id.is_empty() {
            member_id = self.new_member_id();
            if join.member_id_required && request.group_instance_id.is_none() {
                return Ok((
                    JoinGroupResponse::error(
                        member_id.clone(),
                        GroupError::MemberIdRequired { member_id },
                    ),
                    Vec::new(),
                ));
            }
        }
        let Some(group) = self.groups.get_mut(&group_id) else {
            return Err(inconsistent());
        };
        let existing = match &request.group_instance_id {
            Some(instance_id) => group
                .members
                .iter()
                .find(|(_, m)| m.metadata.instance_id.as_deref() == Some(instance_id))
                .map(|(id, m)| (id.clone(), m.current.epoch)),
            None => group
                .members
                .get(&member_id)
                .map(|m| (member_id.clone(), m.current.epoch)),
        };
        // A known member is not epoch-checked: it presents its own epoch.
        let member_epoch = match &existing {
            Some((id, epoch)) if *id == member_id => *epoch,
            _ => 0,
        };
        let heartbeat = ConsumerHeartbeat {
            group_id: group_id.clone(),
            member_id: member_id.clone(),
            member_epoch,
            instance_id: request.group_instance_id.clone(),
            rack_id: join.rack_id.clone(),
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            subscribed_topic_names: Some(join.subscribed_topic_names.clone()),
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: Some(join.owned.clone()),
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            classic: Some(ClassicMemberMetadata {
                session_timeout_ms: request.session_timeout_ms,
                supported_protocols: request.protocols.clone(),
            }),
        };
        let ctx = HeartbeatContext {
            topics,
            assignors,
            session_timeout_ms: i64::from(request.session_timeout_ms),
            now_ms,
        };
        let reply = group
            .heartbeat(&heartbeat, &ctx)
            .map_err(|e| as_group_error(e, &group_id))?;
        let response = JoinGroupResponse {
            error: None,
            generation_id: reply.member_epoch,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_owned()),
            protocol_name: request.protocols.first().map(|p| p.name.clone()),
            leader: String::new(),
            skip_assignment: false,
            member_id: reply.member_id,
            members: Vec::new(),
        };
        Ok((response, reply.records))
    }

    /// SyncGroup of a classic member of a consumer group (Kafka's
    /// `classicGroupSyncToConsumerGroup`): what it owns now. The caller
    /// encodes it as a ConsumerProtocolAssignment.
    pub fn classic_sync(
        &mut self,
        request: &SyncGroupRequest,
        now_ms: i64,
    ) -> Result<Assignment, GroupError> {
        let group = self.classic_group(&request.group_id, &request.member_id)?;
        let member = classic_member(
            group,
            &request.member_id,
            request.group_instance_id.as_deref(),
        )?;
        let epoch = member.current.epoch;
        if request.generation_id != epoch {
            return Err(GroupError::IllegalGeneration {
                group_id: request.group_id.clone(),
                expected: epoch,
                found: request.generation_id,
            });
        }
        let protocols = member
            .metadata
            .classic
            .as_ref()
            .map(|c| c.supported_protocols.as_slice())
            .unwrap_or_default();
        let type_matches = request
            .protocol_type
            .as_deref()
            .is_none_or(|t| t == CONSUMER_PROTOCOL_TYPE);
        let name_matches = request
            .protocol_name
            .as_deref()
            .is_none_or(|name| protocols.iter().any(|p| p.name == name));
        if !type_matches || !name_matches {
            return Err(GroupError::InconsistentGroupProtocol {
                group_id: request.group_id.clone(),
            });
        }
        // A new epoch is for the next join, unless the member is still
        // revoking what this one took away.
        if group.epoch > epoch && member.current.state != MemberState::UnrevokedPartitions {
            return Err(GroupError::RebalanceInProgress {
                group_id: request.group_id.clone(),
            });
        }
        let assigned = member.current.assigned.clone();
        let member_id = request.member_id.clone();
        touch(group, &member_id, now_ms);
        Ok(assigned)
    }

    /// Heartbeat of a classic member of a consumer group (Kafka's
    /// `classicGroupHeartbeatToConsumerGroup`): REBALANCE_IN_PROGRESS when
    /// it must join again, because the group moved to a new epoch, it has
    /// partitions to revoke, or the partitions it waited for are free.
    pub fn classic_heartbeat(
        &mut self,
        request: &HeartbeatRequest,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let group = self.classic_group(&request.group_id, &request.member_id)?;
        let member = classic_member(
            group,
            &request.member_id,
            request.group_instance_id.as_deref(),
        )?;
        let epoch = member.current.epoch;
        if request.generation_id != epoch {
            return Err(GroupError::IllegalGeneration {
                group_id: request.group_id.clone(),
                expected: epoch,
                found: request.generation_id,
            });
        }
        let rejoin = epoch < group.epoch
            || member.current.state == MemberState::UnrevokedPartitions
            || (member.current.state == MemberState::UnreleasedPartitions
                && !waiting_on_unreleased(group, &request.member_id));
        touch(group, &request.member_id, now_ms);
        if rejoin {
            return Err(GroupError::RebalanceInProgress {
                group_id: request.group_id.clone(),
            });
        }
        Ok(())
    }

    /// LeaveGroup of classic members of a consumer group: each leaves for
    /// good (its partitions go to the others at a new epoch). One result
    /// per member, in order, and the records to persist.
    pub fn classic_leave(
        &mut self,
        group_id: &str,
        leaving: &[LeavingMember],
    ) -> (Vec<LeaveGroupMemberResult>, Vec<ConsumerGroupRecord>) {
        let mut records = Vec::new();
        let mut results = Vec::new();
        for member in leaving {
            let error = match self.groups.get_mut(group_id) {
                None => Some(GroupError::UnknownMemberId {
                    group_id: group_id.to_owned(),
                    member_id: member.member_id.clone(),
                }),
                Some(group) => {
                    let found = classic_member(
                        group,
                        &member.member_id,
                        member.group_instance_id.as_deref(),
                    )
                    .map(|_| ());
                    match found {
                        Ok(()) => {
                            let id = match &member.group_instance_id {
                                Some(instance_id) => group
                                    .members
                                    .iter()
                                    .find(|(_, m)| {
                                        m.metadata.instance_id.as_deref() == Some(instance_id)
                                    })
                                    .map(|(id, _)| id.clone())
                                    .unwrap_or_default(),
                                None => member.member_id.clone(),
                            };
                            records.extend(group.remove_member(&id));
                            None
                        }
                        Err(error) => Some(error),
                    }
                }
            };
            results.push(LeaveGroupMemberResult {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                error,
            });
        }
        (results, records)
    }

    fn classic_group(
        &mut self,
        group_id: &str,
        member_id: &str,
    ) -> Result<&mut ConsumerGroup, GroupError> {
        self.groups
            .get_mut(group_id)
            .ok_or_else(|| GroupError::UnknownMemberId {
                group_id: group_id.to_owned(),
                member_id: member_id.to_owned(),
            })
    }
}

/// The classic member a request names: by instance id if it has one
/// (FENCED_INSTANCE_ID if another member id holds it), else by member id;
/// UNKNOWN_MEMBER_ID for a member that is not there or does not speak the
/// classic protocol.
fn classic_member<'g>(
    group: &'g ConsumerGroup,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<&'g Member, GroupError> {
    let unknown = || GroupError::UnknownMemberId {
        group_id: group.group_id.clone(),
        member_id: member_id.to_owned(),
    };
    let (id, member) = match instance_id {
        Some(instance_id) => group
            .members
            .iter()
            .find(|(_, m)| m.metadata.instance_id.as_deref() == Some(instance_id))
            .ok_or_else(unknown)?,
        None => group.members.get_key_value(member_id).ok_or_else(unknown)?,
    };
    if id != member_id {
        return Err(GroupError::FencedInstanceId {
            group_id: group.group_id.clone(),
            group_instance_id: instance_id.unwrap_or_default().to_owned(),
            member_id: member_id.to_owned(),
        });
    }
    if member.metadata.classic.is_none() {
        return Err(unknown());
    }
    Ok(member)
}

/// Restarts a classic member's session.
fn touch(group: &mut ConsumerGroup, member_id: &str, now_ms: i64) {
    if let Some(member) = group.members.get_mut(member_id) {
        let session_ms = member
            .metadata
            .classic
            .as_ref()
            .map_or(0, |c| i64::from(c.session_timeout_ms));
        member.session_deadline_ms = now_ms.saturating_add(session_ms);
    }
}

/// Whether some partition of the member's target that it does not own
/// yet is still owned (or being revoked) by another member.
fn waiting_on_unreleased(group: &ConsumerGroup, member_id: &str) -> bool {
    let Some(member) = group.members.get(member_id) else {
        return false;
    };
    let Some(target) = group.targets.get(member_id) else {
        return false;
    };
    let held_by_others = |topic: &TopicId, partition: &i32| {
        group.members.iter().any(|(id, other)| {
            id != member_id
                && [&other.current.assigned, &other.current.revoking]
                    .iter()
                    .any(|a| a.get(topic).is_some_and(|ps| ps.contains(partition)))
        })
    };
    target.iter().any(|(topic, partitions)| {
        partitions.iter().any(|p| {
            !member
                .current
                .assigned
                .get(topic)
                .is_some_and(|owned| owned.contains(p))
                && held_by_others(topic, p)
        })
    })
}

/// A consumer group's refusal as the classic APIs answer it.
fn as_group_error(error: ConsumerGroupError, group_id: &str) -> GroupError {
    match error {
        ConsumerGroupError::CoordinatorLoadInProgress => GroupError::CoordinatorLoadInProgress,
        ConsumerGroupError::UnknownMemberId { member_id, .. } => GroupError::UnknownMemberId {
            group_id: group_id.to_owned(),
            member_id,
        },
        ConsumerGroupError::FencedInstanceId {
            instance_id,
            member_id,
            ..
        }
        | ConsumerGroupError::UnreleasedInstanceId {
            instance_id,
            owner: member_id,
            ..
        } => GroupError::FencedInstanceId {
            group_id: group_id.to_owned(),
            group_instance_id: instance_id,
            member_id,
        },
        ConsumerGroupError::GroupMaxSizeReached { max_size, .. } => {
            GroupError::GroupMaxSizeReached {
                group_id: group_id.to_owned(),
                group_max_size: max_size,
            }
        }
        ConsumerGroupError::FencedMemberEpoch { .. }
        | ConsumerGroupError::StaleMemberEpoch { .. }
        | ConsumerGroupError::IllegalGeneration { .. } => GroupError::RebalanceInProgress {
            group_id: group_id.to_owned(),
        },
        _ => GroupError::InconsistentGroupProtocol {
            group_id: group_id.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::Assignor;
    use crate::consumer::assignment::TopicInfo;
    use crate::consumer::assignment::{count, of, topic_id};
    use bytes::Bytes;

    fn topics() -> TopicsImage {
        TopicsImage::new([TopicInfo {
            id: topic_id(1),
            name: "orders".into(),
            partitions: 6,
        }])
    }

    fn join_request(member_id: &str) -> JoinGroupRequest {
        JoinGroupRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "old".into(),
            client_host: "/h".into(),
            session_timeout_ms: 6_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: CONSUMER_PROTOCOL_TYPE.into(),
            protocols: vec![crate::JoinProtocol {
                name: "range".into(),
                metadata: Bytes::from_static(b"sub"),
            }],
            require_known_member_id: true,
            supports_skip_assignment: false,
        }
    }

    /// A classic group of "old" at generation 3 owning all six partitions,
    /// upgraded; then a consumer-protocol member "new" joins.
    fn upgraded_then_joined(groups: &mut ConsumerGroups) -> Vec<ConsumerGroupRecord> {
        let mut records = groups.upgrade(
            "g",
            3,
            vec![ClassicMemberImage {
                member_id: "old".into(),
                instance_id: None,
                client_id: "old".into(),
                client_host: "/h".into(),
                session_timeout_ms: 6_000,
                rebalance_timeout_ms: 30_000,
                protocols: join_request("old").protocols,
                subscribed_topic_names: vec!["orders".into()],
                assigned: of(&[(1, &[0, 1, 2, 3, 4, 5])]),
            }],
            0,
        );
        let topics = topics();
        let ctx = HeartbeatContext {
            topics: &topics,
            assignors: &[Assignor::Uniform],
            session_timeout_ms: 45_000,
            now_ms: 0,
        };
        let join = ConsumerHeartbeat {
            group_id: "g".into(),
            member_id: "new".into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["orders".into()]),
            owned: Some(Assignment::new()),
            ..ConsumerHeartbeat::default()
        };
        let reply = groups.heartbeat(&join, &ctx, true).unwrap();
        assert!(reply.member_epoch > 3);
        records.extend(reply.records);
        records
    }

    #[test]
    fn a_classic_member_is_told_to_rejoin_and_gets_its_share_from_the_broker() {
        let mut groups = ConsumerGroups::new(1);
        groups.finish_loading();
        upgraded_then_joined(&mut groups);
        let beat = |generation_id| HeartbeatRequest {
            group_id: "g".into(),
            member_id: "old".into(),
            generation_id,
            group_instance_id: None,
        };
        assert!(matches!(
            groups.classic_heartbeat(&beat(3), 0),
            Err(GroupError::RebalanceInProgress { .. })
        ));
        assert!(matches!(
            groups.classic_heartbeat(&beat(2), 0),
            Err(GroupError::IllegalGeneration { .. })
        ));
        // An eager client rejoins owning nothing; it may be walked through
        // a revocation round first, as Kafka's reconciliation does.
        let request = join_request("old");
        let mut generation = 0;
        for _ in 0..3 {
            let join = ClassicJoin {
                request: &request,
                member_id_required: true,
                subscribed_topic_names: vec!["orders".into()],
                owned: Assignment::new(),
                rack_id: None,
            };
            let (response, _) = groups
                .classic_join(&join, &topics(), &[Assignor::Uniform], 0)
                .unwrap();
            assert!(response.leader.is_empty(), "the broker assigns");
            generation = response.generation_id;
            if groups.classic_heartbeat(&beat(generation), 0).is_ok() {
                break;
            }
        }
        let sync = SyncGroupRequest {
            group_id: "g".into(),
            member_id: "old".into(),
            generation_id: generation,
            group_instance_id: None,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.into()),
            protocol_name: Some("range".into()),
            assignments: Vec::new(),
        };
        assert_eq!(count(&groups.classic_sync(&sync, 0).unwrap()), 3);
        assert!(groups.classic_heartbeat(&beat(generation), 0).is_ok());
        // It commits at its generation; another one is ILLEGAL_GENERATION,
        // which a classic client understands (not STALE_MEMBER_EPOCH).
        assert!(
            groups
                .validate_offset_commit("g", "old", generation)
                .is_ok()
        );
        assert!(matches!(
            groups.validate_offset_commit("g", "old", generation - 1),
            Err(ConsumerGroupError::IllegalGeneration { .. })
        ));
    }

    #[test]
    fn the_group_may_turn_classic_once_only_classic_members_are_left() {
        let mut groups = ConsumerGroups::new(1);
        groups.finish_loading();
        let records = upgraded_then_joined(&mut groups);
        assert!(groups.downgrade_candidate("g").is_none());
        // Replaying the records gives back the classic member's protocols.
        let mut loaded = ConsumerGroups::new(2);
        for record in records {
            loaded.replay(record, 0, 45_000);
        }
        loaded.finish_loading();
        let leave = ConsumerHeartbeat {
            group_id: "g".into(),
            member_id: "new".into(),
            member_epoch: -1,
            ..ConsumerHeartbeat::default()
        };
        let topics = topics();
        let ctx = HeartbeatContext {
            topics: &topics,
            assignors: &[Assignor::Uniform],
            session_timeout_ms: 45_000,
            now_ms: 0,
        };
        for groups in [&mut groups, &mut loaded] {
            groups.heartbeat(&leave, &ctx, true).unwrap();
            let (_, members) = groups.downgrade_candidate("g").unwrap();
            assert_eq!(members.len(), 1);
            assert_eq!(members[0].classic.supported_protocols[0].name, "range");
            assert!(!groups.remove_for_downgrade("g").is_empty());
            assert!(!groups.contains("g"));
        }
    }
}
