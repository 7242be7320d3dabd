//! InitProducerId. Without a transactional id (an idempotent producer): a
//! producer id never handed out before (reserved durably in blocks),
//! epoch 0. With one: its transaction coordinator (the leader of its
//! `__transaction_state` partition) gives the id's producer id a new
//! epoch, fencing the previous producer and aborting what it left open
//! (see rill-txn), once that is logged.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use rill_txn::{Reply, TxnApi, TxnError};

use super::{Pending, Request, encode, ready};

use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let init: InitProducerIdRequest = match request.decode() {
        Ok(init) => init,
        Err(error) => return ready(Err(error)),
    };
    let access = Access::new(broker, &request.session);
    let answer = move |result: Result<(i64, i16), ResponseError>| {
        let response = match result {
            Ok((id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(error) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_error_code(error.code()),
        };
        encode(ApiKey::InitProducerId, version, &response).map(Some)
    };
    let broker = Arc::clone(broker);
    let Some(transactional_id) = init.transactional_id.map(|id| id.to_string()) else {
        // KIP-679: an idempotent producer needs IDEMPOTENT_WRITE on the
        // cluster, or WRITE on some topic.
        if !access.allows_cluster(AclOperation::IdempotentWrite)
            && !access.allows_some(AclOperation::Write, ResourceType::Topic)
        {
            return Box::pin(std::future::ready(answer(Err(
                ResponseError::ClusterAuthorizationFailed,
            ))));
        }
        return Box::pin(async move {
            let reserved = tokio::task::spawn_blocking(move || new_producer_id(&broker)).await;
            answer(
                reserved
                    .unwrap_or(Err(ResponseError::UnknownServerError))
                    .map(|id| (id, 0)),
            )
        });
    };
    if !access.allows(
        AclOperation::Write,
        ResourceType::TransactionalId,
        &transactional_id,
    ) {
        let refused = ResponseError::TransactionalIdAuthorizationFailed;
        return Box::pin(std::future::ready(answer(Err(refused))));
    }
    let transactions = match broker.transactions_for(&transactional_id) {
        Ok(transactions) => transactions,
        Err(error) => return Box::pin(std::future::ready(answer(Err(error)))),
    };
    let txn_request = rill_txn::InitProducerIdRequest {
        transactional_id,
        transaction_timeout_ms: init.transaction_timeout_ms,
        producer_id: if version >= 3 { init.producer_id.0 } else { -1 },
        producer_epoch: if version >= 3 {
            init.producer_epoch
        } else {
            -1
        },
    };
    Box::pin(async move {
        // Allocating a new producer id may wait for the metadata quorum.
        let allocating = Arc::clone(&broker);
        let result = transactions
            .run_blocking(
                move |coordinator, now| {
                    coordinator.init_producer_id(&txn_request, now, &mut || {
                        new_producer_id(&allocating).map_err(|_| {
                            TxnError::CoordinatorNotAvailable {
                                reason: "cannot reserve producer ids".to_string(),
                            }
                        })
                    })
                },
                |reply| match reply {
                    Reply::InitProducerId(result) => result,
                    other => Err(TxnError::UnknownServerError {
                        reason: format!("an InitProducerId was answered {other:?}"),
                    }),
                },
            )
            .await;
        answer(
            result
                .map(|id| (id.producer_id, id.producer_epoch))
                .map_err(|e| crate::error_code::for_txn(e, TxnApi::InitProducerId, version)),
        )
    })
}

/// A producer id never handed out before. Blocking (may wait for the
/// metadata quorum to reserve a new block).
fn new_producer_id(broker: &Broker) -> Result<i64, ResponseError> {
    broker.topics().next_producer_id().map_err(|error| {
        tracing::error!(%error, "cannot reserve producer ids");
        crate::error_code::for_topic(&error)
    })
}
