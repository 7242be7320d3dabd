//! CPU time and memory of a broker process on this machine, read from
//! /proc before and after a run (`--broker-pid`), so a result says what it
//! cost the broker as well as what the client saw.

use anyhow::Context;
use serde::Serialize;

/// A reading of /proc/PID.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// User plus system CPU time, seconds.
    cpu_seconds: f64,
}

/// What the broker spent during a run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BrokerUsage {
    pub(crate) pid: u32,
    /// User plus system CPU seconds used during the run.
    pub(crate) cpu_seconds: f64,
    /// CPU seconds per GB (10^9 bytes) of message bytes produced plus
    /// consumed in the run.
    pub(crate) cpu_seconds_per_gb: Option<f64>,
    /// Resident memory at the end of the run, MiB (VmRSS, which also counts
    /// page-cache pages of mapped segments the broker has touched).
    pub(crate) rss_mib: f64,
    /// Anonymous resident memory at the end of the run, MiB (RssAnon): the
    /// broker's own heap and stacks.
    pub(crate) rss_anon_mib: f64,
}

pub(crate) fn sample(pid: u32) -> anyhow::Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat (--broker-pid)"))?;
    Ok(Sample {
        cpu_seconds: cpu_seconds(&stat)?,
    })
}

/// The usage between `before` and now, for `bytes` moved.
pub(crate) fn usage_since(pid: u32, before: Sample, bytes: u64) -> anyhow::Result<BrokerUsage> {
    let after = sample(pid)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let cpu = after.cpu_seconds - before.cpu_seconds;
    Ok(BrokerUsage {
        pid,
        cpu_seconds: cpu,
        cpu_seconds_per_gb: (bytes > 0).then(|| cpu / (bytes as f64 / 1e9)),
        rss_mib: status_kib(&status, "VmRSS:").unwrap_or(0) as f64 / 1024.0,
        rss_anon_mib: status_kib(&status, "RssAnon:").unwrap_or(0) as f64 / 1024.0,
    })
}

/// utime + stime of a /proc/PID/stat line, in seconds.
fn cpu_seconds(stat: &str) -> anyhow::Result<f64> {
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/PID/stat format")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the line are utime and stime; `fields` starts at 3.
    let ticks = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .context("unexpected /proc/PID/stat format")
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(total as f64 / clock_ticks_per_second())
}

/// Kernel clock ticks per second, USER_HZ: 100 on every Linux platform
/// Rill runs on.
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// The KiB value of a `Name:   1234 kB` line of /proc/PID/status.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_and_memory_of_this_process() {
        let pid = std::process::id();
        let before = sample(pid).expect("sample");
        let mut spin = 0u64;
        for i in 0..20_000_000u64 {
            spin = spin.wrapping_add(i * i);
        }
        std::hint::black_box(spin);
        let usage = usage_since(pid, before, 1_000_000_000).expect("usage");
        assert!(usage.cpu_seconds >= 0.0);
        assert!(usage.rss_mib > 0.0 && usage.rss_anon_mib > 0.0, "{usage:?}");
        assert_eq!(usage.cpu_seconds_per_gb, Some(usage.cpu_seconds));
    }

    #[test]
    fn command_names_with_spaces_and_parentheses_parse() {
        let stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0";
        assert!((cpu_seconds(stat).expect("parse") - 3.0).abs() < 1e-9);
    }
}
