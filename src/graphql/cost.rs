//! What each expensive field costs in the per-request complexity budget, priced by its
//! arguments, so that a request's budget bounds the database work it can start.
//!
//! Every aggregate field runs at least one SQL statement (two with a comparison), so
//! it costs [`REPORT_BASE`] points before its range, buckets and metrics are counted;
//! with the default budget of 5,000 a request holds a dashboard's dozen reports but not
//! hundreds of aliases of one.

use super::analytics::DateRange;
use crate::domain::Granularity;

/// The floor of one aggregate field: one scan of the analytic store.
pub const REPORT_BASE: usize = 150;

fn days(range: &DateRange) -> usize {
    ((range.to.0 - range.from.0).num_days() + 1).clamp(1, 3_700) as usize
}

fn periods(compare: bool) -> usize {
    if compare {
        2
    } else {
        1
    }
}

/// `kpis`: one total per period.
pub fn kpis(range: &DateRange, metrics: usize, compare: bool) -> usize {
    periods(compare) * (REPORT_BASE + days(range) / 7 + 5 * metrics)
}

/// `trend`: a point per bucket and metric.
pub fn trend(range: &DateRange, granularity: Granularity, metrics: usize, compare: bool) -> usize {
    let buckets = match granularity {
        Granularity::Hour => days(range) * 24,
        Granularity::Day => days(range),
        Granularity::Week => days(range) / 7 + 1,
        Granularity::Month => days(range) / 28 + 1,
    };
    periods(compare) * (REPORT_BASE + days(range) / 7 + buckets * metrics.max(1) / 20 + 5 * metrics)
}

/// `breakdown`: ranking every key of a dimension, then the shown rows.
pub fn breakdown(range: &DateRange, metrics: usize, limit: i32, compare: bool) -> usize {
    let rows = limit.clamp(1, 100) as usize;
    periods(compare) * (2 * REPORT_BASE + days(range) / 7 + 5 * metrics + rows * metrics.max(1) / 5)
}

/// `dailyReport`: three days of totals, the top products and the abnormal counts.
pub const DAILY_REPORT: usize = 6 * REPORT_BASE;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::scalars::Date;
    use chrono::NaiveDate;

    fn range(days: i64) -> DateRange {
        let to = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        DateRange {
            from: Date(to - chrono::TimeDelta::days(days - 1)),
            to: Date(to),
        }
    }

    #[test]
    fn a_dashboard_fits_and_hundreds_of_aliases_do_not() {
        let r = range(30);
        let page = kpis(&r, 7, true)
            + trend(&r, Granularity::Day, 3, true)
            + breakdown(&r, 3, 10, false)
            + breakdown(&r, 3, 10, false)
            + breakdown(&r, 3, 20, false);
        assert!(page < 5_000, "a dashboard page costs {page}");
        assert!(500 * kpis(&range(1), 1, false) > 5_000 * 10);
        assert!(trend(&range(90), Granularity::Hour, 10, true) > kpis(&range(90), 10, true));
    }
}
