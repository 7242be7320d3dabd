//! ShareGroupDescribe (KIP-932): a share group's state, epochs and
//! members with their subscriptions and assignments, from its coordinator.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::share_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ShareGroupDescribeRequest, ShareGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;

/// KIP-932's name for the assignor Rill's spread follows.
const ASSIGNOR: &str = "simple";

pub(crate) fn answer(broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let describe: ShareGroupDescribeRequest = request.decode()?;
    let access = Access::new(broker, &request.session);
    let groups = describe
        .group_ids
        .iter()
        .map(|id| {
            let group = id.to_string();
            let described = DescribedGroup::default().with_group_id(id.clone());
            if let Err(error) = access.group(AclOperation::Describe, &group) {
                return described.with_error_code(error.code());
            }
            if let Err(error) = broker.groups_for(&group) {
                return described.with_error_code(error.code());
            }
            let Some((epoch, members)) = broker.shares().describe(broker, &group) else {
                return described
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "share group {group} not found"
                    ))));
            };
            let metadata = broker.node().metadata();
            let state = if members.is_empty() {
                "Empty"
            } else {
                "Stable"
            };
            let members = members
                .into_iter()
                .map(|m| {
                    let topic_partitions = m
                        .assignment
                        .iter()
                        .filter_map(|(topic, partitions)| {
                            let id = metadata.topics.get(topic.as_str())?.id;
                            Some(
                                TopicPartitions::default()
                                    .with_topic_id(id)
                                    .with_topic_name(TopicName(StrBytes::from_string(
                                        topic.clone(),
                                    )))
                                    .with_partitions(partitions.iter().copied().collect()),
                            )
                        })
                        .collect();
                    Member::default()
                        .with_member_id(StrBytes::from_string(m.member_id.clone()))
                        .with_rack_id(m.rack_id.clone().map(StrBytes::from_string))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(StrBytes::from_string(m.client_id.clone()))
                        .with_client_host(StrBytes::from_string(m.client_host.clone()))
                        .with_subscribed_topic_names(
                            m.subscribed_topic_names
                                .iter()
                                .map(|t| TopicName(StrBytes::from_string(t.clone())))
                                .collect(),
                        )
                        .with_assignment(
                            Assignment::default().with_topic_partitions(topic_partitions),
                        )
                })
                .collect();
            described
                .with_group_state(StrBytes::from_static_str(state))
                .with_group_epoch(epoch)
                .with_assignment_epoch(epoch)
                .with_assignor_name(StrBytes::from_static_str(ASSIGNOR))
                .with_members(members)
                .with_authorized_operations(i32::MIN)
        })
        .collect();
    encode(
        ApiKey::ShareGroupDescribe,
        version,
        &ShareGroupDescribeResponse::default().with_groups(groups),
    )
}
