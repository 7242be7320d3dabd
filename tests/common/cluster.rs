//! A cluster of `rill broker` processes on loopback: every broker runs its
//! controller too (combined mode), with timeouts turned down so that
//! failover happens in about a second.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::BrokerProcess;

/// Timeouts for tests: a broker silent for 1 s is fenced, a follower
/// behind for 2 s leaves the ISR.
pub const TEST_SETTINGS: &[&str] = &[
    "--set",
    "broker.session.timeout.ms=1000",
    "--set",
    "broker.heartbeat.interval.ms=100",
    "--set",
    "replica.lag.time.max.ms=2000",
    "--set",
    "replica.fetch.backoff.ms=50",
    "--set",
    "controller.quorum.election.timeout.ms=300",
];

/// A loopback port nothing listens on now, below the kernel's ephemeral
/// range (32768 and up) so that no outgoing connection takes it before
/// its broker binds it; 10000-19999, apart from rill-cluster's tests.
pub fn free_port() -> u16 {
    let seed = std::process::id() as usize * 7919
        + Instant::now().elapsed().subsec_nanos() as usize
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as usize);
    for step in 0..10_000 {
        let port = 10_000 + ((seed + step * 31) % 10_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 10000-19999");
}

/// Brokers 1..=n; `brokers[i]` is node i + 1.
pub struct Cluster {
    pub brokers: Vec<BrokerProcess>,
    pub bootstrap: String,
    _temp: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` brokers and waits until each has registered.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        let temp = tempfile::tempdir().unwrap();
        let mut voters = Vec::new();
        let mut listens = Vec::new();
        for id in 1..=n {
            voters.push(format!("{id}@127.0.0.1:{}", free_port()));
            listens.push(format!("127.0.0.1:{}", free_port()));
        }
        let quorum = voters.join(",");
        // Each waits for a quorum before it listens: start them together.
        let brokers: Vec<BrokerProcess> = std::thread::scope(|scope| {
            let starting: Vec<_> = (1..=n)
                .map(|id| {
                    let (quorum, listen) = (&quorum, &listens[id - 1]);
                    let data = temp.path().join(format!("node-{id}"));
                    scope.spawn(move || {
                        let node_id = id.to_string();
                        let mut args = vec!["--node-id", &node_id, "--controller-quorum", quorum];
                        args.extend_from_slice(TEST_SETTINGS);
                        args.extend_from_slice(extra);
                        BrokerProcess::start_on(&data, &args, listen)
                    })
                })
                .collect();
            starting.into_iter().map(|s| s.join().unwrap()).collect()
        });
        let bootstrap = listens.join(",");
        let cluster = Cluster {
            brokers,
            bootstrap,
            _temp: temp,
        };
        cluster.wait_for_brokers(n);
        cluster
    }

    pub fn node(&mut self, id: i32) -> &mut BrokerProcess {
        &mut self.brokers[usize::try_from(id - 1).unwrap()]
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("broker.address.family", "v4")
            .set("topic.metadata.refresh.interval.ms", "500")
            .set("log_level", "3");
        config
    }

    /// Waits until the metadata lists `n` live brokers.
    pub fn wait_for_brokers(&self, n: usize) {
        wait_until(Duration::from_secs(60), "every broker registered", || {
            let consumer: BaseConsumer = self.client_config().create().unwrap();
            consumer
                .fetch_metadata(None, Duration::from_secs(5))
                .is_ok_and(|m| m.brokers().len() == n)
        });
    }

    /// The leader and ISR of `topic`'s partition, from the metadata of a
    /// broker that knows them (a restarted one may not yet).
    pub fn partition_state(&self, topic: &str, partition: i32) -> (i32, Vec<i32>) {
        let mut state = None;
        wait_until(Duration::from_secs(30), "the partition's metadata", || {
            let consumer: BaseConsumer = self.client_config().create().unwrap();
            let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) else {
                return false;
            };
            let found = metadata.topics().first().and_then(|t| {
                t.partitions()
                    .get(usize::try_from(partition).unwrap())
                    .filter(|p| p.leader() >= 0)
                    .map(|p| {
                        let mut isr = p.isr().to_vec();
                        isr.sort_unstable();
                        (p.leader(), isr)
                    })
            });
            state = found;
            state.is_some()
        });
        state.unwrap()
    }
}

/// Polls `condition` every 50 ms until it holds, failing after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
