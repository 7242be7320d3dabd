//! A raw Kafka-protocol client for tests that need requests librdkafka
//! would never send (replayed batches, chosen sequence numbers).
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest,
    GroupId, ListOffsetsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rill_record::{BatchBuilder, NewRecord};

/// One connection; requests are answered one at a time.
pub struct Wire {
    stream: TcpStream,
    correlation_id: i32,
    client_id: &'static str,
}

impl Wire {
    pub fn connect(address: &str) -> Wire {
        Wire::connect_as(address, "rill-tests")
    }

    /// A connection whose requests carry `client_id`.
    pub fn connect_as(address: &str, client_id: &'static str) -> Wire {
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Wire {
            stream,
            correlation_id: 0,
            client_id,
        }
    }

    /// Sends `request` at `version` and decodes its response.
    pub fn send<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        self.correlation_id += 1;
        let frame = request_frame_of(self.client_id, version, self.correlation_id, request);
        self.stream.write_all(&frame).unwrap();
        read_response::<R>(&mut self.stream, version, self.correlation_id)
    }

    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }
}

/// A request's whole frame: length, header (at the version `R` needs)
/// and body.
pub fn request_frame<R: Request>(version: i16, correlation_id: i32, request: &R) -> Vec<u8> {
    request_frame_of("rill-tests", version, correlation_id, request)
}

/// A request's whole frame, from `client_id`.
pub fn request_frame_of<R: Request>(
    client_id: &'static str,
    version: i16,
    correlation_id: i32,
    request: &R,
) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(version))
        .unwrap();
    request.encode(&mut body, version).unwrap();
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    frame.to_vec()
}

/// Reads the response to the request `correlation_id` (sent at
/// `version`) from `stream`, and decodes it.
pub fn read_response<R: Request>(
    stream: &mut TcpStream,
    version: i16,
    correlation_id: i32,
) -> R::Response {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).unwrap();
    let mut response = Bytes::from(body);
    let header =
        ResponseHeader::decode(&mut response, R::Response::header_version(version)).unwrap();
    assert_eq!(header.correlation_id, correlation_id);
    R::Response::decode(&mut response, version).unwrap()
}

/// Asks for `group`'s coordinator until one answers and has loaded its
/// groups, as a client does: the first asking creates
/// `__consumer_offsets`, as in Kafka.
pub fn wait_for_group_coordinator(wire: &mut Wire, group: &str) {
    let find = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()));
    let describe = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while wire.send(3, &find).error_code != 0 || wire.send(5, &describe).groups[0].error_code != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no coordinator for {group} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_string()))
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn create_topic(wire: &mut Wire, name: &str) {
    create_topic_with(wire, name, 1);
}

/// Creates `name` with `partitions` partitions, one replica each.
pub fn create_topic_with(wire: &mut Wire, name: &str, partitions: i32) {
    let response = wire.send(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1),
            ])
            .with_timeout_ms(30_000),
    );
    assert_eq!(response.topics[0].error_code, 0, "create {name}");
}

/// Produces one idempotent batch; returns (error code, base offset).
pub fn produce(
    wire: &mut Wire,
    topic: &str,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
    values: &[&str],
) -> (i16, i64) {
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .map(|v| NewRecord::value(v.as_bytes()))
        .collect();
    let batch = BatchBuilder::new(1_000)
        .producer(producer_id, epoch, sequence)
        .with_records(&records)
        .finish()
        .unwrap();
    let response = wire.send(9, &produce_request(topic, 0, batch));
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

pub fn log_end(wire: &mut Wire, topic: &str) -> i64 {
    let response = wire.send(
        7,
        &ListOffsetsRequest::default().with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]),
    );
    response.topics[0].partitions[0].offset
}

/// Produces `batch` (acks=-1) to `partition` of `topic`; returns (error
/// code, base offset).
pub fn produce_batch(wire: &mut Wire, topic: &str, partition: i32, batch: Vec<u8>) -> (i16, i64) {
    let response = wire.send(9, &produce_request(topic, partition, batch));
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset)
}

/// A Produce request of `batch` (acks=-1) to `partition` of `topic`.
pub fn produce_request(topic: &str, partition: i32, batch: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ])
}

/// Fetches from `offset` of `partition` of `topic`, up to 1 MiB, without
/// waiting; returns (error code, record bytes).
pub fn fetch_from(wire: &mut Wire, topic: &str, partition: i32, offset: i64) -> (i16, Bytes) {
    let response = wire.send(11, &fetch_request(topic, partition, offset, 0, 0));
    let answer = &response.responses[0].partitions[0];
    (
        answer.error_code,
        answer.records.clone().unwrap_or_default(),
    )
}

/// A Fetch request for `partition` of `topic` from `offset`, up to 1 MiB,
/// outside any fetch session.
pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}
