//! Partitions as consumer groups name them: by topic id, the way KIP-848's
//! requests, responses and records do, and the topics a group can see.

use std::collections::{BTreeMap, BTreeSet};

/// A topic's id (Kafka's UUID), as its 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(pub [u8; 16]);

/// Partitions by topic: a member's target or current assignment. A topic
/// is never mapped to an empty set (see [`normalize`]).
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// One topic as the metadata has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: TopicId,
    pub name: String,
    pub partitions: i32,
}

/// The topics of the cluster, as the coordinator resolves subscriptions
/// against them: by name (subscriptions) and by id (assignments). Built
/// by the server from the metadata it has applied.
#[derive(Debug, Clone, Default)]
pub struct TopicsImage {
    by_name: BTreeMap<String, TopicId>,
    by_id: BTreeMap<TopicId, TopicInfo>,
}

impl TopicsImage {
    /// The image of `topics`.
    pub fn new(topics: impl IntoIterator<Item = TopicInfo>) -> TopicsImage {
        let mut image = TopicsImage::default();
        for topic in topics {
            image.by_name.insert(topic.name.clone(), topic.id);
            image.by_id.insert(topic.id, topic);
        }
        image
    }

    pub fn id(&self, name: &str) -> Option<TopicId> {
        self.by_name.get(name).copied()
    }

    pub fn topic(&self, id: TopicId) -> Option<&TopicInfo> {
        self.by_id.get(&id)
    }

    /// Every topic, by name.
    pub fn names(&self) -> impl Iterator<Item = (&str, TopicId)> {
        self.by_name.iter().map(|(name, id)| (name.as_str(), *id))
    }
}

/// Drops the topics mapped to no partition.
pub(crate) fn normalize(mut assignment: Assignment) -> Assignment {
    assignment.retain(|_, partitions| !partitions.is_empty());
    assignment
}

/// The partitions of `a` that are not in `b`.
pub(crate) fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    normalize(
        a.iter()
            .map(|(topic, partitions)| {
                let rest = match b.get(topic) {
                    Some(other) => partitions.difference(other).copied().collect(),
                    None => partitions.clone(),
                };
                (*topic, rest)
            })
            .collect(),
    )
}

/// The partitions in both `a` and `b`.
pub(crate) fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    normalize(
        a.iter()
            .filter_map(|(topic, partitions)| {
                let other = b.get(topic)?;
                Some((*topic, partitions.intersection(other).copied().collect()))
            })
            .collect(),
    )
}

/// Whether any partition is in both.
pub(crate) fn overlaps(a: &Assignment, b: &Assignment) -> bool {
    a.iter().any(|(topic, partitions)| {
        b.get(topic)
            .is_some_and(|other| !partitions.is_disjoint(other))
    })
}

/// Whether every partition of `a` is in `b`.
pub(crate) fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter().all(|(topic, partitions)| {
        b.get(topic)
            .is_some_and(|other| partitions.is_subset(other))
    })
}

/// How many partitions.
#[cfg(test)]
pub(crate) fn count(assignment: &Assignment) -> usize {
    assignment.values().map(BTreeSet::len).sum()
}

#[cfg(test)]
pub(crate) fn of(entries: &[(u8, &[i32])]) -> Assignment {
    normalize(
        entries
            .iter()
            .map(|(topic, partitions)| (topic_id(*topic), partitions.iter().copied().collect()))
            .collect(),
    )
}

#[cfg(test)]
pub(crate) fn topic_id(n: u8) -> TopicId {
    TopicId([n; 16])
}
