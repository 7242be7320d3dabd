//! Writing a share-partition's dead letters to its group's dead-letter
//! topic (KIP-1191), exactly once (see `rill_share::DeadLetterBatch`).
//!
//! One task per share-partition, started when records are given up on and
//! stopped when none wait or the partition's leadership moved: it takes
//! the next batch, persists its sequences if they are new, produces it to
//! partition `source partition % partitions` of the topic through the
//! Kafka protocol (to whichever broker leads that partition, this one
//! included) as the share-partition's idempotent producer, then archives
//! the records and persists that. A write that fails is tried again, with
//! a backoff, until it is written or the topic stops being usable.
//!
//! Each record carries Kafka's headers: `__dlq.errors.topic`,
//! `.partition`, `.offset`, `.group`, `.delivery.count` and `.message`;
//! and the source record's key and value when the group sets
//! `errors.deadletterqueue.copy.record.enable`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rill_partition::{FetchIsolation, TopicPartition};
use rill_record::{BatchBuilder, Batches, NewRecord, Records};
use rill_share::{ArchiveReason, DeadLetterBatch};
use rill_storage::Offset;

use super::partitions::{ShareKey, SharePartitions, ShareSlot};
use crate::broker::Broker;
use crate::group_config::{ShareGroupConfig, share_config};
use crate::topics::NewTopic;

/// The most records in one write.
const BATCH_RECORDS_MAX: usize = 500;
/// The most bytes of copied keys and values in one write (it may hold one
/// larger record).
const BATCH_COPY_BYTES_MAX: usize = 1 << 20;
/// The most bytes read from the source partition to copy one record.
const SOURCE_READ_BYTES: usize = 1 << 20;
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);

const HEADER_TOPIC: &str = "__dlq.errors.topic";
const HEADER_PARTITION: &str = "__dlq.errors.partition";
const HEADER_OFFSET: &str = "__dlq.errors.offset";
const HEADER_GROUP: &str = "__dlq.errors.group";
const HEADER_DELIVERY_COUNT: &str = "__dlq.errors.delivery.count";
const HEADER_MESSAGE: &str = "__dlq.errors.message";

/// Starts the writing of `key`'s dead letters, unless none wait or it
/// runs already.
pub(crate) fn wake(broker: &Arc<Broker>, key: &ShareKey, slot: &Arc<ShareSlot>) {
    if !slot.state.lock().has_dead_letters()
        || slot.writing_dead_letters.swap(true, Ordering::AcqRel)
    {
        return;
    }
    let (broker, key, slot) = (Arc::clone(broker), key.clone(), Arc::clone(slot));
    tokio::spawn(async move { run(&broker, &key, &slot).await });
}

/// What one step did.
enum Step {
    /// Wrote a batch, or archived records the topic cannot take.
    Progress,
    /// Nothing waits.
    Idle,
    /// This broker no longer serves the share-partition.
    Stale,
}

async fn run(broker: &Arc<Broker>, key: &ShareKey, slot: &Arc<ShareSlot>) {
    let mut retry = RETRY_FIRST;
    loop {
        match step(broker, key, slot).await {
            Ok(Step::Progress) => retry = RETRY_FIRST,
            Ok(Step::Idle) => {
                slot.writing_dead_letters.store(false, Ordering::Release);
                // Records given up on after the last look start no task
                // while this one runs: look again.
                if !slot.state.lock().has_dead_letters()
                    || slot.writing_dead_letters.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
            Ok(Step::Stale) => {
                slot.writing_dead_letters.store(false, Ordering::Release);
                return;
            }
            Err(error) => {
                tracing::warn!(
                    group = key.group,
                    partition = key.partition,
                    %error,
                    retry_in_ms = retry.as_millis() as u64,
                    "cannot write dead letters yet"
                );
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

async fn step(broker: &Arc<Broker>, key: &ShareKey, slot: &Arc<ShareSlot>) -> Result<Step, String> {
    let Some(source_topic) = broker.topics().name_by_id(key.topic_id) else {
        return Ok(Step::Stale);
    };
    let tp = TopicPartition::new(&source_topic, key.partition);
    let serving = broker
        .shares()
        .partitions()
        .get(key, slot.leader_epoch)
        .is_some_and(|current| Arc::ptr_eq(&current, slot));
    let Ok((source, epoch)) = broker.leader_partition(&tp, -1) else {
        return Ok(Step::Stale);
    };
    if !serving || epoch != slot.leader_epoch {
        return Ok(Step::Stale);
    }
    if !slot.state.lock().has_dead_letters() {
        return Ok(Step::Idle);
    }
    let config = share_config(broker, &key.group);
    let Some(topic) = usable_topic(broker, &config).await? else {
        slot.state.lock().drop_dead_letters();
        persist(broker, key, slot).await?;
        return Ok(Step::Progress);
    };
    if slot.state.lock().dead_letter_producer().is_none() {
        let id = broker
            .node()
            .next_producer_id()
            .await
            .map_err(|e| format!("no producer id: {e}"))?;
        slot.state.lock().set_dead_letter_producer(id);
    }
    // How many fit one write: with copies, as many as their sizes allow.
    // The copies read for that are the ones the write then carries.
    let mut copies = HashMap::new();
    let wanted = if config.dead_letter_copy_record {
        let pending = slot
            .state
            .lock()
            .unsequenced_dead_letters(BATCH_RECORDS_MAX);
        read_copies(&source, pending.iter().map(|a| a.offset), &mut copies);
        let mut bytes = 0usize;
        pending
            .iter()
            .take_while(|a| {
                let first = bytes == 0;
                bytes += copies.get(&a.offset).map_or(0, |(k, v)| {
                    k.as_ref().map_or(0, Bytes::len) + v.as_ref().map_or(0, Bytes::len)
                });
                first || bytes <= BATCH_COPY_BYTES_MAX
            })
            .count()
            .max(1)
    } else {
        BATCH_RECORDS_MAX
    };
    let Some(batch) = slot.state.lock().next_dead_letters(wanted) else {
        return Ok(Step::Idle);
    };
    if batch.newly_sequenced {
        // The sequences are durable before anything is written with them.
        persist(broker, key, slot).await?;
    }
    if config.dead_letter_copy_record {
        // A write repeated after a restart has its records read here.
        read_copies(&source, batch.records.iter().map(|a| a.offset), &mut copies);
    }
    let source_of = Source {
        topic: &source_topic,
        partition: key.partition,
        group: &key.group,
    };
    let records = encode(&batch, &source_of, &copies)?;
    produce(broker, &topic, key.partition, records).await?;
    slot.state.lock().dead_letters_written(&batch);
    persist(broker, key, slot).await?;
    tracing::debug!(
        group = key.group,
        topic = topic.name,
        records = batch.records.len(),
        "wrote dead letters"
    );
    Ok(Step::Progress)
}

/// The dead-letter topic as the write needs it.
struct Topic {
    name: String,
    partitions: i32,
}

/// The group's dead-letter topic if records can be written to it, made if
/// it does not exist and the broker may make it; `None` when it cannot
/// take them (records are then archived without a copy, as Kafka does).
async fn usable_topic(
    broker: &Arc<Broker>,
    config: &ShareGroupConfig,
) -> Result<Option<Topic>, String> {
    let Some(name) = config.usable_dead_letter_topic() else {
        tracing::warn!(
            topic = config.dead_letter_topic.as_deref().unwrap_or(""),
            prefix = config.dead_letter_topic_prefix,
            "the dead-letter topic's name lacks errors.deadletterqueue.topic.name.prefix; \
             archiving without a copy"
        );
        return Ok(None);
    };
    if let Some(existing) = broker.topics().topic(name) {
        // The topic's own setting, else the broker's default.
        let enabled = broker
            .topics()
            .configs_of(name)
            .unwrap_or_default()
            .into_iter()
            .find(|(def, _, _)| def.name == "errors.deadletterqueue.group.enable")
            .is_some_and(|(_, value, _)| value.trim().eq_ignore_ascii_case("true"));
        if !enabled {
            tracing::warn!(
                topic = name,
                "the dead-letter topic does not set errors.deadletterqueue.group.enable=true; \
                 archiving without a copy"
            );
            return Ok(None);
        }
        return Ok(Some(Topic {
            name: name.to_string(),
            partitions: i32::try_from(existing.partitions.len()).unwrap_or(i32::MAX),
        }));
    }
    if !config.dead_letter_auto_create_topics {
        tracing::warn!(
            topic = name,
            "the dead-letter topic does not exist and \
             errors.deadletterqueue.auto.create.topics.enable is false; archiving without a copy"
        );
        return Ok(None);
    }
    create(broker, name).await?;
    Err(format!(
        "made the dead-letter topic {name}; writing once it has leaders"
    ))
}

/// Makes the dead-letter topic with the broker's defaults, open to share
/// groups and stamped with the time of each write (Kafka's choices).
async fn create(broker: &Arc<Broker>, name: &str) -> Result<(), String> {
    let new_topic = NewTopic {
        name: name.to_string(),
        partitions: -1,
        replication_factor: -1,
        configs: BTreeMap::from([
            (
                "errors.deadletterqueue.group.enable".to_string(),
                "true".to_string(),
            ),
            (
                "message.timestamp.type".to_string(),
                "CreateTime".to_string(),
            ),
        ]),
        assignment: None,
    };
    let broker = Arc::clone(broker);
    tokio::task::spawn_blocking(move || {
        match broker.topics().create(&new_topic, false) {
            Ok(_) => {}
            // Another broker made it first.
            Err(crate::topics::TopicError::AlreadyExists { .. }) => return Ok(()),
            Err(error) => return Err(format!("cannot make {}: {error}", new_topic.name)),
        }
        broker.node().apply_metadata();
        tracing::info!(topic = new_topic.name, "made a dead-letter topic");
        match broker
            .topics()
            .undo_unmade(std::slice::from_ref(&new_topic.name))
            .pop()
        {
            Some((_, cause)) => Err(format!("cannot make {}: {cause}", new_topic.name)),
            None => Ok(()),
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Where the records came from.
struct Source<'a> {
    topic: &'a str,
    partition: i32,
    group: &'a str,
}

/// Adds to `found` the key and value of the records at `offsets` of
/// `source` not in it yet, those `source` still holds.
fn read_copies(
    source: &rill_partition::Partition,
    offsets: impl Iterator<Item = i64>,
    found: &mut HashMap<i64, (Option<Bytes>, Option<Bytes>)>,
) {
    for offset in offsets {
        if found.contains_key(&offset) {
            continue;
        }
        let Ok(read) = source.read(
            Offset(offset),
            SOURCE_READ_BYTES,
            FetchIsolation::HighWatermark,
            true,
        ) else {
            continue;
        };
        for batch in Batches::new(&read.bytes) {
            if batch.attributes().is_control() {
                continue;
            }
            let Ok(data) = rill_record::records_data(&batch, SOURCE_READ_BYTES * 64) else {
                continue;
            };
            for record in Records::new(&data, batch.records_count()).flatten() {
                let at = batch
                    .base_offset()
                    .saturating_add(i64::from(record.offset_delta));
                found.entry(at).or_insert_with(|| {
                    (
                        record.key.map(Bytes::copy_from_slice),
                        record.value.map(Bytes::copy_from_slice),
                    )
                });
            }
        }
    }
}

/// `batch` as one idempotent record batch.
fn encode(
    batch: &DeadLetterBatch,
    source: &Source<'_>,
    copies: &HashMap<i64, (Option<Bytes>, Option<Bytes>)>,
) -> Result<Bytes, String> {
    let now = crate::apis::now_ms();
    let texts: Vec<[String; 3]> = batch
        .records
        .iter()
        .map(|a| {
            [
                source.partition.to_string(),
                a.offset.to_string(),
                a.delivery_count.to_string(),
            ]
        })
        .collect();
    let headers: Vec<[Header<'_>; 6]> = batch
        .records
        .iter()
        .zip(&texts)
        .map(|(a, [partition, offset, count])| {
            [
                (HEADER_TOPIC.as_bytes(), Some(source.topic.as_bytes())),
                (HEADER_PARTITION.as_bytes(), Some(partition.as_bytes())),
                (HEADER_OFFSET.as_bytes(), Some(offset.as_bytes())),
                (HEADER_GROUP.as_bytes(), Some(source.group.as_bytes())),
                (HEADER_DELIVERY_COUNT.as_bytes(), Some(count.as_bytes())),
                (
                    HEADER_MESSAGE.as_bytes(),
                    Some(message(a.reason).as_bytes()),
                ),
            ]
        })
        .collect();
    let records: Vec<NewRecord<'_>> = batch
        .records
        .iter()
        .zip(&headers)
        .map(|(a, headers)| {
            let (key, value) = copies
                .get(&a.offset)
                .map_or((None, None), |(k, v)| (k.as_deref(), v.as_deref()));
            NewRecord {
                timestamp: now,
                key,
                value,
                headers,
            }
        })
        .collect();
    BatchBuilder::new(now)
        .producer(batch.producer_id, 0, batch.base_sequence)
        .with_records(&records)
        .finish()
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// A record header to write: key and value.
type Header<'a> = (&'a [u8], Option<&'a [u8]>);

/// Kafka's `__dlq.errors.message` for each reason.
fn message(reason: ArchiveReason) -> &'static str {
    match reason {
        ArchiveReason::Rejected => "Offset rejected by client.",
        ArchiveReason::DeliveryLimit => "Offset delivery count exceeded the threshold.",
    }
}

/// Produces `records` (acks=all) to the dead-letter partition of source
/// partition `partition`. A repeat of the producer's last batch is
/// answered as written; so is an out-of-order answer, which only a batch
/// written before (and acknowledged, then forgotten by a crash before its
/// archiving was persisted) can get, since batches go one at a time.
async fn produce(
    broker: &Arc<Broker>,
    topic: &Topic,
    partition: i32,
    records: Bytes,
) -> Result<(), String> {
    let index = partition.rem_euclid(topic.partitions.max(1));
    let leader = broker
        .node()
        .metadata()
        .topics
        .get(&topic.name)
        .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
        .and_then(|p| p.leader)
        .ok_or_else(|| format!("{}-{index} has no leader", topic.name))?;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(index)
                        .with_records(Some(records)),
                ]),
        ]);
    let response: ProduceResponse = broker
        .shares()
        .states()
        .peers(broker)
        .call(broker, leader.0, (ApiKey::Produce, 9), &request)
        .await
        .map_err(|e| e.to_string())?;
    let answer = response
        .responses
        .into_iter()
        .flat_map(|t| t.partition_responses)
        .find(|p| p.index == index)
        .ok_or_else(|| {
            format!(
                "broker {} did not answer for {}-{index}",
                leader.0, topic.name
            )
        })?;
    match answer.error_code {
        0 => Ok(()),
        code if code == ResponseError::OutOfOrderSequenceNumber.code() => {
            tracing::warn!(
                topic = topic.name,
                partition = index,
                "a dead-letter batch was answered out of order: counted as written before"
            );
            Ok(())
        }
        code => Err(format!(
            "{}-{index}: {} {}",
            topic.name,
            crate::error_code::kafka_name(code),
            answer.error_message.as_deref().unwrap_or("")
        )),
    }
}

async fn persist(broker: &Arc<Broker>, key: &ShareKey, slot: &ShareSlot) -> Result<(), String> {
    SharePartitions::persist(broker, broker.shares().states(), (key, slot))
        .await
        .map_err(|e| e.to_string())
}
