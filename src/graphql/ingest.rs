//! `ingestOrders`: idempotent upsert of platform orders with a per-item report, by the
//! ingest service (`crate::ingest::ingest_orders`).

use async_graphql::{Context, Object};

use super::{principal, shared};
use crate::ingest::{IngestReport, OrderInput};

#[derive(Default)]
pub struct IngestMutation;

#[Object]
impl IngestMutation {
    /// Upserts up to 1000 orders by shop and `orderNo`. Replaying a batch changes
    /// nothing; an older `sourceUpdatedAt` than the stored one is `STALE`; invalid
    /// orders are `REJECTED` with a reason and the rest of the batch still applies.
    async fn ingest_orders(
        &self,
        ctx: &Context<'_>,
        orders: Vec<OrderInput>,
    ) -> async_graphql::Result<IngestReport> {
        Ok(crate::ingest::ingest_orders(shared(ctx), principal(ctx)?, orders).await?)
    }
}
