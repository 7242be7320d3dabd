//! The only unsafe code in Rill: memory maps of segment and index files.
//!
//! Two dangers come with a shared file mapping, and this module is where
//! they are kept out:
//!
//! * Touching a mapped page that lies beyond the end of the file raises
//!   SIGBUS. Every access here is checked against the file length this
//!   module was told about, and the file only grows by reservation
//!   (fallocate, done by the caller before `file_grew`), so a full disk is
//!   an error from the reservation, never a signal from a store.
//! * Bytes handed out as [`Bytes`] slices must never change or vanish
//!   under their holder. A slice keeps the whole mapping alive (so a
//!   segment can be deleted under a reader), and a range that was ever
//!   shared is only written (through the map or by pwrite) or cut off
//!   again once no slice of this map is alive, which `Arc::get_mut` proves with
//!   the right memory ordering.
//!
//! Log files are mapped MAP_SHARED, so the map and pwrite see one page
//! cache: small appends are copied in through the map, large ones written
//! with pwrite (which is faster for whole pages; see the segment module and
//! docs/benchmarks.md), and fdatasync makes both durable. Segment files
//! must not be modified by other processes; if one is cut anyway, the
//! log's fstat checks (file_check.rs) notice before it touches the file
//! in user space, all but for a truncation inside one call's window.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use memmap2::{MmapMut, MmapOptions, MmapRaw};

use crate::open_maps::MapPermit;

/// A mapping and its place in the map budget (open_maps.rs), which it
/// holds for as long as any slice of it lives.
#[derive(Debug)]
struct Mapping {
    raw: MmapRaw,
    _permit: MapPermit,
}

/// A read-write mapping of a segment's .log file, made when first needed
/// ([`LogMap::map`]) and given up when idle ([`LogMap::unmap`]).
///
/// Not thread-safe for changes: the segment that owns it is behind the
/// log's lock; `&self` methods (reads, sharing) may run from many readers
/// at once, `&mut self` methods (writes, growth, truncation) exclude them.
#[derive(Debug)]
pub(crate) struct LogMap {
    /// Set from `&self` (a reader under the log's read lock may map), taken
    /// only with `&mut self`, so a borrow of the bytes pins the mapping.
    mapping: OnceLock<Arc<Mapping>>,
    /// Bytes to map; the file may be shorter, never longer while in use.
    capacity: usize,
    /// Bytes of the file under the map: the limit of every access.
    file_len: usize,
    /// End of the furthest range handed out as a `Bytes` slice since the
    /// map was last known to be unshared.
    shared_end: AtomicUsize,
}

/// The owner behind a `Bytes` slice of a log map.
struct SharedSlice {
    mapping: Arc<Mapping>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for SharedSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `LogMap::share` checked that start + len lies within the
        // file when the slice was made; the range is never written or cut
        // from the file while this owner keeps `raw` shared (see
        // `LogMap::may_change`), and `raw` keeps the mapping itself alive.
        unsafe { std::slice::from_raw_parts(self.mapping.raw.as_ptr().add(self.start), self.len) }
    }
}

impl LogMap {
    /// A map of `capacity` bytes of a file whose length is now `file_len`,
    /// not mapped yet.
    pub(crate) fn new(capacity: usize, file_len: usize) -> LogMap {
        assert!(
            file_len <= capacity,
            "file of {file_len} bytes is larger than its map of {capacity}"
        );
        LogMap {
            mapping: OnceLock::new(),
            capacity,
            file_len,
            shared_end: AtomicUsize::new(0),
        }
    }

    pub(crate) fn is_mapped(&self) -> bool {
        self.mapping.get().is_some()
    }

    /// Maps `file` (this map's file) unless it is mapped already.
    pub(crate) fn map(&self, file: &File) -> io::Result<()> {
        if self.is_mapped() {
            return Ok(());
        }
        let permit = MapPermit::take()?;
        let raw = MmapOptions::new().len(self.capacity).map_raw(file)?;
        // Two readers may map at once: the loser's mapping is dropped.
        let _ = self.mapping.set(Arc::new(Mapping {
            raw,
            _permit: permit,
        }));
        Ok(())
    }

    /// Gives the mapping up unless a slice of it is alive (which may not
    /// be changed under its holder, and a new mapping would not know of
    /// it). Returns whether it did.
    pub(crate) fn unmap(&mut self) -> bool {
        if !self.may_change(0) || !self.is_mapped() {
            return false;
        }
        self.mapping = OnceLock::new();
        true
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn file_len(&self) -> usize {
        self.file_len
    }

    /// Records that the caller reserved the file up to `len` bytes.
    pub(crate) fn file_grew(&mut self, len: usize) {
        assert!(
            len >= self.file_len && len <= self.capacity,
            "file grew to {len}, map holds {}",
            self.capacity
        );
        self.file_len = len;
    }

    /// Cuts the file to `len` bytes. No slice may hold bytes beyond `len`.
    pub(crate) fn truncate_file(&mut self, file: &File, len: usize) -> io::Result<()> {
        assert!(
            len <= self.file_len,
            "truncating to {len} grows a {}-byte file",
            self.file_len
        );
        assert!(
            self.may_change(len),
            "truncating bytes a reader still holds"
        );
        file.set_len(len as u64)?;
        self.file_len = len;
        Ok(())
    }

    /// Whether bytes from `start` on may be changed: none of them is in a
    /// live slice.
    pub(crate) fn may_change(&mut self, start: usize) -> bool {
        if self
            .mapping
            .get_mut()
            .is_none_or(|m| Arc::get_mut(m).is_some())
        {
            // No slice is alive, and none can be made while we hold &mut.
            self.shared_end.store(0, Ordering::Relaxed);
        }
        start >= self.shared_end.load(Ordering::Relaxed)
    }

    /// Whether any `Bytes` slice of this map is alive.
    #[cfg(test)]
    pub(crate) fn is_shared(&mut self) -> bool {
        !self.may_change(0)
    }

    /// Copies `data` to `pos` of the file through the map.
    pub(crate) fn write(&mut self, pos: usize, data: &[u8]) {
        let end = pos + data.len();
        assert!(self.may_change(pos), "writing bytes a reader still holds");
        if let Some(mapping) = self.checked(pos, end) {
            // SAFETY: the range lies within the file (no SIGBUS) and the
            // map; no shared slice overlaps it (checked above), and &mut
            // self keeps other readers of this map out for the copy.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    data.as_ptr(),
                    mapping.raw.as_mut_ptr().add(pos),
                    data.len(),
                )
            }
        }
    }

    /// The bytes `start..end` of the file.
    pub(crate) fn bytes(&self, start: usize, end: usize) -> &[u8] {
        self.checked(start, end).map_or(&[], |mapping| {
            // SAFETY: the range lies within the file and the map; writers
            // need &mut self, so nothing changes it for the borrow's life.
            unsafe { std::slice::from_raw_parts(mapping.raw.as_ptr().add(start), end - start) }
        })
    }

    /// A zero-copy slice of `start..end` that outlives the lock, the
    /// segment and even the file's deletion.
    pub(crate) fn share(&self, start: usize, end: usize) -> Bytes {
        let Some(mapping) = self.checked(start, end) else {
            return Bytes::new();
        };
        self.shared_end.fetch_max(end, Ordering::Relaxed);
        Bytes::from_owner(SharedSlice {
            mapping: Arc::clone(mapping),
            start,
            len: end - start,
        })
    }

    /// The mapping, for an access to `start..end`. That the range lies
    /// within the file and that the map was made first are the caller's
    /// invariants, checked here (a `None` never gets past them).
    fn checked(&self, start: usize, end: usize) -> Option<&Arc<Mapping>> {
        assert!(
            start <= end && end <= self.file_len,
            "access {start}..{end} outside the {}-byte file",
            self.file_len
        );
        let mapping = self.mapping.get();
        assert!(
            mapping.is_some(),
            "bytes of a segment used before it was mapped"
        );
        mapping
    }
}

/// A read-write mapping of a whole index file, made when first needed
/// ([`IndexMap::map`]). Index bytes are never shared outside their
/// segment, so a plain `&mut [u8]` view suffices.
#[derive(Debug)]
pub(crate) struct IndexMap {
    /// Bytes of the file to map; an empty file needs no mapping.
    len: usize,
    /// Set from `&self`, taken only with `&mut self`.
    mapping: OnceLock<(MmapMut, MapPermit)>,
}

impl IndexMap {
    /// A map of the first `len` bytes of its file, not mapped yet. They
    /// must all be allocated and must not be cut off while mapped.
    pub(crate) fn new(len: usize) -> IndexMap {
        IndexMap {
            len,
            mapping: OnceLock::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether its bytes can be used: mapped, or empty.
    pub(crate) fn is_mapped(&self) -> bool {
        self.len == 0 || self.mapping.get().is_some()
    }

    /// Maps `file` (this map's file) unless it is mapped already. A file
    /// shorter than the map is an error, not a bug: something outside the
    /// log may have cut it.
    pub(crate) fn map(&self, file: &File) -> io::Result<()> {
        if self.is_mapped() {
            return Ok(());
        }
        let actual = file.metadata()?.len();
        if actual < self.len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "index file is {actual} bytes, expected at least {} to map",
                    self.len
                ),
            ));
        }
        let permit = MapPermit::take()?;
        // SAFETY: the mapping lies within the file; `IndexFile` drops this
        // map before it shrinks the file below `len`, and segment files
        // belong to this process alone.
        let map = unsafe { MmapOptions::new().len(self.len).map_mut(file)? };
        // Two readers may map at once: the loser's mapping is dropped.
        let _ = self.mapping.set((map, permit));
        Ok(())
    }

    /// Gives the mapping up; returns whether there was one.
    pub(crate) fn unmap(&mut self) -> bool {
        self.mapping.take().is_some()
    }
}

impl Deref for IndexMap {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        assert!(self.is_mapped(), "an index used before it was mapped");
        self.mapping.get().map_or(&[], |(map, _)| map)
    }
}

impl DerefMut for IndexMap {
    fn deref_mut(&mut self) -> &mut [u8] {
        assert!(self.is_mapped(), "an index used before it was mapped");
        self.mapping.get_mut().map_or(&mut [], |(map, _)| map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn file_of(len: u64) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("f"))
            .unwrap();
        file.set_len(len).unwrap();
        (dir, file)
    }

    fn mapped(file: &File, capacity: usize, file_len: usize) -> LogMap {
        let map = LogMap::new(capacity, file_len);
        map.map(file).unwrap();
        map
    }

    #[test]
    fn a_shared_map_stays_and_an_unshared_one_maps_again_with_its_bytes() {
        let (_dir, file) = file_of(4096);
        file.write_all_at(b"kept", 0).unwrap();
        let mut map = mapped(&file, 8192, 4096);
        let slice = map.share(0, 4);
        assert!(!map.unmap(), "a reader holds bytes of it");
        drop(slice);
        assert!(map.unmap());
        assert!(!map.is_mapped());
        map.map(&file).unwrap();
        assert_eq!(map.bytes(0, 4), b"kept");
    }

    #[test]
    fn shared_slice_survives_the_map_and_blocks_rewrites() {
        let (_dir, file) = file_of(4096);
        file.write_all_at(b"hello world", 0).unwrap();
        let mut map = mapped(&file, 1 << 20, 4096);
        let slice = map.share(0, 5);
        assert!(map.is_shared());
        assert!(!map.may_change(3));
        assert!(
            map.may_change(5),
            "bytes after the shared range stay writable"
        );
        drop(map);
        assert_eq!(&slice[..], b"hello");
    }

    #[test]
    fn dropping_every_slice_makes_the_range_writable_again() {
        let (_dir, file) = file_of(4096);
        file.write_all_at(b"abc", 0).unwrap();
        let mut map = mapped(&file, 8192, 4096);
        let slice = map.share(0, 3);
        let clone = slice.clone();
        drop(slice);
        assert!(map.is_shared(), "a clone still holds the range");
        drop(clone);
        assert!(!map.is_shared());
        file.write_all_at(b"xyz", 0).unwrap();
        assert_eq!(map.bytes(0, 3), b"xyz", "the map shows what pwrite wrote");
    }

    #[test]
    #[should_panic(expected = "outside the 4096-byte file")]
    fn access_beyond_the_file_is_a_bug_not_a_sigbus() {
        let (_dir, file) = file_of(4096);
        let map = mapped(&file, 8192, 4096);
        let _ = map.bytes(4000, 4097);
    }

    #[test]
    #[should_panic(expected = "reader still holds")]
    fn truncating_under_a_reader_is_a_bug() {
        let (_dir, file) = file_of(4096);
        let mut map = mapped(&file, 4096, 4096);
        let _slice = map.share(0, 100);
        let _ = map.truncate_file(&file, 50);
    }
}
