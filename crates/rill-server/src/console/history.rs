//! The last hour of a few series, kept in memory so that the console's
//! charts work without a Prometheus server: this broker's traffic (bytes
//! in and out, messages in, per second) and the lag of each group it
//! coordinates. Bounded: at most [`POINTS_MAX`] samples a series and
//! [`GROUPS_MAX`] groups.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

use crate::broker::Broker;

/// The most samples kept of a series: an hour at one a second.
const POINTS_MAX: usize = 3600;
/// The most groups whose lag is kept.
const GROUPS_MAX: usize = 1000;
/// How far back the series go.
const SPAN: Duration = Duration::from_secs(3600);

/// One sample of this broker's traffic, per second over the interval
/// ending at `t` (ms since the epoch).
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Traffic {
    pub t: i64,
    pub bytes_in: f64,
    pub bytes_out: f64,
    pub messages_in: f64,
}

/// One sample of a group's lag.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct LagPoint {
    pub t: i64,
    pub lag: i64,
}

/// A topic's traffic in the last interval, per second.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TopicRate {
    pub bytes_in: f64,
    pub bytes_out: f64,
}

/// See the module doc.
#[derive(Debug)]
pub(crate) struct History {
    interval: Duration,
    points_max: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    traffic: VecDeque<Traffic>,
    lags: HashMap<String, VecDeque<LagPoint>>,
    topic_rates: HashMap<String, TopicRate>,
    /// The counters at the last sample: per topic (bytes in, messages in,
    /// bytes out), and when.
    last: Option<(i64, HashMap<String, [u64; 3]>)>,
}

impl History {
    pub(crate) fn new(interval: Duration) -> History {
        let interval = interval.max(Duration::from_millis(100));
        let points = SPAN.as_millis() / interval.as_millis().max(1);
        History {
            interval,
            points_max: usize::try_from(points)
                .unwrap_or(POINTS_MAX)
                .clamp(1, POINTS_MAX),
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn interval_ms(&self) -> u64 {
        u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn traffic(&self) -> Vec<Traffic> {
        self.state.lock().traffic.iter().copied().collect()
    }

    pub(crate) fn lag_of(&self, group: &str) -> Vec<LagPoint> {
        self.state
            .lock()
            .lags
            .get(group)
            .map(|points| points.iter().copied().collect())
            .unwrap_or_default()
    }

    pub(crate) fn topic_rate(&self, topic: &str) -> TopicRate {
        self.state
            .lock()
            .topic_rates
            .get(topic)
            .copied()
            .unwrap_or_default()
    }

    /// Takes one sample: `counters` are each topic's totals (bytes in,
    /// messages in, bytes out) now, `lags` each coordinated group's lag.
    fn record(
        &self,
        now_ms: i64,
        counters: HashMap<String, [u64; 3]>,
        lags: BTreeMap<String, i64>,
    ) {
        let mut state = self.state.lock();
        if let Some((then, before)) = state.last.take() {
            let seconds = (now_ms - then).max(1) as f64 / 1000.0;
            let mut total = Traffic {
                t: now_ms,
                bytes_in: 0.0,
                bytes_out: 0.0,
                messages_in: 0.0,
            };
            let mut rates = HashMap::with_capacity(counters.len());
            for (topic, now) in &counters {
                let was = before.get(topic).copied().unwrap_or_default();
                let delta = |i: usize| now[i].saturating_sub(was[i]) as f64 / seconds;
                total.bytes_in += delta(0);
                total.messages_in += delta(1);
                total.bytes_out += delta(2);
                rates.insert(
                    topic.clone(),
                    TopicRate {
                        bytes_in: delta(0),
                        bytes_out: delta(2),
                    },
                );
            }
            state.topic_rates = rates;
            push(&mut state.traffic, total, self.points_max);
        }
        state.last = Some((now_ms, counters));
        state.lags.retain(|group, _| lags.contains_key(group));
        for (group, lag) in lags {
            if !state.lags.contains_key(&group) && state.lags.len() >= GROUPS_MAX {
                continue;
            }
            let points = state.lags.entry(group).or_default();
            push(points, LagPoint { t: now_ms, lag }, self.points_max);
        }
    }
}

fn push<T>(points: &mut VecDeque<T>, point: T, max: usize) {
    if points.len() >= max {
        points.pop_front();
    }
    points.push_back(point);
}

/// Samples the broker `started` holds every interval, for as long as the
/// HTTP listener runs.
pub(crate) async fn sample(
    history: Arc<History>,
    mut started: watch::Receiver<Option<Arc<Broker>>>,
) {
    let broker = loop {
        if let Some(broker) = started.borrow().clone() {
            break broker;
        }
        if started.changed().await.is_err() {
            return;
        }
    };
    let mut ticks = tokio::time::interval(history.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let counters = broker.metrics().topic_totals();
        let lags = crate::metrics::group_lags(&broker).into_iter().fold(
            BTreeMap::new(),
            |mut sums, (group, _, _, lag)| {
                *sums.entry(group).or_default() += lag;
                sums
            },
        );
        history.record(crate::apis::now_ms(), counters, lags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_between_samples_and_the_series_are_bounded() {
        let history = History::new(Duration::from_secs(1800));
        assert_eq!(history.points_max, 2);
        let totals = |bytes: u64| HashMap::from([("t".to_string(), [bytes, bytes / 10, 0])]);
        let lag = |lag: i64| BTreeMap::from([("g".to_string(), lag)]);
        history.record(0, totals(0), lag(5));
        assert!(history.traffic().is_empty(), "a rate needs two samples");
        history.record(2000, totals(4000), lag(7));
        history.record(4000, totals(4000), BTreeMap::new());
        let traffic = history.traffic();
        assert_eq!(traffic.len(), 2);
        assert_eq!(traffic[0].bytes_in, 2000.0);
        assert_eq!(traffic[0].messages_in, 200.0);
        assert_eq!(traffic[1].bytes_in, 0.0);
        assert!(history.lag_of("g").is_empty(), "a group gone is forgotten");
        history.record(6000, totals(6000), lag(1));
        history.record(8000, totals(8000), lag(2));
        history.record(9000, totals(9000), lag(3));
        let lags: Vec<i64> = history.lag_of("g").iter().map(|p| p.lag).collect();
        assert_eq!(lags, vec![2, 3]);
        assert_eq!(history.topic_rate("t").bytes_in, 1000.0);
    }
}
