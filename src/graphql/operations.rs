//! The seller's daily operations: the abnormal-order work lists (异常订单), shipping an
//! order and deciding after-sale cases.

use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::Utc;

use super::orders::{order_page, AfterSale, Order, OrderConnection, OrderFilter, OrderOrder};
use super::{parse_id, principal, shared};
use crate::auth::Principal;
use crate::db;
use crate::domain::{AbnormalKind, AfterSaleDecision, DataSet, Permission, Platform};
use crate::error::{AppError, AppResult};

#[derive(Default)]
pub struct OperationsQuery;

#[Object]
impl OperationsQuery {
    /// Orders on one work list, as of now: `UNPAID_OVER_24H` (placed over 24 h ago, not
    /// paid), `SHIP_OVERDUE` (paid over 48 h ago, not shipped), `REFUND_PENDING` (a
    /// refund case requested or approved, not refunded), `DISPUTE_OPEN`, and
    /// `DELIVERY_STALLED` (shipped over 7 days ago, not delivered). Same filters,
    /// ordering and cursors as `orders`.
    #[graphql(complexity = "(first.clamp(0, 200) as usize) * child_complexity + 10")]
    async fn abnormal_orders(
        &self,
        ctx: &Context<'_>,
        kind: AbnormalKind,
        filter: Option<OrderFilter>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        order_by: Option<OrderOrder>,
    ) -> async_graphql::Result<OrderConnection> {
        let p = principal(ctx)?;
        p.require_read(DataSet::OrderRows)?;
        let mut query = filter.unwrap_or_default().to_query(p)?;
        query.abnormal = Some((kind, Utc::now()));
        Ok(order_page(ctx, query, first, after, order_by).await?)
    }
}

/// The result of `shipOrder`.
#[derive(SimpleObject)]
pub struct ShipOrderPayload {
    pub order: Order,
    /// True when this exact shipment had already been recorded and nothing changed.
    pub already_shipped: bool,
}

/// The result of `resolveAfterSale`.
#[derive(SimpleObject)]
pub struct ResolveAfterSalePayload {
    pub after_sale: AfterSale,
    pub order: Order,
    /// True when this decision had already been recorded and nothing changed.
    pub already_resolved: bool,
}

#[derive(Default)]
pub struct OperationsMutation;

/// The caller's shops with their platforms (status codes are written per platform).
fn shop_platforms(p: &Principal) -> Vec<(i64, Platform)> {
    p.shops
        .iter()
        .filter_map(|s| Platform::parse(&s.platform).map(|platform| (s.id, platform)))
        .collect()
}

/// Trims a required free-text argument and bounds its length.
fn text_arg(field: &str, value: &str, max: usize) -> AppResult<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(AppError::bad_input(format!(
            "{field} must be 1 to {max} characters"
        )));
    }
    crate::domain::check_plain_text(field, value, max).map_err(AppError::bad_input)?;
    Ok(value.to_string())
}

#[Object]
impl OperationsMutation {
    /// Ships an `AWAITING_SHIPMENT` order (needs `ORDERS_SHIP`). Repeating the call with
    /// the same carrier and tracking number is harmless; a different one is refused.
    async fn ship_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        carrier: String,
        tracking_no: String,
    ) -> async_graphql::Result<ShipOrderPayload> {
        let p = principal(ctx)?;
        p.require(Permission::OrdersShip)?;
        let order_id = parse_id("id", &id)?;
        let carrier = text_arg("carrier", &carrier, 64)?;
        let tracking_no = text_arg("trackingNo", &tracking_no, 64)?;
        let (actor, shops) = (p.actor(), shop_platforms(p));
        let shipped = db::run(&shared(ctx).pool, move |c| {
            db::operations::ship(
                c,
                actor,
                &shops,
                order_id,
                &carrier,
                &tracking_no,
                Utc::now(),
            )
        })
        .await?;
        Ok(ShipOrderPayload {
            order: Order(shipped.order),
            already_shipped: !shipped.changed,
        })
    }

    /// Approves or rejects an after-sale case (needs `AFTER_SALES_HANDLE`). Approving a
    /// refund records `refundAmount` (minor units; default: the amount asked for), at
    /// most what is still refundable; a full refund closes the order (`CLOSED`).
    async fn resolve_after_sale(
        &self,
        ctx: &Context<'_>,
        id: ID,
        decision: AfterSaleDecision,
        note: Option<String>,
        refund_amount: Option<i64>,
    ) -> async_graphql::Result<ResolveAfterSalePayload> {
        let p = principal(ctx)?;
        p.require(Permission::AfterSalesHandle)?;
        let case_id = parse_id("id", &id)?;
        let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        if note.as_ref().is_some_and(|n| n.chars().count() > 500) {
            return Err(AppError::bad_input("note must be at most 500 characters").into());
        }
        if refund_amount.is_some_and(|a| a <= 0) {
            return Err(AppError::bad_input("refundAmount must be positive").into());
        }
        let (actor, shops) = (p.actor(), shop_platforms(p));
        let resolved = db::run(&shared(ctx).pool, move |c| {
            let decision = db::operations::Decision {
                decision,
                note: note.as_deref(),
                refund_amount,
            };
            db::operations::resolve_after_sale(c, actor, &shops, case_id, &decision, Utc::now())
        })
        .await?;
        Ok(ResolveAfterSalePayload {
            after_sale: AfterSale(resolved.case),
            order: Order(resolved.order),
            already_resolved: !resolved.changed,
        })
    }
}
