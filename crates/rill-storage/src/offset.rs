//! The offset newtype, so offsets are not mixed up with timestamps,
//! positions or counts.

use std::fmt;

/// The largest log end offset a log may reach: far beyond any real log,
/// and low enough that a segment named by any offset below it is read
/// back at open, and that offset arithmetic cannot overflow.
pub(crate) const LOG_END_OFFSET_MAX: i64 = i64::MAX / 2;

/// A Kafka offset: the position of a record in a partition's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub i64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    pub fn value(self) -> i64 {
        self.0
    }

    /// `self + delta`, saturating at the ends of i64 (as rill-record's
    /// batch offsets do). It never saturates in a log: offsets past
    /// [`LOG_END_OFFSET_MAX`] (i64::MAX / 2) are refused before they are
    /// assigned, and a delta is at most a batch's span.
    pub fn plus(self, delta: i64) -> Offset {
        Offset(self.0.saturating_add(delta))
    }

    /// How many offsets lie from `earlier` up to `self`.
    pub fn since(self, earlier: Offset) -> i64 {
        self.0 - earlier.0
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
