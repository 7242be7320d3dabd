//! rill-server is Rill's network front end: a tokio listener speaking the
//! Kafka protocol, with one handler module per Kafka API under `apis/`
//! (codecs from the `kafka-protocol` crate; produce and fetch record
//! payloads stay opaque `Bytes`), the broker state those handlers share
//! ([`Broker`]: configuration, the log manager, topic metadata), and the
//! one place where internal errors become Kafka error codes
//! (`error_code.rs`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use rill_server::{Broker, BrokerConfig, Properties, Server};
//!
//! let config = BrokerConfig::from_properties(Properties::new())?;
//! let server = Server::bind(&config.listener).await?;
//! let broker = Broker::open(config)?;
//! eprintln!("listening on {}", server.local_addr());
//! server.run(broker, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```

mod acl;
mod apis;
mod broker;
mod cluster;
mod config;
mod error_code;
#[doc(hidden)]
pub mod fuzzing;
mod groups;
mod metadata_store;
mod network;
mod topic_config;

pub use broker::{Broker, NewTopic, PARTITIONS_PER_TOPIC_MAX, StartError, TopicError};
pub use cluster::{ClusterStartError, METADATA_DIR, ProposalError};
pub use config::{BROKER_DEFAULTS, BrokerConfig, ClusterConfig, ConfigError, HostPort, Properties};
pub use metadata_store::{METADATA_FILE, MetadataError, TopicMetadata};
pub use network::Server;
pub use topic_config::{ConfigValueError, validate_topic_override};

/// The leader epoch a single broker stamps into batches and reports: it
/// is leader of every partition from the start and never changes.
pub const LEADER_EPOCH: i32 = 0;
