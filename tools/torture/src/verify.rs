//! The final check: every partition read from its start, against what the
//! broker acknowledged.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::producers::parse_value;

/// How many problems a report lists; the count says the rest.
const PROBLEMS_LISTED_MAX: usize = 20;

/// One record as read back: its offset and (producer, seq), or None when
/// its value is not one of ours.
pub type Read = (i64, Option<(u32, u64)>);

fn reader(bootstrap: &str) -> Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", "rill-torture-verify")
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .set("log_level", "2")
        .create()?)
}

/// The high watermark of `partition` of `topic`.
pub fn high_watermark(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<i64> {
    let (_, high) = reader(bootstrap)?
        .fetch_watermarks(topic, partition, timeout)
        .with_context(|| format!("the watermarks of partition {partition}"))?;
    Ok(high)
}

/// How many partitions the broker says `topic` has, or None if it does
/// not know the topic. Asked without creating it.
pub fn topic_partitions(bootstrap: &str, topic: &str, timeout: Duration) -> Result<Option<usize>> {
    let consumer = reader(bootstrap)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("the metadata of topic {topic}"))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len()))
}

/// Reads `partition` of `topic` from its start to its high watermark.
pub fn read_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Vec<Read>> {
    let consumer = reader(bootstrap)?;
    let (_, high) = consumer
        .fetch_watermarks(topic, partition, timeout)
        .with_context(|| format!("the watermarks of partition {partition}"))?;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Beginning)?;
    consumer.assign(&list)?;
    let mut records = Vec::new();
    let mut next = 0;
    let deadline = Instant::now() + timeout;
    while next < high {
        if Instant::now() > deadline {
            bail!("partition {partition}: read up to offset {next} of {high} in {timeout:?}");
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let parsed = message
                    .payload()
                    .and_then(parse_value)
                    .filter(|&(_, p, _)| p == partition)
                    .map(|(producer, _, seq)| (producer, seq));
                records.push((message.offset(), parsed));
                next = message.offset() + 1;
            }
            Some(Err(error)) => bail!("partition {partition}: reading: {error}"),
            None => {}
        }
    }
    Ok(records)
}

/// What the check found in one partition.
#[derive(Debug, Default)]
pub struct Checked {
    pub records: usize,
    /// Acknowledged records not found at their offsets.
    pub missing: usize,
    pub problems: Vec<String>,
    pub problem_count: usize,
}

impl Checked {
    fn problem(&mut self, text: String) {
        self.problem_count += 1;
        if self.problems.len() < PROBLEMS_LISTED_MAX {
            self.problems.push(text);
        }
    }
}

/// Every acknowledged record present exactly once, at the offset its
/// acknowledgement gave; no record of ours twice; each producer's records
/// in the order it sent them. `acked` is (producer, partition) -> (seq,
/// offset) for this partition's producers.
pub fn check_partition(
    partition: i32,
    log: &[Read],
    acked: &BTreeMap<(u32, i32), Vec<(u64, i64)>>,
) -> Checked {
    let mut checked = Checked {
        records: log.len(),
        ..Checked::default()
    };
    let mut at: BTreeMap<i64, (u32, u64)> = BTreeMap::new();
    let mut seen: BTreeMap<(u32, u64), i64> = BTreeMap::new();
    let mut last_seq: BTreeMap<u32, u64> = BTreeMap::new();
    for &(offset, record) in log {
        let Some((producer, seq)) = record else {
            checked.problem(format!(
                "partition {partition}: offset {offset} is not a record of ours"
            ));
            continue;
        };
        at.insert(offset, (producer, seq));
        if let Some(first) = seen.insert((producer, seq), offset) {
            checked.problem(format!(
                "partition {partition}: record {producer}:{seq} twice, at offsets {first} and {offset}"
            ));
        }
        if let Some(&last) = last_seq.get(&producer) {
            if seq <= last {
                checked.problem(format!(
                    "partition {partition}: record {producer}:{seq} at offset {offset} after {producer}:{last}"
                ));
            }
        }
        last_seq.insert(producer, seq);
    }
    for (&(producer, p), acks) in acked {
        if p != partition {
            continue;
        }
        for &(seq, offset) in acks {
            match at.get(&offset) {
                Some(&found) if found == (producer, seq) => {}
                found => {
                    checked.missing += 1;
                    checked.problem(format!(
                        "partition {partition}: acknowledged record {producer}:{seq} at offset {offset} is missing (the offset holds {found:?})"
                    ));
                }
            }
        }
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::check_partition;
    use std::collections::BTreeMap;

    #[test]
    fn loss_duplicates_and_reordering_are_each_found() {
        let acked = BTreeMap::from([
            ((0, 0), vec![(0, 0), (1, 1), (2, 2)]),
            ((1, 1), vec![(0, 0)]),
        ]);
        let whole = [(0, Some((0, 0))), (1, Some((0, 1))), (2, Some((0, 2)))];
        assert_eq!(check_partition(0, &whole, &acked).problem_count, 0);
        let lost = [(0, Some((0, 0))), (1, Some((0, 1)))];
        assert_eq!(check_partition(0, &lost, &acked).problem_count, 1);
        assert_eq!(check_partition(0, &lost, &acked).missing, 1);
        let twice = [
            (0, Some((0, 0))),
            (1, Some((0, 1))),
            (2, Some((0, 2))),
            (3, Some((0, 2))),
        ];
        assert_eq!(check_partition(0, &twice, &acked).problem_count, 2);
        let swapped = [(0, Some((0, 0))), (1, Some((0, 2))), (2, Some((0, 1)))];
        assert_eq!(check_partition(0, &swapped, &acked).problem_count, 3);
        let foreign = [
            (0, Some((0, 0))),
            (1, Some((0, 1))),
            (2, Some((0, 2))),
            (3, None),
        ];
        assert_eq!(check_partition(0, &foreign, &acked).problem_count, 1);
    }
}
