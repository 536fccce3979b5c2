//! A question validated once: range, zone, currency and metrics checked, the filter
//! narrowed to the caller's scope, and the normalised arguments of its cache key.

use std::collections::BTreeSet;

use serde_json::json;

use super::{MetricValue, Question, ReportFilter};
use crate::analytics::buckets::{parse_zone, LocalRange};
use crate::analytics::{change, Aggregate, Filters, Grouping, Measures};
use crate::auth::Principal;
use crate::domain::{
    check_plain_text, Channel, DataSet, Granularity, Metric, PaymentMethod, Region,
};
use crate::error::{AppError, AppResult};
use crate::filters::{ids, list_len, province_codes, scoped_shops, spell};

const DEFAULT_ZONE: &str = "Asia/Shanghai";

/// Everything a report needs, validated.
pub(super) struct Prepared {
    pub(super) range: LocalRange,
    pub(super) filters: Filters,
    pub(super) currency: String,
    pub(super) metrics: Vec<Metric>,
    /// COMMISSION was asked for without FINANCE_READ: it resolves to null.
    pub(super) hide_commission: bool,
    /// A breakdown's `sortBy`, which has to be computed even when not shown.
    pub(super) sort_by: Option<Metric>,
}

impl Question {
    /// The report currency as reports spell it: CNY when absent, trimmed, upper case
    /// (`prepare` checks it is a currency code).
    pub fn currency(&self) -> String {
        self.currency
            .as_deref()
            .unwrap_or("CNY")
            .trim()
            .to_ascii_uppercase()
    }

    /// The metrics in the order the report shows them: all when absent, each once.
    pub fn metric_list(&self) -> Vec<Metric> {
        let mut seen = BTreeSet::new();
        self.metrics
            .clone()
            .unwrap_or_else(|| Metric::ALL.to_vec())
            .into_iter()
            .filter(|m| seen.insert(*m))
            .collect()
    }
}

impl ReportFilter {
    /// The engine's filters, within `p`'s scope; bad values are `BAD_USER_INPUT`.
    fn to_filters(&self, p: &Principal) -> AppResult<Filters> {
        let shop_ids = scoped_shops(p, &self.shop_ids, &self.platforms)?;
        list_len("categories", &self.categories)?;
        for category in self.categories.iter().flatten() {
            check_plain_text("categories", category, 128).map_err(AppError::bad_input)?;
        }
        province_codes(&self.provinces)?;
        list_len("carriers", &self.carriers)?;
        for carrier in self.carriers.iter().flatten() {
            check_plain_text("carriers", carrier, 64).map_err(AppError::bad_input)?;
        }
        Ok(Filters {
            shop_ids,
            product_ids: ids("productIds", &self.product_ids)?,
            categories: self.categories.clone(),
            provinces: self.provinces.clone(),
            regions: spell(&self.regions, Region::as_str),
            channels: spell(&self.channels, Channel::as_str),
            creator_ids: ids("creatorIds", &self.creator_ids)?,
            payment_methods: spell(&self.payment_methods, PaymentMethod::as_str),
            carriers: self.carriers.clone(),
        })
    }
}

/// Validates `q` for `p` (who must be allowed to read reports).
pub(super) fn prepare(
    p: &Principal,
    q: &Question,
    granularity: Option<Granularity>,
) -> AppResult<Prepared> {
    p.require_read(DataSet::Reports)?;
    let tz = parse_zone(q.timezone.as_deref().unwrap_or(DEFAULT_ZONE))?;
    let range = LocalRange::new(q.from, q.to, tz, granularity)?;
    let currency = q.currency();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(AppError::bad_input(format!(
            "{currency:?} is not an ISO-4217 currency code"
        )));
    }
    let metrics = q.metric_list();
    if metrics.is_empty() {
        return Err(AppError::bad_input("metrics must name at least one metric"));
    }
    Ok(Prepared {
        range,
        filters: q.filter.to_filters(p)?,
        currency,
        hide_commission: super::commission_refusal(p, &metrics).is_some(),
        metrics,
        sort_by: None,
    })
}

impl Prepared {
    /// The engine's question over `range`, grouped by `grouping`.
    pub(super) fn aggregate(&self, range: &LocalRange, grouping: Grouping) -> Aggregate {
        Aggregate {
            filters: self.filters.clone(),
            start: range.start(),
            end: range.end(),
            first_day: range.from,
            last_day: range.to,
            timezone: range.tz.name().to_string(),
            currency: self.currency.clone(),
            grouping,
            needs_buyers: [
                Metric::Buyers,
                Metric::RepeatBuyers,
                Metric::RepeatRate,
                Metric::NewBuyers,
            ]
            .iter()
            .any(|m| self.needs(*m)),
            needs_repeat: self.needs(Metric::RepeatBuyers) || self.needs(Metric::RepeatRate),
            needs_new: self.needs(Metric::NewBuyers),
            columns: crate::analytics::Columns::of(
                &self
                    .metrics
                    .iter()
                    .copied()
                    .chain(self.sort_by)
                    .collect::<Vec<_>>(),
            ),
        }
    }

    /// Whether `metric` is shown or sorted by.
    pub(super) fn needs(&self, metric: Metric) -> bool {
        self.metrics.contains(&metric) || self.sort_by == Some(metric)
    }

    /// The shown metrics' values from sums, with their comparison.
    pub(super) fn values(
        &self,
        current: &Measures,
        previous: Option<&Measures>,
    ) -> Vec<MetricValue> {
        self.metrics
            .iter()
            .map(|m| {
                if *m == Metric::Commission && self.hide_commission {
                    return MetricValue {
                        metric: *m,
                        value: None,
                        previous: None,
                        change: None,
                    };
                }
                let value = current.value(*m);
                let previous = previous.and_then(|p| p.value(*m));
                MetricValue {
                    metric: *m,
                    value,
                    previous,
                    change: change(value, previous),
                }
            })
            .collect()
    }

    /// The normalised arguments of a report, for its cache key: equivalent requests
    /// (metrics repeated, filter lists in another order) share one entry.
    pub(super) fn cache_arguments(&self, extra: serde_json::Value) -> serde_json::Value {
        let sorted = |v: &Option<Vec<String>>| {
            v.clone().map(|mut v| {
                v.sort();
                v.dedup();
                v
            })
        };
        let sorted_ids = |v: &Option<Vec<i64>>| {
            v.clone().map(|mut v| {
                v.sort_unstable();
                v.dedup();
                v
            })
        };
        let f = &self.filters;
        json!({
            "from": self.range.from,
            "to": self.range.to,
            "timezone": self.range.tz.name(),
            "currency": self.currency,
            "metrics": self.metrics,
            "hideCommission": self.hide_commission,
            "productIds": sorted_ids(&f.product_ids),
            "categories": sorted(&f.categories),
            "provinces": sorted(&f.provinces),
            "regions": sorted(&f.regions),
            "channels": sorted(&f.channels),
            "creatorIds": sorted_ids(&f.creator_ids),
            "paymentMethods": sorted(&f.payment_methods),
            "carriers": sorted(&f.carriers),
            "deliveryPromiseHours": crate::analytics::store::delivery_promise_hours(),
            "extra": extra,
        })
    }
}
