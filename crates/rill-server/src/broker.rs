//! The broker as its parts, put together once at start: the log manager
//! (every local partition), the waiters (who waits for a partition to
//! move), the replicas (each local partition's role, the high watermark),
//! the cluster node (the metadata quorum, registration, heartbeats), the
//! group and transaction coordinators' slots, topic administration and the metrics. Each part gets the
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
use crate::coordinators::{CoordinatorKind, CoordinatorSlots};
use crate::effective_config::{self, BrokerLayers};
use crate::groups::{GroupsConfig, GroupsDeps, GroupsSlot};
use crate::listeners::Listener;
use crate::metrics::Metrics;
use crate::properties::HostPort;
use crate::quotas::Quotas;
use crate::topic_config::ConfigValueError;
use crate::topics::Topics;
use crate::transactions::{TransactionsDeps, TransactionsSlot};
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
    transactions: Arc<TransactionsSlot>,
    topics: Topics,
    quotas: Quotas,
    metrics: Metrics,
    shares: Arc<crate::shares::Shares>,
    /// How this broker connects to the others (the console's client).
    connector: rill_cluster::Connector,
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
                consumer: crate::groups::ConsumerSettings {
                    assignors: config.group_configs.consumer_assignors.clone(),
                    migration_policy: config.group_configs.consumer_migration_policy,
                    session_timeout_ms: i64::from(
                        config.group_configs.consumer_session_timeout_ms.default,
                    ),
                },
                offsets_retention_ms: config.offsets_retention_ms,
                offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms,
            },
        ));
        let transactions = TransactionsSlot::new(
            TransactionsDeps {
                replicas: Arc::clone(&replicas),
                groups: Arc::clone(&groups),
                connector: links.connector().clone(),
            },
            config.transactions.clone(),
        );
        let coordinators = CoordinatorSlots {
            groups: Arc::clone(&groups),
            transactions: Arc::clone(&transactions),
        };
        let node = ClusterNode::start(
            &config,
            (Arc::clone(&replicas), Arc::new(coordinators)),
            (slot, links),
        )
        .await?;
        transactions.set_node(&node);
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
            transactions,
            topics,
            quotas,
            metrics: Metrics::new(),
            shares: Arc::default(),
            connector: links.connector().clone(),
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

    pub(crate) fn node_arc(&self) -> &Arc<ClusterNode> {
        &self.node
    }

    pub(crate) fn groups(&self) -> &Arc<GroupsSlot> {
        &self.groups
    }

    /// What each client used of its quotas.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The share groups this broker coordinates and the share-partitions
    /// of the partitions it leads.
    pub(crate) fn shares(&self) -> &Arc<crate::shares::Shares> {
        &self.shares
    }

    pub(crate) fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    pub(crate) fn connector(&self) -> &rill_cluster::Connector {
        &self.connector
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
        let leads = self.coordinates(CoordinatorKind::Group, group);
        self.groups.for_group(group, leads)
    }

    /// The coordinator of `transactional_id`, if this broker is it (see
    /// [`TransactionsSlot::for_id`]).
    pub(crate) fn transactions_for(
        &self,
        transactional_id: &str,
    ) -> Result<Arc<crate::transactions::Transactions>, kafka_protocol::ResponseError> {
        let leads = self.coordinates(CoordinatorKind::Transaction, transactional_id);
        self.transactions.for_id(transactional_id, leads)
    }

    pub(crate) fn transactions(&self) -> &Arc<TransactionsSlot> {
        &self.transactions
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
    if config.log_open_files_max > 0 {
        rill_storage::set_open_files_max(config.log_open_files_max);
    }
    if config.log_maps_max > 0 {
        rill_storage::set_maps_max(config.log_maps_max);
    }
    tracing::info!(
        open_files_max = rill_storage::open_files_max(),
        maps_max = rill_storage::maps_max(),
        "segment files open and mapped at once at most"
    );
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
