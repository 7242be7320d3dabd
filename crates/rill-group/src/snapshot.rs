//! The durable form of one group's membership: what `__consumer_offsets`
//! stores as a group metadata record (Kafka's GroupMetadataValue).

use bytes::Bytes;

/// One group's metadata as persisted: the field set of Kafka's
/// GroupMetadataValue (v3). The offsets-topic codec encodes it; the
/// coordinator emits it ([`Output::Persist`](crate::Output::Persist)) and
/// takes it back at load ([`GroupCoordinator::restore`](crate::GroupCoordinator::restore)).
/// Plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataSnapshot {
    /// The group id (the record key).
    pub group_id: String,
    /// Protocol type; "" if none.
    pub protocol_type: String,
    /// The generation.
    pub generation_id: i32,
    /// The selected protocol; `None` for an Empty group.
    pub protocol_name: Option<String>,
    /// The leader's member id; `None` for an Empty group.
    pub leader: Option<String>,
    /// When the group entered its current state (ms since the epoch).
    pub current_state_timestamp_ms: i64,
    /// The members; empty for an Empty group.
    pub members: Vec<MemberSnapshot>,
}

/// One member of a [`GroupMetadataSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    /// The member id.
    pub member_id: String,
    /// group.instance.id, if static.
    pub group_instance_id: Option<String>,
    /// client.id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl GroupMetadataSnapshot {
    /// The record value the offsets-topic codec writes (the key is
    /// `group_id`).
    pub fn to_value(&self) -> crate::GroupMetadataValue {
        crate::GroupMetadataValue {
            protocol_type: self.protocol_type.clone(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: Some(self.current_state_timestamp_ms),
            members: self
                .members
                .iter()
                .map(|member| crate::MemberMetadata {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    rebalance_timeout_ms: member.rebalance_timeout_ms,
                    session_timeout_ms: member.session_timeout_ms,
                    subscription: member.subscription.clone(),
                    assignment: member.assignment.clone(),
                })
                .collect(),
        }
    }

    /// The snapshot a loaded record value describes. Values older than v2
    /// carry no state timestamp; `load_time_ms` stands in for it.
    pub fn from_value(
        group_id: String,
        value: crate::GroupMetadataValue,
        load_time_ms: i64,
    ) -> Self {
        Self {
            group_id,
            protocol_type: value.protocol_type,
            generation_id: value.generation,
            protocol_name: value.protocol,
            leader: value.leader,
            current_state_timestamp_ms: value.current_state_timestamp_ms.unwrap_or(load_time_ms),
            members: value
                .members
                .into_iter()
                .map(|member| MemberSnapshot {
                    member_id: member.member_id,
                    group_instance_id: member.group_instance_id,
                    client_id: member.client_id,
                    client_host: member.client_host,
                    rebalance_timeout_ms: member.rebalance_timeout_ms,
                    session_timeout_ms: member.session_timeout_ms,
                    subscription: member.subscription,
                    assignment: member.assignment,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_and_from_the_record_value() {
        let snapshot = GroupMetadataSnapshot {
            group_id: "g".into(),
            protocol_type: "consumer".into(),
            generation_id: 3,
            protocol_name: Some("range".into()),
            leader: Some("m".into()),
            current_state_timestamp_ms: 17,
            members: vec![MemberSnapshot {
                member_id: "m".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout_ms: 1,
                session_timeout_ms: 2,
                subscription: Bytes::from_static(b"s"),
                assignment: Bytes::from_static(b"a"),
            }],
        };
        let value = snapshot.to_value();
        assert_eq!(
            GroupMetadataSnapshot::from_value("g".into(), value, 0),
            snapshot
        );
    }
}
