//! Storage throughput, with this disk's ceiling measured in the same run.
//!
//! ```sh
//! cargo bench -p rill-benches --bench storage            # everything
//! cargo bench -p rill-benches --bench storage -- append  # a subset
//! RILL_BENCH_DIR=/mnt/nvme cargo bench -p rill-benches   # another disk
//! ```
//!
//! Figures and how to read them: docs/benchmarks.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // benchmark code: failures abort the run

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rill_benches::{
    append_pipelined, batch_of, bench_root, create_log, timed_appends, timed_disk_ceiling,
    timed_writes, unique_dir,
};
use rill_storage::{
    FlushPolicy, Flusher, Log, LogConfig, Offset, RealDisk, RecoveryHints, SyncMode,
    SyncModeSetting,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// Bytes appended per measured iteration: enough that no case fits in a
/// disk's write cache.
const APPEND_BYTES: usize = 1024 * MIB;
/// Bytes the disk ceiling writes, as `dd bs=1M count=2048 conv=fdatasync`.
const CEILING_BYTES: usize = 2048 * MIB;
/// Size of the log read back and recovered.
const LOG_BYTES: usize = 1024 * MIB;
/// Appends each appender keeps unacknowledged, as a producer keeps
/// requests in flight.
const WINDOW: usize = 32;

fn policy(flush: FlushPolicy) -> LogConfig {
    LogConfig {
        flush,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn ceiling(c: &mut Criterion) {
    let root = bench_root();
    let mut group = c.benchmark_group("ceiling");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(CEILING_BYTES as u64));
    group.bench_function("dd_1MiB_writes_then_fdatasync", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| timed_disk_ceiling(root.path(), CEILING_BYTES))
                .sum()
        })
    });
    group.finish();
}

fn append(c: &mut Criterion) {
    let root = bench_root();
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(APPEND_BYTES as u64));
    let interval = FlushPolicy::Interval {
        messages: u64::MAX,
        ms: 1_000,
    };
    let cases = [
        ("none/1KiB", FlushPolicy::None, KIB, 1),
        ("none/4KiB", FlushPolicy::None, 4 * KIB, 1),
        ("none/16KiB", FlushPolicy::None, 16 * KIB, 1),
        ("none/64KiB", FlushPolicy::None, 64 * KIB, 1),
        ("interval_1s/1KiB", interval, KIB, 1),
        ("interval_1s/64KiB", interval, 64 * KIB, 1),
        ("fsync/1KiB/4_appenders", FlushPolicy::Fsync, KIB, 4),
        ("fsync/64KiB/1_appender", FlushPolicy::Fsync, 64 * KIB, 1),
        ("fsync/64KiB/4_appenders", FlushPolicy::Fsync, 64 * KIB, 4),
        ("fsync/1MiB/4_appenders", FlushPolicy::Fsync, MIB - KIB, 4),
    ];
    for (name, flush, size, appenders) in cases {
        let batch = batch_of(size);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        timed_appends(
                            root.path(),
                            policy(flush),
                            &batch,
                            APPEND_BYTES,
                            appenders,
                            WINDOW,
                        )
                    })
                    .sum()
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("baseline_write");
    group
        .sample_size(10)
        .throughput(Throughput::Bytes(APPEND_BYTES as u64));
    for (name, size) in [("1KiB", KIB), ("64KiB", 64 * KIB)] {
        let batch = batch_of(size);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| timed_writes(root.path(), &batch, APPEND_BYTES))
                    .sum()
            })
        });
    }
    group.finish();
}

/// A log of `LOG_BYTES` in batches of `batch_bytes`, written without syncs
/// and left in the page cache.
fn written_log(
    root: &std::path::Path,
    batch_bytes: usize,
    flusher: &Flusher,
) -> (std::path::PathBuf, Log) {
    let dir = unique_dir(root);
    let log = create_log(&dir, policy(FlushPolicy::None), flusher);
    let batch = batch_of(batch_bytes);
    append_pipelined(&log, &batch, LOG_BYTES / batch.len(), 1);
    (dir, log)
}

fn read(c: &mut Criterion) {
    let root = bench_root();
    let flusher = Flusher::start(1).unwrap();
    let (_dir, log) = written_log(root.path(), 64 * KIB, &flusher);
    let end = log.log_end_offset();
    let size = log.size_bytes();
    let mut group = c.benchmark_group("read");
    group.sample_size(10).throughput(Throughput::Bytes(size));
    // Each slice is copied once, as handing it to a socket would.
    let mut sink = vec![0u8; 2 * MIB];
    group.bench_function("sequential_1MiB_reads", |b| {
        b.iter(|| {
            let mut next = Offset(0);
            let mut total = 0u64;
            while next < end {
                let read = log.read(next, MIB, end, true).unwrap();
                sink[..read.bytes.len()].copy_from_slice(&read.bytes);
                total += read.bytes.len() as u64;
                let last = rill_record::Batches::new(&read.bytes).last().unwrap();
                next = Offset(last.next_offset());
            }
            assert_eq!(total, size);
        })
    });
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let root = bench_root();
    let flusher = Flusher::start(1).unwrap();
    let (dir, log) = written_log(root.path(), 16 * KIB, &flusher);
    let size = log.size_bytes();
    let config = log.config();
    drop(log); // a crash: the next open validates everything
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10).throughput(Throughput::Bytes(size));
    group.bench_function("validate_from_page_cache", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let (log, report) = Log::open(
                    &dir,
                    config,
                    RecoveryHints::unknown(),
                    &flusher,
                    Arc::new(RealDisk),
                    0,
                )
                .unwrap();
                total += started.elapsed();
                assert_eq!(report.validated_bytes, size);
                drop(log);
            }
            total
        })
    });
    group.finish();
}

/// Group commit across logs: one 1 KiB `fsync` append to each of N logs
/// of one file system, waited for together — one flush round (or two),
/// made durable with one syncfs (`auto` on ext4/xfs/btrfs/f2fs) or with
/// an fdatasync per log (`per-file`, log.flush.sync.mode). The syscalls'
/// cost, without the network in front.
fn group_commit(c: &mut Criterion) {
    let root = bench_root();
    let mut group = c.benchmark_group("group_commit");
    group.sample_size(20);
    let batch = batch_of(KIB);
    for logs in [6usize, 64] {
        for (name, setting) in [
            ("syncfs", SyncModeSetting::Auto),
            ("per_file", SyncModeSetting::PerFile),
        ] {
            let flusher = Flusher::start_with(1, setting).unwrap();
            let dir = unique_dir(root.path());
            let disk: Arc<dyn rill_storage::Disk> = Arc::new(RealDisk);
            let choice = flusher.sync_choice(root.path(), &disk).unwrap();
            if setting == SyncModeSetting::Auto && choice.mode != SyncMode::Syncfs {
                eprintln!("skipping group_commit/{name}: {choice}");
                continue;
            }
            let opened: Vec<Log> = (0..logs)
                .map(|i| {
                    create_log(
                        &dir.join(format!("t-{i}")),
                        policy(FlushPolicy::Fsync),
                        &flusher,
                    )
                })
                .collect();
            group.throughput(Throughput::Elements(logs as u64));
            group.bench_function(format!("{logs}_logs/{name}"), |b| {
                b.iter(|| {
                    let tickets: Vec<_> = opened
                        .iter()
                        .map(|log| log.append(&batch, 0, 0).unwrap())
                        .collect();
                    for ticket in tickets {
                        ticket.wait().unwrap();
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, ceiling, append, read, recovery, group_commit);
criterion_main!(benches);
