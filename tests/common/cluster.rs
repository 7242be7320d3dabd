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
/// Ports are handed out in turn within this test binary, so two tests
/// starting at once never pick the same one before either binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = std::process::id() as usize * 97;
    for _ in 0..10_000 {
        let port = 10_000 + ((base + NEXT.fetch_add(1, Ordering::Relaxed)) % 10_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 10000-19999");
}

/// Where a broker runs: the address it listens on, and the command it
/// runs under (empty: directly).
#[derive(Clone)]
pub struct Host {
    pub address: String,
    pub wrapper: Vec<String>,
}

impl Host {
    /// `n` brokers run directly on 127.0.0.1.
    pub fn loopback(n: usize) -> Vec<Host> {
        (0..n)
            .map(|_| Host {
                address: "127.0.0.1".to_string(),
                wrapper: Vec::new(),
            })
            .collect()
    }
}

/// Brokers 1..=n; `brokers[i]` is node i + 1.
pub struct Cluster {
    pub brokers: Vec<BrokerProcess>,
    pub bootstrap: String,
    /// Each broker's HTTP admin listener (`/metrics`), by node id - 1.
    pub http: Vec<String>,
    _temp: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` brokers on 127.0.0.1 and waits until each has registered.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        Cluster::start_on(&Host::loopback(n), n, extra)
    }

    /// Starts broker i + 1 on `hosts[i]` (its address, and a command that
    /// runs it, e.g. in a network namespace); brokers 1..=`controllers` are
    /// the controllers too, the others broker-only nodes.
    pub fn start_on(hosts: &[Host], controllers: usize, extra: &[&str]) -> Cluster {
        let n = hosts.len();
        let temp = tempfile::tempdir().unwrap();
        let mut voters = Vec::new();
        let mut listens = Vec::new();
        let mut http = Vec::new();
        for (id, host) in (1..=n).zip(hosts) {
            if id <= controllers {
                voters.push(format!("{id}@{}:{}", host.address, free_port()));
            }
            listens.push(format!("{}:{}", host.address, free_port()));
            http.push(format!("{}:{}", host.address, free_port()));
        }
        let quorum = voters.join(",");
        // Each waits for a quorum before it listens: start them together.
        let brokers: Vec<BrokerProcess> = std::thread::scope(|scope| {
            let starting: Vec<_> = (1..=n)
                .map(|id| {
                    let (quorum, listen, host) = (&quorum, &listens[id - 1], &hosts[id - 1]);
                    let http = &http[id - 1];
                    let data = temp.path().join(format!("node-{id}"));
                    scope.spawn(move || {
                        let node_id = id.to_string();
                        let mut args = vec!["--node-id", &node_id, "--controller-quorum", quorum];
                        args.extend_from_slice(&["--http", http]);
                        args.extend_from_slice(TEST_SETTINGS);
                        args.extend_from_slice(extra);
                        let wrapper: Vec<&str> = host.wrapper.iter().map(String::as_str).collect();
                        BrokerProcess::start_wrapped(&wrapper, &data, &args, listen)
                    })
                })
                .collect();
            starting.into_iter().map(|s| s.join().unwrap()).collect()
        });
        let bootstrap = listens.join(",");
        let cluster = Cluster {
            brokers,
            bootstrap,
            http,
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

    /// The leader and ISR of `topic`'s partition once every running
    /// broker reports the same (a restarted or cut-off one may lag).
    pub fn partition_state(&self, topic: &str, partition: i32) -> (i32, Vec<i32>) {
        let mut state = None;
        wait_until(
            Duration::from_secs(60),
            "the brokers to agree on the partition",
            || {
                let views: Vec<Option<(i32, Vec<i32>)>> = self
                    .brokers
                    .iter()
                    .filter(|b| b.is_running())
                    .map(|b| partition_view(&b.bootstrap, topic, partition))
                    .collect();
                state = views.first().cloned().flatten();
                state.is_some() && views.iter().all(|v| *v == state)
            },
        );
        state.unwrap()
    }

    /// The leader and ISR as `broker` (host:port) reports them.
    pub fn partition_state_at(&self, broker: &str, topic: &str, partition: i32) -> (i32, Vec<i32>) {
        let mut state = None;
        wait_until(Duration::from_secs(60), "the partition's metadata", || {
            state = partition_view(broker, topic, partition);
            state.is_some()
        });
        state.unwrap()
    }
}

/// What `broker` (a bootstrap list) says of the partition: its leader and
/// ISR; `None` without a leader or an answer.
pub fn partition_view(broker: &str, topic: &str, partition: i32) -> Option<(i32, Vec<i32>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("broker.address.family", "v4")
        .set("log_level", "0")
        .create()
        .ok()?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let found = metadata
        .topics()
        .first()?
        .partitions()
        .get(usize::try_from(partition).ok()?)?;
    if found.leader() < 0 {
        return None;
    }
    let mut isr = found.isr().to_vec();
    isr.sort_unstable();
    Some((found.leader(), isr))
}

/// Polls `condition` every 50 ms until it holds, failing after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A network namespace joined to this one by a veth pair, for a broker
/// that the test can cut off from the others: `outside` is this side's
/// address, `inside` the namespace's. Removed on drop.
pub struct Namespace {
    pub name: String,
    pub outside: String,
    pub inside: String,
}

impl Namespace {
    /// Needs root (CAP_NET_ADMIN) and iproute2, which the CI machine has.
    pub fn create() -> Namespace {
        let id = std::process::id() % 250;
        let name = format!("rill-test-{}", std::process::id());
        let (outer, inner) = (format!("rill{id}o"), format!("rill{id}i"));
        let outside = format!("10.213.{id}.1");
        let inside = format!("10.213.{id}.2");
        ip(&["netns", "add", &name]);
        let namespace = Namespace {
            name: name.clone(),
            outside: outside.clone(),
            inside: inside.clone(),
        };
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ]);
        ip(&["link", "set", &inner, "netns", &name]);
        ip(&["addr", "add", &format!("{outside}/24"), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        let address = format!("{inside}/24");
        for args in [
            ["addr", "add", address.as_str(), "dev", inner.as_str()].as_slice(),
            &["link", "set", &inner, "up"],
            &["link", "set", "lo", "up"],
        ] {
            let mut inside_ns = vec!["netns", "exec", &name, ip_binary()];
            inside_ns.extend_from_slice(args);
            ip(&inside_ns);
        }
        namespace
    }

    /// What runs a command inside.
    pub fn wrapper(&self) -> Vec<String> {
        [ip_binary(), "netns", "exec", &self.name]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Drops every packet from inside to outside: connections in both
    /// directions stall, as across a cut link.
    pub fn cut(&self) {
        let route = format!("{}/32", self.outside);
        ip(&[
            "netns",
            "exec",
            &self.name,
            ip_binary(),
            "route",
            "add",
            "blackhole",
            &route,
        ]);
    }

    pub fn heal(&self) {
        let route = format!("{}/32", self.outside);
        ip(&[
            "netns",
            "exec",
            &self.name,
            ip_binary(),
            "route",
            "del",
            "blackhole",
            &route,
        ]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth pair, and
        // with it the other end.
        let _ = std::process::Command::new(ip_binary())
            .args(["netns", "del", &self.name])
            .status(); // Best effort: nothing to do if it is gone.
    }
}

/// iproute2's `ip`, which a non-login PATH may not reach (/usr/sbin).
pub fn ip_binary() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .unwrap_or("ip")
}

fn ip(args: &[&str]) {
    let output = std::process::Command::new(ip_binary())
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
