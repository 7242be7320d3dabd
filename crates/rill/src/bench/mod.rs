//! `rill bench`: throughput and latency of any Kafka-protocol broker,
//! measured the way users measure brokers, through librdkafka (or, for
//! `produce --client native`, Rill's own pipelined producer), and this
//! machine's physical ceilings to quote them against.
//!
//! - `produce`: producers send as fast as the broker takes it, or at
//!   `--rate` (open loop: a message's latency counts from when it was due,
//!   so a stalled broker cannot hide it by slowing the sender down).
//! - `consume`: consumers catch up on what a topic holds.
//! - `e2e`: both at once; each payload carries its send time, so consumers
//!   measure produce-to-consume latency.
//! - `ceiling`: disk and loopback limits of this machine.

mod broker_stats;
mod ceiling;
mod consume;
mod e2e;
mod latency;
mod native;
mod payload;
mod produce;
mod progress;
mod report;
mod setup;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::ensure;
use clap::{Args, Subcommand, ValueEnum};

use crate::client::ClientArgs;
use crate::consume::Isolation;
use crate::produce::{Acks, Compression};
use payload::KeyDistribution;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rill bench produce --size 1024 --messages 2000000 --acks all\n  \
    rill bench produce --size 100 --acks 1 --partitions 6 --producers 2\n  \
    rill bench produce --rate 100000 --duration 30 --acks all     # latency at a fixed rate\n  \
    rill bench consume                                           # catch up on rill-bench\n  \
    rill bench e2e --rate 50000 --duration 20 --consumers 2\n  \
    rill bench produce --client native --size 1024 --messages 5000000\n  \
    rill bench produce --transaction-size 10000 --acks all       # transactional\n  \
    rill bench consume --isolation read_committed\n  \
    rill bench ceiling --dir /var/lib/rill\n\n\
    Every command measures any Kafka broker at --bootstrap, and prints a text\n\
    report, or one JSON object with --json. MB are 10^6 bytes of keys and values.")]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Produce messages; report throughput and acknowledgement latency.
    Produce(ProduceBenchArgs),
    /// Read a topic from its start; report throughput.
    Consume(ConsumeBenchArgs),
    /// Produce and consume at once; report both and produce-to-consume
    /// latency.
    E2e(E2eBenchArgs),
    /// Measure this machine's disk and loopback limits.
    Ceiling(ceiling::CeilingArgs),
}

/// How long a run goes and how it reports.
#[derive(Debug, Args)]
struct RunOptions {
    /// Messages to produce (produce, e2e) or to read (consume) in all
    /// [default: produce 1,000,000; consume everything the topic holds].
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    messages: Option<u64>,
    /// Run for this many seconds instead of a message count.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Report the CPU time and memory of this broker process (same
    /// machine; read from /proc).
    #[arg(long, value_name = "PID")]
    broker_pid: Option<u32>,
    /// No live progress line.
    #[arg(long)]
    no_progress: bool,
}

impl RunOptions {
    fn duration(&self) -> anyhow::Result<Option<Duration>> {
        self.duration
            .map(|seconds| {
                ensure!(
                    seconds.is_finite() && seconds > 0.0,
                    "--duration must be a positive number of seconds"
                );
                Ok(Duration::from_secs_f64(seconds))
            })
            .transpose()
    }
}

/// The topic a run uses.
#[derive(Debug, Args)]
struct TopicOptions {
    /// The topic to use.
    #[arg(long, default_value = "rill-bench")]
    topic: String,
    /// Partitions of the topic when it is created.
    #[arg(long, value_name = "N", default_value_t = 6)]
    partitions: i32,
    /// Replicas of each partition when the topic is created.
    #[arg(long, value_name = "N", default_value_t = 1)]
    replication_factor: i32,
    /// A config of the topic when it is created, e.g. flush.policy=none
    /// (repeatable).
    #[arg(long = "topic-config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
}

/// What producers send and how.
#[derive(Debug, Args)]
struct ProducerOptions {
    /// Bytes of each message's value.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    size: usize,
    /// Messages per second, all producers together (open loop) [default:
    /// as fast as the broker takes them].
    #[arg(long, value_name = "MSG/S")]
    rate: Option<f64>,
    /// Acknowledgements to wait for.
    #[arg(long, value_enum, default_value_t = Acks::All)]
    acks: Acks,
    /// Compression codec of the record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// Idempotent producers (enable.idempotence).
    #[arg(long)]
    idempotence: bool,
    /// Transactional producers: each has a transactional.id of its own
    /// (so is idempotent too), begins a transaction, and commits it after
    /// every N messages it sends (and at the end). The report adds each
    /// commit's latency: from the call to commit to its return, which
    /// waits for the transaction's last acknowledgements (its last
    /// batches may first wait out --linger-ms: the rdkafka crate flushes
    /// honouring linger.ms, where librdkafka's own commit and the Java
    /// producer's do not, so compare with --linger-ms 0) and the
    /// coordinator's EndTxn answer.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    transaction_size: Option<u64>,
    /// Producer clients, each on a thread of its own.
    #[arg(long, value_name = "N", default_value_t = 1)]
    producers: usize,
    /// How message keys are chosen.
    #[arg(long, value_enum, default_value_t = KeyDistribution::None)]
    keys: KeyDistribution,
    /// Distinct keys for --keys uniform and zipf.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    key_count: u64,
    /// The exponent s of --keys zipf.
    #[arg(long, value_name = "S", default_value_t = 0.99)]
    zipf_exponent: f64,
    /// Largest record batch in bytes (batch.size).
    #[arg(long, value_name = "BYTES", default_value_t = 1_000_000)]
    batch_size: usize,
    /// How long a producer waits to fill a batch (linger.ms).
    #[arg(long, value_name = "MS", default_value_t = 5)]
    linger_ms: u64,
    /// Send the records of this file (picked at random per message)
    /// instead of random bytes of --size.
    #[arg(long, value_name = "PATH")]
    payload_file: Option<PathBuf>,
    /// The byte separating records in --payload-file.
    #[arg(long, value_name = "CHAR", default_value = "\\n")]
    payload_delimiter: String,
    /// Seed of the payload bytes and key draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// What consumers do.
#[derive(Debug, Args)]
struct ConsumerOptions {
    /// Consumer clients, each on a thread of its own, each assigned a share
    /// of the partitions.
    #[arg(long, value_name = "N", default_value_t = 1)]
    consumers: usize,
    /// Which messages of transactions are read (isolation.level):
    /// read_uncommitted reads up to the high watermark, aborted messages
    /// included; read_committed up to the last stable offset, aborted
    /// messages skipped.
    #[arg(long, value_enum, default_value_t = Isolation::ReadUncommitted)]
    isolation: Isolation,
}

#[derive(Debug, Args)]
struct ProduceBenchArgs {
    #[command(flatten)]
    run: RunOptions,
    #[command(flatten)]
    topic: TopicOptions,
    #[command(flatten)]
    producer: ProducerOptions,
    /// The producer client: librdkafka, or Rill's own pipelined producer
    /// over the Kafka protocol (large batches, no librdkafka overhead;
    /// uncompressed, keyless, neither idempotent nor transactional).
    #[arg(long, value_enum, default_value_t = ClientKind::Rdkafka)]
    client: ClientKind,
    /// --client native: produce requests in flight per connection.
    #[arg(long, value_name = "N", default_value_t = 8)]
    inflight: usize,
}

#[derive(Debug, Args)]
struct ConsumeBenchArgs {
    #[command(flatten)]
    run: RunOptions,
    /// The topic to read.
    #[arg(long, default_value = "rill-bench")]
    topic: String,
    #[command(flatten)]
    consumer: ConsumerOptions,
}

#[derive(Debug, Args)]
struct E2eBenchArgs {
    #[command(flatten)]
    run: RunOptions,
    #[command(flatten)]
    topic: TopicOptions,
    #[command(flatten)]
    producer: ProducerOptions,
    #[command(flatten)]
    consumer: ConsumerOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClientKind {
    /// librdkafka, through the rdkafka crate.
    Rdkafka,
    /// Rill's pipelined producer over the kafka-protocol crate.
    Native,
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Produce(produce) => produce::run(&args.client, produce),
        BenchCommand::Consume(consume) => consume::run(&args.client, consume),
        BenchCommand::E2e(e2e) => e2e::run(&args.client, e2e),
        BenchCommand::Ceiling(ceiling) => ceiling::run(ceiling),
    }
}

/// The settings of a producing run, as the report records them.
fn producer_settings(
    producer: &ProducerOptions,
    run: &RunOptions,
) -> BTreeMap<&'static str, String> {
    let mut settings = BTreeMap::new();
    settings.insert("size", producer.size.to_string());
    settings.insert("acks", producer.acks.property().to_string());
    settings.insert("compression", producer.compression.property().to_string());
    settings.insert(
        "idempotence",
        (producer.idempotence || producer.transaction_size.is_some()).to_string(),
    );
    if let Some(size) = producer.transaction_size {
        settings.insert("transaction_size", size.to_string());
    }
    settings.insert("producers", producer.producers.to_string());
    settings.insert("keys", format!("{:?}", producer.keys).to_lowercase());
    settings.insert("batch_size", producer.batch_size.to_string());
    settings.insert("linger_ms", producer.linger_ms.to_string());
    if let Some(rate) = producer.rate {
        settings.insert("rate", rate.to_string());
    }
    if let Some(path) = &producer.payload_file {
        settings.insert("payload_file", path.display().to_string());
    }
    if let Some(seconds) = run.duration {
        settings.insert("duration", seconds.to_string());
    }
    settings
}
