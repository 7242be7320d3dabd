//! The single broker's metadata — cluster id, topics (id, partition count,
//! config overrides), dynamic broker configs and the producer-id
//! reservation — in one JSON file beside the partitions, rewritten
//! atomically on every change.
//!
//! Not thread-safe by itself: the broker keeps it behind one mutex.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Properties;

/// The file's name in the first log directory.
pub const METADATA_FILE: &str = "rill-metadata.json";

/// Producer ids are reserved this many at a time, so InitProducerId writes
/// the file once per block, not once per producer.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// A topic as the broker knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    /// The topic id (KIP-516), as a UUID string.
    pub id: String,
    pub partitions: i32,
    /// Topic-level config overrides by Kafka name.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

impl TopicMetadata {
    pub fn uuid(&self) -> Uuid {
        Uuid::parse_str(&self.id).unwrap_or_default()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Contents {
    cluster_id: String,
    #[serde(default)]
    topics: BTreeMap<String, TopicMetadata>,
    /// Broker configs changed at run time (IncrementalAlterConfigs).
    #[serde(default)]
    broker_configs: Properties,
    /// Producer ids below this may have been handed out.
    #[serde(default)]
    producer_ids_reserved_to: i64,
}

/// Why the metadata file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid metadata: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: rill_partition::CheckpointError,
    },
}

/// The metadata file and its contents in memory.
#[derive(Debug)]
pub struct MetadataStore {
    path: PathBuf,
    contents: Contents,
    next_producer_id: i64,
}

impl MetadataStore {
    /// Loads the file in `dir`, or starts a new cluster id if there is none.
    pub fn open(dir: &Path) -> Result<MetadataStore, MetadataError> {
        let path = dir.join(METADATA_FILE);
        let contents = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contents {
                cluster_id: new_cluster_id(),
                ..Contents::default()
            },
            Err(source) => return Err(MetadataError::Read { path, source }),
        };
        let next_producer_id = contents.producer_ids_reserved_to;
        let mut store = MetadataStore {
            path,
            contents,
            next_producer_id,
        };
        store.save()?;
        Ok(store)
    }

    pub fn cluster_id(&self) -> &str {
        &self.contents.cluster_id
    }

    pub fn topics(&self) -> &BTreeMap<String, TopicMetadata> {
        &self.contents.topics
    }

    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.contents.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<(&String, &TopicMetadata)> {
        self.contents.topics.iter().find(|(_, t)| t.uuid() == id)
    }

    pub fn broker_configs(&self) -> &Properties {
        &self.contents.broker_configs
    }

    /// Records a new topic with a fresh id.
    pub fn add_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMetadata, MetadataError> {
        let topic = TopicMetadata {
            id: Uuid::new_v4().to_string(),
            partitions,
            configs,
        };
        self.contents.topics.insert(name.to_string(), topic.clone());
        self.save()?;
        Ok(topic)
    }

    pub fn remove_topic(&mut self, name: &str) -> Result<Option<TopicMetadata>, MetadataError> {
        let removed = self.contents.topics.remove(name);
        if removed.is_some() {
            self.save()?;
        }
        Ok(removed)
    }

    pub fn set_partition_count(&mut self, name: &str, count: i32) -> Result<(), MetadataError> {
        if let Some(topic) = self.contents.topics.get_mut(name) {
            topic.partitions = count;
            self.save()?;
        }
        Ok(())
    }

    pub fn set_topic_configs(
        &mut self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        if let Some(topic) = self.contents.topics.get_mut(name) {
            topic.configs = configs;
            self.save()?;
        }
        Ok(())
    }

    pub fn set_broker_configs(&mut self, configs: Properties) -> Result<(), MetadataError> {
        self.contents.broker_configs = configs;
        self.save()
    }

    /// A producer id never handed out before, even across restarts: ids
    /// are reserved in blocks and the reservation is saved before use.
    pub fn next_producer_id(&mut self) -> Result<i64, MetadataError> {
        if self.next_producer_id >= self.contents.producer_ids_reserved_to {
            self.contents.producer_ids_reserved_to = self.next_producer_id + PRODUCER_ID_BLOCK;
            self.save()?;
        }
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        Ok(id)
    }

    fn save(&mut self) -> Result<(), MetadataError> {
        let bytes =
            serde_json::to_vec_pretty(&self.contents).map_err(|e| MetadataError::Corrupt {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        rill_partition::write_atomically(&self.path, &bytes).map_err(|source| {
            MetadataError::Write {
                path: self.path.clone(),
                source,
            }
        })
    }
}

/// A Kafka-style cluster id: 16 random bytes in URL-safe base64, 22 chars.
pub(crate) fn new_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut bits: u128 = u128::from_be_bytes(bytes);
    let mut id = String::with_capacity(22);
    for _ in 0..22 {
        id.push(ALPHABET[(bits & 63) as usize] as char);
        bits >>= 6;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_configs_and_producer_ids_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MetadataStore::open(dir.path()).unwrap();
        let cluster_id = store.cluster_id().to_string();
        assert_eq!(cluster_id.len(), 22);
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1000".to_string());
        let topic = store.add_topic("orders", 3, configs.clone()).unwrap();
        let first = store.next_producer_id().unwrap();
        let second = store.next_producer_id().unwrap();
        assert_eq!(second, first + 1);
        drop(store);

        let mut store = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(store.cluster_id(), cluster_id);
        assert_eq!(store.topic("orders"), Some(&topic));
        assert_eq!(store.topic("orders").unwrap().configs, configs);
        assert!(store.topic_by_id(topic.uuid()).is_some());
        // Ids handed out before the restart are never handed out again.
        assert!(store.next_producer_id().unwrap() > second);
    }
}
