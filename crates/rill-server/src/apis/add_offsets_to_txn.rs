//! AddOffsetsToTxn: a transaction is about to commit a group's offsets
//! (TxnOffsetCommit, to the group's coordinator); the group's partition of
//! `__consumer_offsets` joins the transaction, so that its end marks it
//! and the offsets become visible (or are dropped) with the rest. Needs
//! WRITE on the transactional id and READ on the group.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey};
use rill_txn::TxnApi;

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::coordinators::CoordinatorKind;
use crate::groups::OFFSETS_TOPIC;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let add: AddOffsetsToTxnRequest = match request.decode() {
        Ok(add) => add,
        Err(error) => return ready(Err(error)),
    };
    let answer = move |error: Option<ResponseError>| {
        let response =
            AddOffsetsToTxnResponse::default().with_error_code(error.map_or(0, |e| e.code()));
        encode(ApiKey::AddOffsetsToTxn, version, &response).map(Some)
    };
    let access = Access::new(broker, &request.session);
    let transactional_id = add.transactional_id.to_string();
    let group = add.group_id.to_string();
    let refused = if !access.allows(
        AclOperation::Write,
        ResourceType::TransactionalId,
        &transactional_id,
    ) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else {
        access.group(AclOperation::Read, &group).err()
    };
    // The group's partition of the offsets topic (made if missing: the
    // client retries COORDINATOR_NOT_AVAILABLE meanwhile).
    let offsets_partition = broker
        .topics()
        .partition_count(OFFSETS_TOPIC)
        .map(|count| CoordinatorKind::Group.partition_for(&group, count))
        .ok_or(ResponseError::CoordinatorNotAvailable);
    if offsets_partition.is_err() {
        let _ = broker.coordinator(CoordinatorKind::Group, &group); // Creates the topic.
    }
    let transactions = match refused
        .map_or(Ok(()), Err)
        .and(offsets_partition)
        .and_then(|p| Ok((p, broker.transactions_for(&transactional_id)?)))
    {
        Ok(found) => found,
        Err(error) => return Box::pin(std::future::ready(answer(Some(error)))),
    };
    let (partition, transactions) = transactions;
    let (producer_id, producer_epoch) = (add.producer_id.0, add.producer_epoch);
    Box::pin(async move {
        let partitions = [(OFFSETS_TOPIC.to_string(), partition)];
        let result = transactions
            .add_partitions(
                &transactional_id,
                (producer_id, producer_epoch),
                &partitions,
            )
            .await;
        answer(
            result
                .err()
                .map(|e| crate::error_code::for_txn(e, TxnApi::AddOffsetsToTxn, version)),
        )
    })
}
