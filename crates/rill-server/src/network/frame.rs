//! Kafka's framing: a 4-byte big-endian length, then that many bytes.
//! Two-phase: the length is checked against the bound before anything is
//! allocated for the frame.
//!
//! Small frames are read ahead: one receive of up to
//! [`READ_AHEAD_BYTES`] takes in as many pipelined requests as have
//! arrived, and each is split off that buffer without a copy. A producer
//! with linger.ms=0 sends a request per message or two, so this is what
//! keeps the syscalls per request below one. A frame larger than that is
//! received straight into a buffer of its final size, never moved; a large
//! buffer is an untouched mapping until bytes arrive (the allocator maps
//! big blocks lazily), so a client that announces 100 MiB and sends one
//! byte holds a page of memory, not 100 MiB. Once its request lets go of
//! it, a large frame's buffer receives the connection's next large frame:
//! a fresh megabyte per produce request meant 256 page faults, each
//! zeroing a page the socket copy then overwrote (a tenth of the broker's
//! CPU in a produce profile). An idle connection holds no buffer at all:
//! it waits for the socket to be readable first, and lets go of a kept
//! buffer after [`KEPT_BUFFER_IDLE`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;

/// The smallest request: api key, api version and correlation id.
pub(crate) const REQUEST_HEADER_BYTES_MIN: usize = 8;

/// Bytes one receive asks for when no large frame is being read: room for
/// a dozen small produce requests, and a bound on what a connection that
/// stalls mid-frame holds.
pub(crate) const READ_AHEAD_BYTES: usize = 16 * 1024;

/// The length prefix of a frame.
const LENGTH_BYTES: usize = 4;

/// The largest buffer a connection keeps for its next frame: librdkafka's
/// and the Java client's requests are at most 1 MiB by default.
const KEPT_BUFFER_BYTES_MAX: usize = 8 << 20;

/// How long a connection with nothing to read keeps a large frame's
/// buffer for the next one.
pub(crate) const KEPT_BUFFER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Why no frame could be read; every case closes the connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("the client closed the connection")]
    Closed,
    #[error("frame length {length} is outside [{REQUEST_HEADER_BYTES_MIN}, {max}]")]
    BadLength { length: i32, max: usize },
    #[error("the connection ended inside a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where a connection's bytes come from.
pub(crate) enum Incoming {
    /// A plain socket, waited on for readiness: an idle connection holds
    /// no buffer.
    Socket(OwnedReadHalf),
    /// Any other stream (TLS, whose records rustls decrypts): read into
    /// a buffer held while it waits. rustls holds buffers of its own for
    /// such a connection anyway.
    Stream(Box<dyn AsyncRead + Send + Unpin>),
}

impl AsyncRead for Incoming {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Incoming::Socket(socket) => Pin::new(socket).poll_read(cx, buf),
            Incoming::Stream(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

/// Reads the frames of one connection, in order. Owned by the
/// connection's reading task.
pub(crate) struct FrameReader {
    stream: Incoming,
    /// Bytes received and not yet handed out; no capacity while idle.
    buffered: BytesMut,
    /// The last large frame, whose buffer takes the next one once nothing
    /// else holds it.
    kept: Option<Bytes>,
    max_bytes: usize,
}

impl FrameReader {
    /// From the next frame on, frames of at most `max_bytes`.
    pub(crate) fn set_max_bytes(&mut self, max_bytes: usize) {
        self.max_bytes = max_bytes;
    }

    /// Frames of at most `max_bytes` from `stream`.
    pub(crate) fn new(stream: Incoming, max_bytes: usize) -> FrameReader {
        FrameReader {
            stream,
            buffered: BytesMut::new(),
            kept: None,
            max_bytes,
        }
    }

    /// The next frame's body. Cancel-safe only in that a cancelled read
    /// leaves the stream mid-frame: the caller closes the connection then.
    pub(crate) async fn next(&mut self) -> Result<Bytes, FrameError> {
        loop {
            let Some(size) = self.buffered_length()? else {
                self.receive().await?;
                continue;
            };
            if self.buffered.len() >= LENGTH_BYTES + size {
                self.buffered.advance(LENGTH_BYTES);
                let frame = self.buffered.split_to(size).freeze();
                if self.buffered.is_empty() {
                    self.buffered = BytesMut::new(); // hold nothing while idle
                }
                return Ok(frame);
            }
            if size > READ_AHEAD_BYTES {
                return self.receive_large(size).await;
            }
            self.receive().await?;
        }
    }

    /// The length of the buffered frame, once its prefix is in, checked.
    fn buffered_length(&self) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = self.buffered.first_chunk::<LENGTH_BYTES>() else {
            return Ok(None);
        };
        let length = i32::from_be_bytes(*prefix);
        let size = usize::try_from(length).unwrap_or(0);
        if size < REQUEST_HEADER_BYTES_MIN || size > self.max_bytes {
            return Err(FrameError::BadLength {
                length,
                max: self.max_bytes,
            });
        }
        Ok(Some(size))
    }

    /// Waits until the socket is readable, then receives what has arrived,
    /// up to [`READ_AHEAD_BYTES`] more.
    async fn receive(&mut self) -> Result<(), FrameError> {
        let socket = match &mut self.stream {
            Incoming::Socket(socket) => socket,
            Incoming::Stream(stream) => {
                self.buffered.reserve(READ_AHEAD_BYTES);
                return match stream.read_buf(&mut self.buffered).await {
                    Ok(0) if self.buffered.is_empty() => Err(FrameError::Closed),
                    Ok(0) => Err(FrameError::Truncated),
                    Ok(_) => Ok(()),
                    // A TLS client that leaves between frames without a
                    // close_notify (most do) has just left.
                    Err(error)
                        if error.kind() == std::io::ErrorKind::UnexpectedEof
                            && self.buffered.is_empty() =>
                    {
                        Err(FrameError::Closed)
                    }
                    Err(error) => Err(error.into()),
                };
            }
        };
        loop {
            Self::readable(socket, &mut self.kept).await?;
            self.buffered.reserve(READ_AHEAD_BYTES);
            match socket.try_read_buf(&mut self.buffered) {
                Ok(0) if self.buffered.is_empty() => return Err(FrameError::Closed),
                Ok(0) => return Err(FrameError::Truncated),
                Ok(_) => return Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    if self.buffered.is_empty() {
                        self.buffered = BytesMut::new();
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Waits until the socket is readable; a kept buffer is let go if that
    /// takes longer than [`KEPT_BUFFER_IDLE`].
    async fn readable(socket: &OwnedReadHalf, kept: &mut Option<Bytes>) -> std::io::Result<()> {
        if kept.is_some() {
            match tokio::time::timeout(KEPT_BUFFER_IDLE, socket.readable()).await {
                Ok(ready) => return ready,
                Err(_) => *kept = None,
            }
        }
        socket.readable().await
    }

    /// Receives the rest of a frame of `size` bytes, of which the buffer
    /// holds the start, into the kept buffer if it is free and large
    /// enough, else into a new one of exactly that size.
    async fn receive_large(&mut self, size: usize) -> Result<Bytes, FrameError> {
        self.buffered.advance(LENGTH_BYTES);
        debug_assert!(self.buffered.len() < size, "the frame is not all buffered");
        let mut body = match self.kept.take().map(Bytes::try_into_mut) {
            Some(Ok(mut kept)) if kept.capacity() >= size => {
                kept.clear();
                kept
            }
            _ => BytesMut::with_capacity(size),
        };
        body.extend_from_slice(&self.buffered);
        self.buffered = BytesMut::new();
        while body.len() < size {
            let missing = size - body.len();
            let mut limited = (&mut self.stream).take(missing as u64);
            if limited.read_buf(&mut body).await? == 0 {
                return Err(FrameError::Truncated);
            }
        }
        let frame = body.freeze();
        if size <= KEPT_BUFFER_BYTES_MAX {
            self.kept = Some(frame.clone());
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A reader of frames of at most `max` bytes over loopback, and the
    /// client's end.
    async fn connected(max: usize) -> (FrameReader, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // Dropping the write half shuts down only the server's sending side.
        let (read, _) = server.into_split();
        (FrameReader::new(Incoming::Socket(read), max), client)
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    /// Every frame of `wire`, sent at once, then the error that ends it.
    async fn read_all(wire: &[u8], max: usize) -> (Vec<Bytes>, FrameError) {
        let (mut reader, mut client) = connected(max).await;
        client.write_all(wire).await.unwrap();
        client.shutdown().await.unwrap();
        let mut frames = Vec::new();
        loop {
            match reader.next().await {
                Ok(frame) => frames.push(frame),
                Err(error) => return (frames, error),
            }
        }
    }

    #[tokio::test]
    async fn pipelined_frames_small_and_large_come_out_whole_and_in_order() {
        let bodies: Vec<Vec<u8>> = [100, 8, 70_000, 12, READ_AHEAD_BYTES, 3 << 20, 9]
            .iter()
            .enumerate()
            .map(|(i, &len)| (0..len).map(|b| (b * 31 + i) as u8).collect())
            .collect();
        let wire: Vec<u8> = bodies.iter().flat_map(|body| frame(body)).collect();
        let (frames, end) = read_all(&wire, 4 << 20).await;
        assert!(matches!(end, FrameError::Closed), "{end:?}");
        assert_eq!(frames.len(), bodies.len());
        for (frame, body) in frames.iter().zip(&bodies) {
            assert_eq!(frame.as_ref(), body.as_slice());
        }
    }

    #[tokio::test]
    async fn a_large_frame_buffer_is_reused_only_once_nothing_holds_it() {
        let (mut reader, mut client) = connected(1 << 20).await;
        let bodies: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i + 1; 100_000]).collect();
        let wire: Vec<u8> = bodies.iter().flat_map(|body| frame(body)).collect();
        client.write_all(&wire).await.unwrap();
        let first = reader.next().await.unwrap();
        let first_at = first.as_ptr();
        assert_eq!(first.as_ref(), bodies[0].as_slice());
        drop(first);
        let second = reader.next().await.unwrap();
        assert_eq!(second.as_ptr(), first_at, "received into the freed buffer");
        assert_eq!(second.as_ref(), bodies[1].as_slice());
        // Still held (as a request's records would be): never written over.
        let third = reader.next().await.unwrap();
        assert_ne!(third.as_ptr(), second.as_ptr());
        assert_eq!(second.as_ref(), bodies[1].as_slice());
        assert_eq!(third.as_ref(), bodies[2].as_slice());
    }

    #[tokio::test]
    async fn bounds_are_refused_before_reading_the_body() {
        for length in [i32::MAX, -1, 3, 2048] {
            let (frames, end) = read_all(&length.to_be_bytes(), 1024).await;
            assert!(frames.is_empty());
            assert!(
                matches!(end, FrameError::BadLength { length: l, max: 1024 } if l == length),
                "{length}: {end:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_connection_that_ends_inside_a_frame_is_truncated() {
        let body = [7u8; 100];
        let mut cut = frame(&body);
        cut.truncate(50);
        assert!(matches!(
            read_all(&cut, 1024).await.1,
            FrameError::Truncated
        ));
        assert!(matches!(
            read_all(&[0, 0], 1024).await.1,
            FrameError::Truncated
        ));
        let mut cut_large = frame(&vec![1u8; 100_000]);
        cut_large.truncate(60_000);
        assert!(matches!(
            read_all(&cut_large, 1 << 20).await.1,
            FrameError::Truncated
        ));
    }

    #[tokio::test]
    async fn a_frame_sent_a_byte_at_a_time_arrives_whole() {
        let (mut reader, mut client) = connected(1024).await;
        let wire = frame(b"slowly, one byte at a time");
        let sender = tokio::spawn(async move {
            for byte in wire {
                client.write_all(&[byte]).await.unwrap();
                client.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            client
        });
        assert_eq!(
            reader.next().await.unwrap().as_ref(),
            b"slowly, one byte at a time"
        );
        drop(sender.await.unwrap());
        assert!(matches!(reader.next().await, Err(FrameError::Closed)));
    }
}
