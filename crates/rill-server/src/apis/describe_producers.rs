//! DescribeProducers (KIP-664): the producers a partition's leader knows
//! — each one's epoch, last sequence and timestamp, and the offset its
//! open transaction began at — which is how `kafka-transactions
//! find-hanging` and `rill txn` find a transaction left open in a
//! partition. A topic the principal may not READ answers
//! TOPIC_AUTHORIZATION_FAILED.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};
use rill_partition::TopicPartition;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let describe: DescribeProducersRequest = request.decode()?;
    let access = Access::new(broker, &request.session);
    let topics = describe
        .topics
        .into_iter()
        .map(|topic| {
            let readable = access.allows(AclOperation::Read, ResourceType::Topic, &topic.name);
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    let response = PartitionResponse::default().with_partition_index(index);
                    if !readable {
                        let refused = ResponseError::TopicAuthorizationFailed;
                        return response.with_error_code(refused.code());
                    }
                    let tp = TopicPartition::new(topic.name.as_str(), index);
                    match broker.leader_partition(&tp, -1) {
                        Ok((partition, _)) => response.with_active_producers(
                            partition
                                .active_producers()
                                .into_iter()
                                .map(|entry| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(entry.producer_id))
                                        .with_producer_epoch(i32::from(entry.epoch))
                                        .with_last_sequence(entry.last_sequence().unwrap_or(-1))
                                        .with_last_timestamp(entry.last_timestamp)
                                        .with_coordinator_epoch(entry.coordinator_epoch)
                                        .with_current_txn_start_offset(
                                            entry
                                                .current_txn_first_offset
                                                .map_or(-1, |offset| offset.value()),
                                        )
                                })
                                .collect(),
                        ),
                        Err(error) => {
                            response.with_error_code(error_code::for_leadership(error).code())
                        }
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    encode(
        ApiKey::DescribeProducers,
        version,
        &DescribeProducersResponse::default().with_topics(topics),
    )
}
