//! Share groups for admins (KIP-932), at the group's coordinator: start
//! offsets and record states (DescribeShareGroupOffsets), offsets altered
//! or deleted (AlterShareGroupOffsets, DeleteShareGroupOffsets), whole
//! groups deleted (DeleteGroups).
//!
//! A reset writes each share-partition's new state at the group's next
//! state epoch — a start offset with nothing in flight, or a start of −1
//! for no state — and then proposes that epoch to the metadata quorum.
//! Every broker serving one of the group's share-partitions then reads it
//! again before its next fetch (`SharePartitions::load`), and a write from
//! one that has not yet is fenced by the newer state epoch
//! (`ShareStates::write`).

use std::sync::Arc;

use rill_cluster::Command;
use rill_share::{SharePartition, ShareSnapshot, Summary};
use uuid::Uuid;

use super::partitions::ShareKey;
use super::state::StateError;
use super::{Shares, share_limits};
use crate::broker::Broker;

/// One share-partition as DescribeShareGroupOffsets shows it.
#[derive(Debug)]
pub(crate) struct PartitionView {
    /// −1: the group has no state for it.
    pub start_offset: i64,
    pub leader_epoch: i32,
    pub summary: Summary,
}

/// One change of a reset: a partition's new start, or `None` for no
/// state.
pub(crate) type NewStart = (Uuid, i32, Option<i64>);

impl Shares {
    /// Whether `group` is a share group: members here, or state.
    pub(crate) fn knows_group(&self, broker: &Broker, group: &str) -> bool {
        self.groups.lock().contains_key(group)
            || broker
                .node()
                .metadata()
                .share_groups
                .get(group)
                .is_some_and(|g| !g.topics.is_empty())
    }

    /// Whether `group` has members now (its offsets cannot be reset).
    pub(crate) fn has_members(&self, group: &str) -> bool {
        self.groups.lock().get(group).is_some_and(|g| !g.is_empty())
    }

    /// `Ok` if this broker may reset `group`'s state now: it coordinates
    /// the group, which has no members (else NON_EMPTY_GROUP).
    pub(crate) fn may_reset(
        &self,
        broker: &Broker,
        group: &str,
    ) -> Result<(), (kafka_protocol::ResponseError, String)> {
        broker
            .groups_for(group)
            .map_err(|e| (e, group.to_string()))?;
        if self.has_members(group) {
            return Err((
                kafka_protocol::ResponseError::NonEmptyGroup,
                format!("share group {group} has members"),
            ));
        }
        Ok(())
    }

    /// The topics `group` has share state for: name, id and partition
    /// count.
    pub(crate) fn state_topics(&self, broker: &Broker, group: &str) -> Vec<(String, Uuid, i32)> {
        let metadata = broker.node().metadata();
        let Some(record) = metadata.share_groups.get(group) else {
            return Vec::new();
        };
        metadata
            .topics
            .values()
            .filter(|t| record.topics.contains(&t.id))
            .map(|t| {
                let count = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
                (t.name.clone(), t.id, count)
            })
            .collect()
    }

    /// The start offset and record states of `group`'s share-partition of
    /// `partition`: from this broker's own copy if it serves it (the
    /// freshest), else from its last snapshot, where records held by a
    /// member show as available (locks are not written).
    pub(crate) async fn describe_partition(
        &self,
        broker: &Arc<Broker>,
        group: &str,
        (topic_id, partition): (Uuid, i32),
    ) -> Result<PartitionView, StateError> {
        let key = ShareKey::of(group, (topic_id, partition));
        if let Some(slot) = self.partitions.any(&key) {
            let state = slot.state.lock();
            return Ok(PartitionView {
                start_offset: state.start_offset(),
                leader_epoch: slot.leader_epoch,
                summary: state.summary(),
            });
        }
        let snapshot = self.states.read(broker, &key.state_key()).await?;
        Ok(match snapshot {
            Some(snapshot) => {
                let window = share_limits(broker, group).record_locks_max;
                let state =
                    SharePartition::restore(snapshot.start_offset, &snapshot.batches, window);
                PartitionView {
                    start_offset: snapshot.start_offset,
                    leader_epoch: snapshot.leader_epoch,
                    summary: state.summary(),
                }
            }
            None => PartitionView {
                start_offset: -1,
                leader_epoch: -1,
                summary: Summary::default(),
            },
        })
    }

    /// Resets `group`'s state: each of `changes` written at the next state
    /// epoch, then that epoch proposed — with `removed` topics no longer
    /// holding state, or, with `delete_group`, the whole group gone.
    pub(crate) async fn reset(
        &self,
        broker: &Arc<Broker>,
        group: &str,
        changes: &[NewStart],
        (removed, delete_group): (Vec<Uuid>, bool),
    ) -> Result<(), StateError> {
        let state_epoch = broker
            .node()
            .metadata()
            .share_groups
            .state_epoch(group)
            .saturating_add(1);
        let now = rill_storage::now_ms();
        for (topic_id, partition, start) in changes {
            let key = ShareKey::of(group, (*topic_id, *partition));
            let snapshot = ShareSnapshot {
                snapshot_epoch: 0,
                state_epoch,
                leader_epoch: -1,
                start_offset: start.unwrap_or(-1),
                create_timestamp_ms: now,
                write_timestamp_ms: now,
                batches: Vec::new(),
                dead_letter_producer: None,
            };
            self.states
                .write(broker, &key.state_key(), snapshot)
                .await?;
        }
        let not_recorded = |e: crate::cluster::ProposalError| StateError::Failed {
            key: group.to_string(),
            reason: format!("cannot record the reset: {e}"),
        };
        let altered: Vec<Uuid> = changes
            .iter()
            .filter(|(_, _, start)| start.is_some())
            .map(|(topic, _, _)| *topic)
            .collect();
        if !altered.is_empty() {
            let command = Command::AddShareGroupTopics {
                group: group.to_string(),
                topic_ids: altered,
            };
            broker.node().propose(command).await.map_err(not_recorded)?;
        }
        let command = if delete_group {
            Command::DeleteShareGroup {
                group: group.to_string(),
            }
        } else {
            Command::ResetShareGroupState {
                group: group.to_string(),
                removed_topic_ids: removed,
            }
        };
        broker.node().propose(command).await.map_err(not_recorded)?;
        // This broker serves the reset before the client hears of it.
        let applying = Arc::clone(broker);
        tokio::task::spawn_blocking(move || applying.node().apply_metadata())
            .await
            .map_err(|e| StateError::Failed {
                key: group.to_string(),
                reason: e.to_string(),
            })?;
        for (topic_id, partition, _) in changes {
            self.partitions
                .remove(&ShareKey::of(group, (*topic_id, *partition)));
        }
        if delete_group {
            self.groups.lock().remove(group);
        }
        tracing::info!(
            group,
            state_epoch,
            delete_group,
            "reset a share group's state"
        );
        Ok(())
    }
}
