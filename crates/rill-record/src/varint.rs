//! Kafka's zigzag varints (protobuf style), as used inside v2 records.

use crate::error::RecordError;

const VARINT_BYTES_MAX: usize = 5;
const VARLONG_BYTES_MAX: usize = 10;

/// A cursor over untrusted record bytes; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The bytes read since `start`, a position this reader returned.
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        &self.buf[start..self.pos]
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn read_unsigned(&mut self, field: &'static str, max_bytes: usize) -> Result<u64, RecordError> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(RecordError::Truncated {
                    field,
                    needed: 1,
                    available: 0,
                });
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::VarintTooLong { field, max_bytes })
    }

    /// A zigzag-encoded i32.
    pub(crate) fn varint(&mut self, field: &'static str) -> Result<i32, RecordError> {
        let raw = self.read_unsigned(field, VARINT_BYTES_MAX)?;
        // Five 7-bit groups hold 35 bits; Kafka reads the low 32.
        let raw = raw as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// A zigzag-encoded i64.
    pub(crate) fn varlong(&mut self, field: &'static str) -> Result<i64, RecordError> {
        let raw = self.read_unsigned(field, VARLONG_BYTES_MAX)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    pub(crate) fn i8(&mut self, field: &'static str) -> Result<i8, RecordError> {
        let bytes = self.bytes(field, 1)?;
        Ok(i8::from_be_bytes([bytes[0]]))
    }

    pub(crate) fn bytes(
        &mut self,
        field: &'static str,
        len: usize,
    ) -> Result<&'a [u8], RecordError> {
        let available = self.remaining();
        if len > available {
            return Err(RecordError::Truncated {
                field,
                needed: len,
                available,
            });
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    /// A varint length followed by that many bytes; length -1 means null.
    pub(crate) fn nullable_bytes(
        &mut self,
        field: &'static str,
    ) -> Result<Option<&'a [u8]>, RecordError> {
        let length = self.varint(field)?;
        if length == -1 {
            return Ok(None);
        }
        let len = usize::try_from(length).map_err(|_| RecordError::InvalidLength {
            field,
            length: i64::from(length),
        })?;
        self.bytes(field, len).map(Some)
    }
}

/// Appends `value` as a zigzag varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

/// Appends `value` as a zigzag varlong.
pub(crate) fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings_match_kafka() {
        // From Kafka's ByteUtilsTest: zigzag maps 0,-1,1,-2 to 0,1,2,3.
        let cases: [(i32, &[u8]); 5] = [
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (63, &[0x7e]),
            (-65, &[0x81, 0x01]),
        ];
        for (value, encoded) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out, encoded, "encoding {value}");
            assert_eq!(Reader::new(encoded).varint("v").unwrap(), value);
        }
    }

    #[test]
    fn overlong_and_truncated_varints_are_errors() {
        let overlong = [0xffu8; 6];
        assert!(matches!(
            Reader::new(&overlong).varint("v"),
            Err(RecordError::VarintTooLong { max_bytes: 5, .. })
        ));
        assert!(matches!(
            Reader::new(&[0x80]).varint("v"),
            Err(RecordError::Truncated { .. })
        ));
        let negative_len = [0x03u8]; // -2
        assert!(matches!(
            Reader::new(&negative_len).nullable_bytes("key"),
            Err(RecordError::InvalidLength { length: -2, .. })
        ));
    }

    proptest! {
        #[test]
        fn varints_round_trip(value in any::<i32>(), long in any::<i64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            put_varlong(&mut out, long);
            let mut reader = Reader::new(&out);
            prop_assert_eq!(reader.varint("v").unwrap(), value);
            prop_assert_eq!(reader.varlong("l").unwrap(), long);
            prop_assert_eq!(reader.remaining(), 0);
        }
    }
}
