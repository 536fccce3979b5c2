//! Prometheus metrics, through the `prometheus` crate: request counts and latency per
//! route, latency per GraphQL operation name, GraphQL errors per code, the database
//! pool, and what other subsystems register (the cache's counters).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Distinct operation names kept as their own series; later ones count as `other`, so
/// that clients naming operations freely cannot grow the registry without bound.
pub const MAX_OPERATIONS: usize = 100;

/// One registry per application (tests run several in one process).
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    operations: HistogramVec,
    graphql_errors: IntCounterVec,
    pool: IntGaugeVec,
    ws_closed: IntCounterVec,
    known_operations: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "orderscope_http_requests_total",
                "HTTP requests by route and status.",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "orderscope_http_request_duration_seconds",
                "HTTP request latency by route.",
            )
            .buckets(BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let operations = HistogramVec::new(
            HistogramOpts::new(
                "orderscope_graphql_operation_duration_seconds",
                "GraphQL request latency by operation name (anonymous without one; other \
                 beyond the first distinct names).",
            )
            .buckets(BUCKETS.to_vec()),
            &["operation"],
        )
        .expect("valid metric");
        let graphql_errors = IntCounterVec::new(
            Opts::new(
                "orderscope_graphql_errors_total",
                "GraphQL errors by extensions.code.",
            ),
            &["code"],
        )
        .expect("valid metric");
        let pool = IntGaugeVec::new(
            Opts::new(
                "orderscope_db_pool_connections",
                "Connections held by the database pool.",
            ),
            &["state"],
        )
        .expect("valid metric");
        let ws_closed = IntCounterVec::new(
            Opts::new(
                "orderscope_ws_closed_total",
                "Subscription sockets the server closed, by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        // Every reason is shown from the start, at 0.
        for reason in [
            "slow_consumer",
            "revoked",
            "scope_changed",
            "silent",
            "audit_unavailable",
        ] {
            ws_closed.with_label_values(&[reason]);
        }
        for collector in [
            Box::new(ws_closed.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(requests.clone()),
            Box::new(latency.clone()),
            Box::new(operations.clone()),
            Box::new(graphql_errors.clone()),
            Box::new(pool.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are distinct");
        }
        Metrics {
            registry,
            requests,
            latency,
            operations,
            graphql_errors,
            pool,
            ws_closed,
            known_operations: Mutex::new(HashSet::new()),
        }
    }

    /// Where other subsystems register their metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn observe_request(&self, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Latency of one GraphQL request under its operation name.
    pub fn observe_operation(&self, name: Option<&str>, elapsed: Duration) {
        let label = self.operation_label(name);
        self.operations
            .with_label_values(&[&label])
            .observe(elapsed.as_secs_f64());
    }

    fn operation_label(&self, name: Option<&str>) -> String {
        let Some(name) = name.filter(|n| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }) else {
            return if name.is_some_and(|n| !n.is_empty()) {
                "other".into()
            } else {
                "anonymous".into()
            };
        };
        let mut known = self
            .known_operations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if known.contains(name) {
            return name.to_string();
        }
        if known.len() < MAX_OPERATIONS {
            known.insert(name.to_string());
            return name.to_string();
        }
        "other".into()
    }

    pub fn observe_graphql_error(&self, code: &str) {
        self.graphql_errors.with_label_values(&[code]).inc();
    }

    /// A subscription socket the server closed (`slow_consumer`, `revoked`, …).
    pub fn observe_ws_closed(&self, reason: &str) {
        self.ws_closed.with_label_values(&[reason]).inc();
    }

    pub fn set_pool(&self, idle: u32, busy: u32) {
        self.pool.with_label_values(&["idle"]).set(idle.into());
        self.pool.with_label_values(&["busy"]).set(busy.into());
    }

    /// Every registered metric in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics could not be encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded() {
        let m = Metrics::new();
        assert_eq!(m.operation_label(None), "anonymous");
        assert_eq!(m.operation_label(Some("")), "anonymous");
        assert_eq!(m.operation_label(Some("bad name")), "other");
        for i in 0..MAX_OPERATIONS {
            assert_eq!(m.operation_label(Some(&format!("Op{i}"))), format!("Op{i}"));
        }
        assert_eq!(m.operation_label(Some("OneTooMany")), "other");
        assert_eq!(m.operation_label(Some("Op3")), "Op3", "known names stay");
    }
}
