//! `POST /import/orders?platform=DOUYIN&shopId=3`: a platform's order export (CSV in
//! UTF-8 or GBK, or `.xlsx`) as the request body. Needs `ORDERS_WRITE` and the shop in
//! scope. The body is streamed to a temporary file (at most `IMPORT_MAX_BYTES`), then
//! imported a batch of orders at a time like `ingestOrders`; the answer counts every
//! outcome and lists the orders that were not written (REJECTED or STALE) with their
//! row numbers, and every order's outcome when the file has at most 10,000 orders.

use std::io::Write;

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::json;

use super::{authenticate, error_response, AppState};
use crate::db;
use crate::domain::Platform;
use crate::error::AppError;
use crate::import::{ImportSummary, RowOutcome};

/// Orders listed one by one in the answer, beyond which only problems are.
const LISTED: usize = 10_000;

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    /// Absent for stock files.
    platform: Option<String>,
    shop_id: String,
    filename: Option<String>,
}

/// `POST /import/stock?shopId=3`: a stock file (the platform's product export, or two
/// columns: 商品ID / Product ID and 库存 / Stock) sets the stock of the shop's products
/// by their platform ids. Needs `ORDERS_WRITE`; audited.
pub async fn stock(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    upload(state, req, body, false).await
}

pub async fn orders(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    upload(state, req, body, true).await
}

async fn upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut body: web::Payload,
    orders: bool,
) -> HttpResponse {
    let principal = match authenticate(&state, &req).await {
        Ok(p) => p,
        Err(e) => return error_response(&state.metrics, e),
    };
    if let Err(e) = principal.require(crate::domain::Permission::OrdersWrite) {
        return error_response(&state.metrics, e);
    }
    let params = match web::Query::<Params>::from_query(req.query_string()) {
        Ok(p) => p.into_inner(),
        Err(e) => {
            let err = AppError::bad_input(format!("shopId is a required query parameter: {e}"));
            return error_response(&state.metrics, err);
        }
    };
    let platform = match (orders, &params.platform) {
        (false, _) => None,
        (true, Some(name)) => match Platform::parse(&name.to_ascii_uppercase()) {
            Some(p) => Some(p),
            None => {
                let err = AppError::bad_input(format!("unknown platform {name:?}"));
                return error_response(&state.metrics, err);
            }
        },
        (true, None) => {
            let err = AppError::bad_input("platform is a required query parameter");
            return error_response(&state.metrics, err);
        }
    };
    let Ok(shop_id) = params.shop_id.parse::<i64>() else {
        return error_response(
            &state.metrics,
            AppError::bad_input("shopId must be a number"),
        );
    };
    if principal.shop(shop_id).is_none() {
        let err = AppError::NotFound(format!("shop {shop_id}"));
        return error_response(&state.metrics, err);
    }
    // Spool the upload: imports read a file, and a slow sender holds no connection.
    let limit = state.settings.limits.max_import_bytes;
    let mut file = match tempfile::NamedTempFile::new() {
        Ok(f) => f,
        Err(e) => return error_response(&state.metrics, AppError::Internal(e.into())),
    };
    let mut size = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let err = AppError::bad_input(format!("the upload could not be read: {e}"));
                return error_response(&state.metrics, err);
            }
        };
        size += chunk.len();
        if size > limit {
            return super::too_large(&state.metrics, limit);
        }
        if let Err(e) = file.write_all(&chunk) {
            return error_response(&state.metrics, AppError::Internal(e.into()));
        }
    }
    let actor = principal.actor();
    let filename = params
        .filename
        .map(|f| f.chars().take(200).collect::<String>());
    let result = db::run(&state.pool, move |c| {
        let mut listed: Vec<RowOutcome> = Vec::new();
        let mut problems: Vec<RowOutcome> = Vec::new();
        let mut all_listed = true;
        let each = |o: &RowOutcome| {
            if listed.len() < LISTED {
                listed.push(o.clone());
            } else {
                all_listed = false;
            }
            if matches!(o.outcome, "REJECTED" | "STALE") && problems.len() < LISTED {
                problems.push(o.clone());
            }
        };
        let summary = match platform {
            Some(platform) => {
                crate::import::run(c, &principal, platform, shop_id, file.path(), each)?
            }
            None => crate::import::run_stock(c, &principal, shop_id, file.path(), each)?,
        };
        db::audit::record(
            c,
            actor,
            if platform.is_some() {
                "importOrders"
            } else {
                "importStock"
            },
            &format!("shop:{shop_id}"),
            json!({ "summary": summary, "filename": filename, "bytes": size }),
        )?;
        Ok((summary, all_listed.then_some(listed), problems))
    })
    .await;
    match result {
        Ok((summary, listed, problems)) => {
            HttpResponse::Ok().json(answer(summary, listed, problems))
        }
        Err(e) => error_response(&state.metrics, e),
    }
}

fn answer(
    summary: ImportSummary,
    listed: Option<Vec<RowOutcome>>,
    problems: Vec<RowOutcome>,
) -> serde_json::Value {
    json!({
        "summary": summary,
        "problems": problems,
        "results": listed,
    })
}
