//! HTTP endpoints: `/graphql` (POST, and GraphiQL on GET outside production),
//! `/healthz`, `/readyz` and `/metrics`; CSV exports live in [`export`].

pub mod export;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use async_graphql::http::GraphiQLSource;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::{bearer_token, Principal, TokenSubject, TokenVerifier};
use crate::db::{self, PgPool};
use crate::error::AppError;
use crate::graphql::OperationKind;
use crate::graphql::{loaders::Loaders, AppSchema};
use crate::metrics::Metrics;
use crate::settings::Settings;

/// Orders whose buyer PII one request read unmasked, for the audit log.
#[derive(Default)]
pub struct PiiReads {
    orders:
        std::sync::Mutex<std::collections::BTreeMap<i64, std::collections::BTreeSet<&'static str>>>,
}

impl PiiReads {
    pub fn record(&self, order_id: i64, field: &'static str) {
        let mut orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        orders.entry(order_id).or_default().insert(field);
    }

    /// The audit details, or `None` when nothing was read.
    fn take_details(&self) -> Option<serde_json::Value> {
        let orders = std::mem::take(&mut *self.orders.lock().unwrap_or_else(|e| e.into_inner()));
        if orders.is_empty() {
            return None;
        }
        let entries: Vec<serde_json::Value> = orders
            .into_iter()
            .map(|(id, fields)| json!({ "orderId": id, "fields": fields }))
            .collect();
        Some(json!({ "orders": entries }))
    }
}

/// What every handler shares.
pub struct AppState {
    pub settings: Settings,
    pub pool: PgPool,
    pub schema: AppSchema,
    pub verifier: Arc<TokenVerifier>,
    pub metrics: Arc<Metrics>,
    pub cache: Arc<crate::cache::Cache>,
}

fn status_of(err: &AppError) -> StatusCode {
    match err {
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::BadUserInput(_) | AppError::NotFound(_) => StatusCode::BAD_REQUEST,
        AppError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A GraphQL-shaped error body for failures before (or instead of) execution.
pub fn error_response(metrics: &Metrics, err: AppError) -> HttpResponse {
    metrics.observe_graphql_error(err.code());
    HttpResponse::build(status_of(&err)).json(json!({
        "data": null,
        "errors": [{ "message": err.public_message(), "extensions": { "code": err.code() } }]
    }))
}

/// Reads the body up to the configured limit; a larger one is refused without reading
/// the rest.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, AppError> {
    use futures_util::StreamExt;
    let too_large =
        || AppError::BadUserInput(format!("the request body is larger than {limit} bytes"));
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            AppError::BadUserInput(format!("the request body could not be read: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The account a request's bearer token names, verified but not yet loaded.
fn token_subject(state: &AppState, req: &HttpRequest) -> Result<TokenSubject, AppError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    bearer_token(header).and_then(|t| state.verifier.verify(t))
}

/// Verifies the bearer token and loads the account it names (permissions and shop
/// scope come from the database on every request that is not a response-cache hit).
pub async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Principal, AppError> {
    load_principal(state, token_subject(state, req)?).await
}

async fn load_principal(state: &AppState, subject: TokenSubject) -> Result<Principal, AppError> {
    db::run(&state.pool, move |c| {
        db::accounts::load_principal(c, subject)
    })
    .await
}

/// Whether the request asks to skip the caches (`X-Cache-Bypass: 1`).
fn bypass_requested(req: &HttpRequest) -> bool {
    req.headers()
        .get("x-cache-bypass")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v.trim(), "1" | "true"))
}

/// Whether the request skips the aggregate cache; asking needs `CACHE_BYPASS` in
/// production.
fn cache_bypass(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<bool, AppError> {
    let asked = bypass_requested(req);
    if asked
        && state.settings.is_production()
        && !principal.has(crate::domain::Permission::CacheBypass)
    {
        return Err(AppError::Forbidden(
            "bypassing the cache needs the CACHE_BYPASS permission".into(),
        ));
    }
    Ok(asked)
}

/// After a mutation: publishes the tenant's versions, as committed now, to the response
/// cache before the answer leaves, so that no process serves a response from before it.
async fn publish_versions(state: &AppState, tenant_id: i64) {
    let versions = db::run(&state.pool, move |c| {
        db::accounts::tenant_versions(c, tenant_id)
    })
    .await;
    match versions {
        Ok(versions) => {
            state.cache.publish_versions(&versions).await;
        }
        Err(e) => {
            tracing::warn!(error = ?e, "tenant versions not read after a mutation");
            state.cache.distrust(tenant_id);
        }
    }
}

/// Executes one GraphQL request for `principal` under the request timeout. Unmasked
/// PII reads are audit-logged before the data leaves; if that fails the data does not
/// leave.
pub async fn execute(
    state: &AppState,
    req: &HttpRequest,
    principal: Principal,
    request: async_graphql::Request,
) -> Result<async_graphql::Response, AppError> {
    let request = match cache_bypass(state, req, &principal)? {
        true => request.data(crate::cache::Bypass),
        false => request,
    };
    let actor = principal.actor();
    let pii_reads = Arc::new(PiiReads::default());
    let request = request
        .data(principal)
        .data(Loaders::new(&state.pool))
        .data(pii_reads.clone());
    let response = tokio::time::timeout(
        state.settings.request_timeout,
        state.schema.execute(request),
    )
    .await
    .map_err(|_| AppError::Timeout)?;
    if let Some(details) = pii_reads.take_details() {
        db::run(&state.pool, move |c| {
            crate::db::audit::record(c, actor, "readPii", "orders", details)
        })
        .await?;
    }
    Ok(response)
}

pub async fn graphql(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let limit = state.settings.limits.max_body_bytes;
    if declared.is_some_and(|len| len > limit) {
        let err = AppError::BadUserInput(format!("the request body is larger than {limit} bytes"));
        return error_response(&state.metrics, err);
    }
    let body = match read_body(payload, limit).await {
        Ok(b) => b,
        Err(e) => return error_response(&state.metrics, e),
    };
    // The response cache: the same request bytes from the same account, at the
    // versions Redis holds for the tenant and the account now, get the stored body
    // without touching PostgreSQL.
    let digest: [u8; 32] = Sha256::digest(&body).into();
    let bypass = bypass_requested(&req);
    // Verified once: for the response cache and, on a miss, to load the account.
    let subject = token_subject(&state, &req);
    if !bypass {
        if let Ok(subject) = subject {
            if let Some(cached) = state.cache.cached_response(subject, &digest).await {
                return HttpResponse::Ok()
                    .content_type("application/json")
                    .body(cached);
            }
        }
    }
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let msg = if body.first() == Some(&b'[') {
                "batched requests are not supported: send one operation per request".to_string()
            } else {
                format!("the body is not a GraphQL request: {e}")
            };
            return error_response(&state.metrics, AppError::BadUserInput(msg));
        }
    };
    let kind = crate::graphql::classify(&request);
    let loaded = std::time::Instant::now();
    let principal = match subject {
        Ok(subject) => load_principal(&state, subject).await,
        Err(e) => Err(e),
    };
    let principal = match principal {
        Ok(p) => p,
        Err(e) => return error_response(&state.metrics, e),
    };
    let tenant_id = principal.tenant_id;
    let storable = (kind == OperationKind::Cacheable && !bypass)
        .then_some((principal.account_id, principal.stamp));
    let response = execute(&state, &req, principal, request).await;
    if kind == OperationKind::Mutation {
        publish_versions(&state, tenant_id).await;
    }
    let mut response = match response {
        Ok(r) => r,
        Err(e) => return error_response(&state.metrics, e),
    };
    // Errors raised by async-graphql itself (parsing, validation, limits, input
    // coercion) carry no code: they are all the client's to fix.
    for error in &mut response.errors {
        let ext = error.extensions.get_or_insert_with(Default::default);
        let code = match ext.get("code") {
            Some(async_graphql::Value::String(code)) => code.clone(),
            _ => {
                ext.set("code", "BAD_USER_INPUT");
                "BAD_USER_INPUT".to_string()
            }
        };
        state.metrics.observe_graphql_error(&code);
    }
    let bytes = match serde_json::to_vec(&response) {
        Ok(b) => b,
        Err(e) => return error_response(&state.metrics, AppError::internal(e)),
    };
    if let Some((account_id, stamp)) = storable {
        if response.errors.is_empty() {
            state
                .cache
                .store_response(tenant_id, account_id, stamp, loaded, &digest, &bytes)
                .await;
        }
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(bytes)
}

pub async fn graphiql() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(GraphiQLSource::build().endpoint("/graphql").finish())
}

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when PostgreSQL answers; Redis is reported, and its absence only degrades.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let postgres = db::run(&state.pool, |c| {
        use diesel::connection::SimpleConnection;
        c.batch_execute("SELECT 1").map_err(AppError::from)
    })
    .await;
    // Through the cache's own connection, timeout and breaker: what requests see.
    let redis = state.cache.ping().await;
    let body = json!({
        "status": if postgres.is_ok() { "ready" } else { "unavailable" },
        "postgres": if postgres.is_ok() { "up" } else { "down" },
        "redis": if redis { "up" } else { "degraded" },
        "cacheBreaker": state.cache.breaker_state().as_str(),
    });
    if postgres.is_ok() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.state();
    let extra = format!(
        "# HELP orderscope_db_pool_connections Connections held by the database pool.\n\
         # TYPE orderscope_db_pool_connections gauge\n\
         orderscope_db_pool_connections{{state=\"idle\"}} {}\n\
         orderscope_db_pool_connections{{state=\"busy\"}} {}\n",
        pool.idle_connections,
        pool.connections - pool.idle_connections
    ) + &state.cache.render_metrics();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(&extra))
}
