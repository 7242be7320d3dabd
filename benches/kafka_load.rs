//! Produces N messages through librdkafka to a running broker, then reads
//! them back, and prints the rates: the front end's throughput as a Kafka
//! client sees it, until `rill bench` exists.
//!
//! ```sh
//! cargo run --release -p rill-benches --bin kafka-load -- 127.0.0.1:9092 TOPIC MESSAGES SIZE ACKS
//! ```
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, TopicPartitionList};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        return Err("usage: kafka-load BOOTSTRAP TOPIC MESSAGES SIZE ACKS".into());
    }
    let (bootstrap, topic) = (&args[1], &args[2]);
    let messages: usize = args[3].parse()?;
    let size: usize = args[4].parse()?;
    let acks = &args[5];
    let payload = vec![b'r'; size];

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()?;
    let started = Instant::now();
    let mut sent = 0;
    while sent < messages {
        match producer.send(
            BaseRecord::<(), _>::to(topic)
                .payload(&payload)
                .partition(0),
        ) {
            Ok(()) => sent += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(1));
            }
            Err((error, _)) => return Err(error.into()),
        }
    }
    producer.flush(Duration::from_secs(300))?;
    let produce = started.elapsed().as_secs_f64();
    report("produce", messages, size, produce);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kafka-load")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let (_, high) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(30))?;
    let started = Instant::now();
    let mut read = 0usize;
    while read < high as usize {
        if let Some(message) = consumer.poll(Duration::from_secs(10)) {
            let message = message?;
            read += 1;
            if message.payload().map_or(0, <[u8]>::len) != size {
                return Err("a message came back with the wrong size".into());
            }
        } else {
            return Err(format!("stalled after {read} of {high} messages").into());
        }
    }
    report("consume", read, size, started.elapsed().as_secs_f64());
    Ok(())
}

fn report(what: &str, messages: usize, size: usize, seconds: f64) {
    let rate = messages as f64 / seconds;
    println!(
        "{what}: {messages} messages of {size} B in {seconds:.2} s: {rate:.0} msg/s, {:.1} MB/s",
        rate * size as f64 / 1e6
    );
}
