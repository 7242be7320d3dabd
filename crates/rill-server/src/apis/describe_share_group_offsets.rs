//! DescribeShareGroupOffsets (KIP-932): each share-partition's start offset
//! (−1 where the group has no state), from the group's coordinator; with
//! no topics named, every topic the group has state for. Rill adds each
//! share-partition's record states in a tagged field
//! (`rill_share::SUMMARY_TAG`), which `rill group describe` shows.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as Group,
    DescribeShareGroupOffsetsResponsePartition as Partition,
    DescribeShareGroupOffsetsResponseTopic as Topic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;

/// What one group asks: its topics (`None`: all with state), each
/// authorized or not.
struct Asked {
    group: kafka_protocol::messages::GroupId,
    refused: Option<ResponseError>,
    topics: Option<Vec<(String, Vec<i32>, bool)>>,
}

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let describe: DescribeShareGroupOffsetsRequest = match request.decode() {
        Ok(describe) => describe,
        Err(error) => return ready(Err(error)),
    };
    let access = Access::new(broker, &request.session);
    let may_describe =
        |topic: &str| access.allows(AclOperation::Describe, ResourceType::Topic, topic);
    let asked: Vec<Asked> = describe
        .groups
        .into_iter()
        .map(|g| {
            let id = g.group_id.to_string();
            let refused = access
                .group(AclOperation::Describe, &id)
                .and_then(|()| broker.groups_for(&id).map(drop))
                .err();
            let topics = g.topics.map(|topics| {
                topics
                    .into_iter()
                    .map(|t| {
                        let allowed = may_describe(&t.topic_name);
                        (t.topic_name.to_string(), t.partitions, allowed)
                    })
                    .collect()
            });
            Asked {
                group: g.group_id,
                refused,
                topics,
            }
        })
        .collect();
    // With no topics named, the topics the principal may describe.
    let all_topics: Vec<Vec<(String, Vec<i32>, bool)>> = asked
        .iter()
        .map(|a| {
            broker
                .shares()
                .state_topics(broker, &a.group)
                .into_iter()
                .filter(|(name, _, _)| may_describe(name))
                .map(|(name, _, count)| (name, (0..count).collect(), true))
                .collect()
        })
        .collect();
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut groups = Vec::new();
        for (asked, all) in asked.into_iter().zip(all_topics) {
            groups.push(describe_group(&broker, asked, all).await);
        }
        let response = DescribeShareGroupOffsetsResponse::default().with_groups(groups);
        encode(ApiKey::DescribeShareGroupOffsets, version, &response).map(Some)
    })
}

async fn describe_group(
    broker: &Arc<Broker>,
    asked: Asked,
    all: Vec<(String, Vec<i32>, bool)>,
) -> Group {
    let answer = Group::default().with_group_id(asked.group.clone());
    let group = asked.group.to_string();
    if let Some(error) = asked.refused {
        return answer.with_error_code(error.code());
    }
    let shares = broker.shares();
    let named = asked.topics.is_some();
    if !named && !shares.knows_group(broker, &group) {
        return answer
            .with_error_code(ResponseError::GroupIdNotFound.code())
            .with_error_message(Some(StrBytes::from_string(format!(
                "share group {group} not found"
            ))));
    }
    let mut topics = Vec::new();
    for (name, partitions, allowed) in asked.topics.unwrap_or(all) {
        let found = broker.topics().topic(&name);
        let topic_id = found.as_ref().map(|t| t.id);
        let count = found.map_or(0, |t| t.partitions.len());
        let mut described = Vec::new();
        for index in partitions {
            let partition = Partition::default()
                .with_partition_index(index)
                .with_start_offset(-1)
                .with_leader_epoch(-1);
            // A partition the topic does not have is never looked up.
            let exists = usize::try_from(index).is_ok_and(|i| i < count);
            let (Some(topic_id), true, true) = (topic_id, allowed, exists) else {
                let error = if allowed {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::TopicAuthorizationFailed
                };
                described.push(partition.with_error_code(error.code()));
                continue;
            };
            described.push(
                match shares
                    .describe_partition(broker, &group, (topic_id, index))
                    .await
                {
                    Ok(view) => {
                        let mut tags = std::collections::BTreeMap::new();
                        tags.insert(rill_share::SUMMARY_TAG, Bytes::from(view.summary.encode()));
                        partition
                            .with_start_offset(view.start_offset)
                            .with_leader_epoch(view.leader_epoch)
                            .with_unknown_tagged_fields(tags)
                    }
                    Err(error) => partition
                        .with_error_code(error.code().code())
                        .with_error_message(Some(StrBytes::from_string(error.to_string()))),
                },
            );
        }
        topics.push(
            Topic::default()
                .with_topic_name(TopicName(StrBytes::from_string(name)))
                .with_topic_id(topic_id.unwrap_or_default())
                .with_partitions(described),
        );
    }
    answer.with_topics(topics)
}
