//! The unified order model's enums and the platform status mappings.
//!
//! GraphQL and the database spell every enum value the same way, so one macro gives
//! each enum its GraphQL type, its database text and its parser.

use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $($(#[$vmeta])* #[graphql(name = $text)] #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling shared by GraphQL and the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the shared spelling; `None` for anything else.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        /// Rows carry the enum: its database text is read and written as is, and a
        /// value outside the enum fails the read instead of passing as text.
        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = std::str::from_utf8(value.as_bytes())?;
                Self::parse(text)
                    .ok_or_else(|| format!("{text:?} is not a {}", stringify!($name)).into())
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                use std::io::Write;
                out.write_all(self.as_str().as_bytes())?;
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Marketplace a shop sells on.
    Platform {
        Douyin => "DOUYIN",
        Tiktok => "TIKTOK",
        Taobao => "TAOBAO",
        Tmall => "TMALL",
        Kuaishou => "KUAISHOU",
        Jd => "JD",
        Pdd => "PDD",
    }
);

text_enum!(
    /// Unified order lifecycle across platforms.
    OrderStatus {
        PendingPayment => "PENDING_PAYMENT",
        AwaitingShipment => "AWAITING_SHIPMENT",
        Shipped => "SHIPPED",
        Delivered => "DELIVERED",
        Completed => "COMPLETED",
        /// Never paid.
        Cancelled => "CANCELLED",
        /// Closed after a full refund.
        Closed => "CLOSED",
    }
);

text_enum!(
    /// How the buyer paid.
    PaymentMethod {
        DouyinPay => "DOUYIN_PAY",
        Alipay => "ALIPAY",
        WechatPay => "WECHAT_PAY",
        Card => "CARD",
        Cod => "COD",
        Other => "OTHER",
    }
);

text_enum!(
    /// Traffic source of an order.
    Channel {
        Live => "LIVE",
        ShortVideo => "SHORT_VIDEO",
        Showcase => "SHOWCASE",
        /// Mall and search.
        Shelf => "SHELF",
        Ads => "ADS",
        Other => "OTHER",
    }
);

text_enum!(
    /// Macro regions of mainland China and the SARs (the `regions` query lists their provinces).
    Region {
        East => "EAST",
        South => "SOUTH",
        North => "NORTH",
        Central => "CENTRAL",
        Southwest => "SOUTHWEST",
        Northwest => "NORTHWEST",
        Northeast => "NORTHEAST",
    }
);

text_enum!(
    /// What happened to one order of a batch.
    IngestOutcome {
        Created => "CREATED",
        Updated => "UPDATED",
        /// The same version was already stored.
        Unchanged => "UNCHANGED",
        /// A newer version was already stored; this one was not applied.
        Stale => "STALE",
        /// Invalid; `reason` says why. Nothing of it was stored.
        Rejected => "REJECTED",
    }
);

text_enum!(
    /// What the buyer asked for after the sale.
    AfterSaleKind {
        RefundOnly => "REFUND_ONLY",
        ReturnRefund => "RETURN_REFUND",
        Exchange => "EXCHANGE",
    }
);

text_enum!(
    /// Where an after-sale case stands.
    AfterSaleStatus {
        Requested => "REQUESTED",
        Approved => "APPROVED",
        Rejected => "REJECTED",
        Refunded => "REFUNDED",
        Closed => "CLOSED",
    }
);

text_enum!(
    /// Platform arbitration of an after-sale case.
    Dispute {
        None => "NONE",
        Open => "OPEN",
        BuyerWon => "BUYER_WON",
        SellerWon => "SELLER_WON",
    }
);

text_enum!(
    /// What an account may do (the README's sub-accounts and docs/AUTH.md).
    Permission {
        AnalyticsRead => "ANALYTICS_READ",
        OrdersRead => "ORDERS_READ",
        PiiRead => "PII_READ",
        FinanceRead => "FINANCE_READ",
        OrdersShip => "ORDERS_SHIP",
        AfterSalesHandle => "AFTER_SALES_HANDLE",
        Export => "EXPORT",
        OrdersWrite => "ORDERS_WRITE",
        AccountsManage => "ACCOUNTS_MANAGE",
        /// May skip the aggregate cache for one request (`X-Cache-Bypass: 1`) in
        /// production; outside production anyone may.
        CacheBypass => "CACHE_BYPASS",
        /// May set sellers' notes and flags on orders (卖家备注, 旗帜).
        OrdersAnnotate => "ORDERS_ANNOTATE",
    }
);

text_enum!(
    /// The platforms' five order flag colours (旗帜): 红 黄 绿 蓝 紫.
    SellerFlag {
        Red => "RED",
        Yellow => "YELLOW",
        Green => "GREEN",
        Blue => "BLUE",
        Purple => "PURPLE",
    }
);

/// What a caller reads. Each data set has one permission, and every path that hands it
/// out (GraphQL, CSV exports, caches, subscriptions) asks [`DataSet::permission`], so
/// no transport can grant more than another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataSet {
    /// Order rows: `orders`, `order`, abnormal-order lists, `/export/orders.csv`.
    OrderRows,
    /// Aggregates: `kpis`, `trend`, `breakdown`, `dailyReport` and their CSV exports.
    Reports,
    /// Commission rates and amounts, as fields or metrics.
    Commission,
    /// Receiver name, phone and address unmasked.
    BuyerPii,
}

impl DataSet {
    pub fn permission(self) -> Permission {
        match self {
            DataSet::OrderRows => Permission::OrdersRead,
            DataSet::Reports => Permission::AnalyticsRead,
            DataSet::Commission => Permission::FinanceRead,
            DataSet::BuyerPii => Permission::PiiRead,
        }
    }
}

text_enum!(
    /// Named permission sets for sub-accounts (seed wording: 仅查看 / 处理售后 / 发货权限).
    RolePreset {
        Viewer => "VIEWER",
        AfterSales => "AFTER_SALES",
        Shipping => "SHIPPING",
        Analyst => "ANALYST",
        Integration => "INTEGRATION",
    }
);

text_enum!(
    /// Dashboard metrics (exact definitions in docs/ANALYTICS.md).
    Metric {
        Orders => "ORDERS",
        PaidOrders => "PAID_ORDERS",
        Gmv => "GMV",
        Units => "UNITS",
        Aov => "AOV",
        PayConversion => "PAY_CONVERSION",
        RefundOrders => "REFUND_ORDERS",
        RefundAmount => "REFUND_AMOUNT",
        RefundRate => "REFUND_RATE",
        DisputeOrders => "DISPUTE_ORDERS",
        DisputeRate => "DISPUTE_RATE",
        AvgDeliveryHours => "AVG_DELIVERY_HOURS",
        Commission => "COMMISSION",
        Buyers => "BUYERS",
        /// Delivered orders whose ship-to-delivery time was within the delivery promise
        /// (`DELIVERY_PROMISE_HOURS`, 72 by default), over delivered orders.
        OnTimeRate => "ON_TIME_RATE",
        /// Buyers with two or more paid orders in the range (复购人数).
        RepeatBuyers => "REPEAT_BUYERS",
        /// REPEAT_BUYERS over BUYERS (复购率).
        RepeatRate => "REPEAT_RATE",
        /// Buyers whose first paid order in a shop's whole history is in the range
        /// (新客).
        NewBuyers => "NEW_BUYERS",
    }
);

text_enum!(
    /// What a breakdown groups by.
    Dimension {
        Shop => "SHOP",
        Platform => "PLATFORM",
        Product => "PRODUCT",
        Category => "CATEGORY",
        Province => "PROVINCE",
        Region => "REGION",
        Channel => "CHANNEL",
        Creator => "CREATOR",
        PaymentMethod => "PAYMENT_METHOD",
        Status => "STATUS",
        /// The shipment's carrier (物流公司); orders not shipped have the empty key.
        Carrier => "CARRIER",
    }
);

text_enum!(
    /// Trend bucket size; WEEK starts on Monday.
    Granularity {
        Hour => "HOUR",
        Day => "DAY",
        Week => "WEEK",
        Month => "MONTH",
    }
);

text_enum!(
    /// The period a report is compared with (环比 / 同比).
    Compare {
        PreviousPeriod => "PREVIOUS_PERIOD",
        SamePeriodLastYear => "SAME_PERIOD_LAST_YEAR",
    }
);

impl Metric {
    /// Additive metrics sum over disjoint groups (rows + other = total).
    /// What a value of the metric counts: money (major units of the report currency),
    /// a ratio (a fraction), hours, or a count.
    pub fn unit(self) -> MetricUnit {
        use Metric::*;
        match self {
            Gmv | Aov | RefundAmount | Commission => MetricUnit::Money,
            PayConversion | RefundRate | DisputeRate | OnTimeRate | RepeatRate => MetricUnit::Ratio,
            AvgDeliveryHours => MetricUnit::Hours,
            Orders | PaidOrders | Units | RefundOrders | DisputeOrders | Buyers | RepeatBuyers
            | NewBuyers => MetricUnit::Count,
        }
    }

    pub fn is_additive(self) -> bool {
        matches!(
            self,
            Metric::Orders
                | Metric::PaidOrders
                | Metric::Gmv
                | Metric::Units
                | Metric::RefundOrders
                | Metric::RefundAmount
                | Metric::DisputeOrders
                | Metric::Commission
        )
    }
}

/// The unit of a metric's values ([`Metric::unit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricUnit {
    Count,
    Money,
    Ratio,
    Hours,
}

impl RolePreset {
    /// The exact permissions of a preset.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            RolePreset::Viewer => &[AnalyticsRead, OrdersRead],
            RolePreset::AfterSales => &[OrdersRead, AfterSalesHandle, OrdersAnnotate],
            RolePreset::Shipping => &[OrdersRead, OrdersShip, OrdersAnnotate],
            RolePreset::Analyst => &[AnalyticsRead, FinanceRead, Export],
            RolePreset::Integration => &[OrdersWrite],
        }
    }
}

impl OrderStatus {
    /// Statuses an order can only be in once it was paid.
    pub fn requires_payment(self) -> bool {
        !matches!(self, OrderStatus::PendingPayment | OrderStatus::Cancelled)
    }
}

text_enum!(
    /// The seller's work lists of orders that need attention (异常订单).
    AbnormalKind {
        /// Placed more than 24 hours ago and still waiting for payment.
        UnpaidOver24h => "UNPAID_OVER_24H",
        /// Paid more than 48 hours ago and still not shipped.
        ShipOverdue => "SHIP_OVERDUE",
        /// A refund or return-and-refund case requested or approved, not yet refunded.
        RefundPending => "REFUND_PENDING",
        /// An after-sale case with an open platform dispute.
        DisputeOpen => "DISPUTE_OPEN",
        /// Shipped more than 7 days ago and not delivered.
        DeliveryStalled => "DELIVERY_STALLED",
    }
);

text_enum!(
    /// A seller's decision on an after-sale case.
    AfterSaleDecision {
        Approve => "APPROVE",
        Reject => "REJECT",
    }
);

/// Maps a platform's raw order status to the unified lifecycle.
///
/// Platforms close unpaid and refunded orders with the same code; `paid` tells the two
/// apart (unpaid: `CANCELLED`, paid: `CLOSED`). The unified names are accepted for every
/// platform, so integrations that already normalise can send them as they are.
pub fn normalize_status(platform: Platform, raw: &str, paid: bool) -> Option<OrderStatus> {
    use OrderStatus::*;
    let closed = if paid { Closed } else { Cancelled };
    let raw = raw.trim();
    // Platform codes first: TikTok's CANCELLED also closes paid orders.
    let mapped = match platform {
        Platform::Douyin => match raw {
            "1" => PendingPayment,
            "2" => AwaitingShipment,
            "3" => Shipped,
            "5" => Completed,
            "4" => closed,
            other => return OrderStatus::parse(other),
        },
        Platform::Tiktok => match raw {
            "UNPAID" => PendingPayment,
            "AWAITING_SHIPMENT" => AwaitingShipment,
            "IN_TRANSIT" => Shipped,
            "DELIVERED" => Delivered,
            "COMPLETED" => Completed,
            "CANCELLED" => closed,
            other => return OrderStatus::parse(other),
        },
        Platform::Taobao | Platform::Tmall => match raw {
            "WAIT_BUYER_PAY" => PendingPayment,
            "WAIT_SELLER_SEND_GOODS" => AwaitingShipment,
            "WAIT_BUYER_CONFIRM_GOODS" => Shipped,
            "TRADE_FINISHED" => Completed,
            "TRADE_CLOSED_BY_TAOBAO" => Cancelled,
            "TRADE_CLOSED" => closed,
            other => return OrderStatus::parse(other),
        },
        Platform::Kuaishou | Platform::Jd | Platform::Pdd => return OrderStatus::parse(raw),
    };
    Some(mapped)
}

/// The raw status a platform would report for a unified status (used by the seed).
pub fn raw_status_for(platform: Platform, status: OrderStatus) -> &'static str {
    use OrderStatus::*;
    match platform {
        Platform::Douyin => match status {
            PendingPayment => "1",
            AwaitingShipment => "2",
            Shipped | Delivered => "3",
            Completed => "5",
            Cancelled | Closed => "4",
        },
        Platform::Tiktok => match status {
            PendingPayment => "UNPAID",
            AwaitingShipment => "AWAITING_SHIPMENT",
            Shipped => "IN_TRANSIT",
            Delivered => "DELIVERED",
            Completed => "COMPLETED",
            Cancelled | Closed => "CANCELLED",
        },
        Platform::Taobao | Platform::Tmall => match status {
            PendingPayment => "WAIT_BUYER_PAY",
            AwaitingShipment => "WAIT_SELLER_SEND_GOODS",
            Shipped | Delivered => "WAIT_BUYER_CONFIRM_GOODS",
            Completed => "TRADE_FINISHED",
            Cancelled => "TRADE_CLOSED_BY_TAOBAO",
            Closed => "TRADE_CLOSED",
        },
        Platform::Kuaishou | Platform::Jd | Platform::Pdd => status.as_str(),
    }
}

/// Masks a receiver's name: the family name stays, the rest becomes `*` (`张*`).
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => {
            let stars = chars.count().max(1);
            format!("{first}{}", "*".repeat(stars))
        }
        None => String::new(),
    }
}

/// Masks a phone number: the first three and last four digits stay (`138****5678`).
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() >= 8 {
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}****{tail}")
    } else {
        "*".repeat(chars.len().max(4))
    }
}

/// Masks a receiver's address: only the province's name and the city remain.
pub fn mask_address(province_name: &str, city: Option<&str>) -> String {
    format!("{province_name}{}", city.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_what_the_design_allows() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("123"), "****");
    }

    #[test]
    fn platform_codes_map_to_the_unified_lifecycle() {
        assert_eq!(
            normalize_status(Platform::Douyin, "4", false),
            Some(OrderStatus::Cancelled)
        );
        assert_eq!(
            normalize_status(Platform::Douyin, "4", true),
            Some(OrderStatus::Closed)
        );
        assert_eq!(
            normalize_status(Platform::Tiktok, "IN_TRANSIT", true),
            Some(OrderStatus::Shipped)
        );
        assert_eq!(
            normalize_status(Platform::Tmall, "TRADE_FINISHED", true),
            Some(OrderStatus::Completed)
        );
        assert_eq!(
            normalize_status(Platform::Jd, "DELIVERED", true),
            Some(OrderStatus::Delivered)
        );
        assert_eq!(normalize_status(Platform::Pdd, "weird", true), None);
        for platform in Platform::ALL {
            for status in OrderStatus::ALL {
                let raw = raw_status_for(*platform, *status);
                let back = normalize_status(*platform, raw, status.requires_payment()).unwrap();
                // Douyin and Taobao fold SHIPPED and DELIVERED into one code.
                if back != *status {
                    assert_eq!(
                        (back, *status),
                        (OrderStatus::Shipped, OrderStatus::Delivered)
                    );
                }
            }
        }
    }
}

/// The calendar the API accepts: no order predates 2000 and no report reaches past
/// 2099. Every date and instant a caller sends is checked against it before any SQL
/// sees it (PostgreSQL's own limits are far wider, and a date it cannot hold would
/// surface as an internal error).
pub mod calendar {
    use chrono::{DateTime, NaiveDate, Utc};

    pub const FIRST_YEAR: i32 = 2000;
    pub const LAST_YEAR: i32 = 2099;

    /// `Err` with a reason when `date` is outside the years the API accepts.
    pub fn check_date(date: NaiveDate) -> Result<NaiveDate, String> {
        use chrono::Datelike;
        if (FIRST_YEAR..=LAST_YEAR).contains(&date.year()) {
            Ok(date)
        } else {
            Err(format!(
                "{date} is outside the years {FIRST_YEAR}–{LAST_YEAR} the API accepts"
            ))
        }
    }

    /// `Err` with a reason when `at` is outside the years the API accepts.
    pub fn check_instant(at: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        check_date(at.date_naive()).map(|_| at)
    }
}

/// One rule for short text a caller sends (names, notes, carriers, search terms): at
/// most `max` characters and no control characters. PostgreSQL cannot store or compare
/// NUL, so one let through would surface as an internal error.
pub fn check_plain_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.chars().count() > max {
        return Err(format!("{field} is longer than {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(())
}

/// The CSV exports a download link or a scheduled report may name.
pub const EXPORT_PATHS: &[&str] = &[
    "/export/orders.csv",
    "/export/trend.csv",
    "/export/breakdown.csv",
];

impl Region {
    /// The region's Chinese and English names.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Region::East => ("华东", "East China"),
            Region::South => ("华南", "South China"),
            Region::North => ("华北", "North China"),
            Region::Central => ("华中", "Central China"),
            Region::Southwest => ("西南", "Southwest China"),
            Region::Northwest => ("西北", "Northwest China"),
            Region::Northeast => ("东北", "Northeast China"),
        }
    }
}

/// A calendar date, `YYYY-MM-DD`, the contract's `Date` scalar.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Date(pub chrono::NaiveDate);

#[async_graphql::Scalar(name = "Date")]
impl async_graphql::ScalarType for Date {
    fn parse(value: async_graphql::Value) -> async_graphql::InputValueResult<Self> {
        match &value {
            async_graphql::Value::String(s) => {
                let date = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                    async_graphql::InputValueError::custom(format!(
                        "{s:?} is not a date (YYYY-MM-DD)"
                    ))
                })?;
                crate::domain::calendar::check_date(date)
                    .map(Date)
                    .map_err(async_graphql::InputValueError::custom)
            }
            _ => Err(async_graphql::InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> async_graphql::Value {
        async_graphql::Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}
