//! A full disk, for real: a broker whose data directory is a small tmpfs
//! (mounted by the test; root, as the network-namespace tests need)
//! takes produce requests until the file system is nearly full — its
//! segments' geometric preallocation falls back to what each batch needs
//! rather than refusing writes with room left — then answers
//! KAFKA_STORAGE_ERROR, says once that the directory is full, keeps
//! serving reads, and says once that it has room again when space is
//! freed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::BrokerProcess;
use common::wire::{self, Wire, topic_name};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{CreateTopicsRequest, DeleteTopicsRequest, MetadataRequest};
use rill_record::{BatchBuilder, NewRecord};

/// KAFKA_STORAGE_ERROR.
const STORAGE_ERROR: i16 = 56;
const FILE_SYSTEM_MIB: u64 = 48;
const BATCH_BYTES: usize = 256 * 1024;
const PARTITIONS: i32 = 3;

/// A tmpfs of `FILE_SYSTEM_MIB` mounted at a new directory, unmounted
/// when dropped.
struct SmallFileSystem {
    mount: PathBuf,
    _temp: tempfile::TempDir,
}

impl SmallFileSystem {
    fn mount() -> SmallFileSystem {
        SmallFileSystem::mount_with(&format!("size={FILE_SYSTEM_MIB}m"))
    }

    /// With tmpfs `options` (`size=...`, `nr_inodes=...`).
    fn mount_with(options: &str) -> SmallFileSystem {
        let temp = tempfile::tempdir().unwrap();
        let mount = temp.path().join("fs");
        std::fs::create_dir(&mount).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&mount)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs (needs root)");
        SmallFileSystem { mount, _temp: temp }
    }

    fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        // Lazily: the broker may still hold files if the test failed.
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status(); // Nothing to do if it fails.
    }
}

fn batch(n: usize) -> Vec<u8> {
    let value = vec![u8::try_from(n % 251).unwrap(); BATCH_BYTES];
    BatchBuilder::new(0)
        .with_records(&[NewRecord::value(&value)])
        .finish()
        .unwrap()
}

#[test]
fn a_full_disk_is_used_to_the_end_said_once_and_recovered_from() {
    let fs = SmallFileSystem::mount();
    let broker = BrokerProcess::start_in(&fs.path().join("data"), &[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    wire::create_topic_with(&mut wire, "fill", PARTITIONS);

    // Round-robin over the partitions until each refuses in turn (one may
    // still have room reserved when another has none).
    let limit = usize::try_from(2 * FILE_SYSTEM_MIB).unwrap() * 1024 * 1024 / BATCH_BYTES;
    let mut acknowledged = 0;
    let mut refused_in_a_row = 0;
    for n in 0..limit {
        let partition = i32::try_from(n).unwrap() % PARTITIONS;
        match wire::produce_batch(&mut wire, "fill", partition, batch(n)) {
            (0, _) => {
                acknowledged += BATCH_BYTES;
                refused_in_a_row = 0;
            }
            (code, _) => {
                assert_eq!(code, STORAGE_ERROR, "a full disk refuses produce");
                refused_in_a_row += 1;
                if refused_in_a_row == PARTITIONS {
                    break;
                }
            }
        }
    }
    assert_eq!(refused_in_a_row, PARTITIONS, "the disk never filled");
    let file_system = u64_to_usize(FILE_SYSTEM_MIB) * 1024 * 1024;
    assert!(
        acknowledged + 4 * 1024 * 1024 >= file_system,
        "only {} of {} MiB used: preallocation refused writes with room left",
        acknowledged / (1024 * 1024),
        FILE_SYSTEM_MIB
    );
    broker.wait_for_log(&["ERROR", "is full"]);
    // More refusals are not news.
    for n in 0..5 {
        assert_eq!(
            wire::produce_batch(&mut wire, "fill", n % PARTITIONS, batch(0)).0,
            STORAGE_ERROR
        );
    }
    // Reads go on.
    let (code, records) = wire::fetch_from(&mut wire, "fill", 0, 0);
    assert_eq!(code, 0);
    assert!(!records.is_empty());

    // Space freed (the topic deleted): a new topic takes writes, and the
    // broker says so, once, with no second "full" in between.
    let deleted = wire.send(
        6,
        &DeleteTopicsRequest::default()
            .with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name("fill"))),
            ])
            .with_timeout_ms(30_000),
    );
    assert_eq!(deleted.responses[0].error_code, 0);
    wire::create_topic(&mut wire, "after");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while wire::produce_batch(&mut wire, "after", 0, batch(1)).0 != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no room after the delete"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let since_full = lines_until(&broker, "has room again");
    let room = since_full.last().unwrap();
    assert!(room.contains("INFO"), "{room}");
    assert!(
        !since_full.iter().any(|l| l.contains("is full")),
        "said full once: {since_full:?}"
    );
}

#[test]
fn a_topic_that_cannot_be_made_whole_is_not_made_at_all() {
    // Few inodes: each partition takes a directory and its files, so
    // topics of four partitions are made until one runs out midway.
    let fs = SmallFileSystem::mount_with("size=64m,nr_inodes=160");
    // Auto-created topics get 16 partitions: more than the inodes left.
    let broker = BrokerProcess::start_in(&fs.path().join("data"), &["--set", "num.partitions=16"]);
    let mut wire = Wire::connect(&broker.bootstrap);
    let create = |wire: &mut Wire, name: &str| {
        let created = wire.send(
            7,
            &CreateTopicsRequest::default()
                .with_topics(vec![
                    CreatableTopic::default()
                        .with_name(topic_name(name))
                        .with_num_partitions(4)
                        .with_replication_factor(1),
                ])
                .with_timeout_ms(30_000),
        );
        created.topics[0].clone()
    };
    let mut made = Vec::new();
    let refused = loop {
        assert!(made.len() < 40, "160 inodes never ran out");
        let name = format!("t{}", made.len());
        let result = create(&mut wire, &name);
        if result.error_code != 0 {
            break (name, result);
        }
        made.push(name);
    };
    let (name, result) = refused;
    assert!(!made.is_empty(), "not even one topic fit: {result:?}");
    assert_eq!(result.error_code, STORAGE_ERROR, "{result:?}");
    let cause = result.error_message.as_deref().unwrap_or_default();
    assert!(
        cause.contains(&format!("{name}-")) && cause.contains("No space left"),
        "the partition and the cause: {cause}"
    );
    broker.wait_for_log(&["ERROR", "topic not created", &name]);

    // Nothing of it to see, in the metadata or on disk.
    let listed = wire.send(12, &MetadataRequest::default().with_topics(None));
    let names: Vec<String> = listed
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert!(!names.contains(&name), "{names:?}");
    for made in &made {
        assert!(names.contains(made), "{made} gone: {names:?}");
    }
    let prefix = format!("{name}-");
    let left: Vec<String> = std::fs::read_dir(fs.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|dir| dir.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left on disk: {left:?}");

    // Auto-created (a Metadata request naming it) and not made whole:
    // undone the same way.
    let asked = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name("auto-late"))),
        ]))
        .with_allow_auto_topic_creation(true);
    wire.send(12, &asked);
    broker.wait_for_log(&["ERROR", "topic not created", "auto-late"]);
    common::cluster::wait_until(
        Duration::from_secs(30),
        "the auto-created topic deleted again",
        || {
            let listed = wire.send(12, &MetadataRequest::default().with_topics(None));
            !listed
                .topics
                .iter()
                .any(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "auto-late"))
        },
    );

    // The topics made before take writes; with room again (one deleted),
    // the same topic is made whole.
    assert_eq!(
        wire::produce_batch(&mut wire, &made[0], 3, batch(1)).0,
        0,
        "an earlier topic takes writes"
    );
    let deleted = wire.send(
        6,
        &DeleteTopicsRequest::default()
            .with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name(&made[0]))),
            ])
            .with_timeout_ms(30_000),
    );
    assert_eq!(deleted.responses[0].error_code, 0);
    let again = create(&mut wire, &name);
    assert_eq!(again.error_code, 0, "{again:?}");
    assert_eq!(wire::produce_batch(&mut wire, &name, 3, batch(2)).0, 0);
}

/// The broker's log lines from now to the first containing `words`.
fn lines_until(broker: &BrokerProcess, words: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = broker
            .log
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("no log line with {words:?}: {e}"));
        let done = line.contains(words);
        lines.push(line);
        if done {
            return lines;
        }
    }
}

fn u64_to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap()
}
