//! Validation shared by the filters of every list and report, whichever transport asked
//! (GraphQL arguments or CSV query parameters): ids, list sizes, province codes, and
//! narrowing requested shops and platforms to the caller's scope. Bad input becomes
//! `BAD_USER_INPUT` here, once, with the same words everywhere.

use async_graphql::ID;
use chrono::{DateTime, Utc};

use crate::auth::Principal;
use crate::db::orders::OrderQuery;
use crate::domain::{check_plain_text, Channel, OrderStatus, PaymentMethod, Platform, SellerFlag};
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

/// Parses one of our numeric ids (a GraphQL `ID` or a query parameter).
pub fn parse_id(field: &str, id: impl AsRef<str>) -> AppResult<i64> {
    let id = id.as_ref();
    id.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| AppError::bad_input(format!("{field} is not a valid id: {id:?}")))
}

/// A bounded list of our numeric ids.
pub fn ids<S: AsRef<str>>(field: &str, values: &Option<Vec<S>>) -> AppResult<Option<Vec<i64>>> {
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
    shop_ids: &Option<Vec<impl AsRef<str>>>,
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

// The order filter model: what the `orders` list, the order subscriptions and the
// orders CSV filter by (GraphQL's `OrderFilter`; the CSV fills it from query
// parameters), validated and scoped by `OrderFilter::to_query`.
/// Filters of the orders list; every field narrows the result, all combine.
#[derive(async_graphql::InputObject, Default, Clone, Debug)]
pub struct OrderFilter {
    pub shop_ids: Option<Vec<ID>>,
    pub platforms: Option<Vec<Platform>>,
    pub statuses: Option<Vec<OrderStatus>>,
    pub payment_methods: Option<Vec<PaymentMethod>>,
    /// Placed at or after this instant.
    pub placed_from: Option<DateTime<Utc>>,
    /// Placed before this instant.
    pub placed_to: Option<DateTime<Utc>>,
    pub order_no: Option<String>,
    pub product_id: Option<ID>,
    /// Case-insensitive substring of the buyer's nickname.
    pub buyer_nickname: Option<String>,
    /// GB/T 2260 province codes.
    pub provinces: Option<Vec<String>>,
    pub channels: Option<Vec<Channel>>,
    pub creator_id: Option<ID>,
    pub has_after_sale: Option<bool>,
    /// Orders carrying one of these flags.
    pub seller_flags: Option<Vec<SellerFlag>>,
    /// Orders with (true) or without (false) a seller's note.
    pub has_seller_note: Option<bool>,
}

impl OrderFilter {
    /// Validates the filter and narrows it to the caller's scope.
    pub fn to_query(&self, principal: &Principal) -> AppResult<OrderQuery> {
        let shop_ids = scoped_shops(principal, &self.shop_ids, &self.platforms)?;
        province_codes(&self.provinces)?;
        for (name, text) in [
            ("orderNo", &self.order_no),
            ("buyerNickname", &self.buyer_nickname),
        ] {
            if let Some(text) = text {
                check_plain_text(name, text, 128).map_err(AppError::bad_input)?;
            }
        }
        for (name, at) in [
            ("placedFrom", self.placed_from),
            ("placedTo", self.placed_to),
        ] {
            if let Some(at) = at {
                crate::domain::calendar::check_instant(at)
                    .map_err(|reason| AppError::bad_input(format!("{name}: {reason}")))?;
            }
        }
        if let (Some(from), Some(to)) = (self.placed_from, self.placed_to) {
            if from > to {
                return Err(AppError::bad_input("placedFrom is after placedTo"));
            }
        }
        Ok(OrderQuery {
            shop_ids,
            statuses: spell(&self.statuses, OrderStatus::as_str),
            payment_methods: spell(&self.payment_methods, PaymentMethod::as_str),
            placed_from: self.placed_from,
            placed_to: self.placed_to,
            order_no: self.order_no.clone(),
            product_id: self
                .product_id
                .as_ref()
                .map(|id| parse_id("productId", id))
                .transpose()?,
            buyer_nickname: self.buyer_nickname.clone().filter(|n| !n.is_empty()),
            provinces: self.provinces.clone(),
            channels: spell(&self.channels, Channel::as_str),
            creator_id: self
                .creator_id
                .as_ref()
                .map(|id| parse_id("creatorId", id))
                .transpose()?,
            has_after_sale: self.has_after_sale,
            seller_flags: self
                .seller_flags
                .as_ref()
                .map(|f| f.iter().map(|f| f.as_str().to_string()).collect()),
            has_seller_note: self.has_seller_note,
            abnormal: None,
            ids: None,
        })
    }
}
