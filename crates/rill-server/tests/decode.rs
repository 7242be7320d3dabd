//! Properties of the broker's request decode path (the one the fuzz
//! target `request_decode` drives, see fuzz/README.md): what a client
//! encodes at any supported API and version decodes back to the same
//! header, and no bytes at all — random, or a valid frame damaged — make
//! it panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribeProducersRequest,
    DescribeTopicPartitionsRequest, DescribeTransactionsRequest, EndTxnRequest,
    ListConfigResourcesRequest, ListTransactionsRequest, TxnOffsetCommitRequest,
    WriteTxnMarkersRequest,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterConfigsRequest, AlterPartitionReassignmentsRequest,
    AlterUserScramCredentialsRequest, ApiKey, ApiVersionsRequest, CreateAclsRequest,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteAclsRequest, DeleteGroupsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeAclsRequest, DescribeClientQuotasRequest,
    DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest, DescribeLogDirsRequest,
    DescribeQuorumRequest, DescribeUserScramCredentialsRequest, ElectLeadersRequest, FetchRequest,
    FindCoordinatorRequest, HeartbeatRequest, IncrementalAlterConfigsRequest,
    InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest,
    ListOffsetsRequest, ListPartitionReassignmentsRequest, MetadataRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest,
    RequestHeader, SaslAuthenticateRequest, SaslHandshakeRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest,
    DeleteShareGroupOffsetsRequest, DescribeShareGroupOffsetsRequest, ReadShareGroupStateRequest,
    ShareAcknowledgeRequest, ShareFetchRequest, ShareGroupDescribeRequest,
    ShareGroupHeartbeatRequest, WriteShareGroupStateRequest,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;
use rill_record::{BatchBuilder, NewRecord};
use rill_server::fuzzing::{Decoded, decode_request, supported_apis};

/// The body of a default request of `api` at `version`, as a client
/// encodes it.
fn default_body(api: ApiKey, version: i16) -> Vec<u8> {
    fn encode<T: Encodable + Default>(version: i16) -> Vec<u8> {
        let mut out = BytesMut::new();
        T::default().encode(&mut out, version).unwrap();
        out.to_vec()
    }
    match api {
        ApiKey::Produce => encode::<ProduceRequest>(version),
        ApiKey::Fetch => encode::<FetchRequest>(version),
        ApiKey::ListOffsets => encode::<ListOffsetsRequest>(version),
        ApiKey::Metadata => encode::<MetadataRequest>(version),
        ApiKey::ApiVersions => encode::<ApiVersionsRequest>(version),
        ApiKey::CreateTopics => encode::<CreateTopicsRequest>(version),
        ApiKey::DeleteTopics => encode::<DeleteTopicsRequest>(version),
        ApiKey::DeleteRecords => encode::<DeleteRecordsRequest>(version),
        ApiKey::InitProducerId => encode::<InitProducerIdRequest>(version),
        ApiKey::OffsetForLeaderEpoch => encode::<OffsetForLeaderEpochRequest>(version),
        ApiKey::DescribeConfigs => encode::<DescribeConfigsRequest>(version),
        ApiKey::CreatePartitions => encode::<CreatePartitionsRequest>(version),
        ApiKey::AlterConfigs => encode::<AlterConfigsRequest>(version),
        ApiKey::IncrementalAlterConfigs => encode::<IncrementalAlterConfigsRequest>(version),
        ApiKey::DescribeCluster => encode::<DescribeClusterRequest>(version),
        ApiKey::FindCoordinator => encode::<FindCoordinatorRequest>(version),
        ApiKey::JoinGroup => encode::<JoinGroupRequest>(version),
        ApiKey::SyncGroup => encode::<SyncGroupRequest>(version),
        ApiKey::Heartbeat => encode::<HeartbeatRequest>(version),
        ApiKey::LeaveGroup => encode::<LeaveGroupRequest>(version),
        ApiKey::OffsetCommit => encode::<OffsetCommitRequest>(version),
        ApiKey::OffsetFetch => encode::<OffsetFetchRequest>(version),
        ApiKey::ListGroups => encode::<ListGroupsRequest>(version),
        ApiKey::DescribeGroups => encode::<DescribeGroupsRequest>(version),
        ApiKey::DeleteGroups => encode::<DeleteGroupsRequest>(version),
        ApiKey::OffsetDelete => encode::<OffsetDeleteRequest>(version),
        ApiKey::ElectLeaders => encode::<ElectLeadersRequest>(version),
        ApiKey::AlterPartitionReassignments => {
            encode::<AlterPartitionReassignmentsRequest>(version)
        }
        ApiKey::ListPartitionReassignments => encode::<ListPartitionReassignmentsRequest>(version),
        ApiKey::SaslHandshake => encode::<SaslHandshakeRequest>(version),
        ApiKey::SaslAuthenticate => encode::<SaslAuthenticateRequest>(version),
        ApiKey::AlterUserScramCredentials => encode::<AlterUserScramCredentialsRequest>(version),
        ApiKey::DescribeUserScramCredentials => {
            encode::<DescribeUserScramCredentialsRequest>(version)
        }
        ApiKey::DescribeAcls => encode::<DescribeAclsRequest>(version),
        ApiKey::CreateAcls => encode::<CreateAclsRequest>(version),
        ApiKey::DeleteAcls => encode::<DeleteAclsRequest>(version),
        ApiKey::DescribeClientQuotas => encode::<DescribeClientQuotasRequest>(version),
        ApiKey::DescribeLogDirs => encode::<DescribeLogDirsRequest>(version),
        ApiKey::DescribeQuorum => encode::<DescribeQuorumRequest>(version),
        ApiKey::AlterClientQuotas => encode::<AlterClientQuotasRequest>(version),
        ApiKey::AddPartitionsToTxn => encode::<AddPartitionsToTxnRequest>(version),
        ApiKey::AddOffsetsToTxn => encode::<AddOffsetsToTxnRequest>(version),
        ApiKey::EndTxn => encode::<EndTxnRequest>(version),
        ApiKey::WriteTxnMarkers => encode::<WriteTxnMarkersRequest>(version),
        ApiKey::TxnOffsetCommit => encode::<TxnOffsetCommitRequest>(version),
        ApiKey::DescribeProducers => encode::<DescribeProducersRequest>(version),
        ApiKey::DescribeTransactions => encode::<DescribeTransactionsRequest>(version),
        ApiKey::ListTransactions => encode::<ListTransactionsRequest>(version),
        ApiKey::ListConfigResources => encode::<ListConfigResourcesRequest>(version),
        ApiKey::ConsumerGroupHeartbeat => encode::<ConsumerGroupHeartbeatRequest>(version),
        ApiKey::ConsumerGroupDescribe => encode::<ConsumerGroupDescribeRequest>(version),
        ApiKey::DescribeTopicPartitions => encode::<DescribeTopicPartitionsRequest>(version),
        ApiKey::ShareGroupHeartbeat => encode::<ShareGroupHeartbeatRequest>(version),
        ApiKey::ShareGroupDescribe => encode::<ShareGroupDescribeRequest>(version),
        ApiKey::ShareFetch => encode::<ShareFetchRequest>(version),
        ApiKey::ShareAcknowledge => encode::<ShareAcknowledgeRequest>(version),
        ApiKey::ReadShareGroupState => encode::<ReadShareGroupStateRequest>(version),
        ApiKey::WriteShareGroupState => encode::<WriteShareGroupStateRequest>(version),
        ApiKey::DescribeShareGroupOffsets => encode::<DescribeShareGroupOffsetsRequest>(version),
        ApiKey::AlterShareGroupOffsets => encode::<AlterShareGroupOffsetsRequest>(version),
        ApiKey::DeleteShareGroupOffsets => encode::<DeleteShareGroupOffsetsRequest>(version),
        other => panic!("{other:?} is supported but this test cannot encode it"),
    }
}

/// A frame body (after the length prefix): the header as a client
/// encodes it for `api` at `version`, then `body`.
fn frame(header: &RequestHeader, api: ApiKey, body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    header
        .encode(
            &mut out,
            api.request_header_version(header.request_api_version),
        )
        .unwrap();
    out.extend_from_slice(body);
    out.freeze()
}

/// Any supported API at any version it supports.
fn api_version() -> impl Strategy<Value = (ApiKey, i16)> {
    proptest::sample::select(supported_apis().to_vec())
        .prop_flat_map(|(api, min, max)| (Just(api), min..=max))
}

fn header(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<String>,
) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(StrBytes::from_string))
}

/// A valid frame of any supported API and version.
fn valid_frame() -> impl Strategy<Value = Bytes> {
    (api_version(), any::<i32>()).prop_map(|((api, version), correlation_id)| {
        let header = header(api, version, correlation_id, Some("prop".to_string()));
        frame(&header, api, &default_body(api, version))
    })
}

/// How a valid frame is damaged.
#[derive(Clone, Debug)]
enum Damage {
    /// Bytes overwritten from a position.
    Overwrite(prop::sample::Index, Vec<u8>),
    /// The frame cut short.
    Truncate(prop::sample::Index),
    /// Bytes appended.
    Extend(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    let bytes = || proptest::collection::vec(any::<u8>(), 1..16);
    prop_oneof![
        (any::<prop::sample::Index>(), bytes()).prop_map(|(at, b)| Damage::Overwrite(at, b)),
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
        bytes().prop_map(Damage::Extend),
    ]
}

fn damaged(frame: &[u8], damage: &Damage) -> Vec<u8> {
    let mut out = frame.to_vec();
    match damage {
        Damage::Overwrite(at, bytes) => {
            let at = at.index(out.len());
            for (i, b) in bytes.iter().enumerate() {
                if let Some(byte) = out.get_mut(at + i) {
                    *byte = *b;
                }
            }
        }
        Damage::Truncate(at) => out.truncate(at.index(out.len())),
        Damage::Extend(bytes) => out.extend_from_slice(bytes),
    }
    out
}

proptest! {
    #[test]
    fn valid_requests_decode_to_the_header_they_were_encoded_with(
        (api, version) in api_version(),
        correlation_id in any::<i32>(),
        client_id in proptest::option::of("[a-z0-9.-]{0,20}"),
    ) {
        let header = header(api, version, correlation_id, client_id.clone());
        let decoded = decode_request(frame(&header, api, &default_body(api, version)));
        let Ok(Decoded::Request { header: got, api: got_api, produce_records }) = decoded else {
            panic!("{api:?} v{version} did not decode: {decoded:?}");
        };
        prop_assert_eq!(got_api, api);
        prop_assert_eq!(got.request_api_key, api as i16);
        prop_assert_eq!(got.request_api_version, version);
        prop_assert_eq!(got.correlation_id, correlation_id);
        if api.request_header_version(version) >= 1 {
            prop_assert_eq!(got.client_id.map(|id| id.to_string()), client_id);
        }
        prop_assert!(produce_records.is_empty());
    }

    #[test]
    fn produce_records_reach_the_log_as_the_client_sent_them(
        version in 3i16..=12,
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..32), 1..5),
    ) {
        let records: Vec<NewRecord<'_>> = values.iter().map(|v| NewRecord::value(v)).collect();
        let batch = Bytes::from(BatchBuilder::new(1_000).with_records(&records).finish().unwrap());
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.clone()))])]);
        let mut body = BytesMut::new();
        produce.encode(&mut body, version).unwrap();
        let header = header(ApiKey::Produce, version, 9, None);
        let decoded = decode_request(frame(&header, ApiKey::Produce, &body)).unwrap();
        let Decoded::Request { produce_records, .. } = decoded else {
            panic!("a produce request decodes as one");
        };
        prop_assert_eq!(produce_records, vec![Some(batch)]);
    }

    #[test]
    fn damaged_frames_are_refused_or_decoded_never_a_panic(frame in valid_frame(), damage in damage()) {
        let _ = decode_request(Bytes::from(damaged(&frame, &damage)));
    }

    #[test]
    fn random_bytes_are_refused_or_decoded_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_request(Bytes::from(bytes));
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(
        (api, version) in api_version(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let header = header(api, version, 1, None);
        let decoded = decode_request(frame(&header, api, &body));
        // The header is valid, so only the body can be refused.
        prop_assert!(!matches!(decoded, Err(rill_server::fuzzing::DecodeError::Header(_))), "{:?}", decoded);
    }
}
