//! Acquisition from the log: what one ShareFetch takes from one partition.

use bytes::Bytes;
use rill_partition::{FetchIsolation, Partition};
use rill_record::Batches;
use rill_share::{Acquired, BatchSpan, ShareLimits, SharePartition};
use rill_storage::{Offset, ReadError};

/// Records acquired for a member: the batches that hold them (whole, as
/// the log has them; the client keeps only the acquired offsets) and the
/// acquired ranges.
#[derive(Debug, Default)]
pub(crate) struct AcquiredRead {
    pub records: Bytes,
    pub acquired: Vec<Acquired>,
}

/// Reads `partition` from where `share` has records to hand out and
/// acquires up to `max_records` of them for `member`, in at most about
/// `max_bytes` of batches (the first batch comes whole, whatever its size).
pub(crate) fn acquire_from_log(
    partition: &Partition,
    share: &mut SharePartition,
    member: &str,
    (max_records, max_bytes): (u32, usize),
    (limits, now_ms): (&ShareLimits, u64),
) -> Result<AcquiredRead, ReadError> {
    share.advance_log_start(partition.log_start_offset().value());
    let Some(from) = share.next_fetch_offset(limits, now_ms) else {
        return Ok(AcquiredRead::default());
    };
    let read = partition.read(Offset(from), max_bytes, FetchIsolation::HighWatermark, true)?;
    let mut spans = Vec::new();
    let mut ends = Vec::new();
    let mut batches = Batches::new(&read.bytes);
    while let Some(batch) = batches.next() {
        spans.push(BatchSpan {
            base_offset: batch.base_offset(),
            last_offset: batch.last_offset(),
            control: batch.attributes().is_control(),
        });
        ends.push(batches.position());
    }
    let acquired = share.acquire(member, &spans, max_records, (limits, now_ms));
    let holds = |span: &BatchSpan| {
        acquired
            .iter()
            .any(|a| a.first_offset <= span.last_offset && a.last_offset >= span.base_offset)
    };
    let first = spans.iter().position(holds);
    let last = spans.iter().rposition(holds);
    let records = match (first, last) {
        (Some(first), Some(last)) => {
            let start = if first == 0 { 0 } else { ends[first - 1] };
            read.bytes.slice(start..ends[last])
        }
        _ => Bytes::new(),
    };
    Ok(AcquiredRead { records, acquired })
}
