//! What the flusher's rounds took, for the broker's metrics: how long a
//! round's syncs ran (syncfs, or fdatasync of each log's files), and how
//! many logs one round made durable together (the group commit).

/// A histogram of observations: counts per bucket (not cumulative), the
/// last bucket unbounded.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Each bucket's upper bound, the last `f64::INFINITY`.
    pub bounds: Vec<f64>,
    /// Observations per bucket.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    /// Buckets doubling from `first`, `finite` of them, then +Inf.
    fn doubling(first: f64, finite: u32) -> Histogram {
        let mut bounds: Vec<f64> = (0..finite).map(|i| first * f64::from(1u32 << i)).collect();
        bounds.push(f64::INFINITY);
        Histogram {
            counts: vec![0; bounds.len()],
            bounds,
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len() - 1);
        self.counts[bucket] += 1;
        self.sum += value;
        self.count += 1;
    }
}

/// The flusher's figures since it started.
#[derive(Clone, Debug, PartialEq)]
pub struct FlushStats {
    /// Seconds each round spent syncing: 50 µs to ~1.6 s, doubling.
    pub round_seconds: Histogram,
    /// Logs each round synced: 1 to 4,096, doubling.
    pub logs_per_round: Histogram,
}

impl Default for FlushStats {
    fn default() -> FlushStats {
        FlushStats {
            round_seconds: Histogram::doubling(0.000_05, 16),
            logs_per_round: Histogram::doubling(1.0, 13),
        }
    }
}

impl FlushStats {
    /// A round synced `logs` logs in `seconds`.
    pub(crate) fn record_round(&mut self, logs: usize, seconds: f64) {
        self.round_seconds.observe(seconds);
        self.logs_per_round.observe(logs as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_fall_into_their_buckets() {
        let mut stats = FlushStats::default();
        stats.record_round(1, 0.000_01);
        stats.record_round(3, 0.000_1);
        stats.record_round(10_000, 100.0);
        let seconds = &stats.round_seconds;
        assert_eq!(
            (seconds.count, seconds.counts[0], seconds.counts[1]),
            (3, 1, 1)
        );
        assert_eq!(seconds.counts.last(), Some(&1));
        let logs = &stats.logs_per_round;
        // 1 in "<= 1", 3 in "<= 4", 10,000 beyond 4,096.
        assert_eq!((logs.counts[0], logs.counts[2]), (1, 1));
        assert_eq!(logs.counts.last(), Some(&1));
        assert_eq!(logs.sum, 10_004.0);
        assert!(seconds.bounds.last().is_some_and(|b| b.is_infinite()));
    }
}
