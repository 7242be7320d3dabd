//! DeleteRecords: moves a partition's log start offset (offset -1: to the
//! high watermark) and answers the new low watermark. In a cluster only
//! the leader does; followers keep their older records (a follower that
//! fell below the leader's log start starts over there: `fetcher.rs`).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};
use rill_partition::TopicPartition;
use rill_storage::Offset;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;

pub(crate) fn answer(
    broker: &Broker,
    delete: DeleteRecordsRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    let access = Access::new(broker, session);
    let topics = delete
        .topics
        .into_iter()
        .map(|topic| {
            let authorized = access.allows(AclOperation::Delete, ResourceType::Topic, &topic.name);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|wanted| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(wanted.partition_index)
                        .with_low_watermark(-1);
                    if !authorized {
                        let refused = kafka_protocol::ResponseError::TopicAuthorizationFailed;
                        return result.with_error_code(refused.code());
                    }
                    let tp = TopicPartition::new(topic.name.as_str(), wanted.partition_index);
                    let partition = match broker.leader_partition(&tp, -1) {
                        Ok((partition, _)) => partition,
                        Err(error) => {
                            return result
                                .with_error_code(error_code::for_leadership(error).code());
                        }
                    };
                    let before = (wanted.offset != -1).then_some(Offset(wanted.offset));
                    match partition.delete_records(before) {
                        Ok(low_watermark) => result.with_low_watermark(low_watermark.value()),
                        Err(error) => {
                            result.with_error_code(error_code::for_partition(&error).code())
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    encode(
        ApiKey::DeleteRecords,
        version,
        &DeleteRecordsResponse::default().with_topics(topics),
    )
}
