//! The broker as one node of its cluster — a cluster of one unless told
//! otherwise: it runs its controller of the metadata quorum in-process
//! when it is a voter (combined mode), or reaches the controllers over
//! their RPC (`quorum.rs`); it registers and heartbeats, follows the
//! metadata — creating, leading, following and deleting its replicas as it
//! says, and loading the groups of the offsets partitions it leads — and
//! proposes what brokers propose: topics, configs, producer-id blocks, ISR
//! changes.
//!
//! - `replicas.rs`: each local partition's role and the leader's view of
//!   its followers (`leader_state.rs`); the high watermark; ISR changes.
//! - `fetcher.rs`: followers fetching from leaders, truncating first by
//!   OffsetForLeaderEpoch.
//! - `peer.rs`: a Kafka-protocol connection to another broker.
//!
//! Thread-safe: one `ClusterNode` per broker, shared by the handlers
//! through the broker; its tasks run on the broker's runtime. It works
//! with the replicas and the group coordinator's slot, not the broker.

mod fetcher;
mod isr_changes;
mod leader_state;
mod links;
mod metadata_changes;
mod peer;
mod quorum;
mod replicas;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rill_cluster::{
    Applied, BrokerEpoch, BrokerId, ClusterMetadata, Command, CommandResult, HeartbeatError,
    ProposeError,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub(crate) use links::{NodeLinks, refusal};
pub(crate) use peer::{PeerConnection, PeerError};
pub(crate) use quorum::ControllerSlot;
use quorum::Quorum;
pub(crate) use replicas::{LeadershipError, ReplicaManager};

use crate::config::{BrokerConfig, ClusterConfig};
use crate::properties::HostPort;

/// The metadata directory under the first log directory, as KRaft's.
pub const METADATA_DIR: &str = "__cluster_metadata";

/// Producer ids taken from the quorum at a time.
const PRODUCER_ID_BLOCK: u32 = 1000;

/// How long a start-up step (registration, naming the cluster) retries
/// while the quorum elects its first leader.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The pause between retries of a proposal without a leader.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Runs a start-up step until it goes through, while the quorum has no
/// leader to take it (an election, a leader stepping down), for up to
/// [`START_TIMEOUT`]; then fails with the last error.
async fn retry_while_starting<T, E, F, Fut>(
    step: &'static str,
    mut attempt: F,
) -> Result<T, ClusterStartError>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(ClusterStartError::Timeout {
                    step,
                    last: error.to_string(),
                });
            }
            Err(error) => {
                tracing::debug!(%error, step, "retrying");
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
        }
    }
}

/// Why the broker could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterStartError {
    #[error("cannot parse the controller address {address:?} of node {node_id}")]
    ControllerAddress { node_id: u64, address: String },
    #[error("starting the controller: {0}")]
    Controller(#[from] rill_cluster::StartError),
    #[error("{step} did not succeed within {START_TIMEOUT:?}: {last}")]
    Timeout { step: &'static str, last: String },
}

/// Why a proposal made for a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum ProposalError {
    #[error(transparent)]
    Propose(#[from] ProposeError),
    #[error(transparent)]
    Rejected(#[from] rill_cluster::Rejection),
    #[error(transparent)]
    Placement(#[from] rill_cluster::PlacementError),
    #[error("the metadata did not show the change within {0:?}")]
    NotApplied(Duration),
}

/// Who loads the groups and transactions of the coordinators' partitions
/// (`__consumer_offsets`, `__transaction_state`) this broker leads, as
/// leadership changes.
pub(crate) trait Coordinators: Send + Sync {
    /// This broker now leads `led` (partition -> leader epoch, maybe none)
    /// of `topic`'s `partitions`. Blocking (reads the partitions).
    fn partitions_led(&self, topic: &str, partitions: i32, led: BTreeMap<i32, i32>);
}

/// See the module doc.
pub(crate) struct ClusterNode {
    node_id: i32,
    /// Where clients (and joining controllers) reach this broker.
    advertised: HostPort,
    /// Every listener's advertised address, by name, for its registration.
    endpoints: Vec<rill_cluster::Endpoint>,
    config: ClusterConfig,
    quorum: Quorum,
    /// The metadata as last applied here, shared with the handlers.
    metadata: RwLock<Arc<ClusterMetadata>>,
    broker_epoch: Mutex<Option<BrokerEpoch>>,
    /// The unused rest of this broker's producer-id block: next, end.
    producer_ids: Mutex<(i64, i64)>,
    pub(crate) replicas: Arc<ReplicaManager>,
    coordinators: Arc<dyn Coordinators>,
    /// One application of the metadata at a time (the follower task, and
    /// a handler making its own change visible before it answers).
    applying: Mutex<()>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl ClusterNode {
    /// Starts this broker's part of the quorum (its controller into
    /// `slot`) and registers the broker; [`ClusterNode::serve`] then names
    /// the cluster and starts the heartbeat, metadata and replication
    /// tasks. In between, the broker may propose what must come first (the
    /// one-time import of a single broker's old metadata file).
    pub(crate) async fn start(
        config: &BrokerConfig,
        (replicas, coordinators): (Arc<ReplicaManager>, Arc<dyn Coordinators>),
        (slot, links): (&ControllerSlot, &NodeLinks),
    ) -> Result<Arc<ClusterNode>, ClusterStartError> {
        let node_id = config.node_id;
        let data_dir = config
            .log_dirs
            .first()
            .cloned()
            .unwrap_or_default()
            .join(METADATA_DIR);
        let quorum = Quorum::start(
            node_id,
            (&config.cluster, &config.listeners.inter_broker().advertised),
            data_dir,
            (slot, links),
        )
        .await?;
        let (stop, _) = watch::channel(false);
        let node = Arc::new(ClusterNode {
            node_id,
            advertised: config.listeners.inter_broker().advertised.clone(),
            endpoints: config
                .listeners
                .iter()
                .map(|l| rill_cluster::Endpoint {
                    name: l.name.clone(),
                    host: l.advertised.host.clone(),
                    port: l.advertised.port,
                })
                .collect(),
            config: config.cluster.clone(),
            metadata: RwLock::new(quorum.metadata()),
            quorum,
            broker_epoch: Mutex::new(None),
            producer_ids: Mutex::new((0, 0)),
            replicas,
            coordinators,
            applying: Mutex::new(()),
            stop,
            tasks: Mutex::new(Vec::new()),
        });
        node.register().await?;
        Ok(node)
    }

    /// Names the cluster if nobody has, unfences this broker and starts
    /// following the metadata, heartbeating and maintaining ISRs.
    pub(crate) async fn serve(self: &Arc<Self>) -> Result<(), ClusterStartError> {
        self.init_cluster_id().await?;
        // Unfenced at once rather than at the first heartbeat's tick.
        let registered = *self.broker_epoch.lock();
        if let Some(epoch) = registered {
            let _ = self.quorum.heartbeat(BrokerId(self.node_id), epoch).await; // The heartbeat task retries.
        }
        let tasks = vec![
            tokio::spawn(follow_metadata(Arc::clone(self))),
            tokio::spawn(heartbeat(Arc::clone(self))),
            tokio::spawn(replicas::maintain_isr(Arc::clone(self))),
        ];
        self.tasks.lock().extend(tasks);
        Ok(())
    }

    pub(crate) fn node_id(&self) -> i32 {
        self.node_id
    }

    pub(crate) fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The metadata as applied on this broker.
    pub(crate) fn metadata(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&self.metadata.read())
    }

    /// The metadata quorum as its leader sees it (DescribeQuorum).
    pub(crate) async fn describe_quorum(&self) -> Option<rill_cluster::QuorumState> {
        self.quorum.describe().await
    }

    /// This node's Raft term and log end, if it is a controller.
    pub(crate) fn quorum_status(&self) -> Option<rill_cluster::QuorumStatus> {
        self.quorum.status()
    }

    /// The last metadata log entry this node has applied.
    pub(crate) fn metadata_applied_index(&self) -> Option<u64> {
        self.quorum.applied_index()
    }

    pub(crate) fn controller_leader(&self) -> Option<i32> {
        self.quorum.leader().and_then(|id| i32::try_from(id).ok())
    }

    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Registers (again) and remembers the new broker epoch.
    async fn register(&self) -> Result<BrokerEpoch, ClusterStartError> {
        let advertised = &self.advertised;
        let command = Command::RegisterBroker {
            broker_id: BrokerId(self.node_id),
            host: advertised.host.clone(),
            port: advertised.port,
            listeners: self.endpoints.clone(),
        };
        let applied = self.propose_retrying("registration", command).await?;
        let Ok(Applied::BrokerRegistered { broker_epoch }) = applied else {
            return Err(ClusterStartError::Timeout {
                step: "registration",
                last: format!("unexpected answer {applied:?}"),
            });
        };
        *self.broker_epoch.lock() = Some(broker_epoch);
        tracing::info!(node_id = self.node_id, %broker_epoch, "registered with the metadata quorum");
        // The epoch is the registration's log index. Until this node has
        // applied that far, its metadata may be what it was before a crash:
        // acting on it would lead partitions that have moved on.
        self.wait_applied(broker_epoch.0)
            .await
            .map_err(|e| ClusterStartError::Timeout {
                step: "catching up with the metadata log",
                last: e.to_string(),
            })?;
        Ok(broker_epoch)
    }

    /// Names the cluster if nobody has yet.
    async fn init_cluster_id(&self) -> Result<(), ClusterStartError> {
        let command = Command::InitCluster {
            cluster_id: new_cluster_id(),
        };
        self.propose_retrying("naming the cluster", command)
            .await
            .map(drop)
    }

    pub(crate) async fn propose_retrying(
        &self,
        step: &'static str,
        command: Command,
    ) -> Result<CommandResult, ClusterStartError> {
        retry_while_starting(step, || async {
            self.quorum
                .propose_at(command.clone())
                .await
                .map(|(_, result)| result)
        })
        .await
    }

    /// Proposes `command`, retrying while there is no leader, and waits
    /// until this broker's metadata has applied it.
    pub(crate) async fn propose(&self, command: Command) -> Result<Applied, ProposalError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT.min(Duration::from_secs(30));
        let result = loop {
            match self.quorum.propose_at(command.clone()).await {
                Ok(result) => break result,
                Err(ProposeError::NotLeader { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
                Err(error) => return Err(error.into()),
            }
        };
        let (index, result) = result;
        let applied = result?;
        self.wait_applied(index).await?;
        Ok(applied)
    }

    /// Waits until this node has applied the metadata log up to `index`
    /// (a proposal just committed through the leader), and shows it.
    async fn wait_applied(&self, index: u64) -> Result<(), ProposalError> {
        let wait = Duration::from_secs(10);
        let mut changes = self.quorum.subscribe();
        let caught_up = tokio::time::timeout(wait, async {
            loop {
                if self.quorum.applied_index() >= Some(index) {
                    *self.metadata.write() = self.quorum.metadata();
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        caught_up.map_err(|_| ProposalError::NotApplied(wait))
    }

    /// Creates a topic, replicas placed over the unfenced brokers.
    pub(crate) async fn create_topic(
        &self,
        name: &str,
        partitions: usize,
        replication_factor: usize,
        configs: BTreeMap<String, String>,
    ) -> Result<Applied, ProposalError> {
        let result = self
            .quorum
            .create_topic(name, (partitions, replication_factor), configs)
            .await
            .map_err(|e| match e {
                rill_cluster::CreateTopicError::Placement { source } => {
                    ProposalError::Placement(source)
                }
                rill_cluster::CreateTopicError::Propose { source } => {
                    ProposalError::Propose(source)
                }
            })?;
        let (index, result) = result;
        let applied = result?;
        self.wait_applied(index).await?;
        Ok(applied)
    }

    /// A producer id no broker of the cluster has handed out.
    pub(crate) async fn next_producer_id(&self) -> Result<i64, ProposalError> {
        {
            let mut ids = self.producer_ids.lock();
            if ids.0 < ids.1 {
                ids.0 += 1;
                return Ok(ids.0 - 1);
            }
        }
        let applied = self
            .propose(Command::AllocateProducerIds {
                broker_id: BrokerId(self.node_id),
                count: PRODUCER_ID_BLOCK,
            })
            .await?;
        let Applied::ProducerIdsAllocated { first, count } = applied else {
            return Err(ProposalError::Propose(ProposeError::Failed {
                reason: format!("unexpected answer {applied:?}"),
            }));
        };
        let mut ids = self.producer_ids.lock();
        *ids = (first + 1, first + i64::from(count));
        Ok(first)
    }

    /// Controlled shutdown, then the tasks and the controller stop: the
    /// broker asks to be fenced so that its partitions move at once rather
    /// than after broker.session.timeout.ms.
    pub(crate) async fn shutdown(&self) {
        let metadata = self.quorum.metadata();
        let broker_id = BrokerId(self.node_id);
        // With no other live broker there is nobody to hand leadership
        // to: fencing would only take every partition offline and give it
        // a new leader epoch (a checkpoint write each) at the restart.
        let others_alive = metadata
            .brokers
            .values()
            .any(|b| b.id != broker_id && !b.fenced);
        if metadata.is_unfenced(broker_id) && others_alive {
            let command = Command::FenceBroker {
                broker_id,
                partition_changes: metadata.fence_changes(broker_id),
            };
            let fenced =
                tokio::time::timeout(Duration::from_secs(5), self.quorum.propose_at(command)).await;
            match fenced {
                Ok(Ok((_, Ok(_)))) => tracing::info!("controlled shutdown: leadership moved"),
                other => tracing::warn!(?other, "controlled shutdown did not move leadership"),
            }
        }
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            task.abort();
            // Aborted or finished: either way it is gone.
            let _ = task.await;
        }
        self.replicas.stop_fetchers().await;
        self.quorum.shutdown().await;
    }
}

/// Applies each new metadata to the broker's replicas, and reloads the
/// groups when the offsets partitions this broker leads change.
async fn follow_metadata(node: Arc<ClusterNode>) {
    let mut changes = node.quorum.subscribe();
    loop {
        let applying = Arc::clone(&node);
        let applied = tokio::task::spawn_blocking(move || applying.apply_metadata()).await;
        if let Err(join) = applied {
            std::panic::resume_unwind(join.into_panic());
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

impl ClusterNode {
    /// Shows the quorum's latest metadata here and applies it to the
    /// replicas (and the groups). Blocking (creates and deletes files).
    /// A handler calls it after its own change, so that what this broker
    /// serves shows the change before the client hears it is done.
    pub(crate) fn apply_metadata(&self) {
        let _one_at_a_time = self.applying.lock();
        let metadata = self.quorum.metadata();
        *self.metadata.write() = Arc::clone(&metadata);
        for (topic, led) in self.replicas.apply(self, &metadata) {
            let partitions = metadata
                .topics
                .get(topic)
                .map_or(0, |t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX));
            self.coordinators.partitions_led(topic, partitions, led);
        }
    }
}

/// A Kafka-style cluster id: 16 random bytes in URL-safe base64, 22 chars.
pub(crate) fn new_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits: u128 = u128::from_be_bytes(uuid::Uuid::new_v4().into_bytes());
    let mut id = String::with_capacity(22);
    for _ in 0..22 {
        id.push(char::from(ALPHABET[(bits & 63) as usize]));
        bits >>= 6;
    }
    id
}

/// Heartbeats every broker.heartbeat.interval.ms; registers again when the
/// controller no longer knows this broker's epoch.
async fn heartbeat(node: Arc<ClusterNode>) {
    let interval = Duration::from_millis(node.config.broker_heartbeat_interval_ms);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(epoch) = *node.broker_epoch.lock() else {
            continue;
        };
        match node.quorum.heartbeat(BrokerId(node.node_id), epoch).await {
            Ok(_) => {}
            Err(HeartbeatError::Rejected { rejection }) => {
                tracing::warn!(%rejection, "the controller refused this broker's epoch; registering again");
                if let Err(error) = node.register().await {
                    tracing::warn!(%error, "registering again failed");
                }
            }
            Err(error) => tracing::debug!(%error, "heartbeat failed"),
        }
    }
}
