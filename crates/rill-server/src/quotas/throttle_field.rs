//! Where each response carries `throttle_time_ms`, so the connection can
//! give any response the request-time throttle without every handler
//! knowing of it. In Kafka's schemas it is the first field of the
//! response body from some version on (OffsetDelete: after its
//! error_code). Produce and Fetch set their own (their byte quotas are
//! decided by their handlers); ApiVersions and the SASL APIs are not
//! throttled.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use crate::apis::Body;

/// The byte offset of `throttle_time_ms` in `api`'s response body at
/// `version`, if it has one there.
fn offset(api: ApiKey, version: i16) -> Option<usize> {
    use ApiKey::*;
    let since = match api {
        // Set by their handlers, or not throttled.
        Produce | Fetch | ApiVersions | SaslHandshake | SaslAuthenticate => return None,
        // No throttle time in their schemas.
        DescribeQuorum | WriteTxnMarkers | ReadShareGroupState | WriteShareGroupState => {
            return None;
        }
        OffsetDelete => return Some(2),
        ListOffsets => 2,
        Metadata | OffsetCommit | OffsetFetch => 3,
        JoinGroup => 2,
        FindCoordinator | Heartbeat | LeaveGroup | SyncGroup | DescribeGroups | ListGroups => 1,
        _ => 0,
    };
    (version >= since).then_some(0)
}

/// Sets `throttle_ms` as the response's throttle time unless it carries
/// a longer one already (a mutation quota's), if it has the field.
pub(crate) fn set_throttle_time(api: ApiKey, version: i16, body: &mut Body, throttle_ms: u64) {
    let Some(offset) = offset(api, version) else {
        return;
    };
    let Some(first) = body.chunks.first() else {
        return;
    };
    let Some(&[a, b, c, d]) = first.get(offset..offset + 4) else {
        return;
    };
    let current = i32::from_be_bytes([a, b, c, d]);
    let throttle = i32::try_from(throttle_ms).unwrap_or(i32::MAX);
    if throttle <= current {
        return;
    }
    let mut patched = first.to_vec();
    patched[offset..offset + 4].copy_from_slice(&throttle.to_be_bytes());
    body.chunks[0] = Bytes::from(patched);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apis::{TABLE, encode};
    use kafka_protocol::messages::*;

    /// Encodes `response` (its throttle time set to a marker) at every
    /// version Rill answers and checks the table finds the marker.
    macro_rules! check {
        ($api:ident, $response:ty) => {{
            let entry = TABLE
                .iter()
                .find(|e| e.key == ApiKey::$api)
                .expect("in the table");
            for version in entry.min_version..=entry.max_version {
                let response = <$response>::default().with_throttle_time_ms(0x0102_0304);
                let mut body = encode(ApiKey::$api, version, &response).unwrap();
                let bytes = body.chunks[0].clone();
                match offset(ApiKey::$api, version) {
                    Some(at) => {
                        assert_eq!(
                            &bytes[at..at + 4],
                            &[1, 2, 3, 4],
                            "{:?} v{version}",
                            ApiKey::$api
                        );
                        set_throttle_time(ApiKey::$api, version, &mut body, 0x0506_0708);
                        assert_eq!(&body.chunks[0][at..at + 4], &[5, 6, 7, 8]);
                        set_throttle_time(ApiKey::$api, version, &mut body, 1);
                        assert_eq!(
                            &body.chunks[0][at..at + 4],
                            &[5, 6, 7, 8],
                            "a longer throttle stays"
                        );
                    }
                    None => {
                        set_throttle_time(ApiKey::$api, version, &mut body, 9);
                        assert_eq!(
                            body.chunks[0],
                            bytes,
                            "{:?} v{version} untouched",
                            ApiKey::$api
                        );
                    }
                }
            }
        }};
    }

    #[test]
    fn the_throttle_time_is_where_kafkas_schemas_put_it() {
        check!(ListOffsets, ListOffsetsResponse);
        check!(Metadata, MetadataResponse);
        check!(OffsetCommit, OffsetCommitResponse);
        check!(OffsetFetch, OffsetFetchResponse);
        check!(FindCoordinator, FindCoordinatorResponse);
        check!(JoinGroup, JoinGroupResponse);
        check!(Heartbeat, HeartbeatResponse);
        check!(LeaveGroup, LeaveGroupResponse);
        check!(SyncGroup, SyncGroupResponse);
        check!(DescribeGroups, DescribeGroupsResponse);
        check!(ListGroups, ListGroupsResponse);
        check!(CreateTopics, CreateTopicsResponse);
        check!(DeleteTopics, DeleteTopicsResponse);
        check!(DeleteRecords, DeleteRecordsResponse);
        check!(InitProducerId, InitProducerIdResponse);
        check!(AddPartitionsToTxn, AddPartitionsToTxnResponse);
        check!(AddOffsetsToTxn, AddOffsetsToTxnResponse);
        check!(EndTxn, EndTxnResponse);
        check!(TxnOffsetCommit, TxnOffsetCommitResponse);
        check!(DescribeProducers, DescribeProducersResponse);
        check!(DescribeTransactions, DescribeTransactionsResponse);
        check!(ListTransactions, ListTransactionsResponse);
        check!(OffsetForLeaderEpoch, OffsetForLeaderEpochResponse);
        check!(DescribeAcls, DescribeAclsResponse);
        check!(CreateAcls, CreateAclsResponse);
        check!(DeleteAcls, DeleteAclsResponse);
        check!(DescribeConfigs, DescribeConfigsResponse);
        check!(AlterConfigs, AlterConfigsResponse);
        check!(CreatePartitions, CreatePartitionsResponse);
        check!(DeleteGroups, DeleteGroupsResponse);
        check!(ElectLeaders, ElectLeadersResponse);
        check!(IncrementalAlterConfigs, IncrementalAlterConfigsResponse);
        check!(
            AlterPartitionReassignments,
            AlterPartitionReassignmentsResponse
        );
        check!(
            ListPartitionReassignments,
            ListPartitionReassignmentsResponse
        );
        check!(OffsetDelete, OffsetDeleteResponse);
        check!(
            DescribeUserScramCredentials,
            DescribeUserScramCredentialsResponse
        );
        check!(AlterUserScramCredentials, AlterUserScramCredentialsResponse);
        check!(DescribeCluster, DescribeClusterResponse);
        check!(DescribeClientQuotas, DescribeClientQuotasResponse);
        check!(AlterClientQuotas, AlterClientQuotasResponse);
        check!(DescribeLogDirs, DescribeLogDirsResponse);
        check!(ListConfigResources, ListConfigResourcesResponse);
        check!(ConsumerGroupHeartbeat, ConsumerGroupHeartbeatResponse);
        check!(ConsumerGroupDescribe, ConsumerGroupDescribeResponse);
        check!(DescribeTopicPartitions, DescribeTopicPartitionsResponse);
        check!(ShareGroupHeartbeat, ShareGroupHeartbeatResponse);
        check!(ShareGroupDescribe, ShareGroupDescribeResponse);
        check!(ShareFetch, ShareFetchResponse);
        check!(ShareAcknowledge, ShareAcknowledgeResponse);
        check!(DescribeShareGroupOffsets, DescribeShareGroupOffsetsResponse);
        check!(AlterShareGroupOffsets, AlterShareGroupOffsetsResponse);
        check!(DeleteShareGroupOffsets, DeleteShareGroupOffsetsResponse);
    }

    #[test]
    fn every_api_in_the_table_is_checked_or_sets_its_own() {
        let checked = 52;
        let own = [
            ApiKey::Produce,
            ApiKey::Fetch,
            ApiKey::ApiVersions,
            ApiKey::SaslHandshake,
            ApiKey::SaslAuthenticate,
            ApiKey::DescribeQuorum,
            ApiKey::WriteTxnMarkers,
            ApiKey::ReadShareGroupState,
            ApiKey::WriteShareGroupState,
        ];
        assert_eq!(
            TABLE.len(),
            checked + own.len(),
            "a new API needs a line above"
        );
    }
}
