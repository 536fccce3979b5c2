//! The GraphQL schema: one module per domain, merged into one query and one mutation
//! root. Resolvers stay thin: they validate input, check permissions and call `db`.

pub mod accounts;
pub mod analytics;
pub mod caller;
pub mod cost;
pub mod daily;
pub mod depth;
pub mod exports;
pub mod ingest;
pub mod inventory;
pub mod live;
pub mod loaders;
pub mod operations;
pub mod orders;
pub mod pii;
pub mod scalars;
pub mod schedules;
pub mod viewer;

use async_graphql::{Context, MergedObject, Schema, SchemaBuilder};

use crate::auth::Principal;
use crate::error::{AppError, AppResult};
use crate::settings::Limits;
use crate::state::Services;

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    viewer::ViewerQuery,
    orders::OrdersQuery,
    accounts::AccountsQuery,
    analytics::AnalyticsQuery,
    operations::OperationsQuery,
    daily::DailyQuery,
    schedules::SchedulesQuery,
    inventory::InventoryQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    ingest::IngestMutation,
    accounts::AccountsMutation,
    operations::OperationsMutation,
    exports::ExportsMutation,
    schedules::SchedulesMutation,
    inventory::InventoryMutation,
);

pub type AppSchema = Schema<QueryRoot, MutationRoot, live::SubscriptionRoot>;

/// The schema with its limits; the caller adds shared data (`.data(...)`) and builds.
pub fn schema_builder(
    limits: &Limits,
    production: bool,
) -> SchemaBuilder<QueryRoot, MutationRoot, live::SubscriptionRoot> {
    let mut builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        live::SubscriptionRoot,
    )
    // Depth counts data fields only (introspection is left out: `depth::DepthLimit`).
    .extension(depth::DepthLimit(limits.max_depth))
    .limit_complexity(limits.max_complexity)
    .limit_recursive_depth(32)
    .limit_directives(20)
    .extension(caller::LoadCaller);
    if production {
        // Neither the schema nor "Did you mean …" hints for callers to discover it by.
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder
}

/// The schema as SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    schema_builder(&Limits::default(), false).finish().sdl()
}

pub(crate) fn principal<'a>(ctx: &Context<'a>) -> AppResult<&'a Principal> {
    ctx.data_opt::<caller::CallerSlot>()
        .and_then(|slot| slot.get())
        .ok_or_else(|| AppError::Unauthenticated("missing or invalid credentials".into()))
}

/// The application's state, which the schema carries for every resolver.
pub(crate) fn shared<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<std::sync::Arc<Services>>()
}

/// Whether the request asked (and may ask) to bypass the aggregate cache.
pub(crate) fn bypass(ctx: &Context<'_>) -> bool {
    ctx.data_opt::<crate::cache::Bypass>().is_some()
}

/// The reports service's view of a request: the state, the caller, the cache bypass.
pub(crate) fn reader<'a>(ctx: &Context<'a>) -> AppResult<crate::reports::Reader<'a>> {
    Ok(crate::reports::Reader {
        services: shared(ctx),
        principal: principal(ctx)?,
        bypass: bypass(ctx),
    })
}

/// The provinces reference table, read once per process.
pub(crate) async fn provinces<'a>(
    ctx: &Context<'a>,
) -> AppResult<&'a [crate::db::reference::ProvinceRow]> {
    shared(ctx).provinces().await
}

pub(crate) use crate::filters::parse_id;

/// What a request's operation is, for the response cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    /// A query of aggregate reports only (`kpis`, `trend`, `breakdown`): its answer
    /// changes only with the data versions, so the whole response may be cached.
    Cacheable,
    /// A mutation: after it the tenant's versions are published.
    Mutation,
    /// Anything else, including documents that do not parse (execution reports those).
    Other,
}

/// Root fields whose answers depend only on the data versions and the caller's scope.
/// (`dailyReport` is not one: its abnormal-order counts move with the clock.)
const CACHEABLE_FIELDS: &[&str] = &["kpis", "trend", "breakdown", "__typename"];

/// The operation of `document` a request runs, with its name: the one named
/// `operation_name`, or the document's only operation; `None` when there is no such one.
pub fn selected_operation<'d>(
    document: &'d async_graphql::parser::types::ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<(
    Option<&'d str>,
    &'d async_graphql::Positioned<async_graphql::parser::types::OperationDefinition>,
)> {
    use async_graphql::parser::types::DocumentOperations;
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some((None, op)),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .get_key_value(name)
            .map(|(name, op)| (Some(name.as_str()), op)),
        // One named operation runs without being named.
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops
            .iter()
            .next()
            .map(|(name, op)| (Some(name.as_str()), op)),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Classifies the operation a request will run.
pub fn classify(request: &async_graphql::Request) -> OperationKind {
    classify_named(request).0
}

/// Classifies the operation a request will run, with its name: the request's
/// `operationName`, or the name of the document's one operation.
pub fn classify_named(request: &async_graphql::Request) -> (OperationKind, Option<String>) {
    use async_graphql::parser::types::{OperationType, Selection};
    let named = request.operation_name.clone();
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return (OperationKind::Other, named);
    };
    let Some((name, operation)) = selected_operation(&document, request.operation_name.as_deref())
    else {
        return (OperationKind::Other, named);
    };
    let name = name.map(str::to_string);
    let kind = match operation.node.ty {
        OperationType::Mutation => OperationKind::Mutation,
        OperationType::Subscription => OperationKind::Other,
        OperationType::Query => {
            let only_reports = operation.node.selection_set.node.items.iter().all(|s| {
                matches!(&s.node, Selection::Field(f)
                    if CACHEABLE_FIELDS.contains(&f.node.name.node.as_str()))
            });
            if only_reports {
                OperationKind::Cacheable
            } else {
                OperationKind::Other
            }
        }
    };
    (kind, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(query: &str, name: Option<&str>) -> OperationKind {
        let mut request = async_graphql::Request::new(query);
        if let Some(name) = name {
            request = request.operation_name(name);
        }
        classify(&request)
    }

    #[test]
    fn only_report_queries_are_cacheable() {
        use OperationKind::*;
        assert_eq!(kind("{ kpis(range: $r) { orders } }", None), Cacheable);
        assert_eq!(
            kind("query Q { a: trend { x } b: breakdown { y } }", None),
            Cacheable
        );
        assert_eq!(kind("{ kpis { x } me { id } }", None), Other);
        assert_eq!(kind("{ dailyReport { x } }", None), Other);
        assert_eq!(
            kind("{ ...F } fragment F on Query { kpis { x } }", None),
            Other
        );
        assert_eq!(kind("mutation { ingestOrders { x } }", None), Mutation);
        assert_eq!(
            kind(
                "query A { kpis { x } } mutation B { shipOrder { x } }",
                Some("B")
            ),
            Mutation
        );
        assert_eq!(
            kind(
                "query A { kpis { x } } mutation B { shipOrder { x } }",
                None
            ),
            Other
        );
        assert_eq!(kind("{ kpis {", None), Other);
    }
}
