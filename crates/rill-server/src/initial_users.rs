//! The first users of a cluster, made before any broker runs (Kafka's
//! `kafka-storage format --add-scram`): `rill user create NAME --data DIR`
//! reads the password from stdin and writes only its SCRAM credential
//! (salt, iterations, stored and server keys) to
//! `DIR/initial-scram-credentials.json`. The broker's next start, once it
//! has joined its metadata quorum, proposes each credential the quorum
//! does not have yet (one it has, say a password changed since, is kept),
//! then removes the file.
//!
//! Like the metadata file import, this is safe to repeat: a start that
//! dies half way finds the file still there and proposes what is left.

use std::path::{Path, PathBuf};

use rill_cluster::{Command, ScramMechanism, StoredScramCredential};
use serde::{Deserialize, Serialize};

use crate::cluster::ClusterNode;
use crate::security::{ScramCredential, random_salt, salted_password};

/// The file's name in the first log directory.
pub const INITIAL_CREDENTIALS_FILE: &str = "initial-scram-credentials.json";

/// One user's credential for one mechanism.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Initial {
    user: String,
    mechanism: ScramMechanism,
    credential: StoredScramCredential,
}

/// Why the initial credentials could not be written or applied.
#[derive(Debug, thiserror::Error)]
pub enum InitialUsersError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a list of credentials: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make the credential: {0}")]
    Credential(String),
    #[error("the metadata quorum did not take the credential of {user}: {message}")]
    Quorum { user: String, message: String },
}

/// Adds (or replaces) `user`'s credential for `mechanism`, made from
/// `password` with `iterations`, to the initial credentials of the data
/// directory `dir` (created if need be). The file is the owner's alone
/// (mode 0600) and written durably.
pub fn add_initial_credential(
    dir: &Path,
    user: &str,
    mechanism: ScramMechanism,
    password: &str,
    iterations: u32,
) -> Result<(), InitialUsersError> {
    if user.is_empty() {
        return Err(InitialUsersError::Credential("an empty user name".into()));
    }
    let salt = random_salt().map_err(|e| InitialUsersError::Credential(e.to_string()))?;
    let credential = salted_password(mechanism, password, &salt, iterations)
        .and_then(|salted| {
            ScramCredential::from_salted_password(mechanism, &salted, &salt, iterations)
        })
        .map_err(|e| InitialUsersError::Credential(e.to_string()))?;
    let path = dir.join(INITIAL_CREDENTIALS_FILE);
    let mut initial = read(&path)?.unwrap_or_default();
    initial.retain(|i| !(i.user == user && i.mechanism == mechanism));
    initial.push(Initial {
        user: user.to_string(),
        mechanism,
        credential: credential.into_stored(),
    });
    let write_error = |source| InitialUsersError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_error)?;
    let text = serde_json::to_vec_pretty(&initial)
        .map_err(|e| InitialUsersError::Credential(e.to_string()))?;
    let temporary = dir.join(format!("{INITIAL_CREDENTIALS_FILE}.tmp"));
    write_private(&temporary, &text)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .and_then(|()| rill_storage::durable::sync_dir(dir).map_err(|failure| failure.source))
        .map_err(write_error)
}

/// Writes `bytes` to a new file only its owner may read, and syncs it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn read(path: &Path) -> Result<Option<Vec<Initial>>, InitialUsersError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| InitialUsersError::Corrupt {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(InitialUsersError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Proposes the credentials of `dir`'s file that the quorum lacks, then
/// removes the file.
pub(crate) async fn apply(node: &ClusterNode, dir: &Path) -> Result<(), InitialUsersError> {
    let path = dir.join(INITIAL_CREDENTIALS_FILE);
    let Some(initial) = read(&path)? else {
        return Ok(());
    };
    let mut added = 0;
    for Initial {
        user,
        mechanism,
        credential,
    } in initial
    {
        if node.metadata().users.credential(&user, mechanism).is_some() {
            tracing::info!(%user, mechanism = mechanism.name(), "the quorum has a credential for this user already; keeping it");
            continue;
        }
        let command = Command::UpsertScramCredential {
            user: user.clone(),
            mechanism,
            credential,
        };
        let quorum = |message: String| InitialUsersError::Quorum {
            user: user.clone(),
            message,
        };
        node.propose_retrying("adding the initial credentials", command)
            .await
            .map_err(|e| quorum(e.to_string()))?
            .map_err(|rejection| quorum(rejection.to_string()))?;
        added += 1;
    }
    std::fs::remove_file(&path)
        .and_then(|()| rill_storage::durable::sync_dir(dir).map_err(|failure| failure.source))
        .map_err(|source| InitialUsersError::Write {
            path: path.clone(),
            source,
        })?;
    tracing::info!(
        added,
        "added the initial SCRAM credentials to the metadata quorum"
    );
    Ok(())
}
