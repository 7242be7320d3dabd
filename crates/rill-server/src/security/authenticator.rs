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
//!
//! Re-authentication (KIP-368): with `connections.max.reauth.ms`, the
//! final SaslAuthenticate answer tells the client how long its session
//! lasts (`session_lifetime_ms`). An authenticated client re-authenticates
//! by sending SaslHandshake and SaslAuthenticate again on the same
//! connection; its requests in between are served under the session it
//! has. It must come back as the same user with the same mechanism, or
//! the connection closes. A request that arrives after the session has
//! expired, other than a SaslHandshake that starts a re-authentication,
//! closes the connection.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::ClusterMetadata;

use super::oauthbearer::{OAUTHBEARER_MECHANISM, OAuthSettings, bearer_token};
use super::{
    DecoyKey, OsNonces, PLAIN_MECHANISM, SaslFailureReply, ScramCredential, ScramMechanism,
    ScramServer, ScramStep, authenticate_plain, generic_failure_message,
};
use crate::apis::{Api, Body, HandlerError, Request, encode};
use crate::network::client_refusals::{self, ClientRefusal};

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
    /// sasl.enabled.mechanisms.
    enabled: Vec<String>,
    /// connections.max.reauth.ms, if sessions expire.
    session_lifetime: Option<Duration>,
    /// How OAUTHBEARER tokens are checked, if it is offered.
    oauthbearer: Option<std::sync::Arc<OAuthSettings>>,
    /// The session: who authenticated, with which mechanism, and until
    /// when (kept while the client re-authenticates).
    session: Option<SessionState>,
}

struct SessionState {
    user: String,
    mechanism: &'static str,
    expires: Option<Instant>,
}

enum State {
    /// ApiVersions and SaslHandshake are welcome.
    Handshake,
    /// The handshake chose PLAIN: one SaslAuthenticate.
    Plain,
    /// The handshake chose SCRAM: the exchange's messages.
    Scram(Box<ScramServer<OsNonces>>),
    /// The handshake chose OAUTHBEARER: one SaslAuthenticate with a token.
    OAuthBearer,
    /// Authenticated: every request is served until the session expires.
    Done,
    /// Over without success; the connection closes.
    Failed,
}

impl Authenticator {
    /// The authentication of a connection to a SASL listener offering
    /// `enabled` (sasl.enabled.mechanisms), whose sessions last
    /// `reauth_ms` (connections.max.reauth.ms; 0 for ever).
    pub(crate) fn new(
        enabled: &[String],
        reauth_ms: u64,
        oauthbearer: Option<std::sync::Arc<OAuthSettings>>,
    ) -> Authenticator {
        Authenticator {
            state: State::Handshake,
            enabled: enabled.to_vec(),
            session_lifetime: (reauth_ms > 0).then(|| Duration::from_millis(reauth_ms)),
            oauthbearer,
            session: None,
        }
    }

    /// The user the connection authenticated as, once it has.
    pub(crate) fn user(&self) -> Option<&str> {
        self.session.as_ref().map(|session| session.user.as_str())
    }

    /// Whether the session has expired without re-authentication.
    fn expired(&self) -> bool {
        self.session
            .as_ref()
            .and_then(|session| session.expires)
            .is_some_and(|expires| Instant::now() >= expires)
    }

    /// What to do with `request`, read before the connection is
    /// authenticated; `metadata` holds the users' credentials.
    pub(crate) fn admit(
        &mut self,
        request: &Request,
        metadata: impl FnOnce() -> std::sync::Arc<ClusterMetadata>,
    ) -> Result<Admit, HandlerError> {
        let handshaking = matches!(self.state, State::Handshake);
        let exchanging = matches!(
            self.state,
            State::Plain | State::Scram(_) | State::OAuthBearer
        );
        let done = matches!(self.state, State::Done);
        let expired = self.expired();
        match request.api {
            Api::SaslHandshake if handshaking || done => self.handshake(request),
            Api::SaslAuthenticate if exchanging => {
                let authenticate: SaslAuthenticateRequest = request.decode()?;
                self.authenticate(request, &authenticate.auth_bytes, metadata)
            }
            Api::ApiVersions if handshaking => Ok(Admit::Dispatch),
            api if expired => {
                tracing::warn!(
                    client = %request.session.client_host,
                    user = self.user().unwrap_or_default(),
                    ?api,
                    "a request after the SASL session expired (connections.max.reauth.ms) without re-authentication; closing the connection"
                );
                self.state = State::Failed;
                Ok(Admit::Close)
            }
            // Served under the session it has, which has not expired
            // (while it re-authenticates too).
            _ if (done || exchanging) && self.session.is_some() => Ok(Admit::Dispatch),
            api => {
                let stage = match self.state {
                    State::Handshake => "before its SASL handshake",
                    State::Plain | State::Scram(_) | State::OAuthBearer => {
                        "during its SASL authentication"
                    }
                    State::Done | State::Failed => "after its SASL authentication failed",
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

    /// A SaslHandshake: the exchange of the mechanism it names begins (a
    /// re-authentication, with the session's mechanism, if the connection
    /// has a session).
    fn handshake(&mut self, request: &Request) -> Result<Admit, HandlerError> {
        let handshake: SaslHandshakeRequest = request.decode()?;
        let mechanism = handshake.mechanism.to_string();
        let offered = self
            .enabled
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect();
        let mut response = SaslHandshakeResponse::default().with_mechanisms(offered);
        let same_as_session = self
            .session
            .as_ref()
            .is_none_or(|session| session.mechanism == mechanism);
        let next = if !self.enabled.contains(&mechanism) || !same_as_session {
            None
        } else if mechanism == PLAIN_MECHANISM {
            Some(State::Plain)
        } else if mechanism == OAUTHBEARER_MECHANISM {
            self.oauthbearer.is_some().then_some(State::OAuthBearer)
        } else {
            ScramMechanism::from_name(&mechanism).and_then(|scram| {
                let server = ScramServer::new(scram, OsNonces, decoy_key()?);
                Some(State::Scram(Box::new(server)))
            })
        };
        let Some(next) = next else {
            tracing::warn!(
                client = %request.session.client_host,
                mechanism = %truncated(&mechanism),
                "a SASL mechanism this listener does not offer, or not the session's; closing the connection"
            );
            self.state = State::Failed;
            response.error_code = ResponseError::UnsupportedSaslMechanism.code();
            return Ok(Admit::AnswerAndClose(encode(
                ApiKey::SaslHandshake,
                request.version(),
                &response,
            )?));
        };
        self.state = next;
        Ok(Admit::Answer(encode(
            ApiKey::SaslHandshake,
            request.version(),
            &response,
        )?))
    }

    /// One SaslAuthenticate of the exchange the handshake chose.
    fn authenticate(
        &mut self,
        request: &Request,
        auth_bytes: &[u8],
        metadata: impl FnOnce() -> std::sync::Arc<ClusterMetadata>,
    ) -> Result<Admit, HandlerError> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        // An OAUTHBEARER session ends with its token, if sessions expire.
        let mut token_expires_ms = None;
        let (outcome, mechanism) = match state {
            State::OAuthBearer => {
                let now_ms = crate::apis::now_ms();
                let outcome = match &self.oauthbearer {
                    Some(settings) => bearer_token(auth_bytes)
                        .and_then(|token| settings.validate(token, now_ms))
                        .map(|valid| {
                            token_expires_ms = Some(valid.expires_ms.saturating_sub(now_ms));
                            (Vec::new(), Some(valid.subject))
                        })
                        .map_err(|error| (error.to_string(), SaslFailureReply::Generic)),
                    None => Err((
                        "OAUTHBEARER is not configured".to_string(),
                        SaslFailureReply::Generic,
                    )),
                };
                (outcome, OAUTHBEARER_MECHANISM)
            }
            State::Plain => {
                let outcome =
                    authenticate_plain(auth_bytes, |user| plain_credential(&metadata(), user))
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
        let outcome = match outcome {
            // Re-authentication keeps the principal (Kafka's rule).
            Ok((_, Some(user))) if self.user().is_some_and(|previous| previous != user) => Err((
                format!("re-authenticated as {user}, not as the session's user"),
                SaslFailureReply::Message("Cannot change principals during re-authentication"),
            )),
            other => other,
        };
        match outcome {
            Ok((reply, user)) => {
                let mut response = response.with_auth_bytes(reply.into());
                if let Some(user) = user {
                    if self.session.is_some() {
                        tracing::info!(%client, %user, mechanism, "re-authenticated");
                    } else {
                        tracing::info!(%client, %user, mechanism, "authenticated");
                    }
                    let now = Instant::now();
                    self.session = Some(SessionState {
                        user,
                        mechanism,
                        expires: self.session_lifetime.map(|lifetime| now + lifetime),
                    });
                    self.state = State::Done;
                    let lifetime_ms = self.session_lifetime.map_or(0, |lifetime| {
                        i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)
                    });
                    response = response.with_session_lifetime_ms(lifetime_ms);
                }
                Ok(Admit::Answer(encode(
                    ApiKey::SaslAuthenticate,
                    request.version(),
                    &response,
                )?))
            }
            Err((error, reply)) => {
                // The error names the user, never a secret.
                let cause = format!("{mechanism}: {error}");
                client_refusals::refused(ClientRefusal::Authentication, &client, &cause);
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
/// The credential a PLAIN password is checked against: the user's
/// SCRAM-SHA-512 one if it has one, else its SCRAM-SHA-256 one.
fn plain_credential(
    metadata: &ClusterMetadata,
    user: &str,
) -> Option<(ScramMechanism, ScramCredential)> {
    ScramMechanism::ALL
        .into_iter()
        .rev()
        .find_map(|scram| stored(metadata, user, scram).map(|credential| (scram, credential)))
}

/// Checks `user`'s `password` as SASL PLAIN does, against the stored
/// SCRAM credential (the HTTP listener's Basic authentication): the user's
/// name, or why not.
pub(crate) fn check_password(
    metadata: &ClusterMetadata,
    user: &str,
    password: &str,
) -> Result<String, super::plain::PlainError> {
    let mut message = Vec::with_capacity(user.len() + password.len() + 2);
    message.push(0);
    message.extend_from_slice(user.as_bytes());
    message.push(0);
    message.extend_from_slice(password.as_bytes());
    authenticate_plain(&message, |user| plain_credential(metadata, user))
}

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
