//! Fetch: whole batches up to the high watermark (the last stable offset
//! under read_committed, with the aborted transactions among what is
//! returned, so the client drops their records), bounded by max_bytes and
//! partition_max_bytes (KIP-74: the first batch is returned even if it is
//! larger). A long poll waits up to max_wait_ms for min_bytes, woken by
//! appends to the partitions it reads, not by polling.
//!
//! Only the leader serves a partition. A fetch with a replica id is a
//! follower's: it reads up to the log end, and its fetch
//! offset tells the leader how far the follower's log reaches (which
//! moves the high watermark and the ISR).
//!
//! Fetch sessions (KIP-227): Rill never creates one — it answers session
//! id 0, which tells clients to keep sending full fetch requests — and
//! answers FETCH_SESSION_ID_NOT_FOUND to a request naming a session.

mod response;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName,
};
use rill_cluster::QuotaKey;
use rill_partition::{FetchIsolation, TopicPartition};
use rill_storage::Offset;
use tokio::sync::Notify;
use uuid::Uuid;

use response::{TopicRecords, encode_fetch_response};

use super::{Body, HandlerError, Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;
use crate::quotas::Client;
use crate::session::Session;
use crate::shutdown::Shutdown;

/// Kafka's IsolationLevel.READ_COMMITTED.
const READ_COMMITTED: i8 = 1;

/// Who reads: a follower replica (by id), or a consumer with its isolation.
#[derive(Clone, Copy)]
enum Reader {
    Follower(i32),
    Consumer(FetchIsolation),
}

/// The longest long poll, whatever the client asks: a bound on how long a
/// request can hold its connection's queue.
const MAX_WAIT_MS_MAX: i32 = 30_000;

/// One partition a fetch reads.
struct Wanted {
    index: i32,
    fetch_offset: i64,
    partition_max_bytes: i32,
    current_leader_epoch: i32,
}

/// One topic a fetch reads: its name in the response, and the topic it
/// resolved to (None: unknown).
struct WantedTopic {
    name: TopicName,
    id: Uuid,
    resolved: Option<String>,
    /// Whether the principal may read it (a follower: whether it may
    /// replicate, CLUSTER_ACTION); if not, each of its partitions answers
    /// TOPIC_AUTHORIZATION_FAILED.
    authorized: bool,
    partitions: Vec<Wanted>,
}

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request, shutdown: Shutdown) -> Pending {
    let version = request.version();
    let fetch: FetchRequest = match request.decode() {
        Ok(fetch) => fetch,
        Err(error) => return ready(Err(error)),
    };
    if fetch.session_id != 0 {
        let response =
            FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
        return ready(encode(ApiKey::Fetch, version, &response));
    }
    let replica_id = if version >= 15 {
        fetch.replica_state.replica_id.0
    } else {
        fetch.replica_id.0
    };
    let follower = (replica_id >= 0).then_some(replica_id);
    let read_committed = fetch.isolation_level == READ_COMMITTED;
    // A fetch as a follower moves the high watermark: only the cluster's
    // own nodes (CLUSTER_ACTION) may send one.
    let access = Access::new(broker, &request.session);
    let may_replicate = follower.is_none() || access.allows_cluster(AclOperation::ClusterAction);
    let topics: Vec<WantedTopic> = fetch
        .topics
        .into_iter()
        .map(|topic| {
            let (resolved, asked) = if version >= 13 {
                let name = broker.topics().name_by_id(topic.topic_id);
                (name.clone(), name)
            } else {
                let name = topic.topic.to_string();
                (
                    Some(name.clone()).filter(|name| broker.topics().has_topic(name)),
                    Some(name),
                )
            };
            let authorized = match (follower, asked) {
                (Some(_), _) => may_replicate,
                (None, Some(name)) => access.allows(AclOperation::Read, ResourceType::Topic, &name),
                // An unknown id answers UNKNOWN_TOPIC_ID.
                (None, None) => true,
            };
            WantedTopic {
                name: topic.topic,
                id: topic.topic_id,
                resolved,
                authorized,
                partitions: topic
                    .partitions
                    .into_iter()
                    .map(|p| Wanted {
                        index: p.partition,
                        fetch_offset: p.fetch_offset,
                        partition_max_bytes: p.partition_max_bytes,
                        current_leader_epoch: p.current_leader_epoch,
                    })
                    .collect(),
            }
        })
        .collect();
    let broker = Arc::clone(broker);
    let max_wait = Duration::from_millis(fetch.max_wait_ms.clamp(0, MAX_WAIT_MS_MAX) as u64);
    let min_bytes = fetch.min_bytes.max(0) as usize;
    let mut max_bytes = if fetch.max_bytes > 0 {
        fetch.max_bytes as usize
    } else {
        usize::MAX
    };
    // A consumer's fetches count against its consumer_byte_rate, when
    // quotas are set (or the connection charged a request throttle); a
    // follower's do not (Kafka has replication quotas for those).
    let metadata = broker.node().metadata();
    let metered = !metadata.client_quotas.is_empty() || request.throttle_ms > 0;
    let consumer = (follower.is_none() && metered).then(|| Consumer {
        session: Arc::clone(&request.session),
        client_id: request.client_id(),
        request_throttle_ms: request.throttle_ms,
    });
    if let Some(consumer) = &consumer {
        // No more at once than the quota allows over its whole window.
        if let Some(window_max) = broker.quotas().max_in_window(
            &metadata.client_quotas,
            QuotaKey::ConsumerByteRate,
            consumer.client(),
        ) {
            max_bytes = max_bytes.min(window_max as usize);
        }
    }
    let reader = match follower {
        Some(follower) => Reader::Follower(follower),
        None if read_committed => Reader::Consumer(FetchIsolation::TxnCommitted),
        None => Reader::Consumer(FetchIsolation::HighWatermark),
    };
    Box::pin(async move {
        let deadline = tokio::time::Instant::now() + max_wait;
        let woken = Arc::new(Notify::new());
        let mut shutdown = shutdown;
        loop {
            // Register before reading, so an append in between still wakes us.
            for topic in &topics {
                if let Some(name) = &topic.resolved {
                    for wanted in &topic.partitions {
                        broker
                            .waiters()
                            .register(&TopicPartition::new(name, wanted.index), &woken);
                    }
                }
            }
            let read = read_all(&broker, &topics, (max_bytes, reader), version);
            let done = read.bytes >= min_bytes
                || read.any_error
                || tokio::time::Instant::now() >= deadline;
            if done {
                return respond(&broker, consumer.as_ref(), read, version);
            }
            tokio::select! {
                () = woken.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
                () = shutdown.wait() => {
                    let read = read_all(&broker, &topics, (max_bytes, reader), version);
                    return respond(&broker, consumer.as_ref(), read, version);
                }
            }
        }
    })
}

/// A consumer's fetch, for its quotas.
struct Consumer {
    session: Arc<Session>,
    client_id: String,
    /// The request-time throttle the connection charged.
    request_throttle_ms: u64,
}

impl Consumer {
    fn client(&self) -> Client<'_> {
        Client::new(&self.session, &self.client_id)
    }
}

/// The fetch's response: what was read, unless the consumer's quotas
/// throttle it — then, as Kafka does, an empty response carrying the
/// throttle time, the bytes not counted, and the connection held.
fn respond(
    broker: &Broker,
    consumer: Option<&Consumer>,
    read: ReadAll,
    version: i16,
) -> Result<Option<Body>, HandlerError> {
    let throttle_ms = match consumer {
        None => 0,
        Some(consumer) => {
            let metadata = broker.node().metadata();
            let (quotas, client) = (&metadata.client_quotas, consumer.client());
            let bytes = read.bytes as f64;
            let key = QuotaKey::ConsumerByteRate;
            let throttle_ms = broker
                .quotas()
                .record(quotas, key, client, bytes)
                .max(consumer.request_throttle_ms);
            if throttle_ms > 0 {
                broker.quotas().record_only(quotas, key, client, -bytes);
                consumer.session.throttle(throttle_ms);
                broker.metrics().throttled("Fetch", throttle_ms);
            }
            throttle_ms
        }
    };
    if throttle_ms == 0 {
        for (topic, bytes) in &read.bytes_by_topic {
            broker.metrics().fetched(topic, *bytes as u64);
        }
        return encode_fetch_response(&FetchResponse::default(), read.topics, version).map(Some);
    }
    let response = FetchResponse::default()
        .with_throttle_time_ms(i32::try_from(throttle_ms).unwrap_or(i32::MAX));
    encode_fetch_response(&response, Vec::new(), version).map(Some)
}

struct ReadAll {
    topics: Vec<TopicRecords>,
    bytes: usize,
    /// The bytes of records read of each topic, by name, for the metrics.
    bytes_by_topic: Vec<(String, usize)>,
    any_error: bool,
}

/// Reads every wanted partition, for a consumer or a follower replica.
fn read_all(
    broker: &Broker,
    topics: &[WantedTopic],
    (max_bytes, reader): (usize, Reader),
    version: i16,
) -> ReadAll {
    let mut total = 0usize;
    let mut any_error = false;
    let mut out = Vec::with_capacity(topics.len());
    let mut bytes_by_topic = Vec::new();
    for topic in topics {
        let before = total;
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in &topic.partitions {
            let (data, records) = read_partition(
                broker,
                (topic, wanted),
                max_bytes.saturating_sub(total),
                (total == 0, reader),
                version,
            );
            any_error |= data.error_code != 0;
            total += records.len();
            partitions.push((data, records));
        }
        if let (Some(name), true) = (&topic.resolved, total > before) {
            bytes_by_topic.push((name.clone(), total - before));
        }
        let mut response_topic = FetchableTopicResponse::default();
        if version >= 13 {
            response_topic = response_topic.with_topic_id(topic.id);
        } else {
            response_topic = response_topic.with_topic(topic.name.clone());
        }
        out.push(TopicRecords {
            topic: response_topic,
            partitions,
        });
    }
    ReadAll {
        topics: out,
        bytes: total,
        bytes_by_topic,
        any_error,
    }
}

fn read_partition(
    broker: &Broker,
    (topic, wanted): (&WantedTopic, &Wanted),
    bytes_left: usize,
    (first, reader): (bool, Reader),
    version: i16,
) -> (PartitionData, Bytes) {
    let mut data = PartitionData::default()
        .with_partition_index(wanted.index)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1);
    if version >= 11 {
        data = data.with_preferred_read_replica(BrokerId(-1));
    }
    let unknown = if version >= 13 {
        ResponseError::UnknownTopicId
    } else {
        ResponseError::UnknownTopicOrPartition
    };
    if !topic.authorized {
        let refused = ResponseError::TopicAuthorizationFailed;
        return (data.with_error_code(refused.code()), Bytes::new());
    }
    let Some(name) = &topic.resolved else {
        return (data.with_error_code(unknown.code()), Bytes::new());
    };
    let tp = TopicPartition::new(name, wanted.index);
    let partition = match broker.leader_partition(&tp, wanted.current_leader_epoch) {
        Ok((partition, _)) => partition,
        Err(error) => {
            return (
                data.with_error_code(error_code::for_leadership(error).code()),
                Bytes::new(),
            );
        }
    };
    let isolation = match reader {
        Reader::Follower(follower) => {
            let fetch_offset = Offset(wanted.fetch_offset);
            let in_log =
                (partition.log_start_offset()..=partition.log_end_offset()).contains(&fetch_offset);
            if in_log
                && !broker
                    .replicas()
                    .follower_fetched(&partition, follower, fetch_offset)
            {
                return (
                    data.with_error_code(ResponseError::NotLeaderOrFollower.code()),
                    Bytes::new(),
                );
            }
            FetchIsolation::LogEnd
        }
        Reader::Consumer(isolation) => isolation,
    };
    data = data
        .with_high_watermark(partition.high_watermark().value())
        .with_last_stable_offset(partition.last_stable_offset().value())
        .with_log_start_offset(partition.log_start_offset().value());
    let max = (wanted.partition_max_bytes.max(0) as usize).min(bytes_left);
    let from = Offset(wanted.fetch_offset);
    match partition.read(from, max, isolation, first) {
        Ok(read) if isolation == FetchIsolation::TxnCommitted => {
            let end = rill_record::Batches::new(&read.bytes)
                .last()
                .map_or(from, |last| Offset(last.next_offset()));
            let aborted = partition
                .aborted_transactions(from, end)
                .into_iter()
                .map(|txn| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(txn.producer_id))
                        .with_first_offset(txn.first_offset.value())
                })
                .collect();
            (data.with_aborted_transactions(Some(aborted)), read.bytes)
        }
        Ok(read) => (data, read.bytes),
        Err(error) => (
            data.with_error_code(error_code::for_read(&error).code()),
            Bytes::new(),
        ),
    }
}
