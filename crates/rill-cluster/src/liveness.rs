//! The controller leader's memory of broker heartbeats. Not in the log:
//! it means something only to the current leader. A leader starts every
//! broker's clock at the start of its term (as KRaft does), so a broker
//! gets one whole session timeout after an election before it can be
//! fenced by the new leader.
//!
//! Not thread-safe: the controller holds it behind a mutex, never across
//! an await. Sans I/O: the caller passes the time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::metadata::BrokerId;

#[derive(Debug)]
pub(crate) struct Liveness {
    /// The term these clocks belong to.
    term: Option<u64>,
    /// When this node saw itself lead `term` first: every broker's clock
    /// starts there.
    term_started: Instant,
    /// One entry per broker heard this term (bounded by the registered
    /// brokers: a heartbeat is recorded only after its registration is
    /// checked).
    last_heard: BTreeMap<BrokerId, Instant>,
}

impl Liveness {
    pub(crate) fn new(now: Instant) -> Liveness {
        Liveness {
            term: None,
            term_started: now,
            last_heard: BTreeMap::new(),
        }
    }

    /// Forgets everything from an earlier term.
    fn enter(&mut self, term: u64, now: Instant) {
        if self.term != Some(term) {
            self.term = Some(term);
            self.term_started = now;
            self.last_heard.clear();
        }
    }

    /// `broker` heartbeated at `now`, heard by the leader of `term`.
    pub(crate) fn heard(&mut self, term: u64, broker: BrokerId, now: Instant) {
        self.enter(term, now);
        self.last_heard.insert(broker, now);
    }

    /// Those of `brokers` not heard from within `timeout` before `now`
    /// (counting from the term's start for a broker not heard at all).
    pub(crate) fn silent(
        &mut self,
        term: u64,
        now: Instant,
        timeout: Duration,
        brokers: &[BrokerId],
    ) -> Vec<BrokerId> {
        self.enter(term, now);
        brokers
            .iter()
            .copied()
            .filter(|b| {
                let last = self.last_heard.get(b).copied().unwrap_or(self.term_started);
                now.saturating_duration_since(last) > timeout
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(500);

    #[test]
    fn a_broker_is_silent_after_the_timeout_and_a_new_term_gives_grace() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let (one, two) = (BrokerId(1), BrokerId(2));
        let mut liveness = Liveness::new(t0);
        assert!(liveness.silent(3, at(0), TIMEOUT, &[one, two]).is_empty());
        liveness.heard(3, one, at(400));
        // Never heard: counted from the term's start.
        assert_eq!(liveness.silent(3, at(600), TIMEOUT, &[one, two]), vec![two]);
        assert_eq!(
            liveness.silent(3, at(1000), TIMEOUT, &[one, two]),
            vec![one, two]
        );
        // A new term starts every clock again.
        assert!(
            liveness
                .silent(4, at(1000), TIMEOUT, &[one, two])
                .is_empty()
        );
        assert_eq!(
            liveness.silent(4, at(1501), TIMEOUT, &[one, two]),
            vec![one, two]
        );
    }
}
