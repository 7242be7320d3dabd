//! The broker's shared state: its configuration, the log manager with
//! every partition, the topic metadata, and the watches that wake long
//! polls. Handlers reach everything through one `Arc<Broker>`.
//!
//! Thread-safe. Topic changes (create, delete, grow, alter) hold the
//! metadata mutex across the metadata write and the partition changes, so
//! they apply one at a time and in the same order on disk and in memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use rill_partition::{LogManager, ManagerConfig, ManagerError, Partition, TopicPartition};
use rill_storage::{Disk, LogConfig, RealDisk};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::cluster::{ClusterNode, ClusterStartError, ProposalError};
use crate::config::{BrokerConfig, Properties};
use crate::groups::{Groups, LoadError, OFFSETS_TOPIC};
use crate::metadata_store::{MetadataError, MetadataStore, TopicMetadata};
use crate::topic_config::{self, BrokerLayers, ConfigValueError};

/// A config's definition, effective value and where the value comes from.
pub(crate) type EffectiveConfig = (
    &'static topic_config::TopicConfigDef,
    String,
    topic_config::ConfigSource,
);

/// The most partitions one topic may have: a bound on what one request
/// can make the broker create.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 100_000;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("cannot create log directory {path}: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Logs(#[from] ManagerError),
    #[error(transparent)]
    Config(#[from] ConfigValueError),
    #[error("cannot create {OFFSETS_TOPIC}: {source}")]
    OffsetsTopic {
        #[source]
        source: TopicError,
    },
    #[error(transparent)]
    Groups(#[from] LoadError),
}

/// Why a topic operation was refused; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    #[error("topic {name:?} already exists")]
    AlreadyExists { name: String },
    #[error("topic {name:?} does not exist")]
    UnknownTopic { name: String },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("{reason}")]
    InvalidPartitions { reason: String },
    #[error("replication factor {requested} is not possible with 1 broker")]
    InvalidReplicationFactor { requested: i16 },
    #[error(transparent)]
    InvalidConfig(#[from] ConfigValueError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Logs(#[from] ManagerError),
    /// Auto-creation was proposed; the topic has no leader yet.
    #[error("topic {name:?} is being created")]
    LeaderNotAvailable { name: String },
    #[error(transparent)]
    Cluster(#[from] ProposalError),
}

/// Why this broker may not serve a partition's leader (produce, consumer
/// fetch, offsets): each maps to one Kafka error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeadershipError {
    #[error("this broker has no such partition")]
    UnknownPartition,
    #[error("this broker does not lead the partition")]
    NotLeader,
    /// The client's leader epoch is older than the leader's.
    #[error("the request's leader epoch is older than the leader's")]
    FencedLeaderEpoch,
    /// The client's leader epoch is newer than this broker knows.
    #[error("the request's leader epoch is newer than this broker knows")]
    UnknownLeaderEpoch,
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
}

/// The broker: see the module documentation.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    logs: Arc<LogManager>,
    metadata: Mutex<MetadataStore>,
    /// The group coordinator, once `__consumer_offsets` is loaded; in a
    /// cluster, replaced whenever the offsets partitions this broker leads
    /// change.
    groups: parking_lot::RwLock<Option<Arc<Groups>>>,
    /// Long polls to wake per partition.
    waiters: Mutex<HashMap<TopicPartition, Vec<Weak<Notify>>>>,
    /// This broker's place in its cluster, once joined (clustered mode).
    cluster: OnceLock<Arc<ClusterNode>>,
}

impl Broker {
    /// Opens the log directories (recovering partitions after an unclean
    /// stop), loads the metadata, and reconciles the two: partitions of
    /// topics that no longer exist are deleted, missing ones created.
    pub fn open(config: BrokerConfig) -> Result<Arc<Broker>, StartError> {
        Broker::open_with_disk(config, Arc::new(RealDisk))
    }

    /// [`Broker::open`] with the logs' reservations, writes and syncs
    /// going through `disk` (tests inject a full or failing disk).
    pub fn open_with_disk(
        config: BrokerConfig,
        disk: Arc<dyn Disk>,
    ) -> Result<Arc<Broker>, StartError> {
        for dir in &config.log_dirs {
            std::fs::create_dir_all(dir).map_err(|source| StartError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        }
        let first_dir = config.log_dirs.first().cloned().unwrap_or_default();
        let metadata = MetadataStore::open(&first_dir)?;
        let manager_config = ManagerConfig {
            retention_check_interval_ms: config.retention_check_interval_ms,
            checkpoint_interval_ms: config.checkpoint_interval_ms,
            cleaner_backoff_ms: config.cleaner_backoff_ms,
            recovery_threads: config.recovery_threads,
            flush_threads: config.flush_threads,
            flush_sync_mode: config.flush_sync_mode,
            ..ManagerConfig::new(config.log_dirs.clone())
        };
        let layers = BrokerLayers {
            dynamic: metadata.broker_configs(),
            static_: &config.properties,
        };
        let topic_configs: HashMap<String, LogConfig> = metadata
            .topics()
            .iter()
            .map(|(name, topic)| {
                topic_config::log_config(&topic.configs, layers).map(|c| (name.clone(), c))
            })
            .collect::<Result<_, _>>()?;
        let default_config = topic_config::log_config(&BTreeMap::new(), layers)?;
        let (logs, report) = LogManager::open_with_disk(
            manager_config,
            &|tp: &TopicPartition| {
                topic_configs
                    .get(tp.topic.as_str())
                    .copied()
                    .unwrap_or(default_config)
            },
            disk,
        )?;
        if !report.recovered.is_empty() {
            tracing::info!(
                partitions = report.recovered.len(),
                "recovered partitions after an unclean shutdown"
            );
        }
        let broker = Broker {
            config,
            logs,
            metadata: Mutex::new(metadata),
            waiters: Mutex::new(HashMap::new()),
            groups: parking_lot::RwLock::new(None),
            cluster: OnceLock::new(),
        };
        if broker.config.cluster.is_some() {
            // The cluster's metadata says which partitions stay; it is
            // applied once the broker joins (`join_cluster`).
            return Ok(Arc::new(broker));
        }
        broker.reconcile()?;
        let partitions = broker.offsets_topic()?;
        let groups = Groups::load(&broker, broker.config.group.clone(), partitions, None)?;
        *broker.groups.write() = Some(Arc::new(groups));
        Ok(Arc::new(broker))
    }

    /// Creates `__consumer_offsets` if it does not exist (compacted, with
    /// offsets.topic.num.partitions and offsets.topic.segment.bytes) and
    /// returns its partition count.
    fn offsets_topic(&self) -> Result<i32, StartError> {
        if let Some(topic) = self.topic(OFFSETS_TOPIC) {
            return Ok(topic.partitions);
        }
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                self.config.offsets_topic_segment_bytes.to_string(),
            ),
        ]);
        let created = self
            .create_topic(
                &NewTopic {
                    name: OFFSETS_TOPIC.to_string(),
                    partitions: self.config.offsets_topic_partitions,
                    replication_factor: -1,
                    configs,
                },
                false,
            )
            .map_err(|source| StartError::OffsetsTopic { source })?;
        Ok(created.partitions)
    }

    /// The group coordinator.
    pub(crate) fn groups(&self) -> Option<Arc<Groups>> {
        self.groups.read().clone()
    }

    /// The coordinator of `group`, if this broker is it: else
    /// COORDINATOR_LOAD_IN_PROGRESS (nothing loaded yet) or NOT_COORDINATOR
    /// (another broker leads its offsets partition), which clients answer
    /// by finding the coordinator again.
    pub(crate) fn groups_for(
        &self,
        group: &str,
    ) -> Result<Arc<Groups>, kafka_protocol::ResponseError> {
        use kafka_protocol::ResponseError;
        match self.groups() {
            Some(groups) if groups.coordinates(group) => Ok(groups),
            Some(_) => Err(ResponseError::NotCoordinator),
            None if self.cluster().is_some() => Err(ResponseError::NotCoordinator),
            None => Err(ResponseError::CoordinatorLoadInProgress),
        }
    }

    /// In a cluster: the broker leading `group`'s offsets partition, which
    /// coordinates it. Without an offsets topic yet, creation is proposed
    /// (replication factor offsets.topic.replication.factor, capped at
    /// the brokers registered, once that many are unfenced) and the
    /// answer is COORDINATOR_NOT_AVAILABLE, which clients retry.
    pub(crate) fn group_coordinator_node(
        &self,
        group: &str,
    ) -> Result<(i32, crate::config::HostPort), kafka_protocol::ResponseError> {
        use kafka_protocol::ResponseError;
        let node = self
            .cluster()
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let metadata = node.metadata();
        let Some(topic) = metadata.topics.get(OFFSETS_TOPIC) else {
            self.create_offsets_topic_in_cluster(node);
            return Err(ResponseError::CoordinatorNotAvailable);
        };
        let partitions = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let index = rill_group::partition_for(group, partitions);
        let leader = usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .and_then(|p| p.leader)
            .and_then(|leader| metadata.brokers.get(&leader))
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        Ok((
            leader.id.0,
            crate::config::HostPort {
                host: leader.host.clone(),
                port: leader.port,
            },
        ))
    }

    fn create_offsets_topic_in_cluster(&self, node: &Arc<ClusterNode>) {
        let metadata = node.metadata();
        let wanted = usize::try_from(node.config().offsets_topic_replication_factor).unwrap_or(1);
        let replication_factor = wanted.min(metadata.brokers.len()).max(1);
        let unfenced = metadata.brokers.values().filter(|b| !b.fenced).count();
        if unfenced < replication_factor {
            tracing::debug!(
                unfenced,
                replication_factor,
                "waiting for brokers before creating {OFFSETS_TOPIC}"
            );
            return;
        }
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                self.config.offsets_topic_segment_bytes.to_string(),
            ),
        ]);
        let partitions = usize::try_from(self.config.offsets_topic_partitions).unwrap_or(1);
        let node = Arc::clone(node);
        tokio::spawn(async move {
            match node
                .create_topic(OFFSETS_TOPIC, partitions, replication_factor, configs)
                .await
            {
                Ok(_) => tracing::info!(partitions, replication_factor, "created {OFFSETS_TOPIC}"),
                Err(error) => tracing::debug!(%error, "creating {OFFSETS_TOPIC}"),
            }
        });
    }

    /// Loads the groups of the offsets partitions in `led` (a cluster
    /// broker's leadership changed), replacing the coordinator. Blocking.
    pub(crate) fn coordinate(&self, led: BTreeSet<i32>) {
        let Some(topic) = self.topic(OFFSETS_TOPIC) else {
            return;
        };
        let loaded = if led.is_empty() {
            Ok(None)
        } else {
            Groups::load(
                self,
                self.config.group.clone(),
                topic.partitions,
                Some(led.clone()),
            )
            .map(|g| Some(Arc::new(g)))
        };
        match loaded {
            Ok(groups) => {
                let old = std::mem::replace(&mut *self.groups.write(), groups);
                if let Some(old) = old {
                    old.wake_timers();
                }
                tracing::info!(partitions = ?led, "coordinating the groups of these offsets partitions");
            }
            Err(error) => {
                tracing::error!(%error, "cannot load the groups of the offsets partitions led")
            }
        }
    }

    /// Joins the cluster named by controller.quorum.voters: starts this
    /// node's controller, registers, and from then on follows the
    /// metadata. Does nothing for a broker without a quorum. Call once,
    /// before serving.
    pub async fn join_cluster(self: &Arc<Self>) -> Result<(), ClusterStartError> {
        let Some(config) = self.config.cluster.clone() else {
            return Ok(());
        };
        let node = ClusterNode::start(self, &config).await?;
        let _ = self.cluster.set(node); // Joined once, here.
        Ok(())
    }

    /// This broker's cluster node, when clustered.
    pub(crate) fn cluster(&self) -> Option<&Arc<ClusterNode>> {
        self.cluster.get()
    }

    /// Runs a proposal to completion from a blocking-pool thread (the
    /// admin handlers run there).
    fn block_on_cluster<T>(
        &self,
        work: impl AsyncFnOnce(&ClusterNode) -> Result<T, ProposalError>,
    ) -> Option<Result<T, ProposalError>> {
        let node = self.cluster.get()?;
        Some(tokio::runtime::Handle::current().block_on(work(node)))
    }

    /// The replica of `tp`, created (with the topic's `configs` over the
    /// broker's defaults) if this broker has none yet. Blocking.
    pub(crate) fn ensure_partition(
        &self,
        tp: &TopicPartition,
        configs: &BTreeMap<String, String>,
    ) -> Result<Arc<Partition>, TopicError> {
        if let Some(partition) = self.logs.get(tp) {
            return Ok(partition);
        }
        let config = self.log_config_with(&self.metadata.lock(), configs)?;
        Ok(self.logs.get_or_create(tp, config)?)
    }

    /// Deletes this broker's replica of `tp`, if any. Blocking.
    pub(crate) fn delete_partition(&self, tp: &TopicPartition) {
        match self.logs.delete(tp) {
            Ok(()) => tracing::info!(partition = %tp, "deleted the replica"),
            Err(ManagerError::NotFound { .. }) => {}
            Err(error) => tracing::error!(partition = %tp, %error, "cannot delete the replica"),
        }
        self.waiters.lock().remove(tp);
    }

    /// Applies a topic's configs from the cluster metadata to its local
    /// replicas.
    pub(crate) fn apply_topic_configs(
        &self,
        name: &str,
        partitions: usize,
        configs: &BTreeMap<String, String>,
    ) {
        let config = self.log_config_with(&self.metadata.lock(), configs);
        match config {
            Ok(config) => {
                self.apply_log_config(name, i32::try_from(partitions).unwrap_or(i32::MAX), config)
            }
            Err(error) => {
                tracing::error!(topic = name, %error, "the cluster's topic configs are invalid here")
            }
        }
    }

    /// The effective min.insync.replicas of a topic with `overrides`.
    pub(crate) fn min_insync_replicas(&self, overrides: &BTreeMap<String, String>) -> usize {
        self.default_topic_configs(overrides)
            .into_iter()
            .find(|(def, _, _)| def.name == "min.insync.replicas")
            .and_then(|(_, value, _)| value.parse().ok())
            .unwrap_or(1)
    }

    fn reconcile(&self) -> Result<(), StartError> {
        let metadata = self.metadata.lock();
        for partition in self.logs.partitions() {
            let tp = partition.topic_partition();
            let known = metadata
                .topic(tp.topic.as_str())
                .is_some_and(|t| tp.partition < t.partitions);
            if !known {
                tracing::warn!(partition = %tp, "deleting a partition of no known topic");
                self.logs.delete(tp)?;
            }
        }
        for (name, topic) in metadata.topics() {
            let config = self.log_config_locked(&metadata, name)?;
            for index in 0..topic.partitions {
                self.logs
                    .get_or_create(&TopicPartition::new(name, index), config)?;
            }
        }
        Ok(())
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn cluster_id(&self) -> String {
        if let Some(node) = self.cluster() {
            return node.metadata().cluster_id.clone();
        }
        self.metadata.lock().cluster_id().to_string()
    }

    pub fn logs(&self) -> &LogManager {
        &self.logs
    }

    pub fn partition(&self, topic_partition: &TopicPartition) -> Option<Arc<Partition>> {
        self.logs.get(topic_partition)
    }

    /// The partition, if this broker leads it at a leader epoch the
    /// request agrees with (`current_leader_epoch`, -1: unchecked), with
    /// that epoch. A single broker leads every partition it has, at
    /// [`crate::LEADER_EPOCH`].
    pub(crate) fn leader_partition(
        &self,
        topic_partition: &TopicPartition,
        current_leader_epoch: i32,
    ) -> Result<(Arc<Partition>, i32), LeadershipError> {
        let partition = self.partition(topic_partition);
        let epoch = match self.cluster() {
            None => crate::LEADER_EPOCH,
            Some(node) => match node.replicas.leader_epoch(topic_partition) {
                Some(epoch) => epoch,
                None if partition.is_some() || self.has_topic(&topic_partition.topic) => {
                    return Err(LeadershipError::NotLeader);
                }
                None => return Err(LeadershipError::UnknownPartition),
            },
        };
        let partition = partition.ok_or(LeadershipError::UnknownPartition)?;
        if current_leader_epoch >= 0 && current_leader_epoch < epoch {
            return Err(LeadershipError::FencedLeaderEpoch);
        }
        if current_leader_epoch > epoch {
            return Err(LeadershipError::UnknownLeaderEpoch);
        }
        Ok((partition, epoch))
    }

    /// Every topic with its metadata, by name.
    pub fn topics(&self) -> BTreeMap<String, TopicMetadata> {
        if let Some(node) = self.cluster() {
            return node
                .metadata()
                .topics
                .values()
                .map(|t| (t.name.clone(), cluster_topic(t)))
                .collect();
        }
        self.metadata.lock().topics().clone()
    }

    /// Whether `name` exists, without copying its metadata.
    pub fn has_topic(&self, name: &str) -> bool {
        if let Some(node) = self.cluster() {
            return node.metadata().topics.contains_key(name);
        }
        self.metadata.lock().topic(name).is_some()
    }

    pub fn topic(&self, name: &str) -> Option<TopicMetadata> {
        if let Some(node) = self.cluster() {
            return node.metadata().topics.get(name).map(cluster_topic);
        }
        self.metadata.lock().topic(name).cloned()
    }

    pub fn topic_name_by_id(&self, id: Uuid) -> Option<String> {
        if let Some(node) = self.cluster() {
            return node.metadata().topic_by_id(id).map(|t| t.name.clone());
        }
        self.metadata
            .lock()
            .topic_by_id(id)
            .map(|(name, _)| name.clone())
    }

    /// Broker configs changed at run time.
    pub fn dynamic_broker_configs(&self) -> Properties {
        self.metadata.lock().broker_configs().clone()
    }

    /// A producer id never used before (in a cluster: by any broker).
    /// Blocking.
    pub fn next_producer_id(&self) -> Result<i64, TopicError> {
        if let Some(result) = self.block_on_cluster(async |node| node.next_producer_id().await) {
            return Ok(result?);
        }
        Ok(self.metadata.lock().next_producer_id()?)
    }

    /// The effective configs of `topic` with their sources.
    pub(crate) fn topic_configs(&self, topic: &str) -> Option<Vec<EffectiveConfig>> {
        let overrides = self.metadata.lock().topic(topic)?.configs.clone();
        Some(self.default_topic_configs(&overrides))
    }

    /// The effective configs a topic with `overrides` would have.
    pub(crate) fn default_topic_configs(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<EffectiveConfig> {
        let metadata = self.metadata.lock();
        let layers = BrokerLayers {
            dynamic: metadata.broker_configs(),
            static_: &self.config.properties,
        };
        topic_config::effective(overrides, layers)
    }

    fn log_config_locked(
        &self,
        metadata: &MetadataStore,
        topic: &str,
    ) -> Result<LogConfig, ConfigValueError> {
        let empty = BTreeMap::new();
        let overrides = metadata.topic(topic).map_or(&empty, |t| &t.configs);
        self.log_config_with(metadata, overrides)
    }

    /// The log config of a topic with `overrides` over the broker's
    /// dynamic and static layers.
    fn log_config_with(
        &self,
        metadata: &MetadataStore,
        overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, ConfigValueError> {
        topic_config::log_config(
            overrides,
            BrokerLayers {
                dynamic: metadata.broker_configs(),
                static_: &self.config.properties,
            },
        )
    }

    /// Creates a topic (or, with `validate_only`, checks that it could be).
    pub fn create_topic(
        &self,
        topic: &NewTopic,
        validate_only: bool,
    ) -> Result<TopicMetadata, TopicError> {
        rill_partition::validate_topic_name(&topic.name).map_err(|e| TopicError::InvalidName {
            name: topic.name.clone(),
            reason: e.to_string(),
        })?;
        let partitions = if topic.partitions == -1 {
            self.config.num_partitions
        } else {
            topic.partitions
        };
        if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
            return Err(TopicError::InvalidPartitions {
                reason: format!(
                    "number of partitions must be in [1, {PARTITIONS_PER_TOPIC_MAX}], found {partitions}"
                ),
            });
        }
        if self.cluster.get().is_none()
            && topic.replication_factor != -1
            && topic.replication_factor != 1
        {
            return Err(TopicError::InvalidReplicationFactor {
                requested: topic.replication_factor,
            });
        }
        for (name, value) in &topic.configs {
            topic_config::validate_topic_override(name, value)?;
        }
        if let Some(node) = self.cluster.get() {
            return self.create_topic_in_cluster(node, topic, partitions, validate_only);
        }
        let mut metadata = self.metadata.lock();
        if metadata.topic(&topic.name).is_some() {
            return Err(TopicError::AlreadyExists {
                name: topic.name.clone(),
            });
        }
        let config = self.log_config_with(&metadata, &topic.configs)?;
        if validate_only {
            return Ok(TopicMetadata {
                id: Uuid::nil().to_string(),
                partitions,
                configs: topic.configs.clone(),
            });
        }
        let created = metadata.add_topic(&topic.name, partitions, topic.configs.clone())?;
        for index in 0..partitions {
            self.logs
                .get_or_create(&TopicPartition::new(&topic.name, index), config)?;
        }
        tracing::info!(topic = %topic.name, partitions, "created topic");
        Ok(created)
    }

    fn create_topic_in_cluster(
        &self,
        node: &ClusterNode,
        topic: &NewTopic,
        partitions: i32,
        validate_only: bool,
    ) -> Result<TopicMetadata, TopicError> {
        let replication_factor = match topic.replication_factor {
            -1 => node.config().default_replication_factor,
            n if n >= 1 => n,
            requested => return Err(TopicError::InvalidReplicationFactor { requested }),
        };
        if self.has_topic(&topic.name) {
            return Err(TopicError::AlreadyExists {
                name: topic.name.clone(),
            });
        }
        let unfenced = node
            .metadata()
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .count();
        if usize::try_from(replication_factor).unwrap_or(0) > unfenced {
            return Err(TopicError::Cluster(ProposalError::Placement(
                rill_cluster::PlacementError::ReplicationFactorTooLarge {
                    replication_factor: usize::try_from(replication_factor).unwrap_or(0),
                    brokers: unfenced,
                },
            )));
        }
        if validate_only {
            return Ok(TopicMetadata {
                id: Uuid::nil().to_string(),
                partitions,
                configs: topic.configs.clone(),
            });
        }
        let name = topic.name.clone();
        let configs = topic.configs.clone();
        tokio::runtime::Handle::current().block_on(node.create_topic(
            &name,
            usize::try_from(partitions).unwrap_or(0),
            usize::try_from(replication_factor).unwrap_or(0),
            configs,
        ))?;
        tracing::info!(topic = %topic.name, partitions, replication_factor, "created topic");
        self.topic(&topic.name).ok_or(TopicError::UnknownTopic {
            name: topic.name.clone(),
        })
    }

    /// Creates `topic` with the broker's defaults if it does not exist
    /// (auto.create.topics.enable), returning its metadata. In a cluster
    /// the creation is proposed in the background and the answer is
    /// LEADER_NOT_AVAILABLE, which clients retry, as Kafka does.
    pub fn auto_create_topic(&self, topic: &str) -> Result<TopicMetadata, TopicError> {
        if let Some(node) = self.cluster.get() {
            rill_partition::validate_topic_name(topic).map_err(|e| TopicError::InvalidName {
                name: topic.to_string(),
                reason: e.to_string(),
            })?;
            let node = Arc::clone(node);
            let name = topic.to_string();
            let partitions = usize::try_from(self.config.num_partitions).unwrap_or(1);
            tokio::spawn(async move {
                let replication_factor =
                    usize::try_from(node.config().default_replication_factor).unwrap_or(1);
                if let Err(error) = node
                    .create_topic(&name, partitions, replication_factor, BTreeMap::new())
                    .await
                {
                    tracing::debug!(topic = %name, %error, "auto-creating a topic failed");
                }
            });
            return Err(TopicError::LeaderNotAvailable {
                name: topic.to_string(),
            });
        }
        match self.create_topic(
            &NewTopic {
                name: topic.to_string(),
                partitions: -1,
                replication_factor: -1,
                configs: BTreeMap::new(),
            },
            false,
        ) {
            Err(TopicError::AlreadyExists { .. }) => {
                self.topic(topic).ok_or_else(|| TopicError::UnknownTopic {
                    name: topic.to_string(),
                })
            }
            other => other,
        }
    }

    /// Deletes a topic and its partitions (in a cluster: on every broker,
    /// as each applies the metadata).
    pub fn delete_topic(&self, name: &str) -> Result<TopicMetadata, TopicError> {
        if self.cluster.get().is_some() {
            let topic = self.topic(name).ok_or_else(|| TopicError::UnknownTopic {
                name: name.to_string(),
            })?;
            let command = rill_cluster::Command::DeleteTopic {
                name: name.to_string(),
            };
            if let Some(result) = self.block_on_cluster(async |node| node.propose(command).await) {
                result?;
            }
            tracing::info!(topic = %name, "deleted topic");
            return Ok(topic);
        }
        let mut metadata = self.metadata.lock();
        let removed = metadata
            .remove_topic(name)?
            .ok_or_else(|| TopicError::UnknownTopic {
                name: name.to_string(),
            })?;
        for index in 0..removed.partitions {
            let tp = TopicPartition::new(name, index);
            match self.logs.delete(&tp) {
                Ok(()) | Err(ManagerError::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
            self.waiters.lock().remove(&tp);
        }
        tracing::info!(topic = %name, "deleted topic");
        Ok(removed)
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        if self.cluster.get().is_some() {
            return self.create_partitions_in_cluster(name, count, validate_only);
        }
        let mut metadata = self.metadata.lock();
        let current = metadata
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic {
                name: name.to_string(),
            })?
            .partitions;
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
        if validate_only {
            return Ok(());
        }
        let config = self.log_config_locked(&metadata, name)?;
        metadata.set_partition_count(name, count)?;
        for index in current..count {
            self.logs
                .get_or_create(&TopicPartition::new(name, index), config)?;
        }
        Ok(())
    }

    fn create_partitions_in_cluster(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let current = self
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic {
                name: name.to_string(),
            })?
            .partitions;
        if count <= current || count > PARTITIONS_PER_TOPIC_MAX {
            return Err(TopicError::InvalidPartitions {
                reason: format!(
                    "the topic has {current} partitions; expected more, at most {PARTITIONS_PER_TOPIC_MAX}, found {count}"
                ),
            });
        }
        let Some(result) = self.block_on_cluster(async |node| {
            let command = rill_cluster::create_partitions_command(
                &node.metadata(),
                name,
                usize::try_from(count).unwrap_or(0),
            )?;
            let Some(command) = command else {
                return Ok(false);
            };
            if !validate_only {
                node.propose(command).await?;
            }
            Ok(true)
        }) else {
            return Ok(());
        };
        match result? {
            true => Ok(()),
            false => Err(TopicError::UnknownTopic {
                name: name.to_string(),
            }),
        }
    }

    /// Replaces a topic's overrides, applying them to its partitions.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        for (key, value) in &configs {
            topic_config::validate_topic_override(key, value)?;
        }
        if self.cluster.get().is_some() {
            return self.set_topic_configs_in_cluster(name, configs, validate_only);
        }
        let mut metadata = self.metadata.lock();
        let topic = metadata
            .topic(name)
            .cloned()
            .ok_or_else(|| TopicError::UnknownTopic {
                name: name.to_string(),
            })?;
        let config = self.log_config_with(&metadata, &configs)?;
        if validate_only {
            return Ok(());
        }
        metadata.set_topic_configs(name, configs)?;
        drop(metadata);
        self.apply_log_config(name, topic.partitions, config);
        Ok(())
    }

    fn set_topic_configs_in_cluster(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let current = self
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic {
                name: name.to_string(),
            })?
            .configs;
        // Checked as a single broker would before proposing.
        self.log_config_with(&self.metadata.lock(), &configs)?;
        if validate_only {
            return Ok(());
        }
        let mut commands = Vec::new();
        for (key, value) in &configs {
            if current.get(key) != Some(value) {
                commands.push((key.clone(), Some(value.clone())));
            }
        }
        for key in current.keys().filter(|k| !configs.contains_key(*k)) {
            commands.push((key.clone(), None));
        }
        for (key, value) in commands {
            let command = rill_cluster::Command::SetTopicConfig {
                topic: name.to_string(),
                key,
                value,
            };
            if let Some(result) = self.block_on_cluster(async |node| node.propose(command).await) {
                result?;
            }
        }
        Ok(())
    }

    /// Replaces the broker's dynamic configs, applying topic defaults to
    /// every topic that does not override them.
    pub fn set_dynamic_broker_configs(
        &self,
        configs: Properties,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        for name in configs.keys() {
            topic_config::validate_broker_property(name, &configs)?;
        }
        let mut metadata = self.metadata.lock();
        let mut updated = Vec::new();
        for (name, topic) in metadata.topics() {
            let config = topic_config::log_config(
                &topic.configs,
                BrokerLayers {
                    dynamic: &configs,
                    static_: &self.config.properties,
                },
            )?;
            updated.push((name.clone(), topic.partitions, config));
        }
        if validate_only {
            return Ok(());
        }
        metadata.set_broker_configs(configs)?;
        drop(metadata);
        for (name, partitions, config) in updated {
            self.apply_log_config(&name, partitions, config);
        }
        Ok(())
    }

    fn apply_log_config(&self, topic: &str, partitions: i32, config: LogConfig) {
        for index in 0..partitions {
            if let Some(partition) = self.logs.get(&TopicPartition::new(topic, index))
                && let Err(error) = partition.log().set_config(config)
            {
                tracing::warn!(topic, partition = index, %error, "could not apply the new config");
            }
        }
    }

    /// Registers `waiter` to be notified at the next append acknowledged
    /// on the partition (long polls). A waiter is notified once per
    /// registration; dead waiters are pruned as others register.
    pub(crate) fn register_waiter(&self, topic_partition: &TopicPartition, waiter: &Arc<Notify>) {
        let mut waiters = self.waiters.lock();
        let list = waiters.entry(topic_partition.clone()).or_default();
        list.retain(|w| w.strong_count() > 0 && !w.ptr_eq(&Arc::downgrade(waiter)));
        list.push(Arc::downgrade(waiter));
    }

    /// Wakes the long polls waiting on the partition.
    pub(crate) fn notify(&self, topic_partition: &TopicPartition) {
        let woken = self
            .waiters
            .lock()
            .get_mut(topic_partition)
            .map(std::mem::take)
            .unwrap_or_default();
        for waiter in woken.iter().filter_map(Weak::upgrade) {
            waiter.notify_one();
        }
    }

    /// Leaves the cluster, if clustered: controlled shutdown (leadership
    /// moves away at once), fetchers and the controller stopped.
    pub async fn leave_cluster(&self) {
        if let Some(node) = self.cluster() {
            node.shutdown().await;
        }
    }

    /// Closes every log cleanly and writes the clean-shutdown markers.
    pub fn shutdown(&self) -> Result<(), ManagerError> {
        self.logs.shutdown()
    }
}

/// A topic of the cluster metadata in the broker's terms.
fn cluster_topic(topic: &rill_cluster::Topic) -> TopicMetadata {
    TopicMetadata {
        id: topic.id.to_string(),
        partitions: i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX),
        configs: topic.configs.clone(),
    }
}
