//! `rill broker`: runs a broker until SIGINT or SIGTERM, then shuts down
//! cleanly (in-flight requests answered, logs flushed, clean-shutdown
//! marker written) and exits 0.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rill_server::{BrokerConfig, Properties, Server};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rill broker\n  \
    rill broker --data ./data --listen 127.0.0.1:19092\n  \
    rill broker --config broker.toml --set log.retention.ms=3600000 --set log.flush.policy=none\n  \
    rill broker --node-id 2 --join 127.0.0.1:9092 --listen 127.0.0.1:9192 --data ./node-2\n  \
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
    /// A fixed metadata quorum (controller.quorum.voters), as
    /// ID@HOST:PORT,... of controller ports; the broker whose --node-id is
    /// among them runs that controller too. Without it (or --join) the
    /// broker is a one-node cluster that others can join.
    #[arg(long, value_name = "ID@HOST:PORT,...", conflicts_with = "join")]
    controller_quorum: Option<String>,
    /// Join the cluster of the broker(s) at HOST:PORT,... (their Kafka
    /// listeners; controller.quorum.bootstrap.servers) as a voter of its
    /// metadata quorum. Needs a --node-id of its own.
    #[arg(long, value_name = "HOST:PORT,...")]
    join: Option<String>,
    /// The HTTP admin listener, serving /metrics, /health and /ready
    /// (rill.http.listener) [default: 127.0.0.1:9644]; "" for none.
    #[arg(long, value_name = "HOST:PORT")]
    http: Option<String>,
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
        if let Some(servers) = &self.join {
            properties.insert(
                "controller.quorum.bootstrap.servers".into(),
                servers.clone(),
            );
        }
        if let Some(http) = &self.http {
            properties.insert("rill.http.listener".into(), http.clone());
        }
        if let Some(advertise) = &self.advertise {
            properties.insert("advertised.listeners".into(), advertise.clone());
        }
        Ok(properties)
    }
}

pub(crate) fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let config = BrokerConfig::from_properties(args.properties()?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rill-network")
        .build()
        .context("cannot start the network runtime")?;
    let server = runtime.block_on(Server::bind(&config))?;
    runtime.block_on(server.run(config, stop_signal()))?;
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
