//! How many of a share-partition's in-flight records are in each state,
//! and how often they were delivered: what `rill group describe` shows.
//! Rill's brokers carry it in a tagged field of DescribeShareGroupOffsets
//! (tag 10000, which Kafka's clients skip): five i64 counts (available,
//! acquired, acknowledged, archiving, archived), then (u16 delivery count,
//! i64 records) pairs to the end.

use std::collections::BTreeMap;

/// The tag of the summary in a DescribeShareGroupOffsets partition.
pub const SUMMARY_TAG: i32 = 10_000;

/// See the module doc.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub available: u64,
    pub acquired: u64,
    pub acknowledged: u64,
    /// Waiting for their write to the dead-letter topic.
    pub archiving: u64,
    pub archived: u64,
    /// In-flight records (any state) by how often they were delivered.
    pub delivery_counts: BTreeMap<u16, u64>,
}

impl Summary {
    /// The tagged field's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + 10 * self.delivery_counts.len());
        for count in [
            self.available,
            self.acquired,
            self.acknowledged,
            self.archiving,
            self.archived,
        ] {
            out.extend_from_slice(&count.to_be_bytes());
        }
        for (deliveries, records) in &self.delivery_counts {
            out.extend_from_slice(&deliveries.to_be_bytes());
            out.extend_from_slice(&records.to_be_bytes());
        }
        out
    }

    /// A summary from the tagged field's bytes; `None` if they are not one.
    pub fn decode(bytes: &[u8]) -> Option<Summary> {
        if bytes.len() < 40 || (bytes.len() - 40) % 10 != 0 {
            return None;
        }
        let (counts, pairs) = bytes.split_at(40);
        let at = |i: usize| {
            counts
                .get(i * 8..i * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
        };
        let mut summary = Summary {
            available: at(0)?,
            acquired: at(1)?,
            acknowledged: at(2)?,
            archiving: at(3)?,
            archived: at(4)?,
            delivery_counts: BTreeMap::new(),
        };
        for pair in pairs.chunks_exact(10) {
            let (deliveries, records) = pair.split_at(2);
            summary.delivery_counts.insert(
                u16::from_be_bytes(deliveries.try_into().ok()?),
                u64::from_be_bytes(records.try_into().ok()?),
            );
        }
        Some(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_reads_back_as_written_and_junk_is_refused() {
        let summary = Summary {
            available: 3,
            acquired: 2,
            acknowledged: 1,
            archiving: 0,
            archived: 7,
            delivery_counts: BTreeMap::from([(0, 1), (1, 4), (5, 8)]),
        };
        let bytes = summary.encode();
        assert_eq!(Summary::decode(&bytes), Some(summary));
        for cut in 0..bytes.len() {
            let whole = cut >= 40 && (cut - 40) % 10 == 0;
            if !whole {
                assert_eq!(Summary::decode(&bytes[..cut]), None, "cut at {cut}");
            }
        }
    }
}
