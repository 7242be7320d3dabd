//! The operations each resource type has (Kafka's ACL vocabulary is the
//! quorum's: rill-cluster's `AclOperation` and `ResourceType`, which the
//! API table also names), and the `authorized_operations` bit fields of Metadata,
//! DescribeCluster and DescribeGroups: one bit per operation the client
//! may perform on a resource. With no authorizer configured Kafka reports
//! every operation the resource type has as allowed, and so does Rill
//! until it has an authorizer; a client that did not ask gets
//! `NOT_REQUESTED`.

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
        ResourceType::Group => &[Read, Describe, Delete],
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

/// The field's value: the operations allowed on `resource` when
/// `requested`, else [`NOT_REQUESTED`].
pub(crate) fn authorized_operations(resource: ResourceType, requested: bool) -> i32 {
    if !requested {
        return NOT_REQUESTED;
    }
    operations(resource)
        .iter()
        .fold(0, |bits, operation| bits | 1 << operation.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_of_the_type_is_allowed_without_an_authorizer() {
        // librdkafka's admin tests expect 8 for a topic and 7 for the cluster.
        let count = |r| authorized_operations(r, true).count_ones();
        assert_eq!(count(ResourceType::Topic), 8);
        assert_eq!(count(ResourceType::Cluster), 7);
        assert_eq!(count(ResourceType::Group), 3);
        // READ (3) and WRITE (4) of a topic.
        assert_eq!(
            authorized_operations(ResourceType::Topic, true) & 0b11000,
            0b11000
        );
        assert_eq!(authorized_operations(ResourceType::Topic, false), i32::MIN);
    }
}
