//! `rill consume TOPIC --share-group GROUP`: reads a topic as one member
//! of a share group (KIP-932), acknowledging each message it prints as
//! `--ack` says. It speaks ShareGroupHeartbeat, ShareFetch and
//! ShareAcknowledge itself (the rdkafka crate has no share consumer):
//! joins through the group's coordinator, opens a share session with the
//! leader of each partition it is assigned, sends each fetch's
//! acknowledgements with the next one, and on leaving acknowledges the
//! last ones while closing its sessions, then leaves the group.
//!
//! Without --follow it stops once a round of fetches brings nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as CloseBatch,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::{
    ApiKey, GroupId, MetadataRequest, ShareAcknowledgeRequest, ShareFetchRequest,
    ShareGroupHeartbeatRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rill_record::{Batches, Records, records_data};
use uuid::Uuid;

use crate::client::ClientArgs;
use crate::connection::{Connection, error_name, refusal};
use crate::consume::{Ack, Format, Printed, write_message};

/// FindCoordinator's key type for a group.
const KEY_TYPE_GROUP: i8 = 0;
/// How long one share fetch waits for records.
const FETCH_WAIT_MS: i32 = 500;
/// Records one fetch acquires at most.
const FETCH_RECORDS_MAX: i32 = 500;
/// Bytes one fetch returns at most.
const FETCH_BYTES_MAX: i32 = 16 << 20;
/// The most bytes one batch may expand to.
const BATCH_EXPANDED_MAX: usize = 64 << 20;

/// What `rill consume --share-group` was asked.
pub(crate) struct ShareConsume<'a> {
    pub topic: &'a str,
    pub group: &'a str,
    pub ack: Ack,
    pub max_messages: Option<u64>,
    pub follow: bool,
    pub format: Format,
    pub client: &'a ClientArgs,
}

/// One leader's share session: its connection, the next epoch, and the
/// offsets acquired by the last fetch, to acknowledge with the next one.
struct Session {
    connection: Connection,
    epoch: i32,
    partitions: Vec<i32>,
    to_acknowledge: BTreeMap<i32, Vec<(i64, i8)>>,
}

pub(crate) fn run(args: &ShareConsume<'_>, out: &mut impl Write) -> anyhow::Result<()> {
    let member = Uuid::new_v4().simple().to_string();
    let mut bootstrap = args.client.connect()?;
    let (topic_id, leaders) = topic_leaders(&mut bootstrap, args.topic)?;
    let mut coordinator = args.client.coordinator(KEY_TYPE_GROUP, args.group)?;
    let join = heartbeat(&mut coordinator, args, (&member, 0), true)?;
    let mut epoch = join.0;
    let interval = Duration::from_millis(u64::try_from(join.1).unwrap_or(5_000));
    let mut next_heartbeat = Instant::now() + interval;
    let assigned = join.2.unwrap_or_default();
    if assigned.is_empty() {
        bail!(
            "the share group {:?} assigned no partition of {}",
            args.group,
            args.topic
        );
    }
    let mut sessions: BTreeMap<i32, Session> = BTreeMap::new();
    for partition in assigned {
        let leader = leaders
            .get(&partition)
            .with_context(|| format!("{}-{partition} has no leader", args.topic))?;
        let session = match sessions.entry(leader.0) {
            std::collections::btree_map::Entry::Occupied(found) => found.into_mut(),
            std::collections::btree_map::Entry::Vacant(empty) => empty.insert(Session {
                connection: args.client.connect_to(&leader.1)?,
                epoch: 0,
                partitions: Vec::new(),
                to_acknowledge: BTreeMap::new(),
            }),
        };
        session.partitions.push(partition);
    }
    let mut printed: u64 = 0;
    let result = loop {
        if args.max_messages.is_some_and(|max| printed >= max) {
            break Ok(());
        }
        let mut got = 0u64;
        for session in sessions.values_mut() {
            let left = args.max_messages.map(|max| max - printed - got);
            match fetch(session, args, (&member, topic_id), left, out) {
                Ok(n) => got += n,
                Err(error) => return Err(error),
            }
        }
        printed += got;
        out.flush()?;
        if got == 0 && !args.follow {
            break Ok(());
        }
        if Instant::now() >= next_heartbeat {
            epoch = heartbeat(&mut coordinator, args, (&member, epoch), false)?.0;
            next_heartbeat = Instant::now() + interval;
        }
    };
    for session in sessions.values_mut() {
        close(session, args, (&member, topic_id))?;
    }
    heartbeat(&mut coordinator, args, (&member, -1), false)?;
    result
}

/// Each partition's leader: (node id, host:port).
type Leaders = BTreeMap<i32, (i32, String)>;

/// The topic's id and its partitions' leaders.
fn topic_leaders(connection: &mut Connection, topic: &str) -> anyhow::Result<(Uuid, Leaders)> {
    let version = connection.version_for(ApiKey::Metadata, 12)?;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_owned())),
        ))]));
    let metadata = connection.call(version, &request)?;
    let found = metadata
        .topics
        .first()
        .context("an empty Metadata response")?;
    if found.error_code != 0 {
        bail!("topic {topic:?}: {}", error_name(found.error_code));
    }
    let brokers: BTreeMap<i32, String> = metadata
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    let leaders = found
        .partitions
        .iter()
        .filter_map(|p| {
            let address = brokers.get(&p.leader_id.0)?;
            Some((p.partition_index, (p.leader_id.0, address.clone())))
        })
        .collect();
    Ok((found.topic_id, leaders))
}

/// One ShareGroupHeartbeat at `epoch` (0 joins, −1 leaves): the member's
/// epoch, the heartbeat interval, and its partitions of the topic if the
/// answer carries an assignment.
fn heartbeat(
    coordinator: &mut Connection,
    args: &ShareConsume<'_>,
    (member, epoch): (&str, i32),
    join: bool,
) -> anyhow::Result<(i32, i32, Option<Vec<i32>>)> {
    let version = coordinator.version_for(ApiKey::ShareGroupHeartbeat, 1)?;
    let topics = join.then(|| vec![TopicName(StrBytes::from_string(args.topic.to_owned()))]);
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(args.group.to_owned())))
        .with_member_id(StrBytes::from_string(member.to_owned()))
        .with_member_epoch(epoch)
        .with_subscribed_topic_names(topics);
    let reply = coordinator.call(version, &request)?;
    if reply.error_code != 0 {
        bail!(
            "share group {:?}: {}",
            args.group,
            refusal(reply.error_code, reply.error_message.as_deref())
        );
    }
    let partitions = reply.assignment.map(|a| {
        a.topic_partitions
            .into_iter()
            .flat_map(|t| t.partitions)
            .collect()
    });
    Ok((reply.member_epoch, reply.heartbeat_interval_ms, partitions))
}

/// One ShareFetch of the session, carrying the last fetch's
/// acknowledgements; prints what it acquired (at most `left`) and returns
/// how many it printed. Records beyond `left` are released unprinted.
fn fetch(
    session: &mut Session,
    args: &ShareConsume<'_>,
    (member, topic_id): (&str, Uuid),
    left: Option<u64>,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let version = session.connection.version_for(ApiKey::ShareFetch, 1)?;
    let partitions = session
        .partitions
        .iter()
        .map(|&p| {
            FetchPartition::default()
                .with_partition_index(p)
                .with_acknowledgement_batches(acknowledgements(
                    session.to_acknowledge.remove(&p).unwrap_or_default(),
                    |first, last, code| {
                        AcknowledgementBatch::default()
                            .with_first_offset(first)
                            .with_last_offset(last)
                            .with_acknowledge_types(vec![code])
                    },
                ))
        })
        .collect();
    let request = ShareFetchRequest::default()
        .with_group_id(Some(GroupId(StrBytes::from_string(args.group.to_owned()))))
        .with_member_id(Some(StrBytes::from_string(member.to_owned())))
        .with_share_session_epoch(session.epoch)
        .with_max_wait_ms(FETCH_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_BYTES_MAX)
        .with_max_records(FETCH_RECORDS_MAX)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions),
        ]);
    let response = session.connection.call(version, &request)?;
    session.epoch = session.epoch.checked_add(1).unwrap_or(1);
    if response.error_code != 0 {
        bail!(
            "share fetch from {}: {}",
            session.connection.address,
            refusal(response.error_code, response.error_message.as_deref())
        );
    }
    let mut printed = 0u64;
    for data in response.responses.iter().flat_map(|t| &t.partitions) {
        if data.acknowledge_error_code != 0 {
            eprintln!(
                "{}-{}: acknowledgements refused: {}",
                args.topic,
                data.partition_index,
                refusal(
                    data.acknowledge_error_code,
                    data.acknowledge_error_message.as_deref()
                )
            );
        }
        if data.error_code != 0 {
            bail!(
                "{}-{}: {}",
                args.topic,
                data.partition_index,
                refusal(data.error_code, data.error_message.as_deref())
            );
        }
        let acquired: Vec<(i64, i64)> = data
            .acquired_records
            .iter()
            .map(|a| (a.first_offset, a.last_offset))
            .collect();
        let records = data.records.clone().unwrap_or_default();
        let budget = left.map(|l| l.saturating_sub(printed));
        let shown = print(
            args,
            data.partition_index,
            (&records, &acquired),
            budget,
            out,
        )?;
        printed += shown.len() as u64;
        // Printed records get --ack; acquired ones not printed (beyond
        // --max-messages, or gaps with no record) go back or are gaps.
        let list = session
            .to_acknowledge
            .entry(data.partition_index)
            .or_default();
        for &(first, last) in &acquired {
            for offset in first..=last {
                list.push((
                    offset,
                    if shown.contains(&offset) {
                        args.ack.code()
                    } else {
                        unshown(&records, offset)
                    },
                ));
            }
        }
    }
    Ok(printed)
}

/// How a record acquired but not printed is acknowledged: RELEASE if the
/// batches hold it (it goes back to the queue), GAP if they do not.
fn unshown(records: &Bytes, offset: i64) -> i8 {
    let held = Batches::new(records).any(|b| {
        !b.attributes().is_control() && b.base_offset() <= offset && offset <= b.last_offset()
    });
    if held { 2 } else { 0 }
}

/// Prints the records of `records` in the acquired ranges, at most
/// `budget`; the offsets printed.
fn print(
    args: &ShareConsume<'_>,
    partition: i32,
    (records, acquired): (&Bytes, &[(i64, i64)]),
    budget: Option<u64>,
    out: &mut impl Write,
) -> anyhow::Result<Vec<i64>> {
    let mut shown = Vec::new();
    for batch in Batches::new(records) {
        if batch.attributes().is_control() {
            continue;
        }
        let data = records_data(&batch, BATCH_EXPANDED_MAX)
            .map_err(|e| anyhow::anyhow!("{}-{partition}: {e}", args.topic))?;
        for record in Records::new(&data, batch.records_count()) {
            let record = record.map_err(|e| anyhow::anyhow!("{}-{partition}: {e}", args.topic))?;
            let offset = batch
                .base_offset()
                .saturating_add(i64::from(record.offset_delta));
            if !acquired.iter().any(|&(f, l)| f <= offset && offset <= l) {
                continue;
            }
            if budget.is_some_and(|b| shown.len() as u64 >= b) {
                return Ok(shown);
            }
            let headers: Vec<(&str, Option<&[u8]>)> = record
                .headers()
                .map(|h| (std::str::from_utf8(h.key).unwrap_or("?"), h.value))
                .collect();
            let message = Printed {
                topic: args.topic,
                partition,
                offset,
                timestamp: Some(batch.record_timestamp(record.timestamp_delta)),
                key: record.key,
                value: record.value,
                headers,
            };
            write_message(out, args.format, &message)?;
            shown.push(offset);
        }
    }
    Ok(shown)
}

/// Runs of consecutive offsets with one type, as acknowledgement batches.
fn acknowledgements<T>(mut offsets: Vec<(i64, i8)>, batch: impl Fn(i64, i64, i8) -> T) -> Vec<T> {
    offsets.sort_unstable();
    let mut runs: Vec<(i64, i64, i8)> = Vec::new();
    for (offset, code) in offsets {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == offset && run.2 == code => run.1 = offset,
            _ => runs.push((offset, offset, code)),
        }
    }
    runs.into_iter()
        .map(|(first, last, code)| batch(first, last, code))
        .collect()
}

/// Sends the last acknowledgements and closes the session (epoch −1):
/// whatever the member still holds goes back to the queue.
fn close(
    session: &mut Session,
    args: &ShareConsume<'_>,
    (member, topic_id): (&str, Uuid),
) -> anyhow::Result<()> {
    if session.epoch == 0 {
        return Ok(());
    }
    let version = session
        .connection
        .version_for(ApiKey::ShareAcknowledge, 1)?;
    let partitions = std::mem::take(&mut session.to_acknowledge)
        .into_iter()
        .map(|(partition, offsets)| {
            AcknowledgePartition::default()
                .with_partition_index(partition)
                .with_acknowledgement_batches(acknowledgements(offsets, |first, last, code| {
                    CloseBatch::default()
                        .with_first_offset(first)
                        .with_last_offset(last)
                        .with_acknowledge_types(vec![code])
                }))
        })
        .collect();
    let request = ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(StrBytes::from_string(args.group.to_owned()))))
        .with_member_id(Some(StrBytes::from_string(member.to_owned())))
        .with_share_session_epoch(-1)
        .with_topics(vec![
            AcknowledgeTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions),
        ]);
    let response = session.connection.call(version, &request)?;
    if response.error_code != 0 {
        bail!(
            "closing the share session with {}: {}",
            session.connection.address,
            refusal(response.error_code, response.error_message.as_deref())
        );
    }
    for data in response.responses.iter().flat_map(|t| &t.partitions) {
        if data.error_code != 0 {
            bail!(
                "{}-{}: acknowledgements refused: {}",
                args.topic,
                data.partition_index,
                refusal(data.error_code, data.error_message.as_deref())
            );
        }
    }
    Ok(())
}
