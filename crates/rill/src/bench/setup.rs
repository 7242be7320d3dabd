//! The topic of a run: created when it is missing, then its partitions and
//! their watermarks, all through librdkafka's admin client and consumer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::TopicOptions;
use crate::client::{CliContext, ClientArgs, block_on, key_value, topic_partitions};

/// How often metadata is asked again while a new topic appears.
const METADATA_RETRY: Duration = Duration::from_millis(100);

/// Creates the topic unless it exists, and returns its partition ids.
pub(crate) fn ensure_topic(
    client: &ClientArgs,
    options: &TopicOptions,
) -> anyhow::Result<Vec<i32>> {
    let admin: AdminClient<CliContext> = client
        .config(&[("allow.auto.create.topics", "false")])?
        .create_with_context(CliContext)
        .context("cannot create the admin client")?;
    let mut topic = NewTopic::new(
        &options.topic,
        options.partitions,
        TopicReplication::Fixed(options.replication_factor),
    );
    for assignment in &options.configs {
        let (key, value) = key_value("--topic-config", assignment)?;
        topic = topic.set(key, value);
    }
    let results = block_on(admin.create_topics([&topic], &client.admin_options()))?
        .with_context(|| format!("cannot create topic {:?}", options.topic))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                if !options.configs.is_empty() {
                    eprintln!(
                        "note: topic {name} exists already; --topic-config applies only to a new topic"
                    );
                }
            }
            Err((name, code)) => bail!("cannot create topic {name:?}: {code}"),
        }
    }
    let consumer = metadata_consumer(client)?;
    let deadline = Instant::now() + client.timeout();
    loop {
        match partitions(&consumer, client, &options.topic) {
            Ok(partitions) => return Ok(partitions),
            Err(error) if Instant::now() >= deadline => return Err(error),
            Err(_) => std::thread::sleep(METADATA_RETRY),
        }
    }
}

/// A consumer for metadata and watermark lookups only.
pub(crate) fn metadata_consumer(client: &ClientArgs) -> anyhow::Result<BaseConsumer<CliContext>> {
    client
        .config(&[
            ("group.id", "rill-bench"),
            ("allow.auto.create.topics", "false"),
        ])?
        .create_with_context(CliContext)
        .context("cannot create the consumer")
}

/// The sorted partition ids of an existing topic.
pub(crate) fn partitions(
    consumer: &BaseConsumer<CliContext>,
    client: &ClientArgs,
    topic: &str,
) -> anyhow::Result<Vec<i32>> {
    let ids = topic_partitions(consumer, client, topic, None)?;
    if ids.is_empty() {
        bail!("topic {topic:?} has no partitions yet");
    }
    Ok(ids)
}

/// The (low, high) watermarks of each partition.
pub(crate) fn watermarks(
    consumer: &BaseConsumer<CliContext>,
    client: &ClientArgs,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    partitions
        .iter()
        .map(|&partition| {
            let marks = consumer
                .fetch_watermarks(topic, partition, client.timeout())
                .with_context(|| format!("cannot fetch the watermarks of {topic}-{partition}"))?;
            Ok((partition, marks))
        })
        .collect()
}
