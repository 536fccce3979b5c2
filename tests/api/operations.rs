//! Abnormal-order work lists, shipping and after-sale decisions: each transition
//! allowed or refused, idempotent repeats, refund bounds, and KPIs that move exactly
//! as the raw recomputation after every operation.

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::analytics::{assert_metrics, sql_metrics, window};
use crate::helpers::{error_code, TestApp};

const INGEST: &str = "mutation($o: [OrderInput!]!) { ingestOrders(orders: $o) { created rejected results { reason } } }";

const ABNORMAL: &str =
    "query($kind: AbnormalKind!, $first: Int, $after: String, $filter: OrderFilter) {
  abnormalOrders(kind: $kind, first: $first, after: $after, filter: $filter) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { id orderNo } } } }";

const SHIP: &str = "mutation($id: ID!, $carrier: String!, $no: String!) {
  shipOrder(id: $id, carrier: $carrier, trackingNo: $no) {
    alreadyShipped order { id status rawStatus shippedAt shipment { carrier trackingNo } } } }";

const RESOLVE: &str = "mutation($id: ID!, $d: AfterSaleDecision!, $note: String, $amount: Int) {
  resolveAfterSale(id: $id, decision: $d, note: $note, refundAmount: $amount) {
    alreadyResolved afterSale { id status refundAmount resolvedAt } order { id status } } }";

/// An order of shop `shop` whose timestamps are relative to now, with optional
/// after-sale cases.
fn order(shop: &str, no: &str, state: &str, after_sales: Value) -> Value {
    let now = Utc::now();
    let at = |hours: i64| (now - Duration::hours(hours)).to_rfc3339();
    // Unified status names are accepted as raw status on every platform.
    let (raw, placed, paid, shipped) = match state {
        "unpaid_old" => ("PENDING_PAYMENT", at(25), None, None),
        "unpaid_new" => ("PENDING_PAYMENT", at(2), None, None),
        "paid_old" => ("AWAITING_SHIPMENT", at(50), Some(at(49)), None),
        "paid_new" => ("AWAITING_SHIPMENT", at(10), Some(at(9)), None),
        "shipped_old" => ("SHIPPED", at(24 * 9), Some(at(24 * 9)), Some(at(24 * 8))),
        "shipped_new" => ("SHIPPED", at(30), Some(at(29)), Some(at(20))),
        _ => unreachable!(),
    };
    json!({
        "shopId": shop, "orderNo": no, "rawStatus": raw, "placedAt": placed, "paidAt": paid,
        "shippedAt": shipped, "paymentMethod": "ALIPAY", "currency": if shop == "2" { "USD" } else { "CNY" },
        "goodsAmount": 10000, "paidAmount": 10000, "provinceCode": "33", "city": "杭州市",
        "channel": "SHELF", "buyerId": format!("b-{no}"), "buyerNickname": "小鱼",
        "receiverName": "李四", "receiverPhone": "13900001111", "receiverAddress": "浙江省杭州市西湖区1号",
        "sourceUpdatedAt": placed,
        "items": [{"productExternalId": "p1", "productTitle": "T恤", "category": "服装", "sku": "T-L", "quantity": 2, "unitPrice": 5000, "paidAmount": 10000}],
        "afterSales": after_sales,
        "shipment": shipped.map(|s| json!({"carrier": "SF", "trackingNo": format!("SF{no}"), "shippedAt": s})),
    })
}

fn case(id: &str, kind: &str, status: &str, refund: i64, dispute: &str) -> Value {
    json!({"externalId": id, "kind": kind, "status": status, "refundAmount": refund,
           "requestedAt": (Utc::now() - Duration::hours(3)).to_rfc3339(), "dispute": dispute})
}

async fn ingest(app: &TestApp, orders: Vec<Value>) {
    let report = app.data(&app.owner(), INGEST, json!({ "o": orders })).await;
    assert_eq!(report["ingestOrders"]["rejected"], 0, "{report}");
}

async fn work_list(app: &TestApp, token: &str, kind: &str) -> (Vec<String>, i64) {
    let mut numbers = Vec::new();
    let mut after = Value::Null;
    let total;
    loop {
        let data = app
            .data(
                token,
                ABNORMAL,
                json!({ "kind": kind, "first": 2, "after": after }),
            )
            .await;
        let list = &data["abnormalOrders"];
        let page_total = list["totalCount"].as_i64().unwrap();
        for edge in list["edges"].as_array().unwrap() {
            numbers.push(edge["node"]["orderNo"].as_str().unwrap().to_string());
        }
        if !list["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            total = page_total;
            break;
        }
        after = list["pageInfo"]["endCursor"].clone();
    }
    numbers.sort();
    (numbers, total)
}

#[tokio::test]
async fn each_work_list_holds_exactly_its_orders_within_scope() {
    let app = TestApp::spawn(0).await;
    let requested = |id| json!([case(id, "REFUND_ONLY", "REQUESTED", 3000, "NONE")]);
    ingest(
        &app,
        vec![
            order("1", "U-OLD", "unpaid_old", json!([])),
            order("1", "U-NEW", "unpaid_new", json!([])),
            order("2", "U-OLD-2", "unpaid_old", json!([])),
            order("1", "P-OLD", "paid_old", json!([])),
            order("1", "P-NEW", "paid_new", json!([])),
            order("1", "S-OLD", "shipped_old", json!([])),
            order("1", "S-NEW", "shipped_new", json!([])),
            order("1", "R-REQ", "paid_new", requested("r1")),
            order(
                "1",
                "R-APPROVED",
                "paid_new",
                json!([case("r2", "RETURN_REFUND", "APPROVED", 3000, "NONE")]),
            ),
            order(
                "1",
                "R-EXCHANGE",
                "paid_new",
                json!([case("r3", "EXCHANGE", "REQUESTED", 0, "NONE")]),
            ),
            order(
                "1",
                "R-DONE",
                "paid_new",
                json!([case("r4", "REFUND_ONLY", "REFUNDED", 3000, "NONE")]),
            ),
            order(
                "2",
                "D-OPEN",
                "paid_new",
                json!([case("d1", "REFUND_ONLY", "REJECTED", 0, "OPEN")]),
            ),
            order(
                "1",
                "D-WON",
                "paid_new",
                json!([case("d2", "REFUND_ONLY", "REFUNDED", 100, "BUYER_WON")]),
            ),
        ],
    )
    .await;
    let expected: &[(&str, &[&str])] = &[
        ("UNPAID_OVER_24H", &["U-OLD", "U-OLD-2"]),
        ("SHIP_OVERDUE", &["P-OLD"]),
        ("DELIVERY_STALLED", &["S-OLD"]),
        ("REFUND_PENDING", &["R-APPROVED", "R-REQ"]),
        ("DISPUTE_OPEN", &["D-OPEN"]),
    ];
    let owner = app.owner();
    for (kind, numbers) in expected {
        let (got, total) = work_list(&app, &owner, kind).await;
        assert_eq!(got, *numbers, "{kind}");
        assert_eq!(total, numbers.len() as i64, "{kind} totalCount");
    }
    // Account 5 sees shop 1 only; the other tenant sees none of them.
    let (got, _) = work_list(&app, &app.token(5, 1), "UNPAID_OVER_24H").await;
    assert_eq!(got, ["U-OLD"]);
    let (got, _) = work_list(&app, &app.token(5, 1), "DISPUTE_OPEN").await;
    assert!(got.is_empty());
    let (got, _) = work_list(&app, &app.token(3, 2), "UNPAID_OVER_24H").await;
    assert!(got.is_empty());
    // Filters combine with the list.
    let data = app
        .data(
            &owner,
            ABNORMAL,
            json!({ "kind": "UNPAID_OVER_24H", "first": 20, "filter": { "platforms": ["TIKTOK"] } }),
        )
        .await;
    assert_eq!(data["abnormalOrders"]["totalCount"], 1);
    // Needs ORDERS_READ: the integration account has only ORDERS_WRITE.
    let body = app
        .gql(
            &app.token(4, 1),
            ABNORMAL,
            json!({ "kind": "SHIP_OVERDUE", "first": 20 }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let body = app
        .gql(&owner, ABNORMAL, json!({ "kind": "LATE", "first": 20 }))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}

#[tokio::test]
async fn seeded_work_lists_match_their_sql_definitions() {
    let app = TestApp::spawn(3_000).await;
    let owner = app.owner();
    let tenant = "o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1)";
    let mut non_empty = 0;
    for (kind, cond) in crate::helpers::ABNORMAL_SQL {
        let sql = format!("SELECT count(*) FROM orders o WHERE {tenant} AND {cond}");
        // Time only adds orders to these lists, so the answer lies between two counts.
        let before = app.sql_i64(&sql);
        let data = app
            .data(&owner, ABNORMAL, json!({ "kind": kind, "first": 1 }))
            .await;
        let after = app.sql_i64(&sql);
        let total = data["abnormalOrders"]["totalCount"].as_i64().unwrap();
        assert!(
            before <= total && total <= after,
            "{kind}: {before} <= {total} <= {after}"
        );
        non_empty += i32::from(total > 0);
    }
    assert_eq!(
        non_empty, 5,
        "the seed puts orders on every one of the five lists"
    );
}

/// KPIs of tenant 1 over the fixture's days equal the raw recomputation.
async fn assert_kpis_exact(app: &TestApp, label: &str) {
    app.conn_exec("INSERT INTO fx_rates (day, currency, rate_to_cny) SELECT d::date, 'USD', 7.1 FROM generate_series(now() - interval '30 days', now() + interval '2 days', interval '1 day') d ON CONFLICT DO NOTHING");
    let from = (Utc::now() - Duration::days(12))
        .format("%Y-%m-%d")
        .to_string();
    let to = Utc::now().format("%Y-%m-%d").to_string();
    let query = "query($from: Date!, $to: Date!) { kpis(range: {from: $from, to: $to}) { values { metric value } } }";
    let data = app
        .data(&app.owner(), query, json!({ "from": from, "to": to }))
        .await;
    let cond = format!(
        "o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1) AND {}",
        window(&from, &to, "Asia/Shanghai")
    );
    let expected = sql_metrics(app, &cond, "Asia/Shanghai", "CNY");
    assert_metrics(label, &data["kpis"]["values"], &expected, "value");
}

fn id_of(app: &TestApp, sql: &str) -> String {
    app.sql_i64(sql).to_string()
}

#[tokio::test]
async fn shipping_is_allowed_once_from_awaiting_shipment_and_repeats_are_harmless() {
    let app = TestApp::spawn(0).await;
    ingest(
        &app,
        vec![
            order("1", "A", "paid_new", json!([])),
            order("1", "B", "unpaid_new", json!([])),
            order("1", "C", "shipped_new", json!([])),
            order("2", "D", "paid_new", json!([])),
        ],
    )
    .await;
    assert_kpis_exact(&app, "before").await;
    let a = id_of(&app, "SELECT id FROM orders WHERE order_no = 'A'");
    // A viewer may not ship; a shipping account may.
    let vars = json!({ "id": a, "carrier": "SF", "no": "SF100" });
    assert_eq!(
        error_code(&app.gql(&app.token(2, 1), SHIP, vars.clone()).await),
        "FORBIDDEN"
    );
    app.conn_exec("INSERT INTO accounts (id, tenant_id, name, is_owner, permissions, shop_ids) VALUES (6, 1, 'shipper', false, '{ORDERS_READ,ORDERS_SHIP}', '{1}')");
    let shipper = app.token(6, 1);
    let shipped = app.data(&shipper, SHIP, vars.clone()).await["shipOrder"].clone();
    assert_eq!(shipped["alreadyShipped"], false);
    assert_eq!(shipped["order"]["status"], "SHIPPED");
    assert_eq!(
        shipped["order"]["rawStatus"], "3",
        "Douyin's own code for shipped"
    );
    assert_eq!(shipped["order"]["shipment"]["trackingNo"], "SF100");
    // The same call again changes nothing; another tracking number is refused.
    let again = app.data(&shipper, SHIP, vars).await["shipOrder"].clone();
    assert_eq!(again["alreadyShipped"], true);
    assert_eq!(again["order"]["shippedAt"], shipped["order"]["shippedAt"]);
    let other = app
        .gql(
            &shipper,
            SHIP,
            json!({ "id": a, "carrier": "SF", "no": "SF999" }),
        )
        .await;
    assert_eq!(error_code(&other), "BAD_USER_INPUT");
    assert!(other["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("already shipped"));
    assert_eq!(app.sql_i64("SELECT count(*) FROM shipments WHERE order_id = (SELECT id FROM orders WHERE order_no = 'A')"), 1);
    assert_eq!(
        app.sql_i64(
            "SELECT count(*) FROM audit_log WHERE action = 'order.ship' AND account_id = 6"
        ),
        1
    );
    // Unpaid and already-shipped orders are refused.
    for no in ["B", "C"] {
        let id = id_of(
            &app,
            &format!("SELECT id FROM orders WHERE order_no = '{no}'"),
        );
        let body = app
            .gql(
                &shipper,
                SHIP,
                json!({ "id": id, "carrier": "SF", "no": "SF1" }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{no}: {body}");
    }
    // Out of scope is NOT_FOUND, like a missing order; bad input is BAD_USER_INPUT.
    // Order D exists, is awaiting shipment, and belongs to the shipper's own tenant, but
    // to shop 2, outside the shipper's shop scope.
    let other_shop = id_of(&app, "SELECT id FROM orders WHERE order_no = 'D'");
    let body = app
        .gql(
            &shipper,
            SHIP,
            json!({ "id": other_shop, "carrier": "SF", "no": "SF1" }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM orders WHERE order_no = 'D' AND status = 'AWAITING_SHIPMENT' AND shipped_at IS NULL"),
        1,
        "the out-of-scope order was not shipped"
    );
    let missing = app.sql_i64("SELECT max(id) FROM orders") + 1000;
    let body = app
        .gql(
            &shipper,
            SHIP,
            json!({ "id": missing.to_string(), "carrier": "SF", "no": "SF1" }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app
        .gql(
            &app.token(3, 2),
            SHIP,
            json!({ "id": a, "carrier": "SF", "no": "SF1" }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app
        .gql(
            &shipper,
            SHIP,
            json!({ "id": a, "carrier": " ", "no": "SF1" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_kpis_exact(&app, "after shipping").await;
}

#[tokio::test]
async fn after_sale_decisions_keep_refunds_within_the_paid_amount() {
    let app = TestApp::spawn(0).await;
    ingest(
        &app,
        vec![
            order(
                "1",
                "R",
                "paid_new",
                json!([
                    case("c1", "REFUND_ONLY", "REQUESTED", 4000, "NONE"),
                    case("c2", "RETURN_REFUND", "REQUESTED", 7000, "NONE"),
                    case("c3", "REFUND_ONLY", "REQUESTED", 1000, "OPEN"),
                ]),
            ),
            order(
                "1",
                "X",
                "paid_new",
                json!([case("x1", "EXCHANGE", "REQUESTED", 0, "NONE")]),
            ),
        ],
    )
    .await;
    let case_id = |ext: &str| {
        id_of(
            &app,
            &format!("SELECT id FROM after_sales WHERE external_id = '{ext}'"),
        )
    };
    assert_kpis_exact(&app, "before").await;
    let handler = app.token(1, 1);
    // A viewer may not decide; another tenant does not see the case.
    let vars = json!({ "id": case_id("c1"), "d": "APPROVE", "note": "质量问题，同意退款" });
    assert_eq!(
        error_code(&app.gql(&app.token(2, 1), RESOLVE, vars.clone()).await),
        "FORBIDDEN"
    );
    assert_eq!(
        error_code(&app.gql(&app.token(3, 2), RESOLVE, vars.clone()).await),
        "NOT_FOUND"
    );
    // An after-sales account of the same tenant narrowed to shop 2 does not see a case
    // of shop 1 either, and nothing changes.
    app.conn_exec("INSERT INTO accounts (id, tenant_id, name, is_owner, permissions, shop_ids) VALUES (6, 1, 'shop 2 after-sales', false, '{ORDERS_READ,AFTER_SALES_HANDLE}', '{2}')");
    assert_eq!(
        error_code(&app.gql(&app.token(6, 1), RESOLVE, vars.clone()).await),
        "NOT_FOUND"
    );
    assert_eq!(
        app.sql_i64(
            "SELECT count(*) FROM after_sales WHERE external_id = 'c1' AND status = 'REQUESTED'"
        ),
        1,
        "the out-of-scope case was not decided"
    );
    // Approve c1 with its requested 40.00.
    let done = app.data(&handler, RESOLVE, vars.clone()).await["resolveAfterSale"].clone();
    assert_eq!(done["afterSale"]["status"], "REFUNDED");
    assert_eq!(done["afterSale"]["refundAmount"], 4000);
    assert_eq!(done["order"]["status"], "AWAITING_SHIPMENT");
    assert_eq!(done["alreadyResolved"], false);
    assert_kpis_exact(&app, "after a partial refund").await;
    // Repeating the same decision is harmless; the opposite one is refused.
    let again = app.data(&handler, RESOLVE, vars).await["resolveAfterSale"].clone();
    assert_eq!(again["alreadyResolved"], true);
    let body = app
        .gql(
            &handler,
            RESOLVE,
            json!({ "id": case_id("c1"), "d": "REJECT" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    // c2 asks for 70.00 but only 60.00 is still refundable.
    let body = app
        .gql(
            &handler,
            RESOLVE,
            json!({ "id": case_id("c2"), "d": "APPROVE" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("6000 still refundable"),
        "{body}"
    );
    let body = app
        .gql(
            &handler,
            RESOLVE,
            json!({ "id": case_id("c2"), "d": "APPROVE", "amount": -5 }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    // Reject c3; approve c2 for the rest: the order is fully refunded and CLOSED.
    let rejected = app
        .data(
            &handler,
            RESOLVE,
            json!({ "id": case_id("c3"), "d": "REJECT", "note": "已发货" }),
        )
        .await["resolveAfterSale"]
        .clone();
    assert_eq!(rejected["afterSale"]["status"], "REJECTED");
    let closed = app
        .data(
            &handler,
            RESOLVE,
            json!({ "id": case_id("c2"), "d": "APPROVE", "amount": 6000 }),
        )
        .await["resolveAfterSale"]
        .clone();
    assert_eq!(closed["afterSale"]["refundAmount"], 6000);
    assert_eq!(closed["order"]["status"], "CLOSED");
    assert_eq!(app.sql_i64("SELECT count(*) FROM orders WHERE order_no = 'R' AND status = 'CLOSED' AND raw_status = '4'"), 1);
    assert_kpis_exact(&app, "after a full refund").await;
    // An exchange is approved without a refund.
    let body = app
        .gql(
            &handler,
            RESOLVE,
            json!({ "id": case_id("x1"), "d": "APPROVE", "amount": 100 }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let exchange = app
        .data(
            &handler,
            RESOLVE,
            json!({ "id": case_id("x1"), "d": "APPROVE" }),
        )
        .await["resolveAfterSale"]
        .clone();
    assert_eq!(exchange["afterSale"]["status"], "APPROVED");
    assert_eq!(exchange["order"]["status"], "AWAITING_SHIPMENT");
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM audit_log WHERE action = 'after_sale.resolve'"),
        4
    );
    assert_eq!(
        app.sql_i64(
            "SELECT count(*) FROM after_sales WHERE resolution_note = '质量问题，同意退款'"
        ),
        1
    );
    assert_kpis_exact(&app, "after all decisions").await;
}

const BATCH_SHIP: &str = "mutation($o: [ShipOrderInput!]!) { batchShipOrders(orders: $o) {
  updated unchanged rejected items { index id status code message order { id status } } } }";

#[tokio::test]
async fn batch_shipping_reports_each_order_and_bad_items_never_sink_good_ones() {
    let app = TestApp::spawn(0).await;
    ingest(
        &app,
        vec![
            order("1", "S1", "paid_new", json!([])),
            order("1", "S2", "paid_old", json!([])),
            order("1", "S3", "unpaid_new", json!([])),
        ],
    )
    .await;
    let other_tenant = app
        .data(
            &app.token(3, 2),
            INGEST,
            json!({ "o": [order("3", "T2", "paid_new", json!([]))] }),
        )
        .await;
    assert_eq!(other_tenant["ingestOrders"]["rejected"], 0);
    let s1 = id_of(&app, "SELECT id FROM orders WHERE order_no = 'S1'");
    let s2 = id_of(&app, "SELECT id FROM orders WHERE order_no = 'S2'");
    let s3 = id_of(&app, "SELECT id FROM orders WHERE order_no = 'S3'");
    let other = id_of(&app, "SELECT id FROM orders WHERE order_no = 'T2'");
    let batch = json!({ "o": [
        { "id": s1, "carrier": "SF", "trackingNo": "SF001" },
        { "id": s3, "carrier": "SF", "trackingNo": "SF003" },
        { "id": other, "carrier": "SF", "trackingNo": "SF009" },
        { "id": "nope", "carrier": "SF", "trackingNo": "SF000" },
        { "id": s2, "carrier": "ZTO", "trackingNo": "ZT002" },
    ]});
    let owner = app.owner();
    let report = app.data(&owner, BATCH_SHIP, batch.clone()).await;
    let r = &report["batchShipOrders"];
    assert_eq!(
        (
            r["updated"].as_i64(),
            r["unchanged"].as_i64(),
            r["rejected"].as_i64()
        ),
        (Some(2), Some(0), Some(3)),
        "{r}"
    );
    let items = r["items"].as_array().unwrap();
    let status: Vec<&str> = items
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        status,
        ["UPDATED", "REJECTED", "REJECTED", "REJECTED", "UPDATED"]
    );
    assert_eq!(items[1]["code"], "BAD_USER_INPUT", "unpaid: {}", items[1]);
    assert_eq!(
        items[2]["code"], "NOT_FOUND",
        "another tenant's order is not found"
    );
    assert_eq!(items[3]["code"], "BAD_USER_INPUT");
    assert_eq!(items[4]["order"]["status"], "SHIPPED");
    assert_eq!(
        app.sql_i64(&format!(
            "SELECT count(*) FROM shipments WHERE order_id IN ({s1}, {s2})"
        )),
        2
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM audit_log WHERE action = 'order.ship'"),
        2,
        "one audit entry per shipped order"
    );
    assert_kpis_exact(&app, "after a batch").await;
    // The same batch again: the shipped ones are UNCHANGED, nothing is written.
    let again = app.data(&owner, BATCH_SHIP, batch).await;
    let r = &again["batchShipOrders"];
    assert_eq!(
        (
            r["updated"].as_i64(),
            r["unchanged"].as_i64(),
            r["rejected"].as_i64()
        ),
        (Some(0), Some(2), Some(3)),
        "{r}"
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM audit_log WHERE action = 'order.ship'"),
        2
    );
    // Permission, and the batch size.
    let viewer = app.token(2, 1);
    let body = app
        .gql(
            &viewer,
            BATCH_SHIP,
            json!({ "o": [{ "id": s1, "carrier": "SF", "trackingNo": "X" }] }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let too_many: Vec<Value> = (0..501)
        .map(|i| json!({ "id": i.to_string(), "carrier": "SF", "trackingNo": "X" }))
        .collect();
    let body = app.gql(&owner, BATCH_SHIP, json!({ "o": too_many })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}

const ANNOTATE: &str = "mutation($o: [AnnotateOrderInput!]!) { annotateOrders(orders: $o) {
  updated unchanged rejected items { status code order { orderNo sellerNote sellerFlag } } } }";

#[tokio::test]
async fn seller_notes_and_flags_are_set_filtered_exported_and_audited() {
    let app = TestApp::spawn(0).await;
    ingest(
        &app,
        vec![
            order("1", "N1", "paid_new", json!([])),
            order("1", "N2", "paid_new", json!([])),
            order("1", "N3", "unpaid_new", json!([])),
        ],
    )
    .await;
    let n1 = id_of(&app, "SELECT id FROM orders WHERE order_no = 'N1'");
    let n2 = id_of(&app, "SELECT id FROM orders WHERE order_no = 'N2'");
    let owner = app.owner();
    // One by one, then in a batch with a bad item.
    let one = app
        .data(
            &owner,
            ANNOTATE,
            json!({ "o": [{ "id": n1, "note": "客户要求周末送, 加急", "flag": "RED" }] }),
        )
        .await;
    assert_eq!(one["annotateOrders"]["items"][0]["status"], "UPDATED");
    assert_eq!(
        one["annotateOrders"]["items"][0]["order"]["sellerFlag"],
        "RED"
    );
    let batch = app
        .data(
            &owner,
            ANNOTATE,
            json!({ "o": [
                { "id": n2, "flag": "BLUE" },
                { "id": n1, "note": "客户要求周末送, 加急", "flag": "RED" },
                { "id": "999999", "flag": "GREEN" },
                { "id": n2, "flag": "GREEN", "clearFlag": true },
            ]}),
        )
        .await;
    let r = &batch["annotateOrders"];
    let status: Vec<&str> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["UPDATED", "UNCHANGED", "REJECTED", "REJECTED"]);
    assert_eq!(r["items"][2]["code"], "NOT_FOUND");
    assert_eq!(r["items"][3]["code"], "BAD_USER_INPUT");
    // A platform update of the order keeps the seller's marks.
    ingest(&app, vec![order("1", "N1", "paid_new", json!([]))]).await;
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM orders WHERE order_no = 'N1' AND seller_flag = 'RED' AND seller_note IS NOT NULL"),
        1
    );
    // Filterable in `orders` and in the export.
    let listed = app
        .data(
            &owner,
            "{ red: orders(filter: {sellerFlags: [RED, BLUE]}) { edges { node { orderNo sellerFlag } } } noted: orders(filter: {hasSellerNote: true}) { totalCount } plain: orders(filter: {hasSellerNote: false}) { totalCount } }",
            json!({}),
        )
        .await;
    let mut flagged: Vec<&str> = listed["red"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["orderNo"].as_str().unwrap())
        .collect();
    flagged.sort();
    assert_eq!(flagged, ["N1", "N2"]);
    assert_eq!(listed["noted"]["totalCount"], 1);
    assert_eq!(listed["plain"]["totalCount"], 2);
    let from = (Utc::now() - Duration::days(3)).format("%Y-%m-%d");
    let to = (Utc::now() + Duration::days(1)).format("%Y-%m-%d");
    let csv = app
        .client
        .get(format!("{}/export/orders.csv?placedFrom={from}&placedTo={to}&sellerFlags=RED&fields=orderNo,sellerFlag,sellerNote&bom=false", app.address))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        csv,
        "orderNo,sellerFlag,sellerNote\r\nN1,RED,\"客户要求周末送, 加急\"\r\n"
    );
    // Clearing works; every change is audited; the permission is ORDERS_ANNOTATE.
    let cleared = app
        .data(
            &owner,
            ANNOTATE,
            json!({ "o": [{ "id": n1, "note": "", "clearFlag": true }] }),
        )
        .await;
    assert_eq!(
        cleared["annotateOrders"]["items"][0]["order"]["sellerFlag"],
        Value::Null
    );
    assert_eq!(
        cleared["annotateOrders"]["items"][0]["order"]["sellerNote"],
        Value::Null
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM audit_log WHERE action = 'order.annotate'"),
        3
    );
    let viewer = app.token(2, 1);
    let body = app
        .gql(
            &viewer,
            ANNOTATE,
            json!({ "o": [{ "id": n1, "flag": "RED" }] }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    app.conn_exec("UPDATE accounts SET permissions = '{ORDERS_READ,ORDERS_ANNOTATE}' WHERE id = 2");
    let body = app
        .data(
            &viewer,
            ANNOTATE,
            json!({ "o": [{ "id": n1, "flag": "PURPLE" }] }),
        )
        .await;
    assert_eq!(body["annotateOrders"]["updated"], 1);
}
