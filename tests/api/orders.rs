//! The orders list and order detail, checked against SQL over the same data.

use serde_json::{json, Value};

use crate::helpers::{error_code, TestApp};

const PAGE: &str =
    "query($first: Int!, $after: String, $filter: OrderFilter, $orderBy: OrderOrder) {
  orders(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id paidAmount placedAt } }
  }
}";

const TENANT1: &str = "shop_id IN (SELECT id FROM shops WHERE tenant_id = 1)";

/// Every id of a listing, page by page.
async fn walk(
    app: &TestApp,
    token: &str,
    filter: Value,
    order_by: Value,
    first: i64,
) -> (Vec<i64>, i64) {
    let mut ids = Vec::new();
    let mut after = Value::Null;
    let mut total = -1;
    loop {
        let data = app
            .data(
                token,
                PAGE,
                json!({ "first": first, "after": after, "filter": filter, "orderBy": order_by }),
            )
            .await;
        let conn = &data["orders"];
        total = conn["totalCount"].as_i64().unwrap_or(total);
        for edge in conn["edges"].as_array().unwrap() {
            ids.push(edge["node"]["id"].as_str().unwrap().parse().unwrap());
        }
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    (ids, total)
}

fn sql_ids(app: &TestApp, where_sql: &str, order_sql: &str) -> Vec<i64> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    diesel::sql_query(format!(
        "SELECT id FROM orders WHERE {where_sql} ORDER BY {order_sql}"
    ))
    .load::<Id>(&mut app.conn())
    .unwrap()
    .into_iter()
    .map(|r| r.id)
    .collect()
}

#[tokio::test]
async fn pages_walk_every_order_of_the_tenant_once_newest_first() {
    let app = TestApp::spawn(3_000).await;
    let (ids, total) = walk(&app, &app.owner(), Value::Null, Value::Null, 200).await;
    let expected = sql_ids(&app, TENANT1, "placed_at DESC, id DESC");
    assert!(expected.len() > 1_500, "the fixture has data");
    assert_eq!(total as usize, expected.len());
    assert_eq!(ids, expected);
    // Another tenant sees only its own orders.
    let (other, _) = walk(&app, &app.token(7, 2), Value::Null, Value::Null, 200).await;
    assert_eq!(
        other,
        sql_ids(
            &app,
            "shop_id IN (SELECT id FROM shops WHERE tenant_id = 2)",
            "placed_at DESC, id DESC"
        )
    );
}

#[tokio::test]
async fn sorting_by_amount_pages_like_sql_in_both_directions() {
    let app = TestApp::spawn(1_500).await;
    for (dir, order_sql) in [
        ("ASC", "paid_amount ASC, id ASC"),
        ("DESC", "paid_amount DESC, id DESC"),
    ] {
        let (ids, _) = walk(
            &app,
            &app.owner(),
            Value::Null,
            json!({"field": "PAID_AMOUNT", "direction": dir}),
            97,
        )
        .await;
        assert_eq!(ids, sql_ids(&app, TENANT1, order_sql), "{dir}");
    }
    let (ids, _) = walk(
        &app,
        &app.owner(),
        Value::Null,
        json!({"field": "PLACED_AT", "direction": "ASC"}),
        150,
    )
    .await;
    assert_eq!(ids, sql_ids(&app, TENANT1, "placed_at ASC, id ASC"));
}

#[tokio::test]
async fn every_filter_matches_the_sql_recomputation() {
    let app = TestApp::spawn(3_000).await;
    let product: i64 = app.sql_i64("SELECT product_id FROM order_items i JOIN orders o ON o.id = i.order_id JOIN shops s ON s.id = o.shop_id WHERE s.tenant_id = 1 LIMIT 1");
    let creator: i64 = app.sql_i64(&format!(
        "SELECT creator_id FROM orders WHERE {TENANT1} AND creator_id IS NOT NULL LIMIT 1"
    ));
    let cases: Vec<(Value, String)> = vec![
        (json!({"statuses": ["COMPLETED", "CLOSED"]}), "status IN ('COMPLETED','CLOSED')".into()),
        (json!({"shopIds": ["1", "3"]}), "shop_id IN (1, 3)".into()),
        (json!({"shopIds": ["5"]}), "false".into()), // tenant 2's shop: nothing, not an error
        (json!({"platforms": ["TIKTOK"]}), "shop_id IN (SELECT id FROM shops WHERE platform = 'TIKTOK')".into()),
        (json!({"paymentMethods": ["ALIPAY"]}), "payment_method = 'ALIPAY'".into()),
        (json!({"channels": ["LIVE", "ADS"]}), "channel IN ('LIVE','ADS')".into()),
        (json!({"provinces": ["44", "33"]}), "province_code IN ('44','33')".into()),
        (json!({"placedFrom": "2026-10-01T00:00:00Z", "placedTo": "2026-10-15T00:00:00Z"}),
         "placed_at >= '2026-10-01T00:00:00Z' AND placed_at < '2026-10-15T00:00:00Z'".into()),
        (json!({"productId": product.to_string()}), format!("EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = orders.id AND i.product_id = {product})")),
        (json!({"creatorId": creator.to_string()}), format!("creator_id = {creator}")),
        (json!({"hasAfterSale": true}), "EXISTS (SELECT 1 FROM after_sales a WHERE a.order_id = orders.id)".into()),
        (json!({"hasAfterSale": false}), "NOT EXISTS (SELECT 1 FROM after_sales a WHERE a.order_id = orders.id)".into()),
        (json!({"buyerNickname": "柠檬"}), "buyer_nickname ILIKE '%柠檬%'".into()),
        (json!({"orderNo": "D000000000010"}), "order_no = 'D000000000010'".into()),
        (json!({"statuses": ["DELIVERED"], "channels": ["LIVE"], "platforms": ["DOUYIN"]}),
         "status = 'DELIVERED' AND channel = 'LIVE' AND shop_id IN (SELECT id FROM shops WHERE platform = 'DOUYIN')".into()),
    ];
    for (filter, where_sql) in cases {
        let (ids, total) = walk(&app, &app.owner(), filter.clone(), Value::Null, 200).await;
        let expected = sql_ids(
            &app,
            &format!("{TENANT1} AND {where_sql}"),
            "placed_at DESC, id DESC",
        );
        assert_eq!(total as usize, expected.len(), "{filter}");
        assert_eq!(ids, expected, "{filter}");
    }
}

#[tokio::test]
async fn cursors_stay_correct_while_new_orders_arrive() {
    let app = TestApp::spawn(1_000).await;
    let token = app.owner();
    let before = sql_ids(&app, TENANT1, "placed_at DESC, id DESC");
    let first = app.data(&token, PAGE, json!({"first": 50})).await;
    let cursor = first["orders"]["pageInfo"]["endCursor"].clone();
    // A newer order and an order older than the cursor arrive between the two pages.
    let ingest = "mutation($o: [OrderInput!]!) { ingestOrders(orders: $o) { created } }";
    let order = |no: &str, placed: &str| {
        json!({"shopId": "1", "orderNo": no, "status": "PENDING_PAYMENT",
        "placedAt": placed, "goodsAmount": 100, "buyerId": "b", "sourceUpdatedAt": placed})
    };
    let data = app.data(&token, ingest, json!({"o": [order("NEW-1", "2026-11-21T10:00:00Z"), order("OLD-1", "2026-09-25T10:00:00Z")]})).await;
    assert_eq!(data["ingestOrders"]["created"], 2);
    let second = app
        .data(&token, PAGE, json!({"first": 50, "after": cursor}))
        .await;
    let ids: Vec<i64> = second["orders"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().parse().unwrap())
        .collect();
    let after_now = sql_ids(&app, TENANT1, "placed_at DESC, id DESC");
    let pos = after_now.iter().position(|id| *id == before[49]).unwrap();
    assert_eq!(
        ids,
        after_now[pos + 1..pos + 51].to_vec(),
        "the next page continues right after the cursor"
    );
    assert_eq!(
        ids[..10],
        before[50..60],
        "no order of the old page is repeated or skipped"
    );
}

#[tokio::test]
async fn bad_paging_input_is_a_clear_error() {
    let app = TestApp::spawn(200).await;
    let token = app.owner();
    for (vars, needle) in [
        (json!({"first": 201}), "first must be between 0 and 200"),
        (json!({"first": -1}), "first must be between"),
        (
            json!({"first": 10, "after": "garbage!"}),
            "after is not a cursor",
        ),
        (
            json!({"first": 10, "filter": {"shopIds": ["abc"]}}),
            "shopIds is not a valid id",
        ),
        (
            json!({"first": 10, "filter": {"provinces": ["Guangdong"]}}),
            "not a province code",
        ),
        (
            json!({"first": 10, "filter": {"placedFrom": "2026-11-02T00:00:00Z", "placedTo": "2026-11-01T00:00:00Z"}}),
            "placedFrom is after placedTo",
        ),
        (
            json!({"first": 10, "filter": {"statuses": ["NOPE"]}}),
            "NOPE",
        ),
        (
            json!({"first": 10, "filter": {"placedFrom": "yesterday"}}),
            "DateTime",
        ),
    ] {
        let body = app.gql(&token, PAGE, vars.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{vars}: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{vars}: {body}"
        );
    }
    // A cursor of another ordering is refused rather than misread.
    let page = app.data(&token, PAGE, json!({"first": 5})).await;
    let cursor = page["orders"]["pageInfo"]["endCursor"].clone();
    let body = app
        .gql(
            &token,
            PAGE,
            json!({"first": 5, "after": cursor, "orderBy": {"field": "PAID_AMOUNT"}}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}

const DETAIL: &str = "query($id: ID!) { order(id: $id) {
  id orderNo status rawStatus paidAmount goodsAmount discountAmount shippingFee currency
  shop { id platform } province { code nameZh region } city channel
  receiverName receiverPhone receiverAddress
  items { lineNo quantity unitPrice paidAmount product { id title category } }
  afterSales { externalId kind status refundAmount dispute }
  shipment { carrier trackingNo shippedAt deliveredAt }
  timeline { at event }
} }";

#[tokio::test]
async fn an_order_has_items_after_sales_shipment_and_a_timeline() {
    let app = TestApp::spawn(2_000).await;
    let id = app.sql_i64(&format!(
        "SELECT o.id FROM orders o WHERE {TENANT1} AND EXISTS (SELECT 1 FROM after_sales a WHERE a.order_id = o.id)
           AND EXISTS (SELECT 1 FROM shipments s WHERE s.order_id = o.id) AND o.province_code IS NOT NULL ORDER BY o.id LIMIT 1"
    ));
    let data = app
        .data(&app.owner(), DETAIL, json!({"id": id.to_string()}))
        .await;
    let order = &data["order"];
    assert_eq!(order["id"], id.to_string());
    let items = order["items"].as_array().unwrap();
    assert_eq!(
        items.len() as i64,
        app.sql_i64(&format!(
            "SELECT count(*) FROM order_items WHERE order_id = {id}"
        ))
    );
    let item_paid: i64 = items
        .iter()
        .map(|i| i["paidAmount"].as_i64().unwrap())
        .sum();
    assert_eq!(
        item_paid,
        app.sql_i64(&format!(
            "SELECT sum(paid_amount) FROM order_items WHERE order_id = {id}"
        ))
    );
    assert_eq!(
        order["goodsAmount"].as_i64().unwrap() - order["discountAmount"].as_i64().unwrap()
            + order["shippingFee"].as_i64().unwrap(),
        order["paidAmount"].as_i64().unwrap()
    );
    assert!(items.iter().all(|i| i["product"]["title"].is_string()));
    assert_eq!(
        order["afterSales"].as_array().unwrap().len() as i64,
        app.sql_i64(&format!(
            "SELECT count(*) FROM after_sales WHERE order_id = {id}"
        ))
    );
    assert!(order["shipment"]["trackingNo"].is_string());
    let events: Vec<&str> = order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events[0], "PLACED");
    assert!(
        events.contains(&"PAID")
            && events.contains(&"SHIPPED")
            && events.contains(&"AFTER_SALE_REQUESTED"),
        "{events:?}"
    );
    let times: Vec<&str> = order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
    // Owners read PII as stored.
    let phone: String = order["receiverPhone"].as_str().unwrap().into();
    assert!(!phone.contains('*'));
}

#[tokio::test]
async fn another_tenants_order_is_indistinguishable_from_a_missing_one() {
    let app = TestApp::spawn(500).await;
    let foreign = app.sql_i64(
        "SELECT min(id) FROM orders WHERE shop_id IN (SELECT id FROM shops WHERE tenant_id = 2)",
    );
    for id in [
        foreign.to_string(),
        "99999999".to_string(),
        "abc".to_string(),
    ] {
        let body = app.gql(&app.owner(), DETAIL, json!({"id": id})).await;
        assert!(body.get("errors").is_none(), "{body}");
        assert!(body["data"]["order"].is_null(), "{id}");
    }
    let own = app
        .data(&app.token(7, 2), DETAIL, json!({"id": foreign.to_string()}))
        .await;
    assert_eq!(own["order"]["id"], foreign.to_string());
}

#[tokio::test]
async fn without_pii_read_receiver_fields_are_masked_and_commission_is_forbidden() {
    let app = TestApp::spawn(500).await;
    let id = app.sql_i64(&format!("SELECT id FROM orders WHERE {TENANT1} AND province_code IS NOT NULL AND creator_id IS NOT NULL AND paid_at IS NOT NULL ORDER BY id LIMIT 1"));
    let query = "query($id: ID!) { order(id: $id) { receiverName receiverPhone receiverAddress city province { nameZh } commissionAmount } }";
    // Account 2 is the 仅查看 (VIEWER) sub-account: no PII_READ, no FINANCE_READ.
    let body = app
        .gql(&app.token(2, 1), query, json!({"id": id.to_string()}))
        .await;
    let order = &body["data"]["order"];
    let name = order["receiverName"].as_str().unwrap();
    assert!(
        name.ends_with('*') && name.chars().filter(|c| *c != '*').count() == 1,
        "{name}"
    );
    let phone = order["receiverPhone"].as_str().unwrap();
    assert_eq!(&phone[3..7], "****", "{phone}");
    let expected_address = format!(
        "{}{}",
        order["province"]["nameZh"].as_str().unwrap(),
        order["city"].as_str().unwrap()
    );
    assert_eq!(order["receiverAddress"], expected_address);
    assert!(order["commissionAmount"].is_null());
    assert_eq!(error_code(&body), "FORBIDDEN");
    assert_eq!(
        body["errors"][0]["path"],
        json!(["order", "commissionAmount"])
    );
    // The owner sees the stored values.
    let owner = app
        .data(&app.owner(), query, json!({"id": id.to_string()}))
        .await;
    assert!(!owner["order"]["receiverName"]
        .as_str()
        .unwrap()
        .contains('*'));
    assert!(owner["order"]["commissionAmount"].as_i64().unwrap() > 0);
}
