//! `kpis`, `trend` and `breakdown`: thin resolvers over the analytics engine. They
//! validate input once (ranges, zones, currencies, limits), narrow filters to the
//! caller's scope, and shape the engine's rows into the contract's reports.

use std::collections::{BTreeSet, HashMap};

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::filters::{ids, list_len, province_codes, scoped_shops, spell};
use super::scalars::Date;
use super::viewer::region_names;
use super::{cache_of, principal, provinces, shared};
use crate::analytics::buckets::{parse_zone, LocalRange};
use crate::analytics::{change, Aggregate, Filters, GroupRow, Grouping, Measures, OTHER_KEY};
use crate::auth::Principal;
use crate::db;
use crate::domain::{
    Channel, Compare, DataSet, Dimension, Granularity, Metric, PaymentMethod, Platform, Region,
};
use crate::error::{AppError, AppResult};

#[derive(InputObject, Clone, Copy)]
pub struct DateRange {
    /// First local date, inclusive.
    pub from: Date,
    /// Last local date, inclusive.
    pub to: Date,
}

#[derive(SimpleObject, Clone, Copy, Serialize, Deserialize)]
pub struct DateRangeOut {
    pub from: Date,
    pub to: Date,
}

/// Filters of every analytics query; all combine, and each narrows within the scope.
#[derive(InputObject, Default, Clone)]
pub struct AnalyticsFilter {
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

impl AnalyticsFilter {
    fn to_filters(&self, p: &Principal) -> AppResult<Filters> {
        let shop_ids = scoped_shops(p, &self.shop_ids, &self.platforms)?;
        list_len("categories", &self.categories)?;
        for category in self.categories.iter().flatten() {
            crate::domain::check_plain_text("categories", category, 128)
                .map_err(AppError::bad_input)?;
        }
        province_codes(&self.provinces)?;
        list_len("carriers", &self.carriers)?;
        for carrier in self.carriers.iter().flatten() {
            crate::domain::check_plain_text("carriers", carrier, 64)
                .map_err(AppError::bad_input)?;
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

pub(super) fn prepare(
    p: &Principal,
    range: DateRange,
    filter: Option<AnalyticsFilter>,
    metrics: Option<Vec<Metric>>,
    timezone: Option<String>,
    currency: Option<String>,
    granularity: Option<Granularity>,
) -> AppResult<Prepared> {
    p.require_read(DataSet::Reports)?;
    let tz = parse_zone(timezone.as_deref().unwrap_or(DEFAULT_ZONE))?;
    let range = LocalRange::new(range.from.0, range.to.0, tz, granularity)?;
    let currency = currency
        .unwrap_or_else(|| "CNY".into())
        .trim()
        .to_ascii_uppercase();
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(AppError::bad_input(format!(
            "{currency:?} is not an ISO-4217 currency code"
        )));
    }
    let mut seen = BTreeSet::new();
    let metrics: Vec<Metric> = metrics
        .unwrap_or_else(|| Metric::ALL.to_vec())
        .into_iter()
        .filter(|m| seen.insert(*m))
        .collect();
    if metrics.is_empty() {
        return Err(AppError::bad_input("metrics must name at least one metric"));
    }
    Ok(Prepared {
        range,
        filters: filter.unwrap_or_default().to_filters(p)?,
        currency,
        hide_commission: metrics.contains(&Metric::Commission) && !p.may_read(DataSet::Commission),
        metrics,
        sort_by: None,
    })
}

impl Prepared {
    fn aggregate(&self, range: &LocalRange, grouping: Grouping) -> Aggregate {
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

    fn values(&self, current: &Measures, previous: Option<&Measures>) -> Vec<MetricValue> {
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
}

/// Runs aggregates on the analytic store (see [`run_on_store`]).
pub(super) async fn run(
    ctx: &Context<'_>,
    p: &Principal,
    prepared: &Prepared,
    aggregates: Vec<(LocalRange, Grouping)>,
) -> AppResult<Vec<Vec<GroupRow>>> {
    let ranges: Vec<LocalRange> = aggregates.iter().map(|(r, _)| *r).collect();
    let queries: Vec<Aggregate> = aggregates
        .into_iter()
        .map(|(r, g)| prepared.aggregate(&r, g))
        .collect();
    run_on_store(ctx, p, prepared, &ranges, move |store, rates| {
        queries
            .iter()
            .map(|q| crate::analytics::scan::aggregate(store, rates, q))
            .collect()
    })
    .await
}

/// Runs `f` on the analytic store once it reflects every write committed before the
/// request, after checking exchange rates for every currency in scope on every day of
/// each window.
async fn run_on_store<T, F>(
    ctx: &Context<'_>,
    p: &Principal,
    prepared: &Prepared,
    ranges: &[LocalRange],
    f: F,
) -> AppResult<T>
where
    T: Send + 'static,
    F: FnOnce(&crate::analytics::store::Store, &crate::analytics::money::Rates) -> AppResult<T>
        + Send
        + 'static,
{
    let windows: Vec<(chrono::NaiveDate, chrono::NaiveDate)> =
        ranges.iter().map(|r| (r.from, r.to)).collect();
    let mut currencies: BTreeSet<String> = p
        .shops
        .iter()
        .filter(|s| prepared.filters.shop_ids.contains(&s.id))
        .map(|s| s.currency.clone())
        .collect();
    currencies.insert(prepared.currency.clone());
    let currencies: Vec<String> = currencies.into_iter().collect();
    on_current_store(ctx, move |store, rates| {
        for (first, last) in &windows {
            rates.check(&currencies, *first, *last)?;
        }
        f(store, rates)
    })
    .await
}

/// Runs `f` on the analytic store once it reflects every write committed before the
/// request (waiting at most until the request's deadline), in the request's and its
/// tenant's turn like a statement, so one tenant's heavy reports cannot take every
/// core from the others.
pub(super) async fn on_current_store<T, F>(ctx: &Context<'_>, f: F) -> AppResult<T>
where
    T: Send + 'static,
    F: FnOnce(&crate::analytics::store::Store, &crate::analytics::money::Rates) -> AppResult<T>
        + Send
        + 'static,
{
    let engine = shared(ctx).engine.clone();
    let budget = crate::db::budget::RequestBudget::current();
    let deadline = budget
        .as_ref()
        .map(|b| b.deadline().into_std())
        .unwrap_or_else(|| std::time::Instant::now() + shared(ctx).settings.request_timeout);
    engine.ensure_current(deadline).await?;
    let _turn = match &budget {
        Some(b) => Some(b.admit().await?),
        None => None,
    };
    engine.read(f).await
}

fn forbid_commission(ctx: &Context<'_>, prepared: &Prepared) {
    if prepared.hide_commission {
        let err: async_graphql::Error =
            AppError::Forbidden("the COMMISSION metric needs the FINANCE_READ permission".into())
                .into();
        ctx.add_error(ctx.set_error_path(err.into_server_error(ctx.item.pos)));
    }
}

impl Prepared {
    /// The normalised arguments of a report, for its cache key: equivalent requests
    /// (metrics repeated, filter lists in another order) share one entry.
    fn cache_arguments(&self, extra: serde_json::Value) -> serde_json::Value {
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

/// A report from the cache, or computed (once per key at a time) and cached.
pub(super) async fn cached<T, F, Fut>(
    ctx: &Context<'_>,
    p: &Principal,
    prepared: &Prepared,
    operation: &str,
    extra: serde_json::Value,
    compute: F,
) -> AppResult<T>
where
    T: Serialize + serde::de::DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = AppResult<T>>,
{
    let cache = cache_of(ctx);
    let scope = crate::cache::Scope {
        principal: p,
        shop_ids: &prepared.filters.shop_ids,
    };
    let key = cache.key(&scope, operation, &prepared.cache_arguments(extra));
    let bypass = ctx.data_opt::<crate::cache::Bypass>().is_some();
    cache.get_or_compute(key, bypass, compute).await
}

pub(super) fn total_of(rows: &[GroupRow]) -> Measures {
    rows.iter()
        .find(|r| r.key.is_none())
        .map(|r| r.measures.clone())
        .unwrap_or_default()
}

#[derive(Default)]
pub struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// Headline metrics over a range, optionally against a comparison period.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        complexity = "super::cost::kpis(&range, metrics.as_ref().map_or(8, |m| m.len()), compare.is_some()) + child_complexity"
    )]
    async fn kpis(
        &self,
        ctx: &Context<'_>,
        range: DateRange,
        metrics: Option<Vec<Metric>>,
        filter: Option<AnalyticsFilter>,
        compare: Option<Compare>,
        #[graphql(default = "Asia/Shanghai")] timezone: String,
        #[graphql(default = "CNY")] currency: String,
    ) -> async_graphql::Result<KpiReport> {
        let args = KpiArgs {
            range,
            metrics,
            filter,
            compare,
            timezone,
            currency,
        };
        kpi_report(ctx, principal(ctx)?, &args).await
    }

    /// One point per bucket of the range, zero-filled; with `compare`, `previous` is the
    /// aligned bucket of the comparison period.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        complexity = "super::cost::trend(&range, granularity, metrics.len(), compare.is_some()) + child_complexity"
    )]
    async fn trend(
        &self,
        ctx: &Context<'_>,
        range: DateRange,
        granularity: Granularity,
        metrics: Vec<Metric>,
        filter: Option<AnalyticsFilter>,
        compare: Option<Compare>,
        timezone: Option<String>,
        currency: Option<String>,
    ) -> async_graphql::Result<TrendReport> {
        let p = principal(ctx)?;
        let prepared = prepare(
            p,
            range,
            filter,
            Some(metrics),
            timezone,
            currency,
            Some(granularity),
        )?;
        let extra = json!({ "granularity": granularity, "compare": compare });
        let report = cached(ctx, p, &prepared, "trend", extra, || async {
            let buckets = prepared.range.buckets(granularity);
            let grouping = |b: &[crate::analytics::buckets::Bucket]| Grouping::Buckets {
                boundaries: b
                    .iter()
                    .map(|x| x.start)
                    .chain(b.last().map(|x| x.end))
                    .collect(),
            };
            let mut plan = vec![(prepared.range, grouping(&buckets))];
            let compared_buckets = compare.map(|c| prepared.range.compared(c).buckets(granularity));
            if let (Some(c), Some(cb)) = (compare, &compared_buckets) {
                plan.push((prepared.range.compared(c), grouping(cb)));
            }
            let results = run(ctx, p, &prepared, plan).await?;
            let by_bucket = |rows: &[GroupRow]| -> HashMap<i32, Measures> {
                rows.iter()
                    .map(|r| (r.bucket, r.measures.clone()))
                    .collect()
            };
            let current = by_bucket(&results[0]);
            let previous = results.get(1).map(|r| by_bucket(r));
            let zero = Measures::default();
            let points = buckets
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let idx = i as i32 + 1;
                    let prev = previous.as_ref().map(|p| {
                        let exists = compared_buckets.as_ref().is_some_and(|cb| i < cb.len());
                        if exists {
                            p.get(&idx).unwrap_or(&zero)
                        } else {
                            &zero
                        }
                    });
                    TrendPoint {
                        start: b.start,
                        label: b.label.clone(),
                        values: prepared.values(current.get(&idx).unwrap_or(&zero), prev),
                    }
                })
                .collect();
            Ok(TrendReport {
                granularity,
                points,
            })
        })
        .await?;
        forbid_commission(ctx, &prepared);
        Ok(report)
    }

    /// The top `limit` values of a dimension by `sortBy`, the rest folded into `other`,
    /// and the total; rows + other add up to the total for additive metrics.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        complexity = "super::cost::breakdown(&range, metrics.len(), limit, compare.is_some()) + child_complexity"
    )]
    async fn breakdown(
        &self,
        ctx: &Context<'_>,
        range: DateRange,
        dimension: Dimension,
        metrics: Vec<Metric>,
        sort_by: Option<Metric>,
        #[graphql(default = 10)] limit: i32,
        filter: Option<AnalyticsFilter>,
        compare: Option<Compare>,
        timezone: Option<String>,
        currency: Option<String>,
    ) -> async_graphql::Result<BreakdownReport> {
        let p = principal(ctx)?;
        if !(1..=100).contains(&limit) {
            return Err(AppError::bad_input("limit must be between 1 and 100").into());
        }
        let mut prepared = prepare(p, range, filter, Some(metrics), timezone, currency, None)?;
        let sort_by = sort_by.unwrap_or(prepared.metrics[0]);
        prepared.sort_by = Some(sort_by);
        if sort_by == Metric::Commission && !p.may_read(DataSet::Commission) {
            return Err(AppError::Forbidden(
                "sorting by COMMISSION needs the FINANCE_READ permission".into(),
            )
            .into());
        }
        let extra = json!({ "dimension": dimension, "sortBy": sort_by, "limit": limit, "compare": compare });
        let report = cached(ctx, p, &prepared, "breakdown", extra, || async {
            let compared = compare.map(|c| prepared.range.compared(c));
            let Ranked {
                keyed,
                previous,
                total,
                previous_total,
                other,
                other_previous,
            } = top_by_summing(ctx, p, &prepared, dimension, sort_by, limit, compared).await?;
            let labels = labels(
                ctx,
                p,
                dimension,
                keyed.iter().map(|(k, _)| k.clone()).collect(),
            )
            .await?;
            let share = |m: &Measures| {
                if !sort_by.is_additive() {
                    return None;
                }
                match (m.value(sort_by), total.value(sort_by)) {
                    (Some(v), Some(t)) if t != 0.0 => Some(v / t),
                    _ => None,
                }
            };
            let rows = keyed
                .iter()
                .map(|(key, m)| BreakdownRow {
                    key: key.clone(),
                    label: labels.get(key).cloned().unwrap_or_else(|| key.clone()),
                    share: share(m),
                    values: prepared.values(
                        m,
                        previous
                            .as_ref()
                            .map(|p| p.get(key).unwrap_or(&Measures::default()).clone())
                            .as_ref(),
                    ),
                })
                .collect();
            let other = other.map(|m| BreakdownRow {
                key: OTHER_KEY.to_string(),
                label: "其他 (other)".to_string(),
                share: share(&m),
                values: prepared.values(&m, other_previous.as_ref()),
            });
            Ok(BreakdownReport {
                dimension,
                rows,
                other,
                total: prepared.values(&total, previous_total.as_ref()),
            })
        })
        .await?;
        forbid_commission(ctx, &prepared);
        Ok(report)
    }
}

/// A breakdown's top rows, other row and total, for the window and the comparison.
struct Ranked {
    /// The top rows, in report order.
    keyed: Vec<(String, Measures)>,
    /// The comparison window's values by key (at least of the top rows).
    previous: Option<HashMap<String, Measures>>,
    total: Measures,
    previous_total: Option<Measures>,
    other: Option<Measures>,
    other_previous: Option<Measures>,
}

/// The breakdown's grouping over the window and, with `compare`, the comparison window.
fn over_windows(
    prepared: &Prepared,
    compared: Option<LocalRange>,
    dimension: Dimension,
    keep: Option<Vec<String>>,
) -> Vec<(LocalRange, Grouping)> {
    std::iter::once(prepared.range)
        .chain(compared)
        .map(|r| {
            (
                r,
                Grouping::Dimension {
                    dimension,
                    keep: keep.clone(),
                },
            )
        })
        .collect()
}

/// The top keys from every key's sums: one scan per window, the keys left out folded
/// into "other" from that scan's exact sums.
async fn top_by_summing(
    ctx: &Context<'_>,
    p: &Principal,
    prepared: &Prepared,
    dimension: Dimension,
    sort_by: Metric,
    limit: i32,
    compared: Option<LocalRange>,
) -> AppResult<Ranked> {
    let windows = over_windows(prepared, compared, dimension, None);
    let queries: Vec<Aggregate> = windows
        .iter()
        .map(|(r, g)| prepared.aggregate(r, g.clone()))
        .collect();
    let ranges: Vec<LocalRange> = windows.iter().map(|(r, _)| *r).collect();
    let limit = limit as usize;
    run_on_store(ctx, p, prepared, &ranges, move |store, rates| {
        let current = crate::analytics::scan::grouped(store, rates, &queries[0])?;
        let mut keyed = current.rows();
        crate::analytics::rank(&mut keyed, sort_by);
        let rest = keyed.split_off(limit.min(keyed.len()));
        let kept: Vec<String> = keyed.iter().map(|(k, _)| k.clone()).collect();
        let other = match rest.is_empty() {
            true => None,
            false => Some(current.fold(&kept)?),
        };
        let (previous, previous_total, other_previous) = match queries.get(1) {
            Some(q) => {
                let before = crate::analytics::scan::grouped(store, rates, q)?;
                let rows: HashMap<String, Measures> = before
                    .rows()
                    .into_iter()
                    .filter(|(k, _)| kept.contains(k))
                    .collect();
                let other_previous = match other {
                    Some(_) => Some(before.fold(&kept)?),
                    None => None,
                };
                (Some(rows), Some(before.total()), other_previous)
            }
            None => (None, None, None),
        };
        Ok(Ranked {
            keyed,
            previous,
            total: current.total(),
            previous_total,
            other,
            other_previous,
        })
    })
    .await
}

/// Human names for dimension keys: shop names, product titles, province names, creator
/// handles, region names.
pub(super) async fn labels(
    ctx: &Context<'_>,
    p: &Principal,
    dimension: Dimension,
    keys: Vec<String>,
) -> AppResult<HashMap<String, String>> {
    let none = match dimension {
        Dimension::Creator => "无达人 (no creator)",
        Dimension::Carrier => "未发货 (not shipped)",
        _ => "未知 (unknown)",
    };
    let mut out: HashMap<String, String> = keys
        .iter()
        .filter(|k| k.is_empty())
        .map(|k| (k.clone(), none.to_string()))
        .collect();
    let numeric: Vec<i64> = keys.iter().filter_map(|k| k.parse().ok()).collect();
    match dimension {
        Dimension::Shop => {
            for id in numeric {
                if let Some(s) = p.shop(id) {
                    out.insert(id.to_string(), s.name.clone());
                }
            }
        }
        Dimension::Product => {
            let rows = db::run(&shared(ctx).pool, move |c| {
                db::reference::products_by_ids(c, &numeric)
            })
            .await?;
            out.extend(rows.into_iter().map(|r| (r.id.to_string(), r.title)));
        }
        Dimension::Creator => {
            let rows = db::run(&shared(ctx).pool, move |c| {
                db::reference::creators_by_ids(c, &numeric)
            })
            .await?;
            out.extend(rows.into_iter().map(|r| (r.id.to_string(), r.handle)));
        }
        Dimension::Province => {
            for row in provinces(ctx).await? {
                out.insert(row.code.clone(), row.name_zh.clone());
            }
        }
        Dimension::Carrier => {
            for key in keys.iter().filter(|k| !k.is_empty()) {
                out.insert(key.clone(), key.clone());
            }
        }
        Dimension::Region => {
            for region in Region::ALL {
                let (zh, en) = region_names(*region);
                out.insert(region.as_str().to_string(), format!("{zh} ({en})"));
            }
        }
        _ => {}
    }
    Ok(out)
}

/// The arguments of `kpis` (and of the `liveKpis` subscription).
#[derive(Clone)]
pub struct KpiArgs {
    pub range: DateRange,
    pub metrics: Option<Vec<Metric>>,
    pub filter: Option<AnalyticsFilter>,
    pub compare: Option<Compare>,
    pub timezone: String,
    pub currency: String,
}

/// The `kpis` report for `p`.
pub async fn kpi_report(
    ctx: &Context<'_>,
    p: &Principal,
    args: &KpiArgs,
) -> async_graphql::Result<KpiReport> {
    let KpiArgs {
        range,
        metrics,
        filter,
        compare,
        timezone,
        currency,
    } = args.clone();
    let prepared = prepare(
        p,
        range,
        filter,
        metrics,
        Some(timezone),
        Some(currency),
        None,
    )?;
    let report = cached(
        ctx,
        p,
        &prepared,
        "kpis",
        json!({ "compare": compare }),
        || async {
            let mut plan = vec![(prepared.range, Grouping::Total)];
            if let Some(c) = compare {
                plan.push((prepared.range.compared(c), Grouping::Total));
            }
            let results = run(ctx, p, &prepared, plan).await?;
            let current = total_of(&results[0]);
            let previous = results.get(1).map(|r| total_of(r));
            Ok(KpiReport {
                range: DateRangeOut {
                    from: range.from,
                    to: range.to,
                },
                values: prepared.values(&current, previous.as_ref()),
            })
        },
    )
    .await?;
    forbid_commission(ctx, &prepared);
    Ok(report)
}
