//! Answers from the analytic store and the aggregate cache: the store is read once it
//! reflects every write committed before the request, in the request's and its
//! tenant's turn, and a report is computed once per cache key at a time.

use std::collections::BTreeSet;

use serde::Serialize;

use super::prepare::Prepared;
use super::Reader;
use crate::analytics::buckets::LocalRange;
use crate::analytics::money::Rates;
use crate::analytics::store::Store;
use crate::analytics::{Aggregate, GroupRow, Grouping, Measures};
use crate::error::AppResult;
use crate::state::Services;

/// Runs aggregates on the analytic store (see [`run_on_store`]).
pub(super) async fn run(
    r: &Reader<'_>,
    prepared: &Prepared,
    aggregates: Vec<(LocalRange, Grouping)>,
) -> AppResult<Vec<Vec<GroupRow>>> {
    let ranges: Vec<LocalRange> = aggregates.iter().map(|(r, _)| *r).collect();
    let queries: Vec<Aggregate> = aggregates
        .into_iter()
        .map(|(r, g)| prepared.aggregate(&r, g))
        .collect();
    run_on_store(r, prepared, &ranges, move |store, rates| {
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
pub(super) async fn run_on_store<T, F>(
    r: &Reader<'_>,
    prepared: &Prepared,
    ranges: &[LocalRange],
    f: F,
) -> AppResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Store, &Rates) -> AppResult<T> + Send + 'static,
{
    let windows: Vec<(chrono::NaiveDate, chrono::NaiveDate)> =
        ranges.iter().map(|r| (r.from, r.to)).collect();
    let mut currencies: BTreeSet<String> = r
        .principal
        .shops
        .iter()
        .filter(|s| prepared.filters.shop_ids.contains(&s.id))
        .map(|s| s.currency.clone())
        .collect();
    currencies.insert(prepared.currency.clone());
    let currencies: Vec<String> = currencies.into_iter().collect();
    on_current_store(r.services, move |store, rates| {
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
pub async fn on_current_store<T, F>(services: &Services, f: F) -> AppResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Store, &Rates) -> AppResult<T> + Send + 'static,
{
    let engine = services.engine.clone();
    let budget = crate::db::budget::RequestBudget::current();
    let deadline = budget
        .as_ref()
        .map(|b| b.deadline().into_std())
        .unwrap_or_else(|| std::time::Instant::now() + services.settings.request_timeout);
    engine.ensure_current(deadline).await?;
    let _turn = match &budget {
        Some(b) => Some(b.admit().await?),
        None => None,
    };
    engine.read(f).await
}

/// A report from the cache, or computed (once per key at a time) and cached.
pub(super) async fn cached<T, F, Fut>(
    r: &Reader<'_>,
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
    let cache = &r.services.cache;
    let scope = crate::cache::Scope {
        principal: r.principal,
        shop_ids: &prepared.filters.shop_ids,
    };
    let key = cache.key(&scope, operation, &prepared.cache_arguments(extra));
    cache.get_or_compute(key, r.bypass, compute).await
}

/// The total row of an aggregate's rows.
pub(super) fn total_of(rows: &[GroupRow]) -> Measures {
    rows.iter()
        .find(|r| r.key.is_none())
        .map(|r| r.measures.clone())
        .unwrap_or_default()
}
