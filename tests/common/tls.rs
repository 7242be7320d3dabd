//! The tests' own certificate authorities and certificates, made with
//! rcgen at run time and written as PEM files: no key is committed.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate, PEM: what a truststore holds.
    pub pem: String,
}

/// A certificate and its unencrypted private key, PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Leaf {
    /// Kafka's PEM keystore: the key, then the chain.
    pub fn keystore(&self) -> String {
        format!("{}{}", self.key, self.cert)
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, "rill");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A node's certificate: for 127.0.0.1 and localhost, as a server to
    /// the other nodes and a client of theirs, its subject `CN=name`.
    pub fn node(&self, name: &str) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(params)
    }

    /// A client certificate whose subject is `subject` (in certificate
    /// order: the last is written first in RFC 2253).
    pub fn client(&self, subject: &[(DnType, &str)]) -> Leaf {
        self.sign(client_params(subject))
    }

    /// A client certificate that expired in 2020.
    pub fn expired_client(&self, common_name: &str) -> Leaf {
        let mut params = client_params(&[(DnType::CommonName, common_name)]);
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> Leaf {
        // As real CAs issue them (Python's strict verification needs it).
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

fn client_params(subject: &[(DnType, &str)]) -> CertificateParams {
    let mut params = CertificateParams::default();
    // Not rcgen's default subject, whose CN would come first.
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (kind, value) in subject {
        params.distinguished_name.push(kind.clone(), *value);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

/// Writes `contents` to `dir/name`; its path.
pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}
