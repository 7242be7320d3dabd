//! rill-record owns Kafka's v2 RecordBatch format: a zero-copy view of a
//! batch header, validation of what producers send (lengths, magic,
//! CRC-32C, Kafka's LogValidator header rules) and of what a follower
//! copies from its leader (framing and CRC-32C only), in-place stamping of the fields
//! the broker owns (baseOffset, partitionLeaderEpoch, LogAppendTime), an
//! iterator that splits a buffer into whole batches, and record-level
//! decoding for the few places that need keys, values and headers, and
//! what Kafka's internal topics share: the primitive types of their record
//! schemas ([`SchemaReader`], [`SchemaWriter`]) and their batches of keyed
//! records ([`keyed_batch`], [`read_keyed_batches`]).
//!
//! It is pure: no I/O, no allocation per batch on the paths that only look
//! at headers.
//!
//! ```
//! use rill_record::{validate_produced, BatchBuilder, BatchViewMut, NewRecord};
//!
//! let mut bytes = BatchBuilder::new(1_700_000_000_000)
//!     .with_records(&[NewRecord::value(b"hello"), NewRecord::value(b"world")])
//!     .finish().unwrap();
//! let batch = validate_produced(&bytes, 1 << 20).unwrap();
//! assert_eq!(batch.records_count(), 2);
//!
//! // The broker assigns offsets in place; the CRC stays valid.
//! let mut stamped = BatchViewMut::new(&mut bytes).unwrap();
//! stamped.set_base_offset(41);
//! stamped.set_partition_leader_epoch(3);
//! assert_eq!(stamped.view().last_offset(), 42);
//! stamped.view().verify_crc().unwrap();
//! ```

mod batch;
mod batches;
mod builder;
mod compression;
mod control;
mod error;
mod keyed;
mod record;
mod record_rules;
mod rewrite;
mod schema;
mod validate;
mod varint;

pub use batch::{
    Attributes, BatchView, BatchViewMut, Compression, MAGIC_V2, NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_ID, NO_SEQUENCE, NO_TIMESTAMP, TimestampType, layout,
};
pub use batches::{Batches, BatchesEnd};
pub use builder::{BatchBuilder, NewRecord};
pub use compression::{compress, compress_with_level, decompress, default_level, records_data};
pub use control::{ControlRecordError, EndTxnMarker, MarkerKind, end_txn_marker};
pub use error::{BatchError, BatchErrorKind, CompressError, DecompressError, RecordError};
pub use keyed::{
    KeyedBatchError, KeyedBatchItem, KeyedRecord, coordinator_partition, java_string_hash,
    keyed_batch, read_keyed_batches,
};
pub use record::{Header, Headers, Record, Records};
pub use record_rules::{RecordRules, TopicCompression, apply_record_rules};
pub use rewrite::{BatchRewriter, delete_horizon_of};
pub use schema::{
    STRING_BYTES_MAX, SchemaDecodeError, SchemaEncodeError, SchemaReader, SchemaWriter, tagged_i16,
    tagged_i64,
};
pub use validate::{validate_produced, validate_replicated};
