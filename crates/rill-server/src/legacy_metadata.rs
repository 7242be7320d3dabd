//! The upgrade of a data directory written before one path: a single
//! broker kept its metadata — cluster id, topics (id, partition count,
//! config overrides), dynamic broker configs and the producer-id
//! reservation — in `rill-metadata.json` beside the partitions. On the
//! first start of this release the file is read once, proposed to the
//! broker's metadata quorum as that quorum's own commands, and renamed
//! `rill-metadata.json.migrated`; from then on the quorum is the only
//! source of truth.
//!
//! The import is safe to repeat: a start that dies half way finds the file
//! still there and proposes it again, and what the quorum already has
//! (the cluster id, a topic) is kept as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rill_cluster::{Applied, BrokerId, Command, Rejection};
use serde::Deserialize;
use uuid::Uuid;

use crate::cluster::{ClusterNode, ClusterStartError};
use crate::properties::Properties;

/// The file's name in the first log directory.
pub const METADATA_FILE: &str = "rill-metadata.json";

/// What the file is renamed to once imported.
pub const MIGRATED_FILE: &str = "rill-metadata.json.migrated";

/// A topic as the file recorded it.
#[derive(Clone, Debug, Deserialize)]
struct LegacyTopic {
    /// The topic id (KIP-516), as a UUID string.
    id: String,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// The file's contents.
#[derive(Clone, Debug, Deserialize)]
struct Contents {
    cluster_id: String,
    #[serde(default)]
    topics: BTreeMap<String, LegacyTopic>,
    #[serde(default)]
    broker_configs: Properties,
    #[serde(default)]
    producer_ids_reserved_to: i64,
}

/// Why the file could not be read or imported.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid metadata: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("importing {path}: topic {topic:?} was refused: {rejection}")]
    Refused {
        path: PathBuf,
        topic: String,
        rejection: Rejection,
    },
    #[error("cannot rename {path} once imported: {source}")]
    Rename {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("proposing the import: {0}")]
    Quorum(#[source] Box<ClusterStartError>),
}

/// Imports `dir`'s metadata file into the quorum, if there is one, as
/// broker `node`'s: its topics' partitions are this broker's replicas,
/// led by it at leader epoch 0 (what a single broker stamped). Call once
/// the broker is registered, before it names the cluster.
pub(crate) async fn import(node: &ClusterNode, dir: &Path) -> Result<(), MetadataError> {
    let path = dir.join(METADATA_FILE);
    let contents = match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice::<Contents>(&bytes).map_err(|e| MetadataError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(MetadataError::Read { path, source }),
    };
    tracing::info!(
        path = %path.display(),
        topics = contents.topics.len(),
        "importing a single broker's metadata file into the metadata quorum"
    );
    let me = BrokerId(node.node_id());
    let mut commands = vec![
        Command::InitCluster {
            cluster_id: contents.cluster_id.clone(),
        },
        Command::ReserveProducerIds {
            below: contents.producer_ids_reserved_to,
        },
    ];
    commands.extend(
        contents
            .broker_configs
            .iter()
            .map(|(key, value)| Command::SetBrokerConfig {
                key: key.clone(),
                value: Some(value.clone()),
            }),
    );
    for (name, topic) in &contents.topics {
        let partitions = usize::try_from(topic.partitions).unwrap_or(0);
        commands.push(Command::CreateTopic {
            name: name.clone(),
            topic_id: Uuid::parse_str(&topic.id).unwrap_or_else(|_| Uuid::new_v4()),
            assignment: vec![vec![me]; partitions],
            configs: topic.configs.clone(),
        });
    }
    for command in commands {
        let topic = match &command {
            Command::CreateTopic { name, .. } => Some(name.clone()),
            _ => None,
        };
        let applied = node
            .propose_retrying("importing the metadata file", command)
            .await
            .map_err(|e| MetadataError::Quorum(Box::new(e)))?;
        match applied {
            Ok(Applied::ClusterInitialized { cluster_id }) if cluster_id != contents.cluster_id => {
                tracing::warn!(%cluster_id, file = %contents.cluster_id, "the quorum already had another cluster id; keeping it");
            }
            // Imported by an earlier start that stopped half way.
            Ok(_) | Err(Rejection::TopicAlreadyExists { .. }) => {}
            Err(rejection) => {
                return Err(MetadataError::Refused {
                    path,
                    topic: topic.unwrap_or_default(),
                    rejection,
                });
            }
        }
    }
    let migrated = dir.join(MIGRATED_FILE);
    std::fs::rename(&path, &migrated)
        .and_then(|()| rill_storage::durable::sync_dir(dir).map_err(|failure| failure.source))
        .map_err(|source| MetadataError::Rename {
            path: path.clone(),
            source,
        })?;
    tracing::info!(
        topics = contents.topics.len(),
        renamed = %migrated.display(),
        "imported the metadata file; the quorum holds the metadata from now on"
    );
    Ok(())
}
