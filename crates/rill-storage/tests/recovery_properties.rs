//! Recovery from arbitrary bytes, as a property (the fuzz target
//! `segment_recovery` drives the same path longer, see fuzz/README.md): a
//! segment file that a real log wrote, then damaged anywhere — bytes
//! overwritten, the file cut, garbage appended — or no log at all, opens
//! without a panic after an unclean stop, and what survives is a prefix of
//! the file: every batch wholly before the first damaged byte, and after
//! it nothing that is not a valid batch in offset order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use proptest::prelude::*;
use rill_record::{Batches, BatchesEnd};
use rill_storage::{FlushPolicy, LogConfig, Offset, RecoveryHints};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        ..small_config(FlushPolicy::None)
    }
}

#[derive(Clone, Debug)]
enum Damage {
    /// Bytes overwritten from a position.
    Overwrite(prop::sample::Index, Vec<u8>),
    /// The file cut short.
    Truncate(prop::sample::Index),
    /// Garbage after the last batch.
    Append(Vec<u8>),
    /// The file replaced by random bytes.
    Replace(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    let bytes = |n| proptest::collection::vec(any::<u8>(), 1..n);
    prop_oneof![
        (any::<prop::sample::Index>(), bytes(16)).prop_map(|(at, b)| Damage::Overwrite(at, b)),
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
        bytes(200).prop_map(Damage::Append),
        bytes(2000).prop_map(Damage::Replace),
    ]
}

/// The damaged file, and the position of its first byte that differs
/// from `original` (its length if none does).
fn apply(original: &[u8], damage: &Damage) -> (Vec<u8>, usize) {
    let mut bytes = original.to_vec();
    match damage {
        Damage::Overwrite(at, new) => {
            let at = at.index(bytes.len());
            for (i, b) in new.iter().enumerate() {
                if let Some(byte) = bytes.get_mut(at + i) {
                    *byte = *b;
                }
            }
        }
        Damage::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        Damage::Append(garbage) => bytes.extend_from_slice(garbage),
        Damage::Replace(random) => bytes = random.clone(),
    }
    let first_difference = bytes
        .iter()
        .zip(original)
        .position(|(a, b)| a != b)
        .unwrap_or(bytes.len().min(original.len()));
    (bytes, first_difference)
}

/// End of the last batch of `original` that lies wholly before `position`.
fn intact_end(original: &[u8], position: usize) -> usize {
    let mut end = 0;
    for batch in Batches::new(original) {
        if end + batch.size() > position {
            break;
        }
        end += batch.size();
    }
    end
}

/// Batches of (records, value length) appended to a new log, which is
/// then dropped as a crash would; returns the fixture.
fn crashed_log(config: LogConfig, batches: &[(usize, usize)]) -> Fixture {
    let fx = Fixture::new();
    let log = fx.create(config);
    for (i, (records, value_len)) in batches.iter().enumerate() {
        let values: Vec<Vec<u8>> = (0..*records)
            .map(|r| vec![(i + r) as u8; *value_len])
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        append(&log, &batch(&refs, 1_000 + i as i64));
    }
    drop(log); // no clean-shutdown marker
    fx
}

/// The batches at the start of a segment file, without the zeros
/// reserved after them.
fn batches_of(path: &std::path::Path) -> Vec<u8> {
    let written = std::fs::read(path).unwrap();
    let mut whole = Batches::new(&written);
    whole.by_ref().count();
    written[..whole.position()].to_vec()
}

/// Every batch the log hands out, read as a consumer would, after
/// checking each: CRC, offsets in order and inside the log and inside
/// its segment. Returns the bytes and the offset after the last batch.
fn read_checked(log: &rill_storage::Log) -> Result<(Vec<u8>, Offset), TestCaseError> {
    let bases = log.segment_base_offsets();
    let end = log.log_end_offset();
    let mut kept = Vec::new();
    let mut next = log.log_start_offset();
    while next < end {
        let read = log.read(next, 1 << 20, end, true).unwrap();
        if read.bytes.is_empty() {
            break;
        }
        let mut batches = Batches::new(&read.bytes);
        for batch in batches.by_ref() {
            prop_assert!(batch.verify_crc().is_ok(), "a bad batch was kept");
            prop_assert!(batch.base_offset() >= next.value(), "offsets go back");
            prop_assert!(
                batch.last_offset() < end.value(),
                "a batch past the log end"
            );
            let segment = bases
                .iter()
                .rposition(|b| b.value() <= batch.base_offset())
                .unwrap();
            if let Some(next_base) = bases.get(segment + 1) {
                prop_assert!(
                    batch.last_offset() < next_base.value(),
                    "a batch reaches into the next segment"
                );
            }
            next = Offset(batch.next_offset());
        }
        prop_assert_eq!(batches.end(), Some(&BatchesEnd::Complete));
        kept.extend_from_slice(&read.bytes);
    }
    Ok((kept, next))
}

proptest! {
    // Each case creates, syncs and reopens a log: a few ms of fsyncs.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_damage_recovers_to_a_valid_prefix(
        batches in proptest::collection::vec((1usize..5, 0usize..40), 1..12),
        damage in damage(),
    ) {
        let fx = crashed_log(config(), &batches);
        let path = fx.last_segment_file();
        let original = batches_of(&path);
        let (bytes, first_difference) = apply(&original, &damage);
        std::fs::write(&path, &bytes).unwrap();

        let (log, report) = fx.open(config(), RecoveryHints::unknown());
        let (kept, next) = read_checked(&log)?;
        prop_assert!(bytes.starts_with(&kept), "what was kept is not a prefix of the file");
        prop_assert!(kept.len() >= intact_end(&original, first_difference), "an intact batch was dropped");
        // The log ends right after the last batch kept.
        prop_assert_eq!(log.log_end_offset(), next);
        // Only damage counts as dropped, not zeros after the last batch.
        let rest_is_zeros = bytes[kept.len()..].iter().all(|&b| b == 0);
        prop_assert_eq!(report.dropped_bytes == 0, rest_is_zeros);
        // The log goes on from there.
        let info = append(&log, &numbered_batch("after", 1, 0));
        prop_assert_eq!(info.base_offset, next);
    }
}

proptest! {
    // Fewer cases still: each rolls several segments, and every roll syncs.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn damage_in_any_segment_keeps_what_is_before_it_and_segments_apart(
        batches in proptest::collection::vec((1usize..5, 0usize..40), 8..30),
        at in any::<prop::sample::Index>(),
        damage in damage(),
    ) {
        let config = LogConfig { segment_bytes: 1024, ..config() };
        let fx = crashed_log(config, &batches);
        let files = segment_files(&fx.dir(), "log");
        let damaged = at.index(files.len());
        let before: usize = files[..damaged].iter().map(|f| batches_of(f).len()).sum();
        let original = batches_of(&files[damaged]);
        let (bytes, first_difference) = apply(&original, &damage);
        std::fs::write(&files[damaged], &bytes).unwrap();

        let (log, _) = fx.open(config, RecoveryHints::unknown());
        let (kept, next) = read_checked(&log)?;
        prop_assert!(kept.len() >= before + intact_end(&original, first_difference), "an intact batch was dropped");
        prop_assert_eq!(log.log_end_offset(), next);
        let info = append(&log, &numbered_batch("after", 1, 0));
        prop_assert_eq!(info.base_offset, next);
    }
}
