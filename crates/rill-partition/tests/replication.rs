//! A partition as the replication layer drives it: a follower copying its
//! leader's batches (epochs and producer state with them), a leader
//! recording its epoch before the first produce, the replicated high
//! watermark and its checkpoint, and a returning follower truncated by
//! leader epoch.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::sync::Arc;

use rill_partition::{
    FetchIsolation, LEADER_EPOCH_CHECKPOINT, LogManager, ManagerConfig, OffsetSpec, Partition,
    PartitionError, REPLICATION_OFFSET_CHECKPOINT, TopicPartition,
};
use rill_record::{BatchBuilder, BatchView, Batches, NewRecord};
use rill_storage::testing::FaultyDisk;
use rill_storage::{AppendError, FlushPolicy, Flusher, LogConfig, Offset, RecoveryHints};

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

    /// A new partition `t-0` of a broker whose data lives in `name`.
    fn partition(&self, name: &str, config: LogConfig) -> Partition {
        Partition::create(
            &self.root.path().join(name),
            tp(),
            config,
            &self.flusher,
            self.disk.clone(),
            0,
        )
        .unwrap()
    }

    /// Closes `partition` and opens it again as after a clean shutdown.
    fn restart(&self, name: &str, partition: Partition, config: LogConfig) -> Partition {
        let start = partition.log_start_offset();
        let end = partition.close().unwrap();
        drop(partition);
        let hints = RecoveryHints {
            clean_shutdown: true,
            recovery_point: end,
            log_start_offset: start,
        };
        Partition::open(
            &self.root.path().join(name),
            tp(),
            config,
            hints,
            &self.flusher,
            self.disk.clone(),
            0,
        )
        .unwrap()
        .0
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn none() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::None,
        ..LogConfig::default()
    }
}

/// Appends, as leader in `epoch`, a batch of `count` records of producer
/// `producer_id` starting at `sequence` (no producer id if negative).
fn produce(partition: &Partition, producer_id: i64, sequence: i32, count: usize, epoch: i32) {
    let values: Vec<String> = (0..count).map(|i| format!("p{producer_id}-{i}")).collect();
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .map(|v| NewRecord::value(v.as_bytes()))
        .collect();
    let mut builder = BatchBuilder::new(1_000 + i64::from(sequence));
    if producer_id >= 0 {
        builder = builder.producer(producer_id, 0, sequence);
    }
    let batch = builder.with_records(&records).finish().unwrap();
    partition.append(&batch, epoch, 0).unwrap().wait().unwrap();
}

/// What a fetch from `from` would return of the leader's log.
fn fetch(leader: &Partition, from: Offset) -> Vec<u8> {
    leader
        .read(from, 1 << 20, FetchIsolation::LogEnd, true)
        .unwrap()
        .bytes
        .to_vec()
}

/// Fetches from `leader` until `follower` has all of its log.
fn follow(follower: &Partition, leader: &Partition) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let response = fetch(leader, follower.log_end_offset());
        let ticket = follower.append_replicated(&response, 0).unwrap().unwrap();
        ticket.wait().unwrap();
    }
}

/// Every byte of the log, from its start to its end.
fn log_bytes(partition: &Partition) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = partition.log_start_offset();
    while next < partition.log_end_offset() {
        let bytes = fetch(partition, next);
        for batch in Batches::new(&bytes) {
            out.extend_from_slice(batch.as_bytes());
            next = Offset(batch.next_offset());
        }
    }
    out
}

/// The first `n` whole batches of `bytes`.
fn first_batches(bytes: &[u8], n: usize) -> Vec<u8> {
    Batches::new(bytes)
        .take(n)
        .flat_map(|b| b.as_bytes().to_vec())
        .collect()
}

#[test]
fn a_follower_copies_the_leader_byte_for_byte_with_its_epochs_and_producers() {
    let fx = Fixture::new();
    let leader = fx.partition("leader", LogConfig::default());
    leader.assign_leader_epoch(1).unwrap();
    for batch in 0..3 {
        produce(&leader, 7, batch * 2, 2, 1); // offsets 0..=5
    }
    produce(&leader, 8, 0, 3, 1); // 6..=8
    leader.assign_leader_epoch(2).unwrap();
    produce(&leader, 7, 6, 2, 2); // 9..=10
    produce(&leader, -1, 0, 2, 2); // 11..=12, no producer id
    let follower = fx.partition("follower", LogConfig::default());
    // A fetch response may end part-way through a batch: the follower
    // takes the whole batches and fetches the rest next time.
    let response = fetch(&leader, Offset(0));
    let cut = &response[..response.len() - 10];
    let ticket = follower.append_replicated(cut, 0).unwrap().unwrap();
    let info = ticket.wait().unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset),
        (Offset(9), Offset(10))
    );
    assert_eq!(follower.log_end_offset(), Offset(11));
    follow(&follower, &leader);
    assert_eq!(follower.log_end_offset(), Offset(13));
    assert_eq!(log_bytes(&follower), log_bytes(&leader), "byte for byte");
    for epoch in 0..=3 {
        assert_eq!(
            follower.end_offset_for_epoch(epoch),
            leader.end_offset_for_epoch(epoch),
            "epoch {epoch}"
        );
    }
    assert_eq!(follower.end_offset_for_epoch(1), (1, Offset(9)));
    assert_eq!(follower.latest_epoch(), Some(2));
    for producer_id in [7, 8] {
        assert_eq!(
            follower.producer_state(producer_id),
            leader.producer_state(producer_id),
            "producer {producer_id}"
        );
    }
    assert_eq!(follower.producer_state(7).unwrap().last_sequence(), Some(7));
    // Single-broker high watermark until the replication layer sets one.
    assert!(!follower.is_replicated_high_watermark());
    assert_eq!(follower.high_watermark(), Offset(13));
    // All of it survives a restart.
    let follower = fx.restart("follower", follower, LogConfig::default());
    assert_eq!(log_bytes(&follower), log_bytes(&leader));
    assert_eq!(follower.end_offset_for_epoch(1), (1, Offset(9)));
    assert_eq!(follower.producer_state(8), leader.producer_state(8));
}

#[test]
fn a_record_set_that_does_not_follow_the_log_end_changes_nothing() {
    let fx = Fixture::new();
    let leader = fx.partition("leader", none());
    for batch in 0..3 {
        produce(&leader, 7, batch * 2, 2, 1); // offsets 0..=5
    }
    let follower = fx.partition("follower", none());
    follow(&follower, &leader);
    leader.assign_leader_epoch(4).unwrap();
    produce(&leader, 7, 6, 1, 4); // 6
    produce(&leader, 7, 7, 1, 4); // 7
    let epochs_file = || {
        std::fs::read_to_string(
            fx.root
                .path()
                .join("follower")
                .join(LEADER_EPOCH_CHECKPOINT),
        )
        .unwrap()
    };
    let before = (
        log_bytes(&follower),
        follower.producer_state(7),
        epochs_file(),
    );
    let unchanged = |what: &str| {
        assert_eq!(follower.log_end_offset(), Offset(6), "{what}");
        assert_eq!(
            follower.latest_epoch(),
            Some(1),
            "{what}: epoch 4 not recorded"
        );
        assert_eq!(
            (
                log_bytes(&follower),
                follower.producer_state(7),
                epochs_file()
            ),
            before,
            "{what}"
        );
    };
    // A fetch from below the follower's log end (its offsets disagree).
    match follower.append_replicated(&fetch(&leader, Offset(2)), 0) {
        Err(PartitionError::Append(AppendError::BaseOffsetBelowLogEnd {
            log_end,
            base_offset,
            last_offset,
        })) => {
            assert_eq!(
                (log_end, base_offset, last_offset),
                (Offset(6), Offset(2), Offset(3))
            );
        }
        other => panic!("{other:?}"),
    }
    unchanged("from below");
    // Batches out of order within a record set: none of them is written.
    let next = fetch(&leader, Offset(6));
    let at_six = first_batches(&next, 1);
    let repeated = [at_six.clone(), at_six.clone()].concat();
    assert!(matches!(
        follower.append_replicated(&repeated, 0),
        Err(PartitionError::Append(AppendError::BaseOffsetBelowLogEnd {
            log_end: Offset(7),
            base_offset: Offset(6),
            ..
        }))
    ));
    unchanged("out of order");
    // A damaged batch after a good one: none of them is written.
    let mut damaged = next.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    assert!(matches!(
        follower.append_replicated(&damaged, 0),
        Err(PartitionError::Append(AppendError::InvalidBatch(_)))
    ));
    unchanged("damaged");
    // Nothing whole to append: no ticket.
    assert!(follower.append_replicated(&[], 0).unwrap().is_none());
    assert!(
        follower
            .append_replicated(&next[..30], 0)
            .unwrap()
            .is_none()
    );
    unchanged("nothing whole");
    // The right batches are then taken, and epoch 4 begins at 6.
    follow(&follower, &leader);
    assert_eq!(log_bytes(&follower), log_bytes(&leader));
    assert_eq!(follower.end_offset_for_epoch(1), (1, Offset(6)));
    assert_eq!(follower.end_offset_for_epoch(4), (4, Offset(8)));
}

#[test]
fn a_new_leader_answers_offset_for_leader_epoch_before_its_first_produce() {
    let fx = Fixture::new();
    let partition = fx.partition("broker", none());
    produce(&partition, -1, 0, 5, 0); // 0..=4 in epoch 0
    partition.assign_leader_epoch(3).unwrap();
    assert_eq!(partition.latest_epoch(), Some(3));
    assert_eq!(partition.end_offset_for_epoch(0), (0, Offset(5)));
    assert_eq!(partition.end_offset_for_epoch(2), (0, Offset(5)));
    assert_eq!(partition.end_offset_for_epoch(3), (3, Offset(5)));
    // Again, or an older epoch: nothing changes.
    partition.assign_leader_epoch(3).unwrap();
    partition.assign_leader_epoch(1).unwrap();
    partition.assign_leader_epoch(-1).unwrap();
    // The first produce in epoch 3 adds no second entry.
    produce(&partition, -1, 0, 3, 3); // 5..=7
    assert_eq!(partition.end_offset_for_epoch(3), (3, Offset(8)));
    assert_eq!(partition.end_offset_for_epoch(0), (0, Offset(5)));
    let checkpoint = fx.root.path().join("broker").join(LEADER_EPOCH_CHECKPOINT);
    assert_eq!(
        std::fs::read_to_string(&checkpoint).unwrap(),
        "0\n2\n0 0\n3 5\n"
    );
    let partition = fx.restart("broker", partition, none());
    assert_eq!(partition.end_offset_for_epoch(0), (0, Offset(5)));
    assert_eq!(partition.end_offset_for_epoch(3), (3, Offset(8)));
}

#[test]
fn a_replicated_high_watermark_bounds_consumers_list_offsets_and_delete_records() {
    let fx = Fixture::new();
    let partition = fx.partition("broker", none());
    for _ in 0..10 {
        produce(&partition, -1, 0, 1, 0); // one record per batch: 0..=9
    }
    assert!(!partition.is_replicated_high_watermark());
    assert_eq!(partition.high_watermark(), Offset(10));
    partition.set_high_watermark(Offset(4));
    assert!(partition.is_replicated_high_watermark());
    assert_eq!(partition.high_watermark(), Offset(4));
    // Consumers see offsets 0..=3; followers see everything.
    let consumer = partition
        .read(Offset(0), 1 << 20, FetchIsolation::HighWatermark, true)
        .unwrap();
    let last_seen = Batches::new(&consumer.bytes).last().unwrap().last_offset();
    assert_eq!(last_seen, 3);
    assert!(
        partition
            .read(Offset(4), 1 << 20, FetchIsolation::HighWatermark, true)
            .unwrap()
            .bytes
            .is_empty()
    );
    assert!(
        !partition
            .read(Offset(4), 1 << 20, FetchIsolation::LogEnd, true)
            .unwrap()
            .bytes
            .is_empty()
    );
    let latest = partition.list_offset(OffsetSpec::Latest).unwrap().unwrap();
    assert_eq!(latest.offset, Offset(4));
    let max = partition
        .list_offset(OffsetSpec::MaxTimestamp)
        .unwrap()
        .unwrap();
    assert!(max.offset < Offset(4), "{max:?}");
    assert!(matches!(
        partition.delete_records(Some(Offset(5))),
        Err(PartitionError::DeleteBeyondHighWatermark {
            requested: Offset(5),
            high_watermark: Offset(4)
        })
    ));
    // It never goes back by itself, and never past the log end.
    partition.set_high_watermark(Offset(2));
    assert_eq!(partition.high_watermark(), Offset(4));
    partition.set_high_watermark(Offset(100));
    assert_eq!(partition.high_watermark(), Offset(10));
    // Appends no longer move it: the replication layer does.
    produce(&partition, -1, 0, 2, 0);
    assert_eq!(partition.high_watermark(), Offset(10));
    assert_eq!(partition.delete_records(None).unwrap(), Offset(10));
    assert_eq!(partition.high_watermark(), Offset(10));
}

#[test]
fn retention_stops_at_the_replicated_high_watermark() {
    let fx = Fixture::new();
    let config = LogConfig {
        segment_bytes: 1024,
        retention_ms: 1_000,
        ..none()
    };
    let partition = fx.partition("broker", config);
    let value = vec![b'x'; 300];
    for _ in 0..12 {
        let batch = BatchBuilder::new(0)
            .with_records(&[NewRecord::value(&value)])
            .finish()
            .unwrap();
        partition.append(&batch, 0, 0).unwrap().wait().unwrap();
    }
    assert!(partition.log().segment_count() > 3);
    partition.set_high_watermark(Offset(4));
    let outcome = partition.apply_retention(1_000_000).unwrap();
    assert!(outcome.segments_deleted > 0);
    let start = partition.log_start_offset();
    assert!(start > Offset(0) && start <= Offset(4), "{start}");
    assert!(
        partition
            .read(Offset(4), 1 << 20, FetchIsolation::LogEnd, true)
            .is_ok(),
        "what the high watermark has not passed is kept"
    );
    assert_eq!(partition.high_watermark(), Offset(4));
}

#[test]
fn under_fsync_the_replicated_high_watermark_waits_for_the_sync_too() {
    let fx = Fixture::new();
    let partition = fx.partition("broker", LogConfig::default());
    partition.set_high_watermark(Offset(0));
    fx.disk.hold_syncs(true);
    let batch = BatchBuilder::new(0)
        .with_records(&[NewRecord::value(b"a"), NewRecord::value(b"b")])
        .finish()
        .unwrap();
    let ticket = partition.append(&batch, 0, 0).unwrap();
    partition.set_high_watermark(Offset(2));
    assert_eq!(
        partition.high_watermark(),
        Offset(0),
        "replicated, not yet synced"
    );
    fx.disk.hold_syncs(false);
    ticket.wait().unwrap();
    assert_eq!(partition.high_watermark(), Offset(2));
}

#[test]
fn truncation_lowers_a_replicated_high_watermark() {
    let fx = Fixture::new();
    let partition = fx.partition("broker", none());
    for _ in 0..10 {
        produce(&partition, -1, 0, 1, 0);
    }
    partition.set_high_watermark(Offset(8));
    assert_eq!(partition.truncate_to(Offset(6)).unwrap(), Offset(6));
    assert_eq!(partition.high_watermark(), Offset(6));
    partition.set_high_watermark(Offset(5));
    assert_eq!(partition.high_watermark(), Offset(6));
    // Offsets 6.. are written anew: the old high watermark of 8 is gone.
    for _ in 0..4 {
        produce(&partition, -1, 0, 1, 0);
    }
    assert_eq!(partition.high_watermark(), Offset(6));
    partition.truncate_fully_and_start_at(Offset(100)).unwrap();
    assert!(partition.is_replicated_high_watermark());
    assert_eq!(partition.high_watermark(), Offset(100));
    assert_eq!(partition.log_start_offset(), Offset(100));
    // A single-broker partition stays one.
    let single = fx.partition("single", none());
    for _ in 0..4 {
        produce(&single, -1, 0, 1, 0);
    }
    single.truncate_to(Offset(2)).unwrap();
    assert!(!single.is_replicated_high_watermark());
    assert_eq!(single.high_watermark(), Offset(2));
    produce(&single, -1, 0, 1, 0);
    assert_eq!(single.high_watermark(), Offset(3));
}

struct Dirs {
    _root: tempfile::TempDir,
    dirs: Vec<PathBuf>,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("data-0")];
    Dirs { _root: root, dirs }
}

fn open(dirs: &Dirs) -> Arc<LogManager> {
    LogManager::open(ManagerConfig::new(dirs.dirs.clone()), &|_| none())
        .unwrap()
        .0
}

#[test]
fn the_replicated_high_watermark_survives_restarts_in_its_checkpoint() {
    let dirs = dirs();
    let checkpoint = dirs.dirs[0].join(REPLICATION_OFFSET_CHECKPOINT);
    let manager = open(&dirs);
    let replicated = TopicPartition::new("t", 0);
    let single = TopicPartition::new("t", 1);
    for tp in [&replicated, &single] {
        let partition = manager.create(tp, none()).unwrap();
        for _ in 0..10 {
            produce(&partition, -1, 0, 1, 0);
        }
    }
    manager.checkpoint().unwrap();
    assert!(
        !checkpoint.exists(),
        "no file while no partition is replicated"
    );
    manager
        .get(&replicated)
        .unwrap()
        .set_high_watermark(Offset(7));
    manager.checkpoint().unwrap();
    assert_eq!(
        std::fs::read_to_string(&checkpoint).unwrap(),
        "0\n1\nt 0 7\n"
    );
    // A crash after the checkpoint: back in replicated mode at 7.
    drop(manager);
    let manager = open(&dirs);
    let partition = manager.get(&replicated).unwrap();
    assert!(partition.is_replicated_high_watermark());
    assert_eq!(partition.high_watermark(), Offset(7));
    let other = manager.get(&single).unwrap();
    assert!(!other.is_replicated_high_watermark());
    assert_eq!(other.high_watermark(), Offset(10));
    partition.set_high_watermark(Offset(9));
    drop((partition, other));
    // A clean shutdown writes it too.
    manager.shutdown().unwrap();
    drop(manager);
    assert_eq!(
        std::fs::read_to_string(&checkpoint).unwrap(),
        "0\n1\nt 0 9\n"
    );
    // A checkpointed high watermark past what the log holds is clamped
    // to the log end offset.
    std::fs::write(&checkpoint, "0\n1\nt 0 1000\n").unwrap();
    let manager = open(&dirs);
    let partition = manager.get(&replicated).unwrap();
    assert_eq!(partition.high_watermark(), Offset(10));
    drop(partition);
    // Deleting the last replicated partition removes the file: one
    // created again under the name starts as a single broker's.
    manager.delete(&replicated).unwrap();
    assert!(!checkpoint.exists());
    let again = manager.create(&replicated, none()).unwrap();
    produce(&again, -1, 0, 1, 0);
    drop(again);
    manager.shutdown().unwrap();
    drop(manager);
    let manager = open(&dirs);
    let again = manager.get(&replicated).unwrap();
    assert!(!again.is_replicated_high_watermark());
    assert_eq!(again.high_watermark(), Offset(1));
}

/// Checks the returning follower against the new leader.
fn assert_consistent(follower: &Partition, leader: &Partition) {
    assert_eq!(log_bytes(follower), log_bytes(leader), "the leader's bytes");
    for epoch in 0..=4 {
        assert_eq!(
            follower.end_offset_for_epoch(epoch),
            leader.end_offset_for_epoch(epoch),
            "epoch {epoch}"
        );
    }
    assert_eq!(follower.end_offset_for_epoch(1), (1, Offset(4)));
    assert_eq!(follower.end_offset_for_epoch(2), (1, Offset(4)));
    assert_eq!(follower.end_offset_for_epoch(3), (3, Offset(9)));
    assert_eq!(follower.producer_state(7), leader.producer_state(7));
    assert_eq!(follower.producer_state(7).unwrap().last_sequence(), Some(8));
    assert!(follower.is_replicated_high_watermark());
    assert_eq!(follower.high_watermark(), Offset(6));
}

#[test]
fn a_follower_truncated_into_an_older_epoch_stays_consistent_across_restarts() {
    let fx = Fixture::new();
    let dirs = dirs();
    let config = ManagerConfig::new(dirs.dirs.clone());
    let open = || {
        LogManager::open(config.clone(), &|_| LogConfig::default())
            .unwrap()
            .0
    };
    let manager = open();
    let follower = manager.create(&tp(), LogConfig::default()).unwrap();
    // The old leader writes epoch 1 (offsets 0..=5) and epoch 2 (6..=9),
    // all of which the follower copies.
    let old_leader = fx.partition("old-leader", LogConfig::default());
    old_leader.assign_leader_epoch(1).unwrap();
    for batch in 0..3 {
        produce(&old_leader, 7, batch * 2, 2, 1);
    }
    old_leader.assign_leader_epoch(2).unwrap();
    for batch in 3..5 {
        produce(&old_leader, 7, batch * 2, 2, 2);
    }
    follow(&follower, &old_leader);
    follower.set_high_watermark(Offset(8));
    assert_eq!(follower.latest_epoch(), Some(2));
    // The new leader had copied only offsets 0..=3 when it took over in
    // epoch 3; the producer then wrote sequences 4.. again, to it.
    let new_leader = fx.partition("new-leader", LogConfig::default());
    let two = first_batches(&fetch(&old_leader, Offset(0)), 2);
    new_leader
        .append_replicated(&two, 0)
        .unwrap()
        .unwrap()
        .wait()
        .unwrap();
    new_leader.assign_leader_epoch(3).unwrap();
    produce(&new_leader, 7, 4, 2, 3); // 4..=5
    produce(&new_leader, 7, 6, 3, 3); // 6..=8
    // The follower returns: OffsetForLeaderEpoch for its latest epoch.
    let (epoch, end) = new_leader.end_offset_for_epoch(follower.latest_epoch().unwrap());
    assert_eq!((epoch, end), (1, Offset(4)));
    assert_eq!(follower.truncate_to(end).unwrap(), Offset(4));
    assert_eq!(follower.latest_epoch(), Some(1));
    assert_eq!(follower.high_watermark(), Offset(4), "lowered to the cut");
    let producer = follower.producer_state(7).unwrap();
    assert_eq!(producer.last_sequence(), Some(3));
    assert_eq!(producer.batches.back().unwrap().last_offset, Offset(3));
    // It copies epoch 3 from the new leader.
    follow(&follower, &new_leader);
    follower.set_high_watermark(Offset(6));
    assert_consistent(&follower, &new_leader);
    assert_eq!(
        BatchView::new(&fetch(&follower, Offset(4)))
            .unwrap()
            .partition_leader_epoch(),
        3
    );
    // A crash after a checkpoint pass.
    manager.checkpoint().unwrap();
    drop(follower);
    drop(manager);
    let manager = open();
    let follower = manager.get(&tp()).unwrap();
    assert_consistent(&follower, &new_leader);
    drop(follower);
    // A clean restart.
    manager.shutdown().unwrap();
    drop(manager);
    let manager = open();
    let follower = manager.get(&tp()).unwrap();
    assert_consistent(&follower, &new_leader);
}
