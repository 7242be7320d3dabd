//! A segment's aborted-transaction index, Kafka's `.txnindex`: one entry
//! per transaction aborted by a marker in the segment, so that a
//! read_committed fetch can tell its consumer which producers' records
//! to skip, and where.
//!
//! The file, `{base offset:020}.txnindex`, is a sequence of 34-byte
//! entries, big-endian, as Kafka's AbortedTxn:
//!
//! ```text
//! i16 version (0)   i64 producerId   i64 firstOffset
//! i64 lastOffset (the ABORT marker's offset)   i64 lastStableOffset
//! ```
//!
//! Entries are kept in memory too, ordered by last offset (a segment holds
//! few aborts; Kafka reads the file on every read_committed fetch
//! instead). The file exists only once the segment has an entry; a crash
//! may leave a partial entry at its end, which the next open cuts off
//! (the partition's recovery re-adds what the log's markers say).
//!
//! Not thread-safe: owned by a segment, behind its log's lock.

use std::fs::File;
use std::path::PathBuf;

use crate::Offset;
use crate::disk::{Disk, remove_if_present};
use crate::durable::write_atomically_on;
use crate::error::IoFailure;
use crate::open_files::LazyFile;

pub(crate) const TXN_INDEX_SUFFIX: &str = "txnindex";
/// Bytes of one entry: version, producer id, three offsets.
pub(crate) const TXN_ENTRY_BYTES: usize = 2 + 8 + 8 + 8 + 8;
/// The only entry version Kafka (and Rill) writes.
const TXN_ENTRY_VERSION: i16 = 0;
/// A bound on the file read at open, checked before allocating: 30
/// million aborted transactions in one segment.
const TXN_INDEX_BYTES_MAX: u64 = 1 << 30;

/// One aborted transaction of one producer, as the index records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// The offset of the transaction's first batch in this partition.
    pub first_offset: Offset,
    /// The offset of the ABORT marker that ended it.
    pub last_offset: Offset,
    /// The last stable offset once the marker was written: the first
    /// offset of the earliest other transaction still open then, or the
    /// marker's offset + 1.
    pub last_stable_offset: Offset,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; TXN_ENTRY_BYTES] {
        let mut out = [0u8; TXN_ENTRY_BYTES];
        out[0..2].copy_from_slice(&TXN_ENTRY_VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.value().to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.value().to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.value().to_be_bytes());
        out
    }

    /// The entry in `bytes`, or `None` if it is not one Rill could have
    /// written (unknown version, offsets out of order).
    fn decode(bytes: &[u8; TXN_ENTRY_BYTES]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| {
            let mut field = [0u8; 8];
            field.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(field)
        };
        if i16::from_be_bytes([bytes[0], bytes[1]]) != TXN_ENTRY_VERSION {
            return None;
        }
        let entry = AbortedTxn {
            producer_id: i64_at(2),
            first_offset: Offset(i64_at(10)),
            last_offset: Offset(i64_at(18)),
            last_stable_offset: Offset(i64_at(26)),
        };
        (entry.producer_id >= 0
            && Offset(0) <= entry.first_offset
            && entry.first_offset <= entry.last_offset)
            .then_some(entry)
    }
}

/// The aborted-transaction index of one segment: its entries, and its
/// file once it has one.
#[derive(Debug)]
pub(crate) struct TxnIndex {
    path: PathBuf,
    file: Option<LazyFile>,
    /// Ordered by last offset, each last offset once.
    entries: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// An empty index whose file, created (or emptied) at the first
    /// entry, is `path`. No file is touched before then: a segment's
    /// files are deleted with it, so none is left under a new segment's
    /// name.
    pub(crate) fn create(path: PathBuf) -> TxnIndex {
        TxnIndex {
            path,
            file: None,
            entries: Vec::new(),
        }
    }

    /// The index in `path`, if there is a file, with every whole, valid
    /// entry before the first that is not; the rest of the file (a torn
    /// write, or damage) is cut off.
    pub(crate) fn open(path: PathBuf, disk: &dyn Disk) -> Result<TxnIndex, IoFailure> {
        let bytes = match std::fs::metadata(&path) {
            Ok(metadata) => metadata.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TxnIndex {
                    path,
                    file: None,
                    entries: Vec::new(),
                });
            }
            Err(e) => return Err(IoFailure::new("stat transaction index", &path, e)),
        };
        let read = if bytes > TXN_INDEX_BYTES_MAX {
            Vec::new() // unusable: rebuilt from the log's markers instead
        } else {
            std::fs::read(&path).map_err(|e| IoFailure::new("read transaction index", &path, e))?
        };
        let mut entries: Vec<AbortedTxn> = Vec::new();
        for chunk in read.chunks_exact(TXN_ENTRY_BYTES) {
            let mut bytes = [0u8; TXN_ENTRY_BYTES];
            bytes.copy_from_slice(chunk);
            match AbortedTxn::decode(&bytes) {
                Some(entry)
                    if entries
                        .last()
                        .is_none_or(|l| l.last_offset < entry.last_offset) =>
                {
                    entries.push(entry);
                }
                _ => break,
            }
        }
        let mut index = TxnIndex {
            path,
            file: None,
            entries,
        };
        if (index.entries.len() * TXN_ENTRY_BYTES) as u64 != bytes {
            tracing::warn!(path = %index.path.display(), bytes, kept = index.entries.len(),
                "cut a torn or damaged tail off a transaction index");
            index.rewrite(disk)?;
        } else {
            let file = File::options()
                .read(true)
                .write(true)
                .open(&index.path)
                .map_err(|e| IoFailure::new("open transaction index", &index.path, e))?;
            index.file = Some(LazyFile::new(index.path.clone(), file));
        }
        Ok(index)
    }

    pub(crate) fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Adds `entry`, unless an entry with its last offset is there already
    /// (recovery replaying markers the index kept). Returns whether the
    /// file was created by this call (its directory then needs a sync).
    pub(crate) fn add(&mut self, entry: AbortedTxn, disk: &dyn Disk) -> Result<bool, IoFailure> {
        let at = self
            .entries
            .partition_point(|e| e.last_offset < entry.last_offset);
        if self
            .entries
            .get(at)
            .is_some_and(|e| e.last_offset == entry.last_offset)
        {
            return Ok(false);
        }
        self.entries.insert(at, entry);
        if at + 1 < self.entries.len() {
            // Not at the end (a replay filling a gap): the file is
            // written anew in order.
            let created = self.file.is_none();
            self.rewrite(disk)?;
            return Ok(created);
        }
        let created = self.file.is_none();
        let file = match &self.file {
            Some(file) => file
                .get()
                .map_err(|e| IoFailure::new("open transaction index", &self.path, e))?,
            None => {
                let file = disk
                    .create_file(&self.path)
                    .map_err(|e| IoFailure::new("create transaction index", &self.path, e))?;
                let file = LazyFile::new(self.path.clone(), file);
                self.file = Some(file.clone());
                file.get()
                    .map_err(|e| IoFailure::new("open transaction index", &self.path, e))?
            }
        };
        let position = (at * TXN_ENTRY_BYTES) as u64;
        if let Err(e) = disk.write_at(&file, &[&entry.encode()], position) {
            self.entries.remove(at);
            return Err(IoFailure::new("append to transaction index", &self.path, e));
        }
        Ok(created)
    }

    /// Forgets the entries whose marker is at or after `offset` (the
    /// segment was cut there).
    pub(crate) fn truncate_from(
        &mut self,
        offset: Offset,
        disk: &dyn Disk,
    ) -> Result<(), IoFailure> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.rewrite(disk)
    }

    /// Writes the file anew from the entries, atomically and durably; with
    /// no entries the file is removed.
    fn rewrite(&mut self, disk: &dyn Disk) -> Result<(), IoFailure> {
        self.file = None;
        if self.entries.is_empty() {
            return remove_if_present(disk, &self.path)
                .map_err(|e| IoFailure::new("delete transaction index", &self.path, e));
        }
        let bytes: Vec<u8> = self.entries.iter().flat_map(|e| e.encode()).collect();
        let file = write_atomically_on(disk, &self.path, &bytes)?;
        self.file = Some(LazyFile::new(self.path.clone(), file));
        Ok(())
    }

    /// Entries whose transaction overlaps [`from`, `upper`): marker at or
    /// after `from`, first offset below `upper`, appended to `out`.
    /// Returns whether the search is complete (Kafka's
    /// TxnIndexSearchResult.isComplete): an entry whose last stable offset
    /// reaches `upper` proves no later segment holds another.
    pub(crate) fn collect(&self, from: Offset, upper: Offset, out: &mut Vec<AbortedTxn>) -> bool {
        let start = self.entries.partition_point(|e| e.last_offset < from);
        for entry in &self.entries[start..] {
            if entry.first_offset < upper {
                out.push(*entry);
            }
            if entry.last_stable_offset >= upper {
                return true;
            }
        }
        false
    }

    /// The file and its path, to fdatasync, if there is a file.
    pub(crate) fn sync_file(&self) -> Option<(LazyFile, PathBuf)> {
        self.file
            .as_ref()
            .map(|file| (file.clone(), self.path.clone()))
    }

    /// Renames the file, if there is one, to `to`.
    pub(crate) fn rename(&mut self, to: PathBuf, disk: &dyn Disk) -> Result<(), IoFailure> {
        if let Some(file) = &self.file {
            disk.rename(&self.path, &to)
                .map_err(|e| IoFailure::new("rename transaction index", &to, e))?;
            file.set_path(to.clone());
        }
        self.path = to;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RealDisk;

    fn txn(producer_id: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(last + 1),
        }
    }

    #[test]
    fn entries_are_kafkas_34_bytes_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut index = TxnIndex::create(path.clone());
        assert!(!path.exists(), "no file before the first entry");
        assert!(index.add(txn(7, 0, 4), &RealDisk).unwrap());
        assert!(!index.add(txn(9, 2, 8), &RealDisk).unwrap());
        assert!(
            !index.add(txn(9, 2, 8), &RealDisk).unwrap(),
            "a replayed entry is not added twice"
        );
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 2 * 34);
        assert_eq!(&bytes[0..2], &0i16.to_be_bytes(), "version 0");
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes(), "producer id");
        assert_eq!(&bytes[18..26], &4i64.to_be_bytes(), "last offset");
        assert_eq!(&bytes[26..34], &5i64.to_be_bytes(), "last stable offset");
        let reopened = TxnIndex::open(path, &RealDisk).unwrap();
        assert_eq!(reopened.entries(), &[txn(7, 0, 4), txn(9, 2, 8)]);
    }

    #[test]
    fn a_torn_tail_is_cut_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut index = TxnIndex::create(path.clone());
        index.add(txn(7, 0, 4), &RealDisk).unwrap();
        index.add(txn(9, 2, 8), &RealDisk).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..34 + 20]).unwrap();
        let reopened = TxnIndex::open(path.clone(), &RealDisk).unwrap();
        assert_eq!(reopened.entries(), &[txn(7, 0, 4)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 34);
    }

    #[test]
    fn collect_finds_overlapping_transactions_and_truncation_forgets_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut index = TxnIndex::create(path.clone());
        for entry in [txn(1, 0, 3), txn(2, 5, 9), txn(3, 12, 20)] {
            index.add(entry, &RealDisk).unwrap();
        }
        let mut found = Vec::new();
        index.collect(Offset(4), Offset(12), &mut found);
        assert_eq!(found, [txn(2, 5, 9)], "ended before 4, or began at 12");
        index.truncate_from(Offset(9), &RealDisk).unwrap();
        assert_eq!(index.entries(), &[txn(1, 0, 3)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 34);
        index.truncate_from(Offset(0), &RealDisk).unwrap();
        assert!(!path.exists(), "an empty index has no file");
    }
}
