//! The key → latest offset map that compaction builds over the dirty part
//! of a log, bounded in bytes like Kafka's log.cleaner.dedupe.buffer.size.
//!
//! Kafka stores a 16-byte MD5 of each key, so two keys can collide and one
//! be wrongly dropped; this map stores the keys themselves, so it is exact
//! and costs the key's length plus a fixed overhead per entry.

use std::collections::HashMap;

use crate::Offset;

/// Bytes charged per entry on top of the key: the offset, the boxed key's
/// pointer and length, and the hash table's slot and control byte, rounded up.
pub(crate) const ENTRY_OVERHEAD_BYTES: usize = 48;

/// Latest offset of each key seen, within a byte budget.
///
/// Not thread-safe; owned by one compaction pass.
#[derive(Debug)]
pub(crate) struct OffsetMap {
    entries: HashMap<Box<[u8]>, Offset>,
    bytes: usize,
    bytes_max: usize,
}

impl OffsetMap {
    pub(crate) fn new(bytes_max: usize) -> OffsetMap {
        OffsetMap {
            entries: HashMap::new(),
            bytes: 0,
            bytes_max,
        }
    }

    /// Whether the keys of one more batch fit: `new_key_bytes` is the sum
    /// of the lengths of its keys (counted as if all were new).
    pub(crate) fn has_room_for(&self, keys: usize, new_key_bytes: usize) -> bool {
        let need = new_key_bytes.saturating_add(keys.saturating_mul(ENTRY_OVERHEAD_BYTES));
        self.bytes.saturating_add(need) <= self.bytes_max
    }

    /// Records that `key` was written at `offset`; offsets are put in
    /// increasing order, so the last put wins.
    pub(crate) fn put(&mut self, key: &[u8], offset: Offset) {
        if let Some(latest) = self.entries.get_mut(key) {
            debug_assert!(*latest <= offset, "offsets are put in log order");
            *latest = offset;
            return;
        }
        self.bytes += key.len() + ENTRY_OVERHEAD_BYTES;
        self.entries.insert(key.into(), offset);
    }

    /// The latest offset of `key`, if the map saw it.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Offset> {
        self.entries.get(key).copied()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_put_wins_and_the_budget_is_counted() {
        let mut map = OffsetMap::new(2 * (ENTRY_OVERHEAD_BYTES + 1));
        assert!(map.has_room_for(2, 2));
        map.put(b"a", Offset(1));
        map.put(b"a", Offset(5));
        assert_eq!(map.get(b"a"), Some(Offset(5)));
        assert_eq!(map.get(b"b"), None);
        assert!(map.has_room_for(1, 1));
        map.put(b"b", Offset(6));
        assert!(!map.has_room_for(1, 1));
        assert_eq!(map.len(), 2);
    }
}
