//! The GraphQL schema: one module per domain, merged into one query and one mutation
//! root. Resolvers stay thin: they validate input, check permissions and call `db`.

pub mod accounts;
pub mod analytics;
pub mod daily;
pub mod filters;
pub mod ingest;
pub mod loaders;
pub mod operations;
pub mod orders;
pub mod scalars;
pub mod viewer;

use async_graphql::{Context, EmptySubscription, MergedObject, Schema, SchemaBuilder};

use crate::auth::Principal;
use crate::db::PgPool;
use crate::error::{AppError, AppResult};
use crate::settings::Limits;

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    viewer::ViewerQuery,
    orders::OrdersQuery,
    accounts::AccountsQuery,
    analytics::AnalyticsQuery,
    operations::OperationsQuery,
    daily::DailyQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    ingest::IngestMutation,
    accounts::AccountsMutation,
    operations::OperationsMutation,
);

pub type AppSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// The schema with its limits; the caller adds shared data (`.data(...)`) and builds.
pub fn schema_builder(
    limits: &Limits,
    production: bool,
) -> SchemaBuilder<QueryRoot, MutationRoot, EmptySubscription> {
    let mut builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .limit_recursive_depth(32)
    .limit_directives(20);
    if production {
        builder = builder.disable_introspection();
    }
    builder
}

/// The schema as SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    schema_builder(&Limits::default(), false).finish().sdl()
}

/// Data every resolver can reach.
#[derive(Clone)]
pub struct Shared {
    pub pool: PgPool,
    pub limits: Limits,
    pub provinces: std::sync::Arc<tokio::sync::OnceCell<Vec<crate::db::reference::ProvinceRow>>>,
    pub cache: std::sync::Arc<crate::cache::Cache>,
}

pub(crate) fn principal<'a>(ctx: &Context<'a>) -> AppResult<&'a Principal> {
    ctx.data::<Principal>()
        .map_err(|_| AppError::Unauthenticated("missing or invalid credentials".into()))
}

pub(crate) fn shared<'a>(ctx: &Context<'a>) -> &'a Shared {
    ctx.data_unchecked::<Shared>()
}

pub(crate) fn cache_of<'a>(ctx: &Context<'a>) -> &'a crate::cache::Cache {
    &shared(ctx).cache
}

/// The provinces reference table, read once per process (it only changes by migration).
pub(crate) async fn provinces<'a>(
    ctx: &Context<'a>,
) -> AppResult<&'a [crate::db::reference::ProvinceRow]> {
    let shared = shared(ctx);
    let rows = shared
        .provinces
        .get_or_try_init(|| crate::db::run(&shared.pool, crate::db::reference::all_provinces))
        .await?;
    Ok(rows.as_slice())
}

/// Parses a GraphQL `ID` that must be one of our numeric ids.
pub(crate) fn parse_id(field: &str, id: &async_graphql::ID) -> AppResult<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| AppError::bad_input(format!("{field} is not a valid id: {:?}", id.as_str())))
}
