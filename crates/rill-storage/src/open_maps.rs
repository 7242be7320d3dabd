//! Segment and index maps made only while the process's budget allows.
//!
//! A mapping per segment file would bound a broker by vm.max_map_count
//! (65,530 by default), not by its work: three maps a segment is about
//! 20,000 partitions. So a segment maps its files only when a read or an
//! append needs their bytes, and when more than [`maps_max`] maps exist the
//! idle ones go: logs take part in a CLOCK sweep (the same second-chance
//! scheme as open_files.rs), and a sweep that reaches a log whose lock is
//! free unmaps each segment not used since the hand last passed. A busy
//! partition's active segment stays mapped because it stays used.
//!
//! Unmapping loses nothing: the files are MAP_SHARED, so their dirty pages
//! stay in the page cache for the next fdatasync, and a map that a reader
//! still holds bytes of (a fetch response being sent) is never unmapped
//! (see mmap.rs), so what readers hold never changes under them.

use std::collections::VecDeque;
use std::io;
use std::sync::Weak;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Segment and index maps alive now.
static MAPS: AtomicUsize = AtomicUsize::new(0);
/// The budget as set; 0 for the default.
static MAX: AtomicUsize = AtomicUsize::new(0);
/// The logs whose idle maps a sweep may take, in the order the clock hand
/// visits them.
static RING: Mutex<VecDeque<Weak<dyn MapHolder>>> = parking_lot::const_mutex(VecDeque::new());

/// Maps left to everything else of the process under vm.max_map_count:
/// thread stacks (two maps each), the allocator's arenas, libraries. Past
/// the limit, mmap fails anywhere — a new thread's stack guard among
/// them, which aborts the process — so segments stop short of it.
const MAPS_HEADROOM: usize = 4096;

/// The fewest maps the budget allows, whatever is set.
const MAX_FLOOR: usize = 16;

/// Something holding segment maps that a sweep may unmap: a log.
pub(crate) trait MapHolder: Send + Sync {
    /// Unmaps what was not used since the last call, unless busy; returns
    /// how many maps went.
    fn unmap_idle(&self) -> usize;
}

/// Sets how many segment and index maps may exist at once
/// (`rill.log.maps.max`); at least 16, and never more than
/// vm.max_map_count leaves after the process's own maps.
pub fn set_maps_max(max: usize) {
    MAX.store(max.max(MAX_FLOOR), Ordering::Relaxed);
}

/// How many segment and index maps may exist at once: as set, or what
/// vm.max_map_count leaves after 4,096 for the rest of the process.
pub fn maps_max() -> usize {
    let hard = max_map_count().saturating_sub(MAPS_HEADROOM).max(MAX_FLOOR);
    match MAX.load(Ordering::Relaxed) {
        0 => hard,
        set => set.min(hard),
    }
}

/// Segment and index maps alive now.
pub fn maps() -> usize {
    MAPS.load(Ordering::Relaxed)
}

/// The kernel's vm.max_map_count, read once (65,530, its default, if it
/// cannot be read).
fn max_map_count() -> usize {
    static MAX_MAP_COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX_MAP_COUNT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65_530)
    })
}

/// One map counted against the budget while alive.
#[derive(Debug)]
pub(crate) struct MapPermit(());

impl MapPermit {
    /// Counts one more map, unmapping idle ones first when the budget is
    /// spent; refused when none can go (every map is in use).
    pub(crate) fn take() -> io::Result<MapPermit> {
        let max = maps_max();
        if MAPS.load(Ordering::Relaxed) >= max {
            unmap_idle((max / 64).max(1));
        }
        let taken = MAPS.fetch_add(1, Ordering::Relaxed);
        if taken >= max {
            MAPS.fetch_sub(1, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "{taken} segment maps in use, and the budget (rill.log.maps.max, at most \
                     vm.max_map_count {} less {MAPS_HEADROOM}) is {max}: raise \
                     vm.max_map_count (sysctl) to serve more partitions at once",
                    max_map_count()
                ),
            ));
        }
        Ok(MapPermit(()))
    }
}

impl Drop for MapPermit {
    fn drop(&mut self) {
        MAPS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Lets sweeps unmap `holder`'s idle maps while it lives.
pub(crate) fn register(holder: Weak<dyn MapHolder>) {
    let mut ring = RING.lock();
    // Dropped logs leave dead entries that only a sweep would meet; clear
    // them each time the ring doubles, so it stays about as long as the
    // logs alive.
    if ring.len() >= 1024 && ring.len().is_power_of_two() {
        ring.retain(|weak| weak.strong_count() > 0);
    }
    ring.push_back(holder);
}

/// Sweeps the ring until `want` maps went or the hand went round twice
/// (the first round may only clear `used` marks).
fn unmap_idle(want: usize) {
    let mut ring = RING.lock();
    let mut freed = 0;
    for _ in 0..ring.len().saturating_mul(2) {
        let Some(weak) = ring.pop_front() else {
            return;
        };
        let Some(holder) = weak.upgrade() else {
            continue; // a log dropped since: its entry goes
        };
        freed += holder.unmap_idle();
        ring.push_back(weak);
        if freed >= want {
            return;
        }
    }
}
