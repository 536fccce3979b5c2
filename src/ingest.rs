//! Order ingestion: the wire form of `ingestOrders`, validation of each order, and the
//! per-item report. Writing the validated batch is `db::ingest`.

use std::collections::{HashMap, HashSet};

use async_graphql::{InputObject, SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::auth::Principal;
use crate::domain::{
    normalize_status, AfterSaleKind, AfterSaleStatus, Channel, Dispute, OrderStatus, PaymentMethod,
};

/// One order as a platform integration reports it. Amounts are minor units (fen/cents)
/// of the shop's currency.
#[derive(InputObject, Clone, Debug)]
pub struct OrderInput {
    pub shop_id: ID,
    /// The platform's order id; unique per shop.
    pub order_no: String,
    /// Unified status; derived from `rawStatus` and the shop's platform when absent.
    pub status: Option<OrderStatus>,
    /// The platform's own status code, kept beside the unified one.
    pub raw_status: Option<String>,
    pub placed_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub payment_method: Option<PaymentMethod>,
    /// When given, must be the shop's currency.
    pub currency: Option<String>,
    pub goods_amount: i64,
    #[graphql(default)]
    pub shipping_fee: i64,
    #[graphql(default)]
    pub discount_amount: i64,
    #[graphql(default)]
    pub paid_amount: i64,
    /// GB/T 2260 two-digit province code, e.g. `33`.
    pub province_code: Option<String>,
    pub city: Option<String>,
    #[graphql(default_with = "Channel::Other")]
    pub channel: Channel,
    pub creator: Option<CreatorInput>,
    pub content_id: Option<String>,
    #[graphql(default)]
    pub commission_rate_bps: i32,
    /// Defaults to `paidAmount × commissionRateBps / 10000` when a creator is set.
    pub commission_amount: Option<i64>,
    pub buyer_id: String,
    pub buyer_nickname: Option<String>,
    pub receiver_name: Option<String>,
    pub receiver_phone: Option<String>,
    pub receiver_address: Option<String>,
    pub buyer_note: Option<String>,
    /// The platform's version of this order; older versions than the stored one are
    /// reported `STALE` and not applied.
    pub source_updated_at: DateTime<Utc>,
    #[graphql(default)]
    pub items: Vec<OrderItemInput>,
    /// The order's after-sale cases; the list replaces the stored one.
    #[graphql(default)]
    pub after_sales: Vec<AfterSaleInput>,
    pub shipment: Option<ShipmentInput>,
}

#[derive(InputObject, Clone, Debug)]
pub struct CreatorInput {
    /// The creator's id on the shop's platform.
    pub external_id: String,
    pub handle: String,
    pub display_name: Option<String>,
    pub followers: Option<i64>,
}

#[derive(InputObject, Clone, Debug)]
pub struct OrderItemInput {
    /// 1-based; defaults to the position in the list.
    pub line_no: Option<i32>,
    /// The platform's product id; unknown products are created.
    pub product_external_id: String,
    pub product_title: Option<String>,
    pub category: Option<String>,
    pub sku: String,
    pub quantity: i32,
    pub unit_price: i64,
    pub paid_amount: i64,
}

#[derive(InputObject, Clone, Debug)]
pub struct AfterSaleInput {
    pub external_id: String,
    pub kind: AfterSaleKind,
    pub status: AfterSaleStatus,
    pub reason: Option<String>,
    #[graphql(default)]
    pub refund_amount: i64,
    pub requested_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    #[graphql(default_with = "Dispute::None")]
    pub dispute: Dispute,
}

#[derive(InputObject, Clone, Debug)]
pub struct ShipmentInput {
    pub carrier: String,
    pub tracking_no: String,
    pub shipped_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

pub use crate::db::ingest::{ValidItem, ValidOrder, Written};
pub use crate::domain::IngestOutcome;

#[derive(SimpleObject, Clone, Debug)]
pub struct IngestResult {
    /// Position in the submitted list.
    pub index: i32,
    pub shop_id: ID,
    pub order_no: String,
    pub outcome: IngestOutcome,
    pub order_id: Option<ID>,
    pub reason: Option<String>,
}

#[derive(SimpleObject, Clone, Debug, Default)]
pub struct IngestReport {
    pub created: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub stale: i32,
    pub rejected: i32,
    pub results: Vec<IngestResult>,
}

impl IngestReport {
    pub fn from_results(mut results: Vec<IngestResult>) -> IngestReport {
        results.sort_by_key(|r| r.index);
        let count = |o| results.iter().filter(|r| r.outcome == o).count() as i32;
        IngestReport {
            created: count(IngestOutcome::Created),
            updated: count(IngestOutcome::Updated),
            unchanged: count(IngestOutcome::Unchanged),
            stale: count(IngestOutcome::Stale),
            rejected: count(IngestOutcome::Rejected),
            results,
        }
    }
}

impl From<Written> for IngestResult {
    fn from(w: Written) -> IngestResult {
        IngestResult {
            index: w.index,
            shop_id: ID(w.shop_id.to_string()),
            order_no: w.order_no,
            outcome: w.outcome,
            order_id: w.order_id.map(|id| ID(id.to_string())),
            reason: w.reason,
        }
    }
}

impl From<CreatorInput> for crate::db::ingest::CreatorFacts {
    fn from(c: CreatorInput) -> Self {
        Self {
            external_id: c.external_id,
            handle: c.handle,
            display_name: c.display_name,
            followers: c.followers,
        }
    }
}

impl From<AfterSaleInput> for crate::db::ingest::AfterSaleFacts {
    fn from(a: AfterSaleInput) -> Self {
        Self {
            external_id: a.external_id,
            kind: a.kind,
            status: a.status,
            reason: a.reason,
            refund_amount: a.refund_amount,
            requested_at: a.requested_at,
            resolved_at: a.resolved_at,
            dispute: a.dispute,
        }
    }
}

impl From<ShipmentInput> for crate::db::ingest::ShipmentFacts {
    fn from(s: ShipmentInput) -> Self {
        Self {
            carrier: s.carrier,
            tracking_no: s.tracking_no,
            shipped_at: s.shipped_at,
            delivered_at: s.delivered_at,
        }
    }
}

const MAX_TEXT: usize = 512;
const MAX_ITEMS: usize = 200;
const MAX_AFTER_SALES: usize = 50;

/// The largest amount one order, line, refund or commission may carry, in minor units
/// (100,000,000.00 in major units). The engine keeps sums in 64-bit cells: at this bound
/// a single shop-month cell overflows only after some 900 million maximal orders, so no
/// accepted order can make a later write or read of its period fail.
pub const MAX_AMOUNT: i64 = 10_000_000_000;
/// The largest quantity of one line.
pub const MAX_QUANTITY: i32 = 1_000_000;
/// No platform timestamp is older than this (the platforms began long after it).
const EARLIEST: &str = "2000-01-01T00:00:00Z";
/// Platform clocks run a little ahead of ours; a day more is a wrong timestamp, which
/// would otherwise (as `sourceUpdatedAt`) make every later real update `STALE`.
const FUTURE_SLACK_HOURS: i64 = 24;

/// Identifiers (order numbers, ids, SKUs) take no control characters at all; free text
/// (names, addresses, notes) may hold tabs and line breaks. PostgreSQL text cannot hold
/// NUL, so letting one through would fail the whole batch's transaction.
fn check_chars(field: &str, value: &str, free_text: bool) -> Result<(), String> {
    let bad = value
        .chars()
        .find(|c| c.is_control() && !(free_text && matches!(c, '\n' | '\r' | '\t')));
    match bad {
        Some(c) => Err(format!(
            "{field} contains the control character U+{:04X}",
            c as u32
        )),
        None => Ok(()),
    }
}

/// At most this many characters of a value are echoed in a reason.
const ECHOED: usize = 40;

/// The head of `value` and whether anything was cut off.
fn head(value: &str) -> (String, &'static str) {
    let head: String = value.chars().take(ECHOED).collect();
    let more = if value.chars().nth(ECHOED).is_some() {
        "…"
    } else {
        ""
    };
    (head, more)
}

/// A value quoted (control characters escaped) in a reason, cut so that a huge input
/// is not echoed back.
fn quoted(value: &str) -> String {
    let (head, more) = head(value);
    format!("{head:?}{more}")
}

/// A value shown as it is in a reason, cut like [`quoted`].
fn cut(value: &str) -> String {
    let (head, more) = head(value);
    format!("{head}{more}")
}

fn check_text(field: &str, value: &str, required: bool) -> Result<(), String> {
    if required && value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.chars().count() > MAX_TEXT {
        return Err(format!("{field} is longer than {MAX_TEXT} characters"));
    }
    // Required fields are identifiers; optional ones are free text.
    check_chars(field, value, !required)
}

fn check_amount(field: &str, value: i64) -> Result<(), String> {
    if value < 0 {
        Err(format!("{field} must not be negative (got {value})"))
    } else if value > MAX_AMOUNT {
        Err(format!("{field} is larger than {MAX_AMOUNT} (got {value})"))
    } else {
        Ok(())
    }
}

/// Every timestamp of an order lies between 2000 and a day from now.
fn check_time(field: &str, value: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<(), String> {
    let Some(value) = value else { return Ok(()) };
    let earliest: DateTime<Utc> = EARLIEST.parse().expect("valid constant");
    if value < earliest {
        return Err(format!("{field} is before 2000-01-01 ({value})"));
    }
    if value > now + chrono::Duration::hours(FUTURE_SLACK_HOURS) {
        return Err(format!(
            "{field} is more than {FUTURE_SLACK_HOURS} hours in the future ({value})"
        ));
    }
    Ok(())
}

fn check_order(
    (a_name, a): (&str, Option<DateTime<Utc>>),
    (b_name, b): (&str, Option<DateTime<Utc>>),
) -> Result<(), String> {
    match (a, b) {
        (Some(a), Some(b)) if b < a => Err(format!("{b_name} is before {a_name}")),
        _ => Ok(()),
    }
}

/// Validates one order against the caller's scope and the reference data.
pub fn validate(
    index: i32,
    input: OrderInput,
    principal: &Principal,
    province_codes: &HashSet<String>,
) -> Result<ValidOrder, String> {
    let shop = input
        .shop_id
        .parse::<i64>()
        .ok()
        .and_then(|id| principal.shop(id))
        .ok_or_else(|| format!("unknown shop {}", cut(input.shop_id.as_str())))?
        .clone();
    let platform = shop.platform;
    check_text("orderNo", &input.order_no, true)?;
    if input.order_no.len() > 64 {
        return Err("orderNo is longer than 64 characters".into());
    }
    check_text("buyerId", &input.buyer_id, true)?;
    for (name, value) in [
        ("rawStatus", &input.raw_status),
        ("city", &input.city),
        ("contentId", &input.content_id),
        ("buyerNickname", &input.buyer_nickname),
        ("receiverName", &input.receiver_name),
        ("receiverPhone", &input.receiver_phone),
        ("receiverAddress", &input.receiver_address),
        ("buyerNote", &input.buyer_note),
    ] {
        if let Some(value) = value {
            check_text(name, value, false)?;
        }
    }
    if let Some(currency) = &input.currency {
        if !currency.eq_ignore_ascii_case(&shop.currency) {
            return Err(format!(
                "currency {} is not the shop's currency {}",
                quoted(currency),
                shop.currency
            ));
        }
    }
    check_amount("goodsAmount", input.goods_amount)?;
    check_amount("shippingFee", input.shipping_fee)?;
    check_amount("discountAmount", input.discount_amount)?;
    check_amount("paidAmount", input.paid_amount)?;
    if !(0..=10_000).contains(&input.commission_rate_bps) {
        return Err("commissionRateBps must be between 0 and 10000".into());
    }
    if let Some(commission) = input.commission_amount {
        check_amount("commissionAmount", commission)?;
    }
    let now = Utc::now();
    for (name, value) in [
        ("placedAt", Some(input.placed_at)),
        ("paidAt", input.paid_at),
        ("shippedAt", input.shipped_at),
        ("deliveredAt", input.delivered_at),
        ("completedAt", input.completed_at),
        ("cancelledAt", input.cancelled_at),
        ("sourceUpdatedAt", Some(input.source_updated_at)),
    ] {
        check_time(name, value, now)?;
    }
    check_order(
        ("placedAt", Some(input.placed_at)),
        ("paidAt", input.paid_at),
    )?;
    check_order(
        ("placedAt", Some(input.placed_at)),
        ("shippedAt", input.shipped_at),
    )?;
    check_order(
        ("shippedAt", input.shipped_at),
        ("deliveredAt", input.delivered_at),
    )?;
    check_order(
        ("placedAt", Some(input.placed_at)),
        ("completedAt", input.completed_at),
    )?;
    check_order(
        ("placedAt", Some(input.placed_at)),
        ("cancelledAt", input.cancelled_at),
    )?;
    if let Some(code) = &input.province_code {
        if !province_codes.contains(code) {
            return Err(format!("unknown province code {}", quoted(code)));
        }
    }
    let paid = input.paid_at.is_some();
    let status = match (&input.status, &input.raw_status) {
        (Some(status), _) => *status,
        (None, Some(raw)) => normalize_status(platform, raw, paid)
            .ok_or_else(|| format!("unknown {platform} status {}", quoted(raw)))?,
        (None, None) => return Err("status or rawStatus is required".into()),
    };
    if status.requires_payment() && !paid {
        return Err(format!("status {status} requires paidAt"));
    }
    if !status.requires_payment() && paid {
        return Err(format!("status {status} cannot have paidAt"));
    }
    let raw_status = input
        .raw_status
        .clone()
        .unwrap_or_else(|| status.as_str().to_string());

    if let Some(creator) = &input.creator {
        check_text("creator.externalId", &creator.external_id, true)?;
        check_text("creator.handle", &creator.handle, true)?;
        if let Some(name) = &creator.display_name {
            check_text("creator.displayName", name, false)?;
        }
        if let Some(followers) = creator.followers {
            check_amount("creator.followers", followers)?;
        }
    }
    let commission_amount = match (input.commission_amount, &input.creator) {
        (Some(amount), _) => amount,
        (None, Some(_)) if paid => {
            input.paid_amount * i64::from(input.commission_rate_bps) / 10_000
        }
        _ => 0,
    };

    if input.items.len() > MAX_ITEMS {
        return Err(format!("an order has at most {MAX_ITEMS} items"));
    }
    let mut lines = HashSet::new();
    let mut items = Vec::with_capacity(input.items.len());
    for (pos, item) in input.items.iter().enumerate() {
        let line_no = item.line_no.unwrap_or(pos as i32 + 1);
        if line_no < 1 || !lines.insert(line_no) {
            return Err(format!("item lineNo {line_no} is invalid or repeated"));
        }
        check_text("items.productExternalId", &item.product_external_id, true)?;
        check_text("items.sku", &item.sku, true)?;
        if item.quantity <= 0 || item.quantity > MAX_QUANTITY {
            return Err(format!(
                "item {line_no} quantity must be between 1 and {MAX_QUANTITY}"
            ));
        }
        if let Some(title) = &item.product_title {
            check_text("items.productTitle", title, false)?;
        }
        if let Some(category) = &item.category {
            check_text("items.category", category, false)?;
        }
        check_amount("items.unitPrice", item.unit_price)?;
        check_amount("items.paidAmount", item.paid_amount)?;
        items.push(ValidItem {
            line_no,
            product_external_id: item.product_external_id.clone(),
            product_title: item
                .product_title
                .clone()
                .unwrap_or_else(|| item.product_external_id.clone()),
            category: item
                .category
                .clone()
                .unwrap_or_else(|| "未分类".to_string()),
            sku: item.sku.clone(),
            quantity: item.quantity,
            unit_price: item.unit_price,
            paid_amount: item.paid_amount,
        });
    }

    if input.after_sales.len() > MAX_AFTER_SALES {
        return Err(format!(
            "an order has at most {MAX_AFTER_SALES} after-sales"
        ));
    }
    let mut after_sale_ids = HashSet::new();
    for case in &input.after_sales {
        check_text("afterSales.externalId", &case.external_id, true)?;
        if let Some(reason) = &case.reason {
            check_text("afterSales.reason", reason, false)?;
        }
        check_time("afterSales.requestedAt", Some(case.requested_at), now)?;
        check_time("afterSales.resolvedAt", case.resolved_at, now)?;
        if !after_sale_ids.insert(case.external_id.as_str()) {
            return Err(format!("after-sale {} is repeated", case.external_id));
        }
        check_amount("afterSales.refundAmount", case.refund_amount)?;
        if case.refund_amount > input.paid_amount {
            return Err(format!(
                "after-sale {} refunds more than was paid",
                case.external_id
            ));
        }
        if !paid {
            return Err("an unpaid order cannot have after-sales".into());
        }
        check_order(
            ("requestedAt", Some(case.requested_at)),
            ("resolvedAt", case.resolved_at),
        )?;
    }
    if let Some(shipment) = &input.shipment {
        check_text("shipment.carrier", &shipment.carrier, true)?;
        check_text("shipment.trackingNo", &shipment.tracking_no, true)?;
        check_time("shipment.shippedAt", Some(shipment.shipped_at), now)?;
        check_time("shipment.deliveredAt", shipment.delivered_at, now)?;
        check_order(
            ("shipment.shippedAt", Some(shipment.shipped_at)),
            ("shipment.deliveredAt", shipment.delivered_at),
        )?;
    }

    let order = crate::db::ingest::NewOrder {
        shop_id: shop.id,
        order_no: input.order_no.trim().to_string(),
        status: status.as_str().to_string(),
        raw_status,
        placed_at: input.placed_at,
        paid_at: input.paid_at,
        shipped_at: input.shipped_at,
        delivered_at: input.delivered_at,
        completed_at: input.completed_at,
        cancelled_at: input.cancelled_at,
        payment_method: input.payment_method.map(|m| m.as_str().to_string()),
        goods_amount: input.goods_amount,
        shipping_fee: input.shipping_fee,
        discount_amount: input.discount_amount,
        paid_amount: input.paid_amount,
        province_code: input.province_code.clone(),
        city: input.city.clone(),
        channel: input.channel.as_str().to_string(),
        creator_id: None,
        content_id: input.content_id.clone(),
        commission_rate_bps: input.commission_rate_bps,
        commission_amount,
        buyer_id: input.buyer_id.clone(),
        buyer_nickname: input.buyer_nickname.clone(),
        receiver_name: input.receiver_name.clone(),
        receiver_phone: input.receiver_phone.clone(),
        receiver_address: input.receiver_address.clone(),
        buyer_note: input.buyer_note.clone(),
        source_updated_at: input.source_updated_at,
    };
    Ok(ValidOrder {
        index,
        shop,
        order,
        creator: input.creator.map(Into::into),
        items,
        after_sales: input.after_sales.into_iter().map(Into::into).collect(),
        shipment: input.shipment.map(Into::into),
    })
}

/// Keeps, for each (shop, order number), only the newest version in the batch; the
/// others are reported against it without touching the database.
pub fn dedupe(orders: Vec<ValidOrder>) -> (Vec<ValidOrder>, Vec<IngestResult>) {
    let mut newest: HashMap<(i64, String), ValidOrder> = HashMap::new();
    let mut superseded = Vec::new();
    for order in orders {
        let key = (order.order.shop_id, order.order.order_no.clone());
        match newest.remove(&key) {
            None => {
                newest.insert(key, order);
            }
            Some(kept) => {
                let (winner, loser) =
                    if order.order.source_updated_at >= kept.order.source_updated_at {
                        (order, kept)
                    } else {
                        (kept, order)
                    };
                let outcome = if loser.order.source_updated_at == winner.order.source_updated_at {
                    IngestOutcome::Unchanged
                } else {
                    IngestOutcome::Stale
                };
                superseded.push(IngestResult {
                    index: loser.index,
                    shop_id: ID(loser.order.shop_id.to_string()),
                    order_no: loser.order.order_no.clone(),
                    outcome,
                    order_id: None,
                    reason: Some("a newer version of this order is in the same batch".into()),
                });
                newest.insert(key, winner);
            }
        }
    }
    let mut kept: Vec<ValidOrder> = newest.into_values().collect();
    // One lock order for every batch: overlapping concurrent ingests cannot deadlock.
    kept.sort_by(|a, b| {
        (a.order.shop_id, &a.order.order_no).cmp(&(b.order.shop_id, &b.order.order_no))
    });
    (kept, superseded)
}

/// Writes validated orders in one transaction: the newest version of each (shop, order
/// number) is upserted, older ones in the batch are reported against it. Every order's
/// result, in no particular order.
pub fn write(
    conn: &mut diesel::PgConnection,
    actor: crate::db::audit::Actor,
    valid: Vec<ValidOrder>,
) -> crate::error::AppResult<Vec<IngestResult>> {
    let (batch, mut results) = dedupe(valid);
    let written = crate::db::ingest::apply(conn, &batch, actor)?;
    results.extend(written.into_iter().map(IngestResult::from));
    Ok(results)
}

/// `ingestOrders`: validates up to `max_ingest_batch` orders as `p` (who needs
/// `ORDERS_WRITE`) and writes the valid ones; an invalid order is `REJECTED` with its
/// reason and never sinks the others.
pub async fn ingest_orders(
    services: &crate::state::Services,
    p: &Principal,
    orders: Vec<OrderInput>,
) -> crate::error::AppResult<IngestReport> {
    use crate::error::AppError;
    p.require(crate::domain::Permission::OrdersWrite)?;
    let max = services.settings.limits.max_ingest_batch;
    if orders.len() > max {
        return Err(AppError::bad_input(format!(
            "ingestOrders takes at most {max} orders per call, got {}",
            orders.len()
        )));
    }
    let codes: HashSet<String> = services
        .provinces()
        .await?
        .iter()
        .map(|p| p.code.clone())
        .collect();
    let mut valid = Vec::with_capacity(orders.len());
    let mut results = Vec::new();
    for (index, input) in orders.into_iter().enumerate() {
        let (shop_id, order_no) = (input.shop_id.clone(), input.order_no.clone());
        match validate(index as i32, input, p, &codes) {
            Ok(v) => valid.push(v),
            Err(reason) => results.push(IngestResult {
                index: index as i32,
                shop_id,
                order_no,
                outcome: IngestOutcome::Rejected,
                order_id: None,
                reason: Some(reason),
            }),
        }
    }
    let actor = p.actor();
    let written = crate::db::run(&services.pool, move |c| write(c, actor, valid)).await?;
    results.extend(written);
    Ok(IngestReport::from_results(results))
}
