//! One share-partition: the delivery state of the records of one topic
//! partition for one share group (KIP-932's SharePartition).
//!
//! The records between the share-partition start offset (SPSO) and end
//! offset (SPEO) are in flight: each is available, acquired by a member
//! (until its lock expires), acknowledged or archived. Below the start,
//! every record is done (acknowledged or archived); from the end on, no
//! record has been handed out yet. Acquiring walks the batches the leader
//! read from the log and takes the available records; acknowledging moves
//! acquired ones on; the start moves up past the done ones.
//!
//! Not thread-safe: the broker keeps each behind its own lock.

use std::collections::{BTreeMap, BTreeSet};

use crate::dead_letters::{DeadLetterMark, DeadLetterProducer};
use crate::error::AckError;
use crate::summary::Summary;

/// A record's delivery state, with the ids Kafka persists
/// (`RecordState`: AVAILABLE 0, ACQUIRED 1, ACKNOWLEDGED 2, ARCHIVING 3,
/// ARCHIVED 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryState {
    Available,
    Acquired,
    Acknowledged,
    /// Given up on, and waiting to be written to the group's dead-letter
    /// topic (KIP-1191): never delivered again, but the start does not
    /// pass it until it is written.
    Archiving,
    Archived,
}

impl DeliveryState {
    /// Kafka's id of the state.
    pub fn id(self) -> i8 {
        match self {
            DeliveryState::Available => 0,
            DeliveryState::Acquired => 1,
            DeliveryState::Acknowledged => 2,
            DeliveryState::Archiving => 3,
            DeliveryState::Archived => 4,
        }
    }

    /// The state of Kafka's id, as persisted: an acquired record comes
    /// back available (its lock died with its leader); `None` for an
    /// unknown id.
    pub fn from_persisted(id: i8) -> Option<DeliveryState> {
        match id {
            0 | 1 => Some(DeliveryState::Available),
            2 => Some(DeliveryState::Acknowledged),
            3 => Some(DeliveryState::Archiving),
            4 => Some(DeliveryState::Archived),
            _ => None,
        }
    }

    /// Whether the record will never be delivered again.
    pub fn is_done(self) -> bool {
        matches!(self, DeliveryState::Acknowledged | DeliveryState::Archived)
    }
}

/// How a consumer acknowledges a record (ShareFetch/ShareAcknowledge's
/// AcknowledgeTypes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckType {
    /// The offset holds no record (compacted away, a control record).
    Gap,
    /// Processed: never delivered again.
    Accept,
    /// Not processed: delivered again, to anyone.
    Release,
    /// Cannot be processed: never delivered again (dead-lettered).
    Reject,
}

impl AckType {
    /// The type with Kafka's code, or `None` for an unknown code.
    pub fn from_code(code: i8) -> Option<AckType> {
        match code {
            0 => Some(AckType::Gap),
            1 => Some(AckType::Accept),
            2 => Some(AckType::Release),
            3 => Some(AckType::Reject),
            _ => None,
        }
    }
}

/// The group's settings a share-partition follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareLimits {
    /// How long an acquired record stays with its member
    /// (`group.share.record.lock.duration.ms`).
    pub record_lock_duration_ms: u64,
    /// Deliveries after which a released record is archived instead
    /// (`group.share.delivery.count.limit`).
    pub delivery_count_limit: u16,
    /// The most records in flight, start to end
    /// (`group.share.partition.max.record.locks`).
    pub record_locks_max: u32,
    /// A released or expired record waits this long times 2^(deliveries
    /// − 1) before it is available again (Rill's
    /// `rill.share.redelivery.backoff.ms`; 0: at once, as Kafka does)...
    pub redelivery_backoff_ms: u64,
    /// ...but never longer than this (`rill.share.redelivery.backoff.max.ms`).
    pub redelivery_backoff_max_ms: u64,
    /// The group has a dead-letter topic: records given up on are
    /// archiving until written to it, not archived at once.
    pub dead_letter: bool,
}

impl Default for ShareLimits {
    /// Kafka's defaults.
    fn default() -> Self {
        ShareLimits {
            record_lock_duration_ms: 30_000,
            delivery_count_limit: 5,
            record_locks_max: 2_000,
            redelivery_backoff_ms: 0,
            redelivery_backoff_max_ms: 60_000,
            dead_letter: false,
        }
    }
}

impl ShareLimits {
    /// How long a record delivered `deliveries` times waits after its
    /// release before it is available again.
    pub fn redelivery_backoff_ms(&self, deliveries: u16) -> u64 {
        if self.redelivery_backoff_ms == 0 || deliveries == 0 {
            return 0;
        }
        let doublings = u32::from(deliveries - 1).min(32);
        self.redelivery_backoff_ms
            .saturating_mul(1u64 << doublings)
            .min(self.redelivery_backoff_max_ms)
    }
}

/// The offsets of one batch the leader read, as acquisition sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSpan {
    pub base_offset: i64,
    pub last_offset: i64,
    /// A batch never delivered: control records (transaction markers), or
    /// records of an aborted transaction under read_committed.
    pub skipped: bool,
}

/// Records handed to a member: a range of offsets delivered the same
/// number of times (ShareFetch's AcquiredRecords).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acquired {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: u16,
}

/// Why a record was archived without being accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArchiveReason {
    /// A member rejected it.
    Rejected,
    /// It was released or its lock expired after its last allowed delivery.
    DeliveryLimit,
}

/// A record archived without being accepted: what a dead-letter topic
/// receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Archived {
    pub offset: i64,
    pub delivery_count: u16,
    pub reason: ArchiveReason,
}

/// One acknowledgement batch: offsets `first_offset..=last_offset` and
/// their types, one for the whole range or one per offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub types: Vec<i8>,
}

/// A run of offsets in one state: the share-partition as Kafka persists it
/// (ShareSnapshot's StateBatches) and as describe shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub state: DeliveryState,
    pub delivery_count: u16,
    /// For archiving records: why, and the dead-letter sequence of the
    /// first offset if their write was begun (the next offsets have the
    /// next sequences).
    pub dead_letter: Option<DeadLetterMark>,
}

#[derive(Clone, Debug)]
pub(crate) struct InFlight {
    pub(crate) state: DeliveryState,
    pub(crate) delivery_count: u16,
    /// The member holding an acquired record.
    holder: Option<String>,
    lock_expires_ms: u64,
    /// When an available record may be acquired again (redelivery backoff).
    available_at_ms: u64,
    /// An archiving record's reason and dead-letter sequence.
    pub(crate) dead_letter: Option<DeadLetterMark>,
}

/// See the module doc.
#[derive(Clone, Debug)]
pub struct SharePartition {
    start_offset: i64,
    end_offset: i64,
    /// Every offset in `start_offset..end_offset`, no other.
    pub(crate) records: BTreeMap<i64, InFlight>,
    /// Who writes this share-partition's dead letters, and its next
    /// sequence.
    pub(crate) dead_letter_producer: Option<DeadLetterProducer>,
}

impl SharePartition {
    /// A share-partition whose first record to deliver is at `start_offset`
    /// (from `share.auto.offset.reset`, or the persisted state).
    pub fn new(start_offset: i64) -> SharePartition {
        SharePartition {
            start_offset,
            end_offset: start_offset,
            records: BTreeMap::new(),
            dead_letter_producer: None,
        }
    }

    /// A share-partition as persisted: its start and the state of the
    /// in-flight records (acquired ones come back available: their locks
    /// died with the broker that held them). At most `window_max` offsets
    /// from the start are restored, whatever the snapshot says: beyond
    /// them (a snapshot written under a larger window, or damaged) records
    /// count as not handed out yet, so they may be delivered again but are
    /// never lost.
    pub fn restore(start_offset: i64, batches: &[StateBatch], window_max: u32) -> SharePartition {
        let mut partition = SharePartition::new(start_offset);
        let window_end = start_offset.saturating_add(i64::from(window_max));
        for batch in batches {
            let first = batch.first_offset.max(partition.end_offset);
            let last = batch.last_offset.min(window_end.saturating_sub(1));
            if first > last {
                continue;
            }
            let state = match batch.state {
                DeliveryState::Acquired => DeliveryState::Available,
                state => state,
            };
            // Offsets between the runs written are available.
            while partition.end_offset < first {
                partition.push(DeliveryState::Available, 0);
            }
            while partition.end_offset <= last {
                let at = partition.end_offset;
                partition.push(state, batch.delivery_count);
                if state == DeliveryState::Archiving
                    && let Some(record) = partition.records.get_mut(&at)
                {
                    // An archiving record restored without its mark (from
                    // a peer that dropped it) is still written once.
                    let mark = batch.dead_letter.unwrap_or(DeadLetterMark {
                        reason: ArchiveReason::Rejected,
                        sequence: None,
                    });
                    record.dead_letter = Some(mark.at(at - batch.first_offset));
                }
            }
        }
        partition.advance_start();
        partition
    }

    /// The share-partition start offset: every record below it is done.
    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// The share-partition end offset: no record from it on was handed out.
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// Where the next log read for acquisition starts: the first record
    /// available again, else the end. `None` when nothing can be acquired
    /// (every in-flight slot taken and none available).
    pub fn next_fetch_offset(&self, limits: &ShareLimits, now_ms: u64) -> Option<i64> {
        let ready = self
            .records
            .iter()
            .find(|(_, r)| r.state == DeliveryState::Available && r.available_at_ms <= now_ms)
            .map(|(offset, _)| *offset);
        ready.or_else(|| (!self.is_full(limits)).then_some(self.end_offset))
    }

    /// Acquires, for `member`, up to `max_records` available records of
    /// the batches read from the log (in offset order), locking each for
    /// the group's lock duration. Offsets between batches (compacted away)
    /// and skipped batches are archived as they are passed.
    pub fn acquire(
        &mut self,
        member: &str,
        batches: &[BatchSpan],
        max_records: u32,
        (limits, now_ms): (&ShareLimits, u64),
    ) -> Vec<Acquired> {
        let mut acquired: Vec<Acquired> = Vec::new();
        let mut count = 0u32;
        'batches: for batch in batches {
            let mut offset = batch.base_offset.max(self.start_offset);
            while offset <= batch.last_offset {
                if count >= max_records {
                    break 'batches;
                }
                if offset >= self.end_offset {
                    // The offsets before this one hold no record (compacted
                    // away), and a skipped batch none to deliver.
                    if !self.skip_to(offset, limits) {
                        break 'batches;
                    }
                    if batch.skipped {
                        if !self.skip_to(batch.last_offset.saturating_add(1), limits) {
                            break 'batches;
                        }
                        continue 'batches;
                    }
                    if self.is_full(limits) {
                        break 'batches;
                    }
                    self.push(DeliveryState::Available, 0);
                }
                let at = offset;
                offset += 1;
                let Some(record) = self.records.get_mut(&at) else {
                    continue;
                };
                if record.state != DeliveryState::Available || record.available_at_ms > now_ms {
                    continue;
                }
                record.state = DeliveryState::Acquired;
                record.delivery_count = record.delivery_count.saturating_add(1);
                record.holder = Some(member.to_string());
                record.lock_expires_ms = now_ms.saturating_add(limits.record_lock_duration_ms);
                count += 1;
                let delivery_count = record.delivery_count;
                match acquired.last_mut() {
                    Some(last)
                        if last.last_offset + 1 == at && last.delivery_count == delivery_count =>
                    {
                        last.last_offset = at;
                    }
                    _ => acquired.push(Acquired {
                        first_offset: at,
                        last_offset: at,
                        delivery_count,
                    }),
                }
            }
        }
        self.advance_start();
        acquired
    }

    /// Applies `member`'s acknowledgements, all or none: every offset must
    /// be acquired by `member`. Returns the records archived without being
    /// accepted.
    pub fn acknowledge(
        &mut self,
        member: &str,
        batches: &[AckBatch],
        (limits, now_ms): (&ShareLimits, u64),
    ) -> Result<Vec<Archived>, AckError> {
        let mut changes: Vec<(i64, AckType)> = Vec::new();
        let mut seen: BTreeSet<i64> = BTreeSet::new();
        for batch in batches {
            let count = batch
                .last_offset
                .checked_sub(batch.first_offset)
                .and_then(|d| d.checked_add(1))
                .unwrap_or(0);
            let per_offset = usize::try_from(count).ok() == Some(batch.types.len());
            if count < 1 || !(batch.types.len() == 1 || per_offset) {
                return Err(AckError::InvalidBatch {
                    first_offset: batch.first_offset,
                    last_offset: batch.last_offset,
                    types: batch.types.len(),
                });
            }
            for (i, offset) in (batch.first_offset..=batch.last_offset).enumerate() {
                let code = batch.types[if per_offset { i } else { 0 }];
                let ack = AckType::from_code(code).ok_or(AckError::UnknownType { code })?;
                let record = self.records.get(&offset).ok_or(AckError::NotInFlight {
                    offset,
                    start_offset: self.start_offset,
                    end_offset: self.end_offset,
                })?;
                if record.state != DeliveryState::Acquired {
                    return Err(AckError::NotAcquired {
                        offset,
                        state: record.state,
                    });
                }
                if record.holder.as_deref() != Some(member) {
                    return Err(AckError::AcquiredByAnother { offset });
                }
                if !seen.insert(offset) {
                    return Err(AckError::Repeated { offset });
                }
                changes.push((offset, ack));
            }
        }
        let mut archived = Vec::new();
        for (offset, ack) in changes {
            let Some(record) = self.records.get_mut(&offset) else {
                continue;
            };
            match ack {
                AckType::Accept => finish(record, DeliveryState::Acknowledged),
                AckType::Gap => finish(record, DeliveryState::Archived),
                AckType::Reject => {
                    archived.push(give_up(offset, record, ArchiveReason::Rejected, limits));
                }
                AckType::Release => archived.extend(release(offset, record, limits, now_ms)),
            }
        }
        self.advance_start();
        Ok(archived)
    }

    /// Releases the records whose locks expired by `now_ms`.
    pub fn release_expired(&mut self, limits: &ShareLimits, now_ms: u64) -> Vec<Archived> {
        self.release_where(limits, now_ms, |r| r.lock_expires_ms <= now_ms)
    }

    /// Releases every record `member` holds (its share session ended).
    pub fn release_member(
        &mut self,
        member: &str,
        limits: &ShareLimits,
        now_ms: u64,
    ) -> Vec<Archived> {
        self.release_where(limits, now_ms, |r| r.holder.as_deref() == Some(member))
    }

    /// When the next lock expires or a backed-off record becomes available,
    /// if any: when [`SharePartition::release_expired`] or a fetch has
    /// something new to do.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.records
            .values()
            .filter_map(|r| match r.state {
                DeliveryState::Acquired => Some(r.lock_expires_ms),
                DeliveryState::Available if r.available_at_ms > 0 => Some(r.available_at_ms),
                _ => None,
            })
            .min()
    }

    /// The log's start offset moved to `log_start_offset` (retention,
    /// DeleteRecords): the records below it are gone.
    pub fn advance_log_start(&mut self, log_start_offset: i64) {
        if log_start_offset <= self.start_offset {
            return;
        }
        self.records = self.records.split_off(&log_start_offset);
        self.start_offset = log_start_offset;
        self.end_offset = self.end_offset.max(log_start_offset);
        self.advance_start();
    }

    /// The in-flight records as runs of one state and delivery count.
    pub fn state_batches(&self) -> Vec<StateBatch> {
        let mut batches: Vec<StateBatch> = Vec::new();
        for (offset, record) in &self.records {
            match batches.last_mut() {
                Some(last)
                    if last.last_offset + 1 == *offset
                        && last.state == record.state
                        && last.delivery_count == record.delivery_count
                        && last.dead_letter.map(|m| m.at(*offset - last.first_offset))
                            == record.dead_letter =>
                {
                    last.last_offset = *offset;
                }
                _ => batches.push(StateBatch {
                    first_offset: *offset,
                    last_offset: *offset,
                    state: record.state,
                    delivery_count: record.delivery_count,
                    dead_letter: record.dead_letter,
                }),
            }
        }
        batches
    }

    /// How many in-flight records are in each state.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for record in self.records.values() {
            *match record.state {
                DeliveryState::Available => &mut summary.available,
                DeliveryState::Acquired => &mut summary.acquired,
                DeliveryState::Acknowledged => &mut summary.acknowledged,
                DeliveryState::Archiving => &mut summary.archiving,
                DeliveryState::Archived => &mut summary.archived,
            } += 1;
            *summary
                .delivery_counts
                .entry(record.delivery_count)
                .or_default() += 1;
        }
        summary
    }

    /// Marks the offsets from the end up to `offset` as holding no record;
    /// `false` when that does not fit the in-flight window now (it is done
    /// later, once the start has moved). With nothing in flight the start
    /// and end just jump: a gap of any size costs nothing.
    fn skip_to(&mut self, offset: i64, limits: &ShareLimits) -> bool {
        if offset <= self.end_offset {
            return true;
        }
        if self.records.is_empty() {
            self.start_offset = offset;
            self.end_offset = offset;
            return true;
        }
        if offset.saturating_sub(self.start_offset) > i64::from(limits.record_locks_max) {
            return false;
        }
        while self.end_offset < offset {
            self.push(DeliveryState::Archived, 0);
        }
        true
    }

    fn is_full(&self, limits: &ShareLimits) -> bool {
        self.end_offset - self.start_offset >= i64::from(limits.record_locks_max)
    }

    fn push(&mut self, state: DeliveryState, delivery_count: u16) {
        self.records.insert(
            self.end_offset,
            InFlight {
                state,
                delivery_count,
                holder: None,
                lock_expires_ms: 0,
                available_at_ms: 0,
                dead_letter: None,
            },
        );
        self.end_offset += 1;
    }

    fn release_where(
        &mut self,
        limits: &ShareLimits,
        now_ms: u64,
        released: impl Fn(&InFlight) -> bool,
    ) -> Vec<Archived> {
        let mut archived = Vec::new();
        for (offset, record) in &mut self.records {
            if record.state == DeliveryState::Acquired && released(record) {
                archived.extend(release(*offset, record, limits, now_ms));
            }
        }
        self.advance_start();
        archived
    }

    /// Moves the start past the records that are done.
    pub(crate) fn advance_start(&mut self) {
        while let Some(entry) = self.records.first_entry() {
            if !entry.get().state.is_done() {
                break;
            }
            entry.remove();
            self.start_offset += 1;
        }
        assert_eq!(
            self.records.first_key_value().map(|(o, _)| *o),
            (self.start_offset < self.end_offset).then_some(self.start_offset),
            "the in-flight records start at the share-partition start offset"
        );
    }
}

fn finish(record: &mut InFlight, state: DeliveryState) {
    record.state = state;
    record.holder = None;
}

/// A record will not be delivered again: archived, or archiving until it is
/// written to the group's dead-letter topic.
fn give_up(
    offset: i64,
    record: &mut InFlight,
    reason: ArchiveReason,
    limits: &ShareLimits,
) -> Archived {
    if limits.dead_letter {
        finish(record, DeliveryState::Archiving);
        record.dead_letter = Some(DeadLetterMark {
            reason,
            sequence: None,
        });
    } else {
        finish(record, DeliveryState::Archived);
    }
    Archived {
        offset,
        delivery_count: record.delivery_count,
        reason,
    }
}

/// An acquired record goes back to the queue, or is archived if it was
/// delivered as often as the group allows.
fn release(
    offset: i64,
    record: &mut InFlight,
    limits: &ShareLimits,
    now_ms: u64,
) -> Option<Archived> {
    record.holder = None;
    if record.delivery_count >= limits.delivery_count_limit {
        return Some(give_up(
            offset,
            record,
            ArchiveReason::DeliveryLimit,
            limits,
        ));
    }
    record.state = DeliveryState::Available;
    let backoff = limits.redelivery_backoff_ms(record.delivery_count);
    record.available_at_ms = if backoff == 0 { 0 } else { now_ms + backoff };
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(base_offset: i64, last_offset: i64) -> BatchSpan {
        BatchSpan {
            base_offset,
            last_offset,
            skipped: false,
        }
    }

    fn ack(first_offset: i64, last_offset: i64, ack: AckType) -> AckBatch {
        let code = match ack {
            AckType::Gap => 0,
            AckType::Accept => 1,
            AckType::Release => 2,
            AckType::Reject => 3,
        };
        AckBatch {
            first_offset,
            last_offset,
            types: vec![code],
        }
    }

    fn acquired(first_offset: i64, last_offset: i64, delivery_count: u16) -> Acquired {
        Acquired {
            first_offset,
            last_offset,
            delivery_count,
        }
    }

    const L: ShareLimits = ShareLimits {
        record_lock_duration_ms: 1_000,
        delivery_count_limit: 3,
        record_locks_max: 100,
        redelivery_backoff_ms: 0,
        redelivery_backoff_max_ms: 0,
        dead_letter: false,
    };

    #[test]
    fn records_go_to_one_member_at_a_time_and_accepted_ones_never_again() {
        let mut p = SharePartition::new(0);
        assert_eq!(
            p.acquire("a", &[span(0, 9)], 4, (&L, 0)),
            [acquired(0, 3, 1)]
        );
        // b reads the same batch: it gets what a did not.
        assert_eq!(
            p.acquire("b", &[span(0, 9)], 100, (&L, 0)),
            [acquired(4, 9, 1)]
        );
        assert_eq!(p.acquire("c", &[span(0, 9)], 100, (&L, 0)), []);
        assert_eq!(
            p.acknowledge("a", &[ack(0, 3, AckType::Accept)], (&L, 0)),
            Ok(vec![])
        );
        assert_eq!(p.start_offset(), 4);
        assert_eq!(p.next_fetch_offset(&L, 0), Some(10));
        // b's lock expires: its records are available again, to anyone.
        assert_eq!(p.release_expired(&L, 999), []);
        assert_eq!(p.next_fetch_offset(&L, 999), Some(10));
        assert_eq!(p.release_expired(&L, 1_000), []);
        assert_eq!(p.next_fetch_offset(&L, 1_000), Some(4));
        assert_eq!(
            p.acquire("c", &[span(4, 9)], 100, (&L, 1_000)),
            [acquired(4, 9, 2)]
        );
        // b's late acknowledgement changes nothing.
        assert_eq!(
            p.acknowledge("b", &[ack(4, 4, AckType::Accept)], (&L, 1_000)),
            Err(AckError::AcquiredByAnother { offset: 4 })
        );
        assert_eq!(p.summary().acquired, 6);
    }

    #[test]
    fn release_redelivers_until_the_delivery_limit_then_archives() {
        let mut p = SharePartition::new(5);
        for delivery in 1..=3 {
            assert_eq!(
                p.acquire("a", &[span(5, 5)], 10, (&L, 0)),
                [acquired(5, 5, delivery)]
            );
            let archived = p.acknowledge("a", &[ack(5, 5, AckType::Release)], (&L, 0));
            if delivery < 3 {
                assert_eq!(archived, Ok(vec![]));
            } else {
                assert_eq!(
                    archived,
                    Ok(vec![Archived {
                        offset: 5,
                        delivery_count: 3,
                        reason: ArchiveReason::DeliveryLimit
                    }])
                );
            }
        }
        assert_eq!(p.start_offset(), 6);
        assert_eq!(p.acquire("a", &[span(5, 5)], 10, (&L, 0)), []);
    }

    #[test]
    fn rejected_records_are_archived_and_reported() {
        let mut p = SharePartition::new(0);
        p.acquire("a", &[span(0, 2)], 10, (&L, 0));
        let batches = [AckBatch {
            first_offset: 0,
            last_offset: 2,
            types: vec![1, 3, 1],
        }];
        assert_eq!(
            p.acknowledge("a", &batches, (&L, 0)),
            Ok(vec![Archived {
                offset: 1,
                delivery_count: 1,
                reason: ArchiveReason::Rejected
            }])
        );
        assert_eq!(p.start_offset(), 3);
        assert!(p.state_batches().is_empty());
    }

    #[test]
    fn a_bad_acknowledgement_changes_nothing() {
        let mut p = SharePartition::new(0);
        p.acquire("a", &[span(0, 4)], 10, (&L, 0));
        let before = p.state_batches();
        for batches in [
            // 3 is fine, 7 was never acquired.
            vec![ack(3, 3, AckType::Accept), ack(7, 7, AckType::Accept)],
            vec![ack(0, 1, AckType::Accept), ack(1, 1, AckType::Accept)],
            vec![AckBatch {
                first_offset: 0,
                last_offset: 2,
                types: vec![1, 1],
            }],
            vec![AckBatch {
                first_offset: 0,
                last_offset: 0,
                types: vec![9],
            }],
            vec![AckBatch {
                first_offset: i64::MIN,
                last_offset: i64::MAX,
                types: vec![1],
            }],
            vec![AckBatch {
                first_offset: 3,
                last_offset: 1,
                types: vec![1],
            }],
        ] {
            assert!(p.acknowledge("a", &batches, (&L, 0)).is_err());
            assert_eq!(p.state_batches(), before);
        }
        assert_eq!(
            p.acknowledge("b", &[ack(0, 0, AckType::Accept)], (&L, 0)),
            Err(AckError::AcquiredByAnother { offset: 0 })
        );
        p.acknowledge("a", &[ack(0, 0, AckType::Accept)], (&L, 0))
            .unwrap();
        assert_eq!(
            p.acknowledge("a", &[ack(0, 0, AckType::Accept)], (&L, 0)),
            Err(AckError::NotInFlight {
                offset: 0,
                start_offset: 1,
                end_offset: 5
            })
        );
    }

    #[test]
    fn gaps_between_batches_and_control_batches_are_never_delivered() {
        let mut p = SharePartition::new(0);
        let control = BatchSpan {
            base_offset: 4,
            last_offset: 4,
            skipped: true,
        };
        let got = p.acquire("a", &[span(0, 1), control, span(7, 8)], 10, (&L, 0));
        assert_eq!(got, [acquired(0, 1, 1), acquired(7, 8, 1)]);
        p.acknowledge("a", &[ack(0, 1, AckType::Accept)], (&L, 0))
            .unwrap();
        assert_eq!(p.start_offset(), 7);
    }

    #[test]
    fn huge_gaps_and_damaged_snapshots_cost_no_more_than_the_window() {
        // A compacted log: one record, then the next a trillion offsets on.
        let mut p = SharePartition::new(0);
        let far = 1_000_000_000_000;
        let got = p.acquire("a", &[span(0, 0), span(far, far)], 10, (&L, 0));
        // 0 is in flight: the gap does not fit the window yet.
        assert_eq!(got, [acquired(0, 0, 1)]);
        assert_eq!(p.end_offset(), 1);
        p.acknowledge("a", &[ack(0, 0, AckType::Accept)], (&L, 0))
            .unwrap();
        // Nothing in flight: the start jumps over the gap.
        let got = p.acquire("a", &[span(far, far)], 10, (&L, 0));
        assert_eq!(got, [acquired(far, far, 1)]);
        assert_eq!(p.start_offset(), far);
        // A skipped batch spanning a trillion offsets is jumped too.
        let mut q = SharePartition::new(0);
        let marker = BatchSpan {
            base_offset: 0,
            last_offset: far,
            skipped: true,
        };
        assert_eq!(q.acquire("a", &[marker], 10, (&L, 0)), []);
        assert_eq!(q.start_offset(), far + 1);
        // A snapshot claiming a trillion in-flight records restores the
        // window's worth.
        let damaged = [StateBatch {
            first_offset: 0,
            last_offset: far,
            state: DeliveryState::Archived,
            delivery_count: 1,
            dead_letter: None,
        }];
        let restored = SharePartition::restore(0, &damaged, 100);
        assert_eq!(restored.end_offset(), 100);
        assert_eq!(restored.start_offset(), 100);
    }

    #[test]
    fn the_in_flight_window_is_bounded() {
        let limits = ShareLimits {
            record_locks_max: 3,
            ..L
        };
        let mut p = SharePartition::new(0);
        assert_eq!(
            p.acquire("a", &[span(0, 9)], 10, (&limits, 0)),
            [acquired(0, 2, 1)]
        );
        assert_eq!(p.next_fetch_offset(&limits, 0), None);
        p.acknowledge("a", &[ack(0, 0, AckType::Accept)], (&limits, 0))
            .unwrap();
        assert_eq!(p.next_fetch_offset(&limits, 0), Some(3));
        assert_eq!(
            p.acquire("b", &[span(0, 9)], 10, (&limits, 0)),
            [acquired(3, 3, 1)]
        );
    }

    #[test]
    fn a_leaving_member_releases_what_it_holds() {
        let mut p = SharePartition::new(0);
        p.acquire("a", &[span(0, 1)], 10, (&L, 0));
        p.acquire("b", &[span(0, 3)], 10, (&L, 0));
        assert_eq!(p.release_member("a", &L, 0), []);
        assert_eq!(p.summary().available, 2);
        assert_eq!(p.summary().acquired, 2);
        assert_eq!(
            p.acquire("c", &[span(0, 3)], 10, (&L, 0)),
            [acquired(0, 1, 2)]
        );
    }

    #[test]
    fn redelivery_backs_off_exponentially_up_to_its_maximum() {
        let limits = ShareLimits {
            redelivery_backoff_ms: 100,
            redelivery_backoff_max_ms: 250,
            delivery_count_limit: 10,
            ..L
        };
        assert_eq!(limits.redelivery_backoff_ms(1), 100);
        assert_eq!(limits.redelivery_backoff_ms(2), 200);
        assert_eq!(limits.redelivery_backoff_ms(3), 250);
        let mut p = SharePartition::new(0);
        p.acquire("a", &[span(0, 0)], 10, (&limits, 1_000));
        p.acknowledge("a", &[ack(0, 0, AckType::Release)], (&limits, 1_000))
            .unwrap();
        assert_eq!(p.next_fetch_offset(&limits, 1_099), Some(1));
        assert_eq!(p.acquire("a", &[span(0, 0)], 10, (&limits, 1_099)), []);
        assert_eq!(p.next_deadline_ms(), Some(1_100));
        assert_eq!(p.next_fetch_offset(&limits, 1_100), Some(0));
        assert_eq!(
            p.acquire("a", &[span(0, 0)], 10, (&limits, 1_100)),
            [acquired(0, 0, 2)]
        );
    }

    #[test]
    fn restored_state_keeps_what_was_done_and_frees_what_was_held() {
        let mut p = SharePartition::new(0);
        p.acquire("a", &[span(0, 5)], 10, (&L, 0));
        p.acknowledge(
            "a",
            &[ack(0, 0, AckType::Accept), ack(2, 2, AckType::Reject)],
            (&L, 0),
        )
        .unwrap();
        let restored = SharePartition::restore(p.start_offset(), &p.state_batches(), 100);
        assert_eq!(restored.start_offset(), 1);
        assert_eq!(restored.end_offset(), 6);
        let summary = restored.summary();
        assert_eq!((summary.available, summary.archived), (4, 1));
        assert_eq!(summary.delivery_counts.get(&1), Some(&5));
    }

    #[test]
    fn retention_moves_the_start() {
        let mut p = SharePartition::new(0);
        p.acquire("a", &[span(0, 5)], 10, (&L, 0));
        p.advance_log_start(4);
        assert_eq!(p.start_offset(), 4);
        assert_eq!(p.summary().acquired, 2);
        p.advance_log_start(10);
        assert_eq!((p.start_offset(), p.end_offset()), (10, 10));
    }
}
