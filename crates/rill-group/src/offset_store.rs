//! Committed offsets in memory: per group, per partition, the last offset
//! committed with its leader epoch, metadata and timestamps, rebuilt from
//! `__consumer_offsets` at load and kept in step with it afterwards.
//!
//! The log is the source of truth, so every change goes through it in two
//! phases, as in Kafka's coordinator: an operation ([`OffsetStore::commit`],
//! [`OffsetStore::delete_offsets`], [`OffsetStore::delete_group`],
//! [`OffsetStore::expire`]) checks its input and returns the records to
//! append, changing nothing visible; once the append is acknowledged the
//! caller hands the same records to [`OffsetStore::complete`] (or to
//! [`OffsetStore::abort`] if it failed). Loading replays the topic through
//! [`OffsetStore::replay`], the same path, so memory and log cannot
//! disagree about what a record means.
//!
//! Transactional commits (TxnOffsetCommit, KIP-98) are staged per group
//! and producer id until the producer's transaction ends; see the `txn`
//! module and [`OffsetStore::commit_transactional`].

mod txn;

use std::collections::{BTreeMap, BTreeSet};

use crate::consumer::ConsumerGroupRecord;
use crate::offsets_topic::{
    OffsetCommitKey, OffsetCommitValue, OffsetsTopicRecord, STRING_BYTES_MAX,
};
use txn::TxnOffsets;

/// Kafka's default for `offset.metadata.max.bytes`.
pub const OFFSET_METADATA_MAX_BYTES_DEFAULT: usize = 4096;
/// Kafka's default for `offsets.retention.minutes` (7 days), in ms.
pub const OFFSETS_RETENTION_MS_DEFAULT: i64 = 7 * 24 * 60 * 60 * 1000;
/// The offset OffsetFetch returns for a partition with no committed offset.
pub const NO_OFFSET: i64 = -1;

/// Why an offset commit was refused; each maps to a Kafka error code for
/// that one partition (the others in the request still commit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffsetStoreError {
    /// OFFSET_METADATA_TOO_LARGE. Kafka compares Java's `String.length()`
    /// (UTF-16 code units) with `offset.metadata.max.bytes`; Rill does the
    /// same, and also refuses metadata over the 32767 UTF-8 bytes that the
    /// record's int16-length string can hold.
    #[error(
        "metadata for {topic}-{partition} is {metadata_length} long, more than the {max} allowed"
    )]
    OffsetMetadataTooLarge {
        topic: String,
        partition: i32,
        metadata_length: usize,
        max: usize,
    },
}

/// One partition's offset in an OffsetCommit request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    /// `None` (a null in the request) is stored as "", as Kafka does.
    pub metadata: Option<String>,
    /// From OffsetCommit v2..=v4's retention time (commit time + retention),
    /// or v1's per-partition timestamp; `None` for v5+, which leave
    /// expiry to offsets.retention.minutes.
    pub expire_timestamp_ms: Option<i64>,
}

/// One partition's answer to OffsetFetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    /// [`NO_OFFSET`] when the group has committed none.
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    /// "" when none was committed.
    pub metadata: String,
}

/// How the offsets of one group may expire, decided by the group's
/// membership state: Kafka's `offsetExpirationCondition` (KIP-211). Only
/// the group coordinator knows this; [`OffsetStore::expire`] asks it for
/// each group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryCondition<'a> {
    /// No group membership (a standalone consumer that uses the broker only
    /// to store offsets): an offset expires `retention_ms` after its commit.
    Standalone,
    /// The group is Empty. With `empty_since_ms` (the group metadata's
    /// currentStateTimestamp: when it became Empty) every offset expires
    /// `retention_ms` after that, however recently it was committed;
    /// without it (metadata older than v2) each expires `retention_ms`
    /// after its own commit.
    Empty { empty_since_ms: Option<i64> },
    /// A Stable group of protocol type "consumer" whose subscribed topics
    /// are known: offsets of topics it no longer subscribes to expire
    /// `retention_ms` after their commit; the others are kept.
    StableConsumer {
        subscribed_topics: &'a BTreeSet<String>,
    },
    /// Any other state (rebalancing, Stable with unknown subscriptions,
    /// another protocol type): nothing expires.
    Never,
}

type PartitionOffsets = BTreeMap<i32, OffsetCommitValue>;
type GroupOffsets = BTreeMap<String, PartitionOffsets>;

/// The committed offsets of every group this coordinator has loaded, plus
/// the commits being appended. Not thread-safe: the server owns it behind
/// the coordinator's lock and calls it from there only.
#[derive(Debug, Clone)]
pub struct OffsetStore {
    /// `offset.metadata.max.bytes`.
    metadata_max_bytes: usize,
    /// group → topic → partition → committed offset.
    groups: BTreeMap<String, GroupOffsets>,
    /// Commits returned by `commit` and not yet completed or aborted, with
    /// how many are in flight for each key: expiry leaves these alone, so
    /// a tombstone can never land after (and erase) a fresh commit.
    pending: BTreeMap<OffsetCommitKey, u32>,
    /// The log position of the record each key was last completed from
    /// (the end offset of its append, or the record's own offset when
    /// loaded or committed by a transaction; batches do not overlap, so
    /// either orders appends as the log does): commits acknowledged out of
    /// append order never put an older offset over a newer one, and a
    /// transaction's offsets replace a plain commit only if they were
    /// appended after it (Kafka's `CommitRecordMetadataAndOffset`).
    completed_at: BTreeMap<OffsetCommitKey, u64>,
    /// Transactional commits staged until their transaction ends.
    txn: TxnOffsets,
}

impl Default for OffsetStore {
    fn default() -> Self {
        OffsetStore::new(OFFSET_METADATA_MAX_BYTES_DEFAULT)
    }
}

impl OffsetStore {
    /// An empty store refusing metadata longer than `metadata_max_bytes`
    /// (`offset.metadata.max.bytes`).
    pub fn new(metadata_max_bytes: usize) -> OffsetStore {
        OffsetStore {
            metadata_max_bytes,
            groups: BTreeMap::new(),
            pending: BTreeMap::new(),
            completed_at: BTreeMap::new(),
            txn: TxnOffsets::default(),
        }
    }

    /// Checks each of `offsets` and returns, in the same order, the record
    /// to append for it or why it was refused. Commit timestamps are
    /// `now_ms`. Nothing is visible to [`OffsetStore::fetch`] until the
    /// records are passed to [`OffsetStore::complete`]; until then, or
    /// [`OffsetStore::abort`], expiry skips these partitions.
    ///
    /// Whether the member may commit (generation, member id) is the group
    /// coordinator's check, made before this.
    pub fn commit(
        &mut self,
        group: &str,
        offsets: &[OffsetToCommit],
        now_ms: i64,
    ) -> Vec<Result<OffsetsTopicRecord, OffsetStoreError>> {
        offsets
            .iter()
            .map(|commit| {
                let (key, value) = self.checked(group, commit, now_ms)?;
                *self.pending.entry(key.clone()).or_insert(0) += 1;
                Ok(OffsetsTopicRecord::OffsetCommit {
                    key,
                    value: Some(value),
                })
            })
            .collect()
    }

    /// The key and value to store for `commit`, if its metadata fits.
    fn checked(
        &self,
        group: &str,
        commit: &OffsetToCommit,
        now_ms: i64,
    ) -> Result<(OffsetCommitKey, OffsetCommitValue), OffsetStoreError> {
        let metadata = commit.metadata.clone().unwrap_or_default();
        self.check_metadata(commit, &metadata)?;
        let key = OffsetCommitKey {
            group: group.to_owned(),
            topic: commit.topic.clone(),
            partition: commit.partition,
        };
        let value = OffsetCommitValue {
            offset: commit.offset,
            leader_epoch: commit.leader_epoch,
            metadata,
            commit_timestamp_ms: now_ms,
            expire_timestamp_ms: commit.expire_timestamp_ms,
        };
        Ok((key, value))
    }

    fn check_metadata(
        &self,
        commit: &OffsetToCommit,
        metadata: &str,
    ) -> Result<(), OffsetStoreError> {
        let too_large = |metadata_length, max| OffsetStoreError::OffsetMetadataTooLarge {
            topic: commit.topic.clone(),
            partition: commit.partition,
            metadata_length,
            max,
        };
        let utf16_units = metadata.encode_utf16().count();
        if utf16_units > self.metadata_max_bytes {
            return Err(too_large(utf16_units, self.metadata_max_bytes));
        }
        if metadata.len() > STRING_BYTES_MAX {
            return Err(too_large(metadata.len(), STRING_BYTES_MAX));
        }
        Ok(())
    }

    /// Applies `records` once their append is acknowledged, in append
    /// order, and ends the pending state of the commits among them.
    pub fn complete(&mut self, records: impl IntoIterator<Item = OffsetsTopicRecord>) {
        for record in records {
            self.unpend(&record);
            self.apply(record, None);
        }
    }

    /// [`OffsetStore::complete`] for records appended together, ending at
    /// `log_position` in `__consumer_offsets`: a key completed before from
    /// a later position keeps that value (acknowledgements may arrive out
    /// of append order; the log's order is the truth).
    pub fn complete_at(
        &mut self,
        records: impl IntoIterator<Item = OffsetsTopicRecord>,
        log_position: u64,
    ) {
        for record in records {
            self.unpend(&record);
            self.apply(record, Some(log_position));
        }
    }

    /// Forgets the pending commits among `records`, whose append failed.
    pub fn abort(&mut self, records: &[OffsetsTopicRecord]) {
        for record in records {
            self.unpend(record);
        }
    }

    fn unpend(&mut self, record: &OffsetsTopicRecord) {
        if let OffsetsTopicRecord::OffsetCommit {
            key,
            value: Some(_),
        } = record
            && let Some(count) = self.pending.get_mut(key)
        {
            *count -= 1;
            if *count == 0 {
                self.pending.remove(key);
            }
        }
    }

    /// Applies one non-transactional record read from `__consumer_offsets`
    /// (at load, in log order): a commit replaces the partition's offset, a
    /// tombstone deletes it (and drops what transactions staged for it).
    /// Group metadata records are the group coordinator's; only a group's
    /// tombstone matters here: it drops what transactions staged for the
    /// group. [`OffsetStore::replay_batches`] replays whole reads,
    /// transactions included.
    pub fn replay(&mut self, record: OffsetsTopicRecord) {
        self.apply(record, None);
    }

    /// Applies a non-transactional record appended at `log_position` (if
    /// known), unless its key was already completed from a later one.
    fn apply(&mut self, record: OffsetsTopicRecord, log_position: Option<u64>) {
        if let (OffsetsTopicRecord::OffsetCommit { key, .. }, Some(position)) =
            (&record, log_position)
        {
            match self.completed_at.get(key) {
                Some(later) if *later > position => return,
                _ => {
                    self.completed_at.insert(key.clone(), position);
                }
            }
        }
        match record {
            OffsetsTopicRecord::OffsetCommit {
                key,
                value: Some(value),
            } => self.insert(key, value),
            OffsetsTopicRecord::OffsetCommit { key, value: None } => {
                // Kafka's removeOffsets drops staged transactional offsets
                // of the partition too, so a later commit marker cannot
                // bring a deleted offset back.
                self.txn.drop_key(&key, log_position);
                self.remove(&key.group, &key.topic, key.partition);
            }
            OffsetsTopicRecord::GroupMetadata { key, value: None } => {
                self.txn.drop_group(&key.group);
            }
            OffsetsTopicRecord::GroupMetadata { value: Some(_), .. } => {}
            // A consumer group's deletion ends with its epoch's tombstone.
            OffsetsTopicRecord::ConsumerGroup(ConsumerGroupRecord::Metadata {
                group_id,
                value: None,
            }) => self.txn.drop_group(&group_id),
            OffsetsTopicRecord::ConsumerGroup(_) => {}
        }
    }

    fn insert(&mut self, key: OffsetCommitKey, value: OffsetCommitValue) {
        self.groups
            .entry(key.group)
            .or_default()
            .entry(key.topic)
            .or_default()
            .insert(key.partition, value);
    }

    fn remove(&mut self, group: &str, topic: &str, partition: i32) {
        let Some(topics) = self.groups.get_mut(group) else {
            return;
        };
        if let Some(partitions) = topics.get_mut(topic) {
            partitions.remove(&partition);
            if partitions.is_empty() {
                topics.remove(topic);
            }
        }
        if topics.is_empty() {
            self.groups.remove(group);
        }
    }

    /// The committed offset of one partition, if any.
    pub fn offset(&self, group: &str, topic: &str, partition: i32) -> Option<&OffsetCommitValue> {
        self.groups.get(group)?.get(topic)?.get(&partition)
    }

    /// OffsetFetch: the committed offsets of `group` for `partitions`, in
    /// the order asked, with [`NO_OFFSET`] and "" metadata for those with
    /// none; or, for `None`, every partition with an offset, ordered by
    /// topic and partition.
    pub fn fetch(&self, group: &str, partitions: Option<&[(&str, i32)]>) -> Vec<FetchedOffset> {
        let topics = self.groups.get(group);
        match partitions {
            Some(partitions) => partitions
                .iter()
                .map(|&(topic, partition)| {
                    let value = topics
                        .and_then(|topics| topics.get(topic))
                        .and_then(|offsets| offsets.get(&partition));
                    match value {
                        Some(value) => fetched(topic, partition, value),
                        None => FetchedOffset {
                            topic: topic.to_owned(),
                            partition,
                            offset: NO_OFFSET,
                            leader_epoch: None,
                            metadata: String::new(),
                        },
                    }
                })
                .collect(),
            None => topics
                .into_iter()
                .flatten()
                .flat_map(|(topic, offsets)| {
                    offsets
                        .iter()
                        .map(move |(&partition, value)| fetched(topic, partition, value))
                })
                .collect(),
        }
    }

    /// Whether `group` has any committed offset, or offsets staged by a
    /// transaction not yet ended (an Empty group without either can be
    /// removed; Kafka's `hasOffsets`).
    pub fn has_offsets(&self, group: &str) -> bool {
        self.groups.contains_key(group) || self.txn.has_group(group)
    }

    /// The groups with committed or transaction-staged offsets, in order
    /// (ListGroups reports offset-only groups too).
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        let groups: BTreeSet<&str> = self
            .groups
            .keys()
            .map(String::as_str)
            .chain(self.txn.groups())
            .collect();
        groups.into_iter()
    }

    /// OffsetDelete: tombstones for those of `partitions` that have an
    /// offset. Whether the group may delete them (it must be Empty or not
    /// subscribed to the topic) is the group coordinator's check.
    pub fn delete_offsets(
        &self,
        group: &str,
        partitions: &[(&str, i32)],
    ) -> Vec<OffsetsTopicRecord> {
        partitions
            .iter()
            .filter(|&&(topic, partition)| self.offset(group, topic, partition).is_some())
            .map(|&(topic, partition)| tombstone(group, topic, partition))
            .collect()
    }

    /// DeleteGroups: tombstones for every offset of `group`. The group
    /// metadata tombstone is the group coordinator's to add.
    pub fn delete_group(&self, group: &str) -> Vec<OffsetsTopicRecord> {
        self.groups
            .get(group)
            .into_iter()
            .flatten()
            .flat_map(|(topic, offsets)| {
                offsets
                    .keys()
                    .map(move |&partition| tombstone(group, topic, partition))
            })
            .collect()
    }

    /// Tombstones for the offsets that have expired at `now_ms` under
    /// `offsets.retention.minutes` (`retention_ms`), following Kafka's
    /// `removeExpiredOffsets`: `condition` says, per group, how its offsets
    /// may expire ([`ExpiryCondition`]); within that, an offset with an
    /// explicit expire timestamp (a v1 value) expires when `now_ms`
    /// reaches it, any other when `now_ms - base >= retention_ms`. Offsets
    /// with a commit in flight, or staged by a transaction not yet ended,
    /// are kept (staged offsets themselves never expire).
    pub fn expire<'a>(
        &self,
        now_ms: i64,
        retention_ms: i64,
        condition: impl Fn(&str) -> ExpiryCondition<'a>,
    ) -> Vec<OffsetsTopicRecord> {
        let mut expired = Vec::new();
        for (group, topics) in &self.groups {
            let condition = condition(group);
            for (topic, offsets) in topics {
                let base_of = |value: &OffsetCommitValue| match condition {
                    ExpiryCondition::Never => None,
                    ExpiryCondition::Standalone => Some(value.commit_timestamp_ms),
                    ExpiryCondition::Empty { empty_since_ms } => {
                        Some(empty_since_ms.unwrap_or(value.commit_timestamp_ms))
                    }
                    ExpiryCondition::StableConsumer { subscribed_topics } => {
                        (!subscribed_topics.contains(topic)).then_some(value.commit_timestamp_ms)
                    }
                };
                for (&partition, value) in offsets {
                    let Some(base_ms) = base_of(value) else {
                        continue;
                    };
                    let is_expired = match value.expire_timestamp_ms {
                        Some(expire_ms) => now_ms >= expire_ms,
                        None => now_ms.saturating_sub(base_ms) >= retention_ms,
                    };
                    if is_expired && !self.has_pending(group, topic, partition) {
                        expired.push(tombstone(group, topic, partition));
                    }
                }
            }
        }
        expired
    }

    /// Whether the partition has a commit whose outcome is not known yet:
    /// a plain commit being appended, or an offset a transaction staged and
    /// has not ended. OffsetFetch with require_stable (KIP-447) answers
    /// UNSTABLE_OFFSET_COMMIT for such a partition (Kafka's
    /// `hasPendingOffsetCommitsForTopicPartition`).
    pub fn has_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.txn.contains(group, topic, partition) || self.is_pending(group, topic, partition)
    }

    fn is_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        self.pending.contains_key(&OffsetCommitKey {
            group: group.to_owned(),
            topic: topic.to_owned(),
            partition,
        })
    }
}

fn fetched(topic: &str, partition: i32, value: &OffsetCommitValue) -> FetchedOffset {
    FetchedOffset {
        topic: topic.to_owned(),
        partition,
        offset: value.offset,
        leader_epoch: value.leader_epoch,
        metadata: value.metadata.clone(),
    }
}

fn tombstone(group: &str, topic: &str, partition: i32) -> OffsetsTopicRecord {
    OffsetsTopicRecord::OffsetCommit {
        key: OffsetCommitKey {
            group: group.to_owned(),
            topic: topic.to_owned(),
            partition,
        },
        value: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY_MS: i64 = 24 * 60 * 60 * 1000;

    fn to_commit(topic: &str, partition: i32, offset: i64) -> OffsetToCommit {
        OffsetToCommit {
            topic: topic.to_owned(),
            partition,
            offset,
            leader_epoch: Some(2),
            metadata: None,
            expire_timestamp_ms: None,
        }
    }

    /// Commits and completes, as the server does after a good append.
    fn commit_now(store: &mut OffsetStore, group: &str, offsets: &[OffsetToCommit], now_ms: i64) {
        let records: Vec<_> = store
            .commit(group, offsets, now_ms)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        store.complete(records);
    }

    #[test]
    fn commit_is_visible_only_after_complete() {
        let mut store = OffsetStore::default();
        let results = store.commit("g", &[to_commit("t", 0, 10)], 1_000);
        let records: Vec<_> = results.into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(store.fetch("g", Some(&[("t", 0)]))[0].offset, NO_OFFSET);
        assert_eq!(
            records,
            vec![OffsetsTopicRecord::OffsetCommit {
                key: OffsetCommitKey {
                    group: "g".to_owned(),
                    topic: "t".to_owned(),
                    partition: 0
                },
                value: Some(OffsetCommitValue {
                    offset: 10,
                    leader_epoch: Some(2),
                    metadata: String::new(),
                    commit_timestamp_ms: 1_000,
                    expire_timestamp_ms: None,
                }),
            }]
        );
        store.complete(records);
        let fetched = store.fetch("g", Some(&[("t", 0)]));
        assert_eq!(
            fetched,
            vec![FetchedOffset {
                topic: "t".to_owned(),
                partition: 0,
                offset: 10,
                leader_epoch: Some(2),
                metadata: String::new(),
            }]
        );
        assert!(store.pending.is_empty());
    }

    #[test]
    fn aborted_commit_changes_nothing() {
        let mut store = OffsetStore::default();
        let records: Vec<_> = store
            .commit("g", &[to_commit("t", 0, 10)], 1_000)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        store.abort(&records);
        assert!(store.pending.is_empty());
        assert!(!store.has_offsets("g"));
    }

    #[test]
    fn fetch_reports_missing_partitions_as_minus_one() {
        let mut store = OffsetStore::default();
        commit_now(
            &mut store,
            "g",
            &[to_commit("t", 1, 5), to_commit("a", 0, 7)],
            0,
        );
        let fetched = store.fetch("g", Some(&[("t", 0), ("t", 1)]));
        assert_eq!(fetched[0].offset, NO_OFFSET);
        assert_eq!(fetched[0].leader_epoch, None);
        assert_eq!(fetched[0].metadata, "");
        assert_eq!(fetched[1].offset, 5);
        // All partitions: ordered by topic, then partition.
        let all: Vec<(String, i32, i64)> = store
            .fetch("g", None)
            .into_iter()
            .map(|f| (f.topic, f.partition, f.offset))
            .collect();
        assert_eq!(all, vec![("a".to_owned(), 0, 7), ("t".to_owned(), 1, 5)]);
        assert!(store.fetch("unknown", None).is_empty());
        assert_eq!(
            store.fetch("unknown", Some(&[("t", 1)]))[0].offset,
            NO_OFFSET
        );
    }

    #[test]
    fn metadata_over_the_limit_is_refused_per_partition() {
        let mut store = OffsetStore::new(4);
        let mut long = to_commit("t", 0, 1);
        long.metadata = Some("12345".to_owned());
        let mut fits = to_commit("t", 1, 1);
        // Four UTF-16 units, eight UTF-8 bytes: Kafka counts the units.
        fits.metadata = Some("éééé".to_owned());
        let results = store.commit("g", &[long, fits], 0);
        assert_eq!(
            results[0],
            Err(OffsetStoreError::OffsetMetadataTooLarge {
                topic: "t".to_owned(),
                partition: 0,
                metadata_length: 5,
                max: 4
            })
        );
        assert!(results[1].is_ok());
        // Only the accepted one is pending.
        assert_eq!(store.pending.len(), 1);
        // Above what the record's string can hold, whatever the config.
        let mut store = OffsetStore::new(usize::MAX);
        let mut huge = to_commit("t", 0, 1);
        huge.metadata = Some("x".repeat(STRING_BYTES_MAX + 1));
        assert!(matches!(
            store.commit("g", &[huge], 0)[0],
            Err(OffsetStoreError::OffsetMetadataTooLarge {
                max: STRING_BYTES_MAX,
                ..
            })
        ));
    }

    #[test]
    fn replay_later_records_win_and_tombstones_delete() {
        let mut store = OffsetStore::default();
        let commit = |offset| OffsetsTopicRecord::OffsetCommit {
            key: OffsetCommitKey {
                group: "g".to_owned(),
                topic: "t".to_owned(),
                partition: 0,
            },
            value: Some(OffsetCommitValue {
                offset,
                leader_epoch: None,
                metadata: "m".to_owned(),
                commit_timestamp_ms: offset,
                expire_timestamp_ms: None,
            }),
        };
        store.replay(commit(1));
        store.replay(commit(2));
        assert_eq!(store.offset("g", "t", 0).map(|v| v.offset), Some(2));
        store.replay(OffsetsTopicRecord::GroupMetadata {
            key: crate::offsets_topic::GroupMetadataKey {
                group: "g".to_owned(),
            },
            value: None,
        });
        assert_eq!(store.offset("g", "t", 0).map(|v| v.offset), Some(2));
        store.replay(tombstone("g", "t", 0));
        assert_eq!(store.offset("g", "t", 0), None);
        assert!(!store.has_offsets("g"));
        assert_eq!(store.groups().count(), 0);
        // A tombstone for something never committed is harmless.
        store.replay(tombstone("x", "y", 3));
        store.replay(commit(3));
        assert_eq!(store.groups().collect::<Vec<_>>(), vec!["g"]);
    }

    #[test]
    fn delete_offsets_and_group_return_tombstones_for_existing_offsets() {
        let mut store = OffsetStore::default();
        commit_now(
            &mut store,
            "g",
            &[
                to_commit("t", 0, 1),
                to_commit("t", 1, 1),
                to_commit("u", 0, 1),
            ],
            0,
        );
        let deleted = store.delete_offsets("g", &[("t", 1), ("t", 9)]);
        assert_eq!(deleted, vec![tombstone("g", "t", 1)]);
        store.complete(deleted);
        assert_eq!(store.offset("g", "t", 1), None);
        let deleted = store.delete_group("g");
        assert_eq!(
            deleted,
            vec![tombstone("g", "t", 0), tombstone("g", "u", 0)]
        );
        assert!(deleted.iter().all(OffsetsTopicRecord::is_tombstone));
        store.complete(deleted);
        assert!(!store.has_offsets("g"));
        assert!(store.delete_group("g").is_empty());
    }

    #[test]
    fn standalone_offsets_expire_by_commit_timestamp() {
        let mut store = OffsetStore::default();
        commit_now(&mut store, "simple", &[to_commit("t", 0, 1)], 0);
        commit_now(&mut store, "simple", &[to_commit("t", 1, 1)], DAY_MS);
        let retention = 7 * DAY_MS;
        let standalone = |_: &str| ExpiryCondition::Standalone;
        assert!(
            store
                .expire(retention - 1, retention, standalone)
                .is_empty()
        );
        // Exactly the retention after the commit: expired (>=, as Kafka).
        assert_eq!(
            store.expire(retention, retention, standalone),
            vec![tombstone("simple", "t", 0)]
        );
        assert_eq!(
            store
                .expire(retention + DAY_MS, retention, standalone)
                .len(),
            2
        );
    }

    #[test]
    fn empty_group_offsets_expire_from_when_it_became_empty() {
        let mut store = OffsetStore::default();
        commit_now(&mut store, "g", &[to_commit("t", 0, 1)], 0);
        commit_now(&mut store, "g", &[to_commit("t", 1, 1)], 5 * DAY_MS);
        let retention = 7 * DAY_MS;
        // Empty since day 3: both expire at day 10, even the one committed
        // on day 5 (Kafka measures from the state change, not the commit).
        let since = |_: &str| ExpiryCondition::Empty {
            empty_since_ms: Some(3 * DAY_MS),
        };
        assert!(store.expire(10 * DAY_MS - 1, retention, since).is_empty());
        assert_eq!(store.expire(10 * DAY_MS, retention, since).len(), 2);
        // Without the timestamp (old metadata), each by its commit.
        let unknown = |_: &str| ExpiryCondition::Empty {
            empty_since_ms: None,
        };
        assert_eq!(
            store.expire(7 * DAY_MS, retention, unknown),
            vec![tombstone("g", "t", 0)]
        );
    }

    #[test]
    fn stable_consumer_group_expires_only_unsubscribed_topics() {
        let mut store = OffsetStore::default();
        commit_now(
            &mut store,
            "g",
            &[to_commit("kept", 0, 1), to_commit("gone", 0, 1)],
            0,
        );
        let subscribed: BTreeSet<String> = ["kept".to_owned()].into();
        let condition = |_: &str| ExpiryCondition::StableConsumer {
            subscribed_topics: &subscribed,
        };
        assert_eq!(
            store.expire(30 * DAY_MS, 7 * DAY_MS, condition),
            vec![tombstone("g", "gone", 0)]
        );
        // Rebalancing or otherwise unknown: nothing expires.
        assert!(
            store
                .expire(30 * DAY_MS, 7 * DAY_MS, |_| ExpiryCondition::Never)
                .is_empty()
        );
    }

    #[test]
    fn explicit_expire_timestamp_wins_over_retention() {
        let mut store = OffsetStore::default();
        let mut short = to_commit("t", 0, 1);
        short.expire_timestamp_ms = Some(DAY_MS);
        let mut long = to_commit("t", 1, 1);
        long.expire_timestamp_ms = Some(30 * DAY_MS);
        commit_now(&mut store, "g", &[short, long], 0);
        let standalone = |_: &str| ExpiryCondition::Standalone;
        // Day 1: the short one is due although retention (7 days) is not.
        assert_eq!(
            store.expire(DAY_MS, 7 * DAY_MS, standalone),
            vec![tombstone("g", "t", 0)]
        );
        // Day 8: the long one is kept although retention has passed.
        assert_eq!(store.expire(8 * DAY_MS, 7 * DAY_MS, standalone).len(), 1);
        assert_eq!(store.expire(30 * DAY_MS, 7 * DAY_MS, standalone).len(), 2);
    }

    #[test]
    fn a_commit_acknowledged_late_does_not_replace_a_later_one() {
        let mut store = OffsetStore::default();
        let offsets = |offset| {
            [OffsetToCommit {
                topic: "t".into(),
                partition: 0,
                offset,
                leader_epoch: None,
                metadata: None,
                expire_timestamp_ms: None,
            }]
        };
        let first: Vec<_> = store
            .commit("g", &offsets(100), 1)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let second: Vec<_> = store
            .commit("g", &offsets(200), 2)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        // Appended in that order (ending at 10 and 11); acknowledged the
        // other way round.
        store.complete_at(second, 11);
        store.complete_at(first, 10);
        assert_eq!(store.fetch("g", Some(&[("t", 0)]))[0].offset, 200);
        assert!(store.pending.is_empty());
    }

    #[test]
    fn pending_commits_are_not_expired() {
        let mut store = OffsetStore::default();
        commit_now(&mut store, "g", &[to_commit("t", 0, 1)], 0);
        let in_flight: Vec<_> = store
            .commit("g", &[to_commit("t", 0, 2)], 8 * DAY_MS)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        let standalone = |_: &str| ExpiryCondition::Standalone;
        assert!(store.expire(8 * DAY_MS, 7 * DAY_MS, standalone).is_empty());
        store.complete(in_flight);
        assert!(store.expire(8 * DAY_MS, 7 * DAY_MS, standalone).is_empty());
        assert_eq!(store.expire(15 * DAY_MS, 7 * DAY_MS, standalone).len(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Commit(u8, i64),
        Delete(u8),
        DeleteGroup,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..4, 0i64..1000).prop_map(|(p, o)| Op::Commit(p, o)),
            (0u8..4).prop_map(Op::Delete),
            Just(Op::DeleteGroup),
        ]
    }

    proptest! {
        /// The store against a BTreeMap model, and a replay of every record
        /// appended (through their encoded bytes) rebuilds the same state.
        #[test]
        fn matches_model_and_replay(ops in proptest::collection::vec(op(), 0..40)) {
            let mut store = OffsetStore::default();
            let mut model: BTreeMap<i32, i64> = BTreeMap::new();
            let mut log: Vec<(bytes::Bytes, Option<bytes::Bytes>)> = Vec::new();
            for op in ops {
                let records = match op {
                    Op::Commit(p, o) => {
                        model.insert(i32::from(p), o);
                        store
                            .commit("g", &[to_commit("t", i32::from(p), o)], 0)
                            .into_iter()
                            .collect::<Result<Vec<_>, _>>()
                            .unwrap()
                    }
                    Op::Delete(p) => {
                        model.remove(&i32::from(p));
                        store.delete_offsets("g", &[("t", i32::from(p))])
                    }
                    Op::DeleteGroup => {
                        model.clear();
                        store.delete_group("g")
                    }
                };
                log.extend(records.iter().map(|r| r.encode().unwrap()));
                store.complete(records);
            }
            let got: BTreeMap<i32, i64> = store
                .fetch("g", None)
                .into_iter()
                .map(|f| (f.partition, f.offset))
                .collect();
            prop_assert_eq!(&got, &model);
            let mut replayed = OffsetStore::default();
            for (key, value) in &log {
                replayed.replay(OffsetsTopicRecord::decode(key, value.as_deref()).unwrap());
            }
            prop_assert_eq!(replayed.fetch("g", None), store.fetch("g", None));
        }
    }
}
