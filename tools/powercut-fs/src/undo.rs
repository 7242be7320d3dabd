//! The undo log of one file: what its pages held at its last sync, for the
//! pages changed since, and its length then. A power cut rewrites those
//! pages and cuts the file back to that length; a tear does so for only
//! some of them. Pure: the file system reads the pages before it changes
//! them and carries out the [`Plan`].
//!
//! Not thread-safe; the file system's state lock holds it.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::rng::Rng;

/// The unit of the model: a page is durable whole or not at all, as a
/// page of the page cache is written back whole.
pub(crate) const PAGE_BYTES: u64 = 4096;

/// What a page held at the last sync (its bytes below the synced length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Saved {
    /// All zeros, this many bytes: preallocated space, kept without memory.
    Zeros(u64),
    Bytes(Vec<u8>),
}

impl Saved {
    fn from_bytes(bytes: Vec<u8>) -> Saved {
        if bytes.iter().all(|&b| b == 0) {
            Saved::Zeros(bytes.len() as u64)
        } else {
            Saved::Bytes(bytes)
        }
    }

    fn len(&self) -> u64 {
        match self {
            Saved::Zeros(len) => *len,
            Saved::Bytes(bytes) => bytes.len() as u64,
        }
    }

    /// Bytes of memory this copy holds.
    pub(crate) fn memory_bytes(&self) -> u64 {
        match self {
            Saved::Zeros(_) => 0,
            Saved::Bytes(bytes) => bytes.len() as u64,
        }
    }
}

/// How a tear keeps part of a file's pending pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TearMode {
    /// The first k pending pages in file order, k drawn uniformly, and the
    /// length up to the last page kept: an append that reached the disk in
    /// part, in order.
    Prefix,
    /// Each pending page kept or lost on a coin, and the length either the
    /// synced or the current one: writes that reached the disk out of
    /// order.
    Subset,
}

/// One write of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fill {
    Bytes(Vec<u8>),
    Zeros(u64),
}

impl Fill {
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        match self {
            Fill::Bytes(bytes) => bytes.len() as u64,
            Fill::Zeros(len) => *len,
        }
    }
}

/// What a power cut or a tear does to one file: set its length to `len`,
/// then make these writes (each within `len`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) len: u64,
    pub(crate) writes: Vec<(u64, Fill)>,
    /// Pages changed since the last sync.
    pub(crate) pending_pages: u64,
    /// Of those, the pages whose current content the plan keeps.
    pub(crate) kept_pages: u64,
}

/// The undo log of one file with changes since its last sync.
#[derive(Debug, Clone)]
pub(crate) struct FileUndo {
    synced_len: u64,
    /// Page index -> its content at the last sync, for every page below
    /// `synced_len` changed since.
    saved: BTreeMap<u64, Saved>,
}

impl FileUndo {
    /// A file whose durable content is its first `synced_len` bytes as
    /// they are now.
    pub(crate) fn new(synced_len: u64) -> FileUndo {
        FileUndo {
            synced_len,
            saved: BTreeMap::new(),
        }
    }

    /// The pages of `from..to` that hold synced bytes not saved yet, each
    /// with the byte range to save: read them and [`FileUndo::save`] them
    /// before changing any byte of `from..to`.
    pub(crate) fn unsaved(&self, from: u64, to: u64) -> Vec<(u64, Range<u64>)> {
        let to = to.min(self.synced_len);
        if from >= to {
            return Vec::new();
        }
        (from / PAGE_BYTES..to.div_ceil(PAGE_BYTES))
            .filter(|page| !self.saved.contains_key(page))
            .map(|page| {
                let start = page * PAGE_BYTES;
                (page, start..(start + PAGE_BYTES).min(self.synced_len))
            })
            .collect()
    }

    /// Keeps `bytes`, the synced content of `page` as [`FileUndo::unsaved`]
    /// asked for it. Returns the bytes of memory it takes.
    pub(crate) fn save(&mut self, page: u64, bytes: Vec<u8>) -> u64 {
        let start = page * PAGE_BYTES;
        assert!(
            start < self.synced_len
                && bytes.len() as u64 == (start + PAGE_BYTES).min(self.synced_len) - start,
            "page {page} saved with {} bytes, synced length {}",
            bytes.len(),
            self.synced_len
        );
        let saved = Saved::from_bytes(bytes);
        let memory = saved.memory_bytes();
        let before = self.saved.insert(page, saved);
        assert!(before.is_none(), "page {page} saved twice");
        memory
    }

    /// Bytes of memory the saved pages take.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.saved.values().map(Saved::memory_bytes).sum()
    }

    /// How many pages changed since the last sync, for a file now
    /// `current_len` bytes long.
    pub(crate) fn pending_page_count(&self, current_len: u64) -> u64 {
        self.pending_pages(current_len).len() as u64
    }

    /// The pages changed since the last sync, in file order, for a file
    /// now `current_len` bytes long.
    fn pending_pages(&self, current_len: u64) -> Vec<u64> {
        let grown = if current_len > self.synced_len {
            self.synced_len / PAGE_BYTES..current_len.div_ceil(PAGE_BYTES)
        } else {
            0..0
        };
        let mut pages: Vec<u64> = self
            .saved
            .keys()
            .copied()
            .filter(|page| !grown.contains(page))
            .chain(grown.clone())
            .collect();
        pages.sort_unstable();
        pages
    }

    /// What brings the file, now `current_len` bytes long, back to its
    /// synced content (`tear` None), or to a mix of synced and current
    /// pages (see [`TearMode`]).
    pub(crate) fn plan(&self, current_len: u64, tear: Option<(TearMode, &mut Rng)>) -> Plan {
        let synced = self.synced_len;
        let pages = self.pending_pages(current_len);
        let (kept, len) = match tear {
            None => (vec![false; pages.len()], synced),
            Some((TearMode::Prefix, rng)) => {
                let k = rng.below(pages.len() as u64 + 1) as usize;
                let kept: Vec<bool> = (0..pages.len()).map(|i| i < k).collect();
                let len = if current_len >= synced {
                    let end = k
                        .checked_sub(1)
                        .map_or(0, |last| (pages[last] + 1) * PAGE_BYTES);
                    end.min(current_len).max(synced)
                } else if k == pages.len() {
                    current_len
                } else {
                    synced
                };
                (kept, len)
            }
            Some((TearMode::Subset, rng)) => {
                let kept: Vec<bool> = pages.iter().map(|_| rng.below(2) == 1).collect();
                let len = if rng.below(2) == 1 {
                    current_len
                } else {
                    synced
                };
                (kept, len)
            }
        };
        let mut writes = Vec::new();
        for (&page, _) in pages.iter().zip(&kept).filter(|(_, kept)| !**kept) {
            let start = page * PAGE_BYTES;
            if let Some(saved) = self.saved.get(&page) {
                let n = saved.len().min(len.saturating_sub(start));
                if n > 0 {
                    let fill = match saved {
                        Saved::Zeros(_) => Fill::Zeros(n),
                        Saved::Bytes(bytes) => Fill::Bytes(bytes[..n as usize].to_vec()),
                    };
                    writes.push((start, fill));
                }
            }
            // Bytes past the synced length but within the new one held
            // nothing at the sync: zeros, as a hole reads.
            let from = start.max(synced);
            let to = (start + PAGE_BYTES).min(len);
            if from < to {
                writes.push((from, Fill::Zeros(to - from)));
            }
        }
        Plan {
            len,
            writes,
            pending_pages: pages.len() as u64,
            kept_pages: kept.iter().filter(|&&k| k).count() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

    /// A file in memory, changed through its undo log as the file system
    /// changes a backing file.
    struct File {
        bytes: Vec<u8>,
        undo: FileUndo,
        /// The model: the content at the last sync.
        synced: Vec<u8>,
    }

    #[derive(Debug, Clone)]
    enum Op {
        Write { at: u64, len: u64, byte: u8 },
        Truncate(u64),
        Zero { at: u64, len: u64 },
        Sync,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..40_000u64, 1..9_000u64, 1..=255u8).prop_map(|(at, len, byte)| Op::Write { at, len, byte }),
            1 => (0..40_000u64).prop_map(Op::Truncate),
            1 => (0..40_000u64, 1..9_000u64).prop_map(|(at, len)| Op::Zero { at, len }),
            1 => Just(Op::Sync),
        ]
    }

    impl File {
        fn new(bytes: Vec<u8>) -> File {
            File {
                undo: FileUndo::new(bytes.len() as u64),
                synced: bytes.clone(),
                bytes,
            }
        }

        fn preserve(&mut self, from: u64, to: u64) {
            for (page, range) in self.undo.unsaved(from, to) {
                let bytes = self.bytes[range.start as usize..range.end as usize].to_vec();
                self.undo.save(page, bytes);
            }
        }

        fn apply(&mut self, op: &Op) {
            match *op {
                Op::Write { at, len, byte } => {
                    self.preserve(at, at + len);
                    let end = (at + len) as usize;
                    if self.bytes.len() < end {
                        self.bytes.resize(end, 0);
                    }
                    self.bytes[at as usize..end].fill(byte);
                }
                Op::Truncate(len) => {
                    self.preserve(len, u64::MAX);
                    self.bytes.resize(len as usize, 0);
                }
                Op::Zero { at, len } => {
                    self.preserve(at, at + len);
                    let end = ((at + len) as usize).min(self.bytes.len());
                    if (at as usize) < end {
                        self.bytes[at as usize..end].fill(0);
                    }
                }
                Op::Sync => {
                    self.undo = FileUndo::new(self.bytes.len() as u64);
                    self.synced = self.bytes.clone();
                }
            }
        }

        fn carry_out(&self, plan: &Plan) -> Vec<u8> {
            let mut bytes = self.bytes.clone();
            bytes.resize(plan.len as usize, 0);
            for (at, fill) in &plan.writes {
                let at = *at as usize;
                assert!(
                    at as u64 + fill.len() <= plan.len,
                    "a write past the new length"
                );
                match fill {
                    Fill::Bytes(b) => bytes[at..at + b.len()].copy_from_slice(b),
                    Fill::Zeros(n) => bytes[at..at + *n as usize].fill(0),
                }
            }
            bytes
        }
    }

    fn page_of(bytes: &[u8], page: usize, len: usize) -> Vec<u8> {
        let mut out = vec![0; PAGE_BYTES as usize];
        let start = page * PAGE_BYTES as usize;
        for (i, b) in out.iter_mut().enumerate() {
            if start + i < len.min(bytes.len()) {
                *b = bytes[start + i];
            }
        }
        out
    }

    proptest! {
        #[test]
        fn a_power_cut_brings_back_exactly_the_synced_content(
            initial in 0..20_000usize,
            ops in proptest::collection::vec(op(), 0..30),
        ) {
            let mut file = File::new((0..initial).map(|i| (i % 251) as u8 + 1).collect());
            for op in &ops {
                file.apply(op);
            }
            let plan = file.undo.plan(file.bytes.len() as u64, None);
            prop_assert_eq!(plan.kept_pages, 0);
            prop_assert!(file.carry_out(&plan) == file.synced, "not the synced content");
        }

        #[test]
        fn a_tear_leaves_each_page_synced_or_current(
            initial in 0..20_000usize,
            ops in proptest::collection::vec(op(), 0..30),
            seed in any::<u64>(),
            prefix in any::<bool>(),
        ) {
            let mut file = File::new((0..initial).map(|i| (i % 251) as u8 + 1).collect());
            for op in &ops {
                file.apply(op);
            }
            let mode = if prefix { TearMode::Prefix } else { TearMode::Subset };
            let mut rng = Rng::new(seed);
            let current_len = file.bytes.len() as u64;
            let plan = file.undo.plan(current_len, Some((mode, &mut rng)));
            let synced_len = file.synced.len() as u64;
            prop_assert!(
                plan.len == synced_len || plan.len == current_len
                    || (mode == TearMode::Prefix && plan.len > synced_len.min(current_len) && plan.len < synced_len.max(current_len)),
                "length {} from synced {} and current {}", plan.len, synced_len, current_len
            );
            let torn = file.carry_out(&plan);
            let len = torn.len();
            for page in 0..len.div_ceil(PAGE_BYTES as usize) {
                let got = page_of(&torn, page, len);
                let synced = page_of(&file.synced, page, len);
                let current = page_of(&file.bytes, page, len);
                prop_assert!(got == synced || got == current, "page {} is neither synced nor current", page);
            }
        }
    }

    #[test]
    fn appends_past_the_synced_length_need_no_copies_and_preallocated_zeros_no_memory() {
        let mut undo = FileUndo::new(10_000);
        assert!(undo.unsaved(10_000, 20_000).is_empty());
        let wanted = undo.unsaved(9_000, 13_000);
        assert_eq!(wanted, vec![(2, 8192..10_000)]);
        assert_eq!(undo.save(2, vec![0; 1808]), 0);
        assert_eq!(undo.memory_bytes(), 0);
        assert!(undo.unsaved(9_000, 13_000).is_empty());
        let plan = undo.plan(13_000, None);
        assert_eq!(plan.len, 10_000);
        assert_eq!(plan.writes, vec![(8192, Fill::Zeros(1808))]);
        assert_eq!(plan.pending_pages, 2);
    }
}
