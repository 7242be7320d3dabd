//! KIP-890 part 1 on a partition's leader: a producer's first
//! transactional batch in a partition is written only once its
//! transaction coordinator says the partition is in the producer's
//! ongoing transaction, so that a producer that skipped
//! AddPartitionsToTxn, or a late batch of a transaction that has ended,
//! cannot leave records no marker will ever end (a hanging transaction,
//! which would hold the last stable offset back for good).
//!
//! The partition hands out a verification guard first ([`check`]); the
//! coordinator is asked — directly when it runs on this broker, else with
//! AddPartitionsToTxn v5 `verify_only` ([`ask_coordinator`]); the batch is
//! then written with the guard, which a marker for the producer arriving
//! meanwhile has taken back (`rill_partition::VerificationGuard`). Later
//! batches of the same transaction find it open and ask nobody.
//!
//! The coordinator's answers reach the producer as Kafka's leaders pass
//! them on ([`for_produce`]).

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rill_partition::{Partition, TopicPartition, VerificationGuard};
use rill_storage::now_ms;
use rill_txn::TxnApi;

use crate::broker::Broker;
use crate::coordinators::CoordinatorKind;
use crate::error_code;

/// The AddPartitionsToTxn version a leader verifies with: v5 answers
/// TRANSACTION_ABORTABLE for a partition not in the transaction.
pub(crate) const VERIFY_VERSION: i16 = 5;

/// How long asking a coordinator on another broker may take (Kafka's
/// request.timeout.ms between brokers).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a leader does with a producer's transactional batch.
#[derive(Debug)]
pub(crate) enum Check {
    /// Write it with this guard: its transaction is open here, or the
    /// coordinator on this broker has the partition in it.
    Append(VerificationGuard),
    /// Ask the coordinator on another broker, then write it with this
    /// guard if the partition is in the transaction.
    AskCoordinator(VerificationGuard),
    /// Refuse it with this error (for the produce request's version).
    Refused(ResponseError),
}

/// Starts verifying the batch of `producer` (id, epoch) for `partition`
/// (`tp`) in `transactional_id`'s transaction, for a produce request of
/// `version`.
pub(crate) fn check(
    broker: &Broker,
    transactional_id: &str,
    (partition, tp): (&Partition, &TopicPartition),
    (producer_id, epoch): (i64, i16),
    version: i16,
) -> Check {
    let guard = partition.start_verification(producer_id, epoch, now_ms());
    if guard.is_open_transaction() {
        return Check::Append(guard);
    }
    match verify_here(broker, transactional_id, (producer_id, epoch), tp) {
        Ok(()) => Check::Append(guard),
        Err(ResponseError::NotCoordinator) => Check::AskCoordinator(guard),
        Err(error) => {
            tracing::debug!(partition = %tp, ?error, "a transactional batch failed verification");
            partition.abandon_verification(producer_id, guard);
            Check::Refused(for_produce(error, version))
        }
    }
}

/// Asks the coordinator on this broker whether `tp` is in the ongoing
/// transaction of `transactional_id` at this producer id and epoch:
/// NOT_COORDINATOR if the id is coordinated elsewhere.
pub(crate) fn verify_here(
    broker: &Broker,
    transactional_id: &str,
    (producer_id, epoch): (i64, i16),
    tp: &TopicPartition,
) -> Result<(), ResponseError> {
    let transactions = broker.transactions_for(transactional_id)?;
    let wanted = [(tp.topic.to_string(), tp.partition)];
    transactions
        .with(|coordinator| {
            coordinator.verify_partitions(transactional_id, producer_id, epoch, &wanted)
        })
        .map_err(|error| error_code::for_txn(error, TxnApi::AddPartitionsToTxn, VERIFY_VERSION))
}

/// Asks the coordinator of `transactional_id`, on another broker, whether
/// each of `partitions` is in the producer's ongoing transaction; answers
/// each, in order, with the coordinator's error (NETWORK_EXCEPTION if it
/// could not be asked).
pub(crate) async fn ask_coordinator(
    broker: &Broker,
    transactional_id: &str,
    (producer_id, epoch): (i64, i16),
    partitions: &[TopicPartition],
) -> Vec<Result<(), ResponseError>> {
    match broker.coordinator(CoordinatorKind::Transaction, transactional_id) {
        // The coordinator moved here meanwhile.
        Ok((node, _)) if node == broker.config().node_id => partitions
            .iter()
            .map(|tp| verify_here(broker, transactional_id, (producer_id, epoch), tp))
            .collect(),
        Ok((node, address)) => {
            let address = format!("{}:{}", address.host, address.port);
            let request = verify_request(transactional_id, (producer_id, epoch), partitions);
            let response: Result<AddPartitionsToTxnResponse, _> = broker
                .transactions()
                .links()
                .call(
                    (&address, broker.config().node_id),
                    (ApiKey::AddPartitionsToTxn, VERIFY_VERSION),
                    &request,
                    VERIFY_TIMEOUT,
                )
                .await;
            match response {
                Ok(response) => answers_of(&response, partitions),
                Err(error) => {
                    tracing::debug!(coordinator = node, %error, "cannot verify a transaction");
                    vec![Err(ResponseError::NetworkException); partitions.len()]
                }
            }
        }
        Err(error) => vec![Err(error); partitions.len()],
    }
}

/// AddPartitionsToTxn v5 asking, and only asking, about `partitions`.
fn verify_request(
    transactional_id: &str,
    (producer_id, epoch): (i64, i16),
    partitions: &[TopicPartition],
) -> AddPartitionsToTxnRequest {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        topics
            .entry(tp.topic.as_str())
            .or_default()
            .push(tp.partition);
    }
    let topics = topics
        .into_iter()
        .map(|(name, indexes)| {
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                .with_partitions(indexes)
        })
        .collect();
    AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_owned(),
            )))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_verify_only(true)
            .with_topics(topics),
    ])
}

/// Each partition's answer in a verification's response. A refusal of
/// the whole request for want of CLUSTER_ACTION is not the producer's
/// business: it hears INVALID_TXN_STATE, as from Kafka.
fn answers_of(
    response: &AddPartitionsToTxnResponse,
    partitions: &[TopicPartition],
) -> Vec<Result<(), ResponseError>> {
    if let Some(error) = ResponseError::try_from_code(response.error_code) {
        let error = match error {
            ResponseError::ClusterAuthorizationFailed => ResponseError::InvalidTxnState,
            other => other,
        };
        return vec![Err(error); partitions.len()];
    }
    let mut answered: BTreeMap<(&str, i32), i16> = BTreeMap::new();
    for result in &response.results_by_transaction {
        for topic in &result.topic_results {
            for partition in &topic.results_by_partition {
                answered.insert(
                    (topic.name.as_str(), partition.partition_index),
                    partition.partition_error_code,
                );
            }
        }
    }
    partitions
        .iter()
        .map(|tp| {
            let code = answered
                .get(&(tp.topic.as_str(), tp.partition))
                .copied()
                .unwrap_or(ResponseError::UnknownServerError.code());
            ResponseError::try_from_code(code).map_or(Ok(()), Err)
        })
        .collect()
}

/// The error a produce request of `version` gets for a failed
/// verification, as Kafka's leader passes it on: a fenced producer hears
/// INVALID_PRODUCER_EPOCH; a coordinator that could not be asked, or was
/// mid-change, NOT_ENOUGH_REPLICAS (which producers retry, without a
/// metadata refresh); a partition not in the transaction
/// TRANSACTION_ABORTABLE from v11 (KIP-1050), INVALID_TXN_STATE before.
pub(crate) fn for_produce(error: ResponseError, version: i16) -> ResponseError {
    passed_on(error, ResponseError::NotEnoughReplicas, version >= 11)
}

/// The error a failed verification reaches the client as: fenced is
/// INVALID_PRODUCER_EPOCH; a coordinator that could not be asked, or was
/// mid-change, `retry_as` (an error the client retries); a partition
/// not in the transaction TRANSACTION_ABORTABLE if the client knows it
/// (`abortable`), else INVALID_TXN_STATE; anything else as it is.
pub(crate) fn passed_on(
    error: ResponseError,
    retry_as: ResponseError,
    abortable: bool,
) -> ResponseError {
    match error {
        ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch => {
            ResponseError::InvalidProducerEpoch
        }
        ResponseError::NetworkException
        | ResponseError::RequestTimedOut
        | ResponseError::CoordinatorLoadInProgress
        | ResponseError::CoordinatorNotAvailable
        | ResponseError::NotCoordinator
        | ResponseError::ConcurrentTransactions => retry_as,
        ResponseError::TransactionAbortable if !abortable => ResponseError::InvalidTxnState,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_versions_hear_the_errors_kafka_passes_on() {
        use ResponseError as E;
        assert_eq!(for_produce(E::ProducerFenced, 9), E::InvalidProducerEpoch);
        assert_eq!(for_produce(E::NotCoordinator, 11), E::NotEnoughReplicas);
        assert_eq!(
            for_produce(E::ConcurrentTransactions, 11),
            E::NotEnoughReplicas
        );
        assert_eq!(for_produce(E::TransactionAbortable, 10), E::InvalidTxnState);
        assert_eq!(
            for_produce(E::TransactionAbortable, 11),
            E::TransactionAbortable
        );
        assert_eq!(
            for_produce(E::InvalidProducerIdMapping, 11),
            E::InvalidProducerIdMapping
        );
    }

    #[test]
    fn a_response_answers_each_partition_and_a_cluster_refusal_all() {
        use kafka_protocol::messages::add_partitions_to_txn_response::{
            AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult,
            AddPartitionsToTxnTopicResult,
        };
        let partitions = [TopicPartition::new("a", 0), TopicPartition::new("a", 1)];
        let response = AddPartitionsToTxnResponse::default().with_results_by_transaction(vec![
            AddPartitionsToTxnResult::default().with_topic_results(vec![
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(StrBytes::from_static_str("a")))
                    .with_results_by_partition(vec![
                        AddPartitionsToTxnPartitionResult::default().with_partition_index(0),
                        AddPartitionsToTxnPartitionResult::default()
                            .with_partition_index(1)
                            .with_partition_error_code(ResponseError::TransactionAbortable.code()),
                    ]),
            ]),
        ]);
        assert_eq!(
            answers_of(&response, &partitions),
            vec![Ok(()), Err(ResponseError::TransactionAbortable)]
        );
        let refused = AddPartitionsToTxnResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
        assert_eq!(
            answers_of(&refused, &partitions),
            vec![Err(ResponseError::InvalidTxnState); 2]
        );
    }
}
