//! One blocking Kafka-protocol connection to a broker, for the requests
//! the CLI encodes itself with `kafka-protocol` (IncrementalAlterConfigs,
//! DescribeCluster, Metadata): version negotiation through ApiVersions,
//! then one request at a time. Not thread-safe; a command owns its
//! connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// The largest response accepted: Kafka's socket.request.max.bytes
/// default. A Metadata response of a large cluster runs to megabytes; the
/// size is checked before the body is allocated.
const RESPONSE_BYTES_MAX: usize = 100 << 20;

/// A blocking connection to one broker; requests are sent one at a time.
pub(crate) struct Connection {
    stream: TcpStream,
    /// The broker's address, for error messages.
    pub(crate) address: SocketAddr,
    correlation_id: i32,
    /// The broker's ApiVersions answer, (key, min, max), once asked.
    api_versions: Option<Vec<(i16, i16, i16)>>,
}

impl Connection {
    /// Connects to the first reachable address of `bootstrap`, IPv4 first
    /// (as the rdkafka clients do with broker.address.family=v4). Every
    /// connect, read and write is bounded by `timeout`.
    pub(crate) fn open(bootstrap: &str, timeout: Duration) -> anyhow::Result<Connection> {
        let mut failures = Vec::new();
        for server in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let mut addresses: Vec<SocketAddr> = match server.to_socket_addrs() {
                Ok(addresses) => addresses.collect(),
                Err(error) => {
                    failures.push(format!("{server}: {error}"));
                    continue;
                }
            };
            addresses.sort_by_key(SocketAddr::is_ipv6);
            for address in addresses {
                match TcpStream::connect_timeout(&address, timeout) {
                    Ok(stream) => {
                        stream.set_read_timeout(Some(timeout))?;
                        stream.set_write_timeout(Some(timeout))?;
                        stream.set_nodelay(true)?;
                        return Ok(Connection {
                            stream,
                            address,
                            correlation_id: 0,
                            api_versions: None,
                        });
                    }
                    Err(error) => failures.push(format!("{address}: {error}")),
                }
            }
        }
        if failures.is_empty() {
            bail!("--bootstrap {bootstrap:?} names no broker");
        }
        bail!(
            "cannot connect to a broker of {bootstrap}: {}",
            failures.join("; ")
        )
    }

    /// The versions of `api` the broker implements, as (min, max); `None`
    /// when it does not implement it. Asks ApiVersions (v0, which every
    /// broker answers) once per connection.
    pub(crate) fn versions_of(&mut self, api: ApiKey) -> anyhow::Result<Option<(i16, i16)>> {
        if self.api_versions.is_none() {
            let versions = self.call(0, &ApiVersionsRequest::default())?;
            if let Some(error) = ResponseError::try_from_code(versions.error_code) {
                bail!("ApiVersions to {} failed: {error}", self.address);
            }
            self.api_versions = Some(
                versions
                    .api_keys
                    .iter()
                    .map(|k| (k.api_key, k.min_version, k.max_version))
                    .collect(),
            );
        }
        let versions = self.api_versions.as_deref().unwrap_or_default();
        Ok(versions
            .iter()
            .find(|(key, _, _)| *key == api as i16)
            .map(|&(_, min, max)| (min, max)))
    }

    /// The version of `api` to use: the broker's newest, capped at `newest`;
    /// an error when the broker does not implement it or only versions
    /// newer than `newest`.
    pub(crate) fn version_for(&mut self, api: ApiKey, newest: i16) -> anyhow::Result<i16> {
        let Some((min, max)) = self.versions_of(api)? else {
            bail!("the broker at {} does not support {api:?}", self.address);
        };
        ensure!(
            min <= newest && newest >= 0 && max >= 0,
            "the broker at {} supports {api:?} versions {min}..={max}, this client 0..={newest}",
            self.address,
        );
        Ok(max.min(newest))
    }

    /// Sends `request` as `version` and reads its response.
    pub(crate) fn call<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> anyhow::Result<R::Response> {
        let api =
            ApiKey::try_from(R::KEY).map_err(|()| anyhow::anyhow!("unknown API key {}", R::KEY))?;
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("rill")));
        let mut frame = BytesMut::new();
        frame.put_i32(0); // The size, filled in below.
        header.encode(&mut frame, R::header_version(version))?;
        request.encode(&mut frame, version)?;
        let size = i32::try_from(frame.len() - 4).context("request too large")?;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&frame)
            .with_context(|| format!("cannot send {api:?} to {}", self.address))?;

        let mut size = [0_u8; 4];
        self.stream
            .read_exact(&mut size)
            .with_context(|| format!("no answer to {api:?} from {}", self.address))?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= RESPONSE_BYTES_MAX)
            .with_context(|| {
                format!(
                    "{api:?} response from {} of {size} bytes: expected 0..={RESPONSE_BYTES_MAX}",
                    self.address
                )
            })?;
        let mut body = vec![0_u8; size];
        self.stream
            .read_exact(&mut body)
            .with_context(|| format!("truncated {api:?} response from {}", self.address))?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .with_context(|| format!("undecodable {api:?} response header"))?;
        ensure!(
            header.correlation_id == self.correlation_id,
            "{api:?} response from {} has correlation id {}, expected {}",
            self.address,
            header.correlation_id,
            self.correlation_id
        );
        R::Response::decode(&mut body, version)
            .with_context(|| format!("undecodable {api:?} v{version} response"))
    }
}
