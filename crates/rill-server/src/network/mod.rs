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

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::HostPort;

/// How long shutdown waits for connections to answer their in-flight
/// requests before closing the logs anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A handle that says when the broker is shutting down. Clone freely.
#[derive(Clone, Debug)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Resolves once shutdown has begun.
    pub(crate) async fn wait(&mut self) {
        // An error means the sender is gone, which also means shutdown.
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

/// A bound listening socket.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl Server {
    /// Binds the listener (`listeners`). Port 0 picks a free port; see
    /// [`Server::local_addr`].
    pub async fn bind(listen: &HostPort) -> std::io::Result<Server> {
        let listener = TcpListener::bind((listen.host.as_str(), listen.port)).await?;
        let local_addr = listener.local_addr()?;
        Ok(Server {
            listener,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `stop` resolves, then drains connections and shuts the
    /// broker down cleanly (flush, checkpoints, clean-shutdown marker).
    pub async fn run(
        self,
        broker: Arc<Broker>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), rill_partition::ManagerError> {
        let (stopping, shutdown) = watch::channel(false);
        let shutdown = Shutdown(shutdown);
        let timers = tokio::spawn(crate::groups::Groups::run_timers(Arc::downgrade(&broker)));
        let connections_max = broker.config().connections_max;
        let permits = Arc::new(Semaphore::new(connections_max));
        let mut connections = JoinSet::new();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = self.listener.accept() => {
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
                    let broker = Arc::clone(&broker);
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        connection::serve(stream, peer, broker, shutdown).await;
                        drop(permit);
                    });
                }
            }
        }
        tracing::info!("shutting down: no new connections; answering in-flight requests");
        timers.abort();
        drop(self.listener);
        stopping.send_replace(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("connections did not finish in {DRAIN_TIMEOUT:?}; closing them");
            connections.shutdown().await;
        }
        broker.leave_cluster().await;
        tokio::task::spawn_blocking(move || broker.shutdown())
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))?;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}
