//! `rill txn list|describe|abort`: the transactions the coordinators know
//! (ListTransactions, asked of every broker, since each lists those it
//! coordinates), one transactional id in detail (DescribeTransactions, at
//! its coordinator), and the abort of a transaction left open in a
//! partition (DescribeProducers, then an abort marker through
//! WriteTxnMarkers at the partition's leader), as `kafka-transactions`
//! does.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest,
    MetadataResponse, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::ClientArgs;

/// FindCoordinator's key type for a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;
use crate::connection::error_name;
use crate::table::write_table;

#[derive(Debug, Subcommand)]
pub(crate) enum TxnCommand {
    /// Every transactional id the coordinators know: producer id and state.
    List(ListArgs),
    /// One transactional id: state, producer id and epoch, timeout, start
    /// and the partitions of its open transaction.
    Describe(DescribeArgs),
    /// Abort the transaction left open in one partition since
    /// --start-offset (a hanging transaction, as kafka-transactions abort).
    Abort(AbortArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    rill txn list --state Ongoing --min-duration-ms 60000")]
pub(crate) struct ListArgs {
    /// Only transactions in this state (Empty, Ongoing, PrepareCommit,
    /// PrepareAbort, CompleteCommit, CompleteAbort, PrepareEpochFence,
    /// Dead); may be repeated.
    #[arg(long, value_name = "STATE")]
    state: Vec<String>,
    /// Only this producer id; may be repeated.
    #[arg(long, value_name = "ID")]
    producer_id: Vec<i64>,
    /// Only transactions open for at least this long (KIP-994).
    #[arg(long, value_name = "MS")]
    min_duration_ms: Option<i64>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// The transactional id.
    transactional_id: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Find the start offset with `rill txn list --state Ongoing` and \
    `rill txn describe`, or from DescribeProducers' current transaction start offset.\n\n\
    Example:\n  \
    rill txn abort --topic payments --partition 0 --start-offset 1042"
)]
pub(crate) struct AbortArgs {
    #[arg(long)]
    topic: String,
    #[arg(long)]
    partition: i32,
    /// The offset the open transaction began at in the partition.
    #[arg(long, value_name = "OFFSET")]
    start_offset: i64,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) fn run(command: TxnCommand) -> anyhow::Result<()> {
    match command {
        TxnCommand::List(args) => list(&args),
        TxnCommand::Describe(args) => describe(&args),
        TxnCommand::Abort(args) => abort(&args),
    }
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    let mut bootstrap = args.client.connect()?;
    let metadata = crate::cluster_status::metadata(&mut bootstrap)?;
    let mut rows = Vec::new();
    for broker in &metadata.brokers {
        let address = format!("{}:{}", broker.host, broker.port);
        let mut connection = args.client.connect_to(&address)?;
        let version = connection.version_for(ApiKey::ListTransactions, 1)?;
        let mut request = ListTransactionsRequest::default()
            .with_state_filters(
                args.state
                    .iter()
                    .map(|s| StrBytes::from_string(s.clone()))
                    .collect(),
            )
            .with_producer_id_filters(args.producer_id.iter().map(|&p| ProducerId(p)).collect());
        if let Some(duration) = args.min_duration_ms {
            if version < 1 {
                bail!("the broker at {address} cannot filter by duration (ListTransactions v1)");
            }
            request = request.with_duration_filter(duration);
        }
        let response = connection.call(version, &request)?;
        if response.error_code != 0 {
            bail!(
                "ListTransactions refused by {address}: {}",
                error_name(response.error_code)
            );
        }
        if let Some(unknown) = response.unknown_state_filters.first() {
            bail!("unknown transaction state {unknown:?}");
        }
        for state in response.transaction_states {
            rows.push(vec![
                state.transactional_id.to_string(),
                broker.node_id.0.to_string(),
                state.producer_id.0.to_string(),
                state.transaction_state.to_string(),
            ]);
        }
    }
    rows.sort();
    let mut out = std::io::stdout().lock();
    write_table(
        &mut out,
        &["TRANSACTIONAL ID", "COORDINATOR", "PRODUCER ID", "STATE"],
        &rows,
    )
    .context("cannot write the transactions")
}

fn describe(args: &DescribeArgs) -> anyhow::Result<()> {
    let mut connection = args
        .client
        .coordinator(KEY_TYPE_TRANSACTION, &args.transactional_id)?;
    let version = connection.version_for(ApiKey::DescribeTransactions, 0)?;
    let request =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
            StrBytes::from_string(args.transactional_id.clone()),
        )]);
    let response = connection.call(version, &request)?;
    let state = response
        .transaction_states
        .first()
        .context("an empty DescribeTransactions response")?;
    if state.error_code != 0 {
        bail!(
            "cannot describe {:?}: {}",
            args.transactional_id,
            error_name(state.error_code)
        );
    }
    let partitions: Vec<String> = state
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| format!("{}-{p}", t.topic.as_str()))
        })
        .collect();
    let start = if state.transaction_start_time_ms < 0 {
        "-".to_string()
    } else {
        format!("{} (epoch ms)", state.transaction_start_time_ms)
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Transactional id: {}\nCoordinator: {}\nState: {}\nProducer id: {}\nProducer epoch: {}\n\
         Timeout: {} ms\nStarted: {start}\nPartitions: {}",
        state.transactional_id.as_str(),
        connection.address,
        state.transaction_state.as_str(),
        state.producer_id.0,
        state.producer_epoch,
        state.transaction_timeout_ms,
        if partitions.is_empty() {
            "-".to_string()
        } else {
            partitions.join(", ")
        },
    )
    .context("cannot write the transaction")
}

fn abort(args: &AbortArgs) -> anyhow::Result<()> {
    let mut bootstrap = args.client.connect()?;
    let metadata = crate::cluster_status::metadata(&mut bootstrap)?;
    let address = leader_address(&metadata, &args.topic, args.partition)?;
    let mut leader = args.client.connect_to(&address)?;
    let version = leader.version_for(ApiKey::DescribeProducers, 0)?;
    let request = DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default()
            .with_name(TopicName(StrBytes::from_string(args.topic.clone())))
            .with_partition_indexes(vec![args.partition]),
    ]);
    let response = leader.call(version, &request)?;
    let partition = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .context("an empty DescribeProducers response")?;
    if partition.error_code != 0 {
        bail!(
            "cannot describe the producers of {}-{}: {}",
            args.topic,
            args.partition,
            error_name(partition.error_code)
        );
    }
    let Some(producer) = partition
        .active_producers
        .iter()
        .find(|p| p.current_txn_start_offset == args.start_offset)
    else {
        bail!(
            "no transaction is open in {}-{} since offset {}",
            args.topic,
            args.partition,
            args.start_offset
        );
    };
    let marker = WritableTxnMarker::default()
        .with_producer_id(producer.producer_id)
        .with_producer_epoch(i16::try_from(producer.producer_epoch).unwrap_or(i16::MAX))
        .with_transaction_result(false)
        .with_coordinator_epoch(producer.coordinator_epoch)
        .with_topics(vec![
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(args.topic.clone())))
                .with_partition_indexes(vec![args.partition]),
        ]);
    let version = leader.version_for(ApiKey::WriteTxnMarkers, 1)?;
    let response = leader.call(
        version,
        &WriteTxnMarkersRequest::default().with_markers(vec![marker]),
    )?;
    let code = response
        .markers
        .first()
        .and_then(|m| m.topics.first())
        .and_then(|t| t.partitions.first())
        .map(|p| p.error_code)
        .context("an empty WriteTxnMarkers response")?;
    if code != 0 {
        bail!("the abort marker was refused: {}", error_name(code));
    }
    writeln!(
        std::io::stdout().lock(),
        "Aborted the transaction of producer {} in {}-{} (open since offset {}).",
        producer.producer_id.0,
        args.topic,
        args.partition,
        args.start_offset
    )
    .context("cannot write the result")
}

/// The address of the leader of `topic`-`partition`.
fn leader_address(
    metadata: &MetadataResponse,
    topic: &str,
    partition: i32,
) -> anyhow::Result<String> {
    let leader = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .with_context(|| format!("no topic {topic:?}"))?
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .with_context(|| format!("{topic:?} has no partition {partition}"))?
        .leader_id;
    let broker = metadata
        .brokers
        .iter()
        .find(|b| b.node_id == leader)
        .with_context(|| format!("{topic}-{partition} has no leader"))?;
    Ok(format!("{}:{}", broker.host, broker.port))
}
