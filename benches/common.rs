//! Workloads shared by the storage benchmarks: batches, logs on the real
//! disk, pipelined appenders, and the disk ceiling they are compared to.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::print_stdout
)] // benchmark code: failures abort the run

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_record::{BatchBuilder, NewRecord};
use rill_storage::{AppendTicket, Flusher, Log, LogConfig, Offset, RealDisk};

/// Where benchmark logs live: `RILL_BENCH_DIR`, else the system temp dir.
/// It must be a real disk (not tmpfs) for fsync figures to mean anything.
pub fn bench_root() -> tempfile::TempDir {
    match std::env::var_os("RILL_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

/// A producer's batch of about `bytes` bytes in records of 1 KiB (or one
/// smaller record), as a client would send it.
pub fn batch_of(bytes: usize) -> Vec<u8> {
    let record = vec![0x5au8; bytes.min(1024).saturating_sub(80)];
    let mut builder = BatchBuilder::new(1_700_000_000_000);
    while builder.size() + record.len() + 16 <= bytes || builder.size() <= 61 {
        builder.push(&NewRecord::value(&record));
    }
    builder.finish().unwrap()
}

pub fn create_log(dir: &Path, config: LogConfig, flusher: &Flusher) -> Log {
    Log::create(dir, config, Offset(0), flusher, Arc::new(RealDisk), 0).unwrap()
}

/// Appends `batch` `count` times from one thread, keeping up to `window`
/// appends unacknowledged (as a producer keeps requests in flight), and
/// waits for all of them.
pub fn append_pipelined(log: &Log, batch: &[u8], count: usize, window: usize) {
    let mut pending: std::collections::VecDeque<AppendTicket> = std::collections::VecDeque::new();
    for _ in 0..count {
        if pending.len() >= window {
            pending.pop_front().unwrap().wait().unwrap();
        }
        pending.push_back(log.append(batch, 0, 0).unwrap());
    }
    for ticket in pending {
        ticket.wait().unwrap();
    }
}

/// Appends `total_bytes` of `batch` from `appenders` threads into a fresh
/// log with `config`; returns the time from first append to last
/// acknowledgement.
pub fn timed_appends(
    root: &Path,
    config: LogConfig,
    batch: &[u8],
    total_bytes: usize,
    appenders: usize,
    window: usize,
) -> Duration {
    let flusher = Flusher::start(2).unwrap();
    let dir = unique_dir(root);
    let log = Arc::new(create_log(&dir, config, &flusher));
    let per_thread = total_bytes / batch.len() / appenders;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..appenders {
            let log = Arc::clone(&log);
            scope.spawn(move || append_pipelined(&log, batch, per_thread, window));
        }
    });
    let elapsed = started.elapsed();
    drop(log);
    std::fs::remove_dir_all(&dir).unwrap();
    elapsed
}

/// The same bytes through plain write(2) onto one file: the baseline an
/// mmap'd log must beat, or justify itself against.
pub fn timed_writes(root: &Path, batch: &[u8], total_bytes: usize) -> Duration {
    let path = unique_dir(root).with_extension("write");
    let mut file = File::create(&path).unwrap();
    let started = Instant::now();
    for _ in 0..total_bytes / batch.len() {
        file.write_all(batch).unwrap();
    }
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_file(&path).unwrap();
    elapsed
}

/// This disk's sequential write ceiling, as `dd bs=1M conv=fdatasync`
/// measures it: `total_bytes` in 1 MiB writes, then one fdatasync.
pub fn timed_disk_ceiling(root: &Path, total_bytes: usize) -> Duration {
    let path = unique_dir(root).with_extension("dd");
    let block = vec![0u8; 1 << 20];
    let mut file = File::create(&path).unwrap();
    let started = Instant::now();
    for _ in 0..total_bytes / block.len() {
        file.write_all(&block).unwrap();
    }
    file.sync_data().unwrap();
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_file(&path).unwrap();
    elapsed
}

/// A fresh path under `root` no other call returned.
pub fn unique_dir(root: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    root.join(format!("bench-{}-{n}", std::process::id()))
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}
