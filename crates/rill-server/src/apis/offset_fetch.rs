//! OffsetFetch: committed offsets of one group (v1-v7) or several (v8+);
//! partitions without one answer offset -1.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rill_group::FetchedOffset;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;

type Wanted = Option<Vec<(String, Vec<i32>)>>;

pub(crate) fn answer(broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let fetch: OffsetFetchRequest = request.decode()?;
    let only_group = if version >= 8 {
        fetch.groups.first().map(|g| g.group_id.to_string())
    } else {
        Some(fetch.group_id.to_string())
    };
    // v8+ may name several groups; each must be coordinated here (clients
    // send one per coordinator).
    let access = Access::new(broker, &request.session);
    let coordinated = |group: &str| {
        access
            .group(AclOperation::Describe, group)
            .and_then(|()| broker.groups_for(group).map(drop))
    };
    // Topics the principal may not DESCRIBE: left out of a request for
    // every topic, TOPIC_AUTHORIZATION_FAILED when named.
    let describable =
        |topic: &str| access.allows(AclOperation::Describe, ResourceType::Topic, topic);
    let refused = |topic: &str| {
        if describable(topic) {
            0
        } else {
            ResponseError::TopicAuthorizationFailed.code()
        }
    };
    let refusal = if version >= 8 {
        fetch
            .groups
            .iter()
            .find_map(|g| coordinated(&g.group_id).err())
    } else {
        only_group.as_deref().and_then(|g| coordinated(g).err())
    };
    let groups = broker.groups().current();
    let (Some(groups), None) = (groups, refusal) else {
        let code = refusal
            .unwrap_or(ResponseError::CoordinatorLoadInProgress)
            .code();
        let response = if version >= 8 {
            OffsetFetchResponse::default().with_groups(
                fetch
                    .groups
                    .into_iter()
                    .map(|g| {
                        OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_error_code(code)
                    })
                    .collect(),
            )
        } else {
            OffsetFetchResponse::default().with_error_code(code)
        };
        return encode(ApiKey::OffsetFetch, version, &response);
    };
    // KIP-447: a consumer that requires stable offsets is told to retry
    // (UNSTABLE_OFFSET_COMMIT) for a partition whose offset a transaction
    // still holds pending.
    let require_stable = version >= 7 && fetch.require_stable;
    let lookup = |group: &str, wanted: &Wanted| -> Vec<Fetched> {
        let pairs: Option<Vec<(&str, i32)>> = wanted.as_ref().map(|topics| {
            topics
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.as_str(), *p)))
                .collect()
        });
        let fetched = groups.with_coordinator(|_, offsets, _| {
            offsets
                .fetch(group, pairs.as_deref())
                .into_iter()
                .map(|f| {
                    let unstable =
                        require_stable && offsets.has_pending(group, &f.topic, f.partition);
                    (f, unstable)
                })
                .collect::<Vec<_>>()
        });
        fetched
            .into_iter()
            .filter(|(f, _)| wanted.is_some() || describable(&f.topic))
            .map(|(f, unstable)| {
                let code = refused(&f.topic);
                if code == 0 && !unstable {
                    return (f, 0);
                }
                let hidden = FetchedOffset {
                    offset: -1,
                    leader_epoch: None,
                    metadata: String::new(),
                    ..f
                };
                if code != 0 {
                    (hidden, code)
                } else {
                    (hidden, ResponseError::UnstableOffsetCommit.code())
                }
            })
            .collect()
    };
    let response = if version >= 8 {
        let results = fetch
            .groups
            .into_iter()
            .map(|g| {
                let wanted: Wanted = g.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                // v9 (KIP-848): a consumer group's member fetches at its epoch.
                let member_id = g.member_id.as_ref().map_or("", |m| m.as_str());
                let stale = groups.with_consumer_groups(|c| {
                    c.validate_offset_fetch(&g.group_id, member_id, g.member_epoch)
                });
                if let Err(error) = stale {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(error_code::for_consumer_group(&error).code());
                }
                let fetched = lookup(&g.group_id, &wanted);
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(
                        by_topic(fetched)
                            .into_iter()
                            .map(|(topic, partitions)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(StrBytes::from_string(topic)))
                                    .with_partitions(
                                        partitions
                                            .into_iter()
                                            .map(|(f, code)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_error_code(code)
                                                    .with_partition_index(f.partition)
                                                    .with_committed_offset(f.offset)
                                                    .with_committed_leader_epoch(
                                                        f.leader_epoch.unwrap_or(-1),
                                                    )
                                                    .with_metadata(Some(StrBytes::from_string(
                                                        f.metadata,
                                                    )))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetFetchResponse::default().with_groups(results)
    } else {
        let group: GroupId = fetch.group_id;
        let wanted: Wanted = fetch.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| (t.name.to_string(), t.partition_indexes))
                .collect()
        });
        let fetched = lookup(&group, &wanted);
        OffsetFetchResponse::default().with_topics(
            by_topic(fetched)
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(f, code)| {
                                    let mut partition = OffsetFetchResponsePartition::default()
                                        .with_error_code(code)
                                        .with_partition_index(f.partition)
                                        .with_committed_offset(f.offset)
                                        .with_metadata(Some(StrBytes::from_string(f.metadata)));
                                    if version >= 5 {
                                        partition = partition.with_committed_leader_epoch(
                                            f.leader_epoch.unwrap_or(-1),
                                        );
                                    }
                                    partition
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    };
    encode(ApiKey::OffsetFetch, version, &response)
}

/// One partition's fetched offset and its error code.
type Fetched = (FetchedOffset, i16);

/// Groups fetched offsets by topic, keeping first-seen order.
fn by_topic(fetched: Vec<Fetched>) -> Vec<(String, Vec<Fetched>)> {
    let mut out: Vec<(String, Vec<Fetched>)> = Vec::new();
    for (f, code) in fetched {
        match out.iter_mut().find(|(t, _)| *t == f.topic) {
            Some((_, list)) => list.push((f, code)),
            None => out.push((f.topic.clone(), vec![(f, code)])),
        }
    }
    out
}
