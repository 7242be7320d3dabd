//! A memory-mapped file of fixed-size index entries, shared by the offset
//! index and the time index.
//!
//! While its segment is active the file is preallocated ahead of its
//! entries, in step with the log file (so that an entry never lacks room
//! and a store through the map never lies past the end of the file), up to
//! segment.index.bytes; `entries` says how much of it is valid. When the
//! segment is sealed (and at a clean shutdown) the file is trimmed to
//! exactly its entries, so that a clean start knows the count from the
//! file length without reading anything. Kafka preallocates the whole
//! 10 MiB as a sparse file; fallocating it whole instead would take 20 MiB
//! of disk for every partition, idle or not.

use std::cmp::Ordering;
use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use crate::disk::Disk;
use crate::error::{IoFailure, SegmentFileChanged};
use crate::file_check::check_file;
use crate::mmap::IndexMap;
use crate::open_files::{LazyFile, with_descriptor};

/// One fixed-size, big-endian entry of an index file.
pub(crate) trait IndexEntry: Copy {
    const BYTES: usize;
    fn decode(bytes: &[u8]) -> Self;
    fn encode(self, out: &mut [u8]);
}

/// Not thread-safe: owned by a segment, behind the log's lock.
#[derive(Debug)]
pub(crate) struct IndexFile<E> {
    path: PathBuf,
    file: LazyFile,
    map: IndexMap,
    entries: usize,
    /// Entries segment.index.bytes allows; the file grows up to it.
    limit: usize,
    _entry: PhantomData<E>,
}

/// Index files grow by whole pages.
const PAGE_BYTES: usize = 4096;

impl<E: IndexEntry> IndexFile<E> {
    /// Creates an empty index of at most `max_bytes` of entries, replacing
    /// any file at `path`; it has no room until [`IndexFile::reserve`].
    pub(crate) fn create(path: &Path, max_bytes: u32, disk: &dyn Disk) -> Result<Self, IoFailure> {
        let file = disk
            .create_file(path)
            .map_err(|e| IoFailure::new("create index", path, e))?;
        let mut index = Self::assemble(path.to_path_buf(), file, 0);
        index.limit = max_bytes as usize / E::BYTES;
        Ok(index)
    }

    /// Opens an index whose file holds exactly its entries (a sealed or
    /// cleanly closed segment's). `None` if the file is missing or its
    /// length is not a whole number of entries.
    pub(crate) fn open_trimmed(path: &Path) -> Result<Option<Self>, IoFailure> {
        let file = match with_descriptor(|| File::options().read(true).write(true).open(path)) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(IoFailure::new("open index", path, e)),
        };
        let len = file
            .metadata()
            .map_err(|e| IoFailure::new("stat index", path, e))?
            .len();
        let Ok(len) = usize::try_from(len) else {
            return Ok(None);
        };
        if len % E::BYTES != 0 {
            return Ok(None);
        }
        let mut index = Self::assemble(path.to_path_buf(), file, len);
        index.entries = len / E::BYTES;
        index.limit = index.entries;
        Ok(Some(index))
    }

    /// The index whose file is `file`, of which `len` bytes are to be
    /// mapped when first needed.
    fn assemble(path: PathBuf, file: File, len: usize) -> Self {
        IndexFile {
            file: LazyFile::new(path.clone(), file),
            path,
            map: IndexMap::new(len),
            entries: 0,
            limit: 0,
            _entry: PhantomData,
        }
    }

    /// Maps the file unless it is mapped already: [`IndexFile::entry`],
    /// [`IndexFile::push`] and what uses them need it.
    pub(crate) fn map(&self) -> Result<(), IoFailure> {
        if self.map.is_mapped() {
            return Ok(());
        }
        self.map
            .map(&*self.open()?)
            .map_err(|e| IoFailure::new("map index", &self.path, e))
    }

    /// Gives the mapping up; returns whether there was one.
    pub(crate) fn unmap(&mut self) -> bool {
        self.map.unmap()
    }

    /// Makes `max_bytes` (in whole entries, never below the valid ones) the
    /// limit, and preallocates and maps room for `entries` entries, a page
    /// at least, but not past the limit.
    pub(crate) fn reserve(
        &mut self,
        entries: usize,
        max_bytes: u32,
        disk: &dyn Disk,
    ) -> Result<(), IoFailure> {
        self.set_limit(max_bytes);
        let limit_bytes = self.limit * E::BYTES;
        let want = (entries.min(self.limit) * E::BYTES)
            .next_multiple_of(PAGE_BYTES)
            .min(limit_bytes);
        let have = self.map.len();
        if want <= have {
            return Ok(());
        }
        let file = self.open()?;
        disk.reserve(&file, have as u64, want as u64)
            .map_err(|e| IoFailure::new("reserve index", &self.path, e))?;
        self.map = IndexMap::new(want);
        Ok(())
    }

    /// Makes `max_bytes` (in whole entries, never below the valid ones) the
    /// limit the file may grow to; [`IndexFile::reserve`] grows it.
    pub(crate) fn set_limit(&mut self, max_bytes: u32) {
        self.limit = (max_bytes as usize / E::BYTES).max(self.entries);
    }

    /// Cuts the file to exactly its entries.
    pub(crate) fn trim(&mut self) -> Result<(), IoFailure> {
        let len = self.entries * E::BYTES;
        if len == self.map.len() {
            return Ok(());
        }
        // Drop the longer map first, so that no mapping reaches past the
        // end of the file once it is cut.
        let file = self.open()?;
        self.map = IndexMap::new(len);
        file.set_len(len as u64)
            .map_err(|e| IoFailure::new("trim index", &self.path, e))?;
        Ok(())
    }

    /// Whether the file is still linked and holds every byte mapped of it
    /// (see file_check.rs): one fstat.
    pub(crate) fn check_unchanged(&self) -> Result<(), SegmentFileChanged> {
        check_file(&self.file, self.map.len() as u64, || self.path.clone())
    }

    /// The file, shared so that a flusher can sync it outside the lock.
    pub(crate) fn file(&self) -> &LazyFile {
        &self.file
    }

    fn open(&self) -> Result<std::sync::Arc<File>, IoFailure> {
        self.file
            .get()
            .map_err(|e| IoFailure::new("open index", &self.path, e))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records that the file was renamed to `path`.
    pub(crate) fn set_path(&mut self, path: PathBuf) {
        self.file.set_path(path.clone());
        self.path = path;
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    /// Entries the mapped file has room for now.
    pub(crate) fn capacity(&self) -> usize {
        self.map.len() / E::BYTES
    }

    /// Entries the file may grow to (segment.index.bytes): the segment
    /// rolls when an index reaches it.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn entry(&self, i: usize) -> E {
        assert!(i < self.entries, "index entry {i} of {}", self.entries);
        E::decode(&self.map[i * E::BYTES..(i + 1) * E::BYTES])
    }

    pub(crate) fn last(&self) -> Option<E> {
        self.entries.checked_sub(1).map(|i| self.entry(i))
    }

    pub(crate) fn push(&mut self, entry: E) {
        assert!(
            self.entries < self.capacity(),
            "index {} is full",
            self.path.display()
        );
        let at = self.entries * E::BYTES;
        entry.encode(&mut self.map[at..at + E::BYTES]);
        self.entries += 1;
    }

    /// Keeps only the first `entries` entries.
    pub(crate) fn truncate(&mut self, entries: usize) {
        self.entries = self.entries.min(entries);
    }

    /// The last entry for which `cmp` is not `Greater` (entries are sorted
    /// by the compared key), with its index.
    pub(crate) fn floor(&self, cmp: impl Fn(&E) -> Ordering) -> Option<(usize, E)> {
        let (mut lo, mut hi) = (0, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if cmp(&self.entry(mid)) == Ordering::Greater {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo.checked_sub(1).map(|i| (i, self.entry(i)))
    }
}
