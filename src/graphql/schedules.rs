//! Scheduled reports: `createReportSchedule`, `deleteReportSchedule` and
//! `reportSchedules` with each schedule's delivery log. The delivery itself is
//! `crate::schedules`.

use async_graphql::{ComplexObject, Context, InputObject, Object, SimpleObject, ID};
use base64::Engine;
use chrono::{DateTime, NaiveTime, Utc};
use serde_json::json;

use super::{parse_id, principal, shared};
use crate::db;
use crate::domain::Permission;
use crate::error::AppError;
use crate::schedules::{check_report, next_run, DAILY_REPORT};

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

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ReportSchedule {
    pub id: ID,
    pub report: String,
    pub time_of_day: String,
    pub timezone: String,
    pub url: String,
    pub next_run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub schedule_id: i64,
}

#[derive(SimpleObject)]
pub struct ReportDelivery {
    pub id: ID,
    pub scheduled_for: DateTime<Utc>,
    /// `PENDING`, `RETRYING`, `DELIVERED` or `FAILED`.
    pub status: String,
    pub attempts: i32,
    /// When the next attempt is due (PENDING and RETRYING).
    pub next_attempt_at: DateTime<Utc>,
    /// The receiver's HTTP status of the last attempt.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct CreatedReportSchedule {
    pub schedule: ReportSchedule,
    /// The key of the `X-Orderscope-Signature` HMAC; shown once.
    pub secret: String,
}

fn shape(row: db::schedules::ScheduleRow) -> ReportSchedule {
    ReportSchedule {
        id: ID(row.id.to_string()),
        schedule_id: row.id,
        report: row.report,
        time_of_day: row.time_of_day.format("%H:%M:%S").to_string(),
        timezone: row.timezone,
        url: row.url,
        next_run_at: row.next_run_at,
        created_at: row.created_at,
    }
}

#[ComplexObject]
impl ReportSchedule {
    /// Its newest deliveries (at most `first`, 20 when absent), newest first.
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> async_graphql::Result<Vec<ReportDelivery>> {
        let id = self.schedule_id;
        let first = i64::from(first.clamp(1, 200));
        let rows = db::run(&shared(ctx).pool, move |c| {
            db::schedules::deliveries(c, id, first)
        })
        .await?;
        Ok(rows
            .into_iter()
            .map(|d| ReportDelivery {
                id: ID(d.id.to_string()),
                scheduled_for: d.scheduled_for,
                status: d.status,
                attempts: d.attempts,
                next_attempt_at: d.next_attempt_at,
                last_status: d.last_status,
                last_error: d.last_error,
                delivered_at: d.delivered_at,
            })
            .collect())
    }
}

/// Manageable schedules: an account's own, or with `ACCOUNTS_MANAGE` the tenant's.
fn own_only(p: &crate::auth::Principal) -> Option<i64> {
    (!p.has(Permission::AccountsManage)).then_some(p.account_id)
}

#[derive(Default)]
pub struct SchedulesQuery;

#[Object]
impl SchedulesQuery {
    /// Scheduled reports: the caller's own, or with `ACCOUNTS_MANAGE` every one of the
    /// tenant's.
    async fn report_schedules(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ReportSchedule>> {
        let p = principal(ctx)?;
        let (tenant, own) = (p.tenant_id, own_only(p));
        let rows = db::run(&shared(ctx).pool, move |c| {
            db::schedules::list(c, tenant, own)
        })
        .await?;
        Ok(rows.into_iter().map(shape).collect())
    }
}

#[derive(Default)]
pub struct SchedulesMutation;

#[Object]
impl SchedulesMutation {
    /// Delivers a report every day at a local time as a signed POST to `url` (see
    /// docs/AUTH.md, "Scheduled reports"). The report runs as the caller, with its
    /// permissions and scope at run time; `DAILY_REPORT` needs `ANALYTICS_READ`, an
    /// export `EXPORT`. Failed deliveries are retried with backoff; `reportSchedules`
    /// shows each delivery.
    async fn create_report_schedule(
        &self,
        ctx: &Context<'_>,
        input: ReportScheduleInput,
    ) -> async_graphql::Result<CreatedReportSchedule> {
        let p = principal(ctx)?;
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
        let actor = p.actor();
        let report = input.report;
        let secret_stored = secret.clone();
        let row = db::audit::audited(
            &shared(ctx).pool,
            actor,
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
        Ok(CreatedReportSchedule {
            schedule: shape(row),
            secret,
        })
    }

    /// Stops a schedule (the caller's own, or with `ACCOUNTS_MANAGE` any of the
    /// tenant's); false when there was no such live schedule.
    async fn delete_report_schedule(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<bool> {
        let p = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let (tenant, own, actor) = (p.tenant_id, own_only(p), p.actor());
        Ok(db::audit::audited(
            &shared(ctx).pool,
            actor,
            "deleteReportSchedule",
            move |c| db::schedules::delete(c, tenant, id, own),
            move |deleted| deleted.then(|| (format!("schedule:{id}"), json!({}))),
        )
        .await?)
    }
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
