//! `rill bench produce --client native`: a pipelined producer over the
//! Kafka protocol, to show what a broker sustains when librdkafka is not
//! the limit.
//!
//! Every request is encoded once before the run: one ProduceRequest frame
//! per partition, holding one uncompressed, keyless, non-idempotent batch of
//! as many copies of the value as fit in `batch_bytes`. A send only patches
//! the frame's correlation id; resending identical batch bytes is fine
//! because the broker stamps offsets itself and Kafka's CRC does not cover
//! the base offset. Each connection has a writer (the lane's own thread)
//! and a reader thread; Kafka answers a connection's requests in order.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::ops::Range;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail, ensure};
use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rill_record::{BatchBuilder, NewRecord};

use super::progress::Counters;
use super::report::Outcome;
use crate::link::{Link, Security};

/// The newest non-flexible Produce version (Rill speaks 3 to 13); later
/// versions add tagged fields and topic ids, which a benchmark does not need.
const PRODUCE_VERSION: i16 = 8;
/// The newest non-flexible Metadata version.
const METADATA_VERSION: i16 = 8;
const CLIENT_ID: &str = "rill-bench";
/// Where a request frame holds its correlation id: after the frame size
/// (4 bytes), the API key (2) and the API version (2), in every header version.
const CORRELATION_ID: Range<usize> = 8..12;
/// The largest response accepted; Kafka's socket.request.max.bytes default.
const RESPONSE_BYTES_MAX: usize = 100 << 20;
/// The most memory the pre-encoded requests of a run may take.
const FRAMES_BYTES_MAX: usize = 1 << 30;
/// The most produce requests in flight per connection.
const INFLIGHT_REQUESTS_MAX: usize = 1024;
const READ_BUFFER_BYTES: usize = 64 << 10;

/// What a native produce run does.
pub(crate) struct NativePlan<'a> {
    pub(crate) bootstrap: &'a str,
    pub(crate) topic: &'a str,
    /// The topic's partitions; connection k produces to the partitions at
    /// positions k, k + producers, ...
    pub(crate) partitions: &'a [i32],
    /// Messages to produce in all, or
    pub(crate) messages: Option<u64>,
    /// produce until this much time has passed.
    pub(crate) duration: Option<Duration>,
    /// The value of every message.
    pub(crate) value: &'a [u8],
    /// Connections, each with a writer and a reader thread.
    pub(crate) producers: usize,
    /// 0, 1 or -1.
    pub(crate) acks: i16,
    /// Bytes of records per batch (one batch per request).
    pub(crate) batch_bytes: usize,
    /// Produce requests in flight per connection.
    pub(crate) inflight: usize,
    /// Connect and request timeout.
    pub(crate) timeout: Duration,
    /// TLS and SASL (`-X security.protocol=SASL_SSL`, `sasl.*`), or
    /// plain TCP.
    pub(crate) security: Security,
}

/// Produces `plan.messages` exactly (or until `plan.duration` has passed),
/// then waits for the outstanding responses, each for up to `plan.timeout`.
/// Broker error codes count as failed messages in the outcome; a broken
/// connection or an unreadable response fails the run. With acks=0 a
/// message counts as produced once written, and there is no latency.
/// More producers than partitions make one connection per partition.
pub(crate) fn produce(plan: &NativePlan<'_>, counters: &Counters) -> anyhow::Result<Outcome> {
    check(plan)?;
    let connections = connect_lanes(plan)?;
    let start = Instant::now();
    let deadline = plan.duration.map(|duration| start + duration);
    std::thread::scope(|scope| {
        let handles: Vec<_> = connections
            .into_iter()
            .map(|connection| {
                scope.spawn(move || {
                    let Connection {
                        stream,
                        requests,
                        address,
                    } = connection;
                    run_lane(&stream, requests, plan, start, deadline, counters)
                        .with_context(|| format!("producing to the broker at {address}"))
                })
            })
            .collect();
        let mut outcome = Outcome::default();
        for handle in handles {
            let lane = handle
                .join()
                .map_err(|_| anyhow!("a producer thread panicked"))??;
            outcome.merge(lane);
        }
        Ok(outcome)
    })
}

fn check(plan: &NativePlan<'_>) -> anyhow::Result<()> {
    ensure!(plan.producers >= 1, "at least one producer is needed");
    ensure!(!plan.partitions.is_empty(), "the topic has no partitions");
    ensure!(
        matches!(plan.acks, -1..=1),
        "acks {} is not 0, 1 or -1",
        plan.acks
    );
    ensure!(
        (1..=INFLIGHT_REQUESTS_MAX).contains(&plan.inflight),
        "--inflight {}: expected 1..={INFLIGHT_REQUESTS_MAX}",
        plan.inflight
    );
    ensure!(
        plan.messages.is_some() || plan.duration.is_some(),
        "a native run needs a message count or a duration"
    );
    ensure!(
        plan.batch_bytes <= FRAMES_BYTES_MAX,
        "--batch-size {}: expected at most {FRAMES_BYTES_MAX}",
        plan.batch_bytes
    );
    Ok(())
}

/// A lane, connected, with its requests encoded.
struct Connection {
    stream: Link,
    requests: Requests,
    address: String,
}

/// Finds the partitions' leaders, encodes every request and connects every
/// lane, all before the clock starts.
fn connect_lanes(plan: &NativePlan<'_>) -> anyhow::Result<Vec<Connection>> {
    let leaders = leaders(plan.bootstrap, plan.topic, (plan.timeout, &plan.security))?;
    let lanes = lanes(plan.partitions, plan.producers, &leaders)?;
    let timestamp_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        });
    let (batch, per_batch) = full_batch(plan.value, plan.batch_bytes, timestamp_ms)?;
    // A full request per partition, and at most one smaller one per lane.
    let frames_bytes = batch
        .len()
        .saturating_mul(plan.partitions.len() + lanes.len());
    ensure!(
        frames_bytes <= FRAMES_BYTES_MAX,
        "the requests of {} partitions take {frames_bytes} bytes, at most {FRAMES_BYTES_MAX} \
         allowed: lower --batch-size",
        plan.partitions.len()
    );
    let batch = Bytes::from(batch);
    let lane_count = lanes.len();
    let mut connections = Vec::with_capacity(lane_count);
    for (index, lane) in lanes.into_iter().enumerate() {
        let quota = plan.messages.map(|total| share(total, lane_count, index));
        let requests = Requests::encode(
            plan,
            &lane.partitions,
            &batch,
            per_batch,
            quota,
            timestamp_ms,
        )?;
        connections.push(Connection {
            stream: connect(&lane.address, plan.timeout, &plan.security)?,
            requests,
            address: lane.address,
        });
    }
    Ok(connections)
}

/// One connection: partitions of one connection k that the broker at
/// `address` leads. On a single broker each connection k is one lane; in a
/// cluster its partitions are split by leader, one lane per leader.
#[derive(Debug, PartialEq)]
struct Lane {
    address: String,
    partitions: Vec<i32>,
}

fn lanes(
    partitions: &[i32],
    producers: usize,
    leaders: &HashMap<i32, String>,
) -> anyhow::Result<Vec<Lane>> {
    let mut lanes = Vec::new();
    for k in 0..producers.min(partitions.len()) {
        let mut by_leader: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for &partition in partitions.iter().skip(k).step_by(producers) {
            let address = leaders.get(&partition).with_context(|| {
                format!("the metadata names no leader of partition {partition}")
            })?;
            by_leader.entry(address).or_default().push(partition);
        }
        lanes.extend(by_leader.into_iter().map(|(address, partitions)| Lane {
            address: address.to_string(),
            partitions,
        }));
    }
    Ok(lanes)
}

/// Lane `index`'s share of `total` messages; the shares add up to `total`.
fn share(total: u64, lanes: usize, index: usize) -> u64 {
    let (lanes, index) = (lanes as u64, index as u64);
    total / lanes + u64::from(index < total % lanes)
}

/// Builds a batch of as many copies of `value` as fit in `batch_bytes`, at
/// least one; returns it and its record count. The next record is at most
/// 2 bytes longer than the last (its offset delta and length varints may
/// each grow a byte), so the batch may be one record short of full.
fn full_batch(
    value: &[u8],
    batch_bytes: usize,
    timestamp_ms: i64,
) -> anyhow::Result<(Vec<u8>, u64)> {
    let mut builder = BatchBuilder::new(timestamp_ms);
    let mut count = 0;
    loop {
        let before = builder.size();
        builder.push(&NewRecord::value(value));
        count += 1;
        let record_bytes = builder.size() - before;
        if builder.size() + record_bytes + 2 > batch_bytes {
            return Ok((builder.finish()?, count));
        }
    }
}

fn batch(value: &[u8], count: u64, timestamp_ms: i64) -> anyhow::Result<Vec<u8>> {
    let mut builder = BatchBuilder::new(timestamp_ms);
    for _ in 0..count {
        builder.push(&NewRecord::value(value));
    }
    Ok(builder.finish()?)
}

/// One encoded produce request: a frame with its size prefix.
struct Frame {
    bytes: Vec<u8>,
    partition: i32,
    messages: u64,
}

/// The produce requests of one lane, in sending order: full batches
/// round-robin over its partitions, then, for an exact message count, one
/// smaller batch.
struct Requests {
    full: Vec<Frame>,
    /// Full requests to send; `None`: until the deadline.
    full_count: Option<u64>,
    tail: Option<Frame>,
    issued: u64,
}

impl Requests {
    fn encode(
        plan: &NativePlan<'_>,
        partitions: &[i32],
        batch: &Bytes,
        per_batch: u64,
        quota: Option<u64>,
        timestamp_ms: i64,
    ) -> anyhow::Result<Requests> {
        let timeout_ms = i32::try_from(plan.timeout.as_millis()).unwrap_or(i32::MAX);
        let frame = |partition: i32, batch: Bytes, messages: u64| -> anyhow::Result<Frame> {
            let request = ProduceRequest::default()
                .with_acks(plan.acks)
                .with_timeout_ms(timeout_ms)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(plan.topic.to_string())))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(partition)
                                .with_records(Some(batch)),
                        ]),
                ]);
            let bytes = encode_frame(&request, PRODUCE_VERSION)?;
            Ok(Frame {
                bytes,
                partition,
                messages,
            })
        };
        let full = partitions
            .iter()
            .map(|&partition| frame(partition, batch.clone(), per_batch))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let full_count = quota.map(|quota| quota / per_batch);
        let tail = match (quota, full_count) {
            (Some(quota), Some(full_count)) if quota % per_batch > 0 => {
                let rest = quota % per_batch;
                let position = (full_count % partitions.len() as u64) as usize;
                let partition = *partitions
                    .get(position)
                    .context("a lane without partitions")?;
                let tail = Bytes::from(self::batch(plan.value, rest, timestamp_ms)?);
                Some(frame(partition, tail, rest)?)
            }
            _ => None,
        };
        Ok(Requests {
            full,
            full_count,
            tail,
            issued: 0,
        })
    }

    /// The next request to send, or `None` when all are out.
    fn next(&mut self) -> Option<&mut Frame> {
        let issued = self.issued;
        self.issued += 1;
        match self.full_count {
            Some(full_count) if issued >= full_count => {
                if issued == full_count {
                    self.tail.as_mut()
                } else {
                    None
                }
            }
            _ => {
                let position = issued.checked_rem(self.full.len() as u64)?;
                self.full.get_mut(position as usize)
            }
        }
    }
}

/// A request the writer sent and the reader awaits the response of.
struct Sent {
    correlation_id: i32,
    partition: i32,
    messages: u64,
    at: Instant,
}

/// How the writer keeps at most `inflight` requests unanswered: it takes
/// a credit back from the reader for each response before sending more.
/// `sent` holds at most `inflight` requests, so sending never blocks.
struct Pipeline {
    sent: SyncSender<Sent>,
    credits: Receiver<()>,
    inflight: usize,
}

/// Sends one lane's requests and, unless acks=0, reads their responses.
/// The outcome's elapsed time runs from `start` to the last response.
fn run_lane(
    stream: &Link,
    requests: Requests,
    plan: &NativePlan<'_>,
    start: Instant,
    deadline: Option<Instant>,
    counters: &Counters,
) -> anyhow::Result<Outcome> {
    let value_bytes = plan.value.len() as u64;
    if plan.acks == 0 {
        let mut outcome = Outcome::default();
        write_requests(stream.writer()?, requests, deadline, None, |frame| {
            outcome.messages += frame.messages;
            outcome.bytes += frame.messages * value_bytes;
            outcome.elapsed = start.elapsed();
            counters.add_produced(frame.messages, frame.messages * value_bytes);
        })?;
        return Ok(outcome);
    }
    let (sent, sent_rx) = sync_channel(plan.inflight);
    let (credits_tx, credits) = sync_channel(plan.inflight);
    std::thread::scope(|scope| {
        let link_reader = stream.reader()?;
        let reader = scope.spawn(move || {
            let read = read_responses(link_reader, sent_rx, credits_tx, plan, start, counters);
            if read.is_err() {
                // Stops the writer; the connection is broken either way.
                stream.shutdown();
            }
            read
        });
        let pipeline = Pipeline {
            sent,
            credits,
            inflight: plan.inflight,
        };
        let written = write_requests(stream.writer()?, requests, deadline, Some(pipeline), |_| {});
        if written.is_err() {
            // Stops the reader; the connection is broken either way.
            stream.shutdown();
        }
        let read = reader
            .join()
            .map_err(|_| anyhow!("the response reader panicked"))?;
        // The reader's error, if any, explains the writer's.
        let outcome = read?;
        written?;
        Ok(outcome)
    })
}

fn write_requests(
    mut stream: impl Write,
    mut requests: Requests,
    deadline: Option<Instant>,
    pipeline: Option<Pipeline>,
    mut written: impl FnMut(&Frame),
) -> anyhow::Result<()> {
    let mut correlation_id = 0_i32;
    let mut unanswered = 0;
    while let Some(frame) = requests.next() {
        if let Some(pipeline) = &pipeline {
            if unanswered == pipeline.inflight {
                pipeline
                    .credits
                    .recv()
                    .map_err(|_| anyhow!("the response reader stopped"))?;
                unanswered -= 1;
            }
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        correlation_id = correlation_id.wrapping_add(1);
        frame.bytes[CORRELATION_ID].copy_from_slice(&correlation_id.to_be_bytes());
        if let Some(pipeline) = &pipeline {
            let sent = Sent {
                correlation_id,
                partition: frame.partition,
                messages: frame.messages,
                at: Instant::now(),
            };
            pipeline
                .sent
                .send(sent)
                .map_err(|_| anyhow!("the response reader stopped"))?;
            unanswered += 1;
        }
        stream.write_all(&frame.bytes).with_context(|| {
            format!(
                "cannot send a produce request for partition {}",
                frame.partition
            )
        })?;
        written(frame);
    }
    Ok(())
}

fn read_responses(
    stream: impl Read,
    sent: Receiver<Sent>,
    credits: SyncSender<()>,
    plan: &NativePlan<'_>,
    start: Instant,
    counters: &Counters,
) -> anyhow::Result<Outcome> {
    let value_bytes = plan.value.len() as u64;
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, stream);
    let mut body = Vec::new();
    let mut outcome = Outcome::default();
    for request in sent {
        read_frame(&mut reader, &mut body).with_context(|| {
            format!(
                "the response to a produce request for partition {} (timeout {:?})",
                request.partition, plan.timeout
            )
        })?;
        let latency = request.at.elapsed();
        match produce_error(&body, &request, plan.topic)? {
            None => {
                outcome.messages += request.messages;
                outcome.bytes += request.messages * value_bytes;
                outcome.latencies.record(latency, request.messages);
                counters.add_produced(request.messages, request.messages * value_bytes);
            }
            Some(error) => {
                outcome.errors += request.messages;
                outcome.first_error.get_or_insert(error);
            }
        }
        outcome.elapsed = start.elapsed();
        // Never full: the writer holds at most `inflight` credits back. An
        // error means the writer is done and wants no more credits.
        let _ = credits.try_send(());
    }
    Ok(outcome)
}

/// Checks the response to `request`: `Ok(Some(error))` names the first
/// partition error code; `Err` when it is not the response to `request`.
fn produce_error(body: &[u8], request: &Sent, topic: &str) -> anyhow::Result<Option<String>> {
    let mut buf = body;
    let header = ResponseHeader::decode(&mut buf, ProduceResponse::header_version(PRODUCE_VERSION))
        .context("undecodable produce response header")?;
    ensure!(
        header.correlation_id == request.correlation_id,
        "a produce response with correlation id {}, expected {} (the next in request order)",
        header.correlation_id,
        request.correlation_id
    );
    let response = ProduceResponse::decode(&mut buf, PRODUCE_VERSION)
        .with_context(|| format!("undecodable produce v{PRODUCE_VERSION} response"))?;
    let mut answered = false;
    let mut error = None;
    for topic_response in &response.responses {
        for partition in &topic_response.partition_responses {
            answered |=
                topic_response.name.0.as_str() == topic && partition.index == request.partition;
            if partition.error_code != 0 && error.is_none() {
                let mut text = format!(
                    "partition {}: {}",
                    partition.index,
                    error_name(partition.error_code)
                );
                if let Some(message) = partition.error_message.as_ref().filter(|m| !m.is_empty()) {
                    text.push_str(&format!(": {message}"));
                }
                error = Some(text);
            }
        }
    }
    ensure!(
        answered,
        "the produce response with correlation id {} does not answer partition {} of {topic}",
        request.correlation_id,
        request.partition
    );
    Ok(error)
}

/// Kafka's name of an error code, e.g. `NOT_LEADER_OR_FOLLOWER (6)`.
fn error_name(code: i16) -> String {
    let camel = match ResponseError::try_from_code(code) {
        None => return format!("NONE ({code})"),
        Some(ResponseError::Unknown(_)) => return format!("UNKNOWN ({code})"),
        Some(error) => error.to_string(),
    };
    let mut name = String::new();
    for (index, c) in camel.chars().enumerate() {
        if index > 0 && c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    format!("{name} ({code})")
}

/// Encodes `request` as a whole frame: size, header (correlation id 0), body.
fn encode_frame<R: Request>(request: &R, version: i16) -> anyhow::Result<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut frame = vec![0_u8; 4];
    header.encode(&mut frame, R::header_version(version))?;
    request.encode(&mut frame, version)?;
    let size = i32::try_from(frame.len() - 4)
        .with_context(|| format!("a request of {} bytes", frame.len()))?;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Ok(frame)
}

/// Reads one response frame into `body`, refusing sizes beyond
/// [`RESPONSE_BYTES_MAX`] before allocating for them.
fn read_frame(reader: &mut impl Read, body: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut size = [0_u8; 4];
    reader
        .read_exact(&mut size)
        .map_err(|error| match error.kind() {
            ErrorKind::UnexpectedEof => anyhow!("the broker closed the connection"),
            ErrorKind::WouldBlock | ErrorKind::TimedOut => anyhow!("no response in time"),
            _ => anyhow::Error::new(error).context("cannot read a response"),
        })?;
    let size = i32::from_be_bytes(size);
    let size = usize::try_from(size)
        .ok()
        .filter(|&size| size <= RESPONSE_BYTES_MAX)
        .with_context(|| {
            format!("a response of {size} bytes, expected 0..={RESPONSE_BYTES_MAX}")
        })?;
    body.clear();
    body.resize(size, 0);
    reader.read_exact(body).context("a truncated response")
}

/// The leader's HOST:PORT of each partition of `topic`, asked of the first
/// broker of `bootstrap`.
fn leaders(
    bootstrap: &str,
    topic: &str,
    (timeout, security): (Duration, &Security),
) -> anyhow::Result<HashMap<i32, String>> {
    let address = bootstrap
        .split(',')
        .map(str::trim)
        .find(|address| !address.is_empty())
        .with_context(|| format!("--bootstrap {bootstrap:?} names no broker"))?;
    let link = connect(address, timeout, security)?;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(false);
    link.writer()?
        .write_all(&encode_frame(&request, METADATA_VERSION)?)
        .with_context(|| format!("cannot send a Metadata request to {address}"))?;
    let mut body = Vec::new();
    read_frame(&mut link.reader()?, &mut body)
        .with_context(|| format!("Metadata from {address}"))?;
    let mut buf = &body[..];
    let header =
        ResponseHeader::decode(&mut buf, MetadataResponse::header_version(METADATA_VERSION))
            .context("undecodable Metadata response header")?;
    ensure!(
        header.correlation_id == 0,
        "a Metadata response with correlation id {}, expected 0",
        header.correlation_id
    );
    let response = MetadataResponse::decode(&mut buf, METADATA_VERSION)
        .with_context(|| format!("undecodable Metadata v{METADATA_VERSION} response"))?;
    let brokers: HashMap<i32, String> = response
        .brokers
        .iter()
        .map(|broker| {
            let host = broker.host.as_str();
            let address = if host.contains(':') {
                format!("[{host}]:{}", broker.port)
            } else {
                format!("{host}:{}", broker.port)
            };
            (broker.node_id.0, address)
        })
        .collect();
    let Some(metadata) = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|name| name.0.as_str() == topic))
    else {
        bail!("the Metadata response from {address} does not mention topic {topic:?}");
    };
    if metadata.error_code != 0 {
        bail!("topic {topic:?}: {}", error_name(metadata.error_code));
    }
    let mut leaders = HashMap::new();
    for partition in &metadata.partitions {
        let index = partition.partition_index;
        if partition.error_code != 0 {
            bail!(
                "partition {index} of {topic:?}: {}",
                error_name(partition.error_code)
            );
        }
        let leader = partition.leader_id.0;
        let address = brokers
            .get(&leader)
            .with_context(|| format!("partition {index} of {topic:?} is led by broker {leader}, which the metadata does not list"))?;
        leaders.insert(index, address.clone());
    }
    Ok(leaders)
}

/// Connects to `address` (HOST:PORT), IPv4 first as the rdkafka clients
/// do, over TLS and logged in with SASL if `security` says so.
fn connect(address: &str, timeout: Duration, security: &Security) -> anyhow::Result<Link> {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let socket = connect_tcp(address, timeout)?;
    let peer = socket.peer_addr()?;
    let link = Link::open(socket, host, &security.tls)?;
    if let Some(sasl) = &security.sasl {
        crate::connection::Connection::log_in_over(&link, peer, sasl)?;
    }
    Ok(link)
}

fn connect_tcp(address: &str, timeout: Duration) -> anyhow::Result<TcpStream> {
    let mut addresses: Vec<SocketAddr> = address
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {address}"))?
        .collect();
    addresses.sort_by_key(SocketAddr::is_ipv6);
    let mut failures = Vec::new();
    for socket_address in addresses {
        match TcpStream::connect_timeout(&socket_address, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                return Ok(stream);
            }
            Err(error) => failures.push(format!("{socket_address}: {error}")),
        }
    }
    bail!("cannot connect to {address}: {}", failures.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_record::BatchView;

    fn plan(value: &[u8]) -> NativePlan<'_> {
        NativePlan {
            bootstrap: "127.0.0.1:1",
            topic: "bench",
            partitions: &[3, 4],
            messages: Some(35),
            duration: None,
            value,
            producers: 1,
            acks: -1,
            batch_bytes: 4096,
            inflight: 4,
            timeout: Duration::from_secs(5),
            security: Security {
                tls: None,
                sasl: None,
            },
        }
    }

    #[test]
    fn frames_decode_back_and_take_correlation_ids() {
        let value = [7_u8; 100];
        let plan = plan(&value);
        let (batch, per_batch) = full_batch(&value, plan.batch_bytes, 1_000).unwrap();
        assert!(per_batch > 1 && batch.len() <= plan.batch_bytes);
        let mut requests = Requests::encode(
            &plan,
            plan.partitions,
            &Bytes::from(batch),
            per_batch,
            None,
            1_000,
        )
        .unwrap();
        let frame = requests.next().unwrap();
        frame.bytes[CORRELATION_ID].copy_from_slice(&0x0102_0304_i32.to_be_bytes());

        let mut buf = &frame.bytes[..];
        let size = i32::from_be_bytes(buf[..4].try_into().unwrap());
        assert_eq!(size as usize, buf.len() - 4);
        buf = &buf[4..];
        let header =
            RequestHeader::decode(&mut buf, ProduceRequest::header_version(PRODUCE_VERSION))
                .unwrap();
        assert_eq!(header.request_api_key, ProduceRequest::KEY);
        assert_eq!(header.request_api_version, PRODUCE_VERSION);
        assert_eq!(header.correlation_id, 0x0102_0304);
        let request = ProduceRequest::decode(&mut buf, PRODUCE_VERSION).unwrap();
        assert_eq!(request.acks, -1);
        assert_eq!(request.topic_data.len(), 1);
        assert_eq!(request.topic_data[0].name.0.as_str(), "bench");
        let partition = &request.topic_data[0].partition_data[0];
        assert_eq!(partition.index, 3);
        let records = partition.records.as_ref().unwrap();
        let batch = BatchView::new(records).unwrap();
        batch.verify_crc().unwrap();
        assert_eq!(batch.records_count() as u64, per_batch);
        assert_eq!(batch.producer_id(), -1);
    }

    #[test]
    fn batches_fill_up_to_one_record_short() {
        for (value_bytes, batch_bytes) in [
            (1, 1_000_000),
            (100, 16_384),
            (1024, 1_000_000),
            (5000, 1000),
        ] {
            let value = vec![1_u8; value_bytes];
            let (bytes, count) = full_batch(&value, batch_bytes, 0).unwrap();
            assert_eq!(
                BatchView::new(&bytes).unwrap().records_count() as u64,
                count
            );
            if count > 1 {
                assert!(bytes.len() <= batch_bytes, "{value_bytes} {batch_bytes}");
            }
            assert!(
                batch(&value, count + 2, 0).unwrap().len() > batch_bytes,
                "{value_bytes} {batch_bytes}"
            );
        }
    }

    #[test]
    fn requests_end_at_the_exact_message_count() {
        let value = [7_u8; 100];
        let plan = plan(&value);
        let (batch, per_batch) = full_batch(&value, 1000, 0).unwrap();
        assert_eq!(per_batch, 8);
        let mut requests = Requests::encode(
            &plan,
            plan.partitions,
            &Bytes::from(batch),
            per_batch,
            Some(35),
            0,
        )
        .unwrap();
        let mut sent = Vec::new();
        while let Some(frame) = requests.next() {
            sent.push((frame.partition, frame.messages));
        }
        assert_eq!(sent, [(3, 8), (4, 8), (3, 8), (4, 8), (3, 3)]);
    }

    #[test]
    fn lanes_take_every_nth_partition_split_by_leader() {
        let leaders: HashMap<i32, String> = (0..6)
            .map(|p| (p, format!("broker{}:9092", p % 2)))
            .collect();
        let lane = |address: &str, partitions: &[i32]| Lane {
            address: address.into(),
            partitions: partitions.into(),
        };
        assert_eq!(
            lanes(&[0, 1, 2, 3, 4, 5], 2, &leaders).unwrap(),
            [
                lane("broker0:9092", &[0, 2, 4]),
                lane("broker1:9092", &[1, 3, 5])
            ]
        );
        assert_eq!(
            lanes(&[0, 1, 2], 5, &leaders).unwrap(),
            [
                lane("broker0:9092", &[0]),
                lane("broker1:9092", &[1]),
                lane("broker0:9092", &[2])
            ]
        );
        assert_eq!(
            lanes(&[0, 1, 2, 3], 1, &leaders).unwrap(),
            [lane("broker0:9092", &[0, 2]), lane("broker1:9092", &[1, 3])]
        );
        assert!(lanes(&[0, 9], 1, &leaders).is_err());
        assert_eq!(
            (0..4).map(|index| share(10, 4, index)).collect::<Vec<_>>(),
            [3, 3, 2, 2]
        );
    }

    #[test]
    fn responses_are_bounded_and_errors_named() {
        let mut wire = &((RESPONSE_BYTES_MAX as i32) + 1).to_be_bytes()[..];
        let error = read_frame(&mut wire, &mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("expected 0..="), "{error}");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER (6)");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR (-1)");
        assert_eq!(error_name(999), "UNKNOWN (999)");
    }
}
