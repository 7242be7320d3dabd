//! The group coordinator inside the broker: rill-group's state machine and
//! offset store behind one mutex, fed with requests and the clock; the
//! records they ask to persist appended to `__consumer_offsets` (the
//! partition Kafka's hash of the group id picks); their delayed JoinGroup
//! and SyncGroup answers delivered through channels once what they depend
//! on is acknowledged. At start-up the topic is read back to rebuild both.
//!
//! In a cluster, a broker coordinates the groups whose partition of
//! `__consumer_offsets` it leads: it loads those partitions when it
//! becomes their leader (rebuilt whole: see `ReplicaManager`), and
//! answers NOT_COORDINATOR for the other groups.
//!
//! Thread-safe. The mutex is held for state changes and appends (page-cache
//! writes), never across a wait for fsync.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rill_group::{
    ExpiryCondition, GroupCoordinator, GroupMetadataKey, GroupMetadataSnapshot, GroupState,
    JoinGroupResponse, OffsetStore, OffsetsTopicRecord, Output, RequestToken, SyncGroupResponse,
    offsets_batch, partition_for, read_offsets_batches,
};
use rill_partition::{FetchIsolation, Partition, TopicPartition};
use rill_storage::Offset;
use tokio::sync::{Notify, oneshot};

use crate::apis::now_ms;
use crate::broker::Broker;

/// The internal topic of committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How long an answer waits for its records to be acknowledged before the
/// coordinator reports itself unavailable.
const PERSIST_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes read per step while loading the offsets topic.
const LOAD_READ_BYTES: usize = 4 << 20;

/// Records appended to `__consumer_offsets` that an answer waits for: the
/// partition and the offset its high watermark must reach.
#[derive(Clone, Debug)]
pub(crate) struct Persisted {
    partition: Arc<Partition>,
    end: Offset,
}

impl Persisted {
    /// The log end offset right after the append.
    pub(crate) fn end(&self) -> Offset {
        self.end
    }
}

/// An OffsetCommit request in plain terms.
pub(crate) struct OffsetCommit<'a> {
    pub group: &'a str,
    pub member_id: &'a str,
    pub generation_id: i32,
    pub group_instance_id: Option<&'a str>,
    pub offsets: &'a [rill_group::OffsetToCommit],
}

/// What [`Groups::commit_offsets`] did.
pub(crate) enum CommitOutcome {
    /// The member or generation was refused: every partition gets this.
    Refused(rill_group::GroupError),
    /// The append failed: every partition gets a storage error.
    Failed { message: String },
    /// Per partition, `None` or the reason it was refused.
    Appended {
        per_partition: Vec<Option<rill_group::OffsetStoreError>>,
        records: Vec<OffsetsTopicRecord>,
        persisted: Option<Persisted>,
    },
}

type JoinWaiter = oneshot::Sender<(JoinGroupResponse, Option<Persisted>)>;
type SyncWaiter = oneshot::Sender<(SyncGroupResponse, Option<Persisted>)>;

#[derive(Debug)]
struct Inner {
    coordinator: GroupCoordinator,
    offsets: OffsetStore,
    next_token: RequestToken,
    joins: HashMap<RequestToken, JoinWaiter>,
    syncs: HashMap<RequestToken, (String, SyncWaiter)>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Groups {
    inner: Mutex<Inner>,
    /// Wakes the timer task when a call may have moved the next deadline.
    timer: Arc<Notify>,
    partitions: i32,
    /// The offsets partitions this coordinator loaded and serves; `None`:
    /// every one (a single broker).
    led: Option<BTreeSet<i32>>,
}

/// Why the offsets topic could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("partition {partition} of {OFFSETS_TOPIC} is missing")]
    MissingPartition { partition: i32 },
    #[error("cannot read {OFFSETS_TOPIC}-{partition} at offset {offset}: {message}")]
    Read {
        partition: i32,
        offset: i64,
        message: String,
    },
}

impl Groups {
    /// Rebuilds the coordinator from the offsets topic's `partitions`
    /// partitions (which must exist) — only those in `led` if given, read
    /// to their log end (what a new leader's log holds is what its
    /// followers will hold) — then serves.
    pub(crate) fn load(
        broker: &Broker,
        config: rill_group::GroupConfig,
        partitions: i32,
        led: Option<BTreeSet<i32>>,
    ) -> Result<Groups, LoadError> {
        let seed = now_ms() as u64 ^ u64::from(std::process::id());
        let mut coordinator = GroupCoordinator::new(config, seed);
        let mut offsets = OffsetStore::default();
        let now = now_ms();
        let mut records = 0usize;
        let isolation = if led.is_some() {
            FetchIsolation::LogEnd
        } else {
            FetchIsolation::HighWatermark
        };
        for index in 0..partitions {
            if led.as_ref().is_some_and(|led| !led.contains(&index)) {
                continue;
            }
            let partition = broker
                .partition(&TopicPartition::new(OFFSETS_TOPIC, index))
                .ok_or(LoadError::MissingPartition { partition: index })?;
            let mut next = partition.log_start_offset();
            let end = match isolation {
                FetchIsolation::LogEnd => partition.log_end_offset(),
                FetchIsolation::HighWatermark => partition.high_watermark(),
            };
            while next < end {
                let failed = |message: String| LoadError::Read {
                    partition: index,
                    offset: next.value(),
                    message,
                };
                let read = partition
                    .read(next, LOAD_READ_BYTES, isolation, true)
                    .map_err(|e| failed(e.to_string()))?;
                let Some(last) = rill_record::Batches::new(&read.bytes).last() else {
                    break;
                };
                let loaded = read_offsets_batches(&read.bytes, LOAD_READ_BYTES)
                    .map_err(|e| failed(e.to_string()))?;
                for record in loaded.records {
                    records += 1;
                    match record.record {
                        OffsetsTopicRecord::GroupMetadata { key, value: None } => {
                            coordinator.restore_tombstone(&key.group);
                        }
                        OffsetsTopicRecord::GroupMetadata {
                            key,
                            value: Some(value),
                        } => {
                            let snapshot =
                                GroupMetadataSnapshot::from_value(key.group.clone(), value, now);
                            if let Err(error) = coordinator.restore(snapshot, now) {
                                tracing::warn!(group = %key.group, %error, "skipping unreadable group metadata");
                            }
                        }
                        offset => offsets.replay(offset),
                    }
                }
                let after = Offset(last.next_offset());
                if after <= next {
                    // Bytes from disk: never loop on a batch that does not move on.
                    return Err(failed(format!("a batch ends at {after}, not past {next}")));
                }
                next = after;
            }
        }
        let groups: Vec<String> = offsets.groups().map(str::to_owned).collect();
        for group in groups {
            coordinator.ensure_group(&group, now);
        }
        coordinator.finish_loading();
        // Loading restores state only; anything it emitted is already on disk.
        let _ = coordinator.take_outputs(); // Nothing to answer or persist yet.
        tracing::info!(partitions, records, "loaded consumer groups");
        Ok(Groups {
            inner: Mutex::new(Inner {
                coordinator,
                offsets,
                next_token: 0,
                joins: HashMap::new(),
                syncs: HashMap::new(),
            }),
            timer: Arc::new(Notify::new()),
            partitions,
            led,
        })
    }

    /// Whether this coordinator serves `group`.
    pub(crate) fn coordinates(&self, group: &str) -> bool {
        self.led
            .as_ref()
            .is_none_or(|led| led.contains(&partition_for(group, self.partitions)))
    }

    /// Wakes the timer task (which then looks for the current coordinator).
    pub(crate) fn wake_timers(&self) {
        self.timer.notify_one();
    }

    /// Runs `call` on the coordinator, then appends what it asks to persist
    /// and delivers the answers it produced.
    pub(crate) fn with_coordinator<T>(
        &self,
        broker: &Arc<Broker>,
        call: impl FnOnce(&mut GroupCoordinator, &mut OffsetStore, i64) -> T,
    ) -> T {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let result = call(&mut inner.coordinator, &mut inner.offsets, now_ms());
        self.drain(broker, inner);
        self.timer.notify_one();
        result
    }

    /// JoinGroup: the answer arrives when the rebalance completes.
    pub(crate) fn join(
        &self,
        broker: &Arc<Broker>,
        request: rill_group::JoinGroupRequest,
    ) -> oneshot::Receiver<(JoinGroupResponse, Option<Persisted>)> {
        let (sender, receiver) = oneshot::channel();
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let token = inner.next_token;
        inner.next_token += 1;
        inner.joins.insert(token, sender);
        inner.coordinator.join_group(token, request, now_ms());
        self.drain(broker, inner);
        self.timer.notify_one();
        receiver
    }

    /// SyncGroup: the answer arrives when the leader's assignment does,
    /// after the group's metadata is persisted.
    pub(crate) fn sync(
        &self,
        broker: &Arc<Broker>,
        request: rill_group::SyncGroupRequest,
    ) -> oneshot::Receiver<(SyncGroupResponse, Option<Persisted>)> {
        let (sender, receiver) = oneshot::channel();
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let token = inner.next_token;
        inner.next_token += 1;
        inner
            .syncs
            .insert(token, (request.group_id.clone(), sender));
        inner.coordinator.sync_group(token, request, now_ms());
        self.drain(broker, inner);
        self.timer.notify_one();
        receiver
    }

    /// OffsetCommit: checks the member and generation, then appends the
    /// commits (in one batch, in the order they are checked). Returns one
    /// result per partition, the records to complete once acknowledged,
    /// and what to wait for.
    pub(crate) fn commit_offsets(
        &self,
        broker: &Arc<Broker>,
        commit: &OffsetCommit<'_>,
    ) -> CommitOutcome {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let now = now_ms();
        if let Err(error) = inner.coordinator.validate_offset_commit(
            commit.group,
            commit.member_id,
            commit.generation_id,
            commit.group_instance_id,
            now,
        ) {
            return CommitOutcome::Refused(error);
        }
        // A commit outside a generation makes the group known, as in Kafka.
        inner.coordinator.ensure_group(commit.group, now);
        let results = inner.offsets.commit(commit.group, commit.offsets, now);
        let records: Vec<OffsetsTopicRecord> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let per_partition = results.into_iter().map(|r| r.err()).collect();
        match self.persist(broker, commit.group, &records) {
            Ok(persisted) => CommitOutcome::Appended {
                per_partition,
                records,
                persisted,
            },
            Err(message) => {
                inner.offsets.abort(&records);
                CommitOutcome::Failed { message }
            }
        }
    }

    /// Makes acknowledged commits (or deletions) visible, or, if the
    /// append was not acknowledged, forgets them.
    /// `position`: where the append of `records` ended (see
    /// [`Persisted::end`]), which orders completions as the log does.
    pub(crate) fn finish_commit(
        &self,
        records: Vec<OffsetsTopicRecord>,
        acknowledged: bool,
        position: Option<Offset>,
    ) {
        let mut inner = self.inner.lock();
        if acknowledged {
            match position {
                Some(end) => inner
                    .offsets
                    .complete_at(records, u64::try_from(end.value()).unwrap_or(0)),
                None => inner.offsets.complete(records),
            }
        } else {
            inner.offsets.abort(&records);
        }
    }

    /// Expires offsets as offsets.retention.minutes says (KIP-211): a
    /// standalone group's by commit time, an Empty group's from when it
    /// became Empty; an Empty group left without offsets is deleted.
    /// Returns how many offsets expired.
    pub(crate) fn expire_offsets(&self, broker: &Arc<Broker>, retention_ms: i64) -> usize {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let now = now_ms();
        let coordinator = &inner.coordinator;
        let expired = inner.offsets.expire(now, retention_ms, |group| {
            match coordinator.group_overview(group) {
                None => ExpiryCondition::Standalone,
                Some(o) if o.protocol_type.as_deref().is_none_or(str::is_empty) => {
                    ExpiryCondition::Standalone
                }
                Some(o) if o.state == GroupState::Empty => ExpiryCondition::Empty {
                    empty_since_ms: Some(o.state_timestamp_ms),
                },
                Some(_) => ExpiryCondition::Never,
            }
        });
        let count = expired.len();
        let mut by_group: HashMap<String, Vec<OffsetsTopicRecord>> = HashMap::new();
        for record in expired {
            by_group
                .entry(record.group().to_owned())
                .or_default()
                .push(record);
        }
        for (group, records) in by_group {
            if let Err(error) = self.persist(broker, &group, &records) {
                tracing::error!(%group, %error, "cannot persist expired offsets");
                continue;
            }
            inner.offsets.complete(records);
            if !inner.offsets.has_offsets(&group) {
                inner.coordinator.remove_if_empty(&group, now);
            }
        }
        self.drain(broker, inner);
        count
    }

    /// Appends `records` for `group` and returns what to wait for.
    pub(crate) fn persist(
        &self,
        broker: &Arc<Broker>,
        group: &str,
        records: &[OffsetsTopicRecord],
    ) -> Result<Option<Persisted>, String> {
        let mut encoded = Vec::with_capacity(records.len());
        for record in records {
            encoded.push(record.encode().map_err(|e| e.to_string())?);
        }
        append(broker, self.partitions, group, &encoded)
    }

    /// Runs the timers (session expiry, rebalance timeouts) until the
    /// broker is dropped.
    pub(crate) async fn run_timers(broker: std::sync::Weak<Broker>) {
        let mut next_expiry = tokio::time::Instant::now();
        loop {
            let Some(strong) = broker.upgrade() else {
                return;
            };
            let Some(groups) = strong.groups() else {
                // A clustered broker that coordinates nothing yet.
                drop(strong);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            let next = groups.inner.lock().coordinator.next_deadline();
            let wait = next.map_or(Duration::from_secs(60), |deadline| {
                Duration::from_millis(deadline.saturating_sub(now_ms()).max(0) as u64)
            });
            let timer = Arc::clone(&groups.timer);
            let check_every =
                Duration::from_millis(strong.config().offsets_retention_check_interval_ms);
            let retention_ms = strong.config().offsets_retention_ms;
            if tokio::time::Instant::now() >= next_expiry {
                let expired = groups.expire_offsets(&strong, retention_ms);
                if expired > 0 {
                    tracing::info!(expired, "expired committed offsets");
                }
                next_expiry = tokio::time::Instant::now() + check_every;
            }
            drop(strong);
            tokio::select! {
                () = timer.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = tokio::time::sleep_until(next_expiry) => {}
            }
            let Some(strong) = broker.upgrade() else {
                return;
            };
            if let Some(groups) = strong.groups() {
                let mut inner = groups.inner.lock();
                inner.coordinator.tick(now_ms());
                groups.drain(&strong, &mut inner);
            }
        }
    }

    fn drain(&self, broker: &Arc<Broker>, inner: &mut Inner) {
        let mut persisted: HashMap<String, Option<Persisted>> = HashMap::new();
        for output in inner.coordinator.take_outputs() {
            match output {
                Output::JoinResponse { token, response } => {
                    if let Some(waiter) = inner.joins.remove(&token) {
                        // The member may have gone; nobody to answer then.
                        let _ = waiter.send((response, None));
                    }
                }
                Output::SyncResponse { token, response } => {
                    if let Some((group, waiter)) = inner.syncs.remove(&token) {
                        let wait = persisted.get(&group).cloned().flatten();
                        // The member may have gone; nobody to answer then.
                        let _ = waiter.send((response, wait));
                    }
                }
                Output::Persist(snapshot) => {
                    let group = snapshot.group_id.clone();
                    let record = OffsetsTopicRecord::GroupMetadata {
                        key: GroupMetadataKey {
                            group: group.clone(),
                        },
                        value: Some(snapshot.to_value()),
                    };
                    match self.persist(broker, &group, &[record]) {
                        Ok(wait) => {
                            persisted.insert(group, wait);
                        }
                        Err(error) => {
                            tracing::error!(%group, %error, "cannot persist group metadata");
                        }
                    }
                }
                Output::Tombstone { group_id } => {
                    let mut records = inner.offsets.delete_group(&group_id);
                    records.push(OffsetsTopicRecord::GroupMetadata {
                        key: GroupMetadataKey {
                            group: group_id.clone(),
                        },
                        value: None,
                    });
                    if let Err(error) = self.persist(broker, &group_id, &records) {
                        tracing::error!(group = %group_id, %error, "cannot persist a group deletion");
                    }
                    inner.offsets.complete(records);
                }
            }
        }
    }
}

/// Waits until `persisted` is acknowledged (its partition's high watermark
/// reached its end), or fails after [`PERSIST_TIMEOUT`].
pub(crate) async fn acknowledged(broker: &Broker, persisted: Option<Persisted>) -> bool {
    let Some(persisted) = persisted else {
        return true;
    };
    let tp = persisted.partition.topic_partition().clone();
    let wait = async {
        loop {
            let woken = Arc::new(Notify::new());
            broker.register_waiter(&tp, &woken);
            if let Some(node) = broker.cluster() {
                // The leader's own part of the high watermark may have moved.
                node.replicas
                    .advance_high_watermark(broker, &persisted.partition);
            }
            if persisted.partition.high_watermark() >= persisted.end {
                return;
            }
            woken.notified().await;
        }
    };
    tokio::time::timeout(PERSIST_TIMEOUT, wait).await.is_ok()
}

/// Appends encoded records to the group's partition of the offsets topic.
fn append(
    broker: &Arc<Broker>,
    partitions: i32,
    group: &str,
    records: &[(Bytes, Option<Bytes>)],
) -> Result<Option<Persisted>, String> {
    let Some(batch) = offsets_batch(records, now_ms()) else {
        return Ok(None);
    };
    let tp = TopicPartition::new(OFFSETS_TOPIC, partition_for(group, partitions));
    let (partition, leader_epoch) = broker
        .leader_partition(&tp, -1)
        .map_err(|e| format!("{tp}: {e}"))?;
    let ticket = partition
        .append(&batch, leader_epoch, now_ms())
        .map_err(|e| e.to_string())?;
    let end = partition.log_end_offset();
    let notify = Arc::clone(broker);
    tokio::spawn(async move {
        match ticket.await {
            Ok(_) => notify.notify(&tp),
            Err(error) => tracing::error!(partition = %tp, %error, "offsets topic append failed"),
        }
    });
    Ok(Some(Persisted { partition, end }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerConfig, Properties};

    fn open(dir: &std::path::Path) -> Arc<Broker> {
        let mut properties = Properties::new();
        properties.insert("log.dirs".into(), dir.display().to_string());
        properties.insert("offsets.topic.num.partitions".into(), "2".into());
        Broker::open(BrokerConfig::from_properties(properties).unwrap()).unwrap()
    }

    fn committed(broker: &Arc<Broker>) -> i64 {
        let groups = broker.groups().unwrap();
        groups.with_coordinator(broker, |_, offsets, _| {
            offsets.fetch("simple", Some(&[("orders", 0)]))[0].offset
        })
    }

    #[tokio::test]
    async fn an_empty_groups_offsets_expire_as_tombstones_that_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let broker = open(dir.path());
        broker.auto_create_topic("orders").unwrap();
        let groups = broker.groups().unwrap();
        let offsets = [rill_group::OffsetToCommit {
            topic: "orders".into(),
            partition: 0,
            offset: 42,
            leader_epoch: None,
            metadata: None,
            expire_timestamp_ms: None,
        }];
        let commit = OffsetCommit {
            group: "simple",
            member_id: "",
            generation_id: -1,
            group_instance_id: None,
            offsets: &offsets,
        };
        let CommitOutcome::Appended {
            records, persisted, ..
        } = groups.commit_offsets(&broker, &commit)
        else {
            panic!("the commit was refused");
        };
        assert!(acknowledged(&broker, persisted).await);
        groups.finish_commit(records, true, None);
        assert_eq!(committed(&broker), 42);

        // Retained for an hour: nothing expires.
        assert_eq!(groups.expire_offsets(&broker, 3_600_000), 0);
        assert_eq!(committed(&broker), 42);
        // Retained for no time: the offset expires, and the group with it.
        assert_eq!(groups.expire_offsets(&broker, 0), 1);
        assert_eq!(committed(&broker), rill_group::NO_OFFSET);
        let listed = groups.with_coordinator(&broker, |c, _, _| c.list_groups(&[]).unwrap());
        assert!(listed.iter().all(|g| g.group_id != "simple"));

        // The tombstones are in __consumer_offsets: a restart keeps it gone.
        let flushed = broker.logs().partitions();
        for partition in flushed {
            partition.log().flush().unwrap();
        }
        broker.shutdown().unwrap();
        drop(broker);
        let broker = open(dir.path());
        assert_eq!(committed(&broker), rill_group::NO_OFFSET);
    }
}
