//! `orders` (a Relay connection with filters, sorting and stable cursors) and
//! `order(id)` with its items, after-sales, shipment and status timeline.

use async_graphql::{ComplexObject, Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::loaders::Loaders;
use super::viewer::{Province, Shop};
use super::{principal, provinces, shared};
use crate::db::orders::{AfterSaleRow, OrderItemRow, OrderQuery, OrderRow, ShipmentRow};
use crate::domain::{
    mask_address, mask_name, mask_phone, AfterSaleKind, AfterSaleStatus, Channel, DataSet, Dispute,
    OrderStatus, PaymentMethod, Platform,
};
use crate::error::{AppError, AppResult};

pub use crate::filters::OrderFilter;

pub use crate::orders::{OrderOrder, OrderSortField, SortDirection};

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct OrderEdge {
    pub cursor: String,
    pub node: Order,
}

/// A page of orders. `totalCount` is only computed when asked for.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct OrderConnection {
    pub edges: Vec<OrderEdge>,
    pub page_info: PageInfo,
    #[graphql(skip)]
    pub query: OrderQuery,
}

#[ComplexObject]
impl OrderConnection {
    /// How many orders match the filter, across all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(crate::orders::count(shared(ctx), self.query.clone()).await?)
    }
}

impl OrderConnection {
    /// A page of an order list (`abnormal`: one work list) from the orders service.
    pub async fn list(
        ctx: &Context<'_>,
        filter: Option<OrderFilter>,
        abnormal: Option<crate::domain::AbnormalKind>,
        first: i32,
        after: Option<String>,
        order_by: Option<OrderOrder>,
    ) -> AppResult<OrderConnection> {
        let (services, p) = (shared(ctx), principal(ctx)?);
        let after = after.as_deref();
        let page =
            crate::orders::list(services, p, filter, abnormal, first, after, order_by).await?;
        Ok(OrderConnection::of(page, after))
    }

    /// A page of the orders service as a Relay connection.
    fn of(page: crate::orders::Page, after: Option<&str>) -> OrderConnection {
        let edges: Vec<OrderEdge> = page
            .rows
            .into_iter()
            .map(|(cursor, row)| OrderEdge {
                cursor,
                node: Order(row),
            })
            .collect();
        OrderConnection {
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                has_previous_page: after.is_some(),
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            query: page.query,
        }
    }
}

#[derive(Default)]
pub struct OrdersQuery;

#[Object]
impl OrdersQuery {
    /// Orders in scope, newest first unless `orderBy` says otherwise.
    #[graphql(complexity = "(first.clamp(0, 200) as usize) * child_complexity + 10")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        filter: Option<OrderFilter>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        order_by: Option<OrderOrder>,
    ) -> async_graphql::Result<OrderConnection> {
        Ok(OrderConnection::list(ctx, filter, None, first, after, order_by).await?)
    }

    /// One order; another tenant's order is `null` exactly like a missing one.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Order>> {
        let row = crate::orders::find(shared(ctx), principal(ctx)?, &id).await?;
        Ok(row.map(Order))
    }
}

/// An order in the unified model. Amounts are minor units of `currency`.
pub struct Order(pub OrderRow);

impl Order {
    /// Whether the caller reads this field unmasked; an unmasked read is recorded for
    /// the audit log (only when the order has a value to reveal). Every transport gives
    /// the request a collector; without one the field is refused, never read unaudited.
    fn pii(&self, ctx: &Context<'_>, field: &'static str) -> AppResult<bool> {
        let allowed = principal(ctx)?.may_read(DataSet::BuyerPii);
        if allowed {
            ctx.data::<std::sync::Arc<super::pii::PiiReads>>()
                .map_err(|_| {
                    AppError::internal(anyhow::anyhow!(
                        "no PII audit collector for an unmasked read"
                    ))
                })?
                .record(self.0.id, field);
        }
        Ok(allowed)
    }
}

#[derive(SimpleObject)]
pub struct Creator {
    pub id: ID,
    pub platform: Platform,
    pub external_id: String,
    pub handle: String,
    pub display_name: String,
    pub followers: i64,
}

#[derive(SimpleObject)]
pub struct Product {
    pub id: ID,
    pub external_id: String,
    pub title: String,
    pub category: String,
    pub list_price: i64,
}

pub struct OrderItem(OrderItemRow);

#[Object]
impl OrderItem {
    async fn line_no(&self) -> i32 {
        self.0.line_no
    }
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    async fn quantity(&self) -> i32 {
        self.0.quantity
    }
    async fn unit_price(&self) -> i64 {
        self.0.unit_price
    }
    async fn paid_amount(&self) -> i64 {
        self.0.paid_amount
    }
    async fn product(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Product>> {
        let Some(id) = self.0.product_id else {
            return Ok(None);
        };
        let row = ctx
            .data_unchecked::<Loaders>()
            .products
            .load_one(id)
            .await
            .map_err(|e| (*e).clone())?;
        Ok(row.map(|r| Product {
            id: ID(r.id.to_string()),
            external_id: r.external_id,
            title: r.title,
            category: r.category,
            list_price: r.list_price,
        }))
    }
}

pub struct AfterSale(pub AfterSaleRow);

#[Object]
impl AfterSale {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn external_id(&self) -> &str {
        &self.0.external_id
    }
    async fn kind(&self) -> AfterSaleKind {
        self.0.kind
    }
    async fn status(&self) -> AfterSaleStatus {
        self.0.status
    }
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    async fn refund_amount(&self) -> i64 {
        self.0.refund_amount
    }
    async fn requested_at(&self) -> DateTime<Utc> {
        self.0.requested_at
    }
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    async fn dispute(&self) -> Dispute {
        self.0.dispute
    }
}

#[derive(SimpleObject)]
pub struct Shipment {
    pub carrier: String,
    pub tracking_no: String,
    pub shipped_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<ShipmentRow> for Shipment {
    fn from(row: ShipmentRow) -> Self {
        Shipment {
            carrier: row.carrier,
            tracking_no: row.tracking_no,
            shipped_at: row.shipped_at,
            delivered_at: row.delivered_at,
        }
    }
}

/// One step of an order's life, oldest first.
#[derive(SimpleObject, Clone)]
pub struct TimelineEvent {
    pub at: DateTime<Utc>,
    /// `PLACED`, `PAID`, `SHIPPED`, `DELIVERED`, `COMPLETED`, `CANCELLED`,
    /// `AFTER_SALE_REQUESTED` or `AFTER_SALE_<STATUS>`.
    pub event: String,
    pub detail: Option<String>,
}

async fn load_after_sales(
    ctx: &Context<'_>,
    order_id: i64,
) -> async_graphql::Result<Vec<AfterSaleRow>> {
    Ok(ctx
        .data_unchecked::<Loaders>()
        .after_sales
        .load_one(order_id)
        .await
        .map_err(|e| (*e).clone())?
        .unwrap_or_default())
}

#[Object]
impl Order {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn shop(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Shop>> {
        Ok(principal(ctx)?.shop(self.0.shop_id).cloned().map(Shop))
    }
    /// The platform's order id.
    async fn order_no(&self) -> &str {
        &self.0.order_no
    }
    async fn status(&self) -> OrderStatus {
        self.0.status
    }
    /// The platform's own status code.
    async fn raw_status(&self) -> &str {
        &self.0.raw_status
    }
    async fn placed_at(&self) -> DateTime<Utc> {
        self.0.placed_at
    }
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.paid_at
    }
    async fn shipped_at(&self) -> Option<DateTime<Utc>> {
        self.0.shipped_at
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.0.cancelled_at
    }
    async fn payment_method(&self) -> Option<PaymentMethod> {
        self.0.payment_method
    }
    /// The shop's currency; every amount of the order is in its minor units.
    async fn currency(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(principal(ctx)?
            .shop(self.0.shop_id)
            .map(|s| s.currency.clone()))
    }
    async fn goods_amount(&self) -> i64 {
        self.0.goods_amount
    }
    async fn shipping_fee(&self) -> i64 {
        self.0.shipping_fee
    }
    async fn discount_amount(&self) -> i64 {
        self.0.discount_amount
    }
    async fn paid_amount(&self) -> i64 {
        self.0.paid_amount
    }
    async fn province(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Province>> {
        let Some(code) = &self.0.province_code else {
            return Ok(None);
        };
        Ok(provinces(ctx)
            .await?
            .iter()
            .find(|p| &p.code == code)
            .map(Province::from))
    }
    async fn city(&self) -> Option<&str> {
        self.0.city.as_deref()
    }
    async fn channel(&self) -> Channel {
        self.0.channel
    }
    async fn creator(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Creator>> {
        let Some(id) = self.0.creator_id else {
            return Ok(None);
        };
        let row = ctx
            .data_unchecked::<Loaders>()
            .creators
            .load_one(id)
            .await
            .map_err(|e| (*e).clone())?;
        Ok(row.map(|r| Creator {
            id: ID(r.id.to_string()),
            platform: r.platform,
            external_id: r.external_id,
            handle: r.handle,
            display_name: r.display_name,
            followers: r.followers,
        }))
    }
    /// Live room or video the order came from.
    async fn content_id(&self) -> Option<&str> {
        self.0.content_id.as_deref()
    }
    /// Needs `FINANCE_READ`.
    async fn commission_rate_bps(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i32>> {
        principal(ctx)?.require_read(DataSet::Commission)?;
        Ok(Some(self.0.commission_rate_bps))
    }
    /// Needs `FINANCE_READ`.
    async fn commission_amount(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i64>> {
        principal(ctx)?.require_read(DataSet::Commission)?;
        Ok(Some(self.0.commission_amount))
    }
    /// Pseudonymous, stable per buyer.
    async fn buyer_id(&self) -> &str {
        &self.0.buyer_id
    }
    async fn buyer_nickname(&self) -> Option<&str> {
        self.0.buyer_nickname.as_deref()
    }
    /// Masked (`张*`) without `PII_READ`.
    async fn receiver_name(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let pii = self.pii(ctx, "receiverName")?;
        Ok(self
            .0
            .receiver_name
            .as_deref()
            .map(|n| if pii { n.to_string() } else { mask_name(n) }))
    }
    /// Masked (`138****5678`) without `PII_READ`.
    async fn receiver_phone(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let pii = self.pii(ctx, "receiverPhone")?;
        Ok(self
            .0
            .receiver_phone
            .as_deref()
            .map(|n| if pii { n.to_string() } else { mask_phone(n) }))
    }
    /// Only province and city without `PII_READ`.
    async fn receiver_address(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        if self.pii(ctx, "receiverAddress")? {
            return Ok(self.0.receiver_address.clone());
        }
        if self.0.receiver_address.is_none() {
            return Ok(None);
        }
        let province = match &self.0.province_code {
            Some(code) => provinces(ctx)
                .await?
                .iter()
                .find(|p| &p.code == code)
                .map(|p| p.name_zh.clone())
                .unwrap_or_default(),
            None => String::new(),
        };
        Ok(Some(mask_address(&province, self.0.city.as_deref())))
    }
    async fn buyer_note(&self) -> Option<&str> {
        self.0.buyer_note.as_deref()
    }
    /// The seller's own note (卖家备注), set by `annotateOrders`.
    async fn seller_note(&self) -> Option<&str> {
        self.0.seller_note.as_deref()
    }
    /// The seller's flag (旗帜), set by `annotateOrders`.
    async fn seller_flag(&self) -> Option<crate::domain::SellerFlag> {
        self.0.seller_flag
    }
    async fn items(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<OrderItem>> {
        Ok(ctx
            .data_unchecked::<Loaders>()
            .items
            .load_one(self.0.id)
            .await
            .map_err(|e| (*e).clone())?
            .unwrap_or_default()
            .into_iter()
            .map(OrderItem)
            .collect())
    }
    async fn after_sales(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AfterSale>> {
        Ok(load_after_sales(ctx, self.0.id)
            .await?
            .into_iter()
            .map(AfterSale)
            .collect())
    }
    async fn shipment(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Shipment>> {
        Ok(ctx
            .data_unchecked::<Loaders>()
            .shipments
            .load_one(self.0.id)
            .await
            .map_err(|e| (*e).clone())?
            .map(Shipment::from))
    }
    /// The order's status history, oldest first, including its after-sale cases.
    async fn timeline(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TimelineEvent>> {
        let o = &self.0;
        let mut events: Vec<TimelineEvent> = [
            ("PLACED", Some(o.placed_at)),
            ("PAID", o.paid_at),
            ("SHIPPED", o.shipped_at),
            ("DELIVERED", o.delivered_at),
            ("COMPLETED", o.completed_at),
            ("CANCELLED", o.cancelled_at),
        ]
        .into_iter()
        .filter_map(|(event, at)| {
            at.map(|at| TimelineEvent {
                at,
                event: event.to_string(),
                detail: None,
            })
        })
        .collect();
        for case in load_after_sales(ctx, o.id).await? {
            events.push(TimelineEvent {
                at: case.requested_at,
                event: "AFTER_SALE_REQUESTED".into(),
                detail: Some(format!("{} {}", case.kind, case.external_id)),
            });
            if let Some(at) = case.resolved_at {
                events.push(TimelineEvent {
                    at,
                    event: format!("AFTER_SALE_{}", case.status),
                    detail: Some(format!("refund {}", case.refund_amount)),
                });
            }
        }
        // Stable: lifecycle order breaks ties at the same instant.
        events.sort_by_key(|e| e.at);
        Ok(events)
    }
    /// The platform's version of this order.
    async fn source_updated_at(&self) -> DateTime<Utc> {
        self.0.source_updated_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}
