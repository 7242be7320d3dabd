//! Clusters of three `rill broker` processes on loopback, each running its
//! controller too: replication, failover of a killed leader, a returning
//! follower truncating and rejoining the ISR, min.insync.replicas, and
//! metadata changes after the controller leader dies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Host, Namespace, wait_until};
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

const WAIT: Duration = Duration::from_secs(30);

async fn create_topic(cluster: &Cluster, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().unwrap();
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(3));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let results = admin
        .create_topics(&[topic], &AdminOptions::new().operation_timeout(Some(WAIT)))
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
}

fn producer(cluster: &Cluster, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config: ClientConfig = cluster.client_config();
    config
        .set("linger.ms", "0")
        .set("acks", "all")
        .set("message.timeout.ms", "60000");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create().unwrap()
}

/// Every message of `topic`'s partition 0 from the start: (offset, payload).
fn read_all(cluster: &Cluster, topic: &str) -> Vec<(i64, String)> {
    read_partition(cluster, topic, 0)
}

/// Every message of `topic`'s `partition` from the start.
fn read_partition(cluster: &Cluster, topic: &str, partition: i32) -> Vec<(i64, String)> {
    let consumer: BaseConsumer = cluster
        .client_config()
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (_, high) = consumer.fetch_watermarks(topic, partition, WAIT).unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut messages = Vec::new();
    let deadline = Instant::now() + WAIT;
    while high > 0 && messages.last().is_none_or(|(offset, _)| offset + 1 < high) {
        assert!(Instant::now() < deadline, "could not read up to {high}");
        // A stopped broker in the bootstrap list shows up as transport
        // errors here; the client carries on with the others.
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let payload = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            messages.push((message.offset(), payload));
        }
    }
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_producer_loses_nothing_while_leaders_are_killed() {
    let mut cluster = Cluster::start(3, &[]);
    create_topic(&cluster, "orders", 1, &[("min.insync.replicas", "2")]).await;
    let producer = producer(&cluster, &[("enable.idempotence", "true")]);
    // A group member reads along through every kill (its coordinator is
    // among the killed too, whenever it leads the group's partition).
    let stop_reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let config = cluster.client_config();
        let stop = std::sync::Arc::clone(&stop_reading);
        std::thread::spawn(move || {
            let consumer: BaseConsumer = config
                .clone()
                .set("group.id", "watchers")
                .set("auto.offset.reset", "earliest")
                .set("session.timeout.ms", "6000")
                .create()
                .unwrap();
            consumer.subscribe(&["orders"]).unwrap();
            let mut read = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                    let payload = std::str::from_utf8(message.payload().unwrap()).unwrap();
                    read.insert(payload.parse::<u64>().unwrap());
                }
            }
            read
        })
    };
    let mut acknowledged: BTreeMap<u64, i64> = BTreeMap::new();
    let mut next = 0u64;
    let mut failovers = Vec::new();
    for round in 0..3 {
        // A burst, then the leader is killed with SIGKILL while more is
        // in flight; the same producer carries on.
        let mut pending = Vec::new();
        for _ in 0..200 {
            let payload = next.to_string();
            pending.push((
                next,
                producer
                    .send_result(FutureRecord::<(), _>::to("orders").payload(&payload))
                    .unwrap(),
            ));
            next += 1;
        }
        for (i, delivery) in pending.drain(..) {
            let offset = delivery.await.unwrap().unwrap().offset;
            acknowledged.insert(i, offset);
        }
        let (leader, isr) = cluster.partition_state("orders", 0);
        assert_eq!(
            isr,
            [1, 2, 3],
            "round {round}: every replica in sync before the kill"
        );
        cluster.node(leader).kill();
        let killed = Instant::now();
        for _ in 0..200 {
            let payload = next.to_string();
            pending.push((
                next,
                producer
                    .send_result(FutureRecord::<(), _>::to("orders").payload(&payload))
                    .unwrap(),
            ));
            next += 1;
        }
        let mut first_ack = None;
        for (i, delivery) in pending.drain(..) {
            let offset = delivery.await.unwrap().unwrap().offset;
            first_ack.get_or_insert_with(|| killed.elapsed());
            acknowledged.insert(i, offset);
        }
        failovers.push(first_ack.unwrap());
        let (new_leader, _) = cluster.partition_state("orders", 0);
        assert_ne!(new_leader, leader, "round {round}: leadership moved");
        cluster.node(leader).restart();
        wait_until(WAIT, "the killed broker back in the ISR", || {
            cluster.partition_state("orders", 0).1 == [1, 2, 3]
        });
    }
    eprintln!("time from a leader's SIGKILL to the first acknowledged produce: {failovers:?}");
    // The group member read on, to the end (at least once).
    let (_, high) = {
        let consumer: BaseConsumer = cluster.client_config().create().unwrap();
        consumer.fetch_watermarks("orders", 0, WAIT).unwrap()
    };
    assert_eq!(high, 1200, "every acknowledged record once");
    // It auto-commits what it read; once its commit is the end, it has
    // read everything.
    let probe: BaseConsumer = cluster
        .client_config()
        .set("group.id", "watchers")
        .create()
        .unwrap();
    wait_until(
        Duration::from_secs(60),
        "the group member's commit at the end",
        || {
            let mut partitions = rdkafka::TopicPartitionList::new();
            partitions.add_partition("orders", 0);
            probe
                .committed_offsets(partitions, Duration::from_secs(5))
                .ok()
                .and_then(|c| c.elements().first().map(|e| e.offset()))
                == Some(rdkafka::Offset::Offset(high))
        },
    );
    stop_reading.store(true, std::sync::atomic::Ordering::Relaxed);
    let read = reader.join().unwrap();
    assert_eq!(read.len(), 1200, "the group member read every record");

    let log = read_all(&cluster, "orders");
    let mut seen: BTreeMap<u64, i64> = BTreeMap::new();
    for (offset, payload) in &log {
        let i: u64 = payload.parse().unwrap();
        assert!(
            seen.insert(i, *offset).is_none(),
            "message {i} is in the log twice"
        );
    }
    for (i, offset) in &acknowledged {
        assert_eq!(
            seen.get(i),
            Some(offset),
            "acknowledged message {i} at {offset}"
        );
    }
    let order: Vec<u64> = log.iter().map(|(_, p)| p.parse().unwrap()).collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "the producer's order is kept"
    );
    assert_eq!(acknowledged.len(), 1200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preferred_leader_election_gives_leadership_back_after_a_restart() {
    let mut cluster = Cluster::start(3, &[]);
    create_topic(&cluster, "home", 3, &[]).await;
    let preferred: Vec<i32> = (0..3)
        .map(|p| cluster.partition_state("home", p).0)
        .collect();
    let moved = preferred[0];
    cluster.node(moved).kill();
    cluster.wait_for_brokers(2);
    cluster.node(moved).restart();
    wait_until(WAIT, "the restarted broker back in every ISR", || {
        (0..3).all(|p| cluster.partition_state("home", p).1 == [1, 2, 3])
    });
    assert_ne!(
        cluster.partition_state("home", 0).0,
        moved,
        "leadership moved away"
    );
    let mut wire = common::wire::Wire::connect(&cluster.brokers[0].bootstrap);
    let request = kafka_protocol::messages::ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(None)
        .with_timeout_ms(30_000);
    let response = wire.send(2, &request);
    let codes: BTreeMap<i32, i16> = response
        .replica_election_results
        .iter()
        .filter(|r| r.topic.as_str() == "home")
        .flat_map(|r| {
            r.partition_result
                .iter()
                .map(|p| (p.partition_id, p.error_code))
        })
        .collect();
    // Partition 0 is elected (no error); the others needed nothing (84).
    assert_eq!(codes.get(&0), Some(&0), "{codes:?}");
    assert!(
        (1..3).all(|p| codes.get(&p) == Some(&84) || preferred[p as usize] == moved),
        "{codes:?}"
    );
    for p in 0..3 {
        assert_eq!(cluster.partition_state("home", p).0, preferred[p as usize]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_returns_to_preferred_replicas_on_its_own() {
    let mut cluster = Cluster::start(3, &["--set", "leader.imbalance.check.interval.seconds=1"]);
    create_topic(&cluster, "balanced", 3, &[]).await;
    let preferred: Vec<i32> = (0..3)
        .map(|p| cluster.partition_state("balanced", p).0)
        .collect();
    cluster.node(preferred[0]).kill();
    wait_until(WAIT, "leadership moved away", || {
        cluster.partition_state("balanced", 0).0 != preferred[0]
    });
    cluster.node(preferred[0]).restart();
    // auto.leader.rebalance.enable (the default): back within a check
    // once the restarted broker is in sync again.
    wait_until(WAIT, "every preferred replica leading again", || {
        (0..3).all(|p| cluster.partition_state("balanced", p).0 == preferred[p as usize])
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_moves_to_other_brokers_with_its_data() {
    let cluster = Cluster::start(3, &[]);
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().unwrap();
    let topic = NewTopic::new("moving", 1, TopicReplication::Fixed(1));
    let created = admin
        .create_topics(&[topic], &AdminOptions::new().operation_timeout(Some(WAIT)))
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let producer = producer(&cluster, &[]);
    for i in 0..100 {
        let payload = i.to_string();
        producer
            .send(
                FutureRecord::<(), _>::to("moving").payload(&payload),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
    }
    let (from, _) = cluster.partition_state("moving", 0);
    let to: Vec<i32> = (1..=3).filter(|b| *b != from).collect();
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(common::rill_binary())
            .args(args)
            .args(["--bootstrap", &cluster.bootstrap])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "rill {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let replicas = format!("{},{}", to[0], to[1]);
    cli(&[
        "topic",
        "reassign",
        "moving",
        "--partition",
        "0",
        "--replicas",
        &replicas,
    ]);
    // The new replicas copy the log, join the ISR, and the old one hands
    // over and is removed.
    wait_until(WAIT, "the partition on its new brokers", || {
        let (leader, isr) = cluster.partition_state("moving", 0);
        isr == to && to.contains(&leader)
    });
    let old_dir = cluster.brokers[usize::try_from(from - 1).unwrap()]
        .data
        .join("moving-0");
    wait_until(WAIT, "the old replica deleted", || !old_dir.exists());
    let log: Vec<String> = read_all(&cluster, "moving")
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(log, (0..100).map(|i| i.to_string()).collect::<Vec<_>>());
    // The preferred replica (the first listed) leads after an election.
    cli(&["topic", "elect-leaders", "moving"]);
    assert_eq!(cluster.partition_state("moving", 0).0, to[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_leaders_log_start_starts_over_there() {
    let mut cluster = Cluster::start(3, &[]);
    create_topic(&cluster, "trimmed", 1, &[]).await;
    let producer = producer(&cluster, &[]);
    let send = async |count: usize| {
        for _ in 0..count {
            producer
                .send(
                    FutureRecord::<(), _>::to("trimmed").payload("x"),
                    Timeout::After(WAIT),
                )
                .await
                .unwrap();
        }
    };
    send(100).await;
    let (leader, _) = cluster.partition_state("trimmed", 0);
    let follower = (1..=3).find(|b| *b != leader).unwrap();
    cluster.node(follower).kill();
    send(100).await;
    // The leader drops what the stopped follower still needs.
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().unwrap();
    let mut before = rdkafka::TopicPartitionList::new();
    before
        .add_partition_offset("trimmed", 0, rdkafka::Offset::Offset(150))
        .unwrap();
    admin
        .delete_records(&before, &AdminOptions::new().operation_timeout(Some(WAIT)))
        .await
        .unwrap();
    cluster.node(follower).restart();
    wait_until(WAIT, "the follower back in the ISR", || {
        cluster.partition_state("trimmed", 0).1 == [1, 2, 3]
    });
    let dir = cluster.node(follower).data.join("trimmed-0");
    assert!(
        dir.join("00000000000000000150.log").exists(),
        "the follower's log starts over at the leader's log start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_is_not_a_controller_leads_follows_and_fails_over() {
    // Brokers 1-3 are the quorum; broker 4 reaches it over the network.
    let mut cluster = Cluster::start_on(&Host::loopback(4), 3, &[]);
    create_topic(&cluster, "wide", 4, &[("min.insync.replicas", "2")]).await;
    let on_four: Vec<i32> = (0..4)
        .filter(|p| cluster.partition_state("wide", *p).0 == 4)
        .collect();
    assert!(!on_four.is_empty(), "broker 4 leads a partition");
    let producer = producer(&cluster, &[("enable.idempotence", "true")]);
    let send_all = async |payload: &str| {
        for partition in 0..4 {
            producer
                .send(
                    FutureRecord::<(), _>::to("wide")
                        .payload(payload)
                        .partition(partition),
                    Timeout::After(WAIT),
                )
                .await
                .unwrap();
        }
    };
    send_all("before").await;
    cluster.node(4).kill();
    wait_until(WAIT, "broker 4's partitions led elsewhere", || {
        on_four
            .iter()
            .all(|p| cluster.partition_state("wide", *p).0 != 4)
    });
    send_all("during").await;
    cluster.node(4).restart();
    wait_until(WAIT, "broker 4 back in its ISRs", || {
        (0..4).all(|p| cluster.partition_state("wide", p).1.len() == 3)
    });
    send_all("after").await;
    for partition in 0..4 {
        let log: Vec<String> = read_partition(&cluster, "wide", partition)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(log, ["before", "during", "after"], "partition {partition}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_topic_that_allows_it_gets_an_unclean_leader() {
    // Two brokers die in this story; the quorum (brokers 1-3) must not:
    // the topics live on the broker-only nodes 4 and 5.
    let mut cluster = Cluster::start_on(&Host::loopback(5), 3, &[]);
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().unwrap();
    let topics = [
        NewTopic::new("careful", 1, TopicReplication::Fixed(2)),
        NewTopic::new("reckless", 1, TopicReplication::Fixed(2))
            .set("unclean.leader.election.enable", "true"),
    ];
    let created = admin
        .create_topics(&topics, &AdminOptions::new().operation_timeout(Some(WAIT)))
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    for topic in ["careful", "reckless"] {
        let moved = std::process::Command::new(common::rill_binary())
            .args([
                "topic",
                "reassign",
                topic,
                "--partition",
                "0",
                "--replicas",
                "4,5",
            ])
            .args(["--bootstrap", &cluster.bootstrap])
            .status()
            .unwrap();
        assert!(moved.success());
        wait_until(WAIT, "the topic on brokers 4 and 5", || {
            cluster.partition_state(topic, 0).1 == [4, 5]
        });
    }
    // acks=all: the first write is on both replicas; the second, with the
    // follower gone (and min.insync.replicas 1), on the leader alone.
    let producer = producer(&cluster, &[]);
    // The same story for each: the follower dies, the leader takes a write
    // alone and dies too, then only the follower comes back.
    for topic in ["reckless", "careful"] {
        // The story before this one took both replicas down: the one that
        // came back second must catch up before "both" can be on both.
        wait_until(WAIT, "both replicas in the ISR", || {
            cluster.partition_state(topic, 0).1.len() == 2
        });
        producer
            .send(
                FutureRecord::<(), _>::to(topic).payload("both"),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
        let (leader, isr) = cluster.partition_state(topic, 0);
        let follower = *isr.iter().find(|b| **b != leader).unwrap();
        cluster.node(follower).kill();
        wait_until(WAIT, "the follower out of the ISR", || {
            cluster.partition_state(topic, 0).1 == [leader]
        });
        producer
            .send(
                FutureRecord::<(), _>::to(topic).payload("leader only"),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
        cluster.node(leader).kill();
        cluster.wait_for_brokers(3);
        cluster.node(follower).restart();
        cluster.wait_for_brokers(4);
        if topic == "reckless" {
            // Unclean: the follower leads without the write it never had.
            wait_until(WAIT, "an unclean leader", || {
                cluster.partition_state(topic, 0) == (follower, vec![follower])
            });
            let log: Vec<String> = read_all(&cluster, topic)
                .into_iter()
                .map(|(_, p)| p)
                .collect();
            assert_eq!(log, ["both"]);
        } else {
            // Clean only: with the follower back and unfenced, the partition
            // is still offline; its last ISR member brings it back whole.
            let consumer: BaseConsumer = cluster.client_config().create().unwrap();
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .unwrap();
            assert_eq!(metadata.topics()[0].partitions()[0].leader(), -1, "offline");
            cluster.node(leader).restart();
            wait_until(WAIT, "its last ISR member leading again", || {
                cluster.partition_state(topic, 0).0 == leader
            });
            let log: Vec<String> = read_all(&cluster, topic)
                .into_iter()
                .map(|(_, p)| p)
                .collect();
            assert_eq!(log, ["both", "leader only"]);
        }
        cluster.node(leader).restart_if_stopped();
        cluster.wait_for_brokers(5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_topic_grows_new_replicated_partitions() {
    let cluster = Cluster::start(3, &[]);
    create_topic(&cluster, "growing", 2, &[]).await;
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().unwrap();
    let grown = admin
        .create_partitions(
            &[rdkafka::admin::NewPartitions::new("growing", 4)],
            &AdminOptions::new().operation_timeout(Some(WAIT)),
        )
        .await
        .unwrap();
    assert!(grown[0].is_ok(), "{grown:?}");
    for partition in 2..4 {
        assert_eq!(cluster.partition_state("growing", partition).1, [1, 2, 3]);
    }
    let producer = producer(&cluster, &[]);
    producer
        .send(
            FutureRecord::<(), _>::to("growing")
                .payload("new")
                .partition(3),
            Timeout::After(WAIT),
        )
        .await
        .unwrap();
    let log: Vec<String> = read_partition(&cluster, "growing", 3)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(log, ["new"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_is_refused_when_the_isr_is_smaller_than_min_insync_replicas() {
    let mut cluster = Cluster::start(3, &[]);
    create_topic(&cluster, "strict", 1, &[("min.insync.replicas", "3")]).await;
    let all = producer(
        &cluster,
        &[("message.timeout.ms", "3000"), ("retries", "0")],
    );
    all.send(
        FutureRecord::<(), _>::to("strict").payload("three in sync"),
        Timeout::After(WAIT),
    )
    .await
    .unwrap();
    let (leader, _) = cluster.partition_state("strict", 0);
    let follower = (1..=3).find(|b| *b != leader).unwrap();
    cluster.node(follower).kill();
    wait_until(WAIT, "the killed follower out of the ISR", || {
        cluster.partition_state("strict", 0).1.len() == 2
    });
    let refused = all
        .send(
            FutureRecord::<(), _>::to("strict").payload("two in sync"),
            Timeout::After(WAIT),
        )
        .await
        .unwrap_err()
        .0;
    assert!(
        matches!(
            refused,
            KafkaError::MessageProduction(
                RDKafkaErrorCode::NotEnoughReplicas | RDKafkaErrorCode::MessageTimedOut
            )
        ),
        "{refused:?}"
    );
    // acks=1 only needs the leader.
    let one = producer(&cluster, &[("acks", "1")]);
    one.send(
        FutureRecord::<(), _>::to("strict").payload("leader only"),
        Timeout::After(WAIT),
    )
    .await
    .unwrap();
    cluster.node(follower).restart();
    wait_until(WAIT, "the follower back in the ISR", || {
        cluster.partition_state("strict", 0).1.len() == 3
    });
    all.send(
        FutureRecord::<(), _>::to("strict").payload("three again"),
        Timeout::After(WAIT),
    )
    .await
    .unwrap();
    let log: Vec<String> = read_all(&cluster, "strict")
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(log, ["three in sync", "leader only", "three again"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_changes_go_on_after_the_controller_leader_is_killed() {
    let mut cluster = Cluster::start(3, &[]);
    create_topic(&cluster, "before", 3, &[]).await;
    let controller = describe_controller(&cluster);
    cluster.node(controller).kill();
    // The survivors elect a new controller and fence the dead broker;
    // topics can still be created, with replicas on live brokers only
    // when the replication factor allows.
    cluster.wait_for_brokers(2);
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().unwrap();
    let topic = NewTopic::new("after", 2, TopicReplication::Fixed(2));
    let results = admin
        .create_topics(&[topic], &AdminOptions::new().operation_timeout(Some(WAIT)))
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    let too_many = NewTopic::new("too-many", 1, TopicReplication::Fixed(3));
    let results = admin
        .create_topics(
            &[too_many],
            &AdminOptions::new().operation_timeout(Some(WAIT)),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            results[0],
            Err((_, RDKafkaErrorCode::InvalidReplicationFactor))
        ),
        "{results:?}"
    );
    let producer = producer(&cluster, &[]);
    for topic in ["before", "after"] {
        producer
            .send(
                FutureRecord::<(), _>::to(topic).payload("x").partition(0),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
    }
    assert_ne!(describe_controller(&cluster), controller);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_cut_off_cannot_acknowledge_and_converges_after_healing() {
    let namespace = Namespace::create();
    let outside = Host {
        address: namespace.outside.clone(),
        wrapper: Vec::new(),
    };
    let inside = Host {
        address: namespace.inside.clone(),
        wrapper: namespace.wrapper(),
    };
    let mut cluster = Cluster::start_on(&[outside.clone(), outside, inside], 3, &[]);
    create_topic(&cluster, "split", 3, &[("min.insync.replicas", "2")]).await;
    let partition = (0..3)
        .find(|p| cluster.partition_state("split", *p).0 == 3)
        .expect("broker 3 leads one of the three partitions");
    // A request to the cut-off leader is given up on after 3 s, not
    // librdkafka's 30 s, so the write goes to the new leader soon.
    let producer = producer(&cluster, &[("request.timeout.ms", "3000")]);
    let send = async |payload: &str| {
        producer
            .send(
                FutureRecord::<(), _>::to("split")
                    .payload(payload)
                    .partition(partition),
                Timeout::After(WAIT),
            )
            .await
    };
    send("before").await.unwrap();

    namespace.cut();
    // Inside, broker 3 still thinks it leads; a write there cannot be
    // acknowledged, since no other ISR member can fetch it.
    let minority = std::process::Command::new(common::cluster::ip_binary())
        .args(["netns", "exec", &namespace.name])
        .arg(common::rill_binary())
        .args(["produce", "split", "--acks", "all", "--timeout-ms", "4000"])
        .args(["--partition", &partition.to_string()])
        .args(["--bootstrap", &cluster.node(3).bootstrap])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    minority
        .stdin
        .as_ref()
        .unwrap()
        .write_all(b"minority\n")
        .unwrap();
    let minority = minority.wait_with_output().unwrap();
    assert!(
        !minority.status.success(),
        "the cut-off leader acknowledged: {}",
        String::from_utf8_lossy(&minority.stdout)
    );
    // Outside, the majority fences broker 3, moves the leadership, and
    // takes acks=all writes with the two of them.
    let outside_view = cluster.node(1).bootstrap.clone();
    wait_until(WAIT, "a new leader outside", || {
        cluster
            .partition_state_at(&outside_view, "split", partition)
            .0
            != 3
    });
    // A client on the majority's side (one that knew broker 3 keeps
    // trying it until its requests time out) writes to the new leader.
    let majority: FutureProducer = cluster
        .client_config()
        .set(
            "bootstrap.servers",
            format!(
                "{},{}",
                cluster.brokers[0].bootstrap, cluster.brokers[1].bootstrap
            ),
        )
        .set("acks", "all")
        .create()
        .unwrap();
    let sent = Instant::now();
    majority
        .send(
            FutureRecord::<(), _>::to("split")
                .payload("majority")
                .partition(partition),
            Timeout::After(WAIT),
        )
        .await
        .unwrap();
    eprintln!(
        "the majority took a write {:?} after asking",
        sent.elapsed()
    );

    namespace.heal();
    wait_until(WAIT, "broker 3 back in the ISR", || {
        cluster.partition_state("split", partition).1 == [1, 2, 3]
    });
    let (leader, _) = cluster.partition_state("split", partition);
    let log: Vec<String> = read_partition(&cluster, "split", partition)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(log, ["before", "majority"]);
    // Broker 3 cut what it wrote alone and holds the leader's bytes.
    let segment = |node: i32| {
        let dir = cluster.brokers[usize::try_from(node - 1).unwrap()]
            .data
            .join(format!("split-{partition}"));
        let mut bytes = std::fs::read(dir.join("00000000000000000000.log")).unwrap();
        while bytes.last() == Some(&0) {
            bytes.pop(); // Preallocated space.
        }
        bytes
    };
    wait_until(WAIT, "broker 3 holding the leader's bytes", || {
        segment(3) == segment(leader)
    });
    let ours = segment(3);
    assert!(
        !ours.windows(8).any(|w| w == b"minority"),
        "the unacknowledged write survived"
    );
}

#[test]
fn a_consumer_group_keeps_consuming_when_its_coordinator_is_killed() {
    let mut cluster = Cluster::start(3, &["--set", "offsets.topic.num.partitions=3"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        create_topic(&cluster, "events", 3, &[]).await;
        let producer = producer(&cluster, &[]);
        for i in 0..600 {
            let payload = i.to_string();
            producer
                .send(
                    FutureRecord::<(), _>::to("events")
                        .payload(&payload)
                        .partition(i % 3),
                    Timeout::After(WAIT),
                )
                .await
                .unwrap();
        }
    });
    let config = cluster.client_config();
    let group_consumer = || -> BaseConsumer {
        config
            .clone()
            .set("group.id", "billing")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .create()
            .unwrap()
    };
    let consumer = group_consumer();
    consumer.subscribe(&["events"]).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut consume_until = |consumer: &BaseConsumer, count: usize| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while seen.len() < count {
            assert!(
                Instant::now() < deadline,
                "consumed only {} of {count}",
                seen.len()
            );
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                let payload = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
                seen.insert(payload.parse::<u32>().unwrap());
                // Synchronous, so that none is retried after a later one.
                // It may fail while the coordinator moves; the next covers it.
                if seen.len() % 50 == 0 {
                    let _ = consumer.commit_message(&message, rdkafka::consumer::CommitMode::Sync);
                }
            }
        }
    };
    consume_until(&consumer, 300);
    let coordinator = find_coordinator(&cluster, "billing");
    cluster.node(coordinator).kill();
    consume_until(&consumer, 600);
    // Everything read: the new coordinator takes the group's commit.
    let mut ends = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        ends.add_partition_offset("events", p, rdkafka::Offset::Offset(200))
            .unwrap();
    }
    wait_until(WAIT, "a commit at the new coordinator", || {
        let _ = consumer.poll(Duration::from_millis(50));
        consumer
            .commit(&ends, rdkafka::consumer::CommitMode::Sync)
            .is_ok()
    });
    assert_ne!(
        find_coordinator(&cluster, "billing"),
        coordinator,
        "the coordinator moved"
    );
    drop(consumer);
    cluster.node(coordinator).restart();
    // A new member resumes from what was committed: the end of each
    // partition, so it has nothing left to read.
    let consumer = group_consumer();
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        assignment.add_partition("events", p);
    }
    let committed = consumer.committed_offsets(assignment, WAIT).unwrap();
    for element in committed.elements() {
        assert_eq!(
            element.offset(),
            rdkafka::Offset::Offset(200),
            "{element:?}"
        );
    }
}

/// The broker coordinating `group`, by FindCoordinator.
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

/// The controller id DescribeCluster reports, once there is one.
fn describe_controller(cluster: &Cluster) -> i32 {
    let mut controller = -1;
    wait_until(WAIT, "a controller", || {
        let broker = cluster.brokers.iter().find(|b| b.is_running()).unwrap();
        let mut wire = common::wire::Wire::connect(&broker.bootstrap);
        let response = wire.send(
            0,
            &kafka_protocol::messages::DescribeClusterRequest::default(),
        );
        controller = response.controller_id.0;
        controller > 0
    });
    controller
}

#[test]
fn kafka_python_describes_the_metadata_quorum_through_any_node() {
    let cluster = Cluster::start(3, &[]);
    // Each node answers with the leader's view (a follower asks the
    // leader); all of them agree on the leader.
    let mut leaders = Vec::new();
    for broker in &cluster.brokers {
        let mut answer = serde_json::Value::Null;
        wait_until(
            WAIT,
            "a quorum description with three voters caught up",
            || {
                let Ok(out) =
                    common::security::python_client("kafka_python_quorum.py", &[&broker.bootstrap])
                else {
                    return false;
                };
                answer = serde_json::from_str(&out).unwrap();
                let partition = &answer["topics"][0]["partitions"][0];
                partition["error"].is_null()
                    && partition["current_voters"]
                        .as_array()
                        .is_some_and(|voters| {
                            voters.len() == 3
                                && voters.iter().all(|v| {
                                    v["log_end_offset"].as_i64().unwrap()
                                        >= partition["high_watermark"].as_i64().unwrap()
                                })
                        })
            },
        );
        let topic = &answer["topics"][0];
        assert_eq!(topic["topic_name"], "__cluster_metadata");
        let partition = &topic["partitions"][0];
        assert!(
            partition["high_watermark"].as_i64().unwrap() > 0,
            "{answer}"
        );
        let mut voters: Vec<i64> = partition["current_voters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["replica_id"].as_i64().unwrap())
            .collect();
        voters.sort_unstable();
        assert_eq!(voters, [1, 2, 3]);
        leaders.push(partition["leader_id"].as_i64().unwrap());
        // v2: the voters' controller endpoints.
        if let Some(nodes) = answer["nodes"].as_array() {
            assert_eq!(nodes.len(), 3, "{answer}");
        }
    }
    assert!(
        leaders
            .iter()
            .all(|l| *l == leaders[0] && (1..=3).contains(l)),
        "{leaders:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_lists_and_cancels_a_move_stuck_on_a_dead_broker() {
    let mut cluster = Cluster::start(3, &[]);
    // A move onto a dead broker never completes. The dead one is not the
    // quorum's leader, which kafka-python sends its requests to.
    let mut wire = common::wire::Wire::connect(&cluster.brokers[0].bootstrap);
    let controller = wire
        .send(
            0,
            &kafka_protocol::messages::DescribeClusterRequest::default(),
        )
        .controller_id
        .0;
    let dead = (1..=3).find(|id| *id != controller).unwrap();
    let kept: Vec<i32> = (1..=3).filter(|id| *id != dead).collect();
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(
                "stuck",
                1,
                TopicReplication::Variable(&[&kept]),
            )],
            &AdminOptions::new().operation_timeout(Some(WAIT)),
        )
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    cluster.node(dead).kill();
    // Fenced, so that kafka-python no longer tries it.
    wait_until(WAIT, "the dead broker fenced", || {
        let consumer: BaseConsumer = cluster.client_config().create().unwrap();
        consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .is_ok_and(|m| m.brokers().len() == 2)
    });
    let bootstrap = cluster
        .brokers
        .iter()
        .filter(|b| b.is_running())
        .map(|b| b.bootstrap.clone())
        .collect::<Vec<_>>()
        .join(",");
    let target = format!("{},{dead}", kept[0]);
    let cli = |args: &[&str]| {
        std::process::Command::new(common::rill_binary())
            .args(args)
            .args(["--bootstrap", &bootstrap])
            .output()
            .unwrap()
    };
    // `rill topic reassign` moves it and lists the move.
    let moved = cli(&[
        "topic",
        "reassign",
        "stuck",
        "--partition",
        "0",
        "--replicas",
        &target,
    ]);
    assert!(
        moved.status.success(),
        "{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    let listed = String::from_utf8(cli(&["topic", "reassign", "--list"]).stdout).unwrap();
    let row: Vec<&str> = listed
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let (k0, k1) = (kept[0].to_string(), kept[1].to_string());
    let all = format!("{k0},{dead},{k1}");
    let dead_id = dead.to_string();
    assert_eq!(
        row,
        ["stuck-0", all.as_str(), dead_id.as_str(), k1.as_str()],
        "{listed}"
    );
    // kafka-python moves it again (the same move), lists, and cancels.
    let out = common::security::python_client(
        "kafka_python_reassignments.py",
        &[&bootstrap, "stuck", &target],
    )
    .unwrap();
    let steps: Vec<serde_json::Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let moving = serde_json::json!({
        "stuck-0": {
            "replicas": [kept[0], dead, kept[1]],
            "adding_replicas": [dead],
            "removing_replicas": [kept[1]],
        }
    });
    assert_eq!(
        steps[0]["move"]["stuck-0"],
        serde_json::Value::Null,
        "{out}"
    );
    assert_eq!(steps[1]["moving"], moving, "{out}");
    assert_eq!(steps[2]["named"], moving, "{out}");
    assert_eq!(
        steps[3]["cancel"]["stuck-0"],
        serde_json::Value::Null,
        "{out}"
    );
    assert_eq!(steps[4]["after"], serde_json::json!({}), "{out}");
    assert_eq!(
        steps[5]["again"]["stuck-0"], "NoReassignmentInProgressError",
        "{out}"
    );
    // Nothing left to list or cancel.
    let listed = cli(&["topic", "reassign", "--list"]);
    assert!(listed.stdout.is_empty());
    assert!(String::from_utf8_lossy(&listed.stderr).contains("no partition is being moved"));
    let cancel = cli(&["topic", "reassign", "stuck", "--partition", "0", "--cancel"]);
    assert!(!cancel.status.success());
    assert!(
        String::from_utf8_lossy(&cancel.stderr).contains("error 85"),
        "{cancel:?}"
    );
    // Back where it was: the two replicas, both in sync.
    let consumer: BaseConsumer = cluster.client_config().create().unwrap();
    let metadata = consumer
        .fetch_metadata(Some("stuck"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions()[0].replicas(), &kept[..]);
    let mut isr = cluster.partition_state("stuck", 0).1;
    isr.sort_unstable();
    assert_eq!(isr, kept);
}
