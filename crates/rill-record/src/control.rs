//! Control batches: the commit and abort markers a transaction
//! coordinator has written into each partition of a transaction (Kafka's
//! EndTransactionMarker). A marker is a batch with the control and
//! transactional attributes, the producer's id and epoch, no sequence,
//! and one record:
//!
//! ```text
//! key:   i16 version (0)   i16 type (0 = abort, 1 = commit)
//! value: i16 version (0)   i32 coordinator epoch
//! ```
//!
//! ```
//! use rill_record::{BatchView, EndTxnMarker, MarkerKind, end_txn_marker};
//! let marker = EndTxnMarker { kind: MarkerKind::Commit, coordinator_epoch: 4 };
//! let bytes = end_txn_marker(7, 1, marker, 1_700_000_000_000).unwrap();
//! let batch = BatchView::new(&bytes).unwrap();
//! assert!(batch.attributes().is_control() && batch.attributes().is_transactional());
//! assert_eq!(EndTxnMarker::of(&batch).unwrap(), Some(marker));
//! ```

use crate::batch::BatchView;
use crate::builder::{BatchBuilder, NewRecord};
use crate::error::{BatchError, DecompressError, RecordError};
use crate::record::Records;

/// A bound on a control batch's records once decompressed: a marker
/// takes 20 bytes.
const CONTROL_RECORDS_BYTES_MAX: usize = 1 << 10;

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MarkerKind {
    Abort,
    Commit,
}

impl MarkerKind {
    /// Kafka's ControlRecordType code.
    pub fn code(self) -> i16 {
        match self {
            MarkerKind::Abort => 0,
            MarkerKind::Commit => 1,
        }
    }
}

/// Why a control batch is not a marker Rill can read.
#[derive(Debug, thiserror::Error)]
pub enum ControlRecordError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    #[error("a control batch must hold exactly one record, this one holds {count}")]
    NotOneRecord { count: i32 },
    #[error("control record key is {len} bytes, expected 4")]
    KeyLength { len: usize },
    #[error("end-transaction marker value is {len} bytes, expected at least 6")]
    ValueLength { len: usize },
}

/// A commit or abort marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub kind: MarkerKind,
    /// The epoch of the coordinator (its `__transaction_state` partition's
    /// leader epoch) that wrote it: a partition refuses an older one.
    pub coordinator_epoch: i32,
}

impl EndTxnMarker {
    /// The marker a control batch holds: `None` for a control record of a
    /// type other than commit or abort (Kafka skips those too), an error
    /// for bytes that are not a control record.
    pub fn of(batch: &BatchView<'_>) -> Result<Option<EndTxnMarker>, ControlRecordError> {
        if batch.records_count() != 1 {
            return Err(ControlRecordError::NotOneRecord {
                count: batch.records_count(),
            });
        }
        let data = crate::compression::records_data(batch, CONTROL_RECORDS_BYTES_MAX)?;
        let Some(record) = Records::new(&data, 1).next() else {
            return Err(ControlRecordError::NotOneRecord { count: 0 });
        };
        let record = record?;
        let key = record.key.unwrap_or_default();
        if key.len() < 4 {
            return Err(ControlRecordError::KeyLength { len: key.len() });
        }
        let kind = match i16::from_be_bytes([key[2], key[3]]) {
            0 => MarkerKind::Abort,
            1 => MarkerKind::Commit,
            _ => return Ok(None),
        };
        let value = record.value.unwrap_or_default();
        if value.len() < 6 {
            return Err(ControlRecordError::ValueLength { len: value.len() });
        }
        let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
        Ok(Some(EndTxnMarker {
            kind,
            coordinator_epoch,
        }))
    }
}

/// The control batch that ends `producer_id`'s transaction in one
/// partition, timestamped `timestamp_ms`, base offset 0 (the log assigns
/// it).
pub fn end_txn_marker(
    producer_id: i64,
    producer_epoch: i16,
    marker: EndTxnMarker,
    timestamp_ms: i64,
) -> Result<Vec<u8>, BatchError> {
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&marker.kind.code().to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&marker.coordinator_epoch.to_be_bytes());
    BatchBuilder::new(timestamp_ms)
        .producer(producer_id, producer_epoch, crate::batch::NO_SEQUENCE)
        .transactional()
        .control()
        .with_records(&[NewRecord::key_value(&key, Some(&value))])
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abort_marker_reads_back() {
        let marker = EndTxnMarker {
            kind: MarkerKind::Abort,
            coordinator_epoch: -1,
        };
        let bytes = end_txn_marker(42, 3, marker, 5).unwrap();
        let batch = BatchView::new(&bytes).unwrap();
        batch.verify_crc().unwrap();
        assert_eq!(batch.producer_id(), 42);
        assert_eq!(batch.producer_epoch(), 3);
        assert_eq!(EndTxnMarker::of(&batch).unwrap(), Some(marker));
    }

    #[test]
    fn a_data_record_is_not_a_marker() {
        let bytes = BatchBuilder::new(5)
            .with_records(&[NewRecord::key_value(b"k", Some(b"v"))])
            .finish()
            .unwrap();
        let batch = BatchView::new(&bytes).unwrap();
        assert!(matches!(
            EndTxnMarker::of(&batch),
            Err(ControlRecordError::KeyLength { len: 1 })
        ));
    }
}
