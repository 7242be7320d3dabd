//! Consumer groups through librdkafka against the real broker: members
//! share a topic's partitions, and a group resumes from its committed
//! offsets after the broker is killed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::BrokerProcess;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

const WAIT: Duration = Duration::from_secs(30);
const FAST_GROUPS: [&str; 2] = ["--set", "group.initial.rebalance.delay.ms=0"];

fn member(broker: &BrokerProcess, group: &str) -> BaseConsumer {
    broker.consumer(&[
        ("group.id", group),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "100"),
        // The rebalance timeout: a member that stops polling leaves in 8 s.
        ("max.poll.interval.ms", "8000"),
        ("partition.assignment.strategy", "range"),
    ])
}

async fn produce(broker: &BrokerProcess, topic: &str, partitions: i32, per_partition: i32) {
    let producer = broker.producer(&[]);
    for p in 0..partitions {
        for i in 0..per_partition {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_a_group_share_the_partitions() {
    let broker = BrokerProcess::start(&FAST_GROUPS);
    produce(&broker, "shared", 1, 1).await;
    let admin = broker.admin();
    admin
        .create_partitions(
            [&rdkafka::admin::NewPartitions::new("shared", 4)],
            &rdkafka::admin::AdminOptions::new(),
        )
        .await
        .unwrap();
    let first = member(&broker, "sharing");
    let second = member(&broker, "sharing");
    first.subscribe(&["shared"]).unwrap();
    second.subscribe(&["shared"]).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        first.poll(Duration::from_millis(50));
        second.poll(Duration::from_millis(50));
        let (a, b) = (assigned(&first), assigned(&second));
        if !a.is_empty() && !b.is_empty() && a.len() + b.len() == 4 {
            assert!(a.is_disjoint(&b), "{a:?} and {b:?} overlap");
            let all: BTreeSet<i32> = a.union(&b).copied().collect();
            assert_eq!(all, (0..4).collect());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no shared assignment: {a:?} {b:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_resumes_from_its_committed_offsets_after_a_kill_9() {
    let mut broker = BrokerProcess::start(&FAST_GROUPS);
    let admin = broker.admin();
    let topic =
        rdkafka::admin::NewTopic::new("resume", 2, rdkafka::admin::TopicReplication::Fixed(1));
    admin
        .create_topics([&topic], &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap();
    produce(&broker, "resume", 2, 10).await;

    // A first consumer of the group reads 6 messages from assigned
    // partitions and commits where it got to (a commit outside a
    // generation, as Kafka allows while the group has no members).
    let first = member(&broker, "resumers");
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..2 {
        assignment
            .add_partition_offset("resume", p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    first.assign(&assignment).unwrap();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < 6 {
        assert!(
            Instant::now() < deadline,
            "only {} messages came",
            seen.len()
        );
        if let Some(message) = first.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            seen.insert(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
        }
    }
    first.commit_consumer_state(CommitMode::Sync).unwrap();
    // A list of its own: the one `first` answers holds references into
    // `first`, and releasing them while `first`'s Drop hangs (below)
    // deadlocked this test at its end.
    let committed = {
        let from_first = first.committed(WAIT).unwrap();
        let mut own = rdkafka::TopicPartitionList::new();
        for element in from_first.elements() {
            own.add_partition_offset(element.topic(), element.partition(), element.offset())
                .unwrap();
        }
        own
    };
    // Closed on a thread of its own: rust-rdkafka's Drop can hang after a
    // manual commit (fede1024/rust-rdkafka#597).
    std::thread::spawn(move || drop(first));

    broker.kill();
    broker.restart();

    // A member that subscribes starts exactly where the group committed.
    let second = member(&broker, "resumers");
    assert_eq!(
        second.committed_offsets(committed.clone(), WAIT).unwrap(),
        committed,
        "committed offsets survive a kill -9"
    );
    second.subscribe(&["resume"]).unwrap();
    // poll() also returns None when it served a rebalance event, so wait
    // on a deadline rather than on one poll.
    let mut rest = BTreeSet::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() + rest.len() < 20 {
        let Some(message) = second.poll(Duration::from_millis(100)) else {
            assert!(
                Instant::now() < deadline,
                "only {} of the other {} messages came",
                rest.len(),
                20 - seen.len()
            );
            continue;
        };
        let value = String::from_utf8(message.unwrap().payload().unwrap().to_vec()).unwrap();
        assert!(
            !seen.contains(&value),
            "{value} was committed, yet read again"
        );
        rest.insert(value);
    }
    assert_eq!(seen.len() + rest.len(), 20);
    std::mem::forget(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_listed_described_and_deleted_with_their_offsets() {
    let broker = BrokerProcess::start(&FAST_GROUPS);
    produce(&broker, "listed", 1, 3).await;
    // A consumer commits offsets for the group without joining it.
    let committer = member(&broker, "auditors");
    let mut offsets = rdkafka::TopicPartitionList::new();
    offsets
        .add_partition_offset("listed", 0, rdkafka::Offset::Offset(2))
        .unwrap();
    committer.commit(&offsets, CommitMode::Sync).unwrap();
    // Released while `committer` lives: releasing a list the commit
    // touched while its Drop hangs can deadlock (#597).
    drop(offsets);
    std::thread::spawn(move || drop(committer));

    // A member of another group is described with its client id.
    let reader = broker.consumer(&[
        ("group.id", "readers"),
        ("client.id", "reader-1"),
        ("heartbeat.interval.ms", "100"),
    ]);
    reader.subscribe(&["listed"]).unwrap();
    let deadline = Instant::now() + WAIT;
    while assigned(&reader).is_empty() {
        reader.poll(Duration::from_millis(50));
        assert!(Instant::now() < deadline, "the reader got no assignment");
    }
    let list = reader.fetch_group_list(None, WAIT).unwrap();
    let states: std::collections::BTreeMap<String, String> = list
        .groups()
        .iter()
        .map(|g| (g.name().to_string(), g.state().to_string()))
        .collect();
    assert_eq!(states.get("auditors").map(String::as_str), Some("Empty"));
    assert_eq!(states.get("readers").map(String::as_str), Some("Stable"));
    let readers = list
        .groups()
        .iter()
        .find(|g| g.name() == "readers")
        .unwrap();
    assert_eq!(readers.members().len(), 1);
    assert_eq!(readers.members()[0].client_id(), "reader-1");

    let admin = broker.admin();
    let options = rdkafka::admin::AdminOptions::new();
    let deleted = admin
        .delete_groups(&["auditors", "readers"], &options)
        .await
        .unwrap();
    assert!(deleted[0].is_ok(), "{deleted:?}");
    assert_eq!(
        deleted[1].as_ref().unwrap_err().1,
        rdkafka::error::RDKafkaErrorCode::NonEmptyGroup,
        "a group with members is not deleted"
    );
    let list = reader.fetch_group_list(Some("auditors"), WAIT).unwrap();
    assert!(
        list.groups().iter().all(|g| g.state() == "Dead"),
        "the deleted group is gone"
    );
    let checker = member(&broker, "auditors");
    let mut wanted = rdkafka::TopicPartitionList::new();
    wanted.add_partition("listed", 0);
    let committed = checker.committed_offsets(wanted, WAIT).unwrap();
    assert_eq!(
        committed.find_partition("listed", 0).unwrap().offset(),
        rdkafka::Offset::Invalid,
        "its offsets went with it"
    );
    std::thread::spawn(move || drop(reader));
}

/// Counts the partition assignments a consumer receives (rebalances).
struct CountingAssignments(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl rdkafka::ClientContext for CountingAssignments {}

impl rdkafka::consumer::ConsumerContext for CountingAssignments {
    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if matches!(rebalance, rdkafka::consumer::Rebalance::Assign(_)) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_static_member_takes_its_place_back_without_a_rebalance() {
    let broker = BrokerProcess::start(&FAST_GROUPS);
    let admin = broker.admin();
    let topic =
        rdkafka::admin::NewTopic::new("static", 2, rdkafka::admin::TopicReplication::Fixed(1));
    admin
        .create_topics([&topic], &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap();
    let assignments = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut config = broker.client_config();
    config
        .set("group.id", "statics")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "100")
        .set("partition.assignment.strategy", "range");
    let dynamic: BaseConsumer<CountingAssignments> = config
        .create_with_context(CountingAssignments(assignments.clone()))
        .unwrap();
    let static_member = |_: ()| {
        broker.consumer(&[
            ("group.id", "statics"),
            ("group.instance.id", "static-1"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "100"),
            ("partition.assignment.strategy", "range"),
        ])
    };
    let first = static_member(());
    dynamic.subscribe(&["static"]).unwrap();
    first.subscribe(&["static"]).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        dynamic.poll(Duration::from_millis(50));
        first.poll(Duration::from_millis(50));
        let (d, s) = (dynamic.assignment().unwrap(), assigned(&first));
        if d.count() == 1 && s.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the group did not settle");
    }
    let owned = assigned(&first);
    let settled = assignments.load(std::sync::atomic::Ordering::SeqCst);

    // The static member "restarts": a new client with the same instance id
    // (the old one is simply abandoned, as a crashed process would be).
    std::thread::spawn(move || drop(first));
    let second = static_member(());
    second.subscribe(&["static"]).unwrap();
    let deadline = Instant::now() + WAIT;
    while assigned(&second).is_empty() {
        second.poll(Duration::from_millis(50));
        dynamic.poll(Duration::from_millis(50));
        assert!(
            Instant::now() < deadline,
            "the restarted member got nothing"
        );
    }
    assert_eq!(assigned(&second), owned, "it takes back its own partitions");
    for _ in 0..10 {
        dynamic.poll(Duration::from_millis(50));
    }
    assert_eq!(
        assignments.load(std::sync::atomic::Ordering::SeqCst),
        settled,
        "the other member saw no rebalance"
    );
    std::thread::spawn(move || drop(second));
    std::thread::spawn(move || drop(dynamic));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_delete_removes_committed_offsets_of_an_empty_group() {
    use kafka_protocol::messages::OffsetDeleteRequest;
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    let broker = BrokerProcess::start(&FAST_GROUPS);
    produce(&broker, "forget", 1, 3).await;
    let committer = member(&broker, "forgetful");
    let mut offsets = rdkafka::TopicPartitionList::new();
    offsets
        .add_partition_offset("forget", 0, rdkafka::Offset::Offset(3))
        .unwrap();
    committer.commit(&offsets, CommitMode::Sync).unwrap();

    let mut wire = common::wire::Wire::connect(&broker.bootstrap);
    let response = wire.send(
        0,
        &OffsetDeleteRequest::default()
            .with_group_id(kafka_protocol::messages::GroupId(
                kafka_protocol::protocol::StrBytes::from_static_str("forgetful"),
            ))
            .with_topics(vec![
                OffsetDeleteRequestTopic::default()
                    .with_name(common::wire::topic_name("forget"))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0),
                    ]),
            ]),
    );
    assert_eq!(response.error_code, 0);
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    let mut wanted = rdkafka::TopicPartitionList::new();
    wanted.add_partition("forget", 0);
    let committed = committer.committed_offsets(wanted, WAIT).unwrap();
    assert_eq!(
        committed.find_partition("forget", 0).unwrap().offset(),
        rdkafka::Offset::Invalid
    );
    std::thread::spawn(move || drop(committer));
}
