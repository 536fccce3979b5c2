//! `dailyReport`: the seller's 日报. One local day against the day before and the same
//! weekday a week earlier, the day's top products, and how many orders are on each
//! abnormal-order work list right now.

use async_graphql::{Context, Object, SimpleObject};
use chrono::{Datelike, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::analytics::{cached, labels, prepare, run, total_of, BreakdownRow, DateRange};
use super::principal;
use super::scalars::Date;
use crate::analytics::buckets::parse_zone;
use crate::analytics::{change, GroupRow, Grouping, Measures};
use crate::domain::{AbnormalKind, Dimension, Metric};
use crate::error::{AppError, AppResult};

/// The metrics of the report, in this order.
const METRICS: [Metric; 6] = [
    Metric::Orders,
    Metric::PaidOrders,
    Metric::Gmv,
    Metric::Aov,
    Metric::PayConversion,
    Metric::RefundRate,
];
const TOP_PRODUCTS: usize = 5;

/// One metric of the day beside its two comparison days.
#[derive(SimpleObject, Clone, Serialize, Deserialize)]
pub struct DailyMetric {
    pub metric: Metric,
    pub today: Option<f64>,
    pub yesterday: Option<f64>,
    /// The same weekday one week earlier.
    pub same_day_last_week: Option<f64>,
    /// `(today - yesterday) / yesterday` (日环比).
    pub day_over_day: Option<f64>,
    /// `(today - sameDayLastWeek) / sameDayLastWeek` (周同比).
    pub week_over_week: Option<f64>,
}

#[derive(SimpleObject, Clone, Copy, PartialEq)]
pub struct AbnormalCount {
    pub kind: AbnormalKind,
    pub count: i64,
}

#[derive(SimpleObject)]
pub struct DailyReport {
    pub date: Date,
    pub timezone: String,
    pub metrics: Vec<DailyMetric>,
    /// The day's five best products by GMV, with GMV and units.
    pub top_products: Vec<BreakdownRow>,
    /// Orders on each abnormal-order work list now (not cached: they move with time).
    pub abnormal: Vec<AbnormalCount>,
}

/// The cached part of the report: everything that only changes with a write.
#[derive(Serialize, Deserialize)]
struct DayFigures {
    metrics: Vec<DailyMetric>,
    top_products: Vec<BreakdownRow>,
}

#[derive(Default)]
pub struct DailyQuery;

#[Object]
impl DailyQuery {
    /// The 日报 for `date` (default: today in `timezone`, default `Asia/Shanghai`), over
    /// every shop in the caller's scope, in CNY.
    #[graphql(complexity = "super::cost::DAILY_REPORT + child_complexity")]
    async fn daily_report(
        &self,
        ctx: &Context<'_>,
        date: Option<Date>,
        timezone: Option<String>,
    ) -> async_graphql::Result<DailyReport> {
        let p = principal(ctx)?;
        let zone_name = timezone.unwrap_or_else(|| "Asia/Shanghai".into());
        let zone = parse_zone(&zone_name)?;
        let day = date.map_or_else(|| Utc::now().with_timezone(&zone).date_naive(), |d| d.0);
        let (Some(yesterday), Some(last_week)) = (
            day.checked_sub_signed(TimeDelta::days(1)),
            day.checked_sub_signed(TimeDelta::days(7)),
        ) else {
            return Err(AppError::bad_input("date is out of range").into());
        };
        let range = DateRange {
            from: Date(day),
            to: Date(day),
        };
        let prepared = prepare(
            p,
            range,
            None,
            Some(METRICS.to_vec()),
            Some(zone_name.clone()),
            None,
            None,
        )?;
        let day_range = |d| crate::analytics::buckets::LocalRange::new(d, d, zone, None);
        let (yesterday, last_week) = (day_range(yesterday)?, day_range(last_week)?);
        let extra = json!({ "weekday": day.weekday().num_days_from_monday() });
        let figures: DayFigures = cached(ctx, p, &prepared, "dailyReport", extra, || async {
            let product = Grouping::Dimension {
                dimension: Dimension::Product,
                keep: None,
            };
            let plan = vec![
                (prepared.range, Grouping::Total),
                (yesterday, Grouping::Total),
                (last_week, Grouping::Total),
                (prepared.range, product),
            ];
            let results = run(ctx, p, &prepared, plan).await?;
            let (today, before, week) = (
                total_of(&results[0]),
                total_of(&results[1]),
                total_of(&results[2]),
            );
            let metrics = METRICS
                .iter()
                .map(|m| {
                    let (t, y, w) = (today.value(*m), before.value(*m), week.value(*m));
                    DailyMetric {
                        metric: *m,
                        today: t,
                        yesterday: y,
                        same_day_last_week: w,
                        day_over_day: change(t, y),
                        week_over_week: change(t, w),
                    }
                })
                .collect();
            let mut products: Vec<(&GroupRow, f64)> = results[3]
                .iter()
                .filter(|r| r.key.is_some())
                .map(|r| (r, r.measures.value(Metric::Gmv).unwrap_or(0.0)))
                .collect();
            products.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.key.cmp(&b.0.key)));
            products.truncate(TOP_PRODUCTS);
            let keys: Vec<String> = products.iter().filter_map(|(r, _)| r.key.clone()).collect();
            let names = labels(ctx, p, Dimension::Product, keys).await?;
            let total_gmv = today.value(Metric::Gmv).filter(|g| *g != 0.0);
            let top_products = products
                .into_iter()
                .map(|(row, gmv)| {
                    let key = row.key.clone().unwrap_or_default();
                    BreakdownRow {
                        label: names.get(&key).cloned().unwrap_or_else(|| key.clone()),
                        key,
                        share: total_gmv.map(|t| gmv / t),
                        values: product_values(&row.measures),
                    }
                })
                .collect();
            Ok(DayFigures {
                metrics,
                top_products,
            })
        })
        .await?;
        let abnormal = abnormal_counts(ctx, p.shop_ids()).await?;
        Ok(DailyReport {
            date: Date(day),
            timezone: zone.name().to_string(),
            metrics: figures.metrics,
            top_products: figures.top_products,
            abnormal,
        })
    }
}

/// How many orders of `shop_ids` each abnormal-order work list holds now (the daily
/// report's counts and the `abnormalCounts` subscription's).
pub(super) async fn abnormal_counts(
    ctx: &Context<'_>,
    shop_ids: Vec<i64>,
) -> AppResult<Vec<AbnormalCount>> {
    let now_us = Utc::now().timestamp_micros();
    let counts = super::analytics::on_current_store(ctx, move |store, _| {
        Ok(store.abnormal(&shop_ids, now_us))
    })
    .await?;
    Ok([
        AbnormalKind::UnpaidOver24h,
        AbnormalKind::ShipOverdue,
        AbnormalKind::RefundPending,
        AbnormalKind::DisputeOpen,
        AbnormalKind::DeliveryStalled,
    ]
    .into_iter()
    .zip(counts)
    .map(|(kind, count)| AbnormalCount { kind, count })
    .collect())
}

fn product_values(m: &Measures) -> Vec<super::analytics::MetricValue> {
    [Metric::Gmv, Metric::Units]
        .iter()
        .map(|metric| super::analytics::MetricValue {
            metric: *metric,
            value: m.value(*metric),
            previous: None,
            change: None,
        })
        .collect()
}
