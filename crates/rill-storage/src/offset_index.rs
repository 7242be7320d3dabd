//! The sparse offset index of a segment (`.index`): entries of
//! (u32 offset relative to the segment's base, u32 file position), one
//! per index.interval.bytes of log, both strictly increasing. As in Kafka,
//! an entry names a batch's last offset and the position where that
//! batch starts.

use std::path::Path;

use crate::Offset;
use crate::disk::Disk;
use crate::error::IoFailure;
use crate::index_file::{IndexEntry, IndexFile};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
}

impl IndexEntry for OffsetEntry {
    const BYTES: usize = 8;

    fn decode(bytes: &[u8]) -> Self {
        let mut rel = [0u8; 4];
        let mut pos = [0u8; 4];
        rel.copy_from_slice(&bytes[0..4]);
        pos.copy_from_slice(&bytes[4..8]);
        OffsetEntry {
            relative_offset: u32::from_be_bytes(rel),
            position: u32::from_be_bytes(pos),
        }
    }

    fn encode(self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }
}

/// Not thread-safe: owned by a segment, behind the log's lock.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    base_offset: Offset,
    file: IndexFile<OffsetEntry>,
}

impl OffsetIndex {
    pub(crate) fn create(
        path: &Path,
        base_offset: Offset,
        max_bytes: u32,
        disk: &dyn Disk,
    ) -> Result<Self, IoFailure> {
        Ok(OffsetIndex {
            base_offset,
            file: IndexFile::create(path, max_bytes, disk)?,
        })
    }

    /// Opens a trimmed index; `None` when it is missing or malformed and
    /// must be rebuilt.
    pub(crate) fn open_trimmed(
        path: &Path,
        base_offset: Offset,
    ) -> Result<Option<Self>, IoFailure> {
        Ok(IndexFile::open_trimmed(path)?.map(|file| OffsetIndex { base_offset, file }))
    }

    pub(crate) fn file(&self) -> &IndexFile<OffsetEntry> {
        &self.file
    }

    pub(crate) fn file_mut(&mut self) -> &mut IndexFile<OffsetEntry> {
        &mut self.file
    }

    pub(crate) fn is_full(&self) -> bool {
        self.file.len() >= self.file.limit()
    }

    /// Whether the entries are strictly increasing, and all below
    /// `next_relative_offset` and `size` (cheap checks of a trusted file).
    pub(crate) fn is_consistent(&self, next_relative_offset: u64, size: u32) -> bool {
        let mut previous: Option<OffsetEntry> = None;
        for i in 0..self.file.len() {
            let entry = self.file.entry(i);
            if u64::from(entry.relative_offset) >= next_relative_offset || entry.position >= size {
                return false;
            }
            if let Some(prev) = previous {
                if entry.relative_offset <= prev.relative_offset || entry.position <= prev.position
                {
                    return false;
                }
            }
            previous = Some(entry);
        }
        true
    }

    /// Records that the batch ending at `last_offset` starts at `position`.
    /// An offset too far past the base for a u32 gets no entry: segments
    /// roll before that happens, and the index is sparse anyway (a lookup
    /// scans forward from the entry before).
    pub(crate) fn append(&mut self, last_offset: Offset, position: u32) {
        let relative = last_offset.since(self.base_offset);
        let Ok(relative_offset) = u32::try_from(relative) else {
            return;
        };
        if let Some(last) = self.file.last() {
            assert!(
                relative_offset > last.relative_offset && position > last.position,
                "index entry ({relative_offset}, {position}) does not follow ({}, {})",
                last.relative_offset,
                last.position
            );
        }
        self.file.push(OffsetEntry {
            relative_offset,
            position,
        });
    }

    /// A batch start from which a forward scan finds `target`: the position
    /// of the last entry whose offset is <= `target`, else 0.
    pub(crate) fn lookup(&self, target: Offset) -> u32 {
        let Ok(relative) = u32::try_from(target.since(self.base_offset).max(0)) else {
            return self.file.last().map_or(0, |e| e.position);
        };
        self.file
            .floor(|e| e.relative_offset.cmp(&relative))
            .map_or(0, |(_, e)| e.position)
    }

    /// The last indexed batch start at or before `position`, else 0.
    pub(crate) fn lookup_position(&self, position: u32) -> u32 {
        self.file
            .floor(|e| e.position.cmp(&position))
            .map_or(0, |(_, e)| e.position)
    }

    /// Drops the entries of batches that start at or after `position`.
    pub(crate) fn truncate_to_position(&mut self, position: u32) {
        let keep = self
            .file
            .floor(|e| e.position.cmp(&position))
            .map_or(0, |(i, e)| if e.position < position { i + 1 } else { i });
        self.file.truncate(keep);
    }

    pub(crate) fn clear(&mut self) {
        self.file.truncate(0);
    }
}
