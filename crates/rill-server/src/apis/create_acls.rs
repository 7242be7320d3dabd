//! CreateAcls: ACLs added through the metadata quorum, one result per
//! creation in request order. Kafka's rules: no authorizer is
//! SECURITY_DISABLED; ALTER on the cluster is needed
//! (CLUSTER_AUTHORIZATION_FAILED for every creation otherwise); an
//! invalid binding (an ANY or UNKNOWN field, an empty name, a principal
//! not `Type:name`) is INVALID_REQUEST alone while the others are stored;
//! one that exists already counts as created.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{ApiKey, CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::{AclBinding, AclOperation, AclPermissionType, Applied, Command, PatternType};

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, ResourceType};
use crate::broker::Broker;
use crate::error_code;

pub(crate) fn answer(
    broker: &Broker,
    create: CreateAclsRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    let every = |error: ResponseError, message: &str| {
        create
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message.to_string())))
            })
            .collect::<Vec<_>>()
    };
    let access = Access::new(broker, session);
    let results = if let Some((error, message)) = access.acl_request_refusal(AclOperation::Alter) {
        every(error, message)
    } else {
        let bindings: Vec<AclBinding> = create
            .creations
            .iter()
            .map(|c| AclBinding {
                resource_type: ResourceType::from_code(c.resource_type),
                resource_name: c.resource_name.to_string(),
                pattern_type: PatternType::from_code(c.resource_pattern_type),
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: AclOperation::from_code(c.operation),
                permission: AclPermissionType::from_code(c.permission_type),
            })
            .collect();
        let proposed = tokio::runtime::Handle::current()
            .block_on(broker.node().propose(Command::CreateAcls { bindings }));
        match proposed {
            Ok(Applied::AclsCreated { results }) => results
                .into_iter()
                .map(|result| match result {
                    Ok(()) => AclCreationResult::default(),
                    Err(invalid) => AclCreationResult::default()
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_string(invalid.to_string()))),
                })
                .collect(),
            Ok(other) => {
                tracing::error!(?other, "CreateAcls applied as something else");
                every(ResponseError::UnknownServerError, "unexpected outcome")
            }
            Err(error) => every(error_code::for_proposal(&error), &error.to_string()),
        }
    };
    encode(
        ApiKey::CreateAcls,
        version,
        &CreateAclsResponse::default().with_results(results),
    )
}
