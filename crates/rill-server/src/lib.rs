//! rill-server is Rill's network front end: a tokio listener speaking the
//! Kafka protocol, with one handler module per Kafka API under `apis/`
//! (codecs from the `kafka-protocol` crate; produce and fetch record
//! payloads stay opaque `Bytes`), the broker those handlers share
//! ([`Broker`]: its parts put together — logs, replicas, the cluster
//! node of the metadata quorum, groups, topics), and the one place where
//! internal errors become Kafka error codes (`error_code.rs`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use rill_server::{BrokerConfig, Properties, Server};
//!
//! let config = BrokerConfig::from_properties(Properties::new())?;
//! let server = Server::bind(&config).await?;
//! eprintln!("listening on {}", server.local_addr());
//! let stop = async { let _ = tokio::signal::ctrl_c().await; };
//! server.run(config, stop).await?;
//! # Ok(())
//! # }
//! ```

mod apis;
mod authorizer;
mod broker;
mod broker_properties;
mod cluster;
mod config;
mod console;
mod consumer_protocol;
mod coordinators;
mod effective_config;
mod error_code;
#[doc(hidden)]
pub mod fuzzing;
mod group_config;
mod groups;
mod http;
mod in_place;
mod initial_users;
mod legacy_metadata;
mod listeners;
mod metrics;
mod network;
mod peer_client;
mod properties;
mod quotas;
mod security;
mod session;
mod shares;
mod shutdown;
mod topic_config;
mod topics;
mod transactions;
mod waiters;

pub use authorizer::AuthorizerConfig;
pub use broker::{Broker, StartError};
pub use cluster::{ClusterStartError, METADATA_DIR, ProposalError};
pub use config::{
    BrokerConfig, ClusterConfig, GroupBounded, GroupConfigDefaults, QuorumConfig,
    TransactionsConfig,
};
pub use http::HttpListener;
pub use initial_users::{INITIAL_CREDENTIALS_FILE, InitialUsersError, add_initial_credential};
pub use legacy_metadata::{METADATA_FILE, MIGRATED_FILE, MetadataError};
pub use listeners::{Listener, Listeners, SecurityProtocol};
pub use network::{BindError, RunError, Server};
pub use properties::{ConfigError, HostPort, Properties};
pub use security::{
    ScramMechanism, TlsError, TlsSettings, client_proof, random_salt, salted_password,
};
pub use topic_config::{ConfigValueError, validate_topic_override};
pub use topics::{NewTopic, PARTITIONS_PER_TOPIC_MAX, TopicError};
