//! ShareAcknowledge (KIP-932): a share consumer acknowledges records it
//! fetched — accept, release, reject — without fetching more, carrying
//! its share session on (or closing it at epoch −1, releasing whatever
//! it still holds).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch, PartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use kafka_protocol::protocol::StrBytes;
use rill_share::AckBatch;
use uuid::Uuid;

use super::share_fetch::{session_refusal, split};
use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::shares::ShareKey;

/// A partition's acknowledgements applied in memory, or why not.
type Applied = Result<(), (ResponseError, String)>;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let ack: ShareAcknowledgeRequest = match request.decode() {
        Ok(ack) => ack,
        Err(error) => return ready(Err(error)),
    };
    let refuse = |error: ResponseError, message: &str| {
        let response = ShareAcknowledgeResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(message.to_string())));
        ready(encode(ApiKey::ShareAcknowledge, version, &response))
    };
    let group = ack
        .group_id
        .as_ref()
        .map(|g| g.to_string())
        .unwrap_or_default();
    let member = ack
        .member_id
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    if group.is_empty() || member.is_empty() {
        return refuse(
            ResponseError::InvalidRequest,
            "group id and member id are needed",
        );
    }
    let access = Access::new(broker, &request.session);
    if access.group(AclOperation::Read, &group).is_err() {
        return refuse(ResponseError::GroupAuthorizationFailed, &group);
    }
    let shares = broker.shares();
    let session = match shares.sessions().update(
        (&group, &member, request.session.connection_id),
        ack.share_session_epoch,
        false,
        (&[], &[]),
    ) {
        Ok(session) => session,
        Err(error) => {
            let (code, message) = session_refusal(&error);
            return refuse(code, message);
        }
    };
    // Applied in memory now, in request order; answered once durable.
    let mut results: Vec<(ShareKey, Applied)> = Vec::new();
    for topic in &ack.topics {
        let name = broker.topics().name_by_id(topic.topic_id);
        for partition in &topic.partitions {
            let batches: Vec<AckBatch> = partition
                .acknowledgement_batches
                .iter()
                .map(|b| AckBatch {
                    first_offset: b.first_offset,
                    last_offset: b.last_offset,
                    types: b.acknowledge_types.clone(),
                })
                .collect();
            let key = ShareKey::of(&group, (topic.topic_id, partition.partition_index));
            let result = match &name {
                None => Err((ResponseError::UnknownTopicId, topic.topic_id.to_string())),
                Some(name) if !access.allows(AclOperation::Read, ResourceType::Topic, name) => {
                    Err((ResponseError::TopicAuthorizationFailed, name.clone()))
                }
                Some(name) => shares
                    .acknowledge(broker, (&key, name), &member, &batches)
                    .map(drop),
            };
            results.push((key, result));
        }
    }
    let closing: Vec<ShareKey> = if session.closing {
        session
            .partitions
            .iter()
            .map(|&tp| ShareKey::of(&group, tp))
            .collect()
    } else {
        Vec::new()
    };
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut by_topic: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
        for (key, mut result) in results {
            if result.is_ok()
                && let Err(error) = broker.shares().persist(&broker, &key).await
            {
                result = Err((error.code(), error.to_string()));
            }
            let (code, message) = split(result.err());
            by_topic.entry(key.topic_id).or_default().push(
                PartitionData::default()
                    .with_partition_index(key.partition)
                    .with_error_code(code)
                    .with_error_message(message)
                    .with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(-1)
                            .with_leader_epoch(-1),
                    ),
            );
        }
        if !closing.is_empty() {
            broker.shares().release_session(&broker, &member, &closing);
        }
        let responses = by_topic
            .into_iter()
            .map(|(topic_id, partitions)| {
                ShareAcknowledgeTopicResponse::default()
                    .with_topic_id(topic_id)
                    .with_partitions(partitions)
            })
            .collect();
        encode(
            ApiKey::ShareAcknowledge,
            version,
            &ShareAcknowledgeResponse::default().with_responses(responses),
        )
        .map(Some)
    })
}
