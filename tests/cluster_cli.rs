//! `rill cluster status` and `rill dev cluster` run as processes: the
//! status of a single broker, a dev cluster started, used and stopped by
//! SIGTERM with no broker left behind, a node stopped (SIGSTOP) and
//! resumed as cluster status and topic describe show it, and the ways a
//! dev cluster refuses to start or fails.
//!
//! Ports: a dev cluster listens on fixed ports, so these tests take the
//! block 32000–32299 (node i on 32000 + 100*(i-1) and the two ports after it):
//! below the kernel's ephemeral range (32768 and up by default, which
//! the single-broker tests' port 0 draws from), above the 10000–19999 of
//! tests/common/cluster.rs and the 20000–31999 of crates/rill-cluster's
//! tests. The tests that use these ports take `PORTS`, one at a time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{BrokerProcess, rill_binary};
use rustix::process::{Pid, Signal, kill_process, test_kill_process};
use serde_json::Value;

/// Node 1's client port in every dev cluster of these tests.
const BASE_PORT: u16 = 32000;
/// The dev-cluster tests hold this while they use the ports above.
static PORTS: Mutex<()> = Mutex::new(());
/// How long a dev cluster may take to start or stop, or a cluster to
/// reach a state: a bound, not a measurement.
const DEADLINE: Duration = Duration::from_secs(60);

fn ports() -> MutexGuard<'static, ()> {
    // A test that failed while holding the ports has stopped its cluster.
    PORTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What one command printed and how it exited.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `rill ARGS` to completion.
fn rill(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(rill_binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run {
        status,
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    };
    eprintln!(
        "$ rill {} -> {status}\n{}",
        args.join(" "),
        run.stderr.trim_end()
    );
    run
}

/// Runs `rill ARGS --bootstrap BOOTSTRAP`, which must succeed.
fn ok(bootstrap: &str, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--bootstrap", bootstrap]);
    let run = rill(&all);
    assert!(run.status.success(), "rill {args:?} failed: {}", run.stderr);
    run
}

fn status_json(bootstrap: &str) -> Value {
    serde_json::from_str(&ok(bootstrap, &["cluster", "status", "--json"]).stdout).unwrap()
}

fn broker_statuses(status: &Value) -> Vec<(i64, String)> {
    status["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].as_i64().unwrap(),
                b["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn alive(ids: &[i64]) -> Vec<(i64, String)> {
    ids.iter().map(|&id| (id, "alive".to_string())).collect()
}

/// Polls `condition` until it holds, failing the test after DEADLINE.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {DEADLINE:?}: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn accepts_connections(address: &str) -> bool {
    TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(1)).is_ok()
}

fn is_gone(pid: i32) -> bool {
    test_kill_process(Pid::from_raw(pid).unwrap()).is_err()
}

#[test]
fn cluster_status_of_one_broker_shows_it_alive_and_controller() {
    let broker = BrokerProcess::start(&[]);
    ok(
        &broker.bootstrap,
        &["topic", "create", "events", "--partitions", "2"],
    );
    let partitions: usize = ok(&broker.bootstrap, &["topic", "describe", "--json"])
        .stdout
        .lines()
        .map(|line| {
            let topic: Value = serde_json::from_str(line).unwrap();
            topic["partitions"].as_array().unwrap().len()
        })
        .sum();

    let status = status_json(&broker.bootstrap);
    let port: i64 = broker
        .bootstrap
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        status["brokers"],
        serde_json::json!([{"id": 1, "host": "127.0.0.1", "port": port, "rack": null,
            "status": "alive"}])
    );
    assert_eq!(status["controller"], 1);
    assert_eq!(status["describe_cluster_version"], 2);
    assert_eq!(status["fenced_brokers_known"], true);
    assert_eq!(status["partitions"], partitions);
    assert_eq!(status["under_replicated"], serde_json::json!([]));
    assert_eq!(status["offline"], serde_json::json!([]));
    assert!(!status["cluster_id"].as_str().unwrap().is_empty());

    let text = ok(&broker.bootstrap, &["cluster", "status"]).stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "Controller: 1");
    assert_eq!(lines[2], "Brokers: 1 (1 alive, 0 fenced)");
    assert_eq!(lines[3], "ID  HOST       PORT   RACK  STATUS");
    assert_eq!(lines[4], format!("1   127.0.0.1  {port}  -     alive"));
    assert_eq!(
        lines[6],
        format!("Partitions: {partitions} (0 under-replicated, 0 offline)")
    );
    assert_eq!(lines.len(), 7, "{text}");

    // Nothing listens on a port just released.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let failed = rill(&[
        "cluster",
        "status",
        "--bootstrap",
        &nowhere,
        "--timeout-ms",
        "1000",
    ]);
    assert!(!failed.status.success());
    assert!(failed.stdout.is_empty());
    assert!(
        failed.stderr.contains("cannot connect"),
        "{}",
        failed.stderr
    );
}

/// A running `rill dev cluster`. Dropping it kills it and its nodes.
struct DevCluster {
    child: Child,
    /// The bootstrap line it printed.
    bootstrap: String,
    /// Each node's pid, by node id - 1.
    pids: Vec<i32>,
    _ports: MutexGuard<'static, ()>,
}

impl DevCluster {
    /// Starts `rill dev cluster --nodes N --base-port 32000 --data DATA`
    /// with `extra` arguments and waits for its bootstrap line.
    fn start(nodes: usize, data: &Path, extra: &[&str]) -> DevCluster {
        let ports = ports();
        let mut child = Command::new(rill_binary())
            .args(["dev", "cluster", "--nodes", &nodes.to_string()])
            .args(["--base-port", &BASE_PORT.to_string()])
            .arg("--data")
            .arg(data)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines_of(child.stdout.take().unwrap(), "");
        let stderr = lines_of(child.stderr.take().unwrap(), "[dev cluster] ");
        let mut cluster = DevCluster {
            child,
            bootstrap: String::new(),
            pids: Vec::new(),
            _ports: ports,
        };
        let deadline = Instant::now() + DEADLINE;
        while cluster.pids.len() < nodes {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = stderr.recv_timeout(left).unwrap();
            if let Some(rest) = line.strip_prefix(&format!(
                "rill dev cluster: node {}: pid ",
                cluster.pids.len() + 1
            )) {
                cluster
                    .pids
                    .push(rest.split(',').next().unwrap().parse().unwrap());
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        cluster.bootstrap = stdout
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no bootstrap line: {e}"));
        cluster
    }

    /// SIGTERM, then waits (bounded) for the exit.
    fn terminate(&mut self) -> ExitStatus {
        kill_process(Pid::from_child(&self.child), Signal::TERM).unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "dev cluster still running");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal_node(&self, node: usize, signal: Signal) {
        kill_process(Pid::from_raw(self.pids[node - 1]).unwrap(), signal).unwrap();
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let _ = self.child.kill(); // It may have exited already.
        let _ = self.child.wait();
        for &pid in &self.pids {
            // Gone already when the dev cluster stopped it.
            let _ = kill_process(Pid::from_raw(pid).unwrap(), Signal::KILL);
        }
    }
}

/// The lines of `stream`, on a channel; each echoed to stderr after `echo`
/// unless that is empty.
fn lines_of(stream: impl std::io::Read + Send + 'static, echo: &'static str) -> Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if !echo.is_empty() {
                eprintln!("{echo}{line}");
            }
            if sender.send(line).is_err() {
                // The test no longer listens; keep draining the pipe.
            }
        }
    });
    lines
}

/// The status of GET `path` from `address`.
fn http_status(address: &str, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn dev_cluster_starts_every_node_and_stops_them_all_on_sigterm() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("cluster");
    let mut cluster = DevCluster::start(3, &data, &[]);
    let clients = ["127.0.0.1:32000", "127.0.0.1:32100", "127.0.0.1:32200"];
    assert_eq!(cluster.bootstrap, clients.join(","));
    for (node, address) in clients.iter().enumerate() {
        assert!(
            accepts_connections(address),
            "node {} on {address}",
            node + 1
        );
        assert!(data.join(format!("node-{}", node + 1)).is_dir());
        // Each node's HTTP listener is the port after its controller's.
        let http = format!("127.0.0.1:{}", 32002 + 100 * node);
        assert_eq!(
            http_status(&http, "/health"),
            200,
            "node {} on {http}",
            node + 1
        );
    }

    let status = cluster.terminate();
    assert!(status.success(), "dev cluster exited with {status}");
    for (node, &pid) in cluster.pids.iter().enumerate() {
        assert!(is_gone(pid), "node {} (pid {pid}) still exists", node + 1);
    }
    for address in clients {
        assert!(!accepts_connections(address), "{address} still accepts");
    }
}

#[test]
fn a_dev_cluster_is_one_cluster_whose_nodes_fail_and_return() {
    let temp = tempfile::tempdir().unwrap();
    let mut cluster = DevCluster::start(
        3,
        &temp.path().join("cluster"),
        &[
            "--set",
            "broker.session.timeout.ms=2000",
            "--set",
            "broker.heartbeat.interval.ms=200",
            "--set",
            "replica.lag.time.max.ms=2000",
        ],
    );
    let bootstrap = cluster.bootstrap.clone();
    // The bootstrap line comes once every node is a live broker.
    assert_eq!(broker_statuses(&status_json(&bootstrap)), alive(&[1, 2, 3]));
    // The quorum: three voters, one of them the leader, every one caught
    // up once the leader has heard from it.
    eventually("three voters caught up in rill cluster quorum", || {
        let out = ok(&bootstrap, &["cluster", "quorum"]).stdout;
        let rows: Vec<Vec<&str>> = out
            .lines()
            .skip(3)
            .map(|line| line.split_whitespace().collect())
            .collect();
        out.starts_with("Leader: ")
            && rows.len() == 3
            && rows.iter().filter(|r| r[4] == "leader").count() == 1
            && rows.iter().all(|r| r[3] == "0")
    });
    ok(
        &bootstrap,
        &[
            "topic",
            "create",
            "events",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ],
    );
    let describe = |bootstrap: &str| -> Vec<Value> {
        let out = ok(bootstrap, &["topic", "describe", "events", "--json"]).stdout;
        let topic: Value = serde_json::from_str(&out).unwrap();
        topic["partitions"].as_array().unwrap().clone()
    };
    eventually("every replica in sync", || {
        describe(&bootstrap)
            .iter()
            .all(|p| p["isr"].as_array().unwrap().len() == 3)
    });
    let status = status_json(&bootstrap);
    assert!((1..=3).contains(&status["controller"].as_i64().unwrap()));
    assert_eq!(status["under_replicated"], serde_json::json!([]));
    assert_eq!(status["offline"], serde_json::json!([]));

    // Node 3 stops answering without exiting: the dev cluster keeps going,
    // the controller fences it, and its replicas fall out of sync.
    cluster.signal_node(3, Signal::STOP);
    let survivors = "127.0.0.1:32000,127.0.0.1:32100";
    eventually("node 3 fenced", || {
        broker_statuses(&status_json(survivors)).contains(&(3, "fenced".to_string()))
    });
    eventually("every partition under-replicated", || {
        status_json(survivors)["under_replicated"]
            .as_array()
            .unwrap()
            .len()
            == 3
    });
    for partition in describe(survivors) {
        assert_eq!(partition["under_replicated"], true, "{partition}");
        assert_ne!(partition["leader"], 3, "a fenced broker leads {partition}");
    }
    let text = ok(survivors, &["topic", "describe", "events"]).stdout;
    assert!(
        text.lines()
            .skip(1)
            .all(|l| l.contains("\tunder-replicated")),
        "{text}"
    );

    cluster.signal_node(3, Signal::CONT);
    eventually("node 3 back and every replica in sync", || {
        let status = status_json(&bootstrap);
        broker_statuses(&status) == alive(&[1, 2, 3])
            && status["under_replicated"] == serde_json::json!([])
            && status["offline"] == serde_json::json!([])
    });

    let status = cluster.terminate();
    assert!(status.success(), "dev cluster exited with {status}");
}

#[test]
fn dev_cluster_refuses_what_it_cannot_start() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("never");
    let data = data.to_str().unwrap();
    for nodes in ["0", "10"] {
        let run = rill(&["dev", "cluster", "--nodes", nodes, "--data", data]);
        assert_eq!(run.status.code(), Some(2), "--nodes {nodes}");
        assert!(
            run.stderr.contains(&format!(
                "invalid value '{nodes}' for '--nodes <N>': {nodes} is not in 1..=9"
            )),
            "{}",
            run.stderr
        );
    }
    let run = rill(&[
        "dev",
        "cluster",
        "--nodes",
        "3",
        "--base-port",
        "65400",
        "--data",
        data,
    ]);
    assert!(!run.status.success());
    assert!(
        run.stderr.contains(
            "error: --base-port 65400 with --nodes 3: node 3's HTTP port would be 65602, \
             above 65535; expected --base-port at most 65333"
        ),
        "{}",
        run.stderr
    );
    let run = rill(&["dev", "cluster", "--set", "no-equals-sign", "--data", data]);
    assert!(!run.status.success());
    assert!(run.stderr.contains("expected KEY=VALUE"), "{}", run.stderr);

    // Something else on node 2's client port.
    let _ports = ports();
    let _taken = std::net::TcpListener::bind("127.0.0.1:32100").unwrap();
    let run = rill(&[
        "dev",
        "cluster",
        "--nodes",
        "2",
        "--base-port",
        "32000",
        "--data",
        data,
    ]);
    assert!(!run.status.success());
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr
            .contains("node 2's client port 127.0.0.1:32100 is not free"),
        "{}",
        run.stderr
    );
    assert!(
        !Path::new(data).exists(),
        "nothing is created before the checks"
    );
}

#[test]
fn a_node_exiting_on_its_own_stops_the_dev_cluster() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("cluster");
    let _ports = ports();
    // Every broker refuses the property and exits at once.
    let run = rill(&[
        "dev",
        "cluster",
        "--nodes",
        "2",
        "--base-port",
        "32000",
        "--data",
        data.to_str().unwrap(),
        "--set",
        "num.partitions=many",
    ]);
    assert!(!run.status.success());
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    // The brokers' own errors come first on the shared stderr.
    let error = run
        .stderr
        .lines()
        .rfind(|l| l.starts_with("error: "))
        .unwrap();
    assert!(
        error.starts_with("error: node 1 exited on its own (exit status: 1)")
            || error.starts_with("error: node 2 exited on its own (exit status: 1)"),
        "{error}"
    );
    for address in ["127.0.0.1:32000", "127.0.0.1:32100"] {
        assert!(!accepts_connections(address), "{address} accepts");
    }
}
