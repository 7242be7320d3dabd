//! ListTransactions (KIP-664, v1's duration filter from KIP-994): the
//! transactional ids this broker coordinates, filtered by state, producer
//! id and how long their transaction has been open; only those the
//! principal may DESCRIBE are listed. Admin clients ask every broker.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ApiKey, ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rill_storage::now_ms;
use rill_txn::TxnApi;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;

pub(crate) fn answer(broker: &Broker, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let list: ListTransactionsRequest = request.decode()?;
    let access = Access::new(broker, &request.session);
    let states: Vec<String> = list.state_filters.iter().map(|s| s.to_string()).collect();
    let producers: Vec<i64> = list.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if version >= 1 {
        list.duration_filter
    } else {
        -1
    };
    let mut response = ListTransactionsResponse::default();
    let mut listed = Vec::new();
    let mut unknown = Vec::new();
    for transactions in broker.transactions().all() {
        let found = transactions
            .with(|coordinator| coordinator.list(&states, &producers, duration, now_ms()));
        match found {
            Ok(found) => {
                listed.extend(found.transactions);
                unknown = found.unknown_state_filters;
            }
            Err(error) => {
                let code = crate::error_code::for_txn(error, TxnApi::EndTxn, i16::MAX);
                response = response.with_error_code(code.code());
            }
        }
    }
    let transaction_states = listed
        .into_iter()
        .filter(|t| {
            access.allows(
                AclOperation::Describe,
                ResourceType::TransactionalId,
                &t.transactional_id,
            )
        })
        .map(|t| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(t.transactional_id)))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(StrBytes::from_static_str(t.state.name()))
        })
        .collect();
    let response = response
        .with_unknown_state_filters(unknown.into_iter().map(StrBytes::from_string).collect())
        .with_transaction_states(transaction_states);
    encode(ApiKey::ListTransactions, version, &response)
}
