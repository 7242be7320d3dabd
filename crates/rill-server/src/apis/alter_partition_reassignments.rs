//! AlterPartitionReassignments (KIP-455): moves each named partition to
//! the replicas given. The metadata's replicas become the new ones plus
//! the ones they replace; the new ones fetch from the leader, join the
//! ISR once caught up, and the leader then ends the move (the replicas
//! become the target, a leader outside it hands over; replicas no longer
//! listed are deleted by their brokers). Null replicas cancel a move: the
//! replicas it was adding leave (Kafka's revert), unless that would take
//! an unclean election. A single broker can only "move" to itself.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey,
};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::{BrokerId, Command, Rejection};

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::cluster::{ClusterNode, ProposalError};
use crate::error_code;

pub(crate) fn answer(
    broker: &Broker,
    alter: AlterPartitionReassignmentsRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    if !Access::new(broker, session).allows_cluster(AclOperation::Alter) {
        let refused = kafka_protocol::ResponseError::ClusterAuthorizationFailed;
        let response = AlterPartitionReassignmentsResponse::default()
            .with_error_code(refused.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "Cluster authorization failed.",
            )));
        return encode(ApiKey::AlterPartitionReassignments, version, &response);
    }
    let responses = alter
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let outcome = reassign(broker, &name, p.partition_index, p.replicas);
                    let response = ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match outcome {
                        Ok(()) => response,
                        Err((code, message)) => response
                            .with_error_code(code.code())
                            .with_error_message(Some(StrBytes::from_string(message))),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    let mut response = AlterPartitionReassignmentsResponse::default().with_responses(responses);
    if version >= 1 {
        response = response.with_allow_replication_factor_change(true);
    }
    encode(ApiKey::AlterPartitionReassignments, version, &response)
}

fn reassign(
    broker: &Broker,
    topic: &str,
    partition: i32,
    replicas: Option<Vec<kafka_protocol::messages::BrokerId>>,
) -> Result<(), (ResponseError, String)> {
    let node = broker.node();
    let metadata = node.metadata();
    let Some(found) = metadata.topics.get(topic) else {
        return Err(unknown(topic, partition));
    };
    if usize::try_from(partition).map_or(true, |p| p >= found.partitions.len()) {
        return Err(unknown(topic, partition));
    }
    let Some(replicas) = replicas else {
        return propose(
            node,
            Command::CancelReassignment {
                topic_id: found.id,
                partition,
            },
        );
    };
    let target: Vec<i32> = replicas.into_iter().map(|b| b.0).collect();
    if let Some(missing) = target
        .iter()
        .find(|b| !metadata.brokers.contains_key(&BrokerId(**b)))
    {
        return Err((
            ResponseError::InvalidReplicaAssignment,
            format!("broker {missing} is not registered"),
        ));
    }
    let command = Command::ReassignPartition {
        topic_id: found.id,
        partition,
        target: target.into_iter().map(BrokerId).collect(),
    };
    propose(node, command)
}

/// Proposes a move or its cancelling, answering as Kafka does.
fn propose(node: &ClusterNode, command: Command) -> Result<(), (ResponseError, String)> {
    match tokio::runtime::Handle::current().block_on(node.propose(command)) {
        Ok(_) => Ok(()),
        Err(ProposalError::Rejected(rejection)) => {
            let code = match rejection {
                Rejection::NoReassignmentInProgress { .. } => {
                    ResponseError::NoReassignmentInProgress
                }
                _ => ResponseError::InvalidReplicaAssignment,
            };
            Err((code, rejection.to_string()))
        }
        Err(error) => Err((error_code::for_proposal(&error), error.to_string())),
    }
}

fn unknown(topic: &str, partition: i32) -> (ResponseError, String) {
    (
        ResponseError::UnknownTopicOrPartition,
        format!("{topic}-{partition} does not exist"),
    )
}
