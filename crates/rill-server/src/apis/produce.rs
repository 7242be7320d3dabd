//! Produce: each partition's record batch is validated, stamped and
//! written once, in request order, before the handler returns; the
//! response waits for what the topic's flush policy needs before an
//! append may be acknowledged, and acks=0 gets no response at all. Only
//! the leader takes writes, and acks=-1 also waits for the high watermark
//! to pass the batch (every ISR member has it — the leader alone, on one
//! broker), refusing up front when the ISR is smaller than
//! min.insync.replicas.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rill_partition::TopicPartition;
use rill_record::TimestampType;
use rill_storage::AppendTicket;

use super::{Pending, Request, encode, now_ms, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;

/// A partition's outcome before acknowledgement.
enum Outcome {
    Written {
        topic_partition: TopicPartition,
        ticket: AppendTicket,
        log_append_time: bool,
        /// acks=-1 in a cluster: wait for the ISR too.
        wait_for_isr: bool,
    },
    Failed {
        error: ResponseError,
        message: Option<String>,
        /// The records of the batch that broke a rule (INVALID_RECORD),
        /// by index, reported from v8.
        record_errors: Vec<BatchIndexAndErrorMessage>,
    },
}

impl Outcome {
    fn failed(error: ResponseError, message: Option<String>) -> Outcome {
        Outcome::Failed {
            error,
            message,
            record_errors: Vec::new(),
        }
    }
}

struct PartitionOutcome {
    index: i32,
    outcome: Outcome,
}

struct TopicOutcome {
    name: TopicName,
    topic_id: uuid::Uuid,
    partitions: Vec<PartitionOutcome>,
}

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let produce: ProduceRequest = match request.decode() {
        Ok(produce) => produce,
        Err(error) => return ready(Err(error)),
    };
    let now = now_ms();
    let access = Access::new(broker, &request.session);
    // A transactional producer needs WRITE on its transactional id.
    let refuse_all = match &produce.transactional_id {
        Some(id) if !access.allows(AclOperation::Write, ResourceType::TransactionalId, id) => {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        }
        _ if !matches!(produce.acks, -1..=1) => Some(ResponseError::InvalidRequiredAcks),
        _ => None,
    };
    let topics: Vec<TopicOutcome> = produce
        .topic_data
        .into_iter()
        .map(|topic| {
            let name = if version >= 13 {
                broker.topics().name_by_id(topic.topic_id)
            } else {
                Some(topic.name.to_string())
            };
            let partitions = topic
                .partition_data
                .into_iter()
                .map(|data| {
                    // An unknown topic by name fails in `append`, at the
                    // partition lookup.
                    let outcome = match (&refuse_all, &name) {
                        (Some(error), _) => Outcome::failed(*error, None),
                        // Kafka: clients may not write internal topics.
                        // Checked before the topic is looked up: a topic
                        // the principal may not write is refused whether
                        // it exists or not.
                        (None, Some(name))
                            if !access.allows(AclOperation::Write, ResourceType::Topic, name) =>
                        {
                            Outcome::failed(ResponseError::TopicAuthorizationFailed, None)
                        }
                        (None, Some(name)) if crate::topics::is_internal(name) => Outcome::failed(
                            ResponseError::InvalidTopicException,
                            Some(format!("{name} is internal")),
                        ),
                        (None, Some(name)) => {
                            let tp = TopicPartition::new(name, data.index);
                            let transactional_id =
                                produce.transactional_id.as_ref().map(|id| id.as_str());
                            match verify_transaction(
                                broker,
                                (transactional_id, version),
                                &tp,
                                &data.records,
                            ) {
                                Ok(()) => append(broker, tp, data.records, (produce.acks, now)),
                                Err(error) => Outcome::failed(error, None),
                            }
                        }
                        (None, None) => Outcome::failed(ResponseError::UnknownTopicId, None),
                    };
                    PartitionOutcome {
                        index: data.index,
                        outcome,
                    }
                })
                .collect();
            TopicOutcome {
                // A copy: the decoded name is a slice of the request's
                // frame, which would stay alive (and, read ahead, the
                // frames received with it) until the response is written.
                name: TopicName(StrBytes::from_string(topic.name.to_string())),
                topic_id: topic.topic_id,
                partitions,
            }
        })
        .collect();
    let broker = Arc::clone(broker);
    if produce.acks == 0 {
        // No response; the appends still wake long polls once acknowledged.
        let deadline = tokio::time::Instant::now() + ACKS_0_REPLICATION_WAIT;
        tokio::spawn(async move {
            let _ = acknowledge(&broker, topics, version, deadline).await; // Nobody to tell.
        });
        return Box::pin(std::future::ready(Ok(None)));
    }
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(u64::try_from(produce.timeout_ms).unwrap_or(0));
    let throttle_ms = i32::try_from(request.throttle_ms).unwrap_or(i32::MAX);
    Box::pin(async move {
        let response = acknowledge(&broker, topics, version, deadline)
            .await
            .with_throttle_time_ms(throttle_ms);
        encode(ApiKey::Produce, version, &response).map(Some)
    })
}

fn append(
    broker: &Broker,
    topic_partition: TopicPartition,
    records: Option<bytes::Bytes>,
    (acks, now): (i16, i64),
) -> Outcome {
    let (partition, leader_epoch) = match broker.leader_partition(&topic_partition, -1) {
        Ok(found) => found,
        Err(error) => {
            return Outcome::failed(error_code::for_leadership(error), Some(error.to_string()));
        }
    };
    let wait_for_isr = acks == -1;
    if wait_for_isr && !broker.replicas().has_enough_replicas(&topic_partition) {
        return Outcome::failed(
            ResponseError::NotEnoughReplicas,
            Some("the ISR is smaller than min.insync.replicas".to_string()),
        );
    }
    let Some(records) = records else {
        return Outcome::failed(
            ResponseError::InvalidRecord,
            Some("the partition's records are null".to_string()),
        );
    };
    let log_append_time = partition.log().config().timestamp_type == TimestampType::LogAppendTime;
    match partition.append(&records, leader_epoch, now) {
        Ok(ticket) => Outcome::Written {
            topic_partition,
            ticket,
            log_append_time,
            wait_for_isr,
        },
        Err(error) => {
            let code = error_code::for_append(&error);
            tracing::debug!(partition = %topic_partition, %error, "refused a produce");
            Outcome::Failed {
                error: code,
                message: Some(error.to_string()),
                record_errors: error_code::record_errors(&error, &topic_partition)
                    .into_iter()
                    .map(|(index, message)| {
                        BatchIndexAndErrorMessage::default()
                            .with_batch_index(index)
                            .with_batch_index_error_message(Some(StrBytes::from_string(message)))
                    })
                    .collect(),
            }
        }
    }
}

/// KIP-890's verification: the first transactional batch of a
/// producer's transaction in a partition is written only if the
/// transaction coordinator has the partition in that transaction (else
/// INVALID_TXN_STATE, or TRANSACTION_ABORTABLE from v11, and nothing is
/// written), so a producer that skipped
/// AddPartitionsToTxn, or one whose transaction was aborted meanwhile,
/// cannot leave records no marker will ever end. Later batches of the same
/// transaction find it open in the partition and are not checked again.
/// The check is made where this broker coordinates the transactional id
/// (every one, alone); a coordinator on another broker is not asked.
fn verify_transaction(
    broker: &Broker,
    (transactional_id, version): (Option<&str>, i16),
    tp: &TopicPartition,
    records: &Option<bytes::Bytes>,
) -> Result<(), ResponseError> {
    let (Some(transactional_id), Some(records)) = (transactional_id, records) else {
        return Ok(());
    };
    let Ok(batch) = rill_record::BatchView::new(records) else {
        return Ok(()); // The append refuses it.
    };
    if !batch.attributes().is_transactional() || batch.attributes().is_control() {
        return Ok(());
    }
    let (producer_id, epoch) = (batch.producer_id(), batch.producer_epoch());
    let Some(partition) = broker.partition(tp) else {
        return Ok(()); // The append answers for an unknown partition.
    };
    if partition.has_open_transaction(producer_id, epoch) {
        return Ok(());
    }
    let wanted = (tp.topic.to_string(), tp.partition);
    crate::transactions::verify(broker, transactional_id, (producer_id, epoch), wanted).map_err(
        |error| {
            tracing::debug!(partition = %tp, %error, "a transactional batch failed verification");
            match error {
                rill_txn::TxnError::ProducerFenced { .. }
                | rill_txn::TxnError::InvalidProducerEpoch { .. } => {
                    ResponseError::InvalidProducerEpoch
                }
                rill_txn::TxnError::ConcurrentTransactions { .. } => {
                    ResponseError::ConcurrentTransactions
                }
                // KIP-1050: clients that know it hear that they can abort.
                _ if version >= 11 => ResponseError::TransactionAbortable,
                _ => ResponseError::InvalidTxnState,
            }
        },
    )
}

/// Waits for every append's ticket and builds the response.
async fn acknowledge(
    broker: &Broker,
    topics: Vec<TopicOutcome>,
    version: i16,
    deadline: tokio::time::Instant,
) -> ProduceResponse {
    let mut responses = Vec::with_capacity(topics.len());
    for topic in topics {
        let mut partition_responses = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let mut response = PartitionProduceResponse::default()
                .with_index(partition.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let failure = match partition.outcome {
                Outcome::Written {
                    topic_partition,
                    ticket,
                    log_append_time,
                    wait_for_isr,
                } => match ticket.await {
                    Ok(info) => {
                        broker.waiters().notify(&topic_partition);
                        let replicated = broker
                            .replicas()
                            .replicated(&topic_partition, info.last_offset, wait_for_isr, deadline)
                            .await;
                        if let Err(error) = replicated {
                            Some((error, None))
                        } else {
                            response = response
                                .with_base_offset(info.base_offset.value())
                                .with_log_start_offset(info.log_start_offset.value());
                            if log_append_time {
                                response = response
                                    .with_log_append_time_ms(info.log_append_time_ms.unwrap_or(-1));
                            }
                            None
                        }
                    }
                    Err(failed) => {
                        Some((ResponseError::KafkaStorageError, Some(failed.to_string())))
                    }
                },
                Outcome::Failed {
                    error,
                    message,
                    record_errors,
                } => {
                    if version >= 8 {
                        response = response.with_record_errors(record_errors);
                    }
                    Some((error, message))
                }
            };
            if let Some((error, message)) = failure {
                response = response.with_error_code(error.code());
                if version >= 8 {
                    response = response.with_error_message(message.map(StrBytes::from_string));
                }
            }
            partition_responses.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partition_responses),
        );
    }
    ProduceResponse::default().with_responses(responses)
}

/// How long an acks=0 produce's background wait keeps the high watermark
/// moving (nobody waits for its answer).
const ACKS_0_REPLICATION_WAIT: Duration = Duration::from_secs(30);
