//! The file systems that logs live on, as the flusher syncs them: the logs
//! of one file system due in the same flush round are made durable by one
//! syncfs, not one fdatasync per file. On a virtual disk each fdatasync
//! costs ~40 µs of CPU and a journal commit of its own (docs/benchmarks.md),
//! so with many partitions one call per round is what keeps `fsync` cheap.
//!
//! syncfs reports a writeback error of any file of the file system, once
//! per open file, so it cannot say whose data was hit. Each file system
//! therefore keeps one handle, opened before any log on it took a write,
//! that sees every later error; a failed syncfs bumps the file system's
//! error epoch, and each log on it then fdatasyncs its own files (which
//! report their own errors) before a syncfs vouches for it again.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::disk::Disk;

/// One file system holding log directories. Thread-safe: flusher threads
/// share it, and its syncs are serialized.
#[derive(Debug)]
pub(crate) struct FileSystem {
    /// `st_dev` of the directories on it.
    pub(crate) device: u64,
    /// A directory on it, open since before any log on it took a write.
    handle: File,
    /// Failed syncfs calls so far. Held across each syncfs and the bump
    /// after a failure, so that no round trusts a syncfs whose error a
    /// concurrent one took.
    error_epoch: Mutex<u64>,
}

impl FileSystem {
    /// The current error epoch: what a new log on this file system starts
    /// having checked (its files had no writes before).
    pub(crate) fn error_epoch(&self) -> u64 {
        *self.error_epoch.lock()
    }

    /// Syncs the whole file system through `disk`. Returns the error epoch
    /// after it: a log may take the sync as its own only if the result is
    /// `Ok` and the log has checked its files at that epoch.
    pub(crate) fn sync(&self, disk: &dyn Disk) -> (io::Result<()>, u64) {
        let mut epoch = self.error_epoch.lock();
        let started = Instant::now();
        let result = disk.sync_file_system(&self.handle);
        note_slow_sync(started, "syncfs", self.device);
        if let Err(error) = &result {
            *epoch += 1;
            tracing::warn!(device = self.device, %error, epoch = *epoch, "syncfs failed; each log checks its own files");
        }
        (result, *epoch)
    }
}

/// A sync that takes longer than this is logged (at debug): on a shared
/// disk, the latency tails of `fsync` topics are these.
const SLOW_SYNC: Duration = Duration::from_millis(10);

/// Logs a sync begun at `started` if it was slow.
pub(crate) fn note_slow_sync(started: Instant, what: &str, device: u64) {
    let took = started.elapsed();
    if took > SLOW_SYNC {
        tracing::debug!(ms = took.as_millis() as u64, what, device, "slow sync");
    }
}

/// The file systems a flusher has seen, found by the device of a log
/// directory. Thread-safe.
#[derive(Debug, Default)]
pub(crate) struct FileSystems {
    known: Mutex<Vec<Arc<FileSystem>>>,
}

impl FileSystems {
    /// The file system holding `dir`, whose handle is `dir` itself if it
    /// is the first log directory seen there.
    pub(crate) fn of(&self, dir: &Path) -> io::Result<Arc<FileSystem>> {
        let device = std::fs::metadata(dir)?.dev();
        let mut known = self.known.lock();
        if let Some(found) = known.iter().find(|fs| fs.device == device) {
            return Ok(Arc::clone(found));
        }
        let file_system = Arc::new(FileSystem {
            device,
            handle: File::open(dir)?,
            error_epoch: Mutex::new(0),
        });
        known.push(Arc::clone(&file_system));
        Ok(file_system)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FaultyDisk;

    #[test]
    fn directories_of_one_file_system_share_it() {
        let top = tempfile::tempdir().unwrap();
        let (a, b) = (top.path().join("a"), top.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let file_systems = FileSystems::default();
        let first = file_systems.of(&a).unwrap();
        assert!(Arc::ptr_eq(&first, &file_systems.of(&b).unwrap()));
        assert!(file_systems.of(&top.path().join("missing")).is_err());
    }

    #[test]
    fn a_failed_sync_moves_the_error_epoch_on() {
        let dir = tempfile::tempdir().unwrap();
        let file_system = FileSystems::default().of(dir.path()).unwrap();
        let disk = FaultyDisk::default();
        let (result, epoch) = file_system.sync(&disk);
        assert!(result.is_ok());
        assert_eq!(epoch, 0);
        disk.set_failing_file_system_syncs(true);
        let (result, epoch) = file_system.sync(&disk);
        assert!(result.is_err());
        assert_eq!(epoch, 1);
        assert_eq!(file_system.error_epoch(), 1);
    }
}
