//! The openraft type configuration of the metadata quorum.

use std::io::Cursor;

use crate::command::{Command, CommandResult};

/// A controller's id in the quorum. In combined mode it is the broker's
/// `node.id` too.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The metadata quorum's Raft types: commands in, command results out,
    /// controllers addressed by `host:port` (`BasicNode::addr`), snapshots
    /// as whole in-memory buffers (the metadata is small).
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A metadata log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A position in the metadata log.
pub type LogId = openraft::LogId<NodeId>;
/// A controller's vote (term and the node it voted for).
pub type Vote = openraft::Vote<NodeId>;
/// What openraft's storage traits return on failure.
pub type StorageError = openraft::StorageError<NodeId>;
