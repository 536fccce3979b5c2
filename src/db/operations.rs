//! Order operations a seller performs here rather than on the platform: shipping an
//! order and deciding an after-sale case. Each runs in one transaction that locks the
//! rows it changes, sets the shops' data versions and writes the audit entry.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::audit::{self, Actor};
use super::orders::{AfterSaleRow, OrderRow, ShipmentRow};
use super::schema::{after_sales, orders, shipments};
use crate::domain::{
    raw_status_for, AfterSaleDecision, AfterSaleKind, AfterSaleStatus, OrderStatus, Platform,
};
use crate::error::{AppError, AppResult};

/// What a write to one order (`ship`, `annotate`) did.
pub struct OrderWrite {
    pub order: OrderRow,
    /// False when the order already was so (an idempotent repeat).
    pub changed: bool,
}

fn locked_order(conn: &mut PgConnection, id: i64, shop_ids: &[i64]) -> AppResult<OrderRow> {
    orders::table
        .filter(orders::id.eq(id))
        .filter(orders::shop_id.eq_any(shop_ids))
        .select(OrderRow::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::NotFound("order not found".into()))
}

fn platform_of(order: &OrderRow, shops: &[(i64, Platform)]) -> AppResult<Platform> {
    shops
        .iter()
        .find(|(id, _)| *id == order.shop_id)
        .map(|(_, p)| *p)
        .ok_or_else(|| AppError::NotFound("order not found".into()))
}

/// Records the shipment of an `AWAITING_SHIPMENT` order. Repeating the call with the
/// same carrier and tracking number changes nothing; a different one is refused.
pub fn ship(
    conn: &mut PgConnection,
    actor: Actor,
    shops: &[(i64, Platform)],
    order_id: i64,
    carrier: &str,
    tracking_no: &str,
    now: DateTime<Utc>,
) -> AppResult<OrderWrite> {
    let shop_ids: Vec<i64> = shops.iter().map(|(id, _)| *id).collect();
    conn.transaction(|conn| {
        let order = locked_order(conn, order_id, &shop_ids)?;
        let existing: Option<ShipmentRow> = shipments::table
            .filter(shipments::order_id.eq(order.id))
            .select(ShipmentRow::as_select())
            .first(conn)
            .optional()?;
        if let Some(shipment) = existing {
            if shipment.tracking_no == tracking_no && shipment.carrier == carrier {
                return Ok(OrderWrite {
                    order,
                    changed: false,
                });
            }
            return Err(AppError::bad_input(format!(
                "order {} was already shipped with {} {}",
                order.id, shipment.carrier, shipment.tracking_no
            )));
        }
        if order.status != OrderStatus::AwaitingShipment {
            return Err(AppError::bad_input(format!(
                "order {} is {}; only AWAITING_SHIPMENT orders can be shipped",
                order.id, order.status
            )));
        }
        let platform = platform_of(&order, shops)?;
        diesel::insert_into(shipments::table)
            .values((
                shipments::order_id.eq(order.id),
                shipments::carrier.eq(carrier),
                shipments::tracking_no.eq(tracking_no),
                shipments::shipped_at.eq(now),
            ))
            .execute(conn)?;
        let order: OrderRow = diesel::update(orders::table.filter(orders::id.eq(order.id)))
            .set((
                orders::status.eq(OrderStatus::Shipped.as_str()),
                orders::raw_status.eq(raw_status_for(platform, OrderStatus::Shipped)),
                orders::shipped_at.eq(now),
                orders::updated_at.eq(now),
            ))
            .returning(OrderRow::as_returning())
            .get_result(conn)?;
        written(
            conn,
            actor,
            order,
            "order.ship",
            serde_json::json!({ "carrier": carrier, "trackingNo": tracking_no }),
        )
    })
}

/// What `resolve_after_sale` did.
pub struct Resolved {
    pub case: AfterSaleRow,
    pub order: OrderRow,
    /// False when the same decision had already been recorded (an idempotent repeat).
    pub changed: bool,
}

/// A seller's decision on an after-sale case.
pub struct Decision<'a> {
    pub decision: AfterSaleDecision,
    pub note: Option<&'a str>,
    /// Minor units of the shop's currency; defaults to the amount the buyer asked for.
    pub refund_amount: Option<i64>,
}

/// Approves or rejects an after-sale case. Approving a refund records it (at most what
/// is still refundable of the paid amount); when the order's refunds reach its paid
/// amount the order is `CLOSED`. Approving an exchange records the approval only.
pub fn resolve_after_sale(
    conn: &mut PgConnection,
    actor: Actor,
    shops: &[(i64, Platform)],
    case_id: i64,
    decision: &Decision<'_>,
    now: DateTime<Utc>,
) -> AppResult<Resolved> {
    let shop_ids: Vec<i64> = shops.iter().map(|(id, _)| *id).collect();
    let not_found = || AppError::NotFound("after-sale case not found".into());
    conn.transaction(|conn| {
        let order_id: i64 = after_sales::table
            .filter(after_sales::id.eq(case_id))
            .select(after_sales::order_id)
            .first(conn)
            .optional()?
            .ok_or_else(not_found)?;
        // The order first, then its cases: the same order as every other writer.
        let order = locked_order(conn, order_id, &shop_ids).map_err(|_| not_found())?;
        let cases: Vec<AfterSaleRow> = after_sales::table
            .filter(after_sales::order_id.eq(order.id))
            .order(after_sales::id)
            .select(AfterSaleRow::as_select())
            .for_update()
            .load(conn)?;
        let case = cases
            .iter()
            .find(|c| c.id == case_id)
            .cloned()
            .ok_or_else(not_found)?;
        let refund_kind = case.kind != AfterSaleKind::Exchange;
        let wanted = match decision.decision {
            AfterSaleDecision::Reject => AfterSaleStatus::Rejected,
            AfterSaleDecision::Approve if refund_kind => AfterSaleStatus::Refunded,
            AfterSaleDecision::Approve => AfterSaleStatus::Approved,
        };
        let open = case.status == AfterSaleStatus::Requested
            || (case.status == AfterSaleStatus::Approved && refund_kind);
        if !open {
            let same_amount = decision
                .refund_amount
                .is_none_or(|amount| amount == case.refund_amount);
            if case.status == wanted && same_amount {
                return Ok(Resolved {
                    case,
                    order,
                    changed: false,
                });
            }
            return Err(AppError::bad_input(format!(
                "after-sale case {} is already {}",
                case.id, case.status
            )));
        }
        if case.status == AfterSaleStatus::Approved && decision.decision == AfterSaleDecision::Reject {
            return Err(AppError::bad_input(format!(
                "after-sale case {} is already approved; it can only be refunded",
                case.id
            )));
        }
        let refund = match (decision.decision, refund_kind) {
            (AfterSaleDecision::Approve, true) => {
                let amount = decision.refund_amount.unwrap_or(case.refund_amount);
                if amount <= 0 {
                    return Err(AppError::bad_input(
                        "refundAmount must be positive (the case has no requested amount)",
                    ));
                }
                if order.paid_at.is_none() {
                    return Err(AppError::bad_input(format!(
                        "order {} was never paid; nothing can be refunded",
                        order.id
                    )));
                }
                let refunded: i64 = cases
                    .iter()
                    .filter(|c| c.status == AfterSaleStatus::Refunded)
                    .map(|c| c.refund_amount)
                    .sum();
                let refundable = order.paid_amount - refunded;
                if amount > refundable {
                    return Err(AppError::bad_input(format!(
                        "refundAmount {amount} exceeds the {refundable} still refundable of order {}",
                        order.id
                    )));
                }
                Some((amount, refunded + amount == order.paid_amount))
            }
            (AfterSaleDecision::Approve, false) if decision.refund_amount.is_some() => {
                return Err(AppError::bad_input(
                    "an exchange is approved without a refundAmount",
                ))
            }
            _ => None,
        };
        let case: AfterSaleRow =
            diesel::update(after_sales::table.filter(after_sales::id.eq(case.id)))
                .set((
                    after_sales::status.eq(wanted),
                    after_sales::refund_amount
                        .eq(refund.map_or(case.refund_amount, |(amount, _)| amount)),
                    after_sales::resolved_at.eq(now),
                    after_sales::resolution_note.eq(decision.note),
                ))
                .returning(AfterSaleRow::as_returning())
                .get_result(conn)?;
        let closes = matches!(refund, Some((_, true)))
            && order.status != OrderStatus::Closed;
        let order = if closes {
            let platform = platform_of(&order, shops)?;
            diesel::update(orders::table.filter(orders::id.eq(order.id)))
                .set((
                    orders::status.eq(OrderStatus::Closed.as_str()),
                    orders::raw_status.eq(raw_status_for(platform, OrderStatus::Closed)),
                    orders::updated_at.eq(now),
                ))
                .returning(OrderRow::as_returning())
                .get_result(conn)?
        } else {
            order
        };
        super::versions::touch(conn, &mut vec![order.shop_id])?;
        audit::record(
            conn,
            actor,
            "after_sale.resolve",
            &format!("after_sale:{}", case.id),
            serde_json::json!({
                "orderId": order.id,
                "decision": decision.decision.as_str(),
                "status": case.status,
                "refundAmount": refund.map(|(amount, _)| amount),
                "orderClosed": closes,
                "note": decision.note,
            }),
        )?;
        Ok(Resolved {
            case,
            order,
            changed: true,
        })
    })
}

/// What an annotation changes: `Some(None)` clears, `Some(Some(v))` sets, `None` keeps.
pub struct Annotation {
    pub note: Option<Option<String>>,
    pub flag: Option<Option<crate::domain::SellerFlag>>,
}

/// Sets or clears the seller's note and flag of an order in scope, audited; `changed`
/// is false when the order already held them (an idempotent repeat).
pub fn annotate(
    conn: &mut PgConnection,
    actor: Actor,
    shop_ids: &[i64],
    order_id: i64,
    annotation: &Annotation,
    now: DateTime<Utc>,
) -> AppResult<OrderWrite> {
    conn.transaction(|conn| {
        let order = locked_order(conn, order_id, shop_ids)?;
        let note = annotation
            .note
            .clone()
            .unwrap_or_else(|| order.seller_note.clone());
        let flag = annotation.flag.unwrap_or(order.seller_flag);
        if note == order.seller_note && flag == order.seller_flag {
            return Ok(OrderWrite {
                order,
                changed: false,
            });
        }
        let order: OrderRow = diesel::update(orders::table.filter(orders::id.eq(order.id)))
            .set((
                orders::seller_note.eq(&note),
                orders::seller_flag.eq(&flag),
                orders::updated_at.eq(now),
            ))
            .returning(OrderRow::as_returning())
            .get_result(conn)?;
        written(
            conn,
            actor,
            order,
            "order.annotate",
            serde_json::json!({ "sellerNote": note, "sellerFlag": flag }),
        )
    })
}

/// The end of every write to one order: the shop's data version moves (caches) and the
/// write is audited, in the write's transaction.
fn written(
    conn: &mut PgConnection,
    actor: Actor,
    order: OrderRow,
    action: &str,
    details: serde_json::Value,
) -> AppResult<OrderWrite> {
    super::versions::touch(conn, &mut vec![order.shop_id])?;
    audit::record(conn, actor, action, &format!("order:{}", order.id), details)?;
    Ok(OrderWrite {
        order,
        changed: true,
    })
}
