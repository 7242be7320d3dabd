//! Validation of a batch a producer sent, before any of it is written.

use crate::batch::{BatchView, TimestampType};
use crate::error::BatchError;

/// Checks that `buf` is exactly one v2 batch a client may append, with
/// Kafka's rules for magic v2 (LogValidator): size within
/// `max_message_bytes`, valid CRC-32C, baseOffset 0, a known codec,
/// lastOffsetDelta + 1 == recordsCount > 0, no control batch, a sequence
/// when there is a producer id, CreateTime timestamps.
///
/// The records inside are not walked: the work is per batch, never per
/// record (the produce path's budget; at 100-byte messages the walk was 8%
/// of broker CPU). Kafka's LogValidator also parses each record of an
/// uncompressed batch; here the CRC-32C vouches that the records are the
/// producer's bytes, and a compressed batch is not expanded either way.
pub fn validate_produced(
    buf: &[u8],
    max_message_bytes: usize,
) -> Result<BatchView<'_>, BatchError> {
    let batch = BatchView::new(buf)?;
    if batch.size() != buf.len() {
        return Err(BatchError::NotOneBatch {
            batch_bytes: batch.size(),
            buffer_bytes: buf.len(),
        });
    }
    if batch.size() > max_message_bytes {
        return Err(BatchError::TooLarge {
            batch_bytes: batch.size(),
            max_bytes: max_message_bytes,
        });
    }
    batch.verify_crc()?;
    if batch.base_offset() != 0 {
        return Err(BatchError::BaseOffsetNotZero {
            base_offset: batch.base_offset(),
        });
    }
    let attributes = batch.attributes();
    // An unknown codec is UNSUPPORTED_COMPRESSION_TYPE.
    attributes.compression()?;
    let records_count = batch.records_count();
    let last_offset_delta = batch.last_offset_delta();
    if records_count <= 0 || i64::from(last_offset_delta) + 1 != i64::from(records_count) {
        return Err(BatchError::OffsetRangeMismatch {
            last_offset_delta,
            records_count,
        });
    }
    if attributes.is_control() {
        return Err(BatchError::ControlBatchFromClient);
    }
    if batch.has_producer_id() && batch.base_sequence() < 0 {
        return Err(BatchError::InvalidSequence {
            producer_id: batch.producer_id(),
            base_sequence: batch.base_sequence(),
        });
    }
    if attributes.timestamp_type() == TimestampType::LogAppendTime {
        return Err(BatchError::LogAppendTimeFromClient);
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::layout;
    use crate::error::BatchErrorKind;
    use crate::{BatchBuilder, BatchViewMut, NewRecord};

    const MAX: usize = 1 << 20;

    fn batch_of(values: &[&[u8]]) -> Vec<u8> {
        let records: Vec<NewRecord<'_>> = values.iter().map(|v| NewRecord::value(v)).collect();
        BatchBuilder::new(1_000).with_records(&records).finish()
    }

    /// Sets a header field and recomputes the CRC, so that only the rule
    /// under test is broken.
    fn with_field(mut bytes: Vec<u8>, at: usize, value: &[u8]) -> Vec<u8> {
        bytes[at..at + value.len()].copy_from_slice(value);
        let crc = crc32c::crc32c(&bytes[layout::ATTRIBUTES..]);
        bytes[layout::CRC..layout::CRC + 4].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    #[test]
    fn accepts_a_producer_batch() {
        let bytes = batch_of(&[b"a", b"bb", b"ccc"]);
        let batch = validate_produced(&bytes, MAX).unwrap();
        assert_eq!(batch.records_count(), 3);
    }

    #[test]
    fn rejects_each_broken_rule_with_its_kind() {
        let good = batch_of(&[b"a", b"b"]);
        let cases: Vec<(&str, Vec<u8>, usize, BatchErrorKind)> = vec![
            (
                "too large",
                good.clone(),
                good.len() - 1,
                BatchErrorKind::TooLarge,
            ),
            (
                "crc",
                {
                    let mut b = good.clone();
                    let last = b.len() - 1;
                    b[last] ^= 1;
                    b
                },
                MAX,
                BatchErrorKind::Corrupt,
            ),
            (
                "truncated",
                good[..good.len() - 3].to_vec(),
                MAX,
                BatchErrorKind::Corrupt,
            ),
            (
                "two batches",
                [good.clone(), good.clone()].concat(),
                MAX,
                BatchErrorKind::InvalidRecord,
            ),
            (
                "base offset",
                with_field(good.clone(), layout::BASE_OFFSET, &7i64.to_be_bytes()),
                MAX,
                BatchErrorKind::InvalidRecord,
            ),
            (
                "count mismatch",
                with_field(good.clone(), layout::RECORDS_COUNT, &3i32.to_be_bytes()),
                MAX,
                BatchErrorKind::InvalidRecord,
            ),
            (
                "control",
                with_field(good.clone(), layout::ATTRIBUTES, &0x20i16.to_be_bytes()),
                MAX,
                BatchErrorKind::InvalidRecord,
            ),
            (
                "log append time",
                with_field(good.clone(), layout::ATTRIBUTES, &0x08i16.to_be_bytes()),
                MAX,
                BatchErrorKind::InvalidTimestamp,
            ),
            (
                "codec",
                with_field(good.clone(), layout::ATTRIBUTES, &0x06i16.to_be_bytes()),
                MAX,
                BatchErrorKind::UnsupportedCompression,
            ),
            (
                "sequence",
                with_field(good.clone(), layout::PRODUCER_ID, &5i64.to_be_bytes()),
                MAX,
                BatchErrorKind::InvalidRecord,
            ),
        ];
        for (name, bytes, max, kind) in cases {
            let err = validate_produced(&bytes, max).expect_err(name);
            assert_eq!(err.kind(), kind, "{name}: {err}");
        }
    }

    #[test]
    fn stamped_batch_is_no_longer_a_producer_batch() {
        let mut bytes = batch_of(&[b"a"]);
        BatchViewMut::new(&mut bytes).unwrap().set_base_offset(10);
        assert!(matches!(
            validate_produced(&bytes, MAX),
            Err(BatchError::BaseOffsetNotZero { base_offset: 10 })
        ));
    }
}
