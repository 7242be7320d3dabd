//! Reading: whole batches from the one holding an offset, zero-copy, and
//! lookups by timestamp. Reads share the state lock.

use bytes::Bytes;

use super::Log;
use crate::Offset;
use crate::error::ReadError;

/// Bytes read from a log: whole batches, zero-copy.
#[derive(Clone, Debug)]
pub struct LogRead {
    /// Whole batches, starting with the one that holds the requested
    /// offset; empty when there is nothing to read below the bound.
    pub bytes: Bytes,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

impl Log {
    /// Reads whole batches from the one that holds `from`, up to
    /// `max_bytes` (but at least one batch if `min_one_batch`), from a
    /// single segment, never including a batch that reaches `upper` (the
    /// high watermark, for consumers). Reading at the log end, or at or
    /// past `upper`, gives no bytes; outside [log start, log end] is an
    /// error.
    pub fn read(
        &self,
        from: Offset,
        max_bytes: usize,
        upper: Offset,
        min_one_batch: bool,
    ) -> Result<LogRead, ReadError> {
        let state = self.shared.state.read();
        self.shared.check_readable()?;
        let (log_start_offset, log_end_offset) = (state.log_start_offset, state.log_end());
        if from < log_start_offset || from > log_end_offset {
            return Err(ReadError::OffsetOutOfRange {
                offset: from,
                log_start: log_start_offset,
                log_end: log_end_offset,
            });
        }
        let upper = upper.min(log_end_offset);
        let mut bytes = Bytes::new();
        if from < upper {
            for segment in state.segments_from(from) {
                // One check per call, of the one segment read (two fstats).
                self.shared.check_segment_for_read(&state, segment)?;
                segment.map_for_read()?;
                let start = segment.position_of(from);
                if start == segment.size() {
                    continue; // `from` lies in a gap after this segment's batches
                }
                let limit = segment.position_of(upper);
                if limit > start {
                    let end = segment.read_end(start, limit, max_bytes, min_one_batch);
                    bytes = segment.share(start, end);
                }
                break;
            }
        }
        Ok(LogRead {
            bytes,
            log_start_offset,
            log_end_offset,
        })
    }

    /// The first record whose timestamp is >= `target` among offsets from
    /// the log start up to `upper`: (offset, timestamp). Compressed batches
    /// are expanded to find the exact record.
    pub fn offset_for_timestamp(
        &self,
        target: i64,
        upper: Offset,
    ) -> Result<Option<(Offset, i64)>, ReadError> {
        let state = self.shared.state.read();
        self.shared.check_readable()?;
        let from = state.log_start_offset;
        for segment in state.segments_from(from) {
            if segment.base_offset() >= upper {
                break;
            }
            if segment.max_timestamp() < target {
                continue;
            }
            self.shared.check_segment(&state, segment)?;
            if let Some(found) = segment.find_timestamp(target, from, upper)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The first record with the largest timestamp among offsets from the
    /// log start up to `upper` (ListOffsets' MAX_TIMESTAMP).
    pub fn max_timestamp_record(&self, upper: Offset) -> Result<Option<(Offset, i64)>, ReadError> {
        let state = self.shared.state.read();
        self.shared.check_readable()?;
        let from = state.log_start_offset;
        let mut best: Option<(Offset, i64)> = None;
        for segment in state.segments_from(from) {
            if segment.base_offset() >= upper {
                break;
            }
            if best.is_some_and(|(_, timestamp)| segment.max_timestamp() <= timestamp) {
                continue;
            }
            self.shared.check_segment(&state, segment)?;
            if let Some((offset, timestamp)) = segment.max_timestamp_record(from, upper)? {
                if best.is_none_or(|(_, best_timestamp)| timestamp > best_timestamp) {
                    best = Some((offset, timestamp));
                }
            }
        }
        Ok(best)
    }
}
