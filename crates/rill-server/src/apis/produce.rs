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
use rill_partition::{TopicPartition, VerificationGuard};
use rill_record::TimestampType;
use rill_storage::AppendTicket;

use super::{Pending, Request, encode, now_ms, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;
use crate::in_place;
use crate::transactions::verification;

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
    /// A transactional batch whose coordinator, on another broker, is
    /// asked first (KIP-890); written once it answers.
    Unverified(Box<Unverified>),
}

/// A batch waiting for its transaction's verification.
struct Unverified {
    topic_partition: TopicPartition,
    records: bytes::Bytes,
    producer: (i64, i16),
    guard: VerificationGuard,
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
    let partitions: usize = produce
        .topic_data
        .iter()
        .map(|topic| topic.partition_data.len())
        .sum();
    let transactional_id = produce.transactional_id;
    let acks = produce.acks;
    let appends = || -> Vec<TopicOutcome> {
        produce
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
                                if !access.allows(
                                    AclOperation::Write,
                                    ResourceType::Topic,
                                    name,
                                ) =>
                            {
                                Outcome::failed(ResponseError::TopicAuthorizationFailed, None)
                            }
                            (None, Some(name)) if crate::topics::is_internal(name) => {
                                Outcome::failed(
                                    ResponseError::InvalidTopicException,
                                    Some(format!("{name} is internal")),
                                )
                            }
                            (None, Some(name)) => {
                                let tp = TopicPartition::new(name, data.index);
                                let transactional_id =
                                    transactional_id.as_ref().map(|id| id.as_str());
                                match check_transaction(
                                    broker,
                                    (transactional_id, version),
                                    &tp,
                                    &data.records,
                                ) {
                                    Check::Append(guard) => {
                                        append(broker, tp, data.records, guard, (acks, now))
                                    }
                                    Check::AskCoordinator(guard, producer) => match data.records {
                                        Some(records) => {
                                            Outcome::Unverified(Box::new(Unverified {
                                                topic_partition: tp,
                                                records,
                                                producer,
                                                guard,
                                            }))
                                        }
                                        None => append(broker, tp, None, None, (acks, now)),
                                    },
                                    Check::Refused(error) => Outcome::failed(error, None),
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
            .collect()
    };
    // A first produce to thousands of partitions reserves files for each
    // (seconds in all): the runtime's other tasks, heartbeats among them,
    // move to another thread meanwhile.
    let topics = if partitions >= IN_PLACE_PARTITIONS_MIN {
        in_place::blocking(appends)
    } else {
        appends()
    };
    let broker = Arc::clone(broker);
    // Batches waiting for a coordinator elsewhere are written before the
    // connection reads its next request, which may be the same
    // producer's next batch for the same partition.
    let verifying = topics
        .iter()
        .any(|t| {
            t.partitions
                .iter()
                .any(|p| matches!(p.outcome, Outcome::Unverified(_)))
        })
        .then(|| {
            let (written, paused) = tokio::sync::oneshot::channel::<()>();
            request.session.pause_until(paused);
            let transactional_id = transactional_id.as_ref().map(|id| id.to_string());
            (written, transactional_id.unwrap_or_default(), (acks, now))
        });
    if acks == 0 {
        // No response; the appends still wake long polls once acknowledged.
        let deadline = tokio::time::Instant::now() + ACKS_0_REPLICATION_WAIT;
        tokio::spawn(async move {
            let topics = match verifying {
                Some(verifying) => verify_then_append(&broker, topics, version, verifying).await,
                None => topics,
            };
            let _ = acknowledge(&broker, topics, version, deadline).await; // Nobody to tell.
        });
        return Box::pin(std::future::ready(Ok(None)));
    }
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(u64::try_from(produce.timeout_ms).unwrap_or(0));
    let throttle_ms = i32::try_from(request.throttle_ms).unwrap_or(i32::MAX);
    Box::pin(async move {
        let topics = match verifying {
            Some(verifying) => verify_then_append(&broker, topics, version, verifying).await,
            None => topics,
        };
        let response = acknowledge(&broker, topics, version, deadline)
            .await
            .with_throttle_time_ms(throttle_ms);
        encode(ApiKey::Produce, version, &response).map(Some)
    })
}

/// Asks the coordinator of `transactional_id` about every batch waiting
/// for it, in one request, and writes those it verifies (the others
/// fail with its answer); then lets the connection read on (`written`).
async fn verify_then_append(
    broker: &Broker,
    mut topics: Vec<TopicOutcome>,
    version: i16,
    (written, transactional_id, (acks, now)): (
        tokio::sync::oneshot::Sender<()>,
        String,
        (i16, i64),
    ),
) -> Vec<TopicOutcome> {
    let mut waiting: Vec<(&mut Outcome, Unverified)> = Vec::new();
    for partition in topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        if matches!(partition.outcome, Outcome::Unverified(_)) {
            let placeholder = Outcome::failed(ResponseError::UnknownServerError, None);
            if let Outcome::Unverified(batch) =
                std::mem::replace(&mut partition.outcome, placeholder)
            {
                waiting.push((&mut partition.outcome, *batch));
            }
        }
    }
    let partitions: Vec<TopicPartition> = waiting
        .iter()
        .map(|(_, b)| b.topic_partition.clone())
        .collect();
    // One producer writes every batch of a request.
    let producer = waiting.first().map_or((-1, -1), |(_, b)| b.producer);
    let answers =
        verification::ask_coordinator(broker, &transactional_id, producer, &partitions).await;
    for ((outcome, batch), answer) in waiting.into_iter().zip(answers) {
        *outcome = match answer.map_err(|error| verification::for_produce(error, version)) {
            Ok(()) => append(
                broker,
                batch.topic_partition,
                Some(batch.records),
                Some(batch.guard),
                (acks, now),
            ),
            Err(error) => {
                tracing::debug!(partition = %batch.topic_partition, ?error,
                    "a transactional batch failed verification");
                if let Some(partition) = broker.partition(&batch.topic_partition) {
                    partition.abandon_verification(producer.0, batch.guard);
                }
                Outcome::failed(error, None)
            }
        };
    }
    drop(written);
    topics
}

/// Writes `records` into the partition this broker leads, with the
/// verification guard of a transactional batch.
fn append(
    broker: &Broker,
    topic_partition: TopicPartition,
    records: Option<bytes::Bytes>,
    guard: Option<VerificationGuard>,
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
    let appended = match guard {
        Some(guard) => partition.append_verified(&records, guard, leader_epoch, now),
        None => partition.append(&records, leader_epoch, now),
    };
    match appended {
        Ok(ticket) => {
            let messages = rill_record::Batches::new(&records)
                .map(|batch| u64::try_from(batch.records_count()).unwrap_or(0))
                .sum();
            broker
                .metrics()
                .produced(&topic_partition.topic, records.len() as u64, messages);
            Outcome::Written {
                topic_partition,
                ticket,
                log_append_time,
                wait_for_isr,
            }
        }
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

/// KIP-890's verification of a producer's transactional batch (see
/// `transactions/verification.rs`): a batch that is not transactional,
/// or that the append refuses anyway, is written with no guard.
fn check_transaction(
    broker: &Broker,
    (transactional_id, version): (Option<&str>, i16),
    tp: &TopicPartition,
    records: &Option<bytes::Bytes>,
) -> Check {
    let write = Check::Append(None);
    let (Some(transactional_id), Some(records)) = (transactional_id, records) else {
        return write;
    };
    let Ok(batch) = rill_record::BatchView::new(records) else {
        return write;
    };
    if !batch.attributes().is_transactional() || batch.attributes().is_control() {
        return write;
    }
    let Some(partition) = broker.partition(tp) else {
        return write; // The append answers for an unknown partition.
    };
    let producer = (batch.producer_id(), batch.producer_epoch());
    match verification::check(
        broker,
        transactional_id,
        (&partition, tp),
        producer,
        version,
    ) {
        verification::Check::Append(guard) => Check::Append(Some(guard)),
        verification::Check::AskCoordinator(guard) => Check::AskCoordinator(guard, producer),
        verification::Check::Refused(error) => Check::Refused(error),
    }
}

/// What [`check_transaction`] decided for a batch.
enum Check {
    /// Write it, with the guard of a transactional batch.
    Append(Option<VerificationGuard>),
    /// Ask the coordinator elsewhere first, for this producer (id, epoch).
    AskCoordinator(VerificationGuard, (i64, i16)),
    Refused(ResponseError),
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
                // Verified before acknowledging (`verify_then_append`).
                Outcome::Unverified(_) => Some((ResponseError::UnknownServerError, None)),
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

/// Requests naming at least this many partitions are appended with the
/// runtime told (see in_place.rs).
const IN_PLACE_PARTITIONS_MIN: usize = 64;
