//! The group coordinator inside the broker: rill-group's state machine and
//! offset store behind one mutex, fed with requests and the clock; the
//! records they ask to persist appended to `__consumer_offsets` (the
//! partition Kafka's hash of the group id picks); their delayed JoinGroup
//! and SyncGroup answers delivered through channels once what they depend
//! on is acknowledged. At start-up the topic is read back to rebuild both.
//!
//! A broker coordinates the groups whose partition of `__consumer_offsets`
//! it leads (every one, alone): it loads those partitions when it becomes
//! their leader (rebuilt whole: see `ReplicaManager`), and answers
//! NOT_COORDINATOR for the other groups. [`GroupsSlot`] holds the current
//! coordinator and replaces it as leadership changes; it needs the
//! replicas (to find and append to an offsets partition it leads) and the
//! waiters (to wait for its appends' high watermark), not the broker.
//!
//! Thread-safe. The mutex is held for state changes and appends (page-cache
//! writes), never across a wait for fsync.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rill_group::{
    Assignor, ConsumerGroupError, ConsumerGroupState, ConsumerGroups, ConsumerHeartbeat,
    ExpiryCondition, GroupCoordinator, GroupMetadataKey, GroupMetadataSnapshot, GroupState,
    HeartbeatContext, HeartbeatReply, JoinGroupResponse, OffsetStore, OffsetsPartition,
    OffsetsTopicRecord, Output, RequestToken, SyncGroupResponse, TopicsImage, offsets_batch,
    partition_for, read_offsets_batches, txn_offsets_batch,
};
use rill_partition::{FetchIsolation, Partition, TopicPartition};
use rill_storage::Offset;
use tokio::sync::{Notify, oneshot};

use crate::cluster::ReplicaManager;
use crate::waiters::Waiters;
use rill_storage::now_ms;

pub(crate) use rill_group::OFFSETS_TOPIC;

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
    /// Records appended to `partition`, ending at `end`.
    pub(crate) fn new(partition: Arc<Partition>, end: Offset) -> Persisted {
        Persisted { partition, end }
    }

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

/// A TxnOffsetCommit request in plain terms: the commit of a producer's
/// transaction (KIP-98), with the member that consumed (KIP-447).
pub(crate) struct TxnOffsetCommit<'a> {
    pub commit: OffsetCommit<'a>,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// What [`Groups::commit_offsets`] did.
pub(crate) enum CommitOutcome {
    /// The member or generation was refused: every partition gets this.
    Refused(rill_group::GroupError),
    /// The member or epoch of a consumer group (KIP-848) was refused.
    RefusedByConsumerGroup(ConsumerGroupError),
    /// The append failed: every partition gets `error` (OffsetCommit
    /// answers COORDINATOR_NOT_AVAILABLE whatever it is).
    Failed {
        message: String,
        error: kafka_protocol::ResponseError,
    },
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
    /// KIP-848 consumer groups; a group id is in one of the two.
    consumer: ConsumerGroups,
    offsets: OffsetStore,
    next_token: RequestToken,
    joins: HashMap<RequestToken, JoinWaiter>,
    syncs: HashMap<RequestToken, (String, SyncWaiter)>,
    /// The topics as last seen by a request: what a timer's downgrade
    /// writes assignments by name with.
    topics: TopicsImage,
}

/// What the coordinator works with: the replicas (the offsets partitions
/// it leads) and the waiters (for its appends to be acknowledged).
#[derive(Clone)]
pub(crate) struct GroupsDeps {
    pub replicas: Arc<ReplicaManager>,
    pub waiters: Arc<Waiters>,
}

impl std::fmt::Debug for GroupsDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupsDeps").finish_non_exhaustive()
    }
}

/// Why a ConsumerGroupHeartbeat was not answered with an assignment.
#[derive(Debug)]
pub(crate) enum ConsumerRefusal {
    /// Refused as Kafka refuses it.
    Group(ConsumerGroupError),
    /// Its records could not be appended.
    Persist(String),
}

/// See the module documentation.
#[derive(Debug)]
pub struct Groups {
    inner: Mutex<Inner>,
    deps: GroupsDeps,
    consumer: ConsumerSettings,
    /// Wakes the timer task when a call may have moved the next deadline.
    timer: Arc<Notify>,
    partitions: i32,
    /// The offsets partitions this coordinator loaded and serves.
    led: BTreeSet<i32>,
}

/// Why the offsets topic could not be loaded.
#[derive(Debug, thiserror::Error)]
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
    /// Rebuilds the coordinator from the partitions in `led` of the
    /// offsets topic's `partitions` (which must exist here), read to their
    /// log end (what a new leader's log holds is what its followers will
    /// hold), then serves.
    pub(crate) fn load(
        deps: GroupsDeps,
        config: &GroupsConfig,
        partitions: i32,
        led: BTreeSet<i32>,
    ) -> Result<Groups, LoadError> {
        let seed = now_ms() as u64 ^ u64::from(std::process::id());
        let mut coordinator = GroupCoordinator::new(config.group.clone(), seed);
        let mut consumer = ConsumerGroups::new(seed.rotate_left(32));
        let session_timeout_ms = config.consumer.session_timeout_ms;
        let mut offsets = OffsetStore::default();
        let now = now_ms();
        let mut records = 0usize;
        let isolation = FetchIsolation::LogEnd;
        for &index in &led {
            let partition = deps
                .replicas
                .partition(&TopicPartition::new(OFFSETS_TOPIC, index))
                .ok_or(LoadError::MissingPartition { partition: index })?;
            let mut next = partition.log_start_offset();
            let end = partition.log_end_offset();
            let offsets_partition = OffsetsPartition { index, partitions };
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
                // Committed offsets, transactional ones and the markers
                // that end them, in log order.
                offsets.replay_batches(&loaded, offsets_partition);
                for record in &loaded.records {
                    records += 1;
                    match &record.record {
                        OffsetsTopicRecord::GroupMetadata { key, value: None } => {
                            coordinator.restore_tombstone(&key.group);
                        }
                        OffsetsTopicRecord::GroupMetadata {
                            key,
                            value: Some(value),
                        } => {
                            let snapshot = GroupMetadataSnapshot::from_value(
                                key.group.clone(),
                                value.clone(),
                                now,
                            );
                            if let Err(error) = coordinator.restore(snapshot, now) {
                                tracing::warn!(group = %key.group, %error, "skipping unreadable group metadata");
                            }
                        }
                        OffsetsTopicRecord::ConsumerGroup(record) => {
                            consumer.replay(record.clone(), now, session_timeout_ms);
                        }
                        OffsetsTopicRecord::OffsetCommit { .. } => {}
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
        for group in groups.iter().filter(|g| !consumer.contains(g)) {
            coordinator.ensure_group(group, now);
        }
        // A consumer group replaced the empty classic group of its id.
        for (group, _) in consumer.list() {
            coordinator.forget_empty(&group);
        }
        coordinator.finish_loading();
        consumer.finish_loading();
        // Loading restores state only; anything it emitted is already on disk.
        let _ = coordinator.take_outputs(); // Nothing to answer or persist yet.
        tracing::info!(partitions, records, "loaded consumer groups");
        Ok(Groups {
            inner: Mutex::new(Inner {
                coordinator,
                consumer,
                offsets,
                next_token: 0,
                joins: HashMap::new(),
                syncs: HashMap::new(),
                topics: TopicsImage::default(),
            }),
            deps,
            consumer: config.consumer.clone(),
            timer: Arc::new(Notify::new()),
            partitions,
            led,
        })
    }

    /// Whether this coordinator serves `group`.
    pub(crate) fn coordinates(&self, group: &str) -> bool {
        self.led.contains(&partition_for(group, self.partitions))
    }

    /// Wakes the timer task (which then looks for the current coordinator).
    pub(crate) fn wake_timers(&self) {
        self.timer.notify_one();
    }

    /// Runs `call` on the coordinator, then appends what it asks to persist
    /// and delivers the answers it produced.
    pub(crate) fn with_coordinator<T>(
        &self,
        call: impl FnOnce(&mut GroupCoordinator, &mut OffsetStore, i64) -> T,
    ) -> T {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let result = call(&mut inner.coordinator, &mut inner.offsets, now_ms());
        self.drain(inner);
        self.timer.notify_one();
        result
    }

    /// Runs `call` on the consumer groups (KIP-848), read only.
    pub(crate) fn with_consumer_groups<T>(&self, call: impl FnOnce(&ConsumerGroups) -> T) -> T {
        call(&self.inner.lock().consumer)
    }

    /// The assignors consumer groups may use (group.consumer.assignors).
    pub(crate) fn consumer_assignors(&self) -> &[Assignor] {
        &self.consumer.assignors
    }

    /// ConsumerGroupHeartbeat: runs it, then appends the records it made;
    /// the answer may go once they are acknowledged. A classic group with
    /// members holds the id (GROUP_ID_NOT_FOUND); an empty one gives way.
    pub(crate) fn consumer_heartbeat(
        &self,
        request: &ConsumerHeartbeat,
        topics: &TopicsImage,
        session_timeout_ms: i64,
        member_id_required: bool,
    ) -> Result<(HeartbeatReply, Option<Persisted>), ConsumerRefusal> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.topics = topics.clone();
        let group = request.group_id.as_str();
        let classic =
            !inner.consumer.contains(group) && inner.coordinator.group_overview(group).is_some();
        let now = now_ms();
        // A classic group with members becomes a consumer group when a
        // consumer-protocol member joins it, if the policy allows (Kafka's
        // validateOnlineUpgrade); else the id is taken: GROUP_ID_NOT_FOUND.
        let mut records = Vec::new();
        if classic && !inner.coordinator.is_empty_group(group) {
            let upgraded = (self.consumer.migration_policy.allows_upgrade()
                && request.member_epoch == 0)
                .then(|| upgrade(inner, group, topics, now))
                .flatten();
            match upgraded {
                Some(upgrade_records) => records = upgrade_records,
                None => {
                    return Err(ConsumerRefusal::Group(
                        ConsumerGroupError::GroupIdNotFound {
                            group_id: group.to_owned(),
                        },
                    ));
                }
            }
        }
        let ctx = HeartbeatContext {
            topics,
            assignors: &self.consumer.assignors,
            session_timeout_ms,
            now_ms: now,
        };
        let reply = match inner.consumer.heartbeat(request, &ctx, member_id_required) {
            Ok(reply) => reply,
            Err(error) => {
                // An upgrade stands even if its first heartbeat is refused.
                if !records.is_empty()
                    && let Err(message) = self.persist(group, &records)
                {
                    tracing::error!(%group, %message, "cannot persist a classic group's upgrade");
                }
                self.drain(inner);
                return Err(ConsumerRefusal::Group(error));
            }
        };
        if classic && inner.consumer.contains(group) {
            inner.coordinator.forget_empty(group);
        }
        records.extend(
            reply
                .records
                .iter()
                .cloned()
                .map(OffsetsTopicRecord::ConsumerGroup),
        );
        // The last consumer-protocol member left: the classic members left
        // behind make a classic group again (Kafka's convertToClassicGroup).
        if request.member_epoch == rill_group::LEAVE_GROUP_MEMBER_EPOCH
            && self.consumer.migration_policy.allows_downgrade()
        {
            records.extend(downgrade(inner, group, topics, now));
        }
        self.drain(inner);
        self.timer.notify_one();
        let persisted = self
            .persist(group, &records)
            .map_err(ConsumerRefusal::Persist)?;
        Ok((reply, persisted))
    }

    /// JoinGroup of a classic member to a consumer group with members
    /// (KIP-848 online migration): answered at once, once its records are
    /// appended. A consumer group without members gives its id up to a
    /// classic group (its records are tombstoned, its offsets kept), as
    /// Kafka's offline migration does.
    fn join_consumer_group(
        &self,
        inner: &mut Inner,
        request: &rill_group::JoinGroupRequest,
        topics: &TopicsImage,
    ) -> Option<(JoinGroupResponse, Option<Persisted>)> {
        let group = request.group_id.as_str();
        if !inner.consumer.contains(group) {
            return None;
        }
        if !inner.consumer.has_members(group) {
            let records: Vec<OffsetsTopicRecord> = inner
                .consumer
                .remove_for_downgrade(group)
                .into_iter()
                .map(OffsetsTopicRecord::ConsumerGroup)
                .collect();
            if let Err(message) = self.persist(group, &records) {
                tracing::error!(%group, %message, "cannot persist an empty consumer group's removal");
            }
            return None;
        }
        let subscription =
            crate::consumer_protocol::subscription(&request.protocols, topics).unwrap_or_default();
        let join = rill_group::ClassicJoin {
            request,
            member_id_required: request.require_known_member_id,
            subscribed_topic_names: subscription.topics,
            owned: subscription.owned,
            rack_id: subscription.rack_id,
        };
        let result = inner
            .consumer
            .classic_join(&join, topics, &self.consumer.assignors, now_ms());
        Some(match result {
            Err(error) => (
                JoinGroupResponse::error(request.member_id.clone(), error),
                None,
            ),
            Ok((response, records)) => {
                let records: Vec<OffsetsTopicRecord> = records
                    .into_iter()
                    .map(OffsetsTopicRecord::ConsumerGroup)
                    .collect();
                match self.persist(group, &records) {
                    Ok(persisted) => (response, persisted),
                    Err(message) => {
                        tracing::warn!(%group, %message, "cannot persist a classic member's join");
                        let error = rill_group::GroupError::CoordinatorNotAvailable {
                            group_id: group.to_owned(),
                        };
                        (
                            JoinGroupResponse::error(request.member_id.clone(), error),
                            None,
                        )
                    }
                }
            }
        })
    }

    /// Heartbeat: of a classic member of a consumer group (KIP-848 online
    /// migration), or to the classic coordinator.
    pub(crate) fn heartbeat(
        &self,
        request: &rill_group::HeartbeatRequest,
    ) -> Result<(), rill_group::GroupError> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let now = now_ms();
        let result = if inner.consumer.contains(&request.group_id) {
            inner.consumer.classic_heartbeat(request, now)
        } else {
            inner.coordinator.heartbeat(request, now)
        };
        self.drain(inner);
        self.timer.notify_one();
        result
    }

    /// LeaveGroup: classic members of a consumer group leave it (their
    /// records are appended; the answer does not wait for them), or the
    /// classic coordinator handles it.
    pub(crate) fn leave(
        &self,
        request: &rill_group::LeaveGroupRequest,
    ) -> Result<Vec<rill_group::LeaveGroupMemberResult>, rill_group::GroupError> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let now = now_ms();
        let result = if inner.consumer.contains(&request.group_id) {
            let (results, records) = inner
                .consumer
                .classic_leave(&request.group_id, &request.members);
            let records: Vec<OffsetsTopicRecord> = records
                .into_iter()
                .map(OffsetsTopicRecord::ConsumerGroup)
                .collect();
            if let Err(message) = self.persist(&request.group_id, &records) {
                tracing::error!(group = %request.group_id, %message, "cannot persist classic members leaving a consumer group");
            }
            Ok(results)
        } else {
            inner.coordinator.leave_group(request, now)
        };
        self.drain(inner);
        self.timer.notify_one();
        result
    }

    /// DeleteGroups of a consumer group (KIP-848): only an empty one
    /// (NON_EMPTY_GROUP otherwise). Its records and committed offsets
    /// become tombstones in `__consumer_offsets`, as Kafka's
    /// `createGroupTombstoneRecords` and `deleteAllOffsets` do; `Ok(None)`
    /// when `group` is not a consumer group here (the classic coordinator
    /// answers for it).
    pub(crate) fn delete_consumer_group(
        &self,
        group: &str,
    ) -> Option<Result<Option<Persisted>, ConsumerRefusal>> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        if !inner.consumer.contains(group) {
            return None;
        }
        let tombstones = match inner.consumer.delete(group) {
            Ok(tombstones) => tombstones,
            Err(error) => return Some(Err(ConsumerRefusal::Group(error))),
        };
        let mut records = inner.offsets.delete_group(group);
        records.extend(
            tombstones
                .into_iter()
                .map(OffsetsTopicRecord::ConsumerGroup),
        );
        let persisted = self.persist(group, &records);
        // The group is gone from memory either way: as for a classic
        // group's deletion, a failed append is logged and not retried.
        inner.offsets.complete(records);
        self.timer.notify_one();
        Some(persisted.map_err(ConsumerRefusal::Persist))
    }

    /// Fences consumer-group members whose time ran out and appends what
    /// that changes.
    fn tick_consumer_groups(&self, inner: &mut Inner, now: i64) {
        let mut by_group: HashMap<String, Vec<OffsetsTopicRecord>> = HashMap::new();
        for record in inner.consumer.tick(now) {
            by_group
                .entry(record.group().to_owned())
                .or_default()
                .push(OffsetsTopicRecord::ConsumerGroup(record));
        }
        for (group, mut records) in by_group {
            // A fenced consumer-protocol member may have been the last.
            if self.consumer.migration_policy.allows_downgrade() {
                let topics = inner.topics.clone();
                records.extend(downgrade(inner, &group, &topics, now));
            }
            if let Err(error) = self.persist(&group, &records) {
                tracing::error!(%group, %error, "cannot persist a consumer group's fenced members");
            }
        }
        self.drain(inner);
    }

    /// The earliest deadline of either kind of group.
    fn next_deadline(inner: &Inner) -> Option<i64> {
        match (
            inner.coordinator.next_deadline(),
            inner.consumer.next_deadline(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// JoinGroup: the answer arrives when the rebalance completes.
    pub(crate) fn join(
        &self,
        request: rill_group::JoinGroupRequest,
        topics: &TopicsImage,
    ) -> oneshot::Receiver<(JoinGroupResponse, Option<Persisted>)> {
        let (sender, receiver) = oneshot::channel();
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.topics = topics.clone();
        if let Some(answer) = self.join_consumer_group(inner, &request, topics) {
            // The member may have gone; nobody to answer then.
            let _ = sender.send(answer);
            self.timer.notify_one();
            return receiver;
        }
        let token = inner.next_token;
        inner.next_token += 1;
        inner.joins.insert(token, sender);
        inner.coordinator.join_group(token, request, now_ms());
        self.drain(inner);
        self.timer.notify_one();
        receiver
    }

    /// SyncGroup: the answer arrives when the leader's assignment does,
    /// after the group's metadata is persisted.
    pub(crate) fn sync(
        &self,
        request: rill_group::SyncGroupRequest,
        topics: &TopicsImage,
    ) -> oneshot::Receiver<(SyncGroupResponse, Option<Persisted>)> {
        let (sender, receiver) = oneshot::channel();
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        inner.topics = topics.clone();
        if inner.consumer.contains(&request.group_id) {
            // A classic member of a consumer group: what it owns now.
            let response = match inner.consumer.classic_sync(&request, now_ms()) {
                Ok(assigned) => SyncGroupResponse {
                    error: None,
                    protocol_type: Some(rill_group::CONSUMER_PROTOCOL_TYPE.to_owned()),
                    protocol_name: request.protocol_name.clone(),
                    assignment: crate::consumer_protocol::write_assignment(&assigned, topics),
                },
                Err(error) => SyncGroupResponse::error(error),
            };
            // The member may have gone; nobody to answer then.
            let _ = sender.send((response, None));
            self.timer.notify_one();
            return receiver;
        }
        let token = inner.next_token;
        inner.next_token += 1;
        inner
            .syncs
            .insert(token, (request.group_id.clone(), sender));
        inner.coordinator.sync_group(token, request, now_ms());
        self.drain(inner);
        self.timer.notify_one();
        receiver
    }

    /// OffsetCommit: checks the member and generation, then appends the
    /// commits (in one batch, in the order they are checked). Returns one
    /// result per partition, the records to complete once acknowledged,
    /// and what to wait for.
    pub(crate) fn commit_offsets(&self, commit: &OffsetCommit<'_>) -> CommitOutcome {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let now = now_ms();
        if inner.consumer.contains(commit.group) {
            if let Err(error) = inner.consumer.validate_offset_commit(
                commit.group,
                commit.member_id,
                commit.generation_id,
            ) {
                return CommitOutcome::RefusedByConsumerGroup(error);
            }
        } else {
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
        }
        let results = inner.offsets.commit(commit.group, commit.offsets, now);
        let records: Vec<OffsetsTopicRecord> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let per_partition = results.into_iter().map(|r| r.err()).collect();
        match self.persist(commit.group, &records) {
            Ok(persisted) => CommitOutcome::Appended {
                per_partition,
                records,
                persisted,
            },
            Err(message) => {
                inner.offsets.abort(&records);
                CommitOutcome::Failed {
                    message,
                    error: kafka_protocol::ResponseError::CoordinatorNotAvailable,
                }
            }
        }
    }

    /// TxnOffsetCommit: checks the member and generation as KIP-447 says,
    /// then appends the commits in a transactional batch of the
    /// producer's. They stay pending — invisible to OffsetFetch, and
    /// UNSTABLE_OFFSET_COMMIT to a fetch that requires stable offsets —
    /// until the transaction's marker is written into the partition (see
    /// [`Groups::complete_transaction`]).
    pub(crate) fn commit_transactional_offsets(&self, txn: &TxnOffsetCommit<'_>) -> CommitOutcome {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let now = now_ms();
        let commit = &txn.commit;
        if inner.consumer.contains(commit.group) {
            if let Err(error) = inner.consumer.validate_offset_commit(
                commit.group,
                commit.member_id,
                commit.generation_id,
            ) {
                return CommitOutcome::RefusedByConsumerGroup(error);
            }
        } else if let Err(error) = inner.coordinator.validate_txn_offset_commit(
            commit.group,
            commit.member_id,
            commit.generation_id,
            commit.group_instance_id,
            now,
        ) {
            return CommitOutcome::Refused(error);
        }
        let results =
            inner
                .offsets
                .commit_transactional(commit.group, txn.producer_id, commit.offsets, now);
        let records: Vec<OffsetsTopicRecord> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let per_partition = results.into_iter().map(|r| r.err()).collect();
        let unavailable = kafka_protocol::ResponseError::CoordinatorNotAvailable;
        let appended = encode(&records)
            .and_then(|encoded| {
                txn_offsets_batch(&encoded, txn.producer_id, txn.producer_epoch, now)
                    .map_err(|e| e.to_string())
            })
            .map_err(|message| (message, unavailable))
            .and_then(|batch| {
                append(
                    &self.deps,
                    self.partitions,
                    commit.group,
                    batch,
                    Origin::Coordinator,
                )
            });
        match appended {
            Ok(persisted) => CommitOutcome::Appended {
                per_partition,
                records,
                persisted,
            },
            Err((message, error)) => {
                inner
                    .offsets
                    .abort_transactional_append(txn.producer_id, &records);
                CommitOutcome::Failed { message, error }
            }
        }
    }

    /// Records that a TxnOffsetCommit's append was acknowledged (at
    /// `position`, where it ended) or failed.
    pub(crate) fn finish_transactional_commit(
        &self,
        producer_id: i64,
        records: &[OffsetsTopicRecord],
        acknowledged: Option<Offset>,
    ) {
        let mut inner = self.inner.lock();
        match acknowledged {
            Some(end) => inner.offsets.complete_transactional_append(
                producer_id,
                records,
                u64::try_from(end.value()).unwrap_or(0),
            ),
            None => inner
                .offsets
                .abort_transactional_append(producer_id, records),
        }
    }

    /// A transaction's marker was written into offsets partition `index`:
    /// its offsets there become committed (or are dropped).
    pub(crate) fn complete_transaction(&self, index: i32, producer_id: i64, commit: bool) {
        let partition = OffsetsPartition {
            index,
            partitions: self.partitions,
        };
        let mut inner = self.inner.lock();
        inner
            .offsets
            .complete_transaction_in(producer_id, commit, partition);
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
    pub(crate) fn expire_offsets(&self, retention_ms: i64) -> usize {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let now = now_ms();
        let coordinator = &inner.coordinator;
        let consumer = &inner.consumer;
        let expired = inner.offsets.expire(now, retention_ms, |group| {
            match consumer.state(group) {
                Some(ConsumerGroupState::Empty) => return ExpiryCondition::Standalone,
                Some(_) => return ExpiryCondition::Never,
                None => {}
            }
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
            if let Err(error) = self.persist(&group, &records) {
                tracing::error!(%group, %error, "cannot persist expired offsets");
                continue;
            }
            inner.offsets.complete(records);
            if !inner.offsets.has_offsets(&group) {
                inner.coordinator.remove_if_empty(&group, now);
            }
        }
        self.drain(inner);
        count
    }

    /// Appends `records` for `group` and returns what to wait for.
    pub(crate) fn persist(
        &self,
        group: &str,
        records: &[OffsetsTopicRecord],
    ) -> Result<Option<Persisted>, String> {
        let encoded = encode(records)?;
        let Some(batch) = offsets_batch(&encoded, now_ms()).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        append(
            &self.deps,
            self.partitions,
            group,
            Some(batch),
            Origin::Producer,
        )
        .map_err(|(message, _)| message)
    }

    fn drain(&self, inner: &mut Inner) {
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
                    match self.persist(&group, &[record]) {
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
                    if let Err(error) = self.persist(&group_id, &records) {
                        tracing::error!(group = %group_id, %error, "cannot persist a group deletion");
                    }
                    inner.offsets.complete(records);
                }
            }
        }
    }
}

/// Online upgrade (KIP-848): the classic group `group` (with members, of
/// protocol type "consumer") becomes a consumer group of the same
/// members, each at the group's generation owning what it was assigned.
/// The records: the classic group's tombstone, then the consumer group's.
/// `None` (nothing changed) if the classic group cannot be taken over.
fn upgrade(
    inner: &mut Inner,
    group: &str,
    topics: &TopicsImage,
    now: i64,
) -> Option<Vec<OffsetsTopicRecord>> {
    let (snapshot, protocols) = inner.coordinator.take_for_upgrade(group, now)?;
    let protocols: HashMap<String, Vec<rill_group::JoinProtocol>> = protocols.into_iter().collect();
    let members = snapshot
        .members
        .into_iter()
        .map(|member| {
            let protocols = protocols
                .get(&member.member_id)
                .cloned()
                .unwrap_or_default();
            // A subscription that cannot be read subscribes to nothing: the
            // member's next JoinGroup says what it wants.
            let subscribed_topic_names = crate::consumer_protocol::subscription(&protocols, topics)
                .map(|s| s.topics)
                .unwrap_or_default();
            rill_group::ClassicMemberImage {
                assigned: crate::consumer_protocol::read_assignment(&member.assignment, topics),
                member_id: member.member_id,
                instance_id: member.group_instance_id,
                client_id: member.client_id,
                client_host: member.client_host,
                session_timeout_ms: member.session_timeout_ms,
                rebalance_timeout_ms: member.rebalance_timeout_ms,
                protocols,
                subscribed_topic_names,
            }
        })
        .collect();
    let mut records = vec![OffsetsTopicRecord::GroupMetadata {
        key: GroupMetadataKey {
            group: group.to_owned(),
        },
        value: None,
    }];
    records.extend(
        inner
            .consumer
            .upgrade(group, snapshot.generation_id, members, now)
            .into_iter()
            .map(OffsetsTopicRecord::ConsumerGroup),
    );
    Some(records)
}

/// Online downgrade (KIP-848): if every member left in the consumer group
/// `group` speaks the classic protocol, it becomes a classic group of
/// them at the group's epoch, which rebalances at once. The records: the
/// consumer group's tombstones, then the classic group's metadata. Empty
/// (nothing changed) otherwise, or if the members share no protocol.
fn downgrade(
    inner: &mut Inner,
    group: &str,
    topics: &TopicsImage,
    now: i64,
) -> Vec<OffsetsTopicRecord> {
    let Some((epoch, members)) = inner.consumer.downgrade_candidate(group) else {
        return Vec::new();
    };
    // The first protocol of the first member that all of them support.
    let shared = members.first().and_then(|first| {
        first
            .classic
            .supported_protocols
            .iter()
            .map(|p| p.name.clone())
            .find(|name| {
                members.iter().all(|m| {
                    m.classic
                        .supported_protocols
                        .iter()
                        .any(|p| p.name == *name)
                })
            })
    });
    let Some(protocol) = shared else {
        return Vec::new();
    };
    let snapshot = GroupMetadataSnapshot {
        group_id: group.to_owned(),
        protocol_type: rill_group::CONSUMER_PROTOCOL_TYPE.to_owned(),
        generation_id: epoch,
        protocol_name: Some(protocol.clone()),
        leader: members.first().map(|m| m.member_id.clone()),
        current_state_timestamp_ms: now,
        members: members
            .iter()
            .map(|m| rill_group::MemberSnapshot {
                member_id: m.member_id.clone(),
                group_instance_id: m.metadata.instance_id.clone(),
                client_id: m.metadata.client_id.clone(),
                client_host: m.metadata.client_host.clone(),
                rebalance_timeout_ms: m.metadata.rebalance_timeout_ms,
                session_timeout_ms: m.classic.session_timeout_ms,
                subscription: m
                    .classic
                    .supported_protocols
                    .iter()
                    .find(|p| p.name == protocol)
                    .map(|p| p.metadata.clone())
                    .unwrap_or_default(),
                assignment: crate::consumer_protocol::write_assignment(&m.assigned, topics),
            })
            .collect(),
    };
    let value = snapshot.to_value();
    if let Err(error) = inner.coordinator.adopt(snapshot, now) {
        tracing::error!(%group, %error, "cannot make a classic group of a consumer group's classic members");
        return Vec::new();
    }
    let mut records: Vec<OffsetsTopicRecord> = inner
        .consumer
        .remove_for_downgrade(group)
        .into_iter()
        .map(OffsetsTopicRecord::ConsumerGroup)
        .collect();
    records.push(OffsetsTopicRecord::GroupMetadata {
        key: GroupMetadataKey {
            group: group.to_owned(),
        },
        value: Some(value),
    });
    records
}

/// Waits until `persisted` is acknowledged (its partition's high watermark
/// reached its end), or fails after [`PERSIST_TIMEOUT`].
pub(crate) async fn acknowledged(deps: &GroupsDeps, persisted: Option<Persisted>) -> bool {
    let Some(persisted) = persisted else {
        return true;
    };
    let tp = persisted.partition.topic_partition().clone();
    let wait = async {
        loop {
            let woken = Arc::new(Notify::new());
            deps.waiters.register(&tp, &woken);
            // The leader's own part of the high watermark may have moved.
            deps.replicas.advance_high_watermark(&persisted.partition);
            if persisted.partition.high_watermark() >= persisted.end {
                return;
            }
            woken.notified().await;
        }
    };
    tokio::time::timeout(PERSIST_TIMEOUT, wait).await.is_ok()
}

/// The records' keys and values as stored.
fn encode(records: &[OffsetsTopicRecord]) -> Result<Vec<(Bytes, Option<Bytes>)>, String> {
    records
        .iter()
        .map(|record| record.encode().map_err(|e| e.to_string()))
        .collect()
}

/// Who a batch of the offsets topic is written as: the coordinator's own
/// (no producer id), or for a transactional producer (its id and epoch,
/// no sequence: Kafka's coordinator origin).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Producer,
    Coordinator,
}

/// Appends `batch` to the group's partition of the offsets topic. An
/// error says why, and what a client should be told.
fn append(
    deps: &GroupsDeps,
    partitions: i32,
    group: &str,
    batch: Option<Vec<u8>>,
    origin: Origin,
) -> Result<Option<Persisted>, (String, kafka_protocol::ResponseError)> {
    let Some(batch) = batch else {
        return Ok(None);
    };
    let tp = TopicPartition::new(OFFSETS_TOPIC, partition_for(group, partitions));
    let (partition, leader_epoch) = deps.replicas.leader_partition(&tp, -1).map_err(|e| {
        let error = kafka_protocol::ResponseError::NotCoordinator;
        (format!("{tp}: {e}"), error)
    })?;
    let ticket = match origin {
        Origin::Producer => partition.append(&batch, leader_epoch, now_ms()),
        Origin::Coordinator => partition.append_from_coordinator(&batch, leader_epoch, now_ms()),
    }
    .map_err(|e| (e.to_string(), crate::error_code::for_append(&e)))?;
    let end = partition.log_end_offset();
    let waiters = Arc::clone(&deps.waiters);
    tokio::spawn(async move {
        match ticket.await {
            Ok(_) => waiters.notify(&tp),
            Err(error) => tracing::error!(partition = %tp, %error, "offsets topic append failed"),
        }
    });
    Ok(Some(Persisted { partition, end }))
}

/// Timers and retention of the group coordinator, as the broker's
/// group.* and offsets.* properties say.
#[derive(Clone, Debug)]
pub(crate) struct GroupsConfig {
    pub group: rill_group::GroupConfig,
    pub consumer: ConsumerSettings,
    /// offsets.retention.minutes, in ms.
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: u64,
}

/// What KIP-848 consumer groups run with, from the broker's properties.
#[derive(Clone, Debug)]
pub(crate) struct ConsumerSettings {
    /// group.consumer.assignors: the first is the default.
    pub assignors: Vec<Assignor>,
    /// group.consumer.session.timeout.ms: the session members get when
    /// their group is loaded (a group's own config applies from their
    /// next heartbeat).
    pub session_timeout_ms: i64,
    /// group.consumer.migration.policy: which online conversions between
    /// classic and consumer groups are allowed.
    pub migration_policy: crate::config::MigrationPolicy,
}

/// The coordinator of the groups this broker coordinates, replaced as the
/// offsets partitions it leads change. Thread-safe.
#[derive(Debug)]
pub(crate) struct GroupsSlot {
    current: parking_lot::RwLock<Option<Arc<Groups>>>,
    deps: GroupsDeps,
    config: GroupsConfig,
    /// Wakes the timer task when the coordinator is replaced.
    replaced: Notify,
}

impl GroupsSlot {
    pub(crate) fn new(deps: GroupsDeps, config: GroupsConfig) -> GroupsSlot {
        GroupsSlot {
            current: parking_lot::RwLock::new(None),
            deps,
            config,
            replaced: Notify::new(),
        }
    }

    pub(crate) fn deps(&self) -> &GroupsDeps {
        &self.deps
    }

    /// The current coordinator, if this broker leads any offsets partition.
    pub(crate) fn current(&self) -> Option<Arc<Groups>> {
        self.current.read().clone()
    }

    /// The coordinator of `group`, if this broker is it: else
    /// COORDINATOR_LOAD_IN_PROGRESS (it leads the group's offsets
    /// partition, whose groups are still loading), which clients retry,
    /// or NOT_COORDINATOR (another broker leads it), which they answer by
    /// finding the coordinator again.
    /// `leads`: whether the metadata makes this broker the leader of the
    /// group's offsets partition (and so its coordinator).
    pub(crate) fn for_group(
        &self,
        group: &str,
        leads: bool,
    ) -> Result<Arc<Groups>, kafka_protocol::ResponseError> {
        use kafka_protocol::ResponseError;
        if let Some(groups) = self.current()
            && groups.coordinates(group)
        {
            return Ok(groups);
        }
        Err(if leads {
            ResponseError::CoordinatorLoadInProgress
        } else {
            ResponseError::NotCoordinator
        })
    }

    /// Loads the groups of the offsets partitions in `led` (of the
    /// topic's `partitions`), replacing the coordinator. Blocking.
    pub(crate) fn coordinate(&self, partitions: i32, led: BTreeSet<i32>) {
        let loaded = if led.is_empty() {
            Ok(None)
        } else {
            Groups::load(self.deps.clone(), &self.config, partitions, led.clone())
                .map(|g| Some(Arc::new(g)))
        };
        match loaded {
            Ok(groups) => {
                let old = std::mem::replace(&mut *self.current.write(), groups);
                if let Some(old) = old {
                    old.wake_timers();
                }
                self.replaced.notify_one();
                tracing::info!(partitions = ?led, "coordinating the groups of these offsets partitions");
            }
            Err(error) => {
                tracing::error!(%error, "cannot load the groups of the offsets partitions led")
            }
        }
    }

    /// Runs the timers (session expiry, rebalance timeouts, offsets
    /// retention) of whichever coordinator is current, until `stop`.
    pub(crate) async fn run_timers(self: Arc<Self>, mut stop: crate::shutdown::Shutdown) {
        let mut next_expiry = tokio::time::Instant::now();
        let check_every = Duration::from_millis(self.config.offsets_retention_check_interval_ms);
        loop {
            let Some(groups) = self.current() else {
                // Coordinating nothing yet.
                tokio::select! {
                    () = self.replaced.notified() => {}
                    () = stop.wait() => return,
                }
                continue;
            };
            let next = Groups::next_deadline(&groups.inner.lock());
            let wait = next.map_or(Duration::from_secs(60), |deadline| {
                Duration::from_millis(deadline.saturating_sub(now_ms()).max(0) as u64)
            });
            let timer = Arc::clone(&groups.timer);
            if tokio::time::Instant::now() >= next_expiry {
                let expired = groups.expire_offsets(self.config.offsets_retention_ms);
                if expired > 0 {
                    tracing::info!(expired, "expired committed offsets");
                }
                next_expiry = tokio::time::Instant::now() + check_every;
            }
            drop(groups);
            tokio::select! {
                () = timer.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = tokio::time::sleep_until(next_expiry) => {}
                () = stop.wait() => return,
            }
            if let Some(groups) = self.current() {
                let mut inner = groups.inner.lock();
                let now = now_ms();
                inner.coordinator.tick(now);
                groups.drain(&mut inner);
                groups.tick_consumer_groups(&mut inner, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Broker;
    use crate::cluster::ControllerSlot;
    use crate::config::BrokerConfig;
    use crate::properties::Properties;

    const GROUP: &str = "simple";
    const WAIT: Duration = Duration::from_secs(30);

    async fn start(dir: &std::path::Path) -> Arc<Broker> {
        let mut properties = Properties::new();
        properties.insert("log.dirs".into(), dir.display().to_string());
        properties.insert("offsets.topic.num.partitions".into(), "2".into());
        let config = BrokerConfig::from_properties(properties).unwrap();
        let disk = Arc::new(rill_storage::RealDisk);
        let links = crate::cluster::NodeLinks::new(&config).unwrap();
        Broker::start(config, disk, (&ControllerSlot::default(), &links))
            .await
            .unwrap()
    }

    /// The coordinator of GROUP, as FindCoordinator finds it: the offsets
    /// topic created if missing, and its groups loaded.
    async fn coordinator(broker: &Broker) -> Arc<Groups> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if broker
                .coordinator(crate::coordinators::CoordinatorKind::Group, GROUP)
                .is_ok()
                && let Ok(groups) = broker.groups_for(GROUP)
            {
                return groups;
            }
            assert!(tokio::time::Instant::now() < deadline, "no coordinator");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn committed(groups: &Groups) -> i64 {
        groups.with_coordinator(|_, offsets, _| {
            offsets.fetch(GROUP, Some(&[("orders", 0)]))[0].offset
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_empty_groups_offsets_expire_as_tombstones_that_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let broker = start(dir.path()).await;
        let groups = coordinator(&broker).await;
        let offsets = [rill_group::OffsetToCommit {
            topic: "orders".into(),
            partition: 0,
            offset: 42,
            leader_epoch: None,
            metadata: None,
            expire_timestamp_ms: None,
        }];
        let commit = OffsetCommit {
            group: GROUP,
            member_id: "",
            generation_id: -1,
            group_instance_id: None,
            offsets: &offsets,
        };
        let CommitOutcome::Appended {
            records, persisted, ..
        } = groups.commit_offsets(&commit)
        else {
            panic!("the commit was refused");
        };
        assert!(acknowledged(broker.groups().deps(), persisted).await);
        groups.finish_commit(records, true, None);
        assert_eq!(committed(&groups), 42);

        // Retained for an hour: nothing expires.
        assert_eq!(groups.expire_offsets(3_600_000), 0);
        assert_eq!(committed(&groups), 42);
        // Retained for no time: the offset expires, and the group with it.
        assert_eq!(groups.expire_offsets(0), 1);
        assert_eq!(committed(&groups), rill_group::NO_OFFSET);
        let listed = groups.with_coordinator(|c, _, _| c.list_groups(&[]).unwrap());
        assert!(listed.iter().all(|g| g.group_id != GROUP));

        // The tombstones are in __consumer_offsets: a restart keeps it gone.
        drop(groups);
        broker.leave_cluster().await;
        broker.shutdown().unwrap();
        drop(broker);
        let broker = start(dir.path()).await;
        let groups = coordinator(&broker).await;
        assert_eq!(committed(&groups), rill_group::NO_OFFSET);
        broker.leave_cluster().await;
        broker.shutdown().unwrap();
    }
}
