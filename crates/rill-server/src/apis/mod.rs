//! The Kafka APIs Rill answers, one module each, declared once in
//! `table.rs` (ApiVersions advertises exactly that table, and dispatch
//! follows it).
//!
//! A handler decodes its request, does the work that must happen in
//! request order (appends) before it returns, and returns a future for
//! what may overlap with later requests (waiting for fsync, long polls).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::broker::Broker;
use crate::session::Session;

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_client_quotas;
mod alter_configs;
mod alter_partition_reassignments;
mod alter_share_group_offsets;
mod alter_user_scram_credentials;
mod api_versions;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_share_group_offsets;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod describe_share_group_offsets;
mod describe_topic_partitions;
mod describe_transactions;
mod describe_user_scram_credentials;
mod elect_leaders;
mod end_txn;
mod error_codes;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_config_resources;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod read_share_group_state;
mod sasl_authenticate;
mod sasl_handshake;
mod share_acknowledge;
mod share_fetch;
mod share_group_describe;
mod share_group_heartbeat;
mod sync_group;
mod table;
mod txn_offset_commit;
mod write_share_group_state;
mod write_txn_markers;

pub(crate) use api_versions::unsupported_version_response;
use error_codes::ErrorCodes;
pub(crate) use error_codes::ErrorCounts;
pub(crate) use rill_storage::now_ms;
pub(crate) use table::{Api, TABLE, decode_body};

/// The version range Rill implements for `api`.
pub(crate) fn supported_versions(api: Api) -> (i16, i16) {
    let entry = api.entry();
    (entry.min_version, entry.max_version)
}

/// An encoded response body.
#[derive(Debug, Default)]
pub(crate) struct Body {
    /// Its bytes, as chunks written with one vectored write (fetch
    /// responses carry segment slices uncopied).
    pub chunks: Vec<Bytes>,
    /// The error codes it carries, for `rill_request_errors_total`.
    pub errors: ErrorCounts,
}

/// The rest of a request's work; resolves to its response body, or to
/// `None` when Kafka sends no response (produce with acks=0).
pub(crate) type Pending = Pin<Box<dyn Future<Output = Result<Option<Body>, HandlerError>> + Send>>;

/// Why a request could not be answered; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("cannot decode {api:?} v{version}: {message}")]
    Decode {
        api: ApiKey,
        version: i16,
        message: String,
    },
    #[error("cannot encode the {api:?} v{version} response: {message}")]
    Encode {
        api: ApiKey,
        version: i16,
        message: String,
    },
}

/// A decoded request header and its undecoded body.
#[derive(Debug)]
pub(crate) struct Request {
    pub header: RequestHeader,
    pub api: Api,
    pub body: Bytes,
    /// Who sent it, from where, on which listener.
    pub session: Arc<Session>,
    /// How long the client's quotas throttle it for this request (its
    /// produce bytes, its request time), as the connection charged it.
    pub throttle_ms: u64,
}

impl Request {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }

    /// The client id from the request header, or empty.
    pub fn client_id(&self) -> String {
        self.header
            .client_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// Decodes the body as `T` at the request's version.
    pub fn decode<T: Decodable>(&self) -> Result<T, HandlerError> {
        let mut body = self.body.clone();
        T::decode(&mut body, self.version()).map_err(|e| HandlerError::Decode {
            api: self.api.key(),
            version: self.version(),
            message: e.to_string(),
        })
    }
}

/// Encodes a response body at `version`.
pub(crate) fn encode<T: Encodable + ErrorCodes>(
    api: ApiKey,
    version: i16,
    response: &T,
) -> Result<Body, HandlerError> {
    let error = |message: String| HandlerError::Encode {
        api,
        version,
        message,
    };
    let size = response
        .compute_size(version)
        .map_err(|e| error(e.to_string()))?;
    let mut buf = BytesMut::with_capacity(size);
    response
        .encode(&mut buf, version)
        .map_err(|e| error(e.to_string()))?;
    Ok(Body {
        chunks: vec![buf.freeze()],
        errors: ErrorCounts::of(response),
    })
}

/// The message of a THROTTLING_QUOTA_EXCEEDED: the error's own text and
/// how long to wait.
pub(crate) fn throttling_message(throttle_ms: u64) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(format!(
        "The throttling quota has been exceeded; retry in {throttle_ms} ms."
    ))
}

/// A ready response.
pub(crate) fn ready(body: Result<Body, HandlerError>) -> Pending {
    Box::pin(std::future::ready(body.map(Some)))
}

/// Decodes the request and answers it on a blocking thread: for work
/// that touches files (topic changes: directories, preallocation,
/// deletion, fsyncs), keeping the reactor free.
fn on_blocking_pool<T: Decodable + Send + 'static>(
    broker: &Arc<Broker>,
    request: Request,
    answer: fn(&Broker, T, &Request) -> Result<Body, HandlerError>,
) -> Pending {
    let decoded: T = match request.decode() {
        Ok(decoded) => decoded,
        Err(error) => return ready(Err(error)),
    };
    let broker = Arc::clone(broker);
    Box::pin(async move {
        match tokio::task::spawn_blocking(move || answer(&broker, decoded, &request)).await {
            Ok(result) => result.map(Some),
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    })
}

/// Runs the request's in-order part and returns the rest.
pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: Request,
    shutdown: &crate::shutdown::Shutdown,
) -> Pending {
    table::dispatch(broker, request, shutdown)
}
