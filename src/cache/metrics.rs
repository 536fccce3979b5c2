//! The cache's Prometheus counters.

use prometheus::{Gauge, IntCounter, IntCounterVec, Opts};

use super::{BreakerState, Cache};

pub(super) struct Counters {
    pub(super) hits: IntCounter,
    pub(super) misses: IntCounter,
    pub(super) errors: IntCounter,
    pub(super) corrupt: IntCounter,
    pub(super) computations: IntCounter,
    pub(super) bypassed: IntCounter,
    pub(super) skipped: IntCounter,
    pub(super) response_hits: IntCounter,
    pub(super) response_misses: IntCounter,
    pub(super) response_stored: IntCounter,
    pub(super) publish_failures: IntCounter,
    pub(super) breaker_open: Gauge,
    /// The families of the labelled counters above.
    pub(super) lookups: IntCounterVec,
    pub(super) responses: IntCounterVec,
}

impl Counters {
    pub(super) fn new() -> Counters {
        let vec = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["result"]).expect("valid metric")
        };
        let one = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let lookups = vec(
            "orderscope_cache_requests_total",
            "Aggregate cache lookups by result.",
        );
        let responses = vec(
            "orderscope_response_cache_total",
            "Whole-response cache lookups and stores.",
        );
        let publish_failures = one(
            "orderscope_cache_publish_failures_total",
            "Writes whose versions could not be published to Redis.",
        );
        let errors = one(
            "orderscope_cache_errors_total",
            "Redis calls that failed or timed out.",
        );
        let skipped = one(
            "orderscope_cache_skipped_total",
            "Redis calls skipped by the open breaker.",
        );
        let computations = one(
            "orderscope_cache_computations_total",
            "Aggregates computed from PostgreSQL.",
        );
        let breaker_open = Gauge::new(
            "orderscope_cache_breaker_open",
            "Whether the Redis breaker is open (1), half-open (0.5) or closed (0).",
        )
        .expect("valid metric");
        Counters {
            hits: lookups.with_label_values(&["hit"]),
            misses: lookups.with_label_values(&["miss"]),
            corrupt: lookups.with_label_values(&["corrupt"]),
            bypassed: lookups.with_label_values(&["bypass"]),
            response_hits: responses.with_label_values(&["hit"]),
            response_misses: responses.with_label_values(&["miss"]),
            response_stored: responses.with_label_values(&["stored"]),
            errors,
            skipped,
            computations,
            publish_failures,
            breaker_open,
            lookups,
            responses,
        }
    }
}

impl Cache {
    /// Registers the cache's counters with the application's metrics.
    pub fn register_metrics(&self, registry: &prometheus::Registry) {
        let c = &self.counters;
        let families: [Box<dyn prometheus::core::Collector>; 7] = [
            Box::new(c.lookups.clone()),
            Box::new(c.responses.clone()),
            Box::new(c.publish_failures.clone()),
            Box::new(c.errors.clone()),
            Box::new(c.skipped.clone()),
            Box::new(c.computations.clone()),
            Box::new(c.breaker_open.clone()),
        ];
        for family in families {
            if let Err(e) = registry.register(family) {
                tracing::warn!(error = %e, "cache metrics not registered");
            }
        }
    }

    /// Brings the breaker gauge up to date before `/metrics` is rendered.
    pub fn refresh_metrics(&self) {
        self.counters.breaker_open.set(match self.breaker.state() {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 0.5,
            BreakerState::Open => 1.0,
        });
    }
}
