//! The Raft log and vote of one controller, durable under a directory.
//!
//! Files (every record framed as in [`crate::durable_file`]: u32 LE
//! length, u32 LE CRC-32C of the payload, payload):
//!
//! - `raft-log`: append-only, one record per entry, the payload being the
//!   entry as JSON (`{"log_id":…,"payload":…}`), indexes consecutive.
//!   An append is written and fdatasynced before openraft is told it is
//!   flushed. A truncation (a follower's conflicting suffix) cuts the file
//!   at the first removed entry and fsyncs.
//! - `raft-vote`: the vote as JSON, replaced atomically and fsynced before
//!   `save_vote` returns.
//! - `raft-purged`: the last purged log id as JSON, replaced atomically.
//!   A purge (entries covered by a snapshot) writes it first, then
//!   rewrites `raft-log` without the purged prefix (temp file, fsync,
//!   rename, fsync the directory) once the prefix is at least half the
//!   file. Entries at or below the purge point still in the file after a
//!   crash are skipped on open.
//!
//! The directory is made durably (each created level's parent fsynced,
//! and its own parent at every open), and `raft-log`'s name is fsynced in
//! it at open, before any entry is acknowledged as flushed.
//!
//! Opening reads the whole log (the metadata log is small and snapshots
//! keep it so). A tail that is cut short — an incomplete record, a last
//! record whose CRC does not match, or zeros to the end of the file — is
//! a write the crash interrupted, never acknowledged: it is cut off. A
//! bad record followed by more data is corruption: an error.
//!
//! Thread-safety: `LogStore` is driven by openraft's core task (`&mut`);
//! its readers share the entries behind a lock that is never held across
//! I/O. File I/O runs on tokio's blocking pool.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, OptionalSend, StorageIOError};
use parking_lot::{Mutex, RwLock};
use rill_storage::durable::{create_dir_durably, sync_dir, write_atomically};

use crate::durable_file::{
    self, FileError, Framed, RECORD_HEADER_BYTES, decode_record, encode_record,
};
use crate::raft_types::{Entry, LogId, StorageError, TypeConfig, Vote};

const LOG_FILE: &str = "raft-log";
const VOTE_FILE: &str = "raft-vote";
const PURGED_FILE: &str = "raft-purged";

/// The Raft log storage of one controller. See the module doc for the
/// format.
pub struct LogStore {
    shared: Arc<Shared>,
}

/// The last entry the quorum has committed, as this node last heard
/// (openraft tells the log store, leader or follower; it is not kept on
/// disk, so it is unknown after a restart until the leader says again).
#[derive(Clone, Debug)]
pub struct CommittedIndex(Arc<AtomicU64>);

impl CommittedIndex {
    const UNKNOWN: u64 = u64::MAX;

    pub fn get(&self) -> Option<u64> {
        let index = self.0.load(Ordering::Relaxed);
        (index != Self::UNKNOWN).then_some(index)
    }
}

/// A reader of the log, shared with openraft's replication tasks.
#[derive(Clone)]
pub struct LogReader {
    shared: Arc<Shared>,
}

struct Shared {
    /// Entries not purged, by index. Never held across I/O.
    entries: RwLock<BTreeMap<u64, Entry>>,
    vote: RwLock<Option<Vote>>,
    last_purged: RwLock<Option<LogId>>,
    /// Only the task driving `LogStore` takes it, inside the blocking pool.
    file: Mutex<LogFile>,
    dir: PathBuf,
    committed: CommittedIndex,
}

/// The open `raft-log` and where each record starts.
struct LogFile {
    file: File,
    path: PathBuf,
    /// Entry index -> byte offset of its record.
    positions: BTreeMap<u64, u64>,
    end: u64,
}

impl LogStore {
    /// The committed index, as this store is told it.
    pub fn committed(&self) -> CommittedIndex {
        self.shared.committed.clone()
    }

    /// Opens (creating if needed) the log under `dir`, cutting a torn
    /// tail. Blocking: call it from the blocking pool or before the
    /// runtime is busy.
    pub fn open(dir: &Path) -> Result<LogStore, FileError> {
        create_dir_durably(dir)?;
        let last_purged: Option<LogId> = read_json(&dir.join(PURGED_FILE))?;
        let vote: Option<Vote> = read_json(&dir.join(VOTE_FILE))?;
        let (mut log_file, all_entries) = LogFile::open(&dir.join(LOG_FILE))?;
        // The file's directory entry must survive a crash too.
        sync_dir(dir)?;
        let purged_index = last_purged.map(|id| id.index);
        if let (Some(purged), Some(last)) = (purged_index, all_entries.keys().next_back())
            && *last <= purged
        {
            // A purge past the end of the log stopped after writing its
            // purge point: finish it, so appends after the point do not
            // follow stale entries in the file.
            log_file.clear()?;
        }
        let entries = all_entries
            .into_iter()
            .filter(|(index, _)| Some(*index) > purged_index)
            .collect::<BTreeMap<_, _>>();
        if let (Some(purged), Some(first)) = (purged_index, entries.keys().next())
            && *first != purged + 1
        {
            return Err(FileError::Corrupt {
                path: log_file.path.clone(),
                offset: 0,
                reason: format!(
                    "expected the first entry after the purge point {purged} to be {}, found {first}",
                    purged + 1
                ),
            });
        }
        Ok(LogStore {
            shared: Arc::new(Shared {
                entries: RwLock::new(entries),
                vote: RwLock::new(vote),
                last_purged: RwLock::new(last_purged),
                file: Mutex::new(log_file),
                dir: dir.to_owned(),
                committed: CommittedIndex(Arc::new(AtomicU64::new(CommittedIndex::UNKNOWN))),
            }),
        })
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, FileError>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T, FileError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || work(&shared))
            .await
            .map_err(|e| FileError::Io {
                op: "run blocking storage work",
                path: self.shared.dir.clone(),
                source: io::Error::other(e),
            })?
    }
}

impl LogFile {
    /// Reads every record, cutting a torn tail (see the module doc).
    fn open(path: &Path) -> Result<(LogFile, BTreeMap<u64, Entry>), FileError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(FileError::io("open", path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(FileError::io("read", path))?;

        let mut entries = BTreeMap::new();
        let mut positions = BTreeMap::new();
        let mut offset = 0usize;
        let corrupt = |offset: usize, reason: String| FileError::Corrupt {
            path: path.to_owned(),
            offset: offset as u64,
            reason,
        };
        while offset < bytes.len() {
            let rest = &bytes[offset..];
            let payload = match decode_record(rest) {
                // An entry is never empty; zeros to the end are space the
                // file system allocated for a write that did not land.
                _ if rest.iter().all(|b| *b == 0) => break,
                Framed::Record { payload: [], .. } => {
                    return Err(corrupt(
                        offset,
                        "expected an entry, found an empty record".to_owned(),
                    ));
                }
                Framed::Record { payload, bytes: n } => {
                    offset += n;
                    payload
                }
                Framed::Incomplete => break,
                Framed::BadCrc { bytes: n, .. } if n == rest.len() => break,
                Framed::BadCrc {
                    expected, found, ..
                } => {
                    return Err(corrupt(
                        offset,
                        format!(
                            "expected CRC-32C {expected:#010x}, found {found:#010x}, with more records after it"
                        ),
                    ));
                }
                Framed::BadLength { length } => {
                    return Err(corrupt(
                        offset,
                        format!(
                            "expected a record length <= {}, found {length}",
                            durable_file::RECORD_BYTES_MAX
                        ),
                    ));
                }
            };
            let start = offset - payload.len() - RECORD_HEADER_BYTES;
            let entry: Entry =
                serde_json::from_slice(payload).map_err(|source| FileError::Decode {
                    path: path.to_owned(),
                    offset: start as u64,
                    source,
                })?;
            let index = entry.log_id.index;
            if let Some((last, _)) = entries.last_key_value()
                && index != last + 1
            {
                return Err(corrupt(
                    start,
                    format!("expected entry index {}, found {index}", last + 1),
                ));
            }
            positions.insert(index, start as u64);
            entries.insert(index, entry);
        }
        let end = offset as u64;
        if end < bytes.len() as u64 {
            tracing::warn!(
                path = %path.display(),
                kept_bytes = end,
                cut_bytes = bytes.len() as u64 - end,
                "cutting a torn tail off the Raft log"
            );
            file.set_len(end).map_err(FileError::io("truncate", path))?;
            file.sync_all().map_err(FileError::io("fsync", path))?;
        }
        file.seek(SeekFrom::Start(end))
            .map_err(FileError::io("seek", path))?;
        let log_file = LogFile {
            file,
            path: path.to_owned(),
            positions,
            end,
        };
        Ok((log_file, entries))
    }

    /// Appends the records and fdatasyncs them.
    fn append(&mut self, entries: &[Entry]) -> Result<(), FileError> {
        let mut bytes = Vec::new();
        let mut positions = Vec::with_capacity(entries.len());
        for entry in entries {
            positions.push((entry.log_id.index, self.end + bytes.len() as u64));
            let payload = serde_json::to_vec(entry).map_err(|source| FileError::Decode {
                path: self.path.clone(),
                offset: self.end,
                source,
            })?;
            encode_record(&payload, &mut bytes)?;
        }
        self.file
            .write_all(&bytes)
            .map_err(FileError::io("write", &self.path))?;
        self.file
            .sync_data()
            .map_err(FileError::io("fdatasync", &self.path))?;
        self.end += bytes.len() as u64;
        self.positions.extend(positions);
        Ok(())
    }

    /// Cuts the file at entry `index` (it and every later entry go).
    fn truncate(&mut self, index: u64) -> Result<(), FileError> {
        let Some(&cut) = self.positions.get(&index) else {
            return Ok(());
        };
        self.file
            .set_len(cut)
            .map_err(FileError::io("truncate", &self.path))?;
        self.file
            .sync_all()
            .map_err(FileError::io("fsync", &self.path))?;
        self.file
            .seek(SeekFrom::Start(cut))
            .map_err(FileError::io("seek", &self.path))?;
        self.positions.split_off(&index);
        self.end = cut;
        Ok(())
    }

    /// Empties the file.
    fn clear(&mut self) -> Result<(), FileError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.sync_all())
            .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(drop))
            .map_err(FileError::io("empty", &self.path))?;
        self.positions.clear();
        self.end = 0;
        Ok(())
    }

    /// Forgets entries up to `index`; rewrites the file without them once
    /// they are at least half of it.
    fn purge(&mut self, index: u64) -> Result<(), FileError> {
        let kept = self.positions.split_off(&(index + 1));
        self.positions = kept;
        let Some(&keep_from) = self.positions.values().next() else {
            // Everything goes (a snapshot past the end of the log).
            return self.clear();
        };
        if keep_from == 0 || keep_from < self.end / 2 {
            return Ok(());
        }
        let mut tail = Vec::new();
        self.file
            .seek(SeekFrom::Start(keep_from))
            .and_then(|_| self.file.read_to_end(&mut tail))
            .map_err(FileError::io("read", &self.path))?;
        let mut file = write_atomically(&self.path, &tail)?;
        // Appends go on at the end of the new file.
        file.seek(SeekFrom::End(0))
            .map_err(FileError::io("seek", &self.path))?;
        for position in self.positions.values_mut() {
            *position -= keep_from;
        }
        self.file = file;
        self.end = tail.len() as u64;
        Ok(())
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, FileError> {
    let Some(payload) = durable_file::read_single(path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&payload)
        .map(Some)
        .map_err(|source| FileError::Decode {
            path: path.to_owned(),
            offset: durable_file::RECORD_HEADER_BYTES as u64,
            source,
        })
}

fn write_json<T: serde::Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), FileError> {
    let payload = serde_json::to_vec(value).map_err(|source| FileError::Decode {
        path: dir.join(name),
        offset: 0,
        source,
    })?;
    durable_file::replace_atomically(dir, name, &payload)
}

fn write_error(e: FileError) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl Shared {
    fn entries_in<RB: RangeBounds<u64>>(&self, range: RB) -> Vec<Entry> {
        self.entries
            .read()
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect()
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self.shared.entries_in(range))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self.shared.entries_in(range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = *self.shared.last_purged.read();
        let last_log_id = self
            .shared
            .entries
            .read()
            .last_key_value()
            .map(|(_, entry)| entry.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            shared: Arc::clone(&self.shared),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(move |shared| write_json(&shared.dir, VOTE_FILE, &vote))
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        *self.shared.vote.write() = Some(vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(*self.shared.vote.read())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if let Some(committed) = committed {
            self.shared
                .committed
                .0
                .store(committed.index, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let written = self
            .blocking(move |shared| {
                shared.file.lock().append(&entries)?;
                Ok(entries)
            })
            .await;
        match written {
            Ok(entries) => {
                self.shared
                    .entries
                    .write()
                    .extend(entries.into_iter().map(|e| (e.log_id.index, e)));
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(write_error(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.shared.entries.write().split_off(&log_id.index);
        self.blocking(move |shared| shared.file.lock().truncate(log_id.index))
            .await
            .map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |shared| write_json(&shared.dir, PURGED_FILE, &log_id))
            .await
            .map_err(write_error)?;
        *self.shared.last_purged.write() = Some(log_id);
        {
            let mut entries = self.shared.entries.write();
            let kept = entries.split_off(&(log_id.index + 1));
            *entries = kept;
        }
        self.blocking(move |shared| shared.file.lock().purge(log_id.index))
            .await
            .map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::command::Command;
    use crate::metadata::BrokerId;
    use std::fs;

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::FenceBroker {
                broker_id: BrokerId(i32::try_from(index).unwrap()),
                partition_changes: vec![],
            }),
        }
    }

    async fn indexes(store: &mut LogStore) -> Vec<u64> {
        store
            .try_get_log_entries(..)
            .await
            .unwrap()
            .iter()
            .map(|e| e.log_id.index)
            .collect()
    }

    #[tokio::test]
    async fn entries_and_vote_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store.blocking_append((1..=5).map(entry)).await.unwrap();
        store.save_vote(&Vote::new(3, 2)).await.unwrap();
        drop(store);

        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![1, 2, 3, 4, 5]);
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|id| id.index), Some(5));
        assert_eq!(
            store.try_get_log_entries(2..4).await.unwrap(),
            vec![entry(2), entry(3)]
        );
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store.blocking_append((1..=3).map(entry)).await.unwrap();
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let whole = fs::metadata(&path).unwrap().len();

        // A fourth append the crash cut in the middle of its payload.
        let mut torn = Vec::new();
        encode_record(&serde_json::to_vec(&entry(4)).unwrap(), &mut torn).unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&torn[..torn.len() - 3]).unwrap();
        drop(file);

        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![1, 2, 3]);
        assert_eq!(fs::metadata(&path).unwrap().len(), whole);
        // The log goes on where the torn entry was.
        store.blocking_append([entry(4)]).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_bad_last_record_or_zeros_are_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store.blocking_append((1..=2).map(entry)).await.unwrap();
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![1]);
        drop(store);

        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0; 4096]).unwrap();
        drop(file);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![1]);
    }

    #[tokio::test]
    async fn a_bad_record_in_the_middle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store.blocking_append((1..=3).map(entry)).await.unwrap();
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[RECORD_HEADER_BYTES + 2] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            LogStore::open(dir.path()),
            Err(FileError::Corrupt { offset: 0, .. })
        ));
        // Nothing was cut: the operator still has every byte.
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }

    #[tokio::test]
    async fn a_purge_past_the_end_interrupted_before_emptying_the_file_is_finished_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store.blocking_append((1..=3).map(entry)).await.unwrap();
        drop(store);
        // The crash came after the purge point was written, before the
        // file was emptied.
        write_json(dir.path(), PURGED_FILE, &entry(10).log_id).unwrap();

        let mut store = LogStore::open(dir.path()).unwrap();
        assert!(indexes(&mut store).await.is_empty());
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(entry(10).log_id));
        store.blocking_append([entry(11)]).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![11]);
    }

    #[tokio::test]
    async fn truncate_and_purge_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store.blocking_append((1..=10).map(entry)).await.unwrap();
        store.truncate(entry(8).log_id).await.unwrap();
        assert_eq!(indexes(&mut store).await, (1..=7).collect::<Vec<_>>());
        store.purge(entry(2).log_id).await.unwrap();
        assert_eq!(indexes(&mut store).await, (3..=7).collect::<Vec<_>>());
        // Past half the file: the purged prefix is rewritten away.
        store.purge(entry(5).log_id).await.unwrap();
        store.blocking_append((8..=9).map(entry)).await.unwrap();
        drop(store);

        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![6, 7, 8, 9]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry(5).log_id));
        assert_eq!(state.last_log_id, Some(entry(9).log_id));
        store.purge(entry(9).log_id).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert!(indexes(&mut store).await.is_empty());
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(entry(9).log_id));
    }
}
