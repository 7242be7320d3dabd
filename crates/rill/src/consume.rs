//! `rill consume`: reads a topic's partitions from chosen offsets with
//! librdkafka's consumer, assigned explicitly (no consumer group, nothing
//! committed), and prints one message per line on stdout.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufWriter, ErrorKind, Write};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use crate::client::{CliContext, ClientArgs, offsets_for_time, topic_partitions};
use crate::timestamp;

#[derive(Debug, Args)]
#[command(after_help = "Where to start, in each partition read:\n  \
    (no flag)          the end: only messages produced from now on, so without\n                     \
    --follow nothing is printed (as kafka-console-consumer)\n  \
    --from-beginning   the first message still stored\n  \
    --offset N         offset N; a negative N starts N messages before the end\n  \
    --timestamp T      the first message at or after T\n\n\
    Without --follow, consume stops at each partition's high watermark as of its\n\
    start (its last stable offset with --isolation read_committed); with --follow\n\
    it waits for new messages until interrupted.\n\n\
    Formats (one message per line):\n  \
    plain  the value's bytes as stored (a null value prints an empty line)\n  \
    kv     key<TAB>value, raw bytes; a null key or value is empty. The output\n         \
    feeds `rill produce --key-separator '\\t'` (a null key comes back empty).\n  \
    json   {\"topic\":..,\"partition\":0,\"offset\":5,\"timestamp\":1700000000000,\n          \
    \"key\":\"k\",\"value\":\"v\",\"headers\":[[\"h\",\"1\"],[\"h\",null]]}\n         \
    timestamp is epoch milliseconds; null key, value or header value is null;\n         \
    headers keep their order and duplicates; bytes that are not UTF-8 are\n         \
    replaced with U+FFFD.\n\n\
    Examples:\n  \
    rill consume events --from-beginning\n  \
    rill consume events --offset -10 --format json\n  \
    rill consume events --timestamp 2026-11-22T10:00:00Z --partition 2\n  \
    rill consume events --follow --format kv\n  \
    rill consume jobs --share-group workers --max-messages 10 --ack release")]
pub(crate) struct ConsumeArgs {
    /// The topic to read.
    topic: String,
    /// Start at the first stored message.
    #[arg(long, conflicts_with_all = ["offset", "timestamp"])]
    from_beginning: bool,
    /// Start at this offset; negative: this many messages before the end.
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        conflicts_with = "timestamp"
    )]
    offset: Option<i64>,
    /// Start at the first message at or after this time: RFC 3339
    /// (2026-11-22T10:00:00Z, 2026-11-22T11:00:00+01:00) or epoch
    /// milliseconds.
    #[arg(long, value_name = "TIME")]
    timestamp: Option<String>,
    /// Read only this partition [default: every partition].
    #[arg(long, value_name = "N")]
    partition: Option<i32>,
    /// Stop after this many messages.
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,
    /// Keep waiting for new messages instead of stopping at the end.
    #[arg(long)]
    follow: bool,
    /// How each message is printed.
    #[arg(long, value_enum, default_value_t = Format::Plain)]
    format: Format,
    /// Which messages of transactions are read: read_uncommitted reads
    /// every message up to the high watermark, including those of open
    /// and aborted transactions (as kafka-console-consumer);
    /// read_committed stops at the last stable offset and skips aborted
    /// ones.
    #[arg(long, value_enum, default_value_t = Isolation::ReadUncommitted)]
    isolation: Isolation,
    /// Read as a member of this share group (KIP-932): the group hands out
    /// the records, and each one printed is acknowledged as --ack says.
    /// Where the group starts is its share.auto.offset.reset.
    #[arg(
        long,
        value_name = "GROUP",
        conflicts_with_all = ["from_beginning", "offset", "timestamp", "partition"]
    )]
    share_group: Option<String>,
    /// How a share group member acknowledges each message it prints:
    /// accept (done), release (back to the queue for anyone), reject
    /// (never delivered again).
    #[arg(long, value_enum, requires = "share_group", default_value_t = Ack::Accept)]
    ack: Ack,
    #[command(flatten)]
    client: ClientArgs,
}

/// How `--share-group` acknowledges what it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Ack {
    Accept,
    Release,
    Reject,
}

impl Ack {
    /// Kafka's AcknowledgeType.
    pub(crate) fn code(self) -> i8 {
        match self {
            Ack::Accept => 1,
            Ack::Release => 2,
            Ack::Reject => 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// The value.
    Plain,
    /// Key, a tab, the value.
    Kv,
    /// One JSON object per message.
    Json,
}

/// A consumer's isolation.level (`rill consume`, `rill bench consume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub(crate) enum Isolation {
    ReadUncommitted,
    ReadCommitted,
}

impl Isolation {
    /// librdkafka's isolation.level value.
    pub(crate) fn level(self) -> &'static str {
        match self {
            Isolation::ReadUncommitted => "read_uncommitted",
            Isolation::ReadCommitted => "read_committed",
        }
    }
}

/// Where reading one partition starts and, without --follow, ends.
#[derive(Debug, Clone, Copy)]
struct Range {
    start: i64,
    /// The high watermark when consume started: the offset after the last
    /// message printed without --follow.
    end: i64,
}

pub(crate) fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    if let Some(group) = &args.share_group {
        let share = crate::share_consume::ShareConsume {
            topic: &args.topic,
            group,
            ack: args.ack,
            max_messages: args.max_messages,
            follow: args.follow,
            format: args.format,
            client: &args.client,
        };
        let stdout = std::io::stdout().lock();
        let mut out = BufWriter::new(stdout);
        return match crate::share_consume::run(&share, &mut out) {
            Err(error) if is_broken_pipe(&error) => Ok(()),
            result => result,
        };
    }
    let consumer: BaseConsumer<CliContext> = args
        .client
        .config(&[
            // librdkafka's assign() needs a group id, but consume never
            // joins the group nor commits to it.
            ("group.id", "rill-consume"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            // Offsets deleted by retention while reading: go on from the
            // first one left.
            ("auto.offset.reset", "earliest"),
            ("allow.auto.create.topics", "false"),
            ("isolation.level", args.isolation.level()),
        ])?
        .create_with_context(CliContext)
        .context("cannot create the consumer")?;
    let ranges = ranges(&consumer, &args)?;
    let start_named = args.from_beginning || args.offset.is_some() || args.timestamp.is_some();
    if !args.follow && !start_named {
        eprintln!(
            "note: consume starts at the end of the topic by default, so without --follow \
             there is nothing to print; add --from-beginning, --offset, --timestamp or --follow"
        );
    }

    let mut assignment = TopicPartitionList::new();
    for (&partition, range) in &ranges {
        if args.follow || range.start < range.end {
            assignment.add_partition_offset(&args.topic, partition, Offset::Offset(range.start))?;
        }
    }
    if assignment.count() == 0 || args.max_messages == Some(0) {
        return Ok(());
    }
    consumer
        .assign(&assignment)
        .context("cannot assign the partitions")?;

    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    match read(&consumer, &args, &ranges, &mut out) {
        Err(error) if is_broken_pipe(&error) => Ok(()),
        result => result,
    }
}

/// The start and end offset of every partition to read.
fn ranges(
    consumer: &BaseConsumer<CliContext>,
    args: &ConsumeArgs,
) -> anyhow::Result<BTreeMap<i32, Range>> {
    let timeout = args.client.timeout();
    let topic = &args.topic;
    let partitions = topic_partitions(consumer, &args.client, topic, args.partition)?;

    let mut watermarks = BTreeMap::new();
    for &partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .with_context(|| format!("cannot fetch the watermarks of {topic}-{partition}"))?;
        watermarks.insert(partition, (low, high));
    }
    let by_time = match &args.timestamp {
        Some(text) => Some(offsets_for_time(
            consumer,
            &args.client,
            topic,
            &partitions,
            timestamp::parse_epoch_ms(text)?,
        )?),
        None => None,
    };

    let mut ranges = BTreeMap::new();
    for (&partition, &(low, high)) in &watermarks {
        let start = if args.from_beginning {
            low
        } else if let Some(offset) = args.offset {
            let wanted = if offset < 0 {
                high.saturating_add(offset)
            } else {
                offset
            };
            let start = wanted.clamp(low, high);
            if offset >= 0 && start != wanted {
                eprintln!(
                    "{topic}-{partition}: offset {offset} is outside {low}..={high}; starting at {start}"
                );
            }
            start
        } else if let Some(by_time) = &by_time {
            // No message at or after the time: the end.
            by_time
                .get(&partition)
                .copied()
                .flatten()
                .unwrap_or(high)
                .clamp(low, high)
        } else {
            high
        };
        ranges.insert(partition, Range { start, end: high });
    }
    Ok(ranges)
}

/// Prints messages until every range is read (or, with --follow, forever),
/// or --max-messages are printed.
fn read(
    consumer: &BaseConsumer<CliContext>,
    args: &ConsumeArgs,
    ranges: &BTreeMap<i32, Range>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    // The next offset of each partition still to read to its end.
    let mut pending: BTreeMap<i32, i64> = ranges
        .iter()
        .filter(|(_, range)| range.start < range.end)
        .map(|(&partition, range)| (partition, range.start))
        .collect();
    let mut printed: u64 = 0;
    loop {
        if !args.follow && pending.is_empty() {
            break;
        }
        if args.max_messages.is_some_and(|max| printed >= max) {
            break;
        }
        // Show what has arrived before waiting for more.
        let message = match consumer.poll(Timeout::After(std::time::Duration::ZERO)) {
            Some(message) => message,
            None => {
                out.flush()?;
                let wait = if args.follow {
                    Timeout::Never
                } else {
                    Timeout::After(args.client.timeout())
                };
                match consumer.poll(wait) {
                    Some(message) => message,
                    None if args.follow => continue,
                    None => bail!(
                        "no progress within {} ms; still to read: {}",
                        args.client.timeout_ms,
                        describe_pending(&args.topic, &pending, ranges)
                    ),
                }
            }
        };
        match message {
            Ok(message) => {
                let partition = message.partition();
                let offset = message.offset();
                if !args.follow {
                    let Some(range) = ranges.get(&partition) else {
                        continue;
                    };
                    if offset >= range.end {
                        pending.remove(&partition);
                        continue;
                    }
                    if offset + 1 >= range.end {
                        pending.remove(&partition);
                    } else if let Some(next) = pending.get_mut(&partition) {
                        *next = offset + 1;
                    }
                }
                write_message(out, args.format, &Printed::of(&message))?;
                printed += 1;
            }
            Err(KafkaError::PartitionEOF(partition)) => {
                // The partition is read up to a high watermark at least as
                // new as the one at the start.
                if !args.follow {
                    pending.remove(&partition);
                }
            }
            Err(error) => bail!("cannot read topic {:?}: {error}", args.topic),
        }
    }
    out.flush()?;
    Ok(())
}

fn describe_pending(
    topic: &str,
    pending: &BTreeMap<i32, i64>,
    ranges: &BTreeMap<i32, Range>,
) -> String {
    pending
        .iter()
        .map(|(partition, next)| {
            let end = ranges.get(partition).map_or(0, |r| r.end);
            format!("{topic}-{partition} offsets {next}..{end}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A message as `--format json` prints it.
#[derive(Debug, Serialize)]
struct JsonMessage<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    /// Epoch milliseconds; null when the message has none.
    timestamp: Option<i64>,
    key: Option<Cow<'a, str>>,
    value: Option<Cow<'a, str>>,
    /// [key, value] pairs, so order and duplicate keys survive.
    headers: Vec<(&'a str, Option<Cow<'a, str>>)>,
}

/// One message to print, whoever read it.
pub(crate) struct Printed<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Epoch milliseconds, if the message has one.
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

impl<'a> Printed<'a> {
    fn of(message: &'a BorrowedMessage<'_>) -> Printed<'a> {
        Printed {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key(),
            value: message.payload(),
            headers: message
                .headers()
                .map(|headers| headers.iter().map(|h| (h.key, h.value)).collect())
                .unwrap_or_default(),
        }
    }
}

/// Prints one message as `format` says, with its newline.
pub(crate) fn write_message(
    out: &mut impl Write,
    format: Format,
    message: &Printed<'_>,
) -> anyhow::Result<()> {
    match format {
        Format::Plain => {
            out.write_all(message.value.unwrap_or_default())?;
        }
        Format::Kv => {
            out.write_all(message.key.unwrap_or_default())?;
            out.write_all(b"\t")?;
            out.write_all(message.value.unwrap_or_default())?;
        }
        Format::Json => {
            let json = JsonMessage {
                topic: message.topic,
                partition: message.partition,
                offset: message.offset,
                timestamp: message.timestamp,
                key: message.key.map(String::from_utf8_lossy),
                value: message.value.map(String::from_utf8_lossy),
                headers: message
                    .headers
                    .iter()
                    .map(|(k, v)| (*k, v.map(String::from_utf8_lossy)))
                    .collect(),
            };
            serde_json::to_writer(&mut *out, &json)?;
        }
    }
    out.write_all(b"\n")?;
    Ok(())
}

/// Whether `error` is stdout closed by its reader (e.g. `| head`): not a
/// failure of consume.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(ErrorKind::BrokenPipe)
    })
}
