//! Rewriting a stored batch with fewer records (log compaction): the
//! records kept are re-encoded, compressed again with the batch's own
//! codec, and framed under a copy of the original header, so baseOffset,
//! lastOffsetDelta, producer id, epoch and sequence, partitionLeaderEpoch
//! and maxTimestamp stay what they were.

use crate::batch::{Attributes, BatchView, layout};
use crate::compression::compress;
use crate::error::CompressError;
use crate::record::{Record, RecordParts, TooLongToFrame, len_i32, put_at, put_record};

/// Bit 6 of attributes: baseTimestamp holds the delete horizon (KIP-534).
const DELETE_HORIZON_BIT: i16 = 0x40;
/// Bits 0-2 of attributes: the codec.
const COMPRESSION_MASK: i16 = 0x07;

/// Collects the records of one batch that compaction keeps, then frames
/// them as a batch in the original's image. Not thread-safe; one per batch.
#[derive(Debug)]
pub struct BatchRewriter<'a> {
    original: BatchView<'a>,
    base_timestamp: i64,
    delete_horizon: bool,
    records: Vec<u8>,
    /// One record's body while it is encoded.
    scratch: Vec<u8>,
    count: i32,
    /// A kept record too long to frame: [`BatchRewriter::finish`] fails.
    unframeable: Option<TooLongToFrame>,
}

impl<'a> BatchRewriter<'a> {
    /// Starts a rewrite of `original`. With `delete_horizon_ms`, the new
    /// batch carries that horizon in baseTimestamp and sets attributes bit
    /// 6, as Kafka's cleaner does the first time it keeps a tombstone; the
    /// records' timestamps are kept by re-basing their deltas.
    pub fn new(original: BatchView<'a>, delete_horizon_ms: Option<i64>) -> BatchRewriter<'a> {
        BatchRewriter {
            original,
            base_timestamp: delete_horizon_ms.unwrap_or(original.base_timestamp()),
            delete_horizon: delete_horizon_ms.is_some()
                || original.attributes().has_delete_horizon(),
            records: Vec::new(),
            scratch: Vec::new(),
            count: 0,
            unframeable: None,
        }
    }

    /// Keeps `record` (decoded from the original batch), with its own
    /// offset delta, attributes, key, value, headers and timestamp. A
    /// record too long to frame again is not kept, and makes
    /// [`BatchRewriter::finish`] fail.
    pub fn keep(&mut self, record: &Record<'_>) {
        let timestamp = self
            .original
            .base_timestamp()
            .wrapping_add(record.timestamp_delta);
        let put = put_record(
            &mut self.records,
            &mut self.scratch,
            RecordParts {
                attributes: record.attributes.to_be_bytes()[0],
                timestamp_delta: timestamp.wrapping_sub(self.base_timestamp),
                offset_delta: record.offset_delta,
                key: record.key,
                value: record.value,
                headers_count: record.headers().len(),
                headers: record.headers().map(|h| (h.key, h.value)),
            },
        );
        match put {
            Ok(()) => self.count += 1,
            Err(e) => {
                self.unframeable.get_or_insert(e);
            }
        }
    }

    /// Records kept so far.
    pub fn kept(&self) -> i32 {
        self.count
    }

    /// The new batch: the original header with the kept records,
    /// compressed with the original codec. With no records kept, an empty
    /// batch (recordsCount 0, no compression) that still spans the
    /// original offsets, as Kafka keeps for a producer's last batch.
    pub fn finish(self) -> Result<Vec<u8>, CompressError> {
        if let Some(e) = self.unframeable {
            return Err(e.into());
        }
        let attributes = self.original.attributes();
        let codec = attributes
            .compression()
            .map_err(|_| CompressError::UnknownCompression {
                code: attributes.compression_code(),
            })?;
        let (mut attributes, records) = if self.count == 0 {
            (attributes.0 & !COMPRESSION_MASK, Vec::new())
        } else {
            (attributes.0, compress(codec, &self.records)?)
        };
        if self.delete_horizon {
            attributes |= DELETE_HORIZON_BIT;
        }
        let mut out = Vec::with_capacity(layout::RECORDS + records.len());
        out.extend_from_slice(&self.original.as_bytes()[..layout::RECORDS]);
        out.extend_from_slice(&records);
        let batch_length = len_i32(out.len() - layout::LOG_OVERHEAD)?;
        put_at(&mut out, layout::BATCH_LENGTH, &batch_length.to_be_bytes());
        put_at(&mut out, layout::ATTRIBUTES, &attributes.to_be_bytes());
        put_at(
            &mut out,
            layout::BASE_TIMESTAMP,
            &self.base_timestamp.to_be_bytes(),
        );
        put_at(&mut out, layout::RECORDS_COUNT, &self.count.to_be_bytes());
        let crc = crc32c::crc32c(&out[layout::ATTRIBUTES..]);
        put_at(&mut out, layout::CRC, &crc.to_be_bytes());
        Ok(out)
    }
}

/// Whether `attributes` say baseTimestamp is a delete horizon.
pub fn delete_horizon_of(batch: &BatchView<'_>) -> Option<i64> {
    Attributes::has_delete_horizon(batch.attributes()).then(|| batch.base_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchBuilder, NewRecord, Records, records_data};

    type Decoded = (i32, Option<Vec<u8>>, Option<Vec<u8>>, i64);

    fn decode(batch: &BatchView<'_>) -> Vec<Decoded> {
        let data = records_data(batch, 1 << 20).unwrap();
        Records::new(&data, batch.records_count())
            .map(|r| {
                let r = r.unwrap();
                (
                    r.offset_delta,
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::to_vec),
                    batch.record_timestamp(r.timestamp_delta),
                )
            })
            .collect()
    }

    #[test]
    fn keeps_chosen_records_offsets_timestamps_and_header() {
        let mut builder = BatchBuilder::new(1_000).producer(7, 2, 40);
        for i in 0..4u8 {
            builder.push(&NewRecord {
                timestamp: 1_000 + i64::from(i),
                key: Some(&[b'k', i]),
                value: (i != 2).then_some(&b"v"[..]),
                headers: &[(b"h", Some(b"x"))],
            });
        }
        let bytes = builder.finish().unwrap();
        let original = BatchView::new(&bytes).unwrap();
        let data = records_data(&original, 1 << 20).unwrap();
        for codec in [
            crate::Compression::None,
            crate::Compression::Gzip,
            crate::Compression::Snappy,
            crate::Compression::Lz4,
            crate::Compression::Zstd,
        ] {
            let mut compressed = bytes[..layout::RECORDS].to_vec();
            compressed.extend(compress(codec, &data).unwrap());
            let length = (compressed.len() - layout::LOG_OVERHEAD) as i32;
            put_at(&mut compressed, layout::BATCH_LENGTH, &length.to_be_bytes());
            let attributes = i16::from(codec.code());
            put_at(
                &mut compressed,
                layout::ATTRIBUTES,
                &attributes.to_be_bytes(),
            );
            let source = BatchView::new(&compressed).unwrap();
            let source_data = records_data(&source, 1 << 20).unwrap();
            let mut rewriter = BatchRewriter::new(source, Some(99_999));
            for record in Records::new(&source_data, 4) {
                let record = record.unwrap();
                if record.offset_delta % 2 == 0 {
                    rewriter.keep(&record);
                }
            }
            let out = rewriter.finish().unwrap();
            let view = BatchView::new(&out).unwrap();
            view.verify_crc().unwrap();
            assert_eq!(view.size(), out.len());
            assert_eq!(view.last_offset_delta(), 3, "{codec:?}");
            assert_eq!(view.producer_id(), 7);
            assert_eq!(view.base_sequence(), 40);
            assert_eq!(view.attributes().compression_code(), codec.code());
            assert_eq!(delete_horizon_of(&view), Some(99_999));
            let got = decode(&view);
            assert_eq!(
                got,
                vec![
                    (0, Some(b"k\0".to_vec()), Some(b"v".to_vec()), 1_000),
                    (2, Some(b"k\x02".to_vec()), None, 1_002),
                ],
                "{codec:?}"
            );
        }
    }

    #[test]
    fn an_empty_rewrite_spans_the_original_offsets() {
        let bytes = BatchBuilder::new(5)
            .producer(3, 0, 0)
            .with_records(&[NewRecord::value(b"a"), NewRecord::value(b"b")])
            .finish()
            .unwrap();
        let original = BatchView::new(&bytes).unwrap();
        let out = BatchRewriter::new(original, None).finish().unwrap();
        let view = BatchView::new(&out).unwrap();
        view.verify_crc().unwrap();
        assert_eq!(view.records_count(), 0);
        assert_eq!(view.last_offset_delta(), 1);
        assert_eq!(view.size(), layout::RECORDS);
        assert_eq!(delete_horizon_of(&view), None);
    }
}
