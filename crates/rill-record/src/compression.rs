//! Expanding compressed records sections, with a bound on the output.
//!
//! The produce and fetch paths never call this: compressed batches are
//! stored and served as sent. Only record-level work (finding the offset
//! of a timestamp inside a batch, compaction) expands them.

use std::borrow::Cow;
use std::io::{Read, Write};

use crate::batch::{BatchView, Compression};
use crate::error::{CompressError, DecompressError};

/// Prefix of snappy data framed by xerial's snappy-java (the Java client).
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, version and compatible version.
const XERIAL_HEADER_BYTES: usize = 16;

/// The records section of `batch`: borrowed when uncompressed, else
/// expanded into at most `max_bytes`.
pub fn records_data<'a>(
    batch: &BatchView<'a>,
    max_bytes: usize,
) -> Result<Cow<'a, [u8]>, DecompressError> {
    let code = batch.attributes().compression_code();
    let compression =
        Compression::from_code(code).ok_or(DecompressError::UnknownCompression { code })?;
    match compression {
        Compression::None => Ok(Cow::Borrowed(batch.records_bytes())),
        codec => decompress(codec, batch.records_bytes(), max_bytes).map(Cow::Owned),
    }
}

/// Expands `input` compressed with `compression` into at most `max_bytes`.
pub fn decompress(
    compression: Compression,
    input: &[u8],
    max_bytes: usize,
) -> Result<Vec<u8>, DecompressError> {
    match compression {
        Compression::None => bounded(input, compression, max_bytes),
        Compression::Gzip => bounded(
            flate2::read::MultiGzDecoder::new(input),
            compression,
            max_bytes,
        ),
        Compression::Lz4 => bounded(
            lz4_flex::frame::FrameDecoder::new(input),
            compression,
            max_bytes,
        ),
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::new(input).map_err(|e| corrupt(compression, &e))?;
            bounded(decoder, compression, max_bytes)
        }
        Compression::Snappy => {
            if input.starts_with(&XERIAL_MAGIC) {
                snappy_xerial(input, max_bytes)
            } else {
                let mut out = Vec::new();
                snappy_block(input, max_bytes, &mut out)?;
                Ok(out)
            }
        }
    }
}

/// Bytes of input per chunk of snappy-java's framing (its default block).
const XERIAL_CHUNK_BYTES: usize = 32 * 1024;

/// Compresses `input` with `compression`, in the framing the Java client
/// writes: gzip, snappy-java's xerial framing, the LZ4 frame format with
/// independent blocks, a zstd frame. Used only to rewrite batches
/// (compaction); the produce path never recompresses.
pub fn compress(compression: Compression, input: &[u8]) -> Result<Vec<u8>, CompressError> {
    let failed = |e: &dyn std::fmt::Display| CompressError::Failed {
        compression,
        message: e.to_string(),
    };
    match compression {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(input).map_err(|e| failed(&e))?;
            encoder.finish().map_err(|e| failed(&e))
        }
        Compression::Snappy => {
            let mut out = XERIAL_MAGIC.to_vec();
            out.extend(1i32.to_be_bytes()); // version
            out.extend(1i32.to_be_bytes()); // compatible version
            let mut encoder = snap::raw::Encoder::new();
            for chunk in input.chunks(XERIAL_CHUNK_BYTES) {
                let block = encoder.compress_vec(chunk).map_err(|e| failed(&e))?;
                let len = i32::try_from(block.len()).map_err(|e| failed(&e))?;
                out.extend(len.to_be_bytes());
                out.extend(block);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(input).map_err(|e| failed(&e))?;
            encoder.finish().map_err(|e| failed(&e))
        }
        Compression::Zstd => zstd::encode_all(input, 3).map_err(|e| failed(&e)),
    }
}

fn bounded(
    reader: impl Read,
    compression: Compression,
    max_bytes: usize,
) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(compression, &e))?;
    if out.len() > max_bytes {
        return Err(DecompressError::TooLarge {
            compression,
            max_bytes,
        });
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, keeping `out` within `max_bytes`.
fn snappy_block(block: &[u8], max_bytes: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    let compression = Compression::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(compression, &e))?;
    if out.len().saturating_add(len) > max_bytes {
        return Err(DecompressError::TooLarge {
            compression,
            max_bytes,
        });
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt(compression, &e))?;
    Ok(())
}

/// snappy-java's framing: a 16-byte header, then (i32 length, block) chunks.
fn snappy_xerial(input: &[u8], max_bytes: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    let mut rest = input.get(XERIAL_HEADER_BYTES..).unwrap_or_default();
    while !rest.is_empty() {
        let (len_bytes, tail) = rest
            .split_at_checked(4)
            .ok_or_else(|| corrupt(Compression::Snappy, &"chunk length cut short"))?;
        let mut len = [0u8; 4];
        len.copy_from_slice(len_bytes);
        let len = usize::try_from(i32::from_be_bytes(len))
            .map_err(|_| corrupt(Compression::Snappy, &"negative chunk length"))?;
        let (block, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| corrupt(Compression::Snappy, &"chunk runs past the end"))?;
        snappy_block(block, max_bytes, &mut out)?;
        rest = tail;
    }
    Ok(out)
}

fn corrupt(compression: Compression, error: &dyn std::fmt::Display) -> DecompressError {
    DecompressError::Corrupt {
        compression,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const DATA: &[u8] = b"rill rill rill rill rill rill rill rill rill rill, a log of records";

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn lz4(data: &[u8]) -> Vec<u8> {
        let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn xerial(data: &[u8]) -> Vec<u8> {
        let mut out = XERIAL_MAGIC.to_vec();
        out.extend(1i32.to_be_bytes());
        out.extend(1i32.to_be_bytes());
        for chunk in data.chunks(20) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            out.extend((block.len() as i32).to_be_bytes());
            out.extend(block);
        }
        out
    }

    #[test]
    fn every_codec_round_trips() {
        let cases = [
            (Compression::Gzip, gzip(DATA)),
            (Compression::Lz4, lz4(DATA)),
            (Compression::Zstd, zstd::encode_all(DATA, 3).unwrap()),
            (
                Compression::Snappy,
                snap::raw::Encoder::new().compress_vec(DATA).unwrap(),
            ),
            (Compression::Snappy, xerial(DATA)),
        ];
        for (codec, compressed) in cases {
            let out = decompress(codec, &compressed, 1024).unwrap();
            assert_eq!(out, DATA, "{codec:?}");
        }
    }

    #[test]
    fn compress_round_trips_through_decompress() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let big: Vec<u8> = DATA.iter().copied().cycle().take(100_000).collect();
            let compressed = compress(codec, &big).unwrap();
            assert_eq!(
                decompress(codec, &compressed, 1 << 20).unwrap(),
                big,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn output_beyond_the_bound_is_refused() {
        let big = vec![0u8; 100_000];
        let cases = [
            (Compression::Gzip, gzip(&big)),
            (Compression::Lz4, lz4(&big)),
            (Compression::Zstd, zstd::encode_all(&big[..], 3).unwrap()),
            (
                Compression::Snappy,
                snap::raw::Encoder::new().compress_vec(&big).unwrap(),
            ),
            (Compression::Snappy, xerial(&big)),
        ];
        for (codec, compressed) in cases {
            let err = decompress(codec, &compressed, 1000).unwrap_err();
            assert!(
                matches!(err, DecompressError::TooLarge { .. }),
                "{codec:?}: {err}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error_for_every_codec() {
        let garbage = [0x55u8; 64];
        for codec in [
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
            Compression::Snappy,
        ] {
            let err = decompress(codec, &garbage, 1 << 20).unwrap_err();
            assert!(matches!(err, DecompressError::Corrupt { .. }), "{codec:?}");
        }
    }
}
