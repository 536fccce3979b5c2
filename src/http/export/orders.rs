//! `GET /export/orders.csv`: orders streamed as CSV with the same filter model, scope
//! and masking as the `orders` query, chunk by chunk from a blocking database cursor.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use async_graphql::ID;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

use super::{csv_response, parse_zone, push_money, push_text, push_time, Params};
use crate::auth::Principal;
use crate::db::{self, orders::OrderRow, reference::ProvinceRow};
use crate::domain::{
    mask_address, mask_name, mask_phone, AbnormalKind, Channel, DataSet, OrderStatus,
    PaymentMethod, Permission, Platform,
};
use crate::error::{AppError, AppResult};
use crate::filters::OrderFilter;
use crate::http::{authenticate, error_response, AppState};

/// Longest placed-at window of one orders export.
pub const MAX_EXPORT_DAYS: i64 = 90;
/// Exports running at once per process; each holds a database connection while the
/// client downloads.
pub const MAX_CONCURRENT_EXPORTS: usize = 2;
/// A chunk is sent to the client when the buffer reaches this size.
const CHUNK_BYTES: usize = 64 * 1024;

/// Limits concurrent exports; shared by all workers of the process.
pub struct ExportSlots(Arc<Semaphore>);

impl Default for ExportSlots {
    fn default() -> Self {
        ExportSlots(Arc::new(Semaphore::new(MAX_CONCURRENT_EXPORTS)))
    }
}

/// One column of the orders export.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Field {
    Id,
    ShopId,
    ShopName,
    Platform,
    OrderNo,
    Status,
    RawStatus,
    PlacedAt,
    PaidAt,
    ShippedAt,
    DeliveredAt,
    CompletedAt,
    CancelledAt,
    PaymentMethod,
    Currency,
    GoodsAmount,
    ShippingFee,
    DiscountAmount,
    PaidAmount,
    ProvinceCode,
    Province,
    City,
    Channel,
    CreatorId,
    ContentId,
    CommissionRateBps,
    CommissionAmount,
    BuyerId,
    BuyerNickname,
    ReceiverName,
    ReceiverPhone,
    ReceiverAddress,
    BuyerNote,
    SellerNote,
    SellerFlag,
    SourceUpdatedAt,
    UpdatedAt,
}

const FIELDS: &[(&str, Field)] = &[
    ("id", Field::Id),
    ("shopId", Field::ShopId),
    ("shopName", Field::ShopName),
    ("platform", Field::Platform),
    ("orderNo", Field::OrderNo),
    ("status", Field::Status),
    ("rawStatus", Field::RawStatus),
    ("placedAt", Field::PlacedAt),
    ("paidAt", Field::PaidAt),
    ("shippedAt", Field::ShippedAt),
    ("deliveredAt", Field::DeliveredAt),
    ("completedAt", Field::CompletedAt),
    ("cancelledAt", Field::CancelledAt),
    ("paymentMethod", Field::PaymentMethod),
    ("currency", Field::Currency),
    ("goodsAmount", Field::GoodsAmount),
    ("shippingFee", Field::ShippingFee),
    ("discountAmount", Field::DiscountAmount),
    ("paidAmount", Field::PaidAmount),
    ("provinceCode", Field::ProvinceCode),
    ("province", Field::Province),
    ("city", Field::City),
    ("channel", Field::Channel),
    ("creatorId", Field::CreatorId),
    ("contentId", Field::ContentId),
    ("commissionRateBps", Field::CommissionRateBps),
    ("commissionAmount", Field::CommissionAmount),
    ("buyerId", Field::BuyerId),
    ("buyerNickname", Field::BuyerNickname),
    ("receiverName", Field::ReceiverName),
    ("receiverPhone", Field::ReceiverPhone),
    ("receiverAddress", Field::ReceiverAddress),
    ("buyerNote", Field::BuyerNote),
    ("sellerNote", Field::SellerNote),
    ("sellerFlag", Field::SellerFlag),
    ("sourceUpdatedAt", Field::SourceUpdatedAt),
    ("updatedAt", Field::UpdatedAt),
];

const DEFAULT_FIELDS: &str = "id,shopName,platform,orderNo,status,placedAt,paidAt,\
    paymentMethod,currency,paidAmount,province,city,channel,buyerNickname,receiverName,\
    receiverPhone";

impl Field {
    fn is_pii(self) -> bool {
        matches!(
            self,
            Field::ReceiverName | Field::ReceiverPhone | Field::ReceiverAddress
        )
    }
    fn is_money(self) -> bool {
        matches!(
            self,
            Field::GoodsAmount
                | Field::ShippingFee
                | Field::DiscountAmount
                | Field::PaidAmount
                | Field::CommissionAmount
        )
    }
    fn is_finance(self) -> bool {
        matches!(self, Field::CommissionRateBps | Field::CommissionAmount)
    }
}

/// Writes rows of the orders export.
struct OrderWriter {
    fields: Vec<Field>,
    zone: Tz,
    pii: bool,
    shops: BTreeMap<i64, (String, crate::domain::Platform, String)>,
    provinces: BTreeMap<String, String>,
}

impl OrderWriter {
    fn header(&self, out: &mut String) {
        let names: Vec<String> = self
            .fields
            .iter()
            .map(|f| {
                let name = FIELDS.iter().find(|(_, g)| g == f).map_or("", |(n, _)| *n);
                // Amounts are written in major units (yuan, dollars), unlike the API's
                // minor-unit integers of the same name: the header says so.
                if f.is_money() {
                    format!("{name}Major")
                } else {
                    name.to_string()
                }
            })
            .collect();
        out.push_str(&names.join(","));
        out.push_str("\r\n");
    }

    fn row(&self, out: &mut String, o: &OrderRow) {
        let shop = self.shops.get(&o.shop_id);
        let province = o
            .province_code
            .as_ref()
            .and_then(|c| self.provinces.get(c))
            .map_or("", String::as_str);
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match field {
                Field::Id => {
                    let _ = write!(out, "{}", o.id);
                }
                Field::ShopId => {
                    let _ = write!(out, "{}", o.shop_id);
                }
                Field::ShopName => push_text(out, shop.map_or("", |s| &s.0)),
                Field::Platform => push_text(out, shop.map_or("", |s| s.1.as_str())),
                Field::OrderNo => push_text(out, &o.order_no),
                Field::Status => push_text(out, o.status.as_str()),
                Field::RawStatus => push_text(out, &o.raw_status),
                Field::PlacedAt => push_time(out, Some(o.placed_at), self.zone),
                Field::PaidAt => push_time(out, o.paid_at, self.zone),
                Field::ShippedAt => push_time(out, o.shipped_at, self.zone),
                Field::DeliveredAt => push_time(out, o.delivered_at, self.zone),
                Field::CompletedAt => push_time(out, o.completed_at, self.zone),
                Field::CancelledAt => push_time(out, o.cancelled_at, self.zone),
                Field::PaymentMethod => push_text(out, o.payment_method.map_or("", |m| m.as_str())),
                Field::Currency => push_text(out, shop.map_or("", |s| &s.2)),
                Field::GoodsAmount => push_money(out, o.goods_amount),
                Field::ShippingFee => push_money(out, o.shipping_fee),
                Field::DiscountAmount => push_money(out, o.discount_amount),
                Field::PaidAmount => push_money(out, o.paid_amount),
                Field::ProvinceCode => push_text(out, o.province_code.as_deref().unwrap_or("")),
                Field::Province => push_text(out, province),
                Field::City => push_text(out, o.city.as_deref().unwrap_or("")),
                Field::Channel => push_text(out, o.channel.as_str()),
                Field::CreatorId => {
                    if let Some(id) = o.creator_id {
                        let _ = write!(out, "{id}");
                    }
                }
                Field::ContentId => push_text(out, o.content_id.as_deref().unwrap_or("")),
                Field::CommissionRateBps => {
                    let _ = write!(out, "{}", o.commission_rate_bps);
                }
                Field::CommissionAmount => push_money(out, o.commission_amount),
                Field::BuyerId => push_text(out, &o.buyer_id),
                Field::BuyerNickname => push_text(out, o.buyer_nickname.as_deref().unwrap_or("")),
                Field::ReceiverName => match &o.receiver_name {
                    Some(n) if self.pii => push_text(out, n),
                    Some(n) => push_text(out, &mask_name(n)),
                    None => {}
                },
                Field::ReceiverPhone => match &o.receiver_phone {
                    Some(n) if self.pii => push_text(out, n),
                    Some(n) => push_text(out, &mask_phone(n)),
                    None => {}
                },
                Field::ReceiverAddress => match &o.receiver_address {
                    Some(a) if self.pii => push_text(out, a),
                    Some(_) => push_text(out, &mask_address(province, o.city.as_deref())),
                    None => {}
                },
                Field::BuyerNote => push_text(out, o.buyer_note.as_deref().unwrap_or("")),
                Field::SellerNote => push_text(out, o.seller_note.as_deref().unwrap_or("")),
                Field::SellerFlag => push_text(out, o.seller_flag.map_or("", |f| f.as_str())),
                Field::SourceUpdatedAt => push_time(out, Some(o.source_updated_at), self.zone),
                Field::UpdatedAt => push_time(out, Some(o.updated_at), self.zone),
            }
        }
        out.push_str("\r\n");
    }
}

/// An instant (RFC 3339), or a date meaning the start of that day in `zone`; `end`
/// dates mean the start of the next day, so `placedTo=2026-11-20` includes that day.
fn parse_instant(key: &str, text: &str, zone: Tz, end: bool) -> AppResult<DateTime<Utc>> {
    use crate::domain::calendar;
    let out_of_range = |reason: String| AppError::bad_input(format!("{key}: {reason}"));
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return calendar::check_instant(at.with_timezone(&Utc)).map_err(out_of_range);
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        AppError::bad_input(format!(
            "{key} must be an RFC 3339 instant or a YYYY-MM-DD date, got {:?}",
            text.chars().take(40).collect::<String>()
        ))
    })?;
    let day = calendar::check_date(day).map_err(out_of_range)?;
    let day = if end { day.succ_opt() } else { Some(day) };
    day.map(|day| crate::analytics::buckets::local_midnight(zone, day))
        .ok_or_else(|| AppError::bad_input(format!("{key}: {text:?} is out of range")))
}

const ORDER_PARAMS: &[&str] = &[
    "shopIds",
    "platforms",
    "statuses",
    "paymentMethods",
    "placedFrom",
    "placedTo",
    "orderNo",
    "productId",
    "buyerNickname",
    "provinces",
    "channels",
    "creatorId",
    "hasAfterSale",
    "sellerFlags",
    "hasSellerNote",
    "abnormal",
    "fields",
    "timezone",
    "bom",
];

/// A validated orders export.
struct OrdersExport {
    query: db::orders::OrderQuery,
    writer: OrderWriter,
    bom: bool,
    audit: serde_json::Value,
}

fn plan_orders_export(principal: &Principal, query_string: &str) -> AppResult<OrdersExport> {
    // Exporting is a way of reading order rows, so it needs what reading them needs.
    principal.require(Permission::Export)?;
    principal.require_read(DataSet::OrderRows)?;
    let params = Params::parse(query_string, ORDER_PARAMS)?;
    let zone = parse_zone(params.one("timezone")?)?;
    let (Some(from), Some(to)) = (params.one("placedFrom")?, params.one("placedTo")?) else {
        return Err(AppError::bad_input(format!(
            "placedFrom and placedTo are required (at most {MAX_EXPORT_DAYS} days)"
        )));
    };
    let placed_from = parse_instant("placedFrom", &from, zone, false)?;
    let placed_to = parse_instant("placedTo", &to, zone, true)?;
    if placed_to <= placed_from {
        return Err(AppError::bad_input("placedTo must be after placedFrom"));
    }
    if placed_to - placed_from > TimeDelta::days(MAX_EXPORT_DAYS) {
        return Err(AppError::bad_input(format!(
            "an export covers at most {MAX_EXPORT_DAYS} days; split the range"
        )));
    }
    let filter = OrderFilter {
        shop_ids: params.ids("shopIds"),
        platforms: params.enums("platforms", Platform::parse)?,
        statuses: params.enums("statuses", OrderStatus::parse)?,
        payment_methods: params.enums("paymentMethods", PaymentMethod::parse)?,
        placed_from: Some(placed_from),
        placed_to: Some(placed_to),
        order_no: params.one("orderNo")?,
        product_id: params.one("productId")?.map(ID),
        buyer_nickname: params.one("buyerNickname")?,
        provinces: params.list("provinces"),
        channels: params.enums("channels", Channel::parse)?,
        creator_id: params.one("creatorId")?.map(ID),
        has_after_sale: params
            .one("hasAfterSale")?
            .map(|_| params.flag("hasAfterSale"))
            .transpose()?,
        seller_flags: params.enums("sellerFlags", crate::domain::SellerFlag::parse)?,
        has_seller_note: params
            .one("hasSellerNote")?
            .map(|_| params.flag("hasSellerNote"))
            .transpose()?,
    };
    let mut query = filter.to_query(principal)?;
    let abnormal = params
        .one("abnormal")?
        .map(|k| {
            AbnormalKind::parse(&k)
                .ok_or_else(|| AppError::bad_input(format!("abnormal: {k:?} is not a valid value")))
        })
        .transpose()?;
    query.abnormal = abnormal.map(|kind| (kind, Utc::now()));

    let names = params
        .list("fields")
        .unwrap_or_else(|| DEFAULT_FIELDS.split(',').map(String::from).collect());
    let mut fields = Vec::with_capacity(FIELDS.len());
    // The columns as exported, each once: a URL repeating a field thousands of times
    // must not grow the audit entry.
    let mut exported: Vec<&str> = Vec::with_capacity(FIELDS.len());
    for name in &names {
        let field = FIELDS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                AppError::bad_input(format!(
                    "unknown field {name:?}; accepted: {}",
                    FIELDS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        if field.is_finance() {
            principal.require_read(DataSet::Commission)?;
        }
        if !fields.contains(&field) {
            fields.push(field);
            exported.push(name.as_str());
        }
    }
    let pii = principal.may_read(DataSet::BuyerPii) && fields.iter().any(|f| f.is_pii());
    let shops = principal
        .shops
        .iter()
        .map(|s| (s.id, (s.name.clone(), s.platform, s.currency.clone())))
        .collect();
    let audit = json!({
        "shopIds": query.shop_ids,
        "placedFrom": placed_from,
        "placedTo": placed_to,
        "filters": params.0.iter().filter(|(k, _)| k.as_str() != "fields").collect::<BTreeMap<_, _>>(),
        "fields": exported,
        "unmaskedPii": pii,
    });
    Ok(OrdersExport {
        query,
        writer: OrderWriter {
            fields,
            zone,
            pii,
            shops,
            provinces: BTreeMap::new(),
        },
        bom: params.flag_or("bom", true)?,
        audit,
    })
}

type Chunk = Result<Bytes, std::io::Error>;

/// Turns the receiving end of a chunk channel into a response body stream.
fn body_of(rx: mpsc::Receiver<Chunk>) -> impl futures_util::Stream<Item = Chunk> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

/// `GET /export/orders.csv`: needs `EXPORT`; `placedFrom` and `placedTo` (at most 90
/// days) are required, every other `orders` filter is optional.
pub async fn orders_csv(
    state: web::Data<AppState>,
    slots: web::Data<ExportSlots>,
    req: HttpRequest,
) -> HttpResponse {
    let principal = match authenticate(&state, &req).await {
        Ok(p) => p,
        Err(e) => return error_response(&state.metrics, e),
    };
    orders_csv_as(&state, &slots, principal, req.query_string()).await
}

/// The orders export of `query_string`, run as `principal`.
pub(super) async fn orders_csv_as(
    state: &AppState,
    slots: &ExportSlots,
    principal: Principal,
    query_string: &str,
) -> HttpResponse {
    let mut export = match plan_orders_export(&principal, query_string) {
        Ok(e) => e,
        Err(e) => return error_response(&state.metrics, e),
    };
    let Ok(permit) = slots.0.clone().try_acquire_owned() else {
        let err = AppError::RateLimited(format!(
            "at most {MAX_CONCURRENT_EXPORTS} exports run at once; retry shortly"
        ));
        return error_response(&state.metrics, err);
    };
    // The export is recorded before any row leaves.
    let actor = principal.actor();
    let details = export.audit.clone();
    let provinces = db::run(&state.pool, move |c| {
        db::audit::record(c, actor, "orders.export", "orders", details)?;
        db::reference::all_provinces(c)
    })
    .await;
    match provinces {
        Ok(rows) => {
            export.writer.provinces = rows
                .into_iter()
                .map(|p: ProvinceRow| (p.code, p.name_zh))
                .collect()
        }
        Err(e) => return error_response(&state.metrics, e),
    }

    let (tx, rx) = mpsc::channel::<Chunk>(8);
    let pool = state.pool.clone();
    let timeout_ms = state.settings.export_timeout.as_millis() as u64;
    actix_web::rt::spawn(async move {
        let _permit = permit;
        let failed = tx.clone();
        let result = db::run(&pool, move |conn| {
            let mut out = String::with_capacity(CHUNK_BYTES + 4096);
            if export.bom {
                out.push('\u{feff}');
            }
            export.writer.header(&mut out);
            let send = |out: &mut String| -> bool {
                let chunk = Bytes::from(std::mem::take(out));
                out.reserve(CHUNK_BYTES + 4096);
                tx.blocking_send(Ok(chunk)).is_ok()
            };
            db::orders::stream(conn, &export.query, timeout_ms, |row| {
                export.writer.row(&mut out, &row);
                // A closed channel means the client went away: stop reading.
                Ok(out.len() < CHUNK_BYTES || send(&mut out))
            })?;
            if !out.is_empty() {
                send(&mut out);
            }
            Ok(())
        })
        .await;
        if let Err(e) = result {
            // The body ends with an error, so the client sees a broken transfer
            // instead of a file that silently lacks rows.
            let message = e.public_message();
            tracing::warn!(code = e.code(), %message, "orders export failed mid-stream");
            let _ = failed.send(Err(std::io::Error::other(message))).await;
        }
    });
    csv_response("orders.csv").streaming(body_of(rx))
}
