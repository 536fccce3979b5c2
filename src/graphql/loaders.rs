//! Dataloaders for relation fields: each batches the keys of one request into a single
//! `= ANY($1)` query, so a page of orders never costs a query per order.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};

use crate::db::orders::{AfterSaleRow, OrderItemRow, ShipmentRow};
use crate::db::reference::{CreatorRow, ProductRow};
use diesel::PgConnection;

use crate::db::{self, PgPool};
use crate::error::AppResult;

/// One set of loaders per request (their caches must not outlive the request's scope).
pub struct Loaders {
    pub items: DataLoader<ByKey<Vec<OrderItemRow>>>,
    pub after_sales: DataLoader<ByKey<Vec<AfterSaleRow>>>,
    pub shipments: DataLoader<ByKey<ShipmentRow>>,
    pub creators: DataLoader<ByKey<CreatorRow>>,
    pub products: DataLoader<ByKey<ProductRow>>,
}

impl Loaders {
    pub fn new(pool: &PgPool) -> Loaders {
        fn loader<V: Send + Sync + Clone + 'static>(
            pool: &PgPool,
            read: Read<V>,
        ) -> DataLoader<ByKey<V>> {
            let pool = pool.clone();
            DataLoader::new(ByKey { pool, read }, tokio::spawn)
        }
        Loaders {
            items: loader(pool, |c, keys| {
                Ok(group(db::orders::items_of(c, keys)?, |r| r.order_id))
            }),
            after_sales: loader(pool, |c, keys| {
                Ok(group(db::orders::after_sales_of(c, keys)?, |r| r.order_id))
            }),
            shipments: loader(pool, |c, keys| {
                let rows = db::orders::shipments_of(c, keys)?;
                Ok(rows.into_iter().map(|r| (r.order_id, r)).collect())
            }),
            creators: loader(pool, |c, keys| {
                let rows = db::reference::creators_by_ids(c, keys)?;
                Ok(rows.into_iter().map(|r| (r.id, r)).collect())
            }),
            products: loader(pool, |c, keys| {
                let rows = db::reference::products_by_ids(c, keys)?;
                Ok(rows.into_iter().map(|r| (r.id, r)).collect())
            }),
        }
    }
}

/// Rows by key, as one batch of keys reads them.
type Read<V> = fn(&mut PgConnection, &[i64]) -> AppResult<HashMap<i64, V>>;

/// A loader of one relation: its batch of keys read in one query, on a pooled
/// connection off the async workers.
pub struct ByKey<V> {
    pool: PgPool,
    read: Read<V>,
}

impl<V: Send + Sync + Clone + 'static> Loader<i64> for ByKey<V> {
    type Value = V;
    type Error = Arc<async_graphql::Error>;
    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, V>, Self::Error> {
        let (keys, read) = (keys.to_vec(), self.read);
        db::run(&self.pool, move |c| read(c, &keys))
            .await
            .map_err(|e| Arc::new(e.into()))
    }
}

fn group<T>(rows: Vec<T>, key: impl Fn(&T) -> i64) -> HashMap<i64, Vec<T>> {
    let mut map: HashMap<i64, Vec<T>> = HashMap::new();
    for row in rows {
        map.entry(key(&row)).or_default().push(row);
    }
    map
}
