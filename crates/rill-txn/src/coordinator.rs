//! The transaction coordinator of one `__transaction_state` partition:
//! every transactional id it holds, request validation, the log-first
//! persistence protocol, the markers and the timers.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rill_record::MarkerKind;

use crate::api::{
    InitProducerIdRequest, MarkerJob, Outcome, Persist, PersistToken, Persisted,
    ProducerIdAndEpoch, Reply, TxnDescription, TxnList, TxnListing,
};
use crate::config::TxnConfig;
use crate::error::TxnError;
use crate::metadata::{
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID, Transit, TxnMetadata, is_epoch_exhausted,
};
use crate::state::TxnState;
use crate::txn_log::{
    STRING_BYTES_MAX, TopicPartition, TxnLogRecord, group_by_topic, partition_for,
};

/// Why a write was made: decides the answer once it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    InitProducerId,
    AddPartitions,
    EndTxn,
    /// An abort at a bumped epoch; `reply` when an InitProducerId caused it
    /// (it is answered CONCURRENT_TRANSACTIONS, and retries).
    FenceAbort {
        reply: bool,
    },
    Complete,
    Expire,
}

#[derive(Debug, Clone)]
struct Write {
    transactional_id: String,
    kind: WriteKind,
}

/// Kafka's transaction coordinator for one partition of
/// `__transaction_state`, sans I/O.
///
/// Driving it (the host is rill-server; every `now_ms` is ms since the
/// epoch, never decreasing):
///
/// 1. On becoming leader of partition `p` at leader epoch `e`: `new(p,
///    partition_count, e, config)`, feed every record of the partition to
///    [`load`](Self::load), then call [`finish_loading`](Self::finish_loading)
///    and deliver the [`MarkerJob`]s it returns. Until then every request
///    gets COORDINATOR_LOAD_IN_PROGRESS. On losing leadership, drop it.
/// 2. Feed InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn (the host
///    turns the group id into its `__consumer_offsets` partition) and
///    EndTxn to the request methods. [`Outcome::Done`] is answered at
///    once; [`Outcome::Persist`] is appended to partition `p` (acks=all)
///    and, once replicated or failed, reported with
///    [`persisted`](Self::persisted), which returns the client's answer.
/// 3. Every [`MarkerJob`] is written to its partitions, then reported with
///    [`markers_written`](Self::markers_written), whose [`Persist`] (the
///    CompleteCommit / CompleteAbort record) goes through step 2's append
///    and [`persisted`](Self::persisted) again.
/// 4. Every `transaction.abort.timed.out.transaction.cleanup.interval.ms`
///    call [`abort_timed_out`](Self::abort_timed_out), and every
///    `transaction.remove.expired.transaction.cleanup.interval.ms`
///    [`expire_transactional_ids`](Self::expire_transactional_ids); their
///    [`Persist`]s go through step 2 too.
///
/// A change is applied only once its record is acknowledged; until then
/// the transactional id has a pending transition and every other request
/// for it gets CONCURRENT_TRANSACTIONS (Kafka's pendingState).
///
/// Deterministic (no clock, no randomness; producer ids come from the
/// host's allocator). Not thread-safe: the server owns it behind one lock
/// or task.
///
/// ```
/// use rill_txn::{InitProducerIdRequest, Outcome, Reply, TxnConfig, TxnCoordinator};
///
/// let mut coordinator = TxnCoordinator::new(0, 1, 7, TxnConfig::default());
/// coordinator.finish_loading(0);
/// let request = InitProducerIdRequest {
///     transactional_id: "orders".into(),
///     transaction_timeout_ms: 60_000,
///     producer_id: -1,
///     producer_epoch: -1,
/// };
/// let Outcome::Persist(write) = coordinator.init_producer_id(&request, 1_000, &mut || Ok(42))
/// else { panic!() };
/// // ... the host appends write.batch(1_000) and waits for the high watermark ...
/// let done = coordinator.persisted(write.token, Ok(()), 1_001);
/// match done.reply {
///     Reply::InitProducerId(Ok(id)) => assert_eq!((id.producer_id, id.producer_epoch), (42, 0)),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug)]
pub struct TxnCoordinator {
    partition: i32,
    partition_count: i32,
    coordinator_epoch: i32,
    config: TxnConfig,
    loading: bool,
    txns: BTreeMap<String, TxnMetadata>,
    writes: HashMap<u64, Write>,
    next_token: u64,
}

impl TxnCoordinator {
    /// The coordinator of `__transaction_state` partition `partition` (of
    /// `partition_count`), led at `coordinator_epoch` (the partition's
    /// leader epoch), in the loading state.
    pub fn new(
        partition: i32,
        partition_count: i32,
        coordinator_epoch: i32,
        config: TxnConfig,
    ) -> TxnCoordinator {
        assert!(
            (0..partition_count).contains(&partition),
            "partition {partition} is not in 0..{partition_count}"
        );
        TxnCoordinator {
            partition,
            partition_count,
            coordinator_epoch,
            config,
            loading: true,
            txns: BTreeMap::new(),
            writes: HashMap::new(),
            next_token: 0,
        }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn coordinator_epoch(&self) -> i32 {
        self.coordinator_epoch
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// True until [`finish_loading`](Self::finish_loading).
    pub fn is_loading(&self) -> bool {
        self.loading
    }

    /// Replays records of the partition in log order: the latest value
    /// wins, a tombstone removes the id. A `Dead` value (never written by
    /// a healthy coordinator) is an expiry in progress: it removes the id
    /// too. Only in the loading state (ignored after). The host reads the
    /// partition from its log start offset to its log end offset with
    /// [`read_txn_batches`](crate::read_txn_batches) and passes each
    /// batch's `records` (their `.record`), in order.
    pub fn load(&mut self, records: impl IntoIterator<Item = TxnLogRecord>) {
        if !self.loading {
            tracing::warn!(
                partition = self.partition,
                "load after finish_loading, ignored"
            );
            return;
        }
        for record in records {
            match record.value {
                Some(value) if value.state != TxnState::Dead => {
                    self.txns
                        .insert(record.transactional_id, TxnMetadata::from_log(value));
                }
                _ => {
                    self.txns.remove(&record.transactional_id);
                }
            }
        }
    }

    /// Ends loading and serves requests from now on. Returns the markers
    /// of transactions left in PrepareCommit or PrepareAbort, to write
    /// again (as Kafka does when it takes over a partition). A transaction
    /// logged in PrepareEpochFence (which Kafka never writes) is treated
    /// as Ongoing: the timeout or the next InitProducerId fences it.
    pub fn finish_loading(&mut self, now_ms: i64) -> Vec<MarkerJob> {
        if !self.loading {
            return Vec::new();
        }
        self.loading = false;
        let mut jobs = Vec::new();
        for (transactional_id, metadata) in &mut self.txns {
            match metadata.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    metadata.pending = Some(crate::metadata::Pending {
                        transit: metadata.prepare_complete(now_ms),
                        token: None,
                    });
                    jobs.push(marker_job(
                        transactional_id,
                        metadata,
                        self.coordinator_epoch,
                    ));
                }
                TxnState::PrepareEpochFence => metadata.state = TxnState::Ongoing,
                _ => {}
            }
        }
        jobs
    }

    /// InitProducerId with a transactional id. `allocate` hands out a new
    /// producer id (for a new transactional id, or when the epoch is
    /// exhausted); its error is answered as is.
    pub fn init_producer_id(
        &mut self,
        request: &InitProducerIdRequest,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Result<i64, TxnError>,
    ) -> Outcome<ProducerIdAndEpoch> {
        match self.prepare_init(request, now_ms, allocate) {
            Ok((transit, kind)) => self.persist(&request.transactional_id, transit, kind),
            Err(error) => Outcome::Done(Err(error)),
        }
    }

    fn prepare_init(
        &mut self,
        request: &InitProducerIdRequest,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Result<i64, TxnError>,
    ) -> Result<(Transit, WriteKind), TxnError> {
        let transactional_id = request.transactional_id.as_str();
        // Kafka's order: the id, the timeout, then whether it is served here.
        check_id_format(transactional_id)?;
        let timeout_ms = request.transaction_timeout_ms;
        if timeout_ms <= 0 || timeout_ms > self.config.transaction_max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout {
                timeout_ms,
                max_ms: self.config.transaction_max_timeout_ms,
            });
        }
        self.check_served(transactional_id)?;
        let expected = match (request.producer_id, request.producer_epoch) {
            (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => None,
            (NO_PRODUCER_ID, _) | (_, NO_PRODUCER_EPOCH) => {
                return Err(TxnError::InvalidRequest {
                    expected: "a producer id and epoch that are both set or both -1",
                });
            }
            (producer_id, producer_epoch) => Some(ProducerIdAndEpoch {
                producer_id,
                producer_epoch,
            }),
        };
        if !self.txns.contains_key(transactional_id) {
            let producer_id = allocate()?;
            self.txns.insert(
                transactional_id.to_owned(),
                TxnMetadata::new(producer_id, timeout_ms, now_ms),
            );
        }
        let metadata = self.metadata(transactional_id)?;
        if metadata.has_pending() {
            return Err(concurrent(transactional_id));
        }
        if let Some(expected) = expected {
            // KIP-360: the producer's own id, a brand-new metadata, or a
            // retry after a rotation whose answer was lost.
            let valid = metadata.producer_epoch == NO_PRODUCER_EPOCH
                || expected.producer_id == metadata.producer_id
                || (expected.producer_id == metadata.last_producer_id
                    && is_epoch_exhausted(expected.producer_epoch));
            if !valid {
                return Err(fenced(transactional_id, expected.producer_epoch, metadata));
            }
        }
        match metadata.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => Err(concurrent(transactional_id)),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let rotate = is_epoch_exhausted(metadata.producer_epoch)
                    && expected.is_none_or(|e| e.producer_epoch == metadata.producer_epoch);
                let transit = if rotate {
                    let new_producer_id = allocate()?;
                    metadata.prepare_producer_id_rotation(
                        new_producer_id,
                        timeout_ms,
                        now_ms,
                        expected.is_some(),
                    )
                } else {
                    let expected_epoch = expected.map(|e| e.producer_epoch);
                    metadata
                        .prepare_increment_epoch(timeout_ms, expected_epoch, now_ms)
                        .map_err(|()| {
                            fenced(transactional_id, expected_epoch.unwrap_or(-1), metadata)
                        })?
                };
                Ok((transit, WriteKind::InitProducerId))
            }
            TxnState::Ongoing => {
                // Fence the current producer and abort its transaction; the
                // new one is answered CONCURRENT_TRANSACTIONS and retries,
                // which bumps the epoch once more.
                let transit = metadata
                    .prepare_fence_abort(now_ms)
                    .ok_or_else(|| epoch_overflow(transactional_id))?;
                Ok((transit, WriteKind::FenceAbort { reply: true }))
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {
                Err(illegal_state(transactional_id, metadata.state))
            }
        }
    }

    /// AddPartitionsToTxn v0..=3 (and AddOffsetsToTxn with the group's
    /// `__consumer_offsets` partition): adds `partitions` to the
    /// transaction, starting it if none is open.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Outcome<()> {
        let prepared = self.prepare_add(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            now_ms,
        );
        self.persist_prepared(transactional_id, prepared, WriteKind::AddPartitions)
    }

    /// Asks for `prepared`'s write, or answers at once: `None` (nothing
    /// to change) succeeds, an error is the answer.
    fn persist_prepared(
        &mut self,
        transactional_id: &str,
        prepared: Result<Option<Transit>, TxnError>,
        kind: WriteKind,
    ) -> Outcome<()> {
        match prepared {
            Ok(Some(transit)) => self.persist(transactional_id, transit, kind),
            Ok(None) => Outcome::Done(Ok(())),
            Err(error) => Outcome::Done(Err(error)),
        }
    }

    /// AddPartitionsToTxn's checks and transit; `None`: nothing to add.
    fn prepare_add(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Result<Option<Transit>, TxnError> {
        self.check_id(transactional_id)?;
        if partitions
            .iter()
            .any(|(topic, _)| topic.len() > STRING_BYTES_MAX)
        {
            return Err(TxnError::InvalidRequest {
                expected: "topic names of at most 32767 bytes",
            });
        }
        let metadata = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        if metadata.has_pending()
            || matches!(
                metadata.state,
                TxnState::PrepareCommit | TxnState::PrepareAbort
            )
        {
            return Err(concurrent(transactional_id));
        }
        let added: BTreeSet<TopicPartition> = partitions.iter().cloned().collect();
        if metadata.state == TxnState::Ongoing && added.is_subset(&metadata.partitions) {
            // Nothing new: answer at once.
            return Ok(None);
        }
        Ok(Some(metadata.prepare_add_partitions(&added, now_ms)))
    }

    /// AddPartitionsToTxn v4+ verify-only (KIP-890 part 1): whether every
    /// partition is in the producer's ongoing transaction. Changes nothing.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<(), TxnError> {
        self.check_id(transactional_id)?;
        let metadata = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        // As Kafka, a pending transition is not checked: partitions join
        // the transaction when their record is acknowledged, and the append
        // being verified is checked again when it is written.
        if matches!(
            metadata.state,
            TxnState::PrepareCommit | TxnState::PrepareAbort
        ) {
            return Err(concurrent(transactional_id));
        }
        let missing: Vec<TopicPartition> = partitions
            .iter()
            .filter(|p| !metadata.partitions.contains(*p))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(TxnError::TransactionAbortable {
                transactional_id: transactional_id.to_owned(),
                missing,
            })
        }
    }

    /// EndTxn: commit or abort the ongoing transaction. Answered (through
    /// [`persisted`](Self::persisted)) once the PrepareCommit or
    /// PrepareAbort record is durable, before the markers are written.
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        result: MarkerKind,
        now_ms: i64,
    ) -> Outcome<()> {
        let prepared = self.prepare_end(
            transactional_id,
            producer_id,
            producer_epoch,
            result,
            now_ms,
        );
        self.persist_prepared(transactional_id, prepared, WriteKind::EndTxn)
    }

    /// EndTxn's checks and transit; `None`: a retry that already happened.
    fn prepare_end(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        result: MarkerKind,
        now_ms: i64,
    ) -> Result<Option<Transit>, TxnError> {
        self.check_id(transactional_id)?;
        let metadata = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        if metadata.has_pending() {
            return Err(concurrent(transactional_id));
        }
        let request = match result {
            MarkerKind::Commit => "EndTxn(commit)",
            MarkerKind::Abort => "EndTxn(abort)",
        };
        let invalid = || TxnError::InvalidTxnState {
            transactional_id: transactional_id.to_owned(),
            state: metadata.state,
            request,
        };
        match (metadata.state, result) {
            (TxnState::Ongoing, MarkerKind::Commit) => Ok(Some(
                metadata.prepare_abort_or_commit(TxnState::PrepareCommit, now_ms),
            )),
            (TxnState::Ongoing, MarkerKind::Abort) => Ok(Some(
                metadata.prepare_abort_or_commit(TxnState::PrepareAbort, now_ms),
            )),
            // A retry of an EndTxn that already completed.
            (TxnState::CompleteCommit, MarkerKind::Commit)
            | (TxnState::CompleteAbort, MarkerKind::Abort) => Ok(None),
            // A retry while the markers are being written.
            (TxnState::PrepareCommit, MarkerKind::Commit)
            | (TxnState::PrepareAbort, MarkerKind::Abort) => Err(concurrent(transactional_id)),
            (TxnState::Dead | TxnState::PrepareEpochFence, _) => {
                Err(illegal_state(transactional_id, metadata.state))
            }
            _ => Err(invalid()),
        }
    }

    /// Reports the write `token`: `Ok(())` once the record is replicated,
    /// or the error to answer with (the host maps append errors as Kafka
    /// does: not enough replicas or a timeout → CoordinatorNotAvailable,
    /// not the leader any more → NotCoordinator, a record the log refuses
    /// → UnknownServerError). On success the transition is applied; on
    /// failure it is dropped (a completion record is retried instead, see
    /// [`Persisted::retry`]). An unknown token (reported twice) changes
    /// nothing.
    pub fn persisted(
        &mut self,
        token: PersistToken,
        result: Result<(), TxnError>,
        now_ms: i64,
    ) -> Persisted {
        let mut out = Persisted {
            reply: Reply::Internal,
            marker_job: None,
            retry: None,
        };
        let Some(write) = self.writes.remove(&token.0) else {
            tracing::warn!(token = token.0, "persisted: unknown token, ignored");
            return out;
        };
        let id = write.transactional_id.as_str();
        let Some(metadata) = self.txns.get_mut(id) else {
            tracing::warn!(transactional_id = id, "persisted: transactional id is gone");
            return out;
        };
        let transit = match &metadata.pending {
            Some(pending) if pending.token == Some(token.0) => pending.transit.clone(),
            _ => {
                tracing::warn!(transactional_id = id, "persisted: not the pending write");
                return out;
            }
        };
        match result {
            Ok(()) => self.applied(write, transit, now_ms, &mut out),
            Err(error) => self.failed(write, transit, error, &mut out),
        }
        out
    }

    fn applied(&mut self, write: Write, transit: Transit, now_ms: i64, out: &mut Persisted) {
        let id = write.transactional_id;
        if write.kind == WriteKind::Expire {
            self.txns.remove(&id);
            return;
        }
        let Some(metadata) = self.txns.get_mut(&id) else {
            return;
        };
        metadata.complete(&transit);
        match write.kind {
            WriteKind::InitProducerId => {
                out.reply = Reply::InitProducerId(Ok(ProducerIdAndEpoch {
                    producer_id: metadata.producer_id,
                    producer_epoch: metadata.producer_epoch,
                }));
            }
            WriteKind::AddPartitions => out.reply = Reply::Ack(Ok(())),
            WriteKind::EndTxn | WriteKind::FenceAbort { .. } => {
                out.reply = match write.kind {
                    WriteKind::FenceAbort { reply: true } => {
                        Reply::InitProducerId(Err(concurrent(&id)))
                    }
                    WriteKind::FenceAbort { reply: false } => Reply::Internal,
                    _ => Reply::Ack(Ok(())),
                };
                metadata.pending = Some(crate::metadata::Pending {
                    transit: metadata.prepare_complete(now_ms),
                    token: None,
                });
                out.marker_job = Some(marker_job(&id, metadata, self.coordinator_epoch));
            }
            WriteKind::Complete | WriteKind::Expire => {}
        }
    }

    fn failed(&mut self, write: Write, transit: Transit, error: TxnError, out: &mut Persisted) {
        let id = write.transactional_id;
        let Some(metadata) = self.txns.get_mut(&id) else {
            return;
        };
        tracing::info!(
            transactional_id = id.as_str(),
            state = %transit.state,
            %error,
            "write to __transaction_state failed"
        );
        match write.kind {
            WriteKind::Complete => {
                if matches!(error, TxnError::CoordinatorNotAvailable { .. }) {
                    metadata.pending = None;
                    if let Outcome::Persist::<()>(retry) =
                        self.persist(&id, transit, WriteKind::Complete)
                    {
                        out.retry = Some(retry);
                    }
                } else if let Some(pending) = &mut metadata.pending {
                    // Back to waiting for markers_written.
                    pending.token = None;
                }
                return;
            }
            WriteKind::FenceAbort { .. } => {
                // As Kafka: the bumped epoch may be in the log, so the old
                // producer stays fenced and the next fence does not bump.
                metadata.producer_epoch = transit.producer_epoch;
                metadata.last_producer_epoch = NO_PRODUCER_EPOCH;
                metadata.has_failed_epoch_fence = true;
            }
            _ => {}
        }
        metadata.pending = None;
        out.reply = match write.kind {
            WriteKind::InitProducerId | WriteKind::FenceAbort { reply: true } => {
                Reply::InitProducerId(Err(error))
            }
            WriteKind::AddPartitions | WriteKind::EndTxn => Reply::Ack(Err(error)),
            _ => Reply::Internal,
        };
    }

    /// The markers of `transactional_id`'s transaction (at `producer_id`,
    /// `producer_epoch`) are all written: returns the CompleteCommit or
    /// CompleteAbort record to persist. `None` when no such marker job is
    /// outstanding (a stale or repeated report).
    pub fn markers_written(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        now_ms: i64,
    ) -> Option<Persist> {
        let metadata = self.txns.get_mut(transactional_id)?;
        let pending = metadata.pending.as_ref()?;
        let waiting = pending.token.is_none()
            && matches!(
                pending.transit.state,
                TxnState::CompleteCommit | TxnState::CompleteAbort
            )
            && metadata.producer_id == producer_id
            && metadata.producer_epoch == producer_epoch;
        if !waiting {
            return None;
        }
        let mut transit = pending.transit.clone();
        transit.last_update_timestamp_ms = now_ms;
        metadata.pending = None;
        match self.persist::<()>(transactional_id, transit, WriteKind::Complete) {
            Outcome::Persist(persist) => Some(persist),
            Outcome::Done(_) => None,
        }
    }

    /// Aborts every Ongoing transaction older than its timeout, at a bumped
    /// epoch so that its producer is fenced (Kafka's
    /// abortTimedOutTransactions). Each [`Persist`] is a PrepareAbort
    /// record; its [`persisted`](Self::persisted) returns the markers.
    pub fn abort_timed_out(&mut self, now_ms: i64) -> Vec<Persist> {
        if self.loading {
            return Vec::new();
        }
        let timed_out: Vec<(String, Transit)> = self
            .txns
            .iter()
            .filter(|(_, m)| {
                !m.has_pending()
                    && m.state == TxnState::Ongoing
                    && m.start_timestamp_ms.saturating_add(i64::from(m.timeout_ms)) < now_ms
            })
            .filter_map(|(id, m)| match m.prepare_fence_abort(now_ms) {
                Some(transit) => Some((id.clone(), transit)),
                None => {
                    tracing::error!(
                        transactional_id = id.as_str(),
                        "cannot fence: epoch at i16::MAX"
                    );
                    None
                }
            })
            .collect();
        timed_out
            .into_iter()
            .filter_map(|(id, transit)| {
                tracing::info!(
                    transactional_id = id.as_str(),
                    "aborting timed-out transaction"
                );
                match self.persist::<()>(&id, transit, WriteKind::FenceAbort { reply: false }) {
                    Outcome::Persist(persist) => Some(persist),
                    Outcome::Done(_) => None,
                }
            })
            .collect()
    }

    /// Tombstones for transactional ids idle (Empty, CompleteCommit,
    /// CompleteAbort) for `transactional.id.expiration.ms`. Each id is
    /// removed once its tombstone is [`persisted`](Self::persisted).
    pub fn expire_transactional_ids(&mut self, now_ms: i64) -> Vec<Persist> {
        if self.loading {
            return Vec::new();
        }
        let expiration_ms = self.config.transactional_id_expiration_ms;
        let expired: Vec<(String, Transit)> = self
            .txns
            .iter()
            .filter(|(_, m)| {
                !m.has_pending()
                    && m.state.is_expiration_allowed()
                    && m.last_update_timestamp_ms <= now_ms.saturating_sub(expiration_ms)
            })
            .map(|(id, m)| (id.clone(), m.prepare_dead()))
            .collect();
        expired
            .into_iter()
            .filter_map(
                |(id, transit)| match self.persist::<()>(&id, transit, WriteKind::Expire) {
                    Outcome::Persist(persist) => Some(persist),
                    Outcome::Done(_) => None,
                },
            )
            .collect()
    }

    /// DescribeTransactions for one transactional id.
    pub fn describe(&self, transactional_id: &str) -> Result<TxnDescription, TxnError> {
        self.check_id(transactional_id)?;
        let not_found = || TxnError::TransactionalIdNotFound {
            transactional_id: transactional_id.to_owned(),
        };
        let metadata = self.txns.get(transactional_id).ok_or_else(not_found)?;
        if metadata.state == TxnState::Dead {
            return Err(not_found());
        }
        Ok(TxnDescription {
            transactional_id: transactional_id.to_owned(),
            state: metadata.state,
            producer_id: metadata.producer_id,
            producer_epoch: metadata.producer_epoch,
            transaction_timeout_ms: metadata.timeout_ms,
            transaction_start_time_ms: metadata.start_timestamp_ms,
            topics: group_by_topic(&metadata.partitions)
                .into_iter()
                .map(|(topic, partitions)| (topic.to_owned(), partitions))
                .collect(),
        })
    }

    /// ListTransactions over this partition (KIP-664): filters by state
    /// name and producer id when non-empty, and (KIP-994) by duration:
    /// with `duration_filter_ms >= 0`, only transactions running longer
    /// than that.
    pub fn list(
        &self,
        state_filters: &[String],
        producer_id_filters: &[i64],
        duration_filter_ms: i64,
        now_ms: i64,
    ) -> Result<TxnList, TxnError> {
        if self.loading {
            return Err(self.loading_error());
        }
        let mut list = TxnList::default();
        let mut states = BTreeSet::new();
        for name in state_filters {
            match TxnState::from_name(name) {
                Some(state) => {
                    states.insert(state);
                }
                None => list.unknown_state_filters.push(name.clone()),
            }
        }
        for (id, m) in &self.txns {
            let include = m.state != TxnState::Dead
                && (producer_id_filters.is_empty() || producer_id_filters.contains(&m.producer_id))
                && (state_filters.is_empty() || states.contains(&m.state))
                && (duration_filter_ms < 0
                    || now_ms.saturating_sub(m.start_timestamp_ms) > duration_filter_ms);
            if include {
                list.transactions.push(TxnListing {
                    transactional_id: id.clone(),
                    producer_id: m.producer_id,
                    state: m.state,
                });
            }
        }
        Ok(list)
    }

    /// Logs `transit` as the pending transition of `transactional_id`.
    fn persist<T>(
        &mut self,
        transactional_id: &str,
        transit: Transit,
        kind: WriteKind,
    ) -> Outcome<T> {
        let record = TxnLogRecord {
            transactional_id: transactional_id.to_owned(),
            value: (kind != WriteKind::Expire).then(|| transit.log_value()),
        };
        let (key, value) = match record.encode() {
            Ok(encoded) => encoded,
            Err(error) => {
                return Outcome::Done(Err(TxnError::UnknownServerError {
                    reason: error.to_string(),
                }));
            }
        };
        let Some(metadata) = self.txns.get_mut(transactional_id) else {
            return Outcome::Done(Err(TxnError::UnknownServerError {
                reason: format!("transactional id {transactional_id:?} vanished"),
            }));
        };
        assert!(
            metadata.pending.is_none(),
            "{transactional_id:?} already has a pending transition"
        );
        let token = self.next_token;
        self.next_token += 1;
        metadata.pending = Some(crate::metadata::Pending {
            transit,
            token: Some(token),
        });
        self.writes.insert(
            token,
            Write {
                transactional_id: transactional_id.to_owned(),
                kind,
            },
        );
        Outcome::Persist(Persist {
            token: PersistToken(token),
            record,
            key,
            value,
        })
    }

    fn loading_error(&self) -> TxnError {
        TxnError::CoordinatorLoadInProgress {
            partition: self.partition,
        }
    }

    /// A transactional id this coordinator may serve.
    fn check_id(&self, transactional_id: &str) -> Result<(), TxnError> {
        check_id_format(transactional_id)?;
        self.check_served(transactional_id)
    }

    /// The id belongs to this partition, and the partition is loaded.
    fn check_served(&self, transactional_id: &str) -> Result<(), TxnError> {
        if partition_for(transactional_id, self.partition_count) != self.partition {
            return Err(TxnError::NotCoordinator {
                transactional_id: transactional_id.to_owned(),
                partition: self.partition,
            });
        }
        if self.loading {
            return Err(self.loading_error());
        }
        Ok(())
    }

    fn metadata(&self, transactional_id: &str) -> Result<&TxnMetadata, TxnError> {
        self.txns
            .get(transactional_id)
            .ok_or_else(|| TxnError::UnknownServerError {
                reason: format!("transactional id {transactional_id:?} vanished"),
            })
    }

    /// The metadata of a request's producer: its id must map to
    /// `producer_id` at `producer_epoch`.
    fn check_producer(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&TxnMetadata, TxnError> {
        let metadata = self.txns.get(transactional_id);
        match metadata {
            Some(m) if m.producer_id == producer_id => {
                if m.producer_epoch != producer_epoch {
                    Err(fenced(transactional_id, producer_epoch, m))
                } else {
                    Ok(m)
                }
            }
            _ => Err(TxnError::InvalidProducerIdMapping {
                transactional_id: transactional_id.to_owned(),
                request_producer_id: producer_id,
                current: metadata.map(|m| m.producer_id),
            }),
        }
    }
}

/// A transactional id Kafka's schemas can carry.
fn check_id_format(transactional_id: &str) -> Result<(), TxnError> {
    if transactional_id.is_empty() || transactional_id.len() > STRING_BYTES_MAX {
        return Err(TxnError::InvalidRequest {
            expected: "a transactional id of 1..=32767 bytes",
        });
    }
    Ok(())
}

fn marker_job(transactional_id: &str, metadata: &TxnMetadata, coordinator_epoch: i32) -> MarkerJob {
    MarkerJob {
        transactional_id: transactional_id.to_owned(),
        producer_id: metadata.producer_id,
        producer_epoch: metadata.producer_epoch,
        coordinator_epoch,
        kind: if metadata.state == TxnState::PrepareCommit {
            MarkerKind::Commit
        } else {
            MarkerKind::Abort
        },
        partitions: metadata.partitions.iter().cloned().collect(),
    }
}

fn concurrent(transactional_id: &str) -> TxnError {
    TxnError::ConcurrentTransactions {
        transactional_id: transactional_id.to_owned(),
    }
}

fn fenced(transactional_id: &str, request_epoch: i16, metadata: &TxnMetadata) -> TxnError {
    TxnError::ProducerFenced {
        transactional_id: transactional_id.to_owned(),
        request_epoch,
        current_epoch: metadata.producer_epoch,
    }
}

fn epoch_overflow(transactional_id: &str) -> TxnError {
    TxnError::UnknownServerError {
        reason: format!("cannot fence {transactional_id:?}: its epoch is at i16::MAX"),
    }
}

/// A state no transactional id should rest in (Kafka: IllegalStateException).
fn illegal_state(transactional_id: &str, state: TxnState) -> TxnError {
    tracing::error!(transactional_id, %state, "transactional id rests in an illegal state");
    TxnError::UnknownServerError {
        reason: format!("transactional id {transactional_id:?} rests in state {state}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn_log::{TxnLogValue, read_batches};

    const EPOCH: i32 = 5;

    /// A coordinator of the only partition, loaded, with every write it
    /// asked for recorded in `log` once acknowledged.
    struct Harness {
        txn: TxnCoordinator,
        log: Vec<TxnLogRecord>,
        next_producer_id: i64,
    }

    impl Harness {
        fn new() -> Harness {
            let mut txn = TxnCoordinator::new(0, 1, EPOCH, TxnConfig::default());
            assert!(txn.finish_loading(0).is_empty());
            Harness {
                txn,
                log: Vec::new(),
                next_producer_id: 1_000,
            }
        }

        fn init(
            &mut self,
            id: &str,
            expected: Option<(i64, i16)>,
            now: i64,
        ) -> Outcome<ProducerIdAndEpoch> {
            let (producer_id, producer_epoch) = expected.unwrap_or((-1, -1));
            let request = InitProducerIdRequest {
                transactional_id: id.to_owned(),
                transaction_timeout_ms: 60_000,
                producer_id,
                producer_epoch,
            };
            let next = &mut self.next_producer_id;
            self.txn.init_producer_id(&request, now, &mut || {
                *next += 1;
                Ok(*next)
            })
        }

        /// Acknowledges a write, as the host does once it is replicated.
        fn ack(&mut self, write: Persist, now: i64) -> Persisted {
            // The record survives the batch format.
            let batch = write.batch(now).unwrap();
            let loaded = read_batches(&batch, 1 << 20).unwrap();
            assert_eq!(loaded.records[0].record, write.record);
            self.log.push(write.record);
            self.txn.persisted(write.token, Ok(()), now)
        }

        fn init_ok(
            &mut self,
            id: &str,
            expected: Option<(i64, i16)>,
            now: i64,
        ) -> ProducerIdAndEpoch {
            let write = persist(self.init(id, expected, now));
            match self.ack(write, now).reply {
                Reply::InitProducerId(Ok(pe)) => pe,
                other => panic!("{other:?}"),
            }
        }

        fn add(
            &mut self,
            id: &str,
            pe: ProducerIdAndEpoch,
            parts: &[(&str, i32)],
            now: i64,
        ) -> Outcome<()> {
            let parts: Vec<TopicPartition> =
                parts.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect();
            self.txn
                .add_partitions(id, pe.producer_id, pe.producer_epoch, &parts, now)
        }

        fn add_ok(&mut self, id: &str, pe: ProducerIdAndEpoch, parts: &[(&str, i32)], now: i64) {
            let write = persist(self.add(id, pe, parts, now));
            assert_eq!(self.ack(write, now).reply, Reply::Ack(Ok(())));
        }

        fn end(
            &mut self,
            id: &str,
            pe: ProducerIdAndEpoch,
            kind: MarkerKind,
            now: i64,
        ) -> Outcome<()> {
            self.txn
                .end_txn(id, pe.producer_id, pe.producer_epoch, kind, now)
        }

        /// EndTxn, persisted at `ack`.
        fn end_ok(
            &mut self,
            id: &str,
            pe: ProducerIdAndEpoch,
            kind: MarkerKind,
            now: i64,
            ack: i64,
        ) -> Persisted {
            let write = persist(self.end(id, pe, kind, now));
            self.ack(write, ack)
        }

        /// Writes the markers of `job` and persists the completion.
        fn complete(&mut self, job: &MarkerJob, now: i64) {
            let write = self
                .txn
                .markers_written(
                    &job.transactional_id,
                    job.producer_id,
                    job.producer_epoch,
                    now,
                )
                .unwrap();
            let done = self.ack(write, now);
            assert_eq!(done.reply, Reply::Internal);
            assert_eq!(done.marker_job, None);
        }

        fn state(&self, id: &str) -> TxnState {
            self.txn.describe(id).unwrap().state
        }

        /// A fresh coordinator loaded from everything logged so far.
        fn reloaded(&self, now: i64) -> (TxnCoordinator, Vec<MarkerJob>) {
            let mut txn = TxnCoordinator::new(0, 1, EPOCH + 1, TxnConfig::default());
            txn.load(self.log.iter().cloned());
            let jobs = txn.finish_loading(now);
            (txn, jobs)
        }
    }

    fn persist<T: std::fmt::Debug>(outcome: Outcome<T>) -> Persist {
        match outcome {
            Outcome::Persist(write) => write,
            Outcome::Done(other) => panic!("expected a write, got {other:?}"),
        }
    }

    fn done<T: std::fmt::Debug>(outcome: Outcome<T>) -> Result<T, TxnError> {
        match outcome {
            Outcome::Done(result) => result,
            Outcome::Persist(write) => panic!("expected an answer, got {write:?}"),
        }
    }

    fn pe(producer_id: i64, producer_epoch: i16) -> ProducerIdAndEpoch {
        ProducerIdAndEpoch {
            producer_id,
            producer_epoch,
        }
    }

    fn logged(write: &Persist) -> &TxnLogValue {
        write.record.value.as_ref().unwrap()
    }

    #[test]
    fn init_producer_id_allocates_then_bumps_the_epoch() {
        let mut h = Harness::new();
        let write = persist(h.init("tx", None, 10));
        assert_eq!(logged(&write).state, TxnState::Empty);
        assert_eq!(logged(&write).producer_epoch, 0);
        assert!(logged(&write).partitions.is_empty());
        assert_eq!(
            h.ack(write, 11).reply,
            Reply::InitProducerId(Ok(pe(1_001, 0)))
        );
        // A second producer with the same id: same producer id, next epoch.
        assert_eq!(h.init_ok("tx", None, 12), pe(1_001, 1));
        let d = h.txn.describe("tx").unwrap();
        assert_eq!(
            (d.state, d.producer_id, d.producer_epoch),
            (TxnState::Empty, 1_001, 1)
        );
        assert_eq!(d.transaction_timeout_ms, 60_000);
    }

    #[test]
    fn init_producer_id_rejects_bad_requests() {
        let mut h = Harness::new();
        for timeout_ms in [0, 900_001] {
            let request = InitProducerIdRequest {
                transactional_id: "tx".into(),
                transaction_timeout_ms: timeout_ms,
                producer_id: -1,
                producer_epoch: -1,
            };
            assert_eq!(
                done(h.txn.init_producer_id(&request, 0, &mut || Ok(1))),
                Err(TxnError::InvalidTransactionTimeout {
                    timeout_ms,
                    max_ms: 900_000
                })
            );
        }
        assert!(matches!(
            done(h.init("", None, 0)),
            Err(TxnError::InvalidRequest { .. })
        ));
        assert!(matches!(
            done(h.init("tx", Some((5, -1)), 0)),
            Err(TxnError::InvalidRequest { .. })
        ));
        // The allocator's error is the answer; nothing is created.
        let request = InitProducerIdRequest {
            transactional_id: "tx".into(),
            transaction_timeout_ms: 1_000,
            producer_id: -1,
            producer_epoch: -1,
        };
        let unavailable = TxnError::CoordinatorNotAvailable {
            reason: "no producer id block".into(),
        };
        assert_eq!(
            done(
                h.txn
                    .init_producer_id(&request, 0, &mut || Err(unavailable.clone()))
            ),
            Err(unavailable)
        );
        assert!(matches!(
            h.txn.describe("tx"),
            Err(TxnError::TransactionalIdNotFound { .. })
        ));
    }

    #[test]
    fn loading_and_foreign_ids_are_refused() {
        let mut txn = TxnCoordinator::new(3, 50, EPOCH, TxnConfig::default());
        let id = (0..)
            .map(|i| format!("tx-{i}"))
            .find(|id| partition_for(id, 50) == 3)
            .unwrap();
        let other = (0..)
            .map(|i| format!("tx-{i}"))
            .find(|id| partition_for(id, 50) != 3)
            .unwrap();
        let request = |id: &str| InitProducerIdRequest {
            transactional_id: id.to_owned(),
            transaction_timeout_ms: 1_000,
            producer_id: -1,
            producer_epoch: -1,
        };
        assert_eq!(
            done(txn.init_producer_id(&request(&id), 0, &mut || Ok(1))),
            Err(TxnError::CoordinatorLoadInProgress { partition: 3 })
        );
        assert!(txn.list(&[], &[], -1, 0).is_err());
        txn.finish_loading(0);
        assert!(matches!(
            done(txn.init_producer_id(&request(&other), 0, &mut || Ok(1))),
            Err(TxnError::NotCoordinator { partition: 3, .. })
        ));
        assert!(matches!(
            txn.init_producer_id(&request(&id), 0, &mut || Ok(1)),
            Outcome::Persist(_)
        ));
    }

    #[test]
    fn a_pending_transition_yields_concurrent_transactions() {
        let mut h = Harness::new();
        let p = h.init_ok("tx", None, 0);
        let pending = persist(h.add("tx", p, &[("t", 0)], 1));
        assert!(matches!(
            done(h.init("tx", None, 2)),
            Err(TxnError::ConcurrentTransactions { .. })
        ));
        assert!(matches!(
            done(h.add("tx", p, &[("t", 1)], 2)),
            Err(TxnError::ConcurrentTransactions { .. })
        ));
        assert!(matches!(
            done(h.end("tx", p, MarkerKind::Commit, 2)),
            Err(TxnError::ConcurrentTransactions { .. })
        ));
        assert!(matches!(
            h.txn
                .verify_partitions("tx", p.producer_id, p.producer_epoch, &[("t".into(), 0)]),
            Err(TxnError::TransactionAbortable { .. })
        ));
        // Nothing applies before the acknowledgement.
        assert_eq!(h.state("tx"), TxnState::Empty);
        assert_eq!(h.ack(pending, 3).reply, Reply::Ack(Ok(())));
        assert_eq!(h.state("tx"), TxnState::Ongoing);
    }

    #[test]
    fn commit_cycle_goes_through_prepare_markers_and_complete() {
        let mut h = Harness::new();
        let p = h.init_ok("tx", None, 0);
        h.add_ok("tx", p, &[("t", 0), ("t", 1)], 100);
        // Partitions already in the transaction: answered at once.
        assert_eq!(done(h.add("tx", p, &[("t", 1)], 101)), Ok(()));
        h.add_ok("tx", p, &[("u", 0)], 102);
        let d = h.txn.describe("tx").unwrap();
        assert_eq!(d.transaction_start_time_ms, 100);
        assert_eq!(
            d.topics,
            vec![("t".to_owned(), vec![0, 1]), ("u".to_owned(), vec![0])]
        );

        let write = persist(h.end("tx", p, MarkerKind::Commit, 200));
        assert_eq!(logged(&write).state, TxnState::PrepareCommit);
        assert_eq!(logged(&write).partitions.len(), 3);
        let prepared = h.ack(write, 201);
        assert_eq!(prepared.reply, Reply::Ack(Ok(())));
        let job = prepared.marker_job.unwrap();
        assert_eq!(
            job,
            MarkerJob {
                transactional_id: "tx".into(),
                producer_id: p.producer_id,
                producer_epoch: p.producer_epoch,
                coordinator_epoch: EPOCH,
                kind: MarkerKind::Commit,
                partitions: vec![("t".into(), 0), ("t".into(), 1), ("u".into(), 0)],
            }
        );
        // While the markers are written everything waits.
        assert_eq!(h.state("tx"), TxnState::PrepareCommit);
        for outcome in [
            h.end("tx", p, MarkerKind::Commit, 202),
            h.add("tx", p, &[("v", 0)], 202),
        ] {
            assert!(matches!(
                done(outcome),
                Err(TxnError::ConcurrentTransactions { .. })
            ));
        }
        assert!(matches!(
            done(h.init("tx", None, 202)),
            Err(TxnError::ConcurrentTransactions { .. })
        ));
        // A stale report changes nothing.
        assert!(
            h.txn
                .markers_written("tx", p.producer_id, p.producer_epoch + 1, 203)
                .is_none()
        );

        let write = h
            .txn
            .markers_written("tx", p.producer_id, p.producer_epoch, 300)
            .unwrap();
        assert_eq!(logged(&write).state, TxnState::CompleteCommit);
        assert!(logged(&write).partitions.is_empty());
        assert!(
            h.txn
                .markers_written("tx", p.producer_id, p.producer_epoch, 300)
                .is_none()
        );
        assert_eq!(h.ack(write, 301).reply, Reply::Internal);
        let d = h.txn.describe("tx").unwrap();
        assert_eq!((d.state, d.topics.len()), (TxnState::CompleteCommit, 0));

        // A retried EndTxn whose result happened succeeds; the other fails.
        assert_eq!(done(h.end("tx", p, MarkerKind::Commit, 302)), Ok(()));
        assert!(matches!(
            done(h.end("tx", p, MarkerKind::Abort, 302)),
            Err(TxnError::InvalidTxnState {
                state: TxnState::CompleteCommit,
                ..
            })
        ));
        // The next transaction starts from CompleteCommit.
        h.add_ok("tx", p, &[("t", 2)], 400);
        assert_eq!(h.txn.describe("tx").unwrap().transaction_start_time_ms, 400);
    }

    #[test]
    fn abort_cycle_and_its_retries() {
        let mut h = Harness::new();
        let p = h.init_ok("tx", None, 0);
        h.add_ok("tx", p, &[("t", 0)], 10);
        let prepared = h.end_ok("tx", p, MarkerKind::Abort, 20, 21);
        assert_eq!(prepared.reply, Reply::Ack(Ok(())));
        let job = prepared.marker_job.unwrap();
        assert_eq!(job.kind, MarkerKind::Abort);
        assert!(matches!(
            done(h.end("tx", p, MarkerKind::Commit, 22)),
            Err(TxnError::ConcurrentTransactions { .. })
        ));
        h.complete(&job, 30);
        assert_eq!(h.state("tx"), TxnState::CompleteAbort);
        assert_eq!(done(h.end("tx", p, MarkerKind::Abort, 31)), Ok(()));
        assert!(matches!(
            done(h.end("tx", p, MarkerKind::Commit, 31)),
            Err(TxnError::InvalidTxnState { .. })
        ));
    }

    #[test]
    fn end_txn_errors() {
        let mut h = Harness::new();
        assert!(matches!(
            done(h.end("nobody", pe(1, 0), MarkerKind::Commit, 0)),
            Err(TxnError::InvalidProducerIdMapping { current: None, .. })
        ));
        let p = h.init_ok("tx", None, 0);
        // No transaction open (Empty): Kafka's INVALID_TXN_STATE.
        assert!(matches!(
            done(h.end("tx", p, MarkerKind::Commit, 1)),
            Err(TxnError::InvalidTxnState {
                state: TxnState::Empty,
                ..
            })
        ));
        assert!(matches!(
            done(h.end("tx", pe(p.producer_id + 1, 0), MarkerKind::Abort, 1)),
            Err(TxnError::InvalidProducerIdMapping {
                current: Some(1_001),
                ..
            })
        ));
        assert!(matches!(
            done(h.add("tx", pe(7, 0), &[("t", 0)], 1)),
            Err(TxnError::InvalidProducerIdMapping { .. })
        ));
        assert!(matches!(
            done(h.add("nobody", p, &[("t", 0)], 1)),
            Err(TxnError::InvalidProducerIdMapping { current: None, .. })
        ));
    }

    #[test]
    fn a_second_producer_fences_the_first() {
        let mut h = Harness::new();
        let old = h.init_ok("tx", None, 0);
        h.add_ok("tx", old, &[("t", 0)], 10);
        // The new producer's InitProducerId aborts the open transaction at
        // a bumped epoch and asks the new producer to retry.
        let write = persist(h.init("tx", None, 20));
        assert_eq!(logged(&write).state, TxnState::PrepareAbort);
        assert_eq!(logged(&write).producer_epoch, old.producer_epoch + 1);
        let fenced = h.ack(write, 21);
        assert!(matches!(
            fenced.reply,
            Reply::InitProducerId(Err(TxnError::ConcurrentTransactions { .. }))
        ));
        let job = fenced.marker_job.unwrap();
        assert_eq!((job.kind, job.producer_epoch), (MarkerKind::Abort, 1));
        // The zombie is fenced, whatever it tries.
        let expect_fenced = |result: Result<(), TxnError>| match result {
            Err(TxnError::ProducerFenced {
                request_epoch: 0,
                current_epoch: 1,
                ..
            }) => {}
            other => panic!("{other:?}"),
        };
        expect_fenced(done(h.add("tx", old, &[("t", 1)], 22)));
        expect_fenced(done(h.end("tx", old, MarkerKind::Commit, 22)));
        // Old EndTxn versions see INVALID_PRODUCER_EPOCH.
        let error = done(h.end("tx", old, MarkerKind::Commit, 22)).unwrap_err();
        assert!(matches!(
            error.for_version(crate::TxnApi::EndTxn, 1),
            TxnError::InvalidProducerEpoch { .. }
        ));
        // The new producer retries once the abort completes.
        assert!(matches!(
            done(h.init("tx", None, 23)),
            Err(TxnError::ConcurrentTransactions { .. })
        ));
        h.complete(&job, 30);
        let new = h.init_ok("tx", None, 31);
        assert_eq!(new, pe(old.producer_id, 2));
        expect_fenced_stale(h.txn.verify_partitions("tx", old.producer_id, 0, &[]));
        // KIP-360: the zombie cannot recover with its stale epoch either.
        assert!(matches!(
            done(h.init("tx", Some((old.producer_id, 0)), 32)),
            Err(TxnError::ProducerFenced { .. })
        ));
    }

    fn expect_fenced_stale(result: Result<(), TxnError>) {
        assert!(
            matches!(result, Err(TxnError::ProducerFenced { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn a_failed_fence_keeps_the_old_producer_fenced_without_bumping_twice() {
        let mut h = Harness::new();
        let old = h.init_ok("tx", None, 0);
        h.add_ok("tx", old, &[("t", 0)], 10);
        let write = persist(h.init("tx", None, 20));
        let unavailable = TxnError::CoordinatorNotAvailable {
            reason: "timeout".into(),
        };
        let failed = h.txn.persisted(write.token, Err(unavailable.clone()), 21);
        assert_eq!(failed.reply, Reply::InitProducerId(Err(unavailable)));
        assert_eq!(failed.marker_job, None);
        assert_eq!(h.state("tx"), TxnState::Ongoing);
        expect_fenced_stale(done(h.add("tx", old, &[("t", 1)], 22)));
        // The next fence reuses the bumped epoch.
        let write = persist(h.init("tx", None, 23));
        assert_eq!(logged(&write).producer_epoch, 1);
        let job = h.ack(write, 24).marker_job.unwrap();
        h.complete(&job, 25);
        assert_eq!(h.init_ok("tx", None, 26), pe(old.producer_id, 2));
    }

    #[test]
    fn timed_out_transactions_are_aborted_at_a_bumped_epoch() {
        let mut h = Harness::new();
        let p = h.init_ok("tx", None, 0);
        let idle = h.init_ok("idle", None, 0);
        h.add_ok("tx", p, &[("t", 0)], 1_000);
        // Timeout 60 s: not before start + timeout has passed.
        assert!(h.txn.abort_timed_out(61_000).is_empty());
        let mut writes = h.txn.abort_timed_out(61_001);
        assert_eq!(writes.len(), 1);
        let write = writes.remove(0);
        assert_eq!(write.record.transactional_id, "tx");
        assert_eq!(logged(&write).state, TxnState::PrepareAbort);
        assert_eq!(logged(&write).producer_epoch, 1);
        // In flight: not aborted twice.
        assert!(h.txn.abort_timed_out(70_000).is_empty());
        let aborted = h.ack(write, 61_002);
        assert_eq!(aborted.reply, Reply::Internal);
        let job = aborted.marker_job.unwrap();
        assert_eq!((job.kind, job.producer_epoch), (MarkerKind::Abort, 1));
        h.complete(&job, 61_003);
        // The producer learns on its next call that it was fenced.
        expect_fenced_stale(done(h.end("tx", p, MarkerKind::Commit, 61_004)));
        assert_eq!(h.state("idle"), TxnState::Empty);
        assert_eq!(
            h.txn.describe("idle").unwrap().producer_epoch,
            idle.producer_epoch
        );
    }

    #[test]
    fn idle_transactional_ids_expire() {
        let mut h = Harness::new();
        let expiration = TxnConfig::default().transactional_id_expiration_ms;
        let p = h.init_ok("idle", None, 0);
        let q = h.init_ok("busy", None, 0);
        h.add_ok("busy", q, &[("t", 0)], 10);
        assert!(h.txn.expire_transactional_ids(expiration - 1).is_empty());
        // A failed tombstone keeps the id.
        let mut writes = h.txn.expire_transactional_ids(expiration);
        assert_eq!(writes.len(), 1);
        let write = writes.remove(0);
        assert_eq!(write.record.transactional_id, "idle");
        let _ = h.txn.persisted(
            write.token,
            Err(TxnError::NotCoordinator {
                transactional_id: "idle".into(),
                partition: 0,
            }),
            expiration,
        );
        assert_eq!(h.state("idle"), TxnState::Empty);
        let mut writes = h.txn.expire_transactional_ids(expiration + 1);
        assert_eq!(writes.len(), 1);
        let write = writes.remove(0);
        assert_eq!(
            (write.record.value.as_ref(), write.value.as_ref()),
            (None, None)
        );
        assert_eq!(h.ack(write, expiration + 1).reply, Reply::Internal);
        assert!(matches!(
            h.txn.describe("idle"),
            Err(TxnError::TransactionalIdNotFound { .. })
        ));
        assert!(matches!(
            done(h.end("idle", p, MarkerKind::Commit, expiration + 2)),
            Err(TxnError::InvalidProducerIdMapping { .. })
        ));
        // The Ongoing transaction is not expired (it times out instead).
        assert_eq!(h.state("busy"), TxnState::Ongoing);
        // A reloaded coordinator agrees: the tombstone removed the id.
        let (reloaded, _) = h.reloaded(expiration + 3);
        assert!(reloaded.describe("idle").is_err());
    }

    #[test]
    fn loading_mid_prepare_commit_resumes_the_markers() {
        let mut h = Harness::new();
        let p = h.init_ok("committing", None, 0);
        h.add_ok("committing", p, &[("t", 0), ("u", 3)], 10);
        let prepared = h.end_ok("committing", p, MarkerKind::Commit, 20, 21);
        assert!(prepared.marker_job.is_some());
        let q = h.init_ok("open", None, 30);
        h.add_ok("open", q, &[("t", 1)], 31);
        h.init_ok("gone", None, 32);
        h.log.push(TxnLogRecord {
            transactional_id: "gone".into(),
            value: None,
        });
        // The broker fails over before the markers are written.
        let (mut txn, jobs) = h.reloaded(100);
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!(job.transactional_id, "committing");
        assert_eq!(
            (job.kind, job.coordinator_epoch),
            (MarkerKind::Commit, EPOCH + 1)
        );
        assert_eq!(job.partitions, vec![("t".into(), 0), ("u".into(), 3)]);
        assert_eq!(job.producer_id, p.producer_id);
        assert!(matches!(
            done(txn.end_txn(
                "committing",
                p.producer_id,
                p.producer_epoch,
                MarkerKind::Commit,
                101
            )),
            Err(TxnError::ConcurrentTransactions { .. })
        ));
        let write = txn
            .markers_written("committing", p.producer_id, p.producer_epoch, 110)
            .unwrap();
        assert_eq!(logged(&write).state, TxnState::CompleteCommit);
        let _ = txn.persisted(write.token, Ok(()), 111);
        assert_eq!(
            txn.describe("committing").unwrap().state,
            TxnState::CompleteCommit
        );
        // The open transaction and its partitions survive; the tombstone wins.
        let open = txn.describe("open").unwrap();
        assert_eq!((open.state, open.topics.len()), (TxnState::Ongoing, 1));
        assert_eq!(open.transaction_start_time_ms, 31);
        assert!(txn.describe("gone").is_err());
        // The last epoch is not logged (as in Kafka); the epoch is.
        assert_eq!(
            txn.describe("open").unwrap().producer_epoch,
            q.producer_epoch
        );
    }

    #[test]
    fn requests_wait_for_loading_and_prepare_epoch_fence_loads_as_ongoing() {
        let value = TxnLogValue {
            producer_id: 9,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 4,
            transaction_timeout_ms: 1_000,
            state: TxnState::PrepareEpochFence,
            partitions: [("t".to_owned(), 0)].into_iter().collect(),
            last_update_timestamp_ms: 5,
            start_timestamp_ms: 5,
            client_transaction_version: 0,
        };
        let mut txn = TxnCoordinator::new(0, 1, EPOCH, TxnConfig::default());
        txn.load([TxnLogRecord {
            transactional_id: "tx".into(),
            value: Some(value),
        }]);
        assert!(matches!(
            done(txn.end_txn("tx", 9, 4, MarkerKind::Commit, 6)),
            Err(TxnError::CoordinatorLoadInProgress { .. })
        ));
        assert!(txn.abort_timed_out(10_000).is_empty());
        assert!(txn.finish_loading(6).is_empty());
        assert_eq!(txn.describe("tx").unwrap().state, TxnState::Ongoing);
        let writes = txn.abort_timed_out(10_000);
        assert_eq!(writes[0].record.value.as_ref().unwrap().producer_epoch, 5);
    }

    #[test]
    fn kip_360_retries_and_recovery() {
        let mut h = Harness::new();
        let first = h.init_ok("tx", None, 0);
        // The producer recovers from an abortable error with its own epoch.
        let second = h.init_ok("tx", Some((first.producer_id, first.producer_epoch)), 1);
        assert_eq!(second, pe(first.producer_id, 1));
        // Its answer was lost; the retry carries the epoch it had before.
        let retried = h.init_ok("tx", Some((first.producer_id, first.producer_epoch)), 2);
        assert_eq!(retried, second);
        // A stale epoch, or another producer id, is fenced.
        assert!(matches!(
            done(h.init("tx", Some((first.producer_id, 7)), 3)),
            Err(TxnError::ProducerFenced { .. })
        ));
        assert!(matches!(
            done(h.init("tx", Some((55, 0)), 3)),
            Err(TxnError::ProducerFenced { .. })
        ));
        // A producer recovering with an unknown-to-us id on a new
        // transactional id gets the freshly allocated one.
        assert_eq!(h.init_ok("new", Some((77, 3)), 4), pe(1_002, 0));
    }

    #[test]
    fn an_exhausted_epoch_rotates_the_producer_id() {
        let mut txn = TxnCoordinator::new(0, 1, EPOCH, TxnConfig::default());
        txn.load([TxnLogRecord {
            transactional_id: "tx".into(),
            value: Some(TxnLogValue {
                producer_id: 9,
                previous_producer_id: -1,
                next_producer_id: -1,
                producer_epoch: i16::MAX - 1,
                transaction_timeout_ms: 1_000,
                state: TxnState::CompleteCommit,
                partitions: BTreeSet::new(),
                last_update_timestamp_ms: 5,
                start_timestamp_ms: 5,
                client_transaction_version: 0,
            }),
        }]);
        let _ = txn.finish_loading(6);
        let request = InitProducerIdRequest {
            transactional_id: "tx".into(),
            transaction_timeout_ms: 1_000,
            producer_id: 9,
            producer_epoch: i16::MAX - 1,
        };
        let write = persist(txn.init_producer_id(&request, 7, &mut || Ok(10)));
        // The old producer id is logged (PreviousProducerId, tag 0).
        assert_eq!(logged(&write).previous_producer_id, 9);
        let reply = txn.persisted(write.token, Ok(()), 8).reply;
        assert_eq!(reply, Reply::InitProducerId(Ok(pe(10, 0))));
        // The retry of that rotation (old id, exhausted epoch), whose answer
        // was lost, gets the same answer again (KIP-360).
        let retry = persist(txn.init_producer_id(&request, 10, &mut || Ok(11)));
        let reply = txn.persisted(retry.token, Ok(()), 11).reply;
        assert_eq!(reply, Reply::InitProducerId(Ok(pe(10, 0))));
        // Across a failover the last epoch is lost (it is not logged), so
        // the retry is fenced, as in Kafka.
        let mut reloaded = TxnCoordinator::new(0, 1, EPOCH + 1, TxnConfig::default());
        reloaded.load([write.record.clone()]);
        let _ = reloaded.finish_loading(12);
        assert!(matches!(
            done(reloaded.init_producer_id(&request, 12, &mut || Ok(11))),
            Err(TxnError::ProducerFenced { .. })
        ));
    }

    #[test]
    fn a_stale_epoch_is_fenced_even_when_the_epoch_is_exhausted() {
        let mut txn = TxnCoordinator::new(0, 1, EPOCH, TxnConfig::default());
        txn.load([TxnLogRecord {
            transactional_id: "tx".into(),
            value: Some(TxnLogValue {
                producer_id: 9,
                previous_producer_id: -1,
                next_producer_id: -1,
                producer_epoch: i16::MAX,
                transaction_timeout_ms: 1_000,
                state: TxnState::CompleteAbort,
                partitions: BTreeSet::new(),
                last_update_timestamp_ms: 5,
                start_timestamp_ms: 5,
                client_transaction_version: 0,
            }),
        }]);
        assert!(txn.finish_loading(6).is_empty());
        assert!(txn.finish_loading(6).is_empty());
        let request = InitProducerIdRequest {
            transactional_id: "tx".into(),
            transaction_timeout_ms: 1_000,
            producer_id: 9,
            producer_epoch: 3,
        };
        assert!(matches!(
            done(txn.init_producer_id(&request, 7, &mut || Ok(10))),
            Err(TxnError::ProducerFenced {
                request_epoch: 3,
                current_epoch: i16::MAX,
                ..
            })
        ));
        // At i16::MAX (after a fence), a new producer rotates the id.
        let request = InitProducerIdRequest {
            producer_id: -1,
            producer_epoch: -1,
            ..request
        };
        let write = persist(txn.init_producer_id(&request, 8, &mut || Ok(10)));
        assert_eq!(logged(&write).producer_id, 10);
    }

    #[test]
    fn failed_writes_are_answered_and_forgotten() {
        let mut h = Harness::new();
        let write = persist(h.init("tx", None, 0));
        let error = TxnError::NotCoordinator {
            transactional_id: "tx".into(),
            partition: 0,
        };
        assert_eq!(
            h.txn.persisted(write.token, Err(error.clone()), 1).reply,
            Reply::InitProducerId(Err(error.clone()))
        );
        // Reported twice: ignored.
        assert_eq!(
            h.txn.persisted(write.token, Ok(()), 1).reply,
            Reply::Internal
        );
        // The producer id allocated stays; the retry gets epoch 0.
        let p = h.init_ok("tx", None, 2);
        assert_eq!(p, pe(1_001, 0));
        let write = persist(h.add("tx", p, &[("t", 0)], 3));
        assert_eq!(
            h.txn.persisted(write.token, Err(error.clone()), 4).reply,
            Reply::Ack(Err(error))
        );
        assert_eq!(h.state("tx"), TxnState::Empty);
    }

    #[test]
    fn a_completion_write_is_retried_when_the_log_is_unavailable() {
        let mut h = Harness::new();
        let p = h.init_ok("tx", None, 0);
        h.add_ok("tx", p, &[("t", 0)], 1);
        let job = h
            .end_ok("tx", p, MarkerKind::Commit, 2, 3)
            .marker_job
            .unwrap();
        let write = h
            .txn
            .markers_written("tx", job.producer_id, job.producer_epoch, 4)
            .unwrap();
        let failed = h.txn.persisted(
            write.token,
            Err(TxnError::CoordinatorNotAvailable {
                reason: "not enough replicas".into(),
            }),
            5,
        );
        let retry = failed.retry.unwrap();
        assert_eq!(retry.record, write.record);
        assert_ne!(retry.token, write.token);
        assert!(matches!(
            done(h.init("tx", None, 6)),
            Err(TxnError::ConcurrentTransactions { .. })
        ));
        assert_eq!(h.ack(retry, 7).reply, Reply::Internal);
        assert_eq!(h.state("tx"), TxnState::CompleteCommit);
    }

    #[test]
    fn verify_partitions_checks_the_ongoing_transaction() {
        let mut h = Harness::new();
        let p = h.init_ok("tx", None, 0);
        let t0 = ("t".to_owned(), 0);
        let t1 = ("t".to_owned(), 1);
        assert!(matches!(
            h.txn.verify_partitions(
                "tx",
                p.producer_id,
                p.producer_epoch,
                std::slice::from_ref(&t0)
            ),
            Err(TxnError::TransactionAbortable { .. })
        ));
        h.add_ok("tx", p, &[("t", 0)], 1);
        assert_eq!(
            h.txn.verify_partitions(
                "tx",
                p.producer_id,
                p.producer_epoch,
                std::slice::from_ref(&t0)
            ),
            Ok(())
        );
        match h
            .txn
            .verify_partitions("tx", p.producer_id, p.producer_epoch, &[t0, t1.clone()])
        {
            Err(TxnError::TransactionAbortable { missing, .. }) => assert_eq!(missing, vec![t1]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            h.txn.verify_partitions("tx", p.producer_id, 9, &[]),
            Err(TxnError::ProducerFenced { .. })
        ));
        assert!(matches!(
            h.txn.verify_partitions("nobody", 1, 0, &[]),
            Err(TxnError::InvalidProducerIdMapping { .. })
        ));
        let _ = h.end_ok("tx", p, MarkerKind::Commit, 2, 3);
        assert!(matches!(
            h.txn
                .verify_partitions("tx", p.producer_id, p.producer_epoch, &[]),
            Err(TxnError::ConcurrentTransactions { .. })
        ));
    }

    #[test]
    fn list_and_describe_filter_as_kafka() {
        let mut h = Harness::new();
        let a = h.init_ok("a", None, 0);
        h.add_ok("a", a, &[("t", 0)], 1_000);
        let b = h.init_ok("b", None, 0);
        let names = |list: TxnList| -> Vec<String> {
            list.transactions
                .into_iter()
                .map(|t| t.transactional_id)
                .collect()
        };
        assert_eq!(names(h.txn.list(&[], &[], -1, 2_000).unwrap()), ["a", "b"]);
        let ongoing = h
            .txn
            .list(&["Ongoing".into(), "Bogus".into()], &[], -1, 2_000)
            .unwrap();
        assert_eq!(ongoing.unknown_state_filters, ["Bogus"]);
        assert_eq!(
            ongoing.transactions,
            vec![TxnListing {
                transactional_id: "a".into(),
                producer_id: a.producer_id,
                state: TxnState::Ongoing
            }]
        );
        assert_eq!(
            names(h.txn.list(&[], &[b.producer_id], -1, 2_000).unwrap()),
            ["b"]
        );
        // KIP-994: running for longer than 1 s at t=2000: started at 1000 is
        // not (exactly 1 s); Empty ones (no start) always are.
        assert_eq!(
            names(h.txn.list(&["Ongoing".into()], &[], 1_000, 2_000).unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(
            names(h.txn.list(&["Ongoing".into()], &[], 999, 2_000).unwrap()),
            ["a"]
        );
        assert!(matches!(
            h.txn.describe("zz"),
            Err(TxnError::TransactionalIdNotFound { .. })
        ));
        assert!(matches!(
            h.txn.describe(""),
            Err(TxnError::InvalidRequest { .. })
        ));
    }

    #[test]
    fn the_log_replays_to_the_same_state() {
        let mut h = Harness::new();
        let p = h.init_ok("tx", None, 0);
        h.add_ok("tx", p, &[("t", 0)], 1);
        let job = h
            .end_ok("tx", p, MarkerKind::Abort, 2, 3)
            .marker_job
            .unwrap();
        h.complete(&job, 4);
        let q = h.init_ok("tx", Some((p.producer_id, p.producer_epoch)), 5);
        h.add_ok("tx", q, &[("u", 1), ("u", 2)], 6);
        let (reloaded, jobs) = h.reloaded(7);
        assert!(jobs.is_empty());
        assert_eq!(reloaded.describe("tx"), h.txn.describe("tx"));
    }

    mod model {
        //! Random request sequences: the invariants hold after every step,
        //! and replaying the acknowledged records reproduces the state.
        use super::*;
        use proptest::prelude::*;

        const IDS: [&str; 3] = ["a", "b", "c"];

        #[derive(Debug, Clone)]
        enum Op {
            Init { id: usize, recover: bool },
            Add { id: usize, partition: i32 },
            End { id: usize, commit: bool },
            Ack { ok: bool },
            Markers,
            Advance { ms: i64 },
            Timeouts,
            Expire,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..3usize, any::<bool>()).prop_map(|(id, recover)| Op::Init { id, recover }),
                (0..3usize, 0..3i32).prop_map(|(id, partition)| Op::Add { id, partition }),
                (0..3usize, any::<bool>()).prop_map(|(id, commit)| Op::End { id, commit }),
                prop::bool::weighted(0.85).prop_map(|ok| Op::Ack { ok }),
                Just(Op::Markers),
                (1..40_000i64).prop_map(|ms| Op::Advance { ms }),
                Just(Op::Timeouts),
                Just(Op::Expire),
            ]
        }

        struct Driver {
            h: Harness,
            now: i64,
            writes: std::collections::VecDeque<Persist>,
            jobs: Vec<MarkerJob>,
            producers: HashMap<String, ProducerIdAndEpoch>,
        }

        impl Driver {
            fn step(&mut self, op: Op) {
                match op {
                    Op::Init { id, recover } => {
                        let expected = if recover {
                            self.producers
                                .get(IDS[id])
                                .map(|p| (p.producer_id, p.producer_epoch))
                        } else {
                            None
                        };
                        if let Outcome::Persist(w) = self.h.init(IDS[id], expected, self.now) {
                            self.writes.push_back(w);
                        }
                    }
                    Op::Add { id, partition } => {
                        let Some(&p) = self.producers.get(IDS[id]) else {
                            return;
                        };
                        if let Outcome::Persist(w) =
                            self.h.add(IDS[id], p, &[("t", partition)], self.now)
                        {
                            self.writes.push_back(w);
                        }
                    }
                    Op::End { id, commit } => {
                        let Some(&p) = self.producers.get(IDS[id]) else {
                            return;
                        };
                        let kind = if commit {
                            MarkerKind::Commit
                        } else {
                            MarkerKind::Abort
                        };
                        if let Outcome::Persist(w) = self.h.end(IDS[id], p, kind, self.now) {
                            self.writes.push_back(w);
                        }
                    }
                    Op::Ack { ok } => {
                        let Some(w) = self.writes.pop_front() else {
                            return;
                        };
                        let id = w.record.transactional_id.clone();
                        let done = if ok {
                            self.h.ack(w, self.now)
                        } else {
                            let error = TxnError::CoordinatorNotAvailable {
                                reason: "test".into(),
                            };
                            self.h.txn.persisted(w.token, Err(error), self.now)
                        };
                        if let Reply::InitProducerId(Ok(p)) = done.reply {
                            self.producers.insert(id, p);
                        }
                        self.jobs.extend(done.marker_job);
                        self.writes.extend(done.retry);
                    }
                    Op::Markers => {
                        for job in std::mem::take(&mut self.jobs) {
                            let write = self.h.txn.markers_written(
                                &job.transactional_id,
                                job.producer_id,
                                job.producer_epoch,
                                self.now,
                            );
                            self.writes.extend(write);
                        }
                    }
                    Op::Advance { ms } => self.now += ms,
                    Op::Timeouts => {
                        let writes = self.h.txn.abort_timed_out(self.now);
                        self.writes.extend(writes);
                    }
                    Op::Expire => {
                        let writes = self.h.txn.expire_transactional_ids(self.now);
                        self.writes.extend(writes);
                    }
                }
            }

            fn check(&self) {
                let txn = &self.h.txn;
                // One write in flight per pending transition, and back.
                let tokens: Vec<u64> = txn
                    .txns
                    .values()
                    .filter_map(|m| m.pending.as_ref().and_then(|p| p.token))
                    .collect();
                assert_eq!(tokens.len(), txn.writes.len());
                assert!(tokens.iter().all(|t| txn.writes.contains_key(t)));
                for m in txn.txns.values() {
                    if m.state == TxnState::Empty {
                        assert!(m.partitions.is_empty());
                    }
                    if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                        assert!(
                            m.pending.is_some(),
                            "Prepare* without its completion pending"
                        );
                    }
                }
                // The log replays to what the coordinator has applied.
                let (reloaded, jobs) = self.h.reloaded(self.now);
                for (id, m) in &txn.txns {
                    let never_logged = m.producer_epoch == NO_PRODUCER_EPOCH;
                    if never_logged || m.has_failed_epoch_fence {
                        continue;
                    }
                    assert_eq!(reloaded.describe(id), txn.describe(id), "{id}");
                }
                for id in reloaded.txns.keys() {
                    assert!(txn.txns.contains_key(id), "{id} resurrected");
                }
                let prepared = txn
                    .txns
                    .values()
                    .filter(|m| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
                    .count();
                assert_eq!(jobs.len(), prepared);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn random_requests_keep_the_log_and_the_state_in_step(
                ops in proptest::collection::vec(op(), 1..200)
            ) {
                let mut driver = Driver {
                    h: Harness::new(),
                    now: 1,
                    writes: Default::default(),
                    jobs: Vec::new(),
                    producers: HashMap::new(),
                };
                for op in ops {
                    driver.step(op);
                    driver.check();
                }
            }
        }
    }
}
