//! ListPartitionReassignments (KIP-455): the moves under way, from the
//! metadata — each moving partition's replicas (old and new together),
//! the ones it adds and the ones it removes. All partitions, or those
//! named (a named one not moving is left out, as Kafka does).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::PartitionState;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let list: ListPartitionReassignmentsRequest = request.decode()?;
    if !Access::new(broker, &request.session).allows_cluster(AclOperation::Describe) {
        let response = ListPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "Cluster authorization failed.",
            )));
        return encode(ApiKey::ListPartitionReassignments, version, &response);
    }
    let metadata = broker.node().metadata();
    // The partitions named, by topic; None: every partition.
    let wanted: Option<BTreeMap<String, BTreeSet<i32>>> = list.topics.map(|topics| {
        let mut wanted: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for topic in topics {
            wanted
                .entry(topic.name.to_string())
                .or_default()
                .extend(topic.partition_indexes);
        }
        wanted
    });
    let mut topics = Vec::new();
    for (name, topic) in &metadata.topics {
        let named = match &wanted {
            None => None,
            Some(wanted) => match wanted.get(name) {
                Some(partitions) => Some(partitions),
                None => continue,
            },
        };
        let partitions: Vec<OngoingPartitionReassignment> = (0..)
            .zip(&topic.partitions)
            .filter(|(index, state)| {
                state.target_replicas.is_some() && named.is_none_or(|named| named.contains(index))
            })
            .map(|(index, state)| ongoing(index, state))
            .collect();
        if !partitions.is_empty() {
            topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(name.clone())))
                    .with_partitions(partitions),
            );
        }
    }
    encode(
        ApiKey::ListPartitionReassignments,
        version,
        &ListPartitionReassignmentsResponse::default().with_topics(topics),
    )
}

fn ongoing(index: i32, state: &PartitionState) -> OngoingPartitionReassignment {
    let ids = |brokers: &[rill_cluster::BrokerId]| brokers.iter().map(|b| BrokerId(b.0)).collect();
    OngoingPartitionReassignment::default()
        .with_partition_index(index)
        .with_replicas(ids(&state.replicas))
        .with_adding_replicas(ids(&state.adding_replicas))
        .with_removing_replicas(ids(&state.removing_replicas()))
}
