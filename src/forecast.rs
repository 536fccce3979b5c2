//! Sales forecasts: additive Holt-Winters exponential smoothing with a damped trend
//! and a weekly season (triple exponential smoothing, period 7). The smoothing
//! constants are chosen on the history itself: each candidate is fitted on all but
//! the last two weeks and judged by its forecast of those two weeks (multi-step
//! error, which is what a forecast is used for), then refitted on the whole history.
//! The seasonal terms start from the average weekday pattern of the whole history,
//! and the interval is an approximate 95% one from the one-step errors. Judged by a
//! backtest: fitted on the history without its last 28 days, forecasting them,
//! against the seasonal naive forecast (each day as the same weekday of the last week
//! seen).

/// Days of a season.
pub const SEASON: usize = 7;
/// Days the backtest holds out.
pub const BACKTEST_DAYS: usize = 28;
/// Days the choice of constants holds out.
const VALIDATION_DAYS: usize = 14;
/// The method, as reports label it.
pub const METHOD: &str = "Holt-Winters additive, damped trend, weekly season (7 days)";

/// A fitted model: level, trend and the seasonal terms of the next `SEASON` days, the
/// trend's damping, and the spread of its one-step errors.
#[derive(Debug, Clone)]
pub struct Model {
    level: f64,
    trend: f64,
    phi: f64,
    /// `season[i]` is the term of the i-th day after the history.
    season: Vec<f64>,
    sigma: f64,
}

/// One forecast day: the expected value and the 95% interval, never below zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

#[derive(Clone, Copy)]
struct Constants {
    alpha: f64,
    beta: f64,
    gamma: f64,
    phi: f64,
}

const ALPHAS: &[f64] = &[0.02, 0.05, 0.1, 0.2, 0.3, 0.5];
const BETAS: &[f64] = &[0.0, 0.02, 0.1];
const GAMMAS: &[f64] = &[0.0, 0.05, 0.1, 0.2, 0.4];
const PHI: f64 = 0.9;

/// Runs the smoothing over `y`: the model after it.
fn smooth(y: &[f64], c: Constants) -> Model {
    let m = SEASON;
    let weeks = y.len() / m;
    // The average weekday pattern over the whole weeks, each week around its mean.
    let mut season = vec![0.0; m];
    for w in 0..weeks {
        let week = &y[w * m..(w + 1) * m];
        let mean = week.iter().sum::<f64>() / m as f64;
        for (d, v) in week.iter().enumerate() {
            season[d] += (v - mean) / weeks as f64;
        }
    }
    let mut level: f64 = y[..m].iter().sum::<f64>() / m as f64;
    // A trend only when asked for (beta > 0), from the first two weeks.
    let mut trend = if c.beta > 0.0 && y.len() >= 2 * m {
        (y[m..2 * m].iter().sum::<f64>() / m as f64 - level) / m as f64
    } else {
        0.0
    };
    let (mut sse, mut n) = (0.0, 0usize);
    for (t, &v) in y.iter().enumerate() {
        let s = season[t % m];
        let predicted = level + c.phi * trend + s;
        if t >= m {
            sse += (v - predicted).powi(2);
            n += 1;
        }
        let previous = level;
        level = c.alpha * (v - s) + (1.0 - c.alpha) * (level + c.phi * trend);
        trend = c.beta * (level - previous) + (1.0 - c.beta) * c.phi * trend;
        season[t % m] = c.gamma * (v - level) + (1.0 - c.gamma) * s;
    }
    let len = y.len();
    Model {
        level,
        trend,
        phi: c.phi,
        season: (0..m).map(|i| season[(len + i) % m]).collect(),
        sigma: (sse / n.max(1) as f64).sqrt(),
    }
}

/// Fits a model to a daily series of at least two seasons; `None` when shorter.
pub fn fit(y: &[f64]) -> Option<Model> {
    if y.len() < 2 * SEASON {
        return None;
    }
    let mut best: Option<(f64, Constants)> = None;
    // With four weeks or more, constants are chosen by the last two weeks' forecast;
    // with less, by the one-step errors.
    let validate = y.len() >= 2 * SEASON + VALIDATION_DAYS;
    for &alpha in ALPHAS {
        for &beta in BETAS {
            for &gamma in GAMMAS {
                let c = Constants {
                    alpha,
                    beta,
                    gamma,
                    phi: PHI,
                };
                let score = if validate {
                    let (train, held) = y.split_at(y.len() - VALIDATION_DAYS);
                    let f = smooth(train, c).forecast(VALIDATION_DAYS);
                    held.iter()
                        .zip(&f)
                        .map(|(a, p)| (a - p.value).powi(2))
                        .sum::<f64>()
                } else {
                    smooth(y, c).sigma
                };
                if best.as_ref().is_none_or(|(b, _)| score < *b) {
                    best = Some((score, c));
                }
            }
        }
    }
    best.map(|(_, c)| smooth(y, c))
}

impl Model {
    /// The next `days` days.
    pub fn forecast(&self, days: usize) -> Vec<Point> {
        let mut damped = 0.0;
        let mut factor = 1.0;
        (0..days)
            .map(|h| {
                factor *= self.phi;
                damped += factor;
                let value = self.level + self.trend * damped + self.season[h % SEASON];
                // The one-step spread, widening with the horizon.
                let spread = 1.96 * self.sigma * ((h + 1) as f64).sqrt();
                Point {
                    value: value.max(0.0),
                    low: (value - spread).max(0.0),
                    high: (value + spread).max(0.0),
                }
            })
            .collect()
    }
}

/// The seasonal naive forecast: each day as the same weekday of the last week.
pub fn seasonal_naive(y: &[f64], days: usize) -> Vec<f64> {
    let last = &y[y.len().saturating_sub(SEASON)..];
    (0..days).map(|h| last[h % last.len().max(1)]).collect()
}

/// Weighted absolute percentage error: sum |error| over sum |actual| (`None` when the
/// actuals are all zero).
pub fn wape(actual: &[f64], predicted: &[f64]) -> Option<f64> {
    let total: f64 = actual.iter().map(|a| a.abs()).sum();
    let err: f64 = actual
        .iter()
        .zip(predicted)
        .map(|(a, p)| (a - p).abs())
        .sum();
    (total > 0.0).then(|| err / total)
}

/// The backtest of a series: the method's and the seasonal naive WAPE over the last
/// [`BACKTEST_DAYS`] days, fitted on the days before them.
pub fn backtest(y: &[f64]) -> Option<(f64, f64)> {
    if y.len() < BACKTEST_DAYS + 2 * SEASON {
        return None;
    }
    let (train, held) = y.split_at(y.len() - BACKTEST_DAYS);
    let model = fit(train)?;
    let predicted: Vec<f64> = model
        .forecast(BACKTEST_DAYS)
        .iter()
        .map(|p| p.value)
        .collect();
    Some((
        wape(held, &predicted)?,
        wape(held, &seasonal_naive(train, BACKTEST_DAYS))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A weekly pattern with a slow trend and deterministic noise.
    fn series(days: usize) -> Vec<f64> {
        let week = [80.0, 70.0, 75.0, 90.0, 120.0, 160.0, 140.0];
        let mut state = 7u64;
        (0..days)
            .map(|d| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = ((state >> 33) % 41) as f64 - 20.0;
                week[d % 7] + d as f64 * 0.2 + noise
            })
            .collect()
    }

    #[test]
    fn a_weekly_series_is_forecast_better_than_seasonal_naive() {
        let y = series(182);
        let (method, naive) = backtest(&y).unwrap();
        assert!(
            method < naive,
            "Holt-Winters {method} vs seasonal naive {naive}"
        );
        assert!(method < 0.15, "{method}");
        let model = fit(&y).unwrap();
        let f = model.forecast(14);
        assert_eq!(f.len(), 14);
        // The weekly shape carries on: the sixth day of the cycle above the second.
        let day = |i: usize| f[(0..14).find(|h| (182 + h) % 7 == i).unwrap()].value;
        assert!(day(5) > day(1) + 40.0, "{f:?}");
        assert!(f.iter().all(|p| p.low <= p.value && p.value <= p.high));
    }

    #[test]
    fn short_or_empty_histories() {
        assert!(fit(&[1.0; 10]).is_none());
        let flat = fit(&[0.0; 30]).unwrap().forecast(7);
        assert!(flat.iter().all(|p| p.value == 0.0 && p.high == 0.0));
        assert_eq!(wape(&[0.0, 0.0], &[1.0, 1.0]), None);
    }
}
