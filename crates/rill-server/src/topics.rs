//! Topics and the broker configs that change at run time, as the metadata
//! quorum holds them: read from this broker's applied metadata, changed
//! by proposing the quorum's commands — alone or in a cluster, the same
//! way. Every local effect (a partition's log created, deleted or
//! reconfigured) follows from the metadata as the replicas apply it.
//!
//! The changing calls block on the proposal: the admin handlers call them
//! from the blocking pool.
//!
//! Thread-safe: it holds no state of its own beyond the node's.

use std::collections::BTreeMap;
use std::sync::Arc;

use rill_cluster::{BrokerId, ClusterMetadata, Command, Topic};
use uuid::Uuid;

use rill_partition::ManagerError;

use crate::broker_properties;
use crate::cluster::{ClusterNode, ProposalError};
use crate::config::BrokerConfig;
use crate::effective_config::{self, BrokerLayers, EffectiveConfig};
use crate::properties::Properties;
use crate::topic_config::{self, ConfigValueError};

/// The most partitions one topic may have: a bound on what one request
/// can make the broker create.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 100_000;

/// Whether `topic` is one of the coordinators' internal topics, which
/// clients may not write (Kafka's Topic.isInternal).
pub(crate) fn is_internal(topic: &str) -> bool {
    topic == rill_group::OFFSETS_TOPIC
        || topic == rill_txn::TXN_STATE_TOPIC
        || topic == rill_share::SHARE_STATE_TOPIC
}

/// Why a topic operation was refused; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic {name:?} already exists")]
    AlreadyExists { name: String },
    #[error("topic {name:?} does not exist")]
    UnknownTopic { name: String },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("{reason}")]
    InvalidPartitions { reason: String },
    #[error("replication factor {requested} is more than the brokers available")]
    InvalidReplicationFactor { requested: i16 },
    #[error("invalid replica assignment: {reason}")]
    InvalidReplicaAssignment { reason: String },
    #[error("{reason}")]
    InvalidRequest { reason: String },
    #[error(transparent)]
    InvalidConfig(#[from] ConfigValueError),
    #[error(transparent)]
    Logs(#[from] ManagerError),
    /// Auto-creation was proposed; the topic has no leader yet.
    #[error("topic {name:?} is being created")]
    LeaderNotAvailable { name: String },
    #[error(transparent)]
    Cluster(#[from] ProposalError),
}

/// What a CreateTopics entry asks for.
#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    /// -1: num.partitions.
    pub partitions: i32,
    /// -1: the default (1).
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// The brokers of each partition, by partition index, chosen by the
    /// client (then `partitions` and `replication_factor` are -1), rather
    /// than placed by the controller.
    pub assignment: Option<Vec<(i32, Vec<i32>)>>,
}

/// A client's own replica assignment for a new topic, checked as Kafka
/// does: partitions and replication factor left at -1 (else
/// INVALID_REQUEST), partitions numbered 0, 1, 2, ... once each, then
/// [`check_replicas`]. The brokers of each partition, in partition order.
fn checked_assignment(
    topic: &NewTopic,
    assignment: &[(i32, Vec<i32>)],
    metadata: &ClusterMetadata,
) -> Result<Vec<Vec<BrokerId>>, TopicError> {
    if topic.partitions != -1 || topic.replication_factor != -1 {
        return Err(TopicError::InvalidRequest {
            reason: "both numPartitions or replicationFactor and replicasAssignments were set; \
                     only one may be"
                .to_owned(),
        });
    }
    let mut by_index: Vec<&(i32, Vec<i32>)> = assignment.iter().collect();
    by_index.sort_unstable_by_key(|(index, _)| *index);
    if let Some(((index, _), expected)) = by_index.iter().zip(0..).find(|((i, _), e)| i != e) {
        return Err(TopicError::InvalidReplicaAssignment {
            reason: format!(
                "partitions must be numbered 0, 1, 2, ... once each; found {index} where {expected} belongs"
            ),
        });
    }
    let assignment: Vec<Vec<BrokerId>> = by_index
        .into_iter()
        .map(|(_, brokers)| brokers.iter().map(|b| BrokerId(*b)).collect())
        .collect();
    let replication_factor = assignment.first().map_or(0, Vec::len);
    check_replicas(&assignment, replication_factor, metadata)?;
    Ok(assignment)
}

/// A client's own brokers for new partitions: what the metadata accepts
/// (its `validate_assignment`: partition and replica bounds, distinct,
/// registered brokers), with `replication_factor` replicas each, all of
/// them unfenced; else INVALID_REPLICA_ASSIGNMENT, as Kafka answers.
fn check_replicas(
    assignment: &[Vec<BrokerId>],
    replication_factor: usize,
    metadata: &ClusterMetadata,
) -> Result<(), TopicError> {
    let invalid = |reason: String| Err(TopicError::InvalidReplicaAssignment { reason });
    if let Err(rejection) = metadata.validate_assignment(assignment) {
        return invalid(rejection.to_string());
    }
    for (index, replicas) in assignment.iter().enumerate() {
        if replicas.len() != replication_factor {
            return invalid(format!(
                "assignment {index} has {} replicas; each needs the replication factor, {replication_factor}",
                replicas.len()
            ));
        }
        if let Some(fenced) = replicas.iter().find(|b| !metadata.is_unfenced(**b)) {
            return invalid(format!(
                "assignment {index} names broker {fenced}, which is fenced"
            ));
        }
    }
    Ok(())
}

/// What CreateTopics reports of a topic created (or that would be).
#[derive(Clone, Debug)]
pub(crate) struct CreatedTopic {
    /// Nil for `validate_only`.
    pub id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// See the module doc.
#[derive(Debug)]
pub(crate) struct Topics {
    node: Arc<ClusterNode>,
    /// num.partitions: for CreateTopics asking -1 and auto-created topics.
    num_partitions: i32,
    /// The broker's file and flags: topic defaults under the cluster's.
    properties: Properties,
}

impl Topics {
    pub(crate) fn new(node: Arc<ClusterNode>, config: &BrokerConfig) -> Topics {
        Topics {
            node,
            num_partitions: config.num_partitions,
            properties: config.properties.clone(),
        }
    }

    /// The metadata as this broker has applied it.
    pub(crate) fn metadata(&self) -> Arc<ClusterMetadata> {
        self.node.metadata()
    }

    pub(crate) fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.metadata().topics.get(name).cloned()
    }

    /// How many partitions `name` has, if it exists.
    pub(crate) fn partition_count(&self, name: &str) -> Option<i32> {
        let metadata = self.metadata();
        let topic = metadata.topics.get(name)?;
        Some(i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX))
    }

    /// Whether the metadata has partition `partition` of `name`, wherever
    /// its replicas are (a group's offsets may name any partition).
    pub(crate) fn has_partition(&self, name: &str, partition: i32) -> bool {
        self.partition_count(name)
            .is_some_and(|count| (0..count).contains(&partition))
    }

    pub(crate) fn has_topic(&self, name: &str) -> bool {
        self.metadata().topics.contains_key(name)
    }

    pub(crate) fn name_by_id(&self, id: Uuid) -> Option<String> {
        self.metadata().topic_by_id(id).map(|t| t.name.clone())
    }

    /// Broker configs set at run time, for every broker of the cluster.
    pub(crate) fn dynamic_broker_configs(&self) -> BTreeMap<String, String> {
        self.metadata().broker_configs.clone()
    }

    /// The effective configs of `topic` with their sources.
    pub(crate) fn configs_of(&self, topic: &str) -> Option<Vec<EffectiveConfig>> {
        let metadata = self.metadata();
        let overrides = &metadata.topics.get(topic)?.configs;
        Some(self.effective(overrides, &metadata.broker_configs))
    }

    /// The effective configs a topic with `overrides` would have.
    pub(crate) fn configs_with(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<EffectiveConfig> {
        self.effective(overrides, &self.metadata().broker_configs)
    }

    fn effective(
        &self,
        overrides: &BTreeMap<String, String>,
        dynamic: &BTreeMap<String, String>,
    ) -> Vec<EffectiveConfig> {
        effective_config::effective(
            overrides,
            BrokerLayers {
                dynamic,
                static_: &self.properties,
            },
        )
    }

    /// Checks that `overrides` make a valid log config here.
    fn check_configs(
        &self,
        overrides: &BTreeMap<String, String>,
        dynamic: &BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        for (key, value) in overrides {
            topic_config::validate_topic_override(key, value)?;
        }
        effective_config::log_config(
            overrides,
            BrokerLayers {
                dynamic,
                static_: &self.properties,
            },
        )?;
        Ok(())
    }

    /// Creates a topic (or, with `validate_only`, checks that it could
    /// be), its replicas placed over the unfenced brokers. Blocking.
    ///
    /// The caller then applies the metadata here
    /// ([`ClusterNode::apply_metadata`], once for a request of many topics:
    /// each application walks every partition, so one per topic made
    /// creating thousands of topics quadratic).
    pub(crate) fn create(
        &self,
        topic: &NewTopic,
        validate_only: bool,
    ) -> Result<CreatedTopic, TopicError> {
        rill_partition::validate_topic_name(&topic.name).map_err(|e| TopicError::InvalidName {
            name: topic.name.clone(),
            reason: e.to_string(),
        })?;
        let metadata = self.metadata();
        let assignment = match &topic.assignment {
            Some(assignment) => Some(checked_assignment(topic, assignment, &metadata)?),
            None => None,
        };
        let partitions = match &assignment {
            Some(assignment) => i32::try_from(assignment.len()).unwrap_or(i32::MAX),
            None if topic.partitions == -1 => self.num_partitions,
            None => topic.partitions,
        };
        if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
            return Err(TopicError::InvalidPartitions {
                reason: format!(
                    "number of partitions must be in [1, {PARTITIONS_PER_TOPIC_MAX}], found {partitions}"
                ),
            });
        }
        let replication_factor = match (&assignment, topic.replication_factor) {
            (Some(assignment), _) => assignment.first().map_or(1, |replicas| {
                i16::try_from(replicas.len()).unwrap_or(i16::MAX)
            }),
            (None, -1) => self.node.config().default_replication_factor,
            (None, n) if n >= 1 => n,
            (None, requested) => return Err(TopicError::InvalidReplicationFactor { requested }),
        };
        self.check_configs(&topic.configs, &metadata.broker_configs)?;
        if metadata.topics.contains_key(&topic.name) {
            return Err(TopicError::AlreadyExists {
                name: topic.name.clone(),
            });
        }
        let unfenced = metadata.brokers.values().filter(|b| !b.fenced).count();
        let replicas = usize::try_from(replication_factor).unwrap_or(0);
        if assignment.is_none() && replicas > unfenced {
            return Err(TopicError::InvalidReplicationFactor {
                requested: replication_factor,
            });
        }
        let partition_count = usize::try_from(partitions).unwrap_or(0);
        if validate_only {
            return Ok(CreatedTopic {
                id: Uuid::nil(),
                partitions,
                configs: topic.configs.clone(),
            });
        }
        match assignment {
            Some(assignment) => {
                let command = Command::CreateTopic {
                    name: topic.name.clone(),
                    topic_id: Uuid::new_v4(),
                    assignment,
                    configs: topic.configs.clone(),
                };
                block_on(self.node.propose(command))?;
            }
            None => {
                block_on(self.node.create_topic(
                    &topic.name,
                    partition_count,
                    replicas,
                    topic.configs.clone(),
                ))?;
            }
        }
        tracing::info!(topic = %topic.name, partitions, replication_factor, "created topic");
        let created = self
            .topic(&topic.name)
            .ok_or_else(|| TopicError::UnknownTopic {
                name: topic.name.clone(),
            })?;
        Ok(CreatedTopic {
            id: created.id,
            partitions,
            configs: created.configs.clone(),
        })
    }

    /// Creates `topic` with the broker's defaults if it does not exist
    /// (auto.create.topics.enable): the creation is proposed in the
    /// background and the answer is LEADER_NOT_AVAILABLE, which clients
    /// retry, as Kafka does.
    pub(crate) fn auto_create(&self, topic: &str) -> Result<Arc<Topic>, TopicError> {
        if let Some(existing) = self.topic(topic) {
            return Ok(existing);
        }
        rill_partition::validate_topic_name(topic).map_err(|e| TopicError::InvalidName {
            name: topic.to_string(),
            reason: e.to_string(),
        })?;
        let node = Arc::clone(&self.node);
        let name = topic.to_string();
        let partitions = usize::try_from(self.num_partitions).unwrap_or(1);
        tokio::spawn(async move {
            let replication_factor =
                usize::try_from(node.config().default_replication_factor).unwrap_or(1);
            match node
                .create_topic(&name, partitions, replication_factor, BTreeMap::new())
                .await
            {
                Ok(_) => {
                    apply_in_background(Arc::clone(&node)).await;
                    // Whole or not at all, as CreateTopics.
                    let undone = tokio::task::spawn_blocking(move || undo_unmade(&node, &[name]));
                    if let Err(join) = undone.await {
                        std::panic::resume_unwind(join.into_panic());
                    }
                }
                Err(error) => {
                    tracing::debug!(topic = %name, %error, "auto-creating a topic failed")
                }
            }
        });
        Err(TopicError::LeaderNotAvailable {
            name: topic.to_string(),
        })
    }

    /// See [`undo_unmade`]: those of `topics` not made whole here, deleted
    /// again, each with the cause. Blocking.
    pub(crate) fn undo_unmade(&self, topics: &[String]) -> Vec<(String, String)> {
        undo_unmade(&self.node, topics)
    }

    /// Deletes a topic; every broker deletes its replicas as it applies
    /// the metadata. Blocking.
    pub(crate) fn delete(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        let topic = self.topic(name).ok_or_else(|| TopicError::UnknownTopic {
            name: name.to_string(),
        })?;
        block_on(self.node.propose(Command::DeleteTopic {
            name: name.to_string(),
        }))?;
        self.node.apply_metadata();
        tracing::info!(topic = %name, "deleted topic");
        Ok(topic)
    }

    /// Grows a topic to `count` partitions, placed like a new topic's.
    /// Blocking.
    pub(crate) fn create_partitions(
        &self,
        name: &str,
        (count, assignment): (i32, Option<Vec<Vec<i32>>>),
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let metadata = self.metadata();
        let topic = metadata
            .topics
            .get(name)
            .ok_or_else(|| TopicError::UnknownTopic {
                name: name.to_string(),
            })?;
        let current = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        if count <= current {
            return Err(TopicError::InvalidPartitions {
                reason: format!(
                    "topic currently has {current} partitions, which is higher than or equal to the requested {count}"
                ),
            });
        }
        if count > PARTITIONS_PER_TOPIC_MAX {
            return Err(TopicError::InvalidPartitions {
                reason: format!("at most {PARTITIONS_PER_TOPIC_MAX} partitions, asked for {count}"),
            });
        }
        let command = match assignment {
            Some(assignment) => {
                let added = usize::try_from(count - current).unwrap_or(0);
                if assignment.len() != added {
                    return Err(TopicError::InvalidReplicaAssignment {
                        reason: format!(
                            "increasing the number of partitions by {added} but {} assignments provided",
                            assignment.len()
                        ),
                    });
                }
                let assignment: Vec<Vec<BrokerId>> = assignment
                    .iter()
                    .map(|replicas| replicas.iter().map(|b| BrokerId(*b)).collect())
                    .collect();
                let replication_factor = topic.partitions.first().map_or(1, |p| {
                    p.target_replicas.as_ref().unwrap_or(&p.replicas).len()
                });
                check_replicas(&assignment, replication_factor, &metadata)?;
                Command::CreatePartitions {
                    topic_id: topic.id,
                    assignment,
                }
            }
            None => rill_cluster::create_partitions_command(
                &metadata,
                name,
                usize::try_from(count).unwrap_or(0),
            )
            .map_err(ProposalError::from)?
            .ok_or_else(|| TopicError::UnknownTopic {
                name: name.to_string(),
            })?,
        };
        if !validate_only {
            block_on(self.node.propose(command))?;
            self.node.apply_metadata();
        }
        Ok(())
    }

    /// Replaces a topic's overrides. Blocking.
    pub(crate) fn set_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let metadata = self.metadata();
        let current = &metadata
            .topics
            .get(name)
            .ok_or_else(|| TopicError::UnknownTopic {
                name: name.to_string(),
            })?
            .configs;
        self.check_configs(&configs, &metadata.broker_configs)?;
        if validate_only {
            return Ok(());
        }
        for (key, value) in changes(current, &configs) {
            block_on(self.node.propose(Command::SetTopicConfig {
                topic: name.to_string(),
                key,
                value,
            }))?;
        }
        self.node.apply_metadata();
        Ok(())
    }

    /// Replaces the broker configs set at run time (the topic defaults),
    /// for every broker of the cluster. Blocking.
    pub(crate) fn set_broker_configs(
        &self,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        for name in configs.keys() {
            broker_properties::validate_broker_property(name, &configs)?;
        }
        let metadata = self.metadata();
        for topic in metadata.topics.values() {
            effective_config::log_config(
                &topic.configs,
                BrokerLayers {
                    dynamic: &configs,
                    static_: &self.properties,
                },
            )?;
        }
        if validate_only {
            return Ok(());
        }
        for (key, value) in changes(&metadata.broker_configs, &configs) {
            block_on(self.node.propose(Command::SetBrokerConfig { key, value }))?;
        }
        self.node.apply_metadata();
        Ok(())
    }

    /// A producer id never handed out before by any broker. Blocking.
    pub(crate) fn next_producer_id(&self) -> Result<i64, TopicError> {
        Ok(block_on(self.node.next_producer_id())?)
    }
}

/// The keys to set (`Some`) or remove (`None`) to turn `current` into
/// `wanted`.
pub(crate) fn changes(
    current: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Vec<(String, Option<String>)> {
    let mut changes: Vec<(String, Option<String>)> = wanted
        .iter()
        .filter(|(key, value)| current.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), Some(value.clone())))
        .collect();
    changes.extend(
        current
            .keys()
            .filter(|key| !wanted.contains_key(*key))
            .map(|key| (key.clone(), None)),
    );
    changes
}

/// Applies the metadata on the blocking pool, from a task.
pub(crate) async fn apply_in_background(node: Arc<ClusterNode>) {
    let applied = tokio::task::spawn_blocking(move || node.apply_metadata()).await;
    if let Err(join) = applied {
        std::panic::resume_unwind(join.into_panic());
    }
}

/// Topics are made whole or not at all: each of `topics` a replica of
/// which on this broker could not be made (out of inodes, disk space or
/// memory maps, a failing directory) is deleted again, all in one apply;
/// returned with the cause, for the client. Blocking.
fn undo_unmade(node: &ClusterNode, topics: &[String]) -> Vec<(String, String)> {
    let unmade: Vec<(String, String)> = topics
        .iter()
        .filter_map(|topic| {
            let (partition, cause) = node.replicas.not_created(topic)?;
            let refusal = format!(
                "cannot create partition {partition} on broker {}: {cause}",
                node.node_id()
            );
            tracing::error!(%topic, %refusal, "topic not created: deleting what was made of it");
            Some((topic.clone(), refusal))
        })
        .collect();
    for (topic, _) in &unmade {
        let command = Command::DeleteTopic {
            name: topic.clone(),
        };
        if let Err(error) = block_on(node.propose(command)) {
            tracing::error!(%topic, %error, "cannot delete the topic not created");
        }
    }
    if !unmade.is_empty() {
        node.apply_metadata();
    }
    unmade
}

/// Runs a proposal to completion from a blocking-pool thread.
fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, ProposalError>>,
) -> Result<T, ProposalError> {
    tokio::runtime::Handle::current().block_on(work)
}
