//! `kpis`, `trend` and `breakdown`: a question's totals, its buckets, and a dimension's
//! top rows with the rest folded into "other".

use std::collections::HashMap;

use serde_json::json;

use super::prepare::{prepare, Prepared};
use super::store::{cached, run, run_on_store, total_of};
use super::{
    BreakdownReport, BreakdownRow, DateRangeOut, KpiReport, Question, Ranking, Reader, TrendPoint,
    TrendReport,
};
use crate::analytics::buckets::{Bucket, LocalRange};
use crate::analytics::{Aggregate, GroupRow, Grouping, Measures, OTHER_KEY};
use crate::db;
use crate::domain::{DataSet, Date, Dimension, Granularity, Metric, Region};
use crate::error::{AppError, AppResult};

/// Headline metrics over a range, optionally against a comparison period.
pub async fn kpis(r: &Reader<'_>, q: &Question) -> AppResult<KpiReport> {
    let prepared = prepare(r.principal, q, None)?;
    let compare = q.compare;
    let extra = json!({ "compare": compare });
    cached(r, &prepared, "kpis", extra, || async {
        let mut plan = vec![(prepared.range, Grouping::Total)];
        if let Some(c) = compare {
            plan.push((prepared.range.compared(c), Grouping::Total));
        }
        let results = run(r, &prepared, plan).await?;
        let current = total_of(&results[0]);
        let previous = results.get(1).map(|r| total_of(r));
        Ok(KpiReport {
            range: DateRangeOut {
                from: Date(q.from),
                to: Date(q.to),
            },
            values: prepared.values(&current, previous.as_ref()),
        })
    })
    .await
}

/// One point per bucket of the range, zero-filled; with a comparison, `previous` is the
/// aligned bucket of the comparison period.
pub async fn trend(
    r: &Reader<'_>,
    q: &Question,
    granularity: Granularity,
) -> AppResult<TrendReport> {
    let prepared = prepare(r.principal, q, Some(granularity))?;
    let compare = q.compare;
    let extra = json!({ "granularity": granularity, "compare": compare });
    cached(r, &prepared, "trend", extra, || async {
        let buckets = prepared.range.buckets(granularity);
        let grouping = |b: &[Bucket]| Grouping::Buckets {
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
        let results = run(r, &prepared, plan).await?;
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
    .await
}

/// The top `limit` values of a dimension by `sortBy`, the rest folded into `other`, and
/// the total; rows + other add up to the total for additive metrics.
pub async fn breakdown(
    r: &Reader<'_>,
    q: &Question,
    ranking: Ranking,
) -> AppResult<BreakdownReport> {
    let Ranking {
        dimension,
        sort_by,
        limit,
    } = ranking;
    if !(1..=100).contains(&limit) {
        return Err(AppError::bad_input("limit must be between 1 and 100"));
    }
    let mut prepared = prepare(r.principal, q, None)?;
    let sort_by = sort_by.unwrap_or(prepared.metrics[0]);
    prepared.sort_by = Some(sort_by);
    if sort_by == Metric::Commission && !r.principal.may_read(DataSet::Commission) {
        return Err(AppError::Forbidden(
            "sorting by COMMISSION needs the FINANCE_READ permission".into(),
        ));
    }
    let compare = q.compare;
    let extra =
        json!({ "dimension": dimension, "sortBy": sort_by, "limit": limit, "compare": compare });
    cached(r, &prepared, "breakdown", extra, || async {
        let compared = compare.map(|c| prepared.range.compared(c));
        let Ranked {
            keyed,
            previous,
            total,
            previous_total,
            other,
            other_previous,
        } = top_by_summing(r, &prepared, dimension, sort_by, limit, compared).await?;
        let labels = labels(r, dimension, keyed.iter().map(|(k, _)| k.clone()).collect()).await?;
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
    .await
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

/// The top keys from every key's sums: one scan per window, the keys left out folded
/// into "other" from that scan's exact sums.
async fn top_by_summing(
    r: &Reader<'_>,
    prepared: &Prepared,
    dimension: Dimension,
    sort_by: Metric,
    limit: i32,
    compared: Option<LocalRange>,
) -> AppResult<Ranked> {
    let ranges: Vec<LocalRange> = std::iter::once(prepared.range).chain(compared).collect();
    let queries: Vec<Aggregate> = ranges
        .iter()
        .map(|range| {
            let grouping = Grouping::Dimension {
                dimension,
                keep: None,
            };
            prepared.aggregate(range, grouping)
        })
        .collect();
    let limit = limit as usize;
    run_on_store(r, prepared, &ranges, move |store, rates| {
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
pub async fn labels(
    r: &Reader<'_>,
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
    let pool = &r.services.pool;
    match dimension {
        Dimension::Shop => {
            for id in numeric {
                if let Some(s) = r.principal.shop(id) {
                    out.insert(id.to_string(), s.name.clone());
                }
            }
        }
        Dimension::Product => {
            let rows = db::run(pool, move |c| db::reference::products_by_ids(c, &numeric)).await?;
            out.extend(rows.into_iter().map(|r| (r.id.to_string(), r.title)));
        }
        Dimension::Creator => {
            let rows = db::run(pool, move |c| db::reference::creators_by_ids(c, &numeric)).await?;
            out.extend(rows.into_iter().map(|r| (r.id.to_string(), r.handle)));
        }
        Dimension::Province => {
            for row in r.services.provinces().await? {
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
                let (zh, en) = region.names();
                out.insert(region.as_str().to_string(), format!("{zh} ({en})"));
            }
        }
        _ => {}
    }
    Ok(out)
}
