//! TLS listeners (`SSL://`, `SASL_SSL://`): rustls over each accepted
//! socket, the client certificate's subject as the principal, and keys
//! and certificates reloaded from disk when their files change, for new
//! connections (open ones keep the session they made).

mod principal;
mod settings;

pub use settings::{TlsError, TlsSettings};

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use tokio::io::BufReader;
use tokio::net::TcpStream;

/// A TLS connection: rustls over a socket read through a buffer.
pub(crate) type TlsStream = tokio_rustls::server::TlsStream<BufReader<TcpStream>>;

/// Bytes one receive from a TLS socket asks for: rustls asks for 4 KiB at
/// a time, so without this buffer a 1 MiB produce request took 256
/// receives.
const SOCKET_READ_BYTES: usize = 64 * 1024;

/// The principal of a client that showed no certificate (Kafka's
/// `KafkaPrincipal.ANONYMOUS`).
pub(crate) const ANONYMOUS: &str = "User:ANONYMOUS";

/// What identifies a file's contents cheaply: a rewrite or a replacement
/// changes one of them. `None`: the file could not be read.
type Stamp = Option<(SystemTime, u64, u64)>;

/// One TLS listener's current keys, and the files they came from.
pub(crate) struct TlsListener {
    name: String,
    settings: TlsSettings,
    acceptor: RwLock<tokio_rustls::TlsAcceptor>,
    stamps: Mutex<Vec<Stamp>>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why a TLS connection was not let in.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("no ssl.principal.mapping.rules rule applies to the client certificate {subject:?}")]
    NoRule { subject: String },
    #[error("the client certificate's subject cannot be read")]
    Unreadable,
}

impl TlsListener {
    /// Loads listener `name`'s keys as `settings` say.
    pub(crate) fn load(name: &str, settings: TlsSettings) -> Result<TlsListener, TlsError> {
        let stamps = stamps(&settings);
        let config = settings.server_config()?;
        Ok(TlsListener {
            name: name.to_string(),
            acceptor: RwLock::new(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
            settings,
            stamps: Mutex::new(stamps),
        })
    }

    /// Loads the keys again if one of their files changed since they were
    /// last loaded; new connections get them. A file that cannot be used
    /// (half written, say) leaves the old keys in place, with a warning.
    pub(crate) fn reload_if_changed(&self) {
        let now = stamps(&self.settings);
        {
            let mut stamps = self.stamps.lock();
            if *stamps == now {
                return;
            }
            *stamps = now;
        }
        match self.settings.server_config() {
            Ok(config) => {
                *self.acceptor.write() = tokio_rustls::TlsAcceptor::from(Arc::new(config));
                tracing::info!(listener = %self.name, "TLS keys and certificates reloaded");
            }
            Err(error) => tracing::warn!(
                listener = %self.name,
                %error,
                "TLS keys or certificates changed but cannot be loaded; the listener keeps the ones it has"
            ),
        }
    }

    /// The TLS handshake over `socket`, and the principal the client's
    /// certificate names (User:ANONYMOUS without one).
    pub(crate) async fn accept(
        &self,
        socket: TcpStream,
    ) -> Result<(TlsStream, String), HandshakeError> {
        let acceptor = self.acceptor.read().clone();
        let stream = acceptor
            .accept(BufReader::with_capacity(SOCKET_READ_BYTES, socket))
            .await
            .map_err(HandshakeError::Handshake)?;
        let principal = match stream.get_ref().1.peer_certificates() {
            Some([leaf, ..]) => {
                let subject = principal::subject_of(leaf).ok_or(HandshakeError::Unreadable)?;
                let name = self
                    .settings
                    .principal_rules
                    .map(&subject)
                    .ok_or(HandshakeError::NoRule { subject })?;
                format!("User:{name}")
            }
            _ => ANONYMOUS.to_string(),
        };
        Ok((stream, principal))
    }
}

fn stamps(settings: &TlsSettings) -> Vec<Stamp> {
    settings
        .files()
        .into_iter()
        .map(|path| {
            let metadata = std::fs::metadata(path).ok()?;
            Some((metadata.modified().ok()?, metadata.len(), metadata.ino()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, SanType,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::net::TcpListener;

    struct TestCa {
        issuer: Issuer<'static, KeyPair>,
        pem: String,
    }

    impl TestCa {
        fn new(name: &str) -> TestCa {
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let key = KeyPair::generate().unwrap();
            let pem = params.self_signed(&key).unwrap().pem();
            TestCa {
                issuer: Issuer::new(params, key),
                pem,
            }
        }

        /// A certificate and its key, both PEM.
        fn sign(
            &self,
            mut params: CertificateParams,
            usage: ExtendedKeyUsagePurpose,
        ) -> (String, String) {
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        }
    }

    /// A listener of `ca`'s server certificate, with `properties`.
    fn listener(ca: &TestCa, properties: &[(&str, &str)]) -> TlsListener {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let (cert, key) = ca.sign(params, ExtendedKeyUsagePurpose::ServerAuth);
        let mut given: std::collections::BTreeMap<&str, String> = [
            ("ssl.keystore.certificate.chain", cert),
            ("ssl.keystore.key", key),
            ("ssl.truststore.certificates", ca.pem.clone()),
            ("ssl.enabled.protocols", "TLSv1.2,TLSv1.3".to_string()),
        ]
        .into_iter()
        .collect();
        for (name, value) in properties {
            given.insert(name, value.to_string());
        }
        let settings =
            TlsSettings::from_properties("SSL", |name| given.get(name).cloned()).unwrap();
        TlsListener::load("SSL", settings).unwrap()
    }

    /// A handshake of a client trusting `ca` and showing `certificate`
    /// (PEM cert and key) with `listener`: the principal, or the error.
    async fn handshake(
        listener: TlsListener,
        ca: &TestCa,
        certificate: Option<&(String, String)>,
    ) -> Result<String, String> {
        handshake_suite(listener, ca, certificate)
            .await
            .map(|(principal, _)| principal)
    }

    /// As `handshake`, with the cipher suite the listener chose.
    async fn handshake_suite(
        listener: TlsListener,
        ca: &TestCa,
        certificate: Option<&(String, String)>,
    ) -> Result<(String, String), String> {
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = socket.accept().await.unwrap();
            listener
                .accept(stream)
                .await
                .map(|(stream, principal)| {
                    let suite = stream.get_ref().1.negotiated_cipher_suite();
                    let name = suite.and_then(|s| s.suite().as_str()).unwrap_or_default();
                    (principal, name.to_string())
                })
                .map_err(|e| e.to_string())
        });
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
            .unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match certificate {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let client = connector
            .connect(ServerName::try_from("127.0.0.1").unwrap(), stream)
            .await;
        let outcome = server.await.unwrap();
        drop(client);
        outcome
    }

    use rustls::pki_types::pem::PemObject;

    #[tokio::test]
    async fn the_listener_prefers_aes_128_gcm_and_ssl_cipher_suites_overrides_it() {
        let ca = TestCa::new("test CA");
        // rustls's client offers AES-256-GCM first; the listener's order wins.
        let (_, suite) = handshake_suite(listener(&ca, &[]), &ca, None)
            .await
            .unwrap();
        assert_eq!(suite, "TLS13_AES_128_GCM_SHA256");
        let chosen = listener(&ca, &[("ssl.cipher.suites", "TLS_AES_256_GCM_SHA384")]);
        let (_, suite) = handshake_suite(chosen, &ca, None).await.unwrap();
        assert_eq!(suite, "TLS13_AES_256_GCM_SHA384");
        let tls12 = listener(
            &ca,
            &[
                ("ssl.enabled.protocols", "TLSv1.2"),
                (
                    "ssl.cipher.suites",
                    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                ),
            ],
        );
        let (_, suite) = handshake_suite(tls12, &ca, None).await.unwrap();
        assert_eq!(suite, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256");
        // A name ring does not have is refused with the ones it has.
        let unknown = TlsSettings::from_properties("SSL", |name| match name {
            "ssl.keystore.location" => Some("/nonexistent.pem".to_string()),
            "ssl.cipher.suites" => {
                Some("TLS_AES_128_GCM_SHA256,TLS_RSA_WITH_RC4_128_MD5".to_string())
            }
            _ => None,
        });
        let error = unknown.unwrap_err().to_string();
        assert!(
            error.contains("TLS_RSA_WITH_RC4_128_MD5") && error.contains("TLS_AES_256_GCM_SHA384"),
            "{error}"
        );
    }

    fn client_params(subject: &[(DnType, &str)]) -> CertificateParams {
        let mut params = CertificateParams::default();
        // Not rcgen's default subject, whose CN would come first.
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in subject {
            params.distinguished_name.push(kind.clone(), *value);
        }
        params
    }

    #[tokio::test]
    async fn the_client_certificate_subject_mapped_by_the_rules_is_the_principal() {
        let ca = TestCa::new("ca");
        let alice = ca.sign(
            client_params(&[
                (DnType::OrganizationName, "Acme"),
                (DnType::CommonName, "Alice"),
            ]),
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let required = [("ssl.client.auth", "required")];
        assert_eq!(
            handshake(listener(&ca, &required), &ca, Some(&alice)).await,
            Ok("User:CN=Alice,O=Acme".to_string())
        );
        let rules = [
            ("ssl.client.auth", "required"),
            ("ssl.principal.mapping.rules", "RULE:^CN=([^,]*),.*$/$1/L"),
        ];
        assert_eq!(
            handshake(listener(&ca, &rules), &ca, Some(&alice)).await,
            Ok("User:alice".to_string())
        );
        // No rule for the subject: not let in.
        let strict = [
            ("ssl.client.auth", "required"),
            ("ssl.principal.mapping.rules", "RULE:^CN=(.*),O=Other$/$1/"),
        ];
        let refused = handshake(listener(&ca, &strict), &ca, Some(&alice)).await;
        assert!(
            refused
                .unwrap_err()
                .contains("no ssl.principal.mapping.rules rule")
        );
    }

    #[tokio::test]
    async fn requested_lets_in_a_client_without_a_certificate_as_anonymous() {
        let ca = TestCa::new("ca");
        let requested = [("ssl.client.auth", "requested")];
        assert_eq!(
            handshake(listener(&ca, &requested), &ca, None).await,
            Ok(ANONYMOUS.to_string())
        );
        let none = [("ssl.client.auth", "none")];
        assert_eq!(
            handshake(listener(&ca, &none), &ca, None).await,
            Ok(ANONYMOUS.to_string())
        );
        let required = [("ssl.client.auth", "required")];
        let refused = handshake(listener(&ca, &required), &ca, None).await;
        assert!(refused.unwrap_err().contains("no certificates"));
    }

    #[tokio::test]
    async fn a_certificate_from_another_ca_is_refused_even_when_only_requested() {
        let ca = TestCa::new("ca");
        let stranger = TestCa::new("stranger").sign(
            client_params(&[(DnType::CommonName, "mallory")]),
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        for auth in ["requested", "required"] {
            let refused = handshake(
                listener(&ca, &[("ssl.client.auth", auth)]),
                &ca,
                Some(&stranger),
            )
            .await;
            assert!(refused.unwrap_err().contains("UnknownIssuer"), "{auth}");
        }
    }
}
