//! What the segment-file check (rill-storage's file_check.rs: fstat of
//! the files a call is about to touch) costs on the hot paths: a fetch of
//! one small batch (two fstats) and a page-cache append of one small
//! batch (three), the cases where it weighs most against the call.
//!
//! ```sh
//! cargo bench -p rill-benches --bench file_check
//! ```
//!
//! Figures: docs/reliability.md, "Disk faults".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // benchmark code: failures abort the run

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rill_benches::{batch_of, bench_root, create_log, unique_dir};
use rill_storage::{FlushPolicy, Flusher, LogConfig, Offset};

/// Batches in the log that reads pick from.
const BATCHES: i64 = 10_000;
/// Appends between two untimed truncations, which keep the log small.
const APPENDS_PER_ROUND: u64 = 10_000;

fn config() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::None,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn hot_paths(c: &mut Criterion) {
    let root = bench_root();
    let flusher = Flusher::start(1).unwrap();
    let log = create_log(&unique_dir(root.path()), config(), &flusher);
    let batch = batch_of(1024);
    for _ in 0..BATCHES {
        log.append(&batch, 0, 0).unwrap().wait().unwrap(); // `none`: ready at once
    }
    let mut group = c.benchmark_group("file_check");
    group.measurement_time(Duration::from_secs(5));
    let mut next = 0i64;
    group.bench_function("read_one_1KiB_batch", |b| {
        b.iter(|| {
            next = (next + 7919) % BATCHES; // hop around, as many consumers would
            let read = log.read(Offset(next), 1024, Offset(BATCHES), true).unwrap();
            assert!(!read.bytes.is_empty());
            read
        })
    });
    let appended = create_log(&unique_dir(root.path()), config(), &flusher);
    group.bench_function("append_one_1KiB_batch_page_cache", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let round = left.min(APPENDS_PER_ROUND);
                let started = Instant::now();
                for _ in 0..round {
                    // `none`: the ticket is ready at once.
                    appended.append(&batch, 0, 0).unwrap().wait().unwrap();
                }
                elapsed += started.elapsed();
                appended.truncate_to(Offset(0)).unwrap();
                left -= round;
            }
            elapsed
        })
    });
    let file = std::fs::File::open(log.dir().join(format!("{:020}.log", 0))).unwrap();
    group.bench_function("one_fstat", |b| {
        b.iter(|| rustix::fs::fstat(&file).unwrap().st_size)
    });
    group.finish();
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
