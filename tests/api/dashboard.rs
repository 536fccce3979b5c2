//! The reference dashboard at `/`, driven in Debian's headless Chromium
//! (tests/clients/dashboard.mjs): every number it draws equals the API's answer, a write
//! moves the KPI cards within a second without a reload, and a view-only sub-account
//! sees masked buyer fields and no commission. Screenshots go to the test target dir.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::{client_scripts, TestApp};

const FROM: &str = "2026-10-22";

fn today() -> String {
    (chrono::Utc::now() + chrono::TimeDelta::hours(8))
        .date_naive()
        .to_string()
}

struct Page {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stdin: tokio::process::ChildStdin,
}

impl Page {
    async fn open(app: &TestApp, token: &str, shot: &str) -> (Page, Value) {
        let dir = client_scripts();
        let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(shot);
        let mut child = tokio::process::Command::new("node")
            .arg("dashboard.mjs")
            .arg(&app.address)
            .arg(token)
            .arg(FROM)
            .arg(today())
            .arg(&shot)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut page = Page {
            child,
            lines,
            stdin,
        };
        let drawn = page.next(Duration::from_secs(60)).await;
        assert_eq!(page.next(Duration::from_secs(5)).await["ready"], true);
        (page, drawn["drawn"].clone())
    }

    async fn next(&mut self, within: Duration) -> Value {
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the page said nothing within {within:?}"))
            .unwrap()
            .expect("the page driver ended");
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn api_value(values: &Value, metric: &str) -> Option<f64> {
    values
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["metric"] == metric)
        .and_then(|v| v["value"].as_f64())
}

/// Every breakdown table on the page equals the `breakdown` answer: rows, other, total.
async fn check_breakdowns(app: &TestApp, token: &str, drawn: &Value, finance: bool) {
    for dimension in ["PROVINCE", "CHANNEL", "CREATOR", "PRODUCT"] {
        let mut metrics = vec!["GMV", "ORDERS"];
        if dimension == "CREATOR" && finance {
            metrics.push("COMMISSION");
        }
        let answer = app
            .data(
                token,
                "query($from: Date!, $to: Date!, $d: Dimension!, $m: [Metric!]!) { breakdown(range: {from: $from, to: $to}, dimension: $d, metrics: $m, sortBy: GMV, limit: 10) { rows { key values { metric value } } other { values { metric value } } total { metric value } } }",
                json!({ "from": FROM, "to": today(), "d": dimension, "m": metrics }),
            )
            .await;
        let b = &answer["breakdown"];
        let mut want: Vec<(String, &Value)> = b["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| ("data".to_string(), &r["values"]))
            .collect();
        if !b["other"].is_null() {
            want.push(("other".into(), &b["other"]["values"]));
        }
        want.push(("total".into(), &b["total"]));
        let rows = drawn[dimension].as_array().unwrap();
        assert_eq!(rows.len(), want.len(), "{dimension}: {rows:?}");
        for (i, (row, (kind, values))) in rows.iter().zip(&want).enumerate() {
            assert_eq!(row["row"], kind.as_str(), "{dimension} row {i}");
            if kind == "data" {
                assert_eq!(row["key"], b["rows"][i]["key"].as_str().unwrap_or(""));
            }
            for metric in &metrics {
                assert_eq!(
                    row["values"][metric].as_f64(),
                    api_value(values, metric),
                    "{dimension} row {i} {metric}"
                );
            }
            assert_eq!(
                row["values"].get("COMMISSION").is_some(),
                dimension == "CREATOR" && finance,
                "{dimension}: commission shown only with FINANCE_READ"
            );
        }
    }
}

#[tokio::test]
async fn the_dashboard_draws_the_apis_numbers_and_moves_with_writes() {
    let app = TestApp::spawn(3_000).await;
    let owner = app.owner();
    let (mut page, drawn) = Page::open(&app, &owner, "dashboard-owner.png").await;
    // KPI cards equal `kpis` over the same range.
    let kpis = app
        .data(
            &owner,
            "query($from: Date!, $to: Date!) { kpis(range: {from: $from, to: $to}, metrics: [GMV, ORDERS, AOV, PAY_CONVERSION, REFUND_RATE, DISPUTE_RATE, AVG_DELIVERY_HOURS], compare: PREVIOUS_PERIOD) { values { metric value change } } }",
            json!({ "from": FROM, "to": today() }),
        )
        .await;
    let values = &kpis["kpis"]["values"];
    for metric in [
        "GMV",
        "ORDERS",
        "AOV",
        "PAY_CONVERSION",
        "REFUND_RATE",
        "DISPUTE_RATE",
        "AVG_DELIVERY_HOURS",
    ] {
        assert_eq!(
            drawn["kpis"][metric].as_f64(),
            api_value(values, metric),
            "KPI card {metric}"
        );
    }
    assert!(drawn["kpis"]["ORDERS"].as_f64().unwrap() > 0.0);
    check_breakdowns(&app, &owner, &drawn, true).await;
    // Abnormal counts equal the daily report's.
    let daily = app
        .data(
            &owner,
            "{ dailyReport { abnormal { kind count } } }",
            json!({}),
        )
        .await;
    for a in daily["dailyReport"]["abnormal"].as_array().unwrap() {
        assert_eq!(
            drawn["abnormal"][a["kind"].as_str().unwrap()],
            a["count"],
            "{a}"
        );
    }
    // The orders table is the first page of `orders` in the range, unmasked for the owner.
    let orders = app
        .data(
            &owner,
            "query($f: OrderFilter) { orders(filter: $f, first: 20) { edges { node { id orderNo paidAmount receiverPhone } } } }",
            json!({ "f": { "placedFrom": format!("{FROM}T00:00:00+08:00"), "placedTo": format!("{}T00:00:00+08:00", (chrono::Utc::now() + chrono::TimeDelta::hours(32)).date_naive()) } }),
        )
        .await;
    let edges = orders["orders"]["edges"].as_array().unwrap();
    let rows = drawn["orders"].as_array().unwrap();
    assert_eq!(rows.len(), edges.len());
    for (row, edge) in rows.iter().zip(edges) {
        assert_eq!(row["id"], edge["node"]["id"]);
        assert_eq!(row["paidAmount"], edge["node"]["paidAmount"]);
        assert_eq!(row["receiverPhone"], edge["node"]["receiverPhone"]);
    }
    assert!(drawn["orderColumns"].to_string().contains("佣金"));
    // Every panel shows its query.
    assert!(
        drawn["queries"].as_u64().unwrap() >= 8,
        "{}",
        drawn["queries"]
    );

    // A write moves the ORDERS card within a second, without a reload.
    page.stdin.write_all(b"wait-orders\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = drawn["kpis"]["ORDERS"].as_f64().unwrap();
    let placed = (chrono::Utc::now() - chrono::TimeDelta::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let started = Instant::now();
    let report = app
        .data(
            &owner,
            "mutation($o: [OrderInput!]!) { ingestOrders(orders: $o) { created rejected } }",
            json!({ "o": [{
                "shopId": "1", "orderNo": "DASH-1", "rawStatus": "AWAITING_SHIPMENT", "placedAt": placed,
                "paidAt": placed, "paymentMethod": "ALIPAY", "goodsAmount": 8800, "paidAmount": 8800,
                "provinceCode": "44", "city": "广州市", "channel": "LIVE", "buyerId": "dash-buyer",
                "sourceUpdatedAt": placed,
                "items": [{"productExternalId": "dash-p", "productTitle": "测试", "category": "测试", "sku": "A", "quantity": 1, "unitPrice": 8800, "paidAmount": 8800}]
            }] }),
        )
        .await;
    assert_eq!(report["ingestOrders"]["rejected"], 0, "{report}");
    let moved = page.next(Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert!(
        moved["moved"].is_number(),
        "the ORDERS card did not move: {moved}"
    );
    assert_eq!(moved["orders"].as_f64(), Some(before + 1.0));
    assert!(took < Duration::from_secs(1), "moved after {took:?}");
}

#[tokio::test]
async fn a_view_only_sub_account_sees_masked_fields_and_no_commission() {
    let app = TestApp::spawn(2_000).await;
    // Account 2 is 仅查看 (VIEWER: ANALYTICS_READ + ORDERS_READ).
    let viewer = app.token(2, 1);
    let (_page, drawn) = Page::open(&app, &viewer, "dashboard-viewer.png").await;
    check_breakdowns(&app, &viewer, &drawn, false).await;
    assert!(
        !drawn["creatorColumns"].to_string().contains("佣金"),
        "{}",
        drawn["creatorColumns"]
    );
    assert!(!drawn["orderColumns"].to_string().contains("佣金"));
    let rows = drawn["orders"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let phone = row["receiverPhone"].as_str().unwrap();
        assert!(
            phone.is_empty() || phone.contains("****"),
            "unmasked: {phone}"
        );
        assert!(row["commission"].is_null());
    }
}
