//! Client quotas enforced (KIP-13, KIP-124, KIP-219, KIP-599): what each
//! client used, measured per quota as Kafka's ClientQuotaManager does,
//! and how long it must wait when it used more than the quota that
//! applies to it (set through AlterClientQuotas, kept in the metadata).
//!
//! A throttled client gets its response at once, carrying
//! `throttle_time_ms`, and its connection reads nothing more until that
//! time has passed (Kafka mutes the channel) — so a client that ignores
//! the field is held back all the same, and one tenant cannot take the
//! broker from another.
//!
//! Who throttles what:
//! - produce bytes and request time: the connection, for each request it
//!   reads (`charge_request`), into `Request::throttle_ms`;
//! - fetch bytes: the fetch handler, once it knows the response's size
//!   (a throttled fetch is answered empty, as Kafka does);
//! - partition mutations: CreateTopics, CreatePartitions, DeleteTopics.
//!
//! Quotas are per broker, as in Kafka.

mod rate;
mod throttle_field;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rill_cluster::{ClientQuotas, ClusterMetadata, QuotaKey};

use crate::apis::Request;
use crate::broker::Broker;
use crate::session::Session;
use rate::Rate;
pub(crate) use throttle_field::set_throttle_time;

/// Sensors kept before idle ones are dropped (Kafka expires a client's
/// sensors after an hour without use; a bound keeps many short-lived
/// client ids from growing the map).
const SENSORS_MAX: usize = 10_000;

/// Whose use a sensor counts: the quota's key and the (user, client id)
/// Kafka tags it with — clients sharing a quota share its sensor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SensorKey {
    key: QuotaKey,
    user: String,
    client_id: String,
}

/// Every client's use, per quota (`quota.window.num` windows of
/// `quota.window.size.seconds`).
#[derive(Debug)]
pub(crate) struct Quotas {
    samples: usize,
    window_ms: u64,
    started: Instant,
    sensors: Mutex<HashMap<SensorKey, Rate>>,
}

/// A client to quotas: the user its principal names and the client id of
/// its request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client<'a> {
    pub user: &'a str,
    pub client_id: &'a str,
}

impl<'a> Client<'a> {
    pub(crate) fn new(session: &'a Session, client_id: &'a str) -> Client<'a> {
        // Kafka's quota user is the principal's name: alice of User:alice.
        let principal = session.principal.as_str();
        let user = principal
            .split_once(':')
            .map_or(principal, |(_, name)| name);
        Client { user, client_id }
    }
}

impl Quotas {
    pub(crate) fn new(samples: usize, window: Duration) -> Quotas {
        Quotas {
            samples,
            window_ms: window.as_millis().max(1) as u64,
            started: Instant::now(),
            sensors: Mutex::new(HashMap::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Runs `f` on the sensor of the quota `key` that applies to
    /// `client`, with its bound; `None` when no quota applies.
    fn with_sensor<T>(
        &self,
        quotas: &ClientQuotas,
        key: QuotaKey,
        client: Client<'_>,
        f: impl FnOnce(&mut Rate, f64, u64) -> T,
    ) -> Option<T> {
        if quotas.is_empty() {
            return None;
        }
        let applied = quotas.applying(key, client.user, client.client_id)?;
        let now = self.now_ms();
        let mut sensors = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        let sensor_key = SensorKey {
            key,
            user: applied.user,
            client_id: applied.client_id,
        };
        if !sensors.contains_key(&sensor_key) && sensors.len() >= SENSORS_MAX {
            // Sensors that measured nothing over their whole span.
            sensors.retain(|_, rate| now.saturating_sub(rate.last_ms()) < rate.span_ms());
            if sensors.len() >= SENSORS_MAX {
                // As many clients busy at once (or one inventing a client
                // id per request): memory stays bounded, and every client
                // starts measuring afresh.
                tracing::warn!(
                    sensors = sensors.len(),
                    "too many clients measured for quotas at once; forgetting their use"
                );
                sensors.clear();
            }
        }
        let rate = sensors
            .entry(sensor_key)
            .or_insert_with(|| Rate::new(self.samples, self.window_ms, now));
        Some(f(rate, applied.bound, now))
    }

    /// Records `value` against `client`'s `key` quota and returns how
    /// long the client must now wait (0 within its quota, or without one).
    pub(crate) fn record(
        &self,
        quotas: &ClientQuotas,
        key: QuotaKey,
        client: Client<'_>,
        value: f64,
    ) -> u64 {
        self.with_sensor(quotas, key, client, |rate, bound, now| {
            rate.record(value, now);
            rate.throttle_ms(bound, now)
        })
        .unwrap_or(0)
    }

    /// Records `value` without asking whether it fits (what a request
    /// already answered used).
    pub(crate) fn record_only(
        &self,
        quotas: &ClientQuotas,
        key: QuotaKey,
        client: Client<'_>,
        value: f64,
    ) {
        self.with_sensor(quotas, key, client, |rate, _, now| rate.record(value, now));
    }

    /// How long `client` must wait already, recording nothing: 0 unless
    /// it is over its `key` quota.
    pub(crate) fn throttle_ms(
        &self,
        quotas: &ClientQuotas,
        key: QuotaKey,
        client: Client<'_>,
    ) -> u64 {
        self.with_sensor(quotas, key, client, |rate, bound, now| {
            rate.throttle_ms(bound, now)
        })
        .unwrap_or(0)
    }

    /// The most `client` may use at once before it is throttled however
    /// quiet it was: its `key` quota over the windows' measured span
    /// (Kafka bounds a fetch's bytes by it). `None` without a quota.
    pub(crate) fn max_in_window(
        &self,
        quotas: &ClientQuotas,
        key: QuotaKey,
        client: Client<'_>,
    ) -> Option<f64> {
        let applied = quotas.applying(key, client.user, client.client_id)?;
        Some(applied.bound * (self.samples as f64 - 1.0) * self.window_ms as f64 / 1000.0)
    }

    /// What the connection charges for a request it read, before it is
    /// handled: a produce request's bytes, and whether the client is over
    /// its request-time quota. The longer wait, in ms.
    pub(crate) fn charge_request(
        &self,
        quotas: &ClientQuotas,
        client: Client<'_>,
        produce_bytes: Option<usize>,
    ) -> u64 {
        if quotas.is_empty() {
            return 0;
        }
        let bytes = produce_bytes.map_or(0, |bytes| {
            self.record(quotas, QuotaKey::ProducerByteRate, client, bytes as f64)
        });
        // As Kafka's ClientRequestQuotaManager, a request-time throttle
        // is at most one window: one slow request does not hold a client
        // for minutes.
        let time = self.throttle_ms(quotas, QuotaKey::RequestPercentage, client);
        bytes.max(time.min(self.window_ms))
    }

    /// Records the time a request took to handle against `client`'s
    /// request quota: as Kafka, in percent of one thread over a second.
    pub(crate) fn charge_time(&self, quotas: &ClientQuotas, client: Client<'_>, spent: Duration) {
        if quotas.is_empty() {
            return;
        }
        let percent_seconds = spent.as_secs_f64() * 100.0;
        self.record_only(quotas, QuotaKey::RequestPercentage, client, percent_seconds);
    }
}

/// A request's partition mutations (CreateTopics, CreatePartitions,
/// DeleteTopics) against the client's controller_mutation_rate, as
/// KIP-599 has it: from the versions that know THROTTLING_QUOTA_EXCEEDED
/// (`strict`), a topic is refused with it while the client is over its
/// quota — the mutation that takes it over is let through whole; older
/// versions are let through and only throttled.
pub(crate) struct Mutations<'a> {
    quotas: &'a Quotas,
    metrics: &'a crate::metrics::Metrics,
    api: &'static str,
    metadata: Arc<ClusterMetadata>,
    session: &'a Session,
    client_id: String,
    strict: bool,
}

impl<'a> Mutations<'a> {
    pub(crate) fn new(
        broker: &'a Broker,
        request: &'a Request,
        strict_since: i16,
    ) -> Mutations<'a> {
        Mutations {
            quotas: broker.quotas(),
            metrics: broker.metrics(),
            api: request.api.name(),
            metadata: broker.node().metadata(),
            session: &request.session,
            client_id: request.client_id(),
            strict: request.version() >= strict_since,
        }
    }

    fn client(&self) -> Client<'_> {
        Client::new(self.session, &self.client_id)
    }

    /// `Err(throttle_ms)` when the next mutation must be refused with
    /// THROTTLING_QUOTA_EXCEEDED.
    pub(crate) fn admit(&self) -> Result<(), u64> {
        let key = QuotaKey::ControllerMutationRate;
        match self
            .quotas
            .throttle_ms(&self.metadata.client_quotas, key, self.client())
        {
            throttle_ms if self.strict && throttle_ms > 0 => Err(throttle_ms),
            _ => Ok(()),
        }
    }

    /// Counts `partitions` created or deleted.
    pub(crate) fn record(&self, partitions: usize) {
        let key = QuotaKey::ControllerMutationRate;
        let set = &self.metadata.client_quotas;
        self.quotas
            .record_only(set, key, self.client(), partitions as f64);
    }

    /// The response's throttle time; the connection is held for it.
    pub(crate) fn throttle_ms(&self) -> i32 {
        let key = QuotaKey::ControllerMutationRate;
        let set = &self.metadata.client_quotas;
        let throttle_ms = self.quotas.throttle_ms(set, key, self.client());
        self.session.throttle(throttle_ms);
        self.metrics.throttled(self.api, throttle_ms);
        i32::try_from(throttle_ms).unwrap_or(i32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_cluster::{QuotaAlteration, QuotaValue};

    fn quotas(parts: &[(&str, Option<&str>)], key: &str, value: f64) -> ClientQuotas {
        let mut quotas = ClientQuotas::default();
        let results = quotas.alter(&[QuotaAlteration {
            entity: parts
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                .collect(),
            ops: vec![(key.to_string(), Some(QuotaValue(value)))],
        }]);
        assert_eq!(results, vec![Ok(())]);
        quotas
    }

    #[test]
    fn a_user_quota_is_shared_by_the_users_clients_and_not_by_others() {
        let set = quotas(&[("user", Some("alice"))], "producer_byte_rate", 1000.0);
        let manager = Quotas::new(11, Duration::from_secs(1));
        let alice = |client_id| Client {
            user: "alice",
            client_id,
        };
        // 10 s of quota at once is within it; more is throttled,
        // whichever of alice's clients sends it.
        assert_eq!(
            manager.record(&set, QuotaKey::ProducerByteRate, alice("a"), 10_000.0),
            0
        );
        assert!(manager.record(&set, QuotaKey::ProducerByteRate, alice("b"), 5_000.0) > 0);
        // Bob has no quota; nor has alice for consuming.
        let bob = Client {
            user: "bob",
            client_id: "a",
        };
        assert_eq!(
            manager.record(&set, QuotaKey::ProducerByteRate, bob, 1e9),
            0
        );
        assert_eq!(
            manager.record(&set, QuotaKey::ConsumerByteRate, alice("a"), 1e9),
            0
        );
        assert_eq!(
            manager.max_in_window(&set, QuotaKey::ProducerByteRate, alice("a")),
            Some(10_000.0)
        );
    }

    #[test]
    fn time_spent_counts_against_the_request_percentage() {
        let set = quotas(&[("client-id", None)], "request_percentage", 10.0);
        let manager = Quotas::new(11, Duration::from_secs(1));
        let client = Client {
            user: "ANONYMOUS",
            client_id: "busy",
        };
        assert_eq!(manager.charge_request(&set, client, None), 0);
        // Two seconds of a thread is 20% over ten seconds: over 10%, by
        // ten seconds, held to one window.
        manager.charge_time(&set, client, Duration::from_secs(2));
        assert_eq!(manager.charge_request(&set, client, None), 1000);
    }
}
