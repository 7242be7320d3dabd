//! The broker's state as one scrape sees it: its partitions (how many it
//! holds and leads, which lack replicas), the size of their logs, its log
//! dirs' free space, and the cluster's brokers. Taken from the broker at
//! the scrape, then encoded.

use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::NoLabelSet;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;
use rill_cluster::BrokerId;
use rill_partition::TopicPartition;
use rill_storage::{FlushStats, Histogram};

use crate::broker::Broker;

/// One partition's log.
#[derive(Debug)]
struct LogFigures {
    size_bytes: i64,
    segments: i64,
    high_watermark: i64,
    log_end_offset: i64,
}

/// A snapshot of the broker for one scrape.
#[derive(Debug)]
pub(crate) struct BrokerState {
    /// Each local partition's log, by topic and partition.
    logs: BTreeMap<(String, i32), LogFigures>,
    /// Whether `logs` is also encoded partition by partition (at most
    /// metrics.partition.series.max partitions), not only by topic.
    per_partition: bool,
    leader: i64,
    under_replicated: i64,
    /// Led partitions whose ISR is below min.insync.replicas.
    under_min_isr: i64,
    offline: i64,
    /// The last metadata log entry applied here.
    metadata_applied: Option<u64>,
    /// Each log dir's (total, free) bytes.
    dirs: Vec<(String, Option<(u64, u64)>)>,
    brokers_unfenced: i64,
    brokers_fenced: i64,
    controller: Option<i32>,
    flush: FlushStats,
    /// ISR (shrinks, growths) of partitions this broker leads.
    isr_changes: (u64, u64),
    leaderships: u64,
    /// The metadata quorum's term, this controller's log end offset, and
    /// the quorum's commit offset as it last heard (both past their last
    /// entry, as Kafka's offsets are).
    quorum: Option<(u64, u64, Option<u64>)>,
    /// On the quorum's leader: how many entries each other member lacks.
    quorum_lag: Vec<(u64, i64)>,
}

impl BrokerState {
    /// The state of `broker` now; per-partition series only while it
    /// holds at most `partition_series_max` partitions.
    pub(crate) fn of(broker: &Broker, partition_series_max: usize) -> BrokerState {
        let mut logs = BTreeMap::new();
        for partition in broker.logs().partitions() {
            let tp = partition.topic_partition();
            let log = partition.log();
            logs.insert(
                (tp.topic.clone(), tp.partition),
                LogFigures {
                    size_bytes: i64::try_from(log.size_bytes()).unwrap_or(i64::MAX),
                    segments: log.segment_count() as i64,
                    high_watermark: partition.high_watermark().value(),
                    log_end_offset: partition.log_end_offset().value(),
                },
            );
        }
        let metadata = broker.node().metadata();
        let quorum = broker.node().quorum_status();
        let me = BrokerId(broker.node().node_id());
        let (mut leader, mut under_replicated, mut under_min_isr, mut offline) = (0, 0, 0, 0);
        for topic in metadata.topics.values() {
            for (index, state) in (0..).zip(&topic.partitions) {
                match state.leader {
                    None => offline += 1,
                    Some(id) if id == me => {
                        leader += 1;
                        if state.isr.len() < state.replicas.len() {
                            under_replicated += 1;
                        }
                        let tp = TopicPartition::new(topic.name.clone(), index);
                        if !broker.replicas().has_enough_replicas(&tp) {
                            under_min_isr += 1;
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        let dirs = broker
            .logs()
            .log_dirs()
            .iter()
            .map(|dir| (dir.display().to_string(), rill_storage::space_of(dir).ok()))
            .collect();
        let fenced = metadata.brokers.values().filter(|b| b.fenced).count() as i64;
        BrokerState {
            per_partition: logs.len() <= partition_series_max,
            logs,
            leader,
            under_replicated,
            under_min_isr,
            offline,
            metadata_applied: broker.node().metadata_applied_index(),
            dirs,
            brokers_unfenced: metadata.brokers.len() as i64 - fenced,
            brokers_fenced: fenced,
            controller: broker.node().controller_leader(),
            flush: broker.logs().flush_stats(),
            isr_changes: broker.replicas().isr_change_counts(),
            leaderships: broker.replicas().leaderships_taken(),
            quorum: quorum.as_ref().map(|status| {
                let log_end = status.last_log_index.map_or(0, |index| index + 1);
                let committed = status.committed_index.map(|index| index + 1);
                (status.term, log_end, committed)
            }),
            quorum_lag: quorum.as_ref().map_or_else(Vec::new, |status| {
                let log_end = status.last_log_index.map_or(0, |index| index + 1);
                let behind =
                    |held: Option<u64>| log_end.saturating_sub(held.map_or(0, |index| index + 1));
                status
                    .replicated
                    .iter()
                    .map(|(node, held)| (*node, i64::try_from(behind(*held)).unwrap_or(i64::MAX)))
                    .collect()
            }),
        }
    }

    /// Each topic's log size and segments, summed over its partitions.
    fn by_topic(&self) -> BTreeMap<&str, (i64, i64)> {
        let mut topics: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for ((topic, _), figures) in &self.logs {
            let sums = topics.entry(topic.as_str()).or_default();
            sums.0 += figures.size_bytes;
            sums.1 += figures.segments;
        }
        topics
    }
}

/// Encodes one gauge without labels.
fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help, unit): (&str, &str, Option<Unit>),
    value: i64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, unit.as_ref(), gauge.metric_type())?)
}

/// Encodes one histogram without labels.
fn histogram(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help, unit): (&str, &str, Option<Unit>),
    histogram: &Histogram,
) -> Result<(), std::fmt::Error> {
    let buckets: Vec<(f64, u64)> = histogram
        .bounds
        .iter()
        // The encoder writes +Inf for f64::MAX.
        .map(|bound| if bound.is_finite() { *bound } else { f64::MAX })
        .zip(histogram.counts.iter().copied())
        .collect();
    encoder
        .encode_descriptor(name, help, unit.as_ref(), MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(histogram.sum, histogram.count, &buckets, None)
}

/// Encodes a gauge family: one series per labels and value.
pub(super) fn gauges<'a, L>(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help, unit): (&str, &str, Option<Unit>),
    series: impl IntoIterator<Item = (L, i64)>,
) -> Result<(), std::fmt::Error>
where
    L: prometheus_client::encoding::EncodeLabelSet + 'a,
{
    let mut metric = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for BrokerState {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        gauge(
            e,
            (
                "partitions",
                "Partitions with a replica on this broker (PartitionCount)",
                None,
            ),
            self.logs.len() as i64,
        )?;
        gauge(
            e,
            (
                "partitions_leader",
                "Partitions this broker leads (LeaderCount)",
                None,
            ),
            self.leader,
        )?;
        gauge(
            e,
            (
                "partitions_under_replicated",
                "Partitions this broker leads whose ISR lacks a replica (UnderReplicatedPartitions)",
                None,
            ),
            self.under_replicated,
        )?;
        gauge(
            e,
            (
                "partitions_under_min_isr",
                "Partitions this broker leads whose ISR is below min.insync.replicas: acks=all writes are refused (UnderMinIsrPartitionCount)",
                None,
            ),
            self.under_min_isr,
        )?;
        if let Some((term, log_end, committed)) = self.quorum {
            gauge(
                e,
                (
                    "metadata_quorum_term",
                    "The metadata quorum's Raft term as this controller knows it; it grows with each election of a quorum leader (current-epoch)",
                    None,
                ),
                i64::try_from(term).unwrap_or(i64::MAX),
            )?;
            gauge(
                e,
                (
                    "metadata_log_end_offset",
                    "The end of this controller's copy of the metadata log: the last entry's index plus one (log-end-offset)",
                    None,
                ),
                i64::try_from(log_end).unwrap_or(i64::MAX),
            )?;
            if let Some(committed) = committed {
                gauge(
                    e,
                    (
                        "metadata_high_watermark",
                        "The metadata quorum's commit offset as this controller last heard: the last entry a majority holds, plus one; a controller whose log end lags it is catching up (high-watermark)",
                        None,
                    ),
                    i64::try_from(committed).unwrap_or(i64::MAX),
                )?;
            }
        }
        gauges(
            e,
            (
                "metadata_follower_lag",
                "On the metadata quorum's leader: entries of its log each other controller does not hold yet (DescribeQuorum's log end offsets)",
                None,
            ),
            self.quorum_lag
                .iter()
                .map(|(node, lag)| ([("node", node.to_string())], *lag)),
        )?;
        if let Some(applied) = self.metadata_applied {
            gauge(
                e,
                (
                    "metadata_applied_offset",
                    "The last metadata log entry this node has applied: nodes that lag behind the others have not caught up (last-applied-record-offset)",
                    None,
                ),
                i64::try_from(applied).unwrap_or(i64::MAX),
            )?;
        }
        gauge(
            e,
            (
                "log_maps",
                "Segment and index memory maps now; the least recently used are unmapped beyond rill_log_maps_max",
                None,
            ),
            i64::try_from(rill_storage::maps()).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            (
                "log_maps_max",
                "Segment and index memory maps at once at most (rill.log.maps.max)",
                None,
            ),
            i64::try_from(rill_storage::maps_max()).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            (
                "log_open_files",
                "Segment file descriptors open now; the least recently used close beyond rill_log_open_files_max",
                None,
            ),
            i64::try_from(rill_storage::open_files()).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            (
                "log_open_files_max",
                "Segment file descriptors open at once at most (rill.log.open.files.max)",
                None,
            ),
            i64::try_from(rill_storage::open_files_max()).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            (
                "partitions_offline",
                "Partitions of the cluster without a leader (OfflinePartitionsCount)",
                None,
            ),
            self.offline,
        )?;
        gauges(
            e,
            (
                "cluster_brokers",
                "Brokers registered in the cluster, by state",
                None,
            ),
            [
                ([("state", "unfenced")], self.brokers_unfenced),
                ([("state", "fenced")], self.brokers_fenced),
            ],
        )?;
        gauge(
            e,
            (
                "controller_leader",
                "The node id of the metadata quorum's leader; -1 when there is none (ActiveControllerCount)",
                None,
            ),
            self.controller.map_or(-1, i64::from),
        )?;
        let topics = self.by_topic();
        gauges(
            e,
            (
                "topic_log_size",
                "Bytes of this broker's logs of each topic (Log Size, summed)",
                Some(Unit::Bytes),
            ),
            topics.iter().map(|(t, (size, _))| ([("topic", *t)], *size)),
        )?;
        gauges(
            e,
            (
                "topic_log_segments",
                "Segments of this broker's logs of each topic (NumLogSegments, summed)",
                None,
            ),
            topics
                .iter()
                .map(|(t, (_, segments))| ([("topic", *t)], *segments)),
        )?;
        if self.per_partition {
            let labels = |(topic, partition): &(String, i32)| {
                [
                    ("topic", topic.clone()),
                    ("partition", partition.to_string()),
                ]
            };
            gauges(
                e,
                (
                    "partition_log_size",
                    "Bytes of each partition's log on this broker (Log Size)",
                    Some(Unit::Bytes),
                ),
                self.logs.iter().map(|(tp, f)| (labels(tp), f.size_bytes)),
            )?;
            gauges(
                e,
                (
                    "partition_log_end_offset",
                    "Each partition's log end offset on this broker (LogEndOffset)",
                    None,
                ),
                self.logs
                    .iter()
                    .map(|(tp, f)| (labels(tp), f.log_end_offset)),
            )?;
            gauges(
                e,
                (
                    "partition_high_watermark",
                    "Each partition's high watermark as this broker knows it",
                    None,
                ),
                self.logs
                    .iter()
                    .map(|(tp, f)| (labels(tp), f.high_watermark)),
            )?;
        }
        for (name, help, count) in [
            (
                "isr_shrinks",
                "ISR shrinks of partitions this broker leads, by it or by the controller fencing a broker (IsrShrinksPerSec)",
                self.isr_changes.0,
            ),
            (
                "isr_expands",
                "ISR growths of partitions this broker leads (IsrExpandsPerSec)",
                self.isr_changes.1,
            ),
            (
                "leader_elections",
                "Partitions this broker became the leader of, at a new leader epoch: elections, preferred-leader moves and reassignments (LeaderElectionRateAndTimeMs counts them at the controller)",
                self.leaderships,
            ),
        ] {
            let counter = ConstCounter::new(count);
            counter.encode(e.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        histogram(
            e,
            (
                "flush_round_duration",
                "Time each flush round spent making logs durable: one syncfs, or an fdatasync per log (LogFlushRateAndTimeMs)",
                Some(Unit::Seconds),
            ),
            &self.flush.round_seconds,
        )?;
        histogram(
            e,
            (
                "flush_round_logs",
                "Logs one flush round made durable together: the group commit's size",
                None,
            ),
            &self.flush.logs_per_round,
        )?;
        let known = self
            .dirs
            .iter()
            .filter_map(|(dir, space)| space.map(|s| (dir, s)));
        gauges(
            e,
            (
                "log_dir_free",
                "Free bytes of each log dir's file system",
                Some(Unit::Bytes),
            ),
            known.clone().map(|(dir, (_, free))| {
                (
                    [("dir", dir.as_str())],
                    i64::try_from(free).unwrap_or(i64::MAX),
                )
            }),
        )?;
        gauges(
            e,
            (
                "log_dir_size",
                "Size of each log dir's file system",
                Some(Unit::Bytes),
            ),
            known.map(|(dir, (total, _))| {
                (
                    [("dir", dir.as_str())],
                    i64::try_from(total).unwrap_or(i64::MAX),
                )
            }),
        )?;
        Ok(())
    }
}
