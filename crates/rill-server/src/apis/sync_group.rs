//! SyncGroup: the leader sends the assignment; every member gets its own
//! once the group's metadata is persisted.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::error_code;
use crate::groups::acknowledged;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let sync: SyncGroupRequest = match request.decode() {
        Ok(sync) => sync,
        Err(error) => return ready(Err(error)),
    };
    let groups = match Access::new(broker, &request.session)
        .group(AclOperation::Read, &sync.group_id)
        .and_then(|()| broker.groups_for(sync.group_id.as_str()))
    {
        Ok(groups) => groups,
        Err(error) => {
            let response = SyncGroupResponse::default().with_error_code(error.code());
            return ready(encode(ApiKey::SyncGroup, version, &response));
        }
    };
    let plain = rill_group::SyncGroupRequest {
        group_id: sync.group_id.to_string(),
        member_id: sync.member_id.to_string(),
        generation_id: sync.generation_id,
        group_instance_id: sync.group_instance_id.map(|id| id.to_string()),
        protocol_type: sync.protocol_type.map(|p| p.to_string()),
        protocol_name: sync.protocol_name.map(|p| p.to_string()),
        assignments: sync
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let topics = super::consumer_group_heartbeat::topics_image(broker);
    let answer = groups.sync(plain, &topics);
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let unavailable = SyncGroupResponse::default()
            .with_error_code(ResponseError::CoordinatorNotAvailable.code());
        let response = match answer.await {
            Ok((response, persisted)) => {
                if acknowledged(broker.groups().deps(), persisted).await {
                    let code = response
                        .error
                        .as_ref()
                        .map_or(0, |e| error_code::for_group(e).code());
                    let mut wire = SyncGroupResponse::default()
                        .with_error_code(code)
                        .with_assignment(response.assignment);
                    if version >= 5 {
                        wire = wire
                            .with_protocol_type(response.protocol_type.map(StrBytes::from_string))
                            .with_protocol_name(response.protocol_name.map(StrBytes::from_string));
                    }
                    wire
                } else {
                    unavailable
                }
            }
            Err(_) => unavailable,
        };
        encode(ApiKey::SyncGroup, version, &response).map(Some)
    })
}
