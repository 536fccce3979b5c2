//! Scheduled reports: `createReportSchedule`, `deleteReportSchedule` and
//! `reportSchedules` with each schedule's delivery log. The delivery itself is
//! `crate::schedules`.

use async_graphql::{ComplexObject, Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::{principal, shared};
use crate::db;
use crate::schedules::manage;

pub use crate::schedules::manage::ReportScheduleInput;

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
        let rows = manage::deliveries(shared(ctx), self.schedule_id, first).await?;
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
        let rows = manage::list(shared(ctx), principal(ctx)?).await?;
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
        let (row, secret) = manage::create(shared(ctx), principal(ctx)?, input).await?;
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
        Ok(manage::delete(shared(ctx), principal(ctx)?, &id).await?)
    }
}
