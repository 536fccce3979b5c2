//! Stock and forecasts: setting stock per item with outcomes and permissions, stock
//! warnings equal to a hand computation over SQL, and forecasts whose backtest on the
//! seed's history beats the seasonal naive baseline.

use serde_json::{json, Value};

use crate::helpers::TestApp;

const SET: &str = "mutation($i: [StockInput!]!) { setProductStock(items: $i) { updated unchanged rejected items { index status message } } }";
const WARNINGS: &str = "query($d: Int!) { stockWarnings(withinDays: $d, asOf: \"2026-11-21\") { productId stock unitsPerDay7 unitsPerDay28 daysOfCover runsOutOn } }";

#[tokio::test]
async fn stock_warnings_equal_a_hand_computation() {
    let app = TestApp::spawn(3000).await;
    let owner = app.owner();
    // Units per product in the 7 and 28 local days before 2026-11-21 (Asia/Shanghai).
    let units = |days: i64| -> std::collections::HashMap<i64, f64> {
        let sql = format!(
            "SELECT i.product_id AS id, sum(i.quantity)::bigint AS n FROM order_items i JOIN orders o ON o.id = i.order_id \
             WHERE o.paid_at IS NOT NULL AND o.shop_id IN (SELECT id FROM shops WHERE tenant_id = 1) \
               AND o.placed_at >= ('2026-11-21'::date - {days})::timestamp AT TIME ZONE 'Asia/Shanghai' \
               AND o.placed_at < '2026-11-21'::timestamp AT TIME ZONE 'Asia/Shanghai' AND i.product_id IS NOT NULL GROUP BY 1"
        );
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct R {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(sql)
            .load::<R>(&mut app.conn())
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.n as f64))
            .collect()
    };
    let (week, month) = (units(7), units(28));
    // Stock for twelve selling products of tenant 1: from a day's sales to a month's.
    let products = app.sql_ids("SELECT p.id FROM products p JOIN shops s ON s.id = p.shop_id WHERE s.tenant_id = 1 ORDER BY p.id LIMIT 12");
    let items: Vec<Value> = products
        .iter()
        .enumerate()
        .map(|(k, id)| json!({ "productId": id.to_string(), "stock": (k as i64 * 3) }))
        .collect();
    let report = app.data(&owner, SET, json!({ "i": items })).await;
    assert_eq!(report["setProductStock"]["updated"], 12, "{report}");
    let expected: Vec<(i64, f64)> = {
        let mut v: Vec<(i64, f64)> = products
            .iter()
            .enumerate()
            .filter_map(|(k, id)| {
                let v7 = week.get(id).copied().unwrap_or(0.0) / 7.0;
                let v28 = month.get(id).copied().unwrap_or(0.0) / 28.0;
                let velocity = if v7 > 0.0 { v7 } else { v28 };
                let cover = (k as f64 * 3.0) / velocity;
                (velocity > 0.0 && cover <= 10.0).then_some((*id, cover))
            })
            .collect();
        v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        v
    };
    assert!(
        expected.len() >= 3,
        "the fixture has products running out: {expected:?}"
    );
    let data = app.data(&owner, WARNINGS, json!({ "d": 10 })).await;
    let got: Vec<(i64, f64)> = data["stockWarnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["productId"].as_str().unwrap().parse().unwrap(),
                w["daysOfCover"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got.len(), expected.len(), "{data}");
    for ((gid, gc), (eid, ec)) in got.iter().zip(&expected) {
        assert_eq!(gid, eid);
        assert!((gc - ec).abs() < 1e-9, "{gid}: {gc} vs {ec}");
    }
    // The levels of every stocked product and of each shop over them.
    let levels = app
        .data(&owner, "{ stockLevels(asOf: \"2026-11-21\") { products { productId stock daysOfCover } shops { shopId stock unitsPerDay7 daysOfCover } } }", json!({}))
        .await;
    assert_eq!(
        levels["stockLevels"]["products"].as_array().unwrap().len(),
        12
    );
    let shop_totals: i64 = levels["stockLevels"]["shops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stock"].as_i64().unwrap())
        .sum();
    assert_eq!(shop_totals, (0..12).map(|k| k * 3).sum::<i64>());
    for s in levels["stockLevels"]["shops"].as_array().unwrap() {
        let shop: i64 = s["shopId"].as_str().unwrap().parse().unwrap();
        let units7: f64 = products
            .iter()
            .filter(|id| {
                app.sql_i64(&format!("SELECT shop_id FROM products WHERE id = {id}")) == shop
            })
            .map(|id| week.get(id).copied().unwrap_or(0.0))
            .sum();
        assert!(
            (s["unitsPerDay7"].as_f64().unwrap() - units7 / 7.0).abs() < 1e-9,
            "{s}"
        );
    }
    // Zero stock runs out today.
    let first = &data["stockWarnings"][0];
    if first["stock"] == 0 {
        assert_eq!(first["runsOutOn"], "2026-11-21");
    }
}

#[tokio::test]
async fn stock_is_set_per_item_with_permissions_and_audit() {
    let app = TestApp::spawn(300).await;
    let owner = app.owner();
    let mine = app.sql_ids("SELECT p.id FROM products p JOIN shops s ON s.id = p.shop_id WHERE s.tenant_id = 1 ORDER BY p.id LIMIT 1")[0];
    let theirs = app.sql_ids("SELECT p.id FROM products p JOIN shops s ON s.id = p.shop_id WHERE s.tenant_id = 2 ORDER BY p.id LIMIT 1")[0];
    let items = json!([
        { "productId": mine.to_string(), "stock": 5 },
        { "productId": theirs.to_string(), "stock": 5 },
        { "productId": mine.to_string(), "stock": -1 },
        { "productId": "x", "stock": 1 },
    ]);
    let r = app.data(&owner, SET, json!({ "i": items })).await["setProductStock"].clone();
    let statuses: Vec<&str> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        vec!["UPDATED", "REJECTED", "REJECTED", "REJECTED"],
        "{r}"
    );
    assert_eq!(
        app.sql_i64(&format!("SELECT stock FROM products WHERE id = {mine}")),
        5
    );
    assert_eq!(
        app.sql_i64(&format!(
            "SELECT count(*) FROM products WHERE id = {theirs} AND stock IS NOT NULL"
        )),
        0
    );
    let again = app
        .data(
            &owner,
            SET,
            json!({ "i": [{ "productId": mine.to_string(), "stock": 5 }] }),
        )
        .await;
    assert_eq!(again["setProductStock"]["unchanged"], 1);
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM audit_log WHERE action = 'setProductStock'"),
        1
    );
    let viewer = app.token(2, 1);
    let body = app
        .gql(
            &viewer,
            SET,
            json!({ "i": [{ "productId": mine.to_string(), "stock": 1 }] }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    // Warnings and forecasts need ANALYTICS_READ: the integration account has none.
    let integration = app.token(4, 1);
    let body = app.gql(&integration, WARNINGS, json!({ "d": 7 })).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    // A stock file (商品ID, 库存) sets stock by the platform's product ids.
    let shop = app.sql_i64(&format!("SELECT shop_id FROM products WHERE id = {mine}"));
    let externals: Vec<String> = {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct T {
            #[diesel(sql_type = diesel::sql_types::Text)]
            t: String,
        }
        diesel::sql_query(format!(
            "SELECT external_id AS t FROM products WHERE shop_id = {shop} ORDER BY id LIMIT 2"
        ))
        .load::<T>(&mut app.conn())
        .unwrap()
        .into_iter()
        .map(|r| r.t)
        .collect()
    };
    let file = format!(
        "商品ID,商品名称,库存\n{},\"杯子, 白\",12\n{},x,abc\nnope,y,3\n",
        externals[0], externals[1]
    );
    let resp = app
        .client
        .post(format!("{}/import/stock?shopId={shop}", app.address))
        .bearer_auth(&owner)
        .body(file)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    let outcomes: Vec<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        vec!["UPDATED", "REJECTED", "REJECTED"],
        "{answer}"
    );
    assert_eq!(
        app.sql_i64(&format!(
            "SELECT stock FROM products WHERE shop_id = {shop} AND external_id = '{}'",
            externals[0]
        )),
        12
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM audit_log WHERE action = 'importStock'"),
        1
    );
    // Another tenant's product is not found.
    let body = app
        .gql(
            &owner,
            "query($p: ID!) { productForecast(productId: $p) { label } }",
            json!({ "p": theirs.to_string() }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn forecasts_are_labelled_and_beat_seasonal_naive_on_the_seed_history() {
    // 150 days of history; forecasts as of 2026-11-01, so that the 28 days held out
    // (October) have no campaign, which no method could foresee from the history.
    let app = TestApp::spawn_days(30_000, 150, |_| {}).await;
    let owner = app.owner();
    let q = "query($s: ID!) { shopForecast(shopId: $s, days: 14, asOf: \"2026-11-01\") { label method currency historyFrom historyTo
      points { date units { value low high } gmv { value low high } }
      backtest { heldOutDays unitsWape unitsSeasonalNaiveWape gmvWape gmvSeasonalNaiveWape } } }";
    let shops = app.sql_ids("SELECT id FROM shops WHERE tenant_id = 1 ORDER BY id");
    let (mut wins, mut compared) = (0, 0);
    let (mut method_sum, mut naive_sum) = (0.0, 0.0);
    for shop in &shops {
        let f = app.data(&owner, q, json!({ "s": shop.to_string() })).await["shopForecast"].clone();
        assert_eq!(f["label"], "FORECAST");
        assert!(f["method"].as_str().unwrap().contains("Holt-Winters"));
        assert_eq!(f["historyTo"], "2026-10-31");
        let points = f["points"].as_array().unwrap();
        assert_eq!(points.len(), 14);
        assert_eq!(points[0]["date"], "2026-11-01");
        for p in points {
            for k in ["units", "gmv"] {
                let (v, lo, hi) = (
                    p[k]["value"].as_f64().unwrap(),
                    p[k]["low"].as_f64().unwrap(),
                    p[k]["high"].as_f64().unwrap(),
                );
                assert!(0.0 <= lo && lo <= v && v <= hi, "{shop} {k} {p}");
            }
        }
        let b = &f["backtest"];
        assert_eq!(b["heldOutDays"], 28, "{f}");
        let (m, n) = (
            b["unitsWape"].as_f64().unwrap(),
            b["unitsSeasonalNaiveWape"].as_f64().unwrap(),
        );
        compared += 1;
        wins += usize::from(m < n);
        method_sum += m;
        naive_sum += n;
        println!(
            "shop {shop}: units WAPE {m:.3} vs seasonal naive {n:.3}; GMV {} vs {}",
            b["gmvWape"], b["gmvSeasonalNaiveWape"]
        );
    }
    assert!(compared >= 3);
    println!(
        "mean units WAPE {:.3} vs seasonal naive {:.3}; better in {wins} of {compared} shops",
        method_sum / compared as f64,
        naive_sum / compared as f64
    );
    assert!(
        method_sum < naive_sum,
        "Holt-Winters beats seasonal naive on average"
    );
    assert!(
        wins * 2 > compared,
        "and in most shops ({wins} of {compared})"
    );
}
