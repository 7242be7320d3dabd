//! SaslAuthenticate outside a SASL exchange: on a listener without SASL,
//! or on a connection already authenticated, Kafka answers
//! ILLEGAL_SASL_STATE (KafkaApis.handleSaslAuthenticateRequest). The
//! exchange itself is the connection's: security/authenticator.rs.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, Request, encode};
use crate::broker::Broker;

pub(crate) fn answer(_broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let _: SaslAuthenticateRequest = request.decode()?;
    let response = SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(StrBytes::from_static_str(
            "SaslAuthenticate request received after successful authentication",
        )));
    encode(ApiKey::SaslAuthenticate, request.version(), &response)
}
