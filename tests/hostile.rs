//! Hostile input against the real broker over raw TCP: random bytes,
//! impossible lengths, truncated frames, unknown APIs and versions,
//! garbage bodies, arrays longer than their frame, the idle timeout (also
//! for a client that never reads its responses), max.connections and a
//! pipelined burst (crowds of connections and slow clients are in
//! resource_bounds.rs). After
//! each hostile act the broker must have answered with Kafka's error or
//! closed that one connection, and must still answer a well-formed request
//! on a fresh connection; at the end of each test the process must still
//! be running, and where a case could make it allocate, its resident
//! memory must have stayed bounded.
//!
//! Random cases print their seed; `HOSTILE_SEED=<n>` replays one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use common::BrokerProcess;
use common::raw::{
    REQUEST_BYTES_MAX, WAIT, api_versions, assert_alive, assert_serving, check_api_versions,
    check_metadata, closed, connect, frame, read_frame, request_frame, rss_bytes,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, ResponseHeader,
};
use kafka_protocol::protocol::Decodable;

/// How much the broker's resident memory may grow across a hostile case.
/// Generous: a decoder that trusted a declared length of 2^31 elements
/// would try to reserve gigabytes (and abort), far beyond it.
const RSS_GROWTH_BYTES_MAX: u64 = 200 * 1024 * 1024;

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

// ---------------------------------------------------------------------------
// Raw wire helpers.

/// A request frame whose header is well formed for (`api`, `version`) and
/// whose body is `body`, whatever it holds.
fn raw_request(api: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_i16(api as i16);
    out.put_i16(version);
    out.put_i32(correlation_id);
    let header_version = api.request_header_version(version);
    if header_version >= 1 {
        out.put_i16(-1); // null client id
    }
    if header_version >= 2 {
        out.put_u8(0); // no tagged fields
    }
    out.put_slice(body);
    frame(&out)
}

/// Writes hostile bytes. The broker may close (and reset) the connection
/// before it has read them all, so a failed write is part of the game: what
/// the broker did is judged by reading, not by writing.
fn send_hostile(stream: &mut TcpStream, bytes: &[u8]) {
    if let Err(error) = stream.write_all(bytes) {
        eprintln!("hostile: write ended early ({error}); the broker closed first");
    }
}

/// Asserts that the broker closes `stream` without answering.
fn assert_closed(mut stream: TcpStream, what: &str) {
    let mut buf = [0u8; 1024];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{what}: expected a close, got {n} bytes: {:?}", &buf[..n]),
        Err(error) if closed(&error) => {}
        Err(error) => panic!("{what}: the broker did not close within {WAIT:?}: {error}"),
    }
}

/// Reads whatever responses come until the broker closes; returns how many.
fn responses_until_closed(stream: &mut TcpStream) -> usize {
    let mut responses = 0;
    while read_frame(stream).is_some() {
        responses += 1;
    }
    responses
}

fn assert_rss_bounded(broker: &BrokerProcess, before: u64, what: &str) {
    let after = rss_bytes(broker);
    eprintln!(
        "hostile: {what}: broker VmRSS {} MiB -> {} MiB",
        before >> 20,
        after >> 20
    );
    assert!(
        after < before + RSS_GROWTH_BYTES_MAX,
        "{what}: broker VmRSS grew from {before} to {after} bytes"
    );
}

/// splitmix64: enough randomness for hostile bytes, no dependency.
struct Random(u64);

impl Random {
    fn seeded(test: &str) -> Random {
        let seed = match std::env::var("HOSTILE_SEED") {
            Ok(seed) => seed.parse().unwrap(),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        };
        eprintln!("hostile: {test}: seed {seed} (HOSTILE_SEED={seed} replays it)");
        Random(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

// ---------------------------------------------------------------------------
// The cases.

#[test]
fn random_bytes_close_only_that_connection() {
    let broker = BrokerProcess::start(&[]);
    let mut random = Random::seeded("random_bytes");
    // A bystander connection opened before the noise must keep working.
    let mut bystander = connect(&broker);
    api_versions(&mut bystander, 1);
    for (round, size) in [1, 3, 4, 7, 8, 13, 64, 1024, 65_536, 1 << 20]
        .into_iter()
        .enumerate()
    {
        for _ in 0..3 {
            let mut stream = connect(&broker);
            send_hostile(&mut stream, &random.bytes(size));
            // End the stream so a random length that happens to be valid
            // ends up truncated rather than waiting for more.
            let _ = stream.shutdown(Shutdown::Write); // It may be reset already.
            let responses = responses_until_closed(&mut stream);
            assert_eq!(responses, 0, "{size} random bytes were answered");
        }
        assert_serving(&broker);
        api_versions(&mut bystander, 2 + round as i32);
    }
    // Random bodies behind a valid length prefix and a valid header reach
    // the request decoders. Garbage may happen to decode into a request,
    // so an answer is allowed; the broker must then still close on EOF.
    let apis = [
        (ApiKey::ApiVersions, 0..=4),
        (ApiKey::Metadata, 0..=12),
        (ApiKey::Produce, 3..=9),
        (ApiKey::ListOffsets, 1..=7),
        (ApiKey::CreateTopics, 2..=7),
        (ApiKey::DescribeConfigs, 1..=4),
    ];
    for i in 0..200 {
        let (api, versions) = &apis[random.next() as usize % apis.len()];
        let span = (versions.end() - versions.start() + 1) as u64;
        let version = versions.start() + (random.next() % span) as i16;
        let len = random.next() as usize % 256;
        let body = random.bytes(len);
        let mut stream = connect(&broker);
        send_hostile(&mut stream, &raw_request(*api, version, i, &body));
        let _ = stream.shutdown(Shutdown::Write); // It may be reset already.
        let responses = responses_until_closed(&mut stream);
        assert!(responses <= 1, "{api:?} v{version}: {responses} responses");
    }
    assert_serving(&broker);
    api_versions(&mut bystander, 100);
    assert_alive(&broker);
}

#[test]
fn impossible_length_prefixes_close_the_connection() {
    let broker = BrokerProcess::start(&[]);
    for length in [
        i32::MAX,
        -1,
        i32::MIN,
        0,
        7, // shorter than api key, version and correlation id
        REQUEST_BYTES_MAX + 1,
    ] {
        let mut stream = connect(&broker);
        send_hostile(&mut stream, &length.to_be_bytes());
        // Keep the connection open: the broker must refuse the length
        // itself, not wait for bytes that will never come.
        assert_closed(stream, &format!("length prefix {length}"));
        assert_serving(&broker);
    }
    assert_alive(&broker);
}

#[test]
fn truncated_frames_close_the_connection() {
    let broker = BrokerProcess::start(&[]);
    let whole = request_frame(12, 1, &MetadataRequest::default().with_topics(None));
    let cuts = [
        ("length prefix cut", 2),
        ("header cut", 4 + 5),
        ("body cut", whole.len() - 1),
    ];
    for (what, keep) in cuts {
        let mut stream = connect(&broker);
        send_hostile(&mut stream, &whole[..keep]);
        stream.shutdown(Shutdown::Write).unwrap();
        assert_closed(stream, what);
        assert_serving(&broker);
    }
    // A cut frame followed by a full close of the socket.
    for keep in [1, 6, whole.len() - 3] {
        let mut stream = connect(&broker);
        send_hostile(&mut stream, &whole[..keep]);
        drop(stream);
        assert_serving(&broker);
    }
    assert_alive(&broker);
}

#[test]
fn unknown_api_keys_close_the_connection() {
    let broker = BrokerProcess::start(&[]);
    for key in [9999i16, -1, i16::MIN, i16::MAX] {
        let mut body = BytesMut::new();
        body.put_i16(key);
        body.put_i16(0);
        body.put_i32(42);
        body.put_i16(-1); // null client id
        let mut stream = connect(&broker);
        send_hostile(&mut stream, &frame(&body));
        assert_closed(stream, &format!("API key {key}"));
        assert_serving(&broker);
    }
    assert_alive(&broker);
}

#[test]
fn unsupported_versions_get_kafkas_answer() {
    let broker = BrokerProcess::start(&[]);
    // A known API at a version Rill lacks: closed, above or below.
    for (api, version) in [
        (ApiKey::Produce, 99),
        (ApiKey::Produce, -1),
        (ApiKey::Metadata, 99),
        (ApiKey::Fetch, i16::MAX),
    ] {
        let mut body = BytesMut::new();
        body.put_i16(api as i16);
        body.put_i16(version);
        body.put_i32(42);
        body.put_i16(-1);
        body.put_u8(0);
        let mut stream = connect(&broker);
        send_hostile(&mut stream, &frame(&body));
        assert_closed(stream, &format!("{api:?} v{version}"));
        assert_serving(&broker);
    }

    // ApiVersions at a version Rill lacks (KIP-511): a v0 response with
    // UNSUPPORTED_VERSION and the supported ranges, on a connection that
    // stays open for the client's next try at a version from the ranges.
    let mut stream = connect(&broker);
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::ApiVersions as i16);
    body.put_i16(99);
    body.put_i32(4242);
    body.put_i16(-1); // null client id
    body.put_u8(0); // no tagged fields
    body.put_slice(b"\x0dfuture-client\x021\x00"); // whatever v99 carries
    stream.write_all(&frame(&body)).unwrap();
    let mut response = read_frame(&mut stream).expect("closed instead of KIP-511's answer");
    let header = ResponseHeader::decode(&mut response, 0).unwrap();
    assert_eq!(header.correlation_id, 4242);
    let answer = ApiVersionsResponse::decode(&mut response, 0).unwrap();
    assert_eq!(answer.error_code, UNSUPPORTED_VERSION);
    let range = |key: ApiKey| {
        answer
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    let (min, max) = range(ApiKey::ApiVersions).expect("no ApiVersions range");
    assert!(min == 0 && max >= 3, "ApiVersions v{min} to v{max}");
    assert!(range(ApiKey::Metadata).is_some(), "{:?}", answer.api_keys);
    assert!(range(ApiKey::Produce).is_some(), "{:?}", answer.api_keys);
    api_versions(&mut stream, 4243);

    assert_serving(&broker);
    assert_alive(&broker);
}

#[test]
fn garbage_bodies_close_the_connection() {
    let broker = BrokerProcess::start(&[]);
    let cases: &[(&str, ApiKey, i16, &[u8])] = &[
        // An array count, then a string longer than the frame.
        (
            "Metadata v0 string beyond the frame",
            ApiKey::Metadata,
            0,
            b"\x00\x00\x00\x01\x00\x40ab",
        ),
        // An unsigned varint that never ends.
        (
            "Metadata v12 over-long varint",
            ApiKey::Metadata,
            12,
            &[0xff; 16],
        ),
        ("Produce v9 cut body", ApiKey::Produce, 9, b"\x00\x00"),
        ("Produce v3 empty body", ApiKey::Produce, 3, b""),
        (
            "CreateTopics v7 all ones",
            ApiKey::CreateTopics,
            7,
            &[0xff; 64],
        ),
        (
            "ListOffsets v5 negative array",
            ApiKey::ListOffsets,
            5,
            b"\xff\xff\xff\xff\x00\xff\xff\xff\xfe",
        ),
    ];
    for (what, api, version, body) in cases {
        let mut stream = connect(&broker);
        send_hostile(&mut stream, &raw_request(*api, *version, 1, body));
        assert_closed(stream, what);
        assert_serving(&broker);
    }
    // A flexible header whose tagged fields run past the frame.
    let mut header = BytesMut::new();
    header.put_i16(ApiKey::Metadata as i16);
    header.put_i16(12);
    header.put_i32(1);
    header.put_i16(-1);
    header.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // 2^32-1 tagged fields
    header.put_slice(&[0x00, 0xff, 0xff, 0xff, 0xff, 0x0f]); // tag 0, 4 GiB
    let mut stream = connect(&broker);
    send_hostile(&mut stream, &frame(&header));
    assert_closed(stream, "tagged fields beyond the frame");
    assert_serving(&broker);
    assert_alive(&broker);
}

#[test]
fn array_length_beyond_frame() {
    let broker = BrokerProcess::start(&[]);
    assert_serving(&broker);
    let before = rss_bytes(&broker);
    let huge_varint: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x0f]; // u32::MAX
    let mut produce_v3 = BytesMut::new();
    produce_v3.put_i16(-1); // null transactional id
    produce_v3.put_i16(1); // acks
    produce_v3.put_i32(1000); // timeout
    produce_v3.put_i32(1); // one topic
    produce_v3.put_i16(1);
    produce_v3.put_u8(b't');
    produce_v3.put_i32(1); // one partition
    produce_v3.put_i32(0);
    produce_v3.put_i32(i32::MAX); // records: 2 GiB of bytes
    let mut produce_v9 = BytesMut::new();
    produce_v9.put_u8(0); // null transactional id
    produce_v9.put_i16(1);
    produce_v9.put_i32(1000);
    produce_v9.put_slice(huge_varint); // topics
    let mut create_topics_v7 = BytesMut::new();
    create_topics_v7.put_u8(2); // one topic
    create_topics_v7.put_slice(huge_varint); // its name: 4 GiB
    let cases: Vec<(&str, ApiKey, i16, Vec<u8>)> = vec![
        (
            "Metadata v0, 0x7fffffff topics",
            ApiKey::Metadata,
            0,
            0x7fff_ffffi32.to_be_bytes().to_vec(),
        ),
        (
            "Metadata v12, compact array of 2^32-2 topics",
            ApiKey::Metadata,
            12,
            huge_varint.to_vec(),
        ),
        (
            "Produce v3, records of 2^31-1 bytes",
            ApiKey::Produce,
            3,
            produce_v3.to_vec(),
        ),
        (
            "Produce v9, compact array of 2^32-2 topics",
            ApiKey::Produce,
            9,
            produce_v9.to_vec(),
        ),
        (
            "CreateTopics v7, a name of 2^32-2 bytes",
            ApiKey::CreateTopics,
            7,
            create_topics_v7.to_vec(),
        ),
    ];
    for (what, api, version, body) in &cases {
        // Repeated, so that even a modest over-allocation would add up.
        for round in 0..20 {
            let mut stream = connect(&broker);
            send_hostile(&mut stream, &raw_request(*api, *version, round, body));
            assert_closed(stream, what);
        }
        assert_serving(&broker);
    }
    assert_rss_bounded(&broker, before, "arrays beyond the frame");
    assert_alive(&broker);
}

#[test]
fn idle_connections_are_closed() {
    let broker = BrokerProcess::start(&["--set", "connections.max.idle.ms=1000"]);
    let silent = connect(&broker);
    let mut half_sent = connect(&broker);
    half_sent.write_all(&[0, 0, 0, 100, 0, 3]).unwrap();
    // A connection that keeps asking is not idle, however long it lives.
    let mut active = connect(&broker);
    let started = Instant::now();
    let mut correlation_id = 0;
    while started.elapsed() < Duration::from_millis(2_500) {
        correlation_id += 1;
        api_versions(&mut active, correlation_id);
        // Pacing the client, not waiting for a condition.
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both others are closed within WAIT (reads are bounded by it).
    assert_closed(silent, "an idle connection");
    assert_closed(half_sent, "a connection idle inside a frame");
    api_versions(&mut active, correlation_id + 1);
    assert_serving(&broker);
    assert_alive(&broker);
}

#[test]
fn a_client_that_never_reads_is_closed_after_the_idle_timeout() {
    let broker = BrokerProcess::start(&["--set", "connections.max.idle.ms=1000"]);
    let mut stream = connect(&broker);
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let request = request_frame(3, 1, &ApiVersionsRequest::default());
    let batch: Vec<u8> = request.repeat(1_000);
    // Requests go out and no response is read: the responses fill the
    // socket buffers, the broker stops reading, and then the requests fill
    // them too. A broker that bounds how long a response may wait to be
    // written closes the connection, and a write here fails.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut written = 0usize;
    loop {
        assert!(
            Instant::now() < deadline,
            "still open after {written} bytes of requests and no read in 20 s"
        );
        match stream.write(&batch[written % batch.len()..]) {
            Ok(n) => written += n,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(error) if closed(&error) => break,
            Err(error) => panic!("unexpected write error: {error}"),
        }
    }
    eprintln!("hostile: a client that never reads was closed after {written} bytes of requests");
    assert_serving(&broker);
    assert_alive(&broker);
}

#[test]
fn max_connections_refuses_the_one_too_many() {
    let broker = BrokerProcess::start(&["--set", "max.connections=10"]);
    let mut open: Vec<TcpStream> = (0..10).map(|_| connect(&broker)).collect();
    for (i, stream) in open.iter_mut().enumerate() {
        api_versions(stream, i as i32);
    }
    assert_closed(connect(&broker), "the 11th connection");
    for (i, stream) in open.iter_mut().enumerate() {
        api_versions(stream, 100 + i as i32);
    }
    // One leaves; its place is free once the broker has seen it go.
    drop(open.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let mut stream = connect(&broker);
        let request = request_frame(3, 1, &ApiVersionsRequest::default());
        stream.write_all(&request).unwrap();
        if let Some(response) = read_frame(&mut stream) {
            check_api_versions(response, 3, 1);
            break;
        }
        assert!(Instant::now() < deadline, "the freed place stayed taken");
    }
    for (i, stream) in open.iter_mut().enumerate() {
        api_versions(stream, 200 + i as i32);
    }
    assert_alive(&broker);
}

#[test]
fn pipelined_burst_is_answered_in_order() {
    let broker = BrokerProcess::start(&["--set", "rill.connection.inflight.requests.max=16"]);
    let mut stream = connect(&broker);
    // More than the broker's in-flight bound (16), so it must stop reading
    // and resume as answers leave. Correlation ids are not consecutive, so
    // an answer out of place shows.
    let requests: Vec<(i32, ApiKey, i16)> = (0..50)
        .map(|i| {
            let correlation_id = 1_000 + i * 37 % 50;
            match i % 3 {
                0 => (correlation_id, ApiKey::ApiVersions, 3),
                1 => (correlation_id, ApiKey::Metadata, 12),
                _ => (correlation_id, ApiKey::Metadata, 1),
            }
        })
        .collect();
    let mut burst = Vec::new();
    for &(correlation_id, api, version) in &requests {
        burst.extend(match api {
            ApiKey::ApiVersions => {
                request_frame(version, correlation_id, &ApiVersionsRequest::default())
            }
            _ => request_frame(
                version,
                correlation_id,
                &MetadataRequest::default().with_topics(None),
            ),
        });
    }
    stream.write_all(&burst).unwrap();
    for &(correlation_id, api, version) in &requests {
        let response = read_frame(&mut stream).expect("closed inside the burst");
        match api {
            ApiKey::ApiVersions => check_api_versions(response, version, correlation_id),
            _ => check_metadata(response, version, correlation_id),
        }
    }
    assert_serving(&broker);
    assert_alive(&broker);
}
