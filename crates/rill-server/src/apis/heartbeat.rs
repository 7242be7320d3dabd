//! Heartbeat: keeps a member's session; tells it when to rejoin.

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::error_code;

pub(crate) fn answer(broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let heartbeat: HeartbeatRequest = request.decode()?;
    let code = match Access::new(broker, &request.session)
        .group(AclOperation::Read, &heartbeat.group_id)
        .and_then(|()| broker.groups_for(heartbeat.group_id.as_str()))
    {
        Err(error) => error.code(),
        Ok(groups) => {
            let plain = rill_group::HeartbeatRequest {
                group_id: heartbeat.group_id.to_string(),
                member_id: heartbeat.member_id.to_string(),
                generation_id: heartbeat.generation_id,
                group_instance_id: heartbeat.group_instance_id.map(|id| id.to_string()),
            };
            match groups.heartbeat(&plain) {
                Ok(()) => 0,
                Err(error) => error_code::for_group(&error).code(),
            }
        }
    };
    encode(
        ApiKey::Heartbeat,
        version,
        &HeartbeatResponse::default().with_error_code(code),
    )
}
