//! `kpis`, `trend` and `breakdown`: thin resolvers over the reports service
//! (`crate::reports`), which validates, scopes, caches and answers them.

use async_graphql::{Context, InputObject, Object};

use super::reader;
use super::scalars::Date;
use crate::auth::Principal;
use crate::domain::{Compare, Dimension, Granularity, Metric};
use crate::reports::{self, Question, Ranking};

pub use crate::reports::{
    BreakdownReport, BreakdownRow, DateRangeOut, KpiReport, MetricValue, TrendPoint, TrendReport,
};

#[derive(InputObject, Clone, Copy)]
pub struct DateRange {
    /// First local date, inclusive.
    pub from: Date,
    /// Last local date, inclusive.
    pub to: Date,
}

/// The analytics filter input is the reports service's filter model.
pub use crate::reports::ReportFilter as AnalyticsFilter;

fn question(
    range: DateRange,
    filter: Option<AnalyticsFilter>,
    metrics: Option<Vec<Metric>>,
    compare: Option<Compare>,
    timezone: Option<String>,
    currency: Option<String>,
) -> Question {
    Question {
        from: range.from.0,
        to: range.to.0,
        filter: filter.unwrap_or_default(),
        metrics,
        timezone,
        currency,
        compare,
    }
}

/// COMMISSION asked for without FINANCE_READ resolves to null with this field's error.
fn refuse_commission(ctx: &Context<'_>, p: &Principal, metrics: &[Metric]) {
    if let Some(err) = reports::commission_refusal(p, metrics) {
        let err: async_graphql::Error = err.into();
        ctx.add_error(ctx.set_error_path(err.into_server_error(ctx.item.pos)));
    }
}

#[derive(Default)]
pub struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// Headline metrics over a range, optionally against a comparison period.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        complexity = "super::cost::kpis(&range, metrics.as_ref().map_or(8, |m| m.len()), compare.is_some()) + child_complexity"
    )]
    async fn kpis(
        &self,
        ctx: &Context<'_>,
        range: DateRange,
        metrics: Option<Vec<Metric>>,
        filter: Option<AnalyticsFilter>,
        compare: Option<Compare>,
        #[graphql(default = "Asia/Shanghai")] timezone: String,
        #[graphql(default = "CNY")] currency: String,
    ) -> async_graphql::Result<KpiReport> {
        let args = KpiArgs {
            range,
            metrics,
            filter,
            compare,
            timezone,
            currency,
        };
        kpi_report(ctx, super::principal(ctx)?, &args).await
    }

    /// One point per bucket of the range, zero-filled; with `compare`, `previous` is the
    /// aligned bucket of the comparison period.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        complexity = "super::cost::trend(&range, granularity, metrics.len(), compare.is_some()) + child_complexity"
    )]
    async fn trend(
        &self,
        ctx: &Context<'_>,
        range: DateRange,
        granularity: Granularity,
        metrics: Vec<Metric>,
        filter: Option<AnalyticsFilter>,
        compare: Option<Compare>,
        timezone: Option<String>,
        currency: Option<String>,
    ) -> async_graphql::Result<TrendReport> {
        let r = reader(ctx)?;
        let q = question(range, filter, Some(metrics), compare, timezone, currency);
        let report = reports::trend(&r, &q, granularity).await?;
        refuse_commission(ctx, r.principal, &q.metric_list());
        Ok(report)
    }

    /// The top `limit` values of a dimension by `sortBy`, the rest folded into `other`,
    /// and the total; rows + other add up to the total for additive metrics.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        complexity = "super::cost::breakdown(&range, metrics.len(), limit, compare.is_some()) + child_complexity"
    )]
    async fn breakdown(
        &self,
        ctx: &Context<'_>,
        range: DateRange,
        dimension: Dimension,
        metrics: Vec<Metric>,
        sort_by: Option<Metric>,
        #[graphql(default = 10)] limit: i32,
        filter: Option<AnalyticsFilter>,
        compare: Option<Compare>,
        timezone: Option<String>,
        currency: Option<String>,
    ) -> async_graphql::Result<BreakdownReport> {
        let r = reader(ctx)?;
        let q = question(range, filter, Some(metrics), compare, timezone, currency);
        let ranking = Ranking {
            dimension,
            sort_by,
            limit,
        };
        let report = reports::breakdown(&r, &q, ranking).await?;
        refuse_commission(ctx, r.principal, &q.metric_list());
        Ok(report)
    }
}

/// The arguments of `kpis` (and of the `liveKpis` subscription).
#[derive(Clone)]
pub struct KpiArgs {
    pub range: DateRange,
    pub metrics: Option<Vec<Metric>>,
    pub filter: Option<AnalyticsFilter>,
    pub compare: Option<Compare>,
    pub timezone: String,
    pub currency: String,
}

/// The `kpis` report for `p`.
pub async fn kpi_report(
    ctx: &Context<'_>,
    p: &Principal,
    args: &KpiArgs,
) -> async_graphql::Result<KpiReport> {
    let KpiArgs {
        range,
        metrics,
        filter,
        compare,
        timezone,
        currency,
    } = args.clone();
    let r = reports::Reader {
        services: super::shared(ctx),
        principal: p,
        bypass: super::bypass(ctx),
    };
    let q = question(
        range,
        filter,
        metrics,
        compare,
        Some(timezone),
        Some(currency),
    );
    let report = reports::kpis(&r, &q).await?;
    refuse_commission(ctx, p, &q.metric_list());
    Ok(report)
}
