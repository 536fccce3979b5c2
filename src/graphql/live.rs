//! Subscriptions (over WebSocket, `src/http/ws.rs`): `liveKpis`, `orderEvents` and
//! `abnormalCounts`. Each waits for the analytic store's change batches (every node
//! catches up at once when any node announces a write; see `Engine::nudge`), skips the
//! batches that touch none of its shops, coalesces bursts, and recomputes with the
//! same functions, scope and masking as the queries. A value is sent only when it
//! differs from the last one sent.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, Enum, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::analytics::{kpi_report, AnalyticsFilter, DateRange, KpiArgs, KpiReport};
use super::orders::{Order, OrderFilter};
use super::{principal, shared};
use crate::analytics::live::ChangeBatch;
use crate::db;
use crate::domain::{Compare, Metric};
use crate::reports::AbnormalCount;

/// Shortest time between two values of one subscription: a burst of writes is sent as
/// one new value.
const COALESCE: Duration = Duration::from_millis(200);
/// Abnormal-order lists move with the clock too (an order becomes overdue without any
/// write): their counts are also looked at this often.
const ABNORMAL_RECHECK: Duration = Duration::from_secs(30);
/// Orders one catch-up may turn into events one by one; beyond that (a bulk import or
/// a mass update by hand) the subscriber gets one `MANY_CHANGED` event saying how many
/// more changed, and refetches its list.
const MAX_EVENTS_PER_BATCH: usize = 5_000;
/// Orders read per statement for events.
const EVENT_CHUNK: usize = 500;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum OrderEventKind {
    /// The order was written for the first time.
    Created,
    /// A later write: status, payment, shipment, after-sale or any other field.
    Changed,
    /// More orders changed at once than are sent one by one (`skipped` of them, with
    /// no `order`): refetch the list.
    ManyChanged,
}

/// A committed write of one order, as the subscriber may see it.
#[derive(SimpleObject)]
pub struct OrderEvent {
    pub kind: OrderEventKind,
    /// The order now, masked like `orders` (null for `MANY_CHANGED`).
    pub order: Option<Order>,
    /// For `MANY_CHANGED`: how many changed orders were not sent one by one.
    pub skipped: i32,
    pub at: DateTime<Utc>,
}

/// The changes that may move an answer over `shop_ids`: waits for the next batch that
/// touches them, then gathers what else arrives within [`COALESCE`]. A subscriber that
/// fell behind the backlog counts as touched (it recomputes everything).
/// How often the stock warnings are recomputed when nothing touched their shops.
const STOCK_RECHECK: Duration = Duration::from_secs(60);

/// `first`, then `compute(shop_ids)` again after each change batch touching the shops
/// (or `recheck` without one), sent only when it differs from the value sent last.
fn on_change<'a, T, F, Fut>(
    ctx: &'a Context<'_>,
    shop_ids: Vec<i64>,
    recheck: Duration,
    first: T,
    compute: F,
) -> impl Stream<Item = async_graphql::Result<T>> + 'a
where
    T: PartialEq + Clone + Send + 'a,
    F: Fn(Vec<i64>) -> Fut + Clone + Send + 'a,
    Fut: std::future::Future<Output = crate::error::AppResult<T>> + Send + 'a,
{
    let changes = shared(ctx).engine.subscribe();
    futures_util::stream::unfold(
        (Some(first), changes, None::<T>),
        move |(mut pending, mut changes, mut last)| {
            let (shop_ids, compute) = (shop_ids.clone(), compute.clone());
            async move {
                loop {
                    let value = match pending.take() {
                        Some(value) => value,
                        None => {
                            next_touching(&mut changes, &shop_ids, Some(recheck)).await?;
                            match compute(shop_ids.clone()).await {
                                Ok(value) => value,
                                Err(e) => return Some((Err(e.into()), (None, changes, last))),
                            }
                        }
                    };
                    if last.as_ref() == Some(&value) {
                        continue;
                    }
                    last = Some(value.clone());
                    return Some((Ok(value), (None, changes, last)));
                }
            }
        },
    )
}

async fn next_touching(
    changes: &mut tokio::sync::broadcast::Receiver<Arc<ChangeBatch>>,
    shop_ids: &[i64],
    timeout: Option<Duration>,
) -> Option<Vec<Arc<ChangeBatch>>> {
    let first = async {
        loop {
            match changes.recv().await {
                Ok(batch) if batch.touches(shop_ids) => return Some(vec![batch]),
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => return Some(vec![ChangeBatch::everything()]),
                Err(RecvError::Closed) => return None,
            }
        }
    };
    let mut batches = match timeout {
        Some(t) => match tokio::time::timeout(t, first).await {
            Ok(found) => found?,
            // Nothing changed: the caller rechecks anyway.
            Err(_) => Vec::new(),
        },
        None => first.await?,
    };
    tokio::time::sleep(COALESCE).await;
    loop {
        match changes.try_recv() {
            Ok(batch) => {
                if batch.touches(shop_ids) {
                    batches.push(batch);
                }
            }
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                batches.push(ChangeBatch::everything());
            }
            Err(_) => break,
        }
    }
    Some(batches)
}

#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// The `kpis` report now, then again each time a committed write changes it (at
    /// most five values a second). Same arguments, scope and permissions as `kpis`.
    #[allow(clippy::too_many_arguments)]
    async fn live_kpis<'a>(
        &self,
        ctx: &'a Context<'_>,
        range: DateRange,
        metrics: Option<Vec<Metric>>,
        filter: Option<AnalyticsFilter>,
        compare: Option<Compare>,
        #[graphql(default = "Asia/Shanghai")] timezone: String,
        #[graphql(default = "CNY")] currency: String,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<KpiReport>> + 'a> {
        let p = principal(ctx)?;
        let args = KpiArgs {
            range,
            metrics,
            filter,
            compare,
            timezone,
            currency,
        };
        // Bad arguments fail the subscription at once, before anything is sent.
        let first = kpi_report(ctx, p, &args).await?;
        let changes = shared(ctx).engine.subscribe();
        let shop_ids = p.shop_ids();
        let state = (Some(first), changes, None::<serde_json::Value>);
        Ok(futures_util::stream::unfold(
            state,
            move |(mut pending, mut changes, mut last)| {
                let args = args.clone();
                let shop_ids = shop_ids.clone();
                async move {
                    loop {
                        let report = match pending.take() {
                            Some(report) => report,
                            None => {
                                next_touching(&mut changes, &shop_ids, None).await?;
                                match kpi_report(ctx, p, &args).await {
                                    Ok(report) => report,
                                    Err(e) => return Some((Err(e), (None, changes, last))),
                                }
                            }
                        };
                        let seen = serde_json::to_value(&report.values).ok();
                        if seen.is_some() && seen == last {
                            continue;
                        }
                        last = seen;
                        return Some((Ok(report), (None, changes, last)));
                    }
                }
            },
        ))
    }

    /// Orders of the caller's scope as they are created or change (status, payment,
    /// shipment, after-sales), once committed, filtered like `orders` and masked like
    /// it. Needs `ORDERS_READ`.
    async fn order_events<'a>(
        &self,
        ctx: &'a Context<'_>,
        filter: Option<OrderFilter>,
    ) -> async_graphql::Result<impl Stream<Item = OrderEvent> + 'a> {
        let p = principal(ctx)?;
        p.require_read(crate::domain::DataSet::OrderRows)?;
        let query = filter.unwrap_or_default().to_query(p)?;
        let changes = shared(ctx).engine.subscribe();
        // The newest `updated_at` sent per order: a batch read again (a catch-up
        // re-reads transactions still open at its previous snapshot) sends nothing new.
        let sent: HashMap<i64, DateTime<Utc>> = HashMap::new();
        let state = (VecDeque::<OrderEvent>::new(), changes, sent);
        Ok(futures_util::stream::unfold(
            state,
            move |(mut queue, mut changes, mut sent)| {
                let query = query.clone();
                async move {
                    loop {
                        if let Some(event) = queue.pop_front() {
                            return Some((event, (queue, changes, sent)));
                        }
                        let batches = next_touching(&mut changes, &query.shop_ids, None).await?;
                        let mut created: HashMap<i64, bool> = HashMap::new();
                        for order in batches.iter().flat_map(|b| b.orders.iter()) {
                            if query.shop_ids.contains(&order.shop_id) {
                                *created.entry(order.id).or_default() |= order.created;
                            }
                        }
                        if created.is_empty() {
                            continue;
                        }
                        let mut ids: Vec<i64> = created.keys().copied().collect();
                        ids.sort_unstable();
                        let skipped = ids.len().saturating_sub(MAX_EVENTS_PER_BATCH);
                        ids.truncate(MAX_EVENTS_PER_BATCH);
                        let mut rows = Vec::with_capacity(ids.len());
                        for chunk in ids.chunks(EVENT_CHUNK) {
                            let mut q = query.clone();
                            q.ids = Some(chunk.to_vec());
                            let limit = chunk.len() as i64;
                            let read = db::run(&shared(ctx).pool, move |c| {
                                db::orders::list(
                                    c,
                                    &q,
                                    db::orders::OrderSort::PlacedAsc,
                                    None,
                                    limit,
                                )
                            })
                            .await;
                            match read {
                                Ok(chunk_rows) => rows.extend(chunk_rows),
                                Err(e) => {
                                    tracing::warn!(error = ?e, "order events: orders could not be read");
                                }
                            }
                        }
                        if sent.len() > 50_000 {
                            sent.clear();
                        }
                        let now = Utc::now();
                        if skipped > 0 {
                            queue.push_back(OrderEvent {
                                kind: OrderEventKind::ManyChanged,
                                order: None,
                                skipped: skipped as i32,
                                at: now,
                            });
                        }
                        for row in rows {
                            if sent.get(&row.id).is_some_and(|at| *at >= row.updated_at) {
                                continue;
                            }
                            sent.insert(row.id, row.updated_at);
                            let kind = if created.get(&row.id).copied().unwrap_or(false) {
                                OrderEventKind::Created
                            } else {
                                OrderEventKind::Changed
                            };
                            queue.push_back(OrderEvent {
                                kind,
                                order: Some(Order(row)),
                                skipped: 0,
                                at: now,
                            });
                        }
                    }
                }
            },
        ))
    }

    /// How many orders each abnormal-order list holds now, then again whenever a count
    /// changes (after writes, and as orders become overdue with time). Narrowed to
    /// shops and platforms like the `orders` filter.
    async fn abnormal_counts<'a>(
        &self,
        ctx: &'a Context<'_>,
        shop_ids: Option<Vec<async_graphql::ID>>,
        platforms: Option<Vec<crate::domain::Platform>>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Vec<AbnormalCount>>> + 'a>
    {
        let p = principal(ctx)?;
        p.require_read(crate::domain::DataSet::OrderRows)?;
        let shop_ids = crate::filters::scoped_shops(p, &shop_ids, &platforms)?;
        let first = crate::reports::abnormal_counts(shared(ctx), shop_ids.clone()).await?;
        Ok(on_change(
            ctx,
            shop_ids,
            ABNORMAL_RECHECK,
            first,
            move |shops| crate::reports::abnormal_counts(shared(ctx), shops),
        ))
    }

    /// Products running out within `withinDays` (default 7), like `stockWarnings` (as
    /// of `asOf`, or of each day as it comes), then again whenever the list changes:
    /// after sales or stock changes of the shops, and at least every minute (days roll
    /// over). Needs `ANALYTICS_READ`.
    async fn stock_warnings<'a>(
        &self,
        ctx: &'a Context<'_>,
        #[graphql(default = 7)] within_days: i32,
        shop_ids: Option<Vec<async_graphql::ID>>,
        timezone: Option<String>,
        as_of: Option<super::scalars::Date>,
    ) -> async_graphql::Result<
        impl Stream<Item = async_graphql::Result<Vec<super::inventory::StockWarning>>> + 'a,
    > {
        let p = principal(ctx)?;
        p.require_read(crate::domain::DataSet::Reports)?;
        let shop_ids = crate::filters::scoped_shops(p, &shop_ids, &None)?;
        let tz = super::inventory::zone(timezone)?;
        let now = move |tz| super::inventory::day_of(as_of, tz);
        let first =
            super::inventory::stock_warnings(ctx, p, within_days, shop_ids.clone(), now(tz), tz)
                .await?;
        Ok(on_change(
            ctx,
            shop_ids,
            STOCK_RECHECK,
            first,
            move |shops| async move {
                let p = principal(ctx)?;
                super::inventory::stock_warnings(ctx, p, within_days, shops, now(tz), tz).await
            },
        ))
    }
}
