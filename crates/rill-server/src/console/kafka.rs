//! The console's Kafka client: it asks the brokers of its own cluster,
//! over their inter-broker listener, as any admin tool would — the leader
//! of a partition for its offsets and records, a group's coordinator for
//! the group — so that the console sees the whole cluster from any node.
//!
//! One idle connection per broker is kept for the next call; calls made
//! at the same time open their own.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use parking_lot::Mutex;
use rill_cluster::{BrokerId, Connector};

use super::reply::ApiError;
use crate::broker::Broker;
use crate::cluster::PeerConnection;

/// How long one request may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response read (a fetch of a page of messages, DescribeLogDirs
/// of a large broker).
const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// See the module doc.
pub(crate) struct Kafka {
    connector: Connector,
    /// Idle connections by node and the address they reach.
    idle: Mutex<HashMap<i32, PeerConnection>>,
}

impl Kafka {
    pub(crate) fn new(connector: Connector) -> Kafka {
        Kafka {
            connector,
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
    ) -> Result<Resp, ApiError>
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
                "rill-console".into(),
                RESPONSE_BYTES_MAX,
            )
            .await
            .map_err(|e| ApiError::unavailable(format!("broker {node}: {e}")))?,
        };
        let response = connection
            .call(api, version, request, CALL_TIMEOUT)
            .await
            .map_err(|e| ApiError::unavailable(format!("broker {node}: {e}")))?;
        self.idle.lock().insert(node, connection);
        Ok(response)
    }
}

/// Where this broker reaches broker `node`: its inter-broker address.
fn address_of(broker: &Broker, node: i32) -> Result<String, ApiError> {
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
        .ok_or_else(|| ApiError::unavailable(format!("broker {node} is not registered")))?;
    Ok(format!("{}:{}", registered.host, registered.port))
}

/// `Ok` for error code 0, else Kafka's name for the code and `message`.
pub(crate) fn check(code: i16, message: Option<&str>) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    let name = crate::error_code::kafka_name(code);
    Err(match message.filter(|m| !m.is_empty()) {
        Some(message) => format!("{name}: {message}"),
        None => name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_named_as_kafka_names_them() {
        assert_eq!(check(0, Some("ignored")), Ok(()));
        assert_eq!(
            check(36, Some("topic \"t\" already exists")),
            Err("TOPIC_ALREADY_EXISTS: topic \"t\" already exists".to_string())
        );
        assert_eq!(
            check(3, None),
            Err("UNKNOWN_TOPIC_OR_PARTITION".to_string())
        );
    }
}
