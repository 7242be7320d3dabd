//! What the console asks the leaders of partitions: offsets (ListOffsets)
//! and log sizes (DescribeLogDirs), each leader once for all of its
//! partitions asked about.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeLogDirsRequest, DescribeLogDirsResponse, ListOffsetsRequest,
    ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::kafka::Kafka;
use crate::broker::Broker;

/// A partition, by topic name and index.
pub(crate) type Partition = (String, i32);

/// ListOffsets' special timestamps.
pub(crate) const EARLIEST: i64 = -2;
pub(crate) const LATEST: i64 = -1;

/// Groups `partitions` by their leader in this broker's metadata; those
/// without one are left out.
pub(crate) fn by_leader(
    broker: &Broker,
    partitions: &[Partition],
) -> BTreeMap<i32, Vec<Partition>> {
    let metadata = broker.node().metadata();
    let mut led: BTreeMap<i32, Vec<Partition>> = BTreeMap::new();
    for (topic, index) in partitions {
        let leader = metadata
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(*index).ok()?))
            .and_then(|state| state.leader);
        if let Some(leader) = leader {
            led.entry(leader.0)
                .or_default()
                .push((topic.clone(), *index));
        }
    }
    led
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Each partition's offset for `timestamp` (EARLIEST, LATEST — the high
/// watermark — or the first offset at or after a time; -1 when there is
/// none), as its leader answers. Partitions whose leader did not answer are
/// missing.
pub(crate) async fn offsets(
    broker: &Broker,
    kafka: &Kafka,
    partitions: &[Partition],
    timestamp: i64,
) -> HashMap<Partition, i64> {
    let mut found = HashMap::new();
    for (leader, led) in by_leader(broker, partitions) {
        let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for (topic, index) in &led {
            topics.entry(topic).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(*index)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp),
            );
        }
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        ListOffsetsTopic::default()
                            .with_name(topic_name(name))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let answer: Result<ListOffsetsResponse, _> = kafka
            .call(broker, leader, (ApiKey::ListOffsets, 7), &request)
            .await;
        let Ok(answer) = answer else {
            continue;
        };
        for topic in answer.topics {
            for partition in topic.partitions.into_iter().filter(|p| p.error_code == 0) {
                found.insert(
                    (topic.name.0.to_string(), partition.partition_index),
                    partition.offset,
                );
            }
        }
    }
    found
}

/// Each partition's log size on its leader; partitions whose leader did
/// not answer are missing.
pub(crate) async fn sizes(
    broker: &Broker,
    kafka: &Kafka,
    partitions: &[Partition],
) -> HashMap<Partition, i64> {
    let mut found = HashMap::new();
    for (leader, led) in by_leader(broker, partitions) {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, index) in &led {
            topics.entry(topic).or_default().push(*index);
        }
        let request = DescribeLogDirsRequest::default().with_topics(Some(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    DescribableLogDirTopic::default()
                        .with_topic(topic_name(name))
                        .with_partitions(partitions)
                })
                .collect(),
        ));
        let answer: Result<DescribeLogDirsResponse, _> = kafka
            .call(broker, leader, (ApiKey::DescribeLogDirs, 4), &request)
            .await;
        let Ok(answer) = answer else {
            continue;
        };
        for dir in answer.results.into_iter().filter(|d| d.error_code == 0) {
            for topic in dir.topics {
                for partition in topic.partitions.iter().filter(|p| !p.is_future_key) {
                    *found
                        .entry((topic.name.0.to_string(), partition.partition_index))
                        .or_default() += partition.partition_size;
                }
            }
        }
    }
    found
}
