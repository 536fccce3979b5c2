//! The reference dashboard at `/` (outside production, or with `DASHBOARD=on`): a page
//! of plain JavaScript with Apache ECharts and the graphql-ws client, all embedded in
//! the binary (`src/http/dashboard/`, vendored by `scripts/vendor-assets`). In
//! development, `/dev/demo-accounts` lists the demo accounts with tokens, for one-click
//! sign-in as each of them.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::auth::TokenSubject;
use crate::db;

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("dashboard/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("dashboard/app.css"),
    ),
    (
        "vendor/echarts.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("dashboard/vendor/echarts.min.js"),
    ),
    (
        "vendor/graphql-ws.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("dashboard/vendor/graphql-ws.min.js"),
    ),
    (
        "vendor/LICENSES.txt",
        "text/plain; charset=utf-8",
        include_bytes!("dashboard/vendor/LICENSES.txt"),
    ),
];

fn enabled(state: &AppState) -> bool {
    state.settings.dashboard
}

/// `GET /`: the dashboard page.
pub async fn page(state: web::Data<AppState>) -> HttpResponse {
    if !enabled(&state) {
        return HttpResponse::NotFound().finish();
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-cache"))
        .body(include_str!("dashboard/index.html"))
}

/// `GET /dashboard/{file}`: the page's scripts, styles and vendored libraries.
pub async fn asset(state: web::Data<AppState>, file: web::Path<String>) -> HttpResponse {
    if !enabled(&state) {
        return HttpResponse::NotFound().finish();
    }
    super::embedded(FILES, &file, "no-cache")
}

/// `GET /dev/demo-accounts` (never in production): every enabled account (at most 24)
/// with an 8-hour token, so that the page can show what each sub-account sees.
pub async fn demo_accounts(state: web::Data<AppState>) -> HttpResponse {
    if state.settings.is_production() || !enabled(&state) {
        return HttpResponse::NotFound().finish();
    }
    let rows = db::run(&state.pool, |c| db::accounts::enabled_with_tenants(c, 24)).await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return super::error_response(&state.metrics, e),
    };
    let accounts: Vec<serde_json::Value> = rows
        .into_iter()
        .filter_map(|(account, tenant)| {
            let subject =
                TokenSubject::account(account.id, account.tenant_id, account.token_generation);
            let issued = state.verifier.issue(subject, Some(8 * 3600)).ok()?;
            Some(json!({
                "id": account.id.to_string(),
                "name": account.name,
                "tenant": tenant,
                "isOwner": account.is_owner,
                "permissions": account.permissions,
                "token": issued.token,
            }))
        })
        .collect();
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(accounts)
}
