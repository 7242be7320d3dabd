//! Flush rounds across logs: appends to several `fsync` logs of one file
//! system that are due together become durable with one sync, and a
//! failed sync still reaches exactly the logs whose data it may have hit.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;

use common::*;
use rill_storage::testing::FaultyDisk;
use rill_storage::{AppendTicket, Flusher, Log, LogConfig, Offset};

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
    fn new() -> Logs {
        let root = tempfile::tempdir().unwrap();
        let flusher = Flusher::start(1).unwrap();
        let gate = Arc::new(FaultyDisk::default());
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
            disk: Arc::new(FaultyDisk::default()),
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
