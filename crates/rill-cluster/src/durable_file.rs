//! The framing of every file the quorum writes, and atomic replacement.
//!
//! A record is
//!
//! ```text
//! +----------------+-----------------+----------------------+
//! | length: u32 LE | crc32c: u32 LE  | payload: length bytes |
//! +----------------+-----------------+----------------------+
//! ```
//!
//! where the CRC-32C covers the payload only, and `length` is at most
//! [`RECORD_BYTES_MAX`]. The Raft log is a sequence of records; the vote,
//! the purge point and a snapshot are files holding exactly one record,
//! replaced atomically (rill-storage's `durable` module: temp file,
//! fdatasync, rename, fsync the directory), so a reader sees the old
//! record or the new one, never a mix.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rill_storage::IoFailure;
use rill_storage::durable::write_atomically;

/// Bytes of a record's header: length and CRC.
pub(crate) const RECORD_HEADER_BYTES: usize = 8;
/// The largest payload of one record. A metadata log entry is small (a
/// topic with 100 000 partitions of 3 replicas is a few MiB of JSON); the
/// bound is what a length read back from disk is checked against before
/// anything is allocated for it.
pub const RECORD_BYTES_MAX: usize = 64 * 1024 * 1024;

/// An I/O or format failure of one of the quorum's files.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path} at byte {offset}: record does not decode: {source}")]
    Decode {
        path: PathBuf,
        offset: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("a record of {bytes} bytes is larger than the {max} allowed")]
    TooLarge { bytes: usize, max: usize },
}

impl From<IoFailure> for FileError {
    fn from(failure: IoFailure) -> FileError {
        FileError::Io {
            op: failure.operation,
            path: failure.path,
            source: failure.source,
        }
    }
}

impl FileError {
    pub(crate) fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| FileError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}

/// Appends one framed record holding `payload` to `out`.
pub(crate) fn encode_record(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FileError> {
    if payload.len() > RECORD_BYTES_MAX {
        return Err(FileError::TooLarge {
            bytes: payload.len(),
            max: RECORD_BYTES_MAX,
        });
    }
    let length = u32::try_from(payload.len()).map_err(|_| FileError::TooLarge {
        bytes: payload.len(),
        max: RECORD_BYTES_MAX,
    })?;
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// What is at the start of `bytes`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Framed<'a> {
    /// A whole record whose CRC matches: its payload and its framed length.
    Record { payload: &'a [u8], bytes: usize },
    /// Fewer bytes than the header or the header's length: a write cut short.
    Incomplete,
    /// A whole record of `bytes` framed bytes whose CRC does not match.
    BadCrc {
        expected: u32,
        found: u32,
        bytes: usize,
    },
    /// A length beyond [`RECORD_BYTES_MAX`].
    BadLength { length: usize },
}

/// Reads the record at the start of `bytes`, trusting nothing in them.
pub(crate) fn decode_record(bytes: &[u8]) -> Framed<'_> {
    let Some((header, rest)) = bytes.split_first_chunk::<RECORD_HEADER_BYTES>() else {
        return Framed::Incomplete;
    };
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let length = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let expected = u32::from_le_bytes([c0, c1, c2, c3]);
    if length > RECORD_BYTES_MAX {
        return Framed::BadLength { length };
    }
    let Some(payload) = rest.get(..length) else {
        return Framed::Incomplete;
    };
    let found = crc32c::crc32c(payload);
    if found != expected {
        return Framed::BadCrc {
            expected,
            found,
            bytes: RECORD_HEADER_BYTES + length,
        };
    }
    Framed::Record {
        payload,
        bytes: RECORD_HEADER_BYTES + length,
    }
}

/// Reads a file written by [`replace_atomically`]: `None` if it does not
/// exist, else its one record's payload.
pub(crate) fn read_single(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileError::io("read", path)(e)),
    };
    let corrupt = |reason: String| FileError::Corrupt {
        path: path.to_owned(),
        offset: 0,
        reason,
    };
    match decode_record(&bytes) {
        Framed::Record { payload, bytes: n } if n == bytes.len() => Ok(Some(payload.to_vec())),
        Framed::Record { bytes: n, .. } => Err(corrupt(format!(
            "expected one record of {n} bytes, found a file of {} bytes",
            bytes.len()
        ))),
        Framed::Incomplete => Err(corrupt(format!(
            "expected a whole record, found {} bytes",
            bytes.len()
        ))),
        Framed::BadCrc {
            expected, found, ..
        } => Err(corrupt(format!(
            "expected CRC-32C {expected:#010x}, found {found:#010x}"
        ))),
        Framed::BadLength { length } => Err(corrupt(format!(
            "expected a length <= {RECORD_BYTES_MAX}, found {length}"
        ))),
    }
}

/// Replaces `dir/name` with one record holding `payload`, atomically and
/// durably (rill-storage's [`write_atomically`]: temp file, fdatasync,
/// rename, fsync the directory), so after a crash the file holds the old
/// record or the new one.
pub(crate) fn replace_atomically(dir: &Path, name: &str, payload: &[u8]) -> Result<(), FileError> {
    let mut bytes = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
    encode_record(payload, &mut bytes)?;
    write_atomically(&dir.join(name), &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_every_cut_is_incomplete() {
        let mut bytes = Vec::new();
        encode_record(b"hello", &mut bytes).unwrap();
        assert_eq!(
            decode_record(&bytes),
            Framed::Record {
                payload: b"hello",
                bytes: 13
            }
        );
        for cut in 0..bytes.len() {
            assert_eq!(decode_record(&bytes[..cut]), Framed::Incomplete);
        }
    }

    #[test]
    fn a_flipped_bit_or_huge_length_is_detected() {
        let mut bytes = Vec::new();
        encode_record(b"hello", &mut bytes).unwrap();
        bytes[10] ^= 1;
        assert!(matches!(decode_record(&bytes), Framed::BadCrc { .. }));
        let huge = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert!(matches!(decode_record(&huge), Framed::BadLength { .. }));
    }

    #[test]
    fn a_replaced_file_reads_back_and_a_damaged_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_single(&dir.path().join("vote")).unwrap(), None);
        replace_atomically(dir.path(), "vote", b"one").unwrap();
        replace_atomically(dir.path(), "vote", b"two").unwrap();
        assert_eq!(
            read_single(&dir.path().join("vote")).unwrap(),
            Some(b"two".to_vec())
        );
        assert!(!dir.path().join("vote.tmp").exists());

        let path = dir.path().join("vote");
        let mut bytes = fs::read(&path).unwrap();
        bytes.push(0);
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(read_single(&path), Err(FileError::Corrupt { .. })));
    }
}
