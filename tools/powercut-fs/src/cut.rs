//! The power cut itself, carried out on the backing directory while
//! nothing is mounted: every durable file back to its synced content (one
//! torn, if asked), then the backing tree rebuilt to hold exactly the
//! durable namespace — durable entries only, unlinked files that are still
//! durable brought back from the trash, files and directories whose
//! entries never became durable gone.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::namespace::Ino;
use crate::rng::Rng;
use crate::state::{HIDDEN, ROOT, State};
use crate::undo::{Fill, TearMode};

/// Most durable entries a cut rebuilds.
const ENTRIES_MAX: usize = 1 << 20;

/// Bytes of zeros written per call.
const ZEROS_CHUNK_BYTES: u64 = 64 * 1024;

/// What a power cut does to pending writes besides dropping them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tear {
    /// Nothing: every file goes back to its last synced content.
    None,
    /// One durable file with pending writes, drawn with `seed`, keeps part
    /// of them (see [`TearMode`]; the mode is drawn too).
    RandomFile { seed: u64 },
    /// The file at `path` (relative to the mount's root) keeps part of its
    /// pending writes, if it has any and is durable.
    File { path: PathBuf, seed: u64 },
}

/// The file a cut tore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornFile {
    /// Relative to the mount's root.
    pub path: PathBuf,
    pub mode: TearMode,
    /// Pages (4 KiB) written since the file's last sync.
    pub pending_pages: u64,
    /// Of those, the pages that kept their new content.
    pub kept_pages: u64,
    /// Its length after the cut.
    pub len: u64,
}

/// What a power cut dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Durable files with writes since their last sync, put back.
    pub files_reverted: u64,
    /// Pages of those files whose new content was dropped.
    pub pages_dropped: u64,
    /// Directory entry changes (create, mkdir, rename, unlink, rmdir) that
    /// no fsync of their directory covered: undone.
    pub dir_ops_dropped: u64,
    /// Files and directories left, the root not counted.
    pub entries: u64,
    pub torn: Option<TornFile>,
}

/// A power cut that could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CutError {
    #[error("unmounting {mountpoint}: {source}")]
    Unmount {
        mountpoint: PathBuf,
        source: io::Error,
    },
    #[error(
        "{mountpoint} was still busy {waited_ms} ms after the first try to unmount it: a process has files or its working directory there; stop it before a cut"
    )]
    Busy { mountpoint: PathBuf, waited_ms: u64 },
    #[error("the FUSE session of {mountpoint} ended with an error: {source}")]
    Session {
        mountpoint: PathBuf,
        source: io::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "the durable entry {path} names inode {ino}, which the backing directory no longer has"
    )]
    Lost { path: PathBuf, ino: Ino },
    #[error("the durable namespace has more than {ENTRIES_MAX} entries, or a directory twice")]
    TooManyEntries,
    #[error("mounting again after the cut: {0}")]
    Remount(#[from] crate::MountError),
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CutError {
    let path = path.to_path_buf();
    move |source| CutError::Io { what, path, source }
}

fn errno_error(what: &'static str, path: &Path) -> impl FnOnce(fuser::Errno) -> CutError {
    let path = path.to_path_buf();
    move |errno| CutError::Io {
        what,
        path,
        source: io::Error::from_raw_os_error(errno.code()),
    }
}

/// One durable file or directory, relative to the root.
struct Durable {
    rel: PathBuf,
    ino: Ino,
    dir: bool,
    mode: u32,
}

/// The durable namespace, parents before children.
fn durable_tree(state: &mut State) -> Result<Vec<Durable>, CutError> {
    let mut out = Vec::new();
    let mut queue = VecDeque::from([(ROOT, PathBuf::new())]);
    let mut dirs = HashSet::from([ROOT]);
    while let Some((dir, rel)) = queue.pop_front() {
        let entries: Vec<(OsString, Ino)> = match state.namespace.durable_entries(dir) {
            Some(entries) => entries.iter().map(|(n, i)| (n.clone(), *i)).collect(),
            None => state
                .listing(dir)
                .map_err(errno_error("listing", &state.backing.join(&rel)))?
                .into_iter()
                .map(|(name, ino, _)| (name, ino))
                .collect(),
        };
        for (name, ino) in entries {
            let rel = rel.join(&name);
            let path = state.path(ino).map_err(|_| CutError::Lost {
                path: rel.clone(),
                ino,
            })?;
            let meta = std::fs::symlink_metadata(&path).map_err(|_| CutError::Lost {
                path: rel.clone(),
                ino,
            })?;
            if meta.is_dir() {
                if !dirs.insert(ino) {
                    return Err(CutError::TooManyEntries);
                }
                queue.push_back((ino, rel.clone()));
            }
            out.push(Durable {
                rel,
                ino,
                dir: meta.is_dir(),
                mode: meta.mode() & 0o7777,
            });
            if out.len() > ENTRIES_MAX {
                return Err(CutError::TooManyEntries);
            }
        }
    }
    Ok(out)
}

/// Carries out a power cut on `state`'s backing directory. The mount must
/// be gone; `state` is spent after it.
pub(crate) fn cut(state: &mut State, tear: &Tear) -> Result<CutReport, CutError> {
    let tree = durable_tree(state)?;
    let mut report = CutReport {
        dir_ops_dropped: state.namespace.pending() as u64,
        entries: tree.len() as u64,
        ..CutReport::default()
    };
    revert_files(state, &tree, tear, &mut report)?;
    rebuild(state, &tree)?;
    Ok(report)
}

/// Every durable file with pending writes back to its synced content, but
/// the torn one.
fn revert_files(
    state: &State,
    tree: &[Durable],
    tear: &Tear,
    report: &mut CutReport,
) -> Result<(), CutError> {
    let mut seen = HashSet::new();
    let pending: Vec<&Durable> = tree
        .iter()
        .filter(|d| !d.dir && state.files.contains_key(&d.ino) && seen.insert(d.ino))
        .collect();
    let (mut rng, torn_ino) = match tear {
        Tear::None => (Rng::new(0), None),
        Tear::RandomFile { seed } => {
            let mut rng = Rng::new(*seed);
            let torn = draw_by_pending_pages(state, &pending, &mut rng)?;
            (rng, torn)
        }
        Tear::File { path, seed } => (
            Rng::new(*seed),
            pending.iter().find(|d| &d.rel == path).map(|d| d.ino),
        ),
    };
    for durable in pending {
        let Some(undo) = state.files.get(&durable.ino) else {
            continue;
        };
        let path = state
            .path(durable.ino)
            .map_err(errno_error("finding", &durable.rel))?;
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_error("opening", &path))?;
        let current_len = file.metadata().map_err(io_error("stat", &path))?.len();
        let torn = torn_ino == Some(durable.ino);
        let mode = if rng.below(2) == 0 {
            TearMode::Prefix
        } else {
            TearMode::Subset
        };
        let plan = undo.plan(current_len, torn.then_some((mode, &mut rng)));
        file.set_len(plan.len)
            .map_err(io_error("cutting the length of", &path))?;
        for (at, fill) in &plan.writes {
            match fill {
                Fill::Bytes(bytes) => file.write_all_at(bytes, *at),
                Fill::Zeros(len) => write_zeros(&file, *at, *len),
            }
            .map_err(io_error("writing back", &path))?;
        }
        report.files_reverted += 1;
        report.pages_dropped += plan.pending_pages - plan.kept_pages;
        if torn {
            report.torn = Some(TornFile {
                path: durable.rel.clone(),
                mode,
                pending_pages: plan.pending_pages,
                kept_pages: plan.kept_pages,
                len: plan.len,
            });
        }
    }
    Ok(())
}

/// One of `pending`, drawn with a chance in proportion to its pending
/// pages: the file being appended to, more than an index with one page
/// touched.
fn draw_by_pending_pages(
    state: &State,
    pending: &[&Durable],
    rng: &mut Rng,
) -> Result<Option<Ino>, CutError> {
    let mut weights = Vec::with_capacity(pending.len());
    for durable in pending {
        let path = state
            .path(durable.ino)
            .map_err(errno_error("finding", &durable.rel))?;
        let len = std::fs::metadata(&path)
            .map_err(io_error("stat", &path))?
            .len();
        let pages = state
            .files
            .get(&durable.ino)
            .map_or(0, |undo| undo.pending_page_count(len));
        weights.push((durable.ino, pages));
    }
    let total: u64 = weights.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return Ok(None);
    }
    let mut at = rng.below(total);
    for (ino, weight) in weights {
        if at < weight {
            return Ok(Some(ino));
        }
        at -= weight;
    }
    // Not reached: a draw below the total weight lands on a file.
    Ok(None)
}

fn write_zeros(file: &std::fs::File, at: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0; ZEROS_CHUNK_BYTES.min(len) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], at + done)?;
        done += n;
    }
    Ok(())
}

/// Rebuilds the backing tree as `tree`: durable files are moved aside,
/// everything else is removed, then directories are made and files put
/// back at their durable names.
fn rebuild(state: &State, tree: &[Durable]) -> Result<(), CutError> {
    let backing = &state.backing;
    let aside = backing.join(HIDDEN).join("aside");
    std::fs::create_dir_all(&aside).map_err(io_error("creating", &aside))?;
    let mut first: HashMap<Ino, &Path> = HashMap::new();
    for durable in tree.iter().filter(|d| !d.dir) {
        if first.contains_key(&durable.ino) {
            continue;
        }
        first.insert(durable.ino, &durable.rel);
        let from = state
            .path(durable.ino)
            .map_err(errno_error("finding", &durable.rel))?;
        let to = aside.join(durable.ino.to_string());
        std::fs::rename(&from, &to).map_err(io_error("moving aside", &from))?;
    }
    for entry in std::fs::read_dir(backing).map_err(io_error("listing", backing))? {
        let entry = entry.map_err(io_error("listing", backing))?;
        if entry.file_name() == HIDDEN {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().map_err(io_error("stat", &path))?.is_dir();
        if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .map_err(io_error("removing", &path))?;
    }
    let mut placed = HashSet::new();
    for durable in tree {
        let to = backing.join(&durable.rel);
        if durable.dir {
            std::fs::create_dir(&to).map_err(io_error("creating", &to))?;
        } else if placed.insert(durable.ino) {
            let from = aside.join(durable.ino.to_string());
            std::fs::rename(&from, &to).map_err(io_error("putting back", &to))?;
        } else {
            // A second durable name of one inode (the model never makes
            // one, but a copy is the safe answer if it did).
            let original = backing.join(first[&durable.ino]);
            std::fs::copy(&original, &to).map_err(io_error("copying", &to))?;
        }
    }
    // Modes last, children first, so a read-only directory is filled
    // before it becomes one.
    for durable in tree.iter().rev().filter(|d| d.dir) {
        let path = backing.join(&durable.rel);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(durable.mode))
            .map_err(io_error("setting the mode of", &path))?;
    }
    let hidden = backing.join(HIDDEN);
    std::fs::remove_dir_all(&hidden).map_err(io_error("removing", &hidden))?;
    Ok(())
}
