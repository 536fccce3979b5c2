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
use crate::ingest::{dedupe, validate, IngestOutcome, IngestResult, OrderInput};

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
    if Platform::parse(&shop.platform) != Some(platform) {
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
    let mut results: Vec<IngestResult> = Vec::new();
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
    if !valid.is_empty() {
        let (batch, superseded) = dedupe(valid);
        results.extend(superseded);
        results.extend(db::ingest::apply(conn, &batch, actor)?);
    }
    for r in results {
        let o = &mut outcomes[r.index as usize];
        o.outcome = outcome_name(r.outcome);
        o.order_id = r.order_id.map(|id| id.to_string());
        o.reason = r.reason;
    }
    Ok(outcomes)
}
