//! Broker configuration: Kafka's property names, read from a TOML file and
//! `--set KEY=VALUE` overrides, into typed settings. Which properties
//! exist, their defaults and their ranges are broker_properties.rs's
//! table; an unknown one is refused here, at start-up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::authorizer::AuthorizerConfig;
use crate::broker_properties::{self, Known};
use crate::http::HttpListener;
use crate::listeners::{ListenerProperties, Listeners};
use crate::properties::{self, ConfigError, Properties};
use crate::security::{OAuthSettings, TlsSettings};

/// The broker's settings. Built once at start-up by [`BrokerConfig::from_properties`];
/// topic-level defaults (log.*) stay as properties, since they can change at run time.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// node.id (or broker.id): this broker's id in metadata.
    pub node_id: i32,
    /// log.dirs (or log.dir): where partitions live.
    pub log_dirs: Vec<PathBuf>,
    /// listeners, advertised.listeners, listener.security.protocol.map,
    /// inter.broker.listener.name: what to bind, what to advertise, and
    /// how each listener's connections are secured.
    pub listeners: Listeners,
    /// sasl.enabled.mechanisms: what SASL listeners offer.
    pub sasl_enabled_mechanisms: Vec<String>,
    /// sasl.oauthbearer.*: how OAUTHBEARER tokens are checked, when
    /// sasl.enabled.mechanisms offers it.
    pub oauthbearer: Option<std::sync::Arc<OAuthSettings>>,
    /// connections.max.reauth.ms: how long a SASL session lasts before
    /// the client must re-authenticate (KIP-368); 0, for ever.
    pub reauth_ms: u64,
    /// Client quotas: `quota.window.num` windows of
    /// `quota.window.size.seconds`.
    pub quota_windows: usize,
    pub quota_window: std::time::Duration,
    /// The ssl.* settings of each TLS listener, by listener name.
    pub tls: BTreeMap<String, TlsSettings>,
    /// authorizer.class.name, super.users,
    /// allow.everyone.if.no.acl.found: `None` without an authorizer
    /// (every request is allowed).
    pub authorizer: Option<AuthorizerConfig>,
    /// rill.ssl.reload.check.interval.ms: how often TLS listeners look
    /// for changed key and certificate files.
    pub ssl_reload_check_interval_ms: u64,
    /// num.partitions: partitions of an auto-created topic or of a
    /// CreateTopics request that leaves the count to the broker.
    pub num_partitions: i32,
    /// auto.create.topics.enable.
    pub auto_create_topics: bool,
    /// socket.request.max.bytes: the largest request frame, checked before
    /// anything is allocated for it.
    pub request_bytes_max: usize,
    /// max.connections: connections beyond this are closed at accept.
    pub connections_max: usize,
    /// rill.http.listener: where the HTTP admin listener binds, if at all.
    pub http_listener: Option<HttpListener>,
    /// rill.log.maps.max (0: from vm.max_map_count).
    pub log_maps_max: usize,
    /// rill.log.open.files.max (0: from the process's limit).
    pub log_open_files_max: usize,
    /// rill.metrics.partition.series.max.
    pub metrics_partition_series_max: usize,
    /// rill.console.history.interval.ms.
    pub console_history_interval_ms: u64,
    /// connections.max.idle.ms: a connection with no request for this long
    /// is closed.
    pub connection_idle_ms: u64,
    /// rill.connection.inflight.requests.max: requests read from one
    /// connection and not yet answered; beyond it the broker stops reading
    /// that socket (backpressure). A produce request's bytes are written
    /// and dropped before it waits, so a waiting request holds only its
    /// response's making (a few hundred bytes): the bound can be high
    /// enough for librdkafka, which pipelines a request per partition.
    pub inflight_requests_max: usize,
    /// log.retention.check.interval.ms.
    pub retention_check_interval_ms: u64,
    /// log.flush.offset.checkpoint.interval.ms.
    pub checkpoint_interval_ms: u64,
    /// log.cleaner.backoff.ms: how often compacted topics are checked.
    pub cleaner_backoff_ms: u64,
    /// num.recovery.threads.per.data.dir.
    pub recovery_threads: usize,
    /// log.flush.threads: flusher threads (group commit rounds across
    /// logs; syncs of one file system still run one at a time).
    pub flush_threads: usize,
    /// log.flush.sync.mode: `auto` (one syncfs per flush round where
    /// syncfs is a real sync: ext4, xfs, btrfs, f2fs on Linux >= 5.8) or
    /// `per-file` (an fdatasync of each file, everywhere).
    pub flush_sync_mode: rill_storage::SyncModeSetting,
    /// offsets.topic.num.partitions: partitions of `__consumer_offsets`
    /// when it is created.
    pub offsets_topic_partitions: i32,
    /// offsets.topic.segment.bytes.
    pub offsets_topic_segment_bytes: i32,
    /// share.coordinator.state.topic.*: how `__share_group_state` is made.
    pub share_state_topic: ShareStateTopic,
    /// offsets.retention.minutes, in ms: how long the offsets of an empty
    /// group are kept.
    pub offsets_retention_ms: i64,
    /// offsets.retention.check.interval.ms.
    pub offsets_retention_check_interval_ms: u64,
    /// offset.metadata.max.bytes.
    pub offset_metadata_max_bytes: usize,
    /// transaction.* and transactional.*: the transaction coordinator and
    /// `__transaction_state`.
    pub transactions: TransactionsConfig,
    /// group.min.session.timeout.ms, group.max.session.timeout.ms,
    /// group.initial.rebalance.delay.ms, group.max.size.
    pub group: rill_group::GroupConfig,
    /// group.consumer.*, group.share.* and errors.deadletterqueue.*: what
    /// group configs default to and must lie within.
    pub group_configs: GroupConfigDefaults,
    /// The cluster this node is part of: a one-node cluster of its own
    /// unless told otherwise (see [`QuorumConfig`]).
    pub cluster: ClusterConfig,
    /// Every property as given (file, then `--set`, then flags), for topic
    /// defaults and DescribeConfigs.
    pub properties: Properties,
}

/// The transaction coordinator's settings, with Kafka's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionsConfig {
    /// transaction.state.log.num.partitions.
    pub log_partitions: i32,
    /// transaction.state.log.replication.factor (capped at the brokers
    /// registered when the topic is created).
    pub log_replication_factor: i16,
    /// transaction.state.log.min.isr (capped at the replication factor).
    pub log_min_isr: i16,
    /// transaction.state.log.segment.bytes.
    pub log_segment_bytes: i32,
    /// transaction.max.timeout.ms.
    pub max_timeout_ms: i32,
    /// transactional.id.expiration.ms.
    pub id_expiration_ms: i32,
    /// transaction.abort.timed.out.transaction.cleanup.interval.ms.
    pub abort_timed_out_interval_ms: u64,
    /// transaction.remove.expired.transaction.cleanup.interval.ms.
    pub remove_expired_interval_ms: u64,
}

/// One integer group setting of the broker, with Kafka's names: the
/// value a group without its own gets, and the bounds a group's own value
/// must lie within (Kafka's `group.*.min.*` and `group.*.max.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBounded {
    pub default: i32,
    pub min: i32,
    pub max: i32,
}

impl GroupBounded {
    /// `value` brought within the bounds (as Kafka 4.3 evaluates a group's
    /// value set before the broker's bounds changed).
    pub fn clamp(self, value: i32) -> i32 {
        value.clamp(self.min, self.max)
    }
}

/// The broker's settings that group configs (KIP-848's consumer.*,
/// KIP-932's share.*, KIP-1191's dead-letter topic) fall back to and are
/// checked against. Kafka reads them at start-up only; so does Rill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfigDefaults {
    /// group.consumer.assignors: the first is the default.
    pub consumer_assignors: Vec<rill_group::Assignor>,
    /// group.consumer.migration.policy.
    pub consumer_migration_policy: MigrationPolicy,
    /// group.consumer.session.timeout.ms, within
    /// group.consumer.min/max.session.timeout.ms.
    pub consumer_session_timeout_ms: GroupBounded,
    /// group.consumer.heartbeat.interval.ms, within
    /// group.consumer.min/max.heartbeat.interval.ms.
    pub consumer_heartbeat_interval_ms: GroupBounded,
    /// group.share.session.timeout.ms, within
    /// group.share.min/max.session.timeout.ms.
    pub share_session_timeout_ms: GroupBounded,
    /// group.share.heartbeat.interval.ms, within
    /// group.share.min/max.heartbeat.interval.ms.
    pub share_heartbeat_interval_ms: GroupBounded,
    /// group.share.record.lock.duration.ms, within
    /// group.share.min/max.record.lock.duration.ms.
    pub share_record_lock_duration_ms: GroupBounded,
    /// group.share.delivery.count.limit, within
    /// group.share.min/max.delivery.count.limit.
    pub share_delivery_count_limit: GroupBounded,
    /// group.share.partition.max.record.locks.
    pub share_partition_max_record_locks: i32,
    /// errors.deadletterqueue.auto.create.topics.enable.
    pub dead_letter_auto_create_topics: bool,
    /// errors.deadletterqueue.topic.name.prefix.
    pub dead_letter_topic_prefix: String,
}

/// How this node takes part in the metadata quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumConfig {
    /// Neither property set: this node is its quorum's only voter (KIP-853's
    /// standalone), its controller served on the Kafka listener, where
    /// other nodes can join it.
    Standalone,
    /// controller.quorum.voters: `id@host:port,...`, a fixed set of
    /// controllers, each on a port of its own. A broker whose node.id is
    /// among them runs that controller in its own process (combined
    /// mode); any other is a broker only.
    Voters(BTreeMap<u64, String>),
    /// controller.quorum.bootstrap.servers (`--join`): `host:port,...` of
    /// nodes of a running quorum; this node joins it as a voter (KIP-853's
    /// AddRaftVoter), its controller served on its Kafka listener.
    Join(Vec<String>),
}

/// A broker's settings as a node of its cluster, with Kafka's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    pub quorum: QuorumConfig,
    /// broker.session.timeout.ms: a broker not heard from for this long is
    /// fenced and its partitions move to other replicas.
    pub broker_session_timeout_ms: u64,
    /// broker.heartbeat.interval.ms.
    pub broker_heartbeat_interval_ms: u64,
    /// replica.lag.time.max.ms: a follower that has not caught up to the
    /// leader's log end within this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// replica.fetch.wait.max.ms: how long a follower's fetch waits at the
    /// leader for new data.
    pub replica_fetch_wait_max_ms: u64,
    /// replica.fetch.max.bytes: bytes a follower asks for per partition.
    pub replica_fetch_max_bytes: i32,
    /// replica.fetch.backoff.ms: the pause after a failed follower fetch.
    pub replica_fetch_backoff_ms: u64,
    /// default.replication.factor: for auto-created topics and
    /// CreateTopics requests that leave it to the broker.
    pub default_replication_factor: i16,
    /// offsets.topic.replication.factor: replicas of each
    /// `__consumer_offsets` partition (capped at the brokers registered
    /// when it is created).
    pub offsets_topic_replication_factor: i16,
    /// leader.imbalance.check.interval.seconds (in ms), or `None` when
    /// auto.leader.rebalance.enable is false: how often the controller
    /// leader gives leadership back to preferred replicas.
    pub leader_imbalance_check_interval_ms: Option<u64>,
    /// leader.imbalance.per.broker.percentage.
    pub leader_imbalance_per_broker_percentage: u32,
    /// controller.quorum.election.timeout.ms: the lower bound of a
    /// controller's election timeout (the upper is twice it).
    pub election_timeout_ms: u64,
}

impl BrokerConfig {
    /// Reads a TOML file of Kafka properties. Nested tables join their keys
    /// with dots, so `log.retention.ms = 1000` and `[log] retention.ms = 1000`
    /// mean the same; arrays become comma-separated lists.
    pub fn read_toml(path: &Path) -> Result<Properties, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        parse_toml(&text).map_err(|message| ConfigError::Toml {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Interprets `properties` over the embedded defaults. Every property
    /// must be one Rill knows (see broker_properties.rs), with a value of
    /// its kind: anything else is an error naming it.
    pub fn from_properties(properties: Properties) -> Result<BrokerConfig, ConfigError> {
        for (name, value) in &properties {
            broker_properties::check(name, value)?;
        }
        let read = Reader(&properties);
        let listeners = Listeners::parse(&ListenerProperties {
            listeners: &read.text("listeners"),
            advertised: properties.get("advertised.listeners").map(String::as_str),
            protocol_map: properties
                .get("listener.security.protocol.map")
                .map(String::as_str),
            inter_broker: properties
                .get("inter.broker.listener.name")
                .map(String::as_str),
        })?;
        let mut tls = BTreeMap::new();
        for listener in listeners.iter().filter(|l| l.protocol.uses_tls()) {
            let settings = TlsSettings::from_properties(&listener.name, |name| {
                listener_value(&properties, &listener.name, name)
            })?;
            tls.insert(listener.name.clone(), settings);
        }
        // Replica fetchers and controllers speak TLS to each other
        // (cluster/links.rs), not SASL: the listener they use must not
        // ask them for it.
        let inter_broker = listeners.inter_broker();
        if inter_broker.protocol.uses_sasl() {
            return Err(ConfigError::Invalid {
                name: "inter.broker.listener.name".to_string(),
                value: inter_broker.name.clone(),
                expected: format!(
                    "a PLAINTEXT or SSL listener: other nodes cannot authenticate over {} yet \
                     (name such a listener, or list one first)",
                    inter_broker.protocol
                ),
            });
        }
        // Over TLS, nodes present their certificates to each other and
        // check them against the listener's truststore.
        if tls
            .get(&inter_broker.name)
            .is_some_and(|settings: &TlsSettings| !settings.has_truststore())
        {
            return Err(ConfigError::Invalid {
                name: "inter.broker.listener.name".to_string(),
                value: inter_broker.name.clone(),
                expected: "an SSL listener with ssl.truststore.location (or \
                           ssl.truststore.certificates): the CA of the nodes' certificates, which \
                           they check each other's against"
                    .to_string(),
            });
        }
        let sasl_enabled_mechanisms: Vec<String> = read
            .text("sasl.enabled.mechanisms")
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        let oauthbearer = if sasl_enabled_mechanisms.iter().any(|m| m == "OAUTHBEARER") {
            Some(std::sync::Arc::new(OAuthSettings::from_properties(
                |name| broker_properties::value_of(&properties, name),
            )?))
        } else {
            None
        };
        let quorum = match (
            properties.get("controller.quorum.voters"),
            properties.get("controller.quorum.bootstrap.servers"),
        ) {
            (Some(voters), None) => QuorumConfig::Voters(properties::parse_voters(voters)?),
            (None, Some(servers)) => QuorumConfig::Join(properties::parse_bootstrap(servers)?),
            (None, None) => QuorumConfig::Standalone,
            (Some(voters), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "controller.quorum.voters".to_string(),
                    value: voters.clone(),
                    expected: "either it (a fixed quorum) or controller.quorum.bootstrap.servers (joining one), not both".to_string(),
                });
            }
        };
        // The table's ranges make each cast below lossless.
        let cluster = ClusterConfig {
            quorum,
            broker_session_timeout_ms: read.number("broker.session.timeout.ms")? as u64,
            broker_heartbeat_interval_ms: read.number("broker.heartbeat.interval.ms")? as u64,
            replica_lag_time_max_ms: read.number("replica.lag.time.max.ms")? as u64,
            replica_fetch_wait_max_ms: read.number("replica.fetch.wait.max.ms")? as u64,
            replica_fetch_max_bytes: read.number("replica.fetch.max.bytes")? as i32,
            replica_fetch_backoff_ms: read.number("replica.fetch.backoff.ms")? as u64,
            default_replication_factor: read.number("default.replication.factor")? as i16,
            leader_imbalance_check_interval_ms: read
                .boolean("auto.leader.rebalance.enable")?
                .then(|| read.number("leader.imbalance.check.interval.seconds"))
                .transpose()?
                .map(|seconds| seconds as u64 * 1000),
            leader_imbalance_per_broker_percentage: read
                .number("leader.imbalance.per.broker.percentage")?
                as u32,
            offsets_topic_replication_factor: read.number("offsets.topic.replication.factor")?
                as i16,
            election_timeout_ms: read.number("controller.quorum.election.timeout.ms")? as u64,
        };
        let flush_sync_mode = {
            let value = read.text("log.flush.sync.mode");
            value.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "log.flush.sync.mode".into(),
                value: value.clone(),
                expected: "auto or per-file".into(),
            })?
        };
        Ok(BrokerConfig {
            cluster,
            node_id: read.number("node.id")? as i32,
            log_dirs: read
                .text("log.dirs")
                .split(',')
                .map(str::trim)
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from)
                .collect(),
            listeners,
            sasl_enabled_mechanisms,
            oauthbearer,
            reauth_ms: read.number("connections.max.reauth.ms")? as u64,
            quota_windows: read.number("quota.window.num")? as usize,
            quota_window: std::time::Duration::from_secs(
                read.number("quota.window.size.seconds")? as u64
            ),
            tls,
            authorizer: (!read.text("authorizer.class.name").trim().is_empty())
                .then(|| -> Result<AuthorizerConfig, ConfigError> {
                    Ok(AuthorizerConfig {
                        super_users: read
                            .text("super.users")
                            .split(';')
                            .map(|user| user.trim().to_string())
                            .filter(|user| !user.is_empty())
                            .collect(),
                        allow_everyone_if_no_acl_found: read
                            .boolean("allow.everyone.if.no.acl.found")?,
                    })
                })
                .transpose()?,
            ssl_reload_check_interval_ms: read.number("rill.ssl.reload.check.interval.ms")? as u64,
            num_partitions: read.number("num.partitions")? as i32,
            auto_create_topics: read.boolean("auto.create.topics.enable")?,
            request_bytes_max: read.number("socket.request.max.bytes")? as usize,
            connections_max: read.number("max.connections")? as usize,
            http_listener: HttpListener::from_properties(&properties)?,
            log_maps_max: read.number("rill.log.maps.max")? as usize,
            log_open_files_max: read.number("rill.log.open.files.max")? as usize,
            metrics_partition_series_max: read.number("rill.metrics.partition.series.max")?
                as usize,
            console_history_interval_ms: read.number("rill.console.history.interval.ms")? as u64,
            connection_idle_ms: read.number("connections.max.idle.ms")? as u64,
            inflight_requests_max: read.number("rill.connection.inflight.requests.max")? as usize,
            retention_check_interval_ms: read.number("log.retention.check.interval.ms")? as u64,
            checkpoint_interval_ms: read.number("log.flush.offset.checkpoint.interval.ms")? as u64,
            cleaner_backoff_ms: read.number("log.cleaner.backoff.ms")? as u64,
            recovery_threads: read.number("num.recovery.threads.per.data.dir")? as usize,
            flush_threads: read.number("log.flush.threads")? as usize,
            flush_sync_mode,
            offsets_topic_partitions: read.number("offsets.topic.num.partitions")? as i32,
            offsets_topic_segment_bytes: read.number("offsets.topic.segment.bytes")? as i32,
            share_state_topic: ShareStateTopic {
                partitions: read.number("share.coordinator.state.topic.num.partitions")? as i32,
                replication_factor: read
                    .number("share.coordinator.state.topic.replication.factor")?
                    as i16,
                min_isr: read.number("share.coordinator.state.topic.min.isr")? as i16,
            },
            offsets_retention_ms: read.number("offsets.retention.minutes")? * 60_000,
            offsets_retention_check_interval_ms: read
                .number("offsets.retention.check.interval.ms")?
                as u64,
            offset_metadata_max_bytes: read.number("offset.metadata.max.bytes")? as usize,
            transactions: TransactionsConfig {
                log_partitions: read.number("transaction.state.log.num.partitions")? as i32,
                log_replication_factor: read.number("transaction.state.log.replication.factor")?
                    as i16,
                log_min_isr: read.number("transaction.state.log.min.isr")? as i16,
                log_segment_bytes: read.number("transaction.state.log.segment.bytes")? as i32,
                max_timeout_ms: read.number("transaction.max.timeout.ms")? as i32,
                id_expiration_ms: read.number("transactional.id.expiration.ms")? as i32,
                abort_timed_out_interval_ms: read
                    .number("transaction.abort.timed.out.transaction.cleanup.interval.ms")?
                    as u64,
                remove_expired_interval_ms: read
                    .number("transaction.remove.expired.transaction.cleanup.interval.ms")?
                    as u64,
            },
            group: rill_group::GroupConfig {
                min_session_timeout_ms: read.number("group.min.session.timeout.ms")? as i32,
                max_session_timeout_ms: read.number("group.max.session.timeout.ms")? as i32,
                initial_rebalance_delay_ms: read.number("group.initial.rebalance.delay.ms")? as i32,
                group_max_size: read.number("group.max.size")? as usize,
            },
            group_configs: group_config_defaults(&read)?,
            properties,
        })
    }
}

/// Reads the broker's own properties out of checked properties, through
/// the table: the value given, or an alias's, or the default.
/// Property `name` for listener `listener`: its
/// `listener.name.LISTENER.` form (the name in any case) first, then the
/// broker's, then the default.
fn listener_value(properties: &Properties, listener: &str, name: &str) -> Option<String> {
    let scoped = properties.iter().find_map(|(key, value)| {
        let rest = key.strip_prefix("listener.name.")?;
        let (of, property) = rest.split_once('.')?;
        (of.eq_ignore_ascii_case(listener) && property == name).then(|| value.clone())
    });
    scoped.or_else(|| broker_properties::value_of(properties, name))
}

/// The group settings, with Kafka's start-up checks
/// (GroupCoordinatorConfig, ShareGroupConfig): each default within its
/// bounds, and heartbeats more frequent than the session timeout.
fn group_config_defaults(read: &Reader<'_>) -> Result<GroupConfigDefaults, ConfigError> {
    let bounded = |prefix: &str, setting: &str| -> Result<GroupBounded, ConfigError> {
        let name = format!("group.{prefix}.{setting}");
        let min_name = format!("group.{prefix}.min.{setting}");
        let max_name = format!("group.{prefix}.max.{setting}");
        // The table's ranges are within i32.
        let value = GroupBounded {
            default: read.number(&name)? as i32,
            min: read.number(&min_name)? as i32,
            max: read.number(&max_name)? as i32,
        };
        if value.min > value.max {
            return Err(ConfigError::Invalid {
                name: max_name,
                value: value.max.to_string(),
                expected: format!("at least {min_name} ({})", value.min),
            });
        }
        if !(value.min..=value.max).contains(&value.default) {
            return Err(ConfigError::Invalid {
                name,
                value: value.default.to_string(),
                expected: format!(
                    "a value within {min_name} and {max_name} ([{}, {}])",
                    value.min, value.max
                ),
            });
        }
        Ok(value)
    };
    let defaults = GroupConfigDefaults {
        consumer_assignors: consumer_assignors(read)?,
        consumer_migration_policy: MigrationPolicy::from_name(
            &read.text("group.consumer.migration.policy"),
        )
        .ok_or_else(|| ConfigError::Invalid {
            name: "group.consumer.migration.policy".to_owned(),
            value: read.text("group.consumer.migration.policy"),
            expected: "bidirectional, upgrade, downgrade or disabled".to_owned(),
        })?,
        consumer_session_timeout_ms: bounded("consumer", "session.timeout.ms")?,
        consumer_heartbeat_interval_ms: bounded("consumer", "heartbeat.interval.ms")?,
        share_session_timeout_ms: bounded("share", "session.timeout.ms")?,
        share_heartbeat_interval_ms: bounded("share", "heartbeat.interval.ms")?,
        share_record_lock_duration_ms: bounded("share", "record.lock.duration.ms")?,
        share_delivery_count_limit: bounded("share", "delivery.count.limit")?,
        share_partition_max_record_locks: read.number("group.share.partition.max.record.locks")?
            as i32,
        dead_letter_auto_create_topics: read
            .boolean("errors.deadletterqueue.auto.create.topics.enable")?,
        dead_letter_topic_prefix: read.text("errors.deadletterqueue.topic.name.prefix"),
    };
    for (kind, heartbeat, session) in [
        (
            "consumer",
            defaults.consumer_heartbeat_interval_ms,
            defaults.consumer_session_timeout_ms,
        ),
        (
            "share",
            defaults.share_heartbeat_interval_ms,
            defaults.share_session_timeout_ms,
        ),
    ] {
        if heartbeat.default >= session.default {
            return Err(ConfigError::Invalid {
                name: format!("group.{kind}.heartbeat.interval.ms"),
                value: heartbeat.default.to_string(),
                expected: format!(
                    "less than group.{kind}.session.timeout.ms ({})",
                    session.default
                ),
            });
        }
    }
    Ok(defaults)
}

/// group.consumer.migration.policy (KIP-848): which online conversions
/// between the classic and the consumer group protocols are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrationPolicy {
    Bidirectional,
    Upgrade,
    Downgrade,
    Disabled,
}

impl MigrationPolicy {
    /// Kafka's value (case-insensitive, as Kafka's enum parse is).
    pub fn from_name(name: &str) -> Option<MigrationPolicy> {
        match name.trim().to_ascii_lowercase().as_str() {
            "bidirectional" => Some(MigrationPolicy::Bidirectional),
            "upgrade" => Some(MigrationPolicy::Upgrade),
            "downgrade" => Some(MigrationPolicy::Downgrade),
            "disabled" => Some(MigrationPolicy::Disabled),
            _ => None,
        }
    }

    /// A classic group with members may become a consumer group.
    pub fn allows_upgrade(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Upgrade
        )
    }

    /// A consumer group left with classic members only may become a
    /// classic group.
    pub fn allows_downgrade(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Downgrade
        )
    }
}

/// group.consumer.assignors: a comma-separated list of at least one
/// assignor Rill has.
fn consumer_assignors(read: &Reader<'_>) -> Result<Vec<rill_group::Assignor>, ConfigError> {
    const NAME: &str = "group.consumer.assignors";
    let value = read.text(NAME);
    let assignors: Option<Vec<rill_group::Assignor>> = value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(rill_group::Assignor::from_name)
        .collect();
    match assignors {
        Some(assignors) if !assignors.is_empty() => Ok(assignors),
        _ => Err(ConfigError::Invalid {
            name: NAME.to_owned(),
            value,
            expected: "a comma-separated list of uniform and range".to_owned(),
        }),
    }
}

struct Reader<'a>(&'a Properties);

impl Reader<'_> {
    fn text(&self, name: &str) -> String {
        broker_properties::value_of(self.0, name).unwrap_or_default()
    }

    /// An integer property, checked against the table's range (an
    /// alias's or a default's value too).
    fn number(&self, name: &str) -> Result<i64, ConfigError> {
        let value = self.text(name);
        if let Some(Known::Broker(def)) = broker_properties::lookup(name) {
            broker_properties::check_kind(def.kind, name, &value)?;
        }
        value
            .trim()
            .parse::<i64>()
            .map_err(|_| ConfigError::Invalid {
                name: name.to_string(),
                value,
                expected: "an integer".to_string(),
            })
    }

    fn boolean(&self, name: &str) -> Result<bool, ConfigError> {
        let value = self.text(name);
        match value.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ConfigError::Invalid {
                name: name.to_string(),
                value,
                expected: "true or false".to_string(),
            }),
        }
    }
}

/// Flattens a TOML document into Kafka properties.
fn parse_toml(text: &str) -> Result<Properties, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut properties = Properties::new();
    flatten("", &toml::Value::Table(table), &mut properties)?;
    Ok(properties)
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Properties) -> Result<(), String> {
    let text = match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&name, value, out)?;
            }
            return Ok(());
        }
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    toml::Value::String(s) => parts.push(s.clone()),
                    toml::Value::Integer(i) => parts.push(i.to_string()),
                    other => return Err(format!("{prefix}: unsupported list item {other}")),
                }
            }
            parts.join(",")
        }
    };
    out.insert(prefix.to_string(), text);
    Ok(())
}

/// How `__share_group_state` is made (Kafka's share.coordinator.state.topic.*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareStateTopic {
    pub partitions: i32,
    pub replication_factor: i16,
    pub min_isr: i16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_and_store_where_the_readme_says() {
        let config = BrokerConfig::from_properties(Properties::new()).unwrap();
        assert_eq!(
            config.listeners.inter_broker().bind.to_string(),
            "127.0.0.1:9092"
        );
        assert_eq!(
            config.listeners.inter_broker().advertised.to_string(),
            "127.0.0.1:9092"
        );
        assert_eq!(config.log_dirs, vec![PathBuf::from("./rill-data")]);
        assert_eq!(config.request_bytes_max, 100 * 1024 * 1024);
    }

    #[test]
    fn toml_tables_and_dotted_keys_flatten_to_kafka_names() {
        let text = r#"
            "log.dirs" = "/tmp/a"
            listeners = "PLAINTEXT://0.0.0.0:19092"
            num.partitions = 3
            [log]
            retention.ms = 1000
        "#;
        let properties = parse_toml(text).unwrap();
        assert_eq!(properties["log.dirs"], "/tmp/a");
        assert_eq!(properties["num.partitions"], "3");
        assert_eq!(properties["log.retention.ms"], "1000");
        let config = BrokerConfig::from_properties(properties).unwrap();
        assert_eq!(config.num_partitions, 3);
        assert_eq!(config.listeners.inter_broker().bind.port, 19092);
        // A wildcard listener advertises loopback unless told otherwise.
        assert_eq!(
            config.listeners.inter_broker().advertised.to_string(),
            "127.0.0.1:19092"
        );
    }

    #[test]
    fn a_cluster_node_is_configured_in_toml_with_kafkas_names() {
        let text = r#"
            node.id = 2
            controller.quorum.voters = "1@127.0.0.1:9093,2@127.0.0.1:9193"
            [broker.session.timeout]
            ms = 3000
        "#;
        let config = BrokerConfig::from_properties(parse_toml(text).unwrap()).unwrap();
        assert_eq!(config.node_id, 2);
        let QuorumConfig::Voters(voters) = &config.cluster.quorum else {
            panic!("a fixed quorum: {:?}", config.cluster.quorum);
        };
        assert_eq!(voters.len(), 2);
        assert_eq!(config.cluster.broker_session_timeout_ms, 3000);
    }

    #[test]
    fn a_quorum_list_makes_a_fixed_quorum_and_none_a_standalone_one() {
        let mut properties = Properties::new();
        properties.insert(
            "controller.quorum.voters".into(),
            "1@127.0.0.1:9093, 2@localhost:9193,3@[::1]:9293".into(),
        );
        let cluster = BrokerConfig::from_properties(properties).unwrap().cluster;
        let QuorumConfig::Voters(voters) = &cluster.quorum else {
            panic!("a fixed quorum: {:?}", cluster.quorum);
        };
        assert_eq!(voters[&1], "127.0.0.1:9093");
        assert_eq!(voters[&2], "localhost:9193");
        assert_eq!(voters[&3], "[::1]:9293");
        assert_eq!(cluster.broker_session_timeout_ms, 1000);
        assert_eq!(
            BrokerConfig::from_properties(Properties::new())
                .unwrap()
                .cluster
                .quorum,
            QuorumConfig::Standalone
        );
        let mut properties = Properties::new();
        properties.insert(
            "controller.quorum.bootstrap.servers".into(),
            "127.0.0.1:9092, localhost:9192".into(),
        );
        assert_eq!(
            BrokerConfig::from_properties(properties.clone())
                .unwrap()
                .cluster
                .quorum,
            QuorumConfig::Join(vec!["127.0.0.1:9092".into(), "localhost:9192".into()])
        );
        properties.insert("controller.quorum.voters".into(), "1@h:1".into());
        assert!(
            BrokerConfig::from_properties(properties).is_err(),
            "not both"
        );
        for bad in ["", "1@", "x@h:1", "1@h:1,1@h:2", "1:h:1"] {
            let mut properties = Properties::new();
            properties.insert("controller.quorum.voters".into(), bad.into());
            let err = BrokerConfig::from_properties(properties).unwrap_err();
            assert!(
                err.to_string().contains("controller.quorum.voters"),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_values_name_the_property() {
        let mut properties = Properties::new();
        properties.insert("num.partitions".into(), "zero".into());
        let err = BrokerConfig::from_properties(properties).unwrap_err();
        assert!(err.to_string().contains("num.partitions"), "{err}");
        let mut properties = Properties::new();
        properties.insert("log.retention.ms".into(), "soon".into());
        let err = BrokerConfig::from_properties(properties).unwrap_err();
        assert!(err.to_string().contains("log.retention.ms"), "{err}");
    }

    #[test]
    fn group_settings_default_to_kafkas_and_must_lie_within_their_bounds() {
        let config = BrokerConfig::from_properties(Properties::new()).unwrap();
        let groups = &config.group_configs;
        assert_eq!(
            groups.share_record_lock_duration_ms,
            GroupBounded {
                default: 30_000,
                min: 15_000,
                max: 60_000
            }
        );
        assert_eq!(groups.consumer_session_timeout_ms.default, 45_000);
        assert_eq!(groups.share_heartbeat_interval_ms.max, 15_000);
        assert_eq!(groups.share_delivery_count_limit.default, 5);
        assert_eq!(groups.dead_letter_topic_prefix, "dlq.");
        for (name, value, named) in [
            // Below its own minimum.
            (
                "group.share.record.lock.duration.ms",
                "10000",
                "group.share.record.lock.duration.ms",
            ),
            // A maximum below the minimum.
            (
                "group.consumer.max.session.timeout.ms",
                "40000",
                "group.consumer.max.session.timeout.ms",
            ),
            // Heartbeats no more frequent than the session times out.
            (
                "group.share.heartbeat.interval.ms",
                "15000",
                "group.share.heartbeat.interval.ms",
            ),
        ] {
            let mut properties = Properties::new();
            properties.insert(name.into(), value.into());
            if name == "group.share.heartbeat.interval.ms" {
                properties.insert("group.share.min.session.timeout.ms".into(), "1".into());
                properties.insert("group.share.session.timeout.ms".into(), "15000".into());
            }
            let err = BrokerConfig::from_properties(properties).unwrap_err();
            assert!(err.to_string().contains(named), "{name}: {err}");
        }
    }

    #[test]
    fn an_unknown_property_from_a_file_or_a_flag_stops_the_start() {
        let mut properties = parse_toml("[log.retention]\nhour = 2\n").unwrap();
        let err = BrokerConfig::from_properties(properties.clone()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown broker property \"log.retention.hour\": did you mean \"log.retention.hours\"?"
        );
        properties.clear();
        properties.insert("bogus.key".into(), "1".into());
        let err = BrokerConfig::from_properties(properties).unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownProperty { name, .. } if name == "bogus.key"),
            "{err}"
        );
    }

    #[test]
    fn every_property_the_tests_tools_and_docs_set_is_known() {
        // Those passed with --set or written in a config file anywhere in
        // tests/, tools/, README.md and docs/, and the flags' own.
        let used = [
            ("auto.leader.rebalance.enable", "false"),
            ("broker.heartbeat.interval.ms", "100"),
            ("broker.id", "3"),
            ("broker.session.timeout.ms", "1000"),
            ("connections.max.idle.ms", "1000"),
            ("controller.quorum.election.timeout.ms", "300"),
            ("default.replication.factor", "3"),
            ("group.initial.rebalance.delay.ms", "0"),
            ("group.share.max.record.lock.duration.ms", "120000"),
            ("group.share.min.heartbeat.interval.ms", "1000"),
            ("group.share.min.session.timeout.ms", "1000"),
            ("group.share.record.lock.duration.ms", "40000"),
            ("leader.imbalance.check.interval.seconds", "1"),
            ("leader.imbalance.per.broker.percentage", "0"),
            ("log.cleaner.backoff.ms", "50"),
            ("log.dir", "/tmp/rill-a"),
            ("log.flush.policy", "none"),
            ("log.flush.sync.mode", "per-file"),
            ("log.flush.threads", "1"),
            ("log.message.format.version", "3.0-IV1"),
            ("log.retention.check.interval.ms", "100"),
            ("log.retention.hours", "2"),
            ("log.retention.ms", "3600000"),
            ("log.segment.bytes", "2097152"),
            ("max.connections", "10"),
            ("min.insync.replicas", "2"),
            ("num.partitions", "3"),
            ("offsets.topic.num.partitions", "3"),
            ("offsets.topic.replication.factor", "1"),
            ("replica.fetch.backoff.ms", "50"),
            ("replica.fetch.max.bytes", "1048576"),
            ("replica.fetch.wait.max.ms", "100"),
            ("replica.lag.time.max.ms", "2000"),
            ("rill.connection.inflight.requests.max", "16"),
            ("socket.request.max.bytes", "1048576"),
            ("unclean.leader.election.enable", "true"),
            ("advertised.listeners", "127.0.0.1:19092"),
            ("listeners", "127.0.0.1:19092"),
            ("controller.quorum.bootstrap.servers", "127.0.0.1:9092"),
        ];
        let properties: Properties = used
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = BrokerConfig::from_properties(properties).unwrap();
        assert_eq!(config.node_id, 3, "broker.id stands for node.id");
        assert_eq!(config.log_dirs, vec![PathBuf::from("/tmp/rill-a")]);
        assert_eq!(config.cluster.leader_imbalance_check_interval_ms, None);
    }

    #[test]
    fn log_flush_sync_mode_is_auto_unless_forced_per_file() {
        use rill_storage::SyncModeSetting;
        let config = BrokerConfig::from_properties(Properties::new()).unwrap();
        assert_eq!(config.flush_sync_mode, SyncModeSetting::Auto);
        let mut properties = Properties::new();
        properties.insert("log.flush.sync.mode".into(), "per-file".into());
        let config = BrokerConfig::from_properties(properties).unwrap();
        assert_eq!(config.flush_sync_mode, SyncModeSetting::PerFile);
        let mut properties = Properties::new();
        properties.insert("log.flush.sync.mode".into(), "syncfs".into());
        let err = BrokerConfig::from_properties(properties).unwrap_err();
        assert!(
            err.to_string()
                .contains("log.flush.sync.mode=\"syncfs\": expected one of auto, per-file"),
            "{err}"
        );
    }
}
