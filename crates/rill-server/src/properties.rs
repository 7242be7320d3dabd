//! Broker properties as given — Kafka names to strings — and the forms
//! their values take (listener addresses, the quorum's voters and
//! bootstrap servers), with the error of a property that cannot be used.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::topic_config::ConfigValueError;

/// Properties by Kafka name, as strings: what a file, flags and dynamic
/// updates say, before interpretation.
pub type Properties = BTreeMap<String, String>;

/// The address a listener binds or advertises: host and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// Parses one `HOST:PORT` (`[v6]:PORT` too; an empty host is every
    /// address). Lists and listener names are listeners.rs's.
    pub fn parse(text: &str) -> Result<HostPort, ConfigError> {
        let address = text.trim();
        let invalid = || ConfigError::Invalid {
            name: "listeners".to_string(),
            value: text.to_string(),
            expected: "HOST:PORT".to_string(),
        };
        let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
        let port = port.parse::<u16>().map_err(|_| invalid())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(HostPort {
            host: if host.is_empty() { "0.0.0.0" } else { host }.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    /// A property Rill does not know (Kafka would only warn): most likely
    /// a typo that would leave a default in place unnoticed.
    #[error("unknown broker property {name:?}: did you mean {nearest:?}?")]
    UnknownProperty {
        name: String,
        /// The known property nearest `name` by edit distance.
        nearest: &'static str,
    },
    #[error("{name}={value:?}: expected {expected}")]
    Invalid {
        name: String,
        value: String,
        expected: String,
    },
    #[error(transparent)]
    Value(#[from] ConfigValueError),
}

/// Parses controller.quorum.bootstrap.servers: `host:port,...`.
pub(crate) fn parse_bootstrap(text: &str) -> Result<Vec<String>, ConfigError> {
    let addresses = text
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| HostPort::parse(a).map(|hp| hp.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ConfigError::Invalid {
            name: "controller.quorum.bootstrap.servers".to_string(),
            value: text.to_string(),
            expected: "a comma-separated list of HOST:PORT".to_string(),
        })?;
    if addresses.is_empty() {
        return Err(ConfigError::Invalid {
            name: "controller.quorum.bootstrap.servers".to_string(),
            value: text.to_string(),
            expected: "at least one HOST:PORT".to_string(),
        });
    }
    Ok(addresses)
}

/// Parses controller.quorum.voters: `1@127.0.0.1:9093,2@host:9193`.
pub(crate) fn parse_voters(text: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let invalid = || ConfigError::Invalid {
        name: "controller.quorum.voters".to_string(),
        value: text.to_string(),
        expected: "a comma-separated list of ID@HOST:PORT, ids distinct".to_string(),
    };
    let mut voters = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, address) = entry.split_once('@').ok_or_else(invalid)?;
        let id = id.trim().parse::<u64>().map_err(|_| invalid())?;
        let address = HostPort::parse(address).map_err(|_| invalid())?;
        if id > i32::MAX as u64 || voters.insert(id, address.to_string()).is_some() {
            return Err(invalid());
        }
    }
    if voters.is_empty() {
        return Err(invalid());
    }
    Ok(voters)
}
