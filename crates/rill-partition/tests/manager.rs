//! The log manager across restarts: clean and unclean, several log
//! directories, checkpoints, deletion and background retention.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_partition::{
    CLEAN_SHUTDOWN_MARKER, FetchIsolation, LOG_START_CHECKPOINT, LogManager, ManagerConfig,
    ManagerError, Partition, RECOVERY_POINT_CHECKPOINT, TopicPartition,
};
use rill_record::{BatchBuilder, Batches, NewRecord};
use rill_storage::{AppendError, FlushPolicy, LogConfig, Offset};

fn batch(value: &str) -> Vec<u8> {
    BatchBuilder::new(0)
        .with_records(&[NewRecord::value(value.as_bytes())])
        .finish()
        .unwrap()
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        flush: FlushPolicy::None,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

struct Dirs {
    _root: tempfile::TempDir,
    dirs: Vec<PathBuf>,
}

fn dirs(n: usize) -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let dirs = (0..n)
        .map(|i| root.path().join(format!("data-{i}")))
        .collect();
    Dirs { _root: root, dirs }
}

fn open(dirs: &Dirs) -> (Arc<LogManager>, rill_partition::StartupReport) {
    LogManager::open(ManagerConfig::new(dirs.dirs.clone()), &|_| small()).unwrap()
}

/// Every value from the log start to the high watermark, reading as a
/// consumer does (a read never spans segments).
fn values(partition: &Partition) -> Vec<String> {
    let mut out = Vec::new();
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
                if batch.base_offset() + i64::from(record.offset_delta) >= next.value() {
                    out.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
                }
            }
            next = Offset(batch.next_offset());
        }
    }
}

fn fill(manager: &LogManager, topics: &[&str], per_partition: usize) -> Vec<TopicPartition> {
    let mut created = Vec::new();
    for topic in topics {
        for p in 0..2 {
            let tp = TopicPartition::new(*topic, p);
            let partition = manager.create(&tp, small()).unwrap();
            for i in 0..per_partition {
                partition
                    .append(&batch(&format!("{tp}/{i}")), 0, 0)
                    .unwrap()
                    .wait()
                    .unwrap();
            }
            created.push(tp);
        }
    }
    created
}

#[test]
fn a_clean_restart_finds_every_partition_and_recovers_nothing() {
    let dirs = dirs(2);
    let (manager, _) = open(&dirs);
    let created = fill(&manager, &["orders", "payments", "audit"], 40);
    // Partitions are spread over both directories.
    for dir in &dirs.dirs {
        let here = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count();
        assert_eq!(here, 3, "{}", dir.display());
    }
    manager.shutdown().unwrap();
    for dir in &dirs.dirs {
        assert!(dir.join(CLEAN_SHUTDOWN_MARKER).exists());
    }
    let partition = manager.get(&created[0]).unwrap();
    assert!(matches!(
        partition.append(&batch("late"), 0, 0),
        Err(rill_partition::PartitionError::Append(
            AppendError::Closed { .. }
        ))
    ));
    drop(partition);
    drop(manager);

    let (manager, report) = open(&dirs);
    assert_eq!(report.partitions, 6);
    assert_eq!(report.clean_dirs, 2);
    assert!(
        report.recovered.is_empty(),
        "nothing scanned: {:?}",
        report.recovered
    );
    for dir in &dirs.dirs {
        assert!(
            !dir.join(CLEAN_SHUTDOWN_MARKER).exists(),
            "the marker goes at start-up"
        );
    }
    for tp in &created {
        let got = values(&manager.get(tp).unwrap());
        let want: Vec<String> = (0..40).map(|i| format!("{tp}/{i}")).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn an_unclean_restart_validates_only_after_the_checkpointed_recovery_point() {
    let dirs = dirs(1);
    let (manager, _) = open(&dirs);
    let created = fill(&manager, &["events"], 100);
    for tp in &created {
        manager.get(tp).unwrap().log().flush().unwrap();
    }
    manager.checkpoint().unwrap();
    let checkpoint = std::fs::read_to_string(dirs.dirs[0].join(RECOVERY_POINT_CHECKPOINT)).unwrap();
    assert!(checkpoint.contains("events 0 100"), "{checkpoint}");
    for tp in &created {
        manager
            .get(tp)
            .unwrap()
            .append(&batch(&format!("{tp}/late")), 0, 0)
            .unwrap()
            .wait()
            .unwrap();
    }
    drop(manager); // a crash: no shutdown

    let (manager, report) = open(&dirs);
    assert_eq!(report.clean_dirs, 0);
    assert_eq!(report.recovered.len(), 2);
    for (tp, recovery) in &report.recovered {
        let partition = manager.get(tp).unwrap();
        assert!(recovery.validated_bytes > 0);
        assert!(
            recovery.validated_bytes < partition.log().size_bytes(),
            "only batches after the recovery point are validated"
        );
        assert_eq!(recovery.dropped_bytes, 0);
        assert_eq!(partition.log_end_offset(), Offset(101));
        assert_eq!(values(&partition).last().unwrap(), &format!("{tp}/late"));
    }
}

#[test]
fn the_log_start_survives_a_crash_through_its_checkpoint() {
    let dirs = dirs(1);
    let (manager, _) = open(&dirs);
    let created = fill(&manager, &["t"], 30);
    manager
        .get(&created[0])
        .unwrap()
        .delete_records(Some(Offset(12)))
        .unwrap();
    manager.checkpoint().unwrap();
    let text = std::fs::read_to_string(dirs.dirs[0].join(LOG_START_CHECKPOINT)).unwrap();
    assert!(text.contains("t 0 12"), "{text}");
    drop(manager);
    let (manager, _) = open(&dirs);
    let partition = manager.get(&created[0]).unwrap();
    assert_eq!(partition.log_start_offset(), Offset(12));
    assert_eq!(values(&partition)[0], "t-0/12");
}

#[test]
fn a_deleted_partition_stays_deleted_and_refuses_writes() {
    let dirs = dirs(1);
    let (manager, _) = open(&dirs);
    let created = fill(&manager, &["gone"], 5);
    let handle = manager.get(&created[0]).unwrap();
    manager.delete(&created[0]).unwrap();
    assert!(manager.get(&created[0]).is_none());
    assert!(!dirs.dirs[0].join("gone-0").exists());
    assert!(handle.append(&batch("x"), 0, 0).is_err());
    assert_eq!(values(&handle).len(), 5, "a holder still reads what it had");
    assert!(matches!(
        manager.delete(&created[0]),
        Err(ManagerError::NotFound { .. })
    ));
    // A deletion interrupted by a crash is finished at the next start.
    std::fs::create_dir_all(dirs.dirs[0].join("gone-1.abc-delete")).unwrap();
    drop(manager);
    let (manager, _) = open(&dirs);
    assert!(manager.get(&created[0]).is_none());
    assert!(!dirs.dirs[0].join("gone-1.abc-delete").exists());
    // The partition can be created again, empty.
    let again = manager.create(&created[0], small()).unwrap();
    assert_eq!(again.log_end_offset(), Offset(0));
}

#[test]
fn creation_checks_names_and_duplicates() {
    let dirs = dirs(1);
    let (manager, _) = open(&dirs);
    let tp = TopicPartition::new("dup", 0);
    manager.create(&tp, small()).unwrap();
    assert!(matches!(
        manager.create(&tp, small()),
        Err(ManagerError::AlreadyExists { .. })
    ));
    assert!(Arc::ptr_eq(
        &manager.get_or_create(&tp, small()).unwrap(),
        &manager.get(&tp).unwrap()
    ));
    assert!(matches!(
        manager.create(&TopicPartition::new("bad/name", 0), small()),
        Err(ManagerError::InvalidTopicName(_))
    ));
}

#[test]
fn the_same_partition_in_two_directories_is_refused() {
    let dirs = dirs(2);
    for dir in &dirs.dirs {
        std::fs::create_dir_all(dir.join("twin-0")).unwrap();
    }
    match LogManager::open(ManagerConfig::new(dirs.dirs.clone()), &|_| small()) {
        Err(ManagerError::DuplicatePartition {
            topic_partition, ..
        }) => assert_eq!(topic_partition.topic, "twin"),
        other => panic!("expected DuplicatePartition, got {other:?}"),
    }
}

#[test]
fn retention_and_checkpoints_run_in_the_background() {
    let dirs = dirs(1);
    let config = ManagerConfig {
        retention_check_interval_ms: 10,
        checkpoint_interval_ms: 10,
        ..ManagerConfig::new(dirs.dirs.clone())
    };
    let retained = LogConfig {
        retention_bytes: 2048,
        ..small()
    };
    let (manager, _) = LogManager::open(config, &|_| small()).unwrap();
    let tp = TopicPartition::new("busy", 0);
    let partition = manager.create(&tp, retained).unwrap();
    for i in 0..200 {
        partition
            .append(&batch(&format!("{i:04}")), 0, 0)
            .unwrap()
            .wait()
            .unwrap();
    }
    partition.log().flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let checkpoint = std::fs::read_to_string(dirs.dirs[0].join(RECOVERY_POINT_CHECKPOINT))
            .unwrap_or_default();
        if partition.log_start_offset() > Offset(0) && checkpoint.contains("busy 0 200") {
            break;
        }
        assert!(Instant::now() < deadline, "background work did not happen");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(partition.log().size_bytes() >= 2048);
    assert!(partition.log().size_bytes() < 200 * batch("0000").len() as u64);
}

#[test]
fn a_torn_checkpoint_write_leaves_the_old_checkpoint_in_force() {
    let dirs = dirs(1);
    let (manager, _) = open(&dirs);
    let created = fill(&manager, &["t"], 10);
    manager.shutdown().unwrap();
    drop(manager);
    // A crash during the next write leaves its temporary file behind.
    std::fs::write(
        dirs.dirs[0].join(format!("{RECOVERY_POINT_CHECKPOINT}.tmp")),
        "0\n1\nt 0 999",
    )
    .unwrap();
    let (manager, report) = open(&dirs);
    assert!(report.recovered.is_empty());
    assert_eq!(
        manager.get(&created[0]).unwrap().log_end_offset(),
        Offset(10)
    );
}

#[test]
fn the_background_forgets_producers_idle_past_their_expiration() {
    let dirs = dirs(1);
    let config = ManagerConfig {
        producer_id_expiration_ms: 3_600_000,
        producer_id_expiration_check_interval_ms: 10,
        ..ManagerConfig::new(dirs.dirs.clone())
    };
    let (manager, _) = LogManager::open(config, &|_| small()).unwrap();
    let partition = manager
        .create(&TopicPartition::new("t", 0), small())
        .unwrap();
    let now_ms = rill_storage::now_ms();
    for (producer_id, timestamp) in [(1, now_ms), (2, now_ms - 7_200_000)] {
        let batch = BatchBuilder::new(timestamp)
            .producer(producer_id, 0, 0)
            .with_records(&[NewRecord::value(b"v")])
            .finish()
            .unwrap();
        partition.append(&batch, 0, now_ms).unwrap().wait().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while partition.active_producers().len() > 1 {
        assert!(Instant::now() < deadline, "expiry never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    let left: Vec<i64> = partition
        .active_producers()
        .iter()
        .map(|p| p.producer_id)
        .collect();
    assert_eq!(left, [1], "only the producer idle for two hours goes");
    manager.shutdown().unwrap();
}

#[test]
fn a_segment_removed_under_an_idle_partition_takes_it_offline_and_a_restart_recovers_the_rest() {
    let dirs = dirs(1);
    let config = ManagerConfig {
        retention_check_interval_ms: 10,
        ..ManagerConfig::new(dirs.dirs.clone())
    };
    let (manager, _) = LogManager::open(config.clone(), &|_| small()).unwrap();
    let (idle, busy) = (
        TopicPartition::new("idle", 0),
        TopicPartition::new("busy", 0),
    );
    for tp in [&idle, &busy] {
        let partition = manager.create(tp, small()).unwrap();
        for i in 0..100 {
            partition
                .append(&batch(&format!("{i:03}")), 0, 0)
                .unwrap()
                .wait()
                .unwrap();
        }
    }
    let idle_partition = manager.get(&idle).unwrap();
    let before = values(&idle_partition);
    assert!(idle_partition.log().segment_count() > 2);
    let oldest = idle_partition.dir().join(format!("{:020}.log", 0));
    std::fs::remove_file(&oldest).unwrap();

    // Nobody reads or writes it: the background retention pass notices.
    let deadline = Instant::now() + Duration::from_secs(20);
    while idle_partition.log().failure().is_none() {
        assert!(Instant::now() < deadline, "the removal was never noticed");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(matches!(
        idle_partition.read(Offset(50), 1 << 20, FetchIsolation::HighWatermark, true),
        Err(rill_storage::ReadError::Offline(_))
    ));
    assert!(matches!(
        idle_partition.list_offset(rill_partition::OffsetSpec::Latest),
        Err(rill_storage::ReadError::Offline(_))
    ));
    assert!(matches!(
        idle_partition.append(&batch("refused"), 0, 0),
        Err(rill_partition::PartitionError::Append(
            AppendError::Offline(_)
        ))
    ));
    // The other partition goes on.
    let busy_partition = manager.get(&busy).unwrap();
    busy_partition
        .append(&batch("more"), 0, 0)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(values(&busy_partition).len(), 101);

    // The offline partition cannot close cleanly, so the restart recovers
    // it; the others are closed as usual.
    match manager.shutdown() {
        Err(ManagerError::Partition {
            topic_partition, ..
        }) => assert_eq!(topic_partition, idle),
        other => panic!("expected the offline partition's error, found {other:?}"),
    }
    assert!(!dirs.dirs[0].join(CLEAN_SHUTDOWN_MARKER).exists());
    drop((manager, idle_partition, busy_partition));

    let (manager, report) = LogManager::open(config, &|_| small()).unwrap();
    assert!(report.recovered.iter().any(|(tp, _)| tp == &idle));
    let idle_partition = manager.get(&idle).unwrap();
    assert!(idle_partition.log().failure().is_none(), "online again");
    let after = values(&idle_partition);
    let start = idle_partition.log_start_offset();
    assert!(
        start > Offset(0),
        "the log starts after the removed segment"
    );
    assert_eq!(
        after[..],
        before[start.value() as usize..],
        "the rest, undamaged"
    );
    idle_partition
        .append(&batch("again"), 0, 0)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(values(&manager.get(&busy).unwrap()).len(), 101);
    manager.shutdown().unwrap();
}

#[test]
fn an_offline_partition_can_still_be_deleted() {
    let dirs = dirs(1);
    let (manager, _) = open(&dirs);
    let created = fill(&manager, &["offline"], 3);
    let partition = manager.get(&created[0]).unwrap();
    std::fs::remove_file(partition.dir().join(format!("{:020}.log", 0))).unwrap();
    assert!(partition.log().check_files().is_err());
    manager.delete(&created[0]).unwrap();
    assert!(manager.get(&created[0]).is_none());
    assert!(!partition.dir().exists());
    manager.shutdown().unwrap();
}
