//! A FUSE file system that can lose power.
//!
//! [`PowerCutFs::mount`] serves a backing directory at a mount point:
//! reads and writes go to the backing directory at once, but the file
//! system remembers what is not durable yet — for each file, the content
//! its pages had at its last `fsync`/`fdatasync` (an undo log) and its
//! length then; for each directory, the entry changes (create, mkdir,
//! rename, unlink, rmdir) since its last `fsync`. [`PowerCutFs::power_cut`]
//! unmounts, puts all of that back, as a disk would hold it after a power
//! cut, optionally tearing one file's pending writes ([`Tear`]), and mounts
//! the result again, with a cold page cache.
//!
//! Only `fsync`, `fdatasync` and `msync` (which the kernel turns into
//! FUSE fsync) of a file, and `fsync` of a directory, count: `syncfs(2)`,
//! `sync(2)`, `close(2)` and the kernel's own writeback do not, as FUSE
//! does not pass them on as syncs. Shared writable maps work (no direct
//! I/O): their dirty pages reach the file system as writes.
//!
//! The model, page by page and entry by entry, is in docs/reliability.md
//! ("Power cuts").
//!
//! ```no_run
//! use rill_powercut_fs::{PowerCutFs, Tear};
//! use std::path::Path;
//!
//! let mut fs = PowerCutFs::mount(Path::new("/tmp/backing"), Path::new("/tmp/mnt"))?;
//! std::fs::write("/tmp/mnt/unsynced", b"lost at the cut")?;
//! let report = fs.power_cut(&Tear::None)?;
//! assert!(!Path::new("/tmp/mnt/unsynced").exists());
//! assert_eq!(report.dir_ops_dropped, 1);
//! fs.unmount()?;
//! # anyhow::Ok(())
//! ```

mod cut;
mod fs;
mod mount;
mod namespace;
mod rng;
mod state;
mod undo;

pub use cut::{CutError, CutReport, Tear, TornFile};
pub use mount::{FUSE_DEVICE, MountError, Pending, PowerCutFs};
pub use state::Counters;
pub use undo::TearMode;
