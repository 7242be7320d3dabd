//! What the console makes of the answers of the brokers it asks (through
//! [`crate::peer_client::PeerClient`]).

pub(crate) use crate::peer_client::PeerClient as Kafka;

/// `Ok` for error code 0, else Kafka's name for the code and `message`.
pub(crate) fn check(code: i16, message: Option<&str>) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    let name = crate::error_code::kafka_name(code);
    Err(match message.filter(|m| !m.is_empty()) {
        Some(message) => format!("{name}: {message}"),
        None => name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_named_as_kafka_names_them() {
        assert_eq!(check(0, Some("ignored")), Ok(()));
        assert_eq!(
            check(36, Some("topic \"t\" already exists")),
            Err("TOPIC_ALREADY_EXISTS: topic \"t\" already exists".to_string())
        );
        assert_eq!(
            check(3, None),
            Err("UNKNOWN_TOPIC_OR_PARTITION".to_string())
        );
    }
}
