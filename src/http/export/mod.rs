//! CSV downloads for BI tools: `GET /export/orders.csv` streams orders with the same
//! filters, scope and masking as the `orders` query; `GET /export/trend.csv` and
//! `GET /export/breakdown.csv` ask the reports service the GraphQL report's question,
//! from the same arguments as query parameters, and write its answer as a table.
//!
//! Every file is RFC 4180 (CRLF line ends, quoted when needed), starts with a UTF-8 BOM
//! (unless `bom=false`) so that Excel on any locale reads Chinese text, and text cells
//! that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR) are prefixed
//! with `'`. Column names say their unit: amounts are major units (`paidAmountMajor`,
//! `GMV_CNY`), ratios are fractions (`REFUND_RATE_ratio`).

mod orders;
mod reports;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use async_graphql::ID;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;

use super::{error_response, AppState};
use crate::error::{AppError, AppResult};

pub use orders::{orders_csv, ExportSlots, MAX_CONCURRENT_EXPORTS, MAX_EXPORT_DAYS};
pub use reports::{breakdown_csv, trend_csv};

/// Appends one cell: quoted when it holds a comma, quote, CR or LF (RFC 4180), and
/// prefixed with `'` when a spreadsheet would read it as a formula.
pub(super) fn push_text(out: &mut String, text: &str) {
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
pub(super) fn push_money(out: &mut String, minor: i64) {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let _ = write!(out, "{sign}{}.{:02}", abs / 100, abs % 100);
}

pub(super) fn push_time(out: &mut String, at: Option<DateTime<Utc>>, zone: Tz) {
    if let Some(at) = at {
        out.push_str(
            &at.with_timezone(&zone)
                .to_rfc3339_opts(SecondsFormat::Secs, false),
        );
    }
}

/// Query parameters: `key=value`, lists comma-separated or repeated.
pub(super) struct Params(BTreeMap<String, Vec<String>>);

impl Params {
    pub(super) fn parse(query: &str, allowed: &[&str]) -> AppResult<Params> {
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

    pub(super) fn list(&self, key: &str) -> Option<Vec<String>> {
        self.0.get(key).cloned()
    }

    pub(super) fn one(&self, key: &str) -> AppResult<Option<String>> {
        match self.0.get(key).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => Ok(Some(one.clone())),
            Some(_) => Err(AppError::bad_input(format!("{key} takes one value"))),
        }
    }

    pub(super) fn flag(&self, key: &str) -> AppResult<bool> {
        self.flag_or(key, false)
    }

    /// A boolean parameter, `default` when absent.
    pub(super) fn flag_or(&self, key: &str, default: bool) -> AppResult<bool> {
        match self.one(key)?.as_deref() {
            None => Ok(default),
            Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(AppError::bad_input(format!(
                "{key} must be true or false, got {other:?}"
            ))),
        }
    }

    pub(super) fn ids(&self, key: &str) -> Option<Vec<ID>> {
        self.list(key).map(|v| v.into_iter().map(ID).collect())
    }

    pub(super) fn enums<T>(
        &self,
        key: &str,
        parse: fn(&str) -> Option<T>,
    ) -> AppResult<Option<Vec<T>>> {
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
}

pub(super) fn parse_zone(name: Option<String>) -> AppResult<Tz> {
    crate::analytics::buckets::parse_zone(name.as_deref().unwrap_or("Asia/Shanghai"))
}

pub(super) fn csv_response(filename: &str) -> actix_web::HttpResponseBuilder {
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
    let link = match crate::export_links::open(&state.services, &token).await {
        Ok(link) => link,
        Err(e) => return error_response(&state.metrics, e),
    };
    super::access::note(&req, link.principal.tenant_id, None);
    let principal = link.principal;
    match link.path.as_str() {
        "/export/orders.csv" => orders::orders_csv_as(&state, &slots, principal, &link.query).await,
        path => {
            let breakdown = path == "/export/breakdown.csv";
            match reports::report_params(&link.query, breakdown, &state.settings.limits) {
                Ok(planned) => reports::report_as(&state, &req, principal, planned).await,
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
