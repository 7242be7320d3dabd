//! AlterShareGroupOffsets (KIP-932): sets where an empty share group's
//! share-partitions start, with nothing in flight (NON_EMPTY_GROUP while
//! it has members), at its coordinator. See `shares/admin.rs`.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition as Partition,
    AlterShareGroupOffsetsResponseTopic as Topic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, ApiKey, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::shares::NewStart;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let alter: AlterShareGroupOffsetsRequest = match request.decode() {
        Ok(alter) => alter,
        Err(error) => return ready(Err(error)),
    };
    let refuse = |error: ResponseError, message: String| {
        let response = AlterShareGroupOffsetsResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(message)));
        ready(encode(ApiKey::AlterShareGroupOffsets, version, &response))
    };
    let group = alter.group_id.to_string();
    let access = Access::new(broker, &request.session);
    if let Err((error, message)) = access
        .group(AclOperation::Read, &group)
        .map_err(|e| (e, group.clone()))
        .and_then(|()| broker.shares().may_reset(broker, &group))
    {
        return refuse(error, message);
    }
    let mut changes: Vec<NewStart> = Vec::new();
    let mut topics = Vec::new();
    for topic in &alter.topics {
        let name = topic.topic_name.to_string();
        let readable = access.allows(AclOperation::Read, ResourceType::Topic, &name);
        let found = broker.topics().topic(&name);
        let count = found
            .as_ref()
            .map_or(0, |t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX));
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let error = if !readable {
                    Some(ResponseError::TopicAuthorizationFailed)
                } else if found.is_none() || !(0..count).contains(&p.partition_index) {
                    Some(ResponseError::UnknownTopicOrPartition)
                } else if p.start_offset < 0 {
                    Some(ResponseError::InvalidRequest)
                } else {
                    None
                };
                if let (None, Some(found)) = (error, &found) {
                    changes.push((found.id, p.partition_index, Some(p.start_offset)));
                }
                Partition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error.map_or(0, |e| e.code()))
            })
            .collect();
        topics.push(
            Topic::default()
                .with_topic_name(TopicName(StrBytes::from_string(name)))
                .with_topic_id(found.as_ref().map(|t| t.id).unwrap_or_default())
                .with_partitions(partitions),
        );
    }
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut response = AlterShareGroupOffsetsResponse::default().with_responses(topics);
        if !changes.is_empty()
            && let Err(error) = broker
                .shares()
                .reset(&broker, &group, &changes, (Vec::new(), false))
                .await
        {
            // Nothing is reported altered that may not have been.
            response = response
                .with_error_code(error.code().code())
                .with_error_message(Some(StrBytes::from_string(error.to_string())));
        }
        encode(ApiKey::AlterShareGroupOffsets, version, &response).map(Some)
    })
}
