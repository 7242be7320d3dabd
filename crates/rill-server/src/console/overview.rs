//! `GET /api/overview`: the brokers, the partitions' health, and this
//! broker's traffic over the last hour.

use axum::Json;
use axum::extract::State;
use rill_cluster::{ClusterMetadata, Topic};
use serde::Serialize;

use super::Console;
use super::history::Traffic;
use super::reply::Reply;
use crate::broker::Broker;

#[derive(Serialize)]
pub(crate) struct Overview {
    cluster_id: String,
    node_id: i32,
    controller: Option<i32>,
    brokers: Vec<BrokerView>,
    topics: usize,
    partitions: Health,
    history: TrafficHistory,
}

#[derive(Serialize)]
struct BrokerView {
    id: i32,
    host: String,
    port: u16,
    fenced: bool,
    controller: bool,
    this: bool,
}

#[derive(Default, Serialize)]
struct Health {
    total: usize,
    offline: usize,
    under_replicated: usize,
    under_min_isr: usize,
}

#[derive(Serialize)]
struct TrafficHistory {
    interval_ms: u64,
    points: Vec<Traffic>,
}

pub(crate) async fn overview(State(console): State<Console>) -> Reply<Overview> {
    let broker = console.broker()?;
    let metadata = broker.node().metadata();
    let controller = broker.node().controller_leader();
    let this = broker.config().node_id;
    let brokers = metadata
        .brokers
        .values()
        .map(|b| BrokerView {
            id: b.id.0,
            host: b.host.clone(),
            port: b.port,
            fenced: b.fenced,
            controller: controller == Some(b.id.0),
            this: b.id.0 == this,
        })
        .collect();
    let mut health = Health::default();
    for topic in metadata.topics.values() {
        let min_isr = min_insync_replicas(&broker, &metadata, topic);
        for state in &topic.partitions {
            health.total += 1;
            let leader_up = state
                .leader
                .and_then(|id| metadata.brokers.get(&id))
                .is_some_and(|b| !b.fenced);
            if !leader_up {
                health.offline += 1;
                continue;
            }
            if state.isr.len() < state.replicas.len() {
                health.under_replicated += 1;
            }
            if state.isr.len() < min_isr {
                health.under_min_isr += 1;
            }
        }
    }
    Ok(Json(Overview {
        cluster_id: metadata.cluster_id.clone(),
        node_id: this,
        controller,
        brokers,
        topics: metadata.topics.len(),
        partitions: health,
        history: TrafficHistory {
            interval_ms: console.history().interval_ms(),
            points: console.history().traffic(),
        },
    }))
}

/// The topic's min.insync.replicas: its own, else the cluster's, else the
/// broker's file, else Kafka's default of 1.
fn min_insync_replicas(broker: &Broker, metadata: &ClusterMetadata, topic: &Topic) -> usize {
    const NAME: &str = "min.insync.replicas";
    topic
        .configs
        .get(NAME)
        .or_else(|| metadata.broker_configs.get(NAME))
        .or_else(|| broker.config().properties.get(NAME))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1)
}
