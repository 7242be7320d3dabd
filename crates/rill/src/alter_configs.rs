//! Topic config changes through IncrementalAlterConfigs (API key 44),
//! encoded with `kafka-protocol` and sent over one plain TCP connection to a
//! bootstrap broker.
//!
//! Why not rdkafka: rdkafka 0.39's `AdminClient` wraps only the legacy
//! AlterConfigs API, which replaces a resource's whole config (and which
//! Rill does not implement), and reaching librdkafka's
//! `rd_kafka_IncrementalAlterConfigs` would take `unsafe` code, which this
//! crate does not allow. The request is small and the codec is the same
//! one the broker uses.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, IncrementalAlterConfigsRequest, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// The largest response accepted; ApiVersions and IncrementalAlterConfigs
/// answers are a few kilobytes at most.
const RESPONSE_BYTES_MAX: usize = 1 << 20;

/// The newest IncrementalAlterConfigs version this client speaks.
const INCREMENTAL_ALTER_CONFIGS_VERSION_MAX: i16 = 1;

/// Kafka's ConfigResource type for a topic.
const RESOURCE_TOPIC: i8 = 2;

/// Kafka's IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// One change to a topic's configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfigChange {
    /// Override `name` with `value`.
    Set { name: String, value: String },
    /// Remove the override of `name`, so the broker's default applies again.
    Delete { name: String },
}

/// Applies `changes` to `topic`'s configs, in order, through the first
/// reachable broker in `bootstrap` (comma-separated HOST:PORT).
pub(crate) fn alter_topic(
    bootstrap: &str,
    timeout: Duration,
    topic: &str,
    changes: &[ConfigChange],
) -> anyhow::Result<()> {
    let mut connection = Connection::open(bootstrap, timeout)?;
    let version = connection.version_for(
        ApiKey::IncrementalAlterConfigs,
        INCREMENTAL_ALTER_CONFIGS_VERSION_MAX,
    )?;
    let configs = changes
        .iter()
        .map(|change| match change {
            ConfigChange::Set { name, value } => AlterableConfig::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(value.clone()))),
            ConfigChange::Delete { name } => AlterableConfig::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_config_operation(OP_DELETE),
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(configs),
    ]);
    let response = connection.call(version, &request)?;
    let Some(result) = response
        .responses
        .iter()
        .find(|r| r.resource_type == RESOURCE_TOPIC && r.resource_name.as_str() == topic)
    else {
        bail!(
            "the broker at {} answered IncrementalAlterConfigs without a result for topic {topic:?}",
            connection.address
        );
    };
    if let Some(error) = ResponseError::try_from_code(result.error_code) {
        match &result.error_message {
            Some(message) if !message.is_empty() => {
                bail!("cannot alter the configs of topic {topic:?}: {error}: {message}")
            }
            _ => bail!("cannot alter the configs of topic {topic:?}: {error}"),
        }
    }
    Ok(())
}

/// A blocking connection to one broker; requests are sent one at a time.
struct Connection {
    stream: TcpStream,
    address: SocketAddr,
    correlation_id: i32,
}

impl Connection {
    /// Connects to the first reachable address of `bootstrap`, IPv4 first
    /// (as the rdkafka clients do with broker.address.family=v4).
    fn open(bootstrap: &str, timeout: Duration) -> anyhow::Result<Connection> {
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

    /// The version of `api` to use: the broker's newest, capped at `newest`.
    fn version_for(&mut self, api: ApiKey, newest: i16) -> anyhow::Result<i16> {
        let versions = self.call(0, &ApiVersionsRequest::default())?;
        if let Some(error) = ResponseError::try_from_code(versions.error_code) {
            bail!("ApiVersions to {} failed: {error}", self.address);
        }
        let Some(range) = versions.api_keys.iter().find(|k| k.api_key == api as i16) else {
            bail!("the broker at {} does not support {api:?}", self.address);
        };
        ensure!(
            range.min_version <= newest && newest >= 0 && range.max_version >= 0,
            "the broker at {} supports {api:?} versions {}..={}, this client 0..={newest}",
            self.address,
            range.min_version,
            range.max_version
        );
        Ok(range.max_version.min(newest))
    }

    /// Sends `request` as `version` and reads its response.
    fn call<R: Request>(&mut self, version: i16, request: &R) -> anyhow::Result<R::Response> {
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
