//! Kafka's primitive types as its internal topics' record schemas use them
//! (`__consumer_offsets`, `__transaction_state`): big-endian int8..int64,
//! unsigned varints, strings, bytes and arrays, each either classic
//! (int16-length strings, int32-length bytes and arrays, -1 for null) or
//! flexible (unsigned-varint length plus one, 0 for null, and a
//! tagged-field section closing each struct).
//!
//! [`SchemaReader`] reads untrusted bytes from disk: every length is
//! checked against the bytes that remain before anything is allocated, and
//! bad input is a [`SchemaDecodeError`] naming the field, never a panic.
//! [`SchemaWriter`] refuses a length its schema cannot carry with a
//! [`SchemaEncodeError`].
//!
//! ```
//! use rill_record::{SchemaReader, SchemaWriter};
//!
//! let mut out = SchemaWriter::new(1, true); // version 1, flexible
//! out.string("name", "tx").unwrap();
//! out.tagged_fields(&[]);
//! let bytes = out.finish();
//! assert_eq!(bytes, [0x00, 0x01, 0x03, b't', b'x', 0x00]);
//!
//! let mut reader = SchemaReader::new(&bytes, false);
//! assert_eq!(reader.i16("version").unwrap(), 1);
//! reader.set_flexible(true);
//! assert_eq!(reader.string("name").unwrap(), "tx");
//! reader.skip_tagged_fields().unwrap();
//! reader.finish("Example", 1).unwrap();
//! ```

/// Kafka strings carry at most `i16::MAX` bytes of UTF-8, in every version
/// (Kafka rejects longer compact strings too).
pub const STRING_BYTES_MAX: usize = i16::MAX as usize;

/// Kafka reads a compact length + 1 into a Java int, so `i32::MAX - 1` is
/// the most elements or bytes either form of an int32 length holds.
const LENGTH_I32_MAX: usize = (i32::MAX - 1) as usize;

/// The most a u32 holds, as a usize (Rill's targets are >= 32-bit).
const U32_MAX_USIZE: usize = u32::MAX as usize;

/// An unsigned varint of a u32 takes at most five bytes.
const UVARINT_BYTES_MAX: usize = 5;

/// Why bytes could not be read as a field of a record schema. Each variant
/// names the field and what was expected against what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaDecodeError {
    #[error("{field} runs past the end: needs {needed} bytes, {available} left")]
    Truncated {
        field: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("{field} has invalid length {length} ({available} bytes left)")]
    InvalidLength {
        field: &'static str,
        length: i64,
        available: usize,
    },
    #[error("{field} is null, but the schema does not allow null")]
    UnexpectedNull { field: &'static str },
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("{field} is an unsigned varint longer than {max_bytes} bytes")]
    VarintTooLong {
        field: &'static str,
        max_bytes: usize,
    },
    #[error("{record} v{version} ends {trailing_bytes} bytes before its buffer does")]
    TrailingBytes {
        record: &'static str,
        version: i16,
        trailing_bytes: usize,
    },
    #[error("tagged field {tag} is {size} bytes, expected {expected}")]
    TaggedFieldSize {
        tag: u32,
        size: usize,
        expected: usize,
    },
}

/// Why a value could not be written in its record schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaEncodeError {
    #[error("{field} is {length} bytes (or elements), more than the {max} its schema can carry")]
    TooLong {
        field: &'static str,
        length: usize,
        max: usize,
    },
}

/// Writes one key or value of a record schema, classic or flexible. Owned
/// by the one encoding it; not shared.
#[derive(Debug)]
pub struct SchemaWriter {
    buf: Vec<u8>,
    flexible: bool,
}

impl SchemaWriter {
    /// A buffer that opens with the big-endian int16 `version`, as every key
    /// and value of Kafka's internal topics does.
    pub fn new(version: i16, flexible: bool) -> SchemaWriter {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&version.to_be_bytes());
        SchemaWriter { buf, flexible }
    }

    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    pub fn i8(&mut self, value: i8) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub fn i16(&mut self, value: i16) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub fn i32(&mut self, value: i32) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub fn i64(&mut self, value: i64) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub fn uvarint(&mut self, mut value: u32) {
        while value >= 0x80 {
            // The mask keeps seven bits; the cast cannot truncate them.
            self.buf.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    /// A length: int16 (strings) or int32 (bytes, arrays) in classic
    /// versions, an unsigned varint of length + 1 in flexible ones.
    fn length(
        &mut self,
        field: &'static str,
        length: usize,
        classic_i16: bool,
    ) -> Result<(), SchemaEncodeError> {
        let max = if classic_i16 {
            STRING_BYTES_MAX
        } else {
            LENGTH_I32_MAX
        };
        if length > max {
            return Err(SchemaEncodeError::TooLong { field, length, max });
        }
        if self.flexible {
            // Checked above: length + 1 fits in a u32.
            self.uvarint(length as u32 + 1);
        } else if classic_i16 {
            self.i16(length as i16);
        } else {
            self.i32(length as i32);
        }
        Ok(())
    }

    /// A null string (`classic_i16`) or a null array or bytes.
    fn null(&mut self, classic_i16: bool) {
        if self.flexible {
            self.uvarint(0);
        } else if classic_i16 {
            self.i16(-1);
        } else {
            self.i32(-1);
        }
    }

    /// A string of at most [`STRING_BYTES_MAX`] bytes.
    pub fn string(&mut self, field: &'static str, value: &str) -> Result<(), SchemaEncodeError> {
        self.length(field, value.len(), true)?;
        self.buf.extend_from_slice(value.as_bytes());
        Ok(())
    }

    /// A string, or null for `None`.
    pub fn nullable_string(
        &mut self,
        field: &'static str,
        value: Option<&str>,
    ) -> Result<(), SchemaEncodeError> {
        match value {
            Some(value) => self.string(field, value),
            None => {
                self.null(true);
                Ok(())
            }
        }
    }

    /// Opaque bytes.
    pub fn bytes(&mut self, field: &'static str, value: &[u8]) -> Result<(), SchemaEncodeError> {
        self.length(field, value.len(), false)?;
        self.buf.extend_from_slice(value);
        Ok(())
    }

    /// An array's element count; the caller writes the elements.
    pub fn array_len(&mut self, field: &'static str, len: usize) -> Result<(), SchemaEncodeError> {
        self.length(field, len, false)
    }

    /// A null array.
    pub fn null_array(&mut self) {
        self.null(false);
    }

    /// A tagged-field section of `fields` (tag, encoded value), in tag
    /// order; nothing in classic versions.
    ///
    /// Each value and the count of fields must fit a u32 (the schemas'
    /// tagged fields are a handful of integers): more is a bug.
    pub fn tagged_fields(&mut self, fields: &[(u32, Vec<u8>)]) {
        if !self.flexible {
            return;
        }
        // A handful of tags, each at most a few bytes: both fit a u32.
        assert!(
            fields.len() <= U32_MAX_USIZE,
            "{} tagged fields",
            fields.len()
        );
        self.uvarint(fields.len() as u32);
        for (tag, value) in fields {
            assert!(
                value.len() <= U32_MAX_USIZE,
                "tagged field {tag} is {} bytes",
                value.len()
            );
            self.uvarint(*tag);
            self.uvarint(value.len() as u32);
            self.buf.extend_from_slice(value);
        }
    }
}

/// Reads one key or value of a record schema, classic or flexible, from
/// untrusted bytes. Owned by the one decoding it; not shared.
#[derive(Debug)]
pub struct SchemaReader<'a> {
    buf: &'a [u8],
    position: usize,
    flexible: bool,
}

impl<'a> SchemaReader<'a> {
    pub fn new(buf: &'a [u8], flexible: bool) -> SchemaReader<'a> {
        SchemaReader {
            buf,
            position: 0,
            flexible,
        }
    }

    /// Switches between classic and flexible, once the version read says
    /// which.
    pub fn set_flexible(&mut self, flexible: bool) {
        self.flexible = flexible;
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.position
    }

    /// The next `needed` bytes.
    pub fn take(
        &mut self,
        field: &'static str,
        needed: usize,
    ) -> Result<&'a [u8], SchemaDecodeError> {
        let available = self.remaining();
        if needed > available {
            return Err(SchemaDecodeError::Truncated {
                field,
                needed,
                available,
            });
        }
        let bytes = &self.buf[self.position..self.position + needed];
        self.position += needed;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SchemaDecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    pub fn i8(&mut self, field: &'static str) -> Result<i8, SchemaDecodeError> {
        Ok(i8::from_be_bytes(self.array(field)?))
    }

    pub fn i16(&mut self, field: &'static str) -> Result<i16, SchemaDecodeError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    pub fn i32(&mut self, field: &'static str) -> Result<i32, SchemaDecodeError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    pub fn i64(&mut self, field: &'static str) -> Result<i64, SchemaDecodeError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    pub fn uvarint(&mut self, field: &'static str) -> Result<u32, SchemaDecodeError> {
        let mut value: u32 = 0;
        for index in 0..UVARINT_BYTES_MAX {
            let byte = self.array::<1>(field)?[0];
            value |= u32::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(SchemaDecodeError::VarintTooLong {
            field,
            max_bytes: UVARINT_BYTES_MAX,
        })
    }

    /// A length that may be null (`None`), checked against the bytes left:
    /// every string or bytes byte and every array element takes at least
    /// one byte. In classic versions strings use an int16 length, bytes
    /// and arrays an int32; in flexible versions all use an unsigned varint
    /// of length + 1.
    fn nullable_length(
        &mut self,
        field: &'static str,
        classic_i16: bool,
    ) -> Result<Option<usize>, SchemaDecodeError> {
        let length: i64 = if self.flexible {
            i64::from(self.uvarint(field)?) - 1
        } else if classic_i16 {
            i64::from(self.i16(field)?)
        } else {
            i64::from(self.i32(field)?)
        };
        if length == -1 {
            return Ok(None);
        }
        let available = self.remaining();
        let too_long = classic_i16 && length > STRING_BYTES_MAX as i64;
        match usize::try_from(length) {
            Ok(length) if !too_long && length <= available => Ok(Some(length)),
            _ => Err(SchemaDecodeError::InvalidLength {
                field,
                length,
                available,
            }),
        }
    }

    fn length(
        &mut self,
        field: &'static str,
        classic_i16: bool,
    ) -> Result<usize, SchemaDecodeError> {
        self.nullable_length(field, classic_i16)?
            .ok_or(SchemaDecodeError::UnexpectedNull { field })
    }

    /// A string that may not be null.
    pub fn string(&mut self, field: &'static str) -> Result<String, SchemaDecodeError> {
        let length = self.length(field, true)?;
        self.utf8(field, length)
    }

    /// A string, `None` for null.
    pub fn nullable_string(
        &mut self,
        field: &'static str,
    ) -> Result<Option<String>, SchemaDecodeError> {
        match self.nullable_length(field, true)? {
            Some(length) => self.utf8(field, length).map(Some),
            None => Ok(None),
        }
    }

    fn utf8(&mut self, field: &'static str, length: usize) -> Result<String, SchemaDecodeError> {
        let bytes = self.take(field, length)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| SchemaDecodeError::InvalidUtf8 { field })
    }

    /// Opaque bytes that may not be null, borrowed from the buffer.
    pub fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], SchemaDecodeError> {
        let length = self.length(field, false)?;
        self.take(field, length)
    }

    /// An array's element count; the caller reads the elements. Every
    /// element takes at least one byte, so a count above the bytes left is
    /// [`SchemaDecodeError::InvalidLength`].
    pub fn array_len(&mut self, field: &'static str) -> Result<usize, SchemaDecodeError> {
        self.length(field, false)
    }

    /// An array's element count; `None` for a null array.
    pub fn nullable_array_len(
        &mut self,
        field: &'static str,
    ) -> Result<Option<usize>, SchemaDecodeError> {
        self.nullable_length(field, false)
    }

    /// Reads a tagged-field section (flexible versions only; nothing in
    /// classic ones), handing each field's tag and bytes to `field` in the
    /// order written. `field` decides what an unknown tag means; Kafka
    /// skips them.
    pub fn tagged_fields(
        &mut self,
        mut field: impl FnMut(u32, &'a [u8]) -> Result<(), SchemaDecodeError>,
    ) -> Result<(), SchemaDecodeError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint("tagged field count")?;
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")?;
            // u32 fits usize on the targets Rill supports (>= 32-bit).
            let bytes = self.take("tagged field", size as usize)?;
            field(tag, bytes)?;
        }
        Ok(())
    }

    /// Skips a tagged-field section whose tags are all unknown.
    pub fn skip_tagged_fields(&mut self) -> Result<(), SchemaDecodeError> {
        self.tagged_fields(|_, _| Ok(()))
    }

    /// Checks that `record` at `version` used the whole buffer.
    pub fn finish(&self, record: &'static str, version: i16) -> Result<(), SchemaDecodeError> {
        match self.remaining() {
            0 => Ok(()),
            trailing_bytes => Err(SchemaDecodeError::TrailingBytes {
                record,
                version,
                trailing_bytes,
            }),
        }
    }
}

/// A tagged field's value as an int64: exactly eight bytes.
pub fn tagged_i64(tag: u32, bytes: &[u8]) -> Result<i64, SchemaDecodeError> {
    tagged_array(tag, bytes).map(i64::from_be_bytes)
}

/// A tagged field's value as an int16: exactly two bytes.
pub fn tagged_i16(tag: u32, bytes: &[u8]) -> Result<i16, SchemaDecodeError> {
    tagged_array(tag, bytes).map(i16::from_be_bytes)
}

fn tagged_array<const N: usize>(tag: u32, bytes: &[u8]) -> Result<[u8; N], SchemaDecodeError> {
    bytes
        .try_into()
        .map_err(|_| SchemaDecodeError::TaggedFieldSize {
            tag,
            size: bytes.len(),
            expected: N,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_and_flexible_lengths_and_nulls() {
        let mut out = SchemaWriter::new(0, false);
        out.string("s", "ab").unwrap();
        out.nullable_string("n", None).unwrap();
        out.bytes("b", b"xyz").unwrap();
        out.null_array();
        out.tagged_fields(&[(0, vec![1])]);
        assert_eq!(
            out.finish(),
            [
                0, 0, 0, 2, b'a', b'b', 0xff, 0xff, 0, 0, 0, 3, b'x', b'y', b'z', 0xff, 0xff, 0xff,
                0xff
            ]
        );
        let mut out = SchemaWriter::new(4, true);
        out.string("s", "ab").unwrap();
        out.nullable_string("n", None).unwrap();
        out.bytes("b", b"xyz").unwrap();
        out.null_array();
        out.tagged_fields(&[(0, vec![1])]);
        let bytes = out.finish();
        assert_eq!(
            bytes,
            [0, 4, 3, b'a', b'b', 0, 4, b'x', b'y', b'z', 0, 1, 0, 1, 1]
        );
        let mut reader = SchemaReader::new(&bytes, true);
        assert_eq!(reader.i16("version"), Ok(4));
        assert_eq!(reader.string("s").as_deref(), Ok("ab"));
        assert_eq!(reader.nullable_string("n"), Ok(None));
        assert_eq!(reader.bytes("b"), Ok(&b"xyz"[..]));
        assert_eq!(reader.nullable_array_len("a"), Ok(None));
        let mut seen = Vec::new();
        reader
            .tagged_fields(|tag, bytes| {
                seen.push((tag, bytes.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, [(0, vec![1])]);
        assert_eq!(reader.finish("R", 4), Ok(()));
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let mut reader = SchemaReader::new(&[0x00, 0x05, b'a'], false);
        assert_eq!(
            reader.string("s"),
            Err(SchemaDecodeError::InvalidLength {
                field: "s",
                length: 5,
                available: 1
            })
        );
        let mut reader = SchemaReader::new(&[0xff; 6], true);
        assert_eq!(
            reader.uvarint("v"),
            Err(SchemaDecodeError::VarintTooLong {
                field: "v",
                max_bytes: 5
            })
        );
        assert_eq!(
            tagged_i64(2, &[1, 2]),
            Err(SchemaDecodeError::TaggedFieldSize {
                tag: 2,
                size: 2,
                expected: 8
            })
        );
        assert_eq!(tagged_i16(2, &[1, 2]), Ok(0x0102));
        let mut out = SchemaWriter::new(0, false);
        assert_eq!(
            out.string("s", &"x".repeat(STRING_BYTES_MAX + 1)),
            Err(SchemaEncodeError::TooLong {
                field: "s",
                length: STRING_BYTES_MAX + 1,
                max: STRING_BYTES_MAX
            })
        );
    }
}
