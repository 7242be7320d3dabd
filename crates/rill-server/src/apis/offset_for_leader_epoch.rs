//! OffsetForLeaderEpoch: for each partition, the largest epoch at or below
//! the one asked and the offset where it ended (the log end for the
//! current epoch), from the leader-epoch cache. Only the leader answers
//! (followers ask it before fetching, to truncate). The cluster's nodes
//! (CLUSTER_ACTION) may ask of any topic, a consumer (KIP-320) of those it
//! may DESCRIBE; other topics answer TOPIC_AUTHORIZATION_FAILED.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use rill_partition::TopicPartition;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let wanted: OffsetForLeaderEpochRequest = request.decode()?;
    let access = Access::new(broker, &request.session);
    let node = access.allows_cluster(AclOperation::ClusterAction);
    let topics = wanted
        .topics
        .into_iter()
        .map(|topic| {
            let authorized =
                node || access.allows(AclOperation::Describe, ResourceType::Topic, &topic.topic);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let result = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if !authorized {
                        let refused = kafka_protocol::ResponseError::TopicAuthorizationFailed;
                        return result.with_error_code(refused.code());
                    }
                    let tp = TopicPartition::new(topic.topic.as_str(), p.partition);
                    let partition = match broker.leader_partition(&tp, p.current_leader_epoch) {
                        Ok((partition, _)) => partition,
                        Err(error) => {
                            return result
                                .with_error_code(error_code::for_leadership(error).code());
                        }
                    };
                    let (epoch, end) = partition.end_offset_for_epoch(p.leader_epoch);
                    result.with_leader_epoch(epoch).with_end_offset(end.value())
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    encode(
        ApiKey::OffsetForLeaderEpoch,
        version,
        &OffsetForLeaderEpochResponse::default().with_topics(topics),
    )
}
