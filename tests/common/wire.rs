//! A raw Kafka-protocol client for tests that need requests librdkafka
//! would never send (replayed batches, chosen sequence numbers).
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, ListOffsetsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rill_record::{BatchBuilder, NewRecord};

/// One connection; requests are answered one at a time.
pub struct Wire {
    stream: TcpStream,
    correlation_id: i32,
}

impl Wire {
    pub fn connect(address: &str) -> Wire {
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Wire {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends `request` at `version` and decodes its response.
    pub fn send<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("rill-tests")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        self.stream.write_all(&frame).unwrap();
        let mut response = self.read_frame();
        let header =
            ResponseHeader::decode(&mut response, R::Response::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        R::Response::decode(&mut response, version).unwrap()
    }

    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    fn read_frame(&mut self) -> Bytes {
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
        self.stream.read_exact(&mut body).unwrap();
        Bytes::from(body)
    }
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn create_topic(wire: &mut Wire, name: &str) {
    let response = wire.send(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(name))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ])
            .with_timeout_ms(30_000),
    );
    assert_eq!(response.topics[0].error_code, 0);
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
        .finish();
    let response = wire.send(
        9,
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(Bytes::from(batch))),
                    ]),
            ]),
    );
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
