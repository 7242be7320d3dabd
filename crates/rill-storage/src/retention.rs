//! Which old segments retention deletes: by age (retention.ms), by total
//! size (retention.bytes), and below the log start offset, as Kafka does.

use crate::Offset;
use crate::config::LogConfig;
use crate::segment::Segment;

/// What one retention pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: Offset,
}

/// How many of the oldest segments may go: those whose newest record is
/// older than retention.ms, those whose removal keeps the log at or above
/// retention.bytes (both only when cleanup.policy includes `delete`), and
/// those wholly below the log start offset; in every case only segments
/// that end at or below `upper`. May count every segment, the active one
/// included (the caller then rolls first).
pub(crate) fn deletable_prefix(
    segments: &[&Segment],
    config: &LogConfig,
    log_start: Offset,
    now_ms: i64,
    upper: Offset,
) -> usize {
    let below_upper = |segment: &Segment| segment.next_offset() <= upper;
    let by_time = if config.cleanup_policy.delete && config.retention_ms >= 0 {
        segments
            .iter()
            .take_while(|s| {
                below_upper(s) && now_ms.saturating_sub(s.largest_timestamp()) > config.retention_ms
            })
            .count()
    } else {
        0
    };
    let by_size = if config.cleanup_policy.delete && config.retention_bytes >= 0 {
        let total: i64 = segments.iter().map(|s| i64::from(s.size())).sum();
        let mut excess = total - config.retention_bytes;
        segments
            .iter()
            .take_while(|s| {
                let size = i64::from(s.size());
                let deletable = below_upper(s) && excess - size >= 0;
                if deletable {
                    excess -= size;
                }
                deletable
            })
            .count()
    } else {
        0
    };
    let by_start = segments
        .windows(2)
        .take_while(|pair| pair[1].base_offset() <= log_start)
        .count();
    by_time.max(by_size).max(by_start)
}
