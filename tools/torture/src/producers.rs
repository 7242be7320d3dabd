//! Idempotent acks=all producers (librdkafka) and the ledger of what the
//! broker acknowledged to them.
//!
//! Producer `p` sends its `n`th record to partition `n % partitions` with
//! the value `p:partition:seq` (seq = `n / partitions`), padded; so every
//! record says who sent it and where it belongs in its partition.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;
use std::sync::Mutex;

/// How long the final flush may take, the broker being up.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// What the broker acknowledged. Thread-safe: librdkafka's delivery
/// callbacks write it, the run's main thread reads it.
#[derive(Debug, Default)]
pub struct Acks {
    count: AtomicU64,
    failed_count: AtomicU64,
    inner: Mutex<AcksInner>,
}

#[derive(Debug, Default)]
struct AcksInner {
    /// (producer, partition) -> (seq, offset), in acknowledgement order.
    acked: BTreeMap<(u32, i32), Vec<(u64, i64)>>,
    /// Delivery errors by their text: records not acknowledged.
    failed: BTreeMap<String, u64>,
}

impl Acks {
    /// Acknowledgements so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    fn record_ack(&self, producer: u32, partition: i32, seq: u64, offset: i64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner
                .acked
                .entry((producer, partition))
                .or_default()
                .push((seq, offset));
        }
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    fn record_failure(&self, error: &KafkaError) {
        if let Ok(mut inner) = self.inner.lock() {
            *inner.failed.entry(error.to_string()).or_default() += 1;
        }
        self.failed_count.fetch_add(1, Ordering::SeqCst);
    }

    /// Records acknowledged or failed so far: every record sent has one
    /// answer or the other in the end.
    fn answered(&self) -> u64 {
        self.count.load(Ordering::SeqCst) + self.failed_count.load(Ordering::SeqCst)
    }

    /// Every acknowledgement: (producer, partition) -> (seq, offset).
    pub fn acked(&self) -> BTreeMap<(u32, i32), Vec<(u64, i64)>> {
        self.inner
            .lock()
            .map(|inner| inner.acked.clone())
            .unwrap_or_default()
    }

    pub fn failed(&self) -> BTreeMap<String, u64> {
        self.inner
            .lock()
            .map(|inner| inner.failed.clone())
            .unwrap_or_default()
    }
}

struct AckContext {
    producer: u32,
    acks: Arc<Acks>,
}

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<(i32, u64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (partition, seq) = *opaque;
        match result {
            Ok(message) => self
                .acks
                .record_ack(self.producer, partition, seq, message.offset()),
            Err((error, _)) => self.acks.record_failure(error),
        }
    }
}

/// The value of producer `producer`'s record `seq` of `partition`.
pub fn record_value(producer: u32, partition: i32, seq: u64, value_bytes: usize) -> Vec<u8> {
    let mut value = format!("{producer}:{partition}:{seq}:").into_bytes();
    if value.len() < value_bytes {
        value.resize(value_bytes, b'.');
    }
    value
}

/// (producer, partition, seq) from a record's value.
pub fn parse_value(value: &[u8]) -> Option<(u32, i32, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut fields = text.split(':');
    let producer = fields.next()?.parse().ok()?;
    let partition = fields.next()?.parse().ok()?;
    let seq = fields.next()?.parse().ok()?;
    fields.next()?;
    Some((producer, partition, seq))
}

#[derive(Debug, Clone)]
pub struct ProducerSettings {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    pub producers: u32,
    /// Records per second of each producer.
    pub rate_per_sec: u64,
    pub value_bytes: usize,
}

/// The running producers. Not thread-safe: the run's main thread owns it.
pub struct Producers {
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    /// Records handed to librdkafka, by every producer.
    sent: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Result<Sent>>>,
    pub acks: Arc<Acks>,
}

/// How many times one producer is created again after fatal errors
/// before it gives up.
const PRODUCER_LIVES_MAX: usize = 20;

/// What one producer did.
struct Sent {
    records: u64,
    /// The fatal errors it hit: with idempotence, a broker that lost what
    /// it had acknowledged shows as one (OUT_OF_ORDER_SEQUENCE_NUMBER).
    fatal: Vec<String>,
}

/// What the producers did, once stopped.
pub struct Stopped {
    pub sent: u64,
    /// One line per fatal error; the producer went on as a new client
    /// (with a new producer id), sending the next sequence numbers.
    pub fatal: Vec<String>,
}

/// The shared switches of the producer threads.
struct Switches {
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
}

impl Producers {
    pub fn start(settings: &ProducerSettings) -> Result<Producers> {
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let acks = Arc::new(Acks::default());
        let mut threads = Vec::new();
        for producer in 0..settings.producers {
            let client = create(settings, producer, Arc::clone(&acks))?;
            let settings = settings.clone();
            let switches = Switches {
                stop: Arc::clone(&stop),
                paused: Arc::clone(&paused),
                sent: Arc::clone(&sent),
            };
            let acks = Arc::clone(&acks);
            threads.push(std::thread::spawn(move || {
                let mut client = client;
                let mut done = Sent {
                    records: 0,
                    fatal: Vec::new(),
                };
                loop {
                    let life =
                        send_until_stopped(&client, &settings, producer, &switches, done.records)?;
                    done.records = life.records;
                    if life.fatal.is_empty() {
                        return Ok(done);
                    }
                    done.fatal.extend(life.fatal);
                    if done.fatal.len() >= PRODUCER_LIVES_MAX {
                        return Ok(done);
                    }
                    // The records it still held fail (purged) as it goes.
                    client = create(&settings, producer, Arc::clone(&acks))?;
                }
            }));
        }
        Ok(Producers {
            stop,
            paused,
            sent,
            threads,
            acks,
        })
    }

    /// Stops sending new records until [`Producers::resume`].
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Waits until every record sent so far has been acknowledged or has
    /// failed, for at most `timeout`: with the producers paused, the
    /// broker then has nothing left to do for them.
    pub fn wait_for_answers(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let sent = self.sent.load(Ordering::SeqCst);
            let answered = self.acks.answered();
            if answered >= sent {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} of {sent} records sent were neither acknowledged nor failed after {timeout:?}",
                    sent - answered
                );
            }
            // Polling the delivery callbacks' counts.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops sending and waits for every record sent to be acknowledged
    /// or failed.
    pub fn stop(self) -> Result<Stopped> {
        self.stop.store(true, Ordering::SeqCst);
        self.paused.store(false, Ordering::SeqCst);
        let mut stopped = Stopped {
            sent: 0,
            fatal: Vec::new(),
        };
        for thread in self.threads {
            let sent = thread
                .join()
                .map_err(|_| anyhow::anyhow!("a producer thread panicked"))??;
            stopped.sent += sent.records;
            stopped.fatal.extend(sent.fatal);
        }
        Ok(stopped)
    }
}

fn create(
    settings: &ProducerSettings,
    producer: u32,
    acks: Arc<Acks>,
) -> Result<ThreadedProducer<AckContext>> {
    ClientConfig::new()
        .set("bootstrap.servers", &settings.bootstrap)
        .set("broker.address.family", "v4")
        .set("client.id", format!("rill-torture-{producer}"))
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        // Far longer than a restart: a record fails only if the broker
        // stays away.
        .set("message.timeout.ms", "120000")
        // Reconnect soon after a restart rather than after librdkafka's
        // default backoff of up to 10 s.
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "500")
        .set("log_level", "2")
        .create_with_context(AckContext { producer, acks })
        .context("creating a producer")
}

/// Sends from record `sent` on until stopped or a fatal error; returns
/// the count sent so far, and the error.
fn send_until_stopped(
    client: &ThreadedProducer<AckContext>,
    settings: &ProducerSettings,
    producer: u32,
    switches: &Switches,
    sent: u64,
) -> Result<Sent> {
    // Open-loop pacing from `started`: record n (counted from `base`) is
    // due at n / rate seconds; a pause starts the schedule again.
    let mut started = Instant::now();
    let mut sent = sent;
    let mut base = sent;
    let mut was_paused = false;
    let fatal = |sent| {
        client.client().fatal_error().map(|(code, reason)| Sent {
            records: sent,
            fatal: vec![format!(
                "producer {producer} hit a fatal error: {code:?}: {reason}"
            )],
        })
    };
    while !switches.stop.load(Ordering::SeqCst) {
        if let Some(stopped) = fatal(sent) {
            return Ok(stopped);
        }
        if switches.paused.load(Ordering::SeqCst) {
            was_paused = true;
            // Waiting for the run to resume or stop the load.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        if was_paused {
            was_paused = false;
            started = Instant::now();
            base = sent;
        }
        let due =
            started + Duration::from_secs_f64((sent - base) as f64 / settings.rate_per_sec as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait.min(Duration::from_millis(50)));
            continue;
        }
        let partition = (sent % settings.partitions as u64) as i32;
        let seq = sent / settings.partitions as u64;
        let value = record_value(producer, partition, seq, settings.value_bytes);
        let mut record = BaseRecord::with_opaque_to(&settings.topic, Box::new((partition, seq)))
            .partition(partition)
            .payload(&value);
        loop {
            match client.send::<(), _>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The broker is away and the queue is full: wait for
                    // room, as an application would.
                    record = back;
                    if switches.stop.load(Ordering::SeqCst) {
                        return finish(client, producer, sent);
                    }
                    if let Some(stopped) = fatal(sent) {
                        return Ok(stopped);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((error, _)) => bail!("producer {producer} could not send: {error}"),
            }
        }
        sent += 1;
        switches.sent.fetch_add(1, Ordering::SeqCst);
    }
    finish(client, producer, sent)
}

fn finish(client: &ThreadedProducer<AckContext>, producer: u32, sent: u64) -> Result<Sent> {
    let flushed = client.flush(Timeout::After(FLUSH_TIMEOUT));
    if let Some((code, reason)) = client.client().fatal_error() {
        return Ok(Sent {
            records: sent,
            fatal: vec![format!(
                "producer {producer} hit a fatal error: {code:?}: {reason}"
            )],
        });
    }
    flushed.with_context(|| format!("producer {producer}: flushing its last records"))?;
    Ok(Sent {
        records: sent,
        fatal: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_value, record_value};

    #[test]
    fn a_value_names_its_producer_partition_and_seq() {
        let value = record_value(3, 11, 123_456, 100);
        assert_eq!(value.len(), 100);
        assert_eq!(parse_value(&value), Some((3, 11, 123_456)));
        assert_eq!(parse_value(&record_value(0, 0, 0, 0)), Some((0, 0, 0)));
        assert_eq!(parse_value(b"3:11"), None);
        assert_eq!(parse_value(b"x:1:2:"), None);
    }
}
