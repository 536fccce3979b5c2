//! `dailyReport`: the seller's 日报, answered by the reports service
//! (`crate::reports::daily_report`).

use async_graphql::{Context, Object};

use super::reader;
use super::scalars::Date;

pub use crate::reports::{AbnormalCount, DailyMetric, DailyReport};

#[derive(Default)]
pub struct DailyQuery;

#[Object]
impl DailyQuery {
    /// The 日报 for `date` (default: today in `timezone`, default `Asia/Shanghai`), over
    /// every shop in the caller's scope, in CNY.
    #[graphql(complexity = "super::cost::DAILY_REPORT + child_complexity")]
    async fn daily_report(
        &self,
        ctx: &Context<'_>,
        date: Option<Date>,
        timezone: Option<String>,
    ) -> async_graphql::Result<DailyReport> {
        let r = reader(ctx)?;
        Ok(crate::reports::daily_report(&r, date.map(|d| d.0), timezone).await?)
    }
}
