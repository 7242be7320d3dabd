//! Connections from the transaction layer to other brokers: a
//! coordinator's WriteTxnMarkers to the leaders of its partitions, and a
//! leader's AddPartitionsToTxn verification to a coordinator (KIP-890).
//! They are reused from one call to the next (a connection, and its TLS
//! handshake, per transaction would cost more than its calls).

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::cluster::{PeerConnection, PeerError};

/// Idle connections kept per broker: one per call running at once.
const IDLE_LINKS_PER_BROKER: usize = 4;

/// The largest response a call reads.
const RESPONSE_BYTES_MAX: usize = 1 << 20;

/// Pooled connections to other brokers, by address.
pub(crate) struct BrokerLinks {
    connector: rill_cluster::Connector,
    /// Idle connections by address, at most [`IDLE_LINKS_PER_BROKER`].
    idle: parking_lot::Mutex<HashMap<String, Vec<PeerConnection>>>,
}

impl BrokerLinks {
    pub(crate) fn new(connector: rill_cluster::Connector) -> BrokerLinks {
        BrokerLinks {
            connector,
            idle: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Sends `request` as `api` at `version` to the broker at `address`
    /// (this broker being `own_id`) over an idle connection or a new one,
    /// and reads its response. A connection whose call succeeded is kept
    /// for the next one; one that failed is dropped.
    pub(crate) async fn call<Req, Resp>(
        &self,
        (address, own_id): (&str, i32),
        (api, version): (ApiKey, i16),
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let idle = self.idle.lock().get_mut(address).and_then(Vec::pop);
        let mut connection = match idle {
            Some(connection) => connection,
            None => {
                let client_id = format!("rill-txn-{own_id}");
                PeerConnection::connect(&self.connector, address, client_id, RESPONSE_BYTES_MAX)
                    .await?
            }
        };
        let response = connection.call(api, version, request, timeout).await?;
        let mut idle = self.idle.lock();
        let list = idle.entry(address.to_owned()).or_default();
        if list.len() < IDLE_LINKS_PER_BROKER {
            list.push(connection);
        }
        Ok(response)
    }
}

impl std::fmt::Debug for BrokerLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerLinks").finish_non_exhaustive()
    }
}
