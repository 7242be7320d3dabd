//! Fault injection for tests: a [`Disk`] whose reservations and syncs can
//! be made to fail on demand, as a full disk or a dying one would; that
//! can pretend to be another file system (one whose syncfs writes no file
//! data, say); and that can tell what a power cut at any of its calls
//! would leave on disk (see [`FaultyDisk::track_crashes`]).

mod crash_image;

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};

use crate::disk::{Disk, FileSystemProbe, KernelVersion, RealDisk};
use crate::file_system::syncfs_writes_data;
use crash_image::Tracker;

/// The real disk, unless told to fail, to hold syncs, or to pretend.
/// Thread-safe.
#[derive(Debug, Default)]
pub struct FaultyDisk {
    full: AtomicBool,
    /// Reservations of more bytes than this at once fail with ENOSPC
    /// (0: no limit): a nearly full disk.
    reservation_limit: AtomicU64,
    failing_writes: AtomicBool,
    failing_data_syncs: AtomicBool,
    failing_file_system_syncs: AtomicBool,
    failing_dir_syncs: AtomicBool,
    failing_probe: AtomicBool,
    /// What [`Disk::probe`] answers instead of the truth.
    pretend: Mutex<Option<FileSystemProbe>>,
    syncs: AtomicU64,
    file_system_syncs: AtomicU64,
    dir_syncs: AtomicU64,
    hold: Mutex<Hold>,
    /// Signalled when syncs are released or one starts waiting.
    changed: Condvar,
    /// (device, inode) of the `*.tmp` files made through this disk: the
    /// temporary files of atomic replacements, whose syncs are not held.
    temporaries: Mutex<HashSet<(u64, u64)>>,
    /// What is durable under a root, when tracked. Held across each call
    /// it records, so that a crash image never sees half of one.
    tracker: Mutex<Option<Tracker>>,
}

#[derive(Debug, Default)]
struct Hold {
    held: bool,
    /// Syncs waiting for the hold to end.
    waiting: usize,
}

impl FaultyDisk {
    /// From now on, reservations fail with ENOSPC (or succeed again).
    pub fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::SeqCst);
    }

    /// From now on, a reservation of more than `bytes` at once fails with
    /// ENOSPC, as on a nearly full disk (`None`: any size fits again).
    pub fn set_reservation_limit(&self, bytes: Option<u64>) {
        self.reservation_limit
            .store(bytes.unwrap_or(0), Ordering::SeqCst);
    }

    /// From now on, writes fail with EIO (or succeed again).
    pub fn set_failing_writes(&self, failing: bool) {
        self.failing_writes.store(failing, Ordering::SeqCst);
    }

    /// From now on, fdatasync and syncfs fail with EIO (or succeed again).
    pub fn set_failing_syncs(&self, failing: bool) {
        self.set_failing_data_syncs(failing);
        self.set_failing_file_system_syncs(failing);
    }

    /// From now on, fdatasync alone fails with EIO: as when a file's
    /// writeback failed and a syncfs has already reported it (or succeeds
    /// again).
    pub fn set_failing_data_syncs(&self, failing: bool) {
        self.failing_data_syncs.store(failing, Ordering::SeqCst);
    }

    /// From now on, syncfs alone fails with EIO: as when another file of
    /// the file system failed its writeback (or succeeds again).
    pub fn set_failing_file_system_syncs(&self, failing: bool) {
        self.failing_file_system_syncs
            .store(failing, Ordering::SeqCst);
    }

    /// While held, every fdatasync and syncfs blocks (as on a very slow
    /// disk) until released, so a test can look at a log between write and
    /// sync — except the fdatasync of a `*.tmp` file (the atomic
    /// replacement of a checkpoint or snapshot), so that holding a log's
    /// flush does not also hold, say, the leader-epoch checkpoint that an
    /// append may write before it returns its ticket.
    pub fn hold_syncs(&self, held: bool) {
        self.hold.lock().held = held;
        self.changed.notify_all();
    }

    /// Blocks until a sync is waiting for [`FaultyDisk::hold_syncs`] to
    /// end: the thread that called it is then known to be inside it.
    pub fn wait_for_held_sync(&self) {
        let mut hold = self.hold.lock();
        while hold.waiting == 0 {
            self.changed.wait(&mut hold);
        }
    }

    /// Successful syncs (fdatasync or syncfs) so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    /// Successful syncfs calls so far.
    pub fn file_system_syncs(&self) -> u64 {
        self.file_system_syncs.load(Ordering::SeqCst)
    }

    /// Successful directory syncs so far.
    pub fn dir_syncs(&self) -> u64 {
        self.dir_syncs.load(Ordering::SeqCst)
    }

    /// From now on, fsync of a directory fails with EIO (or succeeds again).
    pub fn set_failing_dir_syncs(&self, failing: bool) {
        self.failing_dir_syncs.store(failing, Ordering::SeqCst);
    }

    /// From now on, probing the file system (statfs) fails with EIO (or
    /// succeeds again).
    pub fn set_failing_probe(&self, failing: bool) {
        self.failing_probe.store(failing, Ordering::SeqCst);
    }

    /// From now on, [`Disk::probe`] says the file system has statfs magic
    /// `magic` and the kernel is `kernel`: a test can run the logs of an
    /// ext4 directory as if they were on FUSE (whose syncfs writes no file
    /// data), or on an old kernel. In a crash image (see
    /// [`FaultyDisk::track_crashes`]) a syncfs then makes nothing durable
    /// unless `magic` is of a file system whose syncfs writes file data.
    pub fn pretend_file_system(&self, magic: u32, kernel: KernelVersion) {
        *self.pretend.lock() = Some(FileSystemProbe {
            magic,
            kernel: Some(kernel),
        });
    }

    /// Starts keeping track, for every call from now on, of what is
    /// durable under `root` (taking everything there now as durable), so
    /// that a crash image can be written: see
    /// [`FaultyDisk::crash_at`]. The model is POSIX's worst case: a
    /// directory entry is durable only once its directory was synced (or a
    /// syncfs of a file system whose syncfs is real), a file's data only
    /// as of its last fdatasync.
    pub fn track_crashes(&self, root: &Path) -> io::Result<()> {
        *self.tracker.lock() = Some(Tracker::new(root)?);
        Ok(())
    }

    /// Calls to the disk since [`FaultyDisk::track_crashes`].
    pub fn ops(&self) -> u64 {
        self.tracker.lock().as_ref().map_or(0, Tracker::ops)
    }

    /// Writes what a power cut would leave under the tracked root into
    /// `image` (a directory that must not exist), just before call number
    /// `op` (counted from 0 since [`FaultyDisk::track_crashes`]) runs:
    /// none of the directory changes no sync covered. Also writes, into
    /// each of [`FaultyDisk::reordered_images`] of it, the same moment
    /// with a different pseudo-random subset of those changes on disk
    /// (file systems may write them in any order). The calls go on afterwards as if nothing
    /// happened: a test knows an acknowledgement came before the crash if
    /// [`FaultyDisk::crashed`] was still false after it.
    pub fn crash_at(&self, op: u64, image: &Path) {
        if let Some(tracker) = self.tracker.lock().as_mut() {
            tracker.crash_at(op, image);
        }
    }

    /// Where [`FaultyDisk::crash_at`] writes the images with a subset of
    /// the unsynced changes on disk: `image` with `-reordered-0`,
    /// `-reordered-1`, ... appended.
    pub fn reordered_images(image: &Path) -> Vec<std::path::PathBuf> {
        crash_image::reordered(image)
    }

    /// Whether the crash image of [`FaultyDisk::crash_at`] was written.
    pub fn crashed(&self) -> bool {
        self.tracker.lock().as_ref().is_some_and(Tracker::crashed)
    }

    /// Writes what a power cut now would leave under the tracked root
    /// into `image` (a directory that must not exist).
    pub fn crash_image(&self, image: &Path) -> io::Result<()> {
        match self.tracker.lock().as_ref() {
            Some(tracker) => tracker.write_image(image, |_| false),
            None => Err(io::Error::other("crashes are not tracked")),
        }
    }

    /// Whether a syncfs here makes everything durable, as the crash image
    /// counts it: not on a file system pretended to have a syncfs that
    /// writes no file data.
    fn syncfs_is_real(&self) -> bool {
        self.pretend
            .lock()
            .is_none_or(|probe| syncfs_writes_data(probe.magic))
    }

    /// Runs `call` under the tracker's lock, counted as one step (the
    /// crash image is written first if it is the step to crash before),
    /// and lets `record` note its effect.
    fn tracked<T>(
        &self,
        call: impl FnOnce(Option<&mut Tracker>) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut tracker = self.tracker.lock();
        match tracker.as_mut() {
            Some(tracker) => {
                tracker.step()?;
                call(Some(tracker))
            }
            None => call(None),
        }
    }

    /// Waits while syncs are held, then fails as told or runs `sync`.
    fn sync(
        &self,
        file_system: bool,
        holdable: bool,
        sync: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        if holdable {
            let mut hold = self.hold.lock();
            hold.waiting += 1;
            self.changed.notify_all();
            while hold.held {
                self.changed.wait(&mut hold);
            }
            hold.waiting -= 1;
        }
        let failing = if file_system {
            self.failing_file_system_syncs.load(Ordering::SeqCst)
        } else {
            self.failing_data_syncs.load(Ordering::SeqCst)
        };
        if failing {
            return Err(eio());
        }
        sync()?;
        self.syncs.fetch_add(1, Ordering::SeqCst);
        if file_system {
            self.file_system_syncs.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error())
}

impl Disk for FaultyDisk {
    fn reserve(&self, file: &File, from: u64, to: u64) -> io::Result<()> {
        self.tracked(|_| {
            let limit = self.reservation_limit.load(Ordering::SeqCst);
            let too_big = limit > 0 && to.saturating_sub(from) > limit;
            if (self.full.load(Ordering::SeqCst) || too_big) && to > from {
                return Err(io::Error::from_raw_os_error(
                    rustix::io::Errno::NOSPC.raw_os_error(),
                ));
            }
            RealDisk.reserve(file, from, to)
        })
    }

    fn write_at(&self, file: &File, parts: &[&[u8]], offset: u64) -> io::Result<()> {
        self.tracked(|_| {
            if self.failing_writes.load(Ordering::SeqCst) {
                return Err(eio());
            }
            RealDisk.write_at(file, parts, offset)
        })
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        let temporary = file
            .metadata()
            .is_ok_and(|m| self.temporaries.lock().contains(&(m.dev(), m.ino())));
        self.sync(false, !temporary, || {
            self.tracked(|tracker| {
                RealDisk.sync_data(file)?;
                match tracker {
                    Some(tracker) => tracker.synced_data(file),
                    None => Ok(()),
                }
            })
        })
    }

    fn sync_file_system(&self, file: &File) -> io::Result<()> {
        let real = self.syncfs_is_real();
        self.sync(true, true, || {
            self.tracked(|tracker| {
                RealDisk.sync_file_system(file)?;
                match tracker {
                    Some(tracker) if real => tracker.all_durable(),
                    _ => Ok(()),
                }
            })
        })
    }

    fn create_file(&self, path: &Path) -> io::Result<File> {
        self.tracked(|tracker| {
            let existed = path.exists();
            let file = RealDisk.create_file(path)?;
            if path.extension().is_some_and(|e| e == "tmp") {
                let meta = file.metadata()?;
                self.temporaries.lock().insert((meta.dev(), meta.ino()));
            }
            if let Some(tracker) = tracker {
                tracker.created_file(path, existed, &file);
            }
            Ok(file)
        })
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.tracked(|tracker| {
            RealDisk.create_dir(path)?;
            if let Some(tracker) = tracker {
                tracker.created_dir(path);
            }
            Ok(())
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.tracked(|tracker| match tracker {
            Some(tracker) => {
                let replaced = tracker.replaced_by_rename(to);
                RealDisk.rename(from, to)?;
                tracker.renamed(from, to, replaced);
                Ok(())
            }
            None => RealDisk.rename(from, to),
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.tracked(|tracker| match tracker {
            Some(tracker) => {
                let data = tracker.removing_file(path);
                RealDisk.remove_file(path)?;
                tracker.removed_file(path, data);
                Ok(())
            }
            None => RealDisk.remove_file(path),
        })
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.tracked(|tracker| match tracker {
            Some(tracker) => {
                let tree = tracker.removing_dir(path)?;
                RealDisk.remove_dir_all(path)?;
                tracker.removed_dir(path, tree);
                Ok(())
            }
            None => RealDisk.remove_dir_all(path),
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.tracked(|tracker| {
            if self.failing_dir_syncs.load(Ordering::SeqCst) {
                return Err(eio());
            }
            RealDisk.sync_dir(dir)?;
            self.dir_syncs.fetch_add(1, Ordering::SeqCst);
            if let Some(tracker) = tracker {
                tracker.synced_dir(dir);
            }
            Ok(())
        })
    }

    fn probe(&self, dir: &File) -> io::Result<FileSystemProbe> {
        if self.failing_probe.load(Ordering::SeqCst) {
            return Err(eio());
        }
        match *self.pretend.lock() {
            Some(probe) => Ok(probe),
            None => RealDisk.probe(dir),
        }
    }
}
