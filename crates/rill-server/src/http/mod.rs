//! The HTTP admin listener (`rill.http.listener`, 127.0.0.1:9644 unless
//! told otherwise), for orchestrators and monitoring:
//!
//! - `/health`: 200 while the process serves HTTP at all;
//! - `/ready`: 200 once the broker has recovered its logs, opened its
//!   listeners and, in the metadata, is registered and unfenced (its
//!   controller unfences it once it has caught up); 503 with the reason
//!   before;
//! - `/metrics`: the metrics (metrics/), in Prometheus' text format or
//!   OpenMetrics when the scraper's Accept header asks for it;
//! - `/` and `/api/`: the web console and its JSON API (console/).
//!
//! HTTPS when `rill.http.ssl.*` names a keystore; who may use what beyond
//! /health and /ready: access.rs. Served by axum (over hyper, with this
//! module's accept loop) on the runtime of the Kafka listeners.

mod access;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use rill_cluster::BrokerId;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::broker_properties;
use crate::console::{self, Console};
use crate::metrics::{self, Format};
use crate::network::refusals::{Refusal, Refusals};
use crate::properties::{ConfigError, HostPort, Properties};
use crate::security::{ANONYMOUS, TlsListener, TlsSettings};

const PROPERTY: &str = "rill.http.listener";

/// Where the HTTP listener binds, from `rill.http.listener`, and how it
/// is secured (`rill.http.ssl.*`, `rill.http.authentication`).
#[derive(Clone, Debug)]
pub struct HttpListener {
    pub bind: HostPort,
    /// Whether it was set, rather than left at its default: a default
    /// port in use is skipped with a warning, a chosen one fails the
    /// start.
    pub explicit: bool,
    /// HTTPS, when a keystore is named.
    tls: Option<TlsSettings>,
    /// Callers log in with HTTP Basic.
    basic: bool,
}

/// The HTTP listener's socket, and how it is secured.
#[derive(Debug)]
pub(crate) struct BoundHttp {
    socket: TcpListener,
    tls: Option<Arc<TlsListener>>,
    basic: bool,
}

impl BoundHttp {
    /// The HTTPS listener's keys, to reload when their files change.
    pub(crate) fn tls(&self) -> Option<Arc<TlsListener>> {
        self.tls.clone()
    }
}

impl HttpListener {
    /// The listener the properties ask for; `None` when the property is
    /// set empty.
    pub(crate) fn from_properties(
        properties: &Properties,
    ) -> Result<Option<HttpListener>, ConfigError> {
        let value = broker_properties::value_of(properties, PROPERTY).unwrap_or_default();
        if value.trim().is_empty() {
            return Ok(None);
        }
        let bind = HostPort::parse(&value).map_err(|_| ConfigError::Invalid {
            name: PROPERTY.to_string(),
            value: value.clone(),
            expected: "HOST:PORT, or empty for no HTTP listener".to_string(),
        })?;
        // The listener's own keys and trust; the broker's TLS protocols,
        // cipher suites and principal mapping rules.
        let own = |name: &str| {
            broker_properties::value_of(properties, &format!("rill.http.{name}"))
                .filter(|value| !value.trim().is_empty())
        };
        let value = |name: &str| {
            if name.starts_with("ssl.keystore.")
                || name.starts_with("ssl.truststore.")
                || name == "ssl.client.auth"
            {
                own(name)
            } else {
                broker_properties::value_of(properties, name)
            }
        };
        let tls = (own("ssl.keystore.location").is_some()
            || own("ssl.keystore.certificate.chain").is_some())
        .then(|| TlsSettings::from_properties("HTTP", value))
        .transpose()?;
        let basic = broker_properties::value_of(properties, "rill.http.authentication")
            .is_some_and(|v| v.trim() == "basic");
        Ok(Some(HttpListener {
            bind,
            explicit: properties.contains_key(PROPERTY),
            tls,
            basic,
        }))
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Binds the socket. A default address already in use is logged and
    /// skipped (`Ok(None)`), so that a second broker on one machine starts
    /// without one; any other failure is the caller's.
    pub(crate) async fn bind(&self) -> std::io::Result<Option<BoundHttp>> {
        let tls = match &self.tls {
            Some(settings) => Some(Arc::new(
                TlsListener::load("HTTP", settings.clone()).map_err(|error| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("the HTTP listener's TLS keys (rill.http.ssl.*): {error}"),
                    )
                })?,
            )),
            None => None,
        };
        let address = (self.bind.host.as_str(), self.bind.port);
        match TcpListener::bind(address).await {
            Ok(socket) => {
                let outward = socket.local_addr().is_ok_and(|a| !a.ip().is_loopback());
                if outward && !self.basic {
                    tracing::warn!(
                        "the HTTP admin listener on {} asks for no login: whoever reaches it can \
                         use the web console with this broker's rights; set \
                         rill.http.authentication=basic (and rill.http.ssl.* for HTTPS)",
                        self.bind
                    );
                }
                Ok(Some(BoundHttp {
                    socket,
                    tls,
                    basic: self.basic,
                }))
            }
            Err(error) if !self.explicit && error.kind() == std::io::ErrorKind::AddrInUse => {
                tracing::warn!(
                    "the HTTP admin listener's default address {} is in use, so this broker \
                     serves no /metrics, /health or /ready; set {PROPERTY} to another \
                     HOST:PORT (or empty to silence this)",
                    self.bind
                );
                Ok(None)
            }
            Err(error) => Err(std::io::Error::new(
                error.kind(),
                format!("cannot listen on {} ({PROPERTY}): {error}", self.bind),
            )),
        }
    }
}

/// What the routes read: the broker once it has started.
#[derive(Clone)]
struct Shared {
    started: watch::Receiver<Option<Arc<Broker>>>,
    partition_series_max: usize,
}

/// How long a connection may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `bound` until the task is dropped; the console samples its
/// history every `history_interval`.
pub(crate) async fn serve(
    bound: BoundHttp,
    started: watch::Receiver<Option<Arc<Broker>>>,
    partition_series_max: usize,
    history_interval: Duration,
) {
    let console = Console::new(started.clone(), history_interval);
    let shared = Shared {
        started: started.clone(),
        partition_series_max,
    };
    let guard = access::Guard {
        started,
        basic: bound.basic,
    };
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .with_state(shared.clone())
        .merge(console::routes(console))
        .route_layer(axum::middleware::from_fn_with_state(guard, access::check));
    let routes = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(shared)
        .merge(guarded);
    // Accept failing (out of descriptors, most often) is said once a
    // spell, as the Kafka listeners say it.
    let mut refusals = Refusals::default();
    loop {
        let (socket, peer) = match bound.socket.accept().await {
            Ok(accepted) => {
                refusals.taken();
                accepted
            }
            Err(error) => {
                refusals.refused(Refusal::AcceptFailed, &error);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (routes, tls) = (routes.clone(), bound.tls.clone());
        tokio::spawn(async move {
            let caller = |principal: String| access::Caller { peer, principal };
            match tls {
                Some(tls) => match tls.accept(socket).await {
                    Ok((stream, principal)) => {
                        serve_connection(stream, routes.layer(Extension(caller(principal)))).await;
                    }
                    Err(error) => tracing::debug!(%peer, %error, "an HTTPS handshake failed"),
                },
                None => {
                    let routes = routes.layer(Extension(caller(ANONYMOUS.to_string())));
                    serve_connection(socket, routes).await;
                }
            }
        });
    }
}

/// Serves one connection's HTTP/1.1 requests.
async fn serve_connection<S>(stream: S, routes: Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(routes);
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%error, "an HTTP connection ended");
    }
}

/// The address the socket bound, and whether it serves HTTPS, for the
/// start-up line.
pub(crate) fn describe(bound: &BoundHttp) -> Option<(SocketAddr, bool)> {
    Some((bound.socket.local_addr().ok()?, bound.tls.is_some()))
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(shared): State<Shared>) -> (StatusCode, String) {
    let broker = shared.started.borrow().clone();
    match broker.as_deref().map(not_ready_because) {
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: recovering logs and joining the metadata quorum\n".to_string(),
        ),
        Some(Some(reason)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        Some(None) => (StatusCode::OK, "ready\n".to_string()),
    }
}

/// Why a started broker is not ready yet, if it is not.
fn not_ready_because(broker: &Broker) -> Option<String> {
    let node = broker.node();
    let metadata = node.metadata();
    match metadata.brokers.get(&BrokerId(node.node_id())) {
        None => Some("not registered with the controller yet".to_string()),
        Some(registered) if registered.fenced => Some(
            "fenced: catching up with the metadata before the controller unfences it".to_string(),
        ),
        Some(_) => None,
    }
}

async fn metrics(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let format = Format::from_accept(headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
    let broker = shared.started.borrow().clone();
    let max = shared.partition_series_max;
    // Reading /proc and the log dirs' file systems blocks.
    let encoded = tokio::task::spawn_blocking(move || match broker {
        Some(broker) => broker.metrics().scrape(&broker, max, format),
        None => metrics::scrape_starting(format),
    })
    .await;
    match encoded {
        Ok(text) => ([(CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(set: Option<&str>) -> Option<HttpListener> {
        let mut properties = Properties::new();
        if let Some(value) = set {
            properties.insert(PROPERTY.to_string(), value.to_string());
        }
        HttpListener::from_properties(&properties).unwrap()
    }

    #[test]
    fn the_http_listener_is_on_by_default_off_when_empty_and_checked() {
        let default = listener(None).unwrap();
        assert_eq!(default.bind.to_string(), "127.0.0.1:9644");
        assert!(!default.explicit);
        let chosen = listener(Some("0.0.0.0:19644")).unwrap();
        assert_eq!(chosen.bind.to_string(), "0.0.0.0:19644");
        assert!(chosen.explicit);
        assert!(listener(Some(" ")).is_none());
        let mut properties = Properties::new();
        properties.insert(PROPERTY.to_string(), "no-port".to_string());
        assert!(HttpListener::from_properties(&properties).is_err());
    }
}
