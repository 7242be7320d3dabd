//! One client connection: frames are read and handled in order, and their
//! responses written in the same order by a writer task. Requests
//! pipeline: the reader goes on while earlier responses wait (for fsync,
//! for a long poll), up to `rill.connection.inflight.requests.max`; then it
//! stops reading the socket until the oldest response is written.

use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::client_refusals::{self, ClientRefusal};
use crate::apis::{self, Api, Body, HandlerError, Pending, Request};
use crate::broker::Broker;
use crate::listeners::Listener;
use crate::metrics::Metrics;
use crate::network::frame::{FrameError, FrameReader, Incoming, REQUEST_HEADER_BYTES_MIN};
use crate::network::prefixed::Prefixed;
use crate::quotas::{self, Client};
use crate::security::{ANONYMOUS, Admit, Authenticator, TlsStream};
use crate::session::Session;
use crate::shutdown::Shutdown;

/// Request bytes a connection handles before it lets the other tasks of
/// its worker thread run. A producer whose frames keep arriving never
/// waits on its socket, so without this it would keep its thread for a
/// whole cooperative budget of requests (128 appends of 1 MiB, ~100 ms),
/// and tokio looks for other sockets' events only every 61 such turns:
/// under a flood of produce requests an ApiVersions round trip took
/// 0.7–2 s (docs/reliability.md).
const YIELD_AFTER_BYTES: usize = 1 << 20;

/// The largest frame of a SASL client before it has authenticated
/// (Kafka's sasl.server.max.receive.size default, 512 KiB).
const SASL_FRAME_BYTES_MAX: usize = 512 * 1024;

/// A request handled and waiting for its turn to be answered.
pub(crate) struct Queued {
    pub(crate) correlation_id: i32,
    /// Response header version: 1 has tagged fields.
    header_version: i16,
    pending: Pending,
    /// The request's API and version, and the throttle time its quotas
    /// put on its response.
    throttle: (ApiKey, i16, u64),
    /// When the request was read: its latency is measured from here.
    read_at: Instant,
}

/// What the first bytes of a frame say to do.
pub(crate) enum Parsed {
    Request(Request),
    /// Answer without dispatching (ApiVersions at a version Rill lacks).
    Immediate(Queued),
}

/// Why a frame's header was refused; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("a request of {length} bytes, expected at least {REQUEST_HEADER_BYTES_MIN}")]
    TooShort { length: usize },
    #[error("unknown API key {key}")]
    UnknownApiKey { key: i16 },
    #[error("unsupported API {api:?}")]
    UnsupportedApi { api: ApiKey },
    #[error("{api:?} v{version} is not supported (only v{min} to v{max})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },
    #[error("cannot decode the request header: {message}")]
    Decode { message: String },
}

/// A connection's byte stream, as accepted.
pub(crate) enum Transport {
    Plain(TcpStream),
    /// TLS, handshake done (with any bytes the listener read first put
    /// back), and the principal the client's certificate names
    /// (User:ANONYMOUS without one).
    Tls(Box<Prefixed<TlsStream>>, String),
}

/// Where responses are written: a socket, or a TLS stream over one.
type Outgoing = Box<dyn AsyncWrite + Send + Unpin>;

impl Transport {
    /// The stream split into its reading and writing ends, and the
    /// principal TLS established.
    fn split(self, peer: SocketAddr) -> (Incoming, Outgoing, Option<String>) {
        let socket = match &self {
            Transport::Plain(socket) => socket,
            Transport::Tls(stream, _) => stream.inner().get_ref().0.get_ref(),
        };
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        match self {
            Transport::Plain(socket) => {
                let (reader, writer) = socket.into_split();
                (Incoming::Socket(reader), Box::new(writer), None)
            }
            Transport::Tls(stream, principal) => {
                let (reader, writer) = tokio::io::split(*stream);
                (
                    Incoming::Stream(Box::new(reader)),
                    Box::new(writer),
                    Some(principal),
                )
            }
        }
    }
}

/// Serves one connection until the client leaves, a bound is broken, or
/// the broker shuts down (in-flight requests are answered first).
pub(crate) async fn serve(
    transport: Transport,
    (peer, listener): (SocketAddr, Arc<Listener>),
    broker: Arc<Broker>,
    shutdown: Shutdown,
) {
    let config = broker.config();
    let idle = Duration::from_millis(config.connection_idle_ms);
    let request_bytes_max = config.request_bytes_max;
    // A SASL listener's clients authenticate before anything else.
    let mut authenticator = listener.protocol.uses_sasl().then(|| {
        Authenticator::new(
            &config.sasl_enabled_mechanisms,
            config.reauth_ms,
            config.oauthbearer.clone(),
        )
    });
    let _open = broker.metrics().connection_opened(&listener.name);
    let (reader, writer, tls_principal) = transport.split(peer);
    // Before a SASL client has authenticated, its frames are SASL
    // messages: Kafka's sasl.server.max.receive.size bounds them.
    let mut frames = FrameReader::new(
        reader,
        match &authenticator {
            Some(_) => request_bytes_max.min(SASL_FRAME_BYTES_MAX),
            None => request_bytes_max,
        },
    );
    let mut session = Arc::new(Session::new(
        peer,
        listener,
        tls_principal.unwrap_or_else(|| ANONYMOUS.to_string()),
    ));
    let (queue, queued) = mpsc::channel::<Queued>(config.inflight_requests_max);
    let writer_task = tokio::spawn(write_responses(
        writer,
        queued,
        (peer, Arc::clone(&broker)),
        idle,
    ));
    let mut stopping = shutdown.clone();
    let mut bytes_since_yield = 0;
    loop {
        let frame = tokio::select! {
            () = stopping.wait() => break,
            () = queue.closed() => break,
            read = tokio::time::timeout(idle, frames.next()) => match read {
                Err(_) => {
                    tracing::debug!(%peer, "closing an idle connection");
                    break;
                }
                Ok(Err(FrameError::Closed)) => break,
                Ok(Err(error)) => {
                    client_refusals::refused(ClientRefusal::BadRequest, &peer, &error);
                    break;
                }
                Ok(Ok(frame)) => frame,
            },
        };
        // A quota holds the connection: this request waits, and the
        // socket is not read meanwhile.
        if let Some(until) = session.throttled_until() {
            tokio::select! {
                () = stopping.wait() => break,
                () = tokio::time::sleep_until(until) => {}
            }
        }
        bytes_since_yield += frame.len();
        let mut close_after = false;
        let queued = match parse(frame, &session) {
            Ok(Parsed::Request(request)) => {
                tracing::trace!(%peer, principal = %session.principal, api = ?request.api, version = request.version(), correlation_id = request.header.correlation_id, "request read");
                let admitted = match &mut authenticator {
                    Some(sasl) => {
                        let first = sasl.user().is_none();
                        let admitted = sasl.admit(&request, || broker.node().metadata());
                        if let (true, Some(user)) = (first, sasl.user()) {
                            frames.set_max_bytes(request_bytes_max);
                            session = Arc::new(session.authenticated(user));
                        }
                        admitted
                    }
                    None => Ok(Admit::Dispatch),
                };
                let (key, version) = (request.api.key(), request.version());
                let answer = |body| Queued {
                    correlation_id: request.header.correlation_id,
                    header_version: key.response_header_version(version),
                    pending: apis::ready(Ok(body)),
                    throttle: (key, version, 0),
                    read_at: Instant::now(),
                };
                match admitted {
                    Ok(Admit::Dispatch) => {
                        let correlation_id = request.header.correlation_id;
                        let read_at = Instant::now();
                        let (pending, throttle_ms) = dispatch_charged(&broker, request, &shutdown);
                        Queued {
                            correlation_id,
                            header_version: key.response_header_version(version),
                            pending,
                            throttle: (key, version, throttle_ms),
                            read_at,
                        }
                    }
                    Ok(Admit::Answer(body)) => answer(body),
                    Ok(Admit::AnswerAndClose(body)) => {
                        close_after = true;
                        answer(body)
                    }
                    Ok(Admit::Close) => break,
                    Err(error) => {
                        closing_for(peer, &error);
                        break;
                    }
                }
            }
            Ok(Parsed::Immediate(queued)) => queued,
            Err(error) => {
                client_refusals::refused(ClientRefusal::BadRequest, &peer, &error);
                break;
            }
        };
        if queue.send(queued).await.is_err() || close_after {
            break;
        }
        if let Some(paused) = session.take_pause() {
            tokio::select! {
                () = stopping.wait() => break,
                _ = paused => {} // Done, or its sender gone: either way on.
            }
        }
        if bytes_since_yield >= YIELD_AFTER_BYTES {
            bytes_since_yield = 0;
            tokio::task::yield_now().await;
        }
    }
    drop(queue);
    // The writer ends once every queued response is written.
    if let Err(error) = writer_task.await {
        tracing::warn!(%peer, %error, "the response writer failed");
    }
    broker
        .shares()
        .connection_closed(&broker, session.connection_id);
}

/// Handles a request as `apis::handle` does, first charging the client's
/// quotas (its produce bytes; whether it is over its request-time quota)
/// and after the time handling took; the connection is held for the
/// throttle. Returns the response to come and the throttle time it must
/// carry. ApiVersions and SASL are not charged; Fetch decides its own
/// throttle (a follower's is exempt, a consumer's counts its bytes).
fn dispatch_charged(
    broker: &Arc<Broker>,
    mut request: Request,
    shutdown: &Shutdown,
) -> (Pending, u64) {
    let metadata = broker.node().metadata();
    let quotas = &metadata.client_quotas;
    let api = request.api;
    if quotas.is_empty()
        || matches!(
            api,
            Api::ApiVersions | Api::SaslHandshake | Api::SaslAuthenticate
        )
    {
        return (apis::handle(broker, request, shutdown), 0);
    }
    let session = Arc::clone(&request.session);
    let client_id = request.client_id();
    let client = Client::new(&session, &client_id);
    let produce_bytes = (api == Api::Produce).then_some(request.body.len());
    let throttle_ms = broker
        .quotas()
        .charge_request(quotas, client, produce_bytes);
    request.throttle_ms = throttle_ms;
    let started = std::time::Instant::now();
    let pending = apis::handle(broker, request, shutdown);
    broker
        .quotas()
        .charge_time(quotas, client, started.elapsed());
    if api != Api::Fetch {
        session.throttle(throttle_ms);
        broker.metrics().throttled(api.name(), throttle_ms);
    }
    (pending, throttle_ms)
}

/// Reads the request header of a frame's body: which API at which
/// version, refused unless Rill implements it. The body is left undecoded,
/// for its handler.
pub(crate) fn parse(mut frame: Bytes, session: &Arc<Session>) -> Result<Parsed, HeaderError> {
    // The frame reader refuses shorter frames already; this keeps the
    // fixed fields below in bounds whoever calls.
    if frame.len() < REQUEST_HEADER_BYTES_MIN {
        return Err(HeaderError::TooShort {
            length: frame.len(),
        });
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let kafka_api = ApiKey::try_from(key).map_err(|()| HeaderError::UnknownApiKey { key })?;
    let api = Api::of(kafka_api).ok_or(HeaderError::UnsupportedApi { api: kafka_api })?;
    let (min, max) = apis::supported_versions(api);
    if !(min..=max).contains(&version) {
        if api == Api::ApiVersions {
            // KIP-511: answer in v0 with UNSUPPORTED_VERSION and our ranges,
            // so the client can pick a version.
            let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            return Ok(Parsed::Immediate(Queued {
                correlation_id,
                header_version: 0,
                pending: apis::ready(apis::unsupported_version_response()),
                throttle: (kafka_api, version, 0),
                read_at: Instant::now(),
            }));
        }
        return Err(HeaderError::UnsupportedVersion {
            api: kafka_api,
            version,
            min,
            max,
        });
    }
    let header_version = kafka_api.request_header_version(version);
    let header = if header_version == 0 {
        frame.advance(4);
        RequestHeader::default()
            .with_request_api_key(key)
            .with_request_api_version(version)
            .with_correlation_id(frame.get_i32())
    } else {
        RequestHeader::decode(&mut frame, header_version).map_err(|e| HeaderError::Decode {
            message: e.to_string(),
        })?
    };
    Ok(Parsed::Request(Request {
        header,
        api,
        body: frame,
        session: Arc::clone(session),
        throttle_ms: 0,
    }))
}

/// Responses one vectored write carries at most.
const RESPONSES_PER_WRITE_MAX: usize = 64;

/// Writes responses in request order until the queue closes or a write
/// fails. Responses that are ready together (a group commit resolves many
/// produce requests at once) go out in one write, so the client gets one
/// wake-up for them rather than one each.
///
/// A client that reads nothing for `idle` is idle too: its connection is
/// closed, as Kafka's connections.max.idle.ms does, rather than held (with
/// its queued responses) for as long as it chooses not to read.
async fn write_responses(
    mut writer: Outgoing,
    mut queued: mpsc::Receiver<Queued>,
    (peer, broker): (SocketAddr, Arc<Broker>),
    idle: Duration,
) {
    let metrics = broker.metrics();
    // A response taken from the queue that was not ready to join a write.
    let mut waiting: Option<Queued> = None;
    // The APIs whose responses a write carries, for their send time.
    let mut apis: Vec<&'static str> = Vec::with_capacity(RESPONSES_PER_WRITE_MAX);
    loop {
        let mut first = match waiting.take() {
            Some(first) => first,
            None => match queued.recv().await {
                Some(first) => first,
                None => break,
            },
        };
        let mut chunks = Vec::new();
        apis.clear();
        let outcome = (&mut first.pending).await;
        let mut failed = add_response(&mut chunks, &first, outcome, (peer, metrics));
        apis.extend(Api::of(first.throttle.0).map(Api::name));
        let mut responses = 1;
        while !failed && responses < RESPONSES_PER_WRITE_MAX {
            let Ok(mut next) = queued.try_recv() else {
                break;
            };
            let Some(outcome) = ready_now(&mut next.pending) else {
                waiting = Some(next);
                break;
            };
            failed = add_response(&mut chunks, &next, outcome, (peer, metrics));
            apis.extend(Api::of(next.throttle.0).map(Api::name));
            responses += 1;
        }
        if !chunks.is_empty() {
            let started = Instant::now();
            if let Err(error) = write_all_vectored(&mut writer, chunks, idle).await {
                tracing::debug!(%peer, %error, "cannot write a response");
                break;
            }
            metrics.responses_sent(&apis, started.elapsed());
        }
        if failed {
            break;
        }
    }
    // Dropping the receiver makes the reader stop at its next step.
    let _ = writer.shutdown().await; // The peer may already be gone; nothing to do then.
}

/// The outcome of `pending` if it has one already.
fn ready_now(pending: &mut Pending) -> Option<<Pending as Future>::Output> {
    // A later `.await` polls it again with the writer's own waker.
    let mut context = Context::from_waker(Waker::noop());
    match pending.as_mut().poll(&mut context) {
        Poll::Ready(outcome) => Some(outcome),
        Poll::Pending => None,
    }
}

/// Frames the response of `request` onto `chunks`; true if the handler
/// failed and the connection must close (after what is gathered so far).
fn add_response(
    chunks: &mut Vec<Bytes>,
    request: &Queued,
    outcome: Result<Option<Body>, HandlerError>,
    (peer, metrics): (SocketAddr, &Metrics),
) -> bool {
    let (api, version, throttle_ms) = request.throttle;
    let name = Api::of(api).map(Api::name);
    if let (Ok(_), Some(name)) = (&outcome, name) {
        metrics.request_answered(name, version, request.read_at.elapsed());
    }
    let mut body = match outcome {
        Ok(Some(body)) => body,
        Ok(None) => return false,
        Err(error) => {
            closing_for(peer, &error);
            return true;
        }
    };
    if let Some(name) = name {
        metrics.request_errors(name, &body.errors);
    }
    if throttle_ms > 0 {
        quotas::set_throttle_time(api, version, &mut body, throttle_ms);
    }
    let body_bytes: usize = body.chunks.iter().map(Bytes::len).sum();
    let header_bytes = if request.header_version >= 1 { 5 } else { 4 };
    let mut head = BytesMut::with_capacity(4 + header_bytes);
    head.put_i32((header_bytes + body_bytes) as i32);
    head.put_i32(request.correlation_id);
    if request.header_version >= 1 {
        head.put_u8(0); // no tagged fields
    }
    chunks.push(head.freeze());
    chunks.extend(body.chunks.into_iter().filter(|chunk| !chunk.is_empty()));
    false
}

/// Says why a handler's failure closes the connection: a request that
/// cannot be decoded is the client's, counted with refused clients; a
/// response that cannot be encoded is the broker's own, said each time.
fn closing_for(peer: SocketAddr, error: &HandlerError) {
    match error {
        HandlerError::Decode { .. } => {
            client_refusals::refused(ClientRefusal::BadRequest, &peer, error);
        }
        HandlerError::Encode { .. } => {
            tracing::error!(%peer, %error, "closing the connection");
        }
    }
}

/// Writes every chunk with as few vectored writes as the socket allows;
/// fails with `TimedOut` when the socket takes no byte for `idle`.
async fn write_all_vectored(
    writer: &mut Outgoing,
    mut chunks: Vec<Bytes>,
    idle: Duration,
) -> std::io::Result<()> {
    /// Slices per writev: Linux's IOV_MAX.
    const IOVECS_MAX: usize = 1024;
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<IoSlice<'_>> = chunks[first..]
            .iter()
            .take(IOVECS_MAX)
            .map(|chunk| IoSlice::new(chunk))
            .collect();
        let mut written = tokio::time::timeout(idle, writer.write_vectored(&slices))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        drop(slices);
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let chunk = &mut chunks[first];
            if written >= chunk.len() {
                written -= chunk.len();
                first += 1;
            } else {
                chunk.advance(written);
                written = 0;
            }
        }
    }
    // A TLS stream may keep the last record until flushed (a socket's
    // flush does nothing).
    tokio::time::timeout(idle, writer.flush())
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}
