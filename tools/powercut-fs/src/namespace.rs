//! Which directory entries are durable: the journal of entry changes
//! (create, mkdir, unlink, rmdir, rename) that no fsync of their directory
//! has covered yet, and the durable entries of every directory changed
//! since the mount. Pure: the file system records, the cut reads.
//!
//! The rule, as a journaling file system keeps it (ext4, XFS): fsync of a
//! directory makes every pending change of its entries durable, in order,
//! and with each change, the earlier changes that moved the same inode
//! (so a file renamed twice never lands in both places). A rename is one
//! change of two directories: an fsync of either makes it durable whole.
//! An fsync of a file makes no entry durable, not even its own (ext4
//! commits a new file's entry with it; the model does not count on it).
//!
//! Not thread-safe; the file system's state lock holds it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;

/// An inode number of the mount.
pub(crate) type Ino = u64;

/// The entries of one directory: name -> inode.
pub(crate) type Entries = BTreeMap<OsString, Ino>;

/// One change of directory entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DirOp {
    /// create, mknod, mkdir.
    Link { dir: Ino, name: OsString, ino: Ino },
    /// unlink, rmdir.
    Unlink { dir: Ino, name: OsString, ino: Ino },
    /// rename, replacing whatever `to_name` named.
    Rename {
        from: Ino,
        from_name: OsString,
        to: Ino,
        to_name: OsString,
        ino: Ino,
    },
}

impl DirOp {
    fn touches(&self, dir: Ino) -> bool {
        match self {
            DirOp::Link { dir: d, .. } | DirOp::Unlink { dir: d, .. } => *d == dir,
            DirOp::Rename { from, to, .. } => *from == dir || *to == dir,
        }
    }

    fn ino(&self) -> Ino {
        match self {
            DirOp::Link { ino, .. } | DirOp::Unlink { ino, .. } | DirOp::Rename { ino, .. } => *ino,
        }
    }

    fn dirs(&self) -> [Ino; 2] {
        match self {
            DirOp::Link { dir, .. } | DirOp::Unlink { dir, .. } => [*dir, *dir],
            DirOp::Rename { from, to, .. } => [*from, *to],
        }
    }
}

/// The durable side of the namespace.
#[derive(Debug, Default)]
pub(crate) struct Namespace {
    /// Directory -> its durable entries, for each directory whose entries
    /// changed since the mount; any other directory's durable entries are
    /// its current ones.
    durable: HashMap<Ino, Entries>,
    /// Changes not durable yet, oldest first.
    pending: Vec<DirOp>,
}

impl Namespace {
    /// Whether `dir`'s durable entries are known apart from its current
    /// ones. If not, [`Namespace::will_change`] wants them before the first
    /// change.
    pub(crate) fn knows(&self, dir: Ino) -> bool {
        self.durable.contains_key(&dir)
    }

    /// Notes `dir`'s current entries, read before its first change since
    /// the mount: until then they are its durable ones.
    pub(crate) fn will_change(&mut self, dir: Ino, current: Entries) {
        assert!(!self.knows(dir), "directory {dir} noted twice");
        self.durable.insert(dir, current);
    }

    /// Records a change made to the current entries; every directory it
    /// changes must be known ([`Namespace::will_change`]).
    pub(crate) fn record(&mut self, op: DirOp) {
        for dir in op.dirs() {
            assert!(
                self.knows(dir),
                "{op:?} changes directory {dir}, not noted before"
            );
        }
        self.pending.push(op);
    }

    /// fsync of `dir`: its pending changes become durable, with the
    /// earlier changes of the inodes they moved. Returns how many.
    pub(crate) fn sync_dir(&mut self, dir: Ino) -> usize {
        let mut moved = HashSet::new();
        let mut selected = vec![false; self.pending.len()];
        for (i, op) in self.pending.iter().enumerate().rev() {
            if op.touches(dir) || moved.contains(&op.ino()) {
                selected[i] = true;
                moved.insert(op.ino());
            }
        }
        let pending = std::mem::take(&mut self.pending);
        let mut synced = 0;
        for (op, selected) in pending.into_iter().zip(selected) {
            if selected {
                self.apply(&op);
                synced += 1;
            } else {
                self.pending.push(op);
            }
        }
        synced
    }

    fn apply(&mut self, op: &DirOp) {
        match op {
            DirOp::Link { dir, name, ino } => {
                self.entries_mut(*dir).insert(name.clone(), *ino);
            }
            DirOp::Unlink { dir, name, .. } => {
                self.entries_mut(*dir).remove(name);
            }
            DirOp::Rename {
                from,
                from_name,
                to,
                to_name,
                ino,
            } => {
                self.entries_mut(*from).remove(from_name);
                self.entries_mut(*to).insert(to_name.clone(), *ino);
            }
        }
    }

    // A test tool whose own bookkeeping went wrong: its verdicts would be
    // worthless, so it stops.
    #[allow(clippy::panic)]
    fn entries_mut(&mut self, dir: Ino) -> &mut Entries {
        self.durable
            .get_mut(&dir)
            .unwrap_or_else(|| panic!("directory {dir} changed without being noted"))
    }

    /// `dir`'s durable entries, or None if they are its current ones.
    pub(crate) fn durable_entries(&self, dir: Ino) -> Option<&Entries> {
        self.durable.get(&dir)
    }

    /// Changes no fsync covered yet.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> OsString {
        OsString::from(s)
    }

    fn entries(list: &[(&str, Ino)]) -> Entries {
        list.iter().map(|(n, i)| (name(n), *i)).collect()
    }

    const ROOT: Ino = 1;
    const A: Ino = 2;
    const B: Ino = 3;

    fn namespace() -> Namespace {
        let mut ns = Namespace::default();
        ns.will_change(ROOT, entries(&[("a", A), ("b", B)]));
        ns.will_change(A, entries(&[("x", 10)]));
        ns.will_change(B, Entries::new());
        ns
    }

    #[test]
    fn a_created_file_is_durable_only_once_its_directory_is_synced() {
        let mut ns = namespace();
        ns.record(DirOp::Link {
            dir: A,
            name: name("new"),
            ino: 11,
        });
        assert_eq!(ns.durable_entries(A), Some(&entries(&[("x", 10)])));
        assert_eq!(ns.sync_dir(B), 0, "another directory's sync covers nothing");
        assert_eq!(ns.pending(), 1);
        assert_eq!(ns.sync_dir(A), 1);
        assert_eq!(
            ns.durable_entries(A),
            Some(&entries(&[("new", 11), ("x", 10)]))
        );
        assert_eq!(ns.pending(), 0);
    }

    #[test]
    fn a_rename_is_durable_whole_from_either_directory() {
        for synced in [A, B] {
            let mut ns = namespace();
            ns.record(DirOp::Rename {
                from: A,
                from_name: name("x"),
                to: B,
                to_name: name("y"),
                ino: 10,
            });
            assert_eq!(ns.sync_dir(synced), 1);
            assert_eq!(ns.durable_entries(A), Some(&Entries::new()));
            assert_eq!(ns.durable_entries(B), Some(&entries(&[("y", 10)])));
        }
    }

    #[test]
    fn a_rename_brings_the_earlier_moves_of_its_inode_not_other_changes() {
        let mut ns = namespace();
        // Create a temp file in A, an unrelated file in A, then rename the
        // temp file into B, and sync B alone.
        ns.record(DirOp::Link {
            dir: A,
            name: name("tmp"),
            ino: 12,
        });
        ns.record(DirOp::Link {
            dir: A,
            name: name("other"),
            ino: 13,
        });
        ns.record(DirOp::Rename {
            from: A,
            from_name: name("tmp"),
            to: B,
            to_name: name("final"),
            ino: 12,
        });
        assert_eq!(ns.sync_dir(B), 2);
        assert_eq!(ns.durable_entries(B), Some(&entries(&[("final", 12)])));
        assert_eq!(ns.durable_entries(A), Some(&entries(&[("x", 10)])));
        assert_eq!(ns.pending(), 1, "the unrelated create is still pending");
    }

    #[test]
    fn a_file_renamed_twice_is_never_durable_in_two_places() {
        let mut ns = namespace();
        ns.record(DirOp::Rename {
            from: A,
            from_name: name("x"),
            to: A,
            to_name: name("w"),
            ino: 10,
        });
        ns.record(DirOp::Rename {
            from: A,
            from_name: name("w"),
            to: B,
            to_name: name("y"),
            ino: 10,
        });
        ns.sync_dir(B);
        assert_eq!(ns.durable_entries(A), Some(&Entries::new()));
        assert_eq!(ns.durable_entries(B), Some(&entries(&[("y", 10)])));
    }

    #[test]
    fn an_unlink_not_synced_leaves_the_durable_entry() {
        let mut ns = namespace();
        ns.record(DirOp::Unlink {
            dir: A,
            name: name("x"),
            ino: 10,
        });
        assert_eq!(ns.durable_entries(A), Some(&entries(&[("x", 10)])));
        ns.sync_dir(A);
        assert_eq!(ns.durable_entries(A), Some(&Entries::new()));
    }
}
