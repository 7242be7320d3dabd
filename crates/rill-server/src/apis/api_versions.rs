//! ApiVersions: the versions of every API Rill implements, exactly
//! [`TABLE`](super::TABLE).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use super::{Body, HandlerError, Request, TABLE, encode};
use crate::broker::Broker;

pub(crate) fn answer(_broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    // v3+ carries the client's software name; nothing in it changes the answer.
    let _request: ApiVersionsRequest = request.decode()?;
    encode(ApiKey::ApiVersions, request.version(), &response(0))
}

/// The v0 answer to an ApiVersions version Rill lacks (KIP-511).
pub(crate) fn unsupported_version_response() -> Result<Body, HandlerError> {
    encode(
        ApiKey::ApiVersions,
        0,
        &response(ResponseError::UnsupportedVersion.code()),
    )
}

fn response(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            TABLE
                .iter()
                .map(|entry| {
                    ApiVersion::default()
                        .with_api_key(entry.key as i16)
                        .with_min_version(entry.min_version)
                        .with_max_version(entry.max_version)
                })
                .collect(),
        )
}
