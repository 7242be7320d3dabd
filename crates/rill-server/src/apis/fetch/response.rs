//! Encodes a Fetch response without copying record bytes: every field is
//! written by kafka-protocol's own encoders, and each partition's records
//! go out as the segment slice they are, a separate chunk of the
//! vectored write.
//!
//! How: each level (response, topic, partition) is encoded by
//! kafka-protocol with its children left out (an empty array, null
//! records), and the children are spliced in where that empty value sits.
//! The empty value is the last field before the level's tagged fields,
//! which Rill never sets, so its position is known from the end. A test
//! checks the result against kafka-protocol's full encoding for every
//! version.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::FetchResponse;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::protocol::Encodable;

use crate::apis::{Body, ErrorCounts, HandlerError};

/// Encoded bytes so far, and finished chunks.
struct Chunks {
    chunks: Vec<Bytes>,
    current: BytesMut,
}

impl Chunks {
    fn put_records(&mut self, records: Bytes) {
        if !self.current.is_empty() {
            self.chunks.push(self.current.split().freeze());
        }
        self.chunks.push(records);
    }
}

/// A topic response whose partitions carry their records beside them.
pub(crate) struct TopicRecords {
    pub topic: FetchableTopicResponse,
    /// Per partition, in order: its response (records left `None`) and
    /// its record bytes. Never null: a partition answered with an error
    /// carries empty records, as Kafka's do — librdkafka rejects a null
    /// record set as a parse failure and drops the error with it.
    pub partitions: Vec<(PartitionData, Bytes)>,
}

/// Encodes `response` (whose `responses` is left empty) with `topics`.
pub(crate) fn encode_fetch_response(
    response: &FetchResponse,
    topics: Vec<TopicRecords>,
    version: i16,
) -> Result<Body, HandlerError> {
    let flexible = version >= 12;
    let mut errors = ErrorCounts::default();
    errors.add(response.error_code);
    for topic in &topics {
        for (partition, _) in &topic.partitions {
            errors.add(partition.error_code);
        }
    }
    let mut out = Chunks {
        chunks: Vec::new(),
        current: BytesMut::with_capacity(256),
    };
    let head = encode_level(response, version, flexible, empty_array_bytes(flexible))?;
    out.current.put_slice(&head.before);
    put_array_length(&mut out.current, topics.len(), flexible);
    for topic in topics {
        let level = encode_level(&topic.topic, version, flexible, empty_array_bytes(flexible))?;
        out.current.put_slice(&level.before);
        put_array_length(&mut out.current, topic.partitions.len(), flexible);
        for (partition, records) in topic.partitions {
            let null_records = if flexible { 1 } else { 4 };
            let level = encode_level(&partition, version, flexible, null_records)?;
            out.current.put_slice(&level.before);
            put_bytes_length(&mut out.current, records.len(), flexible);
            if !records.is_empty() {
                out.put_records(records);
            }
            out.current.put_slice(&level.after);
        }
        out.current.put_slice(&level.after);
    }
    out.current.put_slice(&head.after);
    let mut chunks = out.chunks;
    if !out.current.is_empty() {
        chunks.push(out.current.freeze());
    }
    Ok(Body { chunks, errors })
}

/// A level's encoding around the spot where its children go.
struct Level {
    before: Bytes,
    after: Bytes,
}

fn encode_level<T: Encodable>(
    message: &T,
    version: i16,
    flexible: bool,
    placeholder_bytes: usize,
) -> Result<Level, HandlerError> {
    let mut buf = BytesMut::new();
    message
        .encode(&mut buf, version)
        .map_err(encode_error(version))?;
    let tagged_bytes = usize::from(flexible);
    let end = buf.len();
    // Rill leaves every tagged field unset: the tail is one zero count.
    assert!(
        end >= placeholder_bytes + tagged_bytes && (!flexible || buf[end - 1] == 0),
        "a fetch response level has tagged fields set"
    );
    let buf = buf.freeze();
    Ok(Level {
        before: buf.slice(..end - tagged_bytes - placeholder_bytes),
        after: buf.slice(end - tagged_bytes..),
    })
}

fn empty_array_bytes(flexible: bool) -> usize {
    if flexible { 1 } else { 4 }
}

/// An array's element count: INT32, or UNSIGNED_VARINT of count + 1 in
/// flexible versions (0 is null).
fn put_array_length(buf: &mut BytesMut, count: usize, flexible: bool) {
    if flexible {
        put_unsigned_varint(buf, count as u32 + 1);
    } else {
        buf.put_i32(count as i32);
    }
}

/// A byte string's length: the same encoding as an array's.
fn put_bytes_length(buf: &mut BytesMut, length: usize, flexible: bool) {
    put_array_length(buf, length, flexible);
}

fn put_unsigned_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

fn encode_error<E: std::fmt::Display>(version: i16) -> impl Fn(E) -> HandlerError {
    move |error| HandlerError::Encode {
        api: kafka_protocol::messages::ApiKey::Fetch,
        version,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn sample(version: i16) -> (FetchResponse, Vec<TopicRecords>) {
        let mut topics = Vec::new();
        for (t, name) in ["orders", "audit"].iter().enumerate() {
            let mut topic = FetchableTopicResponse::default();
            if version >= 13 {
                topic = topic.with_topic_id(uuid::Uuid::from_u128(t as u128 + 7));
            } else {
                topic = topic.with_topic(TopicName(StrBytes::from_static_str(name)));
            }
            let partitions = (0..3)
                .map(|p| {
                    let mut data = PartitionData::default()
                        .with_partition_index(p)
                        .with_high_watermark(100 + i64::from(p))
                        .with_last_stable_offset(100)
                        .with_log_start_offset(3);
                    if version >= 11 {
                        data = data
                            .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1));
                    }
                    let records = match p {
                        0 => Bytes::from(vec![p as u8; 300]),
                        _ => Bytes::new(),
                    };
                    (data, records)
                })
                .collect();
            topics.push(TopicRecords { topic, partitions });
        }
        let response = FetchResponse::default();
        (response, topics)
    }

    #[test]
    fn spliced_encoding_equals_kafka_protocols_for_every_version() {
        for version in 4..=17 {
            let (response, topics) = sample(version);
            let full = response.clone().with_responses(
                topics
                    .iter()
                    .map(|t| {
                        t.topic.clone().with_partitions(
                            t.partitions
                                .iter()
                                .map(|(p, r)| p.clone().with_records(Some(r.clone())))
                                .collect(),
                        )
                    })
                    .collect(),
            );
            let mut expected = BytesMut::new();
            full.encode(&mut expected, version).unwrap();
            let chunks = encode_fetch_response(&response, topics, version)
                .unwrap()
                .chunks;
            let spliced: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(spliced, expected.to_vec(), "version {version}");
            // The 300 record bytes went out as their own chunk, uncopied.
            assert!(
                chunks
                    .iter()
                    .any(|c| c.len() == 300 && c.iter().all(|b| *b == 0))
            );
        }
    }
}
