//! Controller RPC over TCP: the framing, openraft's `RaftNetwork`
//! client, and the server that dispatches to the local Raft (and broker
//! heartbeats to the local controller, which forwards them to the leader).
//!
//! A frame is a u32 big-endian length followed by that many bytes of JSON
//! (a [`Request`] or a [`Response`]); the length is checked against
//! [`FRAME_BYTES_MAX`] before anything is allocated. A connection carries
//! one request at a time, answered in order. Any error — a refused
//! connect, a cut connection, an undecodable frame — closes the connection;
//! the client reconnects on its next call.
//!
//! Thread-safety: a [`PeerClient`] is owned by one openraft replication
//! task (or one forwarded proposal or heartbeat, or one
//! `ControllerClient`) at a time; the server runs one task
//! per connection.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::command::{Command, CommandResult, Rejection};
use crate::connector::{Acceptor, Connector, NodeStream};
use crate::controller::{Core, MembershipError};
use crate::metadata::{BrokerEpoch, BrokerId, ClusterMetadata};
use crate::raft_types::{NodeId, TypeConfig};

/// The largest frame either side sends or accepts. An AppendEntries
/// request that would be larger is refused with openraft's
/// `PayloadTooLarge`, which makes it send fewer entries.
pub const FRAME_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Connections the server serves at once (a quorum has a handful of
/// peers, each with a replication stream and the odd forwarded proposal).
pub const CONNECTIONS_MAX: usize = 64;
/// How long a connect may take before the peer counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A message from one controller to another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A proposal forwarded to the node believed to be the leader.
    Propose(Command),
    /// A broker's heartbeat (KRaft's BrokerHeartbeat), from the broker or
    /// `forwarded` by a controller to the leader; a forwarded one is not
    /// forwarded again.
    BrokerHeartbeat {
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
        forwarded: bool,
    },
    /// A broker that is not a controller asks for the metadata as this
    /// controller has applied it, once it is past `known_index` (waiting
    /// up to `wait_ms`, at most [`METADATA_WAIT_MS_MAX`]).
    FetchMetadata {
        known_index: Option<u64>,
        wait_ms: u64,
    },
    /// A change of the voters, for the leader: forwarded to it (one hop)
    /// unless `forwarded` already.
    ChangeVoters {
        change: VoterChange,
        forwarded: bool,
    },
    /// The quorum as its leader sees it: forwarded to the leader (one hop)
    /// unless `forwarded` already.
    DescribeQuorum {
        forwarded: bool,
    },
}

/// A change of the quorum's voters (KIP-853's AddRaftVoter,
/// RemoveRaftVoter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum VoterChange {
    Add { node_id: NodeId, address: String },
    Remove { node_id: NodeId },
}

/// The answer to a [`Request::ChangeVoters`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum VotersReply {
    Changed,
    NotLeader { leader: Option<NodeId> },
    LastVoter { node_id: NodeId },
    NotAVoter { node_id: NodeId },
    Failed { reason: String },
}

impl VotersReply {
    fn of(result: Result<(), MembershipError>) -> VotersReply {
        match result {
            Ok(()) => VotersReply::Changed,
            Err(MembershipError::NotLeader { leader }) => VotersReply::NotLeader { leader },
            Err(MembershipError::LastVoter { node_id }) => VotersReply::LastVoter { node_id },
            Err(MembershipError::NotAVoter { node_id }) => VotersReply::NotAVoter { node_id },
            Err(other) => VotersReply::Failed {
                reason: other.to_string(),
            },
        }
    }

    pub(crate) fn into_result(self) -> Result<(), MembershipError> {
        match self {
            VotersReply::Changed => Ok(()),
            VotersReply::NotLeader { leader } => Err(MembershipError::NotLeader { leader }),
            VotersReply::LastVoter { node_id } => Err(MembershipError::LastVoter { node_id }),
            VotersReply::NotAVoter { node_id } => Err(MembershipError::NotAVoter { node_id }),
            VotersReply::Failed { reason } => Err(MembershipError::Failed { reason }),
        }
    }
}

/// The longest a FetchMetadata waits for a change.
pub const METADATA_WAIT_MS_MAX: u64 = 5_000;

/// The answer to a [`Request`] of the same name.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Propose(ProposeReply),
    BrokerHeartbeat(HeartbeatReply),
    FetchMetadata(MetadataReply),
    ChangeVoters(VotersReply),
    /// `None`: no leader answered.
    DescribeQuorum(Option<QuorumState>),
}

/// The metadata quorum as its leader sees it (KIP-595's DescribeQuorum).
/// Offsets are Kafka's: a Raft log index plus one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumState {
    pub leader: NodeId,
    pub term: u64,
    /// The offset after the last entry the quorum has applied.
    pub high_watermark: u64,
    pub voters: Vec<ReplicaProgress>,
    /// Members that do not vote (a node catching up to become a voter).
    pub observers: Vec<ReplicaProgress>,
}

/// One member of the quorum, as the leader knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaProgress {
    pub node: NodeId,
    /// Where peers reach it (`host:port`).
    pub address: String,
    /// The offset after the last entry the leader knows it holds; `None`
    /// before it has answered the leader.
    pub log_end_offset: Option<u64>,
}

/// A controller's applied metadata for a broker: `metadata` is `None` when
/// nothing was applied past the broker's `known_index` in time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataReply {
    pub applied_index: Option<u64>,
    pub leader: Option<NodeId>,
    pub metadata: Option<ClusterMetadata>,
}

/// What the leader answers to a broker's heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum HeartbeatReply {
    /// Heard; `fenced` says whether the broker may lead yet.
    Alive {
        fenced: bool,
    },
    /// The broker must re-register (unknown, or a stale epoch).
    Rejected(Rejection),
    NotLeader {
        leader: Option<NodeId>,
    },
    Failed {
        reason: String,
    },
}

/// What a node answers to a forwarded proposal. It does not forward
/// again: one hop at most.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ProposeReply {
    /// Committed and applied at log `index`.
    Applied {
        index: u64,
        result: CommandResult,
    },
    NotLeader {
        leader: Option<NodeId>,
    },
    Failed {
        reason: String,
    },
}

/// A failure of one RPC.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("connect to controller {target} at {addr}: {source}")]
    Connect {
        target: NodeId,
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("controller {target} at {addr}: {source}")]
    Io {
        target: NodeId,
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("controller {target} did not answer within {timeout:?}")]
    Timeout { target: NodeId, timeout: Duration },
    #[error("a frame of {bytes} bytes is larger than the {max} allowed")]
    FrameTooLarge { bytes: usize, max: usize },
    #[error("an undecodable frame: {source}")]
    Decode {
        #[source]
        source: serde_json::Error,
    },
    #[error("expected a {expected} response, found {found}")]
    UnexpectedResponse {
        expected: &'static str,
        found: String,
    },
}

/// Writes one frame holding `message`.
async fn write_frame<T: Serialize, S: AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    message: &T,
) -> Result<(), FrameError> {
    let payload = encode(message)?;
    let length = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        bytes: payload.len(),
    })?;
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&payload);
    stream.write_all(&frame).await?;
    stream.flush().await?;
    Ok(())
}

fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let payload = serde_json::to_vec(message).map_err(FrameError::Decode)?;
    if payload.len() > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge {
            bytes: payload.len(),
        });
    }
    Ok(payload)
}

/// Reads one frame; `Ok(None)` if the peer closed the connection between
/// frames.
async fn read_frame<T: serde::de::DeserializeOwned, S: AsyncRead + Unpin + ?Sized>(
    stream: &mut S,
) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let length = u32::from_be_bytes(header) as usize;
    if length > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge { bytes: length });
    }
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await?;
    serde_json::from_slice(&payload)
        .map(Some)
        .map_err(FrameError::Decode)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("a frame of {bytes} bytes is larger than the {FRAME_BYTES_MAX} allowed")]
    TooLarge { bytes: usize },
    #[error("an undecodable frame: {0}")]
    Decode(serde_json::Error),
}

/// A connection to one peer controller, opened on first use and again
/// after any error.
pub(crate) struct PeerClient {
    target: NodeId,
    addr: String,
    stream: Option<Box<dyn NodeStream>>,
    connector: Connector,
}

impl PeerClient {
    pub(crate) fn new(target: NodeId, addr: String, connector: Connector) -> PeerClient {
        PeerClient {
            target,
            addr,
            stream: None,
            connector,
        }
    }

    /// Sends `request` and waits up to `timeout` for the answer. The
    /// connection is kept only after a whole exchange: one cut short (an
    /// error, the timeout) may hold half a frame.
    pub(crate) async fn call(
        &mut self,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, RpcError> {
        let stream = self.stream.take();
        match tokio::time::timeout(timeout, self.exchange(stream, request)).await {
            Ok(Ok((stream, response))) => {
                self.stream = Some(stream);
                Ok(response)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RpcError::Timeout {
                target: self.target,
                timeout,
            }),
        }
    }

    async fn exchange(
        &self,
        stream: Option<Box<dyn NodeStream>>,
        request: &Request,
    ) -> Result<(Box<dyn NodeStream>, Response), RpcError> {
        let mut stream = match stream {
            Some(stream) => stream,
            None => self.connect().await?,
        };
        let frame_error = |e: FrameError| match e {
            FrameError::Io(source) => self.io_error(source),
            FrameError::TooLarge { bytes } => RpcError::FrameTooLarge {
                bytes,
                max: FRAME_BYTES_MAX,
            },
            FrameError::Decode(source) => RpcError::Decode { source },
        };
        write_frame(&mut stream, request)
            .await
            .map_err(frame_error)?;
        match read_frame(&mut stream).await.map_err(frame_error)? {
            Some(response) => Ok((stream, response)),
            None => Err(self.io_error(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response",
            ))),
        }
    }

    async fn connect(&self) -> Result<Box<dyn NodeStream>, RpcError> {
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, self.connector.connect(&self.addr));
        match connect.await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(source)) => Err(self.connect_error(source)),
            Err(_) => {
                let source = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                Err(self.connect_error(source))
            }
        }
    }

    fn connect_error(&self, source: io::Error) -> RpcError {
        RpcError::Connect {
            target: self.target,
            addr: self.addr.clone(),
            source,
        }
    }

    fn io_error(&self, source: io::Error) -> RpcError {
        RpcError::Io {
            target: self.target,
            addr: self.addr.clone(),
            source,
        }
    }
}

/// Makes a [`PeerClient`] per peer for openraft.
pub(crate) struct NetworkFactory(pub(crate) Connector);

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient::new(target, node.addr.clone(), self.0.clone())
    }
}

type RaftRpcError<E = openraft::error::Infallible> =
    RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

/// Maps a failed call to what openraft expects: a refused connect makes it
/// back off, anything else retries.
fn rpc_error<E: std::error::Error>(e: RpcError) -> RaftRpcError<E> {
    match e {
        RpcError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

fn unexpected<E: std::error::Error>(expected: &'static str, found: &Response) -> RaftRpcError<E> {
    let e = RpcError::UnexpectedResponse {
        expected,
        found: format!("{found:?}").chars().take(200).collect(),
    };
    RPCError::Network(NetworkError::new(&e))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RaftRpcError> {
        let entries = rpc.entries.len() as u64;
        let request = Request::AppendEntries(rpc);
        match self.call(&request, option.hard_ttl()).await {
            Ok(Response::AppendEntries(Ok(response))) => Ok(response),
            Ok(Response::AppendEntries(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(unexpected("AppendEntries", &other)),
            Err(e @ RpcError::FrameTooLarge { .. }) if entries > 1 => {
                Err(RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint(entries / 2).with_source_error(&e),
                ))
            }
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RaftRpcError<InstallSnapshotError>> {
        let request = Request::InstallSnapshot(rpc);
        match self.call(&request, option.hard_ttl()).await {
            Ok(Response::InstallSnapshot(Ok(response))) => Ok(response),
            Ok(Response::InstallSnapshot(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(unexpected("InstallSnapshot", &other)),
            Err(e) => Err(rpc_error(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RaftRpcError> {
        let request = Request::Vote(rpc);
        match self.call(&request, option.hard_ttl()).await {
            Ok(Response::Vote(Ok(response))) => Ok(response),
            Ok(Response::Vote(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(unexpected("Vote", &other)),
            Err(e) => Err(rpc_error(e)),
        }
    }
}

/// Serves peers' requests to the local Raft until `shutdown` turns true,
/// then closes every connection.
pub(crate) async fn serve(
    (listener, acceptor): (TcpListener, Acceptor),
    core: Arc<Core>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connections so the set stays bounded too.
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, peer)) => {
                let core = Arc::clone(&core);
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    let stream = match acceptor.accept(stream, peer).await {
                        Ok(stream) => stream,
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "controller connection refused");
                            return;
                        }
                    };
                    if let Err(e) = serve_connection(stream, &core).await {
                        tracing::debug!(%peer, error = %e, "controller connection closed");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                // A failed accept (out of descriptors, a reset before
                // accept) concerns that one connection; keep listening.
                tracing::warn!(error = %e, "accepting a controller connection");
                drop(permit);
            }
        }
    }
    connections.shutdown().await;
}

/// Whether a connection whose first bytes are `head` carries the
/// controller RPC rather than Kafka requests: after the 4-byte length,
/// a controller frame is a JSON object, while a Kafka request starts
/// with its API key, a big-endian i16 — and `{"` would be key 31522,
/// which Kafka does not define. `head` needs 6 bytes.
pub fn is_controller_connection(head: &[u8]) -> bool {
    head.get(4..6) == Some(b"{\"")
}

pub(crate) async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    core: &Core,
) -> Result<(), FrameError> {
    let raft = &core.raft;
    while let Some(request) = read_frame::<Request, _>(&mut stream).await? {
        let response = match request {
            Request::AppendEntries(rpc) => Response::AppendEntries(raft.append_entries(rpc).await),
            Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await),
            Request::InstallSnapshot(rpc) => {
                Response::InstallSnapshot(raft.install_snapshot(rpc).await)
            }
            Request::Propose(command) => {
                Response::Propose(crate::controller::propose_here(raft, command).await)
            }
            Request::BrokerHeartbeat {
                broker_id,
                broker_epoch,
                forwarded,
            } => {
                Response::BrokerHeartbeat(core.heartbeat(broker_id, broker_epoch, !forwarded).await)
            }
            Request::FetchMetadata {
                known_index,
                wait_ms,
            } => Response::FetchMetadata(
                core.metadata_reply(
                    known_index,
                    Duration::from_millis(wait_ms.min(METADATA_WAIT_MS_MAX)),
                )
                .await,
            ),
            Request::DescribeQuorum { forwarded } => {
                Response::DescribeQuorum(core.describe_quorum(!forwarded).await)
            }
            Request::ChangeVoters { change, forwarded } => {
                let result = if forwarded {
                    core.change_voters_if_leading(change).await
                } else {
                    core.change_voters(change).await
                };
                Response::ChangeVoters(VotersReply::of(result))
            }
        };
        write_frame(&mut stream, &response).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    async fn connected_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn a_frame_round_trips_and_a_close_between_frames_is_the_end() {
        let (mut a, mut b) = connected_pair().await;
        let reply = ProposeReply::NotLeader { leader: Some(3) };
        write_frame(&mut a, &reply).await.unwrap();
        drop(a);
        let read: Option<ProposeReply> = read_frame(&mut b).await.unwrap();
        assert!(matches!(
            read,
            Some(ProposeReply::NotLeader { leader: Some(3) })
        ));
        let end: Option<ProposeReply> = read_frame(&mut b).await.unwrap();
        assert!(end.is_none());
    }

    #[tokio::test]
    async fn an_oversized_or_undecodable_frame_is_an_error() {
        let (mut a, mut b) = connected_pair().await;
        let length = u32::try_from(FRAME_BYTES_MAX + 1).unwrap();
        a.write_all(&length.to_be_bytes()).await.unwrap();
        let read = read_frame::<ProposeReply, _>(&mut b).await;
        assert!(
            matches!(read, Err(FrameError::TooLarge { bytes }) if bytes == FRAME_BYTES_MAX + 1)
        );

        let (mut a, mut b) = connected_pair().await;
        a.write_all(&5u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{nope").await.unwrap();
        let read = read_frame::<ProposeReply, _>(&mut b).await;
        assert!(matches!(read, Err(FrameError::Decode(_))));

        let (mut a, mut b) = connected_pair().await;
        a.write_all(&100u32.to_be_bytes()).await.unwrap();
        a.write_all(b"cut short").await.unwrap();
        drop(a);
        let read = read_frame::<ProposeReply, _>(&mut b).await;
        assert!(matches!(read, Err(FrameError::Io(_))));
    }

    #[tokio::test]
    async fn a_peer_that_is_not_listening_is_unreachable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let mut client = PeerClient::new(2, addr, Connector::tcp());
        let request = Request::Propose(Command::DeleteTopic {
            name: "t".to_owned(),
        });
        let e = client
            .call(&request, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, RpcError::Connect { target: 2, .. }), "{e}");
        let mapped: RaftRpcError = rpc_error(e);
        assert!(matches!(mapped, RPCError::Unreachable(_)));
    }

    #[tokio::test]
    async fn a_server_that_answers_nothing_times_out_and_the_connection_is_dropped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let silent = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            // Holds the connection open and never answers.
            let mut buf = Vec::new();
            let mut stream = stream;
            let _ = stream.read_to_end(&mut buf).await; // ends when the client drops it
        });
        let mut client = PeerClient::new(2, addr, Connector::tcp());
        let request = Request::Propose(Command::DeleteTopic {
            name: "t".to_owned(),
        });
        let e = client
            .call(&request, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, RpcError::Timeout { target: 2, .. }), "{e}");
        assert!(client.stream.is_none());
        // The dropped connection lets the silent server's read end.
        silent.await.unwrap();
    }
}
