//! JoinGroup: answered when the group's rebalance completes (or at once
//! for errors and MEMBER_ID_REQUIRED).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use rill_group::JoinProtocol;

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::error_code;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let join: JoinGroupRequest = match request.decode() {
        Ok(join) => join,
        Err(error) => return ready(Err(error)),
    };
    let groups = match Access::new(broker, &request.session)
        .group(AclOperation::Read, &join.group_id)
        .and_then(|()| broker.groups_for(join.group_id.as_str()))
    {
        Ok(groups) => groups,
        Err(error) => {
            let response = JoinGroupResponse::default().with_error_code(error.code());
            return ready(encode(ApiKey::JoinGroup, version, &response));
        }
    };
    let plain = rill_group::JoinGroupRequest {
        group_id: join.group_id.to_string(),
        member_id: join.member_id.to_string(),
        group_instance_id: join.group_instance_id.map(|id| id.to_string()),
        client_id: request.client_id(),
        client_host: request.session.client_host.to_string(),
        session_timeout_ms: join.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            join.rebalance_timeout_ms
        } else {
            join.session_timeout_ms
        },
        protocol_type: join.protocol_type.to_string(),
        protocols: join
            .protocols
            .into_iter()
            .map(|p| JoinProtocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let topics = super::consumer_group_heartbeat::topics_image(broker);
    let answer = groups.join(plain, &topics);
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let unavailable = || {
            JoinGroupResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
        };
        let response = match answer.await {
            // A classic member of a consumer group (KIP-848) is answered
            // once its records are acknowledged.
            Ok((response, persisted)) => {
                if crate::groups::acknowledged(broker.groups().deps(), persisted).await {
                    to_wire(response, version)
                } else {
                    unavailable()
                }
            }
            Err(_) => unavailable(),
        };
        encode(ApiKey::JoinGroup, version, &response).map(Some)
    })
}

fn to_wire(response: rill_group::JoinGroupResponse, version: i16) -> JoinGroupResponse {
    let code = response
        .error
        .as_ref()
        .map_or(0, |e| error_code::for_group(e).code());
    let mut wire = JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(response.generation_id)
        .with_protocol_name(Some(StrBytes::from_string(
            response.protocol_name.unwrap_or_default(),
        )))
        .with_leader(StrBytes::from_string(response.leader))
        .with_member_id(StrBytes::from_string(response.member_id))
        .with_members(
            response
                .members
                .into_iter()
                .map(|m| {
                    let mut member = JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_metadata(m.metadata);
                    if version >= 5 {
                        member = member
                            .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string));
                    }
                    member
                })
                .collect(),
        );
    if version >= 7 {
        wire = wire.with_protocol_type(response.protocol_type.map(StrBytes::from_string));
        if code != 0 {
            wire = wire.with_protocol_name(None);
        }
    }
    if version >= 9 {
        wire = wire.with_skip_assignment(response.skip_assignment);
    }
    wire
}
