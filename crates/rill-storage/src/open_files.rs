//! Segment files whose descriptors are open only while the process's
//! budget allows.
//!
//! Each segment has three files (`.log`, `.index`, `.timeindex`), so a
//! broker that kept them all open would be bounded by `ulimit -n`, not by
//! its work. Reads and appends go through the segment's maps, which need
//! no descriptor once made; a descriptor is needed only to grow, trim,
//! sync, write with pwrite or check a file. So each segment file is a
//! [`LazyFile`]: its descriptor opens when needed, and when more than
//! [`open_files_max`] are open the least recently used is closed (the
//! CLOCK algorithm: a file used since the last sweep gets a second
//! chance). A closed file opens again by its path when next needed; a
//! busy partition's files stay open because they stay used.
//!
//! Durability is unchanged: fdatasync through any descriptor writes back
//! the file's dirty pages whoever dirtied them (a map, a descriptor since
//! closed), and Linux (4.16 on) reports to the next fsync a writeback
//! error no descriptor has seen, so closing one loses neither data nor
//! an error.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::disk::Disk;

/// Descriptors open now.
static OPEN: AtomicUsize = AtomicUsize::new(0);
/// The budget; 0 until set or first read.
static MAX: AtomicUsize = AtomicUsize::new(0);
/// The open files, in the order the clock hand visits them.
static RING: Mutex<VecDeque<Weak<Slot>>> = parking_lot::const_mutex(VecDeque::new());

/// The fewest descriptors the budget allows, whatever the limit.
const MAX_FLOOR: usize = 64;

/// Sets how many segment file descriptors may be open at once
/// (`rill.log.open.files.max`); at least 64.
pub fn set_open_files_max(max: usize) {
    MAX.store(max.max(MAX_FLOOR), Ordering::Relaxed);
}

/// How many segment file descriptors may be open at once: as set, or
/// half the process's open-file limit (the rest is for connections and
/// everything else).
pub fn open_files_max() -> usize {
    let max = MAX.load(Ordering::Relaxed);
    if max != 0 {
        return max;
    }
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let max = usize::try_from(limit / 2)
        .unwrap_or(usize::MAX)
        .max(MAX_FLOOR);
    MAX.store(max, Ordering::Relaxed);
    max
}

/// Segment file descriptors open now.
pub fn open_files() -> usize {
    OPEN.load(Ordering::Relaxed)
}

#[derive(Debug)]
struct Slot {
    path: Mutex<PathBuf>,
    file: Mutex<Option<Arc<File>>>,
    /// Used since the clock hand last passed.
    used: AtomicBool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.file.get_mut().is_some() {
            OPEN.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A segment file, open or not. Clones share it.
#[derive(Clone, Debug)]
pub(crate) struct LazyFile(Arc<Slot>);

impl LazyFile {
    /// Takes `file`, just created or opened at `path`, into the budget.
    pub(crate) fn new(path: PathBuf, file: File) -> LazyFile {
        let slot = Arc::new(Slot {
            path: Mutex::new(path),
            file: Mutex::new(None),
            used: AtomicBool::new(true),
        });
        let segment_file = LazyFile(slot);
        segment_file.install(file);
        segment_file
    }

    /// The open file, opened again by its path if it was closed.
    pub(crate) fn get(&self) -> io::Result<Arc<File>> {
        let mut open = self.0.file.lock();
        if let Some(file) = open.as_ref() {
            self.0.used.store(true, Ordering::Relaxed);
            return Ok(Arc::clone(file));
        }
        let path = self.0.path.lock().clone();
        let file = Arc::new(open_with_room(&path)?);
        *open = Some(Arc::clone(&file));
        drop(open);
        self.0.used.store(true, Ordering::Relaxed);
        OPEN.fetch_add(1, Ordering::Relaxed);
        enter_ring(&self.0);
        Ok(file)
    }

    /// Puts `file` (the same path's, made anew) in place of the old one.
    pub(crate) fn replace(&self, file: File) {
        self.install(file);
    }

    /// Puts `file` in the slot; an open one it replaces keeps its place in
    /// the count and the ring.
    fn install(&self, file: File) {
        make_room();
        let mut open = self.0.file.lock();
        let was_open = open.replace(Arc::new(file)).is_some();
        drop(open);
        if !was_open {
            OPEN.fetch_add(1, Ordering::Relaxed);
            enter_ring(&self.0);
        }
    }

    /// fdatasyncs the file through `disk`, opening it again if it was
    /// closed. A closed file no longer at its path was deleted since its
    /// sync was planned (retention, truncation or compaction took its
    /// segment, outside the lock a flush syncs under): there is nothing
    /// left to make durable, as a descriptor kept open would have synced a
    /// file with no name.
    pub(crate) fn sync_data(&self, disk: &dyn Disk) -> io::Result<()> {
        match self.get() {
            Ok(file) => disk.sync_data(&file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Records that the file was renamed to `path`.
    pub(crate) fn set_path(&self, path: PathBuf) {
        *self.0.path.lock() = path;
    }

    /// Whether its descriptor is open now.
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        self.0.file.lock().is_some()
    }
}

/// Opens `path` for reading and writing, closing others first while the
/// budget is spent.
fn open_with_room(path: &Path) -> io::Result<File> {
    make_room();
    with_descriptor(|| File::options().read(true).write(true).open(path))
}

/// Runs `open` (anything that takes a descriptor: opening a file, a
/// directory to sync it); if the process is out of descriptors, closes a
/// segment file and tries again, a few times. Running out is then a
/// refusal of that one step, never taken for a failing disk.
pub(crate) fn with_descriptor<T>(mut open: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 0;
    loop {
        match open() {
            Err(e) if is_out_of_descriptors(&e) && tries < 8 && close_one() => tries += 1,
            other => return other,
        }
    }
}

fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(code) if code == rustix::io::Errno::MFILE.raw_os_error()
            || code == rustix::io::Errno::NFILE.raw_os_error()
    )
}

/// Closes descriptors until one more fits the budget (or none can be
/// closed: all busy).
fn make_room() {
    let max = open_files_max();
    while OPEN.load(Ordering::Relaxed) >= max {
        if !close_one() {
            return;
        }
    }
}

fn enter_ring(slot: &Arc<Slot>) {
    let mut ring = RING.lock();
    // Files dropped while open leave dead entries; sweep them now and
    // then, so the ring stays about as long as the open files.
    if ring.len() > 2 * OPEN.load(Ordering::Relaxed) + 64 {
        ring.retain(|weak| weak.strong_count() > 0);
    }
    ring.push_back(Arc::downgrade(slot));
}

/// Closes the least recently used open file the clock hand finds; false
/// if it found none it could close.
fn close_one() -> bool {
    let mut ring = RING.lock();
    // Twice around: the first pass may only clear `used` marks.
    for _ in 0..ring.len().saturating_mul(2) {
        let Some(weak) = ring.pop_front() else {
            return false;
        };
        let Some(slot) = weak.upgrade() else {
            continue;
        };
        if slot.used.swap(false, Ordering::Relaxed) {
            ring.push_back(weak);
            continue;
        }
        // Busy (being opened, synced or replaced): pass it by.
        let Some(mut open) = slot.file.try_lock() else {
            ring.push_back(weak);
            continue;
        };
        if open.take().is_some() {
            OPEN.fetch_sub(1, Ordering::Relaxed);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn files_past_the_budget_close_and_open_again_with_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        set_open_files_max(MAX_FLOOR);
        let files: Vec<LazyFile> = (0..MAX_FLOOR * 3)
            .map(|i| {
                let path = dir.path().join(format!("{i}.log"));
                let mut file = File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .unwrap();
                file.write_all(format!("file {i}").as_bytes()).unwrap();
                LazyFile::new(path, file)
            })
            .collect();
        // Other tests of this process may hold some of the budget.
        let open = files.iter().filter(|f| f.is_open()).count();
        assert!(open <= MAX_FLOOR, "{open} open");
        assert!(!files[0].is_open(), "the first, least recent, closed");
        for (i, file) in files.iter().enumerate() {
            let mut bytes = String::new();
            let mut file = file.get().unwrap().as_ref().try_clone().unwrap();
            file.rewind().unwrap();
            file.read_to_string(&mut bytes).unwrap();
            assert_eq!(bytes, format!("file {i}"));
        }
        assert!(files.iter().filter(|f| f.is_open()).count() <= MAX_FLOOR);
        drop(files);
        assert!(open_files() <= MAX_FLOOR);
    }

    #[test]
    fn a_closed_file_deleted_before_its_sync_has_nothing_to_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.log");
        let segment_file = LazyFile::new(path.clone(), File::create_new(&path).unwrap());
        *segment_file.0.file.lock() = None;
        OPEN.fetch_sub(1, Ordering::Relaxed);
        std::fs::remove_file(&path).unwrap();
        segment_file.sync_data(&crate::RealDisk).unwrap();
        assert!(!path.exists(), "not made again by the sync");
    }

    #[test]
    fn a_renamed_file_opens_again_by_its_new_name() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("a.log.cleaned");
        let new = dir.path().join("a.log");
        let file = File::create_new(&old).unwrap();
        let segment_file = LazyFile::new(old.clone(), file);
        std::fs::rename(&old, &new).unwrap();
        segment_file.set_path(new.clone());
        // Closed, as the budget would close it.
        *segment_file.0.file.lock() = None;
        OPEN.fetch_sub(1, Ordering::Relaxed);
        segment_file.get().unwrap().set_len(7).unwrap();
        assert_eq!(std::fs::metadata(&new).unwrap().len(), 7);
    }
}
