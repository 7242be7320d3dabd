//! `rill produce`: one message per line of stdin, through librdkafka's
//! producer; waits for every delivery report before exiting.

use std::io::BufRead;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use clap::{Args, ValueEnum};
use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::client::{ClientArgs, report_error};

/// How long to wait for room in librdkafka's queue before trying again.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(100);

/// How long after the delivery timeout a flush may still take: librdkafka
/// checks message timeouts about once a second.
const FLUSH_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
#[command(
    after_help = "Each line of stdin is one message (its line ending removed; an empty line is\n\
    an empty message). Without --partition, messages with a key go to the\n\
    partition of the key's murmur2 hash, as with the Java client; messages\n\
    without a key are spread over the partitions.\n\n\
    Examples:\n  \
    echo hello | rill produce events\n  \
    printf 'user-1:login\\nuser-2:logout\\n' | rill produce events --key-separator :\n  \
    rill produce events --header source=import --compression zstd < events.txt\n  \
    rill consume events --from-beginning --format kv | rill produce copy --key-separator '\\t'"
)]
pub(crate) struct ProduceArgs {
    /// The topic to write to.
    topic: String,
    /// Split each line at the first SEP into key and value; a line without
    /// SEP has no key. `\t` means a tab.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// A header added to every message (repeatable); KEY alone adds a header
    /// with a null value.
    #[arg(long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Write every message to this partition.
    #[arg(long, value_name = "N")]
    partition: Option<i32>,
    /// Acknowledgements to wait for: 0 (none), 1 (the leader), all (every
    /// in-sync replica).
    #[arg(long, value_enum, default_value_t = Acks::All)]
    acks: Acks,
    /// Compression codec of the record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Acks {
    #[value(name = "0")]
    None,
    #[value(name = "1")]
    Leader,
    #[value(name = "all")]
    All,
}

impl Acks {
    pub(crate) fn property(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub(crate) fn property(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Counts delivery reports. librdkafka calls it from `poll` and `flush` on
/// the producing thread; the atomics only satisfy `Sync`.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Deliveries {
    fn fail(&self, error: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(error);
        }
    }

    fn first_error(&self) -> String {
        self.first_error
            .lock()
            .ok()
            .and_then(|first| first.clone())
            .unwrap_or_default()
    }
}

impl ClientContext for Deliveries {
    fn error(&self, error: KafkaError, reason: &str) {
        report_error(&error, reason);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) if message.partition() >= 0 => {
                self.fail(format!("partition {}: {error}", message.partition()));
            }
            Err((error, _)) => self.fail(error.to_string()),
        }
    }
}

pub(crate) fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let separator = match args.key_separator.as_deref() {
        Some("") => bail!("--key-separator is empty"),
        Some("\\t") => Some(b"\t".to_vec()),
        Some(separator) => Some(separator.as_bytes().to_vec()),
        None => None,
    };
    let headers = headers(&args.headers)?;
    let timeout_ms = args.client.timeout_ms.to_string();
    let producer: BaseProducer<Deliveries> = args
        .client
        .config(&[
            ("acks", args.acks.property()),
            ("compression.codec", args.compression.property()),
            ("message.timeout.ms", &timeout_ms),
            ("partitioner", "murmur2_random"),
        ])?
        .create_with_context(Deliveries::default())
        .context("cannot create the producer")?;

    let mut sent: u64 = 0;
    let mut line = Vec::new();
    let mut stdin = std::io::stdin().lock();
    loop {
        line.clear();
        if stdin
            .read_until(b'\n', &mut line)
            .context("cannot read stdin")?
            == 0
        {
            break;
        }
        let text = strip_line_ending(&line);
        let (key, value) = match &separator {
            Some(separator) => split_key(text, separator),
            None => (None, text),
        };
        let mut record = BaseRecord::<[u8], [u8]>::to(&args.topic).payload(value);
        record.key = key;
        record.partition = args.partition;
        record.headers = headers.clone();
        send(&producer, record);
        sent += 1;
        producer.poll(Duration::ZERO);
    }

    let flushed = producer.flush(args.client.timeout() + FLUSH_MARGIN);
    let context = producer.context();
    let delivered = context.delivered.load(Ordering::Relaxed);
    let failed = context.failed.load(Ordering::Relaxed);
    eprintln!(
        "produced {delivered} {} to {}",
        messages(delivered),
        args.topic
    );
    ensure!(
        failed == 0,
        "{failed} of {sent} messages were not delivered; the first: {}",
        context.first_error()
    );
    if let Err(error) = flushed {
        bail!(
            "{} of {sent} messages still unacknowledged: {error}",
            sent.saturating_sub(delivered)
        );
    }
    Ok(())
}

fn messages(count: u64) -> &'static str {
    if count == 1 { "message" } else { "messages" }
}

/// Hands `record` to librdkafka, waiting while its queue is full. A message
/// librdkafka refuses outright counts as a failed delivery.
fn send(producer: &BaseProducer<Deliveries>, mut record: BaseRecord<'_, [u8], [u8]>) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), refused)) => {
                record = refused;
                producer.poll(QUEUE_FULL_WAIT);
            }
            Err((error, _)) => {
                producer.context().fail(error.to_string());
                return;
            }
        }
    }
}

/// The headers from `--header KEY=VALUE` flags, in order.
fn headers(flags: &[String]) -> anyhow::Result<Option<OwnedHeaders>> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut headers = OwnedHeaders::new_with_capacity(flags.len());
    for flag in flags {
        let (key, value) = match flag.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (flag.as_str(), None),
        };
        ensure!(!key.is_empty(), "--header {flag:?}: the key is empty");
        headers = headers.insert(Header { key, value });
    }
    Ok(Some(headers))
}

/// `line` without its trailing `\n` or `\r\n`.
fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Key and value of `line` split at the first `separator`; no key when the
/// separator does not occur.
fn split_key<'a>(line: &'a [u8], separator: &[u8]) -> (Option<&'a [u8]>, &'a [u8]) {
    match line
        .windows(separator.len())
        .position(|window| window == separator)
    {
        Some(at) => (Some(&line[..at]), &line[at + separator.len()..]),
        None => (None, line),
    }
}

#[cfg(test)]
mod tests {
    use super::{split_key, strip_line_ending};

    #[test]
    fn keys_split_at_the_first_separator() {
        assert_eq!(
            split_key(b"k::v::w", b"::"),
            (Some(&b"k"[..]), &b"v::w"[..])
        );
        assert_eq!(split_key(b":v", b":"), (Some(&b""[..]), &b"v"[..]));
        assert_eq!(split_key(b"no key", b":"), (None, &b"no key"[..]));
    }

    #[test]
    fn line_endings_are_removed() {
        assert_eq!(strip_line_ending(b"a\r\n"), b"a");
        assert_eq!(strip_line_ending(b"a\n"), b"a");
        assert_eq!(strip_line_ending(b"a"), b"a");
        assert_eq!(strip_line_ending(b"\n"), b"");
    }
}
