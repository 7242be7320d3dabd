//! What a topic's configs ask of the records inside a produced batch, the
//! part of Kafka's LogValidator that walks records: on a compacted topic
//! every record has a key (compaction could not keep one without), and
//! on a topic whose `compression.type` names a codec, a batch in another
//! codec is stored compressed with the topic's (KIP-390 levels).
//!
//! A topic that asks for neither costs nothing here: the records are not
//! expanded or walked, and the producer's bytes are stored as sent.

use crate::batch::{BatchView, Compression, layout};
use crate::compression::{compress_with_level, records_data};
use crate::error::{BatchError, DecompressError};
use crate::record::{Records, len_i32, put_at};

/// Bits 0-2 of attributes: the codec.
const COMPRESSION_MASK: i16 = 0x07;

/// The codec a topic stores batches in (`compression.type`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TopicCompression {
    /// `producer`: every batch is stored as the producer compressed it.
    Producer,
    /// `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd`: a batch in
    /// another codec is recompressed with `codec` at `level` (the
    /// codec's own scale; ignored by codecs without levels).
    Codec { codec: Compression, level: i32 },
}

/// What the records of a produced batch must satisfy on one topic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecordRules {
    /// `cleanup.policy` includes `compact`: every record needs a key.
    pub keys_required: bool,
    pub compression: TopicCompression,
    /// The most a batch's records may expand to while they are checked.
    pub expanded_bytes_max: usize,
}

/// Checks `batch` (already validated as a producer's) against `rules`.
/// `Ok(None)`: store the batch as it is. `Ok(Some(bytes))`: store `bytes`
/// instead — the same batch (header fields, producer id, epoch and
/// sequence, timestamps, records) compressed with the topic's codec,
/// with a new CRC.
///
/// Errors: a keyless record on a compacted topic is
/// [`BatchError::RecordsWithoutKey`] (every such record's index); a
/// record whose offset delta is not its index is
/// [`BatchError::RecordOffsetDelta`]; records that cannot be expanded
/// or decoded are [`BatchError::RecordsUndecodable`].
pub fn apply_record_rules(
    batch: &BatchView<'_>,
    rules: &RecordRules,
) -> Result<Option<Vec<u8>>, BatchError> {
    if !rules.keys_required && rules.compression == TopicCompression::Producer {
        return Ok(None);
    }
    let codec = batch.attributes().compression()?;
    let target = match rules.compression {
        TopicCompression::Codec {
            codec: target,
            level,
        } if target != codec => Some((target, level)),
        _ => None,
    };
    if !rules.keys_required && target.is_none() {
        return Ok(None);
    }
    let data = records_data(batch, rules.expanded_bytes_max).map_err(undecodable)?;
    check_records(&data, batch.records_count(), rules.keys_required)?;
    let Some((target, level)) = target else {
        return Ok(None);
    };
    let records =
        compress_with_level(target, level, &data).map_err(|e| BatchError::RecordsUndecodable {
            reason: e.to_string(),
        })?;
    Ok(Some(reframe(batch, target, &records)?))
}

/// Walks the records: each is decodable, its offset delta is its index
/// (as a producer writes them), and, when `keys_required`, it has a key.
fn check_records(data: &[u8], count: i32, keys_required: bool) -> Result<(), BatchError> {
    let mut keyless = Vec::new();
    for (index, record) in (0..).zip(Records::new(data, count)) {
        let record = record.map_err(|e| BatchError::RecordsUndecodable {
            reason: e.to_string(),
        })?;
        if record.offset_delta != index {
            return Err(BatchError::RecordOffsetDelta {
                record_index: index,
                offset_delta: record.offset_delta,
            });
        }
        if keys_required && record.key.is_none() {
            keyless.push(index);
        }
    }
    if keyless.is_empty() {
        Ok(())
    } else {
        Err(BatchError::RecordsWithoutKey {
            record_indexes: keyless,
        })
    }
}

/// `batch`'s header with `records` (compressed with `codec`) after it:
/// batchLength, the codec bits of attributes and the CRC are new. Records
/// that compress to more than a batch can frame are
/// [`BatchError::TooLongToFrame`].
fn reframe(
    batch: &BatchView<'_>,
    codec: Compression,
    records: &[u8],
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::with_capacity(layout::RECORDS + records.len());
    out.extend_from_slice(&batch.as_bytes()[..layout::RECORDS]);
    out.extend_from_slice(records);
    let batch_length = len_i32(out.len() - layout::LOG_OVERHEAD)?;
    put_at(&mut out, layout::BATCH_LENGTH, &batch_length.to_be_bytes());
    let attributes = (batch.attributes().0 & !COMPRESSION_MASK) | i16::from(codec.code());
    put_at(&mut out, layout::ATTRIBUTES, &attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[layout::ATTRIBUTES..]);
    put_at(&mut out, layout::CRC, &crc.to_be_bytes());
    Ok(out)
}

fn undecodable(error: DecompressError) -> BatchError {
    match error {
        DecompressError::UnknownCompression { code } => BatchError::UnknownCompression { code },
        DecompressError::TooLarge { max_bytes, .. } => BatchError::ExpandsTooLarge { max_bytes },
        other => BatchError::RecordsUndecodable {
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BatchErrorKind;
    use crate::{BatchBuilder, NewRecord, validate_produced};

    const MAX: usize = 1 << 20;

    fn rules(keys_required: bool, compression: TopicCompression) -> RecordRules {
        RecordRules {
            keys_required,
            compression,
            expanded_bytes_max: MAX,
        }
    }

    fn zstd() -> TopicCompression {
        TopicCompression::Codec {
            codec: Compression::Zstd,
            level: 3,
        }
    }

    /// Each record's key and value.
    type KeyValues = Vec<(Option<Vec<u8>>, Option<Vec<u8>>)>;

    fn values(batch: &BatchView<'_>) -> KeyValues {
        let data = records_data(batch, MAX).unwrap();
        Records::new(&data, batch.records_count())
            .map(|r| {
                let r = r.unwrap();
                (r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec))
            })
            .collect()
    }

    #[test]
    fn a_topic_asking_nothing_stores_the_batch_as_sent() {
        let bytes = BatchBuilder::new(5)
            .with_records(&[NewRecord::value(b"no key")])
            .finish()
            .unwrap();
        let batch = validate_produced(&bytes, MAX).unwrap();
        assert_eq!(
            apply_record_rules(&batch, &rules(false, TopicCompression::Producer)).unwrap(),
            None
        );
        // Same codec as the topic's: nothing to do either.
        let none = TopicCompression::Codec {
            codec: Compression::None,
            level: 0,
        };
        assert_eq!(
            apply_record_rules(&batch, &rules(false, none)).unwrap(),
            None
        );
    }

    #[test]
    fn a_compacted_topic_refuses_every_keyless_record_by_index() {
        let bytes = BatchBuilder::new(5)
            .with_records(&[
                NewRecord::key_value(b"k", Some(b"v")),
                NewRecord::value(b"no key"),
                NewRecord::key_value(b"k", None),
                NewRecord::value(b"none either"),
            ])
            .finish()
            .unwrap();
        let batch = validate_produced(&bytes, MAX).unwrap();
        let error =
            apply_record_rules(&batch, &rules(true, TopicCompression::Producer)).unwrap_err();
        assert_eq!(
            error,
            BatchError::RecordsWithoutKey {
                record_indexes: vec![1, 3]
            }
        );
        assert_eq!(error.kind(), BatchErrorKind::InvalidRecord);
    }

    #[test]
    fn recompression_keeps_every_field_and_record_with_a_new_crc() {
        let headers: [(&[u8], Option<&[u8]>); 1] = [(b"h", Some(b"1"))];
        let bytes = BatchBuilder::new(1_000)
            .producer(77, 2, 40)
            .with_records(&[
                NewRecord {
                    timestamp: 1_005,
                    key: Some(b"a"),
                    value: Some(&[7u8; 500]),
                    headers: &headers,
                },
                NewRecord::key_value(b"b", None),
            ])
            .finish()
            .unwrap();
        let original = validate_produced(&bytes, MAX).unwrap();
        let converted = apply_record_rules(&original, &rules(true, zstd()))
            .unwrap()
            .unwrap();
        let batch = validate_produced(&converted, MAX).unwrap();
        assert_eq!(batch.attributes().compression().unwrap(), Compression::Zstd);
        assert!(converted.len() < bytes.len());
        assert_eq!(batch.producer_id(), 77);
        assert_eq!(batch.producer_epoch(), 2);
        assert_eq!(batch.base_sequence(), 40);
        assert_eq!(batch.records_count(), 2);
        assert_eq!(batch.last_offset_delta(), 1);
        assert_eq!(batch.base_timestamp(), original.base_timestamp());
        assert_eq!(batch.max_timestamp(), 1_005);
        assert_eq!(values(&batch), values(&original));

        // And back to uncompressed.
        let none = TopicCompression::Codec {
            codec: Compression::None,
            level: 0,
        };
        let back = apply_record_rules(&batch, &rules(false, none))
            .unwrap()
            .unwrap();
        assert_eq!(back, bytes, "uncompressing gives the producer's batch back");
    }

    #[test]
    fn records_whose_offset_deltas_skip_are_refused_when_walked() {
        let mut bytes = BatchBuilder::new(5)
            .with_records(&[NewRecord::value(b"x"), NewRecord::value(b"y")])
            .finish()
            .unwrap();
        // The second record's offset delta (after its length, attributes
        // and timestamp delta varints) becomes 5; the CRC is recomputed.
        let second = layout::RECORDS + 1 + usize::from(bytes[layout::RECORDS]) / 2;
        let at = second + 3;
        assert_eq!(bytes[at], 2, "offset delta 1 as a zigzag varint");
        bytes[at] = 10;
        let crc = crc32c::crc32c(&bytes[layout::ATTRIBUTES..]);
        put_at(&mut bytes, layout::CRC, &crc.to_be_bytes());
        let batch = validate_produced(&bytes, MAX).unwrap();
        assert_eq!(
            apply_record_rules(&batch, &rules(false, zstd())).unwrap_err(),
            BatchError::RecordOffsetDelta {
                record_index: 1,
                offset_delta: 5
            }
        );
    }

    #[test]
    fn expansion_is_bounded() {
        let big = vec![0u8; 4096];
        let bytes = BatchBuilder::new(5)
            .with_records(&[NewRecord::value(&big)])
            .finish()
            .unwrap();
        let batch = validate_produced(&bytes, MAX).unwrap();
        let zstd_bytes = apply_record_rules(&batch, &rules(false, zstd()))
            .unwrap()
            .unwrap();
        let zstd_batch = validate_produced(&zstd_bytes, MAX).unwrap();
        let tight = RecordRules {
            keys_required: true,
            compression: TopicCompression::Producer,
            expanded_bytes_max: 1024,
        };
        assert_eq!(
            apply_record_rules(&zstd_batch, &tight).unwrap_err(),
            BatchError::ExpandsTooLarge { max_bytes: 1024 }
        );
    }
}
