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
//!
//! Rill's dead letters (KIP-1191) add tagged fields Kafka's readers skip:
//! in a state batch of archiving records, tag 10000 (i8: 0 rejected, 1
//! out of deliveries) and tag 10001 (i32: the dead-letter sequence of its
//! first offset); in the value, tag 10000 (i64 producer id · i32 next
//! sequence), the share-partition's dead-letter producer.

use base64::Engine;
use rill_record::{SchemaReader, SchemaWriter};

use crate::dead_letters::{DeadLetterMark, DeadLetterProducer};
use crate::error::StateRecordError;
use crate::partition::{ArchiveReason, DeliveryState, StateBatch};

/// The compacted topic that holds share-partition state.
pub const SHARE_STATE_TOPIC: &str = "__share_group_state";
/// ShareSnapshotKey's record type.
const SNAPSHOT_KEY_TYPE: i16 = 0;
/// ShareSnapshotValue's version.
const SNAPSHOT_VALUE_VERSION: i16 = 0;
/// Rill's tags (see the module doc).
const TAG_REASON: u32 = 10_000;
const TAG_SEQUENCE: u32 = 10_001;
const TAG_PRODUCER: u32 = 10_000;

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
    /// Who writes the share-partition's dead letters.
    pub dead_letter_producer: Option<DeadLetterProducer>,
}

/// A state batch's tagged fields: its dead-letter mark.
pub fn batch_tagged_fields(batch: &StateBatch) -> Vec<(u32, Vec<u8>)> {
    let Some(mark) = batch
        .dead_letter
        .filter(|_| batch.state == DeliveryState::Archiving)
    else {
        return Vec::new();
    };
    let reason: i8 = match mark.reason {
        ArchiveReason::Rejected => 0,
        ArchiveReason::DeliveryLimit => 1,
    };
    let mut fields = vec![(TAG_REASON, reason.to_be_bytes().to_vec())];
    if let Some(sequence) = mark.sequence {
        fields.push((TAG_SEQUENCE, sequence.to_be_bytes().to_vec()));
    }
    fields
}

/// Reads one tagged field of a state batch into `batch`; unknown tags
/// are skipped.
pub fn read_batch_tag(batch: &mut StateBatch, tag: u32, bytes: &[u8]) {
    let mark = batch.dead_letter.get_or_insert(DeadLetterMark {
        reason: ArchiveReason::Rejected,
        sequence: None,
    });
    match (tag, bytes) {
        (TAG_REASON, [1]) => mark.reason = ArchiveReason::DeliveryLimit,
        (TAG_SEQUENCE, &[a, b, c, d]) => mark.sequence = Some(i32::from_be_bytes([a, b, c, d])),
        _ => {}
    }
    if batch.state != DeliveryState::Archiving {
        batch.dead_letter = None;
    }
}

/// A snapshot's tagged fields: its dead-letter producer.
pub fn snapshot_tagged_fields(producer: Option<DeadLetterProducer>) -> Vec<(u32, Vec<u8>)> {
    producer
        .map(|p| {
            let mut bytes = p.producer_id.to_be_bytes().to_vec();
            bytes.extend_from_slice(&p.next_sequence.to_be_bytes());
            (TAG_PRODUCER, bytes)
        })
        .into_iter()
        .collect()
}

/// Reads one tagged field of a snapshot: its dead-letter producer, if
/// that is what it is.
pub fn read_snapshot_tag(tag: u32, bytes: &[u8]) -> Option<DeadLetterProducer> {
    if tag != TAG_PRODUCER || bytes.len() != 12 {
        return None;
    }
    let (id, sequence) = bytes.split_at(8);
    Some(DeadLetterProducer {
        producer_id: i64::from_be_bytes(id.try_into().ok()?),
        next_sequence: i32::from_be_bytes(sequence.try_into().ok()?),
    })
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
        out.tagged_fields(&batch_tagged_fields(batch));
    }
    out.tagged_fields(&snapshot_tagged_fields(snapshot.dead_letter_producer));
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
        let id = r.i8("delivery state")?;
        // Kafka never persists ACQUIRED; it reads as available.
        let state = DeliveryState::from_persisted(id)
            .ok_or(StateRecordError::UnknownDeliveryState { state: id })?;
        let delivery_count = u16::try_from(r.i16("delivery count")?.max(0)).unwrap_or(0);
        let mut batch = StateBatch {
            first_offset,
            last_offset,
            state,
            delivery_count,
            dead_letter: None,
        };
        r.tagged_fields(|tag, bytes| {
            read_batch_tag(&mut batch, tag, bytes);
            Ok(())
        })?;
        if last_offset < first_offset {
            return Err(StateRecordError::BatchEndsBeforeStart {
                first_offset,
                last_offset,
            });
        }
        batches.push(batch);
    }
    let mut dead_letter_producer = None;
    r.tagged_fields(|tag, bytes| {
        dead_letter_producer = dead_letter_producer.or(read_snapshot_tag(tag, bytes));
        Ok(())
    })?;
    r.finish("ShareSnapshotValue", version)?;
    Ok(ShareSnapshot {
        snapshot_epoch,
        state_epoch,
        leader_epoch,
        start_offset,
        create_timestamp_ms,
        write_timestamp_ms,
        batches,
        dead_letter_producer,
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
                    dead_letter: None,
                },
                StateBatch {
                    first_offset: 42,
                    last_offset: 42,
                    state: DeliveryState::Available,
                    delivery_count: 2,
                    dead_letter: None,
                },
                StateBatch {
                    first_offset: 43,
                    last_offset: 44,
                    state: DeliveryState::Archiving,
                    delivery_count: 5,
                    dead_letter: Some(DeadLetterMark {
                        reason: ArchiveReason::DeliveryLimit,
                        sequence: Some(17),
                    }),
                },
            ],
            dead_letter_producer: Some(DeadLetterProducer {
                producer_id: 9_000,
                next_sequence: 19,
            }),
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
