//! SASL PLAIN (RFC 4616), server side, as Kafka's `PlainSaslServer`
//! answers it, with one difference: Kafka checks the password with a JAAS
//! file's `user_NAME=password` entries, and Rill has no JAAS file. A PLAIN
//! password is checked against the user's stored SCRAM credential instead
//! (either mechanism's): Hi(password, salt, iterations) with that
//! credential's salt and iterations gives a StoredKey, compared in constant
//! time with the stored one. So a user has one password for PLAIN and
//! SCRAM, and the broker still stores no password.
//!
//! One message, one answer: there is no state to keep between calls. The
//! work is one PBKDF2 of up to 16384 iterations (milliseconds of CPU): the
//! handler runs it off the async reactor (`spawn_blocking`) if that
//! matters to it.

use super::scram::{ScramCredential, ScramMechanism, hash_of};
use super::{HashFunction, SaslFailureReply, constant_time_eq};

/// The SASL mechanism name.
pub const PLAIN_MECHANISM: &str = "PLAIN";

/// The largest PLAIN message taken, checked before anything is parsed:
/// RFC 4616 requires room for 255 octets in each of authzid, authcid and
/// password (767 bytes with the NULs); the rest leaves room for long
/// generated passwords. Kafka itself bounds only the whole SASL frame.
pub const PLAIN_MESSAGE_BYTES_MAX: usize = 4096;

/// Kafka's text for a wrong password or an unknown user (the same for
/// both).
const INVALID_USERNAME_OR_PASSWORD: &str = "Authentication failed: Invalid username or password";
const AUTHORIZATION_ID_MISMATCH: &str =
    "Authentication failed: Client requested an authorization id that is different from username";
const CREDENTIALS_NOT_VERIFIED: &str =
    "Authentication failed: credentials for user could not be verified";

/// The salt of the decoy PBKDF2 run for an unknown user (SHA-256, at the
/// minimum iterations), so that it costs about what a real check costs.
const DECOY_SALT: &[u8] = b"rill PLAIN decoy salt";

/// Why a PLAIN message did not authenticate. Messages name users, never
/// the password.
#[derive(Debug, thiserror::Error)]
pub enum PlainError {
    #[error("a PLAIN message may be at most {max} bytes, found {message_bytes}")]
    MessageTooLarge { message_bytes: usize, max: usize },
    #[error("malformed PLAIN message: expected {expected}")]
    Malformed { expected: &'static str },
    #[error("PLAIN authentication failed: the user name is empty")]
    EmptyUser,
    #[error("PLAIN authentication failed: the password of user {user:?} is empty")]
    EmptyPassword { user: String },
    #[error("PLAIN authentication failed: user {user:?} has no SCRAM credential")]
    UnknownUser { user: String },
    #[error("PLAIN authentication of user {user:?} failed: wrong password")]
    InvalidPassword { user: String },
    #[error("the stored {mechanism} credential of user {user:?} cannot be used: {source}")]
    StoredCredentialInvalid {
        user: String,
        mechanism: ScramMechanism,
        source: super::CredentialError,
    },
    #[error("user {user:?} asked to act as {authorization_id:?}; only the user itself is allowed")]
    AuthorizationIdMismatch {
        user: String,
        authorization_id: String,
    },
}

impl PlainError {
    /// How Kafka answers this failure: its `PlainSaslServer` raises a
    /// plain `SaslException` (generic text) for a message it cannot use,
    /// and a `SaslAuthenticationException` with its own text for refused
    /// credentials, a failed lookup and a foreign authzid.
    pub fn reply(&self) -> SaslFailureReply {
        match self {
            Self::UnknownUser { .. } | Self::InvalidPassword { .. } => {
                SaslFailureReply::Message(INVALID_USERNAME_OR_PASSWORD)
            }
            Self::StoredCredentialInvalid { .. } => {
                SaslFailureReply::Message(CREDENTIALS_NOT_VERIFIED)
            }
            Self::AuthorizationIdMismatch { .. } => {
                SaslFailureReply::Message(AUTHORIZATION_ID_MISMATCH)
            }
            Self::MessageTooLarge { .. }
            | Self::Malformed { .. }
            | Self::EmptyUser
            | Self::EmptyPassword { .. } => SaslFailureReply::Generic,
        }
    }
}

/// Authenticates one PLAIN message, `[authzid] NUL authcid NUL passwd`,
/// and returns the user (the principal is `User:{user}`; the answer's auth
/// bytes are empty, as Kafka's).
///
/// `lookup` is called once, with the user name, and returns the credential
/// to check the password against: the handler passes the user's
/// SCRAM-SHA-512 credential if it has one, else its SCRAM-SHA-256 one
/// (one check, whichever exists; the two are normally set from the same
/// password). `None` (no such user) costs a decoy PBKDF2 and fails as a
/// wrong password does, with Kafka's same text.
///
/// As in Kafka, the credentials are checked before the authzid, which if
/// present must be the user itself. Unlike Kafka, whose parser drops
/// everything after a third NUL, a message with more than two NULs is
/// refused (RFC 4616 allows no NUL in a password), and a message that is
/// not UTF-8 is refused rather than decoded lossily.
pub fn authenticate_plain(
    message: &[u8],
    lookup: impl FnOnce(&str) -> Option<(ScramMechanism, ScramCredential)>,
) -> Result<String, PlainError> {
    let PlainMessage {
        authorization_id,
        user,
        password,
    } = PlainMessage::parse(message)?;
    let Some((mechanism, credential)) = lookup(user) else {
        let hash = HashFunction::Sha256;
        let decoy = hash.pbkdf2(
            password.as_bytes(),
            DECOY_SALT,
            super::scram::ITERATIONS_MIN,
        );
        // Compared only to spend what a real check spends.
        let _ = constant_time_eq(&hash.digest(&hash.hmac(&decoy, &[b"Client Key"])), &[0; 32]);
        return Err(PlainError::UnknownUser {
            user: user.to_owned(),
        });
    };
    if let Err(source) = credential.validate(mechanism) {
        return Err(PlainError::StoredCredentialInvalid {
            user: user.to_owned(),
            mechanism,
            source,
        });
    }
    let hash = hash_of(mechanism);
    let salted = hash.pbkdf2(password.as_bytes(), &credential.salt, credential.iterations);
    let stored_key = hash.digest(&hash.hmac(&salted, &[b"Client Key"]));
    if !constant_time_eq(&stored_key, &credential.stored_key) {
        return Err(PlainError::InvalidPassword {
            user: user.to_owned(),
        });
    }
    if !authorization_id.is_empty() && authorization_id != user {
        return Err(PlainError::AuthorizationIdMismatch {
            user: user.to_owned(),
            authorization_id: authorization_id.to_owned(),
        });
    }
    Ok(user.to_owned())
}

/// The three fields of a PLAIN message. No `Debug`: it holds a password.
struct PlainMessage<'a> {
    /// Empty when the client sent none.
    authorization_id: &'a str,
    user: &'a str,
    password: &'a str,
}

impl<'a> PlainMessage<'a> {
    fn parse(message: &'a [u8]) -> Result<Self, PlainError> {
        if message.len() > PLAIN_MESSAGE_BYTES_MAX {
            return Err(PlainError::MessageTooLarge {
                message_bytes: message.len(),
                max: PLAIN_MESSAGE_BYTES_MAX,
            });
        }
        let text = std::str::from_utf8(message)
            .map_err(|_| PlainError::Malformed { expected: "UTF-8" })?;
        let mut fields = text.split('\0');
        let (Some(authorization_id), Some(user), Some(password), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(PlainError::Malformed {
                expected: "[authzid] NUL authcid NUL passwd: exactly two NULs",
            });
        };
        if user.is_empty() {
            return Err(PlainError::EmptyUser);
        }
        if password.is_empty() {
            return Err(PlainError::EmptyPassword {
                user: user.to_owned(),
            });
        }
        Ok(Self {
            authorization_id,
            user,
            password,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;

    use super::*;

    static ALICE_256: LazyLock<ScramCredential> = LazyLock::new(|| {
        ScramCredential::from_password(ScramMechanism::ScramSha256, "s3cret", b"salt-256", 4096)
            .unwrap()
    });
    static ALICE_512: LazyLock<ScramCredential> = LazyLock::new(|| {
        ScramCredential::from_password(ScramMechanism::ScramSha512, "s3cret", b"salt-512", 4096)
            .unwrap()
    });

    fn alice(
        mechanism: ScramMechanism,
    ) -> impl FnOnce(&str) -> Option<(ScramMechanism, ScramCredential)> {
        move |user| {
            let credential = match mechanism {
                ScramMechanism::ScramSha256 => ALICE_256.clone(),
                ScramMechanism::ScramSha512 => ALICE_512.clone(),
            };
            (user == "alice").then_some((mechanism, credential))
        }
    }

    #[test]
    fn the_right_password_authenticates_with_either_mechanism() {
        for mechanism in ScramMechanism::ALL {
            let user = authenticate_plain(b"\0alice\0s3cret", alice(mechanism)).unwrap();
            assert_eq!(user, "alice");
            let user = authenticate_plain(b"alice\0alice\0s3cret", alice(mechanism)).unwrap();
            assert_eq!(user, "alice");
        }
    }

    #[test]
    fn a_wrong_password_and_an_unknown_user_get_the_same_reply() {
        let wrong =
            authenticate_plain(b"\0alice\0guess", alice(ScramMechanism::ScramSha256)).unwrap_err();
        assert!(matches!(&wrong, PlainError::InvalidPassword { user } if user == "alice"));
        let unknown =
            authenticate_plain(b"\0bob\0guess", alice(ScramMechanism::ScramSha256)).unwrap_err();
        assert!(matches!(&unknown, PlainError::UnknownUser { user } if user == "bob"));
        let kafka =
            SaslFailureReply::Message("Authentication failed: Invalid username or password");
        assert_eq!(wrong.reply(), kafka);
        assert_eq!(unknown.reply(), kafka);
        assert!(!wrong.to_string().contains("guess"));
    }

    #[test]
    fn an_authzid_must_be_the_user_itself() {
        let error = authenticate_plain(b"admin\0alice\0s3cret", alice(ScramMechanism::ScramSha512))
            .unwrap_err();
        assert!(matches!(error, PlainError::AuthorizationIdMismatch { .. }));
        assert_eq!(
            error.reply(),
            SaslFailureReply::Message(
                "Authentication failed: Client requested an authorization id that is different \
                 from username"
            )
        );
        // Kafka checks the password first.
        let error = authenticate_plain(b"admin\0alice\0guess", alice(ScramMechanism::ScramSha512))
            .unwrap_err();
        assert!(matches!(error, PlainError::InvalidPassword { .. }));
    }

    #[test]
    fn malformed_messages_get_the_generic_reply() {
        let cases: &[&[u8]] = &[
            b"",
            b"alice",
            b"\0alice",
            b"\0\0s3cret",
            b"\0alice\0",
            b"\0alice\0s3cret\0more",
            b"\0al\xffice\0s3cret",
        ];
        for message in cases {
            let error = authenticate_plain(message, |_| panic!("looked up")).unwrap_err();
            assert_eq!(
                error.reply(),
                SaslFailureReply::Generic,
                "{message:?}: {error:?}"
            );
        }
        let long = [b"\0alice\0".as_slice(), &[b'x'; PLAIN_MESSAGE_BYTES_MAX]].concat();
        let error = authenticate_plain(&long, |_| panic!("looked up")).unwrap_err();
        assert!(matches!(error, PlainError::MessageTooLarge { .. }));
    }

    #[test]
    fn a_stored_credential_out_of_bounds_is_not_used() {
        let mut weak = ALICE_256.clone();
        weak.iterations = 1;
        let error = authenticate_plain(b"\0alice\0s3cret", |_| {
            Some((ScramMechanism::ScramSha256, weak))
        })
        .unwrap_err();
        assert!(matches!(error, PlainError::StoredCredentialInvalid { .. }));
        // A SHA-256 credential offered as SHA-512 has the wrong key lengths.
        let error = authenticate_plain(b"\0alice\0s3cret", |_| {
            Some((ScramMechanism::ScramSha512, ALICE_256.clone()))
        })
        .unwrap_err();
        assert!(matches!(error, PlainError::StoredCredentialInvalid { .. }));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Arbitrary bytes never panic and never authenticate.
        #[test]
        fn arbitrary_bytes_never_authenticate(message in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert!(authenticate_plain(&message, alice(ScramMechanism::ScramSha256)).is_err());
        }
    }
}
