//! Writes the seed corpora under `fuzz/corpus/<target>/seed-*`: real
//! request frames encoded with kafka-protocol, batches from rill-record's
//! builder (plain and with every codec), and segment files a real log
//! wrote. Run from `fuzz/`: `cargo run --example make_seeds` (no sanitizer
//! needed). The output is deterministic, so re-running it changes nothing
//! unless the encoders did.
#![allow(clippy::unwrap_used)] // a generator: a failure is a message and an exit

use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest,
    RequestHeader, SyncGroupRequest, TopicName,
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    fetch_request::{FetchPartition, FetchTopic},
    join_group_request::JoinGroupRequestProtocol,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use rill_record::{BatchBuilder, BatchViewMut, Compression, NewRecord, compress, layout};
use rill_storage::{FlushPolicy, Flusher, Log, LogConfig, Offset, RealDisk};

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    request_decode(&corpus.join("request_decode"));
    batch_validate(&corpus.join("batch_validate"));
    segment_recovery(&corpus.join("segment_recovery"));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn str(s: &'static str) -> StrBytes {
    StrBytes::from_static_str(s)
}

fn topic(s: &'static str) -> TopicName {
    TopicName(str(s))
}

// ---------------------------------------------------------------------------
// request_decode

/// A frame body (header and request, no length prefix) as a client sends it.
fn frame<R: Request + Encodable>(version: i16, correlation_id: i32, request: &R) -> Vec<u8> {
    let mut out = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(str("rill-seed")))
        .encode(&mut out, R::header_version(version))
        .unwrap();
    request.encode(&mut out, version).unwrap();
    out.to_vec()
}

/// The target's structured mode: API index, version offset, client id
/// flag, body.
fn structured<R: Request + Encodable>(version: i16, request: &R) -> Vec<u8> {
    let apis = rill_server::fuzzing::supported_apis();
    let key = ApiKey::try_from(R::KEY).unwrap();
    let (at, (_, min, _)) = apis
        .iter()
        .enumerate()
        .find(|(_, (k, _, _))| *k == key)
        .unwrap();
    let mut body = BytesMut::new();
    request.encode(&mut body, version).unwrap();
    let mut out = vec![1, at as u8, (version - min) as u8, 1];
    out.extend_from_slice(&body);
    out
}

fn raw(frame: Vec<u8>) -> Vec<u8> {
    let mut out = vec![0];
    out.extend(frame);
    out
}

/// A default request of every supported API at its oldest and newest
/// version, in structured mode.
fn every_api(dir: &Path) {
    macro_rules! seeds {
        ($($ty:ty),* $(,)?) => {$(
            let key = ApiKey::try_from(<$ty as Request>::KEY).unwrap();
            let (min, max) = rill_server::fuzzing::supported_apis()
                .iter()
                .find(|(k, _, _)| *k == key)
                .map(|(_, min, max)| (*min, *max))
                .unwrap();
            for version in [min, max] {
                let bytes = structured(version, &<$ty>::default());
                write(dir, &format!("{key:?}-v{version}"), &bytes);
            }
        )*};
    }
    seeds!(
        ProduceRequest,
        FetchRequest,
        ListOffsetsRequest,
        MetadataRequest,
        ApiVersionsRequest,
        CreateTopicsRequest,
        DeleteTopicsRequest,
        DeleteRecordsRequest,
        InitProducerIdRequest,
        OffsetForLeaderEpochRequest,
        DescribeConfigsRequest,
        CreatePartitionsRequest,
        AlterConfigsRequest,
        IncrementalAlterConfigsRequest,
        DescribeClusterRequest,
        FindCoordinatorRequest,
        JoinGroupRequest,
        SyncGroupRequest,
        HeartbeatRequest,
        LeaveGroupRequest,
        OffsetCommitRequest,
        OffsetFetchRequest,
        ListGroupsRequest,
        DescribeGroupsRequest,
        DeleteGroupsRequest,
        OffsetDeleteRequest,
    );
}

fn request_decode(dir: &Path) {
    every_api(dir);
    let batch = Bytes::from(producer_batch());
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic("orders"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch)),
                ]),
        ]);
    write(dir, "raw-produce-v9", &raw(frame(9, 1, &produce)));
    write(dir, "raw-produce-v3", &raw(frame(3, 2, &produce)));
    let fetch = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic("orders"))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(42)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    write(dir, "raw-fetch-v12", &raw(frame(12, 3, &fetch)));
    write(dir, "raw-fetch-v4", &raw(frame(4, 4, &fetch)));
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic("orders"))),
        ]))
        .with_allow_auto_topic_creation(true);
    write(dir, "raw-metadata-v12", &raw(frame(12, 5, &metadata)));
    write(dir, "raw-metadata-v1", &raw(frame(1, 6, &metadata)));
    let api_versions = ApiVersionsRequest::default()
        .with_client_software_name(str("librdkafka"))
        .with_client_software_version(str("2.6.0"));
    write(dir, "raw-apiversions-v3", &raw(frame(3, 7, &api_versions)));
    // A version Rill lacks: answered without decoding the body.
    let mut v9 = frame(4, 8, &api_versions);
    v9[2..4].copy_from_slice(&9i16.to_be_bytes());
    write(dir, "raw-apiversions-v9", &raw(v9));
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic("orders"))
                .with_num_partitions(3)
                .with_replication_factor(1)
                .with_configs(vec![
                    CreatableTopicConfig::default()
                        .with_name(str("retention.ms"))
                        .with_value(Some(str("60000"))),
                ]),
        ]);
    write(dir, "raw-createtopics-v7", &raw(frame(7, 9, &create)));
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(str("workers")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(str("range"))
                .with_metadata(Bytes::from_static(
                    b"\x00\x01\x00\x00\x00\x01\x00\x06orders",
                )),
        ]);
    write(dir, "raw-joingroup-v5", &raw(frame(5, 10, &join)));
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(str("workers")))
        .with_generation_id_or_member_epoch(1)
        .with_member_id(str("member-1"))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42)
                        .with_committed_metadata(Some(str(""))),
                ]),
        ]);
    write(dir, "raw-offsetcommit-v8", &raw(frame(8, 11, &commit)));
    let list = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    write(dir, "raw-listoffsets-v7", &raw(frame(7, 12, &list)));
}

// ---------------------------------------------------------------------------
// batch_validate

fn records() -> Vec<NewRecord<'static>> {
    const HEADERS: &[(&[u8], Option<&[u8]>)] = &[(b"trace", Some(b"abc")), (b"empty", None)];
    vec![
        NewRecord::value(b"hello"),
        NewRecord {
            timestamp: 1_700_000_000_123,
            key: Some(b"key-1"),
            value: Some(b"a value long enough to compress, compress, compress"),
            headers: HEADERS,
        },
        NewRecord::key_value(b"key-2", None),
    ]
}

/// An idempotent producer's uncompressed batch.
fn producer_batch() -> Vec<u8> {
    BatchBuilder::new(1_700_000_000_000)
        .producer(1000, 0, 0)
        .with_records(&records())
        .finish().unwrap()
}

/// The seed records in a batch compressed with `compression`.
fn compressed(compression: Compression) -> Vec<u8> {
    let plain = BatchBuilder::new(1_700_000_000_000)
        .with_records(&records())
        .finish().unwrap();
    recompress(&plain, compression)
}

fn batch_validate(dir: &Path) {
    write(
        dir,
        "plain",
        &BatchBuilder::new(0).with_records(&records()).finish().unwrap(),
    );
    write(dir, "producer", &producer_batch());
    for compression in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        write(
            dir,
            &format!("{compression:?}").to_lowercase(),
            &compressed(compression),
        );
    }
    // Stored batches, as a fetch returns them: stamped offsets, one after
    // another, the second compressed.
    let mut first = producer_batch();
    BatchViewMut::new(&mut first).unwrap().set_base_offset(100);
    let mut second = compressed(Compression::Zstd);
    let mut view = BatchViewMut::new(&mut second).unwrap();
    view.set_base_offset(103);
    view.set_log_append_time(1_700_000_000_999);
    first.extend(second);
    write(dir, "stored-pair", &first);
}

// ---------------------------------------------------------------------------
// segment_recovery

/// The target's input: flags, offset byte, index files, optional split,
/// then the log.
fn recovery_input(
    flags: u8,
    point: u8,
    index: Option<&[u8]>,
    time_index: Option<&[u8]>,
    split: Option<(u16, u16)>,
    log: &[u8],
) -> Vec<u8> {
    let mut out = vec![flags, point];
    for file in [index, time_index].into_iter().flatten() {
        out.extend((file.len() as u16).to_be_bytes());
        out.extend(file);
    }
    if let Some((at, base)) = split {
        out.extend(at.to_be_bytes());
        out.extend(base.to_be_bytes());
    }
    out.extend(log);
    out
}

fn segment_recovery(dir: &Path) {
    let root = tempfile::tempdir().unwrap();
    let log_dir = root.path().join("topic-0");
    let flusher = Flusher::start(1).unwrap();
    let config = LogConfig {
        segment_bytes: 16 * 1024,
        segment_index_bytes: 4096,
        index_interval_bytes: 64,
        retention_ms: -1,
        flush: FlushPolicy::None,
        ..LogConfig::default()
    };
    let log = Log::create(&log_dir, config, Offset(0), &flusher, Arc::new(RealDisk), 0).unwrap();
    for i in 0..12i64 {
        let values: Vec<Vec<u8>> = (0..3)
            .map(|r| format!("value {i}-{r}").into_bytes())
            .collect();
        let records: Vec<NewRecord<'_>> = values.iter().map(|v| NewRecord::value(v)).collect();
        let batch = if i % 4 == 3 {
            let plain = BatchBuilder::new(1_000 + i).with_records(&records).finish().unwrap();
            recompress(&plain, Compression::Gzip)
        } else {
            BatchBuilder::new(1_000 + i).with_records(&records).finish().unwrap()
        };
        log.append(&batch, 0, 0).unwrap().wait().unwrap();
    }
    let end = log.close().unwrap();
    drop(log);
    let read = |suffix: &str| -> Vec<u8> {
        std::fs::read(log_dir.join(format!("{:020}.{suffix}", 0))).unwrap()
    };
    let data = read("log");
    let index = read("index");
    let time_index = read("timeindex");
    let end_byte = u8::try_from(end.value()).unwrap();
    // Nothing known: every batch validated, indexes rebuilt.
    write(
        dir,
        "unknown",
        &recovery_input(0, 0, None, None, None, &data),
    );
    write(
        dir,
        "unknown-with-indexes",
        &recovery_input(0b1100, 0, Some(&index), Some(&time_index), None, &data),
    );
    // A clean shutdown: the files are trusted.
    write(
        dir,
        "clean",
        &recovery_input(
            0b1111,
            end_byte,
            Some(&index),
            Some(&time_index),
            None,
            &data,
        ),
    );
    // Unclean with a recovery point half-way.
    write(
        dir,
        "recovery-point",
        &recovery_input(0b0010, end_byte / 2, None, None, None, &data),
    );
    // Two segments split on a batch boundary.
    let (at, base) = batch_boundary(&data, 6);
    write(
        dir,
        "two-segments",
        &recovery_input(0b10000, 0, None, None, Some((at, base)), &data),
    );
    // A torn last batch.
    write(
        dir,
        "torn",
        &recovery_input(0, 0, None, None, None, &data[..data.len() - 7]),
    );
}

/// The byte position and base offset of batch number `n` in `data`.
fn batch_boundary(data: &[u8], n: usize) -> (u16, u16) {
    let mut batches = rill_record::Batches::new(data);
    let mut position = 0;
    for _ in 0..n {
        position += batches.next().unwrap().size();
    }
    let batch = rill_record::BatchView::new(&data[position..]).unwrap();
    (position as u16, batch.base_offset() as u16)
}

/// `plain`'s records section compressed with `compression`, reframed as
/// a producer would send it.
fn recompress(plain: &[u8], compression: Compression) -> Vec<u8> {
    let mut out = plain[..layout::RECORDS].to_vec();
    out.extend(compress(compression, &plain[layout::RECORDS..]).unwrap());
    let batch_length = (out.len() - layout::LOG_OVERHEAD) as i32;
    out[layout::BATCH_LENGTH..layout::BATCH_LENGTH + 4]
        .copy_from_slice(&batch_length.to_be_bytes());
    let attributes = i16::from(compression.code());
    out[layout::ATTRIBUTES..layout::ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[layout::ATTRIBUTES..]);
    out[layout::CRC..layout::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    out
}
