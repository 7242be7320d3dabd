//! The cluster metadata and the deterministic application of commands to
//! it. Sans I/O: the Raft state machine owns one `ClusterMetadata` and
//! feeds it committed commands in log order.
//!
//! What is not here on purpose: broker liveness (the last heartbeat). It
//! changes every few seconds and means something only to the current
//! leader, which keeps it in memory and proposes `FenceBroker` when a
//! broker goes quiet.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::acls::{Acls, TooManyAclChanges};
use crate::client_quotas::ClientQuotas;
use crate::command::{Applied, Command, CommandResult, PartitionChange, Rejection};
use crate::share_groups::ShareGroups;
use crate::users::{ScramChangeError, Users};

/// A broker's id (Kafka's `node.id`, an int32 on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BrokerId(pub i32);

/// A broker's registration epoch: the metadata log index of its latest
/// registration, so a newer registration always has a greater epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BrokerEpoch(pub u64);

/// A partition's leader epoch: bumped on every leader change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaderEpoch(pub i32);

/// A partition's epoch: bumped on every change of leader or ISR (Kafka's
/// partition epoch, which fences stale AlterPartition requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartitionEpoch(pub i32);

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for PartitionEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for BrokerEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Kafka's longest topic name (the rule lives with the others in
/// rill-partition).
pub use rill_partition::TOPIC_NAME_BYTES_MAX;
/// Bounds a CreateTopic command, so one command cannot make the metadata
/// unboundedly large.
pub const PARTITIONS_PER_TOPIC_MAX: usize = 100_000;
/// Bounds a replica list (Kafka has no fixed limit; 16 is far beyond any
/// replication factor in use).
pub const REPLICAS_PER_PARTITION_MAX: usize = 16;

/// A listener a broker advertises: Kafka's listener name, and the
/// address clients of that listener are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// One registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broker {
    pub id: BrokerId,
    pub host: String,
    pub port: u16,
    pub epoch: BrokerEpoch,
    /// A fenced broker leads nothing and is in no ISR it is newly added to.
    pub fenced: bool,
    /// Every listener it advertises, by name (`host`/`port` are its
    /// inter-broker listener's); empty for a registration of before
    /// listeners had names.
    #[serde(default)]
    pub listeners: Vec<Endpoint>,
}

/// One partition's replicas, leader and ISR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// `None`: the partition is offline.
    pub leader: Option<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    pub isr: Vec<BrokerId>,
    /// A reassignment in progress: the replicas the partition is moving
    /// to. Until every one of them is in the ISR, `replicas` holds these
    /// and the ones they replace.
    #[serde(default)]
    pub target_replicas: Option<Vec<BrokerId>>,
    /// While moving: the target replicas the partition did not have
    /// before (Kafka's addingReplicas), so that the move can be
    /// cancelled back to the replicas it had. Empty otherwise, and for
    /// moves begun before Rill recorded it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<BrokerId>,
}

impl PartitionState {
    /// While moving, the replicas being removed (Kafka's
    /// removingReplicas): those not in the target.
    pub fn removing_replicas(&self) -> Vec<BrokerId> {
        match &self.target_replicas {
            Some(target) => self
                .replicas
                .iter()
                .filter(|b| !target.contains(b))
                .copied()
                .collect(),
            None => Vec::new(),
        }
    }
}

/// One topic: its id, configs and partitions (indexed by partition id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionState>,
}

/// Everything the metadata log says about the cluster. Not thread-safe:
/// the state machine holds it behind its lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// Empty until the first `InitCluster`.
    #[serde(default)]
    pub cluster_id: String,
    pub brokers: BTreeMap<BrokerId, Broker>,
    /// Each topic shared, so that a copy of the metadata (one per
    /// applied entry while a reader holds the last) copies no partitions.
    pub topics: BTreeMap<String, Arc<Topic>>,
    /// Producer ids below this have been handed out.
    #[serde(default)]
    pub next_producer_id: i64,
    /// Broker properties set at run time for every broker
    /// (`SetBrokerConfig`), over each broker's own file and flags.
    #[serde(default)]
    pub broker_configs: BTreeMap<String, String>,
    /// Every ACL (`CreateAcls`, `DeleteAcls`).
    #[serde(default)]
    pub acls: Acls,
    /// The log index of the last `CreateAcls` or `DeleteAcls` applied:
    /// a decision cached at another version may be stale.
    #[serde(default)]
    pub acls_version: u64,
    /// Every SCRAM credential (`UpsertScramCredential`,
    /// `DeleteScramCredential`).
    #[serde(default)]
    pub users: Users,
    /// Every client quota (`AlterClientQuotas`).
    #[serde(default)]
    pub client_quotas: ClientQuotas,
    /// The configs set on groups (`SetGroupConfig`), by group id; a group
    /// with none has no entry. Groups need not exist to have configs (as
    /// in Kafka), and deleting a group does not remove them yet. Metadata
    /// written before group configs existed has none.
    #[serde(default)]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// The share groups with share state (`AddShareGroupTopics`,
    /// `ResetShareGroupState`, `DeleteShareGroup`).
    #[serde(default)]
    pub share_groups: ShareGroups,
}

/// The most producer ids one `AllocateProducerIds` may ask for.
pub const PRODUCER_ID_BLOCK_MAX: u32 = 1 << 20;

impl ClusterMetadata {
    /// Applies `command`, found at `log_index` in the metadata log. The
    /// same commands at the same indexes give the same state on every
    /// controller. A rejected command changes nothing.
    pub fn apply(&mut self, command: &Command, log_index: u64) -> CommandResult {
        match command {
            Command::RegisterBroker {
                broker_id,
                host,
                port,
                listeners,
            } => Ok(self.register_broker(*broker_id, (host, *port, listeners), log_index)),
            Command::FenceBroker {
                broker_id,
                partition_changes,
            } => self.fence_broker(*broker_id, partition_changes),
            Command::UnfenceBroker {
                broker_id,
                broker_epoch,
                partition_changes,
            } => self.unfence_broker(*broker_id, *broker_epoch, partition_changes),
            Command::ElectLeaders { partition_changes } => {
                self.check_changes(partition_changes, |b| self.is_unfenced(b))?;
                self.apply_changes(partition_changes)?;
                Ok(Applied::LeadersElected {
                    partitions_changed: partition_changes.len(),
                })
            }
            Command::CreateTopic {
                name,
                topic_id,
                assignment,
                configs,
            } => self.create_topic(name, *topic_id, assignment, configs),
            Command::DeleteTopic { name } => self.delete_topic(name),
            Command::CreatePartitions {
                topic_id,
                assignment,
            } => self.create_partitions(*topic_id, assignment),
            Command::ChangePartition {
                topic,
                partition,
                leader,
                isr,
            } => self.change_partition(topic, *partition, *leader, isr),
            Command::SetTopicConfig { topic, key, value } => {
                self.set_topic_config(topic, key, value.as_deref())
            }
            Command::SetGroupConfig { group, key, value } => {
                self.set_group_config(group, key, value.as_deref());
                Ok(Applied::GroupConfigSet)
            }
            Command::AddShareGroupTopics { group, topic_ids } => {
                let state_epoch = self.share_groups.add_topics(group, topic_ids);
                Ok(Applied::ShareGroupChanged { state_epoch })
            }
            Command::ResetShareGroupState {
                group,
                removed_topic_ids,
            } => {
                let state_epoch = self.share_groups.reset(group, removed_topic_ids);
                Ok(Applied::ShareGroupChanged { state_epoch })
            }
            Command::DeleteShareGroup { group } => {
                let state_epoch = self.share_groups.delete(group);
                Ok(Applied::ShareGroupChanged { state_epoch })
            }
            Command::InitCluster { cluster_id } => {
                if self.cluster_id.is_empty() {
                    self.cluster_id.clone_from(cluster_id);
                }
                Ok(Applied::ClusterInitialized {
                    cluster_id: self.cluster_id.clone(),
                })
            }
            Command::AllocateProducerIds { broker_id, count } => {
                self.allocate_producer_ids(*broker_id, *count)
            }
            Command::ReserveProducerIds { below } => {
                self.next_producer_id = self.next_producer_id.max(*below);
                Ok(Applied::ProducerIdsReserved {
                    below: self.next_producer_id,
                })
            }
            Command::SetBrokerConfig { key, value } => {
                match value {
                    Some(value) => self.broker_configs.insert(key.clone(), value.clone()),
                    None => self.broker_configs.remove(key),
                };
                Ok(Applied::BrokerConfigSet)
            }
            Command::ReassignPartition {
                topic_id,
                partition,
                target,
            } => self.reassign_partition(*topic_id, *partition, target),
            Command::ElectUncleanLeader {
                topic_id,
                partition,
                partition_epoch,
                leader,
            } => self.elect_unclean_leader(*topic_id, *partition, *partition_epoch, *leader),
            Command::CompleteReassignment {
                topic_id,
                partition,
                partition_epoch,
            } => self.complete_reassignment(*topic_id, *partition, *partition_epoch),
            Command::CancelReassignment {
                topic_id,
                partition,
            } => self.cancel_reassignment(*topic_id, *partition),
            Command::AlterPartition {
                topic_id,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => self.alter_partition(
                *topic_id,
                *partition,
                (*leader, *leader_epoch, *partition_epoch),
                isr,
            ),
            Command::UpsertScramCredential {
                user,
                mechanism,
                credential,
            } => self
                .users
                .upsert(user, *mechanism, credential)
                .map(|()| Applied::ScramCredentialUpserted)
                .map_err(|e| scram_rejection(user, e)),
            Command::DeleteScramCredential { user, mechanism } => self
                .users
                .delete(user, *mechanism)
                .map(|()| Applied::ScramCredentialDeleted)
                .map_err(|e| scram_rejection(user, e)),
            Command::CreateAcls { bindings } => {
                let results = self.acls.create(bindings).map_err(acl_rejection)?;
                self.acls_version = log_index;
                Ok(Applied::AclsCreated { results })
            }
            Command::DeleteAcls { filters } => {
                let results = self.acls.delete(filters).map_err(acl_rejection)?;
                self.acls_version = log_index;
                Ok(Applied::AclsDeleted { results })
            }
            Command::AlterClientQuotas { alterations } => Ok(Applied::ClientQuotasAltered {
                results: self.client_quotas.alter(alterations),
            }),
        }
    }

    fn allocate_producer_ids(&mut self, broker_id: BrokerId, count: u32) -> CommandResult {
        if !self.brokers.contains_key(&broker_id) {
            return Err(Rejection::UnknownBroker { broker_id });
        }
        let count = count.clamp(1, PRODUCER_ID_BLOCK_MAX);
        let first = self.next_producer_id;
        self.next_producer_id = first.saturating_add(i64::from(count));
        Ok(Applied::ProducerIdsAllocated { first, count })
    }

    fn elect_unclean_leader(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        partition_epoch: PartitionEpoch,
        leader: BrokerId,
    ) -> CommandResult {
        let topic = self
            .topic_by_id(topic_id)
            .ok_or(Rejection::UnknownTopicId { topic_id })?;
        let name = topic.name.clone();
        let allowed = allows_unclean_election(topic);
        let unfenced = self.is_unfenced(leader);
        let state = self.partition_mut(&name, partition)?;
        if state.partition_epoch != partition_epoch {
            return Err(Rejection::StalePartitionEpoch {
                topic_id,
                partition,
                expected: partition_epoch,
                current: state.partition_epoch,
            });
        }
        let invalid = |reason: String| Err(Rejection::InvalidPartitionChange { reason });
        if !allowed {
            return invalid(format!("{name} does not allow unclean leader elections"));
        }
        if state.leader.is_some() {
            return invalid(format!("{name}-{partition} has a leader"));
        }
        if !state.replicas.contains(&leader) || !unfenced {
            return invalid(format!(
                "{leader} is not an unfenced replica of {name}-{partition}"
            ));
        }
        set_leader_and_isr(state, Some(leader), &[leader]);
        Ok(Applied::PartitionChanged {
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
        })
    }

    /// The unclean elections the controller may propose now: offline
    /// partitions of topics that allow them, each to its first unfenced
    /// replica.
    pub fn unclean_election_commands(&self) -> Vec<Command> {
        let mut commands = Vec::new();
        for topic in self.topics.values().filter(|t| allows_unclean_election(t)) {
            for (index, state) in (0..).zip(&topic.partitions) {
                if state.leader.is_some() || state.isr.iter().any(|b| self.is_unfenced(*b)) {
                    continue;
                }
                if let Some(leader) = state.replicas.iter().find(|b| self.is_unfenced(**b)) {
                    commands.push(Command::ElectUncleanLeader {
                        topic_id: topic.id,
                        partition: index,
                        partition_epoch: state.partition_epoch,
                        leader: *leader,
                    });
                }
            }
        }
        commands
    }

    /// The name of the topic whose id is `topic_id`.
    fn topic_name_of(&self, topic_id: Uuid) -> Result<String, Rejection> {
        self.topic_by_id(topic_id)
            .map(|t| t.name.clone())
            .ok_or(Rejection::UnknownTopicId { topic_id })
    }

    /// The brokers not fenced.
    fn unfenced_brokers(&self) -> BTreeSet<BrokerId> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect()
    }

    /// Starts moving a partition to `target` (Kafka's
    /// AlterPartitionReassignments): the replicas become the target's
    /// followed by the ones it replaces, so the new ones start fetching;
    /// the ISR stays until they catch up.
    fn reassign_partition(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        target: &[BrokerId],
    ) -> CommandResult {
        self.validate_assignment(std::slice::from_ref(&target.to_vec()))?;
        let name = self.topic_name_of(topic_id)?;
        let state = self.partition_mut(&name, partition)?;
        // What it had before any move under way.
        let original: Vec<BrokerId> = state
            .replicas
            .iter()
            .filter(|b| !state.adding_replicas.contains(b))
            .copied()
            .collect();
        let mut replicas = target.to_vec();
        for old in &state.replicas {
            if !replicas.contains(old) {
                replicas.push(*old);
            }
        }
        if replicas.len() > REPLICAS_PER_PARTITION_MAX {
            return Err(Rejection::InvalidAssignment {
                reason: format!("{} replicas while moving", replicas.len()),
            });
        }
        state.replicas = replicas;
        state.target_replicas = (state.replicas.as_slice() != target).then(|| target.to_vec());
        state.adding_replicas = match state.target_replicas {
            Some(_) => target
                .iter()
                .filter(|b| !original.contains(b))
                .copied()
                .collect(),
            None => Vec::new(),
        };
        state.partition_epoch = PartitionEpoch(state.partition_epoch.0.saturating_add(1));
        Ok(Applied::PartitionChanged {
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
        })
    }

    /// Ends a reassignment whose target replicas are all in the ISR: the
    /// replicas become the target, the ISR keeps only them, and a leader
    /// outside the target hands over to the first target replica in the
    /// ISR that is unfenced.
    fn complete_reassignment(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        partition_epoch: PartitionEpoch,
    ) -> CommandResult {
        let name = self.topic_name_of(topic_id)?;
        let unfenced = self.unfenced_brokers();
        let state = self.partition_mut(&name, partition)?;
        if state.partition_epoch != partition_epoch {
            return Err(Rejection::StalePartitionEpoch {
                topic_id,
                partition,
                expected: partition_epoch,
                current: state.partition_epoch,
            });
        }
        let invalid = |reason: String| Err(Rejection::InvalidPartitionChange { reason });
        let Some(target) = state.target_replicas.clone() else {
            return invalid("no reassignment in progress".to_owned());
        };
        if let Some(behind) = target.iter().find(|b| !state.isr.contains(b)) {
            return invalid(format!("target replica {behind} is not in the ISR yet"));
        }
        let isr: Vec<BrokerId> = state
            .isr
            .iter()
            .copied()
            .filter(|b| target.contains(b))
            .collect();
        let leader = match state.leader {
            Some(leader) if target.contains(&leader) => Some(leader),
            _ => target
                .iter()
                .copied()
                .find(|b| isr.contains(b) && unfenced.contains(b)),
        };
        state.replicas = target;
        state.target_replicas = None;
        state.adding_replicas.clear();
        set_leader_and_isr(state, leader, &isr);
        Ok(Applied::PartitionChanged {
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
        })
    }

    /// Cancels a move under way (Kafka's AlterPartitionReassignments with
    /// no replicas): the replicas it was adding leave the replicas and the
    /// ISR, and a leader among them hands over to the first unfenced
    /// replica left in the ISR. Refused when no replica of before is in
    /// the ISR (that would take an unclean election).
    fn cancel_reassignment(&mut self, topic_id: Uuid, partition: i32) -> CommandResult {
        let name = self.topic_name_of(topic_id)?;
        let unfenced = self.unfenced_brokers();
        let state = self.partition_mut(&name, partition)?;
        if state.target_replicas.is_none() {
            return Err(Rejection::NoReassignmentInProgress {
                topic: name,
                partition,
            });
        }
        let isr: Vec<BrokerId> = state
            .isr
            .iter()
            .filter(|b| !state.adding_replicas.contains(b))
            .copied()
            .collect();
        if isr.is_empty() {
            return Err(Rejection::InvalidPartitionChange {
                reason: "every in-sync replica is one the move adds: cancelling would take an \
                         unclean leader election"
                    .to_owned(),
            });
        }
        let leader = match state.leader {
            Some(leader) if isr.contains(&leader) => Some(leader),
            _ => isr.iter().copied().find(|b| unfenced.contains(b)),
        };
        let adding = std::mem::take(&mut state.adding_replicas);
        state.replicas.retain(|b| !adding.contains(b));
        state.target_replicas = None;
        set_leader_and_isr(state, leader, &isr);
        Ok(Applied::PartitionChanged {
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
        })
    }

    /// Kafka's AlterPartition checks: the proposer leads at that epoch, the
    /// change was computed from the current partition epoch, the ISR keeps
    /// the leader, holds replicas only, and adds only unfenced brokers.
    fn alter_partition(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        (leader, leader_epoch, partition_epoch): (BrokerId, LeaderEpoch, PartitionEpoch),
        isr: &[BrokerId],
    ) -> CommandResult {
        let name = self.topic_name_of(topic_id)?;
        let unfenced = self.unfenced_brokers();
        let state = self.partition_mut(&name, partition)?;
        if state.leader != Some(leader) || state.leader_epoch != leader_epoch {
            return Err(Rejection::NotPartitionLeader {
                broker_id: leader,
                leader_epoch,
                topic_id,
                partition,
                current_leader: state.leader,
                current_epoch: state.leader_epoch,
            });
        }
        if state.partition_epoch != partition_epoch {
            return Err(Rejection::StalePartitionEpoch {
                topic_id,
                partition,
                expected: partition_epoch,
                current: state.partition_epoch,
            });
        }
        let invalid = |reason: String| Err(Rejection::InvalidPartitionChange { reason });
        if !isr.contains(&leader) {
            return invalid(format!("the ISR {isr:?} leaves out its leader {leader}"));
        }
        if let Some(outsider) = isr.iter().find(|b| !state.replicas.contains(b)) {
            return invalid(format!(
                "ISR member {outsider} is not a replica ({:?})",
                state.replicas
            ));
        }
        if BTreeSet::from_iter(isr).len() != isr.len() {
            return invalid(format!("ISR {isr:?} repeats a broker"));
        }
        if let Some(fenced) = isr
            .iter()
            .find(|b| !state.isr.contains(b) && !unfenced.contains(b))
        {
            return invalid(format!("broker {fenced} is fenced and cannot join the ISR"));
        }
        set_leader_and_isr(state, Some(leader), isr);
        Ok(Applied::PartitionChanged {
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
        })
    }

    fn register_broker(
        &mut self,
        broker_id: BrokerId,
        (host, port, listeners): (&str, u16, &[Endpoint]),
        log_index: u64,
    ) -> Applied {
        let epoch = BrokerEpoch(log_index);
        if let Some(previous) = self.brokers.get(&broker_id) {
            assert!(
                previous.epoch < epoch,
                "registration at log index {log_index} is not after the previous one at {}",
                previous.epoch
            );
        }
        self.brokers.insert(
            broker_id,
            Broker {
                id: broker_id,
                host: host.to_owned(),
                port,
                epoch,
                fenced: true,
                listeners: listeners.to_vec(),
            },
        );
        Applied::BrokerRegistered {
            broker_epoch: epoch,
        }
    }

    fn fence_broker(&mut self, broker_id: BrokerId, changes: &[PartitionChange]) -> CommandResult {
        if !self.brokers.contains_key(&broker_id) {
            return Err(Rejection::UnknownBroker { broker_id });
        }
        self.check_changes(changes, |b| b != broker_id && self.is_unfenced(b))?;
        // Every partition it leads must move to another leader in this
        // same entry.
        let moved: BTreeSet<(Uuid, i32)> = changes
            .iter()
            .filter(|c| c.leader != Some(broker_id))
            .map(|c| (c.topic_id, c.partition))
            .collect();
        for topic in self.topics.values() {
            for (partition, state) in (0..).zip(&topic.partitions) {
                if state.leader == Some(broker_id) && !moved.contains(&(topic.id, partition)) {
                    return Err(Rejection::FenceIncomplete {
                        broker_id,
                        topic_id: topic.id,
                        partition,
                    });
                }
            }
        }
        self.apply_changes(changes)?;
        if let Some(broker) = self.brokers.get_mut(&broker_id) {
            broker.fenced = true;
        }
        Ok(Applied::BrokerFenced {
            partitions_changed: changes.len(),
        })
    }

    fn unfence_broker(
        &mut self,
        broker_id: BrokerId,
        epoch: BrokerEpoch,
        changes: &[PartitionChange],
    ) -> CommandResult {
        let broker = self
            .brokers
            .get(&broker_id)
            .ok_or(Rejection::UnknownBroker { broker_id })?;
        if broker.epoch != epoch {
            return Err(Rejection::StaleBrokerEpoch {
                broker_id,
                requested: epoch,
                current: broker.epoch,
            });
        }
        self.check_changes(changes, |b| b == broker_id || self.is_unfenced(b))?;
        self.apply_changes(changes)?;
        if let Some(broker) = self.brokers.get_mut(&broker_id) {
            broker.fenced = false;
        }
        Ok(Applied::BrokerUnfenced {
            partitions_changed: changes.len(),
        })
    }

    /// Whether `broker` is registered and unfenced.
    pub fn is_unfenced(&self, broker: BrokerId) -> bool {
        self.brokers.get(&broker).is_some_and(|b| !b.fenced)
    }

    /// The topic with id `topic_id`.
    pub fn topic_by_id(&self, topic_id: Uuid) -> Option<&Topic> {
        self.topics
            .values()
            .find(|t| t.id == topic_id)
            .map(|t| &**t)
    }

    /// Checks a multi-partition command's changes against the state, all
    /// before any is applied: each partition at most once, at the epoch it
    /// was computed from, the ISR a subset of the current one without
    /// repeats, the leader in it and, if it is a new leader, `eligible`.
    fn check_changes(
        &self,
        changes: &[PartitionChange],
        eligible: impl Fn(BrokerId) -> bool,
    ) -> Result<(), Rejection> {
        let invalid = |reason: String| Err(Rejection::InvalidPartitionChange { reason });
        let ids: BTreeMap<Uuid, &Topic> = self.topics.values().map(|t| (t.id, &**t)).collect();
        let mut seen = BTreeSet::new();
        for change in changes {
            let (topic_id, partition) = (change.topic_id, change.partition);
            if !seen.insert((topic_id, partition)) {
                return invalid(format!(
                    "partition {partition} of topic {topic_id} is changed twice"
                ));
            }
            let topic = ids
                .get(&topic_id)
                .ok_or(Rejection::UnknownTopicId { topic_id })?;
            let state = usize::try_from(partition)
                .ok()
                .and_then(|p| topic.partitions.get(p))
                .ok_or_else(|| Rejection::UnknownPartition {
                    topic: topic.name.clone(),
                    partition,
                })?;
            if state.partition_epoch != change.partition_epoch {
                return Err(Rejection::StalePartitionEpoch {
                    topic_id,
                    partition,
                    expected: change.partition_epoch,
                    current: state.partition_epoch,
                });
            }
            if let Some(added) = change.isr.iter().find(|b| !state.isr.contains(b)) {
                return invalid(format!(
                    "{added} is not in the ISR {:?} of {}-{partition}",
                    state.isr, topic.name
                ));
            }
            let distinct: BTreeSet<_> = change.isr.iter().collect();
            if distinct.len() != change.isr.len() {
                return invalid(format!("ISR {:?} repeats a broker", change.isr));
            }
            if let Some(leader) = change.leader {
                if !change.isr.contains(&leader) {
                    return invalid(format!(
                        "leader {leader} is not in the ISR {:?}",
                        change.isr
                    ));
                }
                if state.leader != Some(leader) && !eligible(leader) {
                    return invalid(format!(
                        "leader {leader} of {}-{partition} is fenced or unknown",
                        topic.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Applies changes [`Self::check_changes`] accepted. Every partition
    /// they name exists, then; it is looked up again, all before any is
    /// changed, so that were it missing the entry is rejected whole (on
    /// every replica alike) rather than applied in part.
    fn apply_changes(&mut self, changes: &[PartitionChange]) -> Result<(), Rejection> {
        let names: BTreeMap<Uuid, String> = self
            .topics
            .values()
            .map(|t| (t.id, t.name.clone()))
            .collect();
        let mut targets = Vec::with_capacity(changes.len());
        for change in changes {
            let name = names
                .get(&change.topic_id)
                .ok_or(Rejection::UnknownTopicId {
                    topic_id: change.topic_id,
                })?;
            self.partition_mut(name, change.partition)?;
            targets.push((name, change));
        }
        for (name, change) in targets {
            let state = self.partition_mut(name, change.partition)?;
            set_leader_and_isr(state, change.leader, &change.isr);
        }
        Ok(())
    }

    fn create_topic(
        &mut self,
        name: &str,
        topic_id: Uuid,
        assignment: &[Vec<BrokerId>],
        configs: &BTreeMap<String, String>,
    ) -> CommandResult {
        validate_topic_name(name)?;
        if self.topics.contains_key(name) {
            return Err(Rejection::TopicAlreadyExists {
                name: name.to_owned(),
            });
        }
        if topic_id.is_nil() {
            return Err(Rejection::TopicIdInUse {
                topic_id,
                used_by: String::new(),
            });
        }
        if let Some(other) = self.topics.values().find(|t| t.id == topic_id) {
            return Err(Rejection::TopicIdInUse {
                topic_id,
                used_by: other.name.clone(),
            });
        }
        self.validate_assignment(assignment)?;
        let partitions = assignment
            .iter()
            .map(|replicas| PartitionState {
                replicas: replicas.clone(),
                leader: replicas.first().copied(),
                leader_epoch: LeaderEpoch(0),
                partition_epoch: PartitionEpoch(0),
                isr: replicas.clone(),
                target_replicas: None,
                adding_replicas: Vec::new(),
            })
            .collect();
        self.topics.insert(
            name.to_owned(),
            Arc::new(Topic {
                name: name.to_owned(),
                id: topic_id,
                configs: configs.clone(),
                partitions,
            }),
        );
        Ok(Applied::TopicCreated { topic_id })
    }

    /// Whether `assignment` may be applied: 1..=PARTITIONS_PER_TOPIC_MAX
    /// partitions, each with 1..=REPLICAS_PER_PARTITION_MAX distinct,
    /// registered brokers.
    pub fn validate_assignment(&self, assignment: &[Vec<BrokerId>]) -> Result<(), Rejection> {
        let invalid = |reason: String| Err(Rejection::InvalidAssignment { reason });
        if assignment.is_empty() || assignment.len() > PARTITIONS_PER_TOPIC_MAX {
            return invalid(format!(
                "expected 1..={PARTITIONS_PER_TOPIC_MAX} partitions, found {}",
                assignment.len()
            ));
        }
        for (partition, replicas) in assignment.iter().enumerate() {
            if replicas.is_empty() || replicas.len() > REPLICAS_PER_PARTITION_MAX {
                return invalid(format!(
                    "partition {partition}: expected 1..={REPLICAS_PER_PARTITION_MAX} replicas, found {}",
                    replicas.len()
                ));
            }
            let distinct: BTreeSet<_> = replicas.iter().collect();
            if distinct.len() != replicas.len() {
                return invalid(format!(
                    "partition {partition}: replicas {replicas:?} repeat a broker"
                ));
            }
            if let Some(unknown) = replicas.iter().find(|b| !self.brokers.contains_key(b)) {
                return Err(Rejection::UnknownBroker {
                    broker_id: *unknown,
                });
            }
        }
        Ok(())
    }

    fn create_partitions(&mut self, topic_id: Uuid, assignment: &[Vec<BrokerId>]) -> CommandResult {
        self.validate_assignment(assignment)?;
        let name = self.topic_name_of(topic_id)?;
        let Some(topic) = self.topics.get_mut(&name).map(Arc::make_mut) else {
            return Err(Rejection::UnknownTopic { name });
        };
        if topic.partitions.len() + assignment.len() > PARTITIONS_PER_TOPIC_MAX {
            return Err(Rejection::InvalidAssignment {
                reason: format!(
                    "{} partitions would be more than {PARTITIONS_PER_TOPIC_MAX}",
                    topic.partitions.len() + assignment.len()
                ),
            });
        }
        topic
            .partitions
            .extend(assignment.iter().map(|replicas| PartitionState {
                replicas: replicas.clone(),
                leader: replicas.first().copied(),
                leader_epoch: LeaderEpoch(0),
                partition_epoch: PartitionEpoch(0),
                isr: replicas.clone(),
                target_replicas: None,
                adding_replicas: Vec::new(),
            }));
        Ok(Applied::TopicCreated { topic_id })
    }

    fn delete_topic(&mut self, name: &str) -> CommandResult {
        let topic = self
            .topics
            .remove(name)
            .ok_or_else(|| Rejection::UnknownTopic {
                name: name.to_owned(),
            })?;
        self.share_groups.forget_topic(topic.id);
        Ok(Applied::TopicDeleted { topic_id: topic.id })
    }

    fn change_partition(
        &mut self,
        topic: &str,
        partition: i32,
        leader: Option<BrokerId>,
        isr: &[BrokerId],
    ) -> CommandResult {
        let state = self.partition_mut(topic, partition)?;
        let invalid = |reason: String| Err(Rejection::InvalidPartitionChange { reason });
        if let Some(outsider) = isr.iter().find(|b| !state.replicas.contains(b)) {
            return invalid(format!(
                "ISR member {outsider} is not a replica of {topic}-{partition} ({:?})",
                state.replicas
            ));
        }
        let distinct: BTreeSet<_> = isr.iter().collect();
        if distinct.len() != isr.len() {
            return invalid(format!("ISR {isr:?} repeats a broker"));
        }
        if let Some(leader) = leader
            && !isr.contains(&leader)
        {
            return invalid(format!("leader {leader} is not in the ISR {isr:?}"));
        }
        set_leader_and_isr(state, leader, isr);
        Ok(Applied::PartitionChanged {
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
        })
    }

    fn partition_mut(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<&mut PartitionState, Rejection> {
        let unknown_partition = || Rejection::UnknownPartition {
            topic: topic.to_owned(),
            partition,
        };
        let state = self
            .topics
            .get_mut(topic)
            .map(Arc::make_mut)
            .ok_or_else(|| Rejection::UnknownTopic {
                name: topic.to_owned(),
            })?;
        let index = usize::try_from(partition).map_err(|_| unknown_partition())?;
        state
            .partitions
            .get_mut(index)
            .ok_or_else(unknown_partition)
    }

    fn set_topic_config(&mut self, topic: &str, key: &str, value: Option<&str>) -> CommandResult {
        let state = self
            .topics
            .get_mut(topic)
            .map(Arc::make_mut)
            .ok_or_else(|| Rejection::UnknownTopic {
                name: topic.to_owned(),
            })?;
        match value {
            Some(value) => state.configs.insert(key.to_owned(), value.to_owned()),
            None => state.configs.remove(key),
        };
        Ok(Applied::TopicConfigSet)
    }

    /// Sets or removes one config of `group`; a group left with no config
    /// has no entry, so ListConfigResources does not list it.
    fn set_group_config(&mut self, group: &str, key: &str, value: Option<&str>) {
        match value {
            Some(value) => {
                self.group_configs
                    .entry(group.to_owned())
                    .or_default()
                    .insert(key.to_owned(), value.to_owned());
            }
            None => {
                if let Some(configs) = self.group_configs.get_mut(group) {
                    configs.remove(key);
                    if configs.is_empty() {
                        self.group_configs.remove(group);
                    }
                }
            }
        }
    }
}

/// Bumps the leader epoch if the leader changes, the partition epoch
/// always.
fn set_leader_and_isr(state: &mut PartitionState, leader: Option<BrokerId>, isr: &[BrokerId]) {
    if state.leader != leader {
        state.leader_epoch = LeaderEpoch(state.leader_epoch.0.saturating_add(1));
    }
    state.leader = leader;
    state.isr = isr.to_vec();
    state.partition_epoch = PartitionEpoch(state.partition_epoch.0.saturating_add(1));
}

/// Whether the topic's unclean.leader.election.enable override is true
/// (the broker-wide default is Kafka's, false).
fn allows_unclean_election(topic: &Topic) -> bool {
    topic
        .configs
        .get("unclean.leader.election.enable")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Kafka's rules, as rill-partition states them for the directory names
/// the topic's partitions will get.
fn validate_topic_name(name: &str) -> Result<(), Rejection> {
    rill_partition::validate_topic_name(name).map_err(|invalid| Rejection::InvalidTopicName {
        name: invalid.name,
        reason: invalid.reason.to_owned(),
    })
}

fn acl_rejection(TooManyAclChanges { changes, max }: TooManyAclChanges) -> Rejection {
    Rejection::TooManyAclChanges { changes, max }
}

fn scram_rejection(user: &str, error: ScramChangeError) -> Rejection {
    match error {
        ScramChangeError::Unacceptable(reason) => Rejection::UnacceptableScramCredential {
            user: user.to_owned(),
            reason,
        },
        ScramChangeError::NotFound { user, mechanism } => {
            Rejection::UnknownScramCredential { user, mechanism }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(md: &mut ClusterMetadata, id: i32, index: u64) -> BrokerEpoch {
        let command = Command::RegisterBroker {
            broker_id: BrokerId(id),
            host: "127.0.0.1".to_owned(),
            port: 9092,
            listeners: Vec::new(),
        };
        match md.apply(&command, index) {
            Ok(Applied::BrokerRegistered { broker_epoch }) => broker_epoch,
            other => panic!("expected a registration, got {other:?}"),
        }
    }

    fn create(name: &str, id: u128, assignment: &[&[i32]]) -> Command {
        Command::CreateTopic {
            name: name.to_owned(),
            topic_id: Uuid::from_u128(id),
            assignment: assignment
                .iter()
                .map(|r| r.iter().map(|b| BrokerId(*b)).collect())
                .collect(),
            configs: BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())]),
        }
    }

    fn three_brokers() -> ClusterMetadata {
        let mut md = ClusterMetadata::default();
        for id in 1..=3 {
            register(&mut md, id, u64::try_from(id).unwrap_or(0));
        }
        md
    }

    #[test]
    fn users_and_acls_survive_a_snapshot_and_old_snapshots_load_without_them() {
        use crate::{AclBinding, AclOperation, AclPermissionType, PatternType, ResourceType};
        use crate::{ScramMechanism, StoredScramCredential};
        let mut md = three_brokers();
        let acl = AclBinding {
            resource_type: ResourceType::Group,
            resource_name: "g.".to_owned(),
            pattern_type: PatternType::Prefixed,
            principal: "User:alice".to_owned(),
            host: "*".to_owned(),
            operation: AclOperation::Read,
            permission: AclPermissionType::Allow,
        };
        let old = serde_json::to_value(&md).unwrap();
        md.apply(
            &Command::CreateAcls {
                bindings: vec![acl],
            },
            10,
        )
        .unwrap();
        let credential = StoredScramCredential {
            salt: vec![7; 32],
            stored_key: vec![8; 64],
            server_key: vec![9; 64],
            iterations: 4096,
        };
        let upsert = Command::UpsertScramCredential {
            user: "alice".to_owned(),
            mechanism: ScramMechanism::ScramSha512,
            credential,
        };
        md.apply(&upsert, 11).unwrap();
        let snapshot = serde_json::to_vec(&md).unwrap();
        let restored: ClusterMetadata = serde_json::from_slice(&snapshot).unwrap();
        assert_eq!(restored, md);
        assert!(restored.acls.authorize(
            "User:alice",
            "10.0.0.1",
            AclOperation::Describe,
            ResourceType::Group,
            "g.1",
            &[],
            false
        ));
        // A snapshot from before users and ACLs existed.
        let mut old = old;
        if let Some(fields) = old.as_object_mut() {
            assert!(fields.remove("acls").is_some() && fields.remove("users").is_some());
        }
        let restored: ClusterMetadata = serde_json::from_value(old).unwrap();
        assert!(restored.acls.is_empty() && restored.users.is_empty());
        assert_eq!(restored.brokers, md.brokers);
    }

    #[test]
    fn a_broker_registers_fenced_and_unfences_with_its_epoch() {
        let mut md = ClusterMetadata::default();
        let epoch = register(&mut md, 1, 7);
        assert_eq!(epoch, BrokerEpoch(7));
        assert!(md.brokers[&BrokerId(1)].fenced);

        let stale = Command::UnfenceBroker {
            broker_id: BrokerId(1),
            broker_epoch: BrokerEpoch(6),
            partition_changes: vec![],
        };
        assert_eq!(
            md.apply(&stale, 8),
            Err(Rejection::StaleBrokerEpoch {
                broker_id: BrokerId(1),
                requested: BrokerEpoch(6),
                current: BrokerEpoch(7)
            })
        );
        let unfence = Command::UnfenceBroker {
            broker_id: BrokerId(1),
            broker_epoch: epoch,
            partition_changes: vec![],
        };
        assert_eq!(
            md.apply(&unfence, 9),
            Ok(Applied::BrokerUnfenced {
                partitions_changed: 0
            })
        );
        assert!(!md.brokers[&BrokerId(1)].fenced);

        let fence = Command::FenceBroker {
            broker_id: BrokerId(1),
            partition_changes: vec![],
        };
        assert_eq!(
            md.apply(&fence, 10),
            Ok(Applied::BrokerFenced {
                partitions_changed: 0
            })
        );
        assert!(md.brokers[&BrokerId(1)].fenced);
        let unknown = Command::FenceBroker {
            broker_id: BrokerId(2),
            partition_changes: vec![],
        };
        assert_eq!(
            md.apply(&unknown, 11),
            Err(Rejection::UnknownBroker {
                broker_id: BrokerId(2)
            })
        );
    }

    #[test]
    fn a_reregistration_gets_a_greater_epoch_and_is_fenced_again() {
        let mut md = ClusterMetadata::default();
        let first = register(&mut md, 1, 3);
        let unfence = Command::UnfenceBroker {
            broker_id: BrokerId(1),
            broker_epoch: first,
            partition_changes: vec![],
        };
        assert!(md.apply(&unfence, 4).is_ok());
        let second = register(&mut md, 1, 12);
        assert!(second > first);
        assert!(md.brokers[&BrokerId(1)].fenced);
    }

    #[test]
    fn create_topic_takes_the_assignment_and_leads_with_the_first_replica() {
        let mut md = three_brokers();
        let result = md.apply(&create("orders", 1, &[&[1, 2, 3], &[2, 3, 1]]), 10);
        assert_eq!(
            result,
            Ok(Applied::TopicCreated {
                topic_id: Uuid::from_u128(1)
            })
        );
        let topic = &md.topics["orders"];
        assert_eq!(topic.partitions.len(), 2);
        assert_eq!(topic.partitions[1].leader, Some(BrokerId(2)));
        assert_eq!(topic.partitions[1].isr, topic.partitions[1].replicas);
        assert_eq!(topic.partitions[1].leader_epoch, LeaderEpoch(0));
        assert_eq!(topic.configs["retention.ms"], "1000");
    }

    #[test]
    fn create_topic_rejections_change_nothing() {
        let mut md = three_brokers();
        assert!(md.apply(&create("orders", 1, &[&[1]]), 10).is_ok());
        let before = md.clone();

        let cases = [
            (
                create("orders", 2, &[&[1]]),
                Rejection::TopicAlreadyExists {
                    name: "orders".to_owned(),
                },
            ),
            (
                create("other", 1, &[&[1]]),
                Rejection::TopicIdInUse {
                    topic_id: Uuid::from_u128(1),
                    used_by: "orders".to_owned(),
                },
            ),
            (
                create("other", 3, &[&[1, 9]]),
                Rejection::UnknownBroker {
                    broker_id: BrokerId(9),
                },
            ),
        ];
        for (command, expected) in cases {
            assert_eq!(md.apply(&command, 11), Err(expected));
        }
        for bad in [
            create("other", 3, &[]),
            create("other", 3, &[&[]]),
            create("other", 3, &[&[1, 1]]),
        ] {
            assert!(matches!(
                md.apply(&bad, 12),
                Err(Rejection::InvalidAssignment { .. })
            ));
        }
        for bad_name in ["", "..", "a/b", &"x".repeat(250)] {
            assert!(matches!(
                md.apply(&create(bad_name, 4, &[&[1]]), 13),
                Err(Rejection::InvalidTopicName { .. })
            ));
        }
        assert!(matches!(
            md.apply(&create("nil", 0, &[&[1]]), 14),
            Err(Rejection::TopicIdInUse { .. })
        ));
        assert_eq!(md, before);
    }

    #[test]
    fn a_leader_change_bumps_the_leader_epoch_and_an_isr_change_does_not() {
        let mut md = three_brokers();
        assert!(md.apply(&create("t", 1, &[&[1, 2, 3]]), 10).is_ok());
        let shrink = Command::ChangePartition {
            topic: "t".to_owned(),
            partition: 0,
            leader: Some(BrokerId(1)),
            isr: vec![BrokerId(1), BrokerId(2)],
        };
        assert_eq!(
            md.apply(&shrink, 11),
            Ok(Applied::PartitionChanged {
                leader_epoch: LeaderEpoch(0),
                partition_epoch: PartitionEpoch(1)
            })
        );
        let failover = Command::ChangePartition {
            topic: "t".to_owned(),
            partition: 0,
            leader: Some(BrokerId(2)),
            isr: vec![BrokerId(2)],
        };
        assert_eq!(
            md.apply(&failover, 12),
            Ok(Applied::PartitionChanged {
                leader_epoch: LeaderEpoch(1),
                partition_epoch: PartitionEpoch(2)
            })
        );
        let state = &md.topics["t"].partitions[0];
        assert_eq!(state.leader, Some(BrokerId(2)));
        assert_eq!(state.isr, vec![BrokerId(2)]);
    }

    #[test]
    fn a_partition_change_is_checked_against_the_replicas() {
        let mut md = three_brokers();
        assert!(md.apply(&create("t", 1, &[&[1, 2]]), 10).is_ok());
        let before = md.clone();
        let change = |partition, leader: Option<i32>, isr: &[i32]| Command::ChangePartition {
            topic: "t".to_owned(),
            partition,
            leader: leader.map(BrokerId),
            isr: isr.iter().map(|b| BrokerId(*b)).collect(),
        };
        for bad in [
            change(0, Some(3), &[3]),
            change(0, Some(1), &[2]),
            change(0, Some(1), &[1, 1]),
        ] {
            assert!(matches!(
                md.apply(&bad, 11),
                Err(Rejection::InvalidPartitionChange { .. })
            ));
        }
        for partition in [1, -1] {
            assert_eq!(
                md.apply(&change(partition, Some(1), &[1]), 12),
                Err(Rejection::UnknownPartition {
                    topic: "t".to_owned(),
                    partition
                })
            );
        }
        assert_eq!(md, before);
        // No leader at all: the partition is offline, and that is a leader change.
        assert_eq!(
            md.apply(&change(0, None, &[]), 13),
            Ok(Applied::PartitionChanged {
                leader_epoch: LeaderEpoch(1),
                partition_epoch: PartitionEpoch(1)
            })
        );
    }

    #[test]
    fn configs_are_set_and_removed_and_topics_deleted() {
        let mut md = three_brokers();
        assert!(md.apply(&create("t", 5, &[&[1]]), 10).is_ok());
        let set = Command::SetTopicConfig {
            topic: "t".to_owned(),
            key: "cleanup.policy".to_owned(),
            value: Some("compact".to_owned()),
        };
        assert_eq!(md.apply(&set, 11), Ok(Applied::TopicConfigSet));
        assert_eq!(md.topics["t"].configs["cleanup.policy"], "compact");
        let remove = Command::SetTopicConfig {
            topic: "t".to_owned(),
            key: "retention.ms".to_owned(),
            value: None,
        };
        assert_eq!(md.apply(&remove, 12), Ok(Applied::TopicConfigSet));
        assert!(!md.topics["t"].configs.contains_key("retention.ms"));

        let delete = Command::DeleteTopic {
            name: "t".to_owned(),
        };
        assert_eq!(
            md.apply(&delete, 13),
            Ok(Applied::TopicDeleted {
                topic_id: Uuid::from_u128(5)
            })
        );
        assert_eq!(
            md.apply(&delete, 14),
            Err(Rejection::UnknownTopic {
                name: "t".to_owned()
            })
        );
        assert!(matches!(
            md.apply(&set, 15),
            Err(Rejection::UnknownTopic { .. })
        ));
    }

    #[test]
    fn group_configs_are_set_and_removed_whether_or_not_the_group_exists() {
        let mut md = ClusterMetadata::default();
        let set = |key: &str, value: Option<&str>| Command::SetGroupConfig {
            group: "g".to_owned(),
            key: key.to_owned(),
            value: value.map(str::to_owned),
        };
        let lock = "share.record.lock.duration.ms";
        let reset = "share.auto.offset.reset";
        assert_eq!(
            md.apply(&set(lock, Some("15000")), 1),
            Ok(Applied::GroupConfigSet)
        );
        assert_eq!(
            md.apply(&set(reset, Some("earliest")), 2),
            Ok(Applied::GroupConfigSet)
        );
        assert_eq!(md.group_configs["g"][lock], "15000");
        assert_eq!(
            md.apply(&set(lock, Some("20000")), 3),
            Ok(Applied::GroupConfigSet)
        );
        assert_eq!(md.group_configs["g"][lock], "20000");
        // Removing what is not there changes nothing.
        let before = md.clone();
        assert_eq!(
            md.apply(&set("consumer.session.timeout.ms", None), 4),
            Ok(Applied::GroupConfigSet)
        );
        assert_eq!(md, before);
        md.apply(&set(lock, None), 5).unwrap();
        assert_eq!(md.group_configs["g"].len(), 1);
        // The last one gone, the group has no entry left.
        md.apply(&set(reset, None), 6).unwrap();
        assert!(md.group_configs.is_empty());
    }

    #[test]
    fn share_groups_keep_their_topics_and_state_epoch() {
        let mut md = ClusterMetadata::default();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let add = |topics: Vec<Uuid>| Command::AddShareGroupTopics {
            group: "q".to_owned(),
            topic_ids: topics,
        };
        assert_eq!(
            md.apply(&add(vec![a, b]), 1),
            Ok(Applied::ShareGroupChanged { state_epoch: 0 })
        );
        let reset = Command::ResetShareGroupState {
            group: "q".to_owned(),
            removed_topic_ids: vec![a],
        };
        assert_eq!(
            md.apply(&reset, 2),
            Ok(Applied::ShareGroupChanged { state_epoch: 1 })
        );
        let q = md.share_groups.get("q").unwrap();
        assert_eq!(q.topics.iter().copied().collect::<Vec<_>>(), [b]);
        assert_eq!(md.share_groups.state_epoch("q"), 1);
        // A deleted topic leaves the group; a deleted group has no topics.
        md.share_groups.forget_topic(b);
        assert!(md.share_groups.get("q").unwrap().topics.is_empty());
        let delete = Command::DeleteShareGroup {
            group: "q".to_owned(),
        };
        md.apply(&add(vec![a]), 3).unwrap();
        assert_eq!(
            md.apply(&delete, 4),
            Ok(Applied::ShareGroupChanged { state_epoch: 2 })
        );
        // Its epoch stays, so that what was loaded before is stale.
        assert!(md.share_groups.get("q").unwrap().topics.is_empty());
        assert_eq!(md.share_groups.state_epoch("q"), 2);
    }

    #[test]
    fn metadata_written_before_group_configs_still_loads() {
        let mut md = three_brokers();
        md.apply(&create("t", 5, &[&[1]]), 10).unwrap();
        let mut json = serde_json::to_value(&md).unwrap();
        json.as_object_mut().unwrap().remove("group_configs");
        let old: ClusterMetadata = serde_json::from_value(json).unwrap();
        assert_eq!(old, md);
        assert!(old.group_configs.is_empty());
    }

    #[test]
    fn the_same_log_gives_the_same_state() {
        let log = [
            create("a", 1, &[&[1, 2]]),
            create("b", 2, &[&[2, 3], &[3, 1]]),
            Command::ChangePartition {
                topic: "b".to_owned(),
                partition: 1,
                leader: Some(BrokerId(1)),
                isr: vec![BrokerId(1)],
            },
            Command::DeleteTopic {
                name: "a".to_owned(),
            },
        ];
        let replay = || {
            let mut md = three_brokers();
            let results: Vec<_> = log
                .iter()
                .zip(10..)
                .map(|(command, index)| md.apply(command, index))
                .collect();
            (md, results)
        };
        assert_eq!(replay(), replay());
    }
}

#[cfg(test)]
mod replication_command_tests {
    use super::*;

    /// Brokers 1..=`brokers` registered and unfenced, and topic "t" with
    /// `assignment` and `configs`.
    pub(super) fn cluster_with_topic(
        brokers: i32,
        assignment: &[&[i32]],
        configs: &[(&str, &str)],
    ) -> (ClusterMetadata, Uuid) {
        let mut md = ClusterMetadata::default();
        for id in 1..=brokers {
            let register = Command::RegisterBroker {
                broker_id: BrokerId(id),
                host: "127.0.0.1".to_owned(),
                port: 9092,
                listeners: Vec::new(),
            };
            md.apply(&register, u64::try_from(id).unwrap_or(0)).unwrap();
            let epoch = md.brokers[&BrokerId(id)].epoch;
            let unfence = Command::UnfenceBroker {
                broker_id: BrokerId(id),
                broker_epoch: epoch,
                partition_changes: Vec::new(),
            };
            md.apply(&unfence, 100).unwrap();
        }
        let topic_id = Uuid::from_u128(7);
        let create = Command::CreateTopic {
            name: "t".to_owned(),
            topic_id,
            assignment: assignment
                .iter()
                .map(|r| r.iter().map(|b| BrokerId(*b)).collect())
                .collect(),
            configs: configs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        md.apply(&create, 101).unwrap();
        (md, topic_id)
    }

    fn metadata_with_topic() -> (ClusterMetadata, Uuid) {
        cluster_with_topic(3, &[&[1, 2, 3]], &[])
    }

    fn alter(topic_id: Uuid, leader: i32, epochs: (i32, i32), isr: &[i32]) -> Command {
        Command::AlterPartition {
            topic_id,
            partition: 0,
            leader: BrokerId(leader),
            leader_epoch: LeaderEpoch(epochs.0),
            partition_epoch: PartitionEpoch(epochs.1),
            isr: isr.iter().map(|b| BrokerId(*b)).collect(),
        }
    }

    #[test]
    fn the_leader_shrinks_and_grows_its_isr_at_its_epochs() {
        let (mut md, id) = metadata_with_topic();
        let shrunk = md.apply(&alter(id, 1, (0, 0), &[1, 2]), 12).unwrap();
        assert_eq!(
            shrunk,
            Applied::PartitionChanged {
                leader_epoch: LeaderEpoch(0),
                partition_epoch: PartitionEpoch(1)
            }
        );
        assert_eq!(md.topics["t"].partitions[0].isr, [BrokerId(1), BrokerId(2)]);
        // Computed from the old partition epoch: refused, nothing changes.
        let stale = md.apply(&alter(id, 1, (0, 0), &[1, 2, 3]), 13);
        assert!(
            matches!(stale, Err(Rejection::StalePartitionEpoch { .. })),
            "{stale:?}"
        );
        md.apply(&alter(id, 1, (0, 1), &[1, 2, 3]), 14).unwrap();
        assert_eq!(md.topics["t"].partitions[0].isr.len(), 3);
    }

    #[test]
    fn a_deposed_or_wrong_leader_cannot_alter_the_isr() {
        let (mut md, id) = metadata_with_topic();
        let wrong = md.apply(&alter(id, 2, (0, 0), &[2, 3]), 12);
        assert!(
            matches!(wrong, Err(Rejection::NotPartitionLeader { .. })),
            "{wrong:?}"
        );
        let old_epoch = md.apply(&alter(id, 1, (-1, 0), &[1]), 12);
        assert!(
            matches!(old_epoch, Err(Rejection::NotPartitionLeader { .. })),
            "{old_epoch:?}"
        );
        let without_leader = md.apply(&alter(id, 1, (0, 0), &[2, 3]), 12);
        assert!(matches!(
            without_leader,
            Err(Rejection::InvalidPartitionChange { .. })
        ));
        assert_eq!(md.topics["t"].partitions[0].isr.len(), 3);
    }

    #[test]
    fn a_fenced_broker_cannot_join_an_isr() {
        let (mut md, id) = metadata_with_topic();
        md.apply(&alter(id, 1, (0, 0), &[1, 2]), 12).unwrap();
        md.brokers.get_mut(&BrokerId(3)).unwrap().fenced = true;
        let joined = md.apply(&alter(id, 1, (0, 1), &[1, 2, 3]), 13);
        assert!(
            matches!(joined, Err(Rejection::InvalidPartitionChange { .. })),
            "{joined:?}"
        );
    }

    #[test]
    fn producer_id_blocks_never_overlap_and_the_first_cluster_id_stays() {
        let (mut md, _) = metadata_with_topic();
        let block = |md: &mut ClusterMetadata, broker| {
            let command = Command::AllocateProducerIds {
                broker_id: BrokerId(broker),
                count: 1000,
            };
            match md.apply(&command, 20) {
                Ok(Applied::ProducerIdsAllocated { first, count }) => (first, count),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(block(&mut md, 1), (0, 1000));
        assert_eq!(block(&mut md, 2), (1000, 1000));
        let unknown = Command::AllocateProducerIds {
            broker_id: BrokerId(9),
            count: 1,
        };
        assert!(md.apply(&unknown, 21).is_err());
        for (proposed, kept) in [("first", "first"), ("second", "first")] {
            let init = Command::InitCluster {
                cluster_id: proposed.to_owned(),
            };
            assert_eq!(
                md.apply(&init, 22),
                Ok(Applied::ClusterInitialized {
                    cluster_id: kept.to_owned()
                })
            );
        }
    }
}

#[cfg(test)]
mod reassignment_tests {
    use super::*;

    #[test]
    fn a_partition_moves_once_its_new_replicas_are_in_sync() {
        let (mut md, topic_id) =
            super::replication_command_tests::cluster_with_topic(4, &[&[1, 2]], &[]);
        let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
        let reassign = Command::ReassignPartition {
            topic_id,
            partition: 0,
            target: ids(&[3, 4]),
        };
        md.apply(&reassign, 12).unwrap();
        let state = md.topics["t"].partitions[0].clone();
        assert_eq!(state.replicas, ids(&[3, 4, 1, 2]));
        assert_eq!(state.isr, ids(&[1, 2]));
        assert_eq!(state.leader, Some(BrokerId(1)));
        // Not before the new replicas are in sync.
        let early = Command::CompleteReassignment {
            topic_id,
            partition: 0,
            partition_epoch: state.partition_epoch,
        };
        assert!(md.apply(&early, 13).is_err());
        let grown = Command::AlterPartition {
            topic_id,
            partition: 0,
            leader: BrokerId(1),
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            isr: ids(&[1, 2, 3, 4]),
        };
        md.apply(&grown, 14).unwrap();
        let epoch = md.topics["t"].partitions[0].partition_epoch;
        let complete = Command::CompleteReassignment {
            topic_id,
            partition: 0,
            partition_epoch: epoch,
        };
        md.apply(&complete, 15).unwrap();
        let done = &md.topics["t"].partitions[0];
        assert_eq!(done.replicas, ids(&[3, 4]));
        assert_eq!(done.isr, ids(&[3, 4]));
        assert_eq!(done.leader, Some(BrokerId(3)), "the old leader handed over");
        assert!(done.leader_epoch > state.leader_epoch);
        assert_eq!(done.target_replicas, None);
        let unknown = Command::ReassignPartition {
            topic_id,
            partition: 0,
            target: ids(&[9]),
        };
        assert!(matches!(
            md.apply(&unknown, 16),
            Err(Rejection::UnknownBroker { .. })
        ));
    }
}

#[cfg(test)]
mod cancel_reassignment_tests {
    use super::*;

    fn ids(v: &[i32]) -> Vec<BrokerId> {
        v.iter().map(|b| BrokerId(*b)).collect()
    }

    fn reassign(md: &mut ClusterMetadata, topic_id: Uuid, target: &[i32], index: u64) {
        let command = Command::ReassignPartition {
            topic_id,
            partition: 0,
            target: ids(target),
        };
        md.apply(&command, index).unwrap();
    }

    fn cancel(md: &mut ClusterMetadata, topic_id: Uuid, index: u64) -> CommandResult {
        md.apply(
            &Command::CancelReassignment {
                topic_id,
                partition: 0,
            },
            index,
        )
    }

    #[test]
    fn a_move_lists_what_it_adds_and_removes_and_cancels_back() {
        let (mut md, topic_id) =
            super::replication_command_tests::cluster_with_topic(4, &[&[1, 2]], &[]);
        reassign(&mut md, topic_id, &[1, 3], 12);
        let moving = md.topics["t"].partitions[0].clone();
        assert_eq!(moving.replicas, ids(&[1, 3, 2]));
        assert_eq!(moving.adding_replicas, ids(&[3]));
        assert_eq!(moving.removing_replicas(), ids(&[2]));
        // A second move replaces the first: still measured from [1, 2].
        reassign(&mut md, topic_id, &[3, 4], 13);
        let moving = md.topics["t"].partitions[0].clone();
        assert_eq!(moving.replicas, ids(&[3, 4, 1, 2]));
        assert_eq!(moving.adding_replicas, ids(&[3, 4]));
        assert_eq!(moving.removing_replicas(), ids(&[1, 2]));

        cancel(&mut md, topic_id, 14).unwrap();
        let back = &md.topics["t"].partitions[0];
        assert_eq!(back.replicas, ids(&[1, 2]));
        assert_eq!(back.isr, ids(&[1, 2]));
        assert_eq!(back.leader, Some(BrokerId(1)));
        assert_eq!(back.target_replicas, None);
        assert!(back.adding_replicas.is_empty() && back.removing_replicas().is_empty());
        assert!(back.partition_epoch > moving.partition_epoch);
        assert!(matches!(
            cancel(&mut md, topic_id, 15),
            Err(Rejection::NoReassignmentInProgress { .. })
        ));
    }

    #[test]
    fn cancelling_hands_leadership_back_and_refuses_an_unclean_revert() {
        let (mut md, topic_id) =
            super::replication_command_tests::cluster_with_topic(4, &[&[1, 2]], &[]);
        reassign(&mut md, topic_id, &[3], 12);
        // 3 caught up and leads; 1 and 2 fell out of the ISR.
        let state = Arc::make_mut(md.topics.get_mut("t").unwrap());
        state.partitions[0].isr = ids(&[3]);
        state.partitions[0].leader = Some(BrokerId(3));
        assert!(matches!(
            cancel(&mut md, topic_id, 13),
            Err(Rejection::InvalidPartitionChange { .. })
        ));
        assert_eq!(md.topics["t"].partitions[0].adding_replicas, ids(&[3]));
        // With 2 back in the ISR, the move is undone and 2 leads.
        Arc::make_mut(md.topics.get_mut("t").unwrap()).partitions[0].isr = ids(&[3, 2]);
        let before = md.topics["t"].partitions[0].leader_epoch;
        cancel(&mut md, topic_id, 14).unwrap();
        let back = &md.topics["t"].partitions[0];
        assert_eq!(back.replicas, ids(&[1, 2]));
        assert_eq!(back.isr, ids(&[2]));
        assert_eq!(back.leader, Some(BrokerId(2)));
        assert!(back.leader_epoch > before);
    }
}

#[cfg(test)]
mod unclean_election_tests {
    use super::*;

    fn offline_topic(unclean: bool) -> (ClusterMetadata, Uuid) {
        let configs: &[(&str, &str)] = if unclean {
            &[("unclean.leader.election.enable", "true")]
        } else {
            &[]
        };
        let (mut md, topic_id) =
            super::replication_command_tests::cluster_with_topic(2, &[&[1, 2]], configs);
        // Broker 2 fell out of the ISR, then broker 1 (the last member)
        // was fenced: offline. Broker 2 comes back unfenced.
        let state = Arc::make_mut(md.topics.get_mut("t").unwrap());
        state.partitions[0].isr = vec![BrokerId(1)];
        state.partitions[0].leader = None;
        md.brokers.get_mut(&BrokerId(1)).unwrap().fenced = true;
        (md, topic_id)
    }

    #[test]
    fn an_offline_partition_gets_an_unclean_leader_only_if_its_topic_allows_it() {
        let (md, _) = offline_topic(false);
        assert!(md.unclean_election_commands().is_empty());
        let (mut md, _) = offline_topic(true);
        let commands = md.unclean_election_commands();
        assert_eq!(commands.len(), 1);
        md.apply(&commands[0], 4).unwrap();
        let state = &md.topics["t"].partitions[0];
        assert_eq!(state.leader, Some(BrokerId(2)));
        assert_eq!(state.isr, [BrokerId(2)]);
        assert!(
            md.unclean_election_commands().is_empty(),
            "nothing more to elect"
        );
        // Proposed again (stale): refused.
        assert!(md.apply(&commands[0], 5).is_err());
    }
}
