//! The export links service: a CSV export as a short-lived URL that needs no header,
//! for BI tools and spreadsheets that can only be given a URL. Only a hash of the
//! link's token is stored; the link runs as the account that made it, with that
//! account's permissions and scope at the moment of use (and the OIDC roles' narrowing
//! it was made under).

use async_graphql::ID;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use crate::auth::{Principal, TokenSubject};
use crate::db;
use crate::domain::{DataSet, Permission};
use crate::error::{AppError, AppResult};
use crate::filters::parse_id;
use crate::state::Services;

/// The exports a link may name.
pub const LINKABLE: &[&str] = crate::domain::EXPORT_PATHS;
/// Where links are served; the token follows.
pub const LINK_PATH: &str = "/export/link/";
const DEFAULT_TTL_MINUTES: i32 = 15;
const MAX_TTL_MINUTES: i32 = 60;
const MAX_QUERY: usize = 4_000;

/// The hash a link's token is stored and looked up by.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A link just made: its id, the token (shown once, never stored) and its expiry.
pub struct Created {
    pub id: i64,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// A link in use: the export it names and the account it runs as, loaded now.
pub struct Opened {
    pub principal: Principal,
    pub path: String,
    pub query: String,
}

/// Makes a link to `export` (path and query string) valid `ttl_minutes` (1 to 60, 15
/// when absent). Needs `EXPORT`, and for orders what reading them needs; the export's
/// own checks run when the link is used.
pub async fn create(
    services: &Services,
    p: &Principal,
    export: &str,
    ttl_minutes: Option<i32>,
) -> AppResult<Created> {
    p.require(Permission::Export)?;
    let ttl = ttl_minutes.unwrap_or(DEFAULT_TTL_MINUTES);
    if !(1..=MAX_TTL_MINUTES).contains(&ttl) {
        return Err(AppError::bad_input(format!(
            "ttlMinutes must be between 1 and {MAX_TTL_MINUTES}"
        )));
    }
    let (path, query) = export.split_once('?').unwrap_or((export, ""));
    let Some(path) = LINKABLE.iter().find(|l| **l == path) else {
        return Err(AppError::bad_input(format!(
            "export must be one of {} with its query string",
            LINKABLE.join(", ")
        )));
    };
    if *path == "/export/orders.csv" {
        p.require_read(DataSet::OrderRows)?;
    }
    if query.len() > MAX_QUERY || query.contains(['#', ' ', '\r', '\n']) {
        return Err(AppError::bad_input(format!(
            "the query string must be URL-encoded and at most {MAX_QUERY} bytes"
        )));
    }
    let mut raw = [0u8; 32];
    raw[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    raw[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&token);
    let expires_at = Utc::now() + TimeDelta::minutes(ttl.into());
    let (tenant_id, account_id, generation) = (p.tenant_id, p.account_id, p.stamp.token_generation);
    let permission_mask = p.permission_mask.map(|m| m as i32);
    let (path, query) = (path.to_string(), query.to_string());
    let details = serde_json::json!({ "export": path, "query": query, "expiresAt": expires_at });
    let id = db::audit::audited(
        &services.pool,
        p.actor(),
        "createExportLink",
        move |c| {
            let link = db::export_links::NewLink {
                token_sha256: &hash,
                tenant_id,
                account_id,
                token_generation: generation,
                permission_mask,
                path: &path,
                query: &query,
                expires_at,
            };
            db::export_links::insert(c, &link)
        },
        move |id| Some((format!("exportLink:{id}"), details)),
    )
    .await?;
    Ok(Created {
        id,
        token,
        expires_at,
    })
}

/// Stops a link at once: the caller's own, or with `ACCOUNTS_MANAGE` any of the
/// tenant's. False when there was no such live link.
pub async fn revoke(services: &Services, p: &Principal, id: &ID) -> AppResult<bool> {
    let id = parse_id("id", id)?;
    let own_only = (!p.has(Permission::AccountsManage)).then_some(p.account_id);
    let tenant_id = p.tenant_id;
    db::audit::audited(
        &services.pool,
        p.actor(),
        "revokeExportLink",
        move |c| db::export_links::revoke(c, tenant_id, own_only, id),
        move |revoked| revoked.then(|| (format!("exportLink:{id}"), serde_json::json!({}))),
    )
    .await
}

/// The export a link's token names, as its account now: `UNAUTHENTICATED` when the
/// link expired, was revoked or never existed, or its account was disabled or had its
/// tokens revoked. The use is audited before any row leaves.
pub async fn open(services: &Services, token: &str) -> AppResult<Opened> {
    let hash = token_hash(token);
    let link = db::run(&services.pool, move |c| {
        db::export_links::use_live(c, &hash)
    })
    .await?
    .ok_or_else(|| {
        AppError::Unauthenticated(
            "this download link has expired, was revoked or does not exist".into(),
        )
    })?;
    let subject = TokenSubject {
        account_id: link.account_id,
        tenant_id: link.tenant_id,
        generation: link.token_generation,
        // A link made under an OIDC provider's roles keeps their narrowing.
        permission_mask: link.permission_mask.map(|m| m as u32),
    };
    let principal = db::accounts::load(&services.pool, subject).await?;
    let link_id = link.id;
    db::audit::log(
        &services.pool,
        principal.actor(),
        "useExportLink",
        format!("exportLink:{link_id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(Opened {
        principal,
        path: link.path,
        query: link.query,
    })
}
