//! The raw aggregation path: every metric computed from `orders`, `order_items` and
//! `after_sales` exactly as DESIGN section 2 defines it. It is the reference the
//! rollup path is compared with, and the fallback for what rollups cannot serve.
//!
//! Attribution: order-level by default. When products are involved (a PRODUCT or
//! CATEGORY breakdown, or a product or category filter) GMV and UNITS count the
//! matching item lines only, and counts are of distinct orders containing one; in a
//! PRODUCT or CATEGORY breakdown they are product-orders (an order counts once for each
//! distinct product it contains), so every count adds up across rows.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::BoxedSqlQuery;
use diesel::sql_types::{Array, BigInt, Date, Double, Integer, Nullable, Text, Timestamptz};

use crate::analytics::{dimension_on_items, Aggregate, GroupRow, Grouping, Measures, OTHER_KEY};
use crate::domain::{Dimension, Metric};
use crate::error::{AppError, AppResult};

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Integer)]
    bucket: i32,
    #[diesel(sql_type = Nullable<Text>)]
    key: Option<String>,
    #[diesel(sql_type = BigInt)]
    orders: i64,
    #[diesel(sql_type = BigInt)]
    paid_orders: i64,
    #[diesel(sql_type = Double)]
    gmv: f64,
    #[diesel(sql_type = BigInt)]
    units: i64,
    #[diesel(sql_type = BigInt)]
    refund_orders: i64,
    #[diesel(sql_type = Double)]
    refund_amount: f64,
    #[diesel(sql_type = BigInt)]
    dispute_orders: i64,
    #[diesel(sql_type = BigInt)]
    delivered_orders: i64,
    #[diesel(sql_type = Double)]
    delivery_hours: f64,
    #[diesel(sql_type = Double)]
    commission: f64,
    #[diesel(sql_type = BigInt)]
    buyers: i64,
}

enum Param {
    Day(NaiveDate),
    Text(String),
    At(DateTime<Utc>),
    Ids(Vec<i64>),
    Texts(Vec<String>),
    Ats(Vec<DateTime<Utc>>),
}

struct Sql {
    text: String,
    params: Vec<Param>,
}

impl Sql {
    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }
}

/// Placeholders of what every aggregate binds, and the exchange-rate table of its
/// window (CNY is 1 on every day).
struct Window {
    d0: String,
    d1: String,
    tz: String,
    cur: String,
    shops: String,
    start: String,
    end: String,
    rates: String,
    /// The `factors` CTE over `rates`: (day, currency, factor) converting the minor
    /// units of a currency into the report currency on a day (exactly as the raw path
    /// converts each order).
    factors: String,
}

fn bind_window(sql: &mut Sql, q: &Aggregate) -> Window {
    let d0 = sql.bind(Param::Day(q.first_day));
    let d1 = sql.bind(Param::Day(q.last_day));
    let rates = format!(
        "rates AS (
            SELECT day, currency, rate_to_cny FROM fx_rates WHERE day BETWEEN {d0} AND {d1}
            UNION ALL
            SELECT d::date, 'CNY', 1::numeric FROM generate_series({d0}::date, {d1}::date, interval '1 day') AS d
         )"
    );
    let cur = sql.bind(Param::Text(q.currency.clone()));
    let factors = format!(
        "factors AS (
            SELECT rs.day, rs.currency, rs.rate_to_cny / rr.rate_to_cny AS factor
              FROM rates rs JOIN rates rr ON rr.day = rs.day AND rr.currency = {cur}
         )"
    );
    Window {
        tz: sql.bind(Param::Text(q.timezone.clone())),
        cur,
        factors,
        shops: sql.bind(Param::Ids(q.filters.shop_ids.clone())),
        start: sql.bind(Param::At(q.start)),
        end: sql.bind(Param::At(q.end)),
        d0,
        d1,
        rates,
    }
}

fn key_expr(dimension: Dimension) -> &'static str {
    match dimension {
        Dimension::Shop => "o.shop_id::text",
        Dimension::Platform => "s.platform",
        Dimension::Product => "coalesce(i.product_id::text, '')",
        Dimension::Category => "coalesce(pr.category, '')",
        Dimension::Province => "coalesce(o.province_code, '')",
        Dimension::Region => "coalesce(pv.region, '')",
        Dimension::Channel => "o.channel",
        Dimension::Creator => "coalesce(o.creator_id::text, '')",
        Dimension::PaymentMethod => "coalesce(o.payment_method, '')",
        Dimension::Status => "o.status",
    }
}

/// The raw path's bucket and key expressions over an order `o`.
fn raw_bucket_and_key(sql: &mut Sql, q: &Aggregate) -> (String, String) {
    let bucket = match &q.grouping {
        Grouping::Buckets { boundaries } => {
            let b = sql.bind(Param::Ats(boundaries.clone()));
            format!("width_bucket(o.placed_at, {b}::timestamptz[])")
        }
        _ => "0".to_string(),
    };
    let key = match &q.grouping {
        Grouping::Dimension {
            dimension,
            keep: Some(keep),
        } => {
            let k = sql.bind(Param::Texts(keep.clone()));
            let e = key_expr(*dimension);
            format!("CASE WHEN {e} = ANY({k}) THEN {e} ELSE '{OTHER_KEY}' END")
        }
        Grouping::Dimension {
            dimension,
            keep: None,
        } => key_expr(*dimension).to_string(),
        _ => "''".to_string(),
    };
    (bucket, key)
}

/// The raw path's output bucket and key over grouped rows `b`, and its grouping sets.
fn raw_groups(q: &Aggregate) -> (&'static str, &'static str, &'static str) {
    match &q.grouping {
        Grouping::Total => ("0", "NULL::text", "GROUP BY GROUPING SETS (())"),
        Grouping::Buckets { .. } => (
            "b.bucket",
            "NULL::text",
            "GROUP BY GROUPING SETS ((b.bucket))",
        ),
        Grouping::Dimension { keep: Some(_), .. } => {
            ("0", "b.key", "GROUP BY GROUPING SETS ((b.key))")
        }
        Grouping::Dimension { keep: None, .. } => (
            "0",
            "CASE WHEN GROUPING(b.key) = 1 THEN NULL ELSE b.key END",
            "GROUP BY GROUPING SETS ((b.key), ())",
        ),
    }
}

#[derive(QueryableByName)]
struct Buyers {
    #[diesel(sql_type = Integer)]
    bucket: i32,
    #[diesel(sql_type = Nullable<Text>)]
    key: Option<String>,
    #[diesel(sql_type = BigInt)]
    buyers: i64,
}

/// BUYERS alone for an order-level grouping with shop filters only: distinct buyers of
/// the paying orders, read through `orders (shop_id, placed_at)` without the item
/// lines and after-sales the other metrics need (those come from the rollups).
fn build_buyers(q: &Aggregate) -> Sql {
    let mut sql = Sql {
        text: String::new(),
        params: Vec::new(),
    };
    let shops = sql.bind(Param::Ids(q.filters.shop_ids.clone()));
    let start = sql.bind(Param::At(q.start));
    let end = sql.bind(Param::At(q.end));
    let (bucket, key) = raw_bucket_and_key(&mut sql, q);
    let (bucket_out, key_out, sets) = raw_groups(q);
    sql.text = format!(
        "WITH b AS (
            SELECT o.buyer_id, {bucket} AS bucket, {key} AS key
              FROM orders o
              JOIN shops s ON s.id = o.shop_id
              LEFT JOIN provinces pv ON pv.code = o.province_code
             WHERE o.shop_id = ANY({shops}) AND o.placed_at >= {start} AND o.placed_at < {end}
               AND o.paid_at IS NOT NULL
         )
         SELECT {bucket_out}::int AS bucket, {key_out} AS key, count(DISTINCT b.buyer_id) AS buyers
           FROM b {sets}"
    );
    sql
}

fn build(q: &Aggregate) -> Sql {
    let mut sql = Sql {
        text: String::new(),
        params: Vec::new(),
    };
    let dimension = match &q.grouping {
        Grouping::Dimension { dimension, .. } => Some(*dimension),
        _ => None,
    };
    let items = q.filters.on_items() || dimension.is_some_and(dimension_on_items);
    let Window {
        tz,
        shops,
        start,
        end,
        rates,
        factors,
        ..
    } = bind_window(&mut sql, q);
    let (bucket, key) = raw_bucket_and_key(&mut sql, q);
    let f = &q.filters;
    let clauses = [
        ("i.product_id", f.product_ids.clone().map(Param::Ids)),
        ("pr.category", f.categories.clone().map(Param::Texts)),
        ("o.province_code", f.provinces.clone().map(Param::Texts)),
        ("pv.region", f.regions.clone().map(Param::Texts)),
        ("o.channel", f.channels.clone().map(Param::Texts)),
        ("o.creator_id", f.creator_ids.clone().map(Param::Ids)),
        (
            "o.payment_method",
            f.payment_methods.clone().map(Param::Texts),
        ),
    ];
    let mut filters = String::new();
    for (column, value) in clauses {
        if let Some(value) = value {
            let placeholder = sql.bind(value);
            filters += &format!(" AND {column} = ANY({placeholder})");
        }
    }
    // `first_row`: the order's first (matching) line, which carries its money (refund,
    // commission). `counted`: the row that counts the order — its first line, or in a
    // PRODUCT or CATEGORY breakdown its first line of each product (product-orders).
    let (item_join, gmv_minor, units, first_row, counted) = if items {
        let by_product = if dimension.is_some_and(dimension_on_items) {
            ", i.product_id"
        } else {
            ""
        };
        (
            "JOIN order_items i ON i.order_id = o.id LEFT JOIN products pr ON pr.id = i.product_id",
            "i.paid_amount",
            "i.quantity::bigint",
            "row_number() OVER (PARTITION BY o.id ORDER BY i.line_no) = 1".to_string(),
            format!("row_number() OVER (PARTITION BY o.id{by_product} ORDER BY i.line_no) = 1"),
        )
    } else {
        (
            "",
            "o.paid_amount",
            "(SELECT coalesce(sum(it.quantity), 0) FROM order_items it WHERE it.order_id = o.id)::bigint",
            "true".to_string(),
            "true".to_string(),
        )
    };
    let (bucket_out, key_out, sets) = raw_groups(q);
    sql.text = format!(
        "WITH {rates}, {factors},
         base AS (
            SELECT o.id, o.buyer_id, o.paid_at IS NOT NULL AS paid, o.shipped_at, o.delivered_at,
                   o.commission_amount, o.creator_id,
                   {gmv_minor} AS gmv_minor, {units} AS units, {first_row} AS first_row, {counted} AS counted,
                   f.factor,
                   {bucket} AS bucket, {key} AS key
              FROM orders o
              JOIN shops s ON s.id = o.shop_id
              {item_join}
              LEFT JOIN provinces pv ON pv.code = o.province_code
              LEFT JOIN factors f ON f.day = (o.placed_at AT TIME ZONE {tz})::date AND f.currency = s.currency
             WHERE o.shop_id = ANY({shops}) AND o.placed_at >= {start} AND o.placed_at < {end} {filters}
         ),
         after AS (
            SELECT a.order_id,
                   bool_or(a.status = 'REFUNDED') AS refunded,
                   coalesce(sum(a.refund_amount) FILTER (WHERE a.status = 'REFUNDED'), 0) AS refund_minor,
                   bool_or(a.dispute <> 'NONE') AS disputed
              FROM after_sales a
             WHERE a.order_id IN (SELECT id FROM base)
             GROUP BY a.order_id
         )
         SELECT {bucket_out}::int AS bucket,
                {key_out} AS key,
                count(*) FILTER (WHERE b.counted) AS orders,
                count(*) FILTER (WHERE b.counted AND b.paid) AS paid_orders,
                coalesce(round(sum(b.gmv_minor * b.factor) FILTER (WHERE b.paid) / 100, 2), 0)::float8 AS gmv,
                coalesce(sum(b.units) FILTER (WHERE b.paid), 0)::bigint AS units,
                count(*) FILTER (WHERE b.counted AND b.paid AND a.refunded) AS refund_orders,
                coalesce(round(sum(a.refund_minor * b.factor) FILTER (WHERE b.first_row) / 100, 2), 0)::float8 AS refund_amount,
                count(*) FILTER (WHERE b.counted AND a.disputed) AS dispute_orders,
                count(*) FILTER (WHERE b.counted AND b.delivered_at IS NOT NULL AND b.shipped_at IS NOT NULL) AS delivered_orders,
                (coalesce(sum(extract(epoch FROM b.delivered_at - b.shipped_at))
                    FILTER (WHERE b.counted AND b.delivered_at IS NOT NULL AND b.shipped_at IS NOT NULL), 0) / 3600)::float8 AS delivery_hours,
                coalesce(round(sum(b.commission_amount * b.factor)
                    FILTER (WHERE b.first_row AND b.paid AND b.creator_id IS NOT NULL) / 100, 2), 0)::float8 AS commission,
                count(DISTINCT b.buyer_id) FILTER (WHERE b.paid) AS buyers
           FROM base b LEFT JOIN after a ON a.order_id = b.id
           {sets}"
    );
    sql
}

/// The delivery-time sum of rollup cells `r`, or 0 when AVG_DELIVERY_HOURS is not
/// asked for (numeric sums cost more than all the integer ones together).
fn delivery_sum(q: &Aggregate) -> &'static str {
    if q.needs_delivery {
        "sum(r.delivery_seconds)"
    } else {
        "0::numeric"
    }
}

/// The sums of rollup cells `r` that the shop rollup queries group first.
fn cell_sums(q: &Aggregate) -> String {
    let delivery = delivery_sum(q);
    format!(
        "sum(r.orders) AS orders, sum(r.paid_orders) AS paid_orders, \
         sum(r.gmv_minor) AS gmv_minor, sum(r.units) AS units, sum(r.refund_orders) AS refund_orders, \
         sum(r.refund_minor) AS refund_minor, sum(r.dispute_orders) AS dispute_orders, \
         sum(r.delivered_orders) AS delivered_orders, {delivery} AS delivery_seconds, \
         sum(r.commission_minor) AS commission_minor"
    )
}

/// The measure columns of [`Row`] from grouped cell sums with their money `factor`.
const MEASURES_OUT: &str = "coalesce(sum(orders), 0)::bigint AS orders, \
    coalesce(sum(paid_orders), 0)::bigint AS paid_orders, \
    coalesce(round(sum(gmv_minor * factor) / 100, 2), 0)::float8 AS gmv, \
    coalesce(sum(units), 0)::bigint AS units, \
    coalesce(sum(refund_orders), 0)::bigint AS refund_orders, \
    coalesce(round(sum(refund_minor * factor) / 100, 2), 0)::float8 AS refund_amount, \
    coalesce(sum(dispute_orders), 0)::bigint AS dispute_orders, \
    coalesce(sum(delivered_orders), 0)::bigint AS delivered_orders, \
    (coalesce(sum(delivery_seconds), 0) / 3600)::float8 AS delivery_hours, \
    coalesce(round(sum(commission_minor * factor) / 100, 2), 0)::float8 AS commission, \
    0::bigint AS buyers";

/// The same measures from `rollup_shop_hour` (see [`Aggregate::rollup_eligible`]).
/// Money is converted per cell with the factor of the cell's local day, computed exactly
/// as the raw path computes it per order, so the sums are identical.
fn build_rollup(q: &Aggregate, daily: bool) -> Sql {
    let mut sql = Sql {
        text: String::new(),
        params: Vec::new(),
    };
    let Window {
        d0,
        d1,
        tz,
        shops,
        start,
        end,
        rates,
        factors,
        ..
    } = bind_window(&mut sql, q);
    let (bucket, bucket_out, group) = match &q.grouping {
        Grouping::Buckets { boundaries } => {
            let b = sql.bind(Param::Ats(boundaries.clone()));
            let at = if daily {
                "(r.day::timestamp AT TIME ZONE 'Asia/Shanghai')"
            } else {
                "r.hour"
            };
            (
                format!("width_bucket({at}, {b}::timestamptz[])"),
                "bucket",
                "GROUP BY 1",
            )
        }
        _ => ("0".to_string(), "0", ""),
    };
    let (table, day, range) = if daily {
        (
            "rollup_shop_day",
            "r.day".to_string(),
            format!("r.day >= {d0} AND r.day <= {d1}"),
        )
    } else {
        (
            "rollup_shop_hour",
            format!("(r.hour AT TIME ZONE {tz})::date"),
            format!("r.hour >= {start} AND r.hour < {end}"),
        )
    };
    let cell_sums = cell_sums(q);
    sql.text = format!(
        "WITH {rates}, {factors},
         -- Integer sums per shop, local day and bucket first; money is converted once
         -- per group (the factor is constant within a shop-day), which keeps the sums
         -- identical to the raw path's per-order conversion.
         daily AS (
            SELECT r.shop_id, {day} AS day, {bucket} AS bucket,
                   {cell_sums}
              FROM {table} r
             WHERE r.shop_id = ANY({shops}) AND {range}
             GROUP BY 1, 2, 3
         ),
         cells AS (
            SELECT d.*, f.factor
              FROM daily d
              JOIN shops s ON s.id = d.shop_id
              LEFT JOIN factors f ON f.day = d.day AND f.currency = s.currency
         )
         SELECT {bucket_out}::int AS bucket, NULL::text AS key,
                {MEASURES_OUT}
           FROM cells {group}"
    );
    sql
}

/// Where a breakdown's rollup cells come from.
#[derive(Clone, Copy)]
enum DimTable {
    /// `rollup_dim_day` cells of one order-level dimension (REGION reads PROVINCE's).
    Cells,
    /// SHOP and PLATFORM from the per-shop rollup: `rollup_shop_day` when `true`,
    /// otherwise `rollup_shop_hour` (any whole-hour window).
    Shops(bool),
}

/// Which rollup answers a breakdown exactly, if any.
fn dimension_source(q: &Aggregate, offsets: &[i64]) -> Option<(Dimension, DimTable)> {
    let Grouping::Dimension { dimension, .. } = &q.grouping else {
        return None;
    };
    if !q.dimension_rollup_eligible() {
        return None;
    }
    let days = q.on_day_rollup_calendar(offsets);
    let whole_hours = q.start.timestamp() % 3600 == 0 && q.end.timestamp() % 3600 == 0;
    match dimension {
        Dimension::Shop | Dimension::Platform if days => Some((*dimension, DimTable::Shops(true))),
        Dimension::Shop | Dimension::Platform if whole_hours => {
            Some((*dimension, DimTable::Shops(false)))
        }
        Dimension::Province
        | Dimension::Region
        | Dimension::Product
        | Dimension::Category
        | Dimension::Channel
        | Dimension::Creator
        | Dimension::PaymentMethod
        | Dimension::Status
            if days =>
        {
            Some((*dimension, DimTable::Cells))
        }
        _ => None,
    }
}

/// The whole Monday-to-Sunday weeks within `first..=last`, as `[start, end)` of their
/// Mondays; `None` when there is none.
fn whole_weeks(first: NaiveDate, last: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    use chrono::Datelike;
    let ahead = (7 - first.weekday().num_days_from_monday()) % 7;
    let start = first + chrono::Duration::days(i64::from(ahead));
    let after = last.succ_opt()?;
    let end = after - chrono::Duration::days(i64::from(after.weekday().num_days_from_monday()));
    (start < end).then_some((start, end))
}

/// Which cells a dimension rollup query sums.
#[derive(Clone, Copy)]
enum Cells<'a> {
    /// Every key: the rows and the total (with `keep`, the kept rows and the folded
    /// other row).
    All,
    /// The rows of these keys only.
    Keys(&'a [String]),
    /// The total (keyed "T") and the other row (no key): the cells holding every
    /// order of the breakdown once per shop-day, less the cells of the `keep` keys.
    Other {
        total: TotalCells,
        keep: &'a [String],
    },
}

/// Cells holding every order of a breakdown once per shop-day.
#[derive(Clone, Copy)]
enum TotalCells {
    /// `rollup_shop_day`: every order (for an order-level dimension).
    Shops,
    /// ITEMS cells: every product-order (for PRODUCT).
    Items,
}

/// The `rollup_dim_day` dimension holding a breakdown's cells.
fn cell_dim(dimension: Dimension) -> &'static str {
    match dimension {
        Dimension::Product | Dimension::Category => "PRODUCT",
        Dimension::Channel => "CHANNEL",
        Dimension::Creator => "CREATOR",
        Dimension::PaymentMethod => "PAYMENT_METHOD",
        Dimension::Status => "STATUS",
        _ => "PROVINCE",
    }
}

/// A breakdown from rollup cells. Each order has one value per dimension, so the rows,
/// the folded "other" row and the total are sums of cells. Cells are first summed per
/// stored key, and per shop and local day only where the shop's currency is not the
/// report currency (elsewhere the factor is exactly 1 on every day); money is converted
/// once per group, so the sums equal the raw path's per-order conversion exactly.
fn build_dimension_rollup(
    q: &Aggregate,
    dimension: Dimension,
    table: DimTable,
    cells: Cells<'_>,
) -> Sql {
    let mut sql = Sql {
        text: String::new(),
        params: Vec::new(),
    };
    let Window {
        d0,
        d1,
        tz,
        cur,
        shops,
        start,
        end,
        rates,
        factors,
    } = bind_window(&mut sql, q);
    let (from, day, range) = match table {
        DimTable::Cells => {
            // The cells of one dimension over the window, measures negated with `sign`
            // "-": whole weeks from the week cells (for shops in the report currency),
            // the days at both ends from the day cells. Each branch is one index range
            // per shop (or per key and shop, with `keys`).
            let weeks = whole_weeks(q.first_day, q.last_day)
                .map(|(w0, w1)| (sql.bind(Param::Day(w0)), sql.bind(Param::Day(w1))));
            let mut union = |dim: &str, keys: Option<&[String]>, sign: &str, key: &str| -> String {
                // With a few keys, one index probe per key (`rollup_dim_*_by_key`): a
                // key list in the WHERE clause lets the planner scan every cell instead.
                let source = match keys {
                    Some(k) => format!(
                        "unnest({}::text[]) AS kk(key) JOIN {{table}} r ON r.key = kk.key AND",
                        sql.bind(Param::Texts(k.to_vec()))
                    ),
                    None => "{table} r WHERE".to_string(),
                };
                let columns = format!(
                    "r.shop_id, {key} AS key, {sign}r.orders AS orders, {sign}r.paid_orders AS paid_orders, \
                     {sign}r.gmv_minor AS gmv_minor, {sign}r.units AS units, \
                     {sign}r.refund_orders AS refund_orders, {sign}r.refund_minor AS refund_minor, \
                     {sign}r.dispute_orders AS dispute_orders, {sign}r.delivered_orders AS delivered_orders, \
                     {sign}r.delivery_seconds AS delivery_seconds, {sign}r.commission_minor AS commission_minor"
                );
                let branch = |table: &str, day: &str, shops: &str, range: &str| {
                    let source = source.replace("{table}", table);
                    format!(
                        "SELECT {columns}, r.{day} AS day FROM {source} r.dim = '{dim}' \
                         AND r.shop_id = ANY({shops}) AND {range}"
                    )
                };
                match &weeks {
                    Some((w0, w1)) => {
                        let home = format!(
                            "ARRAY(SELECT id FROM shops WHERE id = ANY({shops}) AND currency = {cur})"
                        );
                        let away = format!(
                            "ARRAY(SELECT id FROM shops WHERE id = ANY({shops}) AND currency <> {cur})"
                        );
                        [
                            branch(
                                "rollup_dim_day",
                                "day",
                                &shops,
                                &format!("r.day >= {d0} AND r.day < {w0}"),
                            ),
                            branch(
                                "rollup_dim_day",
                                "day",
                                &shops,
                                &format!("r.day >= {w1} AND r.day <= {d1}"),
                            ),
                            branch(
                                "rollup_dim_day",
                                "day",
                                &away,
                                &format!("r.day >= {w0} AND r.day < {w1}"),
                            ),
                            branch(
                                "rollup_dim_week",
                                "week",
                                &home,
                                &format!("r.week >= {w0} AND r.week < {w1}"),
                            ),
                        ]
                        .join("\n UNION ALL\n ")
                    }
                    None => branch(
                        "rollup_dim_day",
                        "day",
                        &shops,
                        &format!("r.day >= {d0} AND r.day <= {d1}"),
                    ),
                }
            };
            let dim = cell_dim(dimension);
            let from = match cells {
                Cells::All => union(dim, None, "", "r.key"),
                Cells::Keys(keys) => union(dim, Some(keys), "", "r.key"),
                // The total's cells keyed "T", the kept keys' negated and keyed "K".
                Cells::Other { total, keep } => {
                    let kept = union(dim, Some(keep), "-", "'K'::text");
                    let total = match total {
                        TotalCells::Shops => format!(
                            "SELECT r.shop_id, 'T'::text AS key, r.orders, r.paid_orders, r.gmv_minor, \
                             r.units, r.refund_orders, r.refund_minor, r.dispute_orders, \
                             r.delivered_orders, r.delivery_seconds, r.commission_minor, r.day \
                             FROM rollup_shop_day r \
                             WHERE r.shop_id = ANY({shops}) AND r.day >= {d0} AND r.day <= {d1}"
                        ),
                        TotalCells::Items => union("ITEMS", None, "", "'T'::text"),
                    };
                    format!("{total}\n UNION ALL\n {kept}")
                }
            };
            (
                format!("({from}) r"),
                "r.day".to_string(),
                "true".to_string(),
            )
        }
        DimTable::Shops(true) => (
            "rollup_shop_day r".to_string(),
            "r.day".to_string(),
            format!("r.day >= {d0} AND r.day <= {d1}"),
        ),
        DimTable::Shops(false) => (
            "rollup_shop_hour r".to_string(),
            format!("(r.hour AT TIME ZONE {tz})::date"),
            format!("r.hour >= {start} AND r.hour < {end}"),
        ),
    };
    // Cells are summed by stored key in one hash aggregate. Money of shops in the
    // report currency is summed as integers (its factor is exactly 1 on every day);
    // only cells of shops in another currency are converted, each with its local day's
    // factor, exactly as the raw path converts each order. The key is then mapped to
    // the dimension's value (region, platform) on the few grouped rows.
    let (raw_key, key, join) = match dimension {
        // "T" (total) and "K" (kept keys), summed by the grouping sets.
        _ if matches!(cells, Cells::Other { .. }) => ("r.key", "g.stored_key", ""),
        Dimension::Shop => ("r.shop_id::text", "g.stored_key", ""),
        Dimension::Platform => (
            "r.shop_id::text",
            "ks.platform",
            "JOIN shops ks ON ks.id = g.stored_key::bigint",
        ),
        Dimension::Region => (
            "r.key",
            "coalesce(pv.region, '')",
            "LEFT JOIN provinces pv ON pv.code = g.stored_key",
        ),
        // A product's current category, as the raw path joins it.
        Dimension::Category => (
            "r.key",
            "coalesce(kp.category, '')",
            "LEFT JOIN products kp ON kp.id = nullif(g.stored_key, '')::bigint",
        ),
        _ => ("r.key", "g.stored_key", ""),
    };
    let key = match (&q.grouping, cells) {
        (
            Grouping::Dimension {
                keep: Some(keep), ..
            },
            Cells::All,
        ) => {
            let k = sql.bind(Param::Texts(keep.clone()));
            format!("CASE WHEN {key} = ANY({k}) THEN {key} ELSE '{OTHER_KEY}' END")
        }
        _ => key.to_string(),
    };
    let (key_out, sets) = match (&q.grouping, cells) {
        (Grouping::Dimension { keep: Some(_), .. }, _) | (_, Cells::Keys(_)) => {
            ("c.key", "GROUP BY GROUPING SETS ((c.key))")
        }
        (_, Cells::Other { .. }) => (
            "CASE WHEN GROUPING(c.key) = 1 THEN NULL ELSE c.key END",
            "GROUP BY GROUPING SETS ((), (c.key))",
        ),
        _ => (
            "CASE WHEN GROUPING(c.key) = 1 THEN NULL ELSE c.key END",
            "GROUP BY GROUPING SETS ((c.key), ())",
        ),
    };
    let money = |column: &str| {
        format!(
            "sum(r.{column}) FILTER (WHERE s.id IS NULL) AS {column}, \
             sum(r.{column} * f.factor) FILTER (WHERE s.id IS NOT NULL) AS {column}_away"
        )
    };
    let delivery = delivery_sum(q);
    let (gmv, refund, commission) = (
        money("gmv_minor"),
        money("refund_minor"),
        money("commission_minor"),
    );
    sql.text = format!(
        "WITH {rates}, {factors},
         grouped AS (
            SELECT {raw_key} AS stored_key,
                   sum(r.orders) AS orders, sum(r.paid_orders) AS paid_orders, sum(r.units) AS units,
                   sum(r.refund_orders) AS refund_orders, sum(r.dispute_orders) AS dispute_orders,
                   sum(r.delivered_orders) AS delivered_orders, {delivery} AS delivery_seconds,
                   {gmv}, {refund}, {commission}
              FROM {from}
              LEFT JOIN shops s ON s.id = r.shop_id AND s.currency <> {cur}
              LEFT JOIN factors f ON s.id IS NOT NULL AND f.day = {day} AND f.currency = s.currency
             WHERE r.shop_id = ANY({shops}) AND {range}
             GROUP BY 1
         ),
         c AS (
            SELECT g.*, {key} AS key FROM grouped g {join}
         )
         SELECT 0::int AS bucket, {key_out} AS key,
                coalesce(sum(orders), 0)::bigint AS orders,
                coalesce(sum(paid_orders), 0)::bigint AS paid_orders,
                round((coalesce(sum(gmv_minor), 0) + coalesce(sum(gmv_minor_away), 0)) / 100, 2)::float8 AS gmv,
                coalesce(sum(units), 0)::bigint AS units,
                coalesce(sum(refund_orders), 0)::bigint AS refund_orders,
                round((coalesce(sum(refund_minor), 0) + coalesce(sum(refund_minor_away), 0)) / 100, 2)::float8 AS refund_amount,
                coalesce(sum(dispute_orders), 0)::bigint AS dispute_orders,
                coalesce(sum(delivered_orders), 0)::bigint AS delivered_orders,
                (coalesce(sum(delivery_seconds), 0) / 3600)::float8 AS delivery_hours,
                round((coalesce(sum(commission_minor), 0) + coalesce(sum(commission_minor_away), 0)) / 100, 2)::float8 AS commission,
                0::bigint AS buyers
           FROM c {sets}"
    );
    sql
}

/// Runs one aggregate: from the hourly rollup when it answers exactly, otherwise from
/// the raw tables.
pub fn aggregate(conn: &mut PgConnection, q: &Aggregate) -> AppResult<Vec<GroupRow>> {
    if q.filters.shop_ids.is_empty() {
        return Ok(empty(q));
    }
    let offsets = zone_offsets(q);
    // BUYERS with an order-level grouping and shop filters only: the other metrics
    // from the rollups, distinct buyers alone from the orders.
    let on_items = matches!(&q.grouping, Grouping::Dimension { dimension, .. } if dimension_on_items(*dimension));
    if q.needs_buyers && !on_items {
        let lean = Aggregate {
            needs_buyers: false,
            ..q.clone()
        };
        if dimension_source(&lean, &offsets).is_some() || lean.rollup_eligible() {
            let mut rows = aggregate(conn, &lean)?;
            let buyers: std::collections::HashMap<(i32, Option<String>), i64> =
                load_as::<Buyers>(conn, build_buyers(q))?
                    .into_iter()
                    .map(|b| ((b.bucket, b.key), b.buyers))
                    .collect();
            for row in &mut rows {
                row.measures.buyers = buyers
                    .get(&(row.bucket, row.key.clone()))
                    .copied()
                    .unwrap_or(0);
            }
            return Ok(rows);
        }
    }
    let rows = match dimension_source(q, &offsets) {
        Some((dimension, table)) => load(
            conn,
            build_dimension_rollup(q, dimension, table, Cells::All),
        )?,
        None if q.rollup_eligible() => {
            load(conn, build_rollup(q, q.day_rollup_eligible(&offsets)))?
        }
        None => load(conn, build(q))?,
    };
    let mut out: Vec<GroupRow> = rows
        .into_iter()
        .filter(|r| r.bucket > 0 || !matches!(q.grouping, Grouping::Buckets { .. }))
        .map(to_group_row)
        .collect();
    if matches!(q.grouping, Grouping::Total) && out.is_empty() {
        out = empty(q);
    }
    Ok(out)
}

/// The `rollup_dim_month` column that bounds an additive, never negative `metric` from
/// above, and whether it is money.
fn bound_column(metric: Metric) -> Option<(&'static str, bool)> {
    match metric {
        Metric::Orders => Some(("orders", false)),
        Metric::PaidOrders => Some(("paid_orders", false)),
        Metric::Gmv => Some(("gmv_minor", true)),
        Metric::Units => Some(("units", false)),
        Metric::RefundOrders => Some(("refund_orders", false)),
        Metric::RefundAmount => Some(("refund_minor", true)),
        Metric::DisputeOrders => Some(("dispute_orders", false)),
        Metric::Commission => Some(("commission_minor", true)),
        _ => None,
    }
}

/// Candidates evaluated before giving up on bounds (they are too loose to prune).
const PRUNE_AT_MOST: usize = 1_600;

/// The rows, other row and total of a breakdown whose kept keys are known.
pub struct KeptRows {
    pub rows: Vec<(String, Measures)>,
    /// `None` when no other key has an order in the window.
    pub other: Option<Measures>,
    pub total: Measures,
}

#[derive(QueryableByName)]
struct Bound {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Double)]
    bound: f64,
}

/// A CREATOR or PRODUCT breakdown's top `limit` keys by an additive `sort_by`, without
/// summing the cells of every key (thousands of creators or products). Each key's
/// monthly sums over the scope's tenant (`rollup_dim_month`, all shops of each currency,
/// money at the window's highest exchange rate) bound its value in the window from
/// above. Keys are evaluated exactly from their cells in descending order of bound
/// until the `limit`-th best exact value exceeds the next bound; the other row is the
/// breakdown's total less the kept keys, both exact. `None` when this does not apply
/// (other dimensions, ratio metrics, a scope that leaves out shops of its tenant and
/// currencies, fewer keys than `from_keys`, loose bounds): the caller sums every key.
pub fn top_keys(
    conn: &mut PgConnection,
    q: &Aggregate,
    sort_by: Metric,
    limit: usize,
    from_keys: usize,
) -> AppResult<Option<(Vec<String>, KeptRows)>> {
    if q.filters.shop_ids.is_empty() {
        return Ok(None);
    }
    let Some((dimension @ (Dimension::Creator | Dimension::Product), DimTable::Cells)) =
        dimension_source(q, &zone_offsets(q))
    else {
        return Ok(None);
    };
    let Some((column, money)) = bound_column(sort_by) else {
        return Ok(None);
    };
    // The bounds are per tenant and currency: for a part of them (one shop of many)
    // they are too loose to prune. Money converts at the window's highest rate.
    #[derive(QueryableByName)]
    struct Group {
        #[diesel(sql_type = BigInt)]
        tenant_id: i64,
        #[diesel(sql_type = Text)]
        currency: String,
        #[diesel(sql_type = BigInt)]
        left_out: i64,
        #[diesel(sql_type = Nullable<Double>)]
        factor: Option<f64>,
    }
    let mut sql = Sql {
        text: String::new(),
        params: Vec::new(),
    };
    let Window {
        shops,
        rates,
        factors,
        ..
    } = bind_window(&mut sql, q);
    sql.text = format!(
        "WITH {rates}, {factors},
         highest AS (SELECT currency, max(factor)::float8 AS factor FROM factors GROUP BY currency)
         SELECT s.tenant_id, s.currency, count(*) FILTER (WHERE NOT s.id = ANY({shops})) AS left_out,
                min(f.factor) AS factor
           FROM shops s LEFT JOIN highest f ON f.currency = s.currency
          WHERE (s.tenant_id, s.currency) IN (SELECT tenant_id, currency FROM shops WHERE id = ANY({shops}))
          GROUP BY 1, 2"
    );
    let groups: Vec<Group> = load_as(conn, sql)?;
    if groups.iter().any(|g| g.left_out > 0 || g.factor.is_none()) {
        return Ok(None);
    }
    let mut sql = Sql {
        text: String::new(),
        params: Vec::new(),
    };
    let tenants = sql.bind(Param::Ids(groups.iter().map(|g| g.tenant_id).collect()));
    let currencies = sql.bind(Param::Texts(
        groups.iter().map(|g| g.currency.clone()).collect(),
    ));
    let first_month = sql.bind(Param::Day(q.first_day.with_day(1).unwrap_or(q.first_day)));
    let last_day = sql.bind(Param::Day(q.last_day));
    // In floating point (bounds need not be exact; the margin below covers rounding).
    let value = if money {
        let mut case = String::from("CASE b.currency");
        for g in &groups {
            let c = sql.bind(Param::Text(g.currency.clone()));
            case += &format!(" WHEN {c} THEN {:?}::float8", g.factor.unwrap_or(1.0));
        }
        format!("b.{column}::float8 * {case} END")
    } else {
        format!("b.{column}::float8")
    };
    sql.text = format!(
        "SELECT b.key, sum({value}) AS bound
           FROM rollup_dim_month b
          WHERE b.dim = '{dim}' AND b.tenant_id = ANY({tenants}) AND b.currency = ANY({currencies})
            AND b.month >= {first_month} AND b.month <= {last_day}
          GROUP BY b.key",
        dim = cell_dim(dimension),
    );
    let mut bounds: Vec<Bound> = load_as(conn, sql)?;
    for b in &mut bounds {
        // A relative margin over floating-point rounding; money in major units.
        b.bound *= 1.0 + 1e-9;
        if money {
            b.bound /= 100.0;
        }
    }
    bounds.sort_by(|a, b| b.bound.total_cmp(&a.bound).then_with(|| a.key.cmp(&b.key)));
    if bounds.len() < from_keys {
        return Ok(None);
    }
    // A money value is rounded to the cent: it may exceed its exact bound by half a cent.
    let margin = if money { 0.01 } else { 0.0 };
    let mut evaluated: Vec<(String, Measures)> = Vec::new();
    let (mut next, mut batch) = (0, 2 * limit + 20);
    loop {
        if next >= PRUNE_AT_MOST {
            return Ok(None);
        }
        let keys: Vec<String> = bounds[next..(next + batch).min(bounds.len())]
            .iter()
            .map(|b| b.key.clone())
            .collect();
        next += keys.len();
        evaluated.extend(keyed_rows(conn, q, dimension, &keys)?);
        crate::analytics::rank(&mut evaluated, sort_by);
        let Some(following) = bounds.get(next) else {
            break;
        };
        let threshold = evaluated
            .get(limit.saturating_sub(1))
            .and_then(|(_, m)| m.value(sort_by));
        if threshold.is_some_and(|t| following.bound + margin < t) {
            break;
        }
        batch *= 2;
    }
    evaluated.truncate(limit);
    let keep: Vec<String> = evaluated.iter().map(|(k, _)| k.clone()).collect();
    let rest = other_and_total(conn, q, dimension, &keep)?;
    Ok(Some((
        keep,
        KeptRows {
            rows: evaluated,
            ..rest
        },
    )))
}

/// The rows of the `keep` keys of a CREATOR or PRODUCT breakdown (as [`top_keys`]
/// found them, for the comparison window), its other row and its total.
pub fn kept_rows(conn: &mut PgConnection, q: &Aggregate, keep: &[String]) -> AppResult<KeptRows> {
    let Grouping::Dimension { dimension, .. } = &q.grouping else {
        return Err(AppError::Internal(anyhow::anyhow!(
            "kept rows of a breakdown only"
        )));
    };
    let mut rows = keyed_rows(conn, q, *dimension, keep)?;
    rows.sort_by_key(|(k, _)| keep.iter().position(|x| x == k));
    let rest = other_and_total(conn, q, *dimension, keep)?;
    Ok(KeptRows { rows, ..rest })
}

/// The rows of these keys of a breakdown, from their cells (keys without an order in
/// the window have none).
fn keyed_rows(
    conn: &mut PgConnection,
    q: &Aggregate,
    dimension: Dimension,
    keys: &[String],
) -> AppResult<Vec<(String, Measures)>> {
    Ok(load(
        conn,
        build_dimension_rollup(q, dimension, DimTable::Cells, Cells::Keys(keys)),
    )?
    .into_iter()
    .map(to_group_row)
    .filter_map(|r| r.key.map(|k| (k, r.measures)))
    .collect())
}

/// A breakdown's other row (its total less the `keep` keys, exact before rounding)
/// and total, in one query: every order from `rollup_shop_day` for CREATOR, every
/// product-order from the ITEMS cells for PRODUCT.
fn other_and_total(
    conn: &mut PgConnection,
    q: &Aggregate,
    dimension: Dimension,
    keep: &[String],
) -> AppResult<KeptRows> {
    let total = if dimension == Dimension::Product {
        TotalCells::Items
    } else {
        TotalCells::Shops
    };
    let rows = load(
        conn,
        build_dimension_rollup(q, dimension, DimTable::Cells, Cells::Other { total, keep }),
    )?;
    let mut out = KeptRows {
        rows: Vec::new(),
        other: None,
        total: Measures::default(),
    };
    for row in rows.into_iter().map(to_group_row) {
        match row.key.as_deref() {
            // Every cell holds at least one order.
            None if row.measures.orders > 0 => out.other = Some(row.measures),
            Some("T") => out.total = row.measures,
            _ => {}
        }
    }
    Ok(out)
}

fn load(conn: &mut PgConnection, sql: Sql) -> AppResult<Vec<Row>> {
    load_as(conn, sql)
}

fn load_as<T: QueryableByName<Pg> + 'static>(
    conn: &mut PgConnection,
    sql: Sql,
) -> AppResult<Vec<T>> {
    let mut query: BoxedSqlQuery<'_, Pg, _> = diesel::sql_query(sql.text).into_boxed();
    for p in sql.params {
        query = match p {
            Param::Day(v) => query.bind::<Date, _>(v),
            Param::Text(v) => query.bind::<Text, _>(v),
            Param::At(v) => query.bind::<Timestamptz, _>(v),
            Param::Ids(v) => query.bind::<Array<BigInt>, _>(v),
            Param::Texts(v) => query.bind::<Array<Text>, _>(v),
            Param::Ats(v) => query.bind::<Array<Timestamptz>, _>(v),
        };
    }
    Ok(query.load(conn)?)
}

/// UTC offsets of the report zone at the window's start and end and at every bucket
/// boundary.
fn zone_offsets(q: &Aggregate) -> Vec<i64> {
    use chrono::Offset;
    let Ok(tz) = q.timezone.parse::<chrono_tz::Tz>() else {
        return vec![i64::MIN];
    };
    let offset =
        |t: &DateTime<Utc>| i64::from(t.with_timezone(&tz).offset().fix().local_minus_utc());
    let mut out = vec![offset(&q.start), offset(&q.end)];
    if let Grouping::Buckets { boundaries } = &q.grouping {
        out.extend(boundaries.iter().map(offset));
    }
    out
}

fn empty(q: &Aggregate) -> Vec<GroupRow> {
    match q.grouping {
        Grouping::Dimension { keep: Some(_), .. } | Grouping::Buckets { .. } => Vec::new(),
        _ => vec![GroupRow {
            bucket: 0,
            key: None,
            measures: Measures::default(),
        }],
    }
}

fn to_group_row(r: Row) -> GroupRow {
    GroupRow {
        bucket: r.bucket,
        key: r.key,
        measures: Measures {
            orders: r.orders,
            paid_orders: r.paid_orders,
            gmv: r.gmv,
            units: r.units,
            refund_orders: r.refund_orders,
            refund_amount: r.refund_amount,
            dispute_orders: r.dispute_orders,
            delivered_orders: r.delivered_orders,
            delivery_hours: r.delivery_hours,
            commission: r.commission,
            buyers: r.buyers,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::whole_weeks;
    use chrono::NaiveDate;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn whole_weeks_lie_inside_the_range() {
        // 2026-11-16 and 2026-11-23 are Mondays.
        assert_eq!(
            whole_weeks(d("2026-11-16"), d("2026-11-22")),
            Some((d("2026-11-16"), d("2026-11-23")))
        );
        assert_eq!(whole_weeks(d("2026-11-17"), d("2026-11-22")), None);
        assert_eq!(whole_weeks(d("2026-11-16"), d("2026-11-21")), None);
        assert_eq!(
            whole_weeks(d("2026-08-23"), d("2026-11-20")),
            Some((d("2026-08-24"), d("2026-11-16")))
        );
        assert_eq!(whole_weeks(d("2026-11-20"), d("2026-11-20")), None);
    }
}

#[derive(QueryableByName)]
struct MissingDay {
    #[diesel(sql_type = Nullable<Date>)]
    day: Option<NaiveDate>,
    #[diesel(sql_type = BigInt)]
    known: i64,
}

/// Checks that every currency has a rate for every day of the window. A currency with
/// no rate at all is unknown (`BAD_USER_INPUT`); a missing day is `UNAVAILABLE` and
/// named, never a silent zero.
pub fn check_rates(
    conn: &mut PgConnection,
    currencies: &[String],
    first: NaiveDate,
    last: NaiveDate,
) -> AppResult<()> {
    for currency in currencies.iter().filter(|c| c.as_str() != "CNY") {
        let found: MissingDay = diesel::sql_query(
            "SELECT (SELECT d::date FROM generate_series($2::date, $3::date, interval '1 day') AS d
                      WHERE NOT EXISTS (SELECT 1 FROM fx_rates f WHERE f.day = d::date AND f.currency = $1)
                      ORDER BY d LIMIT 1) AS day,
                    (SELECT count(*) FROM fx_rates WHERE currency = $1) AS known",
        )
        .bind::<Text, _>(currency)
        .bind::<Date, _>(first)
        .bind::<Date, _>(last)
        .get_result(conn)?;
        if found.known == 0 {
            return Err(AppError::bad_input(format!(
                "unknown currency {currency}: no exchange rates"
            )));
        }
        if let Some(day) = found.day {
            return Err(AppError::Unavailable(format!(
                "no exchange rate for {currency} on {day}"
            )));
        }
    }
    Ok(())
}
