//! A broker's Kafka client of the other brokers of its cluster, over their
//! inter-broker listener: the console asks them as any admin tool would
//! (the leader of a partition for its records, a group's coordinator for
//! the group), and a share-partition's leader asks the coordinator of its
//! state (ReadShareGroupState, WriteShareGroupState).
//!
//! One idle connection per broker is kept for the next call; calls made
//! at the same time open their own.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use parking_lot::Mutex;
use rill_cluster::{BrokerId, Connector};

use crate::broker::Broker;
use crate::cluster::{PeerConnection, PeerError};

/// How long one request may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response read (a fetch of a page of messages, DescribeLogDirs
/// of a large broker).
const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// See the module doc.
pub(crate) struct PeerClient {
    connector: Connector,
    /// The client id of its requests, naming who asks in the peer's logs.
    client_id: &'static str,
    /// Idle connections by node and the address they reach.
    idle: Mutex<HashMap<i32, PeerConnection>>,
}

impl PeerClient {
    pub(crate) fn new(connector: Connector, client_id: &'static str) -> PeerClient {
        PeerClient {
            connector,
            client_id,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `request` to broker `node` at `version` and reads its answer.
    pub(crate) async fn call<Req, Resp>(
        &self,
        broker: &Broker,
        node: i32,
        (api, version): (ApiKey, i16),
        request: &Req,
    ) -> Result<Resp, PeerCallError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let address = address_of(broker, node)?;
        let idle = self.idle.lock().remove(&node);
        let mut connection = match idle {
            Some(connection) if connection.address() == address => connection,
            _ => PeerConnection::connect(
                &self.connector,
                &address,
                self.client_id.into(),
                RESPONSE_BYTES_MAX,
            )
            .await
            .map_err(|error| PeerCallError::Peer { node, error })?,
        };
        let response = connection
            .call(api, version, request, CALL_TIMEOUT)
            .await
            .map_err(|error| PeerCallError::Peer { node, error })?;
        self.idle.lock().insert(node, connection);
        Ok(response)
    }
}

/// Where this broker reaches broker `node`: its inter-broker address.
fn address_of(broker: &Broker, node: i32) -> Result<String, PeerCallError> {
    if node == broker.config().node_id {
        return Ok(broker
            .config()
            .listeners
            .inter_broker()
            .advertised
            .to_string());
    }
    let metadata = broker.node().metadata();
    let registered = metadata
        .brokers
        .get(&BrokerId(node))
        .ok_or(PeerCallError::Unregistered { node })?;
    Ok(format!("{}:{}", registered.host, registered.port))
}

/// Why a call to another broker got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerCallError {
    #[error("broker {node} is not registered")]
    Unregistered { node: i32 },
    #[error("broker {node}: {error}")]
    Peer { node: i32, error: PeerError },
}
