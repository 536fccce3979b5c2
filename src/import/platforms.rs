//! Each platform's order export as [`OrderInput`]s: which header names hold which
//! field (Chinese as the seller back-ends print them, English for TikTok Shop and for
//! exports switched to English), and how one order's rows (one per item line) become
//! one order.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::db::reference::ProvinceRow;
use crate::domain::{Channel, OrderStatus, PaymentMethod, Platform};
use crate::error::{AppError, AppResult};
use crate::ingest::{CreatorInput, OrderInput, OrderItemInput, ShipmentInput};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Field {
    OrderNo,
    Status,
    PlacedAt,
    PaidAt,
    ShippedAt,
    DeliveredAt,
    CompletedAt,
    CancelledAt,
    ProductId,
    ProductTitle,
    Sku,
    Category,
    Quantity,
    UnitPrice,
    LinePaid,
    OrderPaid,
    ShippingFee,
    Province,
    City,
    Address,
    Receiver,
    Phone,
    BuyerId,
    BuyerNickname,
    Channel,
    CreatorId,
    CreatorName,
    Carrier,
    TrackingNo,
    PaymentMethod,
    BuyerNote,
}

use Field::*;

/// Header names of each field, most specific first; a platform's own names come
/// before the shared ones.
fn names(platform: Platform) -> Vec<(Field, &'static [&'static str])> {
    let own: Vec<(Field, &'static [&'static str])> = match platform {
        // 抖店 订单导出 (one row per sub-order, 子订单).
        Platform::Douyin => vec![
            (OrderNo, &["主订单编号"]),
            (
                LinePaid,
                &["订单应付金额", "子订单应付金额", "商品实付金额"],
            ),
            (PlacedAt, &["订单提交时间"]),
            (Channel, &["流量体裁", "流量来源", "流量渠道"]),
            (CreatorId, &["达人ID", "作者ID"]),
            (CreatorName, &["达人昵称", "作者昵称"]),
        ],
        // 千牛 已卖出的宝贝 订单报表 (one row per order).
        Platform::Taobao | Platform::Tmall => vec![
            (OrderNo, &["订单编号"]),
            (BuyerId, &["买家会员名"]),
            (OrderPaid, &["买家实际支付金额"]),
            (ShippingFee, &["买家应付邮费"]),
            (UnitPrice, &["买家应付货款"]),
            (ProductTitle, &["宝贝标题"]),
            (Quantity, &["宝贝总数量"]),
            (Sku, &["商家编码"]),
            (Address, &["收货地址"]),
            (Receiver, &["收货人姓名"]),
            (Phone, &["联系手机"]),
            (CompletedAt, &["确认收货时间"]),
            (Carrier, &["物流公司"]),
            (TrackingNo, &["物流单号"]),
        ],
        // TikTok Shop Seller Center "Export orders" (one row per SKU).
        Platform::Tiktok => vec![
            (OrderNo, &["Order ID"]),
            (Status, &["Order Status"]),
            (ProductId, &["Product ID", "SKU ID"]),
            (Sku, &["Seller SKU", "SKU ID"]),
            (ProductTitle, &["Product Name"]),
            (UnitPrice, &["SKU Unit Original Price"]),
            (LinePaid, &["SKU Subtotal After Discount"]),
            (OrderPaid, &["Order Amount"]),
            (ShippingFee, &["Shipping Fee After Discount"]),
            (PlacedAt, &["Created Time"]),
            (PaidAt, &["Paid Time"]),
            (ShippedAt, &["Shipped Time"]),
            (DeliveredAt, &["Delivered Time"]),
            (CancelledAt, &["Cancelled Time"]),
            (TrackingNo, &["Tracking ID"]),
            (Carrier, &["Shipping Provider Name"]),
            (BuyerId, &["Buyer Username"]),
            (Receiver, &["Recipient"]),
            (Phone, &["Phone #"]),
            (Province, &["State"]),
            (Category, &["Product Category"]),
            (BuyerNote, &["Buyer Message"]),
        ],
        // 快手小店 订单导出.
        Platform::Kuaishou => vec![
            (OrderNo, &["订单号", "订单编号"]),
            (LinePaid, &["实付款", "订单实付款", "商品实付款"]),
            (CreatorId, &["达人ID", "分销达人ID", "推广者ID"]),
            (CreatorName, &["达人昵称", "推广者昵称"]),
            (Channel, &["成交渠道", "流量来源"]),
        ],
        Platform::Jd | Platform::Pdd => Vec::new(),
    };
    let shared: Vec<(Field, &'static [&'static str])> = vec![
        (OrderNo, &["订单编号", "订单号", "Order ID", "Order No"]),
        (Status, &["订单状态", "Order Status", "Status"]),
        (
            PlacedAt,
            &[
                "下单时间",
                "订单创建时间",
                "创建时间",
                "Created Time",
                "Order Time",
            ],
        ),
        (
            PaidAt,
            &[
                "支付完成时间",
                "订单付款时间",
                "付款时间",
                "支付时间",
                "订单支付时间",
                "Paid Time",
            ],
        ),
        (ShippedAt, &["发货时间", "Shipped Time"]),
        (DeliveredAt, &["签收时间", "Delivered Time"]),
        (
            CompletedAt,
            &["订单完成时间", "完成时间", "确认收货时间", "Completed Time"],
        ),
        (CancelledAt, &["取消时间", "订单关闭时间", "Cancelled Time"]),
        (ProductId, &["商品ID", "商品编号", "Product ID"]),
        (
            ProductTitle,
            &[
                "选购商品",
                "商品名称",
                "商品标题",
                "宝贝标题",
                "Product Name",
            ],
        ),
        (
            Sku,
            &["商家编码", "SKU编码", "商品规格", "规格", "Seller SKU"],
        ),
        (Category, &["商品类目", "类目", "Product Category"]),
        (
            Quantity,
            &["商品数量", "购买数量", "成交数量", "数量", "Quantity"],
        ),
        (UnitPrice, &["商品单价", "单价", "Unit Price"]),
        (LinePaid, &["商品实付金额", "实付金额", "Subtotal"]),
        (OrderPaid, &["订单实付金额", "Order Amount"]),
        (ShippingFee, &["运费", "邮费", "Shipping Fee"]),
        (Province, &["省", "省份", "收件省", "State", "Province"]),
        (City, &["市", "城市", "收件市", "City"]),
        (
            Address,
            &[
                "详细地址",
                "收货地址",
                "收件地址",
                "Detail Address",
                "Address",
            ],
        ),
        (Receiver, &["收件人", "收货人", "收货人姓名", "Recipient"]),
        (
            Phone,
            &[
                "收件人手机号",
                "收货人电话",
                "联系电话",
                "联系手机",
                "Phone #",
                "Phone",
            ],
        ),
        (
            BuyerId,
            &[
                "买家ID",
                "用户ID",
                "买家会员名",
                "Buyer ID",
                "Buyer Username",
            ],
        ),
        (BuyerNickname, &["买家昵称", "用户昵称", "Buyer Nickname"]),
        (
            Channel,
            &["流量来源", "流量渠道", "Channel", "Traffic Source"],
        ),
        (CreatorId, &["达人ID", "Creator ID"]),
        (CreatorName, &["达人昵称", "Creator Name", "Creator"]),
        (
            Carrier,
            &["快递公司", "物流公司", "Shipping Provider Name", "Carrier"],
        ),
        (
            TrackingNo,
            &[
                "快递单号",
                "物流单号",
                "运单号",
                "Tracking ID",
                "Tracking Number",
            ],
        ),
        (PaymentMethod, &["支付方式", "Payment Method"]),
        (BuyerNote, &["买家留言", "Buyer Message", "Buyer Note"]),
    ];
    own.into_iter().chain(shared).collect()
}

/// Which column holds which field in one file.
pub struct Columns {
    at: HashMap<Field, usize>,
}

impl Columns {
    /// Matches the header row (names compared exactly, English ones without case).
    /// The order number, the placing time and an amount are required.
    pub fn find(platform: Platform, headers: &[String]) -> AppResult<Columns> {
        let mut at = HashMap::new();
        for (field, candidates) in names(platform) {
            if at.contains_key(&field) {
                continue;
            }
            let found = candidates.iter().find_map(|name| {
                headers
                    .iter()
                    .position(|h| h == name || (name.is_ascii() && h.eq_ignore_ascii_case(name)))
            });
            if let Some(i) = found {
                at.insert(field, i);
            }
        }
        let label = |f: Field| {
            names(platform)
                .into_iter()
                .find(|(x, _)| *x == f)
                .map(|(_, n)| n.join(" / "))
                .unwrap_or_default()
        };
        for required in [OrderNo, PlacedAt] {
            if !at.contains_key(&required) {
                return Err(AppError::bad_input(format!(
                    "no {} column in this {} export (found: {})",
                    label(required),
                    platform.as_str(),
                    headers.join(", ")
                )));
            }
        }
        if ![LinePaid, OrderPaid, UnitPrice]
            .iter()
            .any(|f| at.contains_key(f))
        {
            return Err(AppError::bad_input(format!(
                "no amount column in this {} export (one of {}; {}; {})",
                platform.as_str(),
                label(LinePaid),
                label(OrderPaid),
                label(UnitPrice)
            )));
        }
        Ok(Columns { at })
    }

    fn get<'a>(&self, cells: &'a [String], field: Field) -> Option<&'a str> {
        let value = cells.get(*self.at.get(&field)?)?;
        // Exports keep long numbers as text with a leading tab or apostrophe.
        let value = value.trim().trim_start_matches(['\'', '`']).trim();
        (!value.is_empty() && value != "-" && value != "--").then_some(value)
    }
}

/// Province names as exports print them (浙江省, 浙江, Zhejiang, 广西壮族自治区, ...)
/// to GB/T 2260 codes.
pub struct ProvinceNames {
    by_name: HashMap<String, String>,
}

impl ProvinceNames {
    pub fn new(rows: &[ProvinceRow]) -> ProvinceNames {
        let mut by_name = HashMap::new();
        for p in rows {
            by_name.insert(p.name_zh.clone(), p.code.clone());
            by_name.insert(short_zh(&p.name_zh).to_string(), p.code.clone());
            by_name.insert(p.name_en.to_lowercase(), p.code.clone());
            by_name.insert(p.code.clone(), p.code.clone());
        }
        ProvinceNames { by_name }
    }

    fn code(&self, name: &str) -> Option<String> {
        let name = name.trim();
        self.by_name
            .get(name)
            .or_else(|| self.by_name.get(short_zh(name)))
            .or_else(|| self.by_name.get(&name.to_lowercase()))
            .cloned()
    }
}

/// A Chinese province name without its administrative suffix.
fn short_zh(name: &str) -> &str {
    for suffix in [
        "壮族自治区",
        "回族自治区",
        "维吾尔自治区",
        "特别行政区",
        "自治区",
        "省",
        "市",
    ] {
        if let Some(s) = name.strip_suffix(suffix) {
            return s;
        }
    }
    name
}

/// One order of a file, assembled from its rows, or why it cannot be.
pub struct Assembled {
    pub row: u64,
    pub order_no: String,
    pub order: Result<OrderInput, String>,
}

struct Partial {
    input: OrderInput,
    /// The order-level paid amount, when the export has one.
    order_paid: Option<i64>,
    lines_paid: i64,
}

struct Pending {
    row: u64,
    order_no: String,
    order: Result<Partial, String>,
}

/// Gathers rows into orders. Rows of one order are expected close together (exports
/// list an order's lines one after another); a batch keeps its last order open.
pub struct Assembler<'a> {
    platform: Platform,
    shop_id: i64,
    zone: Tz,
    provinces: &'a ProvinceNames,
    pending: Vec<Pending>,
    index: HashMap<String, usize>,
}

impl<'a> Assembler<'a> {
    pub fn new(
        platform: Platform,
        shop_id: i64,
        zone: Tz,
        provinces: &'a ProvinceNames,
    ) -> Assembler<'a> {
        Assembler {
            platform,
            shop_id,
            zone,
            provinces,
            pending: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Orders gathered so far.
    pub fn ready(&self) -> usize {
        self.pending.len()
    }

    /// The gathered orders, finished; without `all`, the last one stays (its next
    /// line may be in the next row).
    pub fn take(&mut self, all: bool) -> Vec<Assembled> {
        let keep = if all { None } else { self.pending.pop() };
        let out = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|p| Assembled {
                row: p.row,
                order_no: p.order_no,
                order: p.order.map(finish),
            })
            .collect();
        self.index.clear();
        if let Some(k) = keep {
            self.index.insert(k.order_no.clone(), 0);
            self.pending.push(k);
        }
        out
    }

    pub fn add(&mut self, row: u64, cols: &Columns, cells: &[String]) {
        let order_no = cols.get(cells, OrderNo).unwrap_or("").to_string();
        if order_no.is_empty() {
            self.pending.push(Pending {
                row,
                order_no,
                order: Err(format!("row {row}: no order number")),
            });
            return;
        }
        if let Some(&i) = self.index.get(&order_no) {
            let pending = &mut self.pending[i];
            if let Ok(partial) = &mut pending.order {
                if let Err(reason) = line(self.platform, row, cols, cells, partial) {
                    pending.order = Err(reason);
                }
            }
            return;
        }
        let order = self.start(row, cols, cells).and_then(|mut partial| {
            line(self.platform, row, cols, cells, &mut partial)?;
            Ok(partial)
        });
        self.index.insert(order_no.clone(), self.pending.len());
        self.pending.push(Pending {
            row,
            order_no,
            order,
        });
    }

    fn time(
        &self,
        row: u64,
        cols: &Columns,
        cells: &[String],
        f: Field,
    ) -> Result<Option<DateTime<Utc>>, String> {
        match cols.get(cells, f) {
            None => Ok(None),
            Some(text) => parse_time(text, self.zone)
                .map(Some)
                .ok_or_else(|| format!("row {row}: {text:?} is not a date and time")),
        }
    }

    /// The order-level fields, from the order's first row.
    fn start(&self, row: u64, cols: &Columns, cells: &[String]) -> Result<Partial, String> {
        let order_no = cols.get(cells, OrderNo).unwrap_or("").to_string();
        let placed_at = self
            .time(row, cols, cells, PlacedAt)?
            .ok_or_else(|| format!("row {row}: no order time"))?;
        let mut paid_at = self.time(row, cols, cells, PaidAt)?;
        let shipped_at = self.time(row, cols, cells, ShippedAt)?;
        let delivered_at = self.time(row, cols, cells, DeliveredAt)?;
        let completed_at = self.time(row, cols, cells, CompletedAt)?;
        let cancelled_at = self.time(row, cols, cells, CancelledAt)?;
        let raw_status = cols.get(cells, Status).map(str::to_string);
        let status = raw_status.as_deref().and_then(status_of).unwrap_or(
            if cancelled_at.is_some() && paid_at.is_none() {
                OrderStatus::Cancelled
            } else if completed_at.is_some() {
                OrderStatus::Completed
            } else if delivered_at.is_some() {
                OrderStatus::Delivered
            } else if shipped_at.is_some() {
                OrderStatus::Shipped
            } else if paid_at.is_some() {
                OrderStatus::AwaitingShipment
            } else {
                OrderStatus::PendingPayment
            },
        );
        // An export that shows a paid status without a payment time: paid when placed.
        if status.requires_payment() && paid_at.is_none() {
            paid_at = Some(placed_at);
        }
        let money = |f: Field| -> Result<Option<i64>, String> {
            match cols.get(cells, f) {
                None => Ok(None),
                Some(text) => parse_amount(text)
                    .map(Some)
                    .ok_or_else(|| format!("row {row}: {text:?} is not an amount")),
            }
        };
        let shipping_fee = money(ShippingFee)?.unwrap_or(0);
        let order_paid = money(OrderPaid)?;
        let mut province = cols
            .get(cells, Province)
            .and_then(|p| self.provinces.code(p));
        let address = cols.get(cells, Address).map(str::to_string);
        if province.is_none() {
            // 千牛's 收货地址 starts with the province: "浙江省 杭州市 西湖区 ...".
            province = address
                .as_deref()
                .and_then(|a| a.split_whitespace().next())
                .and_then(|p| self.provinces.code(p));
        }
        let receiver = cols.get(cells, Receiver).map(str::to_string);
        let phone = cols.get(cells, Phone).map(str::to_string);
        let nickname = cols.get(cells, BuyerNickname).map(str::to_string);
        let buyer_id = match cols.get(cells, BuyerId) {
            Some(id) => id.to_string(),
            None => match (&nickname, &receiver, &address) {
                (Some(n), _, _) => format!("nick:{n}"),
                (None, Some(r), Some(a)) => {
                    use sha2::Digest;
                    let digest = sha2::Sha256::digest(format!(
                        "{r}\n{}\n{a}",
                        phone.as_deref().unwrap_or("")
                    ));
                    format!("rcv:{}", &crate::cache::hex(&digest)[..16])
                }
                _ => {
                    return Err(format!(
                        "row {row}: no buyer id, buyer nickname or receiver to tell the buyer"
                    ))
                }
            },
        };
        let creator = cols.get(cells, CreatorId).map(|id| CreatorInput {
            external_id: id.to_string(),
            handle: cols.get(cells, CreatorName).unwrap_or(id).to_string(),
            display_name: cols.get(cells, CreatorName).map(str::to_string),
            followers: None,
        });
        let shipment = match (
            cols.get(cells, Carrier),
            cols.get(cells, TrackingNo),
            shipped_at,
        ) {
            (Some(carrier), Some(tracking), Some(shipped)) => Some(ShipmentInput {
                carrier: carrier.to_string(),
                tracking_no: tracking.to_string(),
                shipped_at: shipped,
                delivered_at,
            }),
            _ => None,
        };
        let updated = [
            Some(placed_at),
            paid_at,
            shipped_at,
            delivered_at,
            completed_at,
            cancelled_at,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(placed_at);
        Ok(Partial {
            input: OrderInput {
                shop_id: async_graphql::ID(self.shop_id.to_string()),
                order_no,
                status: Some(status),
                raw_status,
                placed_at,
                paid_at,
                shipped_at,
                delivered_at,
                completed_at,
                cancelled_at: if status == OrderStatus::Cancelled || status == OrderStatus::Closed {
                    cancelled_at.or(Some(updated))
                } else {
                    None
                },
                payment_method: cols.get(cells, PaymentMethod).map(payment_of),
                currency: None,
                goods_amount: 0,
                shipping_fee,
                discount_amount: 0,
                paid_amount: 0,
                province_code: province,
                city: cols.get(cells, City).map(str::to_string),
                channel: cols.get(cells, Channel).map_or(Channel::Other, channel_of),
                creator,
                content_id: None,
                commission_rate_bps: 0,
                commission_amount: None,
                buyer_id,
                buyer_nickname: nickname,
                receiver_name: receiver,
                receiver_phone: phone,
                receiver_address: address,
                buyer_note: cols.get(cells, BuyerNote).map(str::to_string),
                source_updated_at: updated,
                items: Vec::new(),
                after_sales: Vec::new(),
                shipment,
            },
            order_paid,
            lines_paid: 0,
        })
    }
}

/// One item line of an order, from any of its rows.
fn line(
    platform: Platform,
    row: u64,
    cols: &Columns,
    cells: &[String],
    p: &mut Partial,
) -> Result<(), String> {
    {
        let amount = |f: Field| -> Result<Option<i64>, String> {
            match cols.get(cells, f) {
                None => Ok(None),
                Some(text) => parse_amount(text)
                    .map(Some)
                    .ok_or_else(|| format!("row {row}: {text:?} is not an amount")),
            }
        };
        let quantity = match cols.get(cells, Quantity) {
            None => 1,
            Some(q) => q
                .parse::<i32>()
                .ok()
                .filter(|q| *q > 0)
                .ok_or_else(|| format!("row {row}: {q:?} is not a quantity"))?,
        };
        let unit = amount(UnitPrice)?;
        let line_paid = amount(LinePaid)?;
        // 千牛's order report has the goods total where others have a unit price.
        let per_unit = match (platform, unit) {
            (Platform::Taobao | Platform::Tmall, Some(total)) => total / i64::from(quantity),
            (_, Some(u)) => u,
            (_, None) => line_paid.unwrap_or(0) / i64::from(quantity),
        };
        let paid = line_paid
            .or_else(|| match platform {
                Platform::Taobao | Platform::Tmall => {
                    p.order_paid.map(|o| (o - p.input.shipping_fee).max(0))
                }
                _ => None,
            })
            .unwrap_or(per_unit * i64::from(quantity));
        let title = cols.get(cells, ProductTitle).map(str::to_string);
        let product = cols
            .get(cells, ProductId)
            .or_else(|| cols.get(cells, Sku))
            .map(str::to_string)
            .or_else(|| title.clone())
            .ok_or_else(|| format!("row {row}: no product id, SKU or title"))?;
        let sku = cols.get(cells, Sku).unwrap_or(&product).to_string();
        p.input.items.push(OrderItemInput {
            line_no: None,
            product_external_id: product.chars().take(128).collect(),
            product_title: title,
            category: cols.get(cells, Category).map(str::to_string),
            sku: sku.chars().take(128).collect(),
            quantity,
            unit_price: per_unit,
            paid_amount: paid,
        });
        p.input.goods_amount += per_unit * i64::from(quantity);
        p.lines_paid += paid;
        Ok(())
    }
}

/// The order's amounts once every line is in: paid is the export's order amount, or
/// the lines' plus shipping; the discount is what the goods and shipping exceed it by.
fn finish(p: Partial) -> OrderInput {
    let mut input = p.input;
    let paid = p.order_paid.unwrap_or(p.lines_paid + input.shipping_fee);
    let unpaid = input.paid_at.is_none();
    input.paid_amount = if unpaid { 0 } else { paid };
    input.discount_amount = (input.goods_amount + input.shipping_fee - paid).max(0);
    input
}

/// An amount in major units as minor units: `128.50`, `¥1,280.5`, `$12`.
pub fn parse_amount(text: &str) -> Option<i64> {
    let t: String = text
        .chars()
        .filter(|c| !matches!(c, '¥' | '￥' | '$' | ',' | ' ' | '元'))
        .collect();
    let t = t
        .strip_prefix("CNY")
        .or_else(|| t.strip_prefix("USD"))
        .unwrap_or(&t);
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() && frac.is_empty() || !whole.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 2 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let cents: i64 = format!("{frac:0<2}").parse().ok()?;
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    whole.checked_mul(100)?.checked_add(cents)
}

/// A local date and time in the shop's zone (or an explicit offset), as exports print
/// it, or an Excel serial day number.
pub fn parse_time(text: &str, zone: Tz) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.with_timezone(&Utc));
    }
    const FORMATS: &[&str] = &[
        "%Y-%m-%d %H:%M:%S",
        "%Y/%m/%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M",
        "%m/%d/%Y %I:%M:%S %p",
        "%m/%d/%Y %H:%M:%S",
        "%d/%m/%Y %H:%M:%S",
        "%Y年%m月%d日 %H:%M:%S",
    ];
    let naive = FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .or_else(|| {
            // An Excel serial number of days since 1899-12-30.
            let days: f64 = t
                .parse()
                .ok()
                .filter(|d: &f64| *d > 20_000.0 && *d < 80_000.0)?;
            let base = NaiveDate::from_ymd_opt(1899, 12, 30)?.and_hms_opt(0, 0, 0)?;
            Some(base + chrono::Duration::milliseconds((days * 86_400_000.0).round() as i64))
        })?;
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|dt| dt.with_timezone(&Utc))
}

/// Status texts of the platforms' exports (Chinese and English).
fn status_of(text: &str) -> Option<OrderStatus> {
    use OrderStatus::*;
    let t = text.trim();
    let lower = t.to_lowercase();
    Some(match t {
        "待付款" | "待支付" | "等待买家付款" | "未付款" => PendingPayment,
        "待发货" | "已支付" | "备货中" | "买家已付款" | "等待卖家发货" | "已付款" | "部分发货" => {
            AwaitingShipment
        }
        "已发货" | "待收货" | "卖家已发货" | "等待买家确认收货" | "运输中" => {
            Shipped
        }
        "已签收" | "已收货" => Delivered,
        "已完成" | "交易成功" | "交易完成" => Completed,
        "已关闭" | "交易关闭" | "已取消" | "订单取消" | "交易取消" => Cancelled,
        _ => match lower.as_str() {
            "unpaid" | "awaiting payment" | "pending payment" => PendingPayment,
            "awaiting shipment" | "to ship" | "awaiting collection" | "ready to ship" => {
                AwaitingShipment
            }
            "shipped" | "in transit" => Shipped,
            "delivered" => Delivered,
            "completed" => Completed,
            "cancelled" | "canceled" | "closed" => Cancelled,
            _ => return None,
        },
    })
}

fn channel_of(text: &str) -> Channel {
    let t = text.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if has(&["直播", "live"]) {
        Channel::Live
    } else if has(&["短视频", "视频", "video"]) {
        Channel::ShortVideo
    } else if has(&["橱窗", "商品卡", "showcase", "product card"]) {
        Channel::Showcase
    } else if has(&["搜索", "商城", "货架", "search", "mall", "shelf"]) {
        Channel::Shelf
    } else if has(&["广告", "千川", "推广", "ads", "ad "]) {
        Channel::Ads
    } else {
        Channel::Other
    }
}

fn payment_of(text: &str) -> PaymentMethod {
    let t = text.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if has(&["支付宝", "alipay", "花呗"]) {
        PaymentMethod::Alipay
    } else if has(&["微信", "wechat"]) {
        PaymentMethod::WechatPay
    } else if has(&["抖音", "douyin", "抖音月付"]) {
        PaymentMethod::DouyinPay
    } else if has(&["货到付款", "cod", "cash on delivery"]) {
        PaymentMethod::Cod
    } else if has(&["银行卡", "信用卡", "card", "visa", "mastercard", "paypal"]) {
        PaymentMethod::Card
    } else {
        PaymentMethod::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_minor_units() {
        assert_eq!(parse_amount("128.50"), Some(12_850));
        assert_eq!(parse_amount("¥1,280.5"), Some(128_050));
        assert_eq!(parse_amount("$12"), Some(1_200));
        assert_eq!(parse_amount("0.1"), Some(10));
        assert_eq!(parse_amount("3.000"), Some(300));
        assert_eq!(parse_amount("3.005"), None);
        assert_eq!(parse_amount("-1"), None);
        assert_eq!(parse_amount("abc"), None);
    }

    #[test]
    fn times_are_read_in_the_shop_zone() {
        let sh: Tz = "Asia/Shanghai".parse().unwrap();
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        let want: DateTime<Utc> = "2026-11-20T06:03:11Z".parse().unwrap();
        assert_eq!(parse_time("2026-11-20 14:03:11", sh), Some(want));
        assert_eq!(parse_time("2026/11/20 14:03:11", sh), Some(want));
        assert_eq!(
            parse_time("11/20/2026 02:03:11 PM", la),
            Some("2026-11-20T22:03:11Z".parse().unwrap())
        );
        assert_eq!(parse_time("yesterday", sh), None);
    }

    #[test]
    fn statuses_channels_and_payments_from_export_text() {
        assert_eq!(status_of("已发货"), Some(OrderStatus::Shipped));
        assert_eq!(
            status_of("Awaiting Shipment"),
            Some(OrderStatus::AwaitingShipment)
        );
        assert_eq!(status_of("交易成功"), Some(OrderStatus::Completed));
        assert_eq!(channel_of("直播"), Channel::Live);
        assert_eq!(channel_of("商品卡"), Channel::Showcase);
        assert_eq!(payment_of("支付宝"), PaymentMethod::Alipay);
    }
}
