//! Every broker property Rill knows, in one table: its name, default,
//! kind (and range), what it does, and the older names Kafka accepts for
//! it. Defaults, validation and parsing at start-up all come from here
//! (config.rs reads [`BrokerConfig`](crate::BrokerConfig) through it),
//! and so does the refusal of a property Rill does not know: Kafka only
//! warns of an unknown property, which lets a typo (`log.retention.hour`)
//! silently leave a default in place; our names are fixed, so a start
//! with one fails and names the nearest known property.
//!
//! A property is known if it is in [`BROKER_PROPERTIES`], sets a topic
//! config's default (the `broker_name`s of
//! [`TOPIC_CONFIGS`](crate::topic_config::TOPIC_CONFIGS), which keep their
//! own table because they can change at run time), or is one Kafka 4.0
//! removed ([`topic_config::is_retired`]: accepted and ignored).

use crate::listeners;
use crate::properties::{self, ConfigError, Properties};
use crate::topic_config::{self, ConfigValueError, TOPIC_CONFIGS, TopicConfigDef, ValueKind};

/// How a broker property's value is written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PropertyKind {
    /// A number, boolean or word, checked as topic configs are.
    Value(ValueKind),
    /// A list of Kafka's `NAME://HOST:PORT` (or a bare `HOST:PORT`).
    Listener,
    /// listener.security.protocol.map: `NAME:PROTOCOL,...`.
    ProtocolMap,
    /// A listener's name.
    ListenerName,
    /// controller.quorum.voters: `ID@HOST:PORT,...`.
    Voters,
    /// controller.quorum.bootstrap.servers: `HOST:PORT,...`.
    BootstrapServers,
    /// A comma-separated list of at least one directory.
    Dirs,
    /// Any text: a path, PEM, a rule list.
    Text,
    /// Any text that is a secret (a private key in PEM): DescribeConfigs
    /// marks it sensitive and never shows its value.
    Password,
}

/// Another name Kafka accepts for a property, in another unit maybe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AliasOf {
    /// The property it sets.
    pub of: &'static str,
    /// What its value is multiplied by to make the property's.
    pub factor: i64,
}

/// One broker property.
#[derive(Debug)]
pub(crate) struct BrokerPropertyDef {
    pub name: &'static str,
    /// `None` when leaving it unset means something of its own (an
    /// alias; advertised.listeners: the listener; the quorum properties:
    /// a one-node cluster of its own).
    pub default: Option<&'static str>,
    pub kind: PropertyKind,
    pub alias: Option<AliasOf>,
    pub doc: &'static str,
}

const fn long(min: i64, max: i64) -> PropertyKind {
    PropertyKind::Value(ValueKind::Long { min, max })
}

const fn int(min: i32, max: i32) -> PropertyKind {
    PropertyKind::Value(ValueKind::Int { min, max })
}

const BOOL: PropertyKind = PropertyKind::Value(ValueKind::Bool);
const I32_MAX: i32 = i32::MAX;
const I16_MAX: i32 = i16::MAX as i32;
const MS: PropertyKind = long(1, i64::MAX);
/// Retention in hours or minutes: -1 (or any negative) keeps everything.
const RETENTION_UNITS: PropertyKind = long(-1, i64::MAX);

const fn property(
    name: &'static str,
    default: &'static str,
    kind: PropertyKind,
    doc: &'static str,
) -> BrokerPropertyDef {
    BrokerPropertyDef {
        name,
        default: Some(default),
        kind,
        alias: None,
        doc,
    }
}

const fn unset(name: &'static str, kind: PropertyKind, doc: &'static str) -> BrokerPropertyDef {
    BrokerPropertyDef {
        name,
        default: None,
        kind,
        alias: None,
        doc,
    }
}

const fn alias(
    name: &'static str,
    of: &'static str,
    factor: i64,
    kind: PropertyKind,
    doc: &'static str,
) -> BrokerPropertyDef {
    BrokerPropertyDef {
        name,
        default: None,
        kind,
        alias: Some(AliasOf { of, factor }),
        doc,
    }
}

/// The broker's own properties, sorted by name: all it reads at start-up
/// besides the topic defaults.
pub(crate) const BROKER_PROPERTIES: &[BrokerPropertyDef] = &[
    unset(
        "advertised.listeners",
        PropertyKind::Listener,
        "The addresses clients are told to connect to, NAME://HOST:PORT,...; a listener left out advertises its own (loopback for a wildcard host).",
    ),
    property(
        "allow.everyone.if.no.acl.found",
        "false",
        BOOL,
        "With an authorizer, whether a resource no ACL names is open to everyone (Kafka's default: no).",
    ),
    property(
        "authorizer.class.name",
        "",
        PropertyKind::Value(ValueKind::Choice(&[
            "",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "kafka.security.authorizer.AclAuthorizer",
        ])),
        "Empty: no ACLs are checked. Kafka's StandardAuthorizer (or AclAuthorizer, its older name): every request is checked against the ACLs, with Kafka's semantics.",
    ),
    property(
        "auto.create.topics.enable",
        "true",
        BOOL,
        "Whether Metadata and produce requests for an unknown topic create it.",
    ),
    property(
        "auto.leader.rebalance.enable",
        "true",
        BOOL,
        "Whether the controller gives leadership back to preferred replicas.",
    ),
    property(
        "broker.heartbeat.interval.ms",
        "200",
        MS,
        "How often a broker heartbeats to the controller.",
    ),
    alias(
        "broker.id",
        "node.id",
        1,
        int(0, I32_MAX),
        "Kafka's older name for node.id (node.id wins if both are set).",
    ),
    property(
        "broker.session.timeout.ms",
        "1000",
        MS,
        "A broker not heard from for this long is fenced and its partitions move.",
    ),
    property(
        "connections.max.idle.ms",
        "600000",
        MS,
        "A connection with no request for this long is closed.",
    ),
    property(
        "connections.max.reauth.ms",
        "0",
        long(0, i64::MAX),
        "A SASL client's session lasts this long (told in SaslAuthenticate); it must re-authenticate before then (KIP-368) or its connection is closed at its next request. 0: sessions never expire.",
    ),
    unset(
        "controller.quorum.bootstrap.servers",
        PropertyKind::BootstrapServers,
        "Kafka listeners of nodes of a running quorum, which this node joins as a voter (--join).",
    ),
    property(
        "controller.quorum.election.timeout.ms",
        "500",
        int(10, I32_MAX),
        "The lower bound of a controller's election timeout (the upper is twice it).",
    ),
    unset(
        "controller.quorum.voters",
        PropertyKind::Voters,
        "A fixed quorum of controllers, ID@HOST:PORT,...; unset (and without bootstrap servers), the node is a quorum of its own.",
    ),
    property(
        "default.replication.factor",
        "1",
        int(1, I16_MAX),
        "Replicas of an auto-created topic, or of one whose CreateTopics request leaves it to the broker.",
    ),
    property(
        "errors.deadletterqueue.auto.create.topics.enable",
        "false",
        BOOL,
        "Whether a share group's dead-letter topic (the group config errors.deadletterqueue.topic.name, KIP-1191) is created when it does not exist.",
    ),
    property(
        "errors.deadletterqueue.topic.name.prefix",
        "dlq.",
        PropertyKind::Text,
        "The prefix a share group's dead-letter topic name must have for records to be written to it (KIP-1191); empty: any name.",
    ),
    property(
        "group.consumer.assignors",
        "uniform,range",
        PropertyKind::Text,
        "The server-side assignors of consumer groups (KIP-848), by name (uniform, range, or Kafka's class names): the first is the default, the others members may ask for.",
    ),
    property(
        "group.consumer.heartbeat.interval.ms",
        "5000",
        int(1, I32_MAX),
        "The heartbeat interval of a consumer group's members (KIP-848): the default of the group config consumer.heartbeat.interval.ms.",
    ),
    property(
        "group.consumer.max.heartbeat.interval.ms",
        "15000",
        int(1, I32_MAX),
        "The largest consumer.heartbeat.interval.ms a group may be given.",
    ),
    property(
        "group.consumer.max.session.timeout.ms",
        "60000",
        int(1, I32_MAX),
        "The largest consumer.session.timeout.ms a group may be given.",
    ),
    property(
        "group.consumer.migration.policy",
        "bidirectional",
        PropertyKind::Value(ValueKind::Choice(&[
            "bidirectional",
            "upgrade",
            "downgrade",
            "disabled",
        ])),
        "Online migration between the classic and the consumer group protocols (KIP-848): upgrade lets a consumer-protocol member join a classic group with members (it becomes a consumer group); downgrade turns a consumer group back into a classic group when its last consumer-protocol member leaves; bidirectional allows both, disabled neither.",
    ),
    property(
        "group.consumer.min.heartbeat.interval.ms",
        "5000",
        int(1, I32_MAX),
        "The smallest consumer.heartbeat.interval.ms a group may be given.",
    ),
    property(
        "group.consumer.min.session.timeout.ms",
        "45000",
        int(1, I32_MAX),
        "The smallest consumer.session.timeout.ms a group may be given.",
    ),
    property(
        "group.consumer.session.timeout.ms",
        "45000",
        int(1, I32_MAX),
        "How long a consumer group's member may go without a heartbeat (KIP-848): the default of the group config consumer.session.timeout.ms.",
    ),
    property(
        "group.initial.rebalance.delay.ms",
        "3000",
        int(0, I32_MAX),
        "How long a new group waits for more members before its first rebalance.",
    ),
    property(
        "group.max.session.timeout.ms",
        "1800000",
        int(0, I32_MAX),
        "The largest session timeout a group member may ask for.",
    ),
    property(
        "group.max.size",
        "2147483647",
        int(1, I32_MAX),
        "Members a consumer group may have.",
    ),
    property(
        "group.min.session.timeout.ms",
        "6000",
        int(0, I32_MAX),
        "The smallest session timeout a group member may ask for.",
    ),
    property(
        "group.share.delivery.count.limit",
        "5",
        int(2, 10),
        "Deliveries of a record to a share group before it is archived (KIP-932): the default of the group config share.delivery.count.limit.",
    ),
    property(
        "group.share.heartbeat.interval.ms",
        "5000",
        int(1, I32_MAX),
        "The heartbeat interval of a share group's members: the default of share.heartbeat.interval.ms.",
    ),
    property(
        "group.share.max.delivery.count.limit",
        "10",
        int(5, 25),
        "The largest share.delivery.count.limit a group may be given.",
    ),
    property(
        "group.share.max.heartbeat.interval.ms",
        "15000",
        int(1, I32_MAX),
        "The largest share.heartbeat.interval.ms a group may be given.",
    ),
    property(
        "group.share.max.record.lock.duration.ms",
        "60000",
        int(30_000, 3_600_000),
        "The largest share.record.lock.duration.ms a group may be given.",
    ),
    property(
        "group.share.max.session.timeout.ms",
        "60000",
        int(1, I32_MAX),
        "The largest share.session.timeout.ms a group may be given.",
    ),
    property(
        "group.share.min.delivery.count.limit",
        "2",
        int(2, 5),
        "The smallest share.delivery.count.limit a group may be given.",
    ),
    property(
        "group.share.min.heartbeat.interval.ms",
        "5000",
        int(1, I32_MAX),
        "The smallest share.heartbeat.interval.ms a group may be given.",
    ),
    property(
        "group.share.min.record.lock.duration.ms",
        "15000",
        int(1000, 30_000),
        "The smallest share.record.lock.duration.ms a group may be given.",
    ),
    property(
        "group.share.min.session.timeout.ms",
        "45000",
        int(1, I32_MAX),
        "The smallest share.session.timeout.ms a group may be given.",
    ),
    property(
        "group.share.partition.max.record.locks",
        "2000",
        int(100, 10_000),
        "Records of one share-partition a share group may have acquired (locked) at once.",
    ),
    property(
        "group.share.record.lock.duration.ms",
        "30000",
        int(1000, 3_600_000),
        "How long a share group's member holds a record it acquired before it is released to others: the default of share.record.lock.duration.ms.",
    ),
    property(
        "group.share.session.timeout.ms",
        "45000",
        int(1, I32_MAX),
        "How long a share group's member may go without a heartbeat: the default of share.session.timeout.ms.",
    ),
    unset(
        "inter.broker.listener.name",
        PropertyKind::ListenerName,
        "The listener other brokers and controllers connect to; unset, the first of listeners.",
    ),
    property(
        "leader.imbalance.check.interval.seconds",
        "300",
        long(1, i64::MAX / 1000),
        "How often the controller checks for leadership away from preferred replicas.",
    ),
    property(
        "leader.imbalance.per.broker.percentage",
        "10",
        int(0, 100),
        "The share of a broker's partitions led elsewhere that triggers a rebalance.",
    ),
    unset(
        "listener.security.protocol.map",
        PropertyKind::ProtocolMap,
        "Each listener name's security protocol, NAME:PROTOCOL,...; unset, PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL name themselves.",
    ),
    property(
        "listeners",
        "PLAINTEXT://127.0.0.1:9092",
        PropertyKind::Listener,
        "The listeners for Kafka clients, NAME://HOST:PORT,...",
    ),
    property(
        "log.cleaner.backoff.ms",
        "15000",
        MS,
        "How often compacted topics are checked for cleaning.",
    ),
    alias(
        "log.dir",
        "log.dirs",
        1,
        PropertyKind::Dirs,
        "Kafka's name for a single log.dirs (log.dirs wins if both are set).",
    ),
    property(
        "log.dirs",
        "./rill-data",
        PropertyKind::Dirs,
        "Where partitions live: a comma-separated list of directories.",
    ),
    property(
        "log.flush.offset.checkpoint.interval.ms",
        "60000",
        MS,
        "How often the recovery points and log start offsets are checkpointed.",
    ),
    property(
        "log.flush.sync.mode",
        "auto",
        PropertyKind::Value(ValueKind::Choice(&["auto", "per-file"])),
        "Rill: auto makes a flush round durable with one syncfs where syncfs is a real sync; per-file fdatasyncs each file.",
    ),
    property(
        "log.flush.threads",
        "4",
        int(1, 256),
        "Rill: flusher threads (group-commit rounds; syncs of one file system still run one at a time).",
    ),
    property(
        "log.retention.check.interval.ms",
        "300000",
        MS,
        "How often retention deletes old segments.",
    ),
    alias(
        "log.retention.hours",
        "log.retention.ms",
        3_600_000,
        RETENTION_UNITS,
        "log.retention.ms in hours (log.retention.ms and .minutes win).",
    ),
    alias(
        "log.retention.minutes",
        "log.retention.ms",
        60_000,
        RETENTION_UNITS,
        "log.retention.ms in minutes (log.retention.ms wins).",
    ),
    alias(
        "log.roll.hours",
        "log.roll.ms",
        3_600_000,
        long(1, i64::MAX),
        "log.roll.ms in hours (log.roll.ms wins).",
    ),
    property(
        "max.connections",
        "16384",
        int(1, I32_MAX),
        "Connections beyond this are closed at accept (Kafka's is unbounded).",
    ),
    property(
        "node.id",
        "1",
        int(0, I32_MAX),
        "This broker's id in the cluster.",
    ),
    property(
        "num.partitions",
        "1",
        int(1, 1 << 20),
        "Partitions of an auto-created topic, or of one whose CreateTopics request leaves it to the broker.",
    ),
    property(
        "num.recovery.threads.per.data.dir",
        "2",
        int(1, 256),
        "Threads that open logs at start-up, per log directory.",
    ),
    property(
        "offset.metadata.max.bytes",
        "4096",
        int(0, I32_MAX),
        "The longest metadata string of a committed offset.",
    ),
    property(
        "offsets.retention.check.interval.ms",
        "600000",
        MS,
        "How often expired committed offsets are removed.",
    ),
    property(
        "offsets.retention.minutes",
        "10080",
        int(1, I32_MAX),
        "How long the committed offsets of an empty group are kept.",
    ),
    property(
        "offsets.topic.num.partitions",
        "50",
        int(1, 10_000),
        "Partitions of __consumer_offsets when it is created.",
    ),
    property(
        "offsets.topic.replication.factor",
        "3",
        int(1, I16_MAX),
        "Replicas of each __consumer_offsets partition (capped at the brokers registered when it is created).",
    ),
    property(
        "offsets.topic.segment.bytes",
        "104857600",
        int(1024, I32_MAX),
        "segment.bytes of __consumer_offsets.",
    ),
    property(
        "quota.window.num",
        "11",
        int(2, 1000),
        "Windows a client's use is measured over for its quotas.",
    ),
    property(
        "quota.window.size.seconds",
        "1",
        int(1, 3600),
        "The length of each quota window.",
    ),
    property(
        "replica.fetch.backoff.ms",
        "100",
        long(0, i64::MAX),
        "The pause after a failed follower fetch.",
    ),
    property(
        "replica.fetch.max.bytes",
        "1048576",
        int(1024, I32_MAX),
        "Bytes a follower asks for per partition.",
    ),
    property(
        "replica.fetch.wait.max.ms",
        "500",
        long(0, i64::MAX),
        "How long a follower's fetch waits at the leader for new data.",
    ),
    property(
        "replica.lag.time.max.ms",
        "30000",
        MS,
        "A follower not caught up to the leader's log end within this long leaves the ISR.",
    ),
    property(
        "rill.connection.inflight.requests.max",
        "1024",
        int(1, 4096),
        "Rill: requests read from one connection and not yet answered; beyond it the broker stops reading that socket.",
    ),
    property(
        "rill.console.history.interval.ms",
        "10000",
        int(100, I32_MAX),
        "Rill: how often the web console's in-memory history (traffic, group lag; the last hour, at most 3600 samples) is sampled.",
    ),
    property(
        "rill.http.authentication",
        "none",
        PropertyKind::Value(ValueKind::Choice(&["none", "basic"])),
        "Rill: basic asks every HTTP request but /health and /ready for a user name and password (HTTP Basic), checked against the user's SCRAM credential; with an authorizer, the user needs DESCRIBE on the cluster to read and ALTER to change anything.",
    ),
    property(
        "rill.http.listener",
        "127.0.0.1:9644",
        PropertyKind::Text,
        "Rill: the HTTP admin listener (the web console, /metrics, /health, /ready), HOST:PORT; empty turns it off. Left at its default, a port already in use is warned of and skipped.",
    ),
    property(
        "rill.http.ssl.client.auth",
        "none",
        PropertyKind::Value(ValueKind::Choice(&["none", "requested", "required"])),
        "Rill: whether the HTTPS listener asks for a client certificate; its subject (mapped by ssl.principal.mapping.rules) is the caller's principal when no Basic user is given.",
    ),
    unset(
        "rill.http.ssl.keystore.certificate.chain",
        PropertyKind::Text,
        "Rill: the HTTP listener's certificate chain, in PEM (with rill.http.ssl.keystore.key): it serves HTTPS.",
    ),
    unset(
        "rill.http.ssl.keystore.key",
        PropertyKind::Password,
        "Rill: the HTTP listener's private key, unencrypted PEM (with rill.http.ssl.keystore.certificate.chain).",
    ),
    unset(
        "rill.http.ssl.keystore.location",
        PropertyKind::Text,
        "Rill: a PEM file with the HTTP listener's private key and certificate chain: it serves HTTPS; reloaded when it changes.",
    ),
    unset(
        "rill.http.ssl.truststore.location",
        PropertyKind::Text,
        "Rill: PEM certificates the HTTPS listener trusts for client certificates (rill.http.ssl.client.auth).",
    ),
    property(
        "rill.log.maps.max",
        "0",
        int(0, I32_MAX),
        "Rill: segment and index memory maps at once; the least recently used are unmapped beyond it and mapped again when needed (0, and at most: vm.max_map_count less 4096).",
    ),
    property(
        "rill.log.open.files.max",
        "0",
        int(0, I32_MAX),
        "Rill: segment file descriptors open at once; the least recently used close beyond it and open again when needed (0: half the process's open-file limit, at least 64).",
    ),
    property(
        "rill.metrics.partition.series.max",
        "1000",
        int(0, I32_MAX),
        "Rill: /metrics shows series per partition (log size, offsets) while the broker holds at most this many partitions; beyond, only per topic.",
    ),
    property(
        "rill.ssl.reload.check.interval.ms",
        "10000",
        MS,
        "Rill: how often TLS listeners look for changed keystore and truststore files, and load them for new connections.",
    ),
    property(
        "sasl.enabled.mechanisms",
        "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        PropertyKind::Value(ValueKind::List(&[
            "PLAIN",
            "SCRAM-SHA-256",
            "SCRAM-SHA-512",
            "OAUTHBEARER",
        ])),
        "The SASL mechanisms SASL listeners offer (Kafka's default, GSSAPI, Rill does not have; OAUTHBEARER needs sasl.oauthbearer.jwks.endpoint.url).",
    ),
    property(
        "sasl.oauthbearer.clock.skew.seconds",
        "30",
        long(0, i64::MAX / 1000),
        "How far an OAUTHBEARER token's exp, iat and nbf may be off the broker's clock.",
    ),
    unset(
        "sasl.oauthbearer.expected.audience",
        PropertyKind::Text,
        "Audiences (comma-separated) of which an OAUTHBEARER token's aud must name one; unset, any.",
    ),
    unset(
        "sasl.oauthbearer.expected.issuer",
        PropertyKind::Text,
        "The iss an OAUTHBEARER token must have; unset, any.",
    ),
    unset(
        "sasl.oauthbearer.jwks.endpoint.url",
        PropertyKind::Text,
        "The JWKS whose keys sign OAUTHBEARER tokens: a file: URL or a path (read at start-up).",
    ),
    property(
        "sasl.oauthbearer.sub.claim.name",
        "sub",
        PropertyKind::Text,
        "The claim of an OAUTHBEARER token that names the principal.",
    ),
    property(
        "share.coordinator.state.topic.min.isr",
        "2",
        int(1, I16_MAX),
        "min.insync.replicas of __share_group_state when it is created (at most its replication factor).",
    ),
    property(
        "share.coordinator.state.topic.num.partitions",
        "50",
        int(1, 10_000),
        "Partitions of __share_group_state, the share groups' record states, when it is created.",
    ),
    property(
        "share.coordinator.state.topic.replication.factor",
        "3",
        int(1, I16_MAX),
        "Replicas of each partition of __share_group_state when it is created (fewer in a smaller cluster).",
    ),
    property(
        "socket.request.max.bytes",
        "104857600",
        int(1024, I32_MAX),
        "The largest request frame, checked before anything is allocated for it.",
    ),
    unset(
        "ssl.cipher.suites",
        PropertyKind::Text,
        "The cipher suites a TLS listener and the nodes' connections offer, in order of preference, by their IANA names (TLS_AES_128_GCM_SHA256, ...); unset, all of ring's, AES-128-GCM first.",
    ),
    property(
        "ssl.client.auth",
        "none",
        PropertyKind::Value(ValueKind::Choice(&["none", "requested", "required"])),
        "Whether a TLS listener asks clients for a certificate: required refuses clients without one the truststore trusts; requested lets them in as User:ANONYMOUS.",
    ),
    property(
        "ssl.enabled.protocols",
        "TLSv1.2,TLSv1.3",
        PropertyKind::Value(ValueKind::List(&["TLSv1.2", "TLSv1.3"])),
        "The TLS versions a TLS listener accepts.",
    ),
    unset(
        "ssl.keystore.certificate.chain",
        PropertyKind::Text,
        "The listener's certificate chain, in PEM (with ssl.keystore.key, instead of ssl.keystore.location).",
    ),
    unset(
        "ssl.keystore.key",
        PropertyKind::Password,
        "The listener's private key, unencrypted PEM (with ssl.keystore.certificate.chain).",
    ),
    unset(
        "ssl.keystore.location",
        PropertyKind::Text,
        "A PEM file with the listener's private key (unencrypted) and certificate chain; reloaded when it changes.",
    ),
    property(
        "ssl.keystore.type",
        "PEM",
        PropertyKind::Value(ValueKind::Choice(&["PEM"])),
        "The keystore's format: Rill reads PEM (convert a JKS or PKCS12 keystore with openssl or keytool).",
    ),
    property(
        "ssl.principal.mapping.rules",
        "DEFAULT",
        PropertyKind::Text,
        "How a client certificate's subject (RFC 2253) becomes a principal's name: RULE:pattern/replacement/[LU],...,DEFAULT as in Kafka.",
    ),
    unset(
        "ssl.truststore.certificates",
        PropertyKind::Text,
        "The certificates trusted to sign client certificates, in PEM (instead of ssl.truststore.location).",
    ),
    unset(
        "ssl.truststore.location",
        PropertyKind::Text,
        "A PEM file of the certificates trusted to sign client certificates; reloaded when it changes.",
    ),
    property(
        "ssl.truststore.type",
        "PEM",
        PropertyKind::Value(ValueKind::Choice(&["PEM"])),
        "The truststore's format: Rill reads PEM.",
    ),
    property(
        "super.users",
        "",
        PropertyKind::Text,
        "Principals the authorizer lets do anything, User:NAME;User:OTHER (semicolons, as Kafka).",
    ),
    property(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "10000",
        MS,
        "How often the transaction coordinator aborts transactions open past their timeout.",
    ),
    property(
        "transaction.max.timeout.ms",
        "900000",
        int(1, I32_MAX),
        "The longest transaction.timeout.ms a producer may ask for.",
    ),
    property(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        "3600000",
        MS,
        "How often transactional ids idle past transactional.id.expiration.ms are removed.",
    ),
    property(
        "transaction.state.log.min.isr",
        "2",
        int(1, I16_MAX),
        "min.insync.replicas of __transaction_state (capped at its replication factor).",
    ),
    property(
        "transaction.state.log.num.partitions",
        "50",
        int(1, 10_000),
        "Partitions of __transaction_state when it is created.",
    ),
    property(
        "transaction.state.log.replication.factor",
        "3",
        int(1, I16_MAX),
        "Replicas of each __transaction_state partition (capped at the brokers registered when it is created).",
    ),
    property(
        "transaction.state.log.segment.bytes",
        "104857600",
        int(1024, I32_MAX),
        "segment.bytes of __transaction_state.",
    ),
    property(
        "transactional.id.expiration.ms",
        "604800000",
        int(1, I32_MAX),
        "How long a transactional id with no transaction is kept before it is removed.",
    ),
];

impl PropertyKind {
    /// The type DescribeConfigs v3+ reports (Kafka's ConfigType ids):
    /// a listener or a directory list is a STRING, a list of servers a
    /// LIST, as Kafka declares them.
    pub(crate) fn config_type(self) -> i8 {
        match self {
            PropertyKind::Value(kind) => kind.config_type(),
            PropertyKind::Listener
            | PropertyKind::Dirs
            | PropertyKind::ProtocolMap
            | PropertyKind::ListenerName => 2,
            PropertyKind::Voters | PropertyKind::BootstrapServers => 7,
            PropertyKind::Text => 2,
            PropertyKind::Password => 9,
        }
    }
}

/// What a property name is, when Rill knows it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Known {
    Broker(&'static BrokerPropertyDef),
    /// The broker-level default of a topic config.
    TopicDefault(&'static TopicConfigDef),
    /// Removed by Kafka 4.0: accepted and ignored.
    Retired,
}

pub(crate) fn lookup(name: &str) -> Option<Known> {
    if let Some(scoped) = listener_scoped(name) {
        return lookup(scoped);
    }
    if let Some(def) = BROKER_PROPERTIES.iter().find(|def| def.name == name) {
        return Some(Known::Broker(def));
    }
    if let Some(def) = topic_config::find_by_broker_name(name) {
        return Some(Known::TopicDefault(def));
    }
    topic_config::is_retired(name).then_some(Known::Retired)
}

/// The property that `listener.name.NAME.PROPERTY` sets for one
/// listener, as Kafka lets TLS properties be set per listener
/// (`listener.name.external.ssl.keystore.location`). Only `ssl.*`: Rill
/// reads SASL properties for the whole broker, so a per-listener one is
/// refused at start-up rather than silently ignored.
pub(crate) fn listener_scoped(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("listener.name.")?;
    let (_listener, property) = rest.split_once('.')?;
    property.starts_with("ssl.").then_some(property)
}

/// Whether the value of property `name` is a secret, never shown.
pub(crate) fn is_sensitive(name: &str) -> bool {
    matches!(lookup(name), Some(Known::Broker(def)) if def.kind == PropertyKind::Password)
}

/// The aliases of `name`, finest unit first: the order in which Kafka
/// lets them stand in for it (log.retention.minutes before .hours).
pub(crate) fn aliases_of(name: &str) -> impl Iterator<Item = (&'static str, i64)> {
    let mut aliases: Vec<(&'static str, i64)> = BROKER_PROPERTIES
        .iter()
        .filter_map(|def| {
            def.alias
                .filter(|alias| alias.of == name)
                .map(|alias| (def.name, alias.factor))
        })
        .collect();
    aliases.sort_by_key(|&(_, factor)| factor);
    aliases.into_iter()
}

/// DescribeConfigs' type of property `name` (STRING when unknown).
pub(crate) fn config_type(name: &str) -> i8 {
    match lookup(name) {
        Some(Known::Broker(def)) => def.kind.config_type(),
        Some(Known::TopicDefault(def)) => def.kind.config_type(),
        Some(Known::Retired) | None => 2,
    }
}

/// DescribeConfigs' documentation of property `name`.
pub(crate) fn doc(name: &str) -> &'static str {
    match lookup(name) {
        Some(Known::Broker(def)) => def.doc,
        Some(Known::TopicDefault(def)) => def.doc,
        Some(Known::Retired) | None => "",
    }
}

/// Checks one property as given at start-up: known, and its value of
/// its kind. A retired property passes whatever its value.
pub(crate) fn check(name: &str, value: &str) -> Result<(), ConfigError> {
    match lookup(name) {
        None => Err(ConfigError::UnknownProperty {
            name: name.chars().take(NAME_CHARS_SHOWN).collect(),
            nearest: nearest(name),
        }),
        Some(Known::Retired) => Ok(()),
        Some(Known::TopicDefault(def)) => Ok(topic_config::check_value(def, name, value)?),
        Some(Known::Broker(def)) => check_kind(def.kind, name, value),
    }
}

/// Checks `value` against `kind`, naming the property `name` if it fails.
pub(crate) fn check_kind(kind: PropertyKind, name: &str, value: &str) -> Result<(), ConfigError> {
    match kind {
        PropertyKind::Value(kind) => Ok(topic_config::check_kind(kind, name, value)?),
        PropertyKind::Listener => listeners::check_list(value),
        PropertyKind::ProtocolMap => listeners::check_protocol_map(value),
        PropertyKind::ListenerName => {
            let name = value.trim();
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    name: name.to_string(),
                    value: value.to_string(),
                    expected: "a listener name of letters, digits and _".to_string(),
                })
            }
        }
        PropertyKind::Text | PropertyKind::Password => Ok(()),
        PropertyKind::Voters => properties::parse_voters(value).map(drop),
        PropertyKind::BootstrapServers => properties::parse_bootstrap(value).map(drop),
        PropertyKind::Dirs => {
            if value.split(',').any(|dir| !dir.trim().is_empty()) {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    name: name.to_string(),
                    value: value.to_string(),
                    expected: "a comma-separated list of at least one directory".to_string(),
                })
            }
        }
    }
}

/// How much of an unknown name an error repeats: a name is short, but
/// one read from a file could be anything.
const NAME_CHARS_SHOWN: usize = 200;

/// Every known name: the broker's, the topic defaults', the retired.
fn known_names() -> impl Iterator<Item = &'static str> {
    BROKER_PROPERTIES
        .iter()
        .map(|def| def.name)
        .chain(TOPIC_CONFIGS.iter().map(|def| def.broker_name))
        .chain(topic_config::RETIRED.iter().map(|&(_, broker)| broker))
}

/// The known property nearest `name` by edit distance (the first in
/// table order on a tie).
pub(crate) fn nearest(name: &str) -> &'static str {
    let name: String = name.chars().take(NAME_CHARS_SHOWN).collect();
    known_names()
        .min_by_key(|known| edit_distance(&name, known))
        .unwrap_or("node.id")
}

/// Levenshtein distance: the fewest single-character insertions,
/// deletions and substitutions that turn `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The value of property `name` in `properties`: as given, else through
/// an alias that was given (see [`alias_value`]), else its default.
/// `None` for one unset with no default.
pub(crate) fn value_of(properties: &Properties, name: &str) -> Option<String> {
    if let Some(value) = properties.get(name) {
        return Some(value.clone());
    }
    alias_value(properties, name).or_else(|| match lookup(name)? {
        Known::Broker(def) => def.default.map(str::to_string),
        Known::TopicDefault(def) => Some(def.default.to_string()),
        Known::Retired => None,
    })
}

/// The value an alias of `name` given in `properties` makes for it, in
/// `name`'s unit: the first of [`aliases_of`] that is set.
pub(crate) fn alias_value(properties: &Properties, name: &str) -> Option<String> {
    aliases_of(name).find_map(|(alias, factor)| {
        let value = properties.get(alias)?;
        if factor == 1 {
            return Some(value.clone());
        }
        // Checked to be an integer where it was set; a negative retention
        // is unlimited, as in Kafka.
        let units = value.trim().parse::<i64>().ok()?;
        Some(
            if units < 0 {
                -1
            } else {
                units.saturating_mul(factor)
            }
            .to_string(),
        )
    })
}

/// Validates a broker property set at run time that sets a topic
/// default, directly or through an alias (log.retention.hours); the
/// others are refused before this (they cannot change while the broker
/// runs), and all are checked at start-up by broker_properties.rs.
pub(crate) fn validate_broker_property(
    name: &str,
    properties: &Properties,
) -> Result<(), ConfigValueError> {
    let Some(value) = properties.get(name) else {
        return Ok(());
    };
    match lookup(name) {
        Some(Known::TopicDefault(def)) => topic_config::check_value(def, name, value),
        Some(Known::Broker(BrokerPropertyDef {
            alias: Some(_),
            kind: PropertyKind::Value(kind),
            ..
        })) => topic_config::check_kind(*kind, name, value),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_names_are_not_repeated() {
        let names: Vec<_> = BROKER_PROPERTIES.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for def in BROKER_PROPERTIES {
            assert!(
                topic_config::find_by_broker_name(def.name).is_none(),
                "{} is in both tables",
                def.name
            );
        }
    }

    #[test]
    fn every_default_is_a_valid_value_and_every_alias_names_a_property() {
        for def in BROKER_PROPERTIES {
            if let Some(default) = def.default {
                check_kind(def.kind, def.name, default).unwrap();
            }
            if let Some(alias) = def.alias {
                assert!(
                    def.default.is_none(),
                    "{}: an alias has no default",
                    def.name
                );
                assert!(lookup(alias.of).is_some(), "{} -> {}", def.name, alias.of);
            }
        }
    }

    #[test]
    fn an_unknown_property_is_refused_naming_the_nearest_known_one() {
        let err = check("log.retention.hour", "1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown broker property \"log.retention.hour\": did you mean \"log.retention.hours\"?"
        );
        for (typo, meant) in [
            ("log.retention.msec", "log.retention.ms"),
            ("num.partition", "num.partitions"),
            ("log.dirrs", "log.dirs"),
            ("brokerid", "broker.id"),
            ("log.flush.sync.mod", "log.flush.sync.mode"),
            ("log.message.format.versio", "log.message.format.version"),
        ] {
            match check(typo, "1") {
                Err(ConfigError::UnknownProperty { nearest, .. }) => {
                    assert_eq!(nearest, meant, "{typo}")
                }
                other => panic!("{typo}: {other:?}"),
            }
        }
        assert!(matches!(
            check("bogus.key", "1"),
            Err(ConfigError::UnknownProperty { .. })
        ));
    }

    #[test]
    fn tls_properties_may_be_set_per_listener_and_others_may_not() {
        assert!(check("listener.name.external.ssl.keystore.location", "/k.pem").is_ok());
        assert!(check("listener.name.external.ssl.client.auth", "required").is_ok());
        assert!(check("listener.name.external.ssl.client.auth", "maybe").is_err());
        // Read for the whole broker only: refused rather than ignored.
        assert!(matches!(
            check("listener.name.external.sasl.enabled.mechanisms", "PLAIN"),
            Err(ConfigError::UnknownProperty { .. })
        ));
    }

    #[test]
    fn known_properties_of_every_kind_pass_and_bad_values_name_the_property() {
        for (name, value) in [
            ("log.retention.ms", "1000"),
            ("log.retention.hours", "-1"),
            ("log.message.format.version", "3.0-IV1"),
            ("listeners", "PLAINTEXT://0.0.0.0:9092"),
            ("controller.quorum.voters", "1@h:1"),
            ("auto.create.topics.enable", "FALSE"),
            ("log.dir", "/a"),
        ] {
            check(name, value).unwrap();
        }
        for (name, value) in [
            ("node.id", "-1"),
            ("log.dirs", " , "),
            ("log.flush.threads", "0"),
            ("log.segment.bytes", "10"),
            ("listeners", "nowhere"),
        ] {
            let err = check(name, value).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn aliases_stand_in_finest_unit_first_and_the_property_itself_wins() {
        let mut properties = Properties::new();
        assert_eq!(
            value_of(&properties, "log.retention.ms").unwrap(),
            "604800000"
        );
        properties.insert("log.retention.hours".into(), "2".into());
        assert_eq!(
            value_of(&properties, "log.retention.ms").unwrap(),
            "7200000"
        );
        properties.insert("log.retention.minutes".into(), "3".into());
        assert_eq!(value_of(&properties, "log.retention.ms").unwrap(), "180000");
        properties.insert("log.retention.ms".into(), "5".into());
        assert_eq!(value_of(&properties, "log.retention.ms").unwrap(), "5");
        properties.insert("broker.id".into(), "7".into());
        assert_eq!(value_of(&properties, "node.id").unwrap(), "7");
        let mut unlimited = Properties::new();
        unlimited.insert("log.retention.hours".into(), "-1".into());
        assert_eq!(value_of(&unlimited, "log.retention.ms").unwrap(), "-1");
        assert_eq!(value_of(&unlimited, "advertised.listeners"), None);
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("log.dirs", "log.dirs"), 0);
    }
}
