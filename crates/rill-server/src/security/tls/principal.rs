//! Who a client certificate names: its subject as Java's
//! `X500Principal.getName()` writes it (RFC 2253: the last RDN first,
//! `CN=alice,OU=eng,O=acme,C=US`), turned into a principal's name by
//! Kafka's `ssl.principal.mapping.rules` (`SslPrincipalMapper`):
//!
//! - the rules are a list, `RULE:pattern/replacement/[LU]` or `DEFAULT`,
//!   separated by commas or newlines (a comma inside a rule's pattern is
//!   the pattern's);
//! - the first rule whose pattern matches the whole subject gives the
//!   name: every match of the pattern replaced by the replacement (`$1`
//!   names a group), lower-cased with `L`, upper-cased with `U`;
//!   `DEFAULT` gives the subject itself;
//! - when no rule matches, the client is not let in.

use std::fmt::Write as _;

use regex::Regex;
use x509_parser::der_parser::asn1_rs::ToDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why `ssl.principal.mapping.rules` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("ssl.principal.mapping.rules: {0}")]
pub(crate) struct RulesError(String);

/// One mapping rule.
#[derive(Clone, Debug)]
enum Rule {
    Default,
    Replace {
        /// The pattern anchored at both ends: a rule applies when it
        /// matches the whole subject.
        whole: Regex,
        pattern: Regex,
        /// In the regex crate's syntax (`${1}`).
        replacement: String,
        case: Case,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// `ssl.principal.mapping.rules`, parsed.
#[derive(Clone, Debug)]
pub(crate) struct PrincipalRules(Vec<Rule>);

impl PrincipalRules {
    pub(crate) fn parse(text: &str) -> Result<PrincipalRules, RulesError> {
        let mut rules = Vec::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .ok_or_else(|| RulesError(format!("{rest:?} has no /replacement/")))?;
                let (replacement, after) = until_slash(after)
                    .ok_or_else(|| RulesError(format!("{rest:?} does not end with /")))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let compile = |p: &str| {
                    Regex::new(p).map_err(|e| RulesError(format!("pattern {pattern:?}: {e}")))
                };
                rules.push(Rule::Replace {
                    whole: compile(&format!("^(?:{pattern})$"))?,
                    pattern: compile(&pattern)?,
                    replacement: java_replacement(&replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(RulesError(format!(
                    "{rest:?} is neither RULE:pattern/replacement/[LU] nor DEFAULT"
                )));
            }
            // Anything else up to the separator belongs to the rule (as
            // Kafka's splitter reads it).
            rest = match rest.find([',', '\n']) {
                Some(end) => rest[end + 1..].trim_start(),
                None => "",
            };
        }
        if rules.is_empty() {
            return Err(RulesError("no rules (DEFAULT keeps the subject)".into()));
        }
        Ok(PrincipalRules(rules))
    }

    /// The principal name of `subject`, or `None` when no rule applies.
    pub(crate) fn map(&self, subject: &str) -> Option<String> {
        self.0.iter().find_map(|rule| match rule {
            Rule::Default => Some(subject.to_string()),
            Rule::Replace {
                whole,
                pattern,
                replacement,
                case,
            } => whole.is_match(subject).then(|| {
                let name = pattern
                    .replace_all(subject, replacement.as_str())
                    .into_owned();
                match case {
                    Case::Keep => name,
                    Case::Lower => name.to_lowercase(),
                    Case::Upper => name.to_uppercase(),
                }
            }),
        })
    }
}

/// Text up to the next `/` not escaped with `\` (escapes kept, as the
/// regex wants them), and what follows that `/`.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' => return Some((out, &text[i + 1..])),
            '\\' => {
                let (_, escaped) = chars.next()?;
                // `\/` is a slash in the pattern; other escapes are the regex's.
                if escaped != '/' {
                    out.push('\\');
                }
                out.push(escaped);
            }
            _ => out.push(c),
        }
    }
    None
}

/// Java's replacement syntax (`$1`, `\$`) in the regex crate's (`${1}`,
/// `$$`).
fn java_replacement(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut group = String::new();
                while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                    group.push(digit);
                }
                if group.is_empty() {
                    out.push_str("$$");
                } else {
                    let _ = write!(out, "${{{group}}}");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The subject of a DER certificate in RFC 2253 form, or `None` if it
/// cannot be parsed (rustls has verified it by then, so this is rare).
pub(crate) fn subject_of(der: &[u8]) -> Option<String> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    let mut rdns: Vec<String> = Vec::new();
    for rdn in certificate.subject().iter_rdn() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|attribute| {
                let oid = attribute.attr_type().to_id_string();
                match (keyword(&oid), attribute.as_str()) {
                    (Some(keyword), Ok(value)) => format!("{keyword}={}", escape(value)),
                    // Java writes an attribute it has no keyword for (or
                    // a value that is not a string) as OID=#HEX of its DER.
                    _ => {
                        let mut hex = String::new();
                        for byte in attribute.attr_value().to_der_vec().unwrap_or_default() {
                            let _ = write!(hex, "{byte:02x}");
                        }
                        format!("{oid}=#{hex}")
                    }
                }
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// The keywords `X500Principal.getName()` (RFC 2253) writes.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    })
}

/// RFC 2253 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::new();
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(names: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in names {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_subject_is_written_last_rdn_first_as_java_does() {
        use rcgen::DnType;
        let der = certificate(&[
            (DnType::CountryName, "US"),
            (DnType::OrganizationName, "Acme, Inc."),
            (DnType::OrganizationalUnitName, "eng"),
            (DnType::CommonName, "alice"),
        ]);
        assert_eq!(
            subject_of(&der).unwrap(),
            r"CN=alice,OU=eng,O=Acme\, Inc.,C=US"
        );
    }

    #[test]
    fn default_keeps_the_subject() {
        let rules = PrincipalRules::parse("DEFAULT").unwrap();
        assert_eq!(rules.map("CN=a,O=b").as_deref(), Some("CN=a,O=b"));
    }

    #[test]
    fn the_first_rule_matching_the_whole_subject_names_the_principal() {
        // Kafka's documented example, commas inside the patterns.
        let rules = PrincipalRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
             RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\
             RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            rules
                .map("CN=kafka-client,OU=ServiceUsers,O=Acme,C=US")
                .as_deref(),
            Some("kafka-client")
        );
        assert_eq!(
            rules
                .map("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Palo Alto,ST=CA,C=US")
                .as_deref(),
            Some("duke@javasoft")
        );
        assert_eq!(rules.map("OU=x,cn=bob.b,O=y").as_deref(), Some("BOB.B"));
        assert_eq!(rules.map("O=nobody").as_deref(), Some("O=nobody"));
    }

    #[test]
    fn no_matching_rule_lets_no_one_in() {
        let rules = PrincipalRules::parse("RULE:^CN=(.*)$/$1/").unwrap();
        assert_eq!(rules.map("CN=x").as_deref(), Some("x"));
        assert_eq!(rules.map("O=acme"), None);
    }

    #[test]
    fn escaped_slashes_and_dollars_are_literal() {
        let rules = PrincipalRules::parse(r"RULE:^CN=(.*)\/x$/\$$1/").unwrap();
        assert_eq!(rules.map("CN=a/x").as_deref(), Some("$a"));
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in ["", "RULE:abc", "RULE:a/b", "SOMETHING", "RULE:([/x/"] {
            assert!(PrincipalRules::parse(bad).is_err(), "{bad:?}");
        }
    }
}
