//! The broker's decode path for one request frame, without a broker or a
//! socket: for the fuzz targets under `fuzz/` and the property tests. Not
//! a stable API.
//!
//! [`decode_request`] does what a connection does with a frame's body —
//! reads the request header, refuses APIs and versions Rill lacks — and
//! then decodes the body as the API's handler would, into the same
//! `kafka-protocol` type at the same version (Produce's record payloads
//! stay opaque `Bytes`, as the handler hands them to the log). Nothing is
//! answered or applied.
//!
//! ```
//! use rill_server::fuzzing::{Decoded, decode_request};
//!
//! // ApiVersions v0: api key 18, version 0, correlation id 7, a null
//! // client id, and an empty body.
//! let frame = bytes::Bytes::from_static(&[0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff]);
//! match decode_request(frame) {
//!     Ok(Decoded::Request { header, .. }) => assert_eq!(header.correlation_id, 7),
//!     other => panic!("expected a request, got {other:?}"),
//! }
//! ```

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader};

pub use crate::apis::HandlerError;
pub use crate::network::HeaderError;

use crate::apis::{self, Api, Request};
use crate::network::{Parsed, parse};

/// What the broker would go on to do with a frame.
#[derive(Debug)]
#[non_exhaustive]
pub enum Decoded {
    /// A request whose header and body decoded: its handler would answer
    /// it. `produce_records` holds, for Produce, each partition's records
    /// as the handler hands them to the log (`None`: null records); it is
    /// empty for every other API.
    Request {
        header: RequestHeader,
        api: ApiKey,
        produce_records: Vec<Option<Bytes>>,
    },
    /// ApiVersions at a version Rill lacks: answered at v0 with
    /// UNSUPPORTED_VERSION and Rill's ranges (KIP-511); the body is not
    /// decoded.
    UnsupportedApiVersions { correlation_id: i32 },
}

/// Why a frame would close its connection.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error(transparent)]
    Body(#[from] HandlerError),
}

/// The APIs Rill implements and their version ranges: (key, min, max), as
/// ApiVersions advertises them.
pub fn supported_apis() -> Vec<(ApiKey, i16, i16)> {
    apis::TABLE
        .iter()
        .map(|entry| (entry.key, entry.min_version, entry.max_version))
        .collect()
}

/// Decodes a frame's body (the bytes after the 4-byte length) as the
/// broker does. Any bytes at all give `Ok` or `Err`, never a panic.
pub fn decode_request(frame: Bytes) -> Result<Decoded, DecodeError> {
    let listener = crate::listeners::Listener {
        name: "PLAINTEXT".to_string(),
        protocol: crate::listeners::SecurityProtocol::Plaintext,
        bind: crate::properties::HostPort {
            host: "127.0.0.1".to_string(),
            port: 0,
        },
        advertised: crate::properties::HostPort {
            host: "127.0.0.1".to_string(),
            port: 0,
        },
    };
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let session = Arc::new(crate::session::Session::new(
        peer,
        Arc::new(listener),
        crate::security::ANONYMOUS.to_string(),
    ));
    let request = match parse(frame, &session)? {
        Parsed::Request(request) => request,
        Parsed::Immediate(queued) => {
            return Ok(Decoded::UnsupportedApiVersions {
                correlation_id: queued.correlation_id,
            });
        }
    };
    let produce_records = decode_body(&request)?;
    Ok(Decoded::Request {
        header: request.header,
        api: request.api.key(),
        produce_records,
    })
}

/// Decodes the body into the type its handler decodes (the API table's
/// `request`); returns Produce's record payloads.
fn decode_body(request: &Request) -> Result<Vec<Option<Bytes>>, HandlerError> {
    if request.api != Api::Produce {
        return apis::decode_body(request).map(|()| Vec::new());
    }
    let produce: ProduceRequest = request.decode()?;
    Ok(produce
        .topic_data
        .into_iter()
        .flat_map(|topic| topic.partition_data)
        .map(|partition| partition.records)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::protocol::Encodable;

    /// Header fields for `api` at `version`, then `body`.
    fn frame(api: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .encode(&mut out, api.request_header_version(version))
            .unwrap();
        out.put_slice(body);
        out.freeze()
    }

    #[test]
    fn every_supported_api_and_version_is_decoded_like_its_handler_does() {
        for (api, min, max) in supported_apis() {
            for version in min..=max {
                // A body of zeros decodes for most versions (empty arrays,
                // zero numbers); what matters is that every API decodes
                // without a panic.
                let _ = decode_request(frame(api, version, 1, &[0; 64]));
            }
        }
    }

    #[test]
    fn frames_shorter_than_the_fixed_header_fields_are_refused() {
        for length in 0..8 {
            let frame = Bytes::from(vec![0u8; length]);
            assert!(matches!(
                decode_request(frame),
                Err(DecodeError::Header(HeaderError::TooShort { .. }))
            ));
        }
    }

    #[test]
    fn apiversions_at_an_unknown_version_is_answered_without_decoding() {
        let frame = frame(ApiKey::ApiVersions, 99, 42, &[0xff; 3]);
        assert!(matches!(
            decode_request(frame),
            Ok(Decoded::UnsupportedApiVersions { correlation_id: 42 })
        ));
    }
}
