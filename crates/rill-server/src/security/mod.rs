//! How clients prove who they are: TLS (`tls/`: rustls, the client
//! certificate's subject as the principal) and SASL.
//!
//! SASL mechanism logic, sans-I/O: the server side of SCRAM-SHA-256/512
//! (`scram.rs`) and PLAIN (`plain.rs`), plus what both share — Kafka's
//! failure text, constant-time comparison, HMAC and the OS random source.
//!
//! Nothing here knows sockets or Kafka request structs: a mechanism takes
//! the bytes of one SaslAuthenticate `auth_bytes` and returns the bytes to
//! answer with, or a typed error. The SaslAuthenticate handler owns one
//! exchange per connection, looks credentials up in the metadata image
//! (closures passed in, so this module never sees the quorum) and turns an
//! error into Kafka's reply with [`SaslFailureReply`].
//!
//! No error, `Debug` output or log line of this module carries a password,
//! a salted password, a proof, a stored key or a server key.
//!
//! Constant-time comparison uses the `subtle` crate ([`constant_time_eq`]).
//!
//! ```ignore
//! // SaslHandshake chose SCRAM-SHA-256: one exchange per connection.
//! let mut exchange = ScramServer::new(ScramMechanism::ScramSha256, OsNonces, decoy_key);
//! // Each SaslAuthenticate: feed auth_bytes, answer with the bytes out.
//! match exchange.step(&auth_bytes, |user| image.scram_credential(user, ScramMechanism::ScramSha256)) {
//!     Ok(ScramStep::Continue { server_first }) => reply(server_first),
//!     Ok(ScramStep::Complete { server_final, user }) => { principal = user; reply(server_final) }
//!     Err(error) => fail(error.reply(), ScramMechanism::ScramSha256.name()),
//! }
//! ```

mod authenticator;
mod oauthbearer;
mod plain;
mod scram;
mod tls;

pub(crate) use authenticator::{Admit, Authenticator, check_password};

pub use oauthbearer::OAuthSettings;
pub(crate) use plain::{PLAIN_MECHANISM, authenticate_plain};
pub(crate) use scram::{
    CredentialError, DecoyKey, OsNonces, ScramCredential, ScramServer, ScramStep,
};
pub use scram::{ScramMechanism, client_proof, random_salt, salted_password};
pub(crate) use tls::{ANONYMOUS, TlsListener, TlsStream};
pub use tls::{TlsError, TlsSettings};

use hmac::{Hmac, KeyInit, Mac};
use sha2::digest::common::Key;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// How Kafka answers a SASL exchange that failed, so that clients see
/// Kafka's error code and text (`SaslServerAuthenticator.handleSaslToken`:
/// a mechanism's plain `SaslException` becomes a generic text that names
/// nothing but the mechanism, because its own message "may contain
/// sensitive data like the existence of the user"; a
/// `SaslAuthenticationException` is sent as it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslFailureReply {
    /// SASL_AUTHENTICATION_FAILED (58) with [`generic_failure_message`].
    Generic,
    /// SASL_AUTHENTICATION_FAILED (58) with exactly this text.
    Message(&'static str),
    /// ILLEGAL_SASL_STATE (34): a message the exchange cannot take now.
    IllegalState,
}

/// Kafka's text for a failed exchange whose mechanism raised a plain
/// `SaslException`; `reauthentication` is KIP-368's re-authentication of
/// an already authenticated connection.
pub fn generic_failure_message(mechanism_name: &str, reauthentication: bool) -> String {
    let phase = if reauthentication {
        "re-authentication"
    } else {
        "authentication"
    };
    format!(
        "Authentication failed during {phase} due to invalid credentials with SASL mechanism \
         {mechanism_name}"
    )
}

/// The operating system's random generator failed: no nonce or salt can
/// be made, so the exchange (or the credential) cannot go on.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {source}")]
pub struct RandomError {
    #[from]
    source: getrandom::Error,
}

/// `N` bytes from the operating system's generator.
pub(crate) fn os_random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// Whether `a` and `b` are equal, in time that depends on their lengths
/// only (`subtle`'s slice comparison; lengths are public here: they are
/// the digest size of the mechanism).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The hash function of a SCRAM mechanism, for the HMAC and digest
/// helpers below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashFunction {
    Sha256,
    Sha512,
}

impl HashFunction {
    /// H(data).
    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// HMAC(key, part₀ ‖ part₁ ‖ …).
    pub(crate) fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Self::Sha256 => hmac_with::<Sha256>(key, parts),
            Self::Sha512 => hmac_with::<Sha512>(key, parts),
        }
    }

    /// PBKDF2-HMAC (RFC 8018), which is SCRAM's Hi(str, salt, i) (RFC
    /// 5802 §2.2): the salted password, one digest long.
    pub(crate) fn pbkdf2(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
            Self::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// HMAC with a key of any length, through hmac's typed (infallible)
/// constructor rather than `new_from_slice` and an `expect`: the key is
/// brought to the block size the way RFC 2104 §2 does it — hashed if
/// longer, then padded with zeros — which is what `new_from_slice` would
/// do with it. The RFC 4231 vectors in the tests cover both branches.
fn hmac_with<D>(key: &[u8], parts: &[&[u8]]) -> Vec<u8>
where
    D: Digest + hmac::EagerHash,
    Hmac<D>: KeyInit + Mac,
{
    let mut block = Key::<Hmac<D>>::default();
    if key.len() > block.len() {
        let hashed = D::digest(key);
        block
            .iter_mut()
            .zip(hashed.iter())
            .for_each(|(b, k)| *b = *k);
    } else {
        block.iter_mut().zip(key).for_each(|(b, k)| *b = *k);
    }
    let mut mac = <Hmac<D> as KeyInit>::new(&block);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 4231 test case 2 (a key shorter than the block) and test case
    /// 6 (a 131-byte key, longer than either block: hashed first).
    #[test]
    fn hmac_matches_rfc_4231_for_short_and_long_keys() {
        let short = HashFunction::Sha256.hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&short),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long_key = [0xaa_u8; 131];
        let data: &[u8] = b"Test Using Larger Than Block-Size Key - Hash Key First";
        assert_eq!(
            hex(&HashFunction::Sha256.hmac(&long_key, &[data])),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert_eq!(
            hex(&HashFunction::Sha512.hmac(&long_key, &[data])),
            "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
             6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"
        );
    }

    #[test]
    fn generic_failure_message_is_kafkas_text() {
        assert_eq!(
            generic_failure_message("SCRAM-SHA-512", false),
            "Authentication failed during authentication due to invalid credentials with SASL \
             mechanism SCRAM-SHA-512"
        );
        assert!(generic_failure_message("PLAIN", true).starts_with(
            "Authentication failed during re-authentication due to invalid credentials"
        ));
    }

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
