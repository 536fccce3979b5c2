//! Test support: a database per test cloned from a migrated template, the real
//! application on port 0, and an HTTP client that speaks GraphQL to it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use orderscope::auth::{TokenSubject, TokenVerifier};
use orderscope::settings::Settings;
use serde_json::{json, Value};

pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The template's name changes with the migrations, so a stale template is never used.
fn template_name() -> String {
    // The migrations and the functions `migrate` re-applies after them.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut entries: Vec<_> = walk(&root.join("migrations"));
    entries.sort();
    entries.push(root.join("src/db/functions.sql"));
    let mut hasher = DefaultHasher::new();
    for path in entries {
        path.to_string_lossy().hash(&mut hasher);
        std::fs::read(&path)
            .expect("read migration")
            .hash(&mut hasher);
    }
    format!("orderscope_tmpl_{:x}", hasher.finish())
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("migrations dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A database of a test's own, dropped (with any connection still open to it) when the
/// last handle using it goes, so a run leaves no databases behind.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = format!("{}/postgres", server_url());
        if let Ok(mut admin) = PgConnection::establish(&admin_url) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Creates (once, under an advisory lock, for every test process) the migrated template
/// and clones a fresh database from it.
pub fn fresh_database() -> TestDatabase {
    let admin_url = format!("{}/postgres", server_url());
    let mut admin = PgConnection::establish(&admin_url).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {admin_url}: {e}. Run scripts/test, which starts it."
        )
    });
    let template = template_name();
    admin
        .batch_execute("SELECT pg_advisory_lock(424242)")
        .unwrap();
    let exists: i64 = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM pg_database WHERE datname = '{template}'"
    ))
    .get_result::<Count>(&mut admin)
    .unwrap()
    .n;
    if exists == 0 {
        admin
            .batch_execute(&format!("CREATE DATABASE {template}"))
            .unwrap();
        let mut conn = PgConnection::establish(&format!("{}/{template}", server_url())).unwrap();
        orderscope::db::migrate(&mut conn).unwrap();
    }
    let name = format!("orderscope_t_{}", uuid::Uuid::new_v4().simple());
    let created = admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"));
    admin
        .batch_execute("SELECT pg_advisory_unlock(424242)")
        .unwrap();
    created.unwrap();
    TestDatabase {
        url: format!("{}/{name}", server_url()),
        name,
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A node's default settings (`Settings::defaults`, what `serve` runs with when no
/// variable is set) with what a test needs changed, each for the reason given.
pub fn test_settings(database_url: &str) -> Settings {
    let mut s = Settings::defaults();
    // Any free port, this test's database, and the Redis the suite runs against.
    s.bind = "127.0.0.1:0".into();
    s.database_url = database_url.into();
    if let Ok(url) = std::env::var("REDIS_URL") {
        s.cache.redis_url = url;
    }
    // Each test has its own key space.
    s.cache.prefix = format!("orderscope-test-{}", uuid::Uuid::new_v4());
    // The breaker tests wait for it: trip fast and retry soon.
    s.cache.timeout = Duration::from_millis(100);
    s.cache.breaker_cooldown = Duration::from_millis(300);
    // Dozens of test servers share one PostgreSQL.
    s.db_pool_size = 8;
    s.db_per_tenant = 4;
    // A loaded CI machine: more room before a checkout or a request times out.
    s.db_checkout_timeout = Duration::from_secs(5);
    s.request_timeout = Duration::from_secs(20);
    s.analytics_sync_interval = Duration::from_millis(500);
    // Small datasets take the two-thread scan path as well.
    s.analytics_parallel_from = 16;
    // Written orders are merged into the sorted store after a few dozen.
    s.analytics_compact_at = 40;
    // Every test server looks for due reports; once a second keeps dozens of them from
    // loading the shared PostgreSQL, and retries come within the test's patience.
    s.scheduler_tick = Duration::from_millis(1000);
    s.schedule_retry_base = Duration::from_millis(500);
    // The secret the tests sign with, a short leeway for expiry tests, hour-long tokens.
    s.jwt.secret = "test-secret-test-secret-test-secret-0123".into();
    s.jwt.leeway_seconds = 5;
    s.jwt.default_ttl = Duration::from_secs(3600);
    s
}

/// The five abnormal-order lists and their definitions in SQL over `orders o`.
pub const ABNORMAL_SQL: &[(&str, &str)] = &[
    ("UNPAID_OVER_24H", "o.status = 'PENDING_PAYMENT' AND o.placed_at < now() - interval '24 hours'"),
    ("SHIP_OVERDUE", "o.status = 'AWAITING_SHIPMENT' AND o.paid_at < now() - interval '48 hours'"),
    ("DELIVERY_STALLED", "o.status = 'SHIPPED' AND o.shipped_at < now() - interval '7 days'"),
    ("REFUND_PENDING", "EXISTS (SELECT 1 FROM after_sales a WHERE a.order_id = o.id AND a.status IN ('REQUESTED', 'APPROVED') AND a.kind <> 'EXCHANGE')"),
    ("DISPUTE_OPEN", "EXISTS (SELECT 1 FROM after_sales a WHERE a.order_id = o.id AND a.dispute = 'OPEN')"),
];

/// Two tenants, three shops (one in USD) and five accounts, without orders.
pub const FIXTURE: &str = "INSERT INTO tenants (id, name) VALUES (1, 'T1'), (2, 'T2');
     INSERT INTO shops (id, tenant_id, platform, external_id, name, currency, timezone) VALUES
       (1, 1, 'DOUYIN', 'dy1', '抖音店', 'CNY', 'Asia/Shanghai'),
       (2, 1, 'TIKTOK', 'tt1', 'TikTok US', 'USD', 'America/Los_Angeles'),
       (3, 2, 'TMALL', 'tm1', '天猫店', 'CNY', 'Asia/Shanghai');
     INSERT INTO accounts (id, tenant_id, name, is_owner, permissions, shop_ids) VALUES
       (1, 1, 'owner', true, '{}', '{}'),
       (2, 1, 'viewer', false, '{ANALYTICS_READ,ORDERS_READ}', '{}'),
       (3, 2, 'owner2', true, '{}', '{}'),
       (4, 1, 'integration', false, '{ORDERS_WRITE}', '{}'),
       (5, 1, 'shop1 only', false, '{ORDERS_READ,ORDERS_WRITE}', '{1}');
     SELECT setval('tenants_id_seq', 2), setval('shops_id_seq', 3), setval('accounts_id_seq', 5);";

/// A running application with its own database: a cheap handle to clone into tasks.
/// The database goes when the last handle (nodes started from it included) does.
#[derive(Clone)]
pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub settings: Settings,
    pub client: reqwest::Client,
    database: Option<Arc<TestDatabase>>,
}

impl TestApp {
    /// Starts the app on a fresh database seeded with `orders` demo orders (0: none).
    pub async fn spawn(orders: u64) -> TestApp {
        Self::spawn_with(orders, |_| {}).await
    }

    pub async fn spawn_with(orders: u64, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_days(orders, 60, tweak).await
    }

    /// Like `spawn_with`, with `days` of history ending 2026-11-20.
    pub async fn spawn_days(orders: u64, days: u32, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let database = tokio::task::spawn_blocking(move || {
            let database = fresh_database();
            let url = &database.url;
            if orders > 0 {
                let args = orderscope::seed::SeedArgs {
                    orders,
                    shops: 8,
                    days,
                    seed: 7,
                    end_date: Some(chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()),
                    products: Some(80),
                    creators: Some(40),
                    if_empty: false,
                };
                orderscope::seed::run(url, &args).expect("seed");
            } else {
                let mut conn = PgConnection::establish(url).unwrap();
                conn.batch_execute(FIXTURE).unwrap();
            }
            database
        })
        .await
        .unwrap();
        let mut settings = test_settings(&database.url);
        tweak(&mut settings);
        let app = Self::start(database.url.clone(), settings, Some(Arc::new(database)));
        app.wait_until_ready().await;
        app
    }

    /// Waits (up to 30 s) until `/readyz` reports the analytic store loaded, as a load
    /// balancer would before sending traffic: a test that then locks tables must not
    /// catch the node's first load waiting on them.
    pub async fn wait_until_ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(resp) = self
                .client
                .get(format!("{}/readyz", self.address))
                .send()
                .await
            {
                if let Ok(body) = resp.json::<Value>().await {
                    if body["analytics"] == "loaded" {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A connection to this app's Redis, and the keys under its prefix that match
    /// `pattern` (`*` for all).
    pub async fn redis_keys(
        &self,
        pattern: &str,
    ) -> (redis::aio::MultiplexedConnection, Vec<String>) {
        let client = redis::Client::open(self.settings.cache.redis_url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:{pattern}", self.settings.cache.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        (conn, keys)
    }

    /// The app on a database the caller prepared (another PostgreSQL server, say).
    pub fn on_database(database_url: &str, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = test_settings(database_url);
        tweak(&mut settings);
        Self::start(database_url.to_string(), settings, None)
    }

    /// A second server process on the same database and Redis key space, as a second
    /// API node behind a load balancer would be.
    pub fn second_node(&self) -> TestApp {
        Self::start(
            self.database_url.clone(),
            self.settings.clone(),
            self.database.clone(),
        )
    }

    /// Another server process on the same database with changed settings.
    pub fn node_with(&self, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = self.settings.clone();
        tweak(&mut settings);
        Self::start(self.database_url.clone(), settings, self.database.clone())
    }

    fn start(
        database_url: String,
        settings: Settings,
        database: Option<Arc<TestDatabase>>,
    ) -> TestApp {
        let app = orderscope::startup::Application::build(settings.clone()).expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        TestApp {
            address,
            database_url,
            settings,
            database,
            // Idle connections expire before the server's 5 s keep-alive closes them, so a
            // test that pauses between requests never reuses a closing connection.
            client: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        }
    }

    pub fn token(&self, account_id: i64, tenant_id: i64) -> String {
        let subject = TokenSubject::account(account_id, tenant_id, 0);
        let verifier = TokenVerifier::new(&self.settings.jwt).unwrap();
        verifier.issue(subject, None).unwrap().token
    }

    /// Owner of tenant 1 (account 1 in both fixtures).
    pub fn owner(&self) -> String {
        self.token(1, 1)
    }

    pub async fn post_raw(&self, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }

    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        self.post_raw(
            Some(token),
            json!({ "query": query, "variables": variables }),
        )
        .await
        .1
    }

    /// Runs a query that must succeed past both caches (`X-Cache-Bypass`), so that
    /// this node computes it, and returns its `data`.
    pub async fn data_computed(&self, token: &str, query: &str, variables: Value) -> Value {
        let body: Value = self
            .client
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .header("X-Cache-Bypass", "1")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json body");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Runs a query that must succeed and returns its `data`.
    pub async fn data(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.gql(token, query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.database_url).unwrap()
    }

    /// Runs SQL statements directly against the test database (fixtures, checks).
    pub fn conn_exec(&self, sql: &str) {
        use diesel::connection::SimpleConnection;
        self.conn().batch_execute(sql).unwrap();
    }

    /// Changes data behind the API's back, then does what an operator must do after
    /// that: `orderscope invalidate-cache`.
    pub async fn out_of_band(&self, sql: &str) {
        self.conn_exec(sql);
        let cache = orderscope::cache::Cache::new(self.settings.cache.clone());
        orderscope::cache::invalidate_all(&self.database_url, &cache)
            .await
            .expect("invalidate");
    }

    /// A scalar from raw SQL, for comparing answers with the database.
    pub fn sql_i64(&self, sql: &str) -> i64 {
        diesel::sql_query(format!("SELECT ({sql})::bigint AS n"))
            .get_result::<Count>(&mut self.conn())
            .unwrap()
            .n
    }

    /// Ids from raw SQL (a query returning one bigint column `id`).
    pub fn sql_ids(&self, sql: &str) -> Vec<i64> {
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        diesel::sql_query(sql)
            .load::<Id>(&mut self.conn())
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    }
}

/// The `extensions.code` of the first error.
pub fn error_code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
        .to_string()
}

/// One sample of the server's `/metrics`, by its full name (labels included).
pub async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// A redis-server of this test's own on a free port.
pub struct PrivateRedis {
    pub port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    pub fn start(port: u16) -> PrivateRedis {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/services.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "private redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { port, child }
    }

    /// The server's process id (for pausing it with SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `orderscope serve` as its own OS process on `database_url` (with `env` added), ready
/// (analytic store loaded) when this returns; killed when dropped.
pub struct ServerProcess {
    child: std::process::Child,
    pub address: String,
}

impl ServerProcess {
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_orderscope"))
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = ServerProcess {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = client
                .get(format!("{}/readyz", server.address))
                .send()
                .await
            {
                if r.status() == 200 {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server process did not become ready");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tests/clients, where the Node scripts of the client tests are, with their packages.
pub fn client_scripts() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    assert!(
        dir.join("node_modules").exists(),
        "tests/clients/node_modules is missing: run `npm ci` in tests/clients (scripts/test does)"
    );
    dir
}
