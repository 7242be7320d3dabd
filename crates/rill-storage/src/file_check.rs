//! Noticing segment files that something outside the log removed or cut
//! shorter while the log has them open and mapped.
//!
//! Segment and index files are mmap'd. Were one truncated under a running
//! broker, the first touch in user space of a mapped page past the file's
//! new end (reading a batch header, binary-searching an index, copying a
//! small batch in) would raise SIGBUS and kill the broker; the kernel's
//! own copies from the mapping (the writev that sends a fetch response)
//! get EFAULT instead, which only closes that connection. A removed
//! (unlinked) file is safe for the mapping — the inode lives on while it
//! is open — but whatever is appended to it is lost at the next restart.
//!
//! So before the log reads a segment's bytes in user space (fetch,
//! ListOffsets by time, compaction, truncation), before it appends, at a
//! close and in each retention pass (so that an idle partition is noticed
//! too), it fstats the files it is about to touch: no link left means
//! removed, fewer bytes than mapped means truncated. Either takes the log
//! offline for reads and writes until a restart, whose recovery keeps the
//! valid prefix of what is left.
//!
//! What this does not close: a truncation between the check and the
//! access can still raise SIGBUS. The window is one call (one fetch of
//! one partition, one append), not the life of the process; closing it
//! would take either reading every byte user space looks at through
//! pread instead of the map (the zero-copy design's opposite) or a SIGBUS
//! handler that unwinds out of a fault (not something to do in safe
//! Rust). docs/reliability.md, "Disk faults", weighs both.

use std::fs::File;
use std::path::PathBuf;

use crate::error::SegmentFileChanged;
use crate::open_files::LazyFile;

/// Checks that `file` is still linked and holds at least `expected_len`
/// bytes; `path` names it in the error. One fstat.
pub(crate) fn check_file(
    file: &LazyFile,
    expected_len: u64,
    path: impl FnOnce() -> PathBuf,
) -> Result<(), SegmentFileChanged> {
    // A closed file opens again by its path: gone from there, it was
    // removed.
    let file = match file.get() {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SegmentFileChanged::Removed { path: path() });
        }
        Err(e) => {
            return Err(SegmentFileChanged::Unknown {
                path: path(),
                error: e.to_string(),
            });
        }
    };
    check_open_file(&file, expected_len, path)
}

fn check_open_file(
    file: &File,
    expected_len: u64,
    path: impl FnOnce() -> PathBuf,
) -> Result<(), SegmentFileChanged> {
    let stat = match rustix::fs::fstat(file) {
        Ok(stat) => stat,
        Err(errno) => {
            return Err(SegmentFileChanged::Unknown {
                path: path(),
                error: std::io::Error::from(errno).to_string(),
            });
        }
    };
    if stat.st_nlink == 0 {
        return Err(SegmentFileChanged::Removed { path: path() });
    }
    // A negative size is impossible; read as 0, it reports a truncation.
    let found_len = u64::try_from(stat.st_size).unwrap_or(0);
    if found_len < expected_len {
        return Err(SegmentFileChanged::Truncated {
            path: path(),
            expected_len,
            found_len,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(len: u64) -> (tempfile::TempDir, PathBuf, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        file.set_len(len).unwrap();
        (dir, path, file)
    }

    #[test]
    fn an_intact_file_passes_and_a_longer_one_too() {
        let (_dir, path, file) = file_of(4096);
        assert_eq!(check_open_file(&file, 4096, || path.clone()), Ok(()));
        assert_eq!(check_open_file(&file, 100, || path.clone()), Ok(()));
    }

    #[test]
    fn a_file_cut_shorter_is_reported_with_both_lengths() {
        let (_dir, path, file) = file_of(4096);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(1000)
            .unwrap();
        assert_eq!(
            check_open_file(&file, 4096, || path.clone()),
            Err(SegmentFileChanged::Truncated {
                path: path.clone(),
                expected_len: 4096,
                found_len: 1000,
            })
        );
    }

    #[test]
    fn a_removed_file_is_reported_though_it_is_still_open() {
        let (_dir, path, file) = file_of(4096);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            check_open_file(&file, 4096, || path.clone()),
            Err(SegmentFileChanged::Removed { path: path.clone() })
        );
    }
}
