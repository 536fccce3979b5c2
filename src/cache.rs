//! The aggregate cache: answers of `kpis`, `trend`, `breakdown` and
//! `dailyReport` kept in Redis.
//!
//! - Never stale: the key holds the data version of every shop the answer read. Each
//!   write sets its shops' versions in its own transaction (`db::versions::touch`),
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

use prometheus::{Gauge, IntCounter, IntCounterVec, Opts};
use redis::aio::MultiplexedConnection;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::{Principal, ResponseStamp, TokenSubject};
use crate::db::accounts::TenantVersions;

use crate::error::AppResult;

/// Marks the format of stored entries; a change of format changes every key.
const FORMAT: &str = "v1";

/// How long a registered automatic persisted query is kept.
const PERSISTED_QUERY_TTL_SECS: u64 = 7 * 24 * 3600;

pub use crate::settings::CacheSettings;

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

struct Counters {
    hits: IntCounter,
    misses: IntCounter,
    errors: IntCounter,
    corrupt: IntCounter,
    computations: IntCounter,
    bypassed: IntCounter,
    skipped: IntCounter,
    response_hits: IntCounter,
    response_misses: IntCounter,
    response_stored: IntCounter,
    publish_failures: IntCounter,
    breaker_open: Gauge,
    /// The families of the labelled counters above.
    lookups: IntCounterVec,
    responses: IntCounterVec,
}

impl Counters {
    fn new() -> Counters {
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
    /// This process's name in change announcements (it ignores its own).
    node: String,
    connection: RwLock<Option<MultiplexedConnection>>,
    connecting: tokio::sync::Mutex<()>,
    /// Breaker-clock milliseconds before which no new connection is attempted.
    retry_connect_at: AtomicU64,
    breaker: Breaker,
    flights: Mutex<HashMap<String, Flight>>,
    counters: Counters,
    /// Tenants whose latest write this process could not publish to Redis, until when:
    /// the response cache is not used for them here meanwhile.
    unpublished: Mutex<HashMap<i64, Instant>>,
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
            node: uuid::Uuid::new_v4().simple().to_string(),
            connection: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            retry_connect_at: AtomicU64::new(0),
            flights: Mutex::new(HashMap::new()),
            counters: Counters::new(),
            unpublished: Mutex::new(HashMap::new()),
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
            "finance": p.may_read(crate::domain::DataSet::Commission),
            "operation": operation,
            "arguments": arguments,
        });
        let hex = hex(&Sha256::digest(material.to_string().as_bytes()));
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
            self.counters.bypassed.inc();
            self.counters.computations.inc();
            return compute().await;
        }
        if let Some(bytes) = self.get(&key).await {
            match serde_json::from_slice::<T>(&bytes) {
                Ok(value) => {
                    self.counters.hits.inc();
                    return Ok(value);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cache entry does not decode; recomputing");
                    self.counters.corrupt.inc();
                }
            }
        }
        self.counters.misses.inc();
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
                self.counters.computations.inc();
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

    fn tenant_version_key(&self, tenant_id: i64) -> String {
        // One hash tag per tenant: a Redis Cluster keeps a tenant's version and response
        // keys on one node, so one MGET or script reaches them all.
        format!("{}:ver:{{t{tenant_id}}}", self.settings.prefix)
    }

    fn account_version_key(&self, tenant_id: i64, account_id: i64) -> String {
        format!(
            "{}:ver:{{t{tenant_id}}}:a{account_id}",
            self.settings.prefix
        )
    }

    fn response_key(&self, tenant_id: i64, account_id: i64, request: &[u8; 32]) -> String {
        format!(
            "{}:resp:{FORMAT}:{{t{tenant_id}}}:a{account_id}:{}",
            self.settings.prefix,
            hex(request)
        )
    }

    /// Whether this process may use the response cache for a tenant: not while one of
    /// its writes here could not be published to Redis.
    fn versions_trusted(&self, tenant_id: i64) -> bool {
        let mut unpublished = self.unpublished.lock().unwrap_or_else(|e| e.into_inner());
        if unpublished.is_empty() {
            return true;
        }
        unpublished.retain(|_, until| *until > Instant::now());
        !unpublished.contains_key(&tenant_id)
    }

    /// The stored response body of this exact request (`request` is the SHA-256 of its
    /// body) by this account, if it was computed at the versions Redis holds now for
    /// the tenant and the account, and for this token generation.
    pub async fn cached_response(
        &self,
        subject: TokenSubject,
        request: &[u8; 32],
    ) -> Option<Vec<u8>> {
        if !self.versions_trusted(subject.tenant_id) {
            return None;
        }
        let mut cmd = redis::cmd("MGET");
        cmd.arg(self.tenant_version_key(subject.tenant_id))
            .arg(self.account_version_key(subject.tenant_id, subject.account_id))
            .arg(self.response_key(subject.tenant_id, subject.account_id, request));
        let values: Vec<Option<Vec<u8>>> = self.call(cmd).await?;
        let hit = match values.as_slice() {
            [Some(tenant), Some(account), Some(entry)] => {
                split_entry(entry).and_then(|(stamp, body_at)| {
                    (stamp.tenant_version.to_string().as_bytes() == tenant.as_slice()
                        && stamp.account_version.to_string().as_bytes() == account.as_slice()
                        && stamp.token_generation == subject.generation)
                        .then_some(body_at)
                })
            }
            _ => None,
        };
        // An entry whose body is not a JSON object (corrupted, or written by something
        // else) is a miss, as it is for the aggregate cache: never served as JSON.
        let body = hit.and_then(|body_at| {
            let mut entry = values.into_iter().nth(2).flatten()?;
            let body = entry.split_off(body_at);
            let valid = body.first() == Some(&b'{')
                && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
            valid.then_some(body)
        });
        match body {
            Some(body) => {
                self.counters.response_hits.inc();
                Some(body)
            }
            None => {
                self.counters.response_misses.inc();
                None
            }
        }
    }

    /// Stores a response computed for an account, labelled with the versions read with
    /// its principal before computing (a later write only makes it unreachable), and
    /// raises the tenant's and the account's version keys to those versions.
    /// `loaded` is when the principal was read: versions older than a second are not
    /// written back, so an expired version key is never set to a value from before a
    /// write that was published meanwhile.
    pub async fn store_response(
        &self,
        tenant_id: i64,
        account_id: i64,
        stamp: ResponseStamp,
        loaded: Instant,
        request: &[u8; 32],
        body: &[u8],
    ) {
        if !self.versions_trusted(tenant_id) {
            return;
        }
        let mut entry = format!(
            "{}:{}:{}:",
            stamp.tenant_version, stamp.account_version, stamp.token_generation
        )
        .into_bytes();
        entry.extend_from_slice(body);
        let raise = loaded.elapsed() < Duration::from_secs(1);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(STORE_RESPONSE)
            .arg(3)
            .arg(self.tenant_version_key(tenant_id))
            .arg(self.account_version_key(tenant_id, account_id))
            .arg(self.response_key(tenant_id, account_id, request))
            .arg(stamp.tenant_version)
            .arg(stamp.account_version)
            .arg(entry)
            .arg(self.settings.ttl.as_millis().max(1) as u64)
            .arg(self.settings.version_ttl.as_millis().max(1) as u64)
            .arg(if raise { "1" } else { "0" });
        if self.call::<i64>(cmd).await.is_some() {
            self.counters.response_stored.inc();
        }
    }

    /// After a write has committed and before it is acknowledged: raises the tenant's
    /// and its accounts' version keys in Redis, so that no process serves a response
    /// computed before the write. If that fails, this process stops using the response
    /// cache for the tenant until the version keys have expired everywhere.
    pub async fn publish_versions(&self, versions: &TenantVersions) -> bool {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RAISE_VERSIONS)
            .arg(1 + versions.accounts.len())
            .arg(self.tenant_version_key(versions.tenant_id));
        for (account, _) in &versions.accounts {
            cmd.arg(self.account_version_key(versions.tenant_id, *account));
        }
        cmd.arg(self.settings.version_ttl.as_millis().max(1) as u64)
            .arg(versions.tenant_version);
        for (_, version) in &versions.accounts {
            cmd.arg(*version);
        }
        let published = self.call::<i64>(cmd).await.is_some();
        if !published {
            self.counters.publish_failures.inc();
            self.distrust(versions.tenant_id);
        }
        published
    }

    /// Stops using the response cache for a tenant in this process until every version
    /// key written before now has expired.
    pub fn distrust(&self, tenant_id: i64) {
        let until = Instant::now() + self.settings.version_ttl + Duration::from_secs(1);
        self.unpublished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant_id, until);
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
            self.counters.skipped.inc();
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
                self.counters.errors.inc();
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

    fn changes_channel(&self) -> String {
        format!("{}:changes", self.settings.prefix)
    }

    /// Tells every node (Redis pub/sub) that a write of `tenant_id` committed, so that
    /// their live subscriptions see it at once. Without Redis, nodes still see it at
    /// their next change-log tick.
    pub async fn announce_change(&self, tenant_id: i64) {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.changes_channel())
            .arg(format!("{}:{tenant_id}", self.node));
        let _: Option<i64> = self.call(cmd).await;
    }

    /// Calls `on_change` with the tenant of every announced write, for the life of the
    /// process; reconnects after Redis fails (each attempt at most once a second).
    pub fn follow_changes(self: &Arc<Self>, on_change: impl Fn(i64) + Send + Sync + 'static) {
        use futures_util::StreamExt;
        let Some(client) = self.client.clone() else {
            return;
        };
        let channel = self.changes_channel();
        let node = self.node.clone();
        tokio::spawn(async move {
            loop {
                let connected =
                    tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub()).await;
                if let Ok(Ok(mut pubsub)) = connected {
                    if pubsub.subscribe(&channel).await.is_ok() {
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            let Ok(payload) = message.get_payload::<String>() else {
                                continue;
                            };
                            // This node's own announcements: it has caught up already.
                            let Some((from, tenant)) = payload.split_once(':') else {
                                continue;
                            };
                            if from == node {
                                continue;
                            }
                            if let Ok(tenant_id) = tenant.parse::<i64>() {
                                on_change(tenant_id);
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// The query text registered under an automatic persisted query's SHA-256 (hex).
    pub async fn persisted_query(&self, sha256_hex: &str) -> Option<String> {
        let key = format!("{}:apq:{sha256_hex}", self.settings.prefix);
        self.get(&key)
            .await
            .and_then(|bytes| String::from_utf8(bytes).ok())
    }

    /// Registers a persisted query for a week (renewed by every registration).
    pub async fn store_persisted_query(&self, sha256_hex: &str, query: &str) {
        let key = format!("{}:apq:{sha256_hex}", self.settings.prefix);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(query)
            .arg("EX")
            .arg(PERSISTED_QUERY_TTL_SECS);
        let _: Option<()> = self.call(cmd).await;
    }

    /// Whether Redis answers a PING now (false while the breaker skips it).
    pub async fn ping(&self) -> bool {
        self.call::<String>(redis::cmd("PING")).await.is_some()
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

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

/// For data changed outside the API (hand-made SQL, exchange rates loaded by a
/// script): sets a new data version on every shop and account, then publishes each
/// tenant's versions to Redis, so that no answer cached before the change is served
/// again. Returns how many tenants were published.
pub async fn invalidate_all(database_url: &str, cache: &Cache) -> anyhow::Result<usize> {
    let url = database_url.to_string();
    let tenants = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<TenantVersions>> {
        use diesel::prelude::*;
        let mut conn = PgConnection::establish(&url)?;
        conn.transaction(|c| {
            diesel::sql_query("UPDATE shops SET data_version = nextval('data_version_seq')")
                .execute(c)?;
            diesel::sql_query("UPDATE accounts SET data_version = nextval('data_version_seq')")
                .execute(c)?;
            Ok::<_, diesel::result::Error>(())
        })?;
        let ids: Vec<i64> = crate::db::schema::tenants::table
            .select(crate::db::schema::tenants::id)
            .load(&mut conn)?;
        ids.into_iter()
            .map(|id| {
                crate::db::accounts::tenant_versions(&mut conn, id)
                    .map_err(|e| anyhow::anyhow!("{}", e.public_message()))
            })
            .collect()
    })
    .await??;
    for versions in &tenants {
        if !cache.publish_versions(versions).await {
            anyhow::bail!(
                "Redis did not take tenant {}'s versions; cached answers stop being served within CACHE_VERSION_TTL_MS",
                versions.tenant_id
            );
        }
    }
    Ok(tenants.len())
}

/// Sets each version key to its version unless it holds a greater one (a value that is
/// not a number is replaced). KEYS: version
/// keys; ARGV[1]: lifetime in ms; ARGV[2..]: the versions, in the order of KEYS.
const RAISE_VERSIONS: &str = r#"
for i, key in ipairs(KEYS) do
  local current = tonumber(redis.call('GET', key))
  if (not current) or current < tonumber(ARGV[i + 1]) then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
  end
end
return 1
"#;

/// Stores a response entry and, when ARGV[6] is '1', raises the version keys as
/// RAISE_VERSIONS does. KEYS: tenant version, account version, response. ARGV: tenant
/// version, account version, entry, entry lifetime ms, version lifetime ms, raise.
const STORE_RESPONSE: &str = r#"
if ARGV[6] == '1' then
  for i = 1, 2 do
    local current = tonumber(redis.call('GET', KEYS[i]))
    if (not current) or current < tonumber(ARGV[i]) then
      redis.call('SET', KEYS[i], ARGV[i], 'PX', ARGV[5])
    end
  end
end
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
return 1
"#;

/// Lower-case hex of a digest, for keys (and persisted-query hashes).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits a response entry `tenant:account:generation:body` into its stamp and the
/// offset of the body; `None` when it does not parse (a corrupt entry is a miss).
fn split_entry(entry: &[u8]) -> Option<(ResponseStamp, usize)> {
    let mut fields = [0i64; 3];
    let mut at = 0;
    for field in &mut fields {
        let end = at + entry.get(at..)?.iter().position(|b| *b == b':')?;
        *field = std::str::from_utf8(&entry[at..end]).ok()?.parse().ok()?;
        at = end + 1;
    }
    Some((
        ResponseStamp {
            tenant_version: fields[0],
            account_version: fields[1],
            token_generation: i32::try_from(fields[2]).ok()?,
        },
        at,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_into_stamp_and_body() {
        let (stamp, at) = split_entry(b"17:23:2:{\"data\":1}").unwrap();
        assert_eq!(
            stamp,
            ResponseStamp {
                tenant_version: 17,
                account_version: 23,
                token_generation: 2
            }
        );
        assert_eq!(at, 8);
        assert!(split_entry(b"garbage").is_none());
        assert!(split_entry(b"1:2:x:{}").is_none());
        assert!(split_entry(b"").is_none());
    }
}
