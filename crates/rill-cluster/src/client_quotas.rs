//! Client quotas (KIP-13, KIP-55, KIP-546, KIP-599) as metadata: the
//! quota values set for users, client ids and their pairs, with Kafka's
//! defaults, how AlterClientQuotas changes them, how
//! DescribeClientQuotas filters them, and which one applies to a client.
//! The brokers enforce them (rill-server's `quotas`); this is only what
//! is set.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Kafka's entity type names.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// One part of a quota entity: a name, or the default for its type
/// (Kafka's `<default>`, a null name on the wire).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    Default,
    Named(String),
}

impl EntityName {
    /// From the wire: null is the default.
    pub fn from_wire(name: Option<&str>) -> EntityName {
        match name {
            None => EntityName::Default,
            Some(name) => EntityName::Named(name.to_string()),
        }
    }

    /// For the wire: the default is null.
    pub fn to_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(name) => Some(name),
        }
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityName::Default => f.write_str("<default>"),
            EntityName::Named(name) => f.write_str(name),
        }
    }
}

/// What a quota is set for: a user, a client id, or a user's client id;
/// either part may be its type's default. At least one part is present.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<EntityName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<EntityName>,
}

impl QuotaEntity {
    /// The entity's (type, name) pairs as Kafka lists them.
    pub fn parts(&self) -> Vec<(&'static str, &EntityName)> {
        let mut parts = Vec::with_capacity(2);
        if let Some(user) = &self.user {
            parts.push((USER, user));
        }
        if let Some(client_id) = &self.client_id {
            parts.push((CLIENT_ID, client_id));
        }
        parts
    }

    /// Reads an entity off the wire: (entity type, name or null for the
    /// default), validated as Kafka's ClientQuotaControlManager does.
    pub fn from_wire(parts: &[(String, Option<String>)]) -> Result<QuotaEntity, InvalidQuota> {
        let mut entity = QuotaEntity {
            user: None,
            client_id: None,
        };
        if parts.is_empty() {
            return Err(InvalidQuota::new("Invalid empty client quota entity"));
        }
        for (entity_type, name) in parts {
            let slot = match entity_type.as_str() {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                IP => {
                    return Err(InvalidQuota::new(
                        "IP quotas (connection_creation_rate) are not supported",
                    ));
                }
                other => {
                    return Err(InvalidQuota(format!(
                        "Unhandled client quota entity type: {other}"
                    )));
                }
            };
            if slot.is_some() {
                return Err(InvalidQuota(format!(
                    "Invalid client quota entity, duplicate entity entry {entity_type}"
                )));
            }
            if name.as_deref() == Some("") {
                return Err(InvalidQuota(format!("Empty {entity_type} not supported")));
            }
            *slot = Some(EntityName::from_wire(name.as_deref()));
        }
        Ok(entity)
    }
}

impl fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .parts()
            .into_iter()
            .map(|(entity_type, name)| format!("{entity_type}={name}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The quotas Kafka defines for users and client ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QuotaKey {
    /// Bytes per second of produce requests.
    #[serde(rename = "producer_byte_rate")]
    ProducerByteRate,
    /// Bytes per second of fetch responses.
    #[serde(rename = "consumer_byte_rate")]
    ConsumerByteRate,
    /// Percent of one request-handling thread's time (KIP-124).
    #[serde(rename = "request_percentage")]
    RequestPercentage,
    /// Partitions created or deleted per second (KIP-599).
    #[serde(rename = "controller_mutation_rate")]
    ControllerMutationRate,
}

impl QuotaKey {
    pub const ALL: [QuotaKey; 4] = [
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
        QuotaKey::ControllerMutationRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ControllerMutationRate => "controller_mutation_rate",
        }
    }

    pub fn from_name(name: &str) -> Option<QuotaKey> {
        QuotaKey::ALL.into_iter().find(|key| key.name() == name)
    }

    /// Kafka declares the byte rates as LONG: a value must be whole.
    fn is_whole(self) -> bool {
        matches!(
            self,
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate
        )
    }

    /// Checks a value as Kafka's controller does, and that it can bound a
    /// rate (positive and finite).
    pub fn validate(self, value: f64) -> Result<(), InvalidQuota> {
        let key = self.name();
        if !value.is_finite() || value <= 0.0 {
            return Err(InvalidQuota(format!(
                "Configuration {key} must be a positive number, not {value}"
            )));
        }
        if self.is_whole() && (value - value.round()).abs() > 1e-6 {
            return Err(InvalidQuota(format!(
                "Configuration {key} must be a Long value"
            )));
        }
        Ok(())
    }
}

/// A quota value. Compared by its bits, so commands carrying one stay
/// `Eq` (values are validated finite).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &QuotaValue) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// Why an alteration or a filter was refused (Kafka's INVALID_REQUEST),
/// with Kafka's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
pub struct InvalidQuota(pub String);

impl InvalidQuota {
    fn new(message: &str) -> InvalidQuota {
        InvalidQuota(message.to_string())
    }
}

/// One entity's changes in an AlterClientQuotas request, as received:
/// validated when applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaAlteration {
    /// (entity type, name or `None` for the default).
    pub entity: Vec<(String, Option<String>)>,
    /// (quota key, new value or `None` to remove it).
    pub ops: Vec<(String, Option<QuotaValue>)>,
}

/// An alteration's changes, validated: each key's new value, or `None`
/// to remove it.
pub type QuotaChanges = Vec<(QuotaKey, Option<f64>)>;

/// One entity and its quotas, as snapshots store them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEntity {
    entity: QuotaEntity,
    quotas: BTreeMap<QuotaKey, QuotaValue>,
}

/// Every quota set, by entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<StoredEntity>", into = "Vec<StoredEntity>")]
pub struct ClientQuotas {
    entities: BTreeMap<QuotaEntity, BTreeMap<QuotaKey, QuotaValue>>,
}

impl TryFrom<Vec<StoredEntity>> for ClientQuotas {
    /// Only ever a deserialization error's message.
    type Error = String;

    fn try_from(stored: Vec<StoredEntity>) -> Result<ClientQuotas, String> {
        let mut quotas = ClientQuotas::default();
        for StoredEntity {
            entity,
            quotas: values,
        } in stored
        {
            if entity.user.is_none() && entity.client_id.is_none() {
                return Err("a quota entity with no part".to_string());
            }
            for (key, value) in &values {
                key.validate(value.0).map_err(|e| e.0)?;
            }
            if !values.is_empty() {
                quotas.entities.insert(entity, values);
            }
        }
        Ok(quotas)
    }
}

impl From<ClientQuotas> for Vec<StoredEntity> {
    fn from(quotas: ClientQuotas) -> Vec<StoredEntity> {
        quotas
            .entities
            .into_iter()
            .map(|(entity, quotas)| StoredEntity { entity, quotas })
            .collect()
    }
}

/// A DescribeClientQuotas filter component: which names of one entity
/// type match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaMatch {
    /// This name, or the default.
    Exact(EntityName),
    /// Any name of the type, default included (MATCH_TYPE_SPECIFIED).
    Any,
}

/// A DescribeClientQuotas filter refused: INVALID_REQUEST, or
/// UNSUPPORTED_VERSION for an entity type Kafka does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidQuotaFilter {
    #[error("{0}")]
    Invalid(String),
    #[error("Unsupported entity type {0}")]
    UnsupportedEntityType(String),
}

/// Kafka's match types on the wire.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// A validated DescribeClientQuotas filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaFilter {
    components: Vec<(&'static str, QuotaMatch)>,
    strict: bool,
}

impl QuotaFilter {
    /// Reads the request's components (entity type, match type, match)
    /// as Kafka's ClientQuotasImage does.
    pub fn from_wire(
        components: &[(String, i8, Option<String>)],
        strict: bool,
    ) -> Result<QuotaFilter, InvalidQuotaFilter> {
        let invalid = |message: String| InvalidQuotaFilter::Invalid(message);
        let mut filter = QuotaFilter {
            components: Vec::new(),
            strict,
        };
        for (entity_type, match_type, name) in components {
            let entity_type: &'static str = match entity_type.as_str() {
                "" => return Err(invalid("Invalid empty entity type.".to_string())),
                USER => USER,
                CLIENT_ID => CLIENT_ID,
                IP => IP,
                other => {
                    return Err(InvalidQuotaFilter::UnsupportedEntityType(other.to_string()));
                }
            };
            if filter.components.iter().any(|(t, _)| *t == entity_type) {
                return Err(invalid(format!(
                    "Entity type {entity_type} cannot appear more than once in the filter."
                )));
            }
            let matching = match (*match_type, name) {
                (MATCH_EXACT, Some(name)) => QuotaMatch::Exact(EntityName::Named(name.clone())),
                (MATCH_EXACT, None) => {
                    return Err(invalid(
                        "Request specified MATCH_TYPE_EXACT, but set match string to null."
                            .to_string(),
                    ));
                }
                (MATCH_DEFAULT, None) => QuotaMatch::Exact(EntityName::Default),
                (MATCH_SPECIFIED, None) => QuotaMatch::Any,
                (MATCH_DEFAULT | MATCH_SPECIFIED, Some(_)) => {
                    let name = if *match_type == MATCH_DEFAULT {
                        "MATCH_TYPE_DEFAULT"
                    } else {
                        "MATCH_TYPE_SPECIFIED"
                    };
                    return Err(invalid(format!(
                        "Request specified {name}, but also specified a match string."
                    )));
                }
                (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
            };
            filter.components.push((entity_type, matching));
        }
        let has = |t: &str| filter.components.iter().any(|(c, _)| *c == t);
        if has(IP) && (has(USER) || has(CLIENT_ID)) {
            return Err(invalid(
                "Invalid entity filter component combination. IP filter component should not \
                 be used with user or clientId filter component."
                    .to_string(),
            ));
        }
        Ok(filter)
    }

    fn matches(&self, entity: &QuotaEntity) -> bool {
        let parts = entity.parts();
        if self.strict && parts.len() != self.components.len() {
            return false;
        }
        if self.components.is_empty() {
            // No component: everything, unless strict (nothing has no part).
            return !self.strict;
        }
        self.components.iter().all(|(entity_type, matching)| {
            parts
                .iter()
                .find(|(t, _)| t == entity_type)
                .is_some_and(|(_, name)| match matching {
                    QuotaMatch::Exact(wanted) => *name == wanted,
                    QuotaMatch::Any => true,
                })
        })
    }
}

/// The quota that applies to a client, and the sensor it counts against:
/// clients that share `(user, client_id)` here share the quota (Kafka's
/// metric tags, so a user quota is shared by all of the user's clients).
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedQuota {
    pub bound: f64,
    /// The user the quota counts for, or empty when it is not per user.
    pub user: String,
    /// The client id the quota counts for, or empty when not per client.
    pub client_id: String,
}

impl ClientQuotas {
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Checks an AlterClientQuotas entity's changes against the state,
    /// as Kafka's controller does, without changing anything.
    pub fn validate(
        &self,
        alteration: &QuotaAlteration,
    ) -> Result<(QuotaEntity, QuotaChanges), InvalidQuota> {
        let entity = QuotaEntity::from_wire(&alteration.entity)?;
        let mut ops: QuotaChanges = Vec::with_capacity(alteration.ops.len());
        for (key, value) in &alteration.ops {
            let quota_key = QuotaKey::from_name(key)
                .ok_or_else(|| InvalidQuota(format!("Invalid configuration key {key}")))?;
            if ops.iter().any(|(k, _)| *k == quota_key) {
                return Err(InvalidQuota(format!(
                    "Duplicate quota key {key} not updating quota for this entity {entity}"
                )));
            }
            if let Some(value) = value {
                quota_key.validate(value.0)?;
            }
            ops.push((quota_key, value.map(|v| v.0)));
        }
        Ok((entity, ops))
    }

    /// Applies AlterClientQuotas: every valid entity's changes, each
    /// entity with its own result, in order. An entity named twice is
    /// refused the second time (Kafka's "Ignoring duplicate entity").
    pub fn alter(&mut self, alterations: &[QuotaAlteration]) -> Vec<Result<(), InvalidQuota>> {
        let mut seen: Vec<QuotaEntity> = Vec::new();
        alterations
            .iter()
            .map(|alteration| {
                let (entity, ops) = self.validate(alteration)?;
                if seen.contains(&entity) {
                    return Err(InvalidQuota(format!("Ignoring duplicate entity {entity}")));
                }
                seen.push(entity.clone());
                let values = self.entities.entry(entity.clone()).or_default();
                for (key, value) in ops {
                    match value {
                        Some(value) => values.insert(key, QuotaValue(value)),
                        None => values.remove(&key),
                    };
                }
                if values.is_empty() {
                    self.entities.remove(&entity);
                }
                Ok(())
            })
            .collect()
    }

    /// DescribeClientQuotas: every entity the filter matches, with its
    /// quotas, in entity order.
    pub fn describe(&self, filter: &QuotaFilter) -> Vec<(&QuotaEntity, Vec<(QuotaKey, f64)>)> {
        self.entities
            .iter()
            .filter(|(entity, _)| filter.matches(entity))
            .map(|(entity, values)| (entity, values.iter().map(|(k, v)| (*k, v.0)).collect()))
            .collect()
    }

    /// The `key` quota for a client authenticated as `user` (a
    /// principal's name) with `client_id`, by Kafka's precedence: user and
    /// client id, user and default client id, user, default user and
    /// client id, default user and default client id, default user,
    /// client id, default client id. `None`: unlimited.
    pub fn applying(&self, key: QuotaKey, user: &str, client_id: &str) -> Option<AppliedQuota> {
        /// A part of an entity in Kafka's precedence: the client's own
        /// name, its type's default, or no such part.
        #[derive(Clone, Copy, PartialEq)]
        enum Part {
            Own,
            Default,
            Absent,
        }
        use Part::{Absent, Default, Own};
        const PRECEDENCE: [(Part, Part); 8] = [
            (Own, Own),
            (Own, Default),
            (Own, Absent),
            (Default, Own),
            (Default, Default),
            (Default, Absent),
            (Absent, Own),
            (Absent, Default),
        ];
        if self.entities.is_empty() {
            return None;
        }
        let name = |part: Part, own: &str| match part {
            Own => Some(EntityName::Named(own.to_string())),
            Default => Some(EntityName::Default),
            Absent => None,
        };
        PRECEDENCE.iter().find_map(|&(user_part, client_part)| {
            let entity = QuotaEntity {
                user: name(user_part, user),
                client_id: name(client_part, client_id),
            };
            let bound = self.entities.get(&entity)?.get(&key)?.0;
            let tag = |part: Part, own: &str| {
                if part == Absent {
                    String::new()
                } else {
                    own.to_string()
                }
            };
            Some(AppliedQuota {
                bound,
                user: tag(user_part, user),
                client_id: tag(client_part, client_id),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        parts
            .iter()
            .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
            .collect()
    }

    fn set(quotas: &mut ClientQuotas, parts: &[(&str, Option<&str>)], key: &str, value: f64) {
        let results = quotas.alter(&[QuotaAlteration {
            entity: entity(parts),
            ops: vec![(key.to_string(), Some(QuotaValue(value)))],
        }]);
        assert_eq!(results, vec![Ok(())]);
    }

    #[test]
    fn the_most_specific_quota_applies_in_kafkas_order() {
        let mut quotas = ClientQuotas::default();
        let key = QuotaKey::ProducerByteRate;
        assert_eq!(quotas.applying(key, "alice", "app"), None);
        type Parts<'a> = &'a [(&'a str, Option<&'a str>)];
        let steps: [(Parts<'_>, f64, (&str, &str)); 8] = [
            (&[(CLIENT_ID, None)], 8.0, ("", "app")),
            (&[(CLIENT_ID, Some("app"))], 7.0, ("", "app")),
            (&[(USER, None)], 6.0, ("alice", "")),
            (&[(USER, None), (CLIENT_ID, None)], 5.0, ("alice", "app")),
            (
                &[(USER, None), (CLIENT_ID, Some("app"))],
                4.0,
                ("alice", "app"),
            ),
            (&[(USER, Some("alice"))], 3.0, ("alice", "")),
            (
                &[(USER, Some("alice")), (CLIENT_ID, None)],
                2.0,
                ("alice", "app"),
            ),
            (
                &[(USER, Some("alice")), (CLIENT_ID, Some("app"))],
                1.0,
                ("alice", "app"),
            ),
        ];
        // Each more specific entity takes over from the ones before it.
        for (parts, value, (user, client_id)) in steps {
            set(&mut quotas, parts, "producer_byte_rate", value);
            let applied = quotas.applying(key, "alice", "app").unwrap();
            assert_eq!(applied.bound, value, "{parts:?}");
            assert_eq!(
                (applied.user.as_str(), applied.client_id.as_str()),
                (user, client_id)
            );
        }
        // Another user with another client id falls back to the defaults;
        // another quota key is still unlimited.
        assert_eq!(quotas.applying(key, "bob", "tool").unwrap().bound, 5.0);
        assert_eq!(
            quotas.applying(QuotaKey::ConsumerByteRate, "alice", "app"),
            None
        );
    }

    #[test]
    fn alterations_are_validated_as_kafka_does() {
        let mut quotas = ClientQuotas::default();
        let alter = |quotas: &mut ClientQuotas,
                     parts: &[(&str, Option<&str>)],
                     ops: &[(&str, Option<f64>)]| {
            quotas
                .alter(&[QuotaAlteration {
                    entity: entity(parts),
                    ops: ops
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.map(QuotaValue)))
                        .collect(),
                }])
                .remove(0)
        };
        let refused = |result: Result<(), InvalidQuota>| result.unwrap_err().0;
        assert!(
            refused(alter(
                &mut quotas,
                &[],
                &[("producer_byte_rate", Some(1.0))]
            ))
            .contains("empty")
        );
        assert!(
            refused(alter(
                &mut quotas,
                &[(USER, Some(""))],
                &[("producer_byte_rate", Some(1.0))]
            ))
            .contains("Empty user")
        );
        assert!(
            refused(alter(
                &mut quotas,
                &[("group", Some("g"))],
                &[("producer_byte_rate", Some(1.0))]
            ))
            .contains("Unhandled")
        );
        assert!(
            refused(alter(
                &mut quotas,
                &[(USER, Some("a")), (USER, Some("b"))],
                &[]
            ))
            .contains("duplicate")
        );
        assert!(
            refused(alter(
                &mut quotas,
                &[(USER, Some("a"))],
                &[("bogus", Some(1.0))]
            ))
            .contains("Invalid configuration key bogus")
        );
        assert!(
            refused(alter(
                &mut quotas,
                &[(USER, Some("a"))],
                &[("producer_byte_rate", Some(1.5))]
            ))
            .contains("Long")
        );
        assert!(
            refused(alter(
                &mut quotas,
                &[(USER, Some("a"))],
                &[("request_percentage", Some(-1.0))]
            ))
            .contains("positive")
        );
        assert!(
            refused(alter(
                &mut quotas,
                &[(IP, Some("10.0.0.1"))],
                &[("connection_creation_rate", Some(1.0))]
            ))
            .contains("not supported")
        );
        assert!(
            refused(alter(
                &mut quotas,
                &[(USER, Some("a"))],
                &[
                    ("producer_byte_rate", Some(1.0)),
                    ("producer_byte_rate", None)
                ]
            ))
            .contains("Duplicate quota key")
        );
        assert!(quotas.is_empty(), "nothing refused was stored");
        // A fractional percentage is fine; removing the last key removes
        // the entity.
        assert_eq!(
            alter(
                &mut quotas,
                &[(USER, Some("a"))],
                &[("request_percentage", Some(12.5))]
            ),
            Ok(())
        );
        assert!(!quotas.is_empty());
        assert_eq!(
            alter(
                &mut quotas,
                &[(USER, Some("a"))],
                &[("request_percentage", None)]
            ),
            Ok(())
        );
        assert!(quotas.is_empty());
        // The same entity twice in one request: the second is refused.
        let twice = QuotaAlteration {
            entity: entity(&[(USER, Some("a"))]),
            ops: vec![("producer_byte_rate".to_string(), Some(QuotaValue(10.0)))],
        };
        let results = quotas.alter(&[twice.clone(), twice]);
        assert_eq!(results[0], Ok(()));
        assert!(
            results[1]
                .as_ref()
                .unwrap_err()
                .0
                .contains("Ignoring duplicate entity")
        );
    }

    #[test]
    fn describe_filters_as_kafkas_image_does() {
        let mut quotas = ClientQuotas::default();
        set(
            &mut quotas,
            &[(USER, Some("alice"))],
            "producer_byte_rate",
            1.0,
        );
        set(&mut quotas, &[(USER, None)], "producer_byte_rate", 2.0);
        set(
            &mut quotas,
            &[(USER, Some("alice")), (CLIENT_ID, Some("app"))],
            "consumer_byte_rate",
            3.0,
        );
        set(
            &mut quotas,
            &[(CLIENT_ID, Some("app"))],
            "request_percentage",
            4.0,
        );
        let names = |components: &[(&str, i8, Option<&str>)], strict: bool| -> Vec<String> {
            let components: Vec<(String, i8, Option<String>)> = components
                .iter()
                .map(|(t, m, n)| (t.to_string(), *m, n.map(str::to_string)))
                .collect();
            let filter = QuotaFilter::from_wire(&components, strict).unwrap();
            quotas
                .describe(&filter)
                .into_iter()
                .map(|(e, _)| e.to_string())
                .collect()
        };
        assert_eq!(names(&[], false).len(), 4);
        assert!(names(&[], true).is_empty());
        assert_eq!(
            names(&[(USER, 0, Some("alice"))], false),
            ["user=alice", "user=alice,client-id=app"]
        );
        assert_eq!(names(&[(USER, 0, Some("alice"))], true), ["user=alice"]);
        assert_eq!(names(&[(USER, 1, None)], false), ["user=<default>"]);
        assert_eq!(
            names(&[(USER, 2, None)], true),
            ["user=<default>", "user=alice"]
        );
        assert_eq!(
            names(&[(CLIENT_ID, 2, None)], false),
            ["client-id=app", "user=alice,client-id=app"]
        );
        assert_eq!(
            names(&[(USER, 2, None), (CLIENT_ID, 0, Some("app"))], true),
            ["user=alice,client-id=app"]
        );
        // Refused filters.
        let refused = |components: &[(&str, i8, Option<&str>)]| {
            let components: Vec<(String, i8, Option<String>)> = components
                .iter()
                .map(|(t, m, n)| (t.to_string(), *m, n.map(str::to_string)))
                .collect();
            QuotaFilter::from_wire(&components, false).unwrap_err()
        };
        assert!(matches!(
            refused(&[("group", 0, Some("g"))]),
            InvalidQuotaFilter::UnsupportedEntityType(_)
        ));
        assert!(matches!(
            refused(&[(USER, 0, None)]),
            InvalidQuotaFilter::Invalid(_)
        ));
        assert!(matches!(
            refused(&[(USER, 1, Some("x"))]),
            InvalidQuotaFilter::Invalid(_)
        ));
        assert!(matches!(
            refused(&[(USER, 2, None), (USER, 1, None)]),
            InvalidQuotaFilter::Invalid(_)
        ));
        assert!(matches!(
            refused(&[(IP, 2, None), (USER, 1, None)]),
            InvalidQuotaFilter::Invalid(_)
        ));
        assert!(matches!(
            refused(&[(USER, 7, None)]),
            InvalidQuotaFilter::Invalid(_)
        ));
    }

    #[test]
    fn quotas_survive_serialization_and_invalid_ones_do_not_load() {
        let mut quotas = ClientQuotas::default();
        set(
            &mut quotas,
            &[(USER, None), (CLIENT_ID, Some("app"))],
            "producer_byte_rate",
            1024.0,
        );
        let json = serde_json::to_string(&quotas).unwrap();
        assert_eq!(serde_json::from_str::<ClientQuotas>(&json).unwrap(), quotas);
        let invalid = r#"[{"entity":{"user":"Default"},"quotas":{"producer_byte_rate":-1.0}}]"#;
        assert!(serde_json::from_str::<ClientQuotas>(invalid).is_err());
        assert!(serde_json::from_str::<ClientQuotas>(r#"[{"entity":{},"quotas":{}}]"#).is_err());
    }
}
