//! Importing the platforms' order exports: fixtures with each platform's documented
//! columns (Chinese text with commas, quotes and line breaks; UTF-8, GBK and .xlsx),
//! bad rows reported by number while good rows land, a second import changing
//! nothing, permissions and the audit entry, and the KPIs of imported orders against
//! SQL.

use serde_json::{json, Value};

use crate::helpers::TestApp;

async fn upload(app: &TestApp, token: Option<&str>, query: &str, body: Vec<u8>) -> (u16, Value) {
    let mut req = app
        .client
        .post(format!("{}/import/orders?{query}", app.address))
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

fn outcomes(answer: &Value) -> Vec<(u64, String, String)> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["orderNo"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn text(app: &TestApp, sql: &str) -> String {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct T {
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
    }
    diesel::sql_query(sql)
        .get_result::<T>(&mut app.conn())
        .unwrap()
        .t
}

/// 抖店's export: a BOM, one row per sub-order, a buyer note with a comma, quotes and a
/// line break, an address with a comma, an order of two lines, and one bad amount.
const DOUYIN: &str = "\u{feff}主订单编号,子订单编号,选购商品,商品ID,商品规格,商品数量,商品单价,订单应付金额,运费,支付方式,订单提交时间,支付完成时间,发货时间,订单状态,收件人,收件人手机号,省,市,详细地址,流量来源,达人ID,达人昵称,快递公司,快递单号,买家留言,买家昵称
\t6920001,\t6920001-1,\"保温杯 500ml, 不锈钢\",3001,白色,2,49.90,99.80,0.00,抖音支付,2026-11-18 20:15:03,2026-11-18 20:15:40,2026-11-19 09:00:00,已发货,张三,138****0001,浙江省,杭州市,\"西湖区文三路 1 号, 3 单元\",直播,dr_77,小美直播间,中通快递,ZT0001,\"请发\"\"中通\"\",
谢谢\",小张
\t6920001,\t6920001-2,杯刷,3002,默认,1,5.00,5.00,0.00,抖音支付,2026-11-18 20:15:03,2026-11-18 20:15:40,2026-11-19 09:00:00,已发货,张三,138****0001,浙江省,杭州市,\"西湖区文三路 1 号, 3 单元\",直播,dr_77,小美直播间,中通快递,ZT0001,,小张
\t6920002,\t6920002-1,保温杯 500ml,3001,黑色,1,49.90,49.90,6.00,支付宝,2026-11-19 10:00:00,2026-11-19 10:01:00,,待发货,李四,139****0002,广东,深圳市,南山区科技园,商品卡,,,,,,小李
\t6920003,\t6920003-1,保温杯 500ml,3001,黑色,1,abc,49.90,0.00,支付宝,2026-11-19 11:00:00,,,待付款,王五,137****0003,北京市,北京市,朝阳区,短视频,,,,,,小王
";

#[tokio::test]
async fn a_douyin_export_lands_with_statuses_amounts_provinces_channels_and_creators() {
    let app = TestApp::spawn(0).await;
    let owner = app.owner();
    let (status, answer) = upload(
        &app,
        Some(&owner),
        "platform=DOUYIN&shopId=1&filename=orders.csv",
        DOUYIN.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["summary"]["format"], "csv-utf8");
    assert_eq!(answer["summary"]["rows"], 4);
    assert_eq!(
        outcomes(&answer),
        vec![
            (2, "6920001".into(), "CREATED".into()),
            (4, "6920002".into(), "CREATED".into()),
            (5, "6920003".into(), "REJECTED".into()),
        ],
        "{answer}"
    );
    // The bad row is reported by its spreadsheet row (the quoted line break makes the
    // first order's first row two lines of the file) with the reason.
    let problem = &answer["problems"][0];
    assert_eq!(problem["row"], 5);
    assert!(
        problem["reason"]
            .as_str()
            .unwrap()
            .contains("\"abc\" is not an amount"),
        "{problem}"
    );

    // What landed: two lines, amounts in fen, the province code, channel, creator,
    // carrier, and the note with its comma, quotes and line break.
    let o = "(SELECT id FROM orders WHERE shop_id = 1 AND order_no = '6920001')";
    assert_eq!(
        app.sql_i64(&format!(
            "SELECT count(*) FROM order_items WHERE order_id = {o}"
        )),
        2
    );
    assert_eq!(
        app.sql_i64(&format!("SELECT paid_amount FROM orders WHERE id = {o}")),
        10_480
    );
    assert_eq!(
        app.sql_i64(&format!("SELECT goods_amount FROM orders WHERE id = {o}")),
        10_480
    );
    assert_eq!(text(&app, &format!("SELECT status || '|' || province_code || '|' || channel || '|' || payment_method AS t FROM orders WHERE id = {o}")), "SHIPPED|33|LIVE|DOUYIN_PAY");
    assert_eq!(text(&app, &format!("SELECT c.external_id || '|' || c.handle AS t FROM orders o JOIN creators c ON c.id = o.creator_id WHERE o.id = {o}")), "dr_77|小美直播间");
    assert_eq!(
        text(
            &app,
            &format!(
                "SELECT carrier || '|' || tracking_no AS t FROM shipments WHERE order_id = {o}"
            )
        ),
        "中通快递|ZT0001"
    );
    assert_eq!(
        text(
            &app,
            &format!("SELECT buyer_note AS t FROM orders WHERE id = {o}")
        ),
        "请发\"中通\",\n谢谢"
    );
    assert_eq!(
        text(
            &app,
            &format!("SELECT receiver_address AS t FROM orders WHERE id = {o}")
        ),
        "西湖区文三路 1 号, 3 单元"
    );
    assert_eq!(text(&app, "SELECT to_char(placed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI:SS') AS t FROM orders WHERE order_no = '6920001'"), "2026-11-18 20:15:03");
    let o2 = "(SELECT id FROM orders WHERE shop_id = 1 AND order_no = '6920002')";
    assert_eq!(text(&app, &format!("SELECT status || '|' || province_code || '|' || channel AS t FROM orders WHERE id = {o2}")), "AWAITING_SHIPMENT|44|SHOWCASE");
    assert_eq!(
        app.sql_i64(&format!("SELECT paid_amount FROM orders WHERE id = {o2}")),
        5_590
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM orders WHERE order_no = '6920003'"),
        0
    );

    // The same file again changes nothing; the bad row is still reported.
    let (_, again) = upload(
        &app,
        Some(&owner),
        "platform=DOUYIN&shopId=1",
        DOUYIN.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(again["summary"]["unchanged"], 2, "{again}");
    assert_eq!(again["summary"]["created"], 0);
    assert_eq!(again["summary"]["rejected"], 1);

    // The import is audited with its counts.
    assert_eq!(app.sql_i64("SELECT count(*) FROM audit_log WHERE action = 'importOrders' AND target = 'shop:1' AND (details->'summary'->>'created')::int = 2 AND details->>'filename' = 'orders.csv'"), 1);

    // The imported orders are in the analytics at once, equal to SQL.
    let data = app
        .data(&owner, "{ kpis(range: {from: \"2026-11-18\", to: \"2026-11-19\"}, metrics: [ORDERS, PAID_ORDERS, GMV, BUYERS], filter: {shopIds: [\"1\"]}) { values { metric value } } }", json!({}))
        .await;
    let got: Vec<f64> = data["kpis"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_f64().unwrap())
        .collect();
    assert_eq!(got, vec![2.0, 2.0, 160.7, 2.0], "{data}");
}

#[tokio::test]
async fn a_gbk_taobao_report_and_permissions_and_wrong_shops() {
    let app = TestApp::spawn(0).await;
    // 千牛 已卖出的宝贝 订单报表 in GBK: one row per order, the province inside the address.
    let report = "订单编号,买家会员名,买家应付货款,买家应付邮费,买家实际支付金额,订单状态,买家留言,收货人姓名,收货地址,联系手机,订单创建时间,订单付款时间,宝贝标题,宝贝总数量,商家编码,物流公司,物流单号,发货时间
3001234567890,tb_buyer1,198.00,10.00,188.00,交易成功,\"尽快, 谢谢\",赵六,江苏省 南京市 鼓楼区 中山路 1 号,135****0004,2026-11-10 08:00:00,2026-11-10 08:05:00,羊毛围巾 加厚,2,SCARF-01,顺丰速运,SF0004,2026-11-10 18:00:00
3001234567891,tb_buyer2,99.00,0.00,99.00,等待卖家发货,,钱七,上海 上海市 浦东新区 张江路 2 号,136****0005,2026-11-11 09:00:00,2026-11-11 09:01:00,羊毛手套,1,GLOVE-01,,,
";
    let (gbk, _, lossy) = encoding_rs::GBK.encode(report);
    assert!(!lossy);
    let owner2 = app.token(3, 2);
    let (status, answer) =
        upload(&app, Some(&owner2), "platform=TMALL&shopId=3", gbk.to_vec()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["summary"]["format"], "csv-gbk");
    assert_eq!(answer["summary"]["created"], 2, "{answer}");
    assert_eq!(text(&app, "SELECT status || '|' || province_code || '|' || paid_amount || '|' || discount_amount || '|' || buyer_id AS t FROM orders WHERE order_no = '3001234567890'"), "COMPLETED|32|18800|2000|tb_buyer1");
    assert_eq!(text(&app, "SELECT province_code || '|' || status AS t FROM orders WHERE order_no = '3001234567891'"), "31|AWAITING_SHIPMENT");
    assert_eq!(text(&app, "SELECT i.sku || '|' || i.quantity || '|' || i.paid_amount AS t FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.order_no = '3001234567890'"), "SCARF-01|2|17800");

    // Without a token, without ORDERS_WRITE, another tenant's shop, the wrong platform.
    let (status, body) = upload(&app, None, "platform=TMALL&shopId=3", gbk.to_vec()).await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let viewer = app.token(2, 1);
    let (status, body) = upload(
        &app,
        Some(&viewer),
        "platform=DOUYIN&shopId=1",
        DOUYIN.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (403, Some("FORBIDDEN"))
    );
    let (status, body) = upload(
        &app,
        Some(&app.owner()),
        "platform=TMALL&shopId=3",
        gbk.to_vec(),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (400, Some("NOT_FOUND"))
    );
    let (status, body) = upload(
        &app,
        Some(&app.owner()),
        "platform=TMALL&shopId=1",
        gbk.to_vec(),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (400, Some("BAD_USER_INPUT")),
        "{body}"
    );
    // A file without the platform's columns says which it expected.
    let (status, body) = upload(
        &app,
        Some(&app.owner()),
        "platform=DOUYIN&shopId=1",
        b"a,b\n1,2\n".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("主订单编号"),
        "{body}"
    );
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM orders WHERE shop_id = 1"),
        0
    );
}

#[tokio::test]
async fn tiktok_xlsx_and_kuaishou_exports_land() {
    let app = TestApp::spawn(0).await;
    let owner = app.owner();
    // TikTok Shop's export as .xlsx, US times in the shop's zone, one row per SKU.
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let rows: &[&[&str]] = &[
        &[
            "Order ID",
            "Order Status",
            "SKU ID",
            "Seller SKU",
            "Product Name",
            "Quantity",
            "SKU Unit Original Price",
            "SKU Subtotal After Discount",
            "Shipping Fee After Discount",
            "Order Amount",
            "Created Time",
            "Paid Time",
            "Shipped Time",
            "Delivered Time",
            "Tracking ID",
            "Shipping Provider Name",
            "Buyer Username",
            "Recipient",
            "State",
            "Payment Method",
            "Buyer Message",
        ],
        &[
            "577001",
            "Delivered",
            "1729001",
            "MUG-W",
            "Ceramic mug, white",
            "2",
            "12.50",
            "25.00",
            "3.99",
            "28.99",
            "11/15/2026 07:30:00 PM",
            "11/15/2026 07:31:10 PM",
            "11/16/2026 10:00:00 AM",
            "11/18/2026 02:00:00 PM",
            "9400111",
            "USPS",
            "amy_k",
            "Amy K",
            "California",
            "Credit card",
            "Gift \"wrap\", please",
        ],
        &[
            "577002",
            "Awaiting Shipment",
            "1729002",
            "MUG-B",
            "Ceramic mug, black",
            "1",
            "12.50",
            "12.50",
            "0",
            "12.50",
            "11/19/2026 08:00:00 AM",
            "11/19/2026 08:00:30 AM",
            "",
            "",
            "",
            "",
            "bob_r",
            "Bob R",
            "Texas",
            "PayPal",
            "",
        ],
    ];
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            if !v.is_empty() {
                sheet.write_string(r as u32, c as u16, *v).unwrap();
            }
        }
    }
    let xlsx = book.save_to_buffer().unwrap();
    let (status, answer) = upload(&app, Some(&owner), "platform=TIKTOK&shopId=2", xlsx).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["summary"]["format"], "xlsx");
    assert_eq!(
        outcomes(&answer),
        vec![
            (2, "577001".into(), "CREATED".into()),
            (3, "577002".into(), "CREATED".into())
        ],
        "{answer}"
    );
    assert_eq!(text(&app, "SELECT status || '|' || paid_amount || '|' || coalesce(province_code, '-') || '|' || to_char(placed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS t FROM orders WHERE order_no = '577001'"), "DELIVERED|2899|-|2026-11-16 03:30");
    assert_eq!(text(&app, "SELECT carrier AS t FROM shipments s JOIN orders o ON o.id = s.order_id WHERE o.order_no = '577001'"), "USPS");

    // 快手小店 into a Kuaishou shop of tenant 1.
    app.conn_exec("INSERT INTO shops (id, tenant_id, platform, external_id, name, currency, timezone) VALUES (4, 1, 'KUAISHOU', 'ks1', '快手店', 'CNY', 'Asia/Shanghai')");
    let ks = "订单号,订单状态,商品ID,商品名称,商品数量,商品单价,实付款,运费,订单创建时间,订单支付时间,收货人,省,市,收货地址,达人ID,达人昵称,成交渠道,买家ID
KS900001,待发货,88001,\"坚果礼盒, 1kg\",1,128.00,118.00,0,2026-11-20 12:00:00,2026-11-20 12:00:05,孙八,四川省,成都市,\"武侯区 \"\"天府\"\" 大道\",ks_dr1,阿坚,直播间,ks_b1
";
    let (status, answer) = upload(
        &app,
        Some(&owner),
        "platform=KUAISHOU&shopId=4",
        ks.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["summary"]["created"], 1, "{answer}");
    assert_eq!(text(&app, "SELECT status || '|' || province_code || '|' || channel || '|' || paid_amount || '|' || discount_amount AS t FROM orders WHERE order_no = 'KS900001'"), "AWAITING_SHIPMENT|51|LIVE|11800|1000");
}
