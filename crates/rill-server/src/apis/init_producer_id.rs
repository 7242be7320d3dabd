//! InitProducerId for idempotent producers: a producer id never handed out
//! before (reserved durably in blocks), epoch 0. Transactional ids are not
//! supported yet: such a request is refused with
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients report as fatal
//! rather than retrying.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;

pub(crate) fn answer(
    broker: &Broker,
    init: InitProducerIdRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let access = Access::new(broker, session);
    let response = if init.transactional_id.is_some() {
        response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
    } else if !access.allows_cluster(AclOperation::IdempotentWrite)
        && !access.allows_some(AclOperation::Write, ResourceType::Topic)
    {
        // KIP-679: an idempotent producer needs IDEMPOTENT_WRITE on the
        // cluster, or WRITE on some topic.
        response.with_error_code(ResponseError::ClusterAuthorizationFailed.code())
    } else {
        match broker.topics().next_producer_id() {
            Ok(id) => response
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
            Err(error) => {
                tracing::error!(%error, "cannot reserve producer ids");
                response.with_error_code(crate::error_code::for_topic(&error).code())
            }
        }
    };
    encode(ApiKey::InitProducerId, version, &response)
}
