//! The consumer groups this broker coordinates, as one scrape sees them:
//! how many are in each state, and each group's lag — the high watermark
//! less its committed offset, computed in the broker as Redpanda and
//! kafka-lag-exporter do — for the partitions this broker holds (only
//! they have a high watermark here).

use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use rill_partition::TopicPartition;

use super::broker_state::gauges;
use crate::broker::Broker;

/// A group's lag on one partition: (group, topic, partition, lag).
type Lag = (String, String, i32, i64);

#[derive(Debug, Default)]
pub(crate) struct GroupsState {
    /// Groups by state (Kafka's names: Stable, Empty, ...).
    states: BTreeMap<&'static str, i64>,
    lags: Vec<Lag>,
    /// Whether the lags are also shown partition by partition.
    per_partition: bool,
    /// Rebalances the coordinator completed.
    rebalances: u64,
}

impl GroupsState {
    /// The groups of `broker` now; per-partition lags only while there
    /// are at most `series_max` of them.
    pub(crate) fn of(broker: &Broker, series_max: usize) -> GroupsState {
        let Some(groups) = broker.groups().current() else {
            return GroupsState::default();
        };
        let (listings, rebalances) = groups.with_coordinator(|coordinator, _, _| {
            let listings = coordinator.list_groups(&[]).unwrap_or_default();
            (listings, coordinator.completed_rebalances())
        });
        let mut states = BTreeMap::new();
        for listing in &listings {
            *states.entry(listing.state.as_str()).or_default() += 1;
        }
        let lags = group_lags(broker);
        GroupsState {
            rebalances,
            states,
            per_partition: lags.len() <= series_max,
            lags,
        }
    }
}

/// Each group's lag on each partition this broker holds: its high
/// watermark less the group's committed offset (at least 0).
pub(crate) fn group_lags(broker: &Broker) -> Vec<Lag> {
    let Some(groups) = broker.groups().current() else {
        return Vec::new();
    };
    let committed: Vec<(String, Vec<_>)> = groups.with_coordinator(|_, offsets, _| {
        offsets
            .groups()
            .map(|group| (group.to_string(), offsets.fetch(group, None)))
            .collect()
    });
    let mut lags = Vec::new();
    for (group, offsets) in committed {
        for fetched in offsets.into_iter().filter(|f| f.offset >= 0) {
            let tp = TopicPartition::new(fetched.topic.clone(), fetched.partition);
            let Some(partition) = broker.partition(&tp) else {
                continue;
            };
            let lag = (partition.high_watermark().value() - fetched.offset).max(0);
            lags.push((group.clone(), fetched.topic, fetched.partition, lag));
        }
    }
    lags
}

impl Collector for GroupsState {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        gauges(
            e,
            (
                "groups",
                "Consumer groups this broker coordinates, by state (NumGroups<State>)",
                None,
            ),
            self.states
                .iter()
                .map(|(state, n)| ([("state", *state)], *n)),
        )?;
        let rebalances = ConstCounter::new(self.rebalances);
        rebalances.encode(e.encode_descriptor(
            "group_rebalances",
            "Rebalances the groups this broker coordinates completed: each a new generation with members (group-completed-rebalance-count)",
            None,
            rebalances.metric_type(),
        )?)?;
        let mut by_group: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for (group, _, _, lag) in &self.lags {
            let (sum, max) = by_group.entry(group.as_str()).or_default();
            *sum += lag;
            *max = (*max).max(*lag);
        }
        gauges(
            e,
            (
                "group_lag_sum",
                "Messages each group has yet to read, summed over the partitions this broker holds",
                None,
            ),
            by_group.iter().map(|(g, (sum, _))| ([("group", *g)], *sum)),
        )?;
        gauges(
            e,
            (
                "group_lag_max",
                "The largest lag of each group over the partitions this broker holds (records-lag-max)",
                None,
            ),
            by_group.iter().map(|(g, (_, max))| ([("group", *g)], *max)),
        )?;
        if self.per_partition {
            gauges(
                e,
                (
                    "group_lag",
                    "High watermark less the group's committed offset, per partition (records-lag)",
                    None,
                ),
                self.lags.iter().map(|(group, topic, partition, lag)| {
                    (
                        [
                            ("group", group.clone()),
                            ("topic", topic.clone()),
                            ("partition", partition.to_string()),
                        ],
                        *lag,
                    )
                }),
            )?;
        }
        Ok(())
    }
}
