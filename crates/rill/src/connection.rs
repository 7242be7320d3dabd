//! One blocking Kafka-protocol connection to a broker, for the requests
//! the CLI encodes itself with `kafka-protocol` (IncrementalAlterConfigs,
//! DescribeCluster, Metadata, the SCRAM and ACL APIs): version
//! negotiation through ApiVersions, then one request at a time. Not
//! thread-safe; a command owns its connection.
//!
//! Over TLS when `security.protocol` says so (link.rs), and logged in with
//! SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) before anything else on a
//! SASL listener.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};

use crate::link::{Link, LinkReader, LinkWriter, Sasl, Security};
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
    reader: LinkReader,
    writer: LinkWriter,
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
        let plaintext = Security {
            tls: None,
            sasl: None,
        };
        Connection::open_secured(bootstrap, timeout, &plaintext)
    }

    /// [`Connection::open`], secured as `security` says: TLS, then SASL.
    pub(crate) fn open_secured(
        bootstrap: &str,
        timeout: Duration,
        security: &Security,
    ) -> anyhow::Result<Connection> {
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
                        let host = server
                            .rsplit_once(':')
                            .map_or(server, |(host, _)| host)
                            .trim_start_matches('[')
                            .trim_end_matches(']');
                        let link = Link::open(stream, host, &security.tls)?;
                        let mut connection = Connection::over(&link, address)?;
                        if let Some(sasl) = &security.sasl {
                            connection.log_in(sasl)?;
                        }
                        return Ok(connection);
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

    /// A connection over `link` (opened, TLS done) to `address`.
    fn over(link: &Link, address: SocketAddr) -> anyhow::Result<Connection> {
        Ok(Connection {
            reader: link.reader()?,
            writer: link.writer()?,
            address,
            correlation_id: 0,
            api_versions: None,
        })
    }

    /// Logs in with SASL over `link` (opened, TLS done, to `address`),
    /// which then carries the caller's own requests: Rill's producer.
    pub(crate) fn log_in_over(link: &Link, address: SocketAddr, sasl: &Sasl) -> anyhow::Result<()> {
        let mut connection = Connection::over(link, address)?;
        // The broker sends nothing after the last SaslAuthenticate answer,
        // so these ends hold nothing the link's next reader needs.
        connection.log_in(sasl)
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
        self.writer
            .write_all(&frame)
            .with_context(|| format!("cannot send {api:?} to {}", self.address))?;

        let mut size = [0_u8; 4];
        self.reader
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
        self.reader
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

    /// SaslHandshake, then the mechanism's SaslAuthenticate exchange.
    fn log_in(&mut self, sasl: &Sasl) -> anyhow::Result<()> {
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(sasl.mechanism.clone()));
        let answer = self.call(1, &handshake)?;
        if answer.error_code != 0 {
            bail!(
                "{} refused SASL mechanism {}: {} (it offers {})",
                self.address,
                sasl.mechanism,
                error_name(answer.error_code),
                answer
                    .mechanisms
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        match sasl.mechanism.as_str() {
            "PLAIN" => {
                let message = format!("\0{}\0{}", sasl.username, sasl.password);
                self.authenticate(message.into_bytes())?;
                Ok(())
            }
            name => {
                let mechanism =
                    rill_server::ScramMechanism::from_name(name).with_context(|| {
                        format!("sasl.mechanism={name}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
                    })?;
                self.scram(mechanism, sasl)
            }
        }
    }

    /// One SaslAuthenticate; the server's answer bytes.
    fn authenticate(&mut self, message: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(message.into());
        let answer = self.call(1, &request)?;
        if answer.error_code != 0 {
            bail!(
                "SASL authentication with {} failed: {}: {}",
                self.address,
                error_name(answer.error_code),
                answer.error_message.as_deref().unwrap_or("")
            );
        }
        Ok(answer.auth_bytes.to_vec())
    }

    /// The SCRAM exchange (RFC 5802): client-first, server-first,
    /// client-final with the proof, server-final with the server's
    /// signature, which is checked.
    fn scram(&mut self, mechanism: rill_server::ScramMechanism, sasl: &Sasl) -> anyhow::Result<()> {
        let nonce = BASE64.encode(rill_server::random_salt()?);
        let name = sasl.username.replace('=', "=3D").replace(',', "=2C");
        let client_first_bare = format!("n={name},r={nonce}");
        let server_first =
            String::from_utf8(self.authenticate(format!("n,,{client_first_bare}").into_bytes())?)
                .context("a server-first message that is not UTF-8")?;
        let field = |key: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(key))
                .with_context(|| format!("a server-first message without {key}"))
        };
        let server_nonce = field("r=")?;
        ensure!(
            server_nonce.starts_with(&nonce),
            "the server's nonce does not extend ours"
        );
        let salt = BASE64.decode(field("s=")?).context("an undecodable salt")?;
        let iterations: u32 = field("i=")?.parse().context("undecodable iterations")?;
        let salted = rill_server::salted_password(mechanism, &sasl.password, &salt, iterations)?;
        let without_proof = format!("c=biws,r={server_nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let (proof, server_signature) =
            rill_server::client_proof(mechanism, &salted, auth_message.as_bytes());
        let server_final =
            self.authenticate(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())?;
        let verifier = String::from_utf8_lossy(&server_final);
        ensure!(
            verifier.strip_prefix("v=") == Some(BASE64.encode(server_signature).as_str()),
            "the broker at {} did not prove it knows the credential",
            self.address
        );
        Ok(())
    }
}

/// Kafka's name of an error code.
pub(crate) fn error_name(code: i16) -> String {
    ResponseError::try_from_code(code).map_or_else(|| format!("error {code}"), |e| format!("{e:?}"))
}

/// An error code and its message as the user reads them.
pub(crate) fn refusal(code: i16, message: Option<&str>) -> String {
    let error = error_name(code);
    match message {
        Some(message) if !message.is_empty() => format!("{error}: {message}"),
        _ => error,
    }
}
