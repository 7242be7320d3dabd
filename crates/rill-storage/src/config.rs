//! Per-log configuration, with Kafka's names and defaults.

use rill_record::{RecordRules, TimestampType, TopicCompression};

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

/// cleanup.policy: what happens to old data. Kafka's values are `delete`,
/// `compact` and `compact,delete` (both). An empty policy keeps everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Old segments are deleted by retention.ms / retention.bytes.
    pub delete: bool,
    /// Older records of a key are removed by log compaction.
    pub compact: bool,
}

impl CleanupPolicy {
    /// `delete`, Kafka's default.
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    /// `compact`.
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };
    /// `compact,delete`.
    pub const COMPACT_DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: true,
    };
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
    /// cleanup.policy: retention deletes segments only when it includes
    /// `delete`; compaction runs only when it includes `compact`.
    pub cleanup_policy: CleanupPolicy,
    /// delete.retention.ms: how long compaction keeps a tombstone (and so
    /// how long a consumer has to see it) after first cleaning it.
    pub delete_retention_ms: i64,
    /// min.cleanable.dirty.ratio: compaction starts once the uncompacted
    /// share of the cleanable bytes is above this.
    pub min_cleanable_dirty_ratio: f64,
    /// min.compaction.lag.ms: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// max.compaction.lag.ms: a record older than this is compacted even
    /// below min.cleanable.dirty.ratio.
    pub max_compaction_lag_ms: i64,
    /// compression.type (with its compression.*.level): the codec batches
    /// are stored in.
    pub compression: TopicCompression,
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
            cleanup_policy: CleanupPolicy::DELETE,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            compression: TopicCompression::Producer,
        }
    }
}

/// Bound on a batch's records once expanded (decompressed), wherever the
/// broker looks inside a batch: produce-time record rules, compaction,
/// offset-by-timestamp lookups.
pub(crate) const EXPANDED_RECORDS_BYTES_MAX: usize = 128 * 1024 * 1024;

/// The smallest segment.bytes accepted: room for a few small batches.
pub const SEGMENT_BYTES_MIN: u32 = 1024;
/// The largest segment.bytes: positions in a segment are u32, and Kafka caps it at i32::MAX.
pub const SEGMENT_BYTES_MAX: u32 = i32::MAX as u32;
/// The smallest segment.index.bytes: two time-index entries (one is kept for the roll).
pub const SEGMENT_INDEX_BYTES_MIN: u32 = 24;

impl LogConfig {
    /// What this log asks of the records of a produced batch: keys on a
    /// compacted log, and its codec (see [`rill_record::apply_record_rules`]).
    pub fn record_rules(&self) -> RecordRules {
        RecordRules {
            keys_required: self.cleanup_policy.compact,
            compression: self.compression,
            expanded_bytes_max: EXPANDED_RECORDS_BYTES_MAX,
        }
    }

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
        check("delete.retention.ms", self.delete_retention_ms, 0, i64::MAX)?;
        check(
            "min.compaction.lag.ms",
            self.min_compaction_lag_ms,
            0,
            i64::MAX,
        )?;
        // Kafka refuses a max lag below the min lag.
        check(
            "max.compaction.lag.ms",
            self.max_compaction_lag_ms,
            self.min_compaction_lag_ms.max(1),
            i64::MAX,
        )?;
        let ratio = self.min_cleanable_dirty_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(ConfigError::RatioOutOfRange {
                name: "min.cleanable.dirty.ratio",
                value: ratio.to_string(),
            });
        }
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
        assert_eq!(config.cleanup_policy, CleanupPolicy::DELETE);
        assert_eq!(config.delete_retention_ms, 86_400_000);
        assert_eq!(config.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(config.min_compaction_lag_ms, 0);
        assert_eq!(config.max_compaction_lag_ms, i64::MAX);
    }

    #[test]
    fn compaction_settings_are_checked() {
        let bad = [
            LogConfig {
                min_cleanable_dirty_ratio: 1.5,
                ..LogConfig::default()
            },
            LogConfig {
                min_cleanable_dirty_ratio: f64::NAN,
                ..LogConfig::default()
            },
            LogConfig {
                delete_retention_ms: -1,
                ..LogConfig::default()
            },
            LogConfig {
                min_compaction_lag_ms: 10,
                max_compaction_lag_ms: 5,
                ..LogConfig::default()
            },
        ];
        let names = [
            "min.cleanable.dirty.ratio",
            "min.cleanable.dirty.ratio",
            "delete.retention.ms",
            "max.compaction.lag.ms",
        ];
        for (config, name) in bad.iter().zip(names) {
            let err = config.validate().unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
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
