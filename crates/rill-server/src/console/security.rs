//! Users and ACLs: SCRAM credentials (`/api/users`:
//! DescribeUserScramCredentials, AlterUserScramCredentials — the broker
//! salts and hashes the password, which is never stored) and ACLs
//! (`/api/acls`: DescribeAcls, CreateAcls, DeleteAcls), with Kafka's names
//! for the ACL enums.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey, CreateAclsRequest,
    CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::{
    AclBinding, AclOperation, AclPermissionType, PatternType, ResourceType, ScramMechanism,
};
use serde::{Deserialize, Serialize};

use super::Console;
use super::kafka::check;
use super::reply::{ApiError, Reply};
use crate::security::{random_salt, salted_password};

/// The iterations of a new credential when none are given (Kafka's
/// `kafka-configs` default is 4096; twice that costs a login little).
const ITERATIONS_DEFAULT: i32 = 8192;

#[derive(Serialize)]
pub(crate) struct Users {
    users: Vec<User>,
}

#[derive(Serialize)]
struct User {
    name: String,
    credentials: Vec<Credential>,
}

#[derive(Serialize)]
struct Credential {
    mechanism: &'static str,
    iterations: i32,
}

pub(crate) async fn users(State(console): State<Console>) -> Reply<Users> {
    let (broker, kafka) = console.client()?;
    let request = DescribeUserScramCredentialsRequest::default().with_users(None);
    let answer: DescribeUserScramCredentialsResponse = kafka
        .call(
            &broker,
            broker.config().node_id,
            (ApiKey::DescribeUserScramCredentials, 0),
            &request,
        )
        .await?;
    check(answer.error_code, answer.error_message.as_deref()).map_err(ApiError::bad_request)?;
    let mut users: Vec<User> = answer
        .results
        .into_iter()
        .filter(|r| r.error_code == 0)
        .map(|r| User {
            name: r.user.to_string(),
            credentials: r
                .credential_infos
                .iter()
                .filter_map(|c| {
                    Some(Credential {
                        mechanism: ScramMechanism::from_code(c.mechanism)?.name(),
                        iterations: c.iterations,
                    })
                })
                .collect(),
        })
        .collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(Users { users }))
}

#[derive(Deserialize)]
pub(crate) struct NewUser {
    name: String,
    password: String,
    mechanism: Option<String>,
    iterations: Option<i32>,
}

pub(crate) async fn create_user(
    State(console): State<Console>,
    Json(user): Json<NewUser>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let mechanism = mechanism(user.mechanism.as_deref())?;
    let iterations = user.iterations.unwrap_or(ITERATIONS_DEFAULT);
    let salt = random_salt().map_err(|e| ApiError::unavailable(e.to_string()))?;
    let rounds = u32::try_from(iterations)
        .map_err(|_| ApiError::bad_request(format!("{iterations} iterations")))?;
    let salted = salted_password(mechanism, &user.password, &salt, rounds)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.name))
            .with_mechanism(mechanism.code())
            .with_iterations(iterations)
            .with_salt(Bytes::from(salt))
            .with_salted_password(Bytes::from(salted)),
    ]);
    alter_users(&console, request).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({}))))
}

#[derive(Deserialize)]
pub(crate) struct DeleteUserQuery {
    mechanism: Option<String>,
}

pub(crate) async fn delete_user(
    State(console): State<Console>,
    Path(name): Path<String>,
    Query(query): Query<DeleteUserQuery>,
) -> Reply<serde_json::Value> {
    let mechanisms = match query.mechanism.as_deref() {
        Some(named) => vec![mechanism(Some(named))?],
        None => ScramMechanism::ALL.to_vec(),
    };
    let deletions = mechanisms
        .into_iter()
        .map(|m| {
            ScramCredentialDeletion::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_mechanism(m.code())
        })
        .collect();
    let request = AlterUserScramCredentialsRequest::default().with_deletions(deletions);
    alter_users(&console, request).await?;
    Ok(Json(serde_json::json!({})))
}

/// Sends `request`; the first refusal is the answer (400, or 404 for a
/// credential that does not exist).
async fn alter_users(
    console: &Console,
    request: AlterUserScramCredentialsRequest,
) -> Result<(), ApiError> {
    let (broker, kafka) = console.client()?;
    let answer: AlterUserScramCredentialsResponse = kafka
        .call(
            &broker,
            broker.config().node_id,
            (ApiKey::AlterUserScramCredentials, 0),
            &request,
        )
        .await?;
    for result in &answer.results {
        if let Err(error) = check(result.error_code, result.error_message.as_deref()) {
            // RESOURCE_NOT_FOUND: no such credential to delete.
            return Err(if result.error_code == 91 {
                ApiError::not_found(error)
            } else {
                ApiError::bad_request(error)
            });
        }
    }
    Ok(())
}

/// A SCRAM mechanism by its SASL name; SCRAM-SHA-256 when none is named.
fn mechanism(named: Option<&str>) -> Result<ScramMechanism, ApiError> {
    let named = named.unwrap_or("SCRAM-SHA-256");
    ScramMechanism::from_name(named).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no SCRAM mechanism {named}: SCRAM-SHA-256 or SCRAM-SHA-512"
        ))
    })
}

/// One ACL, with Kafka's names for its enums.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Acl {
    resource_type: String,
    resource_name: String,
    #[serde(default = "literal")]
    pattern_type: String,
    principal: String,
    #[serde(default = "any_host")]
    host: String,
    operation: String,
    #[serde(default = "allow")]
    permission: String,
}

fn literal() -> String {
    "LITERAL".to_string()
}

fn any_host() -> String {
    "*".to_string()
}

fn allow() -> String {
    "ALLOW".to_string()
}

impl Acl {
    /// The ACL as the metadata's own binding, checked as CreateAcls checks
    /// one: Kafka's names, and no ANY or MATCH (which, in a deletion's
    /// filter, would match other ACLs than the one named).
    fn binding(self) -> Result<AclBinding, ApiError> {
        let binding = AclBinding {
            resource_type: ResourceType::from_name(&self.resource_type),
            resource_name: self.resource_name,
            pattern_type: PatternType::from_name(&self.pattern_type),
            principal: self.principal,
            host: self.host,
            operation: AclOperation::from_name(&self.operation),
            permission: AclPermissionType::from_name(&self.permission),
        };
        binding
            .validate()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(binding)
    }
}

#[derive(Serialize)]
pub(crate) struct AclList {
    acls: Vec<Acl>,
}

pub(crate) async fn acls(State(console): State<Console>) -> Reply<AclList> {
    let (broker, kafka) = console.client()?;
    const ANY: i8 = 1;
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(ANY)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(ANY)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let answer: DescribeAclsResponse = kafka
        .call(
            &broker,
            broker.config().node_id,
            (ApiKey::DescribeAcls, 2),
            &request,
        )
        .await?;
    check(answer.error_code, answer.error_message.as_deref()).map_err(ApiError::bad_request)?;
    let mut acls: Vec<Acl> = answer
        .resources
        .iter()
        .flat_map(|resource| {
            resource.acls.iter().map(move |acl| Acl {
                resource_type: ResourceType::from_code(resource.resource_type)
                    .name()
                    .to_string(),
                resource_name: resource.resource_name.to_string(),
                pattern_type: PatternType::from_code(resource.pattern_type)
                    .name()
                    .to_string(),
                principal: acl.principal.to_string(),
                host: acl.host.to_string(),
                operation: AclOperation::from_code(acl.operation).name().to_string(),
                permission: AclPermissionType::from_code(acl.permission_type)
                    .name()
                    .to_string(),
            })
        })
        .collect();
    acls.sort_by(|a, b| {
        (
            &a.resource_type,
            &a.resource_name,
            &a.principal,
            &a.operation,
        )
            .cmp(&(
                &b.resource_type,
                &b.resource_name,
                &b.principal,
                &b.operation,
            ))
    });
    Ok(Json(AclList { acls }))
}

pub(crate) async fn create_acl(
    State(console): State<Console>,
    Json(acl): Json<Acl>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let (broker, kafka) = console.client()?;
    let acl = acl.binding()?;
    let request = CreateAclsRequest::default().with_creations(vec![
        AclCreation::default()
            .with_resource_type(acl.resource_type.code())
            .with_resource_name(StrBytes::from_string(acl.resource_name))
            .with_resource_pattern_type(acl.pattern_type.code())
            .with_principal(StrBytes::from_string(acl.principal))
            .with_host(StrBytes::from_string(acl.host))
            .with_operation(acl.operation.code())
            .with_permission_type(acl.permission.code()),
    ]);
    let answer: CreateAclsResponse = kafka
        .call(
            &broker,
            broker.config().node_id,
            (ApiKey::CreateAcls, 2),
            &request,
        )
        .await?;
    for result in &answer.results {
        check(result.error_code, result.error_message.as_deref()).map_err(ApiError::bad_request)?;
    }
    Ok((StatusCode::CREATED, Json(serde_json::json!({}))))
}

pub(crate) async fn delete_acl(
    State(console): State<Console>,
    Json(acl): Json<Acl>,
) -> Reply<serde_json::Value> {
    let (broker, kafka) = console.client()?;
    let acl = acl.binding()?;
    let request = DeleteAclsRequest::default().with_filters(vec![
        DeleteAclsFilter::default()
            .with_resource_type_filter(acl.resource_type.code())
            .with_resource_name_filter(Some(StrBytes::from_string(acl.resource_name)))
            .with_pattern_type_filter(acl.pattern_type.code())
            .with_principal_filter(Some(StrBytes::from_string(acl.principal)))
            .with_host_filter(Some(StrBytes::from_string(acl.host)))
            .with_operation(acl.operation.code())
            .with_permission_type(acl.permission.code()),
    ]);
    let answer: DeleteAclsResponse = kafka
        .call(
            &broker,
            broker.config().node_id,
            (ApiKey::DeleteAcls, 2),
            &request,
        )
        .await?;
    let mut deleted = 0;
    for result in &answer.filter_results {
        check(result.error_code, result.error_message.as_deref()).map_err(ApiError::bad_request)?;
        deleted += result.matching_acls.len();
    }
    Ok(Json(serde_json::json!({ "deleted": deleted })))
}
