//! Errors, split by operation.

use std::io;
use std::path::PathBuf;

use rill_record::{BatchError, CompressError, DecompressError, RecordError};

use crate::Offset;

/// A failed system call, with what was being done and to which file.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {path}: {source}")]
pub struct IoFailure {
    pub operation: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl IoFailure {
    pub fn new(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> IoFailure {
        IoFailure {
            operation,
            path: path.into(),
            source,
        }
    }

    /// Whether the disk (or the quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self.source.raw_os_error(),
            Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error()
                || code == rustix::io::Errno::DQUOT.raw_os_error()
        )
    }
}

/// A configuration value outside what the storage supports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{name} is {value}, expected {min} ..= {max}")]
    OutOfRange {
        name: &'static str,
        value: i64,
        min: i64,
        max: i64,
    },
    /// `value` is the ratio as written (an f64 is not `Eq`).
    #[error("{name} is {value}, expected 0.0 ..= 1.0")]
    RatioOutOfRange { name: &'static str, value: String },
}

/// Why a log went offline: a sync failed, so what the page cache held is
/// no longer known to match the disk (after a failed fsync Linux may drop
/// the dirty pages). Reopening the log runs recovery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log {dir} is offline after a failed sync: {reason}")]
pub struct LogFailed {
    pub dir: PathBuf,
    pub reason: String,
}

/// Why an append was refused. Nothing of a refused batch is written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error(
        "batch of {batch_bytes} bytes cannot fit in a segment of segment.bytes {segment_bytes}"
    )]
    BatchLargerThanSegment {
        batch_bytes: usize,
        segment_bytes: u32,
    },
    #[error("appending {records} records at offset {log_end} would overflow the offset space")]
    OffsetOverflow { log_end: Offset, records: i64 },
    /// `bytes` is the reservation that failed, or 0 when a new segment's
    /// files could not be created.
    #[error("no space left on the device reserving {bytes} bytes: {failure}")]
    DiskFull { bytes: u64, failure: IoFailure },
    #[error(transparent)]
    Io(IoFailure),
    #[error(transparent)]
    Offline(#[from] LogFailed),
    #[error("log {dir} is closed")]
    Closed { dir: PathBuf },
}

impl From<IoFailure> for AppendError {
    fn from(failure: IoFailure) -> AppendError {
        if failure.is_disk_full() {
            AppendError::DiskFull { bytes: 0, failure }
        } else {
            AppendError::Io(failure)
        }
    }
}

/// Why a read was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("offset {offset} is outside the log's range {log_start} ..= {log_end}")]
    OffsetOutOfRange {
        offset: Offset,
        log_start: Offset,
        log_end: Offset,
    },
    #[error("batch at offset {base_offset} cannot be expanded: {source}")]
    Decompress {
        base_offset: Offset,
        #[source]
        source: DecompressError,
    },
    #[error("batch at offset {base_offset} has malformed records: {source}")]
    MalformedRecords {
        base_offset: Offset,
        #[source]
        source: rill_record::RecordError,
    },
}

/// Why a truncation, retention pass or log-start move failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModifyError {
    #[error("log start offset {requested} is beyond the log end offset {log_end}")]
    BeyondLogEnd { requested: Offset, log_end: Offset },
    #[error("log {dir} is closed")]
    Closed { dir: PathBuf },
    #[error(transparent)]
    Io(#[from] IoFailure),
    #[error(transparent)]
    Offline(#[from] LogFailed),
}

/// Why a log could not be opened or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Io(#[from] IoFailure),
}

/// Why a compaction pass failed. The log is unchanged by a failed pass,
/// except for groups of segments swapped before the failure (each swap is
/// atomic); leftover output files are deleted, or removed at the next open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    #[error("batch at offset {base_offset} cannot be expanded: {source}")]
    Decompress {
        base_offset: Offset,
        #[source]
        source: DecompressError,
    },
    #[error("batch at offset {base_offset} has malformed records: {source}")]
    MalformedRecords {
        base_offset: Offset,
        #[source]
        source: RecordError,
    },
    #[error("batch at offset {base_offset} cannot be compressed again: {source}")]
    Compress {
        base_offset: Offset,
        #[source]
        source: CompressError,
    },
    #[error(
        "the offset map of {bytes_max} bytes cannot hold the keys of the batch at offset {base_offset}; raise the dedupe buffer"
    )]
    OffsetMapTooSmall {
        bytes_max: usize,
        base_offset: Offset,
    },
    #[error("writing the cleaned segment at offset {base_offset}: {source}")]
    Write {
        base_offset: Offset,
        #[source]
        source: AppendError,
    },
    #[error("log {dir} is closed")]
    Closed { dir: PathBuf },
    #[error(transparent)]
    Io(#[from] IoFailure),
    #[error(transparent)]
    Offline(#[from] LogFailed),
}
