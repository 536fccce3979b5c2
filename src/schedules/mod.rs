//! Scheduled reports (每日定时导出, 日报): every node runs [`start`]'s loop, which turns
//! due runs into deliveries and sends the deliveries it claims. A delivery renders the
//! report as the schedule's account — through this node's own HTTP API with a
//! five-minute token, so every permission and scope rule of an interactive request
//! applies at run time — and POSTs it to the schedule's URL, signed:
//!
//! `X-Orderscope-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//!
//! A failed POST (no answer, or not 2xx) is retried with exponential backoff; after
//! [`MAX_ATTEMPTS`] the delivery is FAILED. Each run is one delivery row, created and
//! claimed under row locks other nodes skip, so two nodes send it once.

pub mod manage;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::{TokenSubject, TokenVerifier};
use crate::db::{self, PgPool};
use crate::error::{AppError, AppResult};

/// Attempts before a delivery is given up (FAILED).
pub const MAX_ATTEMPTS: i32 = 6;
/// How long a node holds a claimed delivery before another may retry it.
const LEASE_SECONDS: i64 = 120;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The report a schedule names instead of an export path.
pub const DAILY_REPORT: &str = "DAILY_REPORT";

const DAILY_QUERY: &str = "query($d: Date!, $tz: String!) { dailyReport(date: $d, timezone: $tz) { date timezone metrics { metric today yesterday sameDayLastWeek dayOverDay weekOverWeek } topProducts { key label values { metric value } } abnormal { kind count } } }";

/// The first instant after `after` whose local time in `zone` is `time` (a time a DST
/// change skips runs an hour later that day).
pub fn next_run(time: NaiveTime, zone: &str, after: DateTime<Utc>) -> DateTime<Utc> {
    let tz: Tz = zone.parse().unwrap_or(chrono_tz::Asia::Shanghai);
    let mut day = after.with_timezone(&tz).date_naive();
    for _ in 0..3 {
        let local = day.and_time(time);
        let at = tz.from_local_datetime(&local).earliest().or_else(|| {
            tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        });
        if let Some(at) = at.map(|t| t.with_timezone(&Utc)).filter(|t| *t > after) {
            return at;
        }
        day = day.succ_opt().unwrap_or(day);
    }
    after + chrono::Duration::days(1)
}

/// The run's local date in the schedule's zone.
fn run_date(at: DateTime<Utc>, zone: &str) -> NaiveDate {
    let tz: Tz = zone.parse().unwrap_or(chrono_tz::Asia::Shanghai);
    at.with_timezone(&tz).date_naive()
}

/// An export's query string with `{date-N}` (the run's local date minus N days) filled in.
pub fn fill_dates(query: &str, run: NaiveDate) -> Result<String, String> {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(start) = rest.find("{date") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| "an unclosed {date…} placeholder".to_string())?
            + start;
        let inner = &rest[start + 5..end];
        let days: u64 = match inner {
            "" => 0,
            n => n
                .strip_prefix('-')
                .and_then(|n| n.parse().ok())
                .filter(|n| *n <= 400)
                .ok_or_else(|| {
                    format!("{{date{inner}}} is not {{date}} or {{date-N}} (N up to 400)")
                })?,
        };
        let day = run
            .checked_sub_days(Days::new(days))
            .ok_or_else(|| "a date before the calendar".to_string())?;
        out.push_str(&day.to_string());
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The signature header's value for `body` at `t`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={t},v1={}",
        crate::cache::hex(&mac.finalize().into_bytes())
    )
}

pub struct Scheduler {
    pool: PgPool,
    verifier: Arc<TokenVerifier>,
    /// This node's own API (`http://host:port`).
    base: String,
    client: reqwest::Client,
    retry_base: Duration,
}

/// Starts the loop that creates and sends due deliveries every `tick`.
pub fn start(
    pool: PgPool,
    verifier: Arc<TokenVerifier>,
    base: String,
    tick: Duration,
    retry_base: Duration,
) {
    let scheduler = Scheduler {
        pool,
        verifier,
        base,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client"),
        retry_base,
    };
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) = scheduler.tick().await {
                tracing::warn!(error = ?e, "scheduled reports: tick failed");
            }
        }
    });
}

impl Scheduler {
    async fn tick(&self) -> AppResult<()> {
        let now = Utc::now();
        db::run(&self.pool, move |c| {
            db::schedules::create_due_deliveries(c, now, next_run)
        })
        .await?;
        let claimed = db::run(&self.pool, move |c| {
            db::schedules::claim_deliveries(c, now, LEASE_SECONDS, 10)
        })
        .await?;
        for d in claimed {
            self.deliver(d).await?;
        }
        Ok(())
    }

    async fn deliver(&self, d: db::schedules::ClaimedDelivery) -> AppResult<()> {
        let outcome = match self.render(&d).await {
            // A report that cannot be rendered (the account lost the permission, a
            // bad export) is given up at once: retrying would not change it.
            Err(Permanent(reason)) => Err((None, reason, false)),
            Ok((content_type, body)) => self.post(&d, content_type, body).await,
        };
        let (delivered, status, error, retry_at) = match outcome {
            Ok(status) => (true, Some(status), None, None),
            Err((status, error, retry)) => {
                let retry_at = (retry && d.attempts < MAX_ATTEMPTS).then(|| {
                    let wait = self
                        .retry_base
                        .saturating_mul(1 << (d.attempts - 1).clamp(0, 16))
                        .min(MAX_BACKOFF);
                    Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
                });
                (false, status, Some(error), retry_at)
            }
        };
        if let Some(e) = &error {
            tracing::warn!(delivery = d.id, attempt = d.attempts, error = %e, "scheduled report not delivered");
        }
        let id = d.id;
        db::run(&self.pool, move |c| {
            db::schedules::record(c, id, delivered, status, error.as_deref(), retry_at)
        })
        .await
    }

    /// The report's body, rendered as the schedule's account.
    async fn render(
        &self,
        d: &db::schedules::ClaimedDelivery,
    ) -> Result<(&'static str, Vec<u8>), Permanent> {
        let account_id = d.account_id;
        let account = db::run(&self.pool, move |c| {
            db::accounts::account_by_id(c, account_id)
        })
        .await
        .map_err(|e| Permanent(format!("the account: {}", e.public_message())))?;
        if account.disabled_at.is_some() {
            return Err(Permanent("the schedule's account is disabled".into()));
        }
        let token = self
            .verifier
            .issue(
                TokenSubject::account(account.id, account.tenant_id, account.token_generation),
                Some(300),
            )
            .map_err(|e| Permanent(format!("cannot sign a token: {}", e.public_message())))?
            .token;
        let date = run_date(d.scheduled_for, &d.timezone);
        let request = if d.report == DAILY_REPORT {
            // The morning's 日报 is yesterday's.
            let yesterday = date.pred_opt().unwrap_or(date);
            self.client
                .post(format!("{}/graphql", self.base))
                .json(&serde_json::json!({
                    "query": DAILY_QUERY,
                    "variables": { "d": yesterday.to_string(), "tz": d.timezone },
                }))
        } else {
            let (path, query) = d.report.split_once('?').unwrap_or((d.report.as_str(), ""));
            let query = fill_dates(query, date).map_err(Permanent)?;
            self.client.get(format!("{}{path}?{query}", self.base))
        };
        let response = request
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| Permanent(format!("rendering the report: {e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Permanent(format!("rendering the report: {e}")))?;
        if d.report == DAILY_REPORT {
            let body: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| Permanent(format!("rendering the report: {e}")))?;
            if let Some(err) = body.get("errors").and_then(|e| e.get(0)) {
                return Err(Permanent(format!(
                    "rendering the report: {} ({})",
                    err["message"].as_str().unwrap_or(""),
                    err["extensions"]["code"].as_str().unwrap_or("")
                )));
            }
            let report = serde_json::to_vec(&body["data"]["dailyReport"]).unwrap_or_default();
            return Ok(("application/json", report));
        }
        if !status.is_success() {
            let message = String::from_utf8_lossy(&bytes)
                .chars()
                .take(300)
                .collect::<String>();
            return Err(Permanent(format!(
                "rendering the export: HTTP {status}: {message}"
            )));
        }
        Ok(("text/csv; charset=utf-8", bytes.to_vec()))
    }

    /// POSTs the body; the receiver's status, or why it failed and whether to retry.
    async fn post(
        &self,
        d: &db::schedules::ClaimedDelivery,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<i32, (Option<i32>, String, bool)> {
        let t = Utc::now().timestamp();
        let response = self
            .client
            .post(&d.url)
            .header("Content-Type", content_type)
            .header("X-Orderscope-Signature", signature(&d.secret, t, &body))
            .header("X-Orderscope-Delivery", d.id.to_string())
            .header("X-Orderscope-Schedule", d.schedule_id.to_string())
            .header("X-Orderscope-Scheduled-For", d.scheduled_for.to_rfc3339())
            .body(body)
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => Ok(i32::from(r.status().as_u16())),
            Ok(r) => {
                let status = i32::from(r.status().as_u16());
                Err((
                    Some(status),
                    format!("the receiver answered HTTP {status}"),
                    true,
                ))
            }
            Err(e) => Err((
                None,
                format!("the receiver could not be reached: {e}"),
                true,
            )),
        }
    }
}

/// A reason a report cannot be rendered that a retry would not change.
struct Permanent(String);

/// What `createReportSchedule` checks of a report: `DAILY_REPORT`, or an export path
/// with its query string (placeholders allowed).
pub fn check_report(report: &str) -> AppResult<()> {
    if report == DAILY_REPORT {
        return Ok(());
    }
    let (path, query) = report.split_once('?').unwrap_or((report, ""));
    if !crate::domain::EXPORT_PATHS.contains(&path) {
        return Err(AppError::bad_input(format!(
            "report must be DAILY_REPORT or one of {} with its query string",
            crate::domain::EXPORT_PATHS.join(", ")
        )));
    }
    fill_dates(query, Utc::now().date_naive()).map_err(AppError::bad_input)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_runs_follow_the_local_clock() {
        let t = NaiveTime::from_hms_opt(8, 30, 0).unwrap();
        let after: DateTime<Utc> = "2026-11-30T00:00:00Z".parse().unwrap();
        assert_eq!(
            next_run(t, "Asia/Shanghai", after),
            "2026-11-30T00:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let after: DateTime<Utc> = "2026-11-30T00:30:00Z".parse().unwrap();
        assert_eq!(
            next_run(t, "Asia/Shanghai", after),
            "2026-12-01T00:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        // 02:30 does not exist in Los Angeles on 2026-03-08: 03:30 PDT.
        let t = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        let after: DateTime<Utc> = "2026-03-08T08:00:00Z".parse().unwrap();
        assert_eq!(
            next_run(t, "America/Los_Angeles", after),
            "2026-03-08T10:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn date_placeholders_and_signatures() {
        let run = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(
            fill_dates("from={date-7}&to={date-1}", run).unwrap(),
            "from=2026-11-23&to=2026-11-29"
        );
        assert_eq!(fill_dates("day={date}", run).unwrap(), "day=2026-11-30");
        assert!(fill_dates("from={date+1}", run).is_err());
        assert!(fill_dates("from={date-7", run).is_err());
        // The example of the docs: HMAC-SHA256("secret", "1700000000.{}").
        assert_eq!(
            signature("secret", 1_700_000_000, b"{}"),
            "t=1700000000,v1=".to_string()
                + &crate::cache::hex(&{
                    let mut m = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
                    m.update(b"1700000000.{}");
                    m.finalize().into_bytes()
                })
        );
    }
}
