//! TxnOffsetCommit: a transactional producer commits a group's offsets as
//! part of its transaction (`sendOffsetsToTransaction`). The member and
//! generation are checked as KIP-447 says, then (KIP-890 part 1, as
//! Kafka 3.6+) that the group's offsets partition is in the producer's
//! ongoing transaction at its current epoch, the offsets appended to
//! `__consumer_offsets` in a transactional batch of the producer's, and
//! the answer sent once that append is acknowledged; the offsets become
//! visible only when the transaction's commit marker reaches the
//! partition (an abort drops them).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use rill_group::{OffsetStoreError, OffsetToCommit};
use rill_partition::TopicPartition;

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::coordinators::CoordinatorKind;
use crate::error_code;
use crate::groups::{CommitOutcome, OFFSETS_TOPIC, OffsetCommit, TxnOffsetCommit, acknowledged};
use crate::transactions::verification;

/// Per topic in request order, its partitions and the error each was
/// refused with up front, if any.
type Layout = Vec<(TopicName, Vec<(i32, Option<ResponseError>)>)>;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let commit: TxnOffsetCommitRequest = match request.decode() {
        Ok(commit) => commit,
        Err(error) => return ready(Err(error)),
    };
    let access = Access::new(broker, &request.session);
    let mut layout: Layout = Vec::new();
    let mut offsets = Vec::new();
    for topic in &commit.topics {
        let readable = access.allows(AclOperation::Read, ResourceType::Topic, &topic.name);
        let mut partitions = Vec::new();
        for p in &topic.partitions {
            let refused = if !readable {
                Some(ResponseError::TopicAuthorizationFailed)
            } else if !broker
                .topics()
                .has_partition(topic.name.as_str(), p.partition_index)
            {
                Some(ResponseError::UnknownTopicOrPartition)
            } else {
                offsets.push(OffsetToCommit {
                    topic: topic.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: (version >= 2 && p.committed_leader_epoch >= 0)
                        .then_some(p.committed_leader_epoch),
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    expire_timestamp_ms: None,
                });
                None
            };
            partitions.push((p.partition_index, refused));
        }
        layout.push((topic.name.clone(), partitions));
    }
    let refused_all = if !access.allows(
        AclOperation::Write,
        ResourceType::TransactionalId,
        &commit.transactional_id,
    ) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else {
        access.group(AclOperation::Read, &commit.group_id).err()
    };
    let groups = match refused_all.map_or_else(|| broker.groups_for(&commit.group_id), Err) {
        Ok(groups) => groups,
        Err(error) => {
            // Every partition, even one refused up front, answers this.
            let answer = response(layout, |_| Some(error), true);
            return ready(encode(ApiKey::TxnOffsetCommit, version, &answer));
        }
    };
    let ask_coordinator = match verify_transaction(broker, &commit) {
        Ok(ask) => ask,
        Err(error) => {
            let answer = response(layout, |_| Some(for_offset_commit(error, version)), false);
            return ready(encode(ApiKey::TxnOffsetCommit, version, &answer));
        }
    };
    let broker = Arc::clone(broker);
    Box::pin(async move {
        if let Some(offsets_partition) = ask_coordinator {
            let producer = (commit.producer_id.0, commit.producer_epoch);
            let transactional_id = commit.transactional_id.to_string();
            let answer = verification::ask_coordinator(
                &broker,
                &transactional_id,
                producer,
                &[offsets_partition],
            )
            .await;
            if let Some(Err(error)) = answer.into_iter().next() {
                tracing::debug!(?error, "a transactional offset commit failed verification");
                let answer = response(layout, |_| Some(for_offset_commit(error, version)), false);
                return encode(ApiKey::TxnOffsetCommit, version, &answer).map(Some);
            }
        }
        commit_offsets(&broker, (commit, version), groups, layout, offsets).await
    })
}

/// Commits the offsets of a verified TxnOffsetCommit and answers once
/// the append is acknowledged.
async fn commit_offsets(
    broker: &Arc<Broker>,
    (commit, version): (TxnOffsetCommitRequest, i16),
    groups: Arc<crate::groups::Groups>,
    layout: Layout,
    offsets: Vec<OffsetToCommit>,
) -> Result<Option<super::Body>, super::HandlerError> {
    let group = commit.group_id.to_string();
    let member_id = commit.member_id.to_string();
    let instance_id = commit.group_instance_id.as_ref().map(|id| id.to_string());
    let producer_id = commit.producer_id.0;
    let outcome = groups.commit_transactional_offsets(&TxnOffsetCommit {
        commit: OffsetCommit {
            group: &group,
            member_id: &member_id,
            // Before v3 there is no member: the checks are skipped.
            generation_id: if version >= 3 {
                commit.generation_id
            } else {
                -1
            },
            group_instance_id: instance_id.as_deref(),
            offsets: &offsets,
        },
        producer_id,
        producer_epoch: commit.producer_epoch,
    });
    {
        let answer = match outcome {
            CommitOutcome::Refused(error) => {
                let code = error_code::for_group(&error);
                response(layout, |_| Some(code), false)
            }
            CommitOutcome::RefusedByConsumerGroup(error) => {
                let code = error_code::for_consumer_group(&error);
                response(layout, |_| Some(code), false)
            }
            CommitOutcome::Failed { message, error } => {
                tracing::debug!(%group, %message, "cannot append transactional offsets");
                let code = match error {
                    // A fenced producer hears so; anything else is retried.
                    ResponseError::InvalidProducerEpoch | ResponseError::ProducerFenced => error,
                    _ => ResponseError::CoordinatorNotAvailable,
                };
                response(layout, |_| Some(code), false)
            }
            CommitOutcome::Appended {
                per_partition,
                records,
                persisted,
            } => {
                let position = persisted.as_ref().map(|p| p.end());
                let acked = acknowledged(broker.groups().deps(), persisted).await;
                groups.finish_transactional_commit(
                    producer_id,
                    &records,
                    if acked { position } else { None },
                );
                let mut refused = per_partition.into_iter();
                response(
                    layout,
                    |_| {
                        if !acked {
                            return Some(ResponseError::CoordinatorNotAvailable);
                        }
                        match refused.next().flatten() {
                            Some(OffsetStoreError::OffsetMetadataTooLarge { .. }) => {
                                Some(ResponseError::OffsetMetadataTooLarge)
                            }
                            _ => None,
                        }
                    },
                    false,
                )
            }
        };
        encode(ApiKey::TxnOffsetCommit, version, &answer).map(Some)
    }
}

/// KIP-890 part 1's verification, as Kafka's TxnOffsetCommit makes it:
/// the group's `__consumer_offsets` partition must be in the producer's
/// ongoing transaction (added by AddOffsetsToTxn) at the producer's
/// current epoch; else the append would open a transaction in that
/// partition that no marker ever ends (the last stable offset would hang)
/// or write for a fenced producer. Asked here where this broker
/// coordinates the transactional id; else returns the partition to ask
/// the coordinator about (see `transactions/verification.rs`).
fn verify_transaction(
    broker: &Broker,
    commit: &TxnOffsetCommitRequest,
) -> Result<Option<TopicPartition>, ResponseError> {
    let Some(count) = broker.topics().partition_count(OFFSETS_TOPIC) else {
        return Ok(None); // No offsets topic yet: the group lookup answers.
    };
    let partition = CoordinatorKind::Group.partition_for(&commit.group_id, count);
    let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
    let producer = (commit.producer_id.0, commit.producer_epoch);
    match verification::verify_here(broker, &commit.transactional_id, producer, &tp) {
        Ok(()) => Ok(None),
        Err(ResponseError::NotCoordinator) => Ok(Some(tp)),
        Err(error) => {
            tracing::debug!(?error, "a transactional offset commit failed verification");
            Err(error)
        }
    }
}

/// The error a TxnOffsetCommit of `version` gets for a failed
/// verification, as Kafka answers it: a fenced producer hears
/// INVALID_PRODUCER_EPOCH; a coordinator that could not be asked
/// COORDINATOR_NOT_AVAILABLE (retried); the partition missing from the
/// transaction TRANSACTION_ABORTABLE from v4, INVALID_TXN_STATE before.
fn for_offset_commit(error: ResponseError, version: i16) -> ResponseError {
    verification::passed_on(error, ResponseError::CoordinatorNotAvailable, version >= 4)
}

/// The response: partitions refused up front keep their error (unless
/// `override_all`); the others take what `decide` says, in request order.
fn response(
    layout: Layout,
    mut decide: impl FnMut(bool) -> Option<ResponseError>,
    override_all: bool,
) -> TxnOffsetCommitResponse {
    let topics = layout
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, refused)| {
                    let error = match refused {
                        Some(error) if !override_all => Some(error),
                        _ => decide(true),
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
