//! The sparse time index of a segment (`.timeindex`): entries of
//! (i64 timestamp, u32 offset relative to the segment's base). An entry
//! (T, O) says that every record up to offset O has a timestamp <= T:
//! T is the largest timestamp seen so far and O the last offset of the
//! batch that holds it. Timestamps strictly increase from entry to entry;
//! the last entry, written when the segment is sealed, holds the
//! segment's largest timestamp. Timestamps of -1 (none) are not indexed.

use std::path::Path;

use rill_record::NO_TIMESTAMP;

use crate::Offset;
use crate::disk::Disk;
use crate::error::IoFailure;
use crate::index_file::{IndexEntry, IndexFile};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const BYTES: usize = 12;

    fn decode(bytes: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        let mut rel = [0u8; 4];
        ts.copy_from_slice(&bytes[0..8]);
        rel.copy_from_slice(&bytes[8..12]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes(rel),
        }
    }

    fn encode(self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }
}

/// Not thread-safe: owned by a segment, behind the log's lock.
#[derive(Debug)]
pub(crate) struct TimeIndex {
    base_offset: Offset,
    file: IndexFile<TimeEntry>,
}

impl TimeIndex {
    pub(crate) fn create(
        path: &Path,
        base_offset: Offset,
        max_bytes: u32,
        disk: &dyn Disk,
    ) -> Result<Self, IoFailure> {
        Ok(TimeIndex {
            base_offset,
            file: IndexFile::create(path, max_bytes, disk)?,
        })
    }

    pub(crate) fn open_trimmed(
        path: &Path,
        base_offset: Offset,
    ) -> Result<Option<Self>, IoFailure> {
        Ok(IndexFile::open_trimmed(path)?.map(|file| TimeIndex { base_offset, file }))
    }

    pub(crate) fn file(&self) -> &IndexFile<TimeEntry> {
        &self.file
    }

    pub(crate) fn file_mut(&mut self) -> &mut IndexFile<TimeEntry> {
        &mut self.file
    }

    /// Full when only the slot kept for the entry written at roll is left.
    pub(crate) fn is_full(&self) -> bool {
        self.file.len() + 1 >= self.file.limit()
    }

    /// Whether timestamps strictly increase, offsets do not decrease and
    /// all are below `next_relative_offset`.
    pub(crate) fn is_consistent(&self, next_relative_offset: u64) -> bool {
        let mut previous: Option<TimeEntry> = None;
        for i in 0..self.file.len() {
            let entry = self.file.entry(i);
            if u64::from(entry.relative_offset) >= next_relative_offset {
                return false;
            }
            if let Some(prev) = previous {
                if entry.timestamp <= prev.timestamp || entry.relative_offset < prev.relative_offset
                {
                    return false;
                }
            }
            previous = Some(entry);
        }
        true
    }

    /// Adds (timestamp, offset) if the timestamp is larger than the last
    /// entry's. `at_roll` may use the slot kept for the roll.
    pub(crate) fn maybe_append(&mut self, timestamp: i64, offset: Offset, at_roll: bool) {
        let floor = self.file.last().map_or(NO_TIMESTAMP, |e| e.timestamp);
        if timestamp <= floor {
            return;
        }
        if !at_roll && self.is_full() {
            return;
        }
        if self.file.len() >= self.file.capacity() {
            return;
        }
        // Segments roll before this fails; an entry left out only makes a
        // lookup start from an earlier one, as a full index does.
        let Ok(relative_offset) = u32::try_from(offset.since(self.base_offset)) else {
            return;
        };
        if let Some(last) = self.file.last() {
            assert!(
                relative_offset >= last.relative_offset,
                "time index offsets go backwards"
            );
        }
        self.file.push(TimeEntry {
            timestamp,
            relative_offset,
        });
    }

    /// The segment's largest timestamp and its offset, as last recorded.
    pub(crate) fn last_entry(&self) -> Option<(i64, Offset)> {
        self.file.last().map(|e| {
            (
                e.timestamp,
                self.base_offset.plus(i64::from(e.relative_offset)),
            )
        })
    }

    /// The last entry whose timestamp is below `target`: every record up to
    /// its offset is older than `target`.
    pub(crate) fn last_before(&self, target: i64) -> Option<(i64, Offset)> {
        self.file
            .floor(|e| {
                if e.timestamp < target {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                }
            })
            .map(|(_, e)| {
                (
                    e.timestamp,
                    self.base_offset.plus(i64::from(e.relative_offset)),
                )
            })
    }

    /// Drops the entries that name offsets at or after `offset`.
    pub(crate) fn truncate_to_offset(&mut self, offset: Offset) {
        let relative = offset.since(self.base_offset).max(0);
        let keep = (0..self.file.len())
            .rev()
            .find(|&i| i64::from(self.file.entry(i).relative_offset) < relative)
            .map_or(0, |i| i + 1);
        self.file.truncate(keep);
    }

    pub(crate) fn clear(&mut self) {
        self.file.truncate(0);
    }
}
