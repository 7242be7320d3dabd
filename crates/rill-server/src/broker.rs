//! The broker as its parts, put together once at start: the log manager
//! (every local partition), the waiters (who waits for a partition to
//! move), the replicas (each local partition's role, the high watermark),
//! the cluster node (the metadata quorum, registration, heartbeats), the
//! group coordinator's slot, and topic administration. Each part gets the
//! others it uses, not the broker; the handlers reach them through one
//! `Arc<Broker>`.
//!
//! A broker is always a node of a cluster — of one, unless told
//! otherwise — so there is one path for metadata whatever the size.
//!
//! Thread-safe.

use std::collections::BTreeMap;
use std::sync::Arc;

use rill_partition::{LogManager, ManagerConfig, ManagerError, Partition, TopicPartition};
use rill_storage::{Disk, LogConfig};

use crate::cluster::{
    ClusterNode, ClusterStartError, ControllerSlot, LeadershipError, NodeLinks, ReplicaManager,
};
use crate::config::BrokerConfig;
use crate::effective_config::{self, BrokerLayers};
use crate::groups::{GroupsConfig, GroupsDeps, GroupsSlot, OFFSETS_TOPIC};
use crate::listeners::Listener;
use crate::properties::HostPort;
use crate::quotas::Quotas;
use crate::topic_config::ConfigValueError;
use crate::topics::Topics;
use crate::waiters::Waiters;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create log directory {path}: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Logs(#[from] ManagerError),
    #[error(transparent)]
    Config(#[from] ConfigValueError),
    #[error("joining the metadata quorum: {0}")]
    Cluster(#[source] Box<ClusterStartError>),
    #[error("importing the old metadata file: {0}")]
    Import(#[from] crate::legacy_metadata::MetadataError),
    #[error("adding the initial users: {0}")]
    InitialUsers(#[from] crate::initial_users::InitialUsersError),
    #[error("TLS between nodes: {0}")]
    NodeTls(#[from] crate::security::TlsError),
}

impl From<ClusterStartError> for StartError {
    fn from(error: ClusterStartError) -> StartError {
        StartError::Cluster(Box::new(error))
    }
}

/// The broker: see the module documentation.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    logs: Arc<LogManager>,
    waiters: Arc<Waiters>,
    replicas: Arc<ReplicaManager>,
    node: Arc<ClusterNode>,
    groups: Arc<GroupsSlot>,
    topics: Topics,
    quotas: Quotas,
}

impl Broker {
    /// Opens the log directories (recovering partitions after an unclean
    /// stop, over `disk`), starts this node's part of the metadata quorum
    /// (its controller into `slot`), imports a single broker's old
    /// metadata file once, adds the users written before the first start,
    /// registers, and applies the metadata: the
    /// replicas it names are created, led or followed, and those of
    /// deleted topics removed.
    pub(crate) async fn start(
        config: BrokerConfig,
        disk: Arc<dyn Disk>,
        (slot, links): (&ControllerSlot, &NodeLinks),
    ) -> Result<Arc<Broker>, StartError> {
        for dir in &config.log_dirs {
            std::fs::create_dir_all(dir).map_err(|source| StartError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        }
        let first_dir = config.log_dirs.first().cloned().unwrap_or_default();
        let logs = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || open_logs(&config, disk))
                .await
                .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))?
        };
        let waiters = Arc::new(Waiters::default());
        let replicas = Arc::new(ReplicaManager::new(
            config.node_id,
            &config.cluster,
            (Arc::clone(&logs), Arc::clone(&waiters)),
            config.properties.clone(),
            links.connector().clone(),
        ));
        let groups = Arc::new(GroupsSlot::new(
            GroupsDeps {
                replicas: Arc::clone(&replicas),
                waiters: Arc::clone(&waiters),
            },
            GroupsConfig {
                group: config.group.clone(),
                offsets_retention_ms: config.offsets_retention_ms,
                offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms,
            },
        ));
        let node = ClusterNode::start(
            &config,
            (
                Arc::clone(&replicas),
                Arc::clone(&groups) as Arc<dyn crate::cluster::Coordinators>,
            ),
            (slot, links),
        )
        .await?;
        crate::legacy_metadata::import(&node, &first_dir).await?;
        crate::initial_users::apply(&node, &first_dir).await?;
        node.serve().await?;
        let applying = Arc::clone(&node);
        tokio::task::spawn_blocking(move || applying.apply_metadata())
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
        let topics = Topics::new(Arc::clone(&node), &config);
        let quotas = Quotas::new(config.quota_windows, config.quota_window);
        Ok(Arc::new(Broker {
            config,
            logs,
            waiters,
            replicas,
            node,
            groups,
            topics,
            quotas,
        }))
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn logs(&self) -> &LogManager {
        &self.logs
    }

    pub(crate) fn waiters(&self) -> &Waiters {
        &self.waiters
    }

    pub(crate) fn replicas(&self) -> &ReplicaManager {
        &self.replicas
    }

    pub(crate) fn node(&self) -> &ClusterNode {
        &self.node
    }

    pub(crate) fn groups(&self) -> &Arc<GroupsSlot> {
        &self.groups
    }

    /// What each client used of its quotas.
    pub(crate) fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    pub(crate) fn topics(&self) -> &Topics {
        &self.topics
    }

    pub fn cluster_id(&self) -> String {
        self.node.metadata().cluster_id.clone()
    }

    pub fn partition(&self, topic_partition: &TopicPartition) -> Option<Arc<Partition>> {
        self.logs.get(topic_partition)
    }

    /// The partition, if this broker leads it at a leader epoch the
    /// request agrees with (`current_leader_epoch`, -1: unchecked), with
    /// that epoch. A partition of a known topic that this broker does not
    /// lead is NOT_LEADER_OR_FOLLOWER, else UNKNOWN_TOPIC_OR_PARTITION.
    pub(crate) fn leader_partition(
        &self,
        topic_partition: &TopicPartition,
        current_leader_epoch: i32,
    ) -> Result<(Arc<Partition>, i32), LeadershipError> {
        match self
            .replicas
            .leader_partition(topic_partition, current_leader_epoch)
        {
            Err(LeadershipError::UnknownPartition) => {
                let metadata = self.node.metadata();
                let known = metadata
                    .topics
                    .get(topic_partition.topic.as_str())
                    .is_some_and(|t| {
                        usize::try_from(topic_partition.partition)
                            .is_ok_and(|p| p < t.partitions.len())
                    });
                Err(if known {
                    LeadershipError::NotLeader
                } else {
                    LeadershipError::UnknownPartition
                })
            }
            other => other,
        }
    }

    /// The coordinator of `group`, if this broker is it (see
    /// [`GroupsSlot::for_group`]).
    pub(crate) fn groups_for(
        &self,
        group: &str,
    ) -> Result<Arc<crate::groups::Groups>, kafka_protocol::ResponseError> {
        let leads = self
            .coordinator_of(group)
            .is_some_and(|(leader, _)| leader == self.config.node_id);
        self.groups.for_group(group, leads)
    }

    /// The broker leading `group`'s offsets partition, which coordinates
    /// it. Without an offsets topic yet, its creation is proposed
    /// (offsets.topic.replication.factor, capped at the brokers
    /// registered, once that many are unfenced) and the answer is
    /// COORDINATOR_NOT_AVAILABLE, which clients retry.
    pub(crate) fn group_coordinator(
        &self,
        group: &str,
    ) -> Result<(i32, HostPort), kafka_protocol::ResponseError> {
        use kafka_protocol::ResponseError;
        if !self.node.metadata().topics.contains_key(OFFSETS_TOPIC) {
            self.create_offsets_topic();
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let coordinator = self
            .coordinator_of(group)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        // This broker coordinates it but has not loaded its groups yet (the
        // topic was just created, or leadership just came here): clients
        // ask again rather than meet COORDINATOR_LOAD_IN_PROGRESS, which
        // librdkafka hands a synchronous commit back as a failure.
        if coordinator.0 == self.config.node_id && self.groups.for_group(group, true).is_err() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        Ok(coordinator)
    }

    /// Where a client on `listener` reaches broker `node_id`: the address
    /// that broker advertises for the listener of that name (none: that
    /// broker has no such listener, and the client is not told of it).
    pub(crate) fn endpoint(&self, node_id: i32, listener: &Listener) -> Option<HostPort> {
        if node_id == self.config.node_id {
            let own = self.config.listeners.named(&listener.name)?;
            return Some(own.advertised.clone());
        }
        let metadata = self.node.metadata();
        let broker = metadata.brokers.get(&rill_cluster::BrokerId(node_id))?;
        // A registration from before listeners had names has none.
        if broker.listeners.is_empty() {
            return Some(HostPort {
                host: broker.host.clone(),
                port: broker.port,
            });
        }
        let endpoint = broker.listeners.iter().find(|e| e.name == listener.name)?;
        Some(HostPort {
            host: endpoint.host.clone(),
            port: endpoint.port,
        })
    }

    /// The broker the metadata makes `group`'s coordinator, if any.
    fn coordinator_of(&self, group: &str) -> Option<(i32, HostPort)> {
        let metadata = self.node.metadata();
        let topic = metadata.topics.get(OFFSETS_TOPIC)?;
        let partitions = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let index = rill_group::partition_for(group, partitions);
        let leader = usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .and_then(|p| p.leader)
            .and_then(|leader| metadata.brokers.get(&leader))?;
        Some((
            leader.id.0,
            HostPort {
                host: leader.host.clone(),
                port: leader.port,
            },
        ))
    }

    fn create_offsets_topic(&self) {
        let metadata = self.node.metadata();
        let wanted =
            usize::try_from(self.config.cluster.offsets_topic_replication_factor).unwrap_or(1);
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
        let node = Arc::clone(&self.node);
        tokio::spawn(async move {
            match node
                .create_topic(OFFSETS_TOPIC, partitions, replication_factor, configs)
                .await
            {
                Ok(_) => {
                    tracing::info!(partitions, replication_factor, "created {OFFSETS_TOPIC}");
                    crate::topics::apply_in_background(node).await;
                }
                Err(error) => tracing::debug!(%error, "creating {OFFSETS_TOPIC}"),
            }
        });
    }

    /// Leaves the cluster: controlled shutdown (leadership moves away at
    /// once), fetchers and the controller stopped.
    pub async fn leave_cluster(&self) {
        self.node.shutdown().await;
    }

    /// Closes every log cleanly and writes the clean-shutdown markers.
    pub fn shutdown(&self) -> Result<(), ManagerError> {
        self.logs.shutdown()
    }
}

/// Opens (and recovers) every partition under log.dirs, each with the
/// broker's default topic config until the metadata gives it its own.
fn open_logs(config: &BrokerConfig, disk: Arc<dyn Disk>) -> Result<Arc<LogManager>, StartError> {
    let manager_config = ManagerConfig {
        retention_check_interval_ms: config.retention_check_interval_ms,
        checkpoint_interval_ms: config.checkpoint_interval_ms,
        cleaner_backoff_ms: config.cleaner_backoff_ms,
        recovery_threads: config.recovery_threads,
        flush_threads: config.flush_threads,
        flush_sync_mode: config.flush_sync_mode,
        ..ManagerConfig::new(config.log_dirs.clone())
    };
    let default_config: LogConfig = effective_config::log_config(
        &BTreeMap::new(),
        BrokerLayers {
            dynamic: &BTreeMap::new(),
            static_: &config.properties,
        },
    )?;
    let (logs, report) =
        LogManager::open_with_disk(manager_config, &|_: &TopicPartition| default_config, disk)?;
    if !report.recovered.is_empty() {
        tracing::info!(
            partitions = report.recovered.len(),
            "recovered partitions after an unclean shutdown"
        );
    }
    Ok(logs)
}
