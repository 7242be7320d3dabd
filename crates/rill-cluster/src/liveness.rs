//! The controller leader's memory of broker heartbeats. Not in the log:
//! it means something only to the current leader. A leader starts every
//! broker's clock at the start of its term (as KRaft does), so a broker
//! gets one whole session timeout after an election before it can be
//! fenced by the new leader.
//!
//! A leader whose own checks stall (its process starved of CPU, its
//! runtime busy) hears nothing meanwhile, through no fault of the brokers:
//! heartbeats wait unread in its sockets, and its own broker's may not
//! have run. So a check that comes long after the one before starts every
//! clock again, as a new term does, rather than fence brokers for its own
//! pause. A broker that really stopped is fenced one session timeout
//! after the leader is attentive again.
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
    /// When [`Liveness::silent`] last looked.
    last_check: Option<Instant>,
}

impl Liveness {
    pub(crate) fn new(now: Instant) -> Liveness {
        Liveness {
            term: None,
            term_started: now,
            last_heard: BTreeMap::new(),
            last_check: None,
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
    /// (counting from the term's start for a broker not heard at all, or
    /// from the end of this leader's last stall: more than half the
    /// timeout since it last looked).
    pub(crate) fn silent(
        &mut self,
        term: u64,
        now: Instant,
        timeout: Duration,
        brokers: &[BrokerId],
    ) -> Vec<BrokerId> {
        self.enter(term, now);
        let paused = self
            .last_check
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.last_check = Some(now);
        if paused > timeout / 2 {
            tracing::info!(
                paused_ms = paused.as_millis(),
                "the controller's liveness checks paused; every broker's session starts again"
            );
            self.term_started = now;
            self.last_heard.clear();
            return Vec::new();
        }
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

    /// Checks every 100 ms after `from` up to `to` (an attentive leader);
    /// returns what the check at `to` found.
    fn checked_until(
        liveness: &mut Liveness,
        term: u64,
        (t0, from, to): (Instant, u64, u64),
        brokers: &[BrokerId],
    ) -> Vec<BrokerId> {
        let mut at = from;
        loop {
            at = (at + 100).min(to);
            let silent = liveness.silent(term, t0 + Duration::from_millis(at), TIMEOUT, brokers);
            if at == to {
                return silent;
            }
        }
    }

    #[test]
    fn a_broker_is_silent_after_the_timeout_and_a_new_term_gives_grace() {
        let t0 = Instant::now();
        let (one, two) = (BrokerId(1), BrokerId(2));
        let mut liveness = Liveness::new(t0);
        assert!(liveness.silent(3, t0, TIMEOUT, &[one, two]).is_empty());
        checked_until(&mut liveness, 3, (t0, 0, 400), &[one, two]);
        liveness.heard(3, one, t0 + Duration::from_millis(400));
        // Never heard: counted from the term's start.
        assert_eq!(
            checked_until(&mut liveness, 3, (t0, 400, 600), &[one, two]),
            vec![two]
        );
        assert_eq!(
            checked_until(&mut liveness, 3, (t0, 600, 1000), &[one, two]),
            vec![one, two]
        );
        // A new term starts every clock again.
        assert!(
            liveness
                .silent(4, t0 + Duration::from_millis(1000), TIMEOUT, &[one, two])
                .is_empty()
        );
        assert_eq!(
            checked_until(&mut liveness, 4, (t0, 1000, 1501), &[one, two]),
            vec![one, two]
        );
    }

    #[test]
    fn a_leader_that_paused_fences_no_one_for_its_own_pause() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let one = BrokerId(1);
        let mut liveness = Liveness::new(t0);
        liveness.heard(3, one, at(0));
        assert!(liveness.silent(3, at(100), TIMEOUT, &[one]).is_empty());
        // Checks every 100 ms stop for 900 ms: the broker's heartbeats were
        // not heard, but neither was anything else.
        assert!(liveness.silent(3, at(1000), TIMEOUT, &[one]).is_empty());
        assert!(liveness.silent(3, at(1100), TIMEOUT, &[one]).is_empty());
        // Attentive again, and still nothing from the broker: fenced one
        // timeout after the pause ended.
        assert!(checked_until(&mut liveness, 3, (t0, 1100, 1500), &[one]).is_empty());
        assert_eq!(liveness.silent(3, at(1600), TIMEOUT, &[one]), vec![one]);
    }
}
