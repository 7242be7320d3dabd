//! A Kafka-protocol connection from this broker to another one (a
//! follower to its leader): one request at a time, each answered before
//! the next, with bounded frames and timeouts.
//!
//! Not thread-safe: owned by one fetcher task.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use rill_cluster::{Connector, NodeStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a call to a peer failed; the connection is dropped after any.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerError {
    #[error("connecting to {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{address} did not answer within {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    #[error("talking to {address}: {source}")]
    Io {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{address} sent a {bytes}-byte response, more than the {max} allowed")]
    TooLarge {
        address: String,
        bytes: usize,
        max: usize,
    },
    #[error("encoding or decoding {api:?} with {address}: {message}")]
    Codec {
        address: String,
        api: ApiKey,
        message: String,
    },
}

/// See the module doc.
pub(crate) struct PeerConnection {
    address: String,
    stream: Box<dyn NodeStream>,
    client_id: StrBytes,
    next_correlation_id: i32,
    response_bytes_max: usize,
}

impl PeerConnection {
    pub(crate) async fn connect(
        connector: &Connector,
        address: &str,
        client_id: String,
        response_bytes_max: usize,
    ) -> Result<PeerConnection, PeerError> {
        let connecting = connector.connect(address);
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(PeerError::Connect {
                    address: address.to_owned(),
                    source,
                });
            }
            Err(_) => {
                return Err(PeerError::Timeout {
                    address: address.to_owned(),
                    timeout: CONNECT_TIMEOUT,
                });
            }
        };
        Ok(PeerConnection {
            address: address.to_owned(),
            stream,
            client_id: StrBytes::from_string(client_id),
            next_correlation_id: 0,
            response_bytes_max,
        })
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Sends `request` at `version` and reads its response, within `timeout`.
    pub(crate) async fn call<Req, Resp>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let codec = |message: String| PeerError::Codec {
            address: self.address.clone(),
            api,
            message,
        };
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header
            .encode(&mut frame, Req::header_version(version))
            .map_err(|e| codec(e.to_string()))?;
        request
            .encode(&mut frame, version)
            .map_err(|e| codec(e.to_string()))?;
        let length = i32::try_from(frame.len() - 4).map_err(|e| codec(e.to_string()))?;
        frame[..4].copy_from_slice(&length.to_be_bytes());
        let address = self.address.clone();
        let io = |source| PeerError::Io {
            address: address.clone(),
            source,
        };
        let exchange = async {
            self.stream.write_all(&frame).await.map_err(io)?;
            // TLS holds the last record until flushed.
            self.stream.flush().await.map_err(io)?;
            let length = self.stream.read_i32().await.map_err(io)?;
            let length = usize::try_from(length).unwrap_or(usize::MAX);
            if length > self.response_bytes_max {
                return Err(PeerError::TooLarge {
                    address: address.clone(),
                    bytes: length,
                    max: self.response_bytes_max,
                });
            }
            let mut body = BytesMut::zeroed(length);
            self.stream.read_exact(&mut body).await.map_err(io)?;
            Ok(body.freeze())
        };
        let mut body = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(PeerError::Timeout {
                    address: self.address.clone(),
                    timeout,
                });
            }
        };
        let header = ResponseHeader::decode(&mut body, Resp::header_version(version))
            .map_err(|e| codec(e.to_string()))?;
        if header.correlation_id != correlation_id {
            return Err(codec(format!(
                "expected correlation id {correlation_id}, found {}",
                header.correlation_id
            )));
        }
        let response = Resp::decode(&mut body, version).map_err(|e| codec(e.to_string()))?;
        if body.has_remaining() {
            tracing::debug!(api = ?api, left = body.remaining(), "response had trailing bytes");
        }
        Ok(response)
    }
}
