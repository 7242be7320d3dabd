//! Topic configs by Kafka's names: their broker-level defaults (log.*),
//! Kafka's default values, and validation. What a topic's configs come to
//! is effective_config.rs.

use std::collections::BTreeMap;

/// How a config's value is read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ValueKind {
    Long {
        min: i64,
        max: i64,
    },
    Int {
        min: i32,
        max: i32,
    },
    Bool,
    /// One of the given words.
    Choice(&'static [&'static str]),
    /// A comma-separated list of the given words.
    List(&'static [&'static str]),
    /// A number between the bounds.
    Double {
        min: f64,
        max: f64,
    },
}

impl ValueKind {
    /// The type name DescribeConfigs v3+ reports (Kafka's ConfigType ids).
    pub(crate) fn config_type(self) -> i8 {
        match self {
            ValueKind::Bool => 1,
            ValueKind::Choice(_) => 2,
            ValueKind::Int { .. } => 3,
            ValueKind::Long { .. } => 5,
            ValueKind::Double { .. } => 6,
            ValueKind::List(_) => 7,
        }
    }
}

/// One topic config: its name, the broker property that sets its default,
/// and Kafka's default value.
#[derive(Debug)]
pub(crate) struct TopicConfigDef {
    pub name: &'static str,
    pub broker_name: &'static str,
    pub default: &'static str,
    pub kind: ValueKind,
    pub doc: &'static str,
}

const LONG: ValueKind = ValueKind::Long {
    min: 0,
    max: i64::MAX,
};
const LONG_OR_UNLIMITED: ValueKind = ValueKind::Long {
    min: -1,
    max: i64::MAX,
};

/// Every topic config Rill accepts, sorted by name.
pub(crate) const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        broker_name: "log.cleanup.policy",
        default: "delete",
        kind: ValueKind::List(&["delete", "compact"]),
        doc: "delete: remove old segments by retention.ms/retention.bytes; compact: keep the latest record of each key.",
    },
    TopicConfigDef {
        name: "compression.gzip.level",
        broker_name: "compression.gzip.level",
        default: "-1",
        kind: ValueKind::Int { min: -1, max: 9 },
        doc: "The gzip level used when compression.type is gzip (-1: gzip's default, 6).",
    },
    TopicConfigDef {
        name: "compression.lz4.level",
        broker_name: "compression.lz4.level",
        default: "9",
        kind: ValueKind::Int { min: 1, max: 17 },
        doc: "The lz4 level used when compression.type is lz4 (accepted; Rill's lz4 encoder has one level).",
    },
    TopicConfigDef {
        name: "compression.type",
        broker_name: "compression.type",
        default: "producer",
        kind: ValueKind::Choice(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        doc: "producer: batches are stored as the producer compressed them; a codec: batches in another codec are recompressed with it.",
    },
    TopicConfigDef {
        name: "compression.zstd.level",
        broker_name: "compression.zstd.level",
        default: "3",
        kind: ValueKind::Int {
            min: -131_072,
            max: 22,
        },
        doc: "The zstd level used when compression.type is zstd.",
    },
    TopicConfigDef {
        name: "delete.retention.ms",
        broker_name: "log.cleaner.delete.retention.ms",
        default: "86400000",
        kind: LONG,
        doc: "How long tombstones are kept in compacted topics.",
    },
    TopicConfigDef {
        name: "errors.deadletterqueue.group.enable",
        broker_name: "errors.deadletterqueue.group.enable",
        default: "false",
        kind: ValueKind::Bool,
        doc: "Whether share groups may write the records they give up on to this topic (KIP-1191).",
    },
    TopicConfigDef {
        name: "file.delete.delay.ms",
        broker_name: "log.segment.delete.delay.ms",
        default: "60000",
        kind: LONG,
        doc: "Accepted for compatibility; Rill unlinks segments at once and readers keep their maps.",
    },
    TopicConfigDef {
        name: "flush.messages",
        broker_name: "log.flush.interval.messages",
        default: "9223372036854775807",
        kind: ValueKind::Long {
            min: 1,
            max: i64::MAX,
        },
        doc: "Under flush.policy=interval: fdatasync after this many messages.",
    },
    TopicConfigDef {
        name: "flush.ms",
        broker_name: "log.flush.interval.ms",
        default: "9223372036854775807",
        kind: ValueKind::Long {
            min: 1,
            max: i64::MAX,
        },
        doc: "Under flush.policy=interval: fdatasync at least this often.",
    },
    TopicConfigDef {
        name: "flush.policy",
        broker_name: "log.flush.policy",
        default: "fsync",
        kind: ValueKind::Choice(&["fsync", "interval", "none"]),
        doc: "Rill: fsync acknowledges only after fdatasync (group commit); interval uses flush.messages/flush.ms; none leaves data to the page cache.",
    },
    TopicConfigDef {
        name: "index.interval.bytes",
        broker_name: "log.index.interval.bytes",
        default: "4096",
        kind: ValueKind::Int {
            min: 0,
            max: i32::MAX,
        },
        doc: "Bytes of log between offset-index entries.",
    },
    TopicConfigDef {
        name: "max.compaction.lag.ms",
        broker_name: "log.cleaner.max.compaction.lag.ms",
        default: "9223372036854775807",
        kind: ValueKind::Long {
            min: 1,
            max: i64::MAX,
        },
        doc: "A record stays uncompacted at most this long.",
    },
    TopicConfigDef {
        name: "max.message.bytes",
        broker_name: "message.max.bytes",
        default: "1048588",
        kind: ValueKind::Int {
            min: 0,
            max: i32::MAX,
        },
        doc: "The largest record batch accepted.",
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        broker_name: "log.message.timestamp.type",
        default: "CreateTime",
        kind: ValueKind::Choice(&["CreateTime", "LogAppendTime"]),
        doc: "LogAppendTime makes the broker stamp batches with its clock.",
    },
    TopicConfigDef {
        name: "min.cleanable.dirty.ratio",
        broker_name: "log.cleaner.min.cleanable.ratio",
        default: "0.5",
        kind: ValueKind::Double { min: 0.0, max: 1.0 },
        doc: "Compact once this share of the log has not been compacted.",
    },
    TopicConfigDef {
        name: "min.compaction.lag.ms",
        broker_name: "log.cleaner.min.compaction.lag.ms",
        default: "0",
        kind: LONG,
        doc: "A record stays uncompacted at least this long.",
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        broker_name: "min.insync.replicas",
        default: "1",
        kind: ValueKind::Int {
            min: 1,
            max: i32::MAX,
        },
        doc: "Replicas that must acknowledge an acks=all write.",
    },
    TopicConfigDef {
        name: "retention.bytes",
        broker_name: "log.retention.bytes",
        default: "-1",
        kind: LONG_OR_UNLIMITED,
        doc: "Delete old segments while a partition is larger; -1 keeps all.",
    },
    TopicConfigDef {
        name: "retention.ms",
        broker_name: "log.retention.ms",
        default: "604800000",
        kind: LONG_OR_UNLIMITED,
        doc: "Delete segments whose newest record is older; -1 keeps all.",
    },
    TopicConfigDef {
        name: "segment.bytes",
        broker_name: "log.segment.bytes",
        default: "1073741824",
        kind: ValueKind::Int {
            min: 1024,
            max: i32::MAX,
        },
        doc: "Roll a segment before it exceeds this size.",
    },
    TopicConfigDef {
        name: "segment.index.bytes",
        broker_name: "log.index.size.max.bytes",
        default: "10485760",
        kind: ValueKind::Int {
            min: 24,
            max: i32::MAX,
        },
        doc: "The size of each index file.",
    },
    TopicConfigDef {
        name: "segment.ms",
        broker_name: "log.roll.ms",
        default: "604800000",
        kind: ValueKind::Long {
            min: 1,
            max: i64::MAX,
        },
        doc: "Roll a segment once its first batch is this old.",
    },
    TopicConfigDef {
        name: "unclean.leader.election.enable",
        broker_name: "unclean.leader.election.enable",
        default: "false",
        kind: ValueKind::Bool,
        doc: "Whether an out-of-sync replica may become leader.",
    },
];

/// Why a config value was refused; becomes INVALID_CONFIG.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigValueError {
    #[error("unknown topic config {name:?}")]
    UnknownConfig { name: String },
    #[error("{name}={value:?}: expected {expected}")]
    InvalidValue {
        name: String,
        value: String,
        expected: String,
    },
}

/// Topic configs (and their broker properties) that Kafka 4.0 removed but
/// that 3.x clients and tools still send: accepted and ignored, as Kafka
/// 4 does, so mixed-version tooling keeps working. None of them changes
/// what Rill stores or serves: the message format is always v2, Rill
/// never down-converts, and timestamps are not bounded by the broker.
pub(crate) const RETIRED: &[(&str, &str)] = &[
    ("message.format.version", "log.message.format.version"),
    (
        "message.downconversion.enable",
        "log.message.downconversion.enable",
    ),
    (
        "message.timestamp.difference.max.ms",
        "log.message.timestamp.difference.max.ms",
    ),
];

/// Whether `name` is a retired topic config or broker property.
pub(crate) fn is_retired(name: &str) -> bool {
    RETIRED
        .iter()
        .any(|(topic, broker)| *topic == name || *broker == name)
}

/// `configs` without the retired ones, each dropped with a log line.
pub(crate) fn without_retired(mut configs: BTreeMap<String, String>) -> BTreeMap<String, String> {
    configs.retain(|name, value| {
        let retired = is_retired(name);
        if retired {
            tracing::info!(config = %name, %value, "ignored a config Kafka 4.0 removed");
        }
        !retired
    });
    configs
}

pub(crate) fn find(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|def| def.name == name)
}

pub(crate) fn find_by_broker_name(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|def| def.broker_name == name)
}

/// Checks `value` against the config's kind.
pub(crate) fn check_value(
    def: &TopicConfigDef,
    name: &str,
    value: &str,
) -> Result<(), ConfigValueError> {
    check_kind(def.kind, name, value)
}

/// Checks `value` against `kind`, naming the config `name` if it fails.
pub(crate) fn check_kind(kind: ValueKind, name: &str, value: &str) -> Result<(), ConfigValueError> {
    let invalid = |expected: String| ConfigValueError::InvalidValue {
        name: name.to_string(),
        value: value.to_string(),
        expected,
    };
    match kind {
        ValueKind::Long { min, max } => match value.trim().parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(()),
            _ => Err(invalid(format!("an integer in [{min}, {max}]"))),
        },
        ValueKind::Int { min, max } => match value.trim().parse::<i32>() {
            Ok(v) if (min..=max).contains(&v) => Ok(()),
            _ => Err(invalid(format!("an integer in [{min}, {max}]"))),
        },
        // Any case, as Kafka reads booleans.
        ValueKind::Bool => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => Err(invalid("true or false".to_string())),
        },
        ValueKind::Double { min, max } => match value.trim().parse::<f64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(()),
            _ => Err(invalid(format!("a number in [{min}, {max}]"))),
        },
        ValueKind::Choice(words) => {
            if words.contains(&value.trim()) {
                Ok(())
            } else {
                Err(invalid(format!("one of {}", words.join(", "))))
            }
        }
        ValueKind::List(words) => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            if !items.is_empty() && items.iter().all(|item| words.contains(item)) {
                Ok(())
            } else {
                Err(invalid(format!("a list of {}", words.join(", "))))
            }
        }
    }
}

/// Validates a topic-level override (CreateTopics, IncrementalAlterConfigs).
pub fn validate_topic_override(name: &str, value: &str) -> Result<(), ConfigValueError> {
    if is_retired(name) {
        return Ok(());
    }
    let def = find(name).ok_or_else(|| ConfigValueError::UnknownConfig {
        name: name.to_string(),
    })?;
    check_value(def, name, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_overrides_are_refused_with_the_name() {
        assert!(validate_topic_override("retention.ms", "-2").is_err());
        assert!(validate_topic_override("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_override("cleanup.policy", "shred").is_err());
        let err = validate_topic_override("no.such.config", "1").unwrap_err();
        assert!(err.to_string().contains("no.such.config"));
        assert!(validate_topic_override("message.timestamp.type", "LogAppendTime").is_ok());
    }

    #[test]
    fn the_table_is_sorted() {
        let names: Vec<_> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }
}
