//! Orders: the filtered, keyset-paginated list, single orders, and batched loads of
//! their items, after-sales and shipments (for dataloaders: one `= ANY` query each).

use chrono::{DateTime, TimeDelta, Utc};
use diesel::dsl::{exists, sql};
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::schema::{after_sales, order_items, orders, shipments};
use crate::domain::{
    AbnormalKind, AfterSaleKind, AfterSaleStatus, Channel, Dispute, OrderStatus, PaymentMethod,
    SellerFlag,
};
use crate::error::AppResult;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = orders)]
pub struct OrderRow {
    pub id: i64,
    pub shop_id: i64,
    pub order_no: String,
    pub status: OrderStatus,
    pub raw_status: String,
    pub placed_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub payment_method: Option<PaymentMethod>,
    pub goods_amount: i64,
    pub shipping_fee: i64,
    pub discount_amount: i64,
    pub paid_amount: i64,
    pub province_code: Option<String>,
    pub city: Option<String>,
    pub channel: Channel,
    pub creator_id: Option<i64>,
    pub content_id: Option<String>,
    pub commission_rate_bps: i32,
    pub commission_amount: i64,
    pub buyer_id: String,
    pub buyer_nickname: Option<String>,
    pub receiver_name: Option<String>,
    pub receiver_phone: Option<String>,
    pub receiver_address: Option<String>,
    pub buyer_note: Option<String>,
    pub source_updated_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub seller_note: Option<String>,
    pub seller_flag: Option<SellerFlag>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = order_items)]
pub struct OrderItemRow {
    pub order_id: i64,
    pub line_no: i32,
    pub product_id: Option<i64>,
    pub sku: String,
    pub quantity: i32,
    pub unit_price: i64,
    pub paid_amount: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = after_sales)]
pub struct AfterSaleRow {
    pub id: i64,
    pub order_id: i64,
    pub external_id: String,
    pub kind: AfterSaleKind,
    pub status: AfterSaleStatus,
    pub reason: Option<String>,
    pub refund_amount: i64,
    pub requested_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub dispute: Dispute,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = shipments)]
pub struct ShipmentRow {
    pub order_id: i64,
    pub carrier: String,
    pub tracking_no: String,
    pub shipped_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Sort orders of the orders list. Every order ends with `id` so that keys are unique
/// and cursors stay stable while new orders arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderSort {
    PlacedDesc,
    PlacedAsc,
    AmountDesc,
    AmountAsc,
}

/// Where the previous page ended: the sort key and id of its last row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderCursor {
    Placed(DateTime<Utc>, i64),
    Amount(i64, i64),
}

/// A validated orders query; the shop list is already narrowed to the caller's scope.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    pub shop_ids: Vec<i64>,
    pub statuses: Option<Vec<String>>,
    pub payment_methods: Option<Vec<String>>,
    pub placed_from: Option<DateTime<Utc>>,
    pub placed_to: Option<DateTime<Utc>>,
    pub order_no: Option<String>,
    pub product_id: Option<i64>,
    pub buyer_nickname: Option<String>,
    pub provinces: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub creator_id: Option<i64>,
    pub has_after_sale: Option<bool>,
    /// Only orders on this work list as of the given instant.
    pub abnormal: Option<(AbnormalKind, DateTime<Utc>)>,
    /// Only these orders (live order events).
    pub ids: Option<Vec<i64>>,
    pub seller_flags: Option<Vec<String>>,
    pub has_seller_note: Option<bool>,
}

type BoxedOrders<'a> = orders::BoxedQuery<'a, diesel::pg::Pg>;

/// Escapes `%`, `_` and `\` for a `LIKE` pattern.
fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn filtered(q: &OrderQuery) -> BoxedOrders<'static> {
    let mut query = orders::table
        .filter(orders::shop_id.eq_any(q.shop_ids.clone()))
        .into_boxed();
    if let Some(ids) = &q.ids {
        query = query.filter(orders::id.eq_any(ids.clone()));
    }
    if let Some(statuses) = &q.statuses {
        query = query.filter(orders::status.eq_any(statuses.clone()));
    }
    if let Some(methods) = &q.payment_methods {
        query = query.filter(orders::payment_method.eq_any(methods.clone()));
    }
    if let Some(from) = q.placed_from {
        query = query.filter(orders::placed_at.ge(from));
    }
    if let Some(to) = q.placed_to {
        query = query.filter(orders::placed_at.lt(to));
    }
    if let Some(no) = &q.order_no {
        query = query.filter(orders::order_no.eq(no.clone()));
    }
    if let Some(product_id) = q.product_id {
        query = query.filter(exists(
            order_items::table
                .filter(order_items::order_id.eq(orders::id))
                .filter(order_items::product_id.eq(product_id)),
        ));
    }
    if let Some(nickname) = &q.buyer_nickname {
        query = query.filter(orders::buyer_nickname.ilike(format!("%{}%", like_escape(nickname))));
    }
    if let Some(provinces) = &q.provinces {
        query = query.filter(orders::province_code.eq_any(provinces.clone()));
    }
    if let Some(channels) = &q.channels {
        query = query.filter(orders::channel.eq_any(channels.clone()));
    }
    if let Some(creator_id) = q.creator_id {
        query = query.filter(orders::creator_id.eq(creator_id));
    }
    if let Some(has) = q.has_after_sale {
        let any = exists(after_sales::table.filter(after_sales::order_id.eq(orders::id)));
        query = if has {
            query.filter(any)
        } else {
            query.filter(diesel::dsl::not(any))
        };
    }
    if let Some((kind, as_of)) = q.abnormal {
        query = abnormal(query, kind, as_of);
    }
    if let Some(flags) = &q.seller_flags {
        query = query.filter(orders::seller_flag.eq_any(flags.clone()));
    }
    if let Some(has) = q.has_seller_note {
        query = if has {
            query.filter(orders::seller_note.is_not_null())
        } else {
            query.filter(orders::seller_note.is_null())
        };
    }
    query
}

/// The work-list conditions (the `abnormalOrders` kinds). Status and case predicates are SQL
/// literals that match the partial indexes of migration 6, so the planner uses them.
fn abnormal(
    query: BoxedOrders<'static>,
    kind: AbnormalKind,
    as_of: DateTime<Utc>,
) -> BoxedOrders<'static> {
    match kind {
        AbnormalKind::UnpaidOver24h => query
            .filter(sql::<Bool>("orders.status = 'PENDING_PAYMENT'"))
            .filter(orders::placed_at.lt(as_of - TimeDelta::hours(24))),
        AbnormalKind::ShipOverdue => query
            .filter(sql::<Bool>("orders.status = 'AWAITING_SHIPMENT'"))
            .filter(orders::paid_at.lt(as_of - TimeDelta::hours(48))),
        AbnormalKind::DeliveryStalled => query
            .filter(sql::<Bool>("orders.status = 'SHIPPED'"))
            .filter(orders::shipped_at.lt(as_of - TimeDelta::days(7))),
        AbnormalKind::RefundPending => query.filter(
            orders::id.eq_any(
                after_sales::table
                    .filter(sql::<Bool>(
                        "after_sales.status IN ('REQUESTED', 'APPROVED') \
                         AND after_sales.kind IN ('REFUND_ONLY', 'RETURN_REFUND')",
                    ))
                    .select(after_sales::order_id),
            ),
        ),
        AbnormalKind::DisputeOpen => query.filter(
            orders::id.eq_any(
                after_sales::table
                    .filter(sql::<Bool>("after_sales.dispute = 'OPEN'"))
                    .select(after_sales::order_id),
            ),
        ),
    }
}

/// One page of orders: up to `limit` rows after `after`, in `sort` order.
pub fn list(
    conn: &mut PgConnection,
    q: &OrderQuery,
    sort: OrderSort,
    after: Option<OrderCursor>,
    limit: i64,
) -> AppResult<Vec<OrderRow>> {
    if q.shop_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = filtered(q);
    query = match (sort, after) {
        (OrderSort::PlacedDesc, Some(OrderCursor::Placed(at, id))) => query.filter(
            orders::placed_at
                .lt(at)
                .or(orders::placed_at.eq(at).and(orders::id.lt(id))),
        ),
        (OrderSort::PlacedAsc, Some(OrderCursor::Placed(at, id))) => query.filter(
            orders::placed_at
                .gt(at)
                .or(orders::placed_at.eq(at).and(orders::id.gt(id))),
        ),
        (OrderSort::AmountDesc, Some(OrderCursor::Amount(amount, id))) => query.filter(
            orders::paid_amount
                .lt(amount)
                .or(orders::paid_amount.eq(amount).and(orders::id.lt(id))),
        ),
        (OrderSort::AmountAsc, Some(OrderCursor::Amount(amount, id))) => query.filter(
            orders::paid_amount
                .gt(amount)
                .or(orders::paid_amount.eq(amount).and(orders::id.gt(id))),
        ),
        _ => query,
    };
    query = match sort {
        OrderSort::PlacedDesc => query.order((orders::placed_at.desc(), orders::id.desc())),
        OrderSort::PlacedAsc => query.order((orders::placed_at.asc(), orders::id.asc())),
        OrderSort::AmountDesc => query.order((orders::paid_amount.desc(), orders::id.desc())),
        OrderSort::AmountAsc => query.order((orders::paid_amount.asc(), orders::id.asc())),
    };
    Ok(query
        .select(OrderRow::as_select())
        .limit(limit)
        .load(conn)?)
}

/// How many orders match (for `totalCount`, only computed when asked for).
pub fn count(conn: &mut PgConnection, q: &OrderQuery) -> AppResult<i64> {
    if q.shop_ids.is_empty() {
        return Ok(0);
    }
    Ok(filtered(q).count().get_result(conn)?)
}

/// One order, only when it belongs to one of `shop_ids`.
pub fn find(conn: &mut PgConnection, id: i64, shop_ids: &[i64]) -> AppResult<Option<OrderRow>> {
    Ok(orders::table
        .filter(orders::id.eq(id))
        .filter(orders::shop_id.eq_any(shop_ids))
        .select(OrderRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn items_of(conn: &mut PgConnection, order_ids: &[i64]) -> AppResult<Vec<OrderItemRow>> {
    Ok(order_items::table
        .filter(order_items::order_id.eq_any(order_ids))
        .order((order_items::order_id, order_items::line_no))
        .select(OrderItemRow::as_select())
        .load(conn)?)
}

pub fn after_sales_of(conn: &mut PgConnection, order_ids: &[i64]) -> AppResult<Vec<AfterSaleRow>> {
    Ok(after_sales::table
        .filter(after_sales::order_id.eq_any(order_ids))
        .order((
            after_sales::order_id,
            after_sales::requested_at,
            after_sales::id,
        ))
        .select(AfterSaleRow::as_select())
        .load(conn)?)
}

pub fn shipments_of(conn: &mut PgConnection, order_ids: &[i64]) -> AppResult<Vec<ShipmentRow>> {
    Ok(shipments::table
        .filter(shipments::order_id.eq_any(order_ids))
        .select(ShipmentRow::as_select())
        .load(conn)?)
}

/// Streams every matching order, oldest first, to `each` (which returns `false` to
/// stop early), from one consistent snapshot. Rows arrive one at a time from the
/// server, so memory does not grow with the result. Returns how many rows were read.
pub fn stream(
    conn: &mut PgConnection,
    q: &OrderQuery,
    statement_timeout_ms: u64,
    mut each: impl FnMut(OrderRow) -> AppResult<bool>,
) -> AppResult<u64> {
    use diesel::connection::SimpleConnection;
    use diesel::pg::PgRowByRowLoadingMode;
    if q.shop_ids.is_empty() {
        return Ok(0);
    }
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(|conn| {
            conn.batch_execute(&format!(
                "SET LOCAL statement_timeout = {statement_timeout_ms}"
            ))?;
            let rows = filtered(q)
                .order((orders::placed_at.asc(), orders::id.asc()))
                .select(OrderRow::as_select())
                .load_iter::<OrderRow, PgRowByRowLoadingMode>(conn)?;
            let mut read = 0u64;
            for row in rows {
                read += 1;
                if !each(row?)? {
                    break;
                }
            }
            Ok(read)
        })
}
