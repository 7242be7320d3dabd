//! Metadata: the unfenced brokers, the quorum's leader as controller, and
//! each topic's partitions with their leaders, leader epochs, replicas
//! and ISR, as the metadata quorum says (a partition without a leader
//! answers LEADER_NOT_AVAILABLE). Unknown topics are created when both
//! the broker (auto.create.topics.enable) and the request (v4+) allow it.
//!
//! With an authorizer (Kafka's KafkaApis): a request for every topic
//! lists those the principal may DESCRIBE; a topic asked for by name that
//! the principal may not describe answers TOPIC_AUTHORIZATION_FAILED
//! whether it exists or not, so its existence is not told; creating one
//! needs CREATE on the cluster or the topic.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::ClusterMetadata;
use uuid::Uuid;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;
use crate::topics::TopicError;

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let metadata: MetadataRequest = request.decode()?;
    let auto_create =
        broker.config().auto_create_topics && (version < 4 || metadata.allow_auto_topic_creation);
    let all_topics = match &metadata.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let access = Access::new(broker, &request.session);
    let may_describe =
        |name: &str| access.allows(AclOperation::Describe, ResourceType::Topic, name);
    let cluster = broker.topics().metadata();
    let topics: Vec<MetadataResponseTopic> = if all_topics {
        cluster
            .topics
            .values()
            .filter(|topic| may_describe(&topic.name))
            .map(|topic| describe(topic))
            .collect()
    } else {
        metadata
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|wanted| match wanted.name {
                Some(name) if !may_describe(&name) => MetadataResponseTopic::default()
                    .with_name(Some(name))
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
                Some(name) => {
                    let auto_create = auto_create
                        && (access.allows_cluster(AclOperation::Create)
                            || access.allows(AclOperation::Create, ResourceType::Topic, &name));
                    by_name(broker, &cluster, &name, auto_create)
                }
                None => by_id(&cluster, wanted.topic_id, &may_describe),
            })
            .collect()
    };
    let wants_operations = version >= 8 && metadata.include_topic_authorized_operations;
    let topics = topics
        .into_iter()
        .map(|topic| match &topic.name {
            Some(name) if topic.error_code == 0 => {
                let operations = access.operations(ResourceType::Topic, name, wants_operations);
                topic.with_topic_authorized_operations(operations)
            }
            _ => topic,
        })
        .collect();
    let brokers = cluster
        .brokers
        .values()
        .filter(|b| !b.fenced)
        // A broker without this listener is not one this client can use.
        .filter_map(|b| {
            let address = broker.endpoint(b.id.0, &request.session.listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id.0))
                    .with_host(StrBytes::from_string(address.host))
                    .with_port(i32::from(address.port)),
            )
        })
        .collect();
    let controller_id = BrokerId(broker.node().controller_leader().unwrap_or(-1));
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_controller_id(controller_id)
        .with_topics(topics);
    if version >= 2 {
        response =
            response.with_cluster_id(Some(StrBytes::from_string(cluster.cluster_id.clone())));
    }
    if (8..=10).contains(&version) {
        response = response.with_cluster_authorized_operations(access.operations(
            ResourceType::Cluster,
            rill_cluster::CLUSTER_RESOURCE_NAME,
            metadata.include_cluster_authorized_operations,
        ));
    }
    encode(ApiKey::Metadata, version, &response)
}

fn by_name(
    broker: &Broker,
    cluster: &ClusterMetadata,
    name: &TopicName,
    auto_create: bool,
) -> MetadataResponseTopic {
    if let Some(topic) = cluster.topics.get(name.as_str()) {
        return describe(topic);
    }
    let error = if auto_create {
        match broker.topics().auto_create(name) {
            Ok(topic) => return describe(&topic),
            Err(error) => error,
        }
    } else {
        TopicError::UnknownTopic {
            name: name.to_string(),
        }
    };
    MetadataResponseTopic::default()
        .with_name(Some(name.clone()))
        .with_error_code(error_code::for_topic(&error).code())
}

fn by_id(
    cluster: &ClusterMetadata,
    id: Uuid,
    may_describe: &dyn Fn(&str) -> bool,
) -> MetadataResponseTopic {
    match cluster.topic_by_id(id) {
        Some(topic) if !may_describe(&topic.name) => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
        Some(topic) => describe(topic),
        None => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ResponseError::UnknownTopicId.code()),
    }
}

/// A topic of the metadata: a partition without a leader answers
/// LEADER_NOT_AVAILABLE, which clients retry.
fn describe(topic: &rill_cluster::Topic) -> MetadataResponseTopic {
    let ids = |brokers: &[rill_cluster::BrokerId]| brokers.iter().map(|b| BrokerId(b.0)).collect();
    let partitions = (0..)
        .zip(&topic.partitions)
        .map(|(index, state)| {
            let partition = MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(state.leader.map_or(-1, |b| b.0)))
                .with_leader_epoch(state.leader_epoch.0)
                .with_replica_nodes(ids(&state.replicas))
                .with_isr_nodes(ids(&state.isr));
            if state.leader.is_none() {
                partition.with_error_code(ResponseError::LeaderNotAvailable.code())
            } else {
                partition
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(crate::topics::is_internal(&topic.name))
        .with_partitions(partitions)
}
