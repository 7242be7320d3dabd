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

/// How to make a log directory's files durable could not be established:
/// its logs are offline for writes (see [`OfflineCause::DurabilityUnknown`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log dir {dir}: durability cannot be established: {reason}")]
pub struct DurabilityUnknown {
    pub dir: PathBuf,
    pub reason: String,
}

/// A configuration value outside what the storage supports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    #[error("{name} is {value:?}, expected {expected}")]
    NotOneOf {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Why a log went offline. It refuses appends, truncations, retention and
/// compaction until reopened (a broker restart), and reopening runs
/// recovery; whether it still serves reads depends on the cause (see
/// [`LogFailed::allows_reads`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log {dir} is offline: {cause}")]
pub struct LogFailed {
    pub dir: PathBuf,
    pub cause: OfflineCause,
}

impl LogFailed {
    /// Whether reads of what was acknowledged may go on: yes after a
    /// failed write or sync (those bytes were synced earlier and stay in
    /// the page cache) or when durability could not be established, no
    /// once a file changed under the log (the bytes are gone, and touching
    /// a mapped page past a cut file's end would kill the process with
    /// SIGBUS).
    pub fn allows_reads(&self) -> bool {
        matches!(
            self.cause,
            OfflineCause::WriteFailed { .. } | OfflineCause::DurabilityUnknown { .. }
        )
    }
}

/// What took a log offline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfflineCause {
    /// A sync failed, so what the page cache held is no longer known to
    /// match the disk (after a failed fsync Linux may drop the dirty
    /// pages); or a change of several files (truncation, a compaction
    /// swap) stopped half-way, so the files and the log's memory are out
    /// of step.
    #[error("{reason}")]
    WriteFailed { reason: String },
    /// How to make the log's file system durable could not be established
    /// (statfs failed, or its directory could not be opened), so no
    /// append could be acknowledged truthfully.
    #[error("durability cannot be established: {reason}")]
    DurabilityUnknown { reason: String },
    /// A file of an open segment was removed or cut shorter by something
    /// other than the log.
    #[error(transparent)]
    FileChanged(#[from] SegmentFileChanged),
}

/// A file of an open segment that something outside the log removed or
/// cut shorter (an operator's `rm` or `truncate`, a failing file system),
/// as found by fstat of the log's open descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentFileChanged {
    #[error("segment file {path} was removed under the log: expected a link, found none")]
    Removed { path: PathBuf },
    #[error(
        "segment file {path} was truncated under the log: expected at least {expected_len} bytes, found {found_len}"
    )]
    Truncated {
        path: PathBuf,
        expected_len: u64,
        found_len: u64,
    },
    /// fstat of the open file failed (on Linux only EIO or EOVERFLOW can).
    #[error("cannot stat segment file {path}: {error}")]
    Unknown { path: PathBuf, error: String },
}

/// Why an append was refused. Nothing of a refused batch is written.
#[derive(Debug, thiserror::Error)]
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
    /// The batch's offsets `base_offset ..` (`offsets` of them) would
    /// reach past the largest offset a log holds (i64::MAX / 2, which
    /// keeps segment names and offset arithmetic in range).
    #[error("appending {offsets} offsets at offset {base_offset} would overflow the offset space")]
    OffsetOverflow { base_offset: Offset, offsets: i64 },
    /// A replicated batch (see [`crate::Log::append_replicated`]) that
    /// does not start at or after the log end offset: the follower's log
    /// and the leader's disagree (a truncation is due), or the leader
    /// answered from below the follower's log start. Nothing is written.
    #[error(
        "replicated batch at offsets {base_offset} ..= {last_offset} starts below the log end offset: expected a base offset >= {log_end}, found {base_offset}"
    )]
    BaseOffsetBelowLogEnd {
        log_end: Offset,
        base_offset: Offset,
        last_offset: Offset,
    },
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
    /// The log is offline for reads too (see [`LogFailed::allows_reads`]).
    #[error(transparent)]
    Offline(#[from] LogFailed),
    /// A segment could not be opened or mapped to be read (the process is
    /// out of descriptors or maps); the log is not harmed.
    #[error(transparent)]
    Io(#[from] IoFailure),
}

/// Why a truncation, retention pass or log-start move failed.
#[derive(Debug, thiserror::Error)]
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
