//! The reports service: `kpis`, `trend`, `breakdown` and the daily report, for whichever
//! transport asks (the GraphQL resolvers, the report CSVs, the live subscriptions).
//!
//! A question arrives as plain values ([`Question`], [`ReportFilter`]); the service
//! validates it once (ranges, zones, currencies, limits), narrows its filter to the
//! caller's scope, answers from the cache or the analytic store, and shapes the
//! engine's rows into the contract's reports. The report types derive their GraphQL
//! output types, as the domain enums do, so both transports hand out the same values.

mod daily;
mod prepare;
mod store;
mod summary;

use async_graphql::{InputObject, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::domain::{
    AbnormalKind, Channel, Compare, DataSet, Date, Dimension, Granularity, Metric, PaymentMethod,
    Platform, Region,
};
use crate::error::AppError;
use crate::state::Services;

pub use daily::{abnormal_counts, daily_report};
pub use store::on_current_store;
pub use summary::{breakdown, kpis, labels, trend};

/// Who asks, with what: the application's state, the caller, and whether the caller
/// asked (and may ask) to bypass the aggregate cache.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    pub services: &'a Services,
    pub principal: &'a Principal,
    pub bypass: bool,
}

// GraphQL's `AnalyticsFilter`; the report CSVs fill it from query parameters.
/// Filters of every analytics query; all combine, and each narrows within the scope.
#[derive(InputObject, Default, Clone, Debug)]
#[graphql(name = "AnalyticsFilter")]
pub struct ReportFilter {
    pub shop_ids: Option<Vec<ID>>,
    pub platforms: Option<Vec<Platform>>,
    pub product_ids: Option<Vec<ID>>,
    pub categories: Option<Vec<String>>,
    /// GB/T 2260 province codes.
    pub provinces: Option<Vec<String>>,
    pub regions: Option<Vec<Region>>,
    pub channels: Option<Vec<Channel>>,
    pub creator_ids: Option<Vec<ID>>,
    pub payment_methods: Option<Vec<PaymentMethod>>,
    /// Shipment carriers as the orders name them (for example 顺丰速运); orders not
    /// shipped match none.
    pub carriers: Option<Vec<String>>,
}

/// A report's question: the local dates (inclusive), the filter, the metrics (all when
/// `None`), the zone (default Asia/Shanghai), the report currency (default CNY) and an
/// optional comparison period.
#[derive(Clone, Debug)]
pub struct Question {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub filter: ReportFilter,
    pub metrics: Option<Vec<Metric>>,
    pub timezone: Option<String>,
    pub currency: Option<String>,
    pub compare: Option<Compare>,
}

/// A breakdown's dimension, its sort (default: the first metric) and how many rows.
#[derive(Clone, Copy, Debug)]
pub struct Ranking {
    pub dimension: Dimension,
    pub sort_by: Option<Metric>,
    pub limit: i32,
}

/// The error a report carries beside its data when it was asked for COMMISSION without
/// FINANCE_READ (the value itself is null). GraphQL adds it to the response's errors;
/// a CSV refuses the file.
pub fn commission_refusal(p: &Principal, metrics: &[Metric]) -> Option<AppError> {
    (metrics.contains(&Metric::Commission) && !p.may_read(DataSet::Commission)).then(|| {
        AppError::Forbidden("the COMMISSION metric needs the FINANCE_READ permission".into())
    })
}

#[derive(SimpleObject, Clone, Copy, Serialize, Deserialize)]
pub struct DateRangeOut {
    pub from: Date,
    pub to: Date,
}

#[derive(SimpleObject, Clone, Serialize, Deserialize)]
pub struct MetricValue {
    pub metric: Metric,
    pub value: Option<f64>,
    /// The same metric over the comparison period (or aligned bucket).
    pub previous: Option<f64>,
    /// `(value - previous) / previous`; null when previous is 0, null or not asked for.
    pub change: Option<f64>,
}

#[derive(SimpleObject, Serialize, Deserialize)]
pub struct KpiReport {
    pub range: DateRangeOut,
    pub values: Vec<MetricValue>,
}

#[derive(SimpleObject, Serialize, Deserialize)]
pub struct TrendPoint {
    pub start: DateTime<Utc>,
    pub label: String,
    pub values: Vec<MetricValue>,
}

#[derive(SimpleObject, Serialize, Deserialize)]
pub struct TrendReport {
    pub granularity: Granularity,
    pub points: Vec<TrendPoint>,
}

#[derive(SimpleObject, Clone, Serialize, Deserialize)]
pub struct BreakdownRow {
    pub key: String,
    pub label: String,
    /// This row's `sortBy` value over the total's (additive `sortBy` metrics only).
    pub share: Option<f64>,
    pub values: Vec<MetricValue>,
}

#[derive(SimpleObject, Serialize, Deserialize)]
pub struct BreakdownReport {
    pub dimension: Dimension,
    pub rows: Vec<BreakdownRow>,
    /// Everything outside the top rows, folded into one row.
    pub other: Option<BreakdownRow>,
    pub total: Vec<MetricValue>,
}

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
