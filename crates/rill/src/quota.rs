//! `rill quota set|list`: client quotas through AlterClientQuotas and
//! DescribeClientQuotas, with kafka-configs' entity flags and config
//! syntax:
//!
//! ```text
//! rill quota set --user alice --add-config producer_byte_rate=1048576,consumer_byte_rate=2097152
//! rill quota set --user-defaults --client app --add-config request_percentage=50
//! rill quota set --user alice --delete-config producer_byte_rate
//! rill quota list --user alice
//! ```
//!
//! Like the other client commands it takes `--command-config FILE` and
//! `-X`; its principal needs ALTER_CONFIGS (DESCRIBE_CONFIGS to list) on
//! the cluster, or to be in super.users.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, ApiKey, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::QuotaKey;

use crate::client::ClientArgs;
use crate::connection::refusal;

#[derive(Debug, Subcommand)]
pub(crate) enum QuotaCommand {
    /// Set or delete quotas of a user, a client id, or a user's client id.
    Set(SetArgs),
    /// List the quotas set, of the entities given or all.
    List(ListArgs),
}

/// Which entity: kafka-configs' flags.
#[derive(Debug, Args)]
pub(crate) struct EntityArgs {
    /// The user (the principal's name: alice of User:alice).
    #[arg(long, conflicts_with = "user_defaults")]
    user: Option<String>,
    /// The default of every user without their own quota.
    #[arg(long)]
    user_defaults: bool,
    /// The client id.
    #[arg(long, conflicts_with = "client_defaults")]
    client: Option<String>,
    /// The default of every client id without its own quota.
    #[arg(long)]
    client_defaults: bool,
    #[command(flatten)]
    client_args: ClientArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Quotas: producer_byte_rate and consumer_byte_rate (bytes per second), \
    request_percentage (percent of one request thread), controller_mutation_rate (partitions \
    created or deleted per second).\n\nExamples:\n  \
    rill quota set --user alice --add-config producer_byte_rate=1048576\n  \
    rill quota set --user-defaults --add-config consumer_byte_rate=10485760,request_percentage=200\n  \
    rill quota set --user alice --client app --delete-config producer_byte_rate"
)]
pub(crate) struct SetArgs {
    /// KEY=VALUE quotas to set, comma-separated; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    add_config: Vec<String>,
    /// Quotas to remove, comma-separated; repeatable.
    #[arg(long, value_name = "KEY")]
    delete_config: Vec<String>,
    #[command(flatten)]
    entity: EntityArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    entity: EntityArgs,
}

pub(crate) fn run(command: QuotaCommand) -> anyhow::Result<()> {
    match command {
        QuotaCommand::Set(args) => set(&args),
        QuotaCommand::List(args) => list(&args),
    }
}

impl EntityArgs {
    /// (entity type, name or `None` for the default) of each part given.
    fn parts(&self) -> Vec<(&'static str, Option<String>)> {
        let mut parts = Vec::new();
        if self.user.is_some() || self.user_defaults {
            parts.push(("user", self.user.clone()));
        }
        if self.client.is_some() || self.client_defaults {
            parts.push(("client-id", self.client.clone()));
        }
        parts
    }
}

fn split(values: &[String]) -> impl Iterator<Item = &str> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn quota_key(name: &str) -> anyhow::Result<QuotaKey> {
    QuotaKey::from_name(name).with_context(|| {
        format!(
            "{name:?} is not a quota: producer_byte_rate, consumer_byte_rate, \
             request_percentage or controller_mutation_rate"
        )
    })
}

fn set(args: &SetArgs) -> anyhow::Result<()> {
    let parts = args.entity.parts();
    if parts.is_empty() {
        bail!(
            "give an entity: --user NAME or --user-defaults, and/or --client ID or --client-defaults"
        );
    }
    let mut ops = Vec::new();
    for pair in split(&args.add_config) {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--add-config {pair:?}: KEY=VALUE"))?;
        let key = quota_key(key.trim())?;
        let value: f64 = value
            .trim()
            .parse()
            .with_context(|| format!("--add-config {pair:?}: the value is not a number"))?;
        ops.push(
            OpData::default()
                .with_key(StrBytes::from_static_str(key.name()))
                .with_value(value),
        );
    }
    for key in split(&args.delete_config) {
        let key = quota_key(key)?;
        ops.push(
            OpData::default()
                .with_key(StrBytes::from_static_str(key.name()))
                .with_remove(true),
        );
    }
    if ops.is_empty() {
        bail!("give --add-config KEY=VALUE or --delete-config KEY");
    }
    let entity = parts
        .iter()
        .map(|(entity_type, name)| {
            EntityData::default()
                .with_entity_type(StrBytes::from_static_str(entity_type))
                .with_entity_name(name.clone().map(StrBytes::from_string))
        })
        .collect();
    let mut connection = args.entity.client_args.connect()?;
    let version = connection.version_for(ApiKey::AlterClientQuotas, 1)?;
    let request = AlterClientQuotasRequest::default()
        .with_entries(vec![EntryData::default().with_entity(entity).with_ops(ops)]);
    let response = connection.call(version, &request)?;
    for entry in &response.entries {
        if entry.error_code != 0 {
            bail!(
                "{}",
                refusal(entry.error_code, entry.error_message.as_deref())
            );
        }
    }
    eprintln!("quotas of {} updated", describe_parts(&parts));
    Ok(())
}

fn describe_parts(parts: &[(&str, Option<String>)]) -> String {
    parts
        .iter()
        .map(|(entity_type, name)| {
            format!("{entity_type} {}", name.as_deref().unwrap_or("<default>"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    /// Kafka's match types.
    const EXACT: i8 = 0;
    const DEFAULT: i8 = 1;
    let components = args
        .entity
        .parts()
        .into_iter()
        .map(|(entity_type, name)| {
            ComponentData::default()
                .with_entity_type(StrBytes::from_static_str(entity_type))
                .with_match_type(if name.is_some() { EXACT } else { DEFAULT })
                .with_match(name.map(StrBytes::from_string))
        })
        .collect();
    let mut connection = args.entity.client_args.connect()?;
    let version = connection.version_for(ApiKey::DescribeClientQuotas, 1)?;
    let response = connection.call(
        version,
        &DescribeClientQuotasRequest::default().with_components(components),
    )?;
    if response.error_code != 0 {
        bail!(
            "{}",
            refusal(response.error_code, response.error_message.as_deref())
        );
    }
    let mut rows = Vec::new();
    for entry in response.entries.unwrap_or_default() {
        let name_of = |wanted: &str| {
            entry
                .entity
                .iter()
                .find(|e| e.entity_type.as_str() == wanted)
                .map_or_else(
                    || "-".to_string(),
                    |e| {
                        e.entity_name
                            .as_ref()
                            .map_or("<default>".to_string(), ToString::to_string)
                    },
                )
        };
        for value in &entry.values {
            rows.push(vec![
                name_of("user"),
                name_of("client-id"),
                value.key.to_string(),
                value.value.to_string(),
            ]);
        }
    }
    crate::table::write_table(
        &mut std::io::stdout().lock(),
        &["USER", "CLIENT-ID", "QUOTA", "VALUE"],
        &rows,
    )
    .context("cannot write the list")
}
