//! Accounts and tenants: loading the principal behind a token.

use std::collections::BTreeSet;

use diesel::prelude::*;

use super::reference::tenant_shops;
use super::schema::{accounts, tenants};
use crate::auth::{Principal, TokenSubject};
use crate::domain::Permission;
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = accounts)]
pub struct AccountRow {
    pub id: i64,
    pub tenant_id: i64,
    pub name: String,
    pub is_owner: bool,
    pub permissions: Vec<String>,
    pub shop_ids: Vec<i64>,
    pub disabled_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Loads the account a token speaks for, with its tenant and shop scope. An unknown,
/// disabled or other-tenant account is `UNAUTHENTICATED`, like a bad token.
pub fn load_principal(conn: &mut PgConnection, subject: TokenSubject) -> AppResult<Principal> {
    let found: Option<(AccountRow, String)> = accounts::table
        .inner_join(tenants::table)
        .filter(accounts::id.eq(subject.account_id))
        .filter(accounts::tenant_id.eq(subject.tenant_id))
        .select((AccountRow::as_select(), tenants::name))
        .first(conn)
        .optional()?;
    let (account, tenant_name) = match found {
        Some(found) if found.0.disabled_at.is_none() => found,
        _ => {
            return Err(AppError::Unauthenticated(
                "missing or invalid credentials".into(),
            ))
        }
    };
    let shops = tenant_shops(conn, account.tenant_id, &account.shop_ids)?;
    let permissions: BTreeSet<Permission> = account
        .permissions
        .iter()
        .filter_map(|p| Permission::parse(p))
        .collect();
    Ok(Principal {
        account_id: account.id,
        account_name: account.name,
        tenant_id: account.tenant_id,
        tenant_name,
        is_owner: account.is_owner,
        permissions,
        shops,
    })
}

/// The owner account of a tenant (for `orderscope token --tenant`).
pub fn owner_of(conn: &mut PgConnection, tenant_id: i64) -> AppResult<AccountRow> {
    Ok(accounts::table
        .filter(accounts::tenant_id.eq(tenant_id))
        .filter(accounts::is_owner.eq(true))
        .filter(accounts::disabled_at.is_null())
        .order(accounts::id)
        .select(AccountRow::as_select())
        .first(conn)?)
}

pub fn account_by_id(conn: &mut PgConnection, id: i64) -> AppResult<AccountRow> {
    Ok(accounts::table
        .find(id)
        .select(AccountRow::as_select())
        .first(conn)?)
}
