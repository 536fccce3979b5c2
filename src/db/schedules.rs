//! Scheduled reports (`report_schedules`) and their deliveries (`report_deliveries`):
//! creating and listing them, and the claims through which exactly one node runs each
//! delivery (row locks skipped by other nodes, and a lease while it sends).

use chrono::{DateTime, NaiveTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Time, Timestamptz};

use crate::error::AppResult;

#[derive(Debug, Clone, QueryableByName)]
pub struct ScheduleRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub tenant_id: i64,
    #[diesel(sql_type = BigInt)]
    pub account_id: i64,
    #[diesel(sql_type = Text)]
    pub report: String,
    #[diesel(sql_type = Time)]
    pub time_of_day: NaiveTime,
    #[diesel(sql_type = Text)]
    pub timezone: String,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Timestamptz)]
    pub next_run_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct DeliveryRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub schedule_id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub scheduled_for: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    pub next_attempt_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub last_status: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A delivery claimed for sending, with what it needs from its schedule.
#[derive(Debug, Clone, QueryableByName)]
pub struct ClaimedDelivery {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub schedule_id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub scheduled_for: DateTime<Utc>,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = BigInt)]
    pub tenant_id: i64,
    #[diesel(sql_type = BigInt)]
    pub account_id: i64,
    #[diesel(sql_type = Text)]
    pub report: String,
    #[diesel(sql_type = Text)]
    pub timezone: String,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Text)]
    pub secret: String,
}

const SCHEDULE_COLUMNS: &str =
    "id, tenant_id, account_id, report, time_of_day, timezone, url, next_run_at, created_at";

pub struct NewSchedule<'a> {
    pub tenant_id: i64,
    pub account_id: i64,
    pub report: &'a str,
    pub time_of_day: NaiveTime,
    pub timezone: &'a str,
    pub url: &'a str,
    pub secret: &'a str,
    pub next_run_at: DateTime<Utc>,
}

pub fn insert(conn: &mut PgConnection, s: &NewSchedule<'_>) -> AppResult<ScheduleRow> {
    Ok(diesel::sql_query(format!(
        "INSERT INTO report_schedules (tenant_id, account_id, report, time_of_day, timezone, \
         url, secret, next_run_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {SCHEDULE_COLUMNS}"
    ))
    .bind::<BigInt, _>(s.tenant_id)
    .bind::<BigInt, _>(s.account_id)
    .bind::<Text, _>(s.report)
    .bind::<Time, _>(s.time_of_day)
    .bind::<Text, _>(s.timezone)
    .bind::<Text, _>(s.url)
    .bind::<Text, _>(s.secret)
    .bind::<Timestamptz, _>(s.next_run_at)
    .get_result(conn)?)
}

/// The tenant's live schedules; with `account_id`, only that account's.
pub fn list(
    conn: &mut PgConnection,
    tenant_id: i64,
    account_id: Option<i64>,
) -> AppResult<Vec<ScheduleRow>> {
    Ok(diesel::sql_query(format!(
        "SELECT {SCHEDULE_COLUMNS} FROM report_schedules WHERE tenant_id = $1 \
         AND deleted_at IS NULL AND ($2::bigint IS NULL OR account_id = $2) ORDER BY id"
    ))
    .bind::<BigInt, _>(tenant_id)
    .bind::<Nullable<BigInt>, _>(account_id)
    .load(conn)?)
}

/// Deletes a live schedule of the tenant (with `account_id`, only that account's);
/// whether there was one. Its pending deliveries are not sent.
pub fn delete(
    conn: &mut PgConnection,
    tenant_id: i64,
    id: i64,
    account_id: Option<i64>,
) -> AppResult<bool> {
    let n = diesel::sql_query(
        "UPDATE report_schedules SET deleted_at = now() WHERE id = $1 AND tenant_id = $2 \
         AND deleted_at IS NULL AND ($3::bigint IS NULL OR account_id = $3)",
    )
    .bind::<BigInt, _>(id)
    .bind::<BigInt, _>(tenant_id)
    .bind::<Nullable<BigInt>, _>(account_id)
    .execute(conn)?;
    Ok(n == 1)
}

/// The newest deliveries of a schedule.
pub fn deliveries(
    conn: &mut PgConnection,
    schedule_id: i64,
    first: i64,
) -> AppResult<Vec<DeliveryRow>> {
    Ok(diesel::sql_query(
        "SELECT id, schedule_id, scheduled_for, status, attempts, next_attempt_at, last_status, \
         last_error, delivered_at FROM report_deliveries WHERE schedule_id = $1 \
         ORDER BY scheduled_for DESC, id DESC LIMIT $2",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<BigInt, _>(first)
    .load(conn)?)
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Timestamptz)]
    next_run_at: DateTime<Utc>,
    #[diesel(sql_type = Time)]
    time_of_day: NaiveTime,
    #[diesel(sql_type = Text)]
    timezone: String,
}

/// Turns every due run into a delivery and moves its schedule to its next run, in one
/// transaction whose row locks other nodes skip: each run becomes one delivery.
/// `next` gives the run after a given instant.
pub fn create_due_deliveries(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    next: impl Fn(NaiveTime, &str, DateTime<Utc>) -> DateTime<Utc>,
) -> AppResult<usize> {
    conn.transaction(|conn| {
        let due: Vec<Due> = diesel::sql_query(
            "SELECT id, next_run_at, time_of_day, timezone FROM report_schedules \
             WHERE deleted_at IS NULL AND next_run_at <= $1 \
             ORDER BY next_run_at LIMIT 100 FOR UPDATE SKIP LOCKED",
        )
        .bind::<Timestamptz, _>(now)
        .load(conn)?;
        for d in &due {
            diesel::sql_query(
                "INSERT INTO report_deliveries (schedule_id, scheduled_for, next_attempt_at) \
                 VALUES ($1, $2, $2) ON CONFLICT (schedule_id, scheduled_for) DO NOTHING",
            )
            .bind::<BigInt, _>(d.id)
            .bind::<Timestamptz, _>(d.next_run_at)
            .execute(conn)?;
            // A node that was down for days sends the missed run once, not every one.
            let following = next(d.time_of_day, &d.timezone, now.max(d.next_run_at));
            diesel::sql_query("UPDATE report_schedules SET next_run_at = $2 WHERE id = $1")
                .bind::<BigInt, _>(d.id)
                .bind::<Timestamptz, _>(following)
                .execute(conn)?;
        }
        Ok(due.len())
    })
}

/// Claims up to `limit` deliveries due now: each gets an attempt and a lease of
/// `lease_seconds` (if this node stops while sending, another retries after it).
pub fn claim_deliveries(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    lease_seconds: i64,
    limit: i64,
) -> AppResult<Vec<ClaimedDelivery>> {
    Ok(diesel::sql_query(
        "WITH due AS ( \
           SELECT d.id FROM report_deliveries d JOIN report_schedules s ON s.id = d.schedule_id \
            WHERE d.status IN ('PENDING', 'RETRYING') AND d.next_attempt_at <= $1 \
              AND s.deleted_at IS NULL \
            ORDER BY d.next_attempt_at LIMIT $3 FOR UPDATE OF d SKIP LOCKED) \
         UPDATE report_deliveries d SET attempts = d.attempts + 1, \
                next_attempt_at = $1 + make_interval(secs => $2) \
           FROM due, report_schedules s \
          WHERE d.id = due.id AND s.id = d.schedule_id \
         RETURNING d.id, d.schedule_id, d.scheduled_for, d.attempts, s.tenant_id, s.account_id, \
                   s.report, s.timezone, s.url, s.secret",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(lease_seconds)
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}

/// Records an attempt: delivered, or failed with a retry at `retry_at` (`None`: given up).
pub fn record(
    conn: &mut PgConnection,
    id: i64,
    delivered: bool,
    http_status: Option<i32>,
    error: Option<&str>,
    retry_at: Option<DateTime<Utc>>,
) -> AppResult<()> {
    let status = match (delivered, retry_at) {
        (true, _) => "DELIVERED",
        (false, Some(_)) => "RETRYING",
        (false, None) => "FAILED",
    };
    diesel::sql_query(
        "UPDATE report_deliveries SET status = $2, last_status = $3, last_error = $4, \
         next_attempt_at = coalesce($5, next_attempt_at), \
         delivered_at = CASE WHEN $2 = 'DELIVERED' THEN now() END WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(status)
    .bind::<Nullable<Integer>, _>(http_status)
    .bind::<Nullable<Text>, _>(error)
    .bind::<Nullable<Timestamptz>, _>(retry_at)
    .execute(conn)?;
    Ok(())
}
