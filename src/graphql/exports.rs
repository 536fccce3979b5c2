//! Signed download links: a CSV export as a URL that needs no header, for BI tools and
//! spreadsheets that can only be given a URL (Excel "From Web", Power BI web sources,
//! spreadsheet URL imports). The link runs as the account that made it, with that
//! account's permissions and scope at the moment of use.

use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::{principal, shared};
use crate::export_links::{self, LINK_PATH};

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
        let created =
            export_links::create(shared(ctx), principal(ctx)?, &export, ttl_minutes).await?;
        let base = ctx
            .data_opt::<PublicBase>()
            .map_or("", |b| b.0.trim_end_matches('/'));
        Ok(ExportLink {
            id: ID(created.id.to_string()),
            url: format!("{base}{LINK_PATH}{}", created.token),
            expires_at: created.expires_at,
        })
    }

    /// Stops a download link at once. An account revokes its own links; with
    /// `ACCOUNTS_MANAGE`, any link of the tenant. Returns false when there was no such
    /// live link.
    async fn revoke_export_link(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        Ok(export_links::revoke(shared(ctx), principal(ctx)?, &id).await?)
    }
}
