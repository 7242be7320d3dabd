//! Acquisition from the log: what one ShareFetch takes from one partition.

use std::collections::HashSet;

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
    (limits, read_committed, now_ms): (&ShareLimits, bool, u64),
) -> Result<AcquiredRead, ReadError> {
    share.advance_log_start(partition.log_start_offset().value());
    let Some(from) = share.next_fetch_offset(limits, now_ms) else {
        return Ok(AcquiredRead::default());
    };
    let isolation = if read_committed {
        FetchIsolation::TxnCommitted
    } else {
        FetchIsolation::HighWatermark
    };
    let read = partition.read(Offset(from), max_bytes, isolation, true)?;
    let (spans, ends) = spans_of(partition, &read.bytes, (from, read_committed));
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

/// The batches of `bytes` (read from `from`) as acquisition sees them,
/// and where each ends in `bytes`. Under read_committed the batches of
/// aborted transactions are skipped, as a read_committed consumer skips
/// them: a producer's transactional batches from the first offset of one
/// of its aborted transactions until its next marker.
fn spans_of(
    partition: &Partition,
    bytes: &Bytes,
    (from, read_committed): (i64, bool),
) -> (Vec<BatchSpan>, Vec<usize>) {
    let mut spans = Vec::new();
    let mut ends = Vec::new();
    let mut batches = Batches::new(bytes);
    let mut batch_list = Vec::new();
    while let Some(batch) = batches.next() {
        batch_list.push((
            batch.base_offset(),
            batch.last_offset(),
            batch.producer_id(),
            batch.attributes(),
        ));
        ends.push(batches.position());
    }
    let mut aborted = match (read_committed, batch_list.last()) {
        (true, Some(&(_, last, _, _))) => {
            partition.aborted_transactions(Offset(from), Offset(last + 1))
        }
        _ => Vec::new(),
    };
    aborted.sort_by_key(|txn| txn.first_offset);
    let mut pending = aborted.into_iter().peekable();
    let mut aborting: HashSet<i64> = HashSet::new();
    for (base_offset, last_offset, producer_id, attributes) in batch_list {
        while let Some(txn) = pending.next_if(|txn| txn.first_offset.value() <= base_offset) {
            aborting.insert(txn.producer_id);
        }
        let skipped = if attributes.is_control() {
            // A marker ends its producer's transaction, aborted or not.
            aborting.remove(&producer_id);
            true
        } else {
            attributes.is_transactional() && aborting.contains(&producer_id)
        };
        spans.push(BatchSpan {
            base_offset,
            last_offset,
            skipped,
        });
    }
    (spans, ends)
}
