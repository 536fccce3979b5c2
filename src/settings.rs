//! Configuration from the environment, with defaults that work on a developer machine.

use std::time::Duration;

use serde::Deserialize;

use crate::domain::Permission;

/// Where the process runs; production turns off GraphiQL and introspection and
/// switches logs to JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// The development signing secret. Refused when `APP_ENV=production`.
pub const DEV_JWT_SECRET: &str = "orderscope-development-secret-do-not-use-in-production";

/// Everything the application needs to start.
#[derive(Clone, Debug)]
pub struct Settings {
    pub environment: Environment,
    /// `host:port`; port 0 picks a free port (tests).
    pub bind: String,
    pub database_url: String,
    /// Redis for the aggregate cache (`REDIS_URL`, `CACHE_*`).
    pub cache: CacheSettings,
    pub db_pool_size: u32,
    /// Statements one request may run at once (`DB_REQUEST_CONCURRENCY`).
    pub db_per_request: usize,
    /// Statements one tenant's requests may run at once together
    /// (`DB_TENANT_CONCURRENCY`, default half the pool): the rest is left for others.
    pub db_per_tenant: usize,
    /// How long a request waits for a pooled connection before `UNAVAILABLE`.
    pub db_checkout_timeout: Duration,
    /// Time limit for one GraphQL request; also set as the SQL `statement_timeout`
    /// so that a request that gives up also stops its query.
    pub request_timeout: Duration,
    /// How often an idle node follows the change log (`ANALYTICS_SYNC_MS`); requests
    /// catch up on their own before answering.
    pub analytics_sync_interval: Duration,
    /// Rows from which one analytics scan uses two threads (`ANALYTICS_PARALLEL_FROM`).
    pub analytics_parallel_from: usize,
    /// Tail rows from which a node merges its written orders into its sorted store
    /// (`ANALYTICS_COMPACT_AT`).
    pub analytics_compact_at: usize,
    /// The delivery promise ON_TIME_RATE measures against, in hours from shipment to
    /// delivery (`DELIVERY_PROMISE_HOURS`, 1 to 720).
    pub delivery_promise_hours: i64,
    /// How often a node looks for due scheduled reports (`SCHEDULER_TICK_MS`).
    pub scheduler_tick: Duration,
    /// The first wait before a failed scheduled delivery is retried, doubling on each
    /// later failure (`SCHEDULE_RETRY_BASE_MS`).
    pub schedule_retry_base: Duration,
    /// Longest an orders export may run (its query's `statement_timeout`).
    pub export_timeout: Duration,
    pub jwt: JwtSettings,
    pub limits: Limits,
    /// Whether `/` serves the reference dashboard (`DASHBOARD`: on by default outside
    /// production, off in production unless `DASHBOARD=on`).
    pub dashboard: bool,
    /// The scheme and host clients reach the server by (`PUBLIC_URL`, e.g.
    /// `https://api.example.com`), for the URLs it hands out; absent: the request's.
    pub public_url: Option<String>,
    /// Origins whose browser pages may call the API (`CORS_ALLOWED_ORIGINS`).
    pub cors: AllowedOrigins,
}

/// Token verification settings (docs/AUTH.md).
#[derive(Clone, Debug)]
pub struct JwtSettings {
    pub secret: String,
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
    /// Lifetime of tokens minted by `orderscope token` and by the demo setup.
    pub default_ttl: Duration,
    /// Public keys of an external issuer as a JWKS file (RS256/ES256, selected by `kid`).
    /// Re-read when a token names an unknown `kid`, so keys rotate without a restart.
    pub jwks_file: Option<std::path::PathBuf>,
    /// One external public key as a PEM file, with its `kid` and algorithm.
    pub public_key_file: Option<std::path::PathBuf>,
    pub public_key_kid: String,
    pub public_key_alg: String,
    /// OpenID Connect providers whose ID or access tokens are accepted
    /// (`OIDC_ISSUERS`, a JSON array; docs/AUTH.md).
    pub oidc: Vec<OidcIssuer>,
}

/// Guards against expensive or abusive GraphQL requests.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_body_bytes: usize,
    /// Deepest bracket nesting of a query document, checked before it is parsed.
    pub max_nesting: usize,
    pub max_page_size: i32,
    pub max_ingest_batch: usize,
    /// Largest order export `POST /import/orders` takes (`IMPORT_MAX_BYTES`).
    pub max_import_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 12,
            max_complexity: 5_000,
            max_body_bytes: 4 * 1024 * 1024,
            max_nesting: 48,
            max_page_size: 200,
            max_ingest_batch: 1000,
            max_import_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Where settings are read from: the environment, or nothing (the defaults).
struct Source<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Source<'_> {
    /// The variable as set (empty included).
    fn raw(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    fn or(&self, name: &str, default: &str) -> String {
        self.raw(name)
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| default.to_string())
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.raw(name) {
            Some(v) if !v.trim().is_empty() => v
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{name} must be a number, got {v:?}")),
            _ => Ok(default),
        }
    }
}

impl Settings {
    /// Reads `DATABASE_URL`, `REDIS_URL`, `JWT_*`, `BIND`, `APP_ENV` and the limits.
    pub fn from_env() -> anyhow::Result<Settings> {
        Self::read(Source(&|name| std::env::var(name).ok()))
    }

    /// What a node runs with when no variable is set (tests start from these).
    pub fn defaults() -> Settings {
        Self::read(Source(&|_| None)).expect("the default settings are valid")
    }

    fn read(env: Source<'_>) -> anyhow::Result<Settings> {
        let environment = match env
            .or("APP_ENV", "development")
            .to_ascii_lowercase()
            .as_str()
        {
            "production" | "prod" => Environment::Production,
            "development" | "dev" | "test" | "local" => Environment::Development,
            other => anyhow::bail!("APP_ENV must be development or production, got {other:?}"),
        };
        let secret = env.or("JWT_SECRET", DEV_JWT_SECRET);
        if environment == Environment::Production && secret == DEV_JWT_SECRET {
            anyhow::bail!("JWT_SECRET must be set in production");
        }
        if secret.len() < 32 {
            anyhow::bail!("JWT_SECRET must be at least 32 bytes");
        }
        let redis_url = env.or("REDIS_URL", "redis://127.0.0.1:6379");
        if redis_url.starts_with("rediss://") {
            // Refused here rather than turning the cache off in silence at the first use.
            anyhow::bail!(
                "REDIS_URL uses rediss:// (TLS), which this build does not support: \
                 use redis:// on a private network or through a TLS tunnel"
            );
        }
        let db_pool_size = env.num("DB_POOL_SIZE", 16)?;
        Ok(Settings {
            environment,
            bind: env.or("BIND", "127.0.0.1:8080"),
            database_url: env.or(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/orderscope",
            ),
            cache: CacheSettings {
                redis_url,
                prefix: env.or("CACHE_PREFIX", "orderscope"),
                ttl: Duration::from_secs(env.num("CACHE_TTL_SECONDS", 3600)?),
                timeout: Duration::from_millis(env.num("CACHE_TIMEOUT_MS", 200)?),
                breaker_failures: env.num("CACHE_BREAKER_FAILURES", 3)?,
                breaker_cooldown: Duration::from_millis(
                    env.num("CACHE_BREAKER_COOLDOWN_MS", 2_000)?,
                ),
                version_ttl: Duration::from_millis(env.num("CACHE_VERSION_TTL_MS", 5_000)?),
            },
            db_pool_size,
            db_per_request: env.num("DB_REQUEST_CONCURRENCY", 4)?,
            db_per_tenant: env.num("DB_TENANT_CONCURRENCY", (db_pool_size as usize / 2).max(1))?,
            db_checkout_timeout: Duration::from_millis(env.num("DB_CHECKOUT_TIMEOUT_MS", 2_000)?),
            request_timeout: Duration::from_millis(env.num("REQUEST_TIMEOUT_MS", 10_000)?),
            export_timeout: Duration::from_millis(env.num("EXPORT_TIMEOUT_MS", 600_000)?),
            analytics_sync_interval: Duration::from_millis(env.num("ANALYTICS_SYNC_MS", 1_000)?),
            analytics_parallel_from: env.num("ANALYTICS_PARALLEL_FROM", 200_000)?,
            analytics_compact_at: env.num("ANALYTICS_COMPACT_AT", 1_000_000)?,
            scheduler_tick: Duration::from_millis(env.num("SCHEDULER_TICK_MS", 5_000)?.max(50)),
            schedule_retry_base: Duration::from_millis(env.num("SCHEDULE_RETRY_BASE_MS", 30_000)?),
            delivery_promise_hours: match env.num("DELIVERY_PROMISE_HOURS", 72i64)? {
                h @ 1..=720 => h,
                h => anyhow::bail!("DELIVERY_PROMISE_HOURS must be 1 to 720, got {h}"),
            },
            jwt: JwtSettings {
                secret,
                issuer: env.or("JWT_ISSUER", "orderscope"),
                audience: env.or("JWT_AUDIENCE", "orderscope-api"),
                leeway_seconds: env.num("JWT_LEEWAY_SECONDS", 30)?,
                default_ttl: Duration::from_secs(env.num("JWT_TTL_SECONDS", 7 * 24 * 3600)?),
                jwks_file: env
                    .raw("JWT_JWKS_FILE")
                    .filter(|v| !v.is_empty())
                    .map(Into::into),
                public_key_file: env
                    .raw("JWT_PUBLIC_KEY_FILE")
                    .filter(|v| !v.is_empty())
                    .map(Into::into),
                public_key_kid: env.or("JWT_PUBLIC_KEY_KID", "external"),
                public_key_alg: env.or("JWT_PUBLIC_KEY_ALG", "RS256"),
                oidc: OidcIssuer::from_setting(env.raw("OIDC_ISSUERS").as_deref())?,
            },
            limits: Limits {
                max_import_bytes: env
                    .num("IMPORT_MAX_BYTES", Limits::default().max_import_bytes)?,
                ..Limits::default()
            },
            public_url: env.raw("PUBLIC_URL").filter(|v| !v.is_empty()),
            dashboard: match env.raw("DASHBOARD").as_deref() {
                Some("on") | Some("1") | Some("true") => true,
                Some("off") | Some("0") | Some("false") => false,
                Some(other) => anyhow::bail!("DASHBOARD must be on or off, not {other:?}"),
                None => environment != Environment::Production,
            },
            cors: AllowedOrigins::from_setting(
                env.raw("CORS_ALLOWED_ORIGINS").as_deref(),
                environment == Environment::Production,
            ),
        })
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }
}

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
    /// Lifetime of the version keys the response cache checks entries against; it
    /// bounds how long a write whose publication to Redis failed can go unseen by
    /// other processes.
    pub version_ttl: Duration,
}

/// Which origins may read answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `http(s)://localhost`, `127.0.0.1` or `[::1]`, any port.
    Loopback,
    /// Exactly these origins.
    List(Vec<String>),
}

impl AllowedOrigins {
    /// `CORS_ALLOWED_ORIGINS` if set, else loopback outside production and none in it.
    pub fn from_setting(value: Option<&str>, production: bool) -> AllowedOrigins {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            Some(list) => AllowedOrigins::List(
                list.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_string())
                    .filter(|o| !o.is_empty())
                    .collect(),
            ),
            None if production => AllowedOrigins::List(Vec::new()),
            None => AllowedOrigins::Loopback,
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::List(list) => list.iter().any(|o| o == origin),
            AllowedOrigins::Loopback => {
                let Some(rest) = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                else {
                    return false;
                };
                let host = match rest.strip_prefix("[::1]") {
                    Some(port) => return port.is_empty() || is_port(port),
                    None => rest.split(':').next().unwrap_or(""),
                };
                let port = &rest[host.len()..];
                matches!(host, "localhost" | "127.0.0.1") && (port.is_empty() || is_port(port))
            }
        }
    }
}

fn is_port(text: &str) -> bool {
    text.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// One OpenID Connect provider whose tokens are accepted (an entry of `OIDC_ISSUERS`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcIssuer {
    /// The provider's `iss`, exactly as in its tokens.
    pub issuer: String,
    /// Accepted `aud` values; a token's `aud` (a string or an array) must hold one.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// The provider's JWKS (`jwks_uri` of its discovery document).
    pub jwks_url: String,
    /// The claim that identifies the person (default `sub`).
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// A claim naming the orderscope tenant (its id); when set, it must match the
    /// linked account's tenant.
    #[serde(default)]
    pub tenant_claim: Option<String>,
    /// A claim (a dotted path such as `realm_access.roles`) holding the person's roles
    /// or groups; with `rolePermissions`, they narrow the account's permissions.
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// Permissions each role grants; a person gets the union of their roles', and never
    /// more than the linked account holds.
    #[serde(default)]
    pub role_permissions: std::collections::BTreeMap<String, Vec<String>>,
    /// Seconds the provider's keys are kept before they are fetched again (default
    /// 600); an unknown `kid` fetches them at once (at most every 10 s).
    #[serde(default = "default_jwks_ttl")]
    pub jwks_cache_seconds: u64,
}

fn default_subject_claim() -> String {
    "sub".into()
}

fn default_jwks_ttl() -> u64 {
    600
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

impl OidcIssuer {
    /// Parses `OIDC_ISSUERS` (a JSON array); unknown fields and permissions are errors.
    pub fn from_setting(text: Option<&str>) -> anyhow::Result<Vec<OidcIssuer>> {
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return Ok(Vec::new());
        };
        let issuers: Vec<OidcIssuer> = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("OIDC_ISSUERS is not a valid list of issuers: {e}"))?;
        for issuer in &issuers {
            if issuer.audience.is_empty() {
                anyhow::bail!("OIDC_ISSUERS: {} needs an audience", issuer.issuer);
            }
            for (role, permissions) in &issuer.role_permissions {
                if let Some(bad) = permissions.iter().find(|p| Permission::parse(p).is_none()) {
                    anyhow::bail!(
                        "OIDC_ISSUERS: role {role:?} of {} grants unknown permission {bad:?}",
                        issuer.issuer
                    );
                }
            }
        }
        Ok(issuers)
    }
}
