//! docker-compose.yml gives each Wallex binary the environment it reads. Needs no server.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_norway::Value;

/// A variable a binary reads, with the value compose must give it when that is fixed.
type Variable = (&'static str, Option<&'static str>);

/// The variables each binary reads.
const BINARIES: &[(&str, &[Variable])] = &[
    (
        "command-api",
        &[
            ("PORT", Some("3000")),
            ("DATABASE_URL", None),
            ("REDIS_URL", None),
            ("KAFKA_BROKERS", None),
            ("ELASTICSEARCH_URL", None),
            // The consumers' groups below, whose offsets its reads wait for.
            ("LEDGER_CONSUMER_GROUP", Some("wallex-ledger")),
            ("PROJECTION_CONSUMER_GROUP", Some("wallex-projection")),
            ("EVENT_STORE", None),
            ("KURRENTDB_URL", None),
            ("AUTH_JWT_SECRET", None),
            ("RUST_LOG", None),
            ("LOG_FORMAT", None),
        ],
    ),
    (
        "outbox-relay",
        &[
            ("PORT", Some("3001")),
            ("DATABASE_URL", None),
            ("KAFKA_BROKERS", None),
            ("KAFKA_TOPIC", Some("wallet-events")),
        ],
    ),
    (
        "ledger-consumer",
        &[
            ("PORT", Some("3002")),
            ("DATABASE_URL", None),
            ("KAFKA_BROKERS", None),
            ("KAFKA_TOPIC", Some("wallet-events")),
            ("KAFKA_GROUP_ID", Some("wallex-ledger")),
        ],
    ),
    (
        "projection-consumer",
        &[
            ("PORT", Some("3003")),
            ("DATABASE_URL", None),
            ("KAFKA_BROKERS", None),
            ("ELASTICSEARCH_URL", None),
            ("KAFKA_TOPIC", Some("wallet-events")),
            ("KAFKA_GROUP_ID", Some("wallex-projection")),
        ],
    ),
];

/// The servers compose must run beside the binaries.
const SERVERS: &[&str] = &[
    "kafka",
    "kafka-ui",
    "kurrentdb",
    "postgres",
    "redis",
    "elasticsearch",
    "kibana",
];

fn compose() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docker-compose.yml");
    let text = std::fs::read_to_string(&path).expect("read docker-compose.yml");
    let mut value: Value = serde_norway::from_str(&text).expect("docker-compose.yml is YAML");
    value
        .apply_merge()
        .expect("the << merge keys of docker-compose.yml resolve");
    value
}

fn services(compose: &Value) -> &serde_norway::Mapping {
    compose
        .get("services")
        .and_then(Value::as_mapping)
        .expect("a services mapping")
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A service's environment, in either of compose's forms (mapping, or list of `K=V`).
fn environment(service: &Value) -> BTreeMap<String, String> {
    match service.get("environment") {
        Some(Value::Mapping(mapping)) => mapping
            .iter()
            .filter_map(|(key, value)| Some((key.as_str()?.to_owned(), scalar_text(value)?)))
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|item| item.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

#[test]
fn every_binary_service_sets_the_variables_it_reads() {
    let compose = compose();
    let services = services(&compose);
    for (binary, variables) in BINARIES {
        let service = services
            .get(*binary)
            .unwrap_or_else(|| panic!("docker-compose.yml has no service {binary}"));
        let environment = environment(service);
        for (variable, expected) in *variables {
            let value = environment
                .get(*variable)
                .unwrap_or_else(|| panic!("{binary} does not set {variable}"));
            assert!(!value.trim().is_empty(), "{binary} sets {variable} empty");
            if let Some(expected) = expected {
                assert_eq!(value, expected, "{binary}'s {variable}");
            }
        }
    }
}

#[test]
fn every_binary_is_built_from_the_one_dockerfile() {
    let compose = compose();
    let services = services(&compose);
    for (binary, _) in BINARIES {
        let build = services
            .get(*binary)
            .and_then(|service| service.get("build"))
            .unwrap_or_else(|| panic!("{binary} has no build section"));
        assert_eq!(
            build.get("dockerfile").and_then(Value::as_str),
            Some("deploy/Dockerfile"),
            "{binary}'s dockerfile"
        );
        assert_eq!(
            build
                .get("args")
                .and_then(|args| args.get("BIN"))
                .and_then(Value::as_str),
            Some(*binary),
            "{binary}'s BIN build argument"
        );
    }
}

#[test]
fn the_servers_are_there_with_health_checks_and_dependencies_exist() {
    let compose = compose();
    let services = services(&compose);
    for server in SERVERS {
        let service = services
            .get(*server)
            .unwrap_or_else(|| panic!("docker-compose.yml has no service {server}"));
        assert!(
            service.get("healthcheck").is_some(),
            "{server} has a health check"
        );
    }
    for (name, service) in services {
        let name = name.as_str().unwrap_or("?");
        let Some(depends_on) = service.get("depends_on") else {
            continue;
        };
        let dependencies: Vec<&str> = match depends_on {
            Value::Mapping(mapping) => mapping.keys().filter_map(Value::as_str).collect(),
            Value::Sequence(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for dependency in dependencies {
            assert!(
                services.contains_key(dependency),
                "{name} depends on {dependency}, which is no service"
            );
        }
    }
}
