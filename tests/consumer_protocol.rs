//! KIP-848 consumer groups (`group.protocol=consumer`) through librdkafka
//! against the real broker: the broker assigns the partitions, members
//! join and leave while the others keep consuming, committed offsets
//! survive a kill -9, and a group carries on when its coordinator's node
//! is killed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::BrokerProcess;
use common::cluster::{Cluster, wait_until};
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

const WAIT: Duration = Duration::from_secs(60);
const PARTITIONS: i32 = 6;

/// Short heartbeats and sessions, so that tests move quickly.
const FAST_GROUPS: [&str; 8] = [
    "--set",
    "group.consumer.min.heartbeat.interval.ms=100",
    "--set",
    "group.consumer.heartbeat.interval.ms=200",
    "--set",
    "group.consumer.min.session.timeout.ms=2000",
    "--set",
    "group.consumer.session.timeout.ms=6000",
];

fn member_config(mut config: ClientConfig, group: &str) -> ClientConfig {
    config
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    config
}

fn member(broker: &BrokerProcess, group: &str) -> BaseConsumer {
    member_config(broker.client_config(), group)
        .create()
        .unwrap()
}

async fn create_topic(config: &ClientConfig, name: &str, replication: i32) {
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    let topic = NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(replication));
    let results = admin
        .create_topics(&[topic], &AdminOptions::new().operation_timeout(Some(WAIT)))
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
}

/// `count` records per partition, payloads "p-i" from `first`.
async fn produce(producer: &FutureProducer, topic: &str, first: i32, count: i32) {
    for p in 0..PARTITIONS {
        for i in first..first + count {
            producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .partition(p)
                        .payload(&format!("{p}-{i}")),
                    Timeout::After(WAIT),
                )
                .await
                .unwrap();
        }
    }
}

fn assigned(consumer: &BaseConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// Polls every member until each holds partitions and together they hold
/// them all, once each.
fn wait_for_spread(members: &[&BaseConsumer]) {
    wait_until(WAIT, "every member assigned, all partitions once", || {
        for m in members {
            assert!(m.poll(Duration::from_millis(20)).is_none_or(|r| r.is_ok()));
        }
        let sets: Vec<BTreeSet<i32>> = members.iter().map(|m| assigned(m)).collect();
        let total: usize = sets.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        sets.iter().all(|s| !s.is_empty()) && total == union.len() && union.len() == 6
    });
}

fn payload(message: &rdkafka::message::BorrowedMessage<'_>) -> String {
    String::from_utf8(message.payload().unwrap().to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_share_six_partitions_and_read_every_record_once() {
    let broker = BrokerProcess::start(&FAST_GROUPS);
    create_topic(&broker.client_config(), "spread", 1).await;
    let members: Vec<BaseConsumer> = (0..3).map(|_| member(&broker, "spreaders")).collect();
    for m in &members {
        m.subscribe(&["spread"]).unwrap();
    }
    let refs: Vec<&BaseConsumer> = members.iter().collect();
    wait_for_spread(&refs);
    produce(&broker.producer(&[]), "spread", 0, 20).await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_member = [0usize; 3];
    let deadline = Instant::now() + WAIT;
    while seen.len() < 120 {
        assert!(Instant::now() < deadline, "read only {} of 120", seen.len());
        for (i, m) in members.iter().enumerate() {
            if let Some(message) = m.poll(Duration::from_millis(20)) {
                *seen.entry(payload(&message.unwrap())).or_default() += 1;
                per_member[i] += 1;
            }
        }
    }
    // Drain what else might come: nothing may come twice.
    for _ in 0..10 {
        for m in &members {
            if let Some(message) = m.poll(Duration::from_millis(20)) {
                *seen.entry(payload(&message.unwrap())).or_default() += 1;
            }
        }
    }
    assert!(seen.values().all(|n| *n == 1), "duplicates: {seen:?}");
    assert!(per_member.iter().all(|n| *n > 0), "{per_member:?}");

    // `rill group describe` tells the protocol, and each member's current
    // and target assignment (the same, once reconciled).
    let output = std::process::Command::new(common::rill_binary())
        .args(["group", "describe", "spreaders", "--json"])
        .args(["--bootstrap", &broker.bootstrap])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let described: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(described["group_protocol"], "consumer");
    assert_eq!(described["protocol"], "uniform");
    let members = described["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for m in members {
        assert_eq!(m["assignment"], m["target_assignment"], "{m}");
        assert_eq!(
            m["assignment"][0]["partitions"].as_array().unwrap().len(),
            2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joins_and_one_leaves_while_the_others_keep_consuming() {
    let broker = BrokerProcess::start(&FAST_GROUPS);
    create_topic(&broker.client_config(), "flow", 1).await;
    let producer = broker.producer(&[]);
    let a = member(&broker, "flowing");
    let b = member(&broker, "flowing");
    a.subscribe(&["flow"]).unwrap();
    b.subscribe(&["flow"]).unwrap();
    wait_for_spread(&[&a, &b]);
    // Records keep coming: a batch per partition each round.
    let mut batch = 0;
    let mut next_batch = || {
        batch += 1;
        batch
    };
    let c = member(&broker, "flowing");
    c.subscribe(&["flow"]).unwrap();
    // Until c holds partitions, a and b keep theirs and keep reading.
    let (mut read_a, mut read_b) = (0, 0);
    let deadline = Instant::now() + WAIT;
    while assigned(&c).is_empty() {
        assert!(Instant::now() < deadline, "c never got partitions");
        produce(&producer, "flow", next_batch() * 10, 1).await;
        for (consumer, count) in [(&a, &mut read_a), (&b, &mut read_b)] {
            while let Some(message) = consumer.poll(Duration::from_millis(20)) {
                message.unwrap();
                *count += 1;
            }
            assert!(!assigned(consumer).is_empty(), "a member lost everything");
        }
        assert!(c.poll(Duration::from_millis(20)).is_none_or(|r| r.is_ok()));
    }
    // And from c's join on, both go on reading: nobody stopped the world.
    wait_until(WAIT, "a and b reading since c joined", || {
        futures_lite_block(produce(&producer, "flow", 500, 1));
        for (consumer, count) in [(&a, &mut read_a), (&b, &mut read_b)] {
            while let Some(message) = consumer.poll(Duration::from_millis(20)) {
                message.unwrap();
                *count += 1;
            }
            assert!(!assigned(consumer).is_empty(), "a member lost everything");
        }
        assert!(c.poll(Duration::from_millis(20)).is_none_or(|r| r.is_ok()));
        read_a > 0 && read_b > 0
    });
    wait_for_spread(&[&a, &b, &c]);
    // c leaves: a and b keep reading while they take its partitions.
    drop(c);
    let (mut read_a, mut read_b) = (0, 0);
    wait_until(WAIT, "a and b holding every partition again", || {
        for (consumer, count) in [(&a, &mut read_a), (&b, &mut read_b)] {
            while let Some(message) = consumer.poll(Duration::from_millis(20)) {
                message.unwrap();
                *count += 1;
            }
            assert!(!assigned(consumer).is_empty(), "a member lost everything");
        }
        let union: BTreeSet<i32> = assigned(&a).union(&assigned(&b)).copied().collect();
        union.len() == 6
    });
    // Fresh records reach both.
    let (before_a, before_b) = (read_a, read_b);
    wait_until(WAIT, "both reading after c left", || {
        futures_lite_block(produce(&producer, "flow", 1000, 1));
        for (consumer, count) in [(&a, &mut read_a), (&b, &mut read_b)] {
            while let Some(message) = consumer.poll(Duration::from_millis(20)) {
                message.unwrap();
                *count += 1;
            }
        }
        read_a > before_a && read_b > before_b
    });
}

/// Runs a future to completion from inside a sync closure on this
/// multi-threaded runtime.
fn futures_lite_block<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_resume_after_a_kill_9() {
    let mut broker = BrokerProcess::start(&FAST_GROUPS);
    create_topic(&broker.client_config(), "durable", 1).await;
    produce(&broker.producer(&[]), "durable", 0, 5).await;
    {
        let consumer = member(&broker, "keepers");
        consumer.subscribe(&["durable"]).unwrap();
        let mut read = 0;
        let deadline = Instant::now() + WAIT;
        while read < 30 {
            assert!(Instant::now() < deadline, "read only {read} of 30");
            if let Some(message) = consumer.poll(Duration::from_millis(50)) {
                message.unwrap();
                read += 1;
            }
        }
        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
        let (epoch, members) = describe(&broker, "keepers").unwrap();
        assert_eq!(members.len(), 1);
        broker.kill();
        // The group's epoch and its member's assignment were in
        // __consumer_offsets: the restarted broker has them back.
        broker.restart();
        let mut restored = None;
        wait_until(WAIT, "the consumer group loaded", || {
            restored = describe(&broker, "keepers");
            restored.is_some()
        });
        let (restored_epoch, restored_members) = restored.unwrap();
        assert!(restored_epoch >= epoch, "{restored_epoch} < {epoch}");
        // Unless its session ended meanwhile, the member is back as it was.
        assert!(restored_members.is_empty() || restored_members == members);
        drop(consumer);
    }
    produce(&broker.producer(&[]), "durable", 5, 5).await;
    let consumer = member(&broker, "keepers");
    consumer.subscribe(&["durable"]).unwrap();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < 30 {
        assert!(Instant::now() < deadline, "read only {} of 30", seen.len());
        if let Some(message) = consumer.poll(Duration::from_millis(50)) {
            let text = payload(&message.unwrap());
            let i: i32 = text.split('-').nth(1).unwrap().parse().unwrap();
            assert!(i >= 5, "{text} was committed before the kill");
            seen.insert(text);
        }
    }
}

#[test]
fn a_group_carries_on_when_its_coordinator_is_killed() {
    let mut settings: Vec<&str> = vec!["--set", "offsets.topic.num.partitions=3"];
    settings.extend_from_slice(&FAST_GROUPS);
    let mut cluster = Cluster::start(3, &settings);
    let producer: FutureProducer = {
        let mut config = cluster.client_config();
        config.set("linger.ms", "0").set("acks", "all");
        config.create().unwrap()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        create_topic(&cluster.client_config(), "orders", 3).await;
        produce(&producer, "orders", 0, 50).await;
    });
    let consumer: BaseConsumer = member_config(cluster.client_config(), "billing")
        .create()
        .unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let mut seen = BTreeSet::new();
    let mut consume_until = |count: usize| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while seen.len() < count {
            assert!(
                Instant::now() < deadline,
                "read only {} of {count}",
                seen.len()
            );
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                seen.insert(payload(&message));
                if seen.len() % 50 == 0 {
                    // It may fail while the coordinator moves; the next covers it.
                    let _ = consumer.commit_message(&message, CommitMode::Sync);
                }
            }
        }
    };
    consume_until(150);
    let coordinator = find_coordinator(&cluster, "billing");
    cluster.node(coordinator).kill();
    runtime.block_on(produce(&producer, "orders", 50, 50));
    consume_until(600);
    // Every record read is committed at the new coordinator: by the last
    // commit above, or (if it fell while the coordinator moved) by this one.
    wait_until(WAIT, "a commit at the new coordinator", || {
        let _ = consumer.poll(Duration::from_millis(50));
        let committed = match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => true,
            // Nothing new to commit.
            Err(rdkafka::error::KafkaError::ConsumerCommit(code)) => {
                code == rdkafka::types::RDKafkaErrorCode::NoOffset
            }
            Err(_) => false,
        };
        committed
            && consumer
                .committed(Duration::from_secs(5))
                .is_ok_and(|offsets| {
                    let sum: i64 = offsets
                        .elements()
                        .iter()
                        .filter_map(|e| e.offset().to_raw())
                        .filter(|o| *o >= 0)
                        .sum();
                    sum == 600
                })
    });
    assert_ne!(find_coordinator(&cluster, "billing"), coordinator);
}

/// ConsumerGroupDescribe of `group` on a broker alone: its epoch and each
/// member's (id, epoch, assignment); `None` until it answers without error.
#[allow(clippy::type_complexity)]
fn describe(broker: &BrokerProcess, group: &str) -> Option<(i32, Vec<(String, i32, Vec<i32>)>)> {
    let mut wire = common::wire::Wire::connect(&broker.bootstrap);
    let request =
        kafka_protocol::messages::ConsumerGroupDescribeRequest::default().with_group_ids(vec![
            kafka_protocol::messages::GroupId(kafka_protocol::protocol::StrBytes::from_string(
                group.to_string(),
            )),
        ]);
    let response = wire.send(1, &request);
    let described = response.groups.into_iter().next()?;
    if described.error_code != 0 {
        return None;
    }
    let members = described
        .members
        .into_iter()
        .map(|m| {
            let mut partitions: Vec<i32> = m
                .assignment
                .topic_partitions
                .iter()
                .flat_map(|t| t.partitions.iter().copied())
                .collect();
            partitions.sort_unstable();
            (m.member_id.to_string(), m.member_epoch, partitions)
        })
        .collect();
    Some((described.group_epoch, members))
}

fn find_coordinator(cluster: &Cluster, group: &str) -> i32 {
    let mut coordinator = -1;
    wait_until(WAIT, "a coordinator", || {
        let broker = cluster.brokers.iter().find(|b| b.is_running()).unwrap();
        let mut wire = common::wire::Wire::connect(&broker.bootstrap);
        let request = kafka_protocol::messages::FindCoordinatorRequest::default().with_key(
            kafka_protocol::protocol::StrBytes::from_string(group.to_string()),
        );
        let response = wire.send(3, &request);
        coordinator = response.node_id.0;
        response.error_code == 0
    });
    coordinator
}

/// The offset committed for `topic` partition `partition` by `group`, as
/// a classic consumer's OffsetFetch reads it.
fn committed_offset(
    broker: &BrokerProcess,
    group: &str,
    topic: &str,
    partition: i32,
) -> rdkafka::Offset {
    let checker = broker.consumer(&[("group.id", group)]);
    let mut wanted = rdkafka::TopicPartitionList::new();
    wanted.add_partition(topic, partition);
    let committed = checker.committed_offsets(wanted, WAIT).unwrap();
    committed.find_partition(topic, partition).unwrap().offset()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_consumer_group_is_deleted_with_its_offsets_and_stays_deleted() {
    let mut broker = BrokerProcess::start(&FAST_GROUPS);
    create_topic(&broker.client_config(), "doomed", 1).await;
    produce(&broker.producer(&[]), "doomed", 0, 2).await;
    let consumer = member(&broker, "doomers");
    consumer.subscribe(&["doomed"]).unwrap();
    let mut read = 0;
    let deadline = Instant::now() + WAIT;
    while read < 12 {
        assert!(Instant::now() < deadline, "read only {read} of 12");
        if let Some(message) = consumer.poll(Duration::from_millis(50)) {
            message.unwrap();
            read += 1;
        }
    }
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    assert_eq!(
        committed_offset(&broker, "doomers", "doomed", 0),
        rdkafka::Offset::Offset(2)
    );

    // With a member, the group is not deleted.
    let admin = broker.admin();
    let options = AdminOptions::new().operation_timeout(Some(WAIT));
    let deleted = admin.delete_groups(&["doomers"], &options).await.unwrap();
    assert_eq!(
        deleted[0].as_ref().unwrap_err().1,
        rdkafka::error::RDKafkaErrorCode::NonEmptyGroup,
        "a consumer group with a member is not deleted"
    );
    assert_eq!(describe(&broker, "doomers").unwrap().1.len(), 1);

    // Once it leaves, the group goes, offsets and all.
    std::thread::spawn(move || drop(consumer)).join().unwrap();
    wait_until(WAIT, "the member gone", || {
        describe(&broker, "doomers").is_some_and(|(_, members)| members.is_empty())
    });
    let deleted = admin.delete_groups(&["doomers"], &options).await.unwrap();
    assert!(deleted[0].is_ok(), "{deleted:?}");
    assert_eq!(describe(&broker, "doomers"), None);
    assert_eq!(
        committed_offset(&broker, "doomers", "doomed", 0),
        rdkafka::Offset::Invalid
    );

    // The tombstones are in __consumer_offsets: a restart keeps it gone.
    drop(admin);
    broker.stop();
    broker.restart();
    let mut wire = common::wire::Wire::connect(&broker.bootstrap);
    common::wire::wait_for_group_coordinator(&mut wire, "doomers");
    assert_eq!(describe(&broker, "doomers"), None);
    assert_eq!(
        committed_offset(&broker, "doomers", "doomed", 0),
        rdkafka::Offset::Invalid
    );
}

/// A member driven by hand over the wire: what it last heard.
struct RawMember {
    id: &'static str,
    epoch: i32,
    owned: Vec<kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions>,
}

const BAD_GROUP: &str = "bad-input";

fn raw_heartbeat(
    wire: &mut common::wire::Wire,
    request: kafka_protocol::messages::ConsumerGroupHeartbeatRequest,
) -> kafka_protocol::messages::ConsumerGroupHeartbeatResponse {
    wire.send(1, &request.with_group_id(common::wire::group_id(BAD_GROUP)))
}

/// A join (epoch 0) subscribing to `topic`, or a heartbeat reporting what
/// it owns; takes the assignment it is given.
fn beat(wire: &mut common::wire::Wire, member: &mut RawMember, topic: &str) {
    use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    use kafka_protocol::protocol::StrBytes;
    let mut request = ConsumerGroupHeartbeatRequest::default()
        .with_member_id(StrBytes::from_static_str(member.id))
        .with_member_epoch(member.epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(Some(member.owned.clone()));
    if member.epoch == 0 {
        request = request
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![common::wire::topic_name(topic)]));
    }
    let response = raw_heartbeat(wire, request);
    assert_eq!(response.error_code, 0, "{response:?}");
    member.epoch = response.member_epoch;
    if let Some(assignment) = response.assignment {
        member.owned = assignment
            .topic_partitions
            .into_iter()
            .map(|t| {
                TopicPartitions::default()
                    .with_topic_id(t.topic_id)
                    .with_partitions(t.partitions)
            })
            .collect();
    }
}

/// The whole ConsumerGroupDescribe answer for BAD_GROUP.
fn described(
    wire: &mut common::wire::Wire,
) -> kafka_protocol::messages::consumer_group_describe_response::DescribedGroup {
    let request = kafka_protocol::messages::ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![common::wire::group_id(BAD_GROUP)]);
    let group = wire.send(1, &request).groups.remove(0);
    assert_eq!(group.error_code, 0, "{group:?}");
    group
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    use kafka_protocol::ResponseError;
    use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
    use kafka_protocol::protocol::StrBytes;
    // Default sessions (45 s): the hand-driven members stay in the group.
    let broker = BrokerProcess::start(&[]);
    let mut wire = common::wire::Wire::connect(&broker.bootstrap);
    common::wire::create_topic_with(&mut wire, "bad", 4);
    common::wire::wait_for_group_coordinator(&mut wire, BAD_GROUP);
    let mut members = [
        RawMember {
            id: "member-a",
            epoch: 0,
            owned: Vec::new(),
        },
        RawMember {
            id: "member-b",
            epoch: 0,
            owned: Vec::new(),
        },
    ];
    // Heartbeat both until the group is stable: each owns its target.
    let mut rounds = 0;
    loop {
        for member in &mut members {
            beat(&mut wire, member, "bad");
        }
        let group = described(&mut wire);
        if group.group_state.as_str() == "Stable" {
            break;
        }
        rounds += 1;
        assert!(rounds < 20, "never stable: {group:?}");
    }
    let before = described(&mut wire);
    assert_eq!(before.members.len(), 2);
    assert!(
        before
            .members
            .iter()
            .all(|m| m.assignment.topic_partitions[0].partitions.len() == 2)
    );
    let a_epoch = members[0].epoch;
    let refused = |wire: &mut common::wire::Wire, request: ConsumerGroupHeartbeatRequest| {
        raw_heartbeat(wire, request).error_code
    };

    // A greater epoch than its own: fenced, the others untouched.
    let fenced = ConsumerGroupHeartbeatRequest::default()
        .with_member_id(StrBytes::from_static_str("member-a"))
        .with_member_epoch(a_epoch + 5)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(Some(members[0].owned.clone()));
    assert_eq!(
        refused(&mut wire, fenced),
        ResponseError::FencedMemberEpoch.code()
    );
    assert_eq!(described(&mut wire), before);

    // A member id the group does not know.
    let unknown = ConsumerGroupHeartbeatRequest::default()
        .with_member_id(StrBytes::from_static_str("member-ghost"))
        .with_member_epoch(a_epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(Some(Vec::new()));
    assert_eq!(
        refused(&mut wire, unknown),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(described(&mut wire), before);

    // A join whose regex does not compile: no member is added.
    let bad_regex = ConsumerGroupHeartbeatRequest::default()
        .with_member_id(StrBytes::from_static_str("member-c"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_regex(Some(StrBytes::from_static_str("ba(d")))
        .with_topic_partitions(Some(Vec::new()));
    assert_eq!(
        refused(&mut wire, bad_regex),
        ResponseError::InvalidRegularExpression.code()
    );
    assert_eq!(described(&mut wire), before);

    // An offset commit at an epoch that is not the member's.
    let commit = |epoch: i32, offset: i64| {
        use kafka_protocol::messages::OffsetCommitRequest;
        use kafka_protocol::messages::offset_commit_request::{
            OffsetCommitRequestPartition, OffsetCommitRequestTopic,
        };
        OffsetCommitRequest::default()
            .with_group_id(common::wire::group_id(BAD_GROUP))
            .with_generation_id_or_member_epoch(epoch)
            .with_member_id(StrBytes::from_static_str("member-a"))
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(common::wire::topic_name("bad"))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset),
                    ]),
            ])
    };
    let code = |response: kafka_protocol::messages::OffsetCommitResponse| {
        response.topics[0].partitions[0].error_code
    };
    assert_eq!(code(wire.send(9, &commit(a_epoch, 3))), 0);
    assert_eq!(
        code(wire.send(9, &commit(a_epoch - 1, 7))),
        ResponseError::StaleMemberEpoch.code()
    );
    assert_eq!(described(&mut wire), before);
    assert_eq!(
        committed_offset(&broker, BAD_GROUP, "bad", 0),
        rdkafka::Offset::Offset(3),
        "the stale commit left the offset as it was"
    );
}

/// Polls `consumers` until together they have read `count` records,
/// counting each payload in `seen` and each consumer's reads.
fn read_records(
    consumers: &[&BaseConsumer],
    count: usize,
    seen: &mut BTreeMap<String, usize>,
    per_consumer: &mut [usize],
) {
    let mut read = 0;
    let deadline = Instant::now() + WAIT;
    while read < count {
        assert!(Instant::now() < deadline, "read only {read} of {count}");
        for (i, consumer) in consumers.iter().enumerate() {
            if let Some(message) = consumer.poll(Duration::from_millis(20)) {
                *seen.entry(payload(&message.unwrap())).or_default() += 1;
                per_consumer[i] += 1;
                read += 1;
            }
        }
    }
}

/// The member types ConsumerGroupDescribe gives `group`'s members, sorted.
fn member_types(broker: &BrokerProcess, group: &str) -> Vec<i8> {
    let mut wire = common::wire::Wire::connect(&broker.bootstrap);
    let request = kafka_protocol::messages::ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![common::wire::group_id(group)]);
    let described = wire.send(1, &request).groups.remove(0);
    let mut types: Vec<i8> = described.members.iter().map(|m| m.member_type).collect();
    types.sort_unstable();
    types
}

/// The classic view of `group` (DescribeGroups): its protocol type and
/// state, and its members' ids.
fn describe_classic(broker: &BrokerProcess, group: &str) -> (String, String, usize) {
    let mut wire = common::wire::Wire::connect(&broker.bootstrap);
    let request = kafka_protocol::messages::DescribeGroupsRequest::default()
        .with_groups(vec![common::wire::group_id(group)]);
    let described = wire.send(5, &request).groups.remove(0);
    (
        described.protocol_type.to_string(),
        described.group_state.to_string(),
        described.members.len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_group_upgrades_when_a_consumer_member_joins_and_downgrades_when_it_leaves() {
    let mut settings = vec!["--set", "group.initial.rebalance.delay.ms=0"];
    settings.extend_from_slice(&FAST_GROUPS);
    let mut broker = BrokerProcess::start(&settings);
    create_topic(&broker.client_config(), "mixed", 1).await;
    let producer = broker.producer(&[]);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();

    // A classic group of one member, which reads and commits.
    let classic_config = [
        ("group.id", "migrants"),
        ("heartbeat.interval.ms", "200"),
        ("session.timeout.ms", "6000"),
    ];
    let classic = broker.consumer(&classic_config);
    classic.subscribe(&["mixed"]).unwrap();
    produce(&producer, "mixed", 0, 5).await;
    read_records(&[&classic], 30, &mut seen, &mut [0]);
    classic.commit_consumer_state(CommitMode::Sync).unwrap();
    assert_eq!(describe_classic(&broker, "migrants").1, "Stable");

    // A consumer-protocol member joins: the group becomes a consumer
    // group of both, and the broker splits the partitions between them.
    let modern = member(&broker, "migrants");
    modern.subscribe(&["mixed"]).unwrap();
    wait_until(WAIT, "both members holding partitions, all once", || {
        for m in [&classic, &modern] {
            assert!(
                m.poll(Duration::from_millis(20)).is_none(),
                "no record is due"
            );
        }
        let (a, b) = (assigned(&classic), assigned(&modern));
        !a.is_empty() && !b.is_empty() && a.is_disjoint(&b) && a.union(&b).count() == 6
    });
    let (epoch, members) = describe(&broker, "migrants").expect("a consumer group now");
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(epoch > 1);
    // ConsumerGroupDescribe v1 tells them apart (KIP-1099: 0 classic, 1 consumer).
    assert_eq!(member_types(&broker, "migrants"), vec![0, 1]);

    // Both read new records, each once; none of those committed before.
    produce(&producer, "mixed", 5, 10).await;
    let mut per_member = [0usize; 2];
    read_records(&[&classic, &modern], 60, &mut seen, &mut per_member);
    assert!(per_member.iter().all(|n| *n > 0), "{per_member:?}");
    classic.commit_consumer_state(CommitMode::Sync).unwrap();
    modern.commit_consumer_state(CommitMode::Sync).unwrap();

    // The consumer member leaves: the group is classic again and the
    // classic member takes every partition back.
    std::thread::spawn(move || drop(modern)).join().unwrap();
    wait_until(WAIT, "the classic member holding every partition", || {
        assert!(
            classic.poll(Duration::from_millis(20)).is_none(),
            "no record is due"
        );
        assigned(&classic).len() == 6
    });
    assert_eq!(
        describe(&broker, "migrants"),
        None,
        "not a consumer group any more"
    );
    let (protocol_type, state, count) = describe_classic(&broker, "migrants");
    assert_eq!(
        (protocol_type.as_str(), state.as_str(), count),
        ("consumer", "Stable", 1)
    );
    produce(&producer, "mixed", 15, 2).await;
    read_records(&[&classic], 12, &mut seen, &mut [0]);
    classic.commit_consumer_state(CommitMode::Sync).unwrap();
    assert_eq!(seen.len(), 102);
    assert!(seen.values().all(|n| *n == 1), "duplicates: {seen:?}");

    // The commits are durable: after a restart a new member resumes there.
    std::thread::spawn(move || drop(classic)).join().unwrap();
    drop(producer);
    broker.stop();
    broker.restart();
    produce(&broker.producer(&[]), "mixed", 17, 1).await;
    let resumed = broker.consumer(&classic_config);
    resumed.subscribe(&["mixed"]).unwrap();
    let mut after = BTreeMap::new();
    read_records(&[&resumed], 6, &mut after, &mut [0]);
    assert!(
        after.keys().all(|p| p.ends_with("-17")),
        "only the records produced after the restart: {after:?}"
    );
}

/// A classic group with one member reading "policy", on a broker started
/// with `group.consumer.migration.policy=policy`.
async fn classic_group_under(policy: &str) -> (BrokerProcess, BaseConsumer) {
    let setting = format!("group.consumer.migration.policy={policy}");
    let mut settings = vec![
        "--set",
        "group.initial.rebalance.delay.ms=0",
        "--set",
        &setting,
    ];
    settings.extend_from_slice(&FAST_GROUPS);
    let broker = BrokerProcess::start(&settings);
    create_topic(&broker.client_config(), "policy", 1).await;
    let classic = broker.consumer(&[
        ("group.id", "governed"),
        ("heartbeat.interval.ms", "200"),
        ("session.timeout.ms", "6000"),
    ]);
    classic.subscribe(&["policy"]).unwrap();
    wait_until(WAIT, "the classic member holding every partition", || {
        assert!(
            classic.poll(Duration::from_millis(20)).is_none(),
            "no record is due"
        );
        assigned(&classic).len() == 6
    });
    (broker, classic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_upgrade_a_consumer_member_may_not_join_a_classic_group() {
    use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
    use kafka_protocol::protocol::StrBytes;
    for policy in ["disabled", "downgrade"] {
        let (broker, classic) = classic_group_under(policy).await;
        let mut wire = common::wire::Wire::connect(&broker.bootstrap);
        let join = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(common::wire::group_id("governed"))
            .with_member_id(StrBytes::from_static_str("modern-1"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![common::wire::topic_name("policy")]))
            .with_topic_partitions(Some(Vec::new()));
        let response = wire.send(1, &join);
        assert_eq!(
            response.error_code,
            kafka_protocol::ResponseError::GroupIdNotFound.code(),
            "{policy}: {response:?}"
        );
        // The classic group goes on as it was.
        assert_eq!(describe_classic(&broker, "governed").1, "Stable");
        assert_eq!(assigned(&classic).len(), 6);
        std::thread::spawn(move || drop(classic)).join().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_downgrade_a_consumer_group_keeps_its_classic_members() {
    let (broker, classic) = classic_group_under("upgrade").await;
    let modern = member(&broker, "governed");
    modern.subscribe(&["policy"]).unwrap();
    wait_until(WAIT, "both members holding partitions", || {
        for m in [&classic, &modern] {
            assert!(
                m.poll(Duration::from_millis(20)).is_none(),
                "no record is due"
            );
        }
        !assigned(&classic).is_empty() && !assigned(&modern).is_empty()
    });
    std::thread::spawn(move || drop(modern)).join().unwrap();
    // The classic member takes everything back inside the consumer group.
    wait_until(WAIT, "the classic member holding every partition", || {
        assert!(
            classic.poll(Duration::from_millis(20)).is_none(),
            "no record is due"
        );
        assigned(&classic).len() == 6
    });
    let (_, members) = describe(&broker, "governed").expect("still a consumer group");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].2, vec![0, 1, 2, 3, 4, 5]);
    produce(&broker.producer(&[]), "policy", 0, 1).await;
    let mut seen = BTreeMap::new();
    read_records(&[&classic], 6, &mut seen, &mut [0]);
    assert!(seen.values().all(|n| *n == 1), "duplicates: {seen:?}");
    classic.commit_consumer_state(CommitMode::Sync).unwrap();

    // Its classic membership is in __consumer_offsets: after a restart the
    // group is still a consumer group holding a classic member, which goes
    // on reading where it committed.
    let mut broker = broker;
    broker.stop();
    broker.restart();
    let mut restored = None;
    wait_until(WAIT, "the consumer group loaded", || {
        restored = describe(&broker, "governed");
        restored.is_some()
    });
    assert_eq!(member_types(&broker, "governed"), vec![0]);
    produce(&broker.producer(&[]), "policy", 1, 1).await;
    // The client reports the restart (all brokers down) before it reads on.
    wait_until(WAIT, "the classic member reading the new records", || {
        if let Some(Ok(message)) = classic.poll(Duration::from_millis(20)) {
            *seen.entry(payload(&message)).or_default() += 1;
        }
        seen.len() == 12
    });
    assert!(seen.values().all(|n| *n == 1), "duplicates: {seen:?}");
    std::thread::spawn(move || drop(classic)).join().unwrap();
}
