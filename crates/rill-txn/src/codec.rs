//! Kafka's primitive types as `__transaction_state` uses them, classic
//! (int16-length strings, int32-length arrays) or flexible (unsigned-varint
//! lengths plus one, tagged-field sections). Reading checks every length
//! against the bytes that remain before anything is allocated.

use crate::txn_log::{STRING_BYTES_MAX, TxnLogDecodeError, TxnLogEncodeError};

/// An unsigned varint of a u32 takes at most five bytes.
const UVARINT_BYTES_MAX: usize = 5;

/// Writes Kafka's primitive types, classic or flexible.
pub(crate) struct Writer {
    buf: Vec<u8>,
    flexible: bool,
}

impl Writer {
    /// A buffer that opens with the big-endian int16 `version`.
    pub(crate) fn new(version: i16, flexible: bool) -> Writer {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&version.to_be_bytes());
        Writer { buf, flexible }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }

    pub(crate) fn i8(&mut self, value: i8) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn i16(&mut self, value: i16) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn i32(&mut self, value: i32) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn i64(&mut self, value: i64) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn uvarint(&mut self, mut value: u32) {
        while value >= 0x80 {
            // The mask keeps seven bits; the cast cannot truncate them.
            self.buf.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    /// A length: int16 (strings) or int32 (arrays) in classic versions,
    /// an unsigned varint of length + 1 in flexible ones.
    fn length(
        &mut self,
        field: &'static str,
        length: usize,
        classic_i16: bool,
    ) -> Result<(), TxnLogEncodeError> {
        let max = if classic_i16 {
            STRING_BYTES_MAX
        } else {
            // Kafka reads a compact length + 1 into a Java int.
            (i32::MAX - 1) as usize
        };
        if length > max {
            return Err(TxnLogEncodeError::TooLong { field, length, max });
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

    pub(crate) fn string(
        &mut self,
        field: &'static str,
        value: &str,
    ) -> Result<(), TxnLogEncodeError> {
        self.length(field, value.len(), true)?;
        self.buf.extend_from_slice(value.as_bytes());
        Ok(())
    }

    pub(crate) fn array_len(
        &mut self,
        field: &'static str,
        len: usize,
    ) -> Result<(), TxnLogEncodeError> {
        self.length(field, len, false)
    }

    /// A null array.
    pub(crate) fn null_array(&mut self) {
        if self.flexible {
            self.uvarint(0);
        } else {
            self.i32(-1);
        }
    }

    /// A tagged-field section of `fields` (tag, encoded value), in tag
    /// order; nothing in classic versions.
    pub(crate) fn tagged_fields(&mut self, fields: &[(u32, Vec<u8>)]) {
        if !self.flexible {
            return;
        }
        // At most a handful of tags: the count fits a u32.
        self.uvarint(fields.len() as u32);
        for (tag, value) in fields {
            self.uvarint(*tag);
            // A tagged value here is at most eight bytes.
            self.uvarint(value.len() as u32);
            self.buf.extend_from_slice(value);
        }
    }
}

/// Reads Kafka's primitive types, classic or flexible, from untrusted
/// bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    position: usize,
    flexible: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], flexible: bool) -> Reader<'a> {
        Reader {
            buf,
            position: 0,
            flexible,
        }
    }

    pub(crate) fn set_flexible(&mut self, flexible: bool) {
        self.flexible = flexible;
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.position
    }

    pub(crate) fn take(
        &mut self,
        field: &'static str,
        needed: usize,
    ) -> Result<&'a [u8], TxnLogDecodeError> {
        let available = self.remaining();
        if needed > available {
            return Err(TxnLogDecodeError::Truncated {
                field,
                needed,
                available,
            });
        }
        let bytes = &self.buf[self.position..self.position + needed];
        self.position += needed;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], TxnLogDecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    pub(crate) fn i8(&mut self, field: &'static str) -> Result<i8, TxnLogDecodeError> {
        Ok(i8::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, TxnLogDecodeError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, TxnLogDecodeError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, TxnLogDecodeError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn uvarint(&mut self, field: &'static str) -> Result<u32, TxnLogDecodeError> {
        let mut value: u32 = 0;
        for index in 0..UVARINT_BYTES_MAX {
            let byte = self.array::<1>(field)?[0];
            value |= u32::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(TxnLogDecodeError::VarintTooLong {
            field,
            max_bytes: UVARINT_BYTES_MAX,
        })
    }

    /// A length that may be null (`None`), checked against the bytes left:
    /// every string byte and every array element takes at least one byte.
    fn nullable_length(
        &mut self,
        field: &'static str,
        classic_i16: bool,
    ) -> Result<Option<usize>, TxnLogDecodeError> {
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
            _ => Err(TxnLogDecodeError::InvalidLength {
                field,
                length,
                available,
            }),
        }
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, TxnLogDecodeError> {
        let length = self
            .nullable_length(field, true)?
            .ok_or(TxnLogDecodeError::UnexpectedNull { field })?;
        let bytes = self.take(field, length)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| TxnLogDecodeError::InvalidUtf8 { field })
    }

    /// An array's element count; `None` for a null array.
    pub(crate) fn nullable_array_len(
        &mut self,
        field: &'static str,
    ) -> Result<Option<usize>, TxnLogDecodeError> {
        self.nullable_length(field, false)
    }

    pub(crate) fn array_len(&mut self, field: &'static str) -> Result<usize, TxnLogDecodeError> {
        self.nullable_length(field, false)?
            .ok_or(TxnLogDecodeError::UnexpectedNull { field })
    }

    /// Reads a tagged-field section (flexible versions only), handing each
    /// field's tag and bytes to `known`, which returns false for a tag it
    /// does not know: those are skipped, as Kafka keeps them unread.
    pub(crate) fn tagged_fields(
        &mut self,
        mut known: impl FnMut(u32, &'a [u8]) -> Result<bool, TxnLogDecodeError>,
    ) -> Result<(), TxnLogDecodeError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint("tagged field count")?;
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")?;
            // u32 fits usize on the targets Rill supports (>= 32-bit).
            let bytes = self.take("tagged field", size as usize)?;
            if !known(tag, bytes)? {
                tracing::debug!(tag, size, "skipping unknown tagged field");
            }
        }
        Ok(())
    }

    pub(crate) fn finish(
        &self,
        record: &'static str,
        version: i16,
    ) -> Result<(), TxnLogDecodeError> {
        match self.remaining() {
            0 => Ok(()),
            trailing_bytes => Err(TxnLogDecodeError::TrailingBytes {
                record,
                version,
                trailing_bytes,
            }),
        }
    }
}
