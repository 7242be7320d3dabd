//! Power cuts at every step: creating a log, rolling segments, and a
//! compaction swap, each run again and again with the power cut before
//! its first disk call, then its second, and so on to the end. The crash
//! image (`FaultyDisk::track_crashes`) keeps only what a sync made
//! durable: directory entries whose directory was synced (or a real
//! syncfs), file data as of its last fdatasync; three more images of
//! each cut keep different pseudo-random subsets of the unsynced
//! directory changes too. After recovering from either, everything acknowledged before the
//! cut must be there.
//!
//! Each scenario runs on three disks: ext4 (one syncfs per flush round),
//! ext4 with `log.flush.sync.mode=per-file`, and FUSE, whose syncfs
//! writes nothing — where trusting syncfs would lose acknowledged records.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::read_all;
use rill_record::{BatchBuilder, Batches, NewRecord, Records, records_data};
use rill_storage::testing::FaultyDisk;
use rill_storage::{
    CleanerConfig, CleanupPolicy, FUSE_MAGIC, FlushPolicy, Flusher, KernelVersion, Log, LogConfig,
    Offset, RealDisk, RecoveryHints, SyncModeSetting,
};

/// A record as acknowledged: (offset, key, value).
type Record = (Offset, Vec<u8>, Vec<u8>);

/// The file system a run pretends to be on.
#[derive(Clone, Copy, Debug)]
enum Disk {
    /// syncfs per round: the crash image takes a syncfs as durable.
    Ext4,
    /// ext4, forced to sync file by file.
    Ext4PerFile,
    /// syncfs makes nothing durable: the logs must sync file by file.
    Fuse,
}

const LINUX: KernelVersion = KernelVersion {
    major: 6,
    minor: 18,
};

/// What a run had acknowledged before the power cut.
#[derive(Debug, Default)]
struct Acked {
    created: bool,
    records: Vec<Record>,
    /// Every record appended, acknowledged before the cut or not: what
    /// may be found after it.
    written: Vec<Record>,
}

impl Acked {
    fn end(&self) -> Offset {
        self.records.last().map_or(Offset(0), |r| r.0.plus(1))
    }
}

/// One run: a live tree whose disk cuts the power before call `crash_at`.
struct Run {
    root: tempfile::TempDir,
    image: tempfile::TempDir,
    disk: Arc<FaultyDisk>,
    flusher: Flusher,
    acked: Acked,
}

impl Run {
    fn new(disk_kind: Disk) -> Run {
        let disk = Arc::new(FaultyDisk::default());
        let setting = match disk_kind {
            Disk::Ext4 => {
                disk.pretend_file_system(0xEF53, LINUX);
                SyncModeSetting::Auto
            }
            Disk::Ext4PerFile => {
                disk.pretend_file_system(0xEF53, LINUX);
                SyncModeSetting::PerFile
            }
            Disk::Fuse => {
                disk.pretend_file_system(FUSE_MAGIC, LINUX);
                SyncModeSetting::Auto
            }
        };
        Run {
            root: tempfile::tempdir().unwrap(),
            image: tempfile::tempdir().unwrap(),
            disk,
            // One flusher thread: a run's disk calls come in one order.
            flusher: Flusher::start_with(1, setting).unwrap(),
            acked: Acked::default(),
        }
    }

    fn dir(&self) -> std::path::PathBuf {
        self.root.path().join("topic-0")
    }

    fn image_root(&self) -> std::path::PathBuf {
        self.image.path().join("root")
    }

    /// The two images of the cut: no unsynced change kept, and some.
    fn images(&self) -> Vec<std::path::PathBuf> {
        let image = self.image_root();
        let mut images = FaultyDisk::reordered_images(&image);
        images.push(image);
        images
    }

    /// Cuts the power just before disk call `op` from now on.
    fn track(&self, op: u64) {
        self.disk.track_crashes(self.root.path()).unwrap();
        self.disk.crash_at(op, &self.image_root());
    }

    fn create(&mut self, config: LogConfig) -> Log {
        let log = Log::create(
            &self.dir(),
            config,
            Offset(0),
            &self.flusher,
            self.disk.clone(),
            0,
        )
        .unwrap();
        if !self.disk.crashed() {
            self.acked.created = true;
        }
        log
    }

    /// Appends `records` ((key, value) pairs) as one batch and waits for
    /// its acknowledgement (`fsync`), which counts if the power was still
    /// on after it.
    fn append(&mut self, log: &Log, records: &[(String, String)]) {
        let new: Vec<NewRecord<'_>> = records
            .iter()
            .map(|(k, v)| NewRecord {
                timestamp: 0,
                key: Some(k.as_bytes()),
                value: Some(v.as_bytes()),
                headers: &[],
            })
            .collect();
        let batch = BatchBuilder::new(0).with_records(&new).finish().unwrap();
        let info = log.append(&batch, 0, 0).unwrap().wait().unwrap();
        let acked = !self.disk.crashed();
        for (i, (k, v)) in records.iter().enumerate() {
            let offset = Offset(info.base_offset.value() + i as i64);
            let record = (offset, k.clone().into_bytes(), v.clone().into_bytes());
            if acked {
                self.acked.records.push(record.clone());
            }
            self.acked.written.push(record);
        }
    }

    /// Opens the log in crash image `image`, as a restart would:
    /// validating from `recovery_point` (what a checkpoint could have said).
    fn recover(&self, image: &Path, config: LogConfig, recovery_point: Offset) -> Option<Log> {
        let dir = image.join("topic-0");
        if !dir.exists() {
            assert!(
                !self.acked.created,
                "the log's directory is gone after its creation was acknowledged"
            );
            return None;
        }
        let flusher = Flusher::start(1).unwrap();
        let hints = RecoveryHints {
            clean_shutdown: false,
            recovery_point,
            log_start_offset: Offset(0),
        };
        let (log, report) = Log::open(&dir, config, hints, &flusher, Arc::new(RealDisk), 0)
            .unwrap_or_else(|e| panic!("recovery failed: {e}"));
        assert_eq!(
            report.missing_below_recovery_point, None,
            "acknowledged offsets missing"
        );
        Some(log)
    }
}

/// Runs `scenario` with the power cut before each disk call in turn,
/// until a run ends before its cut; `check` looks at each crash image.
/// Returns how many cuts were made.
fn at_every_step(disk: Disk, scenario: impl Fn(&mut Run), check: impl Fn(&Run)) -> u64 {
    for op in 0.. {
        let mut run = Run::new(disk);
        run.track(op);
        scenario(&mut run);
        if !run.disk.crashed() {
            if matches!(disk, Disk::Fuse | Disk::Ext4PerFile) {
                assert_eq!(
                    run.disk.file_system_syncs(),
                    0,
                    "a per-file log dir never trusts syncfs"
                );
            }
            return op;
        }
        check(&run);
    }
    unreachable!("the loop returns once a run ends before its cut")
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        segment_index_bytes: 4096,
        index_interval_bytes: 128,
        retention_ms: -1,
        flush: FlushPolicy::Fsync,
        ..LogConfig::default()
    }
}

fn record(key: usize, n: usize) -> (String, String) {
    (
        format!("k{key}"),
        format!("value {n} of key {key}: {}", "x".repeat(60)),
    )
}

/// Every acknowledged record is read back at its offset, unchanged, from
/// both images.
fn check_all_acknowledged(run: &Run, config: LogConfig) {
    for image in run.images() {
        check_image(run, &image, config);
    }
}

fn check_image(run: &Run, image: &Path, config: LogConfig) {
    let Some(log) = run.recover(image, config, run.acked.end()) else {
        return;
    };
    assert!(log.log_end_offset() >= run.acked.end());
    let read: BTreeMap<Offset, Vec<u8>> = read_all(&log)
        .into_iter()
        .map(|(offset, value, _)| (offset, value))
        .collect();
    for (offset, _, value) in &run.acked.records {
        assert_eq!(
            read.get(offset),
            Some(value),
            "acknowledged record at offset {offset} lost"
        );
    }
}

fn create_and_append(run: &mut Run) {
    let log = run.create(small_config());
    run.append(&log, &[record(0, 0)]);
    run.append(&log, &[record(1, 1), record(2, 2)]);
}

fn roll_segments(run: &mut Run) {
    let log = run.create(small_config());
    for n in 0..16 {
        run.append(&log, &[record(n % 3, n), record(n % 3, n + 100)]);
    }
    // The scenario must roll, or it tests nothing.
    assert!(log.segment_count() > 3, "{} segments", log.segment_count());
}

#[test]
fn a_power_cut_while_creating_a_log_loses_nothing_acknowledged() {
    for disk in [Disk::Ext4, Disk::Ext4PerFile, Disk::Fuse] {
        let cuts = at_every_step(disk, create_and_append, |run| {
            check_all_acknowledged(run, small_config());
        });
        assert!(cuts > 5, "{disk:?}: only {cuts} steps");
    }
}

#[test]
fn a_power_cut_while_segments_roll_loses_nothing_acknowledged() {
    for disk in [Disk::Ext4, Disk::Ext4PerFile, Disk::Fuse] {
        let cuts = at_every_step(disk, roll_segments, |run| {
            check_all_acknowledged(run, small_config());
        });
        assert!(cuts > 20, "{disk:?}: only {cuts} steps");
    }
}

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        ..small_config()
    }
}

/// Fills several segments with three keys written over and over and one
/// key per batch written once (untracked: all of it is acknowledged and
/// durable), then cuts the power at each step of a compaction pass and
/// of one append after it.
fn compact(run: &mut Run, op: u64) {
    let log = run.create(compact_config());
    for n in 0..16 {
        // A key written once per batch: every cleaned segment keeps a
        // latest value, so losing one is seen.
        run.append(&log, &[record(n % 3, n), record(100 + n, n + 100)]);
    }
    assert!(log.segment_count() > 3);
    run.track(op);
    let outcome = log
        .compact(0, log.log_end_offset(), &CleanerConfig::default())
        .unwrap();
    assert!(outcome.ran && !outcome.aborted);
    if !run.disk.crashed() {
        assert!(outcome.segments_cleaned > 1, "{outcome:?}");
    }
    run.append(&log, &[record(0, 1000)]);
}

/// Every record read back was appended at that offset, and the latest
/// acknowledged value of each key is there: never both the old segments
/// and the cleaned one, never neither.
fn check_compacted(run: &Run) {
    for image in run.images() {
        check_compacted_image(run, &image);
    }
}

fn check_compacted_image(run: &Run, image: &Path) {
    let Some(log) = run.recover(image, compact_config(), run.acked.end()) else {
        panic!("the log was created before the power cut");
    };
    assert!(log.log_end_offset() >= run.acked.end());
    let read = consume(&log);
    assert!(
        read.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets increase, each once"
    );
    let written: BTreeMap<Offset, (&[u8], &[u8])> = run
        .acked
        .written
        .iter()
        .map(|(o, k, v)| (*o, (k.as_slice(), v.as_slice())))
        .collect();
    for (offset, key, value) in &read {
        assert_eq!(
            written.get(offset),
            Some(&(key.as_slice(), value.as_slice())),
            "a record at offset {offset} that was never appended there"
        );
    }
    let mut latest: BTreeMap<&[u8], Offset> = BTreeMap::new();
    for (offset, key, _) in &run.acked.records {
        latest.insert(key, *offset);
    }
    for (key, offset) in latest {
        assert!(
            read.iter().any(|(o, k, _)| *o == offset && k == key),
            "the latest value of key {} (offset {offset}) is lost",
            String::from_utf8_lossy(key)
        );
    }
}

/// (offset, key, value) of every record, read as a consumer does: each
/// fetch from the offset after the last batch (compaction leaves gaps).
fn consume(log: &Log) -> Vec<Record> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    while next < end {
        let read = log.read(next, 1 << 20, end, true).unwrap();
        if read.bytes.is_empty() {
            break;
        }
        for batch in Batches::new(&read.bytes) {
            batch.verify_crc().unwrap();
            let data = records_data(&batch, 1 << 20).unwrap();
            for record in Records::new(&data, batch.records_count()) {
                let record = record.unwrap();
                let offset = Offset(batch.base_offset() + i64::from(record.offset_delta));
                if offset >= next {
                    out.push((
                        offset,
                        record.key.unwrap_or_default().to_vec(),
                        record.value.unwrap_or_default().to_vec(),
                    ));
                }
            }
            next = Offset(batch.next_offset());
        }
    }
    out
}

#[test]
fn a_power_cut_during_a_compaction_swap_loses_nothing_acknowledged() {
    for disk in [Disk::Ext4, Disk::Ext4PerFile, Disk::Fuse] {
        let mut cuts = 0;
        for op in 0.. {
            let mut run = Run::new(disk);
            compact(&mut run, op);
            if !run.disk.crashed() {
                break;
            }
            check_compacted(&run);
            cuts += 1;
        }
        assert!(cuts > 10, "{disk:?}: only {cuts} steps");
    }
}

/// The crash image is what the test above relies on: on a pretended FUSE
/// disk a syncfs makes nothing durable, so a new file whose directory was
/// never synced is gone after the cut, and data written since the last
/// fdatasync is lost; a directory sync keeps the name, an fdatasync the
/// data.
#[test]
fn the_crash_image_keeps_only_what_a_sync_made_durable() {
    use rill_storage::Disk as _;
    let root = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let disk = FaultyDisk::default();
    disk.pretend_file_system(FUSE_MAGIC, LINUX);
    std::fs::write(root.path().join("old"), b"kept").unwrap();
    disk.track_crashes(root.path()).unwrap();

    let synced = disk.create_file(&root.path().join("synced")).unwrap();
    disk.write_at(&synced, &[b"durable"], 0).unwrap();
    disk.sync_data(&synced).unwrap();
    disk.sync_dir(root.path()).unwrap();
    disk.write_at(&synced, &[b" and not"], 7).unwrap();
    let unsynced = disk.create_file(&root.path().join("unsynced")).unwrap();
    disk.sync_data(&unsynced).unwrap();
    disk.rename(&root.path().join("old"), &root.path().join("renamed"))
        .unwrap();
    disk.sync_file_system(&synced).unwrap(); // FUSE: writes nothing

    let cut = image.path().join("cut");
    disk.crash_image(&cut).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&cut)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["old", "synced"]);
    assert_eq!(std::fs::read(cut.join("synced")).unwrap(), b"durable");
    assert_eq!(std::fs::read(cut.join("old")).unwrap(), b"kept");

    // On ext4 the same syncfs makes everything durable.
    disk.pretend_file_system(0xEF53, LINUX);
    disk.sync_file_system(&synced).unwrap();
    let after = image.path().join("after");
    disk.crash_image(&after).unwrap();
    assert_eq!(
        std::fs::read(after.join("synced")).unwrap(),
        b"durable and not"
    );
    assert!(after.join("unsynced").exists() && after.join("renamed").exists());
    assert!(!after.join("old").exists());
}
