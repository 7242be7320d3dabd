//! Kafka's framing: a 4-byte big-endian length, then that many bytes.
//! Two-phase: the length is checked against the bound before anything is
//! allocated; then the body's buffer is allocated whole, so the bytes are
//! received straight into place and never moved. A large buffer is an
//! untouched mapping until bytes arrive (the allocator maps big blocks
//! lazily), so a client that announces 100 MiB and sends one byte holds
//! a page of memory, not 100 MiB.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The smallest request: api key, api version and correlation id.
pub(crate) const REQUEST_HEADER_BYTES_MIN: usize = 8;

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

/// Reads one frame of at most `max_bytes`.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Bytes, FrameError> {
    let mut length = [0u8; 4];
    let mut have = 0;
    while have < length.len() {
        match reader.read(&mut length[have..]).await? {
            0 if have == 0 => return Err(FrameError::Closed),
            0 => return Err(FrameError::Truncated),
            n => have += n,
        }
    }
    let length = i32::from_be_bytes(length);
    let size = usize::try_from(length).unwrap_or(0);
    if size < REQUEST_HEADER_BYTES_MIN || size > max_bytes {
        return Err(FrameError::BadLength {
            length,
            max: max_bytes,
        });
    }
    let mut body = BytesMut::with_capacity(size);
    while body.len() < size {
        let missing = size - body.len();
        let mut limited = (&mut *reader).take(missing as u64);
        if limited.read_buf(&mut body).await? == 0 {
            return Err(FrameError::Truncated);
        }
    }
    debug_assert_eq!(body.capacity(), size, "the body was received in place");
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> Result<Bytes, FrameError> {
        let mut reader = bytes;
        read_frame(&mut reader, 1024).await
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn whole_frames_are_read_and_bounds_refused_before_reading() {
        let body = [7u8; 100];
        assert_eq!(
            read(&frame(&body)).await.unwrap(),
            Bytes::from(body.to_vec())
        );
        assert!(matches!(read(&[]).await, Err(FrameError::Closed)));
        assert!(matches!(read(&[0, 0]).await, Err(FrameError::Truncated)));
        let huge = i32::MAX.to_be_bytes();
        assert!(matches!(
            read(&huge).await,
            Err(FrameError::BadLength { .. })
        ));
        let negative = (-1i32).to_be_bytes();
        assert!(matches!(
            read(&negative).await,
            Err(FrameError::BadLength { .. })
        ));
        let tiny = frame(&[1, 2, 3]);
        assert!(matches!(
            read(&tiny).await,
            Err(FrameError::BadLength { .. })
        ));
        let mut cut = frame(&body);
        cut.truncate(50);
        assert!(matches!(read(&cut).await, Err(FrameError::Truncated)));
    }
}
