//! `rill cluster status`: the cluster's brokers and whether each is alive,
//! its controller, and its under-replicated and offline partitions, as one
//! broker of --bootstrap sees them, over one connection: DescribeCluster
//! (v2 with include_fenced_brokers, KIP-1073, lists fenced brokers too)
//! and Metadata, encoded with `kafka-protocol` (`connection`).

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::{bail, ensure};
use clap::Args;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
};
use serde::Serialize;

use crate::client::ClientArgs;
use crate::connection::Connection;
use crate::table::{dash, join, write_table};

/// The newest DescribeCluster version this client speaks; v2 is the first
/// whose answer can list fenced brokers.
const DESCRIBE_CLUSTER_VERSION_MAX: i16 = 2;
/// The Metadata version asked for at most: v12 has everything shown here
/// (v13 only adds a top-level error code).
const METADATA_VERSION_MAX: i16 = 12;
/// The oldest Metadata version that asks for every topic with a null list
/// and answers the controller id.
const METADATA_VERSION_MIN: i16 = 1;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rill cluster status\n  \
    rill cluster status --bootstrap 127.0.0.1:9092,127.0.0.1:9192 --json\n\n\
    Text output:\n  \
    Cluster: 7Hk2vYVJQ8m0a1b2c3d4eA\n  \
    Controller: 1\n  \
    Brokers: 3 (2 alive, 1 fenced)\n  \
    ID  HOST       PORT  RACK  STATUS\n  \
    1   127.0.0.1  9092  -     alive\n  \
    2   127.0.0.1  9192  -     alive\n  \
    3   127.0.0.1  9292  -     fenced\n\n  \
    Partitions: 53 (1 under-replicated, 0 offline)\n\n  \
    Under-replicated partitions:\n  \
    TOPIC   PARTITION  LEADER  REPLICAS  ISR\n  \
    events  0          1       1,2,3     1,2\n\n\
    A broker is alive when registered and not fenced, fenced when the\n\
    controller stopped hearing from it; \"unknown\" marks a broker that\n\
    partitions name as a replica but the cluster does not list. A broker\n\
    older than DescribeCluster v2 lists only live brokers, so whether others\n\
    are fenced is unknown. A partition is offline without a leader,\n\
    under-replicated when its ISR is smaller than its replica list (it can be\n\
    both). Without a controller or leader the text says \"none\", --json -1.\n\n\
    --json prints one object:\n  \
    {\"cluster_id\":..,\"controller\":1,\"describe_cluster_version\":2,\"fenced_brokers_known\":true,\n   \
    \"brokers\":[{\"id\":1,\"host\":\"127.0.0.1\",\"port\":9092,\"rack\":null,\"status\":\"alive\"}],\n   \
    \"partitions\":53,\"under_replicated\":[{\"topic\":\"events\",\"partition\":0,\"leader\":1,\n   \
    \"replicas\":[1,2,3],\"isr\":[1,2]}],\"offline\":[]}")]
pub(crate) struct StatusArgs {
    /// One JSON object instead of tables.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// The cluster as `status --json` prints it.
#[derive(Debug, Serialize, PartialEq)]
struct ClusterStatus {
    cluster_id: String,
    /// -1 when there is none.
    controller: i32,
    /// The DescribeCluster version answered; `None` when the broker does
    /// not implement DescribeCluster and the brokers come from Metadata.
    describe_cluster_version: Option<i16>,
    /// Whether fenced brokers are listed: false below DescribeCluster v2,
    /// where only live brokers are.
    fenced_brokers_known: bool,
    /// By id.
    brokers: Vec<BrokerStatus>,
    /// Partitions of every topic, internal ones included.
    partitions: usize,
    /// By topic and partition.
    under_replicated: Vec<PartitionStatus>,
    /// By topic and partition.
    offline: Vec<PartitionStatus>,
}

#[derive(Debug, Serialize, PartialEq)]
struct BrokerStatus {
    id: i32,
    /// `None` for an unknown broker.
    host: Option<String>,
    port: Option<i32>,
    rack: Option<String>,
    status: Liveness,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Liveness {
    /// Registered and not fenced: it may lead partitions.
    Alive,
    /// Registered, but the controller stopped hearing from it.
    Fenced,
    /// Named as a replica, not listed by the cluster: fenced (before
    /// DescribeCluster v2) or not registered.
    Unknown,
}

impl Liveness {
    fn name(self) -> &'static str {
        match self {
            Liveness::Alive => "alive",
            Liveness::Fenced => "fenced",
            Liveness::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct PartitionStatus {
    topic: String,
    partition: i32,
    /// -1 when the partition has no leader.
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

pub(crate) fn run(args: StatusArgs) -> anyhow::Result<()> {
    let client = &args.client;
    let mut connection = client.connect()?;
    let cluster = describe_cluster(&mut connection)?;
    let metadata = metadata(&mut connection)?;
    let status = cluster_status(cluster.as_ref(), &metadata);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &status)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &status)?;
    }
    out.flush()?;
    Ok(())
}

/// DescribeCluster at the newest version both sides speak, with fenced
/// brokers from v2; `None` when the broker does not implement it.
pub(crate) fn describe_cluster(
    connection: &mut Connection,
) -> anyhow::Result<Option<(i16, DescribeClusterResponse)>> {
    if connection.versions_of(ApiKey::DescribeCluster)?.is_none() {
        return Ok(None);
    }
    let version = connection.version_for(ApiKey::DescribeCluster, DESCRIBE_CLUSTER_VERSION_MAX)?;
    let request = DescribeClusterRequest::default().with_include_fenced_brokers(version >= 2);
    let response = connection.call(version, &request)?;
    if let Some(error) = ResponseError::try_from_code(response.error_code) {
        match &response.error_message {
            Some(message) if !message.is_empty() => {
                bail!(
                    "DescribeCluster to {} failed: {error}: {message}",
                    connection.address
                )
            }
            _ => bail!("DescribeCluster to {} failed: {error}", connection.address),
        }
    }
    Ok(Some((version, response)))
}

/// Metadata of every topic, without creating any.
pub(crate) fn metadata(connection: &mut Connection) -> anyhow::Result<MetadataResponse> {
    let version = connection.version_for(ApiKey::Metadata, METADATA_VERSION_MAX)?;
    ensure!(
        version >= METADATA_VERSION_MIN,
        "the broker at {} answers Metadata v{version} at most; this command needs \
         v{METADATA_VERSION_MIN} or newer",
        connection.address
    );
    let mut request = MetadataRequest::default().with_topics(None);
    if version >= 4 {
        request = request.with_allow_auto_topic_creation(false);
    }
    connection.call(version, &request)
}

/// The status from DescribeCluster's brokers (or, without it, Metadata's)
/// and Metadata's partitions.
fn cluster_status(
    cluster: Option<&(i16, DescribeClusterResponse)>,
    metadata: &MetadataResponse,
) -> ClusterStatus {
    let (cluster_id, controller, mut brokers, version) = match cluster {
        Some((version, response)) => {
            let brokers: Vec<BrokerStatus> = response
                .brokers
                .iter()
                .map(|b| BrokerStatus {
                    id: b.broker_id.0,
                    host: Some(b.host.to_string()),
                    port: Some(b.port),
                    rack: b.rack.as_ref().map(ToString::to_string),
                    // Below v2 the field is absent (false) and only live
                    // brokers are listed.
                    status: if b.is_fenced {
                        Liveness::Fenced
                    } else {
                        Liveness::Alive
                    },
                })
                .collect();
            (
                response.cluster_id.to_string(),
                response.controller_id.0,
                brokers,
                Some(*version),
            )
        }
        None => {
            let brokers: Vec<BrokerStatus> = metadata
                .brokers
                .iter()
                .map(|b| BrokerStatus {
                    id: b.node_id.0,
                    host: Some(b.host.to_string()),
                    port: Some(b.port),
                    rack: b.rack.as_ref().map(ToString::to_string),
                    status: Liveness::Alive,
                })
                .collect();
            (
                metadata
                    .cluster_id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                metadata.controller_id.0,
                brokers,
                None,
            )
        }
    };

    let mut partitions = 0;
    let mut under_replicated = Vec::new();
    let mut offline = Vec::new();
    let mut replica_ids = BTreeSet::new();
    for topic in &metadata.topics {
        let name = match &topic.name {
            Some(name) => name.to_string(),
            None => topic.topic_id.to_string(),
        };
        for p in &topic.partitions {
            partitions += 1;
            let status = PartitionStatus {
                topic: name.clone(),
                partition: p.partition_index,
                leader: p.leader_id.0,
                replicas: p.replica_nodes.iter().map(|id| id.0).collect(),
                isr: p.isr_nodes.iter().map(|id| id.0).collect(),
            };
            replica_ids.extend(status.replicas.iter().copied());
            if status.isr.len() < status.replicas.len() {
                under_replicated.push(status.clone());
            }
            if status.leader < 0 {
                offline.push(status);
            }
        }
    }
    for id in replica_ids {
        if id >= 0 && !brokers.iter().any(|b| b.id == id) {
            brokers.push(BrokerStatus {
                id,
                host: None,
                port: None,
                rack: None,
                status: Liveness::Unknown,
            });
        }
    }
    brokers.sort_by_key(|b| b.id);
    let by_name = |a: &PartitionStatus, b: &PartitionStatus| {
        (a.topic.as_str(), a.partition).cmp(&(b.topic.as_str(), b.partition))
    };
    under_replicated.sort_by(by_name);
    offline.sort_by(by_name);
    ClusterStatus {
        cluster_id,
        controller,
        describe_cluster_version: version,
        fenced_brokers_known: version.is_some_and(|v| v >= 2),
        brokers,
        partitions,
        under_replicated,
        offline,
    }
}

fn write_text(out: &mut impl Write, status: &ClusterStatus) -> std::io::Result<()> {
    writeln!(out, "Cluster: {}", dash(&status.cluster_id))?;
    writeln!(out, "Controller: {}", id_or_none(status.controller))?;
    let count = |liveness| {
        status
            .brokers
            .iter()
            .filter(|b| b.status == liveness)
            .count()
    };
    let mut summary = vec![format!("{} alive", count(Liveness::Alive))];
    if status.fenced_brokers_known {
        summary.push(format!("{} fenced", count(Liveness::Fenced)));
    }
    let unknown = count(Liveness::Unknown);
    if unknown > 0 {
        summary.push(format!("{unknown} unknown"));
    }
    writeln!(
        out,
        "Brokers: {} ({})",
        status.brokers.len(),
        summary.join(", ")
    )?;
    if !status.fenced_brokers_known {
        match status.describe_cluster_version {
            Some(version) => writeln!(
                out,
                "Fenced brokers: unknown (the broker answers DescribeCluster v{version} at most, \
                 which lists live brokers only)"
            )?,
            None => writeln!(
                out,
                "Fenced brokers: unknown (the broker does not answer DescribeCluster)"
            )?,
        }
    }
    let rows: Vec<Vec<String>> = status
        .brokers
        .iter()
        .map(|b| {
            vec![
                b.id.to_string(),
                dash(b.host.as_deref().unwrap_or("")),
                b.port.map_or("-".to_string(), |p| p.to_string()),
                dash(b.rack.as_deref().unwrap_or("")),
                b.status.name().to_string(),
            ]
        })
        .collect();
    write_table(out, &["ID", "HOST", "PORT", "RACK", "STATUS"], &rows)?;
    writeln!(out)?;
    writeln!(
        out,
        "Partitions: {} ({} under-replicated, {} offline)",
        status.partitions,
        status.under_replicated.len(),
        status.offline.len()
    )?;
    for (title, partitions) in [
        ("Under-replicated partitions:", &status.under_replicated),
        ("Offline partitions:", &status.offline),
    ] {
        if partitions.is_empty() {
            continue;
        }
        writeln!(out)?;
        writeln!(out, "{title}")?;
        let rows: Vec<Vec<String>> = partitions
            .iter()
            .map(|p| {
                vec![
                    p.topic.clone(),
                    p.partition.to_string(),
                    id_or_none(p.leader),
                    dash(&join(&p.replicas)),
                    dash(&join(&p.isr)),
                ]
            })
            .collect();
        write_table(
            out,
            &["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"],
            &rows,
        )?;
    }
    Ok(())
}

fn id_or_none(id: i32) -> String {
    if id < 0 {
        "none".to_string()
    } else {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn broker(id: i32, fenced: bool) -> DescribeClusterBroker {
        DescribeClusterBroker::default()
            .with_broker_id(BrokerId(id))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(9092 + 100 * (id - 1))
            .with_is_fenced(fenced)
    }

    fn partition(
        index: i32,
        leader: i32,
        replicas: &[i32],
        isr: &[i32],
    ) -> MetadataResponsePartition {
        MetadataResponsePartition::default()
            .with_partition_index(index)
            .with_leader_id(BrokerId(leader))
            .with_replica_nodes(replicas.iter().map(|&id| BrokerId(id)).collect())
            .with_isr_nodes(isr.iter().map(|&id| BrokerId(id)).collect())
    }

    fn metadata() -> MetadataResponse {
        MetadataResponse::default()
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(9092),
            ])
            .with_cluster_id(Some(StrBytes::from_static_str("c1")))
            .with_controller_id(BrokerId(1))
            .with_topics(vec![
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("events"))))
                    .with_partitions(vec![
                        partition(1, 2, &[2, 3, 1], &[2, 1]),
                        partition(0, 1, &[1, 2, 3], &[1, 2, 3]),
                        partition(2, -1, &[3, 4, 2], &[3]),
                    ]),
            ])
    }

    #[test]
    fn fenced_brokers_and_unhealthy_partitions_are_reported() {
        let cluster = DescribeClusterResponse::default()
            .with_cluster_id(StrBytes::from_static_str("c1"))
            .with_controller_id(BrokerId(2))
            .with_brokers(vec![broker(3, true), broker(1, false), broker(2, false)]);
        let status = cluster_status(Some(&(2, cluster)), &metadata());
        assert_eq!(status.controller, 2);
        assert!(status.fenced_brokers_known);
        let brokers: Vec<(i32, Liveness)> =
            status.brokers.iter().map(|b| (b.id, b.status)).collect();
        assert_eq!(
            brokers,
            [
                (1, Liveness::Alive),
                (2, Liveness::Alive),
                (3, Liveness::Fenced),
                (4, Liveness::Unknown)
            ]
        );
        assert_eq!(status.partitions, 3);
        let under: Vec<i32> = status
            .under_replicated
            .iter()
            .map(|p| p.partition)
            .collect();
        assert_eq!(under, [1, 2]);
        let offline: Vec<i32> = status.offline.iter().map(|p| p.partition).collect();
        assert_eq!(offline, [2]);

        let mut text = Vec::new();
        write_text(&mut text, &status).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(
            text,
            "Cluster: c1\n\
             Controller: 2\n\
             Brokers: 4 (2 alive, 1 fenced, 1 unknown)\n\
             ID  HOST       PORT  RACK  STATUS\n\
             1   127.0.0.1  9092  -     alive\n\
             2   127.0.0.1  9192  -     alive\n\
             3   127.0.0.1  9292  -     fenced\n\
             4   -          -     -     unknown\n\
             \n\
             Partitions: 3 (2 under-replicated, 1 offline)\n\
             \n\
             Under-replicated partitions:\n\
             TOPIC   PARTITION  LEADER  REPLICAS  ISR\n\
             events  1          2       2,3,1     2,1\n\
             events  2          none    3,4,2     3\n\
             \n\
             Offline partitions:\n\
             TOPIC   PARTITION  LEADER  REPLICAS  ISR\n\
             events  2          none    3,4,2     3\n"
        );
    }

    #[test]
    fn without_describe_cluster_v2_fenced_brokers_are_unknown() {
        let cluster = DescribeClusterResponse::default()
            .with_controller_id(BrokerId(1))
            .with_brokers(vec![broker(1, false), broker(2, false)]);
        let status = cluster_status(Some(&(1, cluster)), &metadata());
        assert!(!status.fenced_brokers_known);
        let mut text = Vec::new();
        write_text(&mut text, &status).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains(
                "Brokers: 4 (2 alive, 2 unknown)\nFenced brokers: unknown (the broker answers \
                 DescribeCluster v1 at most, which lists live brokers only)\n"
            ),
            "{text}"
        );

        let status = cluster_status(None, &metadata());
        assert_eq!(status.cluster_id, "c1");
        assert_eq!(status.describe_cluster_version, None);
        assert_eq!(status.brokers[0].status, Liveness::Alive);
        assert_eq!(status.brokers.len(), 4);
    }
}
