//! `rill topic reassign` and `rill topic elect-leaders`: where a topic's
//! replicas live and which of them leads, through Kafka's own
//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455)
//! and ElectLeaders (KIP-460).

use anyhow::{Context, bail};
use clap::Args;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, ElectLeadersRequest,
    ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::ClientArgs;
use crate::table::{dash, join, write_table};

/// Kafka's ElectLeaders error code for a partition whose preferred
/// replica leads already.
const ELECTION_NOT_NEEDED: i16 = 84;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rill topic reassign orders --partition 0 --replicas 2,3,1\n  \
    rill topic reassign --list\n  \
    rill topic reassign orders --partition 0 --cancel")]
pub(crate) struct ReassignArgs {
    /// The topic (with --list: only its moves).
    #[arg(required_unless_present = "list")]
    topic: Option<String>,
    /// The partition to move, or whose move to cancel.
    #[arg(long, value_name = "N", required_unless_present = "list")]
    partition: Option<i32>,
    /// The brokers to hold it, preferred leader first, e.g. 2,3,1.
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        required_unless_present_any = ["list", "cancel"],
        conflicts_with_all = ["list", "cancel"]
    )]
    replicas: Vec<i32>,
    /// List the moves under way: each partition's replicas, and the ones
    /// being added and removed (ListPartitionReassignments).
    #[arg(long, conflicts_with = "cancel")]
    list: bool,
    /// Cancel the partition's move: back to the replicas it had.
    #[arg(long)]
    cancel: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ElectLeadersArgs {
    /// The topics whose partitions get their preferred leader back
    /// [default: every topic].
    topics: Vec<String>,
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

pub(crate) fn run_reassign(client: &ClientArgs, args: ReassignArgs) -> anyhow::Result<()> {
    if args.list {
        return list_moves(client, args.topic.as_deref());
    }
    let (Some(topic), Some(partition)) = (args.topic.as_deref(), args.partition) else {
        bail!("name the topic and --partition");
    };
    let replicas = (!args.cancel).then(|| args.replicas.iter().copied().map(BrokerId).collect());
    let mut connection = client.connect()?;
    let version = connection.version_for(ApiKey::AlterPartitionReassignments, 1)?;
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(i32::try_from(client.timeout_ms).unwrap_or(i32::MAX))
        .with_allow_replication_factor_change(true)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    ReassignablePartition::default()
                        .with_partition_index(partition)
                        .with_replicas(replicas),
                ]),
        ]);
    let response = connection
        .call(version, &request)
        .context("cannot ask for the reassignment")?;
    if response.error_code != 0 {
        bail!(
            "reassignment refused: error {}{}",
            response.error_code,
            response
                .error_message
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
    }
    for partition in response.responses.iter().flat_map(|t| &t.partitions) {
        if partition.error_code != 0 {
            bail!(
                "cannot {} {topic}-{}: error {}{}",
                if args.cancel {
                    "cancel the move of"
                } else {
                    "move"
                },
                partition.partition_index,
                partition.error_code,
                partition
                    .error_message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
    }
    if args.cancel {
        eprintln!("cancelled the move of {topic}-{partition}: back to the replicas it had");
    } else {
        eprintln!(
            "moving {topic}-{partition} to brokers {:?}; `rill topic reassign --list` and \
             `rill topic describe {topic}` show it as it goes",
            args.replicas
        );
    }
    Ok(())
}

/// `--list`: the moves under way (of `topic`, or all), a line each.
fn list_moves(client: &ClientArgs, topic: Option<&str>) -> anyhow::Result<()> {
    let mut connection = client.connect()?;
    let version = connection.version_for(ApiKey::ListPartitionReassignments, 0)?;
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(i32::try_from(client.timeout_ms).unwrap_or(i32::MAX));
    let response = connection
        .call(version, &request)
        .context("cannot list the reassignments")?;
    if response.error_code != 0 {
        bail!(
            "cannot list the reassignments: error {}{}",
            response.error_code,
            response
                .error_message
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
    }
    let ids = |brokers: &[BrokerId]| dash(&join(&brokers.iter().map(|b| b.0).collect::<Vec<_>>()));
    let mut rows = Vec::new();
    for moving in &response.topics {
        if topic.is_some_and(|t| t != moving.name.as_str()) {
            continue;
        }
        for partition in &moving.partitions {
            rows.push(vec![
                format!("{}-{}", moving.name.as_str(), partition.partition_index),
                ids(&partition.replicas),
                ids(&partition.adding_replicas),
                ids(&partition.removing_replicas),
            ]);
        }
    }
    if rows.is_empty() {
        eprintln!("no partition is being moved");
        return Ok(());
    }
    let header = ["PARTITION", "REPLICAS", "ADDING", "REMOVING"];
    write_table(&mut std::io::stdout().lock(), &header, &rows).context("cannot write the list")
}

pub(crate) fn run_elect_leaders(client: &ClientArgs, args: ElectLeadersArgs) -> anyhow::Result<()> {
    let mut connection = client.connect()?;
    let version = connection.version_for(ApiKey::ElectLeaders, 2)?;
    let topics = if args.topics.is_empty() {
        None
    } else {
        // The partitions of each topic come from its metadata.
        let metadata = crate::cluster_status::metadata(&mut connection)?;
        let mut wanted = Vec::new();
        for topic in &args.topics {
            let Some(found) = metadata
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
            else {
                bail!("topic {topic:?} does not exist");
            };
            wanted.push(
                TopicPartitions::default()
                    .with_topic(name(topic))
                    .with_partitions(found.partitions.iter().map(|p| p.partition_index).collect()),
            );
        }
        Some(wanted)
    };
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(topics)
        .with_timeout_ms(i32::try_from(client.timeout_ms).unwrap_or(i32::MAX));
    let response = connection
        .call(version, &request)
        .context("cannot ask for the election")?;
    let (mut elected, mut unchanged, mut failed) = (0, 0, Vec::new());
    for topic in &response.replica_election_results {
        for partition in &topic.partition_result {
            match partition.error_code {
                0 => elected += 1,
                ELECTION_NOT_NEEDED => unchanged += 1,
                code => failed.push(format!(
                    "{}-{}: error {code}{}",
                    topic.topic.as_str(),
                    partition.partition_id,
                    partition
                        .error_message
                        .as_ref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                )),
            }
        }
    }
    eprintln!("{elected} partitions got their preferred leader back; {unchanged} had it already");
    if !failed.is_empty() {
        bail!("{} could not: {}", failed.len(), failed.join("; "));
    }
    Ok(())
}
