//! What `/health` checks: Kafka (always) and the stores a consumer names.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use event_bus::KafkaProbe;
use event_store::RecordedEvent;
use serde::Serialize;

pub use observability::HEALTH_CHECK_TIMEOUT_MS;

/// Why a dependency is down, for the log.
pub type Unhealthy = Box<dyn std::error::Error + Send + Sync>;

/// A system the consumer cannot work without.
#[async_trait]
pub trait Dependency: Send + Sync {
    /// Its name in the health body (`postgres`, `kafka`, `elasticsearch`).
    fn name(&self) -> &'static str;

    /// Ok when it answers, with the furthest global position the consumer
    /// has applied when this dependency holds it.
    async fn check(&self) -> Result<Option<u64>, Unhealthy>;

    /// True when the consumer does none of its work without it (`/health`
    /// then answers 503 while it is down); false when only part of the
    /// work waits for it (`degraded`, 200): projection-consumer's read
    /// model goes on while the search server is away.
    fn required(&self) -> bool {
        true
    }
}

#[async_trait]
impl Dependency for KafkaProbe {
    fn name(&self) -> &'static str {
        "kafka"
    }

    async fn check(&self) -> Result<Option<u64>, Unhealthy> {
        self.probe().await?;
        Ok(None)
    }
}

/// A dependency named `name` whose `check` is the given closure, for the
/// stores a consumer names (its closure holds what it asks).
pub fn dependency<F, Checking>(name: &'static str, check: F) -> Arc<dyn Dependency>
where
    F: Fn() -> Checking + Send + Sync + 'static,
    Checking: Future<Output = Result<Option<u64>, Unhealthy>> + Send + 'static,
{
    checked(name, check, true)
}

/// As [`dependency`], for a store only part of the consumer's work needs
/// (see [`Dependency::required`]).
pub fn partial_dependency<F, Checking>(name: &'static str, check: F) -> Arc<dyn Dependency>
where
    F: Fn() -> Checking + Send + Sync + 'static,
    Checking: Future<Output = Result<Option<u64>, Unhealthy>> + Send + 'static,
{
    checked(name, check, false)
}

fn checked<F, Checking>(name: &'static str, check: F, required: bool) -> Arc<dyn Dependency>
where
    F: Fn() -> Checking + Send + Sync + 'static,
    Checking: Future<Output = Result<Option<u64>, Unhealthy>> + Send + 'static,
{
    Arc::new(Checked {
        name,
        check,
        required,
    })
}

struct Checked<F> {
    name: &'static str,
    check: F,
    required: bool,
}

#[async_trait]
impl<F, Checking> Dependency for Checked<F>
where
    F: Fn() -> Checking + Send + Sync,
    Checking: Future<Output = Result<Option<u64>, Unhealthy>> + Send,
{
    fn name(&self) -> &'static str {
        self.name
    }

    async fn check(&self) -> Result<Option<u64>, Unhealthy> {
        (self.check)().await
    }

    fn required(&self) -> bool {
        self.required
    }
}

/// The furthest global position in `batch`: what a consumer stores beside
/// its writes as progress for `/health` (it never moves back). Partitions
/// interleave, so positions below it may still be on their way: consumption
/// resumes from Kafka's committed offsets, never from this.
pub fn furthest_position(batch: &[RecordedEvent]) -> Option<u64> {
    batch.iter().map(|recorded| recorded.position).max()
}

/// The body of `/health`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Health {
    pub status: &'static str,
    /// `up` or `down`, by dependency name.
    pub dependencies: BTreeMap<&'static str, &'static str>,
    /// The furthest global position the consumer has applied (a progress
    /// gauge: consumption resumes from Kafka's committed offsets, not from it).
    pub position: Option<u64>,
}

/// The health status while the consumer retries a transient failure: it
/// serves, but its partitions wait.
const STATUS_DEGRADED: &str = "degraded";

impl Health {
    /// Up, even when degraded: the process works and waits out a fault.
    pub fn healthy(&self) -> bool {
        self.status == "ok" || self.status == STATUS_DEGRADED
    }

    /// This health, `degraded` when it is ok but the consumer is retrying.
    pub fn retrying(mut self, retrying: bool) -> Self {
        if retrying && self.status == "ok" {
            self.status = STATUS_DEGRADED;
        }
        self
    }
}

/// Checks every dependency at once, each bounded by [`HEALTH_CHECK_TIMEOUT_MS`].
pub(crate) async fn check_all(dependencies: &[Arc<dyn Dependency>]) -> Health {
    let checks = dependencies.iter().map(|dependency| async move {
        let outcome = observability::health_check(dependency.check())
            .await
            .map_err(Unhealthy::from);
        (dependency.name(), dependency.required(), outcome)
    });
    judge(futures::future::join_all(checks).await)
}

/// Each dependency's name, whether it is required, and its answer.
type Outcomes = Vec<(&'static str, bool, Result<Option<u64>, Unhealthy>)>;

/// The health body from each dependency's answer: `unavailable` when a
/// required one is down, `degraded` when only a partial one is.
fn judge(outcomes: Outcomes) -> Health {
    let mut dependencies = BTreeMap::new();
    let mut position = None;
    let mut healthy = true;
    let mut partial = false;
    for (name, required, outcome) in outcomes {
        let up = match outcome {
            Ok(reported) => {
                position = position.or(reported);
                true
            }
            Err(error) => {
                tracing::warn!(dependency = name, %error, "health: dependency down");
                if required {
                    healthy = false;
                } else {
                    partial = true;
                }
                false
            }
        };
        dependencies.insert(name, if up { "up" } else { "down" });
    }
    let status = match (healthy, partial) {
        (false, _) => "unavailable",
        (true, true) => STATUS_DEGRADED,
        (true, false) => "ok",
    };
    Health {
        status,
        dependencies,
        position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers `answer`, or never when it is `None`.
    fn fixed(
        name: &'static str,
        answer: Option<Result<Option<u64>, &'static str>>,
    ) -> Arc<dyn Dependency> {
        dependency(name, move || async move {
            match answer {
                Some(answer) => answer.map_err(Into::into),
                None => std::future::pending().await,
            }
        })
    }

    #[tokio::test]
    async fn healthy_when_every_dependency_answers() {
        let health = check_all(&[
            fixed("kafka", Some(Ok(None))),
            fixed("postgres", Some(Ok(Some(42)))),
        ])
        .await;
        assert!(health.healthy());
        assert_eq!(health.position, Some(42));
        assert_eq!(
            health.dependencies,
            BTreeMap::from([("kafka", "up"), ("postgres", "up")])
        );
    }

    #[tokio::test]
    async fn one_dependency_down_makes_it_unavailable() {
        let health = check_all(&[
            fixed("kafka", Some(Err("connection refused"))),
            fixed("postgres", Some(Ok(Some(7)))),
        ])
        .await;
        assert!(!health.healthy());
        assert_eq!(health.status, "unavailable");
        assert_eq!(health.dependencies.get("kafka"), Some(&"down"));
        assert_eq!(health.position, Some(7));
    }

    #[tokio::test]
    async fn a_consumer_retrying_a_transient_failure_is_degraded_not_down() {
        let health = check_all(&[fixed("kafka", Some(Ok(None)))])
            .await
            .retrying(true);
        assert!(health.healthy());
        assert_eq!(health.status, "degraded");
        let down = check_all(&[fixed("kafka", Some(Err("connection refused")))])
            .await
            .retrying(true);
        assert_eq!(down.status, "unavailable");
    }

    #[tokio::test]
    async fn a_partial_dependency_down_makes_it_degraded_not_unavailable() {
        let search = partial_dependency("elasticsearch", || async {
            Err::<Option<u64>, Unhealthy>("connection refused".into())
        });
        let health = check_all(&[fixed("postgres", Some(Ok(Some(7)))), search.clone()]).await;
        assert!(health.healthy());
        assert_eq!(health.status, "degraded");
        assert_eq!(health.dependencies.get("elasticsearch"), Some(&"down"));
        let both_down = check_all(&[fixed("postgres", Some(Err("refused"))), search]).await;
        assert_eq!(both_down.status, "unavailable");
    }

    #[tokio::test]
    async fn a_dependency_that_does_not_answer_in_time_is_down() {
        let health = check_all(&[fixed("postgres", None)]).await;
        assert!(!health.healthy());
        assert_eq!(health.dependencies.get("postgres"), Some(&"down"));
        assert_eq!(health.position, None);
    }
}
