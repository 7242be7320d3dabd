//! How a node opens connections to the other nodes' controllers, and
//! accepts theirs on a controller port of its own: plain TCP, or what its
//! owner supplies — a broker whose inter-broker listener speaks TLS
//! connects with TLS, presenting its certificate, and accepts only nodes
//! that present theirs (rill-server's `NodeTls`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream between two nodes.
pub trait NodeStream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> NodeStream for T {}

/// A connection being opened.
pub type Connecting<'a> =
    Pin<Box<dyn Future<Output = io::Result<Box<dyn NodeStream>>> + Send + 'a>>;

/// Opens a connection to `host:port`.
pub trait Connect: Send + Sync {
    fn connect<'a>(&'a self, address: &'a str) -> Connecting<'a>;
}

/// How a node connects to the others: shared by its controller's peers,
/// its brokers' client of the quorum and its replica fetchers.
#[derive(Clone)]
pub struct Connector(Arc<dyn Connect>);

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector")
    }
}

impl Connector {
    /// Plain TCP, no delay.
    pub fn tcp() -> Connector {
        Connector(Arc::new(Tcp))
    }

    pub fn new(connect: impl Connect + 'static) -> Connector {
        Connector(Arc::new(connect))
    }

    pub async fn connect(&self, address: &str) -> io::Result<Box<dyn NodeStream>> {
        self.0.connect(address).await
    }
}

impl Default for Connector {
    fn default() -> Connector {
        Connector::tcp()
    }
}

/// An accepted connection being vetted.
pub type Accepting = Pin<Box<dyn Future<Output = io::Result<Box<dyn NodeStream>>> + Send>>;

/// Vets a connection accepted on the controller port: the stream to serve,
/// or an error (the connection is closed).
pub trait Accept: Send + Sync {
    fn accept(&self, stream: TcpStream, peer: SocketAddr) -> Accepting;
}

/// How a controller with a port of its own takes its peers' connections.
#[derive(Clone)]
pub struct Acceptor(Arc<dyn Accept>);

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor")
    }
}

impl Acceptor {
    /// Plain TCP: every connection, no delay.
    pub fn tcp() -> Acceptor {
        Acceptor(Arc::new(Tcp))
    }

    pub fn new(accept: impl Accept + 'static) -> Acceptor {
        Acceptor(Arc::new(accept))
    }

    pub async fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> io::Result<Box<dyn NodeStream>> {
        self.0.accept(stream, peer).await
    }
}

impl Default for Acceptor {
    fn default() -> Acceptor {
        Acceptor::tcp()
    }
}

/// A TCP connection to `address`, with TCP_NODELAY: small RPCs and
/// fetches, where waiting to fill a segment only adds latency.
pub async fn tcp_connect(address: &str) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

struct Tcp;

impl Connect for Tcp {
    fn connect<'a>(&'a self, address: &'a str) -> Connecting<'a> {
        Box::pin(async move {
            let stream: Box<dyn NodeStream> = Box::new(tcp_connect(address).await?);
            Ok(stream)
        })
    }
}

impl Accept for Tcp {
    fn accept(&self, stream: TcpStream, _peer: SocketAddr) -> Accepting {
        Box::pin(async move {
            stream.set_nodelay(true)?;
            let stream: Box<dyn NodeStream> = Box::new(stream);
            Ok(stream)
        })
    }
}
