//! Latency recording: an HDR histogram of microseconds, and the percentiles
//! the report quotes.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies of one kind (acknowledgement, or produce-to-consume), in
/// microseconds from 1 µs to an hour with three significant digits.
/// `None` only if hdrhistogram refused those constant bounds, which it
/// accepts (a test below checks): the run would then report no latencies.
pub(crate) struct Latencies(Option<Histogram<u64>>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    pub(crate) fn new() -> Latencies {
        Latencies(Histogram::new_with_bounds(1, 3_600_000_000, 3).ok())
    }

    /// Records `count` samples of `latency`; beyond an hour counts as an hour.
    pub(crate) fn record(&mut self, latency: Duration, count: u64) {
        if let Some(histogram) = &mut self.0 {
            let micros = (latency.as_micros() as u64).clamp(1, histogram.high());
            histogram.saturating_record_n(micros, count);
        }
    }

    pub(crate) fn merge(&mut self, other: &Latencies) {
        if let (Some(histogram), Some(other)) = (&mut self.0, &other.0) {
            // Both histograms have the same bounds, so adding cannot fail.
            let _ = histogram.add(other);
        }
    }

    /// The percentiles in milliseconds; `None` without samples.
    pub(crate) fn percentiles(&self) -> Option<Percentiles> {
        let histogram = self.0.as_ref().filter(|h| !h.is_empty())?;
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(Percentiles {
            samples: histogram.len(),
            mean: histogram.mean() / 1000.0,
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p99_9: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        })
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) samples: u64,
    pub(crate) mean: f64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p99_9: f64,
    pub(crate) max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdrhistogram_accepts_the_bounds() {
        assert!(Latencies::new().0.is_some());
    }

    #[test]
    fn percentiles_follow_the_samples() {
        let mut latencies = Latencies::new();
        assert!(latencies.percentiles().is_none());
        latencies.record(Duration::from_millis(1), 990);
        latencies.record(Duration::from_millis(100), 10);
        let mut other = Latencies::new();
        other.record(Duration::from_secs(2), 1);
        latencies.merge(&other);
        let p = latencies.percentiles().expect("samples");
        assert_eq!(p.samples, 1001);
        assert!((p.p50 - 1.0).abs() < 0.01, "{p:?}");
        assert!((p.p99_9 - 100.0).abs() < 0.1, "{p:?}");
        assert!((p.max - 2000.0).abs() < 2.0, "{p:?}");
    }
}
