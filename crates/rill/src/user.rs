//! `rill user create|delete|list`: SCRAM users through
//! AlterUserScramCredentials and DescribeUserScramCredentials (KIP-554),
//! as `kafka-configs --alter --add-config 'SCRAM-SHA-512=[password=...]'
//! --entity-type users` does. The password is read from stdin, never from
//! the command line; only the salted password leaves this process.
//!
//! Like the other client commands they take `--command-config FILE` and
//! `-X`: over a SASL listener, as a user with ALTER (DESCRIBE to list) on
//! the cluster when ACLs are checked.

use std::io::{Read, Write};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use rill_server::ScramMechanism;

use crate::client::ClientArgs;
use crate::connection::Connection;

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a SCRAM user, or set a new password (read from stdin).
    Create(CreateArgs),
    /// Delete a user's SCRAM credential.
    Delete(DeleteArgs),
    /// List users and their SCRAM mechanisms.
    List(ListArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    printf '%s' \"$PASSWORD\" | rill user create alice\n  \
    printf '%s' \"$PASSWORD\" | rill user create admin --data /var/lib/rill   # before the first start\n  \
    rill user create alice --mechanism SCRAM-SHA-256 --iterations 8192 < password.txt")]
pub(crate) struct CreateArgs {
    user: String,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, default_value = "SCRAM-SHA-512")]
    mechanism: String,
    /// PBKDF2 iterations, 4096 to 16384.
    #[arg(long, default_value_t = 4096)]
    iterations: u32,
    /// Before the broker's first start: write the credential into its
    /// data directory (`rill broker --data DIR`), for the broker to add
    /// to the metadata quorum when it starts, instead of asking a running
    /// broker.
    #[arg(long, value_name = "DIR", conflicts_with = "bootstrap")]
    data: Option<std::path::PathBuf>,
    #[command(flatten)]
    broker: ClientArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    user: String,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, default_value = "SCRAM-SHA-512")]
    mechanism: String,
    #[command(flatten)]
    broker: ClientArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only these users (each must exist).
    users: Vec<String>,
    #[command(flatten)]
    broker: ClientArgs,
}

/// The longest password read from stdin.
const PASSWORD_BYTES_MAX: u64 = 1 << 10;

pub(crate) fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create(args) => create(args),
        UserCommand::Delete(args) => delete(args),
        UserCommand::List(args) => list(args),
    }
}

fn mechanism(name: &str) -> anyhow::Result<ScramMechanism> {
    ScramMechanism::from_name(name)
        .with_context(|| format!("unknown mechanism {name:?}: SCRAM-SHA-256 or SCRAM-SHA-512"))
}

fn connect(broker: &ClientArgs) -> anyhow::Result<Connection> {
    broker.connect()
}

fn create(args: CreateArgs) -> anyhow::Result<()> {
    let mechanism = mechanism(&args.mechanism)?;
    let mut password = String::new();
    std::io::stdin()
        .take(PASSWORD_BYTES_MAX + 1)
        .read_to_string(&mut password)
        .context("cannot read the password from stdin")?;
    // One trailing newline is the terminal's or echo's, not the password's.
    let password = password
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&password);
    if password.is_empty() || password.len() as u64 > PASSWORD_BYTES_MAX {
        bail!("give the password on stdin: 1 to {PASSWORD_BYTES_MAX} bytes");
    }
    if let Some(dir) = &args.data {
        rill_server::add_initial_credential(dir, &args.user, mechanism, password, args.iterations)?;
        eprintln!(
            "{} for {} written to {}; the broker adds it when it starts",
            mechanism.name(),
            args.user,
            dir.join(rill_server::INITIAL_CREDENTIALS_FILE).display()
        );
        return Ok(());
    }
    let salt = rill_server::random_salt()?;
    let salted = rill_server::salted_password(mechanism, password, &salt, args.iterations)?;
    let upsertion = ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_string(args.user.clone()))
        .with_mechanism(mechanism.code())
        .with_iterations(i32::try_from(args.iterations)?)
        .with_salt(salt.into())
        .with_salted_password(salted.into());
    let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]);
    alter(&args.broker, &args.user, &request)?;
    eprintln!("{} for {} set", mechanism.name(), args.user);
    Ok(())
}

fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let mechanism = mechanism(&args.mechanism)?;
    let deletion = ScramCredentialDeletion::default()
        .with_name(StrBytes::from_string(args.user.clone()))
        .with_mechanism(mechanism.code());
    let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]);
    alter(&args.broker, &args.user, &request)?;
    eprintln!("{} for {} deleted", mechanism.name(), args.user);
    Ok(())
}

fn alter(
    broker: &ClientArgs,
    user: &str,
    request: &AlterUserScramCredentialsRequest,
) -> anyhow::Result<()> {
    let mut connection = connect(broker)?;
    let version = connection.version_for(ApiKey::AlterUserScramCredentials, 0)?;
    let response = connection.call(version, request)?;
    let Some(result) = response.results.iter().find(|r| r.user.as_str() == user) else {
        bail!("the broker did not answer for {user}");
    };
    if result.error_code != 0 {
        let error = ResponseError::try_from_code(result.error_code).map_or_else(
            || format!("error {}", result.error_code),
            |e| format!("{e:?}"),
        );
        let message = result.error_message.as_deref().unwrap_or("");
        bail!("{user}: {error}: {message}");
    }
    Ok(())
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    let mut connection = connect(&args.broker)?;
    let version = connection.version_for(ApiKey::DescribeUserScramCredentials, 0)?;
    let users = (!args.users.is_empty()).then(|| {
        args.users
            .iter()
            .map(|u| UserName::default().with_name(StrBytes::from_string(u.clone())))
            .collect()
    });
    let request = DescribeUserScramCredentialsRequest::default().with_users(users);
    let response = connection.call(version, &request)?;
    if response.error_code != 0 {
        bail!(
            "{}",
            response
                .error_message
                .as_deref()
                .unwrap_or("the broker refused")
        );
    }
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for result in &response.results {
        if result.error_code != 0 {
            failed = true;
            eprintln!(
                "{}: {}",
                result.user.as_str(),
                result.error_message.as_deref().unwrap_or("refused")
            );
            continue;
        }
        let mechanisms: Vec<String> = result
            .credential_infos
            .iter()
            .map(|info| {
                let name = ScramMechanism::from_code(info.mechanism)
                    .map_or("UNKNOWN", ScramMechanism::name);
                format!("{name} (iterations {})", info.iterations)
            })
            .collect();
        writeln!(out, "{}\t{}", result.user.as_str(), mechanisms.join(", "))?;
    }
    if failed {
        bail!("some users could not be listed");
    }
    Ok(())
}
