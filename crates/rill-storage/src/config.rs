//! Per-log configuration, with Kafka's names and defaults.

use rill_record::TimestampType;

use crate::error::ConfigError;

/// When appended data reaches the disk, and so when an append may be
/// acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// An append is acknowledged only after fdatasync covers it. Concurrent
    /// appends share one sync (group commit). The default: safe by default.
    Fsync,
    /// Kafka's flush.messages / flush.ms: a sync once `messages` records
    /// are unflushed (that append waits for it, as in Kafka) or `ms` after
    /// the last sync; other appends are acknowledged from the page cache.
    Interval { messages: u64, ms: u64 },
    /// Page cache only; the OS writes back when it likes. Safety comes from
    /// replication, as with Kafka's default.
    None,
}

/// Configuration of one log, by Kafka topic-config name. Plain values,
/// so it is `Copy`: the append path takes a copy without allocating.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogConfig {
    /// segment.bytes: roll a segment before it would exceed this.
    pub segment_bytes: u32,
    /// segment.ms: roll a segment once its first batch is this old.
    pub segment_ms: i64,
    /// segment.index.bytes: the size each index file is preallocated to;
    /// a full index rolls the segment.
    pub segment_index_bytes: u32,
    /// index.interval.bytes: bytes of log between sparse index entries.
    pub index_interval_bytes: u32,
    /// max.message.bytes: the largest batch accepted.
    pub max_message_bytes: u32,
    /// retention.ms: delete segments whose newest record is older; -1 keeps all.
    pub retention_ms: i64,
    /// retention.bytes: delete old segments while the log is larger; -1 keeps all.
    pub retention_bytes: i64,
    /// flush.policy (Rill), with flush.messages and flush.ms for `interval`.
    pub flush: FlushPolicy,
    /// message.timestamp.type: LogAppendTime makes the broker stamp batches.
    pub timestamp_type: TimestampType,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            // Kafka's default: 1 MiB of records plus the 12-byte log overhead.
            max_message_bytes: 1024 * 1024 + 12,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            flush: FlushPolicy::Fsync,
            timestamp_type: TimestampType::CreateTime,
        }
    }
}

/// The smallest segment.bytes accepted: room for a few small batches.
pub const SEGMENT_BYTES_MIN: u32 = 1024;
/// The largest segment.bytes: positions in a segment are u32, and Kafka caps it at i32::MAX.
pub const SEGMENT_BYTES_MAX: u32 = i32::MAX as u32;
/// The smallest segment.index.bytes: two time-index entries (one is kept for the roll).
pub const SEGMENT_INDEX_BYTES_MIN: u32 = 24;

impl LogConfig {
    /// Checks the values against the bounds the storage relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |name: &'static str, value: i64, min: i64, max: i64| {
            if value < min || value > max {
                Err(ConfigError::OutOfRange {
                    name,
                    value,
                    min,
                    max,
                })
            } else {
                Ok(())
            }
        };
        check(
            "segment.bytes",
            i64::from(self.segment_bytes),
            i64::from(SEGMENT_BYTES_MIN),
            i64::from(SEGMENT_BYTES_MAX),
        )?;
        check("segment.ms", self.segment_ms, 1, i64::MAX)?;
        check(
            "segment.index.bytes",
            i64::from(self.segment_index_bytes),
            i64::from(SEGMENT_INDEX_BYTES_MIN),
            i64::from(i32::MAX),
        )?;
        check(
            "index.interval.bytes",
            i64::from(self.index_interval_bytes),
            0,
            i64::from(i32::MAX),
        )?;
        check(
            "max.message.bytes",
            i64::from(self.max_message_bytes),
            0,
            i64::from(i32::MAX),
        )?;
        check("retention.ms", self.retention_ms, -1, i64::MAX)?;
        check("retention.bytes", self.retention_bytes, -1, i64::MAX)?;
        if let FlushPolicy::Interval { messages, ms } = self.flush {
            check(
                "flush.messages",
                i64::try_from(messages).unwrap_or(i64::MAX),
                1,
                i64::MAX,
            )?;
            check(
                "flush.ms",
                i64::try_from(ms).unwrap_or(i64::MAX),
                1,
                i64::MAX,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let config = LogConfig::default();
        config.validate().unwrap();
        assert_eq!(config.segment_bytes, 1_073_741_824);
        assert_eq!(config.retention_ms, 604_800_000);
        assert_eq!(config.index_interval_bytes, 4096);
        assert_eq!(config.max_message_bytes, 1_048_588);
        assert_eq!(config.flush, FlushPolicy::Fsync);
    }

    #[test]
    fn out_of_range_values_name_the_setting() {
        let config = LogConfig {
            segment_bytes: 10,
            ..LogConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("segment.bytes"), "{err}");
        let config = LogConfig {
            flush: FlushPolicy::Interval {
                messages: 0,
                ms: 10,
            },
            ..LogConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("flush.messages")
        );
    }
}
