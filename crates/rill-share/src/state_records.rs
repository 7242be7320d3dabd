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

use crate::error::StateRecordError;
use crate::partition::{DeliveryState, StateBatch};

/// The compacted topic that holds share-partition state.
pub const SHARE_STATE_TOPIC: &str = "__share_group_state";
/// ShareSnapshotKey's record type.
const SNAPSHOT_KEY_TYPE: i16 = 0;
/// ShareSnapshotValue's version.
const SNAPSHOT_VALUE_VERSION: i16 = 0;
/// The most state batches one snapshot may hold when read back: more than
/// `group.share.partition.max.record.locks` can ever make.
const STATE_BATCHES_MAX: usize = 1 << 20;

/// Which share-partition a record is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareStateKey {
    pub group: String,
    pub topic_id: [u8; 16],
    pub partition: i32,
}

impl ShareStateKey {
    /// Kafka's coordinator key (`SharePartitionKey.asCoordinatorKey`):
    /// `group:topicId:partition`, the topic id in Kafka's URL-safe base64.
    /// Its Java hash picks the partition of [`SHARE_STATE_TOPIC`].
    pub fn coordinator_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.group,
            base64_url(&self.topic_id),
            self.partition
        )
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
    let group = key.group.as_bytes();
    let length = i16::try_from(group.len()).map_err(|_| StateRecordError::TooLong {
        what: "group id",
        bytes: group.len(),
    })?;
    let mut out = Vec::with_capacity(2 + 2 + group.len() + 16 + 4);
    out.extend_from_slice(&SNAPSHOT_KEY_TYPE.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(group);
    out.extend_from_slice(&key.topic_id);
    out.extend_from_slice(&key.partition.to_be_bytes());
    Ok(out)
}

/// Decodes a key; `Ok(None)` for a record type other than a snapshot
/// (Kafka's ShareUpdate records, which Rill does not write).
pub fn decode_key(bytes: &[u8]) -> Result<Option<ShareStateKey>, StateRecordError> {
    let mut r = Reader::new(bytes);
    if r.i16()? != SNAPSHOT_KEY_TYPE {
        return Ok(None);
    }
    let length = usize::try_from(r.i16()?).map_err(|_| StateRecordError::Malformed {
        at: r.at,
        expected: "a group id length",
    })?;
    let group =
        String::from_utf8(r.take(length)?.to_vec()).map_err(|_| StateRecordError::Malformed {
            at: r.at,
            expected: "a UTF-8 group id",
        })?;
    let mut topic_id = [0u8; 16];
    topic_id.copy_from_slice(r.take(16)?);
    let partition = r.i32()?;
    r.end()?;
    Ok(Some(ShareStateKey {
        group,
        topic_id,
        partition,
    }))
}

/// Encodes a snapshot.
pub fn encode_value(snapshot: &ShareSnapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + snapshot.batches.len() * 20);
    out.extend_from_slice(&SNAPSHOT_VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&snapshot.snapshot_epoch.to_be_bytes());
    out.extend_from_slice(&snapshot.state_epoch.to_be_bytes());
    out.extend_from_slice(&snapshot.leader_epoch.to_be_bytes());
    out.extend_from_slice(&snapshot.start_offset.to_be_bytes());
    out.extend_from_slice(&snapshot.create_timestamp_ms.to_be_bytes());
    out.extend_from_slice(&snapshot.write_timestamp_ms.to_be_bytes());
    put_uvarint(&mut out, snapshot.batches.len() as u64 + 1);
    for batch in &snapshot.batches {
        let state = match batch.state {
            // Locks do not outlive their leader.
            DeliveryState::Acquired => DeliveryState::Available,
            state => state,
        };
        out.extend_from_slice(&batch.first_offset.to_be_bytes());
        out.extend_from_slice(&batch.last_offset.to_be_bytes());
        out.push(state.id() as u8);
        let count = i16::try_from(batch.delivery_count).unwrap_or(i16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        put_uvarint(&mut out, 0);
    }
    put_uvarint(&mut out, 0);
    out
}

/// Decodes a snapshot, checking every length before using it.
pub fn decode_value(bytes: &[u8]) -> Result<ShareSnapshot, StateRecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if version != SNAPSHOT_VALUE_VERSION {
        return Err(StateRecordError::UnknownVersion { version });
    }
    let snapshot_epoch = r.i32()?;
    let state_epoch = r.i32()?;
    let leader_epoch = r.i32()?;
    let start_offset = r.i64()?;
    let create_timestamp_ms = r.i64()?;
    let write_timestamp_ms = r.i64()?;
    let count = r
        .uvarint()?
        .checked_sub(1)
        .ok_or(StateRecordError::Malformed {
            at: r.at,
            expected: "state batches, not null",
        })?;
    let count = usize::try_from(count)
        .ok()
        .filter(|c| *c <= STATE_BATCHES_MAX)
        .ok_or(StateRecordError::Malformed {
            at: r.at,
            expected: "at most a million state batches",
        })?;
    let mut batches = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let first_offset = r.i64()?;
        let last_offset = r.i64()?;
        let state = match r.i8()? {
            0 => DeliveryState::Available,
            2 => DeliveryState::Acknowledged,
            4 => DeliveryState::Archived,
            // Kafka never persists ACQUIRED; read it as available.
            1 => DeliveryState::Available,
            _ => {
                return Err(StateRecordError::Malformed {
                    at: r.at,
                    expected: "a delivery state of 0, 2 or 4",
                });
            }
        };
        let delivery_count = u16::try_from(r.i16()?.max(0)).unwrap_or(0);
        r.skip_tagged_fields()?;
        if last_offset < first_offset {
            return Err(StateRecordError::Malformed {
                at: r.at,
                expected: "a state batch whose last offset is not below its first",
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
    r.end()?;
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

/// Kafka's `Uuid.toString`: URL-safe base64 without padding.
fn base64_url(bytes: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

fn put_uvarint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A bounds-checked reader of big-endian fields.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StateRecordError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or(StateRecordError::Truncated {
                at: self.at,
                wanted: n,
                length: self.bytes.len(),
            })?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StateRecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i8(&mut self) -> Result<i8, StateRecordError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    fn i16(&mut self) -> Result<i16, StateRecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, StateRecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, StateRecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn uvarint(&mut self) -> Result<u64, StateRecordError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(StateRecordError::Malformed {
            at: self.at,
            expected: "a varint of at most 10 bytes",
        })
    }

    fn skip_tagged_fields(&mut self) -> Result<(), StateRecordError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).unwrap_or(usize::MAX);
            self.take(size)?;
        }
        Ok(())
    }

    fn end(&self) -> Result<(), StateRecordError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(StateRecordError::Malformed {
                at: self.at,
                expected: "the end of the record",
            })
        }
    }
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
        assert_eq!(decode_value(&encode_value(&snapshot())), Ok(snapshot()));
    }

    #[test]
    fn acquired_records_are_stored_as_available() {
        let mut held = snapshot();
        held.batches[1].state = DeliveryState::Acquired;
        assert_eq!(decode_value(&encode_value(&held)), Ok(snapshot()));
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let value = encode_value(&snapshot());
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
