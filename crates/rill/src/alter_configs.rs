//! Topic config changes through IncrementalAlterConfigs (API key 44),
//! encoded with `kafka-protocol` and sent over one plain TCP connection to a
//! bootstrap broker (`connection`).
//!
//! Why not rdkafka: rdkafka 0.39's `AdminClient` wraps only the legacy
//! AlterConfigs API, which replaces a resource's whole config (and which
//! Rill does not implement), and reaching librdkafka's
//! `rd_kafka_IncrementalAlterConfigs` would take `unsafe` code, which this
//! crate does not allow. The request is small and the codec is the same
//! one the broker uses.

use anyhow::bail;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{ApiKey, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use crate::client::ClientArgs;

/// The newest IncrementalAlterConfigs version this client speaks.
const INCREMENTAL_ALTER_CONFIGS_VERSION_MAX: i16 = 1;

/// Kafka's ConfigResource type for a topic.
const RESOURCE_TOPIC: i8 = 2;

/// Kafka's IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// One change to a topic's configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfigChange {
    /// Override `name` with `value`.
    Set { name: String, value: String },
    /// Remove the override of `name`, so the broker's default applies again.
    Delete { name: String },
}

/// Applies `changes` to `topic`'s configs, in order, through the first
/// reachable broker of `client`.
pub(crate) fn alter_topic(
    client: &ClientArgs,
    topic: &str,
    changes: &[ConfigChange],
) -> anyhow::Result<()> {
    let mut connection = client.connect()?;
    let version = connection.version_for(
        ApiKey::IncrementalAlterConfigs,
        INCREMENTAL_ALTER_CONFIGS_VERSION_MAX,
    )?;
    let configs = changes
        .iter()
        .map(|change| match change {
            ConfigChange::Set { name, value } => AlterableConfig::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(value.clone()))),
            ConfigChange::Delete { name } => AlterableConfig::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_config_operation(OP_DELETE),
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(configs),
    ]);
    let response = connection.call(version, &request)?;
    let Some(result) = response
        .responses
        .iter()
        .find(|r| r.resource_type == RESOURCE_TOPIC && r.resource_name.as_str() == topic)
    else {
        bail!(
            "the broker at {} answered IncrementalAlterConfigs without a result for topic {topic:?}",
            connection.address
        );
    };
    if let Some(error) = ResponseError::try_from_code(result.error_code) {
        match &result.error_message {
            Some(message) if !message.is_empty() => {
                bail!("cannot alter the configs of topic {topic:?}: {error}: {message}")
            }
            _ => bail!("cannot alter the configs of topic {topic:?}: {error}"),
        }
    }
    Ok(())
}
