//! A handle that says when the broker is shutting down: what long polls,
//! connections and timers wait on to end. Clone freely.

use tokio::sync::watch;

/// See the module doc.
#[derive(Clone, Debug)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Follows `stopping`, which turns true when shutdown begins.
    pub(crate) fn new(stopping: watch::Receiver<bool>) -> Shutdown {
        Shutdown(stopping)
    }

    /// Resolves once shutdown has begun.
    pub(crate) async fn wait(&mut self) {
        // An error means the sender is gone, which also means shutdown.
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}
