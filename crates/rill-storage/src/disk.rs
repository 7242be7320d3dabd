//! The file-system calls whose failure matters to durability, behind a
//! trait so tests can make them fail: a full disk on reserve, an I/O error
//! on sync.

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::FallocateFlags;

/// Reservation and sync of segment and index files.
///
/// Thread-safe: the flusher threads and the appending threads call it
/// concurrently, on different files or the same one.
pub trait Disk: Send + Sync + fmt::Debug {
    /// Allocates blocks for `file` from `from` up to `to` bytes and sets its
    /// length to at least `to`, so that writing through a map of that range
    /// cannot fail for lack of space (no SIGBUS): a full disk is this
    /// call's error instead.
    fn reserve(&self, file: &File, from: u64, to: u64) -> io::Result<()>;

    /// Writes all of `parts`, one after another, at `offset` of `file`
    /// (pwritev, repeated until everything is written).
    fn write_at(&self, file: &File, parts: &[&[u8]], offset: u64) -> io::Result<()>;

    /// Makes the file's data, and the metadata needed to read it, durable
    /// (fdatasync).
    fn sync_data(&self, file: &File) -> io::Result<()>;

    /// Makes every file and directory of the file system that holds `file`
    /// durable (syncfs): one call for the files of many logs. It reports a
    /// writeback error of any file there that this `file` has not yet
    /// been told of, so the caller cannot tell whose it was.
    fn sync_file_system(&self, file: &File) -> io::Result<()>;
}

/// The real disk: fallocate(2) and fdatasync(2).
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

/// Bytes written per call when the file system cannot fallocate.
const ZERO_FILL_CHUNK_BYTES: usize = 64 * 1024;

impl Disk for RealDisk {
    fn reserve(&self, file: &File, from: u64, to: u64) -> io::Result<()> {
        if to <= from {
            return Ok(());
        }
        match rustix::fs::fallocate(file, FallocateFlags::empty(), from, to - from) {
            Ok(()) => Ok(()),
            Err(errno) if errno == rustix::io::Errno::OPNOTSUPP => zero_fill(file, from, to),
            Err(errno) => Err(io::Error::from(errno)),
        }
    }

    fn write_at(&self, file: &File, parts: &[&[u8]], offset: u64) -> io::Result<()> {
        let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
        let mut offset = offset;
        while !parts.is_empty() {
            let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
            let mut written = match rustix::io::pwritev(file, &slices, offset) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => n,
                Err(errno) if errno == rustix::io::Errno::INTR => continue,
                Err(errno) => return Err(io::Error::from(errno)),
            };
            offset += written as u64;
            while let Some(first) = parts.first_mut() {
                if written < first.len() {
                    *first = &first[written..];
                    break;
                }
                written -= first.len();
                parts.remove(0);
            }
        }
        Ok(())
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_file_system(&self, file: &File) -> io::Result<()> {
        rustix::fs::syncfs(file).map_err(io::Error::from)
    }
}

/// Allocates by writing zeros, as posix_fallocate does on file systems
/// without fallocate.
fn zero_fill(file: &File, from: u64, to: u64) -> io::Result<()> {
    let zeros = [0u8; ZERO_FILL_CHUNK_BYTES];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(zeros.len(), |left| left.min(zeros.len()));
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_file() -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("f"))
            .unwrap();
        (dir, file)
    }

    #[test]
    fn reserve_extends_the_file_and_allocates_blocks() {
        let (_dir, file) = new_file();
        RealDisk.reserve(&file, 0, 1 << 20).unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.len(), 1 << 20);
        use std::os::unix::fs::MetadataExt;
        assert!(
            meta.blocks() * 512 >= 1 << 20,
            "blocks are allocated, not a hole"
        );
        // Reserving less than the current length changes nothing.
        RealDisk.reserve(&file, 1 << 20, 4096).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 1 << 20);
    }

    #[test]
    fn write_at_writes_every_part_in_order() {
        let (_dir, file) = new_file();
        let big = vec![7u8; 3 << 20];
        RealDisk
            .write_at(&file, &[b"head", &[], &big, b"tail"], 10)
            .unwrap();
        let mut back = vec![0u8; 4 + big.len() + 4];
        file.read_exact_at(&mut back, 10).unwrap();
        assert_eq!(&back[..4], b"head");
        assert_eq!(&back[4..4 + big.len()], &big[..]);
        assert_eq!(&back[4 + big.len()..], b"tail");
    }

    #[test]
    fn zero_fill_writes_zeros_up_to_the_end() {
        let (_dir, file) = new_file();
        zero_fill(&file, 0, 100_000).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 100_000);
    }
}
