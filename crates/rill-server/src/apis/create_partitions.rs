//! CreatePartitions (with validate_only): grows a topic, the new
//! partitions placed as the client assigns them or as Kafka would.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, Request, encode, throttling_message};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;
use crate::quotas::Mutations;

pub(crate) fn answer(
    broker: &Broker,
    create: CreatePartitionsRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    let access = Access::new(broker, session);
    let mutations = Mutations::new(broker, request, 3);
    let results = create
        .topics
        .into_iter()
        .map(|topic| {
            let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
            if !access.allows(AclOperation::Alter, ResourceType::Topic, &topic.name) {
                let refused = kafka_protocol::ResponseError::TopicAuthorizationFailed;
                return result.with_error_code(refused.code());
            }
            if let Err(throttle_ms) = mutations.admit() {
                return result
                    .with_error_code(kafka_protocol::ResponseError::ThrottlingQuotaExceeded.code())
                    .with_error_message(Some(throttling_message(throttle_ms)));
            }
            let before = broker
                .node()
                .metadata()
                .topics
                .get(topic.name.as_str())
                .map_or(0, |t| t.partitions.len());
            let assignment = topic.assignments.as_ref().map(|assignments| {
                assignments
                    .iter()
                    .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            });
            match broker.topics().create_partitions(
                &topic.name,
                (topic.count, assignment),
                create.validate_only,
            ) {
                Ok(()) => {
                    if !create.validate_only {
                        mutations.record((topic.count.max(0) as usize).saturating_sub(before));
                    }
                    result
                }
                Err(error) => result
                    .with_error_code(error_code::for_topic(&error).code())
                    .with_error_message(Some(StrBytes::from_string(error.to_string()))),
            }
        })
        .collect();
    encode(
        ApiKey::CreatePartitions,
        version,
        &CreatePartitionsResponse::default()
            .with_results(results)
            .with_throttle_time_ms(mutations.throttle_ms()),
    )
}
