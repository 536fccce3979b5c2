//! The seller's 日报: one local day against the day before and the same weekday a week
//! earlier, the day's top products, and how many orders are on each abnormal-order work
//! list right now.

use chrono::{Datelike, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::prepare::prepare;
use super::store::{cached, on_current_store, run, total_of};
use super::{
    AbnormalCount, BreakdownRow, DailyMetric, DailyReport, MetricValue, Question, Reader,
    ReportFilter,
};
use crate::analytics::buckets::{parse_zone, LocalRange};
use crate::analytics::{change, GroupRow, Grouping, Measures};
use crate::domain::{AbnormalKind, Date, Dimension, Metric};
use crate::error::{AppError, AppResult};
use crate::state::Services;

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

/// The cached part of the report: everything that only changes with a write.
#[derive(Serialize, Deserialize)]
struct DayFigures {
    metrics: Vec<DailyMetric>,
    top_products: Vec<BreakdownRow>,
}

/// The 日报 for `date` (default: today in `timezone`, default `Asia/Shanghai`), over
/// every shop in the caller's scope, in CNY.
pub async fn daily_report(
    r: &Reader<'_>,
    date: Option<NaiveDate>,
    timezone: Option<String>,
) -> AppResult<DailyReport> {
    let zone_name = timezone.unwrap_or_else(|| "Asia/Shanghai".into());
    let zone = parse_zone(&zone_name)?;
    let day = date.unwrap_or_else(|| Utc::now().with_timezone(&zone).date_naive());
    let (Some(yesterday), Some(last_week)) = (
        day.checked_sub_signed(TimeDelta::days(1)),
        day.checked_sub_signed(TimeDelta::days(7)),
    ) else {
        return Err(AppError::bad_input("date is out of range"));
    };
    let question = Question {
        from: day,
        to: day,
        filter: ReportFilter::default(),
        metrics: Some(METRICS.to_vec()),
        timezone: Some(zone_name),
        currency: None,
        compare: None,
    };
    let prepared = prepare(r.principal, &question, None)?;
    let day_range = |d| LocalRange::new(d, d, zone, None);
    let (yesterday, last_week) = (day_range(yesterday)?, day_range(last_week)?);
    let extra = json!({ "weekday": day.weekday().num_days_from_monday() });
    let figures: DayFigures = cached(r, &prepared, "dailyReport", extra, || async {
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
        let results = run(r, &prepared, plan).await?;
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
        let names = super::labels(r, Dimension::Product, keys).await?;
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
    let abnormal = abnormal_counts(r.services, r.principal.shop_ids()).await?;
    Ok(DailyReport {
        date: Date(day),
        timezone: zone.name().to_string(),
        metrics: figures.metrics,
        top_products: figures.top_products,
        abnormal,
    })
}

/// How many orders of `shop_ids` each abnormal-order work list holds now (the daily
/// report's counts and the `abnormalCounts` subscription's).
pub async fn abnormal_counts(
    services: &Services,
    shop_ids: Vec<i64>,
) -> AppResult<Vec<AbnormalCount>> {
    let now_us = Utc::now().timestamp_micros();
    let counts = on_current_store(services, move |store, _| {
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

fn product_values(m: &Measures) -> Vec<MetricValue> {
    [Metric::Gmv, Metric::Units]
        .iter()
        .map(|metric| MetricValue {
            metric: *metric,
            value: m.value(*metric),
            previous: None,
            change: None,
        })
        .collect()
}
