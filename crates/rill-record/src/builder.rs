//! Writing uncompressed v2 batches: for tests, benchmarks and the broker's
//! own records (compaction output, internal topics).

use crate::batch::{
    CONTROL_BIT, MAGIC_V2, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
    TRANSACTIONAL_BIT, layout,
};
use crate::error::BatchError;
use crate::record::{RecordParts, TooLongToFrame, len_i32, put_at, put_record};

/// A record to write. `headers` are (key, value) pairs in order.
#[derive(Clone, Copy, Debug)]
pub struct NewRecord<'a> {
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a [u8], Option<&'a [u8]>)],
}

impl<'a> NewRecord<'a> {
    /// A record with only a value, timestamped with the batch's base timestamp.
    pub fn value(value: &'a [u8]) -> NewRecord<'a> {
        NewRecord {
            timestamp: i64::MIN,
            key: None,
            value: Some(value),
            headers: &[],
        }
    }

    /// A keyed record timestamped with the batch's base timestamp. A `None`
    /// value is a tombstone: compaction deletes the key (internal topics
    /// such as `__consumer_offsets` delete entries this way).
    pub fn key_value(key: &'a [u8], value: Option<&'a [u8]>) -> NewRecord<'a> {
        NewRecord {
            timestamp: i64::MIN,
            key: Some(key),
            value,
            headers: &[],
        }
    }
}

/// Builds one uncompressed v2 batch with baseOffset 0, as a producer would.
///
/// ```
/// use rill_record::{BatchBuilder, BatchView, NewRecord};
/// let mut builder = BatchBuilder::new(1_700_000_000_000);
/// builder.push(&NewRecord::value(b"hello"));
/// let bytes = builder.finish().unwrap();
/// let batch = BatchView::new(&bytes).unwrap();
/// assert_eq!(batch.records_count(), 1);
/// batch.verify_crc().unwrap();
/// ```
#[derive(Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    scratch: Vec<u8>,
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    /// The transactional and control bits of the attributes.
    attributes: i16,
    /// A pushed record too long to frame: [`BatchBuilder::finish`] fails.
    unframeable: Option<TooLongToFrame>,
}

impl BatchBuilder {
    /// Record timestamps are stored as deltas from `base_timestamp`.
    pub fn new(base_timestamp: i64) -> BatchBuilder {
        BatchBuilder {
            buf: vec![0; layout::RECORDS],
            scratch: Vec::new(),
            base_timestamp,
            max_timestamp: base_timestamp,
            count: 0,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: NO_SEQUENCE,
            attributes: 0,
            unframeable: None,
        }
    }

    /// Marks the batch as written by an idempotent producer.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch as part of its producer's transaction.
    pub fn transactional(mut self) -> Self {
        self.attributes |= TRANSACTIONAL_BIT;
        self
    }

    /// Marks the batch as a control batch (see [`crate::control`]).
    pub(crate) fn control(mut self) -> Self {
        self.attributes |= CONTROL_BIT;
        self
    }

    /// Appends each of `records`.
    pub fn with_records(mut self, records: &[NewRecord<'_>]) -> Self {
        for record in records {
            self.push(record);
        }
        self
    }

    /// Appends one record; a timestamp of `i64::MIN` means the base
    /// timestamp. A record with a part over 2 GiB is not appended, and
    /// makes [`BatchBuilder::finish`] fail.
    pub fn push(&mut self, record: &NewRecord<'_>) {
        let timestamp = if record.timestamp == i64::MIN {
            self.base_timestamp
        } else {
            record.timestamp
        };
        let put = put_record(
            &mut self.buf,
            &mut self.scratch,
            RecordParts {
                attributes: 0, // unused in v2
                timestamp_delta: timestamp.wrapping_sub(self.base_timestamp),
                offset_delta: self.count,
                key: record.key,
                value: record.value,
                headers_count: record.headers.len(),
                headers: record.headers.iter().copied(),
            },
        );
        match put {
            Ok(()) => {
                self.max_timestamp = self.max_timestamp.max(timestamp);
                self.count += 1;
            }
            Err(e) => {
                self.unframeable.get_or_insert(e);
            }
        }
    }

    /// Bytes the batch would take if finished now.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// Fills in the header and CRC and returns the batch. Errors: a
    /// record, or the batch, longer than Kafka's i32 lengths can say
    /// ([`BatchError::TooLongToFrame`]).
    pub fn finish(mut self) -> Result<Vec<u8>, BatchError> {
        if let Some(e) = self.unframeable {
            return Err(e.into());
        }
        let batch_length = len_i32(self.buf.len() - layout::LOG_OVERHEAD)?;
        let buf = &mut self.buf;
        put_at(buf, layout::BASE_OFFSET, &0i64.to_be_bytes());
        put_at(buf, layout::BATCH_LENGTH, &batch_length.to_be_bytes());
        put_at(
            buf,
            layout::PARTITION_LEADER_EPOCH,
            &NO_PARTITION_LEADER_EPOCH.to_be_bytes(),
        );
        buf[layout::MAGIC] = MAGIC_V2.to_be_bytes()[0];
        put_at(buf, layout::ATTRIBUTES, &self.attributes.to_be_bytes());
        put_at(
            buf,
            layout::LAST_OFFSET_DELTA,
            &(self.count - 1).to_be_bytes(),
        );
        put_at(
            buf,
            layout::BASE_TIMESTAMP,
            &self.base_timestamp.to_be_bytes(),
        );
        put_at(
            buf,
            layout::MAX_TIMESTAMP,
            &self.max_timestamp.to_be_bytes(),
        );
        put_at(buf, layout::PRODUCER_ID, &self.producer_id.to_be_bytes());
        put_at(
            buf,
            layout::PRODUCER_EPOCH,
            &self.producer_epoch.to_be_bytes(),
        );
        put_at(
            buf,
            layout::BASE_SEQUENCE,
            &self.base_sequence.to_be_bytes(),
        );
        put_at(buf, layout::RECORDS_COUNT, &self.count.to_be_bytes());
        let crc = crc32c::crc32c(&buf[layout::ATTRIBUTES..]);
        put_at(buf, layout::CRC, &crc.to_be_bytes());
        Ok(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchView, Records};

    #[test]
    fn key_value_writes_key_and_tombstone() {
        let bytes = BatchBuilder::new(7)
            .with_records(&[
                NewRecord::key_value(b"k1", Some(b"v1")),
                NewRecord::key_value(b"k1", None),
            ])
            .finish()
            .unwrap();
        let batch = BatchView::new(&bytes).unwrap();
        batch.verify_crc().unwrap();
        let records: Vec<_> = Records::new(batch.records_bytes(), batch.records_count())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key, Some(&b"k1"[..]));
        assert_eq!(records[0].value, Some(&b"v1"[..]));
        assert_eq!(records[1].key, Some(&b"k1"[..]));
        assert_eq!(records[1].value, None);
        assert_eq!(batch.record_timestamp(records[1].timestamp_delta), 7);
    }
}
