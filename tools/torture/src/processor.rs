//! The exactly-once processor of the EOS mode: a child process that reads
//! the input topic in a consumer group (read_committed, no auto-commit)
//! and, for each batch it polls, writes one transformed record per input
//! record to the output topic and the consumer's positions to the group,
//! in one transaction — librdkafka's consume-transform-produce pattern.
//!
//! The driver ([`crate::eos`]) starts it with [`PROCESSOR_ENV`] holding its
//! [`ProcessorSettings`] as JSON, SIGKILLs it at random points and starts it
//! again. Its `transactional.id` and `group.instance.id` are the same in
//! every life, so a new life fences the one before it: InitProducerId
//! aborts the dead life's open transaction, and the static member takes the
//! dead one's place in the group at once.
//!
//! On an abortable error it aborts and rewinds the consumer to the group's
//! committed offsets; on a fatal error (fenced) or one it cannot get past
//! in [`RETRY_FOR`], it exits non-zero and the driver starts a new life.
//! It exits 0 when its stdin closes: the driver is gone.
//!
//! A life the driver paused (SIGSTOP) while a new one started is a zombie
//! when it resumes: its producer's epoch and its group membership are both
//! fenced, so it must fail (and exit) without committing anything.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

/// A line of the processor's log (its stderr, which the driver keeps):
/// the wall clock in ms, to line it up with the broker's log and the
/// driver's notes, and the pid of the life.
macro_rules! say {
    ($($arg:tt)*) => {{
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        eprintln!(
            "eos-processor {ms} pid {}: {}",
            std::process::id(),
            format_args!($($arg)*)
        );
    }};
}

/// The environment variable that makes a process a processor: it holds
/// the [`ProcessorSettings`] as JSON.
pub const PROCESSOR_ENV: &str = "RILL_TORTURE_EOS_PROCESSOR";

/// How long one transactional call (init, send offsets, commit, abort) may
/// wait for the broker before it is tried again.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a retriable error is retried before the processor gives up
/// and exits, for the driver to start a new life.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// How long one poll for delivery reports waits.
const POLL_STEP: Duration = Duration::from_millis(5);

/// How long the first poll of a batch waits for a record.
const POLL_WAIT: Duration = Duration::from_millis(200);

/// Exit codes, so the driver's report can tell the causes apart.
pub const EXIT_FATAL: u8 = 2;
pub const EXIT_GAVE_UP: u8 = 3;
pub const EXIT_SETUP: u8 = 4;

/// What a processor life is given by the driver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessorSettings {
    pub bootstrap: String,
    pub input: String,
    pub output: String,
    pub group: String,
    /// The same in every life: a new life fences the previous one.
    pub transactional_id: String,
    /// Input records per transaction, at most.
    pub batch_records_max: usize,
    /// The producer's transaction.timeout.ms (and message.timeout.ms).
    pub transaction_timeout_ms: u64,
}

/// The transformed value of input value `value`.
pub fn transform(value: &[u8]) -> Vec<u8> {
    let mut out = b"out-".to_vec();
    out.extend_from_slice(value);
    out
}

/// Runs a processor life if `RILL_TORTURE_EOS_PROCESSOR` is set,
/// returning its exit code; None otherwise. A binary that may be the
/// processor calls this first thing in `main` (a test binary, in a test
/// that the driver starts with a filter naming it) and exits with the code.
pub fn run_if_asked() -> Option<u8> {
    let json = std::env::var(PROCESSOR_ENV).ok()?;
    let settings: ProcessorSettings = match serde_json::from_str(&json) {
        Ok(settings) => settings,
        Err(error) => {
            say!("bad {PROCESSOR_ENV}: {error}");
            return Some(EXIT_SETUP);
        }
    };
    // The driver holds our stdin: when it goes (killed, or done), so do we.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        // EOF or an error both mean the driver is gone.
        let _ = std::io::stdin().read_to_end(&mut sink);
        say!("stdin closed, exiting");
        std::process::exit(0);
    });
    let code = match Processor::new(&settings) {
        Ok(processor) => processor.run(),
        Err(error) => {
            say!("setup failed: {error:#}");
            EXIT_SETUP
        }
    };
    Some(code)
}

/// Counts the rebalances the consumer went through, so a batch polled
/// across one is dropped (its positions are no longer ours to commit).
#[derive(Default)]
struct RebalanceCounter {
    rebalances: AtomicU64,
}

impl ClientContext for RebalanceCounter {}

impl ConsumerContext for RebalanceCounter {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
        say!("rebalance: {rebalance:?}");
    }
}

/// One input record, copied out of the consumer.
struct Input {
    partition: i32,
    offset: i64,
    value: Vec<u8>,
}

/// What to do about an error.
#[derive(Debug, PartialEq, Eq)]
enum Handling {
    /// Try the same call again.
    Retry,
    /// Abort the transaction and rewind.
    Abort,
    /// Exit: this life cannot go on (fenced, or an unexpected error).
    Fatal,
}

fn handling(error: &KafkaError) -> Handling {
    match error {
        KafkaError::Transaction(e) if e.is_fatal() => Handling::Fatal,
        KafkaError::Transaction(e) if e.txn_requires_abort() => Handling::Abort,
        KafkaError::Transaction(e) if e.is_retriable() => Handling::Retry,
        // commit_transaction flushes first; a flush that timed out (the
        // broker away) is retried by committing again.
        KafkaError::Flush(_) => Handling::Retry,
        _ => Handling::Fatal,
    }
}

/// One life's clients. Not thread-safe: the process's main thread owns it.
struct Processor {
    settings: ProcessorSettings,
    consumer: BaseConsumer<RebalanceCounter>,
    producer: BaseProducer,
    committed_transactions: u64,
}

/// Why a batch's transaction did not commit.
enum Failed {
    /// Aborted: the consumer must rewind to the committed offsets.
    Aborted,
    /// This life must end with this exit code.
    Exit(u8),
}

impl Processor {
    /// The producer first: its InitProducerId fences the previous life
    /// and has its open transaction aborted (or a commit it decided
    /// completed) before this life's consumer reads the committed offsets.
    fn new(settings: &ProcessorSettings) -> Result<Processor> {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &settings.bootstrap)
            .set("broker.address.family", "v4")
            .set("client.id", "rill-torture-eos-producer")
            .set("transactional.id", &settings.transactional_id)
            .set(
                "transaction.timeout.ms",
                settings.transaction_timeout_ms.to_string(),
            )
            // At most the transaction timeout, as librdkafka requires.
            .set(
                "message.timeout.ms",
                settings.transaction_timeout_ms.to_string(),
            )
            .set("linger.ms", "5")
            // A transaction's first request often meets the last one's
            // markers still being written (CONCURRENT_TRANSACTIONS); retry
            // soon rather than after librdkafka's default 100 ms.
            .set("retry.backoff.ms", "10")
            .set("reconnect.backoff.ms", "20")
            .set("reconnect.backoff.max.ms", "500")
            .set("log_level", "3")
            .create()
            .context("creating the transactional producer")?;
        retry("init_transactions", || {
            producer.init_transactions(CALL_TIMEOUT)
        })
        .map_err(|code| anyhow::anyhow!("init_transactions failed (exit {code})"))?;
        say!("initialised transactions");
        let consumer: BaseConsumer<RebalanceCounter> = ClientConfig::new()
            .set("bootstrap.servers", &settings.bootstrap)
            .set("broker.address.family", "v4")
            .set("client.id", "rill-torture-eos-consumer")
            .set("group.id", &settings.group)
            // Static: a new life takes the dead one's place at once,
            // without waiting for its session to time out.
            .set("group.instance.id", &settings.transactional_id)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("reconnect.backoff.ms", "20")
            .set("reconnect.backoff.max.ms", "500")
            .set("log_level", "3")
            .create_with_context(RebalanceCounter::default())
            .context("creating the consumer")?;
        consumer
            .subscribe(&[&settings.input])
            .context("subscribing to the input")?;
        Ok(Processor {
            settings: settings.clone(),
            consumer,
            producer,
            committed_transactions: 0,
        })
    }

    /// Processes batches until a fatal error; returns the exit code.
    fn run(mut self) -> u8 {
        loop {
            let rebalances = self.consumer.context().rebalances.load(Ordering::SeqCst);
            let batch = match self.poll_batch() {
                Ok(batch) => batch,
                Err(error) => {
                    say!("polling: {error:#}");
                    return EXIT_FATAL;
                }
            };
            if self.consumer.context().rebalances.load(Ordering::SeqCst) != rebalances {
                // Records from before the rebalance may be followed by ones
                // from the committed offsets again; start from those.
                if !batch.is_empty() {
                    say!(
                        "dropped a batch of {} polled across a rebalance",
                        batch.len()
                    );
                    if let Err(code) = self.rewind() {
                        return code;
                    }
                }
                continue;
            }
            if batch.is_empty() {
                continue;
            }
            match self.process(&batch) {
                Ok(()) => {
                    self.committed_transactions += 1;
                    say!(
                        "committed {} records ({} transactions)",
                        batch.len(),
                        self.committed_transactions
                    );
                }
                Err(Failed::Aborted) => {
                    if let Err(code) = self.rewind() {
                        return code;
                    }
                }
                Err(Failed::Exit(code)) => return code,
            }
        }
    }

    /// Up to `batch_records_max` records: what the first poll (waiting up
    /// to [`POLL_WAIT`]) and the ones after it (not waiting) return.
    fn poll_batch(&self) -> Result<Vec<Input>> {
        let mut batch = Vec::new();
        let mut wait = POLL_WAIT;
        while batch.len() < self.settings.batch_records_max {
            match self.consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => batch.push(Input {
                    partition: message.partition(),
                    offset: message.offset(),
                    value: message.payload().unwrap_or_default().to_vec(),
                }),
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(error)) => {
                    say!("consumer: {error}");
                    // Fenced (FENCED_INSTANCE_ID: a new life took our
                    // place in the group): this life is over.
                    if let Some((code, reason)) = self.consumer.client().fatal_error() {
                        bail!("the consumer hit a fatal error: {code:?}: {reason}");
                    }
                    // Otherwise the broker away or the group rebalancing:
                    // librdkafka carries on by itself.
                    break;
                }
            }
            wait = Duration::ZERO;
        }
        Ok(batch)
    }

    /// One transaction: the batch's results and the consumer's positions.
    fn process(&self, batch: &[Input]) -> Result<(), Failed> {
        if let Err(error) = self.producer.begin_transaction() {
            say!("begin_transaction: {error}");
            return Err(Failed::Exit(EXIT_FATAL));
        }
        for input in batch {
            let value = transform(&input.value);
            // The key names the input record, for reading a duplicate.
            let key = format!("{}@{}", input.partition, input.offset);
            let mut record = BaseRecord::<String, Vec<u8>>::to(&self.settings.output)
                .partition(input.partition)
                .key(&key)
                .payload(&value);
            let sent_by = Instant::now() + RETRY_FOR;
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if Instant::now() < sent_by =>
                    {
                        // Serve delivery reports to make room.
                        record = back;
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((error, _)) => {
                        say!("send: {error}");
                        if self.producer.client().fatal_error().is_some() {
                            return Err(Failed::Exit(EXIT_FATAL));
                        }
                        return self.abort_transaction();
                    }
                }
            }
        }
        let positions = match self.positions(batch) {
            Ok(positions) => positions,
            Err(error) => {
                say!("positions: {error:#}");
                return self.abort_transaction();
            }
        };
        let Some(metadata) = self.consumer.group_metadata() else {
            say!("no group metadata");
            return self.abort_transaction();
        };
        let sent = Instant::now();
        if let Err(code) = retry_or_abort("send_offsets_to_transaction", || {
            self.producer
                .send_offsets_to_transaction(&positions, &metadata, CALL_TIMEOUT)
        }) {
            return self.abort_or_exit(code);
        }
        let offsets_sent = Instant::now();
        self.wait_for_deliveries();
        if let Err(code) = retry_or_abort("commit_transaction", || {
            self.producer.commit_transaction(CALL_TIMEOUT)
        }) {
            return self.abort_or_exit(code);
        }
        say!(
            "send_offsets_to_transaction took {} ms, commit_transaction {} ms",
            (offsets_sent - sent).as_millis(),
            offsets_sent.elapsed().as_millis()
        );
        Ok(())
    }

    /// Serves delivery reports until none is outstanding, for up to
    /// [`CALL_TIMEOUT`]. The rdkafka crate's commit_transaction flushes
    /// first, polling in steps of 100 ms: without this, every commit
    /// waits one whole step; abort_transaction does not poll at all.
    fn wait_for_deliveries(&self) {
        let deadline = Instant::now() + CALL_TIMEOUT;
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            self.producer.poll(POLL_STEP);
        }
    }

    /// The next offset of every partition the batch read from: one past
    /// its last record there. The consumer's own positions would do as
    /// well, but these are exactly what this transaction processed.
    fn positions(&self, batch: &[Input]) -> Result<TopicPartitionList> {
        let mut next = std::collections::BTreeMap::new();
        for input in batch {
            let at = next.entry(input.partition).or_insert(input.offset + 1);
            *at = (*at).max(input.offset + 1);
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in next {
            list.add_partition_offset(&self.settings.input, partition, Offset::Offset(offset))?;
        }
        Ok(list)
    }

    fn abort_or_exit(&self, failure: CallFailure) -> Result<(), Failed> {
        match failure {
            CallFailure::Abort => self.abort_transaction(),
            CallFailure::Exit(code) => Err(Failed::Exit(code)),
        }
    }

    fn abort_transaction(&self) -> Result<(), Failed> {
        match retry("abort_transaction", || {
            // Aborting waits for every outstanding delivery report (failed
            // ones included) to be served, and a BaseProducer serves them
            // only when polled.
            self.wait_for_deliveries();
            self.producer.abort_transaction(CALL_TIMEOUT)
        }) {
            Ok(()) => {
                say!("aborted a transaction");
                Err(Failed::Aborted)
            }
            Err(code) => Err(Failed::Exit(code)),
        }
    }

    /// Seeks every assigned partition back to the group's committed offset
    /// (the beginning where there is none): the records of an aborted
    /// transaction are processed again.
    fn rewind(&self) -> Result<(), u8> {
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            match self.try_rewind() {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() < deadline => {
                    say!("rewinding, retried: {error:#}");
                    // Waiting for the coordinator to come back.
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => {
                    say!("rewinding failed: {error:#}");
                    return Err(EXIT_GAVE_UP);
                }
            }
        }
    }

    fn try_rewind(&self) -> Result<()> {
        let committed = self.consumer.committed(CALL_TIMEOUT)?;
        let mut seek = TopicPartitionList::new();
        for element in committed.elements() {
            if let Err(error) = element.error() {
                bail!("partition {}: {error}", element.partition());
            }
            let offset = match element.offset() {
                Offset::Offset(offset) => Offset::Offset(offset),
                _ => Offset::Beginning,
            };
            seek.add_partition_offset(element.topic(), element.partition(), offset)?;
        }
        let sought = self.consumer.seek_partitions(seek, CALL_TIMEOUT)?;
        for element in sought.elements() {
            if let Err(error) = element.error() {
                bail!("seeking partition {}: {error}", element.partition());
            }
        }
        say!("rewound to {:?}", offsets(&sought));
        Ok(())
    }
}

fn offsets(list: &TopicPartitionList) -> Vec<(i32, Offset)> {
    list.elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect()
}

/// How a transactional call failed for good.
enum CallFailure {
    Abort,
    Exit(u8),
}

/// Calls `call` until it succeeds or fails in a way retrying cannot fix.
fn retry_or_abort(
    what: &str,
    mut call: impl FnMut() -> Result<(), KafkaError>,
) -> Result<(), CallFailure> {
    let deadline = Instant::now() + RETRY_FOR;
    loop {
        let Err(error) = call() else { return Ok(()) };
        say!("{what}: {error}");
        match handling(&error) {
            Handling::Retry if Instant::now() < deadline => {}
            Handling::Retry => return Err(CallFailure::Exit(EXIT_GAVE_UP)),
            Handling::Abort => return Err(CallFailure::Abort),
            Handling::Fatal => return Err(CallFailure::Exit(EXIT_FATAL)),
        }
    }
}

/// Calls `call` (init or abort) until it succeeds; any error but a
/// retriable one ends the life.
fn retry(what: &str, call: impl FnMut() -> Result<(), KafkaError>) -> Result<(), u8> {
    match retry_or_abort(what, call) {
        Ok(()) => Ok(()),
        Err(CallFailure::Abort) => Err(EXIT_FATAL),
        Err(CallFailure::Exit(code)) => Err(code),
    }
}

#[cfg(test)]
mod tests {
    use super::transform;

    #[test]
    fn the_transform_names_its_input() {
        assert_eq!(transform(b"17"), b"out-17".to_vec());
    }
}
