//! Who is at the other end of a connection: the address it came from,
//! the listener it came in on, and the principal it proved to be. Every
//! request a connection reads carries its session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::authorizer::Decisions;
use crate::listeners::Listener;

/// Numbers the connections of this process.
static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug)]
pub(crate) struct Session {
    /// Which connection this is: unique in the process, kept across SASL.
    pub connection_id: u64,
    /// The client's address as Kafka reports it (`/127.0.0.1`).
    pub client_host: Arc<str>,
    /// The client's address as ACLs name hosts (`127.0.0.1`).
    pub host: Arc<str>,
    pub listener: Arc<Listener>,
    /// `User:NAME`: from SASL, else from the client's TLS certificate,
    /// else User:ANONYMOUS.
    pub principal: String,
    /// The authorizer's decisions for this connection.
    pub decisions: Decisions,
    /// Until when a quota holds the connection: it reads no request
    /// before then (Kafka mutes the channel).
    throttled_until: Mutex<Option<Instant>>,
    /// Until a request handled last has done what must precede the next
    /// one (a produce verifying its transaction elsewhere writes its
    /// batches): the connection reads no request before then.
    paused: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Session {
    pub(crate) fn new(
        peer: std::net::SocketAddr,
        listener: Arc<Listener>,
        principal: String,
    ) -> Session {
        Session {
            connection_id: CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            client_host: format!("/{}", peer.ip()).into(),
            host: rill_cluster::host_address(peer.ip()).into(),
            listener,
            principal,
            decisions: Decisions::default(),
            throttled_until: Mutex::new(None),
            paused: Mutex::new(None),
        }
    }

    /// The session once SASL has authenticated `user`.
    pub(crate) fn authenticated(&self, user: &str) -> Session {
        Session {
            connection_id: self.connection_id,
            client_host: Arc::clone(&self.client_host),
            host: Arc::clone(&self.host),
            listener: Arc::clone(&self.listener),
            principal: format!("User:{user}"),
            decisions: Decisions::default(),
            throttled_until: Mutex::new(
                *self
                    .throttled_until
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            ),
            paused: Mutex::new(None),
        }
    }

    /// Holds the connection for `throttle_ms` from now (or longer, if
    /// it is held longer already).
    pub(crate) fn throttle(&self, throttle_ms: u64) {
        if throttle_ms == 0 {
            return;
        }
        let until = Instant::now() + Duration::from_millis(throttle_ms);
        let mut held = self
            .throttled_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if held.is_none_or(|held| held < until) {
            *held = Some(until);
        }
    }

    /// Until when the connection is held, if it still is.
    pub(crate) fn throttled_until(&self) -> Option<Instant> {
        let held = *self
            .throttled_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        held.filter(|until| *until > Instant::now())
    }

    /// Holds the connection's next request until `done` fires (or its
    /// sender is dropped).
    pub(crate) fn pause_until(&self, done: oneshot::Receiver<()>) {
        *self.paused.lock().unwrap_or_else(|e| e.into_inner()) = Some(done);
    }

    /// What the connection must wait for before reading on, if anything.
    pub(crate) fn take_pause(&self) -> Option<oneshot::Receiver<()>> {
        self.paused.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
