//! AlterConfigs (the legacy, non-incremental API that librdkafka's admin
//! client uses): the given configs replace every override the topic (or
//! the broker, or the group) had.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey};
use kafka_protocol::protocol::StrBytes;

use super::incremental_alter_configs::replace_configs;
use super::{Body, HandlerError, Request, encode};
use crate::authorizer::Access;
use crate::broker::Broker;

pub(crate) fn answer(
    broker: &Broker,
    alter: AlterConfigsRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    let access = Access::new(broker, session);
    let responses: Vec<AlterConfigsResourceResponse> = alter
        .resources
        .into_iter()
        .map(|resource| {
            let given: BTreeMap<String, String> = resource
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            let names: Vec<&str> = resource.configs.iter().map(|c| c.name.as_str()).collect();
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match replace_configs(
                (broker, &access),
                resource.resource_type,
                resource.resource_name.as_str(),
                &names,
                |_| Ok(given),
                alter.validate_only,
            ) {
                Ok(()) => response,
                Err((error, message)) => response
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    encode(
        ApiKey::AlterConfigs,
        version,
        &AlterConfigsResponse::default().with_responses(responses),
    )
}
