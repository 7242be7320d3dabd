//! Properties of the batch format: what the builder writes validates and
//! decodes back to the same records; no input, however broken, makes any
//! decoder panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

use proptest::prelude::*;
use rill_record::{
    BatchBuilder, BatchView, BatchViewMut, Batches, BatchesEnd, Compression, NewRecord, Records,
    compress, decompress, layout, records_data, validate_produced,
};

#[derive(Clone, Debug)]
struct Owned {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn record() -> impl Strategy<Value = Owned> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..64);
    (
        -1_000i64..1_000_000,
        proptest::option::of(bytes()),
        proptest::option::of(bytes()),
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..8),
                proptest::option::of(bytes()),
            ),
            0..4,
        ),
    )
        .prop_map(|(timestamp, key, value, headers)| Owned {
            timestamp,
            key,
            value,
            headers,
        })
}

fn build(records: &[Owned]) -> Vec<u8> {
    let mut builder = BatchBuilder::new(records[0].timestamp);
    for r in records {
        let headers: Vec<(&[u8], Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        builder.push(&NewRecord {
            timestamp: r.timestamp,
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: &headers,
        });
    }
    builder.finish().unwrap()
}

/// `plain`'s records compressed with `codec`, reframed with a valid CRC.
fn recompressed(plain: &[u8], codec: Compression) -> Vec<u8> {
    let mut out = plain[..layout::RECORDS].to_vec();
    out.extend(compress(codec, &plain[layout::RECORDS..]).unwrap());
    let batch_length = (out.len() - layout::LOG_OVERHEAD) as i32;
    out[layout::BATCH_LENGTH..layout::BATCH_LENGTH + 4]
        .copy_from_slice(&batch_length.to_be_bytes());
    out[layout::ATTRIBUTES..layout::ATTRIBUTES + 2]
        .copy_from_slice(&i16::from(codec.code()).to_be_bytes());
    fix_crc(&mut out);
    out
}

fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[layout::ATTRIBUTES..]);
    batch[layout::CRC..layout::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

fn codec() -> impl Strategy<Value = Compression> {
    proptest::sample::select(vec![
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ])
}

proptest! {
    #[test]
    fn built_batches_validate_and_decode_to_what_was_built(records in proptest::collection::vec(record(), 1..20)) {
        let bytes = build(&records);
        let batch = validate_produced(&bytes, 1 << 20).unwrap();
        prop_assert_eq!(batch.records_count() as usize, records.len());
        prop_assert_eq!(batch.max_timestamp(), records.iter().map(|r| r.timestamp).max().unwrap());
        let decoded: Vec<_> = Records::new(batch.records_bytes(), batch.records_count()).collect::<Result<_, _>>().unwrap();
        for (i, (got, want)) in decoded.iter().zip(&records).enumerate() {
            prop_assert_eq!(got.offset_delta as usize, i);
            prop_assert_eq!(batch.record_timestamp(got.timestamp_delta), want.timestamp);
            prop_assert_eq!(got.key, want.key.as_deref());
            prop_assert_eq!(got.value, want.value.as_deref());
            let headers: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                got.headers().map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec))).collect();
            prop_assert_eq!(&headers, &want.headers);
        }
    }

    #[test]
    fn stamping_never_breaks_the_crc(records in proptest::collection::vec(record(), 1..5), offset in 0i64..i64::MAX / 2, epoch in 0i32.., time in proptest::option::of(0i64..)) {
        let mut bytes = build(&records);
        let mut batch = BatchViewMut::new(&mut bytes).unwrap();
        batch.set_base_offset(offset);
        batch.set_partition_leader_epoch(epoch);
        if let Some(time) = time {
            batch.set_log_append_time(time);
        }
        batch.view().verify_crc().unwrap();
        prop_assert_eq!(batch.view().base_offset(), offset);
    }

    #[test]
    fn no_input_makes_a_decoder_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), count in any::<i32>()) {
        let _ = validate_produced(&bytes, 1 << 20);
        let mut batches = Batches::new(&bytes);
        for batch in batches.by_ref() {
            let _ = batch.verify_crc();
            let _ = records_data(&batch, 1 << 16).map(|data| Records::new(&data, batch.records_count()).count());
        }
        prop_assert!(batches.end().is_some());
        let _ = Records::new(&bytes, count).count();
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let _ = decompress(codec, &bytes, 1 << 16);
        }
    }

    #[test]
    fn damaged_batches_are_rejected_not_misread(records in proptest::collection::vec(record(), 1..5), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let mut bytes = build(&records);
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        // baseOffset and partitionLeaderEpoch lie outside the CRC; any other
        // damage must be caught by framing, the CRC, or Kafka's rules.
        if !(0..8).contains(&i) && !(12..16).contains(&i) {
            prop_assert!(validate_produced(&bytes, 1 << 20).is_err(), "damage at byte {} went unnoticed", i);
        }
    }

    #[test]
    fn a_truncated_buffer_ends_in_a_partial_tail(records in proptest::collection::vec(record(), 1..5), keep in any::<prop::sample::Index>()) {
        let one = build(&records);
        let mut bytes = one.clone();
        bytes.extend_from_slice(&one);
        let cut = one.len() + keep.index(one.len());
        let mut batches = Batches::new(&bytes[..cut]);
        prop_assert_eq!(batches.by_ref().count(), 1);
        prop_assert_eq!(batches.position(), one.len());
        let partial = matches!(batches.end(), Some(BatchesEnd::Partial { .. }) | Some(BatchesEnd::Complete));
        prop_assert!(partial, "{:?}", batches.end());
        prop_assert!(BatchView::new(&bytes[..cut]).is_ok());
    }

    #[test]
    fn damaged_records_behind_a_valid_crc_are_refused_or_decoded_never_a_panic(
        records in proptest::collection::vec(record(), 1..5),
        codec in codec(),
        at in any::<prop::sample::Index>(),
        with in proptest::collection::vec(any::<u8>(), 1..8),
    ) {
        // What a producer that computes its CRC over garbage sends, and
        // what the record-level paths (offset by timestamp, compaction)
        // then expand: the CRC no longer stands between them and the
        // decompressors and the record decoder.
        let mut bytes = recompressed(&build(&records), codec);
        let records_bytes = bytes.len() - layout::RECORDS;
        let start = layout::RECORDS + at.index(records_bytes);
        for (i, b) in with.iter().enumerate() {
            if let Some(byte) = bytes.get_mut(start + i) {
                *byte = *b;
            }
        }
        fix_crc(&mut bytes);
        prop_assert!(validate_produced(&bytes, 1 << 20).is_ok(), "only the records changed");
        let batch = BatchView::new(&bytes).unwrap();
        if let Ok(data) = records_data(&batch, 1 << 16) {
            prop_assert!(data.len() <= 1 << 16);
            for record in Records::new(&data, batch.records_count()) {
                let Ok(record) = record else { break };
                prop_assert_eq!(record.headers().count(), record.headers().len());
            }
        }
    }
}
