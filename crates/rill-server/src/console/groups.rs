//! The consumer groups: a searchable page of them (`GET /api/groups`),
//! one group's members, offsets and lag (`GET /api/groups/{id}`), and
//! resetting its offsets with a dry run first (`POST .../reset`), asked of
//! each group's coordinator.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde::{Deserialize, Serialize};

use super::Console;
use super::history::LagPoint;
use super::kafka::{Kafka, check};
use super::partitions::{self, EARLIEST, LATEST, Partition};
use super::reply::{ApiError, Reply};
use crate::broker::Broker;

/// The most groups one page holds.
const PAGE_MAX: usize = 500;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    search: String,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

#[derive(Serialize)]
pub(crate) struct GroupPage {
    total: usize,
    groups: Vec<GroupRow>,
}

#[derive(Serialize)]
struct GroupRow {
    id: String,
    state: String,
    protocol_type: String,
    members: Option<usize>,
    lag: Option<i64>,
}

pub(crate) async fn list(
    State(console): State<Console>,
    Query(query): Query<ListQuery>,
) -> Reply<GroupPage> {
    let (broker, kafka) = console.client()?;
    let metadata = broker.node().metadata();
    let search = query.search.to_lowercase();
    // Each broker lists the groups it coordinates.
    let mut listed: BTreeMap<String, (i32, String, String)> = BTreeMap::new();
    for node in metadata.brokers.values().filter(|b| !b.fenced) {
        let answer: Result<ListGroupsResponse, _> = kafka
            .call(
                &broker,
                node.id.0,
                (ApiKey::ListGroups, 4),
                &ListGroupsRequest::default(),
            )
            .await;
        let Ok(answer) = answer else { continue };
        for group in answer.groups {
            let id = group.group_id.0.to_string();
            if search.is_empty() || id.to_lowercase().contains(&search) {
                let row = (
                    node.id.0,
                    group.group_state.to_string(),
                    group.protocol_type.to_string(),
                );
                listed.insert(id, row);
            }
        }
    }
    let limit = query.limit.unwrap_or(50).min(PAGE_MAX);
    let mut groups = Vec::new();
    for (id, (coordinator, state, protocol_type)) in listed.iter().skip(query.offset).take(limit) {
        let described = describe_group(&broker, kafka, *coordinator, id).await.ok();
        let lag = match committed(&broker, kafka, *coordinator, id).await {
            Ok(offsets) => lags(&broker, kafka, &offsets).await.1,
            Err(_) => None,
        };
        groups.push(GroupRow {
            id: id.clone(),
            state: state.clone(),
            protocol_type: protocol_type.clone(),
            members: described.map(|d| d.members.len()),
            lag,
        });
    }
    Ok(Json(GroupPage {
        total: listed.len(),
        groups,
    }))
}

#[derive(Serialize)]
pub(crate) struct GroupView {
    id: String,
    state: String,
    protocol_type: String,
    protocol: String,
    coordinator: i32,
    members: Vec<MemberView>,
    offsets: Vec<OffsetRow>,
    lag: Option<i64>,
    history: LagHistory,
}

#[derive(Serialize)]
struct MemberView {
    member_id: String,
    client_id: String,
    host: String,
    assignments: Vec<Assignment>,
}

#[derive(Serialize)]
struct Assignment {
    topic: String,
    partitions: Vec<i32>,
}

#[derive(Serialize)]
struct OffsetRow {
    topic: String,
    partition: i32,
    committed: i64,
    end_offset: Option<i64>,
    lag: Option<i64>,
}

#[derive(Serialize)]
struct LagHistory {
    interval_ms: u64,
    points: Vec<LagPoint>,
}

pub(crate) async fn describe(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> Reply<GroupView> {
    let (broker, kafka) = console.client()?;
    let coordinator = coordinator_of(&broker, kafka, &id).await?;
    let group = describe_group(&broker, kafka, coordinator, &id).await?;
    let offsets = committed(&broker, kafka, coordinator, &id).await?;
    let state = group.group_state.to_string();
    if state == "Dead" && offsets.is_empty() {
        return Err(ApiError::not_found(format!("no group {id}")));
    }
    let members = group
        .members
        .iter()
        .map(|m| MemberView {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            assignments: assignments(&m.member_assignment),
        })
        .collect();
    let (rows, lag) = lags(&broker, kafka, &offsets).await;
    Ok(Json(GroupView {
        state,
        protocol_type: group.protocol_type.to_string(),
        protocol: group.protocol_data.to_string(),
        coordinator,
        members,
        offsets: rows,
        lag,
        history: LagHistory {
            interval_ms: console.history().interval_ms(),
            points: console.history().lag_of(&id),
        },
        id,
    }))
}

/// A consumer member's assignment, as the consumer protocol encodes it
/// (nothing for another protocol's bytes).
fn assignments(bytes: &bytes::Bytes) -> Vec<Assignment> {
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    match ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) {
        Ok(assignment) => assignment
            .assigned_partitions
            .into_iter()
            .map(|tp| Assignment {
                topic: tp.topic.0.to_string(),
                partitions: tp.partitions,
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Each committed offset's lag behind its partition's high watermark,
/// and their sum (none when no leader answered for any).
async fn lags(
    broker: &Broker,
    kafka: &Kafka,
    offsets: &BTreeMap<Partition, i64>,
) -> (Vec<OffsetRow>, Option<i64>) {
    let wanted: Vec<Partition> = offsets.keys().cloned().collect();
    let ends = partitions::offsets(broker, kafka, &wanted, LATEST).await;
    let mut total = None;
    let rows = offsets
        .iter()
        .map(|((topic, partition), &committed)| {
            let end = ends.get(&(topic.clone(), *partition)).copied();
            let lag = end.map(|end| (end - committed).max(0));
            if let Some(lag) = lag {
                *total.get_or_insert(0) += lag;
            }
            OffsetRow {
                topic: topic.clone(),
                partition: *partition,
                committed,
                end_offset: end,
                lag,
            }
        })
        .collect();
    (rows, total)
}

/// The broker coordinating group `id`.
async fn coordinator_of(broker: &Broker, kafka: &Kafka, id: &str) -> Result<i32, ApiError> {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(id.to_string()))
        .with_key_type(0);
    let answer: FindCoordinatorResponse = kafka
        .call(
            broker,
            broker.config().node_id,
            (ApiKey::FindCoordinator, 3),
            &request,
        )
        .await?;
    check(answer.error_code, answer.error_message.as_deref()).map_err(ApiError::unavailable)?;
    Ok(answer.node_id.0)
}

async fn describe_group(
    broker: &Broker,
    kafka: &Kafka,
    coordinator: i32,
    id: &str,
) -> Result<kafka_protocol::messages::describe_groups_response::DescribedGroup, ApiError> {
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(id.to_string()))]);
    let answer: DescribeGroupsResponse = kafka
        .call(broker, coordinator, (ApiKey::DescribeGroups, 5), &request)
        .await?;
    let group = answer
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::unavailable("the coordinator described no group"))?;
    check(group.error_code, group.error_message.as_deref()).map_err(ApiError::unavailable)?;
    Ok(group)
}

/// The group's committed offsets.
async fn committed(
    broker: &Broker,
    kafka: &Kafka,
    coordinator: i32,
    id: &str,
) -> Result<BTreeMap<Partition, i64>, ApiError> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(id.to_string())))
        .with_topics(None);
    let answer: OffsetFetchResponse = kafka
        .call(broker, coordinator, (ApiKey::OffsetFetch, 7), &request)
        .await?;
    check(answer.error_code, None).map_err(ApiError::unavailable)?;
    let mut offsets = BTreeMap::new();
    for topic in answer.topics {
        for partition in topic.partitions {
            if partition.error_code == 0 && partition.committed_offset >= 0 {
                offsets.insert(
                    (topic.name.0.to_string(), partition.partition_index),
                    partition.committed_offset,
                );
            }
        }
    }
    Ok(offsets)
}

#[derive(Deserialize)]
pub(crate) struct ResetRequest {
    topic: String,
    to: String,
    value: Option<i64>,
    partitions: Option<Vec<i32>>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Serialize)]
pub(crate) struct ResetResult {
    applied: bool,
    changes: Vec<Change>,
}

#[derive(Serialize)]
struct Change {
    topic: String,
    partition: i32,
    current: Option<i64>,
    new: i64,
}

pub(crate) async fn reset(
    State(console): State<Console>,
    Path(id): Path<String>,
    Json(reset): Json<ResetRequest>,
) -> Reply<ResetResult> {
    let (broker, kafka) = console.client()?;
    let count = broker
        .node()
        .metadata()
        .topics
        .get(&reset.topic)
        .map(|t| t.partitions.len())
        .ok_or_else(|| ApiError::not_found(format!("no topic {}", reset.topic)))?;
    let count = i32::try_from(count).unwrap_or(i32::MAX);
    let chosen = reset
        .partitions
        .clone()
        .unwrap_or_else(|| (0..count).collect());
    if let Some(p) = chosen.iter().find(|p| !(0..count).contains(*p)) {
        return Err(ApiError::bad_request(format!(
            "{} has no partition {p}",
            reset.topic
        )));
    }
    let wanted: Vec<Partition> = chosen.iter().map(|p| (reset.topic.clone(), *p)).collect();
    let coordinator = coordinator_of(&broker, kafka, &id).await?;
    let group = describe_group(&broker, kafka, coordinator, &id).await?;
    let state = group.group_state.to_string();
    if !matches!(state.as_str(), "Empty" | "Dead") {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "group {id} is {state} with {} member(s); offsets can only be reset while it is \
                 inactive (stop its consumers first)",
                group.members.len()
            ),
        ));
    }
    let current = committed(&broker, kafka, coordinator, &id).await?;
    let earliest = partitions::offsets(&broker, kafka, &wanted, EARLIEST).await;
    let latest = partitions::offsets(&broker, kafka, &wanted, LATEST).await;
    let at_time = match (reset.to.as_str(), reset.value) {
        // ListOffsets reads negative times as its special positions.
        ("timestamp", Some(t)) if t < 0 => {
            return Err(ApiError::bad_request("a timestamp is ms since the epoch"));
        }
        ("timestamp", Some(t)) => partitions::offsets(&broker, kafka, &wanted, t).await,
        _ => HashMap::new(),
    };
    let mut changes = Vec::new();
    for partition in &wanted {
        let (Some(&first), Some(&end)) = (earliest.get(partition), latest.get(partition)) else {
            return Err(ApiError::unavailable(format!(
                "the leader of {}-{} did not answer",
                partition.0, partition.1
            )));
        };
        let now = current.get(partition).copied();
        let new = match (reset.to.as_str(), reset.value) {
            ("earliest", _) => first,
            ("latest", _) => end,
            ("offset", Some(offset)) => offset,
            ("timestamp", Some(_)) => match at_time.get(partition) {
                Some(&found) if found >= 0 => found,
                _ => end,
            },
            ("shift", Some(by)) => now.unwrap_or(first).saturating_add(by),
            _ => {
                return Err(ApiError::bad_request(
                    "to is earliest, latest, or offset, timestamp or shift with a value",
                ));
            }
        };
        changes.push(Change {
            topic: partition.0.clone(),
            partition: partition.1,
            current: now,
            // Not clamp: the two answers are read apart, and clamp panics
            // should a retention pass put the start past the end read.
            new: new.max(first).min(end),
        });
    }
    if !reset.dry_run {
        commit(&broker, kafka, coordinator, &id, &changes).await?;
    }
    Ok(Json(ResetResult {
        applied: !reset.dry_run,
        changes,
    }))
}

/// Commits the new offsets as an admin does: no generation, no member.
async fn commit(
    broker: &Broker,
    kafka: &Kafka,
    coordinator: i32,
    id: &str,
    changes: &[Change],
) -> Result<(), ApiError> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for change in changes {
        topics.entry(&change.topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(change.partition)
                .with_committed_offset(change.new)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_static_str(""))),
        );
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(id.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let answer: OffsetCommitResponse = kafka
        .call(broker, coordinator, (ApiKey::OffsetCommit, 8), &request)
        .await?;
    for topic in &answer.topics {
        for partition in &topic.partitions {
            check(partition.error_code, None).map_err(|e| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    format!("{}-{}: {e}", topic.name.0, partition.partition_index),
                )
            })?;
        }
    }
    Ok(())
}
