//! What the cluster keeps about share groups (KIP-932) in the metadata
//! quorum: for each group, the topics it has share state for (so that
//! DescribeShareGroupOffsets and DeleteGroups find every share-partition
//! whatever broker answers) and the epoch of its state, bumped when an
//! admin alters or deletes its offsets so that every broker serving one of
//! its share-partitions reads it again. Membership is not here: members
//! rejoin a new coordinator, as in Kafka.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One share group's durable facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareGroupRecord {
    /// Bumped by every reset of the group's state (altered or deleted
    /// offsets, the group deleted); a share-partition loaded at an older
    /// one is stale.
    pub state_epoch: i32,
    /// The topics the group has share state for; none once deleted.
    pub topics: BTreeSet<Uuid>,
}

/// Every share group that has share state, by group id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareGroups {
    groups: BTreeMap<String, ShareGroupRecord>,
}

impl ShareGroups {
    pub fn get(&self, group: &str) -> Option<&ShareGroupRecord> {
        self.groups.get(group)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &ShareGroupRecord)> {
        self.groups.iter()
    }

    /// The group's state epoch: 0 for a group with none yet.
    pub fn state_epoch(&self, group: &str) -> i32 {
        self.groups.get(group).map_or(0, |g| g.state_epoch)
    }

    pub(crate) fn add_topics(&mut self, group: &str, topics: &[Uuid]) -> i32 {
        let record = self.groups.entry(group.to_owned()).or_default();
        record.topics.extend(topics.iter().copied());
        record.state_epoch
    }

    pub(crate) fn reset(&mut self, group: &str, removed: &[Uuid]) -> i32 {
        let record = self.groups.entry(group.to_owned()).or_default();
        record.state_epoch = record.state_epoch.saturating_add(1);
        for topic in removed {
            record.topics.remove(topic);
        }
        record.state_epoch
    }

    /// The group has no state any more. Its epoch stays (bumped), so that
    /// share-partitions loaded before are stale for a new group of the
    /// same name.
    pub(crate) fn delete(&mut self, group: &str) -> i32 {
        self.reset(group, &[]);
        let record = self.groups.entry(group.to_owned()).or_default();
        record.topics.clear();
        record.state_epoch
    }

    /// A deleted topic leaves every group.
    pub(crate) fn forget_topic(&mut self, topic: Uuid) {
        for record in self.groups.values_mut() {
            record.topics.remove(&topic);
        }
    }
}
