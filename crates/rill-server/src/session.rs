//! Who is at the other end of a connection: the address it came from,
//! the listener it came in on, and the principal it proved to be. Every
//! request a connection reads carries its session.

use std::sync::Arc;

use crate::authorizer::Decisions;
use crate::listeners::Listener;

#[derive(Debug)]
pub(crate) struct Session {
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
}

impl Session {
    pub(crate) fn new(
        peer: std::net::SocketAddr,
        listener: Arc<Listener>,
        principal: String,
    ) -> Session {
        Session {
            client_host: format!("/{}", peer.ip()).into(),
            host: rill_cluster::host_address(peer.ip()).into(),
            listener,
            principal,
            decisions: Decisions::default(),
        }
    }

    /// The session once SASL has authenticated `user`.
    pub(crate) fn authenticated(&self, user: &str) -> Session {
        Session {
            client_host: Arc::clone(&self.client_host),
            host: Arc::clone(&self.host),
            listener: Arc::clone(&self.listener),
            principal: format!("User:{user}"),
            decisions: Decisions::default(),
        }
    }
}
