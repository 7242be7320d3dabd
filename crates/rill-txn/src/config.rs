//! The transaction coordinator's limits, under Kafka's broker property names.

/// Limits of the transaction coordinator. Plain data, owned by the
/// [`TxnCoordinator`](crate::TxnCoordinator) it is given to. How often to
/// call [`abort_timed_out`](crate::TxnCoordinator::abort_timed_out)
/// (`transaction.abort.timed.out.transaction.cleanup.interval.ms`, Kafka
/// default 10000) and
/// [`expire_transactional_ids`](crate::TxnCoordinator::expire_transactional_ids)
/// (`transaction.remove.expired.transaction.cleanup.interval.ms`, 3600000)
/// is the host's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms` (Kafka default 900000): the largest
    /// transaction timeout a producer may ask for.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms` (Kafka default 604800000): how
    /// long an idle transactional id is kept.
    pub transactional_id_expiration_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
        }
    }
}
