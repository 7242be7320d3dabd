//! This broker's replicas: for each local partition, whether it leads
//! (and what it knows of its followers) or follows whom; the changes the
//! metadata asks for (create, lead, follow, delete, new configs); the
//! high watermark as leader; and the ISR changes the leader proposes.
//!
//! It works with the log manager (the partitions' logs), the waiters (to
//! wake those waiting on a partition that moved) and the broker's own
//! properties (the topic defaults under the cluster's), not the broker.
//!
//! Thread-safe: the roles sit behind one mutex, held for map updates and
//! never across I/O or an await.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rill_cluster::{Applied, BrokerId, ClusterMetadata, Command, LeaderEpoch, PartitionEpoch};
use rill_partition::{LogManager, ManagerError, Partition, TopicPartition};
use rill_storage::{LogConfig, Offset};
use uuid::Uuid;

use super::ClusterNode;
use super::fetcher::{Fetchers, Follow};
use super::isr_changes::{IsrChange, IsrChangeCounts};
use super::leader_state::LeaderState;
use super::metadata_changes::MetadataChanges;
use crate::config::ClusterConfig;
use crate::effective_config::{self, BrokerLayers};
use crate::properties::Properties;
use crate::topic_config::ConfigValueError;
use crate::waiters::Waiters;

/// Why this broker may not serve a partition's leader (produce, consumer
/// fetch, offsets): each maps to one Kafka error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeadershipError {
    #[error("this broker has no such partition")]
    UnknownPartition,
    #[error("this broker does not lead the partition")]
    NotLeader,
    /// The client's leader epoch is older than the leader's.
    #[error("the request's leader epoch is older than the leader's")]
    FencedLeaderEpoch,
    /// The client's leader epoch is newer than this broker knows.
    #[error("the request's leader epoch is newer than this broker knows")]
    UnknownLeaderEpoch,
}

/// Why a local replica could not be made.
#[derive(Debug, thiserror::Error)]
enum ReplicaError {
    #[error(transparent)]
    Config(#[from] ConfigValueError),
    #[error(transparent)]
    Logs(#[from] ManagerError),
}

/// Whether a new leader records its epoch now, at its log end, or leaves
/// it to its first append (which records the batch's epoch at its base
/// offset): a log that never held a record has nothing a follower could
/// diverge on, and its epoch checkpoint would be written for nothing —
/// once per partition of a topic just created, or per partition at each
/// restart of a broker whose empty logs drop an epoch at offset 0.
fn takes_epoch_now(partition: &Partition) -> bool {
    partition.log_end_offset() > Offset(0) || partition.latest_epoch().is_some()
}

/// How many replicas an application of the metadata made lead, follow or
/// wait offline (for its one log line).
#[derive(Debug, Default, PartialEq, Eq)]
struct RoleChanges {
    led: usize,
    followed: usize,
    offline: usize,
}

/// Partitions with file work at which `prepare` spreads it over threads.
const PREPARE_PARALLEL_MIN: usize = 16;
/// Threads `prepare` spreads file work over.
const PREPARE_THREADS: usize = 8;

/// What this broker is for one partition.
#[derive(Clone, Debug)]
enum Role {
    Leader(Box<LeaderState>),
    /// Following `leader` (`None`: the partition is offline) at
    /// `leader_epoch`.
    Follower {
        leader: Option<i32>,
        leader_epoch: i32,
    },
}

/// A partition's role with what the handlers need beside it.
#[derive(Clone, Debug)]
struct Replica {
    role: Role,
    topic_id: Uuid,
    /// min.insync.replicas of its topic.
    min_insync_replicas: usize,
}

/// What an acks=all produce waits for, and its verdict.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AckWait {
    /// Replicated to the ISR, which holds min.insync.replicas or more.
    Done,
    /// Replicated, but the ISR shrank below min.insync.replicas.
    NotEnoughReplicasAfterAppend,
    /// No longer the leader: the write may or may not survive.
    NotLeader,
    /// Not yet.
    Pending,
}

/// See the module doc.
pub(crate) struct ReplicaManager {
    node_id: i32,
    replica_lag_time_max_ms: i64,
    logs: Arc<LogManager>,
    waiters: Arc<Waiters>,
    /// The broker's file and flags: topic defaults under the cluster's.
    properties: Properties,
    replicas: Mutex<HashMap<TopicPartition, Replica>>,
    /// Topic configs (with the cluster's broker configs under them) as
    /// last applied, to apply only changes.
    applied_configs: Mutex<AppliedConfigs>,
    fetchers: Fetchers,
    /// Wakes the ISR task (a follower may have caught up).
    isr_check: tokio::sync::Notify,
    /// Per coordinators' topic, the partitions (and their leader epochs)
    /// whose groups or transactions this broker coordinates.
    coordinated: Mutex<BTreeMap<&'static str, BTreeMap<i32, i32>>>,
    /// The ISR changes of partitions this broker leads.
    isr_changes: IsrChangeCounts,
    /// Partitions this broker took the leadership of (a new leader epoch).
    leaderships: std::sync::atomic::AtomicU64,
    /// Replicas of this broker the last apply could not create, and why.
    not_created: Mutex<BTreeMap<TopicPartition, String>>,
    /// The metadata last applied, against which the next apply finds what
    /// changed.
    last_applied: Mutex<Option<Arc<ClusterMetadata>>>,
}

/// The internal topics whose partitions' leaders are coordinators.
const COORDINATOR_TOPICS: [&str; 2] = [rill_group::OFFSETS_TOPIC, rill_txn::TXN_STATE_TOPIC];

/// The configs last applied to the local logs.
#[derive(Default)]
struct AppliedConfigs {
    broker: BTreeMap<String, String>,
    /// Each topic's overrides, and the min.insync.replicas they make.
    topics: BTreeMap<String, (BTreeMap<String, String>, usize)>,
}

impl std::fmt::Debug for ReplicaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl ReplicaManager {
    pub(crate) fn new(
        node_id: i32,
        config: &ClusterConfig,
        (logs, waiters): (Arc<LogManager>, Arc<Waiters>),
        properties: Properties,
        connector: rill_cluster::Connector,
    ) -> ReplicaManager {
        ReplicaManager {
            node_id,
            replica_lag_time_max_ms: i64::try_from(config.replica_lag_time_max_ms)
                .unwrap_or(i64::MAX),
            logs,
            waiters,
            properties,
            replicas: Mutex::new(HashMap::new()),
            applied_configs: Mutex::new(AppliedConfigs::default()),
            fetchers: Fetchers::new(node_id, config, connector),
            isr_check: tokio::sync::Notify::new(),
            coordinated: Mutex::new(BTreeMap::new()),
            isr_changes: IsrChangeCounts::default(),
            leaderships: std::sync::atomic::AtomicU64::new(0),
            not_created: Mutex::new(BTreeMap::new()),
            last_applied: Mutex::new(None),
        }
    }

    /// How many times this broker became a partition's leader.
    pub(crate) fn leaderships_taken(&self) -> u64 {
        self.leaderships.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The ISR shrinks and growths of partitions this broker led.
    pub(crate) fn isr_change_counts(&self) -> (u64, u64) {
        self.isr_changes.counts()
    }

    /// The leader epoch, if this broker leads `topic_partition`.
    pub(crate) fn leader_epoch(&self, topic_partition: &TopicPartition) -> Option<i32> {
        match self.replicas.lock().get(topic_partition).map(|r| &r.role) {
            Some(Role::Leader(state)) => Some(state.leader_epoch),
            _ => None,
        }
    }

    /// The local replica of `topic_partition`, whatever its role.
    pub(crate) fn partition(&self, topic_partition: &TopicPartition) -> Option<Arc<Partition>> {
        self.logs.get(topic_partition)
    }

    /// The partition, if this broker leads it at a leader epoch the
    /// request agrees with (`current_leader_epoch`, -1: unchecked), with
    /// that epoch. `known`: whether the partition's topic exists (not
    /// leading a partition of a known topic is NOT_LEADER, of an unknown
    /// one UNKNOWN_TOPIC_OR_PARTITION).
    pub(crate) fn leader_partition(
        &self,
        topic_partition: &TopicPartition,
        current_leader_epoch: i32,
    ) -> Result<(Arc<Partition>, i32), LeadershipError> {
        let partition = self.partition(topic_partition);
        let Some(epoch) = self.leader_epoch(topic_partition) else {
            return Err(match partition {
                Some(_) => LeadershipError::NotLeader,
                None => LeadershipError::UnknownPartition,
            });
        };
        let partition = partition.ok_or(LeadershipError::UnknownPartition)?;
        if current_leader_epoch >= 0 && current_leader_epoch < epoch {
            return Err(LeadershipError::FencedLeaderEpoch);
        }
        if current_leader_epoch > epoch {
            return Err(LeadershipError::UnknownLeaderEpoch);
        }
        Ok((partition, epoch))
    }

    /// The log config of a topic with `overrides`, over the cluster's
    /// broker configs (`dynamic`) and this broker's own.
    pub(crate) fn log_config(
        &self,
        overrides: &BTreeMap<String, String>,
        dynamic: &BTreeMap<String, String>,
    ) -> Result<LogConfig, ConfigValueError> {
        effective_config::log_config(
            overrides,
            BrokerLayers {
                dynamic,
                static_: &self.properties,
            },
        )
    }

    /// The replica of `tp`, created (with its topic's configs) if this
    /// broker has none yet. Blocking.
    fn ensure_partition(
        &self,
        tp: &TopicPartition,
        overrides: &BTreeMap<String, String>,
        dynamic: &BTreeMap<String, String>,
    ) -> Result<Arc<Partition>, ReplicaError> {
        if let Some(partition) = self.logs.get(tp) {
            return Ok(partition);
        }
        let config = self.log_config(overrides, dynamic)?;
        Ok(self.logs.get_or_create(tp, config)?)
    }

    /// Deletes this broker's replica of `tp`, if any. Blocking.
    fn delete_partition(&self, tp: &TopicPartition) {
        match self.logs.delete(tp) {
            Ok(()) => tracing::info!(partition = %tp, "deleted the replica"),
            Err(ManagerError::NotFound { .. }) => {}
            Err(error) => tracing::error!(partition = %tp, %error, "cannot delete the replica"),
        }
        self.waiters.remove(tp);
    }

    /// A replica of `topic` on this broker that the last apply could not
    /// create, and why.
    pub(crate) fn not_created(&self, topic: &str) -> Option<(TopicPartition, String)> {
        let not_created = self.not_created.lock();
        not_created
            .range(TopicPartition::new(topic, 0)..)
            .next()
            .filter(|(tp, _)| tp.topic == topic)
            .map(|(tp, why)| (tp.clone(), why.clone()))
    }

    /// Whether an acks=all produce may append: the ISR holds at least
    /// min.insync.replicas (Kafka checks before appending).
    pub(crate) fn has_enough_replicas(&self, topic_partition: &TopicPartition) -> bool {
        match self.replicas.lock().get(topic_partition) {
            Some(Replica {
                role: Role::Leader(state),
                min_insync_replicas,
                ..
            }) => state.isr.len() >= *min_insync_replicas,
            _ => false,
        }
    }

    /// Where an acks=all produce whose last offset is `last_offset`
    /// stands.
    pub(crate) fn ack_wait(&self, partition: &Partition, last_offset: Offset) -> AckWait {
        let replicas = self.replicas.lock();
        match replicas.get(partition.topic_partition()) {
            Some(Replica {
                role: Role::Leader(state),
                min_insync_replicas,
                ..
            }) => {
                if partition.high_watermark() <= last_offset {
                    AckWait::Pending
                } else if state.isr.len() < *min_insync_replicas {
                    AckWait::NotEnoughReplicasAfterAppend
                } else {
                    AckWait::Done
                }
            }
            _ => AckWait::NotLeader,
        }
    }

    /// Wakes whoever waits for the partition to move (long polls,
    /// followers, acks=all answers): an append to it was acknowledged.
    pub(crate) fn notify(&self, topic_partition: &TopicPartition) {
        self.waiters.notify(topic_partition);
    }

    /// Once the leader's own append up to `last_offset` is acknowledged:
    /// moves the high watermark (the leader's part of it just moved) and,
    /// with `wait_for_isr` (acks=-1), waits until it passes `last_offset`
    /// or `deadline` comes (REQUEST_TIMED_OUT).
    pub(crate) async fn replicated(
        &self,
        topic_partition: &TopicPartition,
        last_offset: Offset,
        wait_for_isr: bool,
        deadline: tokio::time::Instant,
    ) -> Result<(), kafka_protocol::ResponseError> {
        use kafka_protocol::ResponseError;
        let Some(partition) = self.partition(topic_partition) else {
            return Err(ResponseError::NotLeaderOrFollower);
        };
        self.advance_high_watermark(&partition);
        if !wait_for_isr {
            return Ok(());
        }
        let woken = Arc::new(tokio::sync::Notify::new());
        loop {
            self.waiters.register(topic_partition, &woken);
            match self.ack_wait(&partition, last_offset) {
                AckWait::Done => return Ok(()),
                AckWait::NotEnoughReplicasAfterAppend => {
                    return Err(ResponseError::NotEnoughReplicasAfterAppend);
                }
                AckWait::NotLeader => return Err(ResponseError::NotLeaderOrFollower),
                AckWait::Pending => {}
            }
            tokio::select! {
                () = woken.notified() => {}
                () = tokio::time::sleep_until(deadline) => return Err(ResponseError::RequestTimedOut),
            }
        }
    }

    /// A follower's fetch at `fetch_offset`: recorded as its log end, the
    /// high watermark advanced if it can be. Returns false if this broker
    /// does not lead the partition (or the fetcher is no follower of it).
    pub(crate) fn follower_fetched(
        &self,
        partition: &Partition,
        follower: i32,
        fetch_offset: Offset,
    ) -> bool {
        let now = rill_storage::now_ms();
        let tp = partition.topic_partition();
        let recorded = {
            let mut replicas = self.replicas.lock();
            match replicas.get_mut(tp).map(|r| &mut r.role) {
                Some(Role::Leader(state)) => {
                    state.follower_fetched(follower, fetch_offset, partition.log_end_offset(), now)
                }
                _ => false,
            }
        };
        if recorded {
            self.advance_high_watermark(partition);
            if !self.in_isr(tp, follower) {
                self.isr_check.notify_one();
            }
        }
        recorded
    }

    fn in_isr(&self, tp: &TopicPartition, broker: i32) -> bool {
        match self.replicas.lock().get(tp).map(|r| &r.role) {
            Some(Role::Leader(state)) => state.isr.contains(&broker),
            _ => true,
        }
    }

    /// Moves the leader's high watermark to the minimum log end over the
    /// ISR (its own being what it may acknowledge), waking long polls and
    /// acks=all produces when it moves.
    pub(crate) fn advance_high_watermark(&self, partition: &Partition) {
        let tp = partition.topic_partition();
        let wanted = match self.replicas.lock().get(tp).map(|r| &r.role) {
            Some(Role::Leader(state)) => {
                state.high_watermark(partition.log().acknowledged_end_offset())
            }
            _ => None,
        };
        if let Some(wanted) = wanted
            && wanted > partition.high_watermark()
        {
            partition.set_high_watermark(wanted);
            self.waiters.notify(tp);
        }
    }

    /// Brings the replicas in line with `metadata`: logs created for new
    /// replicas, leadership taken or given up, fetchers pointed at the new
    /// leaders, logs of topics deleted or moved away removed, configs
    /// applied. Returns, for each coordinators' topic whose partitions led
    /// here (or their leader epochs) changed, those partitions with their
    /// leader epochs: their coordinators' state is to be loaded. Blocking
    /// (creates and deletes files).
    ///
    /// Only the topics that changed since the last apply are looked at
    /// (see metadata_changes.rs), and those whose replicas could not be
    /// created then, which are tried again.
    pub(crate) fn apply(
        &self,
        node: &ClusterNode,
        metadata: &Arc<ClusterMetadata>,
    ) -> Vec<(&'static str, BTreeMap<i32, i32>)> {
        let me = BrokerId(self.node_id);
        let now = rill_storage::now_ms();
        let failed_before = self.not_created.lock().clone();
        let changes = MetadataChanges::between(
            self.last_applied.lock().as_deref(),
            metadata,
            failed_before.keys().map(|tp| tp.topic.as_str()),
        );
        let mut wanted: HashSet<TopicPartition> = HashSet::new();
        {
            let mut applied = self.applied_configs.lock();
            if applied.broker != metadata.broker_configs {
                // New topic defaults: every topic's log config again.
                applied.broker.clone_from(&metadata.broker_configs);
                applied.topics.clear();
            }
        }
        self.prepare(metadata, &changes);
        let mut changed = RoleChanges::default();
        // Said at ERROR when a replica first fails, not at every apply.
        let mut not_created = BTreeMap::new();
        for topic in metadata
            .topics
            .values()
            .filter(|topic| changes.includes(&topic.name))
        {
            let min_insync_replicas = self.apply_configs(topic, metadata);
            for (index, state) in (0..).zip(&topic.partitions) {
                if !state.replicas.contains(&me) {
                    continue;
                }
                let tp = TopicPartition::new(&topic.name, index);
                wanted.insert(tp.clone());
                let partition = match self.ensure_partition(
                    &tp,
                    &topic.configs,
                    &metadata.broker_configs,
                ) {
                    Ok(partition) => partition,
                    Err(error) => {
                        if failed_before.contains_key(&tp) {
                            tracing::debug!(partition = %tp, %error, "cannot create the replica");
                        } else {
                            tracing::error!(partition = %tp, %error, "cannot create the replica");
                        }
                        not_created.insert(tp, error.to_string());
                        continue;
                    }
                };
                let replicas: Vec<i32> = state.replicas.iter().map(|b| b.0).collect();
                let isr: Vec<i32> = state.isr.iter().map(|b| b.0).collect();
                let epochs = (state.leader_epoch.0, state.partition_epoch.0);
                if state.leader == Some(me) {
                    if self.lead(&partition, topic.id, epochs, (&replicas, isr), now) {
                        changed.led += 1;
                    }
                } else if self.follow(
                    &partition,
                    state.leader.map(|b| b.0),
                    state.leader_epoch.0,
                    node,
                    metadata,
                ) {
                    match state.leader {
                        Some(_) => changed.followed += 1,
                        None => changed.offline += 1,
                    }
                }
                if let Some(replica) = self.replicas.lock().get_mut(&tp) {
                    replica.topic_id = topic.id;
                    replica.min_insync_replicas = min_insync_replicas;
                }
            }
        }
        let gone: Vec<TopicPartition> = self
            .replicas
            .lock()
            .keys()
            .filter(|tp| !wanted.contains(*tp) && changes.touches(&tp.topic))
            .cloned()
            .collect();
        for tp in gone {
            self.replicas.lock().remove(&tp);
            self.fetchers.unfollow(&tp);
            self.delete_partition(&tp);
        }
        if changes.is_everything() {
            // Local logs no topic of the metadata has (deleted while this
            // broker was down).
            for partition in self.logs.partitions() {
                let tp = partition.topic_partition();
                if !wanted.contains(tp) {
                    self.fetchers.unfollow(tp);
                    self.delete_partition(tp);
                }
            }
        } else {
            // Local logs of the topics deleted since (a replica never made
            // a leader or follower here has a log but no entry above).
            for topic in changes.deleted() {
                for index in (0..).take(topic.partitions.len()) {
                    let tp = TopicPartition::new(&topic.name, index);
                    if self.logs.get(&tp).is_some() {
                        self.fetchers.unfollow(&tp);
                        self.delete_partition(&tp);
                    }
                }
            }
        }
        self.applied_configs
            .lock()
            .topics
            .retain(|name, _| metadata.topics.contains_key(name));
        *self.last_applied.lock() = Some(Arc::clone(metadata));
        *self.not_created.lock() = not_created;
        self.leaderships
            .fetch_add(changed.led as u64, std::sync::atomic::Ordering::Relaxed);
        if changed != RoleChanges::default() {
            tracing::info!(
                leading = changed.led,
                following = changed.followed,
                offline = changed.offline,
                "replicas changed role"
            );
        }
        COORDINATOR_TOPICS
            .into_iter()
            .filter(|topic| changes.touches(topic))
            .filter_map(|topic| Some((topic, self.led_partitions_changed(topic)?)))
            .collect()
    }

    /// The file work of `apply` for many partitions at once: replicas
    /// created, and new leader epochs taken where this broker leads. Each
    /// is a few files and fsyncs; fsyncs of different files overlap on
    /// the disk (a journal commits them together), so a topic of 1,000
    /// partitions, or a restart that leads them all at a new epoch, costs
    /// a few disk latencies per thread rather than a thousand. What fails
    /// here is tried again, and reported, by the sequential pass.
    fn prepare(&self, metadata: &ClusterMetadata, changes: &MetadataChanges) {
        let me = BrokerId(self.node_id);
        let work: Vec<(TopicPartition, &BTreeMap<String, String>, Option<i32>)> = metadata
            .topics
            .values()
            .filter(|topic| changes.includes(&topic.name))
            .flat_map(|topic| {
                (0..)
                    .zip(&topic.partitions)
                    .filter(|(_, state)| state.replicas.contains(&me))
                    .map(move |(index, state)| {
                        let lead = (state.leader == Some(me)).then_some(state.leader_epoch.0);
                        (
                            TopicPartition::new(&topic.name, index),
                            &topic.configs,
                            lead,
                        )
                    })
            })
            .filter(|(tp, _, lead)| {
                let existing = self.logs.get(tp);
                match (existing, lead) {
                    (None, _) => true,
                    (Some(partition), Some(epoch)) => {
                        takes_epoch_now(&partition)
                            && partition
                                .latest_epoch()
                                .is_none_or(|latest| latest < *epoch)
                    }
                    (Some(_), None) => false,
                }
            })
            .collect();
        if work.len() < PREPARE_PARALLEL_MIN {
            return;
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..PREPARE_THREADS {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((tp, configs, lead)) = work.get(i) else {
                            return;
                        };
                        let Ok(partition) =
                            self.ensure_partition(tp, configs, &metadata.broker_configs)
                        else {
                            continue;
                        };
                        if let Some(epoch) = lead
                            && takes_epoch_now(&partition)
                        {
                            // Reported by `lead` if it fails again there.
                            let _ = partition.assign_leader_epoch(*epoch);
                        }
                    }
                });
            }
        });
    }

    /// The effective min.insync.replicas of a topic with `overrides`.
    fn min_insync_replicas(
        &self,
        overrides: &BTreeMap<String, String>,
        metadata: &ClusterMetadata,
    ) -> usize {
        effective_config::effective(
            overrides,
            BrokerLayers {
                dynamic: &metadata.broker_configs,
                static_: &self.properties,
            },
        )
        .into_iter()
        .find(|(def, _, _)| def.name == "min.insync.replicas")
        .and_then(|(_, value, _)| value.parse().ok())
        .unwrap_or(1)
    }

    /// The partitions of `topic` this broker leads, with their leader
    /// epochs, when they (or their epochs) changed since last asked: a new
    /// leader reads what its log holds of each group or transaction.
    fn led_partitions_changed(&self, topic: &'static str) -> Option<BTreeMap<i32, i32>> {
        let led: BTreeMap<i32, i32> = self
            .replicas
            .lock()
            .iter()
            .filter(|(tp, _)| tp.topic.as_str() == topic)
            .filter_map(|(tp, r)| match &r.role {
                Role::Leader(state) => Some((tp.partition, state.leader_epoch)),
                Role::Follower { .. } => None,
            })
            .collect();
        let mut coordinated = self.coordinated.lock();
        if coordinated.get(topic) == Some(&led) {
            return None;
        }
        coordinated.insert(topic, led.clone());
        Some(led)
    }

    /// Applies a topic's configs (over the cluster's broker configs) to
    /// its local replicas, when they changed.
    /// Applies `topic`'s configs to its local logs if they changed since
    /// last applied, and returns its min.insync.replicas. Only a change is
    /// worked out again: applying the metadata of many topics after each
    /// change must not cost a full config resolution per topic.
    fn apply_configs(&self, topic: &rill_cluster::Topic, metadata: &ClusterMetadata) -> usize {
        let mut applied = self.applied_configs.lock();
        if let Some((configs, min_insync_replicas)) = applied.topics.get(&topic.name)
            && *configs == topic.configs
        {
            return *min_insync_replicas;
        }
        let min_insync_replicas = self.min_insync_replicas(&topic.configs, metadata);
        applied.topics.insert(
            topic.name.clone(),
            (topic.configs.clone(), min_insync_replicas),
        );
        drop(applied);
        let config = match self.log_config(&topic.configs, &metadata.broker_configs) {
            Ok(config) => config,
            Err(error) => {
                tracing::error!(topic = %topic.name, %error, "the cluster's topic configs are invalid here");
                return min_insync_replicas;
            }
        };
        for index in 0..topic.partitions.len() {
            let tp = TopicPartition::new(&topic.name, i32::try_from(index).unwrap_or(i32::MAX));
            if let Some(partition) = self.logs.get(&tp)
                && let Err(error) = partition.log().set_config(config)
            {
                tracing::warn!(partition = %tp, %error, "could not apply the new config");
            }
        }
        min_insync_replicas
    }

    fn lead(
        &self,
        partition: &Arc<Partition>,
        topic_id: Uuid,
        (leader_epoch, partition_epoch): (i32, i32),
        (replicas, isr): (&[i32], Vec<i32>),
        now: i64,
    ) -> bool {
        let tp = partition.topic_partition().clone();
        let mut map = self.replicas.lock();
        if let Some(Replica {
            role: Role::Leader(state),
            ..
        }) = map.get_mut(&tp)
            && state.leader_epoch == leader_epoch
        {
            let change = (state.isr != isr).then(|| IsrChange {
                from: state.isr.clone(),
                to: isr.clone(),
            });
            state.update(partition_epoch, replicas, isr, now);
            drop(map);
            if let Some(change) = change {
                self.isr_changes.committed(&tp, &change);
            }
            self.advance_high_watermark(partition);
            return false;
        }
        drop(map);
        self.fetchers.unfollow(&tp);
        if takes_epoch_now(partition)
            && let Err(error) = partition.assign_leader_epoch(leader_epoch)
        {
            tracing::error!(partition = %tp, %error, "cannot record the new leader epoch");
        }
        // From here on the high watermark is the replicated one.
        partition.set_high_watermark(partition.high_watermark());
        let state = LeaderState::new(
            self.node_id,
            (leader_epoch, partition_epoch),
            replicas,
            isr,
            partition.log_end_offset(),
            now,
        );
        tracing::debug!(partition = %tp, leader_epoch, "leading");
        self.replicas.lock().insert(
            tp.clone(),
            Replica {
                role: Role::Leader(Box::new(state)),
                topic_id,
                min_insync_replicas: 1,
            },
        );
        self.advance_high_watermark(partition);
        self.waiters.notify(&tp);
        true
    }

    /// Follows `leader` (none: offline); whether that is a change.
    fn follow(
        &self,
        partition: &Arc<Partition>,
        leader: Option<i32>,
        leader_epoch: i32,
        node: &ClusterNode,
        metadata: &ClusterMetadata,
    ) -> bool {
        let tp = partition.topic_partition().clone();
        let role = Role::Follower {
            leader,
            leader_epoch,
        };
        let mut map = self.replicas.lock();
        if let Some(Replica {
            role:
                Role::Follower {
                    leader: l,
                    leader_epoch: e,
                },
            ..
        }) = map.get(&tp)
            && *l == leader
            && *e == leader_epoch
        {
            return false;
        }
        map.insert(
            tp.clone(),
            Replica {
                role,
                topic_id: Uuid::nil(),
                min_insync_replicas: 1,
            },
        );
        drop(map);
        // Followers' high watermarks come from their leaders.
        partition.set_high_watermark(partition.high_watermark());
        let address = leader.and_then(|l| {
            metadata
                .brokers
                .get(&BrokerId(l))
                .map(|b| crate::properties::HostPort {
                    host: b.host.clone(),
                    port: b.port,
                })
        });
        match (leader, address) {
            (Some(leader), Some(address)) if leader != self.node_id => {
                tracing::debug!(partition = %tp, leader, leader_epoch, "following");
                self.fetchers.follow(
                    Follow {
                        partition: Arc::clone(partition),
                        leader,
                        leader_epoch,
                    },
                    address.to_string(),
                    node.stopping(),
                );
            }
            _ => {
                tracing::debug!(partition = %tp, leader_epoch, "offline: no leader");
                self.fetchers.unfollow(&tp);
            }
        }
        true
    }

    /// The ISR changes the leader should propose now, each with what the
    /// AlterPartition needs.
    fn wanted_isr_changes(
        &self,
        metadata: &ClusterMetadata,
        now: i64,
    ) -> Vec<(TopicPartition, Command)> {
        let mut changes = Vec::new();
        let mut replicas = self.replicas.lock();
        for (tp, replica) in replicas.iter_mut() {
            let Role::Leader(state) = &mut replica.role else {
                continue;
            };
            let Some(partition) = self.logs.get(tp) else {
                continue;
            };
            // A fenced broker may not join (the controller would refuse);
            // it rejoins once it is unfenced and still caught up.
            let Some(wanted) = state.wanted_isr(
                partition.high_watermark(),
                (now, self.replica_lag_time_max_ms),
                |b| metadata.is_unfenced(BrokerId(b)),
            ) else {
                continue;
            };
            tracing::info!(partition = %tp, from = ?state.isr, to = ?wanted, "proposing an ISR change");
            state.pending_isr = Some(wanted.clone());
            changes.push((
                tp.clone(),
                Command::AlterPartition {
                    topic_id: replica.topic_id,
                    partition: tp.partition,
                    leader: BrokerId(self.node_id),
                    leader_epoch: LeaderEpoch(state.leader_epoch),
                    partition_epoch: PartitionEpoch(state.partition_epoch),
                    isr: wanted.into_iter().map(BrokerId).collect(),
                },
            ));
        }
        changes
    }

    /// The reassignments this broker, as leader, can end: every target
    /// replica is in the ISR.
    fn completed_reassignments(
        &self,
        metadata: &ClusterMetadata,
    ) -> Vec<(TopicPartition, Command)> {
        let me = BrokerId(self.node_id);
        let mut done = Vec::new();
        for topic in metadata.topics.values() {
            for (index, state) in (0..).zip(&topic.partitions) {
                let Some(target) = &state.target_replicas else {
                    continue;
                };
                if state.leader == Some(me) && target.iter().all(|b| state.isr.contains(b)) {
                    done.push((
                        TopicPartition::new(&topic.name, index),
                        Command::CompleteReassignment {
                            topic_id: topic.id,
                            partition: index,
                            partition_epoch: state.partition_epoch,
                        },
                    ));
                }
            }
        }
        done
    }

    fn clear_pending(&self, tp: &TopicPartition) {
        if let Some(Replica {
            role: Role::Leader(state),
            ..
        }) = self.replicas.lock().get_mut(tp)
        {
            state.pending_isr = None;
        }
    }

    pub(crate) async fn stop_fetchers(&self) {
        self.fetchers.stop().await;
    }
}

/// On every leader, shrinks ISRs of lagging followers and grows them for
/// followers that caught up, one AlterPartition per partition at a time.
pub(crate) async fn maintain_isr(node: Arc<ClusterNode>) {
    let lag = Duration::from_millis(node.config().replica_lag_time_max_ms);
    let period = (lag / 4).clamp(Duration::from_millis(20), Duration::from_secs(5));
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = node.replicas.isr_check.notified() => {}
        }
        let metadata = node.metadata();
        let mut changes = node
            .replicas
            .wanted_isr_changes(&metadata, rill_storage::now_ms());
        changes.extend(node.replicas.completed_reassignments(&metadata));
        for (tp, command) in changes {
            // Bounded: a leader cut off from the quorum must not stop
            // trying its other partitions for long.
            let bound = lag.max(Duration::from_secs(1));
            let Ok(proposed) = tokio::time::timeout(bound, node.propose(command)).await else {
                tracing::info!(partition = %tp, "ISR change not committed in time");
                node.replicas.clear_pending(&tp);
                continue;
            };
            match proposed {
                Ok(Applied::PartitionChanged { .. }) => {
                    tracing::info!(partition = %tp, "ISR changed");
                }
                Ok(other) => {
                    tracing::warn!(partition = %tp, ?other, "unexpected ISR change answer")
                }
                Err(error) => tracing::info!(partition = %tp, %error, "ISR change refused"),
            }
            // Committed (the metadata brings the new ISR) or refused: either
            // way the next round recomputes from the metadata.
            node.replicas.clear_pending(&tp);
        }
    }
}
