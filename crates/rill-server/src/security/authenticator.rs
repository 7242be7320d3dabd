//! A SASL listener's side of one connection before it is authenticated,
//! as Kafka's `SaslServerAuthenticator` runs it (KIP-43, KIP-152): the
//! client may send ApiVersions, then SaslHandshake naming a mechanism the
//! broker enables, then SaslAuthenticate requests carrying the
//! mechanism's messages until the exchange completes. Anything else
//! closes the connection; so does a failed exchange, after its answer.
//!
//! The connection asks [`Authenticator::admit`] about each request; once
//! it says [`Admit::Dispatch`] for a request other than ApiVersions, the
//! connection is authenticated and every request goes to its handler.
//! (SaslHandshake and SaslAuthenticate then reach their handlers, which
//! answer ILLEGAL_SASL_STATE as Kafka does; re-authentication, KIP-368,
//! is not here yet.)

use std::sync::OnceLock;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::ClusterMetadata;

use super::{
    DecoyKey, OsNonces, PLAIN_MECHANISM, SaslFailureReply, ScramCredential, ScramMechanism,
    ScramServer, ScramStep, authenticate_plain, generic_failure_message,
};
use crate::apis::{Api, Body, HandlerError, Request, encode};

/// What the connection does with a request.
pub(crate) enum Admit {
    /// Hand it to its handler as usual.
    Dispatch,
    /// Send this answer, and go on reading.
    Answer(Body),
    /// Send this answer, then close the connection.
    AnswerAndClose(Body),
    /// Close the connection without an answer.
    Close,
}

/// One connection's authentication.
pub(crate) struct Authenticator {
    state: State,
}

enum State {
    /// ApiVersions and SaslHandshake are welcome.
    Handshake { enabled: Vec<String> },
    /// The handshake chose PLAIN: one SaslAuthenticate.
    Plain,
    /// The handshake chose SCRAM: the exchange's messages.
    Scram(Box<ScramServer<OsNonces>>),
    /// Authenticated as `User:{user}`.
    Done { user: String },
    /// Over without success; the connection closes.
    Failed,
}

impl Authenticator {
    /// The authentication of a connection to a SASL listener offering
    /// `enabled` (sasl.enabled.mechanisms).
    pub(crate) fn new(enabled: &[String]) -> Authenticator {
        Authenticator {
            state: State::Handshake {
                enabled: enabled.to_vec(),
            },
        }
    }

    /// The user the connection authenticated as, once it has.
    pub(crate) fn user(&self) -> Option<&str> {
        match &self.state {
            State::Done { user } => Some(user),
            _ => None,
        }
    }

    /// What to do with `request`, read before the connection is
    /// authenticated; `metadata` holds the users' credentials.
    pub(crate) fn admit(
        &mut self,
        request: &Request,
        metadata: impl FnOnce() -> std::sync::Arc<ClusterMetadata>,
    ) -> Result<Admit, HandlerError> {
        match (&mut self.state, request.api) {
            (State::Done { .. }, _) => Ok(Admit::Dispatch),
            (State::Handshake { .. }, Api::ApiVersions) => Ok(Admit::Dispatch),
            (State::Handshake { enabled }, Api::SaslHandshake) => {
                let handshake: SaslHandshakeRequest = request.decode()?;
                let mechanism = handshake.mechanism.to_string();
                let offered = enabled
                    .iter()
                    .map(|m| StrBytes::from_string(m.clone()))
                    .collect();
                let mut response = SaslHandshakeResponse::default().with_mechanisms(offered);
                let next = if !enabled.contains(&mechanism) {
                    None
                } else if mechanism == PLAIN_MECHANISM {
                    Some(State::Plain)
                } else {
                    ScramMechanism::from_name(&mechanism).and_then(|scram| {
                        let server = ScramServer::new(scram, OsNonces, decoy_key()?);
                        Some(State::Scram(Box::new(server)))
                    })
                };
                match next {
                    Some(next) => {
                        self.state = next;
                        Ok(Admit::Answer(encode(
                            ApiKey::SaslHandshake,
                            request.version(),
                            &response,
                        )?))
                    }
                    None => {
                        tracing::warn!(
                            client = %request.session.client_host,
                            mechanism = %truncated(&mechanism),
                            "a SASL mechanism this listener does not offer; closing the connection"
                        );
                        self.state = State::Failed;
                        response.error_code = ResponseError::UnsupportedSaslMechanism.code();
                        Ok(Admit::AnswerAndClose(encode(
                            ApiKey::SaslHandshake,
                            request.version(),
                            &response,
                        )?))
                    }
                }
            }
            (State::Plain | State::Scram(_), Api::SaslAuthenticate) => {
                let authenticate: SaslAuthenticateRequest = request.decode()?;
                self.authenticate(request, &authenticate.auth_bytes, metadata)
            }
            (state, api) => {
                let stage = match state {
                    State::Handshake { .. } => "before its SASL handshake",
                    State::Plain | State::Scram(_) => "during its SASL authentication",
                    State::Done { .. } | State::Failed => "after its SASL authentication failed",
                };
                tracing::warn!(
                    client = %request.session.client_host,
                    ?api,
                    "a request {stage}; closing the connection"
                );
                self.state = State::Failed;
                Ok(Admit::Close)
            }
        }
    }

    /// One SaslAuthenticate of the exchange the handshake chose.
    fn authenticate(
        &mut self,
        request: &Request,
        auth_bytes: &[u8],
        metadata: impl FnOnce() -> std::sync::Arc<ClusterMetadata>,
    ) -> Result<Admit, HandlerError> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        let (outcome, mechanism) = match state {
            State::Plain => {
                let outcome = authenticate_plain(auth_bytes, |user| {
                    let metadata = metadata();
                    ScramMechanism::ALL.into_iter().rev().find_map(|scram| {
                        stored(&metadata, user, scram).map(|credential| (scram, credential))
                    })
                })
                .map(|user| (Vec::new(), Some(user)))
                .map_err(|error| (error.to_string(), error.reply()));
                (outcome, PLAIN_MECHANISM)
            }
            State::Scram(mut server) => {
                let scram = server.mechanism();
                let outcome = server
                    .step(auth_bytes, |user| stored(&metadata(), user, scram))
                    .map(|step| match step {
                        ScramStep::Continue { server_first } => (server_first, None),
                        ScramStep::Complete { server_final, user } => (server_final, Some(user)),
                    })
                    .map_err(|error| (error.to_string(), error.reply()));
                if outcome.as_ref().is_ok_and(|(_, user)| user.is_none()) {
                    self.state = State::Scram(server);
                }
                (outcome, scram.name())
            }
            other => {
                self.state = other;
                return Ok(Admit::Close);
            }
        };
        let client = &request.session.client_host;
        let response = SaslAuthenticateResponse::default();
        match outcome {
            Ok((reply, user)) => {
                if let Some(user) = user {
                    tracing::info!(%client, %user, mechanism, "authenticated");
                    self.state = State::Done { user };
                }
                let response = response.with_auth_bytes(reply.into());
                Ok(Admit::Answer(encode(
                    ApiKey::SaslAuthenticate,
                    request.version(),
                    &response,
                )?))
            }
            Err((error, reply)) => {
                // The error names the user, never a secret.
                tracing::warn!(%client, mechanism, %error, "SASL authentication failed; closing the connection");
                let (code, message) = match reply {
                    SaslFailureReply::Generic => (
                        ResponseError::SaslAuthenticationFailed,
                        generic_failure_message(mechanism, false),
                    ),
                    SaslFailureReply::Message(text) => {
                        (ResponseError::SaslAuthenticationFailed, text.to_string())
                    }
                    SaslFailureReply::IllegalState => (
                        ResponseError::IllegalSaslState,
                        "the SASL exchange is over".to_string(),
                    ),
                };
                let response = response
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message)));
                Ok(Admit::AnswerAndClose(encode(
                    ApiKey::SaslAuthenticate,
                    request.version(),
                    &response,
                )?))
            }
        }
    }
}

/// The credential the quorum holds for `user` and `mechanism`.
fn stored(
    metadata: &ClusterMetadata,
    user: &str,
    mechanism: ScramMechanism,
) -> Option<ScramCredential> {
    let stored = metadata.users.credential(user, mechanism)?;
    Some(ScramCredential {
        salt: stored.salt.clone(),
        stored_key: stored.stored_key.clone(),
        server_key: stored.server_key.clone(),
        iterations: u32::try_from(stored.iterations).ok()?,
    })
}

/// The secret behind the credentials of users that do not exist (see
/// [`DecoyKey`]): one per process. `None` if the OS gives no randomness.
fn decoy_key() -> Option<DecoyKey> {
    static KEY: OnceLock<Option<DecoyKey>> = OnceLock::new();
    KEY.get_or_init(|| match DecoyKey::generate() {
        Ok(key) => Some(key),
        Err(error) => {
            tracing::error!(%error, "no SCRAM authentication without randomness");
            None
        }
    })
    .clone()
}

/// A client-given name, cut short for a log line.
fn truncated(text: &str) -> &str {
    let end = text.char_indices().nth(64).map_or(text.len(), |(at, _)| at);
    &text[..end]
}
