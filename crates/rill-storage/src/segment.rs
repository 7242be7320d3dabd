//! One segment: a `.log` file of whole batches, mmap'd, with its sparse
//! `.index` and `.timeindex`.
//!
//! The maps are made when first needed and given up when idle (see
//! open_maps.rs). A segment's own fallible operations map what they use;
//! the log maps a segment before its infallible reads
//! ([`Segment::map_for_read`]), under its lock, which then keeps the maps
//! for as long as it is held.
//!
//! Invariant: a segment's base offset is <= its first offset and > every
//! offset in earlier segments; bytes [0, size) of the file are whole,
//! valid batches with strictly increasing offsets.
//!
//! Not thread-safe: the log that owns the segment holds the lock.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use rill_record::{BatchView, Batches, BatchesEnd, NO_TIMESTAMP, Records, records_data};

use crate::Offset;
use crate::config::EXPANDED_RECORDS_BYTES_MAX;
use crate::config::{FlushPolicy, LogConfig};
use crate::disk::{Disk, remove_if_present};
use crate::durable::write_atomically_on;
use crate::error::{AppendError, IoFailure, ReadError, SegmentFileChanged};
use crate::file_check::check_file;
use crate::mmap::LogMap;
use crate::offset_index::OffsetIndex;
use crate::open_files::{LazyFile, with_descriptor};
use crate::time_index::TimeIndex;
use crate::txn_index::{AbortedTxn, TXN_INDEX_SUFFIX, TxnIndex};

/// Smallest and largest step by which a log file's reservation grows; in
/// between, it doubles, so small partitions reserve little disk.
const RESERVE_STEP_MIN_BYTES: usize = 64 * 1024;
const RESERVE_STEP_MAX_BYTES: usize = 64 * 1024 * 1024;
const PAGE_BYTES: usize = 4096;
/// Batches smaller than this are copied into the map; larger ones are
/// written with one pwritev. Measured (docs/benchmarks.md): a store into a
/// page not yet cached faults, and the kernel zero-fills the page before
/// the copy overwrites it, while pwrite of whole pages skips the zeroing
/// but costs a syscall per batch. At 1 KiB the map is 2-3x faster, at
/// 16 KiB they tie, at 64 KiB pwrite is ~20% faster. Logs under `fsync`
/// always use pwrite (see `Segment::append`).
const MAPPED_APPEND_BYTES_MAX: usize = 16 * 1024;
/// Kafka keeps offsets relative to a segment's base within an i32.
const RELATIVE_OFFSET_MAX: i64 = i32::MAX as i64;

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";
/// Suffix of a file being written to replace another; deleted at open.
pub(crate) const TEMP_SUFFIX: &str = "tmp";
/// Suffix of a compaction output being written; deleted at open.
pub(crate) const CLEANED_SUFFIX: &str = "cleaned";
/// Suffix of a compaction output that is committed but not yet in place;
/// an open finishes the swap (see docs/storage.md).
pub(crate) const SWAP_SUFFIX: &str = "swap";

/// Which names a segment's files have: live (`.log`), or a compaction
/// output on its way in (`.log.cleaned`, then `.log.swap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileStage {
    Live,
    Cleaned,
    Swap,
}

impl FileStage {
    /// `suffix` as named at this stage: `log`, `log.cleaned`, `log.swap`.
    pub(crate) fn name(self, suffix: &str) -> String {
        match self {
            FileStage::Live => suffix.to_string(),
            FileStage::Cleaned => format!("{suffix}.{CLEANED_SUFFIX}"),
            FileStage::Swap => format!("{suffix}.{SWAP_SUFFIX}"),
        }
    }
}

/// `{base_offset:020}.{suffix}`, as Kafka names segment files.
pub(crate) fn segment_path(dir: &Path, base_offset: Offset, suffix: &str) -> PathBuf {
    dir.join(format!("{:020}.{suffix}", base_offset.value()))
}

/// Deletes the files of the segment at `base_offset` (log, indexes,
/// transaction index), those that exist. The caller syncs the directory when the deletion must be durable.
pub(crate) fn delete_segment_files(
    dir: &Path,
    base_offset: Offset,
    disk: &dyn Disk,
) -> Result<(), IoFailure> {
    delete_staged_files(dir, base_offset, FileStage::Live, disk)
}

/// Deletes the files of the segment at `base_offset` named as at
/// `stage`, those that exist.
fn delete_staged_files(
    dir: &Path,
    base_offset: Offset,
    stage: FileStage,
    disk: &dyn Disk,
) -> Result<(), IoFailure> {
    for suffix in [
        LOG_SUFFIX,
        INDEX_SUFFIX,
        TIME_INDEX_SUFFIX,
        TXN_INDEX_SUFFIX,
    ] {
        let path = segment_path(dir, base_offset, &stage.name(suffix));
        remove_if_present(disk, &path)
            .map_err(|e| IoFailure::new("delete segment file", path, e))?;
    }
    Ok(())
}

/// What the broker writes into a batch as it appends it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamp {
    pub(crate) base_offset: Offset,
    pub(crate) leader_epoch: i32,
    /// Set for LogAppendTime topics.
    pub(crate) log_append_time_ms: Option<i64>,
}

/// The header facts of a batch just appended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AppendedBatch {
    pub(crate) last_offset: Offset,
    pub(crate) max_timestamp: i64,
    /// Whether the file's reservation grew for it (the disk had room).
    pub(crate) reserved: bool,
}

/// What a segment's summary needs to know of a batch it holds.
#[derive(Clone, Copy, Debug)]
struct BatchFacts {
    last_offset: Offset,
    max_timestamp: i64,
    size: u32,
}

impl BatchFacts {
    fn of(batch: &BatchView<'_>) -> BatchFacts {
        BatchFacts {
            last_offset: Offset(batch.last_offset()),
            max_timestamp: batch.max_timestamp(),
            size: batch.size_u32(),
        }
    }
}

/// Where a recovery scan stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Bytes of whole, valid batches kept.
    pub(crate) valid_bytes: u64,
    /// Bytes after them that were not reserved zeros: torn or corrupt data
    /// that was cut off.
    pub(crate) dropped_bytes: u64,
    /// Bytes of the batches whose CRC was checked.
    pub(crate) validated_bytes: u64,
}

/// What a segment knows about the batches it holds: their extent, their
/// largest timestamp, and the two sparse indexes over them.
#[derive(Debug)]
struct Summary {
    index: OffsetIndex,
    time_index: TimeIndex,
    /// Bytes of whole batches: the write position.
    size: u32,
    /// One past the last offset in the segment; the base when empty. For a
    /// sealed segment opened at start-up, the next segment's base.
    next_offset: Offset,
    max_timestamp: i64,
    /// The last offset of the batch holding `max_timestamp`.
    offset_of_max_timestamp: Offset,
    bytes_since_index_entry: u32,
    /// maxTimestamp of the first batch, from which segment.ms is counted;
    /// read from the file on first need after a restart.
    first_batch_timestamp: Option<i64>,
}

impl Summary {
    fn empty(index: OffsetIndex, time_index: TimeIndex, base_offset: Offset) -> Summary {
        Summary {
            index,
            time_index,
            size: 0,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            bytes_since_index_entry: 0,
            first_batch_timestamp: None,
        }
    }

    /// Whether [`Summary::add`] of the next batch writes index entries.
    fn will_index(&self, index_interval_bytes: u32) -> bool {
        self.bytes_since_index_entry > index_interval_bytes && !self.index.is_full()
    }

    fn reset(&mut self, base_offset: Offset) {
        self.index.clear();
        self.time_index.clear();
        self.size = 0;
        self.next_offset = base_offset;
        self.max_timestamp = NO_TIMESTAMP;
        self.offset_of_max_timestamp = base_offset;
        self.bytes_since_index_entry = 0;
        self.first_batch_timestamp = None;
    }

    /// Accounts for the batch of `size` bytes just written at the end (its
    /// position is the size so far: batches are added in file order), as
    /// Kafka's LogSegment.append does: an index entry once more than
    /// index.interval.bytes were written since the last one.
    fn add(&mut self, batch: BatchFacts, index_interval_bytes: u32) {
        let position = self.size;
        let BatchFacts {
            last_offset,
            max_timestamp,
            size,
        } = batch;
        if self.size == 0 {
            self.first_batch_timestamp = Some(max_timestamp);
        }
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        if self.will_index(index_interval_bytes) {
            self.index.append(last_offset, position);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, false);
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry = self.bytes_since_index_entry.saturating_add(size);
        // Cannot saturate: the batch lies within the segment's u32 bytes.
        self.size = position.saturating_add(size);
        self.next_offset = last_offset.plus(1);
    }
}

/// Not thread-safe: owned by a log, behind its lock.
#[derive(Debug)]
pub(crate) struct Segment {
    dir: PathBuf,
    base_offset: Offset,
    log_file: LazyFile,
    map: LogMap,
    summary: Summary,
    created_ms: i64,
    sealed: bool,
    stage: FileStage,
    /// The transactions aborted by markers in this segment.
    txn_index: TxnIndex,
    /// Mapped for a read or write since a sweep of the map budget last
    /// looked (see [`Segment::unmap_idle`]).
    used: AtomicBool,
}

/// What compaction reads of a sealed segment, outside the log's lock: its
/// bytes as a zero-copy slice, which stay valid whatever happens to the
/// segment afterwards.
#[derive(Clone, Debug)]
pub(crate) struct SealedView {
    pub(crate) base_offset: Offset,
    pub(crate) next_offset: Offset,
    pub(crate) data: Bytes,
    /// The timestamp min.compaction.lag.ms compares (as retention's).
    pub(crate) largest_timestamp: i64,
    /// The segment's aborted transactions, which its cleaned output keeps.
    pub(crate) aborted_txns: Vec<AbortedTxn>,
}

impl Segment {
    /// Creates an empty, active segment, replacing any files of that name.
    pub(crate) fn create(
        dir: &Path,
        base_offset: Offset,
        config: &LogConfig,
        now_ms: i64,
        disk: &dyn Disk,
    ) -> Result<Segment, IoFailure> {
        let map_bytes = map_capacity(config, 0);
        Segment::create_at(
            dir,
            base_offset,
            FileStage::Live,
            map_bytes,
            config,
            now_ms,
            disk,
        )
    }

    /// Creates an empty compaction output, `{base}.log.cleaned` and its
    /// indexes, mapped with room for `capacity_bytes`.
    pub(crate) fn create_cleaned(
        dir: &Path,
        base_offset: Offset,
        capacity_bytes: usize,
        config: &LogConfig,
        now_ms: i64,
        disk: &dyn Disk,
    ) -> Result<Segment, IoFailure> {
        let map_bytes = capacity_bytes.next_multiple_of(PAGE_BYTES);
        Segment::create_at(
            dir,
            base_offset,
            FileStage::Cleaned,
            map_bytes,
            config,
            now_ms,
            disk,
        )
    }

    /// Creates the empty `.log` (at `stage`) and its indexes.
    fn create_at(
        dir: &Path,
        base_offset: Offset,
        stage: FileStage,
        map_bytes: usize,
        config: &LogConfig,
        now_ms: i64,
        disk: &dyn Disk,
    ) -> Result<Segment, IoFailure> {
        let log_path = segment_path(dir, base_offset, &stage.name(LOG_SUFFIX));
        let log_file = disk
            .create_file(&log_path)
            .map_err(|e| IoFailure::new("create segment", &log_path, e))?;
        let map = LogMap::new(map_bytes, 0);
        let index = OffsetIndex::create(
            &segment_path(dir, base_offset, &stage.name(INDEX_SUFFIX)),
            base_offset,
            config.segment_index_bytes,
            disk,
        )?;
        let time_index = TimeIndex::create(
            &segment_path(dir, base_offset, &stage.name(TIME_INDEX_SUFFIX)),
            base_offset,
            config.segment_index_bytes,
            disk,
        )?;
        let txn_index = TxnIndex::create(segment_path(
            dir,
            base_offset,
            &stage.name(TXN_INDEX_SUFFIX),
        ));
        let mut segment = Segment {
            dir: dir.to_path_buf(),
            base_offset,
            log_file: LazyFile::new(log_path, log_file),
            map,
            summary: Summary::empty(index, time_index, base_offset),
            created_ms: now_ms,
            sealed: false,
            stage,
            txn_index,
            used: AtomicBool::new(true),
        };
        segment.reserve_indexes(0, config, disk)?;
        Ok(segment)
    }

    /// Appends a batch that already carries its offsets (compaction
    /// output), unchanged. Refused if it would not fit the map.
    pub(crate) fn append_cleaned(
        &mut self,
        batch: &[u8],
        config: &LogConfig,
        disk: &dyn Disk,
    ) -> Result<(), AppendError> {
        assert_eq!(
            self.stage,
            FileStage::Cleaned,
            "only outputs take cleaned batches"
        );
        if self.summary.size as usize + batch.len() > self.map.capacity() {
            return Err(AppendError::BatchLargerThanSegment {
                batch_bytes: self.summary.size as usize + batch.len(),
                segment_bytes: u32::try_from(self.map.capacity()).unwrap_or(u32::MAX),
            });
        }
        let view = BatchView::new(batch).map_err(AppendError::InvalidBatch)?;
        let stamp = Stamp {
            base_offset: Offset(view.base_offset()),
            leader_epoch: view.partition_leader_epoch(),
            log_append_time_ms: None,
        };
        // pwrite rather than stores through the map: the output is
        // written once and synced, never read through this map meanwhile.
        let config = LogConfig {
            flush: FlushPolicy::Fsync,
            ..*config
        };
        self.append(&view, &stamp, &config, disk).map(|_| ())
    }

    /// Renames the segment's files to `stage`'s names (indexes first, the
    /// log last: the log's rename is what recovery acts on). The caller
    /// syncs the directory.
    pub(crate) fn rename_to(&mut self, stage: FileStage, disk: &dyn Disk) -> Result<(), IoFailure> {
        if stage == self.stage {
            return Ok(());
        }
        // The transaction index goes before the log into `.swap` and after
        // it into place, so that recovery can tell an uncommitted one (a
        // `.log.cleaned` beside it) from one whose swap completed but for
        // it (no log of the swap left): see recovery.rs.
        let txn_index_path =
            segment_path(&self.dir, self.base_offset, &stage.name(TXN_INDEX_SUFFIX));
        if stage != FileStage::Live {
            self.txn_index.rename(txn_index_path.clone(), disk)?;
        }
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
            let from = segment_path(&self.dir, self.base_offset, &self.stage.name(suffix));
            let to = segment_path(&self.dir, self.base_offset, &stage.name(suffix));
            disk.rename(&from, &to)
                .map_err(|e| IoFailure::new("rename segment file", &to, e))?;
            match suffix {
                INDEX_SUFFIX => self.summary.index.file_mut().set_path(to),
                TIME_INDEX_SUFFIX => self.summary.time_index.file_mut().set_path(to),
                _ => self.log_file.set_path(to),
            }
        }
        if stage == FileStage::Live {
            self.txn_index.rename(txn_index_path, disk)?;
        }
        self.stage = stage;
        Ok(())
    }

    /// The whole of a sealed segment, for compaction to read outside the
    /// lock (the slice keeps the map while it is alive).
    pub(crate) fn sealed_view(&self) -> Result<SealedView, IoFailure> {
        assert!(self.sealed, "compaction reads only sealed segments");
        self.map_log()?;
        Ok(SealedView {
            base_offset: self.base_offset,
            next_offset: self.summary.next_offset,
            data: self.share(0, self.summary.size),
            largest_timestamp: self.largest_timestamp(),
            aborted_txns: self.txn_index.entries().to_vec(),
        })
    }

    /// Opens a segment's files as they are; the caller then trusts it
    /// ([`Segment::load_trusted`]) or scans it ([`Segment::recover`]).
    /// An `active` segment is mapped with room to grow to segment.bytes.
    /// Also returns whether the index files were missing or malformed
    /// (they are created anew, to be rebuilt by a scan).
    pub(crate) fn open(
        dir: &Path,
        base_offset: Offset,
        config: &LogConfig,
        (active, now_ms): (bool, i64),
        disk: &dyn Disk,
    ) -> Result<(Segment, bool), IoFailure> {
        let log_path = segment_path(dir, base_offset, LOG_SUFFIX);
        let log_file = with_descriptor(|| File::options().read(true).write(true).open(&log_path))
            .map_err(|e| IoFailure::new("open segment", &log_path, e))?;
        let file_len = log_file
            .metadata()
            .map_err(|e| IoFailure::new("stat segment", &log_path, e))?
            .len();
        // Positions are u32 and Kafka caps segments at i32::MAX bytes; a
        // longer file is only read up to there, and a scan cuts the rest.
        let size = u32::try_from(file_len)
            .unwrap_or(u32::MAX)
            .min(i32::MAX.unsigned_abs());
        let file_len = size as usize;
        let capacity = if active {
            map_capacity(config, file_len)
        } else {
            file_len
        };
        let map = LogMap::new(capacity, file_len);
        let index_path = segment_path(dir, base_offset, INDEX_SUFFIX);
        let time_index_path = segment_path(dir, base_offset, TIME_INDEX_SUFFIX);
        let (index, time_index, rebuild) = match (
            OffsetIndex::open_trimmed(&index_path, base_offset)?,
            TimeIndex::open_trimmed(&time_index_path, base_offset)?,
        ) {
            (Some(index), Some(time_index)) => (index, time_index, false),
            _ => (
                OffsetIndex::create(&index_path, base_offset, config.segment_index_bytes, disk)?,
                TimeIndex::create(
                    &time_index_path,
                    base_offset,
                    config.segment_index_bytes,
                    disk,
                )?,
                true,
            ),
        };
        let mut summary = Summary::empty(index, time_index, base_offset);
        summary.size = size;
        let txn_index = TxnIndex::open(segment_path(dir, base_offset, TXN_INDEX_SUFFIX), disk)?;
        let segment = Segment {
            dir: dir.to_path_buf(),
            base_offset,
            log_file: LazyFile::new(log_path, log_file),
            map,
            summary,
            created_ms: now_ms,
            sealed: !active,
            stage: FileStage::Live,
            txn_index,
            used: AtomicBool::new(true),
        };
        Ok((segment, rebuild))
    }

    /// Takes a cleanly written segment as it is, without reading its log
    /// data: its size is the file length and its largest timestamp the
    /// time index's last entry. `next_offset` is the next segment's base,
    /// or for the last segment the log end offset recorded at shutdown.
    /// Returns false if the indexes contradict that and a scan is needed.
    pub(crate) fn load_trusted(
        &mut self,
        next_offset: Offset,
        config: &LogConfig,
    ) -> Result<bool, IoFailure> {
        self.map_indexes()?;
        let summary = &mut self.summary;
        let Ok(relative_end) = u64::try_from(next_offset.since(self.base_offset)) else {
            return Ok(false);
        };
        if (summary.size == 0) != (relative_end == 0)
            || !summary.index.is_consistent(relative_end, summary.size)
            || !summary.time_index.is_consistent(relative_end)
        {
            return Ok(false);
        }
        summary.next_offset = next_offset;
        if let Some((timestamp, offset)) = summary.time_index.last_entry() {
            summary.max_timestamp = timestamp;
            summary.offset_of_max_timestamp = offset;
        }
        let last_indexed = summary.index.file().last().map_or(0, |e| e.position);
        summary.bytes_since_index_entry = summary.size - last_indexed;
        if !self.sealed {
            // Room is reserved by the first append (which reserves before
            // it writes), not here: a log opened and closed unused keeps
            // its files as they are.
            self.summary
                .index
                .file_mut()
                .set_limit(config.segment_index_bytes);
            self.summary
                .time_index
                .file_mut()
                .set_limit(config.segment_index_bytes);
        }
        Ok(true)
    }

    /// Makes room in both indexes for every entry the log up to
    /// `log_bytes` can still bring, up to segment.index.bytes: past the
    /// entries there are, the next batch may bring one, and every later
    /// entry needs more than index.interval.bytes of new log and a whole
    /// batch; the time index keeps one more slot for the roll. The
    /// indexes thus grow with the log file, and adding a batch that fits
    /// in the reserved log never runs out of index room, whatever
    /// index.interval.bytes the entries already there were made with.
    fn reserve_indexes(
        &mut self,
        log_bytes: usize,
        config: &LogConfig,
        disk: &dyn Disk,
    ) -> Result<(), IoFailure> {
        let log_bytes_per_entry =
            (config.index_interval_bytes as usize + 1).max(rill_record::layout::RECORDS);
        let new_entries =
            log_bytes.saturating_sub(self.summary.size as usize) / log_bytes_per_entry + 2;
        let summary = &mut self.summary;
        let index_entries = summary.index.file().len() + new_entries;
        summary
            .index
            .file_mut()
            .reserve(index_entries, config.segment_index_bytes, disk)?;
        let time_entries = summary.time_index.file().len() + new_entries;
        summary
            .time_index
            .file_mut()
            .reserve(time_entries, config.segment_index_bytes, disk)
    }

    /// Scans the whole file from its start: checks the framing and offsets
    /// of every batch, and the CRC of every batch that ends at or after
    /// `validate_from`; rebuilds both indexes; cuts the file after the last
    /// good batch. `first_allowed` is the smallest offset the segment may
    /// hold (past the previous segment's end); `end_allowed`, if any, is
    /// one past the largest (the next segment's base offset).
    pub(crate) fn recover(
        &mut self,
        validate_from: Offset,
        (first_allowed, end_allowed): (Offset, Option<Offset>),
        config: &LogConfig,
        disk: &dyn Disk,
    ) -> Result<Recovered, IoFailure> {
        self.summary.reset(self.base_offset);
        self.reserve_indexes(self.map.file_len(), config, disk)?;
        self.map()?;
        let mut expected = first_allowed.max(self.base_offset);
        let mut recovered = Recovered::default();
        let file_len = self.map.file_len();
        let data = self.map.bytes(0, file_len);
        let mut batches = Batches::new(data);
        let mut position = 0usize;
        for batch in batches.by_ref() {
            if !is_in_sequence(&batch, expected, self.base_offset) {
                break;
            }
            // baseOffset lies outside the CRC: a damaged one can reach into
            // the next segment's offsets, which would make the log end
            // offset go back below offsets this segment holds.
            if end_allowed.is_some_and(|end| batch.last_offset() >= end.value()) {
                break;
            }
            if batch.last_offset() >= validate_from.value() {
                if batch.verify_crc().is_err() {
                    break;
                }
                recovered.validated_bytes += batch.size() as u64;
            }
            self.summary
                .add(BatchFacts::of(&batch), config.index_interval_bytes);
            position += batch.size();
            expected = Offset(batch.next_offset());
        }
        // Reserved space ahead of the write position is zeros: reaching it
        // is the normal end of an active segment, not damage.
        let rest = &data[position..];
        let clean_end =
            matches!(batches.end(), Some(BatchesEnd::Complete)) || rest.iter().all(|&b| b == 0);
        recovered.valid_bytes = position as u64;
        if !clean_end {
            recovered.dropped_bytes = rest.len() as u64;
        }
        if position < file_len {
            let file = self.open_log()?;
            self.map
                .truncate_file(&file, position)
                .map_err(|e| IoFailure::new("truncate segment", self.log_path(), e))?;
        }
        // Entries whose marker did not survive go too; the partition's
        // replay of the markers re-adds what the log still holds.
        self.txn_index.truncate_from(expected, disk)?;
        Ok(recovered)
    }

    pub(crate) fn base_offset(&self) -> Offset {
        self.base_offset
    }

    pub(crate) fn next_offset(&self) -> Offset {
        self.summary.next_offset
    }

    pub(crate) fn size(&self) -> u32 {
        self.summary.size
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.summary.size == 0
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.summary.max_timestamp
    }

    /// Whether the files a read touches — the `.log` and the `.index` —
    /// are still linked and hold every byte mapped of them (see
    /// file_check.rs): two fstats.
    pub(crate) fn check_read_files(&self) -> Result<(), SegmentFileChanged> {
        check_file(&self.log_file, self.map.file_len() as u64, || {
            self.log_path()
        })?;
        self.summary.index.file().check_unchanged()
    }

    /// [`Segment::check_read_files`] and the `.timeindex` too, which
    /// appends, seals and timestamp lookups touch: three fstats.
    pub(crate) fn check_files(&self) -> Result<(), SegmentFileChanged> {
        self.check_read_files()?;
        self.summary.time_index.file().check_unchanged()
    }

    /// The `.log`'s descriptor, opened again if it was closed.
    fn open_log(&self) -> Result<Arc<File>, IoFailure> {
        self.log_file
            .get()
            .map_err(|e| IoFailure::new("open segment", self.log_path(), e))
    }

    /// Maps the `.log` and both indexes unless they are mapped.
    fn map(&self) -> Result<(), IoFailure> {
        self.map_log()?;
        self.map_indexes()
    }

    /// Maps what a read of batches uses ([`Segment::position_of`],
    /// [`Segment::read_end`], [`Segment::share`]): the `.log` and the
    /// `.index`.
    pub(crate) fn map_for_read(&self) -> Result<(), IoFailure> {
        self.map_log()?;
        self.summary.index.file().map()
    }

    fn map_log(&self) -> Result<(), IoFailure> {
        self.mark_used();
        if self.map.is_mapped() {
            return Ok(());
        }
        let file = self.open_log()?;
        self.map
            .map(&file)
            .map_err(|e| IoFailure::new("map segment", self.log_path(), e))
    }

    fn map_indexes(&self) -> Result<(), IoFailure> {
        self.mark_used();
        self.summary.index.file().map()?;
        self.summary.time_index.file().map()
    }

    fn mark_used(&self) {
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
    }

    /// Gives up the maps, unless they were used since the last call or a
    /// reader holds bytes of the `.log` (that map then stays); returns how
    /// many went.
    pub(crate) fn unmap_idle(&mut self) -> usize {
        if self.used.swap(false, Ordering::Relaxed) {
            return 0;
        }
        self.unmap()
    }

    /// Gives up the maps but one a reader holds bytes of; returns how many
    /// went.
    pub(crate) fn unmap(&mut self) -> usize {
        usize::from(self.map.unmap())
            + usize::from(self.summary.index.file_mut().unmap())
            + usize::from(self.summary.time_index.file_mut().unmap())
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        segment_path(&self.dir, self.base_offset, &self.stage.name(LOG_SUFFIX))
    }

    /// The files to fdatasync for this segment's data (and, once sealed,
    /// its indexes) to be durable.
    pub(crate) fn sync_files(&self) -> Vec<(LazyFile, PathBuf)> {
        let mut files = vec![(self.log_file.clone(), self.log_path())];
        files.extend(self.txn_index.sync_file());
        if self.sealed {
            let index = self.summary.index.file();
            let time_index = self.summary.time_index.file();
            files.push((index.file().clone(), index.path().to_path_buf()));
            files.push((time_index.file().clone(), time_index.path().to_path_buf()));
        }
        files
    }

    /// The timestamp retention.ms compares: the largest record timestamp,
    /// or the file's modification time when no record has one (as Kafka).
    pub(crate) fn largest_timestamp(&self) -> i64 {
        if self.summary.max_timestamp > NO_TIMESTAMP {
            return self.summary.max_timestamp;
        }
        self.log_file
            .get()
            .and_then(|file| file.metadata())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(NO_TIMESTAMP, |d| {
                i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
            })
    }

    /// Whether a batch of `batch_bytes` ending at `last_offset` with
    /// `max_timestamp` must go to a new segment: this one would exceed
    /// segment.bytes, is older than segment.ms, has a full index, or
    /// cannot hold the offset as relative.
    pub(crate) fn should_roll(
        &mut self,
        batch_bytes: usize,
        max_timestamp: i64,
        last_offset: Offset,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<bool, IoFailure> {
        // Also for an empty segment: a replicated batch may start far
        // past its base (offsets the leader's compaction removed).
        if last_offset.since(self.base_offset) > RELATIVE_OFFSET_MAX {
            return Ok(true);
        }
        if self.is_empty() {
            return Ok(false);
        }
        let too_big = self.summary.size as usize + batch_bytes > config.segment_bytes as usize
            || self.summary.size as usize + batch_bytes > self.map.capacity();
        let waited_ms = match self.first_batch_timestamp()? {
            Some(first) if first > NO_TIMESTAMP => max_timestamp.saturating_sub(first),
            _ => now_ms.saturating_sub(self.created_ms),
        };
        Ok(too_big
            || waited_ms > config.segment_ms
            || self.summary.index.is_full()
            || self.summary.time_index.is_full())
    }

    fn first_batch_timestamp(&mut self) -> Result<Option<i64>, IoFailure> {
        if self.summary.first_batch_timestamp.is_none() && !self.is_empty() {
            self.map_log()?;
            let end = self.summary.size as usize;
            self.summary.first_batch_timestamp = BatchView::new(self.map.bytes(0, end))
                .ok()
                .map(|b| b.max_timestamp());
        }
        Ok(self.summary.first_batch_timestamp)
    }

    /// Writes `batch` (already validated) at the end of the segment with
    /// the broker's stamps: a stamped copy of the header, then the batch's
    /// own records bytes (never copied to a buffer first), through the map
    /// for small batches or one pwritev for large ones. The caller has
    /// checked `should_roll`.
    pub(crate) fn append(
        &mut self,
        view: &BatchView<'_>,
        stamp: &Stamp,
        config: &LogConfig,
        disk: &dyn Disk,
    ) -> Result<AppendedBatch, AppendError> {
        assert!(
            !self.sealed,
            "appending to sealed segment {}",
            self.base_offset
        );
        let batch = view.as_bytes();
        let position = self.summary.size as usize;
        let end = position + batch.len();
        assert!(
            end <= self.map.capacity(),
            "roll check lets a batch overflow the map"
        );
        assert!(
            self.map.may_change(position),
            "appending over bytes a reader holds"
        );
        let reserved = self.reserve_for(end, config, disk)?;
        // Under fsync, writeback write-protects mapped pages after every
        // sync, so the next store faults again (and flushes TLBs): pwrite
        // measured ~35% faster there even for 1 KiB batches.
        let through_map =
            batch.len() < MAPPED_APPEND_BYTES_MAX && config.flush != FlushPolicy::Fsync;
        // Only what this append touches: a partition produced to under
        // fsync maps its indexes, not its log.
        if through_map {
            self.map_log()?;
        }
        if self.summary.will_index(config.index_interval_bytes) {
            self.map_indexes()?;
        }
        self.mark_used();
        let header = view.stamped_header(
            stamp.base_offset.value(),
            stamp.leader_epoch,
            stamp.log_append_time_ms,
        );
        if through_map {
            self.map.write(position, &header);
            self.map
                .write(position + header.len(), view.records_bytes());
        } else {
            let file = self.open_log()?;
            disk.write_at(&file, &[&header, view.records_bytes()], position as u64)
                .map_err(|e| {
                    AppendError::from(IoFailure::new("write segment", self.log_path(), e))
                })?;
        }
        let facts = BatchFacts {
            last_offset: stamp.base_offset.plus(i64::from(view.last_offset_delta())),
            max_timestamp: stamp.log_append_time_ms.unwrap_or(view.max_timestamp()),
            size: view.size_u32(),
        };
        self.summary.add(facts, config.index_interval_bytes);
        Ok(AppendedBatch {
            last_offset: facts.last_offset,
            max_timestamp: facts.max_timestamp,
            reserved,
        })
    }

    /// Makes sure the file is allocated up to `end`, growing the
    /// reservation geometrically, and the indexes with it. On a disk too
    /// full for the geometric step, reserves only what `end` needs (to
    /// the page) before giving up, so that a nearly full disk is used to
    /// its last pages rather than refused with room left. Returns whether
    /// the reservation grew.
    fn reserve_for(
        &mut self,
        end: usize,
        config: &LogConfig,
        disk: &dyn Disk,
    ) -> Result<bool, AppendError> {
        let file_len = self.map.file_len();
        let needed = end
            .next_multiple_of(PAGE_BYTES)
            .min(self.map.capacity())
            .max(end);
        let target = if end <= file_len {
            file_len
        } else {
            let step = file_len.clamp(RESERVE_STEP_MIN_BYTES, RESERVE_STEP_MAX_BYTES);
            let target = end.max(file_len + step).next_multiple_of(PAGE_BYTES);
            target.min(self.map.capacity()).max(end)
        };
        let mut result = self.reserve_to(target, config, disk);
        if matches!(&result, Err(failure) if failure.is_disk_full()) && needed < target {
            result = self.reserve_to(needed, config, disk);
        }
        result.map(|()| target > file_len).map_err(|failure| {
            if failure.is_disk_full() {
                AppendError::DiskFull {
                    bytes: (needed.max(file_len) - file_len) as u64,
                    failure,
                }
            } else {
                AppendError::Io(failure)
            }
        })
    }

    /// Allocates the file up to `target` (if it is shorter) and the
    /// indexes in step; on failure the file keeps the length the map
    /// knows.
    fn reserve_to(
        &mut self,
        target: usize,
        config: &LogConfig,
        disk: &dyn Disk,
    ) -> Result<(), IoFailure> {
        let file_len = self.map.file_len();
        let file = self.open_log()?;
        let reserved = if target > file_len {
            disk.reserve(&file, file_len as u64, target as u64)
                .map_err(|e| IoFailure::new("reserve segment", self.log_path(), e))
        } else {
            Ok(())
        };
        match reserved {
            Ok(()) => {
                self.map.file_grew(target);
                // Also when the log had room already: an earlier growth of
                // the indexes may have failed after the log's succeeded.
                self.reserve_indexes(target, config, disk)
            }
            Err(failure) => {
                // A failed fallocate may still have extended the file; cut
                // it back so the length stays what the map knows.
                let _ = file.set_len(file_len as u64); // best effort: a longer file is only more zeros
                Err(failure)
            }
        }
    }

    /// Trims the log file and both indexes to their contents and writes
    /// the time index's final entry; the segment is then read-only.
    pub(crate) fn seal(&mut self) -> Result<(), IoFailure> {
        self.summary.time_index.file().map()?;
        let summary = &mut self.summary;
        summary.time_index.maybe_append(
            summary.max_timestamp,
            summary.offset_of_max_timestamp,
            true,
        );
        let size = summary.size as usize;
        if self.map.file_len() > size {
            let file = self.open_log()?;
            self.map
                .truncate_file(&file, size)
                .map_err(|e| IoFailure::new("trim segment", self.log_path(), e))?;
        }
        self.summary.index.file_mut().trim()?;
        self.summary.time_index.file_mut().trim()?;
        self.sealed = true;
        Ok(())
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// The frame of the batch starting at `position`, or `None` at the end
    /// (or if the bytes there are not a batch, which recovery rules out).
    /// The batch ends within the segment's u32 size, so `position` plus
    /// its size never saturates.
    fn batch_at(&self, position: u32) -> Option<BatchView<'_>> {
        let end = self.summary.size as usize;
        let start = position as usize;
        if start >= end {
            return None;
        }
        BatchView::new(self.map.bytes(start, end)).ok()
    }

    /// The position of the first batch whose last offset is >= `target`,
    /// or the segment's size if there is none.
    pub(crate) fn position_of(&self, target: Offset) -> u32 {
        if target >= self.summary.next_offset {
            return self.summary.size;
        }
        let mut position = self.summary.index.lookup(target);
        while let Some(batch) = self.batch_at(position) {
            if batch.last_offset() >= target.value() {
                return position;
            }
            position = position.saturating_add(batch.size_u32());
        }
        self.summary.size
    }

    /// The base offset of the batch at `position`, if one starts there.
    pub(crate) fn base_offset_at(&self, position: u32) -> Option<Offset> {
        self.batch_at(position).map(|b| Offset(b.base_offset()))
    }

    /// Where a read starting at batch `start` ends: after as many whole
    /// batches as fit in `max_bytes` (at least one if `min_one`), never
    /// past `limit` (a batch boundary).
    pub(crate) fn read_end(&self, start: u32, limit: u32, max_bytes: usize, min_one: bool) -> u32 {
        let budget_end = u32::try_from((start as usize).saturating_add(max_bytes))
            .unwrap_or(u32::MAX)
            .min(limit);
        // Indexed positions are batch starts: every batch before the last
        // one within the budget fits whole, so the walk starts there.
        let mut position = self.summary.index.lookup_position(budget_end).max(start);
        if position == start && min_one {
            if let Some(first) = self.batch_at(start) {
                let first_end = start + u32::try_from(first.size()).unwrap_or(u32::MAX);
                if first_end <= limit {
                    position = first_end;
                }
            }
        }
        while let Some(batch) = self.batch_at(position) {
            let end = position as usize + batch.size();
            if end > budget_end as usize {
                break;
            }
            position = end as u32;
        }
        position
    }

    /// Zero-copy bytes `start..end`, valid after the segment is gone.
    pub(crate) fn share(&self, start: u32, end: u32) -> Bytes {
        assert!(
            end <= self.summary.size,
            "sharing past the segment's batches"
        );
        self.map.share(start as usize, end as usize)
    }

    /// The next offset [`Segment::truncate_to`] would leave.
    pub(crate) fn end_if_truncated_to(&self, offset: Offset) -> Result<Offset, IoFailure> {
        self.map_for_read()?;
        let cut = self.position_of(offset);
        Ok(match self.base_offset_at(cut) {
            Some(first_cut) => offset.min(first_cut),
            None => offset.min(self.summary.next_offset),
        }
        .max(self.base_offset))
    }

    /// Cuts every batch whose last offset is >= `offset`; the segment's
    /// next offset becomes the lower of `offset` and the first cut batch's
    /// base. Bytes a reader holds are never changed: if a reader holds any
    /// slice, the kept prefix is copied to a new file that replaces this
    /// one, and readers keep the old file's pages.
    pub(crate) fn truncate_to(
        &mut self,
        offset: Offset,
        config: &LogConfig,
        disk: &dyn Disk,
    ) -> Result<(), IoFailure> {
        self.map()?;
        let cut = self.position_of(offset);
        let new_next = match self.base_offset_at(cut) {
            Some(first_cut) => offset.min(first_cut),
            None => offset.min(self.summary.next_offset),
        }
        .max(self.base_offset);
        if cut < self.summary.size {
            if self.map.may_change(cut as usize) {
                let file = self.open_log()?;
                self.map
                    .truncate_file(&file, cut as usize)
                    .map_err(|e| IoFailure::new("truncate segment", self.log_path(), e))?;
            } else {
                self.rewrite_prefix(cut, config, disk)?;
            }
        }
        self.rebuild_summary_after_cut(cut, new_next);
        self.txn_index.truncate_from(new_next, disk)?;
        if self.sealed {
            self.summary.index.file_mut().trim()?;
            self.summary.time_index.file_mut().trim()?;
        }
        disk.sync_data(&*self.open_log()?)
            .map_err(|e| IoFailure::new("sync segment", self.log_path(), e))?;
        Ok(())
    }

    /// Replaces the log file by a copy of its first `cut` bytes, durably.
    fn rewrite_prefix(
        &mut self,
        cut: u32,
        config: &LogConfig,
        disk: &dyn Disk,
    ) -> Result<(), IoFailure> {
        let path = self.log_path();
        // `<base>.log.tmp`: a copy left by a crash is removed at the next open.
        let file = write_atomically_on(disk, &path, self.map.bytes(0, cut as usize))?;
        let capacity = if self.sealed {
            cut as usize
        } else {
            map_capacity(config, cut as usize)
        };
        self.map = LogMap::new(capacity, cut as usize);
        self.log_file.replace(file);
        self.map_log()?;
        Ok(())
    }

    /// Re-derives the summary for a segment just cut to `cut` bytes: index
    /// entries past the cut go, and the largest timestamp is recomputed
    /// from the time index's last entry and the batches after it.
    fn rebuild_summary_after_cut(&mut self, cut: u32, new_next: Offset) {
        let summary = &mut self.summary;
        summary.index.truncate_to_position(cut);
        summary.time_index.truncate_to_offset(new_next);
        let (mut max_timestamp, mut offset_of_max) = summary
            .time_index
            .last_entry()
            .unwrap_or((NO_TIMESTAMP, self.base_offset));
        let resume_at = match summary.time_index.last_entry() {
            Some((_, offset)) => summary.index.lookup(offset) as usize,
            None => 0,
        };
        let data = self.map.bytes(0, cut as usize);
        for batch in Batches::new(&data[resume_at..]) {
            if batch.max_timestamp() > max_timestamp {
                max_timestamp = batch.max_timestamp();
                offset_of_max = Offset(batch.last_offset());
            }
        }
        summary.size = cut;
        summary.next_offset = new_next;
        summary.max_timestamp = max_timestamp;
        summary.offset_of_max_timestamp = offset_of_max;
        summary.first_batch_timestamp = BatchView::new(data).ok().map(|b| b.max_timestamp());
        let last_indexed = summary.index.file().last().map_or(0, |e| e.position);
        summary.bytes_since_index_entry = cut - last_indexed;
    }

    /// Records a transaction aborted by a marker in this segment (see
    /// txn_index.rs); one already there is not added twice. Returns
    /// whether the index file was created (its directory needs a sync).
    pub(crate) fn add_aborted_txn(
        &mut self,
        entry: AbortedTxn,
        disk: &dyn Disk,
    ) -> Result<bool, IoFailure> {
        assert!(
            entry.last_offset >= self.base_offset && entry.last_offset < self.summary.next_offset,
            "the marker at {} lies in the segment [{}, {})",
            entry.last_offset,
            self.base_offset,
            self.summary.next_offset
        );
        self.txn_index.add(entry, disk)
    }

    /// Records the aborted transactions of the segments a compaction
    /// output replaces (their markers are kept).
    pub(crate) fn add_cleaned_aborted_txns(
        &mut self,
        entries: &[AbortedTxn],
        disk: &dyn Disk,
    ) -> Result<(), IoFailure> {
        for entry in entries {
            self.txn_index.add(*entry, disk)?;
        }
        Ok(())
    }

    /// The transactions aborted by markers in this segment, ordered by
    /// marker offset.
    pub(crate) fn aborted_txns(&self) -> &[AbortedTxn] {
        self.txn_index.entries()
    }

    pub(crate) fn aborted_txn_count(&self) -> usize {
        self.txn_index.entries().len()
    }

    /// The transaction index's file, if it has one, to fdatasync.
    pub(crate) fn txn_index_sync_file(&self) -> Option<(LazyFile, PathBuf)> {
        self.txn_index.sync_file()
    }

    /// See [`TxnIndex::collect`].
    pub(crate) fn collect_aborted_txns(
        &self,
        from: Offset,
        upper: Offset,
        out: &mut Vec<AbortedTxn>,
    ) -> bool {
        self.txn_index.collect(from, upper, out)
    }

    /// Deletes the segment's files; readers keep their slices. The caller
    /// syncs the directory when the deletion must be durable.
    pub(crate) fn delete_files(&self, disk: &dyn Disk) -> Result<(), IoFailure> {
        delete_staged_files(&self.dir, self.base_offset, self.stage, disk)
    }

    /// The first record at or after `from` whose timestamp is >= `target`,
    /// below `upper`: (offset, timestamp).
    pub(crate) fn find_timestamp(
        &self,
        target: i64,
        from: Offset,
        upper: Offset,
    ) -> Result<Option<(Offset, i64)>, ReadError> {
        self.map()?;
        // Every record up to an entry older than `target` is older too.
        let start = match self.summary.time_index.last_before(target) {
            Some((_, offset)) => offset.plus(1).max(from),
            None => from,
        };
        let mut position = self.position_of(start);
        while let Some(batch) = self.batch_at(position) {
            position = position.saturating_add(batch.size_u32());
            if batch.base_offset() >= upper.value() {
                return Ok(None);
            }
            if batch.max_timestamp() < target || batch.last_offset() < from.value() {
                continue;
            }
            let found = first_record(&batch, |offset, timestamp| {
                offset >= from.value() && timestamp >= target
            })?;
            if let Some((offset, timestamp)) = found {
                return Ok((offset < upper.value()).then_some((Offset(offset), timestamp)));
            }
        }
        Ok(None)
    }

    /// The first record with the largest timestamp among offsets
    /// `from..upper`: (offset, timestamp).
    pub(crate) fn max_timestamp_record(
        &self,
        from: Offset,
        upper: Offset,
    ) -> Result<Option<(Offset, i64)>, ReadError> {
        self.map_for_read()?;
        let in_range = |offset: i64| offset >= from.value() && offset < upper.value();
        // Fast path: the batch that first reached the segment's largest
        // timestamp is readable, so its first such record is the answer.
        let max = self.summary.max_timestamp;
        let fast = self.summary.offset_of_max_timestamp;
        if max > NO_TIMESTAMP && in_range(fast.value()) {
            if let Some(batch) = self.batch_at(self.position_of(fast)) {
                let found = first_record(&batch, |offset, timestamp| {
                    in_range(offset) && timestamp == max
                })?;
                if let Some((offset, timestamp)) = found {
                    return Ok(Some((Offset(offset), timestamp)));
                }
            }
        }
        // Slow path: only batches whose maxTimestamp beats the best so far
        // are expanded, to find their best record within the range.
        let mut best: Option<(i64, i64)> = None;
        let mut position = self.position_of(from);
        while let Some(batch) = self.batch_at(position) {
            position = position.saturating_add(batch.size_u32());
            if batch.base_offset() >= upper.value() {
                break;
            }
            if best.is_some_and(|(_, timestamp)| batch.max_timestamp() <= timestamp) {
                continue;
            }
            if let Some((offset, timestamp)) = max_record(&batch, in_range)? {
                if best.is_none_or(|(_, best_timestamp)| timestamp > best_timestamp) {
                    best = Some((offset, timestamp));
                }
            }
        }
        Ok(best.map(|(offset, timestamp)| (Offset(offset), timestamp)))
    }
}

/// The first record of `batch` with the largest timestamp among those
/// whose offset is `in_range`.
fn max_record(
    batch: &BatchView<'_>,
    in_range: impl Fn(i64) -> bool,
) -> Result<Option<(i64, i64)>, ReadError> {
    let mut best: Option<(i64, i64)> = None;
    for_each_record(batch, |offset, timestamp| {
        if in_range(offset) && best.is_none_or(|(_, t)| timestamp > t) {
            best = Some((offset, timestamp));
        }
        true
    })?;
    Ok(best)
}

/// The first record of `batch` for which `wanted(offset, timestamp)`.
fn first_record(
    batch: &BatchView<'_>,
    wanted: impl Fn(i64, i64) -> bool,
) -> Result<Option<(i64, i64)>, ReadError> {
    let mut found = None;
    for_each_record(batch, |offset, timestamp| {
        if wanted(offset, timestamp) {
            found = Some((offset, timestamp));
            return false;
        }
        true
    })?;
    Ok(found)
}

/// Calls `visit(offset, timestamp)` for each record of `batch` (expanded
/// if compressed) until it returns false.
fn for_each_record(
    batch: &BatchView<'_>,
    mut visit: impl FnMut(i64, i64) -> bool,
) -> Result<(), ReadError> {
    let base_offset = Offset(batch.base_offset());
    let data = records_data(batch, EXPANDED_RECORDS_BYTES_MAX).map_err(|source| {
        ReadError::Decompress {
            base_offset,
            source,
        }
    })?;
    for record in Records::new(&data, batch.records_count()) {
        let record = record.map_err(|source| ReadError::MalformedRecords {
            base_offset,
            source,
        })?;
        let offset = batch.base_offset() + i64::from(record.offset_delta);
        if !visit(offset, batch.record_timestamp(record.timestamp_delta)) {
            break;
        }
    }
    Ok(())
}

/// Whether a batch found by a scan continues the log: offsets at or past
/// `expected`, a sane offset range, relative offsets that fit.
fn is_in_sequence(batch: &BatchView<'_>, expected: Offset, base_offset: Offset) -> bool {
    batch.base_offset() >= expected.value()
        && batch.last_offset_delta() >= 0
        && batch.last_offset() - base_offset.value() <= RELATIVE_OFFSET_MAX
}

/// Bytes to map for an active segment: segment.bytes rounded up to a
/// page, or the file if it is already longer.
fn map_capacity(config: &LogConfig, file_len: usize) -> usize {
    (config.segment_bytes as usize)
        .max(file_len)
        .next_multiple_of(PAGE_BYTES)
}
