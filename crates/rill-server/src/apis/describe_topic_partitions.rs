//! DescribeTopicPartitions (KIP-966): topics' partitions — leader, leader
//! epoch, replicas, ISR, and the replicas on fenced brokers — a page at
//! a time, for admin tools facing many partitions (Kafka's AdminClient
//! describes topics with it).
//!
//! As Kafka's handler: no topics named means every topic the principal
//! may DESCRIBE; topics come sorted by name, from the cursor's topic (at
//! its partition) on; a page holds at most `response_partition_limit`
//! partitions (and never more than Kafka's default
//! max.request.partition.size.limit, 2000), and a page cut short names
//! where the next starts (`next_cursor`). A topic named and not
//! describable answers TOPIC_AUTHORIZATION_FAILED whether it exists or
//! not; one that does not exist UNKNOWN_TOPIC_OR_PARTITION; a cursor
//! whose topic is not among those named makes the request
//! INVALID_REQUEST. Rill has no eligible leader replicas (KIP-966's ELR):
//! those lists are empty.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::ClusterMetadata;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;

/// Kafka's max.request.partition.size.limit default: the most partitions
/// one response holds, whatever the request asks.
const PARTITIONS_PER_RESPONSE_MAX: i32 = 2000;

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let describe: DescribeTopicPartitionsRequest = request.decode()?;
    let access = Access::new(broker, &request.session);
    let cluster = broker.topics().metadata();
    let all_topics = describe.topics.is_empty();
    let (cursor_topic, cursor_partition) =
        describe.cursor.as_ref().map_or((String::new(), 0), |c| {
            (c.topic_name.to_string(), c.partition_index)
        });
    let named: BTreeSet<String> = if all_topics {
        cluster.topics.keys().cloned().collect()
    } else {
        describe.topics.iter().map(|t| t.name.to_string()).collect()
    };
    if describe.cursor.is_some() && !all_topics && !named.contains(&cursor_topic) {
        // Kafka's error response: each topic named answers the error.
        let topics = named
            .into_iter()
            .map(|name| refused(name, ResponseError::InvalidRequest))
            .collect();
        let response = DescribeTopicPartitionsResponse::default().with_topics(topics);
        return encode(ApiKey::DescribeTopicPartitions, version, &response);
    }
    let mut unauthorized = Vec::new();
    let mut topics = Vec::new();
    let mut next_cursor = None;
    let mut remaining = describe
        .response_partition_limit
        .clamp(0, PARTITIONS_PER_RESPONSE_MAX);
    for name in named.into_iter().filter(|name| *name >= cursor_topic) {
        if !access.allows(AclOperation::Describe, ResourceType::Topic, &name) {
            // Every topic lists only what may be described; a topic named
            // hears that it may not, existing or not.
            if !all_topics {
                unauthorized.push(refused(name, ResponseError::TopicAuthorizationFailed));
            }
            continue;
        }
        if remaining == 0 {
            // The page is full: the next starts at this topic.
            next_cursor = Some(cursor(&name, 0));
            break;
        }
        let Some(topic) = cluster.topics.get(&name) else {
            if !all_topics {
                topics.push(refused(name, ResponseError::UnknownTopicOrPartition));
            }
            continue;
        };
        let first = if name == cursor_topic {
            cursor_partition.max(0)
        } else {
            0
        };
        let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let end = count.min(first.saturating_add(remaining));
        let partitions: Vec<DescribeTopicPartitionsResponsePartition> = (first..end)
            .filter_map(|index| {
                let state = topic.partitions.get(usize::try_from(index).ok()?)?;
                Some(partition(&cluster, index, state))
            })
            .collect();
        remaining -= i32::try_from(partitions.len()).unwrap_or(i32::MAX);
        let operations = access.operations(ResourceType::Topic, &name, true);
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name(&name)))
                .with_topic_id(topic.id)
                .with_is_internal(crate::topics::is_internal(&name))
                .with_partitions(partitions)
                .with_topic_authorized_operations(operations),
        );
        if end < count {
            next_cursor = Some(cursor(&name, end));
            break;
        }
    }
    topics.extend(unauthorized);
    let response = DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor);
    encode(ApiKey::DescribeTopicPartitions, version, &response)
}

/// One partition's description: a partition without a leader answers
/// LEADER_NOT_AVAILABLE; replicas on fenced brokers are offline.
fn partition(
    cluster: &ClusterMetadata,
    index: i32,
    state: &rill_cluster::PartitionState,
) -> DescribeTopicPartitionsResponsePartition {
    let ids = |brokers: &[rill_cluster::BrokerId]| brokers.iter().map(|b| BrokerId(b.0)).collect();
    let offline: Vec<rill_cluster::BrokerId> = state
        .replicas
        .iter()
        .filter(|r| cluster.brokers.get(r).is_none_or(|b| b.fenced))
        .copied()
        .collect();
    let error = match state.leader {
        Some(_) => 0,
        None => ResponseError::LeaderNotAvailable.code(),
    };
    DescribeTopicPartitionsResponsePartition::default()
        .with_error_code(error)
        .with_partition_index(index)
        .with_leader_id(BrokerId(state.leader.map_or(-1, |b| b.0)))
        .with_leader_epoch(state.leader_epoch.0)
        .with_replica_nodes(ids(&state.replicas))
        .with_isr_nodes(ids(&state.isr))
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
        .with_offline_replicas(ids(&offline))
}

fn refused(name: String, error: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(topic_name(&name)))
        .with_error_code(error.code())
}

fn cursor(topic: &str, partition_index: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(topic_name(topic))
        .with_partition_index(partition_index)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}
