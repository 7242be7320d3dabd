//! Dead letters (KIP-1191): the records a share group gave up on — rejected,
//! or out of deliveries — on their way to the group's dead-letter topic.
//!
//! Such a record is *archiving* until its copy is written, then archived.
//! The write and the archiving happen together, whatever crashes between
//! them, because each share-partition writes its dead letters as an
//! idempotent producer of its own:
//!
//! 1. [`SharePartition::next_dead_letters`] takes the archiving records
//!    for the next write and gives them the producer's next sequences;
//!    the broker persists that (the sequences are part of the snapshot)
//!    before it writes.
//! 2. The broker writes them as one batch with those sequences, then
//!    [`SharePartition::dead_letters_written`] archives them.
//!
//! A crash after step 1 restores the same records with the same
//! sequences, and the write is repeated as it was: if the first one
//! landed, the dead-letter partition recognises the batch as a duplicate
//! of its producer's last one and does not write it again. Batches are
//! written one at a time, so at most one is ever in doubt.

use crate::partition::{ArchiveReason, Archived, DeliveryState, SharePartition};

/// An archiving record's reason, and its dead-letter sequence once its
/// write began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadLetterMark {
    pub reason: ArchiveReason,
    pub sequence: Option<i32>,
}

impl DeadLetterMark {
    /// The mark of the record `step` offsets after this one in a run: the
    /// same reason, the sequence `step` further.
    pub fn at(self, step: i64) -> DeadLetterMark {
        DeadLetterMark {
            sequence: self.sequence.map(|s| {
                let step = i32::try_from(step.rem_euclid(1 << 31)).unwrap_or(0);
                advance(s, step)
            }),
            ..self
        }
    }
}

/// The producer a share-partition writes its dead letters as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadLetterProducer {
    pub producer_id: i64,
    /// The sequence of the next dead letter.
    pub next_sequence: i32,
}

/// One write to the dead-letter topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterBatch {
    pub producer_id: i64,
    pub base_sequence: i32,
    /// The records, in sequence order.
    pub records: Vec<Archived>,
    /// The sequences were given now: persist them before writing.
    pub newly_sequenced: bool,
}

impl SharePartition {
    /// The producer this share-partition writes dead letters as, if any.
    pub fn dead_letter_producer(&self) -> Option<DeadLetterProducer> {
        self.dead_letter_producer
    }

    /// Makes `producer_id` the dead-letter producer, unless there is one.
    pub fn set_dead_letter_producer(&mut self, producer_id: i64) {
        self.dead_letter_producer.get_or_insert(DeadLetterProducer {
            producer_id,
            next_sequence: 0,
        });
    }

    /// The restored producer (from the snapshot).
    pub fn restore_dead_letter_producer(&mut self, producer: Option<DeadLetterProducer>) {
        self.dead_letter_producer = producer;
    }

    /// Whether records wait for their dead-letter write.
    pub fn has_dead_letters(&self) -> bool {
        self.records
            .values()
            .any(|r| r.state == DeliveryState::Archiving)
    }

    /// The archiving records not yet in a write, in offset order, at most
    /// `max`.
    pub fn unsequenced_dead_letters(&self, max: usize) -> Vec<Archived> {
        self.records
            .iter()
            .filter(|(_, r)| r.state == DeliveryState::Archiving)
            .filter_map(|(offset, r)| {
                let mark = r.dead_letter?;
                mark.sequence.is_none().then_some(Archived {
                    offset: *offset,
                    delivery_count: r.delivery_count,
                    reason: mark.reason,
                })
            })
            .take(max)
            .collect()
    }

    /// The next write: the records whose write began already (repeat it
    /// exactly), else up to `max` archiving records given the producer's
    /// next sequences. `None` when nothing waits, or no producer is set.
    pub fn next_dead_letters(&mut self, max: usize) -> Option<DeadLetterBatch> {
        let producer = self.dead_letter_producer?;
        let mut begun: Vec<(i32, Archived)> = self
            .records
            .iter()
            .filter(|(_, r)| r.state == DeliveryState::Archiving)
            .filter_map(|(offset, r)| {
                let mark = r.dead_letter?;
                Some((
                    mark.sequence?,
                    Archived {
                        offset: *offset,
                        delivery_count: r.delivery_count,
                        reason: mark.reason,
                    },
                ))
            })
            .collect();
        if !begun.is_empty() {
            // Sequences wrap from i32::MAX to 0: order them from the one
            // the others follow.
            begun.sort_by_key(|(s, _)| *s);
            let wraps = begun.first().map(|(s, _)| *s) == Some(0)
                && begun.last().map(|(s, _)| *s) == Some(i32::MAX);
            if wraps && let Some(split) = begun.windows(2).position(|w| w[1].0 != w[0].0 + 1) {
                begun.rotate_left(split + 1);
            }
            return Some(DeadLetterBatch {
                producer_id: producer.producer_id,
                base_sequence: begun[0].0,
                records: begun.into_iter().map(|(_, a)| a).collect(),
                newly_sequenced: false,
            });
        }
        let records = self.unsequenced_dead_letters(max);
        if records.is_empty() {
            return None;
        }
        let base_sequence = producer.next_sequence;
        let mut sequence = base_sequence;
        for archived in &records {
            if let Some(mark) = self
                .records
                .get_mut(&archived.offset)
                .and_then(|r| r.dead_letter.as_mut())
            {
                mark.sequence = Some(sequence);
            }
            sequence = advance(sequence, 1);
        }
        self.dead_letter_producer = Some(DeadLetterProducer {
            next_sequence: sequence,
            ..producer
        });
        Some(DeadLetterBatch {
            producer_id: producer.producer_id,
            base_sequence,
            records,
            newly_sequenced: true,
        })
    }

    /// `batch` is in the dead-letter topic: its records are archived.
    pub fn dead_letters_written(&mut self, batch: &DeadLetterBatch) {
        let mut sequence = batch.base_sequence;
        for archived in &batch.records {
            if let Some(record) = self.records.get_mut(&archived.offset)
                && record.state == DeliveryState::Archiving
                && record.dead_letter.and_then(|m| m.sequence) == Some(sequence)
            {
                record.state = DeliveryState::Archived;
                record.dead_letter = None;
            }
            sequence = advance(sequence, 1);
        }
        self.advance_start();
    }

    /// The group no longer has a usable dead-letter topic: every archiving
    /// record is archived without a copy.
    pub fn drop_dead_letters(&mut self) {
        for record in self.records.values_mut() {
            if record.state == DeliveryState::Archiving {
                record.state = DeliveryState::Archived;
                record.dead_letter = None;
            }
        }
        self.advance_start();
    }
}

/// `sequence` moved on by `step`, wrapping from i32::MAX to 0 as producer
/// sequences do.
fn advance(sequence: i32, step: i32) -> i32 {
    let next = i64::from(sequence) + i64::from(step);
    i32::try_from(next % (1i64 << 31)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::{AckBatch, BatchSpan, ShareLimits, StateBatch};

    const L: ShareLimits = ShareLimits {
        record_lock_duration_ms: 1_000,
        delivery_count_limit: 2,
        record_locks_max: 100,
        redelivery_backoff_ms: 0,
        redelivery_backoff_max_ms: 0,
        dead_letter: true,
    };

    fn read(first: i64, last: i64) -> [BatchSpan; 1] {
        [BatchSpan {
            base_offset: first,
            last_offset: last,
            skipped: false,
        }]
    }

    fn ack(first: i64, last: i64, code: i8) -> AckBatch {
        AckBatch {
            first_offset: first,
            last_offset: last,
            types: vec![code],
        }
    }

    /// Ten records: 0..=4 accepted, 5..=6 rejected, 7..=9 acquired and
    /// released until their limit.
    fn with_dead_letters() -> SharePartition {
        let mut p = SharePartition::new(0);
        p.acquire("a", &read(0, 9), 10, (&L, 0));
        p.acknowledge("a", &[ack(0, 4, 1), ack(5, 6, 3), ack(7, 9, 2)], (&L, 0))
            .unwrap();
        p.acquire("a", &read(7, 9), 10, (&L, 0));
        p.release_member("a", &L, 0);
        p
    }

    #[test]
    fn records_given_up_on_wait_for_their_write_and_hold_the_start() {
        let mut p = with_dead_letters();
        assert_eq!(p.start_offset(), 5);
        assert_eq!(p.summary().archiving, 5);
        // Never delivered again.
        assert_eq!(p.acquire("b", &read(5, 9), 10, (&L, 0)), []);
        // No producer yet: nothing to write.
        assert_eq!(p.next_dead_letters(10), None);
        p.set_dead_letter_producer(77);
        let batch = p.next_dead_letters(3).unwrap();
        assert_eq!((batch.producer_id, batch.base_sequence), (77, 0));
        assert!(batch.newly_sequenced);
        let offsets: Vec<i64> = batch.records.iter().map(|a| a.offset).collect();
        assert_eq!(offsets, [5, 6, 7]);
        assert_eq!(batch.records[0].reason, ArchiveReason::Rejected);
        assert_eq!(batch.records[2].reason, ArchiveReason::DeliveryLimit);
        assert_eq!(batch.records[2].delivery_count, 2);
        // Until written, the same batch comes back.
        let again = p.next_dead_letters(3).unwrap();
        assert_eq!(again.records, batch.records);
        assert!(!again.newly_sequenced);
        p.dead_letters_written(&batch);
        assert_eq!(p.start_offset(), 8);
        let rest = p.next_dead_letters(10).unwrap();
        assert_eq!(rest.base_sequence, 3);
        assert_eq!(rest.records.len(), 2);
        p.dead_letters_written(&rest);
        assert_eq!(p.start_offset(), 10);
        assert!(!p.has_dead_letters());
    }

    #[test]
    fn a_restored_partition_repeats_the_write_in_doubt_exactly() {
        let mut p = with_dead_letters();
        p.set_dead_letter_producer(77);
        let batch = p.next_dead_letters(3).unwrap();
        // The broker dies after persisting the sequences, before knowing
        // whether the write landed.
        let persisted: Vec<StateBatch> = p.state_batches();
        let mut restored = SharePartition::restore(p.start_offset(), &persisted, 100);
        restored.restore_dead_letter_producer(p.dead_letter_producer());
        let repeated = restored.next_dead_letters(10).unwrap();
        assert_eq!(repeated.base_sequence, batch.base_sequence);
        assert_eq!(repeated.records, batch.records);
        assert!(!repeated.newly_sequenced);
        restored.dead_letters_written(&repeated);
        // The records not in that write come next, with new sequences.
        let next = restored.next_dead_letters(10).unwrap();
        assert_eq!(next.base_sequence, 3);
        assert_eq!(next.records.len(), 2);
    }

    #[test]
    fn sequences_wrap_as_a_producers_do() {
        let mut p = with_dead_letters();
        p.restore_dead_letter_producer(Some(DeadLetterProducer {
            producer_id: 5,
            next_sequence: i32::MAX - 1,
        }));
        let batch = p.next_dead_letters(4).unwrap();
        assert_eq!(batch.base_sequence, i32::MAX - 1);
        let persisted = p.state_batches();
        let mut restored = SharePartition::restore(p.start_offset(), &persisted, 100);
        restored.restore_dead_letter_producer(p.dead_letter_producer());
        let repeated = restored.next_dead_letters(10).unwrap();
        assert_eq!(repeated.base_sequence, i32::MAX - 1);
        assert_eq!(repeated.records, batch.records);
        assert_eq!(p.dead_letter_producer().unwrap().next_sequence, 2);
    }

    #[test]
    fn without_a_usable_topic_records_are_archived_at_once() {
        let mut p = with_dead_letters();
        p.drop_dead_letters();
        assert_eq!(p.start_offset(), 10);
        let mut plain = SharePartition::new(0);
        let limits = ShareLimits {
            dead_letter: false,
            ..L
        };
        plain.acquire("a", &read(0, 0), 1, (&limits, 0));
        plain
            .acknowledge("a", &[ack(0, 0, 3)], (&limits, 0))
            .unwrap();
        assert_eq!(plain.start_offset(), 1);
    }
}
