//! The cluster's metadata quorum: a Raft group of controllers (consensus
//! by `openraft`) whose log holds the cluster metadata — brokers and
//! their registration epochs and fencing, topics and topic ids, partition
//! replicas, leaders, leader epochs, ISR, topic configs, and the security
//! metadata: SCRAM credentials ([`Users`]) and ACLs ([`Acls`], with
//! Kafka's StandardAuthorizer decision in [`Acls::authorize`]).
//!
//! What this crate owns:
//! - the metadata model and the deterministic application of
//!   [`Command`]s to it ([`ClusterMetadata::apply`], sans I/O);
//! - the durable Raft log, vote and snapshot under a directory
//!   (`log_store`, `state_machine`, formats in `durable_file`);
//! - the controller-to-controller RPC over TCP (`network`);
//! - broker liveness on the controller leader (heartbeats, fencing a
//!   silent broker with the failover of its partitions in the same
//!   entry), replica placement ([`assign_replicas`]) and preferred-leader
//!   elections;
//! - the [`Controller`] a broker process owns, and the
//!   [`ControllerClient`] a broker heartbeats through.
//!
//! Partition replication (follower fetch, ISR tracking, failover) is to
//! come; it will sit beside the quorum and propose its changes through it.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::BTreeMap;
//! use rill_cluster::{
//!     Acceptor, Bootstrap, BrokerId, ClusterSettings, Command, Connector, Controller,
//!     ControllerConfig, RaftSettings,
//! };
//!
//! let voters = BTreeMap::from([
//!     (1, "127.0.0.1:9093".to_owned()),
//!     (2, "127.0.0.1:9193".to_owned()),
//!     (3, "127.0.0.1:9293".to_owned()),
//! ]);
//! let controller = Controller::start(ControllerConfig {
//!     node_id: 1,
//!     listen: Some("127.0.0.1:9093".parse()?),
//!     bootstrap: Bootstrap::Voters(voters),
//!     data_dir: "rill-data/metadata".into(),
//!     raft: RaftSettings::default(),
//!     cluster: ClusterSettings::default(),
//!     connector: Connector::tcp(),
//!     acceptor: Acceptor::tcp(),
//! })
//! .await?;
//! let registered = controller
//!     .propose(Command::RegisterBroker {
//!         broker_id: BrokerId(1),
//!         host: "127.0.0.1".to_owned(),
//!         port: 9092,
//!         listeners: Vec::new(),
//!     })
//!     .await?;
//! println!("{registered:?}; brokers: {:?}", controller.metadata().brokers);
//! controller.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod acls;
mod client;
mod client_quotas;
mod command;
mod connector;
mod controller;
mod durable_file;
mod elections;
mod liveness;
mod log_store;
mod metadata;
mod network;
mod placement;
mod raft_types;
mod share_groups;
mod state_machine;
mod users;

pub use acls::{
    ACL_CHANGES_PER_COMMAND_MAX, AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
    Acls, CLUSTER_RESOURCE_NAME, InvalidAcl, InvalidAclFilter, PatternType, ResourcePatternFilter,
    ResourceType, WILDCARD, WILDCARD_PRINCIPAL, host_address,
};
pub use client::ControllerClient;
pub use client_quotas::{
    AppliedQuota, ClientQuotas, EntityName, InvalidQuota, InvalidQuotaFilter, QuotaAlteration,
    QuotaEntity, QuotaFilter, QuotaKey, QuotaValue,
};
pub use command::{Applied, Command, CommandResult, PartitionChange, Rejection};
pub use connector::{
    Accept, Accepting, Acceptor, Connect, Connecting, Connector, NodeStream, tcp_connect,
};
pub use controller::{
    Bootstrap, COMMAND_BYTES_MAX, ClusterSettings, Controller, ControllerConfig, CreateTopicError,
    HeartbeatError, HeartbeatResponse, MembershipError, ProposeError, QuorumStatus, RaftSettings,
    StartError, create_partitions_command, create_topic_command,
};
pub use durable_file::{FileError, RECORD_BYTES_MAX};
pub use log_store::{LogReader, LogStore};
pub use metadata::{
    Broker, BrokerEpoch, BrokerId, ClusterMetadata, Endpoint, LeaderEpoch,
    PARTITIONS_PER_TOPIC_MAX, PRODUCER_ID_BLOCK_MAX, PartitionEpoch, PartitionState,
    REPLICAS_PER_PARTITION_MAX, TOPIC_NAME_BYTES_MAX, Topic,
};
pub use network::{
    CONNECT_TIMEOUT, CONNECTIONS_MAX, FRAME_BYTES_MAX, METADATA_WAIT_MS_MAX, MetadataReply,
    QuorumState, ReplicaProgress, RpcError, is_controller_connection,
};
pub use placement::{PlacementError, assign_replicas};
pub use raft_types::{NodeId, TypeConfig};
pub use share_groups::{ShareGroupRecord, ShareGroups};
pub use state_machine::{MetadataReader, SnapshotBuilder, StateMachine};
pub use users::{
    SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN, SCRAM_SALT_BYTES_MAX, ScramMechanism,
    StoredScramCredential, UnacceptableCredential, Users,
};
