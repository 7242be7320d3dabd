//! The commands of the metadata log and what applying each one returns.
//!
//! A command is everything the state machine needs to apply it: anything
//! chosen at random or by policy (a topic id, a replica assignment, a new
//! leader) is chosen by the proposer and carried in the command, so every
//! controller that applies the log reaches the same state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::metadata::{BrokerEpoch, BrokerId, LeaderEpoch, PartitionEpoch};

/// One entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Command {
    /// A broker announces itself. It is registered fenced: it leads and
    /// joins ISRs only once unfenced. A re-registration replaces the host,
    /// port and epoch and fences the broker again.
    RegisterBroker {
        broker_id: BrokerId,
        host: String,
        port: u16,
    },
    /// The broker stops being eligible as a leader or ISR member (it
    /// stopped heartbeating, or it is shutting down). Moving the
    /// leadership of its partitions is separate `ChangePartition` commands.
    FenceBroker {
        broker_id: BrokerId,
    },
    /// The broker, registered with `broker_epoch`, may lead again.
    UnfenceBroker {
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
    },
    /// A topic with an explicit assignment: `assignment[p]` is partition
    /// p's replica list, preferred leader first.
    CreateTopic {
        name: String,
        topic_id: Uuid,
        assignment: Vec<Vec<BrokerId>>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// A partition's new leader and ISR. The leader epoch is bumped when
    /// the leader changes, the partition epoch on any change.
    ChangePartition {
        topic: String,
        partition: i32,
        leader: Option<BrokerId>,
        isr: Vec<BrokerId>,
    },
    /// Sets (`Some`) or removes (`None`) one topic config.
    SetTopicConfig {
        topic: String,
        key: String,
        value: Option<String>,
    },
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Applied {
    /// The broker's new registration epoch (the log index of its
    /// registration, as in Kafka).
    BrokerRegistered {
        broker_epoch: BrokerEpoch,
    },
    BrokerFenced,
    BrokerUnfenced,
    TopicCreated {
        topic_id: Uuid,
    },
    TopicDeleted {
        topic_id: Uuid,
    },
    PartitionChanged {
        leader_epoch: LeaderEpoch,
        partition_epoch: PartitionEpoch,
    },
    TopicConfigSet,
    /// A log entry that is not a command (a Raft leader's blank entry or a
    /// membership change).
    NotACommand,
}

/// Why a command was rejected; a rejected command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    #[error("broker {broker_id} is not registered")]
    UnknownBroker { broker_id: BrokerId },
    #[error("broker {broker_id} is registered with epoch {current}, not {requested}")]
    StaleBrokerEpoch {
        broker_id: BrokerId,
        requested: BrokerEpoch,
        current: BrokerEpoch,
    },
    #[error("topic {name:?} already exists")]
    TopicAlreadyExists { name: String },
    #[error("topic id {topic_id} is nil or already used by topic {used_by:?}")]
    TopicIdInUse { topic_id: Uuid, used_by: String },
    #[error("topic {name:?} does not exist")]
    UnknownTopic { name: String },
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: String },
    #[error("invalid assignment: {reason}")]
    InvalidAssignment { reason: String },
    #[error("invalid partition change: {reason}")]
    InvalidPartitionChange { reason: String },
}

/// The result of applying one log entry: the state machine's answer to
/// its proposer.
pub type CommandResult = Result<Applied, Rejection>;
