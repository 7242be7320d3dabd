//! Checkpoint files in Kafka's text format, written atomically.
//!
//! ```text
//! 0              version
//! 2              number of entries
//! orders 0 1042  one entry per line, fields separated by spaces
//! orders 1 977
//! ```
//!
//! A write is rill-storage's atomic replacement
//! ([`rill_storage::durable::write_atomically_on`]): a reader sees the old
//! file or the new one, whole, and after a crash the new one if the write
//! returned. Every call goes through a [`Disk`], so tests can fail it or
//! crash it.

use std::path::{Path, PathBuf};

use rill_storage::durable::{SYNC_DIRECTORY, SYNC_FILE, write_atomically_on};
use rill_storage::{Disk, IoFailure};

/// The only checkpoint version Kafka (and Rill) writes.
const VERSION: &str = "0";
/// A bound on entries read from one file: far more partitions than one
/// broker holds, small enough to refuse a corrupt count before allocating.
const ENTRIES_MAX: usize = 10_000_000;

/// Why a checkpoint file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint {path} is malformed at line {line}: expected {expected}, found {found:?}")]
    Malformed {
        path: PathBuf,
        line: usize,
        expected: &'static str,
        found: String,
    },
    /// A value too large for its field in the file's format.
    #[error("checkpoint {path} cannot be written: {what} is {found}, expected at most {max}")]
    Unencodable {
        path: PathBuf,
        what: &'static str,
        found: i64,
        max: i64,
    },
}

/// The entry lines of the checkpoint at `path`, each split into fields;
/// `None` if the file does not exist.
pub(crate) fn read(
    path: &Path,
    fields: usize,
) -> Result<Option<Vec<Vec<String>>>, CheckpointError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CheckpointError::Io {
                operation: "read checkpoint",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let malformed = |line: usize, expected: &'static str, found: &str| CheckpointError::Malformed {
        path: path.to_path_buf(),
        line,
        expected,
        found: found.chars().take(80).collect(),
    };
    let mut lines = text.lines();
    let version = lines.next().unwrap_or_default();
    if version.trim() != VERSION {
        return Err(malformed(1, "version 0", version));
    }
    let count_line = lines.next().unwrap_or_default();
    let count: usize = count_line
        .trim()
        .parse()
        .ok()
        .filter(|&n| n <= ENTRIES_MAX)
        .ok_or_else(|| malformed(2, "an entry count", count_line))?;
    let mut entries = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let line = lines
            .next()
            .ok_or_else(|| malformed(3 + i, "an entry", ""))?;
        let parts: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if parts.len() != fields {
            return Err(malformed(
                3 + i,
                "an entry with the right number of fields",
                line,
            ));
        }
        entries.push(parts);
    }
    if let Some(extra) = lines.find(|l| !l.trim().is_empty()) {
        return Err(malformed(3 + count, "the end of the file", extra));
    }
    Ok(Some(entries))
}

/// Replaces the checkpoint at `path` with `entries`, atomically and durably.
pub(crate) fn write(
    disk: &dyn Disk,
    path: &Path,
    entries: &[String],
) -> Result<(), CheckpointError> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for entry in entries {
        text.push_str(entry);
        text.push('\n');
    }
    write_atomically_on(disk, path, text.as_bytes())?;
    Ok(())
}

impl From<IoFailure> for CheckpointError {
    fn from(failure: IoFailure) -> CheckpointError {
        CheckpointError::Io {
            operation: failure.operation,
            path: failure.path,
            source: failure.source,
        }
    }
}

impl CheckpointError {
    /// Whether this is a failed sync (of the file or its directory), not
    /// a failure to create or write it: after a failed sync the page
    /// cache no longer says what is on disk.
    pub fn is_failed_sync(&self) -> bool {
        matches!(self, CheckpointError::Io { operation, .. } if *operation == SYNC_FILE || *operation == SYNC_DIRECTORY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_storage::RealDisk;

    #[test]
    fn round_trips_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recovery-point-offset-checkpoint");
        assert!(read(&path, 3).unwrap().is_none());
        write(
            &RealDisk,
            &path,
            &["orders 0 1042".into(), "orders 1 977".into()],
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "0\n2\norders 0 1042\norders 1 977\n"
        );
        let entries = read(&path, 3).unwrap().unwrap();
        assert_eq!(entries[1], ["orders", "1", "977"]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn malformed_files_are_errors_that_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        for (text, line) in [
            ("1\n0\n", 1),
            ("0\nmany\n", 2),
            ("0\n99999999999\n", 2),
            ("0\n2\na 0 1\n", 4),
            ("0\n1\na 0\n", 3),
            ("0\n1\na 0 1\nb 0 2\n", 4),
        ] {
            std::fs::write(&path, text).unwrap();
            match read(&path, 3) {
                Err(CheckpointError::Malformed { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
