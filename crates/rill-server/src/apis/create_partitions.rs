//! CreatePartitions (with validate_only): grows a topic.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, encode};
use crate::broker::Broker;
use crate::error_code;

pub(crate) fn answer(
    broker: &Broker,
    create: CreatePartitionsRequest,
    version: i16,
) -> Result<Body, HandlerError> {
    let results = create
        .topics
        .into_iter()
        .map(|topic| {
            let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
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
