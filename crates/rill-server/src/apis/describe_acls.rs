//! DescribeAcls: the ACLs a filter selects, grouped by resource pattern.
//! Kafka's rules: no authorizer is SECURITY_DISABLED; DESCRIBE on the
//! cluster is needed (CLUSTER_AUTHORIZATION_FAILED); a filter with an
//! UNKNOWN field is INVALID_REQUEST.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{ApiKey, DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::{
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, PatternType,
    ResourcePatternFilter,
};

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, ResourceType};
use crate::broker::Broker;

/// A DescribeAcls or DeleteAcls filter, from its wire fields (the same in
/// both requests).
pub(super) fn filter(
    (resource_type, name, pattern_type): (i8, Option<&StrBytes>, i8),
    (principal, host): (Option<&StrBytes>, Option<&StrBytes>),
    (operation, permission): (i8, i8),
) -> AclBindingFilter {
    AclBindingFilter {
        pattern: ResourcePatternFilter {
            resource_type: ResourceType::from_code(resource_type),
            name: name.map(ToString::to_string),
            pattern_type: PatternType::from_code(pattern_type),
        },
        principal: principal.map(ToString::to_string),
        host: host.map(ToString::to_string),
        operation: AclOperation::from_code(operation),
        permission: AclPermissionType::from_code(permission),
    }
}

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let describe: DescribeAclsRequest = request.decode()?;
    let refuse = |error: ResponseError, message: String| {
        encode(
            ApiKey::DescribeAcls,
            version,
            &DescribeAclsResponse::default()
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        )
    };
    let access = Access::new(broker, &request.session);
    if let Some((error, message)) = access.acl_request_refusal(AclOperation::Describe) {
        return refuse(error, message.into());
    }
    let wanted = filter(
        (
            describe.resource_type_filter,
            describe.resource_name_filter.as_ref(),
            describe.pattern_type_filter,
        ),
        (
            describe.principal_filter.as_ref(),
            describe.host_filter.as_ref(),
        ),
        (describe.operation, describe.permission_type),
    );
    if let Err(invalid) = wanted.validate() {
        return refuse(ResponseError::InvalidRequest, invalid.to_string());
    }
    let metadata = broker.node().metadata();
    // Sorted by resource pattern, so each pattern's ACLs are together.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in metadata.acls.describe(&wanted) {
        let same = resources.last().is_some_and(|r| {
            r.resource_type == acl.resource_type.code()
                && r.pattern_type == acl.pattern_type.code()
                && r.resource_name.as_str() == acl.resource_name
        });
        if !same {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl.resource_type.code())
                    .with_resource_name(StrBytes::from_string(acl.resource_name.clone()))
                    .with_pattern_type(acl.pattern_type.code()),
            );
        }
        if let Some(resource) = resources.last_mut() {
            resource.acls.push(description(&acl));
        }
    }
    encode(
        ApiKey::DescribeAcls,
        version,
        &DescribeAclsResponse::default().with_resources(resources),
    )
}

fn description(acl: &AclBinding) -> AclDescription {
    AclDescription::default()
        .with_principal(StrBytes::from_string(acl.principal.clone()))
        .with_host(StrBytes::from_string(acl.host.clone()))
        .with_operation(acl.operation.code())
        .with_permission_type(acl.permission.code())
}
