//! EndTxn: the producer commits or aborts its transaction. The
//! coordinator logs PrepareCommit (or PrepareAbort) and answers; the
//! markers are then written into every partition of the transaction in
//! the background, and CompleteCommit (CompleteAbort) logged after them.
//! Needs WRITE on the transactional id.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse};
use rill_record::MarkerKind;
use rill_txn::TxnApi;

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let end: EndTxnRequest = match request.decode() {
        Ok(end) => end,
        Err(error) => return ready(Err(error)),
    };
    let answer = move |error: Option<ResponseError>| {
        let response = EndTxnResponse::default().with_error_code(error.map_or(0, |e| e.code()));
        encode(ApiKey::EndTxn, version, &response).map(Some)
    };
    let transactional_id = end.transactional_id.to_string();
    let access = Access::new(broker, &request.session);
    if !access.allows(
        AclOperation::Write,
        ResourceType::TransactionalId,
        &transactional_id,
    ) {
        let refused = ResponseError::TransactionalIdAuthorizationFailed;
        return Box::pin(std::future::ready(answer(Some(refused))));
    }
    let transactions = match broker.transactions_for(&transactional_id) {
        Ok(transactions) => transactions,
        Err(error) => return Box::pin(std::future::ready(answer(Some(error)))),
    };
    let kind = if end.committed {
        MarkerKind::Commit
    } else {
        MarkerKind::Abort
    };
    let (producer_id, producer_epoch) = (end.producer_id.0, end.producer_epoch);
    Box::pin(async move {
        let result = transactions
            .end(&transactional_id, (producer_id, producer_epoch), kind)
            .await;
        answer(
            result
                .err()
                .map(|e| crate::error_code::for_txn(e, TxnApi::EndTxn, version)),
        )
    })
}
