//! A topic's effective configs: its overrides over the broker's dynamic and
//! static properties over Kafka's defaults, each with its source, and the
//! [`LogConfig`] they make.

use std::collections::BTreeMap;

use rill_record::{Compression, TimestampType, TopicCompression};
use rill_storage::{CleanupPolicy, FlushPolicy, LogConfig};

use crate::broker_properties;
use crate::properties::Properties;
use crate::topic_config::{ConfigValueError, TOPIC_CONFIGS, TopicConfigDef, check_value, find};

/// Where a topic config's effective value comes from (DescribeConfigs'
/// config source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConfigSource {
    /// A topic override: DYNAMIC_TOPIC_CONFIG.
    Topic,
    /// Set on the broker at run time: DYNAMIC_DEFAULT_BROKER_CONFIG.
    DynamicBroker,
    /// Set in the broker's file or flags: STATIC_BROKER_CONFIG.
    StaticBroker,
    /// Kafka's default: DEFAULT_CONFIG.
    Default,
}

impl ConfigSource {
    pub(crate) fn code(self) -> i8 {
        match self {
            ConfigSource::Topic => 1,
            ConfigSource::DynamicBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// The broker-level layers a topic config falls back to, newest first.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BrokerLayers<'a> {
    pub dynamic: &'a Properties,
    pub static_: &'a Properties,
}

impl BrokerLayers<'_> {
    /// The broker's default for `def` and where it comes from, following
    /// Kafka's aliases (log.retention.hours/minutes, log.roll.hours).
    pub(crate) fn default_for(&self, def: &TopicConfigDef) -> (String, ConfigSource) {
        for (layer, source) in [
            (self.dynamic, ConfigSource::DynamicBroker),
            (self.static_, ConfigSource::StaticBroker),
        ] {
            if let Some(value) = layer.get(def.broker_name) {
                return (value.clone(), source);
            }
            if let Some(value) = broker_properties::alias_value(layer, def.broker_name) {
                return (value, source);
            }
        }
        (def.default.to_string(), ConfigSource::Default)
    }
}

/// A topic's effective configs: every config with its value and source.
pub(crate) fn effective(
    overrides: &BTreeMap<String, String>,
    broker: BrokerLayers<'_>,
) -> Vec<(&'static TopicConfigDef, String, ConfigSource)> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| match overrides.get(def.name) {
            Some(value) => (def, value.clone(), ConfigSource::Topic),
            None => {
                let (value, source) = broker.default_for(def);
                (def, value, source)
            }
        })
        .collect()
}

/// The [`LogConfig`] that a topic's effective configs make.
pub(crate) fn log_config(
    overrides: &BTreeMap<String, String>,
    broker: BrokerLayers<'_>,
) -> Result<LogConfig, ConfigValueError> {
    let values: BTreeMap<&str, String> = effective(overrides, broker)
        .into_iter()
        .map(|(def, value, _)| (def.name, value))
        .collect();
    let get = |name: &str| values.get(name).map(String::as_str).unwrap_or("");
    let long = |name: &'static str| -> Result<i64, ConfigValueError> {
        let value = get(name);
        let def = find(name).ok_or_else(|| ConfigValueError::UnknownConfig {
            name: name.to_string(),
        })?;
        check_value(def, name, value)?;
        value
            .trim()
            .parse::<i64>()
            .map_err(|_| ConfigValueError::InvalidValue {
                name: name.to_string(),
                value: value.to_string(),
                expected: "an integer".to_string(),
            })
    };
    for (name, value) in &values {
        if let Some(def) = find(name) {
            check_value(def, name, value)?;
        }
    }
    let flush = match get("flush.policy").trim() {
        "interval" => FlushPolicy::Interval {
            messages: long("flush.messages")? as u64,
            ms: long("flush.ms")? as u64,
        },
        "none" => FlushPolicy::None,
        _ => FlushPolicy::Fsync,
    };
    let config = LogConfig {
        segment_bytes: long("segment.bytes")? as u32,
        segment_ms: long("segment.ms")?,
        segment_index_bytes: long("segment.index.bytes")? as u32,
        index_interval_bytes: long("index.interval.bytes")? as u32,
        max_message_bytes: long("max.message.bytes")? as u32,
        retention_ms: long("retention.ms")?,
        retention_bytes: long("retention.bytes")?,
        flush,
        cleanup_policy: {
            let policy = get("cleanup.policy");
            let has = |word: &str| policy.split(',').any(|item| item.trim() == word);
            CleanupPolicy {
                delete: has("delete"),
                compact: has("compact"),
            }
        },
        delete_retention_ms: long("delete.retention.ms")?,
        min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
            .trim()
            .parse::<f64>()
            .unwrap_or(0.5),
        min_compaction_lag_ms: long("min.compaction.lag.ms")?,
        max_compaction_lag_ms: long("max.compaction.lag.ms")?,
        compression: compression(get("compression.type"), long)?,
        timestamp_type: if get("message.timestamp.type").trim() == "LogAppendTime" {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
    };
    config
        .validate()
        .map_err(|error| ConfigValueError::InvalidValue {
            name: "topic config".to_string(),
            value: String::new(),
            expected: error.to_string(),
        })?;
    Ok(config)
}

/// The codec `compression.type` names, with its level config.
fn compression(
    name: &str,
    level: impl Fn(&'static str) -> Result<i64, ConfigValueError>,
) -> Result<TopicCompression, ConfigValueError> {
    let (codec, level_config) = match name.trim() {
        "uncompressed" => (Compression::None, None),
        "gzip" => (Compression::Gzip, Some("compression.gzip.level")),
        "snappy" => (Compression::Snappy, None),
        "lz4" => (Compression::Lz4, Some("compression.lz4.level")),
        "zstd" => (Compression::Zstd, Some("compression.zstd.level")),
        _ => return Ok(TopicCompression::Producer),
    };
    let level = match level_config {
        // In range: each level config is an Int.
        Some(config) => i32::try_from(level(config)?).unwrap_or(0),
        None => 0,
    };
    Ok(TopicCompression::Codec { codec, level })
}

/// A config's definition, effective value and where the value comes from.
pub(crate) type EffectiveConfig = (&'static TopicConfigDef, String, ConfigSource);

#[cfg(test)]
mod tests {
    use super::*;

    fn layers<'a>(dynamic: &'a Properties, static_: &'a Properties) -> BrokerLayers<'a> {
        BrokerLayers { dynamic, static_ }
    }

    #[test]
    fn defaults_make_the_storage_defaults() {
        let empty = Properties::new();
        let config = log_config(&BTreeMap::new(), layers(&empty, &empty)).unwrap();
        assert_eq!(config, LogConfig::default());
    }

    #[test]
    fn topic_overrides_beat_dynamic_beat_static_beat_defaults() {
        let mut static_ = Properties::new();
        static_.insert("log.retention.hours".into(), "1".into());
        static_.insert("log.segment.bytes".into(), "2048".into());
        let mut dynamic = Properties::new();
        dynamic.insert("log.segment.bytes".into(), "4096".into());
        let mut overrides = BTreeMap::new();
        overrides.insert("flush.policy".to_string(), "none".to_string());
        let config = log_config(&overrides, layers(&dynamic, &static_)).unwrap();
        assert_eq!(config.retention_ms, 3_600_000);
        assert_eq!(config.segment_bytes, 4096);
        assert_eq!(config.flush, FlushPolicy::None);
        let sources: BTreeMap<_, _> = effective(&overrides, layers(&dynamic, &static_))
            .into_iter()
            .map(|(def, _, source)| (def.name, source))
            .collect();
        assert_eq!(sources["flush.policy"], ConfigSource::Topic);
        assert_eq!(sources["segment.bytes"], ConfigSource::DynamicBroker);
        assert_eq!(sources["retention.ms"], ConfigSource::StaticBroker);
        assert_eq!(sources["max.message.bytes"], ConfigSource::Default);
    }
}
