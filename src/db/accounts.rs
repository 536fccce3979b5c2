//! Accounts and tenants: loading the principal behind a token.

use std::collections::BTreeSet;

use diesel::prelude::*;

use super::principal::{ExternalIdentity, Principal, ResponseStamp, TokenSubject};
use super::reference::ShopRow;
use super::schema::{accounts, shops, tenants};
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
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub token_generation: i32,
    pub data_version: i64,
}

/// The next value of the data version sequence (shared by shops and accounts).
fn next_data_version() -> diesel::expression::SqlLiteral<diesel::sql_types::BigInt> {
    diesel::dsl::sql("nextval('data_version_seq')")
}

/// Loads the account a token speaks for, with its tenant and shop scope. An unknown,
/// disabled or other-tenant account is `UNAUTHENTICATED`, like a bad token.
/// [`load_principal`] on the blocking pool: the account behind a verified token.
pub async fn load(pool: &super::PgPool, subject: TokenSubject) -> AppResult<Principal> {
    super::run(pool, move |c| load_principal(c, subject)).await
}

pub fn load_principal(conn: &mut PgConnection, subject: TokenSubject) -> AppResult<Principal> {
    // One round trip on every request: the account, its tenant and the tenant's shops
    // (with their data versions, for cache keys).
    let rows: Vec<(AccountRow, String, Option<ShopRow>)> = accounts::table
        .inner_join(tenants::table)
        .left_join(shops::table.on(shops::tenant_id.eq(accounts::tenant_id)))
        .filter(accounts::id.eq(subject.account_id))
        .filter(accounts::tenant_id.eq(subject.tenant_id))
        .select((
            AccountRow::as_select(),
            tenants::name,
            Option::<ShopRow>::as_select(),
        ))
        .order(shops::id)
        .load(conn)?;
    let (account, tenant_name) = match rows.first() {
        Some((account, tenant, _))
            if account.disabled_at.is_none() && account.token_generation == subject.generation =>
        {
            (account.clone(), tenant.clone())
        }
        _ => {
            return Err(AppError::Unauthenticated(
                "missing or invalid credentials".into(),
            ))
        }
    };
    let all_shops: Vec<ShopRow> = rows.into_iter().filter_map(|(_, _, shop)| shop).collect();
    let tenant_shop_count = all_shops.len();
    let stamp = ResponseStamp {
        tenant_version: all_shops.iter().map(|s| s.data_version).max().unwrap_or(0),
        account_version: account.data_version,
        token_generation: account.token_generation,
    };
    let shops = if account.shop_ids.is_empty() {
        all_shops
    } else {
        all_shops
            .into_iter()
            .filter(|s| account.shop_ids.contains(&s.id))
            .collect()
    };
    let mut permissions: BTreeSet<Permission> = if account.is_owner {
        Permission::ALL.iter().copied().collect()
    } else {
        account
            .permissions
            .iter()
            .filter_map(|p| Permission::parse(p))
            .collect()
    };
    let mut is_owner = account.is_owner;
    // An OIDC provider's roles narrow what the account may do, never widen it.
    if let Some(mask) = subject.permission_mask {
        let granted = |p: &Permission| {
            Permission::ALL
                .iter()
                .position(|q| q == p)
                .is_some_and(|i| mask & (1 << i) != 0)
        };
        permissions.retain(granted);
        is_owner = is_owner && Permission::ALL.iter().all(granted);
    }
    Ok(Principal {
        account_id: account.id,
        account_name: account.name,
        tenant_id: account.tenant_id,
        tenant_name,
        is_owner,
        permissions,
        shops,
        tenant_shop_count,
        stamp,
        permission_mask: subject.permission_mask,
    })
}

/// The versions a mutation publishes to the response cache: the greatest data version
/// of the tenant's shops and every account's own.
pub fn tenant_versions(conn: &mut PgConnection, tenant_id: i64) -> AppResult<TenantVersions> {
    let shops: Option<i64> = shops::table
        .filter(shops::tenant_id.eq(tenant_id))
        .select(diesel::dsl::max(shops::data_version))
        .first(conn)?;
    let accounts: Vec<(i64, i64)> = accounts::table
        .filter(accounts::tenant_id.eq(tenant_id))
        .select((accounts::id, accounts::data_version))
        .load(conn)?;
    Ok(TenantVersions {
        tenant_id,
        tenant_version: shops.unwrap_or(0),
        accounts,
    })
}

/// See [`tenant_versions`].
#[derive(Debug, Clone)]
pub struct TenantVersions {
    pub tenant_id: i64,
    pub tenant_version: i64,
    /// `(account id, data version)`.
    pub accounts: Vec<(i64, i64)>,
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

/// Every account of a tenant, owner first.
pub fn list_for_tenant(conn: &mut PgConnection, tenant_id: i64) -> AppResult<Vec<AccountRow>> {
    Ok(accounts::table
        .filter(accounts::tenant_id.eq(tenant_id))
        .order((accounts::is_owner.desc(), accounts::id))
        .select(AccountRow::as_select())
        .load(conn)?)
}

/// An account of the tenant; another tenant's account is `None`, like a missing one.
pub fn find_in_tenant(
    conn: &mut PgConnection,
    tenant_id: i64,
    id: i64,
) -> AppResult<Option<AccountRow>> {
    Ok(accounts::table
        .filter(accounts::tenant_id.eq(tenant_id))
        .filter(accounts::id.eq(id))
        .select(AccountRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn create_sub_account(
    conn: &mut PgConnection,
    tenant_id: i64,
    name: &str,
    permissions: &[String],
    shop_ids: &[i64],
) -> AppResult<AccountRow> {
    Ok(diesel::insert_into(accounts::table)
        .values((
            accounts::tenant_id.eq(tenant_id),
            accounts::name.eq(name),
            accounts::is_owner.eq(false),
            accounts::permissions.eq(permissions),
            accounts::shop_ids.eq(shop_ids),
        ))
        .returning(AccountRow::as_returning())
        .get_result(conn)?)
}

/// Changes to a sub-account; `None` leaves a field as it is.
#[derive(AsChangeset, Default)]
#[diesel(table_name = accounts)]
pub struct AccountChanges {
    pub name: Option<String>,
    pub permissions: Option<Vec<String>>,
    pub shop_ids: Option<Vec<i64>>,
    pub disabled_at: Option<Option<chrono::DateTime<chrono::Utc>>>,
}

pub fn update_sub_account(
    conn: &mut PgConnection,
    tenant_id: i64,
    id: i64,
    changes: &AccountChanges,
) -> AppResult<AccountRow> {
    let target = accounts::table
        .filter(accounts::tenant_id.eq(tenant_id))
        .filter(accounts::id.eq(id))
        .filter(accounts::is_owner.eq(false));
    let unchanged = changes.name.is_none()
        && changes.permissions.is_none()
        && changes.shop_ids.is_none()
        && changes.disabled_at.is_none();
    if unchanged {
        return Ok(target.select(AccountRow::as_select()).first(conn)?);
    }
    Ok(diesel::update(target)
        .set((changes, accounts::data_version.eq(next_data_version())))
        .returning(AccountRow::as_returning())
        .get_result(conn)?)
}

/// Invalidates every token issued so far for the account.
pub fn revoke_tokens(conn: &mut PgConnection, tenant_id: i64, id: i64) -> AppResult<AccountRow> {
    Ok(diesel::update(
        accounts::table
            .filter(accounts::tenant_id.eq(tenant_id))
            .filter(accounts::id.eq(id)),
    )
    .set((
        accounts::token_generation.eq(accounts::token_generation + 1),
        accounts::data_version.eq(next_data_version()),
    ))
    .returning(AccountRow::as_returning())
    .get_result(conn)?)
}

#[derive(QueryableByName)]
struct LinkedAccount {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    account_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    tenant_id: i64,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    token_generation: i32,
}

/// The account an OIDC identity is linked to; `UNAUTHENTICATED` when it is not linked
/// or its tenant claim names another tenant.
pub fn external_subject(
    conn: &mut PgConnection,
    identity: &ExternalIdentity,
) -> AppResult<TokenSubject> {
    use diesel::sql_types::Text;
    let linked: Option<LinkedAccount> = diesel::sql_query(
        "SELECT a.id AS account_id, a.tenant_id, a.token_generation \
         FROM external_identities e JOIN accounts a ON a.id = e.account_id \
         WHERE e.issuer = $1 AND e.subject = $2",
    )
    .bind::<Text, _>(&identity.issuer)
    .bind::<Text, _>(&identity.subject)
    .get_result(conn)
    .optional()?;
    let unknown = || AppError::Unauthenticated("missing or invalid credentials".into());
    let linked = linked.ok_or_else(|| {
        tracing::debug!(issuer = %identity.issuer, "OIDC subject is not linked to an account");
        unknown()
    })?;
    if identity
        .tenant
        .as_ref()
        .is_some_and(|t| *t != linked.tenant_id.to_string())
    {
        return Err(unknown());
    }
    Ok(TokenSubject {
        account_id: linked.account_id,
        tenant_id: linked.tenant_id,
        generation: linked.token_generation,
        permission_mask: identity.permission_mask,
    })
}

/// Links an OIDC identity to an account of `tenant_id` (replacing an earlier link of
/// the same identity within the tenant). `false` when the identity is linked to another
/// tenant's account.
pub fn link_external(
    conn: &mut PgConnection,
    tenant_id: i64,
    account_id: i64,
    issuer: &str,
    subject: &str,
) -> AppResult<bool> {
    use diesel::sql_types::{BigInt, Text};
    let n = diesel::sql_query(
        "INSERT INTO external_identities (issuer, subject, tenant_id, account_id) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (issuer, subject) DO UPDATE SET account_id = EXCLUDED.account_id \
         WHERE external_identities.tenant_id = EXCLUDED.tenant_id",
    )
    .bind::<Text, _>(issuer)
    .bind::<Text, _>(subject)
    .bind::<BigInt, _>(tenant_id)
    .bind::<BigInt, _>(account_id)
    .execute(conn)?;
    Ok(n > 0)
}

/// Removes a link of the tenant; whether there was one.
pub fn unlink_external(
    conn: &mut PgConnection,
    tenant_id: i64,
    issuer: &str,
    subject: &str,
) -> AppResult<bool> {
    use diesel::sql_types::{BigInt, Text};
    let n = diesel::sql_query(
        "DELETE FROM external_identities WHERE issuer = $1 AND subject = $2 AND tenant_id = $3",
    )
    .bind::<Text, _>(issuer)
    .bind::<Text, _>(subject)
    .bind::<BigInt, _>(tenant_id)
    .execute(conn)?;
    Ok(n > 0)
}

/// Enabled accounts with their tenant's name (for the development dashboard's
/// one-click sign-in), at most `limit`.
pub fn enabled_with_tenants(
    conn: &mut PgConnection,
    limit: i64,
) -> AppResult<Vec<(AccountRow, String)>> {
    Ok(accounts::table
        .inner_join(tenants::table)
        .filter(accounts::disabled_at.is_null())
        .order((accounts::tenant_id, accounts::id))
        .select((AccountRow::as_select(), tenants::name))
        .limit(limit)
        .load(conn)?)
}

/// The principal of the owner of the tenant a shop belongs to (the `import` command
/// acts as it).
pub fn owner_principal_of_shop(conn: &mut PgConnection, shop_id: i64) -> AppResult<Principal> {
    let tenant: i64 = shops::table
        .filter(shops::id.eq(shop_id))
        .select(shops::tenant_id)
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::NotFound(format!("shop {shop_id}")))?;
    let owner = owner_of(conn, tenant)?;
    load_principal(
        conn,
        TokenSubject::account(owner.id, owner.tenant_id, owner.token_generation),
    )
}
