//! Signed export links (`export_links`): what a link names and whether it still works.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Integer, Text, Timestamptz};

use crate::error::AppResult;

/// A live link: the account it runs as and the export it names.
#[derive(Debug, Clone, QueryableByName)]
pub struct LinkRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub tenant_id: i64,
    #[diesel(sql_type = BigInt)]
    pub account_id: i64,
    #[diesel(sql_type = Integer)]
    pub token_generation: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<Integer>)]
    pub permission_mask: Option<i32>,
    #[diesel(sql_type = Text)]
    pub path: String,
    #[diesel(sql_type = Text)]
    pub query: String,
    #[diesel(sql_type = Timestamptz)]
    pub expires_at: DateTime<Utc>,
}

/// What a new link is made of.
pub struct NewLink<'a> {
    pub token_sha256: &'a [u8],
    pub tenant_id: i64,
    pub account_id: i64,
    pub token_generation: i32,
    pub permission_mask: Option<i32>,
    pub path: &'a str,
    pub query: &'a str,
    pub expires_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

pub fn insert(conn: &mut PgConnection, link: &NewLink<'_>) -> AppResult<i64> {
    let row: Id = diesel::sql_query(
        "INSERT INTO export_links (token_sha256, tenant_id, account_id, token_generation, \
         permission_mask, path, query, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         RETURNING id",
    )
    .bind::<Bytea, _>(link.token_sha256)
    .bind::<BigInt, _>(link.tenant_id)
    .bind::<BigInt, _>(link.account_id)
    .bind::<Integer, _>(link.token_generation)
    .bind::<diesel::sql_types::Nullable<Integer>, _>(link.permission_mask)
    .bind::<Text, _>(link.path)
    .bind::<Text, _>(link.query)
    .bind::<Timestamptz, _>(link.expires_at)
    .get_result(conn)?;
    Ok(row.id)
}

/// The link with this token hash if it has neither expired nor been revoked; counts
/// the use.
pub fn use_live(conn: &mut PgConnection, token_sha256: &[u8]) -> AppResult<Option<LinkRow>> {
    Ok(diesel::sql_query(
        "UPDATE export_links SET used_count = used_count + 1 \
         WHERE token_sha256 = $1 AND revoked_at IS NULL AND expires_at > now() \
         RETURNING id, tenant_id, account_id, token_generation, permission_mask, path, query, \
         expires_at",
    )
    .bind::<Bytea, _>(token_sha256)
    .get_result(conn)
    .optional()?)
}

/// Revokes a link of the tenant; `account_id` narrows it to that account's own links.
/// Whether a live link was revoked.
pub fn revoke(
    conn: &mut PgConnection,
    tenant_id: i64,
    account_id: Option<i64>,
    id: i64,
) -> AppResult<bool> {
    let n = diesel::sql_query(
        "UPDATE export_links SET revoked_at = now() \
         WHERE id = $1 AND tenant_id = $2 AND ($3 IS NULL OR account_id = $3) \
           AND revoked_at IS NULL",
    )
    .bind::<BigInt, _>(id)
    .bind::<BigInt, _>(tenant_id)
    .bind::<diesel::sql_types::Nullable<BigInt>, _>(account_id)
    .execute(conn)?;
    Ok(n > 0)
}
