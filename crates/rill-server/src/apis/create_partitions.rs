//! CreatePartitions (with validate_only): grows a topic.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;
use crate::session::Session;

pub(crate) fn answer(
    broker: &Broker,
    create: CreatePartitionsRequest,
    session: &Session,
    version: i16,
) -> Result<Body, HandlerError> {
    let access = Access::new(broker, session);
    let results = create
        .topics
        .into_iter()
        .map(|topic| {
            let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
            if !access.allows(AclOperation::Alter, ResourceType::Topic, &topic.name) {
                let refused = kafka_protocol::ResponseError::TopicAuthorizationFailed;
                return result.with_error_code(refused.code());
            }
            match broker
                .topics()
                .create_partitions(&topic.name, topic.count, create.validate_only)
            {
                Ok(()) => result,
                Err(error) => result
                    .with_error_code(error_code::for_topic(&error).code())
                    .with_error_message(Some(StrBytes::from_string(error.to_string()))),
            }
        })
        .collect();
    encode(
        ApiKey::CreatePartitions,
        version,
        &CreatePartitionsResponse::default().with_results(results),
    )
}
