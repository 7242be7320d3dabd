//! Kafka's listeners: each a name, a security protocol, the address it
//! binds and the address clients are told to use, from `listeners`,
//! `advertised.listeners`, `listener.security.protocol.map` and
//! `inter.broker.listener.name`, with Kafka's rules:
//!
//! - an entry is `NAME://HOST:PORT`; the name's protocol comes from the
//!   map, whose default maps each protocol's own name to itself
//!   (`PLAINTEXT://`, `SSL://`, `SASL_PLAINTEXT://`, `SASL_SSL://`); a
//!   bare `HOST:PORT` (Rill's `--listen`) is `PLAINTEXT`;
//! - names are unique, and so are ports other than 0;
//! - `advertised.listeners` names listeners that exist; one it leaves
//!   out advertises its bind address (loopback for a wildcard host);
//! - the listener other brokers and controllers use is
//!   `inter.broker.listener.name`, else the first.

use std::collections::BTreeMap;

use crate::properties::{ConfigError, HostPort};

/// How a listener's connections are secured (Kafka's SecurityProtocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    fn parse(name: &str) -> Option<SecurityProtocol> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether a client authenticates with SASL before anything else.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// Whether the connection is TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One listener of this broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Its name, upper case as Kafka writes it (`PLAINTEXT`, `EXTERNAL`).
    pub name: String,
    pub protocol: SecurityProtocol,
    /// The address it binds; port 0 picks a free one.
    pub bind: HostPort,
    /// The address clients are told to use for it.
    pub advertised: HostPort,
}

/// The listeners a broker's properties describe, in the order given; the
/// one other nodes use first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listeners(Vec<Listener>);

/// What the listener properties say, as given.
pub(crate) struct ListenerProperties<'a> {
    pub listeners: &'a str,
    pub advertised: Option<&'a str>,
    pub protocol_map: Option<&'a str>,
    pub inter_broker: Option<&'a str>,
}

/// The most listeners a broker has.
const LISTENERS_MAX: usize = 16;

impl Listeners {
    pub(crate) fn parse(given: &ListenerProperties<'_>) -> Result<Listeners, ConfigError> {
        let map = parse_protocol_map(given.protocol_map)?;
        let invalid = |name: &str, value: &str, expected: &str| ConfigError::Invalid {
            name: name.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        };
        let mut listeners: Vec<Listener> = Vec::new();
        for entry in entries(given.listeners) {
            let (name, bind) = parse_entry(entry, "listeners")?;
            let name = name.unwrap_or_else(|| "PLAINTEXT".to_string());
            let protocol = *map.get(&name).ok_or_else(|| {
                invalid(
                    "listeners",
                    given.listeners,
                    &format!("a listener name listener.security.protocol.map maps ({name} is not)"),
                )
            })?;
            if listeners.iter().any(|l| l.name == name) {
                return Err(invalid(
                    "listeners",
                    given.listeners,
                    &format!("each name once ({name} twice)"),
                ));
            }
            if bind.port != 0 && listeners.iter().any(|l| l.bind.port == bind.port) {
                return Err(invalid(
                    "listeners",
                    given.listeners,
                    &format!("each port once ({} twice)", bind.port),
                ));
            }
            let advertised = default_advertised(&bind);
            listeners.push(Listener {
                name,
                protocol,
                bind,
                advertised,
            });
        }
        if listeners.is_empty() || listeners.len() > LISTENERS_MAX {
            return Err(invalid(
                "listeners",
                given.listeners,
                &format!("1 to {LISTENERS_MAX} listeners"),
            ));
        }
        if let Some(advertised) = given.advertised {
            for entry in entries(advertised) {
                let (name, address) = parse_entry(entry, "advertised.listeners")?;
                // A bare HOST:PORT advertises the first listener (Rill's
                // --advertise, with one listener).
                let listener = match &name {
                    Some(name) => listeners.iter_mut().find(|l| &l.name == name),
                    None => listeners.first_mut(),
                };
                let Some(listener) = listener else {
                    let name = name.unwrap_or_default();
                    return Err(invalid(
                        "advertised.listeners",
                        advertised,
                        &format!("names of listeners ({name} is not one)"),
                    ));
                };
                listener.advertised = address;
            }
        }
        if let Some(name) = given.inter_broker {
            let name = name.trim().to_ascii_uppercase();
            let Some(at) = listeners.iter().position(|l| l.name == name) else {
                return Err(invalid(
                    "inter.broker.listener.name",
                    &name,
                    "the name of one of the listeners",
                ));
            };
            let inter_broker = listeners.remove(at);
            listeners.insert(0, inter_broker);
        }
        Ok(Listeners(listeners))
    }

    /// The listener other brokers and controllers connect to.
    pub fn inter_broker(&self) -> &Listener {
        // `parse` refuses an empty list.
        &self.0[0]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Listener> {
        self.0.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Listener> {
        self.0.iter_mut()
    }

    /// The listener named `name`.
    pub fn named(&self, name: &str) -> Option<&Listener> {
        self.0.iter().find(|l| l.name == name)
    }
}

/// The comma-separated entries of a listener list.
fn entries(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `NAME://HOST:PORT`, or `HOST:PORT` (no name).
fn parse_entry(entry: &str, property: &str) -> Result<(Option<String>, HostPort), ConfigError> {
    let Some((name, address)) = entry.split_once("://") else {
        let bind = HostPort::parse(entry).map_err(|_| ConfigError::Invalid {
            name: property.to_string(),
            value: entry.to_string(),
            expected: "NAME://HOST:PORT or HOST:PORT".to_string(),
        })?;
        return Ok((None, bind));
    };
    let name = name.trim().to_ascii_uppercase();
    let valid_name =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let bind = HostPort::parse(address).map_err(|_| ConfigError::Invalid {
        name: property.to_string(),
        value: entry.to_string(),
        expected: "NAME://HOST:PORT".to_string(),
    })?;
    if !valid_name {
        return Err(ConfigError::Invalid {
            name: property.to_string(),
            value: entry.to_string(),
            expected: "a listener name of letters, digits and _".to_string(),
        });
    }
    Ok((Some(name), bind))
}

/// listener.security.protocol.map: `NAME:PROTOCOL,...`; unset, each
/// protocol's name maps to itself.
fn parse_protocol_map(
    text: Option<&str>,
) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    let Some(text) = text else {
        return Ok(SecurityProtocol::ALL
            .into_iter()
            .map(|p| (p.name().to_string(), p))
            .collect());
    };
    let invalid = || ConfigError::Invalid {
        name: "listener.security.protocol.map".to_string(),
        value: text.to_string(),
        expected: "NAME:PROTOCOL,... with protocols PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
            .to_string(),
    };
    let mut map = BTreeMap::new();
    for entry in entries(text) {
        let (name, protocol) = entry.split_once(':').ok_or_else(invalid)?;
        let protocol = SecurityProtocol::parse(protocol).ok_or_else(invalid)?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty() || map.insert(name, protocol).is_some() {
            return Err(invalid());
        }
    }
    Ok(map)
}

/// What a listener advertises unless told: its bind address, loopback
/// for a wildcard host.
fn default_advertised(bind: &HostPort) -> HostPort {
    if bind.host == "0.0.0.0" || bind.host == "::" {
        HostPort {
            host: "127.0.0.1".to_string(),
            port: bind.port,
        }
    } else {
        bind.clone()
    }
}

/// Checks a listener list's form alone (the property table's check; the
/// names are checked against the map when the broker reads them).
pub(crate) fn check_list(text: &str) -> Result<(), ConfigError> {
    if entries(text).next().is_none() {
        return Err(ConfigError::Invalid {
            name: "listeners".to_string(),
            value: text.to_string(),
            expected: "NAME://HOST:PORT,...".to_string(),
        });
    }
    entries(text).try_for_each(|entry| parse_entry(entry, "listeners").map(drop))
}

/// Checks listener.security.protocol.map's form.
pub(crate) fn check_protocol_map(text: &str) -> Result<(), ConfigError> {
    parse_protocol_map(Some(text)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        listeners: &str,
        advertised: Option<&str>,
        map: Option<&str>,
        inter_broker: Option<&str>,
    ) -> Result<Listeners, ConfigError> {
        Listeners::parse(&ListenerProperties {
            listeners,
            advertised,
            protocol_map: map,
            inter_broker,
        })
    }

    fn summary(listeners: &Listeners) -> Vec<String> {
        listeners
            .iter()
            .map(|l| format!("{} {} {} {}", l.name, l.protocol, l.bind, l.advertised))
            .collect()
    }

    #[test]
    fn the_default_and_a_bare_address_are_one_plaintext_listener() {
        let one = parse("PLAINTEXT://127.0.0.1:9092", None, None, None).unwrap();
        assert_eq!(
            summary(&one),
            ["PLAINTEXT PLAINTEXT 127.0.0.1:9092 127.0.0.1:9092"]
        );
        let bare = parse("0.0.0.0:19092", Some("10.0.0.5:19092"), None, None).unwrap();
        assert_eq!(
            summary(&bare),
            ["PLAINTEXT PLAINTEXT 0.0.0.0:19092 10.0.0.5:19092"]
        );
    }

    #[test]
    fn several_listeners_with_names_mapped_to_protocols() {
        let listeners = parse(
            "LOCAL://127.0.0.1:9092, external://0.0.0.0:9094,SASL_SSL://[::]:9095",
            Some("EXTERNAL://broker1.example.com:9094"),
            Some("LOCAL:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"),
            Some("external"),
        )
        .unwrap();
        assert_eq!(
            summary(&listeners),
            [
                "EXTERNAL SASL_PLAINTEXT 0.0.0.0:9094 broker1.example.com:9094",
                "LOCAL PLAINTEXT 127.0.0.1:9092 127.0.0.1:9092",
                "SASL_SSL SASL_SSL [::]:9095 127.0.0.1:9095",
            ]
        );
        assert_eq!(listeners.inter_broker().name, "EXTERNAL");
        assert!(listeners.named("LOCAL").is_some());
    }

    #[test]
    fn what_kafka_refuses_is_refused_naming_the_property() {
        for (listeners, advertised, map, inter_broker, property) in [
            // A name the map does not have.
            ("INTERNAL://127.0.0.1:9092", None, None, None, "listeners"),
            // A name twice, a port twice.
            (
                "PLAINTEXT://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9093",
                None,
                None,
                None,
                "listeners",
            ),
            (
                "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9092",
                None,
                None,
                None,
                "listeners",
            ),
            ("", None, None, None, "listeners"),
            ("PLAIN TEXT://127.0.0.1:9092", None, None, None, "listeners"),
            // Advertising a listener that does not exist.
            (
                "PLAINTEXT://127.0.0.1:9092",
                Some("SSL://h:9093"),
                None,
                None,
                "advertised.listeners",
            ),
            (
                "A://127.0.0.1:9092",
                None,
                Some("A:KERBEROS"),
                None,
                "listener.security.protocol.map",
            ),
            (
                "PLAINTEXT://127.0.0.1:9092",
                None,
                None,
                Some("SSL"),
                "inter.broker.listener.name",
            ),
        ] {
            match parse(listeners, advertised, map, inter_broker) {
                Err(ConfigError::Invalid { name, .. }) => {
                    assert_eq!(name, property, "{listeners:?}")
                }
                other => panic!("{listeners:?}: {other:?}"),
            }
        }
    }
}
