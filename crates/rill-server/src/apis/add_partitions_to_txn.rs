//! AddPartitionsToTxn (v0–3, a producer's): the partitions a transaction
//! is about to write join it, once the coordinator has logged them, so
//! that its end marks each of them. Checked first, as Kafka does: WRITE on
//! the transactional id (else every partition answers
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED), WRITE on each topic (never
//! granted for an internal topic such as `__consumer_offsets`: Kafka
//! answers TOPIC_AUTHORIZATION_FAILED there too), and each partition's
//! existence; if any partition is refused, the others answer
//! OPERATION_NOT_ATTEMPTED and nothing is added.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, TopicName,
};
use rill_txn::TxnApi;

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;

/// Per topic in request order: its partitions, each refused or not.
type Layout = Vec<(TopicName, Vec<(i32, Option<ResponseError>)>)>;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let add: AddPartitionsToTxnRequest = match request.decode() {
        Ok(add) => add,
        Err(error) => return ready(Err(error)),
    };
    let access = Access::new(broker, &request.session);
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
            .map(|e| crate::error_code::for_txn(e, TxnApi::AddPartitionsToTxn, version));
        answer(&|_| error)
    })
}
