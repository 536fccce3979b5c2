//! The generator's randomness and rhythms: a stable seeded RNG, weighted choices,
//! the daily volume factor (weekly rhythm, campaign peaks, growth) and the hours of a day.

use chrono::{Datelike, NaiveDate, Weekday};

/// SplitMix64: tiny, fast and stable across versions, so a seed means the same data
/// forever.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub(super) fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub(super) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo).max(1) as u64)) as i64
    }
    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }
    /// Index into cumulative weights.
    pub(super) fn pick(&mut self, cumulative: &[f64]) -> usize {
        let x = self.f() * cumulative[cumulative.len() - 1];
        cumulative
            .partition_point(|c| *c <= x)
            .min(cumulative.len() - 1)
    }
    /// Long-tail index in [0, n): small indexes are much more likely.
    pub(super) fn skewed(&mut self, n: usize, power: f64) -> usize {
        ((self.f().powf(power) * n as f64) as usize).min(n.saturating_sub(1))
    }
}

pub(super) fn cumulative(weights: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

/// Daily volume factor: weekly rhythm, campaign peaks and gentle growth.
pub(super) fn day_weight(day: NaiveDate, index: u32, days: u32) -> f64 {
    let weekday = match day.weekday() {
        Weekday::Mon => 0.92,
        Weekday::Tue | Weekday::Wed | Weekday::Thu => 0.95,
        Weekday::Fri => 1.0,
        Weekday::Sat | Weekday::Sun => 1.15,
    };
    let (m, d) = (day.month(), day.day());
    let campaign = match (m, d) {
        (6, 18) => 4.0,
        (6, 1..=17) => 1.5,
        (11, 11) => 6.0,
        (11, 1..=10) => 1.6,
        (12, 12) => 2.2,
        _ => 1.0,
    };
    let growth = 0.8 + 0.4 * f64::from(index) / f64::from(days.max(1));
    weekday * campaign * growth
}

/// Share of orders per local hour: quiet nights, an evening peak for live commerce.
pub(super) const HOURS: [f64; 24] = [
    2.0, 1.2, 0.7, 0.4, 0.3, 0.3, 0.6, 1.2, 2.2, 3.2, 4.0, 4.2, 4.4, 4.0, 3.8, 3.8, 4.0, 4.2, 4.8,
    5.6, 7.0, 8.0, 7.5, 4.5,
];
