//! The classic group coordinator: every group this broker coordinates, the
//! loading state, request validation, member-id allocation and the timers.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::config::GroupConfig;
use crate::error::{GroupError, RestoreError};
use crate::group::{Ctx, Group};
use crate::request::{
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, RequestToken, SyncGroupRequest,
};
use crate::response::{
    GroupDescription, GroupListing, GroupOverview, JoinGroupResponse, LeaveGroupMemberResult,
    Output, SyncGroupResponse,
};
use crate::snapshot::GroupMetadataSnapshot;
use crate::state::GroupState;

/// Kafka's classic group coordinator, sans I/O: owns every group, their
/// timers, and the queue of outputs (responses, records to persist).
///
/// Driving it: feed each request with the current time (`now_ms`, ms since
/// the epoch, never decreasing), then drain [`take_outputs`](Self::take_outputs)
/// and act on each output in order; after every call, arm a timer for
/// [`next_deadline`](Self::next_deadline) and call [`tick`](Self::tick)
/// when it is reached. JoinGroup and SyncGroup are answered through
/// outputs, possibly much later (when the rebalance completes), under the
/// [`RequestToken`] they came with; every token is answered exactly once.
/// If the connection that sent a request is gone by then, the server drops
/// the answer: nothing needs to be told here (as in Kafka, the member then
/// times out or rejoins).
///
/// It starts in the loading state: every API answers
/// COORDINATOR_LOAD_IN_PROGRESS until [`finish_loading`](Self::finish_loading),
/// while the loader feeds [`restore`](Self::restore).
///
/// Deterministic (no clock, no randomness: member ids come from a counter
/// and the seed given at construction). Not thread-safe: the server owns
/// it behind one lock or task.
///
/// ```
/// use bytes::Bytes;
/// use rill_group::{GroupConfig, GroupCoordinator, JoinGroupRequest, JoinProtocol, Output};
///
/// let config = GroupConfig { initial_rebalance_delay_ms: 0, ..GroupConfig::default() };
/// let mut coordinator = GroupCoordinator::new(config, 0x5eed);
/// coordinator.finish_loading();
/// let join = JoinGroupRequest {
///     group_id: "orders".into(),
///     member_id: String::new(),
///     group_instance_id: None,
///     client_id: "app".into(),
///     client_host: "/10.0.0.1".into(),
///     session_timeout_ms: 10_000,
///     rebalance_timeout_ms: 30_000,
///     protocol_type: "consumer".into(),
///     protocols: vec![JoinProtocol { name: "range".into(), metadata: Bytes::new() }],
///     require_known_member_id: false, // JoinGroup v3
///     supports_skip_assignment: false,
/// };
/// coordinator.join_group(7, join, 0);
/// assert!(coordinator.take_outputs().is_empty()); // waits for the rebalance
/// let deadline = coordinator.next_deadline().unwrap();
/// coordinator.tick(deadline);
/// match coordinator.take_outputs().as_slice() {
///     [Output::JoinResponse { token: 7, response }] => assert_eq!(response.generation_id, 1),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    loading: bool,
    groups: BTreeMap<String, Group>,
    /// (deadline, group id) for every group with a timer armed.
    deadlines: BTreeSet<(i64, String)>,
    deadline_of: HashMap<String, i64>,
    outputs: Vec<Output>,
    member_id_seed: u64,
    member_id_counter: u64,
    /// Rebalances its groups completed (a new generation with members).
    rebalances: u64,
}

impl GroupCoordinator {
    /// A coordinator in the loading state. `member_id_seed` makes member
    /// ids unique across restarts: the server passes a random value at
    /// startup (tests pass anything).
    pub fn new(config: GroupConfig, member_id_seed: u64) -> Self {
        Self {
            config,
            loading: true,
            groups: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            deadline_of: HashMap::new(),
            outputs: Vec::new(),
            member_id_seed,
            member_id_counter: 0,
            rebalances: 0,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// True until [`finish_loading`](Self::finish_loading).
    pub fn is_loading(&self) -> bool {
        self.loading
    }

    /// Loads one group from its latest metadata record, replacing any group
    /// of that id already loaded. Members start their session timers at
    /// `now_ms`. Allowed in any state, meant for loading.
    pub fn restore(
        &mut self,
        snapshot: GroupMetadataSnapshot,
        now_ms: i64,
    ) -> Result<(), RestoreError> {
        let group_id = snapshot.group_id.clone();
        let mut ctx = Ctx {
            config: &self.config,
            now_ms,
            out: &mut self.outputs,
            rebalances: &mut self.rebalances,
        };
        let group = Group::from_snapshot(snapshot, &mut ctx)?;
        self.groups.insert(group_id.clone(), group);
        self.refresh_deadline(&group_id);
        Ok(())
    }

    /// Forgets a group whose latest metadata record is a tombstone.
    pub fn restore_tombstone(&mut self, group_id: &str) {
        self.groups.remove(group_id);
        self.refresh_deadline(group_id);
    }

    /// Makes sure a group exists, as an Empty one if it did not: for a
    /// group that has committed offsets but no metadata record (a "simple"
    /// group), so ListGroups and DescribeGroups show it as Kafka does.
    pub fn ensure_group(&mut self, group_id: &str, now_ms: i64) {
        if !self.groups.contains_key(group_id) {
            self.groups
                .insert(group_id.to_owned(), Group::new(group_id.to_owned(), now_ms));
        }
    }

    /// Removes an Empty group without a trace (no tombstone: its offsets
    /// stay) when a consumer group (KIP-848) takes over its id; whether it
    /// did.
    pub fn forget_empty(&mut self, group_id: &str) -> bool {
        if !self.is_empty_group(group_id) {
            return false;
        }
        self.groups.remove(group_id);
        self.refresh_deadline(group_id);
        true
    }

    /// Removes a classic group with members of the consumer protocol type
    /// so that a consumer group (KIP-848) takes it over (online upgrade):
    /// its waiting JoinGroup and SyncGroup requests are answered
    /// REBALANCE_IN_PROGRESS; what it held comes back, each member with
    /// every protocol it joined with. `None` (nothing changes) for a group
    /// that does not exist, has no members, or is not of protocol type
    /// "consumer". No tombstone is emitted: the caller writes it with the
    /// consumer group's records.
    #[allow(clippy::type_complexity)]
    pub fn take_for_upgrade(
        &mut self,
        group_id: &str,
        now_ms: i64,
    ) -> Option<(
        GroupMetadataSnapshot,
        Vec<(String, Vec<crate::JoinProtocol>)>,
    )> {
        let group = self.groups.get_mut(group_id)?;
        let overview = group.overview();
        if group.state() == GroupState::Empty
            || overview.protocol_type.as_deref() != Some(crate::CONSUMER_PROTOCOL_TYPE)
        {
            return None;
        }
        let mut ctx = Ctx {
            config: &self.config,
            now_ms,
            out: &mut self.outputs,
            rebalances: &mut self.rebalances,
        };
        let handed = group.hand_over(&mut ctx);
        self.groups.remove(group_id);
        self.refresh_deadline(group_id);
        Some(handed)
    }

    /// Makes a classic group of a consumer group's members (KIP-848
    /// downgrade) and starts a rebalance, so that they join again and
    /// share the partitions of the members who left. The caller persists
    /// the snapshot's record with the consumer group's tombstones.
    pub fn adopt(
        &mut self,
        snapshot: GroupMetadataSnapshot,
        now_ms: i64,
    ) -> Result<(), RestoreError> {
        let group_id = snapshot.group_id.clone();
        let mut ctx = Ctx {
            config: &self.config,
            now_ms,
            out: &mut self.outputs,
            rebalances: &mut self.rebalances,
        };
        let mut group = Group::from_snapshot(snapshot, &mut ctx)?;
        group.rebalance(&mut ctx);
        self.groups.insert(group_id.clone(), group);
        self.refresh_deadline(&group_id);
        Ok(())
    }

    /// Whether `group_id` is a group here in state Empty.
    pub fn is_empty_group(&self, group_id: &str) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|group| group.state() == GroupState::Empty)
    }

    /// Ends the loading state: from now on requests are served.
    pub fn finish_loading(&mut self) {
        self.loading = false;
    }

    /// Drains the outputs produced so far, oldest first.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    /// The earliest time [`tick`](Self::tick) has work to do.
    pub fn next_deadline(&self) -> Option<i64> {
        self.deadlines.first().map(|(deadline_ms, _)| *deadline_ms)
    }

    /// Fires every timer due at `now_ms`: session expiries, rebalances
    /// whose (initial) delay or timeout ran out, SyncGroups not sent in
    /// time, pending member ids not used in time.
    pub fn tick(&mut self, now_ms: i64) {
        while let Some((deadline_ms, group_id)) = self.deadlines.first().cloned() {
            if deadline_ms > now_ms {
                break;
            }
            if let Some(group) = self.groups.get_mut(&group_id) {
                let mut ctx = Ctx {
                    config: &self.config,
                    now_ms,
                    out: &mut self.outputs,
                    rebalances: &mut self.rebalances,
                };
                group.tick(&mut ctx);
            }
            self.refresh_deadline(&group_id);
        }
    }

    /// JoinGroup. The answer comes as [`Output::JoinResponse`] with
    /// `token`: at once for errors and MEMBER_ID_REQUIRED, otherwise when
    /// the rebalance completes.
    pub fn join_group(&mut self, token: RequestToken, request: JoinGroupRequest, now_ms: i64) {
        if let Err(error) = self.check_join(&request) {
            let response = JoinGroupResponse::error(request.member_id.clone(), error);
            self.outputs.push(Output::JoinResponse { token, response });
            return;
        }
        let created = !self.groups.contains_key(&request.group_id);
        if created {
            if !request.member_id.is_empty() {
                // A member id for a group that does not exist.
                let error = GroupError::UnknownMemberId {
                    group_id: request.group_id.clone(),
                    member_id: request.member_id.clone(),
                };
                let response = JoinGroupResponse::error(request.member_id.clone(), error);
                self.outputs.push(Output::JoinResponse { token, response });
                return;
            }
            self.groups.insert(
                request.group_id.clone(),
                Group::new(request.group_id.clone(), now_ms),
            );
        }
        let new_member_id = if request.member_id.is_empty() {
            let prefix = request
                .group_instance_id
                .clone()
                .unwrap_or_else(|| request.client_id.clone());
            self.new_member_id(&request.group_id, &prefix)
        } else {
            String::new()
        };
        if let Some(group) = self.groups.get_mut(&request.group_id) {
            let mut ctx = Ctx {
                config: &self.config,
                now_ms,
                out: &mut self.outputs,
                rebalances: &mut self.rebalances,
            };
            group.join(&mut ctx, token, &request, new_member_id);
            // A group created by a join that failed holds nothing: Kafka
            // would keep it until offset expiry; there is nothing to keep.
            if created && group.is_empty_and_idle() {
                self.groups.remove(&request.group_id);
            }
        }
        self.refresh_deadline(&request.group_id);
    }

    fn check_join(&self, request: &JoinGroupRequest) -> Result<(), GroupError> {
        self.check_serving(&request.group_id)?;
        let (min_ms, max_ms) = (
            self.config.min_session_timeout_ms,
            self.config.max_session_timeout_ms,
        );
        if request.session_timeout_ms < min_ms || request.session_timeout_ms > max_ms {
            return Err(GroupError::InvalidSessionTimeout {
                session_timeout_ms: request.session_timeout_ms,
                min_ms,
                max_ms,
            });
        }
        Ok(())
    }

    /// SyncGroup. The answer comes as [`Output::SyncResponse`] with
    /// `token`: at once, or when the leader's assignment arrives.
    pub fn sync_group(&mut self, token: RequestToken, request: SyncGroupRequest, now_ms: i64) {
        let result = self.check_serving(&request.group_id).and_then(|()| {
            if self.groups.contains_key(&request.group_id) {
                Ok(())
            } else {
                Err(GroupError::UnknownMemberId {
                    group_id: request.group_id.clone(),
                    member_id: request.member_id.clone(),
                })
            }
        });
        if let Err(error) = result {
            let response = SyncGroupResponse::error(error);
            self.outputs.push(Output::SyncResponse { token, response });
            return;
        }
        if let Some(group) = self.groups.get_mut(&request.group_id) {
            let mut ctx = Ctx {
                config: &self.config,
                now_ms,
                out: &mut self.outputs,
                rebalances: &mut self.rebalances,
            };
            group.sync(&mut ctx, token, &request);
        }
        self.refresh_deadline(&request.group_id);
    }

    /// Heartbeat: `Ok` keeps the member's session; REBALANCE_IN_PROGRESS
    /// tells it to rejoin (its session is kept too).
    pub fn heartbeat(&mut self, request: &HeartbeatRequest, now_ms: i64) -> Result<(), GroupError> {
        self.check_serving(&request.group_id)?;
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return Err(GroupError::UnknownMemberId {
                group_id: request.group_id.clone(),
                member_id: request.member_id.clone(),
            });
        };
        let mut ctx = Ctx {
            config: &self.config,
            now_ms,
            out: &mut self.outputs,
            rebalances: &mut self.rebalances,
        };
        let result = group.heartbeat(&mut ctx, request);
        self.refresh_deadline(&request.group_id);
        result
    }

    /// LeaveGroup: `Err` is the request-level error; otherwise one result
    /// per member, in request order. (For v0-v2 the server reports the one
    /// member's error as the request's.)
    pub fn leave_group(
        &mut self,
        request: &LeaveGroupRequest,
        now_ms: i64,
    ) -> Result<Vec<LeaveGroupMemberResult>, GroupError> {
        self.check_serving(&request.group_id)?;
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return Ok(request
                .members
                .iter()
                .map(|leaving| LeaveGroupMemberResult {
                    member_id: leaving.member_id.clone(),
                    group_instance_id: leaving.group_instance_id.clone(),
                    error: Some(GroupError::UnknownMemberId {
                        group_id: request.group_id.clone(),
                        member_id: leaving.member_id.clone(),
                    }),
                })
                .collect());
        };
        let mut ctx = Ctx {
            config: &self.config,
            now_ms,
            out: &mut self.outputs,
            rebalances: &mut self.rebalances,
        };
        let results = group.leave(&mut ctx, &request.members);
        self.refresh_deadline(&request.group_id);
        Ok(results)
    }

    /// ListGroups: every group, or only those in `states` if it is not
    /// empty, in group id order.
    /// Rebalances completed since this coordinator was made: each a new
    /// generation of a group with members.
    pub fn completed_rebalances(&self) -> u64 {
        self.rebalances
    }

    pub fn list_groups(&self, states: &[GroupState]) -> Result<Vec<GroupListing>, GroupError> {
        if self.loading {
            return Err(GroupError::CoordinatorLoadInProgress);
        }
        Ok(self
            .groups
            .values()
            .filter(|group| states.is_empty() || states.contains(&group.state()))
            .map(Group::listing)
            .collect())
    }

    /// DescribeGroups for one group; a group that does not exist is
    /// described as Dead (see [`GroupDescription`]).
    pub fn describe_group(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        if self.loading {
            return Err(GroupError::CoordinatorLoadInProgress);
        }
        Ok(match self.groups.get(group_id) {
            Some(group) => group.describe(),
            None => GroupDescription {
                group_id: group_id.to_owned(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
        })
    }

    /// DeleteGroups: each Empty group is removed (a [`Output::Tombstone`]
    /// is emitted; the server deletes its offsets); others answer
    /// NON_EMPTY_GROUP or GROUP_ID_NOT_FOUND. One result per id, in order.
    pub fn delete_groups(
        &mut self,
        group_ids: &[String],
        now_ms: i64,
    ) -> Vec<(String, Result<(), GroupError>)> {
        group_ids
            .iter()
            .map(|group_id| (group_id.clone(), self.delete_group(group_id, now_ms)))
            .collect()
    }

    fn delete_group(&mut self, group_id: &str, now_ms: i64) -> Result<(), GroupError> {
        if self.loading {
            return Err(GroupError::CoordinatorLoadInProgress);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return Err(GroupError::GroupIdNotFound {
                group_id: group_id.to_owned(),
            });
        };
        match group.state() {
            GroupState::Empty => {}
            GroupState::Dead => {
                return Err(GroupError::GroupIdNotFound {
                    group_id: group_id.to_owned(),
                });
            }
            state => {
                return Err(GroupError::NonEmptyGroup {
                    group_id: group_id.to_owned(),
                    state: state.as_str(),
                });
            }
        }
        group.mark_dead(now_ms);
        self.groups.remove(group_id);
        self.refresh_deadline(group_id);
        self.outputs.push(Output::Tombstone {
            group_id: group_id.to_owned(),
        });
        Ok(())
    }

    /// For offset expiry: removes the group if it is Empty (with a
    /// [`Output::Tombstone`]) and says whether it did. The caller calls it
    /// once the group has no committed offsets left, as Kafka's cleanup does.
    pub fn remove_if_empty(&mut self, group_id: &str, now_ms: i64) -> bool {
        let is_empty = self
            .groups
            .get(group_id)
            .is_some_and(|group| group.state() == GroupState::Empty);
        is_empty && self.delete_group(group_id, now_ms).is_ok()
    }

    /// State, "since when", generation and protocol of a group, if it
    /// exists.
    pub fn group_overview(&self, group_id: &str) -> Option<GroupOverview> {
        self.groups.get(group_id).map(Group::overview)
    }

    /// May this OffsetCommit be accepted? Kafka's rules: a commit without
    /// generation (-1), member id and instance id ("simple consumer" or
    /// admin) is allowed only while the group is Empty or does not exist
    /// (then an Empty group is created, as Kafka does); otherwise the member
    /// must be current (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID) at the
    /// group's generation (ILLEGAL_GENERATION), and not while the group
    /// awaits its assignment (REBALANCE_IN_PROGRESS). A generation >= 0 for
    /// a group that does not exist is GROUP_ID_NOT_FOUND, which the server
    /// turns into ILLEGAL_GENERATION for OffsetCommit before v9.
    pub fn validate_offset_commit(
        &mut self,
        group_id: &str,
        member_id: &str,
        generation_id: i32,
        group_instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        if self.loading {
            return Err(GroupError::CoordinatorLoadInProgress);
        }
        match self.groups.get(group_id) {
            Some(group) => {
                group.validate_offset_commit(member_id, generation_id, group_instance_id)
            }
            None if generation_id < 0 => {
                let group = Group::new(group_id.to_owned(), now_ms);
                let result =
                    group.validate_offset_commit(member_id, generation_id, group_instance_id);
                self.groups.insert(group_id.to_owned(), group);
                result
            }
            None => Err(GroupError::GroupIdNotFound {
                group_id: group_id.to_owned(),
            }),
        }
    }

    /// May this TxnOffsetCommit be accepted? Kafka's
    /// `handleTxnCommitOffsets` with KIP-447's checks:
    ///
    /// - INVALID_GROUP_ID for an empty group id, COORDINATOR_LOAD_IN_PROGRESS
    ///   while loading, COORDINATOR_NOT_AVAILABLE for a Dead group;
    /// - generation -1 (with any member id) while the group is Empty or
    ///   does not exist: allowed; a group that did not exist is created
    ///   Empty, as Kafka does, so that ListGroups and DescribeGroups show it;
    /// - no generation (-1), no member id and no instance id (a producer
    ///   older than KIP-447, TxnOffsetCommit v0..=v2): allowed in any state;
    /// - otherwise the member must be current: FENCED_INSTANCE_ID when
    ///   another member id holds `group_instance_id`, UNKNOWN_MEMBER_ID when
    ///   the member is not in the group (or the group does not exist), and
    ///   ILLEGAL_GENERATION when `generation_id` is not the group's.
    ///
    /// Unlike OffsetCommit, a group awaiting its assignment does not
    /// refuse a current member. The producer's epoch is checked by the log
    /// when the transactional batch is appended, not here.
    pub fn validate_txn_offset_commit(
        &mut self,
        group_id: &str,
        member_id: &str,
        generation_id: i32,
        group_instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        self.check_serving(group_id)?;
        if let Some(group) = self.groups.get(group_id) {
            return group.validate_txn_offset_commit(member_id, generation_id, group_instance_id);
        }
        // Kafka creates the group first and validates against it; a
        // refused commit leaves nothing worth keeping, so only an accepted
        // one keeps the new group.
        let group = Group::new(group_id.to_owned(), now_ms);
        group.validate_txn_offset_commit(member_id, generation_id, group_instance_id)?;
        self.groups.insert(group_id.to_owned(), group);
        Ok(())
    }

    /// INVALID_GROUP_ID and COORDINATOR_LOAD_IN_PROGRESS, in Kafka's order.
    fn check_serving(&self, group_id: &str) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId {
                group_id: group_id.to_owned(),
            });
        }
        if self.loading {
            return Err(GroupError::CoordinatorLoadInProgress);
        }
        Ok(())
    }

    /// `prefix` + "-" + a UUID-shaped string made of the seed and a
    /// counter, unused in the group.
    fn new_member_id(&mut self, group_id: &str, prefix: &str) -> String {
        loop {
            self.member_id_counter = self.member_id_counter.wrapping_add(1);
            let hex = format!(
                "{:016x}{:016x}",
                self.member_id_seed, self.member_id_counter
            );
            let member_id = format!(
                "{prefix}-{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            );
            let taken = self
                .groups
                .get(group_id)
                .is_some_and(|group| group.knows_member_id(&member_id));
            if !taken {
                return member_id;
            }
        }
    }

    fn refresh_deadline(&mut self, group_id: &str) {
        if let Some(old) = self.deadline_of.remove(group_id) {
            self.deadlines.remove(&(old, group_id.to_owned()));
        }
        if let Some(deadline_ms) = self.groups.get(group_id).and_then(Group::next_deadline) {
            self.deadline_of.insert(group_id.to_owned(), deadline_ms);
            self.deadlines.insert((deadline_ms, group_id.to_owned()));
        }
    }
}
