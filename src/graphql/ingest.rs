//! `ingestOrders`: idempotent upsert of platform orders with a per-item report.

use std::collections::HashSet;

use async_graphql::{Context, Object};

use super::{principal, provinces, shared};
use crate::db;
use crate::domain::Permission;
use crate::error::AppError;
use crate::ingest::{dedupe, validate, IngestOutcome, IngestReport, IngestResult, OrderInput};

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
        let p = principal(ctx)?;
        p.require(Permission::OrdersWrite)?;
        let max = shared(ctx).settings.limits.max_ingest_batch;
        if orders.len() > max {
            return Err(AppError::bad_input(format!(
                "ingestOrders takes at most {max} orders per call, got {}",
                orders.len()
            ))
            .into());
        }
        let codes: HashSet<String> = provinces(ctx)
            .await?
            .iter()
            .map(|p| p.code.clone())
            .collect();
        let mut valid = Vec::with_capacity(orders.len());
        let mut results = Vec::new();
        for (index, input) in orders.into_iter().enumerate() {
            let (shop_id, order_no) = (input.shop_id.clone(), input.order_no.clone());
            match validate(index as i32, input, p, &codes) {
                Ok(v) => valid.push(v),
                Err(reason) => results.push(IngestResult {
                    index: index as i32,
                    shop_id,
                    order_no,
                    outcome: IngestOutcome::Rejected,
                    order_id: None,
                    reason: Some(reason),
                }),
            }
        }
        let (batch, superseded) = dedupe(valid);
        results.extend(superseded);
        let actor = p.actor();
        let written = db::run(&shared(ctx).pool, move |c| {
            db::ingest::apply(c, &batch, actor)
        })
        .await?;
        results.extend(written.into_iter().map(IngestResult::from));
        Ok(IngestReport::from_results(results))
    }
}
