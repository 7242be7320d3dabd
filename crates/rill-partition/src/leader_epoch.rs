//! The leader-epoch cache: for each leader epoch, the first offset written
//! in it, checkpointed to `leader-epoch-checkpoint` in Kafka's format
//! (`epoch start_offset` per line). It answers OffsetForLeaderEpoch, which
//! tells a returning follower where to truncate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rill_storage::{Disk, Offset};

use crate::checkpoint::{self, CheckpointError};

/// The checkpoint file's name inside a partition directory, as in Kafka.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: Offset = Offset(-1);

/// One epoch and the first offset its leader wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: Offset,
}

/// Not thread-safe: the partition keeps it behind its append lock.
/// Entries are strictly increasing in both epoch and start offset; every
/// change is written to the checkpoint before the call returns.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    /// What the checkpoint is written through.
    disk: Arc<dyn Disk>,
    entries: Vec<EpochEntry>,
    /// The file still holds entries [`LeaderEpochCache::fit_to_log`]
    /// dropped: written at the next append.
    file_behind: bool,
}

impl LeaderEpochCache {
    /// Loads the cache of the partition in `dir` (empty if never written).
    pub fn load(dir: &Path, disk: Arc<dyn Disk>) -> Result<LeaderEpochCache, CheckpointError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let lines = checkpoint::read(&path, 2)?.unwrap_or_default();
        let mut entries: Vec<EpochEntry> = Vec::with_capacity(lines.len());
        for (i, fields) in lines.iter().enumerate() {
            let malformed = || CheckpointError::Malformed {
                path: path.clone(),
                line: 3 + i,
                expected: "an epoch and a start offset, both increasing",
                found: fields.join(" "),
            };
            let epoch: i32 = fields[0].parse().map_err(|_| malformed())?;
            let start_offset: i64 = fields[1].parse().map_err(|_| malformed())?;
            let entry = EpochEntry {
                epoch,
                start_offset: Offset(start_offset),
            };
            if epoch < 0
                || start_offset < 0
                || entries.last().is_some_and(|last| {
                    last.epoch >= epoch || last.start_offset > entry.start_offset
                })
            {
                return Err(malformed());
            }
            entries.push(entry);
        }
        Ok(LeaderEpochCache {
            path,
            disk,
            entries,
            file_behind: false,
        })
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` began at `start_offset`, when it is newer than
    /// the latest epoch (a batch of an older epoch changes nothing). Any
    /// entry at or after `start_offset` is replaced.
    pub fn assign(&mut self, epoch: i32, start_offset: Offset) -> Result<(), CheckpointError> {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            // Before the log grows past an entry only the file still has.
            return if self.file_behind {
                self.flush()
            } else {
                Ok(())
            };
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.flush()
    }

    /// OffsetForLeaderEpoch, with Kafka's answers: for the latest epoch,
    /// (epoch, log end offset); for an older one, the largest epoch <= it
    /// and the start offset of the first epoch after it; for one newer
    /// than all, or none at all, (-1, -1).
    pub fn end_offset_for(&self, requested: i32, log_end: Offset) -> (i32, Offset) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return undefined;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return undefined;
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            // Older than every epoch known here: the follower truncates to
            // where the first known epoch began.
            None => (requested, higher.start_offset),
        }
    }

    /// Forgets epochs that began at or after `end` (the log was cut there).
    pub fn truncate_from_end(&mut self, end: Offset) -> Result<(), CheckpointError> {
        if self.cut_end(end) {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Drops epochs wholly before `start` (the log start moved); the epoch
    /// in force at `start` then begins there.
    pub fn truncate_from_start(&mut self, start: Offset) -> Result<(), CheckpointError> {
        if self.cut_start(start) {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Fits the cache to a log just opened, which holds `start..end`, in
    /// memory only: an epoch that began at the log end with no record
    /// written in it (each restart makes one, for every partition led)
    /// would otherwise cost a checkpoint write and its syncs per partition
    /// at every start. The file is written before the first append
    /// ([`LeaderEpochCache::assign`]): until the log grows past where it
    /// was, every open fits the file to the log again (Kafka flushes these
    /// truncations asynchronously too, KAFKA-15046).
    pub fn fit_to_log(&mut self, start: Offset, end: Offset) {
        let cut = self.cut_end(end);
        self.file_behind |= self.cut_start(start) || cut;
    }

    /// [`LeaderEpochCache::truncate_from_end`] in memory; whether it
    /// changed anything.
    fn cut_end(&mut self, end: Offset) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end);
        self.entries.len() != before
    }

    /// [`LeaderEpochCache::truncate_from_start`] in memory; whether it
    /// changed anything.
    fn cut_start(&mut self, start: Offset) -> bool {
        let before: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].start_offset < start)
            .collect();
        let Some(&last_before) = before.last() else {
            return false;
        };
        let mut kept = self.entries[last_before];
        kept.start_offset = start;
        self.entries.drain(..=last_before);
        self.entries.insert(0, kept);
        true
    }

    /// Forgets every epoch (the log restarted empty).
    pub fn clear(&mut self) -> Result<(), CheckpointError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        self.entries.clear();
        self.flush()
    }

    fn flush(&mut self) -> Result<(), CheckpointError> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset))
            .collect();
        checkpoint::write(self.disk.as_ref(), &self.path, &lines)?;
        self.file_behind = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with(entries: &[(i32, i64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let mut cache =
            LeaderEpochCache::load(dir.path(), Arc::new(rill_storage::RealDisk)).unwrap();
        for &(epoch, start) in entries {
            cache.assign(epoch, Offset(start)).unwrap();
        }
        (dir, cache)
    }

    fn on_disk(dir: &tempfile::TempDir) -> Vec<EpochEntry> {
        LeaderEpochCache::load(dir.path(), Arc::new(rill_storage::RealDisk))
            .unwrap()
            .entries()
            .to_vec()
    }

    #[test]
    fn fitting_to_an_opened_log_writes_nothing_until_the_next_append() {
        // Led at epoch 2 from offset 5, and restarted before writing in it.
        let (dir, mut cache) = cache_with(&[(0, 0), (2, 5)]);
        cache.fit_to_log(Offset(0), Offset(5));
        assert_eq!(cache.latest_epoch(), Some(0));
        assert_eq!(on_disk(&dir).len(), 2, "the file is left as it was");
        // Every open fits it again.
        let mut reopened =
            LeaderEpochCache::load(dir.path(), Arc::new(rill_storage::RealDisk)).unwrap();
        reopened.fit_to_log(Offset(0), Offset(5));
        assert_eq!(reopened.entries(), cache.entries());
        // An append, even of the old epoch, writes it before the log grows
        // past offset 5, where the stale entry would no longer be cut.
        cache.assign(0, Offset(5)).unwrap();
        assert_eq!(on_disk(&dir), cache.entries());
    }

    #[test]
    fn end_offsets_follow_kafkas_rules() {
        let (_dir, cache) = cache_with(&[(1, 0), (3, 100), (5, 250)]);
        let end = Offset(300);
        assert_eq!(
            cache.end_offset_for(5, end),
            (5, end),
            "latest epoch: the log end"
        );
        assert_eq!(cache.end_offset_for(3, end), (3, Offset(250)));
        assert_eq!(
            cache.end_offset_for(4, end),
            (3, Offset(250)),
            "an epoch never led here: the one before"
        );
        assert_eq!(cache.end_offset_for(2, end), (1, Offset(100)));
        assert_eq!(
            cache.end_offset_for(0, end),
            (0, Offset(0)),
            "older than all: where the first began"
        );
        assert_eq!(
            cache.end_offset_for(6, end),
            (-1, Offset(-1)),
            "newer than all: undefined"
        );
        assert_eq!(cache.end_offset_for(-1, end), (-1, Offset(-1)));
        let (_dir, empty) = cache_with(&[]);
        assert_eq!(empty.end_offset_for(0, end), (-1, Offset(-1)));
    }

    #[test]
    fn older_epochs_are_ignored_and_changes_survive_a_reload() {
        let (dir, mut cache) = cache_with(&[(2, 10), (1, 20), (2, 30), (4, 40)]);
        assert_eq!(
            cache.entries(),
            [
                EpochEntry {
                    epoch: 2,
                    start_offset: Offset(10)
                },
                EpochEntry {
                    epoch: 4,
                    start_offset: Offset(40)
                }
            ]
        );
        cache.truncate_from_end(Offset(40)).unwrap();
        assert_eq!(cache.latest_epoch(), Some(2));
        cache.assign(3, Offset(35)).unwrap();
        cache.truncate_from_start(Offset(20)).unwrap();
        let reloaded =
            LeaderEpochCache::load(dir.path(), Arc::new(rill_storage::RealDisk)).unwrap();
        assert_eq!(
            reloaded.entries(),
            [
                EpochEntry {
                    epoch: 2,
                    start_offset: Offset(20)
                },
                EpochEntry {
                    epoch: 3,
                    start_offset: Offset(35)
                }
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap(),
            "0\n2\n2 20\n3 35\n"
        );
    }

    #[test]
    fn a_corrupt_checkpoint_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(LEADER_EPOCH_CHECKPOINT),
            "0\n2\n3 10\n2 20\n",
        )
        .unwrap();
        assert!(matches!(
            LeaderEpochCache::load(dir.path(), Arc::new(rill_storage::RealDisk)),
            Err(CheckpointError::Malformed { line: 4, .. })
        ));
    }
}
