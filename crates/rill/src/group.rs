//! `rill group`: list, describe, reset the offsets of, and delete consumer
//! groups. Membership comes from ListGroups + DescribeGroups (librdkafka's
//! group list), committed offsets from OffsetFetch and offsets are reset
//! with OffsetCommit outside a generation, as Kafka allows for a group
//! without members. Results go to stdout, confirmations to stderr.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{ArgGroup, Args, Subcommand};
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::{Decodable, Message};
use rdkafka::admin::AdminClient;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::groups::{GroupInfo, GroupList};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::client::{CliContext, ClientArgs, block_on, offsets_for_time, topic_partitions};
use crate::table::{dash, join, write_table};
use crate::timestamp;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rill group list\n  \
    rill group describe billing\n  \
    rill group reset-offsets billing --topic events --to-earliest --dry-run\n  \
    rill group reset-offsets billing --topic events --to-datetime 2026-11-22T10:00:00Z\n  \
    rill group delete billing")]
pub(crate) struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List consumer groups, one per line: the group id, a tab, its state.
    List,
    /// Show a group's state, members, committed offsets and lag.
    Describe(DescribeArgs),
    /// Move a group's committed offsets of a topic (the group must have no
    /// members).
    ResetOffsets(ResetArgs),
    /// Delete groups and their committed offsets (the groups must have no
    /// members).
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rill group describe billing\n  \
    rill group describe billing --json\n\n\
    Text output, as kafka-consumer-groups --describe prints it: the group, its\n\
    members (if any) with what each is assigned, then one line per partition of\n\
    the topics the group has committed offsets for (or is assigned):\n  \
    GROUP    STATE  PROTOCOL-TYPE  PROTOCOL  MEMBERS\n  \
    billing  Empty  consumer       range     0\n\n  \
    TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID  HOST  CLIENT-ID\n  \
    events  0          40              42              2    -            -     -\n\n\
    LOG-END-OFFSET is the high watermark; LAG is LOG-END-OFFSET - CURRENT-OFFSET;\n\
    '-' where there is no committed offset or no member.\n\n\
    --json prints one object:\n  \
    {\"group\":\"billing\",\"state\":\"Empty\",\"protocol_type\":\"consumer\",\"protocol\":\"range\",\n   \
    \"members\":[{\"member_id\":..,\"client_id\":..,\"client_host\":..,\n                \
    \"assignment\":[{\"topic\":\"events\",\"partitions\":[0]}]}],\n   \
    \"offsets\":[{\"topic\":\"events\",\"partition\":0,\"committed_offset\":40,\n                \
    \"log_end_offset\":42,\"lag\":2,\"member_id\":null}]}")]
struct DescribeArgs {
    /// The group id.
    group: String,
    /// One JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("target").required(true)
        .args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])),
    after_help = "New offsets are clamped into [log start offset, high watermark] of each\n\
    partition. The group must be inactive (state Empty or Dead: no members), as\n\
    with kafka-consumer-groups; stop its consumers first.\n\n\
    Examples:\n  \
    rill group reset-offsets billing --topic events --to-earliest --dry-run\n  \
    rill group reset-offsets billing --topic events --to-latest\n  \
    rill group reset-offsets billing --topic events --partition 2 --to-offset 1000\n  \
    rill group reset-offsets billing --topic events --shift-by -50\n  \
    rill group reset-offsets billing --topic events --to-datetime 2026-11-22T10:00:00+01:00\n\n\
    Output, one line per partition (also with --dry-run):\n  \
    GROUP    TOPIC   PARTITION  CURRENT-OFFSET  NEW-OFFSET\n  \
    billing  events  0          40              0")]
struct ResetArgs {
    /// The group id.
    group: String,
    /// The topic whose offsets move.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Only this partition [default: every partition of the topic].
    #[arg(long, value_name = "N")]
    partition: Option<i32>,
    /// To the log start offset (the first message still stored).
    #[arg(long)]
    to_earliest: bool,
    /// To the high watermark (nothing left to read).
    #[arg(long)]
    to_latest: bool,
    /// To this offset.
    #[arg(long, value_name = "N")]
    to_offset: Option<i64>,
    /// To the first message at or after this time: RFC 3339
    /// (2026-11-22T10:00:00Z) or epoch milliseconds; the high watermark
    /// where no message is that recent.
    #[arg(long, value_name = "TIME")]
    to_datetime: Option<String>,
    /// By this many messages from the committed offset (negative: back).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Print the plan without committing it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  rill group delete billing\n  rill group delete billing audit")]
struct DeleteArgs {
    /// The groups to delete.
    #[arg(required = true)]
    groups: Vec<String>,
}

type Client = BaseConsumer<CliContext>;

pub(crate) fn run(args: GroupArgs) -> anyhow::Result<()> {
    match args.command {
        GroupCommand::List => run_list(&args.client),
        GroupCommand::Describe(describe) => run_describe(&args.client, describe),
        GroupCommand::ResetOffsets(reset) => run_reset(&args.client, reset),
        GroupCommand::Delete(delete) => run_delete(&args.client, delete),
    }
}

/// A consumer that speaks for `group` without joining it: it is never
/// subscribed, so it only looks up and commits offsets.
fn client_for(client: &ClientArgs, group: &str) -> anyhow::Result<Client> {
    client
        .config(&[
            ("group.id", group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("allow.auto.create.topics", "false"),
        ])?
        .create_with_context(CliContext)
        .context("cannot create the consumer client")
}

fn run_list(client: &ClientArgs) -> anyhow::Result<()> {
    let consumer = client_for(client, "rill-group")?;
    let list = group_list(&consumer, client, None)?;
    let mut groups: BTreeMap<String, String> = list
        .groups()
        .iter()
        .map(|g| (g.name().to_string(), g.state().to_string()))
        .collect();
    // Share groups, which DescribeGroups (behind librdkafka's list) does
    // not know.
    groups.extend(crate::share_group::list(client)?);
    let mut out = std::io::stdout().lock();
    for (name, state) in groups {
        if state.is_empty() {
            writeln!(out, "{name}")?;
        } else {
            writeln!(out, "{name}\t{state}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// ListGroups to every broker, then DescribeGroups of the groups found
/// (all, or only `group`).
fn group_list(
    consumer: &Client,
    client: &ClientArgs,
    group: Option<&str>,
) -> anyhow::Result<GroupList> {
    // librdkafka's group listing first waits for the cluster's metadata,
    // polling for it about once a second; asking for it here makes the
    // wait end at once.
    consumer
        .fetch_metadata(None, client.timeout())
        .with_context(|| format!("cannot fetch metadata from {}", client.bootstrap))?;
    consumer
        .fetch_group_list(group, client.timeout())
        .with_context(|| match group {
            Some(group) => format!("cannot describe group {group:?}"),
            None => format!("cannot list the groups of {}", client.bootstrap),
        })
}

/// What DescribeGroups says about one group; `None` from [`describe_group`]
/// when no broker knows it.
#[derive(Debug, Serialize)]
struct GroupDescription {
    group: String,
    /// "classic", or "consumer" for a KIP-848 group.
    group_protocol: String,
    state: String,
    /// A consumer group's epoch and the epoch of its target assignment.
    #[serde(skip_serializing_if = "Option::is_none")]
    group_epoch: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assignment_epoch: Option<i32>,
    protocol_type: String,
    protocol: String,
    members: Vec<MemberDescription>,
    offsets: Vec<PartitionOffsets>,
}

#[derive(Debug, Serialize)]
struct MemberDescription {
    member_id: String,
    client_id: String,
    client_host: String,
    assignment: Vec<AssignedTopic>,
    /// A consumer group member's epoch and target assignment (what the
    /// broker is moving it to); `None` in a classic group.
    #[serde(skip_serializing_if = "Option::is_none")]
    member_epoch: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_assignment: Option<Vec<AssignedTopic>>,
}

#[derive(Debug, Serialize)]
struct AssignedTopic {
    topic: String,
    partitions: Vec<i32>,
}

#[derive(Debug, Serialize)]
struct PartitionOffsets {
    topic: String,
    partition: i32,
    /// None where the group has committed nothing.
    committed_offset: Option<i64>,
    /// The high watermark.
    log_end_offset: i64,
    lag: Option<i64>,
    /// The member assigned the partition, if any.
    member_id: Option<String>,
    #[serde(skip)]
    client_host: Option<String>,
    #[serde(skip)]
    client_id: Option<String>,
}

/// The group's state and members, `None` when no broker lists it.
fn describe_group(
    consumer: &Client,
    client: &ClientArgs,
    group: &str,
) -> anyhow::Result<Option<GroupDescription>> {
    let list = group_list(consumer, client, Some(group))?;
    let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
        return Ok(None);
    };
    Ok(Some(GroupDescription {
        group: group.to_string(),
        group_protocol: "classic".to_string(),
        state: info.state().to_string(),
        group_epoch: None,
        assignment_epoch: None,
        protocol_type: info.protocol_type().to_string(),
        protocol: info.protocol().to_string(),
        members: members(info)?,
        offsets: Vec::new(),
    }))
}

fn members(info: &GroupInfo) -> anyhow::Result<Vec<MemberDescription>> {
    let consumer_protocol = info.protocol_type() == "consumer";
    let mut members = Vec::new();
    for member in info.members() {
        let assignment = match member.assignment() {
            Some(bytes) if consumer_protocol && !bytes.is_empty() => decode_assignment(bytes)
                .with_context(|| {
                    format!(
                        "undecodable assignment of member {:?} of group {:?}",
                        member.id(),
                        info.name()
                    )
                })?,
            _ => Vec::new(),
        };
        members.push(MemberDescription {
            member_id: member.id().to_string(),
            client_id: member.client_id().to_string(),
            client_host: member.client_host().to_string(),
            assignment,
            member_epoch: None,
            target_assignment: None,
        });
    }
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    Ok(members)
}

/// Decodes the consumer protocol's assignment: a version (i16), then the
/// assignment as of that version. Versions newer than this client knows
/// are read as the newest it knows, as Kafka's clients do.
fn decode_assignment(bytes: &[u8]) -> anyhow::Result<Vec<AssignedTopic>> {
    let (Some(&[high, low]), Some(rest)) = (bytes.get(..2), bytes.get(2..)) else {
        bail!("{} bytes: expected at least a 2-byte version", bytes.len());
    };
    let version = i16::from_be_bytes([high, low]);
    anyhow::ensure!(version >= 0, "version {version}: expected 0 or more");
    let mut buf = Bytes::copy_from_slice(rest);
    let version = version.min(ConsumerProtocolAssignment::VERSIONS.max);
    let assignment = ConsumerProtocolAssignment::decode(&mut buf, version)?;
    let mut topics: Vec<AssignedTopic> = assignment
        .assigned_partitions
        .into_iter()
        .map(|t| {
            let mut partitions = t.partitions;
            partitions.sort_unstable();
            AssignedTopic {
                topic: t.topic.0.to_string(),
                partitions,
            }
        })
        .collect();
    topics.sort_by(|a, b| a.topic.cmp(&b.topic));
    Ok(topics)
}

fn run_describe(client: &ClientArgs, args: DescribeArgs) -> anyhow::Result<()> {
    let group = &args.group;
    // A broker that cannot say (no share groups, no FindCoordinator v4)
    // leaves the group to the classic description.
    if let Ok(Some(share)) = crate::share_group::describe(client, group) {
        let mut out = std::io::stdout().lock();
        if args.json {
            serde_json::to_writer(&mut out, &share)?;
            writeln!(out)?;
        } else {
            crate::share_group::write(&mut out, &share)?;
        }
        out.flush()?;
        return Ok(());
    }
    let consumer = client_for(client, group)?;
    let description = match crate::consumer_group::describe(client, group)? {
        Some(view) => Some(consumer_group_description(group, view)),
        None => describe_group(&consumer, client, group)?,
    };
    let committed = committed_offsets(&consumer, client, None)?;
    let mut description = match description {
        Some(description) => description,
        None if committed.is_empty() => bail!("group {group:?} does not exist"),
        None => GroupDescription {
            group: group.clone(),
            group_protocol: "classic".to_string(),
            group_epoch: None,
            assignment_epoch: None,
            state: "Dead".to_string(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
            offsets: Vec::new(),
        },
    };
    description.offsets = partition_offsets(&consumer, client, &description.members, &committed)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &description)?;
        writeln!(out)?;
    } else {
        write_description(&mut out, &description)?;
    }
    out.flush()?;
    Ok(())
}

/// A KIP-848 consumer group in the shape `rill group describe` shows.
fn consumer_group_description(
    group: &str,
    view: crate::consumer_group::ConsumerGroupView,
) -> GroupDescription {
    let topics = |assigned: Vec<(String, Vec<i32>)>| -> Vec<AssignedTopic> {
        assigned
            .into_iter()
            .map(|(topic, partitions)| AssignedTopic { topic, partitions })
            .collect()
    };
    GroupDescription {
        group: group.to_string(),
        group_protocol: "consumer".to_string(),
        state: view.state,
        group_epoch: Some(view.epoch),
        assignment_epoch: Some(view.assignment_epoch),
        protocol_type: "consumer".to_string(),
        protocol: view.assignor,
        members: view
            .members
            .into_iter()
            .map(|m| MemberDescription {
                member_id: m.member_id,
                client_id: m.client_id,
                client_host: m.client_host,
                assignment: topics(m.assignment),
                member_epoch: Some(m.member_epoch),
                target_assignment: Some(topics(m.target_assignment)),
            })
            .collect(),
        offsets: Vec::new(),
    }
}

/// The group's committed offsets, by topic and partition: of `topic` only,
/// or of every topic the cluster has.
fn committed_offsets(
    consumer: &Client,
    client: &ClientArgs,
    topic: Option<&str>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let metadata = consumer
        .fetch_metadata(topic, client.timeout())
        .with_context(|| format!("cannot fetch metadata from {}", client.bootstrap))?;
    let mut query = TopicPartitionList::new();
    for t in metadata.topics() {
        if t.error().is_some() || t.name().starts_with("__") {
            continue;
        }
        for p in t.partitions() {
            query.add_partition(t.name(), p.id());
        }
    }
    let mut committed = BTreeMap::new();
    if query.count() == 0 {
        return Ok(committed);
    }
    let found = consumer
        .committed_offsets(query, client.timeout())
        .context("cannot fetch the group's committed offsets")?;
    for element in found.elements() {
        if let Offset::Offset(offset) = element.offset() {
            committed.insert((element.topic().to_string(), element.partition()), offset);
        }
    }
    Ok(committed)
}

/// One line per partition that has a committed offset or a member.
fn partition_offsets(
    consumer: &Client,
    client: &ClientArgs,
    members: &[MemberDescription],
    committed: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<Vec<PartitionOffsets>> {
    let mut owners: BTreeMap<(String, i32), &MemberDescription> = BTreeMap::new();
    for member in members {
        for assigned in &member.assignment {
            for &partition in &assigned.partitions {
                owners.insert((assigned.topic.clone(), partition), member);
            }
        }
    }
    let partitions: BTreeSet<&(String, i32)> = committed.keys().chain(owners.keys()).collect();
    let mut offsets = Vec::new();
    for key in partitions {
        let (topic, partition) = key;
        let (_, high) = consumer
            .fetch_watermarks(topic, *partition, client.timeout())
            .with_context(|| format!("cannot fetch the watermarks of {topic}-{partition}"))?;
        let committed_offset = committed.get(key).copied();
        let owner = owners.get(key);
        offsets.push(PartitionOffsets {
            topic: topic.clone(),
            partition: *partition,
            committed_offset,
            log_end_offset: high,
            lag: committed_offset.map(|c| high.saturating_sub(c).max(0)),
            member_id: owner.map(|m| m.member_id.clone()),
            client_host: owner.map(|m| m.client_host.clone()),
            client_id: owner.map(|m| m.client_id.clone()),
        });
    }
    Ok(offsets)
}

fn write_description(out: &mut impl Write, group: &GroupDescription) -> std::io::Result<()> {
    let epoch = |e: Option<i32>| e.map_or("-".to_string(), |e| e.to_string());
    write_table(
        out,
        &[
            "GROUP",
            "GROUP-PROTOCOL",
            "STATE",
            "EPOCH",
            "ASSIGNMENT-EPOCH",
            "PROTOCOL-TYPE",
            "PROTOCOL",
            "MEMBERS",
        ],
        &[vec![
            group.group.clone(),
            group.group_protocol.clone(),
            group.state.clone(),
            epoch(group.group_epoch),
            epoch(group.assignment_epoch),
            dash(&group.protocol_type),
            dash(&group.protocol),
            group.members.len().to_string(),
        ]],
    )?;
    if !group.members.is_empty() {
        let rows: Vec<Vec<String>> = group
            .members
            .iter()
            .map(|m| {
                let shown = |assigned: &[AssignedTopic]| -> String {
                    let topics: Vec<String> = assigned
                        .iter()
                        .map(|a| format!("{}:{}", a.topic, join(&a.partitions)))
                        .collect();
                    dash(&topics.join(";"))
                };
                vec![
                    m.member_id.clone(),
                    dash(&m.client_host),
                    dash(&m.client_id),
                    epoch(m.member_epoch),
                    shown(&m.assignment),
                    m.target_assignment
                        .as_deref()
                        .map_or("-".to_string(), shown),
                ]
            })
            .collect();
        writeln!(out)?;
        write_table(
            out,
            &[
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID",
                "EPOCH",
                "ASSIGNMENT",
                "TARGET-ASSIGNMENT",
            ],
            &rows,
        )?;
    }
    let rows: Vec<Vec<String>> = group
        .offsets
        .iter()
        .map(|p| {
            vec![
                p.topic.clone(),
                p.partition.to_string(),
                p.committed_offset
                    .map_or("-".to_string(), |o| o.to_string()),
                p.log_end_offset.to_string(),
                p.lag.map_or("-".to_string(), |l| l.to_string()),
                dash(p.member_id.as_deref().unwrap_or("")),
                dash(p.client_host.as_deref().unwrap_or("")),
                dash(p.client_id.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    writeln!(out)?;
    write_table(
        out,
        &[
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        &rows,
    )
}

/// Where the offsets move.
#[derive(Debug, Clone, Copy)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Time { epoch_ms: i64 },
    Shift(i64),
}

impl Target {
    fn from_args(args: &ResetArgs) -> anyhow::Result<Target> {
        Ok(if args.to_earliest {
            Target::Earliest
        } else if args.to_latest {
            Target::Latest
        } else if let Some(offset) = args.to_offset {
            Target::Offset(offset)
        } else if let Some(text) = &args.to_datetime {
            Target::Time {
                epoch_ms: timestamp::parse_epoch_ms(text)?,
            }
        } else if let Some(shift) = args.shift_by {
            Target::Shift(shift)
        } else {
            bail!(
                "name where to reset to: --to-earliest, --to-latest, --to-offset, --to-datetime or --shift-by"
            )
        })
    }
}

/// One partition's move.
#[derive(Debug)]
struct Move {
    partition: i32,
    current: Option<i64>,
    new: i64,
}

fn run_reset(client: &ClientArgs, args: ResetArgs) -> anyhow::Result<()> {
    let target = Target::from_args(&args)?;
    let (group, topic) = (&args.group, &args.topic);
    let consumer = client_for(client, group)?;
    if let Some(description) = describe_group(&consumer, client, group)? {
        let inactive = matches!(description.state.as_str(), "Empty" | "Dead" | "");
        if !inactive || !description.members.is_empty() {
            bail!(
                "cannot reset the offsets of group {group:?}: it is {} with {} member(s); \
                 offsets can only be reset while the group is inactive (Empty), so stop its \
                 consumers first",
                description.state,
                description.members.len()
            );
        }
    }
    let partitions = topic_partitions(&consumer, client, topic, args.partition)?;
    let committed = committed_offsets(&consumer, client, Some(topic))?;
    let by_time = match target {
        Target::Time { epoch_ms } => {
            offsets_for_time(&consumer, client, topic, &partitions, epoch_ms)?
        }
        _ => BTreeMap::new(),
    };
    let mut moves = Vec::new();
    for &partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, client.timeout())
            .with_context(|| format!("cannot fetch the watermarks of {topic}-{partition}"))?;
        let current = committed.get(&(topic.clone(), partition)).copied();
        let wanted = match target {
            Target::Earliest => low,
            Target::Latest => high,
            Target::Offset(offset) => offset,
            // No message at or after the time: the end.
            Target::Time { .. } => by_time.get(&partition).copied().flatten().unwrap_or(high),
            Target::Shift(shift) => match current {
                Some(current) => current.saturating_add(shift),
                None => bail!(
                    "cannot shift the offset of {topic}-{partition}: group {group:?} has \
                     committed no offset for it"
                ),
            },
        };
        let new = wanted.clamp(low, high);
        if new != wanted {
            eprintln!(
                "{topic}-{partition}: offset {wanted} is outside {low}..={high}; using {new}"
            );
        }
        moves.push(Move {
            partition,
            current,
            new,
        });
    }
    if !args.dry_run {
        commit(&consumer, client, group, topic, &moves)?;
    }
    let rows: Vec<Vec<String>> = moves
        .iter()
        .map(|m| {
            vec![
                group.clone(),
                topic.clone(),
                m.partition.to_string(),
                m.current.map_or("-".to_string(), |c| c.to_string()),
                m.new.to_string(),
            ]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    write_table(
        &mut out,
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "NEW-OFFSET",
        ],
        &rows,
    )?;
    out.flush()?;
    if args.dry_run {
        eprintln!("dry run: nothing committed");
    } else {
        eprintln!(
            "committed {} offset(s) of {topic} for group {group}",
            moves.len()
        );
    }
    Ok(())
}

/// Commits the new offsets for the group outside a generation (generation
/// -1, no member id), which the coordinator accepts only while the group
/// has no members (so a member joining since the check makes it fail);
/// then reads them back. Nothing is assigned: librdkafka commits explicit
/// offsets without an assignment, and no fetcher starts.
fn commit(
    consumer: &Client,
    client: &ClientArgs,
    group: &str,
    topic: &str,
    moves: &[Move],
) -> anyhow::Result<()> {
    let mut offsets = TopicPartitionList::new();
    for m in moves {
        offsets.add_partition_offset(topic, m.partition, Offset::Offset(m.new))?;
    }
    consumer
        .commit(&offsets, CommitMode::Sync)
        .with_context(|| format!("cannot commit the offsets of group {group:?}"))?;
    let committed = committed_offsets(consumer, client, Some(topic))?;
    for m in moves {
        let found = committed.get(&(topic.to_string(), m.partition)).copied();
        anyhow::ensure!(
            found == Some(m.new),
            "{topic}-{}: committed {}, yet the group's offset reads back as {found:?}",
            m.partition,
            m.new
        );
    }
    Ok(())
}

fn run_delete(client: &ClientArgs, args: DeleteArgs) -> anyhow::Result<()> {
    let admin: AdminClient<CliContext> = client
        .config(&[])?
        .create_with_context(CliContext)
        .context("cannot create the admin client")?;
    let names: Vec<&str> = args.groups.iter().map(String::as_str).collect();
    let results = block_on(admin.delete_groups(&names, &client.admin_options()))?
        .context("cannot delete groups")?;
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(name) => eprintln!("deleted group {name}"),
            Err((name, RDKafkaErrorCode::NonEmptyGroup)) => failures.push(format!(
                "{name:?}: the group still has members (NON_EMPTY_GROUP); stop its consumers first"
            )),
            Err((name, code)) => failures.push(format!("{name:?}: {code}")),
        }
    }
    if !failures.is_empty() {
        bail!("cannot delete group {}", failures.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::{ConsumerProtocolAssignment, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::decode_assignment;

    fn encoded(version: i16) -> Vec<u8> {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_static_str("b")))
                .with_partitions(vec![3, 1]),
            TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_static_str("a")))
                .with_partitions(vec![0]),
        ]);
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        assignment.encode(&mut buf, version.min(3)).unwrap();
        buf.to_vec()
    }

    #[test]
    fn assignments_decode_sorted_at_every_version() {
        for version in [0, 1, 3, 7] {
            let topics = decode_assignment(&encoded(version)).unwrap();
            let flat: Vec<(String, Vec<i32>)> = topics
                .into_iter()
                .map(|t| (t.topic, t.partitions))
                .collect();
            assert_eq!(
                flat,
                [("a".to_string(), vec![0]), ("b".to_string(), vec![1, 3])],
                "version {version}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_assignment(&[0]).is_err());
        assert!(decode_assignment(&[0xff, 0xff, 0, 0]).is_err());
        assert!(decode_assignment(&[0, 0, 0, 0, 0, 9]).is_err());
    }
}
