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
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use memmap2::{MmapMut, MmapOptions, MmapRaw};

/// Segment and index maps alive now.
static MAPS: AtomicUsize = AtomicUsize::new(0);

/// Maps left to everything else of the process under vm.max_map_count:
/// thread stacks (two maps each), the allocator's arenas, libraries. Past
/// the limit, mmap fails anywhere — a new thread's stack guard among
/// them, which aborts the process — so segments stop short of it.
const MAPS_HEADROOM: usize = 4096;

/// The kernel's vm.max_map_count, read once (65,530, its default, if it
/// cannot be read).
fn max_map_count() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65_530)
    })
}

/// One segment or index map counted against the limit while alive.
#[derive(Debug)]
struct Counted;

impl Counted {
    /// Counts one more map, or refuses it when it would leave the rest of
    /// the process less than [`MAPS_HEADROOM`].
    fn take() -> io::Result<Counted> {
        let max = max_map_count();
        let limit = max.saturating_sub(MAPS_HEADROOM);
        let taken = MAPS.fetch_add(1, Ordering::Relaxed);
        if taken >= limit {
            MAPS.fetch_sub(1, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "{taken} segment maps already, and vm.max_map_count is {max}: raise it \
                     (sysctl vm.max_map_count) to hold more partitions"
                ),
            ));
        }
        Ok(Counted)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        MAPS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A read-write mapping of a segment's .log file.
///
/// Not thread-safe for changes: the segment that owns it is behind the
/// log's lock; `&self` methods (reads, sharing) may run from many readers
/// at once, `&mut self` methods (writes, growth, truncation) exclude them.
#[derive(Debug)]
pub(crate) struct LogMap {
    raw: Arc<MmapRaw>,
    /// Mapped bytes; the file may be shorter, never longer while in use.
    capacity: usize,
    /// Bytes of the file under the map: the limit of every access.
    file_len: usize,
    /// End of the furthest range handed out as a `Bytes` slice since the
    /// map was last known to be unshared.
    shared_end: AtomicUsize,
    _counted: Counted,
}

/// The owner behind a `Bytes` slice of a log map.
struct SharedSlice {
    raw: Arc<MmapRaw>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for SharedSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `LogMap::share` checked that start + len lies within the
        // file when the slice was made; the range is never written or cut
        // from the file while this owner keeps `raw` shared (see
        // `LogMap::may_change`), and `raw` keeps the mapping itself alive.
        unsafe { std::slice::from_raw_parts(self.raw.as_ptr().add(self.start), self.len) }
    }
}

impl LogMap {
    /// Maps `capacity` bytes of `file`, whose length is now `file_len`.
    pub(crate) fn new(file: &File, capacity: usize, file_len: usize) -> io::Result<LogMap> {
        assert!(
            file_len <= capacity,
            "file of {file_len} bytes is larger than its map of {capacity}"
        );
        let counted = Counted::take()?;
        let raw = MmapOptions::new().len(capacity).map_raw(file)?;
        Ok(LogMap {
            raw: Arc::new(raw),
            capacity,
            file_len,
            shared_end: AtomicUsize::new(0),
            _counted: counted,
        })
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
        if Arc::get_mut(&mut self.raw).is_some() {
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
        self.check_range(pos, end);
        assert!(self.may_change(pos), "writing bytes a reader still holds");
        // SAFETY: the range lies within the file (no SIGBUS) and the map;
        // no shared slice overlaps it (checked above), and &mut self keeps
        // other readers of this map out for the copy.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.raw.as_mut_ptr().add(pos), data.len())
        }
    }

    /// The bytes `start..end` of the file.
    pub(crate) fn bytes(&self, start: usize, end: usize) -> &[u8] {
        self.check_range(start, end);
        // SAFETY: the range lies within the file and the map; writers need
        // &mut self, so nothing changes it for the borrow's life.
        unsafe { std::slice::from_raw_parts(self.raw.as_ptr().add(start), end - start) }
    }

    /// A zero-copy slice of `start..end` that outlives the lock, the
    /// segment and even the file's deletion.
    pub(crate) fn share(&self, start: usize, end: usize) -> Bytes {
        self.check_range(start, end);
        self.shared_end.fetch_max(end, Ordering::Relaxed);
        Bytes::from_owner(SharedSlice {
            raw: Arc::clone(&self.raw),
            start,
            len: end - start,
        })
    }

    fn check_range(&self, start: usize, end: usize) {
        assert!(
            start <= end && end <= self.file_len,
            "access {start}..{end} outside the {}-byte file",
            self.file_len
        );
    }
}

/// A read-write mapping of a whole index file. Index bytes are never
/// shared outside their segment, so a plain `&mut [u8]` view suffices.
#[derive(Debug)]
pub(crate) struct IndexMap {
    map: MmapMut,
    _counted: Counted,
}

impl IndexMap {
    /// Maps the first `len` bytes of `file`, which must all be allocated
    /// and must not be cut off while mapped. A file shorter than `len` is
    /// an error, not a bug: something outside the log may have cut it.
    pub(crate) fn new(file: &File, len: usize) -> io::Result<IndexMap> {
        let actual = file.metadata()?.len();
        if actual < len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("index file is {actual} bytes, expected at least {len} to map"),
            ));
        }
        // SAFETY: the mapping lies within the file; `IndexFile` drops this
        // map before it shrinks the file below `len`, and segment files
        // belong to this process alone.
        let counted = Counted::take()?;
        let map = unsafe { MmapOptions::new().len(len).map_mut(file)? };
        Ok(IndexMap {
            map,
            _counted: counted,
        })
    }
}

impl Deref for IndexMap {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl DerefMut for IndexMap {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.map
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

    #[test]
    fn shared_slice_survives_the_map_and_blocks_rewrites() {
        let (_dir, file) = file_of(4096);
        file.write_all_at(b"hello world", 0).unwrap();
        let mut map = LogMap::new(&file, 1 << 20, 4096).unwrap();
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
        let mut map = LogMap::new(&file, 8192, 4096).unwrap();
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
        let map = LogMap::new(&file, 8192, 4096).unwrap();
        let _ = map.bytes(4000, 4097);
    }

    #[test]
    #[should_panic(expected = "reader still holds")]
    fn truncating_under_a_reader_is_a_bug() {
        let (_dir, file) = file_of(4096);
        let mut map = LogMap::new(&file, 4096, 4096).unwrap();
        let _slice = map.share(0, 100);
        let _ = map.truncate_file(&file, 50);
    }
}
