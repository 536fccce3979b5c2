//! Dataloaders for relation fields: each batches the keys of one request into a single
//! `= ANY($1)` query, so a page of orders never costs a query per order.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};

use crate::db::orders::{AfterSaleRow, OrderItemRow, ShipmentRow};
use crate::db::reference::{CreatorRow, ProductRow};
use crate::db::{self, PgPool};

/// One set of loaders per request (their caches must not outlive the request's scope).
pub struct Loaders {
    pub items: DataLoader<ItemsLoader>,
    pub after_sales: DataLoader<AfterSalesLoader>,
    pub shipments: DataLoader<ShipmentsLoader>,
    pub creators: DataLoader<CreatorsLoader>,
    pub products: DataLoader<ProductsLoader>,
}

impl Loaders {
    pub fn new(pool: &PgPool) -> Loaders {
        Loaders {
            items: DataLoader::new(ItemsLoader(pool.clone()), tokio::spawn),
            after_sales: DataLoader::new(AfterSalesLoader(pool.clone()), tokio::spawn),
            shipments: DataLoader::new(ShipmentsLoader(pool.clone()), tokio::spawn),
            creators: DataLoader::new(CreatorsLoader(pool.clone()), tokio::spawn),
            products: DataLoader::new(ProductsLoader(pool.clone()), tokio::spawn),
        }
    }
}

type LoadResult<V> = Result<HashMap<i64, V>, Arc<async_graphql::Error>>;

fn to_loader_error(err: crate::AppError) -> Arc<async_graphql::Error> {
    Arc::new(err.into())
}

fn group<T>(rows: Vec<T>, key: impl Fn(&T) -> i64) -> HashMap<i64, Vec<T>> {
    let mut map: HashMap<i64, Vec<T>> = HashMap::new();
    for row in rows {
        map.entry(key(&row)).or_default().push(row);
    }
    map
}

pub struct ItemsLoader(PgPool);
impl Loader<i64> for ItemsLoader {
    type Value = Vec<OrderItemRow>;
    type Error = Arc<async_graphql::Error>;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        let keys = keys.to_vec();
        let rows = db::run(&self.0, move |c| db::orders::items_of(c, &keys))
            .await
            .map_err(to_loader_error)?;
        Ok(group(rows, |r| r.order_id))
    }
}

pub struct AfterSalesLoader(PgPool);
impl Loader<i64> for AfterSalesLoader {
    type Value = Vec<AfterSaleRow>;
    type Error = Arc<async_graphql::Error>;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        let keys = keys.to_vec();
        let rows = db::run(&self.0, move |c| db::orders::after_sales_of(c, &keys))
            .await
            .map_err(to_loader_error)?;
        Ok(group(rows, |r| r.order_id))
    }
}

pub struct ShipmentsLoader(PgPool);
impl Loader<i64> for ShipmentsLoader {
    type Value = ShipmentRow;
    type Error = Arc<async_graphql::Error>;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        let keys = keys.to_vec();
        let rows = db::run(&self.0, move |c| db::orders::shipments_of(c, &keys))
            .await
            .map_err(to_loader_error)?;
        Ok(rows.into_iter().map(|r| (r.order_id, r)).collect())
    }
}

pub struct CreatorsLoader(PgPool);
impl Loader<i64> for CreatorsLoader {
    type Value = CreatorRow;
    type Error = Arc<async_graphql::Error>;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        let keys = keys.to_vec();
        let rows = db::run(&self.0, move |c| db::reference::creators_by_ids(c, &keys))
            .await
            .map_err(to_loader_error)?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

pub struct ProductsLoader(PgPool);
impl Loader<i64> for ProductsLoader {
    type Value = ProductRow;
    type Error = Arc<async_graphql::Error>;
    async fn load(&self, keys: &[i64]) -> LoadResult<Self::Value> {
        let keys = keys.to_vec();
        let rows = db::run(&self.0, move |c| db::reference::products_by_ids(c, &keys))
            .await
            .map_err(to_loader_error)?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}
