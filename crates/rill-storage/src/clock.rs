//! The broker's wall clock, in Kafka's unit: milliseconds since the Unix
//! epoch, as record timestamps, retention and segment.ms count it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. A clock set before 1970 reads 0 and
/// one past the year 292 million reads `i64::MAX`: neither can happen on
/// a running system, and neither is worth an error at every call site.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_after_this_code_was_written() {
        // 2024-01-01T00:00:00Z: a clock read in seconds or microseconds
        // would be far off either side.
        let now = now_ms();
        assert!(
            now > 1_704_067_200_000 && now < 1_704_067_200_000 * 10,
            "{now}"
        );
    }
}
