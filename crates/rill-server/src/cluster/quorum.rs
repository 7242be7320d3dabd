//! How a clustered broker reaches the metadata quorum: through its own
//! controller when its node.id is a voter (combined mode), or else over
//! the controllers' RPC, with the metadata mirrored here by a long-poll
//! (a broker-only node, for clusters with more brokers than
//! controllers).
//!
//! Thread-safe: shared by the node's tasks and the handlers.

use super::NodeLinks;
use rill_cluster::Connector;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rill_cluster::{
    Bootstrap, BrokerEpoch, BrokerId, ClusterMetadata, ClusterSettings, Command, CommandResult,
    Controller, ControllerClient, ControllerConfig, CreateTopicError, HeartbeatError,
    HeartbeatResponse, ProposeError, RaftSettings,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ClusterStartError;
use crate::config::{ClusterConfig, QuorumConfig};
use crate::properties::HostPort;

/// How long a broker-only node's metadata long-poll waits at a controller.
const METADATA_POLL_WAIT_MS: u64 = 1_000;
/// How long each call to a controller may take beyond its wait.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause after a failed metadata poll.
const POLL_BACKOFF: Duration = Duration::from_millis(100);

/// See the module doc.
pub(crate) enum Quorum {
    Local(Arc<Controller>),
    Remote(Remote),
}

/// Where a broker's own controller is put once it runs, for the Kafka
/// listener to hand it the controller connections it accepts.
pub(crate) type ControllerSlot = Arc<std::sync::OnceLock<Arc<Controller>>>;

/// A broker-only node's view of the quorum.
pub(crate) struct Remote {
    /// Proposals and heartbeats (one at a time).
    client: tokio::sync::Mutex<ControllerClient>,
    view: Arc<RwLock<View>>,
    changes: watch::Sender<u64>,
    poll: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct View {
    applied_index: Option<u64>,
    leader: Option<u64>,
    metadata: Arc<ClusterMetadata>,
}

impl Quorum {
    /// This node's part of the quorum, as `config.quorum` says:
    /// - standalone: its own controller, the only voter, reached at
    ///   `advertised` (the Kafka listener, which serves controller
    ///   connections too);
    /// - joining: its own controller, started empty, then added as a voter
    ///   through the bootstrap servers;
    /// - a fixed quorum: its controller, listening at its entry of
    ///   controller.quorum.voters, if it is one; else a client of the
    ///   voters (a broker only).
    ///
    /// A controller of its own goes into `slot` as soon as it runs, so that
    /// the listener can hand it peers' connections while it joins.
    pub(crate) async fn start(
        node_id: i32,
        (config, advertised): (&ClusterConfig, &HostPort),
        data_dir: std::path::PathBuf,
        (slot, links): (&ControllerSlot, &NodeLinks),
    ) -> Result<Quorum, ClusterStartError> {
        let id = u64::try_from(node_id).unwrap_or(u64::MAX);
        let own_address = advertised.to_string();
        let (listen, bootstrap) = match &config.quorum {
            QuorumConfig::Standalone => (
                None,
                Bootstrap::Voters(BTreeMap::from([(id, own_address.clone())])),
            ),
            QuorumConfig::Join(_) => (None, Bootstrap::Join),
            QuorumConfig::Voters(voters) => {
                let Some(address) = voters.get(&id) else {
                    return Ok(Quorum::Remote(Remote::start(voters, links.connector())));
                };
                let listen = tokio::net::lookup_host(address.as_str())
                    .await
                    .ok()
                    .and_then(|mut addrs| addrs.next())
                    .ok_or_else(|| ClusterStartError::ControllerAddress {
                        node_id: id,
                        address: address.clone(),
                    })?;
                (Some(listen), Bootstrap::Voters(voters.clone()))
            }
        };
        let election = config.election_timeout_ms;
        let controller = Arc::new(
            Controller::start(ControllerConfig {
                node_id: id,
                listen,
                bootstrap,
                data_dir,
                raft: RaftSettings {
                    heartbeat_interval_ms: (election / 4).max(1),
                    election_timeout_min_ms: election,
                    election_timeout_max_ms: election * 2,
                    ..RaftSettings::default()
                },
                cluster: ClusterSettings {
                    broker_session_timeout_ms: config.broker_session_timeout_ms,
                    leader_imbalance_check_interval_ms: config.leader_imbalance_check_interval_ms,
                    leader_imbalance_per_broker_percentage: config
                        .leader_imbalance_per_broker_percentage,
                },
                connector: links.connector().clone(),
                acceptor: links.acceptor().clone(),
            })
            .await?,
        );
        // Set once: a broker starts its quorum once.
        let _ = slot.set(Arc::clone(&controller));
        let quorum = Quorum::Local(Arc::clone(&controller));
        match &config.quorum {
            QuorumConfig::Voters(_) => {}
            // A standalone node that had another address before (or any
            // voter whose address changed) tells the quorum its new one.
            QuorumConfig::Standalone => {
                if controller.voters().contains(&id)
                    && controller.address_of(id).as_deref() != Some(own_address.as_str())
                {
                    super::retry_while_starting("updating this controller's address", || {
                        controller.add_voter(id, own_address.clone())
                    })
                    .await?;
                }
            }
            QuorumConfig::Join(servers) => {
                if !controller.voters().contains(&id) {
                    let servers: BTreeMap<u64, String> =
                        (0..).zip(servers.iter().cloned()).collect();
                    let client = tokio::sync::Mutex::new(ControllerClient::new(
                        &servers,
                        CALL_TIMEOUT,
                        links.connector(),
                    ));
                    tracing::info!(node_id, ?servers, "joining the metadata quorum");
                    super::retry_while_starting("joining the metadata quorum", || async {
                        client.lock().await.add_voter(id, own_address.clone()).await
                    })
                    .await?;
                    tracing::info!(node_id, "joined the metadata quorum as a voter");
                }
            }
        }
        Ok(quorum)
    }

    /// The metadata as applied here (the local controller's, or the last
    /// a controller sent).
    pub(crate) fn metadata(&self) -> Arc<ClusterMetadata> {
        match self {
            Quorum::Local(controller) => controller.metadata(),
            Quorum::Remote(remote) => Arc::clone(&remote.view.read().metadata),
        }
    }

    /// The quorum as its leader sees it; `None` without a leader.
    pub(crate) async fn describe(&self) -> Option<rill_cluster::QuorumState> {
        match self {
            Quorum::Local(controller) => controller.describe_quorum().await,
            Quorum::Remote(remote) => remote.client.lock().await.describe_quorum().await,
        }
    }

    /// This node's Raft view (term, log end), if it is a controller.
    pub(crate) fn status(&self) -> Option<rill_cluster::QuorumStatus> {
        match self {
            Quorum::Local(controller) => Some(controller.status()),
            Quorum::Remote(_) => None,
        }
    }

    pub(crate) fn applied_index(&self) -> Option<u64> {
        match self {
            Quorum::Local(controller) => controller.applied_index(),
            Quorum::Remote(remote) => remote.view.read().applied_index,
        }
    }

    /// Changes whenever [`Quorum::metadata`] may have.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        match self {
            Quorum::Local(controller) => controller.subscribe_metadata(),
            Quorum::Remote(remote) => remote.changes.subscribe(),
        }
    }

    /// The controller leading the quorum, as far as this node knows.
    pub(crate) fn leader(&self) -> Option<u64> {
        match self {
            Quorum::Local(controller) => controller.leader(),
            Quorum::Remote(remote) => remote.view.read().leader,
        }
    }

    /// Commits `command`; its log index with what applying it did.
    pub(crate) async fn propose_at(
        &self,
        command: Command,
    ) -> Result<(u64, CommandResult), ProposeError> {
        match self {
            Quorum::Local(controller) => controller.propose_at(command).await,
            Quorum::Remote(remote) => remote.client.lock().await.propose(&command).await,
        }
    }

    /// Creates a topic with replicas placed over the unfenced brokers.
    pub(crate) async fn create_topic(
        &self,
        name: &str,
        (partitions, replication_factor): (usize, usize),
        configs: BTreeMap<String, String>,
    ) -> Result<(u64, CommandResult), CreateTopicError> {
        match self {
            Quorum::Local(controller) => {
                controller
                    .create_topic(name, partitions, replication_factor, configs)
                    .await
            }
            Quorum::Remote(_) => {
                let command = rill_cluster::create_topic_command(
                    &self.metadata(),
                    name,
                    (partitions, replication_factor),
                    configs,
                )?;
                Ok(self.propose_at(command).await?)
            }
        }
    }

    pub(crate) async fn heartbeat(
        &self,
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        match self {
            Quorum::Local(controller) => controller.heartbeat(broker_id, broker_epoch).await,
            Quorum::Remote(remote) => {
                remote
                    .client
                    .lock()
                    .await
                    .heartbeat(broker_id, broker_epoch)
                    .await
            }
        }
    }

    pub(crate) async fn shutdown(&self) {
        match self {
            Quorum::Local(controller) => controller.shutdown().await,
            Quorum::Remote(remote) => {
                let poll = remote.poll.lock().take();
                if let Some(poll) = poll {
                    poll.abort();
                    // Aborted: a poll in flight is simply dropped.
                    let _ = poll.await;
                }
            }
        }
    }
}

impl Remote {
    fn start(voters: &BTreeMap<u64, String>, connector: &Connector) -> Remote {
        let view = Arc::new(RwLock::new(View::default()));
        let changes = watch::Sender::new(0);
        let poll = tokio::spawn(poll_metadata(
            ControllerClient::new(voters, CALL_TIMEOUT, connector),
            Arc::clone(&view),
            changes.clone(),
        ));
        Remote {
            client: tokio::sync::Mutex::new(ControllerClient::new(voters, CALL_TIMEOUT, connector)),
            view,
            changes,
            poll: Mutex::new(Some(poll)),
        }
    }
}

/// Mirrors the controllers' applied metadata: a long-poll that returns
/// as soon as a controller has applied past what this node has.
async fn poll_metadata(
    mut client: ControllerClient,
    view: Arc<RwLock<View>>,
    changes: watch::Sender<u64>,
) {
    loop {
        let known = view.read().applied_index;
        match client.fetch_metadata(known, METADATA_POLL_WAIT_MS).await {
            Ok(reply) => {
                let mut view = view.write();
                view.leader = reply.leader;
                // A controller behind the one asked before says nothing new.
                if let Some(metadata) = reply.metadata
                    && reply.applied_index > view.applied_index
                {
                    view.applied_index = reply.applied_index;
                    view.metadata = Arc::new(metadata);
                    drop(view);
                    changes.send_modify(|n| *n += 1);
                }
            }
            Err(error) => {
                tracing::debug!(%error, "fetching the metadata from the controllers");
                tokio::time::sleep(POLL_BACKOFF).await;
            }
        }
    }
}
