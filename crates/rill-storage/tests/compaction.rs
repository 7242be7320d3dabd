//! Log compaction: latest value per key, offsets kept, tombstones and
//! delete.retention.ms, compact,delete, the active segment left alone,
//! concurrency with appends and reads, crash safety of the swap, and
//! transactions (aborted records removed; markers, and their index
//! entries, removed once delete.retention.ms has passed after a pass
//! found no batch of their transaction left).
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
    BatchBuilder, BatchView, Batches, Compression, EndTxnMarker, MarkerKind, NewRecord, Records,
    compress, delete_horizon_of, end_txn_marker, layout, records_data,
};
use rill_storage::{
    AbortedTxn, CleanerConfig, CleanupPolicy, FlushPolicy, Log, LogConfig, Offset, RecoveryHints,
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

/// A transactional batch of keyed records of producer `id`.
fn transactional(id: i64, sequence: i32, records: &[(&str, &str)]) -> Vec<u8> {
    let records: Vec<NewRecord<'_>> = records
        .iter()
        .map(|(k, v)| NewRecord::key_value(k.as_bytes(), Some(v.as_bytes())))
        .collect();
    BatchBuilder::new(0)
        .producer(id, 0, sequence)
        .transactional()
        .with_records(&records)
        .finish()
        .unwrap()
}

/// Appends the marker ending producer `id`'s transaction begun at
/// `first`; an abort is indexed. Returns the marker's offset.
fn end_txn(log: &Log, id: i64, first: Offset, kind: MarkerKind) -> Offset {
    let marker = EndTxnMarker {
        kind,
        coordinator_epoch: 0,
    };
    let bytes = end_txn_marker(id, 0, marker, 0).unwrap();
    let at = log.log_end_offset();
    let aborted = (kind == MarkerKind::Abort).then_some(AbortedTxn {
        producer_id: id,
        first_offset: first,
        last_offset: at,
        last_stable_offset: at.plus(1),
    });
    let info = log
        .append_control(&bytes, 0, 0, aborted)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(info.base_offset, at);
    at
}

#[test]
fn compaction_removes_aborted_records_keeps_markers_and_never_lets_an_aborted_value_win() {
    let fx = Fixture::new();
    let log = fx.create(compact_config());
    append(&log, &keyed(&[("k", Some("committed"))], 0)); // 0
    let first = log.log_end_offset();
    append(
        &log,
        &transactional(7, 0, &[("k", "aborted"), ("j", "aborted")]),
    ); // 1..=2
    let abort = end_txn(&log, 7, first, MarkerKind::Abort); // 3
    let first = log.log_end_offset();
    append(&log, &transactional(8, 0, &[("j", "committed")])); // 4
    let commit = end_txn(&log, 8, first, MarkerKind::Commit); // 5
    roll(&log, 0);
    roll(&log, 0);
    let end = log.log_end_offset();
    assert_eq!(log.aborted_txns(Offset(0), end).len(), 1);

    let outcome = compact(&log, 0);
    assert!(outcome.ran, "{outcome:?}");
    assert_eq!(outcome.aborted_records_removed, 2, "{outcome:?}");
    let after = consume(&log);
    let value_of = |key: &[u8]| {
        after
            .iter()
            .filter(|(_, k, _)| k == key)
            .map(|(o, _, v)| (*o, v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        value_of(b"k"),
        [(Offset(0), Some(b"committed".to_vec()))],
        "the aborted later value did not supersede the committed one"
    );
    assert_eq!(value_of(b"j"), [(Offset(4), Some(b"committed".to_vec()))]);
    let offsets: Vec<Offset> = after.iter().map(|r| r.0).collect();
    assert!(
        offsets.contains(&abort) && offsets.contains(&commit),
        "markers kept: {offsets:?}"
    );
    let expected = [AbortedTxn {
        producer_id: 7,
        first_offset: Offset(1),
        last_offset: abort,
        last_stable_offset: abort.plus(1),
    }];
    assert_eq!(
        log.aborted_txns(Offset(0), end),
        expected,
        "the index entry survives the swap"
    );
    let (log, _) = fx.reopen_clean(log);
    assert_eq!(log.aborted_txns(Offset(0), end), expected);
    let (log, _) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(log.aborted_txns(Offset(0), end), expected);
}

#[test]
fn compaction_stops_at_the_bound_it_is_given() {
    let fx = Fixture::new();
    let log = fx.create(compact_config());
    append(&log, &keyed(&[("k", Some("old"))], 0));
    roll(&log, 0);
    let open_txn = log.log_end_offset();
    append(&log, &transactional(7, 0, &[("k", "open")]));
    roll(&log, 0);
    append(&log, &keyed(&[("k", Some("new"))], 0));
    roll(&log, 0);
    // The partition passes its last stable offset: 7's transaction is open.
    let outcome = log.compact(0, open_txn, &CleanerConfig::default()).unwrap();
    assert!(outcome.clean_point <= open_txn, "{outcome:?}");
    let after = consume(&log);
    assert!(
        after
            .iter()
            .any(|(_, _, v)| v.as_deref() == Some(b"open".as_slice())),
        "nothing at or past the bound was touched"
    );
}

#[test]
fn an_interrupted_swap_keeps_or_drops_the_transaction_index_by_its_commit() {
    let fx = Fixture::new();
    let log = fx.create(compact_config());
    append(&log, &keyed(&[("k", Some("v"))], 0));
    let first = log.log_end_offset();
    append(&log, &transactional(7, 0, &[("k", "aborted")]));
    let abort = end_txn(&log, 7, first, MarkerKind::Abort);
    roll(&log, 0);
    roll(&log, 0);
    assert!(compact(&log, 0).ran);
    let end = log.log_end_offset();
    let entries = log.aborted_txns(Offset(0), end);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].last_offset, abort);
    let live = fx.dir().join("00000000000000000000.txnindex");
    assert!(live.exists());
    let (log, _) = fx.reopen_clean(log);
    drop(log);

    // A crash after the cleaned log took its live name, before its
    // transaction index did: the swap completed but for that rename.
    let swap = fx.dir().join("00000000000000000000.txnindex.swap");
    std::fs::rename(&live, &swap).unwrap();
    let (log, report) = fx.open(compact_config(), RecoveryHints::unknown());
    assert_eq!(report.completed_swaps, 0);
    assert_eq!(log.aborted_txns(Offset(0), end), entries);
    assert!(live.exists() && !swap.exists());
    drop(log);

    // A crash before the commit: the cleaned log is still `.cleaned`, so
    // the index beside it was never committed and goes with it.
    std::fs::copy(&live, &swap).unwrap();
    std::fs::write(fx.dir().join("00000000000000000000.log.cleaned"), b"").unwrap();
    let (log, _) = fx.open(compact_config(), RecoveryHints::unknown());
    assert!(!swap.exists());
    assert_eq!(
        log.aborted_txns(Offset(0), end),
        entries,
        "the live one is kept"
    );
}

/// Every marker in the log: its offset and its delete horizon, if a pass
/// has set one.
fn markers(log: &Log) -> BTreeMap<Offset, Option<i64>> {
    let mut out = BTreeMap::new();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    while next < end {
        let read = log.read(next, 1 << 20, end, true).unwrap();
        if read.bytes.is_empty() {
            break;
        }
        for batch in Batches::new(&read.bytes) {
            if batch.attributes().is_control() {
                assert!(
                    EndTxnMarker::of(&batch).unwrap().is_some(),
                    "a marker stays whole"
                );
                out.insert(Offset(batch.base_offset()), delete_horizon_of(&batch));
            }
            next = Offset(batch.next_offset());
        }
    }
    out
}

/// The state a crash or a clean reopen must not change.
type TxnState = (Vec<Seen>, BTreeMap<Offset, Option<i64>>, Vec<AbortedTxn>);

fn txn_state(log: &Log) -> TxnState {
    let end = log.log_end_offset();
    (consume(log), markers(log), log.aborted_txns(Offset(0), end))
}

/// A crash right after the pass, then a clean reopen: neither changes what
/// the pass left.
fn assert_survives_reopen(fx: &Fixture, log: Log) -> Log {
    let before = txn_state(&log);
    let (log, _) = fx.reopen_crashed(log, Offset(0));
    assert_eq!(txn_state(&log), before, "after a crash");
    let (log, _) = fx.reopen_clean(log);
    assert_eq!(txn_state(&log), before, "after a clean reopen");
    log
}

#[test]
fn a_commit_marker_goes_delete_retention_ms_after_its_data_is_gone() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        delete_retention_ms: 500,
        ..compact_config()
    });
    let first = log.log_end_offset();
    append(&log, &transactional(8, 0, &[("j", "first")])); // 0
    let commit1 = end_txn(&log, 8, first, MarkerKind::Commit); // 1
    let first = log.log_end_offset();
    append(&log, &transactional(8, 1, &[("j", "second")])); // 2
    let commit2 = end_txn(&log, 8, first, MarkerKind::Commit); // 3
    roll(&log, 0);

    // Pass 1 traverses the first transaction's batch (and removes it,
    // superseded): its marker stays, with no horizon yet.
    let outcome = compact(&log, 1_000);
    assert!(
        outcome.ran && outcome.records_superseded >= 1,
        "{outcome:?}"
    );
    assert_eq!(outcome.markers_removed, 0, "{outcome:?}");
    assert!(!consume(&log).iter().any(|r| r.0 == Offset(0)));
    assert_eq!(
        markers(&log),
        BTreeMap::from([(commit1, None), (commit2, None)])
    );
    let log = assert_survives_reopen(&fx, log);

    // Pass 2 finds no batch of it: the horizon is set to now + 500. The
    // second transaction's batch holds the latest "j", so its marker stays
    // with no horizon.
    roll(&log, 0);
    let outcome = compact(&log, 2_000);
    assert_eq!(outcome.markers_removed, 0, "{outcome:?}");
    assert_eq!(
        markers(&log),
        BTreeMap::from([(commit1, Some(2_500)), (commit2, None)])
    );
    let log = assert_survives_reopen(&fx, log);

    // Before the horizon it stays.
    roll(&log, 0);
    assert_eq!(compact(&log, 2_499).markers_removed, 0);
    assert_eq!(markers(&log).get(&commit1), Some(&Some(2_500)));

    // At the horizon it goes; the retained transaction's marker and
    // value do not.
    roll(&log, 0);
    let outcome = compact(&log, 2_500);
    assert_eq!(outcome.markers_removed, 1, "{outcome:?}");
    assert_eq!(markers(&log), BTreeMap::from([(commit2, None)]));
    let seen = consume(&log);
    assert!(
        seen.iter()
            .any(|r| r.0 == Offset(2) && r.2.as_deref() == Some(&b"second"[..])),
        "{seen:?}"
    );
    let log = assert_survives_reopen(&fx, log);
    // Later passes leave it so.
    roll(&log, 0);
    compact(&log, 1_000_000);
    assert_eq!(markers(&log), BTreeMap::from([(commit2, None)]));
}

#[test]
fn an_abort_marker_and_its_index_entry_go_after_its_records() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        delete_retention_ms: 500,
        ..compact_config()
    });
    append(&log, &keyed(&[("k", Some("committed"))], 0)); // 0
    let first = log.log_end_offset();
    append(&log, &transactional(7, 0, &[("k", "aborted")])); // 1
    let abort = end_txn(&log, 7, first, MarkerKind::Abort); // 2
    let first = log.log_end_offset();
    append(&log, &transactional(7, 1, &[("m", "later")])); // 3
    let commit = end_txn(&log, 7, first, MarkerKind::Commit); // 4
    roll(&log, 0);
    let entry = AbortedTxn {
        producer_id: 7,
        first_offset: Offset(1),
        last_offset: abort,
        last_stable_offset: abort.plus(1),
    };

    // Pass 1: the aborted record goes; its marker and entry stay.
    let outcome = compact(&log, 1_000);
    assert_eq!(outcome.aborted_records_removed, 1, "{outcome:?}");
    assert_eq!(outcome.markers_removed, 0, "{outcome:?}");
    assert!(!consume(&log).iter().any(|r| r.0 == Offset(1)));
    assert_eq!(
        markers(&log),
        BTreeMap::from([(abort, None), (commit, None)])
    );
    let end = log.log_end_offset();
    assert_eq!(log.aborted_txns(Offset(0), end), [entry]);
    let log = assert_survives_reopen(&fx, log);

    // Pass 2: no batch of it is left, so the horizon is set; the entry
    // stays with the marker.
    roll(&log, 0);
    compact(&log, 1_000);
    assert_eq!(markers(&log).get(&abort), Some(&Some(1_500)));
    let end = log.log_end_offset();
    assert_eq!(log.aborted_txns(Offset(0), end), [entry]);
    let log = assert_survives_reopen(&fx, log);

    // Pass 3, at the horizon: the marker goes, and its entry with it.
    roll(&log, 0);
    let outcome = compact(&log, 1_500);
    assert_eq!(outcome.markers_removed, 1, "{outcome:?}");
    assert_eq!(markers(&log), BTreeMap::from([(commit, None)]));
    let end = log.log_end_offset();
    assert_eq!(log.aborted_txns(Offset(0), end), []);
    let seen = consume(&log);
    assert!(
        seen.iter()
            .any(|r| r.0 == Offset(0) && r.2.as_deref() == Some(&b"committed"[..])),
        "{seen:?}"
    );
    let log = assert_survives_reopen(&fx, log);
    let end = log.log_end_offset();
    assert_eq!(log.aborted_txns(Offset(0), end), []);
}

#[test]
fn a_marker_stays_while_a_batch_of_its_transaction_does() {
    let fx = Fixture::new();
    let log = fx.create(LogConfig {
        delete_retention_ms: 500,
        ..compact_config()
    });
    // Producer 9's transaction holds the latest "j": its data stays.
    let first = log.log_end_offset();
    append(&log, &transactional(9, 0, &[("j", "kept")]));
    let commit = end_txn(&log, 9, first, MarkerKind::Commit);
    // Producer 7's aborted batch is its last data batch: its records go,
    // but the batch stays, empty, for the producer's sequence, and so the
    // marker ending its transaction stays too, with its index entry.
    let first = log.log_end_offset();
    append(&log, &transactional(7, 0, &[("k", "aborted")]));
    let abort = end_txn(&log, 7, first, MarkerKind::Abort);
    roll(&log, 0);
    let expected = BTreeMap::from([(commit, None), (abort, None)]);
    for now_ms in [1_000, 2_000, 1_000_000] {
        roll(&log, 0);
        let outcome = compact(&log, now_ms);
        assert!(outcome.ran, "{outcome:?}");
        assert_eq!(outcome.markers_removed, 0, "{outcome:?}");
        assert_eq!(markers(&log), expected, "at {now_ms}");
        let end = log.log_end_offset();
        assert_eq!(log.aborted_txns(Offset(0), end).len(), 1, "at {now_ms}");
    }
    let seen = consume(&log);
    assert!(
        seen.iter()
            .any(|r| r.1 == b"j" && r.2.as_deref() == Some(&b"kept"[..]))
    );
    assert!(!seen.iter().any(|r| r.1 == b"k"), "{seen:?}");
    let log = assert_survives_reopen(&fx, log);
    assert_eq!(markers(&log), expected);
}
