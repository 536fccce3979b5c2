//! Hostile and careless requests: none crashes the process, starves another tenant,
//! outlives its deadline, reads more than its permissions allow, or costs good data.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{error_code, metric, TestApp};

async fn healthy(app: &TestApp) {
    let resp = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .expect("the server still answers /healthz");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn deeply_nested_documents_are_refused_before_authentication() {
    let app = TestApp::spawn(0).await;
    let objects = format!(
        "{{ kpis(range: {{from: \"2026-11-01\", to: \"2026-11-02\"}}, filter: {}) {{ range {{ from }} }} }}",
        "{shopIds:".repeat(1_500)
    );
    let lists = format!("{{ shops(ids: {}) {{ id }} }}", "[".repeat(3_000));
    let selections = format!("{{ {} }}", "viewer { ".repeat(5_000));
    for query in [objects, lists, selections] {
        // No token at all: the refusal must not depend on authentication.
        let (status, body) = app.post_raw(None, json!({ "query": query })).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
        assert!(body.to_string().contains("levels deep"), "{body}");
        healthy(&app).await;
    }
}

#[tokio::test]
async fn hundreds_of_aggregate_aliases_do_not_pass_the_cost_budget() {
    let app = TestApp::spawn(300).await;
    let aliases: String = (0..500)
        .map(|i| {
            format!(
                "k{i}: kpis(range: {{from: \"2026-10-01\", to: \"2026-11-{:02}\"}}, metrics: [GMV]) {{ values {{ value }} }} ",
                1 + i % 20
            )
        })
        .collect();
    let body = app
        .gql(&app.owner(), &format!("{{ {aliases} }}"), json!({}))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert!(body.to_string().contains("too complex"), "{body}");
    // A dashboard page's worth of reports still fits.
    let page = "query($r: DateRange!) {
      kpis(range: $r, compare: PREVIOUS_PERIOD) { values { value } }
      trend(range: $r, granularity: DAY, metrics: [GMV, ORDERS, AOV], compare: PREVIOUS_PERIOD) { points { label } }
      a: breakdown(range: $r, dimension: PROVINCE, metrics: [GMV, ORDERS, BUYERS]) { rows { label } }
      b: breakdown(range: $r, dimension: CHANNEL, metrics: [GMV, ORDERS, BUYERS]) { rows { label } }
      c: breakdown(range: $r, dimension: PRODUCT, metrics: [GMV, UNITS, REFUND_RATE], limit: 20) { rows { label } }
      d: breakdown(range: $r, dimension: CREATOR, metrics: [GMV, ORDERS, COMMISSION], limit: 20) { rows { label } }
      dailyReport(date: \"2026-11-20\") { date }
    }";
    app.data(
        &app.owner(),
        page,
        json!({ "r": { "from": "2026-10-22", "to": "2026-11-20" } }),
    )
    .await;
}

/// Holds an exclusive lock on `orders` from a connection of the test's own until dropped.
struct TableLock {
    _conn: diesel::PgConnection,
}

fn lock_orders(app: &TestApp) -> TableLock {
    use diesel::connection::SimpleConnection;
    let mut conn = app.conn();
    conn.batch_execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    TableLock { _conn: conn }
}

/// Backends of the test database (other than the test's own) waiting on a lock.
fn waiting_backends(app: &TestApp) -> i64 {
    app.sql_i64(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
    )
}

#[tokio::test]
async fn after_its_deadline_a_request_starts_nothing_and_its_statements_stop() {
    let app = TestApp::spawn_with(0, |s| {
        s.request_timeout = Duration::from_millis(600);
    })
    .await;
    let token = app.owner();
    // Warm the pool so every statement below has a connection ready.
    app.data(&token, "{ shops { id } }", json!({})).await;
    let lock = lock_orders(&app);
    let aliases: String = (0..20)
        .map(|i| format!("o{i}: orders(first: 1) {{ totalCount }} "))
        .collect();
    let started = Instant::now();
    let (status, body) = app
        .post_raw(Some(&token), json!({ "query": format!("{{ {aliases} }}") }))
        .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(error_code(&body), "TIMEOUT", "{body}");
    // Statements running at the deadline end by their lowered statement_timeout, and
    // none of the sixteen that were still queued starts afterwards.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let waiting = waiting_backends(&app);
    assert_eq!(
        waiting,
        0,
        "{waiting} statements still run {:?} after the request started",
        started.elapsed()
    );
    drop(lock);
    // The engine's catch-up, held up by the same lock, may still be finishing: the pool
    // must be idle again soon, with no connection left behind by the timed-out request.
    let mut busy = f64::NAN;
    for _ in 0..30 {
        busy = metric(&app, "orderscope_db_pool_connections{state=\"busy\"}").await;
        if busy == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(busy, 0.0, "the pool is idle again");
}

fn ingest_one(no: &str) -> Value {
    json!({
        "shopId": "1", "orderNo": no, "rawStatus": "2",
        "placedAt": "2026-11-01T10:00:00Z", "paidAt": "2026-11-01T10:05:00Z",
        "goodsAmount": 1000, "paidAmount": 1000, "buyerId": "b",
        "sourceUpdatedAt": "2026-11-01T10:05:00Z",
        "items": [{"productExternalId": "p", "sku": "s", "quantity": 1, "unitPrice": 1000, "paidAmount": 1000}],
    })
}

const INGEST: &str = "mutation($o: [OrderInput!]!) { ingestOrders(orders: $o) {
  created rejected results { index orderNo outcome reason } } }";

#[tokio::test]
async fn one_tenants_requests_cannot_take_the_whole_pool() {
    use diesel::connection::SimpleConnection;
    // Pool of 8, each tenant's statements at most 4 at once (test settings).
    let app = TestApp::spawn(0).await;
    let writer = app.owner();
    let other_tenant = app.token(3, 2);
    // Tenant 1's writes block on its shop's row, each holding a connection while it waits.
    let mut blocker = app.conn();
    blocker
        .batch_execute("BEGIN; SELECT id FROM shops WHERE id = 1 FOR UPDATE")
        .unwrap();
    let mut writes = Vec::new();
    for i in 0..12 {
        let app_client = app.client.clone();
        let url = format!("{}/graphql", app.address);
        let token = writer.clone();
        writes.push(tokio::spawn(async move {
            app_client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "query": INGEST, "variables": { "o": [ingest_one(&format!("F{i}"))] } }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Another tenant is answered at once.
    let started = Instant::now();
    let body = app
        .gql(
            &other_tenant,
            "{ orders(first: 5) { totalCount } }",
            json!({}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the other tenant waited {:?}",
        started.elapsed()
    );
    blocker.batch_execute("COMMIT").unwrap();
    // Every write of the first tenant is acknowledged and stored.
    for write in writes {
        let body = write.await.unwrap();
        assert_eq!(body["data"]["ingestOrders"]["created"], 1, "{body}");
    }
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM orders WHERE order_no LIKE 'F%'"),
        12
    );
}

#[tokio::test]
async fn bad_orders_are_rejected_one_by_one_and_the_good_ones_apply() {
    let app = TestApp::spawn(0).await;
    let token = app.token(4, 1);
    let mut nul = ingest_one("NUL\u{0}NO");
    nul["orderNo"] = json!("A\u{0}B");
    let mut huge = ingest_one("HUGE");
    huge["paidAmount"] = json!(i64::MAX - 1);
    huge["goodsAmount"] = json!(i64::MAX - 1);
    let mut half_a = ingest_one("HALF-A");
    let mut half_b = ingest_one("HALF-B");
    for half in [&mut half_a, &mut half_b] {
        half["paidAmount"] = json!(i64::MAX / 2 + 1);
        half["goodsAmount"] = json!(i64::MAX / 2 + 1);
    }
    let mut five_e18 = ingest_one("5E18");
    five_e18["paidAmount"] = json!(5_000_000_000_000_000_000i64);
    let mut far_future = ingest_one("FUTURE");
    far_future["sourceUpdatedAt"] = json!("9999-12-31T00:00:00Z");
    let mut ancient = ingest_one("ANCIENT");
    ancient["placedAt"] = json!("0001-01-01T00:00:00Z");
    let mut control = ingest_one("CTRL");
    control["buyerId"] = json!("b\u{7}");
    let mut quantity = ingest_one("QTY");
    quantity["items"][0]["quantity"] = json!(i32::MAX);
    let batch = vec![
        ingest_one("GOOD-1"),
        nul,
        huge,
        half_a,
        half_b,
        five_e18,
        far_future,
        ancient,
        control,
        quantity,
        ingest_one("GOOD-2"),
    ];
    let report = app.data(&token, INGEST, json!({ "o": batch })).await["ingestOrders"].clone();
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(report["rejected"], 9, "{report}");
    let reasons: Vec<(String, String)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "REJECTED")
        .map(|r| {
            (
                r["orderNo"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (no, needle) in [
        ("HUGE", "larger than"),
        ("HALF-A", "larger than"),
        ("5E18", "larger than"),
        (
            "FUTURE",
            "sourceUpdatedAt is more than 24 hours in the future",
        ),
        ("ANCIENT", "placedAt is before 2000-01-01"),
        ("CTRL", "control character"),
        ("QTY", "quantity must be between"),
    ] {
        let (_, reason) = reasons
            .iter()
            .find(|(n, _)| n == no)
            .unwrap_or_else(|| panic!("{no} not rejected: {report}"));
        assert!(reason.contains(needle), "{no}: {reason}");
    }
    assert!(
        reasons.iter().any(|(_, r)| r.contains("U+0000")),
        "{report}"
    );
    assert_eq!(app.sql_i64("SELECT count(*) FROM orders"), 2);
    // Later writes and reads of the month still work.
    let again = app
        .data(&token, INGEST, json!({ "o": [ingest_one("GOOD-3")] }))
        .await;
    assert_eq!(again["ingestOrders"]["created"], 1);
    let kpis = app
        .data(
            &app.owner(),
            "{ kpis(range: {from: \"2026-11-01\", to: \"2026-11-30\"}, metrics: [GMV], filter: {shopIds: [\"1\"]}) { values { value } } }",
            json!({}),
        )
        .await;
    assert_eq!(kpis["kpis"]["values"][0]["value"], 30.0, "{kpis}");
}

#[tokio::test]
async fn dates_out_of_range_are_bad_user_input_everywhere() {
    let app = TestApp::spawn(0).await;
    let token = app.owner();
    for query in [
        "{ kpis(range: {from: \"-4800-01-01\", to: \"2026-11-20\"}) { values { value } } }",
        "{ trend(range: {from: \"1900-01-01\", to: \"1900-01-02\"}, granularity: DAY, metrics: [GMV]) { points { label } } }",
        "{ dailyReport(date: \"9999-12-31\") { date } }",
        "{ orders(filter: {placedFrom: \"0001-01-01T00:00:00Z\"}) { totalCount } }",
    ] {
        let body = app.gql(&token, query, json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body}");
    }
    for path in [
        "/export/orders.csv?placedFrom=-4800-01-01&placedTo=-4800-01-20",
        "/export/orders.csv?placedFrom=0001-01-01T00:00:00Z&placedTo=0001-01-20T00:00:00Z",
        "/export/trend.csv?from=-4800-01-01&to=-4800-01-02&granularity=DAY&metrics=GMV",
    ] {
        let resp = app
            .client
            .get(format!("{}{path}", app.address))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{path}: {body}");
    }
}

#[tokio::test]
async fn exporting_order_rows_needs_what_reading_them_needs() {
    let app = TestApp::spawn(0).await;
    app.conn_exec(
        "INSERT INTO accounts (id, tenant_id, name, is_owner, permissions, shop_ids) VALUES
         (6, 1, 'analyst', false, '{ANALYTICS_READ,FINANCE_READ,EXPORT}', '{}')",
    );
    let analyst = app.token(6, 1);
    let body = app
        .gql(&analyst, "{ orders(first: 1) { totalCount } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let resp = app
        .client
        .get(format!(
            "{}/export/orders.csv?placedFrom=2026-11-01&placedTo=2026-11-20",
            app.address
        ))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
    assert!(body.to_string().contains("ORDERS_READ"), "{body}");
    // Reports stay open to it, by GraphQL and by CSV alike.
    let resp = app
        .client
        .get(format!(
            "{}/export/trend.csv?from=2026-11-01&to=2026-11-02&granularity=DAY&metrics=GMV&shopIds=1",
            app.address
        ))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn production_gives_no_field_suggestions() {
    let app = TestApp::spawn_with(0, |s| {
        s.environment = orderscope::settings::Environment::Production
    })
    .await;
    let body = app
        .gql(&app.owner(), "{ order { id } shop { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(!body.to_string().contains("Did you mean"), "{body}");
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_and_errors_do_not_echo_the_document() {
    let app = TestApp::spawn(0).await;
    let resp = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(app.owner())
        .header("content-type", "application/json")
        .body(vec![b' '; 50 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    // A 45 KB document with a syntax error near its end.
    let query = format!(
        "{{ {} shops {{ id }}",
        "viewer { account { name } } ".repeat(1_700)
    );
    assert!(query.len() > 45_000);
    let (status, body) = app
        .post_raw(Some(&app.owner()), json!({ "query": query }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let size = body.to_string().len();
    assert!(size < 2_000, "the error is {size} bytes: {body}");
}

#[tokio::test]
async fn documents_refused_by_validation_cost_no_account_lookup() {
    let app = TestApp::spawn(0).await;
    // The token is valid, but its account was disabled: only a database lookup can tell.
    app.conn_exec("UPDATE accounts SET disabled_at = now() WHERE id = 2");
    let token = app.token(2, 1);
    // Thirteen levels of data fields (introspection is not counted).
    let deep = format!("{}{}", "{ orders ".repeat(13), "}".repeat(13));
    let (status, body) = app.post_raw(Some(&token), json!({ "query": deep })).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("nested too deep"), "{body}");
    // A valid document then meets the lookup, and the disabled account.
    let (status, body) = app
        .post_raw(Some(&token), json!({ "query": "{ shops { id } }" }))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn export_audit_entries_list_each_field_once() {
    let app = TestApp::spawn(0).await;
    let fields = vec!["orderNo"; 4_000].join(",");
    let resp = app
        .client
        .get(format!(
            "{}/export/orders.csv?placedFrom=2026-11-01&placedTo=2026-11-20&fields={fields}",
            app.address
        ))
        .bearer_auth(app.owner())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    let size = app.sql_i64("SELECT max(length(details::text)) FROM audit_log");
    assert!(size < 2_000, "an audit entry of {size} bytes");
}

#[tokio::test]
async fn the_demo_seed_scopes_each_shipping_account_to_its_own_tenants_shop() {
    let app = TestApp::spawn(200).await;
    let foreign = app.sql_i64(
        "SELECT count(*) FROM accounts a, unnest(a.shop_ids) AS s(shop_id) \
         JOIN shops ON shops.id = s.shop_id WHERE shops.tenant_id <> a.tenant_id",
    );
    assert_eq!(foreign, 0);
    let scoped = app.sql_i64("SELECT count(*) FROM accounts WHERE cardinality(shop_ids) = 1");
    assert_eq!(scoped, 2, "each tenant's shipping account works one shop");
}

#[tokio::test]
async fn a_response_cache_entry_that_is_not_json_is_a_miss() {
    let app = TestApp::spawn(0).await;
    let owner = app.owner();
    let query = json!({ "query": "{ kpis(range: {from: \"2026-11-01\", to: \"2026-11-02\"}, metrics: [ORDERS], filter: {shopIds: [\"1\"]}) { values { value } } }" });
    let (_, first) = app.post_raw(Some(&owner), query.clone()).await;
    assert!(first.get("errors").is_none(), "{first}");
    // The whole-response entry keeps its stamp (so it would be a hit) but its body is
    // replaced with something that is not JSON.
    let (mut conn, keys) = app.redis_keys("resp:*").await;
    assert_eq!(keys.len(), 1, "one stored response: {keys:?}");
    let entry: Vec<u8> = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    let stamp_end = entry
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b':')
        .nth(2)
        .map(|(i, _)| i + 1)
        .unwrap();
    let mut corrupt = entry[..stamp_end].to_vec();
    corrupt.extend_from_slice(b"<html>not json</html>");
    let _: () = redis::cmd("SET")
        .arg(&keys[0])
        .arg(corrupt)
        .query_async(&mut conn)
        .await
        .unwrap();
    let resp = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&owner)
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains("<html>"),
        "the corrupt entry was served: {text}"
    );
    let second: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(second, first);
}

#[tokio::test]
async fn text_with_nul_or_control_characters_is_bad_user_input_on_every_argument() {
    // Found by the fuzz run: a NUL in the orderNo filter reached PostgreSQL (INTERNAL).
    let app = TestApp::spawn(0).await;
    let token = app.owner();
    for (query, variables) in [
        ("query($v: String) { orders(filter: {orderNo: $v}) { totalCount } }", json!({ "v": "A\u{0}B" })),
        ("query($v: String) { orders(filter: {buyerNickname: $v}) { totalCount } }", json!({ "v": "\u{7}" })),
        ("query($v: String!) { kpis(range: {from: \"2026-11-01\", to: \"2026-11-02\"}, filter: {categories: [$v], shopIds: [\"1\"]}) { values { value } } }", json!({ "v": "服装\u{0}" })),
        ("mutation($v: String!) { createSubAccount(input: {name: $v, preset: VIEWER}) { id } }", json!({ "v": "x\u{0}y" })),
    ] {
        let body = app.gql(&token, query, variables).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body}");
        assert!(body.to_string().contains("control characters"), "{body}");
    }
    let resp = app
        .client
        .get(format!(
            "{}/export/orders.csv?placedFrom=2026-11-01&placedTo=2026-11-20&orderNo=A%00B",
            app.address
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
