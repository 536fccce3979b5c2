//! Importers of the platforms' order exports (订单导出): CSV in UTF-8 or GBK and Excel
//! `.xlsx`, read a row at a time, turned into [`OrderInput`]s by each platform's
//! column names (`platforms`), and written through the same validation and
//! idempotent upsert as `ingestOrders`, a batch of orders at a time.
//!
//! Both the `orderscope import` command and the upload endpoint (`POST
//! /import/orders`) run [`run`]; what differs is who the principal is and where the
//! outcomes go.

pub mod platforms;
mod read;

use std::collections::HashSet;
use std::path::Path;

use diesel::PgConnection;

use crate::auth::Principal;
use crate::db;
use crate::domain::Platform;
use crate::error::{AppError, AppResult};
use crate::ingest::{validate, IngestOutcome, OrderInput};

pub use read::Rows;

/// Orders written per transaction.
const BATCH_ORDERS: usize = 500;

/// The outcome of one order of a file: its first row (1-based, as a spreadsheet shows
/// it: the header is row 1), its order number and what happened.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RowOutcome {
    pub row: u64,
    pub order_no: String,
    pub outcome: &'static str,
    pub order_id: Option<String>,
    pub reason: Option<String>,
}

/// Counts of a whole import.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    pub platform: String,
    pub shop_id: i64,
    /// Data rows read (not counting the header).
    pub rows: u64,
    pub orders: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub stale: u64,
    pub rejected: u64,
    /// `csv-utf8`, `csv-gbk` or `xlsx`.
    pub format: String,
}

impl ImportSummary {
    fn count(&mut self, outcome: &RowOutcome) {
        self.orders += 1;
        match outcome.outcome {
            "CREATED" => self.created += 1,
            "UPDATED" => self.updated += 1,
            "UNCHANGED" => self.unchanged += 1,
            "STALE" => self.stale += 1,
            _ => self.rejected += 1,
        }
    }
}

fn outcome_name(o: IngestOutcome) -> &'static str {
    match o {
        IngestOutcome::Created => "CREATED",
        IngestOutcome::Updated => "UPDATED",
        IngestOutcome::Unchanged => "UNCHANGED",
        IngestOutcome::Stale => "STALE",
        IngestOutcome::Rejected => "REJECTED",
    }
}

/// Imports `file` into `shop_id` as `principal` (who needs `ORDERS_WRITE` and the
/// shop in scope), calling `each` with every order's outcome in file order. Blocking
/// (run it through `db::run`). Memory stays flat: a batch of orders at a time.
pub fn run(
    conn: &mut PgConnection,
    principal: &Principal,
    platform: Platform,
    shop_id: i64,
    file: &Path,
    mut each: impl FnMut(&RowOutcome),
) -> AppResult<ImportSummary> {
    principal.require(crate::domain::Permission::OrdersWrite)?;
    let shop = principal
        .shop(shop_id)
        .ok_or_else(|| AppError::NotFound(format!("shop {shop_id}")))?
        .clone();
    if shop.platform != platform {
        return Err(AppError::bad_input(format!(
            "shop {shop_id} sells on {}, not {}",
            shop.platform,
            platform.as_str()
        )));
    }
    let zone: chrono_tz::Tz = shop.timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai);
    let province_rows = db::reference::all_provinces(conn)?;
    let codes: HashSet<String> = province_rows.iter().map(|p| p.code.clone()).collect();
    let provinces = platforms::ProvinceNames::new(&province_rows);
    let mut rows = Rows::open(file)?;
    let columns = platforms::Columns::find(platform, rows.headers())?;
    let mut summary = ImportSummary {
        platform: platform.as_str().to_string(),
        shop_id,
        format: rows.format().to_string(),
        ..ImportSummary::default()
    };
    let mut assembler = platforms::Assembler::new(platform, shop_id, zone, &provinces);
    let actor = principal.actor();
    let mut flush = |batch: Vec<platforms::Assembled>,
                     summary: &mut ImportSummary,
                     conn: &mut PgConnection|
     -> AppResult<()> {
        let outcomes = write_batch(conn, principal, actor, &codes, batch)?;
        for o in &outcomes {
            summary.count(o);
            each(o);
        }
        Ok(())
    };
    while let Some(record) = rows.next_record()? {
        summary.rows += 1;
        assembler.add(record.row, &columns, &record.cells);
        if assembler.ready() >= BATCH_ORDERS {
            flush(assembler.take(false), &mut summary, conn)?;
        }
    }
    flush(assembler.take(true), &mut summary, conn)?;
    Ok(summary)
}

/// Validates and writes one batch; the outcomes in the batch's order.
fn write_batch(
    conn: &mut PgConnection,
    principal: &Principal,
    actor: db::audit::Actor,
    codes: &HashSet<String>,
    batch: Vec<platforms::Assembled>,
) -> AppResult<Vec<RowOutcome>> {
    let mut outcomes: Vec<RowOutcome> = batch
        .iter()
        .map(|a| RowOutcome {
            row: a.row,
            order_no: a.order_no.clone(),
            outcome: "REJECTED",
            order_id: None,
            reason: None,
        })
        .collect();
    let mut valid = Vec::new();
    for (index, assembled) in batch.into_iter().enumerate() {
        let input: OrderInput = match assembled.order {
            Ok(input) => input,
            Err(reason) => {
                outcomes[index].reason = Some(reason);
                continue;
            }
        };
        match validate(index as i32, input, principal, codes) {
            Ok(v) => valid.push(v),
            Err(reason) => outcomes[index].reason = Some(reason),
        }
    }
    let results = match valid.is_empty() {
        true => Vec::new(),
        false => crate::ingest::write(conn, actor, valid)?,
    };
    for r in results {
        let o = &mut outcomes[r.index as usize];
        o.outcome = outcome_name(r.outcome);
        o.order_id = r.order_id.map(|id| id.to_string());
        o.reason = r.reason;
    }
    Ok(outcomes)
}

/// Header names of a stock file's product id and stock columns (the platforms'
/// product exports, 商品导出, and plain two-column sheets).
const STOCK_PRODUCT: &[&str] = &[
    "商品ID",
    "商品编号",
    "商品id",
    "宝贝ID",
    "Product ID",
    "product_id",
    "productId",
];
const STOCK_UNITS: &[&str] = &[
    "库存",
    "可售库存",
    "商品库存",
    "现货库存",
    "库存数量",
    "总库存",
    "Stock",
    "Available Stock",
    "Quantity",
    "stock",
];

/// Imports stock levels (`product id, stock` by the platform's product id) into one
/// shop's products, calling `each` with every row's outcome: `UPDATED`, `UNCHANGED`
/// or `REJECTED` (unknown product, bad number).
pub fn run_stock(
    conn: &mut PgConnection,
    principal: &Principal,
    shop_id: i64,
    file: &Path,
    mut each: impl FnMut(&RowOutcome),
) -> AppResult<ImportSummary> {
    principal.require(crate::domain::Permission::OrdersWrite)?;
    if principal.shop(shop_id).is_none() {
        return Err(AppError::NotFound(format!("shop {shop_id}")));
    }
    let mut rows = Rows::open(file)?;
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            rows.headers()
                .iter()
                .position(|h| h == n || h.eq_ignore_ascii_case(n))
        })
    };
    let (Some(product_col), Some(stock_col)) = (find(STOCK_PRODUCT), find(STOCK_UNITS)) else {
        return Err(AppError::bad_input(format!(
            "a stock file needs a product id column ({}) and a stock column ({}); found: {}",
            STOCK_PRODUCT.join(" / "),
            STOCK_UNITS.join(" / "),
            rows.headers().join(", ")
        )));
    };
    let mut summary = ImportSummary {
        platform: String::new(),
        shop_id,
        format: rows.format().to_string(),
        ..ImportSummary::default()
    };
    while let Some(record) = rows.next_record()? {
        summary.rows += 1;
        let cell = |i: usize| {
            record
                .cells
                .get(i)
                .map(|c| c.trim().trim_start_matches(['\'', '`']).trim().to_string())
                .unwrap_or_default()
        };
        let (external, stock) = (cell(product_col), cell(stock_col));
        let mut outcome = RowOutcome {
            row: record.row,
            order_no: external.clone(),
            outcome: "REJECTED",
            order_id: None,
            reason: None,
        };
        match stock.parse::<i32>().ok().filter(|s| *s >= 0) {
            None => {
                outcome.reason = Some(format!(
                    "row {}: {stock:?} is not a stock level",
                    record.row
                ))
            }
            Some(units) => {
                match db::inventory::set_stock_by_external(conn, shop_id, &external, units)? {
                    db::inventory::StockWrite::Updated => outcome.outcome = "UPDATED",
                    db::inventory::StockWrite::Unchanged => outcome.outcome = "UNCHANGED",
                    db::inventory::StockWrite::NotFound => {
                        outcome.reason = Some(format!(
                            "row {}: no product {external:?} in shop {shop_id}",
                            record.row
                        ));
                    }
                }
            }
        }
        summary.count(&outcome);
        each(&outcome);
    }
    Ok(summary)
}
