//! ShareFetch (KIP-932): a share consumer's fetch. It carries the
//! member's share session (opened at epoch 0, carried on at each next
//! epoch, closed at −1) and acknowledgements of records it fetched
//! before; it answers with records acquired for the member — from every
//! partition of its session that this broker leads — locked to it for the
//! group's lock duration. A long poll waits up to max_wait_ms for records
//! to acquire, woken by appends and by records coming back to the queue.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, NodeEndpoint, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{ApiKey, BrokerId, ShareFetchRequest, ShareFetchResponse};
use kafka_protocol::protocol::StrBytes;
use rill_partition::TopicPartition;
use rill_share::AckBatch;
use tokio::sync::Notify;
use uuid::Uuid;

use super::{Body, HandlerError, Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;
use crate::listeners::Listener;
use crate::shares::{AcquiredRead, SessionError, ShareKey, acquire_from_log};
use crate::shutdown::Shutdown;

/// The longest long poll, whatever the client asks.
const MAX_WAIT_MS_MAX: i32 = 30_000;
/// How soon a share-partition that could not be loaded is tried again.
const LOAD_RETRY: Duration = Duration::from_millis(100);
/// Records acquired per request when the client names no maximum.
const MAX_RECORDS_DEFAULT: u32 = 500;

/// A partition of the member's session, resolved.
struct Target {
    topic_id: Uuid,
    index: i32,
    /// Its topic's name; `None`: no topic has that id.
    name: Option<String>,
    authorized: bool,
}

/// What one partition's entry in the response says.
#[derive(Default)]
struct Answer {
    error: Option<(ResponseError, String)>,
    acknowledge_error: Option<(ResponseError, String)>,
    leader: Option<(i32, i32)>,
    read: AcquiredRead,
    /// Acknowledgements were applied here: the entry is answered even if
    /// nothing else is said.
    acknowledged: bool,
}

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request, shutdown: Shutdown) -> Pending {
    let version = request.version();
    let fetch: ShareFetchRequest = match request.decode() {
        Ok(fetch) => fetch,
        Err(error) => return ready(Err(error)),
    };
    let refuse = |error: ResponseError, message: &str| {
        let response = ShareFetchResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(message.to_string())));
        ready(encode(ApiKey::ShareFetch, version, &response))
    };
    let group = fetch.group_id.as_ref().map(|g| g.to_string());
    let member = fetch.member_id.as_ref().map(ToString::to_string);
    let (Some(group), Some(member)) = (group, member) else {
        return refuse(
            ResponseError::InvalidRequest,
            "group id and member id are needed",
        );
    };
    if group.is_empty() || member.is_empty() {
        return refuse(
            ResponseError::InvalidRequest,
            "group id and member id are needed",
        );
    }
    let access = Access::new(broker, &request.session);
    if access.group(AclOperation::Read, &group).is_err() {
        return refuse(ResponseError::GroupAuthorizationFailed, &group);
    }
    let epoch = fetch.share_session_epoch;
    let listed: Vec<(Uuid, i32)> = fetch
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, p.partition_index)))
        .collect();
    let forgotten: Vec<(Uuid, i32)> = fetch
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, *p)))
        .collect();
    let acks: Vec<((Uuid, i32), Vec<AckBatch>)> = fetch
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| !p.acknowledgement_batches.is_empty())
                .map(|p| {
                    let batches = p
                        .acknowledgement_batches
                        .iter()
                        .map(|b| AckBatch {
                            first_offset: b.first_offset,
                            last_offset: b.last_offset,
                            types: b.acknowledge_types.clone(),
                        })
                        .collect();
                    ((t.topic_id, p.partition_index), batches)
                })
        })
        .collect();
    if epoch == 0 && !acks.is_empty() {
        return refuse(
            ResponseError::InvalidRequest,
            "a share session's first fetch cannot acknowledge",
        );
    }
    let shares = broker.shares();
    let session = match shares.sessions().update(
        (&group, &member, request.session.connection_id),
        epoch,
        true,
        (&listed, &forgotten),
    ) {
        Ok(session) => session,
        Err(error) => {
            let (code, message) = session_refusal(&error);
            return refuse(code, message);
        }
    };
    let mut targets: Vec<Target> = session
        .partitions
        .iter()
        .map(|&(topic_id, index)| {
            let name = broker.topics().name_by_id(topic_id);
            let authorized = name
                .as_ref()
                .is_none_or(|n| access.allows(AclOperation::Read, ResourceType::Topic, n));
            Target {
                topic_id,
                index,
                name,
                authorized,
            }
        })
        .collect();
    // Acknowledged partitions are answered even when they left the session.
    for ((topic_id, index), _) in &acks {
        if !targets
            .iter()
            .any(|t| t.topic_id == *topic_id && t.index == *index)
        {
            let name = broker.topics().name_by_id(*topic_id);
            let authorized = name
                .as_ref()
                .is_none_or(|n| access.allows(AclOperation::Read, ResourceType::Topic, n));
            targets.push(Target {
                topic_id: *topic_id,
                index: *index,
                name,
                authorized,
            });
        }
    }
    let mut answers: HashMap<(Uuid, i32), Answer> = HashMap::new();
    let mut acknowledged: Vec<ShareKey> = Vec::new();
    for ((topic_id, index), batches) in &acks {
        let answer = answers.entry((*topic_id, *index)).or_default();
        answer.acknowledged = true;
        let key = ShareKey::of(&group, (*topic_id, *index));
        match acknowledge(broker, &targets, (&key, &member), batches) {
            Ok(()) => acknowledged.push(key),
            Err(error) => answer.acknowledge_error = Some(error),
        }
    }
    let broker = Arc::clone(broker);
    let listener = Arc::clone(&request.session.listener);
    if session.closing {
        let keys: Vec<ShareKey> = session
            .partitions
            .iter()
            .map(|&tp| ShareKey::of(&group, tp))
            .collect();
        return Box::pin(async move {
            persist_acknowledged(&broker, &acknowledged, &mut answers).await;
            broker.shares().release_session(&broker, &member, &keys);
            respond(&broker, (&group, &listener), answers, version).map(Some)
        });
    }
    let max_wait = Duration::from_millis(fetch.max_wait_ms.clamp(0, MAX_WAIT_MS_MAX) as u64);
    let max_records = u32::try_from(fetch.max_records)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(MAX_RECORDS_DEFAULT);
    let max_bytes = usize::try_from(fetch.max_bytes)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(usize::MAX);
    Box::pin(async move {
        persist_acknowledged(&broker, &acknowledged, &mut answers).await;
        let deadline = tokio::time::Instant::now() + max_wait;
        let woken = Arc::new(Notify::new());
        let released = Arc::clone(broker.shares().released());
        let mut shutdown = shutdown;
        loop {
            let all_loaded = load(&broker, &targets, &group).await;
            // Register before reading, so that a change in between still wakes us.
            let back_in_queue = released.notified();
            tokio::pin!(back_in_queue);
            back_in_queue.as_mut().enable();
            for target in &targets {
                if let Some(name) = &target.name {
                    broker
                        .waiters()
                        .register(&TopicPartition::new(name, target.index), &woken);
                }
            }
            let got = acquire_all(
                &broker,
                &targets,
                (&group, &member),
                (max_records, max_bytes),
                &mut answers,
            );
            if got || tokio::time::Instant::now() >= deadline {
                return respond(&broker, (&group, &listener), answers, version).map(Some);
            }
            // A share-partition not loaded yet (its state's topic is being
            // made) is tried again soon, not at the next append.
            let retry = if all_loaded {
                deadline
            } else {
                (tokio::time::Instant::now() + LOAD_RETRY).min(deadline)
            };
            tokio::select! {
                () = woken.notified() => {}
                () = &mut back_in_queue => {}
                () = tokio::time::sleep_until(retry) => {}
                () = shutdown.wait() => {
                    return respond(&broker, (&group, &listener), answers, version).map(Some);
                }
            }
        }
    })
}

/// Makes the acknowledgements applied durable; a share-partition whose
/// state could not be written answers its acknowledgements with the error.
async fn persist_acknowledged(
    broker: &Arc<Broker>,
    keys: &[ShareKey],
    answers: &mut HashMap<(Uuid, i32), Answer>,
) {
    for key in keys {
        if let Err(error) = broker.shares().persist(broker, key).await {
            let answer = answers.entry((key.topic_id, key.partition)).or_default();
            answer.acknowledge_error = Some((error.code(), error.to_string()));
        }
    }
}

/// Loads the share-partitions of the targets this broker leads that are
/// not loaded at the current leader epoch; whether all are. One that
/// cannot be loaded yet (its state's coordinator is not available) is
/// skipped, and tried again.
async fn load(broker: &Arc<Broker>, targets: &[Target], group: &str) -> bool {
    let mut all = true;
    for target in targets {
        let (Some(name), true) = (&target.name, target.authorized) else {
            continue;
        };
        let tp = TopicPartition::new(name, target.index);
        let Ok((partition, leader_epoch)) = broker.leader_partition(&tp, -1) else {
            continue;
        };
        let key = ShareKey::of(group, (target.topic_id, target.index));
        let shares = broker.shares();
        let group_state_epoch = broker.node().metadata().share_groups.state_epoch(group);
        match shares.partitions().get(&key, leader_epoch) {
            Some(slot) if slot.group_state_epoch >= group_state_epoch => continue,
            // The group's state was reset since: read it again.
            Some(_) => shares.partitions().remove(&key),
            None => {}
        }
        let loading = (&key, &*partition, leader_epoch);
        match shares
            .partitions()
            .load(broker, shares.states(), loading)
            .await
        {
            Ok(_) => shares.wake_dead_letters(broker, &key),
            Err(error) => {
                tracing::debug!(%error, "share-partition not loaded yet");
                all = false;
            }
        }
    }
    all
}

/// The top-level error for a refused session epoch.
pub(super) fn session_refusal(error: &SessionError) -> (ResponseError, &'static str) {
    match error {
        SessionError::NotFound => (
            ResponseError::ShareSessionNotFound,
            "the member has no share session on this broker",
        ),
        SessionError::InvalidEpoch => (
            ResponseError::InvalidShareSessionEpoch,
            "the share session epoch is not the one expected",
        ),
        SessionError::LimitReached => (
            ResponseError::ShareSessionLimitReached,
            "this broker holds its maximum of share sessions",
        ),
    }
}

/// Applies a partition's acknowledgements in memory.
fn acknowledge(
    broker: &Broker,
    targets: &[Target],
    (key, member): (&ShareKey, &str),
    batches: &[AckBatch],
) -> Result<(), (ResponseError, String)> {
    let target = targets
        .iter()
        .find(|t| t.topic_id == key.topic_id && t.index == key.partition);
    let Some(Target {
        name: Some(name),
        authorized,
        ..
    }) = target
    else {
        return Err((ResponseError::UnknownTopicId, key.topic_id.to_string()));
    };
    if !authorized {
        return Err((ResponseError::TopicAuthorizationFailed, name.clone()));
    }
    broker
        .shares()
        .acknowledge(broker, (key, name), member, batches)
        .map(drop)
}

/// Acquires records for the member from each target this broker leads;
/// whether any were acquired (or an error is to be answered).
fn acquire_all(
    broker: &Broker,
    targets: &[Target],
    (group, member): (&str, &str),
    (max_records, max_bytes): (u32, usize),
    answers: &mut HashMap<(Uuid, i32), Answer>,
) -> bool {
    let mut records_left = max_records;
    let mut bytes_left = max_bytes;
    let mut any = false;
    let config = crate::group_config::share_config(broker, group);
    let limits = config.share_limits();
    for target in targets {
        if records_left == 0 || bytes_left == 0 {
            break;
        }
        let answer = answers.entry((target.topic_id, target.index)).or_default();
        if !answer.read.acquired.is_empty() {
            continue;
        }
        let Some(name) = &target.name else {
            answer.error = Some((ResponseError::UnknownTopicId, target.topic_id.to_string()));
            any = true;
            continue;
        };
        if !target.authorized {
            answer.error = Some((ResponseError::TopicAuthorizationFailed, name.clone()));
            any = true;
            continue;
        }
        let tp = TopicPartition::new(name, target.index);
        let (partition, leader_epoch) = match broker.leader_partition(&tp, -1) {
            Ok(led) => led,
            Err(error) => {
                answer.error = Some((error_code::for_leadership(error), tp.to_string()));
                answer.leader = current_leader(broker, &tp);
                any = true;
                continue;
            }
        };
        answer.leader = Some((broker.config().node_id, leader_epoch));
        let key = ShareKey::of(group, (target.topic_id, target.index));
        let Some(slot) = broker.shares().partitions().get(&key, leader_epoch) else {
            continue;
        };
        let mut share = slot.state.lock();
        match acquire_from_log(
            &partition,
            &mut share,
            member,
            (records_left, bytes_left),
            (&limits, config.read_committed, crate::shares::now()),
        ) {
            Ok(read) if read.acquired.is_empty() => {}
            Ok(read) => {
                let count: i64 = read
                    .acquired
                    .iter()
                    .map(|a| a.last_offset - a.first_offset + 1)
                    .sum();
                records_left =
                    records_left.saturating_sub(u32::try_from(count).unwrap_or(u32::MAX));
                bytes_left = bytes_left.saturating_sub(read.records.len());
                answer.read = read;
                any = true;
            }
            Err(error) => {
                answer.error = Some((error_code::for_read(&error), error.to_string()));
                any = true;
            }
        }
    }
    any
}

/// The partition's leader and leader epoch as the metadata names them.
fn current_leader(broker: &Broker, tp: &TopicPartition) -> Option<(i32, i32)> {
    let metadata = broker.node().metadata();
    let state = metadata
        .topics
        .get(tp.topic.as_str())?
        .partitions
        .get(usize::try_from(tp.partition).ok()?)?;
    Some((state.leader?.0, state.leader_epoch.0))
}

fn respond(
    broker: &Broker,
    (group, listener): (&str, &Listener),
    answers: HashMap<(Uuid, i32), Answer>,
    version: i16,
) -> Result<Body, HandlerError> {
    let mut by_topic: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    let mut leaders: Vec<i32> = Vec::new();
    for ((topic_id, index), answer) in answers {
        let says_something =
            answer.acknowledged || answer.error.is_some() || !answer.read.acquired.is_empty();
        if !says_something {
            continue;
        }
        let (leader_id, leader_epoch) = answer.leader.unwrap_or((-1, -1));
        if answer.error.is_some() && leader_id >= 0 && leader_id != broker.config().node_id {
            leaders.push(leader_id);
        }
        let (error_code, error_message) = split(answer.error);
        let (ack_code, ack_message) = split(answer.acknowledge_error);
        let acquired = answer
            .read
            .acquired
            .iter()
            .map(|a| {
                AcquiredRecords::default()
                    .with_first_offset(a.first_offset)
                    .with_last_offset(a.last_offset)
                    .with_delivery_count(i16::try_from(a.delivery_count).unwrap_or(i16::MAX))
            })
            .collect();
        by_topic.entry(topic_id).or_default().push(
            PartitionData::default()
                .with_partition_index(index)
                .with_error_code(error_code)
                .with_error_message(error_message)
                .with_acknowledge_error_code(ack_code)
                .with_acknowledge_error_message(ack_message)
                .with_current_leader(
                    LeaderIdAndEpoch::default()
                        .with_leader_id(leader_id)
                        .with_leader_epoch(leader_epoch),
                )
                .with_records(Some(answer.read.records))
                .with_acquired_records(acquired),
        );
    }
    let responses = by_topic
        .into_iter()
        .map(|(topic_id, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            ShareFetchableTopicResponse::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions)
        })
        .collect();
    leaders.sort_unstable();
    leaders.dedup();
    let node_endpoints = leaders
        .into_iter()
        .filter_map(|id| {
            let endpoint = broker.endpoint(id, listener)?;
            Some(
                NodeEndpoint::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_string(endpoint.host.clone()))
                    .with_port(i32::from(endpoint.port)),
            )
        })
        .collect();
    let limits = crate::shares::share_limits(broker, group);
    let response = ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(
            i32::try_from(limits.record_lock_duration_ms).unwrap_or(i32::MAX),
        )
        .with_responses(responses)
        .with_node_endpoints(node_endpoints);
    encode(ApiKey::ShareFetch, version, &response)
}

/// An error's code and message for a response field pair.
pub(super) fn split(error: Option<(ResponseError, String)>) -> (i16, Option<StrBytes>) {
    match error {
        None => (0, None),
        Some((code, message)) => (code.code(), Some(StrBytes::from_string(message))),
    }
}
