//! Arbitrary bytes as a partition directory's segment files, opened with
//! rill-storage's recovery, then read back, searched, appended to and
//! recovered again. Nothing may panic; after a recovery that validated
//! everything, what is left must be valid batches in offset order, and a
//! second recovery must find nothing more to cut.
//!
//! Input layout (see README.md):
//! - byte 0, flags: bits 0-1 the recovery hints (0, 1: nothing known, every
//!   batch validated; 2: unclean, recovery point from byte 1; 3: clean
//!   shutdown, log end from byte 1); bit 2: an `.index` file follows; bit
//!   3: a `.timeindex` file follows; bit 4: the log is split into two
//!   segments.
//! - byte 1: the recovery point or clean log end offset.
//! - for each file that bits 2 and 3 announce: a big-endian u16 length,
//!   then that many bytes.
//! - if bit 4: a big-endian u16 split position and a big-endian u16 base
//!   offset of the second segment.
//! - the rest: the log data (the first segment's `.log`, base offset 0).
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rill_record::{BatchBuilder, Batches, BatchesEnd, NewRecord};
use rill_storage::{FlushPolicy, Flusher, Log, LogConfig, Offset, RealDisk, RecoveryHints};

const FLAG_INDEX: u8 = 1 << 2;
const FLAG_TIME_INDEX: u8 = 1 << 3;
const FLAG_SPLIT: u8 = 1 << 4;

/// Reads, each at least one batch, before the walk of the log gives up:
/// more than any input of libFuzzer's lengths holds batches.
const READS_MAX: usize = 1 << 16;

fn flusher() -> &'static Flusher {
    static FLUSHER: OnceLock<Flusher> = OnceLock::new();
    FLUSHER.get_or_init(|| Flusher::start(1).expect("the flusher thread starts"))
}

/// Small segments and a dense index, so the input crosses their bounds.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        segment_index_bytes: 4096,
        index_interval_bytes: 64,
        retention_ms: -1,
        flush: FlushPolicy::None,
        ..LogConfig::default()
    }
}

struct Input<'a> {
    hints: RecoveryHints,
    /// Whether recovery validates every batch (nothing is trusted).
    strict: bool,
    index: Option<&'a [u8]>,
    time_index: Option<&'a [u8]>,
    split: Option<(usize, i64)>,
    log: &'a [u8],
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, tail) = data.split_at_checked(n)?;
    *data = tail;
    Some(head)
}

fn take_u16(data: &mut &[u8]) -> Option<u16> {
    take(data, 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

fn parse(mut data: &[u8]) -> Option<Input<'_>> {
    let header = take(&mut data, 2)?;
    let (flags, point) = (header[0], Offset(i64::from(header[1])));
    let (hints, strict) = match flags & 3 {
        0 | 1 => (RecoveryHints::unknown(), true),
        2 => (
            RecoveryHints {
                clean_shutdown: false,
                recovery_point: point,
                log_start_offset: Offset(0),
            },
            false,
        ),
        _ => (
            RecoveryHints {
                clean_shutdown: true,
                recovery_point: point,
                log_start_offset: Offset(0),
            },
            false,
        ),
    };
    let index = file_if(flags & FLAG_INDEX != 0, &mut data)?;
    let time_index = file_if(flags & FLAG_TIME_INDEX != 0, &mut data)?;
    let split = if flags & FLAG_SPLIT != 0 {
        let at = usize::from(take_u16(&mut data)?);
        let base = i64::from(take_u16(&mut data)?);
        Some((at, base))
    } else {
        None
    };
    Some(Input {
        hints,
        strict,
        index,
        time_index,
        split,
        log: data,
    })
}

/// A length-prefixed file's bytes if `present`; `None` if the input ends
/// first.
fn file_if<'a>(present: bool, data: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    if !present {
        return Some(None);
    }
    let len = take_u16(data)?;
    take(data, usize::from(len)).map(Some)
}

fn segment_file(dir: &Path, base: i64, suffix: &str) -> std::path::PathBuf {
    dir.join(format!("{base:020}.{suffix}"))
}

/// Writes the input's files into `dir`, laid out as a partition directory.
fn lay_out(dir: &Path, input: &Input<'_>) {
    let write = |path: std::path::PathBuf, bytes: &[u8]| {
        std::fs::write(&path, bytes).expect("the fuzz directory is writable");
    };
    let (first, second) = match input.split {
        Some((at, base)) if at <= input.log.len() => {
            let (first, second) = input.log.split_at(at);
            (first, Some((base, second)))
        }
        _ => (input.log, None),
    };
    write(segment_file(dir, 0, "log"), first);
    if let Some(index) = input.index {
        write(segment_file(dir, 0, "index"), index);
    }
    if let Some(time_index) = input.time_index {
        write(segment_file(dir, 0, "timeindex"), time_index);
    }
    if let Some((base, second)) = second {
        write(segment_file(dir, base, "log"), second);
    }
}

/// Every batch the log hands out from its start to its end, as consumers
/// read it; checks each read's framing (and, if `strict`, each batch's
/// CRC) and the offset order. Returns (base offset, batch bytes).
fn read_all(log: &Log, strict: bool) -> Vec<(i64, Vec<u8>)> {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    assert!(start <= end);
    let mut out: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut next = start;
    for _ in 0..READS_MAX {
        if next >= end {
            break;
        }
        let read = log
            .read(next, 4096, end, true)
            .expect("a read inside [log start, log end] succeeds");
        if read.bytes.is_empty() {
            break;
        }
        let mut batches = Batches::new(&read.bytes);
        let mut last = None;
        for batch in batches.by_ref() {
            if strict {
                assert!(batch.verify_crc().is_ok(), "recovery kept a bad batch");
                assert!(batch.last_offset() >= next.value());
                assert!(batch.last_offset() < end.value());
                if let Some((previous_base, previous)) = out.last() {
                    let previous =
                        rill_record::BatchView::new(previous).expect("kept batches frame");
                    assert!(
                        batch.base_offset() >= previous.next_offset(),
                        "batch at {} follows one at {previous_base} ending at {}",
                        batch.base_offset(),
                        previous.next_offset()
                    );
                }
                out.push((batch.base_offset(), batch.as_bytes().to_vec()));
            }
            last = Some(batch.next_offset());
        }
        if strict {
            assert_eq!(
                batches.end(),
                Some(&BatchesEnd::Complete),
                "reads end on a batch boundary"
            );
        }
        match last {
            Some(last) if last > next.value() => next = Offset(last),
            _ => break, // a trusted segment's garbage: nothing more to walk
        }
    }
    out
}

fn open(dir: &Path, hints: RecoveryHints) -> (Log, rill_storage::RecoveryReport) {
    Log::open(dir, config(), hints, flusher(), Arc::new(RealDisk), 0)
        .expect("opening a directory of any bytes succeeds")
}

fn check(input: &Input<'_>) {
    // tmpfs when there is one: the syncs of every open cost nothing there.
    let parent = Path::new("/dev/shm");
    let root = if parent.is_dir() {
        tempfile::tempdir_in(parent)
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary directory");
    let dir = root.path().join("topic-0");
    std::fs::create_dir(&dir).expect("the partition directory");
    lay_out(&dir, input);

    let (log, _) = open(&dir, input.hints);
    let end = log.log_end_offset();
    let batches = read_all(&log, input.strict);
    let _ = log.offset_for_timestamp(0, end);
    let _ = log.offset_for_timestamp(i64::MAX, end);
    let _ = log.max_timestamp_record(end);

    if input.strict {
        // A crash now: recovering what recovery left cuts nothing more.
        let start = log.log_start_offset();
        drop(log);
        let (log, report) = open(&dir, RecoveryHints::unknown());
        assert_eq!(report.dropped_bytes, 0, "a second recovery cut more");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, end));
        assert_eq!(read_all(&log, true), batches);
        append_and_reopen(&dir, log, true);
    } else {
        // After a clean shutdown the files are trusted unread: damage the
        // input put in the active segment stays, and may hide what is
        // appended after it from reads (as in Kafka). An unclean open
        // scans the active segment, so the append is found.
        append_and_reopen(&dir, log, !input.hints.clean_shutdown);
    }
}

/// The recovered log takes an append at its end, which a clean reopen
/// keeps (and, if `readable`, reads back).
fn append_and_reopen(dir: &Path, log: Log, readable: bool) {
    let end = log.log_end_offset();
    let batch = BatchBuilder::new(0)
        .with_records(&[NewRecord::value(b"after recovery")])
        .finish().unwrap();
    let info = log
        .append(&batch, 0, 0)
        .expect("a recovered log takes appends")
        .wait()
        .expect("the append is acknowledged");
    assert_eq!(info.base_offset, end);
    let start = log.log_start_offset();
    let closed_end = log.close().expect("the log closes");
    assert_eq!(closed_end, end.plus(1));
    drop(log);
    let hints = RecoveryHints {
        clean_shutdown: true,
        recovery_point: closed_end,
        log_start_offset: start,
    };
    let (log, _) = open(dir, hints);
    assert_eq!(log.log_end_offset(), closed_end);
    if !readable {
        let _ = log.read(end, 1 << 20, closed_end, true);
        return;
    }
    let read = log
        .read(end, 1 << 20, closed_end, true)
        .expect("the appended batch reads back");
    let appended: Vec<_> = Batches::new(&read.bytes).collect();
    assert!(appended.iter().any(|b| b.base_offset() == end.value()));
}

fuzz_target!(|data: &[u8]| {
    if let Some(input) = parse(data) {
        check(&input);
    }
});
