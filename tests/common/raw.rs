//! Raw Kafka-protocol helpers over a plain TcpStream, for tests that
//! send what no client would, or hold connections in ways no client does:
//! framing, ApiVersions and Metadata round trips, and the broker process's
//! liveness and memory as the kernel reports them.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, StrBytes};

use super::BrokerProcess;

/// How long any single wait on the broker may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The broker's request_bytes_max default (socket.request.max.bytes).
pub const REQUEST_BYTES_MAX: i32 = 100 * 1024 * 1024;

/// A connection with bounded reads and writes.
pub fn connect(broker: &BrokerProcess) -> TcpStream {
    let stream = TcpStream::connect(&broker.bootstrap).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// A 4-byte length prefix and `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A whole request frame: length, header and body.
pub use super::wire::request_frame;

/// Reads one response frame; `None` when the broker closed the connection.
pub fn read_frame(stream: &mut TcpStream) -> Option<Bytes> {
    let mut length = [0u8; 4];
    match stream.read_exact(&mut length) {
        Ok(()) => {}
        Err(error) if closed(&error) => return None,
        Err(error) => panic!("no response and no close within {WAIT:?}: {error}"),
    }
    let length = i32::from_be_bytes(length);
    assert!(
        (4..=REQUEST_BYTES_MAX).contains(&length),
        "response length {length}"
    );
    let mut body = vec![0u8; length as usize];
    stream.read_exact(&mut body).unwrap();
    Some(Bytes::from(body))
}

/// Whether a read error means the peer closed the connection.
pub fn closed(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
    )
}

/// Sends ApiVersions v3 on `stream` and checks the answer.
pub fn api_versions(stream: &mut TcpStream, correlation_id: i32) {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("rill-hostile"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    stream
        .write_all(&request_frame(3, correlation_id, &request))
        .unwrap();
    let response = read_frame(stream).expect("the broker closed instead of answering");
    check_api_versions(response, 3, correlation_id);
}

pub fn check_api_versions(mut response: Bytes, version: i16, correlation_id: i32) {
    let header =
        ResponseHeader::decode(&mut response, ApiVersionsResponse::header_version(version))
            .unwrap();
    assert_eq!(header.correlation_id, correlation_id);
    let body = ApiVersionsResponse::decode(&mut response, version).unwrap();
    assert_eq!(body.error_code, 0);
    assert!(
        body.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Metadata as i16),
        "ApiVersions lacks Metadata: {:?}",
        body.api_keys
    );
}

pub fn check_metadata(mut response: Bytes, version: i16, correlation_id: i32) {
    let header =
        ResponseHeader::decode(&mut response, MetadataResponse::header_version(version)).unwrap();
    assert_eq!(header.correlation_id, correlation_id);
    let body = MetadataResponse::decode(&mut response, version).unwrap();
    assert_eq!(body.brokers.len(), 1, "{body:?}");
}

/// A fresh connection gets correct ApiVersions and Metadata answers.
pub fn assert_serving(broker: &BrokerProcess) {
    let mut stream = connect(broker);
    api_versions(&mut stream, 7);
    stream
        .write_all(&request_frame(
            12,
            8,
            &MetadataRequest::default().with_topics(None),
        ))
        .unwrap();
    let response = read_frame(&mut stream).expect("the broker closed instead of answering");
    check_metadata(response, 12, 8);
}

/// The broker process exists and has not exited (an exited child that is
/// not yet reaped is a zombie: state Z).
pub fn assert_alive(broker: &BrokerProcess) {
    let pid = broker.pid();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|error| panic!("the broker (pid {pid}) is gone: {error}"));
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap();
    assert!(
        state != "Z" && state != "X",
        "the broker (pid {pid}) has exited: {stat}"
    );
}

/// The broker's resident memory, from /proc/PID/status.
pub fn rss_bytes(broker: &BrokerProcess) -> u64 {
    status_bytes(broker, "VmRSS")
}

/// The broker's peak resident memory since it started.
pub fn peak_rss_bytes(broker: &BrokerProcess) -> u64 {
    status_bytes(broker, "VmHWM")
}

/// The broker's resident anonymous memory: heap and stacks, not the
/// mapped segment files whose pages are the page cache's.
pub fn anon_rss_bytes(broker: &BrokerProcess) -> u64 {
    status_bytes(broker, "RssAnon")
}

/// A `kB` field of /proc/PID/status, in bytes.
fn status_bytes(broker: &BrokerProcess, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", broker.pid())).unwrap();
    let line = status
        .lines()
        .find(|line| line.split(':').next() == Some(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"));
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The soft limit on open files of this process (the broker inherits it).
pub fn open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let soft = line.split_whitespace().nth(3).unwrap();
    soft.parse().unwrap_or(usize::MAX) // "unlimited"
}
