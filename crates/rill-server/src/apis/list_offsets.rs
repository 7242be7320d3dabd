//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7+), the
//! earliest local offset (-4, v8+; the same as earliest, with no tiered
//! storage) and by timestamp; only records below the high watermark count
//! (below the last stable offset under read_committed, v2+).
//! A topic the principal may not DESCRIBE answers TOPIC_AUTHORIZATION_FAILED.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use rill_partition::{FetchIsolation, OffsetSpec, TopicPartition};

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;

/// Kafka's IsolationLevel.READ_COMMITTED.
const READ_COMMITTED: i8 = 1;

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let list: ListOffsetsRequest = request.decode()?;
    let access = Access::new(broker, &request.session);
    let isolation = if version >= 2 && list.isolation_level == READ_COMMITTED {
        FetchIsolation::TxnCommitted
    } else {
        FetchIsolation::HighWatermark
    };
    let topics = list
        .topics
        .into_iter()
        .map(|topic| {
            let authorized =
                access.allows(AclOperation::Describe, ResourceType::Topic, &topic.name);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|wanted| {
                    if !authorized {
                        return ListOffsetsPartitionResponse::default()
                            .with_partition_index(wanted.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1)
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let tp = TopicPartition::new(topic.name.as_str(), wanted.partition_index);
                    lookup(
                        broker,
                        &tp,
                        (wanted.timestamp, wanted.current_leader_epoch),
                        (isolation, version),
                    )
                    .with_partition_index(wanted.partition_index)
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    encode(
        ApiKey::ListOffsets,
        version,
        &ListOffsetsResponse::default().with_topics(topics),
    )
}

fn lookup(
    broker: &Broker,
    tp: &TopicPartition,
    (timestamp, current_leader_epoch): (i64, i32),
    (isolation, version): (FetchIsolation, i16),
) -> ListOffsetsPartitionResponse {
    let response = ListOffsetsPartitionResponse::default()
        .with_timestamp(-1)
        .with_offset(-1);
    let (partition, leader_epoch) = match broker.leader_partition(tp, current_leader_epoch) {
        Ok(found) => found,
        Err(error) => return response.with_error_code(error_code::for_leadership(error).code()),
    };
    let spec = match timestamp {
        -2 | -4 => OffsetSpec::Earliest,
        -1 | -5 => OffsetSpec::Latest,
        -3 if version >= 7 => OffsetSpec::MaxTimestamp,
        t if t >= 0 => OffsetSpec::Timestamp(t),
        _ => return response.with_error_code(ResponseError::UnsupportedVersion.code()),
    };
    match partition.list_offset_isolated(spec, isolation) {
        Ok(Some(found)) => {
            let mut response = response
                .with_offset(found.offset.value())
                .with_timestamp(found.timestamp);
            if version >= 4 {
                response = response.with_leader_epoch(leader_epoch);
            }
            response
        }
        Ok(None) => response,
        Err(error) => response.with_error_code(error_code::for_read(&error).code()),
    }
}
