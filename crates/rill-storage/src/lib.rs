//! rill-storage owns a partition's log on disk: segment files of Kafka v2
//! batches (mmap'd `.log`, sparse `.index` and `.timeindex`, and the
//! `.txnindex` of transactions aborted in the segment, named by base
//! offset as in Kafka), appends with offset assignment (and a follower's
//! appends of its leader's batches, unchanged; transaction markers and
//! coordinator batches), zero-copy reads on batch boundaries, rolls,
//! truncation, retention, recovery after a crash, log compaction
//! (cleanup.policy=compact, aborted records removed), and the flush
//! policies that decide when an append may be acknowledged. Which
//! transactions are open is the partition's business (rill-partition);
//! the log stores the markers and the aborted-transaction index.
//!
//! It is synchronous and knows nothing of the network: offsets, byte
//! slices and files. The on-disk format is drawn byte by byte in
//! docs/storage.md.
//!
//! ```
//! use rill_record::{BatchBuilder, NewRecord};
//! use rill_storage::{Flusher, Log, LogConfig, Offset, RealDisk, RecoveryHints};
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let flusher = Flusher::start(1).unwrap();
//! let log = Log::create(dir.path(), LogConfig::default(), Offset(0), &flusher, Arc::new(RealDisk), 0).unwrap();
//! let batch = BatchBuilder::new(0).with_records(&[NewRecord::value(b"a"), NewRecord::value(b"b")]).finish().unwrap();
//! let info = log.append(&batch, 0, 0).unwrap().wait().unwrap(); // durable: fsync policy
//! assert_eq!(info.last_offset, Offset(1));
//!
//! // A clean close lets the next open trust the files without reading them.
//! let end = log.close().unwrap();
//! let hints = RecoveryHints { clean_shutdown: true, recovery_point: end, log_start_offset: Offset(0) };
//! let (log, report) = Log::open(dir.path(), LogConfig::default(), hints, &flusher, Arc::new(RealDisk), 0).unwrap();
//! assert_eq!(report.scanned_segments, 0);
//! assert_eq!(log.log_end_offset(), Offset(2));
//! ```

mod clean_point;
mod clock;
mod compaction;
mod config;
mod disk;
mod durability;
pub mod durable;
mod error;
mod file_check;
mod file_system;
mod flush;
mod flush_stats;
mod index_file;
mod log;
mod mmap;
mod offset;
mod offset_index;
mod offset_map;
mod open_files;
mod open_maps;
mod recovery;
mod retention;
mod segment;
mod slow_syncs;
pub mod testing;
mod time_index;
mod txn_index;

pub use clock::now_ms;
pub use compaction::{CleanerConfig, CompactionOutcome};
pub use config::{
    CleanupPolicy, FlushPolicy, LogConfig, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
    SEGMENT_INDEX_BYTES_MIN,
};
pub use disk::{Disk, FileSystemProbe, KernelVersion, RealDisk};
pub use durability::{AppendInfo, AppendTicket};
pub use error::{
    AppendError, CompactError, ConfigError, DurabilityUnknown, IoFailure, LogFailed, ModifyError,
    OfflineCause, OpenError, ReadError, SegmentFileChanged,
};
pub use file_system::{
    FUSE_MAGIC, SyncChoice, SyncMode, SyncModeSetting, choose_sync_mode, file_system_name,
    space_of, syncfs_writes_data,
};
pub use flush::Flusher;
pub use flush_stats::{FlushStats, Histogram};
pub use log::{Log, LogRead, ReplicatedBatch, ValidatedBatch};
pub use offset::Offset;
pub use open_files::{open_files, open_files_max, set_open_files_max};
pub use open_maps::{maps, maps_max, set_maps_max};
pub use recovery::{RecoveryHints, RecoveryReport};
pub use retention::RetentionOutcome;
pub use txn_index::AbortedTxn;
