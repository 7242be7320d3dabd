//! DeleteTopics: by name, or by topic id (v6+).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{Body, HandlerError, Request, encode, throttling_message};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;
use crate::quotas::Mutations;

pub(crate) fn answer(
    broker: &Broker,
    delete: DeleteTopicsRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    let wanted: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
        delete
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        delete
            .topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let access = Access::new(broker, session);
    let mutations = Mutations::new(broker, request, 5);
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let resolved = match &name {
                Some(name) => Some(name.to_string()),
                None => broker.topics().name_by_id(id),
            };
            let mut result = DeletableTopicResult::default().with_name(name.clone());
            if version >= 6 {
                result = result.with_topic_id(id);
            }
            // A topic named by id that the principal may not describe is
            // as unknown as one that does not exist; one named by name is
            // refused before it is looked up.
            let may = |operation| {
                access.allows(
                    operation,
                    ResourceType::Topic,
                    resolved.as_deref().unwrap_or(""),
                )
            };
            let refused = ResponseError::TopicAuthorizationFailed.code();
            if name.is_some() && !may(AclOperation::Delete) {
                return result.with_error_code(refused);
            }
            let Some(resolved) = resolved.clone().filter(|_| may(AclOperation::Describe)) else {
                return result.with_error_code(ResponseError::UnknownTopicId.code());
            };
            if !may(AclOperation::Delete) {
                return result.with_error_code(refused);
            }
            if let Err(throttle_ms) = mutations.admit() {
                return result
                    .with_error_code(ResponseError::ThrottlingQuotaExceeded.code())
                    .with_error_message(Some(throttling_message(throttle_ms)));
            }
            let partitions = broker
                .node()
                .metadata()
                .topics
                .get(&resolved)
                .map_or(0, |t| t.partitions.len());
            match broker.topics().delete(&resolved) {
                Ok(removed) => {
                    mutations.record(partitions);
                    if version >= 6 {
                        result = result
                            .with_name(Some(TopicName(StrBytes::from_string(resolved))))
                            .with_topic_id(removed.id);
                    }
                    result
                }
                Err(error) => {
                    result = result.with_error_code(error_code::for_topic(&error).code());
                    if version >= 5 {
                        result = result
                            .with_error_message(Some(StrBytes::from_string(error.to_string())));
                    }
                    result
                }
            }
        })
        .collect();
    encode(
        ApiKey::DeleteTopics,
        version,
        &DeleteTopicsResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(mutations.throttle_ms()),
    )
}
