//! Kill -9 torture of a Rill broker.
//!
//! [`run`] starts a `rill broker` child process, runs idempotent
//! acks=all producers and a consumer group (librdkafka) on several
//! partitions, SIGKILLs the broker at seeded random points — some of them
//! while it is still recovering — and starts it again, cycle after cycle.
//! After every restart the group's committed offsets must not have moved
//! back from any acknowledged commit; at the end every partition is read
//! from its start, and every acknowledged record must be there exactly
//! once, at its acknowledged offset, in the order its producer sent it.
//!
//! With [`Config::power_cut`] the broker's data directory is on the
//! power-cut file system (tools/powercut-fs), and every SIGKILL is followed
//! by a power cut: whatever no fsync made durable is dropped, sometimes
//! with one file's pending pages torn; some cuts come while the load is
//! stopped and everything sent was acknowledged (idle), some while a
//! restart recovers. After each cut the topic must still exist.
//!
//! [`run_eos`] is the exactly-once mode: a consume-transform-produce
//! processor (read_committed consumer, transactional producer, offsets sent
//! to the transaction) runs as a child process while the broker and the
//! processor are each SIGKILLed and restarted; then the output, read with
//! read_committed, must hold each input record's result exactly once, and
//! the group's committed offsets must be the input's ends. The processor is
//! the calling binary started again: it must call
//! [`run_processor_if_asked`] first thing in `main`.
//!
//! ```no_run
//! let config = rill_torture::Config::new("target/release/rill".into(), 5, 42);
//! let report = rill_torture::run(&config)?;
//! assert!(report.problems.is_empty());
//! # anyhow::Ok(())
//! ```

mod broker;
mod eos;
mod group;
mod processor;
mod producers;
mod rng;
mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rill_powercut_fs::{PowerCutFs, Tear};
use serde::Serialize;

use broker::Broker;
pub use eos::{EosConfig, EosReport, ProcessorCommand, run_eos};
use group::{Group, GroupSettings};
pub use processor::run_if_asked as run_processor_if_asked;
use producers::{ProducerSettings, Producers};
pub use rill_powercut_fs::FUSE_DEVICE;
pub use rng::Rng;

const TOPIC: &str = "torture";
const GROUP: &str = "rill-torture";

/// What a run does. Build with [`Config::new`] and change fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `rill` binary.
    pub rill: PathBuf,
    /// Kill -9 and restart this many times.
    pub cycles: u32,
    pub seed: u64,
    pub partitions: i32,
    pub producers: u32,
    /// Records per second of each producer.
    pub rate_per_producer: u64,
    pub value_bytes: usize,
    pub members: u32,
    /// A running broker is killed this long after it listens, drawn
    /// uniformly from the range.
    pub kill_after_ms: (u64, u64),
    /// The chance that a restart is itself killed before it listens,
    /// during recovery.
    pub kill_while_starting: f64,
    /// How long a restart may take before the run fails.
    pub start_timeout: Duration,
    /// More arguments for `rill broker`.
    pub broker_args: Vec<String>,
    /// The topic's segment.bytes: small, so segments roll under the kills,
    /// and above librdkafka's batch.size (1,000,000), as a batch larger
    /// than a segment is refused (RECORD_LIST_TOO_LARGE), as in Kafka.
    pub segment_bytes: u64,
    /// Where the broker keeps its data; a temporary directory, removed
    /// after a run without problems, if None.
    pub data: Option<PathBuf>,
    /// Power cuts after the kills, if Some: the data directory is then a
    /// power-cut file system mounted over `DATA/backing` at `DATA/data`.
    pub power_cut: Option<PowerCut>,
}

/// The power cuts of a run (root and /dev/fuse needed).
#[derive(Debug, Clone)]
pub struct PowerCut {
    /// The chance that a cycle stops the load, waits until every record
    /// sent is acknowledged (or failed), and cuts the power while idle.
    pub idle_chance: f64,
    /// How long an idle cycle stays idle before the cut, drawn uniformly.
    pub idle_ms: (u64, u64),
    /// The chance that a cut tears one file's pending pages (keeps a part
    /// of them) rather than dropping them all.
    pub tear_chance: f64,
}

impl Default for PowerCut {
    fn default() -> PowerCut {
        PowerCut {
            idle_chance: 0.2,
            idle_ms: (50, 500),
            tear_chance: 0.3,
        }
    }
}

impl Config {
    pub fn new(rill: PathBuf, cycles: u32, seed: u64) -> Config {
        Config {
            rill,
            cycles,
            seed,
            partitions: 4,
            producers: 2,
            rate_per_producer: 2_000,
            value_bytes: 100,
            members: 2,
            kill_after_ms: (200, 1_500),
            kill_while_starting: 0.15,
            start_timeout: Duration::from_secs(60),
            broker_args: vec![
                // A group forms at once after each restart, rather than
                // after Kafka's default delay of 3 s.
                "--set".into(),
                "group.initial.rebalance.delay.ms=0".into(),
            ],
            segment_bytes: 1024 * 1024,
            data: None,
            power_cut: None,
        }
    }
}

/// What a run saw. `problems` empty is a pass.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub seed: u64,
    pub cycles: u32,
    /// Restarts killed again before they listened.
    pub killed_while_starting: u32,
    pub partitions: i32,
    pub producers: u32,
    pub members: u32,
    pub records_sent: u64,
    pub records_acked: u64,
    /// Delivery errors by text: records never acknowledged.
    pub records_failed: BTreeMap<String, u64>,
    pub records_in_log: u64,
    /// Acknowledged records not in the log at their offsets.
    pub records_missing: u64,
    pub commits_acked: u64,
    pub commit_errors: BTreeMap<String, u64>,
    pub records_consumed_by_group: u64,
    /// Power cuts, each after a SIGKILL; with `--power-cut` only.
    pub power_cuts: u32,
    /// Of those, cuts while the load was stopped and all was acknowledged.
    pub power_cuts_idle: u32,
    /// Of those, cuts of a restart killed while it recovered.
    pub power_cuts_in_recovery: u32,
    /// Cuts that tore one file's pending pages.
    pub torn_files: u32,
    /// Files put back to their last fsync, over all cuts.
    pub cut_files_reverted: u64,
    /// Pages (4 KiB) whose unsynced content the cuts dropped.
    pub cut_pages_dropped: u64,
    /// Directory entry changes no directory fsync covered, undone.
    pub cut_dir_ops_dropped: u64,
    /// From spawn to listening, for every restart that got there, in ms.
    pub recovery_ms: Vec<u64>,
    /// From listening to the next acknowledgement, for every restart
    /// where one came before the next kill, in ms.
    pub first_ack_ms: Vec<u64>,
    /// Checks after a restart that found a committed offset moved back
    /// (one per partition).
    pub commits_moved_back: u64,
    /// Producers' fatal errors (each came back as a new client).
    pub producer_fatal_errors: u64,
    pub problem_count: usize,
    pub problems: Vec<String>,
    /// Where the data and the broker's log were kept (after problems).
    pub kept: Option<PathBuf>,
}

/// Runs the torture described by `config`. An `Err` is a run that could
/// not go on (the broker did not come back, a client failed); a broken
/// promise found by the checks is in [`Report::problems`].
pub fn run(config: &Config) -> Result<Report> {
    let temp = tempfile::Builder::new().prefix("rill-torture-").tempdir()?;
    let root = config
        .data
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&root)?;
    let data = root.join("data");
    // Declared before the broker, so it is unmounted after the broker is
    // gone.
    let mut fs = match &config.power_cut {
        None => None,
        Some(_) => {
            let backing = root.join("backing");
            std::fs::create_dir_all(&backing)?;
            std::fs::create_dir_all(&data)?;
            Some(
                PowerCutFs::mount(&backing, &data)
                    .context("mounting the power-cut file system for the broker's data")?,
            )
        }
    };
    let log_path = root.join("broker.log");
    let mut broker = Broker::new(&config.rill, &data, config.broker_args.clone(), &log_path)?;
    let mut report = Report {
        seed: config.seed,
        cycles: config.cycles,
        partitions: config.partitions,
        producers: config.producers,
        members: config.members,
        ..Report::default()
    };
    let result = torture(config, &mut broker, fs.as_mut(), &mut report);
    drop(broker);
    let unmounted = fs.map_or(Ok(()), |fs| {
        fs.unmount().context("unmounting the power-cut file system")
    });
    let result = result.and(unmounted);
    let failed = result.is_err() || report.problem_count > 0;
    if failed {
        report.kept = Some(root.clone());
        // Keep the temporary directory for reading.
        let _ = temp.keep();
    }
    result.with_context(|| {
        format!(
            "seed {}; data and broker log in {}",
            config.seed,
            root.display()
        )
    })?;
    Ok(report)
}

/// A power cut after a kill: drops what no fsync made durable, tearing
/// one file's pending pages by chance.
fn cut(fs: &mut PowerCutFs, settings: &PowerCut, rng: &mut Rng, report: &mut Report) -> Result<()> {
    let tear = if rng.chance(settings.tear_chance) {
        Tear::RandomFile {
            seed: rng.next_u64(),
        }
    } else {
        Tear::None
    };
    let cut = fs.power_cut(&tear).context("cutting the power")?;
    report.power_cuts += 1;
    report.torn_files += u32::from(cut.torn.is_some());
    report.cut_files_reverted += cut.files_reverted;
    report.cut_pages_dropped += cut.pages_dropped;
    report.cut_dir_ops_dropped += cut.dir_ops_dropped;
    Ok(())
}

fn problem(report: &mut Report, text: String) {
    report.problem_count += 1;
    report.problems.push(text);
}

fn torture(
    config: &Config,
    broker: &mut Broker,
    mut fs: Option<&mut PowerCutFs>,
    report: &mut Report,
) -> Result<()> {
    let mut rng = Rng::new(config.seed);
    let mut recovery = broker.start(config.start_timeout)?.recovery;
    create_topic(
        &config.rill,
        &broker.bootstrap,
        TOPIC,
        config.partitions,
        config.segment_bytes,
    )?;
    let producer_settings = ProducerSettings {
        bootstrap: broker.bootstrap.clone(),
        topic: TOPIC.into(),
        partitions: config.partitions,
        producers: config.producers,
        rate_per_sec: config.rate_per_producer,
        value_bytes: config.value_bytes,
    };
    let group_settings = GroupSettings {
        bootstrap: broker.bootstrap.clone(),
        group: GROUP.into(),
        topic: TOPIC.into(),
        partitions: config.partitions,
        members: config.members,
    };
    let producers = Producers::start(&producer_settings)?;
    let group = Group::start(&group_settings)?;
    let acks = std::sync::Arc::clone(&producers.acks);
    let commits = std::sync::Arc::clone(&group.commits);

    for cycle in 0..config.cycles {
        let listening = Instant::now();
        let acks_before = acks.count();
        let run_for =
            Duration::from_millis(rng.between(config.kill_after_ms.0, config.kill_after_ms.1));
        let mut first_ack = None;
        while listening.elapsed() < run_for {
            if first_ack.is_none() && acks.count() > acks_before {
                first_ack = Some(listening.elapsed());
            }
            // Watching for the first acknowledgement, to a few ms.
            std::thread::sleep(Duration::from_millis(2));
        }
        report
            .first_ack_ms
            .extend(first_ack.map(|d| d.as_millis() as u64));
        // Only power-cut runs draw this, so kill -9 runs replay their seeds.
        let idle = match &config.power_cut {
            Some(settings) if rng.chance(settings.idle_chance) => Some(settings.idle_ms),
            _ => None,
        };
        if let Some((low, high)) = idle {
            producers.pause();
            producers.wait_for_answers(config.start_timeout)?;
            // Idle on purpose: the broker's background work (flushes,
            // checkpoints) runs with no load.
            std::thread::sleep(Duration::from_millis(rng.between(low, high)));
            report.power_cuts_idle += 1;
        }
        broker.kill()?;
        if let (Some(fs), Some(settings)) = (fs.as_deref_mut(), &config.power_cut) {
            cut(fs, settings, &mut rng, report)?;
        }
        if rng.chance(config.kill_while_starting) {
            let after = Duration::from_micros(rng.between(0, recovery.as_micros() as u64));
            broker.start_and_kill(after)?;
            report.killed_while_starting += 1;
            if let (Some(fs), Some(settings)) = (fs.as_deref_mut(), &config.power_cut) {
                cut(fs, settings, &mut rng, report)?;
                report.power_cuts_in_recovery += 1;
            }
        }
        let floor = commits.floor();
        recovery = broker.start(config.start_timeout)?.recovery;
        report.recovery_ms.push(recovery.as_millis() as u64);
        if idle.is_some() {
            producers.resume();
        }
        match verify::topic_partitions(&broker.bootstrap, TOPIC, config.start_timeout)? {
            Some(n) if n == config.partitions as usize => {}
            found => problem(
                report,
                format!(
                    "after restart {}: topic {TOPIC} has {found:?} partitions, not {}",
                    cycle + 1,
                    config.partitions
                ),
            ),
        }
        let committed = group::committed_offsets(&group_settings, config.start_timeout)?;
        for text in group::moved_back(&floor, &committed) {
            report.commits_moved_back += 1;
            problem(report, text);
        }
    }

    let stopped = producers.stop()?;
    report.records_sent = stopped.sent;
    for text in stopped.fatal {
        report.producer_fatal_errors += 1;
        problem(report, text);
    }
    for text in wait_for_group_to_finish(&group_settings, broker, config.start_timeout)? {
        problem(report, text);
    }
    report.commits_acked = commits.acked();
    report.records_consumed_by_group = commits.consumed();
    group.stop()?;
    report.commit_errors = commits.failed();
    report.records_failed = acks.failed();
    let acked = acks.acked();
    report.records_acked = acked.values().map(|a| a.len() as u64).sum();
    for partition in 0..config.partitions {
        let log =
            verify::read_partition(&broker.bootstrap, TOPIC, partition, config.start_timeout)?;
        let checked = verify::check_partition(partition, &log, &acked);
        report.records_in_log += checked.records as u64;
        report.records_missing += checked.missing as u64;
        report.problem_count += checked.problem_count;
        report.problems.extend(checked.problems);
    }
    broker.stop()
}

fn create_topic(
    rill: &std::path::Path,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    segment_bytes: u64,
) -> Result<()> {
    let output = Command::new(rill)
        .args(["topic", "create", topic, "--if-not-exists", "--partitions"])
        .arg(partitions.to_string())
        .arg("--config")
        .arg(format!("segment.bytes={segment_bytes}"))
        .arg("--bootstrap")
        .arg(bootstrap)
        .output()
        .context("running rill topic create")?;
    if !output.status.success() {
        bail!(
            "rill topic create {topic} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The group consumes and commits up to the end of every partition: it
/// carried on through the restarts. Returns a problem for each partition
/// whose committed offset is past the end of its log: the group read
/// records there that the log then lost (consumers read only up to the
/// high watermark, so nothing else puts it there), and no member will
/// move it back.
fn wait_for_group_to_finish(
    settings: &GroupSettings,
    broker: &Broker,
    timeout: Duration,
) -> Result<Vec<String>> {
    let deadline = Instant::now() + timeout;
    let mut ends = BTreeMap::new();
    for partition in 0..settings.partitions {
        let log = verify::high_watermark(&broker.bootstrap, &settings.topic, partition, timeout)?;
        ends.insert(partition, log);
    }
    loop {
        let committed = group::committed_offsets(settings, timeout)?;
        let past: Vec<String> = ends
            .iter()
            .filter_map(|(p, end)| {
                let at = committed.get(p).copied()?;
                (at > *end).then(|| {
                    format!("partition {p}: the group's committed offset {at} is past the end of the log, {end}")
                })
            })
            .collect();
        // An empty log (a power cut may take all of it) has nothing to
        // consume, and a group need not commit 0 for it.
        let finished = |(p, end): (&i32, &i64)| match committed.get(p) {
            Some(at) => at >= end,
            None => *end == 0,
        };
        if ends.iter().all(finished) {
            return Ok(past);
        }
        if Instant::now() > deadline {
            bail!(
                "the group did not commit up to the ends {ends:?} in {timeout:?}: it has {committed:?}"
            );
        }
        // Polling the committed offsets while the members work.
        std::thread::sleep(Duration::from_millis(100));
    }
}
