//! SCRAM credentials of the cluster's users (Kafka's
//! `UserScramCredentialRecord`s, KIP-554): per user and mechanism, what a
//! broker needs to check a SCRAM exchange — never a password, nor the
//! salted password. Pure logic, no I/O.
//!
//! A [`Users`] is not thread-safe on its own: it lives in
//! [`ClusterMetadata`](crate::ClusterMetadata) behind the state machine's
//! lock.
//!
//! In JSON (snapshots and the metadata log) the byte strings of a
//! [`StoredScramCredential`] are lowercase hex, checked when read.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Kafka's fewest iterations for either SCRAM mechanism (`ScramMechanism
/// .minIterations`); fewer is UNACCEPTABLE_CREDENTIAL.
pub const SCRAM_ITERATIONS_MIN: i32 = 4096;
/// Kafka's most iterations (`ScramControlManager.MAX_ITERATIONS`); more is
/// UNACCEPTABLE_CREDENTIAL.
pub const SCRAM_ITERATIONS_MAX: i32 = 16384;
/// The longest salt Rill stores. Kafka has no limit; clients send 32 to 64
/// random bytes, and this bounds what one credential can add to the
/// metadata.
pub const SCRAM_SALT_BYTES_MAX: usize = 1024;

/// A SCRAM mechanism, by Kafka's wire code (AlterUserScramCredentials'
/// int8 `Mechanism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl ScramMechanism {
    /// Every SCRAM mechanism, in Kafka's type-code order.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::ScramSha256, ScramMechanism::ScramSha512];

    /// The mechanism of a wire code; `None` for Kafka's UNKNOWN (0) and any
    /// other code, which Kafka answers with UNSUPPORTED_SASL_MECHANISM.
    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        match code {
            1 => Some(ScramMechanism::ScramSha256),
            2 => Some(ScramMechanism::ScramSha512),
            _ => None,
        }
    }

    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::ScramSha256 => 1,
            ScramMechanism::ScramSha512 => 2,
        }
    }

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::ScramSha256 => "SCRAM-SHA-256",
            ScramMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism a SASL client names (exactly, as SASL names are).
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The length of the mechanism's digest, hence of its stored and
    /// server keys.
    pub fn key_bytes(self) -> usize {
        match self {
            ScramMechanism::ScramSha256 => 32,
            ScramMechanism::ScramSha512 => 64,
        }
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the server keeps of a SCRAM password (RFC 5802): the salt and
/// iteration count it hands the client, `StoredKey = H(ClientKey)` to check
/// the client's proof, and `ServerKey` to sign its own.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredScramCredential {
    #[serde(with = "hex_bytes")]
    pub salt: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub stored_key: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// Keys are secrets, and commands are logged: show only the shape.
impl fmt::Debug for StoredScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredScramCredential")
            .field("salt", &format_args!("[{} bytes]", self.salt.len()))
            .field("stored_key", &"[hidden]")
            .field("server_key", &"[hidden]")
            .field("iterations", &self.iterations)
            .finish()
    }
}

/// Why a credential cannot be stored: Kafka's UNACCEPTABLE_CREDENTIAL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum UnacceptableCredential {
    #[error("Username must not be empty")]
    EmptyUserName,
    #[error("Too few iterations: {iterations}, at least {min}")]
    TooFewIterations { iterations: i32, min: i32 },
    #[error("Too many iterations: {iterations}, at most {max}")]
    TooManyIterations { iterations: i32, max: i32 },
    #[error("salt of {found} bytes: expected 1 to {max}")]
    SaltLength { found: usize, max: usize },
    #[error(
        "{mechanism} keys are {expected} bytes, found a stored key of {stored_key} and a server key of {server_key}"
    )]
    KeyLength {
        mechanism: ScramMechanism,
        expected: usize,
        stored_key: usize,
        server_key: usize,
    },
}

impl StoredScramCredential {
    /// Kafka's checks (`ScramControlManager.validateUpsertion`: a
    /// non-empty user name and iterations within bounds), and Rill's on
    /// the bytes Kafka computes itself: keys of the mechanism's digest
    /// length, a salt of 1 to [`SCRAM_SALT_BYTES_MAX`] bytes.
    pub fn validate(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<(), UnacceptableCredential> {
        if user.is_empty() {
            return Err(UnacceptableCredential::EmptyUserName);
        }
        if self.iterations < SCRAM_ITERATIONS_MIN {
            return Err(UnacceptableCredential::TooFewIterations {
                iterations: self.iterations,
                min: SCRAM_ITERATIONS_MIN,
            });
        }
        if self.iterations > SCRAM_ITERATIONS_MAX {
            return Err(UnacceptableCredential::TooManyIterations {
                iterations: self.iterations,
                max: SCRAM_ITERATIONS_MAX,
            });
        }
        if self.salt.is_empty() || self.salt.len() > SCRAM_SALT_BYTES_MAX {
            return Err(UnacceptableCredential::SaltLength {
                found: self.salt.len(),
                max: SCRAM_SALT_BYTES_MAX,
            });
        }
        let expected = mechanism.key_bytes();
        if self.stored_key.len() != expected || self.server_key.len() != expected {
            return Err(UnacceptableCredential::KeyLength {
                mechanism,
                expected,
                stored_key: self.stored_key.len(),
                server_key: self.server_key.len(),
            });
        }
        Ok(())
    }
}

/// Why a credential change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScramChangeError {
    #[error(transparent)]
    Unacceptable(UnacceptableCredential),
    /// Kafka's RESOURCE_NOT_FOUND.
    #[error("no {mechanism} credential for user {user:?}")]
    NotFound {
        user: String,
        mechanism: ScramMechanism,
    },
}

type CredentialsByUser = BTreeMap<String, BTreeMap<ScramMechanism, StoredScramCredential>>;

/// Every user with a SCRAM credential, by name (sorted), and per user its
/// credential for each mechanism it has one for (never none).
///
/// Serialized as that map; every credential is checked again when read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CredentialsByUser", into = "CredentialsByUser")]
pub struct Users {
    credentials: CredentialsByUser,
}

impl TryFrom<CredentialsByUser> for Users {
    /// Only ever a deserialization error's message.
    type Error = String;

    fn try_from(credentials: CredentialsByUser) -> Result<Users, String> {
        for (user, by_mechanism) in &credentials {
            if by_mechanism.is_empty() {
                // Never written: deleting a user's last credential removes
                // the user.
                return Err(format!("user {user:?}: expected credentials, found none"));
            }
            for (mechanism, credential) in by_mechanism {
                credential.validate(user, *mechanism).map_err(|reason| {
                    format!("{mechanism} credential of user {user:?}: {reason}")
                })?;
            }
        }
        Ok(Users { credentials })
    }
}

impl From<Users> for CredentialsByUser {
    fn from(users: Users) -> CredentialsByUser {
        users.credentials
    }
}

impl Users {
    /// The credential a SCRAM exchange for `user` with `mechanism` checks
    /// against; `None` if there is none (authentication fails).
    pub fn credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<&StoredScramCredential> {
        self.credentials.get(user)?.get(&mechanism)
    }

    /// The users with a credential, sorted, each with its mechanisms and
    /// iteration counts: DescribeUserScramCredentials' answer.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Vec<(ScramMechanism, i32)>)> + '_ {
        self.credentials.iter().map(|(user, by_mechanism)| {
            let infos = by_mechanism
                .iter()
                .map(|(mechanism, credential)| (*mechanism, credential.iterations))
                .collect();
            (user.as_str(), infos)
        })
    }

    /// How many users have a credential.
    pub fn len(&self) -> usize {
        self.credentials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }

    /// Sets (or replaces) `user`'s credential for `mechanism`.
    pub(crate) fn upsert(
        &mut self,
        user: &str,
        mechanism: ScramMechanism,
        credential: &StoredScramCredential,
    ) -> Result<(), ScramChangeError> {
        credential
            .validate(user, mechanism)
            .map_err(ScramChangeError::Unacceptable)?;
        self.credentials
            .entry(user.to_owned())
            .or_default()
            .insert(mechanism, credential.clone());
        Ok(())
    }

    /// Removes `user`'s credential for `mechanism`, which must exist.
    pub(crate) fn delete(
        &mut self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<(), ScramChangeError> {
        if user.is_empty() {
            return Err(ScramChangeError::Unacceptable(
                UnacceptableCredential::EmptyUserName,
            ));
        }
        let not_found = || ScramChangeError::NotFound {
            user: user.to_owned(),
            mechanism,
        };
        let by_mechanism = self.credentials.get_mut(user).ok_or_else(not_found)?;
        by_mechanism.remove(&mechanism).ok_or_else(not_found)?;
        if by_mechanism.is_empty() {
            self.credentials.remove(user);
        }
        Ok(())
    }
}

/// Byte strings as lowercase hex in JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        let mut hex = String::with_capacity(bytes.len() * 2);
        for byte in bytes {
            hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
        }
        serializer.serialize_str(&hex)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let hex = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        decode(&hex).ok_or_else(|| {
            de::Error::invalid_value(
                de::Unexpected::Str(&hex),
                &"an even number of lowercase hex digits",
            )
        })
    }

    const DIGITS: &[u8; 16] = b"0123456789abcdef";

    fn decode(hex: &str) -> Option<Vec<u8>> {
        let digit = |c: u8| {
            DIGITS
                .iter()
                .position(|d| *d == c)
                .and_then(|v| u8::try_from(v).ok())
        };
        let bytes = hex.as_bytes();
        if bytes.len() % 2 != 0 {
            return None;
        }
        bytes
            .chunks_exact(2)
            .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(mechanism: ScramMechanism) -> StoredScramCredential {
        StoredScramCredential {
            salt: vec![0x00, 0xab, 0xff],
            stored_key: vec![1; mechanism.key_bytes()],
            server_key: vec![2; mechanism.key_bytes()],
            iterations: 8192,
        }
    }

    #[test]
    fn mechanisms_have_kafkas_codes_and_names() {
        assert_eq!(
            ScramMechanism::from_code(1),
            Some(ScramMechanism::ScramSha256)
        );
        assert_eq!(
            ScramMechanism::from_code(2),
            Some(ScramMechanism::ScramSha512)
        );
        assert_eq!(ScramMechanism::from_code(0), None);
        assert_eq!(ScramMechanism::ScramSha512.code(), 2);
        assert_eq!(
            ScramMechanism::from_name("SCRAM-SHA-512"),
            Some(ScramMechanism::ScramSha512)
        );
        assert_eq!(ScramMechanism::from_name("PLAIN"), None);
    }

    #[test]
    fn credentials_are_set_replaced_and_deleted_per_mechanism() {
        let mut users = Users::default();
        let sha256 = credential(ScramMechanism::ScramSha256);
        let sha512 = credential(ScramMechanism::ScramSha512);
        users
            .upsert("alice", ScramMechanism::ScramSha256, &sha256)
            .unwrap();
        users
            .upsert("alice", ScramMechanism::ScramSha512, &sha512)
            .unwrap();
        let replaced = StoredScramCredential {
            iterations: 4096,
            ..sha256.clone()
        };
        users
            .upsert("alice", ScramMechanism::ScramSha256, &replaced)
            .unwrap();
        assert_eq!(
            users.credential("alice", ScramMechanism::ScramSha256),
            Some(&replaced)
        );
        assert_eq!(
            users.iter().collect::<Vec<_>>(),
            [(
                "alice",
                vec![
                    (ScramMechanism::ScramSha256, 4096),
                    (ScramMechanism::ScramSha512, 8192)
                ]
            )]
        );
        users.delete("alice", ScramMechanism::ScramSha256).unwrap();
        assert_eq!(users.credential("alice", ScramMechanism::ScramSha256), None);
        assert_eq!(
            users.delete("alice", ScramMechanism::ScramSha256),
            Err(ScramChangeError::NotFound {
                user: "alice".to_owned(),
                mechanism: ScramMechanism::ScramSha256
            })
        );
        users.delete("alice", ScramMechanism::ScramSha512).unwrap();
        assert!(users.is_empty(), "a user without credentials is gone");
        assert!(users.delete("bob", ScramMechanism::ScramSha512).is_err());
    }

    #[test]
    fn unacceptable_credentials_are_refused_and_change_nothing() {
        let mut users = Users::default();
        let mechanism = ScramMechanism::ScramSha512;
        let good = credential(mechanism);
        let refused = |users: &mut Users, user: &str, c: StoredScramCredential| match users
            .upsert(user, mechanism, &c)
        {
            Err(ScramChangeError::Unacceptable(reason)) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(
            refused(&mut users, "", good.clone()),
            UnacceptableCredential::EmptyUserName
        );
        let few = StoredScramCredential {
            iterations: SCRAM_ITERATIONS_MIN - 1,
            ..good.clone()
        };
        assert!(matches!(
            refused(&mut users, "a", few),
            UnacceptableCredential::TooFewIterations { .. }
        ));
        let many = StoredScramCredential {
            iterations: SCRAM_ITERATIONS_MAX + 1,
            ..good.clone()
        };
        assert!(matches!(
            refused(&mut users, "a", many),
            UnacceptableCredential::TooManyIterations { .. }
        ));
        let short_key = StoredScramCredential {
            stored_key: vec![1; 32],
            ..good.clone()
        };
        assert_eq!(
            refused(&mut users, "a", short_key),
            UnacceptableCredential::KeyLength {
                mechanism,
                expected: 64,
                stored_key: 32,
                server_key: 64
            }
        );
        for salt in [vec![], vec![0; SCRAM_SALT_BYTES_MAX + 1]] {
            let bad_salt = StoredScramCredential {
                salt,
                ..good.clone()
            };
            assert!(matches!(
                refused(&mut users, "a", bad_salt),
                UnacceptableCredential::SaltLength { .. }
            ));
        }
        assert!(users.is_empty());
        assert_eq!(
            users.delete("", mechanism),
            Err(ScramChangeError::Unacceptable(
                UnacceptableCredential::EmptyUserName
            ))
        );
    }

    #[test]
    fn bytes_are_hex_in_json_and_checked_when_read() {
        let mut users = Users::default();
        let c = credential(ScramMechanism::ScramSha256);
        users
            .upsert("alice", ScramMechanism::ScramSha256, &c)
            .unwrap();
        let json = serde_json::to_string(&users).unwrap();
        assert!(json.contains(r#""salt":"00abff""#), "{json}");
        assert!(json.contains(r#""SCRAM-SHA-256""#), "{json}");
        let back: Users = serde_json::from_str(&json).unwrap();
        assert_eq!(back, users);
        for bad in ["0", "zz", "AB"] {
            let json = json.replace("00abff", bad);
            assert!(serde_json::from_str::<Users>(&json).is_err(), "{bad}");
        }
        let too_few_iterations = json.replace("8192", "1");
        assert!(serde_json::from_str::<Users>(&too_few_iterations).is_err());
        assert!(serde_json::from_str::<Users>(r#"{"alice":{}}"#).is_err());
    }

    #[test]
    fn credential_commands_apply_through_the_metadata() {
        use crate::{Applied, ClusterMetadata, Command, Rejection};
        let mut md = ClusterMetadata::default();
        let mechanism = ScramMechanism::ScramSha256;
        let upsert = Command::UpsertScramCredential {
            user: "alice".to_owned(),
            mechanism,
            credential: credential(mechanism),
        };
        let upsert: Command =
            serde_json::from_slice(&serde_json::to_vec(&upsert).unwrap()).unwrap();
        assert_eq!(md.apply(&upsert, 1), Ok(Applied::ScramCredentialUpserted));
        assert_eq!(
            md.users.credential("alice", mechanism),
            Some(&credential(mechanism))
        );
        let wrong_keys = Command::UpsertScramCredential {
            user: "bob".to_owned(),
            mechanism: ScramMechanism::ScramSha512,
            credential: credential(mechanism),
        };
        assert!(matches!(
            md.apply(&wrong_keys, 2),
            Err(Rejection::UnacceptableScramCredential { user, reason: UnacceptableCredential::KeyLength { .. } })
                if user == "bob"
        ));
        let delete = Command::DeleteScramCredential {
            user: "alice".to_owned(),
            mechanism,
        };
        assert_eq!(md.apply(&delete, 3), Ok(Applied::ScramCredentialDeleted));
        assert_eq!(
            md.apply(&delete, 4),
            Err(Rejection::UnknownScramCredential {
                user: "alice".to_owned(),
                mechanism
            })
        );
        assert!(md.users.is_empty());
    }

    #[test]
    fn debug_output_hides_the_keys() {
        let shown = format!("{:?}", credential(ScramMechanism::ScramSha256));
        assert!(
            shown.contains("hidden") && !shown.contains("[1, 1"),
            "{shown}"
        );
    }
}
