//! ShareGroupHeartbeat (KIP-932): a share consumer joins (epoch 0), keeps
//! its session, learns its partitions, and leaves (epoch −1). Answered by
//! the group's coordinator; topics are named by id in the assignment.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ApiKey, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use rill_share::{Heartbeat, HeartbeatError};

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::coordinators::CoordinatorKind;

pub(crate) fn answer(broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let heartbeat: ShareGroupHeartbeatRequest = request.decode()?;
    let group = heartbeat.group_id.to_string();
    let access = Access::new(broker, &request.session);
    let response = match reply(broker, &access, &group, heartbeat, request) {
        Ok(response) => response,
        Err((error, message)) => ShareGroupHeartbeatResponse::default()
            .with_error_code(error.code())
            .with_error_message(message.map(StrBytes::from_string)),
    };
    encode(ApiKey::ShareGroupHeartbeat, version, &response)
}

type Refusal = (ResponseError, Option<String>);

fn reply(
    broker: &Arc<Broker>,
    access: &Access<'_>,
    group: &str,
    heartbeat: ShareGroupHeartbeatRequest,
    request: &Request,
) -> Result<ShareGroupHeartbeatResponse, Refusal> {
    access
        .group(AclOperation::Read, group)
        .map_err(|e| (e, None))?;
    let subscribed: Option<Vec<String>> = heartbeat
        .subscribed_topic_names
        .map(|names| names.iter().map(|n| n.to_string()).collect());
    if let Some(topics) = &subscribed {
        // Kafka checks DESCRIBE on the subscribed topics.
        let refused = topics
            .iter()
            .find(|t| !access.allows(AclOperation::Describe, ResourceType::Topic, t));
        if let Some(topic) = refused {
            return Err((
                ResponseError::TopicAuthorizationFailed,
                Some(format!("not authorized to describe topic {topic}")),
            ));
        }
    }
    broker.groups_for(group).map_err(|e| (e, None))?;
    // The share-partitions' state needs its topic: asked for now, so that
    // it is there by the members' first fetches.
    if !broker.topics().has_topic(rill_share::SHARE_STATE_TOPIC) {
        // COORDINATOR_NOT_AVAILABLE until it is made: nothing to do here.
        let _ = broker.coordinator(CoordinatorKind::Share, group);
    }
    let plain = Heartbeat {
        member_id: heartbeat.member_id.to_string(),
        member_epoch: heartbeat.member_epoch,
        rack_id: heartbeat.rack_id.map(|r| r.to_string()),
        subscribed_topic_names: subscribed,
        client_id: request.client_id(),
        client_host: request.session.client_host.to_string(),
    };
    let reply = broker
        .shares()
        .heartbeat(broker, group, plain)
        .map_err(|error| {
            let code = match &error {
                HeartbeatError::InvalidRequest { .. } => ResponseError::InvalidRequest,
                HeartbeatError::UnknownMember { .. } => ResponseError::UnknownMemberId,
                HeartbeatError::FencedMemberEpoch { .. } => ResponseError::FencedMemberEpoch,
                HeartbeatError::GroupMaxSizeReached { .. } => ResponseError::GroupMaxSizeReached,
                _ => ResponseError::UnknownServerError,
            };
            (code, Some(error.to_string()))
        })?;
    let assignment = reply.assignment.map(|assigned| {
        let metadata = broker.node().metadata();
        let topic_partitions = assigned
            .into_iter()
            .filter_map(|(topic, partitions)| {
                let id = metadata.topics.get(topic.as_str())?.id;
                Some(
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(partitions.into_iter().collect()),
                )
            })
            .collect();
        Assignment::default().with_topic_partitions(topic_partitions)
    });
    let interval_ms = crate::shares::heartbeat_interval_ms(broker, group);
    Ok(ShareGroupHeartbeatResponse::default()
        .with_member_id(Some(heartbeat.member_id))
        .with_member_epoch(reply.member_epoch)
        .with_heartbeat_interval_ms(i32::try_from(interval_ms).unwrap_or(i32::MAX))
        .with_assignment(assignment))
}
