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

mod copy;
mod generate;
mod random;
mod vocabulary;

use copy::*;
use generate::*;
use random::*;
use vocabulary::*;

use std::fmt::Write as _;
use std::time::Instant;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::domain::{Platform, RolePreset};
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

pub(super) struct Shop {
    pub(super) id: i64,
    pub(super) tenant_id: i64,
    pub(super) platform: Platform,
    pub(super) currency: &'static str,
    pub(super) timezone: chrono_tz::Tz,
    pub(super) products: Vec<Product>,
    pub(super) product_weights: Vec<f64>,
}

pub(super) struct Product {
    pub(super) id: i64,
    pub(super) price: i64,
    pub(super) refund_rate: f64,
}

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
