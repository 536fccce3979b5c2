//! Stock on hand (`products.stock`): setting it, and the products that have it.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Text};

use crate::error::AppResult;

/// What setting one product's stock did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockWrite {
    Updated,
    Unchanged,
    /// No such product in these shops.
    NotFound,
}

/// Sets one product's stock when it belongs to one of `shop_ids`.
pub fn set_stock(
    conn: &mut PgConnection,
    shop_ids: &[i64],
    product_id: i64,
    stock: i32,
) -> AppResult<StockWrite> {
    let changed = diesel::sql_query(
        "UPDATE products SET stock = $1, stock_updated_at = now() \
         WHERE id = $2 AND shop_id = ANY($3) AND stock IS DISTINCT FROM $1",
    )
    .bind::<Integer, _>(stock)
    .bind::<BigInt, _>(product_id)
    .bind::<Array<BigInt>, _>(shop_ids)
    .execute(conn)?;
    if changed == 1 {
        return Ok(StockWrite::Updated);
    }
    use super::schema::products;
    let exists: i64 = products::table
        .filter(products::id.eq(product_id))
        .filter(products::shop_id.eq_any(shop_ids))
        .count()
        .get_result(conn)?;
    Ok(if exists == 1 {
        StockWrite::Unchanged
    } else {
        StockWrite::NotFound
    })
}

#[derive(Debug, Clone, QueryableByName)]
pub struct Stocked {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub shop_id: i64,
    #[diesel(sql_type = Text)]
    pub title: String,
    #[diesel(sql_type = Integer)]
    pub stock: i32,
}

/// The products of these shops whose stock is set.
pub fn stocked(conn: &mut PgConnection, shop_ids: &[i64]) -> AppResult<Vec<Stocked>> {
    Ok(diesel::sql_query(
        "SELECT id, shop_id, title, stock FROM products \
         WHERE shop_id = ANY($1) AND stock IS NOT NULL ORDER BY id",
    )
    .bind::<Array<BigInt>, _>(shop_ids)
    .load(conn)?)
}

/// The shop of a product.
pub fn shop_of_product(conn: &mut PgConnection, product_id: i64) -> AppResult<Option<i64>> {
    use super::schema::products;
    Ok(products::table
        .filter(products::id.eq(product_id))
        .select(products::shop_id)
        .first(conn)
        .optional()?)
}

/// Sets the stock of a shop's product named by its platform id.
pub fn set_stock_by_external(
    conn: &mut PgConnection,
    shop_id: i64,
    external_id: &str,
    stock: i32,
) -> AppResult<StockWrite> {
    use super::schema::products;
    let id: Option<i64> = products::table
        .filter(products::shop_id.eq(shop_id))
        .filter(products::external_id.eq(external_id))
        .select(products::id)
        .first(conn)
        .optional()?;
    match id {
        Some(id) => set_stock(conn, &[shop_id], id, stock),
        None => Ok(StockWrite::NotFound),
    }
}
