//! CreateTopics (with validate_only): partitions and configs by Kafka's
//! names; replication factor 1 (or -1, the default) on a single broker.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, Request, encode, throttling_message};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;
use crate::quotas::Mutations;
use crate::topic_config;
use crate::topics::NewTopic;
use kafka_protocol::ResponseError;

pub(crate) fn answer(
    broker: &Broker,
    create: CreateTopicsRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    let access = Access::new(broker, session);
    let may_create_any = access.allows_cluster(AclOperation::Create);
    let mutations = Mutations::new(broker, request, 6);
    let mut created_any = false;
    let results: Vec<CreatableTopicResult> = create
        .topics
        .into_iter()
        .map(|topic| {
            let result = CreatableTopicResult::default().with_name(topic.name.clone());
            if !may_create_any
                && !access.allows(AclOperation::Create, ResourceType::Topic, &topic.name)
            {
                let refused = kafka_protocol::ResponseError::TopicAuthorizationFailed;
                return result.with_error_code(refused.code());
            }
            if let Err(throttle_ms) = mutations.admit() {
                return result
                    .with_error_code(ResponseError::ThrottlingQuotaExceeded.code())
                    .with_error_message(Some(throttling_message(throttle_ms)));
            }
            let configs: BTreeMap<String, String> = topic
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            let configs = topic_config::without_retired(configs);
            let assignment = (!topic.assignments.is_empty()).then(|| {
                topic
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| b.0).collect(),
                        )
                    })
                    .collect()
            });
            let new_topic = NewTopic {
                name: topic.name.to_string(),
                partitions: topic.num_partitions,
                replication_factor: topic.replication_factor,
                configs,
                assignment,
            };
            match broker.topics().create(&new_topic, create.validate_only) {
                Ok(created) => {
                    if !create.validate_only {
                        created_any = true;
                        mutations.record(created.partitions.max(0) as usize);
                    }
                    let mut result = result;
                    if version >= 5 {
                        result = result.with_num_partitions(created.partitions);
                        // The configs only for whom may describe them.
                        result = if access.allows(
                            AclOperation::DescribeConfigs,
                            ResourceType::Topic,
                            &new_topic.name,
                        ) {
                            result.with_configs(Some(describe_configs(
                                broker,
                                &new_topic.name,
                                &created.configs,
                            )))
                        } else {
                            result.with_topic_config_error_code(
                                kafka_protocol::ResponseError::TopicAuthorizationFailed.code(),
                            )
                        };
                    }
                    if version >= 7 {
                        result = result.with_topic_id(created.id);
                    }
                    result
                }
                Err(error) => result
                    .with_error_code(error_code::for_topic(&error).code())
                    .with_error_message(Some(StrBytes::from_string(error.to_string()))),
            }
        })
        .collect();
    // The new replicas exist here before the answer, made in one pass.
    let mut results = results;
    if created_any {
        broker.node().apply_metadata();
        let created: Vec<String> = results
            .iter()
            .filter(|r| r.error_code == 0)
            .map(|r| r.name.to_string())
            .collect();
        for (topic, refusal) in broker.topics().undo_unmade(&created) {
            if let Some(result) = results.iter_mut().find(|r| r.name.as_str() == topic) {
                *result = CreatableTopicResult::default()
                    .with_name(result.name.clone())
                    .with_error_code(ResponseError::KafkaStorageError.code())
                    .with_error_message(Some(StrBytes::from_string(refusal)));
            }
        }
    }
    encode(
        ApiKey::CreateTopics,
        version,
        &CreateTopicsResponse::default()
            .with_topics(results)
            .with_throttle_time_ms(mutations.throttle_ms()),
    )
}

/// The configs of a created topic, as CreateTopics v5+ returns them.
fn describe_configs(
    broker: &Broker,
    topic: &str,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    let effective = broker
        .topics()
        .configs_of(topic)
        .unwrap_or_else(|| broker.topics().configs_with(overrides));
    effective
        .into_iter()
        .map(|(def, value, source)| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(def.name))
                .with_value(Some(StrBytes::from_string(value)))
                .with_config_source(source.code())
        })
        .collect()
}
