//! Who may use the HTTP listener beyond /health and /ready.
//!
//! - With `rill.http.authentication=basic`, every request carries a user
//!   and password (HTTP Basic), checked as SASL PLAIN checks them: against
//!   the user's stored SCRAM credential. Without them, or wrong: 401 and
//!   a Basic challenge, so that a browser asks.
//! - Otherwise the caller is the principal of its client certificate
//!   (HTTPS with `rill.http.ssl.client.auth`), or User:ANONYMOUS.
//! - With an authorizer, the caller needs DESCRIBE on the cluster to read
//!   (GET: the console's pages, /metrics) and ALTER to change anything
//!   (POST, PUT, DELETE): 403 otherwise.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::sync::watch;

use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::network::client_refusals::{self, ClientRefusal};
use crate::security::check_password;
use crate::session::Session;

/// The connection a request came on: from where, and the principal its
/// TLS client certificate proved (User:ANONYMOUS without one).
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub peer: SocketAddr,
    pub principal: String,
}

/// What the check needs.
#[derive(Clone)]
pub(crate) struct Guard {
    pub started: watch::Receiver<Option<Arc<Broker>>>,
    /// rill.http.authentication=basic.
    pub basic: bool,
}

/// Lets the request through, or answers 401, 403 or 503.
pub(crate) async fn check(
    State(guard): State<Guard>,
    Extension(caller): Extension<Caller>,
    request: Request,
    next: Next,
) -> Response {
    let broker = guard.started.borrow().clone();
    let Some(broker) = broker else {
        if guard.basic {
            // No credentials can be checked before the metadata is there.
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "the broker is still starting",
            );
        }
        return next.run(request).await;
    };
    let principal = if guard.basic {
        let authorization = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        match basic_user(authorization, &broker, caller.peer).await {
            Some(user) => format!("User:{user}"),
            None => return challenge(),
        }
    } else {
        caller.principal.clone()
    };
    let operation = if matches!(*request.method(), Method::GET | Method::HEAD) {
        AclOperation::Describe
    } else {
        AclOperation::Alter
    };
    let listener = Arc::new(broker.config().listeners.inter_broker().clone());
    let session = Session::new(caller.peer, listener, principal.clone());
    if !Access::new(&broker, &session).allows_cluster(operation) {
        tracing::info!(
            peer = %caller.peer, %principal, %operation,
            "an HTTP request was refused: the principal may not do this on the cluster"
        );
        return refusal(
            StatusCode::FORBIDDEN,
            &format!("{principal} may not {operation} the cluster"),
        );
    }
    next.run(request).await
}

/// The user the request's Basic credentials (its Authorization header)
/// prove, if they do. The
/// PBKDF2 of the check runs off the reactor.
async fn basic_user(
    authorization: Option<String>,
    broker: &Arc<Broker>,
    peer: SocketAddr,
) -> Option<String> {
    let header = authorization?;
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    let (user, password) = (user.to_string(), password.to_string());
    let metadata = broker.node().metadata();
    let checked =
        tokio::task::spawn_blocking(move || check_password(&metadata, &user, &password)).await;
    match checked {
        Ok(Ok(user)) => Some(user),
        Ok(Err(error)) => {
            client_refusals::refused(ClientRefusal::HttpLogin, &peer, &error);
            None
        }
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

/// 401 with the Basic challenge a browser answers with a login prompt.
fn challenge() -> Response {
    let mut response = refusal(
        StatusCode::UNAUTHORIZED,
        "log in with a user name and password (a SCRAM credential of this cluster)",
    );
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Basic realm=\"rill\", charset=\"UTF-8\""),
    );
    response
}

fn refusal(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
