//! Kafka's "now": milliseconds since the Unix epoch, for timestamps the
//! broker stamps and the deadlines of groups and replicas.

/// See the module doc. A clock before 1970 reads 0.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
