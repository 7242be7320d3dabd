//! Fault injection for tests: a [`Disk`] whose reservations and syncs can
//! be made to fail on demand, as a full disk or a dying one would.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};

use crate::disk::{Disk, RealDisk};

/// The real disk, unless told to fail or to hold syncs. Thread-safe.
#[derive(Debug, Default)]
pub struct FaultyDisk {
    full: AtomicBool,
    failing_writes: AtomicBool,
    failing_data_syncs: AtomicBool,
    failing_file_system_syncs: AtomicBool,
    syncs: AtomicU64,
    hold: Mutex<Hold>,
    /// Signalled when syncs are released or one starts waiting.
    changed: Condvar,
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

    /// While held, every fdatasync and syncfs blocks (as on a very slow disk) until
    /// released, so a test can look at a log between write and sync.
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

    /// Waits while syncs are held, then fails as told or runs `sync`.
    fn sync(&self, file_system: bool, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let mut hold = self.hold.lock();
        hold.waiting += 1;
        self.changed.notify_all();
        while hold.held {
            self.changed.wait(&mut hold);
        }
        hold.waiting -= 1;
        drop(hold);
        let failing = if file_system {
            self.failing_file_system_syncs.load(Ordering::SeqCst)
        } else {
            self.failing_data_syncs.load(Ordering::SeqCst)
        };
        if failing {
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::IO.raw_os_error(),
            ));
        }
        sync()?;
        self.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl Disk for FaultyDisk {
    fn reserve(&self, file: &File, from: u64, to: u64) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) && to > from {
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::NOSPC.raw_os_error(),
            ));
        }
        RealDisk.reserve(file, from, to)
    }

    fn write_at(&self, file: &File, parts: &[&[u8]], offset: u64) -> io::Result<()> {
        if self.failing_writes.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::IO.raw_os_error(),
            ));
        }
        RealDisk.write_at(file, parts, offset)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        self.sync(false, || RealDisk.sync_data(file))
    }

    fn sync_file_system(&self, file: &File) -> io::Result<()> {
        self.sync(true, || RealDisk.sync_file_system(file))
    }
}
