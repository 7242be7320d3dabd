//! The group coordinator's limits, under Kafka's broker property names.

/// Limits and delays of the classic group protocol. Plain data, owned by
/// the [`GroupCoordinator`](crate::GroupCoordinator) it is given to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms` (Kafka default 6000): the smallest
    /// session timeout a member may ask for.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (Kafka default 1800000): the largest
    /// session timeout a member may ask for.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms` (Kafka default 3000): how long
    /// the first rebalance of an Empty group waits for more members,
    /// extended by this much again (up to the rebalance timeout) each time
    /// a new member joins meanwhile. 0 disables the wait.
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size` (Kafka default `i32::MAX`): the most members a
    /// group may have.
    pub group_max_size: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            group_max_size: i32::MAX as usize,
        }
    }
}

/// How long a new member (one that has never received a JoinGroup
/// response) may wait in a rebalance before it is removed: Kafka's
/// `GroupCoordinator.NewMemberJoinTimeoutMs`. Its JoinGroup cannot carry
/// heartbeats, so without this a client that gave up would linger.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;
