//! The operations service: the seller's writes to orders — shipping one order or a
//! batch (发货), seller notes and flags (卖家备注, 旗帜), and deciding after-sale cases.
//! Each checks its permission and its arguments; a batch checks every item first, and a
//! bad item is reported alone and never stops the others. The writes themselves (each
//! order in its own transaction, with its audit entry) are `db::operations`'.

use async_graphql::{InputObject, ID};
use chrono::Utc;

use crate::auth::Principal;
use crate::db::operations::{Annotation, Decision, OrderWrite, Resolved};
use crate::db::{self};
use crate::domain::{check_plain_text, AfterSaleDecision, Permission, Platform, SellerFlag};
use crate::error::{AppError, AppResult};
use crate::filters::parse_id;
use crate::state::Services;

/// Orders one `batchShipOrders` call may ship.
pub const MAX_BATCH_SHIP: usize = 500;
/// Orders one `annotateOrders` call may annotate.
pub const MAX_BATCH_ANNOTATE: usize = 500;

#[derive(InputObject)]
pub struct ShipOrderInput {
    pub id: ID,
    pub carrier: String,
    pub tracking_no: String,
}

/// A seller's note and flag for one order; an absent field is left as it is.
#[derive(InputObject)]
pub struct AnnotateOrderInput {
    pub id: ID,
    /// The seller's note (1 to 500 characters); an empty string removes it.
    pub note: Option<String>,
    /// The flag colour; `clearFlag: true` removes it.
    pub flag: Option<SellerFlag>,
    #[graphql(default)]
    pub clear_flag: bool,
}

/// The caller's shops with their platforms (status codes are written per platform).
fn shop_platforms(p: &Principal) -> Vec<(i64, Platform)> {
    p.shops.iter().map(|s| (s.id, s.platform)).collect()
}

/// Trims a required free-text argument and bounds its length.
fn text_arg(field: &str, value: &str, max: usize) -> AppResult<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(AppError::bad_input(format!(
            "{field} must be 1 to {max} characters"
        )));
    }
    check_plain_text(field, value, max).map_err(AppError::bad_input)?;
    Ok(value.to_string())
}

fn annotation_of(item: &AnnotateOrderInput) -> AppResult<(i64, Annotation)> {
    let id = parse_id("id", &item.id)?;
    let note = match item.note.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(None),
        Some(text) => {
            if text.chars().count() > 500 {
                return Err(AppError::bad_input("note must be at most 500 characters"));
            }
            check_plain_text("note", text, 500).map_err(AppError::bad_input)?;
            Some(Some(text.to_string()))
        }
    };
    let flag = match (item.flag, item.clear_flag) {
        (Some(_), true) => {
            return Err(AppError::bad_input("give flag or clearFlag, not both"));
        }
        (Some(flag), false) => Some(Some(flag)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    if note.is_none() && flag.is_none() {
        return Err(AppError::bad_input("give a note, a flag or clearFlag"));
    }
    Ok((id, Annotation { note, flag }))
}

fn batch_size(len: usize, max: usize) -> AppResult<()> {
    if len == 0 || len > max {
        return Err(AppError::bad_input(format!(
            "orders must hold 1 to {max} items"
        )));
    }
    Ok(())
}

/// Runs `write` on every item that passed its checks, on one pooled connection, and
/// returns each item's outcome in the order sent (a failed check is its outcome).
async fn each_checked<T, W>(
    services: &Services,
    checked: Vec<AppResult<T>>,
    write: W,
) -> AppResult<Vec<AppResult<OrderWrite>>>
where
    T: Send + 'static,
    W: Fn(&mut diesel::PgConnection, T) -> AppResult<OrderWrite> + Send + 'static,
{
    db::run(&services.pool, move |c| {
        Ok(checked
            .into_iter()
            .map(|item| item.and_then(|item| write(c, item)))
            .collect())
    })
    .await
}

/// Sets or clears the seller's note and flag of up to 500 orders (`ORDERS_ANNOTATE`).
pub async fn annotate_orders(
    services: &Services,
    p: &Principal,
    orders: &[AnnotateOrderInput],
) -> AppResult<Vec<AppResult<OrderWrite>>> {
    p.require(Permission::OrdersAnnotate)?;
    batch_size(orders.len(), MAX_BATCH_ANNOTATE)?;
    let checked: Vec<AppResult<(i64, Annotation)>> = orders.iter().map(annotation_of).collect();
    let (actor, shop_ids, now) = (p.actor(), p.shop_ids(), Utc::now());
    each_checked(services, checked, move |c, (id, annotation)| {
        db::operations::annotate(c, actor, &shop_ids, id, &annotation, now)
    })
    .await
}

/// Ships up to 500 `AWAITING_SHIPMENT` orders (`ORDERS_SHIP`), each in its own
/// transaction; a shipped order sent again is unchanged.
pub async fn ship_orders(
    services: &Services,
    p: &Principal,
    orders: &[ShipOrderInput],
) -> AppResult<Vec<AppResult<OrderWrite>>> {
    p.require(Permission::OrdersShip)?;
    batch_size(orders.len(), MAX_BATCH_SHIP)?;
    // Items whose arguments are bad are rejected before any database work.
    let checked: Vec<AppResult<(i64, String, String)>> = orders
        .iter()
        .map(|item| {
            Ok((
                parse_id("id", &item.id)?,
                text_arg("carrier", &item.carrier, 64)?,
                text_arg("trackingNo", &item.tracking_no, 64)?,
            ))
        })
        .collect();
    let (actor, shops, now) = (p.actor(), shop_platforms(p), Utc::now());
    each_checked(services, checked, move |c, (id, carrier, tracking)| {
        db::operations::ship(c, actor, &shops, id, &carrier, &tracking, now)
    })
    .await
}

/// Ships one `AWAITING_SHIPMENT` order (`ORDERS_SHIP`); the same carrier and tracking
/// number again is harmless, a different one is refused.
pub async fn ship_order(
    services: &Services,
    p: &Principal,
    id: &ID,
    carrier: &str,
    tracking_no: &str,
) -> AppResult<OrderWrite> {
    p.require(Permission::OrdersShip)?;
    let order_id = parse_id("id", id)?;
    let carrier = text_arg("carrier", carrier, 64)?;
    let tracking_no = text_arg("trackingNo", tracking_no, 64)?;
    let (actor, shops) = (p.actor(), shop_platforms(p));
    db::run(&services.pool, move |c| {
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
    .await
}

/// Approves or rejects an after-sale case (`AFTER_SALES_HANDLE`). Approving a refund
/// records `refund_amount` (minor units; default: the amount asked for), at most what
/// is still refundable; a full refund closes the order.
pub async fn resolve_after_sale(
    services: &Services,
    p: &Principal,
    id: &ID,
    decision: AfterSaleDecision,
    note: Option<String>,
    refund_amount: Option<i64>,
) -> AppResult<Resolved> {
    p.require(Permission::AfterSalesHandle)?;
    let case_id = parse_id("id", id)?;
    let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        return Err(AppError::bad_input("note must be at most 500 characters"));
    }
    if refund_amount.is_some_and(|a| a <= 0) {
        return Err(AppError::bad_input("refundAmount must be positive"));
    }
    let (actor, shops) = (p.actor(), shop_platforms(p));
    db::run(&services.pool, move |c| {
        let decision = Decision {
            decision,
            note: note.as_deref(),
            refund_amount,
        };
        db::operations::resolve_after_sale(c, actor, &shops, case_id, &decision, Utc::now())
    })
    .await
}
