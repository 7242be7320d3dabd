//! The clean point of a compacted log — its first dirty offset, below
//! which every record has been compacted — kept in the partition's own
//! directory as `cleaner-offset-checkpoint`. Kafka keeps one such file per
//! log directory with a line per partition; keeping it beside the segments
//! lets a log own it without a manager, and it moves with the partition.
//!
//! Format (Kafka's checkpoint text format with a single, unnamed entry):
//! a version line `0`, a count line `1`, then the offset. Written
//! atomically (durable.rs): `cleaner-offset-checkpoint.tmp`, fdatasync,
//! rename, fsync the directory.

use std::fs::File;
use std::path::Path;

use crate::Offset;
use crate::disk::Disk;
use crate::durable::write_atomically_on;
use crate::error::IoFailure;

/// The file's name in the partition directory.
pub(crate) const CLEAN_POINT_FILE: &str = "cleaner-offset-checkpoint";
/// Longest file accepted: the three lines of digits, with room to spare.
const CLEAN_POINT_FILE_BYTES_MAX: u64 = 128;

/// The checkpointed clean point, or `None` when there is none (never
/// compacted) or the file does not read back as one (then the whole log is
/// treated as dirty, which costs work but loses nothing).
pub(crate) fn read_clean_point(dir: &Path) -> Result<Option<Offset>, IoFailure> {
    let path = dir.join(CLEAN_POINT_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IoFailure::new("open clean point", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| IoFailure::new("stat clean point", &path, e))?
        .len();
    if len > CLEAN_POINT_FILE_BYTES_MAX {
        tracing::warn!(path = %path.display(), len, "ignoring an oversized clean point file");
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).map_err(|e| IoFailure::new("read clean point", &path, e))?;
    let mut lines = text.lines();
    let parsed = match (lines.next(), lines.next(), lines.next(), lines.next()) {
        (Some("0"), Some("1"), Some(offset), None) => {
            offset.trim().parse::<i64>().ok().filter(|o| *o >= 0)
        }
        _ => None,
    };
    if parsed.is_none() {
        tracing::warn!(path = %path.display(), "ignoring a malformed clean point file");
    }
    Ok(parsed.map(Offset))
}

/// Replaces the checkpoint with `offset`, durably.
pub(crate) fn write_clean_point(
    disk: &dyn Disk,
    dir: &Path,
    offset: Offset,
) -> Result<(), IoFailure> {
    let text = format!("0\n1\n{}\n", offset.value());
    write_atomically_on(disk, &dir.join(CLEAN_POINT_FILE), text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_clean_point(dir.path()).unwrap(), None);
        write_clean_point(&crate::RealDisk, dir.path(), Offset(1234)).unwrap();
        assert_eq!(read_clean_point(dir.path()).unwrap(), Some(Offset(1234)));
        std::fs::write(dir.path().join(CLEAN_POINT_FILE), "0\n1\nx\n").unwrap();
        assert_eq!(read_clean_point(dir.path()).unwrap(), None);
    }
}
