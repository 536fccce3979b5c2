//! `ingestOrders`: idempotent upserts, stale versions, validation, concurrency.

use serde_json::{json, Value};

use crate::helpers::{error_code, TestApp};

const INGEST: &str = "mutation($o: [OrderInput!]!) { ingestOrders(orders: $o) {
  created updated unchanged stale rejected
  results { index orderNo outcome orderId reason }
} }";

fn order(no: &str, version: &str, paid: i64) -> Value {
    json!({
        "shopId": "1", "orderNo": no, "rawStatus": "2",
        "placedAt": "2026-11-01T10:00:00Z", "paidAt": "2026-11-01T10:05:00Z",
        "paymentMethod": "DOUYIN_PAY", "currency": "CNY",
        "goodsAmount": paid, "paidAmount": paid,
        "provinceCode": "44", "city": "广州市", "channel": "LIVE",
        "creator": {"externalId": "c-1", "handle": "带货达人"}, "commissionRateBps": 2000,
        "buyerId": "buyer-1", "buyerNickname": "小鱼", "receiverName": "张三", "receiverPhone": "13812345678",
        "receiverAddress": "广东省广州市天河区体育西路1号",
        "sourceUpdatedAt": version,
        "items": [{"productExternalId": "sku-a", "productTitle": "连衣裙", "category": "服装", "sku": "A-M", "quantity": 1, "unitPrice": paid, "paidAmount": paid}],
    })
}

async fn ingest(app: &TestApp, token: &str, orders: Vec<Value>) -> Value {
    app.data(token, INGEST, json!({ "o": orders })).await["ingestOrders"].clone()
}

#[tokio::test]
async fn a_replayed_batch_changes_nothing() {
    let app = TestApp::spawn(0).await;
    let token = app.token(4, 1); // INTEGRATION preset: ORDERS_WRITE only
    let batch: Vec<Value> = (0..50)
        .map(|i| order(&format!("DY{i}"), "2026-11-01T10:05:00Z", 1000 + i))
        .collect();
    let first = ingest(&app, &token, batch.clone()).await;
    assert_eq!(first["created"], 50);
    assert_eq!(app.sql_i64("SELECT count(*) FROM orders"), 50);
    assert_eq!(app.sql_i64("SELECT count(*) FROM order_items"), 50);
    // Status came from Douyin's raw code 2; commission from the rate.
    assert_eq!(
        app.sql_i64(
            "SELECT count(*) FROM orders WHERE status = 'AWAITING_SHIPMENT' AND raw_status = '2'"
        ),
        50
    );
    assert_eq!(
        app.sql_i64("SELECT commission_amount FROM orders WHERE order_no = 'DY0'"),
        200
    );
    let snapshot = app.sql_i64("SELECT sum(hashtext(o::text)) FROM orders o");
    let second = ingest(&app, &token, batch).await;
    assert_eq!(
        (
            second["created"].as_i64(),
            second["updated"].as_i64(),
            second["unchanged"].as_i64()
        ),
        (Some(0), Some(0), Some(50))
    );
    assert_eq!(
        app.sql_i64("SELECT sum(hashtext(o::text)) FROM orders o"),
        snapshot,
        "nothing was rewritten"
    );
    assert_eq!(app.sql_i64("SELECT count(*) FROM order_items"), 50);
    assert_eq!(app.sql_i64("SELECT count(*) FROM creators"), 1);
    assert_eq!(app.sql_i64("SELECT count(*) FROM products"), 1);
    assert_eq!(
        app.sql_i64(
            "SELECT count(*) FROM audit_log WHERE action = 'ingestOrders' AND account_id = 4"
        ),
        2
    );
}

#[tokio::test]
async fn newer_versions_apply_and_older_ones_are_stale() {
    let app = TestApp::spawn(0).await;
    let token = app.owner();
    ingest(
        &app,
        &token,
        vec![order("X1", "2026-11-01T12:00:00Z", 5000)],
    )
    .await;
    let mut shipped = order("X1", "2026-11-02T08:00:00Z", 5000);
    shipped["rawStatus"] = json!("3");
    shipped["shippedAt"] = json!("2026-11-02T08:00:00Z");
    shipped["shipment"] =
        json!({"carrier": "顺丰速运", "trackingNo": "SF1", "shippedAt": "2026-11-02T08:00:00Z"});
    shipped["items"] = json!([
        {"productExternalId": "sku-a", "sku": "A-M", "quantity": 1, "unitPrice": 3000, "paidAmount": 3000},
        {"productExternalId": "sku-b", "productTitle": "腰带", "sku": "B", "quantity": 2, "unitPrice": 1000, "paidAmount": 2000}]);
    shipped["afterSales"] = json!([{"externalId": "AS1", "kind": "REFUND_ONLY", "status": "REQUESTED", "requestedAt": "2026-11-02T09:00:00Z", "refundAmount": 1000}]);
    let report = ingest(&app, &token, vec![shipped]).await;
    assert_eq!(report["updated"], 1, "{report}");
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM orders WHERE status = 'SHIPPED'"),
        1
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM order_items"),
        2,
        "items are replaced, not appended"
    );
    assert_eq!(app.sql_i64("SELECT count(*) FROM shipments"), 1);
    assert_eq!(app.sql_i64("SELECT count(*) FROM after_sales"), 1);
    // An older version arrives late: reported, not applied.
    let late = ingest(
        &app,
        &token,
        vec![order("X1", "2026-11-01T18:00:00Z", 9999)],
    )
    .await;
    assert_eq!(late["stale"], 1);
    assert_eq!(late["results"][0]["outcome"], "STALE");
    assert!(late["results"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("newer version"));
    assert_eq!(
        app.sql_i64("SELECT paid_amount FROM orders WHERE order_no = 'X1'"),
        5000
    );
    assert_eq!(app.sql_i64("SELECT count(*) FROM order_items"), 2);
    // Two versions of one order in one batch: the newest wins, the other is stale.
    let both = ingest(
        &app,
        &token,
        vec![
            order("X2", "2026-11-03T00:00:00Z", 700),
            order("X2", "2026-11-02T00:00:00Z", 600),
        ],
    )
    .await;
    assert_eq!(
        (both["created"].as_i64(), both["stale"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(both["results"][1]["outcome"], "STALE");
    assert_eq!(
        app.sql_i64("SELECT paid_amount FROM orders WHERE order_no = 'X2'"),
        700
    );
}

#[tokio::test]
async fn invalid_orders_are_rejected_with_a_reason_and_the_rest_applies() {
    let app = TestApp::spawn(0).await;
    let token = app.owner();
    let with = |key: &str, value: Value| {
        let mut o = order(&format!("BAD-{key}"), "2026-11-01T10:05:00Z", 1000);
        o[key] = value;
        o
    };
    let cases = vec![
        (with("shopId", json!("3")), "unknown shop"), // another tenant's shop
        (with("shopId", json!("999")), "unknown shop"),
        (
            with("goodsAmount", json!(-5)),
            "goodsAmount must not be negative",
        ),
        (
            with("paidAmount", json!(-1)),
            "paidAmount must not be negative",
        ),
        (
            with("paidAt", json!("2026-11-01T09:00:00Z")),
            "paidAt is before placedAt",
        ),
        (with("provinceCode", json!("99")), "unknown province code"),
        (with("currency", json!("USD")), "is not the shop's currency"),
        (with("rawStatus", json!("42")), "unknown DOUYIN status"),
        (with("orderNo", json!("  ")), "orderNo must not be empty"),
        (with("commissionRateBps", json!(20000)), "commissionRateBps"),
        (with("status", json!("COMPLETED")), ""),
    ];
    let mut batch: Vec<Value> = cases.iter().map(|c| c.0.clone()).collect();
    // COMPLETED without paidAt is inconsistent:
    batch[10].as_object_mut().unwrap().remove("paidAt");
    batch[10]["rawStatus"] = Value::Null;
    batch.push(order("GOOD-1", "2026-11-01T10:05:00Z", 1000));
    let report = ingest(&app, &token, batch).await;
    assert_eq!(report["rejected"], 11, "{report}");
    assert_eq!(report["created"], 1);
    for (i, (_, needle)) in cases.iter().enumerate() {
        let result = &report["results"][i];
        assert_eq!(result["outcome"], "REJECTED", "{i}");
        let reason = result["reason"].as_str().unwrap();
        assert!(reason.contains(needle), "case {i}: {reason}");
    }
    assert!(report["results"][10]["reason"]
        .as_str()
        .unwrap()
        .contains("requires paidAt"));
    assert_eq!(app.sql_i64("SELECT count(*) FROM orders"), 1);
    // The scoped account cannot write to a shop outside its scope.
    let mut other_shop = order("SCOPED", "2026-11-01T10:05:00Z", 10);
    other_shop["shopId"] = json!("2");
    other_shop["currency"] = json!("USD");
    other_shop["provinceCode"] = Value::Null;
    let scoped = ingest(&app, &app.token(5, 1), vec![other_shop]).await;
    assert_eq!(scoped["results"][0]["reason"], "unknown shop 2");
}

#[tokio::test]
async fn batch_size_permissions_and_shape_are_enforced() {
    let app = TestApp::spawn(0).await;
    let big: Vec<Value> = (0..1001)
        .map(|i| order(&format!("B{i}"), "2026-11-01T10:05:00Z", 1))
        .collect();
    let body = app.gql(&app.owner(), INGEST, json!({ "o": big })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("at most 1000"));
    // The 仅查看 viewer may not write.
    let body = app
        .gql(
            &app.token(2, 1),
            INGEST,
            json!({ "o": [order("V1", "2026-11-01T10:05:00Z", 1)] }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    // A malformed input value never reaches the resolver.
    let mut broken = order("M1", "2026-11-01T10:05:00Z", 1);
    broken["placedAt"] = json!("last tuesday");
    let body = app
        .gql(&app.owner(), INGEST, json!({ "o": [broken] }))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(app.sql_i64("SELECT count(*) FROM orders"), 0);
}

#[tokio::test]
async fn concurrent_overlapping_ingests_converge_on_the_newest_versions() {
    let app = TestApp::spawn(0).await;
    let token = app.owner();
    // Eight writers send overlapping batches of the same 300 orders, each with its own
    // version; every order must end at the highest version any writer sent.
    let mut tasks = Vec::new();
    for writer in 0..8i64 {
        let app_address = app.address.clone();
        let token = token.clone();
        let client = app.client.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for round in 0..3i64 {
                let version = writer * 10 + round;
                let batch: Vec<Value> = (0..300)
                    .filter(|i| (i + writer) % 3 != 0)
                    .map(|i| {
                        let at = chrono::DateTime::parse_from_rfc3339("2026-11-05T00:00:00Z")
                            .unwrap()
                            + chrono::Duration::minutes(version);
                        order(&format!("C{i}"), &at.to_rfc3339(), 1000 + version)
                    })
                    .collect();
                let resp: Value = client
                    .post(format!("{app_address}/graphql"))
                    .bearer_auth(&token)
                    .json(&json!({"query": INGEST, "variables": {"o": batch}}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert!(resp.get("errors").is_none(), "{resp}");
                acknowledged.push(resp["data"]["ingestOrders"]["results"].clone());
            }
            acknowledged
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Expected: per order, the highest version among writers that included it.
    for i in 0..300i64 {
        let best = (0..8i64)
            .filter(|w| (i + w) % 3 != 0)
            .map(|w| w * 10 + 2)
            .max()
            .unwrap();
        let stored = app.sql_i64(&format!(
            "SELECT paid_amount FROM orders WHERE order_no = 'C{i}'"
        ));
        assert_eq!(stored, 1000 + best, "order C{i}");
    }
    assert_eq!(app.sql_i64("SELECT count(*) FROM orders"), 300);
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM order_items"),
        300,
        "one item per order, never duplicated"
    );
}
