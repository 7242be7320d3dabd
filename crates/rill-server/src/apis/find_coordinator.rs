//! FindCoordinator: this broker coordinates every group (v4+ answers a
//! batch of keys). Transactions have no coordinator yet.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, Request, encode};
use crate::broker::Broker;

/// Kafka's CoordinatorType for consumer groups.
const KEY_TYPE_GROUP: i8 = 0;

pub(crate) fn answer(broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let find: FindCoordinatorRequest = request.decode()?;
    let node = BrokerId(broker.config().node_id);
    let advertised = &broker.config().advertised;
    let error = if find.key_type != KEY_TYPE_GROUP {
        Some(ResponseError::CoordinatorNotAvailable)
    } else if broker.groups().is_none() {
        Some(ResponseError::CoordinatorLoadInProgress)
    } else {
        None
    };
    let code = error.map_or(0, |e| e.code());
    let response = if version >= 4 {
        let coordinators = find
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(node)
                    .with_host(StrBytes::from_string(advertised.host.clone()))
                    .with_port(i32::from(advertised.port))
                    .with_error_code(code)
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        FindCoordinatorResponse::default()
            .with_node_id(node)
            .with_host(StrBytes::from_string(advertised.host.clone()))
            .with_port(i32::from(advertised.port))
            .with_error_code(code)
    };
    encode(ApiKey::FindCoordinator, version, &response)
}
