//! `rill bench ceiling`: this machine's physical limits — sequential disk
//! writes ended by an fdatasync (and how fast the page cache alone takes
//! them), the latency of one fdatasync, and one loopback TCP stream —
//! measured in the same run as a benchmark so that its results can be
//! quoted as a fraction of them.
//!
//! The page-cache figure matters on virtual machines: new page-cache pages
//! are guest memory the host may have taken back (free page reporting),
//! and backing them again can cost more than the copy itself. A broker
//! writes every produced byte into new pages, so this rate bounds its
//! produce throughput per core, whatever the disk does. Each measurement is a plain
//! blocking function (std only) that owns its scratch file or socket for its
//! duration; none of them may run on an async reactor.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use serde::Serialize;

use super::latency::{Latencies, Percentiles};

/// Bytes of one write of the disk measurement, and of one send and one
/// receive buffer of the loopback measurement.
const CHUNK_BYTES: usize = 1 << 20;

/// Bytes appended before each fdatasync of the latency measurement: a
/// page, the smallest append a log makes durable.
const FDATASYNC_APPEND_BYTES: usize = 4096;

/// Most MiB `--write-mib` and `--loopback-mib` take (1 TiB): a bound on how
/// long a run lasts, and far from overflowing a byte count in a u64.
const MIB_MAX: u64 = 1 << 20;

/// Most fdatasyncs `--fsyncs` takes.
const FDATASYNCS_MAX: u64 = 1_000_000;

#[derive(Debug, clap::Args)]
pub(crate) struct CeilingArgs {
    /// The directory to measure the disk of (a scratch file is written
    /// there and removed).
    #[arg(long, value_name = "PATH", default_value = ".")]
    dir: PathBuf,
    /// MiB to write sequentially, in 1 MiB writes, before one fdatasync.
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u64).range(1..=MIB_MAX),
    )]
    write_mib: u64,
    /// fdatasyncs to time, each after a 4 KiB append.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 200,
        value_parser = clap::value_parser!(u64).range(1..=FDATASYNCS_MAX),
    )]
    fsyncs: u64,
    /// MiB to send over one loopback TCP connection.
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = 4096,
        value_parser = clap::value_parser!(u64).range(1..=MIB_MAX),
    )]
    loopback_mib: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: CeilingArgs) -> anyhow::Result<()> {
    let dir = fs::canonicalize(&args.dir)
        .with_context(|| format!("cannot find the directory {}", args.dir.display()))?;
    let ceiling = measure(&dir, args.write_mib, args.fsyncs, args.loopback_mib)?;
    ceiling.print(args.json)
}

/// This machine's limits, as the report records them. MB are 10^6 bytes.
#[derive(Debug, Serialize)]
pub(crate) struct Ceiling {
    /// The directory whose disk was measured.
    pub(crate) dir: String,
    pub(crate) disk_write_mib: u64,
    pub(crate) disk_write_mb_per_sec: f64,
    /// The same writes up to the fdatasync: new data into the page cache.
    pub(crate) page_cache_write_mb_per_sec: f64,
    /// Each an fdatasync after a 4 KiB append, the append included.
    pub(crate) fdatasync_ms: Percentiles,
    pub(crate) fdatasyncs_per_sec: f64,
    pub(crate) loopback_mib: u64,
    pub(crate) loopback_mb_per_sec: f64,
}

/// Runs the three measurements one after another, so they do not compete.
pub(crate) fn measure(
    dir: &Path,
    write_mib: u64,
    fsyncs: u64,
    loopback_mib: u64,
) -> anyhow::Result<Ceiling> {
    let disk = disk_write(dir, write_mib)?;
    let fdatasyncs = fdatasync_latency(dir, fsyncs)?;
    let loopback = loopback(loopback_mib)?;
    let fdatasync_ms = fdatasyncs
        .latencies
        .percentiles()
        .context("expected fdatasync latencies, found no samples")?;
    Ok(Ceiling {
        dir: dir.display().to_string(),
        disk_write_mib: write_mib,
        disk_write_mb_per_sec: disk.synced.mb_per_sec(),
        page_cache_write_mb_per_sec: disk.buffered.mb_per_sec(),
        fdatasync_ms,
        fdatasyncs_per_sec: fdatasyncs.per_sec(),
        loopback_mib,
        loopback_mb_per_sec: loopback.mb_per_sec(),
    })
}

/// Bytes moved in a span of time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Throughput {
    pub(crate) bytes: u64,
    pub(crate) elapsed: Duration,
}

impl Throughput {
    pub(crate) fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / seconds_at_least_a_nanosecond(self.elapsed)
    }
}

/// fdatasyncs timed one by one.
pub(crate) struct Fdatasyncs {
    pub(crate) count: u64,
    /// All of them, back to back.
    pub(crate) elapsed: Duration,
    pub(crate) latencies: Latencies,
}

impl Fdatasyncs {
    pub(crate) fn per_sec(&self) -> f64 {
        self.count as f64 / seconds_at_least_a_nanosecond(self.elapsed)
    }
}

/// A rate over no measurable time would be infinite, which JSON cannot
/// hold; a nanosecond is below any clock's resolution anyway.
fn seconds_at_least_a_nanosecond(elapsed: Duration) -> f64 {
    elapsed.max(Duration::from_nanos(1)).as_secs_f64()
}

/// Sequential writes to a new file: up to the fdatasync (into the page
/// cache), and through it (down to the disk).
#[derive(Debug)]
pub(crate) struct DiskWrite {
    pub(crate) buffered: Throughput,
    pub(crate) synced: Throughput,
}

/// Writes `mib` MiB to a new file in `dir` in 1 MiB writes, then
/// fdatasyncs it: throughput from the first write to the last one, and to
/// the end of the fdatasync. The file is removed.
pub(crate) fn disk_write(dir: &Path, mib: u64) -> anyhow::Result<DiskWrite> {
    assert!(
        (1..=MIB_MAX).contains(&mib),
        "write MiB out of range: {mib}"
    );
    let mut scratch = ScratchFile::create(dir, "write")?;
    let chunk = incompressible_bytes(CHUNK_BYTES);
    let start = Instant::now();
    for _ in 0..mib {
        scratch
            .file
            .write_all(&chunk)
            .with_context(|| format!("cannot write {}", scratch.path.display()))?;
    }
    let buffered = start.elapsed();
    scratch
        .file
        .sync_data()
        .with_context(|| format!("cannot fdatasync {}", scratch.path.display()))?;
    let elapsed = start.elapsed();
    let bytes = mib * CHUNK_BYTES as u64;
    let written = scratch.file.metadata()?.len();
    ensure!(
        written == bytes,
        "expected {bytes} bytes in {}, found {written}",
        scratch.path.display()
    );
    Ok(DiskWrite {
        buffered: Throughput {
            bytes,
            elapsed: buffered,
        },
        synced: Throughput { bytes, elapsed },
    })
}

/// Appends 4 KiB to a new file in `dir` and fdatasyncs it, `count` times:
/// the latency of making one small append durable, as a log does. The file
/// grows, so each fdatasync also makes its new length durable, as a log's
/// does. The file is removed.
pub(crate) fn fdatasync_latency(dir: &Path, count: u64) -> anyhow::Result<Fdatasyncs> {
    assert!(
        (1..=FDATASYNCS_MAX).contains(&count),
        "fdatasyncs out of range: {count}"
    );
    let mut scratch = ScratchFile::create(dir, "fdatasync")?;
    let block = incompressible_bytes(FDATASYNC_APPEND_BYTES);
    let mut latencies = Latencies::new();
    let start = Instant::now();
    for _ in 0..count {
        let append_start = Instant::now();
        scratch
            .file
            .write_all(&block)
            .and_then(|()| scratch.file.sync_data())
            .with_context(|| format!("cannot append to {}", scratch.path.display()))?;
        latencies.record(append_start.elapsed(), 1);
    }
    Ok(Fdatasyncs {
        count,
        elapsed: start.elapsed(),
        latencies,
    })
}

/// Sends `mib` MiB over one TCP connection on 127.0.0.1, from a thread
/// writing 1 MiB buffers to this one reading into a 1 MiB buffer:
/// throughput from the first byte sent to the last received.
pub(crate) fn loopback(mib: u64) -> anyhow::Result<Throughput> {
    assert!(
        (1..=MIB_MAX).contains(&mib),
        "loopback MiB out of range: {mib}"
    );
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot listen on 127.0.0.1 for the loopback measurement")?;
    let address = listener.local_addr()?;
    // Connect before accepting: the listen backlog holds the connection, and
    // a failed connect is an error here rather than an accept waiting forever.
    let sending = TcpStream::connect(address)
        .with_context(|| format!("cannot connect to {address} over loopback"))?;
    let (mut receiving, _) = listener.accept()?;
    let sender = thread::Builder::new()
        .name("ceiling-sender".to_string())
        .spawn(move || send(sending, mib))?;
    // On an error here `receiving` is dropped, so the sender's next write
    // fails and its thread ends.
    let (received, last_received) =
        receive(&mut receiving).context("cannot read the loopback connection")?;
    let first_sent = sender
        .join()
        .map_err(|_| anyhow!("the loopback sender panicked"))?
        .context("cannot write the loopback connection")?;
    let bytes = mib * CHUNK_BYTES as u64;
    ensure!(
        received == bytes,
        "expected {bytes} bytes over loopback, found {received}"
    );
    Ok(Throughput {
        bytes,
        elapsed: last_received.saturating_duration_since(first_sent),
    })
}

/// Writes `mib` 1 MiB buffers and closes the sending side; when the first
/// write began.
fn send(mut stream: TcpStream, mib: u64) -> io::Result<Instant> {
    let chunk = incompressible_bytes(CHUNK_BYTES);
    let start = Instant::now();
    for _ in 0..mib {
        stream.write_all(&chunk)?;
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(start)
}

/// Reads until the sender closes; the bytes read and when the last of them
/// arrived. The bytes are counted, not checked: checking them would cost
/// the CPU time this measures, and TCP checksums them already.
fn receive(stream: &mut TcpStream) -> io::Result<(u64, Instant)> {
    let mut buffer = vec![0; CHUNK_BYTES];
    let mut received = 0u64;
    let mut last_received = Instant::now();
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Ok((received, last_received)),
            Ok(read) => {
                received += read as u64;
                last_received = Instant::now();
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// `len` pseudo-random bytes (xorshift64): neither zeros a filesystem could
/// leave as a hole nor a pattern it could compress.
fn incompressible_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// A new file of this run in the measured directory, removed when dropped,
/// so that neither an error nor a panic leaves a gigabyte behind. Owned by
/// the one measurement that created it.
struct ScratchFile {
    path: PathBuf,
    file: File,
}

impl ScratchFile {
    /// Creates `.rill-ceiling-<pid>-<purpose>` in `dir`; an existing file of
    /// that name is an error, never overwritten.
    fn create(dir: &Path, purpose: &str) -> anyhow::Result<ScratchFile> {
        let path = dir.join(format!(".rill-ceiling-{}-{purpose}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create the scratch file {}", path.display()))?;
        Ok(ScratchFile { path, file })
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_file(&self.path) {
            tracing::warn!(
                "cannot remove the scratch file {}: {error}",
                self.path.display()
            );
        }
    }
}

impl Ceiling {
    pub(crate) fn print(&self, json: bool) -> anyhow::Result<()> {
        super::report::print(self, json, || self.text())
    }

    fn text(&self) -> String {
        let p = &self.fdatasync_ms;
        format!(
            "ceiling of this machine, disk at {}\n\
             disk write {} MB/s ({} MiB in 1 MiB writes, then fdatasync)\n\
             page cache write {} MB/s (the same writes before the fdatasync)\n\
             fdatasync latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  \
             (mean {:.3}, {} samples, 4 KiB appends)\n\
             fdatasync {} /s\n\
             loopback {} MB/s ({} MiB over one TCP connection)\n",
            self.dir,
            thousands(self.disk_write_mb_per_sec),
            self.disk_write_mib,
            thousands(self.page_cache_write_mb_per_sec),
            p.p50,
            p.p90,
            p.p99,
            p.p99_9,
            p.max,
            p.mean,
            p.samples,
            thousands(self.fdatasyncs_per_sec),
            thousands(self.loopback_mb_per_sec),
            self.loopback_mib,
        )
    }
}

/// `value` rounded to a whole number, with commas between thousands.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.round().max(0.0));
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_empty(dir: &Path) -> bool {
        fs::read_dir(dir).unwrap().next().is_none()
    }

    #[test]
    fn disk_write_reports_a_rate_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let disk = disk_write(dir.path(), 4).unwrap();
        for throughput in [disk.buffered, disk.synced] {
            assert_eq!(throughput.bytes, 4 << 20);
            assert!(throughput.mb_per_sec() > 0.0, "{disk:?}");
        }
        assert!(disk.synced.elapsed >= disk.buffered.elapsed, "{disk:?}");
        assert!(is_empty(dir.path()));
    }

    #[test]
    fn disk_write_into_a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let error = disk_write(&missing, 1).unwrap_err();
        assert!(format!("{error:#}").contains("scratch file"), "{error:#}");
    }

    #[test]
    fn fdatasync_latency_times_every_fdatasync() {
        let dir = tempfile::tempdir().unwrap();
        let fdatasyncs = fdatasync_latency(dir.path(), 5).unwrap();
        let percentiles = fdatasyncs.latencies.percentiles().unwrap();
        assert_eq!(percentiles.samples, 5);
        assert!(percentiles.p50 > 0.0 && percentiles.max >= percentiles.p50);
        assert!(fdatasyncs.per_sec() > 0.0);
        assert!(is_empty(dir.path()));
    }

    #[test]
    fn scratch_file_is_removed_when_dropped_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = ScratchFile::create(dir.path(), "test").unwrap();
        assert!(scratch.path.exists());
        assert!(ScratchFile::create(dir.path(), "test").is_err());
        drop(scratch);
        assert!(is_empty(dir.path()));
    }

    #[test]
    fn loopback_delivers_every_byte() {
        let loopback = loopback(16).unwrap();
        assert_eq!(loopback.bytes, 16 << 20);
        assert!(loopback.mb_per_sec() > 0.0, "{loopback:?}");
    }

    #[test]
    fn report_has_the_figures_in_text_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let ceiling = measure(dir.path(), 2, 3, 4).unwrap();
        assert!(is_empty(dir.path()));
        let text = ceiling.text();
        for needle in [
            "disk write ",
            "page cache write ",
            "fdatasync latency ms: p50 ",
            "loopback ",
        ] {
            assert!(text.contains(needle), "{needle:?} in {text}");
        }
        let json = serde_json::to_value(&ceiling).unwrap();
        for key in [
            "disk_write_mb_per_sec",
            "page_cache_write_mb_per_sec",
            "fdatasyncs_per_sec",
            "loopback_mb_per_sec",
        ] {
            assert!(json[key].as_f64().unwrap() > 0.0, "{key}: {json}");
        }
        assert_eq!(json["fdatasync_ms"]["samples"], 3);
        assert_eq!(json["disk_write_mib"], 2);
        assert_eq!(json["loopback_mib"], 4);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1234.5), "1,235");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn incompressible_bytes_are_not_a_pattern() {
        let bytes = incompressible_bytes(4096);
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().filter(|&&byte| byte == 0).count() < 64);
        assert_ne!(bytes[..2048], bytes[2048..]);
    }
}
