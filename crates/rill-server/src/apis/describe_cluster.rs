//! DescribeCluster: this broker, the cluster id, and itself as controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, Request, encode};
use crate::broker::Broker;

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let describe: DescribeClusterRequest = request.decode()?;
    let node = BrokerId(broker.config().node_id);
    let advertised = &broker.config().advertised;
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id()))
        .with_controller_id(node)
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(node)
                .with_host(StrBytes::from_string(advertised.host.clone()))
                .with_port(i32::from(advertised.port)),
        ]);
    if version >= 1 {
        response = response.with_endpoint_type(describe.endpoint_type);
    }
    encode(ApiKey::DescribeCluster, version, &response)
}
