//! Validation of a batch before any of it is written: a producer's
//! ([`validate_produced`]) or one a follower copies from its leader
//! ([`validate_replicated`]).

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
    let batch = one_batch(buf)?;
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

/// Checks that `buf` is exactly one v2 batch as a leader stored it, for a
/// follower to append unchanged: batchLength and magic 2 (framing), one
/// whole batch, a valid CRC-32C (attributes .. end: baseOffset and
/// partitionLeaderEpoch lie outside it), and an offset range that can
/// hold the batch's records: lastOffsetDelta >= 0 and
/// 0 <= recordsCount <= lastOffsetDelta + 1.
///
/// None of [`validate_produced`]'s producer rules apply, as in Kafka's
/// follower append: the leader assigned baseOffset and
/// partitionLeaderEpoch, may have stamped LogAppendTime or written a
/// control batch, and compaction may have removed records (recordsCount
/// below lastOffsetDelta + 1, or 0 for a producer's last batch kept
/// empty) while the batch keeps its offsets. Nor is max.message.bytes
/// checked: the leader's topic configuration admitted the batch (Kafka's
/// follower ignores the record size too). The records are not walked
/// and the codec is not interpreted.
pub fn validate_replicated(buf: &[u8]) -> Result<BatchView<'_>, BatchError> {
    let batch = one_batch(buf)?;
    batch.verify_crc()?;
    let last_offset_delta = batch.last_offset_delta();
    let records_count = batch.records_count();
    if last_offset_delta < 0
        || records_count < 0
        || i64::from(records_count) > i64::from(last_offset_delta) + 1
    {
        return Err(BatchError::OffsetRangeInvalid {
            last_offset_delta,
            records_count,
        });
    }
    Ok(batch)
}

/// Frames the batch at the start of `buf` and checks that it is all of `buf`.
fn one_batch(buf: &[u8]) -> Result<BatchView<'_>, BatchError> {
    let batch = BatchView::new(buf)?;
    if batch.size() != buf.len() {
        return Err(BatchError::NotOneBatch {
            batch_bytes: batch.size(),
            buffer_bytes: buf.len(),
        });
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
        BatchBuilder::new(1_000)
            .with_records(&records)
            .finish()
            .unwrap()
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

    #[test]
    fn accepts_a_batch_as_a_leader_stored_it() {
        let produced = batch_of(&[b"a", b"b", b"c"]);
        let mut stored = produced.clone();
        let mut stamped = BatchViewMut::new(&mut stored).unwrap();
        stamped.set_base_offset(1_000);
        stamped.set_partition_leader_epoch(7);
        stamped.set_log_append_time(55_555);
        let compacted = with_field(
            with_field(stored.clone(), layout::RECORDS_COUNT, &2i32.to_be_bytes()),
            layout::LAST_OFFSET_DELTA,
            &5i32.to_be_bytes(),
        );
        let emptied = with_field(stored.clone(), layout::RECORDS_COUNT, &0i32.to_be_bytes());
        let control = with_field(stored.clone(), layout::ATTRIBUTES, &0x20i16.to_be_bytes());
        let cases = [
            ("stamped", &stored, 2),
            ("compacted", &compacted, 5),
            ("emptied", &emptied, 2),
            ("control", &control, 2),
        ];
        for (name, bytes, last_offset_delta) in cases {
            let batch = validate_replicated(bytes).expect(name);
            assert_eq!(batch.base_offset(), 1_000, "{name}");
            assert_eq!(batch.partition_leader_epoch(), 7, "{name}");
            assert_eq!(batch.last_offset(), 1_000 + last_offset_delta, "{name}");
        }
        assert!(
            validate_produced(&stored, MAX).is_err(),
            "a stored batch breaks the producer rules"
        );
    }

    #[test]
    fn rejects_a_replicated_batch_that_is_damaged_or_spans_too_few_offsets() {
        let good = batch_of(&[b"a", b"b"]);
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let cases: Vec<(&str, Vec<u8>, BatchErrorKind)> = vec![
            ("crc", flipped, BatchErrorKind::Corrupt),
            (
                "truncated",
                good[..good.len() - 1].to_vec(),
                BatchErrorKind::Corrupt,
            ),
            (
                "two batches",
                [good.clone(), good.clone()].concat(),
                BatchErrorKind::InvalidRecord,
            ),
            (
                "negative lastOffsetDelta",
                with_field(
                    good.clone(),
                    layout::LAST_OFFSET_DELTA,
                    &(-1i32).to_be_bytes(),
                ),
                BatchErrorKind::InvalidRecord,
            ),
            (
                "more records than offsets",
                with_field(good.clone(), layout::RECORDS_COUNT, &3i32.to_be_bytes()),
                BatchErrorKind::InvalidRecord,
            ),
            (
                "negative recordsCount",
                with_field(good.clone(), layout::RECORDS_COUNT, &(-1i32).to_be_bytes()),
                BatchErrorKind::InvalidRecord,
            ),
        ];
        for (name, bytes, kind) in cases {
            let err = validate_replicated(&bytes).expect_err(name);
            assert_eq!(err.kind(), kind, "{name}: {err}");
        }
    }
}
