//! Subscriptions over WebSocket with a real `graphql-ws` client (tests/clients/
//! subscribe.mjs): values after a write equal the SQL recomputation, writes through one
//! node reach subscribers on another, events are scoped and masked, revoking closes
//! the socket, and a consumer that stops reading is dropped.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{client_scripts, ServerProcess, TestApp};

/// One `node subscribe.mjs` process and the JSON lines it prints.
struct Subscriber {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Subscriber {
    async fn start(app: &TestApp, token: &str, query: &str, variables: Value) -> Subscriber {
        Self::start_copies(app, token, query, variables, 1).await
    }

    async fn start_copies(
        app: &TestApp,
        token: &str,
        query: &str,
        variables: Value,
        copies: usize,
    ) -> Subscriber {
        Self::start_at(&app.address, token, query, variables, copies).await
    }

    /// `copies` subscriptions of `query` on one connection to the server at `address`.
    async fn start_at(
        address: &str,
        token: &str,
        query: &str,
        variables: Value,
        copies: usize,
    ) -> Subscriber {
        let dir = client_scripts();
        let url = format!("{}/graphql", address.replace("http://", "ws://"));
        let mut child = tokio::process::Command::new("node")
            .arg("subscribe.mjs")
            .arg(url)
            .arg(token)
            .arg(query)
            .arg(variables.to_string())
            .arg(copies.to_string())
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Subscriber { child, lines }
    }

    /// The next line, within `within`.
    async fn next(&mut self, within: Duration) -> Value {
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("nothing from the subscription within {within:?}"))
            .unwrap()
            .expect("the client ended");
        serde_json::from_str(&line).unwrap()
    }

    /// The next `next` payload, skipping the `connected` line.
    async fn next_value(&mut self, within: Duration) -> Value {
        loop {
            let line = self.next(within).await;
            if line.get("connected").is_some() {
                continue;
            }
            assert!(line.get("next").is_some(), "expected a value, got {line}");
            return line["next"].clone();
        }
    }

    /// The code the socket is closed with (within 6 s of the last message).
    async fn close_code(&mut self) -> i64 {
        loop {
            let line = self.next(Duration::from_secs(6)).await;
            if let Some(code) = line.get("closed") {
                return code.as_i64().unwrap_or_default();
            }
        }
    }

    /// Nothing arrives within `within`.
    async fn quiet_for(&mut self, within: Duration) {
        if let Ok(line) = tokio::time::timeout(within, self.lines.next_line()).await {
            panic!("unexpected message: {line:?}");
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

const INGEST: &str =
    "mutation($o: [OrderInput!]!) { ingestOrders(orders: $o) { created updated rejected } }";

fn order(no: &str, placed: &str, amount: i64, status: &str) -> Value {
    json!({
        "shopId": "1", "orderNo": no, "rawStatus": status, "placedAt": placed,
        "paidAt": if status == "PENDING_PAYMENT" { Value::Null } else { json!(placed) },
        "paymentMethod": "ALIPAY", "currency": "CNY",
        "goodsAmount": amount, "paidAmount": amount, "provinceCode": "44", "city": "广州市",
        "channel": "LIVE", "buyerId": format!("b-{no}"), "buyerNickname": "小鱼",
        "receiverName": "张三丰", "receiverPhone": "13812345678",
        "receiverAddress": "广东省广州市天河区体育西路1号",
        "commissionRateBps": 1000, "creator": {"externalId": "c-1", "handle": "带货达人"},
        "sourceUpdatedAt": placed,
        "items": [{"productExternalId": "p1", "productTitle": "连衣裙", "category": "服装", "sku": "A", "quantity": 1, "unitPrice": amount, "paidAmount": amount}],
    })
}

fn recent(minutes_ago: i64) -> String {
    (chrono::Utc::now() - chrono::TimeDelta::minutes(minutes_ago))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Yesterday to tomorrow in Asia/Shanghai: covers orders placed just now.
fn around_today() -> (String, String) {
    let today = (chrono::Utc::now() + chrono::TimeDelta::hours(8)).date_naive();
    (
        (today - chrono::TimeDelta::days(1)).to_string(),
        (today + chrono::TimeDelta::days(1)).to_string(),
    )
}

const LIVE_KPIS: &str = "subscription($from: Date!, $to: Date!) { liveKpis(range: {from: $from, to: $to}, metrics: [ORDERS, PAID_ORDERS, GMV, AOV], filter: {shopIds: [\"1\"]}) { values { metric value } } }";

fn values(report: &Value) -> Vec<(String, Option<f64>)> {
    report["data"]["liveKpis"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["metric"].as_str().unwrap().to_string(),
                v["value"].as_f64(),
            )
        })
        .collect()
}

fn sql_values(app: &TestApp, from: &str, to: &str) -> Vec<(String, Option<f64>)> {
    let cond = format!(
        "o.shop_id = 1 AND {}",
        crate::analytics::window(from, to, "Asia/Shanghai")
    );
    let all = crate::analytics::sql_metrics(app, &cond, "Asia/Shanghai", "CNY");
    ["ORDERS", "PAID_ORDERS", "GMV", "AOV"]
        .iter()
        .map(|m| {
            let v = all.iter().find(|(k, _)| k == m).unwrap().1;
            (m.to_string(), v)
        })
        .collect()
}

fn assert_close(got: &[(String, Option<f64>)], want: &[(String, Option<f64>)]) {
    assert_eq!(got.len(), want.len());
    for ((m, g), (_, w)) in got.iter().zip(want) {
        match (g, w) {
            (Some(g), Some(w)) => assert!((g - w).abs() < 0.005, "{m}: {g} vs SQL {w}"),
            (None, None) => {}
            _ => panic!("{m}: {g:?} vs SQL {w:?}"),
        }
    }
}

#[tokio::test]
async fn live_kpis_follow_writes_through_another_node_and_equal_sql() {
    let a = TestApp::spawn(0).await;
    // Node B is a second server process (the release binary's `serve`) on the same
    // database and Redis key space.
    let b = ServerProcess::start(
        &a.database_url,
        &[
            ("REDIS_URL", a.settings.cache.redis_url.as_str()),
            ("CACHE_PREFIX", a.settings.cache.prefix.as_str()),
            ("JWT_SECRET", a.settings.jwt.secret.as_str()),
            ("ANALYTICS_SYNC_MS", "60000"),
        ],
    )
    .await;
    let (from, to) = around_today();
    let owner = a.owner();
    a.data(
        &owner,
        INGEST,
        json!({ "o": [order("L1", &recent(30), 10_000, "AWAITING_SHIPMENT")] }),
    )
    .await;
    // Subscribed on node B; the first value is the current one.
    let mut sub = Subscriber::start_at(
        &b.address,
        &owner,
        LIVE_KPIS,
        json!({ "from": from, "to": to }),
        1,
    )
    .await;
    let first = sub.next_value(Duration::from_secs(10)).await;
    assert_close(&values(&first), &sql_values(&a, &from, &to));
    assert_eq!(values(&first)[0].1, Some(1.0));
    // A write through node A reaches node B's subscriber at once (Redis pub/sub), and
    // the new values equal SQL.
    let started = std::time::Instant::now();
    a.data(
        &owner,
        INGEST,
        json!({ "o": [order("L2", &recent(20), 25_050, "AWAITING_SHIPMENT"), order("L3", &recent(10), 999, "PENDING_PAYMENT")] }),
    )
    .await;
    let next = sub.next_value(Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert_close(&values(&next), &sql_values(&a, &from, &to));
    assert_eq!(values(&next)[0].1, Some(3.0), "{next}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // A write that changes nothing of the answer sends nothing.
    a.data(
        &owner,
        INGEST,
        json!({ "o": [order("L1", &recent(30), 10_000, "AWAITING_SHIPMENT")] }),
    )
    .await;
    sub.quiet_for(Duration::from_millis(1_500)).await;
    // An order shipped (a status change) moves nothing here either; a refund moves GMV?
    // No: GMV counts paid orders. Another paid order does.
    a.data(
        &owner,
        INGEST,
        json!({ "o": [order("L4", &recent(5), 5_000, "AWAITING_SHIPMENT")] }),
    )
    .await;
    let next = sub.next_value(Duration::from_secs(5)).await;
    assert_close(&values(&next), &sql_values(&a, &from, &to));
}

const ORDER_EVENTS: &str = "subscription { orderEvents(filter: {shopIds: [\"1\"]}) { kind order { orderNo status receiverPhone receiverName commissionAmount } } }";

#[tokio::test]
async fn order_events_are_scoped_masked_and_permission_checked() {
    let app = TestApp::spawn(0).await;
    let owner = app.owner();
    // Account 2 is a viewer (ANALYTICS_READ, ORDERS_READ): masked buyer fields, no
    // commission. Account 3 belongs to tenant 2.
    let viewer = app.token(2, 1);
    let mut as_viewer = Subscriber::start(&app, &viewer, ORDER_EVENTS, json!({})).await;
    let mut as_owner = Subscriber::start(&app, &owner, ORDER_EVENTS, json!({})).await;
    let mut other_tenant = Subscriber::start(&app, &app.token(3, 2), ORDER_EVENTS, json!({})).await;
    for sub in [&mut as_viewer, &mut as_owner, &mut other_tenant] {
        assert_eq!(sub.next(Duration::from_secs(10)).await["connected"], true);
    }
    // Give the subscriptions a moment to be registered before the write.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.data(
        &owner,
        INGEST,
        json!({ "o": [order("E1", &recent(5), 12_345, "AWAITING_SHIPMENT")] }),
    )
    .await;
    let seen = as_viewer.next_value(Duration::from_secs(5)).await;
    let event = &seen["data"]["orderEvents"];
    assert_eq!(event["kind"], "CREATED", "{seen}");
    assert_eq!(event["order"]["orderNo"], "E1");
    assert_eq!(
        event["order"]["receiverPhone"], "138****5678",
        "masked without PII_READ"
    );
    assert_eq!(event["order"]["receiverName"], "张**");
    assert!(event["order"]["commissionAmount"].is_null());
    assert_eq!(
        seen["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{seen}"
    );
    let seen = as_owner.next_value(Duration::from_secs(5)).await;
    let event = &seen["data"]["orderEvents"];
    assert_eq!(
        event["order"]["receiverPhone"], "13812345678",
        "the owner reads PII"
    );
    assert_eq!(
        event["order"]["commissionAmount"].as_i64(),
        Some(app.sql_i64("SELECT commission_amount FROM orders WHERE order_no = 'E1'"))
    );
    assert!(seen.get("errors").is_none());
    // The owner's unmasked read is in the audit log, as for a query.
    assert!(
        app.sql_i64("SELECT count(*) FROM audit_log WHERE action = 'readPii' AND account_id = 1")
            >= 1
    );
    // Tenant 2 saw nothing of tenant 1.
    other_tenant.quiet_for(Duration::from_millis(800)).await;

    // A change is CHANGED: the seller ships.
    let id = app.sql_i64("SELECT id FROM orders WHERE order_no = 'E1'");
    let shipped = app
        .gql(
            &owner,
            "mutation($id: ID!) { shipOrder(id: $id, carrier: \"SF\", trackingNo: \"SF123\") { __typename } }",
            json!({ "id": id.to_string() }),
        )
        .await;
    assert!(shipped.get("errors").is_none(), "{shipped}");
    let seen = as_viewer.next_value(Duration::from_secs(5)).await;
    assert_eq!(seen["data"]["orderEvents"]["kind"], "CHANGED");
    assert_eq!(seen["data"]["orderEvents"]["order"]["status"], "SHIPPED");

    // No ORDERS_READ: the subscription is refused with FORBIDDEN.
    app.conn_exec("INSERT INTO accounts (id, tenant_id, name, is_owner, permissions, shop_ids) VALUES (20, 1, 'analyst only', false, '{ANALYTICS_READ}', '{}')");
    let mut refused = Subscriber::start(&app, &app.token(20, 1), ORDER_EVENTS, json!({})).await;
    loop {
        let line = refused.next(Duration::from_secs(5)).await;
        if line.get("connected").is_some() {
            continue;
        }
        let text = line.to_string();
        assert!(
            text.contains("FORBIDDEN") || text.contains("ORDERS_READ"),
            "{text}"
        );
        break;
    }
}

#[tokio::test]
async fn revoking_tokens_closes_the_socket_and_bad_tokens_never_open_one() {
    let app = TestApp::spawn(0).await;
    let (from, to) = around_today();
    let viewer = app.token(2, 1);
    let mut sub =
        Subscriber::start(&app, &viewer, LIVE_KPIS, json!({ "from": from, "to": to })).await;
    sub.next_value(Duration::from_secs(10)).await;
    app.data(
        &app.owner(),
        "mutation { revokeTokens(accountId: \"2\") { id } }",
        json!({}),
    )
    .await;
    assert_eq!(sub.close_code().await, 4403);
    // A bad token: closed with 4403 before anything runs.
    let mut bad = Subscriber::start(
        &app,
        "not-a-token",
        LIVE_KPIS,
        json!({ "from": from, "to": to }),
    )
    .await;
    assert_eq!(bad.close_code().await, 4403);
    // Narrowing the scope closes with 4205 so that the client subscribes again. (The
    // revoked account gets a token of its new generation.)
    let generation = app.sql_i64("SELECT token_generation FROM accounts WHERE id = 2") as i32;
    let token = {
        let verifier = orderscope::auth::TokenVerifier::new(&app.settings.jwt).unwrap();
        verifier
            .issue(
                orderscope::auth::TokenSubject::account(2, 1, generation),
                None,
            )
            .unwrap()
            .token
    };
    let mut sub =
        Subscriber::start(&app, &token, LIVE_KPIS, json!({ "from": from, "to": to })).await;
    sub.next_value(Duration::from_secs(10)).await;
    app.data(
        &app.owner(),
        "mutation { updateSubAccount(id: \"2\", input: {shopIds: [\"1\"]}) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(sub.close_code().await, 4205);
}

#[tokio::test]
async fn queries_over_websocket_and_too_many_subscriptions_are_refused() {
    let app = TestApp::spawn(0).await;
    let mut query = Subscriber::start(&app, &app.owner(), "{ shops { id } }", json!({})).await;
    loop {
        let line = query.next(Duration::from_secs(6)).await;
        if line.get("connected").is_some() {
            continue;
        }
        assert!(line.to_string().contains("only subscriptions"), "{line}");
        break;
    }
    // A subscription whose document does not validate gets the protocol's `error`
    // message, with a code, and no `complete` after it.
    let mut invalid = Subscriber::start(
        &app,
        &app.owner(),
        "subscription { liveKpis { nope } }",
        json!({}),
    )
    .await;
    loop {
        let line = invalid.next(Duration::from_secs(6)).await;
        if line.get("connected").is_some() {
            continue;
        }
        assert_eq!(
            line["error"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{line}"
        );
        break;
    }
    invalid.quiet_for(Duration::from_millis(500)).await;
    // One connection subscribing 21 times: the 21st is refused, the others answer.
    let (from, to) = around_today();
    let mut many = Subscriber::start_copies(
        &app,
        &app.owner(),
        LIVE_KPIS,
        json!({ "from": from, "to": to }),
        orderscope::http::ws::MAX_PER_CONNECTION + 1,
    )
    .await;
    let (mut values, mut refused) = (0, 0);
    while values + refused < orderscope::http::ws::MAX_PER_CONNECTION + 1 {
        let line = many.next(Duration::from_secs(10)).await;
        if line.get("next").is_some() {
            values += 1;
        } else if line.get("error").is_some() {
            assert!(line.to_string().contains("per connection"), "{line}");
            refused += 1;
        }
    }
    assert_eq!(
        (values, refused),
        (orderscope::http::ws::MAX_PER_CONNECTION, 1)
    );
}

/// A text frame from the client (masked, as RFC 6455 requires).
fn client_frame(text: &str) -> Vec<u8> {
    let payload = text.as_bytes();
    let mut frame = vec![0x81u8];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n < 65_536 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test]
async fn a_consumer_that_stops_reading_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(0).await;
    let owner = app.owner();
    let addr = app.address.trim_start_matches("http://").to_string();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small receive window, so the server's sends back up soon.
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    let handshake = format!(
        "GET /graphql HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 1024];
    let n = stream.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("sec-websocket-protocol: graphql-transport-ws"),
        "{head}"
    );
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {owner}") } });
    stream
        .write_all(&client_frame(&init.to_string()))
        .await
        .unwrap();
    // Subscribe once the server has acknowledged, as graphql-ws clients do.
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("connection_ack") {
        let mut buf = vec![0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("connection_ack")
            .unwrap();
        assert!(n > 0, "closed before connection_ack");
        seen.extend_from_slice(&buf[..n]);
    }
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription { orderEvents { kind order { orderNo buyerNote receiverAddress items { sku quantity } } } }" } });
    stream
        .write_all(&client_frame(&subscribe.to_string()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // From here on the client reads nothing while thousands of large events are due.
    let note = "请".repeat(500);
    for batch in 0..5 {
        let orders: Vec<Value> = (0..1000)
            .map(|i| {
                let mut o = order(
                    &format!("S{batch}-{i}"),
                    &recent(60),
                    1_000,
                    "AWAITING_SHIPMENT",
                );
                o["buyerNote"] = json!(note);
                o["receiverAddress"] = json!(format!("广东省{note}"));
                o
            })
            .collect();
        let report = app.data(&owner, INGEST, json!({ "o": orders })).await;
        assert_eq!(report["ingestOrders"]["rejected"], 0);
    }
    // A send that waits longer than SEND_TIMEOUT makes the server give up on the
    // consumer: reading now drains what was in flight and then ends, instead of the
    // server holding everything for it.
    // (The server counts it: wait for that, however long producing the events takes.)
    let waited = std::time::Instant::now();
    while crate::helpers::metric(&app, "orderscope_ws_closed_total{reason=\"slow_consumer\"}").await
        < 1.0
    {
        assert!(
            waited.elapsed() < Duration::from_secs(90),
            "the slow consumer was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let total = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = total.clone();
    let drained = tokio::time::timeout(Duration::from_secs(30), async move {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return counted.load(std::sync::atomic::Ordering::SeqCst),
                Ok(n) => {
                    counted.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the server kept the slow consumer's connection open ({} bytes read)",
            total.load(std::sync::atomic::Ordering::SeqCst)
        )
    });
    assert!(
        drained < 14 * 1024 * 1024,
        "the server sent everything ({drained} bytes)"
    );
    // The server is fine and other clients are served.
    let shops = app.data(&owner, "{ shops { id } }", json!({})).await;
    assert!(shops["shops"].as_array().is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn stock_warnings_arrive_again_when_stock_changes() {
    let app = TestApp::spawn(3000).await;
    let token = app.owner();
    // The best-selling product of the seed's last week.
    let product = app.sql_ids(
        "SELECT i.product_id AS id FROM order_items i JOIN orders o ON o.id = i.order_id \
         WHERE o.paid_at IS NOT NULL AND o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1) \
           AND o.placed_at >= '2026-11-14' AND i.product_id IS NOT NULL \
         GROUP BY 1 ORDER BY sum(i.quantity) DESC LIMIT 1",
    )[0];
    let set = "mutation($p: ID!, $s: Int!) { setProductStock(items: [{productId: $p, stock: $s}]) { updated } }";
    app.data(
        &token,
        set,
        json!({ "p": product.to_string(), "s": 100000 }),
    )
    .await;
    let mut sub = Subscriber::start(
        &app,
        &token,
        "subscription { stockWarnings(withinDays: 365, asOf: \"2026-11-21\") { productId stock daysOfCover } }",
        json!({}),
    )
    .await;
    let first = sub.next_value(Duration::from_secs(10)).await;
    let listed = |v: &Value| {
        v["data"]["stockWarnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["productId"] == product.to_string().as_str())
    };
    assert!(
        !listed(&first),
        "100000 units last longer than a year: {first}"
    );
    app.data(&token, set, json!({ "p": product.to_string(), "s": 1 }))
        .await;
    let next = sub.next_value(Duration::from_secs(10)).await;
    assert!(listed(&next), "one unit left is a warning: {next}");
}
