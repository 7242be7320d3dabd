//! `rill group list` and `rill group describe` for share groups (KIP-932),
//! through Rill's own protocol client: ListGroups of type "share" at every
//! broker; ShareGroupDescribe and DescribeShareGroupOffsets at the group's
//! coordinator, whose Rill-only tagged field gives each share-partition's
//! records by state and by delivery count (`rill_share::Summary`).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use kafka_protocol::messages::{
    ApiKey, DescribeShareGroupOffsetsRequest, GroupId, ListGroupsRequest, MetadataRequest,
    ShareGroupDescribeRequest,
    describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup,
};
use kafka_protocol::protocol::StrBytes;
use rill_share::{SUMMARY_TAG, Summary};
use serde::Serialize;

use crate::client::ClientArgs;
use crate::connection::refusal;
use crate::table::{dash, write_table};

/// FindCoordinator's key type of a group.
const KEY_TYPE_GROUP: i8 = 0;
/// GROUP_ID_NOT_FOUND: not a share group.
const GROUP_ID_NOT_FOUND: i16 = 69;

/// The share groups of every broker, with their states.
pub(crate) fn list(client: &ClientArgs) -> anyhow::Result<BTreeMap<String, String>> {
    let mut bootstrap = client.connect()?;
    let version = bootstrap.version_for(ApiKey::Metadata, 12)?;
    let metadata = bootstrap.call(
        version,
        &MetadataRequest::default().with_topics(Some(vec![])),
    )?;
    let mut groups = BTreeMap::new();
    for broker in metadata.brokers {
        let address = format!("{}:{}", broker.host, broker.port);
        let mut connection = client.connect_to(&address)?;
        let Some((_, newest)) = connection.versions_of(ApiKey::ListGroups)? else {
            continue;
        };
        if newest < 5 {
            // No group types before v5: no share groups either.
            continue;
        }
        let request = ListGroupsRequest::default()
            .with_types_filter(vec![StrBytes::from_static_str("share")]);
        let response = connection.call(5, &request)?;
        if response.error_code != 0 {
            anyhow::bail!(
                "cannot list the groups of {address}: {}",
                refusal(response.error_code, None)
            );
        }
        for group in response.groups {
            groups.insert(group.group_id.to_string(), group.group_state.to_string());
        }
    }
    Ok(groups)
}

/// A share group as `rill group describe` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ShareGroupView {
    group: String,
    group_type: &'static str,
    state: String,
    members: Vec<ShareMemberView>,
    partitions: Vec<SharePartitionView>,
}

#[derive(Debug, Serialize)]
struct ShareMemberView {
    member_id: String,
    client_id: String,
    client_host: String,
    assignment: Vec<String>,
}

#[derive(Debug, Serialize)]
struct SharePartitionView {
    topic: String,
    partition: i32,
    /// −1: no state yet.
    start_offset: i64,
    /// In flight (between the start and the end of what was handed out).
    available: u64,
    acquired: u64,
    acknowledged: u64,
    archiving: u64,
    archived: u64,
    /// In-flight records by how often they were delivered.
    delivery_counts: BTreeMap<u16, u64>,
}

/// `group` if it is a share group, from its coordinator.
pub(crate) fn describe(client: &ClientArgs, group: &str) -> anyhow::Result<Option<ShareGroupView>> {
    let mut coordinator = client.coordinator(KEY_TYPE_GROUP, group)?;
    let Some((_, newest)) = coordinator.versions_of(ApiKey::ShareGroupDescribe)? else {
        return Ok(None);
    };
    let describe = ShareGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
    let described = coordinator.call(newest.min(1), &describe)?;
    let Some(found) = described.groups.into_iter().next() else {
        return Ok(None);
    };
    if found.error_code == GROUP_ID_NOT_FOUND {
        return Ok(None);
    }
    if found.error_code != 0 {
        anyhow::bail!(
            "cannot describe share group {group:?}: {}",
            refusal(found.error_code, found.error_message.as_deref())
        );
    }
    let members = found
        .members
        .into_iter()
        .map(|m| ShareMemberView {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            assignment: m
                .assignment
                .topic_partitions
                .iter()
                .map(|t| {
                    format!(
                        "{}:{}",
                        t.topic_name.as_str(),
                        crate::table::join(&t.partitions)
                    )
                })
                .collect(),
        })
        .collect();
    let offsets = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_topics(None),
    ]);
    coordinator
        .version_for(ApiKey::DescribeShareGroupOffsets, 0)
        .context("the coordinator cannot describe share group offsets")?;
    let answered = coordinator.call(0, &offsets)?;
    let mut partitions = Vec::new();
    for described in answered.groups {
        if described.error_code != 0 && described.error_code != GROUP_ID_NOT_FOUND {
            anyhow::bail!(
                "cannot describe the offsets of {group:?}: {}",
                refusal(described.error_code, described.error_message.as_deref())
            );
        }
        for topic in described.topics {
            for p in topic.partitions {
                let summary = p
                    .unknown_tagged_fields
                    .get(&SUMMARY_TAG)
                    .and_then(|bytes| Summary::decode(bytes))
                    .unwrap_or_default();
                partitions.push(SharePartitionView {
                    topic: topic.topic_name.to_string(),
                    partition: p.partition_index,
                    start_offset: p.start_offset,
                    available: summary.available,
                    acquired: summary.acquired,
                    acknowledged: summary.acknowledged,
                    archiving: summary.archiving,
                    archived: summary.archived,
                    delivery_counts: summary.delivery_counts,
                });
            }
        }
    }
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(Some(ShareGroupView {
        group: group.to_owned(),
        group_type: "share",
        state: found.group_state.to_string(),
        members,
        partitions,
    }))
}

/// The text of `rill group describe` for a share group.
pub(crate) fn write(out: &mut impl Write, view: &ShareGroupView) -> std::io::Result<()> {
    write_table(
        out,
        &["GROUP", "TYPE", "STATE", "MEMBERS"],
        &[vec![
            view.group.clone(),
            view.group_type.to_string(),
            view.state.clone(),
            view.members.len().to_string(),
        ]],
    )?;
    if !view.members.is_empty() {
        let rows: Vec<Vec<String>> = view
            .members
            .iter()
            .map(|m| {
                vec![
                    m.member_id.clone(),
                    dash(&m.client_host),
                    dash(&m.client_id),
                    dash(&m.assignment.join(";")),
                ]
            })
            .collect();
        writeln!(out)?;
        write_table(
            out,
            &["MEMBER-ID", "HOST", "CLIENT-ID", "ASSIGNMENT"],
            &rows,
        )?;
    }
    let rows: Vec<Vec<String>> = view
        .partitions
        .iter()
        .map(|p| {
            let deliveries: Vec<String> = p
                .delivery_counts
                .iter()
                .map(|(count, records)| format!("{count}x:{records}"))
                .collect();
            vec![
                p.topic.clone(),
                p.partition.to_string(),
                if p.start_offset < 0 {
                    "-".to_string()
                } else {
                    p.start_offset.to_string()
                },
                p.available.to_string(),
                p.acquired.to_string(),
                p.acknowledged.to_string(),
                (p.archiving + p.archived).to_string(),
                dash(&deliveries.join(" ")),
            ]
        })
        .collect();
    writeln!(out)?;
    write_table(
        out,
        &[
            "TOPIC",
            "PARTITION",
            "START-OFFSET",
            "AVAILABLE",
            "ACQUIRED",
            "ACKNOWLEDGED",
            "ARCHIVED",
            "DELIVERIES",
        ],
        &rows,
    )
}
