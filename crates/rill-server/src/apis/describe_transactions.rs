//! DescribeTransactions (KIP-664): the state of each transactional id this
//! broker coordinates — state, producer id and epoch, timeout, when its
//! transaction began and its partitions. An id the principal may not
//! DESCRIBE answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED; partitions of
//! topics it may not DESCRIBE are left out, as Kafka does.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rill_txn::TxnApi;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let describe: DescribeTransactionsRequest = request.decode()?;
    let access = Access::new(broker, &request.session);
    let states = describe
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_transaction_state(StrBytes::from_static_str(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            if !access.allows(AclOperation::Describe, ResourceType::TransactionalId, &id) {
                let refused = ResponseError::TransactionalIdAuthorizationFailed;
                return state.with_error_code(refused.code());
            }
            let described = broker.transactions_for(&id).and_then(|transactions| {
                transactions
                    .with(|coordinator| coordinator.describe(&id))
                    .map_err(|e| crate::error_code::for_txn(e, TxnApi::EndTxn, i16::MAX))
            });
            match described {
                Ok(txn) => state
                    .with_transaction_state(StrBytes::from_static_str(txn.state.name()))
                    .with_transaction_timeout_ms(txn.transaction_timeout_ms)
                    .with_transaction_start_time_ms(txn.transaction_start_time_ms)
                    .with_producer_id(ProducerId(txn.producer_id))
                    .with_producer_epoch(txn.producer_epoch)
                    .with_topics(
                        txn.topics
                            .into_iter()
                            .filter(|(topic, _)| {
                                access.allows(AclOperation::Describe, ResourceType::Topic, topic)
                            })
                            .map(|(topic, partitions)| {
                                TopicData::default()
                                    .with_topic(TopicName(StrBytes::from_string(topic)))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    ),
                Err(error) => state.with_error_code(error.code()),
            }
        })
        .collect();
    encode(
        ApiKey::DescribeTransactions,
        version,
        &DescribeTransactionsResponse::default().with_transaction_states(states),
    )
}
