//! `rill bench produce`, and the librdkafka producers that `e2e` runs too:
//! one client per thread, each sending its share of the messages as fast
//! as librdkafka takes them or on an open-loop schedule (`--rate`), with
//! each message's acknowledgement latency measured from when it was due.
//! With `--transaction-size`, each producer is transactional and commits
//! every that many messages; the commits are timed too.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::latency::Latencies;
use super::native::{self, NativePlan};
use super::payload::{Keys, Payloads, SplitMix64, stamp};
use super::progress::{Counters, Progress};
use super::report::{Outcome, Phase, Report};
use super::{ClientKind, ProduceBenchArgs, ProducerOptions, RunOptions, broker_stats, setup};
use crate::client::{ClientArgs, report_error};
use crate::produce::Acks;

/// Messages a produce run sends when neither --messages nor --duration says.
const DEFAULT_MESSAGES: u64 = 1_000_000;

/// How long a producer waits when librdkafka's queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(1);

/// Messages sent between two readings of the clock when sending as fast
/// as possible: a clock read per message was a tenth of the sending
/// thread's time (perf), and 64 messages take microseconds to hand over,
/// so a message may count as sent up to that much early (its latency as
/// that much longer).
const CLOCK_READ_EVERY: u64 = 64;

/// How long after the delivery timeout a flush may still take.
const FLUSH_MARGIN: Duration = Duration::from_secs(5);

/// How often a transactional producer about to commit looks whether its
/// messages are all acknowledged (see [`Commits::commit`]).
const COMMIT_FLUSH_POLL: Duration = Duration::from_micros(100);

pub(crate) fn run(client: &ClientArgs, args: ProduceBenchArgs) -> anyhow::Result<()> {
    check(&args.producer)?;
    if args.client == ClientKind::Native {
        ensure!(
            args.producer.payload_file.is_none()
                && args.producer.keys == super::KeyDistribution::None
                && !args.producer.idempotence
                && args.producer.transaction_size.is_none()
                && args.producer.rate.is_none()
                && args.producer.compression.property() == "none",
            "--client native sends uncompressed, keyless, non-idempotent messages of --size as \
             fast as it can, outside transactions: drop --payload-file, --keys, --idempotence, \
             --transaction-size, --rate and --compression"
        );
        ensure!(args.inflight >= 1, "--inflight must be at least 1");
    }
    let duration = args.run.duration()?;
    let messages = messages(&args.run, duration);
    let partitions = setup::ensure_topic(client, &args.topic)?;
    let payloads = payloads(&args.producer)?;
    let keys = keys(&args.producer);
    let plan = ProducePlan::new(&args.topic.topic, &args.producer, &payloads, &keys)
        .sized(messages, duration);

    let counters = Arc::new(Counters::default());
    let before = args.run.broker_pid.map(broker_stats::sample).transpose()?;
    let progress = Progress::start(Arc::clone(&counters), messages, !args.run.no_progress);
    let outcome = match args.client {
        ClientKind::Rdkafka => {
            produce(client, &args.producer, &plan, &counters).context("the producers failed")?
        }
        ClientKind::Native => native::produce(
            &NativePlan {
                bootstrap: &client.bootstrap,
                topic: &args.topic.topic,
                partitions: &partitions,
                messages,
                duration,
                value: payloads.pick(&mut SplitMix64::new(0)),
                producers: args.producer.producers,
                acks: acks_number(args.producer.acks),
                batch_bytes: args.producer.batch_size,
                inflight: args.inflight,
                timeout: client.timeout(),
                security: crate::link::security_of(&client.key_values()?)?,
            },
            &counters,
        )?,
    };
    progress.finish();

    let broker = match (args.run.broker_pid, before) {
        (Some(pid), Some(before)) => Some(broker_stats::usage_since(pid, before, outcome.bytes)?),
        _ => None,
    };
    let mut settings = super::producer_settings(&args.producer, &args.run);
    if args.client == ClientKind::Native {
        settings.insert("inflight", args.inflight.to_string());
    }
    let report = Report {
        command: "produce",
        client: match args.client {
            ClientKind::Rdkafka => "rdkafka",
            ClientKind::Native => "native",
        },
        bootstrap: client.bootstrap.clone(),
        topic: args.topic.topic.clone(),
        partitions: partitions.len(),
        settings,
        produce: Some(Phase::from_outcome(&outcome)),
        consume: None,
        broker,
    };
    report.print(args.run.json)?;
    failures("produced", &outcome)
}

/// Fails the command when some messages failed, after the report is out.
pub(crate) fn failures(what: &str, outcome: &Outcome) -> anyhow::Result<()> {
    ensure!(
        outcome.errors == 0,
        "{} messages could not be {what}; the first error: {}",
        outcome.errors,
        outcome.first_error.as_deref().unwrap_or("?")
    );
    Ok(())
}

/// Checks producer options that clap cannot.
pub(crate) fn check(options: &ProducerOptions) -> anyhow::Result<()> {
    ensure!(options.producers >= 1, "--producers must be at least 1");
    ensure!(options.key_count >= 1, "--key-count must be at least 1");
    if let Some(rate) = options.rate {
        ensure!(
            rate.is_finite() && rate > 0.0,
            "--rate must be a positive number of messages per second"
        );
    }
    ensure!(
        options.zipf_exponent.is_finite() && options.zipf_exponent > 0.0,
        "--zipf-exponent must be positive"
    );
    Ok(())
}

/// The message count of a run: --messages, or the default unless it runs
/// for a --duration.
pub(crate) fn messages(run: &RunOptions, duration: Option<Duration>) -> Option<u64> {
    match (run.messages, duration) {
        (Some(messages), _) => Some(messages),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_MESSAGES),
    }
}

pub(crate) fn payloads(options: &ProducerOptions) -> anyhow::Result<Payloads> {
    match &options.payload_file {
        Some(path) => Payloads::from_file(path, delimiter(&options.payload_delimiter)?),
        None => Ok(Payloads::random(options.size, options.seed)),
    }
}

pub(crate) fn keys(options: &ProducerOptions) -> Keys {
    Keys::new(options.keys, options.key_count, options.zipf_exponent)
}

/// The byte of --payload-delimiter: one character, or `\n`, `\t`, `\0`.
fn delimiter(text: &str) -> anyhow::Result<u8> {
    match text {
        "\\n" => Ok(b'\n'),
        "\\t" => Ok(b'\t'),
        "\\0" => Ok(0),
        _ if text.len() == 1 => Ok(text.as_bytes()[0]),
        _ => bail!("--payload-delimiter {text:?}: expected one byte, \\n, \\t or \\0"),
    }
}

fn acks_number(acks: Acks) -> i16 {
    match acks {
        Acks::None => 0,
        Acks::Leader => 1,
        Acks::All => -1,
    }
}

/// What the producers of a run send.
pub(crate) struct ProducePlan<'a> {
    pub(crate) topic: &'a str,
    /// Messages in all, split over the producers; or
    pub(crate) messages: Option<u64>,
    /// sending stops once this much time has passed.
    pub(crate) duration: Option<Duration>,
    /// Messages per second in all; `None` sends as fast as possible.
    pub(crate) rate: Option<f64>,
    pub(crate) producers: usize,
    pub(crate) payloads: &'a Payloads,
    pub(crate) keys: &'a Keys,
    /// Whether each payload starts with its due time (for `e2e`).
    pub(crate) stamped: bool,
    pub(crate) seed: u64,
}

impl<'a> ProducePlan<'a> {
    /// The plan of `options`; unstamped, a message count still to set.
    pub(crate) fn new(
        topic: &'a str,
        options: &ProducerOptions,
        payloads: &'a Payloads,
        keys: &'a Keys,
    ) -> ProducePlan<'a> {
        ProducePlan {
            topic,
            messages: None,
            duration: None,
            rate: options.rate,
            producers: options.producers,
            payloads,
            keys,
            stamped: false,
            seed: options.seed,
        }
    }

    /// Sends `messages` in all, or for `duration`.
    pub(crate) fn sized(mut self, messages: Option<u64>, duration: Option<Duration>) -> Self {
        self.messages = messages;
        self.duration = duration;
        self
    }
}

/// Runs the plan's producers, each on a thread with a librdkafka client
/// of its own, and waits for every acknowledgement.
pub(crate) fn produce(
    client: &ClientArgs,
    options: &ProducerOptions,
    plan: &ProducePlan<'_>,
    counters: &Arc<Counters>,
) -> anyhow::Result<Outcome> {
    let origin = Instant::now();
    let config = producer_config(client, options)?;
    let mut producers = Vec::with_capacity(plan.producers);
    for index in 0..plan.producers {
        let mut config = config.clone();
        if options.transaction_size.is_some() {
            config.set("transactional.id", transactional_id(index));
        }
        let producer: ThreadedProducer<Acknowledgements> = config
            .create_with_context(Acknowledgements::new(origin, Arc::clone(counters)))
            .context("cannot create the producers")?;
        if options.transaction_size.is_some() {
            producer
                .init_transactions(client.timeout())
                .context("cannot initialize the transactional producers")?;
        }
        producers.push(producer);
    }

    let start = Instant::now();
    let wall_start = SystemTime::now();
    let mut outcome = Outcome::default();
    std::thread::scope(|scope| {
        let threads: Vec<_> = producers
            .iter()
            .enumerate()
            .map(|(index, producer)| {
                let schedule = Schedule {
                    index,
                    start,
                    wall_start,
                    since_origin: start.duration_since(origin),
                };
                let mut commits = options
                    .transaction_size
                    .map(|size| Commits::new(size, client.timeout() + FLUSH_MARGIN));
                scope.spawn(move || {
                    send_share(producer, plan, &schedule, commits.as_mut());
                    if let Some(commits) = commits.as_mut() {
                        // The last transaction, however short.
                        commits.commit(producer, start);
                    }
                    let flushed = producer.flush(client.timeout() + FLUSH_MARGIN);
                    let mut share = producer.context().take(start);
                    if let Err(error) = flushed {
                        share.fail(format!("messages left unacknowledged: {error}"));
                    }
                    if let Some(commits) = commits {
                        commits.into_outcome(&mut share);
                    }
                    share
                })
            })
            .collect();
        for thread in threads {
            match thread.join() {
                Ok(share) => outcome.merge(share),
                Err(_) => outcome.fail("a producer thread panicked".to_string()),
            }
        }
    });
    Ok(outcome)
}

/// The transactional.id of producer `index`: its own, so producers do not
/// fence each other, and this process's, so a run does not fence one that
/// runs beside it.
fn transactional_id(index: usize) -> String {
    format!("rill-bench-{}-{index}", std::process::id())
}

fn producer_config(
    client: &ClientArgs,
    options: &ProducerOptions,
) -> anyhow::Result<rdkafka::ClientConfig> {
    let timeout_ms = client.timeout_ms.to_string();
    // librdkafka wants message.timeout.ms <= transaction.timeout.ms; its
    // default of 60 s unless --timeout-ms is longer.
    let transaction_timeout_ms = client.timeout_ms.max(60_000).to_string();
    let batch_size = options.batch_size.to_string();
    let linger_ms = options.linger_ms.to_string();
    client.config(&[
        ("acks", options.acks.property()),
        ("compression.codec", options.compression.property()),
        (
            "enable.idempotence",
            // librdkafka refuses a transactional.id without it.
            if options.idempotence || options.transaction_size.is_some() {
                "true"
            } else {
                "false"
            },
        ),
        ("batch.size", &batch_size),
        ("linger.ms", &linger_ms),
        ("message.timeout.ms", &timeout_ms),
        ("transaction.timeout.ms", &transaction_timeout_ms),
        ("partitioner", "murmur2_random"),
        // Room for a second of 1 KiB messages at full speed, so the
        // sender rarely waits on the queue.
        ("queue.buffering.max.messages", "1000000"),
        ("queue.buffering.max.kbytes", "1048576"),
    ])
}

/// When producer `index` of a run started.
struct Schedule {
    index: usize,
    start: Instant,
    wall_start: SystemTime,
    /// `start` as measured from the producers' `origin`.
    since_origin: Duration,
}

/// Sends producer `schedule.index`'s share of the plan, in transactions
/// of `commits` when there are any (the last one left open); stops early
/// when a transaction fails.
fn send_share(
    producer: &ThreadedProducer<Acknowledgements>,
    plan: &ProducePlan<'_>,
    schedule: &Schedule,
    mut commits: Option<&mut Commits>,
) {
    let count = plan.producers as u64;
    let index = schedule.index as u64;
    let share = plan
        .messages
        .map(|messages| messages / count + u64::from(index < messages % count));
    let mut rng = SplitMix64::new(plan.seed.wrapping_add(index.wrapping_mul(0x9E37)));
    let mut key = Vec::new();
    let mut value = Vec::new();
    let mut sent = 0u64;
    let mut now = schedule.start.elapsed();
    let wall_start_ms = schedule
        .wall_start
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64);
    while share.is_none_or(|share| sent < share) {
        let due = match plan.rate {
            Some(rate) => Duration::from_secs_f64((sent * count + index) as f64 / rate),
            None => {
                if sent % CLOCK_READ_EVERY == 0 {
                    now = schedule.start.elapsed();
                }
                now
            }
        };
        if plan.duration.is_some_and(|duration| due >= duration) {
            break;
        }
        if plan.rate.is_some() {
            let now = schedule.start.elapsed();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let mut payload = plan.payloads.pick(&mut rng);
        if plan.stamped {
            value.clear();
            value.extend_from_slice(payload);
            stamp(&mut value, schedule.wall_start + due);
            payload = &value;
        }
        if let Some(commits) = commits.as_deref_mut() {
            if !commits.begin(producer) {
                break;
            }
        }
        let keyed = plan.keys.next(&mut rng, &mut key);
        let due_since_origin = (schedule.since_origin + due).as_nanos() as usize;
        // The record's CreateTime from the send time already read: without
        // one, librdkafka reads the wall clock for every message.
        let timestamp_ms = wall_start_ms + due.as_millis() as i64;
        let mut record = BaseRecord::with_opaque_to(plan.topic, due_since_origin)
            .payload(payload)
            .timestamp(timestamp_ms);
        if keyed {
            record = record.key(key.as_slice());
        }
        if send(producer, record) {
            now = schedule.start.elapsed();
        }
        sent += 1;
        if let Some(commits) = commits.as_deref_mut() {
            if commits.sent(producer, schedule.start) {
                now = schedule.start.elapsed();
            }
            if commits.error.is_some() {
                break;
            }
        }
    }
}

/// A transactional producer's transactions: one begins with its first
/// message and is committed after `size` messages. Owned by the producer's
/// sending thread.
struct Commits {
    /// Messages per transaction.
    size: u64,
    /// How long one commit (or abort) may take.
    timeout: Duration,
    /// Messages sent in the open transaction; 0 when none is open.
    open: u64,
    committed: u64,
    latencies: Latencies,
    /// When the last commit returned, since the run's start.
    last_commit_end: Duration,
    /// The first begin or commit that failed; the producer stops there.
    error: Option<String>,
}

impl Commits {
    fn new(size: u64, timeout: Duration) -> Commits {
        assert!(size >= 1, "a transaction holds at least one message");
        Commits {
            size,
            timeout,
            open: 0,
            committed: 0,
            latencies: Latencies::new(),
            last_commit_end: Duration::ZERO,
            error: None,
        }
    }

    /// Begins a transaction unless one is open; `false` if that failed.
    fn begin(&mut self, producer: &ThreadedProducer<Acknowledgements>) -> bool {
        if self.open == 0 {
            if let Err(error) = producer.begin_transaction() {
                self.error = Some(format!("cannot begin a transaction: {error}"));
                return false;
            }
        }
        true
    }

    /// Counts a message sent in the open transaction and commits it once
    /// it holds `size`. Whether it committed (and so took time).
    fn sent(&mut self, producer: &ThreadedProducer<Acknowledgements>, start: Instant) -> bool {
        self.open += 1;
        if self.open < self.size {
            return false;
        }
        self.commit(producer, start);
        true
    }

    /// Commits the open transaction, if any, timing it; aborts it if the
    /// commit fails with an abortable error.
    fn commit(&mut self, producer: &ThreadedProducer<Acknowledgements>, start: Instant) {
        if self.open == 0 || self.error.is_some() {
            return;
        }
        let called = Instant::now();
        // The rdkafka crate's commit_transaction() first flushes the
        // producer with a loop that polls for 100 ms at a time; with a
        // ThreadedProducer, whose own thread takes the delivery reports,
        // that poll sees none and every commit took 100 ms (measured).
        // So wait for the acknowledgements here, then commit with nothing
        // left to flush. Each zero-time flush wakes librdkafka's senders,
        // but its "send what lingers now" lasts only for the call, so the
        // transaction's last batches may still wait out linger.ms (seen in
        // librdkafka's trace: transactions of 100 took ~5 ms at the
        // default 5 ms, where librdkafka's own flush would not wait).
        let deadline = called + self.timeout;
        while producer.in_flight_count() > 0 && Instant::now() < deadline {
            // Times out at once unless everything is acknowledged: only
            // its wake-up of the senders matters.
            let _ = producer.flush(Duration::ZERO);
            std::thread::sleep(COMMIT_FLUSH_POLL);
        }
        let committed = producer.commit_transaction(self.timeout);
        let returned = Instant::now();
        self.open = 0;
        match committed {
            Ok(()) => {
                self.committed += 1;
                self.latencies.record(returned - called, 1);
                self.last_commit_end = returned.duration_since(start);
            }
            Err(error) => {
                let abortable =
                    matches!(&error, KafkaError::Transaction(e) if e.txn_requires_abort());
                self.error = Some(format!("a commit failed: {error}"));
                if abortable {
                    // The run has failed already; whether the abort works
                    // changes nothing in what the report says.
                    let _ = producer.abort_transaction(self.timeout);
                }
            }
        }
    }

    /// Adds the commits to the producer's outcome: the run lasts until the
    /// last commit returned.
    fn into_outcome(self, outcome: &mut Outcome) {
        outcome.commits += self.committed;
        outcome.commit_latencies.merge(&self.latencies);
        outcome.elapsed = outcome.elapsed.max(self.last_commit_end);
        if let Some(error) = self.error {
            outcome.fail(error);
        }
    }
}

/// Hands `record` to librdkafka, waiting while its queue is full; a
/// message it refuses outright counts as failed. Whether it waited.
fn send(
    producer: &ThreadedProducer<Acknowledgements>,
    mut record: BaseRecord<'_, [u8], [u8], usize>,
) -> bool {
    let mut waited = false;
    loop {
        match producer.send(record) {
            Ok(()) => return waited,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), refused)) => {
                record = refused;
                std::thread::sleep(QUEUE_FULL_WAIT);
                waited = true;
            }
            Err((error, _)) => {
                producer.context().lock().fail(error.to_string());
                return waited;
            }
        }
    }
}

/// A producer's delivery reports: librdkafka calls `delivery` on the
/// producer's polling thread for every message.
struct Acknowledgements {
    /// The instant message due times (the delivery opaque) count from.
    origin: Instant,
    counters: Arc<Counters>,
    state: Mutex<Delivered>,
}

#[derive(Default)]
struct Delivered {
    outcome: Outcome,
    /// When the last report arrived, since `origin`.
    last: Duration,
}

impl Acknowledgements {
    fn new(origin: Instant, counters: Arc<Counters>) -> Acknowledgements {
        Acknowledgements {
            origin,
            counters,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Delivered> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The outcome so far, its time measured from `start`.
    fn take(&self, start: Instant) -> Outcome {
        let mut state = self.lock();
        let mut outcome = std::mem::take(&mut state.outcome);
        outcome.elapsed = state.last.saturating_sub(start.duration_since(self.origin));
        outcome
    }
}

impl Delivered {
    fn fail(&mut self, error: String) {
        self.outcome.fail(error);
    }
}

impl ClientContext for Acknowledgements {
    fn error(&self, error: KafkaError, reason: &str) {
        report_error(&error, reason);
    }
}

impl ProducerContext for Acknowledgements {
    /// When the message was due, in nanoseconds since `origin`.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, due: usize) {
        let now = self.origin.elapsed();
        let latency = now.saturating_sub(Duration::from_nanos(due as u64));
        let mut state = self.lock();
        state.last = now;
        match result {
            Ok(message) => {
                let bytes = (message.payload_len() + message.key_len()) as u64;
                state.outcome.messages += 1;
                state.outcome.bytes += bytes;
                state.outcome.latencies.record(latency, 1);
                self.counters.add_produced(1, bytes);
            }
            Err((error, message)) => {
                state.fail(format!("partition {}: {error}", message.partition()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::delimiter;

    #[test]
    fn delimiters_are_one_byte_or_an_escape() {
        assert_eq!(delimiter("\\n").expect("newline"), b'\n');
        assert_eq!(delimiter(",").expect("comma"), b',');
        assert!(delimiter("ab").is_err());
    }
}
