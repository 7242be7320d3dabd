//! Group configs: Kafka's GROUP config resource (type 32), the settings
//! an admin gives one group by its id — KIP-848's `consumer.*`, KIP-932's
//! `share.*`, KIP-1191's dead-letter topic — and two of Rill's own. Each
//! falls back to a broker property (its Kafka synonym) or to Kafka's
//! default, and the integer ones must lie within the broker's bounds
//! (`group.*.min.*`, `group.*.max.*`), as Kafka's `GroupConfig` checks.
//!
//! What this module owns: the table of group configs ([`GROUP_CONFIGS`]),
//! their validation (IncrementalAlterConfigs, AlterConfigs), what
//! DescribeConfigs reports for them, writing them to the metadata log
//! (`SetGroupConfig`), [`share_config`], the typed effective values a
//! share group runs with, and [`consumer_timeouts`], a consumer group's.
//!
//! The configs live in the cluster metadata
//! (`ClusterMetadata::group_configs`): every broker reads the same ones
//! from the metadata it has applied, with no I/O.

use std::collections::BTreeMap;

use rill_cluster::Command;

use crate::broker::Broker;
use crate::broker_properties::{self, Known};
use crate::cluster::ProposalError;
use crate::config::{GroupBounded, GroupConfigDefaults};
use crate::properties::Properties;

/// DescribeConfigs' source for a value set on the group (Kafka's
/// `ConfigSource.GROUP_CONFIG`).
pub(crate) const SOURCE_GROUP: i8 = 8;
/// DescribeConfigs' source for a broker property set in its file or flags.
const SOURCE_STATIC_BROKER: i8 = 4;
/// DescribeConfigs' source for Kafka's default.
const SOURCE_DEFAULT: i8 = 5;

/// Kafka's ConfigType ids, as DescribeConfigs v3+ reports them.
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;

/// The longest of Rill's redelivery backoffs: an hour, the longest record
/// lock Kafka allows, so that a released record comes back within the
/// time an acquired one may be held.
const REDELIVERY_BACKOFF_MS_MAX: i32 = 3_600_000;

/// How much of an unknown name an error repeats: the name came from a
/// client and could be anything.
const NAME_CHARS_SHOWN: usize = 200;

/// How a group config's value is read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum GroupValueKind {
    /// An INT in `[min, max]` (Kafka's ConfigDef range) and, for the
    /// configs that have them, within the broker's bounds
    /// ([`GroupConfigDef::broker`]).
    Int { min: i32, max: i32 },
    /// share.auto.offset.reset: `earliest`, `latest` or
    /// `by_duration:<ISO-8601 duration>` (not negative).
    AutoOffsetReset,
    /// One of the words, as written.
    Choice(&'static [&'static str]),
    /// `true` or `false`, in any case (Kafka's BOOLEAN).
    Bool,
    /// errors.deadletterqueue.topic.name: any name but one of Kafka's
    /// internal ones (`__...`); empty: no dead-letter topic.
    DeadLetterTopic,
}

/// The broker setting a group config falls back to and is bounded by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BrokerSetting {
    /// The broker property that sets its default (Kafka's synonym).
    pub property: &'static str,
    /// The properties that bound a group's value.
    pub min_property: &'static str,
    pub max_property: &'static str,
    /// Its typed value in the broker's config.
    pub of: fn(&GroupConfigDefaults) -> GroupBounded,
}

/// One group config.
#[derive(Debug)]
pub(crate) struct GroupConfigDef {
    pub name: &'static str,
    pub kind: GroupValueKind,
    /// `None` for the configs with no broker property: their default is
    /// [`GroupConfigDef::default`].
    pub broker: Option<BrokerSetting>,
    /// Kafka's default (or Rill's, for its own configs).
    pub default: &'static str,
    pub doc: &'static str,
}

const POSITIVE_INT: GroupValueKind = GroupValueKind::Int {
    min: 1,
    max: i32::MAX,
};

/// Every group config Rill accepts, sorted by name: Kafka 4.2's consumer
/// and share group configs, Kafka 4.3's share.delivery.count.limit
/// (KIP-1240), Kafka 4.4's errors.deadletterqueue.topic.name (KIP-1191),
/// and Rill's redelivery backoff.
pub(crate) const GROUP_CONFIGS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: "consumer.heartbeat.interval.ms",
        kind: POSITIVE_INT,
        broker: Some(BrokerSetting {
            property: "group.consumer.heartbeat.interval.ms",
            min_property: "group.consumer.min.heartbeat.interval.ms",
            max_property: "group.consumer.max.heartbeat.interval.ms",
            of: |d| d.consumer_heartbeat_interval_ms,
        }),
        default: "5000",
        doc: "The heartbeat interval given to the members of a consumer group.",
    },
    GroupConfigDef {
        name: "consumer.session.timeout.ms",
        kind: POSITIVE_INT,
        broker: Some(BrokerSetting {
            property: "group.consumer.session.timeout.ms",
            min_property: "group.consumer.min.session.timeout.ms",
            max_property: "group.consumer.max.session.timeout.ms",
            of: |d| d.consumer_session_timeout_ms,
        }),
        default: "45000",
        doc: "The timeout to detect client failures when using the consumer group protocol.",
    },
    GroupConfigDef {
        name: "errors.deadletterqueue.copy.record.enable",
        kind: GroupValueKind::Bool,
        broker: None,
        default: "false",
        doc: "Whether a record written to the share group's dead-letter topic carries the key and value of the record given up on; false: its headers only.",
    },
    GroupConfigDef {
        name: "errors.deadletterqueue.topic.name",
        kind: GroupValueKind::DeadLetterTopic,
        broker: None,
        default: "",
        doc: "The topic a share group writes the records it gives up on to (its dead-letter queue); blank: none. Its name must not start with __ and, for records to be written, must start with the broker's errors.deadletterqueue.topic.name.prefix.",
    },
    GroupConfigDef {
        name: "rill.share.redelivery.backoff.max.ms",
        kind: GroupValueKind::Int {
            min: 0,
            max: REDELIVERY_BACKOFF_MS_MAX,
        },
        broker: None,
        default: "60000",
        doc: "Rill: the longest a released or expired record of a share group is kept out of the queue (the cap of rill.share.redelivery.backoff.ms's doubling).",
    },
    GroupConfigDef {
        name: "rill.share.redelivery.backoff.ms",
        kind: GroupValueKind::Int {
            min: 0,
            max: REDELIVERY_BACKOFF_MS_MAX,
        },
        broker: None,
        default: "0",
        doc: "Rill: a released or expired record of a share group is kept out of the queue for this long times 2^(deliveries - 1), at most rill.share.redelivery.backoff.max.ms; 0: redelivered at once, as in Kafka.",
    },
    GroupConfigDef {
        name: "share.auto.offset.reset",
        kind: GroupValueKind::AutoOffsetReset,
        broker: None,
        default: "latest",
        doc: "The strategy to initialize the share-partition start offset: earliest, latest, or by_duration:<duration> (ISO-8601, PnDTnHnMn.nS, not negative) to start at the records of that long ago.",
    },
    GroupConfigDef {
        name: "share.delivery.count.limit",
        kind: GroupValueKind::Int {
            min: 2,
            max: i32::MAX,
        },
        broker: Some(BrokerSetting {
            property: "group.share.delivery.count.limit",
            min_property: "group.share.min.delivery.count.limit",
            max_property: "group.share.max.delivery.count.limit",
            of: |d| d.share_delivery_count_limit,
        }),
        default: "5",
        doc: "The maximum number of delivery attempts for a record delivered to a share group.",
    },
    GroupConfigDef {
        name: "share.heartbeat.interval.ms",
        kind: POSITIVE_INT,
        broker: Some(BrokerSetting {
            property: "group.share.heartbeat.interval.ms",
            min_property: "group.share.min.heartbeat.interval.ms",
            max_property: "group.share.max.heartbeat.interval.ms",
            of: |d| d.share_heartbeat_interval_ms,
        }),
        default: "5000",
        doc: "The heartbeat interval given to the members of a share group.",
    },
    GroupConfigDef {
        name: "share.isolation.level",
        kind: GroupValueKind::Choice(&["read_committed", "read_uncommitted"]),
        broker: None,
        default: "read_uncommitted",
        doc: "read_committed: the share group is delivered only the transactional records that were committed; read_uncommitted: all records, aborted ones too.",
    },
    GroupConfigDef {
        name: "share.record.lock.duration.ms",
        kind: GroupValueKind::Int {
            min: 1000,
            max: i32::MAX,
        },
        broker: Some(BrokerSetting {
            property: "group.share.record.lock.duration.ms",
            min_property: "group.share.min.record.lock.duration.ms",
            max_property: "group.share.max.record.lock.duration.ms",
            of: |d| d.share_record_lock_duration_ms,
        }),
        default: "30000",
        doc: "The record acquisition lock duration in milliseconds for share groups.",
    },
    GroupConfigDef {
        name: "share.session.timeout.ms",
        kind: POSITIVE_INT,
        broker: Some(BrokerSetting {
            property: "group.share.session.timeout.ms",
            min_property: "group.share.min.session.timeout.ms",
            max_property: "group.share.max.session.timeout.ms",
            of: |d| d.share_session_timeout_ms,
        }),
        default: "45000",
        doc: "The timeout to detect client failures when using the share group protocol.",
    },
];

pub(crate) fn find(name: &str) -> Option<&'static GroupConfigDef> {
    GROUP_CONFIGS.iter().find(|def| def.name == name)
}

/// Why group configs were refused: Kafka's INVALID_CONFIG, with the
/// message its `GroupConfig` gives.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum GroupConfigError {
    #[error("Unknown group config name: {name}")]
    UnknownConfig { name: String },
    #[error("Invalid value {value} for configuration {name}: {expected}")]
    InvalidValue {
        name: &'static str,
        value: String,
        expected: String,
    },
    #[error("{session} must be greater than {heartbeat}")]
    SessionNotAboveHeartbeat {
        session: &'static str,
        heartbeat: &'static str,
    },
}

/// The session timeouts that must exceed their heartbeat intervals.
const SESSION_AND_HEARTBEAT: [(&str, &str); 2] = [
    (
        "consumer.session.timeout.ms",
        "consumer.heartbeat.interval.ms",
    ),
    ("share.session.timeout.ms", "share.heartbeat.interval.ms"),
];

/// Checks a group's whole set of configs as it would be after a change:
/// every name one of [`GROUP_CONFIGS`], every value of its kind and
/// within the broker's bounds, and each session timeout greater than its
/// heartbeat interval (the broker's value standing in for one not set).
pub(crate) fn validate(
    configs: &BTreeMap<String, String>,
    defaults: &GroupConfigDefaults,
) -> Result<(), GroupConfigError> {
    for (name, value) in configs {
        let def = find(name).ok_or_else(|| GroupConfigError::UnknownConfig {
            name: name.chars().take(NAME_CHARS_SHOWN).collect(),
        })?;
        check_value(def, value, defaults)?;
    }
    for (session, heartbeat) in SESSION_AND_HEARTBEAT {
        if !configs.contains_key(session) && !configs.contains_key(heartbeat) {
            continue;
        }
        let effective = |name: &str| {
            configs
                .get(name)
                .and_then(|value| value.trim().parse::<i32>().ok())
                .or_else(|| find(name)?.broker.map(|b| (b.of)(defaults).default))
        };
        if effective(session) <= effective(heartbeat) {
            return Err(GroupConfigError::SessionNotAboveHeartbeat { session, heartbeat });
        }
    }
    Ok(())
}

/// Checks one value against its config's kind and the broker's bounds.
fn check_value(
    def: &'static GroupConfigDef,
    value: &str,
    defaults: &GroupConfigDefaults,
) -> Result<(), GroupConfigError> {
    let invalid = |expected: String| GroupConfigError::InvalidValue {
        name: def.name,
        value: value.chars().take(NAME_CHARS_SHOWN).collect(),
        expected,
    };
    // Kafka's ConfigDef trims a value before parsing it.
    let trimmed = value.trim();
    match def.kind {
        GroupValueKind::Int { min, max } => {
            let number = trimmed
                .parse::<i32>()
                .map_err(|_| invalid("Not a number of type INT".to_owned()))?;
            if number < min {
                return Err(invalid(format!("Value must be at least {min}")));
            }
            if number > max {
                return Err(invalid(format!("Value must be no more than {max}")));
            }
            if let Some(broker) = def.broker {
                let bounds = (broker.of)(defaults);
                if number < bounds.min {
                    return Err(invalid(format!(
                        "{} must be greater than or equal to {} ({})",
                        def.name, broker.min_property, bounds.min
                    )));
                }
                if number > bounds.max {
                    return Err(invalid(format!(
                        "{} must be less than or equal to {} ({})",
                        def.name, broker.max_property, bounds.max
                    )));
                }
            }
            Ok(())
        }
        GroupValueKind::AutoOffsetReset => {
            parse_auto_offset_reset(trimmed).map(drop).ok_or_else(|| {
                invalid(
                    "The value must be either 'earliest', 'latest' or of the format \
                 'by_duration:<PnDTnHnMn.nS.>' (not negative)."
                        .to_owned(),
                )
            })
        }
        GroupValueKind::Choice(words) => {
            if words.contains(&trimmed) {
                Ok(())
            } else {
                Err(invalid(format!(
                    "String must be one of: {}",
                    words.join(", ")
                )))
            }
        }
        GroupValueKind::Bool => {
            if trimmed.eq_ignore_ascii_case("true") || trimmed.eq_ignore_ascii_case("false") {
                Ok(())
            } else {
                Err(invalid(
                    "Expected value to be either true or false".to_owned(),
                ))
            }
        }
        GroupValueKind::DeadLetterTopic => {
            if trimmed.starts_with("__") {
                Err(invalid(
                    "DLQ topic name must not start with '__'".to_owned(),
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// One group config as DescribeConfigs reports it.
#[derive(Debug)]
pub(crate) struct DescribedGroupConfig {
    pub def: &'static GroupConfigDef,
    pub value: String,
    pub source: i8,
    /// The chain behind the value, first the one in force: the group's
    /// own (GROUP_CONFIG), the broker property as set (STATIC_BROKER_CONFIG),
    /// Kafka's default (DEFAULT_CONFIG).
    pub synonyms: Vec<(String, String, i8)>,
}

impl GroupConfigDef {
    /// DescribeConfigs' type.
    pub(crate) fn config_type(&self) -> i8 {
        match self.kind {
            GroupValueKind::Int { .. } => TYPE_INT,
            GroupValueKind::Bool => TYPE_BOOLEAN,
            _ => TYPE_STRING,
        }
    }
}

/// Every group config of a group with `overrides`, each with its value
/// and source, as Kafka's DescribeConfigs reports a GROUP: the group's own
/// value (GROUP_CONFIG), else the broker's (STATIC_BROKER_CONFIG when its
/// file or flags set the property, else DEFAULT_CONFIG), else Kafka's
/// default (DEFAULT_CONFIG). `static_` is the broker's file and flags.
pub(crate) fn described(
    overrides: Option<&BTreeMap<String, String>>,
    defaults: &GroupConfigDefaults,
    static_: &Properties,
) -> Vec<DescribedGroupConfig> {
    GROUP_CONFIGS
        .iter()
        .map(|def| {
            let mut synonyms = Vec::new();
            if let Some(value) = overrides.and_then(|o| o.get(def.name)) {
                synonyms.push((def.name.to_owned(), value.clone(), SOURCE_GROUP));
            }
            match def.broker {
                Some(broker) => {
                    if static_.contains_key(broker.property) {
                        let value = (broker.of)(defaults).default.to_string();
                        synonyms.push((broker.property.to_owned(), value, SOURCE_STATIC_BROKER));
                    }
                    let kafka_default = match broker_properties::lookup(broker.property) {
                        Some(Known::Broker(property)) => property.default.unwrap_or(def.default),
                        _ => def.default,
                    };
                    synonyms.push((
                        broker.property.to_owned(),
                        kafka_default.to_owned(),
                        SOURCE_DEFAULT,
                    ));
                }
                None => {
                    synonyms.push((def.name.to_owned(), def.default.to_owned(), SOURCE_DEFAULT))
                }
            }
            let (value, source) = synonyms
                .first()
                .map(|(_, value, source)| (value.clone(), *source))
                .unwrap_or_else(|| (def.default.to_owned(), SOURCE_DEFAULT));
            DescribedGroupConfig {
                def,
                value,
                source,
                synonyms,
            }
        })
        .collect()
}

/// Why group configs could not be set.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetGroupConfigError {
    #[error(transparent)]
    Invalid(#[from] GroupConfigError),
    #[error(transparent)]
    Proposal(#[from] ProposalError),
}

/// Replaces group `group`'s configs with `configs` — or, with
/// `validate_only`, checks that it could — one `SetGroupConfig` per
/// changed key. Blocking: waits for the metadata quorum, and returns once
/// this broker's metadata shows the change.
pub(crate) fn set_group_configs(
    broker: &Broker,
    group: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), SetGroupConfigError> {
    validate(&configs, &broker.config().group_configs)?;
    if validate_only {
        return Ok(());
    }
    let metadata = broker.node().metadata();
    let current = metadata
        .group_configs
        .get(group)
        .cloned()
        .unwrap_or_default();
    for (key, value) in crate::topics::changes(&current, &configs) {
        let command = Command::SetGroupConfig {
            group: group.to_owned(),
            key,
            value,
        };
        tokio::runtime::Handle::current().block_on(broker.node().propose(command))?;
    }
    tracing::info!(group, configs = ?configs, "set group configs");
    Ok(())
}

/// share.auto.offset.reset, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShareAutoOffsetReset {
    /// The share-partition starts at the log start.
    Earliest,
    /// The share-partition starts at the log end (Kafka's default).
    Latest,
    /// The share-partition starts at the first record whose timestamp is
    /// at least this many milliseconds before now (`by_duration:`).
    ByDuration(i64),
}

/// The effective settings of one share group: its own group configs, else
/// the broker's, each within the broker's current bounds. See
/// [`share_config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShareGroupConfig {
    /// share.record.lock.duration.ms: how long an acquired record stays
    /// locked to its member before it is released to others.
    pub record_lock_duration_ms: u64,
    /// share.delivery.count.limit: deliveries of a record before it is
    /// archived (or written to the dead-letter topic).
    pub delivery_count_limit: u32,
    /// share.session.timeout.ms.
    pub session_timeout_ms: u64,
    /// share.heartbeat.interval.ms.
    pub heartbeat_interval_ms: u64,
    /// share.auto.offset.reset: where a new share-partition starts.
    pub auto_offset_reset: ShareAutoOffsetReset,
    /// share.isolation.level is read_committed.
    pub read_committed: bool,
    /// errors.deadletterqueue.topic.name, when not blank. Records are
    /// written to it only if it starts with
    /// [`ShareGroupConfig::dead_letter_topic_prefix`] (KIP-1191 checks
    /// that when it writes).
    pub dead_letter_topic: Option<String>,
    /// errors.deadletterqueue.copy.record.enable.
    pub dead_letter_copy_record: bool,
    /// rill.share.redelivery.backoff.ms.
    pub redelivery_backoff_ms: u64,
    /// rill.share.redelivery.backoff.max.ms.
    pub redelivery_backoff_max_ms: u64,
    /// The broker's group.share.partition.max.record.locks.
    pub partition_max_record_locks: u32,
    /// The broker's errors.deadletterqueue.topic.name.prefix.
    pub dead_letter_topic_prefix: String,
    /// The broker's errors.deadletterqueue.auto.create.topics.enable.
    pub dead_letter_auto_create_topics: bool,
}

impl ShareGroupConfig {
    /// The settings of a share group whose own configs are `overrides`
    /// over the broker's `defaults`. A stored value that does not parse
    /// (it was checked when set, so only metadata from elsewhere could
    /// hold one) counts as not set; a number outside the broker's bounds
    /// (they may have changed since it was set) is brought within them,
    /// as Kafka does.
    pub(crate) fn resolve(
        overrides: Option<&BTreeMap<String, String>>,
        defaults: &GroupConfigDefaults,
    ) -> ShareGroupConfig {
        let own = |name: &str| overrides.and_then(|o| o.get(name)).map(|v| v.trim());
        let bounded = |name: &str, bounds: GroupBounded| -> i32 {
            own(name)
                .and_then(|v| v.parse::<i32>().ok())
                .map_or(bounds.default, |v| bounds.clamp(v))
        };
        let rill_ms = |name: &str, default: u64| -> u64 {
            own(name)
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(default, |v| v.min(REDELIVERY_BACKOFF_MS_MAX as u64))
        };
        // Every bound is at least 1 (the broker properties' ranges).
        let ms = |v: i32| u64::try_from(v).unwrap_or(0);
        let dead_letter_topic = own("errors.deadletterqueue.topic.name")
            .filter(|name| !name.is_empty() && !name.starts_with("__"))
            .map(str::to_owned);
        ShareGroupConfig {
            record_lock_duration_ms: ms(bounded(
                "share.record.lock.duration.ms",
                defaults.share_record_lock_duration_ms,
            )),
            delivery_count_limit: u32::try_from(bounded(
                "share.delivery.count.limit",
                defaults.share_delivery_count_limit,
            ))
            .unwrap_or(1),
            session_timeout_ms: ms(bounded(
                "share.session.timeout.ms",
                defaults.share_session_timeout_ms,
            )),
            heartbeat_interval_ms: ms(bounded(
                "share.heartbeat.interval.ms",
                defaults.share_heartbeat_interval_ms,
            )),
            auto_offset_reset: own("share.auto.offset.reset")
                .and_then(parse_auto_offset_reset)
                .unwrap_or(ShareAutoOffsetReset::Latest),
            read_committed: own("share.isolation.level") == Some("read_committed"),
            dead_letter_topic,
            dead_letter_copy_record: own("errors.deadletterqueue.copy.record.enable")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            redelivery_backoff_ms: rill_ms("rill.share.redelivery.backoff.ms", 0),
            redelivery_backoff_max_ms: rill_ms("rill.share.redelivery.backoff.max.ms", 60_000),
            partition_max_record_locks: u32::try_from(defaults.share_partition_max_record_locks)
                .unwrap_or(0),
            dead_letter_topic_prefix: defaults.dead_letter_topic_prefix.clone(),
            dead_letter_auto_create_topics: defaults.dead_letter_auto_create_topics,
        }
    }

    /// What the group's share-partitions follow.
    pub(crate) fn share_limits(&self) -> rill_share::ShareLimits {
        rill_share::ShareLimits {
            record_lock_duration_ms: self.record_lock_duration_ms,
            delivery_count_limit: u16::try_from(self.delivery_count_limit).unwrap_or(u16::MAX),
            record_locks_max: self.partition_max_record_locks,
            redelivery_backoff_ms: self.redelivery_backoff_ms,
            redelivery_backoff_max_ms: self.redelivery_backoff_max_ms,
            dead_letter: self.usable_dead_letter_topic().is_some(),
        }
    }

    /// The dead-letter topic records are written to: the group's, if its
    /// name starts with the broker's prefix (KIP-1191's check).
    pub(crate) fn usable_dead_letter_topic(&self) -> Option<&str> {
        self.dead_letter_topic
            .as_deref()
            .filter(|name| name.starts_with(&self.dead_letter_topic_prefix))
    }
}

/// The effective settings of share group `group`: what the share-group
/// code runs it with. Cheap enough for every request: it reads the
/// metadata this broker already holds (one shared pointer copied under a
/// short read lock) and the broker's start-up config, with no I/O.
pub(crate) fn share_config(broker: &Broker, group: &str) -> ShareGroupConfig {
    let metadata = broker.node().metadata();
    ShareGroupConfig::resolve(
        metadata.group_configs.get(group),
        &broker.config().group_configs,
    )
}

/// The session timeout and heartbeat interval (ms) of consumer group
/// `group` (KIP-848): its own consumer.* configs within the broker's
/// bounds, else the broker's group.consumer.* defaults.
pub(crate) fn consumer_timeouts(broker: &Broker, group: &str) -> (i64, i32) {
    let metadata = broker.node().metadata();
    let overrides = metadata.group_configs.get(group);
    let defaults = &broker.config().group_configs;
    let bounded = |name: &str, bounds: GroupBounded| -> i32 {
        overrides
            .and_then(|o| o.get(name))
            .and_then(|v| v.trim().parse::<i32>().ok())
            .map_or(bounds.default, |v| bounds.clamp(v))
    };
    (
        i64::from(bounded(
            "consumer.session.timeout.ms",
            defaults.consumer_session_timeout_ms,
        )),
        bounded(
            "consumer.heartbeat.interval.ms",
            defaults.consumer_heartbeat_interval_ms,
        ),
    )
}

/// Parses share.auto.offset.reset as Kafka's
/// `ShareGroupAutoOffsetResetStrategy` does: `earliest` or `latest` in
/// any case, or `by_duration:` and an ISO-8601 duration that is not
/// negative. `None` for anything else.
pub(crate) fn parse_auto_offset_reset(value: &str) -> Option<ShareAutoOffsetReset> {
    if let Some(duration) = value.strip_prefix("by_duration:") {
        return parse_duration_ms(duration)
            .filter(|ms| *ms >= 0)
            .map(ShareAutoOffsetReset::ByDuration);
    }
    if value.eq_ignore_ascii_case("earliest") {
        Some(ShareAutoOffsetReset::Earliest)
    } else if value.eq_ignore_ascii_case("latest") {
        Some(ShareAutoOffsetReset::Latest)
    } else {
        None
    }
}

/// An ISO-8601 duration as Java's `Duration.parse` reads it —
/// `[-+]P[nD][T[nH][nM][n[.f]S]]`, letters in any case, each number with
/// its own sign, at least one part, and a `T` only with a time part — in
/// milliseconds (a fraction of a millisecond dropped). `None` if it is
/// not one, or does not fit.
pub(crate) fn parse_duration_ms(text: &str) -> Option<i64> {
    const MS_PER_SECOND: i128 = 1000;
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let rest = rest.strip_prefix(['P', 'p'])?;
    let (date, time) = match rest.find(['T', 't']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let mut total_ms: i128 = 0;
    let mut parts = 0;
    if !date.is_empty() {
        let days = date.strip_suffix(['D', 'd'])?;
        total_ms += signed_integer(days)? * 86_400 * MS_PER_SECOND;
        parts += 1;
    }
    if let Some(mut time) = time {
        let mut time_parts = 0;
        for (unit, seconds) in [(['H', 'h'], 3600), (['M', 'm'], 60)] {
            if let Some(at) = time.find(unit) {
                // The number before the unit must be the next thing.
                let number = &time[..at];
                if number.contains(['.', ',', 'S', 's']) {
                    return None;
                }
                total_ms += signed_integer(number)? * seconds * MS_PER_SECOND;
                time = &time[at + 1..];
                time_parts += 1;
            }
        }
        if !time.is_empty() {
            let seconds = time.strip_suffix(['S', 's'])?;
            let (whole, fraction) = match seconds.find(['.', ',']) {
                Some(at) => (&seconds[..at], &seconds[at + 1..]),
                None => (seconds, ""),
            };
            if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let whole = signed_integer(whole)?;
            // The fraction takes the sign of the seconds, as in Java.
            let sign = if whole < 0 || seconds.starts_with('-') {
                -1
            } else {
                1
            };
            let millis: i128 = format!("{fraction:0<3}")[..3].parse().ok()?;
            total_ms += whole * MS_PER_SECOND + sign * millis;
            time_parts += 1;
        }
        if time_parts == 0 {
            return None;
        }
        parts += time_parts;
    }
    if parts == 0 {
        return None;
    }
    let total_ms = if negative { -total_ms } else { total_ms };
    i64::try_from(total_ms).ok()
}

/// An optionally signed run of ASCII digits (at most 19, which an i64
/// holds), as Java's patterns accept them.
fn signed_integer(text: &str) -> Option<i128> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: i128 = digits.parse().ok()?;
    Some(if text.starts_with('-') { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> GroupConfigDefaults {
        crate::BrokerConfig::from_properties(Properties::new())
            .unwrap()
            .group_configs
    }

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_table_is_sorted_and_every_default_is_valid() {
        let names: Vec<_> = GROUP_CONFIGS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        let defaults = defaults();
        for def in GROUP_CONFIGS {
            check_value(def, def.default, &defaults).unwrap();
            if let Some(broker) = def.broker {
                for property in [broker.property, broker.min_property, broker.max_property] {
                    assert!(
                        matches!(broker_properties::lookup(property), Some(Known::Broker(_))),
                        "{property} is a broker property"
                    );
                }
                // Kafka's default is the broker property's.
                assert_eq!(def.default, (broker.of)(&defaults).default.to_string());
            }
        }
    }

    #[test]
    fn names_values_and_the_brokers_bounds_are_checked() {
        let defaults = defaults();
        let ok = |pairs: &[(&str, &str)]| validate(&configs(pairs), &defaults);
        ok(&[
            ("share.auto.offset.reset", "earliest"),
            ("share.record.lock.duration.ms", "15000"),
            ("share.isolation.level", "read_committed"),
            ("share.delivery.count.limit", "10"),
            ("errors.deadletterqueue.topic.name", "dlq.orders"),
            ("rill.share.redelivery.backoff.ms", "100"),
            ("consumer.session.timeout.ms", "60000"),
        ])
        .unwrap();
        assert_eq!(
            ok(&[("share.no.such.thing", "1")]),
            Err(GroupConfigError::UnknownConfig {
                name: "share.no.such.thing".to_owned()
            })
        );
        for (name, value, says) in [
            // Kafka's own ranges.
            ("share.record.lock.duration.ms", "999", "at least 1000"),
            ("share.delivery.count.limit", "1", "at least 2"),
            ("consumer.session.timeout.ms", "soon", "INT"),
            // The broker's bounds (group.share.min/max.*).
            (
                "share.record.lock.duration.ms",
                "14999",
                "group.share.min.record.lock.duration.ms",
            ),
            (
                "share.record.lock.duration.ms",
                "60001",
                "group.share.max.record.lock.duration.ms",
            ),
            (
                "share.heartbeat.interval.ms",
                "15001",
                "group.share.max.heartbeat.interval.ms",
            ),
            (
                "consumer.session.timeout.ms",
                "44999",
                "group.consumer.min.session.timeout.ms",
            ),
            ("share.isolation.level", "READ_COMMITTED", "read_committed"),
            ("share.auto.offset.reset", "none", "by_duration"),
            (
                "share.auto.offset.reset",
                "by_duration:-PT1H",
                "by_duration",
            ),
            ("errors.deadletterqueue.topic.name", "__orders", "'__'"),
            ("rill.share.redelivery.backoff.ms", "-1", "at least 0"),
        ] {
            let err = ok(&[(name, value)]).unwrap_err();
            assert!(
                matches!(err, GroupConfigError::InvalidValue { name: n, .. } if n == name),
                "{name}={value}: {err}"
            );
            assert!(err.to_string().contains(says), "{name}={value}: {err}");
        }
    }

    #[test]
    fn a_session_timeout_must_exceed_its_heartbeat_with_the_broker_standing_in() {
        let mut properties = Properties::new();
        properties.insert(
            "group.share.max.heartbeat.interval.ms".into(),
            "50000".into(),
        );
        let defaults = crate::BrokerConfig::from_properties(properties)
            .unwrap()
            .group_configs;
        // 45000 (the broker's session timeout) is not above 45000.
        assert_eq!(
            validate(
                &configs(&[("share.heartbeat.interval.ms", "45000")]),
                &defaults
            ),
            Err(GroupConfigError::SessionNotAboveHeartbeat {
                session: "share.session.timeout.ms",
                heartbeat: "share.heartbeat.interval.ms",
            })
        );
        validate(
            &configs(&[
                ("share.heartbeat.interval.ms", "45000"),
                ("share.session.timeout.ms", "50000"),
            ]),
            &defaults,
        )
        .unwrap();
    }

    #[test]
    fn share_config_takes_the_groups_values_else_the_brokers() {
        let defaults = defaults();
        let none = ShareGroupConfig::resolve(None, &defaults);
        assert_eq!(
            none,
            ShareGroupConfig {
                record_lock_duration_ms: 30_000,
                delivery_count_limit: 5,
                session_timeout_ms: 45_000,
                heartbeat_interval_ms: 5000,
                auto_offset_reset: ShareAutoOffsetReset::Latest,
                read_committed: false,
                dead_letter_topic: None,
                dead_letter_copy_record: false,
                redelivery_backoff_ms: 0,
                redelivery_backoff_max_ms: 60_000,
                partition_max_record_locks: 2000,
                dead_letter_topic_prefix: "dlq.".to_owned(),
                dead_letter_auto_create_topics: false,
            }
        );
        let own = configs(&[
            ("share.record.lock.duration.ms", "15000"),
            ("share.delivery.count.limit", "3"),
            ("share.session.timeout.ms", "50000"),
            ("share.heartbeat.interval.ms", "6000"),
            ("share.auto.offset.reset", "by_duration:P1DT1H30M"),
            ("share.isolation.level", "read_committed"),
            ("errors.deadletterqueue.topic.name", "dlq.orders"),
            ("errors.deadletterqueue.copy.record.enable", "TRUE"),
            ("rill.share.redelivery.backoff.ms", "250"),
            ("rill.share.redelivery.backoff.max.ms", "2000"),
            // Not a share setting: no effect here.
            ("consumer.session.timeout.ms", "60000"),
        ]);
        let set = ShareGroupConfig::resolve(Some(&own), &defaults);
        assert_eq!(set.record_lock_duration_ms, 15_000);
        assert_eq!(set.delivery_count_limit, 3);
        assert_eq!(set.session_timeout_ms, 50_000);
        assert_eq!(set.heartbeat_interval_ms, 6000);
        assert_eq!(
            set.auto_offset_reset,
            ShareAutoOffsetReset::ByDuration((24 * 3600 + 5400) * 1000)
        );
        assert!(set.read_committed);
        assert_eq!(set.dead_letter_topic.as_deref(), Some("dlq.orders"));
        assert!(set.dead_letter_copy_record);
        assert_eq!(set.usable_dead_letter_topic(), Some("dlq.orders"));
        assert!(set.share_limits().dead_letter);
        assert!(!none.share_limits().dead_letter);
        assert_eq!(
            (set.redelivery_backoff_ms, set.redelivery_backoff_max_ms),
            (250, 2000)
        );
        // 250, 500, 1000, 2000, then capped.
        let limits = set.share_limits();
        let delays: Vec<u64> = (1..=6).map(|n| limits.redelivery_backoff_ms(n)).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 2000, 2000]);
        assert_eq!(limits.redelivery_backoff_ms(u16::MAX), 2000);
        assert_eq!(none.share_limits().redelivery_backoff_ms(7), 0);

        // Set under looser bounds than today's: brought within them; a
        // value that does not parse, or a blank topic: the default.
        let stale = configs(&[
            ("share.record.lock.duration.ms", "3600000"),
            ("share.delivery.count.limit", "zero"),
            ("share.auto.offset.reset", "EARLIEST"),
            ("errors.deadletterqueue.topic.name", " "),
        ]);
        let stale = ShareGroupConfig::resolve(Some(&stale), &defaults);
        assert_eq!(stale.record_lock_duration_ms, 60_000);
        assert_eq!(stale.delivery_count_limit, 5);
        assert_eq!(stale.auto_offset_reset, ShareAutoOffsetReset::Earliest);
        assert_eq!(stale.dead_letter_topic, None);
    }

    #[test]
    fn durations_parse_as_javas_duration_parse_reads_them() {
        for (text, ms) in [
            ("PT0S", 0),
            ("PT1S", 1000),
            ("PT1.5S", 1500),
            ("PT0,001S", 1),
            ("PT1.0009S", 1000),
            ("PT15M", 900_000),
            ("pt2h", 7_200_000),
            ("P2D", 172_800_000),
            ("P1DT2H3M4.5S", 93_784_500),
            ("PT1H-10M", 3_000_000),
            ("-PT1S", -1000),
            ("PT-1.5S", -1500),
            ("+PT1M", 60_000),
        ] {
            assert_eq!(parse_duration_ms(text), Some(ms), "{text}");
        }
        for text in [
            "",
            "P",
            "PT",
            "T1H",
            "1H",
            "P1H",
            "PT1D",
            "PT1.5M",
            "PT1S2M",
            "P1W",
            "PT1.1234567891S",
            "PTS",
            "P-D",
            "PT1H ",
            "P99999999999999999999D",
        ] {
            assert_eq!(parse_duration_ms(text), None, "{text:?}");
        }
        assert_eq!(
            parse_auto_offset_reset("by_duration:PT1H"),
            Some(ShareAutoOffsetReset::ByDuration(3_600_000))
        );
        assert_eq!(parse_auto_offset_reset("by_duration:-PT1H"), None);
        assert_eq!(parse_auto_offset_reset("by_duration:"), None);
        assert_eq!(parse_auto_offset_reset("BY_DURATION:PT1H"), None);
        assert_eq!(
            parse_auto_offset_reset("Latest"),
            Some(ShareAutoOffsetReset::Latest)
        );
    }

    #[test]
    fn a_group_config_is_described_from_the_group_the_broker_or_kafka() {
        let mut static_ = Properties::new();
        static_.insert("group.share.record.lock.duration.ms".into(), "20000".into());
        let defaults = crate::BrokerConfig::from_properties(static_.clone())
            .unwrap()
            .group_configs;
        let own = configs(&[("share.auto.offset.reset", "earliest")]);
        let described = described(Some(&own), &defaults, &static_);
        assert_eq!(described.len(), GROUP_CONFIGS.len());
        let of = |name: &str| described.iter().find(|d| d.def.name == name).unwrap();
        let reset = of("share.auto.offset.reset");
        assert_eq!(
            (reset.value.as_str(), reset.source),
            ("earliest", SOURCE_GROUP)
        );
        assert_eq!(
            reset.synonyms,
            [
                (
                    "share.auto.offset.reset".to_owned(),
                    "earliest".to_owned(),
                    8
                ),
                ("share.auto.offset.reset".to_owned(), "latest".to_owned(), 5),
            ]
        );
        let lock = of("share.record.lock.duration.ms");
        assert_eq!(
            (lock.value.as_str(), lock.source),
            ("20000", SOURCE_STATIC_BROKER)
        );
        assert_eq!(lock.synonyms[1].2, SOURCE_DEFAULT);
        assert_eq!(lock.synonyms[1].1, "30000");
        let session = of("share.session.timeout.ms");
        assert_eq!(
            (session.value.as_str(), session.source),
            ("45000", SOURCE_DEFAULT)
        );
        assert_eq!(lock.def.config_type(), TYPE_INT);
        assert_eq!(reset.def.config_type(), TYPE_STRING);
    }
}
