//! AlterUserScramCredentials (KIP-554): SCRAM credentials created,
//! replaced or deleted through the metadata quorum, one result per user
//! named. The client sends a salted password; the broker keeps only the
//! salt, the iterations and the keys derived from it. Refusals are
//! Kafka's (ControllerApis, ScramControlManager): a user changed twice in
//! one request, an unknown mechanism, iterations out of bounds, an empty
//! name, a deletion of a credential that does not exist.
//!
//! Each change is its own metadata entry, applied in request order: a
//! request that fails half-way keeps the changes before the failure
//! (Kafka applies a request's changes together).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::Command;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::error_code;
use crate::security::{CredentialError, ScramCredential, ScramMechanism};

type Refusal = (ResponseError, String);

pub(crate) fn answer(
    broker: &Broker,
    alter: AlterUserScramCredentialsRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    // Per user, in the order first named: its changes, or why none is made.
    let mut users: BTreeMap<String, Result<Vec<Command>, Refusal>> = BTreeMap::new();
    let mut seen: BTreeSet<(String, i8)> = BTreeSet::new();
    let mut order: Vec<String> = Vec::new();
    let changes = alter
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism, None))
        .chain(alter.upsertions.iter().map(|u| {
            (
                u.name.to_string(),
                u.mechanism,
                Some((u.iterations, &u.salt, &u.salted_password)),
            )
        }));
    for (user, code, upsertion) in changes {
        if !users.contains_key(&user) {
            order.push(user.clone());
        }
        let twice = !seen.insert((user.clone(), code));
        let change = if twice {
            Err((
                ResponseError::DuplicateResource,
                "A user credential cannot be altered twice in the same request".to_string(),
            ))
        } else {
            command(&user, code, upsertion)
        };
        let entry = users.entry(user).or_insert_with(|| Ok(Vec::new()));
        match (entry.as_mut(), change) {
            (Ok(commands), Ok(command)) => commands.push(command),
            (Ok(_), Err(refusal)) => *entry = Err(refusal),
            (Err(_), _) => {}
        }
    }
    if !Access::new(broker, session).allows_cluster(AclOperation::Alter) {
        for outcome in users.values_mut() {
            *outcome = Err((
                ResponseError::ClusterAuthorizationFailed,
                "Cluster authorization failed.".to_string(),
            ));
        }
    }
    let node = broker.node();
    let runtime = tokio::runtime::Handle::current();
    let results = order
        .into_iter()
        .map(|user| {
            let outcome = users.remove(&user).unwrap_or_else(|| Ok(Vec::new()));
            let outcome = outcome.and_then(|commands| {
                commands.into_iter().try_for_each(|command| {
                    runtime
                        .block_on(node.propose(command))
                        .map(drop)
                        .map_err(|error| (error_code::for_proposal(&error), error.to_string()))
                })
            });
            let result =
                AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
            match outcome {
                Ok(()) => result,
                Err((code, message)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    let response = AlterUserScramCredentialsResponse::default().with_results(results);
    encode(ApiKey::AlterUserScramCredentials, version, &response)
}

/// The metadata command of one deletion (`upsertion` none) or upsertion.
fn command(
    user: &str,
    code: i8,
    upsertion: Option<(i32, &bytes::Bytes, &bytes::Bytes)>,
) -> Result<Command, Refusal> {
    let mechanism = ScramMechanism::from_code(code).ok_or_else(|| {
        (
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism".to_string(),
        )
    })?;
    if user.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "Username must not be empty".to_string(),
        ));
    }
    let Some((iterations, salt, salted_password)) = upsertion else {
        return Ok(Command::DeleteScramCredential {
            user: user.to_string(),
            mechanism,
        });
    };
    let iterations = u32::try_from(iterations).unwrap_or(0);
    let credential =
        ScramCredential::from_salted_password(mechanism, salted_password, salt, iterations)
            .map_err(|error| {
                let message = match error {
                    CredentialError::TooFewIterations { .. } => "Too few iterations".to_string(),
                    CredentialError::TooManyIterations { .. } => "Too many iterations".to_string(),
                    other => other.to_string(),
                };
                (ResponseError::UnacceptableCredential, message)
            })?;
    Ok(Command::UpsertScramCredential {
        user: user.to_string(),
        mechanism,
        credential: credential.into_stored(),
    })
}
