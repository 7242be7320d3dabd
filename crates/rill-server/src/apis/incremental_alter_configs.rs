//! IncrementalAlterConfigs (with validate_only): SET, DELETE, APPEND and
//! SUBTRACT on topic configs, and on the broker's topic defaults (log.*),
//! which apply at once to every topic without an override; SET and
//! DELETE on group configs (group_config.rs), for a group that need not
//! exist. Changes are persisted in the metadata log.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::error_code;
use crate::group_config::{self, SetGroupConfigError};
use crate::topic_config::{self, find_by_broker_name};
use crate::topics::TopicError;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub(crate) fn answer(
    broker: &Broker,
    alter: IncrementalAlterConfigsRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    let access = Access::new(broker, session);
    let responses = alter
        .resources
        .into_iter()
        .map(|resource| {
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match apply(broker, &access, &resource, alter.validate_only) {
                Ok(()) => response,
                Err((error, message)) => response
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    encode(
        ApiKey::IncrementalAlterConfigs,
        version,
        &IncrementalAlterConfigsResponse::default().with_responses(responses),
    )
}

fn apply(
    broker: &Broker,
    access: &Access<'_>,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    let names: Vec<&str> = resource.configs.iter().map(|c| c.name.as_str()).collect();
    replace_configs(
        (broker, access),
        resource.resource_type,
        resource.resource_name.as_str(),
        &names,
        |current| {
            if resource.resource_type == RESOURCE_GROUP {
                refuse_list_operations(resource)?;
            }
            updated(current, resource)
        },
        validate_only,
    )
}

/// Replaces the configs of a topic, the broker or a group with what
/// `compute` makes of the current ones; `names` are the configs being
/// changed. Shared with the legacy AlterConfigs, which replaces them
/// wholesale.
pub(super) fn replace_configs(
    (broker, access): (&Broker, &Access<'_>),
    resource_type: i8,
    name: &str,
    names: &[&str],
    compute: impl FnOnce(
        BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, (ResponseError, String)>,
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    access.configs(AclOperation::AlterConfigs, resource_type, name)?;
    let topic_failure = |error: TopicError| (error_code::for_topic(&error), error.to_string());
    match resource_type {
        RESOURCE_TOPIC => {
            let current = broker
                .topics()
                .topic(name)
                .ok_or_else(|| {
                    topic_failure(TopicError::UnknownTopic {
                        name: name.to_string(),
                    })
                })?
                .configs
                .clone();
            let updated = topic_config::without_retired(compute(current)?);
            broker
                .topics()
                .set_configs(name, updated, validate_only)
                .map_err(topic_failure)
        }
        RESOURCE_BROKER => {
            let node_id = broker.config().node_id.to_string();
            if !name.is_empty() && name != node_id {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("unexpected broker id {name:?}: this is broker {node_id}"),
                ));
            }
            for key in names {
                let alias = matches!(
                    *key,
                    "log.retention.hours" | "log.retention.minutes" | "log.roll.hours"
                );
                if find_by_broker_name(key).is_none() && !alias && !topic_config::is_retired(key) {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!(
                            "{key} cannot be changed while the broker runs; set it in the config file"
                        ),
                    ));
                }
            }
            let updated =
                topic_config::without_retired(compute(broker.topics().dynamic_broker_configs())?);
            broker
                .topics()
                .set_broker_configs(updated, validate_only)
                .map_err(topic_failure)
        }
        RESOURCE_GROUP => {
            if name.is_empty() {
                return Err((
                    ResponseError::InvalidRequest,
                    "Group name must not be empty".to_string(),
                ));
            }
            let current = broker
                .node()
                .metadata()
                .group_configs
                .get(name)
                .cloned()
                .unwrap_or_default();
            group_config::set_group_configs(broker, name, compute(current)?, validate_only).map_err(
                |error| match &error {
                    SetGroupConfigError::Invalid(_) => {
                        (ResponseError::InvalidConfig, error.to_string())
                    }
                    SetGroupConfigError::Proposal(proposal) => {
                        (error_code::for_proposal(proposal), error.to_string())
                    }
                },
            )
        }
        other => Err((
            ResponseError::InvalidRequest,
            format!("config resource type {other} is not supported"),
        )),
    }
}

/// APPEND and SUBTRACT are for list configs, and no group config is one:
/// INVALID_CONFIG, as Kafka answers for a config of another type.
fn refuse_list_operations(resource: &AlterConfigsResource) -> Result<(), (ResponseError, String)> {
    for config in &resource.configs {
        let op = match config.config_operation {
            OP_APPEND => "APPEND",
            OP_SUBTRACT => "SUBTRACT",
            _ => continue,
        };
        return Err((
            ResponseError::InvalidConfig,
            format!(
                "Can't {op} to key {} because its type is not LIST.",
                config.name.as_str()
            ),
        ));
    }
    Ok(())
}

/// `current` with the resource's operations applied in order.
fn updated(
    mut current: BTreeMap<String, String>,
    resource: &AlterConfigsResource,
) -> Result<BTreeMap<String, String>, (ResponseError, String)> {
    for config in &resource.configs {
        let key = config.name.to_string();
        let value = config.value.as_ref().map(ToString::to_string);
        match (config.config_operation, value) {
            (OP_SET, Some(value)) => {
                current.insert(key, value);
            }
            (OP_DELETE, _) => {
                current.remove(&key);
            }
            (OP_APPEND, Some(value)) => {
                let mut items: Vec<String> = list(current.get(&key));
                for item in value.split(',').map(str::trim) {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                }
                current.insert(key, items.join(","));
            }
            (OP_SUBTRACT, Some(value)) => {
                let remove: Vec<&str> = value.split(',').map(str::trim).collect();
                let items: Vec<String> = list(current.get(&key))
                    .into_iter()
                    .filter(|i| !remove.contains(&i.as_str()))
                    .collect();
                if items.is_empty() {
                    current.remove(&key);
                } else {
                    current.insert(key, items.join(","));
                }
            }
            (op, _) => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("config operation {op} on {key} needs a value or is unknown"),
                ));
            }
        }
    }
    Ok(current)
}

fn list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}
