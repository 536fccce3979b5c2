//! Reads what the analytic store is built from: orders with their lines and
//! after-sales, shops, product categories, exchange factors, and the change log.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Date, Text};

use super::schema::{order_items, orders, products, provinces, shipments, shops};
use crate::error::AppResult;

/// One order as the analytic store needs it, read from `orders`, `order_items` and
/// `after_sales`.
#[derive(Debug, Clone)]
pub struct OrderFacts {
    pub id: i64,
    pub shop_id: i64,
    /// Seconds since the epoch (window boundaries are whole seconds).
    pub placed_at: i64,
    pub paid: bool,
    pub status: String,
    pub channel: String,
    /// The shipment's carrier, when the order has one.
    pub carrier: Option<String>,
    pub payment_method: Option<String>,
    pub province: Option<String>,
    pub creator_id: Option<i64>,
    pub buyer: String,
    pub paid_amount: i64,
    pub commission: i64,
    /// `delivered_at - shipped_at` in microseconds when both are set.
    pub delivery_us: Option<i64>,
    /// An after-sale is `REFUNDED`.
    pub refunded: bool,
    /// The refund amounts of its `REFUNDED` after-sales.
    pub refund_amount: i64,
    /// An after-sale has a dispute.
    pub disputed: bool,
    /// Item lines in `line_no` order.
    pub items: Vec<ItemFacts>,
    /// For PENDING_PAYMENT, AWAITING_SHIPMENT and SHIPPED: when that status began
    /// (placed, paid, shipped), in microseconds.
    pub since_us: Option<i64>,
    /// A refund or return-and-refund case is requested or approved.
    pub refund_pending: bool,
    /// An after-sale has an open dispute.
    pub dispute_open: bool,
}

#[derive(Debug, Clone)]
pub struct ItemFacts {
    pub product_id: Option<i64>,
    pub quantity: i32,
    pub paid_amount: i64,
}

/// A shop as the analytic store needs it.
#[derive(Debug, Clone)]
pub struct ShopFacts {
    pub id: i64,
    pub platform: String,
    pub currency: String,
}

type OrderRow = (
    i64,
    i64,
    DateTime<Utc>,
    bool,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    String,
    i64,
    i64,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

#[derive(QueryableByName)]
struct AfterSaleRow {
    #[diesel(sql_type = BigInt)]
    order_id: i64,
    #[diesel(sql_type = Bool)]
    refunded: bool,
    #[diesel(sql_type = BigInt)]
    refund_minor: i64,
    #[diesel(sql_type = Bool)]
    disputed: bool,
    #[diesel(sql_type = Bool)]
    refund_pending: bool,
    #[diesel(sql_type = Bool)]
    dispute_open: bool,
}

/// The smallest and largest order id.
pub fn order_id_bounds(conn: &mut PgConnection) -> AppResult<Option<(i64, i64)>> {
    let (min, max): (Option<i64>, Option<i64>) = orders::table
        .select((diesel::dsl::min(orders::id), diesel::dsl::max(orders::id)))
        .first(conn)?;
    Ok(min.zip(max))
}

/// Orders with ids in `lo..hi`.
pub fn orders_in_range(conn: &mut PgConnection, lo: i64, hi: i64) -> AppResult<Vec<OrderFacts>> {
    let rows: Vec<OrderRow> = orders::table
        .filter(orders::id.ge(lo).and(orders::id.lt(hi)))
        .select(order_columns())
        .load(conn)?;
    let items: Vec<(i64, Option<i64>, i32, i64)> = order_items::table
        .filter(
            order_items::order_id
                .ge(lo)
                .and(order_items::order_id.lt(hi)),
        )
        .order((order_items::order_id, order_items::line_no))
        .select((
            order_items::order_id,
            order_items::product_id,
            order_items::quantity,
            order_items::paid_amount,
        ))
        .load(conn)?;
    let after: Vec<AfterSaleRow> = diesel::sql_query(include_str!("facts_after_sales_range.sql"))
        .bind::<BigInt, _>(lo)
        .bind::<BigInt, _>(hi)
        .load(conn)?;
    let carriers: Vec<(i64, String)> = shipments::table
        .filter(shipments::order_id.ge(lo).and(shipments::order_id.lt(hi)))
        .select((shipments::order_id, shipments::carrier))
        .load(conn)?;
    Ok(assemble(rows, items, after, carriers))
}

/// The orders with these ids (ids that no longer exist are absent).
pub fn orders_by_ids(conn: &mut PgConnection, ids: &[i64]) -> AppResult<Vec<OrderFacts>> {
    let rows: Vec<OrderRow> = orders::table
        .filter(orders::id.eq_any(ids))
        .select(order_columns())
        .load(conn)?;
    let items: Vec<(i64, Option<i64>, i32, i64)> = order_items::table
        .filter(order_items::order_id.eq_any(ids))
        .order((order_items::order_id, order_items::line_no))
        .select((
            order_items::order_id,
            order_items::product_id,
            order_items::quantity,
            order_items::paid_amount,
        ))
        .load(conn)?;
    let after: Vec<AfterSaleRow> = diesel::sql_query(include_str!("facts_after_sales_ids.sql"))
        .bind::<Array<BigInt>, _>(ids)
        .load(conn)?;
    let carriers: Vec<(i64, String)> = shipments::table
        .filter(shipments::order_id.eq_any(ids))
        .select((shipments::order_id, shipments::carrier))
        .load(conn)?;
    Ok(assemble(rows, items, after, carriers))
}

#[allow(clippy::type_complexity)]
fn order_columns() -> (
    orders::id,
    orders::shop_id,
    orders::placed_at,
    diesel::dsl::IsNotNull<orders::paid_at>,
    orders::status,
    orders::channel,
    orders::payment_method,
    orders::province_code,
    orders::creator_id,
    orders::buyer_id,
    orders::paid_amount,
    orders::commission_amount,
    orders::shipped_at,
    orders::delivered_at,
    orders::paid_at,
) {
    (
        orders::id,
        orders::shop_id,
        orders::placed_at,
        orders::paid_at.is_not_null(),
        orders::status,
        orders::channel,
        orders::payment_method,
        orders::province_code,
        orders::creator_id,
        orders::buyer_id,
        orders::paid_amount,
        orders::commission_amount,
        orders::shipped_at,
        orders::delivered_at,
        orders::paid_at,
    )
}

fn assemble(
    rows: Vec<OrderRow>,
    items: Vec<(i64, Option<i64>, i32, i64)>,
    after: Vec<AfterSaleRow>,
    carriers: Vec<(i64, String)>,
) -> Vec<OrderFacts> {
    let mut carriers: HashMap<i64, String> = carriers.into_iter().collect();
    let mut lines: HashMap<i64, Vec<ItemFacts>> = HashMap::with_capacity(rows.len());
    for (order_id, product_id, quantity, paid_amount) in items {
        lines.entry(order_id).or_default().push(ItemFacts {
            product_id,
            quantity,
            paid_amount,
        });
    }
    let after: HashMap<i64, AfterSaleRow> = after.into_iter().map(|a| (a.order_id, a)).collect();
    rows.into_iter()
        .map(|r| {
            let a = after.get(&r.0);
            // The instant an open status's clock runs from (the abnormal-order lists).
            let since = match r.4.as_str() {
                "PENDING_PAYMENT" => Some(r.2),
                "AWAITING_SHIPMENT" => r.14,
                "SHIPPED" => r.12,
                _ => None,
            };
            OrderFacts {
                since_us: since.map(|t| t.timestamp_micros()),
                refund_pending: a.is_some_and(|a| a.refund_pending),
                dispute_open: a.is_some_and(|a| a.dispute_open),
                id: r.0,
                shop_id: r.1,
                placed_at: r.2.timestamp(),
                paid: r.3,
                status: r.4,
                channel: r.5,
                carrier: carriers.remove(&r.0),
                payment_method: r.6,
                province: r.7,
                creator_id: r.8,
                buyer: r.9,
                paid_amount: r.10,
                commission: r.11,
                delivery_us: match (r.12, r.13) {
                    (Some(shipped), Some(delivered)) => {
                        Some((delivered - shipped).num_microseconds().unwrap_or(0))
                    }
                    _ => None,
                },
                refunded: a.is_some_and(|a| a.refunded),
                refund_amount: a.map_or(0, |a| a.refund_minor),
                disputed: a.is_some_and(|a| a.disputed),
                items: lines.remove(&r.0).unwrap_or_default(),
            }
        })
        .collect()
}

/// Every shop, or the shops with these ids.
pub fn shops(conn: &mut PgConnection, ids: Option<&[i64]>) -> AppResult<Vec<ShopFacts>> {
    let mut query = shops::table
        .select((shops::id, shops::platform, shops::currency))
        .into_boxed();
    if let Some(ids) = ids {
        query = query.filter(shops::id.eq_any(ids.to_vec()));
    }
    Ok(query
        .load::<(i64, String, String)>(conn)?
        .into_iter()
        .map(|(id, platform, currency)| ShopFacts {
            id,
            platform,
            currency,
        })
        .collect())
}

/// Product categories: every product, or these.
pub fn product_categories(
    conn: &mut PgConnection,
    ids: Option<&[i64]>,
) -> AppResult<Vec<(i64, String)>> {
    let mut query = products::table
        .select((products::id, products::category))
        .into_boxed();
    if let Some(ids) = ids {
        query = query.filter(products::id.eq_any(ids.to_vec()));
    }
    Ok(query.load(conn)?)
}

/// Province code → macro region.
pub fn province_regions(conn: &mut PgConnection) -> AppResult<HashMap<String, String>> {
    Ok(provinces::table
        .select((provinces::code, provinces::region))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect())
}

#[derive(QueryableByName)]
struct FactorRow {
    #[diesel(sql_type = Date)]
    day: NaiveDate,
    #[diesel(sql_type = Text)]
    from_currency: String,
    #[diesel(sql_type = Text)]
    to_currency: String,
    #[diesel(sql_type = Text)]
    factor: String,
}

/// Every exchange factor `rate(from) / rate(to)` of every day with rates, as
/// PostgreSQL's numeric division computes it (the reference's conversion).
pub fn factors(conn: &mut PgConnection) -> AppResult<Vec<(NaiveDate, String, String, String)>> {
    let rows: Vec<FactorRow> = diesel::sql_query(include_str!("facts_factors.sql")).load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.day, r.from_currency, r.to_currency, r.factor))
        .collect())
}

#[derive(QueryableByName)]
struct Horizon {
    #[diesel(sql_type = Text)]
    xmin: String,
    #[diesel(sql_type = Text)]
    pruned_below: String,
}

/// The snapshot's xmin (every transaction below it has finished) and the xid below
/// which the change log has been pruned. Runs first in a snapshot's transaction.
pub fn horizon(conn: &mut PgConnection) -> AppResult<(u64, u64)> {
    let h: Horizon = diesel::sql_query(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin, \
                (SELECT below::text FROM change_log_pruned) AS pruned_below",
    )
    .get_result(conn)?;
    Ok((
        h.xmin.parse().unwrap_or(0),
        h.pruned_below.parse().unwrap_or(0),
    ))
}

#[derive(QueryableByName)]
struct ChangeRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The change-log entries of every transaction at or above `xid` (those not yet
/// finished at the previous snapshot), deduplicated.
pub fn changes_since(conn: &mut PgConnection, xid: u64) -> AppResult<Vec<(char, i64)>> {
    let rows: Vec<ChangeRow> = diesel::sql_query(
        "SELECT DISTINCT kind::text AS kind, id FROM change_log WHERE xid >= $1::text::xid8",
    )
    .bind::<Text, _>(xid.to_string())
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.kind.chars().next().unwrap_or('?'), r.id))
        .collect())
}

/// Deletes change-log entries older than `keep_seconds` of transactions that have
/// finished, and records below which xid the log is complete no more.
pub fn prune_changes(conn: &mut PgConnection, keep_seconds: i64) -> AppResult<usize> {
    let deleted = diesel::sql_query(include_str!("facts_prune.sql"))
        .bind::<BigInt, _>(keep_seconds)
        .execute(conn)?;
    Ok(deleted)
}
