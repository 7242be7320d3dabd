//! A mounted power-cut file system, and the cut as its user sees it:
//! unmount, drop what was not durable, mount again at the same place.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, MountOption};
use parking_lot::Mutex;
use rustix::mount::UnmountFlags;

use crate::cut::{self, CutError, CutReport, Tear};
use crate::fs::PowerCutFilesystem;
use crate::state::{Counters, HIDDEN, State, UNDO_MEMORY_BYTES_MAX};

/// The FUSE device; without it there is nothing to mount.
pub const FUSE_DEVICE: &str = "/dev/fuse";

/// How long an unmount waits for the last files on the mount to close
/// (a killed process's files are released asynchronously).
const UNMOUNT_WAIT: Duration = Duration::from_secs(10);

/// Between two tries of a busy unmount.
const UNMOUNT_RETRY: Duration = Duration::from_millis(10);

/// A mount that could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    #[error("{FUSE_DEVICE} is missing: this kernel or container offers no FUSE")]
    NoFuseDevice,
    #[error("the {what} directory {path}: {source}")]
    Directory {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("mounting FUSE at {mountpoint} (mount(2) of type fuse, which needs root): {source}")]
    Mount {
        mountpoint: PathBuf,
        source: io::Error,
    },
}

/// What is not durable yet: what a cut now would drop.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pending {
    /// Files written since their last fsync.
    pub files: u64,
    /// Bytes of synced content kept to undo their writes.
    pub undo_memory_bytes: u64,
    /// Directory entry changes no fsync of their directory covered.
    pub dir_ops: u64,
    /// Since the mount (the last cut).
    pub counters: Counters,
}

/// A power-cut file system mounted at `mountpoint` over `backing`.
///
/// Not thread-safe: one owner mounts, cuts and unmounts it. Dropping it
/// unmounts it, leaving the backing directory as it is (a clean unmount:
/// everything written counts as synced).
pub struct PowerCutFs {
    backing: PathBuf,
    mountpoint: PathBuf,
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
}

impl std::fmt::Debug for PowerCutFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerCutFs")
            .field("backing", &self.backing)
            .field("mountpoint", &self.mountpoint)
            .field("mounted", &self.session.is_some())
            .finish()
    }
}

fn directory(what: &'static str, path: &Path) -> Result<PathBuf, MountError> {
    let canonical = path
        .canonicalize()
        .map_err(|source| MountError::Directory {
            what,
            path: path.to_path_buf(),
            source,
        })?;
    if !canonical.is_dir() {
        return Err(MountError::Directory {
            what,
            path: path.to_path_buf(),
            source: io::Error::from(io::ErrorKind::NotADirectory),
        });
    }
    Ok(canonical)
}

/// Empties the hidden directory (left over by a mount that died) and
/// makes its trash.
fn fresh_hidden(backing: &Path) -> Result<(), MountError> {
    let hidden = backing.join(HIDDEN);
    let error = |source| MountError::Directory {
        what: "hidden",
        path: hidden.clone(),
        source,
    };
    match std::fs::remove_dir_all(&hidden) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    std::fs::create_dir_all(hidden.join("trash")).map_err(error)
}

fn start(state: &Arc<Mutex<State>>, mountpoint: &Path) -> Result<BackgroundSession, MountError> {
    let filesystem = PowerCutFilesystem {
        state: Arc::clone(state),
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![MountOption::FSName("rill-powercut-fs".into())];
    // One thread: the operations take one lock anyway, and arrive in the
    // order the kernel sent them.
    config.n_threads = Some(1);
    fuser::spawn_mount(filesystem, mountpoint, &config).map_err(|source| MountError::Mount {
        mountpoint: mountpoint.to_path_buf(),
        source,
    })
}

/// Unmounts `mountpoint`, waiting up to [`UNMOUNT_WAIT`] while it is busy.
fn unmount_waiting(mountpoint: &Path) -> Result<(), CutError> {
    let started = Instant::now();
    loop {
        match rustix::mount::unmount(mountpoint, UnmountFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::BUSY) if started.elapsed() < UNMOUNT_WAIT => {
                // Polling for the last release of a killed process.
                std::thread::sleep(UNMOUNT_RETRY);
            }
            Err(rustix::io::Errno::BUSY) => {
                return Err(CutError::Busy {
                    mountpoint: mountpoint.to_path_buf(),
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            Err(errno) => {
                return Err(CutError::Unmount {
                    mountpoint: mountpoint.to_path_buf(),
                    source: io::Error::from(errno),
                });
            }
        }
    }
}

impl PowerCutFs {
    /// Mounts a power-cut file system at `mountpoint` over `backing`, whose
    /// content counts as durable. Needs root and [`FUSE_DEVICE`].
    pub fn mount(backing: &Path, mountpoint: &Path) -> Result<PowerCutFs, MountError> {
        if !Path::new(FUSE_DEVICE).exists() {
            return Err(MountError::NoFuseDevice);
        }
        let backing = directory("backing", backing)?;
        let mountpoint = directory("mount", mountpoint)?;
        fresh_hidden(&backing)?;
        let state = State::new(&backing).map_err(|source| MountError::Directory {
            what: "backing",
            path: backing.clone(),
            source,
        })?;
        let state = Arc::new(Mutex::new(state));
        let session = start(&state, &mountpoint)?;
        Ok(PowerCutFs {
            backing,
            mountpoint,
            state,
            session: Some(session),
        })
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// The most bytes of synced content the undo logs hold before writes
    /// fail with ENOSPC.
    pub fn undo_memory_bytes_max() -> u64 {
        UNDO_MEMORY_BYTES_MAX
    }

    /// What a cut now would drop.
    pub fn pending(&self) -> Pending {
        let state = self.state.lock();
        Pending {
            files: state.files.len() as u64,
            undo_memory_bytes: state.files.values().map(|u| u.memory_bytes()).sum(),
            dir_ops: state.namespace.pending() as u64,
            counters: state.counters,
        }
    }

    /// A power cut: unmounts (no process may have files there: kill them
    /// first), puts back every file's content as of its last fsync and
    /// every directory's entries as of its last fsync (tearing one file's
    /// pending writes if `tear` says so), and mounts the result again at
    /// the same place, with a cold page cache.
    pub fn power_cut(&mut self, tear: &Tear) -> Result<CutReport, CutError> {
        self.stop()?;
        let report = cut::cut(&mut self.state.lock(), tear)?;
        fresh_hidden(&self.backing)?;
        let state = State::new(&self.backing).map_err(|source| CutError::Io {
            what: "reading",
            path: self.backing.clone(),
            source,
        })?;
        *self.state.lock() = state;
        self.session = Some(start(&self.state, &self.mountpoint)?);
        Ok(report)
    }

    /// Unmounts, keeping everything written (a clean unmount syncs).
    pub fn unmount(mut self) -> Result<(), CutError> {
        self.stop()?;
        let hidden = self.backing.join(HIDDEN);
        std::fs::remove_dir_all(&hidden).map_err(|source| CutError::Io {
            what: "removing",
            path: hidden,
            source,
        })
    }

    fn stop(&mut self) -> Result<(), CutError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        if let Err(error) = unmount_waiting(&self.mountpoint) {
            self.session = Some(session);
            return Err(error);
        }
        match session.join() {
            Ok(()) => Ok(()),
            // The unmount ended the connection: the session's next read
            // of /dev/fuse says ENODEV (which fuser takes as the end) or,
            // when the kernel marked the connection aborted on the way,
            // ECONNABORTED. Either is the end we asked for.
            Err(error)
                if error.raw_os_error() == Some(rustix::io::Errno::CONNABORTED.raw_os_error()) =>
            {
                Ok(())
            }
            Err(source) => Err(CutError::Session {
                mountpoint: self.mountpoint.clone(),
                source,
            }),
        }
    }
}

impl Drop for PowerCutFs {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if unmount_waiting(&self.mountpoint).is_ok() {
            // The session ends with the mount; its result says nothing
            // more to a drop.
            let _ = session.join();
        } else {
            // Still in use: detach it, so it goes once the last file
            // closes, and let the session thread serve until then.
            let _ = rustix::mount::unmount(&self.mountpoint, UnmountFlags::DETACH);
            drop(session);
        }
    }
}
