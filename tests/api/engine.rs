//! The analytic store: equal to plain SQL over the tables after any sequence of
//! writes, concurrent ones through two nodes included, and current on every node as
//! soon as a write returns, whoever wrote it.

use serde_json::{json, Value};

use crate::helpers::TestApp;

const KPIS: &str = "query($m: [Metric!], $tz: String!, $cur: String!) { kpis(range: {from: \"2026-10-01\", to: \"2026-11-20\"}, metrics: $m, timezone: $tz, currency: $cur) { values { metric value } } }";

/// The value of `metric` in a list of metric values (0 when null or absent).
fn metric_of(values: &Value, metric: &str) -> f64 {
    values
        .as_array()
        .and_then(|a| a.iter().find(|v| v["metric"] == metric))
        .and_then(|v| v["value"].as_f64())
        .unwrap_or(0.0)
}

fn value(data: &Value, metric: &str) -> Option<f64> {
    data["kpis"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["metric"] == metric)
        .and_then(|v| v["value"].as_f64())
}

/// The seed of a randomised test: `TEST_SEED` when set (a fresh seed for a longer
/// hunt), else the test's fixed one, so `scripts/test` repeats itself. Printed, so a
/// failing run names the seed that reproduces it.
pub(crate) fn test_seed(fixed: u64) -> u64 {
    let seed = std::env::var("TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(fixed);
    eprintln!("random sequence: TEST_SEED={seed}");
    seed
}

/// Rounds of a randomised test: `TEST_ROUNDS` when set, else the fixed number.
pub(crate) fn test_rounds(fixed: i64) -> i64 {
    std::env::var("TEST_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(fixed)
}

/// A small deterministic generator for the random write sequence.
pub(crate) struct Lcg(pub(crate) u64);
impl Lcg {
    pub(crate) fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn random_order(rng: &mut Lcg, no: u64, version: i64) -> Value {
    let day = 1 + rng.next(20);
    let hour = rng.next(24);
    let placed = format!("2026-11-{day:02}T{hour:02}:{:02}:00Z", rng.next(60));
    let at = |mins: i64| {
        (chrono::DateTime::parse_from_rfc3339(&placed).unwrap() + chrono::Duration::minutes(mins))
            .to_rfc3339()
    };
    let paid = rng.next(10) > 1;
    let amount = 100 + rng.next(50_000) as i64;
    let stage = rng.next(4);
    let channel =
        ["LIVE", "SHORT_VIDEO", "SHOWCASE", "SHELF", "ADS", "OTHER"][rng.next(6) as usize];
    let mut order = json!({
        "shopId": if rng.next(2) == 0 { "1" } else { "4" }, "orderNo": format!("R{no}"),
        "status": "PENDING_PAYMENT", "placedAt": placed, "goodsAmount": amount, "buyerId": format!("rb{}", rng.next(30)),
        "channel": channel,
        "sourceUpdatedAt": at(10_000 + version),
        "items": [],
    });
    // One to three lines; a product can repeat within an order, and each product keeps
    // one category (two products share one).
    let lines = 1 + rng.next(3) as i64;
    for n in 0..lines {
        let product = rng.next(6);
        let category = ["服饰", "美妆", "食品", "数码", "服饰", "家居"][product as usize];
        let paid = if n == 0 {
            amount - (lines - 1) * (amount / 4)
        } else {
            amount / 4
        };
        order["items"].as_array_mut().unwrap().push(json!({
            "productExternalId": format!("rp{product}"), "category": category, "sku": format!("S{n}"),
            "quantity": 1 + rng.next(3) as i64, "unitPrice": paid, "paidAmount": paid}));
    }
    if order["shopId"] == "4" {
        order["currency"] = json!("USD");
    } else if let Some(code) = ["44", "33", "11", "65"].get(rng.next(5) as usize) {
        order["provinceCode"] = json!(code);
    }
    if let Some(method) = ["ALIPAY", "WECHAT_PAY", "DOUYIN_PAY"].get(rng.next(4) as usize) {
        order["paymentMethod"] = json!(method);
    }
    if paid {
        order["paidAt"] = json!(at(5));
        order["paidAmount"] = json!(amount);
        order["status"] = json!("AWAITING_SHIPMENT");
        if rng.next(3) == 0 {
            let creator = rng.next(3);
            order["creator"] =
                json!({"externalId": format!("rc{creator}"), "handle": format!("达人{creator}")});
            order["commissionRateBps"] = json!(1500);
        }
        if stage >= 1 {
            order["shippedAt"] = json!(at(600));
            order["status"] = json!("SHIPPED");
        }
        if stage >= 2 {
            order["deliveredAt"] = json!(at(600 + 1_000 + rng.next(5_000) as i64));
            order["status"] = json!("DELIVERED");
        }
        if rng.next(4) == 0 {
            let refunded = rng.next(2) == 0;
            order["afterSales"] = json!([{"externalId": "a1", "kind": "REFUND_ONLY",
                "status": if refunded { "REFUNDED" } else { "REQUESTED" },
                "refundAmount": if refunded { amount / 2 } else { 0 },
                "requestedAt": at(700), "dispute": if rng.next(3) == 0 { "OPEN" } else { "NONE" }}]);
        }
    }
    order
}

#[tokio::test]
async fn random_concurrent_writes_through_two_nodes_keep_both_equal_to_sql() {
    let app = TestApp::spawn(500).await;
    let other = app.second_node();
    let token = app.owner();
    let ingest =
        "mutation($o: [OrderInput!]!) { ingestOrders(orders: $o) { rejected results { reason } } }";
    // Four writers, each sending rounds of new orders and new versions of shared ones:
    // orders move between hours and days, get paid, shipped, delivered, refunded.
    let mut tasks = Vec::new();
    let (seed, rounds) = (test_seed(0), test_rounds(6));
    for writer in 0..4u64 {
        // Writers 0 and 2 write through one node, 1 and 3 through the other.
        let node = if writer % 2 == 0 { &app } else { &other };
        let (address, token, client) = (node.address.clone(), token.clone(), node.client.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Lcg(seed.wrapping_add(writer * 7919 + 1));
            for round in 0..rounds {
                let batch: Vec<Value> = (0..40)
                    .map(|_| {
                        let no = rng.next(120);
                        random_order(&mut rng, no, round * 10 + writer as i64)
                    })
                    .collect();
                let resp: Value = client
                    .post(format!("{address}/graphql"))
                    .bearer_auth(&token)
                    .json(&json!({"query": ingest, "variables": {"o": batch}}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert!(resp.get("errors").is_none(), "{resp}");
                assert_eq!(resp["data"]["ingestOrders"]["rejected"], 0, "{resp}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(app.sql_i64("SELECT count(*) FROM orders WHERE order_no LIKE 'R%'") > 60);
    // Both nodes' answers equal plain SQL over the tables.
    for (node, tz, cur) in [
        (&app, "Asia/Shanghai", "CNY"),
        (&other, "Asia/Shanghai", "CNY"),
        (&app, "America/Los_Angeles", "USD"),
        (&other, "America/Los_Angeles", "USD"),
    ] {
        let data = node.data_computed(&token, KPIS, json!({"m": ["ORDERS", "PAID_ORDERS", "GMV", "UNITS", "REFUND_ORDERS", "REFUND_AMOUNT", "DISPUTE_ORDERS", "AVG_DELIVERY_HOURS", "COMMISSION"], "tz": tz, "cur": cur})).await;
        let window = format!("o.placed_at >= ('2026-10-01'::timestamp AT TIME ZONE '{tz}') AND o.placed_at < ('2026-11-21'::timestamp AT TIME ZONE '{tz}') AND o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1)");
        assert_eq!(
            value(&data, "ORDERS"),
            Some(app.sql_i64(&format!("SELECT count(*) FROM orders o WHERE {window}")) as f64),
            "{tz}"
        );
        let fx = format!("(CASE WHEN s.currency = 'CNY' THEN 1 ELSE (SELECT rate_to_cny FROM fx_rates f WHERE f.currency = s.currency AND f.day = (o.placed_at AT TIME ZONE '{tz}')::date) END / CASE WHEN '{cur}' = 'CNY' THEN 1 ELSE (SELECT rate_to_cny FROM fx_rates f WHERE f.currency = '{cur}' AND f.day = (o.placed_at AT TIME ZONE '{tz}')::date) END)");
        let gmv_cents = app.sql_i64(&format!("SELECT round(sum(o.paid_amount * {fx}))::bigint FROM orders o JOIN shops s ON s.id = o.shop_id WHERE {window} AND o.paid_at IS NOT NULL"));
        assert_eq!(
            (value(&data, "GMV").unwrap() * 100.0).round() as i64,
            gmv_cents,
            "{tz} GMV"
        );
        let refund_cents = app.sql_i64(&format!("SELECT coalesce(round(sum(a.refund_amount * {fx})), 0)::bigint FROM after_sales a JOIN orders o ON o.id = a.order_id JOIN shops s ON s.id = o.shop_id WHERE {window} AND a.status = 'REFUNDED'"));
        assert_eq!(
            (value(&data, "REFUND_AMOUNT").unwrap() * 100.0).round() as i64,
            refund_cents,
            "{tz} refunds"
        );
        assert_eq!(value(&data, "DISPUTE_ORDERS"), Some(app.sql_i64(&format!("SELECT count(*) FROM orders o WHERE {window} AND EXISTS (SELECT 1 FROM after_sales a WHERE a.order_id = o.id AND a.dispute <> 'NONE')")) as f64));
        assert_eq!(value(&data, "UNITS"), Some(app.sql_i64(&format!("SELECT coalesce(sum(i.quantity), 0) FROM order_items i JOIN orders o ON o.id = i.order_id WHERE {window} AND o.paid_at IS NOT NULL")) as f64));
    }
}

#[tokio::test]
async fn default_zone_trends_match_sql_bucket_by_bucket() {
    let app = TestApp::spawn(2_000).await;
    let token = app.owner();
    let query = "query($g: Granularity!) { trend(range: {from: \"2026-10-01\", to: \"2026-11-20\"}, granularity: $g,
        metrics: [ORDERS, GMV], compare: PREVIOUS_PERIOD) { points { start label values { metric value previous } } } }";
    for granularity in ["DAY", "WEEK", "MONTH"] {
        let data = app.data(&token, query, json!({"g": granularity})).await;
        let points = data["trend"]["points"].as_array().unwrap().clone();
        let mut total = 0.0;
        for (i, p) in points.iter().enumerate() {
            let start = p["start"].as_str().unwrap();
            let end = points
                .get(i + 1)
                .map(|n| n["start"].as_str().unwrap().to_string())
                .unwrap_or_else(|| "2026-11-20T16:00:00+00:00".to_string());
            let orders = app.sql_i64(&format!(
                "SELECT count(*) FROM orders WHERE shop_id IN (SELECT id FROM shops WHERE tenant_id = 1) AND placed_at >= '{start}' AND placed_at < '{end}'"
            ));
            assert_eq!(
                p["values"][0]["value"].as_f64(),
                Some(orders as f64),
                "{granularity} {start}"
            );
            total += orders as f64;
        }
        assert!(total > 1_000.0);
        if granularity == "DAY" {
            assert_eq!(points.len(), 51);
        }
    }
}

const BREAKDOWN: &str = "query($d: Dimension!, $tz: String!, $cur: String!) { breakdown(range: {from: \"2026-11-01\", to: \"2026-11-20\"}, dimension: $d,
  metrics: [ORDERS, PAID_ORDERS, GMV, UNITS, REFUND_ORDERS, REFUND_AMOUNT, DISPUTE_ORDERS, AVG_DELIVERY_HOURS, COMMISSION, PAY_CONVERSION, BUYERS, ON_TIME_RATE, REPEAT_BUYERS, REPEAT_RATE, NEW_BUYERS],
  sortBy: ORDERS, limit: 3, timezone: $tz, currency: $cur) {
  rows { key values { metric value } } other { values { metric value } } total { metric value } } }";

/// SQL for each dimension's key of an order `o` (shop `s`), as the raw path defines it.
const DIMENSION_KEYS: &[(&str, &str)] = &[
    ("PROVINCE", "coalesce(o.province_code, '')"),
    (
        "REGION",
        "coalesce((SELECT region FROM provinces p WHERE p.code = o.province_code), '')",
    ),
    ("CHANNEL", "o.channel"),
    ("CREATOR", "coalesce(o.creator_id::text, '')"),
    ("PAYMENT_METHOD", "coalesce(o.payment_method, '')"),
    ("STATUS", "o.status"),
    ("SHOP", "o.shop_id::text"),
    ("PLATFORM", "s.platform"),
    (
        "CARRIER",
        "coalesce((SELECT sh.carrier FROM shipments sh WHERE sh.order_id = o.id), '')",
    ),
];

#[tokio::test]
async fn random_writes_keep_every_breakdown_equal_to_sql_in_every_zone() {
    use crate::analytics::{assert_metrics, sql_metrics};
    let app = TestApp::spawn(500).await;
    let token = app.owner();
    let ingest = "mutation($o: [OrderInput!]!) { ingestOrders(orders: $o) { rejected } }";
    let mut rng = Lcg(test_seed(20261122));
    for round in 0..test_rounds(8) {
        // New orders and new versions of earlier ones (which move between days and
        // change province, channel, creator, payment method and status) ...
        let batch: Vec<Value> = (0..30)
            .map(|_| {
                let no = rng.next(90);
                random_order(&mut rng, no, round)
            })
            .collect();
        let resp = app.data(&token, ingest, json!({ "o": batch })).await;
        assert_eq!(resp["ingestOrders"]["rejected"], 0, "{resp}");
        // ... shipments and after-sale decisions through their own mutations.
        for id in app.sql_ids("SELECT id FROM orders WHERE order_no LIKE 'R%' AND status = 'AWAITING_SHIPMENT' ORDER BY id LIMIT 2") {
            app.data(&token, "mutation($id: ID!, $t: String!) { shipOrder(id: $id, carrier: \"SF\", trackingNo: $t) { alreadyShipped } }",
                json!({ "id": id.to_string(), "t": format!("SF{id}") })).await;
        }
        for id in app.sql_ids("SELECT a.id FROM after_sales a JOIN orders o ON o.id = a.order_id WHERE o.order_no LIKE 'R%' AND a.status = 'REQUESTED' ORDER BY a.id LIMIT 1") {
            app.data(&token, "mutation($id: ID!) { resolveAfterSale(id: $id, decision: APPROVE, refundAmount: 50) { alreadyResolved } }",
                json!({ "id": id.to_string() })).await;
        }
    }
    let asked = [
        "ORDERS",
        "PAID_ORDERS",
        "GMV",
        "UNITS",
        "REFUND_ORDERS",
        "REFUND_AMOUNT",
        "DISPUTE_ORDERS",
        "AVG_DELIVERY_HOURS",
        "COMMISSION",
        "PAY_CONVERSION",
        "BUYERS",
        "ON_TIME_RATE",
        "REPEAT_BUYERS",
        "REPEAT_RATE",
        "NEW_BUYERS",
    ];
    let only = |all: Vec<(&'static str, Option<f64>)>| -> Vec<(&'static str, Option<f64>)> {
        all.into_iter().filter(|m| asked.contains(&m.0)).collect()
    };
    // Every dimension in three zone and currency combinations. PRODUCT and CATEGORY count
    // product-orders (their SQL conditions are over `p.product_id`). Rows, other and
    // total against SQL, and every count and money column adds up.
    let product_keys = [
        ("PRODUCT", "coalesce(p.product_id::text, '')"),
        (
            "CATEGORY",
            "coalesce((SELECT pp.category FROM products pp WHERE pp.id = p.product_id), '')",
        ),
    ];
    let keys = DIMENSION_KEYS
        .iter()
        .map(|(d, k)| (*d, *k, false))
        .chain(product_keys.iter().map(|(d, k)| (*d, *k, true)));
    let keys: Vec<(&str, &str, bool)> = keys.collect();
    for (tz, cur) in [
        ("Asia/Shanghai", "CNY"),
        ("Asia/Shanghai", "USD"),
        ("America/Los_Angeles", "USD"),
    ] {
        let window = format!(
            "o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1) AND {}",
            crate::analytics::window("2026-11-01", "2026-11-20", tz)
        );
        for &(dimension, key_sql, products) in &keys {
            let data = app
                .data(
                    &token,
                    BREAKDOWN,
                    json!({ "d": dimension, "tz": tz, "cur": cur }),
                )
                .await;
            let report = &data["breakdown"];
            let label = format!("{tz} {cur} {dimension}");
            let sql = |cond: &str| {
                only(if products {
                    crate::analytics::sql_product_metrics(&app, &window, cond, tz, cur)
                } else {
                    sql_metrics(&app, &format!("{window} AND {cond}"), tz, cur)
                })
            };
            assert_metrics(
                &format!("{label} total"),
                &report["total"],
                &sql("true"),
                "value",
            );
            let mut shown = Vec::new();
            let mut sums = vec![0.0; asked.len()];
            for row in report["rows"].as_array().unwrap() {
                let key = row["key"].as_str().unwrap().replace('\'', "''");
                assert_metrics(
                    &format!("{label} {key}"),
                    &row["values"],
                    &sql(&format!("{key_sql} = '{key}'")),
                    "value",
                );
                shown.push(format!("'{key}'"));
                for (n, m) in asked.iter().enumerate() {
                    sums[n] += metric_of(&row["values"], m);
                }
            }
            if products {
                assert!(!report["other"].is_null(), "{label}: more than three keys");
            }
            if !report["other"].is_null() {
                assert_metrics(
                    &format!("{label} other"),
                    &report["other"]["values"],
                    &sql(&format!("{key_sql} NOT IN ({})", shown.join(","))),
                    "value",
                );
            }
            for (n, m) in asked.iter().enumerate() {
                // Ratios and buyer counts do not add up across rows.
                if [
                    "AVG_DELIVERY_HOURS",
                    "PAY_CONVERSION",
                    "BUYERS",
                    "ON_TIME_RATE",
                    "REPEAT_BUYERS",
                    "REPEAT_RATE",
                    "NEW_BUYERS",
                ]
                .contains(m)
                {
                    continue;
                }
                let sum = sums[n] + metric_of(&report["other"]["values"], m);
                let total = metric_of(&report["total"], m);
                // Counts add up exactly; the USD shop's money is converted and each
                // row is rounded once (half a cent per row at most).
                let money = ["GMV", "REFUND_AMOUNT", "COMMISSION"].contains(m);
                let tolerance = if money { 0.005 * 4.0 } else { 1e-9 };
                assert!(
                    (sum - total).abs() <= tolerance,
                    "{label} {m}: rows + other {sum} vs total {total}"
                );
            }
        }
    }

    // PRODUCT attributes item lines; a filter on every channel selects the same orders
    // and must not change a number.
    let product = "query($cur: String!, $f: AnalyticsFilter) { breakdown(range: {from: \"2026-11-01\", to: \"2026-11-20\"}, dimension: PRODUCT,
      metrics: [ORDERS, PAID_ORDERS, GMV, UNITS, REFUND_ORDERS, REFUND_AMOUNT, DISPUTE_ORDERS, AVG_DELIVERY_HOURS, COMMISSION, PAY_CONVERSION, BUYERS, ON_TIME_RATE, REPEAT_BUYERS, REPEAT_RATE, NEW_BUYERS],
      sortBy: GMV, limit: 3, currency: $cur, filter: $f) {
      rows { key values { metric value } } other { values { metric value } } total { metric value } } }";
    let every_channel =
        json!({ "channels": ["LIVE", "SHORT_VIDEO", "SHOWCASE", "SHELF", "ADS", "OTHER"] });
    for cur in ["CNY", "USD"] {
        let cells = app
            .data(&token, product, json!({ "cur": cur, "f": null }))
            .await;
        let raw = app
            .data(&token, product, json!({ "cur": cur, "f": every_channel }))
            .await;
        let (cells, raw) = (&cells["breakdown"], &raw["breakdown"]);
        let as_expected = |values: &Value| -> Vec<(&'static str, Option<f64>)> {
            asked
                .iter()
                .map(|m| {
                    let v = values
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|v| v["metric"] == *m)
                        .unwrap();
                    (*m, v["value"].as_f64())
                })
                .collect()
        };
        assert_metrics(
            &format!("PRODUCT {cur} total"),
            &cells["total"],
            &as_expected(&raw["total"]),
            "value",
        );
        assert!(!raw["other"].is_null(), "more than three products");
        assert_metrics(
            &format!("PRODUCT {cur} other"),
            &cells["other"]["values"],
            &as_expected(&raw["other"]["values"]),
            "value",
        );
        let rows = cells["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        for (got, want) in rows.iter().zip(raw["rows"].as_array().unwrap()) {
            assert_eq!(got["key"], want["key"]);
            assert_metrics(
                &format!("PRODUCT {cur} {}", got["key"]),
                &got["values"],
                &as_expected(&want["values"]),
                "value",
            );
        }
    }

    // Every granularity in a whole-hour zone without DST, one with DST and a half-hour
    // zone: each bucket equals SQL over its window.
    let trend = "query($g: Granularity!, $from: Date!, $to: Date!, $tz: String!) { trend(range: {from: $from, to: $to}, granularity: $g,
      metrics: [ORDERS, PAID_ORDERS, GMV, UNITS, REFUND_ORDERS, REFUND_AMOUNT, DISPUTE_ORDERS, AVG_DELIVERY_HOURS, COMMISSION, PAY_CONVERSION, BUYERS, ON_TIME_RATE, REPEAT_BUYERS, REPEAT_RATE, NEW_BUYERS],
      timezone: $tz, currency: \"CNY\") { points { start values { metric value } } } }";
    for tz in ["Asia/Shanghai", "America/Los_Angeles", "Asia/Kolkata"] {
        for (granularity, from, to) in [
            ("HOUR", "2026-11-10", "2026-11-10"),
            ("DAY", "2026-11-01", "2026-11-20"),
            ("WEEK", "2026-11-01", "2026-11-20"),
            ("MONTH", "2026-10-15", "2026-11-20"),
        ] {
            let data = app
                .data(
                    &token,
                    trend,
                    json!({ "g": granularity, "from": from, "to": to, "tz": tz }),
                )
                .await;
            let points = data["trend"]["points"].as_array().unwrap();
            let end: String = {
                use diesel::prelude::*;
                #[derive(QueryableByName)]
                struct At {
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    at: String,
                }
                diesel::sql_query(format!(
                    "SELECT ((('{to}'::date + 1)::timestamp AT TIME ZONE '{tz}') AT TIME ZONE 'UTC')::text || '+00' AS at"
                ))
                .get_result::<At>(&mut app.conn())
                .unwrap()
                .at
            };
            for (i, point) in points.iter().enumerate() {
                let start = point["start"].as_str().unwrap();
                let next = points
                    .get(i + 1)
                    .map(|p| p["start"].as_str().unwrap().to_string())
                    .unwrap_or_else(|| end.clone());
                // The first bucket starts at the range's start even when the calendar
                // unit (week, month) began earlier.
                let cond = format!(
                    "o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1) AND {} AND o.placed_at >= '{start}' AND o.placed_at < '{next}'",
                    crate::analytics::window(from, to, tz)
                );
                assert_metrics(
                    &format!("{tz} {granularity} {start}"),
                    &point["values"],
                    &sql_metrics(&app, &cond, tz, "CNY")
                        .into_iter()
                        .filter(|m| asked.contains(&m.0) || m.0 == "BUYERS")
                        .collect::<Vec<_>>(),
                    "value",
                );
            }
        }
    }

    // One shop in the report currency: the other row is summed from the groups left
    // out, for the period and for the previous one.
    let one_shop = "query($d: Dimension!) { breakdown(range: {from: \"2026-11-01\", to: \"2026-11-20\"}, dimension: $d,
      metrics: [ORDERS, PAID_ORDERS, GMV, UNITS, REFUND_ORDERS, REFUND_AMOUNT, DISPUTE_ORDERS, AVG_DELIVERY_HOURS, COMMISSION, PAY_CONVERSION, BUYERS, ON_TIME_RATE, REPEAT_BUYERS, REPEAT_RATE, NEW_BUYERS],
      sortBy: GMV, limit: 2, filter: {shopIds: [\"1\"]}, compare: PREVIOUS_PERIOD) {
      rows { key } other { values { metric value previous } } } }";
    for (dimension, key_sql) in DIMENSION_KEYS {
        let data = app.data(&token, one_shop, json!({ "d": dimension })).await;
        let report = &data["breakdown"];
        if report["other"].is_null() {
            // Nothing folded away (SHOP and PLATFORM have one key here): every key SQL
            // finds in the window is a row.
            let keys = app.sql_i64(&format!(
                "SELECT count(DISTINCT {key_sql}) FROM orders o JOIN shops s ON s.id = o.shop_id \
                 WHERE o.shop_id = 1 AND {}",
                crate::analytics::window("2026-11-01", "2026-11-20", "Asia/Shanghai")
            ));
            let rows = report["rows"].as_array().unwrap().len() as i64;
            assert_eq!(
                rows, keys,
                "shop 1 {dimension}: no other row, so every key is shown"
            );
            assert!(
                rows <= 2,
                "shop 1 {dimension}: {rows} rows for limit 2 and no other"
            );
            continue;
        }
        let shown: Vec<String> = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("'{}'", r["key"].as_str().unwrap().replace('\'', "''")))
            .collect();
        for (field, from, to) in [
            ("value", "2026-11-01", "2026-11-20"),
            ("previous", "2026-10-12", "2026-10-31"),
        ] {
            let cond = format!(
                "o.shop_id = 1 AND {} AND {key_sql} NOT IN ({})",
                crate::analytics::window(from, to, "Asia/Shanghai"),
                shown.join(",")
            );
            assert_metrics(
                &format!("shop 1 {dimension} other {field}"),
                &report["other"]["values"],
                &only(sql_metrics(&app, &cond, "Asia/Shanghai", "CNY")),
                field,
            );
        }
    }
}
