//! The listener: accepts connections up to max.connections, serves each in
//! its own task, and on shutdown stops accepting, lets every connection
//! answer what it has read, then closes the logs cleanly.

pub(crate) mod client_refusals;
mod connection;
mod frame;
mod prefixed;
pub(crate) mod refusals;

pub use connection::HeaderError;
pub(crate) use connection::Transport;
pub(crate) use connection::{Parsed, parse};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rill_storage::Disk;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::broker::{Broker, StartError};
use crate::cluster::{ControllerSlot, NodeLinks};
use crate::config::BrokerConfig;
use crate::listeners::Listener;
use crate::security::{ANONYMOUS, TlsError, TlsListener};
use crate::shutdown::Shutdown;
use bytes::Bytes;
use client_refusals::ClientRefusal;
use prefixed::Prefixed;
use refusals::{Refusal, Refusals};
use tokio::io::AsyncReadExt;

/// How long shutdown waits for connections to answer their in-flight
/// requests before closing the logs anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The bound listening sockets, one per listener, the inter-broker one
/// first.
#[derive(Debug)]
pub struct Server {
    bound: Vec<Bound>,
    /// The HTTP admin listener's socket, unless there is none.
    http: Option<crate::http::BoundHttp>,
}

/// One listener's socket.
#[derive(Debug)]
struct Bound {
    socket: TcpListener,
    local_addr: SocketAddr,
    listener: Arc<Listener>,
    /// A TLS listener's keys.
    tls: Option<Arc<TlsListener>>,
}

/// Why the listeners could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("listener {listener}: {error}")]
    Tls { listener: String, error: TlsError },
}

impl Server {
    /// Binds every listener of `config`, loading TLS listeners' keys.
    /// Port 0 picks a free port (see [`Server::local_addrs`]); a
    /// listener advertising port 0 then advertises that one.
    pub async fn bind(config: &BrokerConfig) -> Result<Server, BindError> {
        let mut bound = Vec::new();
        for listener in config.listeners.iter() {
            let tls = match config.tls.get(&listener.name) {
                Some(settings) => Some(Arc::new(
                    TlsListener::load(&listener.name, settings.clone()).map_err(|error| {
                        BindError::Tls {
                            listener: listener.name.clone(),
                            error,
                        }
                    })?,
                )),
                None => None,
            };
            let address = &listener.bind;
            let socket = listen(address.host.as_str(), address.port)
                .await
                .map_err(|error| {
                    std::io::Error::new(
                        error.kind(),
                        format!("cannot listen on {address} ({}): {error}", listener.name),
                    )
                })?;
            let local_addr = socket.local_addr()?;
            let mut listener = listener.clone();
            if listener.advertised.port == 0 {
                listener.advertised.port = local_addr.port();
            }
            bound.push(Bound {
                socket,
                local_addr,
                listener: Arc::new(listener),
                tls,
            });
        }
        let http = match &config.http_listener {
            Some(http) => http.bind().await?,
            None => None,
        };
        Ok(Server { bound, http })
    }

    /// The address of the HTTP admin listener's socket, if it has one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
            .as_ref()
            .and_then(crate::http::describe)
            .map(|(address, _)| address)
    }

    /// The address of the inter-broker listener's socket.
    pub fn local_addr(&self) -> SocketAddr {
        // `Listeners` holds one at least.
        self.bound.first().map_or_else(
            || SocketAddr::from(([0, 0, 0, 0], 0)),
            |bound| bound.local_addr,
        )
    }

    /// Each listener's name and bound address.
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.bound
            .iter()
            .map(|b| (b.listener.name.clone(), b.local_addr))
            .collect()
    }

    /// The listeners as bound: ports picked for port 0 advertised.
    fn listeners(&self) -> Vec<Listener> {
        self.bound.iter().map(|b| (*b.listener).clone()).collect()
    }

    /// Waits for a connection on any listener, trying them in turn from
    /// `start` so that a flood on one does not starve another.
    async fn accept(
        &self,
        start: usize,
    ) -> (std::io::Result<(TcpStream, SocketAddr)>, &Bound, usize) {
        std::future::poll_fn(|cx| {
            let count = self.bound.len();
            for turn in 0..count {
                let index = (start + turn) % count;
                let bound = &self.bound[index];
                if let std::task::Poll::Ready(accepted) = bound.socket.poll_accept(cx) {
                    return std::task::Poll::Ready((accepted, bound, index));
                }
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// Starts the broker — opening its logs, joining its metadata quorum —
    /// and serves until `stop` resolves; see [`Server::run_with_disk`].
    pub async fn run(
        self,
        config: BrokerConfig,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), RunError> {
        self.run_with_disk(config, Arc::new(rill_storage::RealDisk), stop)
            .await
    }

    /// Starts the broker — opening its logs (through `disk`: tests pass a
    /// faulty one), joining its metadata quorum — and serves until `stop`
    /// resolves, then drains connections and shuts the broker down cleanly
    /// (flush, checkpoints, clean-shutdown marker).
    ///
    /// The listener accepts from the start: a connection of another
    /// node's controller (a vote, a log to replicate while this one joins)
    /// is handed to this broker's controller as soon as it runs; a Kafka
    /// client's waits until the broker has started, then is served.
    pub async fn run_with_disk(
        mut self,
        mut config: BrokerConfig,
        disk: Arc<dyn Disk>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), RunError> {
        let (stopping, shutdown) = watch::channel(false);
        let shutdown = Shutdown::new(shutdown);
        let slot = ControllerSlot::default();
        let (ready, started) = watch::channel::<Option<Arc<Broker>>>(None);
        let connections_max = config.connections_max;
        let idle = Duration::from_millis(config.connection_idle_ms);
        let data: Vec<String> = config
            .log_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        for (listener, bound) in config.listeners.iter_mut().zip(self.listeners()) {
            *listener = bound;
        }
        let listening = self
            .bound
            .iter()
            .map(|b| {
                let l = &b.listener;
                format!(
                    "{} ({}, {}, advertised as {})",
                    b.local_addr, l.name, l.protocol, l.advertised
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let unauthenticated = unauthenticated_listeners(&config);
        let reload_every = Duration::from_millis(config.ssl_reload_check_interval_ms);
        let mut tls: Vec<Arc<TlsListener>> =
            self.bound.iter().filter_map(|b| b.tls.clone()).collect();
        tls.extend(self.http.as_ref().and_then(crate::http::BoundHttp::tls));
        let reloader = (!tls.is_empty()).then(|| tokio::spawn(reload_tls(tls, reload_every)));
        let refusal_spells = tokio::spawn(client_refusals::end_quiet_spells());
        let http = self.http.take().map(|bound| {
            if let Some((address, https)) = crate::http::describe(&bound) {
                let scheme = if https { "https" } else { "http" };
                tracing::info!(
                    "HTTP admin listener on {scheme}://{address} (the web console; /metrics, /health, /ready)"
                );
            }
            tokio::spawn(crate::http::serve(
                bound,
                started.clone(),
                config.metrics_partition_series_max,
                Duration::from_millis(config.console_history_interval_ms),
            ))
        });
        let links = Arc::new(NodeLinks::new(&config).map_err(StartError::from)?);
        let starting = Broker::start(config, disk, (&slot, &links));
        tokio::pin!(starting);
        let mut broker: Option<Arc<Broker>> = None;
        let mut timers = None;
        let permits = Arc::new(Semaphore::new(connections_max));
        let mut connections = JoinSet::new();
        let mut next_listener = 0;
        let mut refusals = Refusals::default();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                started = &mut starting, if broker.is_none() => {
                    let started = started?;
                    tracing::info!(
                        "rill broker {}: data in {}, listening on {listening}",
                        env!("CARGO_PKG_VERSION"),
                        data.join(","),
                    );
                    for listener in &unauthenticated {
                        tracing::warn!(
                            "listener {listener} is reachable beyond this machine and does not \
                             authenticate its clients: anyone who reaches it can read, write and \
                             delete every topic"
                        );
                    }
                    let groups = Arc::clone(started.groups()).run_timers(shutdown.clone());
                    let transactions =
                        Arc::clone(started.transactions()).run_timers(shutdown.clone());
                    let shares = Arc::clone(started.shares())
                        .run_timers(Arc::clone(&started), shutdown.clone());
                    timers = Some(tokio::spawn(async move {
                        tokio::join!(groups, transactions, shares);
                    }));
                    ready.send_replace(Some(Arc::clone(&started)));
                    broker = Some(started);
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                (accepted, bound, index) = self.accept(next_listener) => {
                    next_listener = index + 1;
                    let listener = Arc::clone(&bound.listener);
                    let tls = bound.tls.clone();
                    // Other nodes' controllers connect to the inter-broker
                    // listener only.
                    let slot = (index == 0).then(|| Arc::clone(&slot));
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            // EMFILE and friends: wait a moment rather than spin.
                            refusals.refused(Refusal::AcceptFailed, &error);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        if !refusals.refused(Refusal::AtMaxConnections, &connections_max) {
                            tracing::debug!(%peer, "max.connections reached; closing the new connection");
                        }
                        continue;
                    };
                    refusals.taken();
                    let started = started.clone();
                    let shutdown = shutdown.clone();
                    let links = Arc::clone(&links);
                    connections.spawn(async move {
                        route(stream, (peer, listener, tls), (slot, started, links), idle, shutdown).await;
                        drop(permit);
                    });
                }
            }
        }
        tracing::info!("shutting down: no new connections; answering in-flight requests");
        if let Some(timers) = timers {
            timers.abort();
        }
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        refusal_spells.abort();
        if let Some(http) = http {
            http.abort();
        }
        drop(self.bound);
        stopping.send_replace(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("connections did not finish in {DRAIN_TIMEOUT:?}; closing them");
            connections.shutdown().await;
        }
        let Some(broker) = broker else {
            tracing::info!("stopped while starting");
            return Ok(());
        };
        broker.leave_cluster().await;
        tokio::task::spawn_blocking(move || broker.shutdown())
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))?;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// Connections the kernel completes before the broker accepts them.
/// Beyond this a new connection's SYN is dropped and the client tries
/// again a second later: with the 128 that binding gave, 10,000 clients
/// connecting at once (tests/resource_bounds.rs) waited ~50 s, most of it
/// in those retries. The kernel caps it at net.core.somaxconn.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `host:port` (the first of its addresses that
/// binds), with [`LISTEN_BACKLOG`].
async fn listen(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for address in tokio::net::lookup_host((host, port)).await? {
        let socket = match address {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        };
        let bound = socket.and_then(|socket| {
            socket.set_reuseaddr(true)?;
            socket.bind(address)?;
            socket.listen(LISTEN_BACKLOG)
        });
        match bound {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

/// Why a broker stopped other than by request.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the broker: {0}")]
    Start(#[from] StartError),
    #[error("cannot close the logs cleanly: {0}")]
    Shutdown(#[from] rill_partition::ManagerError),
}

/// Bytes that tell a controller connection from a Kafka one: the frame
/// length and two more (see [`rill_cluster::is_controller_connection`]).
const ROUTE_BYTES: usize = 6;

/// Hands a new connection to this broker's controller or to the Kafka
/// request loop, by its first bytes; a Kafka connection waits for the
/// broker to have started.
///
/// A controller writes each frame whole, so its first six bytes arrive
/// together; a connection whose first bytes are fewer (a client sending
/// a byte at a time, a cut frame) is a Kafka one, and the request loop
/// deals with it as it always has.
async fn route(
    stream: TcpStream,
    (peer, listener, tls): (SocketAddr, Arc<Listener>, Option<Arc<TlsListener>>),
    (slot, mut started, links): (
        Option<ControllerSlot>,
        watch::Receiver<Option<Arc<Broker>>>,
        Arc<NodeLinks>,
    ),
    idle: Duration,
    mut shutdown: Shutdown,
) {
    let transport = match tls {
        Some(tls) => {
            let (mut stream, principal) = match tokio::time::timeout(idle, tls.accept(stream)).await
            {
                Ok(Ok(accepted)) => accepted,
                Ok(Err(error)) => {
                    let cause = format!("listener {}: {error}", listener.name);
                    client_refusals::refused(ClientRefusal::TlsHandshake, &peer, &cause);
                    return;
                }
                Err(_) => {
                    let cause = format!(
                        "listener {}: no TLS handshake within connections.max.idle.ms",
                        listener.name
                    );
                    client_refusals::refused(ClientRefusal::TlsHandshake, &peer, &cause);
                    return;
                }
            };
            // On the inter-broker listener another node's controller may
            // be calling: its first bytes tell.
            let mut head = Bytes::new();
            if let Some(slot) = slot {
                let mut first = [0u8; ROUTE_BYTES];
                match tokio::time::timeout(idle, stream.read_exact(&mut first)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) | Err(_) => return, // Closed, failed or silent.
                }
                if rill_cluster::is_controller_connection(&first) {
                    let stream = Prefixed::new(Bytes::copy_from_slice(&first), stream);
                    serve_controller(&slot, stream, (peer, &principal), &links).await;
                    return;
                }
                head = Bytes::copy_from_slice(&first);
            }
            Transport::Tls(Box::new(Prefixed::new(head, stream)), principal)
        }
        None => {
            let mut head = [0u8; ROUTE_BYTES];
            let peeked = match tokio::time::timeout(idle, stream.peek(&mut head)).await {
                Ok(Ok(0) | Err(_)) | Err(_) => return, // Closed, failed or silent.
                Ok(Ok(n)) => n,
            };
            if let Some(slot) = slot
                && peeked == ROUTE_BYTES
                && rill_cluster::is_controller_connection(&head)
            {
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
                }
                serve_controller(&slot, stream, (peer, ANONYMOUS), &links).await;
                return;
            }
            if head.starts_with(&TLS_HANDSHAKE_RECORD) {
                let cause = format!(
                    "a TLS client on a {} listener ({})",
                    listener.protocol, listener.name
                );
                client_refusals::refused(ClientRefusal::BadRequest, &peer, &cause);
                return;
            }
            Transport::Plain(stream)
        }
    };
    let broker = tokio::select! {
        started = started.wait_for(Option::is_some) => match started {
            Ok(broker) => broker.clone(),
            Err(_) => return,
        },
        () = shutdown.wait() => return,
    };
    if let Some(broker) = broker {
        connection::serve(transport, (peer, listener), broker, shutdown).await;
    }
}

/// Hands another node's controller connection to this node's controller,
/// if its principal is a node's (see `cluster::NodeLinks`).
async fn serve_controller(
    slot: &ControllerSlot,
    stream: impl rill_cluster::NodeStream,
    (peer, principal): (SocketAddr, &str),
    links: &NodeLinks,
) {
    if !links.admits(principal) {
        tracing::warn!(%peer, "{}; closed", crate::cluster::refusal(principal, peer));
        return;
    }
    match slot.get() {
        Some(controller) => controller.serve_connection(stream, peer).await,
        None => {
            tracing::debug!(%peer, "a controller connection before the controller runs; closed")
        }
    }
}

/// The first bytes of a TLS ClientHello: a handshake record of TLS 1.x.
/// As a Kafka frame it would announce 370 MB, so a plaintext listener
/// would refuse it anyway; this says why.
const TLS_HANDSHAKE_RECORD: [u8; 2] = [0x16, 0x03];

/// Checks every TLS listener's key and certificate files for changes,
/// `every` so often, until aborted.
async fn reload_tls(listeners: Vec<Arc<TlsListener>>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let listeners = listeners.clone();
        // Reading files and parsing keys blocks: off the reactor.
        if tokio::task::spawn_blocking(move || {
            for listener in &listeners {
                listener.reload_if_changed();
            }
        })
        .await
        .is_err()
        {
            return;
        }
    }
}

/// Kafka lets anyone in on a listener without authentication; so does
/// Rill, but says so of each listener reachable from elsewhere (as
/// `NAME (HOST:PORT)`).
fn unauthenticated_listeners(config: &BrokerConfig) -> Vec<String> {
    config
        .listeners
        .iter()
        .filter(|listener| {
            let host = listener.bind.host.as_str();
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            !loopback && !listener.protocol.uses_sasl()
        })
        .map(|listener| format!("{} ({})", listener.name, listener.bind))
        .collect()
}
