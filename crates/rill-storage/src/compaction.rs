//! Log compaction, as Kafka's LogCleaner does it: which part of a log is
//! cleanable and whether it is dirty enough, the key → latest offset map
//! over the dirty part, and the rewrite of groups of sealed segments into
//! one cleaned segment each, keeping only the latest record of every key.
//!
//! Transactions, as Kafka's cleaner handles them: the caller bounds the
//! pass by the last stable offset, so every transaction in the cleaned
//! part has ended; records of aborted transactions (known from the
//! aborted-transaction index) never enter the offset map — an aborted
//! value must not supersede a committed one — and are removed; control
//! batches (markers) are never treated as keyed records. A marker goes
//! once no batch of its transaction is left: a pass that traverses none
//! (see [`TxnTraversal`]) sets the marker's delete horizon (now +
//! delete.retention.ms, as for tombstones, KIP-534), and a pass at or
//! after that horizon removes it, with its aborted-transaction index
//! entry. A marker that stays keeps its entry.
//!
//! Everything here works on [`SealedView`]s — zero-copy slices of sealed
//! segments taken under the log's lock — and writes new `.cleaned` files,
//! so it runs with no lock held. [`crate::Log::compact`] takes the log's
//! lock only to swap a cleaned segment in (see docs/storage.md, "Log
//! compaction").

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use rill_record::{
    BatchRewriter, BatchView, Batches, EndTxnMarker, Record, Records, delete_horizon_of,
    records_data,
};

use crate::Offset;
use crate::config::{EXPANDED_RECORDS_BYTES_MAX, LogConfig, SEGMENT_BYTES_MAX};
use crate::disk::Disk;
use crate::error::{CompactError, IoFailure};
use crate::offset_map::OffsetMap;
use crate::segment::{SealedView, Segment};
use crate::txn_index::AbortedTxn;

/// Room left in a cleaned segment's map beyond its inputs' size: records
/// re-based on a delete horizon, or recompressed, can grow a little.
const OUTPUT_SLACK_BYTES: usize = 1024 * 1024;

/// Broker-wide settings of the cleaner (Kafka's log.cleaner.* configs),
/// as opposed to the per-topic ones in [`LogConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanerConfig {
    /// log.cleaner.dedupe.buffer.size: the offset map's budget, in bytes.
    /// A pass whose dirty part has more keys than fit cleans up to where
    /// the map filled, and the next pass goes on from there.
    pub dedupe_buffer_bytes: usize,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            dedupe_buffer_bytes: 128 * 1024 * 1024,
        }
    }
}

/// What one call of [`crate::Log::compact`] found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CompactionOutcome {
    /// Whether a pass ran: the policy includes `compact` and the log was
    /// dirty enough (or past max.compaction.lag.ms).
    pub ran: bool,
    /// Whether the log changed under the pass (truncation, retention,
    /// close) and the pass stopped; groups swapped before stay swapped.
    pub aborted: bool,
    /// Dirty bytes / cleanable bytes when the pass was considered.
    pub dirty_ratio: f64,
    /// The clean point (first dirty offset) before the pass.
    pub first_dirty_offset: Offset,
    /// The clean point after it: every record below was compacted.
    pub clean_point: Offset,
    /// Sealed segments read and rewritten.
    pub segments_cleaned: usize,
    /// Cleaned segments swapped in for them.
    pub segments_written: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Records dropped because a later record has the same key.
    pub records_superseded: u64,
    /// Tombstones dropped because their delete horizon had passed.
    pub tombstones_removed: u64,
    /// Records dropped because their transaction was aborted.
    pub aborted_records_removed: u64,
    /// Transaction markers dropped because no batch of their transaction
    /// was left and their delete horizon had passed.
    pub markers_removed: u64,
}

/// The offset ranges of aborted transactions, by producer: whether a
/// transactional batch belongs to one.
#[derive(Debug, Default)]
pub(crate) struct AbortedRanges {
    /// Producer id → (first offset, marker offset), ordered by marker.
    by_producer: HashMap<i64, Vec<(Offset, Offset)>>,
}

impl AbortedRanges {
    pub(crate) fn new(txns: impl IntoIterator<Item = AbortedTxn>) -> AbortedRanges {
        let mut by_producer: HashMap<i64, Vec<(Offset, Offset)>> = HashMap::new();
        for txn in txns {
            by_producer
                .entry(txn.producer_id)
                .or_default()
                .push((txn.first_offset, txn.last_offset));
        }
        for ranges in by_producer.values_mut() {
            ranges.sort_by_key(|&(_, last)| last);
        }
        AbortedRanges { by_producer }
    }

    /// Whether `batch` holds records of an aborted transaction: it is a
    /// transactional data batch whose producer had a transaction aborted
    /// by a marker after it that began at or before it.
    pub(crate) fn holds(&self, batch: &BatchView<'_>) -> bool {
        let attributes = batch.attributes();
        if !attributes.is_transactional() || attributes.is_control() {
            return false;
        }
        let Some(ranges) = self.by_producer.get(&batch.producer_id()) else {
            return false;
        };
        let base = Offset(batch.base_offset());
        let at = ranges.partition_point(|&(_, last)| last < base);
        ranges.get(at).is_some_and(|&(first, _)| first <= base)
    }
}

/// The part of a log one pass cleans.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) first_dirty: Offset,
    /// The views, from the first, that may be cleaned: sealed, wholly
    /// below the high watermark and older than min.compaction.lag.ms.
    pub(crate) cleanable: usize,
    /// The first cleanable view holding dirty offsets.
    pub(crate) dirty_from: usize,
    pub(crate) dirty_ratio: f64,
    /// Whether the pass should run.
    pub(crate) due: bool,
}

/// Decides what a pass would clean, as Kafka's LogCleanerManager does:
/// segments from the log start up to the first uncleanable offset (the
/// active segment, the high watermark `upper`, min.compaction.lag.ms), and
/// whether the dirty share exceeds min.cleanable.dirty.ratio or the oldest
/// dirty record is past max.compaction.lag.ms. `None` when nothing is dirty.
pub(crate) fn plan(
    views: &[SealedView],
    first_dirty: Offset,
    upper: Offset,
    now_ms: i64,
    config: &LogConfig,
) -> Option<Plan> {
    let young = |view: &SealedView| {
        config.min_compaction_lag_ms > 0
            && view.largest_timestamp > now_ms.saturating_sub(config.min_compaction_lag_ms)
    };
    let cleanable = views
        .iter()
        .take_while(|v| v.next_offset <= upper && (v.next_offset <= first_dirty || !young(v)))
        .count();
    let dirty_from = views[..cleanable]
        .iter()
        .take_while(|v| v.next_offset <= first_dirty)
        .count();
    if dirty_from == cleanable {
        return None;
    }
    let bytes = |vs: &[SealedView]| vs.iter().map(|v| v.data.len() as u64).sum::<u64>();
    let clean_bytes = bytes(&views[..dirty_from]);
    let dirty_bytes = bytes(&views[dirty_from..cleanable]);
    let total = clean_bytes + dirty_bytes;
    let dirty_ratio = if total == 0 {
        0.0
    } else {
        dirty_bytes as f64 / total as f64
    };
    let oldest_dirty = BatchView::new(&views[dirty_from].data)
        .map_or(views[dirty_from].largest_timestamp, |b| b.max_timestamp());
    let overdue = config.max_compaction_lag_ms < i64::MAX
        && oldest_dirty >= 0
        && now_ms.saturating_sub(oldest_dirty) > config.max_compaction_lag_ms;
    let due = dirty_bytes > 0 && (dirty_ratio > config.min_cleanable_dirty_ratio || overdue);
    Some(Plan {
        first_dirty,
        cleanable,
        dirty_from,
        dirty_ratio,
        due,
    })
}

/// Maps every key in `dirty` at or after `first_dirty` to its latest
/// offset, until the map's budget is spent. Returns the map and the offset
/// it covers up to (exclusive): the new clean point. Stops before a batch
/// whose keys might not fit; fails only if not even the first one fits.
pub(crate) fn build_offset_map(
    dirty: &[SealedView],
    first_dirty: Offset,
    aborted: &AbortedRanges,
    bytes_max: usize,
) -> Result<(OffsetMap, Offset), CompactError> {
    let mut map = OffsetMap::new(bytes_max);
    for view in dirty {
        for batch in Batches::new(&view.data) {
            if batch.last_offset() < first_dirty.value()
                || batch.attributes().is_control()
                || aborted.holds(&batch)
            {
                continue;
            }
            let data = expand(&batch)?;
            let mut keys: Vec<(&[u8], Offset)> = Vec::new();
            for record in decode(&batch, &data)? {
                let offset = Offset(batch.base_offset() + i64::from(record.offset_delta));
                if let Some(key) = record.key {
                    if offset >= first_dirty {
                        keys.push((key, offset));
                    }
                }
            }
            let key_bytes = keys.iter().map(|(k, _)| k.len()).sum();
            if !map.has_room_for(keys.len(), key_bytes) {
                if map.is_empty() {
                    return Err(CompactError::OffsetMapTooSmall {
                        bytes_max,
                        base_offset: Offset(batch.base_offset()),
                    });
                }
                return Ok((map, Offset(batch.base_offset())));
            }
            for &(key, offset) in &keys {
                map.put(key, offset);
            }
        }
    }
    let end = dirty.last().map_or(first_dirty, |v| v.next_offset);
    Ok((map, end))
}

/// Splits `views` into runs that each become one cleaned segment: at most
/// segment.bytes of input, and offsets within 2^31-1 of the run's base, as
/// Kafka's groupSegmentsBySize.
pub(crate) fn group_segments(views: &[SealedView], segment_bytes: u32) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < views.len() {
        let base = views[start].base_offset;
        let mut bytes = views[start].data.len();
        let mut end = start + 1;
        while end < views.len() {
            let next = &views[end];
            let fits = bytes + next.data.len() <= segment_bytes as usize
                && next.next_offset.since(base) - 1 <= i64::from(i32::MAX);
            if !fits {
                break;
            }
            bytes += next.data.len();
            end += 1;
        }
        groups.push(start..end);
        start = end;
    }
    groups
}

/// The batches of each producer among `views` that are kept (empty if
/// need be) so that its sequence and epoch survive compaction: its last
/// data batch (the last sequence), as Kafka keeps it, and its last batch
/// if that is a marker (the latest epoch; Kafka keeps a marker only when
/// the producer has no data batch left).
#[derive(Debug, Default)]
pub(crate) struct ProducersLast {
    /// Producer id → (last offset of its last data batch, if any, last
    /// offset of its last batch).
    by_producer: HashMap<i64, (Option<i64>, i64)>,
}

impl ProducersLast {
    pub(crate) fn of(views: &[SealedView]) -> ProducersLast {
        let mut by_producer: HashMap<i64, (Option<i64>, i64)> = HashMap::new();
        for view in views {
            for batch in Batches::new(&view.data) {
                if !batch.has_producer_id() {
                    continue;
                }
                let last = by_producer.entry(batch.producer_id()).or_default();
                if !batch.attributes().is_control() {
                    last.0 = Some(batch.last_offset());
                }
                last.1 = batch.last_offset();
            }
        }
        ProducersLast { by_producer }
    }

    /// Whether `batch` is one its producer's state needs.
    pub(crate) fn holds(&self, batch: &BatchView<'_>) -> bool {
        if !batch.has_producer_id() {
            return false;
        }
        self.by_producer
            .get(&batch.producer_id())
            .is_some_and(|&(data, any)| {
                let last = batch.last_offset();
                data == Some(last) || any == last
            })
    }
}

/// What a pass has traversed of each producer's transactions, in offset
/// order from the log's first segment (Kafka's CleanedTransactionMetadata):
/// whether a batch of the transaction a marker ends was read by this
/// pass. Data batches precede their marker, and a pass reads every batch
/// from the start of the log, so a marker whose transaction had no batch
/// in the pass has none left anywhere. Not thread-safe: one per pass.
#[derive(Debug, Default)]
pub(crate) struct TxnTraversal {
    /// Producers with a transactional data batch read since their last
    /// marker.
    open: HashSet<i64>,
}

impl TxnTraversal {
    /// Notes a data batch read by the pass (kept or not).
    fn on_data_batch(&mut self, batch: &BatchView<'_>) {
        if batch.attributes().is_transactional() && batch.has_producer_id() {
            self.open.insert(batch.producer_id());
        }
    }

    /// Notes a marker read by the pass: whether a batch of the transaction
    /// it ends was read before it in this pass. Unlike Kafka, which asks
    /// the aborted-transaction index for an ABORT, both kinds ask the same
    /// question: a producer has one transaction open at a time, so its
    /// batches since its previous marker are this marker's transaction.
    fn on_marker(&mut self, producer_id: i64) -> bool {
        self.open.remove(&producer_id)
    }
}

/// What deciding each record needs, shared by every group of a pass.
#[derive(Debug)]
pub(crate) struct CleanContext<'a> {
    pub(crate) map: &'a OffsetMap,
    /// Records at or past this were not mapped, so are kept.
    pub(crate) map_end: Offset,
    pub(crate) now_ms: i64,
    pub(crate) delete_retention_ms: i64,
    pub(crate) producers_last: &'a ProducersLast,
    pub(crate) aborted: &'a AbortedRanges,
}

/// Rewrites `group` into one new segment, `{base}.log.cleaned`, sealed and
/// synced (its directory entry is not: the swap syncs the directory).
/// `txns` carries what the pass traversed from one group to the next:
/// groups must be cleaned in offset order.
pub(crate) fn clean_group(
    dir: &Path,
    group: &[SealedView],
    context: &CleanContext<'_>,
    txns: &mut TxnTraversal,
    config: &LogConfig,
    disk: &dyn Disk,
    outcome: &mut CompactionOutcome,
) -> Result<Segment, CompactError> {
    let base_offset = group[0].base_offset;
    let input_bytes: usize = group.iter().map(|v| v.data.len()).sum();
    let capacity = (input_bytes * 2 + OUTPUT_SLACK_BYTES).min(SEGMENT_BYTES_MAX as usize);
    let mut output =
        Segment::create_cleaned(dir, base_offset, capacity, config, context.now_ms, disk)?;
    let written = write_group(&mut output, group, context, txns, config, disk, outcome)
        .and_then(|removed_markers| {
            // An ABORT marker that stays keeps its transaction indexed (a
            // read_committed fetch must still skip any aborted record left,
            // and the partition's replay would index a marker again anyway);
            // one removed takes its entry with it.
            let aborted: Vec<_> = group
                .iter()
                .flat_map(|v| v.aborted_txns.iter().copied())
                .filter(|txn| removed_markers.binary_search(&txn.last_offset).is_err())
                .collect();
            output
                .add_cleaned_aborted_txns(&aborted, disk)
                .map_err(CompactError::from)
        })
        .and_then(|()| output.seal().map_err(CompactError::from))
        .and_then(|()| sync_segment(&output, disk).map_err(CompactError::from));
    if let Err(e) = written {
        // Best effort: a leftover `.cleaned` file is deleted at the next open.
        let _ = output.delete_files(disk);
        return Err(e);
    }
    outcome.bytes_before += input_bytes as u64;
    outcome.bytes_after += u64::from(output.size());
    Ok(output)
}

/// Writes what `group` keeps into `output`. Returns the offsets of the
/// markers it dropped, in increasing order.
fn write_group(
    output: &mut Segment,
    group: &[SealedView],
    context: &CleanContext<'_>,
    txns: &mut TxnTraversal,
    config: &LogConfig,
    disk: &dyn Disk,
    outcome: &mut CompactionOutcome,
) -> Result<Vec<Offset>, CompactError> {
    let mut removed_markers = Vec::new();
    for (i, view) in group.iter().enumerate() {
        let last_view = i + 1 == group.len();
        let mut batches = Batches::new(&view.data).peekable();
        while let Some(batch) = batches.next() {
            // The group's last batch is kept even if emptied, so the
            // cleaned segment spans every offset of the segments it
            // replaces: recovery finishes an interrupted swap by deleting
            // the old segments within that span.
            let group_last = last_view && batches.peek().is_none();
            let kept = if batch.attributes().is_control() {
                let kept = clean_control_batch(&batch, context, txns, group_last, outcome)?;
                if kept.is_none() {
                    removed_markers.push(Offset(batch.base_offset()));
                }
                kept
            } else {
                txns.on_data_batch(&batch);
                clean_batch(&batch, context, group_last, outcome)?
            };
            if let Some(bytes) = kept {
                output
                    .append_cleaned(bytes.as_slice(&batch), config, disk)
                    .map_err(|source| CompactError::Write {
                        base_offset: output.base_offset(),
                        source,
                    })?;
            }
        }
    }
    Ok(removed_markers)
}

/// A batch as compaction keeps it: as it was, or rewritten.
enum Kept {
    Unchanged,
    Rewritten(Vec<u8>),
}

impl Kept {
    fn as_slice<'a>(&'a self, original: &'a BatchView<'_>) -> &'a [u8] {
        match self {
            Kept::Unchanged => original.as_bytes(),
            Kept::Rewritten(bytes) => bytes,
        }
    }
}

/// Decides a control batch: a commit or abort marker is removed once no
/// batch of its transaction is left — the pass traversed none (see
/// [`TxnTraversal`]) — and its delete horizon has passed. The first pass
/// that traverses none sets that horizon to now + delete.retention.ms, as
/// for a tombstone (Kafka's cleaner, KIP-534). A marker its producer's
/// state needs, or that ends the group, stays whole (never emptied: the
/// partition's replay reads every marker as one control record). Other
/// control batches are copied.
fn clean_control_batch(
    batch: &BatchView<'_>,
    context: &CleanContext<'_>,
    txns: &mut TxnTraversal,
    group_last: bool,
    outcome: &mut CompactionOutcome,
) -> Result<Option<Kept>, CompactError> {
    // A control record that cannot be read is kept, as the partition
    // keeps it (it skips it rather than fail the partition over it).
    let Ok(Some(_)) = EndTxnMarker::of(batch) else {
        return Ok(Some(Kept::Unchanged));
    };
    if txns.on_marker(batch.producer_id()) {
        return Ok(Some(Kept::Unchanged));
    }
    match delete_horizon_of(batch) {
        None => {
            let horizon = context.now_ms.saturating_add(context.delete_retention_ms);
            let data = expand(batch)?;
            let mut rewriter = BatchRewriter::new(*batch, Some(horizon));
            for record in &decode(batch, &data)? {
                rewriter.keep(record);
            }
            let bytes = rewriter.finish().map_err(|source| CompactError::Compress {
                base_offset: Offset(batch.base_offset()),
                source,
            })?;
            Ok(Some(Kept::Rewritten(bytes)))
        }
        Some(horizon)
            if context.now_ms >= horizon && !group_last && !context.producers_last.holds(batch) =>
        {
            outcome.markers_removed += 1;
            Ok(None)
        }
        Some(_) => Ok(Some(Kept::Unchanged)),
    }
}

/// Decides each record of `batch`: kept if it is the latest of its key
/// (or past the map, or has no key), dropped if superseded; a tombstone
/// that is the latest of its key is kept until its batch's delete horizon
/// has passed, and the first pass that keeps it sets that horizon to now +
/// delete.retention.ms (KIP-534). A batch left empty is dropped unless it
/// is the group's last or its producer's last.
fn clean_batch(
    batch: &BatchView<'_>,
    context: &CleanContext<'_>,
    group_last: bool,
    outcome: &mut CompactionOutcome,
) -> Result<Option<Kept>, CompactError> {
    let data = expand(batch)?;
    let records = decode(batch, &data)?;
    let horizon = delete_horizon_of(batch);
    let aborted = context.aborted.holds(batch);
    let mut keep = Vec::with_capacity(records.len());
    let mut tombstone_kept = false;
    for record in &records {
        let offset = Offset(batch.base_offset() + i64::from(record.offset_delta));
        let retained = match record.key {
            // Past the map the pass has not looked: kept, even if
            // aborted, for a later pass to remove.
            _ if offset >= context.map_end => true,
            _ if aborted => {
                outcome.aborted_records_removed += 1;
                false
            }
            // Kafka drops keyless records from compacted topics (producers
            // are refused them); Rill keeps them, so nothing is lost.
            None => true,
            Some(key) => {
                let latest = context.map.get(key).is_none_or(|latest| offset >= latest);
                if !latest {
                    outcome.records_superseded += 1;
                    false
                } else if record.value.is_none() && horizon.is_some_and(|h| context.now_ms >= h) {
                    outcome.tombstones_removed += 1;
                    false
                } else {
                    true
                }
            }
        };
        tombstone_kept |= retained && record.value.is_none() && record.key.is_some();
        keep.push(retained);
    }
    let set_horizon = tombstone_kept && horizon.is_none();
    let kept_count = keep.iter().filter(|&&k| k).count();
    if kept_count == records.len() && !set_horizon {
        return Ok(Some(Kept::Unchanged));
    }
    if kept_count == 0 && !group_last && !context.producers_last.holds(batch) {
        return Ok(None);
    }
    let new_horizon =
        set_horizon.then(|| context.now_ms.saturating_add(context.delete_retention_ms));
    let mut rewriter = BatchRewriter::new(*batch, new_horizon);
    for (record, _) in records.iter().zip(&keep).filter(|(_, k)| **k) {
        rewriter.keep(record);
    }
    let bytes = rewriter.finish().map_err(|source| CompactError::Compress {
        base_offset: Offset(batch.base_offset()),
        source,
    })?;
    Ok(Some(Kept::Rewritten(bytes)))
}

fn expand<'a>(batch: &BatchView<'a>) -> Result<std::borrow::Cow<'a, [u8]>, CompactError> {
    records_data(batch, EXPANDED_RECORDS_BYTES_MAX).map_err(|source| CompactError::Decompress {
        base_offset: Offset(batch.base_offset()),
        source,
    })
}

fn decode<'d>(batch: &BatchView<'_>, data: &'d [u8]) -> Result<Vec<Record<'d>>, CompactError> {
    Records::new(data, batch.records_count())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CompactError::MalformedRecords {
            base_offset: Offset(batch.base_offset()),
            source,
        })
}

fn sync_segment(segment: &Segment, disk: &dyn Disk) -> Result<(), IoFailure> {
    for (file, path) in segment.sync_files() {
        file.sync_data(disk)
            .map_err(|e| IoFailure::new("sync cleaned segment", path, e))?;
    }
    Ok(())
}
