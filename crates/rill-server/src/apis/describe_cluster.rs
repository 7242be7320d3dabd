//! DescribeCluster: the registered brokers (v2 may ask for the fenced
//! ones too, KIP-1073), the cluster id and the quorum's leader as the
//! controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let describe: DescribeClusterRequest = request.decode()?;
    let access = Access::new(broker, &request.session);
    if !access.allows_cluster(AclOperation::Describe) {
        let response = DescribeClusterResponse::default()
            .with_error_code(kafka_protocol::ResponseError::ClusterAuthorizationFailed.code());
        return encode(ApiKey::DescribeCluster, version, &response);
    }
    let node = broker.node();
    let brokers = node
        .metadata()
        .brokers
        .values()
        .filter(|b| !b.fenced || (version >= 2 && describe.include_fenced_brokers))
        // A broker without this listener is not one this client can use.
        .filter_map(|b| {
            let address = broker.endpoint(b.id.0, &request.session.listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id.0))
                    .with_host(StrBytes::from_string(address.host))
                    .with_port(i32::from(address.port))
                    .with_is_fenced(b.fenced),
            )
        })
        .collect();
    let controller = BrokerId(node.controller_leader().unwrap_or(-1));
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id()))
        .with_controller_id(controller)
        .with_brokers(brokers)
        .with_cluster_authorized_operations(access.operations(
            ResourceType::Cluster,
            rill_cluster::CLUSTER_RESOURCE_NAME,
            describe.include_cluster_authorized_operations,
        ));
    if version >= 1 {
        response = response.with_endpoint_type(describe.endpoint_type);
    }
    encode(ApiKey::DescribeCluster, version, &response)
}
