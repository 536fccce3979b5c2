//! Time windows and trend buckets in any IANA zone, DST included.
//!
//! A range is inclusive local dates. Every boundary is an instant computed from local
//! wall-clock time, so a day in a DST change has 23 or 25 hours and HOUR buckets follow
//! the local clock (a half-hour zone gets local hours starting at :00 local).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use crate::domain::{Compare, Granularity};
use crate::error::{AppError, AppResult};

/// Longest range for DAY, WEEK and MONTH reports, in days.
pub const MAX_DAYS: i64 = 400;
/// Longest range for HOUR reports, in days.
pub const MAX_HOUR_DAYS: i64 = 31;

/// A validated inclusive range of local dates in a zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub tz: Tz,
}

/// One trend bucket: `[start, end)` and its label in local time.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub label: String,
}

/// Parses an IANA zone name; anything else is `BAD_USER_INPUT`.
pub fn parse_zone(name: &str) -> AppResult<Tz> {
    name.parse::<Tz>().map_err(|_| {
        AppError::bad_input(format!(
            "{name:?} is not an IANA time zone (e.g. Asia/Shanghai)"
        ))
    })
}

/// The first instant of a local date (a midnight skipped by DST falls forward).
pub fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    local_instant(tz, date.and_hms_opt(0, 0, 0).expect("midnight"))
}

fn local_instant(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    // A skipped local time (spring forward) maps to the first valid minute after it.
    for _ in 0..180 {
        if let Some(at) = tz.from_local_datetime(&probe).earliest() {
            return at.with_timezone(&Utc);
        }
        probe += Duration::minutes(1);
    }
    Utc.from_utc_datetime(&local)
}

impl LocalRange {
    pub fn new(
        from: NaiveDate,
        to: NaiveDate,
        tz: Tz,
        granularity: Option<Granularity>,
    ) -> AppResult<LocalRange> {
        if to < from {
            return Err(AppError::bad_input(format!(
                "range.to ({to}) is before range.from ({from})"
            )));
        }
        let days = (to - from).num_days() + 1;
        let max = if granularity == Some(Granularity::Hour) {
            MAX_HOUR_DAYS
        } else {
            MAX_DAYS
        };
        if days > max {
            return Err(AppError::bad_input(format!(
                "the range has {days} days; at most {max} are allowed{}",
                if max == MAX_HOUR_DAYS {
                    " for HOUR"
                } else {
                    ""
                }
            )));
        }
        Ok(LocalRange { from, to, tz })
    }

    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    pub fn start(&self) -> DateTime<Utc> {
        local_midnight(self.tz, self.from)
    }

    pub fn end(&self) -> DateTime<Utc> {
        local_midnight(self.tz, self.to + Duration::days(1))
    }

    /// The range a comparison reads: the same number of days just before, or the same
    /// dates a year earlier (29 February becomes 28 February).
    pub fn compared(&self, compare: Compare) -> LocalRange {
        match compare {
            Compare::PreviousPeriod => {
                let days = Duration::days(self.days());
                LocalRange {
                    from: self.from - days,
                    to: self.to - days,
                    tz: self.tz,
                }
            }
            Compare::SamePeriodLastYear => LocalRange {
                from: year_earlier(self.from),
                to: year_earlier(self.to),
                tz: self.tz,
            },
        }
    }

    /// The buckets of a trend, covering the range exactly; partial weeks and months at
    /// the edges are clipped to the range.
    pub fn buckets(&self, granularity: Granularity) -> Vec<Bucket> {
        let end = self.end();
        let mut out = Vec::new();
        match granularity {
            Granularity::Hour => {
                let mut at = self.start();
                while at < end {
                    let next = at + Duration::hours(1);
                    let local = at.with_timezone(&self.tz);
                    out.push(Bucket {
                        start: at,
                        end: next.min(end),
                        label: local.format("%Y-%m-%d %H:00 %Z").to_string(),
                    });
                    at = next;
                }
            }
            Granularity::Day | Granularity::Week | Granularity::Month => {
                let mut day = self.from;
                while day <= self.to {
                    let next = match granularity {
                        Granularity::Day => day + Duration::days(1),
                        Granularity::Week => {
                            let to_monday = (7 - day.weekday().num_days_from_monday()) as i64;
                            day + Duration::days(to_monday)
                        }
                        _ => first_of_next_month(day),
                    };
                    let next = next.min(self.to + Duration::days(1));
                    let label = match granularity {
                        Granularity::Day => day.format("%Y-%m-%d").to_string(),
                        Granularity::Week => {
                            let monday =
                                day - Duration::days(day.weekday().num_days_from_monday() as i64);
                            let week = monday.iso_week();
                            format!("{}-W{:02}", week.year(), week.week())
                        }
                        _ => day.format("%Y-%m").to_string(),
                    };
                    out.push(Bucket {
                        start: local_midnight(self.tz, day),
                        end: local_midnight(self.tz, next),
                        label,
                    });
                    day = next;
                }
            }
        }
        out
    }
}

fn year_earlier(date: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(date.year() - 1, date.month(), date.day())
        .or_else(|| NaiveDate::from_ymd_opt(date.year() - 1, date.month(), 28))
        .expect("a valid date")
}

fn first_of_next_month(date: NaiveDate) -> NaiveDate {
    let (y, m) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).expect("first of month")
}

/// Whether a weekday is a Monday (weeks start on Monday).
pub fn is_week_start(date: NaiveDate) -> bool {
    date.weekday() == Weekday::Mon
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn los_angeles_days_have_23_and_25_hours_across_dst() {
        let tz: Tz = "America/Los_Angeles".parse().unwrap();
        let spring = LocalRange::new(
            d("2026-03-08"),
            d("2026-03-08"),
            tz,
            Some(Granularity::Hour),
        )
        .unwrap();
        assert_eq!(spring.buckets(Granularity::Hour).len(), 23);
        let fall = LocalRange::new(
            d("2026-11-01"),
            d("2026-11-01"),
            tz,
            Some(Granularity::Hour),
        )
        .unwrap();
        let hours = fall.buckets(Granularity::Hour);
        assert_eq!(hours.len(), 25);
        assert_eq!(hours[1].label, "2026-11-01 01:00 PDT");
        assert_eq!(hours[2].label, "2026-11-01 01:00 PST");
        let days = LocalRange::new(d("2026-03-07"), d("2026-03-09"), tz, None)
            .unwrap()
            .buckets(Granularity::Day);
        assert_eq!((days[1].end - days[1].start).num_hours(), 23);
        assert_eq!(days[0].start.to_rfc3339(), "2026-03-07T08:00:00+00:00");
        assert_eq!(days[2].start.to_rfc3339(), "2026-03-09T07:00:00+00:00");
    }

    #[test]
    fn weeks_start_on_monday_and_months_clip_to_the_range() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        let range = LocalRange::new(d("2026-11-04"), d("2026-11-20"), tz, None).unwrap();
        let weeks = range.buckets(Granularity::Week);
        let starts: Vec<String> = weeks
            .iter()
            .map(|b| b.start.with_timezone(&tz).date_naive().to_string())
            .collect();
        assert_eq!(starts, ["2026-11-04", "2026-11-09", "2026-11-16"]);
        assert!(is_week_start(d("2026-11-09")));
        assert_eq!(weeks.last().unwrap().end, range.end());
        let months = LocalRange::new(d("2026-01-15"), d("2026-03-10"), tz, None)
            .unwrap()
            .buckets(Granularity::Month);
        assert_eq!(
            months.iter().map(|b| b.label.as_str()).collect::<Vec<_>>(),
            ["2026-01", "2026-02", "2026-03"]
        );
    }

    #[test]
    fn comparisons_and_bounds() {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        let r = LocalRange::new(d("2026-11-01"), d("2026-11-07"), tz, None).unwrap();
        assert_eq!(r.compared(Compare::PreviousPeriod).from, d("2026-10-25"));
        assert_eq!(r.compared(Compare::SamePeriodLastYear).to, d("2025-11-07"));
        let leap = LocalRange::new(d("2028-02-29"), d("2028-02-29"), tz, None).unwrap();
        assert_eq!(
            leap.compared(Compare::SamePeriodLastYear).from,
            d("2027-02-28")
        );
        assert!(LocalRange::new(d("2026-11-02"), d("2026-11-01"), tz, None).is_err());
        assert!(LocalRange::new(
            d("2026-01-01"),
            d("2026-02-05"),
            tz,
            Some(Granularity::Hour)
        )
        .is_err());
        assert!(LocalRange::new(d("2025-01-01"), d("2026-02-05"), tz, None).is_err());
        assert!(parse_zone("Mars/Olympus").is_err());
        let kolkata = parse_zone("Asia/Kolkata").unwrap();
        let h = LocalRange::new(
            d("2026-11-01"),
            d("2026-11-01"),
            kolkata,
            Some(Granularity::Hour),
        )
        .unwrap()
        .buckets(Granularity::Hour);
        assert_eq!(h.len(), 24);
        assert_eq!(h[0].start.to_rfc3339(), "2026-10-31T18:30:00+00:00");
    }
}
