//! The aggregate cache (DESIGN section 6): answers of `kpis`, `trend`, `breakdown` and
//! `dailyReport` kept in Redis.
//!
//! - Never stale: the key holds the data version of every shop the answer read. Each
//!   write sets its shops' versions in its own transaction (`db::rollups::refresh`),
//!   and versions are read with the caller's account on every request, so once a write
//!   has committed no request can reach an entry computed before it.
//! - Never crossing tenants or scopes: the key holds the tenant, the shops the answer
//!   covers and the permissions that change it.
//! - Single flight: concurrent misses on one key in this process compute once.
//! - Redis failing never fails a request: every call has a short timeout, and after a
//!   few consecutive failures a breaker skips Redis for a cool-down; then one request
//!   probes it and caching resumes by itself. An entry that does not decode is a miss.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::domain::Permission;
use crate::error::AppResult;

/// Marks the format of stored entries; a change of format changes every key.
const FORMAT: &str = "v1";

/// Cache settings (environment: `REDIS_URL`, `CACHE_*`).
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub redis_url: String,
    /// Prefix of every key; tests give each test its own.
    pub prefix: String,
    pub ttl: Duration,
    /// Limit of one Redis command (and of connecting).
    pub timeout: Duration,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// How long the open breaker skips Redis before one request probes it.
    pub breaker_cooldown: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Opens after `threshold` consecutive failures; after the cool-down one caller at a
/// time probes, and a success closes it.
struct Breaker {
    epoch: Instant,
    threshold: u32,
    cooldown: Duration,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which Redis is skipped.
    open_until: AtomicU64,
    probing: AtomicBool,
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether this call may use Redis; `Some(true)` when it is the probe.
    fn admit(&self) -> Option<bool> {
        if self.failures.load(Ordering::Acquire) < self.threshold {
            return Some(false);
        }
        if self.now_ms() < self.open_until.load(Ordering::Acquire) {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| true)
    }

    fn success(&self, probe: bool) {
        self.failures.store(0, Ordering::Release);
        if probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    fn failure(&self, probe: bool) {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= self.threshold {
            self.open_until.store(
                self.now_ms() + self.cooldown.as_millis() as u64,
                Ordering::Release,
            );
        }
        if probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    fn state(&self) -> BreakerState {
        if self.failures.load(Ordering::Acquire) < self.threshold {
            BreakerState::Closed
        } else if self.now_ms() < self.open_until.load(Ordering::Acquire) {
            BreakerState::Open
        } else {
            BreakerState::HalfOpen
        }
    }
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    corrupt: AtomicU64,
    computations: AtomicU64,
    bypassed: AtomicU64,
    skipped: AtomicU64,
}

/// One computation of a key: callers that miss while it runs wait for its answer, and
/// for a short grace period after it finishes they take it too, so a burst is computed
/// once even when Redis failed to store it. (The key holds the data versions, so this
/// never serves an answer from before a write.)
#[derive(Default)]
struct FlightState {
    answer: tokio::sync::OnceCell<Arc<Vec<u8>>>,
    done_at: std::sync::OnceLock<Instant>,
}

type Flight = Arc<FlightState>;

/// How long a finished flight still answers its key in this process.
const FLIGHT_GRACE: Duration = Duration::from_secs(2);
/// Above this many flights, finished ones past their grace are dropped.
const FLIGHTS_KEPT: usize = 1024;

/// The process's cache client; cheap to share.
pub struct Cache {
    settings: CacheSettings,
    client: Option<redis::Client>,
    connection: RwLock<Option<MultiplexedConnection>>,
    connecting: tokio::sync::Mutex<()>,
    /// Breaker-clock milliseconds before which no new connection is attempted.
    retry_connect_at: AtomicU64,
    breaker: Breaker,
    flights: Mutex<HashMap<String, Flight>>,
    counters: Counters,
}

/// Put in a request's data when the caller asked to skip the cache and may.
#[derive(Clone, Copy)]
pub struct Bypass;

/// Everything but the versions and the arguments that a cached answer depends on.
pub struct Scope<'a> {
    pub principal: &'a Principal,
    /// The shops the answer reads (already narrowed to the caller's scope).
    pub shop_ids: &'a [i64],
}

impl Cache {
    pub fn new(settings: CacheSettings) -> Cache {
        let client = redis::Client::open(settings.redis_url.as_str())
            .map_err(|e| tracing::warn!(error = %e, "REDIS_URL is not usable; caching is off"))
            .ok();
        Cache {
            breaker: Breaker {
                epoch: Instant::now(),
                threshold: settings.breaker_failures.max(1),
                cooldown: settings.breaker_cooldown,
                failures: AtomicU32::new(0),
                open_until: AtomicU64::new(0),
                probing: AtomicBool::new(false),
            },
            settings,
            client,
            connection: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            retry_connect_at: AtomicU64::new(0),
            flights: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        }
    }

    /// The key of an answer: tenant, the shops read with their data versions, the
    /// permissions that change answers, the operation and its normalised arguments.
    pub fn key(&self, scope: &Scope<'_>, operation: &str, arguments: &serde_json::Value) -> String {
        let p = scope.principal;
        let mut shops: Vec<(i64, i64)> = scope
            .shop_ids
            .iter()
            .map(|id| (*id, p.shop(*id).map_or(-1, |s| s.data_version)))
            .collect();
        shops.sort_unstable();
        shops.dedup();
        let material = serde_json::json!({
            "tenant": p.tenant_id,
            "shops": shops,
            "finance": p.has(Permission::FinanceRead),
            "operation": operation,
            "arguments": arguments,
        });
        let digest = Sha256::digest(material.to_string().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}:agg:{FORMAT}:{}:{operation}:{hex}",
            self.settings.prefix, p.tenant_id
        )
    }

    /// The cached answer for `key`, or `compute`'s (stored for the next caller).
    pub async fn get_or_compute<T, F, Fut>(
        &self,
        key: String,
        bypass: bool,
        compute: F,
    ) -> AppResult<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = AppResult<T>>,
    {
        if bypass {
            self.counters.bypassed.fetch_add(1, Ordering::Relaxed);
            self.counters.computations.fetch_add(1, Ordering::Relaxed);
            return compute().await;
        }
        if let Some(bytes) = self.get(&key).await {
            match serde_json::from_slice::<T>(&bytes) {
                Ok(value) => {
                    self.counters.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(value);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cache entry does not decode; recomputing");
                    self.counters.corrupt.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let expired = |f: &Flight| f.done_at.get().is_some_and(|t| t.elapsed() >= FLIGHT_GRACE);
        let flight: Flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            if flights.len() > FLIGHTS_KEPT {
                flights.retain(|_, f| !expired(f));
            }
            let entry = flights.entry(key.clone()).or_default();
            if expired(entry) {
                *entry = Flight::default();
            }
            entry.clone()
        };
        let bytes = flight
            .answer
            .get_or_try_init(|| async {
                // A flight that finished between our lookup and joining it has already
                // stored the answer: look once more before computing.
                if let Some(bytes) = self.get(&key).await {
                    if serde_json::from_slice::<T>(&bytes).is_ok() {
                        return Ok(Arc::new(bytes));
                    }
                }
                self.counters.computations.fetch_add(1, Ordering::Relaxed);
                let value = compute().await?;
                let bytes = serde_json::to_vec(&value).map_err(crate::error::AppError::internal)?;
                self.set(&key, &bytes).await;
                Ok::<_, crate::error::AppError>(Arc::new(bytes))
            })
            .await
            .cloned();
        if bytes.is_ok() {
            flight.done_at.get_or_init(Instant::now);
        } else {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                flights.remove(&key);
            }
        }
        let bytes = bytes?;
        serde_json::from_slice(&bytes).map_err(crate::error::AppError::internal)
    }

    fn current_connection(&self) -> Option<MultiplexedConnection> {
        self.connection
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn connection(&self) -> Option<MultiplexedConnection> {
        if let Some(conn) = self.current_connection() {
            return Some(conn);
        }
        let client = self.client.as_ref()?;
        // One task connects while the others wait for its result (one multiplexed
        // connection serves them all); after a failed attempt, callers do not retry
        // until the timeout has passed again.
        let _guard = self.connecting.lock().await;
        if let Some(conn) = self.current_connection() {
            return Some(conn);
        }
        if self.breaker.now_ms() < self.retry_connect_at.load(Ordering::Acquire) {
            return None;
        }
        let connected = tokio::time::timeout(
            self.settings.timeout.max(Duration::from_millis(200)),
            client.get_multiplexed_async_connection(),
        )
        .await;
        match connected {
            Ok(Ok(mut conn)) => {
                // redis-rs has its own 500 ms default; ours is the one configured.
                conn.set_response_timeout(self.settings.timeout);
                *self.connection.write().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
                Some(conn)
            }
            _ => {
                let retry = self.breaker.now_ms() + self.settings.timeout.as_millis() as u64;
                self.retry_connect_at.store(retry, Ordering::Release);
                None
            }
        }
    }

    fn drop_connection(&self) {
        *self.connection.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Runs one Redis command under the timeout and the breaker; `None` when Redis was
    /// skipped or failed.
    async fn call<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Option<T> {
        let Some(probe) = self.breaker.admit() else {
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let result = match self.connection().await {
            Some(mut conn) => {
                match tokio::time::timeout(self.settings.timeout, cmd.query_async::<T>(&mut conn))
                    .await
                {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(e)) => {
                        // A broken connection is replaced; a server error is not ours to fix.
                        if e.is_io_error()
                            || e.is_connection_dropped()
                            || e.is_unrecoverable_error()
                        {
                            self.drop_connection();
                        }
                        Err(e.to_string())
                    }
                    // A slow answer does not mean a broken connection: keep it.
                    Err(_) => Err("timed out".to_string()),
                }
            }
            None => Err("not connected".to_string()),
        };
        match result {
            Ok(value) => {
                self.breaker.success(probe);
                Some(value)
            }
            Err(reason) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                self.breaker.failure(probe);
                tracing::warn!(%reason, breaker = self.breaker.state().as_str(), "redis call failed");
                None
            }
        }
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.call::<Option<Vec<u8>>>(redis::cmd("GET").arg(key).clone())
            .await
            .flatten()
    }

    async fn set(&self, key: &str, bytes: &[u8]) {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(bytes)
            .arg("EX")
            .arg(self.settings.ttl.as_secs().max(1));
        let _: Option<()> = self.call(cmd).await;
    }

    /// Whether Redis answers a PING now (false while the breaker skips it).
    pub async fn ping(&self) -> bool {
        self.call::<String>(redis::cmd("PING")).await.is_some()
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Prometheus lines for `/metrics`.
    pub fn render_metrics(&self) -> String {
        let c = &self.counters;
        let state = self.breaker.state();
        let mut out = String::from(
            "# HELP orderscope_cache_requests_total Aggregate cache lookups by result.\n\
             # TYPE orderscope_cache_requests_total counter\n",
        );
        for (result, n) in [
            ("hit", &c.hits),
            ("miss", &c.misses),
            ("corrupt", &c.corrupt),
            ("bypass", &c.bypassed),
        ] {
            out.push_str(&format!(
                "orderscope_cache_requests_total{{result=\"{result}\"}} {}\n",
                n.load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# HELP orderscope_cache_errors_total Redis calls that failed or timed out.\n\
             # TYPE orderscope_cache_errors_total counter\n\
             orderscope_cache_errors_total {}\n\
             # HELP orderscope_cache_skipped_total Redis calls skipped by the open breaker.\n\
             # TYPE orderscope_cache_skipped_total counter\n\
             orderscope_cache_skipped_total {}\n\
             # HELP orderscope_cache_computations_total Aggregates computed from PostgreSQL.\n\
             # TYPE orderscope_cache_computations_total counter\n\
             orderscope_cache_computations_total {}\n\
             # HELP orderscope_cache_breaker_open Whether the Redis breaker is open (1), half-open (0.5) or closed (0).\n\
             # TYPE orderscope_cache_breaker_open gauge\n\
             orderscope_cache_breaker_open {}\n",
            c.errors.load(Ordering::Relaxed),
            c.skipped.load(Ordering::Relaxed),
            c.computations.load(Ordering::Relaxed),
            match state {
                BreakerState::Closed => "0",
                BreakerState::HalfOpen => "0.5",
                BreakerState::Open => "1",
            }
        ));
        out
    }
}
