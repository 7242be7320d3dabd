//! Who is at the other end of a connection: the address it came from and
//! the listener it came in on. Every request a connection reads carries
//! its session.

use std::sync::Arc;

use crate::listeners::Listener;

#[derive(Debug)]
pub(crate) struct Session {
    /// The client's address as Kafka reports it (`/127.0.0.1`).
    pub client_host: Arc<str>,
    pub listener: Arc<Listener>,
}

impl Session {
    pub(crate) fn new(peer: std::net::SocketAddr, listener: Arc<Listener>) -> Session {
        Session {
            client_host: format!("/{}", peer.ip()).into(),
            listener,
        }
    }
}
