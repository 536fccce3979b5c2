//! The application's state: what every request reads, through either transport. The
//! HTTP handlers hold it with the schema (`http::AppState` dereferences to it), and the
//! schema carries the same `Arc` for the resolvers (`graphql::shared`).

use std::sync::Arc;

use crate::analytics::live::Engine;
use crate::auth::TokenVerifier;
use crate::cache::Cache;
use crate::db::reference::ProvinceRow;
use crate::db::{PgPool, TenantShares};
use crate::metrics::Metrics;
use crate::settings::Settings;

pub struct Services {
    pub settings: Settings,
    pub pool: PgPool,
    pub cache: Arc<Cache>,
    /// The analytic store every report is computed from.
    pub engine: Arc<Engine>,
    pub verifier: Arc<TokenVerifier>,
    pub metrics: Arc<Metrics>,
    /// Each tenant's share of the pool (`DB_TENANT_CONCURRENCY`).
    pub tenant_shares: TenantShares,
    /// The province table, read once.
    pub provinces: Arc<tokio::sync::OnceCell<Vec<ProvinceRow>>>,
}

impl Services {
    /// The provinces reference table, read once per process (it only changes by
    /// migration).
    pub async fn provinces(&self) -> crate::error::AppResult<&[ProvinceRow]> {
        let rows = self
            .provinces
            .get_or_try_init(|| crate::db::run(&self.pool, crate::db::reference::all_provinces))
            .await?;
        Ok(rows.as_slice())
    }
}
