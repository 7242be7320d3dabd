//! `rill topic reassign` and `rill topic elect-leaders`: where a topic's
//! replicas live and which of them leads, through Kafka's own
//! AlterPartitionReassignments (KIP-455) and ElectLeaders (KIP-460).

use anyhow::{Context, bail};
use clap::Args;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, ElectLeadersRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::ClientArgs;

/// Kafka's ElectLeaders error code for a partition whose preferred
/// replica leads already.
const ELECTION_NOT_NEEDED: i16 = 84;

#[derive(Debug, Args)]
pub(crate) struct ReassignArgs {
    /// The topic.
    topic: String,
    /// The partition to move.
    #[arg(long, value_name = "N")]
    partition: i32,
    /// The brokers to hold it, preferred leader first, e.g. 2,3,1.
    #[arg(long, value_name = "ID,...", value_delimiter = ',', required = true)]
    replicas: Vec<i32>,
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
    let mut connection = client.connect()?;
    let version = connection.version_for(ApiKey::AlterPartitionReassignments, 1)?;
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(i32::try_from(client.timeout_ms).unwrap_or(i32::MAX))
        .with_allow_replication_factor_change(true)
        .with_topics(vec![
            ReassignableTopic::default()
                .with_name(name(&args.topic))
                .with_partitions(vec![
                    ReassignablePartition::default()
                        .with_partition_index(args.partition)
                        .with_replicas(Some(args.replicas.iter().copied().map(BrokerId).collect())),
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
                "cannot move {}-{}: error {}{}",
                args.topic,
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
    eprintln!(
        "moving {}-{} to brokers {:?}; `rill topic describe {}` shows its replicas and ISR as it goes",
        args.topic, args.partition, args.replicas, args.topic
    );
    Ok(())
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
