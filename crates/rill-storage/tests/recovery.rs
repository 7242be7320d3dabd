//! Opening a log after a crash or damage: the valid prefix survives,
//! damage is cut off and reported, indexes are rebuilt, nothing panics.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use common::*;
use rill_storage::{FlushPolicy, LogConfig, Offset, RecoveryHints};

/// 1 KiB segments: the 30 batches below span several.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        ..small_config(FlushPolicy::None)
    }
}

/// A crashed log of 30 batches of 4 records (offsets 0..120) in 1 KiB
/// segments; returns the byte length of one batch.
fn crashed_log(fx: &Fixture) -> usize {
    let log = fx.create(config());
    let mut size = 0;
    for i in 0..30 {
        let bytes = numbered_batch(&format!("{i:02}"), 4, 1_000 + i);
        size = bytes.len();
        append(&log, &bytes);
    }
    drop(log);
    size
}

/// Valid bytes of a segment file: it was left with zeros reserved ahead.
fn data_len(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let mut batches = rill_record::Batches::new(&bytes);
    batches.by_ref().count();
    batches.position() as u64
}

fn write_at(path: &Path, at: u64, bytes: &[u8]) {
    let mut file = OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(bytes).unwrap();
}

fn reopen_unclean(fx: &Fixture) -> (rill_storage::Log, rill_storage::RecoveryReport) {
    fx.open(config(), RecoveryHints::unknown())
}

#[test]
fn a_crash_loses_nothing_written_and_reserved_zeros_are_not_damage() {
    let fx = Fixture::new();
    crashed_log(&fx);
    let (log, report) = reopen_unclean(&fx);
    assert_eq!(log.log_end_offset(), Offset(120));
    assert_eq!(report.dropped_bytes, 0);
    assert!(report.validated_bytes > 0);
    assert_eq!(read_all(&log).len(), 120);
    // The recovered log takes appends and reopens cleanly.
    append(&log, &numbered_batch("new", 2, 0));
    let (log, report) = fx.reopen_clean(log);
    assert_eq!(report.scanned_segments, 0);
    assert_eq!(log.log_end_offset(), Offset(122));
}

#[test]
fn a_flipped_bit_in_the_last_batch_cuts_the_log_before_it() {
    let fx = Fixture::new();
    let batch_size = crashed_log(&fx);
    let last = fx.last_segment_file();
    let end = data_len(&last);
    // A byte inside the last batch's records, covered by its CRC.
    let at = end - (batch_size as u64) / 2;
    let mut byte = [0u8];
    std::fs::File::open(&last)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(at))?;
            std::io::Read::read_exact(&mut f, &mut byte)
        })
        .unwrap();
    write_at(&last, at, &[byte[0] ^ 0x40]);
    let (log, report) = reopen_unclean(&fx);
    assert_eq!(
        log.log_end_offset(),
        Offset(116),
        "the damaged batch 116..=119 is gone"
    );
    assert!(report.dropped_bytes >= batch_size as u64);
    assert_eq!(values(&read_all(&log)).last().unwrap(), "28-3");
    let info = append(&log, &numbered_batch("next", 1, 0));
    assert_eq!(info.base_offset, Offset(116));
}

#[test]
fn a_batch_cut_in_the_middle_is_dropped_and_the_rest_kept() {
    let fx = Fixture::new();
    let batch_size = crashed_log(&fx);
    let last = fx.last_segment_file();
    let end = data_len(&last);
    let file = OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(end - (batch_size as u64) / 3).unwrap();
    let (log, report) = reopen_unclean(&fx);
    assert_eq!(log.log_end_offset(), Offset(116));
    assert!(report.dropped_bytes > 0);
    assert_eq!(read_all(&log).len(), 116);
}

#[test]
fn garbage_after_the_last_batch_is_cut() {
    for garbage in [
        vec![0xabu8; 300],
        // A plausible header: huge batchLength, magic 2.
        {
            let mut g = vec![0u8; 64];
            g[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
            g[16] = 2;
            g
        },
        // A negative length.
        {
            let mut g = vec![0u8; 64];
            g[8..12].copy_from_slice(&(-1i32).to_be_bytes());
            g
        },
    ] {
        let fx = Fixture::new();
        crashed_log(&fx);
        let last = fx.last_segment_file();
        let end = data_len(&last);
        write_at(&last, end, &garbage);
        let (log, report) = reopen_unclean(&fx);
        assert_eq!(log.log_end_offset(), Offset(120));
        assert!(report.dropped_bytes > 0);
        assert_eq!(
            std::fs::metadata(&last).unwrap().len(),
            end,
            "the file is cut after the last good batch"
        );
        assert_eq!(read_all(&log).len(), 120);
    }
}

#[test]
fn a_batch_whose_offset_goes_backwards_ends_the_log() {
    // baseOffset lies outside the CRC: only the offset sequence check can
    // catch a batch that claims an earlier offset.
    let fx = Fixture::new();
    let batch_size = crashed_log(&fx);
    let last = fx.last_segment_file();
    let end = data_len(&last);
    write_at(&last, end - batch_size as u64, &3i64.to_be_bytes());
    let (log, report) = reopen_unclean(&fx);
    assert_eq!(log.log_end_offset(), Offset(116));
    assert!(report.dropped_bytes > 0);
}

#[test]
fn damage_in_an_early_segment_cuts_the_log_there_and_deletes_what_follows() {
    let fx = Fixture::new();
    crashed_log(&fx);
    let files = segment_files(&fx.dir(), "log");
    assert!(files.len() >= 2);
    write_at(&files[0], 200, &[0xff; 8]);
    let (log, report) = reopen_unclean(&fx);
    assert!(log.log_end_offset() < Offset(120));
    assert!(report.deleted_segments >= files.len() - 1);
    let records = read_all(&log);
    assert_eq!(records.len() as i64, log.log_end_offset().value());
    // Every surviving record is one that was written, in order.
    for (i, (offset, value, _)) in records.iter().enumerate() {
        assert_eq!(offset.value(), i as i64);
        assert_eq!(
            String::from_utf8(value.clone()).unwrap(),
            format!("{:02}-{}", i / 4, i % 4)
        );
    }
}

#[test]
fn missing_and_malformed_indexes_are_rebuilt_even_after_a_clean_shutdown() {
    let fx = Fixture::new();
    let log = fx.create(config());
    for i in 0..60 {
        append(&log, &numbered_batch(&format!("{i}"), 3, 100 + i));
    }
    let expected = read_all(&log);
    let end = log.log_end_offset();
    let lookup = log.offset_for_timestamp(130, end).unwrap();
    let config = log.config();
    let recovery_point = log.close().unwrap();
    let indexes = segment_files(&fx.dir(), "index");
    let time_indexes = segment_files(&fx.dir(), "timeindex");
    std::fs::remove_file(&indexes[0]).unwrap();
    std::fs::write(&time_indexes[1], [1u8; 5]).unwrap(); // not a whole entry
    // Entries that point past the segment's end.
    std::fs::write(&indexes[2], [0xffu8; 16]).unwrap();
    let (log, report) = fx.open(
        config,
        RecoveryHints {
            clean_shutdown: true,
            recovery_point,
            log_start_offset: Offset(0),
        },
    );
    assert_eq!(report.scanned_segments, 3);
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(read_all(&log), expected);
    assert_eq!(log.offset_for_timestamp(130, end).unwrap(), lookup);
    assert!(indexes[0].exists());
}

#[test]
fn leftover_temporary_files_and_orphan_indexes_are_removed() {
    let fx = Fixture::new();
    crashed_log(&fx);
    let dir = fx.dir();
    std::fs::write(dir.join("00000000000000000000.log.tmp"), b"half a copy").unwrap();
    std::fs::write(dir.join("00000000000000999999.index"), [0u8; 8]).unwrap();
    std::fs::write(dir.join("00000000000000999999.timeindex"), [0u8; 12]).unwrap();
    std::fs::write(dir.join("leader-epoch-checkpoint"), b"0\n0\n").unwrap();
    // A name whose offset arithmetic would overflow is not a segment.
    std::fs::write(dir.join("09223372036854775000.log"), [1u8; 100]).unwrap();
    std::fs::write(dir.join("09223372036854775000.timeindex"), [0x7fu8; 12]).unwrap();
    let (log, _) = reopen_unclean(&fx);
    assert!(!dir.join("00000000000000000000.log.tmp").exists());
    assert!(!dir.join("00000000000000999999.index").exists());
    assert!(!dir.join("00000000000000999999.timeindex").exists());
    assert!(
        dir.join("leader-epoch-checkpoint").exists(),
        "files of other layers are left alone"
    );
    assert_eq!(log.log_end_offset(), Offset(120));
}

#[test]
fn a_recovery_point_beyond_the_data_is_reported_as_missing() {
    let fx = Fixture::new();
    crashed_log(&fx);
    let (log, report) = fx.open(
        config(),
        RecoveryHints {
            clean_shutdown: false,
            recovery_point: Offset(150),
            log_start_offset: Offset(0),
        },
    );
    assert_eq!(log.log_end_offset(), Offset(120));
    assert_eq!(
        report.missing_below_recovery_point,
        Some((Offset(120), Offset(150)))
    );
}

#[test]
fn a_checkpointed_log_start_is_kept_and_one_past_the_data_restarts_the_log() {
    let fx = Fixture::new();
    crashed_log(&fx);
    let hints = |log_start| RecoveryHints {
        clean_shutdown: false,
        recovery_point: Offset(0),
        log_start_offset: Offset(log_start),
    };
    let (log, _) = fx.open(config(), hints(50));
    assert_eq!(log.log_start_offset(), Offset(50));
    assert_eq!(read_all(&log).first().unwrap().0, Offset(50));
    drop(log);
    let (log, _) = fx.open(config(), hints(500));
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (Offset(500), Offset(500))
    );
    let info = append(&log, &numbered_batch("x", 1, 0));
    assert_eq!(info.base_offset, Offset(500));
}

#[test]
fn a_directory_of_garbage_opens_as_an_empty_log() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.dir()).unwrap();
    std::fs::write(
        fx.dir().join("00000000000000000000.log"),
        vec![0x5au8; 10_000],
    )
    .unwrap();
    std::fs::write(
        fx.dir().join("00000000000000000000.index"),
        vec![0x5au8; 100],
    )
    .unwrap();
    let (log, report) = fx.open(LogConfig::default(), RecoveryHints::unknown());
    assert_eq!(log.log_end_offset(), Offset(0));
    assert_eq!(report.dropped_bytes, 10_000);
    append(&log, &numbered_batch("x", 1, 0));
}

#[test]
fn a_batch_whose_offsets_reach_into_the_next_segment_ends_the_log() {
    // Found by the segment_recovery fuzz target. baseOffset lies outside
    // the CRC: a damaged one in an earlier segment may claim offsets at or
    // past the next segment's base. Kept, the log end offset went back
    // below them (to the next segment's base, once that was cut), and new
    // appends were given offsets the log already held.
    let fx = Fixture::new();
    let batch_size = crashed_log(&fx);
    let files = segment_files(&fx.dir(), "log");
    assert!(files.len() >= 3);
    let second_base: i64 = files[1]
        .file_stem()
        .and_then(|stem| stem.to_str())
        .and_then(|stem| stem.parse().ok())
        .unwrap();
    let last_batch_at = data_len(&files[0]) - batch_size as u64;
    let last_batch_base = second_base - 4; // 4 records per batch
    write_at(
        &files[0],
        last_batch_at,
        &(second_base + 1000).to_be_bytes(),
    );
    let (log, report) = reopen_unclean(&fx);
    assert_eq!(log.log_end_offset(), Offset(last_batch_base));
    assert!(report.dropped_bytes >= batch_size as u64);
    assert_eq!(read_all(&log).len() as i64, last_batch_base);
    let info = append(&log, &numbered_batch("next", 1, 0));
    assert_eq!(info.base_offset, Offset(last_batch_base));
}

#[test]
fn a_recovery_whose_files_cannot_be_made_durable_does_not_open() {
    // What recovery scanned, cut or rebuilt must be on disk before the
    // recovery point may pass it: a log whose files cannot be synced does
    // not open as if they were.
    let fx = Fixture::new();
    crashed_log(&fx);
    fx.disk.set_failing_syncs(true);
    let opened = rill_storage::Log::open(
        &fx.dir(),
        config(),
        RecoveryHints::unknown(),
        &fx.flusher,
        fx.disk.clone(),
        0,
    );
    assert!(opened.is_err(), "opened with every sync failing");
    // A failed syncfs alone cannot say whose file failed: each file's own
    // fdatasync decides, and here they succeed.
    fx.disk.set_failing_syncs(false);
    fx.disk.set_failing_file_system_syncs(true);
    let (log, _) = reopen_unclean(&fx);
    assert_eq!(log.log_end_offset(), Offset(120));
    assert_eq!(read_all(&log).len(), 120);
}
