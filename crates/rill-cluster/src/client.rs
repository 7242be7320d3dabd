//! What a broker that is not (or not only) a controller uses to reach the
//! quorum over the controller RPC: heartbeats (to any controller, which
//! forwards them to the leader), proposals (to the leader, found by
//! asking), and the applied metadata (from any controller, long-polled).
//!
//! Thread-safety: a `ControllerClient` is owned by one task (a broker's
//! heartbeat loop); it holds one connection per controller.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::command::{Command, CommandResult};
use crate::connector::Connector;
use crate::controller::{HeartbeatError, HeartbeatResponse, MembershipError, ProposeError};
use crate::metadata::{BrokerEpoch, BrokerId};
use crate::network::{
    MetadataReply, PeerClient, ProposeReply, QuorumState, Request, Response, RpcError, VoterChange,
};
use crate::raft_types::NodeId;

/// A broker's client of the controller quorum. See the module doc.
pub struct ControllerClient {
    /// Every controller, tried in turn from `next`.
    controllers: Vec<PeerClient>,
    ids: Vec<NodeId>,
    next: usize,
    timeout: Duration,
}

impl ControllerClient {
    /// `controllers`: id -> `host:port` of every controller (the
    /// `--controller-quorum` list); `timeout` bounds each call; `connector`
    /// opens the connections.
    pub fn new(
        controllers: &BTreeMap<NodeId, String>,
        timeout: Duration,
        connector: &Connector,
    ) -> ControllerClient {
        ControllerClient {
            controllers: controllers
                .iter()
                .map(|(id, addr)| PeerClient::new(*id, addr.clone(), connector.clone()))
                .collect(),
            ids: controllers.keys().copied().collect(),
            next: 0,
            timeout,
        }
    }

    /// Sends one heartbeat, to the controller that answered last and, if
    /// it does not answer, to the others in turn (each at most once).
    /// A rejection (re-register) comes back at once; otherwise the last
    /// failure.
    pub async fn heartbeat(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        let request = Request::BrokerHeartbeat {
            broker_id,
            broker_epoch,
            forwarded: false,
        };
        let mut last = HeartbeatError::NotLeader { leader: None };
        for attempt in 0..self.controllers.len() {
            let index = (self.next + attempt) % self.controllers.len();
            let target = self.ids[index];
            let result = match self.controllers[index].call(&request, self.timeout).await {
                Ok(Response::BrokerHeartbeat(reply)) => HeartbeatError::from_reply(reply),
                Ok(other) => Err(HeartbeatError::Rpc {
                    target,
                    source: RpcError::UnexpectedResponse {
                        expected: "BrokerHeartbeat",
                        found: format!("{other:?}").chars().take(200).collect(),
                    },
                }),
                Err(source) => Err(HeartbeatError::Rpc { target, source }),
            };
            match result {
                Ok(response) => {
                    self.next = index;
                    return Ok(response);
                }
                Err(e @ HeartbeatError::Rejected { .. }) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Commits `command` through the leader: tried at the controller that
    /// answered last, then at the leader a refusal names, then at the
    /// others in turn. Returns the entry's log index with its result.
    pub async fn propose(
        &mut self,
        command: &Command,
    ) -> Result<(u64, CommandResult), ProposeError> {
        let request = Request::Propose(command.clone());
        let mut last = ProposeError::NotLeader { leader: None };
        let mut index = self.next;
        for _ in 0..self.controllers.len() * 2 {
            let target = self.ids[index];
            let next = match self.controllers[index].call(&request, self.timeout).await {
                Ok(Response::Propose(ProposeReply::Applied { index: at, result })) => {
                    self.next = index;
                    return Ok((at, result));
                }
                Ok(Response::Propose(ProposeReply::NotLeader { leader })) => {
                    last = ProposeError::NotLeader { leader };
                    leader.and_then(|l| self.ids.iter().position(|id| *id == l))
                }
                Ok(Response::Propose(ProposeReply::Failed { reason })) => {
                    last = ProposeError::Failed { reason };
                    None
                }
                Ok(other) => {
                    last = ProposeError::Failed {
                        reason: format!(
                            "expected a Propose response from {target}, found {other:?}"
                        )
                        .chars()
                        .take(300)
                        .collect(),
                    };
                    None
                }
                Err(source) => {
                    last = ProposeError::Forward {
                        leader: target,
                        source,
                    };
                    None
                }
            };
            index = next.unwrap_or((index + 1) % self.controllers.len());
        }
        Err(last)
    }

    /// Adds `node_id`, reachable at `address`, to the voters (or updates
    /// its address), through any controller, which forwards it to the
    /// leader. Bringing a learner up to date may take a while: the call
    /// waits up to six times the client's timeout.
    pub async fn add_voter(
        &mut self,
        node_id: NodeId,
        address: String,
    ) -> Result<(), MembershipError> {
        self.change_voters(VoterChange::Add { node_id, address })
            .await
    }

    /// Removes `node_id` from the voters, through any controller.
    pub async fn remove_voter(&mut self, node_id: NodeId) -> Result<(), MembershipError> {
        self.change_voters(VoterChange::Remove { node_id }).await
    }

    async fn change_voters(&mut self, change: VoterChange) -> Result<(), MembershipError> {
        let request = Request::ChangeVoters {
            change,
            forwarded: false,
        };
        let mut last = MembershipError::NotLeader { leader: None };
        for attempt in 0..self.controllers.len() {
            let index = (self.next + attempt) % self.controllers.len();
            let target = self.ids[index];
            match self.controllers[index]
                .call(&request, self.timeout * 6)
                .await
            {
                Ok(Response::ChangeVoters(reply)) => {
                    self.next = index;
                    return reply.into_result();
                }
                Ok(other) => {
                    last = MembershipError::Failed {
                        reason: format!(
                            "expected a ChangeVoters response from {target}, found {other:?}"
                        )
                        .chars()
                        .take(300)
                        .collect(),
                    }
                }
                Err(source) => {
                    last = MembershipError::Forward {
                        leader: target,
                        source,
                    }
                }
            }
        }
        Err(last)
    }

    /// The quorum as its leader sees it, asked of the controllers in turn;
    /// `None` when none answers with one.
    pub async fn describe_quorum(&mut self) -> Option<QuorumState> {
        let request = Request::DescribeQuorum { forwarded: false };
        for attempt in 0..self.controllers.len() {
            let index = (self.next + attempt) % self.controllers.len();
            if let Ok(Response::DescribeQuorum(Some(state))) =
                self.controllers[index].call(&request, self.timeout).await
            {
                self.next = index;
                return Some(state);
            }
        }
        None
    }

    /// The metadata as the controller that answered last (or the next one)
    /// has applied it, once past `known_index`, waiting up to `wait_ms` for
    /// a change.
    pub async fn fetch_metadata(
        &mut self,
        known_index: Option<u64>,
        wait_ms: u64,
    ) -> Result<MetadataReply, RpcError> {
        let request = Request::FetchMetadata {
            known_index,
            wait_ms,
        };
        let timeout = self.timeout + std::time::Duration::from_millis(wait_ms);
        let mut last = None;
        for attempt in 0..self.controllers.len() {
            let index = (self.next + attempt) % self.controllers.len();
            match self.controllers[index].call(&request, timeout).await {
                Ok(Response::FetchMetadata(reply)) => {
                    self.next = index;
                    return Ok(reply);
                }
                Ok(other) => {
                    last = Some(RpcError::UnexpectedResponse {
                        expected: "FetchMetadata",
                        found: format!("{other:?}").chars().take(200).collect(),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(RpcError::UnexpectedResponse {
            expected: "FetchMetadata",
            found: "no controllers".to_owned(),
        }))
    }
}
