//! Producer-state snapshot files: `<20-digit offset>.snapshot` in a
//! partition directory, in Kafka's format (version 1), holding the
//! idempotent-producer state of every batch below that offset. Readers
//! and the writer of the format sit here; what the entries mean is
//! [`crate::producer_state`]'s business.
//!
//! ```text
//! i16  version = 1
//! u32  CRC-32C of every byte after this field
//! i32  entry count
//! entries, 46 bytes each:
//!   i64 producer id       i16 producer epoch     i32 last sequence
//!   i64 last offset       i32 offset delta       i64 timestamp
//!   i32 coordinator epoch (-1)                   i64 current txn first offset (-1)
//! ```
//!
//! Kafka writes one entry per producer (its last batch). Rill writes one
//! per remembered batch, oldest first, so that duplicates of the last five
//! batches are still recognised after a restart; a Kafka reader, which
//! keeps the last entry it reads for each producer, sees the same state as
//! Kafka would have written. Files are written atomically (see
//! [`rill_storage::durable::write_atomically_on`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rill_storage::durable::write_atomically_on;
use rill_storage::{Disk, IoFailure, Offset};

use crate::checkpoint::CheckpointError;

/// The file name suffix, as Kafka's.
pub const PRODUCER_SNAPSHOT_SUFFIX: &str = "snapshot";
/// The only version Kafka (and Rill) writes.
const VERSION: i16 = 1;
/// version (2) + CRC (4) + entry count (4).
const HEADER_BYTES: usize = 10;
/// The CRC covers everything from the entry count on.
const CRC_FROM: usize = 6;
const ENTRY_BYTES: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
/// A bound on the file read at open, checked before allocating: a million
/// producers with five batches each take a quarter of it.
pub(crate) const SNAPSHOT_BYTES_MAX: u64 = 1 << 30;

/// One entry of a snapshot, field by field as Kafka lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotEntry {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    /// -1 when the entry carries no batch.
    pub last_offset: i64,
    /// last offset - first offset of the batch (= last - first sequence).
    pub offset_delta: i32,
    pub timestamp: i64,
    pub coordinator_epoch: i32,
    pub current_txn_first_offset: i64,
}

/// Why a producer snapshot could not be listed, read or removed. Apart
/// from `Io`, each means the file is unusable; opening a partition then
/// deletes it and falls back to an older snapshot or to the log.
#[derive(Debug, thiserror::Error)]
pub enum ProducerSnapshotError {
    #[error(transparent)]
    Io(#[from] IoFailure),
    #[error("producer snapshot {path} is {bytes} bytes, expected at most {max}")]
    TooLarge { path: PathBuf, bytes: u64, max: u64 },
    #[error("producer snapshot {path} has version {found}, expected {VERSION}")]
    UnknownVersion { path: PathBuf, found: i16 },
    #[error(
        "producer snapshot {path} is corrupt: stored CRC-32C {stored:#010x}, computed {computed:#010x}"
    )]
    CrcMismatch {
        path: PathBuf,
        stored: u32,
        computed: u32,
    },
    #[error(
        "producer snapshot {path} is {bytes} bytes, expected {HEADER_BYTES} plus {ENTRY_BYTES} per entry for its {entries} entries"
    )]
    LengthMismatch {
        path: PathBuf,
        bytes: usize,
        entries: i64,
    },
    #[error(
        "producer snapshot {path}: entry {index} (producer {producer_id}, last offset {last_offset}) is invalid: expected {expected}"
    )]
    InvalidEntry {
        path: PathBuf,
        index: usize,
        producer_id: i64,
        last_offset: i64,
        expected: &'static str,
    },
}

/// The path of the snapshot at `offset` in `dir`.
pub(crate) fn snapshot_path(dir: &Path, offset: Offset) -> PathBuf {
    dir.join(format!("{:020}.{PRODUCER_SNAPSHOT_SUFFIX}", offset.value()))
}

/// The offsets of the snapshot files in `dir`. Other files are ignored
/// (leftover `.snapshot.tmp` files are removed by the log's open).
pub(crate) fn list(dir: &Path) -> Result<BTreeSet<Offset>, ProducerSnapshotError> {
    let mut offsets = BTreeSet::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| IoFailure::new("list partition directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| IoFailure::new("list partition directory", dir, e))?;
        let name = entry.file_name();
        let Some((stem, suffix)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        if suffix != PRODUCER_SNAPSHOT_SUFFIX
            || stem.len() != 20
            || !stem.bytes().all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Ok(offset) = stem.parse::<i64>() {
            offsets.insert(Offset(offset));
        }
    }
    Ok(offsets)
}

/// Writes `entries` as the snapshot at `offset`, atomically and durably.
pub(crate) fn write(
    disk: &dyn Disk,
    dir: &Path,
    offset: Offset,
    entries: &[SnapshotEntry],
) -> Result<(), CheckpointError> {
    let path = snapshot_path(dir, offset);
    let bytes = encode(entries).map_err(|entries| CheckpointError::Unencodable {
        path: path.clone(),
        what: "the number of producer entries",
        found: i64::try_from(entries).unwrap_or(i64::MAX),
        max: i64::from(i32::MAX),
    })?;
    write_atomically_on(disk, &path, &bytes)?;
    Ok(())
}

/// Reads the snapshot at `offset`, checking its version, CRC and length,
/// and that every batch it names lies below `offset`.
pub(crate) fn read(
    dir: &Path,
    offset: Offset,
) -> Result<Vec<SnapshotEntry>, ProducerSnapshotError> {
    let path = snapshot_path(dir, offset);
    let bytes = std::fs::metadata(&path)
        .map_err(|e| IoFailure::new("read producer snapshot", &path, e))?
        .len();
    if bytes > SNAPSHOT_BYTES_MAX {
        return Err(ProducerSnapshotError::TooLarge {
            path,
            bytes,
            max: SNAPSHOT_BYTES_MAX,
        });
    }
    let buf =
        std::fs::read(&path).map_err(|e| IoFailure::new("read producer snapshot", &path, e))?;
    let entries = decode(&buf, &path)?;
    for (index, entry) in entries.iter().enumerate() {
        if let Some(expected) = entry_problem(entry, offset) {
            return Err(ProducerSnapshotError::InvalidEntry {
                path,
                index,
                producer_id: entry.producer_id,
                last_offset: entry.last_offset,
                expected,
            });
        }
    }
    Ok(entries)
}

/// Removes the snapshot at `offset`; one already gone is no error. The
/// caller syncs the directory.
pub(crate) fn delete(
    disk: &dyn Disk,
    dir: &Path,
    offset: Offset,
) -> Result<(), ProducerSnapshotError> {
    let path = snapshot_path(dir, offset);
    match disk.remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(IoFailure::new("delete producer snapshot", path, e).into()),
    }
}

/// What is wrong with an entry of the snapshot at `offset`, if anything.
fn entry_problem(entry: &SnapshotEntry, offset: Offset) -> Option<&'static str> {
    if entry.producer_id < 0 {
        return Some("a producer id >= 0");
    }
    if entry.last_offset < 0 {
        return None; // an entry without a batch: only the epoch counts
    }
    if entry.offset_delta < 0 || entry.last_offset < i64::from(entry.offset_delta) {
        return Some("0 <= offset delta <= last offset");
    }
    if entry.last_offset >= offset.value() {
        return Some("a last offset below the snapshot's offset");
    }
    if entry.last_sequence < 0 {
        return Some("a last sequence >= 0");
    }
    None
}

/// The snapshot's bytes; `Err(entries)` if there are more entries than
/// its i32 count can say (expiry and memory keep them far below that).
fn encode(entries: &[SnapshotEntry]) -> Result<Vec<u8>, usize> {
    let count = i32::try_from(entries.len()).map_err(|_| entries.len())?;
    let mut buf = Vec::with_capacity(HEADER_BYTES + entries.len() * ENTRY_BYTES);
    buf.extend_from_slice(&VERSION.to_be_bytes());
    buf.extend_from_slice(&0u32.to_be_bytes()); // the CRC, filled in below
    buf.extend_from_slice(&count.to_be_bytes());
    for e in entries {
        buf.extend_from_slice(&e.producer_id.to_be_bytes());
        buf.extend_from_slice(&e.epoch.to_be_bytes());
        buf.extend_from_slice(&e.last_sequence.to_be_bytes());
        buf.extend_from_slice(&e.last_offset.to_be_bytes());
        buf.extend_from_slice(&e.offset_delta.to_be_bytes());
        buf.extend_from_slice(&e.timestamp.to_be_bytes());
        buf.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        buf.extend_from_slice(&e.current_txn_first_offset.to_be_bytes());
    }
    let crc = crc32c::crc32c(&buf[CRC_FROM..]);
    buf[2..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
    Ok(buf)
}

fn decode(buf: &[u8], path: &Path) -> Result<Vec<SnapshotEntry>, ProducerSnapshotError> {
    let length_mismatch = |entries: i64| ProducerSnapshotError::LengthMismatch {
        path: path.to_path_buf(),
        bytes: buf.len(),
        entries,
    };
    if buf.len() < HEADER_BYTES {
        return Err(length_mismatch(0));
    }
    let mut reader = Reader { buf, at: 0 };
    let version = reader.i16();
    if version != VERSION {
        return Err(ProducerSnapshotError::UnknownVersion {
            path: path.to_path_buf(),
            found: version,
        });
    }
    let stored = reader.u32();
    let computed = crc32c::crc32c(&buf[CRC_FROM..]);
    if stored != computed {
        return Err(ProducerSnapshotError::CrcMismatch {
            path: path.to_path_buf(),
            stored,
            computed,
        });
    }
    let count = reader.i32();
    // The length is checked against the count before anything is allocated.
    let expected = usize::try_from(count)
        .ok()
        .and_then(|n| n.checked_mul(ENTRY_BYTES))
        .and_then(|n| n.checked_add(HEADER_BYTES));
    if expected != Some(buf.len()) {
        return Err(length_mismatch(i64::from(count)));
    }
    let count = usize::try_from(count).unwrap_or_default();
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        entries.push(SnapshotEntry {
            producer_id: reader.i64(),
            epoch: reader.i16(),
            last_sequence: reader.i32(),
            last_offset: reader.i64(),
            offset_delta: reader.i32(),
            timestamp: reader.i64(),
            coordinator_epoch: reader.i32(),
            current_txn_first_offset: reader.i64(),
        });
    }
    Ok(entries)
}

/// Big-endian fields from a buffer whose length the caller has checked.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.at..self.at + N]);
        self.at += N;
        out
    }

    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }

    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take())
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }

    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(producer_id: i64, last_offset: i64) -> SnapshotEntry {
        SnapshotEntry {
            producer_id,
            epoch: 3,
            last_sequence: 41,
            last_offset,
            offset_delta: 1,
            timestamp: 1_700_000_000_000,
            coordinator_epoch: -1,
            current_txn_first_offset: -1,
        }
    }

    #[test]
    fn round_trips_in_kafkas_layout() {
        let dir = tempfile::tempdir().unwrap();
        let entries = [entry(7, 10), entry(7, 12), entry(9, 5)];
        write(&rill_storage::RealDisk, dir.path(), Offset(13), &entries).unwrap();
        let path = dir.path().join("00000000000000000013.snapshot");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 10 + 3 * 46);
        assert_eq!(&bytes[..2], &1i16.to_be_bytes(), "version 1");
        assert_eq!(&bytes[6..10], &3i32.to_be_bytes(), "entry count");
        assert_eq!(&bytes[10..18], &7i64.to_be_bytes(), "first producer id");
        assert_eq!(
            u32::from_be_bytes(bytes[2..6].try_into().unwrap()),
            crc32c::crc32c(&bytes[6..])
        );
        assert_eq!(read(dir.path(), Offset(13)).unwrap(), entries);
        assert_eq!(
            list(dir.path()).unwrap().into_iter().collect::<Vec<_>>(),
            [Offset(13)]
        );
        delete(&rill_storage::RealDisk, dir.path(), Offset(13)).unwrap();
        delete(&rill_storage::RealDisk, dir.path(), Offset(13)).unwrap();
        assert!(list(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn damaged_files_are_refused_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &rill_storage::RealDisk,
            dir.path(),
            Offset(13),
            &[entry(7, 10)],
        )
        .unwrap();
        let path = snapshot_path(dir.path(), Offset(13));
        let good = std::fs::read(&path).unwrap();

        let mut flipped = good.clone();
        flipped[20] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(
            read(dir.path(), Offset(13)),
            Err(ProducerSnapshotError::CrcMismatch { .. })
        ));

        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(matches!(
            read(dir.path(), Offset(13)),
            Err(ProducerSnapshotError::CrcMismatch { .. })
        ));

        let mut version = good.clone();
        version[1] = 2;
        std::fs::write(&path, &version).unwrap();
        assert!(matches!(
            read(dir.path(), Offset(13)),
            Err(ProducerSnapshotError::UnknownVersion { found: 2, .. })
        ));

        std::fs::write(&path, &good).unwrap();
        std::fs::rename(&path, snapshot_path(dir.path(), Offset(10))).unwrap();
        assert!(
            matches!(
                read(dir.path(), Offset(10)),
                Err(ProducerSnapshotError::InvalidEntry { index: 0, .. })
            ),
            "a batch at or above the snapshot's offset"
        );
    }

    #[test]
    fn a_count_that_disagrees_with_the_length_is_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = encode(&[]).unwrap();
        bytes[6..10].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[6..]);
        bytes[2..6].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(snapshot_path(dir.path(), Offset(1)), &bytes).unwrap();
        assert!(matches!(
            read(dir.path(), Offset(1)),
            Err(ProducerSnapshotError::LengthMismatch {
                entries: 2_147_483_647,
                ..
            })
        ));
    }

    #[test]
    fn listing_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "00000000000000000005.snapshot",
            "00000000000000000005.log",
            "00000000000000000009.snapshot.tmp",
            "5.snapshot",
            "leader-epoch-checkpoint",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(
            list(dir.path()).unwrap().into_iter().collect::<Vec<_>>(),
            [Offset(5)]
        );
    }
}
