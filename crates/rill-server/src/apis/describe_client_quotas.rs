//! DescribeClientQuotas (KIP-546): the quotas set for the entities a
//! filter matches, as the metadata holds them. Kafka's rules: DESCRIBE_CONFIGS
//! on the cluster is needed (CLUSTER_AUTHORIZATION_FAILED); a malformed
//! filter is INVALID_REQUEST, an unknown entity type UNSUPPORTED_VERSION.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{ApiKey, DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::{InvalidQuotaFilter, QuotaFilter};

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let describe: DescribeClientQuotasRequest = request.decode()?;
    let refuse = |error: ResponseError, message: String| {
        encode(
            ApiKey::DescribeClientQuotas,
            version,
            &DescribeClientQuotasResponse::default()
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        )
    };
    if !Access::new(broker, &request.session).allows_cluster(AclOperation::DescribeConfigs) {
        return refuse(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.".to_string(),
        );
    }
    let components: Vec<(String, i8, Option<String>)> = describe
        .components
        .iter()
        .map(|c| {
            (
                c.entity_type.to_string(),
                c.match_type,
                c._match.as_ref().map(ToString::to_string),
            )
        })
        .collect();
    let filter = match QuotaFilter::from_wire(&components, describe.strict) {
        Ok(filter) => filter,
        Err(error @ InvalidQuotaFilter::Invalid(_)) => {
            return refuse(ResponseError::InvalidRequest, error.to_string());
        }
        Err(error @ InvalidQuotaFilter::UnsupportedEntityType(_)) => {
            return refuse(ResponseError::UnsupportedVersion, error.to_string());
        }
    };
    let metadata = broker.node().metadata();
    let entries = metadata
        .client_quotas
        .describe(&filter)
        .into_iter()
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(
                    entity
                        .parts()
                        .into_iter()
                        .map(|(entity_type, name)| {
                            EntityData::default()
                                .with_entity_type(StrBytes::from_static_str(entity_type))
                                .with_entity_name(
                                    name.to_wire().map(|n| StrBytes::from_string(n.to_string())),
                                )
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .into_iter()
                        .map(|(key, value)| {
                            ValueData::default()
                                .with_key(StrBytes::from_static_str(key.name()))
                                .with_value(value)
                        })
                        .collect(),
                )
        })
        .collect();
    encode(
        ApiKey::DescribeClientQuotas,
        version,
        &DescribeClientQuotasResponse::default().with_entries(Some(entries)),
    )
}
