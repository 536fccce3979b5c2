//! The aggregate cache against a real Redis: answers never cross tenants or scopes,
//! writes are visible to the very next request, concurrent misses compute once, and a
//! private Redis that is killed and restarted never breaks a query.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::analytics::{assert_metrics, sql_metrics, window};
use crate::helpers::{error_code, metric, PrivateRedis, TestApp};

const KPIS: &str = "query($from: Date!, $to: Date!) { kpis(range: {from: $from, to: $to}) { values { metric value } } }";

const HITS: &str = "orderscope_cache_requests_total{result=\"hit\"}";
const COMPUTATIONS: &str = "orderscope_cache_computations_total";
const RESPONSE_HITS: &str = "orderscope_response_cache_total{result=\"hit\"}";

/// Hits of either cache: whole responses or aggregates.
async fn any_hits(app: &TestApp) -> f64 {
    metric(app, HITS).await + metric(app, RESPONSE_HITS).await
}

async fn kpis(app: &TestApp, token: &str, from: &str, to: &str) -> Value {
    app.data(token, KPIS, json!({ "from": from, "to": to }))
        .await["kpis"]["values"]
        .clone()
}

fn expect(app: &TestApp, scope: &str, from: &str, to: &str) -> Vec<(&'static str, Option<f64>)> {
    let cond = format!("{scope} AND {}", window(from, to, "Asia/Shanghai"));
    sql_metrics(app, &cond, "Asia/Shanghai", "CNY")
}

#[tokio::test]
async fn identical_queries_in_different_scopes_get_their_own_numbers() {
    // Version keys that outlive both rounds even on a loaded machine: the counts below
    // are of hits, and an expired version key turns a response hit into an aggregate
    // hit.
    let app = TestApp::spawn_with(2_000, |s| {
        s.cache.version_ttl = std::time::Duration::from_secs(120)
    })
    .await;
    // A tenant-1 analyst narrowed to shop 1, beside the owners of both tenants.
    app.conn_exec("INSERT INTO accounts (id, tenant_id, name, is_owner, permissions, shop_ids) VALUES (20, 1, 'shop1 analyst', false, '{ANALYTICS_READ,FINANCE_READ}', '{1}')");
    let (from, to) = ("2026-10-01", "2026-11-20");
    let callers = [
        (
            app.token(1, 1),
            "o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1)",
        ),
        (app.token(20, 1), "o.shop_id = 1"),
        (
            app.token(7, 2),
            "o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 2)",
        ),
        (
            app.token(2, 1),
            "o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1)",
        ),
    ];
    let hits_before = metric(&app, HITS).await;
    // Twice each, interleaved: the second round is served from the cache.
    for round in 0..2 {
        for (token, scope) in &callers {
            let body = app
                .gql(token, KPIS, json!({ "from": from, "to": to }))
                .await;
            let got = body["data"]["kpis"]["values"].clone();
            let mut want = expect(&app, scope, from, to);
            if token == &callers[3].0 {
                assert_eq!(
                    error_code(&body),
                    "FORBIDDEN",
                    "COMMISSION without FINANCE_READ"
                );
                // The viewer lacks FINANCE_READ: COMMISSION is hidden, not shared.
                want.retain(|(m, _)| *m != "COMMISSION");
                let commission = got
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["metric"] == "COMMISSION")
                    .unwrap();
                assert!(commission["value"].is_null());
            } else {
                assert!(body.get("errors").is_none(), "{body}");
            }
            assert_metrics(&format!("round {round} {scope}"), &got, &want, "value");
        }
    }
    // The owner and the viewer of tenant 1 share the scope but not the entry. The
    // viewer's answer carries an error, so it is not kept as a whole response.
    assert_eq!(metric(&app, HITS).await - hits_before, 1.0);
    assert_eq!(metric(&app, RESPONSE_HITS).await, 3.0);
}

#[tokio::test]
async fn a_write_is_visible_to_the_very_next_query() {
    let app = TestApp::spawn(0).await;
    let owner = app.owner();
    let (from, to) = ("2026-11-01", "2026-11-30");
    let scope = "o.shop_id = 1";
    let query = "query($from: Date!, $to: Date!) { kpis(range: {from: $from, to: $to}, filter: {shopIds: [\"1\"]}) { values { metric value } } }";
    let ingest = "mutation($o: [OrderInput!]!) { ingestOrders(orders: $o) { created updated } }";
    for i in 0..5 {
        let order = json!({
            "shopId": "1", "orderNo": format!("RYW{i}"), "rawStatus": "AWAITING_SHIPMENT",
            "placedAt": "2026-11-10T02:00:00Z", "paidAt": "2026-11-10T02:01:00Z",
            "paymentMethod": "ALIPAY", "currency": "CNY", "goodsAmount": 1000 + i, "paidAmount": 1000 + i,
            "channel": "LIVE", "buyerId": format!("b{i}"), "sourceUpdatedAt": "2026-11-10T02:01:00Z",
            "items": [{"productExternalId": "p", "sku": "s", "quantity": 1, "unitPrice": 1000 + i, "paidAmount": 1000 + i}],
            "afterSales": [{"externalId": format!("as{i}"), "kind": "REFUND_ONLY", "status": "REQUESTED", "refundAmount": 500, "requestedAt": "2026-11-11T00:00:00Z", "dispute": "NONE"}],
        });
        // Warm the cache (the second read must be a hit, or this test proves nothing
        // about a stale entry), write, and read again at once.
        app.data(&owner, query, json!({ "from": from, "to": to }))
            .await;
        let hits = any_hits(&app).await;
        app.data(&owner, query, json!({ "from": from, "to": to }))
            .await;
        assert_eq!(
            any_hits(&app).await,
            hits + 1.0,
            "the warm-up read was a hit"
        );
        let written = app.data(&owner, ingest, json!({ "o": [order] })).await;
        assert_eq!(written["ingestOrders"]["created"], 1);
        let got = app
            .data(&owner, query, json!({ "from": from, "to": to }))
            .await;
        assert_metrics(
            &format!("after ingest {i}"),
            &got["kpis"]["values"],
            &expect(&app, scope, from, to),
            "value",
        );
        // An after-sale decision is a write too.
        let case = app.sql_i64(&format!(
            "SELECT id FROM after_sales WHERE external_id = 'as{i}'"
        ));
        app.data(
            &owner,
            "mutation($id: ID!) { resolveAfterSale(id: $id, decision: APPROVE) { afterSale { status } } }",
            json!({ "id": case.to_string() }),
        )
        .await;
        let got = app
            .data(&owner, query, json!({ "from": from, "to": to }))
            .await;
        let want = expect(&app, scope, from, to);
        assert_eq!(
            want.iter().find(|(m, _)| *m == "REFUND_ORDERS").unwrap().1,
            Some(f64::from(i + 1))
        );
        assert_metrics(
            &format!("after refund {i}"),
            &got["kpis"]["values"],
            &want,
            "value",
        );
    }
}

#[tokio::test]
async fn a_write_through_one_node_is_visible_through_another() {
    let a = TestApp::spawn(0).await;
    let b = a.second_node();
    let owner = a.owner();
    let (from, to) = ("2026-11-01", "2026-11-30");
    let query = "query($from: Date!, $to: Date!) { kpis(range: {from: $from, to: $to}, filter: {shopIds: [\"1\"]}) { values { metric value } } }";
    let ingest = "mutation($o: [OrderInput!]!) { ingestOrders(orders: $o) { created } }";
    for i in 0..3 {
        // Node B has the answer as a whole response ...
        b.data(&owner, query, json!({ "from": from, "to": to }))
            .await;
        let before = metric(&b, RESPONSE_HITS).await;
        b.data(&owner, query, json!({ "from": from, "to": to }))
            .await;
        assert_eq!(metric(&b, RESPONSE_HITS).await, before + 1.0, "round {i}");
        // ... node A takes a write ...
        let order = json!({
            "shopId": "1", "orderNo": format!("NODE{i}"), "rawStatus": "AWAITING_SHIPMENT",
            "placedAt": "2026-11-10T02:00:00Z", "paidAt": "2026-11-10T02:01:00Z",
            "paymentMethod": "ALIPAY", "currency": "CNY", "goodsAmount": 700, "paidAmount": 700,
            "channel": "LIVE", "buyerId": format!("n{i}"), "sourceUpdatedAt": "2026-11-10T02:01:00Z",
            "items": [{"productExternalId": "p", "sku": "s", "quantity": 1, "unitPrice": 700, "paidAmount": 700}],
        });
        let written = a.data(&owner, ingest, json!({ "o": [order] })).await;
        assert_eq!(written["ingestOrders"]["created"], 1);
        // ... and B's very next answer has it.
        let got = b
            .data(&owner, query, json!({ "from": from, "to": to }))
            .await;
        let want = expect(&a, "o.shop_id = 1", from, to);
        assert_eq!(
            want.iter().find(|(m, _)| *m == "ORDERS").unwrap().1,
            Some(f64::from(i + 1))
        );
        assert_metrics(
            &format!("node B after write {i}"),
            &got["kpis"]["values"],
            &want,
            "value",
        );
    }
}

#[tokio::test]
async fn account_changes_take_effect_on_the_next_request_despite_cached_responses() {
    let app = TestApp::spawn(2_000).await;
    let owner = app.owner();
    app.conn_exec("INSERT INTO accounts (id, tenant_id, name, is_owner, permissions, shop_ids) VALUES (21, 1, 'analyst', false, '{ANALYTICS_READ,FINANCE_READ}', '{}')");
    let (from, to) = ("2026-10-01", "2026-11-20");
    let vars = json!({ "from": from, "to": to });
    let analyst = app.token(21, 1);
    let update = "mutation($input: UpdateSubAccountInput!) { updateSubAccount(id: \"21\", input: $input) { id } }";
    let warm = |token: String| {
        let app = &app;
        let vars = vars.clone();
        async move {
            app.data(&token, KPIS, vars.clone()).await;
            let before = metric(app, RESPONSE_HITS).await;
            let got = app.data(&token, KPIS, vars).await;
            assert_eq!(metric(app, RESPONSE_HITS).await, before + 1.0);
            got
        }
    };

    // Narrowed to shop 1: the next answer covers shop 1 only.
    let all = warm(analyst.clone()).await;
    assert_metrics(
        "whole tenant",
        &all["kpis"]["values"],
        &expect(
            &app,
            "o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1)",
            from,
            to,
        ),
        "value",
    );
    app.data(&owner, update, json!({ "input": { "shopIds": ["1"] } }))
        .await;
    let narrowed = app.data(&analyst, KPIS, vars.clone()).await;
    assert_metrics(
        "narrowed",
        &narrowed["kpis"]["values"],
        &expect(&app, "o.shop_id = 1", from, to),
        "value",
    );

    // FINANCE_READ taken away: COMMISSION is refused at once.
    warm(analyst.clone()).await;
    app.data(
        &owner,
        update,
        json!({ "input": { "permissions": ["ANALYTICS_READ"] } }),
    )
    .await;
    let body = app.gql(&analyst, KPIS, vars.clone()).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");

    // Disabled: the very next request is refused.
    app.data(
        &owner,
        update,
        json!({ "input": { "permissions": ["ANALYTICS_READ", "FINANCE_READ"] } }),
    )
    .await;
    warm(analyst.clone()).await;
    app.data(&owner, update, json!({ "input": { "disabled": true } }))
        .await;
    let (status, body) = app
        .post_raw(Some(&analyst), json!({ "query": KPIS, "variables": vars }))
        .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (401, "UNAUTHENTICATED")
    );

    // Tokens revoked: the old token is refused, though its response was cached.
    app.data(&owner, update, json!({ "input": { "disabled": false } }))
        .await;
    warm(analyst.clone()).await;
    app.data(
        &owner,
        "mutation { revokeTokens(accountId: \"21\") { id } }",
        json!({}),
    )
    .await;
    let (status, _) = app
        .post_raw(Some(&analyst), json!({ "query": KPIS, "variables": vars }))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn concurrent_cold_requests_compute_once() {
    // A generous Redis timeout: this test is about single flight, not a slow machine.
    // With 2 s, a full suite on 2 cores (other tests seeding and computing beside these
    // 200 requests) saw Redis commands time out, the breaker open and a second
    // computation, once in six runs.
    let app = TestApp::spawn_with(2_000, |s| s.cache.timeout = Duration::from_secs(10)).await;
    let token = app.owner();
    let before = metric(&app, COMPUTATIONS).await;
    let query = "{ breakdown(range: {from: \"2026-10-01\", to: \"2026-11-20\"}, dimension: PROVINCE, metrics: [GMV, ORDERS, BUYERS], limit: 5) { rows { key values { value } } total { value } } }";
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let client = app.client.clone();
        let url = format!("{}/graphql", app.address);
        let token = token.clone();
        tasks.spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        let answer = answer.unwrap();
        assert!(answer.get("errors").is_none(), "{answer}");
        answers.push(answer["data"].clone());
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "every caller got the same answer"
    );
    let errors = metric(&app, "orderscope_cache_errors_total").await;
    assert_eq!(
        metric(&app, COMPUTATIONS).await - before,
        1.0,
        "redis errors: {errors}"
    );
}

#[tokio::test]
async fn bypass_and_corrupt_entries_compute_again() {
    let app = TestApp::spawn(0).await;
    app.conn_exec("INSERT INTO fx_rates (day, currency, rate_to_cny) SELECT d::date, 'USD', 7.1 FROM generate_series('2026-10-01'::date, '2026-11-30'::date, interval '1 day') d");
    let owner = app.owner();
    kpis(&app, &owner, "2026-11-01", "2026-11-02").await;
    let before = metric(&app, COMPUTATIONS).await;
    kpis(&app, &owner, "2026-11-01", "2026-11-02").await;
    assert_eq!(metric(&app, COMPUTATIONS).await, before, "a hit");
    let bypassed = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&owner)
        .header("X-Cache-Bypass", "1")
        .json(&json!({ "query": KPIS, "variables": { "from": "2026-11-01", "to": "2026-11-02" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(bypassed.status().as_u16(), 200);
    assert_eq!(metric(&app, COMPUTATIONS).await, before + 1.0);
    // Garbage under every key of this app is a miss, answered correctly.
    let (mut conn, keys) = app.redis_keys("*").await;
    assert!(!keys.is_empty());
    // Past the grace period in which a finished computation still answers its key.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    for key in &keys {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("{not json")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let got = kpis(&app, &owner, "2026-11-01", "2026-11-02").await;
    assert_eq!(got[0]["metric"], "ORDERS");
    assert_eq!(
        metric(&app, "orderscope_cache_requests_total{result=\"corrupt\"}").await,
        1.0
    );
    assert_eq!(metric(&app, COMPUTATIONS).await, before + 2.0);

    // In production the bypass needs CACHE_BYPASS.
    let prod = TestApp::spawn_with(0, |s| {
        s.environment = orderscope::settings::Environment::Production;
    })
    .await;
    let (status, body) = {
        let resp = prod
            .client
            .post(format!("{}/graphql", prod.address))
            .bearer_auth(prod.token(2, 1))
            .header("X-Cache-Bypass", "1")
            .json(&json!({ "query": KPIS, "variables": { "from": "2026-11-01", "to": "2026-11-02" } }))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!((status, error_code(&body).as_str()), (403, "FORBIDDEN"));
}

#[tokio::test]
async fn killing_and_restarting_redis_never_breaks_a_query() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = PrivateRedis::start(port);
    let app = TestApp::spawn_with(2_000, |s| {
        s.cache.redis_url = format!("redis://127.0.0.1:{port}");
    })
    .await;
    let owner = app.owner();
    let scope = "o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1)";
    // The data does not change in this test: one SQL recomputation serves every check.
    let want = expect(&app, scope, "2026-11-01", "2026-11-20");
    let check = |got: &Value, label: &str| assert_metrics(label, got, &want, "value");
    check(
        &kpis(&app, &owner, "2026-11-01", "2026-11-20").await,
        "cold",
    );
    let hits = any_hits(&app).await;
    check(
        &kpis(&app, &owner, "2026-11-01", "2026-11-20").await,
        "warm",
    );
    assert_eq!(any_hits(&app).await, hits + 1.0);

    redis.kill();
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let started = Instant::now();
        let got = kpis(&app, &owner, "2026-11-01", "2026-11-20").await;
        slowest = slowest.max(started.elapsed());
        check(&got, &format!("redis down {i}"));
    }
    // A dead Redis costs at most one short timeout, never a hang.
    assert!(
        slowest < Duration::from_secs(3),
        "a request waited {slowest:?} on a dead Redis"
    );
    assert!(metric(&app, "orderscope_cache_errors_total").await >= 1.0);
    assert!(
        metric(&app, "orderscope_cache_skipped_total").await >= 1.0,
        "the breaker skipped Redis"
    );
    let ready: Value = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["redis"], "degraded");

    let _redis = PrivateRedis::start(redis.port);
    // After the breaker's cool-down caching resumes by itself.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let hits = any_hits(&app).await;
        check(
            &kpis(&app, &owner, "2026-11-01", "2026-11-20").await,
            "recovering",
        );
        check(
            &kpis(&app, &owner, "2026-11-01", "2026-11-20").await,
            "recovering",
        );
        if any_hits(&app).await > hits {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hits did not come back after Redis restarted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&app, "orderscope_cache_breaker_open").await, 0.0);
}

/// A node whose Redis is unreachable cannot publish its write's versions; another node
/// may serve its cached answer from before the write for at most CACHE_VERSION_TTL_MS
/// (the version keys it checks expire), then computes the new answer.
#[tokio::test]
async fn a_failed_publication_is_unseen_for_at_most_the_version_ttl() {
    let ttl = Duration::from_millis(1_500);
    let reader = TestApp::spawn_with(0, |s| s.cache.version_ttl = ttl).await;
    let writer = reader.node_with(|s| s.cache.redis_url = "redis://127.0.0.1:1".into());
    let owner = reader.owner();
    let query = "{ kpis(range: {from: \"2026-11-01\", to: \"2026-11-30\"}, metrics: [ORDERS], filter: {shopIds: [\"1\"]}) { values { value } } }";
    let orders = |body: &Value| body["kpis"]["values"][0]["value"].as_f64().unwrap();
    assert_eq!(orders(&reader.data(&owner, query, json!({})).await), 0.0);
    let hits = any_hits(&reader).await;
    assert_eq!(orders(&reader.data(&owner, query, json!({})).await), 0.0);
    assert_eq!(
        any_hits(&reader).await,
        hits + 1.0,
        "the reader answers from its cache"
    );
    let ingest = "mutation($o: [OrderInput!]!) { ingestOrders(orders: $o) { created } }";
    let order = json!({
        "shopId": "1", "orderNo": "UNPUBLISHED", "rawStatus": "2",
        "placedAt": "2026-11-10T02:00:00Z", "paidAt": "2026-11-10T02:01:00Z",
        "goodsAmount": 1000, "paidAmount": 1000, "buyerId": "b",
        "sourceUpdatedAt": "2026-11-10T02:01:00Z",
        "items": [{"productExternalId": "p", "sku": "s", "quantity": 1, "unitPrice": 1000, "paidAmount": 1000}],
    });
    let written = Instant::now();
    let report = writer.data(&owner, ingest, json!({ "o": [order] })).await;
    assert_eq!(report["ingestOrders"]["created"], 1);
    // Within the TTL (plus one request) the reader answers with the write.
    let mut seen = None;
    while written.elapsed() < ttl + Duration::from_secs(2) {
        if orders(&reader.data(&owner, query, json!({})).await) == 1.0 {
            seen = Some(written.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.expect("the reader never saw the write");
    assert!(
        seen <= ttl + Duration::from_millis(500),
        "unseen for {seen:?}"
    );
    // The writer itself reads its own write at once (it does not trust its cache).
    assert_eq!(orders(&writer.data(&owner, query, json!({})).await), 1.0);
}
