//! ConsumerGroupHeartbeat (KIP-848): a member of a consumer group joins
//! (epoch 0), keeps its session, reports what it owns, learns its epoch
//! and assignment, and leaves (−1; −2 for a static member that will be
//! back). The coordinator computes the assignment; the answer waits until
//! the records of what changed are acknowledged in `__consumer_offsets`.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;
use rill_group::{ConsumerHeartbeat, TopicId, TopicInfo, TopicsImage};

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;
use crate::groups::{ConsumerRefusal, acknowledged};

/// The first version whose members choose their own id (KIP-1082).
const MEMBER_ID_REQUIRED_VERSION: i16 = 1;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let heartbeat: ConsumerGroupHeartbeatRequest = match request.decode() {
        Ok(heartbeat) => heartbeat,
        Err(error) => return ready(Err(error)),
    };
    let refuse = |error: ResponseError, message: Option<String>| {
        let response = ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error.code())
            .with_error_message(message.map(StrBytes::from_string));
        ready(encode(ApiKey::ConsumerGroupHeartbeat, version, &response))
    };
    let group = heartbeat.group_id.to_string();
    let access = Access::new(broker, &request.session);
    if let Err(error) = access.group(AclOperation::Read, &group) {
        return refuse(error, None);
    }
    // Kafka checks DESCRIBE on the topics subscribed by name.
    let refused = heartbeat
        .subscribed_topic_names
        .iter()
        .flatten()
        .find(|t| !access.allows(AclOperation::Describe, ResourceType::Topic, t.as_str()));
    if let Some(topic) = refused {
        return refuse(
            ResponseError::TopicAuthorizationFailed,
            Some(format!(
                "not authorized to describe topic {}",
                topic.as_str()
            )),
        );
    }
    let groups = match broker.groups_for(&group) {
        Ok(groups) => groups,
        Err(error) => return refuse(error, None),
    };
    let topics = topics_image(broker);
    let plain = ConsumerHeartbeat {
        group_id: group.clone(),
        member_id: heartbeat.member_id.to_string(),
        member_epoch: heartbeat.member_epoch,
        instance_id: heartbeat.instance_id.map(|i| i.to_string()),
        rack_id: heartbeat.rack_id.map(|r| r.to_string()),
        rebalance_timeout_ms: heartbeat.rebalance_timeout_ms,
        subscribed_topic_names: heartbeat
            .subscribed_topic_names
            .map(|names| names.iter().map(|n| n.to_string()).collect()),
        subscribed_topic_regex: heartbeat.subscribed_topic_regex.map(|r| r.to_string()),
        server_assignor: heartbeat.server_assignor.map(|a| a.to_string()),
        owned: heartbeat.topic_partitions.map(|owned| {
            let mut assignment = rill_group::Assignment::new();
            for topic in owned {
                let partitions: BTreeSet<i32> = topic.partitions.into_iter().collect();
                if !partitions.is_empty() {
                    assignment
                        .entry(TopicId(topic.topic_id.into_bytes()))
                        .or_default()
                        .extend(partitions);
                }
            }
            assignment
        }),
        client_id: request.client_id(),
        client_host: request.session.client_host.to_string(),
        classic: None,
    };
    let (session_timeout_ms, interval_ms) = crate::group_config::consumer_timeouts(broker, &group);
    let result = groups.consumer_heartbeat(
        &plain,
        &topics,
        session_timeout_ms,
        version >= MEMBER_ID_REQUIRED_VERSION,
    );
    let (reply, persisted) = match result {
        Ok(answer) => answer,
        Err(ConsumerRefusal::Group(error)) => {
            return refuse(
                error_code::for_consumer_group(&error),
                Some(error.to_string()),
            );
        }
        Err(ConsumerRefusal::Persist(message)) => {
            tracing::warn!(%group, %message, "cannot persist a consumer group heartbeat");
            return refuse(ResponseError::CoordinatorNotAvailable, None);
        }
    };
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let response = if acknowledged(broker.groups().deps(), persisted).await {
            let assignment = reply.assignment.map(|assigned| {
                Assignment::default().with_topic_partitions(
                    assigned
                        .into_iter()
                        .map(|(topic, partitions)| {
                            TopicPartitions::default()
                                .with_topic_id(uuid::Uuid::from_bytes(topic.0))
                                .with_partitions(partitions.into_iter().collect())
                        })
                        .collect(),
                )
            });
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(StrBytes::from_string(reply.member_id)))
                .with_member_epoch(reply.member_epoch)
                .with_heartbeat_interval_ms(interval_ms)
                .with_assignment(assignment)
        } else {
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
        };
        encode(ApiKey::ConsumerGroupHeartbeat, version, &response).map(Some)
    })
}

/// The topics as consumer groups see them: every topic of the metadata
/// this broker has applied, with its id and partition count.
pub(crate) fn topics_image(broker: &Broker) -> TopicsImage {
    let metadata = broker.node().metadata();
    TopicsImage::new(metadata.topics.values().map(|topic| TopicInfo {
        id: TopicId(topic.id.into_bytes()),
        name: topic.name.clone(),
        partitions: i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX),
    }))
}
