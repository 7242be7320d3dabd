//! SaslHandshake on a listener without SASL: Kafka answers
//! ILLEGAL_SASL_STATE (KafkaApis.handleSaslHandshakeRequest). On a SASL
//! listener the connection's authenticator takes every SaslHandshake (a
//! second one starts a re-authentication): security/authenticator.rs.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, SaslHandshakeRequest, SaslHandshakeResponse};

use super::{Body, HandlerError, Request, encode};
use crate::broker::Broker;

pub(crate) fn answer(_broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let _: SaslHandshakeRequest = request.decode()?;
    let response =
        SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code());
    encode(ApiKey::SaslHandshake, request.version(), &response)
}
