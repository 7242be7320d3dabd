//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), server side, as
//! Kafka implements them (`ScramSaslServer`, `ScramMessages`,
//! `ScramFormatter`, `ScramMechanism` in Kafka's clients module): the
//! credential the broker stores ([`ScramCredential`], never a password)
//! and the two-message exchange ([`ScramServer`]).
//!
//! A [`ScramServer`] is one exchange of one connection: not shared, owned
//! by the connection's task.
//!
//! Where Rill differs from Kafka, on purpose (no Kafka client is affected):
//! - An unknown user is not refused at the client-first-message, as Kafka
//!   does; see [`ScramServer`] for the decoy that replaces it.
//! - The AuthMessage is built from the client's messages as received
//!   (RFC 5802 §3), where Kafka re-serialises them (dropping `m=` and any
//!   client-final extensions); they are the same bytes for every client
//!   that sends neither.
//! - `m=` (a mandatory extension) is refused, as RFC 5802 §5.1 requires;
//!   Kafka ignores it.
//! - The channel binding `c=` must be the base64 of the client's gs2
//!   header (`biws` for `n,,`), as RFC 5802 §5.1 requires; Kafka does not
//!   check it.
//! - An authzid is compared with the user name after both are decoded
//!   (`=2C`, `=3D`); Kafka compares the encoded authzid with the decoded
//!   name, which refuses a name with ',' or '=' that asks for itself.
//! - User names may be any UTF-8 without NUL or ','; Kafka's patterns take
//!   ASCII only.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{HashFunction, RandomError, SaslFailureReply, constant_time_eq, os_random_bytes};

/// The largest client message (client-first or client-final) an exchange
/// takes, checked before anything is parsed. Room for a user name and an
/// authzid of RFC 4616's 255 octets each with every character escaped
/// (`=2C`: 3 bytes), a client nonce, and the 88 base64 characters of a
/// SHA-512 proof; Kafka itself bounds only the whole SASL frame.
pub const SCRAM_MESSAGE_BYTES_MAX: usize = 4096;

/// The longest salt a stored credential may have. Kafka's Java admin client
/// makes salts of about 26 bytes, Rill ([`random_salt`]) of 32; the bound
/// keeps a server-first-message small.
pub const SALT_BYTES_MAX: usize = 1024;

/// The length of the salts [`random_salt`] makes, and of decoy salts.
const SALT_BYTES_RANDOM: usize = 32;

/// Random bytes in a server nonce (base64: 32 printable characters, 192
/// bits; Kafka's are 130 bits).
const SERVER_NONCE_RANDOM_BYTES: usize = 24;

/// Kafka's bounds on a SCRAM credential's iteration count, the same for
/// both mechanisms (`ScramMechanism.java`): the quorum's.
pub(crate) const ITERATIONS_MIN: u32 = rill_cluster::SCRAM_ITERATIONS_MIN.unsigned_abs();
const ITERATIONS_MAX: u32 = rill_cluster::SCRAM_ITERATIONS_MAX.unsigned_abs();

/// Kafka's text for a client-first-message asking to act as another user
/// (a `SaslAuthenticationException`, so clients see it as it is).
const AUTHORIZATION_ID_MISMATCH: &str =
    "Authentication failed: Client requested an authorization id that is different from username";

/// The SCRAM mechanisms are the quorum's, where credentials are kept per
/// mechanism.
pub use rill_cluster::ScramMechanism;

/// The hash of a mechanism.
pub(crate) fn hash_of(mechanism: ScramMechanism) -> HashFunction {
    match mechanism {
        ScramMechanism::ScramSha256 => HashFunction::Sha256,
        ScramMechanism::ScramSha512 => HashFunction::Sha512,
    }
}

/// A credential that cannot be stored or used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("{mechanism} needs at least {min} iterations, found {iterations}")]
    TooFewIterations {
        mechanism: ScramMechanism,
        iterations: u32,
        min: u32,
    },
    #[error("{mechanism} allows at most {max} iterations, found {iterations}")]
    TooManyIterations {
        mechanism: ScramMechanism,
        iterations: u32,
        max: u32,
    },
    #[error("a SCRAM salt must be 1 to {max} bytes long, found {salt_bytes}")]
    SaltLength { salt_bytes: usize, max: usize },
    #[error("a {mechanism} {field} must be {expected} bytes long (one digest), found {found}")]
    KeyLength {
        mechanism: ScramMechanism,
        field: &'static str,
        expected: usize,
        found: usize,
    },
}

/// What the broker keeps for one user and one mechanism (RFC 5802 §3):
/// enough to check a client's proof and to prove itself, never enough to
/// log in as the user. The quorum stores it as rill-cluster's
/// `StoredScramCredential`; this is the exchange's view of it.
///
/// The mechanism is not part of the value: the store keys credentials by
/// (user, mechanism), and [`ScramCredential::validate`] checks a value
/// against the mechanism it is used for. `Debug` shows the iterations and
/// the salt length only.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl ScramCredential {
    /// The credential of a salted password (Hi(password, salt,
    /// iterations)), as AlterUserScramCredentials sends it.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        check_iterations(mechanism, iterations)?;
        check_salt(salt)?;
        check_key_length(mechanism, "salted password", salted_password)?;
        let hash = hash_of(mechanism);
        let client_key = hash.hmac(salted_password, &[b"Client Key"]);
        Ok(Self {
            salt: salt.to_vec(),
            stored_key: hash.digest(&client_key),
            server_key: hash.hmac(salted_password, &[b"Server Key"]),
            iterations,
        })
    }

    /// The credential of a password, for tests.
    #[cfg(test)]
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        let salted = salted_password(mechanism, password, salt, iterations)?;
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential as the quorum stores it.
    pub fn into_stored(self) -> rill_cluster::StoredScramCredential {
        rill_cluster::StoredScramCredential {
            salt: self.salt,
            stored_key: self.stored_key,
            server_key: self.server_key,
            iterations: i32::try_from(self.iterations).unwrap_or(i32::MAX),
        }
    }

    /// Checks a stored credential before it is used with `mechanism`:
    /// iterations within Kafka's bounds, salt length, key lengths.
    pub fn validate(&self, mechanism: ScramMechanism) -> Result<(), CredentialError> {
        check_iterations(mechanism, self.iterations)?;
        check_salt(&self.salt)?;
        check_key_length(mechanism, "stored key", &self.stored_key)?;
        check_key_length(mechanism, "server key", &self.server_key)
    }
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("salt_bytes", &self.salt.len())
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

fn check_iterations(mechanism: ScramMechanism, iterations: u32) -> Result<(), CredentialError> {
    let (min, max) = (ITERATIONS_MIN, ITERATIONS_MAX);
    if iterations < min {
        return Err(CredentialError::TooFewIterations {
            mechanism,
            iterations,
            min,
        });
    }
    if iterations > max {
        return Err(CredentialError::TooManyIterations {
            mechanism,
            iterations,
            max,
        });
    }
    Ok(())
}

fn check_salt(salt: &[u8]) -> Result<(), CredentialError> {
    if salt.is_empty() || salt.len() > SALT_BYTES_MAX {
        return Err(CredentialError::SaltLength {
            salt_bytes: salt.len(),
            max: SALT_BYTES_MAX,
        });
    }
    Ok(())
}

fn check_key_length(
    mechanism: ScramMechanism,
    field: &'static str,
    key: &[u8],
) -> Result<(), CredentialError> {
    if key.len() != mechanism.key_bytes() {
        return Err(CredentialError::KeyLength {
            mechanism,
            field,
            expected: mechanism.key_bytes(),
            found: key.len(),
        });
    }
    Ok(())
}

/// Hi(password, salt, iterations): what a client sends in
/// AlterUserScramCredentials (the password's UTF-8 bytes, without
/// SASLprep, as Kafka's `ScramFormatter.normalize`). Bounds are checked
/// before the PBKDF2 work.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, CredentialError> {
    check_iterations(mechanism, iterations)?;
    check_salt(salt)?;
    Ok(hash_of(mechanism).pbkdf2(password.as_bytes(), salt, iterations))
}

/// A SCRAM client's proof for `auth_message` (RFC 5802 §3), and the
/// server signature it must then receive: for tools that log in with a
/// password (`rill user`, `rill acl` over SASL).
pub fn client_proof(
    mechanism: ScramMechanism,
    salted_password: &[u8],
    auth_message: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let hash = hash_of(mechanism);
    let client_key = hash.hmac(salted_password, &[b"Client Key"]);
    let stored_key = hash.digest(&client_key);
    let client_signature = hash.hmac(&stored_key, &[auth_message]);
    let proof = client_key
        .iter()
        .zip(&client_signature)
        .map(|(key, signature)| key ^ signature)
        .collect();
    let server_key = hash.hmac(salted_password, &[b"Server Key"]);
    (proof, hash.hmac(&server_key, &[auth_message]))
}

/// A fresh random salt from the OS, for a new credential.
pub fn random_salt() -> Result<Vec<u8>, RandomError> {
    Ok(os_random_bytes::<SALT_BYTES_RANDOM>()?.to_vec())
}

/// Where an exchange gets the server's part of its nonce; injected so that
/// tests can fix it.
pub trait NonceSource {
    /// A fresh nonce: not empty, printable ASCII (0x21..=0x7E) without ','
    /// (RFC 5802 `printable`); an exchange refuses any other.
    fn server_nonce(&mut self) -> Result<String, RandomError>;
}

/// Server nonces from the operating system's generator: 24 random bytes
/// in base64.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsNonces;

impl NonceSource for OsNonces {
    fn server_nonce(&mut self) -> Result<String, RandomError> {
        Ok(BASE64.encode(os_random_bytes::<SERVER_NONCE_RANDOM_BYTES>()?))
    }
}

/// The secret from which an exchange derives a decoy credential for a user
/// it does not know (see [`ScramServer`]). One key for the whole cluster
/// keeps a decoy the same on every broker, as a real credential is; a key
/// per process also works, at the cost that comparing brokers (or one
/// broker across restarts) tells a decoy from a real user. `Debug` does
/// not show it.
#[derive(Clone)]
pub struct DecoyKey([u8; 32]);

impl DecoyKey {
    /// A new key from the OS.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self(os_random_bytes::<32>()?))
    }

    /// A fixed key, for tests.
    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The decoy credential of `user`: the same for the same key, mechanism
    /// and user, unrelated to any password. Its salt is as long as the
    /// salts Rill makes and its iterations are the mechanism's minimum
    /// (also the default of Kafka's tools).
    fn credential(&self, mechanism: ScramMechanism, user: &str) -> ScramCredential {
        let derive = |hash: HashFunction, label: &[u8]| {
            hash.hmac(
                &self.0,
                &[
                    label,
                    b"\0",
                    mechanism.name().as_bytes(),
                    b"\0",
                    user.as_bytes(),
                ],
            )
        };
        let mut salt = derive(HashFunction::Sha256, b"salt");
        salt.truncate(SALT_BYTES_RANDOM);
        ScramCredential {
            salt,
            stored_key: derive(hash_of(mechanism), b"stored key"),
            server_key: derive(hash_of(mechanism), b"server key"),
            iterations: ITERATIONS_MIN,
        }
    }
}

impl fmt::Debug for DecoyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecoyKey(..)")
    }
}

/// What a successful step answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScramStep {
    /// Send `server_first` (the server-first-message) as the auth bytes;
    /// the client's next SaslAuthenticate goes to the same exchange.
    Continue { server_first: Vec<u8> },
    /// The client proved it knows the password of `user`. Send
    /// `server_final` (`v=` and the server signature); the connection is
    /// authenticated as principal `User:{user}`.
    Complete { server_final: Vec<u8>, user: String },
}

/// Why a step failed. Every error ends the exchange: the handler answers
/// with [`ScramError::reply`] and, as Kafka does, closes the connection.
/// Messages name users but never a password, proof or key.
#[derive(Debug, thiserror::Error)]
pub enum ScramError {
    #[error("a SCRAM client message may be at most {max} bytes, found {message_bytes}")]
    MessageTooLarge { message_bytes: usize, max: usize },
    #[error("malformed SCRAM {message}: expected {expected}")]
    Malformed {
        message: &'static str,
        expected: &'static str,
    },
    #[error("SCRAM channel binding is not supported: expected gs2 flag 'n', found '{flag}'")]
    ChannelBindingUnsupported { flag: char },
    #[error("the SCRAM client-first-message requires extension 'm=', which is not supported")]
    MandatoryExtension,
    #[error("the SCRAM user name {sasl_name:?} has a '=' that is not the start of '=2C' or '=3D'")]
    InvalidUserName { sasl_name: String },
    #[error("delegation-token SCRAM (tokenauth) is not supported; token id {token_id:?}")]
    TokenAuthUnsupported { token_id: String },
    #[error("user {user:?} asked to act as {authorization_id:?}; only the user itself is allowed")]
    AuthorizationIdMismatch {
        user: String,
        authorization_id: String,
    },
    #[error("the stored {mechanism} credential of user {user:?} cannot be used: {source}")]
    StoredCredentialInvalid {
        user: String,
        mechanism: ScramMechanism,
        source: CredentialError,
    },
    #[error("the server nonce source gave an empty nonce or one not printable ASCII without ','")]
    ServerNonceInvalid,
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("the client-final-message's nonce is not this exchange's nonce")]
    NonceMismatch,
    #[error(
        "the client-final-message's channel binding is {found:?}, expected the base64 of the \
         gs2 header, {expected:?}"
    )]
    ChannelBindingMismatch { expected: String, found: String },
    #[error("SCRAM authentication of user {user:?} failed: the client proof does not match")]
    InvalidProof { user: String },
    #[error("SCRAM authentication failed: user {user:?} has no {mechanism} credential")]
    UnknownUser {
        user: String,
        mechanism: ScramMechanism,
    },
    #[error("a SCRAM exchange takes no message once it has {state}")]
    ExchangeOver { state: &'static str },
}

impl ScramError {
    /// How Kafka answers this failure (`ScramSaslServer` raises a plain
    /// `SaslException` for all but two: the authzid check, a
    /// `SaslAuthenticationException`, and a message out of turn, an
    /// `IllegalSaslStateException`).
    pub fn reply(&self) -> SaslFailureReply {
        match self {
            Self::AuthorizationIdMismatch { .. } => {
                SaslFailureReply::Message(AUTHORIZATION_ID_MISMATCH)
            }
            Self::ExchangeOver { .. } => SaslFailureReply::IllegalState,
            Self::MessageTooLarge { .. }
            | Self::Malformed { .. }
            | Self::ChannelBindingUnsupported { .. }
            | Self::MandatoryExtension
            | Self::InvalidUserName { .. }
            | Self::TokenAuthUnsupported { .. }
            | Self::StoredCredentialInvalid { .. }
            | Self::ServerNonceInvalid
            | Self::Random(_)
            | Self::NonceMismatch
            | Self::ChannelBindingMismatch { .. }
            | Self::InvalidProof { .. }
            | Self::UnknownUser { .. } => SaslFailureReply::Generic,
        }
    }
}

/// The server side of one SCRAM exchange (RFC 5802 §5): client-first →
/// server-first → client-final → server-final, then nothing more. Any
/// error, and any message after the end, leaves the exchange failed.
///
/// **Unknown users.** Kafka's `ScramSaslServer` refuses an unknown user
/// at the client-first-message ("Authentication failed: Invalid user
/// credentials", sent to the client as the generic text), so a client can
/// tell an unknown user from a wrong password by the step that fails. Rill
/// does not: for a user it does not know, the exchange answers with a
/// decoy credential derived from a [`DecoyKey`] (a stable salt, the
/// minimum iterations) and fails at the client-final-message with the
/// same reply as a wrong password, after the same HMAC work. What can still
/// tell them apart: a real credential's salt length or iterations that
/// differ from the decoy's (32 bytes, 4096), and the lookup's own timing.
/// Kafka clients see the same error either way, one round trip later.
pub struct ScramServer<N: NonceSource = OsNonces> {
    mechanism: ScramMechanism,
    nonces: N,
    decoy_key: DecoyKey,
    state: State,
}

enum State {
    AwaitingClientFirst,
    AwaitingClientFinal(Box<Pending>),
    Complete,
    Failed,
}

/// What the client-final step needs from the first step.
struct Pending {
    user: String,
    known_user: bool,
    credential: ScramCredential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl<N: NonceSource> ScramServer<N> {
    /// A new exchange, awaiting the client-first-message.
    pub fn new(mechanism: ScramMechanism, nonces: N, decoy_key: DecoyKey) -> Self {
        Self {
            mechanism,
            nonces,
            decoy_key,
            state: State::AwaitingClientFirst,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Whether the client has authenticated.
    #[cfg(test)]
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// Takes the client's next message. `lookup` is called at most once,
    /// at the client-first-message, with the decoded user name, and
    /// returns the user's stored credential for this exchange's mechanism
    /// (`None`: no such user, or none for this mechanism). On `Err` the
    /// exchange is over.
    pub fn step(
        &mut self,
        client_message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, ScramError> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        let (step, next) = match state {
            State::AwaitingClientFirst => self.client_first(client_message, lookup)?,
            State::AwaitingClientFinal(pending) => self.client_final(client_message, &pending)?,
            State::Complete => return Err(ScramError::ExchangeOver { state: "completed" }),
            State::Failed => return Err(ScramError::ExchangeOver { state: "failed" }),
        };
        self.state = next;
        Ok(step)
    }

    fn client_first(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<(ScramStep, State), ScramError> {
        let first = ClientFirst::parse(message)?;
        if first.token_auth {
            return Err(ScramError::TokenAuthUnsupported {
                token_id: first.user,
            });
        }
        if let Some(authorization_id) = first.authorization_id
            && authorization_id != first.user
        {
            return Err(ScramError::AuthorizationIdMismatch {
                user: first.user,
                authorization_id,
            });
        }
        let (credential, known_user) = match lookup(&first.user) {
            Some(credential) => (credential, true),
            None => (
                self.decoy_key.credential(self.mechanism, &first.user),
                false,
            ),
        };
        if let Err(source) = credential.validate(self.mechanism) {
            return Err(ScramError::StoredCredentialInvalid {
                user: first.user,
                mechanism: self.mechanism,
                source,
            });
        }
        let server_nonce = self.nonces.server_nonce()?;
        if !is_printable(&server_nonce) {
            return Err(ScramError::ServerNonceInvalid);
        }
        let nonce = format!("{}{server_nonce}", first.client_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let step = ScramStep::Continue {
            server_first: server_first.clone().into_bytes(),
        };
        let pending = Pending {
            user: first.user,
            known_user,
            credential,
            gs2_header: first.gs2_header,
            client_first_bare: first.bare,
            server_first,
            nonce,
        };
        Ok((step, State::AwaitingClientFinal(Box::new(pending))))
    }

    fn client_final(
        &self,
        message: &[u8],
        pending: &Pending,
    ) -> Result<(ScramStep, State), ScramError> {
        let last = ClientFinal::parse(message, self.mechanism)?;
        if last.nonce != pending.nonce {
            return Err(ScramError::NonceMismatch);
        }
        let expected_binding = BASE64.encode(&pending.gs2_header);
        if last.channel_binding != expected_binding {
            return Err(ScramError::ChannelBindingMismatch {
                expected: expected_binding,
                found: last.channel_binding.to_owned(),
            });
        }
        let auth_message = [
            pending.client_first_bare.as_bytes(),
            b",",
            pending.server_first.as_bytes(),
            b",",
            last.without_proof.as_bytes(),
        ]
        .concat();
        let hash = hash_of(self.mechanism);
        let credential = &pending.credential;
        // StoredKey = H(ClientSignature XOR ClientProof), compared in
        // constant time, the decoy as much as a real credential.
        let client_signature = hash.hmac(&credential.stored_key, &[&auth_message]);
        let client_key: Vec<u8> = client_signature
            .iter()
            .zip(&last.proof)
            .map(|(s, p)| s ^ p)
            .collect();
        let proof_matches = constant_time_eq(&hash.digest(&client_key), &credential.stored_key);
        if !pending.known_user {
            return Err(ScramError::UnknownUser {
                user: pending.user.clone(),
                mechanism: self.mechanism,
            });
        }
        if !proof_matches {
            return Err(ScramError::InvalidProof {
                user: pending.user.clone(),
            });
        }
        let server_signature = hash.hmac(&credential.server_key, &[&auth_message]);
        let step = ScramStep::Complete {
            server_final: format!("v={}", BASE64.encode(server_signature)).into_bytes(),
            user: pending.user.clone(),
        };
        Ok((step, State::Complete))
    }
}

impl<N: NonceSource> fmt::Debug for ScramServer<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::AwaitingClientFirst => "awaiting client-first-message",
            State::AwaitingClientFinal(_) => "awaiting client-final-message",
            State::Complete => "complete",
            State::Failed => "failed",
        };
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// RFC 5802 `printable`: not empty, 0x21..=0x7E except ','.
fn is_printable(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| (0x21..=0x7E).contains(&b) && b != b',')
}

fn check_size(message: &[u8]) -> Result<(), ScramError> {
    if message.len() > SCRAM_MESSAGE_BYTES_MAX {
        return Err(ScramError::MessageTooLarge {
            message_bytes: message.len(),
            max: SCRAM_MESSAGE_BYTES_MAX,
        });
    }
    Ok(())
}

/// A parsed client-first-message:
/// `gs2-header [reserved-mext ","] username "," nonce ["," extensions]`.
struct ClientFirst {
    /// `n,` [authzid] `,` as received, for the channel binding check.
    gs2_header: String,
    authorization_id: Option<String>,
    user: String,
    client_nonce: String,
    /// The message after the gs2 header, as received: part of AuthMessage.
    bare: String,
    /// The `tokenauth=true` extension (Kafka's delegation tokens).
    token_auth: bool,
}

const CLIENT_FIRST: &str = "client-first-message";
const CLIENT_FINAL: &str = "client-final-message";

impl ClientFirst {
    fn parse(message: &[u8]) -> Result<Self, ScramError> {
        check_size(message)?;
        let malformed = |expected| ScramError::Malformed {
            message: CLIENT_FIRST,
            expected,
        };
        let text = std::str::from_utf8(message).map_err(|_| malformed("UTF-8"))?;
        let (flag, after_flag) = text
            .split_once(',')
            .ok_or(malformed("a gs2 header: 'n,' [authzid] ','"))?;
        match flag {
            "n" => {}
            "y" => return Err(ScramError::ChannelBindingUnsupported { flag: 'y' }),
            _ if flag.starts_with("p=") => {
                return Err(ScramError::ChannelBindingUnsupported { flag: 'p' });
            }
            _ => return Err(malformed("gs2 flag 'n'")),
        }
        let (authzid_field, bare) = after_flag
            .split_once(',')
            .ok_or(malformed("a gs2 header: 'n,' [authzid] ','"))?;
        let authorization_id = match authzid_field {
            "" => None,
            _ => {
                let encoded = authzid_field
                    .strip_prefix("a=")
                    .ok_or(malformed("an authzid 'a=…' or none"))?;
                Some(decode_sasl_name(encoded, malformed("a non-empty authzid"))?)
            }
        };
        let gs2_header = text[..text.len() - bare.len()].to_owned();
        if bare.starts_with("m=") {
            return Err(ScramError::MandatoryExtension);
        }
        let mut fields = bare.split(',');
        let user = match fields.next().and_then(|f| f.strip_prefix("n=")) {
            Some(encoded) => decode_sasl_name(encoded, malformed("a non-empty user name"))?,
            None => return Err(malformed("the user name 'n=…' after the gs2 header")),
        };
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|nonce| is_printable(nonce))
            .ok_or(malformed(
                "a nonce 'r=…' of printable ASCII after the user name",
            ))?;
        let mut token_auth = false;
        for field in fields {
            let (name, value) =
                parse_extension(field).ok_or(malformed("extensions 'name=value'"))?;
            if name == "tokenauth" {
                token_auth = value.eq_ignore_ascii_case("true");
            } else {
                tracing::debug!(extension = name, "ignoring an unsupported SCRAM extension");
            }
        }
        Ok(Self {
            gs2_header,
            authorization_id,
            user,
            client_nonce: client_nonce.to_owned(),
            bare: bare.to_owned(),
            token_auth,
        })
    }
}

/// `name=value` with a name of ASCII letters and a value that is not empty
/// and has no NUL (RFC 5802 `attr-val`).
fn parse_extension(field: &str) -> Option<(&str, &str)> {
    let (name, value) = field.split_once('=')?;
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic());
    let value_ok = !value.is_empty() && !value.contains('\0');
    (name_ok && value_ok).then_some((name, value))
}

/// RFC 5802 `saslname` to the name it encodes: `=2C` is ',', `=3D` is
/// '='; any other '=' is an error, as is an empty name or a NUL.
fn decode_sasl_name(encoded: &str, empty: ScramError) -> Result<String, ScramError> {
    if encoded.is_empty() {
        return Err(empty);
    }
    let invalid = || ScramError::InvalidUserName {
        sasl_name: encoded.to_owned(),
    };
    if encoded.contains('\0') {
        return Err(invalid());
    }
    let mut name = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('=') {
        name.push_str(&rest[..at]);
        let escape = &rest[at..];
        if escape.starts_with("=2C") {
            name.push(',');
        } else if escape.starts_with("=3D") {
            name.push('=');
        } else {
            return Err(invalid());
        }
        rest = &escape[3..];
    }
    name.push_str(rest);
    Ok(name)
}

/// A parsed client-final-message:
/// `channel-binding "," nonce ["," extensions] "," proof`.
struct ClientFinal<'a> {
    /// The base64 text of `c=`.
    channel_binding: &'a str,
    nonce: &'a str,
    /// Everything before `,p=`, as received: part of AuthMessage.
    without_proof: &'a str,
    /// The decoded proof, one digest long.
    proof: Vec<u8>,
}

impl<'a> ClientFinal<'a> {
    fn parse(message: &'a [u8], mechanism: ScramMechanism) -> Result<Self, ScramError> {
        check_size(message)?;
        let malformed = |expected| ScramError::Malformed {
            message: CLIENT_FINAL,
            expected,
        };
        let text = std::str::from_utf8(message).map_err(|_| malformed("UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(malformed("the proof ',p=…' last"))?;
        let mut fields = without_proof.split(',');
        let channel_binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(malformed("the channel binding 'c=…' first"))?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(malformed("the nonce 'r=…' after the channel binding"))?;
        if fields.any(|field| parse_extension(field).is_none()) {
            return Err(malformed(
                "extensions 'name=value' between the nonce and the proof",
            ));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| malformed("a base64 proof"))?;
        if proof.len() != mechanism.key_bytes() {
            return Err(malformed("a proof one digest long"));
        }
        Ok(Self {
            channel_binding,
            nonce,
            without_proof,
            proof,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A nonce source that always gives the same nonce.
    struct FixedNonce(&'static str);

    impl NonceSource for FixedNonce {
        fn server_nonce(&mut self) -> Result<String, RandomError> {
            Ok(self.0.to_owned())
        }
    }

    fn decoy_key() -> DecoyKey {
        DecoyKey::from_bytes([7; 32])
    }

    fn server(mechanism: ScramMechanism) -> ScramServer {
        ScramServer::new(mechanism, OsNonces, decoy_key())
    }

    fn no_user(_: &str) -> Option<ScramCredential> {
        None
    }

    /// A SCRAM client: its messages written from RFC 5802 §3, apart from
    /// the server's parser and state machine (it shares the hash helpers,
    /// which the RFC 4231 and RFC 7677 vectors check).
    struct Client {
        mechanism: ScramMechanism,
        password: &'static str,
        client_first_bare: String,
        gs2_header: &'static str,
    }

    impl Client {
        fn new(mechanism: ScramMechanism, user_sasl_name: &str, password: &'static str) -> Self {
            Self {
                mechanism,
                password,
                client_first_bare: format!("n={user_sasl_name},r=fyko+d2lbbFgONRv9qkxdawL"),
                gs2_header: "n,,",
            }
        }

        fn first(&self) -> Vec<u8> {
            format!("{}{}", self.gs2_header, self.client_first_bare).into_bytes()
        }

        /// The client-final-message, and the server-final-message the
        /// client expects back.
        fn last(&self, server_first: &[u8]) -> (Vec<u8>, Vec<u8>) {
            let server_first = std::str::from_utf8(server_first).unwrap();
            let mut fields = server_first.split(',');
            let nonce = fields.next().unwrap().strip_prefix("r=").unwrap();
            let salt = fields.next().unwrap().strip_prefix("s=").unwrap();
            let salt = BASE64.decode(salt).unwrap();
            let iterations: u32 = fields.next().unwrap()[2..].parse().unwrap();
            let hash = hash_of(self.mechanism);
            let salted = hash.pbkdf2(self.password.as_bytes(), &salt, iterations);
            let client_key = hash.hmac(&salted, &[b"Client Key"]);
            let stored_key = hash.digest(&client_key);
            let binding = BASE64.encode(self.gs2_header);
            let without_proof = format!("c={binding},r={nonce}");
            let auth = format!("{},{server_first},{without_proof}", self.client_first_bare);
            let signature = hash.hmac(&stored_key, &[auth.as_bytes()]);
            let proof: Vec<u8> = client_key
                .iter()
                .zip(&signature)
                .map(|(k, s)| k ^ s)
                .collect();
            let server_key = hash.hmac(&salted, &[b"Server Key"]);
            let server_signature = hash.hmac(&server_key, &[auth.as_bytes()]);
            (
                format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes(),
                format!("v={}", BASE64.encode(server_signature)).into_bytes(),
            )
        }
    }

    fn credential(mechanism: ScramMechanism, password: &str) -> ScramCredential {
        ScramCredential::from_password(mechanism, password, b"a salt of salts", 4096).unwrap()
    }

    /// Alice's SCRAM-SHA-256 credential for password "pw", made once.
    static ALICE: std::sync::LazyLock<ScramCredential> =
        std::sync::LazyLock::new(|| credential(ScramMechanism::ScramSha256, "pw"));

    /// Runs the first step for `client` against a user with `stored`.
    fn first_step(
        server: &mut ScramServer<impl NonceSource>,
        client: &Client,
        stored: &Option<ScramCredential>,
    ) -> Vec<u8> {
        match server.step(&client.first(), |_| stored.clone()) {
            Ok(ScramStep::Continue { server_first }) => server_first,
            other => panic!("expected a server-first-message, got {other:?}"),
        }
    }

    /// RFC 7677 §3: the SCRAM-SHA-256 example, message for message.
    #[test]
    fn rfc_7677_example_exchange() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let stored =
            ScramCredential::from_password(ScramMechanism::ScramSha256, "pencil", &salt, 4096)
                .unwrap();
        let mut server = ScramServer::new(
            ScramMechanism::ScramSha256,
            FixedNonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"),
            decoy_key(),
        );
        let mut looked_up = Vec::new();
        let step = server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", |user| {
            looked_up.push(user.to_owned());
            Some(stored.clone())
        });
        assert_eq!(looked_up, ["user"]);
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                             s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            step.unwrap(),
            ScramStep::Continue {
                server_first: server_first.to_vec()
            }
        );
        let client_final = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let step = server.step(client_final, |_| panic!("looked up twice"));
        assert_eq!(
            step.unwrap(),
            ScramStep::Complete {
                server_final: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
                user: "user".to_owned(),
            }
        );
        assert!(server.is_complete());
        // The same final message again: the exchange is over.
        let again = server.step(client_final, no_user).unwrap_err();
        assert!(matches!(again, ScramError::ExchangeOver { .. }));
        assert_eq!(again.reply(), SaslFailureReply::IllegalState);
        assert!(!server.is_complete());
    }

    #[test]
    fn sha512_round_trip_with_an_independent_client() {
        let stored = Some(credential(ScramMechanism::ScramSha512, "hunter2"));
        let client = Client::new(ScramMechanism::ScramSha512, "alice", "hunter2");
        let mut server = server(ScramMechanism::ScramSha512);
        let server_first = first_step(&mut server, &client, &stored);
        let (client_final, expected_server_final) = client.last(&server_first);
        match server.step(&client_final, no_user).unwrap() {
            ScramStep::Complete { server_final, user } => {
                assert_eq!(server_final, expected_server_final);
                assert_eq!(user, "alice");
            }
            other => panic!("expected completion, got {other:?}"),
        }
    }

    #[test]
    fn a_wrong_password_fails_at_the_final_message() {
        let stored = Some(credential(ScramMechanism::ScramSha256, "right"));
        let client = Client::new(ScramMechanism::ScramSha256, "alice", "wrong");
        let mut server = server(ScramMechanism::ScramSha256);
        let server_first = first_step(&mut server, &client, &stored);
        let error = server
            .step(&client.last(&server_first).0, no_user)
            .unwrap_err();
        assert!(matches!(&error, ScramError::InvalidProof { user } if user == "alice"));
        assert_eq!(error.reply(), SaslFailureReply::Generic);
        assert!(!error.to_string().contains("wrong"));
        let after = server.step(&client.first(), no_user).unwrap_err();
        assert!(matches!(
            after,
            ScramError::ExchangeOver { state: "failed" }
        ));
    }

    #[test]
    fn an_unknown_user_looks_like_a_wrong_password() {
        let client = Client::new(ScramMechanism::ScramSha256, "mallory", "guess");
        let mut first = server(ScramMechanism::ScramSha256);
        let server_first = first_step(&mut first, &client, &None);
        // A credible server-first-message: a 32-byte salt, 4096 iterations.
        let text = String::from_utf8(server_first.clone()).unwrap();
        let salt = text
            .split(",s=")
            .nth(1)
            .unwrap()
            .split(",i=")
            .next()
            .unwrap();
        assert_eq!(BASE64.decode(salt).unwrap().len(), 32);
        assert!(text.ends_with(",i=4096"));
        let error = first
            .step(&client.last(&server_first).0, no_user)
            .unwrap_err();
        assert!(matches!(error, ScramError::UnknownUser { .. }));
        assert_eq!(error.reply(), SaslFailureReply::Generic);

        // The same decoy salt every time, as a real user's would be; another
        // user's differs.
        let mut second = server(ScramMechanism::ScramSha256);
        let again = String::from_utf8(first_step(&mut second, &client, &None)).unwrap();
        assert!(again.contains(&format!(",s={salt},")));
        let other = Client::new(ScramMechanism::ScramSha256, "trudy", "guess");
        let mut third = server(ScramMechanism::ScramSha256);
        let theirs = String::from_utf8(first_step(&mut third, &other, &None)).unwrap();
        assert!(!theirs.contains(&format!(",s={salt},")));
    }

    #[test]
    fn a_tampered_nonce_is_refused() {
        let stored = Some(credential(ScramMechanism::ScramSha256, "pw"));
        let client = Client::new(ScramMechanism::ScramSha256, "alice", "pw");
        let mut server = server(ScramMechanism::ScramSha256);
        let server_first = first_step(&mut server, &client, &stored);
        let (client_final, _) = client.last(&server_first);
        let tampered = String::from_utf8(client_final)
            .unwrap()
            .replacen(",r=fyko", ",r=Fyko", 1);
        let error = server.step(tampered.as_bytes(), no_user).unwrap_err();
        assert!(matches!(error, ScramError::NonceMismatch));
    }

    #[test]
    fn a_final_message_replayed_into_a_new_exchange_is_refused() {
        let stored = Some(credential(ScramMechanism::ScramSha256, "pw"));
        let client = Client::new(ScramMechanism::ScramSha256, "alice", "pw");
        let mut once = server(ScramMechanism::ScramSha256);
        let server_first = first_step(&mut once, &client, &stored);
        let (client_final, _) = client.last(&server_first);
        assert!(once.step(&client_final, no_user).is_ok());

        let mut replay = server(ScramMechanism::ScramSha256);
        first_step(&mut replay, &client, &stored);
        let error = replay.step(&client_final, no_user).unwrap_err();
        assert!(matches!(error, ScramError::NonceMismatch));
    }

    #[test]
    fn a_changed_channel_binding_is_refused() {
        let stored = Some(credential(ScramMechanism::ScramSha256, "pw"));
        let client = Client::new(ScramMechanism::ScramSha256, "alice", "pw");
        let mut server = server(ScramMechanism::ScramSha256);
        let server_first = first_step(&mut server, &client, &stored);
        let (client_final, _) = client.last(&server_first);
        let changed = String::from_utf8(client_final)
            .unwrap()
            .replacen("c=biws", "c=eSws", 1);
        let error = server.step(changed.as_bytes(), no_user).unwrap_err();
        assert!(matches!(error, ScramError::ChannelBindingMismatch { .. }));
    }

    #[test]
    fn an_authzid_must_be_the_user_itself() {
        let stored = Some(credential(ScramMechanism::ScramSha256, "pw"));
        let mut client = Client::new(ScramMechanism::ScramSha256, "alice", "pw");
        client.gs2_header = "n,a=alice,";
        let mut server = server(ScramMechanism::ScramSha256);
        let server_first = first_step(&mut server, &client, &stored);
        assert!(server.step(&client.last(&server_first).0, no_user).is_ok());

        client.gs2_header = "n,a=admin,";
        let mut server = ScramServer::new(ScramMechanism::ScramSha256, OsNonces, decoy_key());
        let error = server
            .step(&client.first(), |_| stored.clone())
            .unwrap_err();
        assert!(matches!(error, ScramError::AuthorizationIdMismatch { .. }));
        assert_eq!(
            error.reply(),
            SaslFailureReply::Message(
                "Authentication failed: Client requested an authorization id that is \
                 different from username"
            )
        );
    }

    #[test]
    fn sasl_names_are_decoded_before_the_lookup() {
        let mut server = server(ScramMechanism::ScramSha256);
        let mut seen = None;
        let message = b"n,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=abc";
        server
            .step(message, |user| {
                seen = Some(user.to_owned());
                None
            })
            .unwrap();
        assert_eq!(seen.as_deref(), Some("a,b=c"));
    }

    #[test]
    fn extensions_tokenauth_is_refused_and_others_ignored() {
        let mut server = server(ScramMechanism::ScramSha256);
        let error = server
            .step(b"n,,n=token-id,r=abc,tokenauth=true", no_user)
            .unwrap_err();
        assert!(matches!(error, ScramError::TokenAuthUnsupported { .. }));
        let mut server = self::server(ScramMechanism::ScramSha256);
        let step = server.step(b"n,,n=alice,r=abc,tokenauth=false,other=1", no_user);
        assert!(matches!(step, Ok(ScramStep::Continue { .. })));
    }

    #[test]
    fn too_long_messages_are_refused_before_parsing() {
        let long = vec![b'a'; SCRAM_MESSAGE_BYTES_MAX + 1];
        let mut first = server(ScramMechanism::ScramSha256);
        let error = first.step(&long, |_| panic!("looked up")).unwrap_err();
        assert!(
            matches!(error, ScramError::MessageTooLarge { message_bytes, max }
            if message_bytes == SCRAM_MESSAGE_BYTES_MAX + 1 && max == SCRAM_MESSAGE_BYTES_MAX)
        );

        let stored = Some(credential(ScramMechanism::ScramSha256, "pw"));
        let client = Client::new(ScramMechanism::ScramSha256, "alice", "pw");
        let mut last = server(ScramMechanism::ScramSha256);
        first_step(&mut last, &client, &stored);
        let error = last.step(&long, no_user).unwrap_err();
        assert!(matches!(error, ScramError::MessageTooLarge { .. }));
    }

    #[test]
    fn malformed_client_first_messages_are_refused() {
        // (message, the start of the expected error's Debug output)
        let cases: &[(&[u8], &str)] = &[
            (b"", "Malformed"),
            (b"n,,", "Malformed"),
            (b"n,,n=alice", "Malformed"),
            (b"n,,n=,r=abc", "Malformed"),
            (b"n,,r=abc,n=alice", "Malformed"),
            (b"n,,n=alice,r=a b", "Malformed"),
            (b"n,,n=alice,r=abc,=x", "Malformed"),
            (b"n,x=y,n=alice,r=abc", "Malformed"),
            (b"q,,n=alice,r=abc", "Malformed"),
            (b"n,,n=al\xffice,r=abc", "Malformed"),
            (
                b"p=tls-unique,,n=alice,r=abc",
                "ChannelBindingUnsupported { flag: 'p' }",
            ),
            (
                b"y,,n=alice,r=abc",
                "ChannelBindingUnsupported { flag: 'y' }",
            ),
            (b"n,,m=ext,n=alice,r=abc", "MandatoryExtension"),
            (b"n,,n=al=ice,r=abc", "InvalidUserName"),
            (b"n,,n=alice=2,r=abc", "InvalidUserName"),
        ];
        for (message, expected) in cases {
            let error = server(ScramMechanism::ScramSha256)
                .step(message, |_| panic!("looked up"))
                .unwrap_err();
            let message = String::from_utf8_lossy(message);
            assert!(
                format!("{error:?}").starts_with(expected),
                "{message:?}: {error:?}"
            );
            assert_eq!(error.reply(), SaslFailureReply::Generic);
        }
    }

    #[test]
    fn malformed_client_final_messages_are_refused() {
        let stored = Some(credential(ScramMechanism::ScramSha256, "pw"));
        let client = Client::new(ScramMechanism::ScramSha256, "alice", "pw");
        let cases: &[&[u8]] = &[
            b"",
            b"c=biws,r=x",
            b"r=x,c=biws,p=AAAA",
            b"c=biws,p=AAAA",
            b"c=biws,r=x,p=not base64",
            b"c=biws,r=x,p=AAAA",
            b"c=biws,r=x,bad,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ];
        for message in cases {
            let mut server = server(ScramMechanism::ScramSha256);
            first_step(&mut server, &client, &stored);
            let error = server.step(message, no_user).unwrap_err();
            assert!(
                matches!(error, ScramError::Malformed { .. }),
                "{:?}: {error:?}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn iteration_counts_outside_kafkas_bounds_are_refused() {
        for mechanism in ScramMechanism::ALL {
            let too_few = ScramCredential::from_password(mechanism, "pw", b"salt", 4095);
            assert_eq!(
                too_few.unwrap_err(),
                CredentialError::TooFewIterations {
                    mechanism,
                    iterations: 4095,
                    min: 4096
                }
            );
            let too_many = ScramCredential::from_salted_password(
                mechanism,
                &vec![0; mechanism.key_bytes()],
                b"salt",
                16385,
            );
            assert!(matches!(
                too_many,
                Err(CredentialError::TooManyIterations { max: 16384, .. })
            ));
            assert!(ScramCredential::from_password(mechanism, "pw", b"salt", 16384).is_ok());
        }
        // A stored credential below the minimum is refused at the first
        // message, as Kafka does.
        let mut weak = credential(ScramMechanism::ScramSha256, "pw");
        weak.iterations = 1000;
        let error = server(ScramMechanism::ScramSha256)
            .step(b"n,,n=alice,r=abc", |_| Some(weak.clone()))
            .unwrap_err();
        assert!(matches!(
            error,
            ScramError::StoredCredentialInvalid {
                source: CredentialError::TooFewIterations { .. },
                ..
            }
        ));
    }

    #[test]
    fn credentials_are_checked_against_their_mechanism() {
        let salt = b"salt";
        let short = ScramCredential::from_salted_password(
            ScramMechanism::ScramSha512,
            &[0; 32],
            salt,
            4096,
        );
        assert!(matches!(
            short,
            Err(CredentialError::KeyLength {
                expected: 64,
                found: 32,
                ..
            })
        ));
        let sha256 = credential(ScramMechanism::ScramSha256, "pw");
        assert!(sha256.validate(ScramMechanism::ScramSha256).is_ok());
        assert!(sha256.validate(ScramMechanism::ScramSha512).is_err());
        let empty_salt =
            ScramCredential::from_password(ScramMechanism::ScramSha256, "pw", b"", 4096);
        assert!(matches!(
            empty_salt,
            Err(CredentialError::SaltLength { salt_bytes: 0, .. })
        ));
    }

    #[test]
    fn debug_output_shows_no_keys() {
        let stored = credential(ScramMechanism::ScramSha256, "pw");
        let debug = format!("{stored:?}");
        assert!(!debug.contains(&format!("{:?}", stored.stored_key)));
        assert!(!debug.contains(&BASE64.encode(&stored.server_key)));
        assert_eq!(
            format!("{:?}", DecoyKey::from_bytes([9; 32])),
            "DecoyKey(..)"
        );
    }

    #[test]
    fn mechanisms_have_kafkas_names_and_codes() {
        assert_eq!(ScramMechanism::ScramSha256.name(), "SCRAM-SHA-256");
        assert_eq!(ScramMechanism::ScramSha512.name(), "SCRAM-SHA-512");
        assert_eq!(ScramMechanism::ScramSha256.code(), 1);
        assert_eq!(ScramMechanism::ScramSha512.code(), 2);
        for m in ScramMechanism::ALL {
            assert_eq!(ScramMechanism::from_name(m.name()), Some(m));
            assert_eq!(ScramMechanism::from_code(m.code()), Some(m));
        }
        assert_eq!(ScramMechanism::from_name("scram-sha-256"), None);
        assert_eq!(ScramMechanism::from_code(0), None);
        assert_eq!(
            serde_json::to_string(&ScramMechanism::ScramSha512).unwrap(),
            "\"SCRAM-SHA-512\""
        );
    }

    #[test]
    fn os_nonces_are_printable_and_fresh() {
        let (a, b) = (
            OsNonces.server_nonce().unwrap(),
            OsNonces.server_nonce().unwrap(),
        );
        assert!(is_printable(&a) && a.len() == 32);
        assert_ne!(a, b);
        let mut server =
            ScramServer::new(ScramMechanism::ScramSha256, FixedNonce("a,b"), decoy_key());
        let error = server.step(b"n,,n=alice,r=abc", no_user).unwrap_err();
        assert!(matches!(error, ScramError::ServerNonceInvalid));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary bytes never panic either step, and never authenticate.
        #[test]
        fn arbitrary_bytes_never_panic(
            first in proptest::collection::vec(any::<u8>(), 0..600),
            last in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let stored = Some(ALICE.clone());
            let mut server = server(ScramMechanism::ScramSha256);
            let _ = server.step(&first, |_| stored.clone()); // any outcome but a panic
            let mut after_first = self::server(ScramMechanism::ScramSha256);
            let client = Client::new(ScramMechanism::ScramSha256, "alice", "pw");
            first_step(&mut after_first, &client, &stored);
            prop_assert!(after_first.step(&last, no_user).is_err());
        }

        /// Client-first-messages built from the grammar's own pieces, so
        /// that the parser is reached past its first checks.
        #[test]
        fn near_valid_client_first_messages_never_panic(
            user in "[a-z=,2C3D\\x00-\\x7f]{0,20}",
            nonce in "[ -~]{0,20}",
            extension in "[a-z=,]{0,12}",
        ) {
            let message = format!("n,,n={user},r={nonce},{extension}");
            let mut server = server(ScramMechanism::ScramSha512);
            let _ = server.step(message.as_bytes(), no_user); // any outcome but a panic
        }
    }
}
