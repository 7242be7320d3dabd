//! The records of KIP-848 consumer groups in `__consumer_offsets`, byte
//! for byte as Kafka writes them. Keys are non-flexible (an int16 record
//! type, then int16-length strings); values are version 0, flexible
//! (compact lengths, tagged fields), and name topics by id:
//!
//! ```text
//! key 3  ConsumerGroupMetadataKey                 group      value: Epoch int32, tag 0 MetadataHash int64
//! key 5  ConsumerGroupMemberMetadataKey           group, member
//!        value: InstanceId?, RackId?, ClientId, ClientHost, SubscribedTopicNames [string],
//!               SubscribedTopicRegex?, RebalanceTimeoutMs int32, ServerAssignor?,
//!               tag 0 ClassicMemberMetadata? (SessionTimeoutMs int32,
//!                     SupportedProtocols [Name string, Metadata bytes])
//! key 6  ConsumerGroupTargetAssignmentMetadataKey group      value: AssignmentEpoch int32
//! key 7  ConsumerGroupTargetAssignmentMemberKey   group, member
//!        value: TopicPartitions [TopicId uuid, Partitions [int32]]
//! key 8  ConsumerGroupCurrentMemberAssignmentKey  group, member
//!        value: MemberEpoch int32, PreviousMemberEpoch int32, State int8,
//!               AssignedPartitions [..], PartitionsPendingRevocation [..]
//! ```
//!
//! Key 4 (ConsumerGroupPartitionMetadata, no longer written since Kafka
//! 4.1) is not read: loaders skip it. A null value is a tombstone.

use std::collections::BTreeSet;

use bytes::Bytes;
use rill_record::{SchemaReader as Reader, SchemaWriter as Writer, tagged_i64};

use super::assignment::{Assignment, TopicId, normalize};
use super::reconcile::{CurrentAssignment, MemberState};
use crate::offsets_topic::{OffsetsTopicDecodeError, OffsetsTopicEncodeError};

pub const CONSUMER_GROUP_METADATA_KEY_VERSION: i16 = 3;
pub const CONSUMER_GROUP_MEMBER_METADATA_KEY_VERSION: i16 = 5;
pub const CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_KEY_VERSION: i16 = 6;
pub const CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY_VERSION: i16 = 7;
pub const CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_KEY_VERSION: i16 = 8;

/// The only value version of every consumer-group record.
const VALUE_VERSION: i16 = 0;
/// The tag of ConsumerGroupMetadataValue's MetadataHash.
const METADATA_HASH_TAG: u32 = 0;
/// The tag of ConsumerGroupMemberMetadataValue's ClassicMemberMetadata.
const CLASSIC_MEMBER_METADATA_TAG: u32 = 0;

/// A consumer group's epoch and the hash of the topics it subscribes to
/// (a change of either means a new target assignment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupEpochValue {
    pub epoch: i32,
    pub metadata_hash: i64,
}

/// A member's subscription and client details.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// Set for a member that speaks the classic protocol (JoinGroup,
    /// SyncGroup, Heartbeat) in a consumer group: KIP-848's online
    /// migration.
    pub classic: Option<ClassicMemberMetadata>,
}

/// What a classic-protocol member of a consumer group joined with: its
/// session timeout and its protocols (assignor names and subscription
/// metadata), kept so that the group can turn back into a classic group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassicMemberMetadata {
    pub session_timeout_ms: i32,
    pub supported_protocols: Vec<crate::JoinProtocol>,
}

/// One record of a consumer group; `None` as a value is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerGroupRecord {
    Metadata {
        group_id: String,
        value: Option<GroupEpochValue>,
    },
    MemberMetadata {
        group_id: String,
        member_id: String,
        value: Option<MemberMetadataValue>,
    },
    TargetAssignmentMetadata {
        group_id: String,
        /// The assignment epoch.
        value: Option<i32>,
    },
    TargetAssignmentMember {
        group_id: String,
        member_id: String,
        value: Option<Assignment>,
    },
    CurrentMemberAssignment {
        group_id: String,
        member_id: String,
        value: Option<CurrentAssignment>,
    },
}

impl ConsumerGroupRecord {
    pub fn group(&self) -> &str {
        match self {
            ConsumerGroupRecord::Metadata { group_id, .. }
            | ConsumerGroupRecord::MemberMetadata { group_id, .. }
            | ConsumerGroupRecord::TargetAssignmentMetadata { group_id, .. }
            | ConsumerGroupRecord::TargetAssignmentMember { group_id, .. }
            | ConsumerGroupRecord::CurrentMemberAssignment { group_id, .. } => group_id,
        }
    }

    pub fn is_tombstone(&self) -> bool {
        match self {
            ConsumerGroupRecord::Metadata { value, .. } => value.is_none(),
            ConsumerGroupRecord::MemberMetadata { value, .. } => value.is_none(),
            ConsumerGroupRecord::TargetAssignmentMetadata { value, .. } => value.is_none(),
            ConsumerGroupRecord::TargetAssignmentMember { value, .. } => value.is_none(),
            ConsumerGroupRecord::CurrentMemberAssignment { value, .. } => value.is_none(),
        }
    }

    /// The key and value (`None`: tombstone) as Kafka writes them.
    pub fn encode(&self) -> Result<(Bytes, Option<Bytes>), OffsetsTopicEncodeError> {
        let key = |version: i16, group: &str, member: Option<&str>| {
            let mut out = Writer::new(version, false);
            out.string("groupId", group)?;
            if let Some(member) = member {
                out.string("memberId", member)?;
            }
            Ok::<_, OffsetsTopicEncodeError>(Bytes::from(out.finish()))
        };
        match self {
            ConsumerGroupRecord::Metadata { group_id, value } => Ok((
                key(CONSUMER_GROUP_METADATA_KEY_VERSION, group_id, None)?,
                value.map(|v| encode_group_epoch(&v)),
            )),
            ConsumerGroupRecord::MemberMetadata {
                group_id,
                member_id,
                value,
            } => Ok((
                key(
                    CONSUMER_GROUP_MEMBER_METADATA_KEY_VERSION,
                    group_id,
                    Some(member_id),
                )?,
                value.as_ref().map(encode_member_metadata).transpose()?,
            )),
            ConsumerGroupRecord::TargetAssignmentMetadata { group_id, value } => Ok((
                key(
                    CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_KEY_VERSION,
                    group_id,
                    None,
                )?,
                value.map(|epoch| {
                    let mut out = Writer::new(VALUE_VERSION, true);
                    out.i32(epoch);
                    out.tagged_fields(&[]);
                    Bytes::from(out.finish())
                }),
            )),
            ConsumerGroupRecord::TargetAssignmentMember {
                group_id,
                member_id,
                value,
            } => Ok((
                key(
                    CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY_VERSION,
                    group_id,
                    Some(member_id),
                )?,
                value
                    .as_ref()
                    .map(|assignment| {
                        let mut out = Writer::new(VALUE_VERSION, true);
                        write_partitions(&mut out, assignment)?;
                        out.tagged_fields(&[]);
                        Ok::<_, OffsetsTopicEncodeError>(Bytes::from(out.finish()))
                    })
                    .transpose()?,
            )),
            ConsumerGroupRecord::CurrentMemberAssignment {
                group_id,
                member_id,
                value,
            } => Ok((
                key(
                    CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_KEY_VERSION,
                    group_id,
                    Some(member_id),
                )?,
                value.as_ref().map(encode_current).transpose()?,
            )),
        }
    }

    /// Decodes a record whose key (after its int16 `version`, already read
    /// from `key`) is one of the consumer-group record types; `None` for
    /// another type.
    pub(crate) fn decode(
        version: i16,
        key: &mut Reader<'_>,
        value: Option<&[u8]>,
    ) -> Result<Option<ConsumerGroupRecord>, OffsetsTopicDecodeError> {
        let has_member = match version {
            CONSUMER_GROUP_METADATA_KEY_VERSION
            | CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_KEY_VERSION => false,
            CONSUMER_GROUP_MEMBER_METADATA_KEY_VERSION
            | CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY_VERSION
            | CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_KEY_VERSION => true,
            _ => return Ok(None),
        };
        let group_id = key.string("groupId")?;
        let member_id = if has_member {
            key.string("memberId")?
        } else {
            String::new()
        };
        key.finish("consumer group key", version)?;
        let record = match version {
            CONSUMER_GROUP_METADATA_KEY_VERSION => ConsumerGroupRecord::Metadata {
                group_id,
                value: value.map(decode_group_epoch).transpose()?,
            },
            CONSUMER_GROUP_MEMBER_METADATA_KEY_VERSION => ConsumerGroupRecord::MemberMetadata {
                group_id,
                member_id,
                value: value.map(decode_member_metadata).transpose()?,
            },
            CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_KEY_VERSION => {
                ConsumerGroupRecord::TargetAssignmentMetadata {
                    group_id,
                    value: value
                        .map(|buf| {
                            let mut reader =
                                value_reader(buf, "ConsumerGroupTargetAssignmentMetadataValue")?;
                            let epoch = reader.i32("AssignmentEpoch")?;
                            reader.skip_tagged_fields()?;
                            reader.finish(
                                "ConsumerGroupTargetAssignmentMetadataValue",
                                VALUE_VERSION,
                            )?;
                            Ok::<_, OffsetsTopicDecodeError>(epoch)
                        })
                        .transpose()?,
                }
            }
            CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY_VERSION => {
                ConsumerGroupRecord::TargetAssignmentMember {
                    group_id,
                    member_id,
                    value: value
                        .map(|buf| {
                            let mut reader =
                                value_reader(buf, "ConsumerGroupTargetAssignmentMemberValue")?;
                            let assignment = read_partitions(&mut reader)?;
                            reader.skip_tagged_fields()?;
                            reader.finish(
                                "ConsumerGroupTargetAssignmentMemberValue",
                                VALUE_VERSION,
                            )?;
                            Ok::<_, OffsetsTopicDecodeError>(assignment)
                        })
                        .transpose()?,
                }
            }
            _ => ConsumerGroupRecord::CurrentMemberAssignment {
                group_id,
                member_id,
                value: value.map(decode_current).transpose()?,
            },
        };
        Ok(Some(record))
    }
}

/// A reader past the value's version, which must be 0.
fn value_reader<'a>(
    buf: &'a [u8],
    record: &'static str,
) -> Result<Reader<'a>, OffsetsTopicDecodeError> {
    let mut reader = Reader::new(buf, true);
    let version = reader.i16("value version")?;
    if version != VALUE_VERSION {
        return Err(OffsetsTopicDecodeError::UnsupportedValueVersion {
            record,
            version,
            max: VALUE_VERSION,
        });
    }
    Ok(reader)
}

fn encode_group_epoch(value: &GroupEpochValue) -> Bytes {
    let mut out = Writer::new(VALUE_VERSION, true);
    out.i32(value.epoch);
    if value.metadata_hash == 0 {
        out.tagged_fields(&[]);
    } else {
        out.tagged_fields(&[(
            METADATA_HASH_TAG,
            value.metadata_hash.to_be_bytes().to_vec(),
        )]);
    }
    Bytes::from(out.finish())
}

fn decode_group_epoch(buf: &[u8]) -> Result<GroupEpochValue, OffsetsTopicDecodeError> {
    const RECORD: &str = "ConsumerGroupMetadataValue";
    let mut reader = value_reader(buf, RECORD)?;
    let epoch = reader.i32("Epoch")?;
    let mut metadata_hash = 0;
    reader.tagged_fields(|tag, bytes| {
        if tag == METADATA_HASH_TAG {
            metadata_hash = tagged_i64(tag, bytes)?;
        }
        Ok(())
    })?;
    reader.finish(RECORD, VALUE_VERSION)?;
    Ok(GroupEpochValue {
        epoch,
        metadata_hash,
    })
}

fn encode_member_metadata(value: &MemberMetadataValue) -> Result<Bytes, OffsetsTopicEncodeError> {
    let mut out = Writer::new(VALUE_VERSION, true);
    out.nullable_string("InstanceId", value.instance_id.as_deref())?;
    out.nullable_string("RackId", value.rack_id.as_deref())?;
    out.string("ClientId", &value.client_id)?;
    out.string("ClientHost", &value.client_host)?;
    out.array_len("SubscribedTopicNames", value.subscribed_topic_names.len())?;
    for name in &value.subscribed_topic_names {
        out.string("SubscribedTopicNames", name)?;
    }
    out.nullable_string(
        "SubscribedTopicRegex",
        value.subscribed_topic_regex.as_deref(),
    )?;
    out.i32(value.rebalance_timeout_ms);
    out.nullable_string("ServerAssignor", value.server_assignor.as_deref())?;
    match &value.classic {
        None => out.tagged_fields(&[]),
        Some(classic) => {
            let mut inner = Writer::new(VALUE_VERSION, true);
            inner.i32(classic.session_timeout_ms);
            inner.array_len("SupportedProtocols", classic.supported_protocols.len())?;
            for protocol in &classic.supported_protocols {
                inner.string("Name", &protocol.name)?;
                inner.bytes("Metadata", &protocol.metadata)?;
                inner.tagged_fields(&[]);
            }
            inner.tagged_fields(&[]);
            // The writer opens with a version a nested struct does not have.
            let bytes = inner.finish().split_off(2);
            out.tagged_fields(&[(CLASSIC_MEMBER_METADATA_TAG, bytes)]);
        }
    }
    Ok(Bytes::from(out.finish()))
}

fn decode_classic(bytes: &[u8]) -> Result<ClassicMemberMetadata, rill_record::SchemaDecodeError> {
    let mut reader = Reader::new(bytes, true);
    let session_timeout_ms = reader.i32("SessionTimeoutMs")?;
    let count = reader.array_len("SupportedProtocols")?;
    // No reservation: each protocol consumes bytes or fails.
    let mut supported_protocols = Vec::new();
    for _ in 0..count {
        let name = reader.string("Name")?;
        let metadata = Bytes::copy_from_slice(reader.bytes("Metadata")?);
        reader.skip_tagged_fields()?;
        supported_protocols.push(crate::JoinProtocol { name, metadata });
    }
    reader.skip_tagged_fields()?;
    reader.finish("ClassicMemberMetadata", VALUE_VERSION)?;
    Ok(ClassicMemberMetadata {
        session_timeout_ms,
        supported_protocols,
    })
}

fn decode_member_metadata(buf: &[u8]) -> Result<MemberMetadataValue, OffsetsTopicDecodeError> {
    const RECORD: &str = "ConsumerGroupMemberMetadataValue";
    let mut reader = value_reader(buf, RECORD)?;
    let instance_id = reader.nullable_string("InstanceId")?;
    let rack_id = reader.nullable_string("RackId")?;
    let client_id = reader.string("ClientId")?;
    let client_host = reader.string("ClientHost")?;
    let count = reader.array_len("SubscribedTopicNames")?;
    // No reservation: each name consumes bytes or fails.
    let mut subscribed_topic_names = Vec::new();
    for _ in 0..count {
        subscribed_topic_names.push(reader.string("SubscribedTopicNames")?);
    }
    let subscribed_topic_regex = reader.nullable_string("SubscribedTopicRegex")?;
    let rebalance_timeout_ms = reader.i32("RebalanceTimeoutMs")?;
    let server_assignor = reader.nullable_string("ServerAssignor")?;
    let mut classic = None;
    reader.tagged_fields(|tag, bytes| {
        if tag == CLASSIC_MEMBER_METADATA_TAG {
            classic = Some(decode_classic(bytes)?);
        }
        Ok(())
    })?;
    reader.finish(RECORD, VALUE_VERSION)?;
    Ok(MemberMetadataValue {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex,
        rebalance_timeout_ms,
        server_assignor,
        classic,
    })
}

fn encode_current(value: &CurrentAssignment) -> Result<Bytes, OffsetsTopicEncodeError> {
    let mut out = Writer::new(VALUE_VERSION, true);
    out.i32(value.epoch);
    out.i32(value.previous_epoch);
    out.i8(value.state.to_byte());
    write_partitions(&mut out, &value.assigned)?;
    write_partitions(&mut out, &value.revoking)?;
    out.tagged_fields(&[]);
    Ok(Bytes::from(out.finish()))
}

fn decode_current(buf: &[u8]) -> Result<CurrentAssignment, OffsetsTopicDecodeError> {
    const RECORD: &str = "ConsumerGroupCurrentMemberAssignmentValue";
    let mut reader = value_reader(buf, RECORD)?;
    let epoch = reader.i32("MemberEpoch")?;
    let previous_epoch = reader.i32("PreviousMemberEpoch")?;
    let state = MemberState::from_byte(reader.i8("State")?);
    let assigned = read_partitions(&mut reader)?;
    let revoking = read_partitions(&mut reader)?;
    reader.skip_tagged_fields()?;
    reader.finish(RECORD, VALUE_VERSION)?;
    Ok(CurrentAssignment {
        epoch,
        previous_epoch,
        state,
        assigned,
        revoking,
    })
}

/// `[TopicId uuid, Partitions [int32]]`, each entry closed by its tagged
/// fields.
fn write_partitions(
    out: &mut Writer,
    assignment: &Assignment,
) -> Result<(), OffsetsTopicEncodeError> {
    out.array_len("TopicPartitions", assignment.len())?;
    for (topic, partitions) in assignment {
        let (high, low) = topic.0.split_at(8);
        out.i64(i64::from_be_bytes(high.try_into().unwrap_or_default()));
        out.i64(i64::from_be_bytes(low.try_into().unwrap_or_default()));
        out.array_len("Partitions", partitions.len())?;
        for partition in partitions {
            out.i32(*partition);
        }
        out.tagged_fields(&[]);
    }
    Ok(())
}

fn read_partitions(reader: &mut Reader<'_>) -> Result<Assignment, OffsetsTopicDecodeError> {
    let topics = reader.array_len("TopicPartitions")?;
    let mut assignment = Assignment::new();
    for _ in 0..topics {
        let mut id = [0u8; 16];
        id.copy_from_slice(reader.take("TopicId", 16)?);
        let count = reader.array_len("Partitions")?;
        let mut partitions = BTreeSet::new();
        for _ in 0..count {
            partitions.insert(reader.i32("Partitions")?);
        }
        // Tag 0, AssignmentEpochs (KIP-1251), is not used.
        reader.skip_tagged_fields()?;
        assignment
            .entry(TopicId(id))
            .or_default()
            .extend(partitions);
    }
    Ok(normalize(assignment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::assignment::of;
    use crate::offsets_topic::OffsetsTopicRecord;

    fn round_trip(record: ConsumerGroupRecord) {
        let (key, value) = record.encode().unwrap();
        let decoded = OffsetsTopicRecord::decode(&key, value.as_deref()).unwrap();
        assert_eq!(decoded, OffsetsTopicRecord::ConsumerGroup(record));
    }

    #[test]
    fn every_record_round_trips_with_and_without_a_value() {
        let member = MemberMetadataValue {
            instance_id: Some("i-1".into()),
            rack_id: None,
            client_id: "app".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["orders".into(), "refunds".into()],
            subscribed_topic_regex: Some("ord.*".into()),
            rebalance_timeout_ms: 300_000,
            server_assignor: Some("range".into()),
            classic: None,
        };
        // A classic-protocol member (online migration) keeps its protocols.
        let classic_member = MemberMetadataValue {
            classic: Some(ClassicMemberMetadata {
                session_timeout_ms: 45_000,
                supported_protocols: vec![
                    crate::JoinProtocol {
                        name: "range".into(),
                        metadata: Bytes::from_static(b"\x00\x03sub"),
                    },
                    crate::JoinProtocol {
                        name: "roundrobin".into(),
                        metadata: Bytes::new(),
                    },
                ],
            }),
            ..member.clone()
        };
        let current = CurrentAssignment {
            epoch: 7,
            previous_epoch: 6,
            state: MemberState::UnrevokedPartitions,
            assigned: of(&[(1, &[0, 2])]),
            revoking: of(&[(2, &[1])]),
        };
        let g = || "g".to_owned();
        let m = || "m".to_owned();
        for record in [
            ConsumerGroupRecord::MemberMetadata {
                group_id: g(),
                member_id: m(),
                value: Some(classic_member),
            },
            ConsumerGroupRecord::Metadata {
                group_id: g(),
                value: Some(GroupEpochValue {
                    epoch: 3,
                    metadata_hash: -5,
                }),
            },
            ConsumerGroupRecord::Metadata {
                group_id: g(),
                value: Some(GroupEpochValue {
                    epoch: 3,
                    metadata_hash: 0,
                }),
            },
            ConsumerGroupRecord::Metadata {
                group_id: g(),
                value: None,
            },
            ConsumerGroupRecord::MemberMetadata {
                group_id: g(),
                member_id: m(),
                value: Some(member),
            },
            ConsumerGroupRecord::MemberMetadata {
                group_id: g(),
                member_id: m(),
                value: None,
            },
            ConsumerGroupRecord::TargetAssignmentMetadata {
                group_id: g(),
                value: Some(4),
            },
            ConsumerGroupRecord::TargetAssignmentMetadata {
                group_id: g(),
                value: None,
            },
            ConsumerGroupRecord::TargetAssignmentMember {
                group_id: g(),
                member_id: m(),
                value: Some(of(&[(1, &[0, 1])])),
            },
            ConsumerGroupRecord::TargetAssignmentMember {
                group_id: g(),
                member_id: m(),
                value: None,
            },
            ConsumerGroupRecord::CurrentMemberAssignment {
                group_id: g(),
                member_id: m(),
                value: Some(current),
            },
            ConsumerGroupRecord::CurrentMemberAssignment {
                group_id: g(),
                member_id: m(),
                value: None,
            },
        ] {
            round_trip(record);
        }
    }

    #[test]
    fn current_assignment_matches_kafkas_layout() {
        let current = CurrentAssignment {
            epoch: 2,
            previous_epoch: 1,
            state: MemberState::Stable,
            assigned: of(&[(9, &[3])]),
            revoking: Assignment::new(),
        };
        let record = ConsumerGroupRecord::CurrentMemberAssignment {
            group_id: "g".into(),
            member_id: "m".into(),
            value: Some(current),
        };
        let (key, value) = record.encode().unwrap();
        assert_eq!(&key[..], &[0, 8, 0, 1, b'g', 0, 1, b'm']);
        let mut expected = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0];
        expected.push(2); // one topic
        expected.extend([9u8; 16]);
        expected.extend([2, 0, 0, 0, 3, 0]); // [3], no tagged fields
        expected.extend([1, 0]); // no revoking; no tagged fields
        assert_eq!(&value.unwrap()[..], &expected[..]);
    }

    #[test]
    fn a_truncated_value_is_an_error() {
        let record = ConsumerGroupRecord::TargetAssignmentMember {
            group_id: "g".into(),
            member_id: "m".into(),
            value: Some(of(&[(1, &[0, 1])])),
        };
        let (key, value) = record.encode().unwrap();
        let value = value.unwrap();
        for cut in 0..value.len() {
            assert!(
                OffsetsTopicRecord::decode(&key, Some(&value[..cut])).is_err(),
                "cut at {cut}"
            );
        }
    }
}
