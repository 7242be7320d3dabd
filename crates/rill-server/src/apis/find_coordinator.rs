//! FindCoordinator: a group's coordinator is the leader of its
//! `__consumer_offsets` partition, a transactional id's the leader of its
//! `__transaction_state` partition (each topic created on the first
//! request, once enough brokers are up); alone, a broker coordinates
//! every key. v4+ answers a batch of keys.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::coordinators::CoordinatorKind;
use crate::properties::HostPort;

pub(crate) fn answer(broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let find: FindCoordinatorRequest = request.decode()?;
    let access = Access::new(broker, &request.session);
    let find_one = |key: &str| -> Result<(BrokerId, HostPort), ResponseError> {
        let kind = match CoordinatorKind::from_code(find.key_type) {
            Some(CoordinatorKind::Group) => {
                access.group(AclOperation::Describe, key)?;
                CoordinatorKind::Group
            }
            Some(CoordinatorKind::Transaction) => {
                if !access.allows(AclOperation::Describe, ResourceType::TransactionalId, key) {
                    return Err(ResponseError::TransactionalIdAuthorizationFailed);
                }
                CoordinatorKind::Transaction
            }
            // Only brokers look up the coordinators of share state.
            Some(CoordinatorKind::Share) => {
                if !access.allows_cluster(AclOperation::ClusterAction) {
                    return Err(ResponseError::ClusterAuthorizationFailed);
                }
                CoordinatorKind::Share
            }
            None => return Err(ResponseError::InvalidRequest),
        };
        let (id, _) = broker.coordinator(kind, key)?;
        let address = broker
            .endpoint(id, &request.session.listener)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        Ok((BrokerId(id), address))
    };
    let response = if version >= 4 {
        let coordinators = find
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let found = find_one(key.as_str());
                coordinator(Coordinator::default().with_key(key), found)
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let found = find_one(find.key.as_str());
        let one = coordinator(Coordinator::default(), found);
        FindCoordinatorResponse::default()
            .with_node_id(one.node_id)
            .with_host(one.host)
            .with_port(one.port)
            .with_error_code(one.error_code)
    };
    encode(ApiKey::FindCoordinator, version, &response)
}

fn coordinator(
    entry: Coordinator,
    found: Result<(BrokerId, HostPort), ResponseError>,
) -> Coordinator {
    match found {
        Ok((node, address)) => entry
            .with_node_id(node)
            .with_host(StrBytes::from_string(address.host))
            .with_port(i32::from(address.port)),
        Err(error) => entry
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::from_static_str(""))
            .with_port(-1)
            .with_error_code(error.code()),
    }
}
