//! ConsumerGroupDescribe (KIP-848): a consumer group's state, epochs and
//! assignor, and each member's subscription, current assignment and
//! target assignment, from its coordinator.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rill_group::{ConsumerMemberDescription, TopicsImage};

use super::consumer_group_heartbeat::topics_image;
use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::error_code;

/// Kafka's member type for a member of the consumer protocol (v1).
const MEMBER_TYPE_CONSUMER: i8 = 1;
/// A member that speaks the classic protocol in a consumer group (KIP-848
/// online migration).
const MEMBER_TYPE_CLASSIC: i8 = 0;

pub(crate) fn answer(broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let describe: ConsumerGroupDescribeRequest = request.decode()?;
    let access = Access::new(broker, &request.session);
    let topics = topics_image(broker);
    let groups = describe
        .group_ids
        .iter()
        .map(|id| {
            let group = id.to_string();
            let described = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if let Err(error) = access.group(AclOperation::Describe, &group) {
                return described.with_error_code(error.code());
            }
            let coordinator = match broker.groups_for(&group) {
                Ok(coordinator) => coordinator,
                Err(error) => return described.with_error_code(error.code()),
            };
            let assignors = coordinator.consumer_assignors().to_vec();
            match coordinator.with_consumer_groups(|c| c.describe(&group, &assignors)) {
                Err(error) => described
                    .with_error_code(error_code::for_consumer_group(&error).code())
                    .with_error_message(Some(StrBytes::from_string(error.to_string()))),
                Ok(description) => described
                    .with_group_state(StrBytes::from_static_str(description.state.as_str()))
                    .with_group_epoch(description.epoch)
                    .with_assignment_epoch(description.assignment_epoch)
                    .with_assignor_name(StrBytes::from_static_str(description.assignor))
                    .with_members(
                        description
                            .members
                            .iter()
                            .map(|m| member(m, &topics))
                            .collect(),
                    ),
            }
        })
        .collect();
    encode(
        ApiKey::ConsumerGroupDescribe,
        version,
        &ConsumerGroupDescribeResponse::default().with_groups(groups),
    )
}

fn member(m: &ConsumerMemberDescription, topics: &TopicsImage) -> Member {
    let str = |s: &str| StrBytes::from_string(s.to_owned());
    Member::default()
        .with_member_id(str(&m.member_id))
        .with_instance_id(m.instance_id.as_deref().map(str))
        .with_rack_id(m.rack_id.as_deref().map(str))
        .with_member_epoch(m.member_epoch)
        .with_client_id(str(&m.client_id))
        .with_client_host(str(&m.client_host))
        .with_subscribed_topic_names(
            m.subscribed_topic_names
                .iter()
                .map(|t| TopicName(str(t)))
                .collect(),
        )
        .with_subscribed_topic_regex(m.subscribed_topic_regex.as_deref().map(str))
        .with_assignment(assignment(&m.assignment, topics))
        .with_target_assignment(assignment(&m.target_assignment, topics))
        .with_member_type(if m.classic {
            MEMBER_TYPE_CLASSIC
        } else {
            MEMBER_TYPE_CONSUMER
        })
}

fn assignment(assigned: &rill_group::Assignment, topics: &TopicsImage) -> Assignment {
    Assignment::default().with_topic_partitions(
        assigned
            .iter()
            .map(|(id, partitions)| {
                let name = topics
                    .topic(*id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(uuid::Uuid::from_bytes(id.0))
                    .with_topic_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(partitions.iter().copied().collect())
            })
            .collect(),
    )
}
