//! DeleteShareGroupOffsets (KIP-932): an empty share group forgets its
//! state for whole topics (NON_EMPTY_GROUP while it has members); their
//! share-partitions start again where `share.auto.offset.reset` says. At
//! the group's coordinator; see `shares/admin.rs`.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic as Topic;
use kafka_protocol::messages::{
    ApiKey, DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::shares::NewStart;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let delete: DeleteShareGroupOffsetsRequest = match request.decode() {
        Ok(delete) => delete,
        Err(error) => return ready(Err(error)),
    };
    let refuse = |error: ResponseError, message: String| {
        let response = DeleteShareGroupOffsetsResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(message)));
        ready(encode(ApiKey::DeleteShareGroupOffsets, version, &response))
    };
    let group = delete.group_id.to_string();
    let access = Access::new(broker, &request.session);
    if let Err((error, message)) = access
        .group(AclOperation::Delete, &group)
        .map_err(|e| (e, group.clone()))
        .and_then(|()| broker.shares().may_reset(broker, &group))
    {
        return refuse(error, message);
    }
    let with_state = broker.shares().state_topics(broker, &group);
    let mut changes: Vec<NewStart> = Vec::new();
    let mut removed: Vec<Uuid> = Vec::new();
    let topics: Vec<Topic> = delete
        .topics
        .iter()
        .map(|topic| {
            let name = topic.topic_name.to_string();
            let readable = access.allows(AclOperation::Read, ResourceType::Topic, &name);
            let held = with_state.iter().find(|(n, _, _)| *n == name);
            let error = match held {
                _ if !readable => Some(ResponseError::TopicAuthorizationFailed),
                None => Some(ResponseError::UnknownTopicOrPartition),
                Some((_, id, count)) => {
                    changes.extend((0..*count).map(|p| (*id, p, None)));
                    removed.push(*id);
                    None
                }
            };
            Topic::default()
                .with_topic_name(TopicName(StrBytes::from_string(name)))
                .with_topic_id(held.map(|(_, id, _)| *id).unwrap_or_default())
                .with_error_code(error.map_or(0, |e| e.code()))
        })
        .collect();
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut response = DeleteShareGroupOffsetsResponse::default().with_responses(topics);
        if !removed.is_empty()
            && let Err(error) = broker
                .shares()
                .reset(&broker, &group, &changes, (removed, false))
                .await
        {
            response = response
                .with_error_code(error.code().code())
                .with_error_message(Some(StrBytes::from_string(error.to_string())));
        }
        encode(ApiKey::DeleteShareGroupOffsets, version, &response).map(Some)
    })
}
