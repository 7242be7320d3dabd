//! The `authorized_operations` bit fields of Metadata, DescribeCluster and
//! DescribeGroups: one bit per Kafka ACL operation code (AclOperation)
//! the client may perform on a resource. With no authorizer configured
//! Kafka reports every operation the resource type has as allowed, and
//! so does Rill until it has an authorizer; a client that did not ask
//! gets `NOT_REQUESTED`.

/// The value of a field the client did not ask for (Kafka's
/// `Int32.MIN_VALUE`).
pub(crate) const NOT_REQUESTED: i32 = i32::MIN;

/// Kafka's AclOperation codes.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
enum AclOperation {
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
}

/// A resource whose operations a client can ask about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Resource {
    Topic,
    Group,
    Cluster,
}

impl Resource {
    /// The operations Kafka defines for the resource type
    /// (AclEntry.supportedOperations).
    fn operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            Resource::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            Resource::Group => &[Read, Describe, Delete],
            Resource::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
        }
    }
}

/// The field's value: the operations allowed on `resource` when
/// `requested`, else [`NOT_REQUESTED`].
pub(crate) fn authorized_operations(resource: Resource, requested: bool) -> i32 {
    if !requested {
        return NOT_REQUESTED;
    }
    resource
        .operations()
        .iter()
        .fold(0, |bits, operation| bits | 1 << *operation as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_of_the_type_is_allowed_without_an_authorizer() {
        // librdkafka's admin tests expect 8 for a topic and 7 for the cluster.
        let count = |r| authorized_operations(r, true).count_ones();
        assert_eq!(count(Resource::Topic), 8);
        assert_eq!(count(Resource::Cluster), 7);
        assert_eq!(count(Resource::Group), 3);
        // READ (3) and WRITE (4) of a topic.
        assert_eq!(
            authorized_operations(Resource::Topic, true) & 0b11000,
            0b11000
        );
        assert_eq!(authorized_operations(Resource::Topic, false), i32::MIN);
    }
}
