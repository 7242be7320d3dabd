//! A controller: one member of the metadata quorum, as a broker process
//! owns it — the Raft node, its storage under a directory, and the RPC
//! server on the controller port.
//!
//! On the leader it also tracks broker liveness: brokers heartbeat
//! (`heartbeat`, or the BrokerHeartbeat RPC through any controller), and
//! a task fences a broker silent for longer than
//! [`ClusterSettings::broker_session_timeout_ms`] with one `FenceBroker`
//! entry that moves its partitions too. A fenced broker that heartbeats
//! with its current epoch is unfenced.
//!
//! Thread-safety: a `Controller` may be shared (`Arc`) and called from
//! any task; `propose` calls run concurrently (openraft batches them).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::command::{Applied, Command, CommandResult, Rejection};
use crate::connector::{Acceptor, Connector, NodeStream};
use crate::durable_file::FileError;
use crate::liveness::Liveness;
use crate::log_store::{CommittedIndex, LogStore};
use crate::metadata::{BrokerEpoch, BrokerId, ClusterMetadata};
use crate::network::{
    self, HeartbeatReply, NetworkFactory, PeerClient, ProposeReply, QuorumState, ReplicaProgress,
    Request, Response, RpcError, VoterChange,
};
use crate::placement::{PlacementError, assign_replicas};
use crate::raft_types::{NodeId, TypeConfig};
use crate::state_machine::{MetadataReader, StateMachine};

/// The largest command, as JSON, a controller accepts to propose (a topic
/// with 100 000 partitions of 3 replicas is about 2.5 MiB). Keeps every
/// log entry well inside [`network::FRAME_BYTES_MAX`].
pub const COMMAND_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Raft's timing and snapshots. The defaults suit a LAN; tests turn the
/// timeouts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftSettings {
    /// How often the leader sends heartbeats.
    pub heartbeat_interval_ms: u64,
    /// A follower that hears no leader for a random time in
    /// `election_timeout_min_ms..election_timeout_max_ms` starts an election.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// How long `propose` waits for a forwarded proposal's answer.
    pub propose_timeout_ms: u64,
    /// A snapshot is taken after this many entries since the last one.
    pub snapshot_every_entries: u64,
    /// Entries a snapshot covers that stay in the log anyway, so a
    /// follower a little behind catches up from the log, not a snapshot.
    pub entries_kept_after_snapshot: u64,
}

impl Default for RaftSettings {
    /// Kafka's KRaft defaults where it has them:
    /// controller.quorum.election.timeout.ms 1000, a heartbeat well inside
    /// it; openraft's for snapshots.
    fn default() -> Self {
        RaftSettings {
            heartbeat_interval_ms: 250,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            propose_timeout_ms: 10_000,
            snapshot_every_entries: 5000,
            entries_kept_after_snapshot: 1000,
        }
    }
}

/// Broker liveness, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterSettings {
    /// `broker.session.timeout.ms`: a broker heard from less recently is
    /// fenced by the leader. A new leader gives every broker this long
    /// from its election.
    pub broker_session_timeout_ms: u64,
    /// `leader.imbalance.check.interval.seconds` (in ms) when
    /// `auto.leader.rebalance.enable`: how often the leader looks for
    /// brokers leading too few of the partitions they are preferred for;
    /// `None`: never.
    pub leader_imbalance_check_interval_ms: Option<u64>,
    /// `leader.imbalance.per.broker.percentage`: above this share of its
    /// preferred partitions led elsewhere, a preferred-leader election runs.
    pub leader_imbalance_per_broker_percentage: u32,
}

impl Default for ClusterSettings {
    /// Kafka's defaults: 9000 ms; rebalancing every 300 s past 10%.
    fn default() -> Self {
        ClusterSettings {
            broker_session_timeout_ms: 9000,
            leader_imbalance_check_interval_ms: Some(300_000),
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

/// What the leader said to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeartbeatResponse {
    /// Whether the broker is still fenced (it may not lead yet); a fenced
    /// broker is unfenced by its heartbeat, so this is true only when that
    /// did not commit yet: keep heartbeating.
    pub fenced: bool,
}

/// Why a heartbeat was not heard.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    /// The broker must register (again): it is unknown, or registered
    /// since with a newer epoch.
    #[error("heartbeat rejected: {rejection}")]
    Rejected { rejection: Rejection },
    /// No leader is known; retry.
    #[error("no controller leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("reaching controller {target}: {source}")]
    Rpc {
        target: NodeId,
        #[source]
        source: RpcError,
    },
    #[error("heartbeat failed: {reason}")]
    Failed { reason: String },
}

impl HeartbeatError {
    pub(crate) fn from_reply(reply: HeartbeatReply) -> Result<HeartbeatResponse, HeartbeatError> {
        match reply {
            HeartbeatReply::Alive { fenced } => Ok(HeartbeatResponse { fenced }),
            HeartbeatReply::Rejected(rejection) => Err(HeartbeatError::Rejected { rejection }),
            HeartbeatReply::NotLeader { leader } => Err(HeartbeatError::NotLeader { leader }),
            HeartbeatReply::Failed { reason } => Err(HeartbeatError::Failed { reason }),
        }
    }
}

/// Why `create_topic` proposed nothing or failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateTopicError {
    #[error("placing replicas: {source}")]
    Placement {
        #[from]
        source: PlacementError,
    },
    #[error(transparent)]
    Propose {
        #[from]
        source: ProposeError,
    },
}

/// What a controller knows of the quorum, for `rill cluster status`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuorumStatus {
    pub node_id: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    /// The last entry in this node's log.
    pub last_log_index: Option<u64>,
    /// The last entry applied to this node's metadata.
    pub applied_index: Option<u64>,
    /// The last entry the quorum committed, as this node last heard.
    pub committed_index: Option<u64>,
    /// On the quorum's leader: each other member and the last entry it
    /// is known to hold (`None`: nothing yet). Empty elsewhere.
    pub replicated: Vec<(NodeId, Option<u64>)>,
    /// The last entry of this node's latest snapshot.
    pub snapshot_index: Option<u64>,
    /// Entries up to this one are gone from this node's log.
    pub purged_index: Option<u64>,
    pub voters: Vec<NodeId>,
}

/// How a controller whose log is empty comes into a quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// Every voter of a new quorum, this node included: id -> the address
    /// peers reach it at (`host:port`). Every voter initializes with the
    /// same set; a quorum of one is a standalone node (KIP-853's
    /// `--standalone`), which can grow later.
    Voters(BTreeMap<NodeId, String>),
    /// Start empty and wait to be added to a running quorum by its
    /// leader ([`Controller::add_voter`], KIP-853's AddRaftVoter).
    Join,
}

/// How to start a controller.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub node_id: NodeId,
    /// Where to serve the controller RPC on a port of its own. `None`: the
    /// owner hands accepted connections to [`Controller::serve_connection`]
    /// (a broker serves them on its Kafka listener).
    pub listen: Option<SocketAddr>,
    /// How the quorum begins when this node's log is empty; ignored once
    /// it has a log (the membership is in it).
    pub bootstrap: Bootstrap,
    /// Holds the Raft log, vote and snapshot (created if missing).
    pub data_dir: PathBuf,
    pub raft: RaftSettings,
    pub cluster: ClusterSettings,
    /// How this node connects to the other controllers.
    pub connector: Connector,
    /// How its own controller port (`listen`) takes their connections.
    pub acceptor: Acceptor,
}

/// Why a controller did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("node {node_id} is not among the voters {voters:?}")]
    NotAVoter {
        node_id: NodeId,
        voters: Vec<NodeId>,
    },
    #[error("invalid Raft settings: {source}")]
    Config {
        #[source]
        source: openraft::ConfigError,
    },
    #[error("opening the metadata log: {source}")]
    Storage {
        #[source]
        source: FileError,
    },
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting Raft: {reason}")]
    Raft { reason: String },
}

/// Why a proposal was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// Neither this node nor the one it forwarded to leads; retry after
    /// `leader` (if known) has been elected.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("a command of {bytes} bytes is larger than the {max} allowed")]
    CommandTooLarge { bytes: usize, max: usize },
    /// The leader could not be reached, or did not answer in time. The
    /// command may or may not have been applied.
    #[error("forwarding to leader {leader}: {source}")]
    Forward {
        leader: NodeId,
        #[source]
        source: RpcError,
    },
    /// The Raft node failed or is shutting down.
    #[error("proposal failed: {reason}")]
    Failed { reason: String },
}

/// One member of the metadata quorum. See the module doc.
pub struct Controller {
    core: Arc<Core>,
    /// The controller port, when it has one of its own.
    local_addr: Option<SocketAddr>,
    stop_server: watch::Sender<bool>,
    /// Taken by the first `shutdown`.
    tasks: parking_lot::Mutex<Option<Tasks>>,
}

/// A controller's own tasks.
struct Tasks {
    /// The RPC server, when the controller has a port of its own.
    server: Option<JoinHandle<()>>,
    sessions: JoinHandle<()>,
}

/// Why a change of the quorum's voters failed.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("forwarding to leader {leader}: {source}")]
    Forward {
        leader: NodeId,
        #[source]
        source: RpcError,
    },
    #[error("node {node_id} cannot be removed: it is the last voter")]
    LastVoter { node_id: NodeId },
    #[error("node {node_id} is not a voter")]
    NotAVoter { node_id: NodeId },
    #[error("changing the voters failed: {reason}")]
    Failed { reason: String },
}

/// What the RPC server, the session task and the `Controller` share.
pub(crate) struct Core {
    node_id: NodeId,
    pub(crate) raft: Raft<TypeConfig>,
    reader: MetadataReader,
    committed: CommittedIndex,
    propose_timeout: Duration,
    session_timeout: Duration,
    cluster: ClusterSettings,
    /// Only the leader's means anything; reset at each term it leads.
    liveness: Mutex<Liveness>,
    connector: Connector,
}

impl Controller {
    /// Opens the storage under `config.data_dir`, listens on
    /// `config.listen` (if set), starts the Raft node and, if this node's
    /// log is empty and `config.bootstrap` names the voters, initializes
    /// the quorum with them (every voter does; openraft accepts the same
    /// membership from each, and refuses it once a node has a log). A
    /// node that is the only voter elects itself at once rather than
    /// after an election timeout.
    pub async fn start(config: ControllerConfig) -> Result<Controller, StartError> {
        if let Bootstrap::Voters(voters) = &config.bootstrap
            && !voters.contains_key(&config.node_id)
        {
            return Err(StartError::NotAVoter {
                node_id: config.node_id,
                voters: voters.keys().copied().collect(),
            });
        }
        let t = config.raft;
        let raft_config = Config {
            cluster_name: "rill-metadata".to_owned(),
            heartbeat_interval: t.heartbeat_interval_ms,
            election_timeout_min: t.election_timeout_min_ms,
            election_timeout_max: t.election_timeout_max_ms,
            // Chunks travel as JSON arrays of numbers (up to 4 bytes a byte).
            snapshot_max_chunk_size: 1024 * 1024,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(t.snapshot_every_entries),
            max_in_snapshot_log_to_keep: t.entries_kept_after_snapshot,
            ..Config::default()
        }
        .validate()
        .map_err(|source| StartError::Config { source })?;

        let dir = config.data_dir.clone();
        let (log_store, state_machine) = tokio::task::spawn_blocking(move || {
            Ok::<_, FileError>((LogStore::open(&dir)?, StateMachine::open(&dir)?))
        })
        .await
        .map_err(|e| StartError::Raft {
            reason: format!("opening storage: {e}"),
        })?
        .map_err(|source| StartError::Storage { source })?;
        let reader = state_machine.reader();
        let committed = log_store.committed();

        let listener = match config.listen {
            None => None,
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?;
                let local = listener
                    .local_addr()
                    .map_err(|source| StartError::Bind { addr, source })?;
                Some((listener, local))
            }
        };
        let local_addr = listener.as_ref().map(|(_, local)| *local);

        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            NetworkFactory(config.connector.clone()),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| StartError::Raft {
            reason: e.to_string(),
        })?;
        let session_timeout = Duration::from_millis(config.cluster.broker_session_timeout_ms);
        let core = Arc::new(Core {
            node_id: config.node_id,
            raft,
            reader,
            committed,
            propose_timeout: Duration::from_millis(t.propose_timeout_ms),
            session_timeout,
            cluster: config.cluster,
            liveness: Mutex::new(Liveness::new(Instant::now())),
            connector: config.connector,
        });
        let (stop_server, stopped) = watch::channel(false);
        let acceptor = config.acceptor.clone();
        let server = listener.map(|(listener, _)| {
            tokio::spawn(network::serve(
                (listener, acceptor),
                Arc::clone(&core),
                stopped,
            ))
        });
        let sessions = tokio::spawn(watch_sessions(Arc::clone(&core), stop_server.subscribe()));
        let controller = Controller {
            core,
            local_addr,
            stop_server,
            tasks: parking_lot::Mutex::new(Some(Tasks { server, sessions })),
        };

        if let Bootstrap::Voters(voters) = &config.bootstrap {
            let voters: BTreeMap<NodeId, BasicNode> = voters
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr)))
                .collect();
            match controller.core.raft.initialize(voters).await {
                Ok(()) => {
                    tracing::info!(node_id = config.node_id, "initialized the metadata quorum")
                }
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                    tracing::info!(
                        node_id = config.node_id,
                        "metadata quorum already initialized"
                    );
                }
                Err(e) => {
                    controller.shutdown().await;
                    return Err(StartError::Raft {
                        reason: format!("initializing: {e}"),
                    });
                }
            }
        }
        if controller.voters() == [config.node_id] {
            // Alone, nobody else can win: no need to sit out a timeout.
            if let Err(e) = controller.core.raft.trigger().elect().await {
                controller.shutdown().await;
                return Err(StartError::Raft {
                    reason: format!("electing itself: {e}"),
                });
            }
        }
        Ok(controller)
    }

    /// The quorum as its leader sees it (asked of the leader if this node
    /// does not lead); `None` without a leader.
    pub async fn describe_quorum(&self) -> Option<QuorumState> {
        self.core.describe_quorum(true).await
    }

    /// The voters of the quorum, as this node's log says.
    pub fn voters(&self) -> Vec<NodeId> {
        let metrics = self.core.raft.metrics();
        let metrics = metrics.borrow();
        metrics.membership_config.membership().voter_ids().collect()
    }

    /// The address peers reach `node_id` at, as the membership says.
    pub fn address_of(&self, node_id: NodeId) -> Option<String> {
        let metrics = self.core.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .get_node(&node_id)
            .map(|n| n.addr.clone())
    }

    /// Serves one peer's connection, accepted elsewhere (a broker's Kafka
    /// listener: see [`network::is_controller_connection`]), until it
    /// closes.
    pub async fn serve_connection(&self, stream: impl NodeStream, peer: std::net::SocketAddr) {
        if let Err(e) = network::serve_connection(stream, &self.core).await {
            tracing::debug!(%peer, error = %e, "controller connection closed");
        }
    }

    /// Adds `node_id`, reachable at `address`, to the voters: as a learner
    /// first, which the leader brings up to date, then as a voter
    /// (KIP-853's AddRaftVoter). Handled by the leader, forwarded to it
    /// from a follower. Adding a voter again updates its address.
    pub async fn add_voter(&self, node_id: NodeId, address: String) -> Result<(), MembershipError> {
        self.core
            .change_voters(VoterChange::Add { node_id, address })
            .await
    }

    /// Removes `node_id` from the voters (KIP-853's RemoveRaftVoter).
    pub async fn remove_voter(&self, node_id: NodeId) -> Result<(), MembershipError> {
        self.core
            .change_voters(VoterChange::Remove { node_id })
            .await
    }

    pub fn node_id(&self) -> NodeId {
        self.core.node_id
    }

    /// The address the controller port is bound to, if it has its own.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.core.raft.metrics().borrow().current_leader
    }

    /// This node's view of the quorum.
    pub fn status(&self) -> QuorumStatus {
        let metrics = self.core.raft.metrics();
        let metrics = metrics.borrow();
        QuorumStatus {
            node_id: self.core.node_id,
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            applied_index: metrics.last_applied.map(|id| id.index),
            committed_index: self.core.committed.get(),
            replicated: metrics
                .replication
                .iter()
                .flatten()
                .filter(|(node, _)| **node != self.core.node_id)
                .map(|(node, matched)| (*node, matched.map(|id| id.index)))
                .collect(),
            snapshot_index: metrics.snapshot.map(|id| id.index),
            purged_index: metrics.purged.map(|id| id.index),
            voters: metrics.membership_config.membership().voter_ids().collect(),
        }
    }

    /// The metadata as applied on this node: possibly behind the leader.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.core.reader.metadata()
    }

    /// Changes whenever this node's applied metadata may have changed.
    pub fn subscribe_metadata(&self) -> tokio::sync::watch::Receiver<u64> {
        self.core.reader.subscribe()
    }

    /// The index of the last metadata log entry applied on this node.
    pub fn applied_index(&self) -> Option<u64> {
        self.core.reader.applied_index()
    }

    /// Commits `command` to the metadata log and returns what applying it
    /// did. A follower forwards it to the leader it knows (one hop);
    /// without one it answers `NotLeader`, and the caller retries.
    pub async fn propose(&self, command: Command) -> Result<CommandResult, ProposeError> {
        Ok(self.core.propose(command).await?.1)
    }

    /// [`Controller::propose`], with the index of the log entry: once this
    /// node's [`Controller::applied_index`] reaches it, its metadata shows
    /// the command (and everything committed before it).
    pub async fn propose_at(&self, command: Command) -> Result<(u64, CommandResult), ProposeError> {
        self.core.propose(command).await
    }

    /// A heartbeat of `broker_id`, registered with `broker_epoch`: handled
    /// here on the leader, forwarded to it (one hop) from a follower. On
    /// the leader it renews the broker's session and unfences a fenced
    /// broker.
    pub async fn heartbeat(
        &self,
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        HeartbeatError::from_reply(self.core.heartbeat(broker_id, broker_epoch, true).await)
    }

    /// Creates a topic with replicas placed by [`assign_replicas`] over
    /// the unfenced brokers of this node's metadata, from a random start,
    /// under a fresh random topic id. Returns the entry's log index with
    /// the result.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: usize,
        replication_factor: usize,
        configs: BTreeMap<String, String>,
    ) -> Result<(u64, CommandResult), CreateTopicError> {
        let command = create_topic_command(
            &self.metadata(),
            name,
            (partitions, replication_factor),
            configs,
        )?;
        Ok(self.propose_at(command).await?)
    }

    /// A preferred-leader election over every partition, computed from
    /// this node's metadata and proposed as one `ElectLeaders` entry
    /// (nothing is proposed when no partition would change). A stale
    /// computation is rejected: call again.
    pub async fn elect_preferred_leaders(&self) -> Result<CommandResult, ProposeError> {
        let partition_changes = self.metadata().preferred_leader_changes();
        if partition_changes.is_empty() {
            return Ok(Ok(Applied::LeadersElected {
                partitions_changed: 0,
            }));
        }
        self.propose(Command::ElectLeaders { partition_changes })
            .await
    }

    /// Stops the Raft node, the session task and the RPC server, closing
    /// peers' connections. What was acknowledged is on disk; the directory
    /// can be reopened.
    pub async fn shutdown(&self) {
        let node_id = self.core.node_id;
        let Some(Tasks { server, sessions }) = self.tasks.lock().take() else {
            return; // Shut down already.
        };
        // The server and the session task end on the first change; a send
        // error means both already ended.
        let _ = self.stop_server.send(true);
        if let Err(e) = sessions.await {
            tracing::warn!(node_id, error = %e, "broker session task panicked");
        }
        if let Err(e) = self.core.raft.shutdown().await {
            tracing::warn!(node_id, error = %e, "Raft task ended with an error");
        }
        if let Some(server) = server
            && let Err(e) = server.await
        {
            tracing::warn!(node_id, error = %e, "controller RPC server panicked");
        }
    }
}

impl Core {
    /// The applied metadata once past `known_index`, waiting up to `wait`.
    pub(crate) async fn metadata_reply(
        &self,
        known_index: Option<u64>,
        wait: Duration,
    ) -> crate::network::MetadataReply {
        let mut changes = self.reader.subscribe();
        let newer = async {
            while self.reader.applied_index() <= known_index {
                if changes.changed().await.is_err() {
                    return;
                }
            }
        };
        // Timing out just means nothing new: the answer says so.
        let _ = tokio::time::timeout(wait, newer).await;
        let applied_index = self.reader.applied_index();
        crate::network::MetadataReply {
            applied_index,
            leader: self.raft.metrics().borrow().current_leader,
            metadata: (applied_index > known_index)
                .then(|| ClusterMetadata::clone(&self.reader.metadata())),
        }
    }

    async fn propose(&self, command: Command) -> Result<(u64, CommandResult), ProposeError> {
        check_size(&command)?;
        match propose_here(&self.raft, command.clone()).await {
            ProposeReply::Applied { index, result } => Ok((index, result)),
            ProposeReply::NotLeader {
                leader: Some(leader),
            } if leader != self.node_id => self.forward_proposal(leader, command).await,
            ProposeReply::NotLeader { leader } => Err(ProposeError::NotLeader { leader }),
            ProposeReply::Failed { reason } => Err(ProposeError::Failed { reason }),
        }
    }

    /// Changes the voters on the leader, or forwards the change to it
    /// (one hop).
    pub(crate) async fn change_voters(&self, change: VoterChange) -> Result<(), MembershipError> {
        if self.leading_term().is_some() {
            return self.change_voters_here(change).await;
        }
        let leader = self.raft.metrics().borrow().current_leader;
        let Some(leader) = leader.filter(|l| *l != self.node_id) else {
            return Err(MembershipError::NotLeader { leader });
        };
        let Some(mut client) = self.peer(leader) else {
            return Err(MembershipError::NotLeader {
                leader: Some(leader),
            });
        };
        // Bringing a learner up to date may take a while: a long timeout.
        let timeout = self.propose_timeout * 6;
        let request = Request::ChangeVoters {
            change,
            forwarded: true,
        };
        match client.call(&request, timeout).await {
            Ok(Response::ChangeVoters(reply)) => reply.into_result(),
            Ok(other) => Err(MembershipError::Failed {
                reason: format!("expected a ChangeVoters response from {leader}, found {other:?}"),
            }),
            Err(source) => Err(MembershipError::Forward { leader, source }),
        }
    }

    /// [`Core::change_voters`] if this node leads; else `NotLeader`.
    pub(crate) async fn change_voters_if_leading(
        &self,
        change: VoterChange,
    ) -> Result<(), MembershipError> {
        if self.leading_term().is_none() {
            let leader = self.raft.metrics().borrow().current_leader;
            return Err(MembershipError::NotLeader { leader });
        }
        self.change_voters_here(change).await
    }

    /// [`Core::change_voters`] on this node, which must lead.
    async fn change_voters_here(&self, change: VoterChange) -> Result<(), MembershipError> {
        let failed = |e: &dyn std::fmt::Display| MembershipError::Failed {
            reason: e.to_string(),
        };
        let not_leader = |leader| MembershipError::NotLeader { leader };
        let voters: std::collections::BTreeSet<NodeId> = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            metrics.membership_config.membership().voter_ids().collect()
        };
        let result = match change {
            VoterChange::Add { node_id, address } => {
                if voters.contains(&node_id) {
                    let nodes = BTreeMap::from([(node_id, BasicNode::new(&address))]);
                    self.raft
                        .change_membership(openraft::ChangeMembers::SetNodes(nodes), false)
                        .await
                        .map(drop)
                } else {
                    tracing::info!(node_id = self.node_id, new_voter = node_id, %address, "adding a voter: catching it up as a learner");
                    match self
                        .raft
                        .add_learner(node_id, BasicNode::new(&address), true)
                        .await
                    {
                        Ok(_) => self
                            .raft
                            .change_membership(
                                openraft::ChangeMembers::AddVoterIds([node_id].into()),
                                false,
                            )
                            .await
                            .map(drop),
                        Err(e) => Err(e),
                    }
                }
            }
            VoterChange::Remove { node_id } => {
                if !voters.contains(&node_id) {
                    return Err(MembershipError::NotAVoter { node_id });
                }
                if voters.len() == 1 {
                    return Err(MembershipError::LastVoter { node_id });
                }
                tracing::info!(
                    node_id = self.node_id,
                    removed = node_id,
                    "removing a voter"
                );
                self.raft
                    .change_membership(
                        openraft::ChangeMembers::RemoveVoters([node_id].into()),
                        false,
                    )
                    .await
                    .map(drop)
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(not_leader(f.leader_id))
            }
            Err(e) => Err(failed(&e)),
        }
    }

    /// The quorum as its leader sees it: here if this node leads, else
    /// asked of the leader when `may_forward` (one hop).
    pub(crate) async fn describe_quorum(&self, may_forward: bool) -> Option<QuorumState> {
        if self.leading_term().is_some() {
            return self.quorum_here();
        }
        let leader = self.raft.metrics().borrow().current_leader?;
        if !may_forward || leader == self.node_id {
            return None;
        }
        let mut client = self.peer(leader)?;
        let request = Request::DescribeQuorum { forwarded: true };
        match client.call(&request, self.propose_timeout).await {
            Ok(Response::DescribeQuorum(state)) => state,
            Ok(_) | Err(_) => None,
        }
    }

    /// The quorum from this leader's replication metrics.
    fn quorum_here(&self) -> Option<QuorumState> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        let membership = metrics.membership_config.membership();
        let progress = |node: NodeId| {
            let matched = if node == self.node_id {
                metrics.last_log_index
            } else {
                metrics
                    .replication
                    .as_ref()
                    .and_then(|replication| replication.get(&node).cloned().flatten())
                    .map(|log_id| log_id.index)
            };
            ReplicaProgress {
                node,
                address: membership
                    .get_node(&node)
                    .map(|n| n.addr.clone())
                    .unwrap_or_default(),
                log_end_offset: matched.map(|index| index + 1),
            }
        };
        Some(QuorumState {
            leader,
            term: metrics.current_term,
            high_watermark: self
                .committed
                .get()
                .or(metrics.last_applied.map(|log_id| log_id.index))
                .map_or(0, |index| index + 1),
            voters: membership.voter_ids().map(progress).collect(),
            observers: membership.learner_ids().map(progress).collect(),
        })
    }

    /// A client for `node`, if it is a member.
    fn peer(&self, node: NodeId) -> Option<PeerClient> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .get_node(&node)
            .map(|n| PeerClient::new(node, n.addr.clone(), self.connector.clone()))
    }

    async fn forward_proposal(
        &self,
        leader: NodeId,
        command: Command,
    ) -> Result<(u64, CommandResult), ProposeError> {
        let Some(mut client) = self.peer(leader) else {
            return Err(ProposeError::NotLeader {
                leader: Some(leader),
            });
        };
        let response = client
            .call(&Request::Propose(command), self.propose_timeout)
            .await
            .map_err(|source| ProposeError::Forward { leader, source })?;
        match response {
            Response::Propose(ProposeReply::Applied { index, result }) => Ok((index, result)),
            Response::Propose(ProposeReply::NotLeader { leader }) => {
                Err(ProposeError::NotLeader { leader })
            }
            Response::Propose(ProposeReply::Failed { reason }) => {
                Err(ProposeError::Failed { reason })
            }
            other => Err(ProposeError::Failed {
                reason: format!("expected a Propose response from {leader}, found {other:?}"),
            }),
        }
    }

    /// The term this node leads in, if it is the leader.
    fn leading_term(&self) -> Option<u64> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        (metrics.state == ServerState::Leader).then_some(metrics.current_term)
    }

    /// A broker's heartbeat: heard here if this node leads; else forwarded
    /// to the leader when `may_forward` (one hop).
    pub(crate) async fn heartbeat(
        &self,
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
        may_forward: bool,
    ) -> HeartbeatReply {
        if let Some(term) = self.leading_term() {
            return self.heartbeat_here(term, broker_id, broker_epoch).await;
        }
        let leader = self.raft.metrics().borrow().current_leader;
        let (Some(leader), true) = (leader, may_forward) else {
            return HeartbeatReply::NotLeader { leader };
        };
        if leader == self.node_id {
            return HeartbeatReply::NotLeader { leader: None };
        }
        let Some(mut client) = self.peer(leader) else {
            return HeartbeatReply::NotLeader { leader: None };
        };
        let request = Request::BrokerHeartbeat {
            broker_id,
            broker_epoch,
            forwarded: true,
        };
        match client.call(&request, self.propose_timeout).await {
            Ok(Response::BrokerHeartbeat(reply)) => reply,
            Ok(other) => HeartbeatReply::Failed {
                reason: format!(
                    "expected a BrokerHeartbeat response from {leader}, found {other:?}"
                ),
            },
            Err(e) => HeartbeatReply::Failed {
                reason: format!("forwarding to leader {leader}: {e}"),
            },
        }
    }

    async fn heartbeat_here(
        &self,
        term: u64,
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> HeartbeatReply {
        let metadata = self.reader.metadata();
        let Some(broker) = metadata.brokers.get(&broker_id) else {
            return HeartbeatReply::Rejected(Rejection::UnknownBroker { broker_id });
        };
        if broker_epoch < broker.epoch {
            return HeartbeatReply::Rejected(Rejection::StaleBrokerEpoch {
                broker_id,
                requested: broker_epoch,
                current: broker.epoch,
            });
        }
        if broker_epoch > broker.epoch {
            // A registration committed but not applied here yet (a new
            // leader catching up): not the broker's fault.
            return HeartbeatReply::Failed {
                reason: format!(
                    "broker {broker_id} epoch {broker_epoch} is newer than the applied {}",
                    broker.epoch
                ),
            };
        }
        self.liveness.lock().heard(term, broker_id, Instant::now());
        if !broker.fenced {
            return HeartbeatReply::Alive { fenced: false };
        }
        let command = Command::UnfenceBroker {
            broker_id,
            broker_epoch,
            partition_changes: metadata.unfence_changes(broker_id),
        };
        if let Err(e) = check_size(&command) {
            return HeartbeatReply::Failed {
                reason: format!("unfencing broker {broker_id}: {e}"),
            };
        }
        match propose_here(&self.raft, command).await {
            ProposeReply::Applied { result: Ok(_), .. } => {
                tracing::info!(node_id = self.node_id, %broker_id, "unfenced broker");
                HeartbeatReply::Alive { fenced: false }
            }
            ProposeReply::Applied {
                result: Err(rejection @ Rejection::StaleBrokerEpoch { .. }),
                ..
            } => HeartbeatReply::Rejected(rejection),
            // A race with another change of its partitions: the next
            // heartbeat tries again from the newer state.
            ProposeReply::Applied {
                result: Err(rejection),
                ..
            } => {
                tracing::debug!(%broker_id, %rejection, "unfence rejected; retrying on the next heartbeat");
                HeartbeatReply::Alive { fenced: true }
            }
            ProposeReply::NotLeader { leader } => HeartbeatReply::NotLeader { leader },
            ProposeReply::Failed { reason } => HeartbeatReply::Failed { reason },
        }
    }

    /// On the leader (auto.leader.rebalance.enable): a preferred-leader
    /// election when some broker leads less than it should of the
    /// partitions it is the preferred replica of.
    async fn rebalance_leaders(&self) {
        if self.leading_term().is_none() {
            return;
        }
        let metadata = self.reader.metadata();
        let threshold = self.cluster.leader_imbalance_per_broker_percentage;
        if !metadata.leaders_imbalanced(threshold) {
            return;
        }
        let partition_changes = metadata.preferred_leader_changes();
        if partition_changes.is_empty() {
            return;
        }
        let command = Command::ElectLeaders { partition_changes };
        match propose_here(&self.raft, command).await {
            ProposeReply::Applied {
                result: Ok(applied),
                ..
            } => tracing::info!(
                node_id = self.node_id,
                ?applied,
                "rebalanced leaders to their preferred replicas"
            ),
            ProposeReply::Applied {
                result: Err(rejection),
                ..
            } => tracing::debug!(%rejection, "leader rebalance refused; next time"),
            ProposeReply::NotLeader { .. } | ProposeReply::Failed { .. } => {}
        }
    }

    /// On the leader: gives offline partitions of topics that allow it an
    /// unclean leader (an unfenced replica outside the ISR).
    async fn elect_unclean_leaders(&self) {
        if self.leading_term().is_none() {
            return;
        }
        for command in self.reader.metadata().unclean_election_commands() {
            match propose_here(&self.raft, command).await {
                ProposeReply::Applied {
                    result: Ok(applied),
                    ..
                } => tracing::warn!(
                    node_id = self.node_id,
                    ?applied,
                    "elected an unclean leader; records only the old ISR had are lost"
                ),
                ProposeReply::Applied {
                    result: Err(rejection),
                    ..
                } => tracing::debug!(%rejection, "unclean election refused; retrying"),
                ProposeReply::NotLeader { .. } | ProposeReply::Failed { .. } => return,
            }
        }
    }

    /// On the leader: fences every unfenced broker silent for longer than
    /// the session timeout, one `FenceBroker` entry each, computed from
    /// the state after the previous one.
    async fn fence_silent_brokers(&self) {
        let Some(term) = self.leading_term() else {
            return;
        };
        let now = Instant::now();
        let unfenced: Vec<BrokerId> = self
            .reader
            .metadata()
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect();
        let silent = self
            .liveness
            .lock()
            .silent(term, now, self.session_timeout, &unfenced);
        for broker_id in silent {
            let metadata = self.reader.metadata();
            if !metadata.is_unfenced(broker_id) {
                continue;
            }
            let command = Command::FenceBroker {
                broker_id,
                partition_changes: metadata.fence_changes(broker_id),
            };
            // A broker leading tens of thousands of partitions would need
            // its fence split over several entries; not done yet.
            if let Err(e) = check_size(&command) {
                tracing::error!(%broker_id, error = %e, "cannot fence a silent broker");
                continue;
            }
            match propose_here(&self.raft, command).await {
                ProposeReply::Applied {
                    result: Ok(applied),
                    ..
                } => {
                    tracing::warn!(node_id = self.node_id, %broker_id, ?applied, "fenced a broker that stopped heartbeating: it leads nothing and leaves the ISRs until it is back");
                }
                // Stale (the state moved under the computation): the next
                // tick recomputes.
                ProposeReply::Applied {
                    result: Err(rejection),
                    ..
                } => {
                    tracing::debug!(%broker_id, %rejection, "fence rejected; retrying");
                }
                ProposeReply::NotLeader { .. } => return,
                ProposeReply::Failed { reason } => {
                    tracing::warn!(%broker_id, %reason, "proposing a fence failed");
                    return;
                }
            }
        }
    }
}

/// How often the session task looks for silent brokers: a small part of
/// the session timeout, so a fence comes soon after it runs out.
const SESSION_CHECKS_PER_TIMEOUT: u32 = 8;

/// Runs [`Core::fence_silent_brokers`] until `stop` changes.
async fn watch_sessions(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    let period = (core.session_timeout / SESSION_CHECKS_PER_TIMEOUT).max(Duration::from_millis(10));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let rebalance_every = core
        .cluster
        .leader_imbalance_check_interval_ms
        .map(Duration::from_millis);
    let mut next_rebalance = rebalance_every.map(|every| Instant::now() + every);
    loop {
        if let (Some(at), Some(every)) = (next_rebalance, rebalance_every)
            && Instant::now() >= at
        {
            next_rebalance = Some(Instant::now() + every);
            tokio::select! {
                _ = stop.changed() => return,
                () = core.rebalance_leaders() => {}
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticks.tick() => {}
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = core.fence_silent_brokers() => {}
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = core.elect_unclean_leaders() => {}
        }
    }
}

/// A `CreateTopic` with replicas placed by [`assign_replicas`] over the
/// unfenced brokers of `metadata`, from a random start, under a fresh
/// random topic id: what a controller or a broker proposes.
pub fn create_topic_command(
    metadata: &ClusterMetadata,
    name: &str,
    (partitions, replication_factor): (usize, usize),
    configs: BTreeMap<String, String>,
) -> Result<Command, PlacementError> {
    let brokers: Vec<BrokerId> = metadata
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| b.id)
        .collect();
    let topic_id = Uuid::new_v4();
    // The id's random bits choose the start, as Kafka's random start.
    let id = topic_id.as_bytes();
    let start = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
    let assignment = assign_replicas(&brokers, partitions, replication_factor, start)?;
    Ok(Command::CreateTopic {
        name: name.to_owned(),
        topic_id,
        assignment,
        configs,
    })
}

/// A `CreatePartitions` growing `topic` to `count` partitions, the new
/// ones placed as [`create_topic_command`] places a topic's, with the
/// topic's replication factor. `Ok(None)`: the topic is unknown.
pub fn create_partitions_command(
    metadata: &ClusterMetadata,
    topic: &str,
    count: usize,
) -> Result<Option<Command>, PlacementError> {
    let Some(found) = metadata.topics.get(topic) else {
        return Ok(None);
    };
    let new = count.saturating_sub(found.partitions.len());
    let replication_factor = found.partitions.first().map_or(1, |p| p.replicas.len());
    let brokers: Vec<BrokerId> = metadata
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| b.id)
        .collect();
    let seed = Uuid::new_v4();
    let id = seed.as_bytes();
    let start = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
    let assignment = assign_replicas(&brokers, new, replication_factor, start)?;
    Ok(Some(Command::CreatePartitions {
        topic_id: found.id,
        assignment,
    }))
}

/// Refuses a command larger than [`COMMAND_BYTES_MAX`] as JSON.
fn check_size(command: &Command) -> Result<(), ProposeError> {
    let bytes = serde_json::to_vec(command)
        .map_err(|e| ProposeError::Failed {
            reason: format!("encoding the command: {e}"),
        })?
        .len();
    if bytes > COMMAND_BYTES_MAX {
        return Err(ProposeError::CommandTooLarge {
            bytes,
            max: COMMAND_BYTES_MAX,
        });
    }
    Ok(())
}

/// Proposes `command` to the Raft on this node, without forwarding.
pub(crate) async fn propose_here(raft: &Raft<TypeConfig>, command: Command) -> ProposeReply {
    match raft.client_write(command).await {
        Ok(response) => ProposeReply::Applied {
            index: response.log_id.index,
            result: response.data,
        },
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
            ProposeReply::NotLeader {
                leader: forward.leader_id,
            }
        }
        Err(e) => ProposeReply::Failed {
            reason: e.to_string(),
        },
    }
}
