//! Long synchronous work on a runtime worker, without starving the tasks
//! queued behind it.
//!
//! Handlers run their file work (appends, which may reserve and open
//! files) on the connection's task: for one partition that is
//! microseconds. A request naming thousands of partitions can take
//! seconds, and meanwhile the worker's other tasks wait — a broker's
//! heartbeat and the controller's liveness checks among them, so that a
//! busy broker once fenced itself. Measured: a first produce to 50,000
//! partitions stalled the runtime for 7.9 s.

/// Runs `work` here, having told a multi-threaded runtime first
/// (`block_in_place`), which moves this worker's other tasks to another
/// thread for the while. On any other runtime, or none, it just runs.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
