//! Helpers shared by the storage integration tests.
#![allow(dead_code)] // each test file uses its own subset
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)] // test support: a failure here is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rill_record::{BatchBuilder, Batches, Compression, NewRecord, Records, records_data};
use rill_storage::testing::FaultyDisk;
use rill_storage::{
    AppendInfo, FlushPolicy, Flusher, Log, LogConfig, Offset, RecoveryHints, RecoveryReport,
};

/// Appends `batch` (epoch 0, clock 0) and waits until it is acknowledged.
pub fn append(log: &Log, batch: &[u8]) -> AppendInfo {
    log.append(batch, 0, 0).unwrap().wait().unwrap()
}

/// A producer's batch of `values`, every record at `timestamp`.
pub fn batch(values: &[&[u8]], timestamp: i64) -> Vec<u8> {
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .map(|v| NewRecord {
            timestamp,
            key: None,
            value: Some(v),
            headers: &[],
        })
        .collect();
    BatchBuilder::new(timestamp)
        .with_records(&records)
        .finish()
        .unwrap()
}

/// A batch of `count` records whose values are `prefix-0`, `prefix-1`, ...
pub fn numbered_batch(prefix: &str, count: usize, timestamp: i64) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("{prefix}-{i}").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    batch(&refs, timestamp)
}

/// Small segments and a dense index, so tests cross many boundaries.
pub fn small_config(flush: FlushPolicy) -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_index_bytes: 4096,
        index_interval_bytes: 256,
        retention_ms: -1,
        flush,
        ..LogConfig::default()
    }
}

/// A log directory with its flusher and a disk that can be made to fail.
pub struct Fixture {
    pub root: tempfile::TempDir,
    pub flusher: Flusher,
    pub disk: Arc<FaultyDisk>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            root: tempfile::tempdir().unwrap(),
            flusher: Flusher::start(2).unwrap(),
            disk: Arc::new(FaultyDisk::default()),
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.root.path().join("topic-0")
    }

    pub fn create(&self, config: LogConfig) -> Log {
        Log::create(
            &self.dir(),
            config,
            Offset(0),
            &self.flusher,
            self.disk.clone(),
            0,
        )
        .unwrap()
    }

    pub fn open(&self, config: LogConfig, hints: RecoveryHints) -> (Log, RecoveryReport) {
        Log::open(
            &self.dir(),
            config,
            hints,
            &self.flusher,
            self.disk.clone(),
            0,
        )
        .unwrap()
    }

    /// Closes cleanly and opens again, trusting the files.
    pub fn reopen_clean(&self, log: Log) -> (Log, RecoveryReport) {
        let config = log.config();
        let log_start_offset = log.log_start_offset();
        let end = log.close().unwrap();
        self.open(
            config,
            RecoveryHints {
                clean_shutdown: true,
                recovery_point: end,
                log_start_offset,
            },
        )
    }

    /// Drops the log as a crash would and opens it again, validating from
    /// `recovery_point`.
    pub fn reopen_crashed(&self, log: Log, recovery_point: Offset) -> (Log, RecoveryReport) {
        let config = log.config();
        let log_start_offset = log.log_start_offset();
        drop(log);
        self.open(
            config,
            RecoveryHints {
                clean_shutdown: false,
                recovery_point,
                log_start_offset,
            },
        )
    }

    /// The active (last) segment's .log file.
    pub fn last_segment_file(&self) -> PathBuf {
        segment_files(&self.dir(), "log").pop().unwrap()
    }
}

/// Segment files with `suffix` in `dir`, oldest first.
pub fn segment_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == suffix))
        .collect();
    files.sort();
    files
}

/// (offset, value, timestamp) of every record in `bytes`, which must hold
/// whole batches.
pub fn records_in(bytes: &[u8]) -> Vec<(Offset, Vec<u8>, i64)> {
    let mut out = Vec::new();
    let mut batches = Batches::new(bytes);
    for batch in batches.by_ref() {
        batch.verify_crc().unwrap();
        let data = records_data(&batch, 1 << 30).unwrap();
        for record in Records::new(&data, batch.records_count()) {
            let record = record.unwrap();
            out.push((
                Offset(batch.base_offset() + i64::from(record.offset_delta)),
                record.value.unwrap_or_default().to_vec(),
                batch.record_timestamp(record.timestamp_delta),
            ));
        }
    }
    assert_eq!(
        batches.end(),
        Some(&rill_record::BatchesEnd::Complete),
        "reads end on a batch boundary"
    );
    out
}

/// Every record readable from `from` below `upper`, following reads of
/// `max_bytes` as a consumer would.
pub fn read_all_from(
    log: &Log,
    from: Offset,
    upper: Offset,
    max_bytes: usize,
) -> Vec<(Offset, Vec<u8>, i64)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let read = log.read(next, max_bytes, upper, true).unwrap();
        if read.bytes.is_empty() {
            // A gap (none here) or the end.
            return out;
        }
        let records = records_in(&read.bytes);
        let last = records.last().unwrap().0;
        out.extend(records.into_iter().filter(|(o, _, _)| *o >= next));
        next = last.plus(1);
    }
}

/// Every record in the log, from its start to its end.
pub fn read_all(log: &Log) -> Vec<(Offset, Vec<u8>, i64)> {
    read_all_from(log, log.log_start_offset(), log.log_end_offset(), 1 << 20)
}

/// Values only.
pub fn values(records: &[(Offset, Vec<u8>, i64)]) -> Vec<String> {
    records
        .iter()
        .map(|(_, v, _)| String::from_utf8(v.clone()).unwrap())
        .collect()
}

/// A compressed batch of `values` at `timestamp`, as a producer would send it.
pub fn compressed_batch(compression: Compression, values: &[&[u8]], timestamps: &[i64]) -> Vec<u8> {
    use std::io::Write;
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .zip(timestamps)
        .map(|(v, t)| NewRecord {
            timestamp: *t,
            key: None,
            value: Some(v),
            headers: &[],
        })
        .collect();
    let plain = BatchBuilder::new(timestamps[0])
        .with_records(&records)
        .finish()
        .unwrap();
    let records_bytes = &plain[rill_record::layout::RECORDS..];
    let compressed = match compression {
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(records_bytes).unwrap();
            enc.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(records_bytes, 1).unwrap(),
        other => panic!("test helper does not compress {other:?}"),
    };
    let mut out = plain[..rill_record::layout::RECORDS].to_vec();
    out.extend(compressed);
    let batch_length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = i16::from(compression.code());
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}
