//! Who may do what: each request's session checked against the ACLs as
//! this broker has applied them from the metadata log, with Kafka's
//! StandardAuthorizer semantics (rill-cluster's `Acls::authorize`), when
//! `authorizer.class.name` names it; without an authorizer every request
//! is allowed, as in Kafka.
//!
//! A handler takes an [`Access`] for its request and asks it about each
//! resource the request names; what Kafka checks for each API is declared
//! in the API table (`apis/table.rs`). Decisions are cached per
//! connection and resource, and the cache is dropped whenever the ACLs
//! change, so a producer's stream of requests costs one hash lookup per
//! topic, whatever the number of ACLs.
//!
//! Also here: the operations each resource type has, and the
//! `authorized_operations` bit fields of Metadata, DescribeCluster and
//! DescribeGroups (one bit per operation the client may perform on a
//! resource; every operation of the type without an authorizer; a client
//! that did not ask gets `NOT_REQUESTED`).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rill_cluster::{CLUSTER_RESOURCE_NAME, ClusterMetadata};

use crate::broker::Broker;
use crate::session::Session;

/// The value of a field the client did not ask for (Kafka's
/// `Int32.MIN_VALUE`).
pub(crate) const NOT_REQUESTED: i32 = i32::MIN;

pub(crate) use rill_cluster::{AclOperation, ResourceType};

/// The operations Kafka defines for a resource type
/// (AclEntry.supportedOperations); none for the types Rill has no
/// resources of.
fn operations(resource: ResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match resource {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
        ResourceType::TransactionalId => &[Describe, Write],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::Unknown
        | ResourceType::Any
        | ResourceType::DelegationToken
        | ResourceType::User => &[],
    }
}

/// authorizer.class.name, super.users and allow.everyone.if.no.acl.found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `User:NAME`s that may do anything.
    pub super_users: Vec<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

/// Config resource types (DescribeConfigs' codes).
pub(crate) const CONFIG_RESOURCE_TOPIC: i8 = 2;
pub(crate) const CONFIG_RESOURCE_BROKER: i8 = 4;
pub(crate) const CONFIG_RESOURCE_GROUP: i8 = 32;

/// The most decisions a connection keeps; beyond them it starts afresh.
const DECISIONS_MAX: usize = 4096;

/// A connection's cached decisions, valid for one version of the ACLs.
#[derive(Debug, Default)]
pub(crate) struct Decisions(Mutex<CachedDecisions>);

#[derive(Debug, Default)]
struct CachedDecisions {
    acls_version: u64,
    count: usize,
    by_action: HashMap<(AclOperation, ResourceType), HashMap<Box<str>, bool>>,
}

/// What one request's session may do.
pub(crate) struct Access<'a> {
    session: &'a Session,
    /// `None` without an authorizer: everything is allowed.
    enforced: Option<(&'a AuthorizerConfig, Arc<ClusterMetadata>)>,
}

impl<'a> Access<'a> {
    pub(crate) fn new(broker: &'a Broker, session: &'a Session) -> Access<'a> {
        Access {
            session,
            enforced: broker
                .config()
                .authorizer
                .as_ref()
                .map(|config| (config, broker.node().metadata())),
        }
    }

    /// Whether ACLs are checked at all.
    pub(crate) fn enforced(&self) -> bool {
        self.enforced.is_some()
    }

    /// Whether the session may perform `operation` on the resource of
    /// `resource_type` named `name`.
    pub(crate) fn allows(
        &self,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let Some((config, metadata)) = &self.enforced else {
            return true;
        };
        let decide = || {
            metadata.acls.authorize(
                &self.session.principal,
                &self.session.host,
                operation,
                resource_type,
                name,
                &config.super_users,
                config.allow_everyone_if_no_acl_found,
            )
        };
        let mut cached = self.session.decisions.0.lock();
        if cached.acls_version != metadata.acls_version || cached.count >= DECISIONS_MAX {
            *cached = CachedDecisions {
                acls_version: metadata.acls_version,
                ..CachedDecisions::default()
            };
        }
        let by_name = cached
            .by_action
            .entry((operation, resource_type))
            .or_default();
        if let Some(&allowed) = by_name.get(name) {
            return allowed;
        }
        let allowed = decide();
        by_name.insert(name.into(), allowed);
        cached.count += 1;
        allowed
    }

    /// `Ok` if the session may perform `operation` on group `group_id`,
    /// else GROUP_AUTHORIZATION_FAILED.
    pub(crate) fn group(
        &self,
        operation: AclOperation,
        group_id: &str,
    ) -> Result<(), kafka_protocol::ResponseError> {
        if self.allows(operation, ResourceType::Group, group_id) {
            Ok(())
        } else {
            Err(kafka_protocol::ResponseError::GroupAuthorizationFailed)
        }
    }

    /// `Ok` if the session may perform `operation` (DESCRIBE_CONFIGS or
    /// ALTER_CONFIGS) on the configs of the resource of config resource
    /// type `resource_type` (DescribeConfigs' codes: a topic, a broker, a
    /// group) named `name`; else the error Kafka answers. Other resource
    /// types are left to the handler, which refuses them.
    pub(crate) fn configs(
        &self,
        operation: AclOperation,
        resource_type: i8,
        name: &str,
    ) -> Result<(), (kafka_protocol::ResponseError, String)> {
        use kafka_protocol::ResponseError::{
            ClusterAuthorizationFailed, GroupAuthorizationFailed, TopicAuthorizationFailed,
        };
        match resource_type {
            CONFIG_RESOURCE_TOPIC if !self.allows(operation, ResourceType::Topic, name) => Err((
                TopicAuthorizationFailed,
                format!("Topic authorization failed for {name}"),
            )),
            CONFIG_RESOURCE_BROKER if !self.allows_cluster(operation) => Err((
                ClusterAuthorizationFailed,
                "Cluster authorization failed.".to_string(),
            )),
            CONFIG_RESOURCE_GROUP if !self.allows(operation, ResourceType::Group, name) => Err((
                GroupAuthorizationFailed,
                format!("Group authorization failed for {name}"),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the session may perform `operation` on some resource of
    /// `resource_type` (Kafka's `authorizeByResourceType`, see
    /// `Acls::authorize_by_resource_type`). Scans the type's ACLs: for
    /// rare requests (InitProducerId).
    pub(crate) fn allows_some(&self, operation: AclOperation, resource_type: ResourceType) -> bool {
        let Some((config, metadata)) = &self.enforced else {
            return true;
        };
        metadata.acls.authorize_by_resource_type(
            (&self.session.principal, &self.session.host),
            operation,
            resource_type,
            &config.super_users,
            config.allow_everyone_if_no_acl_found,
        )
    }

    /// Why an ACL request needing `operation` on the cluster is refused
    /// (CreateAcls and DeleteAcls: ALTER; DescribeAcls: DESCRIBE), as
    /// Kafka answers: SECURITY_DISABLED without an authorizer, else
    /// CLUSTER_AUTHORIZATION_FAILED; `None` if it is not.
    pub(crate) fn acl_request_refusal(
        &self,
        operation: AclOperation,
    ) -> Option<(kafka_protocol::ResponseError, &'static str)> {
        use kafka_protocol::ResponseError::{ClusterAuthorizationFailed, SecurityDisabled};
        if !self.enforced() {
            Some((SecurityDisabled, "No Authorizer is configured."))
        } else if !self.allows_cluster(operation) {
            Some((ClusterAuthorizationFailed, "Cluster authorization failed."))
        } else {
            None
        }
    }

    /// Whether the session may perform `operation` on the cluster.
    pub(crate) fn allows_cluster(&self, operation: AclOperation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
    }

    /// The `authorized_operations` field for the resource of
    /// `resource_type` named `name`: the operations allowed on it when
    /// `requested`, else [`NOT_REQUESTED`].
    pub(crate) fn operations(
        &self,
        resource_type: ResourceType,
        name: &str,
        requested: bool,
    ) -> i32 {
        if !requested {
            return NOT_REQUESTED;
        }
        operations(resource_type)
            .iter()
            .filter(|&&operation| self.allows(operation, resource_type, name))
            .fold(0, |bits, operation| bits | 1 << operation.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_types_have_kafkas_operations() {
        // librdkafka's admin tests expect 8 for a topic and 7 for the
        // cluster without an authorizer.
        assert_eq!(operations(ResourceType::Topic).len(), 8);
        assert_eq!(operations(ResourceType::Cluster).len(), 7);
        // Kafka 4's (KIP-848 gave groups configs).
        assert_eq!(operations(ResourceType::Group).len(), 5);
    }
}
