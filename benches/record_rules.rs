//! What a topic's record rules (rill-record's record_rules.rs) cost per
//! produced batch, beside the validation every batch gets
//! (`validate_produced`: framing and CRC-32C):
//!
//! - a topic that asks for nothing (the default): the rules return before
//!   looking at a record — the common path must stay at its per-batch cost;
//! - a compacted topic: every record's key is checked (a walk of the
//!   records);
//! - a topic with `compression.type=zstd` or `lz4` and an uncompressed
//!   producer: the records are compressed again with a new CRC.
//!
//! Batches of 16 records of 1 KiB, and of 100 records of 100 B, as
//! librdkafka sends them at the bench's sizes.
//!
//! ```sh
//! cargo bench -p rill-benches --bench record_rules
//! ```
//!
//! Figures: docs/benchmarks.md, "Record rules on produce".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // benchmark code: failures abort the run

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rill_record::{
    BatchBuilder, Compression, NewRecord, RecordRules, TopicCompression, apply_record_rules,
    validate_produced,
};

const MAX_MESSAGE_BYTES: usize = 1 << 20;

fn batch(records: usize, value_bytes: usize) -> Vec<u8> {
    // Values like a bench client's: a counter in a compressible pad.
    let values: Vec<Vec<u8>> = (0..records)
        .map(|i| {
            let mut value = format!("{i:08}").into_bytes();
            value.resize(value_bytes, b'x');
            value
        })
        .collect();
    let keys: Vec<Vec<u8>> = (0..records)
        .map(|i| format!("key-{i}").into_bytes())
        .collect();
    let records: Vec<NewRecord<'_>> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| NewRecord::key_value(k, Some(v)))
        .collect();
    BatchBuilder::new(1_700_000_000_000)
        .producer(1, 0, 0)
        .with_records(&records)
        .finish()
        .unwrap()
}

fn rules(keys_required: bool, compression: TopicCompression) -> RecordRules {
    RecordRules {
        keys_required,
        compression,
        expanded_bytes_max: 128 << 20,
    }
}

fn record_rules(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_rules");
    group.measurement_time(Duration::from_secs(4));
    for (shape, bytes) in [("16x1KiB", batch(16, 1024)), ("100x100B", batch(100, 100))] {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        let cases = [
            ("validate_only", None),
            (
                "default_topic",
                Some(rules(false, TopicCompression::Producer)),
            ),
            (
                "compacted_topic",
                Some(rules(true, TopicCompression::Producer)),
            ),
            (
                "recompress_zstd",
                Some(rules(
                    false,
                    TopicCompression::Codec {
                        codec: Compression::Zstd,
                        level: 3,
                    },
                )),
            ),
            (
                "recompress_lz4",
                Some(rules(
                    false,
                    TopicCompression::Codec {
                        codec: Compression::Lz4,
                        level: 9,
                    },
                )),
            ),
        ];
        for (name, rules) in cases {
            group.bench_function(format!("{shape}/{name}"), |b| {
                b.iter(|| {
                    let view = validate_produced(black_box(&bytes), MAX_MESSAGE_BYTES).unwrap();
                    match &rules {
                        Some(rules) => apply_record_rules(&view, rules).unwrap().map(|v| v.len()),
                        None => Some(view.size()),
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, record_rules);
criterion_main!(benches);
