//! A connection of the CLI's own Kafka-protocol clients (the native bench
//! producer, `rill user`, `rill acl`, `cluster status`) to a broker: plain
//! TCP, or TLS over it (`security.protocol=SSL` or `SASL_SSL`, trusting
//! `ssl.ca.location`), with a reading end and a writing end for two
//! threads, as a socket has. SASL (`sasl.mechanism`, `sasl.username`,
//! `sasl.password`) is the connection's (connection.rs).
//!
//! TLS is rustls: the connection state sits behind a mutex that the
//! writer holds while it encrypts and sends a request, and the reader
//! while it decrypts what it received; neither holds it while it waits on
//! the socket.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, bail};
use rustls::ClientConnection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// TLS, if a connection speaks it.
pub(crate) type Tls = Option<Arc<rustls::ClientConfig>>;

/// How to log in with SASL.
pub(crate) struct Sasl {
    pub(crate) mechanism: String,
    pub(crate) username: String,
    pub(crate) password: String,
}

/// How a connection is secured, from librdkafka-style properties.
pub(crate) struct Security {
    pub(crate) tls: Tls,
    pub(crate) sasl: Option<Sasl>,
}

/// The last value of `key` in `properties`.
fn get<'a>(properties: &'a [(String, String)], key: &str) -> Option<&'a str> {
    properties
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `security.protocol` and what it needs: `ssl.ca.location` for TLS,
/// `sasl.mechanism`, `sasl.username` and `sasl.password` for SASL.
pub(crate) fn security_of(properties: &[(String, String)]) -> anyhow::Result<Security> {
    let protocol = get(properties, "security.protocol")
        .unwrap_or("PLAINTEXT")
        .to_ascii_uppercase();
    let (tls, sasl) = match protocol.as_str() {
        "PLAINTEXT" => (false, false),
        "SSL" => (true, false),
        "SASL_PLAINTEXT" => (false, true),
        "SASL_SSL" => (true, true),
        other => bail!("security.protocol={other}: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
    };
    let tls = if tls { tls_config(properties)? } else { None };
    let sasl = if sasl {
        let required = |key: &str| {
            get(properties, key)
                .map(str::to_string)
                .with_context(|| format!("security.protocol={protocol} needs {key}"))
        };
        Some(Sasl {
            mechanism: required("sasl.mechanism")?,
            username: required("sasl.username")?,
            password: required("sasl.password")?,
        })
    } else {
        None
    };
    Ok(Security { tls, sasl })
}

/// A rustls client trusting `ssl.ca.location`.
fn tls_config(properties: &[(String, String)]) -> anyhow::Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    let location = get(properties, "ssl.ca.location")
        .context("TLS needs ssl.ca.location=CA.pem (-X or --command-config)")?;
    let pem = std::fs::read(location).with_context(|| format!("cannot read {location}"))?;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        roots.add(certificate.with_context(|| format!("{location}: not PEM"))?)?;
    }
    // ring, as the broker; see rill-server's security/tls.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

/// One connection.
pub(crate) struct Link {
    socket: TcpStream,
    tls: Option<Arc<Mutex<ClientConnection>>>,
}

impl Link {
    /// `socket`, with a TLS handshake first when `tls` says so.
    pub(crate) fn open(mut socket: TcpStream, host: &str, tls: &Tls) -> anyhow::Result<Link> {
        let Some(config) = tls else {
            return Ok(Link { socket, tls: None });
        };
        let name = ServerName::try_from(host.to_string())
            .with_context(|| format!("{host} is not a TLS server name"))?;
        let mut connection = ClientConnection::new(Arc::clone(config), name)?;
        while connection.is_handshaking() {
            connection
                .complete_io(&mut socket)
                .with_context(|| format!("TLS handshake with {host}"))?;
        }
        Ok(Link {
            socket,
            tls: Some(Arc::new(Mutex::new(connection))),
        })
    }

    pub(crate) fn reader(&self) -> anyhow::Result<LinkReader> {
        Ok(LinkReader {
            socket: self.socket.try_clone()?,
            tls: self.tls.clone(),
            ciphertext: Vec::new(),
            received: Vec::new(),
        })
    }

    pub(crate) fn writer(&self) -> anyhow::Result<LinkWriter> {
        Ok(LinkWriter {
            socket: self.socket.try_clone()?,
            tls: self.tls.clone(),
        })
    }

    /// Stops both ends (the other thread's read or write fails).
    pub(crate) fn shutdown(&self) {
        let _ = self.socket.shutdown(Shutdown::Both); // Broken already, maybe.
    }
}

fn lock(tls: &Mutex<ClientConnection>) -> MutexGuard<'_, ClientConnection> {
    tls.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What one receive from the socket asks for.
const RECEIVE_BYTES: usize = 64 << 10;

/// The reading end.
pub(crate) struct LinkReader {
    socket: TcpStream,
    tls: Option<Arc<Mutex<ClientConnection>>>,
    /// Received and not yet taken by rustls.
    ciphertext: Vec<u8>,
    /// What one receive fills (TLS only), kept for the next.
    received: Vec<u8>,
}

impl Read for LinkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.socket.read(out);
        };
        if self.received.is_empty() {
            self.received = vec![0u8; RECEIVE_BYTES];
        }
        loop {
            {
                let mut connection = lock(tls);
                while !self.ciphertext.is_empty() {
                    let taken = connection.read_tls(&mut &self.ciphertext[..])?;
                    self.ciphertext.drain(..taken);
                    connection
                        .process_new_packets()
                        .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?;
                    if taken == 0 {
                        break;
                    }
                }
                match connection.reader().read(out) {
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                    read => return read,
                }
            }
            let n = self.socket.read(&mut self.received)?;
            if n == 0 {
                return Ok(0);
            }
            self.ciphertext.extend_from_slice(&self.received[..n]);
        }
    }
}

/// The writing end.
pub(crate) struct LinkWriter {
    socket: TcpStream,
    tls: Option<Arc<Mutex<ClientConnection>>>,
}

impl Write for LinkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.socket.write(bytes);
        };
        let mut connection = lock(tls);
        // rustls takes as much plaintext as its send buffer holds (64 KiB);
        // each part is encrypted and sent before the next.
        let mut rest = bytes;
        while !rest.is_empty() {
            let taken = connection.writer().write(rest)?;
            rest = &rest[taken..];
            while connection.wants_write() {
                connection.write_tls(&mut self.socket)?;
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.socket.flush()
    }
}
