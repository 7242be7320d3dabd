//! One classic group's membership state machine: JoinGroup, SyncGroup,
//! Heartbeat and LeaveGroup as Kafka's GroupCoordinator handles them, with
//! the group's timers (sessions, rebalance, pending sync, initial delay).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::config::{GroupConfig, NEW_MEMBER_JOIN_TIMEOUT_MS};
use crate::error::{GroupError, RestoreError};
use crate::member::Member;
use crate::request::{
    HeartbeatRequest, JoinGroupRequest, JoinProtocol, LeavingMember, RequestToken, SyncGroupRequest,
};
use crate::response::{
    GroupDescription, GroupListing, GroupOverview, JoinGroupMember, JoinGroupResponse,
    LeaveGroupMemberResult, MemberDescription, Output, SyncGroupResponse,
};
use crate::snapshot::{GroupMetadataSnapshot, MemberSnapshot};
use crate::state::GroupState;

/// What every state-changing call needs besides the group: the limits, the
/// clock, and where to put responses and records.
pub(crate) struct Ctx<'a> {
    pub(crate) config: &'a GroupConfig,
    pub(crate) now_ms: i64,
    pub(crate) out: &'a mut Vec<Output>,
    /// Rebalances completed by the coordinator's groups so far.
    pub(crate) rebalances: &'a mut u64,
}

/// The timer of the join phase (PreparingRebalance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinTimer {
    /// Kafka's DelayedJoin: completes as soon as every member rejoined, or
    /// at the deadline (the group's rebalance timeout).
    Rebalance { deadline_ms: i64 },
    /// Kafka's InitialDelayedJoin, for a rebalance that starts from Empty:
    /// never completes early; at the deadline, if a new member joined
    /// meanwhile and time remains, waits again.
    Initial {
        deadline_ms: i64,
        configured_delay_ms: i64,
        delay_ms: i64,
        remaining_ms: i64,
    },
}

impl JoinTimer {
    fn deadline_ms(self) -> i64 {
        match self {
            Self::Rebalance { deadline_ms } | Self::Initial { deadline_ms, .. } => deadline_ms,
        }
    }
}

/// Which timer fires next.
enum Timer {
    Pending(String),
    Session(String),
    Join,
    Sync,
}

/// One classic group (Kafka's GroupMetadata plus the group's share of
/// GroupCoordinator). Owns its members, static-member index, pending
/// members and timers. Not thread-safe: the server owns the whole
/// coordinator behind one lock or task.
///
/// Invariants: the leader, when set, is a member; every static member is
/// indexed by its instance id; while the group has members some protocol
/// is supported by all of them; Empty means no members.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    group_id: String,
    state: GroupState,
    state_timestamp_ms: i64,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id → member id.
    static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED → when they lapse.
    pending_members: BTreeMap<String, i64>,
    /// Members that got this generation's JoinGroup answer but have not
    /// sent SyncGroup yet.
    pending_sync_members: BTreeSet<String>,
    join_timer: Option<JoinTimer>,
    sync_deadline_ms: Option<i64>,
    /// A new member joined during the first rebalance (generation 0):
    /// the initial delay may be extended.
    new_member_added: bool,
    next_join_seq: u64,
}

impl Group {
    /// A new Empty group at generation 0.
    pub(crate) fn new(group_id: String, now_ms: i64) -> Self {
        Self {
            group_id,
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync_members: BTreeSet::new(),
            join_timer: None,
            sync_deadline_ms: None,
            new_member_added: false,
            next_join_seq: 0,
        }
    }

    /// A group loaded from its last metadata record: Stable with the
    /// recorded members (each heartbeat timer started now), or Empty. As
    /// in Kafka's onGroupLoaded, a group over group.max.size rebalances.
    pub(crate) fn from_snapshot(
        snapshot: GroupMetadataSnapshot,
        ctx: &mut Ctx<'_>,
    ) -> Result<Self, RestoreError> {
        let inconsistent = |expected| RestoreError::Inconsistent {
            group_id: snapshot.group_id.clone(),
            expected,
        };
        let mut group = Self::new(
            snapshot.group_id.clone(),
            snapshot.current_state_timestamp_ms,
        );
        group.generation_id = snapshot.generation_id;
        group.protocol_type =
            Some(snapshot.protocol_type.clone()).filter(|protocol_type| !protocol_type.is_empty());
        if snapshot.members.is_empty() {
            return Ok(group);
        }
        let protocol_name = snapshot
            .protocol_name
            .clone()
            .ok_or_else(|| inconsistent("a protocol for a group with members"))?;
        let protocol_type = snapshot.protocol_type.clone();
        for recorded in snapshot.members {
            if group.members.contains_key(&recorded.member_id) {
                return Err(inconsistent("distinct member ids"));
            }
            if let Some(instance_id) = &recorded.group_instance_id {
                if group.static_members.contains_key(instance_id) {
                    return Err(inconsistent("distinct group instance ids"));
                }
                group
                    .static_members
                    .insert(instance_id.clone(), recorded.member_id.clone());
            }
            let member = Member {
                member_id: recorded.member_id.clone(),
                group_instance_id: recorded.group_instance_id,
                client_id: recorded.client_id,
                client_host: recorded.client_host,
                rebalance_timeout_ms: recorded.rebalance_timeout_ms,
                session_timeout_ms: recorded.session_timeout_ms,
                protocol_type: protocol_type.clone(),
                protocols: vec![JoinProtocol {
                    name: protocol_name.clone(),
                    metadata: recorded.subscription,
                }],
                assignment: recorded.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                session_deadline_ms: Some(ctx.now_ms + i64::from(recorded.session_timeout_ms)),
                join_seq: group.next_join_seq,
            };
            group.next_join_seq += 1;
            group.members.insert(recorded.member_id, member);
        }
        let leader = snapshot
            .leader
            .filter(|leader| group.members.contains_key(leader))
            .ok_or_else(|| inconsistent("a leader that is one of the members"))?;
        group.leader_id = Some(leader);
        group.protocol_name = Some(protocol_name);
        group.state = GroupState::Stable;
        if group.members.len() > ctx.config.group_max_size {
            tracing::info!(group_id = %group.group_id, "loaded group is over group.max.size; rebalancing");
            group.prepare_rebalance(ctx);
        }
        Ok(group)
    }

    pub(crate) fn state(&self) -> GroupState {
        self.state
    }

    /// Empty with nobody about to join: nothing would be lost by dropping
    /// the group from memory.
    pub(crate) fn is_empty_and_idle(&self) -> bool {
        self.state == GroupState::Empty && self.pending_members.is_empty()
    }

    /// Whether `member_id` is taken in this group (as a member or pending).
    pub(crate) fn knows_member_id(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id) || self.pending_members.contains_key(member_id)
    }

    pub(crate) fn overview(&self) -> GroupOverview {
        GroupOverview {
            state: self.state,
            state_timestamp_ms: self.state_timestamp_ms,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
        }
    }

    pub(crate) fn listing(&self) -> GroupListing {
        GroupListing {
            group_id: self.group_id.clone(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            state: self.state,
        }
    }

    /// Kafka's GroupMetadata.summary: metadata and assignments only when
    /// Stable.
    pub(crate) fn describe(&self) -> GroupDescription {
        let stable_protocol = match (self.state, &self.protocol_name) {
            (GroupState::Stable, Some(protocol)) => Some(protocol.as_str()),
            _ => None,
        };
        let members = self
            .members_by_age()
            .map(|member| MemberDescription {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                metadata: stable_protocol
                    .map(|protocol| member.metadata(protocol))
                    .unwrap_or_default(),
                assignment: if stable_protocol.is_some() {
                    member.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        GroupDescription {
            group_id: self.group_id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: stable_protocol.unwrap_or_default().to_owned(),
            members,
        }
    }

    /// Hands the group over to a consumer group (KIP-848 upgrade): every
    /// JoinGroup or SyncGroup still waiting is answered
    /// REBALANCE_IN_PROGRESS (the member joins again, now the consumer
    /// group's), and the group's members come out with every protocol they
    /// joined with. The caller drops the group.
    pub(crate) fn hand_over(
        &mut self,
        ctx: &mut Ctx<'_>,
    ) -> (GroupMetadataSnapshot, Vec<(String, Vec<JoinProtocol>)>) {
        let error = GroupError::RebalanceInProgress {
            group_id: self.group_id.clone(),
        };
        for member in self.members.values_mut() {
            if let Some(token) = member.awaiting_join.take() {
                respond_join(
                    ctx.out,
                    token,
                    JoinGroupResponse::error(member.member_id.clone(), error.clone()),
                );
            }
            if let Some(token) = member.awaiting_sync.take() {
                respond_sync(ctx.out, token, SyncGroupResponse::error(error.clone()));
            }
        }
        self.join_timer = None;
        self.sync_deadline_ms = None;
        self.pending_members.clear();
        self.pending_sync_members.clear();
        let protocols = self
            .members
            .values()
            .map(|m| (m.member_id.clone(), m.protocols.clone()))
            .collect();
        (self.snapshot(), protocols)
    }

    /// Starts a rebalance, if the state allows one: a group made from a
    /// consumer group (KIP-848 downgrade) has its members join again so
    /// that the partitions of the consumer members who left are assigned.
    pub(crate) fn rebalance(&mut self, ctx: &mut Ctx<'_>) {
        self.maybe_prepare_rebalance(ctx);
    }

    /// Marks the group Dead (it is being deleted). Must be Empty.
    pub(crate) fn mark_dead(&mut self, now_ms: i64) {
        assert!(
            self.members.is_empty(),
            "only a group without members may die"
        );
        self.pending_members.clear();
        self.join_timer = None;
        self.sync_deadline_ms = None;
        self.transition(GroupState::Dead, now_ms);
    }

    // ---------------------------------------------------------------- JoinGroup

    /// Handles a JoinGroup. The answer is pushed to `ctx.out` now or when
    /// the rebalance completes. `new_member_id` is the id to give the
    /// member if it has none.
    pub(crate) fn join(
        &mut self,
        ctx: &mut Ctx<'_>,
        token: RequestToken,
        request: &JoinGroupRequest,
        new_member_id: String,
    ) {
        if !self.accept_joining_member(&request.member_id, ctx.config.group_max_size) {
            // As Kafka: kick out the member if it is there (it was not
            // waiting in this rebalance), so the group shrinks to the limit.
            self.remove_member(&request.member_id, ctx.out);
            let error = GroupError::GroupMaxSizeReached {
                group_id: self.group_id.clone(),
                group_max_size: ctx.config.group_max_size,
            };
            respond_join(ctx.out, token, JoinGroupResponse::error("", error));
        } else if request.member_id.is_empty() {
            self.join_new_member(ctx, token, request, new_member_id);
        } else {
            self.join_current_member(ctx, token, request);
        }
        if self.state == GroupState::PreparingRebalance {
            self.try_complete_join(ctx);
        }
    }

    fn accept_joining_member(&self, member_id: &str, group_max_size: usize) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            // Counting members waiting (not all members) lets the last
            // members to rejoin be the ones kicked out.
            GroupState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(Member::is_awaiting_join)
                    || self.num_awaiting_join() < group_max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < group_max_size
            }
        }
    }

    fn join_new_member(
        &mut self,
        ctx: &mut Ctx<'_>,
        token: RequestToken,
        request: &JoinGroupRequest,
        new_member_id: String,
    ) {
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            let error = self.inconsistent_protocol();
            respond_join(ctx.out, token, JoinGroupResponse::error("", error));
            return;
        }
        match &request.group_instance_id {
            // An index entry without its member (which the index never
            // keeps) is taken as no static member: the join adds one.
            Some(instance_id) => match self
                .static_members
                .get(instance_id)
                .cloned()
                .and_then(|old_id| Some((self.members.remove(&old_id)?, old_id)))
            {
                Some((old_member, old_member_id)) => self.update_static_member_and_rebalance(
                    ctx,
                    token,
                    request,
                    (old_member, &old_member_id),
                    new_member_id,
                ),
                None => self.add_member_and_rebalance(ctx, token, request, new_member_id),
            },
            None if request.require_known_member_id => {
                let deadline_ms = ctx.now_ms + i64::from(request.session_timeout_ms);
                self.pending_members
                    .insert(new_member_id.clone(), deadline_ms);
                let error = GroupError::MemberIdRequired {
                    member_id: new_member_id.clone(),
                };
                respond_join(
                    ctx.out,
                    token,
                    JoinGroupResponse::error(new_member_id, error),
                );
            }
            None => self.add_member_and_rebalance(ctx, token, request, new_member_id),
        }
    }

    fn join_current_member(
        &mut self,
        ctx: &mut Ctx<'_>,
        token: RequestToken,
        request: &JoinGroupRequest,
    ) {
        let member_id = request.member_id.as_str();
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            let error = self.inconsistent_protocol();
            respond_join(ctx.out, token, JoinGroupResponse::error(member_id, error));
            return;
        }
        if self.is_pending_member(member_id) {
            if request.group_instance_id.is_some() {
                // Kafka raises an internal error here (a pending member is
                // never static); an unknown member id makes the client
                // start over cleanly.
                let error = self.unknown_member(member_id);
                respond_join(ctx.out, token, JoinGroupResponse::error(member_id, error));
            } else {
                self.add_member_and_rebalance(ctx, token, request, member_id.to_owned());
            }
            return;
        }
        if let Err(error) =
            self.validate_current_member(member_id, request.group_instance_id.as_deref())
        {
            respond_join(ctx.out, token, JoinGroupResponse::error(member_id, error));
            return;
        }
        let is_leader = self.leader_id.as_deref() == Some(member_id);
        let matches = self
            .members
            .get(member_id)
            .is_some_and(|member| member.matches(&request.protocols));
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(ctx, token, request),
            // Same metadata: the member probably lost our JoinGroup answer.
            GroupState::CompletingRebalance if matches => {
                let response = self.current_generation_response(member_id, is_leader);
                respond_join(ctx.out, token, response);
            }
            GroupState::Stable if matches && !is_leader => {
                let response = self.current_generation_response(member_id, false);
                respond_join(ctx.out, token, response);
            }
            // The leader rejoining a Stable group forces a rebalance (so it
            // can react to changes that do not alter member metadata).
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(ctx, token, request);
            }
            GroupState::Empty | GroupState::Dead => {
                let error = self.unknown_member(member_id);
                respond_join(ctx.out, token, JoinGroupResponse::error(member_id, error));
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        ctx: &mut Ctx<'_>,
        token: RequestToken,
        request: &JoinGroupRequest,
        member_id: String,
    ) {
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id.clone(),
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            session_timeout_ms: request.session_timeout_ms,
            protocol_type: request.protocol_type.clone(),
            protocols: request.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: Some(token),
            awaiting_sync: None,
            is_new: true,
            // A new member cannot heartbeat while it waits; bound the wait.
            session_deadline_ms: Some(ctx.now_ms + NEW_MEMBER_JOIN_TIMEOUT_MS),
            join_seq: self.next_join_seq,
        };
        self.next_join_seq += 1;
        if self.state == GroupState::PreparingRebalance && self.generation_id == 0 {
            self.new_member_added = true;
        }
        self.add(member);
        tracing::debug!(group_id = %self.group_id, %member_id, "member added");
        self.maybe_prepare_rebalance(ctx);
    }

    fn add(&mut self, member: Member) {
        if let Some(instance_id) = &member.group_instance_id {
            assert!(
                !self.static_members.contains_key(instance_id),
                "a static member is added only when its instance id is free"
            );
            self.static_members
                .insert(instance_id.clone(), member.member_id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    fn update_member_and_rebalance(
        &mut self,
        ctx: &mut Ctx<'_>,
        token: RequestToken,
        request: &JoinGroupRequest,
    ) {
        self.update_member(ctx, &request.member_id, request, token);
        self.maybe_prepare_rebalance(ctx);
    }

    /// Kafka's updateMember: new protocols and timeouts, and the JoinGroup
    /// now waiting. A JoinGroup already waiting for this member is answered
    /// REBALANCE_IN_PROGRESS (Kafka drops it unanswered; a token must get
    /// exactly one answer here, and that error makes a client rejoin).
    fn update_member(
        &mut self,
        ctx: &mut Ctx<'_>,
        member_id: &str,
        request: &JoinGroupRequest,
        token: RequestToken,
    ) {
        let group_id = self.group_id.clone();
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        member.protocols = request.protocols.clone();
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_timeout_ms = request.session_timeout_ms;
        if let Some(superseded) = member.awaiting_join.replace(token) {
            let error = GroupError::RebalanceInProgress { group_id };
            respond_join(
                ctx.out,
                superseded,
                JoinGroupResponse::error(member_id, error),
            );
        }
    }

    /// KIP-345: a static member restarted and joined without its member
    /// id; `old_member` is its entry, taken out of `members`.
    fn update_static_member_and_rebalance(
        &mut self,
        ctx: &mut Ctx<'_>,
        token: RequestToken,
        request: &JoinGroupRequest,
        (old_member, old_member_id): (Member, &str),
        new_member_id: String,
    ) {
        let current_leader = self.leader_id.clone().unwrap_or_default();
        self.replace_static_member(ctx, old_member, old_member_id, &new_member_id);
        self.reschedule_session(&new_member_id, ctx.now_ms);
        self.update_member(ctx, &new_member_id, request, token);
        tracing::info!(
            group_id = %self.group_id,
            old_member_id,
            %new_member_id,
            "static member rejoined with a new member id"
        );
        match self.state {
            GroupState::Stable => {
                let protocol = self.select_protocol();
                if protocol.is_some() && self.protocol_name == protocol {
                    // Same protocol: no rebalance; persist the new member id
                    // and let the member fetch its old assignment in SyncGroup.
                    ctx.out.push(Output::Persist(self.snapshot()));
                    let is_leader = self.leader_id.as_deref() == Some(new_member_id.as_str());
                    let mut response = self.current_generation_response(
                        &new_member_id,
                        request.supports_skip_assignment && is_leader,
                    );
                    if request.supports_skip_assignment {
                        response.skip_assignment = is_leader;
                    } else {
                        // Before v9, hide leadership (return the old leader
                        // id) so the member does not run a pointless
                        // assignment a Stable group would ignore.
                        response.leader = current_leader;
                    }
                    if let Some(member) = self.members.get_mut(&new_member_id) {
                        member.awaiting_join = None;
                    }
                    respond_join(ctx.out, token, response);
                } else {
                    self.maybe_prepare_rebalance(ctx);
                }
            }
            // The leader may already be assigning with the old member id.
            GroupState::CompletingRebalance => self.prepare_rebalance(ctx),
            GroupState::PreparingRebalance => {}
            // Neither can hold a member (mark_dead requires none), so
            // neither is reached; were one, an Empty group rebalances as
            // for any join, and a Dead one answers as it does to a sync.
            GroupState::Empty => self.maybe_prepare_rebalance(ctx),
            GroupState::Dead => {
                let waiting = self
                    .members
                    .get_mut(&new_member_id)
                    .and_then(|member| member.awaiting_join.take());
                if let Some(token) = waiting {
                    let error = GroupError::CoordinatorNotAvailable {
                        group_id: self.group_id.clone(),
                    };
                    let response = JoinGroupResponse::error(&new_member_id, error);
                    respond_join(ctx.out, token, response);
                }
            }
        }
    }

    /// Moves a static member (`member`, taken out of `members`) to a new
    /// member id, fencing the old id's waiting requests with
    /// FENCED_INSTANCE_ID.
    fn replace_static_member(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut member: Member,
        old_member_id: &str,
        new_member_id: &str,
    ) {
        let instance_id = member.group_instance_id.clone().unwrap_or_default();
        let fenced = GroupError::FencedInstanceId {
            group_id: self.group_id.clone(),
            group_instance_id: instance_id.clone(),
            member_id: old_member_id.to_owned(),
        };
        if let Some(token) = member.awaiting_join.take() {
            respond_join(
                ctx.out,
                token,
                JoinGroupResponse::error(old_member_id, fenced.clone()),
            );
        }
        if let Some(token) = member.awaiting_sync.take() {
            respond_sync(ctx.out, token, SyncGroupResponse::error(fenced));
        }
        member.member_id = new_member_id.to_owned();
        self.members.insert(new_member_id.to_owned(), member);
        if self.leader_id.as_deref() == Some(old_member_id) {
            self.leader_id = Some(new_member_id.to_owned());
        }
        self.static_members
            .insert(instance_id, new_member_id.to_owned());
        if self.pending_sync_members.remove(old_member_id) {
            self.pending_sync_members.insert(new_member_id.to_owned());
        }
    }

    // ------------------------------------------------------------ rebalancing

    fn maybe_prepare_rebalance(&mut self, ctx: &mut Ctx<'_>) {
        if self.state.can_transition_to(GroupState::PreparingRebalance) {
            self.prepare_rebalance(ctx);
        }
    }

    fn prepare_rebalance(&mut self, ctx: &mut Ctx<'_>) {
        if self.state == GroupState::CompletingRebalance {
            let error = GroupError::RebalanceInProgress {
                group_id: self.group_id.clone(),
            };
            self.reset_and_propagate_assignment_error(ctx, &error);
        }
        self.sync_deadline_ms = None;
        let rebalance_timeout_ms = self.rebalance_timeout_ms();
        self.join_timer = Some(if self.state == GroupState::Empty {
            let delay_ms = i64::from(ctx.config.initial_rebalance_delay_ms.max(0));
            JoinTimer::Initial {
                deadline_ms: ctx.now_ms + delay_ms,
                configured_delay_ms: delay_ms,
                delay_ms,
                remaining_ms: (rebalance_timeout_ms - delay_ms).max(0),
            }
        } else {
            JoinTimer::Rebalance {
                deadline_ms: ctx.now_ms + rebalance_timeout_ms,
            }
        });
        self.transition(GroupState::PreparingRebalance, ctx.now_ms);
        tracing::info!(
            group_id = %self.group_id,
            generation_id = self.generation_id,
            "preparing to rebalance"
        );
        self.try_complete_join(ctx);
    }

    /// The longest rebalance timeout among the members.
    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|member| i64::from(member.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn try_complete_join(&mut self, ctx: &mut Ctx<'_>) {
        if matches!(self.join_timer, Some(JoinTimer::Rebalance { .. }))
            && self.has_all_members_joined()
        {
            self.complete_join(ctx);
        }
    }

    fn has_all_members_joined(&self) -> bool {
        self.members.values().all(Member::is_awaiting_join) && self.pending_members.is_empty()
    }

    fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|member| member.is_awaiting_join())
            .count()
    }

    /// Kafka's onCompleteJoin: drop dynamic members that did not rejoin,
    /// start the next generation and answer every waiting JoinGroup.
    fn complete_join(&mut self, ctx: &mut Ctx<'_>) {
        self.join_timer = None;
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|member| !member.is_awaiting_join() && member.group_instance_id.is_none())
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in &not_rejoined {
            tracing::info!(group_id = %self.group_id, %member_id, "member did not rejoin in time; removed");
            self.remove_member(member_id, ctx.out);
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined remain: wait one
            // more rebalance timeout (their sessions may expire meanwhile).
            tracing::warn!(group_id = %self.group_id, "no member rejoined; waiting again");
            self.join_timer = Some(JoinTimer::Rebalance {
                deadline_ms: ctx.now_ms + self.rebalance_timeout_ms(),
            });
            return;
        }
        self.init_next_generation(ctx.now_ms);
        if self.state == GroupState::Empty {
            ctx.out.push(Output::Persist(self.snapshot()));
            return;
        }
        *ctx.rebalances += 1;
        tracing::info!(
            group_id = %self.group_id,
            generation_id = self.generation_id,
            members = self.members.len(),
            "rebalance joined; waiting for the leader's assignment"
        );
        let leader_members = self.current_member_metadata();
        let member_ids: Vec<String> = self.members.keys().cloned().collect();
        for member_id in member_ids {
            let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
            let mut response = self.current_generation_response(&member_id, false);
            if is_leader {
                response.members = leader_members.clone();
            }
            let Some(member) = self.members.get_mut(&member_id) else {
                continue;
            };
            if let Some(token) = member.awaiting_join.take() {
                respond_join(ctx.out, token, response);
            }
            member.session_deadline_ms = Some(ctx.now_ms + i64::from(member.session_timeout_ms));
            member.is_new = false;
            self.pending_sync_members.insert(member_id);
        }
        self.sync_deadline_ms = Some(ctx.now_ms + self.rebalance_timeout_ms());
    }

    /// Keeps the leader if it rejoined, else makes the oldest rejoined
    /// member leader. False if nobody rejoined (or no members).
    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader_id) = &self.leader_id else {
            return false;
        };
        if self
            .members
            .get(leader_id)
            .is_some_and(Member::is_awaiting_join)
        {
            return true;
        }
        let new_leader = self
            .members
            .values()
            .filter(|member| member.is_awaiting_join())
            .min_by_key(|member| member.join_seq)
            .map(|member| member.member_id.clone());
        match new_leader {
            Some(new_leader) => {
                self.leader_id = Some(new_leader);
                true
            }
            None => false,
        }
    }

    fn init_next_generation(&mut self, now_ms: i64) {
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            if self.protocol_name.is_none() {
                // Joins are admitted only with a protocol every member
                // supports, so this is a bug; the members' JoinGroup
                // answers carry no protocol, and they join again.
                tracing::error!(group_id = %self.group_id, "no protocol every member supports");
            }
            self.transition(GroupState::CompletingRebalance, now_ms);
        }
        self.pending_sync_members.clear();
        self.new_member_added = false;
    }

    /// Kafka's vote: among the protocols every member supports, each member
    /// votes for its most preferred; the most votes wins. Ties (which
    /// Kafka breaks by hash order) go to the smallest name. `None` only
    /// without members, or if they share no protocol (which joins rule
    /// out).
    fn select_protocol(&self) -> Option<String> {
        let member_count = self.members.len();
        let mut support: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            let names: BTreeSet<&str> = member.protocols.iter().map(|p| p.name.as_str()).collect();
            for name in names {
                *support.entry(name).or_default() += 1;
            }
        }
        let candidates: BTreeSet<&str> = support
            .into_iter()
            .filter(|(_, count)| *count == member_count)
            .map(|(name, _)| name)
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(vote) = member.vote(&candidates) {
                *votes.entry(vote).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by(|(a_name, a_votes), (b_name, b_votes)| {
                a_votes.cmp(b_votes).then_with(|| b_name.cmp(a_name))
            })
            .map(|(name, _)| name.to_owned())
    }

    fn transition(&mut self, to: GroupState, now_ms: i64) {
        assert!(
            self.state.can_transition_to(to),
            "group {:?}: illegal transition {} -> {}",
            self.group_id,
            self.state,
            to
        );
        self.state = to;
        self.state_timestamp_ms = now_ms;
    }

    // ------------------------------------------------------------ SyncGroup

    /// Handles a SyncGroup; the answer is pushed to `ctx.out` now or when
    /// the leader's assignment arrives.
    pub(crate) fn sync(
        &mut self,
        ctx: &mut Ctx<'_>,
        token: RequestToken,
        request: &SyncGroupRequest,
    ) {
        if let Err(error) = self.validate_sync(request) {
            respond_sync(ctx.out, token, SyncGroupResponse::error(error));
            return;
        }
        let member_id = request.member_id.as_str();
        match self.state {
            GroupState::Empty => {
                let error = self.unknown_member(member_id);
                respond_sync(ctx.out, token, SyncGroupResponse::error(error));
            }
            GroupState::PreparingRebalance => {
                let error = GroupError::RebalanceInProgress {
                    group_id: self.group_id.clone(),
                };
                respond_sync(ctx.out, token, SyncGroupResponse::error(error));
            }
            GroupState::CompletingRebalance => {
                let group_id = self.group_id.clone();
                if let Some(member) = self.members.get_mut(member_id) {
                    if let Some(superseded) = member.awaiting_sync.replace(token) {
                        let error = GroupError::RebalanceInProgress { group_id };
                        respond_sync(ctx.out, superseded, SyncGroupResponse::error(error));
                    }
                }
                self.remove_pending_sync_member(member_id);
                if self.leader_id.as_deref() == Some(member_id) {
                    self.complete_sync(ctx, &request.assignments);
                }
            }
            GroupState::Stable => {
                self.remove_pending_sync_member(member_id);
                let assignment = self
                    .members
                    .get(member_id)
                    .map(|member| member.assignment.clone())
                    .unwrap_or_default();
                let response = self.sync_success(assignment);
                respond_sync(ctx.out, token, response);
                self.reschedule_session(member_id, ctx.now_ms);
            }
            GroupState::Dead => {
                let error = GroupError::CoordinatorNotAvailable {
                    group_id: self.group_id.clone(),
                };
                respond_sync(ctx.out, token, SyncGroupResponse::error(error));
            }
        }
    }

    fn validate_sync(&self, request: &SyncGroupRequest) -> Result<(), GroupError> {
        self.validate_current_member(&request.member_id, request.group_instance_id.as_deref())?;
        self.check_generation(request.generation_id)?;
        if let Some(protocol_type) = &request.protocol_type {
            if self.protocol_type.as_ref() != Some(protocol_type) {
                return Err(self.inconsistent_protocol());
            }
        }
        if let Some(protocol_name) = &request.protocol_name {
            if self.protocol_name.as_ref() != Some(protocol_name) {
                return Err(self.inconsistent_protocol());
            }
        }
        Ok(())
    }

    /// The leader's assignment: record it, persist the group, answer every
    /// waiting SyncGroup and become Stable. Members the leader left out get
    /// an empty assignment; entries for non-members are ignored.
    fn complete_sync(&mut self, ctx: &mut Ctx<'_>, assignments: &[(String, Bytes)]) {
        let mut by_member: BTreeMap<&str, &Bytes> = BTreeMap::new();
        for (member_id, assignment) in assignments {
            by_member.insert(member_id.as_str(), assignment);
        }
        for member in self.members.values_mut() {
            member.assignment = by_member
                .get(member.member_id.as_str())
                .map(|assignment| (*assignment).clone())
                .unwrap_or_default();
        }
        ctx.out.push(Output::Persist(self.snapshot()));
        let member_ids: Vec<String> = self.members.keys().cloned().collect();
        for member_id in member_ids {
            let Some(member) = self.members.get_mut(&member_id) else {
                continue;
            };
            if let Some(token) = member.awaiting_sync.take() {
                let assignment = member.assignment.clone();
                member.session_deadline_ms =
                    Some(ctx.now_ms + i64::from(member.session_timeout_ms));
                let response = self.sync_success(assignment);
                respond_sync(ctx.out, token, response);
            }
        }
        self.transition(GroupState::Stable, ctx.now_ms);
        tracing::info!(
            group_id = %self.group_id,
            generation_id = self.generation_id,
            "group is stable"
        );
    }

    fn reset_and_propagate_assignment_error(&mut self, ctx: &mut Ctx<'_>, error: &GroupError) {
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
            if let Some(token) = member.awaiting_sync.take() {
                member.session_deadline_ms =
                    Some(ctx.now_ms + i64::from(member.session_timeout_ms));
                respond_sync(ctx.out, token, SyncGroupResponse::error(error.clone()));
            }
        }
    }

    fn remove_pending_sync_member(&mut self, member_id: &str) {
        self.pending_sync_members.remove(member_id);
        if self.pending_sync_members.is_empty() {
            self.sync_deadline_ms = None;
        }
    }

    /// Kafka's onExpirePendingSync: members that did not send SyncGroup
    /// within the rebalance timeout are removed, and the group rebalances.
    fn expire_pending_sync(&mut self, ctx: &mut Ctx<'_>) {
        self.sync_deadline_ms = None;
        if !matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) {
            return;
        }
        let late: Vec<String> = self.pending_sync_members.iter().cloned().collect();
        for member_id in &late {
            tracing::info!(group_id = %self.group_id, %member_id, "member did not sync in time; removed");
            self.remove_member(member_id, ctx.out);
        }
        self.prepare_rebalance(ctx);
    }

    // ------------------------------------------------------------ Heartbeat

    pub(crate) fn heartbeat(
        &mut self,
        ctx: &mut Ctx<'_>,
        request: &HeartbeatRequest,
    ) -> Result<(), GroupError> {
        self.validate_current_member(&request.member_id, request.group_instance_id.as_deref())?;
        self.check_generation(request.generation_id)?;
        match self.state {
            GroupState::Empty => Err(self.unknown_member(&request.member_id)),
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.reschedule_session(&request.member_id, ctx.now_ms);
                Ok(())
            }
            GroupState::PreparingRebalance => {
                self.reschedule_session(&request.member_id, ctx.now_ms);
                Err(GroupError::RebalanceInProgress {
                    group_id: self.group_id.clone(),
                })
            }
            GroupState::Dead => Err(GroupError::CoordinatorNotAvailable {
                group_id: self.group_id.clone(),
            }),
        }
    }

    fn reschedule_session(&mut self, member_id: &str, now_ms: i64) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.session_deadline_ms = Some(now_ms + i64::from(member.session_timeout_ms));
        }
    }

    // ------------------------------------------------------------ LeaveGroup

    pub(crate) fn leave(
        &mut self,
        ctx: &mut Ctx<'_>,
        leaving: &[LeavingMember],
    ) -> Vec<LeaveGroupMemberResult> {
        leaving
            .iter()
            .map(|leaving| {
                let error = self.leave_one(ctx, leaving).err();
                LeaveGroupMemberResult {
                    member_id: leaving.member_id.clone(),
                    group_instance_id: leaving.group_instance_id.clone(),
                    error,
                }
            })
            .collect()
    }

    fn leave_one(&mut self, ctx: &mut Ctx<'_>, leaving: &LeavingMember) -> Result<(), GroupError> {
        let member_id = leaving.member_id.as_str();
        if member_id.is_empty() {
            // Administrative removal by group.instance.id (KIP-345).
            let current = leaving
                .group_instance_id
                .as_ref()
                .and_then(|instance_id| self.static_members.get(instance_id))
                .cloned();
            let Some(current) = current else {
                return Err(self.unknown_member(member_id));
            };
            self.remove_member_and_update_group(ctx, &current);
        } else if self.is_pending_member(member_id) {
            self.remove_pending_member_and_update_group(ctx, member_id);
        } else {
            self.validate_current_member(member_id, leaving.group_instance_id.as_deref())?;
            self.remove_member_and_update_group(ctx, member_id);
        }
        tracing::info!(group_id = %self.group_id, member_id, "member left");
        Ok(())
    }

    // ------------------------------------------------------------ removal

    /// Kafka's GroupMetadata.remove, plus answering whatever the member
    /// still has waiting with UNKNOWN_MEMBER_ID (Kafka answers the JoinGroup
    /// so; a waiting SyncGroup it would drop, but a token must get one
    /// answer).
    fn remove_member(&mut self, member_id: &str, out: &mut Vec<Output>) {
        if let Some(member) = self.members.remove(member_id) {
            if let Some(instance_id) = &member.group_instance_id {
                if self.static_members.get(instance_id).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance_id);
                }
            }
            let error = self.unknown_member(member_id);
            if let Some(token) = member.awaiting_join {
                respond_join(out, token, JoinGroupResponse::error("", error.clone()));
            }
            if let Some(token) = member.awaiting_sync {
                respond_sync(out, token, SyncGroupResponse::error(error));
            }
        }
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self
                .members
                .values()
                .min_by_key(|member| member.join_seq)
                .map(|member| member.member_id.clone());
        }
        self.pending_members.remove(member_id);
        self.remove_pending_sync_member(member_id);
    }

    fn remove_member_and_update_group(&mut self, ctx: &mut Ctx<'_>, member_id: &str) {
        self.remove_member(member_id, ctx.out);
        match self.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(ctx);
            }
            GroupState::PreparingRebalance => self.try_complete_join(ctx),
        }
    }

    fn remove_pending_member_and_update_group(&mut self, ctx: &mut Ctx<'_>, member_id: &str) {
        self.pending_members.remove(member_id);
        if self.state == GroupState::PreparingRebalance {
            self.try_complete_join(ctx);
        }
    }

    // ------------------------------------------------------------ timers

    /// The earliest time one of the group's timers fires.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        self.next_timer().map(|(deadline_ms, _)| deadline_ms)
    }

    fn next_timer(&self) -> Option<(i64, Timer)> {
        let pending = self
            .pending_members
            .iter()
            .map(|(id, deadline)| (*deadline, Timer::Pending(id.clone())))
            .min_by_key(|(deadline, _)| *deadline);
        let session = self
            .members
            .values()
            .filter_map(|member| {
                member
                    .session_deadline_ms
                    .map(|deadline| (deadline, Timer::Session(member.member_id.clone())))
            })
            .min_by_key(|(deadline, _)| *deadline);
        let join = self
            .join_timer
            .map(|timer| (timer.deadline_ms(), Timer::Join));
        let sync = self
            .sync_deadline_ms
            .map(|deadline| (deadline, Timer::Sync));
        // On a tie, member timers first, then the join, then the sync.
        [pending, session, join, sync]
            .into_iter()
            .flatten()
            .min_by_key(|(deadline, _)| *deadline)
    }

    /// Fires every timer due at `ctx.now_ms`, earliest first.
    pub(crate) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        // Each firing removes a member or clears a timer, bar the initial
        // delay which re-arms at most once per member added.
        let firings_max = 16 + 4 * (self.members.len() + self.pending_members.len());
        for _ in 0..firings_max {
            match self.next_timer() {
                Some((deadline_ms, timer)) if deadline_ms <= ctx.now_ms => self.fire(ctx, timer),
                _ => return,
            }
        }
        assert!(
            self.next_deadline()
                .is_none_or(|deadline| deadline > ctx.now_ms),
            "group {:?}: timers keep firing at {}",
            self.group_id,
            ctx.now_ms
        );
    }

    fn fire(&mut self, ctx: &mut Ctx<'_>, timer: Timer) {
        match timer {
            Timer::Pending(member_id) => {
                tracing::info!(group_id = %self.group_id, %member_id, "pending member expired");
                self.remove_pending_member_and_update_group(ctx, &member_id);
            }
            Timer::Session(member_id) => {
                let excused = self
                    .members
                    .get(&member_id)
                    .is_some_and(Member::excused_from_expiry);
                if excused {
                    if let Some(member) = self.members.get_mut(&member_id) {
                        member.session_deadline_ms = None;
                    }
                } else {
                    tracing::info!(group_id = %self.group_id, %member_id, "session expired; member removed");
                    self.remove_member_and_update_group(ctx, &member_id);
                }
            }
            Timer::Join => self.fire_join_timer(ctx),
            Timer::Sync => self.expire_pending_sync(ctx),
        }
    }

    fn fire_join_timer(&mut self, ctx: &mut Ctx<'_>) {
        match self.join_timer {
            Some(JoinTimer::Initial {
                configured_delay_ms,
                delay_ms,
                remaining_ms,
                ..
            }) if self.new_member_added && remaining_ms != 0 => {
                // InitialDelayedJoin: someone joined meanwhile; wait again.
                self.new_member_added = false;
                let next_delay_ms = configured_delay_ms.min(remaining_ms);
                self.join_timer = Some(JoinTimer::Initial {
                    deadline_ms: ctx.now_ms + next_delay_ms,
                    configured_delay_ms,
                    delay_ms: next_delay_ms,
                    remaining_ms: (remaining_ms - delay_ms).max(0),
                });
            }
            Some(_) => self.complete_join(ctx),
            None => {}
        }
    }

    // ------------------------------------------------------------ OffsetCommit

    /// Kafka's ClassicGroup.validateOffsetCommit (non-transactional).
    pub(crate) fn validate_offset_commit(
        &self,
        member_id: &str,
        generation_id: i32,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable {
                group_id: self.group_id.clone(),
            });
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            // Admin client or a consumer without group management.
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_current_member(member_id, group_instance_id)?;
            self.check_generation(generation_id)?;
        } else if self.state != GroupState::Empty {
            return Err(self.unknown_member(member_id));
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress {
                group_id: self.group_id.clone(),
            });
        }
        Ok(())
    }

    /// Kafka's validateOffsetCommit for TxnOffsetCommit (KIP-447): as for
    /// OffsetCommit, except that a commit without generation, member id
    /// and instance id (a producer older than KIP-447) is allowed whatever
    /// the group's state, and no state refuses a current member (the
    /// transaction, not the rebalance, decides whether the offsets count).
    pub(crate) fn validate_txn_offset_commit(
        &self,
        member_id: &str,
        generation_id: i32,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable {
                group_id: self.group_id.clone(),
            });
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_current_member(member_id, group_instance_id)?;
            self.check_generation(generation_id)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ helpers

    /// Kafka's supportsProtocols: an Empty group takes any non-empty
    /// protocol type with at least one protocol; otherwise the type must
    /// match and one of the protocols be supported by every member.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[JoinProtocol]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|protocol| {
                self.members
                    .values()
                    .all(|member| member.supports(&protocol.name))
            })
    }

    /// Kafka's validateCurrentMember.
    fn validate_current_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(instance_id) = group_instance_id {
            return match self.static_members.get(instance_id) {
                Some(current) if current != member_id => Err(GroupError::FencedInstanceId {
                    group_id: self.group_id.clone(),
                    group_instance_id: instance_id.to_owned(),
                    member_id: member_id.to_owned(),
                }),
                Some(_) => Ok(()),
                None => Err(self.unknown_member(member_id)),
            };
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(self.unknown_member(member_id))
        }
    }

    fn check_generation(&self, generation_id: i32) -> Result<(), GroupError> {
        if generation_id == self.generation_id {
            Ok(())
        } else {
            Err(GroupError::IllegalGeneration {
                group_id: self.group_id.clone(),
                expected: self.generation_id,
                found: generation_id,
            })
        }
    }

    fn is_pending_member(&self, member_id: &str) -> bool {
        self.pending_members.contains_key(member_id) && !self.members.contains_key(member_id)
    }

    fn unknown_member(&self, member_id: &str) -> GroupError {
        GroupError::UnknownMemberId {
            group_id: self.group_id.clone(),
            member_id: member_id.to_owned(),
        }
    }

    fn inconsistent_protocol(&self) -> GroupError {
        GroupError::InconsistentGroupProtocol {
            group_id: self.group_id.clone(),
        }
    }

    fn members_by_age(&self) -> impl Iterator<Item = &Member> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|member| member.join_seq);
        members.into_iter()
    }

    /// Every member with its metadata for the selected protocol, oldest
    /// first: what the leader receives.
    fn current_member_metadata(&self) -> Vec<JoinGroupMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members_by_age()
            .map(|member| JoinGroupMember {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                metadata: member.metadata(&protocol),
            })
            .collect()
    }

    fn current_generation_response(
        &self,
        member_id: &str,
        with_members: bool,
    ) -> JoinGroupResponse {
        JoinGroupResponse {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_owned(),
            members: if with_members {
                self.current_member_metadata()
            } else {
                Vec::new()
            },
        }
    }

    fn sync_success(&self, assignment: Bytes) -> SyncGroupResponse {
        SyncGroupResponse {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    /// The group as its metadata record stores it.
    pub(crate) fn snapshot(&self) -> GroupMetadataSnapshot {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupMetadataSnapshot {
            group_id: self.group_id.clone(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members_by_age()
                .map(|member| MemberSnapshot {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    rebalance_timeout_ms: member.rebalance_timeout_ms,
                    session_timeout_ms: member.session_timeout_ms,
                    subscription: member.metadata(&protocol),
                    assignment: member.assignment.clone(),
                })
                .collect(),
        }
    }
}

fn respond_join(out: &mut Vec<Output>, token: RequestToken, response: JoinGroupResponse) {
    out.push(Output::JoinResponse { token, response });
}

fn respond_sync(out: &mut Vec<Output>, token: RequestToken, response: SyncGroupResponse) {
    out.push(Output::SyncResponse { token, response });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(client_id: &str, protocols: &[&str]) -> JoinGroupRequest {
        JoinGroupRequest {
            group_id: "g".into(),
            member_id: String::new(),
            group_instance_id: None,
            client_id: client_id.into(),
            client_host: "/h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|name| JoinProtocol {
                    name: (*name).into(),
                    metadata: Bytes::new(),
                })
                .collect(),
            require_known_member_id: false,
            supports_skip_assignment: false,
        }
    }

    #[test]
    fn vote_ties_go_to_the_smallest_protocol_name() {
        let config = GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        };
        let mut out = Vec::new();
        let mut rebalances = 0;
        let mut ctx = Ctx {
            config: &config,
            now_ms: 0,
            out: &mut out,
            rebalances: &mut rebalances,
        };
        let mut group = Group::new("g".into(), 0);
        group.join(&mut ctx, 1, &request("a", &["zeta", "alpha"]), "a-1".into());
        group.join(&mut ctx, 2, &request("b", &["alpha", "zeta"]), "b-1".into());
        assert_eq!(group.select_protocol().as_deref(), Some("alpha"));
        assert_eq!(group.leader_id.as_deref(), Some("a-1"));
    }

    #[test]
    fn txn_offset_commit_fences_a_replaced_static_member() {
        let mut group = Group::new("g".into(), 0);
        group.state = GroupState::Stable;
        group.generation_id = 3;
        group
            .static_members
            .insert("instance".into(), "new-id".into());
        assert!(matches!(
            group.validate_txn_offset_commit("old-id", 3, Some("instance")),
            Err(GroupError::FencedInstanceId { .. })
        ));
        assert_eq!(
            group.validate_txn_offset_commit("new-id", 3, Some("instance")),
            Ok(())
        );
        assert!(matches!(
            group.validate_txn_offset_commit("new-id", 2, Some("instance")),
            Err(GroupError::IllegalGeneration {
                expected: 3,
                found: 2,
                ..
            })
        ));
        assert!(matches!(
            group.validate_txn_offset_commit("x", 3, Some("unknown-instance")),
            Err(GroupError::UnknownMemberId { .. })
        ));
        group.state = GroupState::Dead;
        assert!(matches!(
            group.validate_txn_offset_commit("", -1, None),
            Err(GroupError::CoordinatorNotAvailable { .. })
        ));
    }

    #[test]
    fn leadership_passes_to_the_oldest_remaining_member() {
        let config = GroupConfig::default();
        let mut out = Vec::new();
        let mut rebalances = 0;
        let mut ctx = Ctx {
            config: &config,
            now_ms: 0,
            out: &mut out,
            rebalances: &mut rebalances,
        };
        let mut group = Group::new("g".into(), 0);
        for (token, id) in [(1, "c-1"), (2, "a-1"), (3, "b-1")] {
            group.join(&mut ctx, token, &request(id, &["range"]), id.into());
        }
        group.remove_member("c-1", ctx.out);
        assert_eq!(group.leader_id.as_deref(), Some("a-1"));
    }
}
