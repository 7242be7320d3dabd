//! ListConfigResources (KIP-1142; v0 was KIP-714's
//! ListClientMetricsResources): the resources that have configs, by type.
//!
//! As Kafka's broker answers it: DESCRIBE_CONFIGS on the cluster; v0 lists
//! client-metrics subscriptions only; v1 lists the types asked for, or
//! all of TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS and GROUP when none
//! is, and a type outside those fails the whole request with
//! UNSUPPORTED_VERSION; the rows come in Kafka's order of types (GROUP,
//! CLIENT_METRICS, BROKER_LOGGER, BROKER, TOPIC), each sorted.
//!
//! What Rill has of each: every topic; every broker with an endpoint on
//! the request's listener; every group with configs set (a group without
//! any is not listed, as in Kafka, whether or not it exists). Rill keeps
//! no client-metrics subscriptions or broker loggers as config resources
//! (DescribeConfigs answers TOPIC, BROKER and GROUP), so those types list
//! nothing.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ApiKey, ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;

// Kafka's ConfigResource.Type ids.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

/// What v1 lists, in the order Kafka lists it.
const SUPPORTED: [i8; 5] = [GROUP, CLIENT_METRICS, BROKER_LOGGER, BROKER, TOPIC];

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let list: ListConfigResourcesRequest = request.decode()?;
    let refuse = |error: ResponseError| {
        let response = ListConfigResourcesResponse::default().with_error_code(error.code());
        encode(ApiKey::ListConfigResources, version, &response)
    };
    if !Access::new(broker, &request.session).allows_cluster(AclOperation::DescribeConfigs) {
        return refuse(ResponseError::ClusterAuthorizationFailed);
    }
    let wanted: Vec<i8> = if version == 0 {
        vec![CLIENT_METRICS]
    } else if list.resource_types.is_empty() {
        SUPPORTED.to_vec()
    } else if list.resource_types.iter().all(|t| SUPPORTED.contains(t)) {
        list.resource_types
    } else {
        return refuse(ResponseError::UnsupportedVersion);
    };
    let metadata = broker.node().metadata();
    let mut resources = Vec::new();
    let mut add = |resource_type: i8, name: String| {
        resources.push(
            ConfigResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name)),
        );
    };
    for resource_type in SUPPORTED.into_iter().filter(|t| wanted.contains(t)) {
        match resource_type {
            BROKER => {
                for id in metadata.brokers.keys() {
                    if broker.endpoint(id.0, &request.session.listener).is_some() {
                        add(BROKER, id.0.to_string());
                    }
                }
            }
            TOPIC => {
                for name in metadata.topics.keys() {
                    add(TOPIC, name.clone());
                }
            }
            GROUP => {
                for group in metadata.group_configs.keys() {
                    add(GROUP, group.clone());
                }
            }
            // Rill keeps none of these (the module's documentation).
            _ => {}
        }
    }
    let response = ListConfigResourcesResponse::default().with_config_resources(resources);
    encode(ApiKey::ListConfigResources, version, &response)
}
