//! The file-system calls whose failure or durability matters, behind a
//! trait so tests can make them fail (a full disk on reserve, an I/O error
//! on sync) and can see which changes were made durable (a crash image
//! that loses the directory entries no directory sync covered, see
//! [`crate::testing::FaultyDisk`]).
//!
//! Every file and directory the storage creates, renames or removes goes
//! through here, and so does every sync, of data or of a directory.

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::FallocateFlags;

use crate::open_files::with_descriptor;

/// Reservation, writes, directory changes and syncs of the log's files.
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
    /// (fdatasync). Not its directory entry: see [`Disk::sync_dir`].
    fn sync_data(&self, file: &File) -> io::Result<()>;

    /// Makes every file and directory of the file system that holds `file`
    /// durable (syncfs): one call for the files of many logs. It reports a
    /// writeback error of any file there that this `file` has not yet
    /// been told of, so the caller cannot tell whose it was. Only as good
    /// as the file system's `sync_fs`: see [`crate::SyncMode`].
    fn sync_file_system(&self, file: &File) -> io::Result<()>;

    /// Creates (or truncates) the file at `path`, open to read and write.
    /// A new file's name is durable only once its directory is synced.
    fn create_file(&self, path: &Path) -> io::Result<File>;

    /// Creates the directory `path`, whose parent must exist. Its name is
    /// durable only once the parent is synced.
    fn create_dir(&self, path: &Path) -> io::Result<()>;

    /// Renames `from` to `to` (replacing `to`), in one directory. Durable
    /// only once the directory is synced.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the file at `path`. Durable only once its directory is
    /// synced.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Removes the directory `path` and everything in it. Durable only
    /// once its parent is synced.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Makes the entries of directory `dir` (files and directories
    /// created, renamed or removed in it) durable: fsync of the directory.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// What the file system holding the open directory `dir` is, and the
    /// kernel: whether its syncfs can stand in for fdatasync (see
    /// [`crate::SyncMode`]).
    fn probe(&self, dir: &File) -> io::Result<FileSystemProbe>;
}

/// What the storage asks of a file system before trusting its syncfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSystemProbe {
    /// statfs(2)'s `f_type`: the file system's magic number.
    pub magic: u32,
    /// The running kernel, or `None` if its release string does not parse.
    pub kernel: Option<KernelVersion>,
}

/// A Linux kernel version, major and minor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
}

impl KernelVersion {
    /// The running kernel's version, from uname(2)'s release
    /// (`6.18.44-fc-v1300` is 6.18).
    pub fn running() -> Option<KernelVersion> {
        let uname = rustix::system::uname();
        KernelVersion::parse(&uname.release().to_string_lossy())
    }

    /// `MAJOR.MINOR` from the start of a release string.
    pub fn parse(release: &str) -> Option<KernelVersion> {
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(KernelVersion { major, minor })
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The real disk: fallocate(2), fdatasync(2), syncfs(2), and the plain
/// calls for directories.
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

    fn create_file(&self, path: &Path) -> io::Result<File> {
        with_descriptor(|| {
            File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
        })
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        with_descriptor(|| File::open(dir))?.sync_all()
    }

    fn probe(&self, dir: &File) -> io::Result<FileSystemProbe> {
        let statfs = rustix::fs::fstatfs(dir)?;
        // f_type is a signed word on some architectures; magics are 32-bit.
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
        let magic = statfs.f_type as u32;
        Ok(FileSystemProbe {
            magic,
            kernel: KernelVersion::running(),
        })
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

/// Removes the file at `path` through `disk`; one already gone is no error.
pub(crate) fn remove_if_present(disk: &dyn Disk, path: &Path) -> io::Result<()> {
    match disk.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
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
    fn kernel_versions_parse_from_release_strings() {
        let v = |major, minor| Some(KernelVersion { major, minor });
        assert_eq!(KernelVersion::parse("6.18.44-fc-v1300"), v(6, 18));
        assert_eq!(KernelVersion::parse("5.4.0-150-generic"), v(5, 4));
        assert_eq!(KernelVersion::parse("5.8"), v(5, 8));
        assert_eq!(KernelVersion::parse("garbage"), None);
        assert!(KernelVersion::running().is_some());
        assert!(v(5, 10) > v(5, 8) && v(4, 19) < v(5, 8));
    }

    #[test]
    fn the_real_probe_names_this_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let probe = RealDisk.probe(&File::open(dir.path()).unwrap()).unwrap();
        assert_ne!(probe.magic, 0);
    }

    #[test]
    fn zero_fill_writes_zeros_up_to_the_end() {
        let (_dir, file) = new_file();
        zero_fill(&file, 0, 100_000).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 100_000);
    }
}
