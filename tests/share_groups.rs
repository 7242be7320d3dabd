//! Share groups (KIP-932) against the real binary: through confluent-kafka's
//! ShareConsumer (librdkafka's share consumer, from PyPI), and with raw
//! requests for what no well-behaved client sends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::cluster::Cluster;

use common::BrokerProcess;
use common::wire::{self, Wire};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::{
    GroupId, MetadataRequest, ShareAcknowledgeRequest, ShareFetchRequest, ShareFetchResponse,
    ShareGroupHeartbeatRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rill_record::{BatchBuilder, NewRecord};
use uuid::Uuid;

const GROUP: &str = "workers";

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_id(wire: &mut Wire, topic: &str) -> Uuid {
    let metadata = wire.send(
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(wire::topic_name(topic))),
        ])),
    );
    metadata.topics[0].topic_id
}

/// Sets the group's share.auto.offset.reset to earliest.
fn from_the_start(wire: &mut Wire, group: &str) {
    use kafka_protocol::messages::IncrementalAlterConfigsRequest;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let reply = wire.send(
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(32)
                .with_resource_name(text(group))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(text("share.auto.offset.reset"))
                        .with_config_operation(0)
                        .with_value(Some(text("earliest"))),
                ]),
        ]),
    );
    assert_eq!(reply.responses[0].error_code, 0, "{reply:?}");
}

/// Waits until the state of `topic`'s partition 0 in GROUP has a
/// coordinator (the members' first heartbeat had `__share_group_state`
/// made), asking as a broker does, with Kafka's key for it.
fn wait_for_share_state(wire: &mut Wire, topic: Uuid) {
    use base64::Engine;
    use kafka_protocol::messages::FindCoordinatorRequest;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(topic.as_bytes());
    let find = FindCoordinatorRequest::default()
        .with_key_type(2)
        .with_coordinator_keys(vec![text(&format!("{GROUP}:{id}:0"))]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while wire.send(4, &find).coordinators[0].error_code != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no share state coordinator in 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn join(wire: &mut Wire, member: &str, topic: &str) -> i32 {
    let reply = wire.send(
        1,
        &ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(text(GROUP)))
            .with_member_id(text(member))
            .with_member_epoch(0)
            .with_subscribed_topic_names(Some(vec![TopicName(text(topic))])),
    );
    assert_eq!(reply.error_code, 0, "{reply:?}");
    let assigned = reply.assignment.expect("a joining member is assigned");
    assert_eq!(assigned.topic_partitions[0].partitions, [0]);
    reply.member_epoch
}

fn share_fetch(
    wire: &mut Wire,
    member: &str,
    (epoch, id): (i32, Uuid),
    acks: Vec<AcknowledgementBatch>,
) -> ShareFetchResponse {
    wire.send(
        1,
        &ShareFetchRequest::default()
            .with_group_id(Some(GroupId(text(GROUP))))
            .with_member_id(Some(text(member)))
            .with_share_session_epoch(epoch)
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_max_records(3)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic_id(id)
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition_index(0)
                            .with_acknowledgement_batches(acks),
                    ]),
            ]),
    )
}

fn acquired(response: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.acquired_records)
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

fn ack_error(response: &ShareFetchResponse) -> i16 {
    response.responses[0].partitions[0].acknowledge_error_code
}

fn accept(first: i64, last: i64) -> AcknowledgementBatch {
    AcknowledgementBatch::default()
        .with_first_offset(first)
        .with_last_offset(last)
        .with_acknowledge_types(vec![1])
}

#[test]
fn two_members_never_get_the_same_record_and_bad_acknowledgements_change_nothing() {
    let broker = BrokerProcess::start(&[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    wire::create_topic_with(&mut wire, "jobs", 1);
    wire::wait_for_group_coordinator(&mut wire, GROUP);
    let id = topic_id(&mut wire, "jobs");
    from_the_start(&mut wire, GROUP);
    join(&mut wire, "a", "jobs");
    join(&mut wire, "b", "jobs");
    wait_for_share_state(&mut wire, id);
    assert!(acquired(&share_fetch(&mut wire, "a", (0, id), vec![])).is_empty());
    assert!(acquired(&share_fetch(&mut wire, "b", (0, id), vec![])).is_empty());
    for values in [["job 0", "job 1", "job 2"], ["job 3", "job 4", "job 5"]] {
        let records: Vec<NewRecord<'_>> = values
            .iter()
            .map(|v| NewRecord::value(v.as_bytes()))
            .collect();
        let batch = BatchBuilder::new(1_000)
            .with_records(&records)
            .finish()
            .unwrap();
        assert_eq!(wire::produce_batch(&mut wire, "jobs", 0, batch).0, 0);
    }
    let a = share_fetch(&mut wire, "a", (1, id), vec![]);
    assert_eq!(acquired(&a), [(0, 2, 1)]);
    assert!(
        a.responses[0].partitions[0]
            .records
            .as_ref()
            .is_some_and(|r| !r.is_empty())
    );
    let b = share_fetch(&mut wire, "b", (1, id), vec![]);
    assert_eq!(acquired(&b), [(3, 5, 1)], "b gets what a does not hold");

    let invalid_state = ResponseError::InvalidRecordState.code();
    // b acknowledges a's records, then offsets never fetched: refused,
    // and a still holds its records.
    assert_eq!(
        ack_error(&share_fetch(&mut wire, "b", (2, id), vec![accept(0, 0)])),
        invalid_state
    );
    assert_eq!(
        ack_error(&share_fetch(&mut wire, "b", (3, id), vec![accept(9, 9)])),
        invalid_state
    );
    // One batch both accepts and repeats an offset: malformed, none applied.
    let repeated = share_fetch(&mut wire, "a", (2, id), vec![accept(0, 1), accept(1, 1)]);
    assert_eq!(ack_error(&repeated), ResponseError::InvalidRequest.code());
    // A wrong session epoch is refused before anything is applied.
    let stale = share_fetch(&mut wire, "a", (7, id), vec![accept(0, 2)]);
    assert_eq!(
        stale.error_code,
        ResponseError::InvalidShareSessionEpoch.code()
    );
    let no_session = share_fetch(&mut wire, "nobody", (1, id), vec![]);
    assert_eq!(
        no_session.error_code,
        ResponseError::ShareSessionNotFound.code()
    );
    // a accepts its records for real; a second accept of them is refused.
    assert_eq!(
        ack_error(&share_fetch(&mut wire, "a", (3, id), vec![accept(0, 2)])),
        0
    );
    assert_eq!(
        ack_error(&share_fetch(&mut wire, "a", (4, id), vec![accept(0, 2)])),
        invalid_state
    );

    // b closes its session without acknowledging: its records go back to
    // the queue, and a gets them on its next fetch, delivered twice.
    let close = wire.send(
        1,
        &ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(text(GROUP))))
            .with_member_id(Some(text("b")))
            .with_share_session_epoch(-1)
            .with_topics(vec![
                AcknowledgeTopic::default()
                    .with_topic_id(id)
                    .with_partitions(vec![
                        AcknowledgePartition::default()
                            .with_partition_index(0)
                            .with_acknowledgement_batches(vec![
                                AckBatch::default()
                                    .with_first_offset(3)
                                    .with_last_offset(3)
                                    .with_acknowledge_types(vec![3]),
                            ]),
                    ]),
            ]),
    );
    assert_eq!(close.error_code, 0, "{close:?}");
    assert_eq!(close.responses[0].partitions[0].error_code, 0);
    let again = share_fetch(&mut wire, "a", (5, id), vec![]);
    assert_eq!(
        acquired(&again),
        [(4, 5, 2)],
        "3 was rejected; 4 and 5 come back"
    );
}

/// Runs tests/clients/share_consumers.py against the brokers of
/// `bootstrap`: its JSON line.
fn share(bootstrap: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec![bootstrap];
    all.extend(args);
    let out = common::security::python_client("share_consumers.py", &all)
        .unwrap_or_else(|e| panic!("share_consumers.py {args:?}: {e}"));
    serde_json::from_str(out.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("share_consumers.py {args:?} said {out:?}: {e}"))
}

/// A one-partition topic, and a share group that reads it from the start.
fn queue(broker: &BrokerProcess, topic: &str, group: &str, configs: &[&str]) {
    let mut wire = Wire::connect(&broker.bootstrap);
    wire::create_topic_with(&mut wire, topic, 1);
    let mut args = vec!["configure", group, "share.auto.offset.reset=earliest"];
    args.extend(configs);
    share(&broker.bootstrap, &args);
}

fn numbers(value: &serde_json::Value) -> Vec<i64> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|n| n.as_i64().unwrap())
        .collect()
}

#[test]
fn four_share_consumers_on_one_partition_all_get_work_and_each_record_is_accepted_once() {
    let broker = BrokerProcess::start(&[]);
    queue(&broker, "tasks", "workers", &[]);
    share(&broker.bootstrap, &["produce", "tasks", "200"]);
    let work = share(&broker.bootstrap, &["work", "workers", "tasks", "200", "4"]);
    let per_consumer = numbers(&work["per_consumer"]);
    assert!(
        per_consumer.iter().all(|n| *n > 0),
        "every consumer works: {work}"
    );
    assert_eq!(work["distinct"], 200, "{work}");
    assert_eq!(work["total"], 200, "no record twice: {work}");
    // Nothing comes back: the next record anyone gets is a new one.
    share(&broker.bootstrap, &["produce", "tasks", "1", "end"]);
    let rest = share(&broker.bootstrap, &["until", "workers", "tasks", "end0"]);
    assert_eq!(rest["before_marker"], serde_json::json!([]), "{rest}");
}

#[test]
fn released_records_come_back_until_the_delivery_limit_and_rejected_ones_never() {
    let broker = BrokerProcess::start(&[]);
    queue(
        &broker,
        "flaky",
        "retriers",
        &["share.delivery.count.limit=2"],
    );
    share(&broker.bootstrap, &["produce", "flaky", "4"]);
    let first = share(
        &broker.bootstrap,
        &["ack", "retriers", "flaky", "4", "release"],
    );
    assert_eq!(numbers(&first["offsets"]), [0, 1, 2, 3]);
    assert_eq!(numbers(&first["deliveries"]), [1, 1, 1, 1]);
    // Released: the same records again, delivered twice — the limit, so
    // releasing them once more archives them.
    let second = share(
        &broker.bootstrap,
        &["ack", "retriers", "flaky", "4", "release"],
    );
    assert_eq!(numbers(&second["offsets"]), [0, 1, 2, 3]);
    assert_eq!(numbers(&second["deliveries"]), [2, 2, 2, 2]);
    share(&broker.bootstrap, &["produce", "flaky", "2", "poison"]);
    let rejected = share(
        &broker.bootstrap,
        &["ack", "retriers", "flaky", "2", "reject"],
    );
    assert_eq!(numbers(&rejected["offsets"]), [4, 5]);
    // Neither the archived nor the rejected come back.
    share(&broker.bootstrap, &["produce", "flaky", "1", "end"]);
    let rest = share(&broker.bootstrap, &["until", "retriers", "flaky", "end0"]);
    assert_eq!(rest["before_marker"], serde_json::json!([]), "{rest}");
}

#[test]
fn records_held_by_a_stalled_consumer_come_back_after_their_lock() {
    let broker = BrokerProcess::start(&["--set", "group.share.min.record.lock.duration.ms=1000"]);
    queue(
        &broker,
        "orders",
        "pickers",
        &["share.record.lock.duration.ms=2000"],
    );
    share(&broker.bootstrap, &["produce", "orders", "5"]);
    // It takes five records and then does nothing, connected.
    let (mut holder, held) = hold(&broker, "pickers", "orders", "5");
    assert_eq!(held, [0, 1, 2, 3, 4]);
    // Another member gets them once their locks expire, delivered twice.
    let again = share(
        &broker.bootstrap,
        &["ack", "pickers", "orders", "5", "accept"],
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(numbers(&again["offsets"]), [0, 1, 2, 3, 4]);
    assert_eq!(numbers(&again["deliveries"]), [2, 2, 2, 2, 2]);
}

#[test]
fn records_of_a_killed_consumer_come_back_without_waiting_for_their_lock() {
    let broker = BrokerProcess::start(&[]);
    // A lock longer than any step of share_consumers.py waits.
    queue(
        &broker,
        "parcels",
        "couriers",
        &["share.record.lock.duration.ms=60000"],
    );
    share(&broker.bootstrap, &["produce", "parcels", "5"]);
    let (mut holder, held) = hold(&broker, "couriers", "parcels", "5");
    assert_eq!(held, [0, 1, 2, 3, 4]);
    // Its connection closes with it: its share session ends there, long
    // before the locks would expire.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let within_20_s = ["ack", "couriers", "parcels", "5", "accept", "20"];
    let again = share(&broker.bootstrap, &within_20_s);
    assert_eq!(numbers(&again["offsets"]), [0, 1, 2, 3, 4]);
    assert_eq!(numbers(&again["deliveries"]), [2, 2, 2, 2, 2]);
}

#[test]
fn a_read_committed_share_group_never_gets_records_of_aborted_transactions() {
    let broker = BrokerProcess::start(&[]);
    queue(
        &broker,
        "ledger",
        "auditors",
        &["share.isolation.level=read_committed"],
    );
    share(
        &broker.bootstrap,
        &["produce-txn", "ledger", "3", "aborted", "abort"],
    );
    share(
        &broker.bootstrap,
        &["produce-txn", "ledger", "2", "kept", "commit"],
    );
    share(&broker.bootstrap, &["produce", "ledger", "1", "end"]);
    let read = share(&broker.bootstrap, &["until", "auditors", "ledger", "end0"]);
    let values: Vec<&str> = read["before_marker"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["kept0", "kept1"], "{read}");
}

/// `rill ARGS... --bootstrap` the broker: its stdout lines.
fn rill(broker: &BrokerProcess, args: &[&str], input: &str) -> Vec<String> {
    use std::io::Write;
    let mut child = std::process::Command::new(common::rill_binary())
        .args(args)
        .args(["--bootstrap", &broker.bootstrap])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "rill {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn rill_consume_share_group_takes_acknowledges_and_releases() {
    let broker = BrokerProcess::start(&[]);
    queue(&broker, "chores", "helpers", &[]);
    rill(&broker, &["produce", "chores"], "wash\ndry\nfold\niron\n");
    let consume = |extra: &[&str]| {
        let mut args = vec!["consume", "chores", "--share-group", "helpers"];
        args.extend(extra);
        rill(&broker, &args, "")
    };
    // Two taken and released: back in the queue, with the two not shown.
    assert_eq!(
        consume(&["--max-messages", "2", "--ack", "release"]),
        ["wash", "dry"]
    );
    assert_eq!(
        consume(&["--max-messages", "1", "--ack", "reject"]),
        ["wash"]
    );
    assert_eq!(consume(&[]), ["dry", "fold", "iron"]);
    // Everything is done: nothing more comes.
    assert!(consume(&[]).is_empty());
}

/// Starts tests/clients/share_consumers.py `hold`: a consumer that takes
/// `count` records and acknowledges none; its process and what it holds.
fn hold(
    broker: &BrokerProcess,
    group: &str,
    topic: &str,
    count: &str,
) -> (std::process::Child, Vec<i64>) {
    use std::io::BufRead;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/clients/share_consumers.py"
    );
    let mut holder = std::process::Command::new(common::security::python_clients())
        .args([script, &broker.bootstrap, "hold", group, topic, count])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let held: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("hold said {line:?}: {e}"));
    (holder, numbers(&held["held"]))
}

#[test]
fn acknowledgements_survive_a_killed_broker_and_held_records_come_back() {
    let mut broker = BrokerProcess::start(&[]);
    queue(&broker, "payments", "settlers", &[]);
    share(&broker.bootstrap, &["produce", "payments", "10"]);
    let accepted = share(
        &broker.bootstrap,
        &["ack", "settlers", "payments", "4", "accept"],
    );
    assert_eq!(numbers(&accepted["offsets"]), [0, 1, 2, 3]);
    let (mut holder, held) = hold(&broker, "settlers", "payments", "3");
    assert_eq!(held, [4, 5, 6]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    // The broker dies with 4, 5 and 6 locked to a consumer that is gone.
    broker.kill();
    broker.restart();
    // What was accepted is never delivered again; what was held comes
    // back at once (its locks died with the broker), then the rest.
    let rest = share(
        &broker.bootstrap,
        &["ack", "settlers", "payments", "6", "accept"],
    );
    assert_eq!(numbers(&rest["offsets"]), [4, 5, 6, 7, 8, 9]);
    share(&broker.bootstrap, &["produce", "payments", "1", "end"]);
    let after = share(
        &broker.bootstrap,
        &["until", "settlers", "payments", "end0"],
    );
    assert_eq!(after["before_marker"], serde_json::json!([]), "{after}");
}

#[test]
fn a_group_starting_at_the_end_keeps_its_start_across_a_restart() {
    let mut broker = BrokerProcess::start(&[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    wire::create_topic_with(&mut wire, "news", 1);
    share(&broker.bootstrap, &["produce", "news", "3", "old"]);
    // A member's first fetch starts the share-partition at the end
    // (share.auto.offset.reset=latest): after the three old records.
    let id = topic_id(&mut wire, "news");
    wire::wait_for_group_coordinator(&mut wire, GROUP);
    join(&mut wire, "first", "news");
    wait_for_share_state(&mut wire, id);
    assert!(acquired(&share_fetch(&mut wire, "first", (0, id), vec![])).is_empty());
    drop(wire);
    broker.kill();
    broker.restart();
    share(&broker.bootstrap, &["produce", "news", "1", "later"]);
    // The group goes on from where it started, not from the end as it is
    // after the restart: "later0" comes, the old records never.
    let read = share(&broker.bootstrap, &["until", GROUP, "news", "later0"]);
    assert_eq!(read["before_marker"], serde_json::json!([]), "{read}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_group_loses_no_acknowledgement_or_dead_letter_when_its_partition_leader_is_killed()
{
    use kafka_protocol::messages::FindCoordinatorRequest;
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    // One partition of share state: its leader coordinates every key.
    let one_state_partition = ["--set", "share.coordinator.state.topic.num.partitions=1"];
    let mut cluster = Cluster::start(3, &one_state_partition);
    cluster.wait_for_brokers(3);
    let mut wire = Wire::connect(&cluster.brokers[0].bootstrap);
    let find = FindCoordinatorRequest::default()
        .with_key_type(2)
        .with_coordinator_keys(vec![text("any:AAAAAAAAAAAAAAAAAAAAAA:0")]);
    let coordinator = loop {
        let found = wire.send(4, &find).coordinators.remove(0);
        if found.error_code == 0 {
            break found.node_id.0;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // The partition is led elsewhere: its leader reads and writes its
    // share state through the coordinator.
    let others: Vec<i32> = (1..=3).filter(|n| *n != coordinator).collect();
    let admin: rdkafka::admin::AdminClient<_> = cluster.client_config().create().unwrap();
    let replicas = [others[0], coordinator, others[1]];
    let assignment: [&[i32]; 1] = [&replicas];
    let topic = NewTopic::new("ledger", 1, TopicReplication::Variable(&assignment))
        .set("min.insync.replicas", "2");
    let dead_letter_topic = NewTopic::new("dlq.ledger", 1, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "2")
        .set("errors.deadletterqueue.group.enable", "true");
    let created = admin
        .create_topics(&[topic, dead_letter_topic], &AdminOptions::new())
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let (leader, _) = cluster.partition_state("ledger", 0);
    assert_eq!(leader, others[0]);
    let bootstrap = cluster.bootstrap.clone();
    let configured = [
        "configure",
        "clerks",
        "share.auto.offset.reset=earliest",
        "errors.deadletterqueue.topic.name=dlq.ledger",
    ];
    share(&bootstrap, &configured);
    share(&bootstrap, &["produce", "ledger", "10"]);
    let accepted = share(&bootstrap, &["ack", "clerks", "ledger", "4", "accept"]);
    assert_eq!(numbers(&accepted["offsets"]), [0, 1, 2, 3]);
    let rejected = share(&bootstrap, &["ack", "clerks", "ledger", "2", "reject"]);
    assert_eq!(numbers(&rejected["offsets"]), [4, 5]);
    // The leader dies; the next one reads the state it wrote.
    cluster.node(leader).kill();
    let rejected = share(&bootstrap, &["ack", "clerks", "ledger", "1", "reject"]);
    assert_eq!(numbers(&rejected["offsets"]), [6]);
    let rest = share(&bootstrap, &["ack", "clerks", "ledger", "3", "accept"]);
    assert_eq!(numbers(&rest["offsets"]), [7, 8, 9]);
    share(&bootstrap, &["produce", "ledger", "1", "end"]);
    let after = share(&bootstrap, &["until", "clerks", "ledger", "end0"]);
    assert_eq!(after["before_marker"], serde_json::json!([]), "{after}");
    // Each rejected record is in the dead-letter topic once.
    let (dead, held) = dead_letters(&bootstrap, "dlq.ledger", 3);
    assert_eq!(dead.keys().copied().collect::<Vec<_>>(), [4, 5, 6]);
    assert_eq!(held, 3, "no record written twice");
}

#[test]
fn a_released_record_waits_out_the_groups_redelivery_backoff() {
    let broker = BrokerProcess::start(&[]);
    let backoff = ["rill.share.redelivery.backoff.ms=10000"];
    queue(&broker, "hooks", "callers", &backoff);
    share(&broker.bootstrap, &["produce", "hooks", "1"]);
    let first = share(
        &broker.bootstrap,
        &["ack", "callers", "hooks", "1", "release"],
    );
    assert_eq!(numbers(&first["deliveries"]), [1]);
    // Released, it stays out of the queue for the backoff: not in 3 s...
    let mut args = vec![broker.bootstrap.as_str()];
    args.extend(["ack", "callers", "hooks", "1", "accept", "3"]);
    let early = common::security::python_client("share_consumers.py", &args).unwrap_err();
    assert!(early.contains("only 0 of 1"), "{early}");
    // ...but after it.
    let later = share(
        &broker.bootstrap,
        &["ack", "callers", "hooks", "1", "accept"],
    );
    assert_eq!(numbers(&later["deliveries"]), [2]);
}

/// The dead letters of `topic`, read with confluent-kafka's classic
/// consumer once there are `count`: by source offset, each with its
/// headers and value; and how many records the topic holds (more than
/// `count` would be a record written twice).
fn dead_letters(
    bootstrap: &str,
    topic: &str,
    count: usize,
) -> (std::collections::BTreeMap<i64, serde_json::Value>, i64) {
    let read = share(bootstrap, &["dead-letters", topic, &count.to_string()]);
    let mut by_offset = std::collections::BTreeMap::new();
    for record in read["records"].as_array().unwrap() {
        let offset: i64 = record["headers"]["__dlq.errors.offset"]
            .as_str()
            .unwrap_or_else(|| panic!("no source offset: {record}"))
            .parse()
            .unwrap();
        let earlier = by_offset.insert(offset, record.clone());
        assert!(earlier.is_none(), "offset {offset} dead-lettered twice");
    }
    (by_offset, read["held"].as_i64().unwrap())
}

#[test]
fn rejected_and_exhausted_records_go_to_the_dead_letter_topic_with_their_headers() {
    let broker = BrokerProcess::start(&[
        "--set",
        "errors.deadletterqueue.auto.create.topics.enable=true",
    ]);
    queue(
        &broker,
        "orders",
        "packers",
        &[
            "share.delivery.count.limit=2",
            "errors.deadletterqueue.topic.name=dlq.orders",
            "errors.deadletterqueue.copy.record.enable=true",
        ],
    );
    share(&broker.bootstrap, &["produce", "orders", "6"]);
    let rejected = share(
        &broker.bootstrap,
        &["ack", "packers", "orders", "2", "reject"],
    );
    assert_eq!(numbers(&rejected["offsets"]), [0, 1]);
    for _ in 0..2 {
        let released = share(
            &broker.bootstrap,
            &["ack", "packers", "orders", "4", "release"],
        );
        assert_eq!(numbers(&released["offsets"]), [2, 3, 4, 5]);
    }
    // The broker made dlq.orders (errors.deadletterqueue.auto.create.topics.enable)
    // and wrote each record given up on to it once.
    let (dead, held) = dead_letters(&broker.bootstrap, "dlq.orders", 6);
    assert_eq!(held, 6, "no record written twice");
    assert_eq!(dead.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
    for (offset, record) in &dead {
        let headers = &record["headers"];
        let (deliveries, why) = if *offset < 2 {
            ("1", "Offset rejected by client.")
        } else {
            ("2", "Offset delivery count exceeded the threshold.")
        };
        assert_eq!(headers["__dlq.errors.topic"], "orders", "{record}");
        assert_eq!(headers["__dlq.errors.partition"], "0", "{record}");
        assert_eq!(headers["__dlq.errors.group"], "packers", "{record}");
        assert_eq!(
            headers["__dlq.errors.delivery.count"], deliveries,
            "{record}"
        );
        assert_eq!(headers["__dlq.errors.message"], why, "{record}");
        // errors.deadletterqueue.copy.record.enable: the record itself too.
        assert_eq!(record["value"], format!("m{offset}"), "{record}");
    }
    // None of them comes back to the group.
    share(&broker.bootstrap, &["produce", "orders", "1", "end"]);
    let rest = share(&broker.bootstrap, &["until", "packers", "orders", "end0"]);
    assert_eq!(rest["before_marker"], serde_json::json!([]), "{rest}");
}

#[test]
fn a_topic_not_open_to_share_groups_gets_no_dead_letters() {
    let broker = BrokerProcess::start(&[]);
    queue(
        &broker,
        "mail",
        "senders",
        &["errors.deadletterqueue.topic.name=dlq.mail"],
    );
    // dlq.mail exists but does not set errors.deadletterqueue.group.enable.
    rill(&broker, &["topic", "create", "dlq.mail"], "");
    share(&broker.bootstrap, &["produce", "mail", "2"]);
    share(
        &broker.bootstrap,
        &["ack", "senders", "mail", "2", "reject"],
    );
    // The rejected records are archived all the same: the group goes on.
    share(&broker.bootstrap, &["produce", "mail", "1", "end"]);
    let rest = share(&broker.bootstrap, &["until", "senders", "mail", "end0"]);
    assert_eq!(rest["before_marker"], serde_json::json!([]), "{rest}");
    let mut wire = Wire::connect(&broker.bootstrap);
    assert_eq!(wire::log_end(&mut wire, "dlq.mail"), 0);
}

#[test]
fn a_killed_broker_dead_letters_each_record_exactly_once() {
    let mut broker = BrokerProcess::start(&[]);
    queue(
        &broker,
        "jobs",
        "runners",
        &["errors.deadletterqueue.topic.name=dlq.jobs"],
    );
    rill(
        &broker,
        &[
            "topic",
            "create",
            "dlq.jobs",
            "--config",
            "errors.deadletterqueue.group.enable=true",
        ],
        "",
    );
    share(&broker.bootstrap, &["produce", "jobs", "300"]);
    // Every record is rejected; the broker is killed once the first dead
    // letters are written, with the rest archiving or in flight.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/clients/share_consumers.py"
    );
    let mut rejecter = std::process::Command::new(common::security::python_clients())
        .args([
            script,
            &broker.bootstrap,
            "until",
            "runners",
            "jobs",
            "never",
            "reject",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut wire = Wire::connect(&broker.bootstrap);
    common::cluster::wait_until(std::time::Duration::from_secs(60), "a dead letter", || {
        wire::log_end(&mut wire, "dlq.jobs") > 0
    });
    broker.kill();
    rejecter.kill().unwrap();
    rejecter.wait().unwrap();
    broker.restart();
    // After the restart the rest are rejected too: each of the 300 is in
    // the dead-letter topic once, whatever the crash cut short.
    share(&broker.bootstrap, &["produce", "jobs", "1", "end"]);
    share(
        &broker.bootstrap,
        &["until", "runners", "jobs", "end0", "reject"],
    );
    let (dead, held) = dead_letters(&broker.bootstrap, "dlq.jobs", 300);
    assert_eq!(dead.len(), 300);
    assert_eq!(dead.keys().next_back(), Some(&299));
    assert_eq!(held, 300, "no record written twice");
    // Not copied (errors.deadletterqueue.copy.record.enable is false).
    assert_eq!(dead[&7]["value"], serde_json::Value::Null);
}

fn describe_offsets(wire: &mut Wire, group: &str) -> (i16, Vec<(String, i32, i64)>) {
    use kafka_protocol::messages::DescribeShareGroupOffsetsRequest;
    use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(text(group)))
            .with_topics(None),
    ]);
    let described = wire.send(0, &request).groups.remove(0);
    let offsets = described
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.topic_name.to_string(), p.partition_index, p.start_offset))
        })
        .collect();
    (described.error_code, offsets)
}

fn alter_offsets(wire: &mut Wire, group: &str, topic: &str, start: i64) -> i16 {
    use kafka_protocol::messages::AlterShareGroupOffsetsRequest;
    use kafka_protocol::messages::alter_share_group_offsets_request::{
        AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
    };
    let request = AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_topics(vec![
            AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(text(topic)))
                .with_partitions(vec![
                    AlterShareGroupOffsetsRequestPartition::default()
                        .with_partition_index(0)
                        .with_start_offset(start),
                ]),
        ]);
    let response = wire.send(0, &request);
    if response.error_code != 0 {
        return response.error_code;
    }
    response.responses[0].partitions[0].error_code
}

fn delete_group(wire: &mut Wire, group: &str) -> i16 {
    use kafka_protocol::messages::DeleteGroupsRequest;
    let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(text(group))]);
    wire.send(2, &request).results[0].error_code
}

#[test]
fn share_groups_are_listed_described_moved_and_deleted() {
    use kafka_protocol::messages::DeleteShareGroupOffsetsRequest;
    use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
    let broker = BrokerProcess::start(&[]);
    queue(&broker, "tasks", "admins", &[]);
    share(&broker.bootstrap, &["produce", "tasks", "10"]);
    let accepted = share(
        &broker.bootstrap,
        &["ack", "admins", "tasks", "4", "accept"],
    );
    assert_eq!(numbers(&accepted["offsets"]), [0, 1, 2, 3]);
    let mut wire = Wire::connect(&broker.bootstrap);
    wire::wait_for_group_coordinator(&mut wire, "admins");
    assert_eq!(
        describe_offsets(&mut wire, "admins"),
        (0, vec![("tasks".to_string(), 0, 4)])
    );
    // One consumer holds two records: the group is listed and described
    // with them in flight, and its offsets cannot move while it is there.
    let (mut holder, held) = hold(&broker, "admins", "tasks", "2");
    assert_eq!(held, [4, 5]);
    assert!(rill(&broker, &["group", "list"], "").contains(&"admins\tStable".to_string()));
    let described = rill(&broker, &["group", "describe", "admins", "--json"], "");
    let view: serde_json::Value = serde_json::from_str(&described[0]).unwrap();
    assert_eq!(view["group_type"], "share", "{view}");
    assert_eq!(view["members"].as_array().unwrap().len(), 1, "{view}");
    let partition = &view["partitions"][0];
    assert_eq!(partition["start_offset"], 4, "{view}");
    assert_eq!(partition["acquired"], 2, "{view}");
    assert_eq!(partition["delivery_counts"]["1"], 2, "{view}");
    assert_eq!(
        alter_offsets(&mut wire, "admins", "tasks", 8),
        ResponseError::NonEmptyGroup.code()
    );
    assert_eq!(
        delete_group(&mut wire, "admins"),
        ResponseError::NonEmptyGroup.code()
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    // The killed consumer's session is gone at once, but it stays a member
    // until its session times out: a new group takes over from here.
    share(
        &broker.bootstrap,
        &["configure", "movers", "share.auto.offset.reset=earliest"],
    );
    let first = share(
        &broker.bootstrap,
        &["ack", "movers", "tasks", "1", "accept"],
    );
    assert_eq!(numbers(&first["offsets"]), [0]);
    // Moved to 8: the next records are 8 and 9.
    assert_eq!(alter_offsets(&mut wire, "movers", "tasks", 8), 0);
    assert_eq!(
        describe_offsets(&mut wire, "movers"),
        (0, vec![("tasks".to_string(), 0, 8)])
    );
    let moved = share(
        &broker.bootstrap,
        &["ack", "movers", "tasks", "2", "accept"],
    );
    assert_eq!(numbers(&moved["offsets"]), [8, 9]);
    // Its offsets deleted, it starts again where share.auto.offset.reset says.
    let request = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(text("movers")))
        .with_topics(vec![
            DeleteShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(text("tasks"))),
        ]);
    let deleted = wire.send(0, &request);
    assert_eq!(
        (deleted.error_code, deleted.responses[0].error_code),
        (0, 0)
    );
    let again = share(
        &broker.bootstrap,
        &["ack", "movers", "tasks", "1", "accept"],
    );
    assert_eq!(numbers(&again["offsets"]), [0]);
    // Deleted, the group is gone: not listed, nothing to describe.
    assert_eq!(delete_group(&mut wire, "movers"), 0);
    assert_eq!(
        describe_offsets(&mut wire, "movers").0,
        ResponseError::GroupIdNotFound.code()
    );
    assert!(
        !rill(&broker, &["group", "list"], "")
            .iter()
            .any(|l| l.starts_with("movers"))
    );
}

/// The bytes `node`'s log holds for `topic`'s partition 0, committed or
/// not (DescribeLogDirs).
fn log_bytes(address: &str, topic: &str) -> i64 {
    use kafka_protocol::messages::DescribeLogDirsRequest;
    let mut wire = Wire::connect(address);
    let dirs = wire.send(1, &DescribeLogDirsRequest::default().with_topics(None));
    dirs.results
        .iter()
        .flat_map(|d| &d.topics)
        .filter(|t| t.name.as_str() == topic)
        .flat_map(|t| &t.partitions)
        .filter(|p| p.partition_index == 0)
        .map(|p| p.partition_size)
        .sum()
}

async fn create(
    admin: &rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>,
    topic: rdkafka::admin::NewTopic<'_>,
) {
    let options = rdkafka::admin::AdminOptions::new();
    let created = admin.create_topics(&[topic], &options).await.unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_in_doubt_when_its_writer_dies_is_written_once() {
    use kafka_protocol::messages::FindCoordinatorRequest;
    use rdkafka::admin::{NewTopic, TopicReplication};
    // One partition of share state; the internal topics on one broker
    // each, so that the one that pauses holds only the dead letters; a
    // paused broker stays in the ISRs for 10 s, long enough for a write to
    // be appended and left waiting.
    let settings = [
        "--set",
        "share.coordinator.state.topic.num.partitions=1",
        "--set",
        "share.coordinator.state.topic.replication.factor=1",
        "--set",
        "offsets.topic.replication.factor=1",
        "--set",
        "broker.session.timeout.ms=10000",
        "--set",
        "replica.lag.time.max.ms=10000",
    ];
    let mut cluster = Cluster::start(3, &settings);
    cluster.wait_for_brokers(3);
    let bootstrap = cluster.bootstrap.clone();
    let admin: rdkafka::admin::AdminClient<_> = cluster.client_config().create().unwrap();
    // The share state's partition is made by a first share group.
    create(&admin, NewTopic::new("warm", 1, TopicReplication::Fixed(1))).await;
    share(
        &bootstrap,
        &["configure", "warmers", "share.auto.offset.reset=earliest"],
    );
    share(&bootstrap, &["produce", "warm", "1"]);
    share(&bootstrap, &["ack", "warmers", "warm", "1", "accept"]);
    let (state_leader, _) = cluster.partition_state("__share_group_state", 0);
    // The writer serves the source partition and the state; the group's
    // coordinator is not the broker that will pause.
    let paused = if state_leader == 3 { 2 } else { 3 };
    let other = 6 - state_leader - paused;
    let mut wire = Wire::connect(&cluster.node(other).bootstrap.clone());
    let group = (0..)
        .map(|n| format!("doubters-{n}"))
        .find(|group| {
            let find = FindCoordinatorRequest::default().with_key(text(group));
            let found = loop {
                let found = wire.send(3, &find);
                if found.error_code == 0 {
                    break found.node_id.0;
                }
            };
            found != paused
        })
        .unwrap();
    let source: [&[i32]; 1] = [&[state_leader]];
    let dead: [&[i32]; 1] = [&[other, paused]];
    let work = NewTopic::new("work", 1, TopicReplication::Variable(&source));
    create(&admin, work).await;
    create(
        &admin,
        NewTopic::new("dlq.work", 1, TopicReplication::Variable(&dead))
            .set("min.insync.replicas", "2")
            .set("errors.deadletterqueue.group.enable", "true"),
    )
    .await;
    share(
        &bootstrap,
        &[
            "configure",
            &group,
            "share.auto.offset.reset=earliest",
            "errors.deadletterqueue.topic.name=dlq.work",
        ],
    );
    share(&bootstrap, &["produce", "work", "3"]);
    // The dead-letter partition's follower pauses: its leader appends the
    // dead letters but cannot get them acknowledged, so their writer does
    // not know whether they are written.
    let pid = cluster.node(paused).pid().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let rejected = share(&bootstrap, &["ack", &group, "work", "3", "reject"]);
    assert_eq!(numbers(&rejected["offsets"]), [0, 1, 2]);
    let leader = cluster.node(other).bootstrap.clone();
    common::cluster::wait_until(
        std::time::Duration::from_secs(60),
        "the dead letters appended",
        || log_bytes(&leader, "dlq.work") > 0,
    );
    // Their writer dies with the write in doubt; then the follower comes
    // back and the letters are committed.
    cluster.node(state_leader).kill();
    signal("-CONT");
    cluster.node(state_leader).restart();
    // The restarted writer repeats the write as it was: the partition
    // knows it as a duplicate, and each rejected record is there once.
    share(&bootstrap, &["produce", "work", "1", "end"]);
    let after = share(&bootstrap, &["until", &group, "work", "end0"]);
    assert_eq!(after["before_marker"], serde_json::json!([]), "{after}");
    let nodes: Vec<String> = (1..=3).map(|n| cluster.node(n).bootstrap.clone()).collect();
    common::cluster::wait_until(
        std::time::Duration::from_secs(60),
        "the rejected records archived",
        || {
            nodes.iter().any(|node| {
                describe_offsets(&mut Wire::connect(node), &group)
                    == (0, vec![("work".to_string(), 0, 4)])
            })
        },
    );
    let (dead, held) = dead_letters(&bootstrap, "dlq.work", 3);
    assert_eq!(dead.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(held, 3, "no record written twice");
}
