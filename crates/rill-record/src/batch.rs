//! One Kafka v2 RecordBatch: a borrowed view of its header, and in-place
//! stamping of the fields the broker owns.

use crate::error::BatchError;

/// Byte offsets of the v2 RecordBatch header fields, as in Kafka's
/// message-format spec. All integers are big-endian.
///
/// ```text
/// 0  baseOffset            i64
/// 8  batchLength           i32   bytes after this field, to the batch end
/// 12 partitionLeaderEpoch  i32
/// 16 magic                 i8    (2)
/// 17 crc                   u32   CRC-32C of attributes .. end of batch
/// 21 attributes            i16
/// 23 lastOffsetDelta       i32
/// 27 baseTimestamp         i64
/// 35 maxTimestamp          i64
/// 43 producerId            i64
/// 51 producerEpoch         i16
/// 53 baseSequence          i32
/// 57 recordsCount          i32
/// 61 records ...
/// ```
pub mod layout {
    pub const BASE_OFFSET: usize = 0;
    pub const BATCH_LENGTH: usize = 8;
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORDS_COUNT: usize = 57;
    /// First byte of the records; also the size of the whole header.
    pub const RECORDS: usize = 61;
    /// baseOffset and batchLength: the bytes that batchLength does not count.
    pub const LOG_OVERHEAD: usize = 12;
    /// The smallest legal batchLength: a header with no records.
    pub const BATCH_LENGTH_MIN: usize = RECORDS - LOG_OVERHEAD;
}

/// The only message format Rill stores.
pub const MAGIC_V2: i8 = 2;
/// producerId of a batch written without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;
/// baseSequence of a batch written without idempotence.
pub const NO_SEQUENCE: i32 = -1;
/// partitionLeaderEpoch that clients send before the broker stamps it.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// A timestamp that was not set.
pub const NO_TIMESTAMP: i64 = -1;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
pub(crate) const TRANSACTIONAL_BIT: i16 = 0x10;
pub(crate) const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// Compression codec of a batch's records (attributes bits 0..2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec for an attributes code, or `None` for codes Kafka does not define.
    pub fn from_code(code: u8) -> Option<Compression> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The attributes code of this codec.
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// Whose clock a batch's timestamps come from (attributes bit 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Set by the producer; each record carries its own.
    CreateTime,
    /// Set by the broker at append; every record's timestamp is the batch's maxTimestamp.
    LogAppendTime,
}

/// The attributes field of a batch header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attributes(pub i16);

impl Attributes {
    /// The raw compression code (bits 0..2); see [`Compression::from_code`].
    pub fn compression_code(self) -> u8 {
        // The mask keeps three bits, so the value always fits a u8.
        (self.0 & COMPRESSION_MASK) as u8
    }

    /// The codec, or [`BatchError::UnknownCompression`] for undefined codes.
    pub fn compression(self) -> Result<Compression, BatchError> {
        let code = self.compression_code();
        Compression::from_code(code).ok_or(BatchError::UnknownCompression { code })
    }

    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(self) -> bool {
        self.0 & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(self) -> bool {
        self.0 & CONTROL_BIT != 0
    }

    /// Whether baseTimestamp holds the delete horizon set by compaction.
    pub fn has_delete_horizon(self) -> bool {
        self.0 & DELETE_HORIZON_BIT != 0
    }
}

/// A borrowed, framing-checked view of exactly one v2 batch.
///
/// Construction checks only what is needed to find the batch's end: the
/// length field and the magic byte. The CRC and the records are checked
/// by [`crate::validate_produced`] and [`BatchView::verify_crc`], so that
/// readers that trust the bytes (a fetch of already-validated data) pay
/// nothing more.
#[derive(Clone, Copy, Debug)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Frames the batch at the start of `buf`; `buf` may hold more after it.
    pub fn new(buf: &'a [u8]) -> Result<BatchView<'a>, BatchError> {
        let size = framed_size(buf)?;
        Ok(BatchView {
            bytes: &buf[..size],
        })
    }

    /// The whole batch: header and records.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Size of the whole batch in bytes (batchLength + 12).
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// [`BatchView::size`] as a u32, the width of segment positions. It
    /// always fits: batchLength is an i32 that [`BatchView::new`] checked
    /// is at least 49, and i32::MAX + 12 < u32::MAX.
    pub fn size_u32(&self) -> u32 {
        const LOG_OVERHEAD: u32 = layout::LOG_OVERHEAD as u32;
        self.batch_length().unsigned_abs() + LOG_OVERHEAD
    }

    pub fn base_offset(&self) -> i64 {
        read_i64(self.bytes, layout::BASE_OFFSET)
    }

    pub fn batch_length(&self) -> i32 {
        read_i32(self.bytes, layout::BATCH_LENGTH)
    }

    pub fn partition_leader_epoch(&self) -> i32 {
        read_i32(self.bytes, layout::PARTITION_LEADER_EPOCH)
    }

    pub fn magic(&self) -> i8 {
        i8::from_be_bytes([self.bytes[layout::MAGIC]])
    }

    /// The CRC stored in the header.
    pub fn crc(&self) -> u32 {
        read_u32(self.bytes, layout::CRC)
    }

    pub fn attributes(&self) -> Attributes {
        Attributes(read_i16(self.bytes, layout::ATTRIBUTES))
    }

    pub fn last_offset_delta(&self) -> i32 {
        read_i32(self.bytes, layout::LAST_OFFSET_DELTA)
    }

    /// The offset of the batch's last record: baseOffset + lastOffsetDelta.
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(i64::from(self.last_offset_delta()))
    }

    /// The offset one past the batch's last record.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    pub fn base_timestamp(&self) -> i64 {
        read_i64(self.bytes, layout::BASE_TIMESTAMP)
    }

    pub fn max_timestamp(&self) -> i64 {
        read_i64(self.bytes, layout::MAX_TIMESTAMP)
    }

    pub fn producer_id(&self) -> i64 {
        read_i64(self.bytes, layout::PRODUCER_ID)
    }

    pub fn producer_epoch(&self) -> i16 {
        read_i16(self.bytes, layout::PRODUCER_EPOCH)
    }

    pub fn base_sequence(&self) -> i32 {
        read_i32(self.bytes, layout::BASE_SEQUENCE)
    }

    /// Whether the batch was written by an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id() >= 0
    }

    pub fn records_count(&self) -> i32 {
        read_i32(self.bytes, layout::RECORDS_COUNT)
    }

    /// The records section, still compressed if the batch is.
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.bytes[layout::RECORDS..]
    }

    /// The timestamp of a record with `timestamp_delta`, under this batch's
    /// timestamp type (a LogAppendTime batch gives every record its maxTimestamp).
    pub fn record_timestamp(&self, timestamp_delta: i64) -> i64 {
        match self.attributes().timestamp_type() {
            TimestampType::LogAppendTime => self.max_timestamp(),
            TimestampType::CreateTime => self.base_timestamp().wrapping_add(timestamp_delta),
        }
    }

    /// CRC-32C over attributes .. end, as the header's crc field should hold.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[layout::ATTRIBUTES..])
    }

    /// This batch's header with the broker's stamps applied: baseOffset,
    /// partitionLeaderEpoch and, if given, LogAppendTime (with the CRC
    /// recomputed over the stamped header and the unchanged records). For
    /// writing the header and [`BatchView::records_bytes`] side by side,
    /// so the records are never copied.
    pub fn stamped_header(
        &self,
        base_offset: i64,
        partition_leader_epoch: i32,
        log_append_time_ms: Option<i64>,
    ) -> [u8; layout::RECORDS] {
        let mut header = [0u8; layout::RECORDS];
        header.copy_from_slice(&self.bytes[..layout::RECORDS]);
        write_bytes(&mut header, layout::BASE_OFFSET, &base_offset.to_be_bytes());
        write_bytes(
            &mut header,
            layout::PARTITION_LEADER_EPOCH,
            &partition_leader_epoch.to_be_bytes(),
        );
        if let Some(timestamp_ms) = log_append_time_ms {
            mark_log_append_time(&mut header, timestamp_ms);
            let crc = crc32c::crc32c_append(
                crc32c::crc32c(&header[layout::ATTRIBUTES..]),
                self.records_bytes(),
            );
            write_bytes(&mut header, layout::CRC, &crc.to_be_bytes());
        }
        header
    }

    /// Checks the stored CRC against the bytes.
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let stored = self.crc();
        let computed = self.compute_crc();
        if stored == computed {
            Ok(())
        } else {
            Err(BatchError::CrcMismatch { stored, computed })
        }
    }
}

/// A mutable view of one batch, for stamping the fields the broker owns.
///
/// baseOffset and partitionLeaderEpoch lie before the CRC's range, so
/// stamping them keeps the CRC valid; LogAppendTime changes attributes and
/// maxTimestamp, which the CRC covers, so that stamp recomputes it.
#[derive(Debug)]
pub struct BatchViewMut<'a> {
    bytes: &'a mut [u8],
}

impl<'a> BatchViewMut<'a> {
    /// Frames the batch at the start of `buf`, as [`BatchView::new`].
    pub fn new(buf: &'a mut [u8]) -> Result<BatchViewMut<'a>, BatchError> {
        let size = framed_size(buf)?;
        Ok(BatchViewMut {
            bytes: &mut buf[..size],
        })
    }

    pub fn view(&self) -> BatchView<'_> {
        BatchView { bytes: self.bytes }
    }

    pub fn set_base_offset(&mut self, base_offset: i64) {
        write_bytes(self.bytes, layout::BASE_OFFSET, &base_offset.to_be_bytes());
    }

    pub fn set_partition_leader_epoch(&mut self, epoch: i32) {
        write_bytes(
            self.bytes,
            layout::PARTITION_LEADER_EPOCH,
            &epoch.to_be_bytes(),
        );
    }

    /// Marks the batch LogAppendTime with `timestamp_ms` as its maxTimestamp
    /// (which then stands for every record), and recomputes the CRC.
    pub fn set_log_append_time(&mut self, timestamp_ms: i64) {
        mark_log_append_time(self.bytes, timestamp_ms);
        let crc = self.view().compute_crc();
        write_bytes(self.bytes, layout::CRC, &crc.to_be_bytes());
    }
}

/// Sets the LogAppendTime bit and maxTimestamp in a header (not the CRC).
fn mark_log_append_time(header: &mut [u8], timestamp_ms: i64) {
    let attributes = read_i16(header, layout::ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
    write_bytes(header, layout::ATTRIBUTES, &attributes.to_be_bytes());
    write_bytes(header, layout::MAX_TIMESTAMP, &timestamp_ms.to_be_bytes());
}

/// The size of the batch framed at the start of `buf`, after checking that
/// its length field is legal, its magic is 2, and all of it is present.
fn framed_size(buf: &[u8]) -> Result<usize, BatchError> {
    let available = buf.len();
    if available < layout::LOG_OVERHEAD {
        return Err(BatchError::Truncated {
            needed: layout::LOG_OVERHEAD,
            available,
        });
    }
    let batch_length = read_i32(buf, layout::BATCH_LENGTH);
    let body = usize::try_from(batch_length).unwrap_or(0);
    if body < layout::BATCH_LENGTH_MIN {
        return Err(BatchError::LengthOutOfRange { batch_length });
    }
    if available > layout::MAGIC {
        let magic = i8::from_be_bytes([buf[layout::MAGIC]]);
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { magic });
        }
    }
    let size = body + layout::LOG_OVERHEAD;
    if size > available {
        return Err(BatchError::Truncated {
            needed: size,
            available,
        });
    }
    Ok(size)
}

// Field readers. Callers index only within a framed header (>= 61 bytes),
// so an out-of-range index here is a bug in this crate, and panics.
fn read_array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

pub(crate) fn read_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(read_array(bytes, at))
}

pub(crate) fn read_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(read_array(bytes, at))
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(read_array(bytes, at))
}

fn read_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(read_array(bytes, at))
}

fn write_bytes(bytes: &mut [u8], at: usize, value: &[u8]) {
    bytes[at..at + value.len()].copy_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchBuilder, NewRecord};

    fn one_record_batch() -> Vec<u8> {
        let mut builder = BatchBuilder::new(1_000);
        builder.push(&NewRecord::value(b"hello"));
        builder.finish().unwrap()
    }

    #[test]
    fn header_fields_read_back_as_built() {
        let bytes = BatchBuilder::new(1_700_000_000_000)
            .producer(42, 3, 7)
            .with_records(&[NewRecord::value(b"a"), NewRecord::value(b"b")])
            .finish()
            .unwrap();
        let batch = BatchView::new(&bytes).unwrap();
        assert_eq!(batch.size(), bytes.len());
        assert_eq!(batch.batch_length() as usize, bytes.len() - 12);
        assert_eq!(batch.base_offset(), 0);
        assert_eq!(batch.magic(), MAGIC_V2);
        assert_eq!(batch.partition_leader_epoch(), NO_PARTITION_LEADER_EPOCH);
        assert_eq!(batch.last_offset_delta(), 1);
        assert_eq!(batch.records_count(), 2);
        assert_eq!(batch.producer_id(), 42);
        assert_eq!(batch.producer_epoch(), 3);
        assert_eq!(batch.base_sequence(), 7);
        assert_eq!(batch.base_timestamp(), 1_700_000_000_000);
        assert_eq!(batch.attributes().compression().unwrap(), Compression::None);
        assert_eq!(
            batch.attributes().timestamp_type(),
            TimestampType::CreateTime
        );
        batch.verify_crc().unwrap();
    }

    #[test]
    fn stamping_offset_and_epoch_keeps_crc_valid() {
        let mut bytes = one_record_batch();
        let mut batch = BatchViewMut::new(&mut bytes).unwrap();
        batch.set_base_offset(1234);
        batch.set_partition_leader_epoch(9);
        let view = batch.view();
        assert_eq!(view.base_offset(), 1234);
        assert_eq!(view.last_offset(), 1234);
        assert_eq!(view.partition_leader_epoch(), 9);
        view.verify_crc().unwrap();
    }

    #[test]
    fn log_append_time_sets_type_and_timestamp_and_recomputes_crc() {
        let mut bytes = one_record_batch();
        let mut batch = BatchViewMut::new(&mut bytes).unwrap();
        batch.set_log_append_time(99_999);
        let view = batch.view();
        assert_eq!(
            view.attributes().timestamp_type(),
            TimestampType::LogAppendTime
        );
        assert_eq!(view.max_timestamp(), 99_999);
        assert_eq!(view.record_timestamp(12345), 99_999);
        view.verify_crc().unwrap();
    }

    #[test]
    fn a_stamped_header_matches_stamping_in_place() {
        let original = one_record_batch();
        for log_append_time in [None, Some(55_555)] {
            let header = BatchView::new(&original)
                .unwrap()
                .stamped_header(77, 4, log_append_time);
            let mut joined = header.to_vec();
            joined.extend_from_slice(&original[layout::RECORDS..]);
            let mut in_place = original.clone();
            let mut batch = BatchViewMut::new(&mut in_place).unwrap();
            batch.set_base_offset(77);
            batch.set_partition_leader_epoch(4);
            if let Some(time) = log_append_time {
                batch.set_log_append_time(time);
            }
            assert_eq!(joined, in_place, "{log_append_time:?}");
            BatchView::new(&joined).unwrap().verify_crc().unwrap();
        }
    }

    #[test]
    fn framing_rejects_short_bad_length_and_bad_magic() {
        let bytes = one_record_batch();
        assert!(matches!(
            BatchView::new(&bytes[..5]),
            Err(BatchError::Truncated { needed: 12, .. })
        ));
        assert!(matches!(
            BatchView::new(&bytes[..bytes.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let zeros = [0u8; 100];
        assert!(matches!(
            BatchView::new(&zeros),
            Err(BatchError::LengthOutOfRange { batch_length: 0 })
        ));
        let mut negative = bytes.clone();
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            BatchView::new(&negative),
            Err(BatchError::LengthOutOfRange { batch_length: -5 })
        ));
        let mut magic1 = bytes.clone();
        magic1[layout::MAGIC] = 1;
        assert!(matches!(
            BatchView::new(&magic1),
            Err(BatchError::UnsupportedMagic { magic: 1 })
        ));
    }

    #[test]
    fn crc_detects_a_flipped_bit_in_the_records() {
        let mut bytes = one_record_batch();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        let err = BatchView::new(&bytes).unwrap().verify_crc().unwrap_err();
        assert!(matches!(err, BatchError::CrcMismatch { .. }));
    }

    #[test]
    fn unknown_compression_code_is_an_error() {
        assert_eq!(
            Attributes(0x05).compression(),
            Err(BatchError::UnknownCompression { code: 5 })
        );
        assert_eq!(Attributes(0x04).compression(), Ok(Compression::Zstd));
    }
}
