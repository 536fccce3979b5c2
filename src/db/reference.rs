//! Shops, provinces, creators and products: the reference data orders point at.

use diesel::prelude::*;

use super::schema::{creators, products, provinces, shops};
use crate::domain::Platform;
use crate::error::AppResult;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = shops)]
pub struct ShopRow {
    pub id: i64,
    pub tenant_id: i64,
    pub platform: Platform,
    pub external_id: String,
    pub name: String,
    pub currency: String,
    pub timezone: String,
    /// Set by every write to the shop's orders; part of aggregate cache keys.
    pub data_version: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = provinces)]
pub struct ProvinceRow {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub region: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = creators)]
pub struct CreatorRow {
    pub id: i64,
    pub platform: Platform,
    pub external_id: String,
    pub handle: String,
    pub display_name: String,
    pub followers: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = products)]
pub struct ProductRow {
    pub id: i64,
    pub shop_id: i64,
    pub external_id: String,
    pub title: String,
    pub category: String,
    pub list_price: i64,
}

pub fn all_provinces(conn: &mut PgConnection) -> AppResult<Vec<ProvinceRow>> {
    Ok(provinces::table
        .select(ProvinceRow::as_select())
        .order(provinces::code)
        .load(conn)?)
}

pub fn creators_by_ids(conn: &mut PgConnection, ids: &[i64]) -> AppResult<Vec<CreatorRow>> {
    Ok(creators::table
        .filter(creators::id.eq_any(ids))
        .select(CreatorRow::as_select())
        .load(conn)?)
}

pub fn products_by_ids(conn: &mut PgConnection, ids: &[i64]) -> AppResult<Vec<ProductRow>> {
    Ok(products::table
        .filter(products::id.eq_any(ids))
        .select(ProductRow::as_select())
        .load(conn)?)
}
