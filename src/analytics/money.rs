//! Exact money: exchange factors as decimals and sums rounded to the cent once.
//!
//! The reference converts each order with `rate(shop currency) / rate(report currency)`
//! as PostgreSQL's numeric division computes it, multiplies exactly and rounds the
//! group's sum half away from zero. The store keeps those factors as PostgreSQL printed
//! them (mantissa and scale), so its sums are the same decimals, not floats.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;

use crate::error::{AppError, AppResult};

/// A decimal `mantissa × 10^-scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decimal {
    pub mantissa: i128,
    pub scale: u32,
}

impl Decimal {
    /// Parses PostgreSQL's text of a numeric (`-12.3400`); `None` if it is not one or
    /// has more than 30 decimals.
    pub fn parse(text: &str) -> Option<Decimal> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.len() > 30 {
            return None;
        }
        let mut mantissa: i128 = 0;
        for c in whole.chars().chain(fraction.chars()) {
            let d = c.to_digit(10)?;
            mantissa = mantissa.checked_mul(10)?.checked_add(i128::from(d))?;
        }
        Some(Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            scale: fraction.len() as u32,
        })
    }

    /// The mantissa at a larger scale.
    pub fn at_scale(&self, scale: u32) -> Option<i128> {
        self.mantissa
            .checked_mul(10i128.checked_pow(scale.checked_sub(self.scale)?)?)
    }
}

/// `value × 10^-scale` rounded half away from zero to an integer (minor units).
pub fn round_scaled(value: i128, scale: u32) -> i128 {
    if scale == 0 {
        return value;
    }
    let unit = 10i128.pow(scale);
    let (q, r) = (value / unit, value % unit);
    if 2 * r.abs() >= unit {
        q + value.signum()
    } else {
        q
    }
}

/// Every exchange factor the store knows: for each day with rates, each pair of
/// currencies (CNY included), `rate(from) / rate(to)` as PostgreSQL computed it.
#[derive(Debug, Default, Clone)]
pub struct Rates {
    factors: HashMap<(NaiveDate, String, String), Decimal>,
    /// Currencies with at least one rate, and the days each has one.
    days: HashMap<String, HashSet<NaiveDate>>,
}

impl Rates {
    /// From `(day, from, to, factor text)` rows.
    pub fn new(rows: Vec<(NaiveDate, String, String, String)>) -> Rates {
        let mut rates = Rates::default();
        for (day, from, to, text) in rows {
            let Some(factor) = Decimal::parse(&text) else {
                tracing::error!(%day, %from, %to, %text, "an exchange factor is not a decimal");
                continue;
            };
            rates.days.entry(from.clone()).or_default().insert(day);
            rates.factors.insert((day, from, to), factor);
        }
        rates
    }

    /// The factor converting `from` into `to` on `day`; 1 between a currency and
    /// itself.
    pub fn factor(&self, day: NaiveDate, from: &str, to: &str) -> Option<Decimal> {
        if from == to {
            return Some(Decimal {
                mantissa: 1,
                scale: 0,
            });
        }
        self.factors
            .get(&(day, from.to_string(), to.to_string()))
            .copied()
    }

    /// Every currency has a rate on every day of the window: a currency without any
    /// rate is unknown (`BAD_USER_INPUT`); a missing day is `UNAVAILABLE` and named,
    /// never a silent zero.
    pub fn check(&self, currencies: &[String], first: NaiveDate, last: NaiveDate) -> AppResult<()> {
        for currency in currencies.iter().filter(|c| c.as_str() != "CNY") {
            let Some(days) = self.days.get(currency) else {
                return Err(AppError::bad_input(format!(
                    "unknown currency {currency}: no exchange rates"
                )));
            };
            let mut day = first;
            while day <= last {
                if !days.contains(&day) {
                    return Err(AppError::Unavailable(format!(
                        "no exchange rate for {currency} on {day}"
                    )));
                }
                match day.succ_opt() {
                    Some(next) => day = next,
                    None => break,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_and_round_half_away_from_zero() {
        let d = Decimal::parse("0.13888888888888888889").unwrap();
        assert_eq!(d.scale, 20);
        assert_eq!(d.at_scale(22), Some(d.mantissa * 100));
        assert_eq!(Decimal::parse("7").unwrap().mantissa, 7);
        assert!(Decimal::parse("1e5").is_none());
        assert_eq!(round_scaled(25, 1), 3);
        assert_eq!(round_scaled(24, 1), 2);
        assert_eq!(round_scaled(-25, 1), -3);
        assert_eq!(round_scaled(1_234_999, 4), 123);
        assert_eq!(round_scaled(1_235_000, 4), 124);
    }
}
