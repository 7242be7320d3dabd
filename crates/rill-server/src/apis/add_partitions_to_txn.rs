//! AddPartitionsToTxn. v0–3, a producer's: the partitions a transaction
//! is about to write join it, once the coordinator has logged them, so
//! that its end marks each of them. v4–5, a broker's, for any number of
//! transactions: a partition leader asking whether partitions are in a
//! producer's transaction before writing its batch there (`verify_only`,
//! KIP-890; see `transactions/verification.rs`), or adding them. Only the
//! cluster's own nodes (CLUSTER_ACTION) may send v4+.
//!
//! A producer's request is checked first, as Kafka does: WRITE on
//! the transactional id (else every partition answers
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED), WRITE on each topic (never
//! granted for an internal topic such as `__consumer_offsets`: Kafka
//! answers TOPIC_AUTHORIZATION_FAILED there too), and each partition's
//! existence; if any partition is refused, the others answer
//! OPERATION_NOT_ATTEMPTED and nothing is added.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, TopicName,
};
use rill_txn::{TxnApi, TxnError};

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;

/// Per topic in request order: its partitions, each refused or not.
type Layout = Vec<(TopicName, Vec<(i32, Option<ResponseError>)>)>;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let add: AddPartitionsToTxnRequest = match request.decode() {
        Ok(add) => add,
        Err(error) => return ready(Err(error)),
    };
    let access = Access::new(broker, &request.session);
    if version >= 4 {
        return for_brokers(broker, add, version, &access);
    }
    let transactional_id = add.v3_and_below_transactional_id.to_string();
    let mut layout: Layout = Vec::new();
    let mut partitions: Vec<(String, i32)> = Vec::new();
    for topic in &add.v3_and_below_topics {
        // Kafka's KafkaApis leaves internal topics out of the authorized
        // ones: a transaction adds `__consumer_offsets` with
        // AddOffsetsToTxn only.
        let writable = !crate::topics::is_internal(&topic.name)
            && access.allows(AclOperation::Write, ResourceType::Topic, &topic.name);
        let known = broker.topics().partition_count(topic.name.as_str());
        let refused = topic.partitions.iter().map(|&p| {
            let error = if !writable {
                Some(ResponseError::TopicAuthorizationFailed)
            } else if known.is_none_or(|count| p < 0 || p >= count) {
                Some(ResponseError::UnknownTopicOrPartition)
            } else {
                None
            };
            (p, error)
        });
        let refused: Vec<(i32, Option<ResponseError>)> = refused.collect();
        partitions.extend(
            topic
                .partitions
                .iter()
                .map(|&p| (topic.name.to_string(), p)),
        );
        layout.push((topic.name.clone(), refused));
    }
    let any_refused = layout
        .iter()
        .any(|(_, partitions)| partitions.iter().any(|(_, refused)| refused.is_some()));
    let answer = move |decide: &dyn Fn(Option<ResponseError>) -> Option<ResponseError>| {
        let results = layout
            .iter()
            .map(|(name, partitions)| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(name.clone())
                    .with_results_by_partition(
                        partitions
                            .iter()
                            .map(|&(index, refused)| {
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(index)
                                    .with_partition_error_code(
                                        decide(refused).map_or(0, |e| e.code()),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        let response =
            AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
        encode(ApiKey::AddPartitionsToTxn, version, &response).map(Some)
    };
    if !access.allows(
        AclOperation::Write,
        ResourceType::TransactionalId,
        &transactional_id,
    ) {
        let refused = ResponseError::TransactionalIdAuthorizationFailed;
        return Box::pin(std::future::ready(answer(&|_| Some(refused))));
    }
    if any_refused {
        let not_attempted = ResponseError::OperationNotAttempted;
        return Box::pin(std::future::ready(answer(&|refused| {
            refused.or(Some(not_attempted))
        })));
    }
    let transactions = match broker.transactions_for(&transactional_id) {
        Ok(transactions) => transactions,
        Err(error) => return Box::pin(std::future::ready(answer(&|_| Some(error)))),
    };
    let (producer_id, producer_epoch) = (
        add.v3_and_below_producer_id.0,
        add.v3_and_below_producer_epoch,
    );
    Box::pin(async move {
        let result = transactions
            .add_partitions(
                &transactional_id,
                (producer_id, producer_epoch),
                &partitions,
            )
            .await;
        let error = result
            .err()
            .map(|e| error_code::for_txn(e, TxnApi::AddPartitionsToTxn, version));
        answer(&|_| error)
    })
}

/// v4+: each transaction's partitions verified or added, in order.
fn for_brokers(
    broker: &Arc<Broker>,
    add: AddPartitionsToTxnRequest,
    version: i16,
    access: &Access<'_>,
) -> Pending {
    if !access.allows_cluster(AclOperation::ClusterAction) {
        let response = AddPartitionsToTxnResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
        return ready(encode(ApiKey::AddPartitionsToTxn, version, &response));
    }
    let broker = Arc::clone(broker);
    Box::pin(async move {
        let mut results = Vec::with_capacity(add.transactions.len());
        for transaction in add.transactions {
            let transactional_id = transaction.transactional_id.to_string();
            let producer = (transaction.producer_id.0, transaction.producer_epoch);
            let partitions: Vec<(String, i32)> = transaction
                .topics
                .iter()
                .flat_map(|topic| {
                    topic
                        .partitions
                        .iter()
                        .map(|&p| (topic.name.to_string(), p))
                })
                .collect();
            let outcome = match broker.transactions_for(&transactional_id) {
                Err(error) => Err(error),
                Ok(transactions) if transaction.verify_only => {
                    let verified = transactions.with(|coordinator| {
                        coordinator.verify_partitions(
                            &transactional_id,
                            producer.0,
                            producer.1,
                            &partitions,
                        )
                    });
                    match verified {
                        // Only the partitions missing from the transaction
                        // fail; v4 predates TRANSACTION_ABORTABLE.
                        Err(TxnError::TransactionAbortable { missing, .. }) => {
                            Ok(missing.into_iter().collect())
                        }
                        other => other.map(|()| BTreeSet::new()).map_err(|e| {
                            error_code::for_txn(e, TxnApi::AddPartitionsToTxn, version)
                        }),
                    }
                }
                Ok(transactions) => transactions
                    .add_partitions(&transactional_id, producer, &partitions)
                    .await
                    .map(|()| BTreeSet::new())
                    .map_err(|e| error_code::for_txn(e, TxnApi::AddPartitionsToTxn, version)),
            };
            let missing_error = if version >= 5 {
                ResponseError::TransactionAbortable
            } else {
                ResponseError::InvalidTxnState
            };
            let error_of = |topic: &str, partition: i32| match &outcome {
                Err(error) => Some(*error),
                Ok(missing) => missing
                    .contains(&(topic.to_owned(), partition))
                    .then_some(missing_error),
            };
            let topic_results = transaction
                .topics
                .iter()
                .map(|topic| {
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(topic.name.clone())
                        .with_results_by_partition(
                            topic
                                .partitions
                                .iter()
                                .map(|&index| {
                                    AddPartitionsToTxnPartitionResult::default()
                                        .with_partition_index(index)
                                        .with_partition_error_code(
                                            error_of(topic.name.as_str(), index)
                                                .map_or(0, |e| e.code()),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect();
            results.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(transaction.transactional_id)
                    .with_topic_results(topic_results),
            );
        }
        let response = AddPartitionsToTxnResponse::default().with_results_by_transaction(results);
        encode(ApiKey::AddPartitionsToTxn, version, &response).map(Some)
    })
}
