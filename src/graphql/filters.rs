//! Validation shared by the filters of every list and report: ids, list sizes, province
//! codes, and narrowing requested shops and platforms to the caller's scope. Bad input
//! becomes `BAD_USER_INPUT` here, once, with the same words everywhere.

use async_graphql::ID;

use super::parse_id;
use crate::auth::Principal;
use crate::domain::Platform;
use crate::error::{AppError, AppResult};

/// Most values one filter field takes.
pub const MAX_FILTER_VALUES: usize = 200;

pub fn list_len<T>(field: &str, values: &Option<Vec<T>>) -> AppResult<()> {
    match values {
        Some(v) if v.len() > MAX_FILTER_VALUES => Err(AppError::bad_input(format!(
            "{field} takes at most {MAX_FILTER_VALUES} values"
        ))),
        _ => Ok(()),
    }
}

/// A bounded list of our numeric ids.
pub fn ids(field: &str, values: &Option<Vec<ID>>) -> AppResult<Option<Vec<i64>>> {
    list_len(field, values)?;
    values
        .as_ref()
        .map(|v| v.iter().map(|id| parse_id(field, id)).collect())
        .transpose()
}

/// The requested shops and platforms narrowed to the caller's scope; a shop outside it
/// simply matches nothing.
pub fn scoped_shops(
    principal: &Principal,
    shop_ids: &Option<Vec<ID>>,
    platforms: &Option<Vec<Platform>>,
) -> AppResult<Vec<i64>> {
    let requested = ids("shopIds", shop_ids)?;
    let mut scoped = principal.scoped_shop_ids(requested.as_deref());
    if let Some(platforms) = platforms {
        scoped.retain(|id| {
            principal
                .shop(*id)
                .map(|s| s.platform)
                .is_some_and(|p| platforms.contains(&p))
        });
    }
    Ok(scoped)
}

/// A bounded list of GB/T 2260 two-digit province codes.
pub fn province_codes(codes: &Option<Vec<String>>) -> AppResult<()> {
    list_len("provinces", codes)?;
    match codes
        .iter()
        .flatten()
        .find(|c| c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_digit()))
    {
        Some(bad) => Err(AppError::bad_input(format!(
            "{bad:?} is not a province code (two digits, GB/T 2260)"
        ))),
        None => Ok(()),
    }
}

/// Database spellings of a list of enum values.
pub fn spell<T: Copy>(values: &Option<Vec<T>>, f: fn(T) -> &'static str) -> Option<Vec<String>> {
    values
        .as_ref()
        .map(|v| v.iter().map(|x| f(*x).to_string()).collect())
}
