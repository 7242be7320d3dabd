//! Access control lists and the authorization decision over them, with
//! the semantics of Kafka's `StandardAuthorizer` (KRaft mode). Pure logic,
//! no I/O: the metadata log holds the ACLs (`Command::CreateAcls`,
//! `Command::DeleteAcls`), every broker applies them to its [`Acls`], and
//! request handlers ask [`Acls::authorize`].
//!
//! An [`Acls`] is not thread-safe on its own: it lives in
//! [`ClusterMetadata`](crate::ClusterMetadata), which readers get as an
//! immutable snapshot.
//!
//! The rules, as Kafka's `StandardAuthorizerData` applies them:
//! - a super user (by its principal string, `User:alice`) may do anything;
//! - the ACLs that apply to a resource are those of its type whose pattern
//!   matches its name: LITERAL with the same name, LITERAL `*` (any name),
//!   and PREFIXED with a prefix of the name;
//! - of those, an ACL matches the request when its principal is the
//!   request's or `User:*`, its host is the client's address or `*`, and
//!   its operation is the requested one or ALL — or, for an ALLOW ACL
//!   only, one that implies it (READ, WRITE, DELETE and ALTER imply
//!   DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS);
//! - any matching DENY wins; else any matching ALLOW allows; else, when
//!   the resource has no applicable ACL at all (for anyone),
//!   `allow.everyone.if.no.acl.found` decides; else deny.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The host, and the LITERAL resource name, that match any.
pub const WILDCARD: &str = "*";
/// The principal that matches any principal (Kafka's
/// `StandardAuthorizerData.WILDCARD_PRINCIPAL`; only the `User` type has
/// a wildcard).
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The one name of the CLUSTER resource (Kafka's `CLUSTER_NAME`).
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";
/// The most ACLs one CreateAcls or DeleteAcls may add or remove: Kafka's
/// `QuorumController.MAX_RECORDS_PER_USER_OP`. Above it Kafka refuses the
/// whole request (POLICY_VIOLATION) and changes nothing; so does Rill.
pub const ACL_CHANGES_PER_COMMAND_MAX: usize = 10_000;

/// Defines one of Kafka's ACL enums: wire code (int8), Kafka's name
/// (also the serde form), `from_code` (unknown codes become `Unknown`, as
/// Kafka's `fromCode` does) and `from_name` (case-insensitive, as Kafka's
/// `fromString`).
macro_rules! kafka_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal, $kafka:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $kafka)] $variant, )+
        }

        impl $name {
            /// The value of a wire code; `Unknown` for a code Kafka does
            /// not define.
            pub fn from_code(code: i8) -> Self {
                match code {
                    $( $code => Self::$variant, )+
                    _ => Self::Unknown,
                }
            }

            /// The wire code.
            pub fn code(self) -> i8 {
                match self {
                    $( Self::$variant => $code, )+
                }
            }

            /// Kafka's name (`TRANSACTIONAL_ID`, `DESCRIBE_CONFIGS`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $kafka, )+
                }
            }

            /// The value named `name` in any case (`Read`, `READ`);
            /// `Unknown` for any other name.
            pub fn from_name(name: &str) -> Self {
                $( if name.eq_ignore_ascii_case($kafka) { return Self::$variant; } )+
                Self::Unknown
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_enum! {
    /// Kafka's `ResourceType`: what an ACL is about.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        /// Filters only.
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
}

kafka_enum! {
    /// Kafka's `PatternType`: how an ACL's resource name matches.
    PatternType {
        Unknown = 0, "UNKNOWN";
        /// Filters only: any pattern type, the name compared exactly.
        Any = 1, "ANY";
        /// Filters only: the patterns that would apply to the name
        /// (the literal name, the `*` wildcard, and prefixes of it).
        Match = 2, "MATCH";
        /// The name exactly, or any name if it is `*`.
        Literal = 3, "LITERAL";
        /// Every name that starts with it.
        Prefixed = 4, "PREFIXED";
    }
}

kafka_enum! {
    /// Kafka's `AclOperation`.
    AclOperation {
        Unknown = 0, "UNKNOWN";
        /// Filters only.
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        /// KIP-939; stored and matched like any other, so clients that
        /// know it can manage its ACLs.
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
}

kafka_enum! {
    /// Kafka's `AclPermissionType`.
    AclPermissionType {
        Unknown = 0, "UNKNOWN";
        /// Filters only.
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
}

/// One ACL: `principal` from `host` may (ALLOW) or may not (DENY) perform
/// `operation` on the resources of `resource_type` whose name matches
/// `resource_name` by `pattern_type`. A stored binding has passed
/// [`AclBinding::validate`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `Type:name`, e.g. `User:alice`; `User:*` is any principal.
    pub principal: String,
    /// The client's IP address as Kafka prints it ([`host_address`]), or
    /// `*` for any host.
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermissionType,
}

/// Why a binding cannot be stored. Every case is Kafka's
/// INVALID_REQUEST; the message is Kafka's, with what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidAcl {
    #[error("Invalid resourceType {found}: expected a concrete resource type")]
    ResourceType { found: ResourceType },
    #[error("Invalid patternType {found}: expected LITERAL or PREFIXED")]
    PatternType { found: PatternType },
    #[error("Invalid operation {found}: expected a concrete operation")]
    Operation { found: AclOperation },
    #[error("Invalid permissionType {found}: expected ALLOW or DENY")]
    Permission { found: AclPermissionType },
    #[error("Invalid empty resource name")]
    EmptyResourceName,
    #[error(
        "The only valid name for the CLUSTER resource is {CLUSTER_RESOURCE_NAME}, not {found:?}"
    )]
    ClusterResourceName { found: String },
    #[error("expected a string in format principalType:principalName but got {found:?}")]
    Principal { found: String },
}

impl AclBinding {
    /// Kafka's checks on a binding to create: those of
    /// `AclControlManager.validateNewAcl` (no UNKNOWN or ANY parts, a
    /// LITERAL or PREFIXED pattern, a non-empty name), of
    /// `AclApis.handleCreateAcls` (the CLUSTER resource is named
    /// `kafka-cluster`), and a principal `StandardAcl` can parse.
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        if matches!(
            self.resource_type,
            ResourceType::Unknown | ResourceType::Any
        ) {
            return Err(InvalidAcl::ResourceType {
                found: self.resource_type,
            });
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Err(InvalidAcl::PatternType {
                found: self.pattern_type,
            });
        }
        if matches!(self.operation, AclOperation::Unknown | AclOperation::Any) {
            return Err(InvalidAcl::Operation {
                found: self.operation,
            });
        }
        if !matches!(
            self.permission,
            AclPermissionType::Allow | AclPermissionType::Deny
        ) {
            return Err(InvalidAcl::Permission {
                found: self.permission,
            });
        }
        if self.resource_name.is_empty() {
            return Err(InvalidAcl::EmptyResourceName);
        }
        if self.resource_type == ResourceType::Cluster
            && self.resource_name != CLUSTER_RESOURCE_NAME
        {
            return Err(InvalidAcl::ClusterResourceName {
                found: self.resource_name.clone(),
            });
        }
        // Kafka splits at the first colon and accepts an empty type or
        // name; such a principal can never be a session's, so Rill
        // refuses it rather than store an ACL that cannot match.
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
            _ => Err(InvalidAcl::Principal {
                found: self.principal.clone(),
            }),
        }
    }
}

/// Which resource patterns a filter selects (Kafka's
/// `ResourcePatternFilter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourcePatternFilter {
    /// `Any`: every type.
    pub resource_type: ResourceType,
    /// `None`: every name.
    pub name: Option<String>,
    /// `Any`: every pattern type, `name` compared exactly. `Match`: the
    /// patterns that would apply to a resource called `name`. LITERAL or
    /// PREFIXED: that pattern type, `name` compared exactly.
    pub pattern_type: PatternType,
}

impl ResourcePatternFilter {
    /// Kafka's `ResourcePatternFilter.matches`.
    pub fn matches(
        &self,
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
    ) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != pattern_type
        {
            return false;
        }
        let Some(filter_name) = &self.name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == pattern_type {
            return filter_name == name;
        }
        // MATCH: would a resource called `filter_name` be covered?
        match pattern_type {
            PatternType::Literal => filter_name == name || name == WILDCARD,
            PatternType::Prefixed => filter_name.starts_with(name),
            // Stored patterns are LITERAL or PREFIXED only.
            PatternType::Unknown | PatternType::Any | PatternType::Match => false,
        }
    }
}

/// Which ACLs a DescribeAcls or DeleteAcls selects (Kafka's
/// `AclBindingFilter`: a `ResourcePatternFilter` and an
/// `AccessControlEntryFilter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclBindingFilter {
    pub pattern: ResourcePatternFilter,
    /// `None`: any principal. Compared exactly: `User:*` selects only the
    /// wildcard ACLs.
    pub principal: Option<String>,
    /// `None`: any host. Compared exactly, like `principal`.
    pub host: Option<String>,
    /// `Any`: every operation.
    pub operation: AclOperation,
    /// `Any`: both permissions.
    pub permission: AclPermissionType,
}

/// Why a filter cannot be used: an UNKNOWN part (Kafka's
/// `AclControlManager.validateFilter` and `DescribeAclsRequest`), which
/// Kafka answers with INVALID_REQUEST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidAclFilter {
    #[error("Unknown patternFilter: expected a known resource type, found UNKNOWN")]
    UnknownResourceType,
    #[error("Unknown patternFilter: expected a known pattern type, found UNKNOWN")]
    UnknownPatternType,
    #[error("Unknown entryFilter: expected a known operation, found UNKNOWN")]
    UnknownOperation,
    #[error("Unknown entryFilter: expected a known permission type, found UNKNOWN")]
    UnknownPermission,
}

impl AclBindingFilter {
    /// The filter that selects every ACL.
    pub const ANY: AclBindingFilter = AclBindingFilter {
        pattern: ResourcePatternFilter {
            resource_type: ResourceType::Any,
            name: None,
            pattern_type: PatternType::Any,
        },
        principal: None,
        host: None,
        operation: AclOperation::Any,
        permission: AclPermissionType::Any,
    };

    /// Refuses a filter with an UNKNOWN part, as Kafka does.
    pub fn validate(&self) -> Result<(), InvalidAclFilter> {
        if self.pattern.resource_type == ResourceType::Unknown {
            return Err(InvalidAclFilter::UnknownResourceType);
        }
        if self.pattern.pattern_type == PatternType::Unknown {
            return Err(InvalidAclFilter::UnknownPatternType);
        }
        if self.operation == AclOperation::Unknown {
            return Err(InvalidAclFilter::UnknownOperation);
        }
        if self.permission == AclPermissionType::Unknown {
            return Err(InvalidAclFilter::UnknownPermission);
        }
        Ok(())
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.pattern.matches(
            binding.resource_type,
            &binding.resource_name,
            binding.pattern_type,
        ) && self.matches_entry(
            &binding.principal,
            &binding.host,
            binding.operation,
            binding.permission,
        )
    }

    /// Kafka's `AccessControlEntryFilter.matches`.
    fn matches_entry(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        permission: AclPermissionType,
    ) -> bool {
        self.principal.as_deref().is_none_or(|p| p == principal)
            && self.host.as_deref().is_none_or(|h| h == host)
            && (self.operation == AclOperation::Any || self.operation == operation)
            && (self.permission == AclPermissionType::Any || self.permission == permission)
    }
}

/// Refuses a whole CreateAcls or DeleteAcls that would add or remove more
/// than [`ACL_CHANGES_PER_COMMAND_MAX`] ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request would change {changes} ACLs, at most {max} may change at once")]
pub(crate) struct TooManyAclChanges {
    pub(crate) changes: usize,
    pub(crate) max: usize,
}

/// The access-control part of an ACL (Kafka's `AccessControlEntry`),
/// stored under its resource pattern. Its order (field order) is the order
/// of describe and delete answers: deterministic on every controller.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ace {
    principal: String,
    host: String,
    operation: AclOperation,
    permission: AclPermissionType,
}

impl Ace {
    /// Kafka's `StandardAuthorizerData.findResult`: this ACL's permission
    /// if it applies to the request, `None` if it does not. The resource
    /// has been matched already.
    fn decide(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
    ) -> Option<AclPermissionType> {
        if self.principal != principal && self.principal != WILDCARD_PRINCIPAL {
            return None;
        }
        if self.host != WILDCARD && self.host != host {
            return None;
        }
        if self.operation != AclOperation::All {
            let applies = if self.permission == AclPermissionType::Allow {
                implies(self.operation, operation)
            } else {
                // A DENY of READ does not deny DESCRIBE: implication is
                // for ALLOW ACLs only.
                self.operation == operation
            };
            if !applies {
                return None;
            }
        }
        Some(self.permission)
    }
}

/// Whether an ALLOW of `granted` allows `requested`.
fn implies(granted: AclOperation, requested: AclOperation) -> bool {
    use AclOperation::{Alter, AlterConfigs, Delete, Describe, DescribeConfigs, Read, Write};
    match requested {
        Describe => matches!(granted, Describe | Read | Write | Delete | Alter),
        DescribeConfigs => matches!(granted, DescribeConfigs | AlterConfigs),
        _ => granted == requested,
    }
}

/// The ACLs of one resource type, indexed for [`Acls::authorize`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TypeAcls {
    /// By LITERAL name (the wildcard `*` among them). No set is empty.
    literal: BTreeMap<String, BTreeSet<Ace>>,
    /// By PREFIXED name. No set is empty.
    prefixed: BTreeMap<String, BTreeSet<Ace>>,
    /// How many keys of `prefixed` have each length in bytes: a name can
    /// only be covered by prefixes of these lengths, so authorizing looks
    /// up only those instead of walking every prefixed pattern.
    prefix_lengths: BTreeMap<usize, usize>,
}

impl TypeAcls {
    fn patterns(&mut self, pattern_type: PatternType) -> &mut BTreeMap<String, BTreeSet<Ace>> {
        if pattern_type == PatternType::Prefixed {
            &mut self.prefixed
        } else {
            &mut self.literal
        }
    }

    /// The ACL sets whose pattern covers `name`: the literal name, the
    /// literal wildcard, and every prefixed pattern that is a prefix of
    /// `name`.
    fn covering<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a BTreeSet<Ace>> + 'a {
        let wildcard = (name != WILDCARD)
            .then(|| self.literal.get(WILDCARD))
            .flatten();
        let prefixes = self
            .prefix_lengths
            .range(..=name.len())
            .filter_map(move |(&len, _)| name.get(..len))
            .filter_map(move |prefix| self.prefixed.get(prefix));
        self.literal
            .get(name)
            .into_iter()
            .chain(wildcard)
            .chain(prefixes)
    }
}

/// Every ACL of the cluster, indexed by resource type and pattern.
///
/// Serialized (in snapshots) as the sorted list of its bindings, which are
/// validated again when read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<AclBinding>", into = "Vec<AclBinding>")]
pub struct Acls {
    by_type: BTreeMap<ResourceType, TypeAcls>,
    len: usize,
}

impl Acls {
    /// How many ACLs there are.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether exactly this ACL exists.
    pub fn contains(&self, binding: &AclBinding) -> bool {
        let ace = ace_of(binding);
        self.by_type
            .get(&binding.resource_type)
            .is_some_and(|acls| {
                let patterns = if binding.pattern_type == PatternType::Prefixed {
                    &acls.prefixed
                } else {
                    &acls.literal
                };
                patterns
                    .get(&binding.resource_name)
                    .is_some_and(|set| set.contains(&ace))
            })
    }

    /// Every ACL, sorted by resource type, pattern type, resource name,
    /// then principal, host, operation and permission.
    pub fn iter(&self) -> impl Iterator<Item = AclBinding> + '_ {
        static ANY: AclBindingFilter = AclBindingFilter::ANY;
        self.selected(&ANY)
    }

    /// The ACLs `filter` selects, sorted as [`Acls::iter`]: DescribeAcls's
    /// answer. The caller validates the filter first
    /// ([`AclBindingFilter::validate`]). Cost: every pattern of the
    /// filter's resource type (of every type for ANY) is tested, and the
    /// ACLs of the patterns that pass; describing is an administrator's
    /// rare request.
    pub fn describe(&self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        self.selected(filter).collect()
    }

    fn selected<'a>(
        &'a self,
        filter: &'a AclBindingFilter,
    ) -> impl Iterator<Item = AclBinding> + 'a {
        let wanted = filter.pattern.resource_type;
        self.by_type
            .iter()
            .filter(move |(t, _)| wanted == ResourceType::Any || **t == wanted)
            .flat_map(|(&resource_type, acls)| {
                let literal = acls
                    .literal
                    .iter()
                    .map(|(name, set)| (name, PatternType::Literal, set));
                let prefixed = acls
                    .prefixed
                    .iter()
                    .map(|(name, set)| (name, PatternType::Prefixed, set));
                literal
                    .chain(prefixed)
                    .map(move |(name, pattern_type, set)| (resource_type, name, pattern_type, set))
            })
            .filter(|(resource_type, name, pattern_type, _)| {
                filter.pattern.matches(*resource_type, name, *pattern_type)
            })
            .flat_map(move |(resource_type, name, pattern_type, set)| {
                set.iter()
                    .filter(|ace| {
                        filter.matches_entry(
                            &ace.principal,
                            &ace.host,
                            ace.operation,
                            ace.permission,
                        )
                    })
                    .map(move |ace| AclBinding {
                        resource_type,
                        resource_name: name.clone(),
                        pattern_type,
                        principal: ace.principal.clone(),
                        host: ace.host.clone(),
                        operation: ace.operation,
                        permission: ace.permission,
                    })
            })
    }

    /// Whether `principal` (`Type:name`, as the session authenticated it)
    /// connected from `host` (its IP address as [`host_address`] prints it)
    /// may perform `operation` on the resource of `resource_type` named
    /// `resource_name`: Kafka's `StandardAuthorizer.authorize` for one
    /// action on a literal resource. `super_users` is `super.users` split
    /// at `;` (`User:admin`); `allow_everyone_if_no_acl_found` is the
    /// broker config of that name.
    ///
    /// Cost: O((2 + P) log N + M) string comparisons, where N is the number
    /// of patterns of `resource_type`, P the number of distinct lengths of
    /// its PREFIXED names that are no longer than `resource_name`, and M
    /// the number of ACLs on the patterns that cover the resource (the
    /// scan stops at the first matching DENY). It never walks ACLs of
    /// other resources. It allocates nothing.
    #[allow(
        clippy::too_many_arguments,
        reason = "the request (principal, host, operation, resource) and the two authorizer configs, as Kafka's authorizer takes them"
    )]
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        resource_name: &str,
        super_users: &[String],
        allow_everyone_if_no_acl_found: bool,
    ) -> bool {
        if super_users.iter().any(|user| user == principal) {
            return true;
        }
        let Some(acls) = self.by_type.get(&resource_type) else {
            return allow_everyone_if_no_acl_found;
        };
        let mut resource_has_acls = false;
        let mut allowed = false;
        for set in acls.covering(resource_name) {
            resource_has_acls |= !set.is_empty();
            for ace in set {
                match ace.decide(principal, host, operation) {
                    Some(AclPermissionType::Deny) => return false,
                    Some(AclPermissionType::Allow) => allowed = true,
                    _ => {}
                }
            }
        }
        // No ACL for anyone on this resource: the default. ACLs for
        // others but none for this request: denied.
        allowed || (!resource_has_acls && allow_everyone_if_no_acl_found)
    }

    /// Whether `principal` from `host` may perform `operation` on some
    /// resource of `resource_type`: Kafka's
    /// `Authorizer.authorizeByResourceType` (KIP-679; InitProducerId asks
    /// it for WRITE on topics). Allowed if the principal may act on a
    /// resource named by no ACL in particular (a super user, a wildcard
    /// ALLOW, or `allow_everyone_if_no_acl_found` where nothing covers
    /// it), or if some ALLOW of the principal's (or `User:*`) for that
    /// operation or ALL, from its host, is not dominated by a DENY: a
    /// LITERAL `*` DENY dominates everything, a LITERAL DENY its own name,
    /// and a PREFIXED DENY every pattern that starts with its prefix.
    pub fn authorize_by_resource_type(
        &self,
        (principal, host): (&str, &str),
        operation: AclOperation,
        resource_type: ResourceType,
        super_users: &[String],
        allow_everyone_if_no_acl_found: bool,
    ) -> bool {
        // Kafka asks about a made-up literal name first.
        if self.authorize(
            principal,
            host,
            operation,
            resource_type,
            "hardcode",
            super_users,
            allow_everyone_if_no_acl_found,
        ) {
            return true;
        }
        let Some(acls) = self.by_type.get(&resource_type) else {
            return false;
        };
        let mut allowed: Vec<(&str, PatternType)> = Vec::new();
        let mut denied_literal: BTreeSet<&str> = BTreeSet::new();
        let mut denied_prefixes: BTreeSet<&str> = BTreeSet::new();
        for (patterns, pattern_type) in [
            (&acls.literal, PatternType::Literal),
            (&acls.prefixed, PatternType::Prefixed),
        ] {
            for (name, set) in patterns {
                for ace in set {
                    let mine = (ace.principal == principal || ace.principal == WILDCARD_PRINCIPAL)
                        && (ace.host == WILDCARD || ace.host == host)
                        && (ace.operation == operation || ace.operation == AclOperation::All);
                    if !mine {
                        continue;
                    }
                    match (ace.permission, pattern_type) {
                        (AclPermissionType::Deny, PatternType::Literal) if name == WILDCARD => {
                            return false;
                        }
                        (AclPermissionType::Deny, PatternType::Literal) => {
                            denied_literal.insert(name);
                        }
                        (AclPermissionType::Deny, _) => {
                            denied_prefixes.insert(name);
                        }
                        (AclPermissionType::Allow, PatternType::Literal) if name == WILDCARD => {
                            return true;
                        }
                        (AclPermissionType::Allow, _) => allowed.push((name, pattern_type)),
                        _ => {}
                    }
                }
            }
        }
        allowed.into_iter().any(|(name, pattern_type)| {
            let literally_denied =
                pattern_type == PatternType::Literal && denied_literal.contains(name);
            let prefix_denied = name
                .char_indices()
                .map(|(at, c)| &name[..at + c.len_utf8()])
                .any(|prefix| denied_prefixes.contains(prefix));
            !literally_denied && !prefix_denied
        })
    }

    /// Adds one valid ACL; false if it was there already.
    fn insert(&mut self, binding: &AclBinding) -> bool {
        let acls = self.by_type.entry(binding.resource_type).or_default();
        let prefixed = binding.pattern_type == PatternType::Prefixed;
        let patterns = acls.patterns(binding.pattern_type);
        let new_pattern = !patterns.contains_key(&binding.resource_name);
        let inserted = patterns
            .entry(binding.resource_name.clone())
            .or_default()
            .insert(ace_of(binding));
        if prefixed && new_pattern {
            *acls
                .prefix_lengths
                .entry(binding.resource_name.len())
                .or_default() += 1;
        }
        if inserted {
            self.len += 1;
        }
        inserted
    }

    /// Removes one ACL; false if it was not there.
    fn remove(&mut self, binding: &AclBinding) -> bool {
        let Some(acls) = self.by_type.get_mut(&binding.resource_type) else {
            return false;
        };
        let patterns = acls.patterns(binding.pattern_type);
        let Some(set) = patterns.get_mut(&binding.resource_name) else {
            return false;
        };
        if !set.remove(&ace_of(binding)) {
            return false;
        }
        self.len -= 1;
        if set.is_empty() {
            patterns.remove(&binding.resource_name);
            if binding.pattern_type == PatternType::Prefixed {
                let len = binding.resource_name.len();
                if let Some(count) = acls.prefix_lengths.get_mut(&len) {
                    *count -= 1;
                    if *count == 0 {
                        acls.prefix_lengths.remove(&len);
                    }
                }
            }
            if acls.literal.is_empty() && acls.prefixed.is_empty() {
                self.by_type.remove(&binding.resource_type);
            }
        }
        true
    }

    /// Applies a CreateAcls: each binding is stored if valid (an existing
    /// one counts as created, as in Kafka) and gets its own result, in
    /// order. Refused whole, changing nothing, if it would add more than
    /// [`ACL_CHANGES_PER_COMMAND_MAX`] ACLs.
    pub(crate) fn create(
        &mut self,
        bindings: &[AclBinding],
    ) -> Result<Vec<Result<(), InvalidAcl>>, TooManyAclChanges> {
        let results: Vec<_> = bindings.iter().map(AclBinding::validate).collect();
        let new: BTreeSet<&AclBinding> = bindings
            .iter()
            .zip(&results)
            .filter(|(binding, result)| result.is_ok() && !self.contains(binding))
            .map(|(binding, _)| binding)
            .collect();
        if new.len() > ACL_CHANGES_PER_COMMAND_MAX {
            return Err(TooManyAclChanges {
                changes: new.len(),
                max: ACL_CHANGES_PER_COMMAND_MAX,
            });
        }
        for binding in new {
            self.insert(binding);
        }
        Ok(results)
    }

    /// Applies a DeleteAcls: per filter, the ACLs it selected (sorted) and
    /// removed, or why the filter is invalid. Every filter selects from
    /// the ACLs as they were before the command, so an ACL two filters
    /// select is reported by both, as in Kafka. Refused whole, changing
    /// nothing, if it would remove more than [`ACL_CHANGES_PER_COMMAND_MAX`].
    #[allow(
        clippy::type_complexity,
        reason = "the per-filter answer of DeleteAcls, spelled out"
    )]
    pub(crate) fn delete(
        &mut self,
        filters: &[AclBindingFilter],
    ) -> Result<Vec<Result<Vec<AclBinding>, InvalidAclFilter>>, TooManyAclChanges> {
        let results: Vec<_> = filters
            .iter()
            .map(|filter| filter.validate().map(|()| self.describe(filter)))
            .collect();
        let doomed: BTreeSet<&AclBinding> = results.iter().flatten().flatten().collect();
        if doomed.len() > ACL_CHANGES_PER_COMMAND_MAX {
            return Err(TooManyAclChanges {
                changes: doomed.len(),
                max: ACL_CHANGES_PER_COMMAND_MAX,
            });
        }
        let doomed: Vec<AclBinding> = doomed.into_iter().cloned().collect();
        for binding in &doomed {
            self.remove(binding);
        }
        Ok(results)
    }
}

fn ace_of(binding: &AclBinding) -> Ace {
    Ace {
        principal: binding.principal.clone(),
        host: binding.host.clone(),
        operation: binding.operation,
        permission: binding.permission,
    }
}

impl TryFrom<Vec<AclBinding>> for Acls {
    type Error = InvalidAcl;

    /// Reads ACLs back from a snapshot, checking each again.
    fn try_from(bindings: Vec<AclBinding>) -> Result<Acls, InvalidAcl> {
        let mut acls = Acls::default();
        for binding in &bindings {
            binding.validate()?;
            acls.insert(binding);
        }
        Ok(acls)
    }
}

impl From<Acls> for Vec<AclBinding> {
    fn from(acls: Acls) -> Vec<AclBinding> {
        acls.iter().collect()
    }
}

/// A client's address as Kafka's authorizer sees it (Java's
/// `InetAddress.getHostAddress`), which is what ACL hosts are compared
/// with: IPv4 dotted; IPv6 as eight groups of lowercase hex without
/// leading zeros or `::` compression (`0:0:0:0:0:0:0:1`); an IPv4-mapped
/// IPv6 address (a dual-stack listener's IPv4 client) as the IPv4 address,
/// since Java turns those into `Inet4Address`.
pub fn host_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6
                .segments()
                .iter()
                .map(|segment| format!("{segment:x}"))
                .collect::<Vec<_>>()
                .join(":"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use AclOperation as Op;
    use AclPermissionType::{Allow, Deny};
    use PatternType::{Literal, Prefixed};
    use ResourceType::{Cluster, Group, Topic};

    fn acl(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        operation: AclOperation,
        permission: AclPermissionType,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.to_owned(),
            pattern_type,
            principal: principal.to_owned(),
            host: WILDCARD.to_owned(),
            operation,
            permission,
        }
    }

    fn store(bindings: &[AclBinding]) -> Acls {
        let mut acls = Acls::default();
        let results = acls.create(bindings).unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        acls
    }

    /// Authorizes `User:alice` from 10.0.0.1, no super users, default deny.
    fn alice_may(
        acls: &Acls,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        acls.authorize(
            "User:alice",
            "10.0.0.1",
            operation,
            resource_type,
            name,
            &[],
            false,
        )
    }

    #[test]
    fn by_resource_type_an_allow_counts_unless_a_deny_dominates_it() {
        let by_type = |acls: &Acls| {
            acls.authorize_by_resource_type(
                ("User:alice", "10.0.0.1"),
                Op::Write,
                Topic,
                &[],
                false,
            )
        };
        // No ACL: denied (allow.everyone off); WRITE on one topic: allowed.
        assert!(!by_type(&Acls::default()));
        let write_orders = acl(Topic, "orders", Literal, "User:alice", Op::Write, Allow);
        assert!(by_type(&store(std::slice::from_ref(&write_orders))));
        // ... unless that very topic, or a prefix of it, or every topic is
        // denied.
        for deny in [
            acl(Topic, "orders", Literal, "User:alice", Op::Write, Deny),
            acl(Topic, "ord", Prefixed, "User:*", Op::All, Deny),
            acl(Topic, "*", Literal, "User:alice", Op::Write, Deny),
        ] {
            assert!(
                !by_type(&store(&[write_orders.clone(), deny.clone()])),
                "{deny:?}"
            );
        }
        // A DENY elsewhere leaves it allowed; so does a DENY of another
        // operation.
        for other in [
            acl(Topic, "payments", Literal, "User:alice", Op::Write, Deny),
            acl(Topic, "orders", Literal, "User:alice", Op::Read, Deny),
        ] {
            assert!(
                by_type(&store(&[write_orders.clone(), other.clone()])),
                "{other:?}"
            );
        }
        // A prefixed ALLOW counts; a longer prefixed DENY does not dominate it.
        let write_prefix = acl(Topic, "orders-", Prefixed, "User:alice", Op::Write, Allow);
        let deny_longer = acl(Topic, "orders-eu", Prefixed, "User:alice", Op::Write, Deny);
        assert!(by_type(&store(&[write_prefix, deny_longer])));
        // Super users may; allow.everyone applies where no ACL covers.
        assert!(Acls::default().authorize_by_resource_type(
            ("User:root", "h"),
            Op::Write,
            Topic,
            &["User:root".to_owned()],
            false
        ));
        assert!(Acls::default().authorize_by_resource_type(
            ("User:x", "h"),
            Op::Write,
            Topic,
            &[],
            true
        ));
    }

    #[test]
    fn codes_and_names_are_kafkas() {
        assert_eq!(ResourceType::from_code(5), ResourceType::TransactionalId);
        assert_eq!(ResourceType::TransactionalId.name(), "TRANSACTIONAL_ID");
        assert_eq!(ResourceType::User.code(), 7);
        assert_eq!(PatternType::from_code(4), Prefixed);
        assert_eq!(PatternType::Match.code(), 2);
        assert_eq!(Op::from_code(9), Op::ClusterAction);
        assert_eq!(Op::DescribeTokens.code(), 14);
        assert_eq!(Op::from_name("describe_configs"), Op::DescribeConfigs);
        assert_eq!(Op::from_name("Read"), Op::Read);
        assert_eq!(Op::from_name("nonsense"), Op::Unknown);
        assert_eq!(AclPermissionType::from_code(3), Allow);
        assert_eq!(AclPermissionType::from_code(-1), AclPermissionType::Unknown);
        assert_eq!(ResourceType::from_code(42), ResourceType::Unknown);
        for code in 0..=15 {
            assert_eq!(Op::from_code(code).code(), code);
        }
        assert_eq!(
            serde_json::to_string(&Op::IdempotentWrite).unwrap(),
            "\"IDEMPOTENT_WRITE\""
        );
    }

    #[test]
    fn an_allow_allows_only_its_principal_operation_and_resource() {
        let acls = store(&[acl(
            Topic,
            "orders",
            Literal,
            "User:alice",
            Op::Write,
            Allow,
        )]);
        assert!(alice_may(&acls, Op::Write, Topic, "orders"));
        assert!(!alice_may(&acls, Op::Read, Topic, "orders"));
        assert!(!alice_may(&acls, Op::Write, Topic, "orders2"));
        assert!(!alice_may(&acls, Op::Write, Group, "orders"));
        assert!(!acls.authorize(
            "User:bob",
            "10.0.0.1",
            Op::Write,
            Topic,
            "orders",
            &[],
            false
        ));
    }

    #[test]
    fn deny_wins_over_allow_wherever_it_comes_from() {
        // The DENY on a prefix beats the literal ALLOW, the wildcard one
        // and ALL.
        let acls = store(&[
            acl(Topic, "orders", Literal, "User:alice", Op::All, Allow),
            acl(Topic, "*", Literal, "User:alice", Op::Read, Allow),
            acl(Topic, "ord", Prefixed, "User:*", Op::Read, Deny),
        ]);
        assert!(!alice_may(&acls, Op::Read, Topic, "orders"));
        assert!(alice_may(&acls, Op::Write, Topic, "orders"));
        // A DENY of ALL denies everything, even DESCRIBE.
        let acls = store(&[
            acl(Topic, "t", Literal, "User:alice", Op::Read, Allow),
            acl(Topic, "t", Literal, "User:alice", Op::All, Deny),
        ]);
        assert!(!alice_may(&acls, Op::Read, Topic, "t"));
        assert!(!alice_may(&acls, Op::Describe, Topic, "t"));
    }

    #[test]
    fn read_write_delete_alter_imply_describe_and_alter_configs_implies_describe_configs() {
        for granted in [Op::Read, Op::Write, Op::Delete, Op::Alter, Op::Describe] {
            let acls = store(&[acl(Topic, "t", Literal, "User:alice", granted, Allow)]);
            assert!(alice_may(&acls, Op::Describe, Topic, "t"), "{granted}");
            assert!(
                !alice_may(&acls, Op::DescribeConfigs, Topic, "t"),
                "{granted}"
            );
        }
        for granted in [
            Op::Create,
            Op::ClusterAction,
            Op::IdempotentWrite,
            Op::AlterConfigs,
        ] {
            let acls = store(&[acl(Topic, "t", Literal, "User:alice", granted, Allow)]);
            assert!(!alice_may(&acls, Op::Describe, Topic, "t"), "{granted}");
        }
        let acls = store(&[acl(
            Topic,
            "t",
            Literal,
            "User:alice",
            Op::AlterConfigs,
            Allow,
        )]);
        assert!(alice_may(&acls, Op::DescribeConfigs, Topic, "t"));
        // Implication is one way: DESCRIBE does not give READ.
        let acls = store(&[acl(Topic, "t", Literal, "User:alice", Op::Describe, Allow)]);
        assert!(!alice_may(&acls, Op::Read, Topic, "t"));
        // ALL allows every operation.
        let acls = store(&[acl(
            Cluster,
            CLUSTER_RESOURCE_NAME,
            Literal,
            "User:alice",
            Op::All,
            Allow,
        )]);
        for op in [
            Op::ClusterAction,
            Op::Create,
            Op::IdempotentWrite,
            Op::DescribeConfigs,
        ] {
            assert!(alice_may(&acls, op, Cluster, CLUSTER_RESOURCE_NAME), "{op}");
        }
    }

    #[test]
    fn a_deny_does_not_imply_describe() {
        let acls = store(&[
            acl(Topic, "t", Literal, "User:alice", Op::Describe, Allow),
            acl(Topic, "t", Literal, "User:alice", Op::Read, Deny),
            acl(Topic, "t", Literal, "User:alice", Op::AlterConfigs, Deny),
            acl(
                Topic,
                "t",
                Literal,
                "User:alice",
                Op::DescribeConfigs,
                Allow,
            ),
        ]);
        assert!(alice_may(&acls, Op::Describe, Topic, "t"));
        assert!(alice_may(&acls, Op::DescribeConfigs, Topic, "t"));
        assert!(!alice_may(&acls, Op::Read, Topic, "t"));
    }

    #[test]
    fn prefixed_patterns_cover_names_that_start_with_them() {
        let acls = store(&[
            acl(Topic, "fin.", Prefixed, "User:alice", Op::Read, Allow),
            acl(Topic, "fin.secret", Prefixed, "User:alice", Op::Read, Deny),
            // A literal that is a prefix of the name does not cover it.
            acl(Topic, "fin.report", Literal, "User:alice", Op::Write, Allow),
        ]);
        assert!(alice_may(&acls, Op::Read, Topic, "fin."));
        assert!(alice_may(&acls, Op::Read, Topic, "fin.reports"));
        assert!(!alice_may(&acls, Op::Write, Topic, "fin.reports"));
        assert!(alice_may(&acls, Op::Write, Topic, "fin.report"));
        assert!(!alice_may(&acls, Op::Read, Topic, "fin.secret.x"));
        assert!(!alice_may(&acls, Op::Read, Topic, "fin"));
        assert!(!alice_may(&acls, Op::Read, Topic, "xfin.a"));
        // A prefixed `*` is a literal star, not a wildcard.
        let acls = store(&[acl(Topic, "*", Prefixed, "User:alice", Op::Read, Allow)]);
        assert!(!alice_may(&acls, Op::Read, Topic, "orders"));
        assert!(alice_may(&acls, Op::Read, Topic, "*orders"));
    }

    #[test]
    fn prefixes_match_on_character_boundaries_only() {
        let acls = store(&[acl(Group, "é", Prefixed, "User:alice", Op::Read, Allow)]);
        assert!(alice_may(&acls, Op::Read, Group, "éa"));
        assert!(
            !alice_may(&acls, Op::Read, Group, "ab"),
            "same byte length, other name"
        );
        assert!(!alice_may(&acls, Op::Read, Group, "e"));
    }

    #[test]
    fn the_literal_wildcard_covers_every_name_of_its_type() {
        let acls = store(&[acl(Group, "*", Literal, "User:alice", Op::Read, Allow)]);
        assert!(alice_may(&acls, Op::Read, Group, "any-group"));
        assert!(alice_may(&acls, Op::Describe, Group, "*"));
        assert!(!alice_may(&acls, Op::Read, Topic, "any-group"));
    }

    #[test]
    fn the_wildcard_principal_is_everyone_and_only_user_star_is_a_wildcard() {
        let acls = store(&[
            acl(Topic, "t", Literal, "User:*", Op::Read, Allow),
            acl(Topic, "u", Literal, "Group:*", Op::Read, Allow),
        ]);
        assert!(acls.authorize("User:bob", "h", Op::Read, Topic, "t", &[], false));
        assert!(acls.authorize("Group:ops", "h", Op::Read, Topic, "t", &[], false));
        assert!(!acls.authorize("Group:ops", "h", Op::Read, Topic, "u", &[], false));
        assert!(acls.authorize("Group:*", "h", Op::Read, Topic, "u", &[], false));
    }

    #[test]
    fn an_acl_applies_only_from_its_host_unless_it_is_star() {
        let mut from_host = acl(Topic, "t", Literal, "User:alice", Op::Read, Allow);
        from_host.host = "10.0.0.1".to_owned();
        let acls = store(&[from_host]);
        assert!(acls.authorize("User:alice", "10.0.0.1", Op::Read, Topic, "t", &[], false));
        assert!(!acls.authorize("User:alice", "10.0.0.2", Op::Read, Topic, "t", &[], false));
        // A DENY from one host leaves other hosts alone.
        let mut deny = acl(Topic, "t", Literal, "User:alice", Op::Read, Deny);
        deny.host = "10.0.0.9".to_owned();
        let acls = store(&[
            acl(Topic, "t", Literal, "User:alice", Op::Read, Allow),
            deny,
        ]);
        assert!(acls.authorize("User:alice", "10.0.0.1", Op::Read, Topic, "t", &[], false));
        assert!(!acls.authorize("User:alice", "10.0.0.9", Op::Read, Topic, "t", &[], false));
    }

    #[test]
    fn a_super_user_may_do_anything_even_when_denied() {
        let acls = store(&[acl(Topic, "t", Literal, "User:admin", Op::All, Deny)]);
        let supers = ["User:admin".to_owned()];
        assert!(acls.authorize("User:admin", "h", Op::Write, Topic, "t", &supers, false));
        assert!(acls.authorize(
            "User:admin",
            "h",
            Op::Alter,
            Cluster,
            CLUSTER_RESOURCE_NAME,
            &supers,
            false
        ));
        assert!(!acls.authorize("User:alice", "h", Op::Write, Topic, "t", &supers, false));
        // The principal type is part of the name.
        assert!(!acls.authorize("Group:admin", "h", Op::Write, Topic, "x", &supers, false));
    }

    #[test]
    fn allow_everyone_applies_only_to_resources_without_any_covering_acl() {
        let acls = store(&[
            acl(Topic, "owned", Literal, "User:bob", Op::Read, Allow),
            acl(Topic, "team.", Prefixed, "User:bob", Op::Read, Allow),
        ]);
        let may = |op, name| acls.authorize("User:alice", "h", op, Topic, name, &[], true);
        // No ACL covers it: everyone may.
        assert!(may(Op::Read, "free"));
        assert!(may(Op::Write, "free"));
        // An ACL for someone else covers it: denied, for any operation.
        assert!(!may(Op::Read, "owned"));
        assert!(!may(Op::Write, "owned"));
        assert!(!may(Op::Read, "team.x"));
        // An ACL on a name this one is a prefix of does not cover it.
        assert!(may(Op::Read, "team"));
        // Without the setting, no ACL means denied.
        assert!(!acls.authorize("User:alice", "h", Op::Read, Topic, "free", &[], false));
        // And a resource type with no ACL at all.
        assert!(acls.authorize("User:alice", "h", Op::Read, Group, "g", &[], true));
        assert!(!acls.authorize("User:alice", "h", Op::Read, Group, "g", &[], false));
        // The wildcard covers every name.
        let acls = store(&[acl(Topic, "*", Literal, "User:bob", Op::Read, Allow)]);
        assert!(!acls.authorize("User:alice", "h", Op::Read, Topic, "free", &[], true));
    }

    #[test]
    fn validation_refuses_what_kafka_refuses() {
        let good = acl(Topic, "t", Literal, "User:alice", Op::Read, Allow);
        assert_eq!(good.validate(), Ok(()));
        let with = |change: &dyn Fn(&mut AclBinding)| {
            let mut binding = good.clone();
            change(&mut binding);
            binding.validate()
        };
        for resource_type in [ResourceType::Any, ResourceType::Unknown] {
            assert_eq!(
                with(&|b| b.resource_type = resource_type),
                Err(InvalidAcl::ResourceType {
                    found: resource_type
                })
            );
        }
        for pattern_type in [PatternType::Any, PatternType::Match, PatternType::Unknown] {
            assert_eq!(
                with(&|b| b.pattern_type = pattern_type),
                Err(InvalidAcl::PatternType {
                    found: pattern_type
                })
            );
        }
        for operation in [Op::Any, Op::Unknown] {
            assert_eq!(
                with(&|b| b.operation = operation),
                Err(InvalidAcl::Operation { found: operation })
            );
        }
        for permission in [AclPermissionType::Any, AclPermissionType::Unknown] {
            assert_eq!(
                with(&|b| b.permission = permission),
                Err(InvalidAcl::Permission { found: permission })
            );
        }
        assert_eq!(
            with(&|b| b.resource_name.clear()),
            Err(InvalidAcl::EmptyResourceName)
        );
        let wrong_cluster = with(&|b| {
            b.resource_type = Cluster;
            b.resource_name = "my-cluster".to_owned();
        });
        assert_eq!(
            wrong_cluster,
            Err(InvalidAcl::ClusterResourceName {
                found: "my-cluster".to_owned()
            })
        );
        for principal in ["alice", "", ":alice", "User:"] {
            assert_eq!(
                with(&|b| b.principal = principal.to_owned()),
                Err(InvalidAcl::Principal {
                    found: principal.to_owned()
                }),
                "{principal:?}"
            );
        }
        // Other principal types, and names with colons, are fine.
        assert_eq!(with(&|b| b.principal = "Group:ops".to_owned()), Ok(()));
        assert_eq!(with(&|b| b.principal = "User:CN=a:b".to_owned()), Ok(()));
    }

    #[test]
    fn create_reports_each_binding_and_stores_only_the_valid_ones_once() {
        let mut acls = Acls::default();
        let good = acl(Topic, "t", Literal, "User:alice", Op::Read, Allow);
        let bad = acl(Topic, "", Literal, "User:alice", Op::Read, Allow);
        let results = acls.create(&[good.clone(), bad, good.clone()]).unwrap();
        assert_eq!(
            results,
            [Ok(()), Err(InvalidAcl::EmptyResourceName), Ok(())]
        );
        assert_eq!(acls.len(), 1);
        // Creating it again succeeds and changes nothing.
        assert_eq!(acls.create(std::slice::from_ref(&good)).unwrap(), [Ok(())]);
        assert_eq!(acls.len(), 1);
        assert!(acls.contains(&good));
    }

    #[test]
    fn a_create_or_delete_over_the_limit_changes_nothing() {
        let mut acls = Acls::default();
        let many: Vec<_> = (0..=ACL_CHANGES_PER_COMMAND_MAX)
            .map(|i| acl(Topic, &format!("t{i}"), Literal, "User:a", Op::Read, Allow))
            .collect();
        assert_eq!(
            acls.create(&many),
            Err(TooManyAclChanges {
                changes: ACL_CHANGES_PER_COMMAND_MAX + 1,
                max: ACL_CHANGES_PER_COMMAND_MAX
            })
        );
        assert!(acls.is_empty());
        // Existing ones do not count.
        acls.create(&many[1..]).unwrap();
        assert_eq!(acls.create(&many).unwrap().len(), many.len());
        assert_eq!(
            acls.delete(&[AclBindingFilter::ANY]),
            Err(TooManyAclChanges {
                changes: ACL_CHANGES_PER_COMMAND_MAX + 1,
                max: ACL_CHANGES_PER_COMMAND_MAX
            })
        );
        assert_eq!(acls.len(), ACL_CHANGES_PER_COMMAND_MAX + 1);
    }

    fn sample() -> (Acls, Vec<AclBinding>) {
        let bindings = vec![
            acl(Topic, "orders", Literal, "User:alice", Op::Read, Allow),
            acl(Topic, "orders", Literal, "User:bob", Op::Write, Deny),
            acl(Topic, "*", Literal, "User:carol", Op::Read, Allow),
            acl(Topic, "ord", Prefixed, "User:alice", Op::Describe, Allow),
            acl(Topic, "other", Prefixed, "User:alice", Op::Describe, Allow),
            acl(Group, "orders", Literal, "User:alice", Op::Read, Allow),
        ];
        (store(&bindings), bindings)
    }

    fn filter(
        resource_type: ResourceType,
        name: Option<&str>,
        pattern_type: PatternType,
    ) -> AclBindingFilter {
        AclBindingFilter {
            pattern: ResourcePatternFilter {
                resource_type,
                name: name.map(str::to_owned),
                pattern_type,
            },
            ..AclBindingFilter::ANY
        }
    }

    #[test]
    fn filters_select_as_kafkas_do() {
        let (acls, b) = sample();
        let names = |f: &AclBindingFilter| acls.describe(f);
        assert_eq!(names(&AclBindingFilter::ANY).len(), b.len());
        // MATCH: the patterns that cover the name.
        assert_eq!(
            names(&filter(Topic, Some("orders"), PatternType::Match)),
            [b[2].clone(), b[0].clone(), b[1].clone(), b[3].clone()]
        );
        // ANY: the exact name, whatever the pattern type.
        assert_eq!(
            names(&filter(ResourceType::Any, Some("orders"), PatternType::Any)),
            [b[0].clone(), b[1].clone(), b[5].clone()]
        );
        // A concrete pattern type: exactly that pattern.
        assert_eq!(names(&filter(Topic, Some("ord"), Prefixed)), [b[3].clone()]);
        assert!(names(&filter(Topic, Some("ord"), Literal)).is_empty());
        // LITERAL `*` selects only the wildcard ACLs.
        assert_eq!(names(&filter(Topic, Some("*"), Literal)), [b[2].clone()]);
        // No name: every pattern of the type.
        assert_eq!(
            names(&filter(Topic, None, Prefixed)),
            [b[3].clone(), b[4].clone()]
        );
        // Entry parts.
        let bob = AclBindingFilter {
            principal: Some("User:bob".to_owned()),
            ..AclBindingFilter::ANY
        };
        assert_eq!(names(&bob), [b[1].clone()]);
        let denies = AclBindingFilter {
            permission: Deny,
            ..AclBindingFilter::ANY
        };
        assert_eq!(names(&denies), [b[1].clone()]);
        let describes = AclBindingFilter {
            operation: Op::Describe,
            host: Some("*".to_owned()),
            ..AclBindingFilter::ANY
        };
        assert_eq!(names(&describes).len(), 2);
        let other_host = AclBindingFilter {
            host: Some("10.0.0.1".to_owned()),
            ..AclBindingFilter::ANY
        };
        assert!(names(&other_host).is_empty());
    }

    #[test]
    fn filters_with_unknown_parts_are_refused() {
        let mut f = AclBindingFilter::ANY;
        assert_eq!(f.validate(), Ok(()));
        f.pattern.pattern_type = PatternType::Unknown;
        assert_eq!(f.validate(), Err(InvalidAclFilter::UnknownPatternType));
        let f = AclBindingFilter {
            operation: Op::Unknown,
            ..AclBindingFilter::ANY
        };
        assert_eq!(f.validate(), Err(InvalidAclFilter::UnknownOperation));
    }

    #[test]
    fn delete_reports_per_filter_what_it_removed() {
        let (mut acls, b) = sample();
        let alice = AclBindingFilter {
            principal: Some("User:alice".to_owned()),
            ..filter(Topic, None, PatternType::Any)
        };
        let orders = filter(Topic, Some("orders"), Literal);
        let unknown = filter(ResourceType::Unknown, None, PatternType::Any);
        let results = acls.delete(&[alice, orders, unknown]).unwrap();
        assert_eq!(
            results,
            [
                Ok(vec![b[0].clone(), b[3].clone(), b[4].clone()]),
                // b[0] again: every filter sees the ACLs as they were.
                Ok(vec![b[0].clone(), b[1].clone()]),
                Err(InvalidAclFilter::UnknownResourceType),
            ]
        );
        assert_eq!(
            acls.iter().collect::<Vec<_>>(),
            [b[2].clone(), b[5].clone()]
        );
        // The prefix index forgot the removed patterns.
        assert!(acls.by_type[&Topic].prefix_lengths.is_empty());
        assert!(!alice_may(&acls, Op::Describe, Topic, "order"));
    }

    #[test]
    fn the_index_matches_a_scan_of_every_acl() {
        // A model: test every ACL against the resource, as Kafka's rules
        // say, and compare with the indexed answer.
        let names = ["a", "ab", "abc", "abd", "b", "*", "é", "éa"];
        let mut bindings = Vec::new();
        for (i, name) in names.iter().enumerate() {
            for pattern_type in [Literal, Prefixed] {
                let permission = if i % 3 == 0 { Deny } else { Allow };
                let op = [Op::Read, Op::Write, Op::All, Op::Describe][i % 4];
                let principal = if i % 2 == 0 { "User:alice" } else { "User:*" };
                bindings.push(acl(Topic, name, pattern_type, principal, op, permission));
            }
        }
        for n in 0..bindings.len() {
            let subset: Vec<_> = bindings.iter().step_by(n + 1).cloned().collect();
            let acls = store(&subset);
            for name in ["a", "ab", "abc", "abcd", "b", "ba", "*", "é", "éa", "z", ""] {
                for op in [Op::Read, Op::Write, Op::Describe, Op::Create] {
                    for default in [false, true] {
                        let expected = model(&subset, name, op, default);
                        let got = acls.authorize("User:alice", "h", op, Topic, name, &[], default);
                        assert_eq!(got, expected, "{name} {op} {default} over {subset:?}");
                    }
                }
            }
        }
    }

    fn model(bindings: &[AclBinding], name: &str, op: AclOperation, default: bool) -> bool {
        let covering: Vec<_> = bindings
            .iter()
            .filter(|b| match b.pattern_type {
                Literal => b.resource_name == name || b.resource_name == "*",
                _ => name.starts_with(&b.resource_name),
            })
            .collect();
        let decisions: Vec<_> = covering
            .iter()
            .filter_map(|b| ace_of(b).decide("User:alice", "h", op))
            .collect();
        if decisions.contains(&Deny) {
            false
        } else if decisions.contains(&Allow) {
            true
        } else {
            covering.is_empty() && default
        }
    }

    #[test]
    fn acls_round_trip_through_json_and_are_checked_when_read() {
        let (acls, _) = sample();
        let json = serde_json::to_string(&acls).unwrap();
        let back: Acls = serde_json::from_str(&json).unwrap();
        assert_eq!(back, acls);
        let invalid = r#"[{"resource_type":"ANY","resource_name":"t","pattern_type":"LITERAL",
            "principal":"User:a","host":"*","operation":"READ","permission":"ALLOW"}]"#;
        assert!(serde_json::from_str::<Acls>(invalid).is_err());
    }

    #[test]
    fn acl_commands_apply_through_the_metadata_and_answer_per_binding_and_filter() {
        use crate::{Applied, ClusterMetadata, Command, Rejection};
        let mut md = ClusterMetadata::default();
        let good = acl(Topic, "t", Literal, "User:alice", Op::Read, Allow);
        let bad = acl(Cluster, "c", Literal, "User:alice", Op::Alter, Allow);
        let create = Command::CreateAcls {
            bindings: vec![good.clone(), bad],
        };
        // Through the log's JSON, as every controller sees it.
        let create: Command =
            serde_json::from_slice(&serde_json::to_vec(&create).unwrap()).unwrap();
        let applied = md.apply(&create, 1).unwrap();
        assert_eq!(
            applied,
            Applied::AclsCreated {
                results: vec![
                    Ok(()),
                    Err(InvalidAcl::ClusterResourceName {
                        found: "c".to_owned()
                    })
                ]
            }
        );
        assert!(
            md.acls
                .authorize("User:alice", "h", Op::Read, Topic, "t", &[], false)
        );
        let delete = Command::DeleteAcls {
            filters: vec![AclBindingFilter::ANY],
        };
        assert_eq!(
            md.apply(&delete, 2).unwrap(),
            Applied::AclsDeleted {
                results: vec![Ok(vec![good])]
            }
        );
        assert!(md.acls.is_empty());
        let too_many = Command::CreateAcls {
            bindings: (0..=ACL_CHANGES_PER_COMMAND_MAX)
                .map(|i| acl(Topic, &format!("t{i}"), Literal, "User:a", Op::Read, Allow))
                .collect(),
        };
        assert_eq!(
            md.apply(&too_many, 3),
            Err(Rejection::TooManyAclChanges {
                changes: ACL_CHANGES_PER_COMMAND_MAX + 1,
                max: ACL_CHANGES_PER_COMMAND_MAX
            })
        );
        assert!(md.acls.is_empty());
    }

    #[test]
    fn host_addresses_are_printed_as_java_prints_them() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(host_address(ip("192.168.0.1")), "192.168.0.1");
        assert_eq!(host_address(ip("::1")), "0:0:0:0:0:0:0:1");
        assert_eq!(host_address(ip("fe80::0a:1")), "fe80:0:0:0:0:0:a:1");
        assert_eq!(host_address(ip("::ffff:10.1.2.3")), "10.1.2.3");
    }
}
