//! Every Kafka API Rill answers, declared once. Each entry names the API,
//! the versions Rill implements, the request type its handler decodes,
//! how the handler runs, what Kafka's authorizer checks for it, and where
//! it is answered. From the table come: the [`Api`] enum (so dispatch is
//! an exhaustive match — a missing handler does not compile), ApiVersions'
//! answer ([`TABLE`]), the dispatch ([`dispatch`]) and the fuzz decoder
//! ([`decode_body`]).
//!
//! Adding an API is one entry here and one handler module beside this
//! file.
//!
//! How a handler runs (the `run` of an entry):
//! - `ready(f)`: `f(broker, &request)` answers at once, on the reactor;
//! - `pending(f)`: `f(broker, &request)` does the in-order part and
//!   returns the rest as a future (appends, then their acknowledgement);
//! - `long_poll(f)`: as `pending`, and the future is told of shutdown;
//! - `blocking(f)`: the request is decoded, then `f(broker, decoded,
//!   &request)` runs on the blocking pool (it touches files or waits for
//!   the metadata quorum).

use std::sync::Arc;

use kafka_protocol::messages::*;

use super::*;
use crate::authorizer::AclOperation::{
    Alter, AlterConfigs, ClusterAction, Create, Delete, Describe, DescribeConfigs, IdempotentWrite,
    Read, Write,
};
use crate::authorizer::ResourceType::{Cluster, Group, Topic, TransactionalId};
use crate::authorizer::{AclOperation, ResourceType};
use crate::broker::Broker;
use crate::shutdown::Shutdown;

/// Where a request is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// By the broker that receives it, from its own state.
    Broker,
    /// It changes the cluster metadata: proposed to the metadata quorum
    /// (Kafka forwards these to the active controller).
    Controller,
}

/// One API's entry in the table.
#[derive(Debug)]
pub(crate) struct ApiEntry {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
    /// What Kafka's authorizer checks (KafkaApis): each (operation,
    /// resource) applies to the part of the request naming such a
    /// resource — a topic's partitions, the group, the cluster. Several
    /// alternatives for one part (Kafka checks CREATE on the cluster,
    /// else on the topic) are all listed.
    // Each handler checks these itself (the errors and their place in the
    // response are each API's own); tests hold the table to Kafka's.
    #[cfg_attr(not(test), allow(dead_code))]
    pub acl: &'static [(AclOperation, ResourceType)],
    #[cfg_attr(not(test), allow(dead_code))]
    pub route: Route,
    /// Only meaningful with several nodes; a single node answers it as a
    /// one-node Kafka cluster does.
    #[cfg_attr(not(test), allow(dead_code))]
    pub multi_node: bool,
}

macro_rules! api_table {
    ($(
        $api:ident {
            versions: $min:literal ..= $max:literal,
            request: $request:ty,
            run: $run:ident($handler:path),
            acl: [$(($op:ident, $resource:ident)),* $(,)?],
            route: $route:ident,
            multi_node: $multi:literal $(,)?
        }
    )*) => {
        /// An API Rill implements: the table's rows, by Kafka's name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[allow(clippy::enum_variant_names)] // Kafka's names: Api::ApiVersions.
        pub(crate) enum Api {
            $($api,)*
        }

        /// The table, in Kafka's API key order as ApiVersions lists it.
        pub(crate) const TABLE: &[ApiEntry] = &[
            $(ApiEntry {
                key: ApiKey::$api,
                min_version: $min,
                max_version: $max,
                acl: &[$(($op, $resource)),*],
                route: Route::$route,
                multi_node: $multi,
            },)*
        ];

        impl Api {
            /// The API Rill implements under `key`, if any.
            pub(crate) fn of(key: ApiKey) -> Option<Api> {
                match key {
                    $(ApiKey::$api => Some(Api::$api),)*
                    _ => None,
                }
            }

            pub(crate) fn key(self) -> ApiKey {
                match self {
                    $(Api::$api => ApiKey::$api,)*
                }
            }

            /// Kafka's name for it (`Produce`, `ApiVersions`).
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Api::$api => stringify!($api),)*
                }
            }

            /// This API's row of the table.
            pub(crate) fn entry(self) -> &'static ApiEntry {
                match self {
                    $(Api::$api => &TABLE[Api::$api as usize],)*
                }
            }
        }

        /// Runs the request's in-order part and returns the rest.
        pub(crate) fn dispatch(broker: &Arc<Broker>, request: Request, shutdown: &Shutdown) -> Pending {
            match request.api {
                $(Api::$api => api_table!(@run $run, $handler, $request, broker, request, shutdown),)*
            }
        }

        /// Decodes the body into the type its handler decodes, answering
        /// nothing (the fuzz targets' view of a request).
        pub(crate) fn decode_body(request: &Request) -> Result<(), HandlerError> {
            match request.api {
                $(Api::$api => request.decode::<$request>().map(drop),)*
            }
        }
    };
    (@run ready, $handler:path, $request:ty, $broker:ident, $req:ident, $shutdown:ident) => {
        ready($handler($broker, &$req))
    };
    (@run pending, $handler:path, $request:ty, $broker:ident, $req:ident, $shutdown:ident) => {
        $handler($broker, &$req)
    };
    (@run long_poll, $handler:path, $request:ty, $broker:ident, $req:ident, $shutdown:ident) => {
        $handler($broker, &$req, $shutdown.clone())
    };
    (@run blocking, $handler:path, $request:ty, $broker:ident, $req:ident, $shutdown:ident) => {
        on_blocking_pool::<$request>($broker, $req, $handler)
    };
}

api_table! {
    Produce {
        versions: 3..=13,
        request: ProduceRequest,
        run: pending(produce::handle),
        acl: [(Write, Topic), (IdempotentWrite, Cluster), (Write, TransactionalId)],
        route: Broker,
        multi_node: false,
    }
    Fetch {
        versions: 4..=17,
        request: FetchRequest,
        run: long_poll(fetch::handle),
        // READ for consumers; CLUSTER_ACTION for a follower's fetch.
        acl: [(Read, Topic), (ClusterAction, Cluster)],
        route: Broker,
        multi_node: false,
    }
    ListOffsets {
        versions: 1..=10,
        request: ListOffsetsRequest,
        run: ready(list_offsets::answer),
        acl: [(Describe, Topic)],
        route: Broker,
        multi_node: false,
    }
    Metadata {
        versions: 0..=13,
        request: MetadataRequest,
        run: ready(metadata::answer),
        // DESCRIBE filters the topics listed; CREATE allows auto-creation.
        acl: [(Describe, Topic), (Create, Cluster), (Create, Topic)],
        route: Broker,
        multi_node: false,
    }
    OffsetCommit {
        versions: 2..=9,
        request: OffsetCommitRequest,
        run: pending(offset_commit::handle),
        acl: [(Read, Group), (Read, Topic)],
        route: Broker,
        multi_node: false,
    }
    OffsetFetch {
        versions: 1..=9,
        request: OffsetFetchRequest,
        run: ready(offset_fetch::answer),
        acl: [(Describe, Group), (Describe, Topic)],
        route: Broker,
        multi_node: false,
    }
    FindCoordinator {
        versions: 0..=6,
        request: FindCoordinatorRequest,
        run: ready(find_coordinator::answer),
        acl: [(Describe, Group), (Describe, TransactionalId)],
        route: Broker,
        multi_node: false,
    }
    JoinGroup {
        versions: 0..=9,
        request: JoinGroupRequest,
        run: pending(join_group::handle),
        acl: [(Read, Group)],
        route: Broker,
        multi_node: false,
    }
    Heartbeat {
        versions: 0..=4,
        request: HeartbeatRequest,
        run: ready(heartbeat::answer),
        acl: [(Read, Group)],
        route: Broker,
        multi_node: false,
    }
    LeaveGroup {
        versions: 0..=5,
        request: LeaveGroupRequest,
        run: ready(leave_group::answer),
        acl: [(Read, Group)],
        route: Broker,
        multi_node: false,
    }
    SyncGroup {
        versions: 0..=5,
        request: SyncGroupRequest,
        run: pending(sync_group::handle),
        acl: [(Read, Group)],
        route: Broker,
        multi_node: false,
    }
    DescribeGroups {
        versions: 0..=6,
        request: DescribeGroupsRequest,
        run: ready(describe_groups::answer),
        acl: [(Describe, Group)],
        route: Broker,
        multi_node: false,
    }
    ListGroups {
        versions: 0..=5,
        request: ListGroupsRequest,
        run: ready(list_groups::answer),
        // DESCRIBE on the cluster lists every group; else those the
        // principal may describe.
        acl: [(Describe, Cluster), (Describe, Group)],
        route: Broker,
        multi_node: false,
    }
    // The exchange is the connection's (security/authenticator.rs); these
    // handlers answer outside one. v0 (raw tokens after the handshake) is
    // not offered: every client in use speaks v1.
    SaslHandshake {
        versions: 1..=1,
        request: SaslHandshakeRequest,
        run: ready(sasl_handshake::answer),
        acl: [],
        route: Broker,
        multi_node: false,
    }
    ApiVersions {
        versions: 0..=4,
        request: ApiVersionsRequest,
        run: ready(api_versions::answer),
        acl: [],
        route: Broker,
        multi_node: false,
    }
    CreateTopics {
        versions: 2..=7,
        request: CreateTopicsRequest,
        run: blocking(create_topics::answer),
        acl: [(Create, Cluster), (Create, Topic), (DescribeConfigs, Topic)],
        route: Controller,
        multi_node: false,
    }
    DeleteTopics {
        versions: 1..=6,
        request: DeleteTopicsRequest,
        run: blocking(delete_topics::answer),
        acl: [(Delete, Topic), (Describe, Topic)],
        route: Controller,
        multi_node: false,
    }
    DeleteRecords {
        versions: 0..=2,
        request: DeleteRecordsRequest,
        run: blocking(delete_records::answer),
        acl: [(Delete, Topic)],
        route: Broker,
        multi_node: false,
    }
    InitProducerId {
        versions: 0..=5,
        request: InitProducerIdRequest,
        run: pending(init_producer_id::handle),
        acl: [(IdempotentWrite, Cluster), (Write, TransactionalId)],
        route: Broker,
        multi_node: false,
    }
    OffsetForLeaderEpoch {
        versions: 2..=4,
        request: OffsetForLeaderEpochRequest,
        run: ready(offset_for_leader_epoch::answer),
        // CLUSTER_ACTION for a follower; DESCRIBE for a client.
        acl: [(ClusterAction, Cluster), (Describe, Topic)],
        route: Broker,
        multi_node: false,
    }
    AddPartitionsToTxn {
        // v4+ only from brokers (KIP-890's verification).
        versions: 0..=5,
        request: AddPartitionsToTxnRequest,
        run: pending(add_partitions_to_txn::handle),
        acl: [(Write, TransactionalId), (Write, Topic), (ClusterAction, Cluster)],
        route: Broker,
        multi_node: false,
    }
    AddOffsetsToTxn {
        versions: 0..=3,
        request: AddOffsetsToTxnRequest,
        run: pending(add_offsets_to_txn::handle),
        acl: [(Write, TransactionalId), (Read, Group)],
        route: Broker,
        multi_node: false,
    }
    EndTxn {
        versions: 0..=4,
        request: EndTxnRequest,
        run: pending(end_txn::handle),
        acl: [(Write, TransactionalId)],
        route: Broker,
        multi_node: false,
    }
    // Between nodes: a transaction coordinator to a partition's leader.
    WriteTxnMarkers {
        versions: 1..=1,
        request: WriteTxnMarkersRequest,
        run: pending(write_txn_markers::handle),
        acl: [(ClusterAction, Cluster)],
        route: Broker,
        multi_node: false,
    }
    TxnOffsetCommit {
        versions: 0..=4,
        request: TxnOffsetCommitRequest,
        run: pending(txn_offset_commit::handle),
        acl: [(Write, TransactionalId), (Read, Group), (Read, Topic)],
        route: Broker,
        multi_node: false,
    }
    DescribeAcls {
        versions: 1..=3,
        request: DescribeAclsRequest,
        run: ready(describe_acls::answer),
        acl: [(Describe, Cluster)],
        route: Broker,
        multi_node: false,
    }
    CreateAcls {
        versions: 1..=3,
        request: CreateAclsRequest,
        run: blocking(create_acls::answer),
        acl: [(Alter, Cluster)],
        route: Controller,
        multi_node: false,
    }
    DeleteAcls {
        versions: 1..=3,
        request: DeleteAclsRequest,
        run: blocking(delete_acls::answer),
        acl: [(Alter, Cluster)],
        route: Controller,
        multi_node: false,
    }
    DescribeConfigs {
        versions: 1..=4,
        request: DescribeConfigsRequest,
        run: ready(describe_configs::answer),
        acl: [
            (DescribeConfigs, Topic),
            (DescribeConfigs, Cluster),
            (DescribeConfigs, Group),
        ],
        route: Broker,
        multi_node: false,
    }
    AlterConfigs {
        versions: 0..=2,
        request: AlterConfigsRequest,
        run: blocking(alter_configs::answer),
        acl: [
            (AlterConfigs, Topic),
            (AlterConfigs, Cluster),
            (AlterConfigs, Group),
        ],
        route: Controller,
        multi_node: false,
    }
    DescribeLogDirs {
        versions: 1..=4,
        request: DescribeLogDirsRequest,
        run: blocking(describe_log_dirs::answer),
        acl: [(Describe, Cluster)],
        route: Broker,
        multi_node: false,
    }
    SaslAuthenticate {
        versions: 0..=2,
        request: SaslAuthenticateRequest,
        run: ready(sasl_authenticate::answer),
        acl: [],
        route: Broker,
        multi_node: false,
    }
    CreatePartitions {
        versions: 0..=3,
        request: CreatePartitionsRequest,
        run: blocking(create_partitions::answer),
        acl: [(Alter, Topic)],
        route: Controller,
        multi_node: false,
    }
    DeleteGroups {
        versions: 0..=2,
        request: DeleteGroupsRequest,
        run: pending(delete_groups::handle),
        acl: [(Delete, Group)],
        route: Broker,
        multi_node: false,
    }
    ElectLeaders {
        versions: 0..=2,
        request: ElectLeadersRequest,
        run: blocking(elect_leaders::answer),
        acl: [(Alter, Cluster)],
        route: Controller,
        multi_node: true,
    }
    IncrementalAlterConfigs {
        versions: 0..=1,
        request: IncrementalAlterConfigsRequest,
        run: blocking(incremental_alter_configs::answer),
        acl: [
            (AlterConfigs, Topic),
            (AlterConfigs, Cluster),
            (AlterConfigs, Group),
        ],
        route: Controller,
        multi_node: false,
    }
    AlterPartitionReassignments {
        versions: 0..=1,
        request: AlterPartitionReassignmentsRequest,
        run: blocking(alter_partition_reassignments::answer),
        acl: [(Alter, Cluster)],
        route: Controller,
        multi_node: true,
    }
    ListPartitionReassignments {
        versions: 0..=0,
        request: ListPartitionReassignmentsRequest,
        run: ready(list_partition_reassignments::answer),
        acl: [(Describe, Cluster)],
        route: Broker,
        multi_node: false,
    }
    OffsetDelete {
        versions: 0..=0,
        request: OffsetDeleteRequest,
        run: pending(offset_delete::handle),
        acl: [(Delete, Group), (Read, Topic)],
        route: Broker,
        multi_node: false,
    }
    DescribeClientQuotas {
        versions: 0..=1,
        request: DescribeClientQuotasRequest,
        run: ready(describe_client_quotas::answer),
        acl: [(DescribeConfigs, Cluster)],
        route: Broker,
        multi_node: false,
    }
    AlterClientQuotas {
        versions: 0..=1,
        request: AlterClientQuotasRequest,
        run: blocking(alter_client_quotas::answer),
        acl: [(AlterConfigs, Cluster)],
        route: Controller,
        multi_node: false,
    }
    DescribeUserScramCredentials {
        versions: 0..=0,
        request: DescribeUserScramCredentialsRequest,
        run: ready(describe_user_scram_credentials::answer),
        acl: [(Describe, Cluster)],
        route: Broker,
        multi_node: false,
    }
    AlterUserScramCredentials {
        versions: 0..=0,
        request: AlterUserScramCredentialsRequest,
        run: blocking(alter_user_scram_credentials::answer),
        acl: [(Alter, Cluster)],
        route: Controller,
        multi_node: false,
    }
    DescribeQuorum {
        versions: 0..=2,
        request: DescribeQuorumRequest,
        run: blocking(describe_quorum::answer),
        acl: [(Describe, Cluster)],
        route: Broker,
        multi_node: false,
    }
    DescribeCluster {
        versions: 0..=2,
        request: DescribeClusterRequest,
        run: ready(describe_cluster::answer),
        acl: [(Describe, Cluster)],
        route: Broker,
        multi_node: false,
    }
    DescribeProducers {
        versions: 0..=0,
        request: DescribeProducersRequest,
        run: ready(describe_producers::answer),
        acl: [(Read, Topic)],
        route: Broker,
        multi_node: false,
    }
    DescribeTransactions {
        versions: 0..=0,
        request: DescribeTransactionsRequest,
        run: ready(describe_transactions::answer),
        acl: [(Describe, TransactionalId), (Describe, Topic)],
        route: Broker,
        multi_node: false,
    }
    ListTransactions {
        versions: 0..=1,
        request: ListTransactionsRequest,
        run: ready(list_transactions::answer),
        acl: [(Describe, TransactionalId)],
        route: Broker,
        multi_node: false,
    }
    ConsumerGroupHeartbeat {
        versions: 0..=1,
        request: ConsumerGroupHeartbeatRequest,
        run: pending(consumer_group_heartbeat::handle),
        acl: [(Read, Group), (Describe, Topic)],
        route: Broker,
        multi_node: false,
    }
    ConsumerGroupDescribe {
        versions: 0..=1,
        request: ConsumerGroupDescribeRequest,
        run: ready(consumer_group_describe::answer),
        acl: [(Describe, Group)],
        route: Broker,
        multi_node: false,
    }
    ListConfigResources {
        versions: 0..=1,
        request: ListConfigResourcesRequest,
        run: ready(list_config_resources::answer),
        acl: [(DescribeConfigs, Cluster)],
        route: Broker,
        multi_node: false,
    }
    DescribeTopicPartitions {
        versions: 0..=0,
        request: DescribeTopicPartitionsRequest,
        run: ready(describe_topic_partitions::answer),
        acl: [(Describe, Topic)],
        route: Broker,
        multi_node: false,
    }
    ShareGroupHeartbeat {
        versions: 1..=1,
        request: ShareGroupHeartbeatRequest,
        run: ready(share_group_heartbeat::answer),
        acl: [(Read, Group), (Describe, Topic)],
        route: Broker,
        multi_node: false,
    }
    ShareGroupDescribe {
        versions: 1..=1,
        request: ShareGroupDescribeRequest,
        run: ready(share_group_describe::answer),
        acl: [(Describe, Group)],
        route: Broker,
        multi_node: false,
    }
    ShareFetch {
        versions: 1..=1,
        request: ShareFetchRequest,
        run: long_poll(share_fetch::handle),
        acl: [(Read, Group), (Read, Topic)],
        route: Broker,
        multi_node: false,
    }
    ShareAcknowledge {
        versions: 1..=1,
        request: ShareAcknowledgeRequest,
        run: pending(share_acknowledge::handle),
        acl: [(Read, Group), (Read, Topic)],
        route: Broker,
        multi_node: false,
    }
    ReadShareGroupState {
        versions: 0..=0,
        request: ReadShareGroupStateRequest,
        run: pending(read_share_group_state::handle),
        acl: [(ClusterAction, Cluster)],
        route: Broker,
        multi_node: false,
    }
    WriteShareGroupState {
        versions: 0..=0,
        request: WriteShareGroupStateRequest,
        run: pending(write_share_group_state::handle),
        acl: [(ClusterAction, Cluster)],
        route: Broker,
        multi_node: false,
    }
    DescribeShareGroupOffsets {
        versions: 0..=0,
        request: DescribeShareGroupOffsetsRequest,
        run: pending(describe_share_group_offsets::handle),
        acl: [(Describe, Group), (Describe, Topic)],
        route: Broker,
        multi_node: false,
    }
    AlterShareGroupOffsets {
        versions: 0..=0,
        request: AlterShareGroupOffsetsRequest,
        run: pending(alter_share_group_offsets::handle),
        acl: [(Read, Group), (Read, Topic)],
        route: Broker,
        multi_node: false,
    }
    DeleteShareGroupOffsets {
        versions: 0..=0,
        request: DeleteShareGroupOffsetsRequest,
        run: pending(delete_share_group_offsets::handle),
        acl: [(Delete, Group), (Read, Topic)],
        route: Broker,
        multi_node: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_is_its_own_entry_and_keys_are_unique_and_ordered() {
        for (index, entry) in TABLE.iter().enumerate() {
            let api = Api::of(entry.key).unwrap();
            assert_eq!(api as usize, index);
            assert_eq!(api.entry().key, entry.key);
            assert_eq!(api.key(), entry.key);
            assert!(entry.min_version <= entry.max_version);
        }
        assert!(
            TABLE
                .windows(2)
                .all(|w| (w[0].key as i16) < (w[1].key as i16)),
            "rows in API key order"
        );
    }

    #[test]
    fn every_api_but_api_versions_names_what_the_authorizer_checks() {
        for entry in TABLE {
            // Kafka authorizes none of these: they come before anyone
            // is known.
            let unauthorized = [
                ApiKey::ApiVersions,
                ApiKey::SaslHandshake,
                ApiKey::SaslAuthenticate,
            ];
            assert_eq!(
                entry.acl.is_empty(),
                unauthorized.contains(&entry.key),
                "{:?}",
                entry.key
            );
        }
        // Metadata changes go through the quorum; multi-node APIs do too.
        for entry in TABLE.iter().filter(|e| e.multi_node) {
            assert_eq!(entry.route, Route::Controller, "{:?}", entry.key);
        }
    }

    #[test]
    fn the_compatibility_table_lists_every_api_at_its_versions() {
        let doc = include_str!("../../../../docs/compatibility.md");
        for entry in TABLE {
            let versions = if entry.min_version == entry.max_version {
                entry.min_version.to_string()
            } else {
                format!("{}–{}", entry.min_version, entry.max_version)
            };
            let row = format!("| {:?} | {} | {versions} |", entry.key, entry.key as i16);
            assert!(doc.contains(&row), "docs/compatibility.md lacks {row}");
        }
    }
}
