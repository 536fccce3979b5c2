//! The orders service: reading orders in the caller's scope — a page of a filtered list
//! (`orders`, `abnormalOrders`) with stable opaque cursors in either ordering, one order
//! by id, and how many match. Needs `ORDERS_READ` (the order rows data set).

use async_graphql::{Enum, InputObject, ID};
use base64::Engine;
use chrono::{DateTime, Utc};

use crate::auth::Principal;
use crate::db::orders::{OrderCursor, OrderQuery, OrderRow, OrderSort};
use crate::db::{self};
use crate::domain::{AbnormalKind, DataSet};
use crate::error::{AppError, AppResult};
use crate::filters::OrderFilter;
use crate::state::Services;

#[derive(Enum, Copy, Clone, PartialEq, Eq, Default)]
pub enum OrderSortField {
    #[default]
    PlacedAt,
    PaidAmount,
}

#[derive(Enum, Copy, Clone, PartialEq, Eq, Default)]
pub enum SortDirection {
    Asc,
    #[default]
    Desc,
}

#[derive(InputObject, Clone, Copy, Default)]
pub struct OrderOrder {
    #[graphql(default)]
    pub field: OrderSortField,
    #[graphql(default)]
    pub direction: SortDirection,
}

fn sort_of(order: OrderOrder) -> OrderSort {
    match (order.field, order.direction) {
        (OrderSortField::PlacedAt, SortDirection::Desc) => OrderSort::PlacedDesc,
        (OrderSortField::PlacedAt, SortDirection::Asc) => OrderSort::PlacedAsc,
        (OrderSortField::PaidAmount, SortDirection::Desc) => OrderSort::AmountDesc,
        (OrderSortField::PaidAmount, SortDirection::Asc) => OrderSort::AmountAsc,
    }
}

/// Cursors are opaque to clients: base64 of the sort key and the id of a row.
pub fn encode_cursor(sort: OrderSort, row: &OrderRow) -> String {
    let raw = match sort {
        OrderSort::PlacedDesc | OrderSort::PlacedAsc => {
            format!("p:{}:{}", row.placed_at.timestamp_micros(), row.id)
        }
        OrderSort::AmountDesc | OrderSort::AmountAsc => format!("a:{}:{}", row.paid_amount, row.id),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_cursor(sort: OrderSort, cursor: &str) -> AppResult<OrderCursor> {
    let bad = || AppError::bad_input("after is not a cursor of this list and ordering");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let mut parts = raw.splitn(3, ':');
    let (kind, key, id) = (parts.next(), parts.next(), parts.next());
    let id: i64 = id.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let key: i64 = key.and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    match (kind, sort) {
        (Some("p"), OrderSort::PlacedDesc | OrderSort::PlacedAsc) => {
            let at = DateTime::from_timestamp_micros(key).ok_or_else(bad)?;
            Ok(OrderCursor::Placed(at, id))
        }
        (Some("a"), OrderSort::AmountDesc | OrderSort::AmountAsc) => {
            Ok(OrderCursor::Amount(key, id))
        }
        _ => Err(bad()),
    }
}

/// One page of a list: each row with its cursor, whether more follow, and the query
/// (for a total count asked later).
pub struct Page {
    pub rows: Vec<(String, OrderRow)>,
    pub has_next_page: bool,
    pub query: OrderQuery,
}

/// Up to `first` orders of `filter` in `p`'s scope after the cursor `after`; with
/// `abnormal`, only those on that work list now.
pub async fn list(
    services: &Services,
    p: &Principal,
    filter: Option<OrderFilter>,
    abnormal: Option<AbnormalKind>,
    first: i32,
    after: Option<&str>,
    order_by: Option<OrderOrder>,
) -> AppResult<Page> {
    p.require_read(DataSet::OrderRows)?;
    let mut query = filter.unwrap_or_default().to_query(p)?;
    query.abnormal = abnormal.map(|kind| (kind, Utc::now()));
    let limits = &services.settings.limits;
    if first < 0 || first > limits.max_page_size {
        return Err(AppError::bad_input(format!(
            "first must be between 0 and {}",
            limits.max_page_size
        )));
    }
    let sort = sort_of(order_by.unwrap_or_default());
    let cursor = after.map(|c| decode_cursor(sort, c)).transpose()?;
    let q = query.clone();
    let mut rows = db::run(&services.pool, move |c| {
        db::orders::list(c, &q, sort, cursor, i64::from(first) + 1)
    })
    .await?;
    let has_next_page = rows.len() > first as usize;
    rows.truncate(first as usize);
    Ok(Page {
        rows: rows
            .into_iter()
            .map(|row| (encode_cursor(sort, &row), row))
            .collect(),
        has_next_page,
        query,
    })
}

/// One order in `p`'s scope; another tenant's order is `None` exactly like a missing
/// one (and so is an id that is not ours).
pub async fn find(services: &Services, p: &Principal, id: &ID) -> AppResult<Option<OrderRow>> {
    p.require_read(DataSet::OrderRows)?;
    let Ok(id) = id.parse::<i64>() else {
        return Ok(None);
    };
    let shop_ids = p.shop_ids();
    db::run(&services.pool, move |c| db::orders::find(c, id, &shop_ids)).await
}

/// How many orders a page's query matches, across all pages.
pub async fn count(services: &Services, query: OrderQuery) -> AppResult<i64> {
    db::run(&services.pool, move |c| db::orders::count(c, &query)).await
}
