//! Log compaction: latest value per key, offsets kept, tombstones and
//! delete.retention.ms, compact,delete, the active segment left alone,
//! concurrency with appends and reads, and crash safety of the swap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::Fixture;
use rill_record::{
    BatchBuilder, BatchView, Batches, Compression, NewRecord, Records, compress, layout,
    records_data,
};
use rill_storage::{
    CleanerConfig, CleanupPolicy, FlushPolicy, Log, LogConfig, Offset, RecoveryHints,
};

/// (offset, key, value) of a record as a consumer sees it.
type Seen = (Offset, Vec<u8>, Option<Vec<u8>>);

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        segment_index_bytes: 4096,
        index_interval_bytes: 128,
        retention_ms: -1,
        flush: FlushPolicy::None,
        cleanup_policy: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

/// A batch of keyed records (`None` value: a tombstone) at `timestamp`.
fn keyed(records: &[(&str, Option<&str>)], timestamp: i64) -> Vec<u8> {
    let records: Vec<NewRecord<'_>> = records
        .iter()
        .map(|(k, v)| NewRecord {
            timestamp,
            key: Some(k.as_bytes()),
            value: v.map(str::as_bytes),
            headers: &[],
        })
        .collect();
    BatchBuilder::new(timestamp)
        .with_records(&records)
        .finish()
        .unwrap()
}

/// `batch` with its records section compressed by `codec`.
fn compressed(batch: &[u8], codec: Compression) -> Vec<u8> {
    let view = BatchView::new(batch).unwrap();
    let mut out = batch[..layout::RECORDS].to_vec();
    out.extend(compress(codec, view.records_bytes()).unwrap());
    let length = i32::try_from(out.len() - layout::LOG_OVERHEAD).unwrap();
    out[layout::BATCH_LENGTH..layout::BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let attributes = i16::from(codec.code());
    out[layout::ATTRIBUTES..layout::ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[layout::ATTRIBUTES..]);
    out[layout::CRC..layout::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

fn append(log: &Log, batch: &[u8]) {
    log.append(batch, 0, 0).unwrap().wait().unwrap();
}

/// Reads the whole log as a consumer does: each fetch from the next
/// offset after the last batch received (batches may end in a gap, or be
/// empty, after compaction).
fn consume(log: &Log) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    while next < end {
        let read = log.read(next, 1 << 20, end, true).unwrap();
        if read.bytes.is_empty() {
            break;
        }
        for batch in Batches::new(&read.bytes) {
            batch.verify_crc().unwrap();
            let data = records_data(&batch, 1 << 30).unwrap();
            for record in Records::new(&data, batch.records_count()) {
                let record = record.unwrap();
                let offset = Offset(batch.base_offset() + i64::from(record.offset_delta));
                if offset >= next {
                    out.push((
                        offset,
                        record.key.unwrap().to_vec(),
                        record.value.map(<[u8]>::to_vec),
                    ));
                }
            }
            next = Offset(batch.next_offset());
        }
    }
    let offsets: Vec<Offset> = out.iter().map(|r| r.0).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets strictly increase"
    );
    out
}

/// The latest value of each key among `records` (tombstones remove).
fn latest(records: &[Seen]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut model = BTreeMap::new();
    for (_, key, value) in records {
        match value {
            Some(value) => model.insert(key.clone(), value.clone()),
            None => model.remove(key),
        };
    }
    model
}

/// Appends filler records (one key, so they compact away) until the
/// active segment rolls: everything before is then sealed.
fn roll(log: &Log, timestamp: i64) {
    let active = log.active_segment_base_offset();
    while log.active_segment_base_offset() == active {
        append(log, &keyed(&[("filler", Some("x"))], timestamp));
    }
}

fn compact(log: &Log, now_ms: i64) -> rill_storage::CompactionOutcome {
    log.compact(now_ms, log.log_end_offset(), &CleanerConfig::default())
        .unwrap()
}

/// Appends `rounds` batches writing keys k0..k9 with values naming the
/// round; returns every record appended, as a consumer read it before.
fn fill(log: &Log, rounds: usize) -> Vec<Seen> {
    for round in 0..rounds {
        let values: Vec<(String, String)> = (0..5)
            .map(|i| {
                let key = (round * 5 + i) % 10;
                (format!("k{key}"), format!("v{round}-{i}"))
            })
            .collect();
        let records: Vec<(&str, Option<&str>)> = values
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .collect();
        append(log, &keyed(&records, 0));
    }
    consume(log)
}

#[test]
fn latest_value_per_key_survives_across_many_segments_with_offsets_kept() {
    let fx = Fixture::new();
    let log = fx.create(compact_config());
    let before = fill(&log, 120);
    assert!(log.segment_count() > 5, "{}", log.segment_count());
    let active_before = log.active_segment_base_offset();
    let outcome = compact(&log, 0);
    assert!(outcome.ran && !outcome.aborted, "{outcome:?}");
    assert!(outcome.bytes_after < outcome.bytes_before, "{outcome:?}");
    assert_eq!(outcome.clean_point, active_before);
    let after = consume(&log);
    assert_eq!(latest(&after), latest(&before));
    // Every surviving record is the one appended at that offset.
    let by_offset: BTreeMap<Offset, &Seen> = before.iter().map(|r| (r.0, r)).collect();
    for record in &after {
        assert_eq!(by_offset[&record.0], record);
    }
    // Below the clean point, each key appears once.
    let mut keys: Vec<&Vec<u8>> = after
        .iter()
        .filter(|r| r.0 < outcome.clean_point)
        .map(|r| &r.1)
        .collect();
    let total = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), total, "no key twice in the cleaned part");
    // The active segment is untouched: everything in it is still there.
    let active: Vec<&Seen> = before.iter().filter(|r| r.0 >= active_before).collect();
    let active_after: Vec<&Seen> = after.iter().filter(|r| r.0 >= active_before).collect();
    assert_eq!(active, active_after);
    assert_eq!(log.active_segment_base_offset(), active_before);
    // A second pass with nothing dirty does nothing.
    assert!(!compact(&log, 0).ran);
    // The result and the clean point survive a clean restart.
    let clean_point = log.clean_point();
    let (log, _) = fx.reopen_clean(log);
    assert_eq!(log.clean_point(), clean_point);
    assert_eq!(consume(&log), after);
}

#[test]
fn a_read_inside_a_gap_returns_the_next_surviving_record() {
    let fx = Fixture::new();
    let log = fx.create(compact_config());
    let before = fill(&log, 60);
    compact(&log, 0);
    let after = consume(&log);
    let surviving: Vec<Offset> = after.iter().map(|r| r.0).collect();
    let removed = before
        .iter()
        .map(|r| r.0)
        .find(|o| !surviving.contains(o))
        .unwrap();
    let next = *surviving.iter().find(|&&o| o > removed).unwrap();
    // A consumer fetching at the removed offset gets the batch that held
    // it (possibly emptied, or ending in a gap) and moves on by the
    // batch's next offset: the first record it sees is the next survivor.
    let mut from = removed;
    let first_at_or_after = loop {
        let read = log.read(from, 256, log.log_end_offset(), true).unwrap();
        assert!(!read.bytes.is_empty());
        let mut found = None;
        for batch in Batches::new(&read.bytes) {
            let data = records_data(&batch, 1 << 20).unwrap();
            found = Records::new(&data, batch.records_count())
                .map(|r| Offset(batch.base_offset() + i64::from(r.unwrap().offset_delta)))
                .find(|&o| o >= removed);
            from = Offset(batch.next_offset());
            if found.is_some() {
                break;
            }
        }
        if found.is_some() {
            break found;
        }
    };
    assert_eq!(first_at_or_after, Some(next));
}

#[test]
fn tombstones_are_kept_for_delete_retention_ms_then_removed() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        delete_retention_ms: 500,
        ..compact_config()
    });
    append(&log, &keyed(&[("a", Some("1")), ("b", Some("2"))], 0));
    append(&log, &keyed(&[("a", None)], 0));
    roll(&log, 0);
    // First pass at t=1000: the tombstone is the latest of "a" and stays;
    // its horizon becomes 1500.
    assert!(compact(&log, 1_000).ran);
    let seen = consume(&log);
    assert!(
        seen.iter().any(|r| r.1 == b"a" && r.2.is_none()),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|r| r.1 == b"a" && r.2.is_some()));
    // Before the horizon, still there.
    roll(&log, 0);
    assert!(compact(&log, 1_499).ran);
    assert!(consume(&log).iter().any(|r| r.1 == b"a" && r.2.is_none()));
    // After it, gone; "b" stays.
    roll(&log, 0);
    let outcome = compact(&log, 1_500);
    assert_eq!(outcome.tombstones_removed, 1, "{outcome:?}");
    let seen = consume(&log);
    assert!(!seen.iter().any(|r| r.1 == b"a"), "{seen:?}");
    assert!(
        seen.iter()
            .any(|r| r.1 == b"b" && r.2.as_deref() == Some(&b"2"[..]))
    );
}

#[test]
fn compressed_batches_are_compacted_and_stay_compressed() {
    for codec in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Lz4,
        Compression::Snappy,
    ] {
        let fx = Fixture::new();
        let log = fx.create(compact_config());
        for round in 0..30 {
            let v = format!("v{round}");
            let batch = keyed(&[("x", Some(&v)), ("y", Some(&v)), ("z", Some("same"))], 0);
            append(&log, &compressed(&batch, codec));
        }
        let before = consume(&log);
        compact(&log, 0);
        let after = consume(&log);
        assert_eq!(latest(&after), latest(&before), "{codec:?}");
        assert!(after.len() < before.len(), "{codec:?}");
        let read = log
            .read(Offset(0), 1 << 20, log.log_end_offset(), true)
            .unwrap();
        for batch in Batches::new(&read.bytes) {
            if batch.records_count() > 0 {
                assert_eq!(
                    batch.attributes().compression_code(),
                    codec.code(),
                    "{codec:?}"
                );
            }
        }
    }
}

#[test]
fn retention_deletes_by_time_only_when_the_policy_includes_delete() {
    for (policy, expect_deleted) in [
        (CleanupPolicy::COMPACT, false),
        (CleanupPolicy::COMPACT_DELETE, true),
        (CleanupPolicy::DELETE, true),
    ] {
        let fx = Fixture::new();
        let log = fx.create(LogConfig {
            cleanup_policy: policy,
            retention_ms: 1_000,
            ..compact_config()
        });
        fill(&log, 40);
        let outcome = log.apply_retention(10_000, log.log_end_offset()).unwrap();
        assert_eq!(outcome.segments_deleted > 0, expect_deleted, "{policy:?}");
        // Only a policy with `compact` compacts (compact,delete had
        // nothing sealed left after retention).
        let compacted = compact(&log, 10_000).ran;
        if policy == CleanupPolicy::DELETE || policy == CleanupPolicy::COMPACT {
            assert_eq!(compacted, policy.compact, "{policy:?}");
        }
    }
}

#[test]
fn min_compaction_lag_keeps_young_segments_dirty() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        min_compaction_lag_ms: 1_000,
        ..compact_config()
    });
    fill(&log, 40);
    roll(&log, 0);
    assert!(!compact(&log, 500).ran, "records are 500 ms old");
    assert!(compact(&log, 1_500).ran);
}

#[test]
fn appends_and_reads_go_on_during_compaction() {
    let fx = Fixture::new();
    let log = Arc::new(fx.create(compact_config()));
    fill(&log, 40);
    let stop = Arc::new(AtomicBool::new(false));
    let compactor = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut passes = 0;
            while !stop.load(Ordering::SeqCst) {
                if log
                    .compact(0, log.log_end_offset(), &CleanerConfig::default())
                    .unwrap()
                    .ran
                {
                    passes += 1;
                }
            }
            passes
        })
    };
    let reader = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(Ordering::SeqCst) {
                consume(&log);
                reads += 1;
            }
            reads
        })
    };
    let mut model = BTreeMap::new();
    for round in 0..400 {
        let key = format!("k{}", round % 13);
        let value = format!("w{round}");
        append(&log, &keyed(&[(&key, Some(&value))], 0));
        model.insert(key.into_bytes(), value.into_bytes());
    }
    stop.store(true, Ordering::SeqCst);
    let passes = compactor.join().unwrap();
    assert!(reader.join().unwrap() > 0);
    assert!(passes > 0);
    compact(&log, 0);
    let seen = latest(&consume(&log));
    for (key, value) in &model {
        assert_eq!(seen.get(key), Some(value));
    }
}

/// A directory's files: name → contents.
type DirFiles = BTreeMap<String, Vec<u8>>;

/// Files of `dir`, by name.
fn files(dir: &Path) -> DirFiles {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn write_files(dir: &Path, files: &DirFiles) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn a_crash_at_each_step_of_the_swap_loses_nothing_and_leaves_no_duplicates() {
    // Small segments (1 KiB) cleaned as one group (segment.bytes 16 KiB).
    let fx = Fixture::new();
    let log = fx.create(compact_config());
    let before_records = fill(&log, 40);
    let (log, _) = fx.reopen_clean(log);
    let config = LogConfig {
        segment_bytes: 16 * 1024,
        ..compact_config()
    };
    log.set_config(config).unwrap();
    let end = log.close().unwrap();
    let before = files(&fx.dir());
    let hints = RecoveryHints {
        clean_shutdown: false,
        recovery_point: end,
        log_start_offset: Offset(0),
    };
    let (log, _) = fx.open(config, hints);
    let outcome = compact(&log, 0);
    assert_eq!(outcome.segments_written, 1, "{outcome:?}");
    assert!(outcome.segments_cleaned > 2, "{outcome:?}");
    let after_records = consume(&log);
    log.close().unwrap();
    let after = files(&fx.dir());
    let old_logs: Vec<&String> = before.keys().filter(|n| n.ends_with(".log")).collect();
    let new_logs: Vec<&String> = after.keys().filter(|n| n.ends_with(".log")).collect();
    let cleaned = new_logs[0].clone();
    assert_eq!(&cleaned, old_logs[0]);
    let replaced: Vec<String> = old_logs
        .iter()
        .filter(|n| !new_logs.contains(n) || n.as_str() == cleaned)
        .map(|n| n.to_string())
        .collect();
    let stem = |name: &str| name.trim_end_matches(".log").to_string();
    let cleaned_data = after[&cleaned].clone();
    let expected_model = latest(&before_records);
    assert_eq!(latest(&after_records), expected_model);

    // Each crash state: (description, files, whether the swap completes).
    let mut states: Vec<(&str, DirFiles, bool)> = Vec::new();
    let mut written = before.clone();
    written.insert(
        format!("{}.log.cleaned", stem(&cleaned)),
        cleaned_data.clone(),
    );
    written.insert(format!("{}.index.cleaned", stem(&cleaned)), Vec::new());
    states.push(("output written, not committed", written, false));
    let mut committed = before.clone();
    committed.insert(format!("{}.log.swap", stem(&cleaned)), cleaned_data.clone());
    committed.insert(format!("{}.index.swap", stem(&cleaned)), vec![0; 8]);
    states.push(("committed", committed.clone(), true));
    let mut half_deleted = committed.clone();
    for name in replaced.iter().skip(1).step_by(2) {
        for suffix in ["log", "index", "timeindex"] {
            half_deleted.remove(&format!("{}.{suffix}", stem(name)));
        }
    }
    states.push(("some old segments deleted", half_deleted, true));
    let mut all_deleted = committed.clone();
    for name in &replaced {
        for suffix in ["log", "index", "timeindex"] {
            all_deleted.remove(&format!("{}.{suffix}", stem(name)));
        }
    }
    states.push(("all old segments deleted", all_deleted.clone(), true));
    let mut done = all_deleted;
    done.remove(&format!("{}.log.swap", stem(&cleaned)));
    done.remove(&format!("{}.index.swap", stem(&cleaned)));
    done.insert(cleaned.clone(), cleaned_data);
    states.push(("renamed into place", done, true));

    for (what, state, completes) in states {
        write_files(&fx.dir(), &state);
        let (log, report) = fx.open(config, hints);
        assert_eq!(report.missing_below_recovery_point, None, "{what}");
        let seen = consume(&log);
        assert_eq!(latest(&seen), expected_model, "{what}");
        if completes {
            assert_eq!(seen, after_records, "{what}");
        } else {
            assert_eq!(seen, before_records, "{what}");
        }
        let leftovers: Vec<String> = files(&fx.dir())
            .into_keys()
            .filter(|n| n.ends_with(".swap") || n.ends_with(".cleaned"))
            .collect();
        assert!(leftovers.is_empty(), "{what}: {leftovers:?}");
        // The recovered log compacts again without trouble.
        compact(&log, 0);
        assert_eq!(latest(&consume(&log)), expected_model, "{what}");
        drop(log);
    }
}
