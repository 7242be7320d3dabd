//! Random sequences of append, read, truncate, retention, log-start moves,
//! flushes, clean reopens and crashes, run against the log and against a
//! simple in-memory model; after every step they must agree.
//!
//! A crash may tear away any bytes the log had not synced (the file is cut,
//! or garbage is written, somewhere after the flushed end): recovery must
//! keep everything below the flushed end and a prefix of the rest.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test code: a failed unwrap is a failed test

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

use common::*;
use proptest::prelude::*;
use rill_record::BatchView;
use rill_storage::{AppendError, FlushPolicy, Log, LogConfig, Offset, ReadError, RecoveryHints};

#[derive(Clone, Debug)]
enum Op {
    Append {
        records: usize,
        value_len: usize,
        timestamp: i64,
    },
    Read {
        at: u16,
        max_bytes: usize,
    },
    Truncate {
        at: u16,
    },
    AdvanceStart {
        at: u16,
    },
    RetainBytes {
        bytes: u16,
    },
    Flush,
    CloseReopen,
    /// index.interval.bytes changes (at run time, so for the entries of
    /// the active segment, and for every reopen after).
    SetIndexInterval {
        bytes: u32,
    },
    Crash {
        tear: Option<(u16, bool)>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..6, 0usize..150, 0i64..10_000)
            .prop_map(|(records, value_len, timestamp)| Op::Append { records, value_len, timestamp }),
        // Large batches take the pwrite path; some exceed small segments.
        1 => (1usize..6, 3_000usize..12_000, 0i64..10_000)
            .prop_map(|(records, value_len, timestamp)| Op::Append { records, value_len, timestamp }),
        4 => (any::<u16>(), 1usize..3000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => any::<u16>().prop_map(|at| Op::AdvanceStart { at }),
        1 => any::<u16>().prop_map(|bytes| Op::RetainBytes { bytes: bytes % 8192 }),
        1 => Just(Op::Flush),
        1 => Just(Op::CloseReopen),
        1 => prop_oneof![Just(0u32), Just(64), Just(512), Just(4096)]
            .prop_map(|bytes| Op::SetIndexInterval { bytes }),
        1 => proptest::option::of((any::<u16>(), any::<bool>())).prop_map(|tear| Op::Crash { tear }),
    ]
}

fn config() -> impl Strategy<Value = LogConfig> {
    (
        prop_oneof![Just(1024u32), Just(2048), Just(8192), Just(65_536)],
        prop_oneof![Just(0u32), Just(64), Just(512)],
        prop_oneof![Just(24u32), Just(96), Just(4096)],
        prop_oneof![3 => Just(FlushPolicy::None), 1 => Just(FlushPolicy::Fsync)],
    )
        .prop_map(
            |(segment_bytes, index_interval_bytes, segment_index_bytes, flush)| LogConfig {
                segment_bytes,
                index_interval_bytes,
                segment_index_bytes,
                retention_ms: -1,
                flush,
                ..LogConfig::default()
            },
        )
}

/// One batch as the model remembers it.
#[derive(Clone, Debug)]
struct ModelBatch {
    base: i64,
    values: Vec<Vec<u8>>,
    timestamp: i64,
    size: usize,
}

impl ModelBatch {
    fn last(&self) -> i64 {
        self.base + self.values.len() as i64 - 1
    }
}

#[derive(Debug, Default)]
struct Model {
    batches: Vec<ModelBatch>,
    log_start: i64,
    log_end: i64,
}

impl Model {
    /// Drops every batch holding an offset >= `offset`; the new end is the
    /// lower of `offset` and the first dropped batch's base.
    fn truncate(&mut self, offset: i64) {
        if let Some(i) = self.batches.iter().position(|b| b.last() >= offset) {
            self.log_end = offset.min(self.batches[i].base);
            self.batches.truncate(i);
        }
    }

    /// Empties the log, which starts again at `offset`.
    fn restart(&mut self, offset: i64) {
        self.batches.clear();
        self.log_start = offset;
        self.log_end = offset;
    }

    /// The records from the log start to the end: (offset, value, timestamp).
    fn records(&self) -> Vec<(Offset, Vec<u8>, i64)> {
        let mut out = Vec::new();
        for batch in &self.batches {
            for (i, value) in batch.values.iter().enumerate() {
                let offset = batch.base + i as i64;
                if offset >= self.log_start {
                    out.push((Offset(offset), value.clone(), batch.timestamp));
                }
            }
        }
        out
    }

    /// An offset in [log start, log end] chosen by `at`.
    fn pick(&self, at: u16) -> i64 {
        self.log_start + i64::from(at) % (self.log_end - self.log_start + 1)
    }
}

struct Harness {
    fx: Fixture,
    log: Option<Log>,
    model: Model,
    config: LogConfig,
    counter: u64,
}

impl Harness {
    fn log(&self) -> &Log {
        self.log.as_ref().unwrap()
    }

    fn check(&self) {
        let log = self.log();
        assert_eq!(log.log_end_offset(), Offset(self.model.log_end), "log end");
        assert_eq!(
            log.log_start_offset(),
            Offset(self.model.log_start),
            "log start"
        );
        assert!(log.flushed_end_offset() <= log.log_end_offset());
        let bases = log.segment_base_offsets();
        assert!(
            bases.windows(2).all(|w| w[0] < w[1]),
            "segment bases increase: {bases:?}"
        );
        assert!(bases[0] <= log.log_start_offset());
    }

    fn check_contents(&self) {
        assert_eq!(read_all(self.log()), self.model.records());
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Append {
                records,
                value_len,
                timestamp,
            } => self.append(records, value_len, timestamp),
            Op::Read { at, max_bytes } => self.read(at, max_bytes),
            Op::Truncate { at } => {
                let offset = self.model.pick(at);
                let cuts = offset < self.model.log_end;
                let end = self.log().truncate_to(Offset(offset)).unwrap();
                if !cuts {
                    // Nothing at or past the log end: nothing to do.
                } else if offset <= self.model.log_start {
                    self.model.restart(offset);
                } else {
                    self.model.truncate(offset);
                    if self.model.log_end <= self.model.log_start {
                        self.model.restart(self.model.log_start);
                    }
                }
                assert_eq!(end, Offset(self.model.log_end));
                if cuts {
                    assert_eq!(
                        self.log().flushed_end_offset(),
                        end,
                        "a truncation is durable"
                    );
                }
            }
            Op::AdvanceStart { at } => {
                let offset = self.model.pick(at);
                let start = self.log().advance_log_start(Offset(offset)).unwrap();
                self.model.log_start = self.model.log_start.max(offset);
                assert_eq!(start, Offset(self.model.log_start));
            }
            Op::RetainBytes { bytes } => {
                let log = self.log();
                let before = log.log_start_offset();
                log.set_config(LogConfig {
                    retention_bytes: i64::from(bytes),
                    ..self.config
                })
                .unwrap();
                let outcome = log.apply_retention(0, log.log_end_offset()).unwrap();
                log.set_config(self.config).unwrap();
                let start = log.log_start_offset().value();
                assert!(Offset(start) >= before);
                assert_eq!(outcome.log_start_offset, Offset(start));
                assert!(
                    Offset(start) == before
                        || start == self.model.log_end
                        || self.model.batches.iter().any(|b| b.base == start),
                    "retention moves the log start to a segment's first batch: {start}"
                );
                // Whole segments went; batches below the log start may
                // still sit in the first remaining one.
                let first_base = log.segment_base_offsets()[0].value();
                self.model.log_start = start;
                self.model.batches.retain(|b| b.base >= first_base);
            }
            Op::Flush => {
                assert_eq!(self.log().flush().unwrap(), Offset(self.model.log_end));
            }
            Op::CloseReopen => {
                let (log, report) = self.fx.reopen_clean(self.log.take().unwrap());
                assert_eq!(
                    report.scanned_segments, 0,
                    "a clean reopen reads no log data"
                );
                self.log = Some(log);
                self.check_contents();
            }
            Op::Crash { tear } => self.crash(tear),
            Op::SetIndexInterval { bytes } => {
                self.config.index_interval_bytes = bytes;
                self.log().set_config(self.config).unwrap();
            }
        }
        self.check();
    }

    fn append(&mut self, records: usize, value_len: usize, timestamp: i64) {
        self.counter += 1;
        let values: Vec<Vec<u8>> = (0..records)
            .map(|i| {
                let mut v = format!("{}-{i}:", self.counter).into_bytes();
                v.resize(v.len() + value_len, b'a' + (self.counter % 26) as u8);
                v
            })
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let bytes = batch(&refs, timestamp);
        if bytes.len() > self.config.segment_bytes as usize {
            let refused = self.log().append(&bytes, 1, 0);
            assert!(
                matches!(refused, Err(AppendError::BatchLargerThanSegment { .. })),
                "{refused:?}"
            );
            return;
        }
        let info = self.log().append(&bytes, 1, 0).unwrap().wait().unwrap();
        assert_eq!(info.base_offset, Offset(self.model.log_end));
        if self.config.flush == FlushPolicy::Fsync {
            assert!(
                self.log().flushed_end_offset() > info.last_offset,
                "fsync acknowledged before the sync"
            );
        }
        self.model.batches.push(ModelBatch {
            base: self.model.log_end,
            values,
            timestamp,
            size: bytes.len(),
        });
        self.model.log_end += records as i64;
    }

    fn read(&self, at: u16, max_bytes: usize) {
        let from = self.model.pick(at);
        let read = self
            .log()
            .read(Offset(from), max_bytes, Offset(self.model.log_end), true)
            .unwrap();
        if from == self.model.log_end {
            assert!(read.bytes.is_empty());
            return;
        }
        assert!(!read.bytes.is_empty(), "read at {from} found nothing");
        let first = BatchView::new(&read.bytes).unwrap();
        assert!(
            first.base_offset() <= from && from <= first.last_offset(),
            "starts at the batch holding {from}"
        );
        assert!(read.bytes.len() <= max_bytes.max(first.size()));
        let index = self
            .model
            .batches
            .iter()
            .position(|b| b.base == first.base_offset())
            .unwrap();
        let expected: Vec<_> = self.model.batches[index..]
            .iter()
            .flat_map(|b| {
                b.values
                    .iter()
                    .enumerate()
                    .map(move |(i, v)| (Offset(b.base + i as i64), v.clone(), b.timestamp))
            })
            .take(records_in(&read.bytes).len())
            .collect();
        assert_eq!(records_in(&read.bytes), expected);
        // Below the log start: a typed error.
        if self.model.log_start > 0 {
            assert!(matches!(
                self.log().read(
                    Offset(self.model.log_start - 1),
                    100,
                    Offset(self.model.log_end),
                    true
                ),
                Err(ReadError::OffsetOutOfRange { .. })
            ));
        }
    }

    /// Drops the log without closing it; with `tear`, then damages the
    /// last segment somewhere after the flushed end, as a power cut could.
    fn crash(&mut self, tear: Option<(u16, bool)>) {
        let log = self.log.take().unwrap();
        let flushed = log.flushed_end_offset().value();
        let last_base = log.segment_base_offsets().last().unwrap().value();
        drop(log);
        if let Some((at, garbage)) = tear {
            let in_last: Vec<&ModelBatch> = self
                .model
                .batches
                .iter()
                .filter(|b| b.base >= last_base)
                .collect();
            let durable_bytes: usize = in_last
                .iter()
                .filter(|b| b.last() < flushed)
                .map(|b| b.size)
                .sum();
            let all_bytes: usize = in_last.iter().map(|b| b.size).sum();
            let cut = durable_bytes + usize::from(at) % (all_bytes - durable_bytes + 1);
            let path = self.fx.last_segment_file();
            let mut file = OpenOptions::new().write(true).open(&path).unwrap();
            if garbage {
                file.seek(SeekFrom::Start(cut as u64)).unwrap();
                file.write_all(&[0x99; 40]).unwrap();
            } else {
                file.set_len(cut as u64).unwrap();
            }
        }
        let (log, report) = self.fx.open(
            self.config,
            RecoveryHints {
                clean_shutdown: false,
                recovery_point: Offset(flushed),
                log_start_offset: Offset(self.model.log_start),
            },
        );
        let end = log.log_end_offset().value();
        assert!(
            end >= flushed,
            "lost flushed data: end {end} < flushed {flushed}"
        );
        assert!(end <= self.model.log_end);
        assert_eq!(report.missing_below_recovery_point, None);
        self.model.truncate(end);
        self.model.log_end = end;
        self.log = Some(log);
        self.check_contents();
    }
}

fn run(config: LogConfig, ops: &[Op]) {
    let fx = Fixture::new();
    let log = fx.create(config);
    let mut harness = Harness {
        fx,
        log: Some(log),
        model: Model::default(),
        config,
        counter: 0,
    };
    for op in ops {
        harness.apply(op);
    }
    harness.check_contents();
}

fn append(records: usize) -> Op {
    Op::Append {
        records,
        value_len: 0,
        timestamp: 0,
    }
}

/// The configuration both regressions were found with.
fn dense_index_config() -> LogConfig {
    LogConfig {
        segment_bytes: 8192,
        segment_index_bytes: 96,
        index_interval_bytes: 0,
        retention_ms: -1,
        flush: FlushPolicy::None,
        ..LogConfig::default()
    }
}

#[test]
fn regression_retention_then_torn_crash() {
    run(
        dense_index_config(),
        &[
            append(1),
            append(4),
            Op::AdvanceStart { at: 17497 },
            append(1),
            Op::Flush,
            Op::RetainBytes { bytes: 1 },
            Op::Crash {
                tear: Some((0, false)),
            },
        ],
    );
}

#[test]
fn regression_crash_after_log_start_reaches_the_end() {
    run(
        dense_index_config(),
        &[
            append(2),
            Op::AdvanceStart { at: 8324 },
            Op::Truncate { at: 0 },
            append(1),
            Op::Flush,
            Op::Crash {
                tear: Some((0, false)),
            },
        ],
    );
}

proptest! {
    // PROPTEST_CASES raises the count for a soak run; CI keeps it short.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_log_agrees_with_a_simple_model(config in config(), ops in proptest::collection::vec(op(), 1..60)) {
        run(config, &ops);
    }
}
