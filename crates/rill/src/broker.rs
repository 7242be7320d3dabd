//! `rill broker`: runs a broker until SIGINT or SIGTERM, then shuts down
//! cleanly (in-flight requests answered, logs flushed, clean-shutdown
//! marker written) and exits 0.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rill_server::{Broker, BrokerConfig, Properties, Server};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rill broker\n  \
    rill broker --data ./data --listen 127.0.0.1:19092\n  \
    rill broker --config broker.toml --set log.retention.ms=3600000 --set log.flush.policy=none\n  \
    rill broker --node-id 1 --controller-quorum 1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293 \\\n      \
    --listen 127.0.0.1:9092 --data ./node-1\n\n\
    The config file is TOML whose keys are Kafka's property names, e.g.\n  \
    log.dirs = \"/var/lib/rill\"\n  \
    num.partitions = 3\n  \
    log.retention.ms = 86400000")]
pub(crate) struct BrokerArgs {
    /// Where partitions live (log.dirs) [default: ./rill-data].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Address to listen on (listeners) [default: 127.0.0.1:9092].
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Address clients are told to connect to (advertised.listeners)
    /// [default: the listen address].
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// This broker's id in the cluster (node.id) [default: 1].
    #[arg(long, value_name = "ID")]
    node_id: Option<i32>,
    /// The metadata quorum's controllers (controller.quorum.voters), as
    /// ID@HOST:PORT,...; the broker whose --node-id is among them runs that
    /// controller too. Without it the broker is a one-node cluster.
    #[arg(long, value_name = "ID@HOST:PORT,...")]
    controller_quorum: Option<String>,
    /// TOML file of broker properties by Kafka name.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set any property, overriding the config file (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl BrokerArgs {
    /// The properties: file, then --set, then the flags.
    fn properties(&self) -> anyhow::Result<Properties> {
        let mut properties = match &self.config {
            Some(path) => BrokerConfig::read_toml(path)?,
            None => Properties::new(),
        };
        for assignment in &self.set {
            let (key, value) = assignment
                .split_once('=')
                .with_context(|| format!("--set {assignment:?}: expected KEY=VALUE"))?;
            properties.insert(key.trim().to_string(), value.trim().to_string());
        }
        if let Some(dir) = &self.data {
            properties.insert("log.dirs".into(), dir.display().to_string());
        }
        if let Some(listen) = &self.listen {
            properties.insert("listeners".into(), listen.clone());
        }
        if let Some(id) = self.node_id {
            properties.insert("node.id".into(), id.to_string());
        }
        if let Some(voters) = &self.controller_quorum {
            properties.insert("controller.quorum.voters".into(), voters.clone());
        }
        if let Some(advertise) = &self.advertise {
            properties.insert("advertised.listeners".into(), advertise.clone());
        }
        Ok(properties)
    }
}

pub(crate) fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let mut config = BrokerConfig::from_properties(args.properties()?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rill-network")
        .build()
        .context("cannot start the network runtime")?;
    let server = runtime
        .block_on(Server::bind(&config.listener))
        .with_context(|| format!("cannot listen on {}", config.listener))?;
    let bound = server.local_addr();
    if config.advertised.port == 0 {
        config.advertised.port = bound.port();
    }
    let data: Vec<String> = config
        .log_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let advertised = config.advertised.to_string();
    let broker = Broker::open(config).context("cannot open the broker's data")?;
    runtime
        .block_on(broker.join_cluster())
        .context("cannot join the cluster")?;
    tracing::info!(
        "rill broker {}: data in {}, listening on {bound} (advertised as {advertised})",
        env!("CARGO_PKG_VERSION"),
        data.join(",")
    );
    runtime.block_on(server.run(broker, stop_signal()))?;
    Ok(())
}

/// Resolves at the first SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the broker with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
}
