//! rill-partition owns partition state over a log — log start offset,
//! high watermark (the single broker's, or the one the replication layer
//! keeps), log end offset, the leader-epoch cache, producer state
//! (duplicates, sequence and epoch checks, snapshots) and transactions
//! (KIP-98: each producer's open transaction, commit and abort markers,
//! the last stable offset, the aborted transactions a read_committed
//! fetch reports), a follower's appends of its leader's batches, and
//! Kafka's ListOffsets and OffsetForLeaderEpoch answers — and the log
//! manager that opens every partition under `log.dirs` at start-up,
//! creates and deletes partitions, runs retention and producer-id expiry
//! in the background, and keeps the checkpoints (each written atomically:
//! temporary file, fsync, rename, fsync of the directory).
//!
//! ```
//! use rill_partition::{FetchIsolation, LogManager, ManagerConfig, OffsetSpec, TopicPartition};
//! use rill_record::{BatchBuilder, NewRecord};
//! use rill_storage::{LogConfig, Offset};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = ManagerConfig::new(vec![dir.path().to_path_buf()]);
//! let (manager, _) = LogManager::open(config.clone(), &|_| LogConfig::default()).unwrap();
//! let orders = TopicPartition::new("orders", 0);
//! let partition = manager.create(&orders, LogConfig::default()).unwrap();
//! let batch = BatchBuilder::new(1_000).with_records(&[NewRecord::value(b"one")]).finish().unwrap();
//! partition.append(&batch, 0, 1_000).unwrap().wait().unwrap();
//! assert_eq!(partition.high_watermark(), Offset(1));
//! let latest = partition.list_offset(OffsetSpec::Latest).unwrap().unwrap();
//! assert_eq!(latest.offset, Offset(1));
//! manager.shutdown().unwrap();
//!
//! // A clean restart finds the partition and reads no log data.
//! let (manager, report) = LogManager::open(config, &|_| LogConfig::default()).unwrap();
//! assert!(report.recovered.is_empty());
//! let read = manager.get(&orders).unwrap().read(Offset(0), 1 << 20, FetchIsolation::HighWatermark, true).unwrap();
//! assert_eq!(read.bytes.len(), batch.len());
//! ```

mod checkpoint;
mod error;
mod leader_epoch;
mod manager;
mod partition;
mod producer_snapshot;
mod producer_state;
mod topic_partition;
mod txn_state;
mod verification;

pub use checkpoint::CheckpointError;
pub use error::{ManagerError, PartitionError};
pub use leader_epoch::{
    EpochEntry, LEADER_EPOCH_CHECKPOINT, LeaderEpochCache, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET,
};
pub use manager::{
    CLEAN_SHUTDOWN_MARKER, LOG_START_CHECKPOINT, LogManager, ManagerConfig,
    RECOVERY_POINT_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT, StartupReport,
};
pub use partition::{AbortedTransaction, FetchIsolation, OffsetSpec, Partition, TimestampedOffset};
pub use producer_snapshot::{PRODUCER_SNAPSHOT_SUFFIX, ProducerSnapshotError};
pub use producer_state::{
    BatchMetadata, PRODUCER_BATCHES_RETAINED, PRODUCER_ID_EXPIRATION_MS_DEFAULT, ProducerStateEntry,
};
pub use topic_partition::{
    InvalidTopicName, TOPIC_NAME_BYTES_MAX, TopicPartition, validate_topic_name,
};
pub use verification::VerificationGuard;
