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
    crate::domain::check_plain_text(field, value, max).map_err(AppError::bad_input)?;
    Ok(value.to_string())
}

/// Orders one `batchShipOrders` call may ship.
pub const MAX_BATCH_SHIP: usize = 500;

#[derive(async_graphql::InputObject)]
pub struct ShipOrderInput {
    pub id: ID,
    pub carrier: String,
    pub tracking_no: String,
}

#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum BatchItemStatus {
    /// Done now.
    Updated,
    /// It had been done already with the same values: nothing changed (a safe retry).
    Unchanged,
    /// Refused; `code` and `message` say why. Other items are not affected.
    Rejected,
}

/// The outcome of one item of a batch operation, in the order the items were sent.
#[derive(SimpleObject)]
pub struct BatchItemResult {
    pub index: i32,
    pub id: ID,
    pub status: BatchItemStatus,
    /// For `REJECTED`: `NOT_FOUND`, `BAD_USER_INPUT`, … like a GraphQL error's code.
    pub code: Option<String>,
    pub message: Option<String>,
    /// The order now (null when rejected).
    pub order: Option<Order>,
}

#[derive(SimpleObject)]
pub struct BatchReport {
    pub updated: i32,
    pub unchanged: i32,
    pub rejected: i32,
    pub items: Vec<BatchItemResult>,
}

impl BatchReport {
    /// The report of a batch: the items refused before any database work (by index,
    /// `None` for the others) and the database's outcome for the others.
    fn assemble(
        ids: &[&ID],
        mut items: Vec<Option<BatchItemResult>>,
        outcomes: Vec<(usize, AppResult<db::operations::OrderWrite>)>,
    ) -> BatchReport {
        for (index, outcome) in outcomes {
            items[index] = Some(match outcome {
                Ok(written) => BatchItemResult {
                    index: index as i32,
                    id: ids[index].clone(),
                    status: if written.changed {
                        BatchItemStatus::Updated
                    } else {
                        BatchItemStatus::Unchanged
                    },
                    code: None,
                    message: None,
                    order: Some(Order(written.order)),
                },
                Err(e) => rejected_item(index, ids[index], &e),
            });
        }
        BatchReport::from_items(items.into_iter().flatten().collect())
    }

    pub fn from_items(items: Vec<BatchItemResult>) -> BatchReport {
        let count = |s: BatchItemStatus| items.iter().filter(|i| i.status == s).count() as i32;
        BatchReport {
            updated: count(BatchItemStatus::Updated),
            unchanged: count(BatchItemStatus::Unchanged),
            rejected: count(BatchItemStatus::Rejected),
            items,
        }
    }
}

/// A rejected item, with the code and message a GraphQL error would carry.
pub fn rejected_item(index: usize, id: &ID, err: &AppError) -> BatchItemResult {
    BatchItemResult {
        index: index as i32,
        id: id.clone(),
        status: BatchItemStatus::Rejected,
        code: Some(err.code().to_string()),
        message: Some(err.public_message()),
        order: None,
    }
}

/// Orders one `annotateOrders` call may annotate.
pub const MAX_BATCH_ANNOTATE: usize = 500;

/// A seller's note and flag for one order; an absent field is left as it is.
#[derive(async_graphql::InputObject)]
pub struct AnnotateOrderInput {
    pub id: ID,
    /// The seller's note (1 to 500 characters); an empty string removes it.
    pub note: Option<String>,
    /// The flag colour; `clearFlag: true` removes it.
    pub flag: Option<crate::domain::SellerFlag>,
    #[graphql(default)]
    pub clear_flag: bool,
}

fn annotation_of(item: &AnnotateOrderInput) -> AppResult<(i64, db::operations::Annotation)> {
    let id = parse_id("id", &item.id)?;
    let note = match item.note.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(None),
        Some(text) => {
            if text.chars().count() > 500 {
                return Err(AppError::bad_input("note must be at most 500 characters"));
            }
            crate::domain::check_plain_text("note", text, 500).map_err(AppError::bad_input)?;
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
    Ok((id, db::operations::Annotation { note, flag }))
}

#[Object]
impl OperationsMutation {
    /// Sets or clears the seller's note (卖家备注) and flag (旗帜) of up to 500 orders
    /// (needs `ORDERS_ANNOTATE`), each on its own: a bad item is reported and never stops
    /// the others; repeating a batch reports `UNCHANGED`. Audited per order.
    async fn annotate_orders(
        &self,
        ctx: &Context<'_>,
        orders: Vec<AnnotateOrderInput>,
    ) -> async_graphql::Result<BatchReport> {
        let p = principal(ctx)?;
        p.require(Permission::OrdersAnnotate)?;
        if orders.is_empty() || orders.len() > MAX_BATCH_ANNOTATE {
            return Err(AppError::bad_input(format!(
                "orders must hold 1 to {MAX_BATCH_ANNOTATE} items"
            ))
            .into());
        }
        let mut checked = Vec::with_capacity(orders.len());
        let mut results: Vec<Option<BatchItemResult>> = Vec::with_capacity(orders.len());
        for (index, item) in orders.iter().enumerate() {
            match annotation_of(item) {
                Ok((id, annotation)) => {
                    checked.push((index, id, annotation));
                    results.push(None);
                }
                Err(e) => results.push(Some(rejected_item(index, &item.id, &e))),
            }
        }
        let (actor, shop_ids) = (p.actor(), p.shop_ids());
        let outcomes = db::run(&shared(ctx).pool, move |c| {
            let now = Utc::now();
            Ok(checked
                .into_iter()
                .map(|(index, id, annotation)| {
                    let written =
                        db::operations::annotate(c, actor, &shop_ids, id, &annotation, now);
                    (index, written)
                })
                .collect::<Vec<_>>())
        })
        .await?;
        let ids: Vec<&ID> = orders.iter().map(|o| &o.id).collect();
        Ok(BatchReport::assemble(&ids, results, outcomes))
    }

    /// Ships up to 500 `AWAITING_SHIPMENT` orders (批量发货; needs `ORDERS_SHIP`), each in
    /// its own transaction: a bad item is reported and never stops the others. Sending
    /// the same batch again reports the shipped ones `UNCHANGED`.
    async fn batch_ship_orders(
        &self,
        ctx: &Context<'_>,
        orders: Vec<ShipOrderInput>,
    ) -> async_graphql::Result<BatchReport> {
        let p = principal(ctx)?;
        p.require(Permission::OrdersShip)?;
        if orders.is_empty() || orders.len() > MAX_BATCH_SHIP {
            return Err(AppError::bad_input(format!(
                "orders must hold 1 to {MAX_BATCH_SHIP} items"
            ))
            .into());
        }
        // Items whose arguments are bad are rejected before any database work.
        let mut checked = Vec::with_capacity(orders.len());
        let mut results: Vec<Option<BatchItemResult>> = Vec::with_capacity(orders.len());
        for (index, item) in orders.iter().enumerate() {
            let parsed = parse_id("id", &item.id).and_then(|id| {
                Ok((
                    id,
                    text_arg("carrier", &item.carrier, 64)?,
                    text_arg("trackingNo", &item.tracking_no, 64)?,
                ))
            });
            match parsed {
                Ok((id, carrier, tracking)) => {
                    checked.push((index, id, carrier, tracking));
                    results.push(None);
                }
                Err(e) => results.push(Some(rejected_item(index, &item.id, &e))),
            }
        }
        let (actor, shops) = (p.actor(), shop_platforms(p));
        let outcomes = db::run(&shared(ctx).pool, move |c| {
            let now = Utc::now();
            Ok(checked
                .into_iter()
                .map(|(index, id, carrier, tracking)| {
                    let shipped =
                        db::operations::ship(c, actor, &shops, id, &carrier, &tracking, now);
                    (index, shipped)
                })
                .collect::<Vec<_>>())
        })
        .await?;
        let ids: Vec<&ID> = orders.iter().map(|o| &o.id).collect();
        Ok(BatchReport::assemble(&ids, results, outcomes))
    }

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
