//! A controller: one member of the metadata quorum, as a broker process
//! owns it — the Raft node, its storage under a directory, and the RPC
//! server on the controller port.
//!
//! Thread-safety: a `Controller` may be shared (`Arc`) and called from
//! any task; `propose` calls run concurrently (openraft batches them).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::command::{Command, CommandResult};
use crate::durable_file::FileError;
use crate::log_store::LogStore;
use crate::metadata::ClusterMetadata;
use crate::network::{self, NetworkFactory, PeerClient, ProposeReply, Request, Response, RpcError};
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
    /// The last entry of this node's latest snapshot.
    pub snapshot_index: Option<u64>,
    /// Entries up to this one are gone from this node's log.
    pub purged_index: Option<u64>,
    pub voters: Vec<NodeId>,
}

/// How to start a controller.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub node_id: NodeId,
    /// The controller port; peers reach this node at `voters[node_id]`.
    pub listen: SocketAddr,
    /// Every voter of the quorum, this node included: id -> `host:port`.
    pub voters: BTreeMap<NodeId, String>,
    /// Holds the Raft log, vote and snapshot (created if missing).
    pub data_dir: PathBuf,
    pub raft: RaftSettings,
}

/// Why a controller did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
#[non_exhaustive]
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
    node_id: NodeId,
    local_addr: SocketAddr,
    raft: Raft<TypeConfig>,
    reader: MetadataReader,
    propose_timeout: Duration,
    stop_server: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl Controller {
    /// Opens the storage under `config.data_dir`, listens on
    /// `config.listen`, starts the Raft node and, if this node's log is
    /// empty, initializes the quorum with `config.voters` (every voter
    /// does; openraft accepts the same membership from each, and refuses
    /// it once a node has a log).
    pub async fn start(config: ControllerConfig) -> Result<Controller, StartError> {
        if !config.voters.contains_key(&config.node_id) {
            return Err(StartError::NotAVoter {
                node_id: config.node_id,
                voters: config.voters.keys().copied().collect(),
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

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;

        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            NetworkFactory,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| StartError::Raft {
            reason: e.to_string(),
        })?;
        let (stop_server, stopped) = watch::channel(false);
        let server = tokio::spawn(network::serve(listener, raft.clone(), stopped));
        let controller = Controller {
            node_id: config.node_id,
            local_addr,
            raft,
            reader,
            propose_timeout: Duration::from_millis(t.propose_timeout_ms),
            stop_server,
            server,
        };

        let voters: BTreeMap<NodeId, BasicNode> = config
            .voters
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        match controller.raft.initialize(voters).await {
            Ok(()) => tracing::info!(node_id = config.node_id, "initialized the metadata quorum"),
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
        Ok(controller)
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The address the controller port is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// This node's view of the quorum.
    pub fn status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        QuorumStatus {
            node_id: self.node_id,
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            applied_index: metrics.last_applied.map(|id| id.index),
            snapshot_index: metrics.snapshot.map(|id| id.index),
            purged_index: metrics.purged.map(|id| id.index),
            voters: metrics.membership_config.membership().voter_ids().collect(),
        }
    }

    /// The metadata as applied on this node: possibly behind the leader.
    pub fn metadata(&self) -> ClusterMetadata {
        self.reader.metadata()
    }

    /// The index of the last metadata log entry applied on this node.
    pub fn applied_index(&self) -> Option<u64> {
        self.reader.applied_index()
    }

    /// Commits `command` to the metadata log and returns what applying it
    /// did. A follower forwards it to the leader it knows (one hop);
    /// without one it answers `NotLeader`, and the caller retries.
    pub async fn propose(&self, command: Command) -> Result<CommandResult, ProposeError> {
        let bytes = serde_json::to_vec(&command)
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
        match propose_here(&self.raft, command.clone()).await {
            ProposeReply::Applied(result) => Ok(result),
            ProposeReply::NotLeader {
                leader: Some(leader),
            } if leader != self.node_id => self.forward(leader, command).await,
            ProposeReply::NotLeader { leader } => Err(ProposeError::NotLeader { leader }),
            ProposeReply::Failed { reason } => Err(ProposeError::Failed { reason }),
        }
    }

    async fn forward(
        &self,
        leader: NodeId,
        command: Command,
    ) -> Result<CommandResult, ProposeError> {
        let addr = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            metrics
                .membership_config
                .membership()
                .get_node(&leader)
                .map(|node| node.addr.clone())
        };
        let Some(addr) = addr else {
            return Err(ProposeError::NotLeader {
                leader: Some(leader),
            });
        };
        let mut client = PeerClient::new(leader, addr);
        let response = client
            .call(&Request::Propose(command), self.propose_timeout)
            .await
            .map_err(|source| ProposeError::Forward { leader, source })?;
        match response {
            Response::Propose(ProposeReply::Applied(result)) => Ok(result),
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

    /// Stops the Raft node and the RPC server, closing peers' connections.
    /// What was acknowledged is on disk; the directory can be reopened.
    pub async fn shutdown(self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(node_id = self.node_id, error = %e, "Raft task ended with an error");
        }
        // The server ends on the first change; a send error means it
        // already ended.
        let _ = self.stop_server.send(true);
        if let Err(e) = self.server.await {
            tracing::warn!(node_id = self.node_id, error = %e, "controller RPC server panicked");
        }
    }
}

/// Proposes `command` to the Raft on this node, without forwarding.
pub(crate) async fn propose_here(raft: &Raft<TypeConfig>, command: Command) -> ProposeReply {
    match raft.client_write(command).await {
        Ok(response) => ProposeReply::Applied(response.data),
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
