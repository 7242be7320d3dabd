//! What changed between two metadata versions, for the replica manager to
//! apply only that.
//!
//! Each topic of the metadata is shared between versions until a command
//! changes it (the state machine copies a topic on write), so a topic that
//! is the same `Arc` in both versions is unchanged, and comparing pointers
//! finds the changed ones without looking at any partition. Creating one
//! topic among 50,000 partitions then costs the broker that topic, not all
//! of them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rill_cluster::{ClusterMetadata, Topic};

/// The topics an apply of new metadata must look at.
pub(crate) struct MetadataChanges {
    /// The names of the topics that are new or changed (or are to be
    /// looked at again), or `None` for all of them: the first apply, or
    /// the brokers or the cluster's broker configs changed, which touch
    /// every partition (a leader's address, a topic default).
    changed: Option<HashSet<String>>,
    /// The topics of the last version gone from this one, by name.
    deleted: BTreeMap<String, Arc<Topic>>,
}

impl MetadataChanges {
    /// The changes from `last` (the version applied before, if any) to
    /// `now`; the topics in `again` count as changed whatever their
    /// state (replicas the last apply could not create are tried again).
    pub(crate) fn between<'a>(
        last: Option<&ClusterMetadata>,
        now: &ClusterMetadata,
        again: impl Iterator<Item = &'a str>,
    ) -> MetadataChanges {
        let Some(last) = last.filter(|last| {
            last.brokers == now.brokers && last.broker_configs == now.broker_configs
        }) else {
            return MetadataChanges {
                changed: None,
                deleted: BTreeMap::new(),
            };
        };
        let mut changed: HashSet<String> = again.map(str::to_string).collect();
        changed.extend(
            now.topics
                .iter()
                .filter(|(name, topic)| {
                    last.topics
                        .get(*name)
                        .is_none_or(|before| !Arc::ptr_eq(before, topic))
                })
                .map(|(name, _)| name.clone()),
        );
        let deleted = last
            .topics
            .iter()
            .filter(|(name, _)| !now.topics.contains_key(*name))
            .map(|(name, topic)| (name.clone(), Arc::clone(topic)))
            .collect();
        MetadataChanges {
            changed: Some(changed),
            deleted,
        }
    }

    /// Whether every topic is to be looked at.
    pub(crate) fn is_everything(&self) -> bool {
        self.changed.is_none()
    }

    /// Whether topic `name`, which the new version has, is to be looked at.
    pub(crate) fn includes(&self, name: &str) -> bool {
        self.changed.as_ref().is_none_or(|set| set.contains(name))
    }

    /// Whether replicas of topic `name` may have changed or gone: it is
    /// looked at, or it was deleted.
    pub(crate) fn touches(&self, name: &str) -> bool {
        self.includes(name) || self.deleted.contains_key(name)
    }

    /// The topics deleted since the last version.
    pub(crate) fn deleted(&self) -> impl Iterator<Item = &Arc<Topic>> {
        self.deleted.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_cluster::Topic;

    fn topic(name: &str) -> Arc<Topic> {
        Arc::new(Topic {
            name: name.to_string(),
            id: uuid::Uuid::nil(),
            configs: Default::default(),
            partitions: Vec::new(),
        })
    }

    #[test]
    fn only_topics_made_new_or_gone_count_unless_brokers_changed() {
        let mut before = ClusterMetadata::default();
        for name in ["a", "b", "c"] {
            before.topics.insert(name.to_string(), topic(name));
        }
        let mut after = before.clone();
        after.topics.insert("b".to_string(), topic("b"));
        after.topics.remove("c");
        after.topics.insert("d".to_string(), topic("d"));
        let changes = MetadataChanges::between(Some(&before), &after, ["a"].into_iter());
        assert!(!changes.is_everything());
        assert!(changes.includes("a"), "asked for again");
        assert!(changes.includes("b"), "changed");
        assert!(changes.includes("d"), "new");
        assert!(changes.touches("c") && !changes.includes("c"), "deleted");
        let unchanged = MetadataChanges::between(Some(&after), &after, std::iter::empty());
        assert!(!unchanged.includes("a") && !unchanged.touches("c"));

        let mut configs_changed = after.clone();
        configs_changed
            .broker_configs
            .insert("log.retention.ms".to_string(), "1".to_string());
        let everything =
            MetadataChanges::between(Some(&after), &configs_changed, std::iter::empty());
        assert!(everything.is_everything() && everything.includes("a"));
        assert!(MetadataChanges::between(None, &after, std::iter::empty()).is_everything());
    }
}
