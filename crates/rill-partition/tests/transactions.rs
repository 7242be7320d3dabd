//! Transactions (KIP-98) in a partition, as a Kafka broker keeps them:
//! each producer's open transaction, commit and abort markers, the last
//! stable offset that read_committed consumers stop at, the aborted
//! transactions a fetch reports, and all of it across crashes,
//! truncation, retention and replication.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::sync::Arc;

use rill_partition::{
    AbortedTransaction, FetchIsolation, OffsetSpec, Partition, PartitionError, TopicPartition,
};
use rill_record::{
    BatchBuilder, BatchError, Batches, EndTxnMarker, MarkerKind, NewRecord, end_txn_marker,
};
use rill_storage::testing::FaultyDisk;
use rill_storage::{
    AppendError, AppendInfo, FlushPolicy, Flusher, LogConfig, Offset, RecoveryHints,
};

struct Fixture {
    root: tempfile::TempDir,
    flusher: Flusher,
    disk: Arc<FaultyDisk>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            root: tempfile::tempdir().unwrap(),
            flusher: Flusher::start(1).unwrap(),
            disk: Arc::new(FaultyDisk::default()),
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn create(&self, name: &str, config: LogConfig) -> Partition {
        Partition::create(
            &self.dir(name),
            TopicPartition::new("t", 0),
            config,
            &self.flusher,
            self.disk.clone(),
            0,
        )
        .unwrap()
    }

    fn open(&self, name: &str, config: LogConfig, hints: RecoveryHints) -> Partition {
        Partition::open(
            &self.dir(name),
            TopicPartition::new("t", 0),
            config,
            hints,
            &self.flusher,
            self.disk.clone(),
            0,
        )
        .unwrap()
        .0
    }

    /// Drops `partition` without closing it (a crash, as far as the files
    /// are concerned) and opens it knowing nothing.
    fn restart_after_crash(
        &self,
        name: &str,
        partition: Partition,
        config: LogConfig,
    ) -> Partition {
        drop(partition);
        self.open(name, config, RecoveryHints::unknown())
    }

    fn txn_index_files(&self, name: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir(name))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".txnindex"))
            .collect();
        names.sort();
        names
    }
}

fn none() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::None,
        ..LogConfig::default()
    }
}

/// Small segments: the log rolls every other [`plain`] batch of four.
fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        ..none()
    }
}

/// A transactional batch of `count` records of producer `id` in `epoch`.
fn txn_batch(id: i64, epoch: i16, sequence: i32, count: usize) -> Vec<u8> {
    let records: Vec<NewRecord<'_>> = (0..count).map(|_| NewRecord::value(b"tx")).collect();
    BatchBuilder::new(1_000)
        .producer(id, epoch, sequence)
        .transactional()
        .with_records(&records)
        .finish()
        .unwrap()
}

fn idempotent(id: i64, epoch: i16, sequence: i32, count: usize) -> Vec<u8> {
    let records: Vec<NewRecord<'_>> = (0..count).map(|_| NewRecord::value(b"id")).collect();
    BatchBuilder::new(1_000)
        .producer(id, epoch, sequence)
        .with_records(&records)
        .finish()
        .unwrap()
}

/// `count` records of 100 bytes without a producer id.
fn plain(count: usize) -> Vec<u8> {
    let value = [b'p'; 100];
    let records: Vec<NewRecord<'_>> = (0..count).map(|_| NewRecord::value(&value)).collect();
    BatchBuilder::new(1_000)
        .with_records(&records)
        .finish()
        .unwrap()
}

fn append(partition: &Partition, batch: &[u8]) -> AppendInfo {
    partition.append(batch, 0, 5_000).unwrap().wait().unwrap()
}

fn marker(kind: MarkerKind, coordinator_epoch: i32) -> EndTxnMarker {
    EndTxnMarker {
        kind,
        coordinator_epoch,
    }
}

fn end_txn(partition: &Partition, id: i64, epoch: i16, kind: MarkerKind) -> Offset {
    partition
        .append_marker(id, epoch, marker(kind, 0), 0, 6_000)
        .unwrap()
        .wait()
        .unwrap()
        .base_offset
}

fn aborted(producer_id: i64, first_offset: i64) -> AbortedTransaction {
    AbortedTransaction {
        producer_id,
        first_offset: Offset(first_offset),
    }
}

/// The base offsets of the batches a read under `isolation` returns.
fn read_offsets(partition: &Partition, isolation: FetchIsolation) -> Vec<i64> {
    let read = partition
        .read(partition.log_start_offset(), 1 << 20, isolation, true)
        .unwrap();
    Batches::new(&read.bytes).map(|b| b.base_offset()).collect()
}

#[test]
fn markers_move_the_last_stable_offset_and_read_committed_stops_at_it() {
    let fx = Fixture::new();
    let partition = fx.create("p", none());
    append(&partition, &plain(2)); // 0..=1
    assert_eq!(partition.last_stable_offset(), Offset(2));
    append(&partition, &txn_batch(7, 0, 0, 3)); // 2..=4: 7's transaction begins
    append(&partition, &txn_batch(9, 0, 0, 1)); // 5: 9's begins
    append(&partition, &plain(1)); // 6
    assert_eq!(partition.high_watermark(), Offset(7));
    assert_eq!(partition.last_stable_offset(), Offset(2));
    let entry = partition.producer_state(7).unwrap();
    assert_eq!(entry.current_txn_first_offset, Some(Offset(2)));
    assert_eq!(read_offsets(&partition, FetchIsolation::TxnCommitted), [0]);
    assert_eq!(
        read_offsets(&partition, FetchIsolation::HighWatermark),
        [0, 2, 5, 6]
    );
    let latest = |isolation| {
        partition
            .list_offset_isolated(OffsetSpec::Latest, isolation)
            .unwrap()
            .unwrap()
            .offset
    };
    assert_eq!(latest(FetchIsolation::TxnCommitted), Offset(2));
    assert_eq!(latest(FetchIsolation::HighWatermark), Offset(7));
    assert_eq!(
        partition
            .list_offset(OffsetSpec::Latest)
            .unwrap()
            .unwrap()
            .offset,
        Offset(7),
        "read_uncommitted as before"
    );

    assert_eq!(end_txn(&partition, 7, 0, MarkerKind::Commit), Offset(7));
    assert_eq!(
        partition
            .producer_state(7)
            .unwrap()
            .current_txn_first_offset,
        None
    );
    assert_eq!(partition.last_stable_offset(), Offset(5), "9's is open");
    assert_eq!(end_txn(&partition, 9, 0, MarkerKind::Abort), Offset(8));
    assert_eq!(partition.last_stable_offset(), Offset(9));
    assert_eq!(
        read_offsets(&partition, FetchIsolation::TxnCommitted),
        [0, 2, 5, 6, 7, 8]
    );
    assert_eq!(
        partition.aborted_transactions(Offset(0), Offset(9)),
        [aborted(9, 5)]
    );
    assert_eq!(
        partition.aborted_transactions(Offset(0), Offset(5)),
        [],
        "the fetch ended before the transaction began"
    );
    assert_eq!(
        partition.aborted_transactions(Offset(9), Offset(9)),
        [],
        "the fetch began after its marker"
    );
    let entry = partition.producer_state(9).unwrap();
    assert_eq!(entry.coordinator_epoch, 0);
}

#[test]
fn the_last_stable_offset_waits_for_the_marker_to_be_replicated() {
    let fx = Fixture::new();
    let partition = fx.create("p", none());
    partition.set_high_watermark(Offset(0));
    append(&partition, &txn_batch(7, 0, 0, 2)); // 0..=1
    end_txn(&partition, 7, 0, MarkerKind::Commit); // 2
    partition.set_high_watermark(Offset(2));
    assert_eq!(
        partition.last_stable_offset(),
        Offset(0),
        "the marker is not below the high watermark"
    );
    partition.set_high_watermark(Offset(3));
    assert_eq!(partition.last_stable_offset(), Offset(3));
}

#[test]
fn a_non_transactional_batch_during_a_transaction_is_invalid_txn_state() {
    let fx = Fixture::new();
    let partition = fx.create("p", none());
    append(&partition, &txn_batch(7, 0, 0, 2));
    let end = partition.log_end_offset();
    assert!(matches!(
        partition.append(&idempotent(7, 0, 2, 1), 0, 0),
        Err(PartitionError::InvalidTxnState {
            producer_id: 7,
            txn_first_offset: Offset(0)
        })
    ));
    assert_eq!(partition.log_end_offset(), end, "nothing written");
    // The transaction goes on; after its marker, plain idempotence again.
    append(&partition, &txn_batch(7, 0, 2, 1));
    end_txn(&partition, 7, 0, MarkerKind::Commit);
    append(&partition, &idempotent(7, 0, 3, 1));
}

#[test]
fn a_verified_batch_is_written_only_while_its_guard_is_out() {
    let fx = Fixture::new();
    let partition = fx.create("p", none());
    let write = |batch: &[u8], guard| partition.append_verified(batch, guard, 0, 5_000);
    // Verified, then written: the transaction opens.
    let guard = partition.start_verification(7, 0, 1_000);
    assert!(!guard.is_open_transaction());
    write(&txn_batch(7, 0, 0, 1), guard)
        .unwrap()
        .wait()
        .unwrap();
    // Open now: the next batch has nothing to ask, and is written.
    let open = partition.start_verification(7, 0, 1_000);
    assert!(open.is_open_transaction());
    write(&txn_batch(7, 0, 1, 1), open).unwrap().wait().unwrap();
    end_txn(&partition, 7, 0, MarkerKind::Commit);
    // A batch checked against the open transaction arrives after its
    // marker: it would open a transaction nobody ends.
    let end = partition.log_end_offset();
    assert!(matches!(
        write(&txn_batch(7, 0, 2, 1), open),
        Err(PartitionError::TransactionNotVerified { producer_id: 7 })
    ));
    // Verified for the next transaction, but an abort marker (the
    // coordinator timed it out) lands before the batch: refused too.
    let guard = partition.start_verification(7, 0, 2_000);
    end_txn(&partition, 7, 0, MarkerKind::Abort);
    let end_after_marker = partition.log_end_offset();
    assert_eq!(end_after_marker, end.plus(1));
    assert!(matches!(
        write(&txn_batch(7, 0, 2, 1), guard),
        Err(PartitionError::TransactionNotVerified { producer_id: 7 })
    ));
    assert_eq!(
        partition.log_end_offset(),
        end_after_marker,
        "nothing written"
    );
    assert_eq!(
        partition.last_stable_offset(),
        partition.high_watermark(),
        "no transaction left open"
    );
    // A fresh verification lets the same batch in.
    let guard = partition.start_verification(7, 0, 3_000);
    write(&txn_batch(7, 0, 2, 1), guard)
        .unwrap()
        .wait()
        .unwrap();
    assert!(partition.has_open_transaction(7, 0));
}

#[test]
fn a_clients_control_batch_is_refused() {
    let fx = Fixture::new();
    let partition = fx.create("p", none());
    let forged = end_txn_marker(7, 0, marker(MarkerKind::Commit, 0), 0).unwrap();
    assert!(matches!(
        partition.append(&forged, 0, 0),
        Err(PartitionError::Append(AppendError::InvalidBatch(
            BatchError::ControlBatchFromClient
        )))
    ));
    assert_eq!(partition.log_end_offset(), Offset(0));
}

#[test]
fn stale_markers_are_fenced_and_write_nothing() {
    let fx = Fixture::new();
    let partition = fx.create("p", none());
    append(&partition, &txn_batch(7, 3, 0, 1));
    partition
        .append_marker(7, 3, marker(MarkerKind::Commit, 5), 0, 0)
        .unwrap()
        .wait()
        .unwrap();
    append(&partition, &txn_batch(7, 3, 1, 1)); // 2: a new transaction
    let end = partition.log_end_offset();
    assert!(matches!(
        partition.append_marker(7, 2, marker(MarkerKind::Abort, 5), 0, 0),
        Err(PartitionError::InvalidProducerEpoch {
            producer_id: 7,
            current: 3,
            found: 2
        })
    ));
    assert!(matches!(
        partition.append_marker(7, 3, marker(MarkerKind::Abort, 4), 0, 0),
        Err(PartitionError::TransactionCoordinatorFenced {
            producer_id: 7,
            current: 5,
            found: 4
        })
    ));
    assert_eq!(partition.log_end_offset(), end, "nothing written");
    assert_eq!(
        partition
            .producer_state(7)
            .unwrap()
            .current_txn_first_offset,
        Some(Offset(2)),
        "still open"
    );
    // A marker for a producer with nothing open is written, and ends nothing.
    let info = partition
        .append_marker(11, 0, marker(MarkerKind::Abort, 5), 0, 0)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(info.base_offset, end);
    assert!(
        partition
            .aborted_transactions(Offset(0), Offset(100))
            .is_empty()
    );
}

#[test]
fn a_coordinators_batches_skip_sequence_checks_but_open_transactions() {
    let fx = Fixture::new();
    let partition = fx.create("p", none());
    let commit = BatchBuilder::new(1_000)
        .producer(7, 1, -1)
        .transactional()
        .with_records(&[NewRecord::key_value(b"group", Some(b"offset"))])
        .finish()
        .unwrap();
    assert!(
        partition.append(&commit, 0, 0).is_err(),
        "a client's batch needs a sequence"
    );
    for _ in 0..2 {
        let ticket = partition.append_from_coordinator(&commit, 0, 0).unwrap();
        ticket.wait().unwrap();
    }
    assert_eq!(partition.log_end_offset(), Offset(2), "no duplicate check");
    assert_eq!(partition.last_stable_offset(), Offset(0));
    let fenced = BatchBuilder::new(1_000)
        .producer(7, 0, -1)
        .transactional()
        .with_records(&[NewRecord::key_value(b"group", Some(b"offset"))])
        .finish()
        .unwrap();
    assert!(matches!(
        partition.append_from_coordinator(&fenced, 0, 0),
        Err(PartitionError::InvalidProducerEpoch { .. })
    ));
    end_txn(&partition, 7, 1, MarkerKind::Commit);
    assert_eq!(partition.last_stable_offset(), Offset(3));
}

#[test]
fn aborted_transactions_are_found_across_segment_rolls_and_leave_with_retention() {
    let fx = Fixture::new();
    let partition = fx.create("p", small_segments());
    // Producer 1's transaction spans several segments; producer 2's
    // begins and is aborted in later ones.
    append(&partition, &txn_batch(1, 0, 0, 4)); // 0..=3
    for i in 0..6 {
        append(&partition, &plain(4));
        if i == 3 {
            append(&partition, &txn_batch(2, 0, 0, 1));
        }
    }
    let two_first = partition
        .producer_state(2)
        .unwrap()
        .current_txn_first_offset
        .unwrap();
    let abort_one = end_txn(&partition, 1, 0, MarkerKind::Abort);
    for _ in 0..4 {
        append(&partition, &plain(4));
    }
    let abort_two = end_txn(&partition, 2, 0, MarkerKind::Abort);
    append(&partition, &plain(1));
    assert!(partition.log().segment_count() > 4, "the log rolled");
    let end = partition.log_end_offset();

    assert_eq!(
        partition.aborted_transactions(Offset(0), end),
        [aborted(1, 0), aborted(2, two_first.value())]
    );
    assert_eq!(
        partition.aborted_transactions(abort_one.plus(1), end),
        [aborted(2, two_first.value())],
        "from after 1's marker, in a later segment"
    );
    assert_eq!(
        partition.aborted_transactions(abort_one, abort_one.plus(1)),
        [aborted(1, 0), aborted(2, two_first.value())],
        "both were open at 1's marker"
    );
    assert_eq!(partition.last_stable_offset(), end);
    assert_eq!(
        fx.txn_index_files("p").len(),
        2,
        "{:?}",
        fx.txn_index_files("p")
    );

    // DeleteRecords past 1's marker: its segment and index go.
    let bases = partition.log().segment_base_offsets();
    let holding_one = *bases.iter().rev().find(|&&b| b <= abort_one).unwrap();
    let after_one = *bases.iter().find(|&&b| b > abort_one).unwrap();
    assert!(
        fx.txn_index_files("p")
            .contains(&format!("{:020}.txnindex", holding_one.value()))
    );
    partition.delete_records(Some(after_one)).unwrap();
    partition.apply_retention(10_000).unwrap();
    assert!(
        !fx.txn_index_files("p")
            .contains(&format!("{:020}.txnindex", holding_one.value())),
        "the index went with its segment"
    );
    assert_eq!(
        partition.aborted_transactions(after_one, end),
        [aborted(2, two_first.value())]
    );
    assert!(abort_two > after_one);
}

#[test]
fn a_crash_rebuilds_open_transactions_the_last_stable_offset_and_the_index() {
    let fx = Fixture::new();
    let partition = fx.create("p", small_segments());
    append(&partition, &txn_batch(1, 0, 0, 2)); // 0..=1
    for _ in 0..4 {
        append(&partition, &plain(4));
    }
    end_txn(&partition, 1, 0, MarkerKind::Abort);
    append(&partition, &txn_batch(2, 0, 0, 1));
    let two_first = partition
        .producer_state(2)
        .unwrap()
        .current_txn_first_offset
        .unwrap();
    for _ in 0..4 {
        append(&partition, &plain(4)); // rolls: snapshots with 2's transaction open
    }
    append(&partition, &txn_batch(3, 0, 0, 1)); // after the last snapshot
    let three_first = partition
        .producer_state(3)
        .unwrap()
        .current_txn_first_offset
        .unwrap();
    end_txn(&partition, 2, 0, MarkerKind::Abort);
    let end = partition.log_end_offset();
    let lso = partition.last_stable_offset();
    assert_eq!(lso, three_first);
    let expected = partition.aborted_transactions(Offset(0), end);
    assert_eq!(expected, [aborted(1, 0), aborted(2, two_first.value())]);

    // The crash loses the index files' contents (as a power cut before
    // their sync would): recovery's replay of the markers writes them again.
    for name in fx.txn_index_files("p") {
        std::fs::write(fx.dir("p").join(name), b"").unwrap();
    }
    let partition = fx.restart_after_crash("p", partition, small_segments());
    assert_eq!(partition.last_stable_offset(), lso);
    assert_eq!(
        partition
            .producer_state(3)
            .unwrap()
            .current_txn_first_offset,
        Some(three_first)
    );
    assert_eq!(
        partition
            .producer_state(2)
            .unwrap()
            .current_txn_first_offset,
        None
    );
    assert_eq!(partition.aborted_transactions(Offset(0), end), expected);
    end_txn(&partition, 3, 0, MarkerKind::Commit);
    assert_eq!(partition.last_stable_offset(), partition.log_end_offset());

    // And a clean restart finds it all in the files and snapshot.
    let start = partition.log_start_offset();
    let end = partition.close().unwrap();
    drop(partition);
    let hints = RecoveryHints {
        clean_shutdown: true,
        recovery_point: end,
        log_start_offset: start,
    };
    let partition = fx.open("p", small_segments(), hints);
    assert_eq!(partition.aborted_transactions(Offset(0), end), expected);
    assert_eq!(partition.last_stable_offset(), end);
}

#[test]
fn an_open_transaction_survives_a_snapshot_and_a_clean_restart() {
    let fx = Fixture::new();
    let partition = fx.create("p", none());
    append(&partition, &plain(1));
    append(&partition, &txn_batch(4, 2, 0, 1)); // 1
    partition
        .append_marker(5, 0, marker(MarkerKind::Commit, 9), 0, 0)
        .unwrap()
        .wait()
        .unwrap();
    let end = partition.close().unwrap();
    drop(partition);
    let hints = RecoveryHints {
        clean_shutdown: true,
        recovery_point: end,
        log_start_offset: Offset(0),
    };
    let partition = fx.open("p", none(), hints);
    let four = partition.producer_state(4).unwrap();
    assert_eq!(four.current_txn_first_offset, Some(Offset(1)));
    assert_eq!(partition.last_stable_offset(), Offset(1));
    assert_eq!(partition.producer_state(5).unwrap().coordinator_epoch, 9);
    assert!(matches!(
        partition.append_marker(5, 0, marker(MarkerKind::Commit, 8), 0, 0),
        Err(PartitionError::TransactionCoordinatorFenced { .. })
    ));
}

#[test]
fn truncation_below_a_marker_reopens_the_transaction_and_forgets_its_index_entry() {
    let fx = Fixture::new();
    let partition = fx.create("p", small_segments());
    append(&partition, &txn_batch(1, 0, 0, 2)); // 0..=1
    for _ in 0..6 {
        append(&partition, &plain(4)); // rolls: snapshots past the marker
    }
    let abort = end_txn(&partition, 1, 0, MarkerKind::Abort);
    for _ in 0..6 {
        append(&partition, &plain(4));
    }
    assert_eq!(partition.last_stable_offset(), partition.log_end_offset());
    assert_eq!(fx.txn_index_files("p").len(), 1);

    assert_eq!(partition.truncate_to(abort).unwrap(), abort);
    assert_eq!(
        partition
            .producer_state(1)
            .unwrap()
            .current_txn_first_offset,
        Some(Offset(0)),
        "open again"
    );
    assert_eq!(partition.last_stable_offset(), Offset(0));
    assert!(partition.aborted_transactions(Offset(0), abort).is_empty());
    assert!(
        fx.txn_index_files("p").is_empty(),
        "{:?}",
        fx.txn_index_files("p")
    );
    // The leader's decision comes again: commit this time.
    end_txn(&partition, 1, 0, MarkerKind::Commit);
    assert!(
        partition
            .aborted_transactions(Offset(0), abort.plus(1))
            .is_empty()
    );
    assert_eq!(partition.last_stable_offset(), abort.plus(1));

    partition.truncate_fully_and_start_at(Offset(100)).unwrap();
    assert_eq!(partition.producer_state(1), None);
    assert_eq!(partition.last_stable_offset(), Offset(100));
}

#[test]
fn a_follower_replicating_markers_keeps_the_leaders_transaction_state() {
    let fx = Fixture::new();
    let leader = fx.create("leader", small_segments());
    let follower = fx.create("follower", small_segments());
    append(&leader, &txn_batch(1, 0, 0, 2));
    append(&leader, &txn_batch(2, 0, 0, 2));
    for _ in 0..4 {
        append(&leader, &plain(4));
    }
    end_txn(&leader, 1, 0, MarkerKind::Abort);
    for _ in 0..4 {
        append(&leader, &plain(4));
    }
    end_txn(&leader, 2, 0, MarkerKind::Commit);
    append(&leader, &txn_batch(3, 0, 0, 1));
    while follower.log_end_offset() < leader.log_end_offset() {
        let from = follower.log_end_offset();
        // Small fetches, so that markers arrive in batches of their own.
        let read = leader
            .read(from, 200, FetchIsolation::LogEnd, true)
            .unwrap();
        follower
            .append_replicated(&read.bytes, 0)
            .unwrap()
            .unwrap()
            .wait()
            .unwrap();
    }
    let end = leader.log_end_offset();
    assert_eq!(
        follower.aborted_transactions(Offset(0), end),
        leader.aborted_transactions(Offset(0), end)
    );
    assert_eq!(
        follower.aborted_transactions(Offset(0), end),
        [aborted(1, 0)]
    );
    assert_eq!(follower.last_stable_offset(), leader.last_stable_offset());
    for id in [1, 2, 3] {
        let (l, f) = (
            leader.producer_state(id).unwrap(),
            follower.producer_state(id).unwrap(),
        );
        assert_eq!(f.current_txn_first_offset, l.current_txn_first_offset);
        assert_eq!(f.coordinator_epoch, l.coordinator_epoch);
    }
    assert_eq!(fx.txn_index_files("follower").len(), 1);
}

#[test]
fn a_producer_with_an_open_transaction_does_not_expire() {
    let fx = Fixture::new();
    let partition = fx.create("p", none());
    append(&partition, &txn_batch(1, 0, 0, 1));
    append(&partition, &idempotent(2, 0, 0, 1));
    assert_eq!(partition.remove_expired_producers(1_000_000, 10), 1);
    assert!(partition.producer_state(1).is_some());
    assert!(partition.producer_state(2).is_none());
    end_txn(&partition, 1, 0, MarkerKind::Commit);
    assert_eq!(partition.remove_expired_producers(1_000_000, 10), 1);
}

#[test]
fn a_follower_takes_an_unreadable_control_record_as_no_marker() {
    use rill_record::{BatchViewMut, layout};
    let fx = Fixture::new();
    let follower = fx.create("follower", none());
    let mut data = txn_batch(7, 0, 0, 2);
    BatchViewMut::new(&mut data).unwrap().set_base_offset(0);
    let mut control = end_txn_marker(7, 0, marker(MarkerKind::Abort, 0), 0).unwrap();
    BatchViewMut::new(&mut control).unwrap().set_base_offset(2);
    // The record's length now claims more bytes than the batch holds.
    control[layout::RECORDS] = 0x7e;
    let crc = crc32c::crc32c(&control[layout::ATTRIBUTES..]);
    control[layout::CRC..layout::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    let mut records = data.clone();
    records.extend_from_slice(&control);
    follower
        .append_replicated(&records, 0)
        .unwrap()
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(follower.log_end_offset(), Offset(3));
    assert_eq!(
        follower.producer_state(7).unwrap().current_txn_first_offset,
        Some(Offset(0)),
        "not ended by a marker that cannot be read"
    );
    assert!(
        follower
            .aborted_transactions(Offset(0), Offset(3))
            .is_empty()
    );
}
