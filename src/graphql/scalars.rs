//! Scalars of the contract: `Date` is `YYYY-MM-DD` (`DateTime` is RFC 3339, from
//! async-graphql's chrono support).

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::NaiveDate;

/// A calendar date, `YYYY-MM-DD`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Date(pub NaiveDate);

#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => {
                let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                    InputValueError::custom(format!("{s:?} is not a date (YYYY-MM-DD)"))
                })?;
                crate::domain::calendar::check_date(date)
                    .map(Date)
                    .map_err(InputValueError::custom)
            }
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}
