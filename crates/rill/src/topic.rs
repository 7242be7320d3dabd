//! `rill topic`: create, list, describe, alter and delete topics through
//! rdkafka's admin client; config changes go through IncrementalAlterConfigs
//! (see `alter_configs`). Results go to stdout, confirmations to stderr.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use rdkafka::admin::{
    AdminClient, ConfigResource, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::metadata::{Metadata, MetadataTopic};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

use crate::alter_configs::{self, ConfigChange};
use crate::client::{CliContext, ClientArgs, block_on, key_value};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rill topic create events --partitions 3 --config retention.ms=86400000\n  \
    rill topic list\n  \
    rill topic describe events\n  \
    rill topic alter events --partitions 6 --config cleanup.policy=compact\n  \
    rill topic delete events\n  \
    rill topic reassign events --partition 0 --replicas 2,3\n  \
    rill topic elect-leaders events")]
pub(crate) struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topic names, one per line.
    List,
    /// Show partitions (leader, replicas, in-sync replicas, offline and
    /// under-replicated marks) and configs.
    Describe(DescribeArgs),
    /// Add partitions or change configs of a topic.
    Alter(AlterArgs),
    /// Move a partition's replicas to other brokers (a cluster).
    Reassign(crate::reassign::ReassignArgs),
    /// Give partitions their preferred (first) replica back as leader.
    ElectLeaders(crate::reassign::ElectLeadersArgs),
    /// Delete topics and all their data.
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rill topic create events\n  \
    rill topic create events --partitions 3 --replication-factor 1\n  \
    rill topic create audit --config retention.ms=-1 --config cleanup.policy=compact --if-not-exists")]
struct CreateArgs {
    /// The topic's name.
    topic: String,
    /// Number of partitions [default: the broker's num.partitions].
    #[arg(long, value_name = "N")]
    partitions: Option<u16>,
    /// Copies of each partition [default: the broker's
    /// default.replication.factor].
    #[arg(long, value_name = "N")]
    replication_factor: Option<u16>,
    /// A topic config by Kafka's name, e.g. retention.ms=3600000 (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
    /// Succeed without change when the topic exists already.
    #[arg(long)]
    if_not_exists: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rill topic describe                 # every topic\n  \
    rill topic describe events\n  \
    rill topic describe events --all-configs --json\n\n\
    Text output, as kafka-topics prints it:\n  \
    Topic: events<TAB>PartitionCount: 3<TAB>ReplicationFactor: 3<TAB>Configs: retention.ms=60000\n  \
    <TAB>Topic: events<TAB>Partition: 0<TAB>Leader: 1<TAB>Replicas: 1,2,3<TAB>Isr: 1,2,3<TAB>Size: 10485760\n  \
    <TAB>Topic: events<TAB>Partition: 1<TAB>Leader: 2<TAB>Replicas: 2,3,1<TAB>Isr: 2,1<TAB>Size: 10483712<TAB>under-replicated\n  \
    <TAB>Topic: events<TAB>Partition: 2<TAB>Leader: -1<TAB>Replicas: 3,1,2<TAB>Isr: 3<TAB>Size: -<TAB>offline<TAB>under-replicated\n\n\
    A partition is offline when it has no leader (-1), under-replicated when\n\
    its ISR is smaller than its replica list; healthy partitions carry no mark.\n\
    Size is the bytes of the partition's log on its leader (DescribeLogDirs),\n\
    - when the leader cannot be asked.\n\n\
    --json prints one object per topic and line:\n  \
    {\"topic\":\"events\",\"partitions\":[{\"partition\":0,\"leader\":1,\"replicas\":[1],\"isr\":[1],\n   \"offline\":false,\"under_replicated\":false,\"size_bytes\":10485760}],\n   \
    \"configs\":[{\"name\":\"retention.ms\",\"value\":\"60000\",\"source\":\"DYNAMIC_TOPIC_CONFIG\"}]}")]
struct DescribeArgs {
    /// The topic [default: every topic].
    topic: Option<String>,
    /// Show every config with its source, not only the topic's overrides.
    #[arg(long)]
    all_configs: bool,
    /// One JSON object per topic instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("change").required(true).multiple(true)
        .args(["partitions", "configs", "delete_configs"])),
    after_help = "Examples:\n  \
    rill topic alter events --partitions 6\n  \
    rill topic alter events --config retention.ms=3600000 --config max.message.bytes=2097152\n  \
    rill topic alter events --delete-config retention.ms\n\n\
    Config changes are incremental (Kafka's IncrementalAlterConfigs): configs\n\
    not named keep their values. Partitions can only be added.")]
struct AlterArgs {
    /// The topic's name.
    topic: String,
    /// The new, larger, number of partitions.
    #[arg(long, value_name = "N")]
    partitions: Option<u16>,
    /// Set a topic config, e.g. retention.ms=3600000 (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
    /// Remove a topic config so the broker's default applies (repeatable).
    #[arg(long = "delete-config", value_name = "KEY")]
    delete_configs: Vec<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  rill topic delete events\n  rill topic delete events audit")]
struct DeleteArgs {
    /// The topics to delete.
    #[arg(required = true)]
    topics: Vec<String>,
}

type Admin = AdminClient<CliContext>;

pub(crate) fn run(args: TopicArgs) -> anyhow::Result<()> {
    let client = &args.client;
    // A metadata request for a missing topic must not create it.
    let admin = || -> anyhow::Result<Admin> {
        client
            .config(&[("allow.auto.create.topics", "false")])?
            .create_with_context(CliContext)
            .context("cannot create the admin client")
    };
    match args.command {
        TopicCommand::Create(create) => run_create(&admin()?, client, create),
        TopicCommand::List => run_list(&admin()?, client),
        TopicCommand::Describe(describe) => run_describe(&admin()?, client, describe),
        TopicCommand::Alter(alter) => run_alter(&admin()?, client, alter),
        TopicCommand::Delete(delete) => run_delete(&admin()?, client, delete),
        TopicCommand::Reassign(reassign) => crate::reassign::run_reassign(client, reassign),
        TopicCommand::ElectLeaders(elect) => crate::reassign::run_elect_leaders(client, elect),
    }
}

fn run_create(admin: &Admin, client: &ClientArgs, args: CreateArgs) -> anyhow::Result<()> {
    // -1 asks the broker for its default (KIP-464).
    let partitions = args.partitions.map_or(-1, i32::from);
    let replication = args.replication_factor.map_or(-1, i32::from);
    let mut topic = NewTopic::new(
        &args.topic,
        partitions,
        TopicReplication::Fixed(replication),
    );
    for assignment in &args.configs {
        let (key, value) = key_value("--config", assignment)?;
        topic = topic.set(key, value);
    }
    let results = block_on(admin.create_topics([&topic], &client.admin_options()))?
        .with_context(|| format!("cannot create topic {:?}", args.topic))?;
    for result in results {
        match result {
            Ok(name) => eprintln!("created topic {name}"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) if args.if_not_exists => {
                eprintln!("topic {name} exists already");
            }
            Err((name, code)) => bail!("cannot create topic {name:?}: {code}"),
        }
    }
    Ok(())
}

fn run_list(admin: &Admin, client: &ClientArgs) -> anyhow::Result<()> {
    let metadata = admin
        .inner()
        .fetch_metadata(None, client.timeout())
        .with_context(|| format!("cannot fetch metadata from {}", client.bootstrap))?;
    let mut names: Vec<&str> = metadata.topics().iter().map(MetadataTopic::name).collect();
    names.sort_unstable();
    let mut out = std::io::stdout().lock();
    for name in names {
        writeln!(out, "{name}")?;
    }
    out.flush()?;
    Ok(())
}

/// A topic as `describe --json` prints it.
#[derive(Debug, Serialize)]
struct TopicDescription {
    topic: String,
    partitions: Vec<PartitionDescription>,
    configs: Vec<ConfigDescription>,
}

#[derive(Debug, Serialize)]
struct PartitionDescription {
    partition: i32,
    /// -1 when the partition has no leader.
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// No leader: nothing can be produced to or fetched from it.
    offline: bool,
    /// Fewer in-sync replicas than replicas.
    under_replicated: bool,
    /// Bytes of the partition's log on its leader (DescribeLogDirs);
    /// `None` when the leader could not be asked.
    size_bytes: Option<i64>,
}

impl PartitionDescription {
    fn new(partition: i32, leader: i32, replicas: Vec<i32>, isr: Vec<i32>) -> Self {
        PartitionDescription {
            partition,
            leader,
            offline: leader < 0,
            under_replicated: isr.len() < replicas.len(),
            replicas,
            isr,
            size_bytes: None,
        }
    }
}

#[derive(Debug, Serialize)]
struct ConfigDescription {
    name: String,
    value: Option<String>,
    /// Kafka's name of where the value comes from, e.g. DYNAMIC_TOPIC_CONFIG.
    source: &'static str,
}

fn run_describe(admin: &Admin, client: &ClientArgs, args: DescribeArgs) -> anyhow::Result<()> {
    let metadata = admin
        .inner()
        .fetch_metadata(args.topic.as_deref(), client.timeout())
        .with_context(|| format!("cannot fetch metadata from {}", client.bootstrap))?;
    let mut topics = described_topics(&metadata, args.topic.as_deref())?;
    topics.sort_by(|a, b| a.topic.cmp(&b.topic));
    fill_sizes(client, &metadata, &mut topics)?;
    if !topics.is_empty() {
        let resources: Vec<ResourceSpecifier<'_>> = topics
            .iter()
            .map(|t| ResourceSpecifier::Topic(&t.topic))
            .collect();
        let configs = block_on(admin.describe_configs(&resources, &client.admin_options()))?
            .context("cannot describe topic configs")?;
        for (topic, result) in topics.iter_mut().zip(configs) {
            let resource = result.map_err(|code| {
                anyhow::anyhow!(
                    "cannot describe the configs of topic {:?}: {code}",
                    topic.topic
                )
            })?;
            topic.configs = config_descriptions(resource, args.all_configs);
        }
    }
    let mut out = std::io::stdout().lock();
    for topic in &topics {
        if args.json {
            serde_json::to_writer(&mut out, topic)?;
            writeln!(out)?;
        } else {
            write_text(&mut out, topic)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Sets each partition's size as its leader's DescribeLogDirs says,
/// asking each leader once; a leader that cannot be reached or asked
/// leaves its partitions' sizes unknown.
fn fill_sizes(
    client: &ClientArgs,
    metadata: &Metadata,
    topics: &mut [TopicDescription],
) -> anyhow::Result<()> {
    let security = crate::link::security_of(&client.key_values()?)?;
    let mut leaders: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    for topic in topics.iter() {
        for p in topic.partitions.iter().filter(|p| p.leader >= 0) {
            leaders
                .entry(p.leader)
                .or_default()
                .push((topic.topic.clone(), p.partition));
        }
    }
    let mut sizes: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (leader, partitions) in leaders {
        let Some(broker) = metadata.brokers().iter().find(|b| b.id() == leader) else {
            continue;
        };
        let address = format!("{}:{}", broker.host(), broker.port());
        let Ok(found) = leader_sizes(&address, client, &security, &partitions) else {
            continue;
        };
        sizes.extend(found);
    }
    for topic in topics.iter_mut() {
        for p in &mut topic.partitions {
            p.size_bytes = sizes.get(&(topic.topic.clone(), p.partition)).copied();
        }
    }
    Ok(())
}

/// The sizes of `partitions` in the log dirs of the broker at `address`.
fn leader_sizes(
    address: &str,
    client: &ClientArgs,
    security: &crate::link::Security,
    partitions: &[(String, i32)],
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use kafka_protocol::messages::{ApiKey, DescribeLogDirsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    // Sizes are extra: a leader that does not answer soon costs at most
    // a few seconds, not the whole --timeout-ms.
    let timeout = client.timeout().min(std::time::Duration::from_secs(5));
    let mut connection = crate::connection::Connection::open_secured(address, timeout, security)?;
    let version = connection.version_for(ApiKey::DescribeLogDirs, 4)?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    let request = DescribeLogDirsRequest::default().with_topics(Some(
        by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                DescribableLogDirTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(partitions)
            })
            .collect(),
    ));
    let response = connection.call(version, &request)?;
    let mut sizes = BTreeMap::new();
    for dir in response.results.iter().filter(|d| d.error_code == 0) {
        for topic in &dir.topics {
            for p in &topic.partitions {
                sizes.insert(
                    (topic.name.to_string(), p.partition_index),
                    p.partition_size,
                );
            }
        }
    }
    Ok(sizes)
}

/// The partitions of each topic in `metadata`; an error when `wanted` was
/// named and the broker does not know it.
fn described_topics(
    metadata: &Metadata,
    wanted: Option<&str>,
) -> anyhow::Result<Vec<TopicDescription>> {
    let mut topics = Vec::new();
    for topic in metadata.topics() {
        if let Some(error) = topic.error() {
            match RDKafkaErrorCode::from(error) {
                RDKafkaErrorCode::UnknownTopicOrPartition => {
                    bail!("topic {:?} does not exist", topic.name())
                }
                code => bail!("cannot describe topic {:?}: {code}", topic.name()),
            }
        }
        let mut partitions: Vec<PartitionDescription> = topic
            .partitions()
            .iter()
            .map(|p| {
                PartitionDescription::new(
                    p.id(),
                    p.leader(),
                    p.replicas().to_vec(),
                    p.isr().to_vec(),
                )
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        topics.push(TopicDescription {
            topic: topic.name().to_string(),
            partitions,
            configs: Vec::new(),
        });
    }
    if let Some(wanted) = wanted {
        if !topics.iter().any(|t| t.topic == wanted) {
            bail!("topic {wanted:?} does not exist");
        }
    }
    Ok(topics)
}

/// The topic's own overrides, or with `all` every config; sorted by name.
fn config_descriptions(resource: ConfigResource, all: bool) -> Vec<ConfigDescription> {
    let mut configs: Vec<ConfigDescription> = resource
        .entries
        .into_iter()
        .filter(|entry| all || entry.source == ConfigSource::DynamicTopic)
        .map(|entry| ConfigDescription {
            source: source_name(&entry.source),
            name: entry.name,
            value: if entry.is_sensitive {
                None
            } else {
                entry.value
            },
        })
        .collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    configs
}

fn source_name(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::Unknown => "UNKNOWN",
        ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
        ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
        ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
        ConfigSource::Default => "DEFAULT_CONFIG",
    }
}

/// kafka-topics' layout: a line for the topic, a tab-indented line per
/// partition, which ends in its marks (`offline`, `under-replicated`) if
/// it has any.
fn write_text(out: &mut impl Write, topic: &TopicDescription) -> std::io::Result<()> {
    let replication_factor = topic.partitions.first().map_or(0, |p| p.replicas.len());
    let configs: Vec<String> = topic
        .configs
        .iter()
        .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("")))
        .collect();
    writeln!(
        out,
        "Topic: {}\tPartitionCount: {}\tReplicationFactor: {replication_factor}\tConfigs: {}",
        topic.topic,
        topic.partitions.len(),
        configs.join(",")
    )?;
    for p in &topic.partitions {
        write!(
            out,
            "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\tSize: {}",
            topic.topic,
            p.partition,
            p.leader,
            join(&p.replicas),
            join(&p.isr),
            p.size_bytes
                .map_or_else(|| "-".to_string(), |size| size.to_string())
        )?;
        if p.offline {
            write!(out, "\toffline")?;
        }
        if p.under_replicated {
            write!(out, "\tunder-replicated")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn join(ids: &[i32]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn run_alter(admin: &Admin, client: &ClientArgs, args: AlterArgs) -> anyhow::Result<()> {
    let mut changes = Vec::new();
    for assignment in &args.configs {
        let (name, value) = key_value("--config", assignment)?;
        changes.push(ConfigChange::Set {
            name: name.to_string(),
            value: value.to_string(),
        });
    }
    for name in &args.delete_configs {
        changes.push(ConfigChange::Delete {
            name: name.trim().to_string(),
        });
    }
    if !changes.is_empty() {
        alter_configs::alter_topic(client, &args.topic, &changes)?;
        for change in &changes {
            match change {
                ConfigChange::Set { name, value } => {
                    eprintln!("topic {}: set {name}={value}", args.topic);
                }
                ConfigChange::Delete { name } => {
                    eprintln!("topic {}: deleted {name}", args.topic);
                }
            }
        }
    }
    if let Some(partitions) = args.partitions {
        let new = NewPartitions::new(&args.topic, usize::from(partitions));
        let results = block_on(admin.create_partitions([&new], &client.admin_options()))?
            .with_context(|| format!("cannot add partitions to topic {:?}", args.topic))?;
        for result in results {
            match result {
                Ok(name) => eprintln!("topic {name} now has {partitions} partitions"),
                Err((name, code)) => {
                    bail!("cannot grow topic {name:?} to {partitions} partitions: {code}")
                }
            }
        }
    }
    Ok(())
}

fn run_delete(admin: &Admin, client: &ClientArgs, args: DeleteArgs) -> anyhow::Result<()> {
    let names: Vec<&str> = args.topics.iter().map(String::as_str).collect();
    let results = block_on(admin.delete_topics(&names, &client.admin_options()))?
        .context("cannot delete topics")?;
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(name) => eprintln!("deleted topic {name}"),
            Err((name, code)) => failures.push(format!("{name:?}: {code}")),
        }
    }
    if !failures.is_empty() {
        bail!("cannot delete topic {}", failures.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn partitions_without_a_leader_or_with_a_short_isr_are_marked() {
        let mut sized = PartitionDescription::new(0, 1, vec![1, 2, 3], vec![1, 2, 3]);
        sized.size_bytes = Some(4096);
        let topic = TopicDescription {
            topic: "events".into(),
            partitions: vec![
                sized,
                PartitionDescription::new(1, 2, vec![2, 3, 1], vec![2, 1]),
                PartitionDescription::new(2, -1, vec![3, 1, 2], vec![3]),
                PartitionDescription::new(3, -1, vec![1], vec![1]),
            ],
            configs: Vec::new(),
        };
        let mut text = Vec::new();
        write_text(&mut text, &topic).unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "Topic: events\tPartitionCount: 4\tReplicationFactor: 3\tConfigs: ",
                "\tTopic: events\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,2,3\tSize: 4096",
                "\tTopic: events\tPartition: 1\tLeader: 2\tReplicas: 2,3,1\tIsr: 2,1\tSize: -\tunder-replicated",
                "\tTopic: events\tPartition: 2\tLeader: -1\tReplicas: 3,1,2\tIsr: 3\tSize: -\toffline\tunder-replicated",
                "\tTopic: events\tPartition: 3\tLeader: -1\tReplicas: 1\tIsr: 1\tSize: -\toffline",
            ]
        );
        let json = serde_json::to_value(&topic.partitions[2]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"partition": 2, "leader": -1, "replicas": [3, 1, 2], "isr": [3],
                "offline": true, "under_replicated": true, "size_bytes": null})
        );
    }
}
