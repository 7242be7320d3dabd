//! The message browser (`GET /api/topics/{name}/messages`: a page of
//! records from an offset, a time, the beginning or the end) and producing
//! a test message (`POST`), through the partitions' leaders.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rill_record::{BatchBuilder, Batches, NewRecord, Records, records_data};
use serde::{Deserialize, Serialize};

use super::Console;
use super::kafka::{Kafka, check};
use super::partitions::{self, EARLIEST, LATEST, Partition};
use super::reply::{ApiError, Reply};
use crate::broker::Broker;

/// The most messages one page holds.
const PAGE_MAX: usize = 500;
/// The most bytes of one payload returned.
const PAYLOAD_SHOWN_MAX: usize = 64 << 10;
/// The most bytes read from one partition for a page (a larger first
/// batch still comes whole, KIP-74).
const PARTITION_FETCH_BYTES: i32 = 1 << 20;
/// The most bytes one fetch response may hold, below the client's limit
/// on what it reads (kafka.rs): a page of every partition of a wide topic
/// gets the first partitions' records, not an error.
const FETCH_BYTES_MAX: i32 = 32 << 20;
/// The most bytes one batch may expand to.
const BATCH_EXPANDED_MAX: usize = 64 << 20;
/// How long a test message is retried while leadership moves (the
/// producer's `delivery.timeout.ms`, shortened for a person waiting).
const PRODUCE_RETRY_FOR: Duration = Duration::from_secs(10);
/// The wait between those tries (the producer's `retry.backoff.ms`).
const PRODUCE_RETRY_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Deserialize)]
pub(crate) struct BrowseQuery {
    partition: Option<i32>,
    offset: Option<i64>,
    timestamp: Option<i64>,
    position: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
pub(crate) struct MessagePage {
    messages: Vec<Message>,
}

#[derive(Serialize)]
struct Message {
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<Payload>,
    value: Option<Payload>,
    headers: Vec<HeaderView>,
}

#[derive(Serialize)]
struct HeaderView {
    key: String,
    value: Option<Payload>,
}

/// A key, value or header value as the page shows it: JSON, text (UTF-8
/// without control characters other than white space), or else hex.
#[derive(Serialize, Debug, PartialEq)]
struct Payload {
    encoding: &'static str,
    data: String,
    size: usize,
}

impl Payload {
    fn of(bytes: &[u8]) -> Payload {
        let shown = &bytes[..bytes.len().min(PAYLOAD_SHOWN_MAX)];
        let text = std::str::from_utf8(shown)
            .ok()
            .filter(|text| !text.chars().any(|c| c.is_control() && !c.is_whitespace()));
        match text {
            Some(text) => {
                let json = shown.len() == bytes.len()
                    && serde_json::from_str::<serde_json::Value>(text).is_ok();
                Payload {
                    encoding: if json { "json" } else { "text" },
                    data: text.to_string(),
                    size: bytes.len(),
                }
            }
            None => Payload {
                encoding: "binary",
                data: shown.iter().map(|b| format!("{b:02x}")).collect(),
                size: bytes.len(),
            },
        }
    }
}

/// Where each partition's page starts.
enum Start {
    Offset(i64),
    Timestamp(i64),
    Beginning,
    End,
}

pub(crate) async fn browse(
    State(console): State<Console>,
    Path(name): Path<String>,
    Query(query): Query<BrowseQuery>,
) -> Reply<MessagePage> {
    let (broker, kafka) = console.client()?;
    let limit = query.limit.unwrap_or(50).clamp(1, PAGE_MAX);
    let start = match (query.offset, query.timestamp, query.position.as_deref()) {
        (Some(offset), None, None) => Start::Offset(offset),
        // ListOffsets reads negative times as its special positions.
        (None, Some(timestamp), None) if timestamp >= 0 => Start::Timestamp(timestamp),
        (None, None, None | Some("beginning")) => Start::Beginning,
        (None, None, Some("end")) => Start::End,
        _ => {
            return Err(ApiError::bad_request(
                "give one of offset, timestamp (ms since the epoch), or position=beginning|end",
            ));
        }
    };
    let wanted = partitions_of(&broker, &name, query.partition)?;
    let earliest = partitions::offsets(&broker, kafka, &wanted, EARLIEST).await;
    let latest = partitions::offsets(&broker, kafka, &wanted, LATEST).await;
    let at_time = match start {
        Start::Timestamp(t) => partitions::offsets(&broker, kafka, &wanted, t).await,
        _ => HashMap::new(),
    };
    let mut from = Vec::new();
    for partition in &wanted {
        let (Some(&first), Some(&end)) = (earliest.get(partition), latest.get(partition)) else {
            continue;
        };
        let offset = match start {
            // Not clamp, which panics if the start read is past the end.
            Start::Offset(offset) => offset.max(first).min(end),
            Start::Timestamp(_) => match at_time.get(partition) {
                Some(&found) if found >= 0 => found,
                _ => end,
            },
            Start::Beginning => first,
            Start::End => (end - i64::try_from(limit).unwrap_or(i64::MAX)).max(first),
        };
        if offset < end {
            from.push((partition.clone(), offset));
        }
    }
    let mut messages = fetch(&broker, kafka, &from, limit).await?;
    messages.sort_by_key(|m| (m.timestamp, m.partition, m.offset));
    if matches!(start, Start::End) {
        let skip = messages.len().saturating_sub(limit);
        messages.drain(..skip);
    } else {
        messages.truncate(limit);
    }
    Ok(Json(MessagePage { messages }))
}

/// `partition` of `topic`, or all of them; 404 for a topic or partition
/// that does not exist.
fn partitions_of(
    broker: &Broker,
    topic: &str,
    partition: Option<i32>,
) -> Result<Vec<Partition>, ApiError> {
    let metadata = broker.node().metadata();
    let count = metadata
        .topics
        .get(topic)
        .map(|t| t.partitions.len())
        .ok_or_else(|| ApiError::not_found(format!("no topic {topic}")))?;
    let count = i32::try_from(count).unwrap_or(i32::MAX);
    match partition {
        Some(p) if (0..count).contains(&p) => Ok(vec![(topic.to_string(), p)]),
        Some(p) => Err(ApiError::not_found(format!(
            "{topic} has no partition {p} (it has {count})"
        ))),
        None => Ok((0..count).map(|p| (topic.to_string(), p)).collect()),
    }
}

/// Up to `limit` records of each partition from its offset, asking each
/// leader once.
async fn fetch(
    broker: &Broker,
    kafka: &Kafka,
    from: &[(Partition, i64)],
    limit: usize,
) -> Result<Vec<Message>, ApiError> {
    let offsets: HashMap<&Partition, i64> = from.iter().map(|(p, o)| (p, *o)).collect();
    let partitions: Vec<Partition> = from.iter().map(|(p, _)| p.clone()).collect();
    let mut messages = Vec::new();
    for (leader, led) in partitions::by_leader(broker, &partitions) {
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for partition in &led {
            topics.entry(&partition.0).or_default().push(
                FetchPartition::default()
                    .with_partition(partition.1)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(offsets[partition])
                    .with_log_start_offset(-1)
                    .with_last_fetched_epoch(-1)
                    .with_partition_max_bytes(PARTITION_FETCH_BYTES),
            );
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(FETCH_BYTES_MAX)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(name.to_string())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let answer: FetchResponse = kafka
            .call(broker, leader, (ApiKey::Fetch, 12), &request)
            .await?;
        check(answer.error_code, None).map_err(ApiError::unavailable)?;
        for topic in answer.responses {
            let name = topic.topic.0.to_string();
            for data in topic.partitions {
                check(data.error_code, None).map_err(|e| {
                    ApiError::unavailable(format!("{name}-{}: {e}", data.partition_index))
                })?;
                let from = offsets
                    .get(&(name.clone(), data.partition_index))
                    .copied()
                    .unwrap_or(0);
                let records = data.records.unwrap_or_default();
                decode(&records, data.partition_index, from, limit, &mut messages).map_err(
                    |e| ApiError::unavailable(format!("{name}-{}: {e}", data.partition_index)),
                )?;
            }
        }
    }
    Ok(messages)
}

/// Adds the records of `partition` in `records` from offset `from` on, at
/// most `limit`, skipping control batches (transaction markers).
fn decode(
    records: &Bytes,
    partition: i32,
    from: i64,
    limit: usize,
    messages: &mut Vec<Message>,
) -> Result<(), String> {
    let mut taken = 0;
    for batch in Batches::new(records) {
        if batch.attributes().is_control() {
            continue;
        }
        let data = records_data(&batch, BATCH_EXPANDED_MAX).map_err(|e| e.to_string())?;
        for record in Records::new(&data, batch.records_count()) {
            let record = record.map_err(|e| e.to_string())?;
            let offset = batch
                .base_offset()
                .saturating_add(i64::from(record.offset_delta));
            if offset < from {
                continue;
            }
            if taken == limit {
                return Ok(());
            }
            taken += 1;
            messages.push(Message {
                partition,
                offset,
                timestamp: batch.record_timestamp(record.timestamp_delta),
                key: record.key.map(Payload::of),
                value: record.value.map(Payload::of),
                headers: record
                    .headers()
                    .map(|h| HeaderView {
                        key: String::from_utf8_lossy(h.key).into_owned(),
                        value: h.value.map(Payload::of),
                    })
                    .collect(),
            });
        }
    }
    Ok(())
}

#[derive(Deserialize)]
pub(crate) struct NewMessage {
    partition: Option<i32>,
    key: Option<String>,
    value: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub(crate) struct Produced {
    partition: i32,
    offset: i64,
}

pub(crate) async fn produce(
    State(console): State<Console>,
    Path(name): Path<String>,
    Json(message): Json<NewMessage>,
) -> Reply<Produced> {
    let (broker, kafka) = console.client()?;
    let count = partitions_of(&broker, &name, None)?.len();
    let count = i32::try_from(count).unwrap_or(i32::MAX);
    let partition = match (message.partition, &message.key) {
        (Some(p), _) => partitions_of(&broker, &name, Some(p))?[0].1,
        (None, Some(key)) => partition_for_key(key.as_bytes(), count),
        (None, None) => random_below(count),
    };
    let now = crate::apis::now_ms();
    let headers: Vec<(&[u8], Option<&[u8]>)> = message
        .headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), Some(v.as_bytes())))
        .collect();
    let record = NewRecord {
        timestamp: now,
        key: message.key.as_deref().map(str::as_bytes),
        value: message.value.as_deref().map(str::as_bytes),
        headers: &headers,
    };
    let batch = BatchBuilder::new(now)
        .with_records(&[record])
        .finish()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(name.clone())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    let target = (name.clone(), partition);
    // As a Kafka producer does, an answer that says the record was not
    // written because leadership is moving (a topic just made, a leader
    // just failed) is retried against the leader metadata names next.
    let deadline = tokio::time::Instant::now() + PRODUCE_RETRY_FOR;
    let written = loop {
        let leader = partitions::by_leader(&broker, std::slice::from_ref(&target))
            .into_keys()
            .next();
        let answer = match leader {
            Some(leader) => {
                let answer: ProduceResponse = kafka
                    .call(&broker, leader, (ApiKey::Produce, 9), &request)
                    .await?;
                answer
                    .responses
                    .into_iter()
                    .flat_map(|t| t.partition_responses)
                    .find(|p| p.index == partition)
                    .ok_or_else(|| {
                        ApiError::unavailable("the leader did not answer for the partition")
                    })?
            }
            None => PartitionProduceResponse::default()
                .with_index(partition)
                .with_error_code(ResponseError::LeaderNotAvailable.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "{name}-{partition} has no leader"
                )))),
        };
        if !not_written_while_leadership_moves(answer.error_code)
            || tokio::time::Instant::now() >= deadline
        {
            break answer;
        }
        tokio::time::sleep(PRODUCE_RETRY_BACKOFF).await;
    };
    check(written.error_code, written.error_message.as_deref()).map_err(ApiError::bad_request)?;
    Ok(Json(Produced {
        partition,
        offset: written.base_offset,
    }))
}

/// Whether a produce answer with `code` says the leader did not write the
/// record because this broker's idea of the leader is stale, so that
/// sending it again cannot write it twice.
fn not_written_while_leadership_moves(code: i16) -> bool {
    [
        ResponseError::NotLeaderOrFollower,
        ResponseError::LeaderNotAvailable,
        ResponseError::UnknownTopicOrPartition,
    ]
    .iter()
    .any(|e| e.code() == code)
}

/// The partition Kafka's default partitioner picks for `key`: murmur2 of
/// the key, made positive, modulo the partition count.
fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

fn random_below(partitions: i32) -> i32 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 0;
    }
    (i32::from_le_bytes(bytes) & 0x7fff_ffff) % partitions.max(1)
}

/// Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2).
fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Kafka's UtilsTest.testMurmur2.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), expected, "{input}");
        }
    }

    #[test]
    fn payloads_are_json_text_or_hex() {
        assert_eq!(Payload::of(br#"{"a": 1}"#).encoding, "json");
        assert_eq!(Payload::of(b"plain text").encoding, "text");
        let binary = Payload::of(&[0xff, 0x00, 0x10]);
        assert_eq!(
            (binary.encoding, binary.data.as_str()),
            ("binary", "ff0010")
        );
        // Valid UTF-8, but control characters: not text a person reads.
        assert_eq!(Payload::of(&[0x00, 0x01, 0x41]).encoding, "binary");
        assert_eq!(Payload::of(b"two\nlines\t").encoding, "text");
        let big = vec![b'x'; PAYLOAD_SHOWN_MAX + 1];
        let shown = Payload::of(&big);
        assert_eq!(
            (shown.data.len(), shown.size),
            (PAYLOAD_SHOWN_MAX, big.len())
        );
    }
}
