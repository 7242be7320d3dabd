//! Transaction markers: the commit or abort control batch a coordinator
//! has written into every partition of an ending transaction.
//!
//! [`write_local`] writes a marker into partitions this broker leads and
//! waits until every in-sync replica has it (Kafka's WriteTxnMarkers
//! appends with acks=all); for a `__consumer_offsets` partition it then
//! makes the transaction's offsets visible (or drops them) in the group
//! coordinator. The WriteTxnMarkers handler calls it for a coordinator on
//! another broker; [`deliver`] calls it for partitions led here and sends
//! WriteTxnMarkers to the leaders of the others, retrying until each
//! partition has its marker, its topic is gone, or this coordinator is
//! fenced.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use rill_partition::TopicPartition;
use rill_record::{EndTxnMarker, MarkerKind};

use crate::cluster::{ClusterNode, ReplicaManager};
use crate::error_code;
use crate::groups::{GroupsSlot, OFFSETS_TOPIC};
use crate::transactions::links::BrokerLinks;

/// How long a marker's append may wait for the in-sync replicas (Kafka's
/// request.timeout.ms for the markers it writes).
const MARKER_REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The pause before markers that could not be written are tried again.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// How long a call to another broker may take.
const PEER_CALL_TIMEOUT: Duration = Duration::from_secs(35);

/// The WriteTxnMarkers version Rill sends and answers.
pub(crate) const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// The marker of one producer's transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub kind: MarkerKind,
}

/// What writes a marker needs: the replicas (partitions led here), and
/// the group coordinator (transactional offset commits).
pub(crate) struct LocalMarkers<'a> {
    pub replicas: &'a ReplicaManager,
    pub groups: &'a GroupsSlot,
}

/// Writes `marker` into each of `partitions` that this broker leads and
/// waits until it is replicated to the ISR. Returns each partition's
/// outcome, in order.
pub(crate) async fn write_local(
    local: LocalMarkers<'_>,
    marker: Marker,
    partitions: Vec<TopicPartition>,
) -> Vec<(TopicPartition, Result<(), ResponseError>)> {
    let deadline = tokio::time::Instant::now() + MARKER_REPLICATION_TIMEOUT;
    let mut written = Vec::with_capacity(partitions.len());
    for tp in partitions {
        let appended = append_marker(local.replicas, &tp, marker);
        written.push((tp, appended));
    }
    let mut outcomes = Vec::with_capacity(written.len());
    for (tp, appended) in written {
        let outcome = match appended {
            Ok(ticket) => match ticket.await {
                Ok(info) => {
                    local.replicas.notify(&tp);
                    local
                        .replicas
                        .replicated(&tp, info.last_offset, true, deadline)
                        .await
                }
                Err(error) => {
                    tracing::warn!(partition = %tp, %error, "a transaction marker was not written");
                    Err(ResponseError::KafkaStorageError)
                }
            },
            Err(error) => Err(error),
        };
        if outcome.is_ok() && tp.topic.as_str() == OFFSETS_TOPIC {
            if let Some(groups) = local.groups.current() {
                groups.complete_transaction(
                    tp.partition,
                    marker.producer_id,
                    marker.kind == MarkerKind::Commit,
                );
            }
        }
        outcomes.push((tp, outcome));
    }
    outcomes
}

fn append_marker(
    replicas: &ReplicaManager,
    tp: &TopicPartition,
    marker: Marker,
) -> Result<rill_storage::AppendTicket, ResponseError> {
    let (partition, leader_epoch) = replicas
        .leader_partition(tp, -1)
        .map_err(error_code::for_leadership)?;
    if !replicas.has_enough_replicas(tp) {
        return Err(ResponseError::NotEnoughReplicas);
    }
    let end = EndTxnMarker {
        kind: marker.kind,
        coordinator_epoch: marker.coordinator_epoch,
    };
    partition
        .append_marker(
            marker.producer_id,
            marker.producer_epoch,
            end,
            leader_epoch,
            rill_storage::now_ms(),
        )
        .map_err(|error| {
            tracing::debug!(partition = %tp, %error, "refused a transaction marker");
            error_code::for_append(&error)
        })
}

/// How a delivery ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Every partition has its marker, or its topic is gone.
    All,
    /// A partition refused the marker as coming from a stale coordinator
    /// (or for a producer epoch already moved on): this coordinator has
    /// been replaced, and its successor finishes the transaction.
    Fenced,
    /// The broker is stopping.
    Stopped,
}

/// Writes `marker` into every one of `partitions`, wherever they are led,
/// until each has it (see the module doc).
pub(crate) async fn deliver(
    local: LocalMarkers<'_>,
    node: &ClusterNode,
    links: &BrokerLinks,
    (marker, partitions): (Marker, Vec<TopicPartition>),
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Delivered {
    let mut remaining = partitions;
    let own_id = node.node_id();
    loop {
        if *stop.borrow() {
            return Delivered::Stopped;
        }
        let metadata = node.metadata();
        // A partition of a deleted topic (or of a topic shrunk away) has
        // nobody left to read the marker.
        remaining.retain(|tp| {
            metadata.topics.get(tp.topic.as_str()).is_some_and(|t| {
                usize::try_from(tp.partition).is_ok_and(|p| p < t.partitions.len())
            })
        });
        if remaining.is_empty() {
            return Delivered::All;
        }
        let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        let mut leaderless = Vec::new();
        for tp in remaining.drain(..) {
            let leader = metadata
                .topics
                .get(tp.topic.as_str())
                .and_then(|t| t.partitions.get(usize::try_from(tp.partition).ok()?))
                .and_then(|p| p.leader);
            match leader {
                Some(leader) => by_leader.entry(leader.0).or_default().push(tp),
                None => leaderless.push(tp),
            }
        }
        remaining = leaderless;
        for (leader, partitions) in by_leader {
            let outcomes = if leader == own_id {
                write_local(
                    LocalMarkers {
                        replicas: local.replicas,
                        groups: local.groups,
                    },
                    marker,
                    partitions,
                )
                .await
            } else {
                let address = metadata
                    .brokers
                    .get(&rill_cluster::BrokerId(leader))
                    .map(|b| format!("{}:{}", b.host, b.port));
                match address {
                    Some(address) => {
                        write_remote(links, &address, own_id, marker, partitions).await
                    }
                    None => partitions
                        .into_iter()
                        .map(|tp| (tp, Err(ResponseError::NotLeaderOrFollower)))
                        .collect(),
                }
            };
            for (tp, outcome) in outcomes {
                match outcome {
                    Ok(()) => {}
                    Err(
                        ResponseError::TransactionCoordinatorFenced
                        | ResponseError::InvalidProducerEpoch
                        | ResponseError::ProducerFenced,
                    ) => {
                        tracing::info!(partition = %tp, producer_id = marker.producer_id,
                            "a transaction marker was refused as stale: the coordinator moved on");
                        return Delivered::Fenced;
                    }
                    Err(error) => {
                        tracing::debug!(partition = %tp, ?error, "will write the transaction marker again");
                        remaining.push(tp);
                    }
                }
            }
        }
        if remaining.is_empty() {
            return Delivered::All;
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY_BACKOFF) => {}
            _ = stop.changed() => return Delivered::Stopped,
        }
    }
}

/// Sends one WriteTxnMarkers request to the broker at `address`.
async fn write_remote(
    links: &BrokerLinks,
    address: &str,
    own_id: i32,
    marker: Marker,
    partitions: Vec<TopicPartition>,
) -> Vec<(TopicPartition, Result<(), ResponseError>)> {
    let failed_all = |partitions: Vec<TopicPartition>, error: ResponseError| {
        partitions
            .into_iter()
            .map(|tp| (tp, Err(error)))
            .collect::<Vec<_>>()
    };
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in &partitions {
        topics
            .entry(tp.topic.as_str())
            .or_default()
            .push(tp.partition);
    }
    let request = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.kind == MarkerKind::Commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, indexes)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                            .with_partition_indexes(indexes)
                    })
                    .collect(),
            ),
    ]);
    let response: WriteTxnMarkersResponse = match links
        .call(
            (address, own_id),
            (ApiKey::WriteTxnMarkers, WRITE_TXN_MARKERS_VERSION),
            &request,
            PEER_CALL_TIMEOUT,
        )
        .await
    {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%error, "WriteTxnMarkers failed");
            return failed_all(partitions, ResponseError::RequestTimedOut);
        }
    };
    let mut answered: BTreeMap<(String, i32), i16> = BTreeMap::new();
    for result in response.markers {
        for topic in result.topics {
            for partition in topic.partitions {
                answered.insert(
                    (topic.name.to_string(), partition.partition_index),
                    partition.error_code,
                );
            }
        }
    }
    partitions
        .into_iter()
        .map(|tp| {
            let code = answered
                .get(&(tp.topic.to_string(), tp.partition))
                .copied()
                .unwrap_or(ResponseError::UnknownServerError.code());
            let outcome = match ResponseError::try_from_code(code) {
                None => Ok(()),
                Some(error) => Err(error),
            };
            (tp, outcome)
        })
        .collect()
}

/// Partitions named by topic, as WriteTxnMarkers and the coordinator list
/// them.
pub(crate) fn topic_partitions(
    partitions: impl IntoIterator<Item = (String, i32)>,
) -> Vec<TopicPartition> {
    partitions
        .into_iter()
        .map(|(topic, partition)| TopicPartition::new(&topic, partition))
        .collect()
}
