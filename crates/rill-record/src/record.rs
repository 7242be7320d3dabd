//! Record-level decoding of an uncompressed records section: keys, values
//! and headers as borrowed slices, for the few places that need them
//! (validation, offset-by-timestamp, compaction). Duplicate header keys are
//! kept, in order, as Kafka keeps them.

use crate::error::{BatchError, CompressError, RecordError};
use crate::varint::{Reader, put_varint, put_varlong};

/// One record of a v2 batch, borrowing from the records section.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    headers: Headers<'a>,
}

impl<'a> Record<'a> {
    /// The record's headers in wire order, duplicates included.
    pub fn headers(&self) -> Headers<'a> {
        self.headers
    }
}

/// One record header. Kafka requires a key; the value may be null.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// The headers of one record. They were checked when the record was
/// decoded, so iterating cannot fail.
#[derive(Clone, Copy, Debug)]
pub struct Headers<'a> {
    buf: &'a [u8],
    remaining: usize,
}

impl<'a> Headers<'a> {
    pub fn len(&self) -> usize {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.remaining == 0 {
            return None;
        }
        let mut reader = Reader::new(self.buf);
        // Already validated by `decode_headers`; a failure here would mean
        // the bytes changed, so end the iteration rather than panic.
        let header = read_header(&mut reader).ok()?;
        self.buf = &self.buf[reader.position()..];
        self.remaining -= 1;
        Some(header)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// Iterates the records of an uncompressed records section.
///
/// Yields at most `count` records; after the last one, a trailing-bytes
/// check runs, so a section with more bytes than records yields an error.
/// After the first error the iterator ends.
pub struct Records<'a> {
    reader: Reader<'a>,
    count: i32,
    index: i32,
    failed: bool,
}

impl<'a> Records<'a> {
    /// `count` is the batch's recordsCount.
    pub fn new(records: &'a [u8], count: i32) -> Records<'a> {
        Records {
            reader: Reader::new(records),
            count,
            index: 0,
            failed: false,
        }
    }

    fn fail(&mut self, error: RecordError) -> Option<Result<Record<'a>, RecordError>> {
        self.failed = true;
        Some(Err(error))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.count < 0 {
            let count = self.count;
            return self.fail(RecordError::InvalidCount { count });
        }
        if self.index == self.count {
            let trailing_bytes = self.reader.remaining();
            if trailing_bytes > 0 {
                let declared = self.count;
                return self.fail(RecordError::TrailingBytes {
                    declared,
                    trailing_bytes,
                });
            }
            return None;
        }
        match read_record(&mut self.reader) {
            Ok(record) => {
                self.index += 1;
                Some(Ok(record))
            }
            Err(error) => self.fail(error),
        }
    }
}

fn read_record<'a>(reader: &mut Reader<'a>) -> Result<Record<'a>, RecordError> {
    let length = reader.varint("record length")?;
    let declared = usize::try_from(length).map_err(|_| RecordError::InvalidLength {
        field: "record length",
        length: i64::from(length),
    })?;
    let body = reader.bytes("record", declared)?;
    let mut body = Reader::new(body);
    let attributes = body.i8("attributes")?;
    let timestamp_delta = body.varlong("timestampDelta")?;
    let offset_delta = body.varint("offsetDelta")?;
    let key = body.nullable_bytes("key")?;
    let value = body.nullable_bytes("value")?;
    let headers = decode_headers(&mut body)?;
    if body.remaining() != 0 {
        return Err(RecordError::SizeMismatch {
            declared,
            actual: body.position(),
        });
    }
    Ok(Record {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    })
}

fn decode_headers<'a>(body: &mut Reader<'a>) -> Result<Headers<'a>, RecordError> {
    let count = body.varint("header count")?;
    let remaining = usize::try_from(count).map_err(|_| RecordError::InvalidLength {
        field: "header count",
        length: i64::from(count),
    })?;
    let start = body.position();
    for _ in 0..remaining {
        read_header(body)?;
    }
    Ok(Headers {
        buf: body.since(start),
        remaining,
    })
}

fn read_header<'a>(reader: &mut Reader<'a>) -> Result<Header<'a>, RecordError> {
    let key = match reader.nullable_bytes("header key")? {
        Some(key) => key,
        None => {
            return Err(RecordError::InvalidLength {
                field: "header key",
                length: -1,
            });
        }
    };
    let value = reader.nullable_bytes("header value")?;
    Ok(Header { key, value })
}

/// What one record is made of, for [`put_record`].
pub(crate) struct RecordParts<'a, H> {
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers_count: usize,
    /// (key, value) pairs, `headers_count` of them.
    pub headers: H,
}

/// Appends one record to a records section: its varint length, then its
/// body (encoded in `scratch` first, as the length comes before it). The
/// writer beside [`Records`]' reader, shared by the batch builder and the
/// compaction rewriter.
///
/// A part too long for Kafka's i32 lengths is refused before anything is
/// written to `out` (only `scratch` is touched).
pub(crate) fn put_record<'a, H>(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    record: RecordParts<'a, H>,
) -> Result<(), TooLongToFrame>
where
    H: Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
{
    scratch.clear();
    scratch.push(record.attributes);
    put_varlong(scratch, record.timestamp_delta);
    put_varint(scratch, record.offset_delta);
    put_nullable(scratch, record.key)?;
    put_nullable(scratch, record.value)?;
    put_varint(scratch, len_i32(record.headers_count)?);
    for (key, value) in record.headers {
        put_nullable(scratch, Some(key))?;
        put_nullable(scratch, value)?;
    }
    put_varint(out, len_i32(scratch.len())?);
    out.extend_from_slice(scratch);
    Ok(())
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<(), TooLongToFrame> {
    match bytes {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, len_i32(bytes.len())?);
            out.extend_from_slice(bytes);
        }
    }
    Ok(())
}

/// A length (of a batch, a record, one of its parts, or a count) over
/// i32::MAX: Kafka's lengths are i32, so it cannot be framed at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLongToFrame {
    pub(crate) length: usize,
}

impl From<TooLongToFrame> for BatchError {
    fn from(e: TooLongToFrame) -> BatchError {
        BatchError::TooLongToFrame { length: e.length }
    }
}

impl From<TooLongToFrame> for CompressError {
    fn from(e: TooLongToFrame) -> CompressError {
        CompressError::TooLongToFrame { length: e.length }
    }
}

/// Kafka's lengths are i32; a batch over 2 GiB cannot be framed at all.
pub(crate) fn len_i32(len: usize) -> Result<i32, TooLongToFrame> {
    i32::try_from(len).map_err(|_| TooLongToFrame { length: len })
}

/// Writes `value` at byte `at` of a batch being built (header fields).
pub(crate) fn put_at(buf: &mut [u8], at: usize, value: &[u8]) {
    buf[at..at + value.len()].copy_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchBuilder, BatchView, NewRecord};

    #[test]
    fn decodes_keys_values_and_duplicate_headers() {
        let headers: [(&[u8], Option<&[u8]>); 3] =
            [(b"k", Some(b"1")), (b"k", Some(b"2")), (b"n", None)];
        let mut builder = BatchBuilder::new(500);
        builder.push(&NewRecord {
            timestamp: 510,
            key: Some(b"key-a"),
            value: None,
            headers: &headers,
        });
        builder.push(&NewRecord {
            timestamp: 505,
            key: None,
            value: Some(b"value-b"),
            headers: &[],
        });
        let bytes = builder.finish().unwrap();
        let batch = BatchView::new(&bytes).unwrap();
        let records: Vec<Record<'_>> = Records::new(batch.records_bytes(), batch.records_count())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key, Some(&b"key-a"[..]));
        assert_eq!(records[0].value, None);
        assert_eq!(batch.record_timestamp(records[0].timestamp_delta), 510);
        let got: Vec<Header<'_>> = records[0].headers().collect();
        assert_eq!(
            got,
            vec![
                Header {
                    key: b"k",
                    value: Some(b"1")
                },
                Header {
                    key: b"k",
                    value: Some(b"2")
                },
                Header {
                    key: b"n",
                    value: None
                },
            ]
        );
        assert_eq!(records[1].offset_delta, 1);
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].value, Some(&b"value-b"[..]));
        assert!(records[1].headers().is_empty());
        assert_eq!(batch.max_timestamp(), 510);
    }

    #[test]
    fn trailing_bytes_and_short_sections_are_errors() {
        let mut builder = BatchBuilder::new(0);
        builder.push(&NewRecord::value(b"x"));
        let bytes = builder.finish().unwrap();
        let batch = BatchView::new(&bytes).unwrap();
        let records = batch.records_bytes();
        let mut padded = records.to_vec();
        padded.push(0);
        let results: Vec<_> = Records::new(&padded, 1).collect();
        assert!(matches!(
            results.last(),
            Some(Err(RecordError::TrailingBytes {
                trailing_bytes: 1,
                ..
            }))
        ));
        let results: Vec<_> = Records::new(records, 2).collect();
        assert!(matches!(
            results.last(),
            Some(Err(RecordError::Truncated { .. }))
        ));
        let results: Vec<_> = Records::new(&records[..records.len() - 1], 1).collect();
        assert!(matches!(
            results.last(),
            Some(Err(RecordError::Truncated { .. }))
        ));
    }
}
