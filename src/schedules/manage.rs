//! Managing scheduled reports: creating one (checked, with its signing secret shown
//! once), deleting, listing, and reading a schedule's deliveries. An account manages
//! its own schedules, or with `ACCOUNTS_MANAGE` every one of the tenant's.

use async_graphql::{InputObject, ID};
use base64::Engine;
use chrono::{NaiveTime, Utc};
use serde_json::json;

use super::{check_report, next_run, DAILY_REPORT};
use crate::auth::Principal;
use crate::db::schedules::{DeliveryRow, ScheduleRow};
use crate::db::{self};
use crate::domain::Permission;
use crate::error::{AppError, AppResult};
use crate::filters::parse_id;
use crate::state::Services;

#[derive(InputObject)]
pub struct ReportScheduleInput {
    /// `DAILY_REPORT` (yesterday's 日报 as JSON, for every shop in the account's scope)
    /// or an export path with its query string, as `createExportLink` takes it, where
    /// `{date}` and `{date-N}` are the run's local date and N days before, e.g.
    /// `/export/breakdown.csv?from={date-7}&to={date-1}&dimension=PROVINCE&metrics=GMV,ORDERS`.
    pub report: String,
    /// Local time of day, `HH:MM` (or `HH:MM:SS`).
    pub time_of_day: String,
    /// IANA zone of `timeOfDay` and of the dates; `Asia/Shanghai` when absent.
    pub timezone: Option<String>,
    /// Where each run is POSTed (http or https).
    pub url: String,
}

/// Manageable schedules: an account's own, or with `ACCOUNTS_MANAGE` the tenant's.
fn own_only(p: &Principal) -> Option<i64> {
    (!p.has(Permission::AccountsManage)).then_some(p.account_id)
}

/// The schedules `p` manages.
pub async fn list(services: &Services, p: &Principal) -> AppResult<Vec<ScheduleRow>> {
    let (tenant, own) = (p.tenant_id, own_only(p));
    db::run(&services.pool, move |c| db::schedules::list(c, tenant, own)).await
}

/// A schedule's newest deliveries (at most `first`, clamped to 1–200), newest first.
pub async fn deliveries(
    services: &Services,
    schedule_id: i64,
    first: i32,
) -> AppResult<Vec<DeliveryRow>> {
    let first = i64::from(first.clamp(1, 200));
    db::run(&services.pool, move |c| {
        db::schedules::deliveries(c, schedule_id, first)
    })
    .await
}

/// Creates a schedule running as `p` (`DAILY_REPORT` needs `ANALYTICS_READ`, an export
/// `EXPORT`); the schedule and its signing secret, which is shown only now.
pub async fn create(
    services: &Services,
    p: &Principal,
    input: ReportScheduleInput,
) -> AppResult<(ScheduleRow, String)> {
    if input.report == DAILY_REPORT {
        p.require(Permission::AnalyticsRead)?;
    } else {
        p.require(Permission::Export)?;
    }
    check_report(&input.report)?;
    let time = NaiveTime::parse_from_str(input.time_of_day.trim(), "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(input.time_of_day.trim(), "%H:%M:%S"))
        .map_err(|_| AppError::bad_input("timeOfDay must be HH:MM (or HH:MM:SS)"))?;
    let timezone = input.timezone.unwrap_or_else(|| "Asia/Shanghai".into());
    crate::analytics::buckets::parse_zone(&timezone)?;
    let url = reqwest::Url::parse(input.url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .filter(|_| input.url.len() <= 2000)
        .ok_or_else(|| AppError::bad_input("url must be an http or https URL"))?
        .to_string();
    let secret = {
        let bytes: [u8; 32] = rand_bytes();
        format!(
            "whsec_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    };
    let next = next_run(time, &timezone, Utc::now());
    let (tenant, account) = (p.tenant_id, p.account_id);
    let report = input.report;
    let secret_stored = secret.clone();
    let row = db::audit::audited(
        &services.pool,
        p.actor(),
        "createReportSchedule",
        move |c| {
            let schedule = db::schedules::NewSchedule {
                tenant_id: tenant,
                account_id: account,
                report: &report,
                time_of_day: time,
                timezone: &timezone,
                url: &url,
                secret: &secret_stored,
                next_run_at: next,
            };
            db::schedules::insert(c, &schedule)
        },
        |row| {
            let details = json!({
                "report": row.report, "timeOfDay": row.time_of_day.to_string(),
                "timezone": row.timezone, "url": row.url,
            });
            Some((format!("schedule:{}", row.id), details))
        },
    )
    .await?;
    Ok((row, secret))
}

/// Stops a schedule `p` manages; false when there was no such live schedule.
pub async fn delete(services: &Services, p: &Principal, id: &ID) -> AppResult<bool> {
    let id = parse_id("id", id)?;
    let (tenant, own) = (p.tenant_id, own_only(p));
    db::audit::audited(
        &services.pool,
        p.actor(),
        "deleteReportSchedule",
        move |c| db::schedules::delete(c, tenant, id, own),
        move |deleted| deleted.then(|| (format!("schedule:{id}"), json!({}))),
    )
    .await
}

/// Random bytes from the operating system (a v4 UUID's generator).
fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(16) {
        let len = chunk.len();
        chunk.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..len]);
    }
    out
}
