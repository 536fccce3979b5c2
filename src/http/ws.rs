//! GraphQL subscriptions over WebSocket on `/graphql` (the `graphql-transport-ws`
//! protocol of the `graphql-ws` client; the older `graphql-ws` protocol too).
//!
//! - The token comes in `connection_init`'s payload (`{"Authorization": "Bearer …"}`,
//!   `{"token": "…"}` or `{"headers": {"Authorization": …}}`) or the upgrade request's
//!   `Authorization` header; a bad one closes the socket with 4403.
//! - Only subscriptions run here (queries and mutations go to `POST /graphql`), at most
//!   [`MAX_PER_CONNECTION`] per connection and [`MAX_PER_ACCOUNT`] per account on this
//!   node; more are refused with an `error` message for that id.
//! - The account is looked at again every [`WATCH_INTERVAL`]: a revoked token, a
//!   disabled account or a changed scope or permission set closes the socket (4403,
//!   or 4205 "reconnect" so that the client subscribes again with what it may see now).
//! - A WebSocket ping goes out every [`HEARTBEAT`]; a client silent for three of them is
//!   closed. A message the client does not take within [`SEND_TIMEOUT`] closes the
//!   socket: a slow consumer is dropped, never buffered without bound.
//! - Unmasked buyer fields in an event are audit-logged before the event leaves.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use async_graphql::http::{ClientMessage, WebSocket, WebSocketProtocols as Protocols, WsMessage};
use async_graphql::Data;
use futures_util::StreamExt;

use super::{bearer_token, AppState};
use crate::auth::{Principal, TokenSubject};
use crate::db;
use crate::error::AppError;
use crate::graphql::caller::CallerSlot;
use crate::graphql::loaders::Loaders;
use crate::graphql::pii::PiiReads;

pub const MAX_PER_CONNECTION: usize = 20;
pub const MAX_PER_ACCOUNT: usize = 50;
const WATCH_INTERVAL: Duration = Duration::from_secs(2);
const HEARTBEAT: Duration = Duration::from_secs(15);
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Live subscriptions per account on this node.
fn account_counts() -> &'static Mutex<HashMap<i64, usize>> {
    static COUNTS: OnceLock<Mutex<HashMap<i64, usize>>> = OnceLock::new();
    COUNTS.get_or_init(Default::default)
}

/// The subscriptions one connection holds, counted against its account.
struct Held {
    account_id: Option<i64>,
    ids: HashSet<String>,
}

impl Held {
    fn try_add(&mut self, id: &str) -> Result<(), String> {
        if self.ids.contains(id) {
            return Err(format!("subscriber for {id} already exists"));
        }
        if self.ids.len() >= MAX_PER_CONNECTION {
            return Err(format!(
                "at most {MAX_PER_CONNECTION} subscriptions per connection"
            ));
        }
        if let Some(account) = self.account_id {
            let mut counts = account_counts().lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(account).or_default();
            if *n >= MAX_PER_ACCOUNT {
                return Err(format!(
                    "at most {MAX_PER_ACCOUNT} subscriptions per account at once"
                ));
            }
            *n += 1;
        }
        self.ids.insert(id.to_string());
        Ok(())
    }

    fn remove(&mut self, id: &str) {
        if self.ids.remove(id) {
            if let Some(account) = self.account_id {
                let mut counts = account_counts().lock().unwrap_or_else(|e| e.into_inner());
                if let Some(n) = counts.get_mut(&account) {
                    *n = n.saturating_sub(1);
                }
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let ids: Vec<String> = self.ids.iter().cloned().collect();
        for id in ids {
            self.remove(&id);
        }
    }
}

/// The token of a `connection_init` payload.
fn init_token(payload: &serde_json::Value) -> Option<String> {
    let field = |v: &serde_json::Value, names: &[&str]| {
        names
            .iter()
            .find_map(|n| v.get(*n).and_then(|t| t.as_str()).map(str::to_string))
    };
    let header = field(payload, &["Authorization", "authorization"]).or_else(|| {
        payload
            .get("headers")
            .and_then(|h| field(h, &["Authorization", "authorization"]))
    });
    match header {
        Some(h) => bearer_token(Some(&h)).ok().map(str::to_string),
        None => field(payload, &["token", "accessToken"]),
    }
}

/// What must stay the same for a connection's subscriptions to stay valid.
fn scope_of(p: &Principal) -> (Vec<i64>, Vec<crate::domain::Permission>, i32) {
    (
        p.shop_ids(),
        p.effective_permissions(),
        p.stamp.token_generation,
    )
}

fn protocol_of(req: &HttpRequest) -> Option<Protocols> {
    let offered = req
        .headers()
        .get(actix_web::http::header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?;
    offered
        .split(',')
        .find_map(|p| p.trim().parse::<Protocols>().ok())
}

/// `GET /graphql` with `Upgrade: websocket`.
pub async fn subscriptions(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    let Some(protocol) = protocol_of(&req) else {
        let err = AppError::bad_input(
            "a GraphQL WebSocket needs Sec-WebSocket-Protocol: graphql-transport-ws",
        );
        return super::error_response(&state.metrics, err);
    };
    let header_token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| bearer_token(Some(h)).ok())
        .map(str::to_string);
    let (mut response, session, messages) = match actix_ws::handle(&req, body) {
        Ok(parts) => parts,
        Err(e) => return e.error_response(),
    };
    if let Ok(value) = protocol.sec_websocket_protocol().parse() {
        response
            .headers_mut()
            .insert(actix_web::http::header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    let state = state.into_inner();
    actix_web::rt::spawn(connection(state, session, messages, protocol, header_token));
    response
}

type Outcome = (CloseCode, String);

async fn connection(
    state: Arc<AppState>,
    mut session: actix_ws::Session,
    mut messages: actix_ws::MessageStream,
    protocol: Protocols,
    header_token: Option<String>,
) {
    let (to_engine, from_client) =
        tokio::sync::mpsc::channel::<serde_json::Result<ClientMessage>>(16);
    let pii_reads = Arc::new(PiiReads::default());
    // Set once connection_init has authenticated the account.
    let account: Arc<OnceLock<(TokenSubject, Principal)>> = Arc::new(OnceLock::new());
    let init_state = state.clone();
    let init_account = account.clone();
    let init_pii = pii_reads.clone();
    let engine = WebSocket::from_message_stream(
        state.schema.clone(),
        tokio_stream_of(from_client),
        protocol,
    )
    .on_connection_init(move |payload| async move {
        let token = init_token(&payload)
            .or(header_token)
            .ok_or_else(|| async_graphql::Error::new("missing or invalid credentials"))?;
        let subject = super::subject_of_token(&init_state, &token)
            .await
            .map_err(|e| async_graphql::Error::new(e.public_message()))?;
        let principal = db::accounts::load(&init_state.pool, subject)
            .await
            .map_err(|e| async_graphql::Error::new(e.public_message()))?;
        let _ = init_account.set((subject, principal.clone()));
        let mut data = Data::default();
        data.insert(CallerSlot::loaded(principal));
        data.insert(Loaders::new(&init_state.pool));
        data.insert(init_pii);
        // Every value is computed from the live store, never from a cached answer.
        data.insert(crate::cache::Bypass);
        Ok(data)
    });
    let mut engine = Box::pin(engine);
    let mut held = Held {
        account_id: None,
        ids: HashSet::new(),
    };
    let mut acked = false;
    // Subscriptions answered with `error`: their `complete` is not sent after it.
    let mut errored: HashSet<String> = HashSet::new();
    let started = Instant::now();
    let mut last_heard = Instant::now();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut watch = tokio::time::interval(WATCH_INTERVAL);
    let outcome: Option<Outcome> = loop {
        tokio::select! {
            incoming = messages.next() => {
                last_heard = Instant::now();
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).to_string(),
                    Some(Ok(Message::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() { break None; }
                        continue;
                    }
                    Some(Ok(Message::Pong(_))) | Some(Ok(Message::Continuation(_))) | Some(Ok(Message::Nop)) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                };
                let parsed = ClientMessage::from_bytes(text.as_bytes());
                if let Ok(message) = &parsed {
                    match message {
                        ClientMessage::Start { id, payload } => {
                            if let Some(refusal) = refuse_start(&state, &mut held, id, payload, acked, &account) {
                                let error = serde_json::json!({
                                    "id": id, "type": "error",
                                    "payload": [{ "message": refusal, "extensions": { "code": "BAD_USER_INPUT" } }]
                                });
                                if send(&mut session, error.to_string()).await.is_err() { break None; }
                                continue;
                            }
                        }
                        ClientMessage::Stop { id } => held.remove(id),
                        _ => {}
                    }
                }
                if to_engine.send(parsed).await.is_err() { break None; }
            }
            outgoing = engine.next() => {
                match outgoing {
                    Some(WsMessage::Text(text)) => {
                        if !acked && text.contains("\"connection_ack\"") {
                            acked = true;
                            held.account_id = account.get().map(|(s, _)| s.account_id);
                        }
                        // A subscription that never ran (its document did not parse or
                        // validate, or its arguments were refused) ends with the
                        // protocol's `error` message, not `next` + `complete`.
                        let text = match (protocol, request_error(&text)) {
                            (Protocols::GraphQLWS, Some((id, error))) => {
                                errored.insert(id);
                                error
                            }
                            _ => text,
                        };
                        if let Some(id) = completed_id(&text) {
                            held.remove(&id);
                            if text.contains("\"complete\"") && errored.remove(&id) {
                                continue;
                            }
                        }
                        if let Some(details) = pii_reads.take_details() {
                            let Some((_, p)) = account.get() else { break None };
                            let actor = p.actor();
                            let audited = db::audit::log(&state.pool, actor, "readPii", "orders".into(), details).await;
                            if audited.is_err() {
                                state.metrics.observe_ws_closed("audit_unavailable");
                                break Some((CloseCode::Error, "the audit log is unavailable".into()));
                            }
                        }
                        if send(&mut session, text).await.is_err() {
                            state.metrics.observe_ws_closed("slow_consumer");
                            break Some((CloseCode::Policy, "slow consumer".into()));
                        }
                    }
                    Some(WsMessage::Close(code, reason)) => {
                        // A failed connection_init is Forbidden, as graphql-ws expects.
                        let code = if !acked && code == 1002 { 4403 } else { code };
                        break Some((CloseCode::Other(code), reason));
                    }
                    None => break None,
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > HEARTBEAT * 3 {
                    state.metrics.observe_ws_closed("silent");
                    break Some((CloseCode::Away, "no answer to pings".into()));
                }
                if tokio::time::timeout(SEND_TIMEOUT, session.ping(b"")).await.map_or(true, |r| r.is_err()) {
                    break None;
                }
            }
            _ = watch.tick() => {
                if !acked {
                    if started.elapsed() > INIT_TIMEOUT {
                        break Some((CloseCode::Other(4408), "connection initialisation timeout".into()));
                    }
                    continue;
                }
                let Some((subject, before)) = account.get() else { continue };
                match db::accounts::load(&state.pool, *subject).await {
                    Ok(now) if scope_of(&now) == scope_of(before) => {}
                    Ok(_) => {
                        state.metrics.observe_ws_closed("scope_changed");
                        break Some((CloseCode::Other(4205), "the account's scope changed; reconnect".into()))
                    }
                    Err(AppError::Unauthenticated(_)) => {
                        state.metrics.observe_ws_closed("revoked");
                        break Some((CloseCode::Other(4403), "Forbidden".into()))
                    }
                    // The database is away: keep the connection, look again later.
                    Err(_) => {}
                }
            }
        }
    };
    drop(held);
    let reason = outcome.map(|(code, description)| CloseReason {
        code,
        description: Some(description),
    });
    let _ = tokio::time::timeout(SEND_TIMEOUT, session.close(reason)).await;
}

/// Why a `subscribe` message is refused, if it is.
fn refuse_start(
    state: &AppState,
    held: &mut Held,
    id: &str,
    payload: &async_graphql::Request,
    acked: bool,
    account: &OnceLock<(TokenSubject, Principal)>,
) -> Option<String> {
    if !acked || account.get().is_none() {
        // The engine closes the socket (4401 territory): leave it to it.
        return None;
    }
    if let Err(e) = super::nesting::check(&payload.query, state.settings.limits.max_nesting) {
        return Some(e.public_message());
    }
    if !is_subscription(payload) {
        return Some(
            "only subscriptions run over WebSocket; send queries and mutations to POST /graphql"
                .into(),
        );
    }
    held.try_add(id).err()
}

fn is_subscription(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::OperationType;
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        // Let the engine report the syntax error.
        return true;
    };
    // No operation to run: the engine reports that too.
    crate::graphql::selected_operation(&document, request.operation_name.as_deref())
        .is_none_or(|(_, op)| op.node.ty == OperationType::Subscription)
}

/// A `next` message that carries only request errors (no data, no error with a path),
/// as the protocol's `error` message for the same id.
fn request_error(text: &str) -> Option<(String, String)> {
    if !text.contains("\"next\"") || !text.contains("\"errors\"") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value.get("type")?.as_str()? != "next" {
        return None;
    }
    let payload = value.get("payload")?;
    if !payload.get("data").is_none_or(|d| d.is_null()) {
        return None;
    }
    let errors = payload.get("errors")?.as_array()?;
    if errors.is_empty() || errors.iter().any(|e| e.get("path").is_some()) {
        return None;
    }
    let id = value.get("id")?.as_str()?.to_string();
    // async-graphql's own errors carry no code: they are the client's to fix, as over HTTP.
    let errors: Vec<serde_json::Value> = errors
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if e.pointer("/extensions/code").is_none() {
                e["extensions"]["code"] = serde_json::json!("BAD_USER_INPUT");
            }
            e
        })
        .collect();
    let message = serde_json::json!({ "id": id, "type": "error", "payload": errors });
    Some((id, message.to_string()))
}

/// The id of a `complete` (or `error`) message the server sends.
fn completed_id(text: &str) -> Option<String> {
    if !(text.contains("\"complete\"") || text.contains("\"error\"")) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    match value.get("type")?.as_str()? {
        "complete" | "error" => value.get("id")?.as_str().map(str::to_string),
        _ => None,
    }
}

async fn send(session: &mut actix_ws::Session, text: String) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, session.text(text)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

fn tokio_stream_of<T>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
