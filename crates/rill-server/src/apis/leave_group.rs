//! LeaveGroup: one member (v0-v2) or a batch by member or instance id (v3+).

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;
use rill_group::LeavingMember;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::error_code;

pub(crate) fn answer(broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let leave: LeaveGroupRequest = request.decode()?;
    let groups = match Access::new(broker, &request.session)
        .group(AclOperation::Read, &leave.group_id)
        .and_then(|()| broker.groups_for(leave.group_id.as_str()))
    {
        Ok(groups) => groups,
        Err(error) => {
            let response = LeaveGroupResponse::default().with_error_code(error.code());
            return encode(ApiKey::LeaveGroup, version, &response);
        }
    };
    let members = if version >= 3 {
        leave
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|id| id.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: leave.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let plain = rill_group::LeaveGroupRequest {
        group_id: leave.group_id.to_string(),
        members,
    };
    let response = match groups.leave(&plain) {
        Err(error) => {
            LeaveGroupResponse::default().with_error_code(error_code::for_group(&error).code())
        }
        Ok(results) if version >= 3 => LeaveGroupResponse::default().with_members(
            results
                .into_iter()
                .map(|r| {
                    MemberResponse::default()
                        .with_member_id(StrBytes::from_string(r.member_id))
                        .with_group_instance_id(r.group_instance_id.map(StrBytes::from_string))
                        .with_error_code(
                            r.error
                                .as_ref()
                                .map_or(0, |e| error_code::for_group(e).code()),
                        )
                })
                .collect(),
        ),
        Ok(results) => LeaveGroupResponse::default().with_error_code(
            results
                .first()
                .and_then(|r| r.error.as_ref())
                .map_or(0, |e| error_code::for_group(e).code()),
        ),
    };
    encode(ApiKey::LeaveGroup, version, &response)
}
