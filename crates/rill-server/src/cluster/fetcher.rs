//! Followers fetching from leaders, the Kafka way: one task per leader
//! broker fetches every partition this broker follows there, with Fetch
//! requests carrying this broker's id as replica id. A partition that has
//! just started following (a new leader, or this broker back from a
//! restart) first asks the leader, with OffsetForLeaderEpoch, where its
//! latest epoch ends there, and truncates what the leader does not have.
//! Each response's batches are appended as the leader wrote them, made
//! durable under the topic's flush policy before the next fetch reports
//! them (so what the leader counts as replicated is on the follower's
//! disk under `fsync`), and the follower's high watermark follows the
//! leader's.
//!
//! Thread-safe: `Fetchers` is shared by the replica manager; each task
//! owns its connection.

use rill_cluster::Connector;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use rill_partition::{Partition, TopicPartition};
use rill_storage::Offset;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::peer::{PeerConnection, PeerError};
use crate::config::ClusterConfig;

/// The Fetch version followers send: topic names and replica_id (v13+
/// use topic ids, v15+ ReplicaState).
const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;

/// How long a request to the leader may take beyond its long poll.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One partition to follow.
#[derive(Clone, Debug)]
pub(crate) struct Follow {
    pub(crate) partition: Arc<Partition>,
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
}

/// A followed partition inside its fetcher.
#[derive(Clone, Debug)]
struct Followed {
    follow: Follow,
    /// Truncation by leader epoch is due before the next fetch.
    truncate_first: bool,
}

/// The partitions one fetcher task fetches from its leader.
#[derive(Debug, Default)]
struct Shared {
    partitions: Mutex<HashMap<TopicPartition, Followed>>,
    changed: Notify,
}

struct Fetcher {
    shared: Arc<Shared>,
    address: String,
    task: JoinHandle<()>,
}

/// Every fetcher of this broker, by leader. See the module doc.
pub(crate) struct Fetchers {
    node_id: i32,
    /// Opens the connections to leaders (TLS between nodes that speak it).
    connector: Connector,
    settings: Settings,
    fetchers: Mutex<HashMap<i32, Fetcher>>,
}

#[derive(Clone, Copy, Debug)]
struct Settings {
    wait_max_ms: i32,
    partition_bytes_max: i32,
    backoff: Duration,
}

impl Fetchers {
    pub(crate) fn new(node_id: i32, config: &ClusterConfig, connector: Connector) -> Fetchers {
        Fetchers {
            node_id,
            connector,
            settings: Settings {
                wait_max_ms: i32::try_from(config.replica_fetch_wait_max_ms).unwrap_or(i32::MAX),
                partition_bytes_max: config.replica_fetch_max_bytes,
                backoff: Duration::from_millis(config.replica_fetch_backoff_ms),
            },
            fetchers: Mutex::new(HashMap::new()),
        }
    }

    /// Starts following `follow.leader` at `address` for the partition
    /// (truncating first), moving it from any other fetcher.
    pub(crate) fn follow(&self, follow: Follow, address: String, stop: watch::Receiver<bool>) {
        let tp = follow.partition.topic_partition().clone();
        self.unfollow(&tp);
        let mut fetchers = self.fetchers.lock();
        let leader = follow.leader;
        if fetchers
            .get(&leader)
            .is_some_and(|f| f.address != address || f.task.is_finished())
            && let Some(old) = fetchers.remove(&leader)
        {
            old.task.abort();
        }
        let fetcher = fetchers.entry(leader).or_insert_with(|| {
            let shared = Arc::new(Shared::default());
            let task = tokio::spawn(run(
                Arc::clone(&shared),
                address.clone(),
                (self.node_id, self.connector.clone()),
                self.settings,
                stop,
            ));
            Fetcher {
                shared,
                address,
                task,
            }
        });
        fetcher.shared.partitions.lock().insert(
            tp,
            Followed {
                follow,
                truncate_first: true,
            },
        );
        fetcher.shared.changed.notify_one();
    }

    /// Stops fetching the partition, wherever it was fetched from.
    pub(crate) fn unfollow(&self, tp: &TopicPartition) {
        for fetcher in self.fetchers.lock().values() {
            if fetcher.shared.partitions.lock().remove(tp).is_some() {
                fetcher.shared.changed.notify_one();
            }
        }
    }

    pub(crate) async fn stop(&self) {
        let fetchers: Vec<Fetcher> = self.fetchers.lock().drain().map(|(_, f)| f).collect();
        for fetcher in fetchers {
            fetcher.task.abort();
            // Aborted: what it was doing is abandoned, which is safe (an
            // append is either whole or recovered away).
            let _ = fetcher.task.await;
        }
    }
}

/// One fetcher task: connects, truncates what needs it, fetches, repeats.
async fn run(
    shared: Arc<Shared>,
    address: String,
    (node_id, connector): (i32, Connector),
    settings: Settings,
    mut stop: watch::Receiver<bool>,
) {
    let mut connection: Option<PeerConnection> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let followed: Vec<Followed> = shared.partitions.lock().values().cloned().collect();
        if followed.is_empty() {
            connection = None;
            tokio::select! {
                () = shared.changed.notified() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        if connection.is_none() {
            let client_id = format!("rill-replica-{node_id}");
            match PeerConnection::connect(&connector, &address, client_id, 256 << 20).await {
                Ok(c) => connection = Some(c),
                Err(error) => {
                    tracing::debug!(%error, "cannot reach the leader");
                    tokio::time::sleep(settings.backoff).await;
                    continue;
                }
            }
        }
        let Some(peer) = connection.as_mut() else {
            continue;
        };
        let result = round(peer, &shared, &followed, node_id, settings).await;
        if let Err(error) = result {
            tracing::debug!(%error, leader = %peer.address(), "replica fetch failed");
            connection = None;
            tokio::time::sleep(settings.backoff).await;
        }
    }
}

/// One round: truncation of the partitions that need it, then one fetch.
async fn round(
    peer: &mut PeerConnection,
    shared: &Shared,
    followed: &[Followed],
    node_id: i32,
    settings: Settings,
) -> Result<(), PeerError> {
    let truncating: Vec<&Followed> = followed.iter().filter(|f| f.truncate_first).collect();
    if !truncating.is_empty() {
        truncate(peer, shared, &truncating, node_id).await?;
    }
    let fetching: Vec<&Followed> = followed.iter().filter(|f| !f.truncate_first).collect();
    if fetching.is_empty() {
        return Ok(());
    }
    let mut backoff = false;
    let request = fetch_request(&fetching, node_id, settings);
    let timeout = REQUEST_TIMEOUT + Duration::from_millis(settings.wait_max_ms.max(0) as u64);
    let response: FetchResponse = peer
        .call(ApiKey::Fetch, FETCH_VERSION, &request, timeout)
        .await?;
    let by_name: HashMap<(&str, i32), &Followed> = fetching
        .iter()
        .map(|f| {
            let tp = f.follow.partition.topic_partition();
            ((tp.topic.as_str(), tp.partition), *f)
        })
        .collect();
    let mut tickets = Vec::new();
    for topic in &response.responses {
        for data in &topic.partitions {
            let Some(followed) = by_name.get(&(topic.topic.as_str(), data.partition_index)) else {
                continue;
            };
            let partition = &followed.follow.partition;
            if data.error_code != 0 {
                let error = ResponseError::try_from_code(data.error_code);
                tracing::debug!(partition = %partition.topic_partition(), ?error, "the leader refused a replica fetch");
                match error {
                    Some(ResponseError::OffsetOutOfRange) => {
                        start_over_or_truncate(shared, partition, data.log_start_offset);
                    }
                    _ => backoff = true,
                }
                continue;
            }
            let Some(records) = &data.records else {
                continue;
            };
            match partition.append_replicated(records, rill_storage::now_ms()) {
                Ok(Some(ticket)) => {
                    tickets.push((Arc::clone(partition), ticket, data.high_watermark))
                }
                Ok(None) => set_high_watermark(partition, data.high_watermark),
                Err(error) => {
                    tracing::warn!(partition = %partition.topic_partition(), %error, "cannot append what the leader sent; truncating again");
                    mark_for_truncation(shared, partition.topic_partition());
                }
            }
        }
    }
    for (partition, ticket, high_watermark) in tickets {
        match ticket.await {
            Ok(_) => set_high_watermark(&partition, high_watermark),
            Err(failed) => {
                tracing::error!(partition = %partition.topic_partition(), %failed, "a replicated append could not be made durable");
                backoff = true;
            }
        }
    }
    if backoff {
        tokio::time::sleep(settings.backoff).await;
    }
    Ok(())
}

fn fetch_request(fetching: &[&Followed], node_id: i32, settings: Settings) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for followed in fetching {
        let partition = &followed.follow.partition;
        let tp = partition.topic_partition();
        let wanted = FetchPartition::default()
            .with_partition(tp.partition)
            .with_current_leader_epoch(followed.follow.leader_epoch)
            .with_fetch_offset(partition.log_end_offset().value())
            .with_last_fetched_epoch(partition.latest_epoch().unwrap_or(-1))
            .with_log_start_offset(partition.log_start_offset().value())
            .with_partition_max_bytes(settings.partition_bytes_max);
        match topics
            .iter_mut()
            .find(|t| t.topic.as_str() == tp.topic.as_str())
        {
            Some(topic) => topic.partitions.push(wanted),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(tp.topic.to_string())))
                    .with_partitions(vec![wanted]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(node_id))
        .with_max_wait_ms(settings.wait_max_ms)
        .with_min_bytes(1)
        .with_max_bytes(i32::MAX)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// A follower's high watermark: the leader's, but never past its own log.
fn set_high_watermark(partition: &Partition, leader_high_watermark: i64) {
    let high_watermark = Offset(leader_high_watermark).min(partition.log_end_offset());
    if high_watermark > partition.high_watermark() {
        partition.set_high_watermark(high_watermark);
    }
}

/// A fetch offset out of the leader's range: below its log start (its
/// retention or DeleteRecords went past everything this replica has),
/// the log starts over empty at the leader's log start, as Kafka's
/// follower does; otherwise it truncates again by leader epoch.
fn start_over_or_truncate(shared: &Shared, partition: &Partition, leader_log_start: i64) {
    let log_end = partition.log_end_offset();
    if leader_log_start >= 0 && log_end < Offset(leader_log_start) {
        tracing::info!(partition = %partition.topic_partition(), %log_end, leader_log_start,
            "behind the leader's log start: starting over there");
        match partition.truncate_fully_and_start_at(Offset(leader_log_start)) {
            Ok(()) => return,
            Err(error) => {
                tracing::error!(partition = %partition.topic_partition(), %error, "cannot start over");
            }
        }
    }
    mark_for_truncation(shared, partition.topic_partition());
}

fn mark_for_truncation(shared: &Shared, tp: &TopicPartition) {
    if let Some(followed) = shared.partitions.lock().get_mut(tp) {
        followed.truncate_first = true;
    }
}

/// Asks the leader where each partition's latest local epoch ends there
/// and truncates past it (KIP-101, KIP-279). A partition with no epoch
/// (empty, or older than epochs) truncates to its high watermark, which
/// the leader has.
async fn truncate(
    peer: &mut PeerConnection,
    shared: &Shared,
    truncating: &[&Followed],
    node_id: i32,
) -> Result<(), PeerError> {
    let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
    let mut without_epoch = Vec::new();
    for followed in truncating {
        let partition = &followed.follow.partition;
        let tp = partition.topic_partition();
        let Some(epoch) = partition.latest_epoch() else {
            without_epoch.push(*followed);
            continue;
        };
        let wanted = OffsetForLeaderPartition::default()
            .with_partition(tp.partition)
            .with_current_leader_epoch(followed.follow.leader_epoch)
            .with_leader_epoch(epoch);
        match topics
            .iter_mut()
            .find(|t| t.topic.as_str() == tp.topic.as_str())
        {
            Some(topic) => topic.partitions.push(wanted),
            None => topics.push(
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(tp.topic.to_string())))
                    .with_partitions(vec![wanted]),
            ),
        }
    }
    for followed in without_epoch {
        let partition = &followed.follow.partition;
        let to = partition.high_watermark();
        if to < partition.log_end_offset()
            && let Err(error) = partition.truncate_to(to)
        {
            tracing::error!(partition = %partition.topic_partition(), %error, "cannot truncate to the high watermark");
            continue;
        }
        truncated(shared, partition);
    }
    if topics.is_empty() {
        return Ok(());
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(node_id))
        .with_topics(topics);
    let response: OffsetForLeaderEpochResponse = peer
        .call(
            ApiKey::OffsetForLeaderEpoch,
            OFFSET_FOR_LEADER_EPOCH_VERSION,
            &request,
            REQUEST_TIMEOUT,
        )
        .await?;
    for topic in &response.topics {
        for result in &topic.partitions {
            let Some(followed) = truncating.iter().find(|f| {
                let tp = f.follow.partition.topic_partition();
                tp.topic.as_str() == topic.topic.as_str() && tp.partition == result.partition
            }) else {
                continue;
            };
            let partition = &followed.follow.partition;
            if result.error_code != 0 {
                tracing::debug!(partition = %partition.topic_partition(), code = result.error_code, "the leader cannot say where our epoch ends yet");
                continue;
            }
            let to = truncation_point(partition, result.leader_epoch, result.end_offset);
            if to < partition.log_end_offset() {
                tracing::info!(partition = %partition.topic_partition(), from = %partition.log_end_offset(), to = %to, "truncating what the leader does not have");
                if let Err(error) = partition.truncate_to(to) {
                    tracing::error!(partition = %partition.topic_partition(), %error, "cannot truncate");
                    continue;
                }
            }
            truncated(shared, partition);
        }
    }
    Ok(())
}

/// Where a follower truncates, given the leader's answer for its latest
/// epoch: the leader's end of that epoch, or, when the leader answered an
/// older epoch (it never had ours), the end of that epoch here if sooner.
fn truncation_point(partition: &Partition, leader_epoch: i32, end_offset: i64) -> Offset {
    let log_end = partition.log_end_offset();
    if leader_epoch < 0 || end_offset < 0 {
        // The leader knows no epoch at or below ours: keep what it has
        // acknowledged.
        return partition.high_watermark().min(log_end);
    }
    let mut to = Offset(end_offset).min(log_end);
    if Some(leader_epoch) != partition.latest_epoch() {
        let (_, local_end) = partition.end_offset_for_epoch(leader_epoch);
        to = to.min(local_end);
    }
    to
}

fn truncated(shared: &Shared, partition: &Partition) {
    if let Some(followed) = shared
        .partitions
        .lock()
        .get_mut(partition.topic_partition())
    {
        followed.truncate_first = false;
    }
}
