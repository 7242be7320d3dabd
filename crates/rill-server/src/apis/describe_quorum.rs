//! DescribeQuorum (KIP-595; v2 with KIP-853's nodes): the metadata
//! quorum — partition 0 of `__cluster_metadata` — as its leader sees it:
//! the leader and its term, the high watermark, each voter's and
//! observer's log end. A broker asks the leader (Kafka's brokers forward
//! the request to the active controller). Kafka's rules: DESCRIBE on the
//! cluster (CLUSTER_AUTHORIZATION_FAILED); another topic or partition is
//! UNKNOWN_TOPIC_OR_PARTITION; no leader is NOT_LEADER_OR_FOLLOWER.
//!
//! Offsets are Raft log indexes plus one; replica directory ids are not
//! kept (zero), nor fetch and caught-up times (-1).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::{QuorumState, ReplicaProgress};

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;

/// The metadata log's name in Kafka.
const METADATA_TOPIC: &str = "__cluster_metadata";

pub(crate) fn answer(
    broker: &Broker,
    describe: DescribeQuorumRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    if !Access::new(broker, session).allows_cluster(AclOperation::Describe) {
        return encode(
            ApiKey::DescribeQuorum,
            version,
            &DescribeQuorumResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
        );
    }
    let state = tokio::runtime::Handle::current().block_on(broker.node().describe_quorum());
    let topics = describe
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let data = PartitionData::default().with_partition_index(p.partition_index);
                    match (
                        &state,
                        topic.topic_name.as_str() == METADATA_TOPIC && p.partition_index == 0,
                    ) {
                        (_, false) => {
                            data.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        }
                        (None, true) => {
                            data.with_error_code(ResponseError::NotLeaderOrFollower.code())
                        }
                        (Some(state), true) => partition_data(data, state),
                    }
                })
                .collect();
            TopicData::default()
                .with_topic_name(topic.topic_name.clone())
                .with_partitions(partitions)
        })
        .collect();
    let mut response = DescribeQuorumResponse::default().with_topics(topics);
    if version >= 2 {
        response = response.with_nodes(state.as_ref().map(nodes).unwrap_or_default());
    }
    encode(ApiKey::DescribeQuorum, version, &response)
}

fn node_id(node: u64) -> BrokerId {
    BrokerId(i32::try_from(node).unwrap_or(i32::MAX))
}

fn offset(value: Option<u64>) -> i64 {
    value.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn replica(progress: &ReplicaProgress) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(node_id(progress.node))
        .with_log_end_offset(offset(progress.log_end_offset))
        .with_last_fetch_timestamp(-1)
        .with_last_caught_up_timestamp(-1)
}

fn partition_data(data: PartitionData, state: &QuorumState) -> PartitionData {
    data.with_leader_id(node_id(state.leader))
        .with_leader_epoch(i32::try_from(state.term).unwrap_or(i32::MAX))
        .with_high_watermark(offset(Some(state.high_watermark)))
        .with_current_voters(state.voters.iter().map(replica).collect())
        .with_observers(state.observers.iter().map(replica).collect())
}

/// The voters' controller endpoints (v2), from their `host:port`.
fn nodes(state: &QuorumState) -> Vec<Node> {
    state
        .voters
        .iter()
        .filter_map(|voter| {
            let (host, port) = voter.address.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some(
                Node::default()
                    .with_node_id(node_id(voter.node))
                    .with_listeners(vec![
                        Listener::default()
                            .with_name(StrBytes::from_static_str("CONTROLLER"))
                            .with_host(StrBytes::from_string(host.to_string()))
                            .with_port(port.parse().ok()?),
                    ]),
            )
        })
        .collect()
}
