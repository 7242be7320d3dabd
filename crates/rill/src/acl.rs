//! `rill acl add|remove|list`: ACLs through CreateAcls, DeleteAcls and
//! DescribeAcls, in the shape of Kafka's `kafka-acls`:
//!
//! ```text
//! rill acl add --allow-principal User:alice --operation Read --topic orders \
//!     --resource-pattern-type prefixed
//! rill acl remove --allow-principal User:alice --operation Read --topic orders
//! rill acl list --topic orders
//! ```
//!
//! Each resource (`--topic`, `--group`, `--transactional-id`, `--cluster`)
//! gets an ACL for each principal, host and operation given. Like the
//! other client commands it takes `--command-config FILE` and `-X`; its
//! principal needs ALTER (DESCRIBE to list) on the cluster, or to be in
//! super.users.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{ApiKey, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use rill_cluster::{AclOperation, AclPermissionType, PatternType, ResourceType};

use crate::client::ClientArgs;
use crate::connection::{Connection, refusal};

#[derive(Debug, Subcommand)]
pub(crate) enum AclCommand {
    /// Add ACLs: each principal may (or may not) perform each operation on
    /// each resource, from each host.
    Add(ChangeArgs),
    /// Remove the ACLs these flags select (without --operation or a
    /// principal: every ACL of the resources).
    Remove(ChangeArgs),
    /// List ACLs, of the given resources or all.
    List(ListArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rill acl add --allow-principal User:alice --operation Read --operation Describe --topic orders\n  \
    rill acl add --allow-principal User:alice --operation Write --topic orders- --resource-pattern-type prefixed\n  \
    rill acl add --deny-principal User:mallory --operation All --topic '*'\n  \
    rill acl add --allow-principal User:bob --operation Read --group billing")]
pub(crate) struct ChangeArgs {
    /// A principal allowed (User:NAME, User:* for anyone); repeatable.
    #[arg(long, value_name = "PRINCIPAL")]
    allow_principal: Vec<String>,
    /// A principal denied; repeatable. DENY wins over ALLOW.
    #[arg(long, value_name = "PRINCIPAL")]
    deny_principal: Vec<String>,
    /// The hosts the allowed principals may connect from (default: any).
    #[arg(long, value_name = "HOST")]
    allow_host: Vec<String>,
    /// The hosts the denied principals are denied from (default: any).
    #[arg(long, value_name = "HOST")]
    deny_host: Vec<String>,
    /// Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite or All; repeatable.
    #[arg(long)]
    operation: Vec<String>,
    #[command(flatten)]
    resources: ResourceArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only the ACLs of this principal.
    #[arg(long)]
    principal: Option<String>,
    #[command(flatten)]
    resources: ResourceArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ResourceArgs {
    /// A topic (`*`: every topic); repeatable.
    #[arg(long)]
    topic: Vec<String>,
    /// A consumer group (`*`: every group); repeatable.
    #[arg(long)]
    group: Vec<String>,
    /// A transactional id; repeatable.
    #[arg(long)]
    transactional_id: Vec<String>,
    /// The cluster.
    #[arg(long)]
    cluster: bool,
    /// literal or prefixed (list and remove: also any, match).
    #[arg(long, default_value = "literal")]
    resource_pattern_type: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) fn run(command: AclCommand) -> anyhow::Result<()> {
    match command {
        AclCommand::Add(args) => add(&args),
        AclCommand::Remove(args) => remove(&args),
        AclCommand::List(args) => list(&args),
    }
}

/// A resource named on the command line.
struct Resource {
    resource_type: ResourceType,
    name: String,
}

impl ResourceArgs {
    fn resources(&self) -> Vec<Resource> {
        let named = |resource_type, names: &[String]| {
            names
                .iter()
                .map(|name| Resource {
                    resource_type,
                    name: name.clone(),
                })
                .collect::<Vec<_>>()
        };
        let mut resources = named(ResourceType::Topic, &self.topic);
        resources.extend(named(ResourceType::Group, &self.group));
        resources.extend(named(ResourceType::TransactionalId, &self.transactional_id));
        if self.cluster {
            resources.push(Resource {
                resource_type: ResourceType::Cluster,
                name: rill_cluster::CLUSTER_RESOURCE_NAME.to_string(),
            });
        }
        resources
    }

    fn pattern_type(&self) -> anyhow::Result<PatternType> {
        match PatternType::from_name(&self.resource_pattern_type) {
            PatternType::Unknown => bail!(
                "--resource-pattern-type {:?}: literal, prefixed, any or match",
                self.resource_pattern_type
            ),
            known => Ok(known),
        }
    }

    fn connect(&self) -> anyhow::Result<Connection> {
        self.client.connect()
    }
}

/// An operation as kafka-acls writes it (`ClusterAction`) or as Kafka
/// names it (`CLUSTER_ACTION`).
fn operation(name: &str) -> anyhow::Result<AclOperation> {
    let mut kafka = String::new();
    for (i, c) in name.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() && !name.contains('_') {
            kafka.push('_');
        }
        kafka.push(c.to_ascii_uppercase());
    }
    match AclOperation::from_name(&kafka) {
        AclOperation::Unknown | AclOperation::Any => bail!(
            "--operation {name:?}: Read, Write, Create, Delete, Alter, Describe, ClusterAction, \
             DescribeConfigs, AlterConfigs, IdempotentWrite or All"
        ),
        known => Ok(known),
    }
}

/// Every (principal, host, permission) the flags give.
fn entries(args: &ChangeArgs) -> Vec<(String, String, AclPermissionType)> {
    let hosts = |given: &[String]| {
        if given.is_empty() {
            vec![rill_cluster::WILDCARD.to_string()]
        } else {
            given.to_vec()
        }
    };
    let mut out = Vec::new();
    for (principals, given_hosts, permission) in [
        (
            &args.allow_principal,
            &args.allow_host,
            AclPermissionType::Allow,
        ),
        (
            &args.deny_principal,
            &args.deny_host,
            AclPermissionType::Deny,
        ),
    ] {
        for principal in principals {
            for host in hosts(given_hosts) {
                out.push((principal.clone(), host, permission));
            }
        }
    }
    out
}

fn add(args: &ChangeArgs) -> anyhow::Result<()> {
    let resources = args.resources.resources();
    let pattern_type = args.resources.pattern_type()?;
    let entries = entries(args);
    if resources.is_empty() || entries.is_empty() || args.operation.is_empty() {
        bail!(
            "give a resource (--topic, --group, --transactional-id, --cluster), a principal (--allow-principal, --deny-principal) and an --operation"
        );
    }
    let operations = args
        .operation
        .iter()
        .map(|name| operation(name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut creations = Vec::new();
    for resource in &resources {
        for (principal, host, permission) in &entries {
            for operation in &operations {
                creations.push(
                    AclCreation::default()
                        .with_resource_type(resource.resource_type.code())
                        .with_resource_name(StrBytes::from_string(resource.name.clone()))
                        .with_resource_pattern_type(pattern_type.code())
                        .with_principal(StrBytes::from_string(principal.clone()))
                        .with_host(StrBytes::from_string(host.clone()))
                        .with_operation(operation.code())
                        .with_permission_type(permission.code()),
                );
            }
        }
    }
    let count = creations.len();
    let mut connection = args.resources.connect()?;
    let version = connection.version_for(ApiKey::CreateAcls, 3)?;
    let response = connection.call(
        version,
        &CreateAclsRequest::default().with_creations(creations),
    )?;
    let refusals: Vec<String> = response
        .results
        .iter()
        .filter(|r| r.error_code != 0)
        .map(|r| refusal(r.error_code, r.error_message.as_deref()))
        .collect();
    if !refusals.is_empty() {
        bail!(
            "{} of {count} ACLs refused: {}",
            refusals.len(),
            refusals.join("; ")
        );
    }
    eprintln!("{count} ACLs added");
    Ok(())
}

fn remove(args: &ChangeArgs) -> anyhow::Result<()> {
    let resources = args.resources.resources();
    if resources.is_empty() {
        bail!("give a resource (--topic, --group, --transactional-id, --cluster)");
    }
    let pattern_type = args.resources.pattern_type()?;
    let operations = if args.operation.is_empty() {
        vec![AclOperation::Any]
    } else {
        args.operation
            .iter()
            .map(|name| operation(name))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let entries: Vec<(Option<String>, Option<String>, AclPermissionType)> = {
        let given = entries(args);
        if given.is_empty() {
            vec![(None, None, AclPermissionType::Any)]
        } else {
            given
                .into_iter()
                .map(|(principal, host, permission)| (Some(principal), Some(host), permission))
                .collect()
        }
    };
    let mut filters = Vec::new();
    for resource in &resources {
        for (principal, host, permission) in &entries {
            for operation in &operations {
                filters.push(
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(resource.resource_type.code())
                        .with_resource_name_filter(Some(StrBytes::from_string(
                            resource.name.clone(),
                        )))
                        .with_pattern_type_filter(pattern_type.code())
                        .with_principal_filter(principal.clone().map(StrBytes::from_string))
                        .with_host_filter(host.clone().map(StrBytes::from_string))
                        .with_operation(operation.code())
                        .with_permission_type(permission.code()),
                );
            }
        }
    }
    let mut connection = args.resources.connect()?;
    let version = connection.version_for(ApiKey::DeleteAcls, 3)?;
    let response = connection.call(version, &DeleteAclsRequest::default().with_filters(filters))?;
    let mut removed = 0;
    for result in &response.filter_results {
        if result.error_code != 0 {
            bail!(
                "{}",
                refusal(result.error_code, result.error_message.as_deref())
            );
        }
        removed += result.matching_acls.len();
    }
    eprintln!("{removed} ACLs removed");
    Ok(())
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    let pattern_type = args.resources.pattern_type()?;
    let resources = args.resources.resources();
    // No resource: every ACL, of any pattern.
    let filters: Vec<(ResourceType, Option<String>, PatternType)> = if resources.is_empty() {
        vec![(ResourceType::Any, None, PatternType::Any)]
    } else {
        resources
            .into_iter()
            .map(|r| (r.resource_type, Some(r.name), pattern_type))
            .collect()
    };
    let mut connection = args.resources.connect()?;
    let version = connection.version_for(ApiKey::DescribeAcls, 3)?;
    let mut out = Vec::new();
    for (resource_type, name, pattern_type) in filters {
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(resource_type.code())
            .with_resource_name_filter(name.map(StrBytes::from_string))
            .with_pattern_type_filter(pattern_type.code())
            .with_principal_filter(args.principal.clone().map(StrBytes::from_string))
            .with_host_filter(None)
            .with_operation(AclOperation::Any.code())
            .with_permission_type(AclPermissionType::Any.code());
        let response = connection.call(version, &request)?;
        if response.error_code != 0 {
            bail!(
                "{}",
                refusal(response.error_code, response.error_message.as_deref())
            );
        }
        for resource in &response.resources {
            for acl in &resource.acls {
                out.push(vec![
                    ResourceType::from_code(resource.resource_type)
                        .name()
                        .to_string(),
                    resource.resource_name.to_string(),
                    PatternType::from_code(resource.pattern_type)
                        .name()
                        .to_string(),
                    acl.principal.to_string(),
                    acl.host.to_string(),
                    AclOperation::from_code(acl.operation).name().to_string(),
                    AclPermissionType::from_code(acl.permission_type)
                        .name()
                        .to_string(),
                ]);
            }
        }
    }
    let header = [
        "RESOURCE",
        "NAME",
        "PATTERN",
        "PRINCIPAL",
        "HOST",
        "OPERATION",
        "PERMISSION",
    ];
    crate::table::write_table(&mut std::io::stdout().lock(), &header, &out)
        .context("cannot write the list")
}
