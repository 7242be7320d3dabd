//! OffsetDelete: removes a group's committed offsets for some partitions;
//! partitions of topics the group's members are subscribed to are refused
//! with GROUP_SUBSCRIBED_TO_TOPIC, as in Kafka.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Buf;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolSubscription, OffsetDeleteRequest, OffsetDeleteResponse,
};
use kafka_protocol::protocol::Decodable;
use rill_group::GroupState;

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;
use crate::groups::acknowledged;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let delete: OffsetDeleteRequest = match request.decode() {
        Ok(delete) => delete,
        Err(error) => return ready(Err(error)),
    };
    let access = Access::new(broker, &request.session);
    // Topics the principal may not READ keep their offsets.
    let unreadable: BTreeSet<String> = delete
        .topics
        .iter()
        .filter(|t| !access.allows(AclOperation::Read, ResourceType::Topic, &t.name))
        .map(|t| t.name.to_string())
        .collect();
    let groups = match access
        .group(AclOperation::Delete, &delete.group_id)
        .and_then(|()| broker.groups_for(delete.group_id.as_str()))
    {
        Ok(groups) => groups,
        Err(error) => {
            let response = OffsetDeleteResponse::default().with_error_code(error.code());
            return ready(encode(ApiKey::OffsetDelete, version, &response));
        }
    };
    let group = delete.group_id.to_string();
    let described = groups.with_coordinator(|c, _, _| c.describe_group(&group));
    let subscribed = match &described {
        Err(error) => {
            let response = OffsetDeleteResponse::default()
                .with_error_code(error_code::for_group(error).code());
            return ready(encode(ApiKey::OffsetDelete, version, &response));
        }
        Ok(d) if d.state == GroupState::Dead => {
            let response = OffsetDeleteResponse::default()
                .with_error_code(ResponseError::GroupIdNotFound.code());
            return ready(encode(ApiKey::OffsetDelete, version, &response));
        }
        Ok(d) if d.state != GroupState::Empty && d.protocol_type == "consumer" => d
            .members
            .iter()
            .flat_map(|m| subscribed_topics(&m.metadata))
            .collect(),
        Ok(_) => BTreeSet::new(),
    };
    let deletable: Vec<(String, i32)> = delete
        .topics
        .iter()
        .filter(|t| !subscribed.contains(t.name.as_str()) && !unreadable.contains(t.name.as_str()))
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let pairs: Vec<(&str, i32)> = deletable.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    let records = groups.with_coordinator(|_, offsets, _| offsets.delete_offsets(&group, &pairs));
    let persisted = groups.persist(&group, &records);
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let position = persisted
            .as_ref()
            .ok()
            .and_then(|p| p.as_ref().map(|p| p.end()));
        let acked = match persisted {
            Ok(persisted) => acknowledged(broker.groups().deps(), persisted).await,
            Err(_) => false,
        };
        groups.finish_commit(records, acked, position);
        let topics = delete
            .topics
            .into_iter()
            .map(|t| {
                let refused = subscribed.contains(t.name.as_str());
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let error = if unreadable.contains(t.name.as_str()) {
                            Some(ResponseError::TopicAuthorizationFailed)
                        } else if refused {
                            Some(ResponseError::GroupSubscribedToTopic)
                        } else if !acked {
                            Some(ResponseError::CoordinatorNotAvailable)
                        } else {
                            None
                        };
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(error.map_or(0, |e| e.code()))
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        encode(
            ApiKey::OffsetDelete,
            version,
            &OffsetDeleteResponse::default().with_topics(topics),
        )
        .map(Some)
    })
}

/// The topics in a consumer's subscription metadata (Kafka's
/// ConsumerProtocolSubscription: a version, then the body); none if it
/// cannot be read.
fn subscribed_topics(metadata: &bytes::Bytes) -> Vec<String> {
    let mut buf = metadata.clone();
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16().clamp(0, 3);
    ConsumerProtocolSubscription::decode(&mut buf, version)
        .map(|s| s.topics.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}
