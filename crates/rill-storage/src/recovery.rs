//! Opening a log directory: trusting what a clean shutdown left, or
//! validating everything after the recovery point.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::Offset;
use crate::config::LogConfig;
use crate::disk::{Disk, remove_if_present};
use crate::durable::sync_dir_on;
use crate::error::{IoFailure, OpenError};
use crate::file_system::FileSystem;
use crate::offset::LOG_END_OFFSET_MAX;
use crate::open_files::LazyFile;
use crate::segment::{
    CLEANED_SUFFIX, FileStage, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, Segment, TEMP_SUFFIX,
    TIME_INDEX_SUFFIX, delete_segment_files, segment_path,
};
use crate::txn_index::TXN_INDEX_SUFFIX;

/// What the caller knows about a log from its checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryHints {
    /// Whether the log was closed cleanly ([`crate::Log::close`]) and
    /// nothing touched it since: then no log data is read at open.
    pub clean_shutdown: bool,
    /// Every offset below this was on disk (the recovery-point
    /// checkpoint); after a clean shutdown, the log end offset.
    pub recovery_point: Offset,
    /// The checkpointed log start offset.
    pub log_start_offset: Offset,
}

impl RecoveryHints {
    /// Nothing is known: every batch is validated.
    pub fn unknown() -> RecoveryHints {
        RecoveryHints {
            clean_shutdown: false,
            recovery_point: Offset(0),
            log_start_offset: Offset(0),
        }
    }
}

/// What opening a log found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments taken as they were, without reading log data.
    pub trusted_segments: usize,
    /// Segments read from start to end: those at or after the recovery
    /// point, and any whose indexes were missing or inconsistent (which
    /// were rebuilt).
    pub scanned_segments: usize,
    /// Bytes of batches whose CRC was checked.
    pub validated_bytes: u64,
    /// Bytes of torn or corrupt data cut from the end of the log.
    pub dropped_bytes: u64,
    /// Segments deleted: after a corrupt one, or wholly below the log start.
    pub deleted_segments: usize,
    pub log_end_offset: Offset,
    /// Compaction swaps that a crash interrupted after their commit point
    /// and that this open completed.
    pub completed_swaps: usize,
    /// Set when the recovery point claimed offsets were on disk that are
    /// not: (log end offset found, recovery point). Data was lost under
    /// the storage (a disk that lied about a sync, or files removed).
    pub missing_below_recovery_point: Option<(Offset, Offset)>,
}

/// Loads the segments in `dir`; returns them (the sealed ones, then the
/// active one), the log start offset and a report. What recovery read, cut, rebuilt or
/// deleted is durable on return, synced as `file_system` says.
pub(crate) fn load_segments(
    dir: &Path,
    config: &LogConfig,
    hints: &RecoveryHints,
    (disk, file_system): (&dyn Disk, &FileSystem),
    now_ms: i64,
) -> Result<(Vec<Segment>, Segment, Offset, RecoveryReport), OpenError> {
    let mut report = RecoveryReport {
        completed_swaps: finish_interrupted_compaction(dir, disk)?,
        ..RecoveryReport::default()
    };
    let (mut bases, removed_leftovers) = list_segments(dir, disk)?;
    let below_start = bases
        .windows(2)
        .take_while(|pair| pair[1] <= hints.log_start_offset)
        .count();
    for base in bases.drain(..below_start) {
        delete_segment_files(dir, base, disk)?;
        report.deleted_segments += 1;
    }
    let validate_from = if hints.clean_shutdown {
        Offset(i64::MIN)
    } else {
        hints.recovery_point
    };
    let mut segments: Vec<Segment> = Vec::new();
    let mut scanned: Vec<usize> = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        let active = next_base.is_none();
        let (mut segment, indexes_lost) = Segment::open(dir, base, config, (active, now_ms), disk)?;
        let first_allowed = segments.last().map_or(base, |s| s.next_offset());
        let trusted_end = match next_base {
            Some(next) if hints.clean_shutdown || next <= hints.recovery_point => Some(next),
            None if hints.clean_shutdown => Some(hints.recovery_point),
            _ => None,
        };
        let trusted = match trusted_end {
            Some(end) if !indexes_lost && base >= first_allowed => {
                segment.load_trusted(end, config)?
            }
            _ => false,
        };
        if trusted {
            report.trusted_segments += 1;
            // Mapped when the log is used, not because it was loaded.
            segment.unmap();
            segments.push(segment);
            continue;
        }
        let recovered = segment.recover(validate_from, (first_allowed, next_base), config, disk)?;
        report.scanned_segments += 1;
        report.validated_bytes += recovered.validated_bytes;
        report.dropped_bytes += recovered.dropped_bytes;
        if !active {
            segment.seal()?;
        }
        segment.unmap();
        scanned.push(segments.len());
        segments.push(segment);
        if recovered.dropped_bytes > 0 {
            // The log is cut here: what follows cannot be trusted to
            // continue it.
            tracing::warn!(
                dir = %dir.display(),
                base_offset = %base,
                dropped_bytes = recovered.dropped_bytes,
                "cut torn or corrupt data from the log"
            );
            for &later in &bases[i + 1..] {
                delete_segment_files(dir, later, disk)?;
                report.deleted_segments += 1;
            }
            break;
        }
    }
    let (mut active, created) =
        take_active_segment(dir, config, hints, disk, now_ms, &mut segments)?;
    // A log whose every segment was trusted as it was is left untouched,
    // so a clean start of many partitions syncs nothing.
    let changed = created
        || removed_leftovers
        || !scanned.is_empty()
        || report.deleted_segments > 0
        || report.completed_swaps > 0;
    if changed {
        // A scanned segment that became the active one is synced as that.
        let mut recovered_files: Vec<(LazyFile, PathBuf)> = scanned
            .iter()
            .filter_map(|&i| segments.get(i))
            .flat_map(Segment::sync_files)
            .collect();
        recovered_files.extend(active.sync_files());
        sync_recovered(&recovered_files, disk, file_system)?;
        sync_dir_on(disk, dir)?;
    }
    let mut log_end = active.next_offset();
    if hints.log_start_offset > log_end {
        // Everything up to the checkpointed log start was deleted, yet the
        // log ends before it: start afresh there, as Kafka does, so no
        // offset below it is ever handed out again.
        for segment in segments.drain(..).chain(std::iter::once(active)) {
            segment.delete_files(disk)?;
            report.deleted_segments += 1;
        }
        active = take_active_segment(dir, config, hints, disk, now_ms, &mut segments)?.0;
        sync_dir_on(disk, dir)?;
        log_end = hints.log_start_offset;
    }
    let first_base = segments.first().unwrap_or(&active).base_offset();
    let log_start = hints.log_start_offset.max(first_base);
    report.log_end_offset = log_end;
    if !hints.clean_shutdown && hints.recovery_point > log_end {
        tracing::error!(
            dir = %dir.display(),
            log_end_offset = %log_end,
            recovery_point = %hints.recovery_point,
            "offsets below the recovery point are missing"
        );
        report.missing_below_recovery_point = Some((log_end, hints.recovery_point));
    }
    Ok((segments, active, log_start, report))
}

/// Takes the active segment off the end of `segments`: the last one if it
/// is writable; else a new one, if the directory had none, or if the last
/// one is sealed (the log was cut in an earlier segment), replacing that
/// one if it was left empty. Also says whether it made a new one.
fn take_active_segment(
    dir: &Path,
    config: &LogConfig,
    hints: &RecoveryHints,
    disk: &dyn Disk,
    now_ms: i64,
    segments: &mut Vec<Segment>,
) -> Result<(Segment, bool), OpenError> {
    let next = match segments.pop() {
        None => hints.log_start_offset,
        Some(last) if !last.is_sealed() => return Ok((last, false)),
        Some(last) if last.is_empty() => {
            last.delete_files(disk)?;
            last.next_offset()
        }
        Some(last) => {
            let next = last.next_offset();
            segments.push(last);
            next
        }
    };
    Ok((Segment::create(dir, next, config, now_ms, disk)?, true))
}

/// Makes the files recovery scanned, cut or rebuilt durable, before the
/// recovery point may pass them. More than one file, on a file system
/// whose syncfs is a real sync ([`crate::SyncMode::Syncfs`]): one syncfs,
/// as a flush round does — on a virtual disk each fdatasync is a journal
/// commit of its own, and a recovery of 712 segments after a kill -9
/// spent 0.2 s of its 0.8 s in 1,911 of them (docs/reliability.md). A
/// failed syncfs cannot say whose file failed (docs/storage.md), so then,
/// and on every other file system, each file is fdatasynced, which
/// reports its own errors.
fn sync_recovered(
    files: &[(LazyFile, PathBuf)],
    disk: &dyn Disk,
    file_system: &FileSystem,
) -> Result<(), IoFailure> {
    if files.len() > 1 && file_system.uses_syncfs() && file_system.sync().0.is_ok() {
        return Ok(());
    }
    for (file, path) in files {
        file.sync_data(disk)
            .map_err(|e| IoFailure::new("sync segment", path, e))?;
    }
    Ok(())
}

/// Undoes or completes what a crash interrupted of a compaction swap (see
/// docs/storage.md, "Log compaction"): `.cleaned` files were not committed
/// and are deleted; a `{base}.log.swap` was committed, so every segment
/// whose base offset lies within the swap's offsets (which span all the
/// segments it replaces) is deleted and the swap renamed into place. Its
/// indexes are rebuilt by the scan that follows. Returns the swaps done.
///
/// A segment is deleted by whichever of its files are left, not only by
/// its `.log`: the crash may have kept the deletion of an old `.log` and
/// lost that of its indexes, and an old index left at the swap's base
/// would be taken for the swapped-in segment's, pointing reads at the
/// wrong positions.
fn finish_interrupted_compaction(dir: &Path, disk: &dyn Disk) -> Result<usize, IoFailure> {
    let mut swaps = Vec::new();
    let mut live = BTreeSet::new();
    let mut txn_swaps = Vec::new();
    let mut cleaned_logs = Vec::new();
    let log_swap = FileStage::Swap.name(LOG_SUFFIX);
    let txn_index_swap = FileStage::Swap.name(TXN_INDEX_SUFFIX);
    for file in segment_files(dir)? {
        if file.suffix == log_swap {
            swaps.push(file.base);
        } else if file.suffix == txn_index_swap {
            // Kept with its swap (it cannot be rebuilt from the log:
            // the partition's replay of markers starts at a snapshot).
            txn_swaps.push(file);
        } else if [
            LOG_SUFFIX,
            INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            TXN_INDEX_SUFFIX,
        ]
        .contains(&file.suffix.as_str())
        {
            live.insert(file.base);
        } else if file.suffix.ends_with(&format!(".{CLEANED_SUFFIX}"))
            || file.suffix.ends_with(&format!(".{SWAP_SUFFIX}"))
        {
            if file.suffix == FileStage::Cleaned.name(LOG_SUFFIX) {
                cleaned_logs.push(file.base);
            }
            // Uncommitted output, or a swap's indexes (rebuilt instead).
            disk.remove_file(&file.path)
                .map_err(|e| IoFailure::new("delete leftover compaction file", &file.path, e))?;
        }
    }
    for file in txn_swaps.iter().filter(|f| !swaps.contains(&f.base)) {
        if cleaned_logs.contains(&file.base) {
            // Its log was never committed as a swap.
            disk.remove_file(&file.path)
                .map_err(|e| IoFailure::new("delete leftover compaction file", &file.path, e))?;
        } else {
            // Its swap completed but for this last rename.
            let live = segment_path(dir, file.base, TXN_INDEX_SUFFIX);
            disk.rename(&file.path, &live)
                .map_err(|e| IoFailure::new("rename swap transaction index", live, e))?;
        }
    }
    if swaps.is_empty() {
        return Ok(0);
    }
    swaps.sort();
    for &base in &swaps {
        let swap = segment_path(dir, base, &FileStage::Swap.name(LOG_SUFFIX));
        let end = swap_end_offset(&swap)?;
        // Its own base too, should the swap hold no batch at all.
        for &old in live
            .iter()
            .filter(|&&old| old == base || (old > base && old < end))
        {
            delete_segment_files(dir, old, disk)?;
        }
        tracing::info!(dir = %dir.display(), base_offset = %base, end_offset = %end, "completed an interrupted compaction swap");
    }
    sync_dir_on(disk, dir)?;
    for &base in &swaps {
        let swap = segment_path(dir, base, &FileStage::Swap.name(LOG_SUFFIX));
        let live = segment_path(dir, base, LOG_SUFFIX);
        disk.rename(&swap, &live)
            .map_err(|e| IoFailure::new("rename swap segment", live, e))?;
        if txn_swaps.iter().any(|f| f.base == base) {
            let swap = segment_path(dir, base, &txn_index_swap);
            let live = segment_path(dir, base, TXN_INDEX_SUFFIX);
            disk.rename(&swap, &live)
                .map_err(|e| IoFailure::new("rename swap transaction index", live, e))?;
        }
    }
    sync_dir_on(disk, dir)?;
    Ok(swaps.len())
}

/// One past the last offset of the batches in a swap file, read from
/// their headers. The file was synced before it was renamed to `.swap`, so
/// it holds whole batches; reading stops at anything that is not one.
fn swap_end_offset(path: &Path) -> Result<Offset, IoFailure> {
    use std::os::unix::fs::FileExt;
    let file =
        std::fs::File::open(path).map_err(|e| IoFailure::new("open swap segment", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| IoFailure::new("stat swap segment", path, e))?
        .len();
    let mut header = [0u8; rill_record::layout::RECORDS];
    let mut position = 0u64;
    let mut end = Offset(0);
    while position + header.len() as u64 <= len {
        file.read_exact_at(&mut header, position)
            .map_err(|e| IoFailure::new("read swap segment", path, e))?;
        if header[rill_record::layout::MAGIC] != rill_record::MAGIC_V2.to_be_bytes()[0] {
            break;
        }
        let field = |at: usize, n: usize| &header[at..at + n];
        let mut base = [0u8; 8];
        base.copy_from_slice(field(rill_record::layout::BASE_OFFSET, 8));
        let mut length = [0u8; 4];
        length.copy_from_slice(field(rill_record::layout::BATCH_LENGTH, 4));
        let mut delta = [0u8; 4];
        delta.copy_from_slice(field(rill_record::layout::LAST_OFFSET_DELTA, 4));
        let (base, length, delta) = (
            i64::from_be_bytes(base),
            i32::from_be_bytes(length),
            i32::from_be_bytes(delta),
        );
        let Ok(length) = u64::try_from(length) else {
            break;
        };
        if length < rill_record::layout::BATCH_LENGTH_MIN as u64 || delta < 0 {
            break;
        }
        let size = rill_record::layout::LOG_OVERHEAD as u64 + length;
        if position + size > len {
            break;
        }
        end = Offset(base.saturating_add(i64::from(delta)).saturating_add(1));
        position += size;
    }
    Ok(end)
}

/// A file in a partition directory named like a segment's:
/// `{base offset}.{suffix}`.
struct SegmentFile {
    base: Offset,
    /// Everything after the first dot: `log`, `index`, `log.swap`, ...
    suffix: String,
    path: PathBuf,
}

/// The files of `dir` named like segment files; others are ignored.
fn segment_files(dir: &Path) -> Result<Vec<SegmentFile>, IoFailure> {
    let mut files = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| IoFailure::new("list log directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| IoFailure::new("list log directory", dir, e))?;
        let name = entry.file_name();
        let Some((stem, suffix)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        let Some(base) = parse_base_offset(stem) else {
            continue;
        };
        files.push(SegmentFile {
            base,
            suffix: suffix.to_string(),
            path: entry.path(),
        });
    }
    Ok(files)
}

/// Base offsets of the `.log` files in `dir`, in order, and whether any
/// file was deleted: leftover temporary files and index files without a
/// log are.
fn list_segments(dir: &Path, disk: &dyn Disk) -> Result<(Vec<Offset>, bool), IoFailure> {
    let mut logs = BTreeSet::new();
    let mut indexes = Vec::new();
    let mut removed = false;
    for file in segment_files(dir)? {
        if file.suffix.ends_with(TEMP_SUFFIX) {
            disk.remove_file(&file.path)
                .map_err(|e| IoFailure::new("delete leftover file", &file.path, e))?;
            removed = true;
        } else if file.suffix == LOG_SUFFIX {
            logs.insert(file.base);
        } else if file.suffix == INDEX_SUFFIX
            || file.suffix == TIME_INDEX_SUFFIX
            || file.suffix == TXN_INDEX_SUFFIX
        {
            indexes.push((file.base, file.path));
        }
    }
    for (base, path) in indexes {
        if !logs.contains(&base) {
            remove_if_present(disk, &path)
                .map_err(|e| IoFailure::new("delete orphan index", path, e))?;
            removed = true;
        }
    }
    Ok((logs.into_iter().collect(), removed))
}

/// The largest base offset taken from a file name: far beyond any real
/// log, and low enough that offset arithmetic on a crafted name cannot
/// overflow. Appends never take the log end past it.
const BASE_OFFSET_MAX: i64 = LOG_END_OFFSET_MAX;

fn parse_base_offset(stem: &str) -> Option<Offset> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse()
        .ok()
        .filter(|&base| base <= BASE_OFFSET_MAX)
        .map(Offset)
}
