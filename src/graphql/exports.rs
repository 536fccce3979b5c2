//! Signed download links: a CSV export as a URL that needs no header, for BI tools and
//! spreadsheets that can only be given a URL (Excel "From Web", Power BI web sources,
//! spreadsheet URL imports). The link runs as the account that made it, with that
//! account's permissions and scope at the moment of use.

use async_graphql::{Context, Object, SimpleObject, ID};
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use super::{parse_id, principal, shared};
use crate::db;
use crate::domain::{DataSet, Permission};
use crate::error::AppError;

/// The exports a link may name.
pub const LINKABLE: &[&str] = crate::domain::EXPORT_PATHS;
/// Where links are served; the token follows.
pub const LINK_PATH: &str = "/export/link/";
const DEFAULT_TTL_MINUTES: i32 = 15;
const MAX_TTL_MINUTES: i32 = 60;
const MAX_QUERY: usize = 4_000;

/// The scheme and host links are written with: `PUBLIC_URL` when set, else what the
/// request reached the server as.
#[derive(Clone, Debug)]
pub struct PublicBase(pub String);

#[derive(SimpleObject)]
pub struct ExportLink {
    pub id: ID,
    /// The download URL: paste it into Excel, Power BI or a spreadsheet. It works
    /// until `expiresAt`, with no header, and only for what the account may read when
    /// it is used.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// The hash a link's token is stored and looked up by.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Default)]
pub struct ExportsMutation;

#[Object]
impl ExportsMutation {
    /// A short-lived download URL for one CSV export, for tools that cannot send an
    /// `Authorization` header. `export` is the export's path and query string as it
    /// would be requested with a token, e.g.
    /// `/export/orders.csv?placedFrom=2026-11-01&placedTo=2026-11-20`. Needs `EXPORT`
    /// (and, for orders, `ORDERS_READ`); the export's own checks run when the URL is
    /// used. Revoked by `revokeExportLink`, by revoking the account's tokens and by
    /// disabling the account.
    async fn create_export_link(
        &self,
        ctx: &Context<'_>,
        export: String,
        #[graphql(desc = "Minutes until the URL stops working: 1 to 60, 15 when absent.")]
        ttl_minutes: Option<i32>,
    ) -> async_graphql::Result<ExportLink> {
        let p = principal(ctx)?;
        p.require(Permission::Export)?;
        let ttl = ttl_minutes.unwrap_or(DEFAULT_TTL_MINUTES);
        if !(1..=MAX_TTL_MINUTES).contains(&ttl) {
            return Err(AppError::bad_input(format!(
                "ttlMinutes must be between 1 and {MAX_TTL_MINUTES}"
            ))
            .into());
        }
        let (path, query) = export.split_once('?').unwrap_or((export.as_str(), ""));
        let Some(path) = LINKABLE.iter().find(|l| **l == path) else {
            return Err(AppError::bad_input(format!(
                "export must be one of {} with its query string",
                LINKABLE.join(", ")
            ))
            .into());
        };
        if *path == "/export/orders.csv" {
            p.require_read(DataSet::OrderRows)?;
        }
        if query.len() > MAX_QUERY || query.contains(['#', ' ', '\r', '\n']) {
            return Err(AppError::bad_input(format!(
                "the query string must be URL-encoded and at most {MAX_QUERY} bytes"
            ))
            .into());
        }
        let mut raw = [0u8; 32];
        raw[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        raw[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let hash = token_hash(&token);
        let expires_at = Utc::now() + TimeDelta::minutes(ttl.into());
        let actor = p.actor();
        let (tenant_id, account_id, generation) =
            (p.tenant_id, p.account_id, p.stamp.token_generation);
        let permission_mask = p.permission_mask.map(|m| m as i32);
        let (path, query) = (path.to_string(), query.to_string());
        let details =
            serde_json::json!({ "export": path, "query": query, "expiresAt": expires_at });
        let id = db::audit::audited(
            &shared(ctx).pool,
            actor,
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
        let base = ctx
            .data_opt::<PublicBase>()
            .map_or("", |b| b.0.trim_end_matches('/'));
        Ok(ExportLink {
            id: ID(id.to_string()),
            url: format!("{base}{LINK_PATH}{token}"),
            expires_at,
        })
    }

    /// Stops a download link at once. An account revokes its own links; with
    /// `ACCOUNTS_MANAGE`, any link of the tenant. Returns false when there was no such
    /// live link.
    async fn revoke_export_link(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let p = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let own_only = (!p.has(Permission::AccountsManage)).then_some(p.account_id);
        let (actor, tenant_id) = (p.actor(), p.tenant_id);
        let revoked = db::audit::audited(
            &shared(ctx).pool,
            actor,
            "revokeExportLink",
            move |c| db::export_links::revoke(c, tenant_id, own_only, id),
            move |revoked| revoked.then(|| (format!("exportLink:{id}"), serde_json::json!({}))),
        )
        .await?;
        Ok(revoked)
    }
}
