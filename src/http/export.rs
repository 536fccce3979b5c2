//! CSV downloads for BI tools: `GET /export/orders.csv` streams orders with the same
//! filters, scope and masking as the `orders` query; `GET /export/trend.csv` and
//! `GET /export/breakdown.csv` run the GraphQL report with the same arguments and
//! write it as a table.
//!
//! Every file is RFC 4180 (CRLF line ends, quoted when needed), starts with a UTF-8 BOM
//! (unless `bom=false`) so that Excel on any locale reads Chinese text, and text cells
//! that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR) are prefixed
//! with `'`. Column names say their unit: amounts are major units (`paidAmountMajor`,
//! `GMV_CNY`), ratios are fractions (`REFUND_RATE_ratio`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use async_graphql::ID;
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Utc};
use chrono_tz::Tz;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

use super::{authenticate, error_response, execute, AppState, Caller};
use crate::auth::Principal;
use crate::db::{self, orders::OrderRow, reference::ProvinceRow};
use crate::domain::{
    mask_address, mask_name, mask_phone, AbnormalKind, Channel, DataSet, OrderStatus,
    PaymentMethod, Permission, Platform,
};
use crate::error::{AppError, AppResult};
use crate::graphql::orders::OrderFilter;

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

/// Appends one cell: quoted when it holds a comma, quote, CR or LF (RFC 4180), and
/// prefixed with `'` when a spreadsheet would read it as a formula.
fn push_text(out: &mut String, text: &str) {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = text.contains([',', '"', '\r', '\n']);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    if quote {
        for ch in text.chars() {
            if ch == '"' {
                out.push('"');
            }
            out.push(ch);
        }
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// Minor units as a decimal of major units (both report currencies have 2 decimals).
fn push_money(out: &mut String, minor: i64) {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let _ = write!(out, "{sign}{}.{:02}", abs / 100, abs % 100);
}

fn push_time(out: &mut String, at: Option<DateTime<Utc>>, zone: Tz) {
    if let Some(at) = at {
        out.push_str(
            &at.with_timezone(&zone)
                .to_rfc3339_opts(SecondsFormat::Secs, false),
        );
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

/// Query parameters: `key=value`, lists comma-separated or repeated.
struct Params(BTreeMap<String, Vec<String>>);

impl Params {
    fn parse(query: &str, allowed: &[&str]) -> AppResult<Params> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|e| AppError::bad_input(format!("the query string is malformed: {e}")))?
            .into_inner();
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, value) in pairs {
            if !allowed.contains(&key.as_str()) {
                return Err(AppError::bad_input(format!(
                    "unknown parameter {key:?}; accepted: {}",
                    allowed.join(", ")
                )));
            }
            map.entry(key).or_default().extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(String::from),
            );
        }
        Ok(Params(map))
    }

    fn list(&self, key: &str) -> Option<Vec<String>> {
        self.0.get(key).cloned()
    }

    fn one(&self, key: &str) -> AppResult<Option<String>> {
        match self.0.get(key).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => Ok(Some(one.clone())),
            Some(_) => Err(AppError::bad_input(format!("{key} takes one value"))),
        }
    }

    fn flag(&self, key: &str) -> AppResult<bool> {
        self.flag_or(key, false)
    }

    /// A boolean parameter, `default` when absent.
    fn flag_or(&self, key: &str, default: bool) -> AppResult<bool> {
        match self.one(key)?.as_deref() {
            None => Ok(default),
            Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(AppError::bad_input(format!(
                "{key} must be true or false, got {other:?}"
            ))),
        }
    }

    fn enums<T>(&self, key: &str, parse: fn(&str) -> Option<T>) -> AppResult<Option<Vec<T>>> {
        self.list(key)
            .map(|values| {
                values
                    .iter()
                    .map(|v| {
                        parse(v).ok_or_else(|| {
                            AppError::bad_input(format!("{key}: {v:?} is not a valid value"))
                        })
                    })
                    .collect()
            })
            .transpose()
    }

    fn ids(&self, key: &str) -> Option<Vec<ID>> {
        self.list(key).map(|v| v.into_iter().map(ID).collect())
    }
}

fn parse_zone(name: Option<String>) -> AppResult<Tz> {
    crate::analytics::buckets::parse_zone(name.as_deref().unwrap_or("Asia/Shanghai"))
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

fn csv_response(filename: &str) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    builder
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
async fn orders_csv_as(
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

const REPORT_FILTERS: &[&str] = &[
    "shopIds",
    "platforms",
    "productIds",
    "categories",
    "provinces",
    "regions",
    "channels",
    "creatorIds",
    "paymentMethods",
];

/// GraphQL variables for a report from query parameters.
fn report_variables(params: &Params, breakdown: bool) -> AppResult<serde_json::Value> {
    let mut vars = serde_json::Map::new();
    let (Some(from), Some(to)) = (params.one("from")?, params.one("to")?) else {
        return Err(AppError::bad_input("from and to (YYYY-MM-DD) are required"));
    };
    vars.insert("range".into(), json!({ "from": from, "to": to }));
    vars.insert(
        "metrics".into(),
        json!(params
            .list("metrics")
            .ok_or_else(|| AppError::bad_input("metrics is required"))?),
    );
    for key in ["compare", "timezone", "currency"] {
        if let Some(v) = params.one(key)? {
            vars.insert(key.into(), json!(v));
        }
    }
    if breakdown {
        let dimension = params
            .one("dimension")?
            .ok_or_else(|| AppError::bad_input("dimension is required"))?;
        vars.insert("dimension".into(), json!(dimension));
        if let Some(v) = params.one("sortBy")? {
            vars.insert("sortBy".into(), json!(v));
        }
        if let Some(v) = params.one("limit")? {
            let limit: i64 = v
                .parse()
                .map_err(|_| AppError::bad_input(format!("limit must be a number, got {v:?}")))?;
            vars.insert("limit".into(), json!(limit));
        }
    } else {
        let granularity = params
            .one("granularity")?
            .ok_or_else(|| AppError::bad_input("granularity is required"))?;
        vars.insert("granularity".into(), json!(granularity));
    }
    let mut filter = serde_json::Map::new();
    for key in REPORT_FILTERS {
        if let Some(values) = params.list(key) {
            filter.insert((*key).into(), json!(values));
        }
    }
    if !filter.is_empty() {
        vars.insert("filter".into(), serde_json::Value::Object(filter));
    }
    Ok(serde_json::Value::Object(vars))
}

const TREND_QUERY: &str = "query($range: DateRange!, $granularity: Granularity!, \
    $metrics: [Metric!]!, $filter: AnalyticsFilter, $compare: Compare, $timezone: String, \
    $currency: String) { report: trend(range: $range, granularity: $granularity, \
    metrics: $metrics, filter: $filter, compare: $compare, timezone: $timezone, \
    currency: $currency) { points { start label values { metric value previous change } } } }";

const BREAKDOWN_QUERY: &str = "query($range: DateRange!, $dimension: Dimension!, \
    $metrics: [Metric!]!, $sortBy: Metric, $limit: Int! = 10, $filter: AnalyticsFilter, \
    $compare: Compare, $timezone: String, $currency: String) { report: breakdown(\
    range: $range, dimension: $dimension, metrics: $metrics, sortBy: $sortBy, \
    limit: $limit, filter: $filter, compare: $compare, timezone: $timezone, \
    currency: $currency) { rows { key label share values { metric value previous change } } \
    other { key label share values { metric value previous change } } \
    total { metric value previous change } } }";

fn push_number(out: &mut String, value: &serde_json::Value) {
    if let Some(n) = value.as_f64() {
        let _ = write!(out, "{n}");
    }
}

/// The header name of a metric's column, with its unit: money in major units of the
/// report currency (`GMV_CNY`), ratios as fractions (`REFUND_RATE_ratio`); counts,
/// units and `AVG_DELIVERY_HOURS` say theirs already.
fn metric_column(metric: &str, currency: &str) -> String {
    match metric {
        "GMV" | "AOV" | "REFUND_AMOUNT" | "COMMISSION" => format!("{metric}_{currency}"),
        "PAY_CONVERSION" | "REFUND_RATE" | "DISPUTE_RATE" | "ON_TIME_RATE" => {
            format!("{metric}_ratio")
        }
        _ => metric.to_string(),
    }
}

/// Header cells for a report's metric values: `GMV_CNY` and, with a comparison,
/// `GMV_CNY_previous` and `GMV_CNY_change_ratio`.
fn push_value_header(out: &mut String, metrics: &[String], currency: &str, compare: bool) {
    for metric in metrics {
        let column = metric_column(metric, currency);
        out.push(',');
        out.push_str(&column);
        if compare {
            let _ = write!(out, ",{column}_previous,{column}_change_ratio");
        }
    }
}

fn push_values(out: &mut String, values: &serde_json::Value, compare: bool) {
    for value in values.as_array().into_iter().flatten() {
        out.push(',');
        push_number(out, &value["value"]);
        if compare {
            out.push(',');
            push_number(out, &value["previous"]);
            out.push(',');
            push_number(out, &value["change"]);
        }
    }
}

/// Renders an executed trend or breakdown as CSV. A breakdown's first column,
/// `rowType`, is `data` for the top rows, `other` for the rest folded together and
/// `total` for all of them, so that a BI tool filtering on `rowType = data` (or
/// summing `data` and `other`) never counts a value twice.
fn report_csv(
    data: &serde_json::Value,
    metrics: &[String],
    currency: &str,
    compare: bool,
    bom: bool,
) -> String {
    let report = &data["report"];
    let mut out = String::new();
    if bom {
        out.push('\u{feff}');
    }
    if let Some(points) = report["points"].as_array() {
        out.push_str("start,label");
        push_value_header(&mut out, metrics, currency, compare);
        out.push_str("\r\n");
        for point in points {
            push_text(&mut out, point["start"].as_str().unwrap_or(""));
            out.push(',');
            push_text(&mut out, point["label"].as_str().unwrap_or(""));
            push_values(&mut out, &point["values"], compare);
            out.push_str("\r\n");
        }
        return out;
    }
    out.push_str("rowType,key,label,share");
    push_value_header(&mut out, metrics, currency, compare);
    out.push_str("\r\n");
    let rows = report["rows"].as_array().into_iter().flatten();
    let rows = rows.map(|row| ("data", row));
    let other = report["other"]
        .as_object()
        .map(|_| ("other", &report["other"]));
    for (kind, row) in rows.chain(other) {
        out.push_str(kind);
        out.push(',');
        push_text(&mut out, row["key"].as_str().unwrap_or(""));
        out.push(',');
        push_text(&mut out, row["label"].as_str().unwrap_or(""));
        out.push(',');
        push_number(&mut out, &row["share"]);
        push_values(&mut out, &row["values"], compare);
        out.push_str("\r\n");
    }
    out.push_str("total,,Total,1");
    push_values(&mut out, &report["total"], compare);
    out.push_str("\r\n");
    out
}

async fn report(state: web::Data<AppState>, req: HttpRequest, breakdown: bool) -> HttpResponse {
    // Bad parameters are reported before credentials are checked.
    let planned = match report_params(req.query_string(), breakdown) {
        Ok(planned) => planned,
        Err(e) => return error_response(&state.metrics, e),
    };
    let principal = match authenticate(&state, &req).await {
        Ok(p) => p,
        Err(e) => return error_response(&state.metrics, e),
    };
    report_as(&state, &req, principal, planned, breakdown).await
}

/// A report's parameters and the GraphQL variables they make.
fn report_params(query_string: &str, breakdown: bool) -> AppResult<(Params, serde_json::Value)> {
    let mut allowed: Vec<&str> = vec![
        "from", "to", "metrics", "compare", "timezone", "currency", "bom",
    ];
    allowed.extend(REPORT_FILTERS);
    if breakdown {
        allowed.extend(["dimension", "sortBy", "limit"]);
    } else {
        allowed.push("granularity");
    }
    let params = Params::parse(query_string, &allowed)?;
    let vars = report_variables(&params, breakdown)?;
    Ok((params, vars))
}

/// The trend or breakdown report of `report_params`' answer, run as `principal`.
async fn report_as(
    state: &AppState,
    req: &HttpRequest,
    principal: Principal,
    (params, vars): (Params, serde_json::Value),
    breakdown: bool,
) -> HttpResponse {
    let (query, name) = if breakdown {
        (BREAKDOWN_QUERY, "breakdown.csv")
    } else {
        (TREND_QUERY, "trend.csv")
    };
    let request =
        async_graphql::Request::new(query).variables(async_graphql::Variables::from_json(vars));
    let response = match execute(state, req, Caller::Loaded(principal), request).await {
        Ok((r, _)) => r,
        Err(e) => return error_response(&state.metrics, e),
    };
    if let Some(error) = response.errors.first() {
        let code = error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(|c| match c {
                async_graphql::Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "BAD_USER_INPUT".into());
        let err = match code.as_str() {
            "UNAUTHENTICATED" => AppError::Unauthenticated(error.message.clone()),
            "FORBIDDEN" => AppError::Forbidden(error.message.clone()),
            "NOT_FOUND" => AppError::NotFound(error.message.clone()),
            "TIMEOUT" => AppError::Timeout,
            "RATE_LIMITED" => AppError::RateLimited(error.message.clone()),
            "UNAVAILABLE" => AppError::Unavailable(error.message.clone()),
            "INTERNAL" => AppError::internal(anyhow::anyhow!("report failed: {}", error.message)),
            _ => AppError::BadUserInput(error.message.clone()),
        };
        return error_response(&state.metrics, err);
    }
    let data = match response.data.into_json() {
        Ok(d) => d,
        Err(e) => return error_response(&state.metrics, AppError::internal(e)),
    };
    let metrics = params.list("metrics").unwrap_or_default();
    let compare = params.0.contains_key("compare");
    let bom = match params.flag_or("bom", true) {
        Ok(b) => b,
        Err(e) => return error_response(&state.metrics, e),
    };
    let currency = params.one("currency").ok().flatten();
    let currency = currency.as_deref().unwrap_or("CNY");
    csv_response(name).body(report_csv(&data, &metrics, currency, compare, bom))
}

/// `GET /export/trend.csv`: the `trend` report with the same arguments as query
/// parameters (`from`, `to`, `granularity`, `metrics`, filters, `compare`, …).
pub async fn trend_csv(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    report(state, req, false).await
}

/// `GET /export/breakdown.csv`: the `breakdown` report with the same arguments.
pub async fn breakdown_csv(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    report(state, req, true).await
}

/// `GET /export/link/{token}`: the export a signed link names (`createExportLink`), with
/// no header, as the account that made it, with its permissions and scope now. An
/// expired, revoked or unknown link, or one whose account was disabled or had its
/// tokens revoked, is `UNAUTHENTICATED`.
pub async fn link(
    state: web::Data<AppState>,
    slots: web::Data<ExportSlots>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    let hash = crate::graphql::exports::token_hash(&token);
    let found = db::run(&state.pool, move |c| db::export_links::use_live(c, &hash)).await;
    let link = match found {
        Ok(Some(link)) => link,
        Ok(None) => {
            let err = AppError::Unauthenticated(
                "this download link has expired, was revoked or does not exist".into(),
            );
            return error_response(&state.metrics, err);
        }
        Err(e) => return error_response(&state.metrics, e),
    };
    let subject = crate::auth::TokenSubject {
        account_id: link.account_id,
        tenant_id: link.tenant_id,
        generation: link.token_generation,
        // A link made under an OIDC provider's roles keeps their narrowing.
        permission_mask: link.permission_mask.map(|m| m as u32),
    };
    let principal = match db::accounts::load(&state.pool, subject).await {
        Ok(p) => p,
        Err(e) => return error_response(&state.metrics, e),
    };
    super::access::note(&req, principal.tenant_id, None);
    let actor = principal.actor();
    let link_id = link.id;
    let recorded = db::run(&state.pool, move |c| {
        db::audit::record(
            c,
            actor,
            "useExportLink",
            &format!("exportLink:{link_id}"),
            json!({}),
        )
    })
    .await;
    if let Err(e) = recorded {
        return error_response(&state.metrics, e);
    }
    match link.path.as_str() {
        "/export/orders.csv" => orders_csv_as(&state, &slots, principal, &link.query).await,
        path => {
            let breakdown = path == "/export/breakdown.csv";
            match report_params(&link.query, breakdown) {
                Ok(planned) => report_as(&state, &req, principal, planned, breakdown).await,
                Err(e) => error_response(&state.metrics, e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_neutralised() {
        let cell = |text: &str| {
            let mut out = String::new();
            push_text(&mut out, text);
            out
        };
        assert_eq!(cell("plain 文本"), "plain 文本");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(cell("+86"), "'+86");
        assert_eq!(cell("-1"), "'-1");
        assert_eq!(cell("@cmd"), "'@cmd");
        assert_eq!(cell("=1,2"), "\"'=1,2\"");
    }

    #[test]
    fn money_is_major_units() {
        let money = |minor| {
            let mut out = String::new();
            push_money(&mut out, minor);
            out
        };
        assert_eq!(money(0), "0.00");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(123_456), "1234.56");
        assert_eq!(money(-250), "-2.50");
    }
}
