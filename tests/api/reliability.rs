//! Faults of the services around the server: PostgreSQL restarted, backends terminated
//! under load, Redis paused, clients that hang up in the middle of a mutation. A test
//! that breaks a service breaks a private instance of its own, never the shared one.
//! What each asserts: the server recovers by itself, its errors carry the right code
//! (never INTERNAL), and nothing it acknowledged is lost.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{error_code, PrivateRedis, TestApp, FIXTURE};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL cluster of this test's own (Debian's `pg_createcluster`, trust on
/// loopback), dropped with the value.
struct PrivatePostgres {
    version: String,
    name: String,
    port: u16,
}

fn run(cmd: &mut Command) {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivatePostgres {
    fn create() -> PrivatePostgres {
        let versions = std::fs::read_dir("/usr/lib/postgresql").expect(
            "PostgreSQL server binaries are missing: scripts/test installs them (apt-get install postgresql)",
        );
        let mut versions: Vec<String> = versions
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        versions.sort_by_key(|v| v.parse::<u32>().unwrap_or(0));
        let version = versions.pop().expect("a PostgreSQL version");
        let port = free_port();
        let name = format!("osrel{port}");
        // Creating and controlling a cluster needs root (scripts/test runs as root in CI).
        run(Command::new("pg_createcluster").args([
            &version,
            &name,
            "-p",
            &port.to_string(),
            "--",
            "--auth-host=trust",
            "--auth-local=trust",
        ]));
        let pg = PrivatePostgres {
            version,
            name,
            port,
        };
        pg.start();
        pg
    }

    fn ctl(&self, action: &str) {
        run(Command::new("pg_ctlcluster").args([
            "--skip-systemctl-redirect",
            &self.version,
            &self.name,
            action,
            "-m",
            "fast",
        ]));
    }

    fn start(&self) {
        self.ctl("start");
        let deadline = Instant::now() + Duration::from_secs(30);
        while PgConnection::establish(&self.url("postgres")).is_err() {
            assert!(
                Instant::now() < deadline,
                "private PostgreSQL did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", &self.version, &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

const SHOPS: &str = "{ shops { id } orders(first: 1) { totalCount } }";

/// One request: `Ok` when it answered correctly, else its status and code.
async fn probe(app: &TestApp, token: &str) -> Result<(), (u16, String)> {
    let (status, body) = app.post_raw(Some(token), json!({ "query": SHOPS })).await;
    if status == 200 && body.get("errors").is_none() && body["data"]["shops"][0]["id"] == "1" {
        Ok(())
    } else {
        Err((status, error_code(&body)))
    }
}

#[tokio::test]
async fn idle_and_busy_nodes_answer_within_five_seconds_of_postgres_coming_back() {
    let pg = tokio::task::spawn_blocking(|| {
        let pg = PrivatePostgres::create();
        let url = pg.url("orderscope_rel");
        orderscope::db::ensure_database(&url).unwrap();
        let mut conn = PgConnection::establish(&url).unwrap();
        orderscope::db::migrate(&mut conn).unwrap();
        conn.batch_execute(FIXTURE).unwrap();
        pg
    })
    .await
    .unwrap();
    let tweak = |s: &mut orderscope::settings::Settings| {
        s.db_checkout_timeout = Duration::from_millis(500);
        s.request_timeout = Duration::from_secs(3);
    };
    let idle = TestApp::on_database(&pg.url("orderscope_rel"), tweak);
    let busy = idle.node_with(tweak);
    let token = idle.owner();
    // Both nodes fill their pools (min_idle) and answer.
    for _ in 0..8 {
        probe(&idle, &token).await.unwrap();
        probe(&busy, &token).await.unwrap();
    }
    // The busy node keeps asking through the outage; the idle node is left alone.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let address = busy.address.clone();
        let client = busy.client.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let mut codes = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let resp = client
                    .post(format!("{address}/graphql"))
                    .bearer_auth(&token)
                    .json(&json!({ "query": SHOPS }))
                    .send()
                    .await;
                if let Ok(resp) = resp {
                    let status = resp.status().as_u16();
                    let body: Value = resp.json().await.unwrap_or(Value::Null);
                    codes.push((Instant::now(), status, error_code(&body)));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            codes
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.ctl("stop");
        std::thread::sleep(Duration::from_secs(1));
        pg.start();
        pg
    })
    .await
    .unwrap();
    let back = Instant::now();
    // The idle node: its very next request is answered, and every one after it.
    for i in 0..20 {
        if let Err(e) = probe(&idle, &token).await {
            panic!("idle node, request {i} after PostgreSQL came back: {e:?}");
        }
    }
    // The busy node: answering again within 5 s, and from then on without a failure.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let codes = load.await.unwrap();
    let late_failures: Vec<_> = codes
        .iter()
        .filter(|(at, status, _)| *at > back + Duration::from_secs(5) && *status != 200)
        .collect();
    assert!(
        late_failures.is_empty(),
        "busy node still failing: {late_failures:?}"
    );
    assert!(
        codes
            .iter()
            .any(|(at, status, _)| *at > back + Duration::from_secs(5) && *status == 200),
        "the busy node answered nothing after recovery"
    );
    // During the outage it said so with UNAVAILABLE (or TIMEOUT), never INTERNAL.
    for (_, status, code) in &codes {
        assert!(
            *status == 200 || code == "UNAVAILABLE" || code == "TIMEOUT",
            "{status} {code}"
        );
    }
    drop(pg);
}

#[tokio::test]
async fn terminated_backends_cost_at_most_their_own_requests() {
    let app = TestApp::spawn(300).await;
    let token = app.owner();
    let query = "{ kpis(range: {from: \"2026-10-01\", to: \"2026-11-20\"}, metrics: [ORDERS, GMV]) { values { value } } orders(first: 5) { totalCount } }";
    let want = app.data(&token, query, json!({})).await;
    let mut handles = Vec::new();
    for _ in 0..4 {
        let client = app.client.clone();
        let address = app.address.clone();
        let token = token.clone();
        handles.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..60 {
                let resp = client
                    .post(format!("{address}/graphql"))
                    .bearer_auth(&token)
                    .header("X-Cache-Bypass", "1")
                    .json(&json!({ "query": query }))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                outcomes.push((status, resp.json::<Value>().await.unwrap()));
            }
            outcomes
        }));
    }
    let killer = {
        let url = app.database_url.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = PgConnection::establish(&url).unwrap();
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(100));
                conn.batch_execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .unwrap();
            }
        })
    };
    killer.await.unwrap();
    let mut failed = 0;
    for handle in handles {
        for (status, body) in handle.await.unwrap() {
            if status == 200 && body.get("errors").is_none() {
                assert_eq!(body["data"], want, "a wrong answer under terminations");
            } else {
                failed += 1;
                assert_eq!(error_code(&body), "UNAVAILABLE", "{status} {body}");
            }
        }
    }
    // After the terminations: a connection killed while idle fails the one request
    // that finds it (UNAVAILABLE) and is discarded, so within a pool's worth of
    // requests every answer is right again.
    let mut after = Vec::new();
    for _ in 0..30 {
        let (status, body) = app.post_raw(Some(&token), json!({ "query": query })).await;
        if status != 200 {
            assert_eq!(error_code(&body), "UNAVAILABLE", "{status} {body}");
        }
        after.push(body);
    }
    for body in &after[10..] {
        assert_eq!(body["data"], want, "{body}");
    }
    eprintln!("{failed} of 240 requests met a terminated backend");
}

#[tokio::test]
async fn a_paused_redis_slows_no_request_past_its_timeout() {
    let port = free_port();
    let redis = PrivateRedis::start(port);
    let app = TestApp::spawn_with(300, |s| {
        s.cache.redis_url = format!("redis://127.0.0.1:{port}");
    })
    .await;
    let token = app.owner();
    let query = "{ kpis(range: {from: \"2026-10-01\", to: \"2026-11-20\"}, metrics: [ORDERS, GMV]) { values { value } } }";
    let want = app.data(&token, query, json!({})).await;
    let pid = redis.pid().to_string();
    run(Command::new("kill").args(["-STOP", &pid]));
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(app.data(&token, query, json!({})).await, want);
        slowest = slowest.max(started.elapsed());
    }
    run(Command::new("kill").args(["-CONT", &pid]));
    // The cache timeout (100 ms in tests) bounds each wait; the breaker then skips it.
    assert!(
        slowest < Duration::from_secs(2),
        "a request waited {slowest:?}"
    );
    for _ in 0..5 {
        assert_eq!(app.data(&token, query, json!({})).await, want);
    }
    drop(redis);
}

const INGEST: &str = "mutation($o: [OrderInput!]!) { ingestOrders(orders: $o) { created updated unchanged rejected } }";

fn batch(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "shopId": "1", "orderNo": format!("{prefix}-{i}"), "rawStatus": "2",
                "placedAt": "2026-11-01T10:00:00Z", "paidAt": "2026-11-01T10:05:00Z",
                "goodsAmount": 1000 + i, "paidAmount": 1000 + i, "buyerId": format!("b{i}"),
                "sourceUpdatedAt": "2026-11-01T10:05:00Z",
                "items": [{"productExternalId": format!("p{}", i % 7), "sku": "s", "quantity": 1,
                           "unitPrice": 1000 + i, "paidAmount": 1000 + i}],
            })
        })
        .collect()
}

#[tokio::test]
async fn a_client_hanging_up_mid_mutation_loses_nothing_and_a_retry_converges() {
    let app = TestApp::spawn(0).await;
    let token = app.token(4, 1);
    // Each batch is sent and abandoned after a few milliseconds: the server may or may
    // not have committed it, but never half of it.
    for round in 0..12 {
        let client = reqwest::Client::new();
        let send = client
            .post(format!("{}/graphql", app.address))
            .bearer_auth(&token)
            .json(
                &json!({ "query": INGEST, "variables": { "o": batch(&format!("H{round}"), 200) } }),
            )
            .send();
        let _ = tokio::time::timeout(Duration::from_millis(3 + round * 4), send).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for round in 0..12 {
        let n = app.sql_i64(&format!(
            "SELECT count(*) FROM orders WHERE order_no LIKE 'H{round}-%'"
        ));
        assert!(
            n == 0 || n == 200,
            "round {round}: {n} of 200 orders stored"
        );
    }
    // The client retries every batch; each converges and the totals match SQL.
    for round in 0..12 {
        let report = app
            .data(
                &token,
                INGEST,
                json!({ "o": batch(&format!("H{round}"), 200) }),
            )
            .await["ingestOrders"]
            .clone();
        assert_eq!(report["rejected"], 0);
        assert_eq!(
            report["created"].as_i64().unwrap() + report["unchanged"].as_i64().unwrap(),
            200,
            "{report}"
        );
    }
    assert_eq!(app.sql_i64("SELECT count(*) FROM orders"), 2_400);
    let kpis = app
        .data(
            &app.owner(),
            "{ kpis(range: {from: \"2026-11-01\", to: \"2026-11-01\"}, metrics: [ORDERS, GMV], filter: {shopIds: [\"1\"]}) { values { value } } }",
            json!({}),
        )
        .await;
    let gmv = app.sql_i64("SELECT sum(paid_amount) FROM orders");
    assert_eq!(kpis["kpis"]["values"][0]["value"], 2_400.0);
    assert_eq!(
        kpis["kpis"]["values"][1]["value"].as_f64().unwrap(),
        gmv as f64 / 100.0
    );
}
