//! The share-partitions of the partitions this broker leads: each one's
//! record states ([`SharePartition`]) loaded from its last snapshot in
//! `__share_group_state` (or started where `share.auto.offset.reset`
//! says, and that start written at once), and written back after every
//! change that must outlive this broker: acknowledgements, releases,
//! archiving. Acquisitions are not written: a lock dies with its leader.
//!
//! Thread-safe. The map's mutex is held for lookups; a share-partition's
//! own mutex for its state changes and its log read; its write mutex
//! (async) across a snapshot's write, so that snapshots of one
//! share-partition are written one at a time, each with the state of when
//! it is taken — a later write never carries less than an earlier one.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rill_partition::{OffsetSpec, Partition};
use rill_share::{SharePartition, ShareSnapshot, ShareStateKey};
use uuid::Uuid;

use super::state::{ShareStates, StateError};
use crate::broker::Broker;

/// One share-partition: a group's view of one topic partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ShareKey {
    pub group: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

impl ShareKey {
    /// `group`'s share-partition of a partition as share requests name it.
    pub(crate) fn of(group: &str, (topic_id, partition): (Uuid, i32)) -> ShareKey {
        ShareKey {
            group: group.to_string(),
            topic_id,
            partition,
        }
    }

    pub(crate) fn state_key(&self) -> ShareStateKey {
        ShareStateKey {
            group: self.group.clone(),
            topic_id: *self.topic_id.as_bytes(),
            partition: self.partition,
        }
    }
}

/// A loaded share-partition.
#[derive(Debug)]
pub(crate) struct ShareSlot {
    pub state: Mutex<SharePartition>,
    /// The topic partition's leader epoch when loaded: the share-partition
    /// is good while this broker leads at that epoch.
    pub leader_epoch: i32,
    /// The group's state epoch in the metadata when loaded: a reset since
    /// (offsets altered or deleted) makes the share-partition stale.
    pub group_state_epoch: i32,
    writes: tokio::sync::Mutex<Writes>,
    /// A task writes its dead letters (dead_letters.rs).
    pub writing_dead_letters: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Writes {
    snapshot_epoch: i32,
    state_epoch: i32,
    created_ms: i64,
}

/// See the module doc.
#[derive(Debug, Default)]
pub(crate) struct SharePartitions {
    slots: Mutex<HashMap<ShareKey, Arc<ShareSlot>>>,
    /// Held while a share-partition is loaded, so that it is loaded once.
    loading: tokio::sync::Mutex<()>,
}

impl SharePartitions {
    /// The share-partition of `key`, if loaded at `leader_epoch`.
    pub(crate) fn get(&self, key: &ShareKey, leader_epoch: i32) -> Option<Arc<ShareSlot>> {
        self.slots
            .lock()
            .get(key)
            .filter(|slot| slot.leader_epoch == leader_epoch)
            .cloned()
    }

    /// Forgets the share-partition of `key` (its group's state was reset):
    /// the next fetch loads it again.
    pub(crate) fn remove(&self, key: &ShareKey) {
        self.slots.lock().remove(key);
    }

    /// The share-partition of `key`, whatever its epoch.
    pub(crate) fn any(&self, key: &ShareKey) -> Option<Arc<ShareSlot>> {
        self.slots.lock().get(key).cloned()
    }

    /// Every loaded share-partition.
    pub(crate) fn all(&self) -> Vec<(ShareKey, Arc<ShareSlot>)> {
        self.slots
            .lock()
            .iter()
            .map(|(key, slot)| (key.clone(), Arc::clone(slot)))
            .collect()
    }

    /// Loads the share-partition of `key` for `partition`, which this
    /// broker leads at `leader_epoch`: from its snapshot, or new where
    /// the group's `share.auto.offset.reset` says, that start written
    /// before any record is handed out.
    pub(crate) async fn load(
        &self,
        broker: &Arc<Broker>,
        states: &ShareStates,
        (key, partition, leader_epoch): (&ShareKey, &Partition, i32),
    ) -> Result<Arc<ShareSlot>, StateError> {
        let _one_at_a_time = self.loading.lock().await;
        let group_state_epoch = broker
            .node()
            .metadata()
            .share_groups
            .state_epoch(&key.group);
        if let Some(slot) = self.get(key, leader_epoch)
            && slot.group_state_epoch >= group_state_epoch
        {
            return Ok(slot);
        }
        register_topic(broker, key).await?;
        let state_key = key.state_key();
        let (state, writes) = match states.read(broker, &state_key).await? {
            Some(snapshot) => {
                let window_max = super::share_limits(broker, &key.group).record_locks_max;
                let mut state =
                    SharePartition::restore(snapshot.start_offset, &snapshot.batches, window_max);
                state.restore_dead_letter_producer(snapshot.dead_letter_producer);
                state.advance_log_start(partition.log_start_offset().value());
                let writes = Writes {
                    snapshot_epoch: snapshot.snapshot_epoch,
                    state_epoch: snapshot.state_epoch,
                    created_ms: snapshot.create_timestamp_ms,
                };
                (state, writes)
            }
            None => {
                let start = start_offset(broker, &key.group, partition);
                let now = rill_storage::now_ms();
                let snapshot = ShareSnapshot {
                    snapshot_epoch: 0,
                    state_epoch: group_state_epoch,
                    leader_epoch,
                    start_offset: start,
                    create_timestamp_ms: now,
                    write_timestamp_ms: now,
                    batches: Vec::new(),
                    dead_letter_producer: None,
                };
                states.write(broker, &state_key, snapshot).await?;
                let writes = Writes {
                    snapshot_epoch: 0,
                    state_epoch: group_state_epoch,
                    created_ms: now,
                };
                (SharePartition::new(start), writes)
            }
        };
        tracing::debug!(
            group = key.group,
            partition = key.partition,
            start_offset = state.start_offset(),
            "loaded a share-partition"
        );
        let slot = Arc::new(ShareSlot {
            state: Mutex::new(state),
            leader_epoch,
            group_state_epoch,
            writes: tokio::sync::Mutex::new(writes),
            writing_dead_letters: std::sync::atomic::AtomicBool::new(false),
        });
        self.slots.lock().insert(key.clone(), Arc::clone(&slot));
        Ok(slot)
    }

    /// Writes the share-partition's state as it is now.
    pub(crate) async fn persist(
        broker: &Arc<Broker>,
        states: &ShareStates,
        (key, slot): (&ShareKey, &ShareSlot),
    ) -> Result<(), StateError> {
        let mut writes = slot.writes.lock().await;
        let (start_offset, batches, dead_letter_producer) = {
            let state = slot.state.lock();
            (
                state.start_offset(),
                state.state_batches(),
                state.dead_letter_producer(),
            )
        };
        writes.snapshot_epoch = writes.snapshot_epoch.wrapping_add(1).max(1);
        let snapshot = ShareSnapshot {
            snapshot_epoch: writes.snapshot_epoch,
            state_epoch: writes.state_epoch,
            leader_epoch: slot.leader_epoch,
            start_offset,
            create_timestamp_ms: writes.created_ms,
            write_timestamp_ms: rill_storage::now_ms(),
            batches,
            dead_letter_producer,
        };
        states.write(broker, &key.state_key(), snapshot).await
    }
}

/// Records in the metadata that `key`'s group has share state for its
/// topic (so that admin requests find it), unless it is there.
async fn register_topic(broker: &Broker, key: &ShareKey) -> Result<(), StateError> {
    let known = broker
        .node()
        .metadata()
        .share_groups
        .get(&key.group)
        .is_some_and(|g| g.topics.contains(&key.topic_id));
    if known {
        return Ok(());
    }
    broker
        .node()
        .propose(rill_cluster::Command::AddShareGroupTopics {
            group: key.group.clone(),
            topic_ids: vec![key.topic_id],
        })
        .await
        .map_err(|e| StateError::NotAvailable {
            key: key.state_key().coordinator_key(),
            reason: format!("cannot record the group's topic: {e}"),
        })?;
    Ok(())
}

/// Where a new share-partition starts: `share.auto.offset.reset`.
fn start_offset(broker: &Broker, group: &str, partition: &Partition) -> i64 {
    let spec = super::auto_offset_reset(broker, group);
    match partition.list_offset(spec) {
        Ok(Some(found)) => found.offset.value(),
        // No record at or after the time: start at the end.
        _ => partition
            .list_offset(OffsetSpec::Latest)
            .ok()
            .flatten()
            .map_or(0, |found| found.offset.value()),
    }
}
