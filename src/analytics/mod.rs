//! The analytics engine: metric definitions, time buckets, comparisons, the query plan
//! for KPIs, trends and breakdowns, and the in-memory store that answers every one of
//! them (`store`, `scan`), kept current from PostgreSQL (`live`). No GraphQL or HTTP
//! here. docs/ANALYTICS.md says what answers what.

pub mod buckets;
pub mod live;
pub mod money;
pub mod scan;
pub mod store;

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::{Dimension, Metric};

/// Additive building blocks of every metric for one group of orders. Money is in major
/// units of the report currency, rounded to the cent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measures {
    pub orders: i64,
    pub paid_orders: i64,
    pub gmv: f64,
    pub units: i64,
    pub refund_orders: i64,
    pub refund_amount: f64,
    pub dispute_orders: i64,
    pub delivered_orders: i64,
    /// Delivered orders within the delivery promise.
    pub on_time_orders: i64,
    pub delivery_hours: f64,
    pub commission: f64,
    /// Distinct paying buyers of the group (not additive across groups).
    pub buyers: i64,
    /// Buyers with two or more paid orders in the group.
    pub repeat_buyers: i64,
    /// Buyers whose first paid order in a shop is in the group.
    pub new_buyers: i64,
}

impl Measures {
    /// Adds another group's measures. Money is added in whole cents, which is exact
    /// when both sides are whole cents (see the breakdown's "other" row). BUYERS is not
    /// additive (nor are the repeat and new buyers) and is left as it is.
    pub fn add(&mut self, o: &Measures) {
        let cents = |a: f64, b: f64| ((a * 100.0).round() + (b * 100.0).round()) / 100.0;
        self.orders += o.orders;
        self.paid_orders += o.paid_orders;
        self.gmv = cents(self.gmv, o.gmv);
        self.units += o.units;
        self.refund_orders += o.refund_orders;
        self.refund_amount = cents(self.refund_amount, o.refund_amount);
        self.dispute_orders += o.dispute_orders;
        self.delivered_orders += o.delivered_orders;
        self.on_time_orders += o.on_time_orders;
        self.delivery_hours += o.delivery_hours;
        self.commission = cents(self.commission, o.commission);
    }
}

/// Orders breakdown groups as the report shows them: by `sort_by` descending (a null
/// value last), then by key.
pub fn rank(groups: &mut [(String, Measures)], sort_by: Metric) {
    groups.sort_by(|a, b| {
        let (x, y) = (a.1.value(sort_by), b.1.value(sort_by));
        y.partial_cmp(&x)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator != 0.0).then(|| numerator / denominator)
}

impl Measures {
    /// The value of a metric; a ratio with a zero denominator is `None`.
    pub fn value(&self, metric: Metric) -> Option<f64> {
        Some(match metric {
            Metric::Orders => self.orders as f64,
            Metric::PaidOrders => self.paid_orders as f64,
            Metric::Gmv => self.gmv,
            Metric::Units => self.units as f64,
            Metric::Aov => return ratio(self.gmv, self.paid_orders as f64).map(round2),
            Metric::PayConversion => return ratio(self.paid_orders as f64, self.orders as f64),
            Metric::RefundOrders => self.refund_orders as f64,
            Metric::RefundAmount => self.refund_amount,
            Metric::RefundRate => return ratio(self.refund_orders as f64, self.paid_orders as f64),
            Metric::DisputeOrders => self.dispute_orders as f64,
            Metric::DisputeRate => return ratio(self.dispute_orders as f64, self.orders as f64),
            Metric::AvgDeliveryHours => {
                return ratio(self.delivery_hours, self.delivered_orders as f64)
            }
            Metric::Commission => self.commission,
            Metric::Buyers => self.buyers as f64,
            Metric::RepeatBuyers => self.repeat_buyers as f64,
            Metric::RepeatRate => return ratio(self.repeat_buyers as f64, self.buyers as f64),
            Metric::NewBuyers => self.new_buyers as f64,
            Metric::OnTimeRate => {
                return ratio(self.on_time_orders as f64, self.delivered_orders as f64)
            }
        })
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// `(value - previous) / previous`; `None` without a usable previous value.
pub fn change(value: Option<f64>, previous: Option<f64>) -> Option<f64> {
    match (value, previous) {
        (Some(v), Some(p)) if p != 0.0 => Some((v - p) / p),
        _ => None,
    }
}

/// Validated filters, already narrowed to the caller's shop scope.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub shop_ids: Vec<i64>,
    pub product_ids: Option<Vec<i64>>,
    pub categories: Option<Vec<String>>,
    pub provinces: Option<Vec<String>>,
    pub regions: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub creator_ids: Option<Vec<i64>>,
    pub payment_methods: Option<Vec<String>>,
    /// Shipment carriers (an order without a shipment matches none).
    pub carriers: Option<Vec<String>>,
}

impl Filters {
    /// Product and category filters attribute GMV and units to matching items.
    pub fn on_items(&self) -> bool {
        self.product_ids.is_some() || self.categories.is_some()
    }
}

/// Which money, unit and delivery columns a question reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Columns {
    pub gmv: bool,
    pub units: bool,
    pub refund: bool,
    pub commission: bool,
    pub delivery: bool,
}

impl Columns {
    pub const ALL: Columns = Columns {
        gmv: true,
        units: true,
        refund: true,
        commission: true,
        delivery: true,
    };

    /// No column beyond the order counts.
    pub fn default_none() -> Columns {
        Columns {
            gmv: false,
            units: false,
            refund: false,
            commission: false,
            delivery: false,
        }
    }

    /// The columns these metrics read.
    pub fn of(metrics: &[Metric]) -> Columns {
        let any = |m: &[Metric]| metrics.iter().any(|x| m.contains(x));
        Columns {
            gmv: any(&[Metric::Gmv, Metric::Aov]),
            units: any(&[Metric::Units]),
            refund: any(&[Metric::RefundAmount]),
            commission: any(&[Metric::Commission]),
            delivery: any(&[Metric::AvgDeliveryHours]),
        }
    }
}

/// How rows are grouped.
#[derive(Debug, Clone)]
pub enum Grouping {
    /// One total.
    Total,
    /// One row per bucket; `boundaries` are the bucket starts followed by the end.
    Buckets { boundaries: Vec<DateTime<Utc>> },
    /// One row per dimension value plus the total; with `keep`, every other value is
    /// folded into one `OTHER_KEY` row.
    Dimension {
        dimension: Dimension,
        keep: Option<Vec<String>>,
    },
}

/// The key of the folded "other" row.
pub const OTHER_KEY: &str = "~other";

/// One aggregate question over a window.
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub filters: Filters,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Local dates of the window, for exchange rates.
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub timezone: String,
    pub currency: String,
    pub grouping: Grouping,
    /// BUYERS, REPEAT_BUYERS, REPEAT_RATE or NEW_BUYERS is asked for (buyers are
    /// collected only then).
    pub needs_buyers: bool,
    /// REPEAT_BUYERS or REPEAT_RATE is asked for (a product or category group then
    /// tells a buyer's orders apart).
    pub needs_repeat: bool,
    /// NEW_BUYERS is asked for.
    pub needs_new: bool,
    /// The columns the asked metrics read beyond the order counts (a scan reads no
    /// other: it is bound by memory bandwidth).
    pub columns: Columns,
}

/// One result row: `bucket` is 1-based for bucket groupings (0 otherwise); `key` is
/// `None` on the total row.
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub bucket: i32,
    pub key: Option<String>,
    pub measures: Measures,
}

/// Product and category breakdowns attribute GMV and units to item lines, and count
/// product-orders (an order once for each distinct product it contains).
pub fn dimension_on_items(dimension: Dimension) -> bool {
    matches!(dimension, Dimension::Product | Dimension::Category)
}
