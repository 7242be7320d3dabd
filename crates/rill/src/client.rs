//! What every client command (`topic`, `produce`, `consume`, `group`)
//! shares: where the broker is, how long to wait for it, and the librdkafka
//! configuration built from those.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

/// The longest a command waits for its first TCP connection.
const REACH_TIMEOUT_MAX: Duration = Duration::from_secs(5);

/// Connection flags of the client commands.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// Broker to connect to first (bootstrap.servers); a comma-separated
    /// list works too.
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub(crate) bootstrap: String,
    /// How long to wait for the broker: the first connection (at most 5 s;
    /// a refused one fails the command at once, saying so), metadata and
    /// admin requests, each message's delivery, and, for `consume` without
    /// --follow, progress towards the end of the topic.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true
    )]
    pub(crate) timeout_ms: u64,
    /// Any librdkafka property, applied last (repeatable), e.g.
    /// -X client.id=me or -X broker.address.family=any. (The commands that
    /// speak to the broker without librdkafka — `topic alter --config`,
    /// `cluster status`, `user`, `acl` — read security.protocol, ssl.ca.location
    /// and sasl.* of them.)
    #[arg(
        short = 'X',
        long = "property",
        value_name = "KEY=VALUE",
        global = true
    )]
    pub(crate) properties: Vec<String>,
    /// A client properties file, as Kafka's tools take (security.protocol,
    /// sasl.*, ssl.*; `sasl.jaas.config` and a PEM `ssl.truststore.location`
    /// are read as the Java client means them), applied before -X.
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) command_config: Option<std::path::PathBuf>,
}

impl ClientArgs {
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The librdkafka configuration for the bootstrap address, with the
    /// `-X` properties applied over `defaults`.
    ///
    /// IPv4 is the default address family: a broker bound to 127.0.0.1 is
    /// otherwise first tried on ::1 when the bootstrap name is `localhost`.
    pub(crate) fn config(&self, defaults: &[(&str, &str)]) -> anyhow::Result<ClientConfig> {
        self.ensure_reachable()?;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("broker.address.family", "v4")
            .set("client.id", "rill");
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in self.key_values()? {
            config.set(key, value);
        }
        Ok(config)
    }

    /// Fails at once, saying why, when no bootstrap broker takes a TCP
    /// connection within `--timeout-ms` (at most [`REACH_TIMEOUT_MAX`]):
    /// librdkafka would retry silently for the whole timeout.
    fn ensure_reachable(&self) -> anyhow::Result<()> {
        let limit = self.timeout().min(REACH_TIMEOUT_MAX);
        let mut failures = Vec::new();
        for server in self
            .bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let addresses: Vec<SocketAddr> = match server.to_socket_addrs() {
                Ok(addresses) => addresses.collect(),
                Err(error) => {
                    failures.push(format!("{server}: {error}"));
                    continue;
                }
            };
            for address in addresses {
                match TcpStream::connect_timeout(&address, limit) {
                    Ok(_) => return Ok(()),
                    Err(error) => failures.push(format!(
                        "{address}: {}",
                        match error.kind() {
                            ErrorKind::ConnectionRefused => "connection refused".to_string(),
                            ErrorKind::TimedOut => format!("no answer within {limit:?}"),
                            _ => error.to_string(),
                        }
                    )),
                }
            }
        }
        if failures.is_empty() {
            bail!("--bootstrap {:?} names no broker", self.bootstrap);
        }
        bail!("cannot reach {}", failures.join("; "))
    }

    /// The --command-config properties, then the `-X` ones, in order.
    pub(crate) fn key_values(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = match &self.command_config {
            Some(path) => crate::command_config::read(path)?,
            None => Vec::new(),
        };
        for property in &self.properties {
            let (key, value) = key_value("-X", property)?;
            out.push((key.to_string(), value.to_string()));
        }
        Ok(out)
    }

    /// A connection of Rill's own protocol client to the bootstrap
    /// broker, secured as the properties say (TLS, SASL).
    pub(crate) fn connect(&self) -> anyhow::Result<crate::connection::Connection> {
        let security = crate::link::security_of(&self.key_values()?)?;
        crate::connection::Connection::open_secured(&self.bootstrap, self.timeout(), &security)
    }

    /// A connection of Rill's own protocol client to `address`, secured as
    /// the properties say.
    pub(crate) fn connect_to(
        &self,
        address: &str,
    ) -> anyhow::Result<crate::connection::Connection> {
        let security = crate::link::security_of(&self.key_values()?)?;
        crate::connection::Connection::open_secured(address, self.timeout(), &security)
    }

    /// A connection to the coordinator of `key` (FindCoordinator's
    /// `key_type`: 0 a group, 1 a transactional id), asking until one is
    /// found within --timeout-ms.
    pub(crate) fn coordinator(
        &self,
        key_type: i8,
        key: &str,
    ) -> anyhow::Result<crate::connection::Connection> {
        use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest};
        use kafka_protocol::protocol::StrBytes;
        let mut bootstrap = self.connect()?;
        let version = bootstrap.version_for(ApiKey::FindCoordinator, 4)?;
        if version < 4 {
            bail!(
                "the broker at {} answers FindCoordinator v{version}; this command needs v4",
                bootstrap.address
            );
        }
        let deadline = std::time::Instant::now() + self.timeout();
        loop {
            let request = FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_coordinator_keys(vec![StrBytes::from_string(key.to_owned())]);
            let response = bootstrap.call(version, &request)?;
            let found = response
                .coordinators
                .first()
                .context("an empty FindCoordinator response")?;
            if found.error_code == 0 {
                return self.connect_to(&format!("{}:{}", found.host, found.port));
            }
            // COORDINATOR_NOT_AVAILABLE while the topic is made or loaded.
            if found.error_code != 15 || std::time::Instant::now() >= deadline {
                bail!(
                    "cannot find the coordinator of {key:?}: {}",
                    crate::connection::error_name(found.error_code)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Admin request options bounded by --timeout-ms.
    pub(crate) fn admin_options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.timeout()))
            .operation_timeout(Some(self.timeout()))
    }
}

/// Runs `future` to completion on a single-threaded runtime. rdkafka's admin
/// futures are completed by rdkafka's own thread; any executor will do.
pub(crate) fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime for the admin client")?;
    Ok(runtime.block_on(future))
}

/// Splits `KEY=VALUE`; `flag` names the flag in the error.
pub(crate) fn key_value<'a>(flag: &str, assignment: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    let (key, value) = assignment
        .split_once('=')
        .with_context(|| format!("{flag} {assignment:?}: expected KEY=VALUE"))?;
    anyhow::ensure!(
        !key.trim().is_empty(),
        "{flag} {assignment:?}: the key is empty"
    );
    Ok((key.trim(), value.trim()))
}

/// The rdkafka context of the admin client and the consumer: rdkafka's
/// default, with `report_error` in place of its error logging.
pub(crate) struct CliContext;

impl ClientContext for CliContext {
    fn error(&self, error: KafkaError, reason: &str) {
        report_error(&error, reason);
    }
}

impl ConsumerContext for CliContext {}

/// Logs an error event of librdkafka, except those that are no news:
/// reaching the end of a partition (consume polls those itself; the ones
/// still queued when it stops early arrive here), and broken connections,
/// which librdkafka has logged already (its "FAIL" line) and retries.
pub(crate) fn report_error(error: &KafkaError, reason: &str) {
    let code = match error {
        KafkaError::PartitionEOF(_) => return,
        KafkaError::Global(code) => *code,
        _ => RDKafkaErrorCode::NoError,
    };
    match code {
        RDKafkaErrorCode::PartitionEOF => {}
        RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown => {
            tracing::debug!("librdkafka: {error}: {reason}");
        }
        _ => tracing::error!("librdkafka: {error}: {reason}"),
    }
}

/// The offset of the first message at or after `epoch_ms` in each of the
/// topic's `partitions`; `None` where there is none (ListOffsets by time).
pub(crate) fn offsets_for_time(
    consumer: &BaseConsumer<CliContext>,
    client: &ClientArgs,
    topic: &str,
    partitions: &[i32],
    epoch_ms: i64,
) -> anyhow::Result<BTreeMap<i32, Option<i64>>> {
    let mut query = TopicPartitionList::new();
    for &partition in partitions {
        query.add_partition_offset(topic, partition, Offset::Offset(epoch_ms))?;
    }
    let found = consumer
        .offsets_for_times(query, client.timeout())
        .with_context(|| format!("cannot look up offsets of {topic} by time"))?;
    let mut offsets = BTreeMap::new();
    for element in found.elements() {
        if let Err(error) = element.error() {
            anyhow::bail!(
                "cannot look up the offset by time of {topic}-{}: {error}",
                element.partition()
            );
        }
        let offset = match element.offset() {
            Offset::Offset(offset) if offset >= 0 => Some(offset),
            _ => None,
        };
        offsets.insert(element.partition(), offset);
    }
    Ok(offsets)
}

/// The topic's partitions, sorted, or only `wanted` after checking it exists.
pub(crate) fn topic_partitions(
    consumer: &BaseConsumer<CliContext>,
    client: &ClientArgs,
    topic: &str,
    wanted: Option<i32>,
) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), client.timeout())
        .with_context(|| format!("cannot fetch metadata from {}", client.bootstrap))?;
    let Some(topic_metadata) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("topic {topic:?} does not exist");
    };
    if let Some(error) = topic_metadata.error() {
        match RDKafkaErrorCode::from(error) {
            RDKafkaErrorCode::UnknownTopicOrPartition => bail!("topic {topic:?} does not exist"),
            code => bail!("cannot read topic {topic:?}: {code}"),
        }
    }
    let mut partitions: Vec<i32> = topic_metadata.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    match wanted {
        None => Ok(partitions),
        Some(wanted) if partitions.contains(&wanted) => Ok(vec![wanted]),
        Some(wanted) => bail!(
            "topic {topic:?} has no partition {wanted}; it has {} partitions",
            partitions.len()
        ),
    }
}
