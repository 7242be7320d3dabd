//! Arbitrary bytes as record batches, through everything rill-record does
//! with bytes it did not write:
//! - the produce path: `validate_produced`, then the broker's stamps;
//! - the fetch, recovery and compaction paths: `Batches` framing, CRC,
//!   decompression (bounded), record and header decoding, and compaction's
//!   rewrite of a batch, which must decode back to the same records;
//! - the decompressors and the record decoder on raw bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rill_record::{
    BatchRewriter, BatchView, BatchViewMut, Batches, Compression, Record, Records, decompress,
    delete_horizon_of, records_data, validate_produced,
};

/// The broker's default max.message.bytes.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024 + 12;

/// The bound the storage expands compressed records sections to.
const EXPANDED_RECORDS_BYTES_MAX: usize = 16 << 20;

fuzz_target!(|data: &[u8]| {
    produce_path(data);
    stored_path(data);
    raw_decoders(data);
});

fn produce_path(data: &[u8]) {
    let Ok(batch) = validate_produced(data, MAX_MESSAGE_BYTES) else {
        return;
    };
    assert_eq!(batch.size(), data.len());
    assert!(batch.records_count() > 0);
    assert_eq!(batch.base_offset(), 0);
    assert!(batch.verify_crc().is_ok());
    // The stamps an append makes keep the batch whole and its CRC valid.
    let mut stamped = data.to_vec();
    let mut view = BatchViewMut::new(&mut stamped).expect("a valid batch frames");
    view.set_base_offset(1 << 40);
    view.set_partition_leader_epoch(7);
    assert!(view.view().verify_crc().is_ok());
    view.set_log_append_time(1_700_000_000_000);
    assert!(view.view().verify_crc().is_ok());
    assert_eq!(
        view.view().next_offset(),
        (1 << 40) + i64::from(batch.records_count())
    );
}

fn stored_path(data: &[u8]) {
    let mut batches = Batches::new(data);
    let mut position = 0;
    for batch in batches.by_ref() {
        assert!(batch.size() >= rill_record::layout::RECORDS);
        assert_eq!(batch.as_bytes(), &data[position..position + batch.size()]);
        position += batch.size();
        let _ = delete_horizon_of(&batch);
        if batch.verify_crc().is_ok() {
            rewrite_round_trip(&batch);
        }
    }
    assert_eq!(batches.position(), position);
    assert!(batches.end().is_some());
}

/// Decodes every record of `batch`; if they all decode, compaction's
/// rewrite keeping all of them gives a valid batch of the same records.
fn rewrite_round_trip(batch: &BatchView<'_>) {
    let Ok(records) = records_data(batch, EXPANDED_RECORDS_BYTES_MAX) else {
        return;
    };
    let Ok(decoded) = Records::new(&records, batch.records_count()).collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    for record in &decoded {
        assert!(record.headers().count() == record.headers().len());
    }
    let mut rewriter = BatchRewriter::new(*batch, None);
    for record in &decoded {
        rewriter.keep(record);
    }
    let Ok(rewritten) = rewriter.finish() else {
        return;
    };
    let view = BatchView::new(&rewritten).expect("a rewritten batch frames");
    assert_eq!(view.size(), rewritten.len());
    assert!(view.verify_crc().is_ok());
    assert_eq!(view.base_offset(), batch.base_offset());
    assert_eq!(view.last_offset_delta(), batch.last_offset_delta());
    assert_eq!(view.records_count() as usize, decoded.len());
    let again =
        records_data(&view, EXPANDED_RECORDS_BYTES_MAX).expect("a rewritten batch decompresses");
    let redecoded: Vec<Record<'_>> = Records::new(&again, view.records_count())
        .collect::<Result<_, _>>()
        .expect("a rewritten batch's records decode");
    assert_eq!(redecoded.len(), decoded.len());
    for (before, after) in decoded.iter().zip(&redecoded) {
        assert_eq!(before.offset_delta, after.offset_delta);
        assert_eq!(before.key, after.key);
        assert_eq!(before.value, after.value);
        assert_eq!(
            batch.record_timestamp(before.timestamp_delta),
            view.record_timestamp(after.timestamp_delta)
        );
        assert!(before.headers().eq(after.headers()));
    }
}

fn raw_decoders(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let count = i32::from(selector) - 8;
    let _ = Records::new(rest, count).count();
    let codec = match selector % 5 {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        _ => Compression::Zstd,
    };
    let max_bytes = 1 << (usize::from(selector) % 21);
    if let Ok(out) = decompress(codec, rest, max_bytes) {
        assert!(out.len() <= max_bytes);
    }
}
