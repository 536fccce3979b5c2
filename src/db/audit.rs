//! The audit log: who did what, when, to which object.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{accounts, audit_log};
use crate::error::AppResult;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: i64,
    pub tenant_id: i64,
    pub account_id: Option<i64>,
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// Who acted, for audit entries.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub tenant_id: i64,
    pub account_id: i64,
}

/// A mutation's write and its audit entry in one transaction, on a pooled connection
/// off the async workers: the entry commits with the write or neither does. `entry`
/// names the target and details from what was written, or `None` when the write
/// changed nothing worth recording (revoking a link already revoked, say).
pub async fn audited<T, W, E>(
    pool: &super::PgPool,
    actor: Actor,
    action: &'static str,
    write: W,
    entry: E,
) -> AppResult<T>
where
    T: Send + 'static,
    W: FnOnce(&mut PgConnection) -> AppResult<T> + Send + 'static,
    E: FnOnce(&T) -> Option<(String, serde_json::Value)> + Send + 'static,
{
    super::run(pool, move |c| {
        c.build_transaction().run(|c| {
            let written = write(c)?;
            if let Some((target, details)) = entry(&written) {
                record(c, actor, action, &target, details)?;
            }
            Ok(written)
        })
    })
    .await
}

/// Adds one entry to the audit log on its own (a read or a use, with no write beside
/// it), on a pooled connection off the async workers.
pub async fn log(
    pool: &super::PgPool,
    actor: Actor,
    action: &'static str,
    target: String,
    details: serde_json::Value,
) -> AppResult<()> {
    super::run(pool, move |c| record(c, actor, action, &target, details)).await
}

/// Adds one entry to the audit log, in the caller's transaction.
pub fn record(
    conn: &mut PgConnection,
    actor: Actor,
    action: &str,
    target: &str,
    details: serde_json::Value,
) -> AppResult<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::tenant_id.eq(actor.tenant_id),
            audit_log::account_id.eq(actor.account_id),
            audit_log::action.eq(action),
            audit_log::target.eq(target),
            audit_log::details.eq(details),
        ))
        .execute(conn)?;
    Ok(())
}

/// Newest first, after the entry `before_id` when given, with the acting account's name.
pub fn list(
    conn: &mut PgConnection,
    tenant_id: i64,
    account_id: Option<i64>,
    before_id: Option<i64>,
    limit: i64,
) -> AppResult<Vec<(AuditRow, Option<String>)>> {
    let mut query = audit_log::table
        .left_join(accounts::table)
        .filter(audit_log::tenant_id.eq(tenant_id))
        .select((AuditRow::as_select(), accounts::name.nullable()))
        .order(audit_log::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(account_id) = account_id {
        query = query.filter(audit_log::account_id.eq(account_id));
    }
    if let Some(before) = before_id {
        query = query.filter(audit_log::id.lt(before));
    }
    Ok(query.load(conn)?)
}
