//! The records of Kafka's internal topic `__consumer_offsets`, byte for
//! byte as Kafka writes them, so that Kafka's own tools (the console
//! consumer's `OffsetsMessageFormatter`, `kafka-dump-log`) read Rill's topic
//! and Rill loads a topic that Kafka wrote.
//!
//! Every record is a key and a value, each opening with a big-endian int16
//! version. The key's version says what the record is (Kafka now calls it
//! the record type):
//!
//! ```text
//! key   0 | 1  OffsetCommitKey    group: string, topic: string, partition: int32
//! key   2      GroupMetadataKey   group: string
//! value        OffsetCommitValue  v0..=v4   (Kafka writes v3, or v1 with an expire timestamp)
//!              GroupMetadataValue v0..=v4   (Kafka writes v3)
//! ```
//!
//! A null value is a tombstone: compaction deletes the key. Versions 0..=3
//! use Kafka's classic encoding (int16-length strings, int32-length bytes
//! and arrays); version 4 is "flexible" (unsigned-varint lengths plus one,
//! and a tagged-field section closing each struct). Rill writes exactly
//! the versions Kafka writes and reads every version Kafka may have
//! written. Key versions 3 and 5..=8 are KIP-848 consumer groups' records
//! (`consumer::records`); other types of Kafka's newer coordinators (share
//! and streams groups, ...) decode as
//! [`OffsetsTopicDecodeError::UnknownRecordType`] and a loader skips
//! them, as Kafka's `CoordinatorLoaderImpl` does.
//!
//! A TxnOffsetCommit writes the same offset commit records in a
//! transactional batch of its producer ([`txn_batch`]); the commit or
//! abort marker that ends the transaction is a control batch, which
//! [`read_batches`] returns as a [`LoadedMarker`].
//!
//! Decoding reads untrusted bytes from disk: every length is checked
//! against the bytes that remain before anything is allocated, and bad
//! input is a typed error, never a panic.

/// The internal topic of committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

use crate::consumer::ConsumerGroupRecord;
use bytes::Bytes;
use rill_record::{
    BatchBuilder, BatchError, BatchView, ControlRecordError, EndTxnMarker, KeyedBatchError,
    KeyedBatchItem, KeyedRecord, SchemaDecodeError, SchemaEncodeError, SchemaReader as Reader,
    SchemaWriter as Writer, coordinator_partition, keyed_batch, read_keyed_batches,
};
#[cfg(test)]
use rill_record::{NewRecord, java_string_hash};

/// Key version of offset commits written by Kafka before 0.9 (same layout as v1).
pub const OFFSET_COMMIT_KEY_V0: i16 = 0;
/// Key version (record type) of offset commits that Kafka writes.
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version (record type) of group metadata.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Newest OffsetCommitValue version Kafka defines (the first flexible one).
pub const OFFSET_COMMIT_VALUE_VERSION_MAX: i16 = 4;
/// Newest GroupMetadataValue version Kafka defines (the first flexible one).
pub const GROUP_METADATA_VALUE_VERSION_MAX: i16 = 4;
/// GroupMetadataValue version Kafka writes: the newest non-flexible one,
/// so that older brokers can still read the topic after a downgrade.
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;
pub use rill_record::STRING_BYTES_MAX;

/// Kafka's "no leader epoch" and "no timestamp" on the wire.
const NONE_I32: i32 = -1;
const NONE_I64: i64 = -1;
/// The first flexible version of both value schemas.
const FLEXIBLE_VERSION: i16 = 4;

/// Why a key or value of `__consumer_offsets` could not be decoded. Each
/// variant names what was expected against what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffsetsTopicDecodeError {
    /// A field does not fit its schema (truncated, bad length, ...).
    #[error(transparent)]
    Schema(#[from] SchemaDecodeError),
    /// A record type this module does not know (Kafka's newer
    /// coordinators write types 3 and above); loaders skip these.
    #[error(
        "key version {version} is not an offset commit (0, 1), group metadata (2) or consumer group (3, 5..=8) key"
    )]
    UnknownRecordType { version: i16 },
    #[error("{record} version {version} is not one Kafka defines (0..={max})")]
    UnsupportedValueVersion {
        record: &'static str,
        version: i16,
        max: i16,
    },
}

/// Why a record could not be encoded in Kafka's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffsetsTopicEncodeError {
    /// A field is longer than its schema can carry.
    #[error(transparent)]
    Schema(#[from] SchemaEncodeError),
    #[error("{record} has no version {version}; Kafka defines {min}..={max}")]
    UnsupportedVersion {
        record: &'static str,
        version: i16,
        min: i16,
        max: i16,
    },
}

/// The key of a committed offset: which group committed it for which
/// partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetCommitKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// One committed offset as stored: what a consumer committed and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The next offset the group will consume.
    pub offset: i64,
    /// The leader epoch of the last consumed record (v3+); -1 on the wire
    /// is `None`.
    pub leader_epoch: Option<i32>,
    /// Client-supplied metadata (may be empty).
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Only v1 carries it (OffsetCommit v2..=v4 with a retention time);
    /// when set it overrides offsets.retention.minutes for this offset.
    pub expire_timestamp_ms: Option<i64>,
}

/// The key of a group's metadata record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupMetadataKey {
    pub group: String,
}

/// A classic group's state as of its last rebalance: generation, protocol,
/// leader and each member's subscription and assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// Empty for a group that has no protocol type yet (Kafka writes "").
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its current state (v2+); -1 is `None`.
    pub current_state_timestamp_ms: Option<i64>,
    pub members: Vec<MemberMetadata>,
}

/// One member of a [`GroupMetadataValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    /// Static membership (KIP-345), v3+.
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// v1+. A v0 value has none; decoding takes the session timeout, as
    /// Kafka's GroupMetadataManager did.
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the chosen protocol (opaque).
    pub subscription: Bytes,
    /// What the leader assigned to the member (opaque).
    pub assignment: Bytes,
}

/// Any record of `__consumer_offsets` that this module understands, with
/// `None` as the value of a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsTopicRecord {
    OffsetCommit {
        key: OffsetCommitKey,
        value: Option<OffsetCommitValue>,
    },
    GroupMetadata {
        key: GroupMetadataKey,
        value: Option<GroupMetadataValue>,
    },
    /// A record of a KIP-848 consumer group (key versions 3 and 5..=8).
    ConsumerGroup(ConsumerGroupRecord),
}

impl OffsetCommitKey {
    /// Encodes at [`OFFSET_COMMIT_KEY_VERSION`], as Kafka writes.
    pub fn encode(&self) -> Result<Bytes, OffsetsTopicEncodeError> {
        let mut out = Writer::new(OFFSET_COMMIT_KEY_VERSION, false);
        out.string("group", &self.group)?;
        out.string("topic", &self.topic)?;
        out.i32(self.partition);
        Ok(Bytes::from(out.finish()))
    }

    /// Decodes a key of version 0 or 1 (both have this layout).
    pub fn decode(buf: &[u8]) -> Result<OffsetCommitKey, OffsetsTopicDecodeError> {
        let mut reader = Reader::new(buf, false);
        let version = reader.i16("key version")?;
        if version != OFFSET_COMMIT_KEY_V0 && version != OFFSET_COMMIT_KEY_VERSION {
            return Err(OffsetsTopicDecodeError::UnknownRecordType { version });
        }
        Self::decode_fields(&mut reader, version)
    }

    fn decode_fields(
        reader: &mut Reader<'_>,
        version: i16,
    ) -> Result<OffsetCommitKey, OffsetsTopicDecodeError> {
        let key = OffsetCommitKey {
            group: reader.string("group")?,
            topic: reader.string("topic")?,
            partition: reader.i32("partition")?,
        };
        reader.finish("OffsetCommitKey", version)?;
        Ok(key)
    }
}

impl GroupMetadataKey {
    /// Encodes at [`GROUP_METADATA_KEY_VERSION`].
    pub fn encode(&self) -> Result<Bytes, OffsetsTopicEncodeError> {
        let mut out = Writer::new(GROUP_METADATA_KEY_VERSION, false);
        out.string("group", &self.group)?;
        Ok(Bytes::from(out.finish()))
    }

    /// Decodes a key of version 2.
    pub fn decode(buf: &[u8]) -> Result<GroupMetadataKey, OffsetsTopicDecodeError> {
        let mut reader = Reader::new(buf, false);
        let version = reader.i16("key version")?;
        if version != GROUP_METADATA_KEY_VERSION {
            return Err(OffsetsTopicDecodeError::UnknownRecordType { version });
        }
        Self::decode_fields(&mut reader, version)
    }

    fn decode_fields(
        reader: &mut Reader<'_>,
        version: i16,
    ) -> Result<GroupMetadataKey, OffsetsTopicDecodeError> {
        let key = GroupMetadataKey {
            group: reader.string("group")?,
        };
        reader.finish("GroupMetadataKey", version)?;
        Ok(key)
    }
}

impl OffsetCommitValue {
    const RECORD: &'static str = "OffsetCommitValue";

    /// The version Kafka writes this value at: 1 when it carries an expire
    /// timestamp (only v1 has the field), else 3 (the newest non-flexible).
    pub fn version(&self) -> i16 {
        if self.expire_timestamp_ms.is_some() {
            1
        } else {
            3
        }
    }

    /// Encodes at [`OffsetCommitValue::version`].
    pub fn encode(&self) -> Result<Bytes, OffsetsTopicEncodeError> {
        self.encode_version(self.version())
    }

    /// Encodes at `version` (0..=4). Fields the version lacks are dropped,
    /// as Kafka drops its "ignorable" fields: the leader epoch below v3,
    /// the expire timestamp outside v1.
    pub fn encode_version(&self, version: i16) -> Result<Bytes, OffsetsTopicEncodeError> {
        check_version(Self::RECORD, version, OFFSET_COMMIT_VALUE_VERSION_MAX)?;
        let mut out = Writer::new(version, version >= FLEXIBLE_VERSION);
        out.i64(self.offset);
        if version >= 3 {
            out.i32(self.leader_epoch.unwrap_or(NONE_I32));
        }
        out.string("metadata", &self.metadata)?;
        out.i64(self.commit_timestamp_ms);
        if version == 1 {
            out.i64(self.expire_timestamp_ms.unwrap_or(NONE_I64));
        }
        out.tagged_fields(&[]);
        Ok(Bytes::from(out.finish()))
    }

    /// Decodes a value of any version Kafka has written (0..=4).
    pub fn decode(buf: &[u8]) -> Result<OffsetCommitValue, OffsetsTopicDecodeError> {
        let version = value_version(buf, Self::RECORD, OFFSET_COMMIT_VALUE_VERSION_MAX)?;
        let mut reader = Reader::new(buf, version >= FLEXIBLE_VERSION);
        reader.i16("value version")?;
        let offset = reader.i64("offset")?;
        let leader_epoch = if version >= 3 {
            reader.i32("leaderEpoch")?
        } else {
            NONE_I32
        };
        let metadata = reader.string("metadata")?;
        let commit_timestamp_ms = reader.i64("commitTimestamp")?;
        let expire_timestamp_ms = if version == 1 {
            reader.i64("expireTimestamp")?
        } else {
            NONE_I64
        };
        reader.skip_tagged_fields()?;
        reader.finish(Self::RECORD, version)?;
        Ok(OffsetCommitValue {
            offset,
            leader_epoch: (leader_epoch != NONE_I32).then_some(leader_epoch),
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms: (expire_timestamp_ms != NONE_I64).then_some(expire_timestamp_ms),
        })
    }
}

impl GroupMetadataValue {
    const RECORD: &'static str = "GroupMetadataValue";

    /// Encodes at [`GROUP_METADATA_VALUE_VERSION`], as Kafka writes.
    pub fn encode(&self) -> Result<Bytes, OffsetsTopicEncodeError> {
        self.encode_version(GROUP_METADATA_VALUE_VERSION)
    }

    /// Encodes at `version` (0..=4). Fields the version lacks are dropped
    /// (Kafka's "ignorable" fields): the current state timestamp below v2,
    /// the rebalance timeout in v0, the group instance id below v3.
    pub fn encode_version(&self, version: i16) -> Result<Bytes, OffsetsTopicEncodeError> {
        check_version(Self::RECORD, version, GROUP_METADATA_VALUE_VERSION_MAX)?;
        let mut out = Writer::new(version, version >= FLEXIBLE_VERSION);
        out.string("protocolType", &self.protocol_type)?;
        out.i32(self.generation);
        out.nullable_string("protocol", self.protocol.as_deref())?;
        out.nullable_string("leader", self.leader.as_deref())?;
        if version >= 2 {
            out.i64(self.current_state_timestamp_ms.unwrap_or(NONE_I64));
        }
        out.array_len("members", self.members.len())?;
        for member in &self.members {
            member.encode_fields(&mut out, version)?;
        }
        out.tagged_fields(&[]);
        Ok(Bytes::from(out.finish()))
    }

    /// Decodes a value of any version Kafka has written (0..=4).
    pub fn decode(buf: &[u8]) -> Result<GroupMetadataValue, OffsetsTopicDecodeError> {
        let version = value_version(buf, Self::RECORD, GROUP_METADATA_VALUE_VERSION_MAX)?;
        let mut reader = Reader::new(buf, version >= FLEXIBLE_VERSION);
        reader.i16("value version")?;
        let protocol_type = reader.string("protocolType")?;
        let generation = reader.i32("generation")?;
        let protocol = reader.nullable_string("protocol")?;
        let leader = reader.nullable_string("leader")?;
        let current_state_timestamp = if version >= 2 {
            reader.i64("currentStateTimestamp")?
        } else {
            NONE_I64
        };
        let count = reader.array_len("members")?;
        // No reservation: each member consumes bytes or fails, so the
        // vector never outgrows the input.
        let mut members = Vec::new();
        for _ in 0..count {
            members.push(MemberMetadata::decode_fields(&mut reader, version)?);
        }
        reader.skip_tagged_fields()?;
        reader.finish(Self::RECORD, version)?;
        Ok(GroupMetadataValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp_ms: (current_state_timestamp != NONE_I64)
                .then_some(current_state_timestamp),
            members,
        })
    }
}

impl MemberMetadata {
    fn encode_fields(&self, out: &mut Writer, version: i16) -> Result<(), OffsetsTopicEncodeError> {
        out.string("memberId", &self.member_id)?;
        if version >= 3 {
            out.nullable_string("groupInstanceId", self.group_instance_id.as_deref())?;
        }
        out.string("clientId", &self.client_id)?;
        out.string("clientHost", &self.client_host)?;
        if version >= 1 {
            out.i32(self.rebalance_timeout_ms);
        }
        out.i32(self.session_timeout_ms);
        out.bytes("subscription", &self.subscription)?;
        out.bytes("assignment", &self.assignment)?;
        out.tagged_fields(&[]);
        Ok(())
    }

    fn decode_fields(
        reader: &mut Reader<'_>,
        version: i16,
    ) -> Result<MemberMetadata, OffsetsTopicDecodeError> {
        let member_id = reader.string("memberId")?;
        let group_instance_id = if version >= 3 {
            reader.nullable_string("groupInstanceId")?
        } else {
            None
        };
        let client_id = reader.string("clientId")?;
        let client_host = reader.string("clientHost")?;
        let rebalance_timeout = if version >= 1 {
            Some(reader.i32("rebalanceTimeout")?)
        } else {
            None
        };
        let session_timeout_ms = reader.i32("sessionTimeout")?;
        let subscription = Bytes::copy_from_slice(reader.bytes("subscription")?);
        let assignment = Bytes::copy_from_slice(reader.bytes("assignment")?);
        reader.skip_tagged_fields()?;
        Ok(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: rebalance_timeout.unwrap_or(session_timeout_ms),
            session_timeout_ms,
            subscription,
            assignment,
        })
    }
}

impl OffsetsTopicRecord {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            OffsetsTopicRecord::OffsetCommit { key, .. } => &key.group,
            OffsetsTopicRecord::GroupMetadata { key, .. } => &key.group,
            OffsetsTopicRecord::ConsumerGroup(record) => record.group(),
        }
    }

    /// Whether the record deletes its key.
    pub fn is_tombstone(&self) -> bool {
        match self {
            OffsetsTopicRecord::OffsetCommit { value, .. } => value.is_none(),
            OffsetsTopicRecord::GroupMetadata { value, .. } => value.is_none(),
            OffsetsTopicRecord::ConsumerGroup(record) => record.is_tombstone(),
        }
    }

    /// The record's key and value (`None`: tombstone) at the versions
    /// Kafka writes.
    pub fn encode(&self) -> Result<(Bytes, Option<Bytes>), OffsetsTopicEncodeError> {
        match self {
            OffsetsTopicRecord::OffsetCommit { key, value } => Ok((
                key.encode()?,
                value.as_ref().map(OffsetCommitValue::encode).transpose()?,
            )),
            OffsetsTopicRecord::GroupMetadata { key, value } => Ok((
                key.encode()?,
                value.as_ref().map(GroupMetadataValue::encode).transpose()?,
            )),
            OffsetsTopicRecord::ConsumerGroup(record) => record.encode(),
        }
    }

    /// Decodes a key and value of any version Kafka may have written. A
    /// key version other than 0, 1 or 2 is
    /// [`OffsetsTopicDecodeError::UnknownRecordType`]: skip the record.
    pub fn decode(
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<OffsetsTopicRecord, OffsetsTopicDecodeError> {
        let mut reader = Reader::new(key, false);
        let version = reader.i16("key version")?;
        match version {
            OFFSET_COMMIT_KEY_V0 | OFFSET_COMMIT_KEY_VERSION => {
                Ok(OffsetsTopicRecord::OffsetCommit {
                    key: OffsetCommitKey::decode_fields(&mut reader, version)?,
                    value: value.map(OffsetCommitValue::decode).transpose()?,
                })
            }
            GROUP_METADATA_KEY_VERSION => Ok(OffsetsTopicRecord::GroupMetadata {
                key: GroupMetadataKey::decode_fields(&mut reader, version)?,
                value: value.map(GroupMetadataValue::decode).transpose()?,
            }),
            version => match ConsumerGroupRecord::decode(version, &mut reader, value)? {
                Some(record) => Ok(OffsetsTopicRecord::ConsumerGroup(record)),
                None => Err(OffsetsTopicDecodeError::UnknownRecordType { version }),
            },
        }
    }
}

/// Kafka's `Utils.abs(groupId.hashCode) % offsets.topic.num.partitions`:
/// the partition of `__consumer_offsets` that holds `group_id`, and so its
/// coordinator. `hashCode` is Java's `String.hashCode` over UTF-16 code
/// units; `Utils.abs` maps `i32::MIN` to 0.
///
/// `partitions` is offsets.topic.num.partitions and must be positive (the
/// config is validated at startup; anything else is a bug).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "offsets.topic.num.partitions must be positive, is {partitions}"
    );
    coordinator_partition(group_id, partitions)
}

/// One partition of `__consumer_offsets`, `index` of `partitions`
/// (offsets.topic.num.partitions): the groups whose records it holds. A
/// transaction marker written there ends the transaction's offsets of
/// those groups only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetsPartition {
    pub index: i32,
    pub partitions: i32,
}

impl OffsetsPartition {
    /// Whether `group`'s records live in this partition
    /// ([`partition_for`]).
    pub fn holds(self, group: &str) -> bool {
        partition_for(group, self.partitions) == self.index
    }
}

/// One record of `__consumer_offsets` read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    /// Written inside a transaction (TxnOffsetCommit): an offset commit
    /// here is pending until its producer's marker (see
    /// [`LoadedBatches::markers`]) commits or aborts it.
    pub is_transactional: bool,
    /// The producer id of the record's batch; -1 when it has none (every
    /// non-transactional batch Rill or Kafka writes here).
    pub producer_id: i64,
    pub record: OffsetsTopicRecord,
}

/// A transaction marker (control batch) read back from the log: it ends
/// `producer_id`'s transaction in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedMarker {
    pub offset: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub marker: EndTxnMarker,
}

/// The records found in a buffer of whole batches, as [`read_batches`]
/// returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedBatches {
    /// Records in log order; later ones supersede earlier ones.
    pub records: Vec<LoadedRecord>,
    /// Commit and abort markers in log order. Their offsets place them
    /// among `records`: a marker ends only the transactional records of
    /// its producer that precede it
    /// ([`OffsetStore::replay_batches`](crate::OffsetStore::replay_batches)
    /// applies both in log order).
    pub markers: Vec<LoadedMarker>,
    /// Records of types this module does not know (Kafka's newer
    /// coordinators), and control records other than commit or abort,
    /// skipped.
    pub skipped_unknown: usize,
    /// Bytes of whole batches read: where the next read should start. A
    /// partial batch at the end (normal at the end of a fetch) is not
    /// counted.
    pub bytes_read: usize,
}

/// Why a buffer of `__consumer_offsets` batches could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum OffsetsBatchError {
    /// The batches themselves are unreadable (framing, compression, a
    /// record without a key).
    #[error(transparent)]
    Batches(#[from] KeyedBatchError),
    #[error("record at offset {offset}: {error}")]
    Record {
        offset: i64,
        error: OffsetsTopicDecodeError,
    },
    #[error("control batch at offset {offset} is not a readable transaction marker: {error}")]
    Marker {
        offset: i64,
        error: ControlRecordError,
    },
}

/// One uncompressed v2 batch of `records` (key, value; `None` is a
/// tombstone) with every record timestamped `timestamp_ms`, ready for the
/// broker to stamp offsets and append. `None` when `records` is empty: a
/// batch must hold at least one record. A record over 2 GiB cannot be
/// framed ([`BatchError::TooLongToFrame`]).
pub fn batch(
    records: &[(Bytes, Option<Bytes>)],
    timestamp_ms: i64,
) -> Result<Option<Vec<u8>>, BatchError> {
    keyed_batch(BatchBuilder::new(timestamp_ms), records)
}

/// [`batch`] for a TxnOffsetCommit: the same offset commit records in a
/// transactional batch of `producer_id` at `producer_epoch`, with no
/// sequence (-1), as Kafka writes them. Their offsets stay pending until
/// the producer's commit or abort marker lands in the same partition.
pub fn txn_batch(
    records: &[(Bytes, Option<Bytes>)],
    producer_id: i64,
    producer_epoch: i16,
    timestamp_ms: i64,
) -> Result<Option<Vec<u8>>, BatchError> {
    let builder = BatchBuilder::new(timestamp_ms)
        .producer(producer_id, producer_epoch, rill_record::NO_SEQUENCE)
        .transactional();
    keyed_batch(builder, records)
}

/// Decodes the records of the whole batches at the start of `buf` (as a
/// fetch or a segment read returns them). Control batches become
/// [`LoadedBatches::markers`]; one that holds no readable marker is
/// [`OffsetsBatchError::Marker`], and a control record of a type other
/// than commit or abort is skipped, as are records of unknown types.
/// Compressed
/// batches expand into at most `records_bytes_max` bytes each (use
/// max.message.bytes or larger). CRCs are not checked here: the log
/// verified them on append and on recovery.
pub fn read_batches(
    buf: &[u8],
    records_bytes_max: usize,
) -> Result<LoadedBatches, OffsetsBatchError> {
    let mut loaded = LoadedBatches {
        records: Vec::new(),
        markers: Vec::new(),
        skipped_unknown: 0,
        bytes_read: 0,
    };
    loaded.bytes_read =
        read_keyed_batches(buf, records_bytes_max, OFFSETS_TOPIC, |item| match item {
            KeyedBatchItem::Control { batch } => loaded.load_marker(batch),
            KeyedBatchItem::Record { batch, record } => loaded.load_record(batch, record),
        })?;
    Ok(loaded)
}

impl LoadedBatches {
    fn load_marker(&mut self, batch: &BatchView<'_>) -> Result<(), OffsetsBatchError> {
        let offset = batch.base_offset();
        match EndTxnMarker::of(batch) {
            Ok(Some(marker)) => self.markers.push(LoadedMarker {
                offset,
                producer_id: batch.producer_id(),
                producer_epoch: batch.producer_epoch(),
                marker,
            }),
            Ok(None) => {
                tracing::debug!(
                    offset,
                    "skipping a control record that is not a transaction marker"
                );
                self.skipped_unknown += 1;
            }
            Err(error) => return Err(OffsetsBatchError::Marker { offset, error }),
        }
        Ok(())
    }

    fn load_record(
        &mut self,
        batch: &BatchView<'_>,
        record: KeyedRecord<'_>,
    ) -> Result<(), OffsetsBatchError> {
        let offset = record.offset;
        match OffsetsTopicRecord::decode(record.key, record.value) {
            Ok(decoded) => self.records.push(LoadedRecord {
                offset,
                timestamp_ms: record.timestamp_ms,
                is_transactional: batch.attributes().is_transactional(),
                producer_id: batch.producer_id(),
                record: decoded,
            }),
            Err(OffsetsTopicDecodeError::UnknownRecordType { version }) => {
                tracing::debug!(
                    offset,
                    version,
                    "skipping unknown __consumer_offsets record type"
                );
                self.skipped_unknown += 1;
            }
            Err(error) => return Err(OffsetsBatchError::Record { offset, error }),
        }
        Ok(())
    }
}

fn check_version(
    record: &'static str,
    version: i16,
    max: i16,
) -> Result<(), OffsetsTopicEncodeError> {
    if (0..=max).contains(&version) {
        Ok(())
    } else {
        Err(OffsetsTopicEncodeError::UnsupportedVersion {
            record,
            version,
            min: 0,
            max,
        })
    }
}

/// Reads a value's version prefix and checks Kafka defines it.
fn value_version(
    buf: &[u8],
    record: &'static str,
    max: i16,
) -> Result<i16, OffsetsTopicDecodeError> {
    let version = Reader::new(buf, false).i16("value version")?;
    if (0..=max).contains(&version) {
        Ok(version)
    } else {
        Err(OffsetsTopicDecodeError::UnsupportedValueVersion {
            record,
            version,
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Kafka's classic string: int16 length, UTF-8 bytes.
    fn kstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as i16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    /// Kafka's classic bytes: int32 length, bytes.
    fn kbytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as i32).to_be_bytes());
        out.extend_from_slice(b);
    }

    fn commit_value(expire: Option<i64>) -> OffsetCommitValue {
        OffsetCommitValue {
            offset: 1234,
            leader_epoch: Some(5),
            metadata: "meta".to_owned(),
            commit_timestamp_ms: 1_700_000_000_000,
            expire_timestamp_ms: expire,
        }
    }

    fn member(instance: Option<&str>) -> MemberMetadata {
        MemberMetadata {
            member_id: "consumer-1-abc".to_owned(),
            group_instance_id: instance.map(str::to_owned),
            client_id: "consumer-1".to_owned(),
            client_host: "/127.0.0.1".to_owned(),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 45_000,
            subscription: Bytes::from_static(b"\x00\x01sub"),
            assignment: Bytes::from_static(b"\x00\x01assign"),
        }
    }

    fn group_value() -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: "consumer".to_owned(),
            generation: 3,
            protocol: Some("range".to_owned()),
            leader: Some("consumer-1-abc".to_owned()),
            current_state_timestamp_ms: Some(1_700_000_000_123),
            members: vec![member(Some("instance-a")), member(None)],
        }
    }

    #[test]
    fn offset_commit_key_matches_kafka_layout() {
        let key = OffsetCommitKey {
            group: "my-group".to_owned(),
            topic: "orders".to_owned(),
            partition: 7,
        };
        // OffsetCommitKey.json: group string, topic string, partition int32,
        // behind the int16 key version 1.
        let mut expected = vec![0x00, 0x01];
        kstr(&mut expected, "my-group");
        kstr(&mut expected, "orders");
        expected.extend_from_slice(&7i32.to_be_bytes());
        let encoded = key.encode().unwrap();
        assert_eq!(&encoded[..], &expected[..]);
        assert_eq!(OffsetCommitKey::decode(&expected).unwrap(), key);
        // Key version 0 (Kafka before 0.9) has the same layout.
        expected[1] = 0;
        assert_eq!(OffsetCommitKey::decode(&expected).unwrap(), key);
    }

    #[test]
    fn group_metadata_key_matches_kafka_layout() {
        let key = GroupMetadataKey {
            group: "my-group".to_owned(),
        };
        let mut expected = vec![0x00, 0x02];
        kstr(&mut expected, "my-group");
        assert_eq!(&key.encode().unwrap()[..], &expected[..]);
        assert_eq!(GroupMetadataKey::decode(&expected).unwrap(), key);
    }

    #[test]
    fn offset_commit_value_v3_matches_kafka_layout() {
        let value = commit_value(None);
        assert_eq!(value.version(), 3);
        // v3: offset int64, leaderEpoch int32, metadata string,
        // commitTimestamp int64.
        let mut expected = vec![0x00, 0x03];
        expected.extend_from_slice(&1234i64.to_be_bytes());
        expected.extend_from_slice(&5i32.to_be_bytes());
        kstr(&mut expected, "meta");
        expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&value.encode().unwrap()[..], &expected[..]);
        assert_eq!(OffsetCommitValue::decode(&expected).unwrap(), value);
    }

    #[test]
    fn offset_commit_value_v1_matches_kafka_layout() {
        let value = OffsetCommitValue {
            leader_epoch: None,
            ..commit_value(Some(1_700_000_600_000))
        };
        assert_eq!(value.version(), 1);
        // v1: offset int64, metadata string, commitTimestamp int64,
        // expireTimestamp int64.
        let mut expected = vec![0x00, 0x01];
        expected.extend_from_slice(&1234i64.to_be_bytes());
        kstr(&mut expected, "meta");
        expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        expected.extend_from_slice(&1_700_000_600_000i64.to_be_bytes());
        assert_eq!(&value.encode().unwrap()[..], &expected[..]);
        assert_eq!(OffsetCommitValue::decode(&expected).unwrap(), value);
    }

    #[test]
    fn offset_commit_value_v4_is_flexible() {
        let value = commit_value(None);
        // v4: the v3 fields with a compact string (uvarint length + 1)
        // and an empty tagged-field section (uvarint 0).
        let mut expected = vec![0x00, 0x04];
        expected.extend_from_slice(&1234i64.to_be_bytes());
        expected.extend_from_slice(&5i32.to_be_bytes());
        expected.push(5);
        expected.extend_from_slice(b"meta");
        expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        expected.push(0);
        assert_eq!(&value.encode_version(4).unwrap()[..], &expected[..]);
        assert_eq!(OffsetCommitValue::decode(&expected).unwrap(), value);
        // An unknown tagged field (tag 9, 3 bytes) is skipped.
        let mut tagged = expected.clone();
        tagged.pop();
        tagged.extend_from_slice(&[1, 9, 3, 0xaa, 0xbb, 0xcc]);
        assert_eq!(OffsetCommitValue::decode(&tagged).unwrap(), value);
    }

    #[test]
    fn group_metadata_value_v3_matches_kafka_layout() {
        let value = GroupMetadataValue {
            members: vec![member(Some("instance-a"))],
            ..group_value()
        };
        // GroupMetadataValue.json v3: protocolType string, generation
        // int32, protocol nullable string, leader nullable string,
        // currentStateTimestamp int64, members array (int32 count) of
        // memberId, groupInstanceId (nullable), clientId, clientHost,
        // rebalanceTimeout int32, sessionTimeout int32, subscription bytes,
        // assignment bytes.
        let mut expected = vec![0x00, 0x03];
        kstr(&mut expected, "consumer");
        expected.extend_from_slice(&3i32.to_be_bytes());
        kstr(&mut expected, "range");
        kstr(&mut expected, "consumer-1-abc");
        expected.extend_from_slice(&1_700_000_000_123i64.to_be_bytes());
        expected.extend_from_slice(&1i32.to_be_bytes());
        kstr(&mut expected, "consumer-1-abc");
        kstr(&mut expected, "instance-a");
        kstr(&mut expected, "consumer-1");
        kstr(&mut expected, "/127.0.0.1");
        expected.extend_from_slice(&300_000i32.to_be_bytes());
        expected.extend_from_slice(&45_000i32.to_be_bytes());
        kbytes(&mut expected, b"\x00\x01sub");
        kbytes(&mut expected, b"\x00\x01assign");
        assert_eq!(&value.encode().unwrap()[..], &expected[..]);
        assert_eq!(GroupMetadataValue::decode(&expected).unwrap(), value);
    }

    #[test]
    fn empty_group_value_has_null_protocol_and_leader() {
        // What Kafka writes for a group that became Empty.
        let value = GroupMetadataValue {
            protocol_type: String::new(),
            generation: 0,
            protocol: None,
            leader: None,
            current_state_timestamp_ms: Some(42),
            members: Vec::new(),
        };
        let mut expected = vec![0x00, 0x03];
        kstr(&mut expected, "");
        expected.extend_from_slice(&0i32.to_be_bytes());
        expected.extend_from_slice(&(-1i16).to_be_bytes());
        expected.extend_from_slice(&(-1i16).to_be_bytes());
        expected.extend_from_slice(&42i64.to_be_bytes());
        expected.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(&value.encode().unwrap()[..], &expected[..]);
        assert_eq!(GroupMetadataValue::decode(&expected).unwrap(), value);
    }

    #[test]
    fn offset_commit_value_round_trips_every_version() {
        for version in 0..=OFFSET_COMMIT_VALUE_VERSION_MAX {
            let full = commit_value(Some(99));
            // What the version can carry.
            let expected = OffsetCommitValue {
                leader_epoch: if version >= 3 { Some(5) } else { None },
                expire_timestamp_ms: if version == 1 { Some(99) } else { None },
                ..full.clone()
            };
            let bytes = full.encode_version(version).unwrap();
            assert_eq!(i16::from_be_bytes([bytes[0], bytes[1]]), version);
            assert_eq!(
                OffsetCommitValue::decode(&bytes).unwrap(),
                expected,
                "v{version}"
            );
        }
    }

    #[test]
    fn group_metadata_value_round_trips_every_version() {
        for version in 0..=GROUP_METADATA_VALUE_VERSION_MAX {
            let full = group_value();
            let mut expected = full.clone();
            if version < 2 {
                expected.current_state_timestamp_ms = None;
            }
            for member in &mut expected.members {
                if version < 3 {
                    member.group_instance_id = None;
                }
                if version == 0 {
                    // v0 has no rebalance timeout; Kafka took the session timeout.
                    member.rebalance_timeout_ms = member.session_timeout_ms;
                }
            }
            let bytes = full.encode_version(version).unwrap();
            assert_eq!(i16::from_be_bytes([bytes[0], bytes[1]]), version);
            assert_eq!(
                GroupMetadataValue::decode(&bytes).unwrap(),
                expected,
                "v{version}"
            );
        }
    }

    #[test]
    fn records_round_trip_with_tombstones() {
        let records = [
            OffsetsTopicRecord::OffsetCommit {
                key: OffsetCommitKey {
                    group: "g".to_owned(),
                    topic: "t".to_owned(),
                    partition: 0,
                },
                value: Some(commit_value(None)),
            },
            OffsetsTopicRecord::OffsetCommit {
                key: OffsetCommitKey {
                    group: "g".to_owned(),
                    topic: "t".to_owned(),
                    partition: 1,
                },
                value: None,
            },
            OffsetsTopicRecord::GroupMetadata {
                key: GroupMetadataKey {
                    group: "g".to_owned(),
                },
                value: Some(group_value()),
            },
            OffsetsTopicRecord::GroupMetadata {
                key: GroupMetadataKey {
                    group: "g".to_owned(),
                },
                value: None,
            },
        ];
        for record in records {
            let (key, value) = record.encode().unwrap();
            assert_eq!(value.is_none(), record.is_tombstone());
            assert_eq!(record.group(), "g");
            let decoded = OffsetsTopicRecord::decode(&key, value.as_deref()).unwrap();
            assert_eq!(decoded, record);
        }
    }

    #[test]
    fn unknown_versions_are_typed_errors() {
        // Key version 4: a consumer group's partition metadata, no longer
        // written by Kafka and not read by Rill.
        let mut key = vec![0x00, 0x04];
        kstr(&mut key, "g");
        assert_eq!(
            OffsetsTopicRecord::decode(&key, None),
            Err(OffsetsTopicDecodeError::UnknownRecordType { version: 4 })
        );
        // Key version 3: a KIP-848 consumer group record, not an offset commit.
        let mut key = vec![0x00, 0x03];
        kstr(&mut key, "g");
        assert_eq!(
            OffsetCommitKey::decode(&key),
            Err(OffsetsTopicDecodeError::UnknownRecordType { version: 3 })
        );
        let mut value = commit_value(None).encode().unwrap().to_vec();
        value[1] = 5;
        assert_eq!(
            OffsetCommitValue::decode(&value),
            Err(OffsetsTopicDecodeError::UnsupportedValueVersion {
                record: "OffsetCommitValue",
                version: 5,
                max: 4
            })
        );
        assert!(matches!(
            commit_value(None).encode_version(-1),
            Err(OffsetsTopicEncodeError::UnsupportedVersion { version: -1, .. })
        ));
    }

    #[test]
    fn every_truncation_is_an_error() {
        type Fails = fn(&[u8]) -> bool;
        let encodings: Vec<(Bytes, Fails)> = vec![
            (
                OffsetCommitKey {
                    group: "g".to_owned(),
                    topic: "t".to_owned(),
                    partition: 1,
                }
                .encode()
                .unwrap(),
                |b| OffsetCommitKey::decode(b).is_err(),
            ),
            (
                GroupMetadataKey {
                    group: "g".to_owned(),
                }
                .encode()
                .unwrap(),
                |b| GroupMetadataKey::decode(b).is_err(),
            ),
            (commit_value(None).encode().unwrap(), |b| {
                OffsetCommitValue::decode(b).is_err()
            }),
            (commit_value(None).encode_version(4).unwrap(), |b| {
                OffsetCommitValue::decode(b).is_err()
            }),
            (group_value().encode().unwrap(), |b| {
                GroupMetadataValue::decode(b).is_err()
            }),
            (group_value().encode_version(4).unwrap(), |b| {
                GroupMetadataValue::decode(b).is_err()
            }),
        ];
        for (bytes, fails) in encodings {
            for cut in 0..bytes.len() {
                assert!(fails(&bytes[..cut]), "prefix of {cut} bytes decoded");
            }
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert!(fails(&longer), "trailing byte accepted");
        }
    }

    #[test]
    fn bad_lengths_and_nulls_are_typed_errors() {
        // A member count far past the bytes left.
        let mut value = vec![0x00, 0x03];
        kstr(&mut value, "consumer");
        value.extend_from_slice(&1i32.to_be_bytes());
        value.extend_from_slice(&(-1i16).to_be_bytes());
        value.extend_from_slice(&(-1i16).to_be_bytes());
        value.extend_from_slice(&(-1i64).to_be_bytes());
        let mut huge = value.clone();
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            GroupMetadataValue::decode(&huge),
            Err(OffsetsTopicDecodeError::Schema(
                SchemaDecodeError::InvalidLength {
                    field: "members",
                    length: i64::from(i32::MAX),
                    available: 0
                }
            ))
        );
        let mut null_members = value.clone();
        null_members.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            GroupMetadataValue::decode(&null_members),
            Err(OffsetsTopicDecodeError::Schema(
                SchemaDecodeError::UnexpectedNull { field: "members" }
            ))
        );
        // A null non-nullable string, a negative length, invalid UTF-8.
        let mut key = vec![0x00, 0x01];
        key.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(
            OffsetCommitKey::decode(&key),
            Err(OffsetsTopicDecodeError::Schema(
                SchemaDecodeError::UnexpectedNull { field: "group" }
            ))
        );
        key.truncate(2);
        key.extend_from_slice(&(-7i16).to_be_bytes());
        assert!(matches!(
            OffsetCommitKey::decode(&key),
            Err(OffsetsTopicDecodeError::Schema(
                SchemaDecodeError::InvalidLength { length: -7, .. }
            ))
        ));
        let key = [0x00, 0x02, 0x00, 0x02, 0xff, 0xfe];
        assert_eq!(
            GroupMetadataKey::decode(&key),
            Err(OffsetsTopicDecodeError::Schema(
                SchemaDecodeError::InvalidUtf8 { field: "group" }
            ))
        );
        // A flexible length that is a varint of six bytes.
        let mut flexible = vec![0x00, 0x04];
        flexible.extend_from_slice(&0i64.to_be_bytes());
        flexible.extend_from_slice(&0i32.to_be_bytes());
        flexible.extend_from_slice(&[0xff; 6]);
        assert!(matches!(
            OffsetCommitValue::decode(&flexible),
            Err(OffsetsTopicDecodeError::Schema(
                SchemaDecodeError::VarintTooLong { .. }
            ))
        ));
    }

    #[test]
    fn overlong_strings_are_refused_on_encode() {
        let value = OffsetCommitValue {
            metadata: "x".repeat(STRING_BYTES_MAX + 1),
            ..commit_value(None)
        };
        assert_eq!(
            value.encode(),
            Err(OffsetsTopicEncodeError::Schema(
                SchemaEncodeError::TooLong {
                    field: "metadata",
                    length: STRING_BYTES_MAX + 1,
                    max: STRING_BYTES_MAX
                }
            ))
        );
        let value = OffsetCommitValue {
            metadata: "x".repeat(STRING_BYTES_MAX),
            ..commit_value(None)
        };
        let bytes = value.encode().unwrap();
        assert_eq!(OffsetCommitValue::decode(&bytes).unwrap(), value);
    }

    /// Java's `String.hashCode` by its definition, for the tests.
    fn java_hash_by_hand(units: &[u16]) -> i32 {
        let n = units.len();
        let mut sum = 0i32;
        for (i, &unit) in units.iter().enumerate() {
            let mut power = 1i32;
            for _ in 0..(n - 1 - i) {
                power = power.wrapping_mul(31);
            }
            sum = sum.wrapping_add(i32::from(unit).wrapping_mul(power));
        }
        sum
    }

    #[test]
    fn partition_for_matches_kafka() {
        // "group".hashCode() == 98629247 in Java.
        assert_eq!(java_string_hash("group"), 98_629_247);
        assert_eq!(partition_for("group", 50), 98_629_247 % 50);
        for s in ["my-group", "console-consumer-12345", "", "é-groupe", "😀"] {
            let units: Vec<u16> = s.encode_utf16().collect();
            assert_eq!(java_string_hash(s), java_hash_by_hand(&units), "{s}");
        }
        // A non-BMP character hashes as its two UTF-16 surrogates.
        assert_eq!(java_string_hash("😀"), 0xD83D * 31 + 0xDE00);
        // "my-group" overflows i32; its hash by hand decides the partition.
        let hash = java_hash_by_hand(&"my-group".encode_utf16().collect::<Vec<_>>());
        assert_eq!(partition_for("my-group", 50), hash.abs() % 50);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE; Kafka's
        // Utils.abs maps it to 0.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // Negative hashes take the absolute value.
        let negative = "console-consumer-12345";
        let h = java_string_hash(negative);
        assert_eq!(partition_for(negative, 7), h.wrapping_abs() % 7);
        for s in ["a", "b", "group", "my-group"] {
            assert!((0..50).contains(&partition_for(s, 50)));
        }
    }

    #[test]
    fn batch_round_trips_through_read_batches() {
        let records = [
            OffsetsTopicRecord::OffsetCommit {
                key: OffsetCommitKey {
                    group: "g".to_owned(),
                    topic: "t".to_owned(),
                    partition: 3,
                },
                value: Some(commit_value(None)),
            },
            OffsetsTopicRecord::GroupMetadata {
                key: GroupMetadataKey {
                    group: "g".to_owned(),
                },
                value: None,
            },
        ];
        let mut pairs: Vec<(Bytes, Option<Bytes>)> =
            records.iter().map(|r| r.encode().unwrap()).collect();
        let first = batch(&pairs, 1_000).unwrap().unwrap();
        // A record type Rill does not know, which loading skips.
        let mut unknown = vec![0x00, 0x04];
        kstr(&mut unknown, "g");
        pairs = vec![(Bytes::from(unknown), Some(Bytes::from_static(b"\x00\x00")))];
        let second = batch(&pairs, 2_000).unwrap().unwrap();
        let mut buf = first.clone();
        buf.extend_from_slice(&second);
        let whole = buf.len();
        // A torn batch at the end is left for the next read.
        buf.extend_from_slice(&first[..30]);
        let loaded = read_batches(&buf, 1 << 20).unwrap();
        assert_eq!(loaded.bytes_read, whole);
        assert_eq!(loaded.skipped_unknown, 1);
        assert_eq!(loaded.records.len(), 2);
        assert_eq!(loaded.records[0].record, records[0]);
        assert_eq!(loaded.records[0].offset, 0);
        assert_eq!(loaded.records[0].timestamp_ms, 1_000);
        assert_eq!(loaded.records[1].record, records[1]);
        assert_eq!(loaded.records[1].offset, 1);
        assert!(!loaded.records[1].is_transactional);
        assert_eq!(batch(&[], 0), Ok(None));
    }

    #[test]
    fn txn_batch_is_a_transactional_batch_of_the_producer() {
        let record = OffsetsTopicRecord::OffsetCommit {
            key: OffsetCommitKey {
                group: "g".to_owned(),
                topic: "t".to_owned(),
                partition: 0,
            },
            value: Some(commit_value(None)),
        };
        let bytes = txn_batch(&[record.encode().unwrap()], 42, 3, 1_000)
            .unwrap()
            .unwrap();
        let view = rill_record::BatchView::new(&bytes).unwrap();
        view.verify_crc().unwrap();
        assert!(view.attributes().is_transactional());
        assert!(!view.attributes().is_control());
        assert_eq!(view.producer_id(), 42);
        assert_eq!(view.producer_epoch(), 3);
        assert_eq!(view.base_sequence(), rill_record::NO_SEQUENCE);
        let loaded = read_batches(&bytes, 1 << 20).unwrap();
        assert_eq!(loaded.records.len(), 1);
        assert!(loaded.records[0].is_transactional);
        assert_eq!(loaded.records[0].producer_id, 42);
        assert_eq!(loaded.records[0].record, record);
        // A marker of the producer after it.
        let marker = EndTxnMarker {
            kind: rill_record::MarkerKind::Commit,
            coordinator_epoch: 5,
        };
        let mut marker_bytes = rill_record::end_txn_marker(42, 3, marker, 2_000).unwrap();
        marker_bytes[..8].copy_from_slice(&1i64.to_be_bytes());
        let mut buf = bytes.clone();
        buf.extend_from_slice(&marker_bytes);
        let loaded = read_batches(&buf, 1 << 20).unwrap();
        assert_eq!(loaded.bytes_read, buf.len());
        assert_eq!(
            loaded.markers,
            vec![LoadedMarker {
                offset: 1,
                producer_id: 42,
                producer_epoch: 3,
                marker,
            }]
        );
        assert_eq!(txn_batch(&[], 42, 3, 0), Ok(None));
        // A plain batch has no producer.
        let plain = batch(&[record.encode().unwrap()], 0).unwrap().unwrap();
        assert_eq!(
            read_batches(&plain, 1 << 20).unwrap().records[0].producer_id,
            -1
        );
    }

    #[test]
    fn read_batches_reports_garbage_and_keyless_records() {
        let mut buf = batch(
            &[(
                GroupMetadataKey {
                    group: "g".to_owned(),
                }
                .encode()
                .unwrap(),
                None,
            )],
            0,
        )
        .unwrap()
        .unwrap();
        let first = buf.len();
        buf.extend_from_slice(&[0u8; 64]);
        assert!(matches!(
            read_batches(&buf, 1 << 20),
            Err(OffsetsBatchError::Batches(KeyedBatchError::InvalidBatch { position, .. })) if position == first
        ));
        let keyless = BatchBuilder::new(0)
            .with_records(&[NewRecord::value(b"v")])
            .finish()
            .unwrap();
        assert!(matches!(
            read_batches(&keyless, 1 << 20),
            Err(OffsetsBatchError::Batches(KeyedBatchError::MissingKey {
                offset: 0,
                ..
            }))
        ));
        let bad_key = batch(&[(Bytes::from_static(b"\x00\x01\x00"), None)], 0)
            .unwrap()
            .unwrap();
        assert!(matches!(
            read_batches(&bad_key, 1 << 20),
            Err(OffsetsBatchError::Record {
                offset: 0,
                error: OffsetsTopicDecodeError::Schema(SchemaDecodeError::Truncated { .. })
            })
        ));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(key in proptest::collection::vec(any::<u8>(), 0..64),
                                value in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = OffsetsTopicRecord::decode(&key, Some(&value));
            let _ = OffsetCommitValue::decode(&value);
            let _ = GroupMetadataValue::decode(&value);
            let _ = read_batches(&value, 1 << 16);
        }

        #[test]
        fn versioned_garbage_never_panics(version in 0i16..=4,
                                          rest in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut buf = version.to_be_bytes().to_vec();
            buf.extend_from_slice(&rest);
            let _ = OffsetCommitValue::decode(&buf);
            let _ = GroupMetadataValue::decode(&buf);
        }

        #[test]
        fn offset_commit_values_round_trip(offset in any::<i64>(),
                                           epoch in proptest::option::of(0i32..),
                                           metadata in ".{0,40}",
                                           commit in any::<i64>(),
                                           expire in proptest::option::of(0i64..)) {
            let value = OffsetCommitValue {
                offset,
                leader_epoch: if expire.is_some() { None } else { epoch },
                metadata,
                commit_timestamp_ms: commit,
                expire_timestamp_ms: expire,
            };
            let bytes = value.encode().unwrap();
            prop_assert_eq!(OffsetCommitValue::decode(&bytes).unwrap(), value);
        }
    }
}
