//! The Redis caches: answers of `kpis`, `trend`, `breakdown` and `dailyReport`
//! (`aggregates`), whole report responses and persisted queries (`responses`), and the
//! nodes' change announcements (`changes`), over one connection (`connection`) behind
//! a breaker (`breaker`).
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
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use redis::aio::MultiplexedConnection;
use sha2::{Digest, Sha256};

use crate::auth::Principal;

/// Marks the format of stored entries; a change of format changes every key.
const FORMAT: &str = "v1";

pub use crate::settings::CacheSettings;

mod aggregates;
mod breaker;
mod changes;
mod connection;
mod invalidate;
mod metrics;
mod responses;

use aggregates::Flight;
use breaker::Breaker;
pub use breaker::BreakerState;
pub use invalidate::invalidate_all;
use metrics::Counters;

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

    /// Whether Redis answers a PING now (false while the breaker skips it).
    pub async fn ping(&self) -> bool {
        self.call::<String>(redis::cmd("PING")).await.is_some()
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }
}

/// Lower-case hex of a digest, for keys (and persisted-query hashes).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
