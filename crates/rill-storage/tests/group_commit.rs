//! Flush rounds across logs: appends to several `fsync` logs of one file
//! system that are due together become durable with one sync where the
//! file system's syncfs is a real one (and with an fdatasync of each file
//! elsewhere, or when told to), and a failed sync still reaches exactly
//! the logs whose data it may have hit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;

use common::*;
use rill_storage::testing::FaultyDisk;
use rill_storage::{
    AppendTicket, FUSE_MAGIC, Flusher, KernelVersion, Log, LogConfig, Offset, SyncMode,
    SyncModeSetting,
};

const EXT4_MAGIC: u32 = 0xEF53;
const LINUX: KernelVersion = KernelVersion {
    major: 6,
    minor: 18,
};

/// Logs in one directory tree, all on one flusher thread, so that a round
/// in progress makes later appends wait for the next one together.
struct Logs {
    root: tempfile::TempDir,
    flusher: Flusher,
    /// The disk of the logs under test.
    disk: Arc<FaultyDisk>,
    /// The disk of the log that holds the flusher thread while they queue.
    gate: Arc<FaultyDisk>,
    blocker: Log,
}

impl Logs {
    /// Logs on ext4 (pretended, whatever the test machine's disk).
    fn new() -> Logs {
        Logs::on(EXT4_MAGIC, SyncModeSetting::Auto)
    }

    /// Logs on a file system with statfs magic `magic`, under
    /// log.flush.sync.mode `setting`.
    fn on(magic: u32, setting: SyncModeSetting) -> Logs {
        let root = tempfile::tempdir().unwrap();
        let flusher = Flusher::start_with(1, setting).unwrap();
        let gate = Arc::new(FaultyDisk::default());
        gate.pretend_file_system(magic, LINUX);
        let disk = Arc::new(FaultyDisk::default());
        disk.pretend_file_system(magic, LINUX);
        let blocker = Log::create(
            &root.path().join("blocker-0"),
            LogConfig::default(),
            Offset(0),
            &flusher,
            gate.clone(),
            0,
        )
        .unwrap();
        Logs {
            root,
            flusher,
            disk,
            gate,
            blocker,
        }
    }

    /// A new `fsync` log (the default policy) on the disk under test.
    fn log(&self, name: &str) -> Log {
        Log::create(
            &self.root.path().join(name),
            LogConfig::default(),
            Offset(0),
            &self.flusher,
            self.disk.clone(),
            0,
        )
        .unwrap()
    }

    /// Appends one record to each of `logs` while the flusher thread is
    /// held in a sync of the blocker, so that all of them are due in the
    /// same round once it is let go (unless one is still in the thread's
    /// hands from an earlier round); returns their tickets.
    fn append_together(&self, logs: &[&Log]) -> Vec<AppendTicket> {
        self.gate.hold_syncs(true);
        let held = self
            .blocker
            .append(&numbered_batch("hold", 1, 0), 0, 0)
            .unwrap();
        self.gate.wait_for_held_sync();
        let tickets = logs
            .iter()
            .map(|log| log.append(&numbered_batch("v", 1, 0), 0, 0).unwrap())
            .collect();
        self.gate.hold_syncs(false);
        held.wait().unwrap();
        tickets
    }
}

#[test]
fn logs_due_together_become_durable_with_one_sync() {
    let logs = Logs::new();
    let (a, b, c) = (logs.log("a-0"), logs.log("b-0"), logs.log("c-0"));
    let before = logs.disk.syncs();
    let tickets = logs.append_together(&[&a, &b, &c]);
    for ticket in tickets {
        assert_eq!(ticket.wait().unwrap().base_offset, Offset(0));
    }
    assert_eq!(
        logs.disk.syncs() - before,
        1,
        "one syncfs for three logs, not an fdatasync each"
    );
    for log in [&a, &b, &c] {
        assert_eq!(log.flushed_end_offset(), Offset(1));
    }
}

#[test]
fn a_failed_file_system_sync_falls_back_to_each_log_own_files() {
    let logs = Logs::new();
    let (a, b) = (logs.log("a-0"), logs.log("b-0"));
    // Another file of the file system failed: syncfs reports it, but the
    // logs' own files are fine, which their fdatasyncs then show.
    logs.disk.set_failing_file_system_syncs(true);
    for ticket in logs.append_together(&[&a, &b]) {
        ticket.wait().unwrap();
    }
    assert!(a.failure().is_none() && b.failure().is_none());
    // A dying disk fails both: then every log in the round goes offline.
    logs.disk.set_failing_syncs(true);
    for ticket in logs.append_together(&[&a, &b]) {
        assert!(ticket.wait().is_err());
    }
    assert!(a.failure().is_some() && b.failure().is_some());
}

#[test]
fn after_a_failed_file_system_sync_each_log_checks_its_own_files_once() {
    let logs = Logs::new();
    let (a, b, c) = (logs.log("a-0"), logs.log("b-0"), logs.log("c-0"));
    // A failure somewhere on the file system, reported to a round that c
    // is not in: a and b check their own files and are fine.
    logs.disk.set_failing_file_system_syncs(true);
    for ticket in logs.append_together(&[&a, &b]) {
        ticket.wait().unwrap();
    }
    // It was c's file: syncfs has nothing more to say (it reported the
    // error once), but c's own fdatasync still reports it. Logs created
    // since (d, e) had no writes when it happened: the syncfs vouches for
    // them, which shows that it ran.
    logs.disk.set_failing_file_system_syncs(false);
    logs.disk.set_failing_data_syncs(true);
    let (d, e) = (logs.log("d-0"), logs.log("e-0"));
    let mut tickets = logs.append_together(&[&c, &d, &e]).into_iter();
    assert!(
        tickets.next().unwrap().wait().is_err(),
        "c is not acknowledged on the word of a syncfs that cannot see its error"
    );
    assert!(c.failure().is_some());
    for (log, ticket) in [&d, &e].into_iter().zip(tickets) {
        assert_eq!(ticket.wait().unwrap().base_offset, Offset(0));
        assert!(log.failure().is_none());
    }
}

#[test]
fn logs_on_fuse_are_synced_file_by_file() {
    // FUSE's syncfs returns success having written no file data: a round
    // of three logs is three fdatasyncs, never a syncfs.
    let logs = Logs::on(FUSE_MAGIC, SyncModeSetting::Auto);
    let (a, b, c) = (logs.log("a-0"), logs.log("b-0"), logs.log("c-0"));
    let choice = logs
        .flusher
        .sync_choice(
            logs.root.path(),
            &(logs.disk.clone() as Arc<dyn rill_storage::Disk>),
        )
        .unwrap();
    assert_eq!(choice.mode, SyncMode::PerFile);
    assert_eq!(
        choice.to_string(),
        "per-file fdatasync (fuse: syncfs does not write file data)"
    );
    let before = logs.disk.syncs();
    for ticket in logs.append_together(&[&a, &b, &c]) {
        assert_eq!(ticket.wait().unwrap().base_offset, Offset(0));
    }
    assert_eq!(logs.disk.syncs() - before, 3, "one fdatasync per log");
    assert_eq!(logs.disk.file_system_syncs(), 0, "syncfs is never trusted");
    for log in [&a, &b, &c] {
        assert_eq!(log.flushed_end_offset(), Offset(1));
    }
}

#[test]
fn per_file_sync_can_be_forced_on_ext4() {
    let logs = Logs::on(EXT4_MAGIC, SyncModeSetting::PerFile);
    let (a, b) = (logs.log("a-0"), logs.log("b-0"));
    let choice = logs
        .flusher
        .sync_choice(
            logs.root.path(),
            &(logs.disk.clone() as Arc<dyn rill_storage::Disk>),
        )
        .unwrap();
    assert_eq!(
        choice.to_string(),
        "per-file fdatasync (ext4; log.flush.sync.mode=per-file)"
    );
    for ticket in logs.append_together(&[&a, &b]) {
        ticket.wait().unwrap();
    }
    assert_eq!(logs.disk.file_system_syncs(), 0);
    assert_eq!(a.flushed_end_offset(), Offset(1));
}

#[test]
fn an_old_kernel_gets_per_file_sync_on_ext4() {
    // Before Linux 5.8 syncfs reported no writeback error at all.
    let disk = Arc::new(FaultyDisk::default());
    disk.pretend_file_system(EXT4_MAGIC, KernelVersion { major: 5, minor: 4 });
    let root = tempfile::tempdir().unwrap();
    let flusher = Flusher::start(1).unwrap();
    let choice = flusher
        .sync_choice(root.path(), &(disk as Arc<dyn rill_storage::Disk>))
        .unwrap();
    assert_eq!(choice.mode, SyncMode::PerFile);
    assert!(choice.reason.contains("Linux 5.4"), "{choice}");
}
