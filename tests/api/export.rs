//! CSV exports: columns, RFC 4180 quoting of Chinese text, masking, scope, the
//! 90-day bound, formula neutralisation, and report downloads equal to GraphQL.

use serde_json::{json, Value};

use crate::helpers::TestApp;

const INGEST: &str = "mutation($o: [OrderInput!]!) { ingestOrders(orders: $o) { rejected } }";

fn order(shop: &str, no: &str, placed: &str, nickname: &str, note: &str) -> Value {
    json!({
        "shopId": shop, "orderNo": no, "rawStatus": "AWAITING_SHIPMENT", "placedAt": placed, "paidAt": placed,
        "paymentMethod": "ALIPAY", "currency": if shop == "2" { "USD" } else { "CNY" },
        "goodsAmount": 12345, "paidAmount": 12345, "provinceCode": "44", "city": "广州市",
        "channel": "LIVE", "buyerId": format!("b-{no}"), "buyerNickname": nickname,
        "receiverName": "张三丰", "receiverPhone": "13812345678",
        "receiverAddress": "广东省广州市天河区体育西路1号", "buyerNote": note,
        "commissionRateBps": 1000, "creator": {"externalId": "c-1", "handle": "带货达人"},
        "sourceUpdatedAt": placed,
        "items": [{"productExternalId": "p1", "productTitle": "连衣裙", "category": "服装", "sku": "A", "quantity": 1, "unitPrice": 12345, "paidAmount": 12345}],
    })
}

/// Parses RFC 4180 text (quoted cells, doubled quotes, CRLF) into rows of cells.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    // Files start with a UTF-8 BOM unless `bom=false`.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut cell)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "rows end with CRLF");
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            _ => cell.push(c),
        }
    }
    assert!(
        cell.is_empty() && row.is_empty(),
        "the file ends with a full row"
    );
    rows
}

async fn get(app: &TestApp, token: Option<&str>, path: &str) -> (u16, String) {
    let mut req = app.client.get(format!("{}{path}", app.address));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

fn code_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
        .to_string()
}

async fn fixture() -> TestApp {
    let app = TestApp::spawn(0).await;
    let orders = vec![
        order(
            "1",
            "E1",
            "2026-11-01T02:00:00Z",
            "小鱼, \"阿花\"",
            "请周末送货\n谢谢",
        ),
        order(
            "1",
            "E2",
            "2026-11-02T02:00:00Z",
            "=HYPERLINK(\"http://x\")",
            "+86 电话",
        ),
        order("2", "E3", "2026-11-03T02:00:00Z", "@bob", "-"),
        order("1", "E-OLD", "2026-06-01T02:00:00Z", "old", ""),
    ];
    let report = app.data(&app.owner(), INGEST, json!({ "o": orders })).await;
    assert_eq!(report["ingestOrders"]["rejected"], 0);
    app.conn_exec(
        "INSERT INTO accounts (id, tenant_id, name, is_owner, permissions, shop_ids) VALUES
        (6, 1, 'analyst', false, '{ANALYTICS_READ,FINANCE_READ,EXPORT,ORDERS_READ}', '{}'),
        (7, 1, 'shop1 exporter', false, '{EXPORT,ORDERS_READ}', '{1}')",
    );
    app
}

const RANGE: &str = "placedFrom=2026-10-25&placedTo=2026-11-20";

#[tokio::test]
async fn orders_export_quotes_masks_and_neutralises() {
    let app = fixture().await;
    let analyst = app.token(6, 1);
    let path = format!(
        "/export/orders.csv?{RANGE}&fields=orderNo,shopName,paidAmount,currency,buyerNickname,buyerNote,receiverName,receiverPhone,receiverAddress,placedAt,commissionAmount&bom=true"
    );
    let resp = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = resp.text().await.unwrap();
    let text = text
        .strip_prefix('\u{feff}')
        .expect("a UTF-8 BOM was asked for");
    let rows = parse_csv(text);
    assert_eq!(
        rows[0],
        [
            "orderNo",
            "shopName",
            "paidAmountMajor",
            "currency",
            "buyerNickname",
            "buyerNote",
            "receiverName",
            "receiverPhone",
            "receiverAddress",
            "placedAt",
            "commissionAmountMajor"
        ]
    );
    // Oldest first; the June order is outside the range.
    let numbers: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(numbers, ["E1", "E2", "E3"]);
    let e1 = &rows[1];
    assert_eq!(e1[1], "抖音店");
    assert_eq!(e1[2], "123.45");
    assert_eq!(e1[3], "CNY");
    assert_eq!(e1[4], "小鱼, \"阿花\"", "commas and quotes survive quoting");
    assert_eq!(e1[5], "请周末送货\n谢谢", "newlines survive quoting");
    // No PII_READ: masked exactly like the GraphQL fields.
    assert_eq!(e1[6], "张**");
    assert_eq!(e1[7], "138****5678");
    assert_eq!(e1[8], "广东省广州市");
    assert_eq!(e1[9], "2026-11-01T10:00:00+08:00");
    let commission = app.sql_i64("SELECT commission_amount FROM orders WHERE order_no = 'E1'");
    assert_eq!(
        e1[10],
        format!("{}.{:02}", commission / 100, commission % 100)
    );
    assert!(commission > 1200);
    // Formula-like text is neutralised.
    assert_eq!(rows[2][4], "'=HYPERLINK(\"http://x\")");
    assert_eq!(rows[2][5], "'+86 电话");
    assert_eq!(rows[3][4], "'@bob");
    assert_eq!(rows[3][5], "'-");
    assert_eq!(rows[3][3], "USD");
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM audit_log WHERE action = 'orders.export' AND account_id = 6 AND details->>'unmaskedPii' = 'false'"),
        1
    );
}

#[tokio::test]
async fn orders_export_keeps_scope_permissions_and_bounds() {
    let app = fixture().await;
    // The owner reads PII unmasked, and that is audit-logged.
    let (status, text) = get(
        &app,
        Some(&app.owner()),
        &format!(
            "/export/orders.csv?{RANGE}&fields=orderNo,receiverName,receiverAddress&timezone=UTC"
        ),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let rows = parse_csv(&text);
    assert_eq!(rows[1], ["E1", "张三丰", "广东省广州市天河区体育西路1号"]);
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM audit_log WHERE action = 'orders.export' AND details->>'unmaskedPii' = 'true'"),
        1
    );
    // Scope: the shop-1 exporter gets only shop 1, and may not name shop 2.
    let exporter = app.token(7, 1);
    let (_, text) = get(
        &app,
        Some(&exporter),
        &format!("/export/orders.csv?{RANGE}&fields=orderNo"),
    )
    .await;
    assert_eq!(parse_csv(&text), [["orderNo"], ["E1"], ["E2"]]);
    // A UTF-8 BOM by default (Excel on a Chinese locale reads it as UTF-8), and none
    // with bom=false.
    assert!(text.starts_with("\u{feff}orderNo\r\n"), "{text:?}");
    let (_, text) = get(
        &app,
        Some(&exporter),
        &format!("/export/orders.csv?{RANGE}&fields=orderNo&bom=false"),
    )
    .await;
    assert!(text.starts_with("orderNo\r\n"), "{text:?}");
    // A shop outside the scope matches nothing, exactly like the orders list.
    let (status, text) = get(
        &app,
        Some(&exporter),
        &format!("/export/orders.csv?{RANGE}&shopIds=2&fields=orderNo"),
    )
    .await;
    assert_eq!(
        (status, parse_csv(&text)),
        (200, vec![vec!["orderNo".to_string()]])
    );
    // Filters apply; the other tenant sees none of these rows.
    let (_, text) = get(
        &app,
        Some(&app.owner()),
        &format!("/export/orders.csv?{RANGE}&fields=orderNo&platforms=TIKTOK"),
    )
    .await;
    assert_eq!(parse_csv(&text), [["orderNo"], ["E3"]]);
    let (_, text) = get(
        &app,
        Some(&app.token(3, 2)),
        &format!("/export/orders.csv?{RANGE}&fields=orderNo"),
    )
    .await;
    assert_eq!(parse_csv(&text), [["orderNo"]]);
    // Refusals, each with its code.
    let cases: Vec<(Option<String>, String, u16, &str)> = vec![
        (
            None,
            format!("/export/orders.csv?{RANGE}"),
            401,
            "UNAUTHENTICATED",
        ),
        (
            Some(app.token(2, 1)),
            format!("/export/orders.csv?{RANGE}"),
            403,
            "FORBIDDEN",
        ),
        (
            Some(exporter.clone()),
            format!("/export/orders.csv?{RANGE}&fields=commissionAmount"),
            403,
            "FORBIDDEN",
        ),
        (
            Some(exporter.clone()),
            "/export/orders.csv?placedFrom=2026-01-01&placedTo=2026-11-20".into(),
            400,
            "BAD_USER_INPUT",
        ),
        (
            Some(exporter.clone()),
            "/export/orders.csv".into(),
            400,
            "BAD_USER_INPUT",
        ),
        (
            Some(exporter.clone()),
            "/export/orders.csv?placedFrom=2026-11-20&placedTo=2026-11-01".into(),
            400,
            "BAD_USER_INPUT",
        ),
        (
            Some(exporter.clone()),
            format!("/export/orders.csv?{RANGE}&fields=password"),
            400,
            "BAD_USER_INPUT",
        ),
        (
            Some(exporter.clone()),
            format!("/export/orders.csv?{RANGE}&statuses=LOST"),
            400,
            "BAD_USER_INPUT",
        ),
        (
            Some(exporter.clone()),
            format!("/export/orders.csv?{RANGE}&shopId=1"),
            400,
            "BAD_USER_INPUT",
        ),
        (
            Some(exporter.clone()),
            format!("/export/orders.csv?{RANGE}&timezone=Mars/Base"),
            400,
            "BAD_USER_INPUT",
        ),
    ];
    for (token, path, status, code) in cases {
        let (got, body) = get(&app, token.as_deref(), &path).await;
        assert_eq!(
            (got, code_of(&body).as_str()),
            (status, code),
            "{path}: {body}"
        );
    }
    // Exactly 90 days is allowed.
    let (status, _) = get(
        &app,
        Some(&exporter),
        "/export/orders.csv?placedFrom=2026-08-23T00:00:00Z&placedTo=2026-11-21T00:00:00Z",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn report_downloads_equal_the_graphql_reports() {
    let app = TestApp::spawn(2_000).await;
    let owner = app.owner();
    let trend = app
        .data(
            &owner,
            "{ trend(range: {from: \"2026-11-01\", to: \"2026-11-07\"}, granularity: DAY, metrics: [ORDERS, GMV], compare: PREVIOUS_PERIOD, filter: {channels: [LIVE, SHELF]}) { points { label values { metric value previous change } } } }",
            json!({}),
        )
        .await;
    let (status, text) = get(
        &app,
        Some(&owner),
        "/export/trend.csv?from=2026-11-01&to=2026-11-07&granularity=DAY&metrics=ORDERS,GMV&compare=PREVIOUS_PERIOD&channels=LIVE,SHELF",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let rows = parse_csv(&text);
    assert_eq!(
        rows[0],
        [
            "start",
            "label",
            "ORDERS",
            "ORDERS_previous",
            "ORDERS_change_ratio",
            "GMV_CNY",
            "GMV_CNY_previous",
            "GMV_CNY_change_ratio"
        ]
    );
    let points = trend["trend"]["points"].as_array().unwrap();
    assert_eq!(rows.len(), points.len() + 1);
    // Each day's cells equal the raw SQL recomputation, not only the GraphQL answer
    // (both come from the same engine).
    for (n, row) in rows[1..].iter().enumerate() {
        let day = format!("2026-11-{:02}", n + 1);
        let prev = format!("2026-10-{:02}", 25 + n);
        for (date, col) in [(&day, 2), (&prev, 3)] {
            let cond = format!(
                "o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1) AND o.channel IN ('LIVE', 'SHELF') AND {}",
                crate::analytics::window(date, date, "Asia/Shanghai")
            );
            let want = crate::analytics::sql_metrics(&app, &cond, "Asia/Shanghai", "CNY");
            let of = |m: &str| want.iter().find(|(k, _)| *k == m).unwrap().1.unwrap();
            assert_eq!(
                row[col].parse::<f64>().unwrap(),
                of("ORDERS"),
                "{date} ORDERS"
            );
            assert!(
                (row[col + 3].parse::<f64>().unwrap() - of("GMV")).abs() < 0.005,
                "{date} GMV {} vs SQL {}",
                row[col + 3],
                of("GMV")
            );
        }
    }
    for (row, point) in rows[1..].iter().zip(points) {
        assert_eq!(row[1], point["label"].as_str().unwrap());
        let values = point["values"].as_array().unwrap();
        for (i, v) in values.iter().enumerate() {
            for (j, field) in ["value", "previous", "change"].iter().enumerate() {
                let cell = &row[2 + i * 3 + j];
                match v[field].as_f64() {
                    Some(n) => assert!(
                        (cell.parse::<f64>().unwrap() - n).abs() < 1e-9,
                        "{cell} vs {n}"
                    ),
                    None => assert!(cell.is_empty()),
                }
            }
        }
    }
    let breakdown = app
        .data(
            &owner,
            "{ breakdown(range: {from: \"2026-11-01\", to: \"2026-11-20\"}, dimension: PROVINCE, metrics: [GMV, ORDERS], limit: 5) { rows { key label share values { value } } other { key values { value } } total { value } } }",
            json!({}),
        )
        .await;
    let (status, text) = get(
        &app,
        Some(&owner),
        "/export/breakdown.csv?from=2026-11-01&to=2026-11-20&dimension=PROVINCE&metrics=GMV,ORDERS&limit=5",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let rows = parse_csv(&text);
    assert_eq!(
        rows[0],
        ["rowType", "key", "label", "share", "GMV_CNY", "ORDERS"]
    );
    let b = &breakdown["breakdown"];
    let expected_rows = b["rows"].as_array().unwrap().len() + usize::from(!b["other"].is_null());
    assert_eq!(rows.len(), 1 + expected_rows + 1, "rows, other, total");
    assert_eq!(rows[1][0], "data");
    assert_eq!(rows[1][1], b["rows"][0]["key"].as_str().unwrap());
    assert_eq!(rows[1][2], b["rows"][0]["label"].as_str().unwrap());
    // Only the data rows say `data`: a column summed over them never counts twice.
    let kinds: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    let data_rows = b["rows"].as_array().unwrap().len();
    assert!(kinds[..data_rows].iter().all(|k| *k == "data"), "{kinds:?}");
    if !b["other"].is_null() {
        assert_eq!(kinds[data_rows], "other");
    }
    let last = rows.last().unwrap();
    assert_eq!(last[0], "total");
    assert!(
        (last[4].parse::<f64>().unwrap() - b["total"][0]["value"].as_f64().unwrap()).abs() < 1e-9
    );
    // Every data row and the total equal SQL over the same window.
    let window = crate::analytics::window("2026-11-01", "2026-11-20", "Asia/Shanghai");
    for row in &rows[1..] {
        let key = match row[0].as_str() {
            "total" => None,
            "other" => continue,
            _ => Some(row[1].clone()),
        };
        let mut cond =
            format!("o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1) AND {window}");
        if let Some(key) = &key {
            cond += &format!(" AND coalesce(o.province_code, '') = '{key}'");
        }
        let want = crate::analytics::sql_metrics(&app, &cond, "Asia/Shanghai", "CNY");
        let of = |m: &str| want.iter().find(|(k, _)| *k == m).unwrap().1.unwrap();
        assert!(
            (row[4].parse::<f64>().unwrap() - of("GMV")).abs() < 0.005,
            "{key:?} GMV {} vs SQL {}",
            row[4],
            of("GMV")
        );
        assert_eq!(
            row[5].parse::<f64>().unwrap(),
            of("ORDERS"),
            "{key:?} ORDERS"
        );
    }
    // Errors keep their codes: bad input, and a permission the account lacks.
    let (status, body) = get(
        &app,
        Some(&owner),
        "/export/trend.csv?from=2026-11-01&to=2026-11-07&metrics=ORDERS",
    )
    .await;
    assert_eq!((status, code_of(&body).as_str()), (400, "BAD_USER_INPUT"));
    let (status, body) = get(
        &app,
        Some(&owner),
        "/export/trend.csv?from=2026-11-07&to=2026-11-01&granularity=DAY&metrics=ORDERS",
    )
    .await;
    assert_eq!((status, code_of(&body).as_str()), (400, "BAD_USER_INPUT"));
    let (status, body) = get(
        &app,
        Some(&app.token(3, 1)), // 处理售后: no ANALYTICS_READ
        "/export/trend.csv?from=2026-11-01&to=2026-11-07&granularity=DAY&metrics=ORDERS",
    )
    .await;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (403, "FORBIDDEN"),
        "{body}"
    );
    // A value outside an enum names the accepted ones.
    let (status, body) = get(
        &app,
        Some(&owner),
        "/export/breakdown.csv?from=2026-11-01&to=2026-11-07&dimension=COLOUR&metrics=ORDERS",
    )
    .await;
    assert_eq!((status, code_of(&body).as_str()), (400, "BAD_USER_INPUT"));
    assert!(body.contains("PROVINCE"), "{body}");
    // A report costs from the same complexity budget as the GraphQL field: 400 days of
    // hours in ten metrics is over it, in a file as in a query.
    let (status, body) = get(
        &app,
        Some(&owner),
        "/export/trend.csv?from=2025-10-01&to=2026-11-04&granularity=HOUR&metrics=ORDERS,PAID_ORDERS,GMV,AOV,UNITS,BUYERS,REFUND_AMOUNT,REFUND_RATE,DISPUTE_RATE,PAY_CONVERSION",
    )
    .await;
    assert_eq!((status, code_of(&body).as_str()), (400, "BAD_USER_INPUT"));
    assert!(body.contains("complexity"), "{body}");
    // COMMISSION without FINANCE_READ refuses the file: the column would be empty.
    let (status, body) = get(
        &app,
        Some(&app.token(2, 1)), // 仅查看: reports, no FINANCE_READ
        "/export/trend.csv?from=2026-11-01&to=2026-11-07&granularity=DAY&metrics=GMV,COMMISSION",
    )
    .await;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (403, "FORBIDDEN"),
        "{body}"
    );
    let (status, text) = get(
        &app,
        Some(&app.token(2, 1)),
        "/export/trend.csv?from=2026-11-01&to=2026-11-07&granularity=DAY&metrics=GMV",
    )
    .await;
    assert_eq!(status, 200, "{text}");
}

/// Reads a CSV file with Python's csv module (as a BI script would), BOM included.
fn python_rows(text: &str) -> Vec<serde_json::Map<String, Value>> {
    let path = std::env::temp_dir().join(format!("orderscope-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import csv, json, sys\n\
             with open(sys.argv[1], encoding='utf-8-sig', newline='') as f:\n\
             \x20   print(json.dumps(list(csv.DictReader(f)), ensure_ascii=False))",
        )
        .arg(&path)
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect()
}

const CREATE_LINK: &str = "mutation($e: String!, $t: Int) { createExportLink(export: $e, ttlMinutes: $t) { id url expiresAt } }";

/// A plain GET of a full URL, with no header at all (as Excel "From Web" sends it).
async fn fetch_url(url: &str) -> (u16, String) {
    let resp = reqwest::Client::new().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn signed_links_download_without_headers_until_expired_or_revoked() {
    let app = fixture().await;
    let analyst = app.token(6, 1);
    // A breakdown through a link equals the GraphQL answer, read by Python's csv module.
    let link = app
        .data(
            &analyst,
            CREATE_LINK,
            json!({ "e": "/export/breakdown.csv?from=2026-10-25&to=2026-11-20&dimension=SHOP&metrics=ORDERS,GMV&currency=CNY&shopIds=1", "t": 5 }),
        )
        .await;
    let url = link["createExportLink"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        url.starts_with(&format!("{}/export/link/", app.address)),
        "{url}"
    );
    let (status, text) = fetch_url(&url).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.starts_with('\u{feff}'), "a BOM by default");
    let rows = python_rows(&text);
    let answer = app
        .data(
            &analyst,
            "{ breakdown(range: {from: \"2026-10-25\", to: \"2026-11-20\"}, dimension: SHOP, metrics: [ORDERS, GMV], filter: {shopIds: [\"1\"]}) { rows { key values { value } } total { value } } }",
            json!({}),
        )
        .await;
    let want = answer["breakdown"]["rows"].as_array().unwrap();
    let data: Vec<_> = rows.iter().filter(|r| r["rowType"] == "data").collect();
    assert_eq!(data.len(), want.len());
    for (got, want) in data.iter().zip(want) {
        assert_eq!(got["key"], want["key"]);
        let orders: f64 = got["ORDERS"].as_str().unwrap().parse().unwrap();
        let gmv: f64 = got["GMV_CNY"].as_str().unwrap().parse().unwrap();
        assert_eq!(orders, want["values"][0]["value"].as_f64().unwrap());
        assert!((gmv - want["values"][1]["value"].as_f64().unwrap()).abs() < 1e-9);
    }
    let total = rows.iter().find(|r| r["rowType"] == "total").unwrap();
    let summed: f64 = data
        .iter()
        .chain(
            rows.iter()
                .filter(|r| r["rowType"] == "other")
                .collect::<Vec<_>>()
                .iter(),
        )
        .map(|r| r["ORDERS"].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(
        summed,
        total["ORDERS"].as_str().unwrap().parse::<f64>().unwrap()
    );
    assert_eq!(summed, 2.0, "E1 and E2 in shop 1 in the range");

    // An orders link: the rows equal the orders query's, masked as for the account.
    let link = app
        .data(
            &analyst,
            CREATE_LINK,
            json!({ "e": format!("/export/orders.csv?{RANGE}&fields=orderNo,paidAmount,receiverPhone") }),
        )
        .await;
    let orders_url = link["createExportLink"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let orders_id = link["createExportLink"]["id"].as_str().unwrap().to_string();
    let (status, text) = fetch_url(&orders_url).await;
    assert_eq!(status, 200, "{text}");
    let rows = python_rows(&text);
    let listed = app
        .data(
            &analyst,
            "{ orders(filter: {placedFrom: \"2026-10-25T00:00:00+08:00\", placedTo: \"2026-11-21T00:00:00+08:00\"}, first: 50, orderBy: {field: PLACED_AT, direction: ASC}) { edges { node { orderNo paidAmount receiverPhone } } } }",
            json!({}),
        )
        .await;
    let listed = listed["orders"]["edges"].as_array().unwrap();
    assert_eq!(rows.len(), listed.len());
    for (row, edge) in rows.iter().zip(listed) {
        let node = &edge["node"];
        assert_eq!(row["orderNo"], node["orderNo"]);
        assert_eq!(row["receiverPhone"], node["receiverPhone"], "masked alike");
        let major: f64 = row["paidAmountMajor"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            (major * 100.0).round() as i64,
            node["paidAmount"].as_i64().unwrap()
        );
    }
    assert_eq!(
        app.sql_i64(
            "SELECT count(*) FROM audit_log WHERE action = 'useExportLink' AND account_id = 6"
        ),
        2
    );

    // Another tenant's owner can neither revoke it nor make one that reads tenant 1.
    let other = app.token(3, 2);
    let revoked = app
        .data(
            &other,
            "mutation($id: ID!) { revokeExportLink(id: $id) }",
            json!({ "id": orders_id }),
        )
        .await;
    assert_eq!(revoked["revokeExportLink"], false);
    let foreign = app
        .data(
            &other,
            CREATE_LINK,
            json!({ "e": format!("/export/orders.csv?{RANGE}&fields=orderNo&shopIds=1,2") }),
        )
        .await;
    let (status, text) = fetch_url(foreign["createExportLink"]["url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        parse_csv(&text),
        [["orderNo"]],
        "tenant 2's link sees no tenant 1 row"
    );

    // Revoked: refused at once.
    let revoked = app
        .data(
            &analyst,
            "mutation($id: ID!) { revokeExportLink(id: $id) }",
            json!({ "id": orders_id }),
        )
        .await;
    assert_eq!(revoked["revokeExportLink"], true);
    let (status, body) = fetch_url(&orders_url).await;
    assert_eq!((status, code_of(&body).as_str()), (401, "UNAUTHENTICATED"));

    // Expired: refused.
    app.conn_exec(
        "UPDATE export_links SET expires_at = now() - interval '1 second' WHERE account_id = 6",
    );
    let (status, body) = fetch_url(&url).await;
    assert_eq!((status, code_of(&body).as_str()), (401, "UNAUTHENTICATED"));

    // A live link dies with the account's tokens, and follows its permissions now.
    let link = app
        .data(
            &analyst,
            CREATE_LINK,
            json!({ "e": format!("/export/orders.csv?{RANGE}&fields=orderNo,commissionAmount") }),
        )
        .await;
    let url = link["createExportLink"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fetch_url(&url).await.0, 200);
    app.conn_exec(
        "UPDATE accounts SET permissions = '{ANALYTICS_READ,EXPORT,ORDERS_READ}' WHERE id = 6",
    );
    let (status, body) = fetch_url(&url).await;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (403, "FORBIDDEN"),
        "FINANCE_READ is gone"
    );
    app.conn_exec("UPDATE accounts SET token_generation = token_generation + 1 WHERE id = 6");
    let (status, body) = fetch_url(&url).await;
    assert_eq!((status, code_of(&body).as_str()), (401, "UNAUTHENTICATED"));

    // Bad requests for a link are refused with their codes.
    let owner = app.owner();
    for (export, ttl, code) in [
        ("/graphql?query={shops{id}}", 5, "BAD_USER_INPUT"),
        (
            "/export/orders.csv?placedFrom=2026-11-01",
            0,
            "BAD_USER_INPUT",
        ),
        (
            "/export/orders.csv?placedFrom=2026-11-01",
            61,
            "BAD_USER_INPUT",
        ),
    ] {
        let body = app
            .gql(&owner, CREATE_LINK, json!({ "e": export, "t": ttl }))
            .await;
        assert_eq!(
            crate::helpers::error_code(&body),
            code,
            "{export} {ttl}: {body}"
        );
    }
    let viewer = app.token(2, 1);
    let body = app
        .gql(
            &viewer,
            CREATE_LINK,
            json!({ "e": format!("/export/orders.csv?{RANGE}") }),
        )
        .await;
    assert_eq!(
        crate::helpers::error_code(&body),
        "FORBIDDEN",
        "no EXPORT permission"
    );
}
