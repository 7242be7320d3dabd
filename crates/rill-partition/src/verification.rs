//! KIP-890's verification guards: a leader asks a transaction's
//! coordinator whether a partition is in a producer's ongoing transaction
//! before writing the producer's first transactional batch there, and the
//! guard makes sure nothing ended the transaction meanwhile. A guard is
//! handed out before the coordinator is asked; a marker for the producer,
//! or the append that opens its transaction, takes it back; the append
//! of an unopened transaction's batch must bring a guard that is still
//! out (Kafka's VerificationGuard).
//!
//! Guards live only on the leader, in memory: a new leader, or a restart,
//! has none out, and its producers ask their coordinator again.

use std::collections::HashMap;

/// What an append brings to show its transaction was verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerificationGuard(u64);

impl VerificationGuard {
    /// The guard of a producer whose transaction was already open here
    /// when asked: it matches no guard, so the batch is written only if
    /// the transaction is still open (Kafka's VerificationGuard.SENTINEL).
    pub const OPEN_TRANSACTION: VerificationGuard = VerificationGuard(0);

    /// Whether the producer's transaction was open, so that there is
    /// nothing to ask its coordinator.
    pub fn is_open_transaction(self) -> bool {
        self == Self::OPEN_TRANSACTION
    }
}

/// One producer's guard that is out.
#[derive(Debug)]
struct Outstanding {
    epoch: i16,
    guard: VerificationGuard,
    /// When it was handed out: one never used expires with the producers.
    since_ms: i64,
}

/// The guards a partition has handed out, by producer id.
#[derive(Debug, Default)]
pub(crate) struct Verifications {
    outstanding: HashMap<i64, Outstanding>,
    last: u64,
}

impl Verifications {
    /// The guard for `producer_id`'s transaction at `epoch`: the one out
    /// already at that epoch (a retry, or the producer's next request
    /// before the first was written), else a new one.
    pub(crate) fn start(&mut self, producer_id: i64, epoch: i16, now_ms: i64) -> VerificationGuard {
        if let Some(out) = self.outstanding.get(&producer_id) {
            if out.epoch == epoch {
                return out.guard;
            }
        }
        self.last += 1;
        let guard = VerificationGuard(self.last);
        self.outstanding.insert(
            producer_id,
            Outstanding {
                epoch,
                guard,
                since_ms: now_ms,
            },
        );
        guard
    }

    /// Whether `guard` is `producer_id`'s guard at `epoch`, still out.
    pub(crate) fn holds(&self, producer_id: i64, epoch: i16, guard: VerificationGuard) -> bool {
        !guard.is_open_transaction()
            && self
                .outstanding
                .get(&producer_id)
                .is_some_and(|out| out.epoch == epoch && out.guard == guard)
    }

    /// Takes `producer_id`'s guard back: its transaction opened here, or
    /// a marker ended what it had.
    pub(crate) fn end(&mut self, producer_id: i64) {
        self.outstanding.remove(&producer_id);
    }

    /// Takes back `producer_id`'s `guard` if it is still out: its
    /// verification failed, so nothing will bring it to an append. (A
    /// client could otherwise leave a guard per made-up producer id until
    /// expiry.)
    pub(crate) fn abandon(&mut self, producer_id: i64, guard: VerificationGuard) {
        if self
            .outstanding
            .get(&producer_id)
            .is_some_and(|out| out.guard == guard)
        {
            self.outstanding.remove(&producer_id);
        }
    }

    /// Forgets guards handed out `expiration_ms` or more before `now_ms`.
    pub(crate) fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) {
        self.outstanding
            .retain(|_, out| now_ms.saturating_sub(out.since_ms) < expiration_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_holds_until_taken_back_and_a_new_epoch_gets_a_new_one() {
        let mut verifications = Verifications::default();
        let guard = verifications.start(7, 0, 1_000);
        assert!(!guard.is_open_transaction());
        assert_eq!(verifications.start(7, 0, 1_001), guard, "a retry shares it");
        assert!(verifications.holds(7, 0, guard));
        assert!(!verifications.holds(7, 1, guard));
        assert!(!verifications.holds(8, 0, guard));
        verifications.end(7);
        assert!(!verifications.holds(7, 0, guard), "a marker took it back");
        let next = verifications.start(7, 0, 1_002);
        assert_ne!(next, guard, "the old guard never matches again");
        let bumped = verifications.start(7, 1, 1_003);
        assert!(verifications.holds(7, 1, bumped));
        assert!(!verifications.holds(7, 0, next));
        assert!(!verifications.holds(7, 1, VerificationGuard::OPEN_TRANSACTION));
    }

    #[test]
    fn an_abandoned_guard_is_taken_back_but_not_a_newer_one() {
        let mut verifications = Verifications::default();
        let failed = verifications.start(7, 0, 1_000);
        verifications.abandon(7, failed);
        assert!(!verifications.holds(7, 0, failed));
        assert!(verifications.outstanding.is_empty());
        let newer = verifications.start(7, 1, 1_001);
        verifications.abandon(7, failed);
        assert!(verifications.holds(7, 1, newer), "another guard stays out");
    }

    #[test]
    fn unused_guards_expire() {
        let mut verifications = Verifications::default();
        let old = verifications.start(1, 0, 1_000);
        let young = verifications.start(2, 0, 5_000);
        verifications.remove_expired(6_000, 2_000);
        assert!(!verifications.holds(1, 0, old));
        assert!(verifications.holds(2, 0, young));
    }
}
