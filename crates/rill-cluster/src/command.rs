//! The commands of the metadata log and what applying each one returns.
//!
//! A command is everything the state machine needs to apply it: anything
//! chosen at random or by policy (a topic id, a replica assignment, a new
//! leader) is chosen by the proposer and carried in the command, so every
//! controller that applies the log reaches the same state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::acls::{AclBinding, AclBindingFilter, InvalidAcl, InvalidAclFilter};
use crate::client_quotas::{InvalidQuota, QuotaAlteration};
use crate::metadata::{BrokerEpoch, BrokerId, Endpoint, LeaderEpoch, PartitionEpoch};
use crate::users::{ScramMechanism, StoredScramCredential, UnacceptableCredential};

/// One entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A broker announces itself. It is registered fenced: it leads and
    /// joins ISRs only once unfenced. A re-registration replaces the host,
    /// port and epoch and fences the broker again.
    RegisterBroker {
        broker_id: BrokerId,
        host: String,
        port: u16,
        /// Every listener, by name; `host`/`port` are the inter-broker
        /// one's.
        #[serde(default)]
        listeners: Vec<Endpoint>,
    },
    /// The broker stops being eligible as a leader or ISR member (it
    /// stopped heartbeating, or it is shutting down), and in the same
    /// entry its partitions move: every partition it leads gets another
    /// leader (or none), and it leaves every ISR that has another member
    /// (KIP-841). The leader computes `partition_changes` with
    /// [`ClusterMetadata::fence_changes`](crate::ClusterMetadata::fence_changes);
    /// applying checks them against the state.
    FenceBroker {
        broker_id: BrokerId,
        partition_changes: Vec<PartitionChange>,
    },
    /// The broker, registered with `broker_epoch`, may lead again; in the
    /// same entry it leads the offline partitions whose ISR it is in
    /// ([`ClusterMetadata::unfence_changes`](crate::ClusterMetadata::unfence_changes)).
    UnfenceBroker {
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
        partition_changes: Vec<PartitionChange>,
    },
    /// New leaders for several partitions at once, atomically — a
    /// preferred-leader election
    /// ([`ClusterMetadata::preferred_leader_changes`](crate::ClusterMetadata::preferred_leader_changes)).
    ElectLeaders {
        partition_changes: Vec<PartitionChange>,
    },
    /// A topic with an explicit assignment: `assignment[p]` is partition
    /// p's replica list, preferred leader first.
    CreateTopic {
        name: String,
        topic_id: Uuid,
        assignment: Vec<Vec<BrokerId>>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// More partitions for a topic: `assignment[i]` is the replica list of
    /// the i-th new one (they are appended), preferred leader first.
    CreatePartitions {
        topic_id: Uuid,
        assignment: Vec<Vec<BrokerId>>,
    },
    /// A partition's new leader and ISR. The leader epoch is bumped when
    /// the leader changes, the partition epoch on any change.
    ChangePartition {
        topic: String,
        partition: i32,
        leader: Option<BrokerId>,
        isr: Vec<BrokerId>,
    },
    /// Sets (`Some`) or removes (`None`) one topic config.
    SetTopicConfig {
        topic: String,
        key: String,
        value: Option<String>,
    },
    /// Sets (`Some`) or removes (`None`) one config of group `group`
    /// (Kafka's GROUP config resource, KIP-848 and KIP-932). The group
    /// need not exist: Kafka lets configs be set before the group's first
    /// member joins. The proposer has checked the key and value.
    SetGroupConfig {
        group: String,
        key: String,
        value: Option<String>,
    },
    /// Share group `group` has share state for `topic_ids` now (KIP-932;
    /// proposed when one of its share-partitions is first initialized).
    AddShareGroupTopics {
        group: String,
        topic_ids: Vec<uuid::Uuid>,
    },
    /// The state of share group `group` was reset (offsets altered or
    /// deleted): its state epoch goes up, and `removed_topic_ids` no longer
    /// have state.
    ResetShareGroupState {
        group: String,
        removed_topic_ids: Vec<uuid::Uuid>,
    },
    /// Share group `group` is deleted (DeleteGroups).
    DeleteShareGroup {
        group: String,
    },
    /// Names the cluster: the first one applied wins, later ones change
    /// nothing and learn the name (every broker proposes one at start).
    InitCluster {
        cluster_id: String,
    },
    /// A block of `count` producer ids, never handed out before, for
    /// `broker_id`'s InitProducerId (KIP-730's AllocateProducerIds).
    AllocateProducerIds {
        broker_id: BrokerId,
        count: u32,
    },
    /// Producer ids below `below` may have been handed out before the
    /// quorum existed (a broker's metadata from before one path): none of
    /// them is allocated again.
    ReserveProducerIds {
        below: i64,
    },
    /// Sets (`Some`) or removes (`None`) a broker property that brokers
    /// change at run time (the topic defaults, `log.retention.ms` and
    /// the like), for every broker of the cluster.
    SetBrokerConfig {
        key: String,
        value: Option<String>,
    },
    /// An unclean election, for an offline partition of a topic with
    /// unclean.leader.election.enable=true: `leader`, an unfenced replica
    /// outside the (all fenced) ISR, leads with an ISR of itself. Records
    /// only the old ISR had are lost.
    ElectUncleanLeader {
        topic_id: Uuid,
        partition: i32,
        partition_epoch: PartitionEpoch,
        leader: BrokerId,
    },
    /// Starts moving a partition's replicas to `target` (Kafka's
    /// AlterPartitionReassignments); `CompleteReassignment` ends it.
    ReassignPartition {
        topic_id: Uuid,
        partition: i32,
        target: Vec<BrokerId>,
    },
    /// Cancels a reassignment under way: back to the replicas of before
    /// (Kafka's AlterPartitionReassignments with null replicas).
    CancelReassignment {
        topic_id: Uuid,
        partition: i32,
    },
    /// Ends a reassignment once every target replica is in the ISR,
    /// computed at `partition_epoch` (proposed by the partition's leader).
    CompleteReassignment {
        topic_id: Uuid,
        partition: i32,
        partition_epoch: PartitionEpoch,
    },
    /// The partition's leader changes its ISR (Kafka's AlterPartition):
    /// shrinking it when a follower falls behind, growing it when one has
    /// caught up. Fenced by the leader's epoch and the partition epoch, so
    /// a deposed leader or a change computed from an older state is
    /// refused.
    AlterPartition {
        topic_id: Uuid,
        partition: i32,
        leader: BrokerId,
        leader_epoch: LeaderEpoch,
        partition_epoch: PartitionEpoch,
        isr: Vec<BrokerId>,
    },
    /// Sets or replaces `user`'s SCRAM credential for `mechanism` (one
    /// upsertion of Kafka's AlterUserScramCredentials). The proposer
    /// derives the stored and server keys from the salted password; no
    /// password reaches the log.
    UpsertScramCredential {
        user: String,
        mechanism: ScramMechanism,
        credential: StoredScramCredential,
    },
    /// Removes `user`'s SCRAM credential for `mechanism` (one deletion of
    /// AlterUserScramCredentials); rejected if there is none.
    DeleteScramCredential {
        user: String,
        mechanism: ScramMechanism,
    },
    /// Kafka's CreateAcls: each valid binding is stored (an existing one
    /// is left as it is), each gets its own result.
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    /// Kafka's DeleteAcls: removes every ACL any filter selects.
    DeleteAcls {
        filters: Vec<AclBindingFilter>,
    },
    /// Kafka's AlterClientQuotas: each valid entity's quotas are set or
    /// removed, each entity gets its own result.
    AlterClientQuotas {
        alterations: Vec<QuotaAlteration>,
    },
}

/// One partition's new leader and ISR inside a multi-partition command,
/// computed by the leader from the state at `partition_epoch`. Applying
/// refuses it (nothing of the command is applied) when the partition's
/// epoch has moved on since: the leader recomputes and proposes again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChange {
    pub topic_id: Uuid,
    pub partition: i32,
    /// The partition epoch the change was computed from.
    pub partition_epoch: PartitionEpoch,
    /// `None`: the partition goes offline.
    pub leader: Option<BrokerId>,
    /// A subset of the current ISR: these commands never add members
    /// (joining the ISR is the replication layer's `ChangePartition`).
    pub isr: Vec<BrokerId>,
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// The broker's new registration epoch (the log index of its
    /// registration, as in Kafka).
    BrokerRegistered {
        broker_epoch: BrokerEpoch,
    },
    /// `partitions_changed`: how many partitions moved with it.
    BrokerFenced {
        partitions_changed: usize,
    },
    BrokerUnfenced {
        partitions_changed: usize,
    },
    LeadersElected {
        partitions_changed: usize,
    },
    TopicCreated {
        topic_id: Uuid,
    },
    TopicDeleted {
        topic_id: Uuid,
    },
    PartitionChanged {
        leader_epoch: LeaderEpoch,
        partition_epoch: PartitionEpoch,
    },
    TopicConfigSet,
    GroupConfigSet,
    /// A share group's state epoch after the change.
    ShareGroupChanged {
        state_epoch: i32,
    },
    BrokerConfigSet,
    /// Producer ids below this are never allocated.
    ProducerIdsReserved {
        below: i64,
    },
    /// The cluster's id: the one proposed, or the one set before it.
    ClusterInitialized {
        cluster_id: String,
    },
    /// Producer ids `first..first + count` are the proposer's.
    ProducerIdsAllocated {
        first: i64,
        count: u32,
    },
    ScramCredentialUpserted,
    ScramCredentialDeleted,
    /// Per binding of `CreateAcls`, in order: stored (or there already),
    /// or why it is invalid (Kafka's INVALID_REQUEST).
    AclsCreated {
        results: Vec<Result<(), InvalidAcl>>,
    },
    /// Per filter of `DeleteAcls`, in order: the ACLs it selected and that
    /// are now gone (sorted; an ACL two filters select is in both), or why
    /// the filter is invalid (Kafka's INVALID_REQUEST).
    AclsDeleted {
        results: Vec<Result<Vec<AclBinding>, InvalidAclFilter>>,
    },
    /// Per entity of `AlterClientQuotas`, in order: altered, or why not.
    ClientQuotasAltered {
        results: Vec<Result<(), InvalidQuota>>,
    },
    /// A log entry that is not a command (a Raft leader's blank entry or a
    /// membership change).
    NotACommand,
}

/// Why a command was rejected; a rejected command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("broker {broker_id} is not registered")]
    UnknownBroker { broker_id: BrokerId },
    #[error("broker {broker_id} is registered with epoch {current}, not {requested}")]
    StaleBrokerEpoch {
        broker_id: BrokerId,
        requested: BrokerEpoch,
        current: BrokerEpoch,
    },
    #[error("topic {name:?} already exists")]
    TopicAlreadyExists { name: String },
    #[error("topic id {topic_id} is nil or already used by topic {used_by:?}")]
    TopicIdInUse { topic_id: Uuid, used_by: String },
    #[error("topic {name:?} does not exist")]
    UnknownTopic { name: String },
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: String },
    #[error("invalid assignment: {reason}")]
    InvalidAssignment { reason: String },
    #[error("invalid partition change: {reason}")]
    InvalidPartitionChange { reason: String },
    #[error("{topic}-{partition} is not being reassigned")]
    NoReassignmentInProgress { topic: String, partition: i32 },
    #[error("no topic has id {topic_id}")]
    UnknownTopicId { topic_id: Uuid },
    /// The change was computed from an older state of the partition.
    #[error(
        "partition {partition} of topic {topic_id} is at partition epoch {current}, the change was computed at {expected}"
    )]
    StalePartitionEpoch {
        topic_id: Uuid,
        partition: i32,
        expected: PartitionEpoch,
        current: PartitionEpoch,
    },
    /// An AlterPartition from a broker that does not lead the partition
    /// at that leader epoch (Kafka's FENCED_LEADER_EPOCH / NOT_LEADER).
    #[error(
        "broker {broker_id} at leader epoch {leader_epoch:?} does not lead partition {partition} of topic {topic_id} (leader {current_leader:?} at {current_epoch:?})"
    )]
    NotPartitionLeader {
        broker_id: BrokerId,
        leader_epoch: LeaderEpoch,
        topic_id: Uuid,
        partition: i32,
        current_leader: Option<BrokerId>,
        current_epoch: LeaderEpoch,
    },
    /// A fence that would leave the broker leading a partition.
    #[error(
        "fencing broker {broker_id} leaves it the leader of partition {partition} of topic {topic_id}"
    )]
    FenceIncomplete {
        broker_id: BrokerId,
        topic_id: Uuid,
        partition: i32,
    },
    /// A CreateAcls or DeleteAcls that would change more ACLs than
    /// [`ACL_CHANGES_PER_COMMAND_MAX`](crate::ACL_CHANGES_PER_COMMAND_MAX)
    /// (Kafka's POLICY_VIOLATION for every binding or filter).
    #[error("the request would change {changes} ACLs, at most {max} may change at once")]
    TooManyAclChanges { changes: usize, max: usize },
    /// Kafka's UNACCEPTABLE_CREDENTIAL.
    #[error("unacceptable SCRAM credential for user {user:?}: {reason}")]
    UnacceptableScramCredential {
        user: String,
        reason: UnacceptableCredential,
    },
    /// A delete of a credential that does not exist (Kafka's
    /// RESOURCE_NOT_FOUND).
    #[error("user {user:?} has no {mechanism} credential")]
    UnknownScramCredential {
        user: String,
        mechanism: ScramMechanism,
    },
}

/// The result of applying one log entry: the state machine's answer to
/// its proposer.
pub type CommandResult = Result<Applied, Rejection>;
