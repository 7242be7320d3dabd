//! A member's way from its current assignment to its target one (Kafka's
//! `CurrentAssignmentBuilder`): partitions it must give up are revoked
//! first, and the member stays at its epoch until it acknowledges that
//! (its heartbeat no longer lists them); only then does it move to the
//! target epoch and receive new partitions — each only once its previous
//! owner has released it. So no partition is ever owned by two members.

use super::assignment::{Assignment, TopicId, intersect, minus, overlaps};

/// Kafka's `MemberState`, with its byte values (the records' `State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// At the target epoch with all its target partitions.
    Stable,
    /// Must revoke partitions before it may move on.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions others still own.
    UnreleasedPartitions,
    /// A state this version does not know (read from a record).
    Unknown,
}

impl MemberState {
    pub fn to_byte(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Unknown => 127,
        }
    }

    pub fn from_byte(value: i8) -> MemberState {
        match value {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }

    /// Kafka's name, as ConsumerGroupDescribe and the CLI show it.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
            MemberState::Unknown => "unknown",
        }
    }
}

/// A member's current assignment: what it owns and at which epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAssignment {
    pub epoch: i32,
    /// The epoch before the last bump: a member whose response with the
    /// new epoch was lost may still use it.
    pub previous_epoch: i32,
    pub state: MemberState,
    /// Partitions the member owns and keeps.
    pub assigned: Assignment,
    /// Partitions the member owns and must give up.
    pub revoking: Assignment,
}

impl CurrentAssignment {
    /// A member that has just joined: nothing owned, epoch 0.
    pub fn new() -> CurrentAssignment {
        CurrentAssignment {
            epoch: 0,
            previous_epoch: -1,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            revoking: Assignment::new(),
        }
    }

    fn at_epoch(&self, epoch: i32) -> (i32, i32) {
        if epoch == self.epoch {
            (self.epoch, self.previous_epoch)
        } else {
            (epoch, self.epoch)
        }
    }
}

impl Default for CurrentAssignment {
    fn default() -> Self {
        CurrentAssignment::new()
    }
}

/// The member's next current assignment towards `target` at
/// `target_epoch`. `owned` is what its heartbeat says it owns (`None`:
/// not said, so it is taken to own everything it was given);
/// `owned_by_other` says whether another member still owns a partition.
pub fn reconcile(
    current: &CurrentAssignment,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    owned_by_other: &dyn Fn(TopicId, i32) -> bool,
) -> CurrentAssignment {
    let still_owns = |revoking: &Assignment| owned.is_none_or(|owned| overlaps(owned, revoking));
    match current.state {
        MemberState::Stable if current.epoch == target_epoch => current.clone(),
        MemberState::UnrevokedPartitions => {
            if still_owns(&current.revoking) {
                return current.clone();
            }
            let epoch = (current.epoch + 1).min(target_epoch);
            next(current, epoch, target_epoch, target, owned, owned_by_other)
        }
        MemberState::Stable | MemberState::UnreleasedPartitions | MemberState::Unknown => next(
            current,
            current.epoch,
            target_epoch,
            target,
            owned,
            owned_by_other,
        ),
    }
}

/// Kafka's `computeNextAssignment`.
fn next(
    current: &CurrentAssignment,
    member_epoch: i32,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    owned_by_other: &dyn Fn(TopicId, i32) -> bool,
) -> CurrentAssignment {
    let kept = intersect(&current.assigned, target);
    let to_revoke = minus(&current.assigned, target);
    let pending = minus(target, &current.assigned);
    let still_owns = owned.is_none_or(|owned| overlaps(owned, &to_revoke));
    if !to_revoke.is_empty() && still_owns {
        let (epoch, previous_epoch) = current.at_epoch(member_epoch);
        return CurrentAssignment {
            epoch,
            previous_epoch,
            state: MemberState::UnrevokedPartitions,
            assigned: kept,
            revoking: to_revoke,
        };
    }
    let mut assigned = kept;
    let mut unreleased = false;
    for (topic, partitions) in &pending {
        for partition in partitions {
            if owned_by_other(*topic, *partition) {
                unreleased = true;
            } else {
                assigned.entry(*topic).or_default().insert(*partition);
            }
        }
    }
    let (epoch, previous_epoch) = current.at_epoch(target_epoch);
    CurrentAssignment {
        epoch,
        previous_epoch,
        state: if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        },
        assigned,
        revoking: Assignment::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::assignment::{of, topic_id};

    fn nobody(_: TopicId, _: i32) -> bool {
        false
    }

    fn stable(epoch: i32, assigned: Assignment) -> CurrentAssignment {
        CurrentAssignment {
            epoch,
            previous_epoch: epoch - 1,
            state: MemberState::Stable,
            assigned,
            revoking: Assignment::new(),
        }
    }

    #[test]
    fn a_new_member_gets_free_partitions_at_once() {
        let target = of(&[(1, &[0, 1])]);
        let next = reconcile(
            &CurrentAssignment::new(),
            3,
            &target,
            Some(&Assignment::new()),
            &nobody,
        );
        assert_eq!(next.state, MemberState::Stable);
        assert_eq!((next.epoch, next.previous_epoch), (3, 0));
        assert_eq!(next.assigned, target);
    }

    #[test]
    fn partitions_are_revoked_before_the_epoch_moves() {
        let current = stable(3, of(&[(1, &[0, 1, 2])]));
        let target = of(&[(1, &[0, 1])]);
        let owned = of(&[(1, &[0, 1, 2])]);
        let next = reconcile(&current, 4, &target, Some(&owned), &nobody);
        assert_eq!(next.state, MemberState::UnrevokedPartitions);
        assert_eq!(next.epoch, 3, "the epoch waits for the revocation");
        assert_eq!(next.assigned, of(&[(1, &[0, 1])]));
        assert_eq!(next.revoking, of(&[(1, &[2])]));
        // Still owned: nothing moves.
        assert_eq!(reconcile(&next, 4, &target, Some(&owned), &nobody), next);
        assert_eq!(reconcile(&next, 4, &target, None, &nobody), next);
        // Acknowledged: the member moves to the target epoch.
        let done = reconcile(&next, 4, &target, Some(&of(&[(1, &[0, 1])])), &nobody);
        assert_eq!(done.state, MemberState::Stable);
        assert_eq!((done.epoch, done.previous_epoch), (4, 3));
        assert!(done.revoking.is_empty());
    }

    #[test]
    fn a_partition_still_owned_elsewhere_is_unreleased_until_freed() {
        let current = stable(3, of(&[(1, &[0])]));
        let target = of(&[(1, &[0, 1])]);
        let taken = |topic: TopicId, partition: i32| topic == topic_id(1) && partition == 1;
        let next = reconcile(&current, 4, &target, Some(&of(&[(1, &[0])])), &taken);
        assert_eq!(next.state, MemberState::UnreleasedPartitions);
        assert_eq!(next.epoch, 4, "the member moves on, without the partition");
        assert_eq!(next.assigned, of(&[(1, &[0])]));
        let freed = reconcile(&next, 4, &target, None, &nobody);
        assert_eq!(freed.state, MemberState::Stable);
        assert_eq!(freed.assigned, target);
        assert_eq!(freed.epoch, 4);
    }

    #[test]
    fn revocation_comes_before_new_partitions() {
        let current = stable(5, of(&[(1, &[0, 1])]));
        let target = of(&[(1, &[1]), (2, &[0])]);
        let next = reconcile(&current, 6, &target, None, &nobody);
        assert_eq!(next.state, MemberState::UnrevokedPartitions);
        assert_eq!(
            next.assigned,
            of(&[(1, &[1])]),
            "nothing new while revoking"
        );
        let done = reconcile(&next, 6, &target, Some(&of(&[(1, &[1])])), &nobody);
        assert_eq!(done.assigned, target);
        assert_eq!(done.state, MemberState::Stable);
    }

    #[test]
    fn a_member_that_already_dropped_a_partition_is_not_asked_to_revoke_it() {
        let current = stable(2, of(&[(1, &[0, 1])]));
        let target = of(&[(1, &[0])]);
        let next = reconcile(&current, 3, &target, Some(&of(&[(1, &[0])])), &nobody);
        assert_eq!(next.state, MemberState::Stable);
        assert_eq!(next.epoch, 3);
    }

    #[test]
    fn a_stable_member_at_the_target_epoch_is_unchanged() {
        let current = stable(4, of(&[(1, &[0])]));
        assert_eq!(
            reconcile(&current, 4, &of(&[(1, &[0, 1])]), None, &nobody),
            current
        );
    }

    #[test]
    fn states_round_trip_through_kafkas_bytes() {
        for state in [
            MemberState::Stable,
            MemberState::UnrevokedPartitions,
            MemberState::UnreleasedPartitions,
            MemberState::Unknown,
        ] {
            assert_eq!(MemberState::from_byte(state.to_byte()), state);
        }
    }
}
