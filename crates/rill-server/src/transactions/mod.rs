//! The transaction coordinator inside the broker: one rill-txn state
//! machine per `__transaction_state` partition this broker leads, fed
//! with requests and the clock; the records they ask to persist appended
//! to that partition and reported back once every in-sync replica has
//! them; the markers they hand out written into the transactions'
//! partitions (see `markers.rs`), then reported back too.
//!
//! A broker coordinates the transactional ids whose partition of
//! `__transaction_state` it leads: it loads a partition (read whole, at
//! its log end) when it becomes its leader, at the leader epoch that
//! becomes the coordinator epoch of the markers it writes, and resumes
//! writing the markers of transactions the log left half-ended.
//! [`TransactionsSlot`] holds the coordinators of the partitions led and
//! replaces one as its leadership changes.
//!
//! Thread-safe. Each coordinator's mutex is held for its state changes
//! only, never across an append's wait.

pub(crate) mod links;
pub(crate) mod markers;
pub(crate) mod verification;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};
use rill_partition::{FetchIsolation, TopicPartition};
use rill_storage::{Offset, now_ms};
use rill_txn::{
    MarkerJob, Outcome, Persist, Persisted, Reply, TXN_STATE_TOPIC, TxnConfig, TxnCoordinator,
    TxnError,
};

use crate::cluster::{ClusterNode, ReplicaManager};
use crate::config::TransactionsConfig;
use crate::groups::GroupsSlot;
use markers::{Delivered, LocalMarkers, Marker};

/// How long a write to `__transaction_state` may wait for the in-sync
/// replicas (Kafka's request.timeout.ms for its appends).
const PERSIST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a request may be held while its transactional id is
/// mid-change before it is answered CONCURRENT_TRANSACTIONS.
const CONCURRENT_HOLD: Duration = Duration::from_secs(1);

/// The pause before a failed completion record is written again.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Bytes read per step while loading a partition.
const LOAD_READ_BYTES: usize = 4 << 20;

/// What the coordinators work with.
#[derive(Clone)]
pub(crate) struct TransactionsDeps {
    pub replicas: Arc<ReplicaManager>,
    /// For the markers written into `__consumer_offsets`.
    pub groups: Arc<GroupsSlot>,
    /// How markers reach the leaders on other brokers.
    pub connector: rill_cluster::Connector,
}

impl std::fmt::Debug for TransactionsDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionsDeps").finish_non_exhaustive()
    }
}

/// The coordinator of the transactional ids of one `__transaction_state`
/// partition.
#[derive(Debug)]
pub(crate) struct Transactions {
    coordinator: Mutex<TxnCoordinator>,
    /// Woken whenever a state change is logged (or fails), for requests
    /// held while their transactional id was mid-change.
    changed: tokio::sync::Notify,
    partition: TopicPartition,
    slot: Weak<TransactionsSlot>,
}

/// The transaction coordinators of the partitions this broker leads.
#[derive(Debug)]
pub(crate) struct TransactionsSlot {
    /// By `__transaction_state` partition: its leader epoch and coordinator.
    current: RwLock<BTreeMap<i32, (i32, Arc<Transactions>)>>,
    /// Partitions of `__transaction_state` (as of the last change).
    partitions: RwLock<i32>,
    deps: TransactionsDeps,
    /// Connections to other brokers: markers to the leaders of their
    /// partitions, verifications to coordinators.
    links: links::BrokerLinks,
    config: TransactionsConfig,
    /// The cluster node, for where the leaders of marked partitions are;
    /// set once the node runs.
    node: OnceLock<Weak<ClusterNode>>,
    me: Weak<TransactionsSlot>,
}

impl TransactionsSlot {
    pub(crate) fn new(deps: TransactionsDeps, config: TransactionsConfig) -> Arc<TransactionsSlot> {
        Arc::new_cyclic(|me| TransactionsSlot {
            current: RwLock::new(BTreeMap::new()),
            partitions: RwLock::new(0),
            links: links::BrokerLinks::new(deps.connector.clone()),
            deps,
            config,
            node: OnceLock::new(),
            me: me.clone(),
        })
    }

    /// Tells the slot of the cluster node, once it runs.
    pub(crate) fn set_node(&self, node: &Arc<ClusterNode>) {
        let _ = self.node.set(Arc::downgrade(node)); // Set once, at start.
    }

    /// Connections to other brokers, for markers and verifications.
    pub(crate) fn links(&self) -> &links::BrokerLinks {
        &self.links
    }

    fn node(&self) -> Option<Arc<ClusterNode>> {
        self.node.get().and_then(Weak::upgrade)
    }

    fn txn_config(&self) -> TxnConfig {
        TxnConfig {
            transaction_max_timeout_ms: self.config.max_timeout_ms,
            transactional_id_expiration_ms: i64::from(self.config.id_expiration_ms),
        }
    }

    /// The coordinator of `transactional_id`, if this broker is it: else
    /// COORDINATOR_LOAD_IN_PROGRESS (`leads`: the metadata makes it the
    /// leader of the id's partition, which is still loading) or
    /// NOT_COORDINATOR.
    pub(crate) fn for_id(
        &self,
        transactional_id: &str,
        leads: bool,
    ) -> Result<Arc<Transactions>, ResponseError> {
        let partitions = *self.partitions.read();
        if partitions > 0 {
            let index = rill_txn::partition_for(transactional_id, partitions);
            if let Some((_, transactions)) = self.current.read().get(&index) {
                return Ok(Arc::clone(transactions));
            }
        }
        Err(if leads {
            ResponseError::CoordinatorLoadInProgress
        } else {
            ResponseError::NotCoordinator
        })
    }

    /// Every coordinator here (ListTransactions).
    pub(crate) fn all(&self) -> Vec<Arc<Transactions>> {
        self.current
            .read()
            .values()
            .map(|(_, t)| Arc::clone(t))
            .collect()
    }

    /// This broker now leads `led` (partition -> leader epoch) of the
    /// topic's `partitions`: coordinators of partitions no longer led are
    /// dropped, those newly led (or at a new epoch) loaded. Blocking.
    pub(crate) fn coordinate(&self, partitions: i32, led: BTreeMap<i32, i32>) {
        *self.partitions.write() = partitions;
        let kept: BTreeMap<i32, (i32, Arc<Transactions>)> = self
            .current
            .read()
            .iter()
            .filter(|(index, (epoch, _))| led.get(index) == Some(epoch))
            .map(|(index, entry)| (*index, entry.clone()))
            .collect();
        let mut next = kept;
        for (&index, &epoch) in &led {
            if next.contains_key(&index) {
                continue;
            }
            match self.load(index, partitions, epoch) {
                Ok((transactions, jobs)) => {
                    for job in jobs {
                        transactions.spawn_delivery(job);
                    }
                    next.insert(index, (epoch, transactions));
                }
                Err(error) => {
                    tracing::error!(partition = index, %error, "cannot load the transactions of {TXN_STATE_TOPIC}");
                }
            }
        }
        let loaded: Vec<i32> = next.keys().copied().collect();
        *self.current.write() = next;
        if !led.is_empty() {
            tracing::info!(partitions = ?loaded, "coordinating the transactions of these partitions");
        }
    }

    /// Reads partition `index` to its log end into a new coordinator.
    fn load(
        &self,
        index: i32,
        partitions: i32,
        epoch: i32,
    ) -> Result<(Arc<Transactions>, Vec<MarkerJob>), String> {
        let tp = TopicPartition::new(TXN_STATE_TOPIC, index);
        let partition = self
            .deps
            .replicas
            .partition(&tp)
            .ok_or_else(|| format!("{tp} is missing"))?;
        let mut coordinator = TxnCoordinator::new(index, partitions, epoch, self.txn_config());
        let mut next = partition.log_start_offset();
        let end = partition.log_end_offset();
        while next < end {
            let read = partition
                .read(next, LOAD_READ_BYTES, FetchIsolation::LogEnd, true)
                .map_err(|e| format!("reading {tp} at {next}: {e}"))?;
            let Some(last) = rill_record::Batches::new(&read.bytes).last() else {
                break;
            };
            let loaded = rill_txn::read_txn_batches(&read.bytes, LOAD_READ_BYTES)
                .map_err(|e| format!("reading {tp} at {next}: {e}"))?;
            coordinator.load(loaded.records.into_iter().map(|r| r.record));
            let after = Offset(last.next_offset());
            if after <= next {
                return Err(format!("{tp}: a batch ends at {after}, not past {next}"));
            }
            next = after;
        }
        let jobs = coordinator.finish_loading(now_ms());
        let transactions = Arc::new(Transactions {
            coordinator: Mutex::new(coordinator),
            changed: tokio::sync::Notify::new(),
            partition: tp,
            slot: self.me.clone(),
        });
        Ok((transactions, jobs))
    }

    /// Aborts transactions open past their timeout and removes idle
    /// transactional ids, as often as the transaction.* properties say,
    /// until `stop`.
    pub(crate) async fn run_timers(self: Arc<Self>, mut stop: crate::shutdown::Shutdown) {
        let abort_every = Duration::from_millis(self.config.abort_timed_out_interval_ms.max(1));
        let expire_every = Duration::from_millis(self.config.remove_expired_interval_ms.max(1));
        let mut aborts = tokio::time::interval(abort_every);
        let mut expiries = tokio::time::interval(expire_every);
        aborts.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        expiries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = aborts.tick() => {
                    for transactions in self.all() {
                        let writes = transactions.coordinator.lock().abort_timed_out(now_ms());
                        for write in writes {
                            tracing::info!(record = ?write.record, "aborting a transaction open past its timeout");
                            transactions.spawn_persist(write);
                        }
                    }
                }
                _ = expiries.tick() => {
                    for transactions in self.all() {
                        let writes = transactions
                            .coordinator
                            .lock()
                            .expire_transactional_ids(now_ms());
                        for write in writes {
                            transactions.spawn_persist(write);
                        }
                    }
                }
                () = stop.wait() => return,
            }
        }
    }
}

/// The answer of a write acknowledging a request, or its refusal.
fn ack(reply: Reply) -> Result<(), TxnError> {
    match reply {
        Reply::Ack(result) => result,
        other => Err(TxnError::UnknownServerError {
            reason: format!("a transaction request was answered {other:?}"),
        }),
    }
}

impl Transactions {
    /// Runs `call` on the coordinator, then, if it asked for a write,
    /// makes it and reports it back; returns the client's answer.
    pub(crate) async fn run<T>(
        self: &Arc<Self>,
        mut call: impl FnMut(&mut TxnCoordinator, i64) -> Outcome<T>,
        answer: impl FnOnce(Reply) -> Result<T, TxnError>,
    ) -> Result<T, TxnError> {
        // A request that finds its transactional id mid-change (most often
        // the next transaction's first AddPartitionsToTxn while the last
        // one's markers are still being written) is held until the change
        // is logged rather than refused at once: clients retry
        // CONCURRENT_TRANSACTIONS only after a backoff (librdkafka's and
        // Java's 20 ms), longer than the change takes.
        let deadline = tokio::time::Instant::now() + CONCURRENT_HOLD;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let outcome = {
                let mut coordinator = self.coordinator.lock();
                call(&mut coordinator, now_ms())
            };
            match outcome {
                Outcome::Done(Err(TxnError::ConcurrentTransactions { .. }))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                Outcome::Done(result) => return result,
                Outcome::Persist(write) => {
                    let reply = self.persist(write).await;
                    return answer(reply);
                }
            }
        }
    }

    /// AddPartitionsToTxn and AddOffsetsToTxn: `partitions` join the
    /// producer's transaction once that is logged.
    pub(crate) async fn add_partitions(
        self: &Arc<Self>,
        transactional_id: &str,
        (producer_id, producer_epoch): (i64, i16),
        partitions: &[(String, i32)],
    ) -> Result<(), TxnError> {
        self.run(
            |coordinator, now| {
                coordinator.add_partitions(
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    partitions,
                    now,
                )
            },
            ack,
        )
        .await
    }

    /// EndTxn: answered once PrepareCommit or PrepareAbort is logged.
    pub(crate) async fn end(
        self: &Arc<Self>,
        transactional_id: &str,
        (producer_id, producer_epoch): (i64, i16),
        kind: rill_record::MarkerKind,
    ) -> Result<(), TxnError> {
        self.run(
            |coordinator, now| {
                coordinator.end_txn(transactional_id, producer_id, producer_epoch, kind, now)
            },
            ack,
        )
        .await
    }

    /// [`Transactions::run`] with `call` on the blocking pool (it may wait
    /// for the metadata quorum: a new block of producer ids).
    pub(crate) async fn run_blocking<T: Send + 'static>(
        self: &Arc<Self>,
        call: impl FnOnce(&mut TxnCoordinator, i64) -> Outcome<T> + Send + 'static,
        answer: impl FnOnce(Reply) -> Result<T, TxnError>,
    ) -> Result<T, TxnError> {
        let transactions = Arc::clone(self);
        let outcome = tokio::task::spawn_blocking(move || {
            let mut coordinator = transactions.coordinator.lock();
            call(&mut coordinator, now_ms())
        })
        .await
        .map_err(|join| TxnError::UnknownServerError {
            reason: join.to_string(),
        })?;
        match outcome {
            Outcome::Done(result) => result,
            Outcome::Persist(write) => {
                let reply = self.persist(write).await;
                answer(reply)
            }
        }
    }

    /// Reads the coordinator (describe, list, verify).
    pub(crate) fn with<T>(&self, read: impl FnOnce(&TxnCoordinator) -> T) -> T {
        read(&self.coordinator.lock())
    }

    /// Appends `write`, reports the outcome to the coordinator, starts
    /// what it asks next (markers, a retry) and returns its reply.
    async fn persist(self: &Arc<Self>, write: Persist) -> Reply {
        let result = self.append(&write).await;
        let persisted = self
            .coordinator
            .lock()
            .persisted(write.token, result, now_ms());
        self.changed.notify_waiters();
        self.follow_up(persisted)
    }

    /// Starts the markers and the retry a report asks for.
    fn follow_up(self: &Arc<Self>, persisted: Persisted) -> Reply {
        if let Some(job) = persisted.marker_job {
            self.spawn_delivery(job);
        }
        if let Some(retry) = persisted.retry {
            let transactions = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(RETRY_BACKOFF).await;
                transactions.spawn_persist(retry);
            });
        }
        persisted.reply
    }

    /// [`Transactions::persist`] in the background, for the coordinator's
    /// own writes (nobody to answer).
    fn spawn_persist(self: &Arc<Self>, write: Persist) {
        let transactions = Arc::clone(self);
        tokio::spawn(async move {
            let _ = transactions.persist(write).await; // Internal: no reply.
        });
    }

    /// Appends one record to this coordinator's partition, as its leader
    /// at the coordinator epoch, and waits until the ISR has it.
    async fn append(&self, write: &Persist) -> Result<(), TxnError> {
        let Some(slot) = self.slot.upgrade() else {
            return Err(self.not_coordinator());
        };
        let replicas = &slot.deps.replicas;
        let epoch = self.coordinator.lock().coordinator_epoch();
        let (partition, leader_epoch) = replicas
            .leader_partition(&self.partition, -1)
            .map_err(|_| self.not_coordinator())?;
        if leader_epoch != epoch {
            return Err(self.not_coordinator());
        }
        let unavailable = |reason: String| TxnError::CoordinatorNotAvailable { reason };
        let batch = write
            .batch(now_ms())
            .map_err(|e| TxnError::UnknownServerError {
                reason: e.to_string(),
            })?;
        if !replicas.has_enough_replicas(&self.partition) {
            return Err(unavailable("not enough in-sync replicas".to_string()));
        }
        let ticket = partition
            .append(&batch, leader_epoch, now_ms())
            .map_err(|e| unavailable(e.to_string()))?;
        let info = ticket.await.map_err(|e| unavailable(e.to_string()))?;
        replicas.notify(&self.partition);
        let deadline = tokio::time::Instant::now() + PERSIST_TIMEOUT;
        match replicas
            .replicated(&self.partition, info.last_offset, true, deadline)
            .await
        {
            Ok(()) => Ok(()),
            Err(ResponseError::NotLeaderOrFollower) => Err(self.not_coordinator()),
            Err(error) => Err(unavailable(format!("{error:?}"))),
        }
    }

    fn not_coordinator(&self) -> TxnError {
        TxnError::NotCoordinator {
            transactional_id: String::new(),
            partition: self.partition.partition,
        }
    }

    /// Writes a job's markers in the background, then logs the
    /// transaction complete.
    fn spawn_delivery(self: &Arc<Self>, job: MarkerJob) {
        let transactions = Arc::clone(self);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(
                transactional_id = job.transactional_id,
                "no runtime to write transaction markers on"
            );
            return;
        };
        runtime.spawn(async move { transactions.deliver(job).await });
    }

    async fn deliver(self: Arc<Self>, job: MarkerJob) {
        let Some(slot) = self.slot.upgrade() else {
            return;
        };
        let Some(node) = slot.node() else {
            return;
        };
        let marker = Marker {
            producer_id: job.producer_id,
            producer_epoch: job.producer_epoch,
            coordinator_epoch: job.coordinator_epoch,
            kind: job.kind,
        };
        let partitions = markers::topic_partitions(job.partitions.clone());
        let local = LocalMarkers {
            replicas: &slot.deps.replicas,
            groups: &slot.deps.groups,
        };
        let delivered = markers::deliver(
            local,
            &node,
            &slot.links,
            (marker, partitions),
            node.stopping(),
        )
        .await;
        if delivered != Delivered::All {
            return;
        }
        let complete = self.coordinator.lock().markers_written(
            &job.transactional_id,
            job.producer_id,
            job.producer_epoch,
            now_ms(),
        );
        if let Some(write) = complete {
            let _ = self.persist(write).await; // Internal: no reply.
        }
    }
}
