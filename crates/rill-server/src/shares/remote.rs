//! A share-partition leader's calls to the coordinator of its state on
//! another broker (ReadShareGroupState, WriteShareGroupState), and the
//! state batches as those requests carry them. Rill's dead-letter marks
//! and producer travel in tagged fields, as in the state records
//! (`rill_share::batch_tagged_fields`), which Kafka's brokers skip.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ReadShareGroupStateRequest, ReadShareGroupStateResponse, WriteShareGroupStateRequest,
    WriteShareGroupStateResponse, read_share_group_state_request as read_req,
    read_share_group_state_response as read_resp, write_share_group_state_request as write_req,
};
use kafka_protocol::protocol::StrBytes;
use rill_share::{DeadLetterProducer, DeliveryState, ShareSnapshot, ShareStateKey, StateBatch};
use uuid::Uuid;

use super::state::StateError;
use crate::broker::Broker;

/// The start offset that says a share-partition has no state yet.
pub(crate) const NO_STATE: i64 = -1;

pub(crate) async fn read(
    broker: &Arc<Broker>,
    node: i32,
    key: &ShareStateKey,
) -> Result<Option<ShareSnapshot>, StateError> {
    let request = ReadShareGroupStateRequest::default()
        .with_group_id(StrBytes::from_string(key.group.clone()))
        .with_topics(vec![
            read_req::ReadStateData::default()
                .with_topic_id(Uuid::from_bytes(key.topic_id))
                .with_partitions(vec![
                    read_req::PartitionData::default().with_partition(key.partition),
                ]),
        ]);
    let response: ReadShareGroupStateResponse = broker
        .shares()
        .states()
        .peers(broker)
        .call(broker, node, (ApiKey::ReadShareGroupState, 0), &request)
        .await
        .map_err(|e| unavailable(key, e.to_string()))?;
    let result = response
        .results
        .into_iter()
        .flat_map(|t| t.partitions)
        .find(|p| p.partition == key.partition)
        .ok_or_else(|| unavailable(key, format!("broker {node} did not answer for it")))?;
    if result.error_code != 0 {
        return Err(unavailable(
            key,
            format!(
                "broker {node}: {}",
                crate::error_code::kafka_name(result.error_code)
            ),
        ));
    }
    if result.start_offset == NO_STATE {
        return Ok(None);
    }
    Ok(Some(ShareSnapshot {
        snapshot_epoch: 0,
        state_epoch: result.state_epoch,
        leader_epoch: -1,
        start_offset: result.start_offset,
        create_timestamp_ms: -1,
        write_timestamp_ms: -1,
        batches: result.state_batches.iter().filter_map(from_read).collect(),
        dead_letter_producer: producer_from_tags(&result.unknown_tagged_fields),
    }))
}

pub(crate) async fn write(
    broker: &Arc<Broker>,
    node: i32,
    key: &ShareStateKey,
    snapshot: ShareSnapshot,
) -> Result<(), StateError> {
    let batches = snapshot
        .batches
        .iter()
        .map(|b| {
            write_req::StateBatch::default()
                .with_first_offset(b.first_offset)
                .with_last_offset(b.last_offset)
                .with_delivery_state(persisted_state(b.state))
                .with_delivery_count(i16::try_from(b.delivery_count).unwrap_or(i16::MAX))
                .with_unknown_tagged_fields(to_tags(rill_share::batch_tagged_fields(b)))
        })
        .collect();
    let request = WriteShareGroupStateRequest::default()
        .with_group_id(StrBytes::from_string(key.group.clone()))
        .with_topics(vec![
            write_req::WriteStateData::default()
                .with_topic_id(Uuid::from_bytes(key.topic_id))
                .with_partitions(vec![
                    write_req::PartitionData::default()
                        .with_partition(key.partition)
                        .with_state_epoch(snapshot.state_epoch)
                        .with_leader_epoch(snapshot.leader_epoch)
                        .with_start_offset(snapshot.start_offset)
                        .with_state_batches(batches)
                        .with_unknown_tagged_fields(producer_tags(snapshot.dead_letter_producer)),
                ]),
        ]);
    let response: WriteShareGroupStateResponse = broker
        .shares()
        .states()
        .peers(broker)
        .call(broker, node, (ApiKey::WriteShareGroupState, 0), &request)
        .await
        .map_err(|e| unavailable(key, e.to_string()))?;
    let result = response
        .results
        .into_iter()
        .flat_map(|t| t.partitions)
        .find(|p| p.partition == key.partition)
        .ok_or_else(|| unavailable(key, format!("broker {node} did not answer for it")))?;
    match result.error_code {
        0 => Ok(()),
        code if code == kafka_protocol::ResponseError::FencedStateEpoch.code() => {
            Err(StateError::Fenced {
                key: key.coordinator_key(),
                stored: -1,
                written: snapshot.leader_epoch,
            })
        }
        code => Err(unavailable(
            key,
            format!("broker {node}: {}", crate::error_code::kafka_name(code)),
        )),
    }
}

/// A state batch as ReadShareGroupState answers it.
pub(crate) fn to_read(batch: &StateBatch) -> read_resp::StateBatch {
    read_resp::StateBatch::default()
        .with_first_offset(batch.first_offset)
        .with_last_offset(batch.last_offset)
        .with_delivery_state(persisted_state(batch.state))
        .with_delivery_count(i16::try_from(batch.delivery_count).unwrap_or(i16::MAX))
        .with_unknown_tagged_fields(to_tags(rill_share::batch_tagged_fields(batch)))
}

fn from_read(batch: &read_resp::StateBatch) -> Option<StateBatch> {
    from_wire(
        (batch.first_offset, batch.last_offset),
        (batch.delivery_state, batch.delivery_count),
        &batch.unknown_tagged_fields,
    )
}

/// A state batch from a request's fields; `None` if they are not one.
pub(crate) fn from_wire(
    (first_offset, last_offset): (i64, i64),
    (delivery_state, delivery_count): (i8, i16),
    tags: &BTreeMap<i32, Bytes>,
) -> Option<StateBatch> {
    let state = DeliveryState::from_persisted(delivery_state)?;
    let mut batch = StateBatch {
        first_offset,
        last_offset,
        state,
        delivery_count: u16::try_from(delivery_count.max(0)).unwrap_or(0),
        dead_letter: None,
    };
    for (tag, bytes) in tags {
        if let Ok(tag) = u32::try_from(*tag) {
            rill_share::read_batch_tag(&mut batch, tag, bytes);
        }
    }
    (first_offset <= last_offset).then_some(batch)
}

/// A snapshot's dead-letter producer as tagged fields.
pub(crate) fn producer_tags(producer: Option<DeadLetterProducer>) -> BTreeMap<i32, Bytes> {
    to_tags(rill_share::snapshot_tagged_fields(producer))
}

/// The dead-letter producer in a message's tagged fields, if any.
pub(crate) fn producer_from_tags(tags: &BTreeMap<i32, Bytes>) -> Option<DeadLetterProducer> {
    tags.iter()
        .find_map(|(tag, bytes)| rill_share::read_snapshot_tag(u32::try_from(*tag).ok()?, bytes))
}

fn to_tags(fields: Vec<(u32, Vec<u8>)>) -> BTreeMap<i32, Bytes> {
    fields
        .into_iter()
        .filter_map(|(tag, bytes)| Some((i32::try_from(tag).ok()?, Bytes::from(bytes))))
        .collect()
}

/// The state as persisted: a lock does not outlive its leader.
fn persisted_state(state: DeliveryState) -> i8 {
    match state {
        DeliveryState::Acquired => DeliveryState::Available.id(),
        state => state.id(),
    }
}

fn unavailable(key: &ShareStateKey, reason: String) -> StateError {
    StateError::NotAvailable {
        key: key.coordinator_key(),
        reason,
    }
}
