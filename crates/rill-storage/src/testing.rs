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
    failing_syncs: AtomicBool,
    syncs: AtomicU64,
    held: Mutex<bool>,
    released: Condvar,
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

    /// From now on, fdatasync fails with EIO (or succeeds again).
    pub fn set_failing_syncs(&self, failing: bool) {
        self.failing_syncs.store(failing, Ordering::SeqCst);
    }

    /// While held, every fdatasync blocks (as on a very slow disk) until
    /// released, so a test can look at a log between write and sync.
    pub fn hold_syncs(&self, held: bool) {
        *self.held.lock() = held;
        self.released.notify_all();
    }

    /// Successful syncs so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
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
        let mut held = self.held.lock();
        while *held {
            self.released.wait(&mut held);
        }
        drop(held);
        if self.failing_syncs.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::IO.raw_os_error(),
            ));
        }
        RealDisk.sync_data(file)?;
        self.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
