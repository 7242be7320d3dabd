//! OffsetCommit: the member and generation are checked, the offsets
//! appended to `__consumer_offsets`, and the answer sent once that append
//! is acknowledged; only then are the offsets visible to OffsetFetch.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse, TopicName};
use rill_group::{GroupError, OffsetStoreError, OffsetToCommit};

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;
use crate::groups::{CommitOutcome, OffsetCommit, acknowledged};

/// Per topic in request order, its partitions and the error each was
/// refused with up front (an unknown partition), if any.
type Layout = Vec<(TopicName, Vec<(i32, Option<ResponseError>)>)>;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let commit: OffsetCommitRequest = match request.decode() {
        Ok(commit) => commit,
        Err(error) => return ready(Err(error)),
    };
    // Partitions of topics that do not exist are refused one by one.
    let mut layout: Layout = Vec::new();
    let mut offsets = Vec::new();
    let access = Access::new(broker, &request.session);
    for topic in &commit.topics {
        let mut partitions = Vec::new();
        let readable = access.allows(AclOperation::Read, ResourceType::Topic, &topic.name);
        for p in &topic.partitions {
            if !readable {
                let refused = ResponseError::TopicAuthorizationFailed;
                partitions.push((p.partition_index, Some(refused)));
                continue;
            }
            let exists = broker
                .topics()
                .has_partition(topic.name.as_str(), p.partition_index);
            if exists {
                offsets.push(OffsetToCommit {
                    topic: topic.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: (version >= 6 && p.committed_leader_epoch >= 0)
                        .then_some(p.committed_leader_epoch),
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    expire_timestamp_ms: None,
                });
                partitions.push((p.partition_index, None));
            } else {
                partitions.push((
                    p.partition_index,
                    Some(ResponseError::UnknownTopicOrPartition),
                ));
            }
        }
        layout.push((topic.name.clone(), partitions));
    }
    let groups = match access
        .group(AclOperation::Read, &commit.group_id)
        .and_then(|()| broker.groups_for(commit.group_id.as_str()))
    {
        Ok(groups) => groups,
        Err(error) => {
            return ready(encode(
                ApiKey::OffsetCommit,
                version,
                &response(layout, |_| Some(error)),
            ));
        }
    };
    let group = commit.group_id.to_string();
    let member_id = commit.member_id.to_string();
    let instance_id = commit.group_instance_id.as_ref().map(|id| id.to_string());
    let outcome = groups.commit_offsets(&OffsetCommit {
        group: &group,
        member_id: &member_id,
        generation_id: commit.generation_id_or_member_epoch,
        group_instance_id: instance_id.as_deref(),
        offsets: &offsets,
    });
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let answer = match outcome {
            CommitOutcome::Refused(error) => {
                let code = match error {
                    // Kafka answers a generation for an unknown group this way before v9.
                    GroupError::GroupIdNotFound { .. } if version < 9 => {
                        ResponseError::IllegalGeneration
                    }
                    other => error_code::for_group(&other),
                };
                response(layout, |_| Some(code))
            }
            CommitOutcome::RefusedByConsumerGroup(error) => {
                let code = error_code::for_consumer_group(&error);
                response(layout, |_| Some(code))
            }
            CommitOutcome::Failed { message, .. } => {
                tracing::error!(%group, %message, "cannot append offsets");
                response(layout, |_| Some(ResponseError::CoordinatorNotAvailable))
            }
            CommitOutcome::Appended {
                per_partition,
                records,
                persisted,
            } => {
                let position = persisted.as_ref().map(|p| p.end());
                let acked = acknowledged(broker.groups().deps(), persisted).await;
                tracing::debug!(%group, acked, ?records, "offset commit");
                // On the coordinator that took the commit: if another has
                // replaced it since (leadership moved), that one loaded
                // the records from the log, or will not have them.
                groups.finish_commit(records, acked, position);
                let mut refused = per_partition.into_iter();
                response(layout, |existing| {
                    if !acked {
                        return Some(ResponseError::CoordinatorNotAvailable);
                    }
                    match (existing, refused.next().flatten()) {
                        (_, Some(OffsetStoreError::OffsetMetadataTooLarge { .. })) => {
                            Some(ResponseError::OffsetMetadataTooLarge)
                        }
                        (_, None) => None,
                    }
                })
            }
        };
        encode(ApiKey::OffsetCommit, version, &answer).map(Some)
    })
}

/// The response: partitions refused up front keep their error; the others
/// take what `decide` says, in request order.
fn response(
    layout: Layout,
    mut decide: impl FnMut(bool) -> Option<ResponseError>,
) -> OffsetCommitResponse {
    let topics = layout
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, refused)| {
                    let error = match refused {
                        Some(error) => Some(error),
                        None => decide(true),
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
