//! The states of a classic group.

/// A classic group's state, as Kafka names them. Transitions:
/// Empty → PreparingRebalance → CompletingRebalance → Stable, back to
/// PreparingRebalance from Stable or CompletingRebalance, to Empty when a
/// rebalance ends with no members, and to Dead when the group is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupState {
    /// No members; offsets may still be committed (simple consumers).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Members joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assignment distributed; members heartbeat.
    Stable,
    /// Removed (deleted, or never existed in a description).
    Dead,
}

impl GroupState {
    /// Kafka's name for the state, as ListGroups and DescribeGroups show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }

    /// Parses Kafka's name, ignoring case (ListGroups v4 state filters are
    /// matched that way).
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Empty,
            Self::PreparingRebalance,
            Self::CompletingRebalance,
            Self::Stable,
            Self::Dead,
        ]
        .into_iter()
        .find(|state| state.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether Kafka allows moving from `self` to `to`.
    pub(crate) fn can_transition_to(self, to: Self) -> bool {
        match to {
            Self::PreparingRebalance => {
                matches!(self, Self::Stable | Self::CompletingRebalance | Self::Empty)
            }
            Self::CompletingRebalance => self == Self::PreparingRebalance,
            Self::Stable => self == Self::CompletingRebalance,
            Self::Empty => self == Self::PreparingRebalance,
            Self::Dead => true,
        }
    }
}

impl std::fmt::Display for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::GroupState::*;

    #[test]
    fn transitions_follow_kafka() {
        assert!(Empty.can_transition_to(PreparingRebalance));
        assert!(Stable.can_transition_to(PreparingRebalance));
        assert!(!PreparingRebalance.can_transition_to(Stable));
        assert!(!Empty.can_transition_to(CompletingRebalance));
        assert!(CompletingRebalance.can_transition_to(Stable));
        assert!(Stable.can_transition_to(Dead));
    }
}
