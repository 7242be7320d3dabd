//! AlterClientQuotas (KIP-546): quotas set or removed per entity through
//! the metadata quorum, one result per entity in request order. Kafka's
//! rules: ALTER_CONFIGS on the cluster is needed
//! (CLUSTER_AUTHORIZATION_FAILED for every entity); an invalid entity, an
//! unknown key, a fractional byte rate or a key named twice is
//! INVALID_REQUEST for that entity alone; validate_only changes nothing.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::{Applied, Command, InvalidQuota, QuotaAlteration, QuotaValue};

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::error_code;

pub(crate) fn answer(
    broker: &Broker,
    alter: AlterClientQuotasRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    let alterations: Vec<QuotaAlteration> = alter
        .entries
        .iter()
        .map(|entry| QuotaAlteration {
            entity: entry
                .entity
                .iter()
                .map(|e| {
                    (
                        e.entity_type.to_string(),
                        e.entity_name.as_ref().map(ToString::to_string),
                    )
                })
                .collect(),
            ops: entry
                .ops
                .iter()
                .map(|op| {
                    (
                        op.key.to_string(),
                        (!op.remove).then_some(QuotaValue(op.value)),
                    )
                })
                .collect(),
        })
        .collect();
    let every = |error: ResponseError, message: &str| -> Vec<Result<(), (ResponseError, String)>> {
        alterations
            .iter()
            .map(|_| Err((error, message.to_string())))
            .collect()
    };
    let invalid = |e: InvalidQuota| (ResponseError::InvalidRequest, e.0);
    let results = if !Access::new(broker, session).allows_cluster(AclOperation::AlterConfigs) {
        every(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        )
    } else if alter.validate_only {
        let metadata = broker.node().metadata();
        // The same checks applying makes, on a copy.
        let mut quotas = metadata.client_quotas.clone();
        quotas
            .alter(&alterations)
            .into_iter()
            .map(|r| r.map_err(invalid))
            .collect()
    } else {
        let proposed = tokio::runtime::Handle::current().block_on(broker.node().propose(
            Command::AlterClientQuotas {
                alterations: alterations.clone(),
            },
        ));
        match proposed {
            Ok(Applied::ClientQuotasAltered { results }) => {
                results.into_iter().map(|r| r.map_err(invalid)).collect()
            }
            Ok(other) => {
                tracing::error!(?other, "AlterClientQuotas applied as something else");
                every(ResponseError::UnknownServerError, "unexpected outcome")
            }
            Err(error) => every(error_code::for_proposal(&error), &error.to_string()),
        }
    };
    let entries = alter
        .entries
        .iter()
        .zip(results)
        .map(|(entry, result)| {
            let entity = entry
                .entity
                .iter()
                .map(|e| {
                    EntityData::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect();
            let response = EntryData::default().with_entity(entity);
            match result {
                Ok(()) => response,
                Err((error, message)) => response
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    encode(
        ApiKey::AlterClientQuotas,
        version,
        &AlterClientQuotasResponse::default().with_entries(entries),
    )
}
