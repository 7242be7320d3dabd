//! The process, read from /proc at each scrape: CPU time, resident
//! memory, open files and memory maps against their limits — the
//! resources a broker with many partitions runs out of.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// The collector; stateless.
#[derive(Debug)]
pub(super) struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if let Some(seconds) = cpu_seconds() {
            let counter = ConstCounter::new(seconds);
            let metric = encoder.encode_descriptor(
                "process_cpu",
                "User and system CPU time the broker process has used",
                Some(&Unit::Seconds),
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory of the broker process",
                Some(Unit::Bytes),
                resident_bytes(),
            ),
            (
                "process_open_fds",
                "Open file descriptors (files, sockets)",
                None,
                open_fds(),
            ),
            (
                "process_max_fds",
                "The open file descriptor limit (ulimit -n)",
                None,
                max_fds(),
            ),
            (
                "process_memory_maps",
                "Memory maps of the process (segments' files are mapped)",
                None,
                memory_maps(),
            ),
            (
                "process_max_memory_maps",
                "The memory map limit (vm.max_map_count)",
                None,
                max_memory_maps(),
            ),
        ];
        for (name, help, unit, value) in gauges {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            let metric =
                encoder.encode_descriptor(name, help, unit.as_ref(), gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// utime + stime of /proc/self/stat (fields 14 and 15, after the
/// parenthesised command, which may hold spaces).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_command = &stat[stat.rfind(')')? + 1..];
    // Fields from the 3rd (state): utime is the 14th, so the 12th here.
    let mut fields = after_command.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second();
    Some((user + system) as f64 / ticks as f64)
}

/// The second field of /proc/self/statm, in pages.
fn resident_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as i64)
}

fn open_fds() -> Option<i64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
}

/// The soft limit on the "Max open files" line of /proc/self/limits.
fn max_fds() -> Option<i64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn memory_maps() -> Option<i64> {
    let maps = std::fs::read("/proc/self/maps").ok()?;
    Some(maps.iter().filter(|b| **b == b'\n').count() as i64)
}

fn max_memory_maps() -> Option<i64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reads_its_own_resources() {
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
        assert!(resident_bytes().is_some_and(|b| b > 0));
        let open = open_fds().unwrap();
        assert!(open > 0);
        assert!(max_fds().is_some_and(|max| max >= open));
        assert!(memory_maps().is_some_and(|maps| maps > 0));
        assert!(max_memory_maps().is_some_and(|max| max > 0));
    }
}
