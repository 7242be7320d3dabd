//! WriteTxnMarkers: a transaction coordinator on another broker ends a
//! transaction in the partitions this broker leads. Each marker is
//! written and replicated to the ISR before the answer (see
//! `transactions/markers.rs`). Only the cluster's own nodes
//! (CLUSTER_ACTION) may send it.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use rill_partition::TopicPartition;
use rill_record::MarkerKind;

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::transactions::markers::{LocalMarkers, Marker, write_local};

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let write: WriteTxnMarkersRequest = match request.decode() {
        Ok(write) => write,
        Err(error) => return ready(Err(error)),
    };
    let authorized =
        Access::new(broker, &request.session).allows_cluster(AclOperation::ClusterAction);
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut results = Vec::with_capacity(write.markers.len());
        for entry in write.markers {
            let partitions: Vec<TopicPartition> = entry
                .topics
                .iter()
                .flat_map(|topic| {
                    topic
                        .partition_indexes
                        .iter()
                        .map(|&p| TopicPartition::new(topic.name.as_str(), p))
                })
                .collect();
            let outcomes = if authorized {
                let marker = Marker {
                    producer_id: entry.producer_id.0,
                    producer_epoch: entry.producer_epoch,
                    coordinator_epoch: entry.coordinator_epoch,
                    kind: if entry.transaction_result {
                        MarkerKind::Commit
                    } else {
                        MarkerKind::Abort
                    },
                };
                let local = LocalMarkers {
                    replicas: broker.replicas(),
                    groups: broker.groups(),
                };
                write_local(local, marker, partitions).await
            } else {
                partitions
                    .into_iter()
                    .map(|tp| (tp, Err(ResponseError::ClusterAuthorizationFailed)))
                    .collect()
            };
            results.push(result(entry.producer_id, outcomes));
        }
        let response = WriteTxnMarkersResponse::default().with_markers(results);
        encode(ApiKey::WriteTxnMarkers, version, &response).map(Some)
    })
}

/// One marker's answer, its partitions grouped by topic in request order.
fn result(
    producer_id: kafka_protocol::messages::ProducerId,
    outcomes: Vec<(TopicPartition, Result<(), ResponseError>)>,
) -> WritableTxnMarkerResult {
    let mut topics: Vec<WritableTxnMarkerTopicResult> = Vec::new();
    for (tp, outcome) in outcomes {
        let partition = WritableTxnMarkerPartitionResult::default()
            .with_partition_index(tp.partition)
            .with_error_code(outcome.err().map_or(0, |e| e.code()));
        match topics.last_mut() {
            Some(topic) if topic.name.as_str() == tp.topic.as_str() => {
                topic.partitions.push(partition);
            }
            _ => topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.to_string())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    WritableTxnMarkerResult::default()
        .with_producer_id(producer_id)
        .with_topics(topics)
}
