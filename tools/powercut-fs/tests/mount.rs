//! The power-cut file system through a real mount (root and /dev/fuse):
//! what survives a cut is what fsync of the file and of its directory
//! made durable, and nothing else.

// Helpers outside #[test] functions unwrap too: a failure is the test's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rill_powercut_fs::{FUSE_DEVICE, PowerCutFs, Tear, TearMode};

struct Mounted {
    fs: PowerCutFs,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mounted {
    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// A fresh mount over a backing directory holding `files`, or None (and
/// a note) where the machine has no FUSE.
fn mount(files: &[(&str, &[u8])]) -> Option<Mounted> {
    if !Path::new(FUSE_DEVICE).exists() {
        eprintln!("skipped: {FUSE_DEVICE} is missing, so nothing can be mounted");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("backing");
    let root = dir.path().join("mnt");
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&root).unwrap();
    for (name, content) in files {
        std::fs::write(backing.join(name), content).unwrap();
    }
    let fs = PowerCutFs::mount(&backing, &root).unwrap();
    Some(Mounted {
        fs,
        root,
        _dir: dir,
    })
}

fn fsync_dir(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

fn write_file(path: &Path, content: &[u8], sync: bool) {
    let mut file = File::create(path).unwrap();
    file.write_all(content).unwrap();
    if sync {
        file.sync_all().unwrap();
    }
}

fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

#[test]
fn file_data_survives_a_cut_only_once_fsynced() {
    let Some(mut m) = mount(&[("old", b"synced at the mount")]) else {
        return;
    };
    let old = OpenOptions::new().write(true).open(m.path("old")).unwrap();
    old.write_all_at(b"SYNCED", 0).unwrap();
    old.write_all_at(b" and a tail that nobody synced", 19)
        .unwrap();
    drop(old);
    let mut synced = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(m.path("synced"))
        .unwrap();
    synced.write_all(b"fdatasync'd").unwrap();
    synced.sync_data().unwrap();
    synced.write_all(b" and more, not").unwrap();
    drop(synced);
    fsync_dir(&m.root);
    assert_eq!(
        read(&m.path("old")).unwrap(),
        b"SYNCED at the mount and a tail that nobody synced"
    );

    let report = m.fs.power_cut(&Tear::None).unwrap();

    assert_eq!(read(&m.path("old")).unwrap(), b"synced at the mount");
    assert_eq!(read(&m.path("synced")).unwrap(), b"fdatasync'd");
    assert_eq!(report.files_reverted, 2);
    assert_eq!(report.dir_ops_dropped, 0);
    m.fs.unmount().unwrap();
}

#[test]
fn directory_entries_survive_a_cut_only_once_their_directory_is_fsynced() {
    let Some(mut m) = mount(&[("doomed", b"still here"), ("checkpoint", b"v1")]) else {
        return;
    };
    // A file synced, but not its directory: gone (conservatively; ext4
    // might keep it).
    write_file(&m.path("no-dir-sync"), b"data", true);
    // The checkpoint pattern: temp file, fsync, rename over, no directory
    // fsync: the old checkpoint is what a cut leaves.
    write_file(&m.path("checkpoint.tmp"), b"v2", true);
    std::fs::rename(m.path("checkpoint.tmp"), m.path("checkpoint")).unwrap();
    // An unlink not synced: back after the cut, with its content.
    std::fs::remove_file(m.path("doomed")).unwrap();
    // A directory and a file in it, both synced, the parent not: gone.
    std::fs::create_dir(m.path("sub")).unwrap();
    write_file(&m.path("sub/inner"), b"x", true);
    fsync_dir(&m.path("sub"));
    assert_eq!(read(&m.path("checkpoint")).unwrap(), b"v2");
    assert!(!m.path("doomed").exists());

    let report = m.fs.power_cut(&Tear::None).unwrap();

    assert!(!m.path("no-dir-sync").exists());
    assert!(!m.path("checkpoint.tmp").exists());
    assert_eq!(read(&m.path("checkpoint")).unwrap(), b"v1");
    assert_eq!(read(&m.path("doomed")).unwrap(), b"still here");
    assert!(!m.path("sub").exists());
    assert_eq!(report.dir_ops_dropped, 5);
    let mut names: Vec<_> = std::fs::read_dir(&m.root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["checkpoint", "doomed"]);

    // The same, with the directory synced: all of it stays.
    write_file(&m.path("checkpoint.tmp"), b"v2", true);
    std::fs::rename(m.path("checkpoint.tmp"), m.path("checkpoint")).unwrap();
    std::fs::remove_file(m.path("doomed")).unwrap();
    std::fs::create_dir(m.path("sub")).unwrap();
    write_file(&m.path("sub/inner"), b"x", true);
    fsync_dir(&m.path("sub"));
    fsync_dir(&m.root);

    m.fs.power_cut(&Tear::None).unwrap();

    assert_eq!(read(&m.path("checkpoint")).unwrap(), b"v2");
    assert!(!m.path("doomed").exists());
    assert_eq!(read(&m.path("sub/inner")).unwrap(), b"x");
    m.fs.unmount().unwrap();
}

#[test]
fn a_file_whose_entry_is_durable_but_not_its_data_comes_back_empty() {
    let Some(mut m) = mount(&[]) else {
        return;
    };
    write_file(&m.path("segment"), b"appended, never fsynced", false);
    fsync_dir(&m.root);
    m.fs.power_cut(&Tear::None).unwrap();
    assert_eq!(read(&m.path("segment")).unwrap(), b"");
    m.fs.unmount().unwrap();
}

#[test]
fn syncfs_and_close_make_nothing_durable() {
    let Some(mut m) = mount(&[("log", b"")]) else {
        return;
    };
    let mut file = OpenOptions::new().append(true).open(m.path("log")).unwrap();
    file.write_all(b"acknowledged after a syncfs").unwrap();
    // FUSE does not pass syncfs(2) on: it writes dirty pages back and
    // returns 0, having made nothing durable.
    rustix::fs::syncfs(&file).unwrap();
    drop(file);
    m.fs.power_cut(&Tear::None).unwrap();
    assert_eq!(read(&m.path("log")).unwrap(), b"");
    m.fs.unmount().unwrap();
}

#[test]
#[allow(unsafe_code)] // memmap2's maps are unsafe to create
fn a_shared_writable_map_is_durable_after_msync_and_not_before() {
    let Some(mut m) = mount(&[]) else {
        return;
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(m.path("index"))
        .unwrap();
    file.set_len(3 * 4096).unwrap();
    file.sync_all().unwrap();
    fsync_dir(&m.root);
    // SAFETY: the test alone uses this file; nothing truncates it while
    // it is mapped.
    let mut map = unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap();
    map[..5].copy_from_slice(b"first");
    map.flush().unwrap();
    map[4096..4102].copy_from_slice(b"second");
    map[8192..8197].copy_from_slice(b"third");
    // Only the first page was synced (msync); the other two are dirty in
    // the page cache or written back, but not synced.
    drop(map);
    drop(file);
    let pending = m.fs.pending();
    assert_eq!(pending.files, 1, "{pending:?}");

    m.fs.power_cut(&Tear::None).unwrap();

    let content = read(&m.path("index")).unwrap();
    assert_eq!(content.len(), 3 * 4096);
    assert_eq!(&content[..5], b"first");
    assert!(content[4096..].iter().all(|&b| b == 0));
    m.fs.unmount().unwrap();
}

#[test]
fn a_tear_keeps_each_pending_page_whole_either_old_or_new() {
    let pages = 16;
    let old = vec![b'o'; pages * 4096];
    let Some(mut m) = mount(&[("segment", &old)]) else {
        return;
    };
    let file = OpenOptions::new()
        .write(true)
        .open(m.path("segment"))
        .unwrap();
    file.write_all_at(&vec![b'n'; pages * 4096], 0).unwrap();
    file.write_all_at(&vec![b'a'; 2 * 4096], (pages * 4096) as u64)
        .unwrap();
    drop(file);
    let mut modes = Vec::new();
    for seed in 0..6 {
        let report =
            m.fs.power_cut(&Tear::File {
                path: "segment".into(),
                seed,
            })
            .unwrap();
        let torn = report.torn.expect("the segment had pending writes");
        let content = read(&m.path("segment")).unwrap();
        assert_eq!(content.len() as u64, torn.len);
        let mut kept = 0;
        for page in content.chunks(4096) {
            let first = page[0];
            assert!(page.iter().all(|&b| b == first), "a page torn inside");
            assert!([b'o', b'n', b'a', 0].contains(&first));
            kept += u64::from(first == b'n' || first == b'a');
        }
        assert!(kept <= torn.kept_pages, "{torn:?}");
        modes.push(torn.mode);
        // Put the old content back and write the new again.
        let file = OpenOptions::new()
            .write(true)
            .open(m.path("segment"))
            .unwrap();
        file.set_len(0).unwrap();
        file.write_all_at(&old, 0).unwrap();
        file.sync_all().unwrap();
        file.write_all_at(&vec![b'n'; pages * 4096], 0).unwrap();
        file.write_all_at(&vec![b'a'; 2 * 4096], (pages * 4096) as u64)
            .unwrap();
    }
    assert!(
        modes.contains(&TearMode::Prefix) && modes.contains(&TearMode::Subset),
        "{modes:?}"
    );
    m.fs.unmount().unwrap();
}

#[test]
fn the_mount_says_it_is_fuse_and_reads_what_was_there() {
    let Some(m) = mount(&[("a", b"alpha")]) else {
        return;
    };
    let stat = rustix::fs::statfs(&m.root).unwrap();
    // FUSE_SUPER_MAGIC: what a broker looks for before trusting syncfs.
    assert_eq!(stat.f_type as u64, 0x6573_5546);
    assert_eq!(read(&m.path("a")).unwrap(), b"alpha");
    let names: Vec<_> = std::fs::read_dir(&m.root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["a"], "the file system's own directory stays hidden");
    drop(m);
}
