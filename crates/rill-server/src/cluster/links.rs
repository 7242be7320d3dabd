//! How this node reaches the other nodes and knows them when they call.
//!
//! Nodes talk on the inter-broker listener (and a controller port of its
//! own, in a fixed quorum): the controllers' RPC (votes, log replication,
//! forwarded proposals and heartbeats) and replica fetches. On an `SSL`
//! inter-broker listener, every such connection is TLS both ways: the
//! node presents its listener's certificate and trusts the listener's
//! truststore (the cluster's CA), so nodes know each other by their
//! certificates (mutual TLS).
//!
//! With an authorizer, a controller connection is served only for a
//! principal in `super.users` — Kafka requires CLUSTER_ACTION for the
//! controllers' APIs, and their principals to be super users, since the
//! ACLs themselves come through that RPC. A replica fetch needs
//! CLUSTER_ACTION like any Fetch with a replica id (`apis/fetch`).

use std::net::SocketAddr;
use std::sync::Arc;

use rill_cluster::{Accept, Accepting, Acceptor, Connect, Connecting, Connector, NodeStream};
use tokio::net::TcpStream;

use crate::config::BrokerConfig;
use crate::listeners::SecurityProtocol;
use crate::security::{ANONYMOUS, TlsError, TlsListener};

/// See the module doc.
#[derive(Debug, Clone)]
pub(crate) struct NodeLinks {
    connector: Connector,
    acceptor: Acceptor,
    admission: Admission,
}

/// Who may speak the controller RPC.
#[derive(Debug, Clone)]
struct Admission {
    /// `None`: no authorizer, any node.
    super_users: Option<Arc<[String]>>,
}

impl Admission {
    fn admits(&self, principal: &str) -> bool {
        self.super_users
            .as_ref()
            .is_none_or(|users| users.iter().any(|user| user == principal))
    }
}

impl NodeLinks {
    /// As `config`'s inter-broker listener and authorizer say.
    pub(crate) fn new(config: &BrokerConfig) -> Result<NodeLinks, TlsError> {
        let admission = Admission {
            super_users: config
                .authorizer
                .as_ref()
                .map(|authorizer| authorizer.super_users.clone().into()),
        };
        let inter_broker = config.listeners.inter_broker();
        let tls = match (inter_broker.protocol, config.tls.get(&inter_broker.name)) {
            (SecurityProtocol::Ssl, Some(settings)) => Some(settings),
            _ => None,
        };
        let Some(settings) = tls else {
            return Ok(NodeLinks {
                connector: Connector::tcp(),
                acceptor: Acceptor::new(Guard {
                    tls: None,
                    admission: admission.clone(),
                }),
                admission,
            });
        };
        let client = tokio_rustls::TlsConnector::from(Arc::new(settings.client_config()?));
        let server = TlsListener::load(&inter_broker.name, settings.clone())?;
        Ok(NodeLinks {
            connector: Connector::new(TlsConnect(client)),
            acceptor: Acceptor::new(Guard {
                tls: Some(Arc::new(server)),
                admission: admission.clone(),
            }),
            admission,
        })
    }

    /// Opens this node's connections to the others.
    pub(crate) fn connector(&self) -> &Connector {
        &self.connector
    }

    /// Takes the others' connections on a controller port of its own.
    pub(crate) fn acceptor(&self) -> &Acceptor {
        &self.acceptor
    }

    /// Whether `principal` may speak the controller RPC.
    pub(crate) fn admits(&self, principal: &str) -> bool {
        self.admission.admits(principal)
    }
}

/// TLS to another node, with this node's certificate; the other node's
/// certificate must name the host connected to.
struct TlsConnect(tokio_rustls::TlsConnector);

impl Connect for TlsConnect {
    fn connect<'a>(&'a self, address: &'a str) -> Connecting<'a> {
        Box::pin(async move {
            let host = host_of(address);
            let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{host} cannot be checked against a certificate: {e}"),
                )
            })?;
            let socket = rill_cluster::tcp_connect(address).await?;
            let stream: Box<dyn NodeStream> = Box::new(self.0.connect(name, socket).await?);
            Ok(stream)
        })
    }
}

/// The host of `host:port` (`[::1]:9092` too).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The controller port's door: the TLS handshake when the nodes speak
/// TLS, then the principal's admission.
struct Guard {
    tls: Option<Arc<TlsListener>>,
    admission: Admission,
}

impl Accept for Guard {
    fn accept(&self, socket: TcpStream, peer: SocketAddr) -> Accepting {
        let tls = self.tls.clone();
        let admission = self.admission.clone();
        Box::pin(async move {
            socket.set_nodelay(true)?;
            let (stream, principal): (Box<dyn NodeStream>, String) = match tls {
                Some(tls) => {
                    let (stream, principal) = tls.accept(socket).await.map_err(|e| {
                        std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string())
                    })?;
                    (Box::new(stream), principal)
                }
                None => (Box::new(socket), ANONYMOUS.to_string()),
            };
            if !admission.admits(&principal) {
                return Err(refusal(&principal, peer));
            }
            Ok(stream)
        })
    }
}

/// Why a controller connection is closed: its principal is not a node's.
pub(crate) fn refusal(principal: &str, peer: SocketAddr) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "{principal} from {peer} is not in super.users: only the nodes may speak the controller RPC"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_an_address_is_what_the_certificate_must_name() {
        assert_eq!(host_of("node-1.rill.internal:9092"), "node-1.rill.internal");
        assert_eq!(host_of("127.0.0.1:9092"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9092"), "::1");
    }

    #[test]
    fn without_an_authorizer_any_node_is_admitted_and_with_one_only_super_users() {
        let open = Admission { super_users: None };
        assert!(open.admits(ANONYMOUS));
        let closed = Admission {
            super_users: Some(vec!["User:node".to_string()].into()),
        };
        assert!(closed.admits("User:node"));
        assert!(!closed.admits(ANONYMOUS));
        assert!(!closed.admits("User:alice"));
    }
}
