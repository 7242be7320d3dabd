//! A rate over sampled windows, as Kafka's `Rate` over a `SampledStat`
//! measures a client against its quota: `samples` windows of `window_ms`
//! each; the rate is what the live windows hold over the time they span
//! (never less than `samples - 1` whole windows, so one burst right after
//! a quiet spell is not measured over a few milliseconds).

#[derive(Debug, Clone)]
pub(crate) struct Rate {
    window_ms: u64,
    /// (start of the window in ms, total recorded in it); `current` is
    /// the one being filled.
    samples: Vec<(u64, f64)>,
    current: usize,
}

impl Rate {
    pub(crate) fn new(samples: usize, window_ms: u64, now_ms: u64) -> Rate {
        Rate {
            window_ms: window_ms.max(1),
            samples: vec![(now_ms, 0.0); samples.max(2)],
            current: 0,
        }
    }

    /// Adds `value` at `now_ms` (negative to take back a recorded value).
    pub(crate) fn record(&mut self, value: f64, now_ms: u64) {
        let (start, _) = self.samples[self.current];
        if now_ms >= start + self.window_ms {
            self.current = (self.current + 1) % self.samples.len();
            self.samples[self.current] = (now_ms, 0.0);
        }
        self.samples[self.current].1 += value;
    }

    /// Per second, at `now_ms`.
    pub(crate) fn per_second(&mut self, now_ms: u64) -> f64 {
        self.purge_obsolete(now_ms);
        let total: f64 = self.samples.iter().map(|(_, value)| value).sum();
        total * 1000.0 / self.window_size_ms(now_ms) as f64
    }

    /// The time the rate is measured over, in ms: since the oldest live
    /// window started, at least `samples - 1` windows.
    pub(crate) fn window_size_ms(&self, now_ms: u64) -> u64 {
        let oldest = self
            .samples
            .iter()
            .map(|(start, _)| *start)
            .min()
            .unwrap_or(now_ms);
        let elapsed = now_ms.saturating_sub(oldest);
        let full_windows_min = (self.samples.len() as u64 - 1) * self.window_ms;
        elapsed.max(full_windows_min).max(1)
    }

    /// The longest a full set of windows spans.
    pub(crate) fn span_ms(&self) -> u64 {
        self.samples.len() as u64 * self.window_ms
    }

    /// Windows that ended more than all the windows' span ago hold
    /// nothing any more.
    fn purge_obsolete(&mut self, now_ms: u64) {
        let span = self.span_ms();
        for sample in &mut self.samples {
            if now_ms.saturating_sub(sample.0) >= span {
                *sample = (now_ms, 0.0);
            }
        }
    }

    /// Milliseconds a client measured over `bound` must wait to be back
    /// within it, if no more is recorded: with observed rate O, bound T
    /// over window W, Kafka's X = (O - T) / T * W. Zero within the bound.
    pub(crate) fn throttle_ms(&mut self, bound: f64, now_ms: u64) -> u64 {
        let observed = self.per_second(now_ms);
        if observed <= bound {
            return 0;
        }
        ((observed - bound) / bound * self.window_size_ms(now_ms) as f64).round() as u64
    }

    /// When anything was last recorded.
    pub(crate) fn last_ms(&self) -> u64 {
        self.samples[self.current].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_measured_over_the_whole_window_and_forgotten_after_it() {
        // Kafka's defaults: 11 windows of a second.
        let mut rate = Rate::new(11, 1000, 0);
        rate.record(10_000.0, 0);
        // 10 000 over at least ten seconds.
        assert_eq!(rate.per_second(0), 1000.0);
        assert_eq!(rate.throttle_ms(1000.0, 0), 0);
        assert_eq!(rate.throttle_ms(500.0, 0), 10_000);
        // More in later windows adds up.
        rate.record(10_000.0, 5_500);
        assert_eq!(rate.per_second(5_500), 2000.0);
        // Past the span (11 s) the first burst is gone.
        assert_eq!(rate.per_second(11_000), 1000.0);
        assert_eq!(rate.per_second(17_000), 0.0);
    }

    #[test]
    fn a_recorded_value_can_be_taken_back() {
        let mut rate = Rate::new(11, 1000, 0);
        rate.record(4000.0, 100);
        rate.record(-4000.0, 100);
        assert_eq!(rate.per_second(100), 0.0);
    }
}
