//! ElectLeaders (KIP-460): a preferred-leader election — each partition
//! named (all of them when the list is null) gets its first replica back
//! as leader if that replica is unfenced and in the ISR, in one metadata
//! entry. Unclean elections (type 1) are refused: Rill never elects a
//! replica outside the ISR. A single broker leads everything already.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::{BrokerId, ClusterMetadata, Command, PartitionChange};

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::error_code;

/// Kafka's ElectionType for a preferred-leader election.
const PREFERRED: i8 = 0;

/// The outcome per partition, by topic then partition.
type Outcomes = BTreeMap<String, BTreeMap<i32, Result<(), (ResponseError, String)>>>;

pub(crate) fn answer(
    broker: &Broker,
    elect: ElectLeadersRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    let wanted: Option<Vec<(String, i32)>> = elect.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect()
    });
    let outcomes = if !Access::new(broker, session).allows_cluster(AclOperation::Alter) {
        refuse_all(
            &broker.topics().metadata(),
            wanted,
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        )
    } else if version >= 1 && elect.election_type != PREFERRED {
        refuse_all(
            &broker.topics().metadata(),
            wanted,
            ResponseError::InvalidRequest,
            "unclean elections are not supported",
        )
    } else {
        let node = broker.node();
        let metadata = node.metadata();
        let (outcomes, changes) = plan(&metadata, wanted);
        if changes.is_empty() {
            outcomes
        } else {
            let command = Command::ElectLeaders {
                partition_changes: changes.clone(),
            };
            let proposed = tokio::runtime::Handle::current().block_on(node.propose(command));
            match proposed {
                Ok(_) => outcomes,
                Err(error) => fail_changes(outcomes, &metadata, &changes, &error),
            }
        }
    };
    let results = outcomes
        .into_iter()
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partition_result(
                    partitions
                        .into_iter()
                        .map(|(partition, outcome)| {
                            let result = PartitionResult::default().with_partition_id(partition);
                            match outcome {
                                Ok(()) => result,
                                Err((code, message)) => result
                                    .with_error_code(code.code())
                                    .with_error_message(Some(StrBytes::from_string(message))),
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    encode(
        ApiKey::ElectLeaders,
        version,
        &ElectLeadersResponse::default().with_replica_election_results(results),
    )
}

/// Per partition, whether its preferred leader can take over, and the
/// changes that make it so.
fn plan(
    metadata: &ClusterMetadata,
    wanted: Option<Vec<(String, i32)>>,
) -> (Outcomes, Vec<PartitionChange>) {
    let wanted: Vec<(String, i32)> = wanted.unwrap_or_else(|| {
        metadata
            .topics
            .values()
            .flat_map(|t| (0..).zip(&t.partitions).map(|(p, _)| (t.name.clone(), p)))
            .collect()
    });
    let electable: HashMap<(uuid::Uuid, i32), PartitionChange> = metadata
        .preferred_leader_changes()
        .into_iter()
        .map(|c| ((c.topic_id, c.partition), c))
        .collect();
    let mut outcomes = Outcomes::new();
    let mut changes = Vec::new();
    for (topic, partition) in wanted {
        if outcomes
            .get(&topic)
            .is_some_and(|p| p.contains_key(&partition))
        {
            continue; // Named twice: one change, one answer.
        }
        let state = metadata.topics.get(&topic).and_then(|t| {
            usize::try_from(partition)
                .ok()
                .and_then(|i| t.partitions.get(i))
        });
        let outcome = match state {
            None => Err((
                ResponseError::UnknownTopicOrPartition,
                format!("{topic}-{partition} does not exist"),
            )),
            Some(state) => {
                let preferred = state.replicas.first().copied();
                let topic_id = metadata.topics.get(&topic).map(|t| t.id);
                if state.leader.is_some() && state.leader == preferred {
                    Err((
                        ResponseError::ElectionNotNeeded,
                        "the preferred replica leads already".to_string(),
                    ))
                } else if let Some(change) = topic_id.and_then(|id| electable.get(&(id, partition)))
                {
                    changes.push(change.clone());
                    Ok(())
                } else {
                    Err((
                        ResponseError::PreferredLeaderNotAvailable,
                        format!(
                            "replica {} is fenced or out of the ISR",
                            preferred.unwrap_or(BrokerId(-1))
                        ),
                    ))
                }
            }
        };
        outcomes
            .entry(topic)
            .or_default()
            .insert(partition, outcome);
    }
    (outcomes, changes)
}

fn refuse_all(
    metadata: &ClusterMetadata,
    wanted: Option<Vec<(String, i32)>>,
    code: ResponseError,
    message: &str,
) -> Outcomes {
    let wanted = wanted.unwrap_or_else(|| {
        metadata
            .topics
            .values()
            .flat_map(|t| (0..).zip(&t.partitions).map(|(p, _)| (t.name.clone(), p)))
            .collect()
    });
    let mut outcomes = Outcomes::new();
    for (topic, partition) in wanted {
        let outcome = if metadata
            .topics
            .get(&topic)
            .is_some_and(|t| usize::try_from(partition).is_ok_and(|p| p < t.partitions.len()))
        {
            Err((code, message.to_string()))
        } else {
            Err((
                ResponseError::UnknownTopicOrPartition,
                format!("{topic}-{partition} does not exist"),
            ))
        };
        outcomes
            .entry(topic)
            .or_default()
            .insert(partition, outcome);
    }
    outcomes
}

/// The proposal failed: the partitions it covered get its error.
fn fail_changes(
    mut outcomes: Outcomes,
    metadata: &ClusterMetadata,
    changes: &[PartitionChange],
    error: &crate::cluster::ProposalError,
) -> Outcomes {
    let code = error_code::for_proposal(error);
    for change in changes {
        if let Some(topic) = metadata.topic_by_id(change.topic_id)
            && let Some(outcome) = outcomes
                .get_mut(&topic.name)
                .and_then(|p| p.get_mut(&change.partition))
        {
            *outcome = Err((code, error.to_string()));
        }
    }
    outcomes
}
