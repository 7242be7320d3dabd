//! DescribeCluster: the brokers, the cluster id and the controller — this
//! broker alone, or in a cluster the registered brokers (v2 may ask for
//! the fenced ones too, KIP-1073) and the quorum's leader.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, Request, encode};
use crate::acl::{ResourceType, authorized_operations};
use crate::broker::Broker;

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let describe: DescribeClusterRequest = request.decode()?;
    let node = BrokerId(broker.config().node_id);
    let advertised = &broker.config().advertised;
    let (brokers, controller) = match broker.cluster() {
        None => (
            vec![
                DescribeClusterBroker::default()
                    .with_broker_id(node)
                    .with_host(StrBytes::from_string(advertised.host.clone()))
                    .with_port(i32::from(advertised.port)),
            ],
            node,
        ),
        Some(cluster) => {
            let brokers = cluster
                .metadata()
                .brokers
                .values()
                .filter(|b| !b.fenced || (version >= 2 && describe.include_fenced_brokers))
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id.0))
                        .with_host(StrBytes::from_string(b.host.clone()))
                        .with_port(i32::from(b.port))
                        .with_is_fenced(b.fenced)
                })
                .collect();
            (brokers, BrokerId(cluster.controller_leader().unwrap_or(-1)))
        }
    };
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id()))
        .with_controller_id(controller)
        .with_brokers(brokers)
        .with_cluster_authorized_operations(authorized_operations(
            ResourceType::Cluster,
            describe.include_cluster_authorized_operations,
        ));
    if version >= 1 {
        response = response.with_endpoint_type(describe.endpoint_type);
    }
    encode(ApiKey::DescribeCluster, version, &response)
}
