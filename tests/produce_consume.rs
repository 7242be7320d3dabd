//! Produce and replay through librdkafka against the real broker: keys,
//! null values, duplicate header keys, every compression codec, replay
//! from an offset and from a timestamp, auto-created topics.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use common::BrokerProcess;
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

const WAIT: Duration = Duration::from_secs(30);

/// Reads `count` messages from `consumer`, failing after WAIT without progress.
fn read(consumer: &BaseConsumer, count: usize) -> Vec<rdkafka::message::OwnedMessage> {
    let mut out = Vec::new();
    while out.len() < count {
        match consumer.poll(WAIT) {
            Some(Ok(message)) => out.push(message.detach()),
            Some(Err(error)) => panic!("consume failed: {error}"),
            None => panic!("no message within {WAIT:?}; have {} of {count}", out.len()),
        }
    }
    out
}

fn assign(consumer: &BaseConsumer, topic: &str, partition: i32, offset: rdkafka::Offset) {
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, offset)
        .unwrap();
    consumer.assign(&assignment).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_round_trip_with_keys_null_values_and_duplicate_headers() {
    let broker = BrokerProcess::start(&[]);
    let producer = broker.producer(&[]);
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "k",
            value: Some("one"),
        })
        .insert(Header {
            key: "k",
            value: Some("two"),
        })
        .insert(Header {
            key: "empty",
            value: None::<&str>,
        });
    let delivery = producer
        .send(
            FutureRecord::to("events")
                .key("key-1")
                .payload("value-1")
                .headers(headers),
            Timeout::After(WAIT),
        )
        .await
        .unwrap();
    assert_eq!((delivery.partition, delivery.offset), (0, 0));
    let delivery = producer
        .send(
            FutureRecord::<str, str>::to("events").key("tombstone"),
            Timeout::After(WAIT),
        )
        .await
        .unwrap();
    assert_eq!(delivery.offset, 1);

    let consumer = broker.consumer(&[]);
    assign(&consumer, "events", 0, rdkafka::Offset::Beginning);
    let messages = read(&consumer, 2);
    assert_eq!(messages[0].key(), Some(&b"key-1"[..]));
    assert_eq!(messages[0].payload(), Some(&b"value-1"[..]));
    let headers = messages[0].headers().unwrap();
    let seen: Vec<(String, Option<Vec<u8>>)> = headers
        .iter()
        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("k".to_string(), Some(b"one".to_vec())),
            ("k".to_string(), Some(b"two".to_vec())),
            ("empty".to_string(), None),
        ]
    );
    assert_eq!(messages[1].key(), Some(&b"tombstone"[..]));
    assert_eq!(messages[1].payload(), None);
    assert_eq!(messages[1].offset(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_round_trips() {
    let broker = BrokerProcess::start(&[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        // compression.codec: librdkafka's global name. Its topic-level alias
        // compression.type, set in the global config, compresses nothing.
        let producer = broker.producer(&[("compression.codec", codec), ("linger.ms", "50")]);
        // Enqueue all, then wait: the batches carry many records each.
        let deliveries: Vec<_> = (0..200)
            .map(|i| {
                let payload = format!("{codec} message {i} {}", "x".repeat(i % 50));
                producer
                    .send_result(FutureRecord::<(), _>::to(&topic).payload(&payload))
                    .map_err(|(error, _)| error)
                    .unwrap()
            })
            .collect();
        for delivery in deliveries {
            delivery.await.unwrap().map_err(|(error, _)| error).unwrap();
        }
        let consumer = broker.consumer(&[]);
        assign(&consumer, &topic, 0, rdkafka::Offset::Beginning);
        let messages = read(&consumer, 200);
        for (i, message) in messages.iter().enumerate() {
            let expected = format!("{codec} message {i} {}", "x".repeat(i % 50));
            assert_eq!(message.payload(), Some(expected.as_bytes()), "{codec} #{i}");
            assert_eq!(message.offset(), i as i64);
        }
        // The batches went over the wire, and are stored, in the codec
        // (all but those of a record or two: librdkafka sends a batch
        // uncompressed when the codec would not make it smaller).
        let mut wire = common::wire::Wire::connect(&broker.bootstrap);
        let (error, records) = common::wire::fetch_from(&mut wire, &topic, 0, 0);
        assert_eq!(error, 0);
        let codecs: Vec<u8> = rill_record::Batches::new(&records)
            .filter(|b| b.records_count() > 2)
            .map(|b| b.attributes().compression_code())
            .collect();
        assert!(!codecs.is_empty(), "{codec}: no batch of several records");
        assert!(
            codecs.iter().all(|c| *c == rdkafka_codec(codec).code()),
            "{codec}: stored as {codecs:?}"
        );
    }
}

fn rdkafka_codec(name: &str) -> rill_record::Compression {
    use rill_record::Compression;
    match name {
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => Compression::None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_an_offset_and_from_a_timestamp() {
    let broker = BrokerProcess::start(&[]);
    let producer = broker.producer(&[]);
    for i in 0..10i64 {
        producer
            .send(
                FutureRecord::<(), _>::to("replay")
                    .payload(&format!("m{i}"))
                    .timestamp(1_000_000 + i * 1000),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
    }
    let consumer = broker.consumer(&[]);
    assign(&consumer, "replay", 0, rdkafka::Offset::Offset(7));
    let messages = read(&consumer, 3);
    assert_eq!(messages[0].payload(), Some(&b"m7"[..]));
    assert_eq!(messages[0].offset(), 7);

    let consumer = broker.consumer(&[]);
    let mut wanted = TopicPartitionList::new();
    wanted
        .add_partition_offset("replay", 0, rdkafka::Offset::Offset(1_004_500))
        .unwrap();
    let found = consumer.offsets_for_times(wanted, WAIT).unwrap();
    let offset = found.find_partition("replay", 0).unwrap().offset();
    assert_eq!(offset, rdkafka::Offset::Offset(5));
    assign(&consumer, "replay", 0, offset);
    let messages = read(&consumer, 5);
    assert_eq!(messages[0].payload(), Some(&b"m5"[..]));
    assert_eq!(
        messages[0].timestamp(),
        rdkafka::Timestamp::CreateTime(1_005_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_topics_carry_the_brokers_clock() {
    let broker = BrokerProcess::start(&[]);
    let admin = broker.admin();
    let topic =
        rdkafka::admin::NewTopic::new("stamped", 1, rdkafka::admin::TopicReplication::Fixed(1))
            .set("message.timestamp.type", "LogAppendTime");
    let options = rdkafka::admin::AdminOptions::new();
    let created = admin.create_topics([&topic], &options).await.unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let producer = broker.producer(&[]);
    let delivery = producer
        .send(
            FutureRecord::<(), _>::to("stamped")
                .payload("x")
                .timestamp(1_000),
            Timeout::After(WAIT),
        )
        .await
        .unwrap();
    let consumer = broker.consumer(&[]);
    assign(&consumer, "stamped", 0, rdkafka::Offset::Beginning);
    let message = &read(&consumer, 1)[0];
    let rdkafka::Timestamp::LogAppendTime(stamped) = message.timestamp() else {
        panic!(
            "expected a LogAppendTime timestamp, got {:?}",
            message.timestamp()
        );
    };
    assert!(
        stamped >= before,
        "the broker's clock, not the producer's 1000"
    );
    assert_eq!(
        delivery.timestamp,
        rdkafka::Timestamp::LogAppendTime(stamped)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topics_keep_the_latest_value_of_each_key() {
    let broker = BrokerProcess::start(&["--set", "log.cleaner.backoff.ms=50"]);
    let admin = broker.admin();
    let topic =
        rdkafka::admin::NewTopic::new("latest", 1, rdkafka::admin::TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact")
            .set("segment.bytes", "2048")
            .set("min.cleanable.dirty.ratio", "0.01");
    let created = admin
        .create_topics([&topic], &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let producer = broker.producer(&[]);
    for i in 0..200 {
        let key = format!("key-{}", i % 5);
        producer
            .send(
                FutureRecord::to("latest")
                    .key(&key)
                    .payload(&format!("{i}")),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
    }
    // Wait (bounded) until the cleaner has removed superseded records; the
    // active segment is never cleaned, so some duplicates stay at the tail.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let consumer = broker.consumer(&[]);
        assign(&consumer, "latest", 0, rdkafka::Offset::Beginning);
        let (_, high) = consumer.fetch_watermarks("latest", 0, WAIT).unwrap();
        assert_eq!(high, 200, "compaction keeps offsets");
        let mut latest = std::collections::BTreeMap::new();
        let mut count = 0;
        loop {
            let message = consumer.poll(WAIT).unwrap().unwrap();
            count += 1;
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            latest.insert(key, value);
            if message.offset() == 199 {
                break;
            }
        }
        let expected: std::collections::BTreeMap<String, String> = (195..200)
            .map(|i| (format!("key-{}", i % 5), format!("{i}")))
            .collect();
        assert_eq!(latest, expected, "the latest value of every key survives");
        if count < 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing was compacted in {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
