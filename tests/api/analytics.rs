//! Analytics answers against plain SQL recomputations over the same data.

use diesel::connection::SimpleConnection;
use serde_json::{json, Value};

use crate::helpers::{error_code, TestApp};

/// The factor converting an order `o` of shop `s` into `currency`, with the rates of
/// its local day in `tz`.
fn fx_factor(tz: &str, currency: &str) -> String {
    format!(
        "(CASE WHEN s.currency = 'CNY' THEN 1 ELSE (SELECT rate_to_cny FROM fx_rates f WHERE f.currency = s.currency AND f.day = (o.placed_at AT TIME ZONE '{tz}')::date) END
          / CASE WHEN '{currency}' = 'CNY' THEN 1 ELSE (SELECT rate_to_cny FROM fx_rates f WHERE f.currency = '{currency}' AND f.day = (o.placed_at AT TIME ZONE '{tz}')::date) END)"
    )
}

/// One number from SQL.
fn sql_number(app: &TestApp, sql: &str) -> Option<f64> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
        v: Option<f64>,
    }
    diesel::sql_query(format!("SELECT ({sql})::float8 AS v"))
        .get_result::<V>(&mut app.conn())
        .unwrap()
        .v
}

/// Every metric for a set of orders (`cond` over `o`), recomputed independently of the
/// engine: one simple query per metric, money converted per local day.
pub(crate) fn sql_metrics(
    app: &TestApp,
    cond: &str,
    tz: &str,
    currency: &str,
) -> Vec<(&'static str, Option<f64>)> {
    let fx = fx_factor(tz, currency);
    let from = format!("FROM orders o JOIN shops s ON s.id = o.shop_id WHERE {cond}");
    let num = |sql: String| sql_number(app, &sql);
    let orders = num(format!("SELECT count(*) {from}")).unwrap();
    let paid = num(format!("SELECT count(*) {from} AND o.paid_at IS NOT NULL")).unwrap();
    let gmv = num(format!("SELECT coalesce(round(sum(o.paid_amount * {fx}) / 100, 2), 0) {from} AND o.paid_at IS NOT NULL")).unwrap();
    let units = num(format!("SELECT coalesce(sum(i.quantity), 0) FROM order_items i JOIN orders o ON o.id = i.order_id JOIN shops s ON s.id = o.shop_id WHERE {cond} AND o.paid_at IS NOT NULL")).unwrap();
    let refund_orders = num(format!("SELECT count(*) {from} AND o.paid_at IS NOT NULL AND EXISTS (SELECT 1 FROM after_sales a WHERE a.order_id = o.id AND a.status = 'REFUNDED')")).unwrap();
    let refund_amount = num(format!("SELECT coalesce(round(sum(a.refund_amount * {fx}) / 100, 2), 0) FROM after_sales a JOIN orders o ON o.id = a.order_id JOIN shops s ON s.id = o.shop_id WHERE {cond} AND a.status = 'REFUNDED'")).unwrap();
    let disputes = num(format!("SELECT count(*) {from} AND EXISTS (SELECT 1 FROM after_sales a WHERE a.order_id = o.id AND a.dispute <> 'NONE')")).unwrap();
    let delivery = num(format!("SELECT avg(extract(epoch FROM o.delivered_at - o.shipped_at) / 3600) {from} AND o.delivered_at IS NOT NULL AND o.shipped_at IS NOT NULL"));
    let on_time = num(format!("SELECT avg((o.delivered_at - o.shipped_at <= interval '72 hours')::int) {from} AND o.delivered_at IS NOT NULL AND o.shipped_at IS NOT NULL"));
    let commission = num(format!("SELECT coalesce(round(sum(o.commission_amount * {fx}) / 100, 2), 0) {from} AND o.paid_at IS NOT NULL AND o.creator_id IS NOT NULL")).unwrap();
    let buyers = num(format!(
        "SELECT count(DISTINCT o.buyer_id) {from} AND o.paid_at IS NOT NULL"
    ))
    .unwrap();
    // A buyer's first paid order in a shop: placed at the earliest instant of them.
    let first = "o.placed_at = (SELECT min(f.placed_at) FROM orders f WHERE f.shop_id = o.shop_id AND f.buyer_id = o.buyer_id AND f.paid_at IS NOT NULL)";
    let repeat = num(format!("SELECT count(*) FROM (SELECT o.buyer_id {from} AND o.paid_at IS NOT NULL GROUP BY o.buyer_id HAVING count(*) >= 2) x")).unwrap();
    let new = num(format!(
        "SELECT count(DISTINCT o.buyer_id) {from} AND o.paid_at IS NOT NULL AND {first}"
    ))
    .unwrap();
    let div = |a: f64, b: f64| (b != 0.0).then(|| a / b);
    vec![
        ("ORDERS", Some(orders)),
        ("PAID_ORDERS", Some(paid)),
        ("GMV", Some(gmv)),
        ("UNITS", Some(units)),
        ("AOV", div(gmv, paid).map(|v| (v * 100.0).round() / 100.0)),
        ("PAY_CONVERSION", div(paid, orders)),
        ("REFUND_ORDERS", Some(refund_orders)),
        ("REFUND_AMOUNT", Some(refund_amount)),
        ("REFUND_RATE", div(refund_orders, paid)),
        ("DISPUTE_ORDERS", Some(disputes)),
        ("DISPUTE_RATE", div(disputes, orders)),
        ("AVG_DELIVERY_HOURS", delivery),
        ("COMMISSION", Some(commission)),
        ("BUYERS", Some(buyers)),
        ("ON_TIME_RATE", on_time),
        ("REPEAT_BUYERS", Some(repeat)),
        ("REPEAT_RATE", div(repeat, buyers)),
        ("NEW_BUYERS", Some(new)),
    ]
}

/// Every metric of a PRODUCT or CATEGORY breakdown row, recomputed independently:
/// the row counts product-orders — each (order, product) pair once, for the orders
/// `cond` selects (over `o`) and the products `product_cond` selects (over `p.product_id`)
/// — with the GMV and units of the pair's lines, the order's delivery time per pair,
/// and the order's refund and commission on the product of its first line.
pub(crate) fn sql_product_metrics(
    app: &TestApp,
    cond: &str,
    product_cond: &str,
    tz: &str,
    currency: &str,
) -> Vec<(&'static str, Option<f64>)> {
    let fx = fx_factor(tz, currency);
    // One row per (order, product), with whether the product is the first line's.
    let pairs = format!(
        "(SELECT DISTINCT o.id, i.product_id,
                 i.product_id IS NOT DISTINCT FROM (SELECT f.product_id FROM order_items f WHERE f.order_id = o.id ORDER BY f.line_no LIMIT 1) AS first
            FROM orders o JOIN order_items i ON i.order_id = o.id
           WHERE {cond}) p"
    );
    let from = format!(
        "FROM {pairs} JOIN orders o ON o.id = p.id JOIN shops s ON s.id = o.shop_id WHERE ({product_cond})"
    );
    let num = |sql: String| sql_number(app, &sql);
    let lines = "(SELECT coalesce(sum(l.paid_amount), 0) AS paid, coalesce(sum(l.quantity), 0) AS quantity FROM order_items l WHERE l.order_id = o.id AND l.product_id IS NOT DISTINCT FROM p.product_id)";
    let orders = num(format!("SELECT count(*) {from}")).unwrap();
    let paid = num(format!("SELECT count(*) {from} AND o.paid_at IS NOT NULL")).unwrap();
    let gmv = num(format!("SELECT coalesce(round(sum((SELECT paid FROM {lines} x) * {fx}) / 100, 2), 0) {from} AND o.paid_at IS NOT NULL")).unwrap();
    let units = num(format!("SELECT coalesce(sum((SELECT quantity FROM {lines} x)), 0) {from} AND o.paid_at IS NOT NULL")).unwrap();
    let refund_orders = num(format!("SELECT count(*) {from} AND o.paid_at IS NOT NULL AND EXISTS (SELECT 1 FROM after_sales a WHERE a.order_id = o.id AND a.status = 'REFUNDED')")).unwrap();
    let refund_amount = num(format!("SELECT coalesce(round(sum((SELECT coalesce(sum(a.refund_amount), 0) FROM after_sales a WHERE a.order_id = o.id AND a.status = 'REFUNDED') * {fx}) / 100, 2), 0) {from} AND p.first")).unwrap();
    let disputes = num(format!("SELECT count(*) {from} AND EXISTS (SELECT 1 FROM after_sales a WHERE a.order_id = o.id AND a.dispute <> 'NONE')")).unwrap();
    let delivery = num(format!("SELECT avg(extract(epoch FROM o.delivered_at - o.shipped_at) / 3600) {from} AND o.delivered_at IS NOT NULL AND o.shipped_at IS NOT NULL"));
    let on_time = num(format!("SELECT avg((o.delivered_at - o.shipped_at <= interval '72 hours')::int) {from} AND o.delivered_at IS NOT NULL AND o.shipped_at IS NOT NULL"));
    let buyers = num(format!(
        "SELECT count(DISTINCT o.buyer_id) {from} AND o.paid_at IS NOT NULL"
    ))
    .unwrap();
    // A buyer's first paid order in a shop: placed at the earliest instant of them.
    let first_order = "o.placed_at = (SELECT min(f.placed_at) FROM orders f WHERE f.shop_id = o.shop_id AND f.buyer_id = o.buyer_id AND f.paid_at IS NOT NULL)";
    let repeat = num(format!("SELECT count(*) FROM (SELECT o.buyer_id {from} AND o.paid_at IS NOT NULL GROUP BY o.buyer_id HAVING count(DISTINCT o.id) >= 2) x")).unwrap();
    let new = num(format!(
        "SELECT count(DISTINCT o.buyer_id) {from} AND o.paid_at IS NOT NULL AND {first_order}"
    ))
    .unwrap();
    let commission = num(format!("SELECT coalesce(round(sum(o.commission_amount * {fx}) / 100, 2), 0) {from} AND p.first AND o.paid_at IS NOT NULL AND o.creator_id IS NOT NULL")).unwrap();
    let div = |a: f64, b: f64| (b != 0.0).then(|| a / b);
    vec![
        ("ORDERS", Some(orders)),
        ("PAID_ORDERS", Some(paid)),
        ("GMV", Some(gmv)),
        ("UNITS", Some(units)),
        ("PAY_CONVERSION", div(paid, orders)),
        ("REFUND_ORDERS", Some(refund_orders)),
        ("REFUND_AMOUNT", Some(refund_amount)),
        ("REFUND_RATE", div(refund_orders, paid)),
        ("DISPUTE_ORDERS", Some(disputes)),
        ("DISPUTE_RATE", div(disputes, orders)),
        ("AVG_DELIVERY_HOURS", delivery),
        ("COMMISSION", Some(commission)),
        ("ON_TIME_RATE", on_time),
        ("BUYERS", Some(buyers)),
        ("REPEAT_BUYERS", Some(repeat)),
        ("REPEAT_RATE", div(repeat, buyers)),
        ("NEW_BUYERS", Some(new)),
    ]
}

pub(crate) fn assert_metrics(
    label: &str,
    values: &Value,
    expected: &[(&str, Option<f64>)],
    field: &str,
) {
    for (metric, want) in expected {
        let got = values
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["metric"] == *metric)
            .unwrap_or_else(|| panic!("{label}: no {metric}"));
        // Money to the cent and counts exactly; ratios within float noise.
        let money = ["GMV", "AOV", "REFUND_AMOUNT", "COMMISSION"].contains(metric);
        match (got[field].as_f64(), want) {
            (Some(g), Some(w)) => assert!(
                if money {
                    (g - w).abs() < 1e-6
                } else {
                    (g - w).abs() <= 1e-9 * w.abs().max(1.0)
                },
                "{label} {metric}: got {g}, want {w}"
            ),
            (None, None) => {}
            (g, w) => panic!("{label} {metric}: got {g:?}, want {w:?}"),
        }
    }
}

pub(crate) fn window(from: &str, to: &str, tz: &str) -> String {
    format!("o.placed_at >= ('{from}'::date::timestamp AT TIME ZONE '{tz}') AND o.placed_at < (('{to}'::date + 1)::timestamp AT TIME ZONE '{tz}')")
}

const TENANT1: &str = "o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1)";

const KPIS: &str = "query($from: Date!, $to: Date!, $f: AnalyticsFilter, $c: Compare, $tz: String!, $cur: String!) {
  kpis(range: {from: $from, to: $to}, filter: $f, compare: $c, timezone: $tz, currency: $cur) { values { metric value previous change } } }";

#[tokio::test]
async fn every_kpi_equals_the_sql_recomputation_in_any_zone_and_currency() {
    let app = TestApp::spawn(3_000).await;
    for (from, to, tz, cur) in [
        ("2026-10-01", "2026-10-31", "Asia/Shanghai", "CNY"),
        ("2026-10-25", "2026-11-08", "America/Los_Angeles", "USD"),
        ("2026-11-01", "2026-11-20", "Asia/Kolkata", "CNY"),
    ] {
        let data = app
            .data(
                &app.owner(),
                KPIS,
                json!({"from": from, "to": to, "tz": tz, "cur": cur, "c": "PREVIOUS_PERIOD"}),
            )
            .await;
        let values = &data["kpis"]["values"];
        assert_metrics(
            &format!("{from}..{to} {tz} {cur}"),
            values,
            &sql_metrics(
                &app,
                &format!("{TENANT1} AND {}", window(from, to, tz)),
                tz,
                cur,
            ),
            "value",
        );
        // PREVIOUS_PERIOD is the same number of days just before.
        let days = (chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d").unwrap()
            - chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").unwrap())
        .num_days()
            + 1;
        let pfrom = (chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").unwrap()
            - chrono::Duration::days(days))
        .to_string();
        let pto = (chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d").unwrap()
            - chrono::Duration::days(days))
        .to_string();
        assert_metrics(
            "previous",
            values,
            &sql_metrics(
                &app,
                &format!("{TENANT1} AND {}", window(&pfrom, &pto, tz)),
                tz,
                cur,
            ),
            "previous",
        );
        for v in values.as_array().unwrap() {
            if let (Some(val), Some(prev)) = (v["value"].as_f64(), v["previous"].as_f64()) {
                if prev != 0.0 {
                    assert!((v["change"].as_f64().unwrap() - (val - prev) / prev).abs() < 1e-9);
                }
            }
        }
    }
    // Filters combine, and each narrows within the scope.
    let filter = json!({"platforms": ["DOUYIN", "TMALL"], "channels": ["LIVE"], "regions": ["EAST", "SOUTH"], "paymentMethods": ["ALIPAY", "DOUYIN_PAY"]});
    let data = app.data(&app.owner(), KPIS, json!({"from": "2026-10-01", "to": "2026-11-20", "tz": "Asia/Shanghai", "cur": "CNY", "f": filter})).await;
    let cond = format!("{TENANT1} AND {} AND s.platform IN ('DOUYIN','TMALL') AND o.channel = 'LIVE' AND o.payment_method IN ('ALIPAY','DOUYIN_PAY') AND o.province_code IN (SELECT code FROM provinces WHERE region IN ('EAST','SOUTH'))", window("2026-10-01", "2026-11-20", "Asia/Shanghai"));
    assert_metrics(
        "filtered",
        &data["kpis"]["values"],
        &sql_metrics(&app, &cond, "Asia/Shanghai", "CNY"),
        "value",
    );
}

#[tokio::test]
async fn trends_are_zero_filled_and_follow_the_local_clock_across_dst() {
    let app = TestApp::spawn(3_000).await;
    let query = "query($g: Granularity!, $from: Date!, $to: Date!, $c: Compare) { trend(range: {from: $from, to: $to}, granularity: $g, metrics: [ORDERS, GMV],
        timezone: \"America/Los_Angeles\", currency: \"USD\", filter: {platforms: [TIKTOK]}, compare: $c) { points { start label values { metric value previous } } } }";
    let days = app
        .data(
            &app.owner(),
            query,
            json!({"g": "DAY", "from": "2026-10-30", "to": "2026-11-03", "c": "PREVIOUS_PERIOD"}),
        )
        .await;
    let points = days["trend"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 5);
    for p in points {
        let day = p["label"].as_str().unwrap();
        let cond = format!(
            "{TENANT1} AND s.platform = 'TIKTOK' AND {}",
            window(day, day, "America/Los_Angeles")
        );
        let expected: Vec<_> = sql_metrics(&app, &cond, "America/Los_Angeles", "USD")
            .into_iter()
            .filter(|m| m.0 == "ORDERS" || m.0 == "GMV")
            .collect();
        assert_metrics(day, &p["values"], &expected, "value");
        // The aligned bucket of the previous period: the day five days earlier.
        let earlier = (chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap()
            - chrono::Duration::days(5))
        .to_string();
        let cond = format!(
            "{TENANT1} AND s.platform = 'TIKTOK' AND {}",
            window(&earlier, &earlier, "America/Los_Angeles")
        );
        let expected: Vec<_> = sql_metrics(&app, &cond, "America/Los_Angeles", "USD")
            .into_iter()
            .filter(|m| m.0 == "ORDERS" || m.0 == "GMV")
            .collect();
        assert_metrics(&earlier, &p["values"], &expected, "previous");
    }
    // 1 November 2026 has 25 local hours in Los Angeles; hours add up to the day.
    let hours = app
        .data(
            &app.owner(),
            query,
            json!({"g": "HOUR", "from": "2026-11-01", "to": "2026-11-01"}),
        )
        .await;
    let hour_points = hours["trend"]["points"].as_array().unwrap();
    assert_eq!(hour_points.len(), 25);
    let sum: f64 = hour_points
        .iter()
        .map(|p| p["values"][0]["value"].as_f64().unwrap())
        .sum();
    let day = points.iter().find(|p| p["label"] == "2026-11-01").unwrap();
    assert_eq!(sum, day["values"][0]["value"].as_f64().unwrap());
    // Weeks start on Monday; the comparison is aligned bucket by bucket.
    let weeks = app
        .data(
            &app.owner(),
            query,
            json!({"g": "WEEK", "from": "2026-10-07", "to": "2026-11-20"}),
        )
        .await;
    let wk = weeks["trend"]["points"].as_array().unwrap();
    assert_eq!(wk.len(), 7); // Wed 7 Oct (partial), then Mondays 12 Oct … 16 Nov (partial to Fri 20 Nov)
    assert_eq!(wk[1]["start"], "2026-10-12T07:00:00+00:00");
    let total: f64 = wk
        .iter()
        .map(|p| p["values"][0]["value"].as_f64().unwrap())
        .sum();
    let cond = format!(
        "{TENANT1} AND s.platform = 'TIKTOK' AND {}",
        window("2026-10-07", "2026-11-20", "America/Los_Angeles")
    );
    assert_eq!(
        Some(total),
        sql_metrics(&app, &cond, "America/Los_Angeles", "USD")[0].1
    );
}

const BREAKDOWN: &str = "query($d: Dimension!, $limit: Int) { breakdown(range: {from: \"2026-10-01\", to: \"2026-11-20\"}, dimension: $d,
  metrics: [GMV, ORDERS, PAID_ORDERS, UNITS, REFUND_AMOUNT, BUYERS, PAY_CONVERSION], sortBy: GMV, limit: $limit) {
  rows { key label share values { metric value } } other { key values { metric value } } total { metric value } } }";

#[tokio::test]
async fn breakdown_rows_and_other_add_up_to_the_total_and_match_sql() {
    let app = TestApp::spawn(3_000).await;
    let w = window("2026-10-01", "2026-11-20", "Asia/Shanghai");
    for (dimension, limit, key_sql) in [
        ("PROVINCE", 5, "coalesce(o.province_code, '')"),
        ("CHANNEL", 10, "o.channel"),
        ("SHOP", 3, "o.shop_id::text"),
        ("CREATOR", 10, "coalesce(o.creator_id::text, '')"),
        ("STATUS", 10, "o.status"),
        (
            "REGION",
            3,
            "coalesce((SELECT region FROM provinces p WHERE p.code = o.province_code), '')",
        ),
        ("PAYMENT_METHOD", 2, "coalesce(o.payment_method, '')"),
    ] {
        let data = app
            .data(
                &app.owner(),
                BREAKDOWN,
                json!({"d": dimension, "limit": limit}),
            )
            .await;
        let report = &data["breakdown"];
        let rows = report["rows"].as_array().unwrap();
        assert!(rows.len() <= limit);
        let asked = [
            "GMV",
            "ORDERS",
            "PAID_ORDERS",
            "UNITS",
            "REFUND_AMOUNT",
            "BUYERS",
            "PAY_CONVERSION",
        ];
        let only = |all: Vec<(&'static str, Option<f64>)>| {
            all.into_iter()
                .filter(|m| asked.contains(&m.0))
                .collect::<Vec<_>>()
        };
        let total_expected = only(sql_metrics(
            &app,
            &format!("{TENANT1} AND {w}"),
            "Asia/Shanghai",
            "CNY",
        ));
        assert_metrics(dimension, &report["total"], &total_expected, "value");
        for row in rows {
            let key = row["key"].as_str().unwrap().replace('\'', "''");
            let cond = format!("{TENANT1} AND {w} AND {key_sql} = '{key}'");
            assert_metrics(
                &format!("{dimension} {key}"),
                &row["values"],
                &only(sql_metrics(&app, &cond, "Asia/Shanghai", "CNY")),
                "value",
            );
            assert!(!row["label"].as_str().unwrap().is_empty());
        }
        // Sorted by GMV, descending.
        let gmv: Vec<f64> = rows
            .iter()
            .map(|r| r["values"][0]["value"].as_f64().unwrap())
            .collect();
        assert!(gmv.windows(2).all(|w| w[0] >= w[1]), "{dimension}: {gmv:?}");
        // rows + other = total for every additive metric: counts exactly, converted money
        // within the cent rounding of each row (docs/ANALYTICS.md).
        let groups = rows.len() + usize::from(!report["other"].is_null());
        for (i, metric) in ["GMV", "ORDERS", "PAID_ORDERS", "UNITS", "REFUND_AMOUNT"]
            .iter()
            .enumerate()
        {
            let mut sum: f64 = rows
                .iter()
                .map(|r| r["values"][i]["value"].as_f64().unwrap())
                .sum();
            if !report["other"].is_null() {
                sum += report["other"]["values"][i]["value"].as_f64().unwrap();
            }
            let total = report["total"][i]["value"].as_f64().unwrap();
            let tolerance = if ["GMV", "REFUND_AMOUNT"].contains(metric) {
                0.005 * (groups as f64 + 1.0)
            } else {
                1e-9
            };
            assert!(
                (sum - total).abs() <= tolerance,
                "{dimension} {metric}: {sum} vs {total}"
            );
        }
        if !report["other"].is_null() {
            let shown: Vec<String> = rows
                .iter()
                .map(|r| format!("'{}'", r["key"].as_str().unwrap()))
                .collect();
            let cond = format!(
                "{TENANT1} AND {w} AND {key_sql} NOT IN ({})",
                shown.join(",")
            );
            assert_metrics(
                &format!("{dimension} other"),
                &report["other"]["values"],
                &only(sql_metrics(&app, &cond, "Asia/Shanghai", "CNY")),
                "value",
            );
        }
    }
    // Product rows attribute item lines: their GMV is the items' paid amount.
    let data = app
        .data(
            &app.owner(),
            BREAKDOWN,
            json!({"d": "PRODUCT", "limit": 60}),
        )
        .await;
    let top = data["breakdown"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            let id = r["key"].as_str().unwrap();
            app.sql_i64(&format!("SELECT count(*) FROM products p JOIN shops s ON s.id = p.shop_id WHERE p.id = {id} AND s.currency = 'CNY'")) == 1
        })
        .expect("a CNY product among the top rows")
        .clone();
    let expected = app.sql_i64(&format!(
        "SELECT sum(i.paid_amount) FROM order_items i JOIN orders o ON o.id = i.order_id WHERE {TENANT1} AND {w} AND o.paid_at IS NOT NULL AND i.product_id = {}",
        top["key"].as_str().unwrap()
    ));
    assert_eq!(
        top["values"][0]["value"].as_f64().unwrap(),
        expected as f64 / 100.0
    );
    assert!(top["label"].as_str().unwrap().contains("爆款"));
}

#[tokio::test]
async fn analytics_respect_scope_and_permissions() {
    let app = TestApp::spawn(1_500).await;
    app.conn().batch_execute("INSERT INTO accounts (id, tenant_id, name, permissions, shop_ids) VALUES (100, 1, 'analyst shop 2', '{ANALYTICS_READ}', '{2}')").unwrap();
    let analyst = app.token(100, 1);
    let data = app
        .gql(
            &analyst,
            KPIS,
            json!({"from": "2026-10-01", "to": "2026-11-20", "tz": "Asia/Shanghai", "cur": "CNY"}),
        )
        .await;
    let expected = sql_metrics(
        &app,
        &format!(
            "o.shop_id = 2 AND {}",
            window("2026-10-01", "2026-11-20", "Asia/Shanghai")
        ),
        "Asia/Shanghai",
        "CNY",
    );
    let without_commission: Vec<_> = expected
        .into_iter()
        .filter(|m| m.0 != "COMMISSION")
        .collect();
    assert_metrics(
        "scoped",
        &data["data"]["kpis"]["values"],
        &without_commission,
        "value",
    );
    // No FINANCE_READ: COMMISSION is null with a FORBIDDEN error at the field's path.
    let commission = data["data"]["kpis"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["metric"] == "COMMISSION")
        .unwrap()
        .clone();
    assert!(commission["value"].is_null());
    assert_eq!(error_code(&data), "FORBIDDEN");
    assert_eq!(data["errors"][0]["path"], json!(["kpis"]));
    // Asking for another tenant's shop narrows to nothing.
    let other = app.gql(&analyst, KPIS, json!({"from": "2026-10-01", "to": "2026-11-20", "tz": "Asia/Shanghai", "cur": "CNY", "f": {"shopIds": ["5"]}})).await;
    assert_eq!(other["data"]["kpis"]["values"][0]["value"], 0.0);
    // The 处理售后 account has no ANALYTICS_READ.
    let body = app
        .gql(
            &app.token(3, 1),
            KPIS,
            json!({"from": "2026-10-01", "to": "2026-10-02", "tz": "Asia/Shanghai", "cur": "CNY"}),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
}

#[tokio::test]
async fn bad_analytics_input_is_a_clear_error() {
    let app = TestApp::spawn(300).await;
    let token = app.owner();
    let kpis = |from: &str, to: &str, tz: &str, cur: &str| json!({"from": from, "to": to, "tz": tz, "cur": cur});
    for (vars, code, needle) in [
        (
            kpis("2026-11-02", "2026-11-01", "Asia/Shanghai", "CNY"),
            "BAD_USER_INPUT",
            "before range.from",
        ),
        (
            kpis("2025-01-01", "2026-11-01", "Asia/Shanghai", "CNY"),
            "BAD_USER_INPUT",
            "at most 400",
        ),
        (
            kpis("2026-11-01", "2026-11-02", "Mars/Base", "CNY"),
            "BAD_USER_INPUT",
            "not an IANA time zone",
        ),
        (
            kpis("2026-11-01", "2026-11-02", "Asia/Shanghai", "usd1"),
            "BAD_USER_INPUT",
            "not an ISO-4217",
        ),
        (
            kpis("2026-11-01", "2026-11-02", "Asia/Shanghai", "EUR"),
            "BAD_USER_INPUT",
            "unknown currency EUR",
        ),
        (
            kpis("2026-11-25", "2026-12-10", "Asia/Shanghai", "USD"),
            "UNAVAILABLE",
            "no exchange rate for USD on 2026-12-05",
        ),
        (
            kpis("2026-13-01", "2026-11-30", "Asia/Shanghai", "CNY"),
            "BAD_USER_INPUT",
            "not a date",
        ),
    ] {
        let body = app.gql(&token, KPIS, vars.clone()).await;
        assert_eq!(error_code(&body), code, "{vars}: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{vars}: {body}"
        );
    }
    let hour = "{ trend(range: {from: \"2026-09-01\", to: \"2026-10-15\"}, granularity: HOUR, metrics: [ORDERS]) { points { label } } }";
    let body = app.gql(&token, hour, json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("for HOUR"),
        "{body}"
    );
    let body = app
        .gql(&token, BREAKDOWN, json!({"d": "PROVINCE", "limit": 101}))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    // A ratio over nothing is null, not 0.
    let empty = app
        .data(
            &token,
            KPIS,
            json!({"from": "2026-01-01", "to": "2026-01-02", "tz": "Asia/Shanghai", "cur": "CNY"}),
        )
        .await;
    let conv = empty["kpis"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["metric"] == "PAY_CONVERSION")
        .unwrap()
        .clone();
    assert!(conv["value"].is_null());
}

#[tokio::test]
async fn daily_report_compares_the_day_with_yesterday_and_last_week() {
    let app = TestApp::spawn(3_000).await;
    let owner = app.owner();
    let asked_at = chrono::Utc::now().to_rfc3339();
    let report = app
        .data(
            &owner,
            "{ dailyReport(date: \"2026-11-20\") { date timezone
                 metrics { metric today yesterday sameDayLastWeek dayOverDay weekOverWeek }
                 topProducts { key label share values { metric value } }
                 abnormal { kind count } } }",
            json!({}),
        )
        .await["dailyReport"]
        .clone();
    assert_eq!(report["date"], "2026-11-20");
    let tz = "Asia/Shanghai";
    let day = |d: &str| {
        sql_metrics(
            &app,
            &format!("{TENANT1} AND {}", window(d, d, tz)),
            tz,
            "CNY",
        )
    };
    let (today, yesterday, last_week) = (day("2026-11-20"), day("2026-11-19"), day("2026-11-13"));
    let metrics = report["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 6);
    for m in metrics {
        let name = m["metric"].as_str().unwrap();
        for (field, want) in [
            ("today", &today),
            ("yesterday", &yesterday),
            ("sameDayLastWeek", &last_week),
        ] {
            let want = want.iter().find(|(n, _)| *n == name).unwrap().1;
            let got = m[field].as_f64();
            match (got, want) {
                (Some(g), Some(w)) => assert!(
                    (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                    "{name} {field}: {g} vs {w}"
                ),
                (g, w) => assert_eq!(g, w, "{name} {field}"),
            }
        }
        if let (Some(t), Some(y)) = (m["today"].as_f64(), m["yesterday"].as_f64()) {
            if y != 0.0 {
                assert!((m["dayOverDay"].as_f64().unwrap() - (t - y) / y).abs() < 1e-9);
            }
        }
    }
    // Top products: the day's five largest product GMVs in SQL (an order's lines of a
    // product, paid orders, converted to CNY), and each shown product's GMV and units.
    let top = report["topProducts"].as_array().unwrap();
    let paid_day = format!(
        "{TENANT1} AND {} AND o.paid_at IS NOT NULL",
        window("2026-11-20", "2026-11-20", tz)
    );
    let fx = fx_factor(tz, "CNY");
    let nth_gmv = |n: usize| {
        sql_number(
            &app,
            &format!(
                "SELECT round(sum(i.paid_amount * {fx}) / 100, 2) FROM order_items i \
                 JOIN orders o ON o.id = i.order_id JOIN shops s ON s.id = o.shop_id \
                 WHERE {paid_day} GROUP BY i.product_id ORDER BY 1 DESC OFFSET {n} LIMIT 1"
            ),
        )
    };
    let listed = (0..5).filter(|n| nth_gmv(*n).is_some()).count();
    assert!(listed > 0, "the seed sells products on the report's day");
    assert_eq!(top.len(), listed);
    for (n, t) in top.iter().enumerate() {
        let got = t["values"][0]["value"].as_f64().unwrap();
        let want = nth_gmv(n).unwrap();
        assert!(
            (got - want).abs() < 0.005,
            "top product {n}: GMV {got} vs SQL {want}"
        );
        let product = t["key"].as_str().unwrap();
        let metrics = sql_product_metrics(
            &app,
            &format!("{TENANT1} AND {}", window("2026-11-20", "2026-11-20", tz)),
            &format!("p.product_id = {product}"),
            tz,
            "CNY",
        );
        let units = metrics.iter().find(|(m, _)| *m == "UNITS").unwrap().1;
        assert_eq!(
            t["values"][1]["value"].as_f64(),
            units,
            "product {product} units"
        );
    }
    // Abnormal counts: all five lists, each equal to its SQL definition (time only adds
    // orders to a list, so the answer lies between the counts before and after).
    let abnormal = report["abnormal"].as_array().unwrap();
    assert_eq!(abnormal.len(), crate::helpers::ABNORMAL_SQL.len());
    for (kind, cond) in crate::helpers::ABNORMAL_SQL {
        let entry = abnormal
            .iter()
            .find(|e| e["kind"] == *kind)
            .unwrap_or_else(|| panic!("{kind} missing from the daily report"));
        let sql = format!("SELECT count(*) FROM orders o WHERE {TENANT1} AND {cond}");
        let count = entry["count"].as_i64().unwrap();
        let low = app.sql_i64(&sql.replace("now()", &format!("'{asked_at}'::timestamptz")));
        let high = app.sql_i64(&sql);
        assert!(
            low <= count && count <= high,
            "{kind}: {low} <= {count} <= {high}"
        );
    }
    let body = app
        .gql(
            &owner,
            "{ dailyReport(timezone: \"Nowhere/Else\") { date } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let body = app
        .gql(&app.token(6, 1), "{ dailyReport { date } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
}

#[tokio::test]
async fn breakdowns_sort_by_a_metric_they_do_not_show() {
    let app = TestApp::spawn(1_500).await;
    let w = window("2026-10-01", "2026-11-20", "Asia/Shanghai");
    let query = "query($s: Metric!) { breakdown(range: {from: \"2026-10-01\", to: \"2026-11-20\"}, dimension: PROVINCE,
      metrics: [ORDERS], sortBy: $s, limit: 5) { rows { key values { metric } } } }";
    for (metric, order_sql) in [
        (
            "AVG_DELIVERY_HOURS",
            "avg(extract(epoch FROM o.delivered_at - o.shipped_at)) FILTER (WHERE o.delivered_at IS NOT NULL AND o.shipped_at IS NOT NULL) DESC NULLS LAST",
        ),
        (
            "BUYERS",
            "count(DISTINCT o.buyer_id) FILTER (WHERE o.paid_at IS NOT NULL) DESC",
        ),
    ] {
        let data = app.data(&app.owner(), query, json!({ "s": metric })).await;
        let rows = data["breakdown"]["rows"].as_array().unwrap();
        assert!(rows.iter().all(|r| r["values"].as_array().unwrap().len() == 1));
        let got: Vec<String> = rows
            .iter()
            .map(|r| r["key"].as_str().unwrap().to_string())
            .collect();
        // The expected order, by the metric and then by key (as the API breaks ties).
        let want: Vec<String> = app
            .sql_ids(&format!(
                "SELECT coalesce(o.province_code, '0')::bigint AS id FROM orders o WHERE {TENANT1} AND {w}
                  GROUP BY o.province_code ORDER BY {order_sql}, coalesce(o.province_code, '') LIMIT 5"
            ))
            .into_iter()
            .map(|c| if c == 0 { String::new() } else { c.to_string() })
            .collect();
        assert_eq!(got, want, "sorted by {metric}");
    }
}

/// The default sort (GMV) picks the same top rows as SQL, with the same values, on two
/// nodes.
#[tokio::test]
async fn default_gmv_top_rows_equal_sql_on_two_nodes() {
    let bounds = TestApp::spawn(1_500).await;
    let summing = bounds.second_node();
    let token = bounds.owner();
    let tz = "Asia/Shanghai";
    let paid = format!(
        "{TENANT1} AND {} AND o.paid_at IS NOT NULL",
        window("2026-10-15", "2026-11-20", tz)
    );
    let fx = fx_factor(tz, "CNY");
    let orders = "FROM orders o JOIN shops s ON s.id = o.shop_id";
    let lines =
        "FROM order_items i JOIN orders o ON o.id = i.order_id JOIN shops s ON s.id = o.shop_id";
    for (dimension, key, amount, from) in [
        (
            "CREATOR",
            "coalesce(o.creator_id::text, '')",
            "o.paid_amount",
            orders,
        ),
        ("PRODUCT", "i.product_id::text", "i.paid_amount", lines),
        (
            "PROVINCE",
            "coalesce(o.province_code, '')",
            "o.paid_amount",
            orders,
        ),
        ("CHANNEL", "o.channel", "o.paid_amount", orders),
    ] {
        let query = format!(
            "{{ breakdown(range: {{from: \"2026-10-15\", to: \"2026-11-20\"}}, dimension: {dimension}, metrics: [GMV, ORDERS], limit: 5) {{ rows {{ key values {{ value }} }} }} }}"
        );
        let gmv_of = |k: &str| {
            sql_number(
                &bounds,
                &format!(
                    "SELECT coalesce(round(sum({amount} * {fx}) / 100, 2), 0) {from} WHERE {paid} AND {key} = '{k}'"
                ),
            )
            .unwrap()
        };
        let nth = |n: usize| {
            sql_number(
                &bounds,
                &format!(
                    "SELECT round(sum({amount} * {fx}) / 100, 2) {from} WHERE {paid} \
                     GROUP BY {key} ORDER BY 1 DESC OFFSET {n} LIMIT 1"
                ),
            )
        };
        let keys = sql_number(
            &bounds,
            &format!(
                "SELECT count(DISTINCT {key}) {from} WHERE {TENANT1} AND {}",
                window("2026-10-15", "2026-11-20", tz)
            ),
        )
        .unwrap() as usize;
        for app in [&bounds, &summing] {
            let data = app.data_computed(&token, &query, json!({})).await;
            let rows = data["breakdown"]["rows"].as_array().unwrap().clone();
            assert_eq!(rows.len(), keys.min(5), "{dimension}: rows shown");
            for (n, row) in rows.iter().enumerate() {
                let got = row["values"][0]["value"].as_f64().unwrap();
                let key = row["key"].as_str().unwrap();
                // Keys without a paid order rank after every paid one, at zero.
                let want_rank = nth(n).unwrap_or(0.0);
                assert!(
                    (got - want_rank).abs() < 0.005,
                    "{dimension} row {n} ({key}): GMV {got}, SQL's {n}th largest {want_rank}"
                );
                let want_key = gmv_of(key);
                assert!(
                    (got - want_key).abs() < 0.005,
                    "{dimension} {key}: GMV {got} vs SQL {want_key}"
                );
            }
        }
    }
}
