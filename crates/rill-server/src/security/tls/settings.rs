//! A TLS listener's settings, from Kafka's `ssl.*` properties (each may
//! be given for one listener as `listener.name.NAME.ssl.*`), and the
//! rustls server configuration they make.
//!
//! Rill reads PEM only (`ssl.keystore.type=PEM`): the keystore is a file
//! holding the private key and the certificate chain
//! (`ssl.keystore.location`), or both inline
//! (`ssl.keystore.certificate.chain` and `ssl.keystore.key`); the
//! truststore, which signs client certificates, is a PEM file or inline
//! certificates. An encrypted private key is refused with a message that
//! says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::principal::PrincipalRules;
use crate::properties::ConfigError;

/// ssl.client.auth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// No certificate asked for: every client is User:ANONYMOUS (or
    /// whom SASL says).
    None,
    /// A certificate asked for; a client without one is let in as
    /// User:ANONYMOUS, one with an untrusted one is not.
    Requested,
    /// No client in without a certificate the truststore trusts.
    Required,
}

/// PEM text, from a file or given inline.
#[derive(Clone)]
pub(crate) enum Pem {
    File(PathBuf),
    Inline(Arc<str>),
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pem::File(path) => write!(f, "{}", path.display()),
            // Inline PEM may be a private key: never shown.
            Pem::Inline(_) => f.write_str("<inline PEM>"),
        }
    }
}

impl Pem {
    fn read(&self) -> Result<Vec<u8>, TlsError> {
        match self {
            Pem::File(path) => std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.clone(),
                source,
            }),
            Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
        }
    }

    fn path(&self) -> Option<&Path> {
        match self {
            Pem::File(path) => Some(path),
            Pem::Inline(_) => None,
        }
    }
}

/// Where a listener's key and certificate chain come from.
#[derive(Clone, Debug)]
enum KeyStore {
    /// One PEM with both (ssl.keystore.location).
    Combined(Pem),
    /// ssl.keystore.certificate.chain and ssl.keystore.key.
    Separate { chain: Pem, key: Pem },
}

/// One TLS listener's settings.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    keystore: KeyStore,
    truststore: Option<Pem>,
    pub(crate) client_auth: ClientAuth,
    tls12: bool,
    tls13: bool,
    /// ssl.cipher.suites, in order of preference.
    cipher_suites: Vec<rustls::SupportedCipherSuite>,
    pub(crate) principal_rules: PrincipalRules,
}

/// Why a TLS listener's keys cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} holds no PEM certificate")]
    NoCertificate { what: String },
    #[error(
        "{what} holds an encrypted private key; Rill reads unencrypted PEM keys \
         (openssl pkey -in KEY -out PLAIN)"
    )]
    EncryptedKey { what: String },
    #[error("{what} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { what: String },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
}

impl TlsSettings {
    /// Reads listener `listener`'s settings: `value(name)` is a
    /// property's value for it (its `listener.name.` form first, then the
    /// broker's, then the default).
    pub(crate) fn from_properties(
        listener: &str,
        value: impl Fn(&str) -> Option<String>,
    ) -> Result<TlsSettings, ConfigError> {
        let invalid = |name: &str, value: &str, expected: &str| ConfigError::Invalid {
            name: name.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        };
        let keystore = match (
            value("ssl.keystore.location"),
            value("ssl.keystore.certificate.chain"),
            value("ssl.keystore.key"),
        ) {
            (Some(path), None, None) => KeyStore::Combined(Pem::File(PathBuf::from(path.trim()))),
            (None, Some(chain), Some(key)) => KeyStore::Separate {
                chain: Pem::Inline(chain.into()),
                key: Pem::Inline(key.into()),
            },
            _ => {
                return Err(invalid(
                    "ssl.keystore.location",
                    &format!("listener {listener}"),
                    "for a TLS listener, either ssl.keystore.location (a PEM file with the key \
                     and certificate chain) or both ssl.keystore.certificate.chain and \
                     ssl.keystore.key",
                ));
            }
        };
        let truststore = match (
            value("ssl.truststore.location"),
            value("ssl.truststore.certificates"),
        ) {
            (Some(path), None) => Some(Pem::File(PathBuf::from(path.trim()))),
            (None, Some(certificates)) => Some(Pem::Inline(certificates.into())),
            (None, None) => None,
            (Some(path), Some(_)) => {
                return Err(invalid(
                    "ssl.truststore.location",
                    &path,
                    "either it or ssl.truststore.certificates, not both",
                ));
            }
        };
        let client_auth = match value("ssl.client.auth").as_deref().map(str::trim) {
            Some("required") => ClientAuth::Required,
            Some("requested") => ClientAuth::Requested,
            _ => ClientAuth::None,
        };
        if client_auth != ClientAuth::None && truststore.is_none() {
            return Err(invalid(
                "ssl.client.auth",
                &format!("listener {listener}"),
                "a truststore (ssl.truststore.location or ssl.truststore.certificates) to check \
                 client certificates against",
            ));
        }
        let protocols = value("ssl.enabled.protocols").unwrap_or_default();
        let enabled = |version: &str| protocols.split(',').any(|p| p.trim() == version);
        let cipher_suites = match value("ssl.cipher.suites") {
            Some(names) if !names.trim().is_empty() => named_suites(&names).map_err(|unknown| {
                invalid(
                    "ssl.cipher.suites",
                    &unknown,
                    &format!("IANA cipher suite names of {}", suite_names().join(", ")),
                )
            })?,
            _ => default_suites(),
        };
        let rules = value("ssl.principal.mapping.rules").unwrap_or_else(|| "DEFAULT".into());
        let principal_rules = PrincipalRules::parse(&rules).map_err(|error| {
            invalid(
                "ssl.principal.mapping.rules",
                &rules,
                &format!("RULE:pattern/replacement/[LU],...,DEFAULT ({error})"),
            )
        })?;
        Ok(TlsSettings {
            keystore,
            truststore,
            client_auth,
            tls12: enabled("TLSv1.2"),
            tls13: enabled("TLSv1.3"),
            cipher_suites,
            principal_rules,
        })
    }

    /// The files the settings read, which a change to reloads.
    pub(crate) fn files(&self) -> Vec<&Path> {
        let keystore = match &self.keystore {
            KeyStore::Combined(pem) => vec![pem],
            KeyStore::Separate { chain, key } => vec![chain, key],
        };
        keystore
            .into_iter()
            .chain(&self.truststore)
            .filter_map(Pem::path)
            .collect()
    }

    /// The keystore's certificate chain and private key.
    fn keystore_pair(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let (chain_pem, chain_what, key_pem, key_what) = match &self.keystore {
            KeyStore::Combined(pem) => {
                let bytes = pem.read()?;
                (bytes.clone(), describe(pem), bytes, describe(pem))
            }
            KeyStore::Separate { chain, key } => {
                (chain.read()?, describe(chain), key.read()?, describe(key))
            }
        };
        let key = private_key(&key_pem, &key_what)?;
        let chain = certificates(&chain_pem, &chain_what)?;
        Ok((chain, key))
    }

    /// Where the keystore's certificates come from, for errors.
    fn keystore_what(&self) -> String {
        match &self.keystore {
            KeyStore::Combined(pem) | KeyStore::Separate { chain: pem, .. } => describe(pem),
        }
    }

    /// The TLS versions of ssl.enabled.protocols.
    fn versions(&self) -> Vec<&'static rustls::SupportedProtocolVersion> {
        let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
        if self.tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if self.tls12 {
            versions.push(&rustls::version::TLS12);
        }
        versions
    }

    /// Loads the keys and certificates into a rustls configuration.
    pub(crate) fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let (chain, key) = self.keystore_pair()?;
        let chain_what = self.keystore_what();
        let provider = self.provider();
        let versions = self.versions();
        let invalid = |what: &str, error: &dyn std::fmt::Display| TlsError::Invalid {
            what: what.to_string(),
            message: error.to_string(),
        };
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|e| invalid("ssl.enabled.protocols", &e))?;
        let builder = match (&self.truststore, self.client_auth) {
            (Some(truststore), ClientAuth::Requested | ClientAuth::Required) => {
                let what = describe(truststore);
                let mut roots = RootCertStore::empty();
                for certificate in certificates(&truststore.read()?, &what)? {
                    roots.add(certificate).map_err(|e| invalid(&what, &e))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if self.client_auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| invalid(&what, &e))?)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| invalid(&chain_what, &e))?;
        // The listener's order of cipher suites, not the client's.
        config.ignore_client_order = true;
        Ok(config)
    }

    /// ring's primitives with ssl.cipher.suites.
    fn provider(&self) -> Arc<rustls::crypto::CryptoProvider> {
        // ring rather than aws-lc-rs (which needs cmake to build); its
        // provider has no post-quantum key exchange, which rustls notes
        // by deprecating it.
        #[allow(deprecated)]
        let ring = rustls::crypto::ring::default_provider();
        Arc::new(rustls::crypto::CryptoProvider {
            cipher_suites: self.cipher_suites.clone(),
            ..ring
        })
    }
}

impl TlsSettings {
    /// Whether certificates presented to this listener can be checked.
    pub(crate) fn has_truststore(&self) -> bool {
        self.truststore.is_some()
    }

    /// A rustls client configuration for this node's connections to the
    /// other nodes: it presents this listener's certificate and trusts
    /// its truststore (the cluster's CA).
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let (chain, key) = self.keystore_pair()?;
        let Some(truststore) = &self.truststore else {
            return Err(TlsError::Invalid {
                what: "the inter-broker listener".to_string(),
                message: "nodes connecting to each other over TLS need ssl.truststore.location \
                          (or ssl.truststore.certificates): the CA that signed the nodes' certificates"
                    .to_string(),
            });
        };
        let what = describe(truststore);
        let invalid = |what: &str, error: &dyn std::fmt::Display| TlsError::Invalid {
            what: what.to_string(),
            message: error.to_string(),
        };
        let mut roots = RootCertStore::empty();
        for certificate in certificates(&truststore.read()?, &what)? {
            roots.add(certificate).map_err(|e| invalid(&what, &e))?;
        }
        rustls::ClientConfig::builder_with_provider(self.provider())
            .with_protocol_versions(&self.versions())
            .map_err(|e| invalid("ssl.enabled.protocols", &e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| invalid("the keystore", &e))
    }
}

/// A suite's IANA name (rustls writes TLS 1.3's as `TLS13_...`).
fn iana_name(suite: &rustls::SupportedCipherSuite) -> String {
    let name = suite.suite().as_str().unwrap_or_default();
    name.replacen("TLS13_", "TLS_", 1)
}

#[allow(deprecated)] // ring: see TlsSettings::provider.
fn ring_suites() -> Vec<rustls::SupportedCipherSuite> {
    rustls::crypto::ring::default_provider().cipher_suites
}

fn suite_names() -> Vec<String> {
    ring_suites().iter().map(iana_name).collect()
}

/// The suites `names` lists, in its order; an unknown name is the error.
fn named_suites(names: &str) -> Result<Vec<rustls::SupportedCipherSuite>, String> {
    let known = ring_suites();
    names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            known
                .iter()
                .find(|suite| iana_name(suite) == name)
                .copied()
                .ok_or_else(|| name.to_string())
        })
        .collect()
}

/// ring's suites with AES-128-GCM before AES-256-GCM in each TLS
/// version, as Go and BoringSSL order them: both are strong, and the
/// shorter key schedule costs fewer rounds per block on every byte of a
/// produce request (rustls puts AES-256 first).
fn default_suites() -> Vec<rustls::SupportedCipherSuite> {
    let mut suites = ring_suites();
    suites.sort_by_key(|suite| {
        let tls12 = matches!(suite, rustls::SupportedCipherSuite::Tls12(_));
        let name = iana_name(suite);
        (tls12, !name.contains("AES_128"))
    });
    suites
}

fn describe(pem: &Pem) -> String {
    match pem {
        Pem::File(path) => path.display().to_string(),
        Pem::Inline(_) => "the inline PEM".to_string(),
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            what: what.to_string(),
            message: e.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            what: what.to_string(),
        });
    }
    Ok(certificates)
}

fn private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(_) if pem.windows(9).any(|w| w == b"ENCRYPTED") => Err(TlsError::EncryptedKey {
            what: what.to_string(),
        }),
        Err(_) => Err(TlsError::NoKey {
            what: what.to_string(),
        }),
    }
}
