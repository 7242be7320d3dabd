//! `rill bench e2e`: producers and consumers at once on a topic read from
//! its end. Each payload starts with the time it was due to be sent, so
//! consumers measure produce-to-consume latency.

use std::sync::Arc;

use anyhow::ensure;

use super::consume::{self, ConsumePlan, Quota};
use super::payload::STAMP_LEN;
use super::produce::{self, ProducePlan};
use super::progress::{Counters, Progress};
use super::report::{Outcome, Phase, Report};
use super::{E2eBenchArgs, broker_stats, setup};
use crate::client::ClientArgs;

pub(crate) fn run(client: &ClientArgs, args: E2eBenchArgs) -> anyhow::Result<()> {
    produce::check(&args.producer)?;
    let duration = args.run.duration()?;
    let messages = produce::messages(&args.run, duration);
    let payloads = produce::payloads(&args.producer)?;
    ensure!(
        payloads.min_len() >= STAMP_LEN,
        "e2e needs payloads of at least {STAMP_LEN} bytes to carry their send time"
    );
    let keys = produce::keys(&args.producer);
    let partitions = setup::ensure_topic(client, &args.topic)?;
    let lookup = setup::metadata_consumer(client)?;
    let marks = setup::watermarks(&lookup, client, &args.topic.topic, &partitions)?;
    drop(lookup);

    let consume_plan = ConsumePlan {
        topic: &args.topic.topic,
        starts: marks
            .iter()
            .map(|(&partition, &(_, high))| (partition, high))
            .collect(),
        consumers: args.consumer.consumers,
        // Known once the producers are done: what they got acknowledged.
        quota: Quota::new(u64::MAX),
        duration: None,
        stamped: true,
        isolation: args.consumer.isolation,
        until_end: false,
    };
    let mut produce_plan = ProducePlan::new(&args.topic.topic, &args.producer, &payloads, &keys)
        .sized(messages, duration);
    produce_plan.stamped = true;

    let counters = Arc::new(Counters::default());
    let before = args.run.broker_pid.map(broker_stats::sample).transpose()?;
    let readers = consume::start(client, &consume_plan)?;
    let progress = Progress::start(Arc::clone(&counters), messages, !args.run.no_progress);
    let (produced, consumed) = std::thread::scope(|scope| {
        let consuming = scope.spawn(|| consume::read(client, readers, &consume_plan, &counters));
        let produced = produce::produce(client, &args.producer, &produce_plan, &counters);
        // Whatever happened, the consumers need a target to stop at.
        let acknowledged = produced.as_ref().map_or(0, |outcome| outcome.messages);
        consume_plan.quota.set_target(acknowledged);
        let consumed = consuming.join().unwrap_or_else(|_| {
            let mut outcome = Outcome::default();
            outcome.fail("a consumer thread panicked".to_string());
            outcome
        });
        (produced, consumed)
    });
    progress.finish();
    let produced = produced?;

    let broker = match (args.run.broker_pid, before) {
        (Some(pid), Some(before)) => Some(broker_stats::usage_since(
            pid,
            before,
            produced.bytes + consumed.bytes,
        )?),
        _ => None,
    };
    let mut settings = super::producer_settings(&args.producer, &args.run);
    settings.insert("consumers", args.consumer.consumers.to_string());
    settings.insert("isolation", args.consumer.isolation.level().to_string());
    Report {
        command: "e2e",
        client: "rdkafka",
        bootstrap: client.bootstrap.clone(),
        topic: args.topic.topic.clone(),
        partitions: partitions.len(),
        settings,
        produce: Some(Phase::from_outcome(&produced)),
        consume: Some(Phase::from_outcome(&consumed)),
        broker,
    }
    .print(args.run.json)?;
    produce::failures("produced", &produced)?;
    produce::failures("consumed", &consumed)?;
    ensure!(
        consumed.messages >= produced.messages,
        "consumers read {} of the {} messages acknowledged",
        consumed.messages,
        produced.messages
    );
    Ok(())
}
