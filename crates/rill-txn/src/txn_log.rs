//! The records of Kafka's internal topic `__transaction_state`, byte for
//! byte as Kafka writes them, so that Kafka's tools read Rill's topic and
//! Rill loads a topic that Kafka wrote.
//!
//! Every record is keyed by a transactional id; the latest value wins and a
//! null value (tombstone) removes the id:
//!
//! ```text
//! key    int16 version (0)  TransactionalId: string
//! value  int16 version (0 classic, 1 flexible)
//!        ProducerId                      int64
//!        ProducerEpoch                   int16
//!        TransactionTimeoutMs            int32
//!        TransactionStatus               int8    (TxnState::id)
//!        TransactionPartitions           nullable [ Topic: string, PartitionIds: [int32] ]
//!        TransactionLastUpdateTimestampMs int64
//!        TransactionStartTimestampMs     int64
//!        v1 tagged fields: 0 PreviousProducerId int64 (-1), 1 NextProducerId int64 (-1),
//!                          2 ClientTransactionVersion int16 (0)
//! ```
//!
//! Version 1 writes strings and arrays with unsigned-varint lengths plus
//! one and closes every struct with a tagged-field section; a tagged field
//! is written only when it differs from its default. Kafka writes value
//! version 1 once `transaction.version` is 1 or more (Kafka 4.0), version 0
//! before; Rill writes version 1 and reads both. TransactionPartitions is
//! null exactly when the state is Empty.
//!
//! Decoding reads untrusted bytes from disk: every length is checked
//! against the bytes that remain before anything is allocated, and bad
//! input is a typed error, never a panic.

use std::collections::BTreeSet;

use crate::state::TxnState;
use bytes::Bytes;
#[cfg(test)]
use rill_record::NewRecord;
use rill_record::{
    BatchBuilder, BatchError, KeyedBatchError, KeyedBatchItem, KeyedRecord, SchemaDecodeError,
    SchemaEncodeError, SchemaReader as Reader, SchemaWriter as Writer, coordinator_partition,
    keyed_batch, read_keyed_batches, tagged_i16, tagged_i64,
};

/// The internal topic of transaction state.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";
/// `transaction.state.log.num.partitions` (Kafka default 50).
pub const TRANSACTION_STATE_LOG_NUM_PARTITIONS_DEFAULT: i32 = 50;
/// `transaction.state.log.replication.factor` (Kafka default 3).
pub const TRANSACTION_STATE_LOG_REPLICATION_FACTOR_DEFAULT: i16 = 3;
/// `transaction.state.log.min.isr` (Kafka default 2).
pub const TRANSACTION_STATE_LOG_MIN_ISR_DEFAULT: i32 = 2;
/// `transaction.state.log.segment.bytes` (Kafka default 100 MiB).
pub const TRANSACTION_STATE_LOG_SEGMENT_BYTES_DEFAULT: i32 = 104_857_600;
/// The only key version Kafka defines.
pub const TXN_LOG_KEY_VERSION: i16 = 0;
/// The value version Rill writes: Kafka's at transaction.version 1+.
pub const TXN_LOG_VALUE_VERSION: i16 = 1;
/// The newest value version Kafka defines.
pub const TXN_LOG_VALUE_VERSION_MAX: i16 = 1;
pub use rill_record::STRING_BYTES_MAX;

/// "No producer id" in the tagged fields.
const NO_PRODUCER_ID: i64 = -1;
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

/// A topic partition in a transaction: (topic, partition).
pub type TopicPartition = (String, i32);

/// Why a key or value of `__transaction_state` could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnLogDecodeError {
    /// A field does not fit its schema (truncated, bad length, a tagged
    /// field of the wrong size, ...).
    #[error(transparent)]
    Schema(#[from] SchemaDecodeError),
    /// A key version other than 0; loaders skip such records, as Kafka does.
    #[error("key version {version} is not a transaction log key (0)")]
    UnknownKeyVersion { version: i16 },
    #[error("TransactionLogValue version {version} is not one Kafka defines (0..={max})")]
    UnsupportedValueVersion { version: i16, max: i16 },
    #[error("TransactionStatus {id} is not a transaction state (0..=7)")]
    UnknownState { id: i8 },
}

/// Why a record could not be encoded in Kafka's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnLogEncodeError {
    /// A field is longer than its schema can carry.
    #[error(transparent)]
    Schema(#[from] SchemaEncodeError),
    #[error("TransactionLogValue has no version {version}; Kafka defines 0..={max}")]
    UnsupportedVersion { version: i16, max: i16 },
    #[error("an Empty transaction must have no partitions, found {count}")]
    PartitionsInEmptyState { count: usize },
}

/// One transactional id's state as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    /// v1 tag 0 (KIP-360's last producer id); -1 when none.
    pub previous_producer_id: i64,
    /// v1 tag 1 (KIP-890 part 2; Rill does not use it); -1 when none.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub transaction_timeout_ms: i32,
    pub state: TxnState,
    /// Empty when the state is Empty (stored as null).
    pub partitions: BTreeSet<TopicPartition>,
    pub last_update_timestamp_ms: i64,
    /// -1 when no transaction has started.
    pub start_timestamp_ms: i64,
    /// v1 tag 2: the client's transaction version (0 for clients of
    /// transaction version 1, which is all Rill serves).
    pub client_transaction_version: i16,
}

/// A record of `__transaction_state`: a transactional id and its value,
/// `None` for a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogRecord {
    pub transactional_id: String,
    pub value: Option<TxnLogValue>,
}

/// Encodes a key at [`TXN_LOG_KEY_VERSION`].
pub fn encode_key(transactional_id: &str) -> Result<Bytes, TxnLogEncodeError> {
    let mut out = Writer::new(TXN_LOG_KEY_VERSION, false);
    out.string("TransactionalId", transactional_id)?;
    Ok(Bytes::from(out.finish()))
}

/// Decodes a key: the transactional id.
pub fn decode_key(buf: &[u8]) -> Result<String, TxnLogDecodeError> {
    let mut reader = Reader::new(buf, false);
    let version = reader.i16("key version")?;
    if version != TXN_LOG_KEY_VERSION {
        return Err(TxnLogDecodeError::UnknownKeyVersion { version });
    }
    let transactional_id = reader.string("TransactionalId")?;
    reader.finish("TransactionLogKey", version)?;
    Ok(transactional_id)
}

impl TxnLogValue {
    const RECORD: &'static str = "TransactionLogValue";

    /// Encodes at [`TXN_LOG_VALUE_VERSION`].
    pub fn encode(&self) -> Result<Bytes, TxnLogEncodeError> {
        self.encode_version(TXN_LOG_VALUE_VERSION)
    }

    /// Encodes at `version` (0 or 1). Version 0 drops the tagged fields.
    pub fn encode_version(&self, version: i16) -> Result<Bytes, TxnLogEncodeError> {
        if !(0..=TXN_LOG_VALUE_VERSION_MAX).contains(&version) {
            return Err(TxnLogEncodeError::UnsupportedVersion {
                version,
                max: TXN_LOG_VALUE_VERSION_MAX,
            });
        }
        if self.state == TxnState::Empty && !self.partitions.is_empty() {
            return Err(TxnLogEncodeError::PartitionsInEmptyState {
                count: self.partitions.len(),
            });
        }
        let flexible = version >= 1;
        let mut out = Writer::new(version, flexible);
        out.i64(self.producer_id);
        out.i16(self.producer_epoch);
        out.i32(self.transaction_timeout_ms);
        out.i8(self.state.id());
        if self.state == TxnState::Empty {
            out.null_array();
        } else {
            let topics = group_by_topic(&self.partitions);
            out.array_len("TransactionPartitions", topics.len())?;
            for (topic, partitions) in topics {
                out.string("Topic", topic)?;
                out.array_len("PartitionIds", partitions.len())?;
                for partition in partitions {
                    out.i32(partition);
                }
                out.tagged_fields(&[]);
            }
        }
        out.i64(self.last_update_timestamp_ms);
        out.i64(self.start_timestamp_ms);
        let mut tagged = Vec::new();
        if self.previous_producer_id != NO_PRODUCER_ID {
            tagged.push((
                TAG_PREVIOUS_PRODUCER_ID,
                self.previous_producer_id.to_be_bytes().to_vec(),
            ));
        }
        if self.next_producer_id != NO_PRODUCER_ID {
            tagged.push((
                TAG_NEXT_PRODUCER_ID,
                self.next_producer_id.to_be_bytes().to_vec(),
            ));
        }
        if self.client_transaction_version != 0 {
            tagged.push((
                TAG_CLIENT_TRANSACTION_VERSION,
                self.client_transaction_version.to_be_bytes().to_vec(),
            ));
        }
        out.tagged_fields(&tagged);
        Ok(Bytes::from(out.finish()))
    }

    /// Decodes a value of version 0 or 1.
    pub fn decode(buf: &[u8]) -> Result<TxnLogValue, TxnLogDecodeError> {
        let mut reader = Reader::new(buf, false);
        let version = reader.i16("value version")?;
        if !(0..=TXN_LOG_VALUE_VERSION_MAX).contains(&version) {
            return Err(TxnLogDecodeError::UnsupportedValueVersion {
                version,
                max: TXN_LOG_VALUE_VERSION_MAX,
            });
        }
        reader.set_flexible(version >= 1);
        let producer_id = reader.i64("ProducerId")?;
        let producer_epoch = reader.i16("ProducerEpoch")?;
        let transaction_timeout_ms = reader.i32("TransactionTimeoutMs")?;
        let id = reader.i8("TransactionStatus")?;
        let state = TxnState::from_id(id).ok_or(TxnLogDecodeError::UnknownState { id })?;
        let mut partitions = BTreeSet::new();
        if let Some(topics) = reader.nullable_array_len("TransactionPartitions")? {
            for _ in 0..topics {
                let topic = reader.string("Topic")?;
                let count = reader.array_len("PartitionIds")?;
                for _ in 0..count {
                    let partition = reader.i32("PartitionIds")?;
                    // Kafka ignores the partitions of an Empty transaction.
                    if state != TxnState::Empty {
                        partitions.insert((topic.clone(), partition));
                    }
                }
                reader.tagged_fields(skip_unknown_tag)?;
            }
        }
        let last_update_timestamp_ms = reader.i64("TransactionLastUpdateTimestampMs")?;
        let start_timestamp_ms = reader.i64("TransactionStartTimestampMs")?;
        let mut value = TxnLogValue {
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch,
            transaction_timeout_ms,
            state,
            partitions,
            last_update_timestamp_ms,
            start_timestamp_ms,
            client_transaction_version: 0,
        };
        reader.tagged_fields(|tag, bytes| {
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => value.previous_producer_id = tagged_i64(tag, bytes)?,
                TAG_NEXT_PRODUCER_ID => value.next_producer_id = tagged_i64(tag, bytes)?,
                TAG_CLIENT_TRANSACTION_VERSION => {
                    value.client_transaction_version = tagged_i16(tag, bytes)?
                }
                _ => skip_unknown_tag(tag, bytes)?,
            }
            Ok(())
        })?;
        reader.finish(Self::RECORD, version)?;
        Ok(value)
    }
}

/// An unknown tag is skipped, as Kafka keeps it unread.
fn skip_unknown_tag(tag: u32, bytes: &[u8]) -> Result<(), SchemaDecodeError> {
    tracing::debug!(tag, size = bytes.len(), "skipping unknown tagged field");
    Ok(())
}

/// The partitions grouped by topic, topics and partitions in order.
pub(crate) fn group_by_topic(partitions: &BTreeSet<TopicPartition>) -> Vec<(&str, Vec<i32>)> {
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in partitions {
        match topics.last_mut() {
            Some((last, ids)) if *last == topic.as_str() => ids.push(*partition),
            _ => topics.push((topic.as_str(), vec![*partition])),
        }
    }
    topics
}

impl TxnLogRecord {
    /// The record's key and value (`None`: tombstone) at the versions Rill
    /// writes.
    pub fn encode(&self) -> Result<(Bytes, Option<Bytes>), TxnLogEncodeError> {
        Ok((
            encode_key(&self.transactional_id)?,
            self.value.as_ref().map(TxnLogValue::encode).transpose()?,
        ))
    }

    /// Decodes a key and value of any version Kafka may have written.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<TxnLogRecord, TxnLogDecodeError> {
        Ok(TxnLogRecord {
            transactional_id: decode_key(key)?,
            value: value.map(TxnLogValue::decode).transpose()?,
        })
    }
}

/// Kafka's `Utils.abs(transactionalId.hashCode) % transaction.state.log.num.partitions`:
/// the partition of `__transaction_state` that holds `transactional_id`,
/// and so its coordinator. `hashCode` is Java's `String.hashCode` over
/// UTF-16 code units; `Utils.abs` maps `i32::MIN` to 0.
///
/// `partitions` must be positive (the config is validated at startup;
/// anything else is a bug).
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "transaction.state.log.num.partitions must be positive, is {partitions}"
    );
    coordinator_partition(transactional_id, partitions)
}

/// One record of `__transaction_state` read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedTxnRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub record: TxnLogRecord,
}

/// The records found in a buffer of whole batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedTxnBatches {
    /// Records in log order; later ones supersede earlier ones.
    pub records: Vec<LoadedTxnRecord>,
    /// Records with a key version other than 0, skipped.
    pub skipped_unknown: usize,
    /// Bytes of whole batches read: where the next read should start. A
    /// partial batch at the end is not counted.
    pub bytes_read: usize,
}

/// Why a buffer of `__transaction_state` batches could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TxnLogBatchError {
    /// The batches themselves are unreadable (framing, compression, a
    /// record without a key).
    #[error(transparent)]
    Batches(#[from] KeyedBatchError),
    #[error("record at offset {offset}: {error}")]
    Record {
        offset: i64,
        error: TxnLogDecodeError,
    },
}

/// One uncompressed v2 batch of `records` (key, value; `None` is a
/// tombstone), every record timestamped `timestamp_ms`, ready for the
/// broker to stamp offsets and append (acks=all: Kafka's
/// `TransactionLog.EnforcedRequiredAcks`). `None` when `records` is empty.
pub fn batch(
    records: &[(Bytes, Option<Bytes>)],
    timestamp_ms: i64,
) -> Result<Option<Vec<u8>>, BatchError> {
    keyed_batch(BatchBuilder::new(timestamp_ms), records)
}

/// Decodes the records of the whole batches at the start of `buf` (as a
/// segment read returns them). Control batches are skipped, as are records
/// of unknown key versions. Compressed batches expand into at most
/// `records_bytes_max` bytes each. CRCs are not checked here: the log
/// verified them on append and on recovery.
pub fn read_batches(
    buf: &[u8],
    records_bytes_max: usize,
) -> Result<LoadedTxnBatches, TxnLogBatchError> {
    let mut loaded = LoadedTxnBatches {
        records: Vec::new(),
        skipped_unknown: 0,
        bytes_read: 0,
    };
    loaded.bytes_read =
        read_keyed_batches(buf, records_bytes_max, TXN_STATE_TOPIC, |item| match item {
            KeyedBatchItem::Control { .. } => Ok(()),
            KeyedBatchItem::Record { record, .. } => loaded.load_record(record),
        })?;
    Ok(loaded)
}

impl LoadedTxnBatches {
    fn load_record(&mut self, record: KeyedRecord<'_>) -> Result<(), TxnLogBatchError> {
        let offset = record.offset;
        match TxnLogRecord::decode(record.key, record.value) {
            Ok(decoded) => self.records.push(LoadedTxnRecord {
                offset,
                timestamp_ms: record.timestamp_ms,
                record: decoded,
            }),
            Err(TxnLogDecodeError::UnknownKeyVersion { version }) => {
                tracing::warn!(
                    offset,
                    version,
                    "skipping __transaction_state record of unknown key version"
                );
                self.skipped_unknown += 1;
            }
            Err(error) => return Err(TxnLogBatchError::Record { offset, error }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ongoing_value() -> TxnLogValue {
        TxnLogValue {
            producer_id: 1_000,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: 3,
            transaction_timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [
                ("a".to_owned(), 1),
                ("a".to_owned(), 0),
                ("b".to_owned(), 7),
            ]
            .into_iter()
            .collect(),
            last_update_timestamp_ms: 1_700_000_000_123,
            start_timestamp_ms: 1_700_000_000_100,
            client_transaction_version: 0,
        }
    }

    /// The value Kafka writes for `ongoing_value` at version 0, by hand.
    fn ongoing_v0_bytes() -> Vec<u8> {
        let mut b = vec![0x00, 0x00];
        b.extend_from_slice(&1_000i64.to_be_bytes());
        b.extend_from_slice(&3i16.to_be_bytes());
        b.extend_from_slice(&60_000i32.to_be_bytes());
        b.push(1);
        b.extend_from_slice(&2i32.to_be_bytes()); // two topics
        b.extend_from_slice(&[0x00, 0x01, b'a']);
        b.extend_from_slice(&2i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&[0x00, 0x01, b'b']);
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&7i32.to_be_bytes());
        b.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
        b.extend_from_slice(&1_700_000_000_100i64.to_be_bytes());
        b
    }

    /// The same at version 1 (flexible), with no tagged fields.
    fn ongoing_v1_bytes() -> Vec<u8> {
        let mut b = vec![0x00, 0x01];
        b.extend_from_slice(&1_000i64.to_be_bytes());
        b.extend_from_slice(&3i16.to_be_bytes());
        b.extend_from_slice(&60_000i32.to_be_bytes());
        b.push(1);
        b.push(3); // two topics, compact
        b.extend_from_slice(&[0x02, b'a']);
        b.push(3);
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.push(0); // topic's tagged fields
        b.extend_from_slice(&[0x02, b'b']);
        b.push(2);
        b.extend_from_slice(&7i32.to_be_bytes());
        b.push(0);
        b.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
        b.extend_from_slice(&1_700_000_000_100i64.to_be_bytes());
        b.push(0); // value's tagged fields
        b
    }

    #[test]
    fn values_match_kafkas_bytes_in_both_versions() {
        let value = ongoing_value();
        assert_eq!(
            value.encode_version(0).unwrap().to_vec(),
            ongoing_v0_bytes()
        );
        assert_eq!(value.encode().unwrap().to_vec(), ongoing_v1_bytes());
        assert_eq!(TxnLogValue::decode(&ongoing_v0_bytes()).unwrap(), value);
        assert_eq!(TxnLogValue::decode(&ongoing_v1_bytes()).unwrap(), value);
    }

    #[test]
    fn tagged_fields_round_trip_in_v1_and_drop_in_v0() {
        let value = TxnLogValue {
            previous_producer_id: 999,
            next_producer_id: 1_001,
            client_transaction_version: 2,
            ..ongoing_value()
        };
        let v1 = value.encode().unwrap();
        assert_eq!(TxnLogValue::decode(&v1).unwrap(), value);
        let v0 = value.encode_version(0).unwrap();
        assert_eq!(TxnLogValue::decode(&v0).unwrap(), ongoing_value());
        // An unknown tag is skipped.
        let mut unknown = ongoing_v1_bytes();
        unknown.pop();
        unknown.extend_from_slice(&[0x01, 0x09, 0x02, 0xab, 0xcd]);
        assert_eq!(TxnLogValue::decode(&unknown).unwrap(), ongoing_value());
        // A known tag of the wrong size is an error.
        let mut bad = ongoing_v1_bytes();
        bad.pop();
        bad.extend_from_slice(&[0x01, 0x00, 0x01, 0xff]);
        assert_eq!(
            TxnLogValue::decode(&bad),
            Err(TxnLogDecodeError::Schema(
                SchemaDecodeError::TaggedFieldSize {
                    tag: 0,
                    size: 1,
                    expected: 8
                }
            ))
        );
    }

    #[test]
    fn empty_state_stores_null_partitions() {
        let value = TxnLogValue {
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_timestamp_ms: -1,
            ..ongoing_value()
        };
        let v0 = value.encode_version(0).unwrap();
        // int16 version, int64, int16, int32, int8, then the null array.
        assert_eq!(&v0[17..21], &(-1i32).to_be_bytes());
        assert_eq!(TxnLogValue::decode(&v0).unwrap(), value);
        let v1 = value.encode().unwrap();
        assert_eq!(v1[17], 0);
        assert_eq!(TxnLogValue::decode(&v1).unwrap(), value);
        let with_partitions = TxnLogValue {
            state: TxnState::Empty,
            ..ongoing_value()
        };
        assert_eq!(
            with_partitions.encode(),
            Err(TxnLogEncodeError::PartitionsInEmptyState { count: 3 })
        );
    }

    #[test]
    fn records_round_trip_with_tombstones() {
        for record in [
            TxnLogRecord {
                transactional_id: "tx-1".to_owned(),
                value: Some(ongoing_value()),
            },
            TxnLogRecord {
                transactional_id: "tx-1".to_owned(),
                value: None,
            },
        ] {
            let (key, value) = record.encode().unwrap();
            assert_eq!(&key[..], b"\x00\x00\x00\x04tx-1");
            assert_eq!(value.is_none(), record.value.is_none());
            assert_eq!(
                TxnLogRecord::decode(&key, value.as_deref()).unwrap(),
                record
            );
        }
    }

    #[test]
    fn malformed_bytes_are_typed_errors() {
        assert_eq!(
            decode_key(b"\x00\x01\x00\x01x"),
            Err(TxnLogDecodeError::UnknownKeyVersion { version: 1 })
        );
        assert_eq!(
            decode_key(b"\x00\x00\xff\xff"),
            Err(TxnLogDecodeError::Schema(
                SchemaDecodeError::UnexpectedNull {
                    field: "TransactionalId"
                }
            ))
        );
        assert_eq!(
            decode_key(b"\x00\x00\x00\x02\xff\xfe"),
            Err(TxnLogDecodeError::Schema(SchemaDecodeError::InvalidUtf8 {
                field: "TransactionalId"
            }))
        );
        let mut bad_version = ongoing_v0_bytes();
        bad_version[1] = 2;
        assert_eq!(
            TxnLogValue::decode(&bad_version),
            Err(TxnLogDecodeError::UnsupportedValueVersion { version: 2, max: 1 })
        );
        let mut bad_state = ongoing_v0_bytes();
        bad_state[16] = 9;
        assert_eq!(
            TxnLogValue::decode(&bad_state),
            Err(TxnLogDecodeError::UnknownState { id: 9 })
        );
        let mut huge = ongoing_v0_bytes();
        huge[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            TxnLogValue::decode(&huge),
            Err(TxnLogDecodeError::Schema(
                SchemaDecodeError::InvalidLength {
                    field: "TransactionPartitions",
                    ..
                }
            ))
        ));
        for bytes in [ongoing_v0_bytes(), ongoing_v1_bytes()] {
            for cut in 0..bytes.len() {
                assert!(TxnLogValue::decode(&bytes[..cut]).is_err(), "prefix {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(matches!(
                TxnLogValue::decode(&longer),
                Err(TxnLogDecodeError::Schema(
                    SchemaDecodeError::TrailingBytes { .. }
                ))
            ));
        }
        let long_id = "x".repeat(STRING_BYTES_MAX + 1);
        assert!(matches!(
            encode_key(&long_id),
            Err(TxnLogEncodeError::Schema(SchemaEncodeError::TooLong { .. }))
        ));
    }

    #[test]
    fn partition_for_matches_kafka() {
        // "group".hashCode() == 98629247 in Java.
        assert_eq!(partition_for("group", 50), 98_629_247 % 50);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs -> 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // A non-BMP character hashes as its two UTF-16 surrogates.
        assert_eq!(partition_for("😀", i32::MAX), 0xD83D * 31 + 0xDE00);
        for id in ["", "a", "my-transactional-id", "é"] {
            assert!((0..50).contains(&partition_for(id, 50)));
        }
    }

    #[test]
    fn batch_round_trips_through_read_batches() {
        let records = [
            TxnLogRecord {
                transactional_id: "a".to_owned(),
                value: Some(ongoing_value()),
            },
            TxnLogRecord {
                transactional_id: "b".to_owned(),
                value: None,
            },
        ];
        let pairs: Vec<_> = records.iter().map(|r| r.encode().unwrap()).collect();
        let first = batch(&pairs, 5_000).unwrap().unwrap();
        let unknown = batch(&[(Bytes::from_static(b"\x00\x05\x00\x01a"), None)], 6_000)
            .unwrap()
            .unwrap();
        let mut buf = first.clone();
        buf.extend_from_slice(&unknown);
        let whole = buf.len();
        buf.extend_from_slice(&first[..20]);
        let loaded = read_batches(&buf, 1 << 20).unwrap();
        assert_eq!(loaded.bytes_read, whole);
        assert_eq!(loaded.skipped_unknown, 1);
        assert_eq!(loaded.records.len(), 2);
        assert_eq!(loaded.records[0].record, records[0]);
        assert_eq!(loaded.records[1].record, records[1]);
        assert_eq!(loaded.records[1].offset, 1);
        assert_eq!(loaded.records[0].timestamp_ms, 5_000);
        assert_eq!(batch(&[], 0), Ok(None));
    }

    #[test]
    fn read_batches_reports_garbage_and_bad_records() {
        let mut buf = batch(&[(encode_key("a").unwrap(), None)], 0)
            .unwrap()
            .unwrap();
        let first = buf.len();
        buf.extend_from_slice(&[0u8; 64]);
        assert!(matches!(
            read_batches(&buf, 1 << 20),
            Err(TxnLogBatchError::Batches(KeyedBatchError::InvalidBatch { position, .. })) if position == first
        ));
        let keyless = BatchBuilder::new(0)
            .with_records(&[NewRecord::value(b"v")])
            .finish()
            .unwrap();
        assert!(matches!(
            read_batches(&keyless, 1 << 20),
            Err(TxnLogBatchError::Batches(KeyedBatchError::MissingKey {
                offset: 0,
                ..
            }))
        ));
        let bad_value = batch(
            &[(
                encode_key("a").unwrap(),
                Some(Bytes::from_static(b"\x00\x00\x01")),
            )],
            0,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(
            read_batches(&bad_value, 1 << 20),
            Err(TxnLogBatchError::Record {
                offset: 0,
                error: TxnLogDecodeError::Schema(SchemaDecodeError::Truncated { .. })
            })
        ));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(key in proptest::collection::vec(any::<u8>(), 0..32),
                                value in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = TxnLogRecord::decode(&key, Some(&value));
            let _ = read_batches(&value, 1 << 16);
        }

        #[test]
        fn versioned_garbage_never_panics(version in 0i16..=1,
                                          rest in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut buf = version.to_be_bytes().to_vec();
            buf.extend_from_slice(&rest);
            let _ = TxnLogValue::decode(&buf);
        }

        #[test]
        fn values_round_trip(producer_id in any::<i64>(), epoch in any::<i16>(),
                             state in 1i8..=5, topics in proptest::collection::btree_set(("[a-z]{1,5}", 0i32..8), 0..6),
                             previous in any::<i64>(), version in 0i16..=1) {
            let value = TxnLogValue {
                producer_id,
                previous_producer_id: if version == 1 { previous } else { NO_PRODUCER_ID },
                producer_epoch: epoch,
                state: TxnState::from_id(state).unwrap(),
                partitions: topics,
                ..ongoing_value()
            };
            let bytes = value.encode_version(version).unwrap();
            prop_assert_eq!(TxnLogValue::decode(&bytes).unwrap(), value);
        }
    }
}
