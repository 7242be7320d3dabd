//! `rill bench consume`, and the librdkafka consumers that `e2e` runs too:
//! one client per thread, each assigned a share of the partitions (no
//! group, nothing committed), reading until the run's target count or,
//! catching up, until each partition's end: transactions' markers take
//! offsets but are no messages, so a transactional topic holds fewer
//! messages than its offsets say.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, ensure};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::payload::read_stamp;
use super::progress::{Counters, Progress};
use super::report::{Outcome, Phase, Report};
use super::{ConsumeBenchArgs, Isolation, broker_stats, setup};
use crate::client::{CliContext, ClientArgs};

/// How long one poll waits before the loop checks whether it is done.
const POLL: Duration = Duration::from_millis(100);

/// Messages a consumer counts locally before adding them to the shared
/// counters: per-message atomics shared by several threads cost more than
/// librdkafka's own work at a million messages a second.
const COUNT_BATCH: u64 = 1024;

pub(crate) fn run(client: &ClientArgs, args: ConsumeBenchArgs) -> anyhow::Result<()> {
    let duration = args.run.duration()?;
    let lookup = setup::metadata_consumer(client)?;
    let partitions = setup::partitions(&lookup, client, &args.topic)?;
    let marks = setup::watermarks(&lookup, client, &args.topic, &partitions)?;
    drop(lookup);
    let stored: u64 = marks
        .values()
        .map(|&(low, high)| (high - low).max(0) as u64)
        .sum();
    // Without --messages or --duration: everything the topic holds now
    // (at most; fewer messages when markers or aborted messages take some
    // of the offsets, so reading also stops at each partition's end).
    let catch_up = args.run.messages.is_none() && duration.is_none();
    let target = match (args.run.messages, duration) {
        (Some(messages), _) => messages,
        (None, Some(_)) => u64::MAX,
        (None, None) => stored,
    };
    let starts = marks
        .iter()
        .map(|(&partition, &(low, _))| (partition, low))
        .collect();
    let plan = ConsumePlan {
        topic: &args.topic,
        starts,
        consumers: args.consumer.consumers,
        quota: Quota::new(target),
        duration,
        stamped: false,
        isolation: args.consumer.isolation,
        until_end: catch_up,
    };

    let counters = Arc::new(Counters::default());
    let before = args.run.broker_pid.map(broker_stats::sample).transpose()?;
    let readers = start(client, &plan)?;
    let progress = Progress::start(
        Arc::clone(&counters),
        (target != u64::MAX).then_some(target),
        !args.run.no_progress,
    );
    let outcome = read(client, readers, &plan, &counters);
    progress.finish();

    let broker = match (args.run.broker_pid, before) {
        (Some(pid), Some(before)) => Some(broker_stats::usage_since(pid, before, outcome.bytes)?),
        _ => None,
    };
    let mut settings = BTreeMap::new();
    settings.insert("consumers", plan.consumers.to_string());
    settings.insert("isolation", plan.isolation.level().to_string());
    if let Some(seconds) = args.run.duration {
        settings.insert("duration", seconds.to_string());
    }
    Report {
        command: "consume",
        client: "rdkafka",
        bootstrap: client.bootstrap.clone(),
        topic: args.topic.clone(),
        partitions: partitions.len(),
        settings,
        produce: None,
        consume: Some(Phase::from_outcome(&outcome)),
        broker,
    }
    .print(args.run.json)?;
    super::produce::failures("consumed", &outcome)
}

/// What the consumers of a run read.
pub(crate) struct ConsumePlan<'a> {
    pub(crate) topic: &'a str,
    /// The offset each partition is read from.
    pub(crate) starts: BTreeMap<i32, i64>,
    pub(crate) consumers: usize,
    /// Messages to read in all.
    pub(crate) quota: Quota,
    /// Reading stops once this much time has passed.
    pub(crate) duration: Option<Duration>,
    /// Whether payloads carry their send time (end-to-end latency).
    pub(crate) stamped: bool,
    pub(crate) isolation: Isolation,
    /// Whether a consumer stops once each of its partitions reached its
    /// end (the high watermark, or with read_committed the last stable
    /// offset, when it got there).
    pub(crate) until_end: bool,
}

/// A consumer assigned its share of the partitions, not yet polled.
pub(crate) struct Reader {
    consumer: BaseConsumer<CliContext>,
    /// How many partitions it was assigned.
    partitions: usize,
}

/// Creates the plan's consumers and assigns each its partitions: those at
/// positions i, i + consumers, ... (consumers beyond the partition count
/// are not created).
pub(crate) fn start(client: &ClientArgs, plan: &ConsumePlan<'_>) -> anyhow::Result<Vec<Reader>> {
    ensure!(plan.consumers >= 1, "--consumers must be at least 1");
    let count = plan.consumers.min(plan.starts.len());
    let mut readers = Vec::with_capacity(count);
    for index in 0..count {
        let consumer: BaseConsumer<CliContext> = client
            .config(&[
                // librdkafka's assign() needs a group id; nothing is
                // committed to it.
                ("group.id", "rill-bench"),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "earliest"),
                ("allow.auto.create.topics", "false"),
                ("isolation.level", plan.isolation.level()),
                (
                    "enable.partition.eof",
                    if plan.until_end { "true" } else { "false" },
                ),
            ])?
            .create_with_context(CliContext)
            .context("cannot create the consumers")?;
        let mut assignment = TopicPartitionList::new();
        for (&partition, &offset) in plan.starts.iter().skip(index).step_by(count) {
            assignment.add_partition_offset(plan.topic, partition, Offset::Offset(offset))?;
        }
        consumer
            .assign(&assignment)
            .context("cannot assign the partitions")?;
        readers.push(Reader {
            consumer,
            partitions: assignment.count(),
        });
    }
    Ok(readers)
}

/// Reads with every reader on a thread of its own until the plan's target
/// is reached, its duration is over, or nothing arrives for the client
/// timeout.
pub(crate) fn read(
    client: &ClientArgs,
    readers: Vec<Reader>,
    plan: &ConsumePlan<'_>,
    counters: &Counters,
) -> Outcome {
    let start = Instant::now();
    let mut outcome = Outcome::default();
    std::thread::scope(|scope| {
        let threads: Vec<_> = readers
            .into_iter()
            .map(|reader| scope.spawn(move || read_one(client, &reader, plan, counters, start)))
            .collect();
        for thread in threads {
            match thread.join() {
                Ok(share) => outcome.merge(share),
                Err(_) => outcome.fail("a consumer thread panicked".to_string()),
            }
        }
    });
    outcome
}

fn read_one(
    client: &ClientArgs,
    reader: &Reader,
    plan: &ConsumePlan<'_>,
    counters: &Counters,
    start: Instant,
) -> Outcome {
    let mut outcome = Outcome::default();
    let (mut unreported, mut unreported_bytes) = (0u64, 0u64);
    let mut last_progress = Instant::now();
    let mut seen_total = 0;
    let mut claim = Claim::default();
    // The partitions that reached their end (when catching up).
    let mut ended = BTreeSet::new();
    loop {
        if claim.left == 0 && plan.quota.is_done() {
            break;
        }
        if plan.until_end && ended.len() >= reader.partitions {
            break;
        }
        if plan
            .duration
            .is_some_and(|duration| start.elapsed() >= duration)
        {
            break;
        }
        match reader.consumer.poll(POLL) {
            Some(Ok(message)) => {
                if !plan.quota.take(&mut claim) {
                    break;
                }
                let bytes = (message.payload_len() + message.key_len()) as u64;
                outcome.messages += 1;
                outcome.bytes += bytes;
                outcome.elapsed = start.elapsed();
                last_progress = Instant::now();
                if plan.stamped {
                    if let Some(sent) = message.payload().and_then(read_stamp) {
                        let latency = SystemTime::now().duration_since(sent).unwrap_or_default();
                        outcome.latencies.record(latency, 1);
                    }
                }
                unreported += 1;
                unreported_bytes += bytes;
                if unreported >= COUNT_BATCH {
                    counters.add_consumed(unreported, unreported_bytes);
                    (unreported, unreported_bytes) = (0, 0);
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ended.insert(partition);
            }
            Some(Err(error)) => outcome.fail(error.to_string()),
            None => {
                // Idle: the messages this consumer claimed may be in other
                // consumers' partitions.
                plan.quota.give_back(&mut claim);
                counters.add_consumed(unreported, unreported_bytes);
                (unreported, unreported_bytes) = (0, 0);
                // Stalled when no consumer of the run has read anything
                // for the timeout (this one's partitions may be done).
                let total = counters.consumed.load(Ordering::Relaxed);
                if total != seen_total {
                    (seen_total, last_progress) = (total, Instant::now());
                }
                if last_progress.elapsed() >= client.timeout() {
                    outcome.fail(format!(
                        "no message for {} ms before the run's end (--timeout-ms)",
                        client.timeout_ms
                    ));
                    break;
                }
            }
        }
    }
    plan.quota.give_back(&mut claim);
    counters.add_consumed(unreported, unreported_bytes);
    outcome
}

/// How many messages the consumers of a run may count in all, so that a
/// run asked for N messages reports exactly N. Consumers claim a few at a
/// time (a few shared atomics per thousand messages) and give back what
/// they hold when their partitions run dry.
pub(crate) struct Quota {
    target: AtomicU64,
    /// Messages claimed by consumers, counted or not.
    claimed: AtomicU64,
    /// Messages counted, added a claim at a time.
    counted: AtomicU64,
}

/// What one consumer has claimed from the quota.
#[derive(Default)]
struct Claim {
    size: u64,
    left: u64,
}

/// How long a consumer with a message to count waits for others to give
/// back what they claimed.
const CLAIM_WAIT: Duration = Duration::from_millis(1);

impl Quota {
    pub(crate) fn new(target: u64) -> Quota {
        Quota {
            target: AtomicU64::new(target),
            claimed: AtomicU64::new(0),
            counted: AtomicU64::new(0),
        }
    }

    /// Sets the target once it is known (`e2e`: what was acknowledged).
    pub(crate) fn set_target(&self, target: u64) {
        self.target.store(target, Ordering::Relaxed);
    }

    /// Counts one message against `claim`, claiming more when it is used
    /// up and waiting while other consumers hold the rest; `false` once the
    /// target is reached.
    fn take(&self, claim: &mut Claim) -> bool {
        loop {
            if claim.left > 0 {
                claim.left -= 1;
                if claim.left == 0 {
                    self.counted.fetch_add(claim.size, Ordering::Relaxed);
                    claim.size = 0;
                }
                return true;
            }
            if self.is_done() {
                return false;
            }
            match self.claim() {
                0 => std::thread::sleep(CLAIM_WAIT),
                size => *claim = Claim { size, left: size },
            }
        }
    }

    /// Claims up to COUNT_BATCH messages, fewer as the target nears; 0
    /// when everything up to the target is claimed.
    fn claim(&self) -> u64 {
        let mut claimed = self.claimed.load(Ordering::Relaxed);
        loop {
            let target = self.target.load(Ordering::Relaxed);
            if claimed >= target {
                return 0;
            }
            let size = ((target - claimed) / 4).clamp(1, COUNT_BATCH);
            match self.claimed.compare_exchange_weak(
                claimed,
                claimed + size,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return size,
                Err(now) => claimed = now,
            }
        }
    }

    /// Counts what `claim` used and gives back the rest.
    fn give_back(&self, claim: &mut Claim) {
        if claim.size > 0 {
            self.counted
                .fetch_add(claim.size - claim.left, Ordering::Relaxed);
            self.claimed.fetch_sub(claim.left, Ordering::Relaxed);
            *claim = Claim::default();
        }
    }

    /// Whether the target's messages have all been counted.
    fn is_done(&self) -> bool {
        self.counted.load(Ordering::Relaxed) >= self.target.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_counts_exactly_its_target_across_consumers() {
        let quota = Quota::new(2500);
        let (mut a, mut b) = (Claim::default(), Claim::default());
        let mut taken = 0;
        // A reads until its partitions run dry, then gives back.
        for _ in 0..1000 {
            assert!(quota.take(&mut a));
            taken += 1;
        }
        quota.give_back(&mut a);
        while quota.take(&mut b) {
            taken += 1;
        }
        assert_eq!(taken, 2500);
        assert!(quota.is_done());
        assert!(!quota.take(&mut a));
    }
}
