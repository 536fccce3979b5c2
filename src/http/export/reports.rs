//! `GET /export/trend.csv` and `GET /export/breakdown.csv`: the GraphQL report's
//! question from query parameters, answered by the reports service and written as a
//! table.

use std::fmt::Write as _;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;

use super::{csv_response, push_text, Params};
use crate::auth::Principal;
use crate::domain::{
    Channel, Compare, Dimension, Granularity, Metric, MetricUnit, PaymentMethod, Platform, Region,
};
use crate::error::{AppError, AppResult};
use crate::graphql::cost;
use crate::http::{authenticate, cache_bypass, error_response, within_budget, AppState};
use crate::reports::{
    self, BreakdownReport, MetricValue, Question, Ranking, ReportFilter, TrendReport,
};
use crate::settings::Limits;

const REPORT_FILTERS: &[&str] = &[
    "shopIds",
    "platforms",
    "productIds",
    "categories",
    "provinces",
    "regions",
    "channels",
    "creatorIds",
    "paymentMethods",
];

/// A report CSV's question, from its query parameters: the same arguments, names and
/// checks as the GraphQL `trend` and `breakdown`, answered by the same reports service.
pub(super) struct ReportPlan {
    question: Question,
    /// `Some` for a breakdown, `None` for a trend.
    ranking: Option<Ranking>,
    granularity: Granularity,
    bom: bool,
}

/// One enum value of a parameter; `BAD_USER_INPUT` naming the values it takes.
fn one_enum<T: Copy + std::fmt::Display>(
    params: &Params,
    key: &str,
    all: &[T],
    parse: fn(&str) -> Option<T>,
) -> AppResult<Option<T>> {
    params
        .one(key)?
        .map(|v| {
            parse(&v).ok_or_else(|| {
                let accepted: Vec<String> = all.iter().map(T::to_string).collect();
                AppError::bad_input(format!(
                    "{key}: {v:?} is not one of {}",
                    accepted.join(", ")
                ))
            })
        })
        .transpose()
}

/// A report's date parameter, `YYYY-MM-DD`, within the calendar's years.
fn report_date(params: &Params, key: &str) -> AppResult<NaiveDate> {
    let text = params
        .one(key)?
        .ok_or_else(|| AppError::bad_input("from and to (YYYY-MM-DD) are required"))?;
    let day = NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| {
        AppError::bad_input(format!(
            "{key}: {:?} is not a date (YYYY-MM-DD)",
            text.chars().take(40).collect::<String>()
        ))
    })?;
    crate::domain::calendar::check_date(day).map_err(|e| AppError::bad_input(format!("{key}: {e}")))
}

/// A report's parameters, checked and planned; the GraphQL field's cost is held to the
/// same complexity budget as a request for it.
pub(super) fn report_params(
    query_string: &str,
    breakdown: bool,
    limits: &Limits,
) -> AppResult<ReportPlan> {
    let mut allowed: Vec<&str> = vec![
        "from", "to", "metrics", "compare", "timezone", "currency", "bom",
    ];
    allowed.extend(REPORT_FILTERS);
    if breakdown {
        allowed.extend(["dimension", "sortBy", "limit"]);
    } else {
        allowed.push("granularity");
    }
    let params = Params::parse(query_string, &allowed)?;
    let (from, to) = (report_date(&params, "from")?, report_date(&params, "to")?);
    let metrics = params
        .enums("metrics", Metric::parse)?
        .filter(|m| !m.is_empty())
        .ok_or_else(|| AppError::bad_input("metrics is required"))?;
    let mut question = Question {
        from,
        to,
        filter: ReportFilter::default(),
        metrics: Some(metrics),
        timezone: None,
        currency: None,
        compare: one_enum(&params, "compare", Compare::ALL, Compare::parse)?,
    };
    question.currency = params.one("currency")?;
    let (shown, compare) = (question.metric_list().len(), question.compare.is_some());
    let range = crate::graphql::analytics::DateRange {
        from: crate::domain::Date(from),
        to: crate::domain::Date(to),
    };
    let (ranking, granularity, cost) = if breakdown {
        let dimension = one_enum(&params, "dimension", Dimension::ALL, Dimension::parse)?
            .ok_or_else(|| AppError::bad_input("dimension is required"))?;
        let sort_by = one_enum(&params, "sortBy", Metric::ALL, Metric::parse)?;
        let limit = match params.one("limit")? {
            None => 10,
            Some(v) => v
                .parse::<i32>()
                .map_err(|_| AppError::bad_input(format!("limit must be a number, got {v:?}")))?,
        };
        let ranking = Ranking {
            dimension,
            sort_by,
            limit,
        };
        let cost = cost::breakdown(&range, shown, limit, compare);
        (Some(ranking), Granularity::Day, cost)
    } else {
        let granularity = one_enum(&params, "granularity", Granularity::ALL, Granularity::parse)?
            .ok_or_else(|| AppError::bad_input("granularity is required"))?;
        let cost = cost::trend(&range, granularity, shown, compare);
        (None, granularity, cost)
    };
    if cost > limits.max_complexity {
        return Err(AppError::bad_input(format!(
            "this report's complexity is {cost}, more than the {} a request may have; \
             narrow the range, the metrics or the granularity",
            limits.max_complexity
        )));
    }
    question.filter = ReportFilter {
        shop_ids: params.ids("shopIds"),
        platforms: params.enums("platforms", Platform::parse)?,
        product_ids: params.ids("productIds"),
        categories: params.list("categories"),
        provinces: params.list("provinces"),
        regions: params.enums("regions", Region::parse)?,
        channels: params.enums("channels", Channel::parse)?,
        creator_ids: params.ids("creatorIds"),
        payment_methods: params.enums("paymentMethods", PaymentMethod::parse)?,
        carriers: None,
    };
    question.timezone = params.one("timezone")?;
    Ok(ReportPlan {
        question,
        ranking,
        granularity,
        bom: params.flag_or("bom", true)?,
    })
}

fn push_number(out: &mut String, value: Option<f64>) {
    if let Some(n) = value.filter(|n| n.is_finite()) {
        let _ = write!(out, "{n}");
    }
}

/// The header name of a metric's column, with its unit: money in major units of the
/// report currency (`GMV_CNY`), ratios as fractions (`REFUND_RATE_ratio`); counts,
/// units and `AVG_DELIVERY_HOURS` say theirs already.
fn metric_column(metric: Metric, currency: &str) -> String {
    match metric.unit() {
        MetricUnit::Money => format!("{metric}_{currency}"),
        MetricUnit::Ratio => format!("{metric}_ratio"),
        MetricUnit::Count | MetricUnit::Hours => metric.to_string(),
    }
}

/// Header cells for a report's metric values: `GMV_CNY` and, with a comparison,
/// `GMV_CNY_previous` and `GMV_CNY_change_ratio`.
fn push_value_header(out: &mut String, metrics: &[Metric], currency: &str, compare: bool) {
    for metric in metrics {
        let column = metric_column(*metric, currency);
        out.push(',');
        out.push_str(&column);
        if compare {
            let _ = write!(out, ",{column}_previous,{column}_change_ratio");
        }
    }
}

fn push_values(out: &mut String, values: &[MetricValue], compare: bool) {
    for value in values {
        out.push(',');
        push_number(out, value.value);
        if compare {
            out.push(',');
            push_number(out, value.previous);
            out.push(',');
            push_number(out, value.change);
        }
    }
}

/// A report as CSV: a trend's points, or a breakdown's rows whose first column,
/// `rowType`, is `data` for the top rows, `other` for the rest folded together and
/// `total` for all of them, so that a BI tool filtering on `rowType = data` (or summing
/// `data` and `other`) never counts a value twice.
enum Answered {
    Trend(TrendReport),
    Breakdown(BreakdownReport),
}

fn report_csv(report: &Answered, plan: &ReportPlan) -> String {
    // The columns are the report's metrics and currency, as the report spells them.
    let (metrics, currency) = (&plan.question.metric_list(), &plan.question.currency());
    let compare = plan.question.compare.is_some();
    let mut out = String::new();
    if plan.bom {
        out.push('\u{feff}');
    }
    match report {
        Answered::Trend(trend) => {
            out.push_str("start,label");
            push_value_header(&mut out, metrics, currency, compare);
            out.push_str("\r\n");
            for point in &trend.points {
                push_text(&mut out, &point.start.to_rfc3339());
                out.push(',');
                push_text(&mut out, &point.label);
                push_values(&mut out, &point.values, compare);
                out.push_str("\r\n");
            }
        }
        Answered::Breakdown(breakdown) => {
            out.push_str("rowType,key,label,share");
            push_value_header(&mut out, metrics, currency, compare);
            out.push_str("\r\n");
            let rows = breakdown.rows.iter().map(|row| ("data", row));
            for (kind, row) in rows.chain(breakdown.other.iter().map(|row| ("other", row))) {
                out.push_str(kind);
                out.push(',');
                push_text(&mut out, &row.key);
                out.push(',');
                push_text(&mut out, &row.label);
                out.push(',');
                push_number(&mut out, row.share);
                push_values(&mut out, &row.values, compare);
                out.push_str("\r\n");
            }
            out.push_str("total,,Total,1");
            push_values(&mut out, &breakdown.total, compare);
            out.push_str("\r\n");
        }
    }
    out
}

async fn report(state: web::Data<AppState>, req: HttpRequest, breakdown: bool) -> HttpResponse {
    // Bad parameters are reported before credentials are checked.
    let planned = match report_params(req.query_string(), breakdown, &state.settings.limits) {
        Ok(planned) => planned,
        Err(e) => return error_response(&state.metrics, e),
    };
    let principal = match authenticate(&state, &req).await {
        Ok(p) => p,
        Err(e) => return error_response(&state.metrics, e),
    };
    report_as(&state, &req, principal, planned).await
}

/// The trend or breakdown report `plan` asks for, answered by the reports service as
/// `principal`, within the request's time and its tenant's share like a GraphQL request.
pub(super) async fn report_as(
    state: &AppState,
    req: &HttpRequest,
    principal: Principal,
    plan: ReportPlan,
) -> HttpResponse {
    let answered = async {
        if let Some(refusal) = reports::commission_refusal(&principal, &plan.question.metric_list())
        {
            return Err(refusal);
        }
        let reader = reports::Reader {
            services: &state.services,
            principal: &principal,
            bypass: cache_bypass(state, req, &principal)?,
        };
        within_budget(state, principal.tenant_id, async {
            Ok(match plan.ranking {
                Some(ranking) => {
                    Answered::Breakdown(reports::breakdown(&reader, &plan.question, ranking).await?)
                }
                None => Answered::Trend(
                    reports::trend(&reader, &plan.question, plan.granularity).await?,
                ),
            })
        })
        .await
    }
    .await;
    match answered {
        Ok(report) => {
            let name = match report {
                Answered::Trend(_) => "trend.csv",
                Answered::Breakdown(_) => "breakdown.csv",
            };
            csv_response(name).body(report_csv(&report, &plan))
        }
        Err(e) => error_response(&state.metrics, e),
    }
}

/// `GET /export/trend.csv`: the `trend` report with the same arguments as query
/// parameters (`from`, `to`, `granularity`, `metrics`, filters, `compare`, …).
pub async fn trend_csv(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    report(state, req, false).await
}

/// `GET /export/breakdown.csv`: the `breakdown` report with the same arguments.
pub async fn breakdown_csv(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    report(state, req, true).await
}
