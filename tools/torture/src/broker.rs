//! The broker under torture: a `rill broker` child process on a fixed
//! loopback port and data directory, started again after every SIGKILL.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How many of the broker's last log lines a failure report shows.
const LOG_TAIL_LINES_MAX: usize = 40;

/// Not thread-safe: the run's main thread starts and kills it.
pub struct Broker {
    rill: PathBuf,
    data: PathBuf,
    /// host:port, the same for every start.
    pub bootstrap: String,
    args: Vec<String>,
    child: Option<Child>,
    /// Every line the broker wrote to stderr, in every life.
    log: Arc<Mutex<File>>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

/// One start of the broker that got as far as listening.
pub struct Started {
    /// From spawning the process to its "listening on" line: recovery of
    /// every partition and the offsets topic included.
    pub recovery: Duration,
}

impl Broker {
    /// A broker that is not running yet, on a free loopback port.
    pub fn new(rill: &Path, data: &Path, args: Vec<String>, log_path: &Path) -> Result<Broker> {
        // The port stays the broker's for the whole run, so clients keep
        // their bootstrap address across restarts.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = File::create(log_path)
            .with_context(|| format!("creating the broker log {}", log_path.display()))?;
        Ok(Broker {
            rill: rill.to_path_buf(),
            data: data.to_path_buf(),
            bootstrap: format!("127.0.0.1:{port}"),
            args,
            child: None,
            log: Arc::new(Mutex::new(log)),
            tail: Arc::new(Mutex::new(VecDeque::new())),
        })
    }

    /// Spawns the broker and returns without waiting for it.
    fn spawn(&mut self) -> Result<mpsc::Receiver<String>> {
        assert!(self.child.is_none(), "the broker is running already");
        let mut child = Command::new(&self.rill)
            .arg("broker")
            .arg("--data")
            .arg(&self.data)
            .arg("--listen")
            .arg(&self.bootstrap)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.rill.display()))?;
        let stderr = child.stderr.take().context("the broker's stderr")?;
        self.child = Some(child);
        let (lines, receiver) = mpsc::channel();
        let log = Arc::clone(&self.log);
        let tail = Arc::clone(&self.tail);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut log) = log.lock() {
                    // The log file is for reading after a failure; a
                    // write error there must not stop the run.
                    let _ = writeln!(log, "{line}");
                }
                if let Ok(mut tail) = tail.lock() {
                    if tail.len() == LOG_TAIL_LINES_MAX {
                        tail.pop_front();
                    }
                    tail.push_back(line.clone());
                }
                // The run stops listening once the broker is up.
                let _ = lines.send(line);
            }
        });
        Ok(receiver)
    }

    /// Starts the broker and waits up to `timeout` for it to listen.
    pub fn start(&mut self, timeout: Duration) -> Result<Started> {
        let spawned = Instant::now();
        let lines = self.spawn()?;
        let deadline = spawned + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains("listening on ") => {
                    return Ok(Started {
                        recovery: spawned.elapsed(),
                    });
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "the broker did not come back within {timeout:?}; its last lines:\n{}",
                        self.log_tail()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().map(|child| child.wait());
                    self.child = None;
                    bail!(
                        "the broker exited while starting ({status:?}); its last lines:\n{}",
                        self.log_tail()
                    )
                }
            }
        }
    }

    /// Starts the broker and SIGKILLs it `after` the spawn, listening or
    /// not: a kill during recovery.
    pub fn start_and_kill(&mut self, after: Duration) -> Result<()> {
        let _lines = self.spawn()?;
        std::thread::sleep(after);
        self.kill()
    }

    /// SIGKILL, and waits for the process to be gone. A broker that died
    /// on its own before this is an error.
    pub fn kill(&mut self) -> Result<()> {
        let mut child = self.child.take().context("no broker to kill")?;
        if let Some(status) = child.try_wait()? {
            bail!(
                "the broker had exited by itself ({status}); its last lines:\n{}",
                self.log_tail()
            );
        }
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// SIGTERM, and waits for the exit: the end of the run.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed", child.id());
        }
        let exit = child.wait()?;
        if !exit.success() {
            bail!(
                "the broker exited with {exit} on SIGTERM; its last lines:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        self.tail
            .lock()
            .map(|tail| tail.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // It may have exited already.
            let _ = child.wait();
        }
    }
}
