//! `orderscope seed`: a deterministic, realistic dataset loaded with COPY.
//!
//! The same arguments (including `--end-date`) always produce the same rows. Orders are
//! generated day by day with a weekly rhythm and campaign peaks (618, Double 11,
//! Double 12), spread over shops on several platforms and currencies, with the channel
//! mix, long-tail creators, coastal-weighted provinces, unpaid and cancelled orders,
//! refunds by category, disputes, and shipping and delivery times of real shops.
//!
//! Loading into an empty database drops the secondary indexes and foreign keys of the
//! bulk tables, streams the rows with COPY from a generator thread, then rebuilds the
//! indexes and re-validates the keys: the standard bulk-load recipe, which keeps the
//! 10-million-order dataset within minutes on two cores.

use std::fmt::Write as _;
use std::sync::mpsc;
use std::time::Instant;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Offset, TimeZone, Utc, Weekday};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::db::schema::{after_sales, order_items, orders, shipments};
use crate::domain::{raw_status_for, OrderStatus, Platform, RolePreset};

/// Arguments of `orderscope seed`.
#[derive(clap::Args, Debug, Clone)]
pub struct SeedArgs {
    /// Number of orders to generate.
    #[arg(long, default_value_t = 50_000)]
    pub orders: u64,
    /// Number of shops (spread over Douyin, Tmall, Kuaishou and a USD TikTok shop).
    #[arg(long, default_value_t = 8)]
    pub shops: u32,
    /// Days of history, ending at `--end-date`.
    #[arg(long, default_value_t = 120)]
    pub days: u32,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Last day of data (Asia/Shanghai). Defaults to yesterday, so the demo is recent;
    /// pass it to make a run reproducible across days.
    #[arg(long)]
    pub end_date: Option<NaiveDate>,
    /// Products in all (at least 5 per shop).
    #[arg(long)]
    pub products: Option<u32>,
    /// Creators in all.
    #[arg(long)]
    pub creators: Option<u32>,
    /// Seed only when the database holds no tenant yet (for `scripts/run`).
    #[arg(long)]
    pub if_empty: bool,
}

/// SplitMix64: tiny, fast and stable across versions, so a seed means the same data
/// forever.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo).max(1) as u64)) as i64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }
    /// Index into cumulative weights.
    fn pick(&mut self, cumulative: &[f64]) -> usize {
        let x = self.f() * cumulative[cumulative.len() - 1];
        cumulative
            .partition_point(|c| *c <= x)
            .min(cumulative.len() - 1)
    }
    /// Long-tail index in [0, n): small indexes are much more likely.
    fn skewed(&mut self, n: usize, power: f64) -> usize {
        ((self.f().powf(power) * n as f64) as usize).min(n.saturating_sub(1))
    }
}

fn cumulative(weights: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

/// Provinces with their weight (coastal provinces buy most) and a city.
const PROVINCES: &[(&str, f64, &str, &str)] = &[
    ("44", 14.0, "广东省", "广州市"),
    ("33", 9.0, "浙江省", "杭州市"),
    ("32", 9.0, "江苏省", "南京市"),
    ("31", 6.0, "上海市", "上海市"),
    ("37", 7.0, "山东省", "济南市"),
    ("35", 5.0, "福建省", "福州市"),
    ("11", 5.0, "北京市", "北京市"),
    ("51", 5.0, "四川省", "成都市"),
    ("42", 4.0, "湖北省", "武汉市"),
    ("41", 5.0, "河南省", "郑州市"),
    ("43", 4.0, "湖南省", "长沙市"),
    ("34", 3.5, "安徽省", "合肥市"),
    ("13", 3.5, "河北省", "石家庄市"),
    ("50", 2.5, "重庆市", "重庆市"),
    ("61", 2.5, "陕西省", "西安市"),
    ("36", 2.5, "江西省", "南昌市"),
    ("45", 2.5, "广西壮族自治区", "南宁市"),
    ("21", 2.5, "辽宁省", "沈阳市"),
    ("53", 2.0, "云南省", "昆明市"),
    ("12", 1.5, "天津市", "天津市"),
    ("14", 1.5, "山西省", "太原市"),
    ("52", 1.5, "贵州省", "贵阳市"),
    ("23", 1.5, "黑龙江省", "哈尔滨市"),
    ("22", 1.0, "吉林省", "长春市"),
    ("15", 1.0, "内蒙古自治区", "呼和浩特市"),
    ("62", 0.8, "甘肃省", "兰州市"),
    ("65", 0.8, "新疆维吾尔自治区", "乌鲁木齐市"),
    ("46", 0.7, "海南省", "海口市"),
    ("64", 0.3, "宁夏回族自治区", "银川市"),
    ("63", 0.3, "青海省", "西宁市"),
    ("54", 0.2, "西藏自治区", "拉萨市"),
    ("81", 0.3, "香港特别行政区", "香港"),
    ("82", 0.1, "澳门特别行政区", "澳门"),
    ("71", 0.1, "台湾省", "台北市"),
];

/// Categories with their share of products, price range (fen) and refund probability.
const CATEGORIES: &[(&str, f64, i64, i64, f64)] = &[
    ("服装", 0.28, 5_900, 39_900, 0.18),
    ("鞋靴", 0.10, 9_900, 59_900, 0.14),
    ("美妆", 0.18, 4_900, 49_900, 0.06),
    ("食品", 0.16, 1_990, 15_900, 0.03),
    ("数码", 0.10, 9_900, 399_900, 0.08),
    ("家居", 0.10, 2_990, 49_900, 0.05),
    ("母婴", 0.08, 3_990, 29_900, 0.04),
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "欧阳",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平",
];
const NICK_A: &[&str] = &[
    "快乐", "小", "爱吃", "追光", "甜甜", "阿", "喵喵", "星空", "柠檬", "晴天",
];
const NICK_B: &[&str] = &[
    "的猫", "鱼", "桃子", "少年", "酱", "兔", "饭团", "Lucy", "momo", "宝宝",
];
const NOTES: &[&str] = &[
    "请尽快发货",
    "不要放快递柜，谢谢",
    "送人的，请不要放发票",
    "颜色要黑色, \"加急\"",
    "周末送货",
];
const CARRIERS: &[(&str, &str)] = &[
    ("顺丰速运", "SF"),
    ("中通快递", "ZTO"),
    ("圆通速递", "YT"),
    ("韵达快递", "YD"),
    ("极兔速递", "JT"),
    ("京东物流", "JDL"),
];
const SHOP_PLATFORMS: &[Platform] = &[
    Platform::Douyin,
    Platform::Tmall,
    Platform::Kuaishou,
    Platform::Tiktok,
];

struct Shop {
    id: i64,
    tenant_id: i64,
    platform: Platform,
    currency: &'static str,
    timezone: chrono_tz::Tz,
    products: Vec<Product>,
    product_weights: Vec<f64>,
}

struct Product {
    id: i64,
    price: i64,
    refund_rate: f64,
}

/// Escapes a value for COPY's text format.
fn esc(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn ts(out: &mut String, at: Option<DateTime<Utc>>) {
    match at {
        Some(at) => {
            let _ = write!(out, "{}", at.format("%Y-%m-%d %H:%M:%S%.6f+00"));
        }
        None => out.push_str("\\N"),
    }
}

fn opt(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => esc(out, v),
        None => out.push_str("\\N"),
    }
}

/// One chunk of generated rows in COPY text format, one buffer per table.
#[derive(Default)]
struct Chunk {
    orders: String,
    items: String,
    after_sales: String,
    shipments: String,
    order_count: u64,
}

/// How much of each kind the generator wrote.
#[derive(Default, Debug)]
struct Totals {
    orders: u64,
    items: u64,
    after_sales: u64,
    shipments: u64,
}

/// Daily volume factor: weekly rhythm, campaign peaks and gentle growth.
fn day_weight(day: NaiveDate, index: u32, days: u32) -> f64 {
    let weekday = match day.weekday() {
        Weekday::Mon => 0.92,
        Weekday::Tue | Weekday::Wed | Weekday::Thu => 0.95,
        Weekday::Fri => 1.0,
        Weekday::Sat | Weekday::Sun => 1.15,
    };
    let (m, d) = (day.month(), day.day());
    let campaign = match (m, d) {
        (6, 18) => 4.0,
        (6, 1..=17) => 1.5,
        (11, 11) => 6.0,
        (11, 1..=10) => 1.6,
        (12, 12) => 2.2,
        _ => 1.0,
    };
    let growth = 0.8 + 0.4 * f64::from(index) / f64::from(days.max(1));
    weekday * campaign * growth
}

/// Share of orders per local hour: quiet nights, an evening peak for live commerce.
const HOURS: [f64; 24] = [
    2.0, 1.2, 0.7, 0.4, 0.3, 0.3, 0.6, 1.2, 2.2, 3.2, 4.0, 4.2, 4.4, 4.0, 3.8, 3.8, 4.0, 4.2, 4.8,
    5.6, 7.0, 8.0, 7.5, 4.5,
];

/// Runs the seed and returns a short report.
pub fn run(database_url: &str, args: &SeedArgs) -> anyhow::Result<String> {
    let started = Instant::now();
    crate::db::ensure_database(database_url)?;
    let mut conn = PgConnection::establish(database_url)?;
    crate::db::migrate(&mut conn)?;
    let tenants: i64 = crate::db::schema::tenants::table
        .count()
        .get_result(&mut conn)?;
    if tenants > 0 {
        if args.if_empty {
            return Ok("database already holds data; seed skipped".into());
        }
        anyhow::bail!("the database already holds data: seed loads into an empty database only");
    }
    if args.shops == 0 || args.days == 0 {
        anyhow::bail!("--shops and --days must be positive");
    }
    let shanghai = chrono_tz::Asia::Shanghai;
    let end_date = args
        .end_date
        .unwrap_or_else(|| Utc::now().with_timezone(&shanghai).date_naive() - Duration::days(1));
    let start_date = end_date - Duration::days(i64::from(args.days) - 1);
    // "Now" of the dataset: the end of its last day. Nothing happens after it.
    let as_of = shanghai
        .from_local_datetime(
            &(end_date + Duration::days(1))
                .and_hms_opt(0, 0, 0)
                .expect("midnight"),
        )
        .single()
        .expect("Shanghai has no DST")
        .with_timezone(&Utc);

    let mut rng = Rng(args.seed);
    // orderscope.bulk_load: the change-log triggers skip the bulk rows; one 'r' entry
    // tells every node to reload instead.
    conn.batch_execute(
        "SET statement_timeout = 0; SET maintenance_work_mem = '512MB'; SET work_mem = '256MB'; \
         SET synchronous_commit = off; SET orderscope.bulk_load = on",
    )?;
    let report = conn.transaction::<_, anyhow::Error, _>(|conn| {
        let shops = seed_reference(conn, &mut rng, args, start_date, end_date)?;
        let saved = drop_bulk_constraints(conn, BULK_TABLES)?;
        let generated = Instant::now();
        let totals = load_orders(conn, &shops, args, start_date, as_of)?;
        let loaded = generated.elapsed();
        let rebuild = Instant::now();
        restore_bulk_constraints(conn, &saved)?;
        // Every node's analytic store reloads from the tables once this commits
        // (the rows themselves are not in the change log).
        conn.batch_execute("INSERT INTO change_log (kind, id) VALUES ('r', 0)")?;
        conn.batch_execute(
            "SELECT setval('orders_id_seq', (SELECT coalesce(max(id), 1) FROM orders)); \
             SELECT setval('after_sales_id_seq', (SELECT coalesce(max(id), 1) FROM after_sales));",
        )?;
        Ok(format!(
            "seeded {} orders, {} items, {} after-sales, {} shipments in {} shops ({} to {}); \
             rows {:.1}s, indexes and keys {:.1}s",
            totals.orders,
            totals.items,
            totals.after_sales,
            totals.shipments,
            shops.len(),
            start_date,
            end_date,
            loaded.as_secs_f64(),
            rebuild.elapsed().as_secs_f64()
        ))
    })?;
    // Statistics for every table once the load is committed.
    conn.batch_execute("ANALYZE")?;
    Ok(format!(
        "{report}; total {:.1}s",
        started.elapsed().as_secs_f64()
    ))
}

/// Tenants, accounts, shops, products, creators and fx rates.
fn seed_reference(
    conn: &mut PgConnection,
    rng: &mut Rng,
    args: &SeedArgs,
    start: NaiveDate,
    end: NaiveDate,
) -> anyhow::Result<Vec<Shop>> {
    conn.batch_execute(
        "INSERT INTO tenants (id, name) VALUES (1, '示例品牌旗舰 Demo Brand'), (2, '另一商家 Other Merchant');
         SELECT setval('tenants_id_seq', 2);",
    )?;
    // Tenant 2 gets every fifth shop, so two tenants share the database from the start
    // and each has shops on several platforms and currencies.
    let mut shops = Vec::new();
    let mut sql = String::from("INSERT INTO shops (id, tenant_id, platform, external_id, name, currency, timezone) VALUES ");
    for i in 0..args.shops {
        let id = i64::from(i) + 1;
        let tenant = if i % 5 == 4 && args.shops > 1 { 2 } else { 1 };
        let platform = SHOP_PLATFORMS[i as usize % SHOP_PLATFORMS.len()];
        let (currency, timezone) = if platform == Platform::Tiktok {
            ("USD", chrono_tz::America::Los_Angeles)
        } else {
            ("CNY", chrono_tz::Asia::Shanghai)
        };
        let name = match platform {
            Platform::Douyin => format!("抖音旗舰店 {id}"),
            Platform::Tmall => format!("天猫旗舰店 {id}"),
            Platform::Kuaishou => format!("快手小店 {id}"),
            Platform::Tiktok => format!("TikTok US Store {id}"),
            _ => format!("Shop {id}"),
        };
        if i > 0 {
            sql.push(',');
        }
        let _ = write!(
            sql,
            "({id}, {tenant}, '{platform}', '{}{:06}', '{name}', '{currency}', '{}')",
            platform.as_str().to_lowercase(),
            100_000 + id,
            timezone.name()
        );
        shops.push(Shop {
            id,
            tenant_id: tenant,
            platform,
            currency,
            timezone,
            products: Vec::new(),
            product_weights: Vec::new(),
        });
    }
    sql.push_str(&format!("; SELECT setval('shops_id_seq', {});", args.shops));
    conn.batch_execute(&sql)?;

    // Accounts: an owner per tenant, and the sub-account presets of the seed wording.
    let mut sql = String::from(
        "INSERT INTO accounts (tenant_id, name, is_owner, permissions, shop_ids) VALUES ",
    );
    let presets = [
        (RolePreset::Viewer, "仅查看"),
        (RolePreset::AfterSales, "处理售后"),
        (RolePreset::Shipping, "发货权限"),
        (RolePreset::Analyst, "数据分析"),
        (RolePreset::Integration, "订单同步"),
    ];
    let mut rows = Vec::new();
    for tenant in 1..=2 {
        rows.push(format!("({tenant}, '店主 Owner', true, '{{}}', '{{}}')"));
        let first_shop = shops.iter().find(|s| s.tenant_id == tenant).map(|s| s.id);
        for (preset, label) in presets {
            let perms: Vec<&str> = preset.permissions().iter().map(|p| p.as_str()).collect();
            // The shipping account only works one shop: sub-accounts can be narrowed.
            let scope = match (preset, first_shop) {
                (RolePreset::Shipping, Some(id)) => format!("{{{id}}}"),
                _ => "{}".to_string(),
            };
            rows.push(format!(
                "({tenant}, '{label}', false, '{{{}}}', '{scope}')",
                perms.join(",")
            ));
        }
    }
    sql.push_str(&rows.join(","));
    conn.batch_execute(&sql)?;

    // Products: categories with their own prices and refund rates, skewed popularity.
    let total_products = args
        .products
        .unwrap_or((args.shops * 100).min(2_000))
        .max(args.shops * 5);
    let cat_cum = cumulative(&CATEGORIES.iter().map(|c| c.1).collect::<Vec<_>>());
    let mut copy = String::new();
    let mut next_id = 1i64;
    for (s, shop) in shops.iter_mut().enumerate() {
        let count =
            total_products / args.shops + u32::from((s as u32) < total_products % args.shops);
        for k in 0..count {
            let (category, _, lo, hi, refund) = CATEGORIES[rng.pick(&cat_cum)];
            let price = (rng.range(lo, hi) / 100) * 100 - 10;
            let title = format!("{category}爆款 {}-{:03}", shop.id, k + 1);
            let _ = writeln!(
                copy,
                "{next_id}\t{}\tp{}_{k}\t{title}\t{category}\t{price}",
                shop.id, shop.id
            );
            shop.products.push(Product {
                id: next_id,
                price,
                refund_rate: refund,
            });
            shop.product_weights.push(1.0 / (f64::from(k) + 3.0));
            next_id += 1;
        }
        shop.product_weights = cumulative(&shop.product_weights);
    }
    copy_text(
        conn,
        "products",
        "id, shop_id, external_id, title, category, list_price",
        copy,
    )?;
    conn.batch_execute(&format!(
        "SELECT setval('products_id_seq', {})",
        next_id - 1
    ))?;

    // Creators: per platform, followers on a long tail.
    let total_creators = args
        .creators
        .unwrap_or(((args.orders / 2_000) as u32).clamp(20, 5_000));
    let mut copy = String::new();
    for c in 0..total_creators {
        let platform = SHOP_PLATFORMS[c as usize % SHOP_PLATFORMS.len()];
        let rank = c / SHOP_PLATFORMS.len() as u32;
        let followers =
            (20_000_000.0 / (f64::from(rank) + 1.0).powf(1.1)) as i64 + rng.range(0, 5_000);
        let handle = format!(
            "{}{}_{}",
            NICK_A[c as usize % NICK_A.len()],
            NICK_B[(c as usize / 7) % NICK_B.len()],
            c + 1
        );
        let _ = writeln!(
            copy,
            "{}\t{platform}\tc{}\t{handle}\t达人 {handle}\t{followers}",
            c + 1,
            c + 1
        );
    }
    copy_text(
        conn,
        "creators",
        "id, platform, external_id, handle, display_name, followers",
        copy,
    )?;
    conn.batch_execute(&format!(
        "SELECT setval('creators_id_seq', {})",
        total_creators.max(1)
    ))?;

    // FX: a daily USD rate with a small random walk, from 400 days before the range (so
    // year-on-year comparisons convert) to two weeks after it.
    let mut copy = String::new();
    let mut rate = 7.10f64;
    let mut day = start - Duration::days(400);
    while day <= end + Duration::days(14) {
        rate = (rate + (rng.f() - 0.5) * 0.02).clamp(6.8, 7.4);
        let _ = writeln!(copy, "{day}\tUSD\t{rate:.6}");
        day += Duration::days(1);
    }
    copy_text(conn, "fx_rates", "day, currency, rate_to_cny", copy)?;
    Ok(shops)
}

fn copy_text(
    conn: &mut PgConnection,
    table: &str,
    columns: &str,
    data: String,
) -> anyhow::Result<()> {
    // Reference tables are small: a plain COPY statement through the raw connection.
    let sql = format!("COPY {table} ({columns}) FROM STDIN");
    copy_raw(conn, &sql, data.as_bytes())
}

/// Streams bytes into `COPY ... FROM STDIN` with Diesel's COPY support.
fn copy_raw(conn: &mut PgConnection, sql: &str, data: &[u8]) -> anyhow::Result<()> {
    match sql {
        s if s.starts_with("COPY products") => {
            use crate::db::schema::products::dsl::*;
            diesel::copy_from(products)
                .from_raw_data(
                    (id, shop_id, external_id, title, category, list_price),
                    |w| io_to_diesel(w.write_all(data)),
                )
                .execute(conn)?;
        }
        s if s.starts_with("COPY creators") => {
            use crate::db::schema::creators::dsl::*;
            diesel::copy_from(creators)
                .from_raw_data(
                    (id, platform, external_id, handle, display_name, followers),
                    |w| io_to_diesel(w.write_all(data)),
                )
                .execute(conn)?;
        }
        s if s.starts_with("COPY fx_rates") => {
            use crate::db::schema::fx_rates::dsl::*;
            diesel::copy_from(fx_rates)
                .from_raw_data((day, currency, rate_to_cny), |w| {
                    io_to_diesel(w.write_all(data))
                })
                .execute(conn)?;
        }
        other => anyhow::bail!("no COPY target for {other}"),
    }
    Ok(())
}

/// COPY callbacks must fail with a Diesel error.
fn io_to_diesel(result: std::io::Result<()>) -> Result<(), diesel::result::Error> {
    result.map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

/// Index and foreign-key definitions of the bulk tables, dropped for the load.
#[derive(QueryableByName)]
struct Definition {
    #[diesel(sql_type = Text)]
    drop_sql: String,
    #[diesel(sql_type = Text)]
    create_sql: String,
    #[diesel(sql_type = BigInt)]
    kind: i64,
}

const BULK_TABLES: &str = "'orders','order_items','after_sales','shipments'";

/// Drops the foreign keys and secondary indexes of `tables` (a quoted SQL list),
/// returning their definitions.
fn drop_bulk_constraints(conn: &mut PgConnection, tables: &str) -> anyhow::Result<Vec<Definition>> {
    let sql = format!(
        "SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', c.conrelid::regclass::text, c.conname) AS drop_sql,
                format('ALTER TABLE %I ADD CONSTRAINT %I %s', c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)) AS create_sql,
                1::bigint AS kind
           FROM pg_constraint c
          WHERE c.contype = 'f' AND c.conrelid::regclass::text IN ({tables})
         UNION ALL
         SELECT format('DROP INDEX %I', i.indexname), i.indexdef, 0::bigint
           FROM pg_indexes i
          WHERE i.schemaname = 'public' AND i.tablename IN ({tables})
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
    );
    let defs: Vec<Definition> = diesel::sql_query(sql).load(conn)?;
    // Keys first (they depend on the unique indexes), then the indexes.
    for def in defs
        .iter()
        .filter(|d| d.kind == 1)
        .chain(defs.iter().filter(|d| d.kind == 0))
    {
        conn.batch_execute(&def.drop_sql)?;
    }
    Ok(defs)
}

fn restore_bulk_constraints(conn: &mut PgConnection, defs: &[Definition]) -> anyhow::Result<()> {
    for def in defs
        .iter()
        .filter(|d| d.kind == 0)
        .chain(defs.iter().filter(|d| d.kind == 1))
    {
        conn.batch_execute(&def.create_sql)?;
    }
    Ok(())
}

/// Generates orders on a thread and COPYs each chunk as it arrives.
fn load_orders(
    conn: &mut PgConnection,
    shops: &[Shop],
    args: &SeedArgs,
    start: NaiveDate,
    as_of: DateTime<Utc>,
) -> anyhow::Result<Totals> {
    let (tx, rx) = mpsc::sync_channel::<Chunk>(2);
    let mut totals = Totals::default();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let generator = scope.spawn(|| generate(shops, args, start, as_of, tx));
        for chunk in rx {
            totals.orders += chunk.order_count;
            diesel::copy_from(orders::table)
                .from_raw_data(orders::table, |w| {
                    io_to_diesel(w.write_all(chunk.orders.as_bytes()))
                })
                .execute(conn)?;
            diesel::copy_from(order_items::table)
                .from_raw_data(order_items::table, |w| {
                    io_to_diesel(w.write_all(chunk.items.as_bytes()))
                })
                .execute(conn)?;
            // The generated columns; a resolution note is only written by a seller.
            let generated = (
                after_sales::id,
                after_sales::order_id,
                after_sales::external_id,
                after_sales::kind,
                after_sales::status,
                after_sales::reason,
                after_sales::refund_amount,
                after_sales::requested_at,
                after_sales::resolved_at,
                after_sales::dispute,
            );
            diesel::copy_from(after_sales::table)
                .from_raw_data(generated, |w| {
                    io_to_diesel(w.write_all(chunk.after_sales.as_bytes()))
                })
                .execute(conn)?;
            diesel::copy_from(shipments::table)
                .from_raw_data(shipments::table, |w| {
                    io_to_diesel(w.write_all(chunk.shipments.as_bytes()))
                })
                .execute(conn)?;
        }
        let counts = generator
            .join()
            .map_err(|_| anyhow::anyhow!("generator panicked"))?;
        totals.items = counts.items;
        totals.after_sales = counts.after_sales;
        totals.shipments = counts.shipments;
        Ok(())
    })?;
    Ok(totals)
}

const CHUNK_ORDERS: u64 = 100_000;

fn generate(
    shops: &[Shop],
    args: &SeedArgs,
    start: NaiveDate,
    as_of: DateTime<Utc>,
    tx: mpsc::SyncSender<Chunk>,
) -> Totals {
    let mut rng = Rng(args.seed ^ 0x5EED_0F0D_E125);
    let mut totals = Totals::default();
    let day_weights: Vec<f64> = (0..args.days)
        .map(|i| day_weight(start + Duration::days(i64::from(i)), i, args.days))
        .collect();
    let weight_sum: f64 = day_weights.iter().sum();
    let shop_cum = cumulative(
        &shops
            .iter()
            .enumerate()
            .map(|(i, _)| 1.0 / ((i as f64) + 1.0).sqrt())
            .collect::<Vec<_>>(),
    );
    let hour_cum = cumulative(&HOURS);
    let prov_cum = cumulative(&PROVINCES.iter().map(|p| p.1).collect::<Vec<_>>());
    let creators_per_platform = (args
        .creators
        .unwrap_or(((args.orders / 2_000) as u32).clamp(20, 5_000))
        as usize
        / SHOP_PLATFORMS.len())
    .max(1);
    let buyers = (args.orders / 3).max(10) as usize;
    let mut chunk = Chunk::default();
    let mut order_id = 0i64;
    let mut after_sale_id = 0i64;
    let mut carried = 0.0f64;
    for (d, weight) in day_weights.iter().enumerate() {
        let day = start + Duration::days(d as i64);
        // Carry fractions so that the total is exactly --orders.
        let exact = args.orders as f64 * weight / weight_sum + carried;
        let mut count = exact.floor() as u64;
        carried = exact - count as f64;
        if d + 1 == day_weights.len() {
            count = args.orders - totals.orders;
        }
        // Offsets per shop for this day (DST-aware for the US shop).
        let offsets: Vec<i64> = shops
            .iter()
            .map(|s| {
                let noon = day.and_hms_opt(12, 0, 0).expect("noon");
                s.timezone
                    .offset_from_utc_datetime(&noon)
                    .fix()
                    .local_minus_utc() as i64
            })
            .collect();
        let day_start = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        for _ in 0..count {
            order_id += 1;
            totals.orders += 1;
            chunk.order_count += 1;
            let s = rng.pick(&shop_cum);
            let shop = &shops[s];
            let local_secs = rng.pick(&hour_cum) as i64 * 3600 + rng.range(0, 3600);
            let placed = day_start
                + Duration::seconds(local_secs - offsets[s])
                + Duration::microseconds(rng.range(0, 1_000_000));
            write_order(
                &mut chunk,
                &mut rng,
                &mut totals,
                &mut after_sale_id,
                order_id,
                shop,
                placed,
                as_of,
                &prov_cum,
                creators_per_platform,
                buyers,
            );
            if chunk.order_count >= CHUNK_ORDERS && tx.send(std::mem::take(&mut chunk)).is_err() {
                return totals;
            }
        }
    }
    if chunk.order_count > 0 {
        let _ = tx.send(chunk);
    }
    totals
}

#[allow(clippy::too_many_arguments)]
fn write_order(
    chunk: &mut Chunk,
    rng: &mut Rng,
    totals: &mut Totals,
    after_sale_id: &mut i64,
    id: i64,
    shop: &Shop,
    placed: DateTime<Utc>,
    as_of: DateTime<Utc>,
    prov_cum: &[f64],
    creators_per_platform: usize,
    buyers: usize,
) {
    let min = |m: i64| Duration::minutes(m);
    let platform = shop.platform;
    // Channel mix: shelf ~36 %, merchant live ~26 %, creator live ~26 %, short video, ads.
    let roll = rng.f();
    let (channel, with_creator) = match roll {
        r if r < 0.36 => ("SHELF", false),
        r if r < 0.62 => ("LIVE", false),
        r if r < 0.88 => ("LIVE", true),
        r if r < 0.95 => ("SHORT_VIDEO", rng.chance(0.6)),
        _ => ("ADS", false),
    };
    let platform_index = SHOP_PLATFORMS
        .iter()
        .position(|p| *p == platform)
        .unwrap_or(0);
    let creator_id = with_creator.then(|| {
        let rank = rng.skewed(creators_per_platform, 3.0);
        (rank * SHOP_PLATFORMS.len() + platform_index + 1) as i64
    });

    // Items and amounts.
    let lines = match rng.f() {
        r if r < 0.7 => 1,
        r if r < 0.9 => 2,
        _ => 3,
    };
    let mut items: Vec<(i64, i64, i64, f64)> = Vec::with_capacity(lines);
    for _ in 0..lines {
        let p = &shop.products[rng.pick(&shop.product_weights)];
        let quantity = match rng.f() {
            r if r < 0.8 => 1,
            r if r < 0.95 => 2,
            _ => 3,
        };
        let unit = p.price * rng.range(80, 101) / 100;
        items.push((p.id, quantity, unit, p.refund_rate));
    }
    let goods: i64 = items.iter().map(|i| i.1 * i.2).sum();
    let discount = if rng.chance(0.5) {
        goods * rng.range(0, 21) / 100
    } else {
        0
    };
    let shipping = if rng.chance(0.8) {
        0
    } else {
        rng.range(6, 13) * 100
    };
    let paid_total = goods - discount + shipping;
    let refund_rate = items.iter().map(|i| i.3).fold(0.0, f64::max);

    // Lifecycle relative to the dataset's "now".
    let unpaid = rng.chance(0.08);
    let mut status = OrderStatus::PendingPayment;
    let (mut paid_at, mut shipped_at, mut delivered_at, mut completed_at, mut cancelled_at) =
        (None, None, None, None, None);
    if unpaid {
        // Most unpaid orders are cancelled after 30 minutes; a few linger unpaid.
        if rng.chance(0.97) && placed + min(30) <= as_of {
            status = OrderStatus::Cancelled;
            cancelled_at = Some(placed + min(30));
        }
    } else {
        let paid = placed + Duration::seconds(rng.range(10, 1_200));
        if paid <= as_of {
            paid_at = Some(paid);
            status = OrderStatus::AwaitingShipment;
            let overdue = rng.chance(0.03);
            let ship = paid
                + Duration::minutes(if overdue {
                    rng.range(49 * 60, 96 * 60)
                } else {
                    rng.range(60, 40 * 60)
                });
            if ship <= as_of {
                shipped_at = Some(ship);
                status = OrderStatus::Shipped;
                let stalled = rng.chance(0.01);
                let deliver = ship
                    + Duration::minutes(if stalled {
                        rng.range(8 * 1440, 14 * 1440)
                    } else {
                        rng.range(18 * 60, 120 * 60)
                    });
                if deliver <= as_of {
                    delivered_at = Some(deliver);
                    status = OrderStatus::Delivered;
                    let complete = deliver + Duration::days(7);
                    if complete <= as_of {
                        completed_at = Some(complete);
                        status = OrderStatus::Completed;
                    }
                }
            }
        }
    }
    if status == OrderStatus::PendingPayment && !unpaid {
        // Placed in the last seconds before "now": still unpaid.
    }
    let paid_amount = if paid_at.is_some() { paid_total } else { 0 };

    // After-sales by category refund rate.
    let mut cases = Vec::new();
    if let Some(paid) = paid_at {
        if rng.chance(refund_rate) {
            let requested = paid + Duration::minutes(rng.range(60, 10 * 1440));
            if requested <= as_of {
                let kind = match rng.f() {
                    r if r < 0.4 => "REFUND_ONLY",
                    r if r < 0.9 => "RETURN_REFUND",
                    _ => "EXCHANGE",
                };
                let old_enough = as_of - requested > Duration::days(3);
                let (case_status, resolved) = if !old_enough {
                    ("REQUESTED", None)
                } else {
                    let resolved = requested + Duration::minutes(rng.range(30, 3 * 1440));
                    match rng.f() {
                        r if r < 0.78 && kind != "EXCHANGE" => ("REFUNDED", Some(resolved)),
                        r if r < 0.90 => ("REJECTED", Some(resolved)),
                        _ => ("CLOSED", Some(resolved)),
                    }
                };
                let full = rng.chance(0.6);
                let refund = if case_status == "REFUNDED" {
                    if full {
                        paid_amount
                    } else {
                        paid_amount * rng.range(30, 71) / 100
                    }
                } else {
                    0
                };
                let dispute = if rng.chance(0.08) {
                    if old_enough {
                        if rng.chance(0.5) {
                            "BUYER_WON"
                        } else {
                            "SELLER_WON"
                        }
                    } else {
                        "OPEN"
                    }
                } else {
                    "NONE"
                };
                if case_status == "REFUNDED" && refund == paid_amount {
                    status = OrderStatus::Closed;
                    completed_at = None;
                }
                cases.push((kind, case_status, refund, requested, resolved, dispute));
            }
        }
    }

    let (province, city) = if shop.currency == "USD" {
        (None, "Los Angeles")
    } else {
        let p = PROVINCES[rng.pick(prov_cum)];
        (Some(p.0), p.3)
    };
    let province_name = province
        .and_then(|code| PROVINCES.iter().find(|p| p.0 == code))
        .map(|p| p.2)
        .unwrap_or("California");
    let buyer = rng.skewed(buyers, 1.6);
    let surname = SURNAMES[buyer % SURNAMES.len()];
    let given = GIVEN[(buyer / SURNAMES.len()) % GIVEN.len()];
    let commission_rate = if creator_id.is_some() {
        rng.range(10, 31) * 100
    } else {
        0
    };
    let commission = if paid_at.is_some() {
        paid_amount * commission_rate / 10_000
    } else {
        0
    };
    let payment = paid_at.map(|_| {
        let r = rng.f();
        match platform {
            Platform::Douyin => {
                if r < 0.55 {
                    "DOUYIN_PAY"
                } else if r < 0.8 {
                    "WECHAT_PAY"
                } else if r < 0.95 {
                    "ALIPAY"
                } else {
                    "COD"
                }
            }
            Platform::Tmall | Platform::Taobao => {
                if r < 0.9 {
                    "ALIPAY"
                } else {
                    "CARD"
                }
            }
            Platform::Tiktok => {
                if r < 0.8 {
                    "CARD"
                } else {
                    "OTHER"
                }
            }
            _ => {
                if r < 0.5 {
                    "WECHAT_PAY"
                } else if r < 0.9 {
                    "ALIPAY"
                } else {
                    "COD"
                }
            }
        }
    });
    let content = match (channel, creator_id) {
        ("LIVE", Some(c)) => Some(format!("live_c{c}_{}", placed.format("%Y%m%d"))),
        ("LIVE", None) => Some(format!("live_s{}_{}", shop.id, placed.format("%Y%m%d"))),
        ("SHORT_VIDEO", _) => Some(format!("v_{}", rng.range(100_000, 999_999))),
        _ => None,
    };
    let last_event = [
        Some(placed),
        paid_at,
        shipped_at,
        delivered_at,
        completed_at,
        cancelled_at,
    ]
    .into_iter()
    .flatten()
    .chain(cases.iter().flat_map(|c| [Some(c.3), c.4]).flatten())
    .max()
    .unwrap_or(placed)
    .min(as_of);

    // orders, in table column order.
    let o = &mut chunk.orders;
    let _ = write!(
        o,
        "{id}\t{}\t{}{:012}\t{}\t{}\t",
        shop.id,
        platform.as_str().chars().next().unwrap_or('X'),
        id,
        status.as_str(),
        raw_status_for(platform, status)
    );
    ts(o, Some(placed));
    for at in [
        paid_at,
        shipped_at,
        delivered_at,
        completed_at,
        cancelled_at,
    ] {
        o.push('\t');
        ts(o, at);
    }
    o.push('\t');
    opt(o, payment);
    let _ = write!(o, "\t{goods}\t{shipping}\t{discount}\t{paid_amount}\t");
    opt(o, province);
    o.push('\t');
    esc(o, city);
    let _ = write!(o, "\t{channel}\t");
    match creator_id {
        Some(c) => {
            let _ = write!(o, "{c}");
        }
        None => o.push_str("\\N"),
    }
    o.push('\t');
    opt(o, content.as_deref());
    let _ = write!(
        o,
        "\t{commission_rate}\t{commission}\tb{:08x}\t",
        (buyer as u64).wrapping_mul(2_654_435_761) & 0xFFFF_FFFF
    );
    let _ = write!(
        o,
        "{}{}",
        NICK_A[buyer % NICK_A.len()],
        NICK_B[(buyer / 3) % NICK_B.len()]
    );
    let _ = write!(
        o,
        "\t{surname}{given}\t1{}{:09}\t",
        rng.range(3, 10),
        rng.range(0, 1_000_000_000)
    );
    let _ = write!(
        o,
        "{province_name}{city}{}区{}路{}号",
        GIVEN[buyer % GIVEN.len()],
        SURNAMES[(buyer / 5) % SURNAMES.len()],
        rng.range(1, 999)
    );
    o.push('\t');
    if rng.chance(0.05) {
        esc(o, NOTES[rng.range(0, NOTES.len() as i64) as usize]);
    } else {
        o.push_str("\\N");
    }
    o.push('\t');
    ts(o, Some(last_event));
    o.push('\t');
    ts(o, Some(as_of));
    // No seller note or flag: those are the seller's own, set later.
    o.push_str("\t\\N\t\\N\n");

    // Item lines with their paid amounts: the discount is spread over lines by value,
    // the last line takes the rest.
    let mut allocated = 0;
    let item_lines: Vec<(i64, i64, i64, i64)> = items
        .iter()
        .enumerate()
        .map(|(line, (product, quantity, unit, _))| {
            let value = quantity * unit;
            let share = if line + 1 == items.len() {
                discount - allocated
            } else {
                discount * value / goods.max(1)
            };
            allocated += share;
            (*product, *quantity, *unit, value - share)
        })
        .collect();

    // order_items.
    for (line, (product, quantity, unit, paid_line)) in item_lines.iter().enumerate() {
        let _ = writeln!(
            chunk.items,
            "{id}\t{}\t{product}\t{product}-{}\t{quantity}\t{unit}\t{paid_line}",
            line + 1,
            ["S", "M", "L", "XL"][line % 4],
        );
        totals.items += 1;
    }

    for (n, (kind, case_status, refund, requested, resolved, dispute)) in cases.iter().enumerate() {
        *after_sale_id += 1;
        let a = &mut chunk.after_sales;
        let reason = ["不想要了", "尺码不合适", "质量问题", "发错货", "与描述不符"]
            [rng.range(0, 5) as usize];
        let _ = write!(
            a,
            "{}\t{id}\tas{id}_{n}\t{kind}\t{case_status}\t{reason}\t{refund}\t",
            after_sale_id
        );
        ts(a, Some(*requested));
        a.push('\t');
        ts(a, *resolved);
        let _ = writeln!(a, "\t{dispute}");
        totals.after_sales += 1;
    }

    if let Some(ship) = shipped_at {
        let (carrier, prefix) = if shop.currency == "USD" {
            ("USPS", "US")
        } else {
            CARRIERS[rng.range(0, CARRIERS.len() as i64) as usize]
        };
        let s = &mut chunk.shipments;
        let _ = write!(s, "{id}\t{carrier}\t{prefix}{:012}\t", id * 7 + 1_000_000);
        ts(s, Some(ship));
        s.push('\t');
        ts(s, delivered_at);
        s.push('\n');
        totals.shipments += 1;
    }
}
