//! Scalars of the contract: `Date` is `YYYY-MM-DD` (defined with the domain types, as
//! reports carry it below the transports); `DateTime` is RFC 3339, from async-graphql's
//! chrono support.

pub use crate::domain::Date;
