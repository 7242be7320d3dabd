//! Durable share-partition state: snapshots in `__share_group_state`
//! (KIP-932's share coordinator). A share-partition's key hashes to one
//! partition of that compacted topic, as a group id does to one of
//! `__consumer_offsets`; that partition's leader coordinates the key. It
//! appends each snapshot the share-partition's leader sends, and answers
//! once the snapshot is replicated (the high watermark passed it); reads
//! come from the snapshots it loaded by reading its partition once per
//! leader epoch.
//!
//! A leader of the data partition that is not the coordinator reaches it
//! with ReadShareGroupState and WriteShareGroupState (see
//! `apis/read_share_group_state.rs`).
//!
//! Thread-safe. One async mutex per state partition orders its loads and
//! writes (a write waits for replication while holding it, so a reload
//! never misses a write); the snapshot map has its own short mutex.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use rill_partition::{FetchIsolation, Partition, TopicPartition};
use rill_record::{BatchBuilder, KeyedBatchError, KeyedBatchItem, keyed_batch, read_keyed_batches};
use rill_share::{SHARE_STATE_TOPIC, ShareSnapshot, ShareStateKey};
use rill_storage::Offset;

use crate::broker::Broker;
use crate::coordinators::CoordinatorKind;
use crate::groups::Persisted;

/// Bytes read per step while loading a state partition.
const LOAD_READ_BYTES: usize = 4 << 20;
/// The most bytes one batch of the state topic may expand to.
const BATCH_EXPANDED_MAX: usize = 64 << 20;

/// Why a share-partition's state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    #[error("the share state of {key} is not available here: {reason}")]
    NotAvailable { key: String, reason: String },
    #[error("the share state of {key} was written at leader epoch {stored}, after {written}")]
    Fenced {
        key: String,
        stored: i32,
        written: i32,
    },
    #[error("share state of {key}: {reason}")]
    Failed { key: String, reason: String },
}

impl StateError {
    /// The Kafka error a client or a peer is answered with.
    pub(crate) fn code(&self) -> ResponseError {
        match self {
            StateError::NotAvailable { .. } => ResponseError::CoordinatorNotAvailable,
            StateError::Fenced { .. } => ResponseError::FencedStateEpoch,
            StateError::Failed { .. } => ResponseError::UnknownServerError,
        }
    }
}

#[derive(Debug, Default)]
struct Loaded {
    /// Each state partition loaded here, with its leader epoch then.
    partitions: HashMap<i32, i32>,
    snapshots: HashMap<ShareStateKey, (i32, ShareSnapshot)>,
}

/// See the module doc.
#[derive(Default)]
pub(crate) struct ShareStates {
    loaded: Mutex<Loaded>,
    /// How this broker asks the coordinators elsewhere.
    peers: std::sync::OnceLock<crate::peer_client::PeerClient>,
    /// Orders the loads and writes of each state partition.
    partition_locks: Mutex<HashMap<i32, Arc<tokio::sync::Mutex<()>>>>,
}

impl ShareStates {
    /// The last snapshot of `key`, from this broker if it coordinates the
    /// key, else from its coordinator.
    pub(crate) async fn read(
        &self,
        broker: &Arc<Broker>,
        key: &ShareStateKey,
    ) -> Result<Option<ShareSnapshot>, StateError> {
        match self.coordinator(broker, key)? {
            Coordinator::Here(index) => {
                let lock = self.partition_lock(index);
                let _ordered = lock.lock().await;
                self.load(broker, key, index).await?;
                // A reset to no state is a snapshot starting at -1.
                Ok(self
                    .loaded
                    .lock()
                    .snapshots
                    .get(key)
                    .filter(|(_, s)| s.start_offset >= 0)
                    .map(|(_, s)| s.clone()))
            }
            Coordinator::Elsewhere(node) => super::remote::read(broker, node, key).await,
        }
    }

    /// Makes `snapshot` the state of `key`, once replicated.
    pub(crate) async fn write(
        &self,
        broker: &Arc<Broker>,
        key: &ShareStateKey,
        snapshot: ShareSnapshot,
    ) -> Result<(), StateError> {
        match self.coordinator(broker, key)? {
            Coordinator::Here(index) => self.write_at(broker, key, index, snapshot).await,
            Coordinator::Elsewhere(node) => super::remote::write(broker, node, key, snapshot).await,
        }
    }

    /// [`ShareStates::read`] for a key this broker coordinates (a peer's
    /// ReadShareGroupState).
    pub(crate) async fn read_here(
        &self,
        broker: &Arc<Broker>,
        key: &ShareStateKey,
    ) -> Result<Option<ShareSnapshot>, StateError> {
        match self.coordinator(broker, key)? {
            Coordinator::Here(_) => self.read(broker, key).await,
            Coordinator::Elsewhere(_) => {
                Err(not_available(key, "this broker is not its coordinator"))
            }
        }
    }

    /// [`ShareStates::write`] for a key this broker coordinates (a peer's
    /// WriteShareGroupState).
    pub(crate) async fn write_here(
        &self,
        broker: &Arc<Broker>,
        key: &ShareStateKey,
        snapshot: ShareSnapshot,
    ) -> Result<(), StateError> {
        match self.coordinator(broker, key)? {
            Coordinator::Here(index) => self.write_at(broker, key, index, snapshot).await,
            Coordinator::Elsewhere(_) => {
                Err(not_available(key, "this broker is not its coordinator"))
            }
        }
    }

    async fn write_at(
        &self,
        broker: &Arc<Broker>,
        key: &ShareStateKey,
        index: i32,
        snapshot: ShareSnapshot,
    ) -> Result<(), StateError> {
        let lock = self.partition_lock(index);
        let _ordered = lock.lock().await;
        let epoch = self.load(broker, key, index).await?;
        // A reset (a newer state epoch) wins; within one state epoch, the
        // newer leader does.
        if let Some((_, stored)) = self.loaded.lock().snapshots.get(key)
            && (stored.state_epoch, stored.leader_epoch)
                > (snapshot.state_epoch, snapshot.leader_epoch)
        {
            return Err(StateError::Fenced {
                key: key.coordinator_key(),
                stored: stored.leader_epoch,
                written: snapshot.leader_epoch,
            });
        }
        let (partition, leader_epoch) = self.state_partition(broker, key, index)?;
        if leader_epoch != epoch {
            return Err(not_available(key, "the state partition's leader changed"));
        }
        let failed = |reason: String| StateError::Failed {
            key: key.coordinator_key(),
            reason,
        };
        let record = [(
            rill_share::encode_key(key).map_err(|e| failed(e.to_string()))?,
            Some(rill_share::encode_value(&snapshot).map_err(|e| failed(e.to_string()))?),
        )];
        let now = rill_storage::now_ms();
        let batch = keyed_batch(BatchBuilder::new(now), &record)
            .map_err(|e| failed(e.to_string()))?
            .ok_or_else(|| failed("an empty batch".into()))?;
        let ticket = partition
            .append_from_coordinator(&batch, leader_epoch, now)
            .map_err(|e| failed(e.to_string()))?;
        let end = partition.log_end_offset();
        let tp = partition.topic_partition().clone();
        let waiters = Arc::clone(&broker.groups().deps().waiters);
        tokio::spawn(async move {
            match ticket.await {
                Ok(_) => waiters.notify(&tp),
                Err(error) => tracing::error!(partition = %tp, %error, "share state append failed"),
            }
        });
        let persisted = Persisted::new(Arc::clone(&partition), end);
        if !crate::groups::acknowledged(broker.groups().deps(), Some(persisted)).await {
            return Err(failed("not replicated in time".into()));
        }
        self.loaded
            .lock()
            .snapshots
            .insert(key.clone(), (index, snapshot));
        Ok(())
    }

    /// The client of the other brokers.
    pub(crate) fn peers(&self, broker: &Broker) -> &crate::peer_client::PeerClient {
        self.peers.get_or_init(|| {
            crate::peer_client::PeerClient::new(broker.connector().clone(), "rill-share-state")
        })
    }

    fn partition_lock(&self, index: i32) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(self.partition_locks.lock().entry(index).or_default())
    }

    /// Where `key`'s coordinator is; asks for the state topic's creation
    /// if it does not exist yet.
    fn coordinator(&self, broker: &Broker, key: &ShareStateKey) -> Result<Coordinator, StateError> {
        let coordinator_key = key.coordinator_key();
        let (node, _) = broker
            .coordinator(CoordinatorKind::Share, &coordinator_key)
            .map_err(|e| not_available(key, &format!("{e:?}")))?;
        if node != broker.config().node_id {
            return Ok(Coordinator::Elsewhere(node));
        }
        let metadata = broker.node().metadata();
        let partitions = metadata
            .topics
            .get(SHARE_STATE_TOPIC)
            .map_or(0, |t| t.partitions.len());
        let partitions = i32::try_from(partitions).unwrap_or(i32::MAX);
        if partitions == 0 {
            return Err(not_available(key, "no state topic yet"));
        }
        Ok(Coordinator::Here(
            CoordinatorKind::Share.partition_for(&coordinator_key, partitions),
        ))
    }

    fn state_partition(
        &self,
        broker: &Broker,
        key: &ShareStateKey,
        index: i32,
    ) -> Result<(Arc<Partition>, i32), StateError> {
        let tp = TopicPartition::new(SHARE_STATE_TOPIC, index);
        broker
            .leader_partition(&tp, -1)
            .map_err(|e| not_available(key, &format!("{tp}: {e:?}")))
    }

    /// Reads state partition `index` into the snapshots, unless it was
    /// read at its current leader epoch already; returns that epoch.
    async fn load(
        &self,
        broker: &Broker,
        key: &ShareStateKey,
        index: i32,
    ) -> Result<i32, StateError> {
        let (partition, epoch) = self.state_partition(broker, key, index)?;
        if self.loaded.lock().partitions.get(&index) == Some(&epoch) {
            return Ok(epoch);
        }
        let scanned = tokio::task::spawn_blocking(move || scan(&partition))
            .await
            .map_err(|e| StateError::Failed {
                key: key.coordinator_key(),
                reason: e.to_string(),
            })?
            .map_err(|reason| StateError::Failed {
                key: key.coordinator_key(),
                reason,
            })?;
        let mut loaded = self.loaded.lock();
        loaded.snapshots.retain(|_, (i, _)| *i != index);
        let count = scanned.len();
        for (key, snapshot) in scanned {
            loaded.snapshots.insert(key, (index, snapshot));
        }
        loaded.partitions.insert(index, epoch);
        tracing::info!(
            partition = index,
            share_partitions = count,
            "loaded share state"
        );
        Ok(epoch)
    }
}

impl std::fmt::Debug for ShareStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareStates").finish_non_exhaustive()
    }
}

enum Coordinator {
    /// This broker leads this partition of the state topic.
    Here(i32),
    /// That broker does.
    Elsewhere(i32),
}

fn not_available(key: &ShareStateKey, reason: &str) -> StateError {
    StateError::NotAvailable {
        key: key.coordinator_key(),
        reason: reason.to_string(),
    }
}

/// The last snapshot of every key in `partition`, up to its high
/// watermark. A record that does not decode is skipped with a warning: one
/// damaged share-partition must not make the others unreadable.
fn scan(partition: &Partition) -> Result<HashMap<ShareStateKey, ShareSnapshot>, String> {
    let mut found: HashMap<ShareStateKey, ShareSnapshot> = HashMap::new();
    let mut offset = partition.log_start_offset();
    let end = partition.high_watermark();
    while offset < end {
        let read = partition
            .read(offset, LOAD_READ_BYTES, FetchIsolation::HighWatermark, true)
            .map_err(|e| e.to_string())?;
        if read.bytes.is_empty() {
            break;
        }
        let mut next = offset;
        let used = read_keyed_batches::<KeyedBatchError>(
            &read.bytes,
            BATCH_EXPANDED_MAX,
            SHARE_STATE_TOPIC,
            |item| {
                match item {
                    KeyedBatchItem::Control { batch } => next = Offset(batch.next_offset()),
                    KeyedBatchItem::Record { batch, record } => {
                        next = Offset(batch.next_offset());
                        match rill_share::decode_key(record.key) {
                            Ok(Some(key)) => match record.value.map(rill_share::decode_value) {
                                None => {
                                    found.remove(&key);
                                }
                                Some(Ok(snapshot)) => {
                                    found.insert(key, snapshot);
                                }
                                Some(Err(error)) => tracing::warn!(
                                    offset = record.offset,
                                    %error,
                                    "skipping a share state snapshot"
                                ),
                            },
                            Ok(None) => {}
                            Err(error) => tracing::warn!(
                                offset = record.offset,
                                %error,
                                "skipping a share state record"
                            ),
                        }
                    }
                }
                Ok(())
            },
        )
        .map_err(|e| e.to_string())?;
        if used == 0 || next <= offset {
            break;
        }
        offset = next;
    }
    Ok(found)
}
