//! The harness of the quorum tests: controllers in this process on
//! loopback ports, each with its own directory, and waits bounded by a
//! deadline.
#![allow(dead_code, clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rill_cluster::{
    Acceptor, Bootstrap, ClusterMetadata, ClusterSettings, Connector, Controller, ControllerConfig,
    NodeId, RaftSettings,
};

/// How long any condition may take before the test fails. A bound, not a
/// measurement: healthy runs take well under a second per step.
pub const DEADLINE: Duration = Duration::from_secs(30);
pub const POLL: Duration = Duration::from_millis(20);

/// Timeouts turned down for tests.
pub fn settings() -> RaftSettings {
    RaftSettings {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        propose_timeout_ms: 5_000,
        ..RaftSettings::default()
    }
}

/// A loopback port nothing listens on now, below the kernel's ephemeral
/// range (32768 and up by default): a controller stopped and started again
/// on its port must find it free, and an outgoing connection of anything
/// else running could take an ephemeral port in between.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread the processes that run at once; each then walks upwards.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % 8_000) as u16;
    loop {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(step < 8_000, "no free loopback port below 32768");
        let port = 20_000 + (offset + step) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub struct Cluster {
    _root: tempfile::TempDir,
    pub dirs: BTreeMap<NodeId, PathBuf>,
    pub voters: BTreeMap<NodeId, String>,
    pub raft: RaftSettings,
    pub cluster: ClusterSettings,
    pub nodes: BTreeMap<NodeId, Controller>,
}

impl Cluster {
    pub async fn start(size: u64) -> Cluster {
        Cluster::start_with(size, settings(), ClusterSettings::default()).await
    }

    pub async fn start_with(size: u64, raft: RaftSettings, cluster: ClusterSettings) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let voters: BTreeMap<NodeId, String> = (1..=size)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        let dirs = voters
            .keys()
            .map(|id| (*id, root.path().join(format!("node-{id}"))))
            .collect();
        let mut cluster = Cluster {
            _root: root,
            dirs,
            voters,
            raft,
            cluster,
            nodes: BTreeMap::new(),
        };
        for id in 1..=size {
            cluster.start_node(id).await;
        }
        cluster
    }

    pub async fn start_node(&mut self, id: NodeId) {
        let config = ControllerConfig {
            node_id: id,
            listen: Some(self.voters[&id].parse().unwrap()),
            bootstrap: Bootstrap::Voters(self.voters.clone()),
            data_dir: self.dirs[&id].clone(),
            raft: self.raft,
            cluster: self.cluster,
            connector: Connector::tcp(),
            acceptor: Acceptor::tcp(),
        };
        let controller = Controller::start(config).await.unwrap();
        self.nodes.insert(id, controller);
    }

    /// Any running controller.
    pub fn any(&self) -> &Controller {
        self.nodes.values().next().unwrap()
    }

    pub async fn stop_node(&mut self, id: NodeId) {
        self.nodes.remove(&id).unwrap().shutdown().await;
    }

    /// The leader every running node agrees on.
    pub async fn agreed_leader(&self) -> NodeId {
        wait_for("all running controllers to agree on a leader", || {
            let leaders: BTreeSet<_> = self.nodes.values().map(|c| c.leader()).collect();
            match leaders.into_iter().collect::<Vec<_>>().as_slice() {
                [Some(leader)] if self.nodes.contains_key(leader) => Some(*leader),
                _ => None,
            }
        })
        .await
    }

    /// Waits until every running node has applied the same metadata and
    /// it passes `check`; returns it.
    pub async fn converged(
        &self,
        what: &str,
        check: impl Fn(&ClusterMetadata) -> bool,
    ) -> ClusterMetadata {
        wait_for(what, || {
            let states: Vec<_> = self.nodes.values().map(|c| c.metadata()).collect();
            let first = states.first()?;
            (states.iter().all(|s| s == first) && check(first))
                .then(|| ClusterMetadata::clone(first))
        })
        .await
    }

    pub async fn shutdown(self) {
        for (_, controller) in self.nodes {
            controller.shutdown().await;
        }
    }
}

pub async fn wait_for<T>(what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}
