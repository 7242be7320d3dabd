//! Errors of batch framing, validation, record decoding and decompression.

use crate::Compression;

/// Why a buffer is not an acceptable v2 batch. Each variant names what was
/// expected and what was found; [`BatchError::kind`] groups them the way
/// Kafka's error codes do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch is truncated: needed {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("batchLength {batch_length} is out of range (a v2 batch has at least 49)")]
    LengthOutOfRange { batch_length: i32 },
    #[error("magic byte is {magic}, expected 2")]
    UnsupportedMagic { magic: i8 },
    #[error("batch is {batch_bytes} bytes, larger than max.message.bytes {max_bytes}")]
    TooLarge {
        batch_bytes: usize,
        max_bytes: usize,
    },
    #[error("CRC mismatch: header says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("compression code {code} is not defined by Kafka")]
    UnknownCompression { code: u8 },
    #[error("expected exactly one batch of {batch_bytes} bytes, buffer holds {buffer_bytes}")]
    NotOneBatch {
        batch_bytes: usize,
        buffer_bytes: usize,
    },
    #[error("baseOffset is {base_offset}; a producer's batch starts at 0")]
    BaseOffsetNotZero { base_offset: i64 },
    #[error("lastOffsetDelta {last_offset_delta} does not match recordsCount {records_count}")]
    OffsetRangeMismatch {
        last_offset_delta: i32,
        records_count: i32,
    },
    /// A replicated batch whose offset range cannot hold its records:
    /// lastOffsetDelta is negative, or recordsCount is negative or more
    /// than the lastOffsetDelta + 1 offsets the batch spans.
    #[error(
        "lastOffsetDelta {last_offset_delta} and recordsCount {records_count} describe no batch: expected lastOffsetDelta >= 0 and 0 <= recordsCount <= lastOffsetDelta + 1"
    )]
    OffsetRangeInvalid {
        last_offset_delta: i32,
        records_count: i32,
    },
    #[error("producers may not write control batches")]
    ControlBatchFromClient,
    #[error("producers may not set the LogAppendTime timestamp type")]
    LogAppendTimeFromClient,
    #[error("batch of producer {producer_id} has invalid baseSequence {base_sequence}")]
    InvalidSequence {
        producer_id: i64,
        base_sequence: i32,
    },
    /// Records without a key, by index in the batch, on a compacted topic.
    #[error(
        "a compacted topic cannot accept a record without a key: records {record_indexes:?} have none"
    )]
    RecordsWithoutKey { record_indexes: Vec<i32> },
    #[error("record {record_index} has offset delta {offset_delta}, expected {record_index}")]
    RecordOffsetDelta {
        record_index: i32,
        offset_delta: i32,
    },
    #[error("the batch's records cannot be read: {reason}")]
    RecordsUndecodable { reason: String },
    #[error("the batch's records expand past the {max_bytes}-byte limit")]
    ExpandsTooLarge { max_bytes: usize },
    /// A batch being built or reframed, or one of its parts, is longer
    /// than Kafka's i32 lengths can say.
    #[error(
        "a length of {length} bytes cannot be framed: a v2 batch and its parts are at most 2147483647 bytes"
    )]
    TooLongToFrame { length: usize },
}

/// The classes of [`BatchError`], one per Kafka error code they become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchErrorKind {
    /// CORRUPT_MESSAGE: the bytes are damaged (framing, CRC).
    Corrupt,
    /// INVALID_RECORD: well-formed bytes that break a rule.
    InvalidRecord,
    /// MESSAGE_TOO_LARGE.
    TooLarge,
    /// INVALID_TIMESTAMP.
    InvalidTimestamp,
    /// UNSUPPORTED_COMPRESSION_TYPE.
    UnsupportedCompression,
}

impl BatchError {
    pub fn kind(&self) -> BatchErrorKind {
        match self {
            BatchError::Truncated { .. }
            | BatchError::LengthOutOfRange { .. }
            | BatchError::UnsupportedMagic { .. }
            | BatchError::CrcMismatch { .. }
            | BatchError::RecordsUndecodable { .. } => BatchErrorKind::Corrupt,
            BatchError::TooLarge { .. }
            | BatchError::ExpandsTooLarge { .. }
            | BatchError::TooLongToFrame { .. } => BatchErrorKind::TooLarge,
            BatchError::UnknownCompression { .. } => BatchErrorKind::UnsupportedCompression,
            BatchError::LogAppendTimeFromClient => BatchErrorKind::InvalidTimestamp,
            BatchError::NotOneBatch { .. }
            | BatchError::BaseOffsetNotZero { .. }
            | BatchError::OffsetRangeMismatch { .. }
            | BatchError::OffsetRangeInvalid { .. }
            | BatchError::ControlBatchFromClient
            | BatchError::InvalidSequence { .. }
            | BatchError::RecordsWithoutKey { .. }
            | BatchError::RecordOffsetDelta { .. } => BatchErrorKind::InvalidRecord,
        }
    }
}

/// Why the records section of a batch cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{field} runs past the end: needs {needed} bytes, {available} left")]
    Truncated {
        field: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("{field} is a varint longer than {max_bytes} bytes")]
    VarintTooLong {
        field: &'static str,
        max_bytes: usize,
    },
    #[error("{field} has invalid length {length}")]
    InvalidLength { field: &'static str, length: i64 },
    #[error("record says it is {declared} bytes but its fields take {actual}")]
    SizeMismatch { declared: usize, actual: usize },
    #[error("recordsCount says {declared} records but {trailing_bytes} bytes follow the last one")]
    TrailingBytes {
        declared: i32,
        trailing_bytes: usize,
    },
    #[error("recordsCount is {count}")]
    InvalidCount { count: i32 },
}

/// Why a compressed records section cannot be expanded.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("compression code {code} is not defined by Kafka")]
    UnknownCompression { code: u8 },
    #[error("{compression:?} data is corrupt: {message}")]
    Corrupt {
        compression: Compression,
        message: String,
    },
    #[error("{compression:?} data expands past the {max_bytes}-byte limit")]
    TooLarge {
        compression: Compression,
        max_bytes: usize,
    },
}

/// Why a records section could not be compressed again (compaction).
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("compression code {code} is not defined by Kafka")]
    UnknownCompression { code: u8 },
    #[error("{compression:?} compression failed: {message}")]
    Failed {
        compression: Compression,
        message: String,
    },
    /// The rewritten batch, or one of its records, is longer than Kafka's
    /// i32 lengths can say.
    #[error(
        "a length of {length} bytes cannot be framed: a v2 batch and its parts are at most 2147483647 bytes"
    )]
    TooLongToFrame { length: usize },
}
