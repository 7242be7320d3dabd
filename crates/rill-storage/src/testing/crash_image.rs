//! What a power cut would leave of a directory tree: the files and
//! directories whose names a directory sync (or a real syncfs) made
//! durable, holding the data their last fdatasync made durable.
//!
//! The model is POSIX's worst case, not any one file system's: a
//! directory entry created, renamed or removed since its directory was
//! last synced is lost (a new file vanishes, a rename reverts, a removed
//! file comes back), and a file's data is what it held at its last
//! fdatasync (empty if it never had one), whatever was written since.
//! Writes through a map are seen only through the syncs that cover them.
//!
//! Further images of the same moment ([`REORDERINGS`] of them) each keep a
//! different pseudo-random subset of the unsynced changes instead of
//! none: a file system may write directory changes out in any order
//! before the sync that would have covered them all, so code must not
//! depend on the order of changes one sync covers. (One subset per cut
//! was not enough: it missed that a compaction swap could keep an old
//! index beside its new segment; three caught it.)

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A file's identity while it exists: (device, inode).
type FileId = (u64, u64);

/// A directory entry changed since its directory was last synced.
#[derive(Debug)]
enum Pending {
    Created {
        path: PathBuf,
    },
    CreatedDir {
        path: PathBuf,
    },
    Renamed {
        from: PathBuf,
        to: PathBuf,
        /// The durable data of the file `to` replaced, if it replaced one.
        replaced: Option<Vec<u8>>,
    },
    Removed {
        path: PathBuf,
        data: Vec<u8>,
    },
    RemovedDir {
        path: PathBuf,
        /// What was under it: directories (`None`) and files' durable data.
        tree: Vec<(PathBuf, Option<Vec<u8>>)>,
    },
}

impl Pending {
    /// Whether a sync of `dir` makes this change durable.
    fn synced_by(&self, dir: &Path) -> bool {
        let parent = |p: &Path| p.parent() == Some(dir);
        match self {
            Pending::Created { path }
            | Pending::CreatedDir { path }
            | Pending::Removed { path, .. }
            | Pending::RemovedDir { path, .. } => parent(path),
            // One journal transaction on the file systems Rill trusts;
            // Rill renames only within one directory anyway.
            Pending::Renamed { from, to, .. } => parent(from) || parent(to),
        }
    }
}

/// Tracks, under one root, what is durable and what a crash would lose.
/// Not thread-safe: the disk keeps it behind a lock held across each call
/// it records, so that a crash image never sees half of one.
#[derive(Debug)]
pub(crate) struct Tracker {
    root: PathBuf,
    /// Changes of directory entries no sync covered yet, oldest first.
    pending: Vec<Pending>,
    /// Each existing file's data as of its last sync; a file not here had
    /// none since it was created.
    durable: HashMap<FileId, Vec<u8>>,
    /// Calls to the disk so far.
    ops: u64,
    /// Write the crash images to this directory (and its `-reordered-K`
    /// siblings) just before call `.0` runs.
    crash_at: Option<(u64, PathBuf)>,
    crashed: bool,
}

impl Tracker {
    /// Starts tracking `root`, taking everything under it now as durable.
    pub(crate) fn new(root: &Path) -> io::Result<Tracker> {
        let mut tracker = Tracker {
            root: root.to_path_buf(),
            pending: Vec::new(),
            durable: HashMap::new(),
            ops: 0,
            crash_at: None,
            crashed: false,
        };
        tracker.all_durable()?;
        Ok(tracker)
    }

    pub(crate) fn ops(&self) -> u64 {
        self.ops
    }

    pub(crate) fn crashed(&self) -> bool {
        self.crashed
    }

    pub(crate) fn crash_at(&mut self, op: u64, image: &Path) {
        self.crash_at = Some((op, image.to_path_buf()));
    }

    /// Counts a call to the disk; writes the crash image first if this is
    /// the call to crash before.
    pub(crate) fn step(&mut self) -> io::Result<()> {
        if let Some((op, image)) = &self.crash_at
            && *op == self.ops
            && !self.crashed
        {
            let (op, image) = (*op, image.clone());
            self.write_image(&image, |_| false)?;
            for (k, reordered) in reordered(&image).iter().enumerate() {
                self.write_image(reordered, |i| survives(op, k as u64, i))?;
            }
            self.crashed = true;
        }
        self.ops += 1;
        Ok(())
    }

    fn tracks(&self, path: &Path) -> bool {
        path.starts_with(&self.root) && path != self.root
    }

    /// Before creating a file at `path`: whether one is there already.
    pub(crate) fn created_file(&mut self, path: &Path, existed: bool, file: &File) {
        if !existed && self.tracks(path) {
            if let Ok(id) = file_id(file) {
                // A new inode (perhaps a number reused): no data synced yet.
                self.durable.remove(&id);
            }
            self.pending.push(Pending::Created {
                path: path.to_path_buf(),
            });
        }
    }

    pub(crate) fn created_dir(&mut self, path: &Path) {
        if self.tracks(path) {
            self.pending.push(Pending::CreatedDir {
                path: path.to_path_buf(),
            });
        }
    }

    /// Before renaming `from` to `to`: the durable data of what `to` is.
    pub(crate) fn replaced_by_rename(&mut self, to: &Path) -> Option<Vec<u8>> {
        let id = path_id(to).ok()?;
        Some(self.durable.remove(&id).unwrap_or_default())
    }

    pub(crate) fn renamed(&mut self, from: &Path, to: &Path, replaced: Option<Vec<u8>>) {
        if self.tracks(from) || self.tracks(to) {
            self.pending.push(Pending::Renamed {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                replaced,
            });
        }
    }

    /// Before removing the file at `path`: its durable data.
    pub(crate) fn removing_file(&mut self, path: &Path) -> Vec<u8> {
        path_id(path)
            .ok()
            .and_then(|id| self.durable.remove(&id))
            .unwrap_or_default()
    }

    pub(crate) fn removed_file(&mut self, path: &Path, data: Vec<u8>) {
        if self.tracks(path) {
            self.pending.push(Pending::Removed {
                path: path.to_path_buf(),
                data,
            });
        }
    }

    /// Before removing the directory `path`: what is under it, durably.
    pub(crate) fn removing_dir(
        &mut self,
        path: &Path,
    ) -> io::Result<Vec<(PathBuf, Option<Vec<u8>>)>> {
        let mut tree = Vec::new();
        for (entry, id) in walk(path)? {
            let data = id.map(|id| self.durable.remove(&id).unwrap_or_default());
            tree.push((entry, data));
        }
        Ok(tree)
    }

    pub(crate) fn removed_dir(&mut self, path: &Path, tree: Vec<(PathBuf, Option<Vec<u8>>)>) {
        if self.tracks(path) {
            self.pending.push(Pending::RemovedDir {
                path: path.to_path_buf(),
                tree,
            });
        }
    }

    /// After an fsync of `dir`: its entries are durable.
    pub(crate) fn synced_dir(&mut self, dir: &Path) {
        self.pending.retain(|change| !change.synced_by(dir));
    }

    /// After an fdatasync of `file`: its data is durable.
    pub(crate) fn synced_data(&mut self, file: &File) -> io::Result<()> {
        let id = file_id(file)?;
        let data = read_whole(file)?;
        self.durable.insert(id, data);
        Ok(())
    }

    /// After a syncfs that is a real sync: everything is durable.
    pub(crate) fn all_durable(&mut self) -> io::Result<()> {
        self.pending.clear();
        for (path, id) in walk(&self.root)? {
            if let Some(id) = id {
                let data = read_whole(&File::open(&path)?)?;
                self.durable.insert(id, data);
            }
        }
        Ok(())
    }

    /// Writes to `image` (which must not exist) what a crash now would
    /// leave under the root, if the unsynced change number `i` (oldest
    /// first) reached the disk only where `kept(i)`.
    pub(crate) fn write_image(&self, image: &Path, kept: impl Fn(usize) -> bool) -> io::Result<()> {
        // Path under the root -> None for a directory, or a file's data.
        let mut tree: BTreeMap<PathBuf, Option<Vec<u8>>> = BTreeMap::new();
        for (path, id) in walk(&self.root)? {
            let node = id.map(|id| self.durable.get(&id).cloned().unwrap_or_default());
            tree.insert(path, node);
        }
        for (i, change) in self.pending.iter().enumerate().rev() {
            if kept(i) {
                continue;
            }
            match change {
                Pending::Created { path } => {
                    tree.remove(path);
                }
                Pending::CreatedDir { path } => remove_subtree(&mut tree, path),
                Pending::Renamed { from, to, replaced } => {
                    let moved: Vec<(PathBuf, Option<Vec<u8>>)> = take_subtree(&mut tree, to);
                    for (path, node) in moved {
                        let rest = path.strip_prefix(to).unwrap_or(Path::new(""));
                        let back = if rest.as_os_str().is_empty() {
                            from.clone()
                        } else {
                            from.join(rest)
                        };
                        tree.insert(back, node);
                    }
                    if let Some(data) = replaced {
                        tree.insert(to.clone(), Some(data.clone()));
                    }
                }
                Pending::Removed { path, data } => {
                    tree.insert(path.clone(), Some(data.clone()));
                }
                Pending::RemovedDir { path, tree: saved } => {
                    tree.insert(path.clone(), None);
                    for (entry, node) in saved {
                        tree.insert(entry.clone(), node.clone());
                    }
                }
            }
        }
        std::fs::create_dir_all(image)?;
        for (path, node) in tree {
            let Ok(relative) = path.strip_prefix(&self.root) else {
                continue;
            };
            let target = image.join(relative);
            match node {
                None => std::fs::create_dir_all(&target)?,
                Some(data) => {
                    if let Some(parent) = target.parent() {
                        // An entry whose directory the crash took is gone too.
                        if !parent.is_dir() {
                            continue;
                        }
                    }
                    std::fs::write(&target, data)?;
                }
            }
        }
        Ok(())
    }
}

/// How many images with a subset of the unsynced changes each cut writes.
pub(crate) const REORDERINGS: u64 = 3;

/// The `-reordered-K` siblings of `image`, K from 0 to [`REORDERINGS`].
pub(crate) fn reordered(image: &Path) -> Vec<PathBuf> {
    (0..REORDERINGS)
        .map(|k| {
            let mut name = image.file_name().unwrap_or_default().to_os_string();
            name.push(format!("-reordered-{k}"));
            image.with_file_name(name)
        })
        .collect()
}

/// Whether unsynced change `i` reached the disk in reordering `k` of a
/// crash before call `op`: a fixed pseudo-random choice (SplitMix64).
fn survives(op: u64, k: u64, i: usize) -> bool {
    let mut z = (op ^ k.wrapping_mul(0xD6E8_FEB8_6659_FD93))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i as u64)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & 1 == 1
}

/// Removes `path` and everything under it from `tree`.
fn remove_subtree(tree: &mut BTreeMap<PathBuf, Option<Vec<u8>>>, path: &Path) {
    take_subtree(tree, path);
}

/// Takes `path` and everything under it out of `tree`.
fn take_subtree(
    tree: &mut BTreeMap<PathBuf, Option<Vec<u8>>>,
    path: &Path,
) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let keys: Vec<PathBuf> = tree
        .keys()
        .filter(|k| k.starts_with(path))
        .cloned()
        .collect();
    keys.into_iter()
        .filter_map(|k| tree.remove(&k).map(|node| (k, node)))
        .collect()
}

/// Everything under `dir` (not `dir` itself), parents before children:
/// each path with its file's identity, or `None` for a directory.
fn walk(dir: &Path) -> io::Result<Vec<(PathBuf, Option<FileId>)>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::path);
    for entry in entries {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            out.push((path.clone(), None));
            out.extend(walk(&path)?);
        } else if meta.is_file() {
            out.push((path, Some((meta.dev(), meta.ino()))));
        }
    }
    Ok(out)
}

fn file_id(file: &File) -> io::Result<FileId> {
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

fn path_id(path: &Path) -> io::Result<FileId> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// The whole file, through its descriptor (page cache included, so
/// stores through a map too).
fn read_whole(file: &File) -> io::Result<Vec<u8>> {
    let len = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
    let mut data = vec![0u8; len];
    let mut at = 0;
    while at < len {
        match file.read_at(&mut data[at..], at as u64)? {
            0 => {
                data.truncate(at);
                break;
            }
            n => at += n,
        }
    }
    Ok(data)
}
