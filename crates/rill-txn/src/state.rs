//! The states of a transactional id, with Kafka's ids (the TransactionStatus
//! byte of `__transaction_state`) and names (DescribeTransactions,
//! ListTransactions).

/// Where a transactional id's transaction stands (Kafka's TransactionState).
///
/// ```text
/// Empty ──AddPartitions──▶ Ongoing ──EndTxn(commit)──▶ PrepareCommit ──markers──▶ CompleteCommit
///   ▲                       │  ▲ AddPartitions           (EndTxn answered here)
///   │                       │  └─────┘
///   │                       ├──EndTxn(abort)──────────▶ PrepareAbort ──markers──▶ CompleteAbort
///   │                       └──timeout / InitProducerId: epoch fence ─▲
///   └──InitProducerId (epoch bump)── Empty | CompleteCommit | CompleteAbort
/// ```
///
/// `PrepareEpochFence` and `Dead` are pending states only: Kafka never
/// completes a transition into them, so they do not appear in a loaded
/// log written by a healthy coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    /// No transaction open (new or just re-initialised producer).
    Empty,
    /// Partitions were added; the transaction is open.
    Ongoing,
    /// Commit decided and logged; markers being written.
    PrepareCommit,
    /// Abort decided and logged; markers being written.
    PrepareAbort,
    /// Commit markers all written.
    CompleteCommit,
    /// Abort markers all written.
    CompleteAbort,
    /// The transactional id is being expired (tombstone pending).
    Dead,
    /// The coordinator is bumping the epoch to fence a producer before
    /// aborting its transaction.
    PrepareEpochFence,
}

impl TxnState {
    /// Every state, in id order.
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// Kafka's TransactionStatus byte.
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state of a TransactionStatus byte; `None` for an unknown one.
    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|state| state.id() == id)
    }

    /// Kafka's name, as DescribeTransactions and ListTransactions show it.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The state of a name (ListTransactions' state filters); `None` for an
    /// unknown name.
    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|state| state.name() == name)
    }

    /// Whether a transition from `previous` into `self` is legal (Kafka's
    /// `validPreviousStates`).
    pub fn valid_from(self, previous: TxnState) -> bool {
        use TxnState::*;
        match self {
            Empty => matches!(previous, Empty | CompleteCommit | CompleteAbort),
            Ongoing => matches!(previous, Ongoing | Empty | CompleteCommit | CompleteAbort),
            PrepareCommit => previous == Ongoing,
            PrepareAbort => matches!(previous, Ongoing | PrepareEpochFence),
            CompleteCommit => previous == PrepareCommit,
            CompleteAbort => previous == PrepareAbort,
            Dead => matches!(previous, Empty | CompleteCommit | CompleteAbort),
            PrepareEpochFence => previous == Ongoing,
        }
    }

    /// Whether an idle transactional id in this state may expire.
    pub fn is_expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

impl std::fmt::Display for TxnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_kafkas() {
        let expected = [
            (0, "Empty"),
            (1, "Ongoing"),
            (2, "PrepareCommit"),
            (3, "PrepareAbort"),
            (4, "CompleteCommit"),
            (5, "CompleteAbort"),
            (6, "Dead"),
            (7, "PrepareEpochFence"),
        ];
        for (state, (id, name)) in TxnState::ALL.into_iter().zip(expected) {
            assert_eq!(state.id(), id);
            assert_eq!(state.name(), name);
            assert_eq!(TxnState::from_id(id), Some(state));
            assert_eq!(TxnState::from_name(name), Some(state));
        }
        assert_eq!(TxnState::from_id(8), None);
        assert_eq!(TxnState::from_name("ongoing"), None);
    }

    #[test]
    fn transitions_follow_kafka() {
        use TxnState::*;
        assert!(PrepareCommit.valid_from(Ongoing));
        assert!(!PrepareCommit.valid_from(Empty));
        assert!(PrepareAbort.valid_from(PrepareEpochFence));
        assert!(!CompleteCommit.valid_from(PrepareAbort));
        assert!(Ongoing.valid_from(CompleteAbort));
        assert!(!Empty.valid_from(Ongoing));
    }
}
