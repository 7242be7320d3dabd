//! The records of `__share_group_state`: one share-partition's durable
//! state — its start offset and the delivery state of its in-flight
//! records — as a snapshot keyed by group, topic id and partition, in the
//! layout of Kafka's share coordinator (ShareSnapshotKey, record type 0;
//! ShareSnapshotValue, version 0, flexible). The topic is compacted: the
//! last snapshot of a key is its state.
//!
//! Key:   i16 record type (0) · string group (i16 length) · 16-byte topic
//!        id · i32 partition
//! Value: i16 version (0) · i32 snapshot epoch · i32 state epoch · i32
//!        leader epoch · i64 start offset · i64 create time · i64 write
//!        time · compact array of (i64 first offset · i64 last offset · i8
//!        delivery state · i16 delivery count · tagged fields) · tagged
//!        fields
//!
//! Acquired records are stored as available: their locks do not outlive
//! the leader that granted them.

use base64::Engine;
use rill_record::{SchemaReader, SchemaWriter};

use crate::error::StateRecordError;
use crate::partition::{DeliveryState, StateBatch};

/// The compacted topic that holds share-partition state.
pub const SHARE_STATE_TOPIC: &str = "__share_group_state";
/// ShareSnapshotKey's record type.
const SNAPSHOT_KEY_TYPE: i16 = 0;
/// ShareSnapshotValue's version.
const SNAPSHOT_VALUE_VERSION: i16 = 0;

/// Which share-partition a record is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareStateKey {
    pub group: String,
    pub topic_id: [u8; 16],
    pub partition: i32,
}

impl ShareStateKey {
    /// Kafka's coordinator key (`SharePartitionKey.asCoordinatorKey`):
    /// `group:topicId:partition`, the topic id as Kafka's `Uuid.toString`
    /// prints it (URL-safe base64 without padding). Its Java hash picks
    /// the partition of [`SHARE_STATE_TOPIC`].
    pub fn coordinator_key(&self) -> String {
        let topic_id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.topic_id);
        format!("{}:{topic_id}:{}", self.group, self.partition)
    }
}

/// A share-partition's state as persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareSnapshot {
    /// Counts the snapshots written for the key.
    pub snapshot_epoch: i32,
    /// Bumped when the state is reset (offsets altered or deleted).
    pub state_epoch: i32,
    /// The topic partition's leader epoch when written: a write from an
    /// older leader is refused.
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub create_timestamp_ms: i64,
    pub write_timestamp_ms: i64,
    /// The in-flight records, by runs.
    pub batches: Vec<StateBatch>,
}

/// Encodes a key.
pub fn encode_key(key: &ShareStateKey) -> Result<Vec<u8>, StateRecordError> {
    // The record type leads, as a version does.
    let mut out = SchemaWriter::new(SNAPSHOT_KEY_TYPE, false);
    out.string("group id", &key.group)?;
    // A uuid is its 16 bytes, as two big-endian longs.
    let (mut high, mut low) = ([0u8; 8], [0u8; 8]);
    high.copy_from_slice(&key.topic_id[..8]);
    low.copy_from_slice(&key.topic_id[8..]);
    out.i64(i64::from_be_bytes(high));
    out.i64(i64::from_be_bytes(low));
    out.i32(key.partition);
    Ok(out.finish())
}

/// Decodes a key; `Ok(None)` for a record type other than a snapshot
/// (Kafka's ShareUpdate records, which Rill does not write).
pub fn decode_key(bytes: &[u8]) -> Result<Option<ShareStateKey>, StateRecordError> {
    let mut r = SchemaReader::new(bytes, false);
    if r.i16("record type")? != SNAPSHOT_KEY_TYPE {
        return Ok(None);
    }
    let group = r.string("group id")?;
    let mut topic_id = [0u8; 16];
    topic_id.copy_from_slice(r.take("topic id", 16)?);
    let partition = r.i32("partition")?;
    r.finish("ShareSnapshotKey", SNAPSHOT_KEY_TYPE)?;
    Ok(Some(ShareStateKey {
        group,
        topic_id,
        partition,
    }))
}

/// Encodes a snapshot.
pub fn encode_value(snapshot: &ShareSnapshot) -> Result<Vec<u8>, StateRecordError> {
    let mut out = SchemaWriter::new(SNAPSHOT_VALUE_VERSION, true);
    out.i32(snapshot.snapshot_epoch);
    out.i32(snapshot.state_epoch);
    out.i32(snapshot.leader_epoch);
    out.i64(snapshot.start_offset);
    out.i64(snapshot.create_timestamp_ms);
    out.i64(snapshot.write_timestamp_ms);
    out.array_len("state batches", snapshot.batches.len())?;
    for batch in &snapshot.batches {
        let state = match batch.state {
            // Locks do not outlive their leader.
            DeliveryState::Acquired => DeliveryState::Available,
            state => state,
        };
        out.i64(batch.first_offset);
        out.i64(batch.last_offset);
        out.i8(state.id());
        out.i16(i16::try_from(batch.delivery_count).unwrap_or(i16::MAX));
        out.tagged_fields(&[]);
    }
    out.tagged_fields(&[]);
    Ok(out.finish())
}

/// Decodes a snapshot, checking every length before using it.
pub fn decode_value(bytes: &[u8]) -> Result<ShareSnapshot, StateRecordError> {
    let mut r = SchemaReader::new(bytes, false);
    let version = r.i16("version")?;
    if version != SNAPSHOT_VALUE_VERSION {
        return Err(StateRecordError::UnknownVersion { version });
    }
    r.set_flexible(true);
    let snapshot_epoch = r.i32("snapshot epoch")?;
    let state_epoch = r.i32("state epoch")?;
    let leader_epoch = r.i32("leader epoch")?;
    let start_offset = r.i64("start offset")?;
    let create_timestamp_ms = r.i64("create timestamp")?;
    let write_timestamp_ms = r.i64("write timestamp")?;
    let count = r.array_len("state batches")?;
    let mut batches = Vec::with_capacity(count);
    for _ in 0..count {
        let first_offset = r.i64("first offset")?;
        let last_offset = r.i64("last offset")?;
        let state = match r.i8("delivery state")? {
            // Kafka never persists ACQUIRED; read it as available.
            0 | 1 => DeliveryState::Available,
            2 => DeliveryState::Acknowledged,
            4 => DeliveryState::Archived,
            state => return Err(StateRecordError::UnknownDeliveryState { state }),
        };
        let delivery_count = u16::try_from(r.i16("delivery count")?.max(0)).unwrap_or(0);
        r.skip_tagged_fields()?;
        if last_offset < first_offset {
            return Err(StateRecordError::BatchEndsBeforeStart {
                first_offset,
                last_offset,
            });
        }
        batches.push(StateBatch {
            first_offset,
            last_offset,
            state,
            delivery_count,
        });
    }
    r.skip_tagged_fields()?;
    r.finish("ShareSnapshotValue", version)?;
    Ok(ShareSnapshot {
        snapshot_epoch,
        state_epoch,
        leader_epoch,
        start_offset,
        create_timestamp_ms,
        write_timestamp_ms,
        batches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> ShareSnapshot {
        ShareSnapshot {
            snapshot_epoch: 3,
            state_epoch: 1,
            leader_epoch: 7,
            start_offset: 40,
            create_timestamp_ms: 1_000,
            write_timestamp_ms: 2_000,
            batches: vec![
                StateBatch {
                    first_offset: 40,
                    last_offset: 41,
                    state: DeliveryState::Acknowledged,
                    delivery_count: 1,
                },
                StateBatch {
                    first_offset: 42,
                    last_offset: 42,
                    state: DeliveryState::Available,
                    delivery_count: 2,
                },
            ],
        }
    }

    #[test]
    fn keys_and_snapshots_read_back_as_written() {
        let key = ShareStateKey {
            group: "workers".into(),
            topic_id: [9; 16],
            partition: 4,
        };
        assert_eq!(decode_key(&encode_key(&key).unwrap()), Ok(Some(key)));
        assert_eq!(
            decode_value(&encode_value(&snapshot()).unwrap()),
            Ok(snapshot())
        );
    }

    #[test]
    fn acquired_records_are_stored_as_available() {
        let mut held = snapshot();
        held.batches[1].state = DeliveryState::Acquired;
        assert_eq!(decode_value(&encode_value(&held).unwrap()), Ok(snapshot()));
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let value = encode_value(&snapshot()).unwrap();
        for cut in 0..value.len() {
            assert!(decode_value(&value[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = value[..2 + 4 * 3 + 8 * 3].to_vec();
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decode_value(&huge).is_err());
        assert!(decode_key(&[0, 0, 0x7f, 0xff]).is_err());
        // Kafka's ShareUpdate records are not Rill's: skipped, not errors.
        assert_eq!(decode_key(&[0, 1, 0, 0]), Ok(None));
    }

    #[test]
    fn the_coordinator_key_names_the_topic_id_as_kafka_prints_it() {
        // Kafka's Uuid.toString of 0x00..01 is "AAAAAAAAAAAAAAAAAAAAAQ".
        let mut topic_id = [0u8; 16];
        topic_id[15] = 1;
        let key = ShareStateKey {
            group: "g".into(),
            topic_id,
            partition: 2,
        };
        assert_eq!(key.coordinator_key(), "g:AAAAAAAAAAAAAAAAAAAAAQ:2");
    }
}
