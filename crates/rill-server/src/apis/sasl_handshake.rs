//! SaslHandshake outside a SASL exchange: on a listener without SASL, or
//! on a connection already authenticated, Kafka answers
//! ILLEGAL_SASL_STATE (KafkaApis.handleSaslHandshakeRequest). The
//! exchange itself is the connection's: security/authenticator.rs.

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
