//! A share-partition leader's calls to the coordinator of its state on
//! another broker (ReadShareGroupState, WriteShareGroupState), and the
//! state batches as those requests carry them.

use std::sync::Arc;

use kafka_protocol::messages::{
    ApiKey, ReadShareGroupStateRequest, ReadShareGroupStateResponse, WriteShareGroupStateRequest,
    WriteShareGroupStateResponse, read_share_group_state_request as read_req,
    read_share_group_state_response as read_resp, write_share_group_state_request as write_req,
};
use kafka_protocol::protocol::StrBytes;
use rill_share::{DeliveryState, ShareSnapshot, ShareStateKey, StateBatch};
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
                        .with_state_batches(batches),
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
}

fn from_read(batch: &read_resp::StateBatch) -> Option<StateBatch> {
    from_wire(
        (batch.first_offset, batch.last_offset),
        batch.delivery_state,
        batch.delivery_count,
    )
}

/// A state batch from a request's fields; `None` if they are not one.
pub(crate) fn from_wire(
    (first_offset, last_offset): (i64, i64),
    delivery_state: i8,
    delivery_count: i16,
) -> Option<StateBatch> {
    let state = match delivery_state {
        0 | 1 => DeliveryState::Available,
        2 => DeliveryState::Acknowledged,
        4 => DeliveryState::Archived,
        _ => return None,
    };
    (first_offset <= last_offset).then(|| StateBatch {
        first_offset,
        last_offset,
        state,
        delivery_count: u16::try_from(delivery_count.max(0)).unwrap_or(0),
    })
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
