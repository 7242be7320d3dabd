//! DescribeGroups: state, protocol and members (client id and host,
//! subscription metadata, assignment). An unknown group is described as
//! Dead with no members, as Kafka does up to v5; from v6 it is
//! GROUP_ID_NOT_FOUND (KIP-1043). A group the principal may not DESCRIBE
//! answers GROUP_AUTHORIZATION_FAILED.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{ApiKey, DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use rill_group::GroupState;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;

pub(crate) fn answer(broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let describe: DescribeGroupsRequest = request.decode()?;
    let access = Access::new(broker, &request.session);
    let described = describe
        .groups
        .into_iter()
        .map(|group_id| {
            if !access.allows(AclOperation::Describe, ResourceType::Group, &group_id) {
                return DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let result = match broker.groups_for(group_id.as_str()) {
                Err(code) => Err(code),
                Ok(groups) => groups
                    .with_coordinator(|c, _, _| c.describe_group(&group_id))
                    .map_err(|e| error_code::for_group(&e)),
            };
            let mut group = DescribedGroup::default().with_group_id(group_id.clone());
            if version >= 3 {
                group = group.with_authorized_operations(access.operations(
                    ResourceType::Group,
                    &group_id,
                    describe.include_authorized_operations,
                ));
            }
            match result {
                Err(code) => group.with_error_code(code.code()),
                Ok(d) if version >= 6 && d.state == GroupState::Dead => group
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "Group {} not found.",
                        d.group_id
                    )))),
                Ok(d) => group
                    .with_group_state(StrBytes::from_static_str(d.state.as_str()))
                    .with_protocol_type(StrBytes::from_string(d.protocol_type))
                    .with_protocol_data(StrBytes::from_string(d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                let mut member = DescribedGroupMember::default()
                                    .with_member_id(StrBytes::from_string(m.member_id))
                                    .with_client_id(StrBytes::from_string(m.client_id))
                                    .with_client_host(StrBytes::from_string(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment);
                                if version >= 4 {
                                    member = member.with_group_instance_id(
                                        m.group_instance_id.map(StrBytes::from_string),
                                    );
                                }
                                member
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    encode(
        ApiKey::DescribeGroups,
        version,
        &DescribeGroupsResponse::default().with_groups(described),
    )
}
