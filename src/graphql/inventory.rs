//! Stock and forecasts (库存预警, 趋势预测): `setProductStock`, `stockWarnings` (products
//! that run out within N days at their recent sales velocity) and `productForecast` /
//! `shopForecast` (units and GMV for the next days, with an interval and the method's
//! backtest). Sales come from the analytic store, like every report.

use std::collections::{BTreeMap, HashMap};

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::json;

use super::scalars::Date;
use super::{parse_id, principal, shared};
use crate::analytics::buckets::LocalRange;
use crate::analytics::{Aggregate, Columns, Filters, GroupRow, Grouping};
use crate::auth::Principal;
use crate::db;
use crate::domain::{DataSet, Dimension, Granularity, Permission};
use crate::error::{AppError, AppResult};
use crate::forecast;
use crate::reports::on_current_store;

const MAX_ITEMS: usize = 500;
/// Days of history a forecast is fitted on.
const HISTORY_DAYS: i64 = 182;

#[derive(InputObject)]
pub struct StockInput {
    pub product_id: ID,
    /// Units on hand, 0 or more.
    pub stock: i32,
}

#[derive(SimpleObject)]
pub struct StockItemResult {
    pub index: i32,
    pub product_id: ID,
    /// `UPDATED`, `UNCHANGED` or `REJECTED`.
    pub status: String,
    pub message: Option<String>,
}

#[derive(SimpleObject)]
pub struct StockReport {
    pub updated: i32,
    pub unchanged: i32,
    pub rejected: i32,
    pub items: Vec<StockItemResult>,
}

#[derive(SimpleObject, Clone, PartialEq)]
pub struct StockWarning {
    pub product_id: ID,
    pub shop_id: ID,
    pub title: String,
    pub stock: i32,
    /// Paid units per day over the 7 days before `asOf`.
    pub units_per_day_7: f64,
    /// Paid units per day over the 28 days before `asOf`.
    pub units_per_day_28: f64,
    /// Stock over the 7-day velocity (the 28-day one when the last 7 days sold none).
    pub days_of_cover: f64,
    /// The local date the stock runs out at that velocity.
    pub runs_out_on: Date,
}

/// A product's stock on hand beside its sales velocity.
#[derive(SimpleObject)]
pub struct ProductStock {
    pub product_id: ID,
    pub shop_id: ID,
    pub title: String,
    pub stock: i32,
    pub units_per_day_7: f64,
    pub units_per_day_28: f64,
    /// Null when it sold nothing in 28 days.
    pub days_of_cover: Option<f64>,
    pub runs_out_on: Option<Date>,
}

/// A shop's stock over its products with stock set, beside their sales velocity.
#[derive(SimpleObject)]
pub struct ShopStock {
    pub shop_id: ID,
    pub stock: i64,
    pub units_per_day_7: f64,
    pub units_per_day_28: f64,
    pub days_of_cover: Option<f64>,
}

#[derive(SimpleObject)]
pub struct StockLevels {
    pub products: Vec<ProductStock>,
    pub shops: Vec<ShopStock>,
}

#[derive(SimpleObject)]
pub struct Interval {
    pub value: f64,
    /// The 95% interval.
    pub low: f64,
    pub high: f64,
}

#[derive(SimpleObject)]
pub struct ForecastPoint {
    pub date: Date,
    pub units: Interval,
    /// In the shop's currency, major units.
    pub gmv: Interval,
}

/// How the method did on the last 28 days of history, fitted without them: weighted
/// absolute percentage errors (sum of |error| over sum of actuals), beside the
/// seasonal naive forecast (each day as the same weekday of the week before).
#[derive(SimpleObject)]
pub struct Backtest {
    pub held_out_days: i32,
    pub units_wape: Option<f64>,
    pub units_seasonal_naive_wape: Option<f64>,
    pub gmv_wape: Option<f64>,
    pub gmv_seasonal_naive_wape: Option<f64>,
}

/// A sales forecast: estimates, not data.
#[derive(SimpleObject)]
pub struct Forecast {
    /// Always `FORECAST`: these are estimates, not recorded sales.
    pub label: String,
    pub method: String,
    pub currency: String,
    /// The history it was fitted on: the days before `asOf`.
    pub history_from: Date,
    pub history_to: Date,
    pub points: Vec<ForecastPoint>,
    /// Null when the history is shorter than 42 days or sold nothing in its last 28.
    pub backtest: Option<Backtest>,
}

/// Daily units and GMV (major units of `currency`) of one shop, optionally one product,
/// over `[from, to]` in `tz`.
async fn daily_sales(
    ctx: &Context<'_>,
    shop_id: i64,
    product_id: Option<i64>,
    currency: String,
    tz: Tz,
    from: NaiveDate,
    to: NaiveDate,
) -> AppResult<(Vec<f64>, Vec<f64>)> {
    let range = LocalRange { from, to, tz };
    let buckets = range.buckets(Granularity::Day);
    let n = buckets.len();
    let q = Aggregate {
        filters: Filters {
            shop_ids: vec![shop_id],
            product_ids: product_id.map(|p| vec![p]),
            ..Filters::default()
        },
        start: range.start(),
        end: range.end(),
        first_day: from,
        last_day: to,
        timezone: tz.name().to_string(),
        currency,
        grouping: Grouping::Buckets {
            boundaries: buckets
                .iter()
                .map(|b| b.start)
                .chain(buckets.last().map(|b| b.end))
                .collect(),
        },
        needs_buyers: false,
        needs_repeat: false,
        needs_new: false,
        columns: Columns {
            gmv: true,
            units: true,
            ..Columns::default_none()
        },
    };
    let rows: Vec<GroupRow> = on_current_store(super::shared(ctx), move |store, rates| {
        crate::analytics::scan::aggregate(store, rates, &q)
    })
    .await?;
    let (mut units, mut gmv) = (vec![0.0; n], vec![0.0; n]);
    for r in rows {
        if let Some(i) = usize::try_from(r.bucket - 1).ok().filter(|i| *i < n) {
            units[i] = r.measures.units as f64;
            gmv[i] = r.measures.gmv;
        }
    }
    Ok((units, gmv))
}

/// Paid units per product of these shops over `[from, to]` in `tz`.
async fn units_by_product(
    ctx: &Context<'_>,
    p: &Principal,
    shop_ids: &[i64],
    tz: Tz,
    from: NaiveDate,
    to: NaiveDate,
) -> AppResult<HashMap<i64, i64>> {
    // One question per shop currency: units need no exchange rates.
    let mut by_currency: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for id in shop_ids {
        if let Some(s) = p.shop(*id) {
            by_currency.entry(s.currency.clone()).or_default().push(*id);
        }
    }
    let range = LocalRange { from, to, tz };
    let mut out = HashMap::new();
    for (currency, shops) in by_currency {
        let q = Aggregate {
            filters: Filters {
                shop_ids: shops,
                ..Filters::default()
            },
            start: range.start(),
            end: range.end(),
            first_day: from,
            last_day: to,
            timezone: tz.name().to_string(),
            currency,
            grouping: Grouping::Dimension {
                dimension: Dimension::Product,
                keep: None,
            },
            needs_buyers: false,
            needs_repeat: false,
            needs_new: false,
            columns: Columns {
                units: true,
                ..Columns::default_none()
            },
        };
        let rows = on_current_store(super::shared(ctx), move |store, rates| {
            Ok(crate::analytics::scan::grouped(store, rates, &q)?.rows())
        })
        .await?;
        for (key, m) in rows {
            if let Ok(id) = key.parse::<i64>() {
                *out.entry(id).or_insert(0) += m.units;
            }
        }
    }
    Ok(out)
}

pub(super) fn zone(timezone: Option<String>) -> AppResult<Tz> {
    crate::analytics::buckets::parse_zone(timezone.as_deref().unwrap_or("Asia/Shanghai"))
}

pub(super) fn day_of(date: Option<Date>, tz: Tz) -> NaiveDate {
    date.map(|d| d.0)
        .unwrap_or_else(|| Utc::now().with_timezone(&tz).date_naive())
}

#[derive(Default)]
pub struct InventoryQuery;

#[Object]
impl InventoryQuery {
    /// Products with stock set that run out within `withinDays` (default 7) at their
    /// recent velocity, soonest first: paid units per day over the 7 days before
    /// `asOf` (default today in `timezone`), or over 28 days when the last 7 sold none.
    /// Needs `ANALYTICS_READ`.
    async fn stock_warnings(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 7)] within_days: i32,
        shop_ids: Option<Vec<ID>>,
        as_of: Option<Date>,
        timezone: Option<String>,
    ) -> async_graphql::Result<Vec<StockWarning>> {
        let p = principal(ctx)?;
        p.require_read(DataSet::Reports)?;
        let shops = crate::filters::scoped_shops(p, &shop_ids, &None)?;
        let tz = zone(timezone)?;
        Ok(stock_warnings(ctx, p, within_days, shops, day_of(as_of, tz), tz).await?)
    }

    /// Every product with stock set and every shop over those products: stock, paid
    /// units per day over 7 and 28 days before `asOf`, and days of cover (null when
    /// nothing sold in 28 days). Needs `ANALYTICS_READ`.
    async fn stock_levels(
        &self,
        ctx: &Context<'_>,
        shop_ids: Option<Vec<ID>>,
        as_of: Option<Date>,
        timezone: Option<String>,
    ) -> async_graphql::Result<StockLevels> {
        let p = principal(ctx)?;
        p.require_read(DataSet::Reports)?;
        let shops = crate::filters::scoped_shops(p, &shop_ids, &None)?;
        let tz = zone(timezone)?;
        Ok(stock_levels(ctx, p, shops, day_of(as_of, tz), tz).await?)
    }

    /// A product's sales forecast for the next `days` (1 to 60, default 14) from
    /// `asOf` (default today in the shop's zone), fitted on the 182 days before it.
    /// Needs `ANALYTICS_READ` and the product's shop in scope.
    async fn product_forecast(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        #[graphql(default = 14)] days: i32,
        as_of: Option<Date>,
    ) -> async_graphql::Result<Forecast> {
        let p = principal(ctx)?;
        p.require_read(DataSet::Reports)?;
        let id = parse_id("productId", &product_id)?;
        let shop = db::run(&shared(ctx).pool, move |c| {
            db::inventory::shop_of_product(c, id)
        })
        .await?;
        let shop = shop
            .filter(|s| p.shop(*s).is_some())
            .ok_or_else(|| AppError::NotFound(format!("product {id}")))?;
        forecast_of(ctx, p, shop, Some(id), days, as_of).await
    }

    /// A shop's sales forecast, like `productForecast`.
    async fn shop_forecast(
        &self,
        ctx: &Context<'_>,
        shop_id: ID,
        #[graphql(default = 14)] days: i32,
        as_of: Option<Date>,
    ) -> async_graphql::Result<Forecast> {
        let p = principal(ctx)?;
        p.require_read(DataSet::Reports)?;
        let id = parse_id("shopId", &shop_id)?;
        if p.shop(id).is_none() {
            return Err(AppError::NotFound(format!("shop {id}")).into());
        }
        forecast_of(ctx, p, id, None, days, as_of).await
    }
}

/// The stock, velocities and cover of every product of `shops` with stock set, and of
/// each shop over those products.
async fn stock_levels(
    ctx: &Context<'_>,
    p: &Principal,
    shops: Vec<i64>,
    day: NaiveDate,
    tz: Tz,
) -> AppResult<StockLevels> {
    let yesterday = day - Duration::days(1);
    let list = shops.clone();
    let stocked = db::run(&shared(ctx).pool, move |c| db::inventory::stocked(c, &list)).await?;
    if stocked.is_empty() {
        return Ok(StockLevels {
            products: Vec::new(),
            shops: Vec::new(),
        });
    }
    let week = units_by_product(ctx, p, &shops, tz, day - Duration::days(7), yesterday).await?;
    let month = units_by_product(ctx, p, &shops, tz, day - Duration::days(28), yesterday).await?;
    let level = |stock: i64, units7: i64, units28: i64| {
        let (v7, v28) = (units7 as f64 / 7.0, units28 as f64 / 28.0);
        let velocity = if v7 > 0.0 { v7 } else { v28 };
        let cover = (velocity > 0.0).then(|| stock as f64 / velocity);
        (v7, v28, cover)
    };
    let mut by_shop: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    let products = stocked
        .into_iter()
        .map(|s| {
            let (u7, u28) = (
                *week.get(&s.id).unwrap_or(&0),
                *month.get(&s.id).unwrap_or(&0),
            );
            let t = by_shop.entry(s.shop_id).or_default();
            *t = (t.0 + i64::from(s.stock), t.1 + u7, t.2 + u28);
            let (v7, v28, cover) = level(i64::from(s.stock), u7, u28);
            ProductStock {
                product_id: ID(s.id.to_string()),
                shop_id: ID(s.shop_id.to_string()),
                title: s.title,
                stock: s.stock,
                units_per_day_7: v7,
                units_per_day_28: v28,
                days_of_cover: cover,
                runs_out_on: cover.map(|c| Date(day + Duration::days(c.floor() as i64))),
            }
        })
        .collect();
    let shops = by_shop
        .into_iter()
        .map(|(shop, (stock, u7, u28))| {
            let (v7, v28, cover) = level(stock, u7, u28);
            ShopStock {
                shop_id: ID(shop.to_string()),
                stock,
                units_per_day_7: v7,
                units_per_day_28: v28,
                days_of_cover: cover,
            }
        })
        .collect();
    Ok(StockLevels { products, shops })
}

/// Products of `shops` with stock set that run out within `within_days` of `day` at
/// their recent velocity, soonest first (`stockWarnings` and its subscription).
pub(super) async fn stock_warnings(
    ctx: &Context<'_>,
    p: &Principal,
    within_days: i32,
    shops: Vec<i64>,
    day: NaiveDate,
    tz: Tz,
) -> AppResult<Vec<StockWarning>> {
    if !(1..=365).contains(&within_days) {
        return Err(AppError::bad_input("withinDays must be 1 to 365"));
    }
    let levels = stock_levels(ctx, p, shops, day, tz).await?;
    let mut out: Vec<StockWarning> = levels
        .products
        .into_iter()
        .filter_map(|s| {
            let cover = s.days_of_cover.filter(|c| *c <= f64::from(within_days))?;
            Some(StockWarning {
                product_id: s.product_id,
                shop_id: s.shop_id,
                title: s.title,
                stock: s.stock,
                units_per_day_7: s.units_per_day_7,
                units_per_day_28: s.units_per_day_28,
                days_of_cover: cover,
                runs_out_on: s.runs_out_on?,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        a.days_of_cover
            .total_cmp(&b.days_of_cover)
            .then_with(|| a.product_id.cmp(&b.product_id))
    });
    Ok(out)
}

async fn forecast_of(
    ctx: &Context<'_>,
    p: &Principal,
    shop_id: i64,
    product_id: Option<i64>,
    days: i32,
    as_of_day: Option<Date>,
) -> async_graphql::Result<Forecast> {
    if !(1..=60).contains(&days) {
        return Err(AppError::bad_input("days must be 1 to 60").into());
    }
    let shop = p
        .shop(shop_id)
        .ok_or_else(|| AppError::NotFound(format!("shop {shop_id}")))?;
    let tz: Tz = shop.timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai);
    let day = day_of(as_of_day, tz);
    let (from, to) = (day - Duration::days(HISTORY_DAYS), day - Duration::days(1));
    let (mut units, mut gmv) = daily_sales(
        ctx,
        shop_id,
        product_id,
        shop.currency.clone(),
        tz,
        from,
        to,
    )
    .await?;
    // The history starts with the first day that sold (a new shop or product has no
    // zeros before it began).
    let skip = units
        .iter()
        .zip(&gmv)
        .position(|(u, g)| *u != 0.0 || *g != 0.0)
        .unwrap_or(units.len());
    units.drain(..skip);
    gmv.drain(..skip);
    let from = from + Duration::days(skip as i64);
    let fitted = |y: &[f64]| forecast::fit(y).map(|m| m.forecast(days as usize));
    let (u, g) = (fitted(&units), fitted(&gmv));
    let (Some(u), Some(g)) = (u, g) else {
        return Err(
            AppError::bad_input("not enough history to forecast (14 days at least)").into(),
        );
    };
    let interval = |p: &forecast::Point, round: fn(f64) -> f64| Interval {
        value: round(p.value),
        low: round(p.low),
        high: round(p.high),
    };
    let points = (0..days as usize)
        .map(|h| ForecastPoint {
            date: Date(day + Duration::days(h as i64)),
            units: interval(&u[h], |v| (v * 10.0).round() / 10.0),
            gmv: interval(&g[h], |v| (v * 100.0).round() / 100.0),
        })
        .collect();
    let (ub, gb) = (forecast::backtest(&units), forecast::backtest(&gmv));
    let backtest = (ub.is_some() || gb.is_some()).then(|| Backtest {
        held_out_days: forecast::BACKTEST_DAYS as i32,
        units_wape: ub.map(|b| b.0),
        units_seasonal_naive_wape: ub.map(|b| b.1),
        gmv_wape: gb.map(|b| b.0),
        gmv_seasonal_naive_wape: gb.map(|b| b.1),
    });
    Ok(Forecast {
        label: "FORECAST".into(),
        method: forecast::METHOD.into(),
        currency: shop.currency.clone(),
        history_from: Date(from),
        history_to: Date(to),
        points,
        backtest,
    })
}

/// A stock item as checked: (product id, stock), or why not.
type Checked = Result<(i64, i32), String>;

#[derive(Default)]
pub struct InventoryMutation;

#[Object]
impl InventoryMutation {
    /// Sets the stock on hand of up to 500 products of the caller's shops, each with
    /// its own outcome; audited. Needs `ORDERS_WRITE`.
    async fn set_product_stock(
        &self,
        ctx: &Context<'_>,
        items: Vec<StockInput>,
    ) -> async_graphql::Result<StockReport> {
        let p = principal(ctx)?;
        p.require(Permission::OrdersWrite)?;
        if items.is_empty() || items.len() > MAX_ITEMS {
            return Err(
                AppError::bad_input(format!("items must hold 1 to {MAX_ITEMS} products")).into(),
            );
        }
        let shops: Vec<i64> = p.shops.iter().map(|s| s.id).collect();
        let actor = p.actor();
        let parsed: Vec<(ID, Checked)> = items
            .into_iter()
            .map(|i| {
                let checked = match (i.product_id.parse::<i64>(), i.stock) {
                    (Err(_), _) => Err(format!("{} is not a product id", i.product_id.as_str())),
                    (_, s) if s < 0 => Err("stock must be 0 or more".to_string()),
                    (Ok(id), s) => Ok((id, s)),
                };
                (i.product_id, checked)
            })
            .collect();
        let writes: Vec<Result<(i64, i32), String>> =
            parsed.iter().map(|(_, r)| r.clone()).collect();
        let audited_writes = writes.clone();
        let outcomes = db::audit::audited(
            &shared(ctx).pool,
            actor,
            "setProductStock",
            move |c| {
                let mut out = Vec::with_capacity(writes.len());
                for w in &writes {
                    out.push(match w {
                        Ok((id, stock)) => Some(db::inventory::set_stock(c, &shops, *id, *stock)?),
                        Err(_) => None,
                    });
                }
                Ok(out)
            },
            move |out| {
                let changed: Vec<serde_json::Value> = audited_writes
                    .iter()
                    .zip(out)
                    .filter(|(_, o)| **o == Some(db::inventory::StockWrite::Updated))
                    .filter_map(|(w, _)| w.as_ref().ok())
                    .map(|(id, stock)| json!({ "productId": id, "stock": stock }))
                    .collect();
                (!changed.is_empty()).then(|| ("products".to_string(), json!({ "items": changed })))
            },
        )
        .await?;
        let mut report = StockReport {
            updated: 0,
            unchanged: 0,
            rejected: 0,
            items: Vec::new(),
        };
        for (index, ((id, checked), outcome)) in parsed.into_iter().zip(outcomes).enumerate() {
            let (status, message) = match (checked, outcome) {
                (Err(m), _) => ("REJECTED", Some(m)),
                (_, Some(db::inventory::StockWrite::Updated)) => ("UPDATED", None),
                (_, Some(db::inventory::StockWrite::Unchanged)) => ("UNCHANGED", None),
                _ => (
                    "REJECTED",
                    Some(format!("no product {} in your shops", id.as_str())),
                ),
            };
            match status {
                "UPDATED" => report.updated += 1,
                "UNCHANGED" => report.unchanged += 1,
                _ => report.rejected += 1,
            }
            report.items.push(StockItemResult {
                index: index as i32,
                product_id: id,
                status: status.into(),
                message,
            });
        }
        Ok(report)
    }
}
