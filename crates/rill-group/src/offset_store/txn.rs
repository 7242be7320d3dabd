//! Transactional offset commits (TxnOffsetCommit, KIP-98): offsets a
//! producer's transaction wrote to `__consumer_offsets`, staged per group
//! and producer id until the producer's commit or abort marker lands in
//! the group's partition (Kafka's `pendingTransactionalOffsetCommits`).
//!
//! The flow, as in Kafka's GroupMetadataManager:
//!
//! 1. [`OffsetStore::commit_transactional`] checks the offsets, stages
//!    them at once (the partitions are now unstable for OffsetFetch with
//!    require_stable) and returns the records to append in a
//!    [`txn_batch`](crate::txn_offsets_batch).
//! 2. When the append is acknowledged,
//!    [`OffsetStore::complete_transactional_append`] records where it
//!    landed; if it failed, [`OffsetStore::abort_transactional_append`]
//!    unstages them.
//! 3. When the producer's marker is appended to a partition of
//!    `__consumer_offsets`, [`OffsetStore::complete_transaction_in`] makes
//!    the staged offsets of that partition's groups committed offsets
//!    (commit) or drops them (abort).
//!
//! Loading replays the same steps from the log
//! ([`OffsetStore::replay_batches`]). Staged offsets are invisible to
//! OffsetFetch and never expire; a committed offset that has staged ones
//! does not expire either.
//!
//! Ordering: a transaction's offset replaces a committed offset only if
//! its record was appended after the committed one's (Kafka's
//! `CommitRecordMetadataAndOffset.olderThan`), so a plain commit made
//! while the transaction was open survives the transaction's commit.

use std::collections::BTreeMap;

use rill_record::MarkerKind;

use super::{OffsetStore, OffsetStoreError, OffsetToCommit};
use crate::offsets_topic::{
    LoadedBatches, LoadedMarker, LoadedRecord, OffsetCommitKey, OffsetCommitValue,
    OffsetsPartition, OffsetsTopicRecord,
};

/// One offset staged by a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Staged {
    value: OffsetCommitValue,
    /// Where its record sits in `__consumer_offsets`; `None` until the
    /// append is acknowledged.
    log_position: Option<u64>,
}

/// (topic, partition) → staged offset.
type StagedOffsets = BTreeMap<(String, i32), Staged>;

/// Staged offsets: group → producer id → partition. Per group first, as
/// Kafka keeps them on each group: OffsetFetch asks by group, and a
/// marker ends a producer's offsets only in its partition's groups.
#[derive(Debug, Clone, Default)]
pub(super) struct TxnOffsets {
    groups: BTreeMap<String, BTreeMap<i64, StagedOffsets>>,
}

impl TxnOffsets {
    fn stage(
        &mut self,
        key: OffsetCommitKey,
        producer_id: i64,
        value: OffsetCommitValue,
        log_position: Option<u64>,
    ) {
        self.groups
            .entry(key.group)
            .or_default()
            .entry(producer_id)
            .or_default()
            .insert(
                (key.topic, key.partition),
                Staged {
                    value,
                    log_position,
                },
            );
    }

    /// Removes `producer_id`'s staged offset for `key` if `keep` says no.
    fn remove_if(
        &mut self,
        key: &OffsetCommitKey,
        producer_id: i64,
        keep: impl Fn(&Staged) -> bool,
    ) {
        let Some(producers) = self.groups.get_mut(&key.group) else {
            return;
        };
        if let Some(staged) = producers.get_mut(&producer_id) {
            let partition = (key.topic.clone(), key.partition);
            if staged.get(&partition).is_some_and(|s| !keep(s)) {
                staged.remove(&partition);
            }
            if staged.is_empty() {
                producers.remove(&producer_id);
            }
        }
        if producers.is_empty() {
            self.groups.remove(&key.group);
        }
    }

    /// Drops every producer's staged offset for `key` that was appended
    /// before `before` (or is not known to be after it); all of them when
    /// `before` is unknown.
    pub(super) fn drop_key(&mut self, key: &OffsetCommitKey, before: Option<u64>) {
        let producers: Vec<i64> = match self.groups.get(&key.group) {
            Some(producers) => producers.keys().copied().collect(),
            None => return,
        };
        for producer_id in producers {
            self.remove_if(key, producer_id, |staged| {
                matches!((staged.log_position, before), (Some(at), Some(before)) if at > before)
            });
        }
    }

    /// Drops everything staged for `group` (the group was deleted).
    pub(super) fn drop_group(&mut self, group: &str) {
        self.groups.remove(group);
    }

    pub(super) fn contains(&self, group: &str, topic: &str, partition: i32) -> bool {
        let Some(producers) = self.groups.get(group) else {
            return false;
        };
        let key = (topic.to_owned(), partition);
        producers.values().any(|staged| staged.contains_key(&key))
    }

    pub(super) fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    pub(super) fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// Removes and returns `producer_id`'s staged offsets in the groups
    /// `holds` accepts, by group.
    fn take(
        &mut self,
        producer_id: i64,
        holds: impl Fn(&str) -> bool,
    ) -> Vec<(String, StagedOffsets)> {
        let mut taken = Vec::new();
        self.groups.retain(|group, producers| {
            if holds(group)
                && let Some(staged) = producers.remove(&producer_id)
            {
                taken.push((group.clone(), staged));
            }
            !producers.is_empty()
        });
        taken
    }

    fn has_producer(&self, producer_id: i64) -> bool {
        self.groups
            .values()
            .any(|producers| producers.contains_key(&producer_id))
    }
}

impl OffsetStore {
    /// TxnOffsetCommit: checks each of `offsets` as
    /// [`OffsetStore::commit`] does and returns, in the same order, the
    /// record to append for it (in a transactional batch of `producer_id`:
    /// [`txn_offsets_batch`](crate::txn_offsets_batch)) or why it was
    /// refused. The accepted offsets are staged for `producer_id` at once:
    /// invisible to [`OffsetStore::fetch`], reported by
    /// [`OffsetStore::has_pending`], until the transaction ends. A second
    /// commit of the same partition in one transaction replaces the first.
    ///
    /// Whether the producer may commit for the group (KIP-447 member and
    /// generation) is [`GroupCoordinator::validate_txn_offset_commit`]'s
    /// check, made before this; its producer epoch is the log's.
    ///
    /// [`GroupCoordinator::validate_txn_offset_commit`]: crate::GroupCoordinator::validate_txn_offset_commit
    pub fn commit_transactional(
        &mut self,
        group: &str,
        producer_id: i64,
        offsets: &[OffsetToCommit],
        now_ms: i64,
    ) -> Vec<Result<OffsetsTopicRecord, OffsetStoreError>> {
        offsets
            .iter()
            .map(|commit| {
                let (key, value) = self.checked(group, commit, now_ms)?;
                self.txn
                    .stage(key.clone(), producer_id, value.clone(), None);
                Ok(OffsetsTopicRecord::OffsetCommit {
                    key,
                    value: Some(value),
                })
            })
            .collect()
    }

    /// The transactional batch holding `records` (as
    /// [`OffsetStore::commit_transactional`] returned them) is
    /// acknowledged at `log_position` (an offset inside it or its end
    /// offset; see [`OffsetStore::complete_at`]). Offsets staged since by
    /// a newer commit of the same partition are left alone.
    pub fn complete_transactional_append(
        &mut self,
        producer_id: i64,
        records: &[OffsetsTopicRecord],
        log_position: u64,
    ) {
        for (key, value) in commits(records) {
            let Some(staged) = self
                .txn
                .groups
                .get_mut(&key.group)
                .and_then(|producers| producers.get_mut(&producer_id))
                .and_then(|staged| staged.get_mut(&(key.topic.clone(), key.partition)))
            else {
                continue;
            };
            if staged.value == *value {
                staged.log_position = Some(log_position);
            }
        }
    }

    /// The transactional batch holding `records` was not appended: unstages
    /// those of its offsets that no newer commit replaced (Kafka's
    /// `failPendingTxnOffsetCommit`).
    pub fn abort_transactional_append(&mut self, producer_id: i64, records: &[OffsetsTopicRecord]) {
        for (key, value) in commits(records) {
            self.txn.remove_if(key, producer_id, |staged| {
                staged.value != *value || staged.log_position.is_some()
            });
        }
    }

    /// `producer_id`'s transaction ended with a marker written to every
    /// partition of `__consumer_offsets` it touched: [`Self::complete_transaction_in`]
    /// for all of them. Returns the groups whose offsets it ended.
    pub fn complete_transaction(&mut self, producer_id: i64, commit: bool) -> Vec<String> {
        self.finish_transaction(producer_id, commit, |_| true)
    }

    /// `producer_id`'s commit (`commit`) or abort marker was appended to
    /// `partition` of `__consumer_offsets` (Kafka's `handleTxnCompletion`):
    /// the offsets it staged in that partition's groups become committed
    /// offsets, or are dropped. Each replaces the partition's committed
    /// offset only if its record was appended after that one's. Returns
    /// the groups whose offsets it ended, in order.
    pub fn complete_transaction_in(
        &mut self,
        producer_id: i64,
        commit: bool,
        partition: OffsetsPartition,
    ) -> Vec<String> {
        self.finish_transaction(producer_id, commit, |group| partition.holds(group))
    }

    /// Whether `producer_id` has offsets staged in any group.
    pub fn has_transaction(&self, producer_id: i64) -> bool {
        self.txn.has_producer(producer_id)
    }

    fn finish_transaction(
        &mut self,
        producer_id: i64,
        commit: bool,
        holds: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let taken = self.txn.take(producer_id, holds);
        let groups = taken.iter().map(|(group, _)| group.clone()).collect();
        if !commit {
            return groups;
        }
        for (group, staged) in taken {
            for ((topic, partition), staged) in staged {
                let key = OffsetCommitKey {
                    group: group.clone(),
                    topic,
                    partition,
                };
                self.apply_transactional(key, staged);
            }
        }
        groups
    }

    /// Kafka's completePendingTxnOffsetCommit for one partition: the
    /// transaction's offset wins unless the committed one was appended
    /// later.
    fn apply_transactional(&mut self, key: OffsetCommitKey, staged: Staged) {
        match staged.log_position {
            Some(position) => {
                if self
                    .completed_at
                    .get(&key)
                    .is_some_and(|&current| current > position)
                {
                    return;
                }
                self.completed_at.insert(key.clone(), position);
            }
            // Its append was not acknowledged before the marker (the
            // client waits for the TxnOffsetCommit answer before ending
            // the transaction, so a host that completes appends before
            // answering never gets here). It was appended before the
            // marker; take it as the newest.
            None => tracing::warn!(
                group = %key.group,
                topic = %key.topic,
                partition = key.partition,
                "transaction ended before its offset commit's append was acknowledged"
            ),
        }
        self.insert(key, staged.value);
    }

    /// Replays one read of a `__consumer_offsets` partition (`partition`),
    /// as [`read_offsets_batches`](crate::read_offsets_batches) returned
    /// it, in log order: plain offset commits and tombstones as
    /// [`OffsetStore::replay`] does; transactional ones staged for their
    /// producer; each marker ends its producer's staged offsets in this
    /// partition's groups (commit or abort). Offsets whose marker has not
    /// been read stay staged: it comes later. Group metadata records are
    /// the group coordinator's (a group's tombstone drops its staged
    /// offsets here too); the host hands them to it separately and must
    /// not also [`replay`](OffsetStore::replay) the offset commits.
    pub fn replay_batches(&mut self, loaded: &LoadedBatches, partition: OffsetsPartition) {
        let mut markers = loaded.markers.iter().peekable();
        for record in &loaded.records {
            while let Some(marker) = markers.next_if(|marker| marker.offset < record.offset) {
                self.replay_marker(marker, partition);
            }
            self.replay_loaded(record);
        }
        for marker in markers {
            self.replay_marker(marker, partition);
        }
    }

    fn replay_loaded(&mut self, loaded: &LoadedRecord) {
        // Offsets from disk are never negative once the log accepted them;
        // a corrupt one sorts first rather than stopping the load.
        let position = u64::try_from(loaded.offset).unwrap_or(0);
        match (&loaded.record, loaded.is_transactional) {
            (OffsetsTopicRecord::OffsetCommit { key, value }, true) => match value {
                Some(value) => {
                    self.txn.stage(
                        key.clone(),
                        loaded.producer_id,
                        value.clone(),
                        Some(position),
                    );
                }
                // Kafka's loader: a tombstone in a transaction unstages.
                None => self.txn.remove_if(key, loaded.producer_id, |_| false),
            },
            (record, _) => self.apply(record.clone(), Some(position)),
        }
    }

    fn replay_marker(&mut self, marker: &LoadedMarker, partition: OffsetsPartition) {
        let commit = marker.marker.kind == MarkerKind::Commit;
        self.finish_transaction(marker.producer_id, commit, |group| partition.holds(group));
    }
}

/// The offset commits (not tombstones) among `records`.
fn commits(
    records: &[OffsetsTopicRecord],
) -> impl Iterator<Item = (&OffsetCommitKey, &OffsetCommitValue)> {
    records.iter().filter_map(|record| match record {
        OffsetsTopicRecord::OffsetCommit {
            key,
            value: Some(value),
        } => Some((key, value)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rill_record::{EndTxnMarker, end_txn_marker};

    use super::*;
    use crate::offset_store::{ExpiryCondition, NO_OFFSET};
    use crate::offsets_topic::{
        GroupMetadataKey, OffsetsBatchError, batch, partition_for, read_batches, txn_batch,
    };

    const PARTITIONS: i32 = 50;
    const DAY_MS: i64 = 24 * 60 * 60 * 1000;

    fn to_commit(topic: &str, partition: i32, offset: i64) -> OffsetToCommit {
        OffsetToCommit {
            topic: topic.to_owned(),
            partition,
            offset,
            leader_epoch: None,
            metadata: Some(format!("m{offset}")),
            expire_timestamp_ms: None,
        }
    }

    fn records(
        results: Vec<Result<OffsetsTopicRecord, OffsetStoreError>>,
    ) -> Vec<OffsetsTopicRecord> {
        results.into_iter().collect::<Result<_, _>>().unwrap()
    }

    fn committed(store: &OffsetStore, group: &str, topic: &str, partition: i32) -> i64 {
        store.fetch(group, Some(&[(topic, partition)]))[0].offset
    }

    fn partition_of(group: &str) -> OffsetsPartition {
        OffsetsPartition {
            index: partition_for(group, PARTITIONS),
            partitions: PARTITIONS,
        }
    }

    /// A partition of `__consumer_offsets` in memory: appends give each
    /// batch its base offset and return the end offset, as the log does.
    struct Log {
        bytes: Vec<u8>,
        next_offset: i64,
    }

    impl Log {
        fn new() -> Log {
            Log {
                bytes: Vec::new(),
                next_offset: 0,
            }
        }

        fn append(&mut self, mut batch: Vec<u8>) -> u64 {
            let view = rill_record::BatchView::new(&batch).unwrap();
            let count = i64::from(view.last_offset_delta()) + 1;
            batch[..8].copy_from_slice(&self.next_offset.to_be_bytes());
            self.bytes.extend_from_slice(&batch);
            self.next_offset += count;
            self.next_offset as u64
        }

        fn append_records(&mut self, records: &[OffsetsTopicRecord], producer: Option<i64>) -> u64 {
            let encoded: Vec<(Bytes, Option<Bytes>)> =
                records.iter().map(|r| r.encode().unwrap()).collect();
            let batch = match producer {
                Some(producer_id) => txn_batch(&encoded, producer_id, 0, 0),
                None => batch(&encoded, 0),
            };
            self.append(batch.unwrap().unwrap())
        }

        fn append_marker(&mut self, producer_id: i64, kind: MarkerKind) -> u64 {
            let marker = EndTxnMarker {
                kind,
                coordinator_epoch: 0,
            };
            self.append(end_txn_marker(producer_id, 0, marker, 0).unwrap())
        }
    }

    /// Stages a transactional commit and acknowledges its append.
    fn txn_commit(
        store: &mut OffsetStore,
        log: &mut Log,
        producer_id: i64,
        offsets: &[OffsetToCommit],
    ) {
        let staged = records(store.commit_transactional("g", producer_id, offsets, 0));
        let end = log.append_records(&staged, Some(producer_id));
        store.complete_transactional_append(producer_id, &staged, end);
    }

    /// A plain commit, appended and acknowledged.
    fn plain_commit(store: &mut OffsetStore, log: &mut Log, offsets: &[OffsetToCommit]) {
        let plain = records(store.commit("g", offsets, 0));
        let end = log.append_records(&plain, None);
        store.complete_at(plain, end);
    }

    fn end_txn(store: &mut OffsetStore, log: &mut Log, producer_id: i64, kind: MarkerKind) {
        log.append_marker(producer_id, kind);
        store.complete_transaction_in(producer_id, kind == MarkerKind::Commit, partition_of("g"));
    }

    fn load(log: &Log) -> OffsetStore {
        let loaded = read_batches(&log.bytes, 1 << 20).unwrap();
        assert_eq!(loaded.bytes_read, log.bytes.len());
        let mut store = OffsetStore::default();
        store.replay_batches(&loaded, partition_of("g"));
        store
    }

    /// What a client can observe of the group: committed offsets and
    /// which of partitions 0..8 of "t" are unstable.
    fn observed(store: &OffsetStore) -> (Vec<(i32, i64, String)>, Vec<i32>) {
        let offsets = store
            .fetch("g", None)
            .into_iter()
            .map(|f| (f.partition, f.offset, f.metadata))
            .collect();
        let unstable = (0..8).filter(|&p| store.has_pending("g", "t", p)).collect();
        (offsets, unstable)
    }

    #[test]
    fn staged_offsets_become_visible_on_commit_marker() {
        let mut store = OffsetStore::default();
        let mut log = Log::new();
        let staged = records(store.commit_transactional("g", 7, &[to_commit("t", 0, 10)], 5));
        assert_eq!(
            staged,
            vec![OffsetsTopicRecord::OffsetCommit {
                key: OffsetCommitKey {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: 0
                },
                value: Some(OffsetCommitValue {
                    offset: 10,
                    leader_epoch: None,
                    metadata: "m10".into(),
                    commit_timestamp_ms: 5,
                    expire_timestamp_ms: None,
                }),
            }]
        );
        // Staged at once: unstable, not fetched, and the group has offsets.
        assert!(store.has_pending("g", "t", 0));
        assert!(!store.has_pending("g", "t", 1));
        assert_eq!(committed(&store, "g", "t", 0), NO_OFFSET);
        assert!(store.fetch("g", None).is_empty());
        assert!(store.has_offsets("g"));
        assert_eq!(store.groups().collect::<Vec<_>>(), vec!["g"]);
        assert!(store.has_transaction(7));
        let end = log.append_records(&staged, Some(7));
        store.complete_transactional_append(7, &staged, end);
        assert_eq!(
            committed(&store, "g", "t", 0),
            NO_OFFSET,
            "acked, not ended"
        );
        // Another producer's marker changes nothing.
        assert!(store.complete_transaction(8, true).is_empty());
        assert!(store.has_pending("g", "t", 0));
        assert_eq!(store.complete_transaction(7, true), vec!["g".to_owned()]);
        assert_eq!(committed(&store, "g", "t", 0), 10);
        assert!(!store.has_pending("g", "t", 0));
        assert!(!store.has_transaction(7));
    }

    #[test]
    fn abort_marker_drops_staged_offsets() {
        let mut store = OffsetStore::default();
        let mut log = Log::new();
        plain_commit(&mut store, &mut log, &[to_commit("t", 0, 3)]);
        txn_commit(
            &mut store,
            &mut log,
            7,
            &[to_commit("t", 0, 10), to_commit("t", 1, 11)],
        );
        end_txn(&mut store, &mut log, 7, MarkerKind::Abort);
        assert_eq!(committed(&store, "g", "t", 0), 3);
        assert_eq!(committed(&store, "g", "t", 1), NO_OFFSET);
        assert!(!store.has_pending("g", "t", 0));
        // A group left with nothing (staged only, then aborted) has no offsets.
        let staged = records(store.commit_transactional("h", 9, &[to_commit("t", 0, 1)], 0));
        store.complete_transactional_append(9, &staged, 100);
        assert!(store.has_offsets("h"));
        assert_eq!(store.complete_transaction(9, false), vec!["h".to_owned()]);
        assert!(!store.has_offsets("h"));
        assert_eq!(store.groups().collect::<Vec<_>>(), vec!["g"]);
    }

    #[test]
    fn the_commit_appended_last_wins_between_transaction_and_plain_commit() {
        let mut store = OffsetStore::default();
        let mut log = Log::new();
        // Transaction first, plain commit after it: the plain one stays.
        txn_commit(&mut store, &mut log, 7, &[to_commit("t", 0, 10)]);
        plain_commit(&mut store, &mut log, &[to_commit("t", 0, 20)]);
        end_txn(&mut store, &mut log, 7, MarkerKind::Commit);
        assert_eq!(committed(&store, "g", "t", 0), 20);
        // Plain commit first, transaction after it: the transaction wins.
        plain_commit(&mut store, &mut log, &[to_commit("t", 1, 30)]);
        txn_commit(&mut store, &mut log, 8, &[to_commit("t", 1, 40)]);
        end_txn(&mut store, &mut log, 8, MarkerKind::Commit);
        assert_eq!(committed(&store, "g", "t", 1), 40);
        // A plain commit acknowledged late, appended before the
        // transaction's offset, does not replace it.
        let late = records(store.commit("g", &[to_commit("t", 2, 50)], 0));
        let late_end = log.append_records(&late, None);
        txn_commit(&mut store, &mut log, 9, &[to_commit("t", 2, 60)]);
        end_txn(&mut store, &mut log, 9, MarkerKind::Commit);
        store.complete_at(late, late_end);
        assert_eq!(committed(&store, "g", "t", 2), 60);
        // And loading the log decides every case the same way.
        assert_eq!(observed(&load(&log)), observed(&store));
    }

    #[test]
    fn a_marker_ends_only_its_partitions_groups() {
        // Two groups in different partitions of __consumer_offsets.
        let other = (0..)
            .map(|i| format!("group-{i}"))
            .find(|group| partition_for(group, PARTITIONS) != partition_for("g", PARTITIONS))
            .unwrap();
        let mut store = OffsetStore::default();
        for group in ["g", other.as_str()] {
            let staged = records(store.commit_transactional(group, 7, &[to_commit("t", 0, 1)], 0));
            store.complete_transactional_append(7, &staged, 10);
        }
        assert_eq!(
            store.complete_transaction_in(7, true, partition_of("g")),
            vec!["g".to_owned()]
        );
        assert_eq!(committed(&store, "g", "t", 0), 1);
        assert_eq!(committed(&store, &other, "t", 0), NO_OFFSET);
        assert!(store.has_pending(&other, "t", 0));
        assert!(store.has_transaction(7));
    }

    #[test]
    fn a_failed_append_unstages_only_what_it_staged() {
        let mut store = OffsetStore::default();
        let first = records(store.commit_transactional("g", 7, &[to_commit("t", 0, 1)], 0));
        store.abort_transactional_append(7, &first);
        assert!(!store.has_pending("g", "t", 0));
        assert!(!store.has_offsets("g"));
        // A newer commit of the partition replaced the failed one: kept.
        let older = records(store.commit_transactional("g", 7, &[to_commit("t", 0, 2)], 0));
        let newer = records(store.commit_transactional("g", 7, &[to_commit("t", 0, 3)], 0));
        store.abort_transactional_append(7, &older);
        assert!(store.has_pending("g", "t", 0));
        // The older one's acknowledgement does not stand for the newer.
        store.complete_transactional_append(7, &older, 5);
        store.complete_transactional_append(7, &newer, 6);
        store.complete_transaction(7, true);
        assert_eq!(committed(&store, "g", "t", 0), 3);
    }

    #[test]
    fn require_stable_sees_plain_and_transactional_commits_in_flight() {
        let mut store = OffsetStore::default();
        let plain = records(store.commit("g", &[to_commit("t", 0, 1)], 0));
        assert!(store.has_pending("g", "t", 0));
        store.complete(plain);
        assert!(!store.has_pending("g", "t", 0));
        records(store.commit_transactional("g", 7, &[to_commit("t", 1, 1)], 0));
        assert!(store.has_pending("g", "t", 1));
        assert!(!store.has_pending("g", "u", 1));
        assert!(!store.has_pending("other", "t", 1));
    }

    #[test]
    fn offsets_with_a_transaction_open_do_not_expire() {
        let mut store = OffsetStore::default();
        let mut log = Log::new();
        plain_commit(
            &mut store,
            &mut log,
            &[to_commit("t", 0, 1), to_commit("t", 1, 1)],
        );
        txn_commit(
            &mut store,
            &mut log,
            7,
            &[to_commit("t", 0, 2), to_commit("t", 5, 2)],
        );
        let standalone = |_: &str| ExpiryCondition::Standalone;
        let expired = store.expire(30 * DAY_MS, 7 * DAY_MS, standalone);
        assert_eq!(
            expired,
            vec![OffsetsTopicRecord::OffsetCommit {
                key: OffsetCommitKey {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: 1
                },
                value: None,
            }]
        );
        store.complete(expired);
        // Staged offsets keep the group, and are still committed later.
        assert!(store.has_offsets("g"));
        end_txn(&mut store, &mut log, 7, MarkerKind::Commit);
        assert_eq!(committed(&store, "g", "t", 0), 2);
        assert_eq!(committed(&store, "g", "t", 5), 2);
    }

    #[test]
    fn deleting_an_offset_or_the_group_drops_what_transactions_staged() {
        let mut store = OffsetStore::default();
        let mut log = Log::new();
        plain_commit(&mut store, &mut log, &[to_commit("t", 0, 1)]);
        txn_commit(
            &mut store,
            &mut log,
            7,
            &[to_commit("t", 0, 2), to_commit("t", 1, 2)],
        );
        let deleted = store.delete_offsets("g", &[("t", 0)]);
        let end = log.append_records(&deleted, None);
        store.complete_at(deleted, end);
        assert!(!store.has_pending("g", "t", 0));
        assert!(store.has_pending("g", "t", 1));
        let group_tombstone = OffsetsTopicRecord::GroupMetadata {
            key: GroupMetadataKey { group: "g".into() },
            value: None,
        };
        let end = log.append_records(std::slice::from_ref(&group_tombstone), None);
        store.complete_at([group_tombstone], end);
        assert!(!store.has_offsets("g"));
        end_txn(&mut store, &mut log, 7, MarkerKind::Commit);
        assert!(store.fetch("g", None).is_empty());
        assert_eq!(observed(&load(&log)), observed(&store));
    }

    #[test]
    fn loading_rebuilds_committed_aborted_and_open_transactions() {
        let mut store = OffsetStore::default();
        let mut log = Log::new();
        plain_commit(&mut store, &mut log, &[to_commit("t", 0, 1)]);
        // Committed: 1 writes partitions 0 and 1.
        txn_commit(
            &mut store,
            &mut log,
            1,
            &[to_commit("t", 0, 10), to_commit("t", 1, 11)],
        );
        // Aborted: 2 writes partition 2.
        txn_commit(&mut store, &mut log, 2, &[to_commit("t", 2, 20)]);
        end_txn(&mut store, &mut log, 1, MarkerKind::Commit);
        end_txn(&mut store, &mut log, 2, MarkerKind::Abort);
        // Still open: 3 writes partition 3; 1's next transaction writes 4
        // (after its marker, which must not end it).
        txn_commit(&mut store, &mut log, 3, &[to_commit("t", 3, 30)]);
        txn_commit(&mut store, &mut log, 1, &[to_commit("t", 4, 40)]);
        let expected = (
            vec![(0, 10, "m10".to_owned()), (1, 11, "m11".to_owned())],
            vec![3, 4],
        );
        assert_eq!(observed(&store), expected);
        let mut loaded = load(&log);
        assert_eq!(observed(&loaded), expected);
        assert!(loaded.has_offsets("g"));
        // The open transactions' markers arrive after the load.
        loaded.complete_transaction(3, false);
        loaded.complete_transaction(1, true);
        assert_eq!(committed(&loaded, "g", "t", 3), NO_OFFSET);
        assert_eq!(committed(&loaded, "g", "t", 4), 40);
        // Read in two pieces, as a loader reading in chunks does.
        let whole = read_batches(&log.bytes, 1 << 20).unwrap();
        let split = whole
            .records
            .iter()
            .position(|r| r.offset > whole.markers[0].offset);
        let cut = rill_record::Batches::new(&log.bytes)
            .take_while(|b| b.base_offset() < whole.records[split.unwrap()].offset)
            .map(|b| b.size())
            .sum::<usize>();
        let mut chunked = OffsetStore::default();
        for piece in [&log.bytes[..cut], &log.bytes[cut..]] {
            let loaded = read_batches(piece, 1 << 20).unwrap();
            chunked.replay_batches(&loaded, partition_of("g"));
        }
        assert_eq!(observed(&chunked), expected);
    }

    #[test]
    fn a_transactional_tombstone_unstages_when_loading() {
        let mut log = Log::new();
        let key = OffsetCommitKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        };
        let mut store = OffsetStore::default();
        let staged = records(store.commit_transactional("g", 7, &[to_commit("t", 0, 1)], 0));
        log.append_records(&staged, Some(7));
        let tombstone = OffsetsTopicRecord::OffsetCommit { key, value: None };
        log.append_records(&[tombstone], Some(7));
        let loaded = load(&log);
        assert!(!loaded.has_pending("g", "t", 0));
        assert!(!loaded.has_offsets("g"));
    }

    #[test]
    fn malformed_or_unknown_control_records() {
        // A control batch whose record is not a marker: the loader's error.
        let mut bad = txn_batch(&[(Bytes::from_static(b"k"), None)], 7, 0, 0)
            .unwrap()
            .unwrap();
        let attributes = i16::from_be_bytes([bad[21], bad[22]]) | 0x20;
        bad[21..23].copy_from_slice(&attributes.to_be_bytes());
        let mut log = Log::new();
        plain_commit(
            &mut OffsetStore::default(),
            &mut log,
            &[to_commit("t", 0, 1)],
        );
        let at = log.append(bad);
        assert!(matches!(
            read_batches(&log.bytes, 1 << 20),
            Err(OffsetsBatchError::Marker {
                offset: 1,
                error: rill_record::ControlRecordError::KeyLength { len: 1 }
            })
        ));
        assert_eq!(at, 2);
        // A control record of a type other than commit or abort: skipped.
        let key = [0u8, 0, 0, 5];
        let value = [0u8; 6];
        let mut unknown = txn_batch(
            &[(
                Bytes::copy_from_slice(&key),
                Some(Bytes::copy_from_slice(&value)),
            )],
            7,
            0,
            0,
        )
        .unwrap()
        .unwrap();
        let attributes = i16::from_be_bytes([unknown[21], unknown[22]]) | 0x20;
        unknown[21..23].copy_from_slice(&attributes.to_be_bytes());
        let loaded = read_batches(&unknown, 1 << 20).unwrap();
        assert!(loaded.records.is_empty() && loaded.markers.is_empty());
        assert_eq!(loaded.skipped_unknown, 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Plain(i32, i64),
        Txn(i64, i32, i64),
        End(i64, bool),
        Delete(i32),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0i32..3, 0i64..100).prop_map(|(p, o)| Op::Plain(p, o)),
            (1i64..3, 0i32..3, 0i64..100).prop_map(|(pid, p, o)| Op::Txn(pid, p, o)),
            (1i64..3, any::<bool>()).prop_map(|(pid, commit)| Op::End(pid, commit)),
            (0i32..3).prop_map(Op::Delete),
        ]
    }

    /// The rules in their simplest form: partition → (offset or deleted,
    /// log position), and what each producer staged.
    #[derive(Default)]
    struct Model {
        committed: BTreeMap<i32, (Option<i64>, u64)>,
        staged: BTreeMap<i64, BTreeMap<i32, (i64, u64)>>,
    }

    impl Model {
        fn observed(&self) -> (Vec<(i32, i64, String)>, Vec<i32>) {
            let offsets = self
                .committed
                .iter()
                .filter_map(|(&p, &(o, _))| o.map(|o| (p, o, format!("m{o}"))))
                .collect();
            let mut unstable: Vec<i32> = self
                .staged
                .values()
                .flat_map(|s| s.keys().copied())
                .collect();
            unstable.sort_unstable();
            unstable.dedup();
            (offsets, unstable)
        }
    }

    proptest::proptest! {
        /// Online and loaded stores agree with the model, whatever the mix
        /// of plain commits, transactions, markers and deletions.
        #[test]
        fn matches_model_online_and_loaded(ops in proptest::collection::vec(op(), 0..40)) {
            let mut store = OffsetStore::default();
            let mut log = Log::new();
            let mut model = Model::default();
            for op in ops {
                match op {
                    Op::Plain(p, o) => {
                        plain_commit(&mut store, &mut log, &[to_commit("t", p, o)]);
                        model.committed.insert(p, (Some(o), log.next_offset as u64));
                    }
                    Op::Txn(pid, p, o) => {
                        txn_commit(&mut store, &mut log, pid, &[to_commit("t", p, o)]);
                        let at = log.next_offset as u64;
                        model.staged.entry(pid).or_default().insert(p, (o, at));
                    }
                    Op::End(pid, commit) => {
                        let kind = if commit { MarkerKind::Commit } else { MarkerKind::Abort };
                        end_txn(&mut store, &mut log, pid, kind);
                        for (p, (o, at)) in model.staged.remove(&pid).unwrap_or_default() {
                            let newer = model.committed.get(&p).is_none_or(|&(_, c)| c <= at);
                            if commit && newer {
                                model.committed.insert(p, (Some(o), at));
                            }
                        }
                    }
                    Op::Delete(p) => {
                        let deleted = store.delete_offsets("g", &[("t", p)]);
                        if deleted.is_empty() {
                            continue;
                        }
                        let end = log.append_records(&deleted, None);
                        store.complete_at(deleted, end);
                        model.committed.insert(p, (None, end));
                        for staged in model.staged.values_mut() {
                            staged.remove(&p);
                        }
                        model.staged.retain(|_, staged| !staged.is_empty());
                    }
                }
            }
            proptest::prop_assert_eq!(observed(&store), model.observed());
            proptest::prop_assert_eq!(observed(&load(&log)), model.observed());
        }
    }
}
