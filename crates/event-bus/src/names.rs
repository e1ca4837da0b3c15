//! The bus's settings checked when the configuration is read, by every
//! binary alike: a brokers list or a topic name Kafka would refuse is a bad
//! setting (exit 2), not a broker that does not answer yet and is waited for
//! without end (h161 N3: `KAFKA_BROKERS=,` and `KAFKA_TOPIC='bad topic!'`
//! started and waited).

/// The longest topic name Kafka takes, in characters (Kafka's
/// `Topic.MAX_NAME_LENGTH`).
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;

/// Why a `KAFKA_BROKERS` value is no list of brokers. Entries are counted
/// from 1, as they are written.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokersError {
    #[error(
        "entry {entry} is empty: give host:port entries, comma-separated (kafka:9092,kafka-2:9092)"
    )]
    EmptyEntry { entry: usize },
    #[error("entry {entry} ({text:?}) is not a host or host:port: give host:port entries, comma-separated (kafka:9092)")]
    NotHostPort { entry: usize, text: String },
    #[error("entry {entry} ({text:?}) has no port from 1 to 65535 after its host")]
    Port { entry: usize, text: String },
}

/// `raw` when each of its comma-separated entries, trimmed, is a host with
/// no white space, alone (librdkafka then takes Kafka's port, 9092) or with
/// a `:` and a port from 1 to 65535 (`[::1]:9092` included); for clap's
/// `value_parser` of `KAFKA_BROKERS`.
pub fn brokers_list(raw: &str) -> Result<String, BrokersError> {
    for (index, entry) in raw.split(',').enumerate() {
        let entry_number = index + 1;
        let text = entry.trim();
        if text.is_empty() {
            return Err(BrokersError::EmptyEntry {
                entry: entry_number,
            });
        }
        if text.contains(char::is_whitespace) {
            return Err(BrokersError::NotHostPort {
                entry: entry_number,
                text: text.to_owned(),
            });
        }
        // A host alone is librdkafka's: its port is Kafka's 9092.
        let Some((host, port)) = text.rsplit_once(':') else {
            continue;
        };
        // A colon in the host is an IPv6 address's, in brackets only.
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if host.is_empty() || (host.contains(':') && !bracketed) {
            return Err(BrokersError::NotHostPort {
                entry: entry_number,
                text: text.to_owned(),
            });
        }
        match port.parse::<u16>() {
            Ok(number) if number > 0 && port.bytes().all(|byte| byte.is_ascii_digit()) => {}
            _ => {
                return Err(BrokersError::Port {
                    entry: entry_number,
                    text: text.to_owned(),
                })
            }
        }
    }
    Ok(raw.to_owned())
}

/// Why a name is no Kafka topic name.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("a topic name is 1 to {TOPIC_NAME_LENGTH_MAX} characters, this one is {length}")]
    Length { length: usize },
    #[error("a topic name cannot be \".\" or \"..\"")]
    Dots,
    #[error("a topic name holds only ASCII letters, digits, '.', '_' and '-', not {character:?}")]
    Character { character: char },
}

/// `raw` when Kafka takes it as a topic name, by Kafka's own rule (its
/// `org.apache.kafka.common.internals.Topic.validate`): 1 to
/// [`TOPIC_NAME_LENGTH_MAX`] characters, each an ASCII letter, digit, `.`,
/// `_` or `-`, and neither `.` nor `..`; for clap's `value_parser` of
/// `KAFKA_TOPIC` and `KAFKA_DLQ_TOPIC`.
pub fn topic_name(raw: &str) -> Result<String, TopicNameError> {
    let length = raw.chars().count();
    if length == 0 || length > TOPIC_NAME_LENGTH_MAX {
        return Err(TopicNameError::Length { length });
    }
    if raw == "." || raw == ".." {
        return Err(TopicNameError::Dots);
    }
    if let Some(character) = raw
        .chars()
        .find(|character| !(character.is_ascii_alphanumeric() || "._-".contains(*character)))
    {
        return Err(TopicNameError::Character { character });
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_broker_entry_must_be_a_host_and_its_port() {
        for accepted in [
            "kafka",
            "k1, k2:9093",
            "localhost:9092",
            "k1:9092, k2:9093",
            " kafka:1 ",
            "[::1]:9092",
            "10.0.0.1:65535",
        ] {
            assert_eq!(brokers_list(accepted).as_deref(), Ok(accepted));
        }
        assert_eq!(
            brokers_list(","),
            Err(BrokersError::EmptyEntry { entry: 1 })
        );
        assert_eq!(
            brokers_list(" "),
            Err(BrokersError::EmptyEntry { entry: 1 })
        );
        assert_eq!(brokers_list(""), Err(BrokersError::EmptyEntry { entry: 1 }));
        assert_eq!(
            brokers_list("k:9092,,k2:9092"),
            Err(BrokersError::EmptyEntry { entry: 2 })
        );
        assert!(matches!(
            brokers_list("k:9092,kafka 9092"),
            Err(BrokersError::NotHostPort { entry: 2, .. })
        ));
        assert!(matches!(
            brokers_list(":9092"),
            Err(BrokersError::NotHostPort { entry: 1, .. })
        ));
        assert!(matches!(
            brokers_list("k:9092:1"),
            Err(BrokersError::NotHostPort { entry: 1, .. })
        ));
        for port in ["k:0", "k:65536", "k:", "k:x", "k:+9092"] {
            assert!(
                matches!(brokers_list(port), Err(BrokersError::Port { entry: 1, .. })),
                "{port}"
            );
        }
        let message = brokers_list("a:1, b:").expect_err("b").to_string();
        assert!(
            message.contains("entry 2") && message.contains("\"b:\""),
            "{message}"
        );
    }

    #[test]
    fn a_topic_name_follows_kafkas_rule() {
        let longest = "t".repeat(TOPIC_NAME_LENGTH_MAX);
        for accepted in ["wallet-events", "a.b_c-D9", "...", longest.as_str()] {
            assert_eq!(topic_name(accepted).as_deref(), Ok(accepted));
        }
        assert_eq!(topic_name(""), Err(TopicNameError::Length { length: 0 }));
        let too_long = "t".repeat(TOPIC_NAME_LENGTH_MAX + 1);
        assert_eq!(
            topic_name(&too_long),
            Err(TopicNameError::Length { length: 250 })
        );
        assert_eq!(topic_name("."), Err(TopicNameError::Dots));
        assert_eq!(topic_name(".."), Err(TopicNameError::Dots));
        assert_eq!(
            topic_name("bad topic!"),
            Err(TopicNameError::Character { character: ' ' })
        );
        assert_eq!(
            topic_name("é"),
            Err(TopicNameError::Character { character: 'é' })
        );
    }
}
