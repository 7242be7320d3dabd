//! Test harness: starts the real `rill` binary on an ephemeral port with
//! its data in a temporary directory, and gives rdkafka clients for it.
#![allow(dead_code, clippy::unwrap_used)]

pub mod cluster;
pub mod http;
pub mod raw;
pub mod security;
pub mod tls;
pub mod wire;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::FutureProducer;

/// How long the broker may take to start (recovery included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// RUST_LOG for a broker: INFO, and each refused client at DEBUG (only the
/// first of a spell is at WARN), so that tests can see every one.
pub const LOG_FILTER: &str = "info,openraft=warn,rill_server::network::client_refusals=debug";

/// The path of the `rill` binary under test.
pub fn rill_binary() -> &'static str {
    env!("CARGO_BIN_EXE_rill")
}

/// A running broker process. Dropping it kills the process.
pub struct BrokerProcess {
    child: Option<Child>,
    /// host:port clients connect to.
    pub bootstrap: String,
    pub data: PathBuf,
    extra_args: Vec<String>,
    /// RUST_LOG for the broker.
    log_filter: String,
    /// Lines the broker wrote to stderr after start-up.
    pub log: mpsc::Receiver<String>,
    _temp: Option<tempfile::TempDir>,
}

impl BrokerProcess {
    /// Starts a broker with its data in a new temporary directory.
    pub fn start(extra_args: &[&str]) -> BrokerProcess {
        let temp = tempfile::tempdir().unwrap();
        let data = temp.path().join("data");
        let mut broker = BrokerProcess::start_in(&data, extra_args);
        broker._temp = Some(temp);
        broker
    }

    /// Starts a broker on the data in `data`.
    pub fn start_in(data: &Path, extra_args: &[&str]) -> BrokerProcess {
        BrokerProcess::start_logging(data, extra_args, "info")
    }

    /// Starts a broker on the data in `data` with RUST_LOG=`log_filter`;
    /// its lines arrive on [`BrokerProcess::log`].
    pub fn start_logging(data: &Path, extra_args: &[&str], log_filter: &str) -> BrokerProcess {
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let (child, bootstrap, log) = spawn(data, &extra_args, "127.0.0.1:0", log_filter);
        BrokerProcess {
            child: Some(child),
            bootstrap,
            data: data.to_path_buf(),
            extra_args,
            log_filter: log_filter.to_string(),
            log,
            _temp: None,
        }
    }

    /// Starts a broker on the data in `data`, listening on `listen` (a
    /// fixed port: a cluster's brokers must know each other's).
    pub fn start_on(data: &Path, extra_args: &[&str], listen: &str) -> BrokerProcess {
        BrokerProcess::start_wrapped(&[], data, extra_args, listen)
    }

    /// [`BrokerProcess::start_on`] run through `wrapper` (e.g. `ip netns
    /// exec NS`, which execs the broker in a network namespace).
    pub fn start_wrapped(
        wrapper: &[&str],
        data: &Path,
        extra_args: &[&str],
        listen: &str,
    ) -> BrokerProcess {
        let mut args: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
        args.push(WRAPPED.to_string());
        args.extend(extra_args.iter().map(|s| s.to_string()));
        let (child, bootstrap, log) = spawn(data, &args, listen, LOG_FILTER);
        BrokerProcess {
            child: Some(child),
            bootstrap,
            data: data.to_path_buf(),
            extra_args: args,
            log_filter: LOG_FILTER.to_string(),
            log,
            _temp: None,
        }
    }

    /// Starts the broker again if the test stopped or killed it.
    pub fn restart_if_stopped(&mut self) {
        if self.child.is_none() {
            self.restart();
        }
    }

    /// Whether the process is running (not stopped or killed by the test).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Waits (up to a minute) for a log line containing every one of `words`.
    pub fn wait_for_log(&self, words: &[&str]) -> String {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .log
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no log line with {words:?}: {e}"));
            if words.iter().all(|w| line.contains(w)) {
                return line;
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap()
    }

    /// SIGKILL, then waits for the exit.
    pub fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Starts the broker again on the same data and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the broker first");
        let (child, bootstrap, log) = spawn(
            &self.data,
            &self.extra_args,
            &self.bootstrap,
            &self.log_filter,
        );
        assert_eq!(bootstrap, self.bootstrap);
        self.child = Some(child);
        self.log = log;
    }

    pub fn producer(&self, extra: &[(&str, &str)]) -> FutureProducer {
        let mut config = self.client_config();
        config.set("linger.ms", "0");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        config.create().unwrap()
    }

    pub fn consumer(&self, extra: &[(&str, &str)]) -> BaseConsumer {
        let mut config = self.client_config();
        config
            .set("group.id", "rill-tests")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        config.create().unwrap()
    }

    pub fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.client_config().create().unwrap()
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("broker.address.family", "v4")
            .set("log_level", "3");
        config
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // It may have exited already.
            let _ = child.wait();
        }
    }
}

/// Separates a wrapper command from the broker's own arguments.
const WRAPPED: &str = "--rill-wrapped--";

fn spawn(
    data: &Path,
    extra_args: &[String],
    listen: &str,
    log_filter: &str,
) -> (Child, String, mpsc::Receiver<String>) {
    let (wrapper, extra_args) = match extra_args.iter().position(|a| a == WRAPPED) {
        Some(at) => (&extra_args[..at], &extra_args[at + 1..]),
        None => (&extra_args[..0], extra_args),
    };
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(rill_binary());
            command
        }
        None => Command::new(rill_binary()),
    };
    let mut child = command
        .arg("broker")
        .arg("--data")
        .arg(data)
        .arg("--listen")
        .arg(listen)
        // No HTTP listener unless a test asks for one (--http): brokers
        // of parallel tests would each try the default port.
        .args(["--set", "rill.http.listener="])
        .args(extra_args)
        .env("RUST_LOG", log_filter)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("[broker] {line}");
            if lines.send(line).is_err() {
                // The test no longer listens; keep draining the pipe.
            }
        }
    });
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = match log.recv_timeout(left) {
            Ok(line) => line,
            Err(error) => {
                let _ = child.kill(); // It may have exited already.
                let status = child.wait();
                panic!(
                    "the broker did not say where it listens ({error}); it exited with {status:?}"
                );
            }
        };
        if let Some(rest) = line.split("listening on ").nth(1) {
            let address = rest.split_whitespace().next().unwrap().to_string();
            return (child, address, log);
        }
    }
}
