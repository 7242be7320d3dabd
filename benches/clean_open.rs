//! Shows what opening a large log costs after a clean shutdown versus
//! after a crash: wall time and bytes read from the disk (from
//! /proc/self/io), with the page cache dropped before each open so that
//! every byte read is a real read.
//!
//! ```sh
//! cargo run --release -p rill-benches --bin clean-open -- 10   # GiB of log
//! ```
//!
//! Dropping the page cache needs root; without it the byte counts are 0
//! and the times only show CPU work.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::print_stdout
)] // a measurement tool: failures abort it

use std::sync::Arc;
use std::time::Instant;

use rill_benches::{append_pipelined, batch_of, bench_root, create_log};
use rill_storage::{FlushPolicy, Flusher, Log, LogConfig, Offset, RealDisk, RecoveryHints};

fn main() {
    let gib: usize = std::env::args().nth(1).map_or(10, |a| a.parse().unwrap());
    let root = bench_root();
    let dir = root.path().join("big-0");
    let flusher = Flusher::start(2).unwrap();
    let config = LogConfig {
        flush: FlushPolicy::None,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let log = create_log(&dir, config, &flusher);
    let batch = batch_of(64 * 1024);
    let started = Instant::now();
    append_pipelined(&log, &batch, gib * 1024 * 1024 * 1024 / batch.len(), 1);
    let end = log.close().unwrap();
    println!(
        "wrote {gib} GiB ({} segments, log end {end}) in {:.1} s",
        log.segment_count(),
        started.elapsed().as_secs_f64()
    );
    let last_segment = *log.segment_base_offsets().last().unwrap();
    drop(log);

    let clean = RecoveryHints {
        clean_shutdown: true,
        recovery_point: end,
        log_start_offset: Offset(0),
    };
    let log = measure("clean shutdown", &dir, &config, clean, &flusher);
    log.close().unwrap();
    drop(log);
    // As if the broker crashed after checkpointing a recovery point inside
    // the last segment: only that segment is scanned.
    let typical_crash = RecoveryHints {
        clean_shutdown: false,
        recovery_point: last_segment,
        log_start_offset: Offset(0),
    };
    let log = measure(
        "crash, recovery point in the last segment",
        &dir,
        &config,
        typical_crash,
        &flusher,
    );
    log.close().unwrap();
    drop(log);
    let log = measure(
        "crash, no recovery point",
        &dir,
        &config,
        RecoveryHints::unknown(),
        &flusher,
    );
    drop(log);
}

fn measure(
    name: &str,
    dir: &std::path::Path,
    config: &LogConfig,
    hints: RecoveryHints,
    flusher: &Flusher,
) -> Log {
    let dropped = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    let before = read_bytes();
    let started = Instant::now();
    let (log, report) = Log::open(dir, *config, hints, flusher, Arc::new(RealDisk), 0).unwrap();
    let elapsed = started.elapsed();
    let read = read_bytes() - before;
    println!(
        "{name}: opened in {:.3} s, read {:.1} MiB from disk{}; scanned {} of {} segments, validated {:.1} MiB",
        elapsed.as_secs_f64(),
        read as f64 / (1024.0 * 1024.0),
        if dropped {
            ""
        } else {
            " (page cache NOT dropped: not root?)"
        },
        report.scanned_segments,
        report.scanned_segments + report.trusted_segments,
        report.validated_bytes as f64 / (1024.0 * 1024.0),
    );
    log
}

/// Bytes this process has caused to be read from storage.
fn read_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|line| line.strip_prefix("read_bytes: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}
