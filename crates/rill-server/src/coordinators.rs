//! The coordinators a broker hosts — of consumer groups, of transactions
//! and of share-partition state — and their internal topics: which partition a key
//! (a group id, a transactional id) belongs to, which broker leads it and
//! so coordinates the key, the topic's creation on first use, and the
//! loading of a coordinator's state when this broker comes to lead some
//! of its partitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::cluster::Coordinators;
use crate::groups::{GroupsSlot, OFFSETS_TOPIC};
use crate::properties::HostPort;
use crate::transactions::TransactionsSlot;

/// Which coordinator a FindCoordinator key names (Kafka's CoordinatorType).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CoordinatorKind {
    Group,
    Transaction,
    /// Of share-partition state (KIP-932): keys `group:topicId:partition`.
    Share,
}

impl CoordinatorKind {
    /// Kafka's CoordinatorType code: 0 group, 1 transaction, 2 share.
    pub(crate) fn from_code(code: i8) -> Option<CoordinatorKind> {
        match code {
            0 => Some(CoordinatorKind::Group),
            1 => Some(CoordinatorKind::Transaction),
            2 => Some(CoordinatorKind::Share),
            _ => None,
        }
    }

    /// The internal topic whose partitions' leaders coordinate such keys.
    pub(crate) fn topic(self) -> &'static str {
        match self {
            CoordinatorKind::Group => OFFSETS_TOPIC,
            CoordinatorKind::Transaction => rill_txn::TXN_STATE_TOPIC,
            CoordinatorKind::Share => rill_share::SHARE_STATE_TOPIC,
        }
    }

    /// The partition of [`CoordinatorKind::topic`] that holds `key`.
    pub(crate) fn partition_for(self, key: &str, partitions: i32) -> i32 {
        match self {
            CoordinatorKind::Group => rill_group::partition_for(key, partitions),
            CoordinatorKind::Transaction => rill_txn::partition_for(key, partitions),
            CoordinatorKind::Share => rill_record::coordinator_partition(key, partitions),
        }
    }
}

/// How an internal topic is created.
struct InternalTopic {
    partitions: i32,
    replication_factor: i16,
    /// min.insync.replicas, if the topic sets it.
    min_insync_replicas: Option<i16>,
    segment_bytes: i32,
}

/// Hands each coordinator the partitions of its topic this broker leads.
pub(crate) struct CoordinatorSlots {
    pub groups: Arc<GroupsSlot>,
    pub transactions: Arc<TransactionsSlot>,
}

impl Coordinators for CoordinatorSlots {
    fn partitions_led(&self, topic: &str, partitions: i32, led: BTreeMap<i32, i32>) {
        if topic == OFFSETS_TOPIC {
            self.groups
                .coordinate(partitions, led.into_keys().collect());
        } else if topic == rill_txn::TXN_STATE_TOPIC {
            self.transactions.coordinate(partitions, led);
        }
    }
}

impl Broker {
    /// The broker coordinating `key`: the leader of its partition of the
    /// kind's internal topic. Without the topic yet, its creation is
    /// proposed (its replication factor capped at the brokers registered,
    /// once that many are unfenced) and the answer is
    /// COORDINATOR_NOT_AVAILABLE, which clients retry; so is it while this
    /// broker leads the partition but has not loaded its state yet (rather
    /// than COORDINATOR_LOAD_IN_PROGRESS, which librdkafka hands a
    /// synchronous commit back as a failure).
    pub(crate) fn coordinator(
        &self,
        kind: CoordinatorKind,
        key: &str,
    ) -> Result<(i32, HostPort), ResponseError> {
        if !self.node().metadata().topics.contains_key(kind.topic()) {
            self.create_internal_topic(kind);
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let coordinator = self
            .coordinator_of(kind, key)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        if coordinator.0 == self.config().node_id {
            let loaded = match kind {
                CoordinatorKind::Group => self.groups().for_group(key, true).is_ok(),
                CoordinatorKind::Transaction => self.transactions().for_id(key, true).is_ok(),
                // Loaded on first use (shares/state.rs): led is enough.
                CoordinatorKind::Share => {
                    let metadata = self.node().metadata();
                    let partitions = metadata
                        .topics
                        .get(kind.topic())
                        .map_or(0, |t| t.partitions.len());
                    let index = kind
                        .partition_for(key, i32::try_from(partitions).unwrap_or(i32::MAX).max(1));
                    let tp = rill_partition::TopicPartition::new(kind.topic(), index);
                    self.leader_partition(&tp, -1).is_ok()
                }
            };
            if !loaded {
                return Err(ResponseError::CoordinatorNotAvailable);
            }
        }
        Ok(coordinator)
    }

    /// Whether the metadata makes this broker `key`'s coordinator.
    pub(crate) fn coordinates(&self, kind: CoordinatorKind, key: &str) -> bool {
        self.coordinator_of(kind, key)
            .is_some_and(|(leader, _)| leader == self.config().node_id)
    }

    /// The broker the metadata makes `key`'s coordinator, if any.
    fn coordinator_of(&self, kind: CoordinatorKind, key: &str) -> Option<(i32, HostPort)> {
        let metadata = self.node().metadata();
        let topic = metadata.topics.get(kind.topic())?;
        let partitions = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let index = kind.partition_for(key, partitions);
        let leader = usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .and_then(|p| p.leader)
            .and_then(|leader| metadata.brokers.get(&leader))?;
        Some((
            leader.id.0,
            HostPort {
                host: leader.host.clone(),
                port: leader.port,
            },
        ))
    }

    fn internal_topic(&self, kind: CoordinatorKind) -> InternalTopic {
        let config = self.config();
        match kind {
            CoordinatorKind::Group => InternalTopic {
                partitions: config.offsets_topic_partitions,
                replication_factor: config.cluster.offsets_topic_replication_factor,
                min_insync_replicas: None,
                segment_bytes: config.offsets_topic_segment_bytes,
            },
            CoordinatorKind::Transaction => InternalTopic {
                partitions: config.transactions.log_partitions,
                replication_factor: config.transactions.log_replication_factor,
                min_insync_replicas: Some(config.transactions.log_min_isr),
                segment_bytes: config.transactions.log_segment_bytes,
            },
            CoordinatorKind::Share => InternalTopic {
                partitions: config.share_state_topic.partitions,
                replication_factor: config.share_state_topic.replication_factor,
                min_insync_replicas: Some(config.share_state_topic.min_isr),
                segment_bytes: config.offsets_topic_segment_bytes,
            },
        }
    }

    fn create_internal_topic(&self, kind: CoordinatorKind) {
        let name = kind.topic();
        let wanted = self.internal_topic(kind);
        let metadata = self.node().metadata();
        let replication_factor = usize::try_from(wanted.replication_factor)
            .unwrap_or(1)
            .min(metadata.brokers.len())
            .max(1);
        let unfenced = metadata.brokers.values().filter(|b| !b.fenced).count();
        if unfenced < replication_factor {
            tracing::debug!(
                unfenced,
                replication_factor,
                "waiting for brokers before creating {name}"
            );
            return;
        }
        let mut configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                wanted.segment_bytes.to_string(),
            ),
        ]);
        if let Some(min_isr) = wanted.min_insync_replicas {
            // A smaller cluster than the default expects still works.
            let min_isr = usize::try_from(min_isr)
                .unwrap_or(1)
                .min(replication_factor);
            configs.insert("min.insync.replicas".to_string(), min_isr.to_string());
        }
        let partitions = usize::try_from(wanted.partitions).unwrap_or(1);
        let node = Arc::clone(self.node_arc());
        tokio::spawn(async move {
            match node
                .create_topic(name, partitions, replication_factor, configs)
                .await
            {
                Ok(_) => {
                    tracing::info!(partitions, replication_factor, "created {name}");
                    crate::topics::apply_in_background(node).await;
                }
                Err(error) => tracing::debug!(%error, "creating {name}"),
            }
        });
    }
}
