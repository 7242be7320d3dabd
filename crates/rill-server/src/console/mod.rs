//! The web console: a page embedded in the binary (assets/), served on
//! the HTTP admin listener at `/`, and the JSON admin API it reads
//! (docs/console-api.md) under `/api/`. The API is a Kafka client of the
//! cluster (kafka.rs); the charts read the history this broker keeps in
//! memory (history.rs).

mod groups;
mod history;
mod kafka;
mod messages;
mod overview;
mod partitions;
mod reply;
mod security;
mod topics;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use tokio::sync::watch;

pub(crate) use history::History;

use crate::broker::Broker;
use kafka::Kafka;
use reply::ApiError;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// What the console's routes share.
#[derive(Clone)]
pub(crate) struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    started: watch::Receiver<Option<Arc<Broker>>>,
    kafka: OnceLock<Kafka>,
    history: Arc<History>,
}

impl Console {
    /// The console of the broker `started` will hold, sampling its history
    /// every `interval`.
    pub(crate) fn new(
        started: watch::Receiver<Option<Arc<Broker>>>,
        interval: Duration,
    ) -> Console {
        let history = Arc::new(History::new(interval));
        tokio::spawn(history::sample(Arc::clone(&history), started.clone()));
        Console {
            inner: Arc::new(Inner {
                started,
                kafka: OnceLock::new(),
                history,
            }),
        }
    }

    /// The broker, once it has started.
    fn broker(&self) -> Result<Arc<Broker>, ApiError> {
        self.inner
            .started
            .borrow()
            .clone()
            .ok_or_else(|| ApiError::unavailable("the broker is still starting"))
    }

    /// The broker and the client that asks the cluster.
    fn client(&self) -> Result<(Arc<Broker>, &Kafka), ApiError> {
        let broker = self.broker()?;
        let kafka = self
            .inner
            .kafka
            .get_or_init(|| Kafka::new(broker.connector().clone(), "rill-console"));
        Ok((broker, kafka))
    }

    fn history(&self) -> &History {
        &self.inner.history
    }
}

/// The console's routes: the page, its assets and the API.
pub(crate) fn routes(console: Console) -> Router {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/assets/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route("/api/overview", get(overview::overview))
        .route("/api/topics", get(topics::list).post(topics::create))
        .route("/api/topics/{name}", get(topics::describe))
        .route("/api/topics/{name}/configs", put(topics::alter_configs))
        .route(
            "/api/topics/{name}/messages",
            get(messages::browse).post(messages::produce),
        )
        .route("/api/groups", get(groups::list))
        .route("/api/groups/{id}", get(groups::describe))
        .route("/api/groups/{id}/reset", post(groups::reset))
        .route(
            "/api/users",
            get(security::users).post(security::create_user),
        )
        .route("/api/users/{name}", delete(security::delete_user))
        .route(
            "/api/acls",
            get(security::acls)
                .post(security::create_acl)
                .delete(security::delete_acl),
        )
        .with_state(console)
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
}
