//! The seller's daily operations: the abnormal-order work lists (异常订单), shipping an
//! order and deciding after-sale cases.

use async_graphql::{Context, Object, SimpleObject, ID};

use super::orders::{AfterSale, Order, OrderConnection, OrderFilter, OrderOrder};
use super::{principal, shared};
use crate::db;
use crate::domain::{AbnormalKind, AfterSaleDecision};
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
        Ok(OrderConnection::list(ctx, filter, Some(kind), first, after, order_by).await?)
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

pub use crate::operations::{
    AnnotateOrderInput, ShipOrderInput, MAX_BATCH_ANNOTATE, MAX_BATCH_SHIP,
};

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
    /// The report of a batch from each item's outcome, in the order the items were sent.
    fn of(ids: &[&ID], outcomes: Vec<AppResult<db::operations::OrderWrite>>) -> BatchReport {
        let items = outcomes
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| match outcome {
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
            })
            .collect();
        BatchReport::from_items(items)
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
        let outcomes =
            crate::operations::annotate_orders(shared(ctx), principal(ctx)?, &orders).await?;
        let ids: Vec<&ID> = orders.iter().map(|o| &o.id).collect();
        Ok(BatchReport::of(&ids, outcomes))
    }

    /// Ships up to 500 `AWAITING_SHIPMENT` orders (批量发货; needs `ORDERS_SHIP`), each in
    /// its own transaction: a bad item is reported and never stops the others. Sending
    /// the same batch again reports the shipped ones `UNCHANGED`.
    async fn batch_ship_orders(
        &self,
        ctx: &Context<'_>,
        orders: Vec<ShipOrderInput>,
    ) -> async_graphql::Result<BatchReport> {
        let outcomes =
            crate::operations::ship_orders(shared(ctx), principal(ctx)?, &orders).await?;
        let ids: Vec<&ID> = orders.iter().map(|o| &o.id).collect();
        Ok(BatchReport::of(&ids, outcomes))
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
        let shipped = crate::operations::ship_order(
            shared(ctx),
            principal(ctx)?,
            &id,
            &carrier,
            &tracking_no,
        )
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
        let resolved = crate::operations::resolve_after_sale(
            shared(ctx),
            principal(ctx)?,
            &id,
            decision,
            note,
            refund_amount,
        )
        .await?;
        Ok(ResolveAfterSalePayload {
            after_sale: AfterSale(resolved.case),
            order: Order(resolved.order),
            already_resolved: !resolved.changed,
        })
    }
}
