//! HTTP endpoints: `/graphql` (POST, and GraphiQL on GET outside production),
//! `/healthz`, `/readyz` and `/metrics`; CSV exports live in [`export`].

pub mod access;
pub mod cors;
pub mod dashboard;
pub mod export;
pub mod import;
pub mod nesting;
pub mod ws;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::{bearer_token, Principal, TokenSubject, Verified};
use crate::db;
use crate::error::AppError;
use crate::graphql::caller::{CallerSlot, PendingCaller};
use crate::graphql::pii::PiiReads;
use crate::graphql::OperationKind;
use crate::graphql::{loaders::Loaders, AppSchema};
use crate::metrics::Metrics;
use crate::state::Services;

/// What every handler shares: the application's state and the schema (which carries
/// the same state for the resolvers).
pub struct AppState {
    pub services: Arc<Services>,
    pub schema: AppSchema,
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
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
    // No `data` entry: the request never executed (GraphQL spec, "Response").
    HttpResponse::build(status_of(&err)).json(json!({
        "errors": [{ "message": err.public_message(), "extensions": { "code": err.code() } }]
    }))
}

/// Why a body was not read.
enum BodyError {
    TooLarge,
    Unreadable(String),
}

/// Reads the body up to the configured limit; a larger one is refused without reading
/// the rest.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, BodyError> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Unreadable(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// 413 with a GraphQL-shaped body: the client must send less.
pub(crate) fn too_large(metrics: &Metrics, limit: usize) -> HttpResponse {
    let err = AppError::BadUserInput(format!("the request body is larger than {limit} bytes"));
    let mut response = error_response(metrics, err);
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    response
}

/// Error messages longer than this are cut: a parse error quotes the document around
/// the fault, and a huge document should not come back doubled.
const MAX_ERROR_MESSAGE: usize = 300;

fn shorten(message: &mut String) {
    if message.len() > MAX_ERROR_MESSAGE {
        let mut end = MAX_ERROR_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
}

/// The account a request's bearer token names, verified but not yet loaded (an OIDC
/// token's identity is mapped to its linked account here).
async fn token_subject(state: &AppState, req: &HttpRequest) -> Result<TokenSubject, AppError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    subject_of_token(state, bearer_token(header)?).await
}

/// The account a token names: its own for orderscope tokens, the linked one for an
/// OIDC provider's (HTTP requests and WebSocket `connection_init` alike).
pub(crate) async fn subject_of_token(
    state: &AppState,
    token: &str,
) -> Result<TokenSubject, AppError> {
    match state.verifier.verify(token).await? {
        Verified::Account(subject) => Ok(subject),
        Verified::External(identity) => {
            db::run(&state.pool, move |c| {
                db::accounts::external_subject(c, &identity)
            })
            .await
        }
    }
}

/// Verifies the bearer token and loads the account it names (permissions and shop
/// scope come from the database on every request that is not a response-cache hit).
pub async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Principal, AppError> {
    db::accounts::load(&state.pool, token_subject(state, req).await?).await
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
pub(crate) fn cache_bypass(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<bool, AppError> {
    let asked = bypass_requested(req);
    if asked {
        principal.require_cache_bypass(state.settings.is_production())?;
    }
    Ok(asked)
}

/// Who a request runs as: an account already loaded, or a verified token whose account
/// is loaded after the document has passed validation.
pub enum Caller {
    Loaded(Principal),
    Pending(TokenSubject),
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

/// Executes one GraphQL request for `caller` under the request timeout and its
/// database budget. Unmasked PII reads are audit-logged before the data leaves; if that
/// fails the data does not leave. Returns the response and the principal it ran as
/// (none when loading it failed or the document was refused first).
pub async fn execute(
    state: &AppState,
    req: &HttpRequest,
    caller: Caller,
    request: async_graphql::Request,
) -> Result<(async_graphql::Response, Option<Principal>), AppError> {
    let (slot, tenant_id, request) = match caller {
        Caller::Loaded(principal) => {
            let request = match cache_bypass(state, req, &principal)? {
                true => request.data(crate::cache::Bypass),
                false => request,
            };
            let tenant_id = principal.tenant_id;
            (CallerSlot::loaded(principal), tenant_id, request)
        }
        Caller::Pending(subject) => {
            let asks_bypass = bypass_requested(req);
            let request = match asks_bypass {
                true => request.data(crate::cache::Bypass),
                false => request,
            };
            let pending = PendingCaller {
                subject,
                asks_bypass,
                production: state.settings.is_production(),
            };
            (
                CallerSlot::default(),
                subject.tenant_id,
                request.data(pending),
            )
        }
    };
    let pii_reads = Arc::new(PiiReads::default());
    let base = state.settings.public_url.clone().unwrap_or_else(|| {
        let info = req.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    });
    let request = request
        .data(crate::graphql::exports::PublicBase(base))
        .data(slot.clone())
        .data(Loaders::new(&state.pool))
        .data(pii_reads.clone());
    let response = within_budget(state, tenant_id, async {
        Ok(state.schema.execute(request).await)
    })
    .await?;
    let principal = slot.get().cloned();
    if let (Some(details), Some(p)) = (pii_reads.take_details(), &principal) {
        let actor = p.actor();
        db::audit::log(&state.pool, actor, "readPii", "orders".into(), details).await?;
    }
    Ok((response, principal))
}

/// Runs a request's work within its time and its tenant's share of the pool. The budget
/// stops the request's database work at the deadline too: nothing queued starts after
/// it, and running statements end by their statement_timeout.
pub(crate) async fn within_budget<T>(
    state: &AppState,
    tenant_id: i64,
    work: impl std::future::Future<Output = Result<T, AppError>>,
) -> Result<T, AppError> {
    let budget = db::RequestBudget::new(
        state.settings.request_timeout,
        state.settings.db_per_request,
        tenant_id,
        &state.tenant_shares,
    );
    tokio::time::timeout(state.settings.request_timeout, budget.scope(work))
        .await
        .map_err(|_| AppError::Timeout)?
}

/// The error a response carries when it failed before any resolver ran because the
/// caller could not be loaded (revoked token, disabled account, database away): the
/// same status as any other authentication failure.
fn caller_error(response: &async_graphql::Response) -> Option<AppError> {
    let error = response.errors.first()?;
    let code = match error.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => code.clone(),
        _ => return None,
    };
    let message = error.message.clone();
    match code.as_str() {
        "UNAUTHENTICATED" => Some(AppError::Unauthenticated(message)),
        "FORBIDDEN" => Some(AppError::Forbidden(message)),
        "UNAVAILABLE" => Some(AppError::Unavailable(message)),
        "TIMEOUT" => Some(AppError::Timeout),
        _ => None,
    }
}

/// No data, and every error a TIMEOUT.
fn timed_out(response: &async_graphql::Response) -> bool {
    matches!(response.data, async_graphql::Value::Null)
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| {
            matches!(
                e.extensions.as_ref().and_then(|x| x.get("code")),
                Some(async_graphql::Value::String(code)) if code == "TIMEOUT"
            )
        })
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
        return too_large(&state.metrics, limit);
    }
    let body = match read_body(payload, limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(&state.metrics, limit),
        Err(BodyError::Unreadable(e)) => {
            let err = AppError::BadUserInput(format!("the request body could not be read: {e}"));
            return error_response(&state.metrics, err);
        }
    };
    let digest: [u8; 32] = Sha256::digest(&body).into();
    let front = match front(&state, &req, &digest).await {
        Ok(hit) => return hit,
        Err(front) => front,
    };
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
    let request = match persisted(&state, request).await {
        Ok(r) => r,
        Err(response) => return *response,
    };
    run_graphql(&state, &req, request, front, false).await
}

/// Apollo's automatic persisted queries: a request may carry
/// `extensions.persistedQuery = {version: 1, sha256Hash}` instead of its query. An
/// unknown hash is answered `PERSISTED_QUERY_NOT_FOUND` (Apollo then retries with the
/// query and the hash, which registers it in Redis for every node); a query whose hash
/// differs is refused. Without Redis every hash is unknown and clients send the text.
async fn persisted(
    state: &AppState,
    mut request: async_graphql::Request,
) -> Result<async_graphql::Request, Box<HttpResponse>> {
    let Some(ext) = request.extensions.get("persistedQuery") else {
        return Ok(request);
    };
    let ext = ext.clone().into_json().unwrap_or_default();
    let refuse = |message: &str| {
        Err(Box::new(error_response(
            &state.metrics,
            AppError::bad_input(message),
        )))
    };
    if ext["version"].as_i64() != Some(1) {
        return refuse("persistedQuery.version must be 1");
    }
    let Some(hash) = ext["sha256Hash"]
        .as_str()
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
    else {
        return refuse("persistedQuery.sha256Hash must be 64 hexadecimal digits");
    };
    if request.query.trim().is_empty() {
        match state.cache.persisted_query(&hash).await {
            Some(query) => {
                request.query = query;
                return Ok(request);
            }
            None => {
                state
                    .metrics
                    .observe_graphql_error("PERSISTED_QUERY_NOT_FOUND");
                // Apollo's link recognises the message as well as the code.
                return Err(Box::new(HttpResponse::Ok().json(json!({
                    "errors": [{
                        "message": "PersistedQueryNotFound",
                        "extensions": { "code": "PERSISTED_QUERY_NOT_FOUND" }
                    }]
                }))));
            }
        }
    }
    if crate::cache::hex(&Sha256::digest(request.query.as_bytes())) != hash {
        return refuse("persistedQuery.sha256Hash is not the SHA-256 of the query");
    }
    state
        .cache
        .store_persisted_query(&hash, &request.query)
        .await;
    Ok(request)
}

/// `GET /graphql?query=…&variables=…&operationName=…`: queries only (the
/// GraphQL-over-HTTP spec forbids mutations over GET: 405). Without a `query` parameter,
/// a browser outside production gets GraphiQL.
pub async fn graphql_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let params = match web::Query::<Vec<(String, String)>>::from_query(req.query_string()) {
        Ok(p) => p.into_inner(),
        Err(e) => {
            let err = AppError::bad_input(format!("the query string is malformed: {e}"));
            return error_response(&state.metrics, err);
        }
    };
    let one = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let extensions = match one("extensions").filter(|v| !v.is_empty()) {
        None => None,
        Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => Some(map),
            _ => {
                let err = AppError::bad_input("extensions must be a JSON object");
                return error_response(&state.metrics, err);
            }
        },
    };
    let query = match (one("query"), &extensions) {
        (Some(query), _) => Some(query),
        // A persisted query's hash stands for the text.
        (None, Some(ext)) if ext.contains_key("persistedQuery") => Some(String::new()),
        (None, _) => None,
    };
    let Some(query) = query else {
        if !state.settings.is_production() {
            return graphiql().await;
        }
        let err = AppError::bad_input("GET /graphql needs a query parameter");
        return error_response(&state.metrics, err);
    };
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = one("operationName").filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    if let Some(variables) = one("variables").filter(|v| !v.is_empty()) {
        match serde_json::from_str::<serde_json::Value>(&variables) {
            Ok(v @ serde_json::Value::Object(_)) => {
                request = request.variables(async_graphql::Variables::from_json(v));
            }
            _ => {
                let err = AppError::bad_input("variables must be a JSON object");
                return error_response(&state.metrics, err);
            }
        }
    }
    for (key, value) in extensions.into_iter().flatten() {
        if let Ok(value) = async_graphql::Value::from_json(value) {
            request.extensions.insert(key, value);
        }
    }
    let request = match persisted(&state, request).await {
        Ok(r) => r,
        Err(response) => return *response,
    };
    // The response cache keys GET requests by their query string, apart from bodies.
    let mut hasher = Sha256::new();
    hasher.update(b"GET ");
    hasher.update(req.query_string().as_bytes());
    let digest: [u8; 32] = hasher.finalize().into();
    let front = match front(&state, &req, &digest).await {
        Ok(hit) => return hit,
        Err(front) => front,
    };
    run_graphql(&state, &req, request, front, true).await
}

/// What the front of a GraphQL request found when the response cache had no answer.
struct Front {
    /// The token, verified once: for the response cache and, on a miss, the account.
    subject: Result<TokenSubject, AppError>,
    bypass: bool,
    /// The request's digest, keyed by the token's permission narrowing when it has one
    /// (two OIDC tokens of one account with different roles must not share answers).
    digest: [u8; 32],
}

/// The response cache: the same request (`digest`) from the same account, at the
/// versions Redis holds for the tenant and the account now, gets the stored body without
/// touching PostgreSQL (`Ok`); otherwise what the rest of the request needs (`Err`).
async fn front(
    state: &AppState,
    req: &HttpRequest,
    digest: &[u8; 32],
) -> Result<HttpResponse, Front> {
    let bypass = bypass_requested(req);
    let subject = token_subject(state, req).await;
    let digest = match subject.as_ref().ok().and_then(|s| s.permission_mask) {
        Some(mask) => {
            let mut hasher = Sha256::new();
            hasher.update(digest);
            hasher.update(mask.to_le_bytes());
            hasher.finalize().into()
        }
        None => *digest,
    };
    if !bypass {
        if let Ok(subject) = subject {
            if let Some(cached) = state.cache.cached_response(subject, &digest).await {
                return Ok(HttpResponse::Ok()
                    .content_type(media_type(req))
                    .body(cached));
            }
        }
    }
    Err(Front {
        subject,
        bypass,
        digest,
    })
}

/// Checks, authenticates, executes and answers one GraphQL request, from POST or GET.
async fn run_graphql(
    state: &AppState,
    req: &HttpRequest,
    request: async_graphql::Request,
    front: Front,
    via_get: bool,
) -> HttpResponse {
    let Front {
        subject,
        bypass,
        digest,
    } = front;
    let digest = &digest;
    // Before anything parses the document (classification below, execution later).
    if let Err(e) = nesting::check(&request.query, state.settings.limits.max_nesting) {
        return error_response(&state.metrics, e);
    }
    let (kind, operation) = crate::graphql::classify_named(&request);
    if let Ok(subject) = &subject {
        access::note(req, subject.tenant_id, operation.as_deref());
    }
    if via_get && kind == OperationKind::Mutation {
        let err = AppError::bad_input("mutations need POST");
        let mut response = error_response(&state.metrics, err);
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, "POST".parse().unwrap());
        return response;
    }
    let subject = match subject {
        Ok(subject) => subject,
        Err(e) => return error_response(&state.metrics, e),
    };
    let loaded = std::time::Instant::now();
    let response = execute(state, req, Caller::Pending(subject), request).await;
    if kind == OperationKind::Mutation {
        publish_versions(state, subject.tenant_id).await;
        // Live subscriptions: this node catches up now, the others when told.
        state.engine.nudge();
        state.cache.announce_change(subject.tenant_id).await;
    }
    let (mut response, principal) = match response {
        Ok(r) => r,
        Err(e) => return error_response(&state.metrics, e),
    };
    let Some(principal) = principal else {
        if let Some(e) = caller_error(&response) {
            return error_response(&state.metrics, e);
        }
        return finish_stored(state, req, &mut response, None, digest).await;
    };
    if timed_out(&response) {
        // Every field stopped at the deadline (their statements' timeouts can end them
        // a moment before the request's own timer): the request timed out.
        return error_response(&state.metrics, AppError::Timeout);
    }
    let tenant_id = principal.tenant_id;
    let storable = (kind == OperationKind::Cacheable && !bypass).then_some((
        tenant_id,
        principal.account_id,
        principal.stamp,
        loaded,
    ));
    finish_stored(state, req, &mut response, storable, digest).await
}

type Storable = (i64, i64, crate::auth::ResponseStamp, std::time::Instant);

/// Codes the errors async-graphql raised itself, serialises, and stores the body in the
/// response cache when it may be.
async fn finish_stored(
    state: &AppState,
    req: &HttpRequest,
    response: &mut async_graphql::Response,
    storable: Option<Storable>,
    digest: &[u8; 32],
) -> HttpResponse {
    code_errors(state, response);
    let media = media_type(req);
    // With the spec's own media type, a request that never executed (a document that
    // does not parse or validate) is a 400; field errors stay 200 beside their data.
    let request_error = !response.errors.is_empty()
        && response.data == async_graphql::Value::Null
        && response.errors.iter().all(|e| e.path.is_empty());
    let status = if media == GRAPHQL_RESPONSE && request_error {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    // A request that never executed has no `data` entry (GraphQL spec, "Response").
    let serialized = if request_error {
        serde_json::to_vec(&json!({ "errors": response.errors }))
    } else {
        serde_json::to_vec(&response)
    };
    let bytes = match serialized {
        Ok(b) => b,
        Err(e) => return error_response(&state.metrics, AppError::internal(e)),
    };
    if let Some((tenant_id, account_id, stamp, loaded)) = storable {
        if response.errors.is_empty() {
            state
                .cache
                .store_response(tenant_id, account_id, stamp, loaded, digest, &bytes)
                .await;
        }
    }
    HttpResponse::build(status).content_type(media).body(bytes)
}

/// The GraphQL-over-HTTP spec's media type for responses.
const GRAPHQL_RESPONSE: &str = "application/graphql-response+json; charset=utf-8";

/// `application/graphql-response+json` when the client accepts it, else JSON, which
/// every older client expects.
fn media_type(req: &HttpRequest) -> &'static str {
    let accept = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("application/graphql-response+json") {
        GRAPHQL_RESPONSE
    } else {
        "application/json"
    }
}

fn code_errors(state: &AppState, response: &mut async_graphql::Response) {
    // Errors raised by async-graphql itself (parsing, validation, limits, input
    // coercion) carry no code: they are all the client's to fix.
    for error in &mut response.errors {
        shorten(&mut error.message);
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
}

/// GraphiQL's page: everything it loads is served by this server
/// (`src/http/graphiql/`, vendored by `scripts/vendor-assets`), so it works with no
/// network beyond the server. A bar above it takes the bearer token.
pub async fn graphiql() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        .body(include_str!("graphiql/index.html"))
}

/// The files GraphiQL's page loads, embedded in the binary.
const GRAPHIQL_ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql/react-dom.production.min.js"),
    ),
    (
        "init.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql/init.js"),
    ),
    (
        "LICENSES.txt",
        "text/plain; charset=utf-8",
        include_bytes!("graphiql/LICENSES.txt"),
    ),
];

/// `GET /graphiql/{file}`: one of GraphiQL's embedded files (outside production, like
/// the page itself).
pub async fn graphiql_asset(state: web::Data<AppState>, file: web::Path<String>) -> HttpResponse {
    if state.settings.is_production() {
        return HttpResponse::NotFound().finish();
    }
    embedded(GRAPHIQL_ASSETS, &file, "public, max-age=3600")
}

/// A file embedded in the binary, by name, from a table of (name, media type, bytes);
/// 404 for any other name.
pub fn embedded(files: &[(&str, &str, &'static [u8])], name: &str, cache: &str) -> HttpResponse {
    match files.iter().find(|(n, _, _)| *n == name) {
        Some((_, media, bytes)) => HttpResponse::Ok()
            .content_type(*media)
            .insert_header((actix_web::http::header::CACHE_CONTROL, cache))
            .body(*bytes),
        None => HttpResponse::NotFound().finish(),
    }
}

/// `GET /schema.graphql`: the schema as SDL for any authenticated caller, in production
/// too (where introspection is off), so code generators work against a deployed server.
pub async fn schema_sdl(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(e) = authenticate(&state, &req).await {
        return error_response(&state.metrics, e);
    }
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(crate::graphql::sdl())
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
    // Analytics answer only once the node's store is loaded.
    let analytics = state.engine.is_ready();
    let ready = postgres.is_ok() && analytics;
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "postgres": if postgres.is_ok() { "up" } else { "down" },
        "analytics": if analytics { "loaded" } else { "loading" },
        "redis": if redis { "up" } else { "degraded" },
        "cacheBreaker": state.cache.breaker_state().as_str(),
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.state();
    state.metrics.set_pool(
        pool.idle_connections,
        pool.connections - pool.idle_connections,
    );
    state.cache.refresh_metrics();
    HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(state.metrics.render())
}
