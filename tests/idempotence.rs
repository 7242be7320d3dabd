//! The idempotent producer: a retried batch is answered with its original
//! offset and not written twice, a sequence gap is refused, and producer
//! state survives a clean restart and a kill -9.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use common::BrokerProcess;
use common::wire::{Wire, create_topic, log_end, produce};
use kafka_protocol::messages::InitProducerIdRequest;
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

const WAIT: Duration = Duration::from_secs(30);
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

#[test]
fn retries_dedupe_and_gaps_are_refused_across_restarts_and_kill_9() {
    let mut broker = BrokerProcess::start(&[]);
    let mut wire = Wire::connect(&broker.bootstrap);
    create_topic(&mut wire, "dedupe");
    let init = wire.send(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    assert_eq!(init.error_code, 0);
    let producer_id = init.producer_id.0;
    assert!(producer_id >= 0);

    assert_eq!(
        produce(&mut wire, "dedupe", producer_id, 0, 0, &["a", "b"]),
        (0, 0)
    );
    assert_eq!(
        produce(&mut wire, "dedupe", producer_id, 0, 2, &["c"]),
        (0, 2)
    );
    // A retry of the first batch: its original offset, nothing written.
    assert_eq!(
        produce(&mut wire, "dedupe", producer_id, 0, 0, &["a", "b"]),
        (0, 0)
    );
    assert_eq!(log_end(&mut wire, "dedupe"), 3);
    // A gap: sequence 5 when 3 is next.
    assert_eq!(
        produce(&mut wire, "dedupe", producer_id, 0, 5, &["x"]).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );

    for (how, stop) in [("clean", true), ("kill -9", false)] {
        drop(wire);
        if stop {
            assert!(broker.stop().success(), "the broker exits 0 on SIGTERM");
            assert!(
                broker.data.join(".rill-clean-shutdown").exists(),
                "a SIGTERM stop writes the clean-shutdown marker"
            );
        } else {
            broker.kill();
        }
        broker.restart();
        wire = Wire::connect(&broker.bootstrap);
        assert_eq!(
            produce(&mut wire, "dedupe", producer_id, 0, 2, &["c"]),
            (0, 2),
            "a retry after a {how} restart gets its original offset"
        );
        assert_eq!(
            produce(&mut wire, "dedupe", producer_id, 0, 9, &["x"]).0,
            OUT_OF_ORDER_SEQUENCE_NUMBER,
            "a gap after a {how} restart is refused"
        );
        assert_eq!(log_end(&mut wire, "dedupe"), 3, "after a {how} restart");
    }
    // An older epoch is fenced once a newer one wrote.
    assert_eq!(
        produce(&mut wire, "dedupe", producer_id, 1, 0, &["d"]),
        (0, 3)
    );
    assert_eq!(
        produce(&mut wire, "dedupe", producer_id, 0, 3, &["e"]).0,
        INVALID_PRODUCER_EPOCH
    );
    // Producer ids are never handed out twice, even across restarts.
    let again = wire.send(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    assert!(again.producer_id.0 > producer_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_librdkafka_producer_carries_on_across_a_kill_9() {
    let mut broker = BrokerProcess::start(&[]);
    let producer = broker.producer(&[
        ("enable.idempotence", "true"),
        ("message.timeout.ms", "60000"),
    ]);
    for i in 0..50 {
        producer
            .send(
                FutureRecord::<(), _>::to("orders").payload(&format!("{i}")),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
    }
    broker.kill();
    broker.restart();
    for i in 50..100 {
        producer
            .send(
                FutureRecord::<(), _>::to("orders").payload(&format!("{i}")),
                Timeout::After(WAIT),
            )
            .await
            .unwrap();
    }
    let consumer = broker.consumer(&[]);
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset("orders", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    for i in 0..100 {
        let message = consumer.poll(WAIT).unwrap().unwrap();
        assert_eq!(message.payload(), Some(format!("{i}").as_bytes()));
        assert_eq!(message.offset(), i64::from(i));
    }
    let (_, high) = consumer.fetch_watermarks("orders", 0, WAIT).unwrap();
    assert_eq!(high, 100, "every acknowledged message exactly once");
}
