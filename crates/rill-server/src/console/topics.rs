//! The topics: a searchable page of them (`GET /api/topics`), creating
//! one (`POST`), one topic's partitions and configs (`GET
//! /api/topics/{name}`), and changing its configs (`PUT .../configs`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};

use super::Console;
use super::kafka::check;
use super::partitions::{self, EARLIEST, LATEST, Partition};
use super::reply::{ApiError, Reply};
use crate::topics::is_internal;

/// The most topics one page holds.
const PAGE_MAX: usize = 500;
/// Kafka's resource type for a topic (DescribeConfigs, AlterConfigs).
const TOPIC_RESOURCE: i8 = 2;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    search: String,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
    #[serde(default)]
    internal: bool,
}

#[derive(Serialize)]
pub(crate) struct TopicPage {
    total: usize,
    topics: Vec<TopicRow>,
}

#[derive(Serialize)]
struct TopicRow {
    name: String,
    partitions: usize,
    replication_factor: usize,
    internal: bool,
    size_bytes: Option<i64>,
    bytes_in_per_sec: f64,
    bytes_out_per_sec: f64,
}

pub(crate) async fn list(
    State(console): State<Console>,
    Query(query): Query<ListQuery>,
) -> Reply<TopicPage> {
    let (broker, kafka) = console.client()?;
    let metadata = broker.node().metadata();
    let search = query.search.to_lowercase();
    let matching: Vec<_> = metadata
        .topics
        .values()
        .filter(|t| query.internal || !is_internal(&t.name))
        .filter(|t| search.is_empty() || t.name.to_lowercase().contains(&search))
        .collect();
    let limit = query.limit.unwrap_or(50).min(PAGE_MAX);
    let page: Vec<_> = matching.iter().skip(query.offset).take(limit).collect();
    let wanted: Vec<Partition> = page
        .iter()
        .flat_map(|t| (0..).zip(&t.partitions).map(|(i, _)| (t.name.clone(), i)))
        .collect();
    let sizes = partitions::sizes(&broker, kafka, &wanted).await;
    let topics = page
        .iter()
        .map(|t| {
            let rate = console.history().topic_rate(&t.name);
            let known: Vec<i64> = (0..t.partitions.len())
                .filter_map(|i| {
                    sizes
                        .get(&(t.name.clone(), i32::try_from(i).ok()?))
                        .copied()
                })
                .collect();
            TopicRow {
                name: t.name.clone(),
                partitions: t.partitions.len(),
                replication_factor: t.partitions.first().map_or(0, |p| p.replicas.len()),
                internal: is_internal(&t.name),
                size_bytes: (!known.is_empty() || t.partitions.is_empty())
                    .then(|| known.iter().sum()),
                bytes_in_per_sec: rate.bytes_in,
                bytes_out_per_sec: rate.bytes_out,
            }
        })
        .collect();
    Ok(Json(TopicPage {
        total: matching.len(),
        topics,
    }))
}

#[derive(Deserialize)]
pub(crate) struct NewTopic {
    name: String,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

pub(crate) async fn create(
    State(console): State<Console>,
    Json(topic): Json<NewTopic>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let (broker, kafka) = console.client()?;
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                .with_num_partitions(topic.partitions.unwrap_or(-1))
                .with_replication_factor(topic.replication_factor.unwrap_or(-1))
                .with_configs(
                    topic
                        .configs
                        .into_iter()
                        .map(|(name, value)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(name))
                                .with_value(Some(StrBytes::from_string(value)))
                        })
                        .collect(),
                ),
        ]);
    let answer: CreateTopicsResponse = kafka
        .call(
            &broker,
            broker.config().node_id,
            (ApiKey::CreateTopics, 5),
            &request,
        )
        .await?;
    for result in &answer.topics {
        check(result.error_code, result.error_message.as_deref()).map_err(ApiError::bad_request)?;
    }
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "name": topic.name })),
    ))
}

#[derive(Serialize)]
pub(crate) struct TopicView {
    name: String,
    internal: bool,
    partitions: Vec<PartitionView>,
    configs: Vec<ConfigView>,
}

#[derive(Serialize)]
struct PartitionView {
    partition: i32,
    leader: Option<i32>,
    leader_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    offline_replicas: Vec<i32>,
    start_offset: Option<i64>,
    end_offset: Option<i64>,
    size_bytes: Option<i64>,
}

#[derive(Serialize)]
struct ConfigView {
    name: String,
    value: Option<String>,
    source: &'static str,
    read_only: bool,
    sensitive: bool,
}

pub(crate) async fn describe(
    State(console): State<Console>,
    Path(name): Path<String>,
) -> Reply<TopicView> {
    let (broker, kafka) = console.client()?;
    let metadata = broker.node().metadata();
    let topic = metadata
        .topics
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no topic {name}")))?;
    let wanted: Vec<Partition> = (0..)
        .zip(&topic.partitions)
        .map(|(i, _)| (name.clone(), i))
        .collect();
    let starts = partitions::offsets(&broker, kafka, &wanted, EARLIEST).await;
    let ends = partitions::offsets(&broker, kafka, &wanted, LATEST).await;
    let sizes = partitions::sizes(&broker, kafka, &wanted).await;
    let ids = |ids: &[rill_cluster::BrokerId]| ids.iter().map(|b| b.0).collect::<Vec<_>>();
    let partitions = (0..)
        .zip(&topic.partitions)
        .map(|(index, state)| {
            let key = (name.clone(), index);
            PartitionView {
                partition: index,
                leader: state.leader.map(|l| l.0),
                leader_epoch: state.leader_epoch.0,
                replicas: ids(&state.replicas),
                isr: ids(&state.isr),
                offline_replicas: state
                    .replicas
                    .iter()
                    .filter(|r| metadata.brokers.get(r).is_none_or(|b| b.fenced))
                    .map(|r| r.0)
                    .collect(),
                start_offset: starts.get(&key).copied(),
                end_offset: ends.get(&key).copied(),
                size_bytes: sizes.get(&key).copied(),
            }
        })
        .collect();
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(StrBytes::from_string(name.clone()))
            .with_configuration_keys(None),
    ]);
    let answer: DescribeConfigsResponse = kafka
        .call(
            &broker,
            broker.config().node_id,
            (ApiKey::DescribeConfigs, 4),
            &request,
        )
        .await?;
    let mut configs = Vec::new();
    for result in answer.results {
        check(result.error_code, result.error_message.as_deref()).map_err(ApiError::bad_request)?;
        configs.extend(result.configs.into_iter().map(|c| ConfigView {
            name: c.name.to_string(),
            value: c.value.map(|v| v.to_string()),
            source: source_name(c.config_source),
            read_only: c.read_only,
            sensitive: c.is_sensitive,
        }));
    }
    Ok(Json(TopicView {
        internal: is_internal(&name),
        name,
        partitions,
        configs,
    }))
}

/// Kafka's names for DescribeConfigs' config sources.
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

#[derive(Deserialize)]
pub(crate) struct ConfigChanges {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
}

pub(crate) async fn alter_configs(
    State(console): State<Console>,
    Path(name): Path<String>,
    Json(changes): Json<ConfigChanges>,
) -> Reply<serde_json::Value> {
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    let (broker, kafka) = console.client()?;
    let set = changes.set.into_iter().map(|(name, value)| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(name))
            .with_config_operation(SET)
            .with_value(Some(StrBytes::from_string(value)))
    });
    let delete = changes.delete.into_iter().map(|name| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(name))
            .with_config_operation(DELETE)
    });
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(StrBytes::from_string(name))
            .with_configs(set.chain(delete).collect()),
    ]);
    let answer: IncrementalAlterConfigsResponse = kafka
        .call(
            &broker,
            broker.config().node_id,
            (ApiKey::IncrementalAlterConfigs, 1),
            &request,
        )
        .await?;
    for result in &answer.responses {
        check(result.error_code, result.error_message.as_deref()).map_err(ApiError::bad_request)?;
    }
    Ok(Json(serde_json::json!({})))
}
