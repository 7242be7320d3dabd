//! The consumer protocol's embedded bytes (Kafka's
//! ConsumerProtocolSubscription and ConsumerProtocolAssignment, each a
//! big-endian int16 version then the body) in the terms consumer groups
//! (KIP-848) use: topics by id. Classic members of a consumer group, and
//! the conversions between the two kinds of group, go through here.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rill_group::{Assignment, JoinProtocol, TopicsImage};

/// The assignment version written: every consumer reads it (0 carries
/// what later versions carry, for the eager and cooperative assignors).
const ASSIGNMENT_VERSION: i16 = 0;

/// What a classic member subscribes to, as its protocol metadata says.
#[derive(Debug, Default)]
pub(crate) struct Subscription {
    pub topics: Vec<String>,
    /// What it owns (v1+), by id; unknown topics are left out.
    pub owned: Assignment,
    /// v3+.
    pub rack_id: Option<String>,
}

/// Reads the subscription of a member's first protocol (every protocol of
/// a consumer carries the same one, as Kafka assumes); `None` if it cannot
/// be read.
pub(crate) fn subscription(
    protocols: &[JoinProtocol],
    topics: &TopicsImage,
) -> Option<Subscription> {
    let metadata = &protocols.first()?.metadata;
    let mut buf = metadata.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16().clamp(0, 3);
    let decoded = ConsumerProtocolSubscription::decode(&mut buf, version).ok()?;
    let mut owned = Assignment::new();
    for tp in &decoded.owned_partitions {
        if let Some(id) = topics.id(tp.topic.as_str()) {
            owned
                .entry(id)
                .or_default()
                .extend(tp.partitions.iter().copied());
        }
    }
    owned.retain(|_, partitions| !partitions.is_empty());
    Some(Subscription {
        topics: decoded.topics.iter().map(ToString::to_string).collect(),
        owned,
        rack_id: decoded.rack_id.map(|r| r.to_string()),
    })
}

/// Reads an assignment by topic name into one by id (topics unknown here
/// are left out); empty if it cannot be read.
pub(crate) fn read_assignment(bytes: &Bytes, topics: &TopicsImage) -> Assignment {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Assignment::new();
    }
    let version = buf.get_i16().clamp(0, 3);
    let Ok(decoded) = ConsumerProtocolAssignment::decode(&mut buf, version) else {
        return Assignment::new();
    };
    let mut assignment = Assignment::new();
    for tp in decoded.assigned_partitions {
        if let Some(id) = topics.id(tp.topic.as_str()) {
            assignment.entry(id).or_default().extend(tp.partitions);
        }
    }
    assignment.retain(|_, partitions| !partitions.is_empty());
    assignment
}

/// Writes an assignment by id as the consumer protocol's bytes, by name;
/// a topic deleted meanwhile is left out (the member's next join catches
/// up).
pub(crate) fn write_assignment(assignment: &Assignment, topics: &TopicsImage) -> Bytes {
    let assigned = assignment
        .iter()
        .filter_map(|(id, partitions)| {
            let topic = topics.topic(*id)?;
            Some(
                TopicPartition::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.name.clone())))
                    .with_partitions(partitions.iter().copied().collect()),
            )
        })
        .collect();
    let body = ConsumerProtocolAssignment::default().with_assigned_partitions(assigned);
    let mut buf = BytesMut::new();
    buf.put_i16(ASSIGNMENT_VERSION);
    match body.encode(&mut buf, ASSIGNMENT_VERSION) {
        Ok(()) => buf.freeze(),
        // Only an over-long field fails to encode: names come from the
        // metadata, which bounds them; an empty assignment is still valid.
        Err(error) => {
            tracing::warn!(%error, "cannot encode a consumer protocol assignment");
            let mut empty = BytesMut::new();
            empty.put_i16(ASSIGNMENT_VERSION);
            let _ = ConsumerProtocolAssignment::default().encode(&mut empty, ASSIGNMENT_VERSION); // An empty body always encodes.
            empty.freeze()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_group::{TopicId, TopicInfo};

    #[test]
    fn an_assignment_reads_back_as_written() {
        let topics = TopicsImage::new([TopicInfo {
            id: TopicId([7; 16]),
            name: "orders".into(),
            partitions: 4,
        }]);
        let mut assignment = Assignment::new();
        assignment.insert(TopicId([7; 16]), [0, 3].into_iter().collect());
        let bytes = write_assignment(&assignment, &topics);
        assert_eq!(read_assignment(&bytes, &topics), assignment);
    }
}
