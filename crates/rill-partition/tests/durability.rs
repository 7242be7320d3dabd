//! How the log manager makes its log directories durable, and what a
//! user sees when it cannot: the start-up report says, per log dir,
//! whether a flush round syncs with one syncfs or file by file, and why;
//! a log dir whose file system cannot be probed, or whose checkpoint
//! cannot be synced, refuses writes and serves reads. And power cuts at
//! every step of creating partitions, appending and a clean shutdown lose
//! nothing acknowledged — transactions' markers and open transactions
//! included.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rill_partition::{
    FetchIsolation, LogManager, ManagerConfig, ManagerError, Partition, PartitionError,
    TopicPartition,
};
use rill_record::{BatchBuilder, Batches, EndTxnMarker, MarkerKind, NewRecord};
use rill_storage::testing::FaultyDisk;
use rill_storage::{
    AppendError, FUSE_MAGIC, FlushPolicy, KernelVersion, LogConfig, OfflineCause, Offset, RealDisk,
    SyncMode, SyncModeSetting,
};

const EXT4_MAGIC: u32 = 0xEF53;
const LINUX: KernelVersion = KernelVersion {
    major: 6,
    minor: 18,
};

fn batch(value: &str) -> Vec<u8> {
    BatchBuilder::new(0)
        .with_records(&[NewRecord::value(value.as_bytes())])
        .finish()
        .unwrap()
}

fn fsync_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        flush: FlushPolicy::Fsync,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// A manager config for one log dir, with its background work far off
/// and one flusher thread, so that a run's disk calls come in one order.
fn config(dir: &Path, sync_mode: SyncModeSetting) -> ManagerConfig {
    ManagerConfig {
        flush_threads: 1,
        recovery_threads: 1,
        flush_sync_mode: sync_mode,
        retention_check_interval_ms: 3_600_000,
        checkpoint_interval_ms: 3_600_000,
        producer_id_expiration_check_interval_ms: 3_600_000,
        cleaner_backoff_ms: 3_600_000,
        ..ManagerConfig::new(vec![dir.to_path_buf()])
    }
}

fn disk_on(magic: u32) -> Arc<FaultyDisk> {
    let disk = Arc::new(FaultyDisk::default());
    disk.pretend_file_system(magic, LINUX);
    disk
}

fn open(
    dir: &Path,
    sync_mode: SyncModeSetting,
    disk: Arc<FaultyDisk>,
) -> (Arc<LogManager>, rill_partition::StartupReport) {
    LogManager::open_with_disk(config(dir, sync_mode), &|_| fsync_config(), disk).unwrap()
}

/// Every value from the log start to the high watermark, by offset.
fn values(partition: &Partition) -> BTreeMap<Offset, String> {
    let mut out = BTreeMap::new();
    let mut next = partition.log_start_offset();
    loop {
        let read = partition
            .read(next, 1 << 20, FetchIsolation::HighWatermark, true)
            .unwrap();
        if read.bytes.is_empty() {
            return out;
        }
        for batch in Batches::new(&read.bytes) {
            for record in rill_record::Records::new(batch.records_bytes(), batch.records_count()) {
                let record = record.unwrap();
                let offset = batch.base_offset() + i64::from(record.offset_delta);
                out.insert(
                    Offset(offset),
                    String::from_utf8(record.value.unwrap().to_vec()).unwrap(),
                );
            }
            next = Offset(batch.next_offset());
        }
    }
}

#[test]
fn the_start_up_report_says_how_each_log_dir_is_synced_and_why() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    for (magic, setting, mode, says) in [
        (
            EXT4_MAGIC,
            SyncModeSetting::Auto,
            SyncMode::Syncfs,
            "one syncfs per flush round (ext4, Linux 6.18)",
        ),
        (
            FUSE_MAGIC,
            SyncModeSetting::Auto,
            SyncMode::PerFile,
            "per-file fdatasync (fuse: syncfs does not write file data)",
        ),
        (
            EXT4_MAGIC,
            SyncModeSetting::PerFile,
            SyncMode::PerFile,
            "per-file fdatasync (ext4; log.flush.sync.mode=per-file)",
        ),
    ] {
        let disk = disk_on(magic);
        let (manager, report) = open(&dir, setting, disk.clone());
        let [(reported_dir, choice)] = &report.sync_choices[..] else {
            panic!("one log dir, one choice: {:?}", report.sync_choices);
        };
        assert_eq!(reported_dir, &dir);
        let choice = choice.as_ref().unwrap();
        assert_eq!(choice.mode, mode);
        assert_eq!(choice.to_string(), says);
        // What it says is what it does: two partitions due in one round.
        let a = manager
            .get_or_create(&TopicPartition::new("a", 0), fsync_config())
            .unwrap();
        let b = manager
            .get_or_create(&TopicPartition::new("b", 0), fsync_config())
            .unwrap();
        let before = disk.file_system_syncs();
        for partition in [&a, &b] {
            partition.append(&batch("x"), 0, 0).unwrap().wait().unwrap();
        }
        if mode == SyncMode::PerFile {
            assert_eq!(disk.file_system_syncs(), before, "{says}: no syncfs");
        }
        manager.shutdown().unwrap();
    }
}

#[test]
fn a_log_dir_whose_file_system_cannot_be_probed_is_offline_for_writes() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let disk = disk_on(EXT4_MAGIC);
    let (manager, _) = open(&dir, SyncModeSetting::Auto, disk.clone());
    let tp = TopicPartition::new("orders", 0);
    let partition = manager.create(&tp, fsync_config()).unwrap();
    partition
        .append(&batch("kept"), 0, 0)
        .unwrap()
        .wait()
        .unwrap();
    drop(partition);
    drop(manager); // a crash: the next start recovers

    // statfs now fails (say the disk went away under the mount).
    let disk = disk_on(EXT4_MAGIC);
    disk.set_failing_probe(true);
    let (manager, report) = open(&dir, SyncModeSetting::Auto, disk);
    let error = report.sync_choices[0].1.as_ref().unwrap_err();
    assert!(error.reason.contains("cannot statfs"), "{error}");
    let partition = manager.get(&tp).unwrap();
    match partition.append(&batch("refused"), 0, 0) {
        Err(PartitionError::Append(AppendError::Offline(failed))) => {
            assert!(matches!(
                failed.cause,
                OfflineCause::DurabilityUnknown { .. }
            ));
        }
        other => panic!("expected an offline partition, got {other:?}"),
    }
    assert_eq!(
        values(&partition).into_values().collect::<Vec<_>>(),
        ["kept"],
        "reads go on"
    );
    // A partition created there now is offline for writes as well.
    let new = manager
        .create(&TopicPartition::new("fresh", 0), fsync_config())
        .unwrap();
    assert!(new.log().failure().is_some());
}

#[test]
fn a_failed_checkpoint_sync_takes_the_log_dir_offline_for_writes() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let disk = disk_on(EXT4_MAGIC);
    let (manager, _) = open(&dir, SyncModeSetting::Auto, disk.clone());
    let tp = TopicPartition::new("orders", 0);
    let partition = manager.create(&tp, fsync_config()).unwrap();
    partition
        .append(&batch("kept"), 0, 0)
        .unwrap()
        .wait()
        .unwrap();
    disk.set_failing_dir_syncs(true);
    assert!(matches!(
        manager.checkpoint(),
        Err(ManagerError::Checkpoint(e)) if e.is_failed_sync()
    ));
    assert!(matches!(
        partition.append(&batch("refused"), 0, 0),
        Err(PartitionError::Append(AppendError::Offline(_)))
    ));
    assert_eq!(values(&partition).len(), 1, "reads go on");
    // It cannot close cleanly: the next start recovers.
    assert!(manager.shutdown().is_err());
}

/// What a run had acknowledged before the power cut.
#[derive(Default)]
struct Acked {
    partitions: Vec<TopicPartition>,
    records: BTreeMap<TopicPartition, BTreeMap<Offset, String>>,
}

/// Opens a manager on a fresh data directory, creates two partitions,
/// appends to them and shuts down cleanly, with the power cut before disk
/// call `op`; returns what was acknowledged before the cut, and whether it
/// came.
fn run(magic: u32, op: u64, root: &Path, image: &Path) -> (Acked, bool) {
    let disk = disk_on(magic);
    disk.track_crashes(root).unwrap();
    disk.crash_at(op, image);
    let dir = root.join("data");
    let (manager, _) = open(&dir, SyncModeSetting::Auto, disk.clone());
    let mut acked = Acked::default();
    for (name, appends) in [("orders", 3), ("events", 2)] {
        let tp = TopicPartition::new(name, 0);
        let partition = manager.create(&tp, fsync_config()).unwrap();
        if !disk.crashed() {
            acked.partitions.push(tp.clone());
        }
        for i in 0..appends {
            let value = format!("{name}-{i}");
            let info = partition
                .append(&batch(&value), 0, 0)
                .unwrap()
                .wait()
                .unwrap();
            if !disk.crashed() {
                acked
                    .records
                    .entry(tp.clone())
                    .or_default()
                    .insert(info.base_offset, value);
            }
        }
    }
    manager.shutdown().unwrap();
    (acked, disk.crashed())
}

/// A restart on what the power cut before call `op` left in `image`
/// finds every partition and record acknowledged before it.
fn check_restart(op: u64, image: &Path, acked: &Acked) {
    let (manager, _) = LogManager::open_with_disk(
        config(&image.join("data"), SyncModeSetting::Auto),
        &|_| fsync_config(),
        Arc::new(RealDisk),
    )
    .unwrap_or_else(|e| panic!("cut before call {op}: the restart failed: {e}"));
    for tp in &acked.partitions {
        let partition = manager
            .get(tp)
            .unwrap_or_else(|| panic!("cut before call {op}: {tp} is gone"));
        let read = values(&partition);
        for (offset, value) in acked.records.get(tp).into_iter().flatten() {
            assert_eq!(
                read.get(offset),
                Some(value),
                "cut before call {op}: {tp} lost offset {offset}"
            );
        }
    }
    manager.shutdown().unwrap();
}

/// Runs `run` with the power cut before each disk call in turn, on ext4
/// and FUSE, and `check`s every image of each cut; returns the fewest
/// cuts either file system took.
fn at_every_cut<A>(
    run: impl Fn(u32, u64, &Path, &Path) -> (A, bool),
    check: impl Fn(u64, &Path, &A),
) -> usize {
    let mut fewest = usize::MAX;
    for magic in [EXT4_MAGIC, FUSE_MAGIC] {
        let mut cuts = 0;
        for op in 0.. {
            let root = tempfile::tempdir().unwrap();
            let images = tempfile::tempdir().unwrap();
            let image = images.path().join("root");
            let (acked, crashed) = run(magic, op, root.path(), &image);
            if !crashed {
                break;
            }
            cuts += 1;
            for image in FaultyDisk::reordered_images(&image) {
                check(op, &image, &acked);
            }
            check(op, &image, &acked);
        }
        fewest = fewest.min(cuts);
    }
    fewest
}

#[test]
fn a_power_cut_while_creating_partitions_and_appending_loses_nothing_acknowledged() {
    let cuts = at_every_cut(run, check_restart);
    assert!(cuts > 20, "only {cuts} steps");
}

/// What a transactional run had acknowledged before the power cut: each
/// record, and each producer's transaction as far as the client knew —
/// its first offset once a batch was acknowledged, and its marker once
/// that was.
#[derive(Default)]
struct AckedTxns {
    created: bool,
    records: BTreeMap<Offset, String>,
    /// By producer id: (first offset, the marker's kind if acknowledged).
    txns: BTreeMap<i64, (Offset, Option<MarkerKind>)>,
}

fn txn_batch(producer_id: i64, sequence: i32, value: &str) -> Vec<u8> {
    BatchBuilder::new(0)
        .producer(producer_id, 0, sequence)
        .transactional()
        .with_records(&[NewRecord::value(value.as_bytes())])
        .finish()
        .unwrap()
}

/// One partition (small segments, so it rolls and snapshots its
/// producers) takes a committed transaction, an aborted one, one left
/// open and plain batches between them, then shuts down cleanly; the
/// power is cut before disk call `op`.
fn run_transactions(magic: u32, op: u64, root: &Path, image: &Path) -> (AckedTxns, bool) {
    let disk = disk_on(magic);
    disk.track_crashes(root).unwrap();
    disk.crash_at(op, image);
    let (manager, _) = open(&root.join("data"), SyncModeSetting::Auto, disk.clone());
    let tp = TopicPartition::new("txns", 0);
    let partition = manager.create(&tp, fsync_config()).unwrap();
    let mut acked = AckedTxns {
        created: !disk.crashed(),
        ..AckedTxns::default()
    };
    let write = |acked: &mut AckedTxns, bytes: Vec<u8>, value: &str, producer: Option<i64>| {
        let info = partition.append(&bytes, 0, 0).unwrap().wait().unwrap();
        if !disk.crashed() {
            acked.records.insert(info.base_offset, value.to_owned());
            if let Some(producer) = producer {
                acked
                    .txns
                    .entry(producer)
                    .or_insert((info.base_offset, None));
            }
        }
    };
    let steps: [(i64, Option<MarkerKind>); 7] = [
        (10, None),
        (20, None),
        (10, None),
        (10, Some(MarkerKind::Commit)),
        (30, None),
        (20, None),
        (20, Some(MarkerKind::Abort)),
    ];
    let mut sequences: BTreeMap<i64, i32> = BTreeMap::new();
    for (n, (producer, marker)) in steps.into_iter().enumerate() {
        write(
            &mut acked,
            batch(&format!("plain-{n}")),
            &format!("plain-{n}"),
            None,
        );
        match marker {
            None => {
                let sequence = sequences.entry(producer).or_default();
                let value = format!("p{producer}-{sequence}");
                write(
                    &mut acked,
                    txn_batch(producer, *sequence, &value),
                    &value,
                    Some(producer),
                );
                *sequence += 1;
            }
            Some(kind) => {
                let end = EndTxnMarker {
                    kind,
                    coordinator_epoch: 0,
                };
                partition
                    .append_marker(producer, 0, end, 0, 0)
                    .unwrap()
                    .wait()
                    .unwrap();
                if !disk.crashed() {
                    acked.txns.get_mut(&producer).unwrap().1 = Some(kind);
                }
            }
        }
    }
    manager.shutdown().unwrap();
    (acked, disk.crashed())
}

/// A restart on the image finds every acknowledged record, every
/// acknowledged marker's effect — the transaction ended, an abort in the
/// aborted-transaction index — and every acknowledged open transaction
/// still open, holding the last stable offset back.
fn check_transactions_restart(op: u64, image: &Path, acked: &AckedTxns) {
    let (manager, _) = LogManager::open_with_disk(
        config(&image.join("data"), SyncModeSetting::Auto),
        &|_| fsync_config(),
        Arc::new(RealDisk),
    )
    .unwrap_or_else(|e| panic!("cut before call {op}: the restart failed: {e}"));
    let Some(partition) = manager.get(&TopicPartition::new("txns", 0)) else {
        assert!(
            !acked.created,
            "cut before call {op}: the partition is gone"
        );
        manager.shutdown().unwrap();
        return;
    };
    let read = values(&partition);
    for (offset, value) in &acked.records {
        assert_eq!(
            read.get(offset),
            Some(value),
            "cut before call {op}: lost offset {offset}"
        );
    }
    let aborted = partition.aborted_transactions(Offset(0), partition.log_end_offset());
    let stable = partition.last_stable_offset();
    for (&producer, &(first, marker)) in &acked.txns {
        let open = partition.has_open_transaction(producer, 0);
        let indexed = aborted
            .iter()
            .any(|a| a.producer_id == producer && a.first_offset == first);
        match marker {
            Some(kind) => {
                assert!(
                    !open,
                    "cut before call {op}: {producer}'s {kind:?} was acknowledged"
                );
                assert_eq!(
                    indexed,
                    kind == MarkerKind::Abort,
                    "cut before call {op}: {producer}'s {kind:?} in the aborted index"
                );
            }
            None => {
                // Its marker may have reached the disk unacknowledged; if
                // not, the transaction is open and holds the LSO back.
                if open {
                    assert!(
                        stable <= first,
                        "cut before call {op}: LSO {stable} past {first}"
                    );
                }
            }
        }
    }
    if acked.txns.contains_key(&30) {
        assert!(
            partition.has_open_transaction(30, 0),
            "cut before call {op}: the open transaction was closed"
        );
    }
    manager.shutdown().unwrap();
}

#[test]
fn a_power_cut_during_transactions_loses_no_acknowledged_marker_or_open_transaction() {
    let cuts = at_every_cut(run_transactions, check_transactions_restart);
    assert!(cuts > 40, "only {cuts} steps");
}
