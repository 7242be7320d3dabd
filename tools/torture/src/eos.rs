//! The exactly-once mode: a consume-transform-produce processor
//! ([`crate::processor`], a child process) turns every record of an input
//! topic into one record of an output topic, committing its results and
//! its consumer offsets in one transaction per batch, while the broker is
//! SIGKILLed and restarted and the processor itself is SIGKILLed and
//! restarted. Then the output, read with read_committed, must hold each
//! input record's result exactly once, and the group's committed offsets
//! must be the input's ends.
//!
//! Two more ways a processor goes wrong: a zombie (a life paused while a
//! new one starts, then resumed: it must find itself fenced and exit, its
//! late writes never committed) and a stall (a life paused past its
//! transaction timeout, so the coordinator aborts its transaction). The
//! driver notes every event (kills, starts, pauses, exits) in the
//! processors' log, `processor.log`, beside their own lines.
//!
//! The input is fed while the kills go on (idempotent, acks=all, at a
//! steady rate), so the processor has work at every kill. Each result's key
//! names its input record (`partition@offset`), so the check is per input
//! record: every record in the input log has exactly one committed result,
//! whose value is the transform of the input's value.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

use crate::broker::Broker;
use crate::group::{self, GroupSettings};
use crate::processor::{EXIT_FATAL, PROCESSOR_ENV, ProcessorSettings, transform};
use crate::rng::Rng;

const INPUT: &str = "eos-input";
const OUTPUT: &str = "eos-output";
const GROUP: &str = "rill-torture-eos";
const TRANSACTIONAL_ID: &str = "rill-torture-eos-processor";

/// How many problems a report lists; the count says the rest.
const PROBLEMS_LISTED_MAX: usize = 20;

/// How the driver starts a processor life: this program with these
/// arguments, `RILL_TORTURE_EOS_PROCESSOR` set. The program must call
/// [`crate::run_processor_if_asked`] first thing.
#[derive(Debug, Clone)]
pub struct ProcessorCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// What an EOS run does. Build with [`EosConfig::new`] and change fields.
#[derive(Debug, Clone)]
pub struct EosConfig {
    /// The `rill` binary.
    pub rill: PathBuf,
    pub processor: ProcessorCommand,
    pub seed: u64,
    /// Of the input and of the output topic.
    pub partitions: i32,
    /// Input records, numbered from 0.
    pub records: u64,
    /// Input records fed per second: about `records` over the time the
    /// kills take keeps the processor busy at every kill.
    pub feed_per_sec: u64,
    /// Input records per transaction, at most.
    pub batch_records_max: usize,
    /// SIGKILLs of the broker (each followed by a restart).
    pub broker_kills: u32,
    /// SIGKILLs of the processor (each followed by a new life).
    pub processor_kills: u32,
    /// Zombies: the processor paused (SIGSTOP), a new life started, and
    /// the paused one resumed after a while; it must be fenced.
    pub zombies: u32,
    /// Stalls: the processor paused for `stall_ms`, longer than its
    /// transaction timeout, so the coordinator aborts its open
    /// transaction; then resumed (it aborts and rewinds, or exits fenced).
    pub stalls: u32,
    pub stall_ms: u64,
    /// The processor's transaction.timeout.ms.
    pub transaction_timeout_ms: u64,
    /// Each kill comes this long after the one before, drawn uniformly
    /// from the range.
    pub kill_after_ms: (u64, u64),
    /// The chance that a broker restart is itself killed before it
    /// listens.
    pub kill_while_starting: f64,
    /// How long a restart may take before the run fails.
    pub start_timeout: Duration,
    /// How long the processor may take, after the last kill, to process
    /// every input record.
    pub finish_timeout: Duration,
    /// Processor lives that end on their own (fenced, gave up) before the
    /// run fails.
    pub processor_exits_max: u32,
    /// More arguments for `rill broker`.
    pub broker_args: Vec<String>,
    pub segment_bytes: u64,
    /// Where the broker keeps its data; a temporary directory, removed
    /// after a run without problems, if None.
    pub data: Option<PathBuf>,
}

impl EosConfig {
    pub fn new(rill: PathBuf, processor: ProcessorCommand, seed: u64) -> EosConfig {
        EosConfig {
            rill,
            processor,
            seed,
            partitions: 4,
            records: 20_000,
            feed_per_sec: 1_000,
            batch_records_max: 100,
            broker_kills: 5,
            processor_kills: 5,
            zombies: 2,
            stalls: 1,
            stall_ms: 12_000,
            transaction_timeout_ms: 10_000,
            kill_after_ms: (300, 1_500),
            kill_while_starting: 0.15,
            start_timeout: Duration::from_secs(60),
            finish_timeout: Duration::from_secs(180),
            processor_exits_max: 20,
            broker_args: vec![
                "--set".into(),
                "group.initial.rebalance.delay.ms=0".into(),
                // Stalled transactions are aborted soon after they time
                // out, rather than up to 10 s later.
                "--set".into(),
                "transaction.abort.timed.out.transaction.cleanup.interval.ms=500".into(),
            ],
            segment_bytes: 1024 * 1024,
            data: None,
        }
    }
}

/// What an EOS run saw. `problems` empty is a pass.
#[derive(Debug, Default, Serialize)]
pub struct EosReport {
    pub seed: u64,
    pub partitions: i32,
    pub records: u64,
    pub broker_kills: u32,
    /// Broker restarts killed again before they listened.
    pub killed_while_starting: u32,
    pub processor_kills: u32,
    /// Processor lives that ended on their own, by exit status.
    pub processor_exits: BTreeMap<String, u64>,
    /// Processor lives paused while a new one started, then resumed.
    pub zombies: u32,
    /// How each zombie ended, by exit status ("still running" when it
    /// had to be killed, 20 s after it resumed).
    pub zombie_exits: BTreeMap<String, u64>,
    /// Zombies that found themselves fenced and exited so.
    pub zombies_fenced: u32,
    pub stalls: u32,
    pub processor_lives: u32,
    /// As the processors logged them (a killed life's last commit may be
    /// missing from the count).
    pub transactions_committed: u64,
    pub transactions_aborted: u64,
    /// Input records the broker acknowledged.
    pub input_acked: u64,
    /// Input records whose delivery failed, by error.
    pub input_failed: BTreeMap<String, u64>,
    /// Input records in the input log at the end.
    pub input_in_log: u64,
    /// Output records read with read_committed.
    pub output_committed: u64,
    /// Output records read with read_uncommitted: aborted ones included.
    pub output_all: u64,
    /// Input records with no result in the committed output.
    pub missing: u64,
    /// Results beyond the first of an input record, in the committed
    /// output.
    pub duplicated: u64,
    /// Committed output records that are no input record's result (no
    /// such input, another partition, a value that is not its transform).
    pub foreign: u64,
    /// Acknowledged input records not in the input log.
    pub input_lost: u64,
    /// Partitions whose committed offset is not the input's end.
    pub offsets_wrong: u64,
    /// From spawn to listening, for every broker restart, in ms.
    pub recovery_ms: Vec<u64>,
    /// From the last kill to every input processed, in ms.
    pub finish_ms: u64,
    pub problem_count: usize,
    pub problems: Vec<String>,
    /// Where the data and the logs were kept (after problems).
    pub kept: Option<PathBuf>,
}

impl EosReport {
    fn problem(&mut self, text: String) {
        self.problem_count += 1;
        if self.problems.len() < PROBLEMS_LISTED_MAX {
            self.problems.push(text);
        }
    }
}

/// Runs the EOS torture described by `config`. An `Err` is a run that
/// could not go on; a broken promise found by the checks is in
/// [`EosReport::problems`].
pub fn run_eos(config: &EosConfig) -> Result<EosReport> {
    if config.partitions <= 0 || config.batch_records_max == 0 || config.feed_per_sec == 0 {
        bail!(
            "an EOS run needs partitions, batches and a feed: {} partitions, {} records per batch, {} fed per second",
            config.partitions,
            config.batch_records_max,
            config.feed_per_sec
        );
    }
    if config.stalls > 0 && config.stall_ms <= config.transaction_timeout_ms {
        bail!(
            "a stall of {} ms does not outlast the transaction timeout of {} ms",
            config.stall_ms,
            config.transaction_timeout_ms
        );
    }
    let temp = tempfile::Builder::new()
        .prefix("rill-torture-eos-")
        .tempdir()?;
    let root = config
        .data
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&root)?;
    let mut broker = Broker::new(
        &config.rill,
        &root.join("data"),
        config.broker_args.clone(),
        &root.join("broker.log"),
    )?;
    let processor_log = root.join("processor.log");
    let mut report = EosReport {
        seed: config.seed,
        partitions: config.partitions,
        records: config.records,
        ..EosReport::default()
    };
    let result = torture(config, &mut broker, &processor_log, &mut report);
    drop(broker);
    let (committed, aborted) = count_transactions(&processor_log);
    report.transactions_committed = committed;
    report.transactions_aborted = aborted;
    if result.is_err() || report.problem_count > 0 {
        report.kept = Some(root.clone());
        // Keep the temporary directory for reading.
        let _ = temp.keep();
    }
    result.with_context(|| {
        format!(
            "seed {}; data, broker and processor logs in {}",
            config.seed,
            root.display()
        )
    })?;
    Ok(report)
}

#[derive(Debug, Clone, Copy)]
enum Kill {
    Broker,
    Processor,
    Zombie,
    Stall,
}

/// How long a resumed zombie may take to find itself fenced and exit
/// before it is killed.
const ZOMBIE_EXIT_TIMEOUT: Duration = Duration::from_secs(20);

fn torture(
    config: &EosConfig,
    broker: &mut Broker,
    processor_log: &std::path::Path,
    report: &mut EosReport,
) -> Result<()> {
    let mut rng = Rng::new(config.seed);
    let mut recovery = broker.start(config.start_timeout)?.recovery;
    for topic in [INPUT, OUTPUT] {
        crate::create_topic(
            &config.rill,
            &broker.bootstrap,
            topic,
            config.partitions,
            config.segment_bytes,
        )?;
    }
    let mut kills = vec![Kill::Broker; config.broker_kills as usize];
    kills.extend(vec![Kill::Processor; config.processor_kills as usize]);
    kills.extend(vec![Kill::Zombie; config.zombies as usize]);
    kills.extend(vec![Kill::Stall; config.stalls as usize]);
    shuffle(&mut kills, &mut rng);

    let settings = ProcessorSettings {
        bootstrap: broker.bootstrap.clone(),
        input: INPUT.into(),
        output: OUTPUT.into(),
        group: GROUP.into(),
        transactional_id: TRANSACTIONAL_ID.into(),
        batch_records_max: config.batch_records_max,
        transaction_timeout_ms: config.transaction_timeout_ms,
    };
    let mut processor = ProcessorChild::new(&config.processor, &settings, processor_log)?;
    processor.spawn()?;
    report.processor_lives += 1;
    let feeder = Feeder::start(
        &broker.bootstrap,
        config.partitions,
        config.records,
        config.feed_per_sec,
    )?;

    let group_settings = GroupSettings {
        bootstrap: broker.bootstrap.clone(),
        group: GROUP.into(),
        topic: INPUT.into(),
        partitions: config.partitions,
        members: 1,
    };
    // The kills start once the processor is under way: it has joined the
    // group and committed a transaction.
    wait_for_first_commit(config, &group_settings, &mut processor, report)?;

    for kill in &kills {
        let run_for =
            Duration::from_millis(rng.between(config.kill_after_ms.0, config.kill_after_ms.1));
        let started = Instant::now();
        while started.elapsed() < run_for {
            keep_alive(&mut processor, config, report)?;
            // Watching the processor for a life that ended on its own.
            std::thread::sleep(Duration::from_millis(20));
        }
        match kill {
            Kill::Broker => {
                processor.note("SIGKILL to the broker");
                recovery = kill_broker(broker, recovery, &mut rng, config, report)?;
                processor.note("the broker listens again");
            }
            Kill::Processor => {
                processor.kill()?;
                report.processor_kills += 1;
                processor.spawn()?;
                report.processor_lives += 1;
            }
            Kill::Zombie => {
                let paused_for = Duration::from_millis(
                    rng.between(config.kill_after_ms.0, config.kill_after_ms.1),
                );
                zombie(&mut processor, paused_for, config, report)?;
            }
            Kill::Stall => {
                if let Some(child) = &processor.child {
                    processor.note(format_args!("stalling pid {}", child.id()));
                    signal(child, "STOP")?;
                    // Paused on purpose, past the transaction timeout.
                    std::thread::sleep(Duration::from_millis(config.stall_ms));
                    signal(child, "CONT")?;
                    processor.note(format_args!("resumed pid {}", child.id()));
                    report.stalls += 1;
                }
            }
        }
    }
    let last_kill = Instant::now();
    let fed = feeder.join()?;
    report.input_acked = fed.acked.len() as u64;
    report.input_failed = fed.failed;
    finish(config, broker, &group_settings, &mut processor, report)?;
    report.finish_ms = last_kill.elapsed().as_millis() as u64;
    check(config, &broker.bootstrap, &fed.acked, report)?;
    broker.stop()
}

/// SIGKILLs the broker and starts it again (by chance killing the restart
/// once more while it recovers); returns the recovery time.
fn kill_broker(
    broker: &mut Broker,
    recovery: Duration,
    rng: &mut Rng,
    config: &EosConfig,
    report: &mut EosReport,
) -> Result<Duration> {
    broker.kill()?;
    report.broker_kills += 1;
    if rng.chance(config.kill_while_starting) {
        let after = Duration::from_micros(rng.between(0, recovery.as_micros() as u64));
        broker.start_and_kill(after)?;
        report.killed_while_starting += 1;
    }
    let recovery = broker.start(config.start_timeout)?.recovery;
    report.recovery_ms.push(recovery.as_millis() as u64);
    Ok(recovery)
}

/// Waits for the processor to commit up to the input's ends, stops it,
/// and checks the group's committed offsets are those ends.
fn finish(
    config: &EosConfig,
    broker: &Broker,
    group_settings: &GroupSettings,
    processor: &mut ProcessorChild,
    report: &mut EosReport,
) -> Result<()> {
    let mut ends = BTreeMap::new();
    for partition in 0..config.partitions {
        let end = crate::verify::high_watermark(
            &broker.bootstrap,
            INPUT,
            partition,
            config.start_timeout,
        )?;
        ends.insert(partition, end);
    }
    let committed = wait_for_processing(config, group_settings, &ends, processor, report)?;
    processor.kill()?;
    for (partition, end) in &ends {
        let at = committed.get(partition).copied();
        if at != Some(*end) {
            report.offsets_wrong += 1;
            report.problem(format!(
                "input partition {partition}: the group's committed offset is {at:?}, not the end {end}"
            ));
        }
    }
    Ok(())
}

/// Fisher-Yates, with the run's seeded generator.
fn shuffle<T>(items: &mut [T], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.between(0, i as u64) as usize;
        items.swap(i, j);
    }
}

/// Pauses the processor, starts a new life, resumes the paused one after
/// `paused_for` and waits for it to find itself fenced and exit.
fn zombie(
    processor: &mut ProcessorChild,
    paused_for: Duration,
    config: &EosConfig,
    report: &mut EosReport,
) -> Result<()> {
    let Some(mut zombie) = processor.child.take() else {
        // The life ended on its own just now; the next check starts one.
        return Ok(());
    };
    processor.note(format_args!("pausing pid {}, to be a zombie", zombie.id()));
    signal(&zombie, "STOP")?;
    report.zombies += 1;
    processor.spawn()?;
    report.processor_lives += 1;
    let paused = Instant::now();
    while paused.elapsed() < paused_for {
        keep_alive(processor, config, report)?;
        // Watching the new life while the old one stays paused.
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&zombie, "CONT")?;
    processor.note(format_args!("resumed zombie pid {}", zombie.id()));
    let resumed = Instant::now();
    let ended = loop {
        if let Some(status) = zombie.try_wait()? {
            if status.code() == Some(i32::from(EXIT_FATAL)) {
                report.zombies_fenced += 1;
            }
            break status.to_string();
        }
        if resumed.elapsed() > ZOMBIE_EXIT_TIMEOUT {
            // An error here is a zombie that exited just now.
            let _ = zombie.kill();
            zombie.wait()?;
            break "still running".to_string();
        }
        keep_alive(processor, config, report)?;
        // Polling the zombie for its exit.
        std::thread::sleep(Duration::from_millis(20));
    };
    processor.note(format_args!("zombie pid {} ended: {ended}", zombie.id()));
    *report.zombie_exits.entry(ended).or_default() += 1;
    Ok(())
}

/// Sends `kill -SIGNAL` to `child`.
fn signal(child: &Child, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{signal} {} failed", child.id());
    }
    Ok(())
}

/// Starts a new processor life if the last one ended on its own.
fn keep_alive(
    processor: &mut ProcessorChild,
    config: &EosConfig,
    report: &mut EosReport,
) -> Result<()> {
    let Some(status) = processor.exited()? else {
        return Ok(());
    };
    *report
        .processor_exits
        .entry(status.to_string())
        .or_default() += 1;
    let exits: u64 = report.processor_exits.values().sum();
    if exits > u64::from(config.processor_exits_max) {
        bail!(
            "{exits} processor lives ended on their own: {:?}",
            report.processor_exits
        );
    }
    processor.spawn()?;
    report.processor_lives += 1;
    Ok(())
}

fn wait_for_first_commit(
    config: &EosConfig,
    settings: &GroupSettings,
    processor: &mut ProcessorChild,
    report: &mut EosReport,
) -> Result<()> {
    let deadline = Instant::now() + config.start_timeout;
    loop {
        keep_alive(processor, config, report)?;
        if !group::committed_offsets(settings, config.start_timeout)?.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the processor committed nothing in {:?}",
                config.start_timeout
            );
        }
        // Polling the committed offsets while the processor starts.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the group has committed every input partition's end,
/// keeping a processor alive; returns the committed offsets.
fn wait_for_processing(
    config: &EosConfig,
    settings: &GroupSettings,
    ends: &BTreeMap<i32, i64>,
    processor: &mut ProcessorChild,
    report: &mut EosReport,
) -> Result<BTreeMap<i32, i64>> {
    let deadline = Instant::now() + config.finish_timeout;
    loop {
        keep_alive(processor, config, report)?;
        let committed = group::committed_offsets(settings, config.start_timeout)?;
        let finished = ends
            .iter()
            .all(|(p, end)| committed.get(p).is_some_and(|at| at >= end));
        if finished {
            return Ok(committed);
        }
        if Instant::now() > deadline {
            bail!(
                "the processor did not commit up to the input's ends {ends:?} in {:?}: the group has {committed:?}",
                config.finish_timeout
            );
        }
        // Polling the committed offsets while the processor works.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads the input, and the output both ways, and checks the committed
/// output against the input: one result per input record.
fn check(
    config: &EosConfig,
    bootstrap: &str,
    acked: &BTreeSet<u64>,
    report: &mut EosReport,
) -> Result<()> {
    let timeout = config.start_timeout;
    let mut inputs: BTreeMap<(i32, i64), Vec<u8>> = BTreeMap::new();
    let mut numbers = BTreeSet::new();
    for partition in 0..config.partitions {
        for record in read_to_end(bootstrap, INPUT, partition, "read_uncommitted", timeout)? {
            if let Some(n) = std::str::from_utf8(&record.value)
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
            {
                numbers.insert(n);
            }
            inputs.insert((partition, record.offset), record.value);
        }
    }
    report.input_in_log = inputs.len() as u64;
    for n in acked.difference(&numbers) {
        report.input_lost += 1;
        report.problem(format!("acknowledged input {n} is not in the input log"));
    }
    let mut outputs = Vec::new();
    for partition in 0..config.partitions {
        let all = read_to_end(bootstrap, OUTPUT, partition, "read_uncommitted", timeout)?;
        report.output_all += all.len() as u64;
        let committed = read_to_end(bootstrap, OUTPUT, partition, "read_committed", timeout)?;
        report.output_committed += committed.len() as u64;
        outputs.extend(committed.into_iter().map(|record| (partition, record)));
    }
    judge(&inputs, &outputs, report);
    Ok(())
}

/// Checks the committed output against the input: each input record
/// ((partition, offset) -> value) has exactly one result, in its own
/// partition, whose value is the transform of the input's.
fn judge(inputs: &BTreeMap<(i32, i64), Vec<u8>>, outputs: &[(i32, Read)], report: &mut EosReport) {
    let mut results: BTreeMap<(i32, i64), u64> = BTreeMap::new();
    for (partition, record) in outputs {
        let input = input_of(&record.key).and_then(|at| Some((at, inputs.get(&at)?)));
        match input {
            Some((at, value)) if at.0 == *partition && transform(value) == record.value => {
                let seen = results.entry(at).or_default();
                *seen += 1;
                if *seen > 1 {
                    report.duplicated += 1;
                    report.problem(format!(
                        "output partition {partition}: the result of input {} again, at offset {} ({seen} so far)",
                        record.key, record.offset
                    ));
                }
            }
            _ => {
                report.foreign += 1;
                report.problem(format!(
                    "output partition {partition}: offset {} holds {:?} keyed {:?}, no result of an input record",
                    record.offset,
                    String::from_utf8_lossy(&record.value),
                    record.key
                ));
            }
        }
    }
    for ((partition, offset), value) in inputs {
        if !results.contains_key(&(*partition, *offset)) {
            report.missing += 1;
            report.problem(format!(
                "input {partition}@{offset} ({:?}) has no result in the committed output",
                String::from_utf8_lossy(value)
            ));
        }
    }
}

/// The input record (partition, offset) that a result's key names.
fn input_of(key: &str) -> Option<(i32, i64)> {
    let (partition, offset) = key.split_once('@')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

/// One record read back.
struct Read {
    offset: i64,
    key: String,
    value: Vec<u8>,
}

/// Reads `partition` of `topic` from its start until librdkafka says it
/// reached the end: the high watermark, or under read_committed the last
/// stable offset.
fn read_to_end(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    isolation: &str,
    timeout: Duration,
) -> Result<Vec<Read>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", "rill-torture-eos-verify")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .set("log_level", "2")
        .create()?;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Beginning)?;
    consumer.assign(&list)?;
    let mut records = Vec::new();
    let deadline = Instant::now() + timeout;
    loop {
        if Instant::now() > deadline {
            bail!(
                "{topic} partition {partition} ({isolation}): no end after {} records in {timeout:?}",
                records.len()
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => records.push(Read {
                offset: message.offset(),
                key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                value: message.payload().unwrap_or_default().to_vec(),
            }),
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(records),
            Some(Err(error)) => bail!("{topic} partition {partition} ({isolation}): {error}"),
            None => {}
        }
    }
}

/// What the feed's delivery callbacks learnt. Thread-safe: librdkafka's
/// callbacks write it, the run's main thread reads it at the end.
#[derive(Default)]
struct FeedAcks {
    inner: Mutex<Fed>,
}

/// What the feeder fed.
#[derive(Debug, Default)]
struct Fed {
    /// The numbers of the input records the broker acknowledged.
    acked: BTreeSet<u64>,
    /// Delivery errors by their text.
    failed: BTreeMap<String, u64>,
}

struct FeedContext(Arc<FeedAcks>);

impl ClientContext for FeedContext {}

impl ProducerContext for FeedContext {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, n: Box<u64>) {
        let Ok(mut fed) = self.0.inner.lock() else {
            return;
        };
        match result {
            Ok(_) => {
                fed.acked.insert(*n);
            }
            Err((error, _)) => *fed.failed.entry(error.to_string()).or_default() += 1,
        }
    }
}

/// How long the feed's last records may take to be acknowledged.
const FEED_FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// Writes the input on a thread of its own: record n has value n and goes
/// to partition n % partitions, idempotently with acks=all, `per_sec` a
/// second. Not thread-safe: the run's main thread owns it.
struct Feeder {
    thread: JoinHandle<Result<()>>,
    acks: Arc<FeedAcks>,
}

impl Feeder {
    fn start(bootstrap: &str, partitions: i32, records: u64, per_sec: u64) -> Result<Feeder> {
        assert!(per_sec > 0, "a feed that never ends");
        let acks = Arc::new(FeedAcks::default());
        let producer: ThreadedProducer<FeedContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("broker.address.family", "v4")
            .set("client.id", "rill-torture-eos-feed")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            // Far longer than a restart: a record fails only if the broker
            // stays away.
            .set("message.timeout.ms", "120000")
            .set("reconnect.backoff.ms", "20")
            .set("reconnect.backoff.max.ms", "500")
            .set("log_level", "2")
            .create_with_context(FeedContext(Arc::clone(&acks)))
            .context("creating the input's producer")?;
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            for n in 0..records {
                // Open-loop pacing: record n is due at n / per_sec seconds.
                let due = started + Duration::from_secs_f64(n as f64 / per_sec as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let value = n.to_string();
                let mut record = BaseRecord::with_opaque_to(INPUT, Box::new(n))
                    .partition((n % partitions as u64) as i32)
                    .payload(&value);
                loop {
                    match producer.send::<(), String>(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            // The broker is away and the queue is full:
                            // wait for room.
                            record = back;
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err((error, _)) => bail!("feeding input {n}: {error}"),
                    }
                }
            }
            producer
                .flush(FEED_FLUSH_TIMEOUT)
                .context("flushing the input")?;
            if let Some((code, reason)) = producer.client().fatal_error() {
                bail!("the input's producer hit a fatal error: {code:?}: {reason}");
            }
            Ok(())
        });
        Ok(Feeder { thread, acks })
    }

    /// Waits for every record to be sent and acknowledged (or failed).
    fn join(self) -> Result<Fed> {
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the feeder's thread panicked"))??;
        let mut fed = self
            .acks
            .inner
            .lock()
            .map_err(|_| anyhow::anyhow!("the feed's acknowledgements were poisoned"))?;
        Ok(std::mem::take(&mut *fed))
    }
}

/// The processor's lives, one at a time. Not thread-safe: the run's main
/// thread owns it.
struct ProcessorChild {
    command: ProcessorCommand,
    settings_json: String,
    log: File,
    child: Option<Child>,
}

impl ProcessorChild {
    fn new(
        command: &ProcessorCommand,
        settings: &ProcessorSettings,
        log_path: &std::path::Path,
    ) -> Result<ProcessorChild> {
        Ok(ProcessorChild {
            command: command.clone(),
            settings_json: serde_json::to_string(settings)?,
            log: File::create(log_path)
                .with_context(|| format!("creating {}", log_path.display()))?,
            child: None,
        })
    }

    fn spawn(&mut self) -> Result<()> {
        assert!(self.child.is_none(), "a processor is running already");
        let child = Command::new(&self.command.program)
            .args(&self.command.args)
            .env(PROCESSOR_ENV, &self.settings_json)
            // Held open: the processor exits when it closes.
            .stdin(Stdio::piped())
            .stdout(self.log.try_clone()?)
            .stderr(self.log.try_clone()?)
            .spawn()
            .with_context(|| format!("starting the processor {:?}", self.command))?;
        self.note(format_args!("started pid {}", child.id()));
        self.child = Some(child);
        Ok(())
    }

    /// Notes a driver's event in the processors' log, with the wall clock
    /// in ms, as the processors' lines have it.
    fn note(&self, event: impl std::fmt::Display) {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        // The log is for reading after a failure; a write error there
        // must not stop the run.
        let _ = writeln!(&self.log, "driver {ms}: {event}");
    }

    /// The exit status of a life that ended on its own, which is then no
    /// longer running.
    fn exited(&mut self) -> Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let pid = child.id();
        let status = child.try_wait()?;
        if let Some(status) = status {
            self.note(format_args!("pid {pid} ended on its own: {status}"));
            self.child = None;
        }
        Ok(status)
    }

    /// SIGKILL, and waits for the process to be gone (it may have ended
    /// on its own just before: the kill is then of nothing).
    fn kill(&mut self) -> Result<()> {
        let mut child = self.child.take().context("no processor to kill")?;
        self.note(format_args!("SIGKILL to pid {}", child.id()));
        // An error here is a process that had exited already.
        let _ = child.kill();
        child.wait()?;
        Ok(())
    }
}

impl Drop for ProcessorChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // It may have exited already.
            let _ = child.wait();
        }
    }
}

/// (committed, aborted) transactions, as the processor lives logged them.
fn count_transactions(log: &std::path::Path) -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string(log) else {
        return (0, 0);
    };
    let committed = text
        .lines()
        .filter(|l| l.starts_with("eos-processor ") && l.contains(": committed "))
        .count();
    let aborted = text
        .lines()
        .filter(|l| l.starts_with("eos-processor ") && l.contains(": aborted a transaction"))
        .count();
    (committed as u64, aborted as u64)
}

#[cfg(test)]
mod tests {
    use super::{EosReport, Read, input_of, judge, shuffle};
    use crate::rng::Rng;
    use std::collections::BTreeMap;

    fn result(partition: i32, at: (i32, i64), value: &str) -> (i32, Read) {
        let record = Read {
            offset: 0,
            key: format!("{}@{}", at.0, at.1),
            value: value.as_bytes().to_vec(),
        };
        (partition, record)
    }

    #[test]
    fn loss_duplicates_and_strangers_are_each_found() {
        let inputs = BTreeMap::from([((0, 0), b"0".to_vec()), ((1, 0), b"1".to_vec())]);
        let judged = |outputs: &[(i32, Read)]| {
            let mut report = EosReport::default();
            judge(&inputs, outputs, &mut report);
            (report.missing, report.duplicated, report.foreign)
        };
        let once = [result(0, (0, 0), "out-0"), result(1, (1, 0), "out-1")];
        assert_eq!(judged(&once), (0, 0, 0));
        assert_eq!(judged(&once[..1]), (1, 0, 0));
        let twice = [
            result(0, (0, 0), "out-0"),
            result(1, (1, 0), "out-1"),
            result(0, (0, 0), "out-0"),
        ];
        assert_eq!(judged(&twice), (0, 1, 0));
        // A wrong value, the wrong partition, no such input: none counts.
        let strangers = [
            result(0, (0, 0), "out-7"),
            result(0, (1, 0), "out-1"),
            result(1, (1, 5), "out-1"),
        ];
        assert_eq!(judged(&strangers), (2, 0, 3));
    }

    #[test]
    fn a_key_names_an_input_record() {
        assert_eq!(input_of("3@17"), Some((3, 17)));
        assert_eq!(input_of("3:17"), None);
        assert_eq!(input_of("x@17"), None);
    }

    #[test]
    fn a_shuffle_keeps_every_item() {
        let mut items: Vec<u32> = (0..10).collect();
        shuffle(&mut items, &mut Rng::new(3));
        let mut sorted = items.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }
}
