//! The Raft state machine: committed entries applied to the
//! [`ClusterMetadata`], and its snapshots.
//!
//! The state lives in memory. A snapshot is the metadata as JSON, kept in
//! one file `raft-snapshot` (a framed record, see [`crate::durable_file`],
//! holding `{"meta": SnapshotMeta, "data": [bytes]}`) replaced atomically
//! when a snapshot is built or installed. On open the state is the last
//! snapshot's; openraft then re-applies the committed entries after it.
//!
//! Thread-safety: `StateMachine` is driven by openraft's state-machine
//! task; [`MetadataReader`] reads the applied state from any thread (a
//! short read lock, never held across I/O).

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, EntryPayload, OptionalSend, SnapshotMeta, StorageIOError, StoredMembership,
};
use parking_lot::{Mutex, RwLock};
use rill_storage::durable::create_dir_durably;
use serde::{Deserialize, Serialize};

use crate::command::{Applied, CommandResult};
use crate::durable_file::{self, FileError};
use crate::metadata::ClusterMetadata;
use crate::raft_types::{Entry, LogId, NodeId, StorageError, TypeConfig};

const SNAPSHOT_FILE: &str = "raft-snapshot";

/// The applied state: the metadata and where in the log it is.
#[derive(Debug, Clone, Default)]
struct MachineState {
    last_applied: Option<LogId>,
    membership: StoredMembership<NodeId, BasicNode>,
    /// Shared with readers; an apply copies it only while one holds it.
    metadata: Arc<ClusterMetadata>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

struct Shared {
    state: RwLock<MachineState>,
    /// The latest snapshot, built or installed; the same as the file.
    snapshot: Mutex<Option<StoredSnapshot>>,
    /// Held across a snapshot file write (openraft builds snapshots in a
    /// task of their own, which may overlap an install).
    persist_lock: Mutex<()>,
    dir: PathBuf,
    /// Bumped after every apply and snapshot install, for watchers.
    changes: tokio::sync::watch::Sender<u64>,
}

/// The metadata quorum's state machine. See the module doc.
pub struct StateMachine {
    shared: Arc<Shared>,
}

/// Builds a snapshot of the state at the time it is asked to.
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
}

/// Reads the applied metadata; cheap to clone, for any thread.
#[derive(Clone)]
pub struct MetadataReader {
    shared: Arc<Shared>,
}

impl MetadataReader {
    /// The metadata as applied on this controller: shared, not copied (the
    /// next entry applied copies it if it is still held).
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&self.shared.state.read().metadata)
    }

    /// The index of the last entry applied here.
    pub fn applied_index(&self) -> Option<u64> {
        self.shared.state.read().last_applied.map(|id| id.index)
    }

    /// Changes whenever the applied metadata may have changed.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }
}

impl StateMachine {
    /// Opens the state machine under `dir` from its last snapshot, if any.
    /// Blocking.
    pub fn open(dir: &Path) -> Result<StateMachine, FileError> {
        create_dir_durably(dir)?;
        let path = dir.join(SNAPSHOT_FILE);
        let stored: Option<StoredSnapshot> = match durable_file::read_single(&path)? {
            None => None,
            Some(payload) => {
                Some(
                    serde_json::from_slice(&payload).map_err(|source| FileError::Decode {
                        path: path.clone(),
                        offset: 0,
                        source,
                    })?,
                )
            }
        };
        let state = match &stored {
            None => MachineState::default(),
            Some(stored) => state_of(stored).map_err(|source| FileError::Decode {
                path: path.clone(),
                offset: 0,
                source,
            })?,
        };
        Ok(StateMachine {
            shared: Arc::new(Shared {
                state: RwLock::new(state),
                snapshot: Mutex::new(stored),
                persist_lock: Mutex::new(()),
                dir: dir.to_owned(),
                changes: tokio::sync::watch::Sender::new(0),
            }),
        })
    }

    /// A reader of the applied metadata that outlives this handle.
    pub fn reader(&self) -> MetadataReader {
        MetadataReader {
            shared: Arc::clone(&self.shared),
        }
    }
}

fn state_of(stored: &StoredSnapshot) -> Result<MachineState, serde_json::Error> {
    Ok(MachineState {
        last_applied: stored.meta.last_log_id,
        membership: stored.meta.last_membership.clone(),
        metadata: Arc::new(serde_json::from_slice(&stored.data)?),
    })
}

impl Shared {
    /// Writes `stored` to the snapshot file (blocking pool) and makes it
    /// the current snapshot, unless the current one is newer.
    async fn persist(self: &Arc<Self>, stored: StoredSnapshot) -> Result<(), FileError> {
        let shared = Arc::clone(self);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let _writing = shared.persist_lock.lock();
            let current = shared
                .snapshot
                .lock()
                .as_ref()
                .and_then(|s| s.meta.last_log_id);
            if current > stored.meta.last_log_id {
                return Ok(());
            }
            let payload = serde_json::to_vec(&stored).map_err(|source| FileError::Decode {
                path: shared.dir.join(SNAPSHOT_FILE),
                offset: 0,
                source,
            })?;
            durable_file::replace_atomically(&shared.dir, SNAPSHOT_FILE, &payload)?;
            *shared.snapshot.lock() = Some(stored);
            Ok(())
        })
        .await
        .map_err(|e| FileError::Io {
            op: "run blocking snapshot write",
            path: dir,
            source: io::Error::other(e),
        })?
    }
}

fn snapshot_error(meta: Option<&SnapshotMeta<NodeId, BasicNode>>, e: &FileError) -> StorageError {
    StorageIOError::write_snapshot(meta.map(|m| m.signature()), AnyError::new(e)).into()
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (meta, data) = {
            let state = self.shared.state.read();
            let data = serde_json::to_vec(&*state.metadata)
                .map_err(|e| StorageIOError::read_state_machine(AnyError::new(&e)))?;
            let snapshot_id = match state.last_applied {
                Some(id) => format!(
                    "{}-{}-{}",
                    id.leader_id.term, id.leader_id.node_id, id.index
                ),
                None => "empty".to_owned(),
            };
            let meta = SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.membership.clone(),
                snapshot_id,
            };
            (meta, data)
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        self.shared
            .persist(stored)
            .await
            .map_err(|e| snapshot_error(Some(&meta), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, BasicNode>), StorageError> {
        let state = self.shared.state.read();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.shared.state.write();
        let mut results = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => Ok(Applied::NotACommand),
                EntryPayload::Normal(command) => {
                    Arc::make_mut(&mut state.metadata).apply(&command, entry.log_id.index)
                }
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Ok(Applied::NotACommand)
                }
            };
            results.push(result);
        }
        drop(state);
        self.shared.changes.send_modify(|n| *n += 1);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            shared: Arc::clone(&self.shared),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot.into_inner(),
        };
        // Bytes from the leader are checked before anything is replaced.
        let state = state_of(&stored).map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e))
        })?;
        self.shared
            .persist(stored)
            .await
            .map_err(|e| snapshot_error(Some(meta), &e))?;
        *self.shared.state.write() = state;
        self.shared.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.shared.snapshot.lock().clone().map(|stored| Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Membership};
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::command::{Command, Rejection};
    use crate::metadata::BrokerId;

    fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload,
        }
    }

    fn register(id: i32) -> EntryPayload<TypeConfig> {
        EntryPayload::Normal(Command::RegisterBroker {
            broker_id: BrokerId(id),
            host: "localhost".to_owned(),
            port: 9092,
            listeners: Vec::new(),
        })
    }

    fn membership() -> EntryPayload<TypeConfig> {
        let nodes = BTreeMap::from([(1, BasicNode::new("127.0.0.1:9093"))]);
        EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1])], nodes))
    }

    #[tokio::test]
    async fn entries_apply_in_order_with_a_result_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        let results = sm
            .apply([
                entry(1, membership()),
                entry(2, EntryPayload::Blank),
                entry(3, register(1)),
                entry(
                    4,
                    EntryPayload::Normal(Command::FenceBroker {
                        broker_id: BrokerId(2),
                        partition_changes: vec![],
                    }),
                ),
            ])
            .await
            .unwrap();
        assert_eq!(
            results,
            vec![
                Ok(Applied::NotACommand),
                Ok(Applied::NotACommand),
                Ok(Applied::BrokerRegistered {
                    broker_epoch: crate::metadata::BrokerEpoch(3)
                }),
                Err(Rejection::UnknownBroker {
                    broker_id: BrokerId(2)
                }),
            ]
        );
        let (applied, stored_membership) = sm.applied_state().await.unwrap();
        assert_eq!(applied.map(|id| id.index), Some(4));
        assert_eq!(stored_membership.log_id().map(|id| id.index), Some(1));
        assert_eq!(sm.reader().applied_index(), Some(4));
    }

    #[tokio::test]
    async fn a_snapshot_is_durable_and_installs_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        sm.apply([
            entry(1, membership()),
            entry(2, register(1)),
            entry(3, register(2)),
        ])
        .await
        .unwrap();
        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snapshot.meta.last_log_id.map(|id| id.index), Some(3));
        let expected = sm.reader().metadata();
        drop(sm);

        let mut reopened = StateMachine::open(dir.path()).unwrap();
        assert_eq!(reopened.reader().metadata(), expected);
        let (applied, _) = reopened.applied_state().await.unwrap();
        assert_eq!(applied.map(|id| id.index), Some(3));
        let current = reopened.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snapshot.meta);

        let other_dir = tempfile::tempdir().unwrap();
        let mut other = StateMachine::open(other_dir.path()).unwrap();
        other
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(other.reader().metadata(), expected);
        drop(other);
        let other = StateMachine::open(other_dir.path()).unwrap();
        assert_eq!(other.reader().metadata(), expected);
    }

    #[tokio::test]
    async fn group_configs_are_in_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        let set = EntryPayload::Normal(Command::SetGroupConfig {
            group: "queue".to_owned(),
            key: "share.auto.offset.reset".to_owned(),
            value: Some("earliest".to_owned()),
        });
        sm.apply([entry(1, set)]).await.unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        drop(sm);
        let reopened = StateMachine::open(dir.path()).unwrap();
        let metadata = reopened.reader().metadata();
        assert_eq!(
            metadata.group_configs["queue"]["share.auto.offset.reset"],
            "earliest"
        );
    }

    #[tokio::test]
    async fn a_snapshot_built_before_a_newer_install_does_not_replace_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        sm.apply([entry(1, register(1))]).await.unwrap();
        let old = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), 1)),
                last_membership: StoredMembership::default(),
                snapshot_id: "old".to_owned(),
            },
            data: serde_json::to_vec(&sm.reader().metadata()).unwrap(),
        };
        let newer = SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(2, 2), 9)),
            last_membership: StoredMembership::default(),
            snapshot_id: "newer".to_owned(),
        };
        let data = serde_json::to_vec(&ClusterMetadata::default()).unwrap();
        sm.install_snapshot(&newer, Box::new(Cursor::new(data)))
            .await
            .unwrap();
        // The build that started earlier finishes now.
        sm.shared.persist(old).await.unwrap();
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.snapshot_id, "newer");
        drop(sm);
        let mut reopened = StateMachine::open(dir.path()).unwrap();
        let current = reopened.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.snapshot_id, "newer");
    }

    #[tokio::test]
    async fn an_undecodable_snapshot_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        sm.apply([entry(1, register(1))]).await.unwrap();
        let before = sm.reader().metadata();
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), 9)),
            last_membership: StoredMembership::default(),
            snapshot_id: "bad".to_owned(),
        };
        let garbage = Box::new(Cursor::new(b"{not json".to_vec()));
        assert!(sm.install_snapshot(&meta, garbage).await.is_err());
        assert_eq!(sm.reader().metadata(), before);
        assert!(sm.get_current_snapshot().await.unwrap().is_none());
    }
}
