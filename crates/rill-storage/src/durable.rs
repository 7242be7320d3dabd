//! Durable file writes: the one way every Rill crate replaces a file
//! atomically, makes a directory's entries durable, and creates a
//! directory whose name survives a power cut.
//!
//! A file's name is durable only once its directory is fsynced, and its
//! contents only once the file is (docs/storage.md, "Directory entries"),
//! so an atomic replacement is: write `NAME.tmp`, fdatasync it, rename it
//! over `NAME`, fsync the directory. A reader sees the old file or the new
//! one, whole, and after a crash the new one if the call returned.
//!
//! Each operation comes twice: through a [`Disk`] (`*_on`), for the
//! storage and the partition layer, whose tests fail or crash every call
//! ([`crate::testing::FaultyDisk`]); and on the real file system, for the
//! quorum's files and the broker's own. Both are the same code:
//! the plain form is the `*_on` form over [`RealDisk`].
//!
//! Thread-safe: nothing here holds state.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::disk::{Disk, RealDisk};
use crate::error::IoFailure;

/// [`IoFailure::operation`] of a failed fdatasync of a file written here.
pub const SYNC_FILE: &str = "sync file";
/// [`IoFailure::operation`] of a failed fsync of a directory.
pub const SYNC_DIRECTORY: &str = "sync directory";

/// Replaces the file at `path` with `bytes`, durably: written to
/// `NAME.tmp` (see [`temp_path`]), fdatasynced, renamed over `path`, and
/// the directory fsynced. Returns the new file, open to read and write at
/// its start (the caller may keep appending to it).
///
/// fdatasync makes the data and the length durable — all the metadata a
/// read of a new file needs; the name comes from the directory's fsync.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<File, IoFailure> {
    write_atomically_on(&RealDisk, path, bytes)
}

/// [`write_atomically`] through `disk`.
pub fn write_atomically_on(disk: &dyn Disk, path: &Path, bytes: &[u8]) -> Result<File, IoFailure> {
    let temp = temp_path(path);
    let file = disk
        .create_file(&temp)
        .map_err(|e| IoFailure::new("create", &temp, e))?;
    disk.write_at(&file, &[bytes], 0)
        .map_err(|e| IoFailure::new("write", &temp, e))?;
    disk.sync_data(&file)
        .map_err(|e| IoFailure::new(SYNC_FILE, &temp, e))?;
    disk.rename(&temp, path)
        .map_err(|e| IoFailure::new("rename into place", path, e))?;
    sync_dir_on(disk, parent_of(path))?;
    Ok(file)
}

/// Makes the entries of directory `dir` (files and directories created,
/// renamed or removed in it) durable: fsync of the directory.
pub fn sync_dir(dir: &Path) -> Result<(), IoFailure> {
    sync_dir_on(&RealDisk, dir)
}

/// [`sync_dir`] through `disk`.
pub fn sync_dir_on(disk: &dyn Disk, dir: &Path) -> Result<(), IoFailure> {
    disk.sync_dir(dir)
        .map_err(|e| IoFailure::new(SYNC_DIRECTORY, dir, e))
}

/// Creates `dir` and any missing parents, and makes its name durable:
/// the parent of every level created is fsynced, and so is that of the
/// deepest level that existed and of `dir` itself even when it existed —
/// a process that made a directory and died before syncing its parent
/// leaves a name a power cut can still take, with everything in it.
pub fn create_dir_durably(dir: &Path) -> Result<(), IoFailure> {
    create_dir_durably_on(&RealDisk, dir)
}

/// [`create_dir_durably`] through `disk`.
pub fn create_dir_durably_on(disk: &dyn Disk, dir: &Path) -> Result<(), IoFailure> {
    if !dir.is_dir() {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir_durably_on(disk, parent)?;
        }
        match disk.create_dir(dir) {
            Ok(()) => {}
            // Another thread or process made it meanwhile; the parent is
            // synced below all the same.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(IoFailure::new("create directory", dir, e)),
        }
    }
    sync_dir_on(disk, parent_of(dir))
}

/// `NAME.tmp` beside `path`: where [`write_atomically`] writes first. A
/// start that finds one removes it (an atomic write that did not finish).
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The directory holding `path`: `.` for a bare name.
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FaultyDisk;

    #[test]
    fn a_replaced_file_reads_back_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vote");
        write_atomically(&path, b"one").unwrap();
        let file = write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            file.metadata().unwrap().len(),
            3,
            "the returned file is the new one"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn every_step_of_a_replacement_goes_through_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::default();
        write_atomically_on(&disk, &dir.path().join("cp"), b"x").unwrap();
        assert_eq!(disk.syncs(), 1, "the file's fdatasync");
        assert_eq!(disk.dir_syncs(), 1, "the directory's fsync");
        disk.set_failing_dir_syncs(true);
        let failed = write_atomically_on(&disk, &dir.path().join("cp"), b"y").unwrap_err();
        assert_eq!(failed.operation, SYNC_DIRECTORY);
        assert_eq!(failed.path, dir.path());
    }

    #[test]
    fn create_dir_durably_makes_every_missing_level_and_syncs_their_parents() {
        let top = tempfile::tempdir().unwrap();
        let deep = top.path().join("a/b/__cluster_metadata");
        let disk = FaultyDisk::default();
        create_dir_durably_on(&disk, &deep).unwrap();
        assert!(deep.is_dir());
        // The parent of `top` (the deepest level that existed), then the
        // parents of a, b and __cluster_metadata.
        assert_eq!(disk.dir_syncs(), 4);
        create_dir_durably(&deep).unwrap(); // existing: syncs its parent again
        assert_eq!(
            temp_path(&top.path().join("leader-epoch-checkpoint")),
            top.path().join("leader-epoch-checkpoint.tmp")
        );
    }
}
