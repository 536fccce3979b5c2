//! Who calls: the account behind a request's verified token, loaded from PostgreSQL only
//! once the document has been parsed and validated (depth, complexity, types), so a
//! request refused for its shape costs no database round trip.

use std::sync::{Arc, OnceLock};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{Pos, Response};

use crate::auth::{Principal, TokenSubject};
use crate::error::AppError;

/// Where the request's principal is, once loaded; the transport keeps a clone to read
/// it after execution (audit, response cache).
#[derive(Clone, Default)]
pub struct CallerSlot(Arc<OnceLock<Principal>>);

impl CallerSlot {
    /// A slot holding an already loaded principal.
    pub fn loaded(principal: Principal) -> CallerSlot {
        let slot = CallerSlot::default();
        let _ = slot.0.set(principal);
        slot
    }

    pub fn get(&self) -> Option<&Principal> {
        self.0.get()
    }
}

/// A verified token whose account is loaded after validation.
#[derive(Clone, Copy, Debug)]
pub struct PendingCaller {
    pub subject: TokenSubject,
    /// The request asked to skip the caches; in production that needs `CACHE_BYPASS`.
    pub asks_bypass: bool,
    pub production: bool,
}

/// The schema extension that loads a [`PendingCaller`] into the request's
/// [`CallerSlot`] between validation and execution.
pub struct LoadCaller;

impl ExtensionFactory for LoadCaller {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LoadCallerExtension)
    }
}

struct LoadCallerExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for LoadCallerExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let (Some(slot), Some(pending)) = (
            ctx.data_opt::<CallerSlot>(),
            ctx.data_opt::<PendingCaller>(),
        ) {
            if slot.get().is_none() {
                let shared = ctx.data_unchecked::<std::sync::Arc<crate::state::Services>>();
                match load(&shared.pool, *pending).await {
                    Ok(principal) => {
                        let _ = slot.0.set(principal);
                    }
                    Err(e) => {
                        let err: async_graphql::Error = e.into();
                        return Response::from_errors(vec![err.into_server_error(Pos::default())]);
                    }
                }
            }
        }
        next.run(ctx, operation_name).await
    }
}

async fn load(pool: &crate::db::PgPool, pending: PendingCaller) -> Result<Principal, AppError> {
    let principal = crate::db::accounts::load(pool, pending.subject).await?;
    if pending.asks_bypass {
        principal.require_cache_bypass(pending.production)?;
    }
    Ok(principal)
}
