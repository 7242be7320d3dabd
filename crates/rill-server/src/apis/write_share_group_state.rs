//! WriteShareGroupState (KIP-932, between brokers): a share-partition's
//! leader sends the coordinator of its state — this broker — a snapshot,
//! answered once it is replicated in `__share_group_state`. A snapshot
//! from an older leader epoch than the stored one is FENCED_STATE_EPOCH.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::write_share_group_state_response::{
    PartitionResult, WriteStateResult,
};
use kafka_protocol::messages::{ApiKey, WriteShareGroupStateRequest, WriteShareGroupStateResponse};
use kafka_protocol::protocol::StrBytes;
use rill_share::{ShareSnapshot, ShareStateKey};

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::shares::{from_wire, producer_from_tags};

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let write: WriteShareGroupStateRequest = match request.decode() {
        Ok(write) => write,
        Err(error) => return ready(Err(error)),
    };
    let allowed = Access::new(broker, &request.session).allows_cluster(AclOperation::ClusterAction);
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut results = Vec::with_capacity(write.topics.len());
        for topic in write.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for data in topic.partitions {
                let answer = PartitionResult::default().with_partition(data.partition);
                if !allowed {
                    partitions.push(
                        answer.with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
                    );
                    continue;
                }
                let batches: Option<Vec<_>> = data
                    .state_batches
                    .iter()
                    .map(|b| {
                        from_wire(
                            (b.first_offset, b.last_offset),
                            (b.delivery_state, b.delivery_count),
                            &b.unknown_tagged_fields,
                        )
                    })
                    .collect();
                let Some(batches) = batches else {
                    partitions.push(
                        answer
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(StrBytes::from_static_str(
                                "a state batch has an unknown delivery state or ends before it starts",
                            ))),
                    );
                    continue;
                };
                let key = ShareStateKey {
                    group: write.group_id.to_string(),
                    topic_id: *topic.topic_id.as_bytes(),
                    partition: data.partition,
                };
                let now = rill_storage::now_ms();
                let snapshot = ShareSnapshot {
                    snapshot_epoch: 0,
                    state_epoch: data.state_epoch,
                    leader_epoch: data.leader_epoch,
                    start_offset: data.start_offset,
                    create_timestamp_ms: now,
                    write_timestamp_ms: now,
                    batches,
                    dead_letter_producer: producer_from_tags(&data.unknown_tagged_fields),
                };
                partitions.push(
                    match broker
                        .shares()
                        .states()
                        .write_here(&broker, &key, snapshot)
                        .await
                    {
                        Ok(()) => answer,
                        Err(error) => answer
                            .with_error_code(error.code().code())
                            .with_error_message(Some(StrBytes::from_string(error.to_string()))),
                    },
                );
            }
            results.push(
                WriteStateResult::default()
                    .with_topic_id(topic.topic_id)
                    .with_partitions(partitions),
            );
        }
        let response = WriteShareGroupStateResponse::default().with_results(results);
        encode(ApiKey::WriteShareGroupState, version, &response).map(Some)
    })
}
