//! The result of a run: what producers and consumers did, their latency
//! percentiles and what it cost the broker; printed for people, or as one
//! JSON object (`--json`) for scripts such as tools/bench-matrix.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::broker_stats::BrokerUsage;
use super::latency::{Latencies, Percentiles};

/// What the producers, or the consumers, of a run did.
#[derive(Default)]
pub(crate) struct Outcome {
    /// Messages acknowledged (producers) or received (consumers).
    pub(crate) messages: u64,
    /// Their key and value bytes.
    pub(crate) bytes: u64,
    /// Messages that failed (not acknowledged, or a consumer error).
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// From the first send (or the first fetch) to the last acknowledgement
    /// (or the last message read).
    pub(crate) elapsed: Duration,
    /// Acknowledgement latency (producers) or end-to-end latency (consumers
    /// of an `e2e` run).
    pub(crate) latencies: Latencies,
    /// Transactions committed (transactional producers only).
    pub(crate) commits: u64,
    /// How long each commit_transaction() took.
    pub(crate) commit_latencies: Latencies,
}

impl Outcome {
    /// Adds the outcome of another producer or consumer of the same run;
    /// the run lasted as long as the longest.
    pub(crate) fn merge(&mut self, other: Outcome) {
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.elapsed = self.elapsed.max(other.elapsed);
        self.latencies.merge(&other.latencies);
        self.commits += other.commits;
        self.commit_latencies.merge(&other.commit_latencies);
    }

    pub(crate) fn fail(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }
}

/// The report of one run.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// `produce`, `consume` or `e2e`.
    pub(crate) command: &'static str,
    /// `rdkafka` or `native`.
    pub(crate) client: &'static str,
    pub(crate) bootstrap: String,
    pub(crate) topic: String,
    pub(crate) partitions: usize,
    /// The workload's settings, for the record.
    pub(crate) settings: BTreeMap<&'static str, String>,
    pub(crate) produce: Option<Phase>,
    pub(crate) consume: Option<Phase>,
    pub(crate) broker: Option<BrokerUsage>,
}

/// Throughput and latency of one side of a run. MB are 10^6 bytes of keys
/// and values.
#[derive(Debug, Serialize)]
pub(crate) struct Phase {
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    pub(crate) errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_error: Option<String>,
    pub(crate) seconds: f64,
    pub(crate) messages_per_sec: f64,
    pub(crate) mb_per_sec: f64,
    /// Produce: from the moment a message was due to be sent to its
    /// acknowledgement. Consume in `e2e`: from that moment to its receipt.
    pub(crate) latency_ms: Option<Percentiles>,
    /// Transactional producers: the transactions committed and how long
    /// each commit_transaction() took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) transactions: Option<Transactions>,
}

/// The commits of a transactional run.
#[derive(Debug, Serialize)]
pub(crate) struct Transactions {
    pub(crate) committed: u64,
    pub(crate) commit_latency_ms: Option<Percentiles>,
}

impl Phase {
    pub(crate) fn from_outcome(outcome: &Outcome) -> Phase {
        let seconds = outcome.elapsed.as_secs_f64();
        let per_second = |value: u64| {
            if seconds > 0.0 {
                value as f64 / seconds
            } else {
                0.0
            }
        };
        Phase {
            messages: outcome.messages,
            bytes: outcome.bytes,
            errors: outcome.errors,
            first_error: outcome.first_error.clone(),
            seconds,
            messages_per_sec: per_second(outcome.messages),
            mb_per_sec: per_second(outcome.bytes) / 1e6,
            latency_ms: outcome.latencies.percentiles(),
            transactions: (outcome.commits > 0).then(|| Transactions {
                committed: outcome.commits,
                commit_latency_ms: outcome.commit_latencies.percentiles(),
            }),
        }
    }
}

/// Writes a report to stdout: `value` as one JSON line, or `text()`.
pub(crate) fn print<T: Serialize>(
    value: &T,
    json: bool,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut stdout, value).context("cannot write the report")?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", text())?;
    }
    stdout.flush().context("cannot write the report")
}

impl Report {
    pub(crate) fn print(&self, json: bool) -> anyhow::Result<()> {
        print(self, json, || self.text())
    }

    fn text(&self) -> String {
        let mut text = format!(
            "{} {} on {} ({} partitions) via {}, client {}\n",
            self.command,
            self.topic,
            self.bootstrap,
            self.partitions,
            self.settings
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>()
                .join(" "),
            self.client,
        );
        let phases = [
            ("produce", &self.produce, "acknowledgement"),
            ("consume", &self.consume, "end-to-end"),
        ];
        for (name, phase, latency_name) in phases {
            let Some(phase) = phase else { continue };
            text.push_str(&format!(
                "{name}: {} messages, {:.1} MB in {:.2} s: {:.0} msg/s, {:.1} MB/s",
                phase.messages,
                phase.bytes as f64 / 1e6,
                phase.seconds,
                phase.messages_per_sec,
                phase.mb_per_sec
            ));
            if phase.errors > 0 {
                text.push_str(&format!(
                    "; {} errors, the first: {}",
                    phase.errors,
                    phase.first_error.as_deref().unwrap_or("?")
                ));
            }
            text.push('\n');
            if let Some(p) = &phase.latency_ms {
                text.push_str(&format!(
                    "  {latency_name} latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (mean {:.3}, {} samples)\n",
                    p.p50, p.p90, p.p99, p.p99_9, p.max, p.mean, p.samples
                ));
            }
            if let Some(transactions) = &phase.transactions {
                text.push_str(&format!(
                    "  {} transactions committed",
                    transactions.committed
                ));
                if let Some(p) = &transactions.commit_latency_ms {
                    text.push_str(&format!(
                        "; commit latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  (mean {:.3})",
                        p.p50, p.p90, p.p99, p.max, p.mean
                    ));
                }
                text.push('\n');
            }
        }
        if let Some(broker) = &self.broker {
            text.push_str(&format!(
                "broker (pid {}): {:.2} CPU-s{}, RSS {:.0} MiB (anonymous {:.0} MiB)\n",
                broker.pid,
                broker.cpu_seconds,
                broker
                    .cpu_seconds_per_gb
                    .map(|per_gb| format!(", {per_gb:.2} CPU-s per GB"))
                    .unwrap_or_default(),
                broker.rss_mib,
                broker.rss_anon_mib
            ));
        }
        text
    }
}
