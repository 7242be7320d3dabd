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
        Compression::Lz4 => {
            let frame = lz4_first_frame(input).map_err(|message| corrupt(compression, &message))?;
            bounded(
                lz4_flex::frame::FrameDecoder::new(frame),
                compression,
                max_bytes,
            )
        }
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

/// The LZ4 frame format's magic number, little-endian on the wire.
const LZ4_FRAME_MAGIC: u32 = 0x184D_2204;
/// FLG bits 7-6: the frame format version, always 01.
const LZ4_FLG_VERSION: u8 = 0b0100_0000;
const LZ4_FLG_BLOCK_CHECKSUMS: u8 = 0x10;
const LZ4_FLG_CONTENT_SIZE: u8 = 0x08;
const LZ4_FLG_CONTENT_CHECKSUM: u8 = 0x04;
const LZ4_FLG_DICTIONARY_ID: u8 = 0x01;
/// A block size's high bit: the block is stored uncompressed.
const LZ4_BLOCK_UNCOMPRESSED: u32 = 0x8000_0000;

/// The first LZ4 frame of `input`, its block lengths checked against the
/// frame's block maximum and the bytes actually there. What Kafka's
/// clients write and its brokers read: one frame in the frame format
/// (Kafka's reader stops at the end mark and refuses other magic numbers).
///
/// lz4_flex sizes its buffers from a frame's declared maximum block size
/// and a block's declared length before reading the block, and reads
/// every frame that follows: 15 bytes of frame made it zero 4 MiB, and a
/// records section of many such frames took minutes to expand. Only the
/// first frame is handed on, and only once it is known to be there whole.
fn lz4_first_frame(input: &[u8]) -> Result<&[u8], &'static str> {
    let mut rest = input;
    let mut take = |n: usize| -> Result<&[u8], &'static str> {
        let (head, tail) = rest
            .split_at_checked(n)
            .ok_or("the frame runs past the end")?;
        rest = tail;
        Ok(head)
    };
    let mut magic = [0u8; 4];
    magic.copy_from_slice(take(4)?);
    if u32::from_le_bytes(magic) != LZ4_FRAME_MAGIC {
        return Err("not an LZ4 frame (magic 0x184D2204; legacy and skippable frames are refused)");
    }
    let descriptor = take(2)?;
    let (flg, bd) = (descriptor[0], descriptor[1]);
    if flg & 0b1100_0000 != LZ4_FLG_VERSION {
        return Err("unsupported LZ4 frame version");
    }
    let block_max: usize = match (bd >> 4) & 0x07 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        _ => return Err("invalid LZ4 maximum block size"),
    };
    if flg & LZ4_FLG_CONTENT_SIZE != 0 {
        take(8)?;
    }
    if flg & LZ4_FLG_DICTIONARY_ID != 0 {
        take(4)?;
    }
    take(1)?; // header checksum, which the decoder checks
    loop {
        let mut size = [0u8; 4];
        size.copy_from_slice(take(4)?);
        let size = u32::from_le_bytes(size);
        if size == 0 {
            break; // end mark
        }
        let len = (size & !LZ4_BLOCK_UNCOMPRESSED) as usize;
        if len > block_max {
            return Err("an LZ4 block is larger than its frame's maximum");
        }
        take(len)?;
        if flg & LZ4_FLG_BLOCK_CHECKSUMS != 0 {
            take(4)?;
        }
    }
    if flg & LZ4_FLG_CONTENT_CHECKSUM != 0 {
        take(4)?;
    }
    let frame_bytes = input.len() - rest.len();
    Ok(&input[..frame_bytes])
}

/// Bytes of input per chunk of snappy-java's framing (its default block).
const XERIAL_CHUNK_BYTES: usize = 32 * 1024;

/// Compresses `input` with `compression` at the codec's default level,
/// in the framing the Java client writes (see [`compress_with_level`]).
pub fn compress(compression: Compression, input: &[u8]) -> Result<Vec<u8>, CompressError> {
    compress_with_level(compression, default_level(compression), input)
}

/// Kafka's default level of each codec (KIP-390): gzip's own default (6),
/// lz4 9, zstd 3.
pub fn default_level(compression: Compression) -> i32 {
    match compression {
        Compression::Gzip => 6,
        Compression::Lz4 => 9,
        Compression::Zstd => 3,
        Compression::None | Compression::Snappy => 0,
    }
}

/// Compresses `input` with `compression` at `level`, in the framing the
/// Java client writes: gzip, snappy-java's xerial framing, the LZ4 frame
/// format with independent blocks, a zstd frame. The level is gzip's
/// 0–9 (outside that, gzip's default, 6) or zstd's own; snappy has no
/// levels, and lz4_flex compresses at its one level whatever is asked.
/// Used to rewrite batches (compaction) and to store a batch in a
/// topic's own `compression.type`.
pub fn compress_with_level(
    compression: Compression,
    level: i32,
    input: &[u8],
) -> Result<Vec<u8>, CompressError> {
    let failed = |e: &dyn std::fmt::Display| CompressError::Failed {
        compression,
        message: e.to_string(),
    };
    match compression {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let level = u32::try_from(level)
                .ok()
                .filter(|l| *l <= 9)
                .map_or(flate2::Compression::default(), flate2::Compression::new);
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
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
        Compression::Zstd => zstd::encode_all(input, level).map_err(|e| failed(&e)),
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

    /// An LZ4 frame of `data` whose blocks may be up to 4 MiB.
    fn lz4_4mib_blocks(data: &[u8]) -> Vec<u8> {
        let info = lz4_flex::frame::FrameInfo::new().block_size(lz4_flex::frame::BlockSize::Max4MB);
        let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn lz4_legacy_frames_are_refused_as_kafka_refuses_them() {
        // Found by the batch_validate fuzz target: a legacy frame (magic
        // 0x184C2102, 8 MiB blocks) of 18 bytes, which lz4_flex answered
        // by reserving and zeroing megabytes.
        let legacy = [
            0x02, 0x21, 0x4c, 0x18, 0x05, 0x00, 0x00, 0x00, 0x4c, 0xff, 0xff, 0xef, 0xff, 0xff,
            0xff, 0x51, 0x00, 0xff,
        ];
        let err = decompress(Compression::Lz4, &legacy, 4).unwrap_err();
        assert!(matches!(err, DecompressError::Corrupt { .. }), "{err}");
        // A well-formed legacy frame, which lz4_flex would expand.
        let block = lz4_flex::block::compress(DATA);
        let mut valid_legacy = 0x184C_2102u32.to_le_bytes().to_vec();
        valid_legacy.extend((block.len() as u32).to_le_bytes());
        valid_legacy.extend(block);
        let err = decompress(Compression::Lz4, &valid_legacy, 1 << 20).unwrap_err();
        assert!(matches!(err, DecompressError::Corrupt { .. }), "{err}");
        // A skippable frame is no LZ4 data either.
        let skippable = [0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0];
        assert!(decompress(Compression::Lz4, &skippable, 1 << 20).is_err());
    }

    #[test]
    fn an_lz4_block_declared_longer_than_the_input_is_refused() {
        let mut frame = lz4_4mib_blocks(DATA);
        // The first block's size: past magic, FLG, BD and header checksum.
        frame[7..11].copy_from_slice(&(4u32 << 20).to_le_bytes());
        let err = decompress(Compression::Lz4, &frame, 1 << 20).unwrap_err();
        assert!(matches!(err, DecompressError::Corrupt { .. }), "{err}");
        frame[7..11].copy_from_slice(&((4u32 << 20) + 1).to_le_bytes());
        assert!(decompress(Compression::Lz4, &frame, 1 << 20).is_err());
    }

    #[test]
    fn only_the_first_lz4_frame_is_expanded_as_kafka_reads_it() {
        // Every frame after the first cost lz4_flex a 4 MiB zero fill,
        // however little it held: a records section of thousands of them
        // took minutes to expand.
        let mut frames = lz4_4mib_blocks(b"first");
        let first_len = frames.len();
        for _ in 0..100 {
            frames.extend(lz4_4mib_blocks(b"x"));
        }
        assert_eq!(
            decompress(Compression::Lz4, &frames, 1 << 20).unwrap(),
            b"first"
        );
        assert_eq!(
            decompress(Compression::Lz4, &frames[..first_len], 1 << 20).unwrap(),
            b"first"
        );
        assert!(decompress(Compression::Lz4, &frames[..first_len - 1], 1 << 20).is_err());
    }
}
