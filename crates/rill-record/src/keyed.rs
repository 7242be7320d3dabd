//! Batches of keyed records, as Kafka's internal compacted topics
//! (`__consumer_offsets`, `__transaction_state`) hold them: every record has
//! a key, a null value is a tombstone, and a loader reads the records of
//! whole batches back in log order.
//!
//! ```
//! use rill_record::{BatchBuilder, KeyedBatchError, KeyedBatchItem, keyed_batch, read_keyed_batches};
//!
//! let records = [(b"k".as_slice(), Some(b"v".as_slice())), (b"k".as_slice(), None)];
//! let buf = keyed_batch(BatchBuilder::new(1_000), &records).unwrap().unwrap();
//! let mut keys = Vec::new();
//! let read = read_keyed_batches::<KeyedBatchError>(&buf, 1 << 20, "example", |item| {
//!     if let KeyedBatchItem::Record { record, .. } = item {
//!         keys.push((record.offset, record.key.to_vec(), record.value.is_none()));
//!     }
//!     Ok(())
//! })
//! .unwrap();
//! assert_eq!(read, buf.len());
//! assert_eq!(keys, [(0, b"k".to_vec(), false), (1, b"k".to_vec(), true)]);
//! ```

use crate::{BatchBuilder, BatchError, BatchView, Batches, BatchesEnd, NewRecord, Records};
use crate::{DecompressError, RecordError};

/// Why a buffer of an internal topic's batches could not be read, before
/// any record's key or value is looked at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyedBatchError {
    #[error("bytes at position {position} are not a record batch: {error}")]
    InvalidBatch { position: usize, error: BatchError },
    #[error("batch at offset {base_offset} cannot be decompressed: {error}")]
    Decompress {
        base_offset: i64,
        error: DecompressError,
    },
    #[error("batch at offset {base_offset} has undecodable records: {error}")]
    Records {
        base_offset: i64,
        error: RecordError,
    },
    #[error("record at offset {offset} has no key; every {topic} record has one")]
    MissingKey { topic: &'static str, offset: i64 },
}

/// One record of a data batch, borrowed for the visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedRecord<'r> {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: &'r [u8],
    /// `None`: a tombstone.
    pub value: Option<&'r [u8]>,
}

/// What [`read_keyed_batches`] hands its visitor, in log order.
#[derive(Debug, Clone, Copy)]
pub enum KeyedBatchItem<'v, 'r> {
    /// A control batch (a transaction marker, ...), whole.
    Control { batch: &'v BatchView<'v> },
    /// One record of a data batch, with its batch (producer,
    /// transactional bit).
    Record {
        batch: &'v BatchView<'v>,
        record: KeyedRecord<'r>,
    },
}

/// One uncompressed v2 batch from `builder` (timestamp, producer,
/// transactional bit) holding `records` (key, value; `None` is a
/// tombstone), every record at the batch's base timestamp, ready for the
/// broker to stamp offsets and append. `None` when `records` is empty: a
/// batch must hold at least one record. A record over 2 GiB cannot be
/// framed ([`BatchError::TooLongToFrame`]).
pub fn keyed_batch<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    mut builder: BatchBuilder,
    records: &[(K, Option<V>)],
) -> Result<Option<Vec<u8>>, BatchError> {
    if records.is_empty() {
        return Ok(None);
    }
    for (key, value) in records {
        builder.push(&NewRecord::key_value(
            key.as_ref(),
            value.as_ref().map(AsRef::as_ref),
        ));
    }
    builder.finish().map(Some)
}

/// Hands `visit` every control batch and every record of the other batches
/// among the whole batches at the start of `buf` (as a fetch or a segment
/// read returns them), in log order, and returns the bytes of whole
/// batches read: where the next read should start (a partial batch at the
/// end, normal at the end of a fetch, is not counted).
///
/// Compressed batches expand into at most `records_bytes_max` bytes each. A
/// record without a key is [`KeyedBatchError::MissingKey`] naming `topic`.
/// CRCs are not checked here: the log verified them on append and on
/// recovery. The first error, the visitor's or a [`KeyedBatchError`],
/// stops the read.
pub fn read_keyed_batches<E: From<KeyedBatchError>>(
    buf: &[u8],
    records_bytes_max: usize,
    topic: &'static str,
    mut visit: impl FnMut(KeyedBatchItem<'_, '_>) -> Result<(), E>,
) -> Result<usize, E> {
    let mut batches = Batches::new(buf);
    for batch in batches.by_ref() {
        if batch.attributes().is_control() {
            visit(KeyedBatchItem::Control { batch: &batch })?;
            continue;
        }
        let base_offset = batch.base_offset();
        let data = crate::records_data(&batch, records_bytes_max)
            .map_err(|error| KeyedBatchError::Decompress { base_offset, error })?;
        for record in Records::new(&data, batch.records_count()) {
            let record = record.map_err(|error| KeyedBatchError::Records { base_offset, error })?;
            let offset = base_offset.saturating_add(i64::from(record.offset_delta));
            let key = record
                .key
                .ok_or(KeyedBatchError::MissingKey { topic, offset })?;
            visit(KeyedBatchItem::Record {
                batch: &batch,
                record: KeyedRecord {
                    offset,
                    timestamp_ms: batch.record_timestamp(record.timestamp_delta),
                    key,
                    value: record.value,
                },
            })?;
        }
    }
    match batches.end() {
        Some(BatchesEnd::Invalid { position, error }) => Err(KeyedBatchError::InvalidBatch {
            position: *position,
            error: error.clone(),
        }
        .into()),
        _ => Ok(batches.position()),
    }
}

/// Kafka's `Utils.abs(key.hashCode) % partitions`: the partition of an
/// internal topic that holds `key` (a group id, a transactional id), and
/// so its coordinator. `hashCode` is Java's `String.hashCode` over UTF-16
/// code units; `Utils.abs` maps `i32::MIN` to 0.
///
/// `partitions` must be positive (callers check their config's value and
/// name it): anything else is a bug.
pub fn coordinator_partition(key: &str, partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "partitions must be positive, is {partitions}"
    );
    let hash = java_string_hash(key);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16
/// code units, in wrapping 32-bit arithmetic.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_batches_and_missing_keys() {
        let marker = crate::end_txn_marker(
            7,
            0,
            crate::EndTxnMarker {
                kind: crate::MarkerKind::Abort,
                coordinator_epoch: 0,
            },
            0,
        )
        .unwrap();
        let mut seen = 0;
        let read = read_keyed_batches::<KeyedBatchError>(&marker, 1 << 20, "t", |item| {
            assert!(matches!(item, KeyedBatchItem::Control { batch } if batch.producer_id() == 7));
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((read, seen), (marker.len(), 1));
        let keyless = BatchBuilder::new(0)
            .with_records(&[NewRecord::value(b"v")])
            .finish()
            .unwrap();
        let error =
            read_keyed_batches::<KeyedBatchError>(&keyless, 1 << 20, "t", |_| Ok(())).unwrap_err();
        assert_eq!(
            error.to_string(),
            "record at offset 0 has no key; every t record has one"
        );
        assert_eq!(
            keyed_batch::<&[u8], &[u8]>(BatchBuilder::new(0), &[]),
            Ok(None)
        );
    }

    #[test]
    fn coordinator_partition_is_kafkas() {
        // "group".hashCode() == 98629247 in Java.
        assert_eq!(coordinator_partition("group", 50), 98_629_247 % 50);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs -> 0.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(coordinator_partition("polygenelubricants", 50), 0);
    }
}
