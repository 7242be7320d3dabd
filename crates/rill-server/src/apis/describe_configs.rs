//! DescribeConfigs for topics (every topic config, with its source and,
//! when asked, its synonyms: the broker property behind its default), for
//! the broker (its properties as set or defaulted) and for groups (every
//! group config: the group's own, GROUP_CONFIG, else the broker's; the
//! group need not exist).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::broker_properties::{self, BROKER_PROPERTIES};
use crate::effective_config::ConfigSource;
use crate::group_config;
use crate::topic_config::{TOPIC_CONFIGS, find_by_broker_name};

/// Kafka's ConfigResource types.
pub(crate) use crate::authorizer::{
    CONFIG_RESOURCE_BROKER as RESOURCE_BROKER, CONFIG_RESOURCE_GROUP as RESOURCE_GROUP,
    CONFIG_RESOURCE_TOPIC as RESOURCE_TOPIC,
};

/// Kafka's config source for a broker property set in its file or flags.
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_DEFAULT: i8 = 5;

/// One config as DescribeConfigs reports it.
struct Described {
    name: String,
    value: String,
    source: i8,
    config_type: i8,
    doc: &'static str,
    read_only: bool,
    /// A secret (a private key): its value is never sent.
    sensitive: bool,
    synonyms: Vec<(String, String, i8)>,
}

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let describe: DescribeConfigsRequest = request.decode()?;
    let access = Access::new(broker, &request.session);
    let results = describe
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let described = access
                .configs(AclOperation::DescribeConfigs, resource.resource_type, &name)
                .and_then(|()| match resource.resource_type {
                    RESOURCE_TOPIC => topic_configs(broker, &name),
                    RESOURCE_BROKER => broker_configs(broker, &name),
                    RESOURCE_GROUP => group_configs(broker, &name),
                    other => Err((
                        ResponseError::InvalidRequest,
                        format!("config resource type {other} is not supported"),
                    )),
                });
            match described {
                Ok(configs) => {
                    let keys = resource.configuration_keys.as_ref();
                    let configs = configs
                        .into_iter()
                        .filter(|c| {
                            keys.is_none_or(|keys| keys.iter().any(|k| k.as_str() == c.name))
                        })
                        .map(|c| {
                            to_result(
                                c,
                                version,
                                describe.include_synonyms,
                                describe.include_documentation,
                            )
                        })
                        .collect();
                    result.with_configs(configs)
                }
                Err((error, message)) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    encode(
        ApiKey::DescribeConfigs,
        version,
        &DescribeConfigsResponse::default().with_results(results),
    )
}

fn to_result(
    c: Described,
    version: i16,
    synonyms: bool,
    docs: bool,
) -> DescribeConfigsResourceResult {
    let mut result = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(c.name))
        .with_value((!c.sensitive).then(|| StrBytes::from_string(c.value)))
        .with_is_sensitive(c.sensitive)
        .with_read_only(c.read_only)
        .with_config_source(c.source);
    if synonyms {
        result = result.with_synonyms(
            c.synonyms
                .into_iter()
                .map(|(name, value, source)| {
                    DescribeConfigsSynonym::default()
                        .with_name(StrBytes::from_string(name))
                        .with_value(Some(StrBytes::from_string(value)))
                        .with_source(source)
                })
                .collect(),
        );
    }
    if version >= 3 {
        result = result.with_config_type(c.config_type);
        if docs {
            result = result.with_documentation(Some(StrBytes::from_static_str(c.doc)));
        }
    }
    result
}

fn topic_configs(broker: &Broker, topic: &str) -> Result<Vec<Described>, (ResponseError, String)> {
    let configs = broker.topics().configs_of(topic).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("topic {topic:?} does not exist"),
        )
    })?;
    let dynamic = broker.topics().dynamic_broker_configs();
    let static_ = &broker.config().properties;
    Ok(configs
        .into_iter()
        .map(|(def, value, source)| {
            let mut synonyms = Vec::new();
            if source == ConfigSource::Topic {
                synonyms.push((def.name.to_string(), value.clone(), source.code()));
            }
            if let Some(v) = dynamic.get(def.broker_name) {
                synonyms.push((
                    def.broker_name.to_string(),
                    v.clone(),
                    SOURCE_DYNAMIC_DEFAULT_BROKER,
                ));
            }
            if let Some(v) = static_.get(def.broker_name) {
                synonyms.push((def.broker_name.to_string(), v.clone(), SOURCE_STATIC_BROKER));
            }
            synonyms.push((
                def.broker_name.to_string(),
                def.default.to_string(),
                SOURCE_DEFAULT,
            ));
            Described {
                name: def.name.to_string(),
                value,
                source: source.code(),
                config_type: def.kind.config_type(),
                doc: def.doc,
                read_only: false,
                sensitive: false,
                synonyms,
            }
        })
        .collect())
}

fn group_configs(broker: &Broker, group: &str) -> Result<Vec<Described>, (ResponseError, String)> {
    if group.is_empty() {
        return Err((
            ResponseError::InvalidRequest,
            "Group name must not be empty".to_string(),
        ));
    }
    let metadata = broker.node().metadata();
    let config = broker.config();
    Ok(group_config::described(
        metadata.group_configs.get(group),
        &config.group_configs,
        &config.properties,
    )
    .into_iter()
    .map(|described| Described {
        name: described.def.name.to_string(),
        value: described.value,
        source: described.source,
        config_type: described.def.config_type(),
        doc: described.def.doc,
        read_only: false,
        sensitive: false,
        synonyms: described.synonyms,
    })
    .collect())
}

fn broker_configs(broker: &Broker, name: &str) -> Result<Vec<Described>, (ResponseError, String)> {
    let node_id = broker.config().node_id.to_string();
    if !name.is_empty() && name != node_id {
        return Err((
            ResponseError::InvalidRequest,
            format!("unexpected broker id {name:?}: this is broker {node_id}"),
        ));
    }
    let dynamic = broker.topics().dynamic_broker_configs();
    let static_ = &broker.config().properties;
    let mut defaults: BTreeMap<String, String> = BROKER_PROPERTIES
        .iter()
        .filter_map(|def| Some((def.name.to_string(), def.default?.to_string())))
        .collect();
    for def in TOPIC_CONFIGS {
        defaults.insert(def.broker_name.to_string(), def.default.to_string());
    }
    let mut names: Vec<String> = defaults.keys().cloned().collect();
    names.extend(static_.keys().cloned());
    names.extend(dynamic.keys().cloned());
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .map(|key| {
            let (value, source) = if let Some(v) = dynamic.get(&key) {
                (v.clone(), SOURCE_DYNAMIC_DEFAULT_BROKER)
            } else if let Some(v) = static_.get(&key) {
                (v.clone(), SOURCE_STATIC_BROKER)
            } else {
                (
                    defaults.get(&key).cloned().unwrap_or_default(),
                    SOURCE_DEFAULT,
                )
            };
            let def = find_by_broker_name(&key);
            Described {
                read_only: def.is_none(),
                sensitive: broker_properties::is_sensitive(&key),
                config_type: broker_properties::config_type(&key),
                doc: broker_properties::doc(&key),
                name: key,
                value,
                source,
                synonyms: Vec::new(),
            }
        })
        .collect())
}
