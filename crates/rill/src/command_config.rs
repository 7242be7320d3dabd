//! `--command-config FILE`: the client properties file Kafka's tools take
//! (`kafka-topics --command-config client.properties`), as librdkafka
//! properties. The file is Java properties: `key=value` (or `key: value`)
//! lines, `#` and `!` comments. librdkafka and the Java client share most
//! names (`security.protocol`, `sasl.mechanism`, `ssl.ca.location`,
//! `ssl.endpoint.identification.algorithm`); the Java client's own are
//! read as Kafka's tools mean them:
//!
//! - `sasl.jaas.config` with a PLAIN or SCRAM login module: its
//!   `username` and `password` become `sasl.username` and `sasl.password`;
//! - `ssl.truststore.location` of a PEM truststore becomes
//!   `ssl.ca.location`;
//! - `ssl.truststore.type`, `ssl.truststore.password`, `ssl.keystore.type`
//!   and `ssl.keystore.password` have no librdkafka counterpart and are
//!   left out.

use std::path::Path;

use anyhow::{Context, bail};

/// The librdkafka properties of the file at `path`, in file order.
pub(crate) fn read(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --command-config {}", path.display()))?;
    parse(&text).with_context(|| format!("--command-config {}", path.display()))
}

fn parse(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some(at) = line.find(['=', ':']) else {
            bail!("line {}: expected KEY=VALUE", number + 1);
        };
        let (key, value) = (line[..at].trim(), line[at + 1..].trim());
        match key {
            "sasl.jaas.config" => {
                for field in ["username", "password"] {
                    if let Some(value) = jaas_option(value, field) {
                        out.push((format!("sasl.{field}"), value));
                    }
                }
            }
            "ssl.truststore.location" => out.push(("ssl.ca.location".into(), value.into())),
            "ssl.truststore.type"
            | "ssl.truststore.password"
            | "ssl.keystore.type"
            | "ssl.keystore.password" => {}
            _ => out.push((key.to_string(), value.to_string())),
        }
    }
    Ok(out)
}

/// The value of `option="..."` in a JAAS line
/// (`...ScramLoginModule required username="alice" password="secret";`).
fn jaas_option(jaas: &str, option: &str) -> Option<String> {
    let start = jaas.find(&format!("{option}=\""))? + option.len() + 2;
    let end = start + jaas[start..].find('"')?;
    Some(jaas[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_client_properties_become_librdkafka_ones() {
        let file = r#"
# A Kafka tools client config.
security.protocol=SASL_SSL
sasl.mechanism = SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="s3cr=t";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/rill/ca.pem
! another comment
client.id: tools
"#;
        assert_eq!(
            parse(file).unwrap(),
            [
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "SCRAM-SHA-512"),
                ("sasl.username", "alice"),
                ("sasl.password", "s3cr=t"),
                ("ssl.ca.location", "/etc/rill/ca.pem"),
                ("client.id", "tools"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert!(parse("just words").is_err());
    }
}
