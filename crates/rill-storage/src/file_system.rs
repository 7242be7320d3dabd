//! The file systems that logs live on, as the flusher syncs them, and how
//! each is synced: the logs of one file system due in the same flush
//! round are made durable by one syncfs, not one fdatasync per file, where
//! that syncfs is a real sync; elsewhere each file is fdatasynced.
//!
//! On a virtual disk each fdatasync costs ~40 µs of CPU and a journal
//! commit of its own (docs/benchmarks.md), so with many partitions one
//! call per round is what keeps `fsync` cheap. But syncfs is only as good
//! as the file system's `sync_fs`: FUSE (except virtiofs) and others
//! return 0 from it having written no file data, and before Linux 5.8
//! syncfs reported no writeback error at all. So the mode is decided once
//! per file system, when the first log on it opens ([`SyncMode`]).
//!
//! syncfs reports a writeback error of any file of the file system, once
//! per open file, so it cannot say whose data was hit. Each file system
//! therefore keeps one handle, opened before any log on it took a write,
//! that sees every later error; a failed syncfs bumps the file system's
//! error epoch, and each log on it then fdatasyncs its own files (which
//! report their own errors) before a syncfs vouches for it again.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::disk::{Disk, FileSystemProbe, KernelVersion};
use crate::error::ConfigError;
use crate::slow_syncs::{SlowSyncs, Told};

/// How the logs of one file system are made durable in a flush round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// One syncfs for every log due (one fdatasync when a single file is
    /// due): only on file systems known to write file data on syncfs
    /// (ext4, xfs, btrfs, f2fs), on Linux 5.8 or later, where syncfs
    /// reports writeback errors.
    Syncfs,
    /// fdatasync of each file due, and fsync of each directory changed.
    PerFile,
}

/// `log.flush.sync.mode`: whether Rill may use syncfs where it is a real
/// sync (`auto`, the default) or must sync file by file (`per-file`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncModeSetting {
    #[default]
    Auto,
    PerFile,
}

impl SyncModeSetting {
    /// The setting's name, as a broker property.
    pub const PROPERTY: &'static str = "log.flush.sync.mode";

    pub fn as_str(self) -> &'static str {
        match self {
            SyncModeSetting::Auto => "auto",
            SyncModeSetting::PerFile => "per-file",
        }
    }
}

impl FromStr for SyncModeSetting {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<SyncModeSetting, ConfigError> {
        match text.trim() {
            "auto" => Ok(SyncModeSetting::Auto),
            "per-file" => Ok(SyncModeSetting::PerFile),
            other => Err(ConfigError::NotOneOf {
                name: SyncModeSetting::PROPERTY,
                value: other.to_string(),
                expected: "auto or per-file",
            }),
        }
    }
}

/// The sync mode chosen for a file system, and why (for the start-up log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncChoice {
    pub mode: SyncMode,
    /// `ext4, Linux 6.18`, `fuse: syncfs does not write file data`, ...
    pub reason: String,
}

impl fmt::Display for SyncChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            SyncMode::Syncfs => write!(f, "one syncfs per flush round ({})", self.reason),
            SyncMode::PerFile => write!(f, "per-file fdatasync ({})", self.reason),
        }
    }
}

/// The first kernel whose syncfs reports writeback errors (commit
/// 735e4ae5ba28, "vfs: track per-sb writeback errors and report them to
/// syncfs"); before it, a failed write-back went unreported.
pub const SYNCFS_REPORTS_ERRORS_SINCE: KernelVersion = KernelVersion { major: 5, minor: 8 };

/// statfs magics of the file systems whose `sync_fs` writes file data and
/// commits metadata (journal, log or checkpoint): ext2/3/4, xfs, btrfs, f2fs.
const SYNCFS_FILE_SYSTEMS: [(u32, &str); 4] = [
    (0xEF53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0xF2F5_2010, "f2fs"),
];

/// FUSE_SUPER_MAGIC: FUSE forwards syncfs only for virtiofs.
pub const FUSE_MAGIC: u32 = 0x6573_5546;

/// Other magics worth naming in the start-up log.
const OTHER_FILE_SYSTEMS: [(u32, &str); 6] = [
    (FUSE_MAGIC, "fuse"),
    (0x0102_1994, "tmpfs"),
    (0x6969, "nfs"),
    (0x794C_7630, "overlayfs"),
    (0x2FC1_2FC1, "zfs"),
    (0xFF53_4D42, "cifs"),
];

/// The size of the file system holding `dir`, and the bytes an
/// unprivileged writer may still use of it (statvfs's blocks and
/// available blocks).
pub fn space_of(dir: &Path) -> io::Result<(u64, u64)> {
    let stat = rustix::fs::statvfs(dir)?;
    let block = stat.f_frsize;
    Ok((
        stat.f_blocks.saturating_mul(block),
        stat.f_bavail.saturating_mul(block),
    ))
}

/// Whether syncfs on the file system with this statfs magic writes file
/// data and metadata (whatever the kernel): ext4, xfs, btrfs, f2fs.
pub fn syncfs_writes_data(magic: u32) -> bool {
    SYNCFS_FILE_SYSTEMS.iter().any(|(m, _)| *m == magic)
}

/// A name for the file system with this statfs magic.
pub fn file_system_name(magic: u32) -> String {
    SYNCFS_FILE_SYSTEMS
        .iter()
        .chain(&OTHER_FILE_SYSTEMS)
        .find(|(m, _)| *m == magic)
        .map_or_else(
            || format!("file system {magic:#x}"),
            |(_, name)| (*name).to_string(),
        )
}

/// Chooses how a file system is synced: one syncfs per round only where
/// syncfs is a real sync that reports errors, per-file everywhere else.
pub fn choose_sync_mode(probe: &FileSystemProbe, setting: SyncModeSetting) -> SyncChoice {
    let name = file_system_name(probe.magic);
    let per_file = |reason: String| SyncChoice {
        mode: SyncMode::PerFile,
        reason,
    };
    if setting == SyncModeSetting::PerFile {
        return per_file(format!("{name}; {}=per-file", SyncModeSetting::PROPERTY));
    }
    if probe.magic == FUSE_MAGIC {
        return per_file(format!("{name}: syncfs does not write file data"));
    }
    if !syncfs_writes_data(probe.magic) {
        return per_file(format!("{name}: syncfs is not known to write file data"));
    }
    match probe.kernel {
        Some(kernel) if kernel >= SYNCFS_REPORTS_ERRORS_SINCE => SyncChoice {
            mode: SyncMode::Syncfs,
            reason: format!("{name}, Linux {kernel}"),
        },
        Some(kernel) => per_file(format!(
            "{name}, Linux {kernel}: syncfs reports writeback errors only from Linux {SYNCFS_REPORTS_ERRORS_SINCE}"
        )),
        None => per_file(format!(
            "{name}: the kernel's version does not parse, and syncfs reports writeback errors only from Linux {SYNCFS_REPORTS_ERRORS_SINCE}"
        )),
    }
}

/// One file system holding log directories, as seen through one disk.
/// Thread-safe: flusher threads share it, and its syncs are serialized.
#[derive(Debug)]
pub(crate) struct FileSystem {
    /// `st_dev` of the directories on it.
    pub(crate) device: u64,
    /// The disk its logs sync through.
    disk: Arc<dyn Disk>,
    /// A directory on it, open since before any log on it took a write;
    /// `None` if it could not be opened (then `sync` is an error).
    handle: Option<File>,
    /// How its logs are synced, or why that could not be established
    /// (its logs then open offline for writes).
    sync: Result<SyncChoice, String>,
    /// Failed syncfs calls so far. Held across each syncfs and the bump
    /// after a failure, so that no round trusts a syncfs whose error a
    /// concurrent one took.
    error_epoch: Mutex<u64>,
    /// Whether the last reservation here that mattered ran out of space:
    /// said once when it does, once when one succeeds again.
    full: AtomicBool,
    /// Whether its syncs are slow: said once when they become so, once
    /// when they are quick again.
    slow_syncs: Mutex<SlowSyncs>,
}

impl FileSystem {
    /// The current error epoch: what a new log on this file system starts
    /// having checked (its files had no writes before).
    pub(crate) fn error_epoch(&self) -> u64 {
        *self.error_epoch.lock()
    }

    /// How logs here are synced, or why durability cannot be established.
    pub(crate) fn sync_choice(&self) -> Result<&SyncChoice, &str> {
        self.sync.as_ref().map_err(String::as_str)
    }

    /// A log in `dir` could not reserve room here: logged (once, until
    /// [`FileSystem::has_room`]) so that an operator hears the disk is
    /// full, not every refused append. Whether this was news.
    pub(crate) fn out_of_space(&self, dir: &Path) -> bool {
        let news = !self.full.swap(true, Ordering::SeqCst);
        if news {
            tracing::error!(device = self.device, dir = %dir.display(),
                "the file system of this log directory is full: appends that need more room are refused until space is freed");
        }
        news
    }

    /// A log in `dir` reserved room here: if the file system was full,
    /// logged once. Whether this was news.
    pub(crate) fn has_room(&self, dir: &Path) -> bool {
        let news = self.full.swap(false, Ordering::SeqCst);
        if news {
            tracing::info!(device = self.device, dir = %dir.display(),
                "the file system of this log directory has room again");
        }
        news
    }

    /// Whether a round may sync several files here with one syncfs.
    pub(crate) fn uses_syncfs(&self) -> bool {
        matches!(&self.sync, Ok(choice) if choice.mode == SyncMode::Syncfs)
    }

    /// Syncs the whole file system. Returns the error epoch after it: a
    /// log may take the sync as its own only if the result is `Ok` and the
    /// log has checked its files at that epoch. On a file system not
    /// synced with syncfs ([`SyncMode::Syncfs`]), or without a handle, no
    /// syncfs is made and the result is an error: its logs sync file by
    /// file instead, as after a failed syncfs.
    pub(crate) fn sync(&self) -> (io::Result<()>, u64) {
        let handle = match &self.handle {
            Some(handle) if self.uses_syncfs() => handle,
            _ => {
                let refused = io::Error::other(format!(
                    "syncfs asked of device {}, whose logs sync file by file",
                    self.device
                ));
                return (Err(refused), *self.error_epoch.lock());
            }
        };
        let mut epoch = self.error_epoch.lock();
        let started = Instant::now();
        let result = self.disk.sync_file_system(handle);
        self.note_sync(started, "syncfs");
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

impl FileSystem {
    /// Notes a sync (`what`: syncfs, fdatasync) of this file system begun
    /// at `started`: at debug if it was slowish, and once at WARN when
    /// syncs become really slow, once at INFO when they are quick again
    /// (slow_syncs.rs).
    pub(crate) fn note_sync(&self, started: Instant, what: &str) {
        let took = started.elapsed();
        if took > SLOW_SYNC {
            tracing::debug!(
                ms = took.as_millis() as u64,
                what,
                device = self.device,
                "slow sync"
            );
        }
        let told = self.slow_syncs.lock().observe(took, Instant::now());
        match told {
            Some(Told::Started { took }) => tracing::warn!(
                device = self.device,
                what,
                ms = took.as_millis() as u64,
                "syncs of this file system are slow: acknowledged writes wait for them \
                 (the disk is overloaded, failing, or throttled)"
            ),
            Some(Told::Ended {
                slow,
                worst,
                lasted,
            }) => tracing::info!(
                device = self.device,
                slow_syncs = slow,
                worst_ms = worst.as_millis() as u64,
                lasted_ms = lasted.as_millis() as u64,
                "syncs of this file system are quick again"
            ),
            None => {}
        }
    }
}

/// The file systems a flusher has seen, found by the device of a log
/// directory and the disk its logs use. Thread-safe.
#[derive(Debug, Default)]
pub(crate) struct FileSystems {
    known: Mutex<Vec<Arc<FileSystem>>>,
}

impl FileSystems {
    /// The file system holding `dir`, as synced through `disk`; if it is
    /// the first log directory seen there, its handle is `dir` itself and
    /// its sync mode is chosen now (under `setting`). Fails only if `dir`
    /// cannot be looked at; a file system whose sync mode cannot be
    /// established is returned with the reason (see
    /// [`FileSystem::sync_choice`]).
    pub(crate) fn of(
        &self,
        dir: &Path,
        disk: &Arc<dyn Disk>,
        setting: SyncModeSetting,
    ) -> io::Result<Arc<FileSystem>> {
        let device = std::fs::metadata(dir)?.dev();
        let mut known = self.known.lock();
        if let Some(found) = known
            .iter()
            .find(|fs| fs.device == device && same_disk(&fs.disk, disk))
        {
            return Ok(Arc::clone(found));
        }
        let (handle, sync) = match File::open(dir) {
            Ok(handle) => {
                let sync = disk
                    .probe(&handle)
                    .map(|probe| choose_sync_mode(&probe, setting))
                    .map_err(|e| format!("cannot statfs {}: {e}", dir.display()));
                (Some(handle), sync)
            }
            Err(e) => (None, Err(format!("cannot open {}: {e}", dir.display()))),
        };
        match &sync {
            Ok(choice) => {
                tracing::debug!(device, dir = %dir.display(), sync = %choice, "file system seen")
            }
            Err(reason) => {
                tracing::error!(device, dir = %dir.display(), %reason, "cannot establish how to make this file system durable; its logs are offline for writes")
            }
        }
        let file_system = Arc::new(FileSystem {
            device,
            disk: Arc::clone(disk),
            handle,
            sync,
            error_epoch: Mutex::new(0),
            full: AtomicBool::new(false),
            slow_syncs: Mutex::new(SlowSyncs::default()),
        });
        known.push(Arc::clone(&file_system));
        Ok(file_system)
    }
}

/// Whether two handles name the same disk object.
fn same_disk(a: &Arc<dyn Disk>, b: &Arc<dyn Disk>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FaultyDisk;

    fn faulty() -> (Arc<FaultyDisk>, Arc<dyn Disk>) {
        let disk = Arc::new(FaultyDisk::default());
        disk.pretend_file_system(
            0xEF53,
            KernelVersion {
                major: 6,
                minor: 18,
            },
        );
        let dyn_disk: Arc<dyn Disk> = disk.clone();
        (disk, dyn_disk)
    }

    #[test]
    fn a_full_file_system_is_news_once_and_its_room_again_once() {
        let dir = tempfile::tempdir().unwrap();
        let (_, disk) = faulty();
        let file_system = FileSystems::default()
            .of(dir.path(), &disk, SyncModeSetting::Auto)
            .unwrap();
        assert!(!file_system.has_room(dir.path()), "room was never news");
        assert!(file_system.out_of_space(dir.path()));
        assert!(!file_system.out_of_space(dir.path()), "said once");
        assert!(file_system.has_room(dir.path()));
        assert!(!file_system.has_room(dir.path()), "said once");
        assert!(file_system.out_of_space(dir.path()), "full again is news");
    }

    #[test]
    fn directories_of_one_file_system_share_it() {
        let top = tempfile::tempdir().unwrap();
        let (a, b) = (top.path().join("a"), top.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let file_systems = FileSystems::default();
        let (_, disk) = faulty();
        let first = file_systems.of(&a, &disk, SyncModeSetting::Auto).unwrap();
        assert!(Arc::ptr_eq(
            &first,
            &file_systems.of(&b, &disk, SyncModeSetting::Auto).unwrap()
        ));
        let (_, other_disk) = faulty();
        assert!(
            !Arc::ptr_eq(
                &first,
                &file_systems
                    .of(&b, &other_disk, SyncModeSetting::Auto)
                    .unwrap()
            ),
            "each disk syncs on its own"
        );
        assert!(
            file_systems
                .of(&top.path().join("missing"), &disk, SyncModeSetting::Auto)
                .is_err()
        );
    }

    #[test]
    fn a_failed_sync_moves_the_error_epoch_on() {
        let dir = tempfile::tempdir().unwrap();
        let (faulty, disk) = faulty();
        let file_system = FileSystems::default()
            .of(dir.path(), &disk, SyncModeSetting::Auto)
            .unwrap();
        let (result, epoch) = file_system.sync();
        assert!(result.is_ok());
        assert_eq!(epoch, 0);
        faulty.set_failing_file_system_syncs(true);
        let (result, epoch) = file_system.sync();
        assert!(result.is_err());
        assert_eq!(epoch, 1);
        assert_eq!(file_system.error_epoch(), 1);
    }

    fn probe(magic: u32, major: u32, minor: u32) -> FileSystemProbe {
        FileSystemProbe {
            magic,
            kernel: Some(KernelVersion { major, minor }),
        }
    }

    #[test]
    fn syncfs_only_where_it_writes_data_and_reports_errors() {
        let auto = SyncModeSetting::Auto;
        let ext4 = choose_sync_mode(&probe(0xEF53, 6, 18), auto);
        assert_eq!(ext4.mode, SyncMode::Syncfs);
        assert_eq!(
            ext4.to_string(),
            "one syncfs per flush round (ext4, Linux 6.18)"
        );
        for magic in [0x5846_5342, 0x9123_683E, 0xF2F5_2010] {
            assert_eq!(
                choose_sync_mode(&probe(magic, 5, 8), auto).mode,
                SyncMode::Syncfs
            );
        }
        let fuse = choose_sync_mode(&probe(FUSE_MAGIC, 6, 18), auto);
        assert_eq!(fuse.mode, SyncMode::PerFile);
        assert_eq!(
            fuse.to_string(),
            "per-file fdatasync (fuse: syncfs does not write file data)"
        );
        let tmpfs = choose_sync_mode(&probe(0x0102_1994, 6, 18), auto);
        assert_eq!(tmpfs.mode, SyncMode::PerFile);
        let old = choose_sync_mode(&probe(0xEF53, 5, 4), auto);
        assert_eq!(old.mode, SyncMode::PerFile);
        assert!(old.reason.contains("Linux 5.4"), "{old}");
        let unknown_kernel = FileSystemProbe {
            magic: 0xEF53,
            kernel: None,
        };
        assert_eq!(
            choose_sync_mode(&unknown_kernel, auto).mode,
            SyncMode::PerFile
        );
        let forced = choose_sync_mode(&probe(0xEF53, 6, 18), SyncModeSetting::PerFile);
        assert_eq!(forced.mode, SyncMode::PerFile);
        assert_eq!(
            forced.to_string(),
            "per-file fdatasync (ext4; log.flush.sync.mode=per-file)"
        );
    }

    #[test]
    fn the_setting_parses_from_its_two_words() {
        assert_eq!("auto".parse(), Ok(SyncModeSetting::Auto));
        assert_eq!("per-file".parse(), Ok(SyncModeSetting::PerFile));
        assert!("syncfs".parse::<SyncModeSetting>().is_err());
    }

    #[test]
    fn a_file_system_that_cannot_be_probed_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let (faulty, disk) = faulty();
        faulty.set_failing_probe(true);
        let file_system = FileSystems::default()
            .of(dir.path(), &disk, SyncModeSetting::Auto)
            .unwrap();
        let reason = file_system.sync_choice().unwrap_err();
        assert!(reason.contains("cannot statfs"), "{reason}");
        assert!(!file_system.uses_syncfs());
    }
}
