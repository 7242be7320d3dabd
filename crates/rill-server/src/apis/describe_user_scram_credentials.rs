//! DescribeUserScramCredentials (KIP-554): each user's SCRAM mechanisms
//! and iterations — never a salt or a key. No users named: every user
//! with a credential. A user named twice is DUPLICATE_RESOURCE, one
//! without a credential RESOURCE_NOT_FOUND, as in Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    ApiKey, DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;

pub(crate) fn answer(broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let describe: DescribeUserScramCredentialsRequest = request.decode()?;
    if !Access::new(broker, &request.session).allows_cluster(AclOperation::Describe) {
        let refused = kafka_protocol::ResponseError::ClusterAuthorizationFailed;
        let response = DescribeUserScramCredentialsResponse::default()
            .with_error_code(refused.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "Cluster authorization failed.",
            )));
        return encode(
            ApiKey::DescribeUserScramCredentials,
            request.version(),
            &response,
        );
    }
    let metadata = broker.node().metadata();
    let known: BTreeMap<&str, Vec<(rill_cluster::ScramMechanism, i32)>> =
        metadata.users.iter().collect();
    let infos = |mechanisms: &[(rill_cluster::ScramMechanism, i32)]| -> Vec<CredentialInfo> {
        mechanisms
            .iter()
            .map(|(mechanism, iterations)| {
                CredentialInfo::default()
                    .with_mechanism(mechanism.code())
                    .with_iterations(*iterations)
            })
            .collect()
    };
    let results = match describe.users {
        None => known
            .iter()
            .map(|(user, mechanisms)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string((*user).to_string()))
                    .with_credential_infos(infos(mechanisms))
            })
            .collect(),
        Some(users) => {
            let mut named: BTreeMap<&str, usize> = BTreeMap::new();
            for user in &users {
                *named.entry(user.name.as_str()).or_default() += 1;
            }
            users
                .iter()
                .map(|user| {
                    let name = user.name.as_str();
                    let result = DescribeUserScramCredentialsResult::default()
                        .with_user(user.name.clone());
                    let refuse = |code: ResponseError, message: &'static str| {
                        result
                            .clone()
                            .with_error_code(code.code())
                            .with_error_message(Some(StrBytes::from_static_str(message)))
                    };
                    if named.get(name).copied().unwrap_or(0) > 1 {
                        return refuse(
                            ResponseError::DuplicateResource,
                            "Cannot describe SCRAM credentials for the same user twice in a single request",
                        );
                    }
                    match known.get(name) {
                        Some(mechanisms) => result.clone().with_credential_infos(infos(mechanisms)),
                        None => refuse(
                            ResponseError::ResourceNotFound,
                            "Attempt to describe a user credential that does not exist",
                        ),
                    }
                })
                .collect()
        }
    };
    let response = DescribeUserScramCredentialsResponse::default().with_results(results);
    encode(
        ApiKey::DescribeUserScramCredentials,
        request.version(),
        &response,
    )
}
