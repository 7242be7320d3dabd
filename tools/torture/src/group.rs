//! A consumer group (librdkafka) that keeps consuming and committing
//! through every restart, and the ledger of the commits the broker
//! acknowledged: committed offsets must never move back from those.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// How often a member commits its positions.
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);

/// The group's commits. Thread-safe: the members write it, the run's main
/// thread reads it.
#[derive(Debug, Default)]
pub struct Commits {
    /// partition -> the highest offset whose commit was acknowledged.
    floor: Mutex<BTreeMap<i32, i64>>,
    acked: AtomicU64,
    consumed: AtomicU64,
    /// Commit errors by their text (the broker away, a rebalance).
    failed: Mutex<BTreeMap<String, u64>>,
}

impl Commits {
    pub fn floor(&self) -> BTreeMap<i32, i64> {
        self.floor.lock().map(|f| f.clone()).unwrap_or_default()
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    pub fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::SeqCst)
    }

    pub fn failed(&self) -> BTreeMap<String, u64> {
        self.failed.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub bootstrap: String,
    pub group: String,
    pub topic: String,
    pub partitions: i32,
    pub members: u32,
}

/// The running members. Not thread-safe: the run's main thread owns it.
pub struct Group {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<()>>>,
    pub commits: Arc<Commits>,
}

impl Group {
    pub fn start(settings: &GroupSettings) -> Result<Group> {
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(Commits::default());
        let mut threads = Vec::new();
        for member in 0..settings.members {
            let consumer: BaseConsumer = config(settings)
                .set("client.id", format!("rill-torture-member-{member}"))
                .create()
                .context("creating a group member")?;
            consumer.subscribe(&[&settings.topic])?;
            let stop = Arc::clone(&stop);
            let commits = Arc::clone(&commits);
            threads.push(std::thread::spawn(move || {
                consume_until_stopped(&consumer, &commits, &stop)
            }));
        }
        Ok(Group {
            stop,
            threads,
            commits,
        })
    }

    pub fn stop(self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            thread
                .join()
                .map_err(|_| anyhow!("a group member's thread panicked"))??;
        }
        Ok(())
    }
}

fn config(settings: &GroupSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", &settings.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "500")
        .set("log_level", "2");
    config
}

fn consume_until_stopped(
    consumer: &BaseConsumer,
    commits: &Commits,
    stop: &AtomicBool,
) -> Result<()> {
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        // An error is the broker away or the group rebalancing: carry on.
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            commits.consumed.fetch_add(1, Ordering::SeqCst);
        }
        if last_commit.elapsed() >= COMMIT_INTERVAL {
            last_commit = Instant::now();
            commit_positions(consumer, commits);
        }
    }
    commit_positions(consumer, commits);
    Ok(())
}

/// Commits the member's positions; an acknowledged commit raises the floor.
fn commit_positions(consumer: &BaseConsumer, commits: &Commits) {
    let Ok(positions) = consumer.position() else {
        return;
    };
    let mut list = TopicPartitionList::new();
    let mut offsets = Vec::new();
    for element in positions.elements() {
        if let Offset::Offset(offset) = element.offset() {
            // Positions are valid offsets; adding them cannot fail.
            let _ = list.add_partition_offset(
                element.topic(),
                element.partition(),
                Offset::Offset(offset),
            );
            offsets.push((element.partition(), offset));
        }
    }
    if offsets.is_empty() {
        return;
    }
    match consumer.commit(&list, CommitMode::Sync) {
        Ok(()) => {
            if let Ok(mut floor) = commits.floor.lock() {
                for (partition, offset) in offsets {
                    let entry = floor.entry(partition).or_insert(offset);
                    *entry = (*entry).max(offset);
                }
            }
            commits.acked.fetch_add(1, Ordering::SeqCst);
        }
        Err(error) => {
            if let Ok(mut failed) = commits.failed.lock() {
                *failed.entry(error.to_string()).or_default() += 1;
            }
        }
    }
}

/// The group's committed offsets as the broker has them now (partitions
/// without a commit are left out), asked until `timeout` passes, as the
/// coordinator may still be loading after a restart.
pub fn committed_offsets(
    settings: &GroupSettings,
    timeout: Duration,
) -> Result<BTreeMap<i32, i64>> {
    let reader: BaseConsumer = config(settings)
        .set("client.id", "rill-torture-offset-reader")
        .create()?;
    let mut list = TopicPartitionList::new();
    for partition in 0..settings.partitions {
        list.add_partition(&settings.topic, partition);
    }
    let deadline = Instant::now() + timeout;
    loop {
        match reader.committed_offsets(list.clone(), Duration::from_secs(5)) {
            Ok(committed) => {
                let mut offsets = BTreeMap::new();
                for element in committed.elements() {
                    if element.error().is_err() {
                        continue;
                    }
                    if let Offset::Offset(offset) = element.offset() {
                        offsets.insert(element.partition(), offset);
                    }
                }
                return Ok(offsets);
            }
            Err(error) if Instant::now() < deadline => {
                let _ = error; // Retried until the deadline.
            }
            Err(error) => bail!("reading the group's committed offsets: {error}"),
        }
    }
}

/// Checks that no committed offset is below what an acknowledged commit
/// set before: one problem per partition that moved back.
pub fn moved_back(floor: &BTreeMap<i32, i64>, committed: &BTreeMap<i32, i64>) -> Vec<String> {
    floor
        .iter()
        .filter_map(|(partition, &acked)| {
            let now = committed.get(partition).copied();
            match now {
                Some(now) if now >= acked => None,
                _ => Some(format!(
                    "partition {partition}: the committed offset moved back from {acked} (acknowledged) to {now:?}"
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::moved_back;
    use std::collections::BTreeMap;

    #[test]
    fn a_commit_below_an_acknowledged_one_is_a_problem() {
        let floor = BTreeMap::from([(0, 10), (1, 5)]);
        assert!(moved_back(&floor, &BTreeMap::from([(0, 10), (1, 7)])).is_empty());
        assert_eq!(
            moved_back(&floor, &BTreeMap::from([(0, 9), (1, 7)])).len(),
            1
        );
        assert_eq!(moved_back(&floor, &BTreeMap::from([(0, 10)])).len(), 1);
    }
}
