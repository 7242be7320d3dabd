//! The file system's state between two cuts: the inodes of the mount and
//! where each lives in the backing directory, the open handles, the undo
//! logs of files changed since their last sync, and the namespace journal.
//! Every FUSE operation is one method here; writes go to the backing
//! directory at once, after the undo log has what they overwrite.
//!
//! Not thread-safe by itself: one lock (in `fs.rs`) holds it, so the
//! operations of the mount run one at a time, in the order they arrive.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo, OpenAccMode, OpenFlags, RenameFlags, TimeOrNow};
use rustix::fs::FallocateFlags;

use crate::namespace::{DirOp, Entries, Ino, Namespace};
use crate::undo::FileUndo;

/// The mount's root inode.
pub(crate) const ROOT: Ino = INodeNo::ROOT.0;

/// The directory in the backing directory's root where the file system
/// keeps unlinked inodes until the next cut; hidden from the mount.
pub(crate) const HIDDEN: &str = ".powercut-fs";

/// Most bytes of synced content the undo logs may hold; a write that
/// would need more fails with ENOSPC (the broker's disk-full path).
pub(crate) const UNDO_MEMORY_BYTES_MAX: u64 = 1 << 30;

/// Most directory changes waiting for a directory fsync; past that, a
/// change fails with ENOSPC.
const DIR_OPS_PENDING_MAX: usize = 1 << 20;

/// Most inodes one mount hands out.
const INODES_MAX: usize = 1 << 20;

/// Most bytes one read returns (the kernel asks for at most max_read).
const READ_BYTES_MAX: u32 = 16 << 20;

/// Deepest directory nesting walked to find a path.
const DEPTH_MAX: usize = 256;

/// Where an inode lives in the backing directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    Root,
    Tree {
        parent: Ino,
        name: OsString,
    },
    /// Unlinked, or replaced by a rename: kept in the hidden trash, as the
    /// durable namespace may still name it.
    Trash,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) place: Place,
}

enum Handle {
    File {
        file: File,
    },
    /// A directory's entries as they were at opendir, so readdir offsets
    /// stay meaningful while it changes.
    Dir {
        entries: Vec<(Ino, FileType, OsString)>,
    },
}

/// Counts since the mount.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub writes: u64,
    pub file_syncs: u64,
    pub dir_syncs: u64,
    pub dir_ops: u64,
}

/// See the module docs.
pub(crate) struct State {
    pub(crate) backing: PathBuf,
    pub(crate) nodes: HashMap<Ino, Node>,
    by_backing: HashMap<u64, Ino>,
    next_ino: Ino,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    /// Files with changes since their last sync.
    pub(crate) files: HashMap<Ino, FileUndo>,
    undo_memory_bytes: u64,
    pub(crate) namespace: Namespace,
    pub(crate) counters: Counters,
}

fn errno(error: std::io::Error) -> Errno {
    Errno::from(error)
}

/// A path component must be one name: the kernel sends nothing else, but
/// the file system checks rather than trusts.
fn check_name(name: &OsStr) -> Result<(), Errno> {
    let bytes = name.as_encoded_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

fn time(seconds: i64, nanos: i64) -> SystemTime {
    let nanos = u32::try_from(nanos).unwrap_or(0);
    match u64::try_from(seconds) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, nanos),
        Err(_) => UNIX_EPOCH,
    }
}

/// Saves the synced content of `from..to` of `ino` (open as `file`) in
/// its undo log before that range changes. A free function, so that the
/// file can be borrowed from the handles while the logs change.
fn preserve(
    files: &mut HashMap<Ino, FileUndo>,
    memory_bytes: &mut u64,
    ino: Ino,
    file: &File,
    from: u64,
    to: u64,
) -> Result<(), Errno> {
    let undo = match files.entry(ino) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => {
            let len = file.metadata().map_err(errno)?.len();
            entry.insert(FileUndo::new(len))
        }
    };
    for (page, range) in undo.unsaved(from, to) {
        if *memory_bytes > UNDO_MEMORY_BYTES_MAX {
            return Err(Errno::ENOSPC);
        }
        let mut bytes = vec![0; (range.end - range.start) as usize];
        file.read_exact_at(&mut bytes, range.start).map_err(errno)?;
        *memory_bytes += undo.save(page, bytes);
    }
    Ok(())
}

fn handle_file(handles: &HashMap<u64, Handle>, fh: u64) -> Result<&File, Errno> {
    match handles.get(&fh) {
        Some(Handle::File { file }) => Ok(file),
        _ => Err(Errno::EBADF),
    }
}

fn file_type(meta: &Metadata) -> FileType {
    FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile)
}

impl State {
    /// The state of a fresh mount of `backing`, whose content is all
    /// durable. The hidden directory must exist and be empty.
    pub(crate) fn new(backing: &Path) -> std::io::Result<State> {
        let meta = std::fs::metadata(backing)?;
        let mut state = State {
            backing: backing.to_path_buf(),
            nodes: HashMap::new(),
            by_backing: HashMap::new(),
            next_ino: ROOT + 1,
            handles: HashMap::new(),
            next_fh: 1,
            files: HashMap::new(),
            undo_memory_bytes: 0,
            namespace: Namespace::default(),
            counters: Counters::default(),
        };
        state.nodes.insert(ROOT, Node { place: Place::Root });
        state.by_backing.insert(meta.ino(), ROOT);
        Ok(state)
    }

    pub(crate) fn trash_path(&self, ino: Ino) -> PathBuf {
        self.backing
            .join(HIDDEN)
            .join("trash")
            .join(ino.to_string())
    }

    /// Where `ino` lives in the backing directory now.
    pub(crate) fn path(&self, ino: Ino) -> Result<PathBuf, Errno> {
        let mut names = Vec::new();
        let mut at = ino;
        for _ in 0..DEPTH_MAX {
            let node = self.nodes.get(&at).ok_or(Errno::ENOENT)?;
            match &node.place {
                Place::Root => {
                    let mut path = self.backing.clone();
                    path.extend(names.iter().rev());
                    return Ok(path);
                }
                Place::Trash => {
                    let mut path = self.trash_path(at);
                    path.extend(names.iter().rev());
                    return Ok(path);
                }
                Place::Tree { parent, name } => {
                    names.push(name.clone());
                    at = *parent;
                }
            }
        }
        Err(Errno::ELOOP)
    }

    fn child_path(&self, parent: Ino, name: &OsStr) -> Result<PathBuf, Errno> {
        check_name(name)?;
        if parent == ROOT && name == HIDDEN {
            return Err(Errno::EACCES);
        }
        Ok(self.path(parent)?.join(name))
    }

    /// The inode of `name` in `parent`, found in the backing directory
    /// with `meta`: the one it had, or a new one.
    fn node_for(&mut self, parent: Ino, name: &OsStr, meta: &Metadata) -> Result<Ino, Errno> {
        let place = Place::Tree {
            parent,
            name: name.to_os_string(),
        };
        if let Some(&ino) = self.by_backing.get(&meta.ino()) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.place = place;
                return Ok(ino);
            }
        }
        if self.nodes.len() >= INODES_MAX {
            return Err(Errno::ENOSPC);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, Node { place });
        self.by_backing.insert(meta.ino(), ino);
        Ok(ino)
    }

    pub(crate) fn attr(&self, ino: Ino, meta: &Metadata) -> FileAttr {
        let trashed = self
            .nodes
            .get(&ino)
            .is_some_and(|node| node.place == Place::Trash);
        FileAttr {
            ino: INodeNo(ino),
            size: meta.len(),
            blocks: meta.blocks(),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind: file_type(meta),
            perm: (meta.mode() & 0o7777) as u16,
            // An unlinked file has no links, as a broker checking whether
            // its segment was removed (fstat) expects.
            nlink: if trashed {
                0
            } else {
                u32::try_from(meta.nlink()).unwrap_or(u32::MAX)
            },
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: u32::try_from(meta.rdev()).unwrap_or(0),
            blksize: 4096,
            flags: 0,
        }
    }

    /// The current entries of directory `dir`, each with its inode.
    pub(crate) fn listing(&mut self, dir: Ino) -> Result<Vec<(OsString, Ino, FileType)>, Errno> {
        let path = self.path(dir)?;
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&path).map_err(errno)? {
            let entry = entry.map_err(errno)?;
            let name = entry.file_name();
            if dir == ROOT && name == HIDDEN {
                continue;
            }
            let meta = entry.metadata().map_err(errno)?;
            let ino = self.node_for(dir, &name, &meta)?;
            entries.push((name, ino, file_type(&meta)));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// Before each change of `dir`'s entries: checks the bound on pending
    /// changes, and before the first since the mount, notes the entries as
    /// the durable ones.
    fn will_change(&mut self, dir: Ino) -> Result<(), Errno> {
        if self.namespace.pending() >= DIR_OPS_PENDING_MAX {
            return Err(Errno::ENOSPC);
        }
        if !self.namespace.knows(dir) {
            let entries: Entries = self
                .listing(dir)?
                .into_iter()
                .map(|(name, ino, _)| (name, ino))
                .collect();
            self.namespace.will_change(dir, entries);
        }
        Ok(())
    }

    fn record(&mut self, op: DirOp) {
        self.counters.dir_ops += 1;
        self.namespace.record(op);
    }

    fn handle_file(&self, fh: u64) -> Result<&File, Errno> {
        handle_file(&self.handles, fh)
    }

    fn new_handle(&mut self, handle: Handle) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, handle);
        fh
    }

    pub(crate) fn lookup(&mut self, parent: Ino, name: &OsStr) -> Result<FileAttr, Errno> {
        let path = self
            .child_path(parent, name)
            .map_err(|e| if e == Errno::EACCES { Errno::ENOENT } else { e })?;
        let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
        let ino = self.node_for(parent, name, &meta)?;
        Ok(self.attr(ino, &meta))
    }

    pub(crate) fn getattr(&self, ino: Ino, fh: Option<u64>) -> Result<FileAttr, Errno> {
        let meta = match fh.map(|fh| self.handle_file(fh)) {
            Some(Ok(file)) => file.metadata(),
            _ => std::fs::symlink_metadata(self.path(ino)?),
        }
        .map_err(errno)?;
        Ok(self.attr(ino, &meta))
    }

    #[allow(clippy::too_many_arguments)] // setattr's own fields
    pub(crate) fn setattr(
        &mut self,
        ino: Ino,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<u64>,
    ) -> Result<FileAttr, Errno> {
        let path = self.path(ino)?;
        if let Some(mode) = mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(errno)?;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::lchown(&path, uid, gid).map_err(errno)?;
        }
        if let Some(size) = size {
            let opened;
            let file = match fh.map(|fh| handle_file(&self.handles, fh)) {
                Some(Ok(file)) => file,
                _ => {
                    opened = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&path)
                        .map_err(errno)?;
                    &opened
                }
            };
            preserve(
                &mut self.files,
                &mut self.undo_memory_bytes,
                ino,
                file,
                size,
                u64::MAX,
            )?;
            file.set_len(size).map_err(errno)?;
            self.counters.writes += 1;
        }
        if atime.is_some() || mtime.is_some() {
            let to_time = |t: TimeOrNow| match t {
                TimeOrNow::SpecificTime(t) => t,
                TimeOrNow::Now => SystemTime::now(),
            };
            let mut times = std::fs::FileTimes::new();
            if let Some(t) = atime {
                times = times.set_accessed(to_time(t));
            }
            if let Some(t) = mtime {
                times = times.set_modified(to_time(t));
            }
            File::open(&path)
                .and_then(|f| f.set_times(times))
                .map_err(errno)?;
        }
        self.getattr(ino, None)
    }

    pub(crate) fn open(&mut self, ino: Ino, flags: OpenFlags) -> Result<u64, Errno> {
        let path = self.path(ino)?;
        // A handle that writes must also read: the undo log reads what a
        // write overwrites. The kernel has checked the caller's access.
        // O_APPEND stays the kernel's: every write comes with its offset,
        // and pwrite on an O_APPEND file would ignore it. O_TRUNC comes as
        // a setattr of the size.
        let mut options = OpenOptions::new();
        match flags.acc_mode() {
            OpenAccMode::O_RDONLY => options.read(true),
            OpenAccMode::O_WRONLY | OpenAccMode::O_RDWR => options.read(true).write(true),
        };
        let file = options.open(&path).map_err(errno)?;
        Ok(self.new_handle(Handle::File { file }))
    }

    pub(crate) fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let file = self.handle_file(fh)?;
        let mut buf = vec![0; size.min(READ_BYTES_MAX) as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(errno(e)),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    pub(crate) fn write(
        &mut self,
        ino: Ino,
        fh: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<u32, Errno> {
        let file = handle_file(&self.handles, fh)?;
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        preserve(
            &mut self.files,
            &mut self.undo_memory_bytes,
            ino,
            file,
            offset,
            end,
        )?;
        file.write_all_at(data, offset).map_err(errno)?;
        self.counters.writes += 1;
        u32::try_from(data.len()).map_err(|_| Errno::EINVAL)
    }

    pub(crate) fn release(&mut self, fh: u64) {
        self.handles.remove(&fh);
    }

    /// fsync or fdatasync of a file: its content and length as they are
    /// now become durable (its directory entry does not).
    pub(crate) fn fsync(&mut self, ino: Ino) {
        if let Some(undo) = self.files.remove(&ino) {
            self.undo_memory_bytes -= undo.memory_bytes();
        }
        self.counters.file_syncs += 1;
    }

    pub(crate) fn opendir(&mut self, ino: Ino) -> Result<u64, Errno> {
        let parent = match self.nodes.get(&ino).map(|n| &n.place) {
            Some(Place::Tree { parent, .. }) => *parent,
            _ => ino,
        };
        let mut entries = vec![
            (ino, FileType::Directory, OsString::from(".")),
            (parent, FileType::Directory, OsString::from("..")),
        ];
        entries.extend(
            self.listing(ino)?
                .into_iter()
                .map(|(name, ino, kind)| (ino, kind, name)),
        );
        Ok(self.new_handle(Handle::Dir { entries }))
    }

    /// Entries of an open directory from `offset`, each with the offset
    /// of the next, until `add` says the reply is full.
    pub(crate) fn readdir(
        &self,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(Ino, u64, FileType, &OsStr) -> bool,
    ) -> Result<(), Errno> {
        let Some(Handle::Dir { entries }) = self.handles.get(&fh) else {
            return Err(Errno::EBADF);
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(skip) {
            if add(*ino, i as u64 + 1, *kind, name) {
                break;
            }
        }
        Ok(())
    }

    pub(crate) fn fsyncdir(&mut self, ino: Ino) {
        self.namespace.sync_dir(ino);
        self.counters.dir_syncs += 1;
    }

    pub(crate) fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> Result<(FileAttr, u64), Errno> {
        let path = self.child_path(parent, name)?;
        self.will_change(parent)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode & !umask & 0o7777)
            .open(&path)
            .map_err(errno)?;
        let meta = file.metadata().map_err(errno)?;
        let ino = self.node_for(parent, name, &meta)?;
        self.record(DirOp::Link {
            dir: parent,
            name: name.to_os_string(),
            ino,
        });
        let attr = self.attr(ino, &meta);
        Ok((attr, self.new_handle(Handle::File { file })))
    }

    pub(crate) fn mknod(
        &mut self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> Result<FileAttr, Errno> {
        // Regular files only: nothing else is modelled.
        const S_IFMT: u32 = 0o170_000;
        const S_IFREG: u32 = 0o100_000;
        if mode & S_IFMT != S_IFREG {
            return Err(Errno::EPERM);
        }
        let (attr, fh) = self.create(parent, name, mode, umask)?;
        self.release(fh);
        Ok(attr)
    }

    pub(crate) fn mkdir(
        &mut self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> Result<FileAttr, Errno> {
        let path = self.child_path(parent, name)?;
        self.will_change(parent)?;
        std::fs::DirBuilder::new()
            .mode(mode & !umask & 0o7777)
            .create(&path)
            .map_err(errno)?;
        let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
        let ino = self.node_for(parent, name, &meta)?;
        self.record(DirOp::Link {
            dir: parent,
            name: name.to_os_string(),
            ino,
        });
        Ok(self.attr(ino, &meta))
    }

    /// Moves `ino` (at `path`) to the trash: its data stays for the cut.
    fn trash(&mut self, ino: Ino, path: &Path) -> Result<(), Errno> {
        std::fs::rename(path, self.trash_path(ino)).map_err(errno)?;
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.place = Place::Trash;
        }
        Ok(())
    }

    /// unlink (`dir` false) or rmdir (`dir` true).
    pub(crate) fn remove(&mut self, parent: Ino, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let path = self.child_path(parent, name)?;
        let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
        match (dir, meta.is_dir()) {
            (false, true) => return Err(Errno::EISDIR),
            (true, false) => return Err(Errno::ENOTDIR),
            (true, true) => {
                if std::fs::read_dir(&path).map_err(errno)?.next().is_some() {
                    return Err(Errno::ENOTEMPTY);
                }
            }
            (false, false) => {}
        }
        self.will_change(parent)?;
        let ino = self.node_for(parent, name, &meta)?;
        self.trash(ino, &path)?;
        self.record(DirOp::Unlink {
            dir: parent,
            name: name.to_os_string(),
            ino,
        });
        Ok(())
    }

    /// Whether `ino` is `ancestor` or below it.
    fn is_within(&self, ino: Ino, ancestor: Ino) -> bool {
        let mut at = ino;
        for _ in 0..DEPTH_MAX {
            if at == ancestor {
                return true;
            }
            match self.nodes.get(&at).map(|n| &n.place) {
                Some(Place::Tree { parent, .. }) => at = *parent,
                _ => return false,
            }
        }
        false
    }

    pub(crate) fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        let from = self.child_path(parent, name)?;
        let to = self.child_path(new_parent, new_name)?;
        let from_meta = std::fs::symlink_metadata(&from).map_err(errno)?;
        let ino = self.node_for(parent, name, &from_meta)?;
        let replaced = match std::fs::symlink_metadata(&to) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(errno(e)),
        };
        let replaced = match replaced {
            None => None,
            Some(meta) => {
                if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                    return Err(Errno::EEXIST);
                }
                if meta.ino() == from_meta.ino() {
                    return Ok(());
                }
                match (from_meta.is_dir(), meta.is_dir()) {
                    (true, false) => return Err(Errno::ENOTDIR),
                    (false, true) => return Err(Errno::EISDIR),
                    (true, true) => {
                        if std::fs::read_dir(&to).map_err(errno)?.next().is_some() {
                            return Err(Errno::ENOTEMPTY);
                        }
                    }
                    (false, false) => {}
                }
                Some(self.node_for(new_parent, new_name, &meta)?)
            }
        };
        if from_meta.is_dir() && self.is_within(new_parent, ino) {
            return Err(Errno::EINVAL);
        }
        self.will_change(parent)?;
        self.will_change(new_parent)?;
        if let Some(replaced) = replaced {
            self.trash(replaced, &to)?;
        }
        if let Err(error) = std::fs::rename(&from, &to) {
            if let Some(replaced) = replaced {
                // Put the replaced file back; the rename did not happen.
                let _ = std::fs::rename(self.trash_path(replaced), &to);
                if let Some(node) = self.nodes.get_mut(&replaced) {
                    node.place = Place::Tree {
                        parent: new_parent,
                        name: new_name.to_os_string(),
                    };
                }
            }
            return Err(errno(error));
        }
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.place = Place::Tree {
                parent: new_parent,
                name: new_name.to_os_string(),
            };
        }
        self.record(DirOp::Rename {
            from: parent,
            from_name: name.to_os_string(),
            to: new_parent,
            to_name: new_name.to_os_string(),
            ino,
        });
        Ok(())
    }

    pub(crate) fn fallocate(
        &mut self,
        ino: Ino,
        fh: u64,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        let flags = FallocateFlags::from_bits(mode as u32).ok_or(Errno::EOPNOTSUPP)?;
        if flags.intersects(FallocateFlags::COLLAPSE_RANGE | FallocateFlags::INSERT_RANGE) {
            // They move data; not modelled.
            return Err(Errno::EOPNOTSUPP);
        }
        let file = handle_file(&self.handles, fh)?;
        if flags.intersects(FallocateFlags::PUNCH_HOLE | FallocateFlags::ZERO_RANGE) {
            let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
            preserve(
                &mut self.files,
                &mut self.undo_memory_bytes,
                ino,
                file,
                offset,
                end,
            )?;
        }
        rustix::fs::fallocate(file, flags, offset, length)
            .map_err(|e| Errno::from_i32(e.raw_os_error()))?;
        self.counters.writes += 1;
        Ok(())
    }
}
