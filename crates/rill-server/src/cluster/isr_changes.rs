//! The ISR changes of partitions this broker leads, as the metadata
//! brings them — its own (a follower fell behind) or the controller's (a
//! broker was fenced): counted for the metrics, and logged — a shrink at
//! WARN (one more failure and acks=all writes may be refused), a growth
//! at INFO.
//!
//! Thread-safe: the ISR task records, a scrape reads.

use std::sync::atomic::{AtomicU64, Ordering};

use rill_partition::TopicPartition;

/// A partition's new ISR, against the one it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IsrChange {
    pub from: Vec<i32>,
    pub to: Vec<i32>,
}

impl IsrChange {
    fn removed(&self) -> Vec<i32> {
        self.from
            .iter()
            .filter(|b| !self.to.contains(b))
            .copied()
            .collect()
    }

    fn added(&self) -> Vec<i32> {
        self.to
            .iter()
            .filter(|b| !self.from.contains(b))
            .copied()
            .collect()
    }
}

/// Committed shrinks and growths since the broker started.
#[derive(Debug, Default)]
pub(crate) struct IsrChangeCounts {
    shrinks: AtomicU64,
    expands: AtomicU64,
}

impl IsrChangeCounts {
    /// `change` of `tp`'s ISR was committed.
    pub(crate) fn committed(&self, tp: &TopicPartition, change: &IsrChange) {
        let (removed, added) = (change.removed(), change.added());
        if !removed.is_empty() {
            self.shrinks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                partition = %tp, from = ?change.from, to = ?change.to,
                "the ISR shrank: replica {removed:?} left it (fell more than \
                 replica.lag.time.max.ms behind, or its broker was fenced)"
            );
        }
        if !added.is_empty() {
            self.expands.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                partition = %tp, from = ?change.from, to = ?change.to,
                "the ISR grew: replica {added:?} caught up"
            );
        }
    }

    /// (shrinks, expansions).
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.shrinks.load(Ordering::Relaxed),
            self.expands.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_counts_as_a_shrink_a_growth_or_both() {
        let counts = IsrChangeCounts::default();
        let tp = TopicPartition::new("t", 0);
        let change = |from: &[i32], to: &[i32]| IsrChange {
            from: from.to_vec(),
            to: to.to_vec(),
        };
        counts.committed(&tp, &change(&[1, 2, 3], &[1, 2]));
        assert_eq!(counts.counts(), (1, 0));
        counts.committed(&tp, &change(&[1, 2], &[1, 2, 3]));
        assert_eq!(counts.counts(), (1, 1));
        counts.committed(&tp, &change(&[1, 2], &[1, 3]));
        assert_eq!(counts.counts(), (2, 2));
    }
}
