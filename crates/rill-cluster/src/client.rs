//! What a broker that is not (or not only) a controller uses to reach the
//! quorum: heartbeats over the controller RPC, to any controller, which
//! forwards them to the leader.
//!
//! Thread-safety: a `ControllerClient` is owned by one task (a broker's
//! heartbeat loop); it holds one connection per controller.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::controller::{HeartbeatError, HeartbeatResponse};
use crate::metadata::{BrokerEpoch, BrokerId};
use crate::network::{PeerClient, Request, Response, RpcError};
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
    /// `--controller-quorum` list); `timeout` bounds each call.
    pub fn new(controllers: &BTreeMap<NodeId, String>, timeout: Duration) -> ControllerClient {
        ControllerClient {
            controllers: controllers
                .iter()
                .map(|(id, addr)| PeerClient::new(*id, addr.clone()))
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
}
