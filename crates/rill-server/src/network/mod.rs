//! The listener: accepts connections up to max.connections, serves each in
//! its own task, and on shutdown stops accepting, lets every connection
//! answer what it has read, then closes the logs cleanly.

mod connection;
mod frame;

pub use connection::HeaderError;
pub(crate) use connection::{Parsed, parse};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rill_storage::Disk;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::broker::{Broker, StartError};
use crate::cluster::ControllerSlot;
use crate::config::BrokerConfig;
use crate::listeners::{Listener, Listeners};
use crate::shutdown::Shutdown;

/// How long shutdown waits for connections to answer their in-flight
/// requests before closing the logs anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The bound listening sockets, one per listener, the inter-broker one
/// first.
#[derive(Debug)]
pub struct Server {
    bound: Vec<Bound>,
}

/// One listener's socket.
#[derive(Debug)]
struct Bound {
    socket: TcpListener,
    local_addr: SocketAddr,
    listener: Arc<Listener>,
}

impl Server {
    /// Binds every listener. Port 0 picks a free port (see
    /// [`Server::local_addrs`]); a listener advertising port 0 then
    /// advertises that one.
    pub async fn bind(listeners: &Listeners) -> std::io::Result<Server> {
        let mut bound = Vec::new();
        for listener in listeners.iter() {
            let address = &listener.bind;
            let socket = TcpListener::bind((address.host.as_str(), address.port))
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
            });
        }
        Ok(Server { bound })
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
    ) -> (
        std::io::Result<(TcpStream, SocketAddr)>,
        &Arc<Listener>,
        usize,
    ) {
        std::future::poll_fn(|cx| {
            let count = self.bound.len();
            for turn in 0..count {
                let index = (start + turn) % count;
                let bound = &self.bound[index];
                if let std::task::Poll::Ready(accepted) = bound.socket.poll_accept(cx) {
                    return std::task::Poll::Ready((accepted, &bound.listener, index));
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
        self,
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
        let starting = Broker::start(config, disk, &slot);
        tokio::pin!(starting);
        let mut broker: Option<Arc<Broker>> = None;
        let mut timers = None;
        let permits = Arc::new(Semaphore::new(connections_max));
        let mut connections = JoinSet::new();
        let mut next_listener = 0;
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
                    timers = Some(tokio::spawn(
                        Arc::clone(started.groups()).run_timers(shutdown.clone()),
                    ));
                    ready.send_replace(Some(Arc::clone(&started)));
                    broker = Some(started);
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                (accepted, listener, index) = self.accept(next_listener) => {
                    next_listener = index + 1;
                    let listener = Arc::clone(listener);
                    // Other nodes' controllers connect to the inter-broker
                    // listener only.
                    let slot = (index == 0).then(|| Arc::clone(&slot));
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            // EMFILE and friends: wait a moment rather than spin.
                            tracing::warn!(%error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        tracing::warn!(%peer, connections_max, "max.connections reached; closing the new connection");
                        continue;
                    };
                    let started = started.clone();
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        route(stream, (peer, listener), (slot, started), idle, shutdown).await;
                        drop(permit);
                    });
                }
            }
        }
        tracing::info!("shutting down: no new connections; answering in-flight requests");
        if let Some(timers) = timers {
            timers.abort();
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
    (peer, listener): (SocketAddr, Arc<Listener>),
    (slot, mut started): (Option<ControllerSlot>, watch::Receiver<Option<Arc<Broker>>>),
    idle: Duration,
    mut shutdown: Shutdown,
) {
    let mut head = [0u8; ROUTE_BYTES];
    let peeked = match tokio::time::timeout(idle, stream.peek(&mut head)).await {
        Ok(Ok(0) | Err(_)) | Err(_) => return, // Closed, failed or silent.
        Ok(Ok(n)) => n,
    };
    if let Some(slot) = slot
        && peeked == ROUTE_BYTES
        && rill_cluster::is_controller_connection(&head)
    {
        match slot.get() {
            Some(controller) => controller.serve_connection(stream).await,
            None => {
                tracing::debug!(%peer, "a controller connection before the controller runs; closed")
            }
        }
        return;
    }
    let broker = tokio::select! {
        started = started.wait_for(Option::is_some) => match started {
            Ok(broker) => broker.clone(),
            Err(_) => return,
        },
        () = shutdown.wait() => return,
    };
    if let Some(broker) = broker {
        connection::serve(stream, (peer, listener), broker, shutdown).await;
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
