//! ReadShareGroupState (KIP-932, between brokers): a share-partition's
//! leader asks the coordinator of its state — this broker, leading the
//! key's partition of `__share_group_state` — for the last snapshot. A
//! share-partition without one answers start offset −1.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::read_share_group_state_response::{PartitionResult, ReadStateResult};
use kafka_protocol::messages::{ApiKey, ReadShareGroupStateRequest, ReadShareGroupStateResponse};
use kafka_protocol::protocol::StrBytes;
use rill_share::ShareStateKey;

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::shares::{NO_STATE, producer_tags, to_read};

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let read: ReadShareGroupStateRequest = match request.decode() {
        Ok(read) => read,
        Err(error) => return ready(Err(error)),
    };
    let allowed = Access::new(broker, &request.session).allows_cluster(AclOperation::ClusterAction);
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut results = Vec::with_capacity(read.topics.len());
        for topic in read.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for wanted in topic.partitions {
                let answer = PartitionResult::default()
                    .with_partition(wanted.partition)
                    .with_start_offset(NO_STATE)
                    .with_state_epoch(-1);
                if !allowed {
                    partitions.push(
                        answer.with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
                    );
                    continue;
                }
                let key = ShareStateKey {
                    group: read.group_id.to_string(),
                    topic_id: *topic.topic_id.as_bytes(),
                    partition: wanted.partition,
                };
                partitions.push(
                    match broker.shares().states().read_here(&broker, &key).await {
                        Ok(None) => answer,
                        Ok(Some(snapshot)) => answer
                            .with_state_epoch(snapshot.state_epoch)
                            .with_start_offset(snapshot.start_offset)
                            .with_state_batches(snapshot.batches.iter().map(to_read).collect())
                            .with_unknown_tagged_fields(producer_tags(
                                snapshot.dead_letter_producer,
                            )),
                        Err(error) => answer
                            .with_error_code(error.code().code())
                            .with_error_message(Some(StrBytes::from_string(error.to_string()))),
                    },
                );
            }
            results.push(
                ReadStateResult::default()
                    .with_topic_id(topic.topic_id)
                    .with_partitions(partitions),
            );
        }
        let response = ReadShareGroupStateResponse::default().with_results(results);
        encode(ApiKey::ReadShareGroupState, version, &response).map(Some)
    })
}
