//! `rill cluster quorum`: the metadata quorum as its leader sees it —
//! leader, term, high watermark, and each voter's and observer's log end
//! and lag — through DescribeQuorum (KIP-595), as
//! `kafka-metadata-quorum describe --status --replication` shows it.

use std::io::Write;

use anyhow::{Context, bail};
use clap::Args;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::ReplicaState;
use kafka_protocol::messages::{ApiKey, DescribeQuorumRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::ClientArgs;
use crate::connection::error_name;
use crate::table::write_table;

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    rill cluster quorum --bootstrap 127.0.0.1:9092\n\n  \
    Leader: 1 (epoch 3)\n  \
    High watermark: 57\n  \
    ID  ADDRESS          LOG END  LAG  ROLE\n  \
    1   127.0.0.1:9093   57       0    leader\n  \
    2   127.0.0.1:9193   57       0    voter\n  \
    3   127.0.0.1:9293   55       2    voter\n\n\
    LAG is the high watermark past a member's log end as the leader knows\n\
    it; a member that has not answered the leader yet shows \"-\".")]
pub(crate) struct QuorumArgs {
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) fn run(args: QuorumArgs) -> anyhow::Result<()> {
    let mut connection = args.client.connect()?;
    let version = connection.version_for(ApiKey::DescribeQuorum, 2)?;
    let request = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    let response = connection.call(version, &request)?;
    if response.error_code != 0 {
        bail!(
            "DescribeQuorum refused: {}",
            error_name(response.error_code)
        );
    }
    let partition = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .context("an empty DescribeQuorum response")?;
    if partition.error_code != 0 {
        bail!(
            "DescribeQuorum refused: {}",
            error_name(partition.error_code)
        );
    }
    let address = |id: i32| {
        response
            .nodes
            .iter()
            .find(|n| n.node_id.0 == id)
            .and_then(|n| n.listeners.first())
            .map_or_else(|| "-".to_string(), |l| format!("{}:{}", l.host, l.port))
    };
    let high_watermark = partition.high_watermark;
    let row = |replica: &ReplicaState, role: &str| {
        let id = replica.replica_id.0;
        let (log_end, lag) = if replica.log_end_offset < 0 {
            ("-".to_string(), "-".to_string())
        } else {
            (
                replica.log_end_offset.to_string(),
                (high_watermark - replica.log_end_offset).max(0).to_string(),
            )
        };
        let role = if id == partition.leader_id.0 {
            "leader"
        } else {
            role
        };
        vec![id.to_string(), address(id), log_end, lag, role.to_string()]
    };
    let rows: Vec<Vec<String>> = partition
        .current_voters
        .iter()
        .map(|v| row(v, "voter"))
        .chain(partition.observers.iter().map(|o| row(o, "observer")))
        .collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Leader: {} (epoch {})\nHigh watermark: {high_watermark}",
        partition.leader_id.0, partition.leader_epoch
    )
    .and_then(|()| {
        write_table(
            &mut out,
            &["ID", "ADDRESS", "LOG END", "LAG", "ROLE"],
            &rows,
        )
    })
    .context("cannot write the quorum")
}
