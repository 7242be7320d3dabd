//! DeleteAcls: every ACL any filter selects is removed through the
//! metadata quorum; each filter's result lists the ACLs it removed (an
//! ACL two filters select is in both). Kafka's rules: no authorizer is
//! SECURITY_DISABLED; ALTER on the cluster is needed
//! (CLUSTER_AUTHORIZATION_FAILED for every filter); a filter with an
//! UNKNOWN field is INVALID_REQUEST alone.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{ApiKey, DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::{AclOperation, Applied, Command};

use super::describe_acls::filter;
use super::{Body, HandlerError, Request, encode};
use crate::authorizer::Access;
use crate::broker::Broker;
use crate::error_code;

pub(crate) fn answer(
    broker: &Broker,
    delete: DeleteAclsRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    let every = |error: ResponseError, message: &str| {
        delete
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message.to_string())))
            })
            .collect::<Vec<_>>()
    };
    let access = Access::new(broker, session);
    let results = if let Some((error, message)) = access.acl_request_refusal(AclOperation::Alter) {
        every(error, message)
    } else {
        let filters = delete
            .filters
            .iter()
            .map(|f| {
                filter(
                    (
                        f.resource_type_filter,
                        f.resource_name_filter.as_ref(),
                        f.pattern_type_filter,
                    ),
                    (f.principal_filter.as_ref(), f.host_filter.as_ref()),
                    (f.operation, f.permission_type),
                )
            })
            .collect();
        let proposed = tokio::runtime::Handle::current()
            .block_on(broker.node().propose(Command::DeleteAcls { filters }));
        match proposed {
            Ok(Applied::AclsDeleted { results }) => results
                .into_iter()
                .map(|result| match result {
                    Ok(removed) => DeleteAclsFilterResult::default().with_matching_acls(
                        removed
                            .into_iter()
                            .map(|acl| {
                                DeleteAclsMatchingAcl::default()
                                    .with_resource_type(acl.resource_type.code())
                                    .with_resource_name(StrBytes::from_string(acl.resource_name))
                                    .with_pattern_type(acl.pattern_type.code())
                                    .with_principal(StrBytes::from_string(acl.principal))
                                    .with_host(StrBytes::from_string(acl.host))
                                    .with_operation(acl.operation.code())
                                    .with_permission_type(acl.permission.code())
                            })
                            .collect(),
                    ),
                    Err(invalid) => DeleteAclsFilterResult::default()
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_string(invalid.to_string()))),
                })
                .collect(),
            Ok(other) => {
                tracing::error!(?other, "DeleteAcls applied as something else");
                every(ResponseError::UnknownServerError, "unexpected outcome")
            }
            Err(error) => every(error_code::for_proposal(&error), &error.to_string()),
        }
    };
    encode(
        ApiKey::DeleteAcls,
        version,
        &DeleteAclsResponse::default().with_filter_results(results),
    )
}
