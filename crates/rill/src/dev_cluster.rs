//! `rill dev cluster`: a cluster of N brokers on this machine, each a child
//! process of this one (`rill broker` with its own node id, ports and data
//! directory, every one a controller of the metadata quorum), to try
//! replication and failover locally. It prints the bootstrap servers on
//! stdout once every broker accepts connections and is an unfenced member
//! of the cluster, then watches: SIGINT or
//! SIGTERM stops every broker and exits 0; a broker exiting on its own
//! stops the others and fails.
//!
//! The brokers share this process's stderr (their logs) and process group,
//! so Ctrl-C in a terminal reaches them too; each then stops once, on the
//! first signal it sees.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::client::key_value;
use crate::cluster_status::describe_cluster;
use crate::connection::Connection;

/// The most nodes: one digit of node id, and ports 100 apart stay within
/// a block of 900.
const NODES_MAX: i64 = 9;
/// Ports between one node's client port and the next node's.
const PORT_STRIDE: u32 = 100;
/// How long every node together may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the nodes may take to shut down after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the nodes are checked for exits and readiness.
const POLL: Duration = Duration::from_millis(100);
/// How long node 1 may take to connect and answer DescribeCluster during
/// start-up before it is asked again.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rill dev cluster\n  \
    rill dev cluster --nodes 5 --data /tmp/rill-cluster\n  \
    rill dev cluster --base-port 19092 --set broker.session.timeout.ms=3000\n\n\
    Node i (1-based) listens for clients on 127.0.0.1:P+100*(i-1), runs its\n\
    controller on the port after that and serves HTTP (/metrics, /health,\n\
    /ready) on the next, with its data in DIR/node-i; with the defaults,\n\
    9092/9093/9094, 9192/9193/9194 and 9292/9293/9294. Once every node accepts\n\
    connections and node 1 lists them all as live (unfenced) brokers, one\n\
    line goes to stdout, the bootstrap servers:\n  \
    127.0.0.1:9092,127.0.0.1:9192,127.0.0.1:9292\n\n\
    Ctrl-C (SIGINT) or SIGTERM stops every node and exits 0; a second one\n\
    kills the nodes still running. A node exiting on its own stops the\n\
    others, and the command fails naming it. Data stays for the next run.")]
pub(crate) struct DevClusterArgs {
    /// How many nodes, 1 to 9; every one is a broker and a controller.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        value_parser = clap::value_parser!(u16).range(1..=NODES_MAX)
    )]
    nodes: u16,
    /// Where the nodes keep their data: DIR/node-1, DIR/node-2, ...
    #[arg(long, value_name = "DIR", default_value = "./rill-dev-cluster")]
    data: PathBuf,
    /// Node 1's client port; node i's is P + 100*(i-1), its controller's
    /// the port after that.
    #[arg(
        long,
        value_name = "P",
        default_value_t = 9092,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    base_port: u16,
    /// A broker property for every node, as `rill broker --set` takes it
    /// (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Where one node listens and keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodePlan {
    /// The node id, 1-based.
    id: u16,
    /// Where Kafka clients connect.
    client: SocketAddrV4,
    /// Where the other controllers connect.
    controller: SocketAddrV4,
    /// Its HTTP admin listener.
    http: SocketAddrV4,
    data: PathBuf,
}

pub(crate) fn run(args: DevClusterArgs) -> anyhow::Result<()> {
    let plans = plan(args.nodes, args.base_port, &args.data)?;
    for assignment in &args.set {
        key_value("--set", assignment)?;
    }
    check_ports_free(&plans)?;
    for plan in &plans {
        std::fs::create_dir_all(&plan.data).with_context(|| {
            format!(
                "cannot create node {}'s data directory {}",
                plan.id,
                plan.data.display()
            )
        })?;
    }
    let program =
        std::env::current_exe().context("cannot find this program to start the brokers")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime to watch the brokers")?;
    runtime.block_on(supervise(&program, &plans, &args.set))
}

/// The nodes' addresses and directories: node i on base + 100*(i-1) and
/// the two ports after it; an error when the last port passes 65535.
fn plan(nodes: u16, base_port: u16, data: &Path) -> anyhow::Result<Vec<NodePlan>> {
    assert!(
        (1..=NODES_MAX).contains(&i64::from(nodes)),
        "clap bounds --nodes"
    );
    let last_port = u32::from(base_port) + PORT_STRIDE * u32::from(nodes - 1) + 2;
    if last_port > u32::from(u16::MAX) {
        let base_max = u32::from(u16::MAX) - PORT_STRIDE * u32::from(nodes - 1) - 2;
        bail!(
            "--base-port {base_port} with --nodes {nodes}: node {nodes}'s HTTP port would be \
             {last_port}, above 65535; expected --base-port at most {base_max}"
        );
    }
    // No port is above the last node's HTTP port, checked above.
    let port = |offset: u32| -> anyhow::Result<u16> {
        let port = u32::from(base_port) + offset;
        u16::try_from(port).with_context(|| format!("port {port} is above 65535"))
    };
    (1..=nodes)
        .map(|id| {
            let client = PORT_STRIDE * u32::from(id - 1);
            Ok(NodePlan {
                id,
                client: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port(client)?),
                controller: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port(client + 1)?),
                http: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port(client + 2)?),
                data: data.join(format!("node-{id}")),
            })
        })
        .collect()
}

/// `1@127.0.0.1:9093,2@127.0.0.1:9193,...`: controller.quorum.voters.
fn quorum(plans: &[NodePlan]) -> String {
    plans
        .iter()
        .map(|p| format!("{}@{}", p.id, p.controller))
        .collect::<Vec<_>>()
        .join(",")
}

/// `127.0.0.1:9092,127.0.0.1:9192,...`: bootstrap.servers.
fn bootstrap(plans: &[NodePlan]) -> String {
    plans
        .iter()
        .map(|p| p.client.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Refuses to start when something listens on a node's port already: its
/// "ready" would otherwise be another program's.
fn check_ports_free(plans: &[NodePlan]) -> anyhow::Result<()> {
    for plan in plans {
        for (address, role) in [
            (plan.client, "client"),
            (plan.controller, "controller"),
            (plan.http, "HTTP"),
        ] {
            if let Err(error) = std::net::TcpListener::bind(address) {
                bail!(
                    "node {}'s {role} port {address} is not free ({error}): stop what listens \
                     there or choose another --base-port",
                    plan.id
                );
            }
        }
    }
    Ok(())
}

/// What ended a wait on the nodes.
#[derive(Debug)]
enum Event {
    /// SIGINT or SIGTERM: a stop asked for.
    Signal(&'static str),
    /// A node exited without being asked to.
    Exited { node: u16, status: ExitStatus },
}

async fn supervise(program: &Path, plans: &[NodePlan], set: &[String]) -> anyhow::Result<()> {
    // Before the first spawn: a signal during start-up stops what started.
    let mut signals = Signals::install()?;
    let mut nodes = Nodes::default();
    let voters = quorum(plans);
    for plan in plans {
        if let Err(error) = nodes.spawn(program, plan, &voters, set) {
            nodes.stop(&mut signals).await;
            return Err(error);
        }
    }
    let event = match wait_until_ready(&mut nodes, &mut signals).await {
        Ok(None) => {
            let servers = bootstrap(plans);
            if let Err(error) = print_line(&servers) {
                nodes.stop(&mut signals).await;
                return Err(error.context("cannot print the bootstrap servers"));
            }
            eprintln!(
                "rill dev cluster: every node is up and a live broker of the cluster; \
                 bootstrap servers {servers}; Ctrl-C stops them"
            );
            watch(&mut nodes, &mut signals).await
        }
        Ok(Some(event)) => event,
        Err(error) => {
            nodes.stop(&mut signals).await;
            return Err(error);
        }
    };
    match event {
        Event::Signal(name) => {
            eprintln!("rill dev cluster: {name} received; stopping every node");
            nodes.stop(&mut signals).await;
            Ok(())
        }
        Event::Exited { node, status } => {
            eprintln!("rill dev cluster: node {node} exited ({status}); stopping the others");
            nodes.stop(&mut signals).await;
            bail!("node {node} exited on its own ({status}); stopped the other nodes")
        }
    }
}

fn print_line(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Waits until every node accepts TCP connections on its client port and
/// then until node 1 lists every node as an unfenced broker of the
/// cluster (`None`: ready), or a signal or a node's exit comes first; an
/// error when READY_TIMEOUT passes first. Accepting connections is not
/// enough: a broker registers fenced and is unfenced a heartbeat later, and
/// until then the cluster cannot place replicas on it.
async fn wait_until_ready(
    nodes: &mut Nodes,
    signals: &mut Signals,
) -> anyhow::Result<Option<Event>> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let plans: Vec<NodePlan> = nodes.running.iter().map(|n| n.plan.clone()).collect();
    let mut listening = vec![false; plans.len()];
    loop {
        if let Some(event) = next_event(nodes, signals).await {
            return Ok(Some(event));
        }
        for (plan, listening) in plans.iter().zip(&mut listening) {
            if !*listening {
                let connected =
                    tokio::time::timeout(POLL, tokio::net::TcpStream::connect(plan.client)).await;
                *listening = matches!(connected, Ok(Ok(_)));
            }
        }
        let waiting = match plans
            .iter()
            .zip(&listening)
            .find(|(_, listening)| !**listening)
        {
            Some((plan, _)) => Some(format!(
                "node {} does not accept connections on {}",
                plan.id, plan.client
            )),
            None => not_yet_alive(&plans).map(|id| {
                format!(
                    "node {id} accepts connections but is not an unfenced broker of the cluster \
                     (as node 1 describes it)"
                )
            }),
        };
        let Some(waiting) = waiting else {
            return Ok(None);
        };
        if Instant::now() >= deadline {
            bail!(
                "{waiting} {} s after the start; stopped every node",
                READY_TIMEOUT.as_secs()
            );
        }
    }
}

/// The first node that node 1's DescribeCluster does not list as an
/// unfenced broker; `None` when every node is, or when the broker does
/// not answer DescribeCluster (then only connections can be waited for).
/// Blocks for up to DESCRIBE_TIMEOUT per step; a signal waits that long
/// at most.
fn not_yet_alive(plans: &[NodePlan]) -> Option<u16> {
    let first = plans.first()?;
    let not_yet = Some(first.id);
    let Ok(mut connection) = Connection::open(&first.client.to_string(), DESCRIBE_TIMEOUT) else {
        return not_yet;
    };
    let described = match describe_cluster(&mut connection) {
        Ok(Some((_, described))) => described,
        Ok(None) => return None,
        Err(error) => {
            tracing::debug!("DescribeCluster to node {}: {error:#}", first.id);
            return not_yet;
        }
    };
    plans
        .iter()
        .find(|plan| {
            !described
                .brokers
                .iter()
                .any(|b| b.broker_id.0 == i32::from(plan.id) && !b.is_fenced)
        })
        .map(|plan| plan.id)
}

/// Waits for a signal or a node's exit.
async fn watch(nodes: &mut Nodes, signals: &mut Signals) -> Event {
    loop {
        if let Some(event) = next_event(nodes, signals).await {
            return event;
        }
    }
}

/// Waits up to POLL for a signal, then looks for an exited node.
async fn next_event(nodes: &mut Nodes, signals: &mut Signals) -> Option<Event> {
    tokio::select! {
        biased;
        name = signals.next() => return Some(Event::Signal(name)),
        () = tokio::time::sleep(POLL) => {}
    }
    let mut exited = nodes.reap().into_iter();
    let (node, status) = exited.next()?;
    for (other, status) in exited {
        eprintln!("rill dev cluster: node {other} exited too ({status})");
    }
    // Ctrl-C reaches the nodes too, and one may stop before this process
    // has seen its own SIGINT: a signal just after an exit means a stop.
    tokio::select! {
        biased;
        name = signals.next() => Some(Event::Signal(name)),
        () = tokio::time::sleep(POLL) => Some(Event::Exited { node, status }),
    }
}

/// SIGINT and SIGTERM, caught.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
        })
    }

    /// The next signal's name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            Some(()) = self.interrupt.recv() => "SIGINT",
            Some(()) = self.terminate.recv() => "SIGTERM",
            // Both streams ended (tokio's driver gone): no signal will come.
            else => std::future::pending().await,
        }
    }
}

/// One node's process, until it has exited and been reaped.
struct RunningNode {
    plan: NodePlan,
    child: Child,
}

/// The nodes still running. Dropping it kills and reaps them: no broker
/// outlives the command, whichever way it ends.
#[derive(Default)]
struct Nodes {
    running: Vec<RunningNode>,
}

impl Nodes {
    fn spawn(
        &mut self,
        program: &Path,
        plan: &NodePlan,
        voters: &str,
        set: &[String],
    ) -> anyhow::Result<()> {
        // A broker prints nothing on stdout, but this command's stdout is
        // the bootstrap line only: anything a broker did print goes to stderr.
        let stdout = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot duplicate stderr for the brokers")?;
        let mut command = Command::new(program);
        command
            .arg("broker")
            .arg("--node-id")
            .arg(plan.id.to_string())
            .arg("--controller-quorum")
            .arg(voters)
            .arg("--listen")
            .arg(plan.client.to_string())
            .arg("--http")
            .arg(plan.http.to_string())
            .arg("--data")
            .arg(&plan.data);
        for assignment in set {
            command.arg("--set").arg(assignment);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start node {} ({})", plan.id, program.display()))?;
        eprintln!(
            "rill dev cluster: node {}: pid {}, clients on {}, controller on {}, HTTP on {}, data in {}",
            plan.id,
            child.id(),
            plan.client,
            plan.controller,
            plan.http,
            plan.data.display()
        );
        self.running.push(RunningNode {
            plan: plan.clone(),
            child,
        });
        Ok(())
    }

    /// Reaps the nodes that have exited: their ids and exit statuses.
    fn reap(&mut self) -> Vec<(u16, ExitStatus)> {
        let mut exited = Vec::new();
        self.running.retain_mut(|node| match node.child.try_wait() {
            Ok(Some(status)) => {
                exited.push((node.plan.id, status));
                false
            }
            Ok(None) => true,
            Err(error) => {
                // Not ours to wait for any more (ECHILD): nothing to stop.
                tracing::warn!("cannot wait for node {}: {error}", node.plan.id);
                false
            }
        });
        exited
    }

    /// SIGTERM to every node, then waits up to STOP_TIMEOUT for them all;
    /// SIGKILL for those still running then, or at a second signal.
    async fn stop(&mut self, signals: &mut Signals) {
        for (node, status) in self.reap() {
            eprintln!("rill dev cluster: node {node} had stopped ({status})");
        }
        for node in &self.running {
            // Only unreaped children are signalled, so the pid is still this
            // child's (at worst a zombie), never a reused one.
            let pid = rustix::process::Pid::from_child(&node.child);
            if let Err(error) = rustix::process::kill_process(pid, rustix::process::Signal::TERM) {
                tracing::warn!("cannot send SIGTERM to node {}: {error}", node.plan.id);
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            for (node, status) in self.reap() {
                eprintln!("rill dev cluster: node {node} stopped ({status})");
            }
            if self.running.is_empty() {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!(
                    "rill dev cluster: {} node(s) still running {} s after SIGTERM; killing them",
                    self.running.len(),
                    STOP_TIMEOUT.as_secs()
                );
                break;
            }
            tokio::select! {
                biased;
                name = signals.next() => {
                    eprintln!("rill dev cluster: {name} again; killing the nodes still running");
                    break;
                }
                () = tokio::time::sleep(POLL.min(left)) => {}
            }
        }
        self.kill();
    }

    /// SIGKILL to every node still running, and reaps it.
    fn kill(&mut self) {
        for mut node in self.running.drain(..) {
            // It may have exited since it was last reaped; wait says how.
            let _ = node.child.kill();
            match node.child.wait() {
                Ok(status) => {
                    eprintln!("rill dev cluster: node {} killed ({status})", node.plan.id)
                }
                Err(error) => tracing::warn!("cannot wait for node {}: {error}", node.plan.id),
            }
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn nodes_are_a_hundred_ports_apart_with_the_controller_next_to_the_client() {
        let plans = plan(3, 9092, Path::new("dev")).unwrap();
        assert_eq!(
            quorum(&plans),
            "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293"
        );
        assert_eq!(
            bootstrap(&plans),
            "127.0.0.1:9092,127.0.0.1:9192,127.0.0.1:9292"
        );
        let dirs: Vec<&Path> = plans.iter().map(|p| p.data.as_path()).collect();
        assert_eq!(
            dirs,
            [
                Path::new("dev/node-1"),
                Path::new("dev/node-2"),
                Path::new("dev/node-3")
            ]
        );
    }

    #[test]
    fn the_last_http_port_must_fit_in_sixteen_bits() {
        // 9 nodes: the last HTTP port is 802 above the base.
        assert!(plan(9, 65535 - 802, Path::new("d")).is_ok());
        let error = plan(9, 65535 - 801, Path::new("d"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("65536"), "{error}");
        assert!(error.contains("at most 64733"), "{error}");
        assert!(plan(1, 65533, Path::new("d")).is_ok());
        assert!(plan(1, 65534, Path::new("d")).is_err());
    }
}
