//! Metadata: the brokers, and each topic's partitions with their leaders,
//! leader epochs, replicas and ISR — on a single broker, itself for all;
//! in a cluster, the unfenced brokers and what the metadata quorum says.
//! Unknown topics are created when both the broker
//! (auto.create.topics.enable) and the request (v4+) allow it.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{Body, HandlerError, Request, encode};
use crate::acl::{ResourceType, authorized_operations};
use crate::broker::{Broker, TopicError};
use crate::error_code;
use crate::metadata_store::TopicMetadata;

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let metadata: MetadataRequest = request.decode()?;
    let auto_create =
        broker.config().auto_create_topics && (version < 4 || metadata.allow_auto_topic_creation);
    let all_topics = match &metadata.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let topic_operations = authorized_operations(
        ResourceType::Topic,
        version >= 8 && metadata.include_topic_authorized_operations,
    );
    let topics: Vec<MetadataResponseTopic> = if all_topics {
        broker
            .topics()
            .into_iter()
            .map(|(name, topic)| describe(broker, &name, &topic))
            .collect()
    } else {
        metadata
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|wanted| match wanted.name {
                Some(name) => by_name(broker, &name, auto_create),
                None => by_id(broker, wanted.topic_id),
            })
            .collect()
    };
    let topics = topics
        .into_iter()
        .map(|topic| {
            if topic.error_code == 0 {
                topic.with_topic_authorized_operations(topic_operations)
            } else {
                topic
            }
        })
        .collect();
    let (brokers, controller_id) = brokers(broker);
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_controller_id(controller_id)
        .with_topics(topics);
    if version >= 2 {
        response = response.with_cluster_id(Some(StrBytes::from_string(broker.cluster_id())));
    }
    if (8..=10).contains(&version) {
        response = response.with_cluster_authorized_operations(authorized_operations(
            ResourceType::Cluster,
            metadata.include_cluster_authorized_operations,
        ));
    }
    encode(ApiKey::Metadata, version, &response)
}

fn by_name(broker: &Broker, name: &TopicName, auto_create: bool) -> MetadataResponseTopic {
    let topic = match broker.topic(name) {
        Some(topic) => Ok(topic),
        None if auto_create => broker.auto_create_topic(name),
        None => Err(TopicError::UnknownTopic {
            name: name.to_string(),
        }),
    };
    match topic {
        Ok(topic) => describe(broker, name, &topic),
        Err(error) => MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(error_code::for_topic(&error).code()),
    }
}

fn by_id(broker: &Broker, id: Uuid) -> MetadataResponseTopic {
    match broker.topic_name_by_id(id).and_then(|name| {
        let topic = broker.topic(&name)?;
        Some((name, topic))
    }) {
        Some((name, topic)) => describe(broker, &name, &topic),
        None => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ResponseError::UnknownTopicId.code()),
    }
}

/// The live brokers and the controller: this broker alone, or in a
/// cluster the unfenced brokers and the quorum's leader (-1 if none).
fn brokers(broker: &Broker) -> (Vec<MetadataResponseBroker>, BrokerId) {
    let node_id = broker.config().node_id;
    let Some(node) = broker.cluster() else {
        let advertised = &broker.config().advertised;
        let this = MetadataResponseBroker::default()
            .with_node_id(BrokerId(node_id))
            .with_host(StrBytes::from_string(advertised.host.clone()))
            .with_port(i32::from(advertised.port));
        return (vec![this], BrokerId(node_id));
    };
    let brokers = node
        .metadata()
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id.0))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(i32::from(b.port))
        })
        .collect();
    (brokers, BrokerId(node.controller_leader().unwrap_or(-1)))
}

fn describe(broker: &Broker, name: &str, topic: &TopicMetadata) -> MetadataResponseTopic {
    let node = BrokerId(broker.config().node_id);
    if let Some(cluster) = broker.cluster() {
        let metadata = cluster.metadata();
        if let Some(replicated) = metadata.topics.get(name) {
            return describe_replicated(name, replicated);
        }
    }
    let partitions = (0..topic.partitions)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(crate::LEADER_EPOCH)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_topic_id(topic.uuid())
        .with_is_internal(name.starts_with("__"))
        .with_partitions(partitions)
}

/// A topic of the cluster metadata: a partition without a leader answers
/// LEADER_NOT_AVAILABLE, which clients retry.
fn describe_replicated(name: &str, topic: &rill_cluster::Topic) -> MetadataResponseTopic {
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
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_topic_id(topic.id)
        .with_is_internal(name.starts_with("__"))
        .with_partitions(partitions)
}
