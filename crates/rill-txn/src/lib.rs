//! rill-txn owns Kafka's transaction coordinator (KIP-98, with KIP-360's
//! producer-id recovery and KIP-447's fencing; transaction protocol
//! version 1): the state machine of every transactional id — producer id
//! and epoch, the partitions of its open transaction, commit and abort
//! through Prepare* and Complete*, epoch fencing of zombies, timeouts and
//! expiry — kept free of I/O so it can be tested by itself, and the
//! records that make it durable in the internal compacted topic
//! `__transaction_state` (Kafka's own key and value schemas).
//!
//! The network front end drives it: it feeds requests and the clock in,
//! appends the records it asks to persist and reports them back once
//! replicated, writes the transaction markers it hands out (control
//! batches, see `rill_record::end_txn_marker`) and reports those back too.
//! See [`TxnCoordinator`] for the exact sequence and docs/transactions.md
//! for the states and the record format.
//!
//! ```
//! use rill_record::MarkerKind;
//! use rill_txn::{InitProducerIdRequest, Outcome, Reply, TxnConfig, TxnCoordinator};
//!
//! let mut txn = TxnCoordinator::new(0, 1, 3, TxnConfig::default());
//! txn.finish_loading(0);
//! let init = InitProducerIdRequest {
//!     transactional_id: "tx".into(), transaction_timeout_ms: 60_000,
//!     producer_id: -1, producer_epoch: -1,
//! };
//! let Outcome::Persist(w) = txn.init_producer_id(&init, 10, &mut || Ok(1000)) else { panic!() };
//! let _ = txn.persisted(w.token, Ok(()), 11);
//! let Outcome::Persist(w) = txn.add_partitions("tx", 1000, 0, &[("t".into(), 0)], 12)
//! else { panic!() };
//! assert_eq!(txn.persisted(w.token, Ok(()), 13).reply, Reply::Ack(Ok(())));
//! let Outcome::Persist(w) = txn.end_txn("tx", 1000, 0, MarkerKind::Commit, 14) else { panic!() };
//! let done = txn.persisted(w.token, Ok(()), 15); // PrepareCommit is durable
//! assert_eq!(done.reply, Reply::Ack(Ok(())));    // answer EndTxn now
//! let job = done.marker_job.unwrap();            // write commit markers to t-0
//! let w = txn.markers_written(&job.transactional_id, job.producer_id, job.producer_epoch, 16)
//!     .unwrap();                                 // CompleteCommit record
//! let _ = txn.persisted(w.token, Ok(()), 17);
//! assert_eq!(txn.describe("tx").unwrap().state, rill_txn::TxnState::CompleteCommit);
//! ```

mod api;
mod config;
mod coordinator;
mod error;
mod metadata;
mod state;
mod txn_log;

pub use api::{
    InitProducerIdRequest, MarkerJob, Outcome, Persist, PersistToken, Persisted,
    ProducerIdAndEpoch, Reply, TxnDescription, TxnList, TxnListing,
};
pub use config::TxnConfig;
pub use coordinator::TxnCoordinator;
pub use error::{TxnApi, TxnError};
pub use state::TxnState;
pub use txn_log::{
    LoadedTxnBatches, LoadedTxnRecord, STRING_BYTES_MAX, TRANSACTION_STATE_LOG_MIN_ISR_DEFAULT,
    TRANSACTION_STATE_LOG_NUM_PARTITIONS_DEFAULT, TRANSACTION_STATE_LOG_REPLICATION_FACTOR_DEFAULT,
    TRANSACTION_STATE_LOG_SEGMENT_BYTES_DEFAULT, TXN_LOG_KEY_VERSION, TXN_LOG_VALUE_VERSION,
    TXN_LOG_VALUE_VERSION_MAX, TXN_STATE_TOPIC, TopicPartition, TxnLogBatchError,
    TxnLogDecodeError, TxnLogEncodeError, TxnLogRecord, TxnLogValue, batch as txn_batch,
    decode_key as decode_txn_key, encode_key as encode_txn_key, partition_for,
    read_batches as read_txn_batches,
};
