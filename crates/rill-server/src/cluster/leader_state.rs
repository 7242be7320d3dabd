//! What the leader of a partition knows of its followers, and Kafka's
//! rules over it: each follower's log end offset (the offset of its last
//! fetch), when it was last caught up, the high watermark (the minimum
//! log end over the ISR), and which followers should leave or join the
//! ISR. Sans I/O: the replica manager feeds it fetches and the clock, and
//! proposes the ISR changes it suggests.
//!
//! Not thread-safe by itself: the replica manager keeps it behind its lock.

use std::collections::BTreeMap;

use rill_storage::Offset;

/// One follower, as its fetches show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FollowerProgress {
    /// The offset of its last fetch: everything below it is in its log.
    /// `None` until it first fetches from this leader.
    log_end: Option<Offset>,
    /// The last time its log end reached the leader's (Kafka's
    /// lastCaughtUpTimeMs).
    last_caught_up_ms: i64,
    /// The leader's log end and the time at its previous fetch.
    previous_fetch: Option<(Offset, i64)>,
}

/// The leader's side of one partition. See the module doc.
#[derive(Clone, Debug)]
pub(crate) struct LeaderState {
    pub(crate) broker_id: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) partition_epoch: i32,
    /// The ISR as committed in the metadata.
    pub(crate) isr: Vec<i32>,
    /// An ISR proposed and not yet committed; while it is pending the high
    /// watermark counts the members of both (Kafka's maximal ISR), and no
    /// other change is proposed.
    pub(crate) pending_isr: Option<Vec<i32>>,
    /// The leader's log end when it became leader: a follower joins the
    /// ISR only once it has reached it (it then holds every record of
    /// earlier epochs the leader has).
    epoch_start_offset: Offset,
    followers: BTreeMap<i32, FollowerProgress>,
}

impl LeaderState {
    /// The state of a broker that has just become leader at
    /// `leader_epoch`, with its log ending at `log_end`. Every follower
    /// counts as caught up now (Kafka does the same), so none leaves the
    /// ISR before it has had replica.lag.time.max.ms to fetch.
    pub(crate) fn new(
        broker_id: i32,
        (leader_epoch, partition_epoch): (i32, i32),
        replicas: &[i32],
        isr: Vec<i32>,
        log_end: Offset,
        now_ms: i64,
    ) -> LeaderState {
        let followers = replicas
            .iter()
            .filter(|r| **r != broker_id)
            .map(|r| {
                let progress = FollowerProgress {
                    log_end: None,
                    last_caught_up_ms: now_ms,
                    previous_fetch: None,
                };
                (*r, progress)
            })
            .collect();
        LeaderState {
            broker_id,
            leader_epoch,
            partition_epoch,
            isr,
            pending_isr: None,
            epoch_start_offset: log_end,
            followers,
        }
    }

    /// The metadata moved on at the same leader epoch: a committed ISR
    /// change (ours or not) and the replicas it now has.
    pub(crate) fn update(
        &mut self,
        partition_epoch: i32,
        replicas: &[i32],
        isr: Vec<i32>,
        now_ms: i64,
    ) {
        if partition_epoch != self.partition_epoch {
            self.pending_isr = None;
        }
        self.partition_epoch = partition_epoch;
        self.isr = isr;
        self.followers
            .retain(|id, _| replicas.contains(id) && *id != self.broker_id);
        for replica in replicas.iter().filter(|r| **r != self.broker_id) {
            self.followers.entry(*replica).or_insert(FollowerProgress {
                log_end: None,
                last_caught_up_ms: now_ms,
                previous_fetch: None,
            });
        }
    }

    /// A fetch from `follower` at `fetch_offset`, with the leader's log
    /// ending at `leader_log_end`. Returns false for a broker that is not
    /// a follower of this partition.
    pub(crate) fn follower_fetched(
        &mut self,
        follower: i32,
        fetch_offset: Offset,
        leader_log_end: Offset,
        now_ms: i64,
    ) -> bool {
        let Some(progress) = self.followers.get_mut(&follower) else {
            return false;
        };
        // Kafka's rule: caught up now if it asks for the log end; caught up
        // at the previous fetch if it asks for what the log end was then.
        if fetch_offset >= leader_log_end {
            progress.last_caught_up_ms = now_ms;
        } else if let Some((previous_end, previous_ms)) = progress.previous_fetch
            && fetch_offset >= previous_end
        {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(previous_ms);
        }
        progress.previous_fetch = Some((leader_log_end, now_ms));
        progress.log_end = Some(fetch_offset);
        true
    }

    /// The ISR the high watermark and acks=all count: the committed one and
    /// any pending one together.
    pub(crate) fn maximal_isr(&self) -> Vec<i32> {
        let mut members = self.isr.clone();
        for member in self.pending_isr.iter().flatten() {
            if !members.contains(member) {
                members.push(*member);
            }
        }
        members
    }

    /// The minimum log end over the maximal ISR, the leader's being
    /// `leader_end` (its acknowledged end: under `fsync`, what is on its
    /// disk). `None` while a member has not fetched from this leader yet:
    /// nothing is known to be replicated until it has.
    pub(crate) fn high_watermark(&self, leader_end: Offset) -> Option<Offset> {
        let mut high_watermark = leader_end;
        for member in self.maximal_isr() {
            if member == self.broker_id {
                continue;
            }
            let end = self.followers.get(&member).and_then(|p| p.log_end)?;
            high_watermark = high_watermark.min(end);
        }
        Some(high_watermark)
    }

    /// The ISR the leader should propose, if it differs from the current
    /// one and nothing is pending: without the members not caught up for
    /// longer than `lag_max_ms`, with the followers that have reached the
    /// high watermark and this epoch's start and `may_join` (unfenced).
    /// `None`: nothing to change.
    pub(crate) fn wanted_isr(
        &self,
        high_watermark: Offset,
        (now_ms, lag_max_ms): (i64, i64),
        may_join: impl Fn(i32) -> bool,
    ) -> Option<Vec<i32>> {
        if self.pending_isr.is_some() {
            return None;
        }
        let mut wanted: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|member| {
                *member == self.broker_id
                    || self
                        .followers
                        .get(member)
                        .is_some_and(|p| now_ms - p.last_caught_up_ms <= lag_max_ms)
            })
            .collect();
        for (follower, progress) in &self.followers {
            let caught_up = progress
                .log_end
                .is_some_and(|end| end >= high_watermark && end >= self.epoch_start_offset);
            // Caught up lately too: a member just dropped for lag holds
            // the high watermark back itself, so reaching it proves nothing.
            let recent = now_ms - progress.last_caught_up_ms <= lag_max_ms;
            if caught_up && recent && !wanted.contains(follower) && may_join(*follower) {
                wanted.push(*follower);
            }
        }
        if !wanted.contains(&self.broker_id) {
            wanted.insert(0, self.broker_id);
        }
        let mut current = self.isr.clone();
        current.sort_unstable();
        let mut sorted = wanted.clone();
        sorted.sort_unstable();
        (sorted != current).then_some(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG_MS: i64 = 10_000;

    fn leader() -> LeaderState {
        LeaderState::new(1, (3, 7), &[1, 2, 3], vec![1, 2, 3], Offset(100), 0)
    }

    #[test]
    fn the_high_watermark_is_the_lowest_log_end_in_the_isr() {
        let mut state = leader();
        // No follower has fetched: nothing is known to be replicated.
        assert_eq!(state.high_watermark(Offset(150)), None);
        state.follower_fetched(2, Offset(120), Offset(150), 1);
        assert_eq!(state.high_watermark(Offset(150)), None);
        state.follower_fetched(3, Offset(140), Offset(150), 1);
        assert_eq!(state.high_watermark(Offset(150)), Some(Offset(120)));
        // The leader's own acknowledged end bounds it too.
        assert_eq!(state.high_watermark(Offset(110)), Some(Offset(110)));
        // Out of the ISR, a follower no longer holds it back.
        state.update(8, &[1, 2, 3], vec![1, 3], 2);
        assert_eq!(state.high_watermark(Offset(150)), Some(Offset(140)));
    }

    #[test]
    fn a_follower_behind_for_longer_than_the_lag_leaves_the_isr() {
        let mut state = leader();
        for t in [1_000, 5_000, 9_000] {
            state.follower_fetched(2, Offset(150), Offset(150), t);
            state.follower_fetched(3, Offset(100), Offset(150), t);
        }
        assert_eq!(
            state.wanted_isr(Offset(100), (9_000, LAG_MS), |_| true),
            None
        );
        // Broker 3 was caught up last at 0 (becoming leader counts).
        assert_eq!(
            state.wanted_isr(Offset(100), (10_001, LAG_MS), |_| true),
            Some(vec![1, 2])
        );
    }

    #[test]
    fn a_follower_fetching_what_was_the_end_at_its_last_fetch_counts_as_caught_up() {
        let mut state = leader();
        // The leader's log moves on between fetches; the follower always
        // asks for the end as of its previous fetch.
        let mut end = 150;
        for t in (1..=30).map(|i| i * 1_000) {
            state.follower_fetched(2, Offset(end), Offset(end + 10), t);
            state.follower_fetched(3, Offset(end), Offset(end + 10), t);
            end += 10;
        }
        assert_eq!(
            state.wanted_isr(Offset(100), (31_000, LAG_MS), |_| true),
            None
        );
    }

    #[test]
    fn a_follower_rejoins_once_it_reaches_the_high_watermark_and_the_epoch_start() {
        let mut state = LeaderState::new(1, (3, 7), &[1, 2, 3], vec![1, 2], Offset(100), 0);
        state.follower_fetched(2, Offset(130), Offset(130), 1);
        state.follower_fetched(3, Offset(90), Offset(130), 1);
        assert_eq!(state.wanted_isr(Offset(130), (1, LAG_MS), |_| true), None);
        state.follower_fetched(3, Offset(130), Offset(130), 2);
        assert_eq!(
            state.wanted_isr(Offset(130), (2, LAG_MS), |_| true),
            Some(vec![1, 2, 3])
        );
        // While a change is pending, nothing else is proposed, and the
        // high watermark counts the joining member too.
        state.pending_isr = Some(vec![1, 2, 3]);
        assert_eq!(state.wanted_isr(Offset(130), (2, LAG_MS), |_| true), None);
        assert_eq!(state.maximal_isr(), vec![1, 2, 3]);
        // The commit arrives with a new partition epoch.
        state.update(8, &[1, 2, 3], vec![1, 2, 3], 3);
        assert_eq!(state.pending_isr, None);
    }

    #[test]
    fn only_followers_of_the_partition_are_tracked() {
        let mut state = leader();
        assert!(!state.follower_fetched(9, Offset(1), Offset(150), 1));
        assert!(!state.follower_fetched(1, Offset(1), Offset(150), 1));
        assert!(state.follower_fetched(2, Offset(1), Offset(150), 1));
    }
}
