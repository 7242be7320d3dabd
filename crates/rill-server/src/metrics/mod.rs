//! The broker's metrics, for the HTTP listener's `/metrics`: series the
//! parts that count keep up to date (requests, bytes in and out,
//! connections), and state read at each scrape (partitions and log dirs:
//! `broker_state.rs`; the process: `process.rs`). The `prometheus-client`
//! crate keeps and encodes them. docs/metrics.md lists every series with
//! the Kafka JMX metric it corresponds to.
//!
//! Thread-safe: connections and handlers record from any task; a scrape
//! reads while they do.

mod broker_state;
mod exposition;
mod groups;
mod process;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use parking_lot::RwLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

pub(crate) use exposition::Format;
pub(crate) use groups::group_lags;

use crate::apis::ErrorCounts;
use crate::broker::Broker;
use broker_state::BrokerState;
use groups::GroupsState;

/// A request's API (Kafka's name) and version. Static and copied, so a
/// request's count and latency take no allocation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    api: &'static str,
    version: i16,
}

/// A request's API.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: &'static str,
}

/// A request's API and an error code in its response, by Kafka's names.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    api: &'static str,
    error: String,
}

/// A topic.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

/// A listener, by its name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

/// Request latencies from 0.1 ms to ~6.5 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

/// The series kept live; see the module documentation.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_errors: Family<ErrorLabels, Counter>,
    request_seconds: Family<ApiLabels, Histogram, fn() -> Histogram>,
    bytes_in: Family<TopicLabels, Counter>,
    messages_in: Family<TopicLabels, Counter>,
    bytes_out: Family<TopicLabels, Counter>,
    connections: Family<ListenerLabels, Gauge>,
    connections_accepted: Family<ListenerLabels, Counter>,
    response_send_seconds: Family<ApiLabels, Histogram, fn() -> Histogram>,
    throttled: Family<ApiLabels, Counter>,
    throttle_seconds: Family<ApiLabels, Counter<f64, AtomicU64>>,
    /// The topics with series, so that a deleted topic's are dropped.
    topics: RwLock<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rill");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Kafka requests answered, by API and version (RequestsPerSec)",
            requests.clone(),
        );
        let request_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "request_errors",
            "Error codes in responses, other than NONE, by API and Kafka's error name (ErrorsPerSec)",
            request_errors.clone(),
        );
        let request_seconds =
            Family::<ApiLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register_with_unit(
            "request_duration",
            "Time from reading a request to its response being ready, by API (TotalTimeMs)",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let bytes_in = Family::<TopicLabels, Counter>::default();
        registry.register_with_unit(
            "topic_received",
            "Record batch bytes appended by produce requests, by topic (BytesInPerSec)",
            Unit::Bytes,
            bytes_in.clone(),
        );
        let messages_in = Family::<TopicLabels, Counter>::default();
        registry.register(
            "topic_received_messages",
            "Records appended by produce requests, by topic (MessagesInPerSec)",
            messages_in.clone(),
        );
        let bytes_out = Family::<TopicLabels, Counter>::default();
        registry.register_with_unit(
            "topic_sent",
            "Record bytes returned by fetch requests to consumers and followers, by topic (BytesOutPerSec)",
            Unit::Bytes,
            bytes_out.clone(),
        );
        let connections = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "connections",
            "Open client connections, by listener (connection-count)",
            connections.clone(),
        );
        let connections_accepted = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "connections_accepted",
            "Connections accepted, by listener (connection-creation-total)",
            connections_accepted.clone(),
        );
        let response_send_seconds =
            Family::<ApiLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register_with_unit(
            "response_send_duration",
            "Time writing a response to the client's socket took, by API; a client reading slowly makes it long (ResponseSendTimeMs)",
            Unit::Seconds,
            response_send_seconds.clone(),
        );
        let throttled = Family::<ApiLabels, Counter>::default();
        registry.register(
            "throttled_responses",
            "Responses that carried a throttle time because a client quota was exceeded, by API (throttle-time > 0)",
            throttled.clone(),
        );
        let throttle_seconds = Family::<ApiLabels, Counter<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "throttle",
            "Throttle time given to clients over their quotas, by API; their connections are held that long (throttle-time)",
            Unit::Seconds,
            throttle_seconds.clone(),
        );
        Metrics {
            registry,
            response_send_seconds,
            throttled,
            throttle_seconds,
            requests,
            request_errors,
            request_seconds,
            bytes_in,
            messages_in,
            bytes_out,
            connections,
            connections_accepted,
            topics: RwLock::new(HashSet::new()),
        }
    }

    /// Notes that `topic` has series.
    fn seen(&self, topic: &str) {
        if !self.topics.read().contains(topic) {
            self.topics.write().insert(topic.to_string());
        }
    }

    /// Drops the series of topics the metadata no longer has.
    fn forget_deleted_topics(&self, broker: &Broker) {
        let metadata = broker.node().metadata();
        let mut topics = self.topics.write();
        topics.retain(|topic| {
            if metadata.topics.contains_key(topic) {
                return true;
            }
            let labels = TopicLabels {
                topic: topic.clone(),
            };
            self.bytes_in.remove(&labels);
            self.messages_in.remove(&labels);
            self.bytes_out.remove(&labels);
            false
        });
    }

    /// A request of `api` (Kafka's name) at `version` was answered,
    /// `taken` after it was read.
    pub(crate) fn request_answered(&self, api: &'static str, version: i16, taken: Duration) {
        self.requests
            .get_or_create(&RequestLabels { api, version })
            .inc();
        self.request_seconds
            .get_or_create(&ApiLabels { api })
            .observe(taken.as_secs_f64());
    }

    /// A response of `api` carries `errors`.
    pub(crate) fn request_errors(&self, api: &'static str, errors: &ErrorCounts) {
        for (code, count) in errors.iter() {
            let error = crate::error_code::kafka_name(code);
            self.request_errors
                .get_or_create(&ErrorLabels { api, error })
                .inc_by(u64::from(count));
        }
    }

    /// Writing responses of `apis` to a socket took `taken`.
    pub(crate) fn responses_sent(&self, apis: &[&'static str], taken: Duration) {
        for &api in apis {
            self.response_send_seconds
                .get_or_create(&ApiLabels { api })
                .observe(taken.as_secs_f64());
        }
    }

    /// A response of `api` carries a throttle of `throttle_ms`.
    pub(crate) fn throttled(&self, api: &'static str, throttle_ms: u64) {
        if throttle_ms == 0 {
            return;
        }
        let labels = ApiLabels { api };
        self.throttled.get_or_create(&labels).inc();
        self.throttle_seconds
            .get_or_create(&labels)
            .inc_by(throttle_ms as f64 / 1000.0);
    }

    /// A produce request appended `records` records in `bytes` bytes of
    /// batches to `topic`.
    pub(crate) fn produced(&self, topic: &str, bytes: u64, records: u64) {
        let labels = TopicLabels {
            topic: topic.to_string(),
        };
        self.seen(topic);
        self.bytes_in.get_or_create(&labels).inc_by(bytes);
        self.messages_in.get_or_create(&labels).inc_by(records);
    }

    /// A fetch response carries `bytes` bytes of `topic`'s records.
    pub(crate) fn fetched(&self, topic: &str, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.seen(topic);
        self.bytes_out
            .get_or_create(&TopicLabels {
                topic: topic.to_string(),
            })
            .inc_by(bytes);
    }

    /// Each topic's totals so far: bytes in, messages in, bytes out.
    pub(crate) fn topic_totals(&self) -> HashMap<String, [u64; 3]> {
        let topics = self.topics.read();
        topics
            .iter()
            .map(|topic| {
                let labels = TopicLabels {
                    topic: topic.clone(),
                };
                let totals = [
                    self.bytes_in.get_or_create(&labels).get(),
                    self.messages_in.get_or_create(&labels).get(),
                    self.bytes_out.get_or_create(&labels).get(),
                ];
                (topic.clone(), totals)
            })
            .collect()
    }

    /// A connection on `listener` opened; the guard counts it closed when
    /// dropped.
    pub(crate) fn connection_opened(&self, listener: &str) -> ConnectionGuard {
        let labels = ListenerLabels {
            listener: listener.to_string(),
        };
        self.connections_accepted.get_or_create(&labels).inc();
        self.connections.get_or_create(&labels).inc();
        ConnectionGuard {
            gauge: self.connections.get_or_create(&labels).clone(),
        }
    }

    /// Everything in `format`: the live series, then the broker's state,
    /// its groups and the process as of now. Per-partition series only
    /// while there are at most `series_max` of a kind. Blocking (reads
    /// /proc and the log dirs' file systems).
    pub(crate) fn scrape(&self, broker: &Broker, series_max: usize, format: Format) -> String {
        self.forget_deleted_topics(broker);
        exposition::encode(
            &self.registry,
            vec![
                Box::new(BrokerState::of(broker, series_max)),
                Box::new(GroupsState::of(broker, series_max)),
            ],
            format,
        )
    }
}

/// What a scrape gets before the broker has started: the process only.
pub(crate) fn scrape_starting(format: Format) -> String {
    exposition::encode(&Registry::default(), Vec::new(), format)
}

/// Counts an open connection until dropped.
#[derive(Debug)]
pub(crate) struct ConnectionGuard {
    gauge: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
