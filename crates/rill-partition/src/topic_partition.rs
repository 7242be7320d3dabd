//! Topic-partition names, and the `TOPIC-PARTITION` directory names that
//! hold their logs, as Kafka lays them out.

use std::fmt;

/// Kafka's limit on a topic name's length (so `TOPIC-PARTITION` plus a
/// deletion suffix fits in a 255-byte file name).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// A topic and one of its partitions.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// Why a topic name is not legal, by Kafka's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic name {name:?} is invalid: {reason}")]
pub struct InvalidTopicName {
    pub name: String,
    pub reason: &'static str,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The directory name of this partition's log: `TOPIC-PARTITION`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a `TOPIC-PARTITION` directory name; `None` for anything else
    /// (deleted directories, stray files).
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let partition: i32 = partition.parse().ok()?;
        validate_topic_name(topic).ok()?;
        Some(TopicPartition::new(topic, partition))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Checks a topic name by Kafka's rules: 1 to 249 characters of
/// `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), InvalidTopicName> {
    let invalid = |reason| {
        Err(InvalidTopicName {
            name: name.chars().take(300).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return invalid("it is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip_even_with_dashes_in_the_topic() {
        let tp = TopicPartition::new("my-topic.v2", 17);
        assert_eq!(tp.dir_name(), "my-topic.v2-17");
        assert_eq!(TopicPartition::from_dir_name(&tp.dir_name()), Some(tp));
        assert_eq!(
            TopicPartition::from_dir_name("__consumer_offsets-49"),
            Some(TopicPartition::new("__consumer_offsets", 49))
        );
    }

    #[test]
    fn other_directory_names_are_not_partitions() {
        for name in [
            "orders",
            "orders-",
            "orders-x",
            "orders-1.abc-delete",
            "-3",
            "a b-1",
        ] {
            assert_eq!(TopicPartition::from_dir_name(name), None, "{name}");
        }
    }

    #[test]
    fn topic_names_follow_kafkas_rules() {
        assert!(validate_topic_name("orders_2024.eu-west").is_ok());
        for bad in ["", ".", "..", "a/b", "caf\u{e9}", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }
}
